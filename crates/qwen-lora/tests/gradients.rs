//! Gradient checks in f64: every custom op's backward on its own, then every LoRA parameter
//! through the whole model and a masked cross-entropy, against central finite differences.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::*;
use qwen_lora::frozen::Frozen;
use qwen_lora::lora::LoraConfig;
use qwen_lora::model::{Mode, Qwen2};
use qwen_lora::ops::{self, AttnMask, RopeTable};

const EPS: f64 = 1e-6;

fn rel_err(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(1e-5)
}

fn det(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> =
        (0..n).map(|i| ((((i as u64 + 1) * 2654435761 + seed * 97) % 2000) as f64 / 1000.0) - 1.0).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// Checks d/dx sum(f(x) · R) from backward() against finite differences for every element of x.
fn check_op(name: &str, x0: &Tensor, f: impl Fn(&Tensor) -> Tensor) {
    let r = det(f(x0).dims(), 99);
    let loss = |x: &Tensor| (f(x) * &r).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
    let var = Var::from_tensor(x0).unwrap();
    let l = (f(var.as_tensor()) * &r).unwrap().sum_all().unwrap();
    let grad = l.backward().unwrap().get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let base = x0.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    for i in 0..base.len() {
        let mut p = base.clone();
        p[i] += EPS;
        let mut m = base.clone();
        m[i] -= EPS;
        let fd = (loss(&Tensor::from_vec(p, x0.shape(), &Device::Cpu).unwrap())
            - loss(&Tensor::from_vec(m, x0.shape(), &Device::Cpu).unwrap()))
            / (2.0 * EPS);
        assert!(rel_err(grad[i], fd) < 1e-4, "{name}: element {i}: backward {} vs finite difference {fd}", grad[i]);
    }
}

#[test]
fn frozen_linear_backward() {
    let w = Frozen::Dense(det(&[5, 4], 1));
    let b = det(&[5], 2);
    check_op("linear", &det(&[2, 3, 4], 3), |x| ops::linear(x, &w, Some(&b)).unwrap());
}

#[test]
fn rms_norm_backward() {
    let w = det(&[6], 4);
    check_op("rms_norm", &det(&[2, 3, 6], 5), |x| ops::rms_norm(x, &w, 1e-6).unwrap());
}

#[test]
fn swiglu_backward_for_both_inputs() {
    let u = det(&[3, 5], 6);
    let g = det(&[3, 5], 7);
    check_op("swiglu(gate)", &g, |g| ops::swiglu(g, &u).unwrap());
    check_op("swiglu(up)", &u, |u| ops::swiglu(&g, u).unwrap());
}

#[test]
fn lora_linear_backward_for_input_and_both_factors_under_dropout() {
    // x (2, 3, 6), W (5, 6), bias (5), A (2, 6), B (5, 2), scale 1.5, a third of the inputs dropped.
    let (x, w, bias, a, b) = (det(&[2, 3, 6], 11), det(&[5, 6], 12), det(&[5], 13), det(&[2, 6], 14), det(&[5, 2], 15));
    let w = Frozen::Dense(w);
    let f = |x: &Tensor, a: &Tensor, b: &Tensor| ops::lora_linear(x, &w, Some(&bias), a, b, 1.5, 1.0 / 3.0, 7).unwrap();
    check_op("lora_linear(x)", &x, |x| f(x, &a, &b));
    check_op("lora_linear(A)", &a, |a| f(&x, a, &b));
    check_op("lora_linear(B)", &b, |b| f(&x, &a, b));
}

#[test]
fn swiglu_down_backward_for_both_inputs() {
    let (g, u, w) = (det(&[2, 3, 5], 16), det(&[2, 3, 5], 17), Frozen::Dense(det(&[4, 5], 18)));
    check_op("swiglu_down(gate)", &g, |g| ops::swiglu_down(g, &u, &w).unwrap());
    check_op("swiglu_down(up)", &u, |u| ops::swiglu_down(&g, u, &w).unwrap());
}

#[test]
fn rope_backward() {
    let positions: Vec<u32> = vec![0, 1, 2, 3, 7, 8, 9, 10];
    let table = RopeTable::new(&positions, 8, 10_000.0);
    check_op("rope", &det(&[2, 4, 3, 8], 8), |x| ops::rope(x, &table).unwrap());
}

#[test]
fn masked_softmax_backward_with_padding_and_a_cache_offset() {
    // b = 2, 2 KV heads, group 2, t_q = 3 queries over t_k = 5 keys; row 1 is left-padded.
    let mask = AttnMask::new(vec![1, 1, 1, 1, 1, 0, 0, 1, 1, 1], 5);
    check_op("masked_softmax", &det(&[2, 2, 6, 5], 9), |s| ops::masked_softmax(s, &mask, 0.7, 3).unwrap());
}

#[test]
fn cross_entropy_backward() {
    let targets = Tensor::new(&[3u32, 0, 6], &Device::Cpu).unwrap();
    check_op("cross_entropy", &det(&[3, 7], 10), |x| ops::cross_entropy(x, &targets).unwrap());
}

/// Checks every LoRA parameter's gradient of `masked_loss` in `mode` against finite differences.
fn check_lora_gradients(model: &Qwen2, mode: Mode) -> usize {
    let grads = masked_loss(model, mode).backward().unwrap();
    let vars = model.lora_vars();
    assert!(!vars.is_empty());
    let mut checked = 0;
    for (name, var) in &vars {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient"))
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let base = var.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        for i in 0..base.len() {
            let mut v = base.clone();
            v[i] = base[i] + EPS;
            var.set(&Tensor::from_vec(v.clone(), var.shape(), &Device::Cpu).unwrap()).unwrap();
            let lp = masked_loss(model, mode).to_scalar::<f64>().unwrap();
            v[i] = base[i] - EPS;
            var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap()).unwrap();
            let lm = masked_loss(model, mode).to_scalar::<f64>().unwrap();
            var.set(&Tensor::from_vec(base.clone(), var.shape(), &Device::Cpu).unwrap()).unwrap();
            let fd = (lp - lm) / (2.0 * EPS);
            assert!(rel_err(g[i], fd) < 1e-4, "{name}[{i}]: backward {} vs finite difference {fd}", g[i]);
            checked += 1;
        }
    }
    checked
}

