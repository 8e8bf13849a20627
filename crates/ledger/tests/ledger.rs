#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The ledger end to end: appends, reopen, proofs, "my update was counted",
//! the offline verifier, the ε check, and tamper detection.

mod common;

use cipherflow_ledger::entry::{
    CustomEntry, DpSettings, EntryBody, RoundClosed, RoundOpened, UpdateReceived,
};
use cipherflow_ledger::{
    verify_log, AggregateInput, Entry, Failure, Ledger, LedgerError, Location, LogSigner, NewEntry,
    Problem, ProofError, ProofFailure, SthError, VerifyOptions,
};
use common::*;
use std::collections::BTreeMap;
use std::path::Path;

fn opts_with_eps(f: &dyn cipherflow_ledger::EpsilonRecompute) -> VerifyOptions<'_> {
    VerifyOptions {
        epsilon: Some(f),
        ..VerifyOptions::default()
    }
}

fn verify(path: &Path) -> Result<cipherflow_ledger::VerifyReport, Failure> {
    let eps = fake_epsilon;
    verify_log(path, &signer().public_key(), &opts_with_eps(&eps))
}

#[test]
fn build_reopen_verify_and_prove() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let log = build_log(&path, 3, 5);
    let n = log.len();
    assert_eq!(n, 3 * (1 + 5 + 1 + 1 + 1));
    let root = log.root();
    let head = *log.latest_head().unwrap();
    assert_eq!(head.tree_size, n);
    drop(log);

    let log = Ledger::open_read_only(&path).unwrap();
    assert_eq!(log.len(), n);
    assert_eq!(log.root(), root);
    assert_eq!(log.latest_head(), Some(&head));

    let report = verify(&path).unwrap();
    assert_eq!(report.entries, n);
    assert_eq!(report.rounds_opened, 3);
    assert_eq!(report.rounds_epsilon_checked, 3);
    assert!(report.heads > 3);

    // Every entry has a proof a third party can check with the key alone.
    let key = signer().public_key();
    for i in 0..n {
        let p = log.entry_proof(i).unwrap();
        let e = p.verify(&key, Some(&log.log_id())).unwrap();
        assert_eq!(e.index, i);
        // And it survives JSON.
        let j = serde_json::to_string(&p).unwrap();
        let back: cipherflow_ledger::EntryProof = serde_json::from_str(&j).unwrap();
        back.verify(&key, None).unwrap();
    }
    // Consistency between any two sizes.
    for old in 0..=n {
        for new in old..=n {
            let p = log.consistency_proof(old, new).unwrap();
            p.verify(&log.root_at(old).unwrap(), &log.root_at(new).unwrap())
                .unwrap();
        }
    }
}

#[test]
fn my_update_was_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let clients = 6;
    let log = build_log(&path, 2, clients);
    let key = signer().public_key();
    for round in 1..=2u64 {
        for c in 0..clients - 1 {
            let p = log.counted_proof_for(&client(c), round).unwrap();
            let counted = p.verify(&key, Some(&log.log_id())).unwrap();
            assert_eq!(counted.client_id, client(c));
            assert_eq!(counted.round, round);
            assert_eq!(counted.ciphertext_hash, update_hash(round, c));
            assert_eq!(counted.input_count, (clients - 1) as u64);
            let j = serde_json::to_string(&p).unwrap();
            let back: cipherflow_ledger::CountedProof = serde_json::from_str(&j).unwrap();
            assert_eq!(back.verify(&key, None).unwrap(), counted);
        }
        // The last client's update was logged but left out of the aggregate.
        assert!(log.find_update(&client(clients - 1), round).is_ok());
        assert!(matches!(
            log.counted_proof_for(&client(clients - 1), round),
            Err(LedgerError::NoSuch(_))
        ));
    }
    let e = log.counted_proof_for("nobody", 1).unwrap_err();
    assert!(
        matches!(&e, LedgerError::NoSuch(m) if m.contains("\"nobody\"")),
        "{e:?}"
    );
    // The wrong key rejects.
    let other = LogSigner::from_seed(&[8; 32]).public_key();
    let p = log.counted_proof_for(&client(0), 1).unwrap();
    assert_eq!(
        p.verify(&other, None),
        Err(ProofFailure::Head(SthError::BadSignature))
    );
}

