#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Each check of the verifiers made to fire on its own, and the error it
//! gives asserted: the ε audit (a mechanism changed between rounds, steps,
//! partial participation, the tolerance's edges), heads that go back,
//! consistency proofs against a forked log, and the "input names this
//! update" cross-check of a counted proof.

mod common;

use cipherflow_ledger::entry::{
    inputs_root, AggregateComputed, ClientEpsilon, CustomEntry, DpAccounting, DpSettings,
    EntryBody, RoundClosed, RoundOpened, UpdateReceived,
};
use cipherflow_ledger::{
    verify_log, AggregateInput, CountedProof, Entry, EpsilonRecompute, Failure, Hash,
    InclusionProof, Ledger, Location, MerkleTree, Problem, ProofError, ProofFailure, TreeHead,
    VerifyOptions, VerifyReport,
};
use common::*;
use std::collections::BTreeMap;
use std::path::Path;

/// One round of an ε-audit log: its DP settings and each client's steps.
struct Round {
    dp: DpSettings,
    clients: Vec<(&'static str, u64)>,
}

/// Writes rounds 1.., reporting each ε with `report` (global, then per client).
fn eps_log(path: &Path, rounds: &[Round], report: &dyn EpsilonRecompute) {
    let mut log = Ledger::create(path, "eps", signer()).unwrap();
    for (i, r) in rounds.iter().enumerate() {
        let round = i as u64 + 1;
        log.append(
            round,
            EntryBody::RoundOpened(RoundOpened {
                parameters: BTreeMap::new(),
                participants: vec![],
                dp: r.dp.clone(),
            }),
        )
        .unwrap();
        let clients = r
            .clients
            .iter()
            .map(|&(id, steps)| ClientEpsilon {
                client_id: id.into(),
                steps,
                epsilon: report.client_epsilon(&r.dp, steps).unwrap(),
            })
            .collect();
        log.append(
            round,
            EntryBody::RoundClosed(RoundClosed {
                model_hash: [0; 32],
                epsilon_global: report.epsilon(&r.dp, r.dp.steps_cumulative).unwrap(),
                clients,
            }),
        )
        .unwrap();
    }
}

fn check(
    path: &Path,
    acct: Option<&dyn EpsilonRecompute>,
    tol: f64,
) -> Result<VerifyReport, Failure> {
    let opts = VerifyOptions {
        epsilon: acct,
        epsilon_tolerance: tol,
        ..VerifyOptions::default()
    };
    verify_log(path, &signer().public_key(), &opts)
}

fn epsilon_failure(f: &Failure, index: u64, needle: &str) {
    assert_eq!(f.location, Location::Entry { index }, "{f}");
    match &f.problem {
        Problem::Epsilon(m) => assert!(m.contains(needle), "{m:?} lacks {needle:?}"),
        other => panic!("expected an ε failure, got {other}"),
    }
}

/// An accountant that takes every accountant name (so that a change of name
/// reaches the mechanism check, not an accountant error).
fn any_accountant(s: &DpSettings, steps: u64) -> Result<f64, String> {
    Ok(s.sampling_rate * (steps as f64).sqrt() / s.noise_multiplier - s.delta.ln() / 100.0)
}

fn two_rounds(change: impl Fn(&mut DpSettings)) -> Vec<Round> {
    let mut second = dp(2);
    change(&mut second);
    vec![
        Round {
            dp: dp(1),
            clients: vec![("a", STEPS)],
        },
        Round {
            dp: second,
            clients: vec![("a", 2 * STEPS)],
        },
    ]
}

#[test]
fn a_mechanism_changed_between_rounds_is_refused_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let acct = any_accountant;
    type Change = (&'static str, fn(&mut DpSettings));
    let changes: [Change; 4] = [
        ("accountant", |d| d.accountant = DpAccounting::Pld),
        ("sampling rate", |d| d.sampling_rate *= 2.0),
        ("noise multiplier", |d| d.noise_multiplier += 0.5),
        ("delta", |d| d.delta /= 10.0),
    ];
    for (what, change) in changes {
        let path = dir.path().join(format!("{what}.db"));
        eps_log(&path, &two_rounds(change), &acct);
        // Round 2 opens at entry 2 (round 1 is an opening and a closing).
        let f = check(&path, Some(&acct), 1e-6).unwrap_err();
        epsilon_failure(&f, 2, "changes (accountant, q, σ, δ)");
        // The check belongs to the ε audit: without an accountant the log
        // verifies, and the report says ε was not checked.
        let r = check(&path, None, 1e-6).unwrap();
        assert!(!r.epsilon_checked, "{what}");
    }
    // Unchanged settings verify, every round checked.
    let path = dir.path().join("same.db");
    eps_log(&path, &two_rounds(|_| {}), &acct);
    assert_eq!(
        check(&path, Some(&acct), 1e-6)
            .unwrap()
            .rounds_epsilon_checked,
        2
    );
}

#[test]
fn a_client_reporting_more_steps_than_were_taken_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let acct = any_accountant;
    let round = |steps| {
        vec![Round {
            dp: dp(1),
            clients: vec![("a", STEPS), ("b", steps)],
        }]
    };
    let path = dir.path().join("all.db");
    eps_log(&path, &round(STEPS), &acct);
    check(&path, Some(&acct), 1e-6).unwrap();
    // ε reported consistently with the accountant for 11 steps: only the
    // step count can be wrong.
    let path = dir.path().join("more.db");
    eps_log(&path, &round(STEPS + 1), &acct);
    let f = check(&path, Some(&acct), 1e-6).unwrap_err();
    epsilon_failure(&f, 1, "reports 11 steps, more than the 10 taken in all");
}

