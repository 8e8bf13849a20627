//! Typed errors of the multiparty protocols.

/// Errors of collective key generation and threshold decryption. Wrapped in
/// [`crate::CkksError::Multiparty`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MultipartyError {
    /// No shares were given.
    #[error("no shares given")]
    NoShares,
    /// A party id is zero, or zero / not distinct modulo one of the primes
    /// (Shamir evaluation points must be distinct non-zero field elements).
    #[error("invalid party id {0}: ids must be non-zero and distinct modulo every prime")]
    InvalidPartyId(u64),
    /// The same party appears twice.
    #[error("party {0} appears more than once")]
    DuplicateParty(u64),
    /// A party expected by the protocol sent no share.
    #[error("missing share of party {0}")]
    MissingParty(u64),
    /// A share comes from a party outside the expected set.
    #[error("party {0} is not part of this set")]
    UnexpectedParty(u64),
    /// The threshold is not in `1..=n`.
    #[error("threshold {threshold} is not in 1..={parties}")]
    InvalidThreshold {
        /// Requested threshold.
        threshold: usize,
        /// Number of parties.
        parties: usize,
    },
    /// Fewer parties than the threshold.
    #[error("{have} shares but the threshold is {need}")]
    NotEnoughShares {
        /// Shares available.
        have: usize,
        /// Threshold.
        need: usize,
    },
    /// The share was made for another ciphertext, level, CRS, threshold,
    /// party set or recipient.
    #[error("share does not match: {0}")]
    Mismatch(String),
    /// A checked decryption's shares are inconsistent: one was altered.
    #[error("decryption check failed: {0}")]
    CheckFailed(String),
    /// Threshold and additive (n-of-n) decryption shares were mixed.
    #[error("threshold and additive decryption shares cannot be combined")]
    MixedModes,
    /// The ciphertext must be relinearized (two components) before decryption.
    #[error("ciphertext has {0} components; relinearize to 2 before threshold decryption")]
    NotRelinearized(usize),
    /// The smudging parameters are out of range.
    #[error("invalid smudging parameters: {0}")]
    InvalidSmudging(String),
    /// The modulus left at the decryption level cannot hold the value plus
    /// the smudging noise at the ciphertext's scale.
    #[error(
        "decodable modulus at level {level} (at most the first two primes) has {have_bits:.1} bits but value × scale + ciphertext noise + \
         smudging of {parties} parties needs {need_bits:.1} (+1 sign bit): decrypt at a higher level, \
         lower the scale, or lower the statistical security / noise bound"
    )]
    ModulusTooSmall {
        /// Decryption level.
        level: usize,
        /// `log2 Q_level`.
        have_bits: f64,
        /// Bits needed.
        need_bits: f64,
        /// Parties whose smudging is added.
        parties: usize,
    },
}
