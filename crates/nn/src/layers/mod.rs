//! Layers with forward, backward and per-example gradient norms.
//!
//! Every layer works on a batch (first axis). Training follows four calls:
//! [`Layer::forward`] with `train = true` caches what the backward pass
//! needs; [`Layer::backward`] takes the gradient of the loss of each example
//! with respect to the layer's output (one slice per example, *not* averaged)
//! and returns the gradient with respect to its input; then
//! [`Layer::per_example_sq_norms`] (DP-SGD only) adds each example's squared
//! parameter-gradient norm, and [`Layer::accumulate_grads`] adds
//! `Σ_b w_b ∇θ ℓ_b` to the parameters' gradients. Plain training uses
//! `w_b = 1/B`; DP-SGD uses the clipping factors. Per-example norms come
//! from the layers' own algebra (ghost norms for Dense, unfolded inputs for
//! Conv2d, cached per-step gradients for LSTM and GRU), never from
//! per-example backward passes.

mod activation;
mod conv;
mod dense;
mod norm;
mod pool;
mod recurrent;
mod reshape;

pub(crate) use activation::{sigmoid, softmax_in_place};
pub use activation::{Activation, ActivationKind, Flatten, PolyActivation, Softmax};
pub use conv::Conv2d;
pub use dense::Dense;
pub use norm::BatchNorm;
pub use pool::{Pool2d, PoolKind};
pub use recurrent::{CellKind, Recurrent};
pub use reshape::{Pad2d, Reshape};

use crate::{NnError, Tensor};

/// A trainable tensor and its accumulated gradient.
#[derive(Clone, Debug)]
pub struct Param {
    /// The values, in PyTorch's layout for the owning layer.
    pub value: Tensor,
    /// The gradient accumulated since the last [`Param::zero_grad`].
    pub grad: Tensor,
    /// Whether optimizers update it (fixed polynomial coefficients are not).
    pub trainable: bool,
}

impl Param {
    /// A trainable parameter with a zero gradient.
    pub fn new(value: Tensor) -> Self {
        let grad = Tensor::zeros(value.raw_dim());
        Param {
            value,
            grad,
            trainable: true,
        }
    }

    /// Resets the gradient to zero.
    pub fn zero_grad(&mut self) {
        self.grad.fill(0.0);
    }
}

/// One layer of a [`crate::Sequential`] model. The variants mirror PyTorch
/// modules one to one, so layer `i` here is module `i` of the equivalent
/// `nn.Sequential` and its parameters are named `"{i}.weight"`, `"{i}.bias"`.
#[derive(Clone, Debug)]
pub enum Layer {
    /// Fully connected layer (`nn.Linear`).
    Dense(Dense),
    /// 2-D convolution (`nn.Conv2d`).
    Conv2d(Conv2d),
    /// Average or max pooling (`nn.AvgPool2d`, `nn.MaxPool2d`).
    Pool2d(Pool2d),
    /// Flattens everything after the batch axis (`nn.Flatten`).
    Flatten(Flatten),
    /// Element-wise activation: ReLU, x², sigmoid, tanh.
    Activation(Activation),
    /// Polynomial activation with fixed or trainable coefficients.
    Poly(PolyActivation),
    /// Softmax over the last axis (`nn.Softmax(dim=-1)`).
    Softmax(Softmax),
    /// Constant padding of images (`nn.ZeroPad2d`, `nn.ConstantPad2d`).
    Pad2d(Pad2d),
    /// Reshape of each example (`x.view(-1, …)`).
    Reshape(Reshape),
    /// LSTM or GRU over `[steps, features]` inputs (`nn.LSTM`, `nn.GRU`).
    Recurrent(Box<Recurrent>),
    /// Batch normalization (`nn.BatchNorm1d`, `nn.BatchNorm2d`).
    BatchNorm(Box<BatchNorm>),
}

macro_rules! dispatch {
    ($self:ident, $l:ident => $e:expr) => {
        match $self {
            Layer::Dense($l) => $e,
            Layer::Conv2d($l) => $e,
            Layer::Pool2d($l) => $e,
            Layer::Flatten($l) => $e,
            Layer::Activation($l) => $e,
            Layer::Poly($l) => $e,
            Layer::Softmax($l) => $e,
            Layer::Pad2d($l) => $e,
            Layer::Reshape($l) => $e,
            Layer::Recurrent($l) => $e,
            Layer::BatchNorm($l) => $e,
        }
    };
}

impl Layer {
    /// Forward pass on a batch; with `train`, caches what
    /// [`Layer::backward`] needs.
    pub fn forward(&mut self, x: &Tensor, train: bool) -> Result<Tensor, NnError> {
        dispatch!(self, l => l.forward(x, train))
    }

    /// Backward pass: gradient with respect to the input from the
    /// per-example gradient with respect to the output.
    pub fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor, NnError> {
        dispatch!(self, l => l.backward(grad_out))
    }

