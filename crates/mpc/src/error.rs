//! Typed errors.

use thiserror::Error;

/// Everything that can go wrong in a secret-shared computation.
#[derive(Debug, Error)]
pub enum MpcError {
    /// A peer sent nothing within the receive timeout.
    #[error("timed out after {ms} ms waiting for party {from}")]
    Timeout {
        /// The silent peer.
        from: usize,
        /// The timeout.
        ms: u128,
    },
    /// A peer did not take a message within the timeout (stopped, or
    /// too slow: its receive buffers stayed full).
    #[error("timed out after {ms} ms sending to party {to} (it stopped reading)")]
    SendTimeout {
        /// The peer that did not read.
        to: usize,
        /// The timeout.
        ms: u128,
    },
    /// A peer closed its connection (or its thread ended).
    #[error(
        "party {0} closed the connection (it failed, or gave up on a party that stopped \
         answering: see its own error)"
    )]
    PeerClosed(usize),
    /// A peer gave up and said why (its own error, as it reports it).
    #[error("party {from} aborted: {reason}")]
    Aborted {
        /// The peer that gave up.
        from: usize,
        /// Its error message (printable characters, at most 1 KiB).
        reason: String,
    },
    /// A peer's message does not have the expected form.
    #[error("malformed message from party {from}: {what}")]
    Malformed {
        /// The peer.
        from: usize,
        /// What was wrong.
        what: String,
    },
    /// A frame ended before the length its header announced.
    #[error("truncated frame: expected {expected} bytes, got {got}")]
    Truncated {
        /// Announced length.
        expected: usize,
        /// Bytes received before end of stream.
        got: usize,
    },
    /// A frame header announced more than the configured maximum.
    #[error("frame of {0} bytes exceeds the limit of {1} bytes")]
    FrameTooLarge(usize, usize),
    /// Shapes do not fit the operation.
    #[error("shape mismatch in {op}: {detail}")]
    Shape {
        /// Operation.
        op: &'static str,
        /// Details.
        detail: String,
    },
    /// Invalid argument or configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A program (`graph::Program`) that does not validate, or that the
    /// parties do not agree on.
    #[error("invalid program: {0}")]
    Program(String),
    /// A party id outside 0..3 or an operation on the wrong party.
    #[error("party error: {0}")]
    Party(String),
    /// Socket or file I/O.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// TLS handshake, certificates or record layer.
    #[error("tls: {0}")]
    Tls(String),
    /// The model or data set (nn crate).
    #[error(transparent)]
    Nn(#[from] cipherflow_nn::NnError),
}

impl MpcError {
    /// The party this error names, if any.
    pub fn peer(&self) -> Option<usize> {
        match self {
            MpcError::Timeout { from, .. }
            | MpcError::Aborted { from, .. }
            | MpcError::Malformed { from, .. } => Some(*from),
            MpcError::SendTimeout { to, .. } => Some(*to),
            MpcError::PeerClosed(p) => Some(*p),
            _ => None,
        }
    }

    /// Whether this error reports another party's failure (it left, or
    /// stopped answering) rather than a failure of its own.
    pub fn is_consequence(&self) -> bool {
        matches!(
            self,
            MpcError::PeerClosed(_)
                | MpcError::Timeout { .. }
                | MpcError::SendTimeout { .. }
                | MpcError::Aborted { .. }
        )
    }
}

impl From<rustls::Error> for MpcError {
    fn from(e: rustls::Error) -> Self {
        MpcError::Tls(e.to_string())
    }
}

impl From<rcgen::Error> for MpcError {
    fn from(e: rcgen::Error) -> Self {
        MpcError::Tls(format!("certificate generation: {e}"))
    }
}

pub(crate) fn shape_err(op: &'static str, detail: impl Into<String>) -> MpcError {
    MpcError::Shape {
        op,
        detail: detail.into(),
    }
}
