//! Client-level distributed DP for a federation: every contributing client
//! adds an integer noise *share* to its clipped, scaled and rounded update,
//! so the decrypted sum carries the calibrated noise and no one — the
//! coordinator included — ever sees a noiseless update or sum.
//!
//! * **Rounding.** The update `x` (‖x‖₂ ≤ C) is scaled by `γ` and rounded
//!   coordinate-wise at random (`⌊y⌋ + Bernoulli(y − ⌊y⌋)`), resampled until
//!   `‖v‖₂² ≤ (γC)² + d/4 + (γC + √d/2)` (conditional randomized rounding,
//!   Kairouz, Liu & Steinke, ICML 2021, with β = e^−½: each draw passes
//!   with probability ≥ 0.39). That bound is the L2 sensitivity `Δ₂` in
//!   integer units; `Δ₁ ≤ min(√d·Δ₂, Δ₂²)`.
//! * **Noise.** Shares of variance `σ_total²/m_min` (`m_min` = quorum), so
//!   any admitted contributor set has at least the planned noise.
//! * **Accounting.** [`cipherflow_dp::distributed::DistributedNoise`]:
//!   Kairouz et al.'s bound for sums of discrete Gaussians (Agarwal et al.'s
//!   for Skellam), Zhu–Wang amplification for client sampling at rate
//!   `q = sampled/clients`, integer RDP orders 2…256, tight conversion.
//!   Global ε after `r` rounds; per-client ε over the rounds a client took
//!   part in, without amplification (`q = 1`). Shares have σ ≥ 4 so the
//!   discrete-Gaussian sum term `τ` is below 10⁻⁶⁰.
//! * **Audit.** [`DpPlan::ledger_settings`] records the mechanism in the
//!   ledger as a typed accountant (`DpAccounting::Distributed`) with every
//!   parameter, and [`ledger_epsilon`] recomputes ε from it offline.

use crate::config::{DpConfig, NoiseKind, Sizes};
use crate::error::{FedError, Result};
use cipherflow_dp::distributed::{DistributedComposition, DistributedNoise, IntegerNoise};
use cipherflow_ledger::entry::{DistributedDp, DistributedNoiseKind, DpAccounting, DpSettings};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::HashMap;

/// Smallest noise-share σ (integer units).
pub const MIN_SHARE_SIGMA: f64 = 4.0;
/// Largest discrete-Gaussian share σ the exact sampler accepts.
pub const MAX_DG_SHARE_SIGMA: f64 = 1024.0;

/// The rounding bound `Δ₂` for a scaled norm `gc = γC` in `d` dimensions.
pub fn rounding_l2_bound(gc: f64, d: u64) -> f64 {
    let d = d as f64;
    (gc * gc + d / 4.0 + gc + d.sqrt() / 2.0).sqrt()
}

/// A calibrated distributed-DP plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DpPlan {
    /// Integer noise kind.
    pub kind: NoiseKind,
    /// Target total ε.
    pub target_epsilon: f64,
    /// δ.
    pub delta: f64,
    /// L2 clip of updates.
    pub clip: f64,
    /// Planned rounds.
    pub rounds: u64,
    /// Clients sampled per round.
    pub sampled: u64,
    /// Clients in the federation.
    pub clients: u64,
    /// Minimum contributors (quorum): shares are sized for it.
    pub min_survivors: u64,
    /// Model dimension.
    pub dim: u64,
    /// Integers per unit.
    pub gamma: f64,
    /// `Δ₂` in integer units (the rounding bound).
    pub l2_bound: f64,
    /// `Δ₁` in integer units.
    pub l1_bound: f64,
    /// Standard deviation of one client's share.
    pub share_sigma: f64,
    /// σ_total / Δ₂ (the effective noise multiplier).
    pub noise_multiplier: f64,
    /// Per-client budget, if enforced.
    pub client_epsilon: Option<f64>,
    /// The dynamic schedule, if any ([`crate::dp_schedule`]): then each
    /// round's `z` comes from it, within
    /// `[min_noise_multiplier, max_noise_multiplier]`.
    #[serde(default)]
    pub schedule: Option<crate::dp_schedule::DpScheduleConfig>,
    /// The largest `z` any round may use (the packing is sized for it):
    /// `noise_multiplier` without a schedule.
    #[serde(default)]
    pub max_noise_multiplier: f64,
}

