//! Integer-valued noise: the exact discrete Gaussian sampler of Canonne,
//! Kamath and Steinke (2020, "The Discrete Gaussian for Differential
//! Privacy", Algorithms 1–3) and a Skellam sampler.
//!
//! The discrete Gaussian sampler is **exact**: σ² is a rational number
//! `num/den` and every random decision is a Bernoulli trial with a rational
//! probability decided by a uniform integer draw (rejection sampling on
//! `RngCore::next_u64`), so no floating point is involved. It is **not
//! constant time**: the number of loop iterations depends on the sample.
//! Parameters are limited so that all intermediate products fit in `u128`
//! (checked; overflow is reported as [`DpError::Overflow`], never a panic).
//!
//! The Skellam sampler draws `Poisson(μ/2) − Poisson(μ/2)` (variance μ) with
//! floating-point Poisson samplers (inversion for small means, Hörmann's
//! PTRS transformed rejection for large ones). It is accurate to double
//! precision but not bit-exact and not constant time; document this to
//! auditors or use the discrete Gaussian where exactness matters.

use crate::error::{invalid, DpError};
use crate::mechanisms::uniform_open0;
use rand_core::{CryptoRng, RngCore};

/// Largest σ² numerator/denominator accepted (2⁴⁰): keeps every product
/// in the sampler inside `u128`.
pub const MAX_RATIONAL_PART: u64 = 1 << 40;

/// A uniform integer in `[0, n)` (`n > 0`), by rejection: unbiased.
pub fn uniform_below<R: RngCore + ?Sized>(rng: &mut R, n: u128) -> u128 {
    if n <= 1 {
        return 0;
    }
    if n <= u128::from(u64::MAX) {
        let n64 = n as u64;
        // Reject the top partial block of 2^64 so every residue is equally likely.
        let zone = u64::MAX - (u64::MAX - n64 + 1) % n64;
        loop {
            let x = rng.next_u64();
            if x <= zone {
                return u128::from(x % n64);
            }
        }
    }
    let zone = u128::MAX - (u128::MAX - n + 1) % n;
    loop {
        let x = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
        if x <= zone {
            return x % n;
        }
    }
}

/// Bernoulli(num/den) with `num ≤ den`, `den > 0`.
fn bernoulli_rational<R: RngCore + ?Sized>(rng: &mut R, num: u128, den: u128) -> bool {
    uniform_below(rng, den) < num
}

/// Bernoulli(exp(−num/den)) exactly (CKS Algorithm 1), for `den > 0`.
pub fn bernoulli_exp_neg<R: RngCore + ?Sized>(
    rng: &mut R,
    num: u128,
    den: u128,
) -> Result<bool, DpError> {
    if den == 0 {
        return Err(DpError::Overflow("zero denominator in Bernoulli(exp(-x))"));
    }
    // exp(−γ) = exp(−1)^⌊γ⌋ · exp(−(γ − ⌊γ⌋)).
    let whole = num / den;
    let frac = num % den;
    let mut k = 0u128;
    while k < whole {
        if !bernoulli_exp_neg_le1(rng, 1, 1)? {
            return Ok(false);
        }
        k += 1;
    }
    bernoulli_exp_neg_le1(rng, frac, den)
}

/// Bernoulli(exp(−γ)) for γ = num/den ∈ [0, 1]: draw A_k ~ Bernoulli(γ/k)
/// for k = 1, 2, … until the first failure; return whether it came at an
/// odd k.
fn bernoulli_exp_neg_le1<R: RngCore + ?Sized>(
    rng: &mut R,
    num: u128,
    den: u128,
) -> Result<bool, DpError> {
    let mut k: u128 = 1;
    loop {
        let d = den
            .checked_mul(k)
            .ok_or(DpError::Overflow("Bernoulli(exp(-x)) loop"))?;
        if !bernoulli_rational(rng, num, d) {
            return Ok(k % 2 == 1);
        }
        k += 1;
    }
}

