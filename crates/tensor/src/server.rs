//! Running a compiled [`Plan`] on encrypted inputs, and the keys it needs.
//!
//! [`EncryptedModel`] is the server side: the plan with every matrix
//! pre-encoded at the level and scale it will meet (latency mode), the
//! exact set of rotation steps, and `run` for both layouts. The client side
//! ([`crate::client`]) needs only the model's [`InputSpec`]
//! ([`EncryptedModel::input_spec`]).
//!
//! # Circuit privacy: respond, never return `run`'s output
//! [`EncryptedModel::run`] is the raw evaluation: its output's noise
//! depends on the model's weights (and its approximation error on their
//! encoding), so a data owner who decrypts it learns more than the
//! prediction. Every path that hands an evaluated ciphertext back to the
//! data owner goes through [`EncryptedModel::respond`], which re-randomizes
//! and floods each output as [`crate::privacy`] explains.

use crate::client::{InputSpec, ModelClient, INPUT_SPEC_VERSION};
use crate::layout::{EncTensor, Layout};
use crate::matvec::EncodedMatVec;
use crate::plan::{Plan, Stage};
use crate::TensorError;
use cipherflow_ckks::{Ciphertext, Encoder, Evaluator, GaloisKeys, RelinKey};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Latency (one input per ciphertext, rotations) or throughput (one example
/// per slot, no rotations).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Replicated layout, diagonal-method matrix products.
    Latency,
    /// Batched layout (CryptoNets), up to `slots` examples per run.
    Throughput,
}

/// The server side of encrypted inference.
#[derive(Clone, Debug)]
pub struct EncryptedModel {
    pub(crate) plan: Plan,
    pub(crate) mode: Mode,
    encoder: Encoder,
    pub(crate) eval: Evaluator,
    /// Latency mode: the pre-encoded matrix of each linear stage.
    pub(crate) encoded: Vec<Option<EncodedMatVec>>,
    /// The declared bound on input values (clamped by the client).
    pub(crate) input_bound: Option<f64>,
}

impl EncryptedModel {
    /// Prepares `plan` for `mode` (latency mode encodes every matrix once).
    pub fn new(plan: &Plan, mode: Mode) -> Result<Self, TensorError> {
        let params = plan.params();
        let encoder = Encoder::new(params);
        let eval = Evaluator::new(params);
        let target = params.default_scale();
        let mut level = params.max_level();
        let mut scale = target;
        let mut encoded = Vec::with_capacity(plan.stages().len());
        for stage in plan.stages() {
            let d = stage.depth();
            if level < d {
                return Err(TensorError::DoesNotFit("level budget exhausted".into()));
            }
            match stage {
                Stage::Linear(m) => {
                    encoded.push(if mode == Mode::Latency {
                        Some(EncodedMatVec::new(
                            &encoder, &eval, m, level, scale, target,
                        )?)
                    } else {
                        None
                    });
                    scale = target;
                }
                Stage::Square => {
                    let q = *params.q().get(level).ok_or(TensorError::Ckks(
                        cipherflow_ckks::CkksError::InvalidLevel(level),
                    ))? as f64;
                    scale = scale * scale / q;
                    encoded.push(None);
                }
                Stage::Poly(_) => {
                    scale = target;
                    encoded.push(None);
                }
            }
            level -= d;
        }
        Ok(Self {
            plan: plan.clone(),
            mode,
            encoder,
            eval,
            encoded,
            input_bound: None,
        })
    }

    /// Declares that inputs satisfy `|x| ≤ bound` (rounded up to a power
    /// of two, so that the published number says little about the data):
    /// the spec carries it, clients clamp to it, and the circuit privacy of
    /// the outputs is sized for it.
    pub fn with_input_bound(mut self, bound: f64) -> Result<Self, TensorError> {
        if !(bound.is_finite() && bound > 0.0 && bound <= crate::client::MAX_INPUT_BOUND) {
            return Err(TensorError::Invalid(format!(
                "input bound {bound} (positive, at most 2^20)"
            )));
        }
        self.input_bound = Some(2f64.powf(bound.log2().ceil()));
        Ok(self)
    }

    /// The declared input bound.
    pub fn input_bound(&self) -> Option<f64> {
        self.input_bound
    }

    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The encoder of the parameters.
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// The evaluator of the parameters.
    pub fn evaluator(&self) -> &Evaluator {
        &self.eval
    }

    /// Level at which inputs must be encrypted.
    pub fn input_level(&self) -> usize {
        self.plan.params().max_level()
    }

    /// Scale at which inputs must be encrypted.
    pub fn input_scale(&self) -> f64 {
        self.plan.params().default_scale()
    }

