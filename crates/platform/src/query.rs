//! The user's side of an encrypted query (`he` mode): the model's card and
//! input spec from the platform, keys made here (the secret key never
//! leaves this process), the evaluation keys uploaded once per session,
//! then each input encrypted, sent, answered and decrypted here.

use crate::client::PlatformClient;
use crate::error::PlatformError;
use cipherflow_api::{ModelCard, SessionOpened};
use cipherflow_nn::Preprocessing;
use cipherflow_tensor::{EncTensor, InputSpec, KeySet, ModelClient};
use std::time::Instant;

/// An open session with a model of the platform.
pub struct QuerySession {
    client: PlatformClient,
    model: ModelClient,
    keys: KeySet,
    session: String,
    card: ModelCard,
    /// Bytes of evaluation keys uploaded.
    pub key_bytes: usize,
    /// Milliseconds making the keys.
    pub keygen_ms: f64,
}

/// One input's answer.
#[derive(Clone, Debug)]
pub struct Answer {
    /// Decrypted scores.
    pub scores: Vec<f64>,
    /// Their argmax.
    pub class: usize,
    /// Milliseconds end to end (encrypt, send, evaluate, receive, decrypt).
    pub ms: f64,
    /// Bytes sent.
    pub upload_bytes: usize,
    /// Bytes received.
    pub download_bytes: usize,
    /// `mpc` mode: this party's bytes in the computation (sent and
    /// received, both channels); 0 in `he` mode.
    pub mpc_bytes: usize,
}

fn bad_card(m: &str) -> PlatformError {
    PlatformError::Transport(format!("the model card {m}"))
}

/// The card of `model`, as the platform publishes it.
pub(crate) async fn fetch_card(
    client: &PlatformClient,
    model: &str,
) -> Result<ModelCard, PlatformError> {
    crate::repo::check_name(model)?;
    client
        .get_as("GET", &format!("/v1/models/{model}"), Vec::new())
        .await
}

/// The preprocessing a model card declares (normalization, class names).
pub(crate) fn preprocessing_of(card: &ModelCard) -> Result<Option<Preprocessing>, PlatformError> {
    match &card.preprocessing {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => Preprocessing::from_json(&v.to_string())
            .map(Some)
            .map_err(|e| bad_card(&format!("holds a malformed preprocessing: {e}"))),
    }
}

/// What opening any session gives: the keys made here and the session the
/// platform opened with their evaluation half.
pub(crate) struct Opened {
    pub(crate) keys: KeySet,
    pub(crate) keygen_ms: f64,
    pub(crate) key_bytes: usize,
    pub(crate) session: String,
}

/// Makes keys for `mc` (the secret key stays here) and opens a session
/// at `path` with the evaluation keys.
pub(crate) async fn open_with_keys(
    client: &PlatformClient,
    mc: &ModelClient,
    path: &str,
) -> Result<Opened, PlatformError> {
    let t = Instant::now();
    let mut rng = cipherflow_ring::sampler::secure_rng()
        .map_err(|e| PlatformError::Transport(format!("randomness: {e}")))?;
    let keys = KeySet::generate(mc, &mut rng)?;
    let keygen_ms = t.elapsed().as_secs_f64() * 1e3;
    let ek = keys.eval_key_bytes()?;
    let key_bytes = ek.len();
    let s: SessionOpened = client.get_as("POST", path, ek).await?;
    let session = Some(s.session)
        .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| PlatformError::Transport("a session answer without an id".into()))?;
    Ok(Opened {
        keys,
        keygen_ms,
        key_bytes,
        session,
    })
}

/// Encrypts `x` under `keys`, has the platform evaluate it in `session`,
/// and parses the answer; returns it with the bytes sent and received.
pub(crate) async fn send_encrypted(
    client: &PlatformClient,
    mc: &ModelClient,
    keys: &KeySet,
    session: &str,
    x: &[f64],
) -> Result<(EncTensor, usize, usize), PlatformError> {
    let mut rng = cipherflow_ring::sampler::secure_rng()
        .map_err(|e| PlatformError::Transport(format!("randomness: {e}")))?;
    let params = mc.params();
    let up = mc
        .encrypt(&keys.sk, &[x.to_vec()], &mut rng)?
        .to_bytes(params)?;
    let sent = up.len();
    let back = client
        .request("POST", &format!("/v1/sessions/{session}/infer"), up, None)
        .await?;
    Ok((EncTensor::from_bytes(params, &back)?, sent, back.len()))
}

impl QuerySession {
    /// Opens a session for `model`: reads its card, checks the spec (128-bit
    /// parameters and every other check of [`ModelClient::new`]), makes the
    /// keys and uploads the evaluation keys.
    pub async fn open(client: PlatformClient, model: &str) -> Result<Self, PlatformError> {
        let card = fetch_card(&client, model).await?;
        let spec = card.he.as_ref().map(|h| &h.spec).ok_or_else(|| {
            PlatformError::Forbidden(format!(
                "{model} cannot be queried encrypted (he): its creator has not let the \
                     platform hold the whole model"
            ))
        })?;
        let spec: InputSpec = serde_json::from_value(spec.clone())
            .map_err(|e| bad_card(&format!("holds a malformed input spec: {e}")))?;
        let mc = ModelClient::new(spec)?;
        let Opened {
            keys,
            keygen_ms,
            key_bytes,
            session,
        } = open_with_keys(&client, &mc, &format!("/v1/models/{model}/sessions")).await?;
        Ok(Self {
            client,
            model: mc,
            keys,
            session,
            card,
            key_bytes,
            keygen_ms,
        })
    }

    /// The model's card as the platform published it.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// The input spec.
    pub fn spec(&self) -> &InputSpec {
        self.model.spec()
    }

    /// The preprocessing the model declares (normalization, class names).
    pub fn preprocessing(&self) -> Result<Option<Preprocessing>, PlatformError> {
        preprocessing_of(&self.card)
    }

    /// Encrypts `x` (preprocessed), has the platform evaluate it, and
    /// decrypts the answer.
    pub async fn classify(&self, x: &[f64]) -> Result<Answer, PlatformError> {
        let t = Instant::now();
        let (out, upload_bytes, download_bytes) =
            send_encrypted(&self.client, &self.model, &self.keys, &self.session, x).await?;
        let want = self.spec().output_len;
        if out.len() != want {
            return Err(PlatformError::Transport(format!(
                "an answer of {} values, the model has {want} outputs",
                out.len()
            )));
        }
        let scores = out
            .decrypt(&self.keys.decryptor())?
            .into_iter()
            .next()
            .unwrap_or_default();
        Ok(Answer {
            class: cipherflow_tensor::job::argmax(&scores),
            scores,
            ms: t.elapsed().as_secs_f64() * 1e3,
            upload_bytes,
            download_bytes,
            mpc_bytes: 0,
        })
    }
}
