//! Batch normalization (`nn.BatchNorm1d` on `[C]` inputs, `nn.BatchNorm2d`
//! on `[C, H, W]`), PyTorch's semantics: in training, each channel is
//! normalized by the batch's mean and (biased) variance and the running
//! statistics move by `momentum` (the running variance with the unbiased
//! estimate); at inference the running statistics are used. `weight` (γ)
//! and `bias` (β) are trained; `running_mean` and `running_var` are stored
//! as untrained parameters so model files carry them under PyTorch's names.
//!
//! DP-SGD refuses it: normalizing by batch statistics mixes the examples,
//! so an example's gradient is not its own (Opacus refuses it likewise).
//! Encrypted and secret-shared inference fold it into the preceding layer
//! ([`crate::Sequential::folded`]).

use super::{expect_same, Param};
use crate::{NnError, Tensor};
use ndarray::{Array1, Axis, Ix2};

/// Batch normalization over channels.
#[derive(Clone, Debug)]
pub struct BatchNorm {
    /// γ, `[C]`.
    pub weight: Param,
    /// β, `[C]`.
    pub bias: Param,
    /// Running mean, `[C]` (not trained).
    pub running_mean: Param,
    /// Running variance, `[C]` (not trained).
    pub running_var: Param,
    /// ε added to the variance.
    pub eps: f32,
    /// The weight of a batch in the running statistics.
    pub momentum: f32,
    /// Training forward: the normalized input (`[N·S, C]` channel-last)
    /// and 1/√(σ²+ε) per channel, with the input's shape.
    cache: Option<(ndarray::Array2<f32>, Array1<f32>, Vec<usize>)>,
    /// The last backward's dγ, dβ.
    grads: Option<(Array1<f32>, Array1<f32>)>,
}

/// `[B, C, S…]` as `[B·S, C]` (channels last), and back.
fn channels_last(x: &Tensor) -> Result<ndarray::Array2<f32>, NnError> {
    let shape = x.shape();
    let (b, c) = match shape {
        [b, c, ..] => (*b, *c),
        _ => {
            return Err(NnError::Config(format!(
                "BatchNorm takes [N, C] or [N, C, H, W] batches, got {shape:?}"
            )))
        }
    };
    let s: usize = shape.iter().skip(2).product();
    let v = x
        .view()
        .into_shape_with_order((b, c, s))
        .map_err(|e| NnError::Config(format!("BatchNorm input: {e}")))?;
    let t = v.permuted_axes([0, 2, 1]);
    t.as_standard_layout()
        .into_owned()
        .into_shape_with_order((b * s, c))
        .map_err(|e| NnError::Config(format!("BatchNorm input: {e}")))
}

fn channels_first(y: ndarray::Array2<f32>, shape: &[usize]) -> Result<Tensor, NnError> {
    let (b, c) = (
        shape.first().copied().unwrap_or(0),
        shape.get(1).copied().unwrap_or(0),
    );
    let s: usize = shape.iter().skip(2).product();
    let t = y
        .into_shape_with_order((b, s, c))
        .map_err(|e| NnError::Config(format!("BatchNorm output: {e}")))?;
    t.permuted_axes([0, 2, 1])
        .as_standard_layout()
        .into_owned()
        .into_shape_with_order(ndarray::IxDyn(shape))
        .map_err(|e| NnError::Config(format!("BatchNorm output: {e}")))
}

/// A per-channel parameter as a vector.
fn vector<'a>(p: &'a Param, what: &str) -> Result<ndarray::ArrayView1<'a, f32>, NnError> {
    p.value
        .view()
        .into_dimensionality::<ndarray::Ix1>()
        .map_err(|_| NnError::Config(format!("BatchNorm {what} is not a vector")))
}

fn not_per_example() -> NnError {
    NnError::Config(
        "BatchNorm mixes the examples of a batch, so an example's gradient is not its own: \
         DP-SGD cannot clip it. Remove BatchNorm (or fold a trained one) for DP-SGD"
            .into(),
    )
}

impl BatchNorm {
    /// γ = 1, β = 0, running mean 0 and variance 1 (PyTorch's defaults).
    pub fn new(channels: usize, eps: f32, momentum: f32) -> Result<Self, NnError> {
        if channels == 0 || !(eps > 0.0 && eps.is_finite()) || !(0.0..=1.0).contains(&momentum) {
            return Err(NnError::Config(format!(
                "BatchNorm needs channels > 0, eps > 0 and momentum in [0, 1]; got {channels}, \
                 {eps}, {momentum}"
            )));
        }
        let ones = Tensor::from_elem(ndarray::IxDyn(&[channels]), 1.0);
        let zeros = Tensor::zeros(ndarray::IxDyn(&[channels]));
        let fixed = |v: Tensor| Param {
            trainable: false,
            ..Param::new(v)
        };
        Ok(BatchNorm {
            weight: Param::new(ones.clone()),
            bias: Param::new(zeros.clone()),
            running_mean: fixed(zeros),
            running_var: fixed(ones),
            eps,
            momentum,
            cache: None,
            grads: None,
        })
    }

    /// Channels.
    pub fn channels(&self) -> usize {
        self.weight.value.len()
    }

