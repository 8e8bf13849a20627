//! Typed errors of the federated layer.

use cipherflow_ckks::CkksError;
use cipherflow_dp::DpError;
use cipherflow_ledger::LedgerError;
use cipherflow_nn::NnError;

/// Errors of configuration, protocol, storage and transport.
#[derive(Debug, thiserror::Error)]
pub enum FedError {
    /// The configuration is invalid or inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A message broke the protocol (wrong federation, round, size, order).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// A peer's answer does not convert to its domain type (a proof that
    /// does not decode, a digest of the wrong length, a task of no kind).
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A peer is not in the roster.
    #[error("unenrolled client: {0}")]
    Unenrolled(String),
    /// A peer's identity was revoked.
    #[error("revoked client: {0}")]
    Revoked(String),
    /// A message was a replay of one already processed with other content.
    #[error("replayed or conflicting message: {0}")]
    Replay(String),
    /// A request is refused by policy (budget, quorum, audit-log check).
    #[error("refused: {0}")]
    Refused(String),
    /// The privacy budget would be exceeded.
    #[error("privacy budget exhausted: {0}")]
    Budget(String),
    /// Not yet possible; retry later (wrong phase, waiting for others).
    #[error("not ready: {0}")]
    NotReady(String),
    /// Cryptographic failure (CKKS, sealing).
    #[error("crypto: {0}")]
    Crypto(String),
    /// Ring layer (the operating system's randomness).
    #[error(transparent)]
    Ring(#[from] cipherflow_ring::RingError),
    /// CKKS layer.
    #[error(transparent)]
    Ckks(#[from] CkksError),
    /// DP layer.
    #[error(transparent)]
    Dp(#[from] DpError),
    /// Audit ledger.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Neural-network layer (training, model shapes).
    #[error(transparent)]
    Nn(#[from] NnError),
    /// SQLite state.
    #[error("state database: {0}")]
    Store(#[from] rusqlite::Error),
    /// Postgres state (`--state postgres://…`).
    #[error("state database (Postgres): {0}")]
    Postgres(#[from] postgres::Error),
    /// Files.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: String,
        /// The cause (in the message; not repeated as a source, so a
        /// report that prints the cause chain names it once).
        cause: std::io::Error,
    },
    /// Transport (gRPC, TLS).
    #[error("transport: {0}")]
    Transport(String),
    /// Encoding of stored state or of a message's bytes.
    #[error("encoding: {0}")]
    Encoding(String),
    /// A decrypted result failed its checks (a key holder's share was
    /// wrong: bound, carry or padding violated).
    #[error("verification failed: {0}")]
    Verification(String),
    /// A stored artifact does not match the hash recorded for it.
    #[error("integrity: {0}")]
    Integrity(String),
    /// The state (a directory or a Postgres database) is in use by another
    /// process.
    #[error("state locked: {0}")]
    Locked(String),
}

impl FedError {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<std::path::Path>, cause: std::io::Error) -> Self {
        FedError::Io {
            path: path.as_ref().display().to_string(),
            cause,
        }
    }
}

impl From<serde_json::Error> for FedError {
    fn from(e: serde_json::Error) -> Self {
        FedError::Encoding(e.to_string())
    }
}

impl From<cipherflow_ledger::DecodeError> for FedError {
    fn from(e: cipherflow_ledger::DecodeError) -> Self {
        FedError::Encoding(e.to_string())
    }
}

impl From<cipherflow_ledger::KeyError> for FedError {
    fn from(e: cipherflow_ledger::KeyError) -> Self {
        FedError::Crypto(format!("ledger key: {e}"))
    }
}

/// Result alias.
pub type Result<T, E = FedError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_names_its_cause_once_in_a_cause_chain_report() {
        let e = FedError::io("state.json", std::io::Error::other("disk full"));
        // What a report that prints the cause chain shows.
        let mut report = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            report.push_str(&format!(": {c}"));
            cause = c.source();
        }
        assert_eq!(report.matches("disk full").count(), 1, "{report}");
        assert!(report.starts_with("state.json"), "{report}");
    }
}