fn flip(bytes: &mut [u8], bit: usize) {
    bytes[bit / 8] ^= 1 << (bit % 8);
}

/// Whether `f` is what a proof must report when the bytes of its `what`
/// entry, at `index`, were altered into `bytes`: they no longer decode (the
/// decoder's own error), or decode to another index than the path's, or
/// else hash to a leaf the path does not lead to the signed root from.
fn is_altered_entry(f: &ProofFailure, what: &str, bytes: &[u8], index: u64) -> bool {
    match Entry::decode(bytes) {
        Err(d) => matches!(f, ProofFailure::Decode(w, e) if *w == what && *e == d),
        Ok(e) if e.index != index => {
            matches!(f, ProofFailure::Mismatch(w, m) if *w == what && m.contains("path is for index"))
        }
        Ok(_) => matches!(f, ProofFailure::Path(w, ProofError::RootMismatch) if *w == what),
    }
}

/// Whether `f` reports the signed tree head's signature as not verifying.
fn is_bad_head(f: &ProofFailure) -> bool {
    *f == ProofFailure::Head(SthError::BadSignature)
}

/// Whether `f` reports the `what` Merkle path as not leading to its root.
fn is_bad_path(f: &ProofFailure, what: &str) -> bool {
    matches!(f, ProofFailure::Path(w, ProofError::RootMismatch) if *w == what)
}

/// Whether `f` reports the `what` path as made for another position.
fn is_wrong_index(f: &ProofFailure, what: &str) -> bool {
    matches!(f, ProofFailure::Mismatch(w, m) if *w == what && m.contains("path is for index"))
}

/// Length of the inclusion path of leaf `index` in a tree of `size` leaves
/// (`index < size`; transparency-dev/merkle, `decompInclProof`).
fn inclusion_len(index: u64, size: u64) -> usize {
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    let border = (index >> inner).count_ones();
    (inner + border) as usize
}

