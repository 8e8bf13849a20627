//! Continuous Gaussian noise for local (client-side) training, and the
//! crate's cryptographically secure RNG constructor.
//!
//! [`gaussian_noise`] draws with the ziggurat method (`rand_distr`'s
//! `StandardNormal`, about five times faster than Box–Muller, which matters
//! for DP-SGD's per-step noise on every parameter) from a cryptographically
//! secure RNG (ChaCha20 in production); single draws use Box–Muller on
//! 53-bit uniforms. Neither is
//! constant time, and like every floating-point Gaussian sampler its output
//! is not exactly N(0, σ²) at the bit level (Mironov 2012 shows how the
//! low-order bits of floating-point noise can leak); for noise that must be
//! exact — e.g. added to integers inside secure aggregation — use the
//! discrete samplers in [`crate::discrete`].

use crate::error::DpError;
use rand_core::{CryptoRng, RngCore};

/// A uniform double in (0, 1]: 53 random bits, never zero.
pub(crate) fn uniform_open0<R: RngCore + ?Sized>(rng: &mut R) -> f64 {
    let bits = rng.next_u64() >> 11; // 53 bits
    ((bits + 1) as f64) * (1.0 / (1u64 << 53) as f64)
}

/// Two independent standard normal draws (Box–Muller).
pub(crate) fn standard_normal_pair<R: RngCore + ?Sized>(rng: &mut R) -> (f64, f64) {
    let u1 = uniform_open0(rng);
    let u2 = uniform_open0(rng);
    let r = (-2.0 * u1.ln()).sqrt();
    let theta = std::f64::consts::TAU * u2;
    (r * theta.cos(), r * theta.sin())
}

/// One standard normal draw.
pub fn standard_normal<R: RngCore + CryptoRng>(rng: &mut R) -> f64 {
    standard_normal_pair(rng).0
}

/// Adds independent N(0, σ²) noise to every element of `out` (it does not
/// overwrite: zero the slice first to obtain pure noise).
///
/// `sigma` must be finite and ≥ 0 (σ = 0 adds nothing). Because this
/// signature cannot report an error, an invalid σ (negative, NaN, ±∞)
/// sets every element to NaN so the failure can never pass silently as an
/// un-noised (non-private) result. Prefer [`try_gaussian_noise`], which
/// returns a typed error instead.
pub fn gaussian_noise<R: RngCore + CryptoRng>(rng: &mut R, sigma: f64, out: &mut [f64]) {
    if try_gaussian_noise(rng, sigma, out).is_err() {
        out.iter_mut().for_each(|x| *x = f64::NAN);
    }
}

/// Like [`gaussian_noise`] but returns [`DpError::InvalidParameter`] for an
/// invalid σ, leaving `out` untouched.
pub fn try_gaussian_noise<R: RngCore + CryptoRng>(
    rng: &mut R,
    sigma: f64,
    out: &mut [f64],
) -> Result<(), DpError> {
    if !(sigma.is_finite() && sigma >= 0.0) {
        return Err(crate::error::invalid(
            "sigma",
            sigma,
            "the noise standard deviation must be finite and >= 0",
        ));
    }
    if sigma == 0.0 {
        return Ok(());
    }
    for x in out.iter_mut() {
        let z: f64 = rand_distr::Distribution::sample(&rand_distr::StandardNormal, rng);
        *x += sigma * z;
    }
    Ok(())
}

/// A Poisson sample of `0..n`: each index independently with probability
/// `q` (the sampling DP-SGD's amplification assumes), in increasing order.
/// Drawn by geometric skips (the gap before the next selected index is
/// Geometric(q)), so a sample costs O(qn) random numbers instead of n.
/// `q` outside `(0, 1]` is refused.
pub fn poisson_sample<R: RngCore + CryptoRng>(
    rng: &mut R,
    n: usize,
    q: f64,
) -> Result<Vec<usize>, DpError> {
    if !(q > 0.0 && q <= 1.0) {
        return Err(crate::error::invalid(
            "q",
            q,
            "the sampling rate must be in (0, 1]",
        ));
    }
    if q >= 1.0 {
        return Ok((0..n).collect());
    }
    let log_keep = (-q).ln_1p(); // ln(1 − q) < 0
    let mut out = Vec::with_capacity((q * n as f64 * 1.2) as usize + 8);
    let mut next = 0usize;
    while next < n {
        // u uniform in (0, 1]: 53 random bits, never 0.
        let u = ((rng.next_u64() >> 11) as f64 + 1.0) * (1.0 / (1u64 << 53) as f64);
        let gap = (u.ln() / log_keep).floor();
        if gap >= (n - next) as f64 {
            break;
        }
        next += gap as usize;
        out.push(next);
        next += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn poisson_samples_have_the_expected_size_and_spread() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let (n, q) = (10_000, 0.01);
        let mut counts = vec![0u32; n];
        let trials = 400;
        let mut total = 0usize;
        for _ in 0..trials {
            let s = poisson_sample(&mut rng, n, q).unwrap();
            assert!(s.windows(2).all(|w| w[0] < w[1]) && s.iter().all(|&i| i < n));
            total += s.len();
            for i in s {
                counts[i] += 1;
            }
        }
        // E = q·n·trials = 40 000, sd ≈ 199: within 5 sd.
        let expected = q * n as f64 * trials as f64;
        assert!((total as f64 - expected).abs() < 1000.0, "{total}");
        // Both ends of the range are reached.
        assert!(counts[..100].iter().sum::<u32>() > 0 && counts[n - 100..].iter().sum::<u32>() > 0);
        assert_eq!(
            poisson_sample(&mut rng, 5, 1.0).unwrap(),
            vec![0, 1, 2, 3, 4]
        );
        assert!(poisson_sample(&mut rng, 0, 0.5).unwrap().is_empty());
        for bad in [0.0, -0.1, 1.5, f64::NAN] {
            assert!(poisson_sample(&mut rng, 10, bad).is_err(), "{bad}");
        }
    }
}
