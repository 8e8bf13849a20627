//! Rounds: open (sample, plan, log), collect (validate, store, log, fold),
//! aggregate (log the input set), timeouts. Resumption after a crash is in
//! `resume`, decryption and closing in `decrypt`.

use super::{Coordinator, Phase, META_DP_SCHEDULE, META_ROUNDS_OPENED};
use crate::config::KeysMode;
use crate::dp_schedule::history_epsilon;
use crate::error::{FedError, Result};
use crate::messages::{DecryptTask, KeyServiceDecrypt, ProofReply, ProofRequest, Task, TrainTask};
use crate::quant::Quantizer;
use crate::store;
use crate::training;
use cipherflow_ckks::multiparty::{AggregateShare, SharedCiphertext};
use cipherflow_ledger::entry::{DpSettings, EntryBody, ParamValue, RoundOpened};
use cipherflow_ledger::{AggregateInput, ConsistencyProof};
use rand_core::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Chunks per part of a decryption share (one message each).
pub const SHARE_PART_CHUNKS: usize = 16;

/// Where a round is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RecordState {
    Collecting,
    Decrypting,
    Closed,
    Aborted,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct AggregateRecord {
    pub(super) index: Option<u64>,
    pub(super) hash: String,
    pub(super) inputs: Vec<AggregateInput>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ClosedRecord {
    pub(super) model_hash: String,
    pub(super) epsilon: Option<f64>,
    pub(super) clients: Vec<(String, u64, Option<f64>)>,
}

/// The durable record of a round.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RoundRecord {
    pub(crate) round: u64,
    pub(super) state: RecordState,
    pub(super) sampled: Vec<String>,
    pub(super) weight_reference: f64,
    pub(super) cumulative: u64,
    pub(super) opened_index: Option<u64>,
    pub(super) aggregate: Option<AggregateRecord>,
    pub(super) attempt: u32,
    pub(super) active: Vec<String>,
    /// Active sets asked so far this round (a key holder answers one).
    #[serde(default)]
    pub(super) tried: Vec<Vec<String>>,
    /// Key holder → the active set it gave its share for.
    #[serde(default)]
    pub(super) answered: BTreeMap<String, Vec<String>>,
    pub(super) closed_index: Option<u64>,
    pub(super) closed: Option<ClosedRecord>,
    /// The round's noise multiplier `z` under a privacy schedule.
    #[serde(default)]
    pub(super) noise_multiplier: Option<f64>,
    /// Regional sums accepted this round, by region.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) regions: BTreeMap<String, super::region::RegionRecord>,
}

impl RoundState {
    /// A round with nothing collected yet.
    pub(super) fn new(
        record: RoundRecord,
        quantizer: Quantizer,
        opened_at: f64,
        attempt_deadline: f64,
        decrypt_started: f64,
    ) -> Self {
        Self {
            record,
            quantizer,
            sum: Vec::new(),
            uploads: BTreeMap::new(),
            shares: BTreeMap::new(),
            ready: Default::default(),
            opened_at,
            attempt_deadline,
            decrypt_started,
            ks_requested_at: None,
            upload_bytes: 0,
            started: std::time::Instant::now(),
        }
    }
}

impl RoundRecord {
    /// A round that starts collecting: nothing logged, uploaded or asked
    /// yet.
    pub(super) fn collecting(
        round: u64,
        sampled: Vec<String>,
        weight_reference: f64,
        cumulative: u64,
        noise_multiplier: Option<f64>,
    ) -> Self {
        Self {
            round,
            state: RecordState::Collecting,
            sampled,
            weight_reference,
            cumulative,
            opened_index: None,
            aggregate: None,
            attempt: 0,
            active: Vec::new(),
            tried: Vec::new(),
            answered: BTreeMap::new(),
            closed_index: None,
            closed: None,
            noise_multiplier,
            regions: BTreeMap::new(),
        }
    }

    /// Closed or aborted.
    pub(crate) fn is_finished(&self) -> bool {
        matches!(self.state, RecordState::Closed | RecordState::Aborted)
    }
}