impl DpPlan {
    /// Calibrates the smallest noise multiplier that keeps ε ≤ the target
    /// after `rounds` rounds and sizes `γ` for a model of `dim` parameters.
    pub fn new(cfg: &DpConfig, sizes: &Sizes, rounds: u64, dim: u64) -> Result<Self> {
        if dim == 0 {
            return Err(FedError::Config("the model has no parameters".into()));
        }
        let q = sizes.sampled as f64 / sizes.clients as f64;
        let m_min = sizes.quorum as u64;
        // γC large enough that the rounding inflates Δ₂ by at most ~1 %.
        let mut gc = (12.5 * dim as f64).sqrt().max(100.0);
        let mut plan = Self {
            kind: cfg.noise,
            target_epsilon: cfg.epsilon,
            delta: cfg.delta,
            clip: cfg.clip,
            rounds,
            sampled: sizes.sampled as u64,
            clients: sizes.clients as u64,
            min_survivors: m_min,
            dim,
            gamma: 0.0,
            l2_bound: 0.0,
            l1_bound: 0.0,
            share_sigma: 0.0,
            noise_multiplier: 0.0,
            client_epsilon: cfg.client_epsilon,
            schedule: cfg.schedule.clone(),
            max_noise_multiplier: 0.0,
        };
        // Under a schedule the phases' noise spans [a·z, b·z] around the
        // fixed plan's z (a ≤ 1 ≤ b, nearly independent of the grid): the
        // least noisy phase must keep shares of σ ≥ 4 and the noisiest fit
        // the discrete-Gaussian sampler.
        let (mut a, mut b) = (1.0, 1.0);
        for _ in 0..8 {
            plan.set_scale(gc);
            plan.noise_multiplier = plan.calibrate(q)?;
            plan.share_sigma = plan.noise_multiplier * plan.l2_bound / (m_min as f64).sqrt();
            if let Some(sc) = &cfg.schedule {
                let (lo, hi) = crate::dp_schedule::planned_multipliers(&plan, sc)?;
                (a, b) = (lo / plan.noise_multiplier, hi / plan.noise_multiplier);
            }
            if plan.share_sigma * a >= MIN_SHARE_SIGMA {
                break;
            }
            gc *= 1.05 * MIN_SHARE_SIGMA / (plan.share_sigma * a);
        }
        if plan.share_sigma * a < MIN_SHARE_SIGMA {
            return Err(FedError::Config(
                "could not size the noise shares (σ_share ≥ 4)".into(),
            ));
        }
        // The exact discrete-Gaussian sampler takes σ ≤ 1024: trade a
        // coarser grid (rounding may inflate Δ₂ by up to ~5 %) for it.
        let floor = (2.5 * dim as f64).sqrt().max(16.0);
        for _ in 0..8 {
            let peak = plan.share_sigma * b;
            if plan.kind != NoiseKind::DiscreteGaussian || peak <= MAX_DG_SHARE_SIGMA {
                break;
            }
            let smaller = (gc * 0.98 * MAX_DG_SHARE_SIGMA / peak).max(floor);
            if smaller >= gc {
                break;
            }
            gc = smaller;
            plan.set_scale(gc);
            plan.noise_multiplier = plan.calibrate(q)?;
            plan.share_sigma = plan.noise_multiplier * plan.l2_bound / (m_min as f64).sqrt();
        }
        if plan.kind == NoiseKind::DiscreteGaussian && plan.share_sigma > MAX_DG_SHARE_SIGMA {
            return Err(FedError::Config(format!(
                "a discrete-Gaussian share would need σ = {:.0} > {MAX_DG_SHARE_SIGMA} for ε = {} \
                 over {rounds} rounds with a {dim}-parameter model; use `noise = \"skellam\"`, \
                 a larger ε, or fewer rounds",
                plan.share_sigma, cfg.epsilon
            )));
        }
        plan.max_noise_multiplier = match &cfg.schedule {
            None => plan.noise_multiplier,
            Some(sc) => crate::dp_schedule::planned_range(&plan, sc)?.1,
        };
        Ok(plan)
    }

    /// The integer noise kind, as `cipherflow-dp` names it.
    pub fn integer_noise(&self) -> IntegerNoise {
        match self.kind {
            NoiseKind::DiscreteGaussian => IntegerNoise::DiscreteGaussian,
            NoiseKind::Skellam => IntegerNoise::Skellam,
        }
    }

    /// One client's noise-share σ in a round at noise multiplier `z`.
    pub fn share_sigma_at(&self, z: f64) -> f64 {
        z * self.l2_bound / (self.min_survivors as f64).sqrt()
    }

