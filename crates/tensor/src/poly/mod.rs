//! Polynomial evaluation on ciphertexts at minimal depth in the Chebyshev
//! basis, and polynomial approximations of activation functions.
//!
//! A [`Polynomial`] is `p(x) = Σ c_i T_i(u)` with `u = (2x − (a + b)) /
//! (b − a)` on its interval `[a, b]` (Chebyshev coefficients: no
//! ill-conditioned conversion to monomials, so degrees up to 255 keep
//! their precision). `eval_ct` follows the Paterson–Stockmeyer variant
//! for the Chebyshev basis of Bossuat et al. (Eurocrypt 2021), as in
//! Lattigo's polynomial evaluator (see [`Schedule`]): baby steps
//! `T_1 … T_{2^l}`, giant steps `T_{2^l}, T_{2^{l+1}}, …`, recursive
//! division by the giant steps; depth exactly `⌈log2(d + 1)⌉` and about
//! `2√d + log2 d` ciphertext products instead of the `O(d log d)` of
//! power-by-power evaluation. Every constant is rounded at the scale that
//! lands its term exactly on the requested output scale.
//!
//! The map `x → u` costs one more level on a ciphertext when `[a, b] ≠
//! [−1, 1]`; the plan compiler folds it into the preceding linear layer
//! (or polynomial) instead, where it is free. Inputs must lie in `[a, b]`:
//! outside it `T_i(u)` grows like `(|u| + √(u² − 1))^i`.
//!
//! For tiny degrees the schedule degenerates into what a power-basis
//! evaluator would do (degree 2: one product; degree 3: two), so there is
//! a single evaluator for every degree.

mod bound;
mod eval;
mod schedule;

pub use eval::EvalStats;
pub use schedule::{ceil_log2, Schedule};

use crate::TensorError;
use cipherflow_ckks::{Ciphertext, CkksError, CkksParams, Evaluator, NoiseBound, RelinKey};
use schedule::degree_of;

/// Fitted coefficients below this fraction of the largest are set to 0.
const NEGLIGIBLE: f64 = 1e-13;

/// Most coefficients a polynomial may have (degree 255, depth 8).
pub const MAX_COEFFS: usize = 256;

/// An interval `[lo, hi]`; a bare `a` means `[−a, a]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    /// Lower end.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
}

impl From<f64> for Interval {
    fn from(a: f64) -> Self {
        Self { lo: -a, hi: a }
    }
}

impl From<(f64, f64)> for Interval {
    fn from((lo, hi): (f64, f64)) -> Self {
        Self { lo, hi }
    }
}

impl Interval {
    fn check(self) -> Result<Self, TensorError> {
        let w = self.hi - self.lo;
        if !(self.lo.is_finite()
            && self.hi.is_finite()
            && self.lo.abs() <= 1e6
            && self.hi.abs() <= 1e6
            && w >= 1.0 / 512.0)
        {
            return Err(TensorError::Invalid(format!(
                "interval [{}, {}] (need lo < hi, width ≥ 2^-9, |ends| ≤ 1e6)",
                self.lo, self.hi
            )));
        }
        Ok(self)
    }

    /// `(α, β)` with `u = α x + β` mapping the interval onto `[−1, 1]`.
    pub fn to_unit(self) -> (f64, f64) {
        let w = self.hi - self.lo;
        (2.0 / w, -(self.hi + self.lo) / w)
    }

    fn is_unit(self) -> bool {
        self.lo == -1.0 && self.hi == 1.0
    }
}

/// A real polynomial in the Chebyshev basis of an interval.
#[derive(Clone, Debug, PartialEq)]
pub struct Polynomial {
    cheb: Vec<f64>,
    interval: Interval,
    schedule: Schedule,
}

/// Activation functions with polynomial approximations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Approx {
    /// max(x, 0).
    Relu,
    /// 1 / (1 + e^−x).
    Sigmoid,
    /// tanh x.
    Tanh,
    /// x·Φ(x) (tanh form, as in PyTorch's `approximate="tanh"`).
    Gelu,
    /// x·Φ(x) with the exact normal CDF (PyTorch's default `nn.GELU`).
    GeluErf,
    /// max(x, 0) + slope·min(x, 0) (`nn.LeakyReLU`).
    LeakyRelu(f64),
}

