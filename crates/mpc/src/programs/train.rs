//! Private training of a neural network on data split between two owners
//! (parties 0 and 1; party 2 helps): mini-batch SGD with momentum in
//! fixed point, every weight, activation, gradient and label
//! secret-shared; the trained model is revealed only to the parties the
//! caller names.
//!
//! **Public:** the architecture and the preprocessing (owner A brings the
//! model — architecture and initial weights — and publishes the first
//! two, as in private prediction), the number of examples each owner
//! inputs and their widths, the hyper-parameters, and the order of the
//! examples (a public seed: the batches are public index sets, as in
//! SecureML and ABY3). **Secret:** the initial weights (shared by owner
//! A), the features, the labels, every activation and gradient, the
//! weights during training.
//!
//! | layer | forward | backward |
//! |---|---|---|
//! | Dense | `h·Wᵀ + b` (matrix product + truncation) | `∇W = gᵀh`, `∇b = Σ g`, `∇h = g·W` |
//! | Conv2d (stride, padding) | Dense on the shared im2col (a local gather) | as Dense, `∇h` scattered back through the im2col indices (local) |
//! | AvgPool2d | window sums × 1/k | `g/k` added to every window position (local) |
//! | ReLU | `h·ReLU′(h)`, ReLU′ from the comparison protocol | `g·ReLU′(h)` (the forward's bits, exact) |
//! | x² | `h²` | `2·g·h` |
//! | Flatten, Reshape | local | local |
//!
//! **Loss:** softmax cross-entropy. Its gradient with respect to the
//! logits is `softmax(z) − y`; the softmax is
//! [`Party::softmax`](crate::Party::softmax) (exp by `(1 + x/256)^256`
//! after subtracting the row maximum, the reciprocal by Newton), within
//! [`SOFTMAX_MAX_ERROR`](crate::protocols::approx::SOFTMAX_MAX_ERROR) of
//! the exact probabilities.
//!
//! **Update:** `v ← μ·v + (lr/B)·∇`, `W ← W − v`; `(lr/B)·∇` is the
//! gradient truncated to f bits times `lr/B` encoded with 12–13
//! significant bits, truncated again.
//!
//! **Ring, and the probability that a truncation fails:** ABY3's
//! one-round truncation returns a value off by about 2^(ℓ−f) — a ruined
//! weight — with probability up to 2^(ℓx+1−ℓ) per element, ℓx the bit
//! length of the value truncated. For the MNIST MLP 784-128-128-10 with
//! batches of 128 a step truncates about 4.4·10^5 values (forward 3.4·10^4,
//! softmax 1.5·10^4, gradients 2.7·10^5 counting the two truncations of
//! each weight's step, momentum 1.2·10^5), 2^29.9 over 5 epochs. In
//! Z_2^128 with f = 20 every truncated value has ℓx ≤ 2f + 13 = 53 for
//! real values below 2^13 (pre-activations, gradient sums over a batch:
//! the largest in that run is far smaller), so a failure anywhere in the
//! run has probability ≤ 2^29.9 · 2^(54−128) = 2^−44.1. In Z_2^64 with f =
//! 16 the same bound gives no guarantee (ℓx up to 45), and even values of
//! magnitude 1 (ℓx = 33) leave about one expected failure per run
//! (2^29.9 · 2^(34−64)), so training defaults to Z_2^128; `--ring 64`
//! measures the difference (on MNIST 2.7× faster, 0.70× the bytes).

use super::logreg::{Split, OWNER_A, OWNER_B};
use super::predict::{chw, conv_to_chw, im2col, share_model_with, SharedModel};
use crate::party::{AShare, Party};
use crate::z2k::Z2k;
use crate::MpcError;
use cipherflow_nn::layers::{ActivationKind, Layer, PoolKind};
use cipherflow_nn::{Preprocessing, Sequential, Tensor};
use ndarray::Array2;
use rand_core::SeedableRng;
use std::time::Instant;

/// Training hyper-parameters (public).
#[derive(Clone, Debug)]
pub struct NnTrainConfig {
    /// Passes over the data.
    pub epochs: usize,
    /// Examples per step (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// Learning rate (on the batch's mean gradient).
    pub lr: f64,
    /// Momentum μ (0 for plain SGD).
    pub momentum: f64,
    /// Seed of the public shuffling order.
    pub seed: u64,
    /// The parties that learn the trained model.
    pub reveal_to: Vec<usize>,
}