    /// Exactly the rotation steps `run` uses (none in throughput mode).
    pub fn rotation_steps(&self) -> Vec<i64> {
        let mut s = BTreeSet::new();
        for e in self.encoded.iter().flatten() {
            s.extend(e.rotation_steps());
        }
        s.into_iter().collect()
    }

    /// What a client needs to make keys and encrypt inputs for this model
    /// (no weights): publish it, e.g. as JSON.
    pub fn input_spec(&self) -> InputSpec {
        InputSpec {
            version: INPUT_SPEC_VERSION,
            params: self.plan.params().literal(),
            input_shape: self.plan.input_shape().to_vec(),
            mode: self.mode,
            level: self.input_level(),
            scale: self.input_scale(),
            rotations: self.rotation_steps(),
            output_len: self.plan.output_len(),
            input_bound: self.input_bound,
        }
    }

    /// A client of this model in the same process (its parameters shared,
    /// not rebuilt); a remote client uses `ModelClient::new(input_spec)`.
    pub fn client(&self) -> Result<ModelClient, TensorError> {
        ModelClient::with_params(self.input_spec(), self.plan.params().clone())
    }

    /// Key switches (rotations) per latency-mode inference.
    pub fn rotations_per_run(&self) -> usize {
        self.encoded
            .iter()
            .flatten()
            .map(EncodedMatVec::rotation_count)
            .sum()
    }

    /// Relinearizations per element per run (squares and polynomial products).
    pub fn encoded_matrices(&self) -> impl Iterator<Item = &EncodedMatVec> {
        self.encoded.iter().flatten()
    }

    /// Runs the plan on an encrypted input (layout per the mode).
    pub fn run(
        &self,
        rlk: &RelinKey,
        gk: &GaloisKeys,
        x: &EncTensor,
    ) -> Result<EncTensor, TensorError> {
        let want: usize = self.plan.input_shape().iter().product();
        if x.len() != want {
            return Err(TensorError::Shape(format!(
                "input of shape {:?}, the model wants {:?}",
                x.shape(),
                self.plan.input_shape()
            )));
        }
        let target = self.plan.params().default_scale();
        let mut h = x.clone();
        for (stage, enc) in self.plan.stages().iter().zip(&self.encoded) {
            h = match (stage, h.layout(), enc) {
                (Stage::Linear(_), Layout::Replicated { .. }, Some(e)) => {
                    e.apply(&self.eval, gk, &h)?
                }
                (Stage::Linear(m), Layout::Batched { batch }, _) => {
                    let rows = (0..m.rows())
                        .into_par_iter()
                        .map(|i| {
                            let (cts, ws): (Vec<&Ciphertext>, Vec<f64>) = m
                                .row(i)
                                .iter()
                                .zip(&h.cts)
                                .filter(|(w, _)| **w != 0.0)
                                .map(|(w, c)| (c, *w))
                                .unzip();
                            let b = m.bias().get(i).copied().unwrap_or(0.0);
                            let acc = if cts.is_empty() {
                                let first = h
                                    .cts
                                    .first()
                                    .ok_or_else(|| TensorError::Shape("empty input".into()))?;
                                self.eval.mul_const_sum(&[first], &[0.0], target)?
                            } else {
                                self.eval.mul_const_sum(&cts, &ws, target)?
                            };
                            let acc = self.eval.add_const(&acc, b)?;
                            Ok(self.eval.rescale(&acc)?)
                        })
                        .collect::<Result<Vec<_>, TensorError>>()?;
                    EncTensor::from_parts(
                        rows,
                        vec![m.rows()],
                        Layout::Batched { batch },
                        self.plan.params().slots(),
                    )?
                }
                (Stage::Square, _, _) => {
                    let cts = h
                        .cts
                        .par_iter()
                        .map(|c| Ok(self.eval.rescale(&self.eval.mul_relin(c, c, rlk)?)?))
                        .collect::<Result<Vec<_>, TensorError>>()?;
                    EncTensor { cts, ..h }
                }
                (Stage::Poly(p), _, _) => {
                    let cts = h
                        .cts
                        .par_iter()
                        .map(|c| p.eval_ct(&self.eval, rlk, c, target))
                        .collect::<Result<Vec<_>, TensorError>>()?;
                    EncTensor { cts, ..h }
                }
                (Stage::Linear(_), Layout::Replicated { .. }, None) => {
                    return Err(TensorError::Invalid(
                        "this model was prepared for throughput mode; use the batched layout"
                            .into(),
                    ))
                }
            };
        }
        Ok(h)
    }
}
