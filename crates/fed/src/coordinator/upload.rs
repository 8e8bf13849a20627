//! Accepting updates, committed in groups. A batch of uploads — those that
//! arrived while the previous batch was being made durable — is checked one
//! upload at a time (a refused upload refuses that upload only); each
//! accepted one is written to the batch's segment file and added to the
//! batch's own sum at once, so a batch holds one sum in memory, not its
//! uploads. Then the batch is made durable together: the segment (one
//! fsync, and one of the directory), one state transaction, one ledger
//! batch under one signed head. Only then is the batch's sum added to the
//! round's and every upload acknowledged, each receipt with its own entry
//! proof. A storage failure fails the whole batch, none of it acknowledged
//! nor summed.

use super::round::{fold, RecordState};
use super::Coordinator;
use crate::error::{FedError, Result};
use crate::messages::{UploadChunk, UploadReceipt};
use crate::store::{self, SegmentRange, SegmentWriter};
use cipherflow_ckks::multiparty::SharedCiphertext;
use cipherflow_ckks::CkksParams;
use cipherflow_ledger::entry::{EntryBody, UpdateReceived};
use cipherflow_ledger::NewEntry;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

/// An upload that passed every check, not yet durable.
struct Accepted {
    client: String,
    hash: [u8; 32],
    cts: Vec<SharedCiphertext>,
    num_examples: u64,
}

/// What a batch accepted so far: its segment, its sum, its uploads.
struct Batch {
    writer: SegmentWriter,
    sum: Vec<SharedCiphertext>,
    items: Vec<(usize, Accepted, SegmentRange)>,
}

enum Checked {
    /// A byte-identical resend of an accepted upload: its receipt again.
    Duplicate(UploadReceipt),
    New(Accepted),
}

/// One upload of a batch: the client (authenticated by the transport) and
/// its chunks.
pub type UploadItem<'a> = (&'a str, &'a [UploadChunk]);

impl Coordinator {
    /// Accepts a client's update (all its chunks, in order): a batch of one.
    /// A refused upload is logged and counted once in the metrics.
    pub fn upload(&mut self, client: &str, chunks: &[UploadChunk]) -> Result<UploadReceipt> {
        self.upload_batch(&[(client, chunks)])?
            .pop()
            .ok_or_else(|| FedError::Protocol("an empty batch result".into()))?
    }

