//! Error types: [`LedgerError`] for the library API, and [`Failure`]
//! (a [`Location`] plus a [`Problem`]) for anything found wrong in a log,
//! whether on open or by the offline verifier.

use crate::codec::DecodeError;
use crate::merkle::ProofError;
use crate::sth::{KeyError, SthError};
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;
use thiserror::Error;

/// Where in a log a problem was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Location {
    /// The log as a whole (file, tables, counts).
    Log,
    /// The log's metadata (name, id, key).
    Meta,
    /// The entry with this index.
    Entry {
        /// Entry index.
        index: u64,
    },
    /// The signed tree head with this sequence number.
    Head {
        /// Sequence number (0 = the head signed at creation).
        seq: u64,
        /// Tree size it claims.
        tree_size: u64,
    },
    /// An input of an aggregate entry.
    AggregateInput {
        /// Index of the aggregate entry.
        aggregate: u64,
        /// Position in its input list.
        position: u64,
    },
    /// A head supplied by the caller as previously seen.
    TrustedHead,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Log => write!(f, "log"),
            Self::Meta => write!(f, "log metadata"),
            Self::Entry { index } => write!(f, "entry {index}"),
            Self::Head { seq, tree_size } => {
                write!(f, "signed head #{seq} (tree size {tree_size})")
            }
            Self::AggregateInput {
                aggregate,
                position,
            } => write!(f, "input {position} of aggregate entry {aggregate}"),
            Self::TrustedHead => write!(f, "trusted head"),
        }
    }
}

/// What is wrong at a [`Location`].
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum Problem {
    /// The storage could not be read, or a column has the wrong type or size.
    #[error("storage: {0}")]
    Storage(String),
    /// Not a cipherflow ledger, or an unsupported format version.
    #[error("not a cipherflow ledger: {0}")]
    NotALedger(String),
    /// The public key stored in the log is not the one given.
    #[error("the log was created with a different public key")]
    KeyMismatch,
    /// The stored log id does not derive from the key and name.
    #[error("log id does not match the public key and log name")]
    LogIdMismatch,
    /// An index is missing (entries must be 0, 1, 2, ...).
    #[error("entry is missing (found index {found} instead)")]
    MissingEntry {
        /// The index found in its place.
        found: u64,
    },
    /// The bytes do not decode.
    #[error("entry does not decode: {0}")]
    Decode(#[from] DecodeError),
    /// The index inside the entry is not its position.
    #[error("entry records index {recorded}, stored at a different position (reordered?)")]
    IndexMismatch {
        /// The index in the encoding.
        recorded: u64,
    },
    /// A stored lookup column disagrees with the entry.
    #[error("stored column `{0}` does not match the entry")]
    ColumnMismatch(&'static str),
    /// The stored leaf hash is not the hash of the stored bytes.
    #[error("stored leaf hash is not the hash of the entry bytes (entry altered)")]
    LeafHashMismatch,
    /// The entry's `prev_hash` is not the leaf hash of the previous entry.
    #[error("hash chain broken: prev_hash is not the leaf hash of the previous entry (this or the previous entry was altered, removed or reordered)")]
    ChainBroken,
    /// The entry's timestamp is earlier than the previous one's.
    #[error("timestamp {this} is earlier than the previous {previous}")]
    TimeReversed {
        /// Previous timestamp.
        previous: u64,
        /// This timestamp.
        this: u64,
    },
    /// The entry breaks a field or round rule.
    #[error("invalid entry: {0}")]
    InvalidEntry(String),
    /// The aggregate's stored inputs do not match it.
    #[error("aggregate inputs: {0}")]
    AggregateInputs(String),
    /// No signed head at all.
    #[error("the log has no signed tree head")]
    NoHead,
    /// The head's signature or log id is wrong.
    #[error("signature check failed: {0}")]
    Signature(#[from] SthError),
    /// The head claims more entries than the log holds.
    #[error("head covers {tree_size} entries but the log holds {entries} (log truncated)")]
    HeadBeyondLog {
        /// Size in the head.
        tree_size: u64,
        /// Entries present.
        entries: u64,
    },
    /// The head's root is not the root of the stored entries.
    #[error("signed root does not match the root recomputed from the entries")]
    RootMismatch,
    /// Heads out of order (size or time going back).
    #[error("heads out of order: {0}")]
    HeadOrder(String),
    /// Consistency proof between consecutive heads fails.
    #[error("not consistent with the previous head: {0}")]
    Inconsistent(ProofError),
    /// Entries after the last signed head.
    #[error("entries from {first} to {last} are not covered by any signed head")]
    UnsignedTail {
        /// First unsigned entry.
        first: u64,
        /// Last entry.
        last: u64,
    },
    /// The ε check failed.
    #[error("ε check: {0}")]
    Epsilon(String),
}

/// A problem and where it is: "entry 17: hash chain broken ...".
#[derive(Debug, Clone, PartialEq, Error, Serialize)]
#[error("{location}: {problem}")]
pub struct Failure {
    /// Where.
    pub location: Location,
    /// What.
    #[serde(serialize_with = "ser_display")]
    pub problem: Problem,
}

fn ser_display<S: serde::Serializer>(p: &Problem, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&p.to_string())
}

impl Failure {
    /// A failure at `location`.
    pub fn at(location: Location, problem: impl Into<Problem>) -> Self {
        Self {
            location,
            problem: problem.into(),
        }
    }
}

/// Errors of the ledger API.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// SQLite failed.
    #[cfg(feature = "sqlite")]
    #[error("storage: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A key problem.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The log on disk is damaged or was altered.
    #[error("log integrity check failed at {0}")]
    Integrity(Failure),
    /// Creating over an existing file.
    #[error("{0} already exists")]
    AlreadyExists(PathBuf),
    /// The log file does not exist.
    #[error("{0} does not exist")]
    NotFound(PathBuf),
    /// The signing key is not the log's key.
    #[error("the signing key does not belong to this log")]
    KeyMismatch,
    /// Opened read-only (no signing key).
    #[error("the log was opened read-only")]
    ReadOnly,
    /// An entry was refused before it was written.
    #[error("entry refused: {0}")]
    Refused(String),
    /// Proof could not be produced.
    #[error("proof: {0}")]
    Proof(#[from] ProofError),
    /// Nothing matches the request.
    #[error("not found: {0}")]
    NoSuch(String),
}

impl From<Failure> for LedgerError {
    fn from(f: Failure) -> Self {
        Self::Integrity(f)
    }
}