/// The in-memory state of the current round.
pub(crate) struct RoundState {
    pub(crate) record: RoundRecord,
    pub(super) quantizer: Quantizer,
    pub(crate) sum: Vec<SharedCiphertext>,
    pub(super) uploads: BTreeMap<String, (/*hash*/ [u8; 32], /*examples*/ u64, Option<u64>)>,
    pub(super) shares: BTreeMap<String, ([u8; 32], Vec<AggregateShare>)>,
    /// Members of the current active set that answered the `prepare` task.
    pub(super) ready: std::collections::BTreeSet<String>,
    pub(super) opened_at: f64,
    pub(super) attempt_deadline: f64,
    /// When the decryption phase started (or resumed).
    pub(super) decrypt_started: f64,
    pub(super) ks_requested_at: Option<f64>,
    pub(super) upload_bytes: u64,
    pub(super) started: std::time::Instant,
}

/// What a closed round achieved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundSummary {
    /// Round number (1-based).
    pub round: u64,
    /// Clients sampled.
    pub sampled: usize,
    /// Updates summed.
    pub contributors: usize,
    /// Decryption shares combined.
    pub decryptors: usize,
    /// Decryption attempts.
    pub attempts: u32,
    /// The round ended without a decryption.
    pub aborted: bool,
    /// Why the round was aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_reason: Option<String>,
    /// Accuracy of the new model on the coordinator's evaluation data.
    pub accuracy: Option<f32>,
    /// Global ε after this round (None: no DP).
    pub epsilon: Option<f64>,
    /// The round's noise multiplier `z` (client-level DP; a privacy
    /// schedule changes it from round to round).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_multiplier: Option<f64>,
    /// Wall-clock seconds from opening to closing (this process).
    pub seconds: f64,
    /// Bytes of ciphertext uploaded.
    pub upload_bytes: u64,
    /// SHA-256 of the published model.
    pub model_hash: String,
}

pub(super) fn split_parts(bytes: &[u8]) -> Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<8>()
            .ok_or_else(|| FedError::Encoding("share part length".into()))?;
        let n = usize::try_from(u64::from_le_bytes(*len))
            .map_err(|_| FedError::Encoding("share part length".into()))?;
        if n > tail.len() {
            return Err(FedError::Encoding("share part truncated".into()));
        }
        let (part, t) = tail.split_at(n);
        out.push(part);
        rest = t;
    }
    Ok(out)
}

impl Coordinator {
    /// The round's quantization (`z`: its noise multiplier under a
    /// privacy schedule).
    pub(super) fn quantizer_for(&self, weight_reference: f64, z: Option<f64>) -> Quantizer {
        crate::quant::expected(
            &self.cfg,
            self.dp.as_ref(),
            &self.packing,
            weight_reference,
            z,
        )
    }

    pub(super) fn seeds(&self, round: u64) -> Vec<[u8; 32]> {
        crate::packing::round_seeds(
            &self.crs,
            &self.cfg.name,
            self.epoch,
            round,
            self.packing.chunks,
        )
    }

    pub(super) fn save_record(&mut self, record: &RoundRecord) -> Result<()> {
        let json = serde_json::to_string(record)?;
        let r = record.round;
        self.store.tx(|tx| store::put_round(tx, r, &json))
    }

    /// Global ε after `rounds` rounds, and a client's after `k` rounds
    /// of its own among them (None: no DP).
    pub(super) fn epsilons(&self, rounds: u64, k: u64) -> Result<(Option<f64>, Option<f64>)> {
        if let (Some(p), Some(s)) = (&self.dp, &self.schedule) {
            let zs = s.granted().get(..rounds as usize).ok_or_else(|| {
                FedError::Integrity(format!("ε after {rounds} rounds, but fewer were granted"))
            })?;
            return Ok((
                Some(history_epsilon(&self.acct, p, zs, None)?),
                Some(history_epsilon(&self.acct, p, zs, Some(k))?),
            ));
        }
        Ok(match (&self.dp, &self.local_dp) {
            (Some(p), _) => (
                Some(p.epsilon_after(rounds)?),
                Some(p.client_epsilon_after(k)?),
            ),
            (None, Some(l)) => (
                Some(l.epsilon_after(rounds.saturating_mul(l.steps_per_round))?),
                Some(l.epsilon_after(k.saturating_mul(l.steps_per_round))?),
            ),
            (None, None) => (None, None),
        })
    }

