//! Private prediction: a model owned by party 0 applied to inputs owned
//! by party 1; only party 1 learns the predicted classes.
//!
//! The architecture is public: the model owner sends its description (the
//! nn crate's [`ModelSpec`], as JSON) and its preprocessing; the others
//! check it and build its shapes (bounded before anything is allocated).
//! Weights, biases, inputs and every intermediate value stay
//! secret-shared. Layers and their error in fixed point (f fractional
//! bits):
//!
//! | layer | how | error |
//! |---|---|---|
//! | Dense, Conv2d (stride, padding) | matrix product (Conv2d on the shared input's im2col, a local rearrangement) + truncation | ≤ 1 ulp per truncation |
//! | AvgPool2d (global included) | window sums × 1/k | ≤ 1 ulp |
//! | MaxPool2d | row-wise maximum by the comparison protocol | exact |
//! | Pad2d, Flatten, Reshape | local rearrangement | exact |
//! | ReLU, x² | comparison / product | exact / ≤ 1 ulp |
//! | LeakyReLU(a) | (1 − a)·ReLU(x) + a·x | ≤ 2 ulp |
//! | Sigmoid, Tanh | 33-piece linear sigmoid (tanh x = 2σ(2x) − 1) | ≤ 4e-3 (tanh ≤ 8e-3) |
//! | GELU | x·Φ̂(x), Φ̂ the 33-piece linear normal CDF on [−4, 4] | ≤ 5e-3 for \|x\| ≤ 100 |
//! | Softmax (inner) | max by tournament, exp as (1 + x/256)^256, Newton reciprocal | ≤ 5e-3 per probability |
//! | final Softmax | skipped: it does not change the argmax | — |
//!
//! BatchNorm arrives folded (the nn importer folds it exactly). Other
//! layers are refused by name before any share is sent.

use crate::computation::Roles;
use crate::party::{AShare, Party};
use crate::protocols::arith::ZERO_ENTRY;
use crate::z2k::Z2k;
use crate::MpcError;
use cipherflow_nn::layers::{Activation, ActivationKind, Dense, Flatten, Layer, PoolKind};
use cipherflow_nn::spec::ModelSpec;
use cipherflow_nn::{NnError, Preprocessing, Sequential};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

/// Party 0 owns the model.
pub const MODEL_OWNER: usize = 0;
/// Party 1 owns the inputs and receives the predictions.
pub const CLIENT: usize = 1;
/// Party 2 only helps.
pub const HELPER: usize = 2;
/// The parties' names.
pub const ROLES: Roles = Roles(["model owner", "data owner", "helper"]);

/// Largest architecture description a party accepts.
const MAX_ARCH_BYTES: usize = 1 << 20;
/// Largest model a party accepts to run (parameters).
pub const MAX_PARAMS: usize = 1 << 26;

/// What the model owner makes public: the architecture and how inputs
/// are prepared.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Architecture {
    spec: ModelSpec,
    preprocessing: Option<Preprocessing>,
}

/// Checks that every layer of `model` runs in private prediction.
pub fn check_supported(model: &Sequential) -> Result<(), MpcError> {
    for (i, l) in model.layers().iter().enumerate() {
        let ok = match l {
            Layer::Dense(_)
            | Layer::Conv2d(_)
            | Layer::Pool2d(_)
            | Layer::Flatten(_)
            | Layer::Reshape(_)
            | Layer::Pad2d(_) => true,
            Layer::Activation(a) => matches!(
                a.kind,
                ActivationKind::Relu
                    | ActivationKind::Square
                    | ActivationKind::LeakyRelu(_)
                    | ActivationKind::Sigmoid
                    | ActivationKind::Tanh
                    | ActivationKind::Gelu
            ),
            Layer::Softmax(_) => true,
            _ => false,
        };
        if !ok {
            return Err(MpcError::Config(format!(
                "layer {i} ({}) is not supported in private prediction (supported: Dense, \
                 Conv2d, average and max pooling, padding, flatten, reshape, ReLU, LeakyReLU, \
                 x², sigmoid, tanh, GELU, softmax)",
                l.describe()
            )));
        }
    }
    Ok(())
}

