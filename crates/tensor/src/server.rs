//! Running a compiled [`Plan`] on encrypted inputs, and the keys it needs.
//!
//! [`EncryptedModel`] is the server side: the plan with every matrix
//! pre-encoded at the level and scale it will meet (latency mode), the
//! exact set of rotation steps, and `run` for both layouts. The client side
//! ([`crate::client`]) needs only the model's [`InputSpec`]
//! ([`EncryptedModel::input_spec`]).
//!
//! # Circuit privacy: sanitize before returning
//! [`EncryptedModel::run`] is the raw evaluation: its output's noise
//! depends on the model's weights (and its approximation error on their
//! encoding), so a data owner who decrypts it learns more than the
//! prediction. Every path that hands an evaluated ciphertext back to the
//! data owner — the `cipherflow infer` server side, and the coming
//! split-inference platform at each point where activations or outputs
//! leave the server — must first call [`EncryptedModel::sanitize`] (a fresh
//! public-key encryption of zero and noise flooding per ciphertext, see
//! `cipherflow_ckks::Evaluator::sanitize`) with a
//! `cipherflow_ckks::Flooding::for_circuit_privacy` sized for the output's
//! proven `NoiseBound` and the number of outputs ever returned under these
//! weights. The plan's parameters must leave room for that flooding
//! (`ParamsBuilder::widen_q0_for_flooding`); the default plan parameters
//! (scale ≤ 2^40) do not, which is why `run` does not sanitize by itself yet.

use crate::client::{InputSpec, ModelClient, INPUT_SPEC_VERSION};
use crate::layout::{EncTensor, Layout};
use crate::matvec::EncodedMatVec;
use crate::plan::{Plan, Stage};
use crate::TensorError;
use cipherflow_ckks::{
    Ciphertext, Encoder, Evaluator, Flooding, GaloisKeys, NoiseBound, PublicKey, RelinKey,
};
use rand_core::{CryptoRng, RngCore};
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
    plan: Plan,
    mode: Mode,
    encoder: Encoder,
    eval: Evaluator,
    /// Latency mode: the pre-encoded matrix of each linear stage.
    encoded: Vec<Option<EncodedMatVec>>,
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
        })
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

    /// Circuit privacy for an evaluated output before it goes back to the
    /// data owner (see the module documentation): every ciphertext is
    /// re-randomized with a fresh encryption of zero under the owner's
    /// public key and flooded for `bound` (the proven bound of each output
    /// ciphertext) with `flooding` (from `Flooding::for_circuit_privacy`).
    pub fn sanitize<R: RngCore + CryptoRng>(
        &self,
        out: &EncTensor,
        pk: &PublicKey,
        bound: &NoiseBound,
        flooding: &Flooding,
        rng: &mut R,
    ) -> Result<EncTensor, TensorError> {
        let cts = out
            .cts
            .iter()
            .map(|c| Ok(self.eval.sanitize(c, pk, bound, flooding, rng)?.0))
            .collect::<Result<Vec<_>, TensorError>>()?;
        Ok(EncTensor {
            cts,
            shape: out.shape.clone(),
            layout: out.layout,
        })
    }
}
