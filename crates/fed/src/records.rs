//! The federation's own records in its audit log (ledger custom entries):
//! one definition for the coordinator that writes them and the parties
//! that check them.

use crate::error::{FedError, Result};
use cipherflow_ckks::multiparty::Crs;
use cipherflow_ledger::entry::CustomEntry;
use serde::{Deserialize, Serialize};

/// The custom-entry kind of [`KeySetupRecord`].
pub const KIND_KEY_SETUP: &str = "key-setup";

/// The completed threshold key setup, as logged: the CRS every client
/// encrypts under, the key epoch, the threshold and the key holders.
/// Clients check it against what they pinned before they encrypt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySetupRecord {
    /// The key epoch.
    pub epoch: u64,
    /// The CRS (hex).
    pub crs: String,
    /// Decryption threshold `t`.
    pub threshold: usize,
    /// The key holders' party ids.
    pub parties: Vec<u64>,
}

impl KeySetupRecord {
    /// The record of a key setup.
    pub fn new(epoch: u64, crs: &Crs, threshold: usize, parties: Vec<u64>) -> Self {
        Self {
            epoch,
            crs: hex::encode(crs.0),
            threshold,
            parties,
        }
    }

    /// As a ledger custom entry.
    pub fn to_entry(&self) -> Result<CustomEntry> {
        Ok(CustomEntry {
            kind: KIND_KEY_SETUP.into(),
            data: serde_json::to_vec(self)?,
        })
    }

    /// From a custom entry's data (the caller checks the kind).
    pub fn parse(data: &[u8]) -> Result<Self> {
        serde_json::from_slice(data)
            .map_err(|_| FedError::Refused("malformed key-setup entry".into()))
    }
}
