//! Approximations of non-linear functions, with their errors.
//!
//! * **Sigmoid**: piecewise-linear interpolation of σ at the 33 knots
//!   −8, −7.5, …, 8, clamped to 0 below −8 and 1 above 8. All 33
//!   comparisons run in one batch, so it costs one comparison's rounds plus
//!   two. Interpolation error ≤ h²/8 · max|σ″| = 0.25/8 · 0.0962 ≈ 3.0e-3,
//!   tail error ≤ σ(−8) = 3.4e-4; with fixed-point rounding the total stays
//!   below [`SIGMOID_MAX_ERROR`] (checked against f64 in the tests).
//! * **GELU** `x·Φ(x)`: `x·Φ̂(x)`, Φ̂ the piecewise-linear interpolation
//!   of Φ at the 33 knots −4, −3.75, …, 4 (0 below, 1 above), one batch of
//!   comparisons as for the sigmoid plus one product. Interpolation error
//!   of Φ ≤ h²/8 · max|Φ″| = 0.0625/8 · 0.242 ≈ 1.9e-3 where |x| ≤ 4 and
//!   ≤ 3.2e-5 outside, so |GELU − approximation| ≤ [`GELU_MAX_ERROR`]
//!   for |x| ≤ 100 (checked against f64 in the tests).
//! * **exp** (for softmax, inputs ≤ 0): `(1 + x/2^8)^(2^8)` after clamping
//!   x to [−16, 0]; 8 squarings. Absolute error ≤ 2e-3 on [−16, 0].
//! * **reciprocal** (for softmax, inputs in [1, C]): Newton–Raphson
//!   `y ← y(2 − s·y)` from `y_0 = 1/C`, iterated until the contraction
//!   `(1 − 1/C)^(2^k)` is below 2^−f.
//! * **Softmax** over rows: `exp(x − max) / Σ exp(x − max)`, the maximum
//!   by a tournament ([`Party::max_rows`]); measured
//!   absolute error ≤ [`SOFTMAX_MAX_ERROR`].

use crate::party::{AShare, Party};
use crate::z2k::Z2k;
use crate::MpcError;

/// Bound on |sigmoid_approx(x) − σ(x)| for all x (f ≥ 16).
pub const SIGMOID_MAX_ERROR: f64 = 4e-3;

/// Bound on |gelu_approx(x) − GELU(x)| for |x| ≤ 100 (f ≥ 16).
pub const GELU_MAX_ERROR: f64 = 5e-3;

/// Bound on the softmax error per probability (f ≥ 16, row values within
/// 16 of the row maximum contribute; smaller ones are treated as 0).
pub const SOFTMAX_MAX_ERROR: f64 = 5e-3;

/// The sigmoid knots.
pub fn sigmoid_knots() -> Vec<f64> {
    (0..=32).map(|k| -8.0 + 0.5 * k as f64).collect()
}

/// The piecewise-linear sigmoid evaluated in f64 (what the protocol
/// computes, up to fixed-point rounding).
pub fn sigmoid_reference(x: f64) -> f64 {
    let t = sigmoid_knots();
    let s = |v: f64| 1.0 / (1.0 + (-v).exp());
    if x < t[0] {
        return 0.0;
    }
    for w in t.windows(2) {
        if x < w[1] {
            let (a, b) = (s(w[0]), s(w[1]));
            return a + (b - a) * (x - w[0]) / (w[1] - w[0]);
        }
    }
    1.0
}

/// The standard normal CDF Φ.
fn normal_cdf(x: f64) -> f64 {
    0.5 * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
}

/// The knots of Φ for GELU: −4, −3.75, …, 4.
pub fn gelu_knots() -> Vec<f64> {
    (0..=32).map(|k| -4.0 + 0.25 * k as f64).collect()
}

/// The piecewise-linear GELU evaluated in f64 (what the protocol
/// computes, up to fixed-point rounding): `x·Φ̂(x)`.
pub fn gelu_reference(x: f64) -> f64 {
    let t = gelu_knots();
    let first = t.first().copied().unwrap_or(0.0);
    if x < first {
        return 0.0;
    }
    for w in t.windows(2) {
        if x < w[1] {
            let (a, b) = (normal_cdf(w[0]), normal_cdf(w[1]));
            return x * (a + (b - a) * (x - w[0]) / (w[1] - w[0]));
        }
    }
    x
}

