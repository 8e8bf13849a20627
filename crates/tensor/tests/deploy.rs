//! A model compiled into server and client halves whose bytes travel:
//! the server half rebuilt from its bytes answers the client half's
//! encrypted inputs with the exact model's classes; hostile bytes and
//! foreign keys are refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_tensor::{ClientHalf, Mode, ServerHalf, TensorError};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn fixture() -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../nn/tests/fixtures/layers/pad_leaky_gap.onnx"),
    )
    .unwrap()
}

fn digits(n: usize) -> ndarray::Array2<f32> {
    let (_, test) = cipherflow_nn::examples::digits()
        .unwrap()
        .split(0.2, 0)
        .unwrap();
    test.subset(&(0..n).collect::<Vec<_>>())
        .unwrap()
        .features()
        .clone()
}

#[test]
fn halves_travel_as_bytes_and_agree_with_the_plaintext_model() {
    let onnx = fixture();
    let x = digits(6);
    let compiled = ServerHalf::compile(&onnx, &x, Some(31), Mode::Latency, 64.0).unwrap();
    let (degree, width) = compiled.options().approximate.unwrap();
    assert_eq!(degree, 31);
    assert!(width > 0.0);
    // Another process: the server from its bytes, the client from the spec.
    let server = ServerHalf::from_bytes(&compiled.to_bytes().unwrap()).unwrap();
    assert_eq!(server.options(), compiled.options());
    let spec = serde_json::to_string(server.spec()).unwrap();
    assert!(!spec.contains("weights"));
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let client = ClientHalf::new(&spec, &mut rng).unwrap();
    let keys = client.eval_key_bytes().unwrap();
    let mut model = server.model().clone();
    let exact = model
        .predict(
            &ndarray::ArrayD::from_shape_vec(
                ndarray::IxDyn(&[x.nrows(), 1, 8, 8]),
                x.iter().copied().collect(),
            )
            .unwrap(),
        )
        .unwrap();
    for (i, row) in x.rows().into_iter().enumerate() {
        let input: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
        let ct = client.encrypt(&[input], &mut rng).unwrap();
        let answer = server.respond(&keys, &ct, &mut rng).unwrap();
        let out = client.decrypt(&answer).unwrap();
        assert_eq!(out.len(), 1);
        let want: Vec<f64> = exact
            .index_axis(ndarray::Axis(0), i)
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let err = out[0]
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(err < 0.05, "input {i}: logit error {err}");
    }
}

