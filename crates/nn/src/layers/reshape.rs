//! Layers that move values without parameters: constant padding of
//! images (`nn.ZeroPad2d`, `nn.ConstantPad2d`, `F.pad`) and reshaping
//! (`x.view(-1, …)`, e.g. an image's rows as a sequence for a recurrent
//! layer).

use super::{expect_rank, expect_same};
use crate::{NnError, Tensor};
use ndarray::{s, Array4, Ix4};

/// Constant padding of `[C, H, W]` inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct Pad2d {
    /// Rows added above.
    pub top: usize,
    /// Rows added below.
    pub bottom: usize,
    /// Columns added on the left.
    pub left: usize,
    /// Columns added on the right.
    pub right: usize,
    /// The value of the added entries.
    pub value: f32,
    input_hw: Option<(usize, usize)>,
}

/// The largest padding on one side (a bound against absurd model files).
const MAX_PAD: usize = 1 << 12;

impl Pad2d {
    /// A padding layer; each side at most 4096.
    pub fn new(
        top: usize,
        bottom: usize,
        left: usize,
        right: usize,
        value: f32,
    ) -> Result<Self, NnError> {
        if [top, bottom, left, right].iter().any(|&p| p > MAX_PAD) || !value.is_finite() {
            return Err(NnError::Config(format!(
                "padding ({top}, {bottom}, {left}, {right}) with value {value} is out of range"
            )));
        }
        Ok(Pad2d {
            top,
            bottom,
            left,
            right,
            value,
            input_hw: None,
        })
    }

    pub(crate) fn forward(&mut self, x: &Tensor, train: bool) -> Result<Tensor, NnError> {
        let shape = expect_rank(x, 4, "Pad2d")?;
        let (b, c, h, w) = (shape[0], shape[1], shape[2], shape[3]);
        let (ho, wo) = (h + self.top + self.bottom, w + self.left + self.right);
        let mut y = Array4::<f32>::from_elem((b, c, ho, wo), self.value);
        y.slice_mut(s![.., .., self.top..self.top + h, self.left..self.left + w])
            .assign(&x.view());
        if train {
            self.input_hw = Some((h, w));
        }
        Ok(y.into_dyn())
    }

    pub(crate) fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor, NnError> {
        let (h, w) = self.input_hw.ok_or(NnError::NoForward("Pad2d"))?;
        let shape = expect_rank(grad_out, 4, "Pad2d gradient")?;
        let (b, c) = (shape[0], shape[1]);
        expect_same(
            "Pad2d gradient",
            &[b, c, h + self.top + self.bottom, w + self.left + self.right],
            grad_out,
        )?;
        let g = grad_out
            .view()
            .into_dimensionality::<Ix4>()
            .map_err(|_| NnError::Config("Pad2d gradient".into()))?;
        Ok(
            g.slice(s![.., .., self.top..self.top + h, self.left..self.left + w])
                .to_owned()
                .into_dyn(),
        )
    }

    pub(crate) fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, NnError> {
        match input {
            &[c, h, w] => Ok(vec![
                c,
                h + self.top + self.bottom,
                w + self.left + self.right,
            ]),
            _ => Err(NnError::Config(format!(
                "Pad2d takes [channels, height, width] inputs, got {input:?}"
            ))),
        }
    }

    pub(crate) fn clear_cache(&mut self) {
        self.input_hw = None;
    }

    pub(crate) fn describe(&self) -> String {
        format!(
            "Pad2d(top {}, bottom {}, left {}, right {}, value {})",
            self.top, self.bottom, self.left, self.right, self.value
        )
    }
}

/// Reshapes each example to a fixed shape with the same number of values
/// (row-major, as `torch.Tensor.view`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reshape {
    /// The per-example output shape.
    pub shape: Vec<usize>,
    input: Option<Vec<usize>>,
}

impl Reshape {
    /// A reshape to `shape` (per example, positive sizes).
    pub fn new(shape: Vec<usize>) -> Result<Self, NnError> {
        let values = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&v| v <= 1 << 28);
        if shape.is_empty() || shape.contains(&0) || values.is_none() {
            return Err(NnError::Config(format!("invalid reshape target {shape:?}")));
        }
        Ok(Reshape { shape, input: None })
    }

    pub(crate) fn forward(&mut self, x: &Tensor, train: bool) -> Result<Tensor, NnError> {
        let b = x.shape().first().copied().unwrap_or(0);
        let mut to = vec![b];
        to.extend(&self.shape);
        let per: usize = x.shape().iter().skip(1).product();
        if per != self.shape.iter().product::<usize>() {
            return Err(NnError::shape("Reshape input", &to, x.shape()));
        }
        if train {
            self.input = Some(x.shape().to_vec());
        }
        x.as_standard_layout()
            .into_owned()
            .into_shape_with_order(ndarray::IxDyn(&to))
            .map_err(|e| NnError::Config(format!("Reshape: {e}")))
    }

    pub(crate) fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor, NnError> {
        let from = self.input.as_ref().ok_or(NnError::NoForward("Reshape"))?;
        if grad_out.len() != from.iter().product::<usize>() {
            return Err(NnError::shape("Reshape gradient", from, grad_out.shape()));
        }
        grad_out
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order(ndarray::IxDyn(from))
            .map_err(|e| NnError::Config(format!("Reshape gradient: {e}")))
    }

    pub(crate) fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, NnError> {
        let values = |s: &[usize]| s.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if values(input).is_none() || values(input) != values(&self.shape) {
            return Err(NnError::Config(format!(
                "cannot reshape {input:?} to {:?}: different numbers of values",
                self.shape
            )));
        }
        Ok(self.shape.clone())
    }

    pub(crate) fn clear_cache(&mut self) {
        self.input = None;
    }

    pub(crate) fn describe(&self) -> String {
        format!("Reshape({:?})", self.shape)
    }
}
