//! The layers PyTorch users bring beyond the dense/conv core — padding,
//! LeakyReLU, global average pooling, reshapes, LSTM and GRU — against
//! PyTorch (`bench/layer_fixtures.py`): ONNX files exported with its
//! defaults import, their outputs match within 1e-5 relative, the gradients
//! of the summed cross-entropy and each example's gradient norm (what
//! DP-SGD clips) match PyTorch's, the models round-trip through our ONNX
//! export and safetensors, and DP-SGD trains a recurrent model.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_nn::data::{load_inputs, InputOptions};
use cipherflow_nn::io::{self, onnx, onnx_export, safetensors};
use cipherflow_nn::layers::{CellKind, Layer};
use cipherflow_nn::loss::Loss;
use cipherflow_nn::optim::Optimizer;
use cipherflow_nn::spec::ModelSpec;
use cipherflow_nn::{DpConfig, NnError, SecureSgd, Sequential, Tensor};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::path::{Path, PathBuf};

fn fixture(dir: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
        .join(name)
}

const MODELS: [&str; 4] = ["pad_leaky_gap", "lstm_last", "gru_h", "lstm_seq"];

struct Reference {
    logits: Vec<Vec<f32>>,
    grads: Vec<(String, Vec<f32>)>,
    sq_norms: Vec<f32>,
}

fn reference(model: &str) -> Reference {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("layers", "layers.json")).unwrap())
            .unwrap();
    let m = &v[model];
    Reference {
        logits: serde_json::from_value(m["logits"].clone()).unwrap(),
        grads: serde_json::from_value(m["grads"].clone()).unwrap(),
        sq_norms: serde_json::from_value(m["per_example_sq_norms"].clone()).unwrap(),
    }
}

/// The 8 test digits, `[8, 1, 8, 8]`, and their labels.
fn inputs() -> (Tensor, Vec<usize>) {
    let inputs = load_inputs(&fixture("byo", "inputs.npy"), &InputOptions::default()).unwrap();
    let io: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("byo", "io.json")).unwrap()).unwrap();
    let labels: Vec<usize> = serde_json::from_value(io["labels"].clone()).unwrap();
    let x = Tensor::from_shape_vec(
        ndarray::IxDyn(&[inputs.len(), 1, 8, 8]),
        inputs.features.iter().copied().collect(),
    )
    .unwrap();
    (x, labels)
}

fn assert_close(what: &str, ours: &[f32], theirs: &[f32], rel: f32) {
    assert_eq!(ours.len(), theirs.len(), "{what}: lengths");
    let scale = theirs.iter().fold(1f32, |m, v| m.max(v.abs()));
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        assert!(
            (a - b).abs() <= rel * scale,
            "{what}[{i}]: ours {a}, PyTorch {b} (scale {scale})"
        );
    }
}

/// Each example's gradient of its cross-entropy w.r.t. the logits,
/// `softmax(z) − onehot(y)` (PyTorch's, summed over the batch).
fn cross_entropy_grad(logits: &Tensor, labels: &[usize]) -> Tensor {
    let mut g = logits.clone();
    for (b, mut row) in g.outer_iter_mut().enumerate() {
        let max = row.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
        let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
        row.mapv_inplace(|v| (v - max).exp() / sum);
        row[labels[b]] -= 1.0;
    }
    g
}