/// A model's public architecture and secret-shared parameters.
#[derive(Debug)]
pub struct SharedModel<R: Z2k> {
    /// The layers' kinds and hyperparameters (weights are placeholders).
    pub(crate) layout: Sequential,
    pub(crate) preprocessing: Option<Preprocessing>,
    /// Per layer with parameters: weight (`out × in`) and bias (`1 × out`).
    pub(crate) params: Vec<Option<(AShare<R>, AShare<R>)>>,
}

impl<R: Z2k> SharedModel<R> {
    /// The per-example input shape.
    pub fn input_shape(&self) -> &[usize] {
        self.layout.input_shape()
    }

    /// The preprocessing the model owner declared.
    pub fn preprocessing(&self) -> Option<&Preprocessing> {
        self.preprocessing.as_ref()
    }

    /// The number of classes (outputs).
    pub fn classes(&self) -> usize {
        self.layout.output_shape().iter().product()
    }
}

fn to_array2(t: &cipherflow_nn::Tensor, rows: usize, cols: usize) -> Result<Array2<f64>, MpcError> {
    Array2::from_shape_vec((rows, cols), t.iter().map(|&v| f64::from(v)).collect())
        .map_err(|e| MpcError::Config(e.to_string()))
}

/// Secret-shares the model owner's model (it passes `Some`); the
/// architecture is sent in the clear, the weights as shares.
pub fn share_model<R: Z2k>(
    p: &mut Party<R>,
    model: Option<&Sequential>,
) -> Result<SharedModel<R>, MpcError> {
    share_model_with(p, model, None)
}

/// [`share_model`], with the model's preprocessing made public too.
pub fn share_model_with<R: Z2k>(
    p: &mut Party<R>,
    model: Option<&Sequential>,
    preprocessing: Option<&Preprocessing>,
) -> Result<SharedModel<R>, MpcError> {
    let arch = p.with_op("arch", |p| {
        if p.id() == MODEL_OWNER {
            let m =
                model.ok_or_else(|| MpcError::Party("the model owner needs the model".into()))?;
            // BatchNorm folded into the layer before it, by its owner.
            let m = &m.folded()?;
            check_supported(m)?;
            let a = Architecture {
                spec: ModelSpec::from_model(m)?,
                preprocessing: preprocessing.cloned(),
            };
            let bytes = serde_json::to_vec(&a).map_err(|e| MpcError::Config(e.to_string()))?;
            p.round();
            p.send_bytes(1, bytes.clone())?;
            p.send_bytes(2, bytes)?;
            Ok(a)
        } else {
            p.round();
            let bytes = p.recv_bytes(MODEL_OWNER)?;
            let malformed = |what: String| MpcError::Malformed {
                from: MODEL_OWNER,
                what,
            };
            if bytes.len() > MAX_ARCH_BYTES {
                return Err(malformed("an architecture over 1 MiB".into()));
            }
            let a: Architecture = serde_json::from_slice(&bytes)
                .map_err(|e| malformed(format!("architecture: {e}")))?;
            if let Some(pp) = &a.preprocessing {
                pp.validate()
                    .map_err(|e| malformed(format!("preprocessing: {e}")))?;
            }
            Ok(a)
        }
    })?;
    let layout = match model {
        Some(m) => m.folded()?,
        None => arch
            .spec
            .build_bounded(0, MAX_PARAMS)
            .map_err(|e| MpcError::Malformed {
                from: MODEL_OWNER,
                what: format!("architecture: {e}"),
            })?,
    };
    check_supported(&layout)?;
    let mut params = Vec::with_capacity(layout.layers().len());
    for (i, layer) in layout.layers().iter().enumerate() {
        let (w, b) = match layer {
            Layer::Dense(d) => (&d.weight.value, &d.bias.value),
            Layer::Conv2d(c) => (&c.weight.value, &c.bias.value),
            _ => {
                params.push(None);
                continue;
            }
        };
        let out = w.shape().first().copied().unwrap_or(0);
        let per = w.len() / out.max(1);
        // Only the owner's values are read; the others' are placeholders
        // of the public shapes.
        let mine = if p.id() == MODEL_OWNER {
            Some((to_array2(w, out, per)?, to_array2(b, 1, out)?))
        } else {
            None
        };
        let w = p.private_input(MODEL_OWNER, mine.as_ref().map(|m| &m.0))?;
        let b = p.private_input(MODEL_OWNER, mine.as_ref().map(|m| &m.1))?;
        if w.shape() != (out, per) || b.shape() != (1, out) {
            return Err(MpcError::Malformed {
                from: MODEL_OWNER,
                what: format!("parameters of layer {i} of the wrong shape"),
            });
        }
        params.push(Some((w, b)));
    }
    Ok(SharedModel {
        layout,
        preprocessing: arch.preprocessing,
        params,
    })
}

