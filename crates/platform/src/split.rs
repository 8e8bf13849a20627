//! Split inference in `mpc` mode, the three roles in one process: the
//! head (the first `k` layers) runs under encryption at the platform, its
//! output is handed off as additive shares (`cipherflow_tensor::handoff`),
//! and the tail runs in three-party computation among the creator (its
//! weights), the user (its share; it alone learns the class) and the
//! platform (its share) — `cipherflow_mpc::programs::handoff`.
//!
//! This is the library path the served `mpc` mode will take across
//! processes; here each role's messages are counted as they would travel
//! (ciphertexts and keys in their wire encodings, the computation's
//! bytes and rounds), so the figures per split are those of the
//! deployment but for the network.
//!
//! **Who sees what.** The platform sees the user's ciphertexts, its own
//! mask and replicated shares; the user its masked decryption (within
//! 2^−40 of uniform, whatever the activations) and the class; the creator
//! replicated shares. No party sees an activation; the head's weights stay
//! with the platform (the user's decryption is masked and its `c1`
//! re-randomized), the tail's with the creator (secret-shared). The
//! assumption is the computation's: semi-honest parties, no two of the
//! three colluding.

use crate::leakage::{inversion_leakage, InversionData, InversionSettings, Leakage};
use crate::PlatformError;
use cipherflow_mpc::programs::handoff::{predict_from_handoff, ActivationShare, PLATFORM, USER};
use cipherflow_mpc::programs::predict::{share_model, MODEL_OWNER};
use cipherflow_mpc::{run_local, FixedPoint, MpcError, Network};
use cipherflow_nn::{Layer, Sequential};
use cipherflow_tensor::handoff::decrypt_handoff;
use cipherflow_tensor::{
    ActivationDecoding, ActivationShares, CompileOptions, EncryptedModel, KeySet, Mode, Plan,
};
use rand_core::{CryptoRng, RngCore};
use std::time::Instant;

/// Fractional bits of the tail's fixed point (in `Z_2^128`).
pub const SPLIT_FRAC_BITS: u32 = 20;
/// Statistical security of the hand-off mask (bits).
pub const SPLIT_STAT_BITS: u32 = 40;

/// What one split costs and answers, per input.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SplitReport {
    /// The split: layers `0..k` under encryption.
    pub k: usize,
    /// The class of each input (what the user alone learns).
    pub classes: Vec<usize>,
    /// The head's depth (levels) and ring degree.
    pub head_depth: usize,
    /// log2 N of the head's parameters.
    pub log_n: u32,
    /// Evaluation keys the user uploads once per session (bytes).
    pub key_bytes: usize,
    /// Encrypted input per query (bytes, user → platform).
    pub upload_bytes: usize,
    /// Masked head output per query (bytes, platform → user).
    pub download_bytes: usize,
    /// The computation's bytes per query, all parties together (the
    /// tail's weights shared once per session are in `model_bytes`).
    pub mpc_bytes: u64,
    /// The computation's rounds per query.
    pub mpc_rounds: u64,
    /// Sharing the tail's weights, once per session (bytes).
    pub model_bytes: u64,
    /// Milliseconds per query: encryption, head, mask, decryption and
    /// decoding (user and platform), and the computation.
    pub ms_he: f64,
    /// Milliseconds per query in the computation.
    pub ms_mpc: f64,
    /// Of `ms_he`, the platform's part: the head and the mask.
    pub ms_head: f64,
}

impl SplitReport {
    /// Milliseconds per query in all.
    pub fn ms_per_input(&self) -> f64 {
        self.ms_he + self.ms_mpc
    }

    /// Bytes per query, all parties together.
    pub fn bytes_per_input(&self) -> u64 {
        (self.upload_bytes + self.download_bytes) as u64 + self.mpc_bytes
    }
}

fn mpc_err(e: MpcError) -> PlatformError {
    PlatformError::BadRequest(format!("secret-shared tail: {e}"))
}

/// The head of `model` (`0..k`) compiled for a hand-off, latency mode,
/// inputs clamped to `|x| ≤ input_bound`.
pub fn compile_head(
    model: &Sequential,
    k: usize,
    input_bound: f64,
) -> Result<(EncryptedModel, Sequential), PlatformError> {
    let (head, tail) = model.split_at(k)?;
    Ok((compile_encrypted_head(&head, input_bound)?, tail))
}

