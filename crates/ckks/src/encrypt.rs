//! Ciphertexts, encryption (public or secret key) and decryption, with
//! noise flooding of every decrypted result that leaves the key holder.
//!
//! # When noise flooding must be on
//! CKKS decryption returns the message *plus the encryption noise*, and that
//! noise depends on the secret key. Li and Micciancio (Eurocrypt 2021) showed
//! that publishing decrypted results lets an observer recover the key
//! (IND-CPA^D attacks). Whenever a decrypted value leaves the key holder —
//! an aggregate published by threshold decryption, a prediction returned to
//! a client, a key service answering requests — release it through a
//! [`Releaser`], which floods every decryption and counts them. Plain
//! [`Decryptor::decrypt`] / [`Decryptor::decrypt_values`] are for the key
//! holder's own use: their output must not be handed to anyone.
//!
//! # How much flooding, and what λ means
//! [`Flooding`] is sized from a *proven* bound `B` on the ciphertext's
//! noise ([`NoiseBound`], tracked through the computation from the
//! parameters — never measured) and from the number `D` of decryptions the
//! key will ever release. Each coefficient of the decryption gets
//! independent integer Gaussian noise of standard deviation `σ`
//! ([`cipherflow_ring::sampler::flooding_gaussian`], every bit random).
//! Shifting such noise by the secret-dependent `e` changes its distribution
//! by a Kullback–Leibler divergence of at most `(‖e‖₂² + w·‖e‖₁)/(2σ²)`
//! (`w` the sampler's grid step), and divergences add over coefficients and
//! over decryptions, so with `‖e‖₂ ≤ B`, `‖e‖₁ ≤ √N·B`:
//!
//! `KL(real ‖ simulated) ≤ D·(B² + w√N·B)/(2σ²) ≤ 2^−λ`.
//!
//! That is the sizing rule: `σ ≈ B·√(D/2)·2^(λ/2)`, the form of Li,
//! Micciancio, Schultz and Sorrell (Crypto 2022), and of OpenFHE's
//! `NOISE_FLOODING_DECRYPT` mode (statistical security, number of
//! adversarial queries), here with our own bound and derivation. λ is
//! *bit security in the sense of Micciancio–Walter* used by those works;
//! by Pinsker's inequality the statistical distance (any distinguisher's
//! advantage) between the released values and values simulated from the
//! exact results alone is at most `2^−(λ+1)/2`. For a statistical-distance
//! guarantee of `2^−κ`, take `λ = 2κ`. Add the bound's own failure
//! probability ([`NoiseBound::failure_probability`]).
//!
//! Flooding costs precision: the slots carry an extra error of about
//! `σ·√N/Δ`. [`crate::ParamsBuilder::widen_q0_for_flooding`] chooses the
//! scale and the first modulus so that flooded results keep a stated
//! precision, or refuses.

use crate::encoder::{Encoder, Plaintext};
use crate::error::CkksError;
use crate::keys::{rlwe_body, PublicKey, SecretKey};
use crate::noise::NoiseBound;
use crate::params::CkksParams;
use crate::secret::SecretPoly;
use cipherflow_ring::basis::mod_down_adding;
use cipherflow_ring::sampler::{
    flooding_gaussian, flooding_grid_log2, fresh_seed, gaussian, ternary, uniform_from_seed,
    MAX_FLOODING_LOG2,
};
use cipherflow_ring::{RingContext, RnsPoly};
use num_complex::Complex64;
use rand_core::{CryptoRng, RngCore};
use std::borrow::Cow;
use std::sync::Arc;
use zeroize::{Zeroize, Zeroizing};

/// A CKKS ciphertext: 2 components (3 after a product before
/// relinearization), NTT form, at some level and scale.
#[derive(Clone, Debug, PartialEq)]
pub struct Ciphertext {
    pub(crate) c: Vec<RnsPoly>,
    pub(crate) scale: f64,
    /// Set when `c[1]` is the expansion of this seed (fresh secret-key
    /// encryption): serialization then stores 32 bytes instead of `c[1]`.
    pub(crate) seed: Option<[u8; 32]>,
    pub(crate) fingerprint: [u8; 32],
}

