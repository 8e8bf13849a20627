//! Encrypted inference end to end, as a front end runs it (`cipherflow
//! infer`, later the platform): calibrate approximations, compile the plan,
//! generate the client's keys from the published input spec alone, and run
//! the inputs chunk by chunk — each encrypted, sent through its byte
//! encoding, run on the server, returned the same way and decrypted —
//! comparing each class with the exact plaintext model's. The caller sees
//! every input as it is decided ([`InputResult`]) and gets the totals
//! ([`RunTotals`]).

use crate::client::{KeySet, ModelClient};
use crate::layout::EncTensor;
use crate::plan::{Approximate, CompileOptions, Plan};
use crate::poly::{Approx, Interval, Polynomial};
use crate::privacy::OutputPrivacy;
use crate::server::{EncryptedModel, Mode};
use crate::TensorError;
use cipherflow_ckks::{Ciphertext, CkksParams};
use cipherflow_nn::data::Inputs;
use cipherflow_nn::{Calibration, Layer, NnError, Sequential, Tensor};
use ndarray::Array2;
use std::time::Instant;

/// What an approximation of the model's non-polynomial activations is:
/// each activation's interval `[−w, w]`, the degree, and each function's
/// largest error on its intervals.
#[derive(Clone, Debug)]
pub struct Approximation {
    /// Half the widest interval's width.
    pub half_width: f64,
    /// Half the width of each activation's interval, in the model's order.
    pub half_widths: Vec<f64>,
    /// The polynomials' degree.
    pub degree: usize,
    /// `(function, max error)` for each approximated function.
    pub errors: Vec<(String, f64)>,
}

/// Compile options that approximate ReLU, sigmoid, tanh and GELU at
/// `degree`, each on an interval measured on `calibration` (`[N, F]`
/// inputs as the model takes them): 1.25× the largest value entering that
/// activation. `None` when the model has none.
pub fn calibrate(
    model: &mut Sequential,
    calibration: &Array2<f32>,
    degree: usize,
) -> Result<(CompileOptions, Option<Approximation>), TensorError> {
    let measured = Calibration::measure(model, calibration)?;
    approximate_with(model, &measured, degree)
}

/// Half the interval an activation whose inputs were measured up to
/// `bound` is approximated on: a quarter more, for inputs a little beyond
/// the calibration's.
fn half_width_for(bound: f32) -> f64 {
    (1.25 * f64::from(bound)).max(1e-3)
}

/// As [`calibrate`], from bounds measured before (e.g. stored with the
/// model at training time).
pub fn approximate_with(
    model: &Sequential,
    calibration: &Calibration,
    degree: usize,
) -> Result<(CompileOptions, Option<Approximation>), TensorError> {
    let bounds = &calibration.bounds;
    if bounds.len() != model.layers().len() {
        return Err(TensorError::Invalid(format!(
            "calibration of {} layers for a model of {}",
            bounds.len(),
            model.layers().len()
        )));
    }
    let mut errors: Vec<(String, f64)> = Vec::new();
    let mut half_widths = Vec::new();
    for (l, b) in model.layers().iter().zip(bounds) {
        let Some(f) = (match l {
            Layer::Activation(a) => Approx::of(a.kind),
            _ => None,
        }) else {
            continue;
        };
        let w = half_width_for(*b);
        let (_, e) = Polynomial::approximate(f, w, degree)?;
        half_widths.push(w);
        match errors.iter_mut().find(|(name, _)| *name == f.name()) {
            Some((_, worst)) => *worst = worst.max(e),
            None => errors.push((f.name(), e)),
        }
    }
    if half_widths.is_empty() {
        return Ok((CompileOptions::default(), None));
    }
    let intervals = half_widths.iter().map(|&w| Interval::from(w)).collect();
    Ok((
        CompileOptions {
            approximate: Some(Approximate::per_activation(degree, intervals)),
            ..CompileOptions::default()
        },
        Some(Approximation {
            half_width: half_widths.iter().copied().fold(0.0, f64::max),
            half_widths,
            degree,
            errors,
        }),
    ))
}

fn secure_rng() -> Result<impl rand_core::CryptoRng, TensorError> {
    cipherflow_ring::sampler::secure_rng()
        .map_err(|e| TensorError::Invalid(format!("the operating system's randomness: {e}")))
}

/// The index of the largest value (the first of equals).
pub fn argmax(v: &[f64]) -> usize {
    v.iter()
        .enumerate()
        .fold(
            (0, f64::NEG_INFINITY),
            |b, (i, &x)| if x > b.1 { (i, x) } else { b },
        )
        .0
}