/// Client-level accounting: a client's ε carries no sampling amplification,
/// so it differs from the global ε for the same steps.
struct ClientLevel;

impl EpsilonRecompute for ClientLevel {
    fn epsilon(&self, s: &DpSettings, steps: u64) -> Result<f64, String> {
        any_accountant(s, steps)
    }
    fn client_epsilon(&self, s: &DpSettings, steps: u64) -> Result<f64, String> {
        Ok(steps as f64 / s.noise_multiplier)
    }
}

#[test]
fn partial_participation_is_audited_with_the_client_level_accountant() {
    let dir = tempfile::tempdir().unwrap();
    // "b" skips round 1, "c" leaves after it.
    let rounds = vec![
        Round {
            dp: dp(1),
            clients: vec![("a", STEPS), ("c", STEPS)],
        },
        Round {
            dp: dp(2),
            clients: vec![("a", 2 * STEPS), ("b", STEPS), ("c", STEPS)],
        },
    ];
    let path = dir.path().join("ok.db");
    eps_log(&path, &rounds, &ClientLevel);
    let r = check(&path, Some(&ClientLevel), 1e-6).unwrap();
    assert_eq!(r.rounds_epsilon_checked, 2);
    // Reports computed with the global formula are caught, naming a client.
    let path = dir.path().join("global-formula.db");
    eps_log(&path, &rounds, &any_accountant);
    let f = check(&path, Some(&ClientLevel), 1e-6).unwrap_err();
    epsilon_failure(&f, 1, "client \"a\" reported ε");
    // A closure accountant audits clients with its one formula, at each
    // client's own step count: "b" at 10 steps in round 2, not 20.
    let acct = any_accountant;
    check(&path, Some(&acct), 1e-6).unwrap();
    let path = dir.path().join("client-level.db");
    eps_log(&path, &rounds, &ClientLevel);
    let f = check(&path, Some(&acct), 1e-6).unwrap_err();
    epsilon_failure(&f, 1, "client \"a\" reported ε");
}

