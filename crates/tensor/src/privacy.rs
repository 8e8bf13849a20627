//! Circuit privacy of what an encrypted model returns: the proven bound of
//! an evaluation's output, the flooding it allows, and the server's one
//! way to return an output ([`EncryptedModel::respond`]).
//!
//! # What is hidden, from whom, under what assumptions
//! The data owner decrypts what the server returns. Raw, its noise depends
//! on the model's weights (the products with them, their encoding's
//! rounding): a data owner who decrypts it learns more than the
//! prediction. [`EncryptedModel::respond`] therefore adds a fresh
//! public-key encryption of zero to every output (its `c1` is then a fresh
//! RLWE sample) and — when the parameters leave room — Gaussian flooding
//! sized by `cipherflow_ckks::Flooding::for_circuit_privacy` for the
//! output's *proven* bound ([`EncryptedModel::output_bound`]) and for the
//! number of outputs ever returned under these weights. Against a data
//! owner who encrypts honestly (under its own key, inputs clamped to the
//! declared bound, as [`crate::ModelClient`] does), the flooded output is
//! statistically close (λ bits, in the divergence `Flooding` bounds) to a
//! function of the ideal result alone. A client that deviates — inputs past
//! the bound, activations outside their approximation interval, malformed
//! ciphertexts with large noise — falls outside the bound and the
//! guarantee; proving well-formed inputs would need zero-knowledge proofs
//! or bootstrapping, not built.
//!
//! # What fits
//! Flooding at λ bits costs about `λ/2 + log2(√(outputs)·√N) + 4` bits of
//! output precision on top of the proven error, and the proven error of a
//! rescaled ciphertext is at least the worst-case rounding of a rescale
//! (`N/2·(1 + T)`, about 2^22 at N = 2^13) — 6 to 14 bits above what runs
//! measure (see `cipherflow_ckks::noise`). With primes of at most 61 bits,
//! a model with a few layers leaves room for little or no flooding; a
//! linear model, or the linear head of a split model, leaves room for
//! more. [`EncryptedModel::output_privacy`] finds the strongest λ that
//! keeps a stated precision, or says that none does (the output is then
//! re-randomized only, and the caller is told so).
//!
//! # What the flooding itself reveals
//! Its σ shows in the variance of what the data owner decrypts, and σ is
//! sized from the output bound, which depends on the weights (row sums of
//! their absolute values). σ is therefore sized for the bound rounded up
//! to a power of two: the data owner learns that order of magnitude and
//! nothing finer.

use crate::layout::EncTensor;
use crate::plan::Stage;
use crate::server::{EncryptedModel, Mode};
use crate::TensorError;
use cipherflow_ckks::{
    Flooding, Fresh, GaloisKeys, NoiseBound, PublicKey, RelinKey, DEFAULT_TAIL_BITS,
};
use rand_core::{CryptoRng, RngCore};

/// The outputs one model is assumed to return over its life when the
/// caller does not say (the flooding covers this many).
pub const DEFAULT_RETURNED_OUTPUTS: u64 = 1 << 20;
/// The weakest statistical security [`EncryptedModel::output_privacy`]
/// floods at; below it the output is re-randomized only.
pub const MIN_CIRCUIT_PRIVACY_BITS: u32 = 20;
/// The strongest statistical security it looks for.
pub const MAX_CIRCUIT_PRIVACY_BITS: u32 = 64;

/// Flooding sized for one model's outputs.
#[derive(Clone, Copy, Debug)]
pub struct CircuitPrivacy {
    bound: NoiseBound,
    flooding: Flooding,
    precision_bits: f64,
}

impl CircuitPrivacy {
    /// Statistical security λ of the flooding.
    pub fn stat_sec_bits(&self) -> u32 {
        self.flooding.stat_sec_bits()
    }

    /// Outputs covered.
    pub fn outputs(&self) -> u64 {
        self.flooding.decryptions()
    }

    /// The proven bound of each output before flooding.
    pub fn bound(&self) -> &NoiseBound {
        &self.bound
    }

    /// The flooding.
    pub fn flooding(&self) -> &Flooding {
        &self.flooding
    }

    /// Precision (bits) every output value keeps after flooding.
    pub fn precision_bits(&self) -> f64 {
        self.precision_bits
    }
}

