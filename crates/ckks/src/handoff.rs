//! Hand-off of an evaluated ciphertext as additive shares: from
//! homomorphic encryption to secret sharing (HE → SS).
//!
//! A server holds a ciphertext of activations `y` under the client's key
//! and wants the two of them to hold additive shares of `y`, neither
//! learning anything about it, so that a secret-shared computation can
//! continue from there (the split inference of `cipherflow-platform`).
//!
//! 1. The server drops the ciphertext to the lowest level whose modulus
//!    `Q_ℓ` holds the mask (below), re-randomizes it with a fresh
//!    public-key encryption of zero (so `c1` is a fresh RLWE sample,
//!    independent of the circuit), and adds to `c0` an integer polynomial
//!    `r` whose coefficients are uniform in `[B, Q_ℓ − B)`, where `B` is a
//!    proven bound on every coefficient of the decrypted polynomial
//!    `m = Δ·encode(y) + e` ([`NoiseBound`]: `‖m‖∞ ≤ ‖σ(m)‖∞ ≤
//!    Δ·values + error`, plus the fresh encryption's noise). Its share is
//!    `−r`.
//! 2. The client decrypts to the integer `u = m + r ∈ [0, Q_ℓ)`, exactly:
//!    `m + r` never wraps around `Q_ℓ`. Its share is `u`.
//! 3. `u + (−r) = m` over the integers, hence in `Z_2^128`: the shares are
//!    additive shares of `m`'s coefficients in the ring of the three-party
//!    computation, with no wrap-around left to correct inside it (this is
//!    why the mask is drawn from `[B, Q_ℓ − B)` rather than all of `Z_Q`:
//!    a uniform mask over `Z_Q` would need a secure comparison per
//!    coefficient to remove the wrap).
//!
//! **What each side learns.** The server sees only ciphertexts under the
//! client's key and its own mask. For any two polynomials `m, m'` with
//! coefficients in `[−B, B]`, `m + r` and `m' + r` are within statistical
//! distance `2B/(Q_ℓ − 2B) ≤ 2^−κ` per coefficient (κ = `stat_bits`, 40
//! by default; `N·2^−κ` for a whole polynomial, which the level choice
//! accounts for): the client's `u` is independent of the activations, of
//! the noise and — since `c1` is re-randomized — of the server's weights,
//! up to that distance (Cheetah, USENIX Security 2022, hands off the same
//! way in BFV; here the plaintext is a CKKS encoding, decoded below).
//!
//! **Decoding inside the ring.** The shares are of coefficients; the
//! computation wants slot values in fixed point. Decoding is linear: slot
//! `j` holds `Σ_k m_k ζ^(k·5^j)`, ζ = e^(iπ/N), whose real part is
//! `Σ_k m_k cos(π·k·5^j/N)`. [`SlotDecoding`] applies that map with
//! integer weights `round(2^(f+G)/Δ · cos(…))` to each share separately,
//! modulo 2^128 (a ring homomorphism, so the shares of the result add up
//! to `y·2^(f+G)` up to the rounding of the weights); the computation then
//! truncates by `G` bits. When the slots hold a vector replicated with
//! period `chunk` (latency packing), averaging the replicas keeps only the
//! coefficients at multiples of `N/(2·chunk)`: the map reads `2·chunk`
//! coefficients instead of `N`, and the averaging lowers the noise.

use crate::encrypt::{Ciphertext, Decryptor};
use crate::noise::{Fresh, NoiseBound};
use crate::{CkksError, CkksParams, Evaluator, PublicKey};
use cipherflow_ring::RnsPoly;
use rand::Rng;
use rand_core::{CryptoRng, RngCore};
use std::f64::consts::PI;
use zeroize::Zeroizing;

/// The default statistical security of the mask (bits).
pub const HANDOFF_STAT_BITS: u32 = 40;

/// One side's additive shares of a decrypted polynomial's coefficients,
/// as elements of `Z_2^128` (zeroized on drop).
#[derive(Clone)]
pub struct HandoffShare {
    coeffs: Zeroizing<Vec<u128>>,
    scale: f64,
}

impl std::fmt::Debug for HandoffShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HandoffShare({} coefficients, <redacted>)",
            self.coeffs.len()
        )
    }
}

