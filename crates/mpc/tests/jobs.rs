//! The whole jobs a front end runs (`cipherflow mpc`): private prediction,
//! logistic regression and the matrix product, three parties in one
//! process and one party per session over TLS — what each report holds,
//! and that a party's report holds only what that party may know.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_mpc::jobs::{self, Deployment, PredictJob};
use cipherflow_mpc::programs::logreg::{LogRegConfig, Split};
use cipherflow_mpc::transport::tls::write_credentials;
use cipherflow_mpc::{FixedPoint, MpcError, Network};
use cipherflow_nn::examples;

#[test]
fn a_local_prediction_reports_accuracy_and_agreement_but_no_classes() {
    let (train, test) = examples::digits().unwrap().split(0.2, 7).unwrap();
    let test = test.subset(&(0..40).collect::<Vec<_>>()).unwrap();
    let job = PredictJob {
        train: &train,
        test: &test,
        data: "digits",
        hidden: vec![64],
        epochs: 15,
        latency_reps: 2,
    };
    let r = jobs::predict(
        &Deployment::Local(Network::InProcess),
        &job,
        FixedPoint::default(),
    )
    .unwrap();
    assert_eq!((r.task, r.examples, r.party), ("predict", 40, None));
    assert!(r.agreement.unwrap() >= 0.95, "{r:?}");
    assert!(r.accuracy.unwrap() > 0.8, "{r:?}");
    assert!(r.plaintext_accuracy.is_some());
    assert!(r.classes.is_none() && r.plaintext_classes.is_none());
    assert!(r.bytes > 0 && r.rounds > 0 && r.latency_bytes > 0);
    assert!(r.latency_seconds.is_some());
    assert_eq!(r.bytes, r.ops.values().map(|o| o.bytes).sum::<u64>());
}

#[test]
fn party_processes_report_only_their_own_side() {
    let (train, test) = examples::digits().unwrap().split(0.2, 7).unwrap();
    let test = test.subset(&(0..12).collect::<Vec<_>>()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_credentials(dir.path(), &cipherflow_testkit::free_addresses(3)).unwrap();
    let reports: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|id| {
                let (cfg, train, test) = (&cfg, &train, &test);
                s.spawn(move || {
                    let job = PredictJob {
                        train,
                        test,
                        data: "digits",
                        hidden: vec![16],
                        epochs: 3,
                        latency_reps: 0,
                    };
                    let d = Deployment::Party {
                        id,
                        config: cfg.clone(),
                    };
                    jobs::predict(&d, &job, FixedPoint::default())
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap().unwrap()).collect()
    });
    // The model owner knows its plaintext predictions, the client the
    // private ones, the helper neither; nobody knows both.
    let [owner, client, helper] = [&reports[0], &reports[1], &reports[2]];
    assert!(owner.plaintext_classes.is_some() && owner.classes.is_none());
    assert!(client.classes.is_some() && client.plaintext_classes.is_none());
    assert!(helper.classes.is_none() && helper.plaintext_classes.is_none());
    assert!(reports.iter().all(|r| r.agreement.is_none()));
    assert!(client.accuracy.is_some() && owner.accuracy.is_none());
    let (c, p) = (
        client.classes.as_ref().unwrap(),
        owner.plaintext_classes.as_ref().unwrap(),
    );
    let same = c.iter().zip(p).filter(|(a, b)| a == b).count();
    assert!(same >= 11, "{same} of 12 agree");
    for (id, r) in reports.iter().enumerate() {
        assert_eq!(r.party, Some(id));
    }
}

#[test]
fn logistic_regression_and_matmul_reports() {
    let (train, test) = examples::breast_cancer().unwrap().split(0.2, 3).unwrap();
    let local = Deployment::Local(Network::InProcess);
    let cfg = LogRegConfig {
        iterations: 20,
        lr: 1.0,
    };
    for split in [Split::Rows, Split::Columns] {
        let r = jobs::logreg(&local, &train, &test, split, cfg, FixedPoint::default()).unwrap();
        assert_eq!(r.iterations, 20);
        let a = r.accuracy.unwrap();
        assert!(a > 0.85, "{split:?}: accuracy {a}");
        assert!(r.agreement.unwrap() > 0.97, "{split:?}: {r:?}");
    }
    let m = jobs::matmul::<u64>(&local, 16, FixedPoint::default()).unwrap();
    assert_eq!((m.n, m.ring), (16, 64));
    assert!(m.max_abs_error.unwrap() < 1e-2, "{m:?}");
    for n in [0, jobs::MAX_MATMUL_N + 1] {
        assert!(matches!(
            jobs::matmul::<u64>(&local, n, FixedPoint::default()),
            Err(MpcError::Config(_))
        ));
    }
}