/// im2col indices: rows `(b, oy, ox)`, columns `(c, ky, kx)`, into a
/// `B × (C·H·W)` matrix; [`ZERO_ENTRY`] where the window covers padding.
pub(crate) fn im2col(
    b: usize,
    (c, h, w): (usize, usize, usize),
    (kh, kw): (usize, usize),
    (sh, sw): (usize, usize),
    (ph, pw): (usize, usize),
) -> (usize, usize, usize, usize, Vec<usize>) {
    let ho = (h + 2 * ph).saturating_sub(kh) / sh.max(1) + 1;
    let wo = (w + 2 * pw).saturating_sub(kw) / sw.max(1) + 1;
    let cols = c * kh * kw;
    let mut idx = Vec::with_capacity(b * ho * wo * cols);
    for e in 0..b {
        for oy in 0..ho {
            for ox in 0..wo {
                for ch in 0..c {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = (oy * sh + ky).checked_sub(ph).filter(|&y| y < h);
                            let ix = (ox * sw + kx).checked_sub(pw).filter(|&x| x < w);
                            idx.push(match (iy, ix) {
                                (Some(y), Some(x)) => e * c * h * w + (ch * h + y) * w + x,
                                _ => ZERO_ENTRY,
                            });
                        }
                    }
                }
            }
        }
    }
    (b * ho * wo, cols, ho, wo, idx)
}

/// Gather indices from a convolution's `(b, oy, ox) × co` product to
/// `b × (co, oy, ox)` (the nn crate's layout).
pub(crate) fn conv_to_chw(batch: usize, co: usize, pixels: usize) -> Vec<usize> {
    (0..batch)
        .flat_map(|e| {
            (0..co).flat_map(move |ch| (0..pixels).map(move |pix| (e * pixels + pix) * co + ch))
        })
        .collect()
}

pub(crate) fn chw(shape: &[usize], what: &str) -> Result<(usize, usize, usize), MpcError> {
    match shape {
        &[c, h, w] => Ok((c, h, w)),
        _ => Err(MpcError::Config(format!(
            "{what} needs [C, H, W] inputs, got {shape:?}"
        ))),
    }
}

