//! Privacy-loss-distribution (PLD) accountant for the Poisson-subsampled
//! Gaussian mechanism under add/remove adjacency.
//!
//! Each distinct (q, σ) step is discretised on the grid `Δ·ℤ`
//! (Δ = [`DEFAULT_DISCRETIZATION`] = 1e-4 by default, dp-accounting's
//! default) with the pessimistic connect-the-dots rule, once for the
//! "remove" and once for the "add" direction (they differ when q < 1);
//! the composition of all recorded steps is computed by FFT (see
//! `compose.rs`); ε(δ) and δ(ε) take the worse of the two directions. Every
//! approximation (discretisation, noise-tail truncation, composition-window
//! truncation, FFT round-off clamping) errs on the pessimistic side, so the
//! reported ε is an upper bound on the true ε up to floating-point rounding.

mod compose;
mod pmf;

pub use pmf::{subsampled_gaussian_pmf, Adjacency, Pmf};

use crate::error::{
    check_delta, check_epsilon, check_q, check_sigma, check_steps, invalid, DpError,
};
use crate::PrivacyAccountant;
use serde::{Deserialize, Serialize};

/// Default grid spacing of privacy losses (the same as dp-accounting's).
pub const DEFAULT_DISCRETIZATION: f64 = 1e-4;

/// Composition-window tail mass for a query at `delta`: a millionth of δ
/// (at most 1e-12). It is added to the +∞ mass, so it can raise δ(ε) by at
/// most δ·1e-6 (ε by ~1e-7 relative) and never lowers it.
fn tail_for(delta: f64) -> f64 {
    (delta * 1e-6).min(1e-12)
}

/// One recorded batch of identical steps.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GaussianEvent {
    /// Poisson sampling rate.
    pub q: f64,
    /// Noise multiplier.
    pub sigma: f64,
    /// Number of steps.
    pub steps: u64,
}

/// The composed PLD of everything recorded, in both adjacency directions.
#[derive(Clone, Debug)]
pub struct ComposedPld {
    remove: Pmf,
    add: Option<Pmf>,
}

impl ComposedPld {
    /// δ(ε): the larger of the two directions.
    pub fn delta_for_epsilon(&self, epsilon: f64) -> f64 {
        let r = self.remove.delta_for_epsilon(epsilon);
        match &self.add {
            Some(a) => r.max(a.delta_for_epsilon(epsilon)),
            None => r,
        }
    }

    /// ε(δ): the larger of the two directions.
    pub fn epsilon_for_delta(&self, delta: f64) -> f64 {
        let r = self.remove.epsilon_for_delta(delta);
        match &self.add {
            Some(a) => r.max(a.epsilon_for_delta(delta)),
            None => r,
        }
    }

    /// The "remove" direction's PLD.
    pub fn remove(&self) -> &Pmf {
        &self.remove
    }

    /// The "add" direction's PLD (`None` when every step had q = 1, where it
    /// equals the remove direction).
    pub fn add(&self) -> Option<&Pmf> {
        self.add.as_ref()
    }
}

/// PLD accountant: records (q, σ, steps) batches and composes them on demand.
/// Heterogeneous batches (different q or σ) compose exactly like identical
/// ones; batches with bit-identical (q, σ) are merged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PldAccountant {
    interval: f64,
    events: Vec<GaussianEvent>,
}

impl Default for PldAccountant {
    fn default() -> Self {
        Self::new()
    }
}

impl PldAccountant {
    /// An empty accountant with discretisation [`DEFAULT_DISCRETIZATION`].
    pub fn new() -> Self {
        PldAccountant {
            interval: DEFAULT_DISCRETIZATION,
            events: Vec::new(),
        }
    }

    /// An empty accountant with a custom discretisation interval in
    /// [1e-6, 0.1]. Coarser is faster and more pessimistic.
    pub fn with_discretization(interval: f64) -> Result<Self, DpError> {
        if !(interval.is_finite() && (1e-6..=0.1).contains(&interval)) {
            return Err(invalid(
                "discretization",
                interval,
                "the PLD discretisation interval must be in [1e-6, 0.1]",
            ));
        }
        Ok(PldAccountant {
            interval,
            events: Vec::new(),
        })
    }

    /// The discretisation interval.
    pub fn discretization(&self) -> f64 {
        self.interval
    }

    /// The recorded batches.
    pub fn events(&self) -> &[GaussianEvent] {
        &self.events
    }

    /// Checks a deserialised accountant (untrusted JSON).
    pub fn validate(&self) -> Result<(), DpError> {
        if !(self.interval.is_finite() && (1e-6..=0.1).contains(&self.interval)) {
            return Err(invalid(
                "discretization",
                self.interval,
                "must be in [1e-6, 0.1]",
            ));
        }
        for e in &self.events {
            check_q(e.q)?;
            check_sigma(e.sigma)?;
            check_steps(e.steps)?;
        }
        Ok(())
    }

