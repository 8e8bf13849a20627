//! Keys: secret, public, and switching keys (relinearization and Galois)
//! for hybrid (GHS) key switching with `dnum` digits.
//!
//! A switching key from `s'` to `s` holds, for each digit `D_j` of `α`
//! consecutive ciphertext primes, `(b_j, a_j)` over `Q ∪ P` with
//! `b_j = −a_j·s + e_j + P·g_j·s'`, where `g_j ≡ 1 mod D_j` and `≡ 0` mod the
//! other primes. The `a_j` are expanded from one 32-byte seed, so keys travel
//! at half size. Key switching only needs `(b_j, a_j)` of this form, so a
//! collectively generated key (multiparty) is used the same way.

use crate::error::CkksError;
use crate::params::CkksParams;
use crate::secret::SecretPoly;
use cipherflow_ring::basis::{mod_down, mod_up_digits};
use cipherflow_ring::sampler::{fresh_seed, gaussian, ternary, uniform_from_seed};
use cipherflow_ring::RnsPoly;
use rand_core::{CryptoRng, RngCore};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use zeroize::{ZeroizeOnDrop, Zeroizing};

/// The secret key `s` (uniform ternary), in NTT form over `Q ∪ P`.
/// Zeroized on drop; never printed.
#[derive(Clone)]
pub struct SecretKey {
    pub(crate) poly: SecretPoly,
    pub(crate) params: CkksParams,
}

impl ZeroizeOnDrop for SecretKey {}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey(<redacted>)")
    }
}

impl SecretKey {
    /// Samples a uniform ternary secret key.
    pub fn generate<R: RngCore + CryptoRng>(params: &CkksParams, rng: &mut R) -> Self {
        let ring = params.ring();
        let coeffs = ternary(rng, params.n());
        let poly = RnsPoly::from_signed_ntt(ring, &coeffs, ring.q_len(), ring.p_len());
        Self {
            poly: poly.into(),
            params: params.clone(),
        }
    }

    /// Builds a secret key from an NTT-form polynomial over `Q ∪ P` (for
    /// deserialization and multiparty shares).
    pub fn from_poly(params: &CkksParams, poly: RnsPoly) -> Result<Self, CkksError> {
        let ring = params.ring();
        if !poly.is_ntt() || poly.q_len() != ring.q_len() || poly.p_len() != ring.p_len() {
            return Err(CkksError::Decode("secret key shape".into()));
        }
        Ok(Self {
            poly: poly.into(),
            params: params.clone(),
        })
    }

    /// The parameters of this key.
    pub fn params(&self) -> &CkksParams {
        &self.params
    }

    /// The key polynomial restricted to `q_len` ciphertext limbs (and the
    /// special limbs when `with_p`).
    pub(crate) fn restricted(&self, q_len: usize, with_p: bool) -> SecretPoly {
        let mut s = self.poly.clone();
        // Shapes are internal invariants: truncate cannot fail for q_len ≤ L+1.
        let _ = s.truncate(q_len, with_p);
        s
    }
}

/// `−a·s + e` in NTT form, shaped like `a`, with `e` from the σ = 3.2
/// Gaussian: the body of every RLWE sample (public key, switching keys,
/// secret-key encryption). `s` must have `a`'s limbs (or a longer Q-prefix).
pub(crate) fn rlwe_body<R: RngCore + CryptoRng>(
    params: &CkksParams,
    a: &RnsPoly,
    s: &RnsPoly,
    rng: &mut R,
) -> Result<RnsPoly, CkksError> {
    let ring = params.ring();
    let e = gaussian(rng, params.n());
    // e, less a·s in one fused pass: no temporary holding a·s.
    let mut b = RnsPoly::from_signed_ntt(ring, &e, a.q_len(), a.p_len());
    b.mul_subtract(ring, a, s)?;
    Ok(b)
}

/// The public key `(b, a) = (−a·s + e, a)` over `Q ∪ P` (the special
/// primes too, as SEAL's), NTT form: an encryption is made over `Q ∪ P`
/// and divided by `P`, which divides its noise by `P` and leaves the
/// rounding ([`crate::Encryptor`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PublicKey {
    pub(crate) b: RnsPoly,
    pub(crate) a: RnsPoly,
    pub(crate) seed: [u8; 32],
    pub(crate) params: CkksParams,
}

impl PublicKey {
    /// Generates the public key of `sk`.
    pub fn generate<R: RngCore + CryptoRng>(
        sk: &SecretKey,
        rng: &mut R,
    ) -> Result<Self, CkksError> {
        let params = &sk.params;
        let ring = params.ring();
        let seed = fresh_seed(rng);
        // Over Q ∪ P, as SEAL's: encryption divides its noise by P.
        let a = uniform_from_seed(ring, &seed, ring.q_len(), ring.p_len());
        let b = rlwe_body(params, &a, &sk.poly, rng)?;
        Ok(Self {
            b,
            a,
            seed,
            params: params.clone(),
        })
    }