#[test]
fn every_flipped_bit_in_a_counted_proof_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let log = build_log(&path, 1, 5);
    let key = signer().public_key();
    let good = log.counted_proof_for(&client(2), 1).unwrap();
    good.verify(&key, None).unwrap();

    let mut cases = 0;
    let mut check = |p: &cipherflow_ledger::CountedProof,
                     what: &str,
                     expected: &dyn Fn(&ProofFailure) -> bool| {
        match p.verify(&key, None) {
            Ok(c) => panic!("undetected: {what}: {c:?}"),
            Err(f) => assert!(expected(&f), "{what}: wrong failure: {f:?}"),
        }
        cases += 1;
    };
    let is_input_mismatch = |f: &ProofFailure| matches!(f, ProofFailure::Mismatch("input", _));
    let (update_at, aggregate_at) = (
        good.update_inclusion.leaf_index,
        good.aggregate_inclusion.leaf_index,
    );
    for bit in 0..good.update_entry.len() * 8 {
        let mut p = good.clone();
        flip(&mut p.update_entry, bit);
        let bytes = p.update_entry.clone();
        check(&p, "update entry", &|f| {
            is_altered_entry(f, "update", &bytes, update_at)
        });
    }
    for bit in 0..good.aggregate_entry.len() * 8 {
        let mut p = good.clone();
        flip(&mut p.aggregate_entry, bit);
        let bytes = p.aggregate_entry.clone();
        check(&p, "aggregate entry", &|f| {
            is_altered_entry(f, "aggregate", &bytes, aggregate_at)
        });
    }
    for bit in 0..256 {
        let mut p = good.clone();
        flip(&mut p.sth.root_hash, bit);
        check(&p, "root", &is_bad_head);
        let mut p = good.clone();
        flip(&mut p.sth.log_id, bit);
        check(&p, "log id", &is_bad_head);
        let mut p = good.clone();
        flip(&mut p.input.ciphertext_hash, bit);
        check(&p, "input hash", &is_input_mismatch);
        for k in 0..good.update_inclusion.path.len() {
            let mut p = good.clone();
            flip(&mut p.update_inclusion.path[k], bit);
            check(&p, "update path", &|f| is_bad_path(f, "update"));
        }
        for k in 0..good.aggregate_inclusion.path.len() {
            let mut p = good.clone();
            flip(&mut p.aggregate_inclusion.path[k], bit);
            check(&p, "aggregate path", &|f| is_bad_path(f, "aggregate"));
        }
        for k in 0..good.input_path.len() {
            let mut p = good.clone();
            flip(&mut p.input_path[k], bit);
            check(&p, "input path", &|f| is_bad_path(f, "aggregate input"));
        }
    }
    for bit in 0..512 {
        let mut p = good.clone();
        flip(&mut p.sth.signature, bit);
        check(&p, "signature", &is_bad_head);
    }
    let input_count = good.verify(&key, None).unwrap().input_count;
    assert_eq!(
        good.input_path.len(),
        inclusion_len(good.input_position, input_count)
    );
    for bit in 0..64 {
        let mut p = good.clone();
        p.sth.tree_size ^= 1 << bit;
        check(&p, "tree size", &is_bad_head);
        let mut p = good.clone();
        p.sth.timestamp_ms ^= 1 << bit;
        check(&p, "timestamp", &is_bad_head);
        let mut p = good.clone();
        p.update_inclusion.leaf_index ^= 1 << bit;
        check(&p, "update index", &|f| is_wrong_index(f, "update"));
        let mut p = good.clone();
        p.aggregate_inclusion.leaf_index ^= 1 << bit;
        check(&p, "aggregate index", &|f| is_wrong_index(f, "aggregate"));
        let mut p = good.clone();
        p.input_position ^= 1 << bit;
        // The input path checked for another position: out of range, the
        // wrong length for it, or a root it does not lead to.
        let position = p.input_position;
        let expected = if position >= input_count {
            ProofError::IndexOutOfRange {
                index: position,
                size: input_count,
            }
        } else if good.input_path.len() != inclusion_len(position, input_count) {
            ProofError::WrongLength
        } else {
            ProofError::RootMismatch
        };
        check(&p, "input position", &|f| {
            *f == ProofFailure::Path("aggregate input", expected.clone())
        });
        let mut p = good.clone();
        p.input.update_index ^= 1 << bit;
        check(&p, "input update index", &is_input_mismatch);
    }
    let mut p = good.clone();
    p.input.client_id.push('x');
    check(&p, "input client", &is_input_mismatch);
    assert!(cases > 5000);
}

#[test]
fn every_flipped_bit_in_an_entry_proof_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let log = build_log(&path, 1, 3);
    let key = signer().public_key();
    let good = log.entry_proof(4).unwrap();
    for bit in 0..good.entry.len() * 8 {
        let mut p = good.clone();
        flip(&mut p.entry, bit);
        let f = p.verify(&key, None).unwrap_err();
        assert!(
            is_altered_entry(&f, "the", &p.entry, 4),
            "entry bit {bit}: {f:?}"
        );
    }
    for bit in 0..256 {
        for k in 0..good.inclusion.path.len() {
            let mut p = good.clone();
            flip(&mut p.inclusion.path[k], bit);
            let f = p.verify(&key, None).unwrap_err();
            assert!(is_bad_path(&f, "the"), "path {k} bit {bit}: {f:?}");
        }
        let mut p = good.clone();
        flip(&mut p.sth.root_hash, bit);
        let f = p.verify(&key, None).unwrap_err();
        assert!(is_bad_head(&f), "root bit {bit}: {f:?}");
    }
    for bit in 0..512 {
        let mut p = good.clone();
        flip(&mut p.sth.signature, bit);
        let f = p.verify(&key, None).unwrap_err();
        assert!(is_bad_head(&f), "signature bit {bit}: {f:?}");
    }
}

fn assert_fails_at(path: &Path, pred: impl Fn(&Location) -> bool, what: &str) -> Failure {
    let f = verify(path).expect_err(what);
    assert!(pred(&f.location), "{what}: failed at the wrong place: {f}");
    assert!(
        matches!(Ledger::open_read_only(path), Err(LedgerError::Integrity(_))),
        "{what}: open did not detect it"
    );
    f
}

