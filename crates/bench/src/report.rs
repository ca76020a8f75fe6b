//! The Markdown report: a header about the run, the side-by-side table (ours, the other system,
//! the speed-up, the target) made of each section's rows, each section's details, then the
//! reference, peak memory and failures. Every ratio uses figures of this run, except reference
//! figures labelled "measured earlier".

use std::fmt::Write as _;

use crate::reference::{EARLIER, References};
use crate::results::{Header, Results};
use crate::section::Section;
use crate::table::{Row, bytes, secs, table};

pub fn render(h: &Header, r: &Results, refs: &References) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "## Benchmark run {}\n", h.date);
    let _ = writeln!(w, "- Machine: {}", h.machine.describe());
    let _ = writeln!(w, "- Model: {}", h.model);
    let _ = writeln!(w, "- Command: `{}`", h.command);
    let _ = writeln!(
        w,
        "- Medians of {} timed repeats after a warm-up, except `train-epoch` and `eval-gen` (one run each). \
         Ratios use figures of this run; reference figures not measured live are labelled \"measured earlier\". \
         Shared machines are noisy: compare ratios within a run, not absolute times across days.",
        h.repeats
    );
    let _ = writeln!(
        w,
        "- Peak memory: {}.\n",
        if h.isolated {
            "each section ran in its own child process; its VmHWM (peak RSS) is reported"
        } else {
            "all sections ran in one process; each figure is the running peak (VmHWM) after that section"
        }
    );

    let ceiling = |bf16| r.matmul.as_ref().and_then(|m| m.train_ceiling(bf16));
    let peak = |s: Section| r.peak_memory.get(s.name()).copied();
    let mut rows: Vec<Row> = Vec::new();
    if let Some(m) = &r.matmul {
        rows.extend(m.rows(refs));
    }
    if let Some(l) = &r.load {
        rows.extend(l.rows(refs));
    }
    if let Some(d) = &r.decode {
        rows.extend(d.rows(refs));
    }
    if let Some(t) = &r.train_step {
        rows.extend(t.rows(ceiling(t.bf16)));
    }
    if let Some(e) = &r.train_epoch {
        rows.extend(e.rows(refs, ceiling(e.bf16), peak(Section::TrainEpoch)));
    }
    if let Some(g) = &r.eval_gen {
        rows.extend(g.rows(refs, peak(Section::EvalGen)));
    }
    let _ = writeln!(w, "### Side by side\n");
    let _ = writeln!(w, "Speed-up = the other's time / ours (= our rate / the other's).\n");
    table(
        w,
        &["what", "ours", "other", "other's source", "speed-up", "target", "met"],
        rows.into_iter().map(|r| r.cells.to_vec()),
    );

    if let Some(m) = &r.matmul {
        m.details(w);
    }
    if let Some(l) = &r.load {
        l.details(w);
    }
    if let Some(d) = &r.decode {
        d.details(w);
    }
    if let Some(t) = &r.train_step {
        t.details(w, ceiling(t.bf16));
    }
    if let Some(e) = &r.train_epoch {
        e.details(w, refs, ceiling(e.bf16));
    }
    if let Some(g) = &r.eval_gen {
        g.details(w);
    }
    reference_details(w, refs);
    if !r.peak_memory.is_empty() || !r.seconds.is_empty() {
        let _ = writeln!(w, "### Peak memory and time per section\n");
        let ran = Section::ALL
            .iter()
            .map(|s| s.name())
            .filter(|n| r.seconds.contains_key(*n) || r.peak_memory.contains_key(*n));
        table(
            w,
            &["section", "peak memory", "wall time (model load included)"],
            ran.map(|n| {
                vec![
                    n.to_string(),
                    r.peak_memory.get(n).map_or("—".into(), |b| bytes(*b as f64)),
                    r.seconds.get(n).map_or("—".into(), |s| secs(*s)),
                ]
            }),
        );
    }
    if !r.failed.is_empty() {
        let _ = writeln!(w, "### Failed sections\n");
        for (n, e) in &r.failed {
            let _ = writeln!(w, "- {n}: {e}");
        }
        w.push('\n');
    }
    out
}

