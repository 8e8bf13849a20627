//! Proven bounds on the noise of a ciphertext, tracked operation by
//! operation, to size noise flooding ([`crate::Flooding`]) before a
//! decryption leaves the key holder and before an evaluated ciphertext goes
//! back to its owner ([`crate::Evaluator::sanitize`]).
//!
//! # What is bounded
//! A ciphertext `ct` at scale `Δ` whose computation has the ideal real
//! result `z` (the same operations on the real values) decrypts to
//! `Δ·z + a + e`, where
//! * `a` (**approximation error**) is a deterministic function of the
//!   inputs and of the circuit — encoding rounding and floating-point
//!   error, the rounding of constants — and reveals nothing about the
//!   secret key; it does reveal the circuit's plaintexts (e.g. a model's
//!   weights) to whoever knows `z`;
//! * `e` (**noise**) depends on the encryption randomness and on the secret
//!   key: encryption errors, the rounding of rescaling and key switching
//!   (`τ0 + τ1·s`), key-switching errors.
//!
//! [`NoiseBound`] carries bounds `‖e‖ ≤ noise()` and `‖a‖ ≤ approx()` in
//! the *canonical-embedding norm* `‖x‖ = max_j |x(ζ_j)|` over the `N`
//! primitive `2N`-th roots of unity. It is multiplicative
//! (`‖xy‖ ≤ ‖x‖‖y‖`), a slot's error is at most `‖e + a‖/Δ`, and by
//! Parseval it bounds the coefficients' 2-norm, `‖x‖₂ ≤ ‖x‖`, which is what
//! Gaussian flooding needs.
//!
//! # What is proven, and under what assumptions
//! Every rule below is a theorem, not an estimate: worst case, or — for
//! freshly sampled polynomials — a tail bound that fails with probability
//! at most `2^−tail_bits` per sampled polynomial; [`NoiseBound::failure_probability`]
//! adds these up (union bound). No ciphertext is ever measured.
//! * A polynomial with independent centred coefficients, each sub-Gaussian
//!   with variance proxy `v²` (the ternary secret and `v`: `v = 1` by
//!   Hoeffding; the σ = 3.2 error sampler: `v = σ`, a discrete Gaussian
//!   truncated symmetrically is σ-sub-Gaussian), has
//!   `‖x‖ ≤ v·T`, `T = 2·√(N·ln(2N·2^tail_bits))`, except with probability
//!   `2^−tail_bits` (each embedding's real and imaginary parts have proxy
//!   `≤ N·v²`; union over the `N/2` conjugate pairs).
//! * Fresh encryption: secret key `e`, so `noise ≤ σT`; public key
//!   `v·e_pk + e0 + e1·s` made over `Q ∪ P` and divided by `P` (`k`
//!   special primes), so `noise ≤ σT(2T + 1)/P + N·(k − 1/2)·(1 + T)`:
//!   ModDown rounds to nearest and its fast conversion adds `0 ≤ u < k`
//!   times `P`, so `|τ| ≤ k − 1/2` (five tail events, and one for the
//!   rounding's `τ1·s`); without special primes `σT(2T + 1)`.
//! * Encoding at scale `Δ` of values `|z| ≤ V`: rounding `≤ N/2` (1-norm of
//!   `N` roundings), floating-point FFT `≤ Δ·V·√(N/2)·log2 N·2^−50`.
//! * Rescaling by `q_l` (centred rounding, `|τ_i| ≤ 1/2`):
//!   `e' = e/q_l + τ0 + τ1·s`, `‖τ0 + τ1 s‖ ≤ (N/2)(1 + T)`.
//! * Key switching (hybrid, `dnum` digits `D_j` of `α` primes, special
//!   modulus `P` of `k` primes): the approximate ModUp makes digits
//!   `|d̃_j| < α·D_j`, so `‖Σ d̃_j e_j‖/P ≤ Σ_j N·α·D_j·σT/P`; the
//!   approximate ModDown rounds with `|τ| ≤ k`, adding `N·k·(1 + T)`.
//!   Rotations permute the embeddings and keep every norm.
//! * Products: `(ΔaZa + Ea)(ΔbZb + Eb)` with the multiplicativity of the
//!   norm; the secret-dependent part of a product of noise and
//!   approximation error is counted as noise.
//!
//! The assumptions are stated where they enter: independence of the
//! sampled polynomials (a CSPRNG), the error sampler's CDT table accurate
//! to 2^−63, IEEE double arithmetic in the encoder. The worst-case
//! rounding terms make the bounds 6–14 bits above what one run measures
//! (see the tests): that is the price of a proof.

