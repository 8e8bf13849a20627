#![doc = include_str!("../README.md")]
//!
//! ## Modules
//!
//! * [`merkle`]: RFC 9162 tree hashing (leaf prefix `0x00`, node prefix
//!   `0x01`, SHA-256), inclusion and consistency proofs and the RFC's
//!   verification algorithms.
//! * [`entry`]: typed entries (round opened, update received, aggregate
//!   computed, decryption share received, round closed, custom) with a
//!   canonical binary encoding; each entry is hash-chained to the previous.
//! * [`sth`]: Ed25519 signed tree heads over (log id, size, root, time),
//!   key generation and key files.
//! * [`Ledger`]: the log in SQLite (WAL, `synchronous=FULL`): durable
//!   appends, tamper detection on open, proofs.
//! * [`proof`]: self-contained proofs ([`EntryProof`], [`CountedProof`]
//!   "my update was counted") that verify offline with the public key;
//!   JSON for files, a strict versioned binary encoding (`encode`/`decode`,
//!   limits `MAX_*`) for messages between parties.
//! * [`verify`]: the offline whole-log verifier, with a pluggable ε
//!   recomputation ([`EpsilonRecompute`]).
//!
//! The `sqlite` feature (default) brings [`Ledger`] and [`verify`]; without
//! it the crate holds what a client verifies — entries, Merkle proofs,
//! signed heads, [`EntryProof`] and [`CountedProof`] — and compiles for
//! `wasm32-unknown-unknown`.

mod codec;
pub mod entry;
mod error;
#[cfg(feature = "sqlite")]
mod ledger;
pub mod merkle;
pub mod proof;
mod proof_encoding;
#[cfg(feature = "sqlite")]
mod replay;
mod round_settings;
pub mod sth;
#[cfg(feature = "sqlite")]
mod store;
#[cfg(feature = "sqlite")]
pub mod verify;

pub use codec::{hex_bytes, hex_hash, hex_hashes, parse_hash, DecodeError, Reader, Writer};
pub use entry::{AggregateInput, Entry, EntryBody};
pub use error::{Failure, LedgerError, Location, Problem};
#[cfg(feature = "sqlite")]
pub use ledger::{Appended, Ledger, NewEntry};
pub use merkle::{Hash, MerkleTree, ProofError};
pub use proof::{
    verify_proof_file, ConsistencyProof, Counted, CountedProof, EntryProof, InclusionProof,
    ProofFailure, ProofFileError,
};
pub use proof_encoding::{
    MAX_CONSISTENCY_LIST, MAX_CONSISTENCY_PATH, MAX_INCLUSION_PATH, MAX_INPUTS, MAX_INPUTS_BYTES,
    MAX_PROOF_BYTES, PROOF_VERSION,
};
pub use sth::{log_id, KeyError, LogSigner, PublicKey, SignedTreeHead, SthError, TreeHead};
#[cfg(feature = "sqlite")]
pub use verify::{verify_log, EpsilonRecompute, VerifyOptions, VerifyReport};
