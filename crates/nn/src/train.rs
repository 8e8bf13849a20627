//! The training loop (plain or DP-SGD) and evaluation.

use crate::data::{shuffled_indices, Dataset, TrainingData};
use crate::loss::{predict_classes, Loss, Targets};
use crate::optim::{LrSchedule, Optimizer};
use crate::secure_sgd::{DpConfig, SecureSgd};
use crate::{NnError, Sequential};
use cipherflow_dp::Accountant;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Which update rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// SGD with momentum.
    Sgd,
    /// Adam.
    Adam,
}

/// Learning-rate schedule as written in a spec.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduleSpec {
    /// Constant rate.
    Constant,
    /// Multiply by `gamma` every `step_size` epochs.
    Step {
        /// Epochs between decays.
        step_size: usize,
        /// Factor.
        gamma: f32,
    },
    /// Cosine annealing to `eta_min` over the run.
    Cosine {
        /// Final rate.
        #[serde(default)]
        eta_min: f32,
    },
}

/// DP-SGD settings of a run: σ given, or calibrated to a target ε.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpSpec {
    /// Per-example clipping norm C.
    #[serde(default = "default_clip")]
    pub clip: f32,
    /// Noise multiplier σ; if absent, the smallest σ meeting
    /// `target_epsilon` over the whole run.
    #[serde(default)]
    pub noise_multiplier: Option<f64>,
    /// Target ε for the whole run.
    #[serde(default)]
    pub target_epsilon: Option<f64>,
    /// δ.
    #[serde(default = "default_delta")]
    pub delta: f64,
    /// Accountant for calibration and reporting.
    #[serde(default)]
    pub accountant: AccountantKind,
}

/// Privacy accountant named in a spec.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountantKind {
    /// Rényi DP (as Opacus and TensorFlow Privacy report).
    #[default]
    Rdp,
    /// Privacy loss distributions (tighter).
    Pld,
}

impl AccountantKind {
    fn get(self) -> Accountant {
        match self {
            AccountantKind::Rdp => Accountant::Rdp,
            AccountantKind::Pld => Accountant::Pld,
        }
    }
}

fn default_clip() -> f32 {
    1.0
}
fn default_delta() -> f64 {
    1e-5
}

/// A training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the data (for DP-SGD: `epochs / q` steps in all).
    pub epochs: usize,
    /// Batch size (DP-SGD: the expected batch size, `q = batch / N`).
    pub batch_size: usize,
    /// Update rule.
    pub optimizer: OptimizerKind,
    /// Base learning rate.
    pub lr: f32,
    /// SGD momentum.
    #[serde(default)]
    pub momentum: f32,
    /// L2 weight decay.
    #[serde(default)]
    pub weight_decay: f32,
    /// Learning-rate schedule.
    #[serde(default = "constant")]
    pub schedule: ScheduleSpec,
    /// Seed for initialisation and shuffling (plain training). DP-SGD's
    /// sampling and noise always come from the operating system.
    #[serde(default)]
    pub seed: u64,
    /// DP-SGD, if present.
    #[serde(default)]
    pub dp: Option<DpSpec>,
}

fn constant() -> ScheduleSpec {
    ScheduleSpec::Constant
}

impl TrainConfig {
    /// Sensible defaults: Adam 1e-3 (plain) or SGD 0.1 with momentum 0.9
    /// (DP-SGD: momentum averages the noise over steps).
    pub fn default_for(epochs: usize, batch_size: usize, dp: Option<DpSpec>) -> Self {
        let (optimizer, lr, momentum) = if dp.is_some() {
            (OptimizerKind::Sgd, 0.1, 0.9)
        } else {
            (OptimizerKind::Adam, 1e-3, 0.0)
        };
        TrainConfig {
            epochs,
            batch_size,
            optimizer,
            lr,
            momentum,
            weight_decay: 0.0,
            schedule: ScheduleSpec::Constant,
            seed: 0,
            dp,
        }
    }

    fn schedule(&self) -> LrSchedule {
        match self.schedule {
            ScheduleSpec::Constant => LrSchedule::Constant,
            ScheduleSpec::Step { step_size, gamma } => LrSchedule::Step { step_size, gamma },
            ScheduleSpec::Cosine { eta_min } => LrSchedule::Cosine {
                t_max: self.epochs,
                eta_min,
            },
        }
    }

