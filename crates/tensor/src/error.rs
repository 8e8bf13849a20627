//! Typed errors of the encrypted-tensor layer.

use cipherflow_ckks::CkksError;
use cipherflow_nn::NnError;

/// Errors of every fallible operation of this crate.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TensorError {
    /// A CKKS operation failed (level, scale, key or parameter problem).
    #[error(transparent)]
    Ckks(#[from] CkksError),
    /// The plaintext model is malformed.
    #[error("model: {0}")]
    Nn(String),
    /// Shapes or layouts do not match.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// The model uses a layer that cannot run on CKKS ciphertexts.
    #[error("unsupported under encryption: {0}")]
    Unsupported(String),
    /// No 128-bit secure parameter set fits the model's depth.
    #[error("the model does not fit: {0}")]
    DoesNotFit(String),
    /// An argument is out of range.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// A key the operation needs is not in this context.
    #[error("missing key: {0}")]
    MissingKey(String),
}

impl From<NnError> for TensorError {
    fn from(e: NnError) -> Self {
        TensorError::Nn(e.to_string())
    }
}
