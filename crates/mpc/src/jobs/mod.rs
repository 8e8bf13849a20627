//! Whole three-party jobs, as a front end runs them: private prediction
//! with a model trained by its owner, private logistic regression on data
//! split between two owners, and a secret-shared matrix product. Each runs
//! either the three parties in this process ([`Deployment::Local`]) or one
//! party of a multi-process deployment ([`Deployment::Party`]), and returns
//! a serializable report of what this process may know: in a party process
//! only its own outputs, counters and timings.

mod model;
mod train;

pub use model::{predict_model, ModelPredictJob, ModelPredictReport, CHUNK};
pub use train::{split_dataset, train_model, NnTrainJob, NnTrainOutcome, NnTrainReport};

use crate::computation::{run_local, run_party, Network};
use crate::programs::logreg::{
    accuracy, plaintext_logreg, private_logreg, split_owners, LogRegConfig, Scaling, Split,
};
use crate::programs::predict::{features_f64, predict_shared, share_model, train_mlp, CLIENT};
use crate::{FixedPoint, MpcError, OpStats, Party, Stats, Z2k};
use cipherflow_nn::data::Dataset;
use ndarray::Array2;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// Where the parties run.
#[derive(Clone, Debug)]
pub enum Deployment {
    /// All three parties in this process, over `Network`.
    Local(Network),
    /// One party (`id`) of three processes, from a network file
    /// (see [`crate::transport::tls::write_credentials`]).
    Party {
        /// This party's id: 0, 1 or 2.
        id: usize,
        /// The network configuration.
        config: PathBuf,
    },
}

impl Deployment {
    /// This process's party, in a multi-process deployment.
    pub fn party(&self) -> Option<usize> {
        match self {
            Deployment::Local(_) => None,
            Deployment::Party { id, .. } => Some(*id),
        }
    }
}

/// What the parties of this process returned (`None` for parties that run
/// elsewhere), their combined counters and the wall time.
struct Outcome<T> {
    outputs: Vec<Option<T>>,
    stats: Stats,
    seconds: f64,
}

fn execute<R: Z2k, T: Send>(
    deployment: &Deployment,
    fp: FixedPoint,
    program: impl Fn(&mut Party<R>) -> Result<T, MpcError> + Sync,
) -> Result<Outcome<T>, MpcError> {
    match deployment {
        Deployment::Local(n) => {
            let r = run_local::<R, T, _>(*n, fp, program)?;
            Ok(Outcome {
                outputs: r.outputs.into_iter().map(Some).collect(),
                stats: r.stats,
                seconds: r.seconds,
            })
        }
        Deployment::Party { id, config } => {
            let run = run_party::<R, T, _>(*id, config, fp, program)?;
            let mut outputs: Vec<Option<T>> = vec![None, None, None];
            if let Some(slot) = outputs.get_mut(run.id) {
                *slot = Some(run.output);
            }
            Ok(Outcome {
                outputs,
                stats: run.stats,
                seconds: run.seconds,
            })
        }
    }
}

fn share_of(hits: usize, n: usize) -> f64 {
    hits as f64 / n.max(1) as f64
}

fn agreement(a: &[usize], b: &[usize]) -> f64 {
    share_of(a.iter().zip(b).filter(|(x, y)| x == y).count(), a.len())
}

/// A private-prediction job: party 0 trains an MLP on `train` and holds
/// it, party 1 holds `test`'s features and learns the classes.
#[derive(Clone, Debug)]
pub struct PredictJob<'a> {
    /// The model owner's training data.
    pub train: &'a Dataset,
    /// The client's inputs (labels only score the result).
    pub test: &'a Dataset,
    /// The data set's name, for the report.
    pub data: &'a str,
    /// Hidden layer widths.
    pub hidden: Vec<usize>,
    /// Training epochs.
    pub epochs: usize,
    /// Single-example predictions to time after the batch.
    pub latency_reps: usize,
}

/// The report of a private prediction.
#[derive(Clone, Debug, Serialize)]
pub struct PredictReport {
    /// Always "predict".
    pub task: &'static str,
    /// The data set.
    pub data: String,
    /// Inputs classified.
    pub examples: usize,
    /// Hidden layer widths.
    pub hidden: Vec<usize>,
    /// Seconds for the batch (slowest party of this process).
    pub seconds: f64,
    /// Bytes sent for the batch.
    pub bytes: u64,
    /// Rounds of the batch.
    pub rounds: u64,
    /// Median seconds of one single-example prediction.
    pub latency_seconds: Option<f64>,
    /// Bytes of one single-example prediction.
    pub latency_bytes: u64,
    /// Rounds of one single-example prediction.
    pub latency_rounds: u64,
    /// Seconds the model owner spent training.
    pub train_seconds: f64,
    /// Counters by operation.
    pub ops: BTreeMap<&'static str, OpStats>,
    /// Accuracy of the private predictions (known to the client).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Agreement with the plaintext model (known only where one process
    /// holds both).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement: Option<f64>,
    /// Accuracy of the plaintext model (known to the model owner).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plaintext_accuracy: Option<f64>,
    /// This process's party, in a multi-process run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub party: Option<usize>,
    /// The private predictions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<usize>>,
}

