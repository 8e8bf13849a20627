//! Smudging (noise flooding) of decryption shares.
//!
//! # Why and how much
//! A decryption share `d_i = s_i'·c1 + e_i` is published. The combined
//! decryption `c0 + Σ d_i = m + e_ct + Σ e_i` reveals `m + e_ct + Σ e_i`,
//! and `e_ct` depends on the secret (Li–Micciancio, Eurocrypt 2021); the
//! shares of the honest parties must therefore be simulatable from the
//! output alone. With `e_i` uniform on `[−B_s, B_s)` and `|e_ct|_∞ ≤ B`, the
//! smudging lemma (Asharov et al., Eurocrypt 2012, Lemma 2.3) gives a
//! statistical distance of at most `B/B_s` per coefficient between `e_i` and
//! `e_i + e_ct`; we take `B_s = 2^λ·B` (rounded up to a power of two) for a
//! statistical security parameter `λ` (default 40), i.e. `N·2^−λ` per
//! decrypted ciphertext, `2^−27` at `N = 2^13` — the figure
//! Mouchet et al. (2021, §5.2) and Lattigo's documentation recommend.
//!
//! The distance adds up over decryptions: after `D` decryptions with the
//! same key shares it is at most `D·N·2^−λ` (2^−17 after a thousand rounds
//! at λ = 40, N = 2^13); raise λ for long-lived keys, or re-key per epoch.
//!
//! We sample the smudging noise *exactly* (uniform integers from the CSPRNG,
//! reduced with constant-time Barrett): a floating-point Gaussian of
//! standard deviation ≥ 2^53 has deterministic low-order bits, which a
//! shift by `e_ct` would reveal.
//!
//! The noise bound `B` is stated by the caller ([`Smudging::new`], e.g.
//! measured once with [`crate::Decryptor::measure_noise_log2`] on known data
//! under an ideal key) or computed for the federated use — a sum of fresh
//! public-key encryptions under the collective key — by
//! [`Smudging::for_fresh_sum`].
//!
//! The price is precision: every party adds up to `B_s` to each coefficient,
//! so the decryption level must keep `log2(scale·|value| + B + n·B_s) + 1`
//! bits, and the slots carry an error of about
//! `B_s·√(n·N/3)/scale`; see [`Smudging::expected_precision_bits`]. Encode
//! the values at a large scale (e.g. 2^90 at level 1 of the `aggregation`
//! preset) to keep 20+ bits.

use super::error::MultipartyError;
use crate::error::CkksError;
use crate::params::CkksParams;
use cipherflow_ring::sampler::{ERROR_BOUND, ERROR_STD_DEV};
use cipherflow_ring::RnsPoly;
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroize;

/// Default statistical security parameter λ (bits).
pub const DEFAULT_STAT_SEC_BITS: u32 = 40;
/// Largest supported `log2 B_s` (samples are 128-bit integers).
pub const MAX_SMUDGING_LOG2: u32 = 120;

/// Smudging parameters: statistical security `λ`, the bound `B` on the
/// ciphertext noise, and (optionally) a bound on the decrypted values for
/// the modulus check. Each party's noise is uniform on `[−2^k, 2^k)` with
/// `k = ⌈λ + log2 B⌉`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Smudging {
    stat_sec_bits: u32,
    noise_log2: f64,
    value_bound: f64,
    bound_log2: u32,
}

impl Smudging {
    /// Smudging for statistical security `stat_sec_bits` (20..=128) over a
    /// ciphertext whose noise the caller bounds by `2^noise_log2`
    /// (coefficient infinity norm, 0..=100).
    pub fn new(stat_sec_bits: u32, noise_log2: f64) -> Result<Self, CkksError> {
        let invalid = |m: String| CkksError::from(MultipartyError::InvalidSmudging(m));
        if !(20..=128).contains(&stat_sec_bits) {
            return Err(invalid(format!(
                "statistical security {stat_sec_bits} not in 20..=128 bits"
            )));
        }
        if !noise_log2.is_finite() || !(0.0..=100.0).contains(&noise_log2) {
            return Err(invalid(format!(
                "noise bound 2^{noise_log2} not in [1, 2^100]"
            )));
        }
        let k = (f64::from(stat_sec_bits) + noise_log2).ceil() as u32;
        if k > MAX_SMUDGING_LOG2 {
            return Err(invalid(format!(
                "smudging bound 2^{k} exceeds 2^{MAX_SMUDGING_LOG2}"
            )));
        }
        Ok(Self {
            stat_sec_bits,
            noise_log2,
            value_bound: 1.0,
            bound_log2: k,
        })
    }