/// How a server's outputs leave it.
#[derive(Clone, Debug)]
pub enum OutputPrivacy {
    /// Re-randomized and flooded.
    Flooded(CircuitPrivacy),
    /// Re-randomized only: no flooding fits these parameters (`why`); the
    /// noise may still reveal information about the weights.
    RerandomizedOnly {
        /// Why no flooding fits (the figures).
        why: String,
    },
}

impl OutputPrivacy {
    /// One line for a report.
    pub fn describe(&self) -> String {
        match self {
            OutputPrivacy::Flooded(c) => format!(
                "outputs re-randomized and flooded: circuit privacy λ = {} bits over {} outputs \
                 (σ = 2^{:.1} for a proven bound of 2^{:.1}), {:.1} bits of precision kept",
                c.stat_sec_bits(),
                c.outputs(),
                c.flooding.sigma_log2(),
                c.bound.total().log2(),
                c.precision_bits
            ),
            OutputPrivacy::RerandomizedOnly { why } => format!(
                "outputs re-randomized, not flooded: {why}; their noise can reveal information \
                 about the weights"
            ),
        }
    }
}

impl EncryptedModel {
    /// The proven bound of [`EncryptedModel::run`]'s output (every output
    /// ciphertext) for inputs encrypted as [`crate::ModelClient`] does —
    /// under the secret key, at the input level and scale — with every
    /// value `|x| ≤ input_values`. It mirrors `run` stage by stage; a
    /// polynomial activation adds the premise that its input stays inside
    /// its interval (see `poly/bound.rs`). Each tail bound fails with
    /// probability at most `2^−tail_bits`; the result's
    /// `failure_probability` adds them up.
    pub fn output_bound(
        &self,
        input_values: f64,
        tail_bits: u32,
    ) -> Result<NoiseBound, TensorError> {
        let params = self.plan.params();
        let target = params.default_scale();
        let mut level = self.input_level();
        let mut b = NoiseBound::fresh(
            params,
            Fresh::SecretKey,
            input_values,
            self.input_scale(),
            tail_bits,
        )?;
        for (stage, enc) in self.plan.stages().iter().zip(&self.encoded) {
            b = match (stage, self.mode, enc) {
                (Stage::Linear(_), Mode::Latency, Some(e)) => e.bound(params, &b)?,
                (Stage::Linear(m), Mode::Throughput, _) => {
                    let ql = *params.q().get(level).ok_or(TensorError::Ckks(
                        cipherflow_ckks::CkksError::InvalidLevel(level),
                    ))? as f64;
                    let mut worst: Option<NoiseBound> = None;
                    for i in 0..m.rows() {
                        let mut acc = b.mul_const_at(0.0, target * ql)?;
                        for &w in m.row(i).iter().filter(|w| **w != 0.0) {
                            acc = acc.add(&b.mul_const_at(w, target * ql)?)?;
                        }
                        let bias = m.bias().get(i).copied().unwrap_or(0.0);
                        let out = acc.add_const(bias)?.rescale(params, level)?;
                        worst = Some(match worst {
                            None => out,
                            Some(x) => x.worst(&out)?,
                        });
                    }
                    worst.ok_or_else(|| TensorError::Invalid("a layer without outputs".into()))?
                }
                (Stage::Linear(_), Mode::Latency, None) => {
                    return Err(TensorError::Invalid("matrix not encoded".into()))
                }
                (Stage::Square, _, _) => b.mul_relin(&b, params, level)?.rescale(params, level)?,
                (Stage::Poly(p), _, _) => p.bound(params, &b, level, target)?,
            };
            level = level
                .checked_sub(stage.depth())
                .ok_or(TensorError::DoesNotFit("level budget exhausted".into()))?;
        }
        Ok(b)
    }

    /// Flooding at `stat_sec_bits` for `outputs` returned outputs that
    /// keeps at least `min_precision_bits`; refused, with the figures,
    /// when it does not fit (precision, or the modulus at the output
    /// level). Needs a declared input bound.
    pub fn circuit_privacy(
        &self,
        stat_sec_bits: u32,
        outputs: u64,
        min_precision_bits: f64,
    ) -> Result<CircuitPrivacy, TensorError> {
        let bound = self.declared_bound()?;
        self.flooding_for(&bound, stat_sec_bits, outputs, min_precision_bits)
    }