impl Default for NnTrainConfig {
    /// 5 epochs of batches of 128, lr 0.05, momentum 0.9, revealed to
    /// both owners.
    fn default() -> Self {
        NnTrainConfig {
            epochs: 5,
            batch_size: 128,
            lr: 0.05,
            momentum: 0.9,
            seed: 0,
            reveal_to: vec![OWNER_A, OWNER_B],
        }
    }
}

/// One owner's training data: raw features (as read, before the
/// published preprocessing) and, where it holds them, labels.
#[derive(Clone, Debug)]
pub struct Shard {
    /// Rows split: `n_i × F` whole examples; columns split: `n × F_i`,
    /// owner A's columns first.
    pub x: Array2<f32>,
    /// Class labels (rows split: each owner's; columns split: owner B's).
    pub labels: Option<Vec<usize>>,
}

/// What a party gets from [`private_train`].
#[derive(Debug)]
pub struct NnTrained {
    /// The trained model, at the parties it is revealed to.
    pub model: Option<Sequential>,
    /// The preprocessing published with the model (public).
    pub preprocessing: Option<Preprocessing>,
    /// Seconds per epoch at this party.
    pub epoch_seconds: Vec<f64>,
    /// Training examples (public).
    pub examples: usize,
}

/// Checks that every layer of `model` can be trained privately.
pub fn check_trainable(model: &Sequential) -> Result<(), MpcError> {
    let n = model.layers().len();
    for (i, l) in model.layers().iter().enumerate() {
        let ok = match l {
            Layer::Dense(_) | Layer::Conv2d(_) | Layer::Flatten(_) | Layer::Reshape(_) => true,
            Layer::Pool2d(p) => matches!(p.kind, PoolKind::Avg),
            Layer::Activation(a) => matches!(a.kind, ActivationKind::Relu | ActivationKind::Square),
            Layer::Softmax(_) => i + 1 == n,
            _ => false,
        };
        if !ok {
            return Err(MpcError::Config(format!(
                "layer {i} ({}) cannot be trained privately (trainable: Dense, Conv2d, average \
                 pooling, flatten, reshape, ReLU, x², a final softmax; use average pooling or \
                 a strided convolution instead of max pooling)",
                l.describe()
            )));
        }
    }
    Ok(())
}

/// What the backward pass needs from the forward pass, per layer.
enum Saved<R: Z2k> {
    /// A Dense layer's input.
    Dense(AShare<R>),
    /// A convolution's im2col matrix, its indices, and sizes.
    Conv {
        cols: AShare<R>,
        idx: Vec<usize>,
        in_width: usize,
        pixels: usize,
    },
    /// Average pooling's window indices and size.
    AvgPool {
        idx: Vec<usize>,
        window: usize,
        in_width: usize,
    },
    /// ReLU′ of the input (0/1 integers).
    Relu(AShare<R>),
    /// The input of x².
    Square(AShare<R>),
    /// Nothing (layout only).
    Same,
}

fn missing() -> MpcError {
    MpcError::Config("missing shared parameters".into())
}

