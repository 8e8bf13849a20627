//! Sequential models.

use crate::layers::{Layer, Param};
use crate::{NnError, Tensor};
use std::fmt;

/// The most values one example may hold at any layer (2^24: 64 MiB of
/// `f32`), so that a model file cannot make a forward pass exhaust memory.
pub const MAX_VALUES_PER_EXAMPLE: usize = 1 << 24;

/// A stack of layers applied in order, like PyTorch's `nn.Sequential`:
/// layer `i`'s parameters are named `"{i}.weight"`, `"{i}.bias"`, … in
/// model files.
#[derive(Clone, Debug)]
pub struct Sequential {
    input_shape: Vec<usize>,
    layers: Vec<Layer>,
    output_shape: Vec<usize>,
}

impl Sequential {
    /// A model for inputs of `input_shape` (per example, without the batch
    /// axis, e.g. `[1, 28, 28]` or `[30]`); the layers' shapes are checked
    /// end to end.
    pub fn new(input_shape: Vec<usize>, layers: Vec<Layer>) -> Result<Self, NnError> {
        if input_shape.is_empty() || input_shape.contains(&0) {
            return Err(NnError::Config(format!(
                "invalid input shape {input_shape:?}"
            )));
        }
        let values = |s: &[usize]| {
            s.iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .filter(|&v| v <= MAX_VALUES_PER_EXAMPLE)
        };
        if values(&input_shape).is_none() {
            return Err(NnError::Config(format!(
                "input shape {input_shape:?} holds more than {MAX_VALUES_PER_EXAMPLE} values"
            )));
        }
        let mut shape = input_shape.clone();
        for (i, l) in layers.iter().enumerate() {
            shape = l
                .output_shape(&shape)
                .map_err(|e| NnError::Config(format!("layer {i} ({}): {e}", l.describe())))?;
            if values(&shape).is_none() {
                return Err(NnError::Config(format!(
                    "layer {i} ({}) outputs {shape:?}, more than {MAX_VALUES_PER_EXAMPLE} \
                     values per example",
                    l.describe()
                )));
            }
        }
        Ok(Sequential {
            input_shape,
            layers,
            output_shape: shape,
        })
    }

    /// Per-example input shape.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// Per-example output shape.
    pub fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    /// The first `k` layers and the rest, as two models (the second takes
    /// the first's output): the head and tail of a split inference.
    /// `k` must leave both non-empty.
    pub fn split_at(&self, k: usize) -> Result<(Sequential, Sequential), NnError> {
        if k == 0 || k >= self.layers.len() {
            return Err(NnError::Config(format!(
                "a split after layer {k} of a {}-layer model leaves an empty part (1..={})",
                self.layers.len(),
                self.layers.len().saturating_sub(1)
            )));
        }
        let (h, t) = self.layers.split_at(k);
        let head = Sequential::new(self.input_shape.clone(), h.to_vec())?;
        let tail = Sequential::new(head.output_shape.clone(), t.to_vec())?;
        Ok((head, tail))
    }

    /// The layers.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Mutable layers (to change weights; shapes must not change).
    pub fn layers_mut(&mut self) -> &mut [Layer] {
        &mut self.layers
    }

    /// Forward pass on a batch `[B, input_shape…]`; `train` caches what
    /// [`Sequential::backward`] needs.
    pub fn forward(&mut self, x: &Tensor, train: bool) -> Result<Tensor, NnError> {
        if x.shape().get(1..) != Some(self.input_shape.as_slice()) {
            let mut want = vec![x.shape().first().copied().unwrap_or(0)];
            want.extend(&self.input_shape);
            return Err(NnError::shape("model input", &want, x.shape()));
        }
        let mut h = self
            .layers
            .first_mut()
            .map_or(Ok(x.clone()), |l| l.forward(x, train))?;
        for l in self.layers.iter_mut().skip(1) {
            h = l.forward(&h, train)?;
        }
        Ok(h)
    }

