#![doc = include_str!("../README.md")]
//!
//! ## Modules
//!
//! Layers: [`params`] (parameter sets and the security check), [`encoder`]
//! (canonical embedding), [`keys`] (secret, public, relinearization and
//! Galois keys, hybrid key switching), [`encrypt`] (encryption, decryption,
//! noise flooding of released results), [`noise`] (proven noise bounds),
//! [`evaluator`] (homomorphic operations), [`handoff`] (an evaluated
//! ciphertext turned into additive shares for secret-shared computation), [`serialize`]
//! (versioned, bit-packed, validated binary format), [`multiparty`]
//! (collective keys, threshold decryption, secure aggregation).

pub mod encoder;
pub mod encrypt;
pub mod error;
pub mod evaluator;
pub mod handoff;
pub mod keys;
mod literal;
pub mod multiparty;
pub mod noise;
pub mod params;
mod secret;
pub mod serialize;

pub use encoder::{precision_bits, Encoder, Plaintext};
pub use encrypt::{Ciphertext, Decryptor, Encryptor, Flooding, Releaser, MAX_DECRYPTIONS};
pub use error::CkksError;
pub use evaluator::Evaluator;
pub use handoff::{HandoffShare, SlotDecoding, HANDOFF_STAT_BITS};
pub use keys::{
    conjugation_galois_element, rotation_galois_element, GaloisKeys, PublicKey, RelinKey,
    SecretKey, SwitchingKey,
};
pub use literal::{ParamsLiteral, MAX_P_PRIMES, MAX_Q_PRIMES};
pub use noise::{Fresh, NoiseBound, DEFAULT_TAIL_BITS};
pub use num_complex::Complex64;
pub use params::{CkksParams, FloodTarget, FloodedParams, ParamsBuilder, Preset, SecurityLevel};