/// The forward pass on a batch `h` (`B × F`); the logits and what the
/// backward pass needs.
fn forward<R: Z2k>(
    p: &mut Party<R>,
    model: &SharedModel<R>,
    mut h: AShare<R>,
) -> Result<(AShare<R>, Vec<Saved<R>>), MpcError> {
    let f = p.fixed_point().frac;
    let batch = h.shape().0;
    let mut shape = model.input_shape().to_vec();
    let mut saved = Vec::with_capacity(model.params.len());
    for (layer, params) in model.layout.layers().iter().zip(&model.params) {
        let in_width = h.shape().1;
        let (out, keep) = match layer {
            Layer::Dense(_) => {
                let (w, b) = params.as_ref().ok_or_else(missing)?;
                let z = p.with_op("dense", |p| {
                    let z = p.matmul_transposed(&h, w)?;
                    p.truncate(&z, f)
                })?;
                (p.add_row(&z, b)?, Saved::Dense(h))
            }
            Layer::Conv2d(c) => {
                let (w, b) = params.as_ref().ok_or_else(missing)?;
                let (_, _, kh, kw) = c.dims();
                let dims = chw(&shape, "Conv2d")?;
                let (rows, ncols, ho, wo, idx) = im2col(batch, dims, (kh, kw), c.stride, c.padding);
                let cols = p.gather(&h, rows, ncols, &idx)?;
                let z = p.with_op("conv", |p| {
                    let z = p.matmul_transposed(&cols, w)?;
                    p.truncate(&z, f)
                })?;
                let z = p.add_row(&z, b)?;
                let co = z.shape().1;
                let out = p.gather(&z, batch, co * ho * wo, &conv_to_chw(batch, co, ho * wo))?;
                let keep = Saved::Conv {
                    cols,
                    idx,
                    in_width,
                    pixels: ho * wo,
                };
                (out, keep)
            }
            Layer::Pool2d(pool) if matches!(pool.kind, PoolKind::Avg) => {
                let (c, hh, ww) = chw(&shape, "pooling")?;
                let ((kh, kw), stride) = (pool.kernel, pool.stride);
                let (rows, ncols, ho, wo, idx) =
                    im2col(batch * c, (1, hh, ww), (kh, kw), stride, (0, 0));
                let win = p.gather(&h, rows, ncols, &idx)?;
                let s = p.sum_rows(&win);
                let m = p.mul_public_fx(&s, 1.0 / (kh * kw) as f64)?;
                let keep = Saved::AvgPool {
                    idx,
                    window: kh * kw,
                    in_width,
                };
                (p.reshape(&m, batch, c * ho * wo)?, keep)
            }
            Layer::Flatten(_) | Layer::Reshape(_) | Layer::Softmax(_) => (h, Saved::Same),
            Layer::Activation(a) if a.kind == ActivationKind::Relu => {
                let d = p.drelu(&h)?;
                (p.mul(&h, &d)?, Saved::Relu(d))
            }
            Layer::Activation(a) if a.kind == ActivationKind::Square => {
                (p.mul_fx(&h, &h)?, Saved::Square(h))
            }
            other => {
                return Err(MpcError::Config(format!(
                    "{} cannot be trained privately",
                    other.describe()
                )))
            }
        };
        shape = layer.output_shape(&shape)?;
        h = out;
        saved.push(keep);
    }
    Ok((h, saved))
}

/// `c·x` at scale 2^f for `x` at scale 2^(f+extra) (an untruncated
/// product when `extra = f`): `x` truncated to 2^f, times `c` encoded with
/// 12 to 13 significant bits (so a small `lr/B` is not rounded to a few
/// ulps), truncated again. Two truncations of moderate values rather than
/// one of a large value: each truncation fails with probability growing
/// with its input's bit length (see the module docs).
fn scaled<R: Z2k>(
    p: &mut Party<R>,
    x: &AShare<R>,
    extra: u32,
    c: f64,
) -> Result<AShare<R>, MpcError> {
    let e = (12.0 - c.abs().log2().floor()).max(0.0) as u32;
    let t = if extra > 0 {
        p.truncate(x, extra)?
    } else {
        x.clone()
    };
    let y = p.mul_public(&t, R::encode(c, e));
    p.truncate(&y, e)
}

/// A layer's weight and bias (or their velocities).
type Pair<R> = (AShare<R>, AShare<R>);

/// Optimizer state of one layer: the velocities of its weight and bias.
type Velocity<R> = Option<Pair<R>>;

/// One SGD-with-momentum update of a parameter from its gradient `g`
/// (at scale 2^(f+extra)).
fn update<R: Z2k>(
    p: &mut Party<R>,
    param: &mut AShare<R>,
    velocity: &mut AShare<R>,
    g: &AShare<R>,
    extra: u32,
    cfg: &NnTrainConfig,
    batch: usize,
) -> Result<(), MpcError> {
    let step = scaled(p, g, extra, cfg.lr / batch.max(1) as f64)?;
    *velocity = if cfg.momentum == 0.0 {
        step
    } else {
        let kept = p.mul_public_fx(velocity, cfg.momentum)?;
        p.add(&kept, &step)?
    };
    *param = p.sub(param, velocity)?;
    Ok(())
}

/// Layer `i`'s parameters and optimizer state.
fn layer_state<'a, R: Z2k>(
    model: &'a mut SharedModel<R>,
    velocity: &'a mut [Velocity<R>],
    i: usize,
) -> Result<(&'a mut Pair<R>, &'a mut Pair<R>), MpcError> {
    let param = model
        .params
        .get_mut(i)
        .and_then(Option::as_mut)
        .ok_or_else(missing)?;
    let vel = velocity
        .get_mut(i)
        .and_then(Option::as_mut)
        .ok_or_else(missing)?;
    Ok((param, vel))
}

