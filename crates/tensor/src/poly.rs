//! Polynomial evaluation on ciphertexts at minimal depth, and polynomial
//! approximations of activation functions.
//!
//! `p(u) = Σ c_i u^i` with `u = x / a` (`a` the interval half-width; one
//! extra level when `a ≠ 1`). Powers
//! `u^(2^k)` come from repeated squaring; each term is
//! `c_i·u^i = (c_i·u^lo)·u^hi` with `hi` the top bit of `i`, recursively,
//! the constant multiplied into the lowest factor. Every term then costs
//! `⌈log2(i + 1)⌉` levels, so the whole polynomial costs `⌈log2(d + 1)⌉`,
//! the minimum for degree `d`. Each constant is rounded at the scale that
//! makes its term land *exactly* on the requested output scale, so all
//! terms add without any scale fix-up (automatic scale bookkeeping).
//! This trades non-scalar multiplications (`O(d log d)` instead of
//! Paterson–Stockmeyer's `O(√d)`) for simplicity; for the degrees used in
//! networks (≤ 15) the depth, not the count, is what matters.

use crate::TensorError;
use cipherflow_ckks::{Ciphertext, Evaluator, RelinKey};

/// A real polynomial in `u = x / half_width`, lowest degree first.
#[derive(Clone, Debug, PartialEq)]
pub struct Polynomial {
    coeffs: Vec<f64>,
    half_width: f64,
}

/// Activation functions with polynomial approximations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Approx {
    /// max(x, 0).
    Relu,
    /// 1 / (1 + e^−x).
    Sigmoid,
    /// tanh x.
    Tanh,
    /// x·Φ(x) (tanh form, as in PyTorch's `approximate="tanh"`).
    Gelu,
}

impl Approx {
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
        }
    }
}

impl Polynomial {
    /// `Σ coeffs[i] · x^i`.
    pub fn new(coeffs: &[f64]) -> Result<Self, TensorError> {
        Self::scaled(coeffs, 1.0)
    }

    /// `Σ coeffs[i] · (x / half_width)^i`.
    pub fn scaled(coeffs: &[f64], half_width: f64) -> Result<Self, TensorError> {
        if coeffs.is_empty() || coeffs.len() > 64 || coeffs.iter().any(|c| !c.is_finite()) {
            return Err(TensorError::Invalid(
                "a polynomial needs 1..=64 finite coefficients".into(),
            ));
        }
        if !(half_width.is_finite() && (1.0 / 1024.0..=1e6).contains(&half_width)) {
            return Err(TensorError::Invalid(format!(
                "interval half-width {half_width}"
            )));
        }
        Ok(Self {
            coeffs: coeffs.to_vec(),
            half_width,
        })
    }

    /// Chebyshev interpolation of `f` on `[−a, a]` at `degree + 1` nodes,
    /// converted to the power basis of `u = x / a`.
    pub fn chebyshev_fit(
        f: impl Fn(f64) -> f64,
        a: f64,
        degree: usize,
    ) -> Result<Self, TensorError> {
        if degree == 0 || degree > 31 {
            return Err(TensorError::Invalid("degree must be in 1..=31".into()));
        }
        let n = degree + 1;
        let nodes: Vec<f64> = (0..n)
            .map(|k| (std::f64::consts::PI * (k as f64 + 0.5) / n as f64).cos())
            .collect();
        let fx: Vec<f64> = nodes.iter().map(|&u| f(a * u)).collect();
        // Chebyshev coefficients.
        let cheb: Vec<f64> = (0..n)
            .map(|j| {
                let s: f64 = nodes
                    .iter()
                    .zip(&fx)
                    .map(|(&u, &y)| y * (j as f64 * u.acos()).cos())
                    .sum();
                s * 2.0 / n as f64 * if j == 0 { 0.5 } else { 1.0 }
            })
            .collect();
        // T_j in the power basis: T_0 = 1, T_1 = u, T_{j+1} = 2u T_j − T_{j−1}.
        let mut coeffs = vec![0.0; n];
        let mut t_prev = vec![0.0; n];
        let mut t_cur = vec![0.0; n];
        if let Some(x) = t_prev.first_mut() {
            *x = 1.0;
        }
        if let Some(x) = t_cur.get_mut(1) {
            *x = 1.0;
        }
        for (j, &c) in cheb.iter().enumerate() {
            let t = if j == 0 { &t_prev } else { &t_cur };
            for (o, &v) in coeffs.iter_mut().zip(t.iter()) {
                *o += c * v;
            }
            if j >= 1 {
                let mut next = vec![0.0; n];
                for i in 0..n {
                    let up = if i > 0 {
                        2.0 * t_cur.get(i - 1).copied().unwrap_or(0.0)
                    } else {
                        0.0
                    };
                    if let Some(x) = next.get_mut(i) {
                        *x = up - t_prev.get(i).copied().unwrap_or(0.0);
                    }
                }
                t_prev = std::mem::replace(&mut t_cur, next);
            }
        }
        Self::scaled(&coeffs, a)
    }

    /// A polynomial approximation of `f` on `[−a, a]` and its maximum
    /// absolute error there (measured on 20,001 points).
    pub fn approximate(f: Approx, a: f64, degree: usize) -> Result<(Self, f64), TensorError> {
        let p = Self::chebyshev_fit(|x| f.eval(x), a, degree)?;
        let err = p.max_error(|x| f.eval(x), 20_001);
        Ok((p, err))
    }

