#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Private prediction of the CNNs users bring — the shipped digits CNN
//! (conv, x², dense), a conv, tanh, max pooling CNN trained here, a
//! PyTorch conv with BatchNorm (folded),
//! x² and average pooling, and PyTorch's ZeroPad2d, conv, LeakyReLU,
//! ConstantPad2d(0.5), strided conv and global average pooling — on the
//! digits test split, against the plaintext model: the classes agree and
//! the logits differ by no more than the stated fixed-point bounds.

use cipherflow_mpc::programs::predict::{
    features_f64, logits_shared, share_model_with, CLIENT, MODEL_OWNER,
};
use cipherflow_mpc::{run_local, FixedPoint, MpcError, Network};
use cipherflow_nn::Sequential;
use std::path::Path;

fn fixture(rel: &str) -> Sequential {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../nn/tests/fixtures")
        .join(rel);
    cipherflow_nn::io::load(&p).unwrap().model
}

/// (agreement, largest logit difference) of private vs plaintext on the
/// digits test split (359 images).
fn compare(model: Sequential, normalize: Option<(f32, f32)>) -> (f64, f64) {
    compare_first(model, normalize, usize::MAX)
}

/// [`compare`] on the first `n` test images.
fn compare_first(mut model: Sequential, normalize: Option<(f32, f32)>, n: usize) -> (f64, f64) {
    let all = cipherflow_nn::examples::digits().unwrap();
    let (_, test) = all.split(0.2, 7).unwrap();
    let test = test
        .subset(&(0..test.len().min(n)).collect::<Vec<_>>())
        .unwrap();
    let mut x = features_f64(&test);
    if let Some((m, s)) = normalize {
        x.mapv_inplace(|v| (v - f64::from(m)) / f64::from(s));
    }
    let t = ndarray::ArrayD::from_shape_vec(
        ndarray::IxDyn(&[x.nrows(), 1, 8, 8]),
        x.iter().map(|&v| v as f32).collect(),
    )
    .unwrap();
    let plain = model.predict(&t).unwrap();
    let run = run_local::<u64, _, _>(Network::InProcess, FixedPoint::default(), |p| {
        let shared = share_model_with(p, (p.id() == MODEL_OWNER).then_some(&model), None)?;
        let h = logits_shared(p, &shared, (p.id() == CLIENT).then_some(&x))?;
        p.reveal_to(&h, &[CLIENT])
    })
    .unwrap();
    assert!(run.outputs[0].is_none() && run.outputs[2].is_none());
    let private = run.outputs[1].as_ref().unwrap();
    let mut agree = 0;
    let mut worst = 0f64;
    for (pr, pl) in private.outer_iter().zip(plain.outer_iter()) {
        let am = |v: Vec<f64>| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
        let pl: Vec<f64> = pl.iter().map(|&v| f64::from(v)).collect();
        for (a, b) in pr.iter().zip(&pl) {
            worst = worst.max((a - b).abs());
        }
        agree += usize::from(am(pr.to_vec()) == am(pl));
    }
    eprintln!(
        "{} images: agreement {agree}, largest logit difference {worst:.2e}, {:.2} s, {} bytes, {} rounds",
        private.nrows(),
        run.seconds,
        run.stats.bytes(),
        run.stats.rounds()
    );
    (agree as f64 / private.nrows() as f64, worst)
}

#[test]
fn the_shipped_digits_cnn_runs_privately() {
    let model = cipherflow_nn::examples::digits_cnn().unwrap();
    let (agree, worst) = compare(model, None);
    assert!(agree >= 0.997, "{agree}");
    // Two x² layers: a few ulp (2^−16) each, grown by the dense layers.
    assert!(worst < 0.02, "{worst}");
}

