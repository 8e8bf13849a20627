//! The key service (CryptFlow's KMS): for deployments that accept one
//! trusted key holder, separate from the coordinator.
//!
//! It derives every enrolled client's key share from a master secret
//! (`s_i` = ternary from ChaCha20 keyed by SHA-256 of the master, the
//! federation and the party id), hands it to that client over mutual TLS,
//! and later produces **one** decryption share per round — for the
//! contributor set that the round's `AggregateComputed` ledger entry names,
//! only if it holds at least the quorum of updates, under a validly signed
//! tree head consistent with the last one it saw. The share
//! `Σ_{i∈S} s_i·a + E` (smudged) decrypts nothing but the sum over `S`;
//! the key service never sees a ciphertext.

use crate::client::{check_aggregate, smudging_seed};
use crate::config::{FederationConfig, KeysMode, Sizes};
use crate::coordinator::SHARE_PART_CHUNKS;
use crate::dp_plan::DpPlan;
use crate::error::{FedError, Result};
use crate::messages::{EnrollReply, EnrollRequest, KeyServiceDecrypt, ShareChunk};
use crate::packing::PackingPlan;
use crate::roster::Roster;
use crate::store::write_private;
use cipherflow_ckks::multiparty::{key_holder_share, SecretShare};
use cipherflow_ckks::CkksParams;
use cipherflow_ledger::{ConsistencyProof, PublicKey, SignedTreeHead};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::PathBuf;
use zeroize::Zeroizing;

#[derive(Default, Serialize, Deserialize)]
struct KsState {
    crs: Option<String>,
    decrypted: BTreeMap<u64, String>,
    last_head: Option<SignedTreeHead>,
}

/// Most consistency proofs one decryption request may carry.
pub const MAX_CONSISTENCY_PROOFS: usize = 16;

/// The key service's master key at `path` (64 hex digits, mode 0600):
/// read when the file exists, otherwise drawn from the operating system's
/// randomness and written (atomically, never overwriting a file). Every
/// secret the service issues derives from it, so it is its whole state
/// worth protecting.
pub fn load_or_create_master_key(path: &std::path::Path) -> Result<Zeroizing<[u8; 32]>> {
    use rand_core::RngCore;
    if path.exists() {
        let text = Zeroizing::new(crate::store::read_text_limited(path, 256)?);
        let bytes = Zeroizing::new(hex::decode(text.trim()).map_err(|_| {
            FedError::Config(format!("{}: the master key is not hex", path.display()))
        })?);
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            FedError::Config(format!(
                "{}: the master key is not 32 bytes",
                path.display()
            ))
        })?;
        return Ok(Zeroizing::new(key));
    }
    let mut key = Zeroizing::new([0u8; 32]);
    cipherflow_ring::sampler::secure_rng()?.fill_bytes(key.as_mut());
    crate::store::write_atomic(path, Zeroizing::new(hex::encode(*key)).as_bytes(), true)?;
    Ok(key)
}

/// The key service.
pub struct KeyService {
    cfg: FederationConfig,
    roster: Roster,
    sizes: Sizes,
    packing: PackingPlan,
    params: CkksParams,
    master: Zeroizing<[u8; 32]>,
    ledger_key: PublicKey,
    coordinator_id: String,
    log_id: [u8; 32],
    roster_file: Option<PathBuf>,
    state: Option<PathBuf>,
    saved: KsState,
}

impl std::fmt::Debug for KeyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyService({}, master: <redacted>)", self.cfg.name)
    }
}

impl KeyService {
    /// A key service for `cfg`'s federation. `coordinator_id` is the only
    /// identity allowed to request decryptions; `ledger_key` verifies the
    /// coordinator's signed tree heads.
    pub fn new(
        cfg: FederationConfig,
        roster: Roster,
        master: Zeroizing<[u8; 32]>,
        ledger_key: PublicKey,
        coordinator_id: &str,
        state: Option<PathBuf>,
    ) -> Result<Self> {
        cfg.validate()?;
        roster.validate()?;
        if cfg.keys != KeysMode::KeyService {
            return Err(FedError::Config(
                "the federation is not in key-service mode".into(),
            ));
        }
        let sizes = cfg.sizes(roster.clients.len())?;
        let dim = cfg.model_spec()?.build(cfg.model_seed)?.num_params();
        let dp = match &cfg.dp {
            Some(d) => Some(DpPlan::new(d, &sizes, cfg.rounds, dim as u64)?),
            None => None,
        };
        let packing = PackingPlan::for_federation(&cfg, &sizes, dp.as_ref(), dim)?;
        let params = packing.params()?;
        let saved = match &state {
            Some(p) if p.exists() => {
                let text = std::fs::read_to_string(p).map_err(|e| FedError::io(p, e))?;
                serde_json::from_str(&text)?
            }
            _ => KsState::default(),
        };
        let log_id = cipherflow_ledger::log_id(&ledger_key, &cfg.name);
        Ok(Self {
            cfg,
            roster,
            sizes,
            packing,
            params,
            master,
            ledger_key,
            coordinator_id: coordinator_id.to_string(),
            log_id,
            roster_file: None,
            state,
            saved,
        })
    }

