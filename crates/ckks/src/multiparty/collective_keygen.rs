//! Collective public-key generation (Mouchet et al. 2021, §4 "EncKeyGen").
//!
//! Every party `i` samples a ternary secret `s_i` and publishes
//! `p_i = −a·s_i + e_i` for the common `a` expanded from the CRS. The sum
//! `(Σ p_i, a) = (−a·s + Σ e_i, a)` with `s = Σ s_i` is an ordinary RLWE
//! public key of the (never assembled) collective secret `s`, with an error
//! `n` times wider than a single-party key.

use super::error::MultipartyError;
use crate::error::CkksError;
use crate::keys::{rlwe_body, PublicKey, SecretKey};
use crate::params::CkksParams;
use crate::secret::SecretPoly;
use cipherflow_ring::sampler::{ternary, uniform_from_seed};
use cipherflow_ring::RnsPoly;
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use zeroize::{ZeroizeOnDrop, Zeroizing};

/// The common reference string: a public 32-byte seed all parties agree on
/// (e.g. drawn by the coordinator and recorded in the ledger). Every public
/// random polynomial of the protocol is derived from it with a domain label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Crs(pub [u8; 32]);

impl Crs {
    /// A fresh CRS from a cryptographically secure generator.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        Self(cipherflow_ring::sampler::fresh_seed(rng))
    }

    /// The seed of the public polynomial `a` of the collective public key:
    /// `SHA-256("cipherflow-ckks-mp-cpk" ‖ crs)`, expanded like the `a` of
    /// an ordinary public key (so the combined key serializes as usual).
    pub fn public_key_seed(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"cipherflow-ckks-mp-cpk");
        h.update(self.0);
        h.finalize().into()
    }
}

/// A party's secret-key share `s_i` (uniform ternary), kept as its small
/// coefficients and in NTT form over `Q ∪ P`. Zeroized on drop, redacted in
/// `Debug`. Serialize with [`SecretShare::to_bytes`] only into protected
/// storage.
#[derive(Clone)]
pub struct SecretShare {
    pub(crate) coeffs: Zeroizing<Vec<i64>>,
    pub(crate) poly: SecretPoly,
    pub(crate) party_id: Option<u64>,
    pub(crate) params: CkksParams,
}

impl ZeroizeOnDrop for SecretShare {}

impl std::fmt::Debug for SecretShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretShare(<redacted>)")
    }
}

impl SecretShare {
    /// Samples a fresh ternary secret share.
    pub fn generate<R: RngCore + CryptoRng>(params: &CkksParams, rng: &mut R) -> Self {
        let coeffs = ternary(rng, params.n());
        Self::from_coeffs(params, coeffs)
    }

    pub(crate) fn from_coeffs(params: &CkksParams, coeffs: Zeroizing<Vec<i64>>) -> Self {
        let ring = params.ring();
        let poly = RnsPoly::from_signed_ntt(ring, &coeffs, ring.q_len(), ring.p_len());
        Self {
            coeffs,
            poly: poly.into(),
            party_id: None,
            params: params.clone(),
        }
    }

    /// Samples a fresh ternary secret share for party `id` (its public
    /// Shamir evaluation point, see [`super::shamir_deal`]).
    pub fn generate_for<R: RngCore + CryptoRng>(params: &CkksParams, id: u64, rng: &mut R) -> Self {
        Self::generate(params, rng).with_party_id(id)
    }

    /// Records the owner's public party id (needed to deal Shamir shares and
    /// to tag additive decryption shares).
    pub fn with_party_id(mut self, id: u64) -> Self {
        self.party_id = Some(id);
        self
    }

    /// The owner's party id, if set.
    pub fn party_id(&self) -> Option<u64> {
        self.party_id
    }

    /// The parameters of this share.
    pub fn params(&self) -> &CkksParams {
        &self.params
    }

    /// `s_i` restricted to the first `q_len` ciphertext primes.
    pub(crate) fn restricted(&self, q_len: usize) -> Result<SecretPoly, CkksError> {
        let mut s = self.poly.clone();
        s.truncate(q_len, false)?;
        Ok(s)
    }