/// The splits `k` in `1..=max_k` of `model` (the layers the platform
/// holds, or all of them) that can be served in `mpc` mode: the head
/// `0..k` computes something (not only reshapes) and compiles to an
/// encrypted head (no layer it cannot evaluate).
pub fn servable_splits(model: &Sequential, max_k: usize) -> Vec<usize> {
    let opts = CompileOptions {
        for_handoff: true,
        ..CompileOptions::default()
    };
    let layers = model.layers();
    (1..=max_k.min(layers.len()))
        .filter(|&k| {
            let computes = layers
                .iter()
                .take(k)
                .any(|l| !matches!(l, Layer::Flatten(_) | Layer::Reshape(_)));
            let head = if k == layers.len() {
                Ok(model.clone())
            } else {
                model.split_at(k).map(|(h, _)| h)
            };
            computes && head.is_ok_and(|h| Plan::compile_with(&h, &opts).is_ok())
        })
        .collect()
}

/// A head (the layers the platform runs) compiled for a hand-off,
/// latency mode, inputs clamped to `|x| ≤ input_bound`.
pub fn compile_encrypted_head(
    head: &Sequential,
    input_bound: f64,
) -> Result<EncryptedModel, PlatformError> {
    let opts = CompileOptions {
        for_handoff: true,
        ..CompileOptions::default()
    };
    let plan = Plan::compile_with(head, &opts)?;
    Ok(EncryptedModel::new(&plan, Mode::Latency)?.with_input_bound(input_bound)?)
}

/// Runs `inputs` (flattened, preprocessed) through `model` split after
/// layer `k`, one query per input, and reports the classes and the costs.
pub fn run_split_local<R: RngCore + CryptoRng>(
    model: &Sequential,
    k: usize,
    input_bound: f64,
    inputs: &[Vec<f64>],
    rng: &mut R,
) -> Result<SplitReport, PlatformError> {
    let (server, tail) = compile_head(model, k, input_bound)?;
    let params = server.plan().params().clone();
    let client = server.client()?;
    let keys = KeySet::generate(&client, rng)?;
    let key_bytes = keys.eval_key_bytes()?.len();
    let hp = server.handoff_params(SPLIT_FRAC_BITS, SPLIT_STAT_BITS)?;
    let mut report = SplitReport {
        k,
        head_depth: server.plan().depth(),
        log_n: params.n().trailing_zeros(),
        key_bytes,
        ..SplitReport::default()
    };
    // The HE part of every query, then the tail for all of them in one
    // session (the creator shares its weights once).
    let start = Instant::now();
    let mut handed: Vec<(ActivationShares, ActivationShares)> = Vec::with_capacity(inputs.len());
    let mut decoding: Option<ActivationDecoding> = None;
    for x in inputs {
        let ct = client.encrypt(&keys.sk, std::slice::from_ref(x), rng)?;
        report.upload_bytes = ct.to_bytes(&params)?.len();
        let head = Instant::now();
        let (masked, platform) =
            server.respond_handoff(&keys.rlk, &keys.gk, &keys.pk, &ct, &hp, rng)?;
        report.ms_head += head.elapsed().as_secs_f64() * 1e3;
        report.download_bytes = masked.to_bytes(&params)?.len();
        let user = decrypt_handoff(&keys.decryptor(), &masked)?;
        // The decoding depends on public figures only: built once per
        // session (each side builds its own in a deployment).
        let d = match decoding.take() {
            Some(d) if d.fits(&masked) => d,
            _ => ActivationDecoding::new(&params, &masked, &hp)?,
        };
        handed.push((d.apply(&user)?, d.apply(&platform)?));
        decoding = Some(d);
    }
    let n = inputs.len().max(1) as f64;
    report.ms_he = start.elapsed().as_secs_f64() * 1e3 / n;
    report.ms_head /= n;
    let fp = FixedPoint::new::<u128>(SPLIT_FRAC_BITS).map_err(mpc_err)?;
    let run = run_local::<u128, _, _>(Network::InProcess, fp, |p| {
        let shared = share_model(p, (p.id() == MODEL_OWNER).then_some(&tail))?;
        let model = (p.stats().bytes(), p.stats().rounds());
        let mut classes = Vec::with_capacity(handed.len());
        for (u, pl) in &handed {
            let mine = match p.id() {
                USER => Some(u),
                PLATFORM => Some(pl),
                _ => None,
            };
            let share = mine.map(|s| ActivationShare {
                rows: s.rows,
                cols: s.cols,
                values: &s.values,
            });
            let guard = u.guard;
            if let Some(c) = predict_from_handoff(p, &shared, share, guard)? {
                classes.extend(c);
            }
        }
        Ok((classes, model))
    })
    .map_err(mpc_err)?;
    report.ms_mpc = run.seconds * 1e3 / n;
    let model_bytes: u64 = run.outputs.iter().map(|(_, (b, _))| *b).sum();
    let model_rounds = run.outputs.iter().map(|(_, (_, r))| *r).max().unwrap_or(0);
    report.model_bytes = model_bytes;
    let queries = inputs.len().max(1) as u64;
    report.mpc_bytes = run.stats.bytes().saturating_sub(model_bytes) / queries;
    report.mpc_rounds = run.stats.rounds().saturating_sub(model_rounds) / queries;
    report.classes = run
        .outputs
        .into_iter()
        .nth(USER)
        .map(|(c, _)| c)
        .unwrap_or_default();
    Ok(report)
}

