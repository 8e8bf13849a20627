//! Circuit privacy of what an encrypted model returns: outputs are
//! re-randomized and flooded (`EncryptedModel::respond`); a data owner who
//! picks its input to make two models with different weights give the same
//! result tells them apart from the raw outputs' noise, and not from the
//! flooded ones; a model too deep for flooding says so and is re-randomized
//! only; the client clamps its inputs to the declared bound.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_nn::spec::ModelSpec;
use cipherflow_nn::{Layer, Sequential};
use cipherflow_tensor::privacy::DEFAULT_RETURNED_OUTPUTS;
use cipherflow_tensor::{
    CompileOptions, EncryptedModel, KeySet, Mode, OutputPrivacy, Plan, TensorError,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// Outputs the flooding covers in these tests.
const OUTPUTS: u64 = 1 << 10;

const PRIVATE: CompileOptions = CompileOptions {
    approximate: None,
    for_circuit_privacy: true,
    for_handoff: false,
};

/// A dense 8 → 3 model; column 0 of its weights multiplied by `boost`.
fn linear(boost: f32) -> Sequential {
    let text = r#"{"input":[8],"layers":[{"type":"dense","units":3}]}"#;
    let mut m = ModelSpec::parse(text).unwrap().build(7).unwrap();
    if let Some(Layer::Dense(d)) = m.layers_mut().first_mut() {
        for r in 0..3 {
            d.weight.value[[r, 0]] *= boost;
        }
    }
    m
}

/// Throughput mode: no rotations, so no key-switching noise in the bound
/// (latency mode's rotations put it 4.6 bits higher, past what flooding
/// at λ = 20 leaves room for at 8 bits of precision).
fn server(model: &Sequential) -> EncryptedModel {
    let plan = Plan::compile_with(model, &PRIVATE).unwrap();
    EncryptedModel::new(&plan, Mode::Throughput)
        .unwrap()
        .with_input_bound(1.0)
        .unwrap()
}

/// The decrypted errors of `runs` answers to `x` (raw `run` outputs, or
/// `respond` with `privacy`).
fn errors(
    s: &EncryptedModel,
    x: &[f64],
    privacy: Option<&OutputPrivacy>,
    runs: usize,
    seed: u64,
) -> Vec<f64> {
    let client = s.client().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let keys = KeySet::generate(&client, &mut rng).unwrap();
    let want = s.plan().eval_plain(x).unwrap();
    let mut out = Vec::new();
    for _ in 0..runs {
        let ct = client.encrypt(&keys.sk, &[x.to_vec()], &mut rng).unwrap();
        let y = match privacy {
            Some(p) => s
                .respond(&keys.rlk, &keys.gk, &keys.pk, &ct, p, &mut rng)
                .unwrap(),
            None => s.run(&keys.rlk, &keys.gk, &ct).unwrap(),
        };
        let got = y.decrypt(&keys.decryptor()).unwrap();
        out.extend(got[0].iter().zip(&want).map(|(a, b)| a - b));
    }
    out
}

fn variance(v: &[f64]) -> f64 {
    v.iter().map(|e| e * e).sum::<f64>() / v.len() as f64
}

#[test]
fn a_linear_model_floods_its_outputs_and_keeps_their_precision() {
    let s = server(&linear(1.0));
    let OutputPrivacy::Flooded(c) = s.output_privacy(OUTPUTS, 8.0).unwrap() else {
        panic!("a linear model at a 2^60 scale leaves room for flooding");
    };
    eprintln!("{}", OutputPrivacy::Flooded(c).describe());
    assert!(c.stat_sec_bits() >= 25, "λ = {}", c.stat_sec_bits());
    assert!(c.precision_bits() >= 8.0);
    // The proven bound's tail events (union bound, counted generously).
    assert!(c.bound().failure_probability() < 2f64.powi(-20));
    // Stronger than what fits is refused, with the figures.
    let Err(TensorError::DoesNotFit(m)) = s.circuit_privacy(c.stat_sec_bits() + 1, OUTPUTS, 8.0)
    else {
        panic!("λ + 1 fitted");
    };
    assert!(m.contains("bits of precision"), "{m}");
    let x: Vec<f64> = (0..8).map(|i| (i as f64 - 3.5) / 4.0).collect();
    let flooded = errors(&s, &x, Some(&OutputPrivacy::Flooded(c)), 8, 1);
    let limit = 2f64.powf(-c.precision_bits());
    assert!(
        flooded.iter().all(|e| e.abs() <= limit),
        "{flooded:?} vs {limit}"
    );
    // The flooding is there: far above the raw error.
    let raw = errors(&s, &x, None, 8, 1);
    assert!(variance(&flooded) > 1e6 * variance(&raw));
}

#[test]
fn the_data_owner_cannot_tell_the_weights_from_a_flooded_output() {
    // Input 0 is zero: both models give the same result, but model B's
    // 64-fold first column multiplies that input's encryption noise.
    let (a, b) = (server(&linear(1.0)), server(&linear(64.0)));
    let mut x: Vec<f64> = (0..8).map(|i| (i as f64 - 3.5) / 4.0).collect();
    x[0] = 0.0;
    assert_eq!(
        a.plan().eval_plain(&x).unwrap(),
        b.plan().eval_plain(&x).unwrap()
    );
    let raw = variance(&errors(&b, &x, None, 60, 2)) / variance(&errors(&a, &x, None, 60, 3));
    // One public flooding for both (sized for the larger bound, as a
    // model owner publishes it).
    let OutputPrivacy::Flooded(cb) = b.output_privacy(OUTPUTS, 4.0).unwrap() else {
        panic!("no flooding for model B");
    };
    let p = OutputPrivacy::Flooded(cb);
    let clean =
        variance(&errors(&b, &x, Some(&p), 60, 4)) / variance(&errors(&a, &x, Some(&p), 60, 5));
    eprintln!("error variance B/A: raw {raw:.1}, flooded {clean:.3}");
    assert!(
        raw > 5.0,
        "raw outputs already hide the weights? ratio {raw}"
    );
    assert!((0.6..1.6).contains(&clean), "flooded ratio {clean}");
}

#[test]
fn a_deep_model_is_rerandomized_only_and_says_why() {
    let model = cipherflow_nn::examples::digits_cnn().unwrap();
    let plan = Plan::compile(&model).unwrap();
    let s = EncryptedModel::new(&plan, Mode::Latency)
        .unwrap()
        .with_input_bound(16.0)
        .unwrap();
    let p = s.output_privacy(DEFAULT_RETURNED_OUTPUTS, 8.0).unwrap();
    let OutputPrivacy::RerandomizedOnly { why } = &p else {
        panic!("{}", p.describe());
    };
    assert!(why.contains("precision") && why.contains("λ = 20"), "{why}");
    assert!(p.describe().contains("not flooded"));
    let Err(TensorError::DoesNotFit(_)) = s.circuit_privacy(40, 1 << 10, 8.0) else {
        panic!("λ = 40 fitted a five-level CNN at a 2^28 scale");
    };
    // Re-randomized: two answers to the same ciphertext differ, and both
    // decrypt to the result.
    let client = s.client().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let keys = KeySet::generate(&client, &mut rng).unwrap();
    let data = cipherflow_nn::examples::digits().unwrap();
    let x: Vec<f64> = data
        .features()
        .row(0)
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    let ct = client
        .encrypt(&keys.sk, std::slice::from_ref(&x), &mut rng)
        .unwrap();
    let r1 = s
        .respond(&keys.rlk, &keys.gk, &keys.pk, &ct, &p, &mut rng)
        .unwrap();
    let r2 = s
        .respond(&keys.rlk, &keys.gk, &keys.pk, &ct, &p, &mut rng)
        .unwrap();
    let params = plan.params();
    assert_ne!(
        r1.ciphertexts()[0].to_bytes(params).unwrap(),
        r2.ciphertexts()[0].to_bytes(params).unwrap()
    );
    let want = plan.eval_plain(&x).unwrap();
    for r in [r1, r2] {
        let got = r.decrypt(&keys.decryptor()).unwrap();
        let err = got[0]
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-2, "{err}");
    }
}

#[test]
fn the_client_clamps_inputs_to_the_declared_bound() {
    let s = server(&linear(1.0));
    let spec = s.input_spec();
    assert_eq!(spec.input_bound, Some(1.0));
    let client = s.client().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let keys = KeySet::generate(&client, &mut rng).unwrap();
    let x = vec![5.0, -3.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0];
    let ct = client.encrypt(&keys.sk, &[x], &mut rng).unwrap();
    let got = ct.decrypt(&keys.decryptor()).unwrap();
    for (g, w) in got[0].iter().zip([1.0, -1.0, 0.5]) {
        assert!((g - w).abs() < 1e-6, "{g} vs {w}");
    }
    // A spec declaring an absurd bound is refused.
    for bad in [0.0, -1.0, f64::NAN, 1e9] {
        let mut sp = spec.clone();
        sp.input_bound = Some(bad);
        assert!(cipherflow_tensor::ModelClient::new(sp).is_err(), "{bad}");
    }
    // The server rounds a declared bound up to a power of two.
    assert_eq!(
        server(&linear(1.0))
            .with_input_bound(3.0)
            .unwrap()
            .input_bound(),
        Some(4.0)
    );
}