impl Ciphertext {
    /// Level (number of primes − 1).
    pub fn level(&self) -> usize {
        self.c.first().map_or(0, |p| p.q_len().saturating_sub(1))
    }

    /// Current scale.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Number of components (2, or 3 before relinearization).
    pub fn size(&self) -> usize {
        self.c.len()
    }

    /// The component polynomials.
    pub fn components(&self) -> &[RnsPoly] {
        &self.c
    }

    pub(crate) fn check(&self, params: &CkksParams) -> Result<(), CkksError> {
        if &self.fingerprint != params.fingerprint() {
            return Err(CkksError::ParamsMismatch);
        }
        Ok(())
    }
}

/// `k` (over `Q ∪ P`) on the first `q_len` ciphertext primes and the
/// special ones: itself at the top level, a shortened copy below.
fn at_level(k: &RnsPoly, q_len: usize) -> Result<Cow<'_, RnsPoly>, CkksError> {
    if k.q_len() == q_len {
        return Ok(Cow::Borrowed(k));
    }
    let mut k = k.clone();
    k.truncate(q_len, true)?;
    Ok(Cow::Owned(k))
}

/// `p` in NTT form: itself, or a transformed copy.
fn ntt_form<'a>(ring: &RingContext, p: &'a RnsPoly) -> Cow<'a, RnsPoly> {
    if p.is_ntt() {
        return Cow::Borrowed(p);
    }
    let mut p = p.clone();
    p.ntt_forward(ring);
    Cow::Owned(p)
}

/// Encrypts plaintexts under a public key or a secret key. It owns (a
/// shared copy of) its key, so a long-lived object — a Python or
/// WebAssembly handle, a server's state — can hold it without a borrow.
#[derive(Clone)]
pub struct Encryptor {
    params: CkksParams,
    key: EncryptionKey,
}

#[derive(Clone)]
enum EncryptionKey {
    Public(Arc<PublicKey>),
    /// The secret key on the ciphertext limbs only (no special limbs):
    /// every level's encryption reads a prefix of it.
    Secret(Arc<SecretPoly>),
}

impl Encryptor {
    /// Public-key encryptor (holds a copy of `pk`).
    pub fn with_public_key(pk: &PublicKey) -> Self {
        Self {
            params: pk.params.clone(),
            key: EncryptionKey::Public(Arc::new(pk.clone())),
        }
    }

    /// Secret-key encryptor (smaller noise; ciphertexts serialize at half
    /// size). Holds a copy of `sk`, zeroized when the last clone of this
    /// encryptor is dropped.
    pub fn with_secret_key(sk: &SecretKey) -> Self {
        Self {
            params: sk.params.clone(),
            key: EncryptionKey::Secret(Arc::new(sk.restricted(sk.params.ring().q_len(), false))),
        }
    }

    /// Encrypts `pt` at its level and scale.
    pub fn encrypt<R: RngCore + CryptoRng>(
        &self,
        pt: &Plaintext,
        rng: &mut R,
    ) -> Result<Ciphertext, CkksError> {
        self.encrypt_any_form(pt, rng)
    }