    /// The largest `|x|` entering each layer on the batch `x`, by layer
    /// index: what an approximation of a non-polynomial activation must
    /// cover (calibration).
    pub fn input_bounds(&mut self, x: &Tensor) -> Result<Vec<f32>, NnError> {
        if x.shape().get(1..) != Some(self.input_shape.as_slice()) {
            let mut want = vec![x.shape().first().copied().unwrap_or(0)];
            want.extend(&self.input_shape);
            return Err(NnError::shape("model input", &want, x.shape()));
        }
        let mut bounds = Vec::with_capacity(self.layers.len());
        let mut h = x.clone();
        for l in self.layers.iter_mut() {
            bounds.push(h.iter().fold(0f32, |m, v| m.max(v.abs())));
            h = l.forward(&h, false)?;
        }
        Ok(bounds)
    }

    /// Inference: forward without caching.
    pub fn predict(&mut self, x: &Tensor) -> Result<Tensor, NnError> {
        self.forward(x, false)
    }

    /// Backward pass from per-example output gradients; returns the
    /// gradient with respect to the input.
    pub fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor, NnError> {
        let mut g = grad_out.clone();
        for l in self.layers.iter_mut().rev() {
            g = l.backward(&g)?;
        }
        Ok(g)
    }

    /// Each example's squared gradient norm over all parameters, from the
    /// last backward pass (`batch` examples).
    pub fn per_example_sq_norms(&self, batch: usize) -> Result<Vec<f32>, NnError> {
        let mut out = vec![0f32; batch];
        for l in &self.layers {
            l.per_example_sq_norms(&mut out)?;
        }
        Ok(out)
    }

    /// Adds `Σ_b weights[b] ∇θ ℓ_b` to every parameter gradient.
    pub fn accumulate_grads(&mut self, weights: &[f32]) -> Result<(), NnError> {
        for l in &mut self.layers {
            l.accumulate_grads(weights)?;
        }
        Ok(())
    }

    /// Zeroes every parameter gradient.
    pub fn zero_grad(&mut self) {
        for p in self.params_mut() {
            p.zero_grad();
        }
    }

    /// All parameters, in a stable order (layer by layer, then
    /// [`Layer::params`] order).
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.params_mut())
            .collect()
    }

    /// All parameters with their PyTorch names (`"0.weight"`, …).
    pub fn named_params(&self) -> Vec<(String, &Param)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| {
                l.params()
                    .into_iter()
                    .map(move |(n, p)| (format!("{i}.{n}"), p))
            })
            .collect()
    }

    /// Number of scalar parameters.
    pub fn num_params(&self) -> usize {
        self.named_params().iter().map(|(_, p)| p.value.len()).sum()
    }

    /// The same function for inference with every BatchNorm that follows a
    /// dense or convolutional layer folded into it (exactly: per channel
    /// `w' = w·γ/√(σ²+ε)`, `b' = (b − μ)·γ/√(σ²+ε) + β`); what encrypted
    /// and secret-shared inference run.
    pub fn folded(&self) -> Result<Sequential, NnError> {
        let mut out: Vec<Layer> = Vec::with_capacity(self.layers.len());
        for l in &self.layers {
            if let Layer::BatchNorm(b) = l {
                let aff = b.affine();
                let target = match out.last_mut() {
                    Some(Layer::Dense(d)) => Some((&mut d.weight.value, &mut d.bias.value)),
                    Some(Layer::Conv2d(c)) => Some((&mut c.weight.value, &mut c.bias.value)),
                    _ => None,
                };
                if let Some((w, bias)) = target.filter(|(_, bias)| bias.len() == aff.len()) {
                    let per = w.len() / aff.len().max(1);
                    for (k, v) in w.iter_mut().enumerate() {
                        let (s, _) = aff.get(k / per.max(1)).copied().unwrap_or((1.0, 0.0));
                        *v = (f64::from(*v) * s) as f32;
                    }
                    for (v, (s, t)) in bias.iter_mut().zip(&aff) {
                        *v = (f64::from(*v) * s + t) as f32;
                    }
                    continue;
                }
            }
            let mut l = l.clone();
            l.clear_cache();
            out.push(l);
        }
        Sequential::new(self.input_shape.clone(), out)
    }

    /// Drops every cached activation.
    pub fn clear_cache(&mut self) {
        for l in &mut self.layers {
            l.clear_cache();
        }
    }
}

impl fmt::Display for Sequential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Sequential(input {:?}, {} parameters)",
            self.input_shape,
            self.num_params()
        )?;
        for (i, l) in self.layers.iter().enumerate() {
            writeln!(f, "  ({i}) {}", l.describe())?;
        }
        Ok(())
    }
}