    /// Accepts a batch of updates with one group commit; returns each
    /// upload's receipt or refusal, in order. The outer error is a storage
    /// failure: then nothing of the batch was acknowledged.
    pub fn upload_batch(&mut self, batch: &[UploadItem<'_>]) -> Result<Vec<Result<UploadReceipt>>> {
        let mut results: Vec<Option<Result<UploadReceipt>>> = Vec::with_capacity(batch.len());
        let mut open: Option<Batch> = None;
        for (i, (client, chunks)) in batch.iter().enumerate() {
            let before = self.metrics.refused;
            let in_batch = open
                .as_ref()
                .is_some_and(|b| b.items.iter().any(|(_, a, _)| a.client == *client));
            let r = if in_batch {
                // A resend that overtook its own commit: the first copy's
                // receipt answers the next resend.
                Err(FedError::NotReady(format!(
                    "an upload of {client} is being committed; send it again"
                )))
            } else {
                self.check_upload(client, chunks)
            };
            match r {
                Ok(Checked::Duplicate(receipt)) => results.push(Some(Ok(receipt))),
                Ok(Checked::New(mut a)) => {
                    let b = match &mut open {
                        Some(b) => b,
                        None => open.insert(self.open_batch()?),
                    };
                    let pieces: Vec<&[u8]> =
                        chunks.iter().map(|c| c.ciphertext.as_slice()).collect();
                    let at = b.writer.append(&pieces)?;
                    fold(&mut b.sum, std::mem::take(&mut a.cts))?;
                    b.items.push((i, a, at));
                    results.push(None);
                }
                Err(e) => results.push(Some(self.count_refusal(client, "upload", before, Err(e)))),
            }
        }
        if let Some(b) = open {
            for (slot, receipt) in self.commit_batch(b)? {
                if let Some(r) = results.get_mut(slot) {
                    *r = Some(Ok(receipt));
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.ok_or_else(|| FedError::Protocol("an upload left unanswered".into())))
            .collect()
    }

    /// Every check of one upload, against the round and the uploads
    /// already accepted; nothing is stored.
    fn check_upload(&mut self, client: &str, chunks: &[UploadChunk]) -> Result<Checked> {
        self.admit(client)?;
        let first = chunks
            .first()
            .ok_or_else(|| FedError::Protocol("empty upload".into()))?;
        self.check_federation(client, &first.federation)?;
        let round = first.round;
        let Some(st) = &self.round else {
            if self.history.iter().any(|h| h.round >= round) {
                return Err(FedError::Replay(format!(
                    "upload for round {round}, which is closed"
                )));
            }
            return Err(FedError::NotReady("no round is open".into()));
        };
        if self.region.is_some() && round > st.record.round {
            // The coordinator opened a round this region has not yet
            // followed: the client retries.
            return Err(FedError::NotReady(format!(
                "this region has not opened round {round} yet"
            )));
        }
        if st.record.round != round {
            return Err(FedError::Replay(format!(
                "upload for round {round}, the current round is {}",
                st.record.round
            )));
        }
        if !st.record.sampled.iter().any(|s| s == client) {
            return Err(FedError::Refused(format!(
                "{client} was not sampled in round {round}"
            )));
        }
        // A client uploads where the roster sends it: its region, or here.
        let assigned = self.roster.by_id(client).and_then(|c| c.region.as_deref());
        if assigned != self.region.as_deref() {
            return Err(FedError::Refused(match assigned {
                Some(r) => format!("{client} uploads through region {r}"),
                None => format!("{client} uploads to the coordinator, not to a region"),
            }));
        }
        let total = self.packing.chunks;
        let ok_shape = chunks.len() == total
            && chunks.iter().enumerate().all(|(i, c)| {
                c.index as usize == i
                    && c.total as usize == total
                    && c.round == round
                    && c.num_examples == first.num_examples
                    && c.federation == first.federation
            });
        if !ok_shape {
            return Err(FedError::Protocol(format!(
                "an upload is {total} chunks numbered 0..{total} of one round"
            )));
        }
        // The SHA-256 of the concatenated chunks (without concatenating)
        // beside the chunks' decoding, in parallel; a resend is decoded for
        // nothing, a new upload hashed and decoded at once.
        let (params, shift, seeds) = (&self.params, self.packing.shift, self.seeds(round));
        let (hash, decoded) = rayon::join(
            || {
                let mut h = Sha256::new();
                for c in chunks {
                    h.update(&c.ciphertext);
                }
                <[u8; 32]>::from(h.finalize())
            },
            || {
                let pieces: Vec<&[u8]> = chunks.iter().map(|c| c.ciphertext.as_slice()).collect();
                decode_ciphertexts(params, &seeds, shift, &pieces)
            },
        );
        if let Some((h, _, idx)) = st.uploads.get(client) {
            if *h == hash {
                let proof = match idx {
                    Some(i) => Some(self.ledger.entry_proof(*i)?),
                    None => None,
                };
                return Ok(Checked::Duplicate(UploadReceipt {
                    ledger_index: idx.unwrap_or(0),
                    entry_proof: proof,
                    duplicate: true,
                }));
            }
            return Err(FedError::Replay(format!(
                "{client} already uploaded in round {round}"
            )));
        }
        if st.record.state != RecordState::Collecting {
            return Err(FedError::Refused(format!(
                "round {round} no longer collects updates"
            )));
        }
        Ok(Checked::New(Accepted {
            client: client.to_string(),
            hash,
            cts: decoded?,
            num_examples: first.num_examples.min(1 << 40),
        }))
    }

    /// A batch's segment, named after the round's upload count (a segment
    /// left by a batch that never committed is overwritten).
    fn open_batch(&self) -> Result<Batch> {
        let st = self
            .round
            .as_ref()
            .ok_or_else(|| FedError::NotReady("no round is open".into()))?;
        let name = store::upload_segment(st.record.round, st.uploads.len());
        Ok(Batch {
            writer: self.store.segment_writer(&name)?,
            sum: Vec::new(),
            items: Vec::new(),
        })
    }

    /// Makes a batch durable (segment, state rows, ledger entries), then
    /// adds its sum to the round's; closes collection when the last sampled
    /// client's update arrived. Returns each upload's slot and receipt.
    fn commit_batch(&mut self, b: Batch) -> Result<Vec<(usize, UploadReceipt)>> {
        let Batch { writer, sum, items } = b;
        let round = self
            .round
            .as_ref()
            .ok_or_else(|| FedError::NotReady("no round is open".into()))?
            .record
            .round;
        writer.finish()?;
        self.store.tx(|tx| {
            for (_, a, at) in &items {
                store::insert_upload(tx, round, &a.client, &a.hash, a.num_examples, at)?;
            }
            Ok(())
        })?;
        // The indices are not written back to the state (one fsync less
        // per batch): after a restart they are found in the ledger.
        let appended = self.ledger.append_batch(
            items
                .iter()
                .map(|(_, a, _)| {
                    NewEntry::new(
                        round,
                        EntryBody::UpdateReceived(UpdateReceived {
                            client_id: a.client.clone(),
                            ciphertext_hash: a.hash,
                        }),
                    )
                })
                .collect(),
        )?;
        self.metrics.upload_commits += 1;
        let now = self.now();
        let st = self
            .round
            .as_mut()
            .ok_or_else(|| FedError::NotReady("round vanished".into()))?;
        fold(&mut st.sum, sum)?;
        let latency = (now - st.opened_at).max(0.0);
        let mut done = Vec::with_capacity(items.len());
        for ((slot, a, at), entry) in items.into_iter().zip(appended) {
            st.upload_bytes += at.len;
            st.uploads.insert(
                a.client.clone(),
                (a.hash, a.num_examples, Some(entry.index)),
            );
            done.push((slot, a.client, at.len, entry.index));
        }
        let mut receipts = Vec::with_capacity(done.len());
        for (slot, client, size, index) in done {
            self.metrics.uploads += 1;
            self.metrics.upload_bytes += size;
            if let Some(c) = self.client_counters(&client) {
                c.joined += 1;
                c.upload_bytes += size;
                c.upload_latency_sum += latency;
                c.upload_latency_count += 1;
            }
            tracing::debug!(client = %client, round, index, "update accepted");
            receipts.push((
                slot,
                UploadReceipt {
                    ledger_index: index,
                    entry_proof: Some(self.ledger.entry_proof(index)?),
                    duplicate: false,
                },
            ));
        }
        if self.collection_complete() {
            self.aggregate()?;
        }
        Ok(receipts)
    }
}

/// One ciphertext per piece (an upload's chunk, or a stored upload's
/// slice), each for this round's seed (`seeds`, one per piece) and shift;
/// decoded in parallel.
pub(super) fn decode_ciphertexts(
    params: &CkksParams,
    seeds: &[[u8; 32]],
    shift: u32,
    pieces: &[&[u8]],
) -> Result<Vec<SharedCiphertext>> {
    let len = SharedCiphertext::encoded_len(params);
    if pieces.len() != seeds.len() || pieces.iter().any(|c| c.len() != len) {
        return Err(FedError::Protocol(format!(
            "an upload is {} chunks of one {len}-byte ciphertext each",
            seeds.len()
        )));
    }
    pieces
        .par_iter()
        .zip(seeds.par_iter())
        .map(|(c, seed)| {
            let ct = SharedCiphertext::from_bytes(params, c)?;
            if ct.seed() != seed || ct.shift() != shift {
                return Err(FedError::Protocol(
                    "ciphertext made for another round, chunk or shift".into(),
                ));
            }
            Ok(ct)
        })
        .collect()
}
