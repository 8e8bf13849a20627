//! Parameter-free element-wise activations, polynomial activations,
//! Flatten and Softmax.

use super::{expect_rank, expect_same, Param};
use crate::{NnError, Tensor};
use ndarray::{Axis, Zip};

/// Which element-wise function.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ActivationKind {
    /// max(x, 0).
    Relu,
    /// x² (HE-friendly, CryptoNets).
    Square,
    /// 1 / (1 + e^−x).
    Sigmoid,
    /// tanh x.
    Tanh,
    /// x·Φ(x), Φ the standard normal CDF (PyTorch's default `nn.GELU`).
    Gelu,
    /// max(x, 0) + slope·min(x, 0) (`nn.LeakyReLU(negative_slope)`).
    LeakyRelu(f32),
}

/// GELU, `x·Φ(x)`.
pub(crate) fn gelu(v: f32) -> f32 {
    let x = f64::from(v);
    (0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))) as f32
}

/// GELU's derivative, `Φ(x) + x·φ(x)`.
fn gelu_grad(v: f32) -> f32 {
    let x = f64::from(v);
    let cdf = 0.5 * (1.0 + libm::erf(x / std::f64::consts::SQRT_2));
    let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
    (cdf + x * pdf) as f32
}

/// An element-wise activation layer.
#[derive(Clone, Debug)]
pub struct Activation {
    /// The function.
    pub kind: ActivationKind,
    /// Input (ReLU, Square, GELU) or output (Sigmoid, Tanh) of the last training
    /// forward pass: what the derivative needs.
    cache: Option<Tensor>,
}

impl Activation {
    /// A new activation layer.
    pub fn new(kind: ActivationKind) -> Self {
        Activation { kind, cache: None }
    }

    pub(crate) fn forward(&mut self, x: &Tensor, train: bool) -> Result<Tensor, NnError> {
        let y = match self.kind {
            ActivationKind::Relu => x.mapv(|v| v.max(0.0)),
            ActivationKind::Square => x.mapv(|v| v * v),
            ActivationKind::Sigmoid => x.mapv(sigmoid),
            ActivationKind::Tanh => x.mapv(f32::tanh),
            ActivationKind::Gelu => x.mapv(gelu),
            ActivationKind::LeakyRelu(a) => x.mapv(|v| if v > 0.0 { v } else { a * v }),
        };
        if train {
            self.cache = Some(match self.kind {
                ActivationKind::Relu
                | ActivationKind::Square
                | ActivationKind::Gelu
                | ActivationKind::LeakyRelu(_) => x.clone(),
                ActivationKind::Sigmoid | ActivationKind::Tanh => y.clone(),
            });
        }
        Ok(y)
    }

    pub(crate) fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor, NnError> {
        let c = self
            .cache
            .as_ref()
            .ok_or(NnError::NoForward("activation"))?;
        expect_same("activation gradient", c.shape(), grad_out)?;
        let mut dx = grad_out.clone();
        let kind = self.kind;
        Zip::from(&mut dx).and(c).par_for_each(|d, &v| {
            *d *= match kind {
                ActivationKind::Relu => {
                    if v > 0.0 {
                        1.0
                    } else {
                        0.0
                    }
                }
                ActivationKind::Square => 2.0 * v,
                ActivationKind::Sigmoid => v * (1.0 - v),
                ActivationKind::Tanh => 1.0 - v * v,
                ActivationKind::Gelu => gelu_grad(v),
                ActivationKind::LeakyRelu(a) => {
                    if v > 0.0 {
                        1.0
                    } else {
                        a
                    }
                }
            }
        });
        Ok(dx)
    }

    pub(crate) fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, NnError> {
        Ok(input.to_vec())
    }

    pub(crate) fn clear_cache(&mut self) {
        self.cache = None;
    }

    pub(crate) fn describe(&self) -> String {
        format!("{:?}", self.kind)
    }
}

/// Numerically stable logistic function.
pub(crate) fn sigmoid(v: f32) -> f32 {
    if v >= 0.0 {
        1.0 / (1.0 + (-v).exp())
    } else {
        let e = v.exp();
        e / (1.0 + e)
    }
}