impl Approx {
    /// The approximation of a model's activation; `None` for x² (a
    /// polynomial already).
    pub fn of(kind: cipherflow_nn::layers::ActivationKind) -> Option<Self> {
        use cipherflow_nn::layers::ActivationKind as K;
        match kind {
            K::Relu => Some(Approx::Relu),
            K::Sigmoid => Some(Approx::Sigmoid),
            K::Tanh => Some(Approx::Tanh),
            K::Gelu => Some(Approx::GeluErf),
            K::LeakyRelu(a) => Some(Approx::LeakyRelu(f64::from(a))),
            K::Square => None,
        }
    }

    /// A short lower-case name (`relu`, `gelu`, `leaky_relu(0.01)`, …).
    pub fn name(self) -> String {
        match self {
            Approx::GeluErf | Approx::Gelu => "gelu".to_string(),
            Approx::LeakyRelu(a) => format!("leaky_relu({a})"),
            other => format!("{other:?}").to_lowercase(),
        }
    }

    /// The exact function.
    pub fn eval(self, x: f64) -> f64 {
        match self {
            Approx::Relu => x.max(0.0),
            Approx::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Approx::Tanh => x.tanh(),
            Approx::Gelu => {
                let k = (2.0 / std::f64::consts::PI).sqrt();
                0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())
            }
            Approx::GeluErf => 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)),
            Approx::LeakyRelu(a) => {
                if x > 0.0 {
                    x
                } else {
                    a * x
                }
            }
        }
    }
}

/// Chebyshev coefficients of `Σ p_i u^i` (Horner with `u·T_j = (T_{j+1} + T_{|j−1|}) / 2`).
fn power_to_chebyshev(p: &[f64]) -> Vec<f64> {
    let mut acc: Vec<f64> = Vec::with_capacity(p.len());
    for &pi in p.iter().rev() {
        let mut next = vec![0.0; acc.len() + 1];
        for (j, &a) in acc.iter().enumerate() {
            if j == 0 {
                if let Some(x) = next.get_mut(1) {
                    *x += a;
                }
            } else {
                if let Some(x) = next.get_mut(j + 1) {
                    *x += 0.5 * a;
                }
                if let Some(x) = next.get_mut(j - 1) {
                    *x += 0.5 * a;
                }
            }
        }
        if let Some(x) = next.first_mut() {
            *x += pi;
        }
        acc = next;
    }
    acc
}

impl Polynomial {
    /// `Σ coeffs[i] · x^i` (power basis, converted to the Chebyshev basis
    /// of `[−1, 1]`; no interval map is needed on ciphertexts).
    pub fn new(coeffs: &[f64]) -> Result<Self, TensorError> {
        Self::scaled(coeffs, 1.0)
    }

    /// `Σ coeffs[i] · (x / half_width)^i` on `[−half_width, half_width]`.
    pub fn scaled(coeffs: &[f64], half_width: f64) -> Result<Self, TensorError> {
        Self::check_coeffs(coeffs)?;
        Self::chebyshev(&power_to_chebyshev(coeffs), half_width)
    }

    /// `Σ coeffs[i] · T_i(u)` on `interval` (`u` its map onto `[−1, 1]`).
    pub fn chebyshev(coeffs: &[f64], interval: impl Into<Interval>) -> Result<Self, TensorError> {
        Self::check_coeffs(coeffs)?;
        let interval = interval.into().check()?;
        Ok(Self {
            cheb: coeffs.to_vec(),
            interval,
            schedule: Schedule::plan(coeffs),
        })
    }

    fn check_coeffs(coeffs: &[f64]) -> Result<(), TensorError> {
        if coeffs.is_empty() || coeffs.len() > MAX_COEFFS || coeffs.iter().any(|c| !c.is_finite()) {
            return Err(TensorError::Invalid(format!(
                "a polynomial needs 1..={MAX_COEFFS} finite coefficients"
            )));
        }
        Ok(())
    }