    /// [`Encryptor::encrypt`] of a plaintext in NTT or (from the encoder,
    /// inside this crate) coefficient form: under a public key with
    /// special primes a coefficient-form message is added inside the
    /// division by `P`, which saves its forward transforms.
    fn encrypt_any_form<R: RngCore + CryptoRng>(
        &self,
        pt: &Plaintext,
        rng: &mut R,
    ) -> Result<Ciphertext, CkksError> {
        let ring = self.params.ring();
        let q_len = pt.poly.q_len();
        if q_len == 0 || q_len > ring.q_len() || pt.poly.p_len() != 0 {
            return Err(CkksError::InvalidLevel(q_len));
        }
        let n = self.params.n();
        let (c0, c1, seed) = match &self.key {
            EncryptionKey::Public(pk) => {
                // (v·b + e0, v·a + e1) over Q_l ∪ P, divided by P (SEAL's
                // way): the noise v·e_pk + e0 + e1·s shrinks by P to the
                // rounding's. The errors are added inside the division,
                // where they cost no transform ([`mod_down_adding`]).
                let p_len = ring.p_len();
                let v_coeffs = ternary(rng, n);
                let mut v = RnsPoly::from_signed_ntt(ring, &v_coeffs, q_len, p_len);
                let v_b = Zeroizing::new(at_level(&pk.b, q_len)?.mul(ring, &v)?);
                let v_a = Zeroizing::new(at_level(&pk.a, q_len)?.mul(ring, &v)?);
                v.zeroize();
                let (e0, e1) = (gaussian(rng, n), gaussian(rng, n));
                let (c0, c1) = if p_len > 0 {
                    let m = (!pt.poly.is_ntt()).then_some(&pt.poly);
                    let mut c0 = mod_down_adding(ring, &v_b, &e0, m)?;
                    if m.is_none() {
                        c0.add_assign(ring, &pt.poly)?;
                    }
                    (c0, mod_down_adding(ring, &v_a, &e1, None)?)
                } else {
                    // No special primes: the noise stays undivided.
                    let ntt = |e: &[i64], mut c: RnsPoly| -> Result<RnsPoly, CkksError> {
                        let mut e = RnsPoly::from_signed_ntt(ring, e, q_len, 0);
                        c.add_assign(ring, &e)?;
                        e.zeroize();
                        Ok(c)
                    };
                    let mut c0 = ntt(&e0, (*v_b).clone())?;
                    c0.add_assign(ring, &ntt_form(ring, &pt.poly))?;
                    (c0, ntt(&e1, (*v_a).clone())?)
                };
                (c0, c1, None)
            }
            EncryptionKey::Secret(s_q) => {
                // (−a·s + e + m, a), a from a fresh seed
                let seed = fresh_seed(rng);
                let a = uniform_from_seed(ring, &seed, q_len, 0);
                let mut c0 = rlwe_body(&self.params, &a, s_q, rng)?;
                c0.add_assign(ring, &ntt_form(ring, &pt.poly))?;
                (c0, a, Some(seed))
            }
        };
        Ok(Ciphertext {
            c: vec![c0, c1],
            scale: pt.scale,
            seed,
            fingerprint: *self.params.fingerprint(),
        })
    }

    /// Encodes and encrypts real values at the top level and default scale.
    pub fn encrypt_values<R: RngCore + CryptoRng>(
        &self,
        encoder: &Encoder,
        values: &[f64],
        rng: &mut R,
    ) -> Result<Ciphertext, CkksError> {
        self.encrypt_any_form(&encoder.encode_default_coefficients(values)?, rng)
    }
}

/// Noise flooding sized from a proven noise bound, a statistical security
/// parameter and the number of decryptions released (see the module
/// documentation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Flooding {
    stat_sec_bits: u32,
    decryptions: u64,
    bound: f64,
    sigma: f64,
    log_n: u32,
}

/// Largest number of decryptions one [`Flooding`] may cover.
pub const MAX_DECRYPTIONS: u64 = 1 << 40;

impl Flooding {
    /// Flooding that hides noise of canonical norm up to `bound` over
    /// `decryptions` releases at statistical security `stat_sec_bits`
    /// (20..=128): the smallest `σ` with
    /// `D·(B² + √N·B)/(2σ²) + D·√N·B·2^−43/(2σ) ≤ 2^−λ` (the second term
    /// is the sampler's grid, `w ≤ 1 + σ·2^−43`).
    pub fn new(
        params: &CkksParams,
        bound: f64,
        stat_sec_bits: u32,
        decryptions: u64,
    ) -> Result<Self, CkksError> {
        let bad = |m: String| Err(CkksError::Flooding(m));
        if !(20..=128).contains(&stat_sec_bits) {
            return bad(format!(
                "statistical security {stat_sec_bits} not in 20..=128"
            ));
        }
        if decryptions == 0 || decryptions > MAX_DECRYPTIONS {
            return bad(format!("decryptions {decryptions} not in 1..=2^40"));
        }
        if !bound.is_finite() || bound < 1.0 {
            return bad(format!("noise bound {bound} must be finite and ≥ 1"));
        }
        let (b, d) = (bound, decryptions as f64);
        let rn = (params.n() as f64).sqrt();
        // a·x² + c·x − 2^−λ ≤ 0 for x = 1/σ.
        let a = d * (b * b + rn * b) / 2.0;
        if !a.is_finite() {
            return bad(format!(
                "a noise bound of 2^{:.1} is too large to flood (σ would exceed \
                 2^{MAX_FLOODING_LOG2})",
                b.log2()
            ));
        }
        let c = d * rn * b * 2f64.powi(-44);
        let eps = 2f64.powi(-(stat_sec_bits as i32));
        let x = (-c + (c * c + 4.0 * a * eps).sqrt()) / (2.0 * a);
        let sigma = 1.0 / x;
        if !sigma.is_finite() || sigma.log2() > MAX_FLOODING_LOG2 {
            return bad(format!(
                "flooding standard deviation 2^{:.1} exceeds 2^{MAX_FLOODING_LOG2}",
                sigma.log2()
            ));
        }
        Ok(Self {
            stat_sec_bits,
            decryptions,
            bound,
            sigma,
            log_n: params.log_n(),
        })
    }