    /// [`Smudging::new`] with the default λ = 40.
    pub fn with_noise_bound(noise_log2: f64) -> Result<Self, CkksError> {
        Self::new(DEFAULT_STAT_SEC_BITS, noise_log2)
    }

    /// A safe noise bound for the sum of `ciphertexts` fresh public-key
    /// encryptions under a collective key of `parties` parties, holding
    /// except with probability `2^−λ` over all coefficients: a fresh
    /// encryption has noise `v·e + e0 + e1·s` with `e = Σ e_i`, `s = Σ s_i`;
    /// each of `v·e` and `e1·s` is a sum of independent σ = 3.2 Gaussians
    /// weighted by at most `√(parties·N)` resp. `parties·√N` in 2-norm
    /// (worst case over the ternary `v`, `s_i`), so sub-Gaussian tails give
    /// `B = z·σ·√(C·N)·(√parties + parties) + C·19`, with
    /// `z = √(2 ln(2^(λ+1)·N·C))`. Plaintext products or rotations change
    /// the noise: state a bound with [`Smudging::new`] then.
    pub fn for_fresh_sum(
        params: &CkksParams,
        parties: usize,
        ciphertexts: usize,
        stat_sec_bits: u32,
    ) -> Result<Self, CkksError> {
        if parties == 0 || ciphertexts == 0 {
            return Err(MultipartyError::InvalidSmudging(
                "parties and ciphertexts must be positive".into(),
            )
            .into());
        }
        let (p, c, n) = (parties as f64, ciphertexts as f64, params.n() as f64);
        let ln_terms = (f64::from(stat_sec_bits) + 1.0) * std::f64::consts::LN_2 + (n * c).ln();
        let z = (2.0 * ln_terms).sqrt();
        let b = z * ERROR_STD_DEV * (c * n).sqrt() * (p.sqrt() + p) + c * ERROR_BOUND as f64;
        Self::new(stat_sec_bits, b.log2())
    }

    /// Declares a bound on the absolute decrypted values (default 1), used
    /// by the modulus check.
    pub fn with_value_bound(mut self, value_bound: f64) -> Result<Self, CkksError> {
        if !value_bound.is_finite() || value_bound <= 0.0 {
            return Err(
                MultipartyError::InvalidSmudging("value bound must be positive".into()).into(),
            );
        }
        self.value_bound = value_bound;
        Ok(self)
    }

    /// The statistical security parameter λ.
    pub fn stat_sec_bits(&self) -> u32 {
        self.stat_sec_bits
    }

    /// `log2` of the stated ciphertext-noise bound `B`.
    pub fn noise_log2(&self) -> f64 {
        self.noise_log2
    }

    /// The declared bound on the decrypted values.
    pub fn value_bound(&self) -> f64 {
        self.value_bound
    }

    /// `k`: each party's smudging noise is uniform on `[−2^k, 2^k)`.
    pub fn bound_log2(&self) -> u32 {
        self.bound_log2
    }

    /// The same smudging with `k` replaced (see `check`'s widening).
    pub(crate) fn with_bound_log2(&self, bound_log2: u32) -> Self {
        Self {
            bound_log2,
            ..*self
        }
    }

    /// Standard deviation of one party's smudging noise, `2^k/√3`.
    pub fn sigma(&self) -> f64 {
        2f64.powi(self.bound_log2 as i32) / 3f64.sqrt()
    }

    /// Bits the decryption modulus needs (sign bit included) to hold
    /// `scale·value_bound + B + parties·2^k`.
    pub fn needed_modulus_bits(&self, scale: f64, parties: usize) -> f64 {
        needed_bits(
            scale * self.value_bound + 2f64.powf(self.noise_log2),
            parties as f64 * 2f64.powi(self.bound_log2 as i32),
        )
    }

    /// `log2` of the largest scale at which values up to the declared value
    /// bound, plus the ciphertext noise and the smudging of `parties`
    /// shares, still fit the modulus at `level` (`None` if nothing fits):
    /// encode at this scale or below.
    pub fn max_log_scale(&self, params: &CkksParams, level: usize, parties: usize) -> Option<f64> {
        let room = 2f64.powf(log_q(params, level + 1) - 1.0)
            - 2f64.powf(self.noise_log2)
            - parties as f64 * 2f64.powi(self.bound_log2 as i32);
        // Keep one bit of margin for the float rounding of these bounds.
        (room > 0.0).then(|| (room / self.value_bound).log2() - 1.0)
    }

