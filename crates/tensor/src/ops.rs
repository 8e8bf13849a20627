//! Reductions on encrypted vectors: sums, means and dot products.
//!
//! In the replicated layout the padding slots may hold anything (an
//! activation of 0 is not 0), so every reduction first multiplies by a
//! plaintext mask that also carries the weights: sum, mean and a dot product
//! with a plaintext vector all cost one level and `log2(chunk)` rotations,
//! and leave the result in every slot. In the batched layout they are
//! rotation-free sums over the element ciphertexts.

use crate::layout::{EncTensor, Layout};
use crate::TensorError;
use cipherflow_ckks::{Ciphertext, Encoder, Evaluator, GaloisKeys, RelinKey};

/// Rotation steps a reduction of a vector of `len` entries needs.
pub fn reduction_steps(len: usize, slots: usize) -> Vec<i64> {
    Evaluator::inner_sum_steps(crate::layout::replicated_chunk(len, slots))
}

fn check_len(x: &EncTensor, w: &[f64]) -> Result<(), TensorError> {
    if w.len() != x.len() {
        return Err(TensorError::Shape(format!(
            "{} weights for a tensor of {}",
            w.len(),
            x.len()
        )));
    }
    Ok(())
}

/// `Σ_i w_i x_i` with plaintext weights: one ciphertext (every slot holds
/// the result in the replicated layout; slot `k` holds example `k`'s in the
/// batched one), rescaled to `out_scale`.
pub fn dot_plain(
    eval: &Evaluator,
    encoder: &Encoder,
    gk: &GaloisKeys,
    x: &EncTensor,
    w: &[f64],
    out_scale: f64,
) -> Result<Ciphertext, TensorError> {
    check_len(x, w)?;
    match x.layout() {
        Layout::Batched { .. } => {
            let (cts, ws): (Vec<&Ciphertext>, Vec<f64>) = x
                .ciphertexts()
                .iter()
                .zip(w)
                .filter(|(_, &v)| v != 0.0)
                .map(|(c, &v)| (c, v))
                .unzip();
            if cts.is_empty() {
                return Err(TensorError::Invalid("all weights are zero".into()));
            }
            Ok(eval.rescale(&eval.mul_const_sum(&cts, &ws, out_scale)?)?)
        }
        Layout::Replicated { chunk } => {
            let slots = encoder.slots();
            let level = x.level();
            let ql = *eval.params().q().get(level).ok_or(TensorError::Ckks(
                cipherflow_ckks::CkksError::InvalidLevel(level),
            ))? as f64;
            let mut acc: Option<Ciphertext> = None;
            for (b, ct) in x.ciphertexts().iter().enumerate() {
                // Weights replicated like the data (zero on the padding).
                let v: Vec<f64> = (0..slots)
                    .map(|t| w.get(b * chunk + t % chunk).copied().unwrap_or(0.0))
                    .collect();
                let pt = encoder.encode(&v, level, out_scale * ql / ct.scale())?;
                let p = eval.mul_plain(ct, &pt)?;
                acc = Some(match acc {
                    None => p,
                    Some(a) => eval.add(&a, &p)?,
                });
            }
            let acc = acc.ok_or_else(|| TensorError::Shape("empty tensor".into()))?;
            let summed = eval.inner_sum(&acc, chunk, gk)?;
            Ok(eval.rescale(&summed)?)
        }
    }
}

/// The sum of the entries (see [`dot_plain`]).
pub fn sum(
    eval: &Evaluator,
    encoder: &Encoder,
    gk: &GaloisKeys,
    x: &EncTensor,
    out_scale: f64,
) -> Result<Ciphertext, TensorError> {
    dot_plain(eval, encoder, gk, x, &vec![1.0; x.len()], out_scale)
}

/// The mean of the entries (see [`dot_plain`]).
pub fn mean(
    eval: &Evaluator,
    encoder: &Encoder,
    gk: &GaloisKeys,
    x: &EncTensor,
    out_scale: f64,
) -> Result<Ciphertext, TensorError> {
    let n = x.len() as f64;
    dot_plain(eval, encoder, gk, x, &vec![1.0 / n; x.len()], out_scale)
}

/// `Σ_i x_i y_i` of two encrypted vectors of the same shape and layout:
/// one multiplication level, then the sum as in [`dot_plain`] (two levels
/// in the replicated layout, one in the batched one).
pub fn dot(
    eval: &Evaluator,
    encoder: &Encoder,
    rlk: &RelinKey,
    gk: &GaloisKeys,
    x: &EncTensor,
    y: &EncTensor,
    out_scale: f64,
) -> Result<Ciphertext, TensorError> {
    if x.shape() != y.shape() || x.layout() != y.layout() {
        return Err(TensorError::Shape(
            "dot of tensors of different shapes or layouts".into(),
        ));
    }
    let prods = x
        .ciphertexts()
        .iter()
        .zip(y.ciphertexts())
        .map(|(a, b)| Ok(eval.rescale(&eval.mul_relin(a, b, rlk)?)?))
        .collect::<Result<Vec<_>, TensorError>>()?;
    match x.layout() {
        Layout::Batched { .. } => {
            let mut acc = prods
                .first()
                .cloned()
                .ok_or_else(|| TensorError::Shape("empty tensor".into()))?;
            for p in prods.iter().skip(1) {
                acc = eval.add(&acc, p)?;
            }
            Ok(acc)
        }
        Layout::Replicated { .. } => {
            let t = EncTensor {
                cts: prods,
                shape: x.shape().to_vec(),
                layout: x.layout(),
            };
            sum(eval, encoder, gk, &t, out_scale)
        }
    }
}
