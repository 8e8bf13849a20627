//! A model compiled for encrypted inference, in two halves whose bytes
//! travel between processes (what `cipherflow.torch.compile` returns):
//!
//! * the [`ServerHalf`] holds the weights: the model (ONNX bytes) and the
//!   options it was compiled with, so another process rebuilds exactly the
//!   same plan from its bytes; it answers encrypted inputs, every output
//!   re-randomized and flooded as [`crate::privacy`] decides;
//! * the [`ClientHalf`] holds no weights: it is made from the server's
//!   published [`InputSpec`] (JSON), makes the keys, encrypts inputs and
//!   decrypts answers. The secret key never leaves it.
//!
//! Byte formats are versioned and strict, parts length-prefixed and
//! bounded before anything is allocated; the evaluation keys a server
//! accepts are exactly those of its model's rotations.

use crate::client::{InputSpec, KeySet, ModelClient};
use crate::job::{approximate_with, OutputOptions};
use crate::layout::EncTensor;
use crate::plan::{Approximate, CompileOptions, Plan};
use crate::poly::Interval;
use crate::privacy::OutputPrivacy;
use crate::server::{EncryptedModel, Mode};
use crate::wire::EvalKeys;
use crate::TensorError;
use cipherflow_ckks::{CkksParams, SecretKey};
use cipherflow_nn::{Calibration, Sequential};
use ndarray::Array2;
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

const MAGIC: &[u8; 4] = b"CFSH";
const VERSION: u8 = 1;
/// Largest model (ONNX bytes) a server half carries.
pub const MAX_MODEL_BYTES: usize = 1 << 30;
const MAX_OPTIONS_BYTES: usize = 1 << 16;

fn bad(m: impl Into<String>) -> TensorError {
    TensorError::Invalid(format!("malformed bytes: {}", m.into()))
}

/// How a model was compiled: enough for another process to rebuild the
/// same plan from the model alone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployOptions {
    /// ReLU, sigmoid, tanh and GELU replaced by Chebyshev polynomials of
    /// this degree on `[−half_width, half_width]` (the widest interval
    /// when each activation has its own).
    pub approximate: Option<(usize, f64)>,
    /// Half the width of each approximated activation's own interval, in
    /// the model's order; empty: `approximate`'s for all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub activation_half_widths: Vec<f64>,
    /// One input per ciphertext (latency) or one example per slot
    /// (throughput).
    pub mode: Mode,
    /// Inputs are clamped by the client to `|x| ≤` this (the output
    /// flooding is sized for it).
    pub input_bound: f64,
    /// Outputs the flooding covers over the model's life.
    pub returned_outputs: u64,
    /// Bits every output keeps after flooding.
    pub min_precision_bits: f64,
}

/// The weights' side of a compiled model.
pub struct ServerHalf {
    onnx: Vec<u8>,
    options: DeployOptions,
    model: Sequential,
    server: EncryptedModel,
    privacy: OutputPrivacy,
    spec: InputSpec,
}

impl std::fmt::Debug for ServerHalf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHalf")
            .field("options", &self.options)
            .field("depth", &self.server.plan().depth())
            .finish()
    }
}

impl ServerHalf {
    /// Compiles an ONNX model. With `degree`, non-polynomial activations
    /// are approximated on an interval measured on `calibration` (inputs
    /// as rows, as the model takes them flattened); without, a model that
    /// has them is refused with the layer named.
    pub fn compile(
        onnx: &[u8],
        calibration: &Array2<f32>,
        degree: Option<usize>,
        mode: Mode,
        input_bound: f64,
    ) -> Result<Self, TensorError> {
        let mut model = import(onnx)?;
        let fitted = match degree {
            Some(d) => {
                let measured = Calibration::measure(&mut model, calibration)?;
                approximate_with(&model, &measured, d)?.1
            }
            None => None,
        };
        let defaults = OutputOptions::for_inputs(input_bound);
        let options = DeployOptions {
            approximate: fitted.as_ref().map(|a| (a.degree, a.half_width)),
            activation_half_widths: fitted.map(|a| a.half_widths).unwrap_or_default(),
            mode,
            input_bound,
            returned_outputs: defaults.returned_outputs,
            min_precision_bits: defaults.min_precision_bits,
        };
        Self::build(onnx.to_vec(), model, options)
    }

