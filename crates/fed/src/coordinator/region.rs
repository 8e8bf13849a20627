//! Hierarchical aggregation: regional aggregators sum their clients'
//! updates and forward one ciphertext per round to the coordinator.
//!
//! A region is this module's [`RegionalAggregator`]: the coordinator's own
//! upload path (every check, group commit, durable payloads, resume after
//! a crash) under its own state and its own signed ledger, named after the
//! region ([`crate::roster::region_ledger_name`]) and keyed by the key the
//! roster pins for it. The coordinator opens each round in every region
//! that has sampled clients ([`Coordinator::region_round`]); a region
//! collects, then logs an AggregateComputed entry over its contributors
//! and forwards the sum with that entry's proof ([`RegionalSum`]).
//!
//! The coordinator accepts a regional sum ([`Coordinator::regional_sum`])
//! only if the proof verifies under the region's pinned key and log id,
//! the entry is the round's aggregate over exactly the listed contributors
//! and the sum's SHA-256, and every contributor is an enrolled, unrevoked
//! client of that region, sampled this round and not counted before (in
//! this or another region). It then logs each contributor's
//! UpdateReceived entry (the hash the client computed over its own upload,
//! so its "my update was counted" proof from the coordinator is unchanged)
//! and a [`RegionSumRecord`] naming the region's signed head.
//!
//! Why this keeps the sum private: a key holder's decryption share depends
//! only on the contributor set (the round's public `a` and the contributors'
//! key shares), never on the ciphertext. A region that forwards anything
//! other than the true sum of its listed contributors (one client's update,
//! say) gets it decrypted only under the other contributors' keys as well,
//! which leaves it masked; each client encrypts once per round. Sums stay
//! valid under summed key shares, so regions sum freely. What a dishonest
//! region can do is drop or alter its clients' contributions — the checked
//! decryption's bounds catch an altered sum as they catch a lying key
//! holder — and it sees no more than the coordinator: ciphertexts.

use super::round::{fold, parse_hash, RecordState, RoundRecord, RoundState};
use super::upload::decode_ciphertexts;
use super::{Coordinator, CoordinatorOptions, Phase, RegionSetup};
use crate::error::{FedError, Result};
use crate::messages::{
    RegionPoll, RegionRound, RegionStatus, RegionalSum, UploadChunk, UploadReceipt,
};
use crate::metrics::Metrics;
use crate::records::RegionSumRecord;
use crate::roster::region_ledger_name;
use crate::store;
use cipherflow_ckks::multiparty::{Crs, SharedCiphertext};
use cipherflow_ledger::entry::{inputs_root, EntryBody, ParamValue, UpdateReceived, KIND_CUSTOM};
use cipherflow_ledger::{EntryProof, NewEntry, PublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// The part of a round's record that a regional sum adds (durable with its
/// payload row, so that a restart counts the same contributors).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RegionRecord {
    sum_hash: String,
    /// `(client, update hash (hex), examples)`, in the region's order.
    contributors: Vec<(String, String, u64)>,
    region_tree_size: u64,
    region_root: String,
    region_entry: u64,
    inputs_root: String,
    /// The coordinator's RegionSumRecord entry, once appended.
    record_index: Option<u64>,
}

impl RegionRecord {
    /// The contributors with their hashes decoded.
    pub(super) fn contributors(&self) -> Result<Vec<(String, [u8; 32], u64)>> {
        self.contributors
            .iter()
            .map(|(c, h, n)| Ok((c.clone(), parse_hash(h)?, *n)))
            .collect()
    }

    fn to_record(&self, round: u64, region: &str) -> Result<RegionSumRecord> {
        Ok(RegionSumRecord {
            round,
            region: region.to_string(),
            region_tree_size: self.region_tree_size,
            region_root: parse_hash(&self.region_root)?,
            region_entry: self.region_entry,
            sum_hash: parse_hash(&self.sum_hash)?,
            contributors: self.contributors.len() as u64,
            inputs_root: parse_hash(&self.inputs_root)?,
        })
    }
}

/// A regional sum that passed every check, not yet durable.
struct CheckedSum {
    hash: [u8; 32],
    cts: Vec<SharedCiphertext>,
    record: RegionRecord,
}