/// One layer on `h` (`B × width`, examples flattened).
fn apply_layer<R: Z2k>(
    p: &mut Party<R>,
    layer: &Layer,
    params: Option<&(AShare<R>, AShare<R>)>,
    shape: &[usize],
    h: AShare<R>,
) -> Result<AShare<R>, MpcError> {
    let f = p.fixed_point().frac;
    let batch = h.shape().0;
    let need = || MpcError::Config("missing shared parameters".into());
    Ok(match layer {
        Layer::Dense(_) => {
            let (w, b) = params.ok_or_else(need)?;
            let z = p.with_op("dense", |p| {
                let z = p.matmul_transposed(&h, w)?;
                p.truncate(&z, f)
            })?;
            p.add_row(&z, b)?
        }
        Layer::Conv2d(c) => {
            let (w, b) = params.ok_or_else(need)?;
            let (_, _, kh, kw) = c.dims();
            let dims = chw(shape, "Conv2d")?;
            let (rows, cols, ho, wo, idx) = im2col(batch, dims, (kh, kw), c.stride, c.padding);
            let x = p.gather(&h, rows, cols, &idx)?;
            let z = p.with_op("conv", |p| {
                let z = p.matmul_transposed(&x, w)?;
                p.truncate(&z, f)
            })?;
            let z = p.add_row(&z, b)?;
            let co = z.shape().1;
            p.gather(&z, batch, co * ho * wo, &conv_to_chw(batch, co, ho * wo))?
        }
        Layer::Pool2d(pool) => {
            let (c, hh, ww) = chw(shape, "pooling")?;
            let ((kh, kw), (sh, sw)) = (pool.kernel, pool.stride);
            // Windows of one channel at a time: im2col of C = 1 images.
            let (rows, cols, ho, wo, idx) =
                im2col(batch * c, (1, hh, ww), (kh, kw), (sh, sw), (0, 0));
            let win = p.gather(&h, rows, cols, &idx)?;
            let pooled = match pool.kind {
                PoolKind::Avg => {
                    let s = p.sum_rows(&win);
                    p.mul_public_fx(&s, 1.0 / (kh * kw) as f64)?
                }
                PoolKind::Max => p.max_argmax(&win)?.0,
            };
            p.reshape(&pooled, batch, c * ho * wo)?
        }
        Layer::Pad2d(pad) => {
            let (c, hh, ww) = chw(shape, "Pad2d")?;
            let (ho, wo) = (hh + pad.top + pad.bottom, ww + pad.left + pad.right);
            let mut idx = Vec::with_capacity(batch * c * ho * wo);
            let mut padded = Vec::with_capacity(idx.capacity());
            for e in 0..batch {
                for ch in 0..c {
                    for y in 0..ho {
                        for x in 0..wo {
                            let inside = (y >= pad.top && y < pad.top + hh)
                                && (x >= pad.left && x < pad.left + ww);
                            idx.push(if inside {
                                e * c * hh * ww + (ch * hh + y - pad.top) * ww + x - pad.left
                            } else {
                                ZERO_ENTRY
                            });
                            padded.push(if inside { 0.0 } else { f64::from(pad.value) });
                        }
                    }
                }
            }
            let g = p.gather(&h, batch, c * ho * wo, &idx)?;
            if pad.value == 0.0 {
                g
            } else {
                let enc = p.fixed_point().encode::<R>(&padded);
                p.add_public(&g, &enc)?
            }
        }
        Layer::Flatten(_) | Layer::Reshape(_) => h,
        // An inner softmax (a final one is skipped by `logits_shared`).
        Layer::Softmax(_) => p.softmax(&h)?,
        Layer::Activation(a) => match a.kind {
            ActivationKind::Relu => p.relu(&h)?,
            ActivationKind::Square => p.mul_fx(&h, &h)?,
            ActivationKind::LeakyRelu(slope) => {
                let r = p.relu(&h)?;
                let r = p.mul_public_fx(&r, 1.0 - f64::from(slope))?;
                let l = p.mul_public_fx(&h, f64::from(slope))?;
                p.add(&r, &l)?
            }
            ActivationKind::Sigmoid => p.sigmoid(&h)?,
            ActivationKind::Gelu => p.gelu(&h)?,
            ActivationKind::Tanh => {
                // tanh x = 2σ(2x) − 1 (doubling is exact in fixed point).
                let doubled = p.mul_public(&h, R::from_i64(2));
                let s = p.sigmoid(&doubled)?;
                let two_s = p.mul_public(&s, R::from_i64(2));
                let minus_one = p.fixed_point().encode::<R>(&[-1.0]);
                p.add_public(&two_s, &minus_one)?
            }
        },
        other => {
            return Err(MpcError::Config(format!(
                "{} is not supported in private prediction",
                other.describe()
            )))
        }
    })
}

