#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The binary encodings of proofs that parties send each other: real proofs
//! from a real log round-trip and still verify; hostile bytes (truncated,
//! trailing, another version or type, counts over the limits, any flipped
//! byte) are refused with the specific error or decode to a proof that no
//! longer verifies — never a panic, never a large allocation.

mod common;

use cipherflow_ledger::{
    AggregateInput, ConsistencyProof, CountedProof, DecodeError, EntryProof, InclusionProof,
    MAX_CONSISTENCY_LIST, MAX_INCLUSION_PATH, MAX_INPUTS, PROOF_VERSION,
};
use common::*;

struct Fixture {
    log: cipherflow_ledger::Ledger,
    upd: u64,
    entry: EntryProof,
    counted: CountedProof,
    consistency: ConsistencyProof,
    inputs: Vec<AggregateInput>,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let log = build_log(&dir.path().join("log.db"), 3, 4);
    // Round 2's aggregate sums every client but the last.
    let upd = log.find_update(&client(0), 2).unwrap();
    let inputs: Vec<AggregateInput> = (0..3)
        .map(|c| AggregateInput {
            update_index: upd + c as u64,
            client_id: client(c),
            ciphertext_hash: update_hash(2, c),
        })
        .collect();
    Fixture {
        upd,
        entry: log.entry_proof(upd).unwrap(),
        counted: log.counted_proof(upd + 1).unwrap(),
        consistency: log.consistency_proof(5, log.len()).unwrap(),
        inputs,
        log,
        _dir: dir,
    }
}

fn log_entry(f: &Fixture) -> cipherflow_ledger::Entry {
    f.log.entry(f.upd).unwrap()
}

/// Every strict prefix is refused as truncated; one more byte as trailing.
fn assert_strict<T: std::fmt::Debug>(
    bytes: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, DecodeError>,
) {
    for n in 0..bytes.len() {
        match decode(&bytes[..n]) {
            Err(DecodeError::Truncated(_)) => {}
            other => panic!("prefix of {n} bytes: {other:?}"),
        }
    }
    let mut long = bytes.to_vec();
    long.push(0);
    assert_eq!(decode(&long).unwrap_err(), DecodeError::Trailing(1));
    let mut v = bytes.to_vec();
    v[0] = PROOF_VERSION + 1;
    assert_eq!(
        decode(&v).unwrap_err(),
        DecodeError::Version(PROOF_VERSION + 1)
    );
}

