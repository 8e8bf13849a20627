//! The coordinator against the operator's accidents: damaged or deleted
//! state, a second coordinator on the same state. Nothing is lost, and
//! nothing silently wrong is published.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cipherflow_fed::coordinator::Coordinator;
use cipherflow_fed::FedError;
use common::harness::Fed;
use std::path::Path;

#[test]
fn a_flipped_stored_payload_is_never_summed() {
    let mut fed = Fed::new("fault-flip", 3, 2, 2);
    fed.upload_all();
    assert_eq!(fed.coord.current_round(), Some(1));
    let fed = fed
        .restart_coordinator(|dir: &Path| {
            let blob = dir.join("state.blobs/upload-1-client-2.bin");
            let mut b = std::fs::read(&blob).unwrap();
            let k = b.len() / 2;
            b[k] ^= 0x01;
            std::fs::write(&blob, b).unwrap();
        })
        .map_err(|(e, _)| e)
        .unwrap();
    let mut fed = fed;
    let h = fed.coord.history().first().cloned().expect("round 1 ended");
    assert!(h.aborted, "{h:?}");
    let why = h.abort_reason.unwrap();
    assert!(why.contains("damaged") && why.contains("client-2"), "{why}");
    // The federation goes on with the next round.
    fed.upload_all();
    fed.run_decryption(6);
    let h = fed.coord.history().last().cloned().unwrap();
    assert_eq!((h.round, h.aborted, h.contributors), (2, false, 3));
}

#[test]
fn a_deleted_state_with_the_ledger_kept_is_refused() {
    let mut fed = Fed::new("fault-deleted", 3, 2, 3);
    fed.upload_all();
    fed.run_decryption(6);
    assert_eq!(fed.coord.history().len(), 1);
    let (e, _dir) = match fed.restart_coordinator(|dir: &Path| {
        for f in ["state.db", "state.db-wal", "state.db-shm"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
    }) {
        Ok(_) => panic!("a new federation was started over the old ledger"),
        Err(x) => x,
    };
    assert!(
        matches!(&e, FedError::Integrity(m) if m.contains("refusing to start a new federation")),
        "{e}"
    );
}

#[test]
fn a_state_rolled_back_behind_the_ledger_is_refused() {
    let mut fed = Fed::new("fault-rollback", 3, 2, 3);
    fed.upload_all();
    fed.run_decryption(6);
    // A copy of the state after round 1 (round 2 just opened)…
    let coord_dir = fed.dir.path().join("coord");
    let old = fed.dir.path().join("old");
    std::fs::create_dir_all(&old).unwrap();
    for f in ["state.db", "state.db-wal", "state.db-shm"] {
        let _ = std::fs::copy(coord_dir.join(f), old.join(f));
    }
    // …round 2 closes…
    fed.upload_all();
    fed.run_decryption(6);
    assert_eq!(fed.coord.history().len(), 2);
    // …and the old copy is put back (a restored backup, a lost WAL).
    let (e, _dir) = match fed.restart_coordinator(|dir: &Path| {
        for f in ["state.db", "state.db-wal", "state.db-shm"] {
            let _ = std::fs::remove_file(dir.join(f));
            let _ = std::fs::copy(old.join(f), dir.join(f));
        }
    }) {
        Ok(_) => panic!("the coordinator resumed from a state behind its ledger"),
        Err(x) => x,
    };
    assert!(
        matches!(&e, FedError::Integrity(m) if m.contains("lost writes")),
        "{e}"
    );
}

#[test]
fn a_damaged_global_model_is_refused() {
    let mut fed = Fed::new("fault-model", 3, 2, 3);
    fed.upload_all();
    fed.run_decryption(6);
    let (e, _dir) = match fed.restart_coordinator(|dir: &Path| {
        let c = rusqlite::Connection::open(dir.join("state.db")).unwrap();
        c.execute(
            "UPDATE meta SET value = zeroblob(length(value)) WHERE key = 'global'",
            [],
        )
        .unwrap();
    }) {
        Ok(_) => panic!("resumed with a global model that is not the last round's"),
        Err(x) => x,
    };
    assert!(
        matches!(&e, FedError::Integrity(m) if m.contains("global model")),
        "{e}"
    );
}

#[test]
fn a_second_coordinator_on_the_same_state_is_refused() {
    let fed = Fed::new("fault-twice", 3, 2, 1);
    let e = Coordinator::open(fed.coordinator_options())
        .err()
        .expect("locked");
    assert!(matches!(e, FedError::Locked(_)), "{e}");
    // Once the first stops, the state opens again.
    let fed = fed.restart_coordinator(|_| {}).map_err(|(e, _)| e).unwrap();
    assert_eq!(fed.coord.current_round(), None);
}

#[test]
fn a_state_rolled_back_within_a_round_is_refused() {
    // Two rounds: the ledger's last round is the state's last round, but
    // the ledger closed it and the (restored) state did not.
    let mut fed = Fed::new("fault-rollback-2", 3, 2, 2);
    fed.upload_all();
    fed.run_decryption(6);
    fed.upload_all();
    let coord_dir = fed.dir.path().join("coord");
    let old = fed.dir.path().join("old");
    std::fs::create_dir_all(&old).unwrap();
    for f in ["state.db", "state.db-wal", "state.db-shm"] {
        let _ = std::fs::copy(coord_dir.join(f), old.join(f));
    }
    fed.run_decryption(6);
    assert_eq!(fed.coord.history().len(), 2);
    let (e, _dir) = match fed.restart_coordinator(|dir: &Path| {
        for f in ["state.db", "state.db-wal", "state.db-shm"] {
            let _ = std::fs::remove_file(dir.join(f));
            let _ = std::fs::copy(old.join(f), dir.join(f));
        }
    }) {
        Ok(_) => panic!("the coordinator resumed a round its ledger closed"),
        Err(x) => x,
    };
    assert!(
        matches!(&e, FedError::Integrity(m) if m.contains("closed in the ledger")),
        "{e}"
    );
}