#[test]
fn every_flipped_bit_in_a_stored_entry_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    drop(build_log(&path, 1, 3));
    // Flip every bit of two entries (an update and the round close), once
    // leaving the stored leaf hash and once recomputing it.
    for idx in [2u64, 6] {
        let orig = entry_bytes(&path, idx);
        let orig_leaf = cipherflow_ledger::merkle::leaf_hash(&orig);
        for bit in 0..orig.len() * 8 {
            let mut b = orig.clone();
            flip(&mut b, bit);
            set_entry(&path, idx, &b, None);
            let f = assert_fails_at(&path, |l| *l == Location::Entry { index: idx }, "flip");
            assert_eq!(f.problem, Problem::LeafHashMismatch);
            let leaf = cipherflow_ledger::merkle::leaf_hash(&b);
            set_entry(&path, idx, &b, Some(&leaf));
            assert_fails_at(
                &path,
                |l| match l {
                    Location::Entry { index } => *index == idx || *index == idx + 1,
                    Location::Head { tree_size, .. } => *tree_size > idx,
                    _ => false,
                },
                "flip with recomputed leaf",
            );
        }
        set_entry(&path, idx, &orig, Some(&orig_leaf));
        verify(&path).unwrap();
    }
}

#[test]
fn flipped_head_root_or_signature_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    drop(build_log(&path, 1, 3));
    let c = raw(&path);
    let (seq, root, sig): (i64, Vec<u8>, Vec<u8>) = c
        .query_row(
            "SELECT seq, root_hash, signature FROM heads ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    for (col, orig) in [("root_hash", &root), ("signature", &sig)] {
        for bit in (0..orig.len() * 8).step_by(3) {
            let mut b = orig.clone();
            flip(&mut b, bit);
            c.execute(
                &format!("UPDATE heads SET {col} = ?1 WHERE seq = ?2"),
                rusqlite::params![b, seq],
            )
            .unwrap();
            assert_fails_at(&path, |l| matches!(l, Location::Head { .. }), col);
        }
        c.execute(
            &format!("UPDATE heads SET {col} = ?1 WHERE seq = ?2"),
            rusqlite::params![orig, seq],
        )
        .unwrap();
    }
    verify(&path).unwrap();
    // An older head flipped is caught by the verifier (open checks the latest only).
    c.execute(
        "UPDATE heads SET timestamp_ms = timestamp_ms + 1 WHERE seq = 1",
        [],
    )
    .unwrap();
    let f = verify(&path).unwrap_err();
    assert!(matches!(f.location, Location::Head { seq: 1, .. }), "{f}");
}

#[test]
fn truncated_log_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let log = build_log(&path, 2, 3);
    let n = log.len();
    let seen = *log.latest_head().unwrap();
    drop(log);
    // Entries removed, heads kept: the last head covers missing entries.
    raw(&path)
        .execute("DELETE FROM entries WHERE idx >= ?1", [(n - 2) as i64])
        .unwrap();
    let f = assert_fails_at(&path, |l| matches!(l, Location::Head { .. }), "truncated");
    assert!(matches!(f.problem, Problem::HeadBeyondLog { .. }), "{f}");

    // Entries and the heads covering them removed: consistent on its own,
    // but not with a head a client saw before.
    let c = raw(&path);
    c.execute("DELETE FROM heads WHERE tree_size > ?1", [(n - 2) as i64])
        .unwrap();
    let shorter = verify(&path).unwrap();
    assert_eq!(shorter.entries, n - 2);
    let eps = fake_epsilon;
    let opts = VerifyOptions {
        epsilon: Some(&eps),
        trusted_head: Some(&seen),
        ..VerifyOptions::default()
    };
    let f = verify_log(&path, &signer().public_key(), &opts).unwrap_err();
    assert_eq!(f.location, Location::TrustedHead);

    // A gap in the middle.
    let path2 = dir.path().join("gap.db");
    drop(build_log(&path2, 1, 3));
    raw(&path2)
        .execute("DELETE FROM entries WHERE idx = 3", [])
        .unwrap();
    let f = assert_fails_at(&path2, |l| *l == Location::Entry { index: 3 }, "gap");
    assert!(
        matches!(f.problem, Problem::MissingEntry { found: 4 }),
        "{f}"
    );
}