    /// The largest noise-share σ of any round (what the packing holds).
    pub fn max_share_sigma(&self) -> f64 {
        self.share_sigma_at(self.max_noise_multiplier.max(self.noise_multiplier))
    }

    fn set_scale(&mut self, gc: f64) {
        self.gamma = gc / self.clip;
        self.l2_bound = rounding_l2_bound(gc, self.dim);
        self.l1_bound =
            ((self.dim as f64).sqrt() * self.l2_bound).min(self.l2_bound * self.l2_bound);
    }

    fn noise_with(&self, multiplier: f64) -> Result<DistributedNoise> {
        Ok(DistributedNoise::new(
            self.integer_noise(),
            self.sampled,
            self.min_survivors,
            multiplier * self.l2_bound,
        )?)
    }

    fn eps(&self, multiplier: f64, q: f64, steps: u64) -> Result<f64> {
        Ok(self.noise_with(multiplier)?.epsilon(
            self.min_survivors,
            self.l1_bound,
            self.l2_bound,
            self.dim,
            q,
            steps,
            self.delta,
        )?)
    }

    fn calibrate(&self, q: f64) -> Result<f64> {
        let (mut lo, mut hi) = (0.05f64, 1.0f64);
        while self.eps(hi, q, self.rounds)? > self.target_epsilon {
            lo = hi;
            hi *= 2.0;
            if hi > 1e6 {
                return Err(FedError::Config(format!(
                    "ε = {} is out of reach for {} rounds",
                    self.target_epsilon, self.rounds
                )));
            }
        }
        for _ in 0..60 {
            let mid = 0.5 * (lo + hi);
            if self.eps(mid, q, self.rounds)? > self.target_epsilon {
                lo = mid;
            } else {
                hi = mid;
            }
            if hi - lo < 1e-7 * hi {
                break;
            }
        }
        Ok(hi)
    }

    /// Client sampling rate.
    pub fn sampling_rate(&self) -> f64 {
        self.sampled as f64 / self.clients as f64
    }

    /// Global ε after `rounds` rounds.
    pub fn epsilon_after(&self, rounds: u64) -> Result<f64> {
        if rounds == 0 {
            return Ok(0.0);
        }
        self.eps(self.noise_multiplier, self.sampling_rate(), rounds)
    }

    /// A client's ε after taking part in `participations` rounds (no amplification).
    pub fn client_epsilon_after(&self, participations: u64) -> Result<f64> {
        if participations == 0 {
            return Ok(0.0);
        }
        self.eps(self.noise_multiplier, 1.0, participations)
    }

    /// The accountant recorded in the ledger: every parameter the
    /// recomputation needs.
    pub fn accounting(&self) -> DpAccounting {
        self.accounting_at(self.noise_multiplier)
    }

    /// The accountant of a round at noise multiplier `z`.
    pub fn accounting_at(&self, z: f64) -> DpAccounting {
        DpAccounting::Distributed(DistributedDp {
            noise: match self.kind {
                NoiseKind::DiscreteGaussian => DistributedNoiseKind::DiscreteGaussian,
                NoiseKind::Skellam => DistributedNoiseKind::Skellam,
            },
            clients: self.sampled,
            min_survivors: self.min_survivors,
            target_stddev: z * self.l2_bound,
            l1: self.l1_bound,
            l2: self.l2_bound,
            dim: self.dim,
        })
    }

    /// DP settings of the `cumulative`-th round (1 step per round).
    pub fn ledger_settings(&self, cumulative: u64) -> DpSettings {
        self.ledger_settings_at(cumulative, self.noise_multiplier)
    }

    /// DP settings of the `cumulative`-th round at noise multiplier `z`.
    pub fn ledger_settings_at(&self, cumulative: u64, z: f64) -> DpSettings {
        DpSettings {
            accountant: self.accounting_at(z),
            sampling_rate: self.sampling_rate(),
            noise_multiplier: z,
            delta: self.delta,
            steps_this_round: 1,
            steps_cumulative: cumulative,
        }
    }
}

/// A sample-level DP plan (local DP-SGD on every client).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LocalDpPlan {
    /// Target ε per client over all rounds.
    pub target_epsilon: f64,
    /// δ.
    pub delta: f64,
    /// Per-example clip.
    pub clip: f32,
    /// Poisson sampling rate.
    pub sample_rate: f64,
    /// Calibrated noise multiplier.
    pub noise_multiplier: f64,
    /// DP-SGD steps per round.
    pub steps_per_round: u64,
}

