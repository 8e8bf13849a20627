//! Rényi-DP accountant for the (Poisson-subsampled) Gaussian mechanism.
//!
//! The RDP of one step at order α is `ln(A_α)/(α − 1)` where `A_α` is the
//! α-th moment of the likelihood ratio between the mixture
//! `(1−q)·N(0,σ²) + q·N(1,σ²)` and `N(0,σ²)` (Mironov, Talwar, Zhang 2019).
//! For integer α it is the finite binomial sum
//! `Σ_i C(α,i) qⁱ (1−q)^(α−i) exp((i²−i)/(2σ²))`; for fractional α the
//! series splits the integral at `z₀ = σ² ln(1/q − 1) + ½` and sums both
//! halves with `erfc` weights until the terms are 30 nats below the total.
//! Both are evaluated in log space, like Google's dp-accounting (0.6.0), on
//! its default order grid [`default_orders`], so results agree with it to
//! floating-point rounding. Composition adds RDP curves; conversion to
//! (ε, δ) uses the tight bound of Canonne–Kamath–Steinke / Asoodeh et al.
//! `ε = r + ln(1 − 1/α) − ln(δ·α)/(α − 1)`, minimised over the orders.

use crate::error::{check_delta, check_epsilon, check_q, check_sigma, check_steps, DpError};
use crate::special::{log_add, log_comb, log_erfc};
use crate::PrivacyAccountant;
use serde::{Deserialize, Serialize};

/// dp-accounting's default RDP orders: 1.1, 1.2, …, 10.9 (step 0.1), 11 … 63,
/// then 128, 256, 512, 1024 — 156 orders.
pub fn default_orders() -> Vec<f64> {
    let mut v: Vec<f64> = (1..100).map(|x| 1.0 + f64::from(x) / 10.0).collect();
    v.extend((11..64).map(f64::from));
    v.extend([128.0, 256.0, 512.0, 1024.0]);
    v
}

/// Iteration cap of the fractional-order series (as in dp-accounting);
/// an order whose series does not converge is excluded (RDP = +inf).
const MAX_FRAC_TERMS: usize = 1000;

fn log_a_int(q: f64, sigma: f64, alpha: u64) -> f64 {
    let ln_q = q.ln();
    let ln_1mq = (-q).ln_1p();
    let s2 = 2.0 * sigma * sigma;
    let a = alpha as f64;
    let mut log_a = f64::NEG_INFINITY;
    for i in 0..=alpha {
        let fi = i as f64;
        let term = log_comb(a, fi) + fi * ln_q + (a - fi) * ln_1mq + (fi * fi - fi) / s2;
        log_a = log_add(log_a, term);
    }
    log_a
}