use crate::error::CkksError;
use crate::params::CkksParams;
use cipherflow_ring::sampler::ERROR_STD_DEV;

/// Default failure probability `2^−40` per sampled polynomial of a bound.
pub const DEFAULT_TAIL_BITS: u32 = 40;

/// How a ciphertext was encrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fresh {
    /// Under the public key (`v·e_pk + e0 + e1·s` over `Q ∪ P`, divided by `P`).
    PublicKey,
    /// Under the secret key (`e`).
    SecretKey,
}

/// Proven bounds on a ciphertext's noise and approximation error (see the
/// module documentation). Operations mirror the evaluator's; each takes the
/// parameters and returns the bound of the result.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NoiseBound {
    noise: f64,
    approx: f64,
    input: f64,
    values: f64,
    scale: f64,
    failure: f64,
    tail_bits: u32,
}

/// `T = 2·√(N·ln(2N·2^tail))`: canonical bound of a polynomial with
/// independent 1-sub-Gaussian coefficients.
fn tail_factor(n: f64, tail_bits: u32) -> f64 {
    2.0 * (n * ((2.0 * n).ln() + f64::from(tail_bits) * std::f64::consts::LN_2)).sqrt()
}

fn encoding_error(n: f64, scale: f64, values: f64) -> f64 {
    n / 2.0 + scale * values * (n / 2.0).sqrt() * n.log2() * 2f64.powi(-50)
}

fn invalid(m: impl Into<String>) -> CkksError {
    CkksError::Flooding(m.into())
}

fn check_positive(name: &str, v: f64) -> Result<(), CkksError> {
    if !v.is_finite() || v < 0.0 {
        return Err(invalid(format!(
            "{name} must be finite and non-negative, got {v}"
        )));
    }
    Ok(())
}

impl NoiseBound {
    fn t(&self, params: &CkksParams) -> f64 {
        tail_factor(params.n() as f64, self.tail_bits)
    }

    fn delta(&self) -> f64 {
        2f64.powi(-(self.tail_bits as i32))
    }

    /// The bound of a fresh encryption of values `|z| ≤ values` at `scale`,
    /// each sampled polynomial's tail bound failing with probability at most
    /// `2^−tail_bits` (20..=128).
    pub fn fresh(
        params: &CkksParams,
        kind: Fresh,
        values: f64,
        scale: f64,
        tail_bits: u32,
    ) -> Result<Self, CkksError> {
        if !(20..=128).contains(&tail_bits) {
            return Err(invalid(format!("tail bits {tail_bits} not in 20..=128")));
        }
        check_positive("value bound", values)?;
        if !scale.is_finite() || scale < 1.0 {
            return Err(invalid(format!("scale {scale}")));
        }
        let n = params.n() as f64;
        let t = tail_factor(n, tail_bits);
        let te = ERROR_STD_DEV * t;
        let (noise, events) = match kind {
            Fresh::SecretKey => (te, 1.0),
            Fresh::PublicKey if params.p().is_empty() => (te * (2.0 * t + 1.0), 5.0),
            Fresh::PublicKey => {
                let log_p: f64 = params.p().iter().map(|&p| (p as f64).log2()).sum();
                let k = params.p().len() as f64;
                (
                    te * (2.0 * t + 1.0) / 2f64.powf(log_p) + n * (k - 0.5) * (1.0 + t),
                    6.0,
                )
            }
        };
        Ok(Self {
            noise,
            approx: 0.0,
            input: encoding_error(n, scale, values),
            values,
            scale,
            failure: events * 2f64.powi(-(tail_bits as i32)),
            tail_bits,
        })
    }

