//! Typed errors and input validation shared by every module.

use thiserror::Error;

/// Everything that can go wrong in `cipherflow-dp`. Untrusted input is
/// validated up front and reported here; nothing in the crate panics on it.
#[derive(Debug, Error)]
pub enum DpError {
    /// The Poisson sampling rate is not in (0, 1].
    #[error("invalid sampling rate q = {0}: q must be a finite number in (0, 1]")]
    InvalidSamplingRate(f64),
    /// The noise multiplier (noise standard deviation over L2 sensitivity) is not a positive finite number.
    #[error("invalid noise multiplier sigma = {0}: sigma must be a finite number > 0")]
    InvalidNoiseMultiplier(f64),
    /// δ is not in (0, 1).
    #[error("invalid delta = {0}: delta must be a finite number in (0, 1)")]
    InvalidDelta(f64),
    /// ε is negative or not finite.
    #[error("invalid epsilon = {0}: epsilon must be a finite number >= 0")]
    InvalidEpsilon(f64),
    /// A target ε that must be strictly positive is not.
    #[error("invalid target epsilon = {0}: the target must be a finite number > 0")]
    InvalidTargetEpsilon(f64),
    /// The number of steps is zero (or absurdly large).
    #[error("invalid number of steps = {0}: steps must be between 1 and {max}", max = crate::MAX_STEPS)]
    InvalidSteps(u64),
    /// Any other out-of-range parameter.
    #[error("invalid {name} = {value}: {reason}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// The offending value, as given.
        value: String,
        /// What was expected.
        reason: &'static str,
    },
    /// A privacy budget would be exceeded by a request; nothing was spent.
    #[error(
        "privacy budget exceeded for {scope}: the request needs epsilon {requested:.6} \
         but only {remaining:.6} of {total:.6} remains (delta = {delta:e})"
    )]
    BudgetExceeded {
        /// Which budget refused ("global", "client `id`", "schedule").
        scope: String,
        /// Additional ε the request would have spent.
        requested: f64,
        /// ε still available before the request.
        remaining: f64,
        /// The total ε of the budget.
        total: f64,
        /// The δ the budget is kept at.
        delta: f64,
    },
    /// No noise level reaches the target (ε, δ) within the searched range.
    #[error("cannot calibrate: {0}")]
    Calibration(String),
    /// A computation would need more memory/time than allowed.
    #[error("computation too large: {0}")]
    TooLarge(String),
    /// The planned schedule has no rounds left.
    #[error("the schedule has no rounds left ({0} planned rounds were all granted)")]
    ScheduleExhausted(u64),
    /// Integer overflow in an exact sampler (parameters too large).
    #[error("arithmetic overflow in exact sampler: {0}")]
    Overflow(&'static str),
    /// (De)serialisation of a ledger or schedule failed.
    #[error("invalid ledger JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Reading or writing a ledger file failed.
    #[error("ledger I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Checks a Poisson sampling rate: finite and in (0, 1].
pub fn check_q(q: f64) -> Result<f64, DpError> {
    if q.is_finite() && q > 0.0 && q <= 1.0 {
        Ok(q)
    } else {
        Err(DpError::InvalidSamplingRate(q))
    }
}

/// Checks a noise multiplier: finite and > 0.
pub fn check_sigma(sigma: f64) -> Result<f64, DpError> {
    if sigma.is_finite() && sigma > 0.0 {
        Ok(sigma)
    } else {
        Err(DpError::InvalidNoiseMultiplier(sigma))
    }
}

/// Checks δ: finite and in (0, 1).
pub fn check_delta(delta: f64) -> Result<f64, DpError> {
    if delta.is_finite() && delta > 0.0 && delta < 1.0 {
        Ok(delta)
    } else {
        Err(DpError::InvalidDelta(delta))
    }
}

/// Checks an ε argument: finite and ≥ 0.
pub fn check_epsilon(eps: f64) -> Result<f64, DpError> {
    if eps.is_finite() && eps >= 0.0 {
        Ok(eps)
    } else {
        Err(DpError::InvalidEpsilon(eps))
    }
}

/// Checks a step count: 1 ≤ steps ≤ [`crate::MAX_STEPS`].
pub fn check_steps(steps: u64) -> Result<u64, DpError> {
    if (1..=crate::MAX_STEPS).contains(&steps) {
        Ok(steps)
    } else {
        Err(DpError::InvalidSteps(steps))
    }
}

/// Builds an [`DpError::InvalidParameter`].
pub(crate) fn invalid(
    name: &'static str,
    value: impl std::fmt::Display,
    reason: &'static str,
) -> DpError {
    DpError::InvalidParameter {
        name,
        value: value.to_string(),
        reason,
    }
}