impl<R: Z2k> Party<R> {
    /// A piecewise-linear interpolation of `g` at `knots` (increasing): 0
    /// below the first knot, `high` from the last one on. All comparisons
    /// `x ≥ t_k` run in one batch: one comparison's rounds plus two.
    fn piecewise_linear(
        &mut self,
        x: &AShare<R>,
        knots: &[f64],
        g: impl Fn(f64) -> f64,
        high: f64,
    ) -> Result<AShare<R>, MpcError> {
        let f = self.fixed_point().frac;
        // Segment k ≥ 0 is [t_k, t_{k+1}) with slope a_k, value b_k at 0;
        // from the last knot on the function is `high`.
        let mut seg: Vec<(f64, f64)> = knots
            .windows(2)
            .map(|w| {
                let a = (g(w[1]) - g(w[0])) / (w[1] - w[0]);
                (a, g(w[0]) - a * w[0])
            })
            .collect();
        seg.push((0.0, high));
        let n = x.len();
        let kk = knots.len();
        // Batch all comparisons x ≥ t_k.
        let reps: Vec<&AShare<R>> = std::iter::repeat_n(x, kk).collect();
        let xs = self.vstack(&reps)?;
        let thr: Vec<R> = knots
            .iter()
            .flat_map(|&t| std::iter::repeat_n(R::encode(-t, f), n))
            .collect();
        let shifted = self.add_public(&xs, &thr)?;
        let bits = self.drelu(&shifted)?;
        // Δ_k(x) = (a_k − a_{k−1})·x + (b_k − b_{k−1}), at scale 2^(2f).
        let mut prev = (0.0, 0.0);
        let mut deltas = Vec::with_capacity(kk);
        for &(a, b) in &seg {
            let d = self.mul_public(x, R::encode(a - prev.0, f));
            let c = R::encode(b - prev.1, f).shl(f);
            deltas.push(self.add_public(&d, &[c])?);
            prev = (a, b);
        }
        let drefs: Vec<&AShare<R>> = deltas.iter().collect();
        let dstack = self.vstack(&drefs)?;
        let prod = self.mul(&bits, &dstack)?;
        // Σ_k over the stacked blocks.
        let mut acc_a = vec![R::ZERO; n];
        let mut acc_b = vec![R::ZERO; n];
        for k in 0..kk {
            for i in 0..n {
                acc_a[i] = acc_a[i].add(prod.a[k * n + i]);
                acc_b[i] = acc_b[i].add(prod.b[k * n + i]);
            }
        }
        let sum = AShare::from_parts(x.rows, x.cols, acc_a, acc_b);
        self.truncate(&sum, f)
    }

    /// Piecewise-linear sigmoid (see the module docs for the error).
    pub fn sigmoid(&mut self, x: &AShare<R>) -> Result<AShare<R>, MpcError> {
        let s = |v: f64| 1.0 / (1.0 + (-v).exp());
        self.with_op("sigmoid", |p| {
            p.piecewise_linear(x, &sigmoid_knots(), s, 1.0)
        })
    }

    /// GELU `x·Φ(x)` as `x·Φ̂(x)`, Φ̂ the piecewise-linear Φ (see the
    /// module docs for the error).
    pub fn gelu(&mut self, x: &AShare<R>) -> Result<AShare<R>, MpcError> {
        self.with_op("gelu", |p| {
            let cdf = p.piecewise_linear(x, &gelu_knots(), normal_cdf, 1.0)?;
            p.mul_fx(x, &cdf)
        })
    }

    /// `e^x` for x ≤ 0 (clamped to [−16, 0]), `(1 + x/256)^256`.
    pub fn exp_nonpositive(&mut self, x: &AShare<R>) -> Result<AShare<R>, MpcError> {
        let f = self.fixed_point().frac;
        self.with_op("exp", |p| {
            // max(x, −16) = −16 + relu(x + 16).
            let shifted = p.add_public(x, &[R::encode(16.0, f)])?;
            let r = p.relu(&shifted)?;
            let clamped = p.add_public(&r, &[R::encode(-16.0, f)])?;
            let t = p.truncate(&clamped, 8)?;
            let mut y = p.add_public(&t, &[R::encode(1.0, f)])?;
            for _ in 0..8 {
                y = p.mul_fx(&y, &y)?;
            }
            Ok(y)
        })
    }

    /// Row-wise softmax of a `rows × cols` matrix (see the module docs).
    pub fn softmax(&mut self, x: &AShare<R>) -> Result<AShare<R>, MpcError> {
        let f = self.fixed_point().frac;
        let cols = x.cols;
        self.with_op("softmax", |p| {
            let m = p.max_rows(x)?;
            let d = p.sub(x, &p.broadcast_cols(&m, cols))?;
            let e = p.exp_nonpositive(&d)?;
            let s = p.sum_rows(&e);
            // 1/s for s ∈ [1, cols] by Newton from 1/cols.
            let c = cols.max(1) as f64;
            let rate = 1.0 - 1.0 / c;
            let mut iters = 0;
            let mut err = rate;
            while err > (-(f as f64)).exp2() && iters < 20 {
                err *= err;
                iters += 1;
            }
            let mut y = p.share_public(s.rows, 1, &vec![R::encode(1.0 / c, f); s.rows])?;
            let two = R::encode(2.0, f);
            for _ in 0..iters {
                let sy = p.mul_fx(&s, &y)?;
                let neg = p.mul_public(&sy, R::ONE.neg());
                let t = p.add_public(&neg, &[two])?;
                y = p.mul_fx(&y, &t)?;
            }
            let inv = p.broadcast_cols(&y, cols);
            p.mul_fx(&e, &inv)
        })
    }
}
