//! cipherflow's client in the browser: what `cipherflow serve`'s pages run
//! in a Web Worker, compiled to WebAssembly with wasm-bindgen
//! (`web/build.sh` builds it into the pages the platform embeds).
//!
//! ## Modules, low to high
//!
//! * `error`: [`WebError`];
//! * `client`: [`BrowserClient`] — a model's input spec checked, keys made
//!   in the page (the secret key never leaves it), images preprocessed as
//!   `cipherflow query` does, inputs encrypted, answers decrypted;
//! * `keystore`: [`seal_secret_key`] and [`BrowserClient::from_sealed`] —
//!   a secret key kept on the device only when the user asks, sealed under
//!   a passphrase (Argon2id, XChaCha20-Poly1305) for the page's IndexedDB;
//! * `proof`: [`verify_proof`] — "my update was counted" verified offline —
//!   and [`verify_head`], a ledger's signed head;
//! * `upload`: [`prepare_model_upload`] — a model file made ready for the
//!   platform in the page (only the layers it may hold, the creator's
//!   normalization and class names), as the CLI's `model upload` does;
//! * `bench`: [`CkksBench`] — the operations `bench/web.sh` times against
//!   node-seal in the same browser;
//! * this file: the JavaScript bindings, thin wrappers over the above
//!   (errors become JavaScript `Error`s with the same text).

mod bench;
mod client;
mod error;
mod keystore;
mod proof;
mod upload;

pub use bench::{bench_params, CkksBench};
pub use client::{BrowserClient, KeyFigures, MAX_PREPROCESSING_BYTES};
pub use error::WebError;
pub use keystore::{
    seal_secret_key, sealed_info, SealedInfo, MAX_M_KIB, MAX_PASSES, MAX_PASSPHRASE_BYTES,
    MAX_SEALED_BYTES, MIN_M_KIB, MIN_PASSES, MIN_PASSPHRASE_CHARS,
};
pub use proof::{verify_head, verify_proof, MAX_PROOF_FILE_BYTES};
pub use upload::prepare_model_upload;

use wasm_bindgen::prelude::*;
use zeroize::Zeroizing;

fn js(e: WebError) -> JsError {
    JsError::new(&e.to_string())
}

/// A model's client in the page (JavaScript: `new Client(spec, preprocessing)`).
#[wasm_bindgen]
pub struct Client(BrowserClient);

#[wasm_bindgen]
impl Client {
    /// Checks the card's `he.spec` and `preprocessing` (JSON text, or
    /// undefined) and makes the keys.
    #[wasm_bindgen(constructor)]
    pub fn new(spec_json: &str, preprocessing_json: Option<String>) -> Result<Client, JsError> {
        BrowserClient::new(spec_json, preprocessing_json.as_deref())
            .map(Client)
            .map_err(js)
    }

    /// Opens a key the user saved for `model` (sealed bytes, as `seal`
    /// made them) with its passphrase, for the card's `he.spec` and
    /// `preprocessing`; evaluation keys are made afresh for it.
    #[wasm_bindgen(js_name = fromSealed)]
    pub fn from_sealed(
        spec_json: &str,
        preprocessing_json: Option<String>,
        model: &str,
        sealed: &[u8],
        passphrase: String,
    ) -> Result<Client, JsError> {
        // Owned, so that this copy is zeroized when dropped (the copies
        // JavaScript and the binding's transfer make cannot be).
        let passphrase = Zeroizing::new(passphrase);
        BrowserClient::from_sealed(
            spec_json,
            preprocessing_json.as_deref(),
            model,
            sealed,
            &passphrase,
        )
        .map(Client)
        .map_err(js)
    }

    /// The secret key sealed under `passphrase` for `model`: what the page
    /// stores on the device when the user asks.
    pub fn seal(&self, model: &str, passphrase: String) -> Result<Vec<u8>, JsError> {
        let passphrase = Zeroizing::new(passphrase);
        seal_secret_key(&self.0, model, &passphrase).map_err(js)
    }

    /// The evaluation keys to open a session with.
    #[wasm_bindgen(js_name = evalKeys)]
    pub fn eval_keys(&self) -> Result<Vec<u8>, JsError> {
        self.0.eval_keys().map_err(js)
    }

    /// Rotations (one Galois key each) the model needs.
    pub fn rotations(&self) -> Result<usize, JsError> {
        self.0.key_figures().map(|f| f.rotations).map_err(js)
    }

    /// The per-example input shape.
    #[wasm_bindgen(js_name = inputShape)]
    pub fn input_shape(&self) -> Vec<u32> {
        self.0
            .input_shape()
            .iter()
            .map(|&d| u32::try_from(d).unwrap_or(u32::MAX))
            .collect()
    }

