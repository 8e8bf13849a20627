//! The proven output bound of an encrypted model (`output_bound`) holds
//! against real runs, in both modes and for each kind of stage (fused
//! linear layers, x², Chebyshev polynomials with and without the interval
//! map on the ciphertext), and it is not absurdly loose.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_ckks::DEFAULT_TAIL_BITS;
use cipherflow_nn::layers::{Activation, ActivationKind, Dense, Layer};
use cipherflow_nn::spec::ModelSpec;
use cipherflow_nn::Sequential;
use cipherflow_tensor::{Approximate, CompileOptions, EncryptedModel, KeySet, Mode, Plan};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// Runs `inputs` through `plan` in `mode`; returns (proven error bound per
/// slot, largest measured error) in log2.
fn check(plan: &Plan, mode: Mode, inputs: &[Vec<f64>]) -> (f64, f64) {
    let v = inputs.iter().flatten().fold(0.0f64, |m, x| m.max(x.abs()));
    let server = EncryptedModel::new(plan, mode).unwrap();
    let bound = server.output_bound(v, DEFAULT_TAIL_BITS).unwrap();
    // The union bound counts a shared tail event once per use, so it
    // grows with the circuit; it stays a probability worth stating.
    assert!(bound.failure_probability() < 2f64.powi(-5));
    let client = server.client().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let keys = KeySet::generate(&client, &mut rng).unwrap();
    let batch = if mode == Mode::Latency {
        1
    } else {
        inputs.len()
    };
    let mut worst = 0.0f64;
    for group in inputs.chunks(batch) {
        let ct = client.encrypt(&keys.sk, group, &mut rng).unwrap();
        let out = server.run(&keys.rlk, &keys.gk, &ct).unwrap();
        assert!((out.scale() - bound.scale()).abs() < 1e-6 * bound.scale());
        let got = out.decrypt(&keys.decryptor()).unwrap();
        for (x, y) in group.iter().zip(&got) {
            let want = plan.eval_plain(x).unwrap();
            for (a, b) in want.iter().zip(y) {
                worst = worst.max((a - b).abs());
                assert!(a.abs() <= bound.values(), "|{a}| > {}", bound.values());
            }
        }
    }
    let proven = (bound.error() / bound.scale()).log2();
    assert!(
        worst.log2() <= proven,
        "{mode:?}: measured 2^{:.1} above the proven 2^{proven:.1}",
        worst.log2()
    );
    (proven, worst.log2())
}

fn inputs(n: usize, len: usize, amp: f64) -> Vec<Vec<f64>> {
    (0..n)
        .map(|k| {
            (0..len)
                .map(|i| amp * ((((i * 7 + k * 13) % 11) as f64 / 11.0) - 0.5))
                .collect()
        })
        .collect()
}

#[test]
fn the_bound_holds_for_linear_square_and_polynomial_stages() {
    let text = r#"{"input":[20],"layers":[
        {"type":"dense","units":12},
        {"type":"square"},
        {"type":"dense","units":8},
        {"type":"poly","coefficients":[0.1, 0.5, 0.25, -0.05]},
        {"type":"dense","units":3}]}"#;
    let model = ModelSpec::parse(text).unwrap().build(5).unwrap();
    let plan = Plan::compile(&model).unwrap();
    for mode in [Mode::Latency, Mode::Throughput] {
        let (proven, measured) = check(&plan, mode, &inputs(4, 20, 1.0));
        eprintln!("{mode:?}: proven 2^{proven:.1}, measured 2^{measured:.1}");
        // The worst-case rounding terms cost bits, not tens of bits.
        assert!(
            proven - measured < 24.0,
            "{mode:?}: {proven:.1} vs {measured:.1}"
        );
    }
}

#[test]
fn the_bound_holds_for_approximated_activations() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let opts = CompileOptions {
        approximate: Some(Approximate::shared(15, (-8.0, 8.0))),
        ..CompileOptions::default()
    };
    // Sigmoid after a dense layer (its interval map folded into the layer)
    // and tanh first (the map on the ciphertext).
    for layers in [
        vec![
            Layer::Dense(Dense::new(20, 12, &mut rng)),
            Layer::Activation(Activation::new(ActivationKind::Sigmoid)),
            Layer::Dense(Dense::new(12, 3, &mut rng)),
        ],
        vec![
            Layer::Activation(Activation::new(ActivationKind::Tanh)),
            Layer::Dense(Dense::new(20, 3, &mut rng)),
        ],
    ] {
        let model = Sequential::new(vec![20], layers).unwrap();
        let plan = Plan::compile_with(&model, &opts).unwrap();
        for mode in [Mode::Latency, Mode::Throughput] {
            let (proven, measured) = check(&plan, mode, &inputs(3, 20, 4.0));
            eprintln!("{mode:?}: proven 2^{proven:.1}, measured 2^{measured:.1}");
        }
    }
}

#[test]
fn the_bound_holds_for_the_shipped_digits_cnn() {
    let model = cipherflow_nn::examples::digits_cnn().unwrap();
    let data = cipherflow_nn::examples::digits().unwrap();
    let xs: Vec<Vec<f64>> = (0..2)
        .map(|i| {
            data.features()
                .row(i)
                .iter()
                .map(|&v| f64::from(v))
                .collect()
        })
        .collect();
    let plan = Plan::compile(&model).unwrap();
    for mode in [Mode::Latency, Mode::Throughput] {
        let (proven, measured) = check(&plan, mode, &xs);
        eprintln!("{mode:?}: proven 2^{proven:.1}, measured 2^{measured:.1}");
    }
}
