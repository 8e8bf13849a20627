//! The user's side of an encrypted query, as the browser runs it: the
//! model's published input spec checked, keys made here (the secret key
//! stays in this object and is zeroized when it is dropped), a dropped
//! image decoded and preprocessed exactly as `cipherflow query` does, each
//! input encrypted and each answer decrypted.

use crate::error::WebError;
use cipherflow_nn::data::decode_image_bytes;
use cipherflow_nn::Preprocessing;
use cipherflow_ring::sampler::SecureRng;
use cipherflow_tensor::{ClientHalf, InputSpec, TensorError};
use ndarray::Array2;
use zeroize::Zeroizing;

/// Largest preprocessing JSON a model card may carry to the client.
pub const MAX_PREPROCESSING_BYTES: usize = 1 << 20;

/// Figures a page shows about the keys it made.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyFigures {
    /// Bytes of evaluation keys (what is uploaded).
    pub eval_key_bytes: usize,
    /// Rotations the model needs (one Galois key each).
    pub rotations: usize,
    /// The ring degree's log.
    pub log_n: u32,
}

/// A model's client: its keys and its preprocessing.
pub struct BrowserClient {
    half: ClientHalf,
    preprocessing: Option<Preprocessing>,
}

impl std::fmt::Debug for BrowserClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserClient")
            .field("half", &self.half)
            .finish_non_exhaustive()
    }
}

impl BrowserClient {
    /// Checks `spec_json` (the card's `he.spec`: 128-bit parameters and
    /// every other check of the tensor client) and the card's
    /// `preprocessing` (JSON, if any), then makes the keys from the
    /// platform's CSPRNG (ChaCha20 seeded by `crypto.getRandomValues` in
    /// the browser).
    pub fn new(spec_json: &str, preprocessing_json: Option<&str>) -> Result<Self, WebError> {
        Self::build(preprocessing_json, |rng| ClientHalf::new(spec_json, rng))
    }

    /// As [`BrowserClient::new`], with a secret key the user kept (its
    /// strict encoding); the evaluation keys are made afresh for it.
    pub(crate) fn with_secret_key(
        spec_json: &str,
        preprocessing_json: Option<&str>,
        secret_key: &[u8],
    ) -> Result<Self, WebError> {
        Self::build(preprocessing_json, |rng| {
            ClientHalf::from_secret_key(spec_json, secret_key, rng)
        })
    }

    fn build(
        preprocessing_json: Option<&str>,
        half: impl FnOnce(&mut SecureRng) -> Result<ClientHalf, TensorError>,
    ) -> Result<Self, WebError> {
        crate::error::self_test()?;
        let preprocessing = match preprocessing_json {
            None => None,
            Some(p) if p.len() > MAX_PREPROCESSING_BYTES => {
                return Err(WebError::Invalid(format!(
                    "a preprocessing of more than {MAX_PREPROCESSING_BYTES} bytes"
                )))
            }
            Some(p) => Some(Preprocessing::from_json(p)?),
        };
        let mut rng = cipherflow_ring::sampler::secure_rng()?;
        let half = half(&mut rng)?;
        if let Some(p) = &preprocessing {
            p.check(&half.spec().input_shape)?;
        }
        Ok(Self {
            half,
            preprocessing,
        })
    }

    /// The model's input spec, as checked.
    pub fn spec(&self) -> &InputSpec {
        self.half.spec()
    }

    /// The secret key's strict encoding (zeroized when dropped), for
    /// [`crate::seal_secret_key`] only.
    pub(crate) fn secret_key_bytes(&self) -> Zeroizing<Vec<u8>> {
        self.half.secret_key_bytes()
    }

    /// The per-example input shape, e.g. `[1, 28, 28]`.
    pub fn input_shape(&self) -> &[usize] {
        &self.half.spec().input_shape
    }

    /// The number of outputs (class scores).
    pub fn output_len(&self) -> usize {
        self.half.spec().output_len
    }

    /// Figures about the keys.
    pub fn key_figures(&self) -> Result<KeyFigures, WebError> {
        Ok(KeyFigures {
            eval_key_bytes: self.half.eval_key_bytes()?.len(),
            rotations: self.half.spec().rotations.len(),
            log_n: self.half.params().log_n(),
        })
    }

    /// The evaluation keys (public, relinearization and exactly the
    /// spec's Galois keys): what the session is opened with.
    pub fn eval_keys(&self) -> Result<Vec<u8>, WebError> {
        Ok(self.half.eval_key_bytes()?)
    }

    /// An image file's bytes (PNG or JPEG) as the model's input: decoded at
    /// the model's `[C, H, W]` (a different size is refused, not resized)
    /// and normalized with the card's preprocessing.
    pub fn preprocess_image(&self, name: &str, bytes: &[u8]) -> Result<Vec<f64>, WebError> {
        let (shape, values) = decode_image_bytes(name, bytes, Some(self.input_shape()))?;
        self.preprocess_values(&shape, values)
    }

    /// Values already laid out as the model takes them (flattened), e.g.
    /// pixels in [0, 1] from a canvas, normalized with the card's
    /// preprocessing.
    pub fn preprocess_values(
        &self,
        shape: &[usize],
        values: Vec<f32>,
    ) -> Result<Vec<f64>, WebError> {
        if shape != self.input_shape() {
            return Err(WebError::Invalid(format!(
                "the model takes inputs of shape {:?}, not {shape:?}",
                self.input_shape()
            )));
        }
        let n = values.len();
        let mut row =
            Array2::from_shape_vec((1, n), values).map_err(|e| WebError::Invalid(e.to_string()))?;
        if let Some(p) = &self.preprocessing {
            p.apply(&mut row, shape)?;
        }
        Ok(row.iter().map(|&v| f64::from(v)).collect())
    }

    /// Encrypts one preprocessed input under the secret key.
    pub fn encrypt(&self, x: &[f64]) -> Result<Vec<u8>, WebError> {
        let mut rng = cipherflow_ring::sampler::secure_rng()?;
        Ok(self.half.encrypt(&[x.to_vec()], &mut rng)?)
    }

    /// Decrypts the platform's answer to one input: its scores.
    pub fn decrypt(&self, answer: &[u8]) -> Result<Vec<f64>, WebError> {
        let scores = self
            .half
            .decrypt(answer)?
            .into_iter()
            .next()
            .ok_or_else(|| WebError::Invalid("an answer without outputs".into()))?;
        if scores.len() != self.output_len() {
            return Err(WebError::Invalid(format!(
                "an answer of {} values, the model has {} outputs",
                scores.len(),
                self.output_len()
            )));
        }
        Ok(scores)
    }
}
