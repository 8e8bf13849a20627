//! Decryption shares: a key holder checks the aggregate against the signed
//! ledger (inclusion, consistency with the last head it saw, the input
//! list, the quorum) and releases shares for one contributor set and one
//! active set per round, recorded durably before the share leaves.

use super::{Action, ClientAgent};
use crate::config::KeysMode;
use crate::coordinator::SHARE_PART_CHUNKS;
use crate::error::{FedError, Result};
use crate::messages::{DecryptTask, ShareChunk};
use crate::roster::Roster;
use cipherflow_ckks::multiparty::aggregate_decryption_share;
use cipherflow_ledger::entry::{inputs_root, EntryBody};
use cipherflow_ledger::{AggregateInput, ConsistencyProof, EntryProof, SignedTreeHead};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use rayon::prelude::*;

/// Commitment to the contributor set and the (sorted) active set of a
/// decryption share.
fn decryption_commitment(contributors: &[u64], active: &[u64]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut active = active.to_vec();
    active.sort_unstable();
    let mut h = Sha256::new();
    h.update(b"cipherflow-fed-decrypt-v2");
    for list in [contributors, active.as_slice()] {
        h.update((list.len() as u64).to_le_bytes());
        for i in list {
            h.update(i.to_le_bytes());
        }
    }
    h.finalize().into()
}

/// The seed of the smudging noise of part `part` of a decryption share:
/// a pseudorandom function (SHA-256) of the holder's secret `key`, keyed
/// to the federation, key epoch, round and the `commit`ment to what is
/// decrypted. A request repeated for the same round, contributor set and
/// active set — by a coordinator that restarted, or one that asks again
/// to average the noise away — gets **byte-identical** shares: fresh
/// noise on every repeat would let the noise be averaged out of the
/// secret-dependent term, and no bound on the number of decryptions
/// would hold.
pub(crate) fn smudging_seed(
    key: &[u8; 32],
    federation: &str,
    epoch: u64,
    round: u64,
    commit: &[u8],
    part: usize,
) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"cipherflow-fed-smudging-v1");
    h.update(key);
    h.update((federation.len() as u64).to_le_bytes());
    h.update(federation.as_bytes());
    h.update(epoch.to_le_bytes());
    h.update(round.to_le_bytes());
    h.update((commit.len() as u64).to_le_bytes());
    h.update(commit);
    h.update((part as u64).to_le_bytes());
    h.finalize().into()
}

impl ClientAgent {
    pub(super) fn verify_entry(&self, proof: &EntryProof) -> Result<cipherflow_ledger::Entry> {
        let key = self
            .ledger_key
            .ok_or_else(|| FedError::NotReady("no ledger key".into()))?;
        proof
            .verify(&key, self.log_id.as_ref())
            .map_err(|e| FedError::Refused(format!("ledger proof: {e}")))
    }

    /// Checks a new signed head against the last one seen (append-only).
    pub(super) fn advance_head(
        &mut self,
        sth: &SignedTreeHead,
        consistency: Option<&ConsistencyProof>,
    ) -> Result<()> {
        if let Some(old) = &self.last_head {
            if sth.tree_size < old.tree_size {
                return Err(FedError::Refused("the ledger shrank (rollback)".into()));
            }
            if sth.tree_size == old.tree_size {
                if sth.root_hash != old.root_hash {
                    return Err(FedError::Refused("the ledger forked".into()));
                }
            } else {
                let p = consistency
                    .ok_or_else(|| FedError::Refused("missing ledger consistency proof".into()))?;
                if p.old_size != old.tree_size || p.new_size != sth.tree_size {
                    return Err(FedError::Refused(
                        "consistency proof for other sizes".into(),
                    ));
                }
                p.verify(&old.root_hash, &sth.root_hash)
                    .map_err(|e| FedError::Refused(format!("ledger not append-only: {e}")))?;
            }
        }
        self.last_head = Some(*sth);
        Ok(())
    }

    /// Size of the last verified ledger head (for task requests).
    pub fn known_tree_size(&self) -> u64 {
        self.last_head.map_or(0, |h| h.tree_size)
    }