    /// The parameters of this key.
    pub fn params(&self) -> &CkksParams {
        &self.params
    }
}

/// A key-switching key (see the module documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct SwitchingKey {
    pub(crate) b: Vec<RnsPoly>,
    pub(crate) a: Vec<RnsPoly>,
    pub(crate) seed: [u8; 32],
}

/// The seed of digit `j`'s `a_j`.
pub(crate) fn digit_seed(seed: &[u8; 32], j: usize) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"cipherflow-ckks-swk-a");
    h.update(seed);
    h.update((j as u64).to_le_bytes());
    h.finalize().into()
}

impl SwitchingKey {
    /// Generates a key switching from `s_prime` (NTT form over `Q ∪ P`) to `sk`.
    pub(crate) fn generate<R: RngCore + CryptoRng>(
        sk: &SecretKey,
        s_prime: &RnsPoly,
        rng: &mut R,
    ) -> Result<Self, CkksError> {
        let params = &sk.params;
        let ring = params.ring();
        let alpha = params.alpha();
        if alpha == 0 {
            return Err(CkksError::NoKeySwitching);
        }
        let (q_len, p_len) = (ring.q_len(), ring.p_len());
        let seed = fresh_seed(rng);
        let dnum = params.dnum();
        let q_tables = ring.q_tables();
        let mut b_all = Vec::with_capacity(dnum);
        let mut a_all = Vec::with_capacity(dnum);
        for j in 0..dnum {
            let a = uniform_from_seed(ring, &digit_seed(&seed, j), q_len, p_len);
            let mut b = rlwe_body(params, &a, &sk.poly, rng)?;
            // + P · s' on the limbs of digit j.
            for i in j * alpha..((j + 1) * alpha).min(q_len) {
                let Some(t) = q_tables.get(i) else { continue };
                let m = t.modulus();
                let p_mod = params
                    .p()
                    .iter()
                    .fold(1u64, |acc, &p| m.mul(acc, m.reduce(p)));
                let ps = m.shoup(p_mod);
                let sp = s_prime.limb(i);
                for (x, &s) in b.limb_mut(i).iter_mut().zip(sp) {
                    *x = m.add(*x, m.mul_shoup(s, p_mod, ps));
                }
            }
            b_all.push(b);
            a_all.push(a);
        }
        Ok(Self {
            b: b_all,
            a: a_all,
            seed,
        })
    }

    /// Rebuilds a key from its `b` parts and seed (deserialization).
    pub(crate) fn from_parts(
        params: &CkksParams,
        b: Vec<RnsPoly>,
        seed: [u8; 32],
    ) -> Result<Self, CkksError> {
        let ring = params.ring();
        if b.len() != params.dnum() {
            return Err(CkksError::Decode("switching key digit count".into()));
        }
        let a = (0..b.len())
            .map(|j| uniform_from_seed(ring, &digit_seed(&seed, j), ring.q_len(), ring.p_len()))
            .collect();
        Ok(Self { b, a, seed })
    }
}

/// Relinearization key (switches `s²` to `s`).
#[derive(Clone, Debug, PartialEq)]
pub struct RelinKey {
    pub(crate) key: SwitchingKey,
    pub(crate) params: CkksParams,
}

impl RelinKey {
    /// Generates the relinearization key of `sk`.
    pub fn generate<R: RngCore + CryptoRng>(
        sk: &SecretKey,
        rng: &mut R,
    ) -> Result<Self, CkksError> {
        let ring = sk.params.ring();
        // Made straight into a secret: a copy of `s` squared in place would
        // free the copy's buffer unzeroized.
        let s2 = SecretPoly::from(sk.poly.mul(ring, &sk.poly)?);
        Ok(Self {
            key: SwitchingKey::generate(sk, &s2, rng)?,
            params: sk.params.clone(),
        })
    }
}

/// The Galois element rotating slots left by `steps` (negative: right).
pub fn rotation_galois_element(params: &CkksParams, steps: i64) -> u64 {
    let slots = params.slots() as i64;
    let two_n = 2 * params.n() as u64;
    let k = steps.rem_euclid(slots) as u64;
    let mut g = 1u64;
    let mut base = 5u64;
    let mut e = k;
    while e > 0 {
        if e & 1 == 1 {
            g = (g * base) % two_n;
        }
        base = (base * base) % two_n;
        e >>= 1;
    }
    g
}

/// The Galois element of complex conjugation (`X -> X^{-1}`).
pub fn conjugation_galois_element(params: &CkksParams) -> u64 {
    2 * params.n() as u64 - 1
}

