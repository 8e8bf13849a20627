//! The platform's errors, each with the HTTP status it answers with.

use thiserror::Error;

/// What went wrong, on the platform or in talking to it.
#[derive(Debug, Error)]
pub enum PlatformError {
    /// A request, model, key or ciphertext that is malformed (400).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Nothing by that name (404).
    #[error("not found: {0}")]
    NotFound(String),
    /// Over a configured limit (413).
    #[error("too large: {0}")]
    TooLarge(String),
    /// Not allowed for this caller or model (403).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The query ran past its time budget, or would (503).
    #[error("over budget: {0}")]
    OverBudget(String),
    /// A party the query needs is not there (503): no model host online,
    /// or the session's computation ended.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The repository's storage failed (500); nothing stored was lost.
    #[error("storage: {0}")]
    Storage(String),
    /// The connection or TLS failed (client side).
    #[error("transport: {0}")]
    Transport(String),
    /// The platform answered with an error status (client side).
    #[error("the platform answered {status}: {reason}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The platform's reason.
        reason: String,
    },
}

impl PlatformError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            PlatformError::BadRequest(_) => 400,
            PlatformError::Forbidden(_) => 403,
            PlatformError::NotFound(_) => 404,
            PlatformError::TooLarge(_) => 413,
            PlatformError::OverBudget(_) | PlatformError::Unavailable(_) => 503,
            PlatformError::Storage(_) | PlatformError::Transport(_) => 500,
            PlatformError::Refused { status, .. } => *status,
        }
    }
}

impl From<cipherflow_tensor::TensorError> for PlatformError {
    fn from(e: cipherflow_tensor::TensorError) -> Self {
        PlatformError::BadRequest(e.to_string())
    }
}

impl From<cipherflow_nn::NnError> for PlatformError {
    fn from(e: cipherflow_nn::NnError) -> Self {
        PlatformError::BadRequest(e.to_string())
    }
}

impl From<cipherflow_mpc::MpcError> for PlatformError {
    fn from(e: cipherflow_mpc::MpcError) -> Self {
        PlatformError::Unavailable(format!("the secret-shared tail: {e}"))
    }
}

impl From<rusqlite::Error> for PlatformError {
    fn from(e: rusqlite::Error) -> Self {
        PlatformError::Storage(e.to_string())
    }
}

impl From<std::io::Error> for PlatformError {
    fn from(e: std::io::Error) -> Self {
        PlatformError::Storage(e.to_string())
    }
}
