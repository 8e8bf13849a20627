//! An encrypted head's output handed off as additive shares: the user's
//! and the platform's decoded shares add up (modulo 2^128) to the head's
//! activations in fixed point, in latency and throughput mode; without a
//! declared input bound there is no hand-off; a model split anywhere
//! gives a head and a tail that compose to the whole.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_nn::Sequential;
use cipherflow_tensor::handoff::decrypt_handoff;
use cipherflow_tensor::{
    ActivationDecoding, ActivationShares, CompileOptions, EncryptedModel, KeySet, Mode, Plan,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const FRAC: u32 = 20;

fn digits(n: usize) -> Vec<Vec<f64>> {
    let d = cipherflow_nn::examples::digits().unwrap();
    d.features()
        .outer_iter()
        .take(n)
        .map(|r| r.iter().map(|&v| f64::from(v)).collect())
        .collect()
}

fn head(model: &Sequential, mode: Mode) -> EncryptedModel {
    let opts = CompileOptions {
        for_handoff: true,
        ..CompileOptions::default()
    };
    let plan = Plan::compile_with(model, &opts).unwrap();
    EncryptedModel::new(&plan, mode)
        .unwrap()
        .with_input_bound(1.0)
        .unwrap()
}

fn joined(a: &ActivationShares, b: &ActivationShares) -> Vec<f64> {
    assert_eq!((a.rows, a.cols, a.guard), (b.rows, b.cols, b.guard));
    a.values
        .iter()
        .zip(b.values.iter())
        .map(|(&x, &y)| {
            let v = x.wrapping_add(y) as i128;
            let t = (v + (1i128 << (a.guard - 1))) >> a.guard;
            t as f64 / f64::from(1u32 << FRAC)
        })
        .collect()
}

/// Hands off `examples` through `server`; returns (joined activations,
/// the head's plaintext outputs), example-major.
fn hand_off(server: &EncryptedModel, examples: &[Vec<f64>], seed: u64) -> (Vec<f64>, Vec<f64>) {
    let client = server.client().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let keys = KeySet::generate(&client, &mut rng).unwrap();
    let ct = client.encrypt(&keys.sk, examples, &mut rng).unwrap();
    let hp = server.handoff_params(FRAC, 40).unwrap();
    let (masked, platform) = server
        .respond_handoff(&keys.rlk, &keys.gk, &keys.pk, &ct, &hp, &mut rng)
        .unwrap();
    let user = decrypt_handoff(&keys.decryptor(), &masked).unwrap();
    let params = server.plan().params();
    let decoding = ActivationDecoding::new(params, &masked, &hp).unwrap();
    assert!(decoding.fits(&masked));
    let a = decoding.apply(&user).unwrap();
    let b = decoding.apply(&platform).unwrap();
    assert!(decoding.apply(&user[..user.len() - 1]).is_err());
    assert_eq!(a.rows, examples.len());
    let want: Vec<f64> = examples
        .iter()
        .flat_map(|x| server.plan().eval_plain(x).unwrap())
        .collect();
    eprintln!(
        "{} examples × {} activations, guard {} bits, masked at level {} of {}",
        a.rows,
        a.cols,
        a.guard,
        masked.level(),
        params.max_level()
    );
    (joined(&a, &b), want)
}

fn max_error(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn the_shares_add_up_to_the_heads_activations() {
    // The digits CNN (conv → x² → dense → x² → dense) split after x².
    let model = cipherflow_nn::examples::digits_cnn().unwrap();
    let (h, t) = model.split_at(2).unwrap();
    assert_eq!(t.input_shape(), h.output_shape());
    let x = digits(3);
    let latency = head(&h, Mode::Latency);
    let (got, want) = hand_off(&latency, &x[..1], 1);
    let err = max_error(&got, &want);
    let top = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    eprintln!("latency: max error {err:.2e} on activations up to {top:.1}");
    assert!(err < 1e-3, "{err}");
    let throughput = head(&h, Mode::Throughput);
    let (got, want) = hand_off(&throughput, &x, 2);
    let err = max_error(&got, &want);
    eprintln!("throughput: max error {err:.2e}");
    assert!(err < 1e-3, "{err}");
}

#[test]
fn without_a_declared_input_bound_there_is_no_hand_off() {
    let model = cipherflow_nn::examples::digits_cnn().unwrap();
    let (h, _) = model.split_at(1).unwrap();
    let opts = CompileOptions {
        for_handoff: true,
        ..CompileOptions::default()
    };
    let plan = Plan::compile_with(&h, &opts).unwrap();
    let server = EncryptedModel::new(&plan, Mode::Latency).unwrap();
    let e = server.handoff_params(FRAC, 40).unwrap_err();
    assert!(e.to_string().contains("input bound"), "{e}");
    // Default parameters keep one prime at the output: too little modulus.
    let plain = EncryptedModel::new(&Plan::compile(&h).unwrap(), Mode::Latency)
        .unwrap()
        .with_input_bound(1.0)
        .unwrap();
    let client = plain.client().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let keys = KeySet::generate(&client, &mut rng).unwrap();
    let ct = client.encrypt(&keys.sk, &digits(1), &mut rng).unwrap();
    let hp = plain.handoff_params(FRAC, 40).unwrap();
    let e = plain
        .respond_handoff(&keys.rlk, &keys.gk, &keys.pk, &ct, &hp, &mut rng)
        .unwrap_err();
    assert!(e.to_string().contains("one more level"), "{e}");
}

#[test]
fn a_split_composes_to_the_whole_model() {
    let mut model = cipherflow_nn::examples::digits_cnn().unwrap();
    let n = model.layers().len();
    assert!(model.split_at(0).is_err() && model.split_at(n).is_err());
    let x = digits(4);
    let t = ndarray::ArrayD::from_shape_vec(
        ndarray::IxDyn(&[4, 1, 8, 8]),
        x.iter().flatten().map(|&v| v as f32).collect(),
    )
    .unwrap();
    let whole = model.predict(&t).unwrap();
    for k in 1..n {
        let (mut h, mut tl) = model.split_at(k).unwrap();
        let mid = h.predict(&t).unwrap();
        let out = tl.predict(&mid).unwrap();
        assert_eq!(out, whole, "split after layer {k}");
    }
}
