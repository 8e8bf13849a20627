//! Recurrent layers, LSTM and GRU, in PyTorch's layout (`nn.LSTM`,
//! `nn.GRU` with `batch_first=True`, one layer, one direction).
//!
//! Per-example input `[T, F]` (T time steps of F features); the output is
//! the hidden state of every step `[T, H]` (`sequence`) or of the last one
//! `[H]` (what a classifier reads: `out[:, -1]` or `h_n[-1]` in PyTorch).
//! The parameters are `weight_ih_l0` `[G·H, F]`, `weight_hh_l0` `[G·H, H]`,
//! `bias_ih_l0` and `bias_hh_l0` `[G·H]`, gates stacked in PyTorch's order:
//! LSTM `i, f, g, o` (G = 4), GRU `r, z, n` (G = 3).
//!
//! Training is back-propagation through time. For DP-SGD each example's
//! gradient is `Σ_t δ_t x_tᵀ` (and `Σ_t δ'_t h_{t−1}ᵀ` for the recurrent
//! weights), computed from the cached per-step pre-activation gradients
//! without a per-example backward pass.

use super::{expect_rank, expect_same, sigmoid, torch_uniform, Param};
use crate::{NnError, Tensor};
use ndarray::{s, Array2, Array3, ArrayView2, Axis, Ix2, Ix3};

/// Which recurrent cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellKind {
    /// Long short-term memory (`nn.LSTM`), gates `i, f, g, o`.
    Lstm,
    /// Gated recurrent unit (`nn.GRU`), gates `r, z, n`, the reset gate
    /// applied after the recurrent product as PyTorch does.
    Gru,
}

impl CellKind {
    /// Number of stacked gates.
    pub fn gates(self) -> usize {
        match self {
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
        }
    }
}

/// What the forward pass of one batch keeps for back-propagation through
/// time (all `[B, T, ·]`).
#[derive(Clone, Debug)]
struct Cache {
    x: Array3<f32>,
    /// `h_{t−1}` for each step t.
    h_prev: Array3<f32>,
    /// LSTM: `c_{t−1}` and `c_t`; GRU: unused (empty).
    c_prev: Array3<f32>,
    c: Array3<f32>,
    /// Gate activations, `[B, T, G·H]`.
    gates: Array3<f32>,
    /// GRU: `W_hn h_{t−1} + b_hn`; LSTM: empty.
    hn: Array3<f32>,
    /// After backward: gradients of the input-side and recurrent-side
    /// pre-activations, `[B, T, G·H]`.
    d_ih: Option<Array3<f32>>,
    d_hh: Option<Array3<f32>>,
}

/// An LSTM or GRU layer.
#[derive(Clone, Debug)]
pub struct Recurrent {
    /// The cell.
    pub cell: CellKind,
    /// `[G·H, F]`.
    pub weight_ih: Param,
    /// `[G·H, H]`.
    pub weight_hh: Param,
    /// `[G·H]`.
    pub bias_ih: Param,
    /// `[G·H]`.
    pub bias_hh: Param,
    /// Whether the output is every step's hidden state (`[T, H]`) rather
    /// than the last one (`[H]`).
    pub sequence: bool,
    cache: Option<Box<Cache>>,
}

fn view2<'a>(t: &'a Tensor, what: &str) -> Result<ArrayView2<'a, f32>, NnError> {
    t.view()
        .into_dimensionality::<Ix2>()
        .map_err(|_| NnError::Config(format!("{what} is not a matrix")))
}

impl Recurrent {
    /// A layer with PyTorch's default initialisation (every weight and bias
    /// uniform in `±1/√H`).
    pub fn new(
        cell: CellKind,
        inputs: usize,
        hidden: usize,
        sequence: bool,
        rng: &mut dyn rand_core::RngCore,
    ) -> Result<Self, NnError> {
        if inputs == 0 || hidden == 0 {
            return Err(NnError::Config(
                "a recurrent layer needs positive input and hidden sizes".into(),
            ));
        }
        let gh = cell.gates() * hidden;
        let weight_ih = torch_uniform(&[gh, inputs], hidden, rng);
        let weight_hh = torch_uniform(&[gh, hidden], hidden, rng);
        let bias_ih = torch_uniform(&[gh], hidden, rng);
        let bias_hh = torch_uniform(&[gh], hidden, rng);
        Self::try_from_weights(cell, weight_ih, weight_hh, bias_ih, bias_hh, sequence)
    }