impl LocalDpPlan {
    /// Calibrates σ for `rounds` rounds of `epochs` local epochs.
    pub fn new(cfg: &crate::config::LocalDpConfig, rounds: u64, epochs: usize) -> Result<Self> {
        let steps_per_round = (epochs as f64 / cfg.sample_rate).round().max(1.0) as u64;
        let total = steps_per_round
            .checked_mul(rounds)
            .ok_or_else(|| FedError::Config("too many DP-SGD steps".into()))?;
        let sigma = cipherflow_dp::calibrate_sigma(
            cipherflow_dp::Accountant::Rdp,
            cfg.sample_rate,
            total,
            cfg.delta,
            cfg.epsilon,
        )?;
        Ok(Self {
            target_epsilon: cfg.epsilon,
            delta: cfg.delta,
            clip: cfg.clip,
            sample_rate: cfg.sample_rate,
            noise_multiplier: sigma,
            steps_per_round,
        })
    }

    /// ε after `steps` DP-SGD steps.
    pub fn epsilon_after(&self, steps: u64) -> Result<f64> {
        if steps == 0 {
            return Ok(0.0);
        }
        Ok(cipherflow_dp::epsilon(
            cipherflow_dp::Accountant::Rdp,
            self.sample_rate,
            self.noise_multiplier,
            steps,
            self.delta,
        )?
        .epsilon)
    }

    /// DP settings of a round after `rounds` rounds in all.
    pub fn ledger_settings(&self, rounds: u64) -> DpSettings {
        DpSettings {
            accountant: DpAccounting::Rdp,
            sampling_rate: self.sample_rate,
            noise_multiplier: self.noise_multiplier,
            delta: self.delta,
            steps_this_round: self.steps_per_round,
            steps_cumulative: rounds.saturating_mul(self.steps_per_round),
        }
    }
}

/// Recomputes ε from ledger settings written by [`DpPlan::ledger_settings`]
/// (`client`: the per-client ε, without amplification).
pub fn ledger_epsilon(
    s: &DpSettings,
    steps: u64,
    client: bool,
) -> std::result::Result<f64, String> {
    let DpAccounting::Distributed(d) = &s.accountant else {
        return Err(format!("not a distributed-DP accountant: {}", s.accountant));
    };
    if steps == 0 {
        return Ok(0.0);
    }
    let kind = match d.noise {
        DistributedNoiseKind::DiscreteGaussian => IntegerNoise::DiscreteGaussian,
        DistributedNoiseKind::Skellam => IntegerNoise::Skellam,
    };
    let noise = DistributedNoise::new(kind, d.clients, d.min_survivors, d.target_stddev)
        .map_err(|e| e.to_string())?;
    let q = if client { 1.0 } else { s.sampling_rate };
    noise
        .epsilon(d.min_survivors, d.l1, d.l2, d.dim, q, steps, s.delta)
        .map_err(|e| e.to_string())
}

/// The ε recomputation for audit logs of any cipherflow workload: no DP
/// (+∞), distributed DP (federated, [`ledger_epsilon`]), and RDP / PLD
/// (DP-SGD, `cipherflow_dp::epsilon`).
/// Results are cached per (settings, steps, scope): the rounds and clients
/// of a log mostly share them, and a PLD composition is not free.
#[derive(Debug, Default)]
pub struct FedEpsilon {
    cache: RefCell<HashMap<EpsilonKey, f64>>,
    /// One round's RDP per (accountant, q bits, per client).
    rdp: RefCell<HashMap<RdpKey, Vec<f64>>>,
}

/// The accountant's canonical bytes, the bits of q, and whether per client.
type RdpKey = (Vec<u8>, u64, bool);

/// The accountant's canonical bytes, the bits of q, σ and δ, steps, and
/// whether per client.
type EpsilonKey = (Vec<u8>, u64, u64, u64, u64, bool);

impl FedEpsilon {
    fn compute(s: &DpSettings, steps: u64, client: bool) -> std::result::Result<f64, String> {
        let acc = match &s.accountant {
            DpAccounting::NoDp => return Ok(f64::INFINITY),
            DpAccounting::Distributed(_) => return ledger_epsilon(s, steps, client),
            DpAccounting::Rdp => cipherflow_dp::Accountant::Rdp,
            DpAccounting::Pld => cipherflow_dp::Accountant::Pld,
        };
        if steps == 0 {
            return Ok(0.0);
        }
        cipherflow_dp::epsilon(acc, s.sampling_rate, s.noise_multiplier, steps, s.delta)
            .map(|r| r.epsilon)
            .map_err(|e| e.to_string())
    }