    /// The DP settings of the `cumulative`-th round (`z`: its noise
    /// multiplier under a privacy schedule).
    pub(super) fn dp_settings(&self, cumulative: u64, z: Option<f64>) -> DpSettings {
        if let Some(l) = &self.local_dp {
            return l.ledger_settings(cumulative);
        }
        match &self.dp {
            Some(p) => p.ledger_settings_at(cumulative, z.unwrap_or(p.noise_multiplier)),
            None => DpSettings::no_dp(
                self.sizes.sampled as f64 / self.sizes.clients as f64,
                cumulative,
            ),
        }
    }

    pub(super) fn opened_entry(&self, rec: &RoundRecord) -> Result<EntryBody> {
        let mut parameters = BTreeMap::new();
        let mut put = |k: &str, v: ParamValue| {
            parameters.insert(k.to_string(), v);
        };
        let keys = match self.cfg.keys {
            KeysMode::Threshold => "threshold",
            KeysMode::KeyService => "key-service",
        };
        let p = &self.packing;
        put("federation", self.cfg.name.as_str().into());
        put("epoch", self.epoch.into());
        put("keys", keys.into());
        put(
            "model_hash",
            ParamValue::Hash(training::model_hash(&training::to_bytes(&self.global))),
        );
        put("packing.log_n", u64::from(p.log_n).into());
        put(
            "packing.q_bits",
            ParamValue::U64s(p.q_bits.iter().map(|&b| u64::from(b)).collect()),
        );
        put("packing.shift", u64::from(p.shift).into());
        put("packing.pack", u64::from(p.pack).into());
        put("packing.field_bits", u64::from(p.field_bits).into());
        put("packing.stat_sec_bits", u64::from(p.stat_sec_bits).into());
        put("quorum", (self.sizes.quorum as u64).into());
        put("threshold", (self.sizes.threshold as u64).into());
        put("strategy", self.cfg.strategy.kind.name().into());
        if let Some(d) = &self.dp {
            let z = rec.noise_multiplier.unwrap_or(d.noise_multiplier);
            put("dp.share_sigma", d.share_sigma_at(z).into());
            put("dp.gamma", d.gamma.into());
            put("dp.clip", d.clip.into());
        }
        if let Some(l) = &self.local_dp {
            put("local_dp.clip", f64::from(l.clip).into());
            put("local_dp.steps_per_round", l.steps_per_round.into());
        }
        let participants = rec
            .sampled
            .iter()
            .filter_map(|id| self.roster.by_id(id))
            .map(|e| Sha256::digest(e.kx_public.as_bytes()).into())
            .collect();
        Ok(EntryBody::RoundOpened(RoundOpened {
            parameters,
            participants,
            dp: self.dp_settings(rec.cumulative, rec.noise_multiplier),
        }))
    }

    pub(super) fn decode_upload(&self, round: u64, bytes: &[u8]) -> Result<Vec<SharedCiphertext>> {
        let len = SharedCiphertext::encoded_len(&self.params);
        if bytes.len() != len * self.packing.chunks {
            return Err(FedError::Protocol(format!(
                "upload of {} bytes, expected {}",
                bytes.len(),
                len * self.packing.chunks
            )));
        }
        let pieces: Vec<&[u8]> = bytes.chunks_exact(len).collect();
        super::upload::decode_ciphertexts(
            &self.params,
            &self.seeds(round),
            self.packing.shift,
            &pieces,
        )
    }

