//! The files a user brings, made by PyTorch, Pillow and onnx
//! (`bench/byo_fixtures.py`): an ONNX model with external data and its
//! preprocessing in the metadata, the same inputs as PNG files in an
//! ImageFolder layout, JPEG, `.npy`, IDX and a CSV table. Each loads to the
//! values PyTorch saw, the model's outputs match PyTorch's, and each kind
//! of broken file gets an error that names what is wrong.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_nn::data::{load_inputs, InputOptions, Inputs};
use cipherflow_nn::io::{self, safetensors, ModelFormat};
use cipherflow_nn::{NnError, Preprocessing, Sequential, Tensor};
use std::path::{Path, PathBuf};

fn byo(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/byo")
        .join(name)
}

struct Reference {
    mean: f32,
    std: f32,
    labels: Vec<usize>,
    names: Vec<String>,
    inputs: Vec<Vec<f32>>,
    outputs: Vec<Vec<f32>>,
    image_outputs: serde_json::Map<String, serde_json::Value>,
    jpeg: serde_json::Map<String, serde_json::Value>,
}

fn reference() -> Reference {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(byo("io.json")).unwrap()).unwrap();
    fn f<T: serde::de::DeserializeOwned>(v: &serde_json::Value, k: &str) -> T {
        serde_json::from_value(v[k].clone()).unwrap()
    }
    Reference {
        mean: f(&v, "mean"),
        std: f(&v, "std"),
        labels: f(&v, "labels"),
        names: f(&v, "class_names"),
        inputs: f(&v, "inputs"),
        outputs: f(&v, "outputs"),
        image_outputs: v["image_outputs"].as_object().unwrap().clone(),
        jpeg: v["jpeg_pixels"].as_object().unwrap().clone(),
    }
}

fn shape() -> InputOptions {
    InputOptions {
        shape: Some(vec![1, 8, 8]),
        ..InputOptions::default()
    }
}

fn predict(model: &mut Sequential, inputs: &Inputs) -> Vec<Vec<f32>> {
    let mut dims = vec![inputs.len()];
    dims.extend(&inputs.shape);
    let t = Tensor::from_shape_vec(
        ndarray::IxDyn(&dims),
        inputs.features.iter().copied().collect(),
    )
    .unwrap();
    let y = model.predict(&t).unwrap();
    y.outer_iter()
        .map(|r| r.iter().copied().collect())
        .collect()
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    for (a, b) in got.iter().zip(want) {
        assert!(
            (a - b).abs() <= 1e-5 * b.abs().max(1.0),
            "{what}: {a} vs PyTorch {b}"
        );
    }
}

#[test]
fn the_exported_model_with_external_data_and_preprocessing_matches_pytorch() {
    let r = reference();
    let f = io::load(&byo("digits_norm_cnn.onnx")).unwrap();
    assert_eq!(f.format, ModelFormat::Onnx);
    let p = f
        .preprocessing
        .clone()
        .expect("preprocessing in metadata_props");
    assert_eq!((p.mean.clone(), p.std.clone()), (vec![r.mean], vec![r.std]));
    assert_eq!(p.class_names.as_deref(), Some(r.names.as_slice()));
    let mut model = f.model;
    // The images, as a user has them: ImageFolder, labels from folders.
    let mut inputs = load_inputs(&byo("images"), &shape()).unwrap();
    assert_eq!(inputs.len(), 8);
    p.apply(&mut inputs.features, &inputs.shape).unwrap();
    inputs.relabel(p.class_names.as_deref()).unwrap();
    let out = predict(&mut model, &inputs);
    for (i, id) in inputs.ids.iter().enumerate() {
        let want: Vec<f32> =
            serde_json::from_value(r.image_outputs[&format!("images/{id}")].clone()).unwrap();
        assert_close(&out[i], &want, id);
    }
    // Folder names became the model's class indices.
    let mut labels = inputs.labels.clone().unwrap();
    let mut want = r.labels.clone();
    labels.sort_unstable();
    want.sort_unstable();
    assert_eq!(labels, want);
    // The embedded copy without metadata loads the same weights.
    let plain = io::load(&byo("digits_norm_cnn_plain.onnx")).unwrap();
    assert!(plain.preprocessing.is_none());
    let mut plain = plain.model;
    assert_eq!(predict(&mut plain, &inputs), out);
}

