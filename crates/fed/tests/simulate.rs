//! End-to-end federations through the in-process transport: accuracy,
//! dropouts at every stage, the key-service mode, DP budgets, and the
//! audit log verifying afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cipherflow_fed::sim::{simulate, split_among, DropStage, SimOptions, SimReport};
use cipherflow_fed::FedError;
use cipherflow_fed::FederationConfig;
use cipherflow_nn::data::Dataset;
use cipherflow_nn::NnError;

fn run(
    cfg: FederationConfig,
    clients: usize,
    plan: Option<Box<dyn Fn(u64, usize) -> DropStage>>,
) -> SimReport {
    let (train, test) = common::breast_cancer();
    let dir = tempfile::tempdir().unwrap();
    simulate(SimOptions {
        config: cfg,
        client_data: split_among(&train, clients, Some(0.5), 1).unwrap(),
        eval: Some(test),
        dropout: 0.0,
        dir: dir.path().to_path_buf(),
        state: None,
        synthetic: false,
        on_round: None,
        dropout_plan: plan,
        regions: 0,
    })
    .unwrap()
}

#[test]
fn threshold_fedavg_on_breast_cancer() {
    let report = run(common::config("bc-threshold", 5, ""), 10, None);
    assert_eq!(report.rounds, 5);
    assert_eq!(report.ledger, "verified");
    // t = 6 of 10; each sum decrypted by t + 1 = 7 holders, checked.
    assert!(
        report.final_accuracy.unwrap() > 0.9,
        "{:?}",
        report.final_accuracy
    );
    assert_eq!(report.counted_proofs_verified, 50);
    assert!(report
        .history
        .iter()
        .all(|h| h.contributors == 10 && h.decryptors == 7 && h.attempts == 1));
}

/// The plaintext baseline trains the same federation (model, split, local
/// training) to the same accuracy; with DP or another strategy it refuses
/// (it would not be the same federation).
#[test]
fn the_plaintext_baseline_trains_what_the_encrypted_federation_trains() {
    let cfg = common::config("bc-baseline", 5, "");
    let encrypted = run(cfg.clone(), 10, None);
    let (train, test) = common::breast_cancer();
    let dir = tempfile::tempdir().unwrap();
    let data = split_among(&train, 10, Some(0.5), 1).unwrap();
    let plain =
        cipherflow_fed::baseline::plaintext_training(&cfg, &data, Some(&test), dir.path()).unwrap();
    assert_eq!(plain.round_seconds.len(), 5);
    let (a, b) = (
        encrypted.final_accuracy.unwrap(),
        *plain.accuracy.last().unwrap(),
    );
    assert!(
        b > 0.9 && (a - b).abs() < 0.03,
        "encrypted {a}, plaintext {b}"
    );
    let dp = common::config(
        "bc-baseline-dp",
        5,
        "[dp]\nepsilon = 3.0\ndelta = 1e-5\nclip = 1.0",
    );
    let e = cipherflow_fed::baseline::plaintext_training(&dp, &data, None, dir.path()).unwrap_err();
    assert!(
        matches!(&e, FedError::Config(m) if m.contains("differential privacy")),
        "{e}"
    );
}

#[test]
fn thirty_percent_dropout_at_every_stage_does_not_stop_rounds() {
    // Each round, three of ten clients drop: one before uploading, one
    // right after uploading, one before sending its decryption share (if
    // asked, the coordinator retries with other key holders).
    let plan = |round: u64, i: usize| -> DropStage {
        let k = (i + round as usize) % 10;
        match k {
            0 => DropStage::BeforeUpload,
            1 => DropStage::AfterUpload,
            2 => DropStage::BeforeShare,
            _ => DropStage::None,
        }
    };
    let report = run(
        common::config("bc-dropout", 4, ""),
        10,
        Some(Box::new(plan)),
    );
    assert_eq!(report.rounds, 4);
    assert_eq!(report.ledger, "verified");
    for h in &report.history {
        assert!(!h.aborted, "{h:?}");
        assert_eq!(h.contributors, 9, "round {}", h.round);
        assert_eq!(h.decryptors, 7, "checked: t + 1");
    }
    // The share dropper and the post-upload dropper are picked as
    // decryptors in some rounds: those rounds took a second attempt.
    assert!(report.history.iter().any(|h| h.attempts > 1));
}

