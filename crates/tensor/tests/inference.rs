//! End-to-end encrypted inference with the digits model shipped in
//! `data/models/`, and the plan compiler's choices and refusals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_ckks::SecurityLevel;
use cipherflow_nn::data::load_digits;
use cipherflow_nn::io::safetensors::load_model;
use cipherflow_nn::layers::{
    Activation, ActivationKind, Dense, Flatten, PolyActivation, Pool2d, PoolKind,
};
use cipherflow_nn::spec::ModelSpec;
use cipherflow_nn::{Layer, Sequential, Tensor};
use cipherflow_tensor::plan::choose_bits;
use cipherflow_tensor::{Approximate, EncryptedModel, KeySet, Mode, Plan, TensorError};
use std::path::PathBuf;

fn repo(rel: &str) -> PathBuf {
    cipherflow_testkit::workspace_root().join(rel)
}

fn argmax(v: &[f64]) -> usize {
    v.iter()
        .enumerate()
        .fold(
            (0, f64::NEG_INFINITY),
            |b, (i, &x)| if x > b.1 { (i, x) } else { b },
        )
        .0
}

/// Largest `|want − got|` (NaN if any difference is NaN), after checking
/// both have the same, non-zero length: an empty output is no match.
fn max_abs_err(want: &[f64], got: &[f64]) -> f64 {
    assert!(!want.is_empty(), "nothing to compare");
    assert_eq!(want.len(), got.len(), "expected and obtained lengths");
    want.iter()
        .zip(got)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, |m: f64, d| if d.is_nan() || d > m { d } else { m })
}

fn plain_logits(model: &mut Sequential, x: &[f64]) -> Vec<f64> {
    let mut shape = vec![1];
    shape.extend(model.input_shape());
    let t = Tensor::from_shape_vec(
        ndarray::IxDyn(&shape),
        x.iter().map(|&v| v as f32).collect(),
    )
    .unwrap();
    model
        .predict(&t)
        .unwrap()
        .iter()
        .map(|&v| f64::from(v))
        .collect()
}

#[test]
fn shipped_digits_model_agrees_under_encryption() {
    let mut model = load_model(&repo("data/models/digits-cnn.safetensors")).unwrap();
    let data = load_digits(&repo("data/digits.csv.gz")).unwrap();
    let (_, test) = data.split(0.2, 0).unwrap();
    let plan = Plan::compile(&model).unwrap();
    assert_eq!(plan.depth(), 5);
    assert_eq!(
        plan.params().n(),
        1 << 13,
        "smallest secure ring for depth 5"
    );
    assert!(plan.params().security() >= SecurityLevel::Bits128);
    let mut rng = cipherflow_ring::sampler::secure_rng().unwrap();

    // Throughput mode: the whole test split (360 images) in one pass.
    let server = EncryptedModel::new(&plan, Mode::Throughput).unwrap();
    assert!(
        server.rotation_steps().is_empty(),
        "throughput mode needs no rotations"
    );
    let client = server.client().unwrap();
    let keys = KeySet::generate(&client, &mut rng).unwrap();
    let xs: Vec<Vec<f64>> = (0..test.len())
        .map(|i| {
            test.features()
                .row(i)
                .iter()
                .map(|&v| f64::from(v))
                .collect()
        })
        .collect();
    let ct = client.encrypt(&keys.sk, &xs, &mut rng).unwrap();
    let out = server.run(&keys.rlk, &keys.gk, &ct).unwrap();
    let logits = out.decrypt(&keys.decryptor()).unwrap();
    let mut agree = 0;
    let mut max_err: f64 = 0.0;
    assert_eq!(logits.len(), xs.len(), "one output per image");
    assert!(!xs.is_empty());
    for (x, enc) in xs.iter().zip(&logits) {
        let plain = plain_logits(&mut model, x);
        let err = max_abs_err(&plain, enc);
        // f64::max would drop a NaN.
        max_err = if max_err.is_nan() || err.is_nan() {
            f64::NAN
        } else {
            max_err.max(err)
        };
        agree += usize::from(argmax(&plain) == argmax(enc));
    }
    println!(
        "throughput: {agree}/{} agree, max logit error {max_err:.2e}",
        xs.len()
    );
    assert_eq!(
        agree,
        xs.len(),
        "every encrypted prediction matches plaintext"
    );
    assert!(
        max_err < 1e-2,
        "logits within 1e-2 of plaintext ({max_err:.2e})"
    );

    // Latency mode: a few images, one ciphertext each, with exactly the
    // rotation keys the plan asks for.
    let server = EncryptedModel::new(&plan, Mode::Latency).unwrap();
    let steps = server.rotation_steps();
    assert!(!steps.is_empty());
    let client = server.client().unwrap();
    let keys = KeySet::generate(&client, &mut rng).unwrap();
    assert_eq!(keys.gk.elements().count(), steps.len());
    assert!(keys.galois_bytes() > 0);
    for x in xs.iter().take(3) {
        let ct = client
            .encrypt(&keys.sk, std::slice::from_ref(x), &mut rng)
            .unwrap();
        assert_eq!(ct.ciphertexts().len(), 1, "one upload ciphertext per image");
        let out = server.run(&keys.rlk, &keys.gk, &ct).unwrap();
        assert_eq!(out.level(), 0);
        let enc = out.decrypt(&keys.decryptor()).unwrap().remove(0);
        let plain = plain_logits(&mut model, x);
        let err = max_abs_err(&plain, &enc);
        assert!(err < 1e-2, "latency logits error {err:.2e}");
        assert_eq!(argmax(&plain), argmax(&enc));
    }
}