    pub(super) fn decrypt(&mut self, task: &DecryptTask) -> Result<Action> {
        if self.cfg.keys != KeysMode::Threshold {
            return Err(FedError::Protocol(
                "decryption request in key-service mode".into(),
            ));
        }
        if !self.is_key_holder() {
            return Err(FedError::Refused(
                "decryption request to a client outside the key-holder committee".into(),
            ));
        }
        if !self.has_keys() {
            return Err(FedError::NotReady("key setup incomplete".into()));
        }
        let proof = &task.aggregate_proof;
        let entry = self.verify_entry(proof)?;
        let contributors = check_aggregate(
            &entry,
            task.round,
            &task.inputs,
            self.sizes.quorum,
            &self.roster,
        )?;
        if task.chunks as usize != self.packing.chunks {
            return Err(FedError::Refused(
                "decryption for another model size".into(),
            ));
        }
        // One (contributor set, active set) per round, recorded durably
        // before the share leaves: shares of one sum for two active sets
        // differ only in the Lagrange factor, and enough of them expose
        // the smudging noise (see `cipherflow_ckks::multiparty::aggregate`).
        let commit = decryption_commitment(&contributors, &task.active);
        if let Some(prev) = self.decrypted.get(&task.round) {
            if *prev != commit {
                tracing::warn!(
                    client = %self.id,
                    round = task.round,
                    "decryption for a second contributor or active set refused"
                );
                return Err(FedError::Refused(format!(
                    "already gave a share in round {} for another contributor or active set",
                    task.round
                )));
            }
        }
        self.advance_head(&proof.sth, task.consistency_proof.as_ref())?;
        if task.prepare {
            // Everything checked; nothing released, nothing committed.
            return Ok(Action::Share(vec![ShareChunk {
                federation: self.cfg.name.clone(),
                round: task.round,
                attempt: task.attempt,
                index: 0,
                total: 1,
                share: Vec::new(),
                ready: true,
            }]));
        }
        self.decrypted.insert(task.round, commit);
        if self.smudging_key.is_none() {
            let mut k = zeroize::Zeroizing::new([0u8; 32]);
            self.rng.fill_bytes(k.as_mut());
            self.smudging_key = Some(k);
        }
        self.save_state()?;
        let crs = self
            .crs
            .ok_or_else(|| FedError::NotReady("join first".into()))?;
        let seeds = crate::packing::round_seeds(
            &crs,
            &self.cfg.name,
            self.epoch,
            task.round,
            self.packing.chunks,
        );
        let smudging = self.packing.smudging()?;
        let parts: Vec<&[[u8; 32]]> = seeds.chunks(SHARE_PART_CHUNKS).collect();
        let total = parts.len() as u32;
        let key = self
            .smudging_key
            .as_ref()
            .ok_or_else(|| FedError::Integrity("no smudging key".into()))?;
        let part_seeds: Vec<[u8; 32]> = (0..parts.len())
            .map(|i| smudging_seed(key, &self.cfg.name, self.epoch, task.round, &commit, i))
            .collect();
        let (params, received, party) = (&self.params, &self.received, self.party);
        let fed = self.cfg.name.clone();
        let out = parts
            .par_iter()
            .zip(part_seeds.par_iter())
            .enumerate()
            .map(|(i, (sd, seed))| {
                let mut rng = ChaCha20Rng::from_seed(*seed);
                let s = aggregate_decryption_share(
                    params,
                    party,
                    received,
                    &contributors,
                    &task.active,
                    sd,
                    &smudging,
                    &mut rng,
                )?;
                Ok(ShareChunk {
                    federation: fed.clone(),
                    round: task.round,
                    attempt: task.attempt,
                    index: i as u32,
                    total,
                    share: s.to_bytes(),
                    ready: false,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Action::Share(out))
    }
}

/// Checks that a ledger entry is the round's aggregate over `inputs`, with
/// at least `quorum` distinct roster clients; returns their party ids.
pub fn check_aggregate(
    entry: &cipherflow_ledger::Entry,
    round: u64,
    inputs: &[AggregateInput],
    quorum: usize,
    roster: &Roster,
) -> Result<Vec<u64>> {
    let EntryBody::AggregateComputed(a) = &entry.body else {
        return Err(FedError::Refused(
            "the proof is not of an aggregate entry".into(),
        ));
    };
    if entry.round != round {
        return Err(FedError::Refused("aggregate of another round".into()));
    }
    if a.input_count as usize != inputs.len() || inputs_root(inputs) != a.inputs_root {
        return Err(FedError::Refused(
            "the input list does not match the logged aggregate".into(),
        ));
    }
    let mut parties = inputs
        .iter()
        .map(|i| roster.by_id(&i.client_id).map(|e| e.party_id))
        .collect::<Option<Vec<u64>>>()
        .ok_or_else(|| FedError::Refused("an input from outside the roster".into()))?;
    parties.sort_unstable();
    parties.dedup();
    if parties.len() != inputs.len() {
        return Err(FedError::Refused("a client counted twice".into()));
    }
    if parties.len() < quorum.max(2) {
        return Err(FedError::Refused(format!(
            "the aggregate sums {} updates, fewer than the quorum {quorum}: refusing to decrypt",
            parties.len()
        )));
    }
    Ok(parties)
}