/// `y = Σ_k a_k x^k` element-wise, one coefficient vector shared by all
/// elements (`coefficients` = `[a_0, …, a_d]`). With fixed coefficients it
/// is, for example, a least-squares approximation of ReLU on an interval;
/// with trainable ones the network learns its own HE-friendly activation.
#[derive(Clone, Debug)]
pub struct PolyActivation {
    /// `[d + 1]`, lowest degree first.
    pub coefficients: Param,
    input: Option<Tensor>,
    grad_out: Option<Tensor>,
}

impl PolyActivation {
    /// A polynomial activation; at least one coefficient.
    pub fn new(coefficients: &[f32], trainable: bool) -> Result<Self, NnError> {
        if coefficients.is_empty() || coefficients.len() > 32 {
            return Err(NnError::Config(
                "a polynomial needs 1 to 32 coefficients".into(),
            ));
        }
        let mut p = Param::new(
            Tensor::from_shape_vec(ndarray::IxDyn(&[coefficients.len()]), coefficients.to_vec())
                .map_err(|e| NnError::Config(e.to_string()))?,
        );
        p.trainable = trainable;
        Ok(PolyActivation {
            coefficients: p,
            input: None,
            grad_out: None,
        })
    }

    /// The degree.
    pub fn degree(&self) -> usize {
        self.coefficients.value.len().saturating_sub(1)
    }

    fn coeffs(&self) -> Vec<f32> {
        self.coefficients.value.iter().copied().collect()
    }

    pub(crate) fn forward(&mut self, x: &Tensor, train: bool) -> Result<Tensor, NnError> {
        let a = self.coeffs();
        let y = x.mapv(|v| a.iter().rev().fold(0.0, |acc, &c| acc * v + c));
        if train {
            self.input = Some(x.clone());
        }
        Ok(y)
    }

    pub(crate) fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor, NnError> {
        let x = self
            .input
            .as_ref()
            .ok_or(NnError::NoForward("polynomial"))?;
        expect_same("polynomial gradient", x.shape(), grad_out)?;
        let a = self.coeffs();
        // Derivative coefficients k·a_k, lowest degree first.
        let da: Vec<f32> = a
            .iter()
            .enumerate()
            .skip(1)
            .map(|(k, &c)| k as f32 * c)
            .collect();
        let mut dx = grad_out.clone();
        Zip::from(&mut dx).and(x).par_for_each(|d, &v| {
            *d *= da.iter().rev().fold(0.0, |acc, &c| acc * v + c);
        });
        self.grad_out = Some(grad_out.clone());
        Ok(dx)
    }

    /// Per-example gradient of the coefficients: `Σ_j x_bj^k g_bj`.
    fn per_example(&self) -> Result<Vec<Vec<f32>>, NnError> {
        let (x, g) = match (&self.input, &self.grad_out) {
            (Some(x), Some(g)) => (x, g),
            _ => return Err(NnError::NoForward("polynomial")),
        };
        let n = self.coefficients.value.len();
        Ok(x.axis_iter(Axis(0))
            .zip(g.axis_iter(Axis(0)))
            .map(|(xb, gb)| {
                let mut acc = vec![0f32; n];
                for (&v, &gv) in xb.iter().zip(gb.iter()) {
                    let mut p = gv;
                    for a in acc.iter_mut() {
                        *a += p;
                        p *= v;
                    }
                }
                acc
            })
            .collect())
    }

    pub(crate) fn per_example_sq_norms(&self, out: &mut [f32]) -> Result<(), NnError> {
        if !self.coefficients.trainable {
            return Ok(());
        }
        let pe = self.per_example()?;
        if pe.len() != out.len() {
            return Err(NnError::shape(
                "polynomial norms",
                &[pe.len()],
                &[out.len()],
            ));
        }
        for (o, v) in out.iter_mut().zip(pe) {
            *o += v.iter().map(|a| a * a).sum::<f32>();
        }
        Ok(())
    }

    pub(crate) fn accumulate_grads(&mut self, weights: &[f32]) -> Result<(), NnError> {
        if !self.coefficients.trainable {
            return Ok(());
        }
        let pe = self.per_example()?;
        if pe.len() != weights.len() {
            return Err(NnError::shape(
                "polynomial weights",
                &[pe.len()],
                &[weights.len()],
            ));
        }
        for (v, &w) in pe.iter().zip(weights) {
            for (g, a) in self.coefficients.grad.iter_mut().zip(v) {
                *g += w * a;
            }
        }
        Ok(())
    }