    fn compose_direction(
        &self,
        adjacency: Adjacency,
        interval: f64,
        tail: f64,
    ) -> Result<Pmf, DpError> {
        let mut parts = Vec::with_capacity(self.events.len());
        for e in &self.events {
            parts.push((
                subsampled_gaussian_pmf(e.q, e.sigma, interval, adjacency)?,
                e.steps,
            ));
        }
        compose::compose(&parts, tail)
    }

    fn symmetric(&self) -> bool {
        self.events.iter().all(|e| e.q >= 1.0)
    }

    /// Composes everything recorded with composition-window tail mass `tail`
    /// (both directions).
    pub fn compose(&self, tail: f64) -> Result<ComposedPld, DpError> {
        if !(tail.is_finite() && tail > 0.0 && tail < 1e-3) {
            return Err(invalid("tail", tail, "the tail mass must be in (0, 1e-3)"));
        }
        let remove = self.compose_direction(Adjacency::Remove, self.interval, tail)?;
        let add = if self.symmetric() {
            None
        } else {
            Some(self.compose_direction(Adjacency::Add, self.interval, tail)?)
        };
        Ok(ComposedPld { remove, add })
    }

    /// The "add" direction's composition on the grid `COARSE·Δ·ℤ`, a subset
    /// of the fine grid. Connect-the-dots through fewer points of the same
    /// convex hockey-stick curve lies above the finer interpolation, and
    /// dominance survives composition, so this PLD's δ(ε) bounds the fine
    /// one's from above (up to the ~e⁻⁵⁰ noise-tail masses, covered by the
    /// margin in the callers). When it already certifies that the add
    /// direction cannot be the worse one — the common case for the
    /// subsampled Gaussian — the fine add composition is skipped.
    fn coarse_add(&self, tail: f64) -> Result<Option<Pmf>, DpError> {
        let coarse = self.interval * COARSE_FACTOR;
        if coarse > 0.1 {
            return Ok(None);
        }
        self.compose_direction(Adjacency::Add, coarse, tail)
            .map(Some)
    }

    /// δ for a given ε of the composition so far.
    pub fn delta(&self, epsilon: f64) -> Result<f64, DpError> {
        check_epsilon(epsilon)?;
        if self.events.is_empty() {
            return Ok(0.0);
        }
        let tail = 1e-15;
        let remove = self.compose_direction(Adjacency::Remove, self.interval, tail)?;
        let d_r = remove.delta_for_epsilon(epsilon);
        if self.symmetric() {
            return Ok(d_r);
        }
        if let Some(c) = self.coarse_add(tail)? {
            if c.delta_for_epsilon(epsilon) <= d_r * (1.0 - CERT_MARGIN) {
                return Ok(d_r);
            }
        }
        let add = self.compose_direction(Adjacency::Add, self.interval, tail)?;
        Ok(d_r.max(add.delta_for_epsilon(epsilon)))
    }
}

/// Coarse-to-fine grid ratio of the add-direction certificate.
const COARSE_FACTOR: f64 = 10.0;
/// Relative safety margin on δ for the certificate.
const CERT_MARGIN: f64 = 1e-9;

impl PrivacyAccountant for PldAccountant {
    fn record_poisson_gaussian(&mut self, q: f64, sigma: f64, steps: u64) -> Result<(), DpError> {
        check_q(q)?;
        check_sigma(sigma)?;
        check_steps(steps)?;
        let merged = self
            .events
            .iter_mut()
            .find(|e| e.q.to_bits() == q.to_bits() && e.sigma.to_bits() == sigma.to_bits());
        match merged {
            Some(e) => {
                let total = e.steps.saturating_add(steps);
                check_steps(total)?;
                e.steps = total;
            }
            None => self.events.push(GaussianEvent { q, sigma, steps }),
        }
        Ok(())
    }

    fn epsilon(&self, delta: f64) -> Result<f64, DpError> {
        check_delta(delta)?;
        if self.events.is_empty() {
            return Ok(0.0);
        }
        let tail = tail_for(delta);
        let remove = self.compose_direction(Adjacency::Remove, self.interval, tail)?;
        let e_r = remove.epsilon_for_delta(delta);
        if self.symmetric() || e_r.is_infinite() {
            return Ok(e_r);
        }
        if let Some(c) = self.coarse_add(tail)? {
            if c.delta_for_epsilon(e_r) <= delta * (1.0 - CERT_MARGIN) {
                return Ok(e_r);
            }
        }
        let add = self.compose_direction(Adjacency::Add, self.interval, tail)?;
        Ok(e_r.max(add.epsilon_for_delta(delta)))
    }
}
