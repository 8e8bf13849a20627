//! Noise calibration: the smallest noise multiplier σ meeting a target
//! (ε, δ) for a given sampling rate and number of steps.
//!
//! ε(σ) is decreasing in σ. The search keeps a bracket `[lo, hi]` with
//! ε(hi) ≤ target < ε(lo) and shrinks it by a safeguarded secant step on
//! (ln σ, ln ε) (Illinois variant), falling back to bisection; the returned
//! σ is always the feasible end `hi`, so ε(returned σ) ≤ target holds by
//! construction, and `hi/lo − 1` ≤ the relative tolerance.

use crate::error::{check_delta, check_q, check_steps, DpError};
use crate::{epsilon, Accountant};

/// Relative tolerance on σ of [`crate::calibrate_sigma`].
pub const SIGMA_REL_TOL: f64 = 1e-6;

/// Search limits for σ.
const SIGMA_MIN: f64 = 1e-3;
const SIGMA_MAX: f64 = 1e6;

/// Generic monotone search: smallest `x` in `[SIGMA_MIN, SIGMA_MAX]` with
/// `f(x) ≤ target` where `f` is non-increasing, starting near `guess`.
/// Errors from `f` at a point mean "infeasible there" (e.g. a PLD grid too
/// large for tiny σ) for the lower side of the search.
pub(crate) fn smallest_feasible<F>(
    mut f: F,
    target: f64,
    guess: f64,
    rel_tol: f64,
) -> Result<f64, DpError>
where
    F: FnMut(f64) -> Result<f64, DpError>,
{
    let mut eval = |x: f64| -> Result<Option<f64>, DpError> {
        match f(x) {
            Ok(v) => Ok(Some(v)),
            Err(DpError::TooLarge(_)) => Ok(None), // treat as "too small σ"
            Err(e) => Err(e),
        }
    };
    let feasible = |v: Option<f64>| v.is_some_and(|e| e <= target);
    let guess = guess.clamp(SIGMA_MIN, SIGMA_MAX);
    let g = eval(guess)?;
    // Bracket: (lo, f(lo)) infeasible, (hi, f(hi)) feasible.
    let (mut lo, mut f_lo, mut hi, mut f_hi);
    if feasible(g) {
        hi = guess;
        f_hi = g;
        let mut x = guess;
        loop {
            let nx = (x / 1.25).max(SIGMA_MIN);
            if nx >= x {
                // Even the smallest σ is feasible.
                return Ok(x);
            }
            let v = eval(nx)?;
            if feasible(v) {
                hi = nx;
                f_hi = v;
                x = nx;
            } else {
                lo = nx;
                f_lo = v;
                break;
            }
        }
    } else {
        lo = guess;
        f_lo = g;
        let mut x = guess;
        loop {
            let nx = (x * 1.5).min(SIGMA_MAX);
            if nx <= x {
                return Err(DpError::Calibration(format!(
                    "no noise multiplier up to {SIGMA_MAX} reaches the target epsilon {target}"
                )));
            }
            let v = eval(nx)?;
            if feasible(v) {
                hi = nx;
                f_hi = v;
                break;
            }
            lo = nx;
            f_lo = v;
            x = nx;
        }
    }
    // Shrink the bracket: false position on (ln σ, ln ε − ln target) with the
    // Illinois modification, bisection where a value is unusable.
    let lt = target.ln();
    let to_log = |v: Option<f64>| v.filter(|e| *e > 0.0 && e.is_finite()).map(|e| e.ln() - lt);
    let (mut fa, mut fb) = (to_log(f_lo), to_log(f_hi));
    let mut last_side = 0i8;
    for _ in 0..100 {
        if hi / lo - 1.0 <= rel_tol {
            break;
        }
        let (llo, lhi) = (lo.ln(), hi.ln());
        let w = lhi - llo;
        let mut x = 0.5 * (llo + lhi);
        if let (Some(a), Some(b)) = (fa, fb) {
            if a > b {
                // Keep the step strictly inside the bracket.
                x = (llo + w * a / (a - b)).clamp(llo + 0.02 * w, lhi - 0.02 * w);
            }
        }
        let xs = x.exp();
        let v = eval(xs)?;
        if feasible(v) {
            hi = xs;
            fb = to_log(v);
            if last_side == 1 {
                fa = fa.map(|a| 0.5 * a);
            }
            last_side = 1;
        } else {
            lo = xs;
            fa = to_log(v);
            if last_side == -1 {
                fb = fb.map(|b| 0.5 * b);
            }
            last_side = -1;
        }
    }
    Ok(hi)
}

/// See [`crate::calibrate_sigma`].
pub(crate) fn calibrate(
    acc: Accountant,
    q: f64,
    steps: u64,
    delta: f64,
    target: f64,
) -> Result<f64, DpError> {
    check_q(q)?;
    check_steps(steps)?;
    check_delta(delta)?;
    if !(target.is_finite() && target > 0.0) {
        return Err(DpError::InvalidTargetEpsilon(target));
    }
    let rdp = |s: f64| epsilon(Accountant::Rdp, q, s, steps, delta).map(|r| r.epsilon);
    let sigma_rdp = smallest_feasible(rdp, target, 1.0, SIGMA_REL_TOL)?;
    match acc {
        Accountant::Rdp => Ok(sigma_rdp),
        Accountant::Pld => {
            // RDP is (almost always) looser, so its σ is a feasible start.
            let pld = |s: f64| epsilon(Accountant::Pld, q, s, steps, delta).map(|r| r.epsilon);
            smallest_feasible(pld, target, sigma_rdp, SIGMA_REL_TOL)
        }
    }
}
