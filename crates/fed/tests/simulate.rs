//! End-to-end federations through the in-process transport.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cipherflow_fed::sim::{simulate, split_among, SimOptions};

#[test]
fn threshold_fedavg_on_breast_cancer() {
    let (train, test) = common::breast_cancer();
    let cfg = common::config("bc-threshold", 5, "");
    let dir = tempfile::tempdir().unwrap();
    let t0 = std::time::Instant::now();
    let report = simulate(SimOptions {
        config: cfg,
        client_data: split_among(&train, 10, Some(0.5), 1).unwrap(),
        eval: Some(test),
        dropout: 0.0,
        dir: dir.path().to_path_buf(),
        synthetic: false,
        on_round: None,
    })
    .unwrap();
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    println!("{:.2} s", t0.elapsed().as_secs_f64());
    assert_eq!(report.rounds, 5);
    assert_eq!(report.ledger, "verified");
    assert!(report.final_accuracy.unwrap() > 0.9);
    assert_eq!(report.counted_proofs_verified, 50);
}