fn sum_hash<B: AsRef<[u8]>>(chunks: &[B]) -> [u8; 32] {
    let mut h = Sha256::new();
    for c in chunks {
        h.update(c.as_ref());
    }
    h.finalize().into()
}

impl Coordinator {
    /// Whether the round has every update it can get: each sampled client
    /// uploaded here or its region forwarded its sum.
    pub(super) fn collection_complete(&self) -> bool {
        let Some(st) = &self.round else {
            return false;
        };
        if st.record.regions.is_empty() {
            return st.uploads.len() == st.record.sampled.len();
        }
        let regions: BTreeMap<&str, &str> = self
            .roster
            .clients
            .iter()
            .filter_map(|c| c.region.as_deref().map(|r| (c.client_id.as_str(), r)))
            .collect();
        st.record.sampled.iter().all(|c| {
            st.uploads.contains_key(c)
                || regions
                    .get(c.as_str())
                    .is_some_and(|r| st.record.regions.contains_key(*r))
        })
    }

    /// What `region` (authenticated by the transport) is to do: the key
    /// epoch once the key setup is done, the round it collects, whether the
    /// federation finished.
    pub fn region_status(&self, region: &str, poll: &RegionPoll) -> Result<RegionStatus> {
        if poll.federation != self.cfg.name {
            return Err(FedError::Protocol(format!(
                "a poll for federation {:?}, this is {:?}",
                poll.federation, self.cfg.name
            )));
        }
        if self.roster.region(region).is_none() {
            return Err(FedError::Unenrolled(format!("region {region}")));
        }
        Ok(RegionStatus {
            keys: (self.phase != Phase::KeySetup).then_some((self.crs, self.epoch)),
            round: self.region_round(region),
            finished: match &self.phase {
                Phase::Finished(why) => Some(why.clone()),
                _ => None,
            },
        })
    }

    /// The current round as `region` collects it: its sampled clients.
    /// `None` when no round collects (or this is itself a region).
    pub fn region_round(&self, region: &str) -> Option<RegionRound> {
        let st = self.round.as_ref()?;
        if self.region.is_some() || st.record.state != RecordState::Collecting {
            return None;
        }
        let sampled = st
            .record
            .sampled
            .iter()
            .filter(|c| self.roster.by_id(c).and_then(|e| e.region.as_deref()) == Some(region))
            .cloned()
            .collect();
        Some(RegionRound {
            federation: self.cfg.name.clone(),
            round: st.record.round,
            cumulative: st.record.cumulative,
            sampled,
            weight_reference: st.record.weight_reference,
            noise_multiplier: st.record.noise_multiplier,
        })
    }

    /// Accepts `region`'s sum of its clients' updates (the region
    /// authenticated by the transport): checked, made durable, logged
    /// (each contributor's UpdateReceived entry, then a
    /// [`RegionSumRecord`]), added to the round's sum. Returns the proof of
    /// the record; a byte-identical resend gets it again.
    pub fn regional_sum(&mut self, region: &str, sum: &RegionalSum) -> Result<EntryProof> {
        let before = self.metrics.refused;
        let r = self.check_regional_sum(region, sum);
        let checked = match self.count_refusal(region, "regional sum", before, r)? {
            Ok(c) => c,
            Err(index) => return Ok(self.ledger.entry_proof(index)?),
        };
        self.commit_regional_sum(region, sum, checked)
    }

