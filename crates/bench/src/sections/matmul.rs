//! Matmul throughput on the projection shapes of one decoder layer: the practical ceiling for
//! training, whose work is almost all such matmuls. f32 (candle's matmul), and bf16 with f32 sums
//! (`qwen_lora::bf16`, what training uses where the CPU has AVX512-BF16) when the CPU has it.
//!
//! For each weight W stored [out, in] as in the checkpoint, with `t` tokens:
//! forward `y = x·Wᵀ` ((t, in) · (in, out)) and input gradient `dX = dY·W` ((t, out) · (out, in)),
//! 2·t·in·out FLOPs each. The ceiling is the layer mix of both (each shape weighted by how often
//! it occurs in a layer), the same FLOPs that a LoRA training step spends.

use std::fmt::Write as _;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::reference::{EARLIER, LIVE, References};
use crate::settings::Settings;
use crate::sys::{median, timed};
use crate::table::{Row, row, table};

/// One weight shape's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShapeResult {
    pub name: String,
    pub out: usize,
    pub inp: usize,
    /// How many such weights one decoder layer holds.
    pub per_layer: usize,
    /// Forward x·Wᵀ.
    pub fwd_gflops: f64,
    /// Input gradient dY·W.
    pub dx_gflops: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatmulResult {
    pub tokens: usize,
    /// hidden, K/V and MLP widths (zeros in results saved before they were recorded).
    #[serde(default)]
    pub dims: [usize; 3],
    pub shapes: Vec<ShapeResult>,
    /// Layer mix of the forward matmuls.
    pub fwd_gflops: f64,
    /// Layer mix of forward and input-gradient matmuls together: the ceiling.
    pub ceiling_gflops: f64,
    /// The same layer mix with bf16 products (packed weights, activations rounded per call);
    /// `None` on CPUs without AVX512-BF16 and in results saved before it was measured.
    #[serde(default)]
    pub bf16_ceiling_gflops: Option<f64>,
}

pub fn run(s: &Settings) -> anyhow::Result<MatmulResult> {
    let dev = s.model.device()?;
    let t = s.matmul_tokens;
    let [h, kv, ffn] = s.matmul_shape();
    let shapes = [("q/o", h, h, 2), ("k/v", kv, h, 2), ("gate/up", ffn, h, 2), ("down", h, ffn, 1)];
    let mut out = Vec::new();
    let (mut flops, mut fwd_secs, mut dx_secs, mut bf16_secs) = (0.0, 0.0, 0.0, 0.0);
    let bf16 = qwen_lora::bf16::available() && dev.is_cpu();
    for (name, o, i, per_layer) in shapes {
        let x = Tensor::randn(0f32, 1.0, (t, i), &dev)?; // (t, in)
        let w = (Tensor::randn(0f32, 1.0, (o, i), &dev)? * 0.02)?; // (out, in)
        let dy = Tensor::randn(0f32, 1.0, (t, o), &dev)?; // (t, out)
        let f = 2.0 * (t * i * o) as f64;
        let fwd = seconds_per_call(&dev, s.repeats, || x.matmul(&w.t()?).map(drop).map_err(Into::into))?; // (t, out)
        let dx = seconds_per_call(&dev, s.repeats, || dy.matmul(&w).map(drop).map_err(Into::into))?; // (t, in)
        tracing::info!(
            "matmul {name} [{t}x{i}]·[{o}x{i}]ᵀ: {:.1} GFLOP/s forward, {:.1} GFLOP/s input gradient",
            f / fwd / 1e9,
            f / dx / 1e9
        );
        if bf16 {
            let data = |t: &Tensor| -> anyhow::Result<Vec<f32>> { Ok(t.flatten_all()?.to_vec1::<f32>()?) };
            let (xs, dys) = (data(&x)?, data(&dy)?);
            let packed = qwen_lora::bf16::Bf16Weight::new(&data(&w)?, o, i)?;
            let (mut y, mut g) = (vec![0f32; t * o], vec![0f32; t * i]);
            let both = seconds_per_call(&dev, s.repeats, || {
                packed.forward(&mut y, t, &xs, false);
                packed.backward(&mut g, t, &dys, false);
                Ok(())
            })?;
            tracing::info!("matmul {name} bf16: {:.1} GFLOP/s forward + input gradient", 2.0 * f / both / 1e9);
            bf16_secs += both * per_layer as f64;
        }
        flops += f * per_layer as f64;
        fwd_secs += fwd * per_layer as f64;
        dx_secs += dx * per_layer as f64;
        out.push(ShapeResult {
            name: name.into(),
            out: o,
            inp: i,
            per_layer,
            fwd_gflops: f / fwd / 1e9,
            dx_gflops: f / dx / 1e9,
        });
    }
    Ok(MatmulResult {
        tokens: t,
        dims: s.matmul_shape(),
        shapes: out,
        fwd_gflops: flops / fwd_secs / 1e9,
        ceiling_gflops: 2.0 * flops / (fwd_secs + dx_secs) / 1e9,
        bf16_ceiling_gflops: bf16.then(|| 2.0 * flops / bf16_secs / 1e9),
    })
}