    pub(crate) fn check(&self, params: &CkksParams) -> Result<(), CkksError> {
        if &self.params != params {
            return Err(CkksError::ParamsMismatch);
        }
        Ok(())
    }
}

/// The *ideal* secret key `s = Σ s_i` that no party ever holds. Assembling
/// it defeats the protocol: this exists for tests, noise measurement and
/// audits of a finished federation, never for production decryption.
pub fn ideal_secret_key(
    params: &CkksParams,
    shares: &[SecretShare],
) -> Result<SecretKey, CkksError> {
    let ring = params.ring();
    let mut acc = RnsPoly::zero(ring, ring.q_len(), ring.p_len(), true);
    if shares.is_empty() {
        return Err(MultipartyError::NoShares.into());
    }
    for s in shares {
        s.check(params)?;
        acc.add_assign(ring, &s.poly)?;
    }
    SecretKey::from_poly(params, acc)
}

/// A party's public-key share `p_i = −a·s_i + e_i` over `Q ∪ P` (NTT form),
/// tagged with the CRS it was made for.
#[derive(Clone, Debug, PartialEq)]
pub struct PublicKeyShare {
    pub(crate) b: RnsPoly,
    pub(crate) seed: [u8; 32],
    pub(crate) params: CkksParams,
}

impl PublicKeyShare {
    /// The seed of `a` this share was made with ([`Crs::public_key_seed`]).
    pub fn crs_seed(&self) -> &[u8; 32] {
        &self.seed
    }
}

/// Computes party `i`'s public-key share `−a·s_i + e_i`, `e_i` from the
/// σ = 3.2 discrete Gaussian, `a` expanded from `crs`.
pub fn public_key_share<R: RngCore + CryptoRng>(
    params: &CkksParams,
    sk: &SecretShare,
    crs: &Crs,
    rng: &mut R,
) -> Result<PublicKeyShare, CkksError> {
    sk.check(params)?;
    let ring = params.ring();
    let seed = crs.public_key_seed();
    let a = uniform_from_seed(ring, &seed, ring.q_len(), ring.p_len());
    let b = rlwe_body(params, &a, &sk.poly, rng)?;
    Ok(PublicKeyShare {
        b,
        seed,
        params: params.clone(),
    })
}

/// Sums the public-key shares of all parties into the collective public
/// key, usable with [`crate::Encryptor::with_public_key`]. Every share must
/// have been made for `crs` under `params`; a share given twice is refused
/// (it would double that party's secret in the key). The caller must pass
/// the shares of exactly the parties whose secrets are later shared or
/// used for decryption.
pub fn combine_public_key(
    params: &CkksParams,
    crs: &Crs,
    shares: &[PublicKeyShare],
) -> Result<PublicKey, CkksError> {
    if shares.is_empty() {
        return Err(MultipartyError::NoShares.into());
    }
    let ring = params.ring();
    let (q_len, p_len) = (ring.q_len(), ring.p_len());
    let seed = crs.public_key_seed();
    let mut b = RnsPoly::zero(ring, q_len, p_len, true);
    let mut seen = BTreeSet::new();
    for s in shares {
        if &s.params != params {
            return Err(CkksError::ParamsMismatch);
        }
        if s.seed != seed {
            return Err(
                MultipartyError::Mismatch("public-key share made for another CRS".into()).into(),
            );
        }
        let mut h = Sha256::new();
        for x in s.b.data() {
            h.update(x.to_le_bytes());
        }
        let digest: [u8; 32] = h.finalize().into();
        if !seen.insert(digest) {
            return Err(MultipartyError::Mismatch(
                "the same public-key share was given twice".into(),
            )
            .into());
        }
        b.add_assign(ring, &s.b)?;
    }
    Ok(PublicKey {
        b,
        a: uniform_from_seed(ring, &seed, q_len, p_len),
        seed,
        params: params.clone(),
    })
}