/// Galois keys for a chosen set of rotations (and optionally conjugation):
/// only the rotations a computation needs are generated.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct GaloisKeys {
    pub(crate) keys: BTreeMap<u64, SwitchingKey>,
}

impl GaloisKeys {
    /// Generates keys for the given rotation steps and, if `conjugate`, conjugation.
    pub fn generate<R: RngCore + CryptoRng>(
        sk: &SecretKey,
        steps: &[i64],
        conjugate: bool,
        rng: &mut R,
    ) -> Result<Self, CkksError> {
        let params = &sk.params;
        let mut elements: Vec<u64> = steps
            .iter()
            .map(|&s| rotation_galois_element(params, s))
            .filter(|&g| g != 1)
            .collect();
        if conjugate {
            elements.push(conjugation_galois_element(params));
        }
        let mut keys = BTreeMap::new();
        for g in elements {
            if keys.contains_key(&g) {
                continue;
            }
            let s_g = Zeroizing::new(sk.poly.automorphism(params.ring(), g)?);
            keys.insert(g, SwitchingKey::generate(sk, &s_g, rng)?);
        }
        Ok(Self { keys })
    }

    /// The Galois elements held.
    pub fn elements(&self) -> impl Iterator<Item = u64> + '_ {
        self.keys.keys().copied()
    }

    /// Whether the key for Galois element `g` is present.
    pub fn contains(&self, g: u64) -> bool {
        self.keys.contains_key(&g)
    }

    /// Adds the keys of `other` (made with the same secret key) that are
    /// not already here.
    pub fn extend(&mut self, other: GaloisKeys) {
        for (g, k) in other.keys {
            self.keys.entry(g).or_insert(k);
        }
    }

    pub(crate) fn get(&self, g: u64) -> Result<&SwitchingKey, CkksError> {
        self.keys.get(&g).ok_or(CkksError::MissingGaloisKey(g))
    }
}

/// The decomposition of a polynomial into ModUp-extended digits, computed
/// once and reused by several key switchings (hoisting).
pub(crate) struct Decomposed {
    pub(crate) digits: Vec<RnsPoly>,
    pub(crate) q_len: usize,
}

/// Decomposes `c` (NTT form over `Q_l`) for key switching.
pub(crate) fn decompose(params: &CkksParams, c: &RnsPoly) -> Result<Decomposed, CkksError> {
    if params.alpha() == 0 {
        return Err(CkksError::NoKeySwitching);
    }
    Ok(Decomposed {
        digits: mod_up_digits(params.ring(), c, params.alpha())?,
        q_len: c.q_len(),
    })
}

/// Inner product of the decomposed digits (optionally permuted by an
/// automorphism) with a switching key, then ModDown: returns `(d0, d1)`
/// over `Q_l`, NTT form, with `d0 + d1·s ≈ c·s'`.
pub(crate) fn key_switch(
    params: &CkksParams,
    dec: &Decomposed,
    key: &SwitchingKey,
    perm: Option<&[u32]>,
) -> Result<(RnsPoly, RnsPoly), CkksError> {
    let ring = params.ring();
    let n = params.n();
    let q_len = dec.q_len;
    let p_len = ring.p_len();
    let full_q = ring.q_len();
    let tables: Vec<_> = ring.tables(q_len, p_len).collect();
    let mut out0 = RnsPoly::zero(ring, q_len, p_len, true);
    let mut out1 = RnsPoly::zero(ring, q_len, p_len, true);
    let digits = &dec.digits;
    if digits.len() > key.b.len() {
        return Err(CkksError::InvalidLevel(q_len - 1));
    }
    out0.data_mut()
        .par_chunks_mut(n)
        .zip(out1.data_mut().par_chunks_mut(n))
        .zip(tables.into_par_iter())
        .enumerate()
        .for_each(|(i, ((o0, o1), t))| {
            // Key limb: the same prime in the full Q ∪ P basis.
            let ki = if i < q_len { i } else { full_q + (i - q_len) };
            let mut permuted = vec![0u64; if perm.is_some() { n } else { 0 }];
            for (j, d) in digits.iter().enumerate() {
                let (Some(kb), Some(ka)) = (key.b.get(j), key.a.get(j)) else {
                    continue;
                };
                let dl = match perm {
                    None => d.limb(i),
                    Some(p) => {
                        let src = d.limb(i);
                        for (x, &pi) in permuted.iter_mut().zip(p) {
                            *x = src.get(pi as usize).copied().unwrap_or(0);
                        }
                        &permuted
                    }
                };
                t.mul_accumulate(o0, dl, kb.limb(ki));
                t.mul_accumulate(o1, dl, ka.limb(ki));
            }
        });
    let d0 = mod_down(ring, &out0)?;
    let d1 = mod_down(ring, &out1)?;
    Ok((d0, d1))
}