    /// A bound the caller states (e.g. from its own analysis of a circuit
    /// this module does not model), validated: finite, at least the noise
    /// of a fresh secret-key encryption (no ciphertext has less), at most
    /// `2^120`. The caller answers for it; its failure probability is taken
    /// as `failure`.
    pub fn stated(
        params: &CkksParams,
        noise: f64,
        approx: f64,
        values: f64,
        scale: f64,
        failure: f64,
    ) -> Result<Self, CkksError> {
        check_positive("noise", noise)?;
        check_positive("approximation error", approx)?;
        check_positive("value bound", values)?;
        if !(0.0..1.0).contains(&failure) {
            return Err(invalid(format!(
                "failure probability {failure} not in [0, 1)"
            )));
        }
        let floor = Self::fresh(params, Fresh::SecretKey, 0.0, 1.0, 20)?.noise;
        if noise < floor || noise > 2f64.powi(120) {
            return Err(invalid(format!(
                "stated noise bound 2^{:.1} outside [2^{:.1} (a fresh encryption), 2^120]",
                noise.log2(),
                floor.log2()
            )));
        }
        if !scale.is_finite() || scale < 1.0 {
            return Err(invalid(format!("scale {scale}")));
        }
        Ok(Self {
            noise,
            approx,
            input: 0.0,
            values,
            scale,
            failure,
            tail_bits: DEFAULT_TAIL_BITS,
        })
    }

    /// Bound on the canonical norm of the secret-dependent noise `e`.
    pub fn noise(&self) -> f64 {
        self.noise
    }

    /// `log2` of [`NoiseBound::noise`].
    pub fn noise_log2(&self) -> f64 {
        self.noise.log2()
    }

    /// Bound on the canonical norm of the approximation error `a`.
    pub fn approx(&self) -> f64 {
        self.approx
    }

    /// Bound on the error the *inputs'* encoding brought in (rounding and
    /// floating-point error of the data owner's own encoding, carried
    /// through the circuit). The owner knows its encoded inputs exactly, so
    /// this part is not flooded for circuit privacy; it counts for precision.
    pub fn input_error(&self) -> f64 {
        self.input
    }

    /// `noise + approx`: what circuit-privacy flooding must hide.
    pub fn total(&self) -> f64 {
        self.noise + self.approx
    }

    /// `noise + approx + input_error`: everything the decryption holds
    /// besides `Δ·z`.
    pub fn error(&self) -> f64 {
        self.noise + self.approx + self.input
    }

    /// Bound on the absolute values (slots) of the ideal result.
    pub fn values(&self) -> f64 {
        self.values
    }

    /// The tail bound's security parameter: each sampled polynomial's
    /// bound fails with probability at most `2^−tail_bits`.
    pub fn tail_bits(&self) -> u32 {
        self.tail_bits
    }

    /// The scale.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Probability that one of the tail bounds used fails (union bound).
    pub fn failure_probability(&self) -> f64 {
        self.failure
    }

    /// A proven lower bound on the precision (bits) of the decrypted
    /// values: every slot is within `total()/scale` of the ideal result.
    pub fn precision_bits(&self) -> f64 {
        (self.scale / self.error()).log2()
    }

    fn same_scale(&self, o: &Self) -> Result<(), CkksError> {
        if (self.scale - o.scale).abs() > 1e-9 * self.scale.max(o.scale) {
            return Err(CkksError::ScaleMismatch(self.scale.log2(), o.scale.log2()));
        }
        Ok(())
    }

    /// `a + b` (or `a − b`).
    pub fn add(&self, o: &Self) -> Result<Self, CkksError> {
        self.same_scale(o)?;
        Ok(Self {
            noise: self.noise + o.noise,
            approx: self.approx + o.approx,
            input: self.input + o.input,
            values: self.values + o.values,
            scale: self.scale,
            failure: self.failure + o.failure,
            tail_bits: self.tail_bits.min(o.tail_bits),
        })
    }

    /// `ct + pt` for a plaintext of values `|w| ≤ values` at the ciphertext's scale.
    pub fn add_plain(&self, params: &CkksParams, values: f64) -> Result<Self, CkksError> {
        check_positive("value bound", values)?;
        Ok(Self {
            approx: self.approx + encoding_error(params.n() as f64, self.scale, values),
            values: self.values + values,
            ..*self
        })
    }