#[test]
fn every_lora_parameter_gradient_matches_finite_differences() {
    let model = tiny_lora_model(21, DType::F64, &all_modules());
    let checked = check_lora_gradients(&model, Mode::Eval);
    assert!(checked > 1000, "checked {checked} parameters");
}

/// The training forward (fused LoRA projections with dropout, fused SwiGLU + down projection).
#[test]
fn training_mode_gradients_with_dropout_match_finite_differences() {
    let cfg = LoraConfig {
        lora_dropout: 0.25,
        target_modules: ["q_proj", "k_proj", "v_proj", "o_proj"].map(String::from).to_vec(),
        ..all_modules()
    };
    let model = tiny_lora_model(22, DType::F64, &cfg);
    let mode = Mode::Train { dropout_seed: 9 };
    let checked = check_lora_gradients(&model, mode);
    assert!(checked > 500, "checked {checked} parameters");
    // Dropout is live: another seed draws other masks and so another loss.
    let l9 = masked_loss(&model, mode).to_scalar::<f64>().unwrap();
    let l10 = masked_loss(&model, Mode::Train { dropout_seed: 10 }).to_scalar::<f64>().unwrap();
    assert!((l9 - l10).abs() > 1e-9, "losses {l9} and {l10} under different dropout seeds");
}

#[test]
fn frozen_weights_get_no_gradient() {
    let model = tiny_lora_model(21, DType::F64, &all_modules());
    let grads = masked_loss(&model, Mode::Train { dropout_seed: 3 }).backward().unwrap();
    for (name, w) in model.named_weights().unwrap() {
        assert!(grads.get(&w).is_none(), "{name} received a gradient");
    }
    for (name, v) in model.lora_vars() {
        assert!(grads.get(v.as_tensor()).is_some(), "{name} received no gradient");
    }
}