    pub(crate) fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, NnError> {
        Ok(input.to_vec())
    }

    pub(crate) fn clear_cache(&mut self) {
        self.input = None;
        self.grad_out = None;
    }

    pub(crate) fn describe(&self) -> String {
        format!(
            "Poly(degree {}, {})",
            self.degree(),
            if self.coefficients.trainable {
                "trainable"
            } else {
                "fixed"
            }
        )
    }
}

/// Flattens all axes after the batch axis, in C order (as `nn.Flatten`).
#[derive(Clone, Debug, Default)]
pub struct Flatten {
    input_shape: Option<Vec<usize>>,
}

impl Flatten {
    /// A new flatten layer.
    pub fn new() -> Self {
        Flatten::default()
    }

    pub(crate) fn forward(&mut self, x: &Tensor, train: bool) -> Result<Tensor, NnError> {
        let b = x.shape().first().copied().unwrap_or(0);
        let rest: usize = x.shape().iter().skip(1).product();
        if train {
            self.input_shape = Some(x.shape().to_vec());
        }
        x.as_standard_layout()
            .into_owned()
            .into_shape_with_order(ndarray::IxDyn(&[b, rest]))
            .map_err(|e| NnError::Config(e.to_string()))
    }

    pub(crate) fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor, NnError> {
        let s = self
            .input_shape
            .as_ref()
            .ok_or(NnError::NoForward("Flatten"))?;
        let rest: usize = s.iter().skip(1).product();
        expect_same(
            "Flatten gradient",
            &[s.first().copied().unwrap_or(0), rest],
            grad_out,
        )?;
        grad_out
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order(ndarray::IxDyn(s))
            .map_err(|e| NnError::Config(e.to_string()))
    }

    pub(crate) fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, NnError> {
        Ok(vec![input.iter().product()])
    }

    pub(crate) fn clear_cache(&mut self) {
        self.input_shape = None;
    }

    pub(crate) fn describe(&self) -> String {
        "Flatten".into()
    }
}

/// Softmax over the last axis of a `[B, K]` batch. For training with
/// cross-entropy, end the model with logits and use
/// [`crate::loss::Loss::CrossEntropy`] instead (it is fused and stable).
#[derive(Clone, Debug, Default)]
pub struct Softmax {
    output: Option<Tensor>,
}

impl Softmax {
    /// A new softmax layer.
    pub fn new() -> Self {
        Softmax::default()
    }

    pub(crate) fn forward(&mut self, x: &Tensor, train: bool) -> Result<Tensor, NnError> {
        expect_rank(x, 2, "Softmax")?;
        let mut y = x.clone();
        for mut row in y.axis_iter_mut(Axis(0)) {
            softmax_in_place(row.as_slice_mut().unwrap_or(&mut []));
        }
        if train {
            self.output = Some(y.clone());
        }
        Ok(y)
    }

    pub(crate) fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor, NnError> {
        let s = self.output.as_ref().ok_or(NnError::NoForward("Softmax"))?;
        expect_same("Softmax gradient", s.shape(), grad_out)?;
        let mut dx = grad_out.clone();
        for (mut d, sr) in dx.axis_iter_mut(Axis(0)).zip(s.axis_iter(Axis(0))) {
            let dot: f32 = d.iter().zip(sr.iter()).map(|(a, b)| a * b).sum();
            Zip::from(&mut d)
                .and(&sr)
                .for_each(|dv, &sv| *dv = sv * (*dv - dot));
        }
        Ok(dx)
    }

    pub(crate) fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, NnError> {
        if input.len() != 1 {
            return Err(NnError::Config(format!(
                "Softmax expects flat inputs, got {input:?}"
            )));
        }
        Ok(input.to_vec())
    }

    pub(crate) fn clear_cache(&mut self) {
        self.output = None;
    }

    pub(crate) fn describe(&self) -> String {
        "Softmax".into()
    }
}

/// Stable in-place softmax of one row.
pub(crate) fn softmax_in_place(row: &mut [f32]) {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - m).exp();
        sum += *v;
    }
    if sum > 0.0 {
        for v in row.iter_mut() {
            *v /= sum;
        }
    }
}