/// The exact model's logits for `[N, F]` inputs.
fn plain_logits(model: &mut Sequential, x: &Array2<f32>) -> Result<Vec<Vec<f64>>, NnError> {
    let mut all = Vec::with_capacity(x.nrows());
    for rows in x.axis_chunks_iter(ndarray::Axis(0), 512) {
        let mut shape = vec![rows.nrows()];
        shape.extend(model.input_shape());
        let t = Tensor::from_shape_vec(ndarray::IxDyn(&shape), rows.iter().copied().collect())
            .map_err(|e| NnError::Config(e.to_string()))?;
        let y = model.predict(&t)?;
        let classes = y.len() / rows.nrows().max(1);
        let v: Vec<f64> = y.iter().map(|&v| f64::from(v)).collect();
        all.extend(v.chunks(classes.max(1)).map(<[f64]>::to_vec));
    }
    Ok(all)
}

/// Serializes and parses back every ciphertext (what a network hop does);
/// returns the tensor as received and the bytes sent.
fn transfer(t: &EncTensor, params: &CkksParams) -> Result<(EncTensor, usize), TensorError> {
    let mut bytes = 0;
    let mut cts = Vec::with_capacity(t.ciphertexts().len());
    for ct in t.ciphertexts() {
        let b = ct.to_bytes(params)?;
        bytes += b.len();
        cts.push(Ciphertext::from_bytes(params, &b)?);
    }
    let t = EncTensor::from_parts(cts, t.shape().to_vec(), t.layout(), params.slots())?;
    Ok((t, bytes))
}

/// One input's outcome.
#[derive(Clone, Debug)]
pub struct InputResult<'a> {
    /// Its position in the run.
    pub index: usize,
    /// Its id (file name, row id or number).
    pub id: &'a str,
    /// The class of the decrypted scores.
    pub class: usize,
    /// The exact plaintext model's class.
    pub plain_class: usize,
    /// Its label, if known.
    pub label: Option<usize>,
    /// The decrypted scores (logits).
    pub scores: &'a [f64],
}

/// What a run measured.
#[derive(Clone, Debug, Default)]
pub struct RunTotals {
    /// Inputs run.
    pub inputs: usize,
    /// Inputs with a label.
    pub labelled: usize,
    /// Labelled inputs the plaintext model classified right.
    pub plain_correct: usize,
    /// Labelled inputs the encrypted run classified right.
    pub encrypted_correct: usize,
    /// Inputs whose encrypted class equals the plaintext model's.
    pub agree: usize,
    /// Largest difference between decrypted and exact logits.
    pub max_logit_error: f64,
    /// Bytes uploaded (ciphertexts).
    pub upload_bytes: usize,
    /// Bytes downloaded.
    pub download_bytes: usize,
    /// Client seconds (encrypt, serialize, decrypt).
    pub client_seconds: f64,
    /// Server seconds.
    pub server_seconds: f64,
    /// Seconds reading the next chunks of inputs.
    pub input_seconds: f64,
}

/// How the server's outputs leave it in an [`EncryptedRun`] (see
/// [`crate::privacy`]): always re-randomized, flooded as asked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutputOptions {
    /// Inputs are declared (and clamped by the client) to `|x| ≤` this,
    /// rounded up to a power of two.
    pub input_bound: f64,
    /// `Some(λ)`: flood at λ bits or refuse; `None`: the strongest λ that
    /// keeps `min_precision_bits`, re-randomization only when none does.
    pub circuit_privacy_bits: Option<u32>,
    /// Outputs the flooding covers over the model's life.
    pub returned_outputs: u64,
    /// Precision (bits) every output value must keep after flooding.
    pub min_precision_bits: f64,
}

impl OutputOptions {
    /// The defaults for inputs bounded by `input_bound`: the strongest
    /// flooding that keeps 8 bits, over 2^20 outputs.
    pub fn for_inputs(input_bound: f64) -> Self {
        Self {
            input_bound,
            circuit_privacy_bits: None,
            returned_outputs: crate::privacy::DEFAULT_RETURNED_OUTPUTS,
            min_precision_bits: 8.0,
        }
    }
}

/// A compiled model with its client keys, ready to run inputs.
pub struct EncryptedRun {
    plan: Plan,
    server: EncryptedModel,
    privacy: OutputPrivacy,
    client: ModelClient,
    keys: KeySet,
    params: CkksParams,
    mode: Mode,
    /// Milliseconds compiling the plan and preparing the server.
    pub prepare_ms: f64,
    /// Milliseconds generating the client's keys.
    pub keygen_ms: f64,
}