#[test]
fn npy_idx_and_csv_give_the_values_pytorch_saw() {
    let r = reference();
    let opts = InputOptions {
        labels: Some(byo("labels-idx1-ubyte.gz")),
        ..shape()
    };
    let npy = load_inputs(&byo("inputs.npy"), &opts).unwrap();
    let idx = load_inputs(&byo("inputs-idx3-ubyte.gz"), &opts).unwrap();
    // np.savez_compressed(x=…, y=…): the labels come from the archive.
    let npz = load_inputs(&byo("inputs.npz"), &shape()).unwrap();
    assert_eq!(npz.labels.as_deref(), Some(r.labels.as_slice()));
    let npz0 = load_inputs(&byo("inputs_arr0.npz"), &shape()).unwrap();
    assert!(npz0.labels.is_none());
    let csv = load_inputs(
        &byo("table.csv"),
        &InputOptions {
            label_column: Some("label".into()),
            id_column: Some("id".into()),
            ..shape()
        },
    )
    .unwrap();
    for (what, x) in [
        ("npy", &npy),
        ("idx", &idx),
        ("csv", &csv),
        ("npz", &npz),
        ("npz arr_0", &npz0),
    ] {
        assert_eq!(x.shape, vec![1, 8, 8], "{what}");
        for (row, want) in x.features.outer_iter().zip(&r.inputs) {
            assert_close(&row.to_vec(), want, what);
        }
    }
    assert_eq!(npy.labels.as_deref(), Some(r.labels.as_slice()));
    assert_eq!(idx.labels.as_deref(), Some(r.labels.as_slice()));
    assert_eq!(csv.ids.first().map(String::as_str), Some("patient-0"));
    let mut csv = csv;
    csv.relabel(Some(&r.names)).unwrap();
    assert_eq!(csv.labels.as_deref(), Some(r.labels.as_slice()));
    // The batch through the model, normalized as PyTorch did.
    let f = io::load(&byo("digits_norm_cnn.onnx")).unwrap();
    let mut model = f.model;
    let mut x = npy;
    f.preprocessing
        .unwrap()
        .apply(&mut x.features, &x.shape)
        .unwrap();
    for (got, want) in predict(&mut model, &x).iter().zip(&r.outputs) {
        assert_close(got, want, "npy batch");
    }
}

#[test]
fn jpeg_and_single_files_load() {
    let r = reference();
    for (rel, want) in &r.jpeg {
        let want: Vec<f32> = serde_json::from_value(want.clone()).unwrap();
        let x = load_inputs(&byo(rel), &shape()).unwrap();
        assert_eq!(
            (x.len(), x.ids[0].as_str()),
            (1, Path::new(rel).file_name().unwrap().to_str().unwrap())
        );
        // Two JPEG decoders agree to within a grey level or two.
        let diff = x
            .features
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff <= 3.0 / 255.0, "{rel}: {diff}");
    }
    let flat = load_inputs(&byo("jpeg"), &shape()).unwrap();
    assert_eq!((flat.len(), flat.labels.is_none()), (2, true));
}

fn data_error(e: NnError) -> String {
    match e {
        NnError::Data { reason, .. } => reason,
        NnError::Config(m) | NnError::ModelFile(m) => m,
        other => panic!("unexpected error {other}"),
    }
}

