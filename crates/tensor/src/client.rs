//! The client half of encrypted inference, which needs no weights: the
//! [`InputSpec`] a server publishes for its model (parameters, input shape
//! and layout, level, scale, the rotations its keys must cover), and the
//! [`ModelClient`] that checks a spec, makes the [`KeySet`] and encrypts
//! inputs. It holds no thread pool, file or database, so it compiles for
//! `wasm32-unknown-unknown` (a browser client) and sits behind the Python
//! package.

use crate::layout::EncTensor;
use crate::server::Mode;
use crate::TensorError;
use cipherflow_ckks::{
    CkksParams, Decryptor, Encoder, Encryptor, GaloisKeys, ParamsLiteral, PublicKey, RelinKey,
    SecretKey,
};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

/// The version of [`InputSpec`] this build writes and reads.
pub const INPUT_SPEC_VERSION: u32 = 1;
/// Largest number of input or output values a spec may declare.
pub const MAX_SPEC_VALUES: usize = 1 << 24;
/// Largest number of rotation keys a spec may ask for.
pub const MAX_SPEC_ROTATIONS: usize = 1024;

/// What a client needs to make keys for a model and encrypt its inputs —
/// and nothing of the model's weights. The server publishes it (JSON);
/// [`ModelClient::new`] checks it before anything is generated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// [`INPUT_SPEC_VERSION`].
    pub version: u32,
    /// The CKKS parameters (exact primes).
    pub params: ParamsLiteral,
    /// Per-example input shape, e.g. `[1, 28, 28]`.
    pub input_shape: Vec<usize>,
    /// Packing: one input per ciphertext (latency) or one example per
    /// slot (throughput).
    pub mode: Mode,
    /// Level at which inputs are encrypted.
    pub level: usize,
    /// Scale at which inputs are encrypted.
    pub scale: f64,
    /// The rotation steps the server's evaluation uses: the client makes
    /// Galois keys for exactly these.
    pub rotations: Vec<i64>,
    /// Per-example output length (what the client decrypts).
    pub output_len: usize,
    /// The bound `|x| ≤ input_bound` the server's circuit privacy is
    /// sized for: the client clamps every input value to it before
    /// encrypting. Absent: no clamping (and no flooding sized for inputs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_bound: Option<f64>,
}

/// Largest input bound a spec may declare.
pub const MAX_INPUT_BOUND: f64 = 1048576.0;

/// A client's keys for a model: secret key, relinearization key, exactly
/// the Galois keys the model's rotations need, and the public key.
pub struct KeySet {
    /// The secret key (stays with the client; zeroized on drop).
    pub sk: SecretKey,
    /// Relinearization key (sent to the server).
    pub rlk: RelinKey,
    /// Galois keys for exactly the needed rotations (sent to the server).
    pub gk: GaloisKeys,
    /// Public key (sent to the server, which needs it to sanitize outputs).
    pub pk: PublicKey,
    params: CkksParams,
}

impl KeySet {
    /// Generates the keys `client`'s model needs from a CSPRNG.
    pub fn generate<R: RngCore + CryptoRng>(
        client: &ModelClient,
        rng: &mut R,
    ) -> Result<Self, TensorError> {
        let sk = SecretKey::generate(client.params(), rng);
        Self::from_secret(client, sk, rng)
    }

    /// The evaluation keys `client`'s model needs, made afresh for an
    /// existing secret key (one the client kept): the same keys as
    /// [`KeySet::generate`] makes after sampling `sk`, with fresh noise.
    /// Refused when `sk` is for other parameters.
    pub fn from_secret<R: RngCore + CryptoRng>(
        client: &ModelClient,
        sk: SecretKey,
        rng: &mut R,
    ) -> Result<Self, TensorError> {
        let params = client.params();
        if sk.params() != params {
            return Err(TensorError::Invalid(
                "a secret key for other parameters than the model's".into(),
            ));
        }
        let rlk = RelinKey::generate(&sk, rng)?;
        let gk = GaloisKeys::generate(&sk, &client.spec.rotations, false, rng)?;
        let pk = PublicKey::generate(&sk, rng)?;
        Ok(Self {
            sk,
            rlk,
            gk,
            pk,
            params: params.clone(),
        })
    }

    /// Serialized size of the Galois keys in bytes.
    pub fn galois_bytes(&self) -> usize {
        self.gk.to_bytes(&self.params).len()
    }

    /// Serialized size of the relinearization key in bytes.
    pub fn relin_bytes(&self) -> usize {
        self.rlk.to_bytes().len()
    }

    /// The parameters the keys are for.
    pub fn params(&self) -> &CkksParams {
        &self.params
    }

    /// A decryptor (holds a copy of the secret key).
    pub fn decryptor(&self) -> Decryptor {
        Decryptor::new(&self.sk)
    }
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeySet(<redacted>)")
    }
}

/// The client of an encrypted model, built from its [`InputSpec`].
#[derive(Clone, Debug)]
pub struct ModelClient {
    spec: InputSpec,
    params: CkksParams,
    encoder: Encoder,
}