#[test]
fn proofs_from_a_log_round_trip_and_still_verify() {
    let f = fixture();
    let key = signer().public_key();

    let b = f.entry.encode();
    let back = EntryProof::decode(&b).unwrap();
    assert_eq!(back, f.entry);
    assert_eq!(back.encode(), b);
    assert_eq!(back.verify(&key, None).unwrap(), log_entry(&f));
    assert_strict(&b, EntryProof::decode);

    let b = f.counted.encode();
    let back = CountedProof::decode(&b).unwrap();
    assert_eq!(back, f.counted);
    assert_eq!(back.verify(&key, None).unwrap().client_id, client(1));
    assert_strict(&b, CountedProof::decode);

    let b = f.consistency.encode();
    assert_eq!(ConsistencyProof::decode(&b).unwrap(), f.consistency);
    assert_strict(&b, ConsistencyProof::decode);

    let b = f.entry.inclusion.encode();
    assert_eq!(InclusionProof::decode(&b).unwrap(), f.entry.inclusion);
    assert_strict(&b, InclusionProof::decode);

    let b = AggregateInput::encode_list(&f.inputs);
    assert_eq!(AggregateInput::decode_list(&b).unwrap(), f.inputs);
    assert_strict(&b, AggregateInput::decode_list);

    let list = vec![f.consistency.clone(), f.consistency.clone()];
    let b = ConsistencyProof::encode_list(&list);
    assert_eq!(ConsistencyProof::decode_list(&b).unwrap(), list);
    assert_strict(&b, ConsistencyProof::decode_list);

    // Empty lists are lists too.
    assert!(
        AggregateInput::decode_list(&AggregateInput::encode_list(&[]))
            .unwrap()
            .is_empty()
    );
    assert!(
        ConsistencyProof::decode_list(&ConsistencyProof::encode_list(&[]))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn one_kind_of_proof_is_never_read_as_another() {
    let f = fixture();
    let entry = f.entry.encode();
    match CountedProof::decode(&entry) {
        Err(DecodeError::WrongType { expected, found }) => {
            assert_eq!(expected, "counted proof");
            assert_eq!(found, entry[1]);
        }
        other => panic!("{other:?}"),
    }
    let counted = f.counted.encode();
    assert!(matches!(
        EntryProof::decode(&counted),
        Err(DecodeError::WrongType {
            expected: "entry proof",
            ..
        })
    ));
    let one = f.consistency.encode();
    assert!(matches!(
        ConsistencyProof::decode_list(&one),
        Err(DecodeError::WrongType {
            expected: "consistency-proof list",
            ..
        })
    ));
    assert!(matches!(
        InclusionProof::decode(&one),
        Err(DecodeError::WrongType {
            expected: "inclusion proof",
            ..
        })
    ));
    assert!(matches!(
        ConsistencyProof::decode(&f.entry.inclusion.encode()),
        Err(DecodeError::WrongType {
            expected: "consistency proof",
            ..
        })
    ));
    assert!(matches!(
        AggregateInput::decode_list(&one),
        Err(DecodeError::WrongType {
            expected: "aggregate-input list",
            ..
        })
    ));
}

/// A count field rewritten to `n` (the 4 bytes at `at`).
fn with_count(bytes: &[u8], at: usize, n: u32) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v[at..at + 4].copy_from_slice(&n.to_be_bytes());
    v
}

#[test]
fn hostile_counts_are_refused_before_allocation() {
    let f = fixture();
    // Input list: version, tag, count at byte 2.
    let b = AggregateInput::encode_list(&f.inputs);
    assert_eq!(
        AggregateInput::decode_list(&with_count(&b, 2, u32::MAX)).unwrap_err(),
        DecodeError::Truncated("inputs")
    );
    // One more input than the bytes hold (each takes at least 44 bytes) is
    // refused by the count check itself, before any input is read.
    assert_eq!(
        AggregateInput::decode_list(&with_count(&b, 2, f.inputs.len() as u32 + 1)).unwrap_err(),
        DecodeError::Truncated("inputs")
    );
    // Exactly the limit is a valid list.
    let most: Vec<AggregateInput> = (0..MAX_INPUTS as u64)
        .map(|i| AggregateInput {
            update_index: i,
            client_id: String::new(),
            ciphertext_hash: [0; 32],
        })
        .collect();
    assert_eq!(
        AggregateInput::decode_list(&AggregateInput::encode_list(&most))
            .unwrap()
            .len(),
        MAX_INPUTS
    );
    drop(most);
    // A count that the bytes could hold but the limit forbids.
    let many = MAX_INPUTS + 1;
    let mut big = vec![PROOF_VERSION, 5];
    big.extend_from_slice(&(many as u32).to_be_bytes());
    big.resize(6 + many * 44, 0);
    assert_eq!(
        AggregateInput::decode_list(&big).unwrap_err(),
        DecodeError::TooMany("inputs", many)
    );

    // Inclusion proof: version, tag, index, size, count at byte 18.
    let b = f.entry.inclusion.encode();
    assert_eq!(
        InclusionProof::decode(&with_count(&b, 18, u32::MAX)).unwrap_err(),
        DecodeError::Truncated("inclusion.path")
    );
    let deep = InclusionProof {
        leaf_index: 0,
        tree_size: u64::MAX,
        path: vec![[7u8; 32]; MAX_INCLUSION_PATH + 1],
    };
    assert_eq!(
        InclusionProof::decode(&deep.encode()).unwrap_err(),
        DecodeError::TooMany("inclusion.path", MAX_INCLUSION_PATH + 1)
    );
    let deepest = InclusionProof {
        path: vec![[7u8; 32]; MAX_INCLUSION_PATH],
        ..deep
    };
    assert_eq!(InclusionProof::decode(&deepest.encode()).unwrap(), deepest);

    let list = vec![f.consistency.clone(); MAX_CONSISTENCY_LIST + 1];
    assert_eq!(
        ConsistencyProof::decode_list(&ConsistencyProof::encode_list(&list)).unwrap_err(),
        DecodeError::TooMany("proofs", MAX_CONSISTENCY_LIST + 1)
    );
    let list = vec![f.consistency.clone(); MAX_CONSISTENCY_LIST];
    assert_eq!(
        ConsistencyProof::decode_list(&ConsistencyProof::encode_list(&list)).unwrap(),
        list
    );
}

#[test]
fn every_flipped_byte_is_refused_or_no_longer_verifies() {
    let f = fixture();
    let key = signer().public_key();
    let b = f.counted.encode();
    for i in 0..b.len() {
        let mut v = b.clone();
        v[i] ^= 0x01;
        if let Ok(p) = CountedProof::decode(&v) {
            assert_ne!(p, f.counted, "byte {i}");
            assert!(p.verify(&key, None).is_err(), "byte {i} still verifies");
        }
    }
    let b = f.entry.encode();
    for i in 0..b.len() {
        let mut v = b.clone();
        v[i] ^= 0x80;
        if let Ok(p) = EntryProof::decode(&v) {
            assert!(p.verify(&key, None).is_err(), "byte {i} still verifies");
        }
    }
}

/// The size limit admits every valid proof — a counted proof with two
/// entries of the largest size and the deepest paths — and refuses
/// anything larger before reading it.
#[test]
fn the_size_limit_admits_the_largest_valid_proof_and_nothing_more() {
    use cipherflow_ledger::entry::MAX_ENTRY_BYTES;
    use cipherflow_ledger::MAX_PROOF_BYTES;
    let f = fixture();
    let path = vec![[5u8; 32]; MAX_INCLUSION_PATH];
    let inclusion = InclusionProof {
        leaf_index: u64::MAX,
        tree_size: u64::MAX,
        path: path.clone(),
    };
    let largest = CountedProof {
        update_entry: vec![1; MAX_ENTRY_BYTES],
        update_inclusion: inclusion.clone(),
        aggregate_entry: vec![2; MAX_ENTRY_BYTES],
        aggregate_inclusion: inclusion,
        input_path: path,
        ..f.counted.clone()
    };
    let b = largest.encode();
    assert!(
        b.len() <= MAX_PROOF_BYTES,
        "{} > {MAX_PROOF_BYTES}",
        b.len()
    );
    assert_eq!(CountedProof::decode(&b).unwrap(), largest);
    let mut over = f.entry.encode();
    over.resize(MAX_PROOF_BYTES + 1, 0);
    assert_eq!(
        EntryProof::decode(&over).unwrap_err(),
        DecodeError::TooLarge(MAX_PROOF_BYTES + 1)
    );
    // An entry one byte over its own limit is refused inside a proof too.
    let too_big = EntryProof {
        entry: vec![0; MAX_ENTRY_BYTES + 1],
        ..f.entry.clone()
    };
    assert_eq!(
        EntryProof::decode(&too_big.encode()).unwrap_err(),
        DecodeError::TooLarge(MAX_ENTRY_BYTES + 1)
    );
}