/// The backward step of `y = x·Wᵀ + b` (Dense, or Conv2d on its im2col)
/// from `g = ∂L/∂y`: updates `W` and `b`, and returns `∂L/∂x = g·W`
/// (with the weights before the update) when `need_input`. The step is
/// scaled by the number of `examples` in the batch (not of im2col rows).
fn affine_backward<R: Z2k>(
    p: &mut Party<R>,
    (w, b): &mut Pair<R>,
    (vw, vb): &mut Pair<R>,
    x: &AShare<R>,
    g: &AShare<R>,
    need_input: bool,
    (cfg, examples): (&NnTrainConfig, usize),
) -> Result<Option<AShare<R>>, MpcError> {
    let f = p.fixed_point().frac;
    let (gw, gb, gx) = p.with_op("backward", |p| {
        let gw = p.matmul(&p.transpose(g), x)?;
        let gb = p.sum_cols(g);
        let gx = if need_input {
            let z = p.matmul(g, w)?;
            Some(p.truncate(&z, f)?)
        } else {
            None
        };
        Ok((gw, gb, gx))
    })?;
    p.with_op("update", |p| {
        update(p, w, vw, &gw, f, cfg, examples)?;
        update(p, b, vb, &gb, 0, cfg, examples)
    })?;
    Ok(gx)
}

/// The backward pass from the logits' gradient `g`, updating the model.
fn backward<R: Z2k>(
    p: &mut Party<R>,
    model: &mut SharedModel<R>,
    velocity: &mut [Velocity<R>],
    saved: Vec<Saved<R>>,
    mut g: AShare<R>,
    cfg: &NnTrainConfig,
) -> Result<(), MpcError> {
    let batch = g.shape().0;
    // Below the first layer with parameters no gradient is needed.
    let first = model.params.iter().position(Option::is_some).unwrap_or(0);
    for (i, keep) in saved.into_iter().enumerate().rev() {
        if i < first {
            break;
        }
        let need_input_grad = i > first;
        g = match keep {
            Saved::Same => g,
            Saved::Relu(bit) => p.mul(&g, &bit)?,
            Saved::Square(h) => {
                let gh = p.mul_fx(&g, &h)?;
                p.mul_public(&gh, R::from_i64(2))
            }
            Saved::AvgPool {
                idx,
                window,
                in_width,
            } => {
                let col = p.reshape(&g, g.len(), 1)?;
                let col = p.mul_public_fx(&col, 1.0 / window as f64)?;
                let spread = p.broadcast_cols(&col, window);
                p.scatter_add(&spread, batch, in_width, &idx)?
            }
            Saved::Dense(h) => {
                let (param, vel) = layer_state(model, velocity, i)?;
                match affine_backward(p, param, vel, &h, &g, need_input_grad, (cfg, batch))? {
                    Some(gh) => gh,
                    None => break,
                }
            }
            Saved::Conv {
                cols,
                idx,
                in_width,
                pixels,
            } => {
                let (param, vel) = layer_state(model, velocity, i)?;
                let co = param.0.shape().0;
                // b × (co, pixel) → (b, pixel) × co.
                let order: Vec<usize> = (0..batch)
                    .flat_map(|e| {
                        (0..pixels).flat_map(move |pix| {
                            (0..co).map(move |ch| (e * co + ch) * pixels + pix)
                        })
                    })
                    .collect();
                let gp = p.gather(&g, batch * pixels, co, &order)?;
                match affine_backward(p, param, vel, &cols, &gp, need_input_grad, (cfg, batch))? {
                    Some(gcols) => p.scatter_add(&gcols, batch, in_width, &idx)?,
                    None => break,
                }
            }
        };
    }
    Ok(())
}