fn log_a_frac(q: f64, sigma: f64, alpha: f64) -> f64 {
    let ln_q = q.ln();
    let ln_1mq = (-q).ln_1p();
    let s2 = 2.0 * sigma * sigma;
    let z0 = sigma * sigma * (1.0 / q - 1.0).ln() + 0.5;
    let scale = std::f64::consts::SQRT_2 * sigma;
    let ln_half = -std::f64::consts::LN_2;
    let (mut log_a0, mut log_a1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let (mut last_s0, mut last_s1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    for i in 0..MAX_FRAC_TERMS {
        let fi = i as f64;
        // |C(α, i)|: summing absolute values bounds the signed series from
        // above (the same choice as dp-accounting 0.6.0), so RDP stays an
        // upper bound.
        let log_coef = log_comb(alpha, fi);
        let j = alpha - fi;
        let log_t0 = log_coef + fi * ln_q + j * ln_1mq;
        let log_t1 = log_coef + j * ln_q + fi * ln_1mq;
        let log_e0 = ln_half + log_erfc((fi - z0) / scale);
        let log_e1 = ln_half + log_erfc((z0 - j) / scale);
        let log_s0 = log_t0 + (fi * fi - fi) / s2 + log_e0;
        let log_s1 = log_t1 + (j * j - j) / s2 + log_e1;
        log_a0 = log_add(log_a0, log_s0);
        log_a1 = log_add(log_a1, log_s1);
        let total = log_add(log_a0, log_a1);
        if log_s0 < last_s0 && log_s1 < last_s1 && log_s0.max(log_s1) < total - 30.0 {
            return total;
        }
        last_s0 = log_s0;
        last_s1 = log_s1;
    }
    f64::INFINITY
}

/// RDP at order `alpha` (> 1) of one step of the Poisson-subsampled Gaussian
/// mechanism with sampling rate `q` ∈ (0, 1] and noise multiplier `sigma`.
/// `q = 1` is the plain Gaussian mechanism, `α/(2σ²)`.
pub fn rdp_poisson_gaussian(q: f64, sigma: f64, alpha: f64) -> f64 {
    if alpha.is_infinite() {
        return f64::INFINITY;
    }
    if q >= 1.0 {
        return alpha / (2.0 * sigma * sigma);
    }
    let log_a = if alpha.fract() == 0.0 && alpha <= 1e9 {
        log_a_int(q, sigma, alpha as u64)
    } else {
        log_a_frac(q, sigma, alpha)
    };
    let r = log_a / (alpha - 1.0);
    if r.is_nan() {
        // Never observed; excluding the order (RDP = +inf) is the safe choice.
        f64::INFINITY
    } else {
        // Rounding can push a divergence of ~1e-17 below zero.
        r.max(0.0)
    }
}

/// Smallest ε over the orders for the given RDP curve and δ, with the order
/// achieving it (tight conversion, Canonne–Kamath–Steinke 2020 Prop. 12 /
/// Asoodeh et al. 2020). Orders ≤ 1.01 are skipped as numerically unstable.
pub fn rdp_to_epsilon(orders: &[f64], rdp: &[f64], delta: f64) -> (f64, f64) {
    let mut best = (f64::INFINITY, orders.first().copied().unwrap_or(f64::NAN));
    for (&a, &r) in orders.iter().zip(rdp) {
        let eps = if r.is_nan() {
            f64::INFINITY
        } else if r < 0.0 {
            // Only from rounding with extreme parameters; the divergence is ≥ 0.
            0.0
        } else if delta * delta + (-r).exp_m1() > 0.0 {
            // δ ≥ sqrt(1 − exp(−KL)) ≥ TV: ε = 0 suffices.
            0.0
        } else if a > 1.01 {
            r + (-1.0 / a).ln_1p() - (delta * a).ln() / (a - 1.0)
        } else {
            f64::INFINITY
        };
        if eps < best.0 {
            best = (eps, a);
        }
    }
    (best.0.max(0.0), best.1)
}

/// Smallest δ over the orders for the given RDP curve and ε, with the order
/// achieving it (the inverse of [`rdp_to_epsilon`]'s bound).
pub fn rdp_to_delta(orders: &[f64], rdp: &[f64], epsilon: f64) -> (f64, f64) {
    let mut best = (f64::INFINITY, orders.first().copied().unwrap_or(f64::NAN));
    for (&a, &r) in orders.iter().zip(rdp) {
        let mut log_delta = if r.is_nan() {
            f64::INFINITY
        } else if r <= 0.0 {
            f64::NEG_INFINITY
        } else {
            0.5 * (-(-r).exp()).ln_1p()
        };
        if a > 1.01 && r.is_finite() {
            let bound = (a - 1.0) * (r - epsilon + (-1.0 / a).ln_1p()) - a.ln();
            log_delta = log_delta.min(bound);
        }
        if log_delta < best.0 {
            best = (log_delta, a);
        }
    }
    (best.0.exp().min(1.0), best.1)
}

/// RDP accountant: the running RDP curve of everything recorded so far, on a
/// fixed order grid. Cheap to clone; serialisable so a caller can persist it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RdpAccountant {
    orders: Vec<f64>,
    rdp: Vec<f64>,
}

impl Default for RdpAccountant {
    fn default() -> Self {
        Self::new()
    }
}

impl RdpAccountant {
    /// An empty accountant on dp-accounting's default orders.
    pub fn new() -> Self {
        let orders = default_orders();
        let rdp = vec![0.0; orders.len()];
        RdpAccountant { orders, rdp }
    }

    /// An empty accountant on custom orders (each finite and > 1, at least one).
    pub fn with_orders(orders: Vec<f64>) -> Result<Self, DpError> {
        if orders.is_empty() || orders.iter().any(|a| !(a.is_finite() && *a > 1.0)) {
            return Err(crate::error::invalid(
                "orders",
                format!("{orders:?}"),
                "RDP orders must be a non-empty list of finite numbers > 1",
            ));
        }
        let rdp = vec![0.0; orders.len()];
        Ok(RdpAccountant { orders, rdp })
    }

    /// The order grid.
    pub fn orders(&self) -> &[f64] {
        &self.orders
    }

    /// The accumulated RDP at each order.
    pub fn rdp(&self) -> &[f64] {
        &self.rdp
    }

    /// Checks a deserialised accountant for consistency (untrusted JSON).
    pub fn validate(&self) -> Result<(), DpError> {
        let ok = !self.orders.is_empty()
            && self.orders.len() == self.rdp.len()
            && self.orders.iter().all(|a| a.is_finite() && *a > 1.0)
            && self.rdp.iter().all(|r| !r.is_nan() && *r >= 0.0);
        if ok {
            Ok(())
        } else {
            Err(crate::error::invalid(
                "rdp accountant",
                "(deserialised state)",
                "orders must be finite and > 1, with one non-negative RDP value per order",
            ))
        }
    }

    /// One step's RDP curve for (q, σ) on this accountant's orders.
    pub fn curve(&self, q: f64, sigma: f64) -> Result<Vec<f64>, DpError> {
        check_q(q)?;
        check_sigma(sigma)?;
        Ok(self
            .orders
            .iter()
            .map(|&a| rdp_poisson_gaussian(q, sigma, a))
            .collect())
    }

    /// Adds an arbitrary per-step RDP curve `steps` times (same orders).
    pub fn record_curve(&mut self, curve: &[f64], steps: u64) -> Result<(), DpError> {
        check_steps(steps)?;
        if curve.len() != self.orders.len() || curve.iter().any(|r| r.is_nan() || *r < 0.0) {
            return Err(crate::error::invalid(
                "rdp curve",
                format!("{} values", curve.len()),
                "one non-negative RDP value per order is required",
            ));
        }
        let t = steps as f64;
        for (acc, r) in self.rdp.iter_mut().zip(curve) {
            *acc += t * r;
        }
        Ok(())
    }

    /// (ε, optimal order) for the composition so far at `delta`.
    pub fn epsilon_and_order(&self, delta: f64) -> Result<(f64, f64), DpError> {
        check_delta(delta)?;
        Ok(rdp_to_epsilon(&self.orders, &self.rdp, delta))
    }

    /// (δ, optimal order) for the composition so far at `epsilon`.
    pub fn delta_and_order(&self, epsilon: f64) -> Result<(f64, f64), DpError> {
        check_epsilon(epsilon)?;
        Ok(rdp_to_delta(&self.orders, &self.rdp, epsilon))
    }
}

impl PrivacyAccountant for RdpAccountant {
    fn record_poisson_gaussian(&mut self, q: f64, sigma: f64, steps: u64) -> Result<(), DpError> {
        check_steps(steps)?;
        let curve = self.curve(q, sigma)?;
        self.record_curve(&curve, steps)
    }

    fn epsilon(&self, delta: f64) -> Result<f64, DpError> {
        self.epsilon_and_order(delta).map(|(e, _)| e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_is_dp_accounting_default() {
        let o = default_orders();
        assert_eq!(o.len(), 156);
        assert_eq!(o[0], 1.1);
        assert_eq!(o[9], 2.0);
        assert_eq!(o[98], 10.9);
        assert_eq!(o[99], 11.0);
        assert_eq!(o[155], 1024.0);
    }

    #[test]
    fn unsubsampled_is_closed_form() {
        assert_eq!(rdp_poisson_gaussian(1.0, 2.0, 3.0), 3.0 / 8.0);
    }

    /// The two conversions are inverses at a given order: the δ that
    /// `rdp_to_delta` gives for the ε that `rdp_to_epsilon` found is the δ
    /// it started from (both bounds are `ln δ = (α−1)(r − ε + ln(1−1/α)) − ln α`).
    #[test]
    fn epsilon_and_delta_conversions_are_inverses() {
        let orders = default_orders();
        for &(q, sigma, steps) in &[(0.01, 1.1, 1000.0), (1.0, 4.0, 1.0), (0.001, 0.8, 1e5)] {
            let rdp: Vec<f64> = orders
                .iter()
                .map(|&a| steps * rdp_poisson_gaussian(q, sigma, a))
                .collect();
            for delta in [1e-5, 1e-8] {
                let (eps, a) = rdp_to_epsilon(&orders, &rdp, delta);
                assert!(eps > 0.0 && a > 1.01);
                let (back, a2) = rdp_to_delta(&orders, &rdp, eps);
                assert!(
                    ((back - delta) / delta).abs() < 1e-6,
                    "q {q} σ {sigma}: δ {delta} → ε {eps} (α {a}) → δ {back} (α {a2})"
                );
                assert_eq!(a, a2);
            }
        }
        // The Gaussian mechanism by hand: r(α) = α/(2σ²) at α = 10, σ = 4,
        // ε = 1: ln δ = 9·(10/32 − 1 + ln 0.9) − ln 10.
        let r = 10.0 / 32.0;
        let want = (9.0 * (r - 1.0 + 0.9f64.ln()) - 10f64.ln()).exp();
        let (got, a) = rdp_to_delta(&[10.0], &[r], 1.0);
        assert_eq!(a, 10.0);
        assert!(((got - want) / want).abs() < 1e-12, "{got} vs {want}");
    }

    /// Orders at or below 1.01 are numerically unstable: they give no
    /// (ε, δ) bound of their own, only the KL/total-variation one.
    #[test]
    fn orders_at_or_below_one_point_zero_one_are_skipped() {
        assert_eq!(rdp_to_epsilon(&[1.01], &[0.5], 1e-5).0, f64::INFINITY);
        assert_eq!(rdp_to_epsilon(&[1.005], &[0.5], 1e-5).0, f64::INFINITY);
        // At ε = 100 the order's own bound would be below the TV one: it must
        // still not be used.
        let tv = (0.5 * (-(-0.5f64).exp()).ln_1p()).exp();
        for a in [1.01f64, 1.005] {
            let own = ((a - 1.0) * (0.5 - 100.0 + (-1.0 / a).ln_1p()) - a.ln()).exp();
            assert!(own < tv);
            assert_eq!(rdp_to_delta(&[a], &[0.5], 100.0).0, tv);
        }
        // A divergence so small that δ alone covers it needs no ε.
        assert_eq!(rdp_to_epsilon(&[2.0], &[1e-12], 1e-5).0, 0.0);
    }

    /// Every condition on a deserialised accountant, each broken alone.
    #[test]
    fn validate_refuses_each_inconsistency_alone() {
        let acc = |orders: &[f64], rdp: &[f64]| RdpAccountant {
            orders: orders.to_vec(),
            rdp: rdp.to_vec(),
        };
        let refused = |a: RdpAccountant| {
            matches!(
                a.validate(),
                Err(DpError::InvalidParameter {
                    name: "rdp accountant",
                    ..
                })
            )
        };
        assert!(acc(&[1.5, 2.0], &[0.0, f64::INFINITY]).validate().is_ok());
        assert!(RdpAccountant::new().validate().is_ok());
        assert!(refused(acc(&[], &[])));
        assert!(refused(acc(&[2.0], &[0.1, 0.2])));
        assert!(refused(acc(&[2.0, 3.0], &[0.1])));
        assert!(refused(acc(&[1.0, 2.0], &[0.1, 0.2])));
        assert!(refused(acc(&[0.5, 2.0], &[0.1, 0.2])));
        assert!(refused(acc(&[f64::INFINITY, 2.0], &[0.1, 0.2])));
        assert!(refused(acc(&[f64::NAN, 2.0], &[0.1, 0.2])));
        assert!(refused(acc(&[2.0, 3.0], &[0.1, f64::NAN])));
        assert!(refused(acc(&[2.0, 3.0], &[-1e-300, 0.2])));
    }

    #[test]
    fn custom_orders_and_recorded_curves() {
        let mut acc = RdpAccountant::with_orders(vec![1.5, 2.0, 8.0]).unwrap();
        assert_eq!(acc.orders(), &[1.5, 2.0, 8.0]);
        assert_eq!(acc.rdp(), &[0.0, 0.0, 0.0]);
        for bad in [vec![], vec![1.0], vec![0.5, 2.0], vec![2.0, f64::INFINITY]] {
            assert!(matches!(
                RdpAccountant::with_orders(bad),
                Err(DpError::InvalidParameter { name: "orders", .. })
            ));
        }
        acc.record_curve(&[0.25, 0.5, 2.0], 4).unwrap();
        assert_eq!(acc.rdp(), &[1.0, 2.0, 8.0]);
        for bad in [
            vec![0.1, 0.2],
            vec![0.1, f64::NAN, 0.2],
            vec![0.1, -0.2, 0.3],
        ] {
            assert!(matches!(
                acc.record_curve(&bad, 1),
                Err(DpError::InvalidParameter {
                    name: "rdp curve",
                    ..
                })
            ));
        }
        assert_eq!(
            acc.rdp(),
            &[1.0, 2.0, 8.0],
            "a refused curve changes nothing"
        );
    }

    #[test]
    fn integer_and_fractional_series_agree_near_integers() {
        // The fractional series at α = 3 ± tiny must match the exact integer sum.
        for &(q, s) in &[(0.01, 1.0), (0.1, 0.7), (1e-4, 4.0)] {
            let exact = rdp_poisson_gaussian(q, s, 3.0);
            // Integer orders take the exact binomial sum.
            assert_eq!(exact, log_a_int(q, s, 3) / 2.0);
            let frac = log_a_frac(q, s, 3.000_000_1) / 2.000_000_1;
            assert!(
                ((frac - exact) / exact).abs() < 1e-5,
                "{q} {s}: {frac} vs {exact}"
            );
        }
    }
}
