//! Dynamic privacy: the noise of each round follows a schedule instead of
//! one calibrated σ, and the total budget is still never exceeded.
//!
//! * **Plan.** `[dp.schedule]` shapes the noise multiplier `z` (aggregate
//!   noise `z·Δ₂`) over the planned rounds in geometric phases: `ratio < 1`
//!   spends more of the budget late, when the model's updates are small
//!   and the noise dominates them; `ratio > 1` spends it early.
//!   `cipherflow_dp::Schedule` finds the common scale whose heterogeneous
//!   composition meets the total ε ([`DpPlan`]'s γ, Δ₂ and accountant stay
//!   those of the fixed plan).
//! * **Adaptation.** With `[dp.schedule.plateau]`, the coordinator feeds
//!   the accuracy on its (public) evaluation data after every round; after
//!   `patience` rounds without an improvement of `min_improvement`, the
//!   remaining budget is spent over `keep_fraction` of the remaining
//!   rounds, each less noisy (Lee & Kifer 2018's reaction to stalled
//!   progress). A re-plan whose noise would leave what the packing was
//!   sized for, or fall below the smallest share σ, is not taken.
//! * **Grants.** A round opens only if the composition of every granted
//!   round plus this one stays within ε ([`FedSchedule::grant`]); the
//!   federation finishes when the schedule is spent.
//! * **Checks.** Every round's `z` is recorded in the ledger's round entry
//!   and sent to the clients with the whole history so far. A client
//!   ([`check_history`]) refuses a history that rewrites a round it saw,
//!   a `z` outside the planned range, or a history whose composition
//!   exceeds ε; `cipherflow audit verify` recomputes ε from the logged
//!   rounds with the same code ([`crate::dp_plan::FedEpsilon`]).
//! * **Per client.** Which rounds a client took part in is not in the
//!   ledger's ε entries, only how many: a client's ε after `k` rounds is
//!   bounded by composing the `k` least noisy rounds so far, without
//!   amplification (no `k` rounds of the history cost more). The client
//!   itself enforces its budget on the rounds it actually joined.

use crate::dp_plan::{DpPlan, FedEpsilon, MAX_DG_SHARE_SIGMA, MIN_SHARE_SIGMA};
use crate::error::{FedError, Result};
use cipherflow_dp::schedule::{
    DistributedRound, Mechanism, PlateauPolicy, Profile, Schedule, ScheduleConfig,
};
use cipherflow_dp::DpError;
use cipherflow_ledger::entry::DpSettings;
use serde::{Deserialize, Serialize};

/// `[dp.schedule]`: the shape of the noise over the rounds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpScheduleConfig {
    /// `z` of the last phase over `z` of the first, in [0.01, 100]
    /// (1: the same noise every round).
    #[serde(default = "default_ratio")]
    pub ratio: f64,
    /// Geometric phases, 1 to 64.
    #[serde(default = "default_phases")]
    pub phases: u32,
    /// React to a plateau of the evaluation accuracy (needs the
    /// coordinator's evaluation data).
    #[serde(default)]
    pub plateau: Option<PlateauConfig>,
}

/// `[dp.schedule.plateau]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlateauConfig {
    /// Rounds without improvement that make a plateau.
    #[serde(default = "default_patience")]
    pub patience: u32,
    /// Smallest gain in accuracy that counts as an improvement.
    #[serde(default = "default_min_improvement")]
    pub min_improvement: f64,
    /// Fraction of the remaining rounds kept after a plateau, in (0, 1).
    #[serde(default = "default_keep_fraction")]
    pub keep_fraction: f64,
}

fn default_ratio() -> f64 {
    1.0
}
fn default_phases() -> u32 {
    4
}
fn default_patience() -> u32 {
    2
}
fn default_min_improvement() -> f64 {
    0.005
}
fn default_keep_fraction() -> f64 {
    0.5
}