impl ModelClient {
    /// Checks `spec` — parameters rebuilt with every check and at least
    /// 128-bit secure, shapes and counts within bounds, level and scale
    /// possible, rotations distinct and within the slot count — and
    /// prepares the encoder.
    pub fn new(spec: InputSpec) -> Result<Self, TensorError> {
        if spec.version != INPUT_SPEC_VERSION {
            return Err(TensorError::Invalid(format!(
                "input spec version {}, this build reads {INPUT_SPEC_VERSION}",
                spec.version
            )));
        }
        let params = spec.params.build(false)?;
        Self::with_params(spec, params)
    }

    /// A client for `spec` whose parameters are already built (the server's
    /// own client); the same checks as [`ModelClient::new`] apart from the
    /// parameters' rebuild.
    pub(crate) fn with_params(spec: InputSpec, params: CkksParams) -> Result<Self, TensorError> {
        let invalid = |m: String| Err(TensorError::Invalid(format!("input spec: {m}")));
        let values = spec
            .input_shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d).filter(|_| d > 0));
        match values {
            Some(v) if !spec.input_shape.is_empty() && v <= MAX_SPEC_VALUES => {}
            _ => {
                return invalid(format!(
                    "input shape {:?} (positive dimensions, at most {MAX_SPEC_VALUES} values)",
                    spec.input_shape
                ))
            }
        }
        if spec.output_len == 0 || spec.output_len > MAX_SPEC_VALUES {
            return invalid(format!("output length {}", spec.output_len));
        }
        if spec.level > params.max_level() {
            return invalid(format!(
                "level {} above the parameters' top level {}",
                spec.level,
                params.max_level()
            ));
        }
        // The scale must leave room below the modulus at that level and
        // above the encoding noise.
        let log_q: f64 = params.q()[..=spec.level]
            .iter()
            .map(|&q| (q as f64).log2())
            .sum();
        if !(spec.scale.is_finite() && spec.scale >= 1024.0 && spec.scale.log2() < log_q - 1.0) {
            return invalid(format!(
                "scale {} (2^10 to 2^{:.0} at level {})",
                spec.scale,
                log_q - 1.0,
                spec.level
            ));
        }
        let slots = params.slots() as i64;
        let mut prev = None;
        if spec.rotations.len() > MAX_SPEC_ROTATIONS {
            return invalid(format!(
                "{} rotations, at most {MAX_SPEC_ROTATIONS}",
                spec.rotations.len()
            ));
        }
        for &r in &spec.rotations {
            if r == 0 || r.abs() >= slots || prev.is_some_and(|p| p >= r) {
                return invalid(format!(
                    "rotation {r}: steps must be increasing, non-zero and below {slots} in size"
                ));
            }
            prev = Some(r);
        }
        if let Some(b) = spec.input_bound {
            if !(b.is_finite() && b > 0.0 && b <= MAX_INPUT_BOUND) {
                return invalid(format!("input bound {b} (positive, at most 2^20)"));
            }
        }
        if spec.mode == Mode::Throughput && !spec.rotations.is_empty() {
            return invalid("throughput mode uses no rotations".into());
        }
        let encoder = Encoder::new(&params);
        Ok(Self {
            spec,
            params,
            encoder,
        })
    }

    /// The spec this client follows.
    pub fn spec(&self) -> &InputSpec {
        &self.spec
    }

    /// The parameters.
    pub fn params(&self) -> &CkksParams {
        &self.params
    }

    /// Encrypts one input (latency mode) or a batch of up to `slots`
    /// inputs (throughput mode) with the secret key, every value clamped
    /// to the spec's input bound where it declares one.
    pub fn encrypt<R: RngCore + CryptoRng>(
        &self,
        sk: &SecretKey,
        examples: &[Vec<f64>],
        rng: &mut R,
    ) -> Result<EncTensor, TensorError> {
        let enc = Encryptor::with_secret_key(sk);
        let shape = &self.spec.input_shape;
        // Clamped to the declared bound, which the server's flooding of
        // the outputs assumes (see `EncryptedModel::output_bound`).
        let clamped: Vec<Vec<f64>>;
        let examples = match self.spec.input_bound {
            Some(b) => {
                clamped = examples
                    .iter()
                    .map(|x| x.iter().map(|v| v.clamp(-b, b)).collect())
                    .collect();
                &clamped[..]
            }
            None => examples,
        };
        let (level, scale) = (self.spec.level, self.spec.scale);
        match self.spec.mode {
            Mode::Latency => {
                let [one] = examples else {
                    return Err(TensorError::Invalid(
                        "latency mode encrypts exactly one input".into(),
                    ));
                };
                EncTensor::encrypt(&enc, &self.encoder, one, shape, level, scale, rng)
            }
            Mode::Throughput => {
                EncTensor::encrypt_batch(&enc, &self.encoder, examples, shape, level, scale, rng)
            }
        }
    }
}