    pub(crate) fn declared_bound(&self) -> Result<NoiseBound, TensorError> {
        let v = self.input_bound.ok_or_else(|| {
            TensorError::Invalid(
                "circuit privacy and hand-offs need a declared input bound (EncryptedModel::with_input_bound)"
                    .into(),
            )
        })?;
        self.output_bound(v, DEFAULT_TAIL_BITS)
    }

    fn flooding_for(
        &self,
        bound: &NoiseBound,
        stat_sec_bits: u32,
        outputs: u64,
        min_precision_bits: f64,
    ) -> Result<CircuitPrivacy, TensorError> {
        let params = self.plan.params();
        // The flooding hides noise and approximation error (as
        // `Flooding::for_circuit_privacy`), for the bound rounded up to a
        // power of two: σ shows in what the data owner decrypts, and then
        // tells only the bound's order of magnitude.
        let public = 2f64.powf(bound.total().max(1.0).log2().ceil());
        let flooding = Flooding::new(params, public, stat_sec_bits, outputs)?;
        let precision_bits = flooding.precision_bits(bound);
        let level = self.output_level()?;
        // The decoder reads the first two primes (one at level 0).
        let have: f64 = params
            .q()
            .iter()
            .take(level.min(1) + 1)
            .map(|&q| (q as f64).log2())
            .sum();
        let need = flooding.modulus_bits_needed(bound);
        if need > have || precision_bits < min_precision_bits {
            return Err(TensorError::DoesNotFit(format!(
                "flooding at λ = {stat_sec_bits} over {outputs} outputs (σ = 2^{:.1}) for the \
                 proven output bound 2^{:.1} at scale 2^{:.1} keeps {precision_bits:.1} bits of \
                 precision (at least {min_precision_bits} asked) and needs {need:.1} bits of \
                 modulus at the output level ({have:.1} there)",
                flooding.sigma_log2(),
                bound.total().log2(),
                bound.scale().log2()
            )));
        }
        Ok(CircuitPrivacy {
            bound: *bound,
            flooding,
            precision_bits,
        })
    }

    /// The level of `run`'s output.
    pub fn output_level(&self) -> Result<usize, TensorError> {
        self.input_level()
            .checked_sub(self.plan.depth())
            .ok_or_else(|| TensorError::DoesNotFit("level budget exhausted".into()))
    }

    /// The strongest circuit privacy (λ from [`MAX_CIRCUIT_PRIVACY_BITS`]
    /// down to [`MIN_CIRCUIT_PRIVACY_BITS`]) whose flooding keeps
    /// `min_precision_bits` over `outputs`; re-randomization only, with
    /// the reason, when none does.
    pub fn output_privacy(
        &self,
        outputs: u64,
        min_precision_bits: f64,
    ) -> Result<OutputPrivacy, TensorError> {
        let bound = self.declared_bound()?;
        let mut why = String::new();
        for bits in (MIN_CIRCUIT_PRIVACY_BITS..=MAX_CIRCUIT_PRIVACY_BITS).rev() {
            match self.flooding_for(&bound, bits, outputs, min_precision_bits) {
                Ok(c) => return Ok(OutputPrivacy::Flooded(c)),
                Err(e) => why = e.to_string(),
            }
        }
        Ok(OutputPrivacy::RerandomizedOnly { why })
    }

    /// The server's way to return an output: `run`, then every output
    /// ciphertext re-randomized under the data owner's public key `pk`
    /// and flooded as `privacy` says.
    pub fn respond<R: RngCore + CryptoRng>(
        &self,
        rlk: &RelinKey,
        gk: &GaloisKeys,
        pk: &PublicKey,
        x: &EncTensor,
        privacy: &OutputPrivacy,
        rng: &mut R,
    ) -> Result<EncTensor, TensorError> {
        let out = self.run(rlk, gk, x)?;
        let cts = out
            .cts
            .iter()
            .map(|c| {
                Ok(match privacy {
                    OutputPrivacy::Flooded(p) => {
                        self.eval.sanitize(c, pk, &p.bound, &p.flooding, rng)?.0
                    }
                    OutputPrivacy::RerandomizedOnly { .. } => self.eval.rerandomize(c, pk, rng)?,
                })
            })
            .collect::<Result<Vec<_>, TensorError>>()?;
        Ok(EncTensor { cts, ..out })
    }
}