/// An accountant giving `value` whatever the settings, and a log reporting
/// `reported` for the round and its one client.
fn tolerance_case(
    dir: &Path,
    name: &str,
    value: f64,
    reported: f64,
    tol: f64,
) -> Result<VerifyReport, Failure> {
    let path = dir.join(format!("{name}.db"));
    let report = move |_: &DpSettings, _: u64| Ok(reported);
    eps_log(
        &path,
        &[Round {
            dp: dp(1),
            clients: vec![("a", STEPS)],
        }],
        &report,
    );
    let acct = move |_: &DpSettings, _: u64| Ok(value);
    check(&path, Some(&acct), tol)
}

#[test]
fn the_epsilon_tolerance_is_relative_above_one_absolute_below_and_inclusive() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    // |2.5 − 2| = 0.5 = 0.25 · 2: on the edge, accepted; one ulp more is not.
    tolerance_case(d, "edge", 2.0, 2.5, 0.25).unwrap();
    let over = f64::from_bits(2.5f64.to_bits() + 1);
    let f = tolerance_case(d, "over", 2.0, over, 0.25).unwrap_err();
    epsilon_failure(&f, 1, "reported global ε");
    let f = tolerance_case(d, "under", 2.0, 1.5 - 1e-12, 0.25).unwrap_err();
    epsilon_failure(&f, 1, "reported global ε");
    // Below 1 the tolerance is absolute: 0.25 · max(1, 0.5) = 0.25.
    tolerance_case(d, "small-edge", 0.5, 0.75, 0.25).unwrap();
    tolerance_case(d, "small-below", 0.5, 0.3, 0.25).unwrap();
    let f = tolerance_case(d, "small-over", 0.5, 0.76, 0.25).unwrap_err();
    epsilon_failure(&f, 1, "reported global ε");
    // Exact agreement with zero tolerance.
    tolerance_case(d, "exact", 3.0, 3.0, 0.0).unwrap();
    let f =
        tolerance_case(d, "zero-tol", 3.0, f64::from_bits(3f64.to_bits() + 1), 0.0).unwrap_err();
    epsilon_failure(&f, 1, "reported global ε");
    // ε = ∞ (no privacy) matches only ∞: a finite report of an infinite ε
    // is a lie the relative tolerance (∞ · tol) must not accept.
    tolerance_case(d, "inf", f64::INFINITY, f64::INFINITY, 1e-6).unwrap();
    let f = tolerance_case(d, "inf-lie", f64::INFINITY, 5.0, 1e-6).unwrap_err();
    epsilon_failure(&f, 1, "reported global ε 5");
    let f = tolerance_case(d, "inf-report", 5.0, f64::INFINITY, 1e-6).unwrap_err();
    epsilon_failure(&f, 1, "reported global ε inf");
}

fn note(i: u8) -> EntryBody {
    EntryBody::Custom(CustomEntry {
        kind: "note".into(),
        data: vec![i],
    })
}

#[test]
fn a_head_smaller_than_the_previous_one_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let mut log = Ledger::create(&path, "heads", signer()).unwrap();
    log.set_auto_sign(false);
    for i in 0..10 {
        log.append(0, note(i)).unwrap();
    }
    let h10 = log.sign_head().unwrap();
    let seq = log.head_count().unwrap();
    // A head for 8 entries, validly signed and dated after the head for 10,
    // stored after it: the log went back.
    let back = signer().sign(TreeHead {
        log_id: log.log_id(),
        tree_size: 8,
        root_hash: log.root_at(8).unwrap(),
        timestamp_ms: h10.timestamp_ms + 1,
    });
    drop(log);
    raw(&path)
        .execute(
            "INSERT INTO heads (seq, tree_size, timestamp_ms, root_hash, signature) VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![
                seq as i64,
                8i64,
                back.timestamp_ms as i64,
                back.root_hash.to_vec(),
                back.signature.to_vec()
            ],
        )
        .unwrap();
    let f = check(&path, None, 1e-6).unwrap_err();
    assert_eq!(f.location, Location::Head { seq, tree_size: 8 }, "{f}");
    match &f.problem {
        Problem::HeadOrder(m) => assert!(m.contains("smaller than the previous head"), "{m}"),
        other => panic!("expected a head-order failure, got {other}"),
    }
}

