//! Private prediction: a model owned by party 0 applied to inputs owned
//! by party 1; only party 1 learns the predicted classes.
//!
//! The architecture (layer kinds) is public and sent by the model owner;
//! weights, biases, inputs and every intermediate value stay secret-shared.
//! Supported layers: Dense, ReLU, Square, Flatten, and a final Softmax
//! (skipped: it does not change the argmax).

use crate::computation::Roles;
use crate::party::{AShare, Party};
use crate::z2k::Z2k;
use crate::MpcError;
use cipherflow_nn::layers::{Activation, ActivationKind, Dense, Flatten, Layer};
use cipherflow_nn::{NnError, Sequential};
use ndarray::Array2;

/// Party 0 owns the model.
pub const MODEL_OWNER: usize = 0;
/// Party 1 owns the inputs and receives the predictions.
pub const CLIENT: usize = 1;
/// Party 2 only helps.
pub const HELPER: usize = 2;
/// The parties' names.
pub const ROLES: Roles = Roles(["model owner", "client", "helper"]);

const DENSE: u8 = 0;
const RELU: u8 = 1;
const SQUARE: u8 = 2;
const FLATTEN: u8 = 3;
const SOFTMAX: u8 = 4;

/// The public architecture of a model, one code per layer.
pub fn architecture(model: &Sequential) -> Result<Vec<u8>, MpcError> {
    let n = model.layers().len();
    model
        .layers()
        .iter()
        .enumerate()
        .map(|(i, l)| match l {
            Layer::Dense(_) => Ok(DENSE),
            Layer::Flatten(_) => Ok(FLATTEN),
            Layer::Activation(a) if a.kind == ActivationKind::Relu => Ok(RELU),
            Layer::Activation(a) if a.kind == ActivationKind::Square => Ok(SQUARE),
            Layer::Softmax(_) if i + 1 == n => Ok(SOFTMAX),
            other => Err(MpcError::Config(format!(
                "layer {i} ({}) is not supported in private prediction",
                other.describe()
            ))),
        })
        .collect()
}

fn to_array2(t: &cipherflow_nn::Tensor, rows: usize, cols: usize) -> Result<Array2<f64>, MpcError> {
    Array2::from_shape_vec((rows, cols), t.iter().map(|&v| f64::from(v)).collect())
        .map_err(|e| MpcError::Config(e.to_string()))
}

/// A model's architecture and secret-shared parameters.
#[derive(Debug)]
pub struct SharedModel<R: Z2k> {
    arch: Vec<u8>,
    dense: Vec<(AShare<R>, AShare<R>)>,
}

/// Secret-shares the model owner's model (it passes `Some`); the
/// architecture is sent in the clear, the weights as shares.
pub fn share_model<R: Z2k>(
    p: &mut Party<R>,
    model: Option<&Sequential>,
) -> Result<SharedModel<R>, MpcError> {
    let arch = p.with_op("arch", |p| {
        if p.id() == MODEL_OWNER {
            let m =
                model.ok_or_else(|| MpcError::Party("the model owner needs the model".into()))?;
            let a = architecture(m)?;
            p.round();
            p.send_bytes(1, a.clone())?;
            p.send_bytes(2, a.clone())?;
            Ok(a)
        } else {
            p.round();
            let a = p.recv_bytes(MODEL_OWNER)?;
            if a.iter().any(|&c| c > SOFTMAX) || a.len() > 1024 {
                return Err(MpcError::Malformed {
                    from: MODEL_OWNER,
                    what: "unknown layer code".into(),
                });
            }
            Ok(a)
        }
    })?;
    let mut dense = Vec::new();
    for (i, &code) in arch.iter().enumerate() {
        if code != DENSE {
            continue;
        }
        let mine = match model.and_then(|m| m.layers().get(i)) {
            Some(Layer::Dense(d)) => {
                let (o, n) = (d.weight.value.shape()[0], d.weight.value.shape()[1]);
                Some((
                    to_array2(&d.weight.value, o, n)?,
                    to_array2(&d.bias.value, 1, o)?,
                ))
            }
            _ => None,
        };
        if p.id() == MODEL_OWNER && mine.is_none() {
            return Err(MpcError::Config(format!("layer {i} is not Dense")));
        }
        let w = p.private_input(MODEL_OWNER, mine.as_ref().map(|m| &m.0))?;
        let b = p.private_input(MODEL_OWNER, mine.as_ref().map(|m| &m.1))?;
        dense.push((w, b));
    }
    Ok(SharedModel { arch, dense })
}

/// Classifies the client's inputs (`Some` at the client: `B × features`,
/// flattened) with a shared model; the client gets `Some(classes)`.
pub fn predict_shared<R: Z2k>(
    p: &mut Party<R>,
    model: &SharedModel<R>,
    inputs: Option<&Array2<f64>>,
) -> Result<Option<Vec<usize>>, MpcError> {
    let mut h = p.private_input(CLIENT, inputs)?;
    let f = p.fixed_point().frac;
    let mut params = model.dense.iter();
    for &code in &model.arch {
        h = match code {
            DENSE => {
                let (w, b) = params
                    .next()
                    .ok_or_else(|| MpcError::Config("missing dense parameters".into()))?;
                let z = p.with_op("dense", |p| {
                    let z = p.matmul_transposed(&h, w)?;
                    p.truncate(&z, f)
                })?;
                p.add_row(&z, b)?
            }
            RELU => p.relu(&h)?,
            SQUARE => p.mul_fx(&h, &h)?,
            _ => h,
        };
    }
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
