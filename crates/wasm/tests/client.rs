//! The browser client, run natively: it answers what the CLI's user side
//! answers (keys the server accepts, classes of the plaintext model, the
//! CLI's preprocessing of the same image file), refuses hostile specs,
//! images and answers with errors (never a panic), and its proof
//! verification accepts the CLI's proofs and refuses every tampered one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_nn::data::{load_inputs, InputOptions};
use cipherflow_nn::Preprocessing;
use cipherflow_tensor::{Mode, ServerHalf};
use cipherflow_wasm::{prepare_model_upload, verify_proof, BrowserClient, WebError};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::path::{Path, PathBuf};

fn nn_fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../nn/tests/fixtures")
        .join(rel)
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
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
fn keys_inputs_and_answers_work_with_the_server_half() {
    let onnx = std::fs::read(nn_fixture("layers/pad_leaky_gap.onnx")).unwrap();
    let x = digits(4);
    let server = ServerHalf::compile(&onnx, &x, Some(31), Mode::Latency, 64.0).unwrap();
    let spec = serde_json::to_string(server.spec()).unwrap();
    let client = BrowserClient::new(&spec, None).unwrap();
    assert_eq!(client.input_shape(), &[1, 8, 8]);
    let keys = client.eval_keys().unwrap();
    let figures = client.key_figures().unwrap();
    assert_eq!(figures.eval_key_bytes, keys.len());
    assert_eq!(figures.rotations, server.spec().rotations.len());
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
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    for (i, row) in x.rows().into_iter().enumerate() {
        let input: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
        let ct = client.encrypt(&input).unwrap();
        let answer = server.respond(&keys, &ct, &mut rng).unwrap();
        let scores = client.decrypt(&answer).unwrap();
        let want: Vec<f32> = exact
            .index_axis(ndarray::Axis(0), i)
            .iter()
            .copied()
            .collect();
        let err = scores
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - f64::from(*b)).abs())
            .fold(0.0, f64::max);
        assert!(err < 0.1, "input {i}: scores off by {err}");
        // Hostile answers: cut anywhere.
        for cut in [0, 4, answer.len() / 2, answer.len() - 1] {
            assert!(client.decrypt(&answer[..cut]).is_err(), "cut {cut}");
        }
    }
    // Another client's keys cannot read this client's answer correctly:
    // the secret key is this object's own.
    let other = BrowserClient::new(&spec, None).unwrap();
    let input: Vec<f64> = x.row(0).iter().map(|&v| f64::from(v)).collect();
    let answer = server
        .respond(&keys, &client.encrypt(&input).unwrap(), &mut rng)
        .unwrap();
    let mine = client.decrypt(&answer).unwrap();
    let theirs = other.decrypt(&answer).unwrap();
    assert!(
        mine.iter().zip(&theirs).any(|(a, b)| (a - b).abs() > 1.0),
        "another key decrypted the answer"
    );
}

#[test]
fn an_image_is_preprocessed_exactly_as_the_cli_reads_it() {
    let png = nn_fixture("byo/images/eight/6.png");
    let pre = Preprocessing::parse_normalize("0.3052,0.3749").unwrap();
    // The CLI's reading of the same file.
    let mut cli = load_inputs(
        &png,
        &InputOptions {
            shape: Some(vec![1, 8, 8]),
            ..Default::default()
        },
    )
    .unwrap();
    pre.apply(&mut cli.features, &[1, 8, 8]).unwrap();
    let onnx = std::fs::read(nn_fixture("layers/pad_leaky_gap.onnx")).unwrap();
    let server = ServerHalf::compile(&onnx, &digits(2), Some(15), Mode::Latency, 64.0).unwrap();
    let spec = serde_json::to_string(server.spec()).unwrap();
    let client = BrowserClient::new(&spec, Some(&pre.to_json().unwrap())).unwrap();
    let got = client
        .preprocess_image("6.png", &std::fs::read(&png).unwrap())
        .unwrap();
    let want: Vec<f64> = cli.features.iter().map(|&v| f64::from(v)).collect();
    assert_eq!(got, want);
    // Hostile files: not an image, a cut image; refused, typed.
    let bytes = std::fs::read(&png).unwrap();
    for bad in [&b"not an image"[..], &bytes[..bytes.len() / 2], &[]] {
        assert!(matches!(
            client.preprocess_image("x.png", bad),
            Err(WebError::Model(_))
        ));
    }
    // Values of the wrong shape.
    assert!(client.preprocess_values(&[1, 4, 4], vec![0.0; 16]).is_err());
}