#[test]
fn a_consistency_proof_against_a_forked_log_fails() {
    let dir = tempfile::tempdir().unwrap();
    let make = |name: &str, fork: u8| {
        let mut log = Ledger::create(&dir.path().join(name), "fork", signer()).unwrap();
        for i in 0..10u8 {
            log.append(0, note(if i == 3 { fork } else { i })).unwrap();
        }
        log
    };
    let honest = make("a.db", 3);
    let forked = make("b.db", 99);
    let p = honest.consistency_proof(5, 10).unwrap();
    let (old, new) = (honest.root_at(5).unwrap(), honest.root_at(10).unwrap());
    assert_eq!(p.verify(&old, &new), Ok(()));
    // The forked log agrees on nothing from entry 3: its old root, its new
    // root, or both fail, and each failure names the root it missed.
    let (f_old, f_new) = (forked.root_at(5).unwrap(), forked.root_at(10).unwrap());
    assert_eq!(p.verify(&f_old, &new), Err(ProofError::OldRootMismatch));
    assert_eq!(p.verify(&old, &f_new), Err(ProofError::RootMismatch));
    assert!(p.verify(&f_old, &f_new).is_err());
    // Its own proof does not link the honest old root to its new root.
    let q = forked.consistency_proof(5, 10).unwrap();
    assert_eq!(q.verify(&old, &f_new), Err(ProofError::OldRootMismatch));
    // A proof whose sizes were altered, or with a hash dropped, fails.
    let mut bad = p.clone();
    bad.old_size = 4;
    assert!(bad.verify(&old, &new).is_err());
    let mut bad = p.clone();
    bad.path.pop();
    assert_eq!(bad.verify(&old, &new), Err(ProofError::WrongLength));
}

/// Builds, signed with the log key, a one-round "log" whose aggregate
/// commits to `inputs`, and the counted proof for the update at index 1
/// (client "a", hash [1; 32]) using `inputs[pos]`. A dishonest log writer
/// can sign such a log; the proof must still not call the update counted.
fn counted_with(inputs: &[AggregateInput], pos: usize) -> CountedProof {
    let id = cipherflow_ledger::log_id(&signer().public_key(), "crafted");
    let upd = |client: &str, hash: Hash| {
        EntryBody::UpdateReceived(UpdateReceived {
            client_id: client.into(),
            ciphertext_hash: hash,
        })
    };
    let bodies = [
        EntryBody::RoundOpened(RoundOpened {
            parameters: BTreeMap::new(),
            participants: vec![],
            dp: dp(1),
        }),
        upd("a", [1; 32]),
        upd("b", [2; 32]),
        EntryBody::AggregateComputed(AggregateComputed {
            aggregate_hash: [9; 32],
            input_count: inputs.len() as u64,
            inputs_root: inputs_root(inputs),
        }),
    ];
    let mut tree = MerkleTree::new();
    let mut bytes = Vec::new();
    for (i, body) in bodies.into_iter().enumerate() {
        let e = Entry {
            index: i as u64,
            round: 1,
            timestamp_ms: 1000,
            prev_hash: [0; 32],
            body,
        };
        let b = e.encode();
        tree.push(cipherflow_ledger::merkle::leaf_hash(&b));
        bytes.push(b);
    }
    let size = tree.len();
    let sth = signer().sign(TreeHead {
        log_id: id,
        tree_size: size,
        root_hash: tree.root(),
        timestamp_ms: 1000,
    });
    let incl = |i: u64| InclusionProof {
        leaf_index: i,
        tree_size: size,
        path: tree.inclusion_proof(i, size).unwrap(),
    };
    let leaves: Vec<Hash> = inputs.iter().map(AggregateInput::leaf_hash).collect();
    CountedProof {
        sth,
        update_entry: bytes[1].clone(),
        update_inclusion: incl(1),
        aggregate_entry: bytes[3].clone(),
        aggregate_inclusion: incl(3),
        input: inputs[pos].clone(),
        input_position: pos as u64,
        input_path: cipherflow_ledger::merkle::inclusion_path_of(&leaves, pos as u64).unwrap(),
    }
}