fn import(name: &str) -> Sequential {
    onnx::import(&fixture("layers", &format!("{name}.onnx")))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn pytorch_exports_import_as_the_layers_they_hold() {
    let describe =
        |name: &str| -> Vec<String> { import(name).layers().iter().map(Layer::describe).collect() };
    let pad = describe("pad_leaky_gap");
    assert_eq!(pad.len(), 8, "{pad:?}");
    assert!(pad[0].starts_with("Pad2d(top 0, bottom 1, left 1, right 2, value 0)"));
    assert!(pad[2].contains("LeakyRelu(0.1)"), "{pad:?}");
    assert!(pad[3].starts_with("Pad2d(top 1, bottom 1, left 1, right 1, value 0.5)"));
    assert!(pad[5].starts_with("AvgPool2d"), "{pad:?}");
    assert_eq!(
        describe("lstm_last"),
        [
            "Reshape([8, 8])",
            "LSTM(8 → 16, last step)",
            "Dense(16 → 10)"
        ]
    );
    assert_eq!(
        describe("gru_h"),
        [
            "Reshape([8, 8])",
            "GRU(8 → 12, last step)",
            "Dense(12 → 10)"
        ]
    );
    assert_eq!(
        describe("lstm_seq"),
        [
            "Reshape([8, 8])",
            "LSTM(8 → 6, every step)",
            "GRU(6 → 5, last step)",
            "Dense(5 → 10)"
        ]
    );
}

#[test]
fn outputs_match_pytorch() {
    let (x, _) = inputs();
    for name in MODELS {
        let mut m = import(name);
        let out = m.predict(&x).unwrap();
        let r = reference(name);
        let theirs: Vec<f32> = r.logits.concat();
        assert_close(name, out.as_slice().unwrap(), &theirs, 1e-5);
    }
}

/// Back-propagation (through time) gives PyTorch's gradients of the summed
/// cross-entropy, and the per-example norms DP-SGD clips are PyTorch's
/// per-example gradients' norms.
#[test]
fn gradients_and_per_example_norms_match_pytorch() {
    let (x, labels) = inputs();
    for name in MODELS {
        let mut m = import(name);
        let r = reference(name);
        let logits = m.forward(&x, true).unwrap();
        let g = cross_entropy_grad(&logits, &labels);
        m.zero_grad();
        m.backward(&g).unwrap();
        let norms = m.per_example_sq_norms(labels.len()).unwrap();
        assert_close(&format!("{name} norms"), &norms, &r.sq_norms, 1e-4);
        m.accumulate_grads(&vec![1.0; labels.len()]).unwrap();
        let ours = m.named_params();
        assert_eq!(ours.len(), r.grads.len(), "{name}: parameter count");
        for ((our_name, p), (their_name, grad)) in ours.iter().zip(&r.grads) {
            let what = format!("{name}: {our_name} vs {their_name}");
            let tail = their_name.rsplit('.').next().unwrap();
            assert!(our_name.ends_with(tail), "{what}");
            assert_close(&what, p.grad.as_slice().unwrap(), grad, 1e-4);
        }
    }
}

/// Our ONNX export writes the patterns PyTorch writes, and safetensors
/// keeps the architecture: both read back to identical outputs.
#[test]
fn new_layers_round_trip_through_onnx_and_safetensors() {
    let (x, _) = inputs();
    let dir = tempfile::tempdir().unwrap();
    for name in MODELS {
        let mut m = import(name);
        let want = m.predict(&x).unwrap();
        let bytes = onnx_export::export(&m, None).unwrap();
        let mut back = onnx::import_bytes(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(back.predict(&x).unwrap(), want, "{name} via ONNX");
        let path = dir.path().join(format!("{name}.safetensors"));
        safetensors::save(&m, &path).unwrap();
        let mut st = io::load(&path).unwrap().model;
        assert_eq!(st.predict(&x).unwrap(), want, "{name} via safetensors");
    }
}

/// A recurrent model described as data trains with DP-SGD (clipped
/// per-example gradients from back-propagation through time, noise,
/// accounting) and learns: rows of the digits as 8 time steps.
#[test]
fn dp_sgd_trains_an_lstm_on_digit_rows() {
    let spec = ModelSpec::parse(
        r#"
        input = [1, 8, 8]
        layers = [
          { type = "reshape", shape = [8, 8] },
          { type = "lstm", hidden = 24 },
          { type = "dense", units = 10 },
        ]"#,
    )
    .unwrap();
    let mut model = spec.build(7).unwrap();
    assert!(matches!(&model.layers()[1], Layer::Recurrent(r) if r.cell == CellKind::Lstm));
    let data = cipherflow_nn::examples::digits().unwrap();
    let (train, test) = data.split(0.8, 1).unwrap();
    let before = cipherflow_nn::train::accuracy(&mut model, &test).unwrap();
    let mut sgd = SecureSgd::with_rng(
        DpConfig {
            clip: 1.0,
            noise_multiplier: 1.0,
            sample_rate: 64.0 / train.len() as f64,
        },
        Optimizer::adam(1e-2, 0.0).unwrap(),
        cipherflow_dp::Accountant::Rdp.new_accountant(),
        ChaCha20Rng::seed_from_u64(5),
    )
    .unwrap();
    for _ in 0..200 {
        sgd.step(&mut model, Loss::CrossEntropy, &train).unwrap();
    }
    let after = cipherflow_nn::train::accuracy(&mut model, &test).unwrap();
    let eps = sgd.epsilon(1e-5).unwrap();
    eprintln!("DP-SGD LSTM: accuracy {before} → {after}, ε = {eps}");
    assert!(
        after > 0.55 && after > before + 0.3,
        "accuracy {before} → {after}"
    );
    // Accounted exactly: 200 Poisson-subsampled Gaussian steps.
    let mut acc = cipherflow_dp::Accountant::Rdp.new_accountant();
    acc.record_poisson_gaussian(64.0 / train.len() as f64, 1.0, 200)
        .unwrap();
    assert_eq!(eps, acc.epsilon(1e-5).unwrap());
}

/// Recurrent patterns the importer cannot honour are named, not guessed:
/// a bidirectional layer and an intermediate step.
#[test]
fn unsupported_recurrent_variants_are_named() {
    let path = fixture("layers", "gru_h.onnx");
    let bytes = std::fs::read(&path).unwrap();
    let mut m = <onnx::ModelProto as prost::Message>::decode(bytes.as_slice()).unwrap();
    let g = m.graph.as_mut().unwrap();
    let gru = g.node.iter_mut().find(|n| n.op_type() == "GRU").unwrap();
    gru.attribute.push(onnx::AttributeProto {
        name: Some("direction".into()),
        s: Some(b"bidirectional".to_vec()),
        r#type: Some(3),
        ..Default::default()
    });
    let err = onnx::import_bytes(&prost::Message::encode_to_vec(&m)).unwrap_err();
    match err {
        NnError::UnsupportedOnnx(nodes) => {
            assert!(nodes.iter().any(|n| n.contains("(GRU)")), "{nodes:?}")
        }
        other => panic!("{other}"),
    }
}

/// The opset range stated in `infer --help` (7–21) is checked.
#[test]
fn opsets_outside_the_supported_range_are_refused() {
    let bytes = std::fs::read(fixture("layers", "gru_h.onnx")).unwrap();
    for v in [6, 22] {
        let mut m = <onnx::ModelProto as prost::Message>::decode(bytes.as_slice()).unwrap();
        for o in &mut m.opset_import {
            o.version = Some(v);
        }
        let e = onnx::import_bytes(&prost::Message::encode_to_vec(&m))
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("opset {v} is outside")), "{e}");
    }
    assert_eq!(onnx::OPSETS, 7..=21);
}