struct PredictRun {
    classes: Option<Vec<usize>>,
    batch: (f64, Stats),
    latency: Vec<f64>,
    latency_stats: Stats,
}

/// Runs a private prediction (64-bit ring, fixed point `fp`).
pub fn predict(
    deployment: &Deployment,
    job: &PredictJob<'_>,
    fp: FixedPoint,
) -> Result<PredictReport, MpcError> {
    let me = deployment.party();
    if me.is_some() {
        // This harness holds the model owner's training data and the data
        // owner's inputs in one process; separate parties bring their own
        // files ([`predict_model`]).
        return Err(MpcError::Config(
            "the benchmark harness runs the three parties here; a party process predicts with \
             the files it owns (predict_model: mpc party --role model-owner --model FILE, \
             --role data-owner --input PATH, --role helper)"
                .into(),
        ));
    }
    let test = job.test;
    let t0 = Instant::now();
    let mut model = Some(train_mlp(job.train, &job.hidden, job.epochs, 1)?);
    let train_seconds = t0.elapsed().as_secs_f64();
    let plain = match model.as_mut() {
        Some(m) => Some(cipherflow_nn::train::predict(m, test)?),
        None => None,
    };
    let x = features_f64(test);
    let reps = job.latency_reps;
    let out = execute::<u64, _>(deployment, fp, |p| {
        let t0 = Instant::now();
        let owner = p.id() == crate::programs::predict::MODEL_OWNER;
        let shared = share_model(p, if owner { model.as_ref() } else { None })?;
        let classes = predict_shared(p, &shared, (p.id() == CLIENT).then_some(&x))?;
        let batch = (t0.elapsed().as_secs_f64(), p.stats().clone());
        p.reset_stats();
        let one = x.slice(ndarray::s![0..1, ..]).to_owned();
        let mut latency = Vec::new();
        for _ in 0..reps {
            let t = Instant::now();
            predict_shared(p, &shared, (p.id() == CLIENT).then_some(&one))?;
            latency.push(t.elapsed().as_secs_f64());
        }
        Ok(PredictRun {
            classes,
            batch,
            latency,
            latency_stats: p.stats().clone(),
        })
    })?;
    let runs: Vec<&PredictRun> = out.outputs.iter().flatten().collect();
    let seconds = runs.iter().map(|r| r.batch.0).fold(0.0, f64::max);
    let batch = Stats::combine(&runs.iter().map(|r| r.batch.1.clone()).collect::<Vec<_>>());
    let per_rep = reps.max(1) as u64;
    let latency_stats = Stats::combine(
        &runs
            .iter()
            .map(|r| r.latency_stats.clone())
            .collect::<Vec<_>>(),
    );
    let mut latency: Vec<f64> = (0..reps)
        .map(|i| {
            runs.iter()
                .filter_map(|r| r.latency.get(i))
                .fold(0.0, |a: f64, &b| a.max(b))
        })
        .collect();
    latency.sort_by(f64::total_cmp);
    let classes = out
        .outputs
        .get(CLIENT)
        .and_then(|o| o.as_ref())
        .and_then(|r| r.classes.clone());
    let labels = test.labels();
    let accuracy = classes.as_ref().map(|c| agreement(c, labels));
    let plaintext_accuracy = plain.as_ref().map(|p| agreement(p, labels));
    let agreement = match (&classes, &plain) {
        (Some(c), Some(p)) => Some(agreement(c, p)),
        _ => None,
    };
    Ok(PredictReport {
        task: "predict",
        data: job.data.to_string(),
        examples: test.len(),
        hidden: job.hidden.clone(),
        seconds,
        bytes: batch.bytes(),
        rounds: batch.rounds(),
        latency_seconds: latency.get(latency.len() / 2).copied(),
        latency_bytes: latency_stats.bytes() / per_rep,
        latency_rounds: latency_stats.rounds() / per_rep,
        train_seconds,
        ops: batch.ops.clone(),
        accuracy,
        agreement,
        plaintext_accuracy,
        party: me,
        classes: None,
    })
}

/// The report of a private logistic regression.
#[derive(Clone, Debug, Serialize)]
pub struct LogRegReport {
    /// Always "train-logreg".
    pub task: &'static str,
    /// "rows" or "columns".
    pub split: &'static str,
    /// Gradient steps.
    pub iterations: usize,
    /// Seconds.
    pub seconds: f64,
    /// Bytes sent.
    pub bytes: u64,
    /// Rounds.
    pub rounds: u64,
    /// Accuracy of the same algorithm in f64 on the pooled data.
    pub plaintext_accuracy: f64,
    /// Counters by operation.
    pub ops: BTreeMap<&'static str, OpStats>,
    /// Test accuracy of the privately trained model (where it is revealed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// `1 − |accuracy − plaintext accuracy|`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement: Option<f64>,
    /// This process's party, in a multi-process run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub party: Option<usize>,
}

