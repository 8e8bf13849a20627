//! Distributed DP for secure aggregation: each of `n` clients adds an
//! integer noise *share* to its (scaled, rounded) update, so that the sum the
//! server decrypts carries the target noise — no party ever sees a
//! noiseless value.
//!
//! Shares are pre-scaled for a caller-chosen minimum number of survivors
//! `m_min`: each share has variance `σ_target² / m_min`, so if at least
//! `m_min` clients report, the aggregate noise is at least the target. When
//! only `m` clients report (dropouts), the aggregate variance is
//! `m·σ_target²/m_min`; [`DistributedNoise::epsilon`] computes the ε
//! actually achieved for that `m`.
//!
//! Accounting (RDP, integer sensitivities Δ₁, Δ₂ in the integer units the
//! noise is added in):
//! * Skellam — sums of Skellam shares are exactly Skellam with the summed
//!   variance μ; RDP(α) ≤ αΔ₂²/(2μ) + min(((2α−1)Δ₂² + 6Δ₁)/(4μ²), 3Δ₁/(2μ))
//!   for integer α (Agarwal, Kairouz, Liu 2021, Thm 3.5).
//! * Discrete Gaussian — the sum of m discrete Gaussians of variance s² is
//!   not a discrete Gaussian; Kairouz, Liu, Steinke 2021 (Prop. 14) bound its
//!   RDP by min of α/2·ℓ₂² + τd, α/2·(ℓ₂² + 2ℓ₁τ + τ²d), α/2·(ℓ₂ + √d·τ)²,
//!   with ℓᵢ = Δᵢ/(√m·s) and τ = 10·Σ_{k=1}^{m−1} exp(−2π²s²·k/(k+1)).
//! * Poisson subsampling of clients (rate q < 1) uses the general upper bound
//!   of Zhu & Wang 2019 (Thm 9) for integer orders, capped by the
//!   non-subsampled RDP.
//!
//! RDP orders are the integers 2…256; conversion to (ε, δ) is the same
//! tight conversion as [`crate::rdp`].

use crate::discrete::{add_skellam, DiscreteGaussian};
use crate::error::{check_delta, check_q, check_steps, invalid, DpError};
use crate::rdp::rdp_to_epsilon;
use crate::special::{log_add, log_comb};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

/// Which integer noise the clients add.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IntegerNoise {
    /// Discrete Gaussian shares (exact CKS sampler).
    DiscreteGaussian,
    /// Skellam shares.
    Skellam,
}

/// A distributed-noise plan: per-client share parameters and accounting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DistributedNoise {
    /// Noise kind.
    pub kind: IntegerNoise,
    /// Number of clients asked to contribute.
    pub clients: u64,
    /// Minimum number of survivors the shares are scaled for.
    pub min_survivors: u64,
    /// Target standard deviation of the aggregate noise (integer units) when
    /// exactly `min_survivors` clients report.
    pub target_stddev: f64,
}

impl DistributedNoise {
    /// Plans shares so that any `min_survivors ≤ m ≤ clients` reporting clients
    /// give aggregate noise with standard deviation ≥ `target_stddev`.
    pub fn new(
        kind: IntegerNoise,
        clients: u64,
        min_survivors: u64,
        target_stddev: f64,
    ) -> Result<Self, DpError> {
        if clients == 0 || clients > 1 << 32 {
            return Err(invalid("clients", clients, "must be between 1 and 2^32"));
        }
        if min_survivors == 0 || min_survivors > clients {
            return Err(invalid(
                "min_survivors",
                min_survivors,
                "must be between 1 and the number of clients",
            ));
        }
        if !(target_stddev.is_finite() && target_stddev > 0.0 && target_stddev <= 1e12) {
            return Err(invalid(
                "target_stddev",
                target_stddev,
                "must be finite and in (0, 1e12]",
            ));
        }
        Ok(DistributedNoise {
            kind,
            clients,
            min_survivors,
            target_stddev,
        })
    }

    /// Variance of one client's share: σ_target² / m_min.
    pub fn share_variance(&self) -> f64 {
        self.target_stddev * self.target_stddev / self.min_survivors as f64
    }