    /// Re-reads the roster from `path` before every request, so that a
    /// revocation (`cipherflow fl ca revoke`) takes effect at once.
    pub fn with_roster_file(mut self, path: PathBuf) -> Self {
        self.roster_file = Some(path);
        self
    }

    fn reload_roster(&mut self) -> Result<()> {
        let Some(p) = &self.roster_file else {
            return Ok(());
        };
        let r = Roster::load(p)?;
        r.validate()?;
        if r.federation != self.roster.federation
            || r.clients.len() != self.roster.clients.len()
            || r.clients
                .iter()
                .zip(&self.roster.clients)
                .any(|(a, b)| a.client_id != b.client_id || a.party_id != b.party_id)
        {
            return Err(FedError::Config(format!(
                "{} changed the federation's membership: only revocations may be added",
                p.display()
            )));
        }
        self.roster = r;
        Ok(())
    }

    fn key_of(&self, party: u64) -> SecretShare {
        let mut h = Sha256::new();
        h.update(b"cipherflow-fed-kms-key-v1");
        h.update(self.master.as_ref());
        h.update((self.cfg.name.len() as u64).to_le_bytes());
        h.update(self.cfg.name.as_bytes());
        h.update(party.to_le_bytes());
        let seed: Zeroizing<[u8; 32]> = Zeroizing::new(h.finalize().into());
        let mut rng = ChaCha20Rng::from_seed(*seed);
        SecretShare::generate_for(&self.params, party, &mut rng)
    }

    fn save(&self) -> Result<()> {
        if let Some(p) = &self.state {
            write_private(p, serde_json::to_string(&self.saved)?.as_bytes())?;
        }
        Ok(())
    }

    /// Issues an enrolled client its key share.
    pub fn enroll(&mut self, client: &str, req: &EnrollRequest) -> Result<EnrollReply> {
        if req.federation != self.cfg.name {
            return Err(FedError::Protocol(
                "enrollment for another federation".into(),
            ));
        }
        self.reload_roster()?;
        let e = match self.roster.admit(client) {
            Ok(e) => e,
            Err(err) => {
                tracing::warn!(client, reason = %err, "key service refused enrollment");
                return Err(err);
            }
        };
        let party_id = e.party_id;
        let key = self.key_of(party_id);
        tracing::info!(client, party = party_id, "key share issued");
        Ok(EnrollReply {
            party_id,
            key_share: Zeroizing::new(key.to_bytes().to_vec()),
        })
    }