#[test]
fn an_aggregate_input_differing_from_the_update_in_one_field_is_not_a_count() {
    let input = |update_index, client: &str, hash| AggregateInput {
        update_index,
        client_id: client.into(),
        ciphertext_hash: hash,
    };
    let honest = input(1, "a", [1; 32]);
    // Each near miss differs from the update in exactly one field, and is a
    // real member of the signed aggregate (its Merkle path verifies).
    let inputs = vec![
        honest.clone(),
        input(2, "a", [1; 32]),
        input(1, "b", [1; 32]),
        input(1, "a", [2; 32]),
    ];
    let key = signer().public_key();
    let counted = counted_with(&inputs, 0).verify(&key, None).unwrap();
    assert_eq!((counted.update_index, counted.input_count), (1, 4));
    for (pos, field) in [(1, "index"), (2, "client"), (3, "hash")] {
        match counted_with(&inputs, pos).verify(&key, None) {
            Err(ProofFailure::Mismatch("input", m)) => assert!(m.contains("does not name"), "{m}"),
            other => panic!("input with another {field} accepted: {other:?}"),
        }
    }
    // The honest input at a position other than its own fails on the path.
    let mut moved = counted_with(&inputs, 0);
    moved.input_position = 1;
    assert!(matches!(
        moved.verify(&key, None),
        Err(ProofFailure::Path("aggregate input", _))
    ));
}

/// A head a client saw earlier must still be in the log: same size or
/// smaller, same root, signed by the key.
#[test]
fn a_trusted_head_is_checked_against_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let mut log = Ledger::create(&path, "trusted", signer()).unwrap();
    for i in 0..6 {
        log.append(0, note(i)).unwrap();
    }
    let id = log.log_id();
    let at = |size: u64, root: Hash| {
        signer().sign(TreeHead {
            log_id: id,
            tree_size: size,
            root_hash: root,
            timestamp_ms: 1,
        })
    };
    let heads = [
        at(3, log.root_at(3).unwrap()),
        at(6, log.root_at(6).unwrap()),
    ];
    let other_root = log.root_at(5).unwrap();
    drop(log);
    let with = |t: &cipherflow_ledger::SignedTreeHead| {
        let opts = VerifyOptions {
            trusted_head: Some(t),
            ..VerifyOptions::default()
        };
        verify_log(&path, &signer().public_key(), &opts)
    };
    // An older head and the latest one (size equal to the log) verify.
    for h in &heads {
        with(h).unwrap();
    }
    let fails = |t, problem: fn(&Problem) -> bool| {
        let f = with(&t).unwrap_err();
        assert_eq!(f.location, Location::TrustedHead, "{f}");
        assert!(problem(&f.problem), "{f}");
    };
    // A head from a log that went on further than this file (rolled back).
    fails(at(7, [1; 32]), |p| {
        matches!(
            p,
            Problem::HeadBeyondLog {
                tree_size: 7,
                entries: 6
            }
        )
    });
    // A fork: same size, another root, validly signed.
    fails(at(6, other_root), |p| matches!(p, Problem::RootMismatch));
    fails(at(2, other_root), |p| matches!(p, Problem::RootMismatch));
    // Not signed by the log's key.
    let mut forged = heads[1];
    forged.signature[0] ^= 1;
    fails(forged, |p| matches!(p, Problem::Signature(_)));
}