    /// Every check of a regional sum; `Err(index)` for a resend of the
    /// accepted one (its record's ledger index).
    fn check_regional_sum(
        &mut self,
        region: &str,
        sum: &RegionalSum,
    ) -> Result<std::result::Result<CheckedSum, u64>> {
        if self.region.is_some() {
            return Err(FedError::Protocol(
                "a regional aggregator takes no regional sums".into(),
            ));
        }
        let entry = self
            .roster
            .region(region)
            .ok_or_else(|| FedError::Unenrolled(format!("region {region}")))?;
        let key: PublicKey = entry.public_key()?;
        self.check_federation(region, &sum.federation)?;
        let round = sum.round;
        let Some(st) = &self.round else {
            return Err(FedError::Replay(format!(
                "regional sum for round {round}, and no round is open"
            )));
        };
        if st.record.round != round {
            return Err(FedError::Replay(format!(
                "regional sum for round {round}, the current round is {}",
                st.record.round
            )));
        }
        let hash = sum_hash(&sum.chunks);
        if let Some(prev) = st.record.regions.get(region) {
            // A resend is the same sum of the same contributors' updates.
            let same = prev.sum_hash == hex::encode(hash)
                && prev.contributors.len() == sum.inputs.len()
                && prev
                    .contributors
                    .iter()
                    .zip(&sum.inputs)
                    .all(|((c, h, _), i)| {
                        *c == i.client_id && *h == hex::encode(i.ciphertext_hash)
                    });
            return match prev.record_index {
                Some(i) if same => Ok(Err(i)),
                _ => Err(FedError::Replay(format!(
                    "region {region} already forwarded its sum for round {round}"
                ))),
            };
        }
        if st.record.state != RecordState::Collecting {
            return Err(FedError::Refused(format!(
                "round {round} no longer collects updates"
            )));
        }
        let n = sum.inputs.len();
        if sum.chunks.len() != self.packing.chunks
            || n == 0
            || n != sum.examples.len()
            || n > st.record.sampled.len()
        {
            return Err(FedError::Protocol(format!(
                "a regional sum is {} chunks and 1..={} contributors, each with its examples",
                self.packing.chunks,
                st.record.sampled.len()
            )));
        }
        // The region's signed commitment to the contributors and the sum.
        let log = cipherflow_ledger::log_id(&key, &region_ledger_name(&self.cfg.name, region));
        let e = sum
            .aggregate_proof
            .verify(&key, Some(&log))
            .map_err(|e| FedError::Refused(format!("region {region}'s ledger proof: {e}")))?;
        let EntryBody::AggregateComputed(a) = &e.body else {
            return Err(FedError::Refused(format!(
                "region {region}'s proof is not of an aggregate entry"
            )));
        };
        if e.round != round {
            return Err(FedError::Refused(format!(
                "region {region}'s aggregate is of round {}, not {round}",
                e.round
            )));
        }
        if a.input_count != n as u64 || inputs_root(&sum.inputs) != a.inputs_root {
            return Err(FedError::Refused(format!(
                "region {region}'s contributor list is not the one its ledger committed"
            )));
        }
        if a.aggregate_hash != hash {
            return Err(FedError::Refused(format!(
                "region {region}'s sum is not the one its ledger committed"
            )));
        }
        let mut seen = BTreeSet::new();
        for i in &sum.inputs {
            let c = &i.client_id;
            let e = self
                .roster
                .admit(c)
                .map_err(|e| FedError::Refused(format!("region {region} counted {c}: {e}")))?;
            if e.region.as_deref() != Some(region) {
                return Err(FedError::Refused(format!(
                    "region {region} counted {c}, a client of another region"
                )));
            }
            if !st.record.sampled.iter().any(|s| s == c) {
                return Err(FedError::Refused(format!(
                    "region {region} counted {c}, which was not sampled in round {round}"
                )));
            }
            if st.uploads.contains_key(c) || !seen.insert(c.as_str()) {
                return Err(FedError::Replay(format!(
                    "region {region} counted {c}, already counted in round {round}"
                )));
            }
        }
        let pieces: Vec<&[u8]> = sum.chunks.iter().map(Vec::as_slice).collect();
        let cts = decode_ciphertexts(
            &self.params,
            &self.seeds(round),
            self.packing.shift,
            &pieces,
        )?;
        let sth = &sum.aggregate_proof.sth;
        Ok(Ok(CheckedSum {
            hash,
            cts,
            record: RegionRecord {
                sum_hash: hex::encode(hash),
                contributors: sum
                    .inputs
                    .iter()
                    .zip(&sum.examples)
                    .map(|(i, n)| {
                        (
                            i.client_id.clone(),
                            hex::encode(i.ciphertext_hash),
                            (*n).min(1 << 40),
                        )
                    })
                    .collect(),
                region_tree_size: sth.tree_size,
                region_root: hex::encode(sth.root_hash),
                region_entry: e.index,
                inputs_root: hex::encode(a.inputs_root),
                record_index: None,
            },
        }))
    }

