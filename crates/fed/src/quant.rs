//! From a model update to the integers a client encrypts, and back.
//!
//! A client clips its update `x` — to L2 norm `C` under DP (the
//! sensitivity), else every coordinate to `[−C, C]` (the quantization
//! range, like Flower's SecAgg+ clipping range) — scales it by `γ·w` (`w`:
//! its FedAvg weight, 1 under DP), rounds every coordinate at random to a
//! neighbouring integer (unbiased), resamples the rounding while the
//! rounded vector's norm exceeds the plan's bound (DP only), and adds its
//! integer noise share (DP only). The coordinator decrypts the exact sum of
//! these integers and divides by `γ·Σw`.

use crate::error::{FedError, Result};
use cipherflow_dp::discrete::{add_skellam, DiscreteGaussian};
use rand_core::{CryptoRng, RngCore};

/// The noise a client adds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ShareNoise {
    /// No DP.
    None,
    /// Discrete Gaussian of this σ.
    DiscreteGaussian(f64),
    /// Skellam of this variance.
    Skellam(f64),
}

/// A validated quantization recipe (from a round's task).
#[derive(Clone, Debug, PartialEq)]
pub struct Quantizer {
    /// L2 clip.
    pub clip: f64,
    /// Integers per unit.
    pub gamma: f64,
    /// Bound on the rounded vector's L2 norm (DP), else infinite.
    pub l2_bound: f64,
    /// Noise share.
    pub noise: ShareNoise,
    /// Examples per unit weight (weights are `min(n/ref, 1)`).
    pub weight_reference: f64,
    /// Bits of shift inside the ciphertext.
    pub shift: u32,
}

/// Rounding draws before giving up (each passes with probability ≥ 0.39).
const MAX_ROUNDING_TRIES: usize = 200;

impl Quantizer {
    /// A quantization recipe, validated: positive finite clip, γ and
    /// weight reference, γ·clip ≤ 2^40, a shift in 1..=110, a positive
    /// L2 bound (infinite only without DP noise), and a noise share in
    /// range (discrete Gaussian σ ≤ 1024, Skellam σ ≤ 2^30).
    pub fn new(
        clip: f64,
        gamma: f64,
        l2_bound: f64,
        noise: ShareNoise,
        weight_reference: f64,
        shift: u32,
    ) -> Result<Self> {
        let bad = |m: &str| Err(FedError::Protocol(format!("quantization: {m}")));
        let finite_pos = |x: f64| x.is_finite() && x > 0.0;
        if !finite_pos(clip) || !finite_pos(gamma) || !finite_pos(weight_reference) {
            return bad("clip, gamma and weight reference must be positive");
        }
        if !(l2_bound.is_infinite() || finite_pos(l2_bound)) {
            return bad("l2 bound must be positive");
        }
        if gamma * clip > 2f64.powi(40) {
            return bad("gamma·clip above 2^40");
        }
        if shift == 0 || shift > 110 {
            return bad("shift out of range");
        }
        let in_range = match noise {
            ShareNoise::None => true,
            ShareNoise::DiscreteGaussian(s) => finite_pos(s) && s <= 1024.0,
            ShareNoise::Skellam(v) => finite_pos(v) && v <= 2f64.powi(60),
        };
        if !in_range {
            return bad("unknown noise or σ out of range");
        }
        if noise != ShareNoise::None && l2_bound.is_infinite() {
            return bad("DP noise needs an L2 bound");
        }
        Ok(Self {
            clip,
            gamma,
            l2_bound,
            noise,
            weight_reference,
            shift,
        })
    }

    /// Whether DP noise is added.
    pub fn is_dp(&self) -> bool {
        self.noise != ShareNoise::None
    }

    /// The FedAvg weight of a client with `num_examples` examples.
    pub fn weight(&self, num_examples: u64) -> f64 {
        if self.is_dp() {
            1.0
        } else {
            (num_examples as f64 / self.weight_reference).clamp(0.0, 1.0)
        }
    }

    /// The integers for `update` (clipped, weighted, rounded, noised).
    pub fn encode<R: RngCore + CryptoRng>(
        &self,
        update: &[f32],
        num_examples: u64,
        rng: &mut R,
    ) -> Result<Vec<i64>> {
        let mut x: Vec<f64> = update.iter().map(|&v| f64::from(v)).collect();
        if x.iter().any(|v| !v.is_finite()) {
            return Err(FedError::Refused(
                "the update has NaN or infinite values".into(),
            ));
        }
        if self.is_dp() {
            // L2 clipping: the sensitivity the DP noise is calibrated for.
            cipherflow_dp::clipping::try_clip_l2(&mut x, self.clip)?;
        } else {
            // Coordinate clipping to the quantization range (the modulus is
            // sized for |v| ≤ γ·clip per coordinate).
            for v in x.iter_mut() {
                *v = v.clamp(-self.clip, self.clip);
            }
        }
        let scale = self.gamma * self.weight(num_examples);
        let y: Vec<f64> = x.iter().map(|v| v * scale).collect();
        let mut v = randomized_round(&y, self.l2_bound * self.l2_bound, rng)?;
        match self.noise {
            ShareNoise::None => {}
            ShareNoise::DiscreteGaussian(s) => {
                DiscreteGaussian::from_sigma(s)?.add_noise(rng, &mut v)?
            }
            ShareNoise::Skellam(var) => add_skellam(rng, var, &mut v)?,
        }
        Ok(v)
    }