    fn optimizer(&self) -> Result<Optimizer, NnError> {
        match self.optimizer {
            OptimizerKind::Sgd => Optimizer::sgd(self.lr, self.momentum, self.weight_decay),
            OptimizerKind::Adam => Optimizer::adam(self.lr, self.weight_decay),
        }
    }
}

/// Progress events for a caller's progress bar or log.
#[derive(Clone, Copy, Debug)]
pub enum Progress {
    /// A run of `total_steps` steps starts.
    Start {
        /// Steps in the whole run.
        total_steps: u64,
    },
    /// One optimizer step finished.
    Step {
        /// Mean loss of the batch.
        loss: f32,
    },
    /// An epoch finished.
    Epoch(EpochReport),
}

/// Per-epoch summary.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochReport {
    /// 0-based epoch.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    pub loss: f32,
    /// Test accuracy after the epoch, when a test set was given.
    pub test_accuracy: Option<f32>,
    /// Wall time of the epoch's training steps (evaluation excluded).
    pub seconds: f64,
    /// ε spent so far (DP-SGD).
    pub epsilon: Option<f64>,
}

/// What a run achieved.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainSummary {
    /// Epoch reports in order.
    pub epochs: Vec<EpochReport>,
    /// σ used (DP-SGD).
    pub noise_multiplier: Option<f64>,
    /// ε at the end (DP-SGD), for the configured δ.
    pub epsilon: Option<f64>,
    /// Optimizer steps taken.
    pub steps: u64,
}

/// Trains `model` on `train` (evaluating on `test` after each epoch when
/// given), plain or with DP-SGD as configured.
pub fn fit(
    model: &mut Sequential,
    loss: Loss,
    train: &Dataset,
    test: Option<&Dataset>,
    cfg: &TrainConfig,
    progress: &mut dyn FnMut(Progress),
) -> Result<TrainSummary, NnError> {
    fit_data(
        model,
        loss,
        train,
        test.map(|t| t as &dyn TrainingData),
        cfg,
        progress,
    )
}