/// Discrete Laplace with scale `t` (integer ≥ 1): P(x) ∝ exp(−|x|/t)
/// (CKS Algorithm 2 with s = 1).
pub fn discrete_laplace<R: RngCore + ?Sized>(rng: &mut R, t: u64) -> Result<i64, DpError> {
    if t == 0 {
        return Err(invalid("t", t, "the discrete Laplace scale must be >= 1"));
    }
    let t128 = u128::from(t);
    loop {
        let u = uniform_below(rng, t128);
        if !bernoulli_exp_neg(rng, u, t128)? {
            continue;
        }
        let mut v: u128 = 0;
        while bernoulli_exp_neg(rng, 1, 1)? {
            v += 1;
        }
        let x = v
            .checked_mul(t128)
            .and_then(|m| m.checked_add(u))
            .ok_or(DpError::Overflow("discrete Laplace magnitude"))?;
        let negative = rng.next_u64() & 1 == 1;
        if negative && x == 0 {
            continue;
        }
        let x = i64::try_from(x).map_err(|_| DpError::Overflow("discrete Laplace magnitude"))?;
        return Ok(if negative { -x } else { x });
    }
}

/// An exact discrete Gaussian N_ℤ(0, σ²) sampler, σ² = `num/den`:
/// P(x) ∝ exp(−x²/(2σ²)) on the integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiscreteGaussian {
    num: u64,
    den: u64,
    t: u64,
}

impl DiscreteGaussian {
    /// σ² = `num/den` exactly; both in [1, [`MAX_RATIONAL_PART`]].
    pub fn new(sigma2_num: u64, sigma2_den: u64) -> Result<Self, DpError> {
        if !(1..=MAX_RATIONAL_PART).contains(&sigma2_num)
            || !(1..=MAX_RATIONAL_PART).contains(&sigma2_den)
        {
            return Err(invalid(
                "sigma^2",
                format!("{sigma2_num}/{sigma2_den}"),
                "numerator and denominator must be in [1, 2^40]",
            ));
        }
        // t = ⌊σ⌋ + 1 with ⌊σ⌋ = largest k with k²·den ≤ num.
        let (num, den) = (u128::from(sigma2_num), u128::from(sigma2_den));
        let mut k =
            ((sigma2_num as f64 / sigma2_den as f64).sqrt().floor() as u128).saturating_sub(1);
        while (k + 1) * (k + 1) * den <= num {
            k += 1;
        }
        while k > 0 && k * k * den > num {
            k -= 1;
        }
        let t = u64::try_from(k + 1).map_err(|_| DpError::Overflow("discrete Gaussian scale"))?;
        Ok(DiscreteGaussian {
            num: sigma2_num,
            den: sigma2_den,
            t,
        })
    }

    /// σ² approximated by a rational with denominator 2²⁰ (relative error
    /// ≤ 2⁻²⁰/σ²). σ must be finite with 2⁻¹⁰ ≤ σ ≤ 2¹⁰.
    pub fn from_sigma(sigma: f64) -> Result<Self, DpError> {
        if !(sigma.is_finite() && (1.0 / 1024.0..=1024.0).contains(&sigma)) {
            return Err(invalid(
                "sigma",
                sigma,
                "must be finite and in [2^-10, 2^10]",
            ));
        }
        let den: u64 = 1 << 20;
        let num = (sigma * sigma * den as f64).round().max(1.0) as u64;
        Self::new(num, den)
    }

    /// σ² as a float.
    pub fn variance_parameter(&self) -> f64 {
        self.num as f64 / self.den as f64
    }

    /// One sample (CKS Algorithm 3): Y ~ DLap(t) accepted with probability
    /// exp(−(|Y| − σ²/t)²/(2σ²)).
    pub fn sample<R: RngCore + CryptoRng>(&self, rng: &mut R) -> Result<i64, DpError> {
        let (a, b, t) = (
            u128::from(self.num),
            u128::from(self.den),
            u128::from(self.t),
        );
        loop {
            let y = discrete_laplace(rng, self.t)?;
            let abs = u128::from(y.unsigned_abs());
            // (|y| − a/(b t))² / (2 a/b) = (|y|·b·t − a)² / (2·a·b·t²)
            let ybt = abs
                .checked_mul(b)
                .and_then(|v| v.checked_mul(t))
                .ok_or(DpError::Overflow("discrete Gaussian acceptance"))?;
            let diff = ybt.abs_diff(a);
            let gnum = diff
                .checked_mul(diff)
                .ok_or(DpError::Overflow("discrete Gaussian acceptance"))?;
            let gden = a
                .checked_mul(2 * b)
                .and_then(|v| v.checked_mul(t * t))
                .ok_or(DpError::Overflow("discrete Gaussian acceptance"))?;
            if bernoulli_exp_neg(rng, gnum, gden)? {
                return Ok(y);
            }
        }
    }

