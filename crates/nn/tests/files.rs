#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::needless_range_loop
)]
//! Model files (safetensors, ONNX), PyTorch interoperability, data loaders
//! and specs.

use cipherflow_nn::data::{
    load_breast_cancer, load_digits, load_idx_images, load_idx_labels, partition_dirichlet,
    partition_iid, Dataset, Standardizer,
};
use cipherflow_nn::io::{onnx, safetensors};
use cipherflow_nn::spec::ModelSpec;
use cipherflow_nn::{NnError, Tensor};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn data(name: &str) -> PathBuf {
    cipherflow_testkit::shipped(name)
}

struct TorchIo {
    spec: ModelSpec,
    inputs: Tensor,
    outputs: Vec<Vec<f32>>,
}

fn torch_io() -> TorchIo {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("torch_digits_io.json")).unwrap())
            .unwrap();
    let spec: ModelSpec = serde_json::from_value(v["spec"].clone()).unwrap();
    let rows: Vec<Vec<f32>> = serde_json::from_value(v["inputs"].clone()).unwrap();
    let outputs: Vec<Vec<f32>> = serde_json::from_value(v["outputs"].clone()).unwrap();
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    let inputs = Tensor::from_shape_vec(ndarray::IxDyn(&[rows.len(), 1, 8, 8]), flat).unwrap();
    TorchIo {
        spec,
        inputs,
        outputs,
    }
}

fn assert_matches_torch(out: &Tensor, expected: &[Vec<f32>], what: &str) {
    let mut worst = 0f32;
    for (b, row) in expected.iter().enumerate() {
        for (k, &e) in row.iter().enumerate() {
            worst = worst.max((out[[b, k]] - e).abs());
        }
        let arg = |v: &mut dyn Iterator<Item = f32>| {
            v.enumerate()
                .fold((0, f32::MIN), |a, (i, x)| if x > a.1 { (i, x) } else { a })
                .0
        };
        assert_eq!(
            arg(&mut out.row_iter(b)),
            arg(&mut row.iter().copied()),
            "{what}: class of example {b}"
        );
    }
    assert!(worst < 1e-4, "{what}: max |ours − PyTorch| = {worst}");
}

trait RowIter {
    fn row_iter(&self, b: usize) -> std::vec::IntoIter<f32>;
}
impl RowIter for Tensor {
    fn row_iter(&self, b: usize) -> std::vec::IntoIter<f32> {
        self.index_axis(ndarray::Axis(0), b)
            .iter()
            .copied()
            .collect::<Vec<_>>()
            .into_iter()
    }
}

/// A network trained in PyTorch (bench/nn_fixtures.py) loads from its
/// safetensors state dict and predicts what PyTorch predicted.
#[test]
fn pytorch_safetensors_predict_identically() {
    let io = torch_io();
    let mut model = io.spec.build(0).unwrap();
    safetensors::load_weights(&mut model, &fixture("torch_digits.safetensors")).unwrap();
    let out = model.predict(&io.inputs).unwrap();
    assert_matches_torch(&out, &io.outputs, "safetensors");
}

/// The same network exported by `torch.onnx.export` imports and predicts
/// identically.
#[test]
fn pytorch_onnx_imports_and_predicts_identically() {
    let io = torch_io();
    let mut model = onnx::import(&fixture("torch_digits.onnx")).unwrap();
    assert_eq!(ModelSpec::from_model(&model).unwrap(), io.spec);
    let out = model.predict(&io.inputs).unwrap();
    assert_matches_torch(&out, &io.outputs, "onnx");
}

#[test]
fn unsupported_onnx_nodes_are_all_named() {
    match onnx::import(&fixture("unsupported.onnx")) {
        Err(NnError::UnsupportedOnnx(nodes)) => {
            // LeakyRelu imports; HardSwish does not.
            assert_eq!(nodes.len(), 1, "{nodes:?}");
            assert!(nodes[0].contains("HardSwish"), "{nodes:?}");
        }
        other => panic!("expected UnsupportedOnnx, got {other:?}"),
    }
    let bytes = std::fs::read(fixture("torch_digits.onnx")).unwrap();
    // No bytes decode as an empty model (no graph); a cut anywhere else
    // leaves a protobuf field unfinished.
    for (cut, why) in [
        (0, "ONNX model has no graph"),
        (1, "not an ONNX model"),
        (10, "not an ONNX model"),
        (bytes.len() / 2, "not an ONNX model"),
        (bytes.len() - 1, "not an ONNX model"),
    ] {
        let r = onnx::import_bytes(&bytes[..cut]);
        assert!(
            matches!(&r, Err(NnError::ModelFile(m)) if m.contains(why)),
            "truncated at {cut}: {:?}",
            r.err()
        );
    }
    let r = onnx::import_bytes(b"definitely not protobuf \xff\xff\xff");
    assert!(
        matches!(&r, Err(NnError::ModelFile(m)) if m.contains("not an ONNX model")),
        "{:?}",
        r.err()
    );
}