/// [`fit`] on data in memory or read from a file as needed
/// ([`crate::data::StreamedData`]): the same batches are drawn (shuffled
/// minibatches, or DP-SGD's Poisson samples); from a file, the rows of as
/// many steps as fit [`TrainingData::window`] are gathered in one pass.
pub fn fit_data(
    model: &mut Sequential,
    loss: Loss,
    train: &dyn TrainingData,
    test: Option<&dyn TrainingData>,
    cfg: &TrainConfig,
    progress: &mut dyn FnMut(Progress),
) -> Result<TrainSummary, NnError> {
    if cfg.epochs == 0 || cfg.batch_size == 0 || train.is_empty() {
        return Err(NnError::Config(
            "epochs, batch size and data must be non-empty".into(),
        ));
    }
    if train.shape() != model.input_shape() {
        return Err(NnError::shape(
            "data vs model input",
            model.input_shape(),
            train.shape(),
        ));
    }
    let n = train.len();
    let batch = cfg.batch_size.min(n);
    let schedule = cfg.schedule();
    let mut optimizer = cfg.optimizer()?;
    let mut reports = Vec::with_capacity(cfg.epochs);
    match &cfg.dp {
        None => {
            let mut rng = ChaCha20Rng::seed_from_u64(cfg.seed ^ 0x5eed_5eed);
            let steps_per_epoch = n.div_ceil(batch) as u64;
            progress(Progress::Start {
                total_steps: steps_per_epoch * cfg.epochs as u64,
            });
            for epoch in 0..cfg.epochs {
                optimizer.lr = schedule.lr(cfg.lr, epoch);
                let t0 = Instant::now();
                let order = shuffled_indices(n, &mut rng as &mut dyn RngCore);
                let batches: Vec<&[usize]> = order.chunks(batch).collect();
                let mut total = 0.0;
                for window in windows(&batches, train.window(), |b| b.len()) {
                    with_rows(train, window, |data, local| {
                        for idx in local {
                            let l = plain_step(model, loss, data, idx, &mut optimizer, None)?;
                            total += l;
                            progress(Progress::Step { loss: l });
                        }
                        Ok(())
                    })?;
                }
                let report = EpochReport {
                    epoch,
                    loss: total / batches.len().max(1) as f32,
                    test_accuracy: None,
                    seconds: t0.elapsed().as_secs_f64(),
                    epsilon: None,
                };
                reports.push(finish_epoch(model, test, report, progress)?);
            }
            Ok(TrainSummary {
                epochs: reports,
                noise_multiplier: None,
                epsilon: None,
                steps: (n.div_ceil(batch) * cfg.epochs) as u64,
            })
        }
        Some(dp) => {
            let q = batch as f64 / n as f64;
            let steps_per_epoch = (1.0 / q).round().max(1.0) as u64;
            let total_steps = steps_per_epoch * cfg.epochs as u64;
            let sigma = match (dp.noise_multiplier, dp.target_epsilon) {
                (Some(s), _) => s,
                (None, Some(eps)) => cipherflow_dp::calibrate_sigma(
                    dp.accountant.get(),
                    q,
                    total_steps,
                    dp.delta,
                    eps,
                )?,
                (None, None) => {
                    return Err(NnError::Config(
                        "DP-SGD needs a noise multiplier or a target ε".into(),
                    ));
                }
            };
            let config = DpConfig {
                clip: dp.clip,
                noise_multiplier: sigma,
                sample_rate: q,
            };
            let mut sgd = SecureSgd::new(config, optimizer, dp.accountant.get().new_accountant())?;
            // Steps whose samples are gathered together: in memory one at
            // a time (the sampling and noise draws interleave as always);
            // from a file as many as twice the expected sample fits.
            let per_window = match train.in_memory() {
                Some(_) => 1,
                None => ((train.window() as f64 / (2.0 * q * n as f64).max(1.0)) as u64).max(1),
            };
            progress(Progress::Start { total_steps });
            for epoch in 0..cfg.epochs {
                sgd.inner_mut().lr = schedule.lr(cfg.lr, epoch);
                let t0 = Instant::now();
                let mut total = 0.0;
                let mut done = 0u64;
                while done < steps_per_epoch {
                    let t = per_window.min(steps_per_epoch - done);
                    let samples: Vec<Vec<usize>> = (0..t).map(|_| sgd.sample(n)).collect();
                    let window: Vec<&[usize]> = samples.iter().map(Vec::as_slice).collect();
                    with_rows(train, &window, |data, local| {
                        for idx in local {
                            let r = sgd.step_on(model, loss, data, idx, n)?;
                            total += r.loss;
                            progress(Progress::Step { loss: r.loss });
                        }
                        Ok(())
                    })?;
                    done += t;
                }
                let report = EpochReport {
                    epoch,
                    loss: total / steps_per_epoch as f32,
                    test_accuracy: None,
                    seconds: t0.elapsed().as_secs_f64(),
                    epsilon: Some(sgd.epsilon(dp.delta)?),
                };
                reports.push(finish_epoch(model, test, report, progress)?);
            }
            Ok(TrainSummary {
                epochs: reports,
                noise_multiplier: Some(sigma),
                epsilon: Some(sgd.epsilon(dp.delta)?),
                steps: sgd.steps(),
            })
        }
    }
}

/// Consecutive runs of `items` whose sizes add up to at most `limit`
/// (each run at least one item).
fn windows<T>(items: &[T], limit: usize, size: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < items.len() {
        let mut end = start;
        let mut rows = 0usize;
        while let Some(it) = items.get(end) {
            if end > start && rows.saturating_add(size(it)) > limit {
                break;
            }
            rows = rows.saturating_add(size(it));
            end += 1;
        }
        if let Some(w) = items.get(start..end) {
            out.push(w);
        }
        start = end;
    }
    out
}

/// Runs `f` on the rows of the batches in `window` (positions of `data`)
/// and each batch's positions within them: the data itself when in
/// memory, else the union of the batches gathered in one pass.
fn with_rows(
    data: &dyn TrainingData,
    window: &[&[usize]],
    mut f: impl FnMut(&Dataset, Vec<&[usize]>) -> Result<(), NnError>,
) -> Result<(), NnError> {
    if let Some(d) = data.in_memory() {
        return f(d, window.to_vec());
    }
    let mut union: Vec<usize> = window.concat();
    union.sort_unstable();
    union.dedup();
    // (Sorted only to find each batch's positions; rows() takes any order.)
    let rows = data.rows(&union)?;
    let local: Vec<Vec<usize>> = window
        .iter()
        .map(|b| {
            b.iter()
                .map(|p| {
                    union
                        .binary_search(p)
                        .map_err(|_| NnError::Config("a batch position was not gathered".into()))
                })
                .collect()
        })
        .collect::<Result<_, _>>()?;
    f(&rows, local.iter().map(Vec::as_slice).collect())
}