/// Trains a logistic regression on `train` split between parties 0 and 1
/// (`split`), scored on `test` (64-bit ring, fixed point `fp`).
pub fn logreg(
    deployment: &Deployment,
    train: &Dataset,
    test: &Dataset,
    split: Split,
    cfg: LogRegConfig,
    fp: FixedPoint,
) -> Result<LogRegReport, MpcError> {
    let xtr = features_f64(train);
    let ytr: Vec<f64> = train.labels().iter().map(|&c| c as f64).collect();
    let xte = features_f64(test);
    let yte: Vec<f64> = test.labels().iter().map(|&c| c as f64).collect();
    let owners = split_owners(&xtr, &ytr, split);
    let out = execute::<u64, _>(deployment, fp, |p| {
        private_logreg(p, split, owners.get(p.id()), cfg)
    })?;
    // Baseline: same algorithm in f64 on the jointly standardised data.
    let sc = Scaling::fit(&xtr);
    let (pw, pb) = plaintext_logreg(&sc.apply(&xtr), &ytr, cfg);
    let plaintext_accuracy = accuracy(&sc.apply(&xte), &yte, &pw, pb);
    let trained = out.outputs.iter().flatten().flatten().next();
    let acc = trained.map(|t| accuracy(&sc.apply(&xte), &yte, &t.w, t.b));
    Ok(LogRegReport {
        task: "train-logreg",
        split: match split {
            Split::Rows => "rows",
            Split::Columns => "columns",
        },
        iterations: cfg.iterations,
        seconds: out.seconds,
        bytes: out.stats.bytes(),
        rounds: out.stats.rounds(),
        plaintext_accuracy,
        ops: out.stats.ops.clone(),
        accuracy: acc,
        agreement: acc.map(|a| 1.0 - (a - plaintext_accuracy).abs()),
        party: deployment.party(),
    })
}

/// The report of a secret-shared matrix product.
#[derive(Clone, Debug, Serialize)]
pub struct MatmulReport {
    /// Always "bench-matmul".
    pub task: &'static str,
    /// Matrix size.
    pub n: usize,
    /// Ring bits.
    pub ring: u32,
    /// Fractional bits.
    pub frac: u32,
    /// Seconds of the product (slowest party of this process).
    pub seconds: f64,
    /// Bytes sent.
    pub bytes: u64,
    /// Rounds.
    pub rounds: u64,
    /// Largest error of row 0 against f64 (revealed to party 0).
    #[serde(rename = "max_abs_error_row0", skip_serializing_if = "Option::is_none")]
    pub max_abs_error: Option<f64>,
    /// This process's party, in a multi-process run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub party: Option<usize>,
    /// Counters by operation (not serialized: the benchmark's contract
    /// reports totals).
    #[serde(skip)]
    pub stats: Stats,
}

/// Largest matrix [`matmul`] accepts.
pub const MAX_MATMUL_N: usize = 4096;

/// Multiplies two fixed `n`×`n` matrices, owned by parties 0 and 1, in
/// `Z_2^R::BITS`; party 0 learns the product to check row 0.
pub fn matmul<R: Z2k>(
    deployment: &Deployment,
    n: usize,
    fp: FixedPoint,
) -> Result<MatmulReport, MpcError> {
    if n == 0 || n > MAX_MATMUL_N {
        return Err(MpcError::Config(format!(
            "the matrix size must be in 1..={MAX_MATMUL_N}, not {n}"
        )));
    }
    let a = Array2::from_shape_fn((n, n), |(i, j)| ((i * 7 + j * 3) % 17) as f64 / 17.0 - 0.5);
    let b = Array2::from_shape_fn((n, n), |(i, j)| ((i * 5 + j * 11) % 13) as f64 / 13.0 - 0.5);
    let out = execute::<R, _>(deployment, fp, |p| {
        let x = p.private_input(0, (p.id() == 0).then_some(&a))?;
        let y = p.private_input(1, (p.id() == 1).then_some(&b))?;
        p.reset_stats();
        let t0 = Instant::now();
        let z = p.matmul_fx(&x, &y)?;
        let secs = t0.elapsed().as_secs_f64();
        let st = p.stats().clone();
        let r = p.reveal_to(&z, &[0])?;
        Ok((secs, st, r))
    })?;
    let mut seconds: f64 = 0.0;
    let mut stats = Vec::new();
    let mut max_abs_error = None;
    for (i, o) in out.outputs.iter().enumerate() {
        if let Some((s, st, r)) = o {
            seconds = seconds.max(*s);
            stats.push(st.clone());
            if let (0, Some(r)) = (i, r) {
                let want = a.row(0).dot(&b);
                max_abs_error = Some(
                    r.row(0)
                        .iter()
                        .zip(&want)
                        .map(|(x, y)| (x - y).abs())
                        .fold(0.0, f64::max),
                );
            }
        }
    }
    let stats = Stats::combine(&stats);
    Ok(MatmulReport {
        task: "bench-matmul",
        n,
        ring: R::BITS,
        frac: fp.frac,
        seconds,
        bytes: stats.bytes(),
        rounds: stats.rounds(),
        max_abs_error,
        party: deployment.party(),
        stats,
    })
}