    /// Flooding for releasing decryptions of ciphertexts whose *noise* is
    /// bounded by `bound` (IND-CPA^D: the approximation error is a function
    /// of the inputs, not of the key).
    pub fn for_release(
        params: &CkksParams,
        bound: &NoiseBound,
        stat_sec_bits: u32,
        decryptions: u64,
    ) -> Result<Self, CkksError> {
        Self::new(params, bound.noise(), stat_sec_bits, decryptions)
    }

    /// Flooding for circuit privacy ([`crate::Evaluator::sanitize`]): it must
    /// hide everything besides the result, the approximation error included
    /// (it depends on the evaluator's plaintexts), over `outputs`
    /// ciphertexts returned under the same secret inputs (e.g. weights).
    pub fn for_circuit_privacy(
        params: &CkksParams,
        bound: &NoiseBound,
        stat_sec_bits: u32,
        outputs: u64,
    ) -> Result<Self, CkksError> {
        Self::new(params, bound.total(), stat_sec_bits, outputs)
    }

    /// Statistical security parameter λ.
    pub fn stat_sec_bits(&self) -> u32 {
        self.stat_sec_bits
    }

    /// Decryptions (or returned ciphertexts) covered.
    pub fn decryptions(&self) -> u64 {
        self.decryptions
    }

    /// The noise bound (canonical norm) the flooding hides.
    pub fn bound(&self) -> f64 {
        self.bound
    }

    /// Standard deviation of the flooding noise per coefficient.
    pub fn sigma(&self) -> f64 {
        self.sigma
    }

    /// `log2` of [`Flooding::sigma`].
    pub fn sigma_log2(&self) -> f64 {
        self.sigma.log2()
    }

    /// The sampler's grid step `w` at this `σ`.
    pub fn grid(&self) -> f64 {
        2f64.powi(flooding_grid_log2(self.sigma) as i32)
    }

    /// A bound on one slot's flooding error that fails with probability at
    /// most `2^−20` for the whole vector: `z·(σ + w)·√N` with
    /// `z = √(2·ln(2N·2^20))` (real parts of the embeddings are
    /// sub-Gaussian with proxy `N·(σ + w)²`, union over the `N/2` slots).
    pub fn slot_error_bound(&self) -> f64 {
        let n = f64::from(1u32 << self.log_n);
        let z = (2.0 * ((2.0 * n).ln() + 20.0 * std::f64::consts::LN_2)).sqrt();
        z * (self.sigma + self.grid()) * n.sqrt()
    }

    /// Expected precision (bits) of flooded values of a ciphertext bounded
    /// by `bound` (noise, approximation error and flooding, at its scale).
    pub fn precision_bits(&self, bound: &NoiseBound) -> f64 {
        (bound.scale() / (bound.error() + self.slot_error_bound())).log2()
    }

    /// Bits (sign included) the decryption modulus must have for a
    /// ciphertext bounded by `bound` once flooded: its scaled values, its
    /// error and the flooding's coefficient tail (at `2^−40` for the
    /// vector). Below that, the flooded decryption can wrap around.
    pub fn modulus_bits_needed(&self, bound: &NoiseBound) -> f64 {
        crate::params::flooded_modulus_bits(
            f64::from(1u32 << self.log_n),
            bound.scale() * bound.values(),
            bound.error(),
            self,
        )
    }

    /// Whether this flooding was sized for a noise bound at least `noise`.
    pub fn covers(&self, noise: f64) -> bool {
        noise <= self.bound
    }
}