/// Fraction of `data` classified correctly, in memory or a window of
/// examples at a time.
pub fn accuracy_data(model: &mut Sequential, data: &dyn TrainingData) -> Result<f32, NnError> {
    if let Some(d) = data.in_memory() {
        return accuracy(model, d);
    }
    let mut right = 0usize;
    let all: Vec<usize> = (0..data.len()).collect();
    for part in all.chunks(data.window().max(1)) {
        right += correct(model, &data.rows(part)?)?;
    }
    Ok(right as f32 / data.len().max(1) as f32)
}

fn finish_epoch(
    model: &mut Sequential,
    test: Option<&dyn TrainingData>,
    mut report: EpochReport,
    progress: &mut dyn FnMut(Progress),
) -> Result<EpochReport, NnError> {
    if let Some(t) = test {
        report.test_accuracy = Some(accuracy_data(model, t)?);
    }
    progress(Progress::Epoch(report));
    Ok(report)
}

/// A proximal term `μ/2·‖w − anchor‖²` added to the objective of a
/// minibatch step (FedProx's local objective, with the global model as the
/// anchor). `anchor` holds every parameter in `Sequential::params_mut`
/// order; frozen parameters are not pulled.
#[derive(Clone, Copy, Debug)]
pub struct Proximal<'a> {
    /// The coefficient μ ≥ 0.
    pub mu: f32,
    /// The parameters the term pulls towards.
    pub anchor: &'a [f32],
}

impl Proximal<'_> {
    /// Adds `μ·(w − anchor)` to every trainable parameter's gradient.
    fn add_gradient(&self, model: &mut Sequential) -> Result<(), NnError> {
        if self.anchor.len() != model.num_params() {
            return Err(NnError::shape(
                "proximal anchor",
                &[model.num_params()],
                &[self.anchor.len()],
            ));
        }
        let mut anchor = self.anchor.iter();
        for p in model.params_mut() {
            let trainable = p.trainable;
            for (g, v) in p.grad.iter_mut().zip(p.value.iter()) {
                let w0 = anchor.next().copied().unwrap_or(0.0);
                if trainable {
                    *g += self.mu * (v - w0);
                }
            }
        }
        Ok(())
    }
}

/// One plain minibatch step: forward, backward, mean gradient (plus the
/// proximal term's, if any), update. Returns the batch's mean loss.
pub fn plain_step(
    model: &mut Sequential,
    loss: Loss,
    data: &Dataset,
    idx: &[usize],
    optimizer: &mut Optimizer,
    proximal: Option<Proximal<'_>>,
) -> Result<f32, NnError> {
    let (x, y) = data.batch(idx)?;
    model.zero_grad();
    let out = model.forward(&x, true)?;
    let lo = loss.compute(&out, &Targets::Classes(&y))?;
    model.backward(&lo.grad)?;
    let w = vec![1.0 / idx.len() as f32; idx.len()];
    model.accumulate_grads(&w)?;
    model.clear_cache();
    if let Some(p) = proximal.filter(|p| p.mu > 0.0) {
        p.add_gradient(model)?;
    }
    optimizer.step(model.params_mut())?;
    Ok(lo.mean())
}

/// Fraction of `data` classified correctly (batches of 512).
pub fn accuracy(model: &mut Sequential, data: &Dataset) -> Result<f32, NnError> {
    Ok(correct(model, data)? as f32 / data.len().max(1) as f32)
}

/// Predicted classes for every example of `data`.
pub fn predict(model: &mut Sequential, data: &Dataset) -> Result<Vec<usize>, NnError> {
    let mut out = Vec::with_capacity(data.len());
    let all: Vec<usize> = (0..data.len()).collect();
    for idx in all.chunks(512) {
        let (x, _) = data.batch(idx)?;
        out.extend(predict_classes(&model.predict(&x)?));
    }
    Ok(out)
}

fn correct(model: &mut Sequential, data: &Dataset) -> Result<usize, NnError> {
    Ok(predict(model, data)?
        .iter()
        .zip(data.labels())
        .filter(|(p, y)| p == y)
        .count())
}

/// The loss that fits a model's output: logistic for one output, softmax
/// cross-entropy otherwise.
pub fn default_loss(model: &Sequential) -> Loss {
    if model.output_shape() == [1] {
        Loss::Logistic
    } else {
        Loss::CrossEntropy
    }
}
