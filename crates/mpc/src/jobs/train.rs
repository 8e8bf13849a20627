//! Private training of a neural network as a job: owner A's model
//! (architecture and initial weights), both owners' data, the trained
//! model revealed to the parties the job names and scored there on a test
//! set; beside it, where this process holds all the data, the same
//! training in plaintext (f64 softmax, f32 arithmetic) as the baseline.

use super::{execute, Deployment};
use crate::programs::logreg::Split;
use crate::programs::train::{private_train, NnTrainConfig, Shard};
use crate::{FixedPoint, MpcError, OpStats, Z2k};
use cipherflow_nn::data::shuffled_indices;
use cipherflow_nn::data::Dataset;
use cipherflow_nn::optim::Optimizer;
use cipherflow_nn::train::{accuracy, default_loss, plain_step};
use cipherflow_nn::{Preprocessing, Sequential};
use ndarray::{concatenate, Axis};
use rand_core::SeedableRng;
use serde::Serialize;
use std::collections::BTreeMap;

/// What each party brings (`None` for what it does not own).
#[derive(Clone, Debug)]
pub struct NnTrainJob<'a> {
    /// Owner A's model: architecture and initial weights.
    pub model: Option<&'a Sequential>,
    /// The preprocessing owner A publishes with it.
    pub preprocessing: Option<&'a Preprocessing>,
    /// Each owner's data (index 0: owner A, 1: owner B).
    pub shards: [Option<&'a Shard>; 2],
    /// How the data is divided.
    pub split: Split,
    /// Hyper-parameters and who learns the model.
    pub cfg: NnTrainConfig,
    /// Held-out examples (raw features) scored by the parties that learn
    /// the model.
    pub test: Option<&'a Dataset>,
}

/// The report of a private training: what this process may know.
#[derive(Clone, Debug, Serialize)]
pub struct NnTrainReport {
    /// Always "train".
    pub task: &'static str,
    /// "rows" or "columns".
    pub split: &'static str,
    /// Training examples.
    pub examples: usize,
    /// Passes over the data.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Learning rate.
    pub lr: f64,
    /// Momentum.
    pub momentum: f64,
    /// Ring bits.
    pub ring: u32,
    /// Fractional bits.
    pub frac: u32,
    /// Seconds of the whole run (slowest party of this process).
    pub seconds: f64,
    /// Seconds per epoch.
    pub epoch_seconds: Vec<f64>,
    /// Bytes sent by the parties of this process.
    pub bytes: u64,
    /// Rounds.
    pub rounds: u64,
    /// Counters by operation.
    pub ops: BTreeMap<&'static str, OpStats>,
    /// Test accuracy of the privately trained model (where it is revealed
    /// and a test set is given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_accuracy: Option<f64>,
    /// Test accuracy of the same training in plaintext (where this process
    /// holds all the data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plaintext_accuracy: Option<f64>,
    /// This process's party, in a multi-process run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub party: Option<usize>,
}

/// The report, and the trained model where this process learns it (with
/// the preprocessing it was trained with).
#[derive(Debug)]
pub struct NnTrainOutcome {
    /// The report.
    pub report: NnTrainReport,
    /// The trained model, at a party it is revealed to.
    pub model: Option<Sequential>,
    /// The published preprocessing.
    pub preprocessing: Option<Preprocessing>,
}

/// `test`'s accuracy under `model`, its features preprocessed by `pre`.
fn score(model: &Sequential, pre: Option<&Preprocessing>, test: &Dataset) -> Result<f64, MpcError> {
    let mut x = test.features().clone();
    if let Some(pre) = pre {
        pre.apply(&mut x, model.input_shape())?;
    }
    let data = Dataset::new(
        x,
        test.labels().to_vec(),
        model.input_shape().to_vec(),
        test.num_classes().max(2),
    )?;
    let mut m = model.clone();
    Ok(f64::from(accuracy(&mut m, &data)?))
}

/// The same training in plaintext: the pooled data in the same order, the
/// same initial model, learning rate, momentum, batches and epochs, in
/// f32 with the exact softmax.
fn baseline(job: &NnTrainJob<'_>, test: &Dataset) -> Result<Option<f64>, MpcError> {
    let (Some(model), [Some(a), Some(b)]) = (job.model, job.shards) else {
        return Ok(None);
    };
    let (x, labels) = match job.split {
        Split::Rows => {
            let x = concatenate![Axis(0), a.x, b.x];
            let mut l = a.labels.clone().unwrap_or_default();
            l.extend(b.labels.iter().flatten());
            (x, l)
        }
        Split::Columns => (
            concatenate![Axis(1), a.x, b.x],
            b.labels.clone().unwrap_or_default(),
        ),
    };
    let mut model = model.folded()?;
    let classes: usize = model.output_shape().iter().product();
    let mut x = x;
    if let Some(pre) = job.preprocessing {
        pre.apply(&mut x, model.input_shape())?;
    }
    let data = Dataset::new(x, labels, model.input_shape().to_vec(), classes.max(2))?;
    run_baseline(&mut model, &data, job, test).map(Some)
}