    /// Decrypts a closed round's aggregate: one share, once per round.
    pub fn decrypt(&mut self, caller: &str, req: &KeyServiceDecrypt) -> Result<Vec<ShareChunk>> {
        if caller != self.coordinator_id {
            tracing::warn!(caller, "decryption request from a non-coordinator refused");
            return Err(FedError::Refused(format!(
                "{caller} may not request decryptions"
            )));
        }
        self.reload_roster()?;
        if req.federation != self.cfg.name || req.chunks as usize != self.packing.chunks {
            return Err(FedError::Protocol(
                "request for another federation or model size".into(),
            ));
        }
        let crs = req.crs;
        // The CRS and the key epoch are pinned on first use: seeds of `a`
        // for another epoch would be shares for public polynomials the
        // clients never encrypted under.
        let crs_hex = format!("{}/{}", hex::encode(crs.0), req.epoch);
        match &self.saved.crs {
            Some(c) if *c != crs_hex => {
                return Err(FedError::Refused(
                    "the federation's CRS or key epoch changed".into(),
                ))
            }
            _ => self.saved.crs = Some(crs_hex),
        }
        let proof = &req.aggregate_proof;
        // The log id is pinned (derived from the ledger key and the
        // federation's name): a head of another log signed with the same
        // key is refused.
        let entry = proof
            .verify(&self.ledger_key, Some(&self.log_id))
            .map_err(|e| FedError::Refused(format!("ledger proof: {e}")))?;
        let contributors = check_aggregate(
            &entry,
            req.round,
            &req.inputs,
            self.sizes.quorum,
            &self.roster,
        )?;
        let commit = hex::encode(Sha256::digest(
            contributors
                .iter()
                .flat_map(|p| p.to_le_bytes())
                .collect::<Vec<u8>>(),
        ));
        if let Some(prev) = self.saved.decrypted.get(&req.round) {
            if *prev != commit {
                tracing::warn!(
                    round = req.round,
                    "second contributor set for a round refused"
                );
                return Err(FedError::Refused(format!(
                    "round {} was already decrypted for another contributor set",
                    req.round
                )));
            }
        }
        if let Some(old) = &self.saved.last_head {
            check_append_only(old, &proof.sth, &req.consistency_proofs)?;
        }
        self.saved.last_head = Some(proof.sth);
        self.saved.decrypted.insert(req.round, commit);
        self.save()?;
        let keys: Vec<SecretShare> = contributors.iter().map(|&p| self.key_of(p)).collect();
        let key_refs: Vec<&SecretShare> = keys.iter().collect();
        let seeds = crate::packing::round_seeds(
            &crs,
            &self.cfg.name,
            req.epoch,
            req.round,
            self.packing.chunks,
        );
        let smudging = self.packing.smudging()?;
        let parts: Vec<&[[u8; 32]]> = seeds.chunks(SHARE_PART_CHUNKS).collect();
        let total = parts.len() as u32;
        let mut out = Vec::with_capacity(parts.len());
        // The noise is a function of the master key and what is decrypted:
        // a repeated request gets the same share (see `smudging_seed`).
        let noise_key: Zeroizing<[u8; 32]> = Zeroizing::new(
            Sha256::new()
                .chain_update(b"cipherflow-ks-smudging-key-v1")
                .chain_update(self.master.as_ref())
                .finalize()
                .into(),
        );
        let commit = self
            .saved
            .decrypted
            .get(&req.round)
            .cloned()
            .unwrap_or_default();
        for (i, sd) in parts.iter().enumerate() {
            let seed = smudging_seed(
                &noise_key,
                &self.cfg.name,
                req.epoch,
                req.round,
                commit.as_bytes(),
                i,
            );
            let mut rng = ChaCha20Rng::from_seed(seed);
            let s = key_holder_share(&self.params, &key_refs, sd, &smudging, &mut rng)?;
            out.push(ShareChunk {
                federation: self.cfg.name.clone(),
                round: req.round,
                attempt: 0,
                index: i as u32,
                total,
                share: s.to_bytes(),
                ready: false,
            });
        }
        tracing::info!(
            round = req.round,
            contributors = contributors.len(),
            "aggregate decryption share issued"
        );
        Ok(out)
    }
}

/// Checks that `new` extends `old` (append-only): equal sizes need equal
/// roots; a larger tree needs a consistency proof from exactly `old`'s
/// size among `proofs` ([`ConsistencyProof::encode_list`] of one proof from
/// each tree size the key service may last have seen: the coordinator
/// cannot know whether its last request was answered). A forked log
/// shown to the key service is refused, so it cannot authorise a
/// decryption.
pub fn check_append_only(
    old: &SignedTreeHead,
    new: &SignedTreeHead,
    list: &[ConsistencyProof],
) -> Result<()> {
    if new.tree_size < old.tree_size {
        tracing::warn!(
            old = old.tree_size,
            new = new.tree_size,
            "the ledger shrank: refused"
        );
        return Err(FedError::Refused("the ledger rolled back".into()));
    }
    if new.tree_size == old.tree_size {
        if new.root_hash != old.root_hash {
            tracing::warn!(size = new.tree_size, "the ledger forked: refused");
            return Err(FedError::Refused("the ledger forked".into()));
        }
        return Ok(());
    }
    if list.len() > MAX_CONSISTENCY_PROOFS {
        return Err(FedError::Refused("too many consistency proofs".into()));
    }
    let p = list
        .iter()
        .find(|p| p.old_size == old.tree_size && p.new_size == new.tree_size)
        .ok_or_else(|| {
            tracing::warn!(
                old = old.tree_size,
                new = new.tree_size,
                "no consistency proof from the last head seen: refused"
            );
            FedError::Refused(format!(
                "no consistency proof from tree size {} (the last head seen) to {}",
                old.tree_size, new.tree_size
            ))
        })?;
    p.verify(&old.root_hash, &new.root_hash).map_err(|e| {
        tracing::warn!(error = %e, "inconsistent ledger heads: refused");
        FedError::Refused(format!("ledger not append-only: {e}"))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_master_key_is_created_once_then_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let made = load_or_create_master_key(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap().len(), 64);
        assert_eq!(*load_or_create_master_key(&path).unwrap(), *made);
        let other = dir.path().join("other.key");
        assert_ne!(*load_or_create_master_key(&other).unwrap(), *made);
        for (bad, why) in [("zz", "not hex"), ("abcd", "not 32 bytes")] {
            std::fs::write(&path, bad).unwrap();
            let e = load_or_create_master_key(&path).unwrap_err();
            assert!(matches!(&e, FedError::Config(m) if m.contains(why)), "{e}");
        }
        std::fs::write(&path, "0".repeat(1000)).unwrap();
        assert!(
            load_or_create_master_key(&path).is_err(),
            "an oversized file"
        );
    }
}