    /// Expected precision (bits) of the decrypted slots at `scale` with
    /// `parties` shares: `log2(scale) − log2(σ·√(parties·N/2)) − 3` (three
    /// bits for the maximum over the slots).
    pub fn expected_precision_bits(&self, params: &CkksParams, scale: f64, parties: usize) -> f64 {
        let slot_std = self.sigma() * (parties as f64 * params.n() as f64 / 2.0).sqrt();
        scale.log2() - slot_std.log2() - 3.0
    }
}

/// `log2(a + b) + 1`.
pub(crate) fn needed_bits(a: f64, b: f64) -> f64 {
    (a + b).log2() + 1.0
}

/// `log2` of the modulus usable for decoding at `q_len` primes: the
/// product of the first `min(q_len, 2)` primes, because the decoder
/// reconstructs coefficients by CRT over the first two primes (checking the
/// others), so larger values would be refused there anyway.
pub(crate) fn log_q(params: &CkksParams, q_len: usize) -> f64 {
    params
        .q()
        .iter()
        .take(q_len.min(2))
        .map(|&q| (q as f64).log2())
        .sum()
}

/// Fails with [`MultipartyError::ModulusTooSmall`] when `need_bits`
/// exceeds the modulus at `level`.
pub(crate) fn check_modulus(
    params: &CkksParams,
    level: usize,
    need_bits: f64,
    parties: usize,
) -> Result<(), CkksError> {
    let have_bits = log_q(params, level + 1);
    if need_bits.is_nan() || need_bits > have_bits {
        return Err(MultipartyError::ModulusTooSmall {
            level,
            have_bits,
            need_bits,
            parties,
        }
        .into());
    }
    Ok(())
}

/// Uniform noise on `[−2^k, 2^k)` per coefficient over `q_len` primes, NTT
/// form. Exact integer sampling; reduction is constant-time.
pub(crate) fn smudging_poly<R: RngCore + CryptoRng>(
    params: &CkksParams,
    k: u32,
    q_len: usize,
    rng: &mut R,
) -> Result<RnsPoly, CkksError> {
    let mut poly = smudging_coeffs(params, k, q_len, rng)?;
    poly.ntt_forward(params.ring());
    Ok(poly)
}

/// [`smudging_poly`] in coefficient form.
pub(crate) fn smudging_coeffs<R: RngCore + CryptoRng>(
    params: &CkksParams,
    k: u32,
    q_len: usize,
    rng: &mut R,
) -> Result<RnsPoly, CkksError> {
    if k > MAX_SMUDGING_LOG2 {
        return Err(MultipartyError::InvalidSmudging(format!("bound 2^{k}")).into());
    }
    let ring = params.ring();
    let n = params.n();
    let mask: u128 = (1u128 << (k + 1)) - 1;
    let offset: u128 = 1u128 << k;
    // Two's-complement magnitudes and signs of x = r − 2^k.
    let mut mags = vec![0u128; n];
    let mut negs = vec![0u64; n];
    for (mag, neg) in mags.iter_mut().zip(negs.iter_mut()) {
        let r = ((u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64())) & mask;
        let d = r.wrapping_sub(offset);
        let is_neg = (d >> 127) as u64;
        let m = 0u128.wrapping_sub(u128::from(is_neg));
        // |d| branch-free: (d XOR m) − m.
        *mag = (d ^ m).wrapping_sub(m);
        *neg = is_neg;
    }
    let mut poly = RnsPoly::zero(ring, q_len, 0, false);
    for (i, t) in ring.q_tables().iter().take(q_len).enumerate() {
        let m = t.modulus();
        for ((c, &mag), &neg) in poly.limb_mut(i).iter_mut().zip(&mags).zip(&negs) {
            let r = m.reduce_u128(mag);
            let neg_mask = 0u64.wrapping_sub(neg);
            let negated = (m.value() - r) & 0u64.wrapping_sub(u64::from(r != 0));
            *c = (negated & neg_mask) | (r & !neg_mask);
        }
    }
    mags.zeroize();
    negs.zeroize();
    Ok(poly)
}
