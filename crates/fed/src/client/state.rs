//! The client's durable state (mode 0600): its key share and the Shamir
//! shares dealt to it (key holders), whether the key setup completed, its decryption commitments, the last ledger head it
//! verified, the CRS pinned at its first join, the key of its
//! smudging noise, the last round it uploaded in and the privacy schedule it was shown, per (federation, key
//! epoch). Secrets are zeroized on drop.

use super::ClientAgent;
use crate::error::{FedError, Result};
use crate::store::write_private;
use cipherflow_ckks::multiparty::{Crs, SecretShare, ShamirShare};
use cipherflow_ledger::SignedTreeHead;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use zeroize::Zeroizing;

/// The highest round a client uploaded in, per (federation, key epoch),
/// with the SHA-256 of what it sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct UploadMark {
    pub(super) round: u64,
    pub(super) hash: String,
}

#[derive(Default, Serialize, Deserialize)]
struct SavedState {
    key: Option<String>,
    shamir: Vec<String>,
    /// Round → commitment to the (contributor set, active set) it decrypted.
    decrypted: BTreeMap<u64, String>,
    last_head: Option<SignedTreeHead>,
    /// The CRS pinned at the first join (hex) and its key epoch.
    #[serde(default)]
    crs: Option<String>,
    #[serde(default)]
    epoch: Option<u64>,
    /// `"<federation>/<epoch>"` → the last round this client uploaded in.
    #[serde(default)]
    uploads: BTreeMap<String, UploadMark>,
    /// The key setup completed (checked against the ledger).
    #[serde(default)]
    key_setup_done: bool,
    /// `"<federation>/<epoch>"` → the privacy schedule's history as seen.
    #[serde(default)]
    noise: BTreeMap<String, super::noise::NoiseRecord>,
    /// The key of the holder's smudging noise (hex; secret).
    #[serde(default)]
    smudging_key: Option<String>,
}

impl Drop for SavedState {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        if let Some(k) = &mut self.key {
            k.zeroize();
        }
        for s in &mut self.shamir {
            s.zeroize();
        }
        if let Some(k) = &mut self.smudging_key {
            k.zeroize();
        }
    }
}

impl ClientAgent {
    pub(super) fn load_state(&mut self) -> Result<()> {
        let Some(path) = &self.state else {
            return Ok(());
        };
        if !path.exists() {
            return Ok(());
        }
        let text =
            Zeroizing::new(std::fs::read_to_string(path).map_err(|e| FedError::io(path, e))?);
        let s: SavedState = serde_json::from_str(&text)?;
        if let Some(k) = &s.key {
            let bytes =
                Zeroizing::new(hex::decode(k).map_err(|_| FedError::Encoding("key".into()))?);
            self.key = Some(SecretShare::from_bytes(&self.params, &bytes)?);
        }
        for sh in &s.shamir {
            let bytes =
                Zeroizing::new(hex::decode(sh).map_err(|_| FedError::Encoding("share".into()))?);
            self.received
                .push(ShamirShare::from_bytes(&self.params, &bytes)?);
        }
        for (r, h) in &s.decrypted {
            let v: [u8; 32] = hex::decode(h)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| FedError::Encoding("decryption commitment".into()))?;
            self.decrypted.insert(*r, v);
        }
        self.last_head = s.last_head;
        if let Some(c) = &s.crs {
            let crs: [u8; 32] = hex::decode(c)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| FedError::Encoding("pinned CRS".into()))?;
            self.pinned_crs = Some((Crs(crs), s.epoch.unwrap_or(0)));
        }
        if let Some(k) = &s.smudging_key {
            let mut key = Zeroizing::new([0u8; 32]);
            hex::decode_to_slice(k, key.as_mut())
                .map_err(|_| FedError::Encoding("smudging key".into()))?;
            self.smudging_key = Some(key);
        }
        self.uploads = s.uploads.clone();
        self.noise = s.noise.clone();
        // State files written before the flag: a key holder with one share
        // from every client had completed the key setup.
        self.key_setup_done = s.key_setup_done
            || (self.received.len() == self.roster.clients.len() && self.is_key_holder());
        Ok(())
    }

    pub(super) fn save_state(&self) -> Result<()> {
        let Some(path) = &self.state else {
            return Ok(());
        };
        let s = SavedState {
            key: self.key.as_ref().map(|k| hex::encode(&*k.to_bytes())),
            shamir: self
                .received
                .iter()
                .map(|s| hex::encode(&*s.to_bytes()))
                .collect(),
            decrypted: self
                .decrypted
                .iter()
                .map(|(r, h)| (*r, hex::encode(h)))
                .collect(),
            last_head: self.last_head,
            crs: self.pinned_crs.map(|(c, _)| hex::encode(c.0)),
            epoch: self.pinned_crs.map(|(_, e)| e),
            uploads: self.uploads.clone(),
            key_setup_done: self.key_setup_done,
            noise: self.noise.clone(),
            smudging_key: self.smudging_key.as_ref().map(|k| hex::encode(k.as_ref())),
        };
        let text = Zeroizing::new(serde_json::to_string(&s)?);
        write_private(path, text.as_bytes())
    }
}
