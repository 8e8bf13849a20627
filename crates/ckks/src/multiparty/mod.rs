//! Multiparty CKKS: collective public-key generation, t-of-n threshold (and
//! n-of-n additive) decryption with smudged decryption shares.
//!
//! The design follows Mouchet, Troncoso-Pastoriza, Bossuat and Hubaux,
//! "Multiparty Homomorphic Encryption from Ring-Learning-with-Errors"
//! (PETS 2021), and the threshold scheme of Asharov, Jain, López-Alt,
//! Tromer, Vaikuntanathan and Wichs (Eurocrypt 2012); Lattigo's `multiparty`
//! package was the reference implementation we read (the code here is our
//! own).
//!
//! # Protocol
//! 1. **Setup.** All parties agree on a [`Crs`] and the party ids `1..=n`
//!    (any distinct non-zero ids).
//! 2. **Collective key.** Party `i` samples a [`SecretShare`] `s_i` and
//!    publishes [`public_key_share`] `p_i = −a·s_i + e_i`;
//!    [`combine_public_key`] sums them into an ordinary [`crate::PublicKey`]
//!    of `s = Σ s_i`.
//! 3. **Threshold.** Party `i` runs [`shamir_deal`] and sends `f_i(j)` to
//!    party `j` (secretly); party `j` runs [`shamir_combine`] to obtain its
//!    [`ThresholdSecret`] `F(j)`. Any `t` parties can now decrypt; `t − 1`
//!    learn nothing about `s`. ([`LocalParties`] runs steps 2 and 3 for
//!    every party in one process: tests, benchmarks, simulations.)
//! 4. **Decryption.** Each party of an active set `S` (`|S| ≥ t`) sends
//!    [`decryption_share`]; [`combine_decryption`] adds them to `c0` and
//!    returns the plaintext. In n-of-n mode parties use
//!    [`decryption_share_additive`] with their `s_i` directly.
//!
//! # Security notes
//! * Semi-honest model with an honest majority of the threshold for
//!   privacy. For correctness, decrypt with `t + 1` holders: the shares
//!   then check each other (see [`combine_aggregate`] and [`is_checkable`]),
//!   and one lying holder is caught or changes
//!   nothing. With `t` holders (or a coalition of liars) a malicious party
//!   can make decryption come out wrong; no party learns more than the
//!   output. Authenticate every message (mTLS).
//! * Shamir shares are secret and must travel encrypted to their recipient.
//! * Decryption shares are smudged ([`Smudging`]): `2^λ` times the
//!   ciphertext noise, λ = 40 by default. Only ask parties to decrypt
//!   ciphertexts whose release is intended (e.g. an aggregate of at least a
//!   quorum of updates): a decryption share of a single client's ciphertext
//!   decrypts it.
//!
//! # Example
//! ```
//! use cipherflow_ckks::multiparty::*;
//! use cipherflow_ckks::{Encoder, Encryptor, Preset};
//! # fn main() -> Result<(), cipherflow_ckks::CkksError> {
//! let params = Preset::Aggregation.build()?;
//! let mut rng = cipherflow_ring::sampler::secure_rng()?;
//! let crs = Crs::generate(&mut rng);
//! let ids = [1u64, 2, 3];
//! let sks: Vec<SecretShare> =
//!     ids.iter().map(|&id| SecretShare::generate_for(&params, id, &mut rng)).collect();
//! let pk_shares = sks
//!     .iter()
//!     .map(|sk| public_key_share(&params, sk, &crs, &mut rng))
//!     .collect::<Result<Vec<_>, _>>()?;
//! let pk = combine_public_key(&params, &crs, &pk_shares)?;
//! // 2-of-3: every party deals, every party combines what it received.
//! let mut dealt = Vec::new();
//! for sk in &sks {
//!     dealt.extend(shamir_deal(&params, sk, 2, &ids, &mut rng)?);
//! }
//! let thr: Vec<ThresholdSecret> = ids
//!     .iter()
//!     .map(|&id| {
//!         let mine: Vec<ShamirShare> = dealt.iter().filter(|s| s.to() == id).cloned().collect();
//!         shamir_combine(&params, id, &mine)
//!     })
//!     .collect::<Result<_, _>>()?;
//! // Encrypt at level 1 with a large scale: the smudging noise is ~2^60.
//! let enc = Encoder::new(&params);
//! let pt = enc.encode(&[1.5, -2.25], 1, 2f64.powi(90))?;
//! let ct = Encryptor::with_public_key(&pk).encrypt(&pt, &mut rng)?;
//! let smudging = Smudging::for_fresh_sum(&params, ids.len(), 1, DEFAULT_STAT_SEC_BITS)?;
//! let active = [1u64, 3];
//! let shares = [&thr[0], &thr[2]]
//!     .iter()
//!     .map(|t| decryption_share(&params, t, &active, &ct, &smudging, &mut rng))
//!     .collect::<Result<Vec<_>, _>>()?;
//! let out = enc.decode(&combine_decryption(&params, &ct, &shares)?)?;
//! assert!((out[0] - 1.5).abs() < 1e-4 && (out[1] + 2.25).abs() < 1e-4);
//! # Ok(()) }
//! ```

mod aggregate;
mod check;
mod collective_keygen;
mod decrypt;
mod encoding;
mod error;
mod local;
mod shamir;
mod smudging;

pub use aggregate::{
    aggregate_decryption_share, aggregation_seed, combine_aggregate, key_holder_share,
    max_abs_value, share_encrypt, share_sum_noise_log2, AggregateShare, SharedCiphertext,
    MAX_CHUNKS,
};
pub use check::{check_witness_bits, is_checkable, max_abs_value_checked};
pub use collective_keygen::{
    combine_public_key, ideal_secret_key, public_key_share, Crs, PublicKeyShare, SecretShare,
};
pub use decrypt::{
    ciphertext_hash, combine_decryption, decryption_share, decryption_share_additive,
    DecryptionShare, ShareMode,
};
pub use encoding::MAX_PARTIES;
pub use error::MultipartyError;
pub use local::LocalParties;
pub use shamir::{shamir_combine, shamir_deal, ShamirShare, ThresholdSecret};
pub use smudging::{Smudging, DEFAULT_STAT_SEC_BITS, MAX_SMUDGING_LOG2};

#[cfg(test)]
mod tests;