    /// Per channel `(scale, shift)` of the inference map `y = scale·x + shift`.
    pub fn affine(&self) -> Vec<(f64, f64)> {
        let it = self
            .weight
            .value
            .iter()
            .zip(self.bias.value.iter())
            .zip(self.running_mean.value.iter())
            .zip(self.running_var.value.iter());
        it.map(|(((&g, &b), &m), &v)| {
            let s = f64::from(g) / (f64::from(v) + f64::from(self.eps)).sqrt();
            (s, f64::from(b) - s * f64::from(m))
        })
        .collect()
    }

    fn check(&self) -> Result<usize, NnError> {
        let c = self.channels();
        if [&self.bias, &self.running_mean, &self.running_var]
            .iter()
            .any(|p| p.value.shape() != [c])
        {
            return Err(NnError::Config(
                "BatchNorm parameters of different sizes".into(),
            ));
        }
        Ok(c)
    }

    pub(crate) fn forward(&mut self, x: &Tensor, train: bool) -> Result<Tensor, NnError> {
        let c = self.check()?;
        if x.shape().get(1) != Some(&c) {
            return Err(NnError::Config(format!(
                "BatchNorm of {c} channels on a batch of shape {:?}",
                x.shape()
            )));
        }
        let xs = channels_last(x)?;
        let n = xs.nrows();
        if !train {
            let mut y = xs;
            let aff = self.affine();
            for mut row in y.rows_mut() {
                for (v, (s, t)) in row.iter_mut().zip(&aff) {
                    *v = (f64::from(*v) * s + t) as f32;
                }
            }
            return channels_first(y, x.shape());
        }
        if n < 2 {
            return Err(NnError::Config(
                "BatchNorm in training needs more than one value per channel".into(),
            ));
        }
        let mean = xs.mean_axis(Axis(0)).unwrap_or_else(|| Array1::zeros(c));
        let centered = &xs - &mean;
        let var = centered
            .mapv(|v| v * v)
            .mean_axis(Axis(0))
            .unwrap_or_else(|| Array1::zeros(c));
        let inv_std = var.mapv(|v| 1.0 / (v + self.eps).sqrt());
        let xhat = &centered * &inv_std;
        let y = &xhat * &vector(&self.weight, "weight")? + vector(&self.bias, "bias")?;
        let m = self.momentum;
        let unbiased = n as f32 / (n as f32 - 1.0);
        for ((rm, rv), (&bm, &bv)) in self
            .running_mean
            .value
            .iter_mut()
            .zip(self.running_var.value.iter_mut())
            .zip(mean.iter().zip(var.iter()))
        {
            *rm = (1.0 - m) * *rm + m * bm;
            *rv = (1.0 - m) * *rv + m * bv * unbiased;
        }
        self.cache = Some((xhat, inv_std, x.shape().to_vec()));
        channels_first(y, x.shape())
    }

    pub(crate) fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor, NnError> {
        let (xhat, inv_std, shape) = self.cache.as_ref().ok_or(NnError::NoForward("BatchNorm"))?;
        expect_same("BatchNorm gradient", shape, grad_out)?;
        let dy = channels_last(grad_out)?;
        let n = dy.nrows() as f32;
        let gamma = vector(&self.weight, "weight")?;
        let dbeta = dy.sum_axis(Axis(0));
        let dgamma = (&dy * xhat).sum_axis(Axis(0));
        // dx = γ/σ · (dy − mean(dy) − x̂·mean(dy·x̂))
        let dx = (&dy - &(&dbeta / n) - &(xhat * &(&dgamma / n))) * &(&gamma * inv_std);
        self.grads = Some((dgamma, dbeta));
        let dx2 = dx
            .into_dimensionality::<Ix2>()
            .map_err(|_| NnError::Config("BatchNorm gradient".into()))?;
        channels_first(dx2, shape)
    }

    pub(crate) fn per_example_sq_norms(&self, _out: &mut [f32]) -> Result<(), NnError> {
        Err(not_per_example())
    }

    /// Plain training passes `1/B` for every example: the batch gradient.
    pub(crate) fn accumulate_grads(&mut self, weights: &[f32]) -> Result<(), NnError> {
        let (dg, db) = self.grads.as_ref().ok_or(NnError::NoForward("BatchNorm"))?;
        let w = weights.first().copied().unwrap_or(0.0);
        if weights
            .iter()
            .any(|&v| (v - w).abs() > 1e-6 * w.abs().max(1e-30))
        {
            return Err(not_per_example());
        }
        // The loss gradients were per example (not averaged): scale by w.
        for (g, v) in self.weight.grad.iter_mut().zip(dg) {
            *g += w * v;
        }
        for (g, v) in self.bias.grad.iter_mut().zip(db) {
            *g += w * v;
        }
        Ok(())
    }

    pub(crate) fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, NnError> {
        match input.first() {
            Some(&c) if c == self.channels() && (input.len() == 1 || input.len() == 3) => {
                Ok(input.to_vec())
            }
            _ => Err(NnError::Config(format!(
                "BatchNorm of {} channels takes [C] or [C, H, W] inputs, got {input:?}",
                self.channels()
            ))),
        }
    }

    pub(crate) fn clear_cache(&mut self) {
        self.cache = None;
        self.grads = None;
    }

    pub(crate) fn describe(&self) -> String {
        format!("BatchNorm({})", self.channels())
    }
}