impl HandoffShare {
    /// The coefficients (shares in `Z_2^128`).
    pub fn coeffs(&self) -> &[u128] {
        &self.coeffs
    }

    /// The scale Δ of the shared plaintext.
    pub fn scale(&self) -> f64 {
        self.scale
    }
}

/// A proven bound on every coefficient of the polynomial a ciphertext
/// bounded by `bound` decrypts to, after the re-randomization of
/// [`Evaluator::mask_for_handoff`].
pub fn handoff_coeff_bound(params: &CkksParams, bound: &NoiseBound) -> Result<f64, CkksError> {
    let fresh = NoiseBound::fresh(
        params,
        Fresh::PublicKey,
        f64::MIN_POSITIVE,
        bound.scale().max(1.0),
        bound.tail_bits(),
    )?;
    Ok(bound.scale() * bound.values() + bound.error() + fresh.noise())
}

/// The level the mask needs: the lowest `ℓ ≤ level` with
/// `Q_ℓ ≥ 2^(κ + log2 N + 2)·B` (the per-coefficient distance times N
/// stays below 2^−κ), refused when even `level` is too small. (`Q_ℓ`
/// must also stay below 2^128, checked when the mask is drawn: the
/// shares `u < Q_ℓ` and `−r mod 2^128` then add up to `m` in `Z_2^128`.)
pub fn handoff_level(
    params: &CkksParams,
    level: usize,
    coeff_bound: f64,
    stat_bits: u32,
) -> Result<usize, CkksError> {
    if !coeff_bound.is_finite() || coeff_bound < 1.0 {
        return Err(CkksError::ValueOutOfRange(format!(
            "hand-off coefficient bound {coeff_bound}"
        )));
    }
    let need = coeff_bound.log2() + f64::from(stat_bits) + (params.n() as f64).log2() + 2.0;
    let mut have = 0.0;
    for (l, &q) in params.q().iter().enumerate().take(level + 1) {
        have += (q as f64).log2();
        if have >= need {
            return Ok(l);
        }
    }
    Err(CkksError::Flooding(format!(
        "the hand-off mask needs a modulus of 2^{need:.1} (coefficients up to 2^{:.1}, \
         κ = {stat_bits}) at level ≤ {level}; the ciphertext's primes give 2^{have:.1} — \
         compile the head with one more level",
        coeff_bound.log2()
    )))
}

/// `Q_ℓ = q_0 ⋯ q_ℓ` as an integer.
fn modulus_product(params: &CkksParams, level: usize) -> Result<u128, CkksError> {
    params
        .q()
        .iter()
        .take(level + 1)
        .try_fold(1u128, |acc, &q| acc.checked_mul(u128::from(q)))
        .ok_or_else(|| CkksError::ValueOutOfRange("the share modulus exceeds 2^128".into()))
}

/// The mask's interval `[lo, lo + width)` for coefficients `|m| ≤ b`
/// modulo `q`: `lo = ⌈b⌉`, `width = q − 2·lo`, so that `m + r` stays in
/// `[0, q)` for every `m` and `r` — no wrap-around. Refused when there is
/// no room.
pub fn mask_interval(q: u128, b: f64) -> Result<(u128, u128), CkksError> {
    if !b.is_finite() || b < 0.0 || b >= q as f64 {
        return Err(CkksError::ValueOutOfRange(format!(
            "no room for a hand-off mask of coefficients up to {b} modulo 2^{:.1}",
            (q as f64).log2()
        )));
    }
    let lo = b.ceil() as u128;
    let width = lo
        .checked_mul(2)
        .and_then(|two| q.checked_sub(two))
        .filter(|&w| w > 0)
        .ok_or_else(|| {
            CkksError::ValueOutOfRange(format!(
                "no room for a hand-off mask of coefficients up to {b} modulo {q}"
            ))
        })?;
    Ok((lo, width))
}

