//! L2 clipping: fixed, and adaptive by private quantile tracking
//! (Andrew, Thakkar, McMahan, Ramaswamy 2021, "Differentially Private
//! Learning with Adaptive Clipping").
//!
//! Adaptive clipping: each client reports the bit bᵢ = [‖Δᵢ‖ ≤ C]; the server
//! forms the noised fraction b̃ = (Σbᵢ + N(0, σ_b²))/m and updates
//! C ← C·exp(−η(b̃ − γ)) (geometric update), which drives C towards the
//! γ-quantile of the update norms. The count is a second query on the same
//! clients, so to keep the overall noise multiplier z of the round the
//! update's noise multiplier is raised to
//! σ_Δ = (z⁻² − (2σ_b)⁻²)^(−1/2) ([`update_noise_multiplier`]); the round is
//! then accounted for as one Gaussian mechanism with multiplier z.

use crate::error::{invalid, DpError};
use crate::mechanisms::standard_normal_pair;
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

/// L2 norm of `v` without overflow or underflow (scaled by the largest
/// magnitude). NaN if any element is NaN, +∞ if any is infinite.
pub fn l2_norm(v: &[f64]) -> f64 {
    let mut max = 0.0f64;
    for &x in v {
        if x.is_nan() {
            return f64::NAN;
        }
        max = max.max(x.abs());
    }
    if max == 0.0 || max.is_infinite() {
        return max;
    }
    let s: f64 = v.iter().map(|x| (x / max) * (x / max)).sum();
    max * s.sqrt()
}

/// Scales `v` in place so that its L2 norm is at most `c`, and returns the
/// norm before clipping.
///
/// Untrusted input never panics and never leaks an unclipped value:
/// a `c` that is NaN or negative is treated as 0 (the vector is zeroed), and
/// a vector whose norm is not finite (NaN/∞ entries) is zeroed; the returned
/// norm is then NaN or +∞ so the caller can detect it. `c = +∞` disables
/// clipping for finite vectors.
pub fn clip_l2(v: &mut [f64], c: f64) -> f64 {
    let norm = l2_norm(v);
    let c = if c.is_nan() || c < 0.0 { 0.0 } else { c };
    if !norm.is_finite() {
        v.iter_mut().for_each(|x| *x = 0.0);
        return norm;
    }
    if norm > c {
        let scale = if norm > 0.0 { c / norm } else { 0.0 };
        v.iter_mut().for_each(|x| *x *= scale);
    }
    norm
}

/// Like [`clip_l2`] but rejects an invalid bound (`c` NaN or < 0) with an error.
pub fn try_clip_l2(v: &mut [f64], c: f64) -> Result<f64, DpError> {
    if c.is_nan() || c < 0.0 {
        return Err(invalid("clip norm", c, "must be >= 0"));
    }
    Ok(clip_l2(v, c))
}

/// Noise multiplier for the update when the clipped-count query (noise
/// standard deviation `count_stddev` = σ_b) shares a round whose overall
/// noise multiplier is `total`: σ_Δ = (z⁻² − (2σ_b)⁻²)^(−1/2).
/// Requires 2σ_b > z.
pub fn update_noise_multiplier(total: f64, count_stddev: f64) -> Result<f64, DpError> {
    if !(total.is_finite() && total > 0.0) {
        return Err(DpError::InvalidNoiseMultiplier(total));
    }
    if !(count_stddev.is_finite() && 2.0 * count_stddev > total) {
        return Err(invalid(
            "count noise stddev",
            count_stddev,
            "must be finite with 2*sigma_b greater than the total noise multiplier",
        ));
    }
    let inv = total.powi(-2) - (2.0 * count_stddev).powi(-2);
    Ok(inv.powf(-0.5))
}

/// The overall noise multiplier of a round made of an update with noise
/// multiplier `update` and a count with noise stddev `count_stddev`:
/// z = (σ_Δ⁻² + (2σ_b)⁻²)^(−1/2) — the inverse of [`update_noise_multiplier`].
pub fn joint_noise_multiplier(update: f64, count_stddev: f64) -> Result<f64, DpError> {
    if !(update.is_finite() && update > 0.0) {
        return Err(DpError::InvalidNoiseMultiplier(update));
    }
    if !(count_stddev.is_finite() && count_stddev > 0.0) {
        return Err(invalid(
            "count noise stddev",
            count_stddev,
            "must be finite and > 0",
        ));
    }
    Ok((update.powi(-2) + (2.0 * count_stddev).powi(-2)).powf(-0.5))
}

/// Adaptive clip-norm tracker (state is serialisable).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveClipper {
    clip: f64,
    target_quantile: f64,
    learning_rate: f64,
    count_stddev: f64,
}

impl AdaptiveClipper {
    /// `initial_clip` > 0, target quantile γ ∈ (0, 1), learning rate η > 0
    /// (the paper uses 0.2), count noise stddev σ_b ≥ 0 (0 = no privacy for
    /// the count; use with care).
    pub fn new(
        initial_clip: f64,
        target_quantile: f64,
        learning_rate: f64,
        count_stddev: f64,
    ) -> Result<Self, DpError> {
        if !(initial_clip.is_finite() && initial_clip > 0.0) {
            return Err(invalid(
                "initial clip",
                initial_clip,
                "must be finite and > 0",
            ));
        }
        if !(target_quantile > 0.0 && target_quantile < 1.0) {
            return Err(invalid(
                "target quantile",
                target_quantile,
                "must be in (0, 1)",
            ));
        }
        if !(learning_rate.is_finite() && learning_rate > 0.0) {
            return Err(invalid(
                "learning rate",
                learning_rate,
                "must be finite and > 0",
            ));
        }
        if !(count_stddev.is_finite() && count_stddev >= 0.0) {
            return Err(invalid(
                "count noise stddev",
                count_stddev,
                "must be finite and >= 0",
            ));
        }
        Ok(AdaptiveClipper {
            clip: initial_clip,
            target_quantile,
            learning_rate,
            count_stddev,
        })
    }

    /// The current clip norm C.
    pub fn clip(&self) -> f64 {
        self.clip
    }

    /// The count's noise standard deviation σ_b.
    pub fn count_stddev(&self) -> f64 {
        self.count_stddev
    }

    /// A client's bit: whether its update norm is within the current clip.
    pub fn indicator(&self, norm: f64) -> bool {
        norm <= self.clip
    }

    /// Server step: from `unclipped` = Σbᵢ over the `expected_clients`
    /// (the expected number of participants, m), adds N(0, σ_b²) to the
    /// count, and applies C ← C·exp(−η(b̃ − γ)). Returns the noised fraction b̃.
    pub fn update<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        unclipped: u64,
        expected_clients: f64,
    ) -> Result<f64, DpError> {
        if !(expected_clients.is_finite() && expected_clients > 0.0) {
            return Err(invalid(
                "expected clients",
                expected_clients,
                "must be finite and > 0",
            ));
        }
        let noise = self.count_stddev * standard_normal_pair(rng).0;
        let b = (unclipped as f64 + noise) / expected_clients;
        let next = self.clip * (-self.learning_rate * (b - self.target_quantile)).exp();
        // Keep C a usable positive finite number whatever the noise did.
        self.clip = next.clamp(f64::MIN_POSITIVE, f64::MAX);
        Ok(b)
    }
}