#[test]
fn broken_and_hostile_files_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let put = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    // An image of another size than the model takes.
    let wrong = load_inputs(
        &byo("images/zero/0.png"),
        &InputOptions {
            shape: Some(vec![1, 28, 28]),
            ..InputOptions::default()
        },
    );
    assert!(data_error(wrong.unwrap_err()).contains("8×8"));
    // A PNG cut short; a file of no known kind.
    let png = std::fs::read(byo("images/zero/0.png")).unwrap();
    let cut = put("cut.png", &png[..png.len() / 2]);
    assert!(data_error(load_inputs(&cut, &shape()).unwrap_err()).contains("image"));
    let junk = put("x.bin", b"hello");
    assert!(data_error(load_inputs(&junk, &shape()).unwrap_err()).contains("not a PNG"));
    // An IDX header that declares more than the file holds.
    let mut idx = vec![0, 0, 8, 3];
    for d in [1000u32, 8, 8] {
        idx.extend(d.to_be_bytes());
    }
    idx.extend([0u8; 64]);
    let short = put("short-idx3-ubyte", &idx);
    assert!(data_error(load_inputs(&short, &shape()).unwrap_err()).contains("do not match"));
    // Billions of inputs of no values in an empty payload (found by the
    // data_files fuzzer: each would have got an id before this check).
    let empty = put("empty-idx3-ubyte", &[0, 0, 8, 2, 0x7e, 0, 0, 0, 0, 0, 0, 0]);
    assert!(
        data_error(load_inputs(&empty, &InputOptions::default()).unwrap_err())
            .contains("hold no values")
    );
    // CSV: the first bad row and column are named; a missing column too.
    let csv = put("t.csv", b"id,a,b,label\nx,1,2,one\ny,3,oops,two\n");
    let e = load_inputs(
        &csv,
        &InputOptions {
            label_column: Some("label".into()),
            id_column: Some("id".into()),
            ..InputOptions::default()
        },
    )
    .unwrap_err();
    let m = data_error(e);
    assert!(
        m.contains("row 3") && m.contains("\"b\"") && m.contains("oops"),
        "{m}"
    );
    let e = load_inputs(
        &csv,
        &InputOptions {
            label_column: Some("diagnosis".into()),
            ..InputOptions::default()
        },
    )
    .unwrap_err();
    assert!(data_error(e).contains("no label column \"diagnosis\""));
    // Labels the model does not name.
    let mut x = load_inputs(&byo("images"), &shape()).unwrap();
    let e = x
        .relabel(Some(&["cat".to_string(), "dog".to_string()]))
        .unwrap_err();
    assert!(data_error(e).contains("not one of the model's classes"));
    // A label file of another length.
    let e = load_inputs(
        &byo("inputs.npy"),
        &InputOptions {
            labels: Some(byo("labels-idx1-ubyte.gz")),
            shape: Some(vec![1, 8, 8]),
            ..InputOptions::default()
        },
    );
    assert!(e.is_ok());
    let e = load_inputs(
        &byo("jpeg/0.jpg"),
        &InputOptions {
            labels: Some(byo("labels-idx1-ubyte.gz")),
            ..shape()
        },
    )
    .unwrap_err();
    assert!(data_error(e).contains("8 labels for 1 inputs"));
}

#[test]
fn external_data_outside_the_folder_or_beyond_the_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = std::fs::read(byo("digits_norm_cnn.onnx")).unwrap();
    let data = std::fs::read(byo("digits_norm_cnn.onnx.data")).unwrap();
    // The data file missing, cut short, or named outside the folder.
    let lone = dir.path().join("m.onnx");
    std::fs::write(&lone, &model).unwrap();
    assert!(matches!(io::load(&lone), Err(NnError::Io { .. })));
    std::fs::write(
        dir.path().join("digits_norm_cnn.onnx.data"),
        &data[..data.len() / 2],
    )
    .unwrap();
    let m = data_error(io::load(&lone).unwrap_err());
    assert!(m.contains("beyond"), "{m}");
    let escaping = String::from_utf8_lossy(&model)
        .contains("digits_norm_cnn.onnx.data")
        .then(|| {
            let mut b = model.clone();
            let at = b
                .windows(25)
                .position(|w| w == b"digits_norm_cnn.onnx.data")
                .unwrap();
            b[at..at + 3].copy_from_slice(b"../");
            b
        })
        .unwrap();
    let sneaky = dir.path().join("sneaky.onnx");
    std::fs::write(&sneaky, escaping).unwrap();
    let m = data_error(io::load(&sneaky).unwrap_err());
    assert!(m.contains("inside the model's folder"), "{m}");
    // From bytes alone there is no folder to read from.
    let e = cipherflow_nn::io::onnx::import_bytes(&model).unwrap_err();
    assert!(data_error(e).contains("external file"));
}