#[test]
fn hostile_specs_and_preprocessing_are_refused() {
    for bad in ["", "{}", "null", "[1,2]", "{\"version\": 99}"] {
        assert!(BrowserClient::new(bad, None).is_err(), "{bad:?}");
    }
    let onnx = std::fs::read(nn_fixture("layers/pad_leaky_gap.onnx")).unwrap();
    let server = ServerHalf::compile(&onnx, &digits(2), Some(15), Mode::Latency, 64.0).unwrap();
    let spec = serde_json::to_string(server.spec()).unwrap();
    // A normalization of three channels for a one-channel input.
    let three = Preprocessing::parse_normalize("0,0,0,1,1,1")
        .unwrap()
        .to_json()
        .unwrap();
    assert!(BrowserClient::new(&spec, Some(&three)).is_err());
    assert!(BrowserClient::new(&spec, Some("{")).is_err());
    let huge = "x".repeat(cipherflow_wasm::MAX_PREPROCESSING_BYTES + 1);
    assert!(matches!(
        BrowserClient::new(&spec, Some(&huge)),
        Err(WebError::Invalid(_))
    ));
    // A spec below 128-bit security: the tensor client's check.
    let mut v: serde_json::Value = serde_json::from_str(&spec).unwrap();
    v["params"]["log_n"] = serde_json::json!(10);
    assert!(BrowserClient::new(&v.to_string(), None).is_err());
}

#[test]
fn proofs_from_the_cli_verify_and_tampered_ones_do_not() {
    let key = fixture("fl.pub");
    let counted = fixture("counted_proof.json");
    let v: serde_json::Value =
        serde_json::from_str(&verify_proof(&counted, &key).unwrap()).unwrap();
    assert_eq!(v["type"], "counted_proof");
    assert_eq!(v["verified"]["counted"]["client_id"], "client-1");
    assert_eq!(v["verified"]["counted"]["round"], 2);
    let entry = fixture("entry_proof.json");
    let v: serde_json::Value = serde_json::from_str(&verify_proof(&entry, &key).unwrap()).unwrap();
    assert_eq!(v["type"], "entry_proof");
    // Another log's key.
    assert!(verify_proof(&counted, &fixture("other.pub")).is_err());
    // Every hex digit of every hash and signature flipped, one at a time,
    // in the signed head and the update's inclusion path.
    let proof: serde_json::Value = serde_json::from_str(&counted).unwrap();
    let mut tried = 0;
    for field in ["root_hash", "signature", "log_id"] {
        let s = proof["sth"][field].as_str().unwrap().to_string();
        for i in (0..s.len()).step_by(7) {
            let mut p = proof.clone();
            let mut b = s.clone().into_bytes();
            b[i] = if b[i] == b'0' { b'1' } else { b'0' };
            p["sth"][field] = serde_json::json!(String::from_utf8(b).unwrap());
            assert!(verify_proof(&p.to_string(), &key).is_err(), "{field}[{i}]");
            tried += 1;
        }
    }
    assert!(tried > 20);
    let mut p = proof.clone();
    p["sth"]["tree_size"] = serde_json::json!(proof["sth"]["tree_size"].as_u64().unwrap() + 1);
    assert!(verify_proof(&p.to_string(), &key).is_err());
    // Malformed files and keys: refused with a reason, never a panic.
    for bad in [
        "",
        "{",
        "[]",
        "{\"type\": \"counted_proof\"}",
        "{\"type\": \"other\"}",
    ] {
        assert!(
            matches!(verify_proof(bad, &key), Err(WebError::Proof(_))),
            "{bad:?}"
        );
    }
    for bad in ["", "cipherflow-log-public-key\n", "zz"] {
        assert!(verify_proof(&counted, bad).is_err());
    }
    let huge = " ".repeat(cipherflow_wasm::MAX_PROOF_FILE_BYTES + 1);
    assert!(verify_proof(&huge, &key).is_err());
}

