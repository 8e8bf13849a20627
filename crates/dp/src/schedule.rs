//! A dynamic noise schedule: given a total (ε, δ), a planned number of
//! rounds and a sampling rate, choose per-round noise multipliers σₜ so the
//! composition of all rounds meets the total, optionally spending more of
//! the budget early or late (a geometric profile), and re-plan the remaining rounds when
//! a validation signal plateaus — without ever exceeding the total.
//!
//! The mechanism of a round is either the Poisson-subsampled Gaussian of
//! DP-SGD (σ is its noise multiplier, accounted with RDP or PLD) or a
//! federation's distributed integer noise ([`Mechanism::Distributed`]: σ is
//! the aggregate noise's standard deviation over the sensitivity Δ₂,
//! accounted with [`DistributedComposition`]).
//!
//! Guarantee: every round is granted only after the accountant
//! (heterogeneous composition of everything granted so far plus this round)
//! confirms ε ≤ total at δ; otherwise [`Schedule::next_round`] refuses with
//! [`DpError::BudgetExceeded`]. Plans are found by a monotone search on a
//! common σ scale and are feasible by construction, so refusals only happen
//! if the caller re-plans into an infeasible corner.
//!
//! The plateau reaction follows the idea of Lee & Kifer (2018, "Concentrated
//! Differentially Private Gradient Descent with Adaptive per-Iteration
//! Privacy Budget"): when the validation metric stops improving, the
//! remaining budget is spent over fewer rounds, i.e. with less noise per
//! round.

use crate::calibrate::smallest_feasible;
use crate::distributed::{DistributedComposition, DistributedNoise, IntegerNoise};
use crate::error::{check_delta, check_q, check_steps, invalid, DpError};
use crate::pld::PldAccountant;
use crate::rdp::RdpAccountant;
use crate::{Accountant, PrivacyAccountant};
use serde::{Deserialize, Serialize};

/// How σ evolves over the remaining rounds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Profile {
    /// The same σ every round.
    Constant,
    /// `phases` equal phases whose σ changes geometrically from σ₀ to
    /// σ₀·`ratio`: a ratio above 1 spends more of the budget early, below 1
    /// more late (less noise once the model is close, where the noise
    /// otherwise dominates the small updates).
    Geometric {
        /// σ(last phase)/σ(first phase), in [0.01, 100].
        ratio: f64,
        /// Number of phases, in [1, 64].
        phases: u32,
    },
}

impl Profile {
    fn validate(&self) -> Result<(), DpError> {
        match *self {
            Profile::Constant => Ok(()),
            Profile::Geometric { ratio, phases } => {
                if !(ratio.is_finite() && (0.01..=100.0).contains(&ratio)) {
                    return Err(invalid(
                        "ratio",
                        ratio,
                        "the ratio of the last phase's σ to the first's must be in [0.01, 100]",
                    ));
                }
                if !(1..=64).contains(&phases) {
                    return Err(invalid(
                        "phases",
                        phases,
                        "the number of phases must be in [1, 64]",
                    ));
                }
                Ok(())
            }
        }
    }

    /// Splits `rounds` into (rounds, σ multiplier) phases.
    fn phases(&self, rounds: u64) -> Vec<(u64, f64)> {
        let (ratio, p) = match *self {
            Profile::Constant => (1.0, 1u64),
            Profile::Geometric { ratio, phases } => (ratio, u64::from(phases).min(rounds).max(1)),
        };
        let mut out = Vec::with_capacity(p as usize);
        for k in 0..p {
            let n = rounds / p + u64::from(k < rounds % p);
            let m = if p > 1 {
                ratio.powf(k as f64 / (p - 1) as f64)
            } else {
                1.0
            };
            if n > 0 {
                out.push((n, m));
            }
        }
        out
    }
}

/// Reaction to a validation plateau.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlateauPolicy {
    /// Number of consecutive observations without improvement that counts as a plateau.
    pub patience: u32,
    /// Smallest change of the metric that counts as an improvement.
    pub min_improvement: f64,
    /// Fraction of the remaining rounds kept after a plateau, in (0, 1)
    /// (the remaining budget is then spent over fewer, less noisy rounds).
    pub keep_fraction: f64,
    /// True when a smaller metric is better (a loss), false for accuracy.
    pub minimize: bool,
}