    /// A layer from explicit weights in PyTorch's layout, checking their
    /// shapes and values.
    pub fn try_from_weights(
        cell: CellKind,
        weight_ih: Tensor,
        weight_hh: Tensor,
        bias_ih: Tensor,
        bias_hh: Tensor,
        sequence: bool,
    ) -> Result<Self, NnError> {
        let g = cell.gates();
        let gh = match weight_ih.shape() {
            &[gh, f] if gh > 0 && f > 0 && gh.is_multiple_of(g) => gh,
            other => {
                return Err(NnError::Config(format!(
                    "{cell:?} weight_ih must be [{g}·hidden, inputs], got {other:?}"
                )))
            }
        };
        let h = gh / g;
        if weight_hh.shape() != [gh, h] || bias_ih.shape() != [gh] || bias_hh.shape() != [gh] {
            return Err(NnError::Config(format!(
                "{cell:?} weights must be [{gh}, F], [{gh}, {h}], [{gh}], [{gh}]; got {:?}, {:?}, {:?}, {:?}",
                weight_ih.shape(),
                weight_hh.shape(),
                bias_ih.shape(),
                bias_hh.shape()
            )));
        }
        if [&weight_ih, &weight_hh, &bias_ih, &bias_hh]
            .iter()
            .any(|t| t.iter().any(|v| !v.is_finite()))
        {
            return Err(NnError::Config(format!("{cell:?} weights are not finite")));
        }
        Ok(Recurrent {
            cell,
            weight_ih: Param::new(weight_ih),
            weight_hh: Param::new(weight_hh),
            bias_ih: Param::new(bias_ih),
            bias_hh: Param::new(bias_hh),
            sequence,
            cache: None,
        })
    }

    /// Input features per step.
    pub fn inputs(&self) -> usize {
        self.weight_ih.value.shape().get(1).copied().unwrap_or(0)
    }

    /// Hidden size.
    pub fn hidden(&self) -> usize {
        self.weight_hh.value.shape().get(1).copied().unwrap_or(0)
    }

    /// The parameter shapes agree with each other (they are public, so a
    /// caller may have replaced one).
    fn check(&self) -> Result<(), NnError> {
        let gh = self.cell.gates() * self.hidden();
        let ok = self.weight_ih.value.shape() == [gh, self.inputs()]
            && self.weight_hh.value.shape() == [gh, self.hidden()]
            && self.bias_ih.value.shape() == [gh]
            && self.bias_hh.value.shape() == [gh]
            && gh > 0;
        if ok {
            Ok(())
        } else {
            Err(NnError::Config(format!(
                "{:?} parameters of inconsistent shapes",
                self.cell
            )))
        }
    }