#[test]
fn safetensors_round_trip_and_self_describing_files() {
    let io = torch_io();
    let mut model = io.spec.build(42).unwrap();
    let dir = std::env::temp_dir().join(format!("cf-nn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.safetensors");
    safetensors::save(&model, &path).unwrap();
    let mut back = safetensors::load_model(&path).unwrap();
    let a = model.predict(&io.inputs).unwrap();
    let b = back.predict(&io.inputs).unwrap();
    assert_eq!(a, b);
    // Our file loads into PyTorch's naming: same tensor names as the torch
    // state dict.
    let ours = std::fs::read(&path).unwrap();
    let theirs = std::fs::read(fixture("torch_digits.safetensors")).unwrap();
    let mut n1: Vec<String> = ::safetensors::SafeTensors::deserialize(&ours)
        .unwrap()
        .names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut n2: Vec<String> = ::safetensors::SafeTensors::deserialize(&theirs)
        .unwrap()
        .names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    n1.sort();
    n2.sort();
    assert_eq!(n1, n2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_safetensors_give_typed_errors_and_leave_the_model_unchanged() {
    let io = torch_io();
    let bytes = std::fs::read(fixture("torch_digits.safetensors")).unwrap();
    let mut model = io.spec.build(1).unwrap();
    let before = model.predict(&io.inputs).unwrap();
    for cut in [0, 7, 8, 100, bytes.len() / 2, bytes.len() - 1] {
        let e = safetensors::load_weights_bytes(&mut model, &bytes[..cut]);
        assert!(
            matches!(e, Err(NnError::ModelFile(_))),
            "truncated at {cut}: {e:?}"
        );
    }
    // Wrong architecture: a different dense width.
    let mut spec = io.spec.clone();
    spec.layers[7] = cipherflow_nn::spec::LayerSpec::Dense { units: 17 };
    spec.layers[9] = cipherflow_nn::spec::LayerSpec::Dense { units: 10 };
    let mut other = spec.build(0).unwrap();
    assert!(matches!(
        safetensors::load_weights_bytes(&mut other, &bytes),
        Err(NnError::Shape { .. })
    ));
    // Missing tensors: a model with an extra layer.
    let mut spec = io.spec.clone();
    spec.layers
        .push(cipherflow_nn::spec::LayerSpec::Dense { units: 3 });
    let mut bigger = spec.build(0).unwrap();
    assert!(matches!(
        safetensors::load_weights_bytes(&mut bigger, &bytes),
        Err(NnError::ModelFile(_))
    ));
    // Random garbage.
    let r = safetensors::load_weights_bytes(&mut model, &[0xff; 64]);
    assert!(
        matches!(&r, Err(NnError::ModelFile(m)) if m.contains("not a safetensors file")),
        "{r:?}"
    );
    assert_eq!(
        model.predict(&io.inputs).unwrap(),
        before,
        "failed loads must not modify the model"
    );
    // A weights-only PyTorch file has no architecture.
    assert!(matches!(
        safetensors::load_model(&fixture("torch_digits.safetensors")),
        Err(NnError::ModelFile(_))
    ));
}

#[test]
fn shipped_uci_sets_load() {
    let bc = load_breast_cancer(&data("breast_cancer.csv")).unwrap();
    assert_eq!(
        (bc.len(), bc.shape(), bc.num_classes()),
        (569, &[30usize][..], 2)
    );
    assert_eq!(
        bc.labels().iter().filter(|&&y| y == 1).count(),
        357,
        "benign count"
    );
    let dg = load_digits(&data("digits.csv.gz")).unwrap();
    assert_eq!(
        (dg.len(), dg.shape(), dg.num_classes()),
        (1797, &[1usize, 8, 8][..], 10)
    );
    assert!(dg.features().iter().all(|&v| (0.0..=1.0).contains(&v)));
}

#[test]
fn split_standardise_partition() {
    let bc = load_breast_cancer(&data("breast_cancer.csv")).unwrap();
    let (mut train, mut test) = bc.split(0.2, 7).unwrap();
    assert_eq!((train.len(), test.len()), (455, 114));
    let (train2, _) = bc.split(0.2, 7).unwrap();
    assert_eq!(
        train.labels(),
        train2.labels(),
        "seeded split is reproducible"
    );
    let s = Standardizer::fit(&train).unwrap();
    s.apply(&mut train).unwrap();
    s.apply(&mut test).unwrap();
    let mean = train.features().mean_axis(ndarray::Axis(0)).unwrap();
    let std = train.features().std_axis(ndarray::Axis(0), 0.0);
    assert!(mean.iter().all(|m| m.abs() < 1e-4) && std.iter().all(|s| (s - 1.0).abs() < 1e-3));

    let parts = partition_iid(bc.len(), 5, 1).unwrap();
    let mut all: Vec<usize> = parts.iter().flatten().copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..bc.len()).collect::<Vec<_>>());
    assert!(parts.iter().all(|p| p.len() == 113 || p.len() == 114));

    let dg = load_digits(&data("digits.csv.gz")).unwrap();
    let skew = |alpha: f64| -> f64 {
        let parts = partition_dirichlet(dg.labels(), 10, 8, alpha, 3).unwrap();
        let mut all: Vec<usize> = parts.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..dg.len()).collect::<Vec<_>>(),
            "a partition covers every example once"
        );
        // Mean share of each client's most frequent class.
        parts
            .iter()
            .map(|p| {
                let mut c = [0usize; 10];
                for &i in p {
                    c[dg.labels()[i]] += 1;
                }
                *c.iter().max().unwrap() as f64 / p.len() as f64
            })
            .sum::<f64>()
            / parts.len() as f64
    };
    let (low, high) = (skew(0.1), skew(100.0));
    assert!(
        low > 0.5 && high < 0.25,
        "α = 0.1 gives skewed clients ({low}), α = 100 near-IID ({high})"
    );
    let r = partition_dirichlet(dg.labels(), 10, 8, 0.0, 3);
    assert!(
        matches!(&r, Err(NnError::Config(m)) if m.contains("Dirichlet α must be positive")),
        "{r:?}"
    );
    let r = partition_iid(3, 4, 0);
    assert!(
        matches!(&r, Err(NnError::Config(m)) if m.contains("cannot split 3 examples into 4")),
        "{r:?}"
    );
}