    /// `ct + v` ([`crate::Evaluator::add_const`]: `v·Δ` rounded).
    pub fn add_const(&self, v: f64) -> Result<Self, CkksError> {
        check_positive("|constant|", v.abs())?;
        Ok(Self {
            approx: self.approx + 0.5,
            values: self.values + v.abs(),
            ..*self
        })
    }

    /// `ct · pt` for a plaintext of values `|w| ≤ values` encoded at `pt_scale`.
    pub fn mul_plain(
        &self,
        params: &CkksParams,
        values: f64,
        pt_scale: f64,
    ) -> Result<Self, CkksError> {
        check_positive("value bound", values)?;
        let r = encoding_error(params.n() as f64, pt_scale, values);
        let p = pt_scale * values + r;
        Ok(Self {
            noise: self.noise * p,
            approx: self.approx * p + self.scale * self.values * r,
            input: self.input * p,
            values: self.values * values,
            scale: self.scale * pt_scale,
            ..*self
        })
    }

    /// `ct · v` ([`crate::Evaluator::mul_const`]: `v` encoded at `q_l`, rounded).
    pub fn mul_const(&self, params: &CkksParams, level: usize, v: f64) -> Result<Self, CkksError> {
        let ql = *params
            .q()
            .get(level)
            .ok_or(CkksError::InvalidLevel(level))? as f64;
        let k = v.abs() * ql + 0.5;
        Ok(Self {
            noise: self.noise * k,
            approx: self.approx * k + self.scale * self.values * 0.5,
            input: self.input * k,
            values: self.values * v.abs(),
            scale: self.scale * ql,
            ..*self
        })
    }

    /// One term of [`crate::Evaluator::linear_combination`]: `ct` times the
    /// integer `round(v·new_scale/scale)`, so the result has scale
    /// `new_scale` (the rounding of the constant is approximation error).
    pub fn mul_const_at(&self, v: f64, new_scale: f64) -> Result<Self, CkksError> {
        check_positive("|constant|", v.abs())?;
        if !new_scale.is_finite() || new_scale < 1.0 {
            return Err(invalid(format!("scale {new_scale}")));
        }
        let ratio = new_scale / self.scale;
        let k = v.abs() * ratio + 0.5;
        Ok(Self {
            noise: self.noise * k,
            approx: self.approx * k + self.scale * self.values * 0.5,
            input: self.input * k,
            values: self.values * v.abs(),
            scale: new_scale,
            ..*self
        })
    }

    /// The same bound with the value bound replaced by `values`, for a
    /// result whose values the caller bounds better than the operations
    /// can (a Chebyshev polynomial `|T_i(u)| ≤ 1` for `|u| ≤ 1`). The
    /// caller answers for the premise; the noise terms are unchanged.
    pub fn with_values(&self, values: f64) -> Result<Self, CkksError> {
        check_positive("value bound", values)?;
        Ok(Self { values, ..*self })
    }

    /// A bound that holds for both `self` and `o` (each term the larger;
    /// the failure probabilities add up, a union bound): the bound of a
    /// tensor whose ciphertexts are bounded by `self` and `o`.
    pub fn worst(&self, o: &Self) -> Result<Self, CkksError> {
        self.same_scale(o)?;
        Ok(Self {
            noise: self.noise.max(o.noise),
            approx: self.approx.max(o.approx),
            input: self.input.max(o.input),
            values: self.values.max(o.values),
            scale: self.scale,
            failure: self.failure + o.failure,
            tail_bits: self.tail_bits.min(o.tail_bits),
        })
    }

    /// [`crate::Evaluator::rescale`] from `level` (divides by `q_level`).
    pub fn rescale(&self, params: &CkksParams, level: usize) -> Result<Self, CkksError> {
        if level == 0 {
            return Err(CkksError::NoLevelLeft(0));
        }
        let ql = *params
            .q()
            .get(level)
            .ok_or(CkksError::InvalidLevel(level))? as f64;
        let n = params.n() as f64;
        Ok(Self {
            noise: self.noise / ql + n / 2.0 * (1.0 + self.t(params)),
            approx: self.approx / ql,
            input: self.input / ql,
            scale: self.scale / ql,
            failure: self.failure + self.delta(),
            ..*self
        })
    }

