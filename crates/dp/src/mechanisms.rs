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