    /// Makes a checked regional sum durable (its payload and the round's
    /// record in one transaction), logs it, and adds it to the round.
    fn commit_regional_sum(
        &mut self,
        region: &str,
        sum: &RegionalSum,
        checked: CheckedSum,
    ) -> Result<EntryProof> {
        let CheckedSum {
            hash,
            cts,
            mut record,
        } = checked;
        let (round, seq, mut rec) = {
            let st = self
                .round
                .as_ref()
                .ok_or_else(|| FedError::NotReady("no round is open".into()))?;
            (st.record.round, st.uploads.len(), st.record.clone())
        };
        let mut writer = self
            .store
            .segment_writer(&store::upload_segment(round, seq))?;
        let pieces: Vec<&[u8]> = sum.chunks.iter().map(Vec::as_slice).collect();
        let at = writer.append(&pieces)?;
        writer.finish()?;
        let examples: u64 = record.contributors.iter().map(|c| c.2).sum();
        rec.regions.insert(region.to_string(), record.clone());
        let json = serde_json::to_string(&rec)?;
        self.store.tx(|tx| {
            store::insert_upload(tx, round, region, &hash, examples, &at)?;
            store::put_round(tx, round, &json)
        })?;
        let indices = self.log_region(round, region, &mut record)?;
        rec.regions.insert(region.to_string(), record.clone());
        self.save_record(&rec)?;
        let now = self.now();
        let st = self
            .round
            .as_mut()
            .ok_or_else(|| FedError::NotReady("round vanished".into()))?;
        fold(&mut st.sum, cts)?;
        st.record = rec;
        st.upload_bytes += at.len;
        let latency = (now - st.opened_at).max(0.0);
        let contributors = record.contributors()?;
        for ((client, h, n), index) in contributors.iter().zip(&indices) {
            st.uploads.insert(client.clone(), (*h, *n, Some(*index)));
        }
        self.metrics.uploads += contributors.len() as u64;
        self.metrics.upload_bytes += at.len;
        for (client, _, _) in &contributors {
            if let Some(c) = self.client_counters(client) {
                c.joined += 1;
                c.upload_latency_sum += latency;
                c.upload_latency_count += 1;
            }
        }
        tracing::info!(
            region,
            round,
            contributors = contributors.len(),
            "regional sum accepted"
        );
        let proof = match record.record_index {
            Some(i) => self.ledger.entry_proof(i)?,
            None => {
                return Err(FedError::NotReady(
                    "the region's record is not logged".into(),
                ))
            }
        };
        if self.collection_complete() {
            self.aggregate()?;
        }
        Ok(proof)
    }

    /// Appends a regional sum's entries (each contributor's UpdateReceived,
    /// then the record) in one batch; returns the contributors' indices and
    /// notes the record's.
    fn log_region(
        &mut self,
        round: u64,
        region: &str,
        record: &mut RegionRecord,
    ) -> Result<Vec<u64>> {
        let mut entries: Vec<NewEntry> = record
            .contributors()?
            .into_iter()
            .map(|(client_id, ciphertext_hash, _)| {
                NewEntry::new(
                    round,
                    EntryBody::UpdateReceived(UpdateReceived {
                        client_id,
                        ciphertext_hash,
                    }),
                )
            })
            .collect();
        entries.push(NewEntry::new(
            round,
            EntryBody::Custom(record.to_record(round, region)?.to_entry()),
        ));
        let mut appended: Vec<u64> = self
            .ledger
            .append_batch(entries)?
            .into_iter()
            .map(|a| a.index)
            .collect();
        record.record_index = appended.pop();
        Ok(appended)
    }

    /// After a restart: the ledger indices of a stored regional sum's
    /// contributors, and the record with its own index, appending what the
    /// ledger lacks.
    pub(super) fn reconcile_region(
        &mut self,
        round: u64,
        region: &str,
        record: &RegionRecord,
    ) -> Result<(Vec<u64>, RegionRecord)> {
        let find = |c: &Coordinator, r: &RegionRecord| -> Result<Vec<u64>> {
            r.contributors
                .iter()
                .map(|(client, _, _)| Ok(c.ledger.find_update(client, round)?))
                .collect()
        };
        if record.record_index.is_some() {
            return Ok((find(self, record)?, record.clone()));
        }
        let logged = self.ledger.round_entries(round, KIND_CUSTOM)?;
        let mine = record.to_record(round, region)?.to_entry();
        let found = logged.iter().find_map(|e| match &e.body {
            EntryBody::Custom(c) if *c == mine => Some(e.index),
            _ => None,
        });
        let mut record = record.clone();
        let indices = match found {
            Some(i) => {
                record.record_index = Some(i);
                find(self, &record)?
            }
            None => self.log_region(round, region, &mut record)?,
        };
        Ok((indices, record))
    }