#[test]
fn layer_specs_are_checked() {
    for bad in [
        r#"{"input": [1, 8, 8], "layers": [{"type": "lstm", "hidden": 4}]}"#,
        r#"{"input": [8, 8], "layers": [{"type": "gru", "hidden": 0}]}"#,
        r#"{"input": [1, 8, 8], "layers": [{"type": "reshape", "shape": [8, 9]}]}"#,
        r#"{"input": [64], "layers": [{"type": "global_avg_pool2d"}]}"#,
        r#"{"input": [1, 8, 8], "layers": [{"type": "pad2d", "top": 100000}]}"#,
        // Refused before anything is allocated: 10^12 parameters, 2^26
        // values per example, a reshape whose size overflows.
        r#"{"input": [1000], "layers": [{"type": "dense", "units": 1000000000}]}"#,
        r#"{"input": [4, 8, 8], "layers": [{"type": "pad2d", "top": 4000, "bottom": 4000,
            "left": 4000, "right": 4000}]}"#,
        r#"{"input": [2], "layers": [{"type": "reshape",
            "shape": [4294967296, 4294967296, 2]}]}"#,
        r#"{"input": [8, 8], "layers": [{"type": "lstm", "hidden": 100000000}]}"#,
    ] {
        let spec = ModelSpec::parse(bad).unwrap();
        assert!(spec.build(0).is_err(), "{bad}");
    }
    let ok = ModelSpec::parse(
        r#"{"input": [1, 8, 8], "layers": [{"type": "pad2d", "left": 1, "right": 1},
            {"type": "leaky_relu"}, {"type": "global_avg_pool2d"}, {"type": "flatten"}]}"#,
    )
    .unwrap();
    let m = ok.build(0).unwrap();
    assert_eq!(m.output_shape(), [1]);
    assert_eq!(
        ModelSpec::from_model(&m)
            .unwrap()
            .build(0)
            .unwrap()
            .output_shape(),
        [1]
    );
}

