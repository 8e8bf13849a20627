//! Fully connected layer `y = x Wᵀ + b` (PyTorch's `nn.Linear` layout:
//! `weight` is `[out, in]`, `bias` is `[out]`).

use super::{expect_rank, expect_same, torch_uniform, Param};
use crate::{NnError, Tensor};
use ndarray::{Array2, ArrayView2, Axis, Ix2};

/// Fully connected layer.
#[derive(Clone, Debug)]
pub struct Dense {
    /// `[out, in]`.
    pub weight: Param,
    /// `[out]`.
    pub bias: Param,
    input: Option<Array2<f32>>,
    grad_out: Option<Array2<f32>>,
}

impl Dense {
    /// A layer with PyTorch's default initialisation.
    pub fn new(inputs: usize, outputs: usize, rng: &mut dyn rand_core::RngCore) -> Self {
        let weight = torch_uniform(&[outputs, inputs], inputs, rng);
        let bias = torch_uniform(&[outputs], inputs, rng);
        Self::from_weights(weight, bias)
    }

    /// A layer with the given `[out, in]` weight and `[out]` bias (shapes
    /// are checked by [`Dense::try_from_weights`]).
    fn from_weights(weight: Tensor, bias: Tensor) -> Self {
        Dense {
            weight: Param::new(weight),
            bias: Param::new(bias),
            input: None,
            grad_out: None,
        }
    }

    /// A layer from explicit weights, checking their shapes.
    pub fn try_from_weights(weight: Tensor, bias: Tensor) -> Result<Self, NnError> {
        if weight.ndim() != 2 || bias.shape() != [weight.shape()[0]] {
            return Err(NnError::Config(format!(
                "Dense weights must be [out, in] and [out], got {:?} and {:?}",
                weight.shape(),
                bias.shape()
            )));
        }
        Ok(Self::from_weights(weight, bias))
    }

    /// Number of inputs.
    pub fn inputs(&self) -> usize {
        self.weight.value.shape().get(1).copied().unwrap_or(0)
    }

    /// Number of outputs.
    pub fn outputs(&self) -> usize {
        self.weight.value.shape().first().copied().unwrap_or(0)
    }

    fn w(&self) -> Result<ArrayView2<'_, f32>, NnError> {
        self.weight
            .value
            .view()
            .into_dimensionality::<Ix2>()
            .map_err(|_| NnError::Config("Dense weight is not a matrix".into()))
    }

    pub(crate) fn forward(&mut self, x: &Tensor, train: bool) -> Result<Tensor, NnError> {
        let shape = expect_rank(x, 2, "Dense")?;
        if shape[1] != self.inputs() {
            return Err(NnError::shape(
                "Dense input",
                &[shape[0], self.inputs()],
                shape,
            ));
        }
        let x2 = x
            .view()
            .into_dimensionality::<Ix2>()
            .map_err(|_| NnError::Config("Dense input".into()))?;
        let mut y = x2.dot(&self.w()?.t());
        let b = self.bias.value.view();
        for mut row in y.rows_mut() {
            row.zip_mut_with(&b, |v, &bv| *v += bv);
        }
        if train {
            self.input = Some(x2.to_owned());
        }
        Ok(y.into_dyn())
    }

    pub(crate) fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor, NnError> {
        let x = self.input.as_ref().ok_or(NnError::NoForward("Dense"))?;
        expect_same("Dense gradient", &[x.nrows(), self.outputs()], grad_out)?;
        let g = grad_out
            .view()
            .into_dimensionality::<Ix2>()
            .map_err(|_| NnError::Config("Dense gradient".into()))?
            .to_owned();
        let dx = g.dot(&self.w()?);
        self.grad_out = Some(g);
        Ok(dx.into_dyn())
    }

    fn cached(&self) -> Result<(&Array2<f32>, &Array2<f32>), NnError> {
        match (&self.input, &self.grad_out) {
            (Some(x), Some(g)) => Ok((x, g)),
            _ => Err(NnError::NoForward("Dense")),
        }
    }

    /// Ghost norm: the gradient of example `b` is `g_b x_bᵀ` (plus `g_b` for
    /// the bias), whose squared Frobenius norm is `‖g_b‖²(‖x_b‖² + 1)`.
    pub(crate) fn per_example_sq_norms(&self, out: &mut [f32]) -> Result<(), NnError> {
        let (x, g) = self.cached()?;
        if out.len() != x.nrows() {
            return Err(NnError::shape("Dense norms", &[x.nrows()], &[out.len()]));
        }
        for ((o, xr), gr) in out.iter_mut().zip(x.rows()).zip(g.rows()) {
            let xn: f32 = xr.iter().map(|v| v * v).sum();
            let gn: f32 = gr.iter().map(|v| v * v).sum();
            *o += gn * (xn + 1.0);
        }
        Ok(())
    }

    /// `dW += (w ⊙ G)ᵀ X`, `db += Σ_b w_b g_b`: one matrix product, the
    /// same cost as an unweighted backward pass.
    pub(crate) fn accumulate_grads(&mut self, weights: &[f32]) -> Result<(), NnError> {
        let (x, g) = self.cached()?;
        if weights.len() != x.nrows() {
            return Err(NnError::shape(
                "Dense weights",
                &[x.nrows()],
                &[weights.len()],
            ));
        }
        let mut gw = g.clone();
        for (mut row, &w) in gw.axis_iter_mut(Axis(0)).zip(weights) {
            row *= w;
        }
        let dw = gw.t().dot(x);
        let db = gw.sum_axis(Axis(0));
        self.weight.grad += &dw.into_dyn();
        self.bias.grad += &db.into_dyn();
        Ok(())
    }

    pub(crate) fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, NnError> {
        if input != [self.inputs()] {
            return Err(NnError::shape("Dense input", &[self.inputs()], input));
        }
        Ok(vec![self.outputs()])
    }

    pub(crate) fn clear_cache(&mut self) {
        self.input = None;
        self.grad_out = None;
    }

    pub(crate) fn describe(&self) -> String {
        format!("Dense({} → {})", self.inputs(), self.outputs())
    }
}