    /// The mean update from the decrypted integer sum and the weight sum.
    pub fn decode_mean(&self, sum: &[i64], weight_sum: f64) -> Result<Vec<f32>> {
        if !(weight_sum.is_finite() && weight_sum > 0.0) {
            return Err(FedError::Protocol("weight sum must be positive".into()));
        }
        let k = 1.0 / (self.gamma * weight_sum);
        Ok(sum.iter().map(|&s| (s as f64 * k) as f32).collect())
    }
}

/// The quantizer a federation's configuration prescribes for a round
/// whose largest client has `weight_reference` examples. Clients compute
/// it too and refuse a task that asks for less noise than this (`z`: the
/// round's noise multiplier under a privacy schedule, which a client
/// checks against the schedule's history first).
pub fn expected(
    cfg: &crate::config::FederationConfig,
    dp: Option<&crate::dp_plan::DpPlan>,
    packing: &crate::packing::PackingPlan,
    weight_reference: f64,
    z: Option<f64>,
) -> Quantizer {
    match dp {
        None => {
            let b = cfg.aggregation.quant_bits;
            Quantizer {
                clip: cfg.aggregation.clip,
                gamma: 2f64.powi(b as i32) / cfg.aggregation.clip,
                l2_bound: f64::INFINITY,
                noise: ShareNoise::None,
                weight_reference: weight_reference.max(1.0),
                shift: packing.shift,
            }
        }
        Some(p) => {
            let sigma = p.share_sigma_at(z.unwrap_or(p.noise_multiplier));
            Quantizer {
                clip: p.clip,
                gamma: p.gamma,
                l2_bound: p.l2_bound,
                noise: match p.kind {
                    crate::config::NoiseKind::DiscreteGaussian => {
                        ShareNoise::DiscreteGaussian(sigma)
                    }
                    crate::config::NoiseKind::Skellam => ShareNoise::Skellam(sigma * sigma),
                },
                weight_reference: 1.0,
                shift: packing.shift,
            }
        }
    }
}

/// Unbiased randomized rounding of `y`, resampled until the squared L2
/// norm is at most `bound2` (conditional randomized rounding).
pub(crate) fn randomized_round<R: RngCore>(
    y: &[f64],
    bound2: f64,
    rng: &mut R,
) -> Result<Vec<i64>> {
    let mut v = vec![0i64; y.len()];
    for _ in 0..MAX_ROUNDING_TRIES {
        let mut norm2 = 0.0;
        for (o, &t) in v.iter_mut().zip(y) {
            let f = t.floor();
            let up = uniform01(rng) < t - f;
            let r = f + if up { 1.0 } else { 0.0 };
            norm2 += r * r;
            *o = r as i64;
        }
        if norm2 <= bound2 {
            return Ok(v);
        }
    }
    Err(FedError::Crypto(
        "randomized rounding kept exceeding its bound".into(),
    ))
}

/// A uniform double in [0, 1) with 53 random bits.
fn uniform01<R: RngCore>(rng: &mut R) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn plain(bits: u32) -> Quantizer {
        Quantizer {
            clip: 10.0,
            gamma: 2f64.powi(bits as i32) / 10.0,
            l2_bound: f64::INFINITY,
            noise: ShareNoise::None,
            weight_reference: 100.0,
            shift: 50,
        }
    }

    #[test]
    fn rounding_is_unbiased_and_weighted() {
        let q = plain(8);
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let x = vec![0.013f32; 4000];
        let mut acc = vec![0i64; 4000];
        let reps = 200;
        for _ in 0..reps {
            for (a, v) in acc.iter_mut().zip(q.encode(&x, 50, &mut rng).unwrap()) {
                *a += v;
            }
        }
        let mean = q.decode_mean(&acc, 0.5 * reps as f64).unwrap();
        let avg: f64 = mean.iter().map(|&m| f64::from(m)).sum::<f64>() / 4000.0;
        assert!((avg - 0.013).abs() < 1e-4, "{avg}");
        // Weights cap at 1.
        assert_eq!(q.weight(1000), 1.0);
    }

    #[test]
    fn dp_rounding_respects_the_bound_and_recipes_are_validated() {
        let d = 500u64;
        let gc = 200.0;
        let bound = crate::dp_plan::rounding_l2_bound(gc, d);
        let q = Quantizer {
            clip: 1.0,
            gamma: gc,
            l2_bound: bound,
            noise: ShareNoise::None,
            weight_reference: 1.0,
            shift: 50,
        };
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let y: Vec<f64> = (0..d)
            .map(|i| gc / (d as f64).sqrt() * ((i as f64) * 0.37).sin())
            .collect();
        for _ in 0..50 {
            let v = randomized_round(&y, bound * bound, &mut rng).unwrap();
            let n2: f64 = v.iter().map(|&a| (a * a) as f64).sum();
            assert!(n2 <= bound * bound);
        }
        let with_noise = Quantizer {
            noise: ShareNoise::DiscreteGaussian(8.0),
            ..q
        };
        assert!(Quantizer::new(1.0, f64::NAN, bound, with_noise.noise, 1.0, 50).is_err());
        assert!(Quantizer::new(1.0, gc, f64::INFINITY, with_noise.noise, 1.0, 50).is_err());
        assert!(Quantizer::new(1.0, gc, bound, ShareNoise::Skellam(-1.0), 1.0, 50).is_err());
        assert_eq!(
            Quantizer::new(1.0, gc, bound, with_noise.noise, 1.0, 50).unwrap(),
            with_noise
        );
        assert!(q.encode(&[f32::NAN], 1, &mut rng).is_err());
    }
}