/// One row of a model's split table.
#[derive(Clone, Debug)]
pub struct SplitRow {
    /// Layers `0..k` form the head.
    pub k: usize,
    /// The last layer of the head.
    pub after: String,
    /// The `mpc` mode's figures, or why this split cannot be handed off.
    pub mpc: Result<SplitReport, String>,
    /// What `plain-tail` mode would reveal at this split.
    pub leakage: Option<Leakage>,
}

impl SplitRow {
    /// The row as the front ends print it (one JSON object): `k`,
    /// `after`, `mpc` (the figures per input, the classes — or `error`)
    /// and `plain_tail_leakage` (or null).
    pub fn json(&self) -> serde_json::Value {
        let mpc = match &self.mpc {
            Ok(r) => serde_json::json!({
                "log_n": r.log_n, "head_depth": r.head_depth,
                "ms_per_input": r.ms_per_input(), "ms_he": r.ms_he, "ms_head": r.ms_head,
                "ms_mpc": r.ms_mpc, "key_bytes": r.key_bytes, "upload_bytes": r.upload_bytes,
                "download_bytes": r.download_bytes, "mpc_bytes": r.mpc_bytes,
                "mpc_rounds": r.mpc_rounds, "bytes_per_input": r.bytes_per_input(),
                "tail_weight_bytes": r.model_bytes, "classes": r.classes,
            }),
            Err(e) => serde_json::json!({ "error": e }),
        };
        let leakage = self.leakage.as_ref().map(|l| {
            serde_json::json!({
                "activations": l.activations, "ssim": l.ssim, "psnr": l.psnr,
                "agreement_on_reconstructions": l.agreement_on_reconstructions,
                "accuracy_on_reconstructions": l.accuracy_on_reconstructions,
                "accuracy": l.accuracy,
            })
        });
        serde_json::json!({
            "k": self.k, "after": self.after, "mpc": mpc, "plain_tail_leakage": leakage,
        })
    }
}

/// Every split of `model` (`only`: one): [`run_split_local`] on `inputs`
/// (preprocessed, `|x| ≤ input_bound`) and, given `inversion`, the
/// leakage of `plain-tail` ([`inversion_leakage`]). A split that cannot
/// be handed off keeps its reason and its leakage.
pub fn split_table<R: RngCore + CryptoRng>(
    model: &Sequential,
    input_bound: f64,
    inputs: &[Vec<f64>],
    inversion: Option<(&InversionData<'_>, &InversionSettings)>,
    only: Option<usize>,
    rng: &mut R,
) -> Result<Vec<SplitRow>, PlatformError> {
    let layers = model.layers().len();
    if let Some(k) = only.filter(|&k| k == 0 || k >= layers) {
        return Err(PlatformError::BadRequest(format!(
            "split {k}: a {layers}-layer model splits after layers 1..={}",
            layers.saturating_sub(1)
        )));
    }
    let mut rows = Vec::new();
    for k in (1..layers).filter(|&k| only.is_none_or(|o| o == k)) {
        let leakage = match inversion {
            Some((data, settings)) => Some(inversion_leakage(model, k, data, settings)?),
            None => None,
        };
        let after = model
            .layers()
            .get(k - 1)
            .map(|l| l.describe())
            .unwrap_or_default();
        rows.push(SplitRow {
            k,
            after,
            mpc: run_split_local(model, k, input_bound, inputs, rng).map_err(|e| e.to_string()),
            leakage,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn only_heads_that_compute_and_compile_are_servable() {
        // Flatten → Dense → ReLU → Dense: a flatten alone computes
        // nothing; a head ending in ReLU does not compile (no
        // approximation asked).
        let m = cipherflow_mpc::programs::predict::mlp(vec![1, 4, 4], &[8], 3, 1).unwrap();
        assert_eq!(servable_splits(&m, 3), vec![2]);
        assert_eq!(servable_splits(&m, 1), Vec::<usize>::new());
        let cnn = cipherflow_nn::examples::digits_cnn().unwrap();
        assert_eq!(servable_splits(&cnn, 5), vec![1, 2, 3, 4, 5]);
    }
}