    /// A region's timeouts: the sum is sealed once the round's time is
    /// mostly spent (earlier than the coordinator closes collection, so that
    /// it arrives in time); a round that collected nothing is given up.
    pub(super) fn region_tick(&mut self) -> Result<()> {
        let now = self.now();
        let timeout = self.cfg.round_timeout_s;
        let Some(st) = &self.round else {
            return Ok(());
        };
        if st.record.state != RecordState::Collecting {
            return Ok(());
        }
        let age = now - st.opened_at;
        if age >= REGION_SEAL_FRACTION * timeout && !st.uploads.is_empty() {
            self.aggregate()?;
        } else if age >= 3.0 * timeout && st.uploads.is_empty() {
            self.end_region_round(RecordState::Aborted)?;
        }
        Ok(())
    }

    /// Ends the region's current round (after its sum was accepted, or
    /// when it is given up) and drops its payloads.
    fn end_region_round(&mut self, state: RecordState) -> Result<()> {
        let Some(st) = self.round.take() else {
            return Ok(());
        };
        let mut rec = st.record;
        rec.state = state;
        let (r, json) = (rec.round, serde_json::to_string(&rec)?);
        self.store.tx(|tx| {
            store::put_round(tx, r, &json)?;
            store::prune_uploads(tx, r)
        })?;
        tracing::info!(region = ?self.region, round = r, ?state, "regional round ended");
        Ok(())
    }
}

/// A region's side, run by [`RegionalAggregator`] or by a region's server.
impl Coordinator {
    /// Opens the coordinator's round here (nothing to do for the current
    /// or last round; an older one is refused, a newer one ends the
    /// current).
    pub(crate) fn region_open_round(&mut self, task: &RegionRound) -> Result<()> {
        let region = self
            .region
            .clone()
            .ok_or_else(|| FedError::Config("not a regional aggregator".into()))?;
        let c = self;
        if task.federation != c.cfg.name {
            return Err(FedError::Protocol(format!(
                "round for federation {:?}, this is {:?}",
                task.federation, c.cfg.name
            )));
        }
        if let Some(st) = &c.round {
            if st.record.round == task.round {
                return Ok(());
            }
        }
        match c.store.latest_round()? {
            // Collected and ended here already: nothing to open.
            Some(r) if r == task.round => return Ok(()),
            Some(r) if r > task.round => {
                return Err(FedError::Replay(format!(
                    "round {} is before this region's last round {r}",
                    task.round
                )))
            }
            _ => {}
        }
        let mut sampled = task.sampled.clone();
        sampled.sort();
        sampled.dedup();
        if sampled.len() != task.sampled.len()
            || sampled.iter().any(|s| {
                c.roster.by_id(s).and_then(|e| e.region.as_deref()) != Some(region.as_str())
            })
        {
            return Err(FedError::Refused(format!(
                "round {}: the sampled list names a client twice or outside region {region}",
                task.round
            )));
        }
        if c.round.is_some() {
            c.end_region_round(RecordState::Aborted)?;
        }
        let mut rec = RoundRecord::collecting(
            task.round,
            task.sampled.clone(),
            task.weight_reference,
            task.cumulative,
            task.noise_multiplier,
        );
        c.save_record(&rec)?;
        let mut body = c.opened_entry(&rec)?;
        if let EntryBody::RoundOpened(o) = &mut body {
            // The region holds no model: it logs which region it is.
            o.parameters.remove("model_hash");
            o.parameters
                .insert("region".into(), ParamValue::from(region.as_str()));
        }
        rec.opened_index = Some(c.ledger.append(task.round, body)?.index);
        c.save_record(&rec)?;
        let quantizer = c.quantizer_for(rec.weight_reference, rec.noise_multiplier);
        let now = c.now();
        tracing::info!(
            region,
            round = task.round,
            sampled = rec.sampled.len(),
            "regional round opened"
        );
        c.round = Some(RoundState::new(rec, quantizer, now, 0.0, 0.0));
        Ok(())
    }