fn reference_details(w: &mut String, refs: &References) {
    let f = &refs.file;
    let _ = writeln!(w, "### Reference\n");
    if let Some(t) = &f.transformers_train {
        let _ = writeln!(
            w,
            "- transformers + PEFT training (live{}): {} micro-steps of batch {} padded to {}: median {:.1} s each ({:.1} real tok/s, {:.1} padded tok/s); epoch = {} micro-steps = {}{}",
            if t.autocast_bf16 { ", forward under torch's bf16 autocast, not the recipe's f32" } else { "" },
            t.micro_steps,
            t.batch,
            t.pad_to,
            t.micro_step_seconds,
            t.real_tokens_per_s,
            t.padded_tokens_per_s,
            t.micro_steps_per_epoch,
            secs(t.epoch_seconds),
            t.peak_memory_bytes.map_or(String::new(), |b| format!("; peak {}", bytes(b as f64)))
        );
    } else {
        let steps = EARLIER.micro_steps_per_epoch.steps;
        let _ = writeln!(
            w,
            "- transformers + PEFT training: not measured live; {}'s {:.1} s per micro-step (batch 4 padded to 192) × {steps} micro-steps per epoch",
            EARLIER.micro_step_seconds.file,
            refs.epoch_seconds.value / steps as f64
        );
    }
    for (name, g, earlier) in [
        (
            "transformers generate (PEFT unmerged, f32, one prompt at a time)",
            &f.transformers_generate,
            &EARLIER.transformers_tokens_per_s,
        ),
        ("llama.cpp (llama-cpp-python, one stream)", &f.llama_cpp, &EARLIER.llama_cpp_tokens_per_s),
    ] {
        match g {
            Some(g) => {
                let _ = writeln!(
                    w,
                    "- {name} (live): {} prompts, {} tokens in {} = {:.1} tok/s{}{}",
                    g.prompts,
                    g.tokens,
                    secs(g.seconds),
                    g.tokens_per_s,
                    g.threads.map_or(String::new(), |t| format!(", {t} threads")),
                    g.peak_memory_bytes.map_or(String::new(), |b| format!("; peak {}", bytes(b as f64)))
                );
            }
            None => {
                let _ = writeln!(w, "- {name}: not measured live; {}'s figure", earlier.file);
            }
        }
    }
    if !f.versions.is_empty() {
        let v: Vec<String> = f.versions.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(w, "- versions: {}", v.join(", "));
    }
    for s in &f.skipped {
        let _ = writeln!(w, "- skipped: {s}");
    }
    let _ = writeln!(w, "- {}\n", EARLIER.reference_eval.text);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::ModelSize;
    use crate::sections::train::{FlopModel, TrainEpochResult};
    use crate::sys::Machine;

    fn header() -> Header {
        Header {
            date: "2025-01-01".into(),
            machine: Machine { cpu: "Test CPU".into(), threads: 2, memory_bytes: None, os: "linux x86_64".into() },
            model: "GGUF m.gguf".into(),
            command: "bench".into(),
            repeats: 3,
            isolated: true,
        }
    }

    /// A 300-sample epoch of 18,000 tokens and 9,000 loss positions (eval set: 4,000 and 2,500).
    fn epoch_result(layer_params: u64, epoch_seconds: f64) -> TrainEpochResult {
        TrainEpochResult {
            steps: 2,
            micro_batch: 4,
            grad_accum: 2,
            samples: 300,
            steps_per_epoch: 38,
            epoch_tokens: 18_000,
            epoch_loss_positions: 9_000,
            // As in results saved before it existed: every real token counted as fed.
            epoch_fed_tokens: 0,
            mean_batch_rows: 240.0,
            eval_tokens: 4_000,
            eval_loss_positions: 2_500,
            trained_tokens: 960,
            train_seconds: 16.0,
            wall_seconds: 20.0,
            tokens_per_s: 60.0,
            epoch_seconds,
            epoch_seconds_by_steps: epoch_seconds + 4.0,
            train_gflops: 90.0,
            flops: FlopModel { layer_params, lm_head_params: 136_134_656 },
            bf16: false,
        }
    }

    /// A 256-token matmul section: f32 ceiling 100 GFLOP/s, and `bf16` when measured.
    fn matmul_result(bf16: Option<f64>) -> crate::sections::matmul::MatmulResult {
        crate::sections::matmul::MatmulResult {
            tokens: 256,
            dims: [896, 128, 4864],
            shapes: vec![],
            fwd_gflops: 110.0,
            ceiling_gflops: 100.0,
            bf16_ceiling_gflops: bf16,
        }
    }

    #[test]
    fn epoch_row_compares_with_the_reference_and_checks_the_target() {
        let mut r = Results { train_epoch: Some(epoch_result(357_826_560, 300.0)), ..Results::default() };
        r.peak_memory.insert("train-epoch".into(), 3 * 1024 * 1024 * 1024);
        let text = render(&header(), &r, &References::new(None, ModelSize::Small));
        // 1350 s reference / 300 s ours = 4.5×, short of the 5× target.
        assert!(text.contains("| 5.0 min | 22.5 min | reference (measured earlier, PERFORMANCE.md) | 4.50× | ≥ 5× (training epoch) | **no** |"), "{text}");
        assert!(text.contains("| training peak memory | 3.00 GiB |"), "{text}");
        assert!(text.contains("≤ 4 GiB (training memory, 0.5B) | yes |"), "{text}");
        assert!(text.contains("Test CPU, 2 threads"));
        assert!(!text.contains("### matmul"));
    }

    #[test]
    fn the_bound_prices_the_recipe_flops_at_the_ceiling_and_torch_compares_on_the_same_shapes() {
        use crate::reference::{RefMatmul, ReferenceFile};
        let epoch = |layer_params| epoch_result(layer_params, 400.0);
        let matmul = matmul_result(None);
        let r = Results { matmul: Some(matmul.clone()), train_epoch: Some(epoch(357_826_560)), ..Results::default() };
        let torch = |tokens| RefMatmul {
            tokens,
            dims: [896, 128, 4864],
            fwd_gflops: 90.0,
            ceiling_gflops: 80.0,
            threads: Some(2),
        };
        let file = ReferenceFile { torch_matmul: Some(torch(256)), ..ReferenceFile::default() };
        let text = render(&header(), &r, &References::new(Some(file), ModelSize::Small));
        // Epoch: 4·(357,826,560·18,000 + 136,134,656·9,000) = 30.66 TFLOP → 306.6 s at 100 GFLOP/s;
        // the reference's 1350 s (PERFORMANCE.md) / 306.6 s = 4.40×.
        assert!(text.contains("| training, one epoch at 100% of the matmul ceiling (a bound, not a run) | 5.1 min | 22.5 min | reference (measured earlier, PERFORMANCE.md) | 4.40× |"), "{text}");
        // Eval pass: 2·(357,826,560·4,000 + 136,134,656·2,500) = 3.54 TFLOP → 35.4 s;
        // 3·(306.6 + 35.4) s = 17.1 min: even the bound misses 15 minutes.
        assert!(
            text.contains(
                "3 epochs + 3 eval-loss passes (a bound) | 17.1 min | — | — | — | ≤ 15 min (whole run, 0.5B) | **no** |"
            ),
            "{text}"
        );
        // 5× the reference = 270 s per epoch = 113.6 GFLOP/s, above the ceiling.
        assert!(text.contains("needs 113.6 GFLOP/s = 114% of the matmul ceiling"), "{text}");
        assert!(text.contains("| 100.0 GFLOP/s | torch 80.0 GFLOP/s | measured live | 1.25× |"), "{text}");

        // torch measured on other shapes is not compared; a 1.5B-sized model gets the 45-minute target.
        let mut r = Results { matmul: Some(matmul), train_epoch: Some(epoch(1_310_000_000)), ..Results::default() };
        r.peak_memory.insert("train-epoch".into(), 8 * 1024 * 1024 * 1024);
        let file = ReferenceFile { torch_matmul: Some(torch(196)), ..ReferenceFile::default() };
        let text = render(&header(), &r, &References::new(Some(file), ModelSize::Large));
        assert!(text.contains("PyTorch 123–139 GFLOP/s"), "{text}");
        assert!(text.contains("≤ 45 min (whole run, 1.5B)"), "{text}");
        // Without a live reference, a 1.5B run is compared with PERFORMANCE.md's 1.5B micro-step
        // (53.5 s × 75 = 66.9 min), and its peak memory with nothing (none was measured for 1.5B).
        assert!(text.contains("| 66.9 min | reference (measured earlier, PERFORMANCE.md) |"), "{text}");
        assert!(
            text.contains("| training peak memory | 8.00 GiB | — | — | — | ≤ 10 GiB (training memory, 1.5B) | yes |"),
            "{text}"
        );
    }

    #[test]
    fn a_bf16_run_is_priced_at_the_bf16_ceiling() {
        let matmul = matmul_result(Some(200.0));
        let epoch = TrainEpochResult { bf16: true, ..epoch_result(357_826_560, 400.0) };
        let r = Results { matmul: Some(matmul), train_epoch: Some(epoch), ..Results::default() };
        let text = render(&header(), &r, &References::new(None, ModelSize::Small));
        assert!(text.contains("| 200.0 GFLOP/s (2.00× f32) |"), "{text}");
        // 30.66 TFLOP at 200 GFLOP/s = 153.3 s; 90 GFLOP/s is 45% of 200, not 90% of 100.
        assert!(
            text.contains("one epoch at 100% of the bf16 matmul ceiling (a bound, not a run) | 2.6 min |"),
            "{text}"
        );
        assert!(text.contains("| 90.0 GFLOP/s = 45% | — | — | — | ≥ 60% (training compute) | **no** |"), "{text}");
        assert!(text.contains("| training compute (train-epoch), share of the bf16 matmul ceiling |"), "{text}");
        assert!(text.contains("| whole run at 100% of the bf16 matmul ceiling: 3 epochs"), "{text}");
        // An f32 run on the same machine is priced at the f32 ceiling.
        let r = Results { train_epoch: Some(epoch_result(357_826_560, 400.0)), ..r };
        let text = render(&header(), &r, &References::new(None, ModelSize::Small));
        assert!(text.contains("| 90.0 GFLOP/s = 90% |"), "{text}");
    }
}