impl DpScheduleConfig {
    /// Checks the ranges (the same as `cipherflow_dp`'s schedule).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(FedError::Config(format!("dp.schedule: {m}")));
        if !(self.ratio.is_finite() && (0.01..=100.0).contains(&self.ratio)) {
            return bad("ratio must be in [0.01, 100]");
        }
        if !(1..=64).contains(&self.phases) {
            return bad("phases must be in 1..=64");
        }
        if let Some(p) = &self.plateau {
            if p.patience == 0 || p.patience > 1000 {
                return bad("plateau.patience must be in 1..=1000");
            }
            if !(p.min_improvement.is_finite() && (0.0..1.0).contains(&p.min_improvement)) {
                return bad("plateau.min_improvement must be in [0, 1)");
            }
            if !(p.keep_fraction > 0.0 && p.keep_fraction < 1.0) {
                return bad("plateau.keep_fraction must be in (0, 1)");
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for DpScheduleConfig {
    type Err = FedError;

    /// `ratio=R,phases=P[,plateau=PATIENCE][,keep=F][,min-improvement=D]`
    /// (any subset; a `plateau`, `keep` or `min-improvement` key turns the
    /// plateau reaction on with the defaults for the rest).
    fn from_str(s: &str) -> Result<Self> {
        let mut c = DpScheduleConfig {
            ratio: default_ratio(),
            phases: default_phases(),
            plateau: None,
        };
        let bad = |m: String| FedError::Config(format!("--dp-schedule {s:?}: {m}"));
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("`{part}` is not key=value")))?;
            let num = |v: &str| {
                v.parse::<f64>()
                    .map_err(|_| bad(format!("`{v}` is not a number")))
            };
            let int = |v: &str| {
                v.parse::<u32>()
                    .map_err(|_| bad(format!("`{v}` is not a whole number")))
            };
            let plateau = || PlateauConfig {
                patience: default_patience(),
                min_improvement: default_min_improvement(),
                keep_fraction: default_keep_fraction(),
            };
            match k {
                "ratio" => c.ratio = num(v)?,
                "phases" => c.phases = int(v)?,
                "plateau" => c.plateau.get_or_insert_with(plateau).patience = int(v)?,
                "keep" => c.plateau.get_or_insert_with(plateau).keep_fraction = num(v)?,
                "min-improvement" => {
                    c.plateau.get_or_insert_with(plateau).min_improvement = num(v)?
                }
                _ => {
                    return Err(bad(format!(
                        "unknown key `{k}` (ratio, phases, plateau, keep, min-improvement)"
                    )))
                }
            }
        }
        c.validate()?;
        Ok(c)
    }
}

fn dp_err(e: DpError) -> FedError {
    FedError::Config(format!("privacy schedule: {e}"))
}

/// The distributed-noise round of a plan (everything but `z`).
fn round_of(plan: &DpPlan) -> DistributedRound {
    DistributedRound {
        kind: plan.integer_noise(),
        clients: plan.sampled,
        min_survivors: plan.min_survivors,
        l1: plan.l1_bound,
        l2: plan.l2_bound,
        dim: plan.dim,
    }
}

/// A fresh schedule for `plan` shaped by `sc`.
pub(crate) fn new_schedule(plan: &DpPlan, sc: &DpScheduleConfig) -> Result<Schedule> {
    sc.validate()?;
    Schedule::new(ScheduleConfig {
        total_epsilon: plan.target_epsilon,
        delta: plan.delta,
        rounds: plan.rounds,
        q: plan.sampling_rate(),
        steps_per_round: 1,
        mechanism: Mechanism::Distributed(round_of(plan)),
        profile: Profile::Geometric {
            ratio: sc.ratio,
            phases: sc.phases,
        },
        plateau: sc.plateau.as_ref().map(|p| PlateauPolicy {
            patience: p.patience,
            min_improvement: p.min_improvement,
            keep_fraction: p.keep_fraction,
            minimize: false,
        }),
    })
    .map_err(dp_err)
}

/// The smallest `z` any round may use: its noise share keeps σ ≥ 4 (the
/// discrete-Gaussian sum term of the accountant stays negligible).
pub fn min_noise_multiplier(plan: &DpPlan) -> f64 {
    MIN_SHARE_SIGMA * (plan.min_survivors as f64).sqrt() / plan.l2_bound
}