    /// A PNG or JPEG file's bytes as the model's preprocessed input.
    #[wasm_bindgen(js_name = preprocessImage)]
    pub fn preprocess_image(&self, name: &str, bytes: &[u8]) -> Result<Vec<f64>, JsError> {
        self.0.preprocess_image(name, bytes).map_err(js)
    }

    /// Encrypts one preprocessed input.
    pub fn encrypt(&self, x: &[f64]) -> Result<Vec<u8>, JsError> {
        self.0.encrypt(x).map_err(js)
    }

    /// Decrypts the platform's answer: the scores.
    pub fn decrypt(&self, answer: &[u8]) -> Result<Vec<f64>, JsError> {
        self.0.decrypt(answer).map_err(js)
    }
}

/// What a saved key was made for, read without its passphrase: JSON
/// `{"model": …, "spec_sha256": …}`.
#[wasm_bindgen(js_name = sealedInfo)]
pub fn sealed_info_js(sealed: &[u8]) -> Result<String, JsError> {
    let i = sealed_info(sealed).map_err(js)?;
    Ok(serde_json::json!({ "model": i.model, "spec_sha256": i.spec_sha256 }).to_string())
}

/// Verifies a proof file with the log's public key file; JSON of what it
/// establishes.
#[wasm_bindgen(js_name = verifyProof)]
pub fn verify_proof_js(proof_json: &str, public_key_text: &str) -> Result<String, JsError> {
    verify_proof(proof_json, public_key_text).map_err(js)
}

/// Verifies a signed tree head's JSON with the log's public key (hex or
/// a `.pub` file's text); JSON of what it covers.
#[wasm_bindgen(js_name = verifyHead)]
pub fn verify_head_js(sth_json: &str, public_key: &str) -> Result<String, JsError> {
    verify_head(sth_json, public_key).map_err(js)
}

/// A model file ready for upload (JavaScript: `prepareUpload(…)`).
#[wasm_bindgen]
pub struct PreparedUpload(cipherflow_nn::io::Upload);

#[wasm_bindgen]
impl PreparedUpload {
    /// The bytes to upload.
    pub fn bytes(&self) -> Vec<u8> {
        self.0.bytes.clone()
    }
    /// The whole model's layers.
    pub fn layers(&self) -> usize {
        self.0.layers
    }
    /// Leading layers the platform may hold.
    #[wasm_bindgen(js_name = headLayers)]
    pub fn head_layers(&self) -> usize {
        self.0.head_layers
    }
    /// The whole model's outputs.
    pub fn outputs(&self) -> usize {
        self.0.outputs
    }
}

/// Prepares a model file for upload: `head_layers` 0 for the whole model;
/// `normalize` (`MEAN,STD`) and `class_names` (one per line) may be empty.
#[wasm_bindgen(js_name = prepareUpload)]
pub fn prepare_upload_js(
    bytes: &[u8],
    head_layers: usize,
    normalize: &str,
    class_names: &str,
) -> Result<PreparedUpload, JsError> {
    prepare_model_upload(
        bytes,
        (head_layers > 0).then_some(head_layers),
        Some(normalize),
        Some(class_names),
    )
    .map(PreparedUpload)
    .map_err(js)
}

/// The node-seal comparison's operations (JavaScript: `new Bench()`).
#[wasm_bindgen]
pub struct Bench(CkksBench);

#[wasm_bindgen]
impl Bench {
    /// At N = 8192, moduli 60, 40, 40 | 60 bits.
    #[wasm_bindgen(constructor)]
    pub fn new() -> Result<Bench, JsError> {
        CkksBench::new().map(Bench).map_err(js)
    }

    /// Slots per ciphertext.
    pub fn slots(&self) -> usize {
        self.0.slots()
    }

    /// Secret, public and relinearization keys.
    pub fn keygen(&mut self) -> Result<(), JsError> {
        self.0.keygen().map_err(js)
    }

    /// Drops the last keys and ciphertext (untimed, as SEAL's deletes).
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Builds the encryptor and decryptor of the last keys (untimed).
    pub fn prepare(&mut self) -> Result<(), JsError> {
        self.0.prepare().map_err(js)
    }

    /// Encodes and encrypts under the public key.
    pub fn encrypt(&mut self, values: &[f64]) -> Result<(), JsError> {
        self.0.encrypt(values).map_err(js)
    }

    /// The last ciphertext's serialized size.
    #[wasm_bindgen(js_name = ciphertextBytes)]
    pub fn ciphertext_bytes(&self) -> Result<usize, JsError> {
        self.0.ciphertext_bytes().map_err(js)
    }

    /// Decrypts and decodes the last ciphertext.
    pub fn decrypt(&self) -> Result<Vec<f64>, JsError> {
        self.0.decrypt().map_err(js)
    }
}