    /// Adds an independent sample to every element of `out`.
    pub fn add_noise<R: RngCore + CryptoRng>(
        &self,
        rng: &mut R,
        out: &mut [i64],
    ) -> Result<(), DpError> {
        for x in out.iter_mut() {
            *x = x
                .checked_add(self.sample(rng)?)
                .ok_or(DpError::Overflow("noised value"))?;
        }
        Ok(())
    }

    /// The exact probability mass at `x` (normalised by a truncated sum;
    /// used by tests and audits).
    pub fn pmf(&self, x: i64) -> f64 {
        let s2 = self.variance_parameter();
        let w = |k: f64| (-k * k / (2.0 * s2)).exp();
        let range = (s2.sqrt() * 40.0).ceil() as i64 + 2;
        let z: f64 = (-range..=range).map(|k| w(k as f64)).sum();
        w(x as f64) / z
    }
}

/// Poisson(λ) by inversion (λ < 10) or PTRS (Hörmann 1993).
pub fn poisson<R: RngCore + CryptoRng>(rng: &mut R, lambda: f64) -> Result<u64, DpError> {
    if !(lambda.is_finite() && (0.0..=1e15).contains(&lambda)) {
        return Err(invalid(
            "lambda",
            lambda,
            "the Poisson mean must be finite and in [0, 1e15]",
        ));
    }
    if lambda == 0.0 {
        return Ok(0);
    }
    if lambda < 10.0 {
        // Sequential inversion.
        let u = uniform_open0(rng);
        let mut k = 0u64;
        let mut p = (-lambda).exp();
        let mut cdf = p;
        while u > cdf && k < 1000 {
            k += 1;
            p *= lambda / k as f64;
            cdf += p;
        }
        return Ok(k);
    }
    // PTRS: transformed rejection with squeeze.
    let slam = lambda.sqrt();
    let loglam = lambda.ln();
    let b = 0.931 + 2.53 * slam;
    let a = -0.059 + 0.02483 * b;
    let inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
    let vr = 0.9277 - 3.6224 / (b - 2.0);
    loop {
        let u = uniform_open0(rng) - 0.5;
        let v = uniform_open0(rng);
        let us = 0.5 - u.abs();
        let k = ((2.0 * a / us + b) * u + lambda + 0.43).floor();
        if us >= 0.07 && v <= vr {
            return Ok(k.max(0.0) as u64);
        }
        if k < 0.0 || (us < 0.013 && v > us) {
            continue;
        }
        let lhs = v.ln() + inv_alpha.ln() - (a / (us * us) + b).ln();
        let rhs = -lambda + k * loglam - libm::lgamma(k + 1.0);
        if lhs <= rhs {
            return Ok(k as u64);
        }
    }
}

/// Symmetric Skellam noise with variance `mu`: Poisson(μ/2) − Poisson(μ/2).
/// Sums of independent Skellam draws are Skellam (variances add), which is
/// what makes it suitable for shares added by many clients.
pub fn skellam<R: RngCore + CryptoRng>(rng: &mut R, mu: f64) -> Result<i64, DpError> {
    if !(mu.is_finite() && (0.0..=1e15).contains(&mu)) {
        return Err(invalid(
            "mu",
            mu,
            "the Skellam variance must be finite and in [0, 1e15]",
        ));
    }
    let a = poisson(rng, mu / 2.0)?;
    let b = poisson(rng, mu / 2.0)?;
    Ok(a as i64 - b as i64)
}

/// Adds independent Skellam(μ) noise to every element of `out`.
pub fn add_skellam<R: RngCore + CryptoRng>(
    rng: &mut R,
    mu: f64,
    out: &mut [i64],
) -> Result<(), DpError> {
    for x in out.iter_mut() {
        *x = x
            .checked_add(skellam(rng, mu)?)
            .ok_or(DpError::Overflow("noised value"))?;
    }
    Ok(())
}