#[test]
fn idx_files_parse_and_reject_garbage() {
    let dir = std::env::temp_dir().join(format!("cf-idx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut img = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3];
    img.extend((0..12).map(|i| i * 20));
    std::fs::write(dir.join("img"), &img).unwrap();
    let (x, shape) = load_idx_images(&dir.join("img")).unwrap();
    assert_eq!((x.dim(), shape), ((2, 6), [2, 3]));
    assert!((x[[1, 5]] - 220.0 / 255.0).abs() < 1e-6);
    std::fs::write(dir.join("lab"), [0, 0, 8, 1, 0, 0, 0, 2, 7, 3]).unwrap();
    assert_eq!(load_idx_labels(&dir.join("lab")).unwrap(), vec![7, 3]);
    for bad in [
        &img[..img.len() - 1],
        &img[..5],
        &[1, 2, 3, 4][..],
        &[0, 0, 0x0d, 1, 0, 0, 0, 1, 0][..],
    ] {
        std::fs::write(dir.join("bad"), bad).unwrap();
        assert!(matches!(
            load_idx_images(&dir.join("bad")),
            Err(NnError::Data { .. })
        ));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Needs `../shared/data/mnist`: fails without it unless
/// `CIPHERFLOW_SKIP_MISSING_DATA=1`.
#[test]
fn mnist_loads() {
    let Some(dir) = cipherflow_testkit::mnist() else {
        return;
    };
    let (train, test) = cipherflow_nn::data::load_mnist(&dir).unwrap();
    assert_eq!(
        (train.len(), test.len(), train.shape()),
        (60_000, 10_000, &[1usize, 28, 28][..])
    );
}

#[test]
fn specs_parse_from_toml_and_json_and_reject_unknown_fields() {
    let toml = r#"
input = [1, 8, 8]
layers = [
  { type = "conv2d", out_channels = 4, kernel = [3, 3], padding = 1 },
  { type = "poly", coefficients = [0.0, 0.5, 0.25] },
  { type = "avg_pool2d", kernel = 2 },
  { type = "flatten" },
  { type = "dense", units = 10 },
]"#;
    let spec = ModelSpec::parse(toml).unwrap();
    let model = spec.build(0).unwrap();
    assert_eq!(model.output_shape(), [10]);
    let json = serde_json::to_string(&spec).unwrap();
    assert_eq!(ModelSpec::parse(&json).unwrap(), spec);
    let config_error = |r: Result<_, NnError>| match r {
        Err(NnError::Config(m)) => m,
        Err(e) => panic!("not a configuration error: {e:?}"),
        Ok(()) => panic!("accepted"),
    };
    let m = config_error(
        ModelSpec::parse(r#"{"input":[3],"layers":[{"type":"dense","units":2,"bogus":1}]}"#)
            .map(drop),
    );
    assert!(m.contains("unknown field `bogus`"), "{m}");
    let m = config_error(ModelSpec::parse(r#"{"input":[3],"layers":[{"type":"rnn"}]}"#).map(drop));
    assert!(m.contains("unknown variant `rnn`"), "{m}");
    let m = config_error(
        ModelSpec::parse(
            r#"{"input":[3],"layers":[{"type":"conv2d","out_channels":2,"kernel":3}]}"#,
        )
        .unwrap()
        .build(0)
        .map(drop),
    );
    assert!(
        m.contains("layer 0") && m.contains("conv2d takes [channels, height, width] inputs"),
        "{m}"
    );
    for name in ["logreg", "mlp", "cnn", "tenseal-cnn"] {
        ModelSpec::preset(name, &[1, 28, 28], 10, false)
            .unwrap()
            .build(0)
            .unwrap();
    }
    let d = Dataset::new(ndarray::Array2::zeros((2, 3)), vec![0, 1], vec![3], 2).unwrap();
    let r = d.batch(&[2]);
    assert!(
        matches!(&r, Err(NnError::Config(m)) if m.contains("example 2 out of range")),
        "{r:?}"
    );
}