    /// Standard deviation of one client's share (for the discrete Gaussian
    /// this is its σ parameter: σ_target/√m_min).
    pub fn share_stddev(&self) -> f64 {
        self.share_variance().sqrt()
    }

    /// Standard deviation of the aggregate noise when `survivors` clients report.
    pub fn aggregate_stddev(&self, survivors: u64) -> f64 {
        (survivors as f64 * self.share_variance()).sqrt()
    }

    /// Adds this client's share of noise to `out` (integer units).
    pub fn add_share<R: RngCore + CryptoRng>(
        &self,
        rng: &mut R,
        out: &mut [i64],
    ) -> Result<(), DpError> {
        match self.kind {
            IntegerNoise::DiscreteGaussian => {
                let dg = DiscreteGaussian::from_sigma(self.share_stddev())?;
                dg.add_noise(rng, out)
            }
            IntegerNoise::Skellam => add_skellam(rng, self.share_variance(), out),
        }
    }

    /// ε achieved after `steps` rounds when `survivors` clients report in each
    /// round, each round sampled with client rate `q` (1 = every round
    /// counts), for integer-unit sensitivities `l1`, `l2` of one client's
    /// contribution and dimension `dim`.
    #[allow(clippy::too_many_arguments)]
    pub fn epsilon(
        &self,
        survivors: u64,
        l1: f64,
        l2: f64,
        dim: u64,
        q: f64,
        steps: u64,
        delta: f64,
    ) -> Result<f64, DpError> {
        check_steps(steps)?;
        check_delta(delta)?;
        let mut total = DistributedComposition::default();
        total.record(&self.round_rdp(survivors, l1, l2, dim, q)?, steps)?;
        total.epsilon(delta)
    }

    /// The RDP of one round at the orders [`RDP_ORDERS`] (same arguments as
    /// [`DistributedNoise::epsilon`]): the building block of a composition
    /// of rounds with different noise ([`DistributedComposition`]).
    pub fn round_rdp(
        &self,
        survivors: u64,
        l1: f64,
        l2: f64,
        dim: u64,
        q: f64,
    ) -> Result<Vec<f64>, DpError> {
        if survivors == 0 || survivors > self.clients {
            return Err(invalid(
                "survivors",
                survivors,
                "must be between 1 and the number of clients",
            ));
        }
        if !(l1.is_finite() && l1 > 0.0 && l2.is_finite() && l2 > 0.0) {
            return Err(invalid(
                "sensitivity",
                format!("l1={l1}, l2={l2}"),
                "must be finite and > 0",
            ));
        }
        if dim == 0 {
            return Err(invalid("dim", dim, "must be >= 1"));
        }
        check_q(q)?;
        let m = survivors as f64;
        let single: Box<dyn Fn(f64) -> f64> = match self.kind {
            IntegerNoise::Skellam => {
                let mu = m * self.share_variance();
                Box::new(move |a: f64| {
                    a * l2 * l2 / (2.0 * mu)
                        + (((2.0 * a - 1.0) * l2 * l2 + 6.0 * l1) / (4.0 * mu * mu))
                            .min(3.0 * l1 / (2.0 * mu))
                })
            }
            IntegerNoise::DiscreteGaussian => {
                let s2 = self.share_variance();
                let mut tau = 0.0;
                for k in 1..survivors.min(1 << 20) {
                    let k = k as f64;
                    tau += (-2.0 * std::f64::consts::PI.powi(2) * s2 * k / (k + 1.0)).exp();
                }
                let tau = 10.0 * tau;
                let sc = (m * s2).sqrt();
                let (l1s, l2s, d) = (l1 / sc, l2 / sc, dim as f64);
                Box::new(move |a: f64| {
                    let t1 = a / 2.0 * l2s * l2s + tau * d;
                    let t2 = a / 2.0 * (l2s * l2s + 2.0 * l1s * tau + tau * tau * d);
                    let t3 = a / 2.0 * (l2s + d.sqrt() * tau).powi(2);
                    t1.min(t2).min(t3)
                })
            }
        };
        Ok(RDP_ORDERS
            .map(|a| {
                let base = single(f64::from(a));
                if q >= 1.0 {
                    base
                } else {
                    base.min(subsampled_rdp(u64::from(a), q, &*single))
                }
            })
            .collect())
    }
}

