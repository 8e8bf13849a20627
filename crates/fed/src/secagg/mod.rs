//! Threshold-CKKS secure aggregation as a library, for a host framework
//! that brings its own transport and scheduling — Flower's client mods and
//! server workflows (`python/cipherflow/flower.py`) are the first user.
//!
//! It is the cryptographic core of the federated layer without its
//! coordinator, ledger, roster or TLS: the host relays messages, and the
//! parties trust the host with nothing but availability.
//!
//! # Protocol
//! 1. **Keys** (once per key epoch). The server ([`SecAggServer`]) sends
//!    every party the [`SecAggSpec`], a fresh CRS and its party id
//!    `1..=n`. Each [`SecAggParty`] checks the spec against its own
//!    [`PartyPolicy`] (a server cannot talk it into `t = 1` or a quorum of
//!    one), draws its CKKS key share and an X25519 key, and answers with
//!    the public key.
//! 2. **Dealing.** The server forwards all public keys; each party
//!    Shamir-deals its key share (`t` of `n`) and seals each share to its
//!    recipient (X25519 + XChaCha20-Poly1305, see [`crate::envelope`]): the
//!    server relays what it cannot read.
//! 3. **Rounds.** A sampled party quantizes its (weighted, clipped) update
//!    and encrypts it under its key share with the public polynomials of
//!    (CRS, session, epoch, round): one polynomial per chunk, about 6 bytes
//!    per parameter. It encrypts one update per round: a repeated request
//!    gets the byte-identical upload, an older round is refused.
//! 4. **Decryption.** The server sums the uploads of the contributor set
//!    `S` (at least the quorum) and asks an active set of `t` — or, checked,
//!    `t + 1` — parties for decryption shares of `S`'s sum; each party
//!    answers one `(S, active set)` per round. The server combines them
//!    into the exact integer sums (checked: a lying party is caught) and
//!    divides by the weight sum.
//!
//! What the server learns: the weighted mean of at least `quorum` updates
//! per round, the contributor sets and example counts. What it cannot do
//! without `t` colluding parties: decrypt one party's update. What it can
//! do: stop or slow rounds, drop updates, and — since the host relays the
//! public keys — substitute its own keys at setup unless the parties pin
//! each other's keys out of band ([`SecAggParty::deal`] takes the keys the
//! caller trusts).

mod party;
mod server;
mod state;

pub use party::{PartyPolicy, SecAggParty};
pub use server::SecAggServer;

use crate::error::{FedError, Result};
use crate::messages::SealedShare;
use crate::packing::PackingPlan;
use crate::quant::{Quantizer, ShareNoise};
use serde::{Deserialize, Serialize};

/// Most parties (key holders) of one session.
pub const MAX_PARTIES: usize = 1000;
/// Most model parameters of one session.
pub const MAX_DIM: usize = 100_000_000;

/// What every party of a session agrees on. The server proposes it; each
/// party checks it against its own [`PartyPolicy`] and pins it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecAggSpec {
    /// Names the session (in every seed and sealing context).
    pub session: String,
    /// Key epoch (a new key setup starts a new epoch).
    pub epoch: u64,
    /// Key holders, with party ids `1..=parties`.
    pub parties: usize,
    /// Shares needed to decrypt (`t`).
    pub threshold: usize,
    /// Fewest updates in a decrypted sum.
    pub quorum: usize,
    /// Model parameters per update.
    pub dim: usize,
    /// Every coordinate is clipped to `[−clip, clip]`.
    pub clip: f64,
    /// Integers per `clip`: `2^quant_bits` (the quantization step is
    /// `clip/2^quant_bits`).
    pub quant_bits: u32,
    /// Examples per unit weight: a party's weight is
    /// `min(num_examples / max_weight, 1)` (FedAvg weights up to there).
    pub max_weight: f64,
    /// Statistical security λ of the smudging.
    pub stat_sec_bits: u32,
    /// Checked decryption by `t + 1` parties.
    pub checked: bool,
}

