//! The coordinator against the operator's accidents: damaged or deleted
//! state, a second coordinator on the same state. Nothing is lost, and
//! nothing silently wrong is published.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cipherflow_fed::Coordinator;
use cipherflow_fed::FedError;
use cipherflow_fed::StateLocation;
use common::harness::{on_both, on_postgres, Fed};
use std::path::Path;

const STATE_FILES: [&str; 3] = ["state.db", "state.db-wal", "state.db-shm"];

/// Copies the coordinator's state files (a backup, or putting one back).
fn copy_state(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in STATE_FILES {
        let _ = std::fs::remove_file(to.join(f));
        let _ = std::fs::copy(from.join(f), to.join(f));
    }
}

#[test]
fn a_flipped_stored_payload_is_never_summed() {
    on_both("flip", flipped_payload);
}

fn flipped_payload() {
    let mut fed = Fed::new("fault-flip", 3, 2, 2);
    fed.upload_all();
    assert_eq!(fed.coord.current_round(), Some(1));
    let blob = common::payload_dir(&fed).join("segment-1-1.bin");
    let fed = fed
        .restart_coordinator(|_: &Path| {
            // Each client uploaded alone: client-2's payload is the
            // round's second segment (see `store::upload_segment`).
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
    on_both("deleted", deleted_state);
}

fn deleted_state() {
    let mut fed = Fed::new("fault-deleted", 3, 2, 3);
    fed.upload_all();
    fed.run_decryption(6);
    assert_eq!(fed.coord.history().len(), 1);
    let state = fed.state.clone();
    let (e, _dir) = match fed.restart_coordinator(|dir: &Path| {
        if let StateLocation::Postgres {
            schema: Some(s), ..
        } = &state
        {
            common::pg_exec(&state, &format!("DROP SCHEMA {s} CASCADE"));
            return;
        }
        for f in STATE_FILES {
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

/// The state's tables (a backup of a Postgres state copies them).
const TABLES: [&str; 7] = [
    "meta", "clients", "keysetup", "rounds", "uploads", "shares", "history",
];

/// Backs up a Postgres state into the schema `{schema}_old`, or puts that
/// backup back (a restore from an older dump).
fn pg_backup(state: &StateLocation, restore: bool) {
    let StateLocation::Postgres {
        schema: Some(s), ..
    } = state
    else {
        panic!("a Postgres state in its own schema")
    };
    if !restore {
        common::pg_exec(state, &format!("CREATE SCHEMA {s}_old"));
    }
    for t in TABLES {
        if restore {
            common::pg_exec(state, &format!("DELETE FROM {s}.{t}"));
            common::pg_exec(
                state,
                &format!("INSERT INTO {s}.{t} SELECT * FROM {s}_old.{t}"),
            );
        } else {
            common::pg_exec(state, &format!("CREATE TABLE {s}_old.{t} AS TABLE {s}.{t}"));
        }
    }
}

#[test]
fn a_state_rolled_back_behind_the_ledger_is_refused() {
    on_both("rollback", rolled_back_state);
}

fn rolled_back_state() {
    let mut fed = Fed::new("fault-rollback", 3, 2, 3);
    fed.upload_all();
    fed.run_decryption(6);
    // A copy of the state after round 1 (round 2 just opened)…
    let old = fed.dir.path().join("old");
    let state = fed.state.clone();
    let postgres = matches!(state, StateLocation::Postgres { .. });
    if postgres {
        pg_backup(&state, false);
    } else {
        copy_state(&fed.dir.path().join("coord"), &old);
    }
    // …round 2 closes…
    fed.upload_all();
    fed.run_decryption(6);
    assert_eq!(fed.coord.history().len(), 2);
    // …and the old copy is put back (a restored backup, a lost WAL).
    let (e, _dir) = match fed.restart_coordinator(|dir: &Path| {
        if postgres {
            pg_backup(&state, true);
        } else {
            copy_state(&old, dir);
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
    on_both("model", damaged_model);
}

fn damaged_model() {
    let mut fed = Fed::new("fault-model", 3, 2, 3);
    fed.upload_all();
    fed.run_decryption(6);
    let state = fed.state.clone();
    let (e, _dir) = match fed.restart_coordinator(|dir: &Path| {
        if let StateLocation::Postgres { .. } = state {
            common::pg_exec(
                &state,
                "UPDATE meta SET value = decode(repeat('00', length(value)), 'hex') \
                 WHERE key = 'global'",
            );
            return;
        }
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
    on_both("twice", second_coordinator);
}

fn second_coordinator() {
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
    let old = fed.dir.path().join("old");
    copy_state(&fed.dir.path().join("coord"), &old);
    fed.run_decryption(6);
    assert_eq!(fed.coord.history().len(), 2);
    let (e, _dir) = match fed.restart_coordinator(|dir: &Path| copy_state(&old, dir)) {
        Ok(_) => panic!("the coordinator resumed a round its ledger closed"),
        Err(x) => x,
    };
    assert!(
        matches!(&e, FedError::Integrity(m) if m.contains("closed in the ledger")),
        "{e}"
    );
}

/// Holds the ledger's write lock from another connection until dropped:
/// the coordinator's next ledger append fails after SQLite's busy timeout,
/// after its state write succeeded — a write failing half-way.
struct LedgerLocked {
    _conn: rusqlite::Connection,
}

impl LedgerLocked {
    fn new(path: &Path) -> Self {
        let c = rusqlite::Connection::open(path).unwrap();
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        Self { _conn: c }
    }
}

/// Key setup, where the ledger's key-setup entry fails to be written after
/// the state recorded the phase change; returns whether every client got
/// a complete, provable key setup.
fn key_setup_with_a_failing_ledger(recover: bool) -> bool {
    use cipherflow_fed::Action;
    use cipherflow_fed::Recovering;
    let cfg = common::config("fault-ledger", 1, "threshold = 2\nquorum = 3");
    let mut fed = Fed::unjoined(cfg, 3);
    fed.join_all();
    let ledger = fed.coordinator_options().ledger;
    // The federation's coordinator behind crash-only recovery.
    let placeholder = fed.restart_coordinator(|_| {}).map_err(|(e, _)| e).unwrap();
    let Fed {
        coord,
        mut clients,
        clock,
        cfg,
        roster,
        dir,
        ..
    } = placeholder;
    let mut rc = Recovering::new(coord);
    if recover {
        let clock_fn = clock.clock();
        let (cfg2, roster2, dir2) = (cfg.clone(), roster.clone(), dir.path().to_path_buf());
        rc.set_reopen(Box::new(move || {
            cipherflow_fed::Coordinator::open(cipherflow_fed::CoordinatorOptions {
                config: cfg2.clone(),
                roster: roster2.clone(),
                state: dir2.join("coord/state.db").into(),
                ledger: dir2.join("coord/ledger.db"),
                signer: common::harness::signer(),
                eval: None,
                clock: clock_fn.clone(),
            })
        }));
    }
    let req = |c: &cipherflow_fed::ClientAgent| cipherflow_fed::messages::TaskRequest {
        federation: cfg.name.clone(),
        wait_ms: 0,
        known_tree_size: c.known_tree_size(),
    };
    for (i, c) in clients.iter_mut().enumerate() {
        let r = req(c);
        let id = c.id().to_string();
        let t = rc.run(|k| k.next_task(&id, &r)).unwrap();
        let Action::PostKeySetup(p) = c.handle(&t).unwrap() else {
            panic!("no dealing")
        };
        let lock = (i == 2).then(|| LedgerLocked::new(&ledger));
        let out = rc.run(|k| k.post_key_setup(&id, &p));
        if lock.is_some() {
            assert!(out.is_err(), "the ledger write should have failed");
        }
        drop(lock);
    }
    let mut complete = true;
    for c in clients.iter_mut() {
        let q = c.key_setup_query();
        let id = c.id().to_string();
        let ok = rc
            .run(|k| k.get_key_setup(&id, &q))
            .ok()
            .and_then(|b| c.on_key_setup(&b).ok())
            .unwrap_or(false);
        complete &= ok;
    }
    drop((rc, clock, dir));
    complete
}

#[test]
fn a_write_failing_half_way_is_recovered_by_reopening() {
    // Without recovery, the coordinator believes the key setup complete,
    // but the ledger lacks its entry: the clients refuse the key setup.
    assert!(!key_setup_with_a_failing_ledger(false));
    // Reopened from disk, the coordinator writes the missing entry.
    assert!(key_setup_with_a_failing_ledger(true));
}

#[test]
fn a_coordinator_with_no_live_client_opens_no_rounds() {
    let mut fed = Fed::new("fault-idle", 3, 2, 5);
    fed.upload_all();
    fed.run_decryption(6);
    assert_eq!(fed.coord.current_round(), Some(2));
    // Every client goes silent: round 2 is aborted at its deadline…
    for _ in 0..8 {
        fed.clock.advance(fed.cfg.round_timeout_s * 1.01);
        fed.coord.tick().unwrap();
    }
    let h = fed.coord.history().to_vec();
    assert_eq!(h.len(), 2);
    assert!(h[1].aborted);
    // …and no round is opened for nobody, however long it waits.
    for _ in 0..20 {
        fed.clock.advance(fed.cfg.round_timeout_s * 1.01);
        fed.coord.tick().unwrap();
    }
    assert_eq!(fed.coord.current_round(), None);
    assert_eq!(fed.coord.history().len(), 2);
    // A client comes back: the next round opens.
    fed.task(0);
    fed.coord.tick().unwrap();
    assert_eq!(fed.coord.current_round(), Some(3));
}

#[test]
fn a_lost_postgres_connection_is_recovered_by_reopening() {
    on_postgres("conn", lost_connection);
}

/// The database restarts (or a network blip drops the connection) in the
/// middle of a round: the next call fails as a storage failure, the
/// coordinator is reopened from the state, and the round completes with
/// every update counted once.
fn lost_connection() {
    use cipherflow_fed::{Action, Recovering};
    let mut fed = Fed::new("fault-pg-conn", 3, 2, 1);
    fed.open_round();
    for i in 0..2 {
        assert!(fed.step(i), "client {i} uploads");
    }
    let StateLocation::Postgres {
        schema: Some(schema),
        ca: None,
        ..
    } = fed.state.clone()
    else {
        panic!("a Postgres federation")
    };
    let opts = fed.coordinator_options();
    let reopen_state = fed.state.clone();
    let (cfg, roster, ledger, clock) = (opts.config, opts.roster, opts.ledger, fed.clock.clock());
    let placeholder = fed.restart_coordinator(|_| {}).map_err(|(e, _)| e).unwrap();
    let Fed {
        coord,
        mut clients,
        clock: _clock,
        dir: _dir,
        ..
    } = placeholder;
    let mut rc = Recovering::new(coord);
    rc.set_reopen(Box::new(move || {
        Coordinator::open(cipherflow_fed::CoordinatorOptions {
            config: cfg.clone(),
            roster: roster.clone(),
            state: reopen_state.clone(),
            ledger: ledger.clone(),
            signer: common::harness::signer(),
            eval: None,
            clock: clock.clone(),
        })
    }));
    let killed = common::pg_exec(
        &fed_state(&schema),
        &format!(
            "SELECT pg_terminate_backend(pid)::text FROM pg_stat_activity \
             WHERE application_name = 'cipherflow-coordinator/{schema}'"
        ),
    );
    assert_eq!(
        killed,
        vec!["true".to_string()],
        "one coordinator connection"
    );
    // The last client's upload: the first try meets the dead connection.
    let req = cipherflow_fed::messages::TaskRequest {
        federation: "fault-pg-conn".into(),
        wait_ms: 0,
        known_tree_size: clients[2].known_tree_size(),
    };
    let id = clients[2].id().to_string();
    let task = rc.run(|k| k.next_task(&id, &req)).unwrap();
    let Action::Upload(chunks) = clients[2].handle(&task).unwrap() else {
        panic!("client-3 should upload")
    };
    let e = rc.run(|k| k.upload(&id, &chunks)).err();
    assert!(
        matches!(e, Some(FedError::Postgres(_))),
        "the dead connection is noticed: {e:?}"
    );
    // The client retries; the reopened coordinator accepts it.
    let receipt = rc.run(|k| k.upload(&id, &chunks)).unwrap();
    clients[2].on_receipt(&receipt).unwrap();
    // The two uploads from before the failure were not lost.
    assert_eq!(rc.get().unwrap().current_uploads(), 3);
}

fn fed_state(schema: &str) -> StateLocation {
    StateLocation::Postgres {
        url: std::env::var(common::PG_ENV).unwrap(),
        schema: Some(schema.to_string()),
        ca: None,
    }
}

/// A hospital whose own disk fails (its state file cannot be written —
/// here its directory is a file until the operator fixes it) sends
/// nothing it has not recorded, retries, and completes the federation
/// once the disk is back: over real gRPC with mutual TLS.
#[test]
fn a_client_whose_disk_fails_retries_and_completes() {
    use cipherflow_fed::Phase;
    use std::time::Duration;
    let fed = common::tls::TlsFederation::start("bc-disk", 3, 2);
    // Client 1's state directory is a file: every write of its state fails.
    let broken = fed.dir.path().join("client-1-disk");
    std::fs::write(&broken, b"not a directory").unwrap();
    let handles = fed.run_clients(|pki, id| {
        if id == "client-1" {
            broken.join("state.json")
        } else {
            pki.join("clients").join(id).join("state.json")
        }
    });
    // The key setup cannot complete without client 1; nothing moves.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        matches!(
            fed.server.with(|c| c.phase().clone()).unwrap(),
            Phase::KeySetup
        ),
        "the federation went on without client 1's durable key setup"
    );
    assert!(!broken.join("state.json").exists());
    // The disk is back.
    std::fs::remove_file(&broken).unwrap();
    std::fs::create_dir(&broken).unwrap();
    for (id, h) in fed.names.iter().zip(handles) {
        let s = h
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("{id} gave up: {e}"));
        assert_eq!((s.uploads, s.counted_proofs), (2, 2), "{id}");
    }
    assert!(broken.join("state.json").exists());
    let hist = fed.server.with(|c| c.history().to_vec()).unwrap();
    assert_eq!(hist.len(), 2);
    assert!(hist.iter().all(|h| h.contributors == 3 && !h.aborted));
}