impl Evaluator {
    /// The server's half of the hand-off (see the module documentation):
    /// `ct` (bounded by `bound`) dropped to the mask's level,
    /// re-randomized under `pk`, plus a mask uniform in `[B, Q_ℓ − B)`;
    /// returns the ciphertext for the client and the server's share `−r`.
    pub fn mask_for_handoff<R: RngCore + CryptoRng>(
        &self,
        ct: &Ciphertext,
        pk: &PublicKey,
        bound: &NoiseBound,
        stat_bits: u32,
        rng: &mut R,
    ) -> Result<(Ciphertext, HandoffShare), CkksError> {
        let params = self.params();
        let b = handoff_coeff_bound(params, bound)?;
        let level = handoff_level(params, ct.level(), b, stat_bits)?;
        let q = modulus_product(params, level)?;
        let (lo, width) = mask_interval(q, b)?;
        let dropped = self.drop_to_level(ct, level)?;
        let mut out = self.rerandomize(&dropped, pk, rng)?;
        let ring = params.ring();
        let n = params.n();
        // `rand`'s uniform integers (unbiased: Lemire's widening
        // multiplication with rejection).
        let mut r: Zeroizing<Vec<u128>> =
            Zeroizing::new((0..n).map(|_| lo + rng.random_range(0..width)).collect());
        let mut poly = RnsPoly::zero(ring, level + 1, 0, false);
        for (i, t) in ring.q_tables().iter().take(level + 1).enumerate() {
            let m = t.modulus();
            for (c, &x) in poly.limb_mut(i).iter_mut().zip(r.iter()) {
                *c = m.reduce_u128(x);
            }
        }
        poly.ntt_forward(ring);
        if let Some(c0) = out.c.first_mut() {
            c0.add_assign(ring, &poly)?;
        }
        zeroize::Zeroize::zeroize(&mut poly);
        for x in r.iter_mut() {
            *x = x.wrapping_neg();
        }
        Ok((
            out,
            HandoffShare {
                coeffs: r,
                scale: ct.scale,
            },
        ))
    }
}

impl Decryptor {
    /// The client's half of the hand-off: the masked ciphertext decrypted
    /// to the integers `u = m + r ∈ [0, Q_ℓ)` (at most two primes, as
    /// [`Evaluator::mask_for_handoff`] leaves it).
    pub fn decrypt_handoff(&self, ct: &Ciphertext) -> Result<HandoffShare, CkksError> {
        let params = self.params().clone();
        let level = ct.level();
        // Shares are integers below Q_ℓ < 2^128 (at most two primes).
        modulus_product(&params, level)?;
        if level > 1 {
            return Err(CkksError::InvalidLevel(level));
        }
        let pt = self.decrypt(ct)?;
        let ring = params.ring();
        let mut poly = pt.poly().clone();
        poly.ntt_inverse(ring);
        let tables = ring.q_tables();
        let mut coeffs = Zeroizing::new(Vec::with_capacity(params.n()));
        let t0 = tables.first().ok_or(CkksError::InvalidLevel(0))?;
        let m0 = t0.modulus();
        let l0 = poly.limb(0);
        if level == 0 {
            coeffs.extend(l0.iter().map(|&x| u128::from(x)));
        } else {
            let m1 = tables.get(1).ok_or(CkksError::InvalidLevel(1))?.modulus();
            let q0 = u128::from(m0.value());
            let q0_inv = m1.inv(m0.value())?;
            for (&x0, &x1) in l0.iter().zip(poly.limb(1)) {
                let t = m1.mul(m1.sub(x1, m1.reduce(x0)), q0_inv);
                coeffs.push(u128::from(x0) + q0 * u128::from(t));
            }
        }
        zeroize::Zeroize::zeroize(&mut poly);
        Ok(HandoffShare {
            coeffs,
            scale: ct.scale,
        })
    }
}

/// The linear map from shares of a plaintext's coefficients to shares of
/// chosen slots' real parts in fixed point (`y·2^(frac+guard)`, to be
/// truncated by `guard` bits inside the computation), computed modulo
/// 2^128 on each share separately.
#[derive(Clone, Debug)]
pub struct SlotDecoding {
    /// Row-major `slots × terms` integer weights.
    weights: Vec<u128>,
    terms: usize,
    stride: usize,
    guard: u32,
}