#[test]
fn reordered_log_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    drop(build_log(&path, 1, 4));
    // Swap two updates (bytes and leaf hashes).
    let (a, b) = (2u64, 3u64);
    let (da, db) = (entry_bytes(&path, a), entry_bytes(&path, b));
    set_entry(
        &path,
        a,
        &db,
        Some(&cipherflow_ledger::merkle::leaf_hash(&db)),
    );
    set_entry(
        &path,
        b,
        &da,
        Some(&cipherflow_ledger::merkle::leaf_hash(&da)),
    );
    let f = assert_fails_at(&path, |l| *l == Location::Entry { index: a }, "swap");
    assert!(matches!(f.problem, Problem::IndexMismatch { .. }), "{f}");
    // Swap the index columns instead (rows move, bytes don't).
    set_entry(
        &path,
        a,
        &da,
        Some(&cipherflow_ledger::merkle::leaf_hash(&da)),
    );
    set_entry(
        &path,
        b,
        &db,
        Some(&cipherflow_ledger::merkle::leaf_hash(&db)),
    );
    verify(&path).unwrap();
    let c = raw(&path);
    c.execute_batch("UPDATE entries SET idx = -1 WHERE idx = 2; UPDATE entries SET idx = 2 WHERE idx = 3; UPDATE entries SET idx = 3 WHERE idx = -1;")
        .unwrap();
    assert_fails_at(&path, |l| *l == Location::Entry { index: a }, "row swap");
}

#[test]
fn altered_aggregate_inputs_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    drop(build_log(&path, 1, 4));
    let c = raw(&path);
    c.execute("DELETE FROM aggregate_inputs WHERE pos = 1", [])
        .unwrap();
    let f = verify(&path).unwrap_err();
    assert!(
        matches!(f.location, Location::Entry { .. } | Location::Log),
        "{f}"
    );
    let e = Ledger::open_read_only(&path).unwrap_err();
    assert!(
        matches!(&e, LedgerError::Integrity(Failure {
            problem: Problem::AggregateInputs(m),
            ..
        }) if m.contains("input 1 is missing")),
        "{e:?}"
    );
}

#[test]
fn tampering_with_meta_or_key_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    drop(build_log(&path, 1, 2));
    // Wrong verification key.
    let other = LogSigner::from_seed(&[9; 32]).public_key();
    let f = verify_log(&path, &other, &VerifyOptions::default()).unwrap_err();
    assert_eq!(f.location, Location::Meta);
    // Opening for writing with the wrong signing key.
    assert!(matches!(
        Ledger::open(&path, LogSigner::from_seed(&[9; 32])),
        Err(LedgerError::KeyMismatch)
    ));
    // Renamed log: the log id no longer matches.
    raw(&path)
        .execute(
            "UPDATE meta SET value = X'6f74686572' WHERE key = 'name'",
            [],
        )
        .unwrap();
    let f = verify(&path).unwrap_err();
    assert_eq!(f.location, Location::Meta);
    // Not a ledger at all.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"this is not sqlite").unwrap();
    let f = verify(&junk).unwrap_err();
    assert!(
        matches!(f.problem, Problem::NotALedger(_)) && f.location == Location::Log,
        "{f:?}"
    );
    let e = Ledger::open_read_only(&junk).unwrap_err();
    assert!(
        matches!(&e, LedgerError::Sqlite(s)
            if s.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase)),
        "{e:?}"
    );
    let f = verify(&dir.path().join("missing.db")).unwrap_err();
    assert!(
        matches!(&f.problem, Problem::Storage(m) if m.contains("does not exist"))
            && f.location == Location::Log,
        "{f:?}"
    );
}