    /// The task of a sampled or active client in the current round.
    pub(super) fn round_task(&mut self, client: &str, known: u64) -> Result<Option<Task>> {
        let Some(st) = &self.round else {
            return Ok(None);
        };
        let rec = &st.record;
        match rec.state {
            RecordState::Collecting
                if rec.sampled.iter().any(|s| s == client) && !st.uploads.contains_key(client) =>
            {
                let bytes = training::to_bytes(&self.global);
                let noise_history = match &self.schedule {
                    Some(s) => s
                        .granted()
                        .get(..rec.cumulative as usize)
                        .ok_or_else(|| {
                            FedError::Integrity("the round was opened without a grant".into())
                        })?
                        .to_vec(),
                    None => Vec::new(),
                };
                Ok(Some(Task::Train(TrainTask {
                    round: rec.round,
                    model_hash: training::model_hash(&bytes),
                    model: self.global.clone(),
                    training: self.cfg.training.clone(),
                    quantization: st.quantizer.clone(),
                    chunks: self.packing.chunks as u32,
                    prox_mu: self.optimizer.prox_mu(),
                    noise_history,
                })))
            }
            RecordState::Decrypting
                if rec.active.iter().any(|s| s == client) && !st.shares.contains_key(client) =>
            {
                // Two phases: every member says it is ready, then shares
                // are asked for (a key holder releases for one set only).
                let is_ready = |m: &String| {
                    st.ready.contains(m)
                        || st.shares.contains_key(m)
                        || rec.answered.get(m) == Some(&rec.active)
                };
                let prepare = !is_ready(&client.to_string());
                if !prepare && !rec.active.iter().all(is_ready) {
                    return Ok(None); // wait for the others to be ready
                }
                let agg = rec
                    .aggregate
                    .as_ref()
                    .and_then(|a| a.index.map(|i| (i, a)))
                    .ok_or_else(|| FedError::NotReady("aggregate not logged".into()))?;
                let proof = self.ledger.entry_proof(agg.0)?;
                let size = proof.sth.tree_size;
                let consistency = if known > 0 && known < size {
                    Some(self.ledger.consistency_proof(known, size)?)
                } else {
                    None
                };
                let mut active: Vec<u64> = rec
                    .active
                    .iter()
                    .filter_map(|id| self.roster.by_id(id).map(|e| e.party_id))
                    .collect();
                active.sort_unstable();
                Ok(Some(Task::Decrypt(DecryptTask {
                    round: rec.round,
                    attempt: rec.attempt,
                    active,
                    aggregate_proof: proof,
                    inputs: agg.1.inputs.clone(),
                    consistency_proof: consistency,
                    chunks: self.packing.chunks as u32,
                    prepare,
                })))
            }
            _ => Ok(None),
        }
    }

