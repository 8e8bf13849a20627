//! Decryption and closing: picking `t` online key holders and retrying
//! with others, validating and storing decryption shares (or the key
//! service's), combining them into the exact sum, the server optimizer
//! step, ε, the ledger's closing entry — and aborting a round that cannot
//! finish.

use super::round::{
    parse_hash, split_parts, ClosedRecord, RecordState, RoundRecord, RoundState, RoundSummary,
    SHARE_PART_CHUNKS,
};
use super::{Coordinator, META_GLOBAL, META_OPTIMIZER};
use crate::config::KeysMode;
use crate::error::{FedError, Result};
use crate::messages::{ShareChunk, ShareReceipt};
use crate::records::RoundAbortedRecord;
use crate::store;
use crate::training;
use cipherflow_ckks::multiparty::{
    combine_aggregate, is_checkable, AggregateShare, MultipartyError,
};
use cipherflow_ckks::CkksError;
use cipherflow_ledger::entry::{
    ClientEpsilon, DecryptionShareReceived, EntryBody, RoundClosed, KIND_ROUND_CLOSED,
};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

impl Coordinator {
    pub(super) fn decode_share(
        &self,
        st: &RoundState,
        client: &str,
        bytes: &[u8],
    ) -> Result<Vec<AggregateShare>> {
        let parts = split_parts(bytes)?;
        let n_parts = self.packing.chunks.div_ceil(SHARE_PART_CHUNKS);
        if parts.len() != n_parts {
            return Err(FedError::Protocol(format!(
                "{} share parts, expected {n_parts}",
                parts.len()
            )));
        }
        let seeds = self.seeds(st.record.round);
        let contributors = self.contributor_parties(st)?;
        let (party, active) = if self.cfg.keys == KeysMode::KeyService {
            (0, Vec::new())
        } else {
            let p = self.roster.admit(client)?.party_id;
            let mut a = st
                .record
                .active
                .iter()
                .map(|id| self.roster.by_id(id).map(|e| e.party_id))
                .collect::<Option<Vec<u64>>>()
                .ok_or_else(|| FedError::Protocol("active client not in roster".into()))?;
            a.sort_unstable();
            (p, a)
        };
        parts
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let s = AggregateShare::from_bytes(&self.params, b)?;
                let lo = i * SHARE_PART_CHUNKS;
                let hi = (lo + SHARE_PART_CHUNKS).min(seeds.len());
                let t = if self.cfg.keys == KeysMode::KeyService {
                    0
                } else {
                    self.sizes.threshold as u32
                };
                if s.party() != party
                    || s.threshold() != t
                    || s.active() != active.as_slice()
                    || s.contributors() != contributors.as_slice()
                    || s.seeds() != seeds.get(lo..hi).unwrap_or(&[])
                {
                    return Err(FedError::Protocol(
                        "decryption share for another party, set, round or chunk range".into(),
                    ));
                }
                Ok(s)
            })
            .collect()
    }

    pub(super) fn contributor_parties(&self, st: &RoundState) -> Result<Vec<u64>> {
        let agg = st
            .record
            .aggregate
            .as_ref()
            .ok_or_else(|| FedError::NotReady("no aggregate yet".into()))?;
        let mut v = agg
            .inputs
            .iter()
            .map(|i| self.roster.by_id(&i.client_id).map(|e| e.party_id))
            .collect::<Option<Vec<u64>>>()
            .ok_or_else(|| FedError::Protocol("contributor not in roster".into()))?;
        v.sort_unstable();
        Ok(v)
    }

    /// Picks the active set of the next decryption attempt and asks it for
    /// shares. A key holder gives shares for one active set per round
    /// (its clients refuse a second, see `client`), so an attempt either
    /// repeats a set asked before — whose members are all online and gave
    /// no share for another set — or takes online key holders that have
    /// not answered yet, responsive ones first, suspected liars last:
    /// `t + 1` with checkable ids for a checked decryption, else `t`. A
    /// checked federation falls back to `t` after one attempt window
    /// without `t + 1` holders online, unless `checked_decryption = true`
    /// requires the check.
    pub(super) fn start_attempt(&mut self) -> Result<()> {
        let now = self.now();
        // Online: seen within two timeouts (clients long-poll far more often).
        let window = 2.0 * self.cfg.round_timeout_s;
        let Some(st) = &self.round else {
            return Ok(());
        };
        let rec = &st.record;
        // Only key holders are asked; identified liars never, suspects last.
        let online: BTreeMap<&String, (bool, f64, u64)> = self
            .clients
            .iter()
            .filter(|(id, c)| {
                self.sizes.is_holder(c.party)
                    && !self.roster.is_revoked(id)
                    && !self.suspects.identified.contains(*id)
                    && now - c.last_seen <= window
            })
            .map(|(id, c)| (id, (c.unresponsive, c.last_seen, c.party)))
            .collect();
        let viable = |set: &Vec<String>, responsive: bool| {
            set.iter().all(|m| {
                online.get(m).is_some_and(|o| !(responsive && o.0))
                    && rec.answered.get(m).is_none_or(|a| a == set)
            })
        };
        // Fresh key holders: not suspected, then the ones that did not
        // leave a request of this round unanswered, first.
        let candidates = self.suspects.candidates();
        let mut fresh: Vec<(&String, &(bool, f64, u64))> = online
            .iter()
            .filter(|(id, _)| !rec.answered.contains_key(**id))
            .map(|(id, o)| (*id, o))
            .collect();
        fresh.sort_by(|a, b| {
            candidates
                .contains(a.0)
                .cmp(&candidates.contains(b.0))
                .then(a.1 .0.cmp(&b.1 .0))
                .then(b.1 .1.total_cmp(&a.1 .1))
                .then(a.1 .2.cmp(&b.1 .2))
        });
        let max_party = self.sizes.holders as u64;
        let pick = |size: usize, checked: bool| {
            let fresh_set = if checked {
                checkable_prefix(&fresh, size, max_party)
            } else {
                (fresh.len() >= size).then(|| {
                    fresh
                        .iter()
                        .take(size)
                        .map(|(id, _)| (*id).clone())
                        .collect()
                })
            };
            let fresh_responsive = fresh_set.as_ref().is_some_and(|set: &Vec<String>| {
                set.iter().all(|m| online.get(m).is_some_and(|o| !o.0))
            });
            let of_size = |set: &&Vec<String>| set.len() == size;
            rec.tried
                .iter()
                .rev()
                .filter(of_size)
                .find(|set| viable(set, true))
                .cloned()
                .or_else(|| fresh_set.clone().filter(|_| fresh_responsive))
                .or_else(|| {
                    rec.tried
                        .iter()
                        .rev()
                        .filter(of_size)
                        .find(|set| viable(set, false))
                        .cloned()
                })
                .or(fresh_set)
        };
        let t = self.sizes.threshold;
        let fallback = self.sizes.checked
            && self.cfg.checked_decryption != Some(true)
            && now - st.decrypt_started >= window;
        let active = if self.sizes.checked {
            pick(t + 1, true).or_else(|| {
                let plain = fallback.then(|| pick(t, false)).flatten();
                if plain.is_some() {
                    tracing::warn!(
                        round = rec.round,
                        "fewer than t + 1 key holders online: decrypting unchecked with t"
                    );
                }
                plain
            })
        } else {
            pick(t, false)
        };
        let Some(mut active) = active else {
            return Ok(()); // wait for key holders to come online
        };
        active.sort();
        let Some(st) = &mut self.round else {
            return Ok(());
        };
        st.record.attempt += 1;
        if !st.record.tried.contains(&active) {
            st.record.tried.push(active.clone());
        }
        st.record.active = active;
        st.shares.clear();
        st.ready.clear();
        st.attempt_deadline = now + window;
        let rec = st.record.clone();
        self.save_record(&rec)?;
        tracing::info!(round = rec.round, attempt = rec.attempt, active = ?rec.active, "decryption requested");
        Ok(())
    }

    /// Accepts a key holder's decryption share (all its parts). A refused
    /// share is logged and counted once in the metrics.
    pub fn send_share(&mut self, client: &str, parts: &[ShareChunk]) -> Result<ShareReceipt> {
        let before = self.metrics.refused;
        let r = self.check_and_store_share(client, parts);
        self.count_refusal(client, "decryption share", before, r)
    }

    fn check_and_store_share(
        &mut self,
        client: &str,
        parts: &[ShareChunk],
    ) -> Result<ShareReceipt> {
        self.admit(client)?;
        let first = parts
            .first()
            .ok_or_else(|| FedError::Protocol("empty share".into()))?;
        self.check_federation(client, &first.federation)?;
        let Some(st) = &self.round else {
            // A share for a round that closed (its sender's first copy was
            // accepted but the reply lost, or others answered first) is
            // final, not "try again": nothing will ever take it.
            if self.history.iter().any(|h| h.round >= first.round) {
                return Err(FedError::Replay(format!(
                    "share for round {}, which is closed",
                    first.round
                )));
            }
            return Err(FedError::NotReady("no round is open".into()));
        };
        let rec = &st.record;
        if rec.state != RecordState::Decrypting
            || first.round != rec.round
            || first.attempt != rec.attempt
        {
            return Err(FedError::Replay(format!(
                "share for round {} attempt {}, expected round {} attempt {}",
                first.round, first.attempt, rec.round, rec.attempt
            )));
        }
        if !rec.active.iter().any(|a| a == client) {
            return Err(FedError::Refused(format!(
                "{client} was not asked to decrypt"
            )));
        }
        if let [p] = parts {
            if p.ready {
                if !p.share.is_empty() || p.index != 0 || p.total != 1 {
                    return Err(FedError::Protocol("a ready answer carries no share".into()));
                }
                if let Some(st) = &mut self.round {
                    st.ready.insert(client.to_string());
                }
                return Ok(ShareReceipt {
                    accepted: true,
                    duplicate: false,
                });
            }
        }
        if parts.iter().any(|p| p.ready) {
            return Err(FedError::Protocol("a ready answer carries no share".into()));
        }
        let total = parts.len();
        if parts.iter().enumerate().any(|(i, p)| {
            p.index as usize != i
                || p.total as usize != total
                || p.round != first.round
                || p.attempt != first.attempt
        }) {
            return Err(FedError::Protocol("share parts out of order".into()));
        }
        let mut bytes = Vec::new();
        for p in parts {
            bytes.extend_from_slice(&(p.share.len() as u64).to_le_bytes());
            bytes.extend_from_slice(&p.share);
        }
        let hash: [u8; 32] = Sha256::digest(&bytes).into();
        if let Some((h, _)) = st.shares.get(client) {
            return if *h == hash {
                Ok(ShareReceipt {
                    accepted: true,
                    duplicate: true,
                })
            } else {
                Err(FedError::Replay(format!(
                    "{client} already sent a different share"
                )))
            };
        }
        let decoded = self.decode_share(st, client, &bytes)?;
        self.accept_share(client, hash, bytes, decoded)?;
        Ok(ShareReceipt {
            accepted: true,
            duplicate: false,
        })
    }

    pub(super) fn accept_share(
        &mut self,
        who: &str,
        hash: [u8; 32],
        bytes: Vec<u8>,
        parts: Vec<AggregateShare>,
    ) -> Result<()> {
        let Some(st) = &self.round else {
            return Ok(());
        };
        let (round, attempt) = (st.record.round, st.record.attempt);
        // Threshold mode: the holder answered this active set; recorded in
        // the same transaction as the share (one fsync).
        let mut rec = st.record.clone();
        let answered = self.cfg.keys == KeysMode::Threshold;
        if answered {
            rec.answered.insert(who.to_string(), rec.active.clone());
        }
        let rec_json = serde_json::to_string(&rec)?;
        self.store
            .save_blob(&store::share_blob(round, attempt, who), &bytes)?;
        self.store.tx(|tx| {
            store::insert_share(tx, round, attempt, who, &hash)?;
            if answered {
                store::put_round(tx, round, &rec_json)?;
            }
            Ok(())
        })?;
        let index = self
            .ledger
            .append(
                round,
                EntryBody::DecryptionShareReceived(DecryptionShareReceived {
                    party_id: who.to_string(),
                    share_hash: hash,
                }),
            )?
            .index;
        tracing::debug!(who, index, "decryption share logged");
        self.metrics.shares += 1;
        if let Some(c) = self.client_counters(who) {
            c.shares += 1;
        }
        let st = self
            .round
            .as_mut()
            .ok_or_else(|| FedError::NotReady("round vanished".into()))?;
        st.shares.insert(who.to_string(), (hash, parts));
        st.record.answered = rec.answered;
        let done = match self.cfg.keys {
            KeysMode::KeyService => true,
            KeysMode::Threshold => st.record.active.iter().all(|a| st.shares.contains_key(a)),
        };
        if done {
            self.close_round()?;
        }
        Ok(())
    }

    /// The key service's answer to [`Coordinator::tick`]'s request. A
    /// refused answer is logged and counted once in the metrics.
    pub fn key_service_share(&mut self, parts: &[ShareChunk]) -> Result<()> {
        let before = self.metrics.refused;
        let r = self.check_and_store_key_service_share(parts);
        self.count_refusal("key-service", "key-service share", before, r)
    }

    fn check_and_store_key_service_share(&mut self, parts: &[ShareChunk]) -> Result<()> {
        let Some(st) = &self.round else {
            return Err(FedError::NotReady("no round is open".into()));
        };
        if self.cfg.keys != KeysMode::KeyService || st.record.state != RecordState::Decrypting {
            return Err(FedError::Protocol(
                "no key-service decryption pending".into(),
            ));
        }
        if parts.first().map(|p| p.round) != Some(st.record.round) {
            return Err(FedError::Replay(
                "key-service share for another round".into(),
            ));
        }
        let mut bytes = Vec::new();
        for p in parts {
            bytes.extend_from_slice(&(p.share.len() as u64).to_le_bytes());
            bytes.extend_from_slice(&p.share);
        }
        let hash: [u8; 32] = Sha256::digest(&bytes).into();
        let decoded = self.decode_share(st, "key-service", &bytes)?;
        self.accept_share("key-service", hash, bytes, decoded)
    }

    pub(super) fn close_round(&mut self) -> Result<()> {
        let Some(st) = self.round.take() else {
            return Ok(());
        };
        let result = self.finish_round(&st);
        match result {
            Err(FedError::Verification(why)) => {
                // A key holder's share was wrong. Its contributors' budgets
                // are charged (shares of the sum were released); nothing is
                // published.
                self.metrics.refused += 1;
                tracing::warn!(round = st.record.round, %why, active = ?st.record.active, "decrypted sum failed its checks");
                let named = if self.sizes.checked {
                    self.note_suspects(&st.record.active, false)?
                } else {
                    None
                };
                self.round = Some(st);
                let who = match named {
                    Some(c) => format!(
                        "; key holder {c} is identified as the liar and is no longer asked to \
                         decrypt (revoke it in the roster)"
                    ),
                    None => String::new(),
                };
                self.abort_round(
                    &format!(
                        "the decrypted sum failed its checks ({why}): a key holder's share was wrong{who}"
                    ),
                    true,
                )
            }
            Err(e) => {
                self.round = Some(st);
                Err(e)
            }
            Ok(()) => {
                if self.sizes.checked {
                    self.note_suspects(&st.record.active, true)?;
                }
                Ok(())
            }
        }
    }

    /// Records a checked decryption's outcome for the liar hunt (see
    /// `suspects`), durably; returns a newly identified culprit.
    fn note_suspects(&mut self, active: &[String], passed: bool) -> Result<Option<String>> {
        let mut next = self.suspects.clone();
        let named = if passed {
            next.passed(active)
        } else {
            next.failed(active)
        };
        if next != self.suspects {
            let json = serde_json::to_string(&next)?;
            self.store
                .tx(|tx| store::set_meta(tx, super::META_SUSPECTS, json.as_bytes()))?;
            self.suspects = next;
        }
        if let Some(c) = &named {
            tracing::warn!(key_holder = %c, "identified as the key holder whose decryption shares were inconsistent; no longer asked to decrypt");
        }
        Ok(named)
    }

    pub(super) fn finish_round(&mut self, st: &RoundState) -> Result<()> {
        let round = st.record.round;
        let noise = self.packing.noise_log2();
        let mut totals: Vec<i64> = Vec::with_capacity(self.packing.chunks * self.packing.n());
        let n_parts = self.packing.chunks.div_ceil(SHARE_PART_CHUNKS);
        for p in 0..n_parts {
            let lo = p * SHARE_PART_CHUNKS;
            let hi = (lo + SHARE_PART_CHUNKS).min(st.sum.len());
            let shares: Vec<AggregateShare> = st
                .shares
                .values()
                .filter_map(|(_, parts)| parts.get(p).cloned())
                .collect();
            let sums = st
                .sum
                .get(lo..hi)
                .ok_or_else(|| FedError::Protocol("sum size".into()))?;
            let chunks =
                combine_aggregate(&self.params, sums, &shares, noise).map_err(|e| match e {
                    CkksError::Multiparty(MultipartyError::CheckFailed(why)) => {
                        FedError::Verification(why)
                    }
                    e => e.into(),
                })?;
            for chunk in chunks {
                totals.extend(chunk);
            }
        }
        let bound = crate::packing::coordinate_sum_bound(
            &self.cfg,
            self.dp.as_ref(),
            self.packing.dim,
            st.uploads.len(),
        );
        let totals = self.packing.unpack_checked(&totals, bound)?;
        if totals.len() != self.global.len() {
            return Err(FedError::Protocol("decrypted sum size".into()));
        }
        let weight_sum: f64 = st
            .uploads
            .values()
            .map(|(_, n, _)| st.quantizer.weight(*n))
            .sum();
        let mean = st.quantizer.decode_mean(&totals, weight_sum)?;
        let mut global = self.global.clone();
        let mut optimizer = self.optimizer.clone();
        optimizer.apply(&mut global, &mean)?;
        let contributors: Vec<String> = st.uploads.keys().cloned().collect();
        let bytes = training::to_bytes(&global);
        let model_hash = training::model_hash(&bytes);
        let epsilon = self.epsilons(st.record.cumulative, 0)?.0;
        let clients = self.charged_epsilons(&contributors, st.record.cumulative)?;
        let accuracy = match &self.eval {
            Some(d) => Some(training::evaluate(&mut self.model, &global, d)?),
            None => None,
        };
        // A privacy schedule reacts to the accuracy (committed with the round).
        let mut schedule = self.schedule.clone();
        if let (Some(s), Some(plan), Some(a)) = (&mut schedule, &self.dp, accuracy) {
            if s.observe(plan, f64::from(a))? {
                tracing::info!(
                    round,
                    remaining = s.remaining_rounds(),
                    "privacy schedule: accuracy plateaued, the remaining budget is spent over fewer, less noisy rounds"
                );
            }
        }
        let schedule_json = schedule.as_ref().map(serde_json::to_string).transpose()?;
        let summary = RoundSummary {
            round,
            sampled: st.record.sampled.len(),
            contributors: contributors.len(),
            decryptors: st.shares.len(),
            attempts: st.record.attempt.max(1),
            aborted: false,
            abort_reason: None,
            accuracy,
            epsilon,
            noise_multiplier: self.round_noise_multiplier(&st.record),
            seconds: st.started.elapsed().as_secs_f64(),
            upload_bytes: st.upload_bytes,
            model_hash: hex::encode(model_hash),
        };
        let mut rec = st.record.clone();
        rec.state = RecordState::Closed;
        rec.closed = Some(ClosedRecord {
            model_hash: hex::encode(model_hash),
            epsilon,
            clients,
        });
        let rec_json = serde_json::to_string(&rec)?;
        let sum_json = serde_json::to_string(&summary)?;
        let opt_json = optimizer.to_json()?;
        let keep = self.cfg.keep_uploads;
        self.store.tx(|tx| {
            store::put_round(tx, round, &rec_json)?;
            store::set_meta(tx, META_GLOBAL, &bytes)?;
            store::set_meta(tx, META_OPTIMIZER, opt_json.as_bytes())?;
            store::put_history(tx, round, &sum_json)?;
            store::add_participations(tx, &contributors)?;
            if let Some(t) = &schedule_json {
                store::set_meta(tx, super::META_DP_SCHEDULE, t.as_bytes())?;
            }
            if !keep {
                store::prune_uploads(tx, round)?;
            }
            Ok(())
        })?;
        self.schedule = schedule;
        if !keep {
            self.store.remove_round_blobs(round);
        }
        self.global = global;
        self.optimizer = optimizer;
        for id in &contributors {
            if let Some(c) = self.clients.get_mut(id) {
                c.participations += 1;
            }
        }
        self.count_participation(&st.record.sampled, &contributors);
        self.log_closed(&mut rec)?;
        if let Some(dir) = self.round_models.clone() {
            let path = dir.join(format!("round-{round:04}.safetensors"));
            if let Err(e) = self.write_model(&path) {
                tracing::error!(round, path = %path.display(), error = %e, "could not write the round's model");
            }
        }
        self.metrics.set_epsilon_spent(summary.epsilon);
        tracing::info!(round, contributors = summary.contributors, accuracy = ?summary.accuracy, epsilon = ?summary.epsilon, "round closed");
        self.history.push(summary);
        self.metrics.rounds += 1;
        self.maybe_open_round()
    }

    /// The noise multiplier of a round under client-level DP.
    fn round_noise_multiplier(&self, rec: &super::round::RoundRecord) -> Option<f64> {
        self.dp
            .as_ref()
            .map(|p| rec.noise_multiplier.unwrap_or(p.noise_multiplier))
    }

    /// Each of `ids` with its steps and ε once this round is charged to it
    /// (one more participation), for the closing ledger entry (`rounds`:
    /// the rounds opened so far, this one included).
    fn charged_epsilons(
        &self,
        ids: &[String],
        rounds: u64,
    ) -> Result<Vec<(String, u64, Option<f64>)>> {
        let steps = self.local_dp.as_ref().map_or(1, |l| l.steps_per_round);
        ids.iter()
            .map(|id| {
                let k = self.clients.get(id).map_or(0, |c| c.participations) + 1;
                Ok((id.clone(), k * steps, self.epsilons(rounds, k)?.1))
            })
            .collect()
    }

    /// Ends the round without a new model. `charge` (the sum was logged and
    /// shares of it may have been released): the contributors' budgets
    /// are charged as if it had closed.
    pub(super) fn abort_round(&mut self, why: &str, charge: bool) -> Result<()> {
        let Some(st) = self.round.take() else {
            return Ok(());
        };
        let round = st.record.round;
        let epsilon = self.epsilons(st.record.cumulative, 0)?.0;
        let hash = training::model_hash(&training::to_bytes(&self.global));
        let charged: Vec<String> = if charge {
            st.uploads.keys().cloned().collect()
        } else {
            Vec::new()
        };
        let clients = self.charged_epsilons(&charged, st.record.cumulative)?;
        let mut rec = st.record.clone();
        rec.state = RecordState::Aborted;
        rec.closed = Some(ClosedRecord {
            model_hash: hex::encode(hash),
            epsilon,
            clients,
        });
        let summary = RoundSummary {
            round,
            sampled: rec.sampled.len(),
            contributors: 0,
            decryptors: 0,
            attempts: rec.attempt,
            aborted: true,
            abort_reason: Some(why.to_string()),
            accuracy: None,
            epsilon,
            noise_multiplier: self.round_noise_multiplier(&st.record),
            seconds: st.started.elapsed().as_secs_f64(),
            upload_bytes: st.upload_bytes,
            model_hash: hex::encode(hash),
        };
        let rec_json = serde_json::to_string(&rec)?;
        let sum_json = serde_json::to_string(&summary)?;
        self.store.tx(|tx| {
            store::put_round(tx, round, &rec_json)?;
            store::put_history(tx, round, &sum_json)?;
            store::add_participations(tx, &charged)?;
            store::prune_uploads(tx, round)
        })?;
        self.store.remove_round_blobs(round);
        for id in &charged {
            if let Some(c) = self.clients.get_mut(id) {
                c.participations += 1;
            }
        }
        let joined: Vec<String> = st.uploads.keys().cloned().collect();
        self.count_participation(&st.record.sampled, &joined);
        self.ledger.append(
            round,
            EntryBody::Custom(
                RoundAbortedRecord {
                    round,
                    reason: why.to_string(),
                }
                .to_entry(),
            ),
        )?;
        self.log_closed(&mut rec)?;
        tracing::warn!(round, why, "round aborted");
        self.metrics.set_epsilon_spent(epsilon);
        self.history.push(summary);
        self.maybe_open_round()
    }

    pub(super) fn log_closed(&mut self, rec: &mut RoundRecord) -> Result<()> {
        let round = rec.round;
        let found = self.ledger.round_entries(round, KIND_ROUND_CLOSED)?;
        let index = match found.first() {
            Some(e) => e.index,
            None => {
                let c = rec
                    .closed
                    .as_ref()
                    .ok_or_else(|| FedError::Encoding("closed round without its record".into()))?;
                let body = EntryBody::RoundClosed(RoundClosed {
                    model_hash: parse_hash(&c.model_hash)?,
                    epsilon_global: c.epsilon.unwrap_or(f64::INFINITY),
                    clients: c
                        .clients
                        .iter()
                        .map(|(id, steps, e)| ClientEpsilon {
                            client_id: id.clone(),
                            steps: *steps,
                            epsilon: e.unwrap_or(f64::INFINITY),
                        })
                        .collect(),
                });
                self.ledger.append(round, body)?.index
            }
        };
        rec.closed_index = Some(index);
        self.save_record(rec)
    }
}

/// The first `t` of `fresh` (in order) whose party ids make a checkable
/// set, trying later holders in place of earlier ones when needed.
fn checkable_prefix(
    fresh: &[(&String, &(bool, f64, u64))],
    t: usize,
    max_party: u64,
) -> Option<Vec<String>> {
    if fresh.len() < t {
        return None;
    }
    let ids = |set: &[usize]| -> Vec<u64> {
        set.iter()
            .filter_map(|&i| fresh.get(i).map(|f| f.1 .2))
            .collect()
    };
    let mut set: Vec<usize> = (0..t).collect();
    if !is_checkable(&ids(&set), max_party) {
        // Swap one member for a later holder (two consecutive ids are
        // usually one swap away).
        let found = (0..t).rev().find_map(|slot| {
            (t..fresh.len()).find_map(|cand| {
                let mut s = set.clone();
                *s.get_mut(slot)? = cand;
                is_checkable(&ids(&s), max_party).then_some(s)
            })
        });
        set = found?;
    }
    Some(
        set.iter()
            .filter_map(|&i| fresh.get(i).map(|f| f.0.clone()))
            .collect(),
    )
}
