//! Resuming after a restart: the current round is rebuilt from the stored
//! uploads and shares (each checked against its recorded hash first), and
//! every ledger entry the state recorded but the ledger lacks is written —
//! once.

use super::round::{fold, parse_hash, RecordState, RoundRecord, RoundState};
use super::Coordinator;
use crate::error::{FedError, Result};
use crate::store::{self, ShareRow};
use cipherflow_ledger::entry::{
    DecryptionShareReceived, EntryBody, UpdateReceived, KIND_AGGREGATE_COMPUTED,
    KIND_DECRYPTION_SHARE, KIND_ROUND_OPENED,
};

impl Coordinator {
    /// Rebuilds the current round after a restart and writes any ledger
    /// entry that the state recorded but the ledger lacks.
    pub(super) fn resume_round(&mut self) -> Result<()> {
        let Some(r) = self.store.latest_round()? else {
            return Ok(());
        };
        let json = self.store.round(r)?.unwrap_or_default();
        let mut rec: RoundRecord = serde_json::from_str(&json)?;
        if rec.opened_index.is_none() {
            let found = self.ledger.round_entries(r, KIND_ROUND_OPENED)?;
            rec.opened_index = Some(match found.first() {
                Some(e) => e.index,
                None => {
                    let body = self.opened_entry(&rec)?;
                    self.ledger.append(r, body)?.index
                }
            });
            self.save_record(&rec)?;
        }
        if matches!(rec.state, RecordState::Closed | RecordState::Aborted) {
            // A region logs no closing: the coordinator closes the round.
            if rec.closed_index.is_none() && self.region.is_none() {
                self.log_closed(&mut rec)?;
            }
            return Ok(());
        }
        let quantizer = self.quantizer_for(rec.weight_reference, rec.noise_multiplier);
        let now = self.now();
        let mut st = RoundState::new(rec, quantizer, now, now + self.cfg.round_timeout_s, now);
        let rows = match self.store.uploads(r) {
            Ok(rows) => rows,
            Err(FedError::Integrity(why)) => {
                // A damaged payload is never summed: the round stops, the
                // ledger says why, and the federation goes on.
                let charge = st.record.state == RecordState::Decrypting;
                tracing::error!(round = r, %why, "stored upload damaged");
                self.round = Some(st);
                return self.abort_round(&format!("stored data damaged: {why}"), charge);
            }
            Err(e) => return Err(e),
        };
        for row in rows {
            if let Some(region) = st.record.regions.get(&row.client_id).cloned() {
                // A regional sum: its contributors are counted, not the row.
                let bytes = row.bytes.ok_or_else(|| {
                    FedError::Encoding("an open round's regional sum was pruned".into())
                })?;
                fold(&mut st.sum, self.decode_upload(r, &bytes)?)?;
                st.upload_bytes += bytes.len() as u64;
                let (indices, region) = self.reconcile_region(r, &row.client_id, &region)?;
                for ((client, hash, examples), index) in
                    region.contributors()?.into_iter().zip(indices)
                {
                    st.uploads.insert(client, (hash, examples, Some(index)));
                }
                st.record.regions.insert(row.client_id, region);
                continue;
            }
            let index = match row.ledger_index {
                Some(i) => i,
                None => {
                    let i = match self.ledger.find_update(&row.client_id, r) {
                        Ok(i) => i,
                        Err(_) => {
                            self.ledger
                                .append(
                                    r,
                                    EntryBody::UpdateReceived(UpdateReceived {
                                        client_id: row.client_id.clone(),
                                        ciphertext_hash: row.hash,
                                    }),
                                )?
                                .index
                        }
                    };
                    let c = row.client_id.clone();
                    self.store.tx(|tx| store::set_upload_index(tx, r, &c, i))?;
                    i
                }
            };
            let bytes = row
                .bytes
                .ok_or_else(|| FedError::Encoding("an open round's upload was pruned".into()))?;
            let cts = self.decode_upload(r, &bytes)?;
            st.upload_bytes += bytes.len() as u64;
            fold(&mut st.sum, cts)?;
            st.uploads
                .insert(row.client_id, (row.hash, row.num_examples, Some(index)));
        }
        if let Some(agg) = &mut st.record.aggregate {
            if agg.index.is_none() {
                let found = self.ledger.round_entries(r, KIND_AGGREGATE_COMPUTED)?;
                agg.index = Some(match found.first() {
                    Some(e) => e.index,
                    None => {
                        let h = parse_hash(&agg.hash)?;
                        self.ledger
                            .append_aggregate(r, h, agg.inputs.clone())?
                            .index
                    }
                });
            }
        }
        let rows = match self.store.shares(r, st.record.attempt) {
            Ok(rows) => rows,
            Err(FedError::Integrity(why)) => {
                tracing::error!(round = r, %why, "stored decryption share damaged");
                self.round = Some(st);
                return self.abort_round(&format!("stored data damaged: {why}"), true);
            }
            Err(e) => return Err(e),
        };
        let logged = self.ledger.round_entries(r, KIND_DECRYPTION_SHARE)?;
        for row in rows {
            self.reconcile_share(r, st.record.attempt, &row, &logged)?;
            let parts = self.decode_share(&st, &row.client_id, &row.bytes)?;
            st.shares.insert(row.client_id, (row.hash, parts));
        }
        let rec = st.record.clone();
        self.round = Some(st);
        self.save_record(&rec)?;
        tracing::info!(round = r, state = ?rec.state, uploads = self.round.as_ref().map_or(0, |s| s.uploads.len()), "round resumed");
        Ok(())
    }

    pub(super) fn reconcile_share(
        &mut self,
        r: u64,
        attempt: u32,
        row: &ShareRow,
        logged: &[cipherflow_ledger::Entry],
    ) -> Result<()> {
        if row.ledger_index.is_some() {
            return Ok(());
        }
        let found = logged.iter().find(|e| {
            matches!(&e.body, EntryBody::DecryptionShareReceived(d)
                if d.party_id == row.client_id && d.share_hash == row.hash)
        });
        let i = match found {
            Some(e) => e.index,
            None => {
                self.ledger
                    .append(
                        r,
                        EntryBody::DecryptionShareReceived(DecryptionShareReceived {
                            party_id: row.client_id.clone(),
                            share_hash: row.hash,
                        }),
                    )?
                    .index
            }
        };
        let c = row.client_id.clone();
        self.store
            .tx(|tx| store::set_share_index(tx, r, attempt, &c, i))
    }
}