/// The mechanism every round of a schedule runs, and how it is accounted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Mechanism {
    /// `steps_per_round` steps of the Poisson-subsampled Gaussian (DP-SGD),
    /// σ = noise multiplier, accounted with this accountant.
    Gaussian(Accountant),
    /// One round of distributed integer noise summed over clients (a
    /// federation's client-level DP), sampled at rate q: σ is the noise
    /// multiplier `z`, the aggregate noise has standard deviation `z·Δ₂`.
    Distributed(DistributedRound),
}

/// The fixed part of a distributed-noise round ([`DistributedNoise`] and
/// the sensitivities): only the noise multiplier changes between rounds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DistributedRound {
    /// Noise kind.
    pub kind: IntegerNoise,
    /// Clients asked to contribute per round.
    pub clients: u64,
    /// Minimum contributors the shares are scaled for (and accounted at).
    pub min_survivors: u64,
    /// `Δ₁` in integer units.
    pub l1: f64,
    /// `Δ₂` in integer units.
    pub l2: f64,
    /// Dimension.
    pub dim: u64,
}

impl DistributedRound {
    /// The one-round RDP at noise multiplier `z` and client rate `q`.
    pub fn round_rdp(&self, z: f64, q: f64) -> Result<Vec<f64>, DpError> {
        if !(z.is_finite() && z > 0.0) {
            return Err(invalid("noise multiplier", z, "must be finite and > 0"));
        }
        DistributedNoise::new(self.kind, self.clients, self.min_survivors, z * self.l2)?.round_rdp(
            self.min_survivors,
            self.l1,
            self.l2,
            self.dim,
            q,
        )
    }
}

/// Parameters of a schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleConfig {
    /// Total ε that must never be exceeded.
    pub total_epsilon: f64,
    /// δ of the total.
    pub delta: f64,
    /// Planned number of rounds.
    pub rounds: u64,
    /// Poisson sampling rate of each step.
    pub q: f64,
    /// Optimizer steps per round.
    pub steps_per_round: u64,
    /// The mechanism of every round, and its accountant.
    pub mechanism: Mechanism,
    /// σ profile over the rounds.
    pub profile: Profile,
    /// Optional plateau reaction.
    pub plateau: Option<PlateauPolicy>,
}

/// A planned phase: `rounds` rounds at noise multiplier `sigma`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// Rounds in the phase.
    pub rounds: u64,
    /// Noise multiplier.
    pub sigma: f64,
}

/// A granted round.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Grant {
    /// Index of the round (0-based).
    pub round: u64,
    /// Sampling rate to use.
    pub q: f64,
    /// Noise multiplier to use.
    pub sigma: f64,
    /// Steps in the round.
    pub steps: u64,
    /// ε spent including this round.
    pub epsilon_spent: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Spent {
    Rdp(RdpAccountant),
    Pld(PldAccountant),
    Distributed(DistributedRound, DistributedComposition),
}

impl Spent {
    fn epsilon_with(
        &self,
        q: f64,
        steps_per_round: u64,
        extra: &[Phase],
        delta: f64,
    ) -> Result<f64, DpError> {
        fn go<A: PrivacyAccountant + Clone>(
            a: &A,
            q: f64,
            spr: u64,
            extra: &[Phase],
            delta: f64,
        ) -> Result<f64, DpError> {
            let mut a = a.clone();
            for p in extra {
                let steps = p
                    .rounds
                    .checked_mul(spr)
                    .ok_or(DpError::InvalidSteps(u64::MAX))?;
                a.record_poisson_gaussian(q, p.sigma, steps)?;
            }
            a.epsilon(delta)
        }
        match self {
            Spent::Rdp(a) => go(a, q, steps_per_round, extra, delta),
            Spent::Pld(a) => go(a, q, steps_per_round, extra, delta),
            Spent::Distributed(round, c) => {
                let mut c = c.clone();
                for p in extra {
                    let steps = p
                        .rounds
                        .checked_mul(steps_per_round)
                        .ok_or(DpError::InvalidSteps(u64::MAX))?;
                    c.record(&round.round_rdp(p.sigma, q)?, steps)?;
                }
                c.epsilon(delta)
            }
        }
    }