#[test]
fn linear_layers_fuse_and_plan_matches_plaintext() {
    // conv → avgpool → flatten → dense fuse into one level.
    let text = r#"{"input":[1,8,8],"layers":[
        {"type":"conv2d","out_channels":3,"kernel":3,"padding":1},
        {"type":"avg_pool2d","kernel":2},
        {"type":"flatten"},
        {"type":"square"},
        {"type":"dense","units":5}]}"#;
    let spec = ModelSpec::parse(text).unwrap();
    let mut model = spec.build(3).unwrap();
    let plan = Plan::compile(&model).unwrap();
    assert_eq!(plan.stages().len(), 3, "{}", plan.summary());
    assert_eq!(plan.depth(), 3);
    let x: Vec<f64> = (0..64).map(|i| ((i * 37) % 17) as f64 / 17.0).collect();
    let want = plain_logits(&mut model, &x);
    let got = plan.eval_plain(&x).unwrap();
    assert_eq!(want.len(), 5, "five logits");
    assert_eq!(got.len(), want.len());
    for (a, b) in want.iter().zip(&got) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
}

#[test]
fn unsupported_and_too_deep_models_are_refused() {
    let mut rng = cipherflow_ring::sampler::secure_rng().unwrap();
    let relu = Sequential::new(
        vec![4],
        vec![
            Layer::Dense(Dense::new(4, 4, &mut rng)),
            Layer::Activation(Activation::new(ActivationKind::Relu)),
            Layer::Dense(Dense::new(4, 2, &mut rng)),
        ],
    )
    .unwrap();
    match Plan::compile(&relu) {
        Err(TensorError::Unsupported(m)) => {
            assert!(m.contains("Relu") && m.contains("layer 1"), "{m}")
        }
        other => panic!("ReLU accepted: {other:?}"),
    }
    let maxpool = Sequential::new(
        vec![1, 4, 4],
        vec![
            Layer::Pool2d(Pool2d::new(PoolKind::Max, (2, 2), (2, 2)).unwrap()),
            Layer::Flatten(Flatten::new()),
        ],
    )
    .unwrap();
    assert!(matches!(
        Plan::compile(&maxpool),
        Err(TensorError::Unsupported(_))
    ));
    // 40 degree-15 polynomials: depth 160, beyond N = 2^16.
    let mut layers = vec![Layer::Dense(Dense::new(4, 4, &mut rng))];
    for _ in 0..40 {
        layers.push(Layer::Poly(PolyActivation::new(&[0.1; 16], false).unwrap()));
    }
    let deep = Sequential::new(vec![4], layers).unwrap();
    match Plan::compile(&deep) {
        Err(TensorError::DoesNotFit(m)) => assert!(m.contains("depth 161"), "{m}"),
        other => panic!("too deep accepted: {other:?}"),
    }
    // Parameter choice grows the ring with the depth, always 128-bit secure.
    assert_eq!(choose_bits(5).unwrap().0, 13);
    assert_eq!(choose_bits(9).unwrap().0, 14);
    assert_eq!(choose_bits(20).unwrap().0, 15);
}

/// Needs `../shared/data/mnist`: fails without it unless
/// `CIPHERFLOW_SKIP_MISSING_DATA=1`.
#[test]
fn mnist_tutorial_network_one_image() {
    let model_path = repo("data/models/mnist-tenseal-cnn.safetensors");
    let Some(dir) = cipherflow_testkit::mnist() else {
        return;
    };
    // Present but unreadable is a failure, not a skip.
    let (_, test) = cipherflow_nn::data::load_mnist(&dir)
        .unwrap_or_else(|e| panic!("MNIST unreadable at {}: {e}", dir.display()));
    let mut model = load_model(&model_path).unwrap();
    let plan = Plan::compile(&model).unwrap();
    let server = EncryptedModel::new(&plan, Mode::Latency).unwrap();
    let mut rng = cipherflow_ring::sampler::secure_rng().unwrap();
    let client = server.client().unwrap();
    let keys = KeySet::generate(&client, &mut rng).unwrap();
    let x: Vec<f64> = test
        .features()
        .row(0)
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    let ct = client
        .encrypt(&keys.sk, std::slice::from_ref(&x), &mut rng)
        .unwrap();
    let enc = server
        .run(&keys.rlk, &keys.gk, &ct)
        .unwrap()
        .decrypt(&keys.decryptor())
        .unwrap()
        .remove(0);
    let plain = plain_logits(&mut model, &x);
    assert_eq!(plain.len(), 10, "ten digit logits");
    assert_eq!(enc.len(), plain.len());
    assert_eq!(argmax(&plain), argmax(&enc));
}

