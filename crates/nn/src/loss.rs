//! Loss functions. Each returns the per-example losses and the per-example
//! gradients with respect to the model output (not averaged: the caller
//! weights examples, `1/B` for plain training, clipping factors for DP-SGD).

use crate::layers::{sigmoid, softmax_in_place};
use crate::{NnError, Tensor};
use ndarray::{Axis, Ix2};

/// What the model is trained to predict.
#[derive(Clone, Debug)]
pub enum Targets<'a> {
    /// A class index per example.
    Classes(&'a [usize]),
    /// A target vector per example, `[B, K]` (same shape as the output).
    Values(&'a Tensor),
}

/// A loss function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// Softmax followed by cross-entropy on `[B, K]` logits
    /// (`nn.CrossEntropyLoss`), class targets.
    CrossEntropy,
    /// Sigmoid followed by binary cross-entropy on `[B, 1]` logits
    /// (`nn.BCEWithLogitsLoss`), class targets 0 or 1.
    Logistic,
    /// Mean squared error over the output's `K` entries (`nn.MSELoss`);
    /// value targets, or class targets as one-hot vectors.
    Mse,
}

/// Per-example losses and output gradients.
#[derive(Clone, Debug)]
pub struct LossOutput {
    /// `ℓ_b` per example.
    pub losses: Vec<f32>,
    /// `∂ℓ_b / ∂y_b`, same shape as the output.
    pub grad: Tensor,
}

impl LossOutput {
    /// Mean loss over the batch.
    pub fn mean(&self) -> f32 {
        if self.losses.is_empty() {
            0.0
        } else {
            self.losses.iter().sum::<f32>() / self.losses.len() as f32
        }
    }
}

impl Loss {
    /// Loss and gradient for a batch of outputs `[B, K]`.
    pub fn compute(&self, output: &Tensor, targets: &Targets<'_>) -> Result<LossOutput, NnError> {
        let y = output.view().into_dimensionality::<Ix2>().map_err(|_| {
            NnError::Config(format!(
                "loss expects [B, K] outputs, got {:?}",
                output.shape()
            ))
        })?;
        let (b, k) = y.dim();
        let mut grad = y.to_owned();
        let mut losses = vec![0f32; b];
        match (self, targets) {
            (Loss::CrossEntropy, Targets::Classes(t)) => {
                check_classes(t, b, k)?;
                for ((mut g, l), &c) in grad.axis_iter_mut(Axis(0)).zip(&mut losses).zip(*t) {
                    let row = g
                        .as_slice_mut()
                        .ok_or(NnError::Config("loss layout".into()))?;
                    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f32>().ln();
                    *l = lse - row[c];
                    softmax_in_place(row);
                    row[c] -= 1.0;
                }
            }
            (Loss::Logistic, Targets::Classes(t)) => {
                if k != 1 {
                    return Err(NnError::Config(format!(
                        "logistic loss expects [B, 1] outputs, got [{b}, {k}]"
                    )));
                }
                check_classes(t, b, 2)?;
                for ((g, l), &c) in grad.iter_mut().zip(&mut losses).zip(*t) {
                    let z = *g;
                    let tv = c as f32;
                    // softplus(z) − t·z, computed stably.
                    *l = z.max(0.0) + (-z.abs()).exp().ln_1p() - tv * z;
                    *g = sigmoid(z) - tv;
                }
            }
            (Loss::Mse, targets) => {
                let tv: Tensor = match targets {
                    Targets::Values(v) => {
                        if v.shape() != [b, k] {
                            return Err(NnError::shape("MSE targets", &[b, k], v.shape()));
                        }
                        (*v).clone()
                    }
                    Targets::Classes(t) => {
                        check_classes(t, b, k)?;
                        let mut oh = Tensor::zeros(ndarray::IxDyn(&[b, k]));
                        for (i, &c) in t.iter().enumerate() {
                            oh[[i, c]] = 1.0;
                        }
                        oh
                    }
                };
                let tv = tv
                    .into_dimensionality::<Ix2>()
                    .map_err(|_| NnError::Config("MSE targets".into()))?;
                let inv = 1.0 / k.max(1) as f32;
                for ((mut g, l), trow) in grad
                    .axis_iter_mut(Axis(0))
                    .zip(&mut losses)
                    .zip(tv.axis_iter(Axis(0)))
                {
                    let mut s = 0.0;
                    for (gv, &t) in g.iter_mut().zip(trow.iter()) {
                        let d = *gv - t;
                        s += d * d;
                        *gv = 2.0 * d * inv;
                    }
                    *l = s * inv;
                }
            }
            (_, Targets::Values(_)) => {
                return Err(NnError::Config(format!("{self:?} needs class targets")));
            }
        }
        if losses.iter().any(|l| !l.is_finite()) {
            return Err(NnError::NonFinite("loss".into()));
        }
        Ok(LossOutput {
            losses,
            grad: grad.into_dyn(),
        })
    }
}

fn check_classes(t: &[usize], b: usize, k: usize) -> Result<(), NnError> {
    if t.len() != b {
        return Err(NnError::shape("targets", &[b], &[t.len()]));
    }
    if let Some(&c) = t.iter().find(|&&c| c >= k) {
        return Err(NnError::Config(format!(
            "class {c} out of range for {k} outputs"
        )));
    }
    Ok(())
}

/// Predicted classes: argmax of `[B, K]` outputs, or `output > 0` for a
/// single logistic output.
pub fn predict_classes(output: &Tensor) -> Vec<usize> {
    let k = output.shape().get(1).copied().unwrap_or(1);
    output
        .axis_iter(Axis(0))
        .map(|row| {
            if k == 1 {
                usize::from(row.iter().next().copied().unwrap_or(0.0) > 0.0)
            } else {
                row.iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
                        if v > bv {
                            (i, v)
                        } else {
                            (bi, bv)
                        }
                    })
                    .0
            }
        })
        .collect()
}