#[test]
fn below_quorum_a_round_is_aborted_not_decrypted() {
    // Five of ten clients never upload: quorum 6 is not reached, nothing is
    // decrypted, the next round proceeds.
    let plan = |round: u64, i: usize| {
        if round == 1 && i < 5 {
            DropStage::BeforeUpload
        } else {
            DropStage::None
        }
    };
    let report = run(common::config("bc-quorum", 2, ""), 10, Some(Box::new(plan)));
    assert!(report.history[0].aborted);
    assert_eq!(report.history[0].decryptors, 0);
    assert!(!report.history[1].aborted);
    assert_eq!(report.ledger, "verified");
}

#[test]
fn silent_key_holders_abort_the_round_after_bounded_attempts() {
    // Round 1: five of ten clients upload but never send a decryption
    // share, so only five key holders answer (t = 6). After
    // `decrypt_attempts` attempts the round is aborted, charged to the
    // budgets, and round 2 proceeds.
    let plan = |round: u64, i: usize| {
        if round == 1 && i < 5 {
            DropStage::BeforeShare
        } else {
            DropStage::None
        }
    };
    let report = run(
        common::config("bc-silent", 2, "decrypt_attempts = 3"),
        10,
        Some(Box::new(plan)),
    );
    let first = &report.history[0];
    assert!(first.aborted);
    assert_eq!(first.attempts, 3, "{first:?}");
    assert!(!report.history[1].aborted);
    assert_eq!(report.history[1].contributors, 10);
    assert_eq!(report.ledger, "verified");
}

#[test]
fn key_service_mode() {
    let report = run(
        common::config("bc-kms", 3, "keys = \"key-service\""),
        6,
        None,
    );
    assert_eq!(report.rounds, 3);
    assert!(report
        .history
        .iter()
        .all(|h| h.decryptors == 1 && h.contributors == 6));
    assert_eq!(report.ledger, "verified");
    assert!(report.final_accuracy.unwrap() > 0.85);
}

#[test]
fn dp_budgets_are_enforced_and_logged() {
    let cfg = common::config("bc-dp", 6, "[dp]\nepsilon = 3.0\nclient_epsilon = 2.0\n");
    let report = run(cfg, 10, None);
    // The per-client budget (ε = 2 over the rounds a client took part in)
    // runs out before the six planned rounds.
    assert!(report.rounds < 6, "{} rounds", report.rounds);
    assert!(
        report.finished.contains("privacy budget"),
        "{}",
        report.finished
    );
    let e = report.epsilon.unwrap();
    assert!(e > 0.0 && e <= 3.0);
    assert_eq!(report.ledger, "verified");
}

#[test]
fn simulated_data_is_validated() {
    let (train, _) = common::breast_cancer();
    let e = split_among(&train, 1000, Some(0.01), 1).unwrap_err();
    assert!(
        matches!(&e, FedError::Nn(NnError::Config(m)) if m.contains("into 1000 clients")),
        "{e}"
    );
    let empty: Vec<Dataset> = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let r = simulate(SimOptions {
        config: common::config("bc-empty", 1, ""),
        client_data: empty,
        eval: None,
        dropout: 0.0,
        dir: dir.path().to_path_buf(),
        state: None,
        synthetic: false,
        on_round: None,
        dropout_plan: None,
        regions: 0,
    });
    // No client: refused before anything runs.
    assert!(
        matches!(&r, Err(FedError::Config(m)) if m.contains("roster needs 1..=")),
        "{:?}",
        r.as_ref().err()
    );
}

#[test]
fn server_optimizers_train() {
    for (kind, extra) in [
        ("fedprox", "mu = 0.1"),
        ("fedadam", "server_lr = 0.1"),
        ("fedyogi", "server_lr = 0.1"),
    ] {
        let cfg = common::config(
            &format!("bc-{kind}"),
            4,
            &format!("[strategy]\nkind = \"{kind}\"\n{extra}\n"),
        );
        let report = run(cfg, 6, None);
        assert_eq!(report.ledger, "verified");
        let acc = report.final_accuracy.unwrap();
        assert!(acc > 0.85, "{kind}: {acc}");
    }
}
