//! `cipherflow-ckks`: RNS-CKKS approximate homomorphic encryption.
//!
//! ```
//! use cipherflow_ckks::*;
//! # fn main() -> Result<(), CkksError> {
//! let params = Preset::Depth2.build()?;               // N = 2^13, 128-bit secure
//! let mut rng = cipherflow_ring::sampler::secure_rng(); // ChaCha20 seeded by the OS
//! let sk = SecretKey::generate(&params, &mut rng);
//! let pk = PublicKey::generate(&sk, &mut rng)?;
//! let rlk = RelinKey::generate(&sk, &mut rng)?;
//! let encoder = Encoder::new(&params);
//! let eval = Evaluator::new(&params);
//! let ct = Encryptor::with_public_key(&pk).encrypt_values(&encoder, &[1.5, -2.0], &mut rng)?;
//! let sq = eval.rescale(&eval.mul_relin(&ct, &ct, &rlk)?)?;
//! let out = Decryptor::new(&sk).decrypt_values(&sq)?;
//! assert!((out[0] - 2.25).abs() < 1e-6 && (out[1] - 4.0).abs() < 1e-6);
//! # Ok(()) }
//! ```
//!
//! Layers: [`params`] (parameter sets and the security check), [`encoder`]
//! (canonical embedding), [`keys`] (secret, public, relinearization and
//! Galois keys, hybrid key switching), [`encrypt`] (encryption, decryption,
//! noise flooding of released results), [`noise`] (proven noise bounds),
//! [`evaluator`] (homomorphic operations), [`serialize`]
//! (versioned, bit-packed, validated binary format).

pub mod encoder;
pub mod encrypt;
pub mod error;
pub mod evaluator;
pub mod keys;
pub mod multiparty;
pub mod noise;
pub mod params;
pub mod serialize;

pub use encoder::{precision_bits, Encoder, Plaintext};
pub use encrypt::{Ciphertext, Decryptor, Encryptor, Flooding, Releaser, MAX_DECRYPTIONS};
pub use error::CkksError;
pub use evaluator::Evaluator;
pub use keys::{
    conjugation_galois_element, rotation_galois_element, GaloisKeys, PublicKey, RelinKey,
    SecretKey, SwitchingKey,
};
pub use noise::{Fresh, NoiseBound, DEFAULT_TAIL_BITS};
pub use num_complex::Complex64;
pub use params::{CkksParams, FloodTarget, FloodedParams, ParamsBuilder, Preset, SecurityLevel};