/// SGD with momentum over the same public order of batches as the
/// private training.
fn run_baseline(
    model: &mut Sequential,
    data: &Dataset,
    job: &NnTrainJob<'_>,
    test: &Dataset,
) -> Result<f64, MpcError> {
    let cfg = &job.cfg;
    let mut opt = Optimizer::sgd(cfg.lr as f32, cfg.momentum as f32, 0.0)?;
    let loss = default_loss(model);
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(cfg.seed);
    for _ in 0..cfg.epochs {
        let order = shuffled_indices(data.len(), &mut rng);
        for idx in order.chunks(cfg.batch_size.max(1)) {
            plain_step(model, loss, data, idx, &mut opt, None)?;
        }
    }
    score(model, job.preprocessing, test)
}

/// Runs a private training (ring `R`, fixed point `fp`): three parties
/// here, or this process's party of three.
pub fn train_model<R: Z2k>(
    deployment: &Deployment,
    job: &NnTrainJob<'_>,
    fp: FixedPoint,
) -> Result<NnTrainOutcome, MpcError> {
    let out = execute::<R, _>(deployment, fp, |p| {
        let me = p.id();
        let model = job.model.map(|m| (m, job.preprocessing));
        let shard = job.shards.get(me).copied().flatten();
        private_train(p, job.split, model, shard, &job.cfg)
    })?;
    let runs: Vec<_> = out.outputs.into_iter().flatten().collect();
    let examples = runs.first().map_or(0, |r| r.examples);
    let epoch_seconds = runs
        .first()
        .map(|r| r.epoch_seconds.clone())
        .unwrap_or_default();
    let learned = runs.into_iter().find(|r| r.model.is_some());
    let (model, preprocessing) = match learned {
        Some(r) => (r.model, r.preprocessing),
        None => (None, None),
    };
    let test_accuracy = match (&model, job.test) {
        (Some(m), Some(t)) => Some(score(m, preprocessing.as_ref(), t)?),
        _ => None,
    };
    let plaintext_accuracy = match job.test {
        Some(t) => baseline(job, t)?,
        None => None,
    };
    Ok(NnTrainOutcome {
        report: NnTrainReport {
            task: "train",
            split: match job.split {
                Split::Rows => "rows",
                Split::Columns => "columns",
            },
            examples,
            epochs: job.cfg.epochs,
            batch_size: job.cfg.batch_size,
            lr: job.cfg.lr,
            momentum: job.cfg.momentum,
            ring: R::BITS,
            frac: fp.frac,
            seconds: out.seconds,
            epoch_seconds,
            bytes: out.stats.bytes(),
            rounds: out.stats.rounds(),
            ops: out.stats.ops.clone(),
            test_accuracy,
            plaintext_accuracy,
            party: deployment.party(),
        },
        model,
        preprocessing,
    })
}

/// Divides `data` between the owners: by rows (owner A the first half of
/// the examples, owner B the rest) or by columns (owner A the first half
/// of each example's values, owner B the rest and the labels).
pub fn split_dataset(data: &Dataset, split: Split) -> [Shard; 2] {
    let x = data.features();
    let labels = data.labels();
    match split {
        Split::Rows => {
            let h = x.nrows() / 2;
            [
                Shard {
                    x: x.slice(ndarray::s![..h, ..]).to_owned(),
                    labels: Some(labels.get(..h).unwrap_or_default().to_vec()),
                },
                Shard {
                    x: x.slice(ndarray::s![h.., ..]).to_owned(),
                    labels: Some(labels.get(h..).unwrap_or_default().to_vec()),
                },
            ]
        }
        Split::Columns => {
            let h = x.ncols() / 2;
            [
                Shard {
                    x: x.slice(ndarray::s![.., ..h]).to_owned(),
                    labels: None,
                },
                Shard {
                    x: x.slice(ndarray::s![.., h..]).to_owned(),
                    labels: Some(labels.to_vec()),
                },
            ]
        }
    }
}