    /// Opens the next round when the federation is ready for it.
    pub(super) fn maybe_open_round(&mut self) -> Result<()> {
        // A region's rounds are opened by the coordinator.
        if self.phase != Phase::Training || self.round.is_some() || self.region.is_some() {
            return Ok(());
        }
        if self.history.len() as u64 >= self.cfg.rounds || self.rounds_opened >= self.cfg.rounds {
            self.phase = Phase::Finished(format!("{} rounds done", self.history.len()));
            return self.persist_phase();
        }
        let now = self.now();
        let joined: Vec<String> = self
            .clients
            .keys()
            .filter(|id| !self.roster.is_revoked(id))
            .cloned()
            .collect();
        let first = self.rounds_opened == 0;
        let all_joined = joined.len() == self.roster.clients.len() - self.roster.revoked.len();
        if first && !all_joined {
            return Ok(()); // the first round waits for every enrolled client
        }
        // A round with nobody to train would only be aborted (and, with
        // DP, charged): wait for a live client, and say so once.
        let window = 2.0 * self.cfg.round_timeout_s;
        let live = self
            .clients
            .iter()
            .filter(|(id, c)| !self.roster.is_revoked(id) && now - c.last_seen <= window)
            .count();
        if live == 0 {
            if !self.said_idle {
                self.said_idle = true;
                tracing::warn!(
                    seconds = window,
                    round = self.rounds_opened + 1,
                    "no live client: no client was seen in the last {window} s; the next round \
                     opens when one is"
                );
            }
            return Ok(());
        }
        self.said_idle = false;
        let cumulative = self.rounds_opened + 1;
        let target = self
            .dp
            .as_ref()
            .map(|p| p.target_epsilon)
            .or(self.local_dp.as_ref().map(|l| l.target_epsilon));
        // Under a privacy schedule the round's noise is granted only if
        // every granted round plus this one stays within ε (committed with
        // the round below).
        let mut schedule = self.schedule.clone();
        let z = match &mut schedule {
            Some(s) => match s.grant()? {
                Some(z) => Some(z),
                None => {
                    self.phase = Phase::Finished(format!(
                        "privacy schedule spent: {} rounds, ε = {:.4}",
                        s.granted().len(),
                        s.epsilon_spent()
                    ));
                    tracing::info!(reason = ?self.phase, "federation finished");
                    return self.persist_phase();
                }
            },
            None => None,
        };
        let fixed_budget = if schedule.is_some() {
            None
        } else {
            target.zip(self.epsilons(cumulative, 0)?.0)
        };
        if let Some((target, eps)) = fixed_budget {
            if eps > target * (1.0 + 1e-9) {
                let spent = self.epsilons(self.rounds_opened, 0)?.0.unwrap_or(0.0);
                self.phase = Phase::Finished(format!(
                    "privacy budget exhausted: round {cumulative} would bring ε to {eps:.4} > {target} (spent {spent:.4})"
                ));
                tracing::warn!(reason = ?self.phase, "refusing a round");
                return self.persist_phase();
            }
        }
        // Poisson sampling of the eligible clients at rate q.
        let q = self.sizes.sampled as f64 / self.sizes.clients as f64;
        let mut rng = cipherflow_ring::sampler::secure_rng()?;
        let mut eligible = Vec::new();
        for id in &joined {
            let participations = self.clients.get(id).map_or(0, |c| c.participations);
            if let (Some(p), Some(budget)) =
                (&self.dp, self.dp.as_ref().and_then(|p| p.client_epsilon))
            {
                let after = match &schedule {
                    Some(s) => {
                        history_epsilon(&self.acct, p, s.granted(), Some(participations + 1))?
                    }
                    None => p.client_epsilon_after(participations + 1)?,
                };
                if after > budget * (1.0 + 1e-9) {
                    continue;
                }
            }
            eligible.push(id.clone());
        }
        if eligible.len() < self.sizes.quorum {
            self.phase = Phase::Finished(format!(
                "only {} clients within their privacy budgets, the quorum is {}",
                eligible.len(),
                self.sizes.quorum
            ));
            tracing::warn!(reason = ?self.phase, "refusing a round");
            return self.persist_phase();
        }
        let sampled: Vec<String> = if q >= 1.0 {
            eligible
        } else {
            eligible
                .into_iter()
                .filter(|_| ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < q)
                .collect()
        };
        let weight_reference = sampled
            .iter()
            .filter_map(|id| self.clients.get(id).map(|c| c.num_examples))
            .max()
            .unwrap_or(1) as f64;
        let round = self.store.latest_round()?.unwrap_or(0) + 1;
        let mut rec = RoundRecord::collecting(round, sampled, weight_reference, cumulative, z);
        let json = serde_json::to_string(&rec)?;
        let schedule_json = schedule.as_ref().map(serde_json::to_string).transpose()?;
        self.store.tx(|tx| {
            store::put_round(tx, round, &json)?;
            if let Some(t) = &schedule_json {
                store::set_meta(tx, META_DP_SCHEDULE, t.as_bytes())?;
            }
            store::set_meta(tx, META_ROUNDS_OPENED, cumulative.to_string().as_bytes())
        })?;
        self.rounds_opened = cumulative;
        self.schedule = schedule;
        if let Some(p) = &self.dp {
            let g = self
                .metrics
                .privacy
                .get_or_insert(crate::metrics::PrivacyGauges {
                    epsilon_budget: p.target_epsilon,
                    ..Default::default()
                });
            g.noise_multiplier = z.unwrap_or(p.noise_multiplier);
        }
        let body = self.opened_entry(&rec)?;
        rec.opened_index = Some(self.ledger.append(round, body)?.index);
        self.save_record(&rec)?;
        tracing::info!(round, sampled = rec.sampled.len(), "round opened");
        for c in self.clients.values_mut() {
            c.unresponsive = false;
        }
        let quantizer = self.quantizer_for(rec.weight_reference, rec.noise_multiplier);
        let too_few = rec.sampled.len() < self.sizes.quorum;
        self.round = Some(RoundState::new(rec, quantizer, now, 0.0, 0.0));
        if too_few {
            return self.abort_round("fewer clients sampled than the quorum", false);
        }
        Ok(())
    }