    fn cached(&self, s: &DpSettings, steps: u64, client: bool) -> std::result::Result<f64, String> {
        let key = (
            s.accountant.encode(),
            s.sampling_rate.to_bits(),
            s.noise_multiplier.to_bits(),
            s.delta.to_bits(),
            steps,
            client,
        );
        if let Some(e) = self.cache.borrow().get(&key) {
            return Ok(*e);
        }
        let e = Self::compute(s, steps, client)?;
        self.cache.borrow_mut().insert(key, e);
        Ok(e)
    }
}

impl FedEpsilon {
    /// One distributed-noise round's RDP (cached).
    fn round_rdp(&self, s: &DpSettings, client: bool) -> std::result::Result<Vec<f64>, String> {
        let DpAccounting::Distributed(d) = &s.accountant else {
            return Err(format!(
                "rounds with different settings compose only for distributed DP, not {}",
                s.accountant
            ));
        };
        let q = if client { 1.0 } else { s.sampling_rate };
        let key = (s.accountant.encode(), q.to_bits(), client);
        if let Some(r) = self.rdp.borrow().get(&key) {
            return Ok(r.clone());
        }
        let kind = match d.noise {
            DistributedNoiseKind::DiscreteGaussian => IntegerNoise::DiscreteGaussian,
            DistributedNoiseKind::Skellam => IntegerNoise::Skellam,
        };
        let r = DistributedNoise::new(kind, d.clients, d.min_survivors, d.target_stddev)
            .and_then(|n| n.round_rdp(d.min_survivors, d.l1, d.l2, d.dim, q))
            .map_err(|e| e.to_string())?;
        self.rdp.borrow_mut().insert(key, r.clone());
        Ok(r)
    }

    /// ε composed over `rounds` (every round opened so far, each at its
    /// own settings: a dynamic schedule), globally (`client = None`) or
    /// for a client after `k` rounds of its own (`Some(k)`: the `k` rounds
    /// of smallest σ, composed without amplification — an upper bound
    /// whatever rounds it took part in). Rounds that share one mechanism
    /// give exactly the single-setting computation.
    pub fn rounds_epsilon(
        &self,
        rounds: &[&DpSettings],
        client: Option<u64>,
    ) -> std::result::Result<f64, String> {
        let (Some(first), Some(last)) = (rounds.first(), rounds.last()) else {
            return Ok(0.0);
        };
        if rounds
            .iter()
            .all(|s| first.same_mechanism(s) && first.steps_this_round == s.steps_this_round)
        {
            return match client {
                None => self.cached(last, last.steps_cumulative, false),
                Some(k) => {
                    let federated = matches!(last.accountant, DpAccounting::Distributed(_));
                    self.cached(last, k, federated)
                }
            };
        }
        if rounds
            .iter()
            .any(|s| s.delta.to_bits() != first.delta.to_bits())
        {
            return Err("δ changes between rounds".into());
        }
        let mut chosen: Vec<&DpSettings> = rounds.to_vec();
        if let Some(k) = client {
            if k > chosen.len() as u64 {
                return Err(format!(
                    "{k} rounds of a client, but only {} were opened",
                    chosen.len()
                ));
            }
            chosen.sort_by(|a, b| a.noise_multiplier.total_cmp(&b.noise_multiplier));
            chosen.truncate(k as usize);
        }
        let mut total = DistributedComposition::default();
        for s in chosen {
            let rdp = self.round_rdp(s, client.is_some())?;
            total
                .record(&rdp, s.steps_this_round)
                .map_err(|e| e.to_string())?;
        }
        total.epsilon(first.delta).map_err(|e| e.to_string())
    }
}

impl cipherflow_ledger::EpsilonRecompute for FedEpsilon {
    fn composes_rounds(&self) -> bool {
        true
    }

    fn epsilon_rounds(&self, rounds: &[&DpSettings]) -> std::result::Result<f64, String> {
        self.rounds_epsilon(rounds, None)
    }

    fn client_epsilon_rounds(
        &self,
        rounds: &[&DpSettings],
        steps: u64,
    ) -> std::result::Result<f64, String> {
        self.rounds_epsilon(rounds, Some(steps))
    }

    fn epsilon(&self, s: &DpSettings, steps: u64) -> std::result::Result<f64, String> {
        self.cached(s, steps, false)
    }