#[test]
fn a_tanh_and_max_pooling_cnn_runs_privately() {
    let spec = cipherflow_nn::spec::ModelSpec::parse(
        r#"{"input": [1, 8, 8], "layers": [
            {"type": "conv2d", "out_channels": 4, "kernel": 3, "padding": 1},
            {"type": "tanh"}, {"type": "max_pool2d", "kernel": 2},
            {"type": "flatten"}, {"type": "dense", "units": 10}]}"#,
    )
    .unwrap();
    let mut model = spec.build(2).unwrap();
    let (train, _) = cipherflow_nn::examples::digits()
        .unwrap()
        .split(0.2, 7)
        .unwrap();
    let cfg = cipherflow_nn::train::TrainConfig::default_for(3, 32, None);
    cipherflow_nn::train::fit(
        &mut model,
        cipherflow_nn::loss::Loss::CrossEntropy,
        &train,
        None,
        &cfg,
        &mut |_| {},
    )
    .unwrap();
    // (120 images: the piecewise sigmoid's comparisons cost about 3.6 MB
    // per image.)
    let (agree, worst) = compare_first(model, None, 120);
    // tanh through the 33-piece sigmoid: ≤ 8e-3 per activation, summed
    // by the dense layer; the maximum itself is exact.
    assert!(agree >= 0.99, "{agree}");
    assert!(worst < 0.15, "{worst}");
}

#[test]
fn pytorch_cnns_with_batchnorm_padding_and_leaky_relu_run_privately() {
    let io: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../nn/tests/fixtures/byo/io.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let norm = (
        io["mean"].as_f64().unwrap() as f32,
        io["std"].as_f64().unwrap() as f32,
    );
    let (agree, worst) = compare(fixture("byo/bn_cnn.onnx"), Some(norm));
    assert!(agree >= 0.997 && worst < 0.05, "bn_cnn: {agree}, {worst}");
    let (agree, worst) = compare(fixture("layers/pad_leaky_gap.onnx"), None);
    assert!(
        agree >= 0.997 && worst < 0.01,
        "pad_leaky_gap: {agree}, {worst}"
    );
}

#[test]
fn unsupported_layers_are_refused_before_anything_is_shared() {
    let model = fixture("layers/lstm_last.onnx");
    let e = run_local::<u64, _, _>(Network::InProcess, FixedPoint::default(), |p| {
        share_model_with(p, (p.id() == MODEL_OWNER).then_some(&model), None).map(|_| ())
    })
    .unwrap_err();
    assert!(
        matches!(&e, MpcError::Config(m) if m.contains("layer 1 (LSTM"))
            || e.to_string().contains("LSTM"),
        "{e}"
    );
}

/// A final softmax (PyTorch classifiers often end with one) is skipped —
/// it does not change the argmax — and the classes still agree; a softmax
/// inside the model runs by the softmax approximation, GELU by its own,
/// each within its stated bound.
#[test]
fn a_final_softmax_is_skipped_and_inner_softmax_and_gelu_run() {
    let spec = |layers: &str| {
        cipherflow_nn::spec::ModelSpec::parse(&format!(
            r#"{{"input": [1, 8, 8], "layers": [{{"type": "flatten"}}, {layers}]}}"#
        ))
        .unwrap()
        .build(4)
        .unwrap()
    };
    let last = spec(r#"{"type": "dense", "units": 10}, {"type": "softmax"}"#);
    let (agree, _) = compare_first(last, None, 40);
    assert_eq!(agree, 1.0);
    // Probabilities (≤ 5e-3 each) through a 10-input dense layer of
    // PyTorch's initialisation (|w| ≤ 1/√10): logits within 2e-2.
    let inner = spec(
        r#"{"type": "dense", "units": 10}, {"type": "softmax"}, {"type": "dense", "units": 10}"#,
    );
    let (agree, worst) = compare_first(inner, None, 40);
    assert!(worst < 2e-2 && agree >= 0.95, "{agree} {worst}");
    // GELU (≤ 5e-3 per value) between dense layers of 32 and 10.
    let gelu =
        spec(r#"{"type": "dense", "units": 32}, {"type": "gelu"}, {"type": "dense", "units": 10}"#);
    let (agree, worst) = compare_first(gelu, None, 40);
    assert!(worst < 5e-2 && agree >= 0.95, "{agree} {worst}");
}
