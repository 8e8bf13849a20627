//! DP-SGD (Abadi et al. 2016), exposed as the `SecureSgd` optimizer.
//!
//! Each step: Poisson-sample the batch (every example independently with
//! probability `q`); compute each example's gradient norm from the layers'
//! algebra (no per-example backward passes); clip each example's gradient
//! to L2 norm `C`; sum; add Gaussian noise `N(0, σ²C²)` to every
//! coordinate; divide by the *expected* batch size `qN` (dividing by the
//! realised size would leak it); hand the result to an ordinary optimizer
//! (SGD or Adam: post-processing). Every step, including one whose sample
//! came out empty, is reported to the privacy accountant as one
//! Poisson-subsampled Gaussian mechanism `(q, σ)`.

use crate::data::Dataset;
use crate::loss::{Loss, Targets};
use crate::optim::Optimizer;
use crate::{NnError, Sequential};
use cipherflow_dp::PrivacyAccountant;
use cipherflow_ring::sampler::SecureRng;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use rayon::prelude::*;

/// DP-SGD settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DpConfig {
    /// Per-example L2 clipping norm C.
    pub clip: f32,
    /// Noise multiplier σ (noise standard deviation is σ·C).
    pub noise_multiplier: f64,
    /// Poisson sampling rate q (expected batch size / data set size).
    pub sample_rate: f64,
}

impl DpConfig {
    fn validate(&self) -> Result<(), NnError> {
        if !(self.clip.is_finite() && self.clip > 0.0) {
            return Err(NnError::Config(format!(
                "clipping norm must be positive, got {}",
                self.clip
            )));
        }
        if !(self.noise_multiplier.is_finite() && self.noise_multiplier > 0.0) {
            return Err(NnError::Config(format!(
                "noise multiplier must be positive, got {}",
                self.noise_multiplier
            )));
        }
        if !(self.sample_rate > 0.0 && self.sample_rate <= 1.0) {
            return Err(NnError::Config(format!(
                "sampling rate must be in (0, 1], got {}",
                self.sample_rate
            )));
        }
        Ok(())
    }
}

/// What one DP-SGD step did (none of it depends on the noise; the batch
/// size and clipping statistics are not private and must not be published
/// without accounting for them).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepReport {
    /// Examples in the Poisson sample.
    pub batch_size: usize,
    /// Mean loss over the sample (before the update).
    pub loss: f32,
    /// Fraction of the sample whose gradient was clipped.
    pub clipped_fraction: f32,
}

/// The DP-SGD optimizer.
pub struct SecureSgd {
    config: DpConfig,
    inner: Optimizer,
    accountant: Box<dyn PrivacyAccountant>,
    rng: SecureRng,
    steps: u64,
    unrecorded: u64,
}

impl SecureSgd {
    /// DP-SGD around `inner` (which applies the privatised gradient),
    /// reporting to `accountant`; noise and sampling come from ChaCha20
    /// seeded by the operating system.
    pub fn new(
        config: DpConfig,
        inner: Optimizer,
        accountant: Box<dyn PrivacyAccountant>,
    ) -> Result<Self, NnError> {
        let rng =
            cipherflow_ring::sampler::secure_rng().map_err(|e| NnError::Config(e.to_string()))?;
        Self::with_rng(config, inner, accountant, rng)
    }

    /// As [`SecureSgd::new`] with a caller-chosen generator (fixed seeds are
    /// for tests only: a known seed makes the noise known).
    pub fn with_rng(
        config: DpConfig,
        inner: Optimizer,
        accountant: Box<dyn PrivacyAccountant>,
        rng: SecureRng,
    ) -> Result<Self, NnError> {
        config.validate()?;
        Ok(SecureSgd {
            config,
            inner,
            accountant,
            rng,
            steps: 0,
            unrecorded: 0,
        })
    }