    /// Maximum of `|p(x) − f(x)|` on `samples` evenly spaced points of `[−a, a]`.
    pub fn max_error(&self, f: impl Fn(f64) -> f64, samples: usize) -> f64 {
        let a = self.half_width;
        let k = samples.max(2);
        (0..k)
            .map(|i| {
                let x = -a + 2.0 * a * i as f64 / (k - 1) as f64;
                (self.eval(x) - f(x)).abs()
            })
            .fold(0.0, f64::max)
    }

    /// Coefficients in `u = x / half_width`, lowest first.
    pub fn coefficients(&self) -> &[f64] {
        &self.coeffs
    }

    /// The interval half-width `a`.
    pub fn half_width(&self) -> f64 {
        self.half_width
    }

    /// Degree (highest non-zero coefficient; at least 1 for evaluation).
    pub fn degree(&self) -> usize {
        self.coeffs
            .iter()
            .rposition(|c| *c != 0.0)
            .unwrap_or(0)
            .max(1)
    }

    /// Levels consumed: `⌈log2(degree + 1)⌉`, plus one for `x / a` when
    /// the half-width `a` is not 1.
    pub fn depth(&self) -> usize {
        ceil_log2(self.degree() + 1) + usize::from(self.half_width != 1.0)
    }

    /// Plaintext evaluation (Horner).
    pub fn eval(&self, x: f64) -> f64 {
        let u = x / self.half_width;
        self.coeffs.iter().rev().fold(0.0, |acc, &c| acc * u + c)
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
        let d = self.degree();
        if x.level() < self.depth() {
            return Err(TensorError::Ckks(cipherflow_ckks::CkksError::NoLevelLeft(
                x.level(),
            )));
        }
        let depth = ceil_log2(d + 1);
        // u = x / a costs one level (a constant product at an exact scale).
        // Reading x at the scale s·a would be free, but the inflated scale
        // then compounds through the squarings and ruins the precision of
        // the high powers; inside a network, fold 1/a into the preceding
        // linear layer instead and use a = 1.
        let u = if self.half_width == 1.0 {
            x.clone()
        } else {
            eval.rescale(&eval.mul_const_to_scale(x, 1.0 / self.half_width, x.scale())?)?
        };
        let top = u.level();
        // pows[k] = u^(2^k)
        let mut pows = vec![u];
        while (1usize << pows.len()) <= d {
            let last = pows
                .last()
                .ok_or_else(|| TensorError::Invalid("no power".into()))?;
            let sq = eval.rescale(&eval.mul_relin(last, last, rlk)?)?;
            pows.push(sq);
        }
        let out_level = top - depth;
        let mut acc: Option<Ciphertext> = None;
        for (i, &c) in self.coeffs.iter().enumerate().skip(1) {
            if c == 0.0 {
                continue;
            }
            let mut t = self.term(eval, rlk, &pows, top, c, i, out_scale)?;
            if t.level() > out_level {
                t = eval.drop_to_level(&t, out_level)?;
            }
            acc = Some(match acc {
                None => t,
                Some(a) => eval.add(&a, &t)?,
            });
        }
        let acc = match acc {
            Some(a) => a,
            None => {
                // Constant polynomial: 0·x at the right level and scale.
                let mut z = eval.rescale(&eval.mul_const_to_scale(&pows[0], 0.0, out_scale)?)?;
                if z.level() > out_level {
                    z = eval.drop_to_level(&z, out_level)?;
                }
                z
            }
        };
        let c0 = self.coeffs.first().copied().unwrap_or(0.0);
        Ok(eval.add_const(&acc, c0)?)
    }

    /// `c · u^i` at exactly scale `want`, `⌈log2(i+1)⌉` levels below `top`.
    #[allow(clippy::too_many_arguments)]
    fn term(
        &self,
        eval: &Evaluator,
        rlk: &RelinKey,
        pows: &[Ciphertext],
        top: usize,
        c: f64,
        i: usize,
        want: f64,
    ) -> Result<Ciphertext, TensorError> {
        let k = usize::BITS as usize - 1 - i.leading_zeros() as usize;
        let hi = 1usize << k;
        let lo = i - hi;
        let xh = pows
            .get(k)
            .ok_or_else(|| TensorError::Invalid(format!("missing power 2^{k}")))?;
        if lo == 0 {
            return Ok(eval.rescale(&eval.mul_const_to_scale(xh, c, want)?)?);
        }
        let lp = (top - ceil_log2(lo + 1)).min(xh.level());
        let q = *eval.params().q().get(lp).ok_or(TensorError::Ckks(
            cipherflow_ckks::CkksError::InvalidLevel(lp),
        ))? as f64;
        let t = self.term(eval, rlk, pows, top, c, lo, want * q / xh.scale())?;
        let t = if t.level() > lp {
            eval.drop_to_level(&t, lp)?
        } else {
            t
        };
        let h = if xh.level() > lp {
            eval.drop_to_level(xh, lp)?
        } else {
            xh.clone()
        };
        Ok(eval.rescale(&eval.mul_relin(&t, &h, rlk)?)?)
    }
}

/// `⌈log2 n⌉` for `n ≥ 1`.
pub fn ceil_log2(n: usize) -> usize {
    n.max(1).next_power_of_two().trailing_zeros() as usize
}
