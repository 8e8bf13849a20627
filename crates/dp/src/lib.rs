#![doc = include_str!("../README.md")]
//!
//! ## Modules
//!
//! * [`rdp`] — Rényi-DP accountant for the (Poisson-subsampled) Gaussian
//!   mechanism, on dp-accounting's default order grid with its tight
//!   RDP → (ε, δ) conversion.
//! * [`pld`] — privacy-loss-distribution accountant (pessimistic
//!   connect-the-dots discretisation, FFT composition, both adjacency
//!   directions).
//! * [`calibrate_sigma`] — smallest σ meeting a target (ε, δ).
//! * [`mechanisms`] — continuous Gaussian noise; [`discrete`] — exact
//!   discrete Gaussian (Canonne–Kamath–Steinke) and Skellam samplers;
//!   [`distributed`] — per-client noise shares for secure aggregation, with
//!   dropout-aware accounting.
//! * [`clipping`] — fixed L2 clipping and adaptive quantile clipping
//!   (Andrew et al. 2021).
//! * [`budget`] — per-client and global budget ledgers (serde, JSON).
//! * [`schedule`] — a dynamic σ schedule that never exceeds a total (ε, δ).

pub mod budget;
pub mod calibrate;
pub mod clipping;
pub mod discrete;
pub mod distributed;
pub mod error;
pub mod mechanisms;
pub mod pld;
pub mod rdp;
pub mod schedule;
mod special;

pub use budget::{Budget, BudgetLedger, Charge};
pub use clipping::{clip_l2, AdaptiveClipper};
pub use error::DpError;
pub use mechanisms::{gaussian_noise, poisson_sample, try_gaussian_noise};
pub use pld::PldAccountant;
pub use rdp::RdpAccountant;
pub use schedule::{Mechanism, Profile, Schedule, ScheduleConfig};

/// Largest number of steps accepted anywhere (10¹²).
pub const MAX_STEPS: u64 = 1_000_000_000_000;

/// Which accountant computes ε.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accountant {
    /// Rényi DP ([`RdpAccountant`]): fast, slightly loose.
    Rdp,
    /// Privacy loss distributions ([`PldAccountant`]): tight, slower.
    Pld,
}

impl Accountant {
    /// Lower-case name, as used by the CLI (`rdp` / `pld`).
    pub fn name(self) -> &'static str {
        match self {
            Accountant::Rdp => "rdp",
            Accountant::Pld => "pld",
        }
    }

    /// A fresh, empty accountant of this kind.
    pub fn new_accountant(self) -> Box<dyn PrivacyAccountant> {
        match self {
            Accountant::Rdp => Box::new(RdpAccountant::new()),
            Accountant::Pld => Box::new(PldAccountant::new()),
        }
    }
}

impl std::str::FromStr for Accountant {
    type Err = DpError;
    fn from_str(s: &str) -> Result<Self, DpError> {
        match s.to_ascii_lowercase().as_str() {
            "rdp" => Ok(Accountant::Rdp),
            "pld" => Ok(Accountant::Pld),
            _ => Err(error::invalid("accountant", s, "expected `rdp` or `pld`")),
        }
    }
}

/// Result of an ε computation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpsilonReport {
    /// ε for the requested δ.
    pub epsilon: f64,
    /// The optimal RDP order (RDP accountant only).
    pub order: Option<f64>,
}

/// ε after `steps` steps of the Poisson-subsampled Gaussian mechanism with
/// sampling rate `q` ∈ (0, 1] (1 = no subsampling) and noise multiplier
/// `sigma` (noise standard deviation / L2 sensitivity), at `delta` ∈ (0, 1),
/// under add/remove-one adjacency.
pub fn epsilon(
    acc: Accountant,
    q: f64,
    sigma: f64,
    steps: u64,
    delta: f64,
) -> Result<EpsilonReport, DpError> {
    error::check_q(q)?;
    error::check_sigma(sigma)?;
    error::check_steps(steps)?;
    error::check_delta(delta)?;
    match acc {
        Accountant::Rdp => {
            let mut a = RdpAccountant::new();
            a.record_poisson_gaussian(q, sigma, steps)?;
            let (e, order) = a.epsilon_and_order(delta)?;
            Ok(EpsilonReport {
                epsilon: e,
                order: Some(order),
            })
        }
        Accountant::Pld => {
            let mut a = PldAccountant::new();
            a.record_poisson_gaussian(q, sigma, steps)?;
            Ok(EpsilonReport {
                epsilon: a.epsilon(delta)?,
                order: None,
            })
        }
    }
}

/// The smallest noise multiplier σ (to relative precision
/// [`calibrate::SIGMA_REL_TOL`]) such that `steps` steps at sampling rate `q`
/// give ε ≤ `target_epsilon` at `delta` with the chosen accountant. The
/// returned σ is always verified: `epsilon(acc, q, σ, steps, delta) ≤ target`.
pub fn calibrate_sigma(
    acc: Accountant,
    q: f64,
    steps: u64,
    delta: f64,
    target_epsilon: f64,
) -> Result<f64, DpError> {
    calibrate::calibrate(acc, q, steps, delta, target_epsilon)
}

/// Accountant state that an optimizer reports to after each step (or batch of steps).
pub trait PrivacyAccountant: Send {
    /// Records `steps` steps of the Poisson-subsampled Gaussian mechanism
    /// with sampling rate `q` and noise multiplier `sigma`.
    fn record_poisson_gaussian(&mut self, q: f64, sigma: f64, steps: u64) -> Result<(), DpError>;
    /// ε of everything recorded so far at `delta` (0 when nothing was recorded).
    fn epsilon(&self, delta: f64) -> Result<f64, DpError>;
}