#[test]
fn refusals_are_typed() {
    let onnx = fixture();
    let x = digits(2);
    // The LeakyReLU needs an approximation: named in the error.
    match ServerHalf::compile(&onnx, &x, None, Mode::Latency, 64.0) {
        Err(TensorError::Unsupported(m)) => assert!(m.to_lowercase().contains("relu"), "{m}"),
        other => panic!("{other:?}"),
    }
    let server = ServerHalf::compile(&onnx, &x, Some(15), Mode::Latency, 64.0).unwrap();
    let bytes = server.to_bytes().unwrap();
    for cut in [0, 3, 5, 12, bytes.len() / 2, bytes.len() - 1] {
        assert!(ServerHalf::from_bytes(&bytes[..cut]).is_err(), "cut {cut}");
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(ServerHalf::from_bytes(&trailing).is_err());
    let mut huge = bytes.clone();
    huge[5..13].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(ServerHalf::from_bytes(&huge).is_err());
    assert!(ServerHalf::from_bytes(b"CFSH\x01").is_err());
    // The options a server half carries are checked when it is rebuilt:
    // the activations' intervals (one for this model's LeakyReLU) too.
    let opts_len = u64::from_le_bytes(bytes[5..13].try_into().unwrap()) as usize;
    let opts: serde_json::Value = serde_json::from_slice(&bytes[13..13 + opts_len]).unwrap();
    assert_eq!(opts["activation_half_widths"].as_array().unwrap().len(), 1);
    let with = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut o = opts.clone();
        edit(&mut o);
        let o = serde_json::to_vec(&o).unwrap();
        let mut b = bytes[..5].to_vec();
        b.extend_from_slice(&(o.len() as u64).to_le_bytes());
        b.extend_from_slice(&o);
        b.extend_from_slice(&bytes[13 + opts_len..]);
        ServerHalf::from_bytes(&b)
    };
    assert!(with(&|_| {}).is_ok());
    for (edit, why) in [
        (
            &(|o: &mut serde_json::Value| o["activation_half_widths"] = serde_json::json!([-1.0]))
                as &dyn Fn(&mut serde_json::Value),
            "interval",
        ),
        (
            &|o: &mut serde_json::Value| o["activation_half_widths"] = serde_json::json!([1e300]),
            "interval",
        ),
        (
            &|o: &mut serde_json::Value| {
                o["activation_half_widths"] = serde_json::json!([1.0, 2.0, 3.0])
            },
            "3 approximation intervals",
        ),
        (
            &|o: &mut serde_json::Value| o["approximate"] = serde_json::Value::Null,
            "without a degree",
        ),
        (
            &|o: &mut serde_json::Value| o["intervals"] = serde_json::json!([1.0]),
            "unknown field",
        ),
    ] {
        match with(edit) {
            Err(e) => assert!(e.to_string().contains(why), "{why}: {e}"),
            Ok(_) => panic!("{why}: accepted"),
        }
    }
    let spec = serde_json::to_string(server.spec()).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    assert!(ClientHalf::new("{", &mut rng).is_err());
    let client = ClientHalf::new(&spec, &mut rng).unwrap();
    // Wrong input length, non-finite values.
    assert!(matches!(
        client.encrypt(&[vec![0.0; 3]], &mut rng),
        Err(TensorError::Shape(_))
    ));
    assert!(client.encrypt(&[vec![f64::NAN; 64]], &mut rng).is_err());
    // Keys made for another model's rotations are refused.
    let other = ServerHalf::compile(&onnx, &x, Some(15), Mode::Throughput, 64.0).unwrap();
    let other_client =
        ClientHalf::new(&serde_json::to_string(other.spec()).unwrap(), &mut rng).unwrap();
    let ct = client.encrypt(&[vec![0.5; 64]], &mut rng).unwrap();
    assert!(server
        .respond(&other_client.eval_key_bytes().unwrap(), &ct, &mut rng)
        .is_err());
    assert!(server
        .respond(&client.eval_key_bytes().unwrap(), &ct[..10], &mut rng)
        .is_err());
}

#[test]
fn a_kept_secret_key_decrypts_what_it_encrypted_and_makes_working_keys() {
    let onnx = fixture();
    let x = digits(1);
    let server = ServerHalf::compile(&onnx, &x, Some(15), Mode::Latency, 64.0).unwrap();
    let spec = serde_json::to_string(server.spec()).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let first = ClientHalf::new(&spec, &mut rng).unwrap();
    let old_keys = first.eval_key_bytes().unwrap();
    let kept = first.secret_key_bytes();
    let input: Vec<f64> = x.row(0).iter().map(|&v| f64::from(v)).collect();
    let before = first
        .decrypt(
            &server
                .respond(
                    &old_keys,
                    &first
                        .encrypt(std::slice::from_ref(&input), &mut rng)
                        .unwrap(),
                    &mut rng,
                )
                .unwrap(),
        )
        .unwrap();
    drop(first);
    // Restored (another visit): the server's session still holds the old
    // evaluation keys, and they serve the restored key's ciphertexts; the
    // fresh evaluation keys made for it serve them as well.
    let restored = ClientHalf::from_secret_key(&spec, &kept, &mut rng).unwrap();
    assert_eq!(*restored.secret_key_bytes(), *kept);
    let new_keys = restored.eval_key_bytes().unwrap();
    assert_eq!(new_keys.len(), old_keys.len());
    assert_ne!(
        new_keys, old_keys,
        "evaluation keys are made with fresh noise"
    );
    for keys in [&old_keys, &new_keys] {
        let ct = restored
            .encrypt(std::slice::from_ref(&input), &mut rng)
            .unwrap();
        let out = restored
            .decrypt(&server.respond(keys, &ct, &mut rng).unwrap())
            .unwrap();
        let err = out[0]
            .iter()
            .zip(&before[0])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(err < 0.05, "restored key: logit error {err}");
    }
    // Damaged, cut, or made for other parameters: refused.
    for cut in [0, 10, kept.len() - 1] {
        assert!(ClientHalf::from_secret_key(&spec, &kept[..cut], &mut rng).is_err());
    }
    let mut other_params = kept.to_vec();
    other_params[8] ^= 1;
    assert!(ClientHalf::from_secret_key(&spec, &other_params, &mut rng).is_err());
    assert!(ClientHalf::from_secret_key("{", &kept, &mut rng).is_err());
}