#[test]
fn epsilon_check_uses_the_plugged_accountant() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    drop(build_log(&path, 2, 3));
    verify(&path).unwrap();
    // An accountant that disagrees names the round-close entry.
    let off = |s: &DpSettings, steps: u64| fake_epsilon(s, steps).map(|e| e * 1.01);
    let f = verify_log(&path, &signer().public_key(), &opts_with_eps(&off)).unwrap_err();
    // Round 1 is entries 0..=6: open, 3 updates, aggregate, share, close.
    assert_eq!(f.location, Location::Entry { index: 6 }, "{f}");
    assert!(matches!(f.problem, Problem::Epsilon(_)));
    // Within tolerance passes.
    let close = |s: &DpSettings, steps: u64| fake_epsilon(s, steps).map(|e| e * (1.0 + 1e-9));
    verify_log(&path, &signer().public_key(), &opts_with_eps(&close)).unwrap();
    // A failing accountant is a failure, not a pass.
    let broken = |_: &DpSettings, _: u64| -> Result<f64, String> { Err("no".into()) };
    let f = verify_log(&path, &signer().public_key(), &opts_with_eps(&broken)).unwrap_err();
    assert_eq!(f.location, Location::Entry { index: 6 }, "{f}");
    assert!(
        matches!(&f.problem, Problem::Epsilon(m) if m.contains("accountant failed: no")),
        "{f:?}"
    );
    // Without an accountant the check is skipped and reported as such.
    let r = verify_log(&path, &signer().public_key(), &VerifyOptions::default()).unwrap();
    assert!(!r.epsilon_checked);
    assert_eq!(r.rounds_epsilon_checked, 0);
}

#[test]
fn wrong_reported_epsilon_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let mut log = Ledger::create(&path, "eps", signer()).unwrap();
    let d = dp(1);
    log.append(
        1,
        EntryBody::RoundOpened(RoundOpened {
            parameters: BTreeMap::new(),
            participants: vec![],
            dp: d.clone(),
        }),
    )
    .unwrap();
    log.append(
        1,
        EntryBody::RoundClosed(RoundClosed {
            model_hash: [0; 32],
            epsilon_global: fake_epsilon(&d, d.steps_cumulative).unwrap() / 2.0,
            clients: vec![],
        }),
    )
    .unwrap();
    // Cumulative steps that do not add up are caught at the round opening.
    let mut bad = dp(2);
    bad.steps_cumulative += 1;
    log.append(
        2,
        EntryBody::RoundOpened(RoundOpened {
            parameters: BTreeMap::new(),
            participants: vec![],
            dp: bad,
        }),
    )
    .unwrap();
    drop(log);
    let f = verify(&path).unwrap_err();
    assert_eq!(f.location, Location::Entry { index: 1 }, "{f}");
    let f = verify_log(&path, &signer().public_key(), &VerifyOptions::default()).unwrap_err();
    assert_eq!(f.location, Location::Entry { index: 2 }, "{f}");
}

#[test]
fn round_rules_are_enforced_on_append() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let mut log = Ledger::create(&path, "rules", signer()).unwrap();
    let upd = |c: &str| {
        EntryBody::UpdateReceived(UpdateReceived {
            client_id: c.into(),
            ciphertext_hash: [1; 32],
        })
    };
    // Update before the round opens.
    assert!(matches!(
        log.append(1, upd("a")),
        Err(LedgerError::Refused(_))
    ));
    append_round(&mut log, 1, 2);
    let refused = |r: Result<cipherflow_ledger::Appended, LedgerError>, why: &str| match r {
        Err(LedgerError::Refused(m)) => assert!(m.contains(why), "refused for {m:?}, not {why:?}"),
        other => panic!("not refused ({why}): {other:?}"),
    };
    // Round 1 is closed; reopening or reusing it fails, as does going back.
    refused(log.append(1, upd("a")), "round 1 is already closed");
    let open = |r: u64| {
        EntryBody::RoundOpened(RoundOpened {
            parameters: BTreeMap::new(),
            participants: vec![],
            dp: dp(r),
        })
    };
    refused(log.append(1, open(1)), "rounds must increase");
    log.append(2, open(2)).unwrap();
    let a = log.append(2, upd("a")).unwrap();
    refused(log.append(2, upd("a")), "already sent an update in round 2");
    // Aggregates must come with inputs that name real updates of the round.
    let agg = EntryBody::AggregateComputed(cipherflow_ledger::entry::AggregateComputed {
        aggregate_hash: [0; 32],
        input_count: 0,
        inputs_root: [0; 32],
    });
    refused(
        log.append(2, agg),
        "aggregates must be appended with their inputs",
    );
    let bogus = AggregateInput {
        update_index: a.index,
        client_id: "a".into(),
        ciphertext_hash: [2; 32],
    };
    refused(
        log.append_aggregate(2, [0; 32], vec![bogus]),
        "is not an update of round 2",
    );
    // Invalid DP settings and non-finite ε are refused.
    let mut bad = dp(3);
    bad.noise_multiplier = f64::NAN;
    refused(
        log.append(
            3,
            EntryBody::RoundOpened(RoundOpened {
                parameters: BTreeMap::new(),
                participants: vec![],
                dp: bad,
            }),
        ),
        "noise multiplier",
    );
    // A failed batch leaves nothing behind.
    let before = (log.len(), log.root(), *log.latest_head().unwrap());
    let r = log.append_batch(vec![
        NewEntry::new(2, upd("b")),
        NewEntry::new(2, upd("c")),
        NewEntry::new(2, upd("b")),
    ]);
    assert!(
        matches!(&r, Err(LedgerError::Refused(m)) if m.contains("client \"b\" already sent")),
        "{r:?}"
    );
    assert_eq!((log.len(), log.root(), *log.latest_head().unwrap()), before);
    // ... and the same entries then go in fine.
    log.append_batch(vec![NewEntry::new(2, upd("b")), NewEntry::new(2, upd("c"))])
        .unwrap();
    drop(log);
    verify(&path).unwrap();
    // Read-only logs refuse appends.
    let mut ro = Ledger::open_read_only(&path).unwrap();
    assert!(matches!(ro.append(2, upd("d")), Err(LedgerError::ReadOnly)));
    // Creating over an existing log is refused.
    assert!(matches!(
        Ledger::create(&path, "again", signer()),
        Err(LedgerError::AlreadyExists(_))
    ));
}