    /// Adds each example's squared parameter-gradient norm to `out` (one
    /// entry per example of the last backward pass).
    pub fn per_example_sq_norms(&self, out: &mut [f32]) -> Result<(), NnError> {
        match self {
            Layer::Dense(l) => l.per_example_sq_norms(out),
            Layer::Conv2d(l) => l.per_example_sq_norms(out),
            Layer::Poly(l) => l.per_example_sq_norms(out),
            Layer::Recurrent(l) => l.per_example_sq_norms(out),
            Layer::BatchNorm(l) => l.per_example_sq_norms(out),
            _ => Ok(()),
        }
    }

    /// Adds `Σ_b weights[b] · ∇θ ℓ_b` to the parameter gradients.
    pub fn accumulate_grads(&mut self, weights: &[f32]) -> Result<(), NnError> {
        match self {
            Layer::Dense(l) => l.accumulate_grads(weights),
            Layer::Conv2d(l) => l.accumulate_grads(weights),
            Layer::Poly(l) => l.accumulate_grads(weights),
            Layer::Recurrent(l) => l.accumulate_grads(weights),
            Layer::BatchNorm(l) => l.accumulate_grads(weights),
            _ => Ok(()),
        }
    }

    /// Output shape (without the batch axis) for an input shape.
    pub fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, NnError> {
        dispatch!(self, l => l.output_shape(input))
    }

    /// The parameters with their PyTorch names (`"weight"`, `"bias"`, …).
    pub fn params(&self) -> Vec<(&'static str, &Param)> {
        match self {
            Layer::Dense(l) => vec![("weight", &l.weight), ("bias", &l.bias)],
            Layer::Conv2d(l) => vec![("weight", &l.weight), ("bias", &l.bias)],
            Layer::Poly(l) => vec![("coefficients", &l.coefficients)],
            Layer::Recurrent(l) => vec![
                ("weight_ih_l0", &l.weight_ih),
                ("weight_hh_l0", &l.weight_hh),
                ("bias_ih_l0", &l.bias_ih),
                ("bias_hh_l0", &l.bias_hh),
            ],
            Layer::BatchNorm(l) => vec![
                ("weight", &l.weight),
                ("bias", &l.bias),
                ("running_mean", &l.running_mean),
                ("running_var", &l.running_var),
            ],
            _ => Vec::new(),
        }
    }

    /// Mutable access to the parameters, in the order of [`Layer::params`].
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        match self {
            Layer::Dense(l) => vec![&mut l.weight, &mut l.bias],
            Layer::Conv2d(l) => vec![&mut l.weight, &mut l.bias],
            Layer::Poly(l) => vec![&mut l.coefficients],
            Layer::Recurrent(l) => vec![
                &mut l.weight_ih,
                &mut l.weight_hh,
                &mut l.bias_ih,
                &mut l.bias_hh,
            ],
            Layer::BatchNorm(l) => vec![
                &mut l.weight,
                &mut l.bias,
                &mut l.running_mean,
                &mut l.running_var,
            ],
            _ => Vec::new(),
        }
    }

    /// Drops cached activations (after training, or to free memory).
    pub fn clear_cache(&mut self) {
        dispatch!(self, l => l.clear_cache())
    }

    /// A short human-readable description, e.g. `Dense(784 → 10)`.
    pub fn describe(&self) -> String {
        dispatch!(self, l => l.describe())
    }
}

/// Checks that a batch tensor has `rank` axes and returns its shape.
pub(crate) fn expect_rank<'a>(
    x: &'a Tensor,
    rank: usize,
    ctx: &str,
) -> Result<&'a [usize], NnError> {
    if x.ndim() != rank {
        return Err(NnError::Config(format!(
            "{ctx} expects a rank-{rank} batch, got shape {:?}",
            x.shape()
        )));
    }
    Ok(x.shape())
}

/// Checks that a gradient has the same shape as the cached output.
pub(crate) fn expect_same(ctx: &str, expected: &[usize], got: &Tensor) -> Result<(), NnError> {
    if expected != got.shape() {
        return Err(NnError::shape(ctx, expected, got.shape()));
    }
    Ok(())
}

/// PyTorch's default initialisation for Linear and Conv2d
/// (`kaiming_uniform_(a=√5)` for weights, which is U(−1/√fan_in, 1/√fan_in),
/// and the same bound for biases).
pub(crate) fn torch_uniform(
    shape: &[usize],
    fan_in: usize,
    rng: &mut dyn rand_core::RngCore,
) -> Tensor {
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    Tensor::from_shape_fn(ndarray::IxDyn(shape), |_| {
        // 24 random bits → uniform in [0, 1).
        let u = (rng.next_u32() >> 8) as f64 / (1u32 << 24) as f64;
        ((2.0 * u - 1.0) * bound) as f32
    })
}
