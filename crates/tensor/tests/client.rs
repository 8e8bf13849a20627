//! The client half of encrypted inference: a client that knows a model only
//! by its published input spec (JSON, no weights) makes keys and encrypts
//! inputs that the server evaluates correctly, in both modes; a spec that
//! is malformed or asks for weak parameters is refused before any key is
//! made.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_ckks::{CkksError, ParamsBuilder};
use cipherflow_tensor::{EncryptedModel, InputSpec, KeySet, Mode, ModelClient, Plan, TensorError};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn digits_server(mode: Mode) -> (EncryptedModel, cipherflow_nn::data::Dataset) {
    let model = cipherflow_nn::examples::digits_cnn().unwrap();
    let data = cipherflow_nn::examples::digits().unwrap();
    let plan = Plan::compile(&model).unwrap();
    (EncryptedModel::new(&plan, mode).unwrap(), data)
}

fn image(data: &cipherflow_nn::data::Dataset, i: usize) -> Vec<f64> {
    data.features()
        .row(i)
        .iter()
        .map(|&v| f64::from(v))
        .collect()
}

#[test]
fn a_client_from_the_published_spec_alone_runs_both_modes() {
    for mode in [Mode::Latency, Mode::Throughput] {
        let (server, data) = digits_server(mode);
        let spec = server.input_spec();
        let json = serde_json::to_string(&spec).unwrap();
        // Parameters, shape, level, scale, rotations: a few hundred bytes,
        // nothing of the ~4,000 weights.
        assert!(json.len() < 2048, "{} bytes: {json}", json.len());
        let back: InputSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, spec);
        let client = ModelClient::new(back).unwrap();
        assert_eq!(
            client.params().fingerprint(),
            server.plan().params().fingerprint()
        );
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let keys = KeySet::generate(&client, &mut rng).unwrap();
        let inputs: Vec<Vec<f64>> = match mode {
            Mode::Latency => vec![image(&data, 0)],
            Mode::Throughput => (0..4).map(|i| image(&data, i)).collect(),
        };
        let ct = client.encrypt(&keys.sk, &inputs, &mut rng).unwrap();
        let out = server.run(&keys.rlk, &keys.gk, &ct).unwrap();
        let got = out.decrypt(&keys.decryptor()).unwrap();
        assert_eq!(got.len(), inputs.len(), "{mode:?}");
        for (x, y) in inputs.iter().zip(&got) {
            let want = server.plan().eval_plain(x).unwrap();
            assert_eq!(y.len(), want.len());
            assert_eq!(want.len(), spec.output_len);
            let err = want
                .iter()
                .zip(y)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(err < 1e-2, "{mode:?}: max error {err}");
        }
    }
}

#[test]
fn keys_made_for_a_spec_that_omits_a_rotation_fail_cleanly() {
    let (server, data) = digits_server(Mode::Latency);
    let mut spec = server.input_spec();
    assert!(!spec.rotations.is_empty());
    spec.rotations.remove(0);
    let client = ModelClient::new(spec).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let keys = KeySet::generate(&client, &mut rng).unwrap();
    let ct = client
        .encrypt(&keys.sk, &[image(&data, 0)], &mut rng)
        .unwrap();
    let e = server.run(&keys.rlk, &keys.gk, &ct).unwrap_err();
    assert!(
        matches!(&e, TensorError::Ckks(CkksError::MissingGaloisKey(_))),
        "{e}"
    );
}

fn refused(spec: InputSpec, needle: &str) {
    match ModelClient::new(spec) {
        Err(TensorError::Invalid(m)) if m.contains(needle) => {}
        other => panic!("expected Invalid({needle:?}), got {:?}", other.map(|_| ())),
    }
}

#[test]
fn malformed_specs_are_refused() {
    let (server, _) = digits_server(Mode::Latency);
    let good = server.input_spec();
    let edit = |f: &dyn Fn(&mut InputSpec)| {
        let mut s = good.clone();
        f(&mut s);
        s
    };
    refused(edit(&|s| s.version = 2), "input spec version 2");
    refused(edit(&|s| s.input_shape = vec![1, 0, 8]), "input shape");
    refused(edit(&|s| s.input_shape = vec![]), "input shape");
    refused(
        edit(&|s| s.input_shape = vec![1 << 20, 1 << 20]),
        "input shape",
    );
    refused(edit(&|s| s.output_len = 0), "output length 0");
    refused(edit(&|s| s.level = 99), "level 99 above");
    refused(edit(&|s| s.scale = f64::NAN), "scale NaN");
    refused(edit(&|s| s.scale = 1.0), "scale 1");
    refused(edit(&|s| s.scale = 2f64.powi(400)), "scale");
    refused(edit(&|s| s.rotations.push(0)), "rotation 0");
    refused(edit(&|s| s.rotations.push(1 << 20)), "rotation 1048576");
    refused(edit(&|s| s.rotations.reverse()), "must be increasing");
    refused(
        edit(&|s| s.rotations = (1..=1025).collect()),
        "1025 rotations, at most 1024",
    );
    refused(
        edit(&|s| s.mode = Mode::Throughput),
        "throughput mode uses no rotations",
    );
    // Unknown fields are refused by the JSON decoder.
    let mut v: serde_json::Value = serde_json::to_value(&good).unwrap();
    v["weights"] = serde_json::json!([1.0, 2.0]);
    assert!(serde_json::from_value::<InputSpec>(v).is_err());
}

#[test]
fn a_spec_with_weak_parameters_is_refused() {
    // A server publishing parameters below 128-bit security: the client
    // refuses to make keys for them.
    let weak = ParamsBuilder::new(12)
        .q_bits(&[50, 50, 50])
        .allow_insecure()
        .build()
        .unwrap();
    let (server, _) = digits_server(Mode::Throughput);
    let mut spec = server.input_spec();
    spec.params = weak.literal();
    spec.level = 2;
    let e = ModelClient::new(spec).unwrap_err();
    assert!(
        matches!(e, TensorError::Ckks(CkksError::InsecureParameters { .. })),
        "{e}"
    );
}