/// The RDP orders of the distributed accountant: the integers 2…256 (the
/// Zhu–Wang subsampling bound holds at integer orders).
pub const RDP_ORDERS: std::ops::RangeInclusive<u32> = 2..=256;

/// A composition of rounds whose noise may differ from round to round (a
/// dynamic privacy schedule): RDP adds up order by order, and ε is the
/// tight conversion of the sum. With one kind of round it gives exactly
/// [`DistributedNoise::epsilon`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DistributedComposition {
    /// Summed RDP at [`RDP_ORDERS`] (empty: nothing recorded).
    rdp: Vec<f64>,
}

impl DistributedComposition {
    /// Records `steps` rounds whose one-round RDP is `round_rdp` (from
    /// [`DistributedNoise::round_rdp`]).
    pub fn record(&mut self, round_rdp: &[f64], steps: u64) -> Result<(), DpError> {
        check_steps(steps)?;
        let orders = RDP_ORDERS.count();
        if round_rdp.len() != orders {
            return Err(invalid(
                "round_rdp",
                round_rdp.len(),
                "must hold one value per order 2..=256",
            ));
        }
        if self.rdp.is_empty() {
            self.rdp = vec![0.0; orders];
        }
        let t = steps as f64;
        for (acc, r) in self.rdp.iter_mut().zip(round_rdp) {
            *acc += r * t;
        }
        Ok(())
    }

    /// ε at `delta` of everything recorded (0 when nothing was).
    pub fn epsilon(&self, delta: f64) -> Result<f64, DpError> {
        check_delta(delta)?;
        if self.rdp.is_empty() {
            return Ok(0.0);
        }
        let orders: Vec<f64> = RDP_ORDERS.map(f64::from).collect();
        Ok(rdp_to_epsilon(&orders, &self.rdp, delta).0)
    }
}

/// Zhu & Wang (2019) upper bound on the RDP at integer order α ≥ 2 of a
/// Poisson-subsampled mechanism whose RDP curve is `eps`.
pub(crate) fn subsampled_rdp(alpha: u64, q: f64, eps: &dyn Fn(f64) -> f64) -> f64 {
    let a = alpha as f64;
    let ln_q = q.ln();
    let ln_1mq = (-q).ln_1p();
    // (1−q)^{α−1}(αq − q + 1)
    let mut total = (a - 1.0) * ln_1mq + (a * q - q + 1.0).ln();
    // C(α,2) q² (1−q)^{α−2} e^{ε(2)}
    total = log_add(
        total,
        log_comb(a, 2.0) + 2.0 * ln_q + (a - 2.0) * ln_1mq + eps(2.0),
    );
    for l in 3..=alpha {
        let l = l as f64;
        let term = 3f64.ln() + log_comb(a, l) + (a - l) * ln_1mq + l * ln_q + (l - 1.0) * eps(l);
        total = log_add(total, term);
    }
    total / (a - 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropouts_raise_epsilon() {
        let plan = DistributedNoise::new(IntegerNoise::Skellam, 100, 80, 50.0).unwrap();
        let full = plan.epsilon(100, 10.0, 10.0, 1, 1.0, 10, 1e-5).unwrap();
        let planned = plan.epsilon(80, 10.0, 10.0, 1, 1.0, 10, 1e-5).unwrap();
        let fewer = plan.epsilon(40, 10.0, 10.0, 1, 1.0, 10, 1e-5).unwrap();
        assert!(
            full < planned && planned < fewer,
            "{full} {planned} {fewer}"
        );
    }

    #[test]
    fn subsampled_bound_is_below_full_for_gaussian_curve() {
        let g = |a: f64| a / (2.0 * 1.0);
        let sub = subsampled_rdp(8, 0.01, &g);
        assert!(sub < g(8.0));
        // And above the exact subsampled-Gaussian RDP (it is an upper bound).
        let exact = crate::rdp::rdp_poisson_gaussian(0.01, 1.0, 8.0);
        assert!(sub >= exact * 0.999, "{sub} {exact}");
    }
}