/// The eight inputs normalized as PyTorch did, and PyTorch's outputs
/// under `key` in io.json.
fn normalized_inputs_and(key: &str) -> (Inputs, Vec<Vec<f32>>) {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(byo("io.json")).unwrap()).unwrap();
    let want: Vec<Vec<f32>> = serde_json::from_value(v[key].clone()).unwrap();
    let p = Preprocessing::normalize(
        vec![v["mean"].as_f64().unwrap() as f32],
        vec![v["std"].as_f64().unwrap() as f32],
    )
    .unwrap();
    let mut x = load_inputs(&byo("inputs.npy"), &shape()).unwrap();
    p.apply(&mut x.features, &x.shape).unwrap();
    (x, want)
}

#[test]
fn batch_norm_folds_exactly_whether_pytorch_fused_it_or_not() {
    let (x, want) = normalized_inputs_and("bn_outputs");
    for name in ["bn_cnn.onnx", "bn_cnn_unfolded.onnx"] {
        let mut model = io::load(&byo(name)).unwrap().model;
        // The BatchNormalization nodes left no layer behind.
        assert_eq!(model.layers().len(), 7, "{name}");
        for (got, want) in predict(&mut model, &x).iter().zip(&want) {
            assert_close(got, want, name);
        }
    }
}

#[test]
fn gelu_imports_from_both_export_forms_and_matches_pytorch() {
    let (x, want) = normalized_inputs_and("gelu_outputs");
    for name in ["gelu_mlp13.onnx", "gelu_mlp20.onnx"] {
        let mut model = io::load(&byo(name)).unwrap().model;
        // Flatten, Dense, GELU, Dense: the five opset-13 nodes are one layer.
        assert_eq!(model.layers().len(), 4, "{name}");
        for (got, want) in predict(&mut model, &x).iter().zip(&want) {
            assert_close(got, want, name);
        }
    }
}

#[test]
fn every_unsupported_node_is_listed_in_one_error() {
    // A HardSwish and, made from the LeakyRelu before it, a Selu: each
    // node is named, not just the first.
    use cipherflow_nn::io::onnx::{import_bytes, ModelProto};
    use prost::Message;
    let bytes = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/unsupported.onnx"),
    )
    .unwrap();
    let mut m = ModelProto::decode(bytes.as_slice()).unwrap();
    let g = m.graph.as_mut().unwrap();
    let leaky = g
        .node
        .iter_mut()
        .find(|n| n.op_type() == "LeakyRelu")
        .unwrap();
    leaky.op_type = Some("Selu".into());
    let e = import_bytes(&m.encode_to_vec()).unwrap_err();
    let NnError::UnsupportedOnnx(nodes) = e else {
        panic!("{e}")
    };
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    assert!(nodes[0].contains("(Selu)"), "{nodes:?}");
    assert!(nodes[1].contains("(HardSwish)"), "{nodes:?}");
}

#[test]
fn preprocessing_round_trips_through_safetensors() {
    let f = io::load(&byo("digits_norm_cnn.onnx")).unwrap();
    let p = f.preprocessing.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    safetensors::save_with(&f.model, Some(&p), &path).unwrap();
    let back = io::load(&path).unwrap();
    assert_eq!(back.format, ModelFormat::Safetensors);
    assert_eq!(back.preprocessing, Some(p));
    let none = dir.path().join("n.safetensors");
    safetensors::save(&back.model, &none).unwrap();
    assert_eq!(
        io::load(&none).unwrap().preprocessing,
        None::<Preprocessing>
    );
}