#[test]
fn an_upload_is_prepared_as_the_cli_prepares_it() {
    let onnx = std::fs::read(nn_fixture("layers/pad_leaky_gap.onnx")).unwrap();
    // The whole model, nothing stated: the file as it is.
    let all = prepare_model_upload(&onnx, None, None, None).unwrap();
    assert_eq!(all.bytes, onnx);
    assert_eq!(all.head_layers, all.layers);
    // A head, a normalization and class names: safetensors with them.
    let head = prepare_model_upload(&onnx, Some(1), Some("0.5,0.25"), None).unwrap();
    assert_eq!(head.head_layers, 1);
    let file = cipherflow_nn::io::load_bytes(&head.bytes).unwrap();
    assert_eq!(file.model.layers().len(), 1);
    assert_eq!(file.preprocessing.unwrap().mean, vec![0.5]);
    // Refusals, typed: a head beyond the model, a bad normalization, class
    // names that do not fit the outputs, a file that is not a model.
    assert!(prepare_model_upload(&onnx, Some(all.layers + 1), None, None).is_err());
    assert!(prepare_model_upload(&onnx, None, Some("1"), None).is_err());
    assert_eq!(all.outputs, 10);
    let names: Vec<String> = (0..10).map(|i| format!("digit {i}")).collect();
    let ok = prepare_model_upload(&onnx, None, None, Some(&names.join("\n"))).unwrap();
    assert_eq!(ok.preprocessing.unwrap().class_names.unwrap(), names);
    // Three names for ten outputs; ten names with one twice.
    let e = prepare_model_upload(&onnx, None, None, Some("a\nb\nc")).unwrap_err();
    assert!(e.to_string().contains("3 class names"), "{e}");
    let mut twice = names.clone();
    twice[9] = "digit 0".into();
    let e = prepare_model_upload(&onnx, None, None, Some(&twice.join("\n"))).unwrap_err();
    assert!(e.to_string().contains("appears twice"), "{e}");
    assert!(prepare_model_upload(b"not a model", None, None, None).is_err());
}

#[test]
fn a_signed_head_verifies_with_its_key_only() {
    let proof: serde_json::Value = serde_json::from_str(&fixture("counted_proof.json")).unwrap();
    let sth = proof["sth"].to_string();
    let key = fixture("fl.pub");
    let v: serde_json::Value =
        serde_json::from_str(&cipherflow_wasm::verify_head(&sth, &key).unwrap()).unwrap();
    assert_eq!(v["tree_size"], proof["sth"]["tree_size"]);
    // The key as 64 hex digits (what the dashboard's JSON carries).
    let hex_key = key.trim().rsplit(' ').next().unwrap().trim();
    let hex_key = hex_key.rsplit(':').next().unwrap();
    assert_eq!(hex_key.len(), 64, "{key:?}");
    assert!(cipherflow_wasm::verify_head(&sth, hex_key).is_ok());
    assert!(cipherflow_wasm::verify_head(&sth, &fixture("other.pub")).is_err());
    let mut forged = proof["sth"].clone();
    forged["tree_size"] = serde_json::json!(forged["tree_size"].as_u64().unwrap() + 1);
    assert!(cipherflow_wasm::verify_head(&forged.to_string(), &key).is_err());
    // Every fifth hex digit of the root, the signature and the log id.
    for field in ["root_hash", "signature", "log_id"] {
        let s = proof["sth"][field].as_str().unwrap();
        for i in (0..s.len()).step_by(5) {
            let mut b = s.as_bytes().to_vec();
            b[i] = if b[i] == b'0' { b'1' } else { b'0' };
            let mut forged = proof["sth"].clone();
            forged[field] = serde_json::json!(String::from_utf8(b).unwrap());
            assert!(
                cipherflow_wasm::verify_head(&forged.to_string(), &key).is_err(),
                "{field}[{i}]"
            );
        }
    }
    for bad in ["", "{}", "[", &"x".repeat(5000)] {
        assert!(cipherflow_wasm::verify_head(bad, &key).is_err());
    }
}

#[test]
fn the_benchmark_operations_round_trip() {
    let mut b = cipherflow_wasm::CkksBench::new().unwrap();
    assert_eq!(b.slots(), 4096);
    assert!(b.encrypt(&[1.0]).is_err(), "no keys yet");
    assert!(b.prepare().is_err(), "no keys yet");
    b.keygen().unwrap();
    assert!(b.encrypt(&[1.0]).is_err(), "not prepared yet");
    b.prepare().unwrap();
    let values: Vec<f64> = (0..4096).map(|i| (i as f64).sin() * 8.0).collect();
    b.encrypt(&values).unwrap();
    let out = b.decrypt().unwrap();
    let err = out
        .iter()
        .zip(&values)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(err < 1e-5, "{err}");
    assert!(b.ciphertext_bytes().unwrap() > 2 * 3 * 8192 * 5);
    // Cleared (the page's untimed free): no keys, no ciphertext left.
    b.clear();
    assert!(b.decrypt().is_err(), "cleared");
    assert!(b.ciphertext_bytes().is_err(), "cleared");
    assert!(b.prepare().is_err(), "cleared");
}