    /// Closes collection: logs the aggregate and its input set.
    pub(super) fn aggregate(&mut self) -> Result<()> {
        let Some(st) = &self.round else {
            return Ok(());
        };
        let round = st.record.round;
        let mut inputs: Vec<AggregateInput> = st
            .uploads
            .iter()
            .map(|(id, (h, _, idx))| {
                Ok(AggregateInput {
                    update_index: idx
                        .ok_or_else(|| FedError::NotReady("unlogged upload".into()))?,
                    client_id: id.clone(),
                    ciphertext_hash: *h,
                })
            })
            .collect::<Result<_>>()?;
        inputs.sort_by_key(|i| i.update_index);
        let mut h = Sha256::new();
        for ct in &st.sum {
            h.update(ct.to_bytes());
        }
        let agg_hash: [u8; 32] = h.finalize().into();
        let mut rec = st.record.clone();
        rec.state = RecordState::Decrypting;
        rec.aggregate = Some(AggregateRecord {
            index: None,
            hash: hex::encode(agg_hash),
            inputs: inputs.clone(),
        });
        self.save_record(&rec)?;
        let index = self.ledger.append_aggregate(round, agg_hash, inputs)?.index;
        if let Some(a) = &mut rec.aggregate {
            a.index = Some(index);
        }
        self.save_record(&rec)?;
        let now = self.now();
        if let Some(st) = &mut self.round {
            st.record = rec;
            st.decrypt_started = now;
        }
        tracing::info!(
            round,
            inputs = self.round.as_ref().map_or(0, |s| s.uploads.len()),
            "aggregate logged"
        );
        // A region's sum is forwarded, not decrypted.
        if self.cfg.keys == KeysMode::Threshold && self.region.is_none() {
            self.start_attempt()?;
        }
        Ok(())
    }

    /// Timeouts: closes collection at the deadline (quorum reached) or
    /// aborts a round that cannot reach it, retries decryption with other
    /// key holders, opens the next round. In key-service mode, returns the
    /// request to forward to the key service when one is due.
    pub fn tick(&mut self) -> Result<Option<KeyServiceDecrypt>> {
        if self.region.is_some() {
            self.region_tick()?;
            return Ok(None);
        }
        let now = self.now();
        let timeout = self.cfg.round_timeout_s;
        if self.round.is_none() {
            self.maybe_open_round()?;
            return Ok(None);
        }
        let Some(st) = &self.round else {
            return Ok(None);
        };
        match st.record.state {
            RecordState::Collecting => {
                let age = now - st.opened_at;
                if age >= timeout && st.uploads.len() >= self.sizes.quorum {
                    self.aggregate()?;
                } else if age >= 3.0 * timeout {
                    let n = st.uploads.len();
                    self.abort_round(
                        &format!("only {n} updates, the quorum is {}", self.sizes.quorum),
                        false,
                    )?;
                }
            }
            RecordState::Decrypting => match self.cfg.keys {
                KeysMode::Threshold => {
                    let give_up = 2.0 * timeout * f64::from(self.cfg.decrypt_attempts);
                    if now - st.decrypt_started >= give_up {
                        let why = format!(
                            "fewer than {} key holders answered within {} decryption attempts",
                            self.sizes.decryptors(),
                            self.cfg.decrypt_attempts
                        );
                        self.abort_round(&why, true)?;
                    } else if st.record.active.is_empty() {
                        self.start_attempt()?;
                    } else if now >= st.attempt_deadline {
                        let missing: Vec<String> = st
                            .record
                            .active
                            .iter()
                            .filter(|a| !st.shares.contains_key(*a) && !st.ready.contains(*a))
                            .cloned()
                            .collect();
                        for m in &missing {
                            if let Some(c) = self.clients.get_mut(m) {
                                c.unresponsive = true;
                            }
                        }
                        tracing::warn!(?missing, "decryptors did not answer; retrying with others");
                        if let Some(st) = &mut self.round {
                            st.record.active.clear();
                        }
                        self.start_attempt()?;
                    }
                }
                KeysMode::KeyService => {
                    let due = st.ks_requested_at.is_none_or(|t| now - t >= timeout);
                    if due {
                        let agg = st
                            .record
                            .aggregate
                            .as_ref()
                            .and_then(|a| a.index.map(|i| (i, a)))
                            .ok_or_else(|| FedError::NotReady("aggregate not logged".into()))?;
                        let entry_proof = self.ledger.entry_proof(agg.0)?;
                        let size = entry_proof.sth.tree_size;
                        let req = KeyServiceDecrypt {
                            federation: self.cfg.name.clone(),
                            round: st.record.round,
                            aggregate_proof: entry_proof,
                            inputs: agg.1.inputs.clone(),
                            consistency_proofs: self.key_service_consistency(size)?,
                            chunks: self.packing.chunks as u32,
                            crs: self.crs,
                            epoch: self.epoch,
                        };
                        if let Some(st) = &mut self.round {
                            st.ks_requested_at = Some(now);
                        }
                        self.note_key_service_head(size)?;
                        return Ok(Some(req));
                    }
                }
            },
            RecordState::Closed | RecordState::Aborted => {
                self.round = None;
                self.maybe_open_round()?;
            }
        }
        Ok(None)
    }

