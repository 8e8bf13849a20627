//! Private training of neural networks: one step against the nn crate's
//! plaintext step (every layer's gradient), and whole trainings on the
//! shipped digits, split by rows and by columns.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_mpc::jobs::{split_dataset, train_model, Deployment, NnTrainJob};
use cipherflow_mpc::programs::logreg::Split;
use cipherflow_mpc::programs::train::{check_trainable, NnTrainConfig};
use cipherflow_mpc::{FixedPoint, Network};
use cipherflow_nn::data::Dataset;
use cipherflow_nn::optim::Optimizer;
use cipherflow_nn::spec::ModelSpec;
use cipherflow_nn::train::{default_loss, plain_step};
use cipherflow_nn::{examples, Sequential};

fn digits() -> (Dataset, Dataset) {
    examples::digits().unwrap().split(0.2, 7).unwrap()
}

fn model(spec: &str, seed: u64) -> Sequential {
    ModelSpec::parse(spec).unwrap().build(seed).unwrap()
}

/// Every layer kind training supports: conv (padding, stride 1), ReLU,
/// average pooling, flatten, dense, x².
const ALL_LAYERS: &str = r#"{"input": [1, 8, 8], "layers": [
    {"type": "conv2d", "out_channels": 3, "kernel": 3, "padding": 1},
    {"type": "relu"},
    {"type": "avg_pool2d", "kernel": 2},
    {"type": "conv2d", "out_channels": 4, "kernel": 2, "stride": 2},
    {"type": "square"},
    {"type": "flatten"},
    {"type": "dense", "units": 16},
    {"type": "relu"},
    {"type": "dense", "units": 10}
]}"#;

fn params(m: &Sequential) -> Vec<f32> {
    m.named_params()
        .iter()
        .flat_map(|(_, p)| p.value.iter().copied().collect::<Vec<_>>())
        .collect()
}

#[test]
fn one_private_step_equals_the_plaintext_step_within_the_softmax_bound() {
    let (train, _) = digits();
    let data = train.subset(&(0..64).collect::<Vec<_>>()).unwrap();
    let init = model(ALL_LAYERS, 3);
    check_trainable(&init).unwrap();
    let lr = 0.5;
    // Plaintext: one SGD step on the mean gradient of the 64 examples.
    let mut plain = init.clone();
    let mut opt = Optimizer::sgd(lr as f32, 0.0, 0.0).unwrap();
    let loss = default_loss(&plain);
    let all: Vec<usize> = (0..64).collect();
    plain_step(&mut plain, loss, &data, &all, &mut opt, None).unwrap();
    // Private: the same step, the 64 examples split between the owners.
    let shards = split_dataset(&data, Split::Rows);
    let job = NnTrainJob {
        model: Some(&init),
        preprocessing: None,
        shards: [Some(&shards[0]), Some(&shards[1])],
        split: Split::Rows,
        cfg: NnTrainConfig {
            epochs: 1,
            batch_size: 64,
            lr,
            momentum: 0.0,
            seed: 1,
            reveal_to: vec![0],
        },
        test: None,
    };
    let fp = FixedPoint::new::<u128>(20).unwrap();
    let out = train_model::<u128>(&Deployment::Local(Network::InProcess), &job, fp).unwrap();
    let private = out.model.expect("owner A learns the model");
    let (p0, pp, pq) = (params(&init), params(&plain), params(&private));
    let step = p0
        .iter()
        .zip(&pp)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    let err = pp
        .iter()
        .zip(&pq)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    // The softmax is within 5e-3 per probability; through the mean
    // gradient and lr = 0.5 the parameters move by ≤ lr·5e-3·max|h|
    // per layer; the step itself is hundreds of times larger.
    eprintln!("step {step}, error {err}");
    assert!(err < 1e-2, "private step differs by {err} (step {step})");
    assert!(step > 30.0 * err, "step {step} vs error {err}");
}

fn train(spec: &str, split: Split, epochs: usize, lr: f64) -> cipherflow_mpc::jobs::NnTrainReport {
    let (train, test) = digits();
    let init = model(spec, 5);
    let shards = split_dataset(&train, split);
    let job = NnTrainJob {
        model: Some(&init),
        preprocessing: None,
        shards: [Some(&shards[0]), Some(&shards[1])],
        split,
        cfg: NnTrainConfig {
            epochs,
            batch_size: 64,
            lr,
            momentum: 0.9,
            seed: 2,
            reveal_to: vec![0, 1],
        },
        test: Some(&test),
    };
    let fp = FixedPoint::new::<u128>(20).unwrap();
    let out = train_model::<u128>(&Deployment::Local(Network::InProcess), &job, fp).unwrap();
    assert!(out.model.is_some());
    eprintln!(
        "{split:?}: accuracy {:?} (plaintext {:?}), {:.1} s, {} bytes, {} rounds",
        out.report.test_accuracy,
        out.report.plaintext_accuracy,
        out.report.seconds,
        out.report.bytes,
        out.report.rounds
    );
    out.report
}

const MLP: &str = r#"{"input": [1, 8, 8], "layers": [
    {"type": "flatten"}, {"type": "dense", "units": 32}, {"type": "relu"},
    {"type": "dense", "units": 10}]}"#;

#[test]
fn an_mlp_learns_the_digits_split_by_rows_and_by_columns() {
    for split in [Split::Rows, Split::Columns] {
        let r = train(MLP, split, 8, 0.05);
        let (acc, plain) = (r.test_accuracy.unwrap(), r.plaintext_accuracy.unwrap());
        assert!(acc > 0.9, "{split:?}: {acc}");
        assert!(
            (acc - plain).abs() < 0.02,
            "{split:?}: {acc} vs plaintext {plain}"
        );
        assert_eq!(r.examples, 1438);
        assert!(r.bytes > 0 && r.rounds > 0);
    }
}

/// A small CNN: convolution, ReLU, average pooling, dense.
const CNN: &str = r#"{"input": [1, 8, 8], "layers": [
    {"type": "conv2d", "out_channels": 6, "kernel": 3, "padding": 1},
    {"type": "relu"},
    {"type": "avg_pool2d", "kernel": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 10}]}"#;

#[test]
fn a_cnn_learns_the_digits() {
    let r = train(CNN, Split::Rows, 3, 0.1);
    let (acc, plain) = (r.test_accuracy.unwrap(), r.plaintext_accuracy.unwrap());
    assert!(acc > 0.8, "{acc}");
    assert!((acc - plain).abs() < 0.02, "{acc} vs plaintext {plain}");
}

#[test]
fn layers_training_cannot_run_are_refused_by_name() {
    let maxpool = r#"{"input": [1, 8, 8], "layers": [
        {"type": "max_pool2d", "kernel": 2}, {"type": "flatten"},
        {"type": "dense", "units": 10}]}"#;
    let e = check_trainable(&model(maxpool, 0)).unwrap_err().to_string();
    assert!(
        e.contains("layer 0") && e.contains("average pooling"),
        "{e}"
    );
}