    /// The noise one key switching at `level` adds (relinearization, rotation).
    pub fn key_switch_noise(&self, params: &CkksParams, level: usize) -> Result<f64, CkksError> {
        let alpha = params.alpha();
        if alpha == 0 {
            return Err(CkksError::NoKeySwitching);
        }
        let q = params
            .q()
            .get(..=level)
            .ok_or(CkksError::InvalidLevel(level))?;
        let n = params.n() as f64;
        let t = self.t(params);
        let log_p: f64 = params.p().iter().map(|&p| (p as f64).log2()).sum();
        let digits: f64 = q
            .chunks(alpha)
            .map(|d| {
                let log_d: f64 = d.iter().map(|&x| (x as f64).log2()).sum();
                2f64.powf(log_d - log_p)
            })
            .sum();
        let k = params.p().len() as f64;
        Ok(n * alpha as f64 * ERROR_STD_DEV * t * digits + n * k * (1.0 + t))
    }

    fn with_key_switch(&self, params: &CkksParams, level: usize) -> Result<Self, CkksError> {
        let digits = (level + 1).div_ceil(params.alpha().max(1)) as f64;
        Ok(Self {
            noise: self.noise + self.key_switch_noise(params, level)?,
            failure: self.failure + (digits + 1.0) * self.delta(),
            ..*self
        })
    }

    /// A rotation or conjugation at `level`.
    pub fn rotate(&self, params: &CkksParams, level: usize) -> Result<Self, CkksError> {
        self.with_key_switch(params, level)
    }

    /// `relinearize(a · b)` at `level` (before rescaling).
    pub fn mul_relin(
        &self,
        o: &Self,
        params: &CkksParams,
        level: usize,
    ) -> Result<Self, CkksError> {
        let ma = self.scale * self.values;
        let mb = o.scale * o.values;
        let (na, aa, ia) = (self.noise, self.approx, self.input);
        let (nb, ab, ib) = (o.noise, o.approx, o.input);
        let prod = Self {
            noise: ma * nb + mb * na + na * (nb + ab + ib) + (aa + ia) * nb,
            approx: ma * ab + mb * aa + aa * (ab + ib) + ia * ab,
            input: ma * ib + mb * ia + ia * ib,
            values: self.values * o.values,
            scale: self.scale * o.scale,
            failure: self.failure + o.failure,
            tail_bits: self.tail_bits.min(o.tail_bits),
        };
        prod.with_key_switch(params, level)
    }

    /// [`crate::Evaluator::inner_sum`] over a window of `n` slots at `level`.
    pub fn inner_sum(
        &self,
        params: &CkksParams,
        level: usize,
        n: usize,
    ) -> Result<Self, CkksError> {
        let mut acc = *self;
        let mut k = 1usize;
        while k < n {
            let r = acc.rotate(params, level)?;
            acc = acc.add(&r)?;
            k <<= 1;
        }
        Ok(acc)
    }

    /// The bound after [`crate::Evaluator::sanitize`] with flooding of
    /// standard deviation `sigma` (grid step `w`): a fresh public-key
    /// encryption of zero and the flooding noise are added to the noise;
    /// the flooding term is bounded like a sampled polynomial with variance
    /// proxy `(σ + w)²`.
    pub fn after_flooding(
        &self,
        params: &CkksParams,
        sigma: f64,
        grid: f64,
        fresh_zero: bool,
    ) -> Self {
        let t = self.t(params);
        let te = ERROR_STD_DEV * t;
        let zero = if fresh_zero {
            te * (2.0 * t + 1.0)
        } else {
            0.0
        };
        let events = if fresh_zero { 6.0 } else { 1.0 };
        Self {
            noise: self.noise + zero + (sigma + grid) * t,
            failure: self.failure + events * self.delta(),
            ..*self
        }
    }
}