    /// Chebyshev interpolation of `f` on `interval` (a bare `a`: `[−a, a]`)
    /// at the `degree + 1` Chebyshev nodes (near-minimax).
    pub fn chebyshev_fit(
        f: impl Fn(f64) -> f64,
        interval: impl Into<Interval>,
        degree: usize,
    ) -> Result<Self, TensorError> {
        if degree == 0 || degree >= MAX_COEFFS {
            return Err(TensorError::Invalid(format!(
                "degree must be in 1..={}",
                MAX_COEFFS - 1
            )));
        }
        let iv = interval.into().check()?;
        let (mid, half) = ((iv.lo + iv.hi) / 2.0, (iv.hi - iv.lo) / 2.0);
        let n = degree + 1;
        let theta: Vec<f64> = (0..n)
            .map(|k| std::f64::consts::PI * (k as f64 + 0.5) / n as f64)
            .collect();
        let fx: Vec<f64> = theta.iter().map(|t| f(mid + half * t.cos())).collect();
        if fx.iter().any(|v| !v.is_finite()) {
            return Err(TensorError::Invalid(
                "the function is not finite on the interval".into(),
            ));
        }
        let mut cheb: Vec<f64> = (0..n)
            .map(|j| {
                let s: f64 = theta
                    .iter()
                    .zip(&fx)
                    .map(|(t, y)| y * (j as f64 * t).cos())
                    .sum();
                s * 2.0 / n as f64 * if j == 0 { 0.5 } else { 1.0 }
            })
            .collect();
        // Rounding noise (e.g. the even coefficients of an odd function)
        // would cost products and buy nothing: drop it.
        let big = cheb.iter().fold(0.0f64, |m, c| m.max(c.abs()));
        for c in &mut cheb {
            if c.abs() <= NEGLIGIBLE * big {
                *c = 0.0;
            }
        }
        Self::chebyshev(&cheb, iv)
    }

    /// A polynomial approximation of `f` on `interval` and its maximum
    /// absolute error there (measured on 20,001 evenly spaced points).
    pub fn approximate(
        f: Approx,
        interval: impl Into<Interval>,
        degree: usize,
    ) -> Result<(Self, f64), TensorError> {
        let p = Self::chebyshev_fit(|x| f.eval(x), interval, degree)?;
        let err = p.max_error(|x| f.eval(x), 20_001);
        Ok((p, err))
    }

    /// Maximum of `|p(x) − f(x)|` on `samples` evenly spaced points of the interval.
    pub fn max_error(&self, f: impl Fn(f64) -> f64, samples: usize) -> f64 {
        let Interval { lo, hi } = self.interval;
        let k = samples.max(2);
        (0..k)
            .map(|i| {
                let x = lo + (hi - lo) * i as f64 / (k - 1) as f64;
                (self.eval(x) - f(x)).abs()
            })
            .fold(0.0, f64::max)
    }

    /// Chebyshev coefficients `c_i` of `Σ c_i T_i(u)`, lowest first.
    pub fn coefficients(&self) -> &[f64] {
        &self.cheb
    }

    /// The interval `[a, b]`.
    pub fn interval(&self) -> Interval {
        self.interval
    }

    /// The evaluation schedule (baby steps, products).
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// Degree (highest non-zero coefficient; at least 1 for evaluation).
    pub fn degree(&self) -> usize {
        degree_of(&self.cheb).max(1)
    }

    /// Whether `eval_ct` maps `x → u` on the ciphertext (one level).
    pub fn maps_input(&self) -> bool {
        !self.interval.is_unit()
    }

    /// Levels consumed: `⌈log2(degree + 1)⌉`, plus one for `x → u` when
    /// the interval is not `[−1, 1]`.
    pub fn depth(&self) -> usize {
        self.schedule.depth() + usize::from(self.maps_input())
    }