/// The shared logits of the client's inputs (`Some` at the client:
/// `B × features`, flattened and preprocessed).
pub fn logits_shared<R: Z2k>(
    p: &mut Party<R>,
    model: &SharedModel<R>,
    inputs: Option<&Array2<f64>>,
) -> Result<AShare<R>, MpcError> {
    let width: usize = model.input_shape().iter().product();
    if let Some(x) = inputs {
        if x.ncols() != width {
            return Err(MpcError::Config(format!(
                "inputs of {} values each; the model takes {:?} ({width})",
                x.ncols(),
                model.input_shape()
            )));
        }
    }
    let h = p.private_input(CLIENT, inputs)?;
    if h.shape().1 != width {
        return Err(MpcError::Malformed {
            from: CLIENT,
            what: format!("inputs of {} values, not {width}", h.shape().1),
        });
    }
    logits_from(p, model, h)
}

/// The shared logits of inputs already shared (`B × features`, checked
/// against the model's input width by the caller).
pub(crate) fn logits_from<R: Z2k>(
    p: &mut Party<R>,
    model: &SharedModel<R>,
    mut h: AShare<R>,
) -> Result<AShare<R>, MpcError> {
    let mut shape = model.input_shape().to_vec();
    let n = model.layout.layers().len();
    for (i, (layer, params)) in model.layout.layers().iter().zip(&model.params).enumerate() {
        if i + 1 == n && matches!(layer, Layer::Softmax(_)) {
            // A final softmax does not change the argmax: skipped.
            break;
        }
        h = apply_layer(p, layer, params.as_ref(), &shape, h)?;
        shape = layer.output_shape(&shape)?;
    }
    Ok(h)
}

/// Classifies the client's inputs (`Some` at the client: `B × features`,
/// flattened) with a shared model; the client gets `Some(classes)`.
pub fn predict_shared<R: Z2k>(
    p: &mut Party<R>,
    model: &SharedModel<R>,
    inputs: Option<&Array2<f64>>,
) -> Result<Option<Vec<usize>>, MpcError> {
    let h = logits_shared(p, model, inputs)?;
    let idx = p.argmax(&h)?;
    Ok(p.reveal_int_to(&idx, &[CLIENT])?
        .map(|v| v.into_iter().map(|c| c.max(0) as usize).collect()))
}

/// [`share_model`] then [`predict_shared`]: the model owner passes
/// `Some(model)`, the client `Some(inputs)`; the client gets the classes.
pub fn private_predict<R: Z2k>(
    p: &mut Party<R>,
    model: Option<&Sequential>,
    inputs: Option<&Array2<f64>>,
) -> Result<Option<Vec<usize>>, MpcError> {
    let shared = share_model(p, model)?;
    predict_shared(p, &shared, inputs)
}

/// An MLP `input → hidden… → classes` with ReLU between Dense layers
/// (Flatten first), in the nn crate's layers.
pub fn mlp(
    input_shape: Vec<usize>,
    hidden: &[usize],
    classes: usize,
    seed: u64,
) -> Result<Sequential, NnError> {
    use rand_core::SeedableRng;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let mut layers = vec![Layer::Flatten(Flatten::new())];
    let mut width: usize = input_shape.iter().product();
    for &h in hidden {
        layers.push(Layer::Dense(Dense::new(width, h, &mut rng)));
        layers.push(Layer::Activation(Activation::new(ActivationKind::Relu)));
        width = h;
    }
    layers.push(Layer::Dense(Dense::new(width, classes, &mut rng)));
    Sequential::new(input_shape, layers)
}

/// A data set's features as a `N × F` f64 matrix.
pub fn features_f64(data: &cipherflow_nn::data::Dataset) -> Array2<f64> {
    data.features().mapv(f64::from)
}

/// Trains an [`mlp`] with the nn crate (Adam, batches of 64, fixed seed).
pub fn train_mlp(
    train: &cipherflow_nn::data::Dataset,
    hidden: &[usize],
    epochs: usize,
    seed: u64,
) -> Result<Sequential, MpcError> {
    use cipherflow_nn::train::{default_loss, fit, TrainConfig};
    let mut model = mlp(train.shape().to_vec(), hidden, train.num_classes(), seed)?;
    let mut cfg = TrainConfig::default_for(epochs, 64, None);
    cfg.seed = seed;
    let loss = default_loss(&model);
    fit(&mut model, loss, train, None, &cfg, &mut |_| {})?;
    Ok(model)
}