/// Median seconds of one call of `f`: one warm-up call also sizes each sample to at least ~50 ms
/// (several calls), then `repeats` samples.
fn seconds_per_call(dev: &Device, repeats: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let mut run = |n: usize| {
        timed(|| {
            for _ in 0..n {
                f()?;
            }
            dev.synchronize()?;
            Ok(())
        })
    };
    let ((), first) = run(1)?;
    let calls = ((0.05 / first.max(1e-6)).ceil() as usize).clamp(1, 10_000);
    let samples =
        (0..repeats.max(1)).map(|_| run(calls).map(|((), t)| t / calls as f64)).collect::<anyhow::Result<Vec<_>>>()?;
    Ok(median(&samples))
}

impl MatmulResult {
    /// The side-by-side rows: the f32 ceiling beside torch's (compared only on the same shapes),
    /// and the bf16 ceiling when measured.
    pub fn rows(&self, refs: &References) -> Vec<Row> {
        let m = self;
        let torch = refs.file.torch_matmul.as_ref().filter(|t| t.tokens == m.tokens && t.dims == m.dims);
        let (other, speedup) = match torch {
            Some(t) => (
                Some((format!("torch {:.1} GFLOP/s", t.ceiling_gflops), LIVE)),
                Some(m.ceiling_gflops / t.ceiling_gflops),
            ),
            None => (Some((EARLIER.torch_matmul.text.clone(), EARLIER.torch_matmul.label.as_str())), None),
        };
        let mut rows = vec![row(
            &format!("f32 matmul ceiling, layer mix fwd + input grad, {} tokens", m.tokens),
            format!("{:.1} GFLOP/s", m.ceiling_gflops),
            other,
            speedup,
            None,
        )];
        if let Some(b) = m.bf16_ceiling_gflops {
            rows.push(row(
                &format!("bf16 matmul ceiling (f32 sums, packed weights), same shapes, {} tokens", m.tokens),
                format!("{b:.1} GFLOP/s ({:.2}× f32)", b / m.ceiling_gflops),
                None,
                None,
                None,
            ));
        }
        rows
    }

    /// The ceiling a training result compares with: the bf16 one when its products ran in bf16.
    pub fn train_ceiling(&self, bf16: bool) -> Option<(f64, &'static str)> {
        if bf16 {
            self.bf16_ceiling_gflops.map(|c| (c, "bf16 matmul ceiling"))
        } else {
            Some((self.ceiling_gflops, "matmul ceiling"))
        }
    }

    /// Per-shape figures.
    pub fn details(&self, w: &mut String) {
        let m = self;
        let _ = writeln!(w, "### matmul (candle f32, x·Wᵀ and dY·W, {} tokens)\n", m.tokens);
        table(
            w,
            &["weight", "shape [out, in]", "per layer", "forward GFLOP/s", "input grad GFLOP/s"],
            m.shapes.iter().map(|s| {
                vec![
                    s.name.clone(),
                    format!("[{}, {}]", s.out, s.inp),
                    s.per_layer.to_string(),
                    format!("{:.1}", s.fwd_gflops),
                    format!("{:.1}", s.dx_gflops),
                ]
            }),
        );
        let _ = writeln!(
            w,
            "Layer mix: forward {:.1} GFLOP/s; forward + input gradient (the ceiling) {:.1} GFLOP/s.\n",
            m.fwd_gflops, m.ceiling_gflops
        );
        if let Some(b) = m.bf16_ceiling_gflops {
            let _ = writeln!(
                w,
                "bf16 products (qwen_lora::bf16: packed weights, activations rounded per call, f32 sums), the same layer mix of forward + input gradient: {b:.1} GFLOP/s ({:.2}× f32).\n",
                b / m.ceiling_gflops
            );
        }
    }
}