/// Rows `idx` of the matrices `parts` stacked on top of each other
/// (local).
fn take_rows<R: Z2k>(parts: &[&AShare<R>], idx: &[usize]) -> Result<AShare<R>, MpcError> {
    let cols = parts.first().map_or(0, |x| x.shape().1);
    let mut a = Vec::with_capacity(idx.len() * cols);
    let mut b = Vec::with_capacity(idx.len() * cols);
    for &r in idx {
        let mut r = r;
        let mut found = false;
        for x in parts {
            let (rows, c) = x.shape();
            if c != cols {
                return Err(MpcError::Config("stacked parts of different widths".into()));
            }
            if r < rows {
                let (xa, xb) = x.components();
                let span = r * cols..(r + 1) * cols;
                a.extend_from_slice(xa.get(span.clone()).ok_or_else(missing)?);
                b.extend_from_slice(xb.get(span).ok_or_else(missing)?);
                found = true;
                break;
            }
            r -= rows;
        }
        if !found {
            return Err(MpcError::Config(format!("row {r} is out of range")));
        }
    }
    Ok(AShare::from_parts(idx.len(), cols, a, b))
}

/// An owner's labels as one-hot rows of `classes`.
fn one_hot(labels: &[usize], classes: usize) -> Result<Array2<f64>, MpcError> {
    let mut y = Array2::zeros((labels.len(), classes));
    for (i, &c) in labels.iter().enumerate() {
        let cell = y.get_mut((i, c)).ok_or_else(|| {
            MpcError::Config(format!(
                "label {c} of example {i} is not below {classes} classes"
            ))
        })?;
        *cell = 1.0;
    }
    Ok(y)
}

/// The features of `shard` preprocessed as published, for columns
/// `first..` of the model's input.
fn prepared(
    shard: &Shard,
    pre: Option<&Preprocessing>,
    shape: &[usize],
    first: usize,
) -> Result<Array2<f64>, MpcError> {
    let mut x = shard.x.clone();
    if let Some(pre) = pre {
        pre.apply_columns(&mut x, shape, first)?;
    }
    Ok(x.mapv(f64::from))
}

/// The shared features (`[A; B]` for a rows split, `[A | B]` per batch
/// for a columns split) and one-hot labels.
struct SharedData<R: Z2k> {
    xa: AShare<R>,
    xb: AShare<R>,
    y: Vec<AShare<R>>,
    split: Split,
}

impl<R: Z2k> SharedData<R> {
    fn len(&self) -> usize {
        match self.split {
            Split::Rows => self.xa.shape().0 + self.xb.shape().0,
            Split::Columns => self.xa.shape().0,
        }
    }

    fn batch(&self, p: &Party<R>, idx: &[usize]) -> Result<(AShare<R>, AShare<R>), MpcError> {
        let ys: Vec<&AShare<R>> = self.y.iter().collect();
        let y = take_rows(&ys, idx)?;
        let x = match self.split {
            Split::Rows => take_rows(&[&self.xa, &self.xb], idx)?,
            Split::Columns => {
                let a = take_rows(&[&self.xa], idx)?;
                let b = take_rows(&[&self.xb], idx)?;
                p.hstack(&[&a, &b])?
            }
        };
        Ok((x, y))
    }
}