    fn build(
        onnx: Vec<u8>,
        model: Sequential,
        options: DeployOptions,
    ) -> Result<Self, TensorError> {
        if !options.input_bound.is_finite() || options.input_bound <= 0.0 {
            return Err(TensorError::Invalid(format!(
                "input bound {} must be finite and positive",
                options.input_bound
            )));
        }
        let approximate = match (
            options.approximate,
            options.activation_half_widths.as_slice(),
        ) {
            (None, []) => None,
            (None, _) => {
                return Err(TensorError::Invalid(
                    "activation intervals without a degree to approximate them at".into(),
                ))
            }
            (Some((d, w)), []) => Some(Approximate::shared(d, w)),
            (Some((d, _)), widths) => Some(Approximate::per_activation(
                d,
                widths.iter().map(|&w| Interval::from(w)).collect(),
            )),
        };
        let opts = CompileOptions {
            approximate,
            ..CompileOptions::default()
        };
        let plan = Plan::compile_with(&model, &opts)?;
        let server =
            EncryptedModel::new(&plan, options.mode)?.with_input_bound(options.input_bound)?;
        let privacy =
            server.output_privacy(options.returned_outputs, options.min_precision_bits)?;
        let spec = server.input_spec();
        Ok(Self {
            onnx,
            options,
            model,
            server,
            privacy,
            spec,
        })
    }

    /// The server half as bytes (the model's weights are in them).
    pub fn to_bytes(&self) -> Result<Vec<u8>, TensorError> {
        let opts = serde_json::to_vec(&self.options).map_err(|e| bad(e.to_string()))?;
        let mut out = Vec::with_capacity(self.onnx.len() + opts.len() + 16);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        put_part(&mut out, &opts)?;
        put_part(&mut out, &self.onnx)?;
        Ok(out)
    }

    /// Rebuilds a server half from its bytes (the same plan, recompiled).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TensorError> {
        let mut r = bytes;
        if take(&mut r, 4)? != MAGIC {
            return Err(bad("not a server half"));
        }
        match take(&mut r, 1)?.first() {
            Some(&VERSION) => {}
            v => {
                return Err(bad(format!(
                    "server half version {v:?}, this build reads {VERSION}"
                )))
            }
        }
        let opts = part(&mut r, MAX_OPTIONS_BYTES)?;
        let onnx = part(&mut r, MAX_MODEL_BYTES)?;
        if !r.is_empty() {
            return Err(bad("trailing bytes"));
        }
        let options: DeployOptions =
            serde_json::from_slice(opts).map_err(|e| bad(format!("options: {e}")))?;
        let model = import(onnx)?;
        Self::build(onnx.to_vec(), model, options)
    }

    /// What a client needs (no weights).
    pub fn spec(&self) -> &InputSpec {
        &self.spec
    }

    /// The options it was compiled with.
    pub fn options(&self) -> &DeployOptions {
        &self.options
    }

    /// The imported model (for plaintext comparisons).
    pub fn model(&self) -> &Sequential {
        &self.model
    }

    /// The encrypted model (plan, rotations, parameters).
    pub fn encrypted(&self) -> &EncryptedModel {
        &self.server
    }

    /// How outputs leave the server.
    pub fn privacy(&self) -> &OutputPrivacy {
        &self.privacy
    }

    /// Answers an encrypted input: the client's evaluation keys (exactly
    /// the model's) and the input, as bytes; the output re-randomized
    /// under the client's public key and flooded.
    pub fn respond<R: RngCore + CryptoRng>(
        &self,
        eval_keys: &[u8],
        input: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, TensorError> {
        self.respond_with(&self.load_keys(eval_keys)?, input, rng)
    }

    /// Parses and checks a client's evaluation keys once (exactly the
    /// model's rotations), for [`ServerHalf::respond_with`].
    pub fn load_keys(&self, eval_keys: &[u8]) -> Result<EvalKeys, TensorError> {
        EvalKeys::from_bytes(self.server.plan().params(), &self.spec, eval_keys)
    }

    /// [`ServerHalf::respond`] with keys loaded before.
    pub fn respond_with<R: RngCore + CryptoRng>(
        &self,
        keys: &EvalKeys,
        input: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, TensorError> {
        let params = self.server.plan().params();
        let x = EncTensor::from_bytes(params, input)?;
        let out = self
            .server
            .respond(&keys.rlk, &keys.gk, &keys.pk, &x, &self.privacy, rng)?;
        out.to_bytes(params)
    }
}

fn import(onnx: &[u8]) -> Result<Sequential, TensorError> {
    if onnx.len() > MAX_MODEL_BYTES {
        return Err(TensorError::Invalid(format!(
            "a model of {} bytes (at most {MAX_MODEL_BYTES})",
            onnx.len()
        )));
    }
    Ok(cipherflow_nn::io::onnx::import_bytes(onnx)?)
}

fn take<'a>(r: &mut &'a [u8], n: usize) -> Result<&'a [u8], TensorError> {
    if n > r.len() {
        return Err(bad("cut short"));
    }
    let (a, b) = r.split_at(n);
    *r = b;
    Ok(a)
}

