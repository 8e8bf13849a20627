//! Typed errors of the CKKS layer.

use cipherflow_ring::RingError;

/// Errors returned by every fallible CKKS operation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CkksError {
    /// The parameter set is below 128-bit security and the caller did not opt in.
    #[error(
        "insecure parameters: log2(QP) = {log_qp:.1} exceeds {max_log_qp} bits allowed at N = 2^{log_n} \
         for 128-bit security (HomomorphicEncryption.org standard); use fewer or smaller primes, \
         a larger N, or opt in explicitly with allow_insecure()"
    )]
    InsecureParameters {
        /// `log2 N`.
        log_n: u32,
        /// `log2(QP)` of the requested set.
        log_qp: f64,
        /// Largest allowed at 128 bits (0 if N is outside the table).
        max_log_qp: u32,
    },
    /// The parameters are malformed.
    #[error("invalid parameters: {0}")]
    InvalidParameters(String),
    /// An object was made under different parameters.
    #[error("object belongs to a different parameter set (fingerprint mismatch)")]
    ParamsMismatch,
    /// Operands are at different levels.
    #[error("level mismatch: {0} vs {1} (drop the higher one first)")]
    LevelMismatch(usize, usize),
    /// Operands have different scales.
    #[error("scale mismatch: 2^{0:.4} vs 2^{1:.4}")]
    ScaleMismatch(f64, f64),
    /// No level is left to rescale or drop to.
    #[error("no level left: ciphertext is at level {0}")]
    NoLevelLeft(usize),
    /// The requested level is invalid.
    #[error("invalid level {0}")]
    InvalidLevel(usize),
    /// Too many values for the slots.
    #[error("{given} values do not fit in {slots} slots")]
    TooManyValues {
        /// Values given.
        given: usize,
        /// Slots available.
        slots: usize,
    },
    /// A value or scale is not finite or too large to encode.
    #[error("value out of range for encoding: {0}")]
    ValueOutOfRange(String),
    /// The operation needs a key that was not generated.
    #[error("missing Galois key for element {0} (generate it with the key generator)")]
    MissingGaloisKey(u64),
    /// The operation needs special primes (key switching) the parameters lack.
    #[error("parameters have no special primes: key switching is unavailable")]
    NoKeySwitching,
    /// The ciphertext has the wrong number of components.
    #[error("ciphertext has {0} components; this operation needs {1}")]
    WrongSize(usize, usize),
    /// Two value vectors compared slot by slot differ in length or are
    /// empty (see [`crate::precision_bits`]).
    #[error(
        "cannot compare {want} expected values with {got} results (need equal, non-zero lengths)"
    )]
    LengthMismatch {
        /// Expected values.
        want: usize,
        /// Values obtained.
        got: usize,
    },
    /// Serialized bytes are malformed.
    #[error("malformed encoding: {0}")]
    Decode(String),
    /// Noise flooding or a noise bound is invalid, insufficient, or its
    /// release budget is spent.
    #[error("noise flooding: {0}")]
    Flooding(String),
    /// A multiparty protocol error (collective keys, threshold decryption).
    #[error(transparent)]
    Multiparty(#[from] crate::multiparty::MultipartyError),
    /// A ring-layer error.
    #[error(transparent)]
    Ring(#[from] RingError),
}