/// BatchNorm as a layer, against PyTorch (`bench/bn_fixtures.py`): a
/// PyTorch state_dict with BatchNorm2d and BatchNorm1d loads by name; one
/// training forward gives PyTorch's logits and running statistics, the
/// backward its gradients, eval mode its logits; folding it into the
/// preceding layers changes nothing at inference; DP-SGD refuses it.
#[test]
fn batch_norm_trains_as_pytorch_does() {
    let spec = ModelSpec::parse(
        r#"{"input": [1, 8, 8], "layers": [
            {"type": "conv2d", "out_channels": 4, "kernel": 3}, {"type": "batch_norm"},
            {"type": "relu"}, {"type": "flatten"}, {"type": "dense", "units": 16},
            {"type": "batch_norm"}, {"type": "relu"}, {"type": "dense", "units": 10}]}"#,
    )
    .unwrap();
    let mut m = spec.build(0).unwrap();
    safetensors::load_weights(&mut m, &fixture("layers", "batchnorm.safetensors")).unwrap();
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("layers", "batchnorm.json")).unwrap(),
    )
    .unwrap();
    let f = |k: &str| -> Vec<f32> {
        let rows: Vec<Vec<f32>> = serde_json::from_value(v[k].clone()).unwrap();
        rows.concat()
    };
    let pairs =
        |k: &str| -> Vec<(String, Vec<f32>)> { serde_json::from_value(v[k].clone()).unwrap() };
    let (x, labels) = inputs();
    let eval_before = m.predict(&x).unwrap();
    let logits = m.forward(&x, true).unwrap();
    assert_close(
        "train logits",
        logits.as_slice().unwrap(),
        &f("train_logits"),
        1e-5,
    );
    let g = cross_entropy_grad(&logits, &labels);
    m.zero_grad();
    m.backward(&g).unwrap();
    m.accumulate_grads(&vec![1.0; labels.len()]).unwrap();
    let named = m.named_params();
    for (name, want) in pairs("grads") {
        let (_, p) = named.iter().find(|(n, _)| *n == name).unwrap();
        assert_close(&name, p.grad.as_slice().unwrap(), &want, 1e-4);
    }
    for (name, want) in pairs("running") {
        let (_, p) = named.iter().find(|(n, _)| *n == name).unwrap();
        assert_close(&name, p.value.as_slice().unwrap(), &want, 1e-5);
    }
    let eval = m.predict(&x).unwrap();
    assert_close(
        "eval logits",
        eval.as_slice().unwrap(),
        &f("eval_logits"),
        1e-5,
    );
    assert_ne!(eval, eval_before, "the running statistics moved");
    // Folded into the conv and dense layers before them: same outputs.
    let mut folded = m.folded().unwrap();
    assert_eq!(folded.layers().len(), 6);
    assert_close(
        "folded",
        folded.predict(&x).unwrap().as_slice().unwrap(),
        eval.as_slice().unwrap(),
        1e-5,
    );
    // ONNX export and import (folded at import) and safetensors.
    let mut back = onnx::import_bytes(&onnx_export::export(&m, None).unwrap()).unwrap();
    assert_close(
        "onnx",
        back.predict(&x).unwrap().as_slice().unwrap(),
        eval.as_slice().unwrap(),
        1e-5,
    );
    // DP-SGD cannot clip an example's gradient through batch statistics.
    let data = cipherflow_nn::examples::digits().unwrap();
    let mut sgd = SecureSgd::with_rng(
        DpConfig {
            clip: 1.0,
            noise_multiplier: 1.0,
            sample_rate: 0.05,
        },
        Optimizer::sgd(0.1, 0.0, 0.0).unwrap(),
        cipherflow_dp::Accountant::Rdp.new_accountant(),
        ChaCha20Rng::seed_from_u64(1),
    )
    .unwrap();
    let e = sgd
        .step(&mut m, Loss::CrossEntropy, &data)
        .unwrap_err()
        .to_string();
    assert!(e.contains("BatchNorm mixes the examples"), "{e}");
}