#[test]
fn exported_onnx_reads_back_to_the_same_model() {
    let mut x = load_inputs(&byo("inputs.npy"), &shape()).unwrap();
    Preprocessing::normalize(vec![0.3], vec![0.4])
        .unwrap()
        .apply(&mut x.features, &x.shape)
        .unwrap();
    let torch_digits =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch_digits.onnx");
    let models = [
        byo("digits_norm_cnn.onnx"),
        byo("bn_cnn.onnx"),
        byo("gelu_mlp13.onnx"),
        byo("relu_mlp.onnx"),
        // conv, ReLU, max pooling, x², average pooling, sigmoid, tanh
        torch_digits,
    ];
    let dir = tempfile::tempdir().unwrap();
    for path in models {
        let f = io::load(&path).unwrap();
        let mut model = f.model;
        let out = dir.path().join("m.onnx");
        cipherflow_nn::io::onnx_export::save(&model, f.preprocessing.as_ref(), &out).unwrap();
        let back = io::load(&out).unwrap();
        assert_eq!(back.format, ModelFormat::Onnx);
        assert_eq!(back.preprocessing, f.preprocessing, "{}", path.display());
        let mut again = back.model;
        assert_eq!(again.layers().len(), model.layers().len());
        assert_eq!(
            predict(&mut again, &x),
            predict(&mut model, &x),
            "{}",
            path.display()
        );
    }
    // A polynomial activation has no ONNX operator: refused, not mangled.
    let poly = cipherflow_nn::spec::ModelSpec {
        input: vec![4],
        layers: vec![cipherflow_nn::spec::LayerSpec::Poly {
            coefficients: vec![0.0, 1.0, 0.5],
            trainable: false,
        }],
    }
    .build(0)
    .unwrap();
    let e = cipherflow_nn::io::onnx_export::export(&poly, None).unwrap_err();
    assert!(data_error(e).contains("polynomial"));
}

#[test]
fn streamed_chunks_equal_the_whole_load() {
    use cipherflow_nn::data::stream_inputs;
    let label_file = InputOptions {
        labels: Some(byo("labels-idx1-ubyte.gz")),
        ..shape()
    };
    let table = InputOptions {
        label_column: Some("label".into()),
        id_column: Some("id".into()),
        ..shape()
    };
    for (input, opts) in [
        ("images", shape()),
        ("inputs.npy", label_file.clone()),
        ("inputs-idx3-ubyte.gz", label_file),
        ("table.csv", table),
    ] {
        let whole = load_inputs(&byo(input), &opts).unwrap();
        let chunks: Vec<Inputs> = stream_inputs(&byo(input), &opts, 3)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let rows: Vec<f32> = chunks
            .iter()
            .flat_map(|c| c.features.iter().copied())
            .collect();
        assert_eq!(
            rows,
            whole.features.iter().copied().collect::<Vec<_>>(),
            "{input}"
        );
        let ids: Vec<String> = chunks.iter().flat_map(|c| c.ids.clone()).collect();
        assert_eq!(ids, whole.ids, "{input}");
        let labels: Option<Vec<usize>> = chunks
            .iter()
            .map(|c| c.labels.clone())
            .collect::<Option<Vec<_>>>()
            .map(|v| v.concat());
        assert_eq!(labels, whole.labels, "{input}");
        if input != "table.csv" {
            assert!(chunks.iter().all(|c| c.len() <= 3), "{input}");
        }
    }
    // A stream cut short says how many inputs it declared.
    let dir = tempfile::tempdir().unwrap();
    let mut idx = vec![0, 0, 8, 3];
    for d in [1000u32, 8, 8] {
        idx.extend(d.to_be_bytes());
    }
    idx.extend([0u8; 64 * 5]);
    // Uncompressed, the file's size is checked when it is opened …
    let p = dir.path().join("short-idx3-ubyte");
    std::fs::write(&p, &idx).unwrap();
    let e = stream_inputs(&p, &shape(), 4).err().unwrap();
    assert!(data_error(e).contains("more than the file holds"));
    // … gzip-compressed, when the stream runs dry.
    let gz = dir.path().join("short-idx3-ubyte.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, &idx).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    let r: Result<Vec<Inputs>, _> = stream_inputs(&gz, &shape(), 4).unwrap().collect();
    assert!(data_error(r.unwrap_err()).contains("declares"));
}