    fn record(&mut self, q: f64, sigma: f64, steps: u64) -> Result<(), DpError> {
        match self {
            Spent::Rdp(a) => a.record_poisson_gaussian(q, sigma, steps),
            Spent::Pld(a) => a.record_poisson_gaussian(q, sigma, steps),
            Spent::Distributed(round, c) => c.record(&round.round_rdp(sigma, q)?, steps),
        }
    }
}

/// The schedule: plan, spent state and plateau tracking (serialisable, so
/// it can be persisted with the training checkpoint).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    config: ScheduleConfig,
    plan: Vec<Phase>,
    spent: Spent,
    rounds_done: u64,
    epsilon_spent: f64,
    best_metric: Option<f64>,
    stale: u32,
}

impl Schedule {
    /// Validates the configuration and plans all rounds.
    pub fn new(config: ScheduleConfig) -> Result<Self, DpError> {
        if !(config.total_epsilon.is_finite() && config.total_epsilon > 0.0) {
            return Err(DpError::InvalidTargetEpsilon(config.total_epsilon));
        }
        check_delta(config.delta)?;
        check_q(config.q)?;
        check_steps(config.rounds)?;
        check_steps(config.steps_per_round)?;
        check_steps(config.rounds.saturating_mul(config.steps_per_round))?;
        config.profile.validate()?;
        if let Some(p) = &config.plateau {
            let keep_ok = p.keep_fraction > 0.0 && p.keep_fraction < 1.0;
            let improvement_ok = p.min_improvement.is_finite() && p.min_improvement >= 0.0;
            if !keep_ok || p.patience == 0 || !improvement_ok {
                return Err(invalid(
                    "plateau policy",
                    format!("{p:?}"),
                    "needs patience >= 1, min_improvement >= 0 and keep_fraction in (0, 1)",
                ));
            }
        }
        let spent = match &config.mechanism {
            Mechanism::Gaussian(Accountant::Rdp) => Spent::Rdp(RdpAccountant::new()),
            Mechanism::Gaussian(Accountant::Pld) => Spent::Pld(PldAccountant::new()),
            Mechanism::Distributed(round) => {
                if round.min_survivors == 0 || round.min_survivors > round.clients {
                    return Err(invalid(
                        "min_survivors",
                        round.min_survivors,
                        "must be between 1 and the number of clients",
                    ));
                }
                if config.steps_per_round != 1 {
                    return Err(invalid(
                        "steps_per_round",
                        config.steps_per_round,
                        "a distributed-noise round is one step",
                    ));
                }
                Spent::Distributed(round.clone(), DistributedComposition::default())
            }
        };
        let mut s = Schedule {
            plan: Vec::new(),
            spent,
            rounds_done: 0,
            epsilon_spent: 0.0,
            best_metric: None,
            stale: 0,
            config,
        };
        let (rounds, profile) = (s.config.rounds, s.config.profile.clone());
        s.replan(rounds, profile)?;
        Ok(s)
    }

    /// The configuration.
    pub fn config(&self) -> &ScheduleConfig {
        &self.config
    }

    /// Remaining planned phases, in order.
    pub fn plan(&self) -> &[Phase] {
        &self.plan
    }

    /// Rounds granted so far.
    pub fn rounds_done(&self) -> u64 {
        self.rounds_done
    }

    /// Rounds still planned.
    pub fn remaining_rounds(&self) -> u64 {
        self.plan.iter().map(|p| p.rounds).sum()
    }

    /// ε spent by the granted rounds.
    pub fn epsilon_spent(&self) -> f64 {
        self.epsilon_spent
    }

    /// ε that the whole current plan would reach (≤ total).
    pub fn planned_epsilon(&self) -> Result<f64, DpError> {
        self.spent.epsilon_with(
            self.config.q,
            self.config.steps_per_round,
            &self.plan,
            self.config.delta,
        )
    }