    /// Ciphertext × ciphertext products per evaluation.
    pub fn products(&self) -> usize {
        self.schedule.products()
    }

    /// The same polynomial read on `[−1, 1]`: its input must already be
    /// `u` (the map `x → u` folded into whatever produces it).
    pub fn on_unit_interval(&self) -> Self {
        Self {
            interval: Interval { lo: -1.0, hi: 1.0 },
            ..self.clone()
        }
    }

    /// `α · p + β` (same interval): folds an affine map applied to this
    /// polynomial's output into its coefficients.
    pub fn then_affine(&self, alpha: f64, beta: f64) -> Result<Self, TensorError> {
        let mut c: Vec<f64> = self.cheb.iter().map(|v| v * alpha).collect();
        if let Some(c0) = c.first_mut() {
            *c0 += beta;
        }
        Self::chebyshev(&c, self.interval)
    }

    /// Plaintext evaluation (Clenshaw).
    pub fn eval(&self, x: f64) -> f64 {
        let (alpha, beta) = self.interval.to_unit();
        let u = alpha * x + beta;
        let (mut b1, mut b2) = (0.0, 0.0);
        for &c in self.cheb.iter().skip(1).rev() {
            (b1, b2) = (2.0 * u * b1 - b2 + c, b1);
        }
        u * b1 - b2 + self.cheb.first().copied().unwrap_or(0.0)
    }

    /// Evaluates on a ciphertext; the result is `depth()` levels lower and
    /// at exactly `out_scale`.
    pub fn eval_ct(
        &self,
        eval: &Evaluator,
        rlk: &RelinKey,
        x: &Ciphertext,
        out_scale: f64,
    ) -> Result<Ciphertext, TensorError> {
        Ok(self.eval_ct_stats(eval, rlk, x, out_scale)?.0)
    }

    /// The proven bound of [`Polynomial::eval_ct`]'s result at `out_scale`
    /// for an input bounded by `x` at `level`, under the premise that the
    /// input stays inside the interval (see `bound.rs`).
    pub fn bound(
        &self,
        params: &CkksParams,
        x: &NoiseBound,
        level: usize,
        out_scale: f64,
    ) -> Result<NoiseBound, TensorError> {
        if level < self.depth() {
            return Err(TensorError::Ckks(CkksError::NoLevelLeft(level)));
        }
        let (u, ulevel) = if self.maps_input() {
            let (alpha, beta) = self.interval.to_unit();
            let ql = *params
                .q()
                .get(level)
                .ok_or(TensorError::Ckks(CkksError::InvalidLevel(level)))?
                as f64;
            let t = x.mul_const_at(alpha, x.scale() * ql)?.add_const(beta)?;
            (t.rescale(params, level)?, level - 1)
        } else {
            (*x, level)
        };
        bound::BoundExec::new(params, u, ulevel, &self.schedule)?.run(&self.schedule, out_scale)
    }

    /// [`Polynomial::eval_ct`] with what it cost (levels, products).
    pub fn eval_ct_stats(
        &self,
        eval: &Evaluator,
        rlk: &RelinKey,
        x: &Ciphertext,
        out_scale: f64,
    ) -> Result<(Ciphertext, EvalStats), TensorError> {
        if x.level() < self.depth() {
            return Err(TensorError::Ckks(CkksError::NoLevelLeft(x.level())));
        }
        if !out_scale.is_finite() || out_scale < 1.0 {
            return Err(TensorError::Invalid(format!("output scale {out_scale}")));
        }
        let u = if self.maps_input() {
            let (alpha, beta) = self.interval.to_unit();
            let t = eval.mul_const_to_scale(x, alpha, x.scale())?;
            eval.rescale(&eval.add_const(&t, beta)?)?
        } else {
            x.clone()
        };
        let mut ex = eval::Exec::new(eval, rlk, u, &self.schedule)?;
        let out = ex.run(&self.schedule, out_scale)?;
        let stats = EvalStats {
            levels: x.level().saturating_sub(out.level()),
            products: ex.products,
        };
        Ok((out, stats))
    }
}