    pub(crate) fn forward(&mut self, x: &Tensor, train: bool) -> Result<Tensor, NnError> {
        self.check()?;
        let shape = expect_rank(x, 3, "recurrent layer")?;
        let (b, t, f) = (shape[0], shape[1], shape[2]);
        if f != self.inputs() || t == 0 {
            return Err(NnError::shape(
                "recurrent input",
                &[b, t.max(1), self.inputs()],
                shape,
            ));
        }
        let x3 = x
            .view()
            .into_dimensionality::<Ix3>()
            .map_err(|_| NnError::Config("recurrent input".into()))?;
        let (h_size, g) = (self.hidden(), self.cell.gates());
        let gh = g * h_size;
        let w_ih = view2(&self.weight_ih.value, "weight_ih")?;
        let w_hh = view2(&self.weight_hh.value, "weight_hh")?;
        let (b_ih, b_hh) = (self.bias_ih.value.view(), self.bias_hh.value.view());
        let lstm = self.cell == CellKind::Lstm;
        let mut h = Array2::<f32>::zeros((b, h_size));
        let mut c = Array2::<f32>::zeros((b, if lstm { h_size } else { 0 }));
        let cached = |n: usize| Array3::<f32>::zeros((if train { b } else { 0 }, t, n));
        let mut cache = Cache {
            x: if train {
                x3.to_owned()
            } else {
                Array3::zeros((0, t, f))
            },
            h_prev: cached(h_size),
            c_prev: cached(if lstm { h_size } else { 0 }),
            c: cached(if lstm { h_size } else { 0 }),
            gates: cached(gh),
            hn: cached(if lstm { 0 } else { h_size }),
            d_ih: None,
            d_hh: None,
        };
        let mut out = Array3::<f32>::zeros((b, if self.sequence { t } else { 1 }, h_size));
        for step in 0..t {
            let xt = x3.slice(s![.., step, ..]);
            let mut ai = xt.dot(&w_ih.t());
            ai.rows_mut()
                .into_iter()
                .for_each(|mut r| r.zip_mut_with(&b_ih, |v, &bv| *v += bv));
            let mut ah = h.dot(&w_hh.t());
            ah.rows_mut()
                .into_iter()
                .for_each(|mut r| r.zip_mut_with(&b_hh, |v, &bv| *v += bv));
            if train {
                cache.h_prev.slice_mut(s![.., step, ..]).assign(&h);
                if lstm {
                    cache.c_prev.slice_mut(s![.., step, ..]).assign(&c);
                }
            }
            let mut gates = Array2::<f32>::zeros((b, gh));
            for row in 0..b {
                let (air, ahr) = (ai.row(row), ah.row(row));
                let mut gr = gates.row_mut(row);
                for k in 0..h_size {
                    let pre = |gate: usize| air[gate * h_size + k] + ahr[gate * h_size + k];
                    if lstm {
                        let (i, fg, gg, o) = (
                            sigmoid(pre(0)),
                            sigmoid(pre(1)),
                            pre(2).tanh(),
                            sigmoid(pre(3)),
                        );
                        let cn = fg * c[[row, k]] + i * gg;
                        c[[row, k]] = cn;
                        h[[row, k]] = o * cn.tanh();
                        gr[k] = i;
                        gr[h_size + k] = fg;
                        gr[2 * h_size + k] = gg;
                        gr[3 * h_size + k] = o;
                    } else {
                        let r = sigmoid(pre(0));
                        let z = sigmoid(pre(1));
                        let hn = ahr[2 * h_size + k];
                        let n = (air[2 * h_size + k] + r * hn).tanh();
                        h[[row, k]] = (1.0 - z) * n + z * h[[row, k]];
                        gr[k] = r;
                        gr[h_size + k] = z;
                        gr[2 * h_size + k] = n;
                        if train {
                            cache.hn[[row, step, k]] = hn;
                        }
                    }
                }
            }
            if train {
                cache.gates.slice_mut(s![.., step, ..]).assign(&gates);
                if lstm {
                    cache.c.slice_mut(s![.., step, ..]).assign(&c);
                }
            }
            if self.sequence {
                out.slice_mut(s![.., step, ..]).assign(&h);
            }
        }
        if train {
            self.cache = Some(Box::new(cache));
        }
        if self.sequence {
            Ok(out.into_dyn())
        } else {
            Ok(h.into_dyn())
        }
    }

