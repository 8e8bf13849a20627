#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Private prediction and private logistic regression against plaintext.

use cipherflow_mpc::programs::logreg::{
    accuracy, plaintext_logreg, private_logreg, split_owners, LogRegConfig, Scaling, Split,
};
use cipherflow_mpc::programs::predict::{
    features_f64, private_predict, train_mlp, CLIENT, MODEL_OWNER,
};
use cipherflow_mpc::{run_local, FixedPoint, Network};
use cipherflow_nn::data::{load_breast_cancer, load_digits};
use std::path::PathBuf;

fn data_dir() -> PathBuf {
    cipherflow_testkit::shipped("")
}

#[test]
fn private_prediction_agrees_with_plaintext_on_digits() {
    let all = load_digits(&data_dir().join("digits.csv.gz")).unwrap();
    let (train, test) = all.split(0.2, 7).unwrap();
    let mut model = train_mlp(&train, &[64], 15, 1).unwrap();
    let plain = cipherflow_nn::train::predict(&mut model, &test).unwrap();
    let x = features_f64(&test);
    let run = run_local::<u64, _, _>(Network::InProcess, FixedPoint::default(), |p| {
        private_predict(
            p,
            (p.id() == MODEL_OWNER).then_some(&model),
            (p.id() == CLIENT).then_some(&x),
        )
    })
    .unwrap();
    assert!(run.outputs[0].is_none() && run.outputs[2].is_none());
    let private = run.outputs[1].as_ref().unwrap();
    let agree = private.iter().zip(&plain).filter(|(a, b)| a == b).count();
    let acc = private
        .iter()
        .zip(test.labels())
        .filter(|(a, b)| a == b)
        .count();
    eprintln!(
        "digits: {} test examples, agreement {agree}, accuracy {:.4}, {:.3} s, {} bytes, {} rounds",
        test.len(),
        acc as f64 / test.len() as f64,
        run.seconds,
        run.stats.bytes(),
        run.stats.rounds()
    );
    assert!(
        agree as f64 >= 0.999 * test.len() as f64,
        "agreement {agree}/{}",
        test.len()
    );
    assert!(acc as f64 > 0.9 * test.len() as f64);
}

#[test]
fn private_logistic_regression_matches_plaintext_for_both_splits() {
    let all = load_breast_cancer(&data_dir().join("breast_cancer.csv")).unwrap();
    let (train, test) = all.split(0.2, 3).unwrap();
    let xtr = features_f64(&train);
    let ytr: Vec<f64> = train.labels().iter().map(|&c| c as f64).collect();
    let xte = features_f64(&test);
    let yte: Vec<f64> = test.labels().iter().map(|&c| c as f64).collect();
    let cfg = LogRegConfig {
        iterations: 30,
        lr: 1.0,
    };
    let sc = Scaling::fit(&xtr);
    let (pw, pb) = plaintext_logreg(&sc.apply(&xtr), &ytr, cfg);
    let plain_acc = accuracy(&sc.apply(&xte), &yte, &pw, pb);
    for split in [Split::Rows, Split::Columns] {
        let owners = split_owners(&xtr, &ytr, split);
        let run = run_local::<u64, _, _>(Network::InProcess, FixedPoint::default(), |p| {
            private_logreg(p, split, owners.get(p.id()), cfg)
        })
        .unwrap();
        assert!(run.outputs[2].is_none());
        let a = run.outputs[0].as_ref().unwrap();
        let b = run.outputs[1].as_ref().unwrap();
        assert_eq!(a.w, b.w);
        // Evaluate with the plaintext scaling (equal to the joint one).
        let acc = accuracy(&sc.apply(&xte), &yte, &a.w, a.b);
        // Against the plaintext reference (float gradient descent on the
        // same standardised data), not only the other party's copy.
        assert_eq!(pw.len(), 30, "one weight per feature");
        assert_eq!(a.w.len(), pw.len());
        let wdiff =
            a.w.iter()
                .zip(&pw)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, |m: f64, d| if d.is_nan() || d > m { d } else { m });
        let bdiff = (a.b - pb).abs();
        eprintln!(
            "{split:?}: private {acc:.4} plaintext {plain_acc:.4}, max |Δw| {wdiff:.4}, |Δb| {bdiff:.4}, {:.3} s, {} bytes, {} rounds",
            run.seconds,
            run.stats.bytes(),
            run.stats.rounds()
        );
        assert!(
            (acc - plain_acc).abs() <= 0.01,
            "{split:?}: {acc} vs {plain_acc}"
        );
        // Measured with 16 fractional bits: max |Δw| = 0.0030 and |Δb| ≈
        // 0.0027 for both splits, the same on repeated runs (largest |w|
        // 0.72); 0.01 leaves a factor of three.
        assert!(
            wdiff <= 0.01 && bdiff <= 0.01,
            "{split:?}: max |Δw| {wdiff}, |Δb| {bdiff}"
        );
        if split == Split::Rows {
            let m = &a.scaling.mean;
            assert_eq!(m.len(), sc.mean.len());
            assert!(!m.is_empty());
            assert!(m
                .iter()
                .zip(&sc.mean)
                .all(|(x, y)| (x - y).abs() < 1e-3 * y.abs().max(1.0)));
        }
    }
}

/// Trains an MLP for one epoch and classifies 1,000 MNIST test images
/// (≈ 4 s). Needs `../shared/data/mnist`: fails without it unless
/// `CIPHERFLOW_SKIP_MISSING_DATA=1`.
#[test]
fn private_prediction_agrees_with_plaintext_on_mnist() {
    let Some(dir) = cipherflow_testkit::mnist() else {
        return;
    };
    let (train, test) = cipherflow_nn::data::load_mnist(&dir).unwrap();
    let test = test.subset(&(0..1000).collect::<Vec<_>>()).unwrap();
    let mut model = train_mlp(&train, &[128, 128], 1, 1).unwrap();
    let plain = cipherflow_nn::train::predict(&mut model, &test).unwrap();
    let x = features_f64(&test);
    let run = run_local::<u64, _, _>(Network::InProcess, FixedPoint::default(), |p| {
        private_predict(
            p,
            (p.id() == MODEL_OWNER).then_some(&model),
            (p.id() == CLIENT).then_some(&x),
        )
    })
    .unwrap();
    let private = run.outputs[1].as_ref().unwrap();
    let agree = private.iter().zip(&plain).filter(|(a, b)| a == b).count();
    eprintln!("mnist: agreement {agree}/1000, {:.2} s", run.seconds);
    assert!(agree >= 999, "agreement {agree}/1000");
}