/// The flooding noise polynomial over `q_len` primes, NTT form.
pub(crate) fn flooding_poly<R: RngCore + CryptoRng>(
    params: &CkksParams,
    sigma: f64,
    q_len: usize,
    rng: &mut R,
) -> Result<RnsPoly, CkksError> {
    let ring = params.ring();
    let mut noise = flooding_gaussian(rng, sigma, params.n()).ok_or_else(|| {
        CkksError::Flooding(format!(
            "flooding standard deviation 2^{:.1} is not representable",
            sigma.log2()
        ))
    })?;
    let mut poly = RnsPoly::zero(ring, q_len, 0, false);
    for (i, t) in ring.q_tables().iter().take(q_len).enumerate() {
        let m = t.modulus();
        let q = i128::from(m.value());
        for (c, &x) in poly.limb_mut(i).iter_mut().zip(noise.iter()) {
            *c = x.rem_euclid(q) as u64;
        }
    }
    noise.zeroize();
    poly.ntt_forward(ring);
    Ok(poly)
}

/// Decrypts ciphertexts with the secret key. It owns (a shared copy of)
/// the key, zeroized when the last clone of this decryptor is dropped.
#[derive(Clone)]
pub struct Decryptor {
    sk: Arc<SecretKey>,
    /// The key on the ciphertext limbs only (no special limbs), made once:
    /// every level's decryption reads a prefix of it.
    s_q: Arc<SecretPoly>,
    encoder: Encoder,
}

impl Decryptor {
    /// A decryptor for `sk` (holds a copy of it).
    pub fn new(sk: &SecretKey) -> Self {
        Self {
            sk: Arc::new(sk.clone()),
            s_q: Arc::new(sk.restricted(sk.params.ring().q_len(), false)),
            encoder: Encoder::new(&sk.params),
        }
    }

    /// The parameters of the key.
    pub fn params(&self) -> &CkksParams {
        &self.sk.params
    }

    /// `c0 + c1·s (+ c2·s²)` in NTT form, as a plaintext — for the key
    /// holder's own use only: the result carries secret-dependent noise and
    /// must not be handed to another party (use a [`Releaser`]).
    pub fn decrypt(&self, ct: &Ciphertext) -> Result<Plaintext, CkksError> {
        let params = &self.sk.params;
        ct.check(params)?;
        let ring = params.ring();
        let mut comps = ct.c.iter().rev();
        let last = comps.next().ok_or(CkksError::WrongSize(0, 2))?;
        // Horner: ((c_k s + c_{k-1}) s + …) + c0, each step one fused
        // multiply-add pass into a copy of the next component; `s` is the
        // key's prefix of the ciphertext's limbs.
        let mut acc: Option<RnsPoly> = None;
        for c in comps {
            let mut next = c.clone();
            next.mul_accumulate(ring, acc.as_ref().unwrap_or(last), &self.s_q)?;
            acc = Some(next);
        }
        Ok(Plaintext {
            poly: acc.unwrap_or_else(|| last.clone()),
            scale: ct.scale,
        })
    }

    /// Decrypts and decodes to real values, for the key holder's own use
    /// only (see [`Decryptor::decrypt`]; values that leave go through a
    /// [`Releaser`]).
    pub fn decrypt_values(&self, ct: &Ciphertext) -> Result<Vec<f64>, CkksError> {
        let slots = self.encoder.decode_owned(self.decrypt(ct)?)?;
        Ok(slots.iter().map(|c| c.re).collect())
    }

    /// Decrypts and decodes to complex values, for the key holder's own use only.
    pub fn decrypt_complex(&self, ct: &Ciphertext) -> Result<Vec<Complex64>, CkksError> {
        self.encoder.decode_owned(self.decrypt(ct)?)
    }