    pub(crate) fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor, NnError> {
        self.check()?;
        let (h_size, g) = (self.hidden(), self.cell.gates());
        let gh = g * h_size;
        let lstm = self.cell == CellKind::Lstm;
        let w_ih = view2(&self.weight_ih.value, "weight_ih")?.to_owned();
        let w_hh = view2(&self.weight_hh.value, "weight_hh")?.to_owned();
        let cache = self
            .cache
            .as_mut()
            .ok_or(NnError::NoForward("recurrent layer"))?;
        let (b, t, f) = cache.x.dim();
        let expected = if self.sequence {
            vec![b, t, h_size]
        } else {
            vec![b, h_size]
        };
        expect_same("recurrent gradient", &expected, grad_out)?;
        let mut dx = Array3::<f32>::zeros((b, t, f));
        let mut d_ih = Array3::<f32>::zeros((b, t, gh));
        let mut d_hh = Array3::<f32>::zeros((b, t, gh));
        let mut dh = Array2::<f32>::zeros((b, h_size));
        let mut dc = Array2::<f32>::zeros((b, if lstm { h_size } else { 0 }));
        for step in (0..t).rev() {
            if self.sequence {
                let go = grad_out
                    .slice(s![.., step, ..])
                    .into_dimensionality::<Ix2>()
                    .map_err(|_| NnError::Config("recurrent gradient".into()))?;
                dh += &go;
            } else if step + 1 == t {
                dh += &view2(grad_out, "recurrent gradient")?;
            }
            let mut dai = Array2::<f32>::zeros((b, gh));
            let mut dah = Array2::<f32>::zeros((b, gh));
            let mut dh_direct = Array2::<f32>::zeros((b, h_size));
            for row in 0..b {
                let gates = cache.gates.slice(s![row, step, ..]);
                for k in 0..h_size {
                    let d = dh[[row, k]];
                    if lstm {
                        let (i, fg, gg, o) = (
                            gates[k],
                            gates[h_size + k],
                            gates[2 * h_size + k],
                            gates[3 * h_size + k],
                        );
                        let tc = cache.c[[row, step, k]].tanh();
                        let dct = dc[[row, k]] + d * o * (1.0 - tc * tc);
                        let pre = [
                            dct * gg * i * (1.0 - i),
                            dct * cache.c_prev[[row, step, k]] * fg * (1.0 - fg),
                            dct * i * (1.0 - gg * gg),
                            d * tc * o * (1.0 - o),
                        ];
                        for (gate, v) in pre.into_iter().enumerate() {
                            dai[[row, gate * h_size + k]] = v;
                            dah[[row, gate * h_size + k]] = v;
                        }
                        dc[[row, k]] = dct * fg;
                    } else {
                        let (r, z, n) = (gates[k], gates[h_size + k], gates[2 * h_size + k]);
                        let hp = cache.h_prev[[row, step, k]];
                        let dn = d * (1.0 - z) * (1.0 - n * n);
                        let dz = d * (hp - n) * z * (1.0 - z);
                        let dr = dn * cache.hn[[row, step, k]] * r * (1.0 - r);
                        dai[[row, k]] = dr;
                        dah[[row, k]] = dr;
                        dai[[row, h_size + k]] = dz;
                        dah[[row, h_size + k]] = dz;
                        dai[[row, 2 * h_size + k]] = dn;
                        dah[[row, 2 * h_size + k]] = dn * r;
                        dh_direct[[row, k]] = d * z;
                    }
                }
            }
            dx.slice_mut(s![.., step, ..]).assign(&dai.dot(&w_ih));
            dh = dah.dot(&w_hh) + dh_direct;
            d_ih.slice_mut(s![.., step, ..]).assign(&dai);
            d_hh.slice_mut(s![.., step, ..]).assign(&dah);
        }
        cache.d_ih = Some(d_ih);
        cache.d_hh = Some(d_hh);
        Ok(dx.into_dyn())
    }

    fn grads_cached(&self) -> Result<(&Cache, &Array3<f32>, &Array3<f32>), NnError> {
        match &self.cache {
            Some(c) => match (&c.d_ih, &c.d_hh) {
                (Some(a), Some(b)) => Ok((c, a, b)),
                _ => Err(NnError::NoForward("recurrent layer")),
            },
            None => Err(NnError::NoForward("recurrent layer")),
        }
    }