/// The coordinator's schedule: the plan, what was granted, and the
/// plateau tracking (persisted with the round state).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FedSchedule {
    schedule: Schedule,
    /// `z` of every granted round, in order.
    granted: Vec<f64>,
}

impl FedSchedule {
    /// The schedule of `plan`, if it has one.
    pub fn new(plan: &DpPlan) -> Result<Option<Self>> {
        let Some(sc) = &plan.schedule else {
            return Ok(None);
        };
        Ok(Some(Self {
            schedule: new_schedule(plan, sc)?,
            granted: Vec::new(),
        }))
    }

    /// Grants the next round: its `z`, or `None` when the schedule is
    /// spent (every planned round run, or no further round fits ε).
    pub fn grant(&mut self) -> Result<Option<f64>> {
        match self.schedule.next_round() {
            Ok(g) => {
                self.granted.push(g.sigma);
                Ok(Some(g.sigma))
            }
            Err(DpError::ScheduleExhausted(_) | DpError::BudgetExceeded { .. }) => Ok(None),
            Err(e) => Err(dp_err(e)),
        }
    }

    /// Feeds the accuracy after a round; returns whether the remaining
    /// rounds were re-planned. A re-plan outside `[min z, plan's max z]`
    /// is not taken.
    pub fn observe(&mut self, plan: &DpPlan, accuracy: f64) -> Result<bool> {
        let before = self.schedule.clone();
        if !self.schedule.observe_validation(accuracy).map_err(dp_err)? {
            return Ok(false);
        }
        let lo = min_noise_multiplier(plan);
        let hi = plan.max_noise_multiplier;
        let within = self
            .schedule
            .plan()
            .iter()
            .all(|p| p.sigma >= lo && p.sigma <= hi * (1.0 + 1e-9));
        if !within {
            tracing::info!("privacy schedule: a plateau re-plan would leave the noise range the packing was sized for; kept the plan");
            self.schedule = before;
            return Ok(false);
        }
        Ok(true)
    }

    /// `z` of every granted round.
    pub fn granted(&self) -> &[f64] {
        &self.granted
    }

    /// Rounds still planned.
    pub fn remaining_rounds(&self) -> u64 {
        self.schedule.remaining_rounds()
    }

    /// ε of the granted rounds.
    pub fn epsilon_spent(&self) -> f64 {
        self.schedule.epsilon_spent()
    }
}

/// The ledger settings of a history of `z`s (the `i`-th opened round at
/// cumulative step `i + 1`).
fn settings_of(plan: &DpPlan, zs: &[f64]) -> Vec<DpSettings> {
    zs.iter()
        .enumerate()
        .map(|(i, &z)| plan.ledger_settings_at(i as u64 + 1, z))
        .collect()
}

/// Global ε after the rounds with noise multipliers `zs` (`client =
/// Some(k)`: the bound on a client's ε after `k` rounds of its own),
/// computed the way the audit recomputes it from the ledger.
pub fn history_epsilon(
    acct: &FedEpsilon,
    plan: &DpPlan,
    zs: &[f64],
    client: Option<u64>,
) -> Result<f64> {
    let s = settings_of(plan, zs);
    let refs: Vec<&DpSettings> = s.iter().collect();
    acct.rounds_epsilon(&refs, client).map_err(FedError::Config)
}