#[test]
fn manual_heads_and_unsigned_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let mut log = Ledger::create(&path, "manual", signer()).unwrap();
    log.set_auto_sign(false);
    let note = |i: u8| {
        EntryBody::Custom(CustomEntry {
            kind: "note".into(),
            data: vec![i],
        })
    };
    for i in 0..5 {
        log.append(0, note(i)).unwrap();
    }
    let e = log.entry_proof(0).unwrap_err();
    assert!(
        matches!(&e, LedgerError::NoSuch(m) if m.contains("not covered by a signed head")),
        "no head covers it yet: {e:?}"
    );
    let f = verify(&path).unwrap_err();
    assert!(
        matches!(f.problem, Problem::UnsignedTail { first: 0, last: 4 }),
        "{f}"
    );
    let eps = fake_epsilon;
    let lenient = VerifyOptions {
        epsilon: Some(&eps),
        allow_unsigned_tail: true,
        ..VerifyOptions::default()
    };
    verify_log(&path, &signer().public_key(), &lenient).unwrap();
    let h = log.sign_head().unwrap();
    assert_eq!(h.tree_size, 5);
    log.entry_proof(3).unwrap();
    drop(log);
    let r = verify(&path).unwrap();
    assert_eq!((r.entries, r.heads), (5, 2));
    // Reopen for writing and continue the chain.
    let mut log = Ledger::open(&path, signer()).unwrap();
    log.append(0, note(9)).unwrap();
    drop(log);
    assert_eq!(verify(&path).unwrap().entries, 6);
}

#[test]
fn verify_and_prove_while_another_connection_appends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    drop(build_log(&path, 1, 3));
    let p2 = path.clone();
    let writer = std::thread::spawn(move || {
        let mut log = Ledger::open(&p2, signer()).unwrap();
        for i in 0..300u64 {
            let batch = (0..1 + i % 4)
                .map(|j| {
                    NewEntry::new(
                        0,
                        EntryBody::Custom(CustomEntry {
                            kind: "live".into(),
                            data: (i * 10 + j).to_be_bytes().to_vec(),
                        }),
                    )
                })
                .collect();
            log.append_batch(batch).unwrap();
        }
    });
    let mut checks = 0;
    while !writer.is_finished() {
        let r = verify(&path).unwrap();
        let log = Ledger::open_read_only(&path).unwrap();
        assert!(log.len() >= r.entries);
        let p = log.entry_proof(log.len() - 1).unwrap();
        p.verify(&signer().public_key(), None).unwrap();
        checks += 1;
    }
    writer.join().unwrap();
    assert!(checks > 0);
    assert_eq!(verify(&path).unwrap().entries, 7 + 750);
}
