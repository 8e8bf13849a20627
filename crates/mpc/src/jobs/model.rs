//! Private prediction with the parties' own files: the model owner's
//! model (ONNX or safetensors, as `cipherflow_nn::io::load` reads it), the
//! data owner's inputs (any file `cipherflow_nn::data::load_inputs`
//! reads), a helper with nothing. Each process passes only what it owns;
//! the model's architecture and preprocessing are made public by its
//! owner, the inputs are preprocessed by their owner, and the classes are
//! revealed to the data owner alone.

use super::{execute, Deployment};
use crate::programs::predict::{logits_shared, share_model_with, CLIENT, MODEL_OWNER};
use crate::{FixedPoint, MpcError, OpStats, Party, Stats};
use cipherflow_nn::data::Inputs;
use cipherflow_nn::{Preprocessing, Sequential};
use serde::Serialize;
use std::collections::BTreeMap;

/// Inputs classified per batch (bounds the shares of im2col matrices).
pub const CHUNK: usize = 1024;

/// What each party brings to a private prediction (`None` for what it
/// does not own).
#[derive(Clone, Copy, Debug, Default)]
pub struct ModelPredictJob<'a> {
    /// The model owner's model.
    pub model: Option<&'a Sequential>,
    /// The preprocessing the model owner publishes with it.
    pub preprocessing: Option<&'a Preprocessing>,
    /// The data owner's inputs (as read, before normalization).
    pub inputs: Option<&'a Inputs>,
    /// The data owner's own normalization, instead of the published one.
    pub normalize: Option<&'a Preprocessing>,
}

/// The report of a private prediction: what this process may know.
#[derive(Clone, Debug, Serialize)]
pub struct ModelPredictReport {
    /// Always "predict".
    pub task: &'static str,
    /// Inputs classified (their number is public).
    pub inputs: usize,
    /// Seconds of the whole run (slowest party of this process).
    pub seconds: f64,
    /// Bytes sent by the parties of this process.
    pub bytes: u64,
    /// Rounds.
    pub rounds: u64,
    /// Milliseconds per input.
    pub ms_per_input: f64,
    /// Counters by operation.
    pub ops: BTreeMap<&'static str, OpStats>,
    /// This process's party, in a multi-process run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub party: Option<usize>,
    /// The classes, at the data owner only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<usize>>,
    /// Accuracy against the inputs' labels, at the data owner only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// The class names the model owner published (public).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class_names: Option<Vec<String>>,
}

struct Run {
    classes: Option<Vec<usize>>,
    accuracy: Option<f64>,
    inputs: usize,
    class_names: Option<Vec<String>>,
}

/// The share of `classes` equal to the inputs' labels, numbered as the
/// model numbers its classes (`None` when the labels cannot be matched).
fn accuracy_of(inputs: &Inputs, classes: &[usize], names: Option<&[String]>) -> Option<f64> {
    let mut own = inputs.clone();
    own.relabel(names).ok()?;
    let labels = own.labels?;
    let right = classes.iter().zip(&labels).filter(|(a, b)| a == b).count();
    Some(right as f64 / classes.len().max(1) as f64)
}

/// The data owner's inputs, normalized as `p` says, as fixed-point-ready
/// `f64` rows of the model's input width.
fn prepared(
    inputs: &Inputs,
    p: Option<&Preprocessing>,
    shape: &[usize],
) -> Result<ndarray::Array2<f64>, MpcError> {
    let width: usize = shape.iter().product();
    if inputs.features.ncols() != width {
        return Err(MpcError::Config(format!(
            "inputs of shape {:?} do not fit the model's input shape {shape:?}",
            inputs.shape
        )));
    }
    let mut f = inputs.features.clone();
    if let Some(p) = p {
        p.apply(&mut f, shape)?;
    }
    Ok(f.mapv(f64::from))
}

fn program(p: &mut Party<u64>, job: &ModelPredictJob<'_>) -> Result<Run, MpcError> {
    let me = p.id();
    let shared = share_model_with(
        p,
        job.model.filter(|_| me == MODEL_OWNER),
        job.preprocessing.filter(|_| me == MODEL_OWNER),
    )?;
    // The data owner announces how many inputs it has (public).
    let count = p.with_op("count", |p| {
        if me == CLIENT {
            let n = job
                .inputs
                .ok_or_else(|| MpcError::Party("the data owner needs its inputs".into()))?
                .len();
            let b = (n as u64).to_le_bytes().to_vec();
            p.round();
            p.send_bytes(0, b.clone())?;
            p.send_bytes(2, b)?;
            Ok(n)
        } else {
            p.round();
            let b = p.recv_bytes(CLIENT)?;
            let n = <[u8; 8]>::try_from(b.as_slice())
                .map(u64::from_le_bytes)
                .map_err(|_| MpcError::Malformed {
                    from: CLIENT,
                    what: "input count".into(),
                })?;
            usize::try_from(n)
                .ok()
                .filter(|&n| n <= 1 << 28)
                .ok_or_else(|| MpcError::Malformed {
                    from: CLIENT,
                    what: format!("{n} inputs"),
                })
        }
    })?;
    let x = match (me, job.inputs) {
        (CLIENT, Some(i)) => Some(prepared(
            i,
            job.normalize.or(shared.preprocessing()),
            shared.input_shape(),
        )?),
        _ => None,
    };
    let mut classes = Vec::with_capacity(if me == CLIENT { count } else { 0 });
    let mut start = 0;
    while start < count {
        let end = (start + CHUNK).min(count);
        let part = x
            .as_ref()
            .map(|x| x.slice(ndarray::s![start..end, ..]).to_owned());
        let h = logits_shared(p, &shared, part.as_ref())?;
        let idx = p.argmax(&h)?;
        if let Some(v) = p.reveal_int_to(&idx, &[CLIENT])? {
            classes.extend(v.into_iter().map(|c| c.max(0) as usize));
        }
        start = end;
    }
    let class_names = shared.preprocessing().and_then(|p| p.class_names.clone());
    let accuracy = match (me, job.inputs) {
        (CLIENT, Some(i)) => accuracy_of(i, &classes, class_names.as_deref()),
        _ => None,
    };
    Ok(Run {
        classes: (me == CLIENT).then_some(classes),
        accuracy,
        inputs: count,
        class_names,
    })
}

/// Runs a private prediction (64-bit ring, fixed point `fp`): three
/// parties here, or this process's party of three.
pub fn predict_model(
    deployment: &Deployment,
    job: &ModelPredictJob<'_>,
    fp: FixedPoint,
) -> Result<ModelPredictReport, MpcError> {
    let out = execute::<u64, _>(deployment, fp, |p| program(p, job))?;
    let seconds = out.seconds;
    let runs: Vec<&Run> = out.outputs.iter().flatten().collect();
    let inputs = runs.first().map_or(0, |r| r.inputs);
    let client = out.outputs.get(CLIENT).and_then(|o| o.as_ref());
    let classes = client.and_then(|r| r.classes.clone());
    let accuracy = client.and_then(|r| r.accuracy);
    let stats: Stats = out.stats;
    Ok(ModelPredictReport {
        task: "predict",
        inputs,
        seconds,
        bytes: stats.bytes(),
        rounds: stats.rounds(),
        ms_per_input: 1e3 * seconds / inputs.max(1) as f64,
        ops: stats.ops.clone(),
        party: deployment.party(),
        classes,
        accuracy,
        class_names: runs.first().and_then(|r| r.class_names.clone()),
    })
}