/// A client's checks of a round's noise history `zs` (this round last)
/// against the history `seen` it recorded earlier: no round it saw was
/// rewritten, every `z` lies in the planned range, and the composition
/// stays within ε. Returns the round's `z`.
pub fn check_history(plan: &DpPlan, seen: &[f64], zs: &[f64]) -> Result<f64> {
    let refuse = |m: String| Err(FedError::Refused(format!("privacy schedule: {m}")));
    if plan.schedule.is_none() {
        return refuse("this client's configuration has no schedule".into());
    }
    let Some(&z) = zs.last() else {
        return refuse("the round carries no noise history".into());
    };
    if zs.len() as u64 > plan.rounds {
        return refuse(format!(
            "a history of {} rounds, more than the {} planned",
            zs.len(),
            plan.rounds
        ));
    }
    if let Some(i) = seen
        .iter()
        .zip(zs)
        .position(|(a, b)| a.to_bits() != b.to_bits())
    {
        return refuse(format!(
            "round {} of the history has z = {}, but this client was told z = {}",
            i + 1,
            zs.get(i).copied().unwrap_or(f64::NAN),
            seen.get(i).copied().unwrap_or(f64::NAN)
        ));
    }
    let (lo, hi) = (min_noise_multiplier(plan), plan.max_noise_multiplier);
    if let Some(bad) = zs
        .iter()
        .find(|z| !(z.is_finite() && **z >= lo && **z <= hi * (1.0 + 1e-9)))
    {
        return refuse(format!(
            "z = {bad} is outside the planned range [{lo}, {hi}]"
        ));
    }
    let eps = history_epsilon(&FedEpsilon::default(), plan, zs, None)?;
    if eps > plan.target_epsilon * (1.0 + 1e-9) {
        return refuse(format!(
            "the history's ε = {eps:.4} exceeds the federation's ε = {}",
            plan.target_epsilon
        ));
    }
    Ok(z)
}

/// The smallest and largest `z` of the initial plan of schedule `sc`.
pub(crate) fn planned_multipliers(plan: &DpPlan, sc: &DpScheduleConfig) -> Result<(f64, f64)> {
    let s = new_schedule(plan, sc)?;
    let zs = s.plan().iter().map(|p| p.sigma);
    let lo = zs.clone().fold(f64::INFINITY, f64::min);
    let hi = zs.fold(0.0, f64::max);
    Ok((lo, hi))
}

/// The planned range of `z` for a plan with schedule `sc`, checked: the
/// least noisy phase keeps shares of σ ≥ 4, the noisiest fits the
/// discrete-Gaussian sampler.
pub(crate) fn planned_range(plan: &DpPlan, sc: &DpScheduleConfig) -> Result<(f64, f64)> {
    let (lo, hi) = planned_multipliers(plan, sc)?;
    if plan.share_sigma_at(lo) < MIN_SHARE_SIGMA {
        return Err(FedError::Config(format!(
            "dp.schedule: its least noisy phase would give noise shares of σ = {:.2} < {MIN_SHARE_SIGMA}; use a ratio closer to 1",
            plan.share_sigma_at(lo)
        )));
    }
    if plan.integer_noise() == cipherflow_dp::distributed::IntegerNoise::DiscreteGaussian
        && plan.share_sigma_at(hi) > MAX_DG_SHARE_SIGMA
    {
        return Err(FedError::Config(format!(
            "dp.schedule: its noisiest phase would need discrete-Gaussian shares of σ = {:.0} > {MAX_DG_SHARE_SIGMA}; use `noise = \"skellam\"` or a ratio closer to 1",
            plan.share_sigma_at(hi)
        )));
    }
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_flag_parses_and_refuses_what_the_file_refuses() {
        let c: DpScheduleConfig = "ratio=0.25, phases=3".parse().unwrap();
        assert_eq!((c.ratio, c.phases, c.plateau.is_none()), (0.25, 3, true));
        let c: DpScheduleConfig = "plateau=4,keep=0.25".parse().unwrap();
        let p = c.plateau.unwrap();
        assert_eq!((c.ratio, p.patience, p.keep_fraction), (1.0, 4, 0.25));
        assert_eq!(p.min_improvement, default_min_improvement());
        for bad in [
            "ratio=0",
            "ratio=200",
            "phases=0",
            "phases=x",
            "plateau=0",
            "keep=1",
            "min-improvement=-1",
            "sigma=2",
            "ratio",
        ] {
            let e = bad.parse::<DpScheduleConfig>().unwrap_err();
            assert!(matches!(e, FedError::Config(_)), "{bad}: {e}");
        }
    }
}