    /// Each example's gradient, `Σ_t δ_t x_tᵀ` etc., formed and measured
    /// one example at a time (`[T, G·H]ᵀ · [T, F]`: the cost of the batch
    /// gradient, with memory for one example's gradient only).
    pub(crate) fn per_example_sq_norms(&self, out: &mut [f32]) -> Result<(), NnError> {
        let (cache, d_ih, d_hh) = self.grads_cached()?;
        let b = cache.x.dim().0;
        if out.len() != b {
            return Err(NnError::shape("recurrent norms", &[b], &[out.len()]));
        }
        for (row, o) in out.iter_mut().enumerate() {
            let (di, dh) = (d_ih.index_axis(Axis(0), row), d_hh.index_axis(Axis(0), row));
            let gw_ih = di.t().dot(&cache.x.index_axis(Axis(0), row));
            let gw_hh = dh.t().dot(&cache.h_prev.index_axis(Axis(0), row));
            let gb_ih = di.sum_axis(Axis(0));
            let gb_hh = dh.sum_axis(Axis(0));
            *o += [gw_ih.view(), gw_hh.view()]
                .iter()
                .flat_map(|m| m.iter())
                .chain(gb_ih.iter())
                .chain(gb_hh.iter())
                .map(|v| v * v)
                .sum::<f32>();
        }
        Ok(())
    }

    /// `dW_ih += Σ_b w_b Σ_t δ_{b,t} x_{b,t}ᵀ` as one product over the
    /// `B·T` rows; likewise for the recurrent weights and the biases.
    pub(crate) fn accumulate_grads(&mut self, weights: &[f32]) -> Result<(), NnError> {
        let (cache, d_ih, d_hh) = self.grads_cached()?;
        let (b, t, f) = cache.x.dim();
        if weights.len() != b {
            return Err(NnError::shape("recurrent weights", &[b], &[weights.len()]));
        }
        let h_size = cache.h_prev.dim().2;
        let gh = d_ih.dim().2;
        let scale = |d: &Array3<f32>| {
            let mut d = d.clone();
            for (mut ex, &w) in d.axis_iter_mut(Axis(0)).zip(weights) {
                ex *= w;
            }
            d
        };
        let flat = |a: Array3<f32>, n: usize| -> Result<Array2<f32>, NnError> {
            a.into_shape_with_order((b * t, n))
                .map_err(|e| NnError::Config(format!("recurrent cache: {e}")))
        };
        let (wi, wh) = (flat(scale(d_ih), gh)?, flat(scale(d_hh), gh)?);
        let xs = flat(cache.x.clone(), f)?;
        let hs = flat(cache.h_prev.clone(), h_size)?;
        let dw_ih = wi.t().dot(&xs);
        let dw_hh = wh.t().dot(&hs);
        let (db_ih, db_hh) = (wi.sum_axis(Axis(0)), wh.sum_axis(Axis(0)));
        self.weight_ih.grad += &dw_ih.into_dyn();
        self.weight_hh.grad += &dw_hh.into_dyn();
        self.bias_ih.grad += &db_ih.into_dyn();
        self.bias_hh.grad += &db_hh.into_dyn();
        Ok(())
    }

    pub(crate) fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, NnError> {
        match input {
            &[t, f] if t > 0 && f == self.inputs() => Ok(if self.sequence {
                vec![t, self.hidden()]
            } else {
                vec![self.hidden()]
            }),
            _ => Err(NnError::Config(format!(
                "{:?} takes [steps, {}] inputs, got {input:?} (reshape the input to [steps, features])",
                self.cell,
                self.inputs()
            ))),
        }
    }

    pub(crate) fn clear_cache(&mut self) {
        self.cache = None;
    }

    pub(crate) fn describe(&self) -> String {
        format!(
            "{}({} → {}, {})",
            match self.cell {
                CellKind::Lstm => "LSTM",
                CellKind::Gru => "GRU",
            },
            self.inputs(),
            self.hidden(),
            if self.sequence {
                "every step"
            } else {
                "last step"
            }
        )
    }
}