    /// The settings.
    pub fn config(&self) -> DpConfig {
        self.config
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The inner optimizer (to change its learning rate).
    pub fn inner_mut(&mut self) -> &mut Optimizer {
        &mut self.inner
    }

    /// Changes σ for the following steps (a dynamic privacy schedule); the
    /// steps taken so far are reported with the old value first.
    pub fn set_noise_multiplier(&mut self, sigma: f64) -> Result<(), NnError> {
        let next = DpConfig {
            noise_multiplier: sigma,
            ..self.config
        };
        next.validate()?;
        self.flush()?;
        self.config = next;
        Ok(())
    }

    /// Reports the steps not yet reported to the accountant (steps with the
    /// same `(q, σ)` are reported together, which makes PLD accounting
    /// cheap).
    pub fn flush(&mut self) -> Result<(), NnError> {
        if self.unrecorded > 0 {
            self.accountant.record_poisson_gaussian(
                self.config.sample_rate,
                self.config.noise_multiplier,
                self.unrecorded,
            )?;
            self.unrecorded = 0;
        }
        Ok(())
    }

    /// ε spent so far for `delta`.
    pub fn epsilon(&mut self, delta: f64) -> Result<f64, NnError> {
        self.flush()?;
        Ok(self.accountant.epsilon(delta)?)
    }

    /// A Poisson sample of `0..n` at the configured rate
    /// ([`cipherflow_dp::poisson_sample`]).
    pub fn sample(&mut self, n: usize) -> Vec<usize> {
        // The rate was validated in `new` and `set_noise_multiplier` keeps it.
        cipherflow_dp::poisson_sample(&mut self.rng, n, self.config.sample_rate).unwrap_or_default()
    }

    /// Adds N(0, std²) to every coordinate. Large tensors are split into
    /// chunks filled in parallel, each from its own ChaCha20 stream keyed
    /// by a fresh 256-bit seed drawn from the optimizer's generator.
    fn add_noise(&mut self, grad: &mut [f32], std: f64) -> Result<(), NnError> {
        const CHUNK: usize = 1 << 13;
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        grad.par_chunks_mut(CHUNK)
            .enumerate()
            .try_for_each(|(i, chunk)| {
                let mut rng = ChaCha20Rng::from_seed(seed);
                rng.set_stream(i as u64);
                let mut noise = vec![0f64; chunk.len()];
                cipherflow_dp::try_gaussian_noise(&mut rng, std, &mut noise)?;
                for (g, z) in chunk.iter_mut().zip(noise) {
                    *g += z as f32;
                }
                Ok::<(), NnError>(())
            })
    }

    /// One DP-SGD step on a fresh Poisson sample of `data`.
    pub fn step(
        &mut self,
        model: &mut Sequential,
        loss: Loss,
        data: &Dataset,
    ) -> Result<StepReport, NnError> {
        let idx = self.sample(data.len());
        self.step_on(model, loss, data, &idx, data.len())
    }

    /// One DP-SGD step on a Poisson sample [`SecureSgd::sample`] drew from
    /// `population` examples, whose rows are `idx` of `data` (the sample
    /// gathered from a file: `data` holds those rows, perhaps with others).
    /// The normalisation is the population's expected sample size.
    pub fn step_on(
        &mut self,
        model: &mut Sequential,
        loss: Loss,
        data: &Dataset,
        idx: &[usize],
        population: usize,
    ) -> Result<StepReport, NnError> {
        let expected = (self.config.sample_rate * population as f64).max(1.0) as f32;
        model.zero_grad();
        let mut report = StepReport {
            batch_size: idx.len(),
            loss: 0.0,
            clipped_fraction: 0.0,
        };
        if !idx.is_empty() {
            let (x, y) = data.batch(idx)?;
            let out = model.forward(&x, true)?;
            let lo = loss.compute(&out, &Targets::Classes(&y))?;
            model.backward(&lo.grad)?;
            let norms = model.per_example_sq_norms(idx.len())?;
            let c = self.config.clip;
            let mut clipped = 0usize;
            let weights: Vec<f32> = norms
                .iter()
                .map(|&sq| {
                    let n = sq.max(0.0).sqrt();
                    if n > c {
                        clipped += 1;
                        c / n / expected
                    } else {
                        1.0 / expected
                    }
                })
                .collect();
            model.accumulate_grads(&weights)?;
            model.clear_cache();
            report.loss = lo.mean();
            report.clipped_fraction = clipped as f32 / idx.len() as f32;
        }
        let std = self.config.noise_multiplier * f64::from(self.config.clip) / f64::from(expected);
        for p in model.params_mut() {
            if p.trainable {
                self.add_noise(
                    p.grad
                        .as_slice_mut()
                        .ok_or(NnError::Config("gradient layout".into()))?,
                    std,
                )?;
            }
        }
        self.inner.step(model.params_mut())?;
        self.steps += 1;
        self.unrecorded += 1;
        Ok(report)
    }
}
