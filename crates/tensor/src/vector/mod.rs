//! Encrypted vectors for interactive use (the API the Python package's
//! `cipherflow.ckks` exposes): a [`VectorContext`] holding the parameters
//! and keys, and [`CkksVector`]s with element-wise arithmetic, plaintext
//! matrix products, rotations, sums and polynomial evaluation, where the
//! levels and scales are managed for the caller.
//!
//! # Scales that always match
//!
//! TenSEAL's most frequent complaint is "scale out of bounds": in SEAL the
//! scale of a product is `Δ²/q`, which differs from the scale of a fresh
//! ciphertext, and additions of the two are refused. Here every level `l`
//! has one *canonical* scale `Δ_l`, with `Δ_L = 2^log_scale` and
//! `Δ_{l−1} = Δ_l² / q_l`, and every vector at level `l` is kept at exactly
//! `Δ_l`:
//! * a product of two vectors at level `l` lands on `Δ_{l−1}` after its
//!   rescale by construction; a plaintext or scalar product is encoded at
//!   the scale that makes it land there too;
//! * operands at different levels meet at the lower one: the higher is
//!   multiplied by the constant 1 encoded to land exactly on the lower
//!   level's scale (no precision lost, no level beyond the ones it drops);
//! * the chain stays near `2^log_scale` only if each `q_l` is close to
//!   `Δ_l² / 2^log_scale`: [`choose_params`] picks the primes that way (the
//!   chain of generic primes drifts, doubling its deviation at every level,
//!   and a context refuses one that left `2^log_scale · 2^±1`).
//!
//! # Layout
//!
//! A vector of `len ≤ slots` values is replicated with period
//! `chunk = next_power_of_two(len)` (the layout [`crate::EncodedMatVec`]
//! reads), the slots from `len` to `chunk` holding zero while the vector is
//! *clean*. Operations that may write non-zero values there (adding a
//! constant, a polynomial with a constant term, a rotation) mark it dirty,
//! and a sum of a dirty vector first multiplies by a mask (one level).
//! Rotations are cyclic over the padded length `chunk`.
//!
//! # Keys and decryption
//!
//! The relinearization key is made with the secret key. Galois keys are
//! made on demand when the context holds the secret key, and must be made
//! beforehand ([`VectorContext::generate_galois_keys`]) for a public
//! context (the bytes a server receives, [`VectorContext::to_bytes`]
//! without the secret key). [`VectorContext::decrypt`] is the key holder's
//! own view; values that leave the key holder go through
//! [`VectorContext::release`], which floods the decryption (sized from the
//! noise bound tracked through every operation, or one the caller states
//! for a vector that arrived as bytes) and counts it against the context's
//! release budget.
//!
//! Modules: `context` (parameters, keys, encryption, decryption, release),
//! `ops` (arithmetic), `bytes` (the strict byte formats).

mod bytes;
mod context;
mod ops;

pub use context::{
    choose_params, Released, VectorContext, DEFAULT_RELEASE_BUDGET, DEFAULT_STAT_SEC_BITS,
};
pub use ops::CkksVector;
