//! [`WebError`]: every failure of the browser client, with its reason.

use thiserror::Error;

/// A failure of the browser client. Its text is what the page shows
/// beside the control that caused it; it never holds key material.
#[derive(Debug, Error)]
pub enum WebError {
    /// A spec, key, ciphertext or answer the tensor layer refused.
    #[error(transparent)]
    Tensor(#[from] cipherflow_tensor::TensorError),
    /// An image or preprocessing the model layer refused.
    #[error(transparent)]
    Model(#[from] cipherflow_nn::NnError),
    /// The browser's randomness failed.
    #[error("randomness: {0}")]
    Randomness(#[from] cipherflow_ring::RingError),
    /// CKKS parameters or an operation the scheme refused.
    #[error(transparent)]
    Ckks(#[from] cipherflow_ckks::CkksError),
    /// A proof or public key that does not verify or does not parse.
    #[error("{0}")]
    Proof(String),
    /// A kernel of this build computed something other than its reference.
    #[error("{0}")]
    SelfTest(&'static str),
    /// A saved key that is malformed, or made for another model or spec.
    #[error("{0}")]
    Sealed(String),
    /// A passphrase too short to seal with, or one that does not open a
    /// saved key (wrong, or the record altered: the two look the same).
    #[error("{0}")]
    Passphrase(String),
    /// Anything else malformed, with its reason.
    #[error("{0}")]
    Invalid(String),
}

/// The known-answer checks run before any key is made: the SIMD kernels
/// (ChaCha20, the Gaussian's table scan) must equal their portable forms,
/// or nothing is made (`cipherflow_ring::simd_self_test`).
pub(crate) fn self_test() -> Result<(), WebError> {
    if cipherflow_ring::simd_self_test() {
        Ok(())
    } else {
        Err(WebError::SelfTest(
            "this browser's SIMD kernels disagree with their reference: no keys made",
        ))
    }
}