/// A model exported by torch's `torch.export`-based exporter
/// (`dynamo=True`, opset 20; `bench/dynamo_fixtures.py`): its Reshape
/// carries the traced batch of one (`[1, 64]`) and GELU is one node. It
/// imports as the layers it holds and its outputs match PyTorch's.
#[test]
fn torch_export_based_onnx_imports_and_matches_pytorch() {
    let mut m = import("dynamo_cnn");
    let layers: Vec<String> = m.layers().iter().map(Layer::describe).collect();
    assert_eq!(layers.len(), 7, "{layers:?}");
    assert!(layers[0].starts_with("Conv2d"), "{layers:?}");
    assert!(layers[5].contains("Gelu"), "{layers:?}");
    let (x, _) = inputs();
    let out = m.predict(&x).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("layers", "dynamo.json")).unwrap())
            .unwrap();
    let theirs: Vec<Vec<f32>> = serde_json::from_value(v["logits"].clone()).unwrap();
    assert_close(
        "dynamo_cnn",
        out.as_slice().unwrap(),
        &theirs.concat(),
        1e-5,
    );
    // A leading 1 is the traced batch; any other leading size mixes
    // examples and is refused, naming the node.
    use cipherflow_nn::io::onnx::{import_bytes, ModelProto};
    use prost::Message;
    let bytes = std::fs::read(fixture("layers", "dynamo_cnn.onnx")).unwrap();
    for (target, ok) in [([1i64, 64], true), ([-1, 64], true), ([2, 32], false)] {
        let mut proto = ModelProto::decode(bytes.as_slice()).unwrap();
        let g = proto.graph.as_mut().unwrap();
        let name = g
            .node
            .iter()
            .find(|n| n.op_type() == "Reshape")
            .unwrap()
            .input[1]
            .clone();
        let init = g.initializer.iter_mut().find(|t| t.name() == name).unwrap();
        init.int64_data.clear();
        init.raw_data = Some(target.iter().flat_map(|v| v.to_le_bytes()).collect());
        let r = import_bytes(&proto.encode_to_vec());
        match (r, ok) {
            (Ok(f), true) => assert_eq!(f.layers().len(), 7),
            (Err(e), false) => assert!(e.to_string().contains("cannot reshape"), "{e}"),
            (r, _) => panic!("{target:?}: {:?}", r.map(|f| f.layers().len())),
        }
    }
}
