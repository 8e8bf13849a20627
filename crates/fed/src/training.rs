//! Models as flat vectors, local training (FedAvg / FedProx) and evaluation.
//!
//! A model travels as its parameters in `Sequential::params_mut` order
//! (layer by layer, PyTorch layouts), float32 little endian; its hash is
//! SHA-256 of those bytes.

use crate::config::LocalTraining;
use crate::error::{FedError, Result};
use cipherflow_nn::data::{shuffled_indices, Dataset};
use cipherflow_nn::optim::Optimizer;
use cipherflow_nn::train::{accuracy, default_loss, plain_step, Proximal};
use cipherflow_nn::Sequential;
use rand_core::RngCore;
use sha2::{Digest, Sha256};

/// The parameters of `model`, flattened.
pub fn flatten(model: &mut Sequential) -> Vec<f32> {
    let mut out = Vec::with_capacity(model.num_params());
    for p in model.params_mut() {
        out.extend(p.value.iter().copied());
    }
    out
}

/// Overwrites the parameters of `model` with `flat`; the model is unchanged
/// on a length mismatch.
pub fn load_flat(model: &mut Sequential, flat: &[f32]) -> Result<()> {
    if flat.len() != model.num_params() {
        return Err(FedError::Protocol(format!(
            "model has {} parameters, got {}",
            model.num_params(),
            flat.len()
        )));
    }
    let mut it = flat.iter();
    for p in model.params_mut() {
        for v in p.value.iter_mut() {
            *v = it.next().copied().unwrap_or(0.0);
        }
    }
    Ok(())
}

/// Float32 little-endian bytes.
pub fn to_bytes(flat: &[f32]) -> Vec<u8> {
    flat.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Parses float32 little-endian bytes of exactly `expected` values, all finite.
pub fn from_bytes(bytes: &[u8], expected: usize) -> Result<Vec<f32>> {
    if bytes.len() != expected * 4 {
        return Err(FedError::Protocol(format!(
            "model of {} bytes, expected {}",
            bytes.len(),
            expected * 4
        )));
    }
    let v: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if v.iter().any(|x| !x.is_finite()) {
        return Err(FedError::Protocol("model has non-finite values".into()));
    }
    Ok(v)
}

/// Checks that a received model has exactly `expected` values, all finite.
pub fn check_model(model: &[f32], expected: usize) -> Result<Vec<f32>> {
    if model.len() != expected {
        return Err(FedError::Protocol(format!(
            "model of {} bytes, expected {}",
            model.len() * 4,
            expected * 4
        )));
    }
    if model.iter().any(|x| !x.is_finite()) {
        return Err(FedError::Protocol("model has non-finite values".into()));
    }
    Ok(model.to_vec())
}

/// SHA-256 of the model bytes.
pub fn model_hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Trains `model` (whose parameters are the global model `global`) on
/// `data` and returns the update `w_local − w_global`. With `prox_mu > 0`
/// the local objective has FedProx's term `μ/2·‖w − w_global‖²`.
pub fn local_update(
    model: &mut Sequential,
    global: &[f32],
    data: &Dataset,
    cfg: &LocalTraining,
    prox_mu: f64,
    rng: &mut dyn RngCore,
) -> Result<Vec<f32>> {
    if data.is_empty() {
        return Err(FedError::Refused("no local data".into()));
    }
    load_flat(model, global)?;
    let loss = default_loss(model);
    let mut opt = Optimizer::sgd(cfg.lr, cfg.momentum, 0.0)?;
    let batch = cfg.batch_size.min(data.len()).max(1);
    let proximal = Proximal {
        mu: prox_mu as f32,
        anchor: global,
    };
    for _ in 0..cfg.epochs {
        let order = shuffled_indices(data.len(), rng);
        for idx in order.chunks(batch) {
            plain_step(model, loss, data, idx, &mut opt, Some(proximal))?;
        }
    }
    let local = flatten(model);
    Ok(local.iter().zip(global).map(|(a, b)| a - b).collect())
}

/// Local DP-SGD (`SecureSgd`) for one round: `plan.steps_per_round` steps
/// of Poisson sampling, per-example clipping and Gaussian noise, from the
/// global model; returns `w_local − w_global`.
pub fn local_update_dp(
    model: &mut Sequential,
    global: &[f32],
    data: &Dataset,
    cfg: &LocalTraining,
    plan: &crate::dp_plan::LocalDpPlan,
) -> Result<Vec<f32>> {
    use cipherflow_nn::{DpConfig, SecureSgd};
    if data.is_empty() {
        return Err(FedError::Refused("no local data".into()));
    }
    load_flat(model, global)?;
    let loss = default_loss(model);
    let opt = Optimizer::sgd(cfg.lr, cfg.momentum, 0.0)?;
    let mut sgd = SecureSgd::new(
        DpConfig {
            clip: plan.clip,
            noise_multiplier: plan.noise_multiplier,
            sample_rate: plan.sample_rate,
        },
        opt,
        cipherflow_dp::Accountant::Rdp.new_accountant(),
    )?;
    for _ in 0..plan.steps_per_round {
        sgd.step(model, loss, data)?;
    }
    let local = flatten(model);
    Ok(local.iter().zip(global).map(|(a, b)| a - b).collect())
}

/// Test accuracy of the flat model `weights` on `data`.
pub fn evaluate(model: &mut Sequential, weights: &[f32], data: &Dataset) -> Result<f32> {
    load_flat(model, weights)?;
    Ok(accuracy(model, data)?)
}