/// Inputs both owners' data; checks the shapes every party sees.
fn share_data<R: Z2k>(
    p: &mut Party<R>,
    split: Split,
    shard: Option<&Shard>,
    model: &SharedModel<R>,
) -> Result<SharedData<R>, MpcError> {
    let me = p.id();
    let shape = model.input_shape().to_vec();
    let width: usize = shape.iter().product();
    let classes = model.classes();
    let pre = model.preprocessing();
    let mine = |o: usize| shard.filter(|_| me == o);
    let labels = |o: usize| -> Result<Option<Array2<f64>>, MpcError> {
        mine(o)
            .and_then(|s| s.labels.as_deref())
            .map(|l| one_hot(l, classes))
            .transpose()
    };
    let bad = |from: usize, what: String| MpcError::Malformed { from, what };
    let data = match split {
        Split::Rows => {
            for o in [OWNER_A, OWNER_B] {
                if let Some(s) = mine(o) {
                    if s.labels.as_ref().map(Vec::len) != Some(s.x.nrows()) {
                        return Err(MpcError::Config(
                            "each owner needs a label per example".into(),
                        ));
                    }
                }
            }
            let xa = mine(OWNER_A)
                .map(|s| prepared(s, pre, &shape, 0))
                .transpose()?;
            let xa = p.private_input(OWNER_A, xa.as_ref())?;
            let ya = p.private_input(OWNER_A, labels(OWNER_A)?.as_ref())?;
            let xb = mine(OWNER_B)
                .map(|s| prepared(s, pre, &shape, 0))
                .transpose()?;
            let xb = p.private_input(OWNER_B, xb.as_ref())?;
            let yb = p.private_input(OWNER_B, labels(OWNER_B)?.as_ref())?;
            for (o, x, y) in [(OWNER_A, &xa, &ya), (OWNER_B, &xb, &yb)] {
                if x.shape().1 != width || y.shape() != (x.shape().0, classes) {
                    return Err(bad(
                        o,
                        format!("data of shape {:?}, labels {:?}", x.shape(), y.shape()),
                    ));
                }
            }
            SharedData {
                xa,
                xb,
                y: vec![ya, yb],
                split,
            }
        }
        Split::Columns => {
            if let Some(s) = mine(OWNER_B) {
                if s.labels.as_ref().map(Vec::len) != Some(s.x.nrows()) {
                    return Err(MpcError::Config("owner B holds a label per example".into()));
                }
            }
            let xa = mine(OWNER_A)
                .map(|s| prepared(s, pre, &shape, 0))
                .transpose()?;
            let xa = p.private_input(OWNER_A, xa.as_ref())?;
            let first_b = xa.shape().1;
            let xb = mine(OWNER_B)
                .map(|s| prepared(s, pre, &shape, first_b))
                .transpose()?;
            let xb = p.private_input(OWNER_B, xb.as_ref())?;
            let yb = p.private_input(OWNER_B, labels(OWNER_B)?.as_ref())?;
            let n = xa.shape().0;
            if xb.shape().0 != n || first_b + xb.shape().1 != width {
                return Err(bad(
                    OWNER_B,
                    format!("columns {:?} beside {:?}", xb.shape(), xa.shape()),
                ));
            }
            if yb.shape() != (n, classes) {
                return Err(bad(OWNER_B, format!("labels of shape {:?}", yb.shape())));
            }
            SharedData {
                xa,
                xb,
                y: vec![yb],
                split,
            }
        }
    };
    if data.len() == 0 {
        return Err(MpcError::Config("no training examples".into()));
    }
    Ok(data)
}

/// Reveals the trained parameters to `to` and writes them into the
/// public layout (`Some` at those parties).
fn reveal_model<R: Z2k>(
    p: &mut Party<R>,
    model: &SharedModel<R>,
    to: &[usize],
) -> Result<Option<Sequential>, MpcError> {
    let mut out = model.layout.clone();
    let mut any = false;
    for (layer, params) in out.layers_mut().iter_mut().zip(&model.params) {
        let Some((w, b)) = params else { continue };
        let wv = p.reveal_to(w, to)?;
        let bv = p.reveal_to(b, to)?;
        let (wt, bt) = match layer {
            Layer::Dense(d) => (&mut d.weight.value, &mut d.bias.value),
            Layer::Conv2d(c) => (&mut c.weight.value, &mut c.bias.value),
            _ => return Err(missing()),
        };
        if let (Some(wv), Some(bv)) = (wv, bv) {
            *wt = to_tensor(&wv, wt.shape())?;
            *bt = to_tensor(&bv, bt.shape())?;
            any = true;
        }
    }
    Ok(any.then_some(out))
}

fn to_tensor(v: &Array2<f64>, shape: &[usize]) -> Result<Tensor, MpcError> {
    Tensor::from_shape_vec(shape, v.iter().map(|&x| x as f32).collect())
        .map_err(|e| MpcError::Config(format!("revealed parameters: {e}")))
}

/// Largest settings message a party accepts.
const MAX_SETTINGS_BYTES: usize = 4096;