impl EncryptedRun {
    /// Compiles `model` with `opts`, prepares the server in `mode` with
    /// the output privacy `output` asks (refused when a stated λ does not
    /// fit), and generates the client's keys from the server's published
    /// input spec (JSON, as a remote client receives it; no weights).
    pub fn new(
        model: &Sequential,
        opts: &CompileOptions,
        mode: Mode,
        output: &OutputOptions,
    ) -> Result<Self, TensorError> {
        let t0 = Instant::now();
        let plan = Plan::compile_with(model, opts)?;
        let server = EncryptedModel::new(&plan, mode)?.with_input_bound(output.input_bound)?;
        let privacy = match output.circuit_privacy_bits {
            Some(bits) => OutputPrivacy::Flooded(server.circuit_privacy(
                bits,
                output.returned_outputs,
                output.min_precision_bits,
            )?),
            None => server.output_privacy(output.returned_outputs, output.min_precision_bits)?,
        };
        let prepare_ms = t0.elapsed().as_secs_f64() * 1e3;
        let params = plan.params().clone();
        let mut rng = secure_rng()?;
        let t0 = Instant::now();
        let spec = serde_json::to_string(&server.input_spec())
            .map_err(|e| TensorError::Invalid(e.to_string()))?;
        let client = ModelClient::new(
            serde_json::from_str(&spec).map_err(|e| TensorError::Invalid(e.to_string()))?,
        )?;
        let keys = KeySet::generate(&client, &mut rng)?;
        Ok(EncryptedRun {
            plan,
            server,
            privacy,
            client,
            keys,
            params,
            mode,
            prepare_ms,
            keygen_ms: t0.elapsed().as_secs_f64() * 1e3,
        })
    }

    /// The compiled plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The server side (rotation steps and counts).
    pub fn server(&self) -> &EncryptedModel {
        &self.server
    }

    /// The client's keys (their sizes).
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// How outputs leave the server (re-randomized, flooded at what λ).
    pub fn output_privacy(&self) -> &OutputPrivacy {
        &self.privacy
    }

    /// The CKKS parameters.
    pub fn params(&self) -> &CkksParams {
        &self.params
    }

    /// Runs `chunks` (inputs already preprocessed and labelled as the model
    /// numbers its classes), at most `limit` inputs, calling `on_input` for
    /// each as it is decided.
    pub fn run<E>(
        &self,
        model: &mut Sequential,
        chunks: impl Iterator<Item = Result<Inputs, E>>,
        limit: usize,
        mut on_input: impl FnMut(&InputResult<'_>) -> Result<(), E>,
    ) -> Result<RunTotals, E>
    where
        E: From<TensorError> + From<NnError>,
    {
        let mut rng = secure_rng()?;
        let dec = self.keys.decryptor();
        let group = match self.mode {
            Mode::Throughput => self.params.slots(),
            Mode::Latency => 1,
        };
        let mut t = RunTotals::default();
        let mut chunks = chunks;
        loop {
            if t.inputs >= limit {
                break;
            }
            let t_in = Instant::now();
            let Some(inputs) = chunks.next() else {
                break;
            };
            let mut inputs = inputs?;
            inputs.truncate(limit - t.inputs);
            t.input_seconds += t_in.elapsed().as_secs_f64();
            let exact = plain_logits(model, &inputs.features)?;
            let xs: Vec<Vec<f64>> = inputs
                .features
                .rows()
                .into_iter()
                .map(|r| r.iter().map(|&v| f64::from(v)).collect())
                .collect();
            for (g, group_xs) in xs.chunks(group).enumerate() {
                let t_c = Instant::now();
                let ct = self.client.encrypt(&self.keys.sk, group_xs, &mut rng)?;
                let (ct, b) = transfer(&ct, &self.params)?;
                t.client_seconds += t_c.elapsed().as_secs_f64();
                t.upload_bytes += b;
                let t_s = Instant::now();
                let out = self.server.respond(
                    &self.keys.rlk,
                    &self.keys.gk,
                    &self.keys.pk,
                    &ct,
                    &self.privacy,
                    &mut rng,
                )?;
                t.server_seconds += t_s.elapsed().as_secs_f64();
                let t_c = Instant::now();
                let (out, b) = transfer(&out, &self.params)?;
                t.download_bytes += b;
                let logits = out.decrypt(&dec)?;
                t.client_seconds += t_c.elapsed().as_secs_f64();
                for (k, scores) in logits.iter().enumerate() {
                    let i = g * group + k;
                    let e = exact.get(i).map_or(&[][..], Vec::as_slice);
                    let r = InputResult {
                        index: t.inputs,
                        id: inputs.ids.get(i).map_or("", String::as_str),
                        class: argmax(scores),
                        plain_class: argmax(e),
                        label: inputs.labels.as_ref().and_then(|l| l.get(i)).copied(),
                        scores,
                    };
                    t.inputs += 1;
                    t.agree += usize::from(r.class == r.plain_class);
                    if let Some(l) = r.label {
                        t.labelled += 1;
                        t.plain_correct += usize::from(r.plain_class == l);
                        t.encrypted_correct += usize::from(r.class == l);
                    }
                    let d = e
                        .iter()
                        .zip(scores)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0, f64::max);
                    t.max_logit_error = t.max_logit_error.max(d);
                    on_input(&r)?;
                }
            }
        }
        Ok(t)
    }
}