#[test]
fn polynomial_activation_model_in_both_modes() {
    let text = r#"{"input":[20],"layers":[
        {"type":"dense","units":12},
        {"type":"poly","coefficients":[0.1, 0.5, 0.25, -0.05]},
        {"type":"dense","units":3}]}"#;
    let mut model = ModelSpec::parse(text).unwrap().build(5).unwrap();
    let plan = Plan::compile(&model).unwrap();
    assert_eq!(plan.depth(), 4, "1 + ⌈log2 4⌉ + 1");
    let xs: Vec<Vec<f64>> = (0..4)
        .map(|k| {
            (0..20)
                .map(|i| (((i * 7 + k * 13) % 11) as f64 / 11.0) - 0.5)
                .collect()
        })
        .collect();
    let mut rng = cipherflow_ring::sampler::secure_rng().unwrap();
    for mode in [Mode::Latency, Mode::Throughput] {
        let server = EncryptedModel::new(&plan, mode).unwrap();
        let client = server.client().unwrap();
        let keys = KeySet::generate(&client, &mut rng).unwrap();
        let inputs: Vec<Vec<f64>> = if mode == Mode::Latency {
            xs[..1].to_vec()
        } else {
            xs.clone()
        };
        let ct = client.encrypt(&keys.sk, &inputs, &mut rng).unwrap();
        let out = server
            .run(&keys.rlk, &keys.gk, &ct)
            .unwrap()
            .decrypt(&keys.decryptor())
            .unwrap();
        assert_eq!(out.len(), inputs.len(), "{mode:?}: one output per input");
        for (x, enc) in inputs.iter().zip(&out) {
            let plain = plain_logits(&mut model, x);
            assert_eq!(plain.len(), 3);
            let err = max_abs_err(&plain, enc);
            assert!(err < 1e-4, "{mode:?}: error {err:.2e}");
        }
    }
}

#[test]
fn approximated_activations_fold_their_interval_map() {
    use cipherflow_tensor::{CompileOptions, Stage};
    let mut rng = cipherflow_ring::sampler::secure_rng().unwrap();
    let mut model = Sequential::new(
        vec![20],
        vec![
            Layer::Dense(Dense::new(20, 12, &mut rng)),
            Layer::Activation(Activation::new(ActivationKind::Sigmoid)),
            Layer::Dense(Dense::new(12, 3, &mut rng)),
        ],
    )
    .unwrap();
    let opts = CompileOptions {
        approximate: Some(Approximate::shared(15, (-8.0, 8.0))),
        ..CompileOptions::default()
    };
    let plan = Plan::compile_with(&model, &opts).unwrap();
    // 1 (dense, with x → x/8 folded in) + ⌈log2 16⌉ + 1 (dense): no level
    // for the interval map.
    assert_eq!(plan.depth(), 6, "{}", plan.summary());
    assert!(matches!(&plan.stages()[1], Stage::Poly(p) if !p.maps_input()));
    // The same activation first in the model keeps the map on the ciphertext.
    let first = Sequential::new(
        vec![4],
        vec![
            Layer::Activation(Activation::new(ActivationKind::Tanh)),
            Layer::Dense(Dense::new(4, 2, &mut rng)),
        ],
    )
    .unwrap();
    assert_eq!(
        Plan::compile_with(&first, &opts).unwrap().depth(),
        4 + 1 + 1
    );

    let xs: Vec<Vec<f64>> = (0..8)
        .map(|k| {
            (0..20)
                .map(|i| (((i * 5 + k * 3) % 13) as f64 / 13.0) - 0.5)
                .collect()
        })
        .collect();
    let server = EncryptedModel::new(&plan, Mode::Throughput).unwrap();
    let client = server.client().unwrap();
    let keys = KeySet::generate(&client, &mut rng).unwrap();
    let ct = client.encrypt(&keys.sk, &xs, &mut rng).unwrap();
    let out = server
        .run(&keys.rlk, &keys.gk, &ct)
        .unwrap()
        .decrypt(&keys.decryptor())
        .unwrap();
    assert_eq!(out.len(), xs.len(), "one output per input");
    for (x, enc) in xs.iter().zip(&out) {
        let compiled = plan.eval_plain(x).unwrap();
        let exact = plain_logits(&mut model, x);
        assert_eq!(exact.len(), 3);
        assert_eq!(compiled.len(), exact.len());
        assert_eq!(enc.len(), exact.len());
        for ((c, e), t) in compiled.iter().zip(enc).zip(&exact) {
            assert!((c - e).abs() < 1e-4, "encrypted {e} vs compiled {c}");
            // Degree-15 sigmoid on [−8, 8]: 1.4e-3 per hidden unit.
            assert!((c - t).abs() < 0.05, "compiled {c} vs exact model {t}");
        }
    }
}