#[cfg(test)]
mod tests {
    //! A lying model owner: what it publishes is checked by the others
    //! before they allocate or compute.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::{run_local, FixedPoint, Network};

    /// Party 0 runs `owner`; the others try to receive a model. Returns
    /// what parties 1 and 2 got (their error messages).
    fn against(owner: impl Fn(&mut Party<u64>) -> Result<(), MpcError> + Sync) -> Vec<String> {
        let run = run_local::<u64, _, _>(Network::InProcess, FixedPoint::default(), |p| {
            if p.id() == MODEL_OWNER {
                owner(p).map(|_| String::new())
            } else {
                Ok(match share_model_with(p, None, None) {
                    Ok(_) => "accepted".to_string(),
                    Err(e) => e.to_string(),
                })
            }
        })
        .unwrap();
        run.outputs.into_iter().skip(1).collect()
    }

    fn publish(p: &mut Party<u64>, bytes: Vec<u8>) -> Result<(), MpcError> {
        p.with_op("arch", |p| {
            p.round();
            p.send_bytes(1, bytes.clone())?;
            p.send_bytes(2, bytes)
        })
    }

    #[test]
    fn a_lying_model_owner_is_caught() {
        // An architecture over the 1 MiB bound.
        for e in against(|p| publish(p, vec![b' '; MAX_ARCH_BYTES + 1])) {
            assert!(e.contains("over 1 MiB"), "{e}");
        }
        // Exactly the bound is read (and then found not to be JSON).
        for e in against(|p| publish(p, vec![b' '; MAX_ARCH_BYTES])) {
            assert!(
                !e.contains("over 1 MiB") && e.contains("architecture"),
                "{e}"
            );
        }
        // Not an architecture at all, and an unknown field.
        for bytes in [
            b"not json".to_vec(),
            br#"{"spec": {"input": [3], "layers": []}, "preprocessing": null, "extra": 1}"#
                .to_vec(),
        ] {
            for e in against(|p| publish(p, bytes.clone())) {
                assert!(e.contains("malformed message from party 0"), "{e}");
            }
        }
        // A model far too large to build (10^12 parameters): refused
        // before anything is allocated.
        let huge = br#"{"spec": {"input": [1000000], "layers": [{"type": "dense", "units": 1000000}]}, "preprocessing": null}"#;
        for e in against(|p| publish(p, huge.to_vec())) {
            assert!(e.contains("parameters"), "{e}");
        }
        // A layer private prediction does not run.
        let lstm = br#"{"spec": {"input": [4, 3], "layers": [{"type": "lstm", "hidden": 2}]}, "preprocessing": null}"#;
        for e in against(|p| publish(p, lstm.to_vec())) {
            assert!(e.contains("not supported"), "{e}");
        }
        // A valid architecture, then weights of another shape than it says.
        let dense = br#"{"spec": {"input": [3], "layers": [{"type": "dense", "units": 2}]}, "preprocessing": null}"#;
        for e in against(|p| {
            publish(p, dense.to_vec())?;
            let w = Array2::<f64>::zeros((5, 7));
            p.private_input(MODEL_OWNER, Some(&w))?;
            p.private_input(MODEL_OWNER, Some(&Array2::zeros((1, 2))))?;
            Ok(())
        }) {
            assert!(e.contains("wrong shape"), "{e}");
        }
        // Preprocessing that would divide by zero.
        let pp = br#"{"spec": {"input": [3], "layers": [{"type": "dense", "units": 2}]}, "preprocessing": {"mean": [0.5], "std": [0.0]}}"#;
        for e in against(|p| publish(p, pp.to_vec())) {
            assert!(e.contains("preprocessing"), "{e}");
        }
    }
}
