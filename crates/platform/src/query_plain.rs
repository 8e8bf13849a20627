//! The user's side of a `plain-tail` query: the head runs on the encrypted
//! input at the platform, the user decrypts its output and sends the
//! activations to the creator's host (through the platform's relay, TLS
//! between the two), which answers the tail's scores. The creator sees the
//! activations — a session opens only once the user has accepted the
//! leakage the platform measured for the split.

use crate::channel::{read_message_max, write_message, BoxStream};
use crate::client::PlatformClient;
use crate::error::PlatformError;
use crate::query::{open_with_keys, send_encrypted, Answer, Opened};
use crate::query_mpc::{fetch_split, host_channel, pinned_host};
use crate::repo_leakage::SplitLeakage;
use crate::served_mpc::SplitInfo;
use cipherflow_api::ModelCard;
use cipherflow_tensor::{KeySet, ModelClient};
use std::time::Instant;

/// An open `plain-tail` session.
pub struct PlainTailSession {
    client: PlatformClient,
    model: ModelClient,
    keys: KeySet,
    session: String,
    card: ModelCard,
    info: SplitInfo,
    host: tokio::sync::Mutex<BoxStream>,
    /// Bytes of evaluation keys uploaded.
    pub key_bytes: usize,
    /// Milliseconds making the keys.
    pub keygen_ms: f64,
}

fn bad(m: impl std::fmt::Display) -> PlatformError {
    PlatformError::Transport(m.to_string())
}

impl PlainTailSession {
    /// The leakage the platform measured for `model` at `split` (what
    /// the user must see before accepting), with the split's description.
    pub async fn leakage(
        client: &PlatformClient,
        model: &str,
        split: usize,
    ) -> Result<(SplitInfo, Option<SplitLeakage>), PlatformError> {
        let info = fetch_split(client, model, split).await?;
        let l = info.leakage.clone();
        Ok((info, l))
    }

    /// Opens a session at `split`, `accepted` being the leakage the user
    /// accepted: refused if the platform's figures differ from it.
    pub async fn open(
        client: PlatformClient,
        model: &str,
        split: usize,
        accepted: &SplitLeakage,
        pin: Option<&str>,
    ) -> Result<Self, PlatformError> {
        let card = crate::query::fetch_card(&client, model).await?;
        let (info, leakage) = Self::leakage(&client, model, split).await?;
        if leakage.as_ref() != Some(accepted) {
            return Err(PlatformError::Forbidden(format!(
                "the leakage measured for split {split} is now {leakage:?}, not what was accepted"
            )));
        }
        let ca = pinned_host(&info, model, pin)?;
        let mc = ModelClient::new(info.spec.clone())?;
        let Opened {
            keys,
            keygen_ms,
            key_bytes,
            session,
        } = open_with_keys(
            &client,
            &mc,
            &format!("/v1/models/{model}/sessions?mode=plain-tail&split={split}&accept_leakage=1"),
        )
        .await?;
        let host = host_channel(&client, &session, &ca).await?;
        Ok(Self {
            client,
            model: mc,
            keys,
            session,
            card,
            info,
            host: tokio::sync::Mutex::new(host),
            key_bytes,
            keygen_ms,
        })
    }

    /// The model's card.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// The split's description.
    pub fn split(&self) -> &SplitInfo {
        &self.info
    }

    /// The preprocessing the model declares.
    pub fn preprocessing(&self) -> Result<Option<cipherflow_nn::Preprocessing>, PlatformError> {
        crate::query::preprocessing_of(&self.card)
    }

    /// Encrypts `x`, has the platform run the head, decrypts the
    /// activations, sends them to the host and returns its scores.
    pub async fn classify(&self, x: &[f64]) -> Result<Answer, PlatformError> {
        let t = Instant::now();
        let (out, mut upload_bytes, download_bytes) =
            send_encrypted(&self.client, &self.model, &self.keys, &self.session, x).await?;
        let acts = out
            .decrypt(&self.keys.decryptor())?
            .into_iter()
            .next()
            .unwrap_or_default();
        let msg: Vec<u8> = acts.iter().flat_map(|v| v.to_le_bytes()).collect();
        upload_bytes += msg.len();
        let mut host = self.host.lock().await;
        write_message(&mut *host, &msg)
            .await
            .map_err(|e| bad(format!("the model host: {e}")))?;
        let reply = read_message_max(&mut *host, 8 << 16)
            .await
            .map_err(|e| bad(format!("the model host: {e}")))?
            .ok_or_else(|| bad("the model host closed the session"))?;
        let scores: Vec<f64> = reply
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect();
        Ok(Answer {
            class: cipherflow_tensor::job::argmax(&scores),
            scores,
            ms: t.elapsed().as_secs_f64() * 1e3,
            upload_bytes,
            download_bytes: download_bytes + reply.len(),
            mpc_bytes: 0,
        })
    }

    /// Closes the session.
    pub async fn close(self) -> Result<(), PlatformError> {
        self.client
            .request(
                "DELETE",
                &format!("/v1/sessions/{}", self.session),
                Vec::new(),
                None,
            )
            .await?;
        Ok(())
    }
}