    /// Re-plans the remaining budget over `rounds` further rounds with
    /// `profile`: finds the smallest common σ scale whose plan, composed
    /// with everything granted, stays within the total.
    pub fn replan(&mut self, rounds: u64, profile: Profile) -> Result<(), DpError> {
        check_steps(rounds)?;
        profile.validate()?;
        let shape = profile.phases(rounds);
        let cfg = &self.config;
        let spent = &self.spent;
        let f = |scale: f64| -> Result<f64, DpError> {
            let phases: Vec<Phase> = shape
                .iter()
                .map(|&(n, m)| Phase {
                    rounds: n,
                    sigma: scale * m,
                })
                .collect();
            spent.epsilon_with(cfg.q, cfg.steps_per_round, &phases, cfg.delta)
        };
        let guess = crate::calibrate_sigma(
            Accountant::Rdp,
            cfg.q,
            rounds.saturating_mul(cfg.steps_per_round),
            cfg.delta,
            (cfg.total_epsilon - self.epsilon_spent).max(cfg.total_epsilon * 1e-3),
        )
        .unwrap_or(1.0);
        let tol = match cfg.mechanism {
            Mechanism::Gaussian(Accountant::Pld) => 1e-3,
            _ => 1e-6,
        };
        let scale = smallest_feasible(f, cfg.total_epsilon, guess, tol).map_err(|e| match e {
            DpError::Calibration(_) => DpError::BudgetExceeded {
                scope: "schedule".into(),
                requested: f64::INFINITY,
                remaining: (cfg.total_epsilon - self.epsilon_spent).max(0.0),
                total: cfg.total_epsilon,
                delta: cfg.delta,
            },
            other => other,
        })?;
        self.plan = shape
            .iter()
            .map(|&(n, m)| Phase {
                rounds: n,
                sigma: scale * m,
            })
            .collect();
        self.config.profile = profile;
        Ok(())
    }

    /// Grants the next round after verifying with the accountant that the
    /// composition including it stays within the total.
    pub fn next_round(&mut self) -> Result<Grant, DpError> {
        let Some(phase) = self.plan.first().copied() else {
            return Err(DpError::ScheduleExhausted(self.rounds_done));
        };
        let cfg = &self.config;
        let this = [Phase {
            rounds: 1,
            sigma: phase.sigma,
        }];
        let eps = self
            .spent
            .epsilon_with(cfg.q, cfg.steps_per_round, &this, cfg.delta)?;
        if eps > cfg.total_epsilon {
            return Err(DpError::BudgetExceeded {
                scope: "schedule".into(),
                requested: eps - self.epsilon_spent,
                remaining: (cfg.total_epsilon - self.epsilon_spent).max(0.0),
                total: cfg.total_epsilon,
                delta: cfg.delta,
            });
        }
        self.spent.record(cfg.q, phase.sigma, cfg.steps_per_round)?;
        self.epsilon_spent = eps;
        let grant = Grant {
            round: self.rounds_done,
            q: cfg.q,
            sigma: phase.sigma,
            steps: cfg.steps_per_round,
            epsilon_spent: eps,
        };
        self.rounds_done += 1;
        if let Some(first) = self.plan.first_mut() {
            first.rounds -= 1;
            if first.rounds == 0 {
                self.plan.remove(0);
            }
        }
        Ok(grant)
    }

    /// Feeds a validation metric. Returns `true` when it triggered a
    /// re-plan (plateau: the remaining rounds were cut to `keep_fraction`,
    /// so each uses less noise).
    pub fn observe_validation(&mut self, metric: f64) -> Result<bool, DpError> {
        if !metric.is_finite() {
            return Err(invalid("validation metric", metric, "must be finite"));
        }
        let Some(policy) = self.config.plateau.clone() else {
            return Ok(false);
        };
        let improved = match self.best_metric {
            None => true,
            Some(best) => {
                if policy.minimize {
                    metric < best - policy.min_improvement
                } else {
                    metric > best + policy.min_improvement
                }
            }
        };
        if improved {
            self.best_metric = Some(metric);
            self.stale = 0;
            return Ok(false);
        }
        self.stale += 1;
        if self.stale < policy.patience {
            return Ok(false);
        }
        self.stale = 0;
        let remaining = self.remaining_rounds();
        let keep = ((remaining as f64 * policy.keep_fraction).floor() as u64).max(1);
        if remaining <= 1 || keep >= remaining {
            return Ok(false);
        }
        let profile = self.config.profile.clone();
        self.replan(keep, profile)?;
        Ok(true)
    }
}