    fn client_epsilon(&self, s: &DpSettings, steps: u64) -> std::result::Result<f64, String> {
        let federated = matches!(s.accountant, DpAccounting::Distributed(_));
        self.cached(s, steps, federated)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cipherflow_ledger::EpsilonRecompute;

    #[test]
    fn dp_sgd_settings_recompute_with_cipherflow_dp_and_cache() {
        let s = DpSettings {
            accountant: DpAccounting::Rdp,
            sampling_rate: 0.01,
            noise_multiplier: 1.1,
            delta: 1e-5,
            steps_this_round: 100,
            steps_cumulative: 100,
        };
        let want = cipherflow_dp::epsilon(cipherflow_dp::Accountant::Rdp, 0.01, 1.1, 100, 1e-5)
            .unwrap()
            .epsilon;
        let fed = FedEpsilon::default();
        assert_eq!(fed.epsilon(&s, 100), Ok(want));
        assert_eq!(fed.epsilon(&s, 100), Ok(want), "from the cache");
        assert_eq!(
            fed.client_epsilon(&s, 100),
            Ok(want),
            "DP-SGD: same per client"
        );
        assert_eq!(fed.epsilon(&s, 0), Ok(0.0));
        // Another σ is another entry, not the cached one.
        let other = DpSettings {
            noise_multiplier: 2.0,
            ..s.clone()
        };
        assert!(fed.epsilon(&other, 100).unwrap() < want);
        let none = DpSettings {
            accountant: DpAccounting::NoDp,
            ..s.clone()
        };
        assert_eq!(fed.epsilon(&none, 100), Ok(f64::INFINITY));
        // PLD is its own accountant, not RDP's cached value.
        let pld = DpSettings {
            accountant: DpAccounting::Pld,
            ..s
        };
        let want_pld = cipherflow_dp::epsilon(cipherflow_dp::Accountant::Pld, 0.01, 1.1, 100, 1e-5)
            .unwrap()
            .epsilon;
        assert_eq!(fed.epsilon(&pld, 100), Ok(want_pld));
        assert_ne!(want_pld, want);
    }

    fn sizes(clients: usize, sampled: usize, quorum: usize) -> Sizes {
        Sizes {
            clients,
            holders: clients,
            sampled,
            quorum,
            threshold: clients / 2 + 1,
            checked: false,
        }
    }

    #[test]
    fn calibrated_plan_meets_target_and_recomputes_from_the_ledger() {
        let cfg = DpConfig {
            epsilon: 3.0,
            delta: 1e-5,
            clip: 1.0,
            noise: NoiseKind::DiscreteGaussian,
            client_epsilon: None,
            schedule: None,
        };
        let plan = DpPlan::new(&cfg, &sizes(10, 10, 7), 20, 31).unwrap();
        let e = plan.epsilon_after(20).unwrap();
        assert!(e <= 3.0 && e > 2.99, "ε = {e}");
        assert!(plan.epsilon_after(21).unwrap() > 3.0);
        assert!(plan.share_sigma >= MIN_SHARE_SIGMA && plan.share_sigma <= MAX_DG_SHARE_SIGMA);
        let s = plan.ledger_settings(20);
        assert_eq!(ledger_epsilon(&s, 20, false).unwrap(), e);
        assert_eq!(
            ledger_epsilon(&s, 5, true).unwrap(),
            plan.client_epsilon_after(5).unwrap()
        );
        let mut broken = s.clone();
        broken.accountant = DpAccounting::Rdp;
        assert!(ledger_epsilon(&broken, 20, false)
            .unwrap_err()
            .contains("not a distributed-DP accountant"));
        let mut broken = s.clone();
        if let DpAccounting::Distributed(d) = &mut broken.accountant {
            d.min_survivors = d.clients + 1;
        }
        assert!(ledger_epsilon(&broken, 20, false).is_err());
        // Sampling amplifies: half the clients per round gives a smaller σ.
        let sampled = DpPlan::new(&cfg, &sizes(20, 10, 7), 20, 31).unwrap();
        assert!(sampled.noise_multiplier < plan.noise_multiplier);
        assert!(sampled.epsilon_after(20).unwrap() <= 3.0);
    }

    #[test]
    fn rounding_bound_holds_for_conditional_rounding() {
        assert!(rounding_l2_bound(100.0, 31) > 100.0);
        assert!(rounding_l2_bound(100.0, 31) < 101.0);
    }
}
