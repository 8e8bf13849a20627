//! Training on a file read as needed ([`StreamedData`]) is training on the
//! same data in memory: the same minibatches and the same result, gathered
//! a window at a time; DP-SGD draws its Poisson samples over the whole
//! file and is accounted the same; a file that changes under training is
//! an error, not a silent mix.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_nn::data::{load_inputs, Dataset, InputOptions, StreamedData, TrainingData};
use cipherflow_nn::loss::Loss;
use cipherflow_nn::spec::ModelSpec;
use cipherflow_nn::train::{accuracy_data, fit, fit_data, DpSpec, TrainConfig};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The shipped digits as an IDX image file and an IDX label file.
fn digits_idx(dir: &Path) -> (PathBuf, PathBuf) {
    let d = cipherflow_nn::examples::digits().unwrap();
    let images = dir.join("digits-images.idx");
    let labels = dir.join("digits-labels.idx");
    let mut f = std::fs::File::create(&images).unwrap();
    f.write_all(&[0, 0, 8, 3]).unwrap();
    for v in [d.len() as u32, 8, 8] {
        f.write_all(&v.to_be_bytes()).unwrap();
    }
    let px: Vec<u8> = d
        .features()
        .iter()
        .map(|&v| (v * 255.0).round() as u8)
        .collect();
    f.write_all(&px).unwrap();
    let mut f = std::fs::File::create(&labels).unwrap();
    f.write_all(&[0, 0, 8, 1]).unwrap();
    f.write_all(&(d.len() as u32).to_be_bytes()).unwrap();
    let l: Vec<u8> = d.labels().iter().map(|&v| v as u8).collect();
    f.write_all(&l).unwrap();
    (images, labels)
}

fn opts(labels: &Path) -> InputOptions {
    InputOptions {
        labels: Some(labels.to_path_buf()),
        ..InputOptions::default()
    }
}

fn in_memory(images: &Path, labels: &Path) -> Dataset {
    let i = load_inputs(images, &opts(labels)).unwrap();
    Dataset::new(i.features, i.labels.unwrap(), i.shape, 10).unwrap()
}

fn mlp() -> cipherflow_nn::Sequential {
    ModelSpec::parse(
        r#"{"input": [1, 8, 8], "layers": [{"type": "flatten"},
            {"type": "dense", "units": 32}, {"type": "relu"}, {"type": "dense", "units": 10}]}"#,
    )
    .unwrap()
    .build(3)
    .unwrap()
}

#[test]
fn gathered_rows_equal_the_rows_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = digits_idx(dir.path());
    let mem = in_memory(&images, &labels);
    let s = StreamedData::open(&images, &opts(&labels)).unwrap();
    assert_eq!(
        (s.len(), s.shape(), s.num_classes()),
        (mem.len(), mem.shape(), 10)
    );
    let pick = [0, 3, 700, 1796];
    let got = s.rows(&pick).unwrap();
    let want = mem.subset(&pick).unwrap();
    assert_eq!(got.features(), want.features());
    assert_eq!(got.labels(), want.labels());
    // Any order, repeats included.
    let back = [1796, 3, 3, 0];
    assert_eq!(
        s.rows(&back).unwrap().features(),
        mem.subset(&back).unwrap().features()
    );
    assert!(s.rows(&[1797]).is_err(), "past the end");
    // A split is the in-memory split, example for example.
    let (train, test) = s.split(0.2, 9).unwrap();
    let (mtrain, mtest) = mem.split(0.2, 9).unwrap();
    for (a, b) in [(&train, &mtrain), (&test, &mtest)] {
        let all = a.rows(&(0..a.len()).collect::<Vec<_>>()).unwrap();
        assert_eq!(all.features(), b.features());
        assert_eq!(all.labels(), b.labels());
    }
}

/// The same seed gives the same minibatches, so the same model, whether
/// the rows come from memory or from 1 KiB windows (dozens of passes per
/// epoch).
#[test]
fn streamed_training_equals_training_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = digits_idx(dir.path());
    let mem = in_memory(&images, &labels);
    let s = StreamedData::open(&images, &opts(&labels))
        .unwrap()
        .with_window_bytes(64 * 256 * 4);
    assert_eq!(s.window(), 256);
    let cfg = TrainConfig::default_for(2, 64, None);
    let mut a = mlp();
    let mut b = mlp();
    let ra = fit(&mut a, Loss::CrossEntropy, &mem, None, &cfg, &mut |_| {}).unwrap();
    let rb = fit_data(&mut b, Loss::CrossEntropy, &s, Some(&s), &cfg, &mut |_| {}).unwrap();
    assert_eq!(ra.steps, rb.steps);
    for ((na, pa), (nb, pb)) in a.named_params().iter().zip(b.named_params()) {
        assert_eq!(na, &nb);
        assert_eq!(pa.value, pb.value, "{na}");
    }
    let acc = accuracy_data(&mut b, &s).unwrap();
    assert!(acc > 0.6, "{acc}");
    assert_eq!(rb.epochs[1].test_accuracy, Some(acc));
}

/// DP-SGD over a file: Poisson samples of the whole file, several steps'
/// samples per pass, the same accounting as in memory, and it learns.
#[test]
fn dp_sgd_streams_and_is_accounted_as_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = digits_idx(dir.path());
    let mem = in_memory(&images, &labels);
    let s = StreamedData::open(&images, &opts(&labels))
        .unwrap()
        .with_window_bytes(64 * 600 * 4);
    let dp = DpSpec {
        clip: 1.0,
        noise_multiplier: Some(1.0),
        target_epsilon: None,
        delta: 1e-5,
        accountant: cipherflow_nn::train::AccountantKind::Rdp,
    };
    let cfg = TrainConfig::default_for(3, 64, Some(dp));
    let mut a = mlp();
    let mut b = mlp();
    let ra = fit(&mut a, Loss::CrossEntropy, &mem, None, &cfg, &mut |_| {}).unwrap();
    let rb = fit_data(&mut b, Loss::CrossEntropy, &s, None, &cfg, &mut |_| {}).unwrap();
    assert_eq!(ra.steps, rb.steps);
    assert_eq!(ra.epsilon, rb.epsilon);
    let acc = accuracy_data(&mut b, &s).unwrap();
    assert!(acc > 0.6, "{acc}");
}

#[test]
fn a_file_that_changes_under_training_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = digits_idx(dir.path());
    let s = StreamedData::open(&images, &opts(&labels)).unwrap();
    // Cut the file to 100 rows (the header still declares 1,797).
    let bytes = std::fs::read(&images).unwrap();
    std::fs::write(&images, &bytes[..16 + 100 * 64]).unwrap();
    let e = s.rows(&[50, 1000]).unwrap_err().to_string();
    assert!(e.contains("digits-images.idx"), "{e}");
    // A file without labels cannot be trained on.
    let e = StreamedData::open(&images, &InputOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("more than the file holds") || e.contains("no labels"),
        "{e}"
    );
}
