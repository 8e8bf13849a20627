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
    assert!(r.classes.is_none());
    assert!(r.bytes > 0 && r.rounds > 0 && r.latency_bytes > 0);
    assert!(r.latency_seconds.is_some());
    assert_eq!(r.bytes, r.ops.values().map(|o| o.bytes).sum::<u64>());
}

/// Three party processes (threads over TLS), each with only what it owns:
/// the model owner its model, the data owner its inputs, the helper
/// nothing. Only the data owner learns the classes (those of the
/// plaintext model); the others' reports hold counters only. The
/// benchmark harness, which holds everything, refuses to run as a party.
#[test]
fn party_processes_bring_only_their_own_side() {
    let (train, test) = examples::digits().unwrap().split(0.2, 7).unwrap();
    let test = test.subset(&(0..12).collect::<Vec<_>>()).unwrap();
    let mut model = cipherflow_mpc::programs::predict::train_mlp(&train, &[16], 3, 1).unwrap();
    let plain = cipherflow_nn::train::predict(&mut model, &test).unwrap();
    let inputs = cipherflow_nn::data::Inputs {
        ids: (0..test.len()).map(|i| format!("x{i}")).collect(),
        features: test.features().clone(),
        shape: test.shape().to_vec(),
        labels: Some(test.labels().to_vec()),
        class_names: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_credentials(dir.path(), &cipherflow_testkit::free_addresses(3)).unwrap();
    let reports: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|id| {
                let (cfg, model, inputs) = (&cfg, &model, &inputs);
                s.spawn(move || {
                    let job = jobs::ModelPredictJob {
                        model: (id == 0).then_some(model),
                        inputs: (id == 1).then_some(inputs),
                        ..Default::default()
                    };
                    let d = Deployment::Party {
                        id,
                        config: cfg.clone(),
                    };
                    jobs::predict_model(&d, &job, FixedPoint::default())
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap().unwrap()).collect()
    });
    let [owner, client, helper] = [&reports[0], &reports[1], &reports[2]];
    assert_eq!(client.classes.as_ref().unwrap(), &plain);
    assert!(client.accuracy.is_some());
    for r in [owner, helper] {
        assert!(r.classes.is_none() && r.accuracy.is_none());
    }
    for (id, r) in reports.iter().enumerate() {
        assert_eq!((r.party, r.inputs), (Some(id), 12));
    }
    let job = PredictJob {
        train: &train,
        test: &test,
        data: "digits",
        hidden: vec![16],
        epochs: 1,
        latency_reps: 0,
    };
    let d = Deployment::Party {
        id: 0,
        config: cfg.clone(),
    };
    assert!(jobs::predict(&d, &job, FixedPoint::default()).is_err());
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