impl SlotDecoding {
    /// The map for `slots` (slot indices), for a plaintext at `scale`
    /// whose slots repeat with period `chunk` (`slots` count for no
    /// replication), decoding to `frac` fractional bits.
    /// `coeff_bound` bounds the plaintext's canonical norm (hence its
    /// coefficients and their Euclidean norm): the guard bits
    /// are chosen so that the weights' rounding costs at most half a unit
    /// in the last place, and `value_bound` (slots' absolute values) so
    /// that the result fits the ring with room for a truncation that
    /// fails with probability below 2^−40.
    pub fn new(
        params: &CkksParams,
        slots: &[usize],
        chunk: usize,
        scale: f64,
        frac: u32,
        coeff_bound: f64,
        value_bound: f64,
    ) -> Result<Self, CkksError> {
        let n = params.n();
        let half = n / 2;
        if !chunk.is_power_of_two() || chunk > half || slots.iter().any(|&s| s >= chunk) {
            return Err(CkksError::ValueOutOfRange(format!(
                "slots {:?}… of a {chunk}-periodic packing in {half} slots",
                slots.iter().take(4).collect::<Vec<_>>()
            )));
        }
        let valid = scale.is_finite()
            && scale >= 1.0
            && coeff_bound.is_finite()
            && coeff_bound >= 1.0
            && value_bound.is_finite()
            && value_bound > 0.0;
        if !valid {
            return Err(CkksError::ValueOutOfRange(format!(
                "decoding at scale {scale} with bounds {coeff_bound}, {value_bound}"
            )));
        }
        let stride = half / chunk;
        let terms = n / stride;
        // Rounding each weight costs ≤ ½·|m_k|: ≤ ½·‖m‖₁ ≤ ½·√terms·‖m‖₂
        // in all, and ‖m‖₂ = ‖σ(m)‖₂/√N ≤ ‖σ(m)‖∞ ≤ B — half an ulp after
        // dividing by 2^guard when 2^guard ≥ √terms·B.
        let guard = ((terms as f64).sqrt() * coeff_bound).log2().ceil().max(1.0) as u32;
        let top = value_bound.log2() + f64::from(frac + guard) + 1.0;
        if top > 86.0 {
            return Err(CkksError::ValueOutOfRange(format!(
                "decoded values need 2^{top:.1} in Z_2^128 (at most 2^86 leaves a truncation \
                 failing with probability below 2^−40): lower the fixed-point precision or the \
                 bounds"
            )));
        }
        let factor = 2f64.powi((frac + guard) as i32) / scale;
        if factor > 2f64.powi(100) {
            return Err(CkksError::ValueOutOfRange(format!(
                "decoding weights of 2^{:.1}",
                factor.log2()
            )));
        }
        let two_n = 2 * n as u64;
        // cos(π·t/N) for t < 2N: the weight of coefficient k in slot j is
        // cos(π·(k·g_j mod 2N)/N).
        let cos: Vec<f64> = (0..2 * n)
            .map(|t| (PI * t as f64 / n as f64).cos())
            .collect();
        // g_j = 5^j mod 2N: slot j evaluates at ζ^(g_j).
        let mut g_of = Vec::with_capacity(half);
        let mut g = 1u64;
        for _ in 0..half {
            g_of.push(g);
            g = g * 5 % two_n;
        }
        let mut weights = Vec::with_capacity(slots.len() * terms);
        for &j in slots {
            let g = g_of.get(j).copied().unwrap_or(1);
            for t in 0..terms {
                let k = (t * stride) as u64;
                let c = cos.get(((k * g) % two_n) as usize).copied().unwrap_or(0.0);
                weights.push((factor * c).round() as i128 as u128);
            }
        }
        Ok(Self {
            weights,
            terms,
            stride,
            guard,
        })
    }

    /// Bits to truncate after adding the shares.
    pub fn guard_bits(&self) -> u32 {
        self.guard
    }

    /// The map applied to one share (`N` coefficients): one `Z_2^128`
    /// value per slot.
    pub fn apply(&self, share: &HandoffShare) -> Result<Vec<u128>, CkksError> {
        let c = share.coeffs();
        if c.len() != self.terms * self.stride {
            return Err(CkksError::ValueOutOfRange(format!(
                "a share of {} coefficients, not {}",
                c.len(),
                self.terms * self.stride
            )));
        }
        let picked: Vec<u128> = c.iter().step_by(self.stride).copied().collect();
        Ok(self
            .weights
            .chunks(self.terms)
            .map(|row| {
                row.iter()
                    .zip(&picked)
                    .fold(0u128, |acc, (&w, &x)| acc.wrapping_add(w.wrapping_mul(x)))
            })
            .collect())
    }
}