fn part<'a>(r: &mut &'a [u8], max: usize) -> Result<&'a [u8], TensorError> {
    let n: [u8; 8] = take(r, 8)?.try_into().map_err(|_| bad("cut short"))?;
    let n = usize::try_from(u64::from_le_bytes(n)).map_err(|_| bad("length"))?;
    if n > max {
        return Err(bad(format!("a part of {n} bytes (at most {max})")));
    }
    take(r, n)
}

fn put_part(out: &mut Vec<u8>, b: &[u8]) -> Result<(), TensorError> {
    out.extend_from_slice(&(b.len() as u64).to_le_bytes());
    out.extend_from_slice(b);
    Ok(())
}

/// The data owner's side: keys from the server's spec, encryption,
/// decryption. No weights.
pub struct ClientHalf {
    client: ModelClient,
    keys: KeySet,
}

impl std::fmt::Debug for ClientHalf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientHalf")
            .field("input_shape", &self.client.spec().input_shape)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

impl ClientHalf {
    /// Checks the server's published spec (JSON) and makes keys for it.
    pub fn new<R: RngCore + CryptoRng>(spec_json: &str, rng: &mut R) -> Result<Self, TensorError> {
        let client = Self::checked_client(spec_json)?;
        let keys = KeySet::generate(&client, rng)?;
        Ok(Self { client, keys })
    }

    /// Checks the spec as [`ClientHalf::new`] does and takes a secret key
    /// the client kept (its strict encoding, as
    /// [`ClientHalf::secret_key_bytes`] writes it, for the spec's
    /// parameters); the evaluation keys are made afresh for it.
    pub fn from_secret_key<R: RngCore + CryptoRng>(
        spec_json: &str,
        secret_key: &[u8],
        rng: &mut R,
    ) -> Result<Self, TensorError> {
        let client = Self::checked_client(spec_json)?;
        let sk = SecretKey::from_bytes(client.params(), secret_key)?;
        let keys = KeySet::from_secret(&client, sk, rng)?;
        Ok(Self { client, keys })
    }

    fn checked_client(spec_json: &str) -> Result<ModelClient, TensorError> {
        if spec_json.len() > MAX_OPTIONS_BYTES * 16 {
            return Err(TensorError::Invalid(
                "an input spec of more than 1 MiB".into(),
            ));
        }
        let spec: InputSpec = serde_json::from_str(spec_json)
            .map_err(|e| TensorError::Invalid(format!("not an input spec: {e}")))?;
        ModelClient::new(spec)
    }

    /// The secret key's strict encoding, for the client to keep (sealed:
    /// it decrypts everything encrypted under these keys). Zeroized when
    /// dropped.
    pub fn secret_key_bytes(&self) -> Zeroizing<Vec<u8>> {
        self.keys.sk.to_bytes()
    }

    /// The spec it was made for.
    pub fn spec(&self) -> &InputSpec {
        self.client.spec()
    }

    /// The parameters.
    pub fn params(&self) -> &CkksParams {
        self.client.params()
    }

    /// The keys the server needs (public, relinearization, Galois).
    pub fn eval_key_bytes(&self) -> Result<Vec<u8>, TensorError> {
        self.keys.eval_key_bytes()
    }

    /// Encrypts one input (latency mode) or up to `slots` (throughput
    /// mode), each flattened as the model takes it.
    pub fn encrypt<R: RngCore + CryptoRng>(
        &self,
        inputs: &[Vec<f64>],
        rng: &mut R,
    ) -> Result<Vec<u8>, TensorError> {
        let want: usize = self.client.spec().input_shape.iter().product();
        if let Some(x) = inputs.iter().find(|x| x.len() != want) {
            return Err(TensorError::Shape(format!(
                "an input of {} values; the model takes {want} ({:?})",
                x.len(),
                self.client.spec().input_shape
            )));
        }
        if inputs.iter().flatten().any(|v| !v.is_finite()) {
            return Err(TensorError::Invalid("input values must be finite".into()));
        }
        self.client
            .encrypt(&self.keys.sk, inputs, rng)?
            .to_bytes(self.client.params())
    }

    /// Decrypts an answer: one output vector per input.
    pub fn decrypt(&self, answer: &[u8]) -> Result<Vec<Vec<f64>>, TensorError> {
        let t = EncTensor::from_bytes(self.client.params(), answer)?;
        t.decrypt(&self.keys.decryptor())
    }
}