impl SecAggSpec {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(FedError::Config(format!("secure aggregation spec: {m}")));
        if self.session.is_empty() || self.session.len() > 256 {
            return bad("the session name must have 1..=256 bytes".into());
        }
        if !(2..=MAX_PARTIES).contains(&self.parties) {
            return bad(format!("parties must be in 2..={MAX_PARTIES}"));
        }
        if !(2..=self.parties).contains(&self.threshold) {
            return bad(format!(
                "threshold {} must be in 2..={}",
                self.threshold, self.parties
            ));
        }
        if !(2..=self.parties).contains(&self.quorum) {
            return bad(format!(
                "quorum {} must be in 2..={}",
                self.quorum, self.parties
            ));
        }
        if self.checked && self.threshold >= self.parties {
            return bad("checked decryption needs more parties than the threshold".into());
        }
        if !(1..=MAX_DIM).contains(&self.dim) {
            return bad(format!("dim must be in 1..={MAX_DIM}"));
        }
        if !(self.clip.is_finite() && self.clip > 0.0 && self.clip <= 1e6) {
            return bad("clip must be in (0, 1e6]".into());
        }
        if !(1..=30).contains(&self.quant_bits) {
            return bad("quant_bits must be in 1..=30".into());
        }
        if !(self.max_weight.is_finite() && (1.0..=1e12).contains(&self.max_weight)) {
            return bad("max_weight must be in [1, 1e12]".into());
        }
        if !(20..=128).contains(&self.stat_sec_bits) {
            return bad("stat_sec_bits must be in 20..=128".into());
        }
        Ok(())
    }

    /// Key holders asked per decryption.
    pub fn decryptors(&self) -> usize {
        self.threshold + usize::from(self.checked)
    }

    /// The packing plan: any number of the parties summed, each coordinate
    /// within `2^quant_bits + 1`.
    pub fn packing(&self) -> Result<PackingPlan> {
        let bound = self.parties as f64 * (2f64.powi(self.quant_bits as i32) + 1.0);
        if self.checked {
            PackingPlan::new_checked(
                self.dim,
                self.parties,
                self.decryptors(),
                bound.log2(),
                self.stat_sec_bits,
                self.parties as u64,
            )
        } else {
            PackingPlan::new(
                self.dim,
                self.parties,
                self.decryptors(),
                bound.log2(),
                self.stat_sec_bits,
            )
        }
    }

    /// The coordinate bound of a sum over `contributors` updates.
    fn sum_bound(&self, contributors: usize) -> f64 {
        contributors as f64 * (2f64.powi(self.quant_bits as i32) + 1.0)
    }

    fn quantizer(&self, shift: u32) -> Result<Quantizer> {
        Quantizer::new(
            self.clip,
            2f64.powi(self.quant_bits as i32) / self.clip,
            f64::INFINITY,
            ShareNoise::None,
            self.max_weight,
            shift,
        )
    }

    /// JSON (the wire form a host sends).
    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string(self)?)
    }

    /// Parses and validates JSON (at most 64 KiB).
    pub fn from_json(text: &str) -> Result<Self> {
        if text.len() > 1 << 16 {
            return Err(FedError::Config("spec larger than 64 KiB".into()));
        }
        let spec: Self = serde_json::from_str(text)?;
        spec.validate()?;
        Ok(spec)
    }
}

/// Wire form of a sealed share: `from u64 | to u64 | nonce (24) | ciphertext`.
pub fn sealed_to_bytes(s: &SealedShare) -> Vec<u8> {
    let mut v = Vec::with_capacity(40 + s.ciphertext.len());
    v.extend_from_slice(&s.from_party.to_le_bytes());
    v.extend_from_slice(&s.to_party.to_le_bytes());
    v.extend_from_slice(&s.nonce);
    v.extend_from_slice(&s.ciphertext);
    v
}

/// Parses [`sealed_to_bytes`]' form (at most 16 MiB).
pub fn sealed_from_bytes(b: &[u8]) -> Result<SealedShare> {
    let bad = || FedError::Protocol("malformed sealed share".into());
    if b.len() > 1 << 24 {
        return Err(bad());
    }
    let from = b.get(0..8).ok_or_else(bad)?;
    let to = b.get(8..16).ok_or_else(bad)?;
    let nonce = b.get(16..40).ok_or_else(bad)?;
    let ciphertext = b.get(40..).ok_or_else(bad)?;
    if ciphertext.is_empty() {
        return Err(bad());
    }
    Ok(SealedShare {
        from_party: u64::from_le_bytes(from.try_into().map_err(|_| bad())?),
        to_party: u64::from_le_bytes(to.try_into().map_err(|_| bad())?),
        nonce: nonce.try_into().map_err(|_| bad())?,
        ciphertext: ciphertext.to_vec(),
    })
}

/// The session label in seeds and sealing contexts.
fn label(spec: &SecAggSpec) -> String {
    format!("secagg:{}", spec.session)
}

#[cfg(test)]
mod tests;