    /// Decrypts a ciphertext whose noise is proven to be at most
    /// `bound.noise()`, adds flooding noise of standard deviation
    /// [`Flooding::sigma`] to every coefficient, and decodes. Refuses when
    /// `flooding` was sized for a smaller bound. Does not count releases:
    /// hand values to another party through a [`Releaser`].
    pub fn decrypt_flooded<R: RngCore + CryptoRng>(
        &self,
        ct: &Ciphertext,
        bound: &NoiseBound,
        flooding: &Flooding,
        rng: &mut R,
    ) -> Result<Vec<f64>, CkksError> {
        if !flooding.covers(bound.noise()) {
            return Err(CkksError::Flooding(format!(
                "the ciphertext's noise bound 2^{:.1} exceeds the 2^{:.1} the flooding was sized for",
                bound.noise_log2(),
                flooding.bound().log2()
            )));
        }
        let params = &self.sk.params;
        let ring = params.ring();
        let mut pt = self.decrypt(ct)?;
        let mut e = flooding_poly(params, flooding.sigma(), pt.poly.q_len(), rng)?;
        pt.poly.add_assign(ring, &e)?;
        e.zeroize();
        self.encoder.decode(&pt)
    }

    /// `log2` of the canonical-embedding norm of `decrypt(ct) − encode(expected)`
    /// (the quantity [`NoiseBound`] bounds), for tests and diagnostics —
    /// never to size flooding.
    pub fn measure_canonical_noise_log2(
        &self,
        ct: &Ciphertext,
        expected: &[f64],
    ) -> Result<f64, CkksError> {
        let ring = self.sk.params.ring();
        let mut pt = self.decrypt(ct)?;
        let want = self.encoder.encode(expected, ct.level(), ct.scale)?;
        pt.poly.sub_assign(ring, &want.poly)?;
        pt.poly.ntt_inverse(ring);
        let coeffs = self.encoder.poly_to_coeffs(&pt.poly)?;
        let slots = self.encoder.embed(&coeffs, 1.0);
        let max = slots.iter().fold(1.0f64, |m, c| m.max(c.norm()));
        Ok(max.log2())
    }

    /// `log2` of the largest coefficient of `decrypt(ct) − encode(expected)`:
    /// the ciphertext's actual noise in one run, for tests and diagnostics.
    /// One run proves nothing: size flooding from a [`NoiseBound`].
    pub fn measure_noise_log2(&self, ct: &Ciphertext, expected: &[f64]) -> Result<f64, CkksError> {
        let ring = self.sk.params.ring();
        let mut pt = self.decrypt(ct)?;
        let want = self.encoder.encode(expected, ct.level(), ct.scale)?;
        pt.poly.sub_assign(ring, &want.poly)?;
        pt.poly.ntt_inverse(ring);
        let coeffs = self.encoder.poly_to_coeffs(&pt.poly)?;
        let max = coeffs.iter().fold(1.0f64, |m, c| m.max(c.abs()));
        Ok(max.log2())
    }
}

/// The only way decrypted values should leave the key holder: every
/// release is flooded ([`Flooding`], sized for the number of releases), and
/// releases beyond that number are refused.
pub struct Releaser {
    dec: Decryptor,
    flooding: Flooding,
    released: u64,
}

impl Releaser {
    /// A releaser for `sk` with `flooding` (its decryption count is the
    /// release budget of this key: share one releaser per key).
    pub fn new(sk: &SecretKey, flooding: Flooding) -> Self {
        Self {
            dec: Decryptor::new(sk),
            flooding,
            released: 0,
        }
    }

    /// Decrypts, floods and decodes `ct` (noise proven ≤ `bound.noise()`);
    /// refuses when the budget is spent or the bound exceeds the one the
    /// flooding was sized for.
    pub fn release<R: RngCore + CryptoRng>(
        &mut self,
        ct: &Ciphertext,
        bound: &NoiseBound,
        rng: &mut R,
    ) -> Result<Vec<f64>, CkksError> {
        if self.released >= self.flooding.decryptions() {
            return Err(CkksError::Flooding(format!(
                "release budget of {} decryptions spent: the flooding no longer covers more \
                 (size it for more decryptions, or re-key)",
                self.flooding.decryptions()
            )));
        }
        let out = self.dec.decrypt_flooded(ct, bound, &self.flooding, rng)?;
        self.released += 1;
        Ok(out)
    }

    /// Releases made so far.
    pub fn released(&self) -> u64 {
        self.released
    }

    /// Releases left in the budget.
    pub fn remaining(&self) -> u64 {
        self.flooding.decryptions() - self.released
    }

    /// The flooding.
    pub fn flooding(&self) -> &Flooding {
        &self.flooding
    }
}