    /// Tree sizes of the heads sent to the key service (the last
    /// [`crate::keyservice::MAX_CONSISTENCY_PROOFS`]).
    fn key_service_heads(&self) -> Result<Vec<u64>> {
        Ok(match self.store.meta_text(super::META_KS_HEADS)? {
            Some(t) => serde_json::from_str(&t)?,
            None => Vec::new(),
        })
    }

    /// Consistency proofs to `size` from every head the key service may
    /// last have seen.
    fn key_service_consistency(&self, size: u64) -> Result<Vec<ConsistencyProof>> {
        self.key_service_heads()?
            .into_iter()
            .filter(|&s| s > 0 && s < size)
            .map(|s| {
                self.ledger
                    .consistency_proof(s, size)
                    .map_err(FedError::from)
            })
            .collect()
    }

    fn note_key_service_head(&mut self, size: u64) -> Result<()> {
        let mut heads = self.key_service_heads()?;
        if !heads.contains(&size) {
            heads.push(size);
        }
        let keep = crate::keyservice::MAX_CONSISTENCY_PROOFS;
        if heads.len() > keep {
            heads.drain(..heads.len() - keep);
        }
        let json = serde_json::to_string(&heads)?;
        self.store
            .tx(|tx| store::set_meta(tx, super::META_KS_HEADS, json.as_bytes()))
    }

    /// "My update was counted" proof for `client`'s update of a round.
    pub fn counted_proof(&mut self, client: &str, req: &ProofRequest) -> Result<ProofReply> {
        self.admit(client)?;
        self.check_federation(client, &req.federation)?;
        Ok(ProofReply {
            counted_proof: self.ledger.counted_proof_for(client, req.round)?,
        })
    }

    /// Contributors of the current round so far.
    pub fn current_uploads(&self) -> usize {
        self.round.as_ref().map_or(0, |s| s.uploads.len())
    }

    /// Updates still awaited in `round` while it collects (sampled clients
    /// that have not uploaded); `None` for another round or phase.
    pub fn pending_uploads(&self, round: u64) -> Option<usize> {
        self.round
            .as_ref()
            .filter(|s| s.record.round == round && s.record.state == RecordState::Collecting)
            .map(|s| s.record.sampled.len().saturating_sub(s.uploads.len()))
    }

    /// The clients asked to decrypt in the current attempt.
    pub fn current_active(&self) -> Vec<String> {
        self.round
            .as_ref()
            .map(|s| s.record.active.clone())
            .unwrap_or_default()
    }

    /// Key holders identified as lying about their decryption shares
    /// (checked decryption): never asked to decrypt again; revoke them in
    /// the roster.
    pub fn identified_liars(&self) -> Vec<String> {
        self.suspects.identified.iter().cloned().collect()
    }
}

pub(super) fn fold(sum: &mut Vec<SharedCiphertext>, cts: Vec<SharedCiphertext>) -> Result<()> {
    if sum.is_empty() {
        *sum = cts;
        return Ok(());
    }
    use rayon::prelude::*;
    if sum.len() != cts.len() {
        return Err(FedError::Protocol("sums of different chunk counts".into()));
    }
    sum.par_iter_mut()
        .zip(cts.par_iter())
        .try_for_each(|(s, c)| s.add_assign(c).map_err(FedError::from))
}

pub(super) fn parse_hash(h: &str) -> Result<[u8; 32]> {
    hex::decode(h)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| FedError::Encoding("stored hash".into()))
}