/// Each party sends its training settings to the other two and checks
/// that theirs are its own (one round): a party started with other
/// hyper-parameters, another split or other recipients of the model is
/// named before any data is shared.
fn agree<R: Z2k>(p: &mut Party<R>, split: Split, cfg: &NnTrainConfig) -> Result<(), MpcError> {
    let mine = format!(
        "split {split:?}, {} epochs, batches of {}, lr {:e}, momentum {:e}, seed {}, \
         model revealed to {:?}",
        cfg.epochs, cfg.batch_size, cfg.lr, cfg.momentum, cfg.seed, cfg.reveal_to
    );
    p.with_op("settings", |p| {
        p.round();
        let others = [p.next(), p.prev()];
        // Send to both before judging anything, and keep reading after a
        // failed send: a party that finds a mismatch first may already
        // have closed its end, and the others must still read its
        // settings to name it (rather than report a closed connection).
        let mut sent = Ok(());
        for o in others {
            let r = p.send_bytes(o, mine.clone().into_bytes());
            if sent.is_ok() {
                sent = r;
            }
        }
        let mut differ = Vec::new();
        let mut failed = None;
        for o in others {
            match p.recv_bytes(o) {
                Ok(theirs) if theirs.len() > MAX_SETTINGS_BYTES => {
                    return Err(MpcError::Malformed {
                        from: o,
                        what: "training settings over 4 KiB".into(),
                    });
                }
                Ok(theirs) if theirs != mine.as_bytes() => {
                    differ.push((o, String::from_utf8_lossy(&theirs).into_owned()));
                }
                Ok(_) => {}
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        match differ.as_slice() {
            [(o, theirs)] => Err(MpcError::Config(format!(
                "party {o} trains with other settings: theirs are \"{theirs}\", ours \"{mine}\""
            ))),
            [(a, ta), (b, tb)] if ta == tb => Err(MpcError::Config(format!(
                "parties {a} and {b} agree on settings other than ours: theirs are \"{ta}\", \
                 ours \"{mine}\" (this party {me} was started with other settings)",
                me = p.id()
            ))),
            [(a, ta), (b, tb)] => Err(MpcError::Config(format!(
                "all three parties train with different settings: ours \"{mine}\", \
                 party {a}'s \"{ta}\", party {b}'s \"{tb}\""
            ))),
            _ => match failed {
                Some(e) => Err(e),
                None => sent,
            },
        }
    })
}

/// Trains as party `p`: owner A passes the model (architecture and
/// initial weights) and its preprocessing, each owner its shard; the
/// parties in `cfg.reveal_to` get the trained model.
pub fn private_train<R: Z2k>(
    p: &mut Party<R>,
    split: Split,
    model: Option<(&Sequential, Option<&Preprocessing>)>,
    shard: Option<&Shard>,
    cfg: &NnTrainConfig,
) -> Result<NnTrained, MpcError> {
    let me = p.id();
    if cfg.batch_size == 0 || cfg.epochs == 0 || !(cfg.lr.is_finite() && cfg.lr > 0.0) {
        return Err(MpcError::Config(
            "training needs epochs ≥ 1, a batch size ≥ 1 and a positive learning rate".into(),
        ));
    }
    if !(0.0..1.0).contains(&cfg.momentum) || cfg.reveal_to.iter().any(|&r| r > 2) {
        return Err(MpcError::Config(
            "momentum must be in [0, 1) and the model revealed to parties 0, 1 or 2".into(),
        ));
    }
    if me != 2 && shard.is_none() {
        return Err(MpcError::Party(format!("data owner {me} needs its data")));
    }
    agree(p, split, cfg)?;
    let (m, pre) = match model {
        Some((m, pre)) if me == OWNER_A => (Some(m), pre),
        _ => (None, None),
    };
    let mut shared = share_model_with(p, m, pre)?;
    check_trainable(&shared.layout)?;
    let data = share_data(p, split, shard, &shared)?;
    let n = data.len();
    let mut velocity: Vec<Velocity<R>> = shared
        .params
        .iter()
        .map(|pw| {
            pw.as_ref().map(|(w, b)| {
                let zero = |x: &AShare<R>| {
                    let (r, c) = x.shape();
                    AShare::from_parts(r, c, vec![R::ZERO; r * c], vec![R::ZERO; r * c])
                };
                (zero(w), zero(b))
            })
        })
        .collect();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(cfg.seed);
    let mut epoch_seconds = Vec::with_capacity(cfg.epochs);
    for _ in 0..cfg.epochs {
        let start = Instant::now();
        let order = cipherflow_nn::data::shuffled_indices(n, &mut rng);
        for idx in order.chunks(cfg.batch_size) {
            let (x, y) = data.batch(p, idx)?;
            let (logits, saved) = forward(p, &shared, x)?;
            let prob = p.softmax(&logits)?;
            let g = p.sub(&prob, &y)?;
            backward(p, &mut shared, &mut velocity, saved, g, cfg)?;
        }
        epoch_seconds.push(start.elapsed().as_secs_f64());
    }
    let trained = reveal_model(p, &shared, &cfg.reveal_to)?;
    Ok(NnTrained {
        model: trained,
        preprocessing: shared.preprocessing.clone(),
        epoch_seconds,
        examples: n,
    })
}

#[cfg(test)]
#[path = "train_tests.rs"]
mod tests;