    /// The sealed sum of the current round, ready to forward; `None` while
    /// it collects.
    pub(crate) fn region_sealed_sum(&self) -> Result<Option<RegionalSum>> {
        let c = self;
        let Some(st) = &c.round else {
            return Ok(None);
        };
        if st.record.state != RecordState::Decrypting {
            return Ok(None);
        }
        let Some((index, agg)) = st
            .record
            .aggregate
            .as_ref()
            .and_then(|a| a.index.map(|i| (i, a)))
        else {
            return Ok(None);
        };
        let examples = agg
            .inputs
            .iter()
            .map(|i| st.uploads.get(&i.client_id).map(|u| u.1))
            .collect::<Option<Vec<u64>>>()
            .ok_or_else(|| FedError::Integrity("an aggregate input without its upload".into()))?;
        Ok(Some(RegionalSum {
            federation: c.cfg.name.clone(),
            round: st.record.round,
            chunks: st.sum.iter().map(SharedCiphertext::to_bytes).collect(),
            aggregate_proof: c.ledger.entry_proof(index)?,
            inputs: agg.inputs.clone(),
            examples,
        }))
    }

    /// Ends round `round` once the coordinator accepted its sum.
    pub(crate) fn region_close_round(&mut self, round: u64) -> Result<()> {
        if self.current_round() == Some(round) {
            self.end_region_round(RecordState::Closed)?;
        }
        Ok(())
    }
}

/// The fraction of the round timeout after which a region seals its sum.
const REGION_SEAL_FRACTION: f64 = 0.8;

/// A regional aggregator: it takes the uploads of its region's clients
/// (with every check the coordinator makes, committed in groups and
/// logged in its own ledger) and forwards their sum.
pub struct RegionalAggregator {
    inner: Coordinator,
}

impl RegionalAggregator {
    /// Starts or resumes region `region` of the federation. `opts.signer`
    /// must hold the ledger key the roster pins for the region; `crs` and
    /// `epoch` are the key epoch's (from the coordinator's ledger).
    pub fn open(opts: CoordinatorOptions, region: &str, crs: Crs, epoch: u64) -> Result<Self> {
        let inner = Coordinator::open_as(
            opts,
            Some(RegionSetup {
                id: region.to_string(),
                crs,
                epoch,
            }),
        )?;
        Ok(Self { inner })
    }

    /// The region's id.
    pub fn id(&self) -> &str {
        self.inner.region.as_deref().unwrap_or_default()
    }

    /// Opens the coordinator's round here (nothing to do for the current
    /// or last round; an older one is refused, a newer one ends the
    /// current).
    pub fn open_round(&mut self, task: &RegionRound) -> Result<()> {
        self.inner.region_open_round(task)
    }

    /// Accepts a batch of its clients' updates (see
    /// [`Coordinator::upload_batch`]); receipts carry the region ledger's
    /// proofs.
    pub fn upload_batch(
        &mut self,
        batch: &[(&str, &[UploadChunk])],
    ) -> Result<Vec<Result<UploadReceipt>>> {
        self.inner.upload_batch(batch)
    }

    /// Seals the round's sum at its deadline.
    pub fn tick(&mut self) -> Result<()> {
        self.inner.region_tick()
    }

    /// The sealed sum of the current round, ready to forward; `None` while
    /// it collects.
    pub fn sealed_sum(&self) -> Result<Option<RegionalSum>> {
        self.inner.region_sealed_sum()
    }

    /// Ends round `round` once the coordinator accepted its sum.
    pub fn close_round(&mut self, round: u64) -> Result<()> {
        self.inner.region_close_round(round)
    }

    /// The coordinator this region runs on (its server's).
    pub(crate) fn into_coordinator(self) -> Coordinator {
        self.inner
    }

    /// The round it collects or holds, if any.
    pub fn current_round(&self) -> Option<u64> {
        self.inner.current_round()
    }

    /// Whether it accepts nothing more (the federation's phase says so).
    pub fn phase(&self) -> &Phase {
        self.inner.phase()
    }

    /// Its counters (uploads, refusals, per client).
    pub fn metrics(&self) -> &Metrics {
        self.inner.metrics()
    }

    /// Its ledger's public key.
    pub fn ledger_public_key(&self) -> PublicKey {
        self.inner.ledger_public_key()
    }
}
