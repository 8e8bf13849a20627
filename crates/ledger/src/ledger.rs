//! The append-only log: [`Ledger`].

use crate::entry::{
    AggregateComputed, AggregateInput, Entry, EntryBody, UpdateReceived, KIND_UPDATE_RECEIVED,
    MAX_ENTRY_BYTES,
};
use crate::error::{Failure, LedgerError, Location, Problem};
use crate::merkle::{self, Hash};
use crate::proof::{ConsistencyProof, CountedProof, EntryProof, InclusionProof};
use crate::replay::{check_row, decode_inputs, Replay};
use crate::sth::{log_id, LogSigner, PublicKey, SignedTreeHead, TreeHead};
use crate::store::{EntryRow, HeadRow, InputRow, Store};
use std::path::Path;

/// Where a new entry landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Its index.
    pub index: u64,
    /// Its Merkle leaf hash.
    pub leaf_hash: Hash,
}

/// An entry to append.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// Round it belongs to.
    pub round: u64,
    /// Content. Use [`NewEntry::aggregate`] for aggregates.
    pub body: EntryBody,
    inputs: Option<Vec<AggregateInput>>,
}

impl NewEntry {
    /// Any entry but an aggregate.
    pub fn new(round: u64, body: EntryBody) -> Self {
        Self {
            round,
            body,
            inputs: None,
        }
    }

    /// An [`AggregateComputed`] entry whose `input_count` and `inputs_root`
    /// are computed from `inputs` (which are stored alongside the log so
    /// that clients can get membership proofs).
    pub fn aggregate(round: u64, aggregate_hash: Hash, inputs: Vec<AggregateInput>) -> Self {
        let body = EntryBody::AggregateComputed(AggregateComputed {
            aggregate_hash,
            input_count: inputs.len() as u64,
            inputs_root: crate::entry::inputs_root(&inputs),
        });
        Self {
            round,
            body,
            inputs: Some(inputs),
        }
    }
}

/// The audit log: an RFC 9162 Merkle tree over typed, hash-chained entries
/// in SQLite, with Ed25519-signed tree heads.
///
/// Opening recomputes every leaf hash from the stored bytes, replays the
/// hash chain and round rules, and checks the tree against the latest
/// signed head, so a log altered on disk fails to open with
/// [`LedgerError::Integrity`]. By default every append (single or batch)
/// signs a new head in the same durable transaction.
#[derive(Debug)]
pub struct Ledger {
    store: Store,
    name: String,
    log_id: Hash,
    public_key: PublicKey,
    signer: Option<LogSigner>,
    replay: Replay,
    latest_head: Option<SignedTreeHead>,
    next_head_seq: u64,
    auto_sign: bool,
    /// Wall clock in ms since the epoch (a field so that a unit test can
    /// set it behind the last entry, as a clock stepped back by NTP is).
    clock: fn() -> u64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

pub(crate) fn head_from_row(row: &HeadRow, log_id: &Hash) -> Result<SignedTreeHead, Failure> {
    let loc = Location::Head {
        seq: row.seq,
        tree_size: row.tree_size,
    };
    let root_hash: Hash = row
        .root_hash
        .as_slice()
        .try_into()
        .map_err(|_| Failure::at(loc, Problem::Storage("root hash is not 32 bytes".into())))?;
    let signature: [u8; 64] = row
        .signature
        .as_slice()
        .try_into()
        .map_err(|_| Failure::at(loc, Problem::Storage("signature is not 64 bytes".into())))?;
    Ok(SignedTreeHead {
        log_id: *log_id,
        tree_size: row.tree_size,
        root_hash,
        timestamp_ms: row.timestamp_ms,
        signature,
    })
}

/// Reads and checks the metadata; returns (name, log id, public key).
pub(crate) fn read_meta(store: &Store) -> Result<(String, Hash, PublicKey), LedgerError> {
    let meta_fail = |p: Problem| LedgerError::Integrity(Failure::at(Location::Meta, p));
    if let Err(why) = store.check_format()? {
        return Err(meta_fail(Problem::NotALedger(why)));
    }
    let meta = store
        .meta()?
        .ok_or_else(|| meta_fail(Problem::NotALedger("metadata missing".into())))?;
    let pk: [u8; 32] = meta
        .public_key
        .as_slice()
        .try_into()
        .map_err(|_| meta_fail(Problem::Storage("public key is not 32 bytes".into())))?;
    let public_key =
        PublicKey::from_bytes(&pk).map_err(|e| meta_fail(Problem::Storage(e.to_string())))?;
    let id = log_id(&public_key, &meta.name);
    if meta.log_id.as_slice() != id.as_slice() {
        return Err(meta_fail(Problem::LogIdMismatch));
    }
    Ok((meta.name, id, public_key))
}

/// Replays every stored entry (recomputing leaf hashes) into a [`Replay`],
/// calling `each` on every entry that passed.
pub(crate) fn replay_store(
    store: &Store,
    log_id: &Hash,
    mut each: impl FnMut(&Replay, &Entry) -> Result<(), Failure>,
) -> Result<Replay, LedgerError> {
    let mut replay = Replay::new(log_id);
    let mut input_rows = 0u64;
    store.for_each_entry(|row: EntryRow| -> Result<(), LedgerError> {
        let loc = Location::Entry {
            index: replay.len(),
        };
        if row.idx != replay.len() {
            return Err(Failure::at(loc, Problem::MissingEntry { found: row.idx }).into());
        }
        let (entry, leaf) = check_row(&row).map_err(|p| Failure::at(loc, p))?;
        let inputs = match entry.body {
            EntryBody::AggregateComputed(_) => {
                let rows = store.aggregate_inputs(row.idx)?;
                input_rows += rows.len() as u64;
                Some(decode_inputs(&rows).map_err(|p| Failure::at(loc, p))?)
            }
            _ => None,
        };
        replay
            .apply(&entry, leaf, inputs.as_deref())
            .map_err(|p| Failure::at(loc, p))?;
        each(&replay, &entry)?;
        Ok(())
    })?;
    if store.aggregate_input_count()? != input_rows {
        return Err(Failure::at(
            Location::Log,
            Problem::AggregateInputs("input rows that belong to no aggregate entry".into()),
        )
        .into());
    }
    Ok(replay)
}

impl Ledger {
    /// Creates a new log at `path` (which must not exist) named `name`, and
    /// signs its first (empty) tree head.
    pub fn create(path: &Path, name: &str, signer: LogSigner) -> Result<Self, LedgerError> {
        let public_key = signer.public_key();
        let id = log_id(&public_key, name);
        let replay = Replay::new(&id);
        let first = signer.sign(TreeHead {
            log_id: id,
            tree_size: 0,
            root_hash: replay.tree.root(),
            timestamp_ms: now_ms(),
        });
        let row = HeadRow {
            seq: 0,
            tree_size: 0,
            timestamp_ms: first.timestamp_ms,
            root_hash: first.root_hash.to_vec(),
            signature: first.signature.to_vec(),
        };
        let store = Store::create(path, name, &id, &public_key.to_bytes(), &row)?;
        Ok(Self {
            store,
            name: name.to_owned(),
            log_id: id,
            public_key,
            signer: Some(signer),
            replay,
            latest_head: Some(first),
            next_head_seq: 1,
            auto_sign: true,
            clock: now_ms,
        })
    }

    /// Opens a log for appending with its signing key, checking it fully.
    pub fn open(path: &Path, signer: LogSigner) -> Result<Self, LedgerError> {
        Self::open_inner(path, Some(signer))
    }

    /// Opens a log read-only (for proofs and display), checking it fully
    /// against the public key stored in it.
    pub fn open_read_only(path: &Path) -> Result<Self, LedgerError> {
        Self::open_inner(path, None)
    }

    fn open_inner(path: &Path, signer: Option<LogSigner>) -> Result<Self, LedgerError> {
        let store = Store::open(path, signer.is_some())?;
        store.begin_read()?;
        let checked = Self::check_all(&store, signer.as_ref());
        store.end_read()?;
        let (name, id, public_key, replay, sth, seq) = checked?;
        Ok(Self {
            store,
            name,
            log_id: id,
            public_key,
            signer,
            replay,
            latest_head: Some(sth),
            next_head_seq: seq + 1,
            auto_sign: true,
            clock: now_ms,
        })
    }

    /// Everything `open` checks, inside one read snapshot.
    #[allow(clippy::type_complexity)]
    fn check_all(
        store: &Store,
        signer: Option<&LogSigner>,
    ) -> Result<(String, Hash, PublicKey, Replay, SignedTreeHead, u64), LedgerError> {
        let (name, id, public_key) = read_meta(store)?;
        if let Some(s) = signer {
            if s.public_key() != public_key {
                return Err(LedgerError::KeyMismatch);
            }
        }
        let replay = replay_store(store, &id, |_, _| Ok(()))?;
        let row = store
            .latest_head()?
            .ok_or_else(|| Failure::at(Location::Log, Problem::NoHead))?;
        let sth = head_from_row(&row, &id)?;
        let loc = Location::Head {
            seq: row.seq,
            tree_size: row.tree_size,
        };
        public_key
            .verify_head(&sth, Some(&id))
            .map_err(|e| Failure::at(loc, e))?;
        if sth.tree_size > replay.len() {
            return Err(Failure::at(
                loc,
                Problem::HeadBeyondLog {
                    tree_size: sth.tree_size,
                    entries: replay.len(),
                },
            )
            .into());
        }
        if replay.tree.root_at(sth.tree_size)? != sth.root_hash {
            return Err(Failure::at(loc, Problem::RootMismatch).into());
        }
        Ok((name, id, public_key, replay, sth, row.seq))
    }

    /// Whether each append signs a new head (default `true`). When off,
    /// call [`sign_head`](Self::sign_head); entries after the last head are
    /// durable but not yet covered by a signature.
    pub fn set_auto_sign(&mut self, on: bool) {
        self.auto_sign = on;
    }

    /// Log name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Log id (see [`crate::sth::log_id`]).
    pub fn log_id(&self) -> Hash {
        self.log_id
    }

    /// The key that verifies this log's heads.
    pub fn public_key(&self) -> PublicKey {
        self.public_key
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.replay.len()
    }

    /// Whether the log has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Current root over all entries.
    pub fn root(&self) -> Hash {
        self.replay.tree.root()
    }

    /// The latest signed head.
    pub fn latest_head(&self) -> Option<&SignedTreeHead> {
        self.latest_head.as_ref()
    }

    /// Number of signed heads.
    pub fn head_count(&self) -> Result<u64, LedgerError> {
        self.store.head_count()
    }

    /// Entry `index`, decoded.
    pub fn entry(&self, index: u64) -> Result<Entry, LedgerError> {
        let bytes = self.entry_bytes(index)?;
        Entry::decode(&bytes).map_err(|e| Failure::at(Location::Entry { index }, e).into())
    }

    /// Canonical bytes of entry `index`.
    pub fn entry_bytes(&self, index: u64) -> Result<Vec<u8>, LedgerError> {
        if index >= self.len() {
            return Err(LedgerError::NoSuch(format!(
                "entry {index} (log has {})",
                self.len()
            )));
        }
        let bytes = self
            .store
            .entry(index)?
            .ok_or_else(|| LedgerError::NoSuch(format!("entry {index}")))?;
        // The file may have changed since it was opened; never hand out
        // bytes that are not the leaf the tree holds.
        if Some(merkle::leaf_hash(&bytes)) != self.replay.tree.leaf(index) {
            return Err(Failure::at(Location::Entry { index }, Problem::LeafHashMismatch).into());
        }
        Ok(bytes)
    }

    /// Appends one entry (durable when this returns).
    pub fn append(&mut self, round: u64, body: EntryBody) -> Result<Appended, LedgerError> {
        let mut v = self.append_batch(vec![NewEntry::new(round, body)])?;
        v.pop()
            .ok_or_else(|| LedgerError::Refused("nothing appended".into()))
    }

    /// Appends an aggregate over `inputs` (see [`NewEntry::aggregate`]).
    pub fn append_aggregate(
        &mut self,
        round: u64,
        aggregate_hash: Hash,
        inputs: Vec<AggregateInput>,
    ) -> Result<Appended, LedgerError> {
        let mut v = self.append_batch(vec![NewEntry::aggregate(round, aggregate_hash, inputs)])?;
        v.pop()
            .ok_or_else(|| LedgerError::Refused("nothing appended".into()))
    }

    /// Appends entries in one transaction: all or none, durable when this
    /// returns, with one signed head for the batch (if auto-signing).
    pub fn append_batch(&mut self, items: Vec<NewEntry>) -> Result<Vec<Appended>, LedgerError> {
        if self.signer.is_none() {
            return Err(LedgerError::ReadOnly);
        }
        self.replay.begin();
        match self.stage_and_write(items) {
            Ok(out) => {
                self.replay.commit();
                Ok(out)
            }
            Err(e) => {
                self.replay.rollback();
                Err(e)
            }
        }
    }

    fn stage_and_write(&mut self, items: Vec<NewEntry>) -> Result<Vec<Appended>, LedgerError> {
        let mut rows = Vec::with_capacity(items.len());
        let mut input_rows = Vec::new();
        let mut out = Vec::with_capacity(items.len());
        let ts = (self.clock)().max(self.replay.last_ts());
        for item in items {
            let index = self.replay.len();
            if matches!(item.body, EntryBody::AggregateComputed(_)) && item.inputs.is_none() {
                return Err(LedgerError::Refused(
                    "aggregates must be appended with their inputs (NewEntry::aggregate)".into(),
                ));
            }
            let entry = Entry {
                index,
                round: item.round,
                timestamp_ms: ts,
                prev_hash: self.replay.chain(),
                body: item.body,
            };
            let data = entry.encode();
            if data.len() > MAX_ENTRY_BYTES {
                return Err(LedgerError::Refused(format!(
                    "entry is {} bytes",
                    data.len()
                )));
            }
            let leaf = merkle::leaf_hash(&data);
            self.replay
                .apply(&entry, leaf, item.inputs.as_deref())
                .map_err(|p| LedgerError::Refused(p.to_string()))?;
            for (pos, inp) in item.inputs.iter().flatten().enumerate() {
                input_rows.push(InputRow {
                    aggregate_idx: index,
                    pos: pos as u64,
                    update_idx: inp.update_index,
                    data: inp.encode(),
                });
            }
            rows.push(EntryRow {
                idx: index,
                round: entry.round,
                kind: u64::from(entry.body.kind_tag()),
                data,
                leaf_hash: leaf.to_vec(),
            });
            out.push(Appended {
                index,
                leaf_hash: leaf,
            });
        }
        let head = if self.auto_sign {
            Some(self.make_head()?)
        } else {
            None
        };
        let head_row = head.as_ref().map(|h| self.head_row(h));
        self.store.append(&rows, &input_rows, head_row.as_ref())?;
        if let Some(h) = head {
            self.latest_head = Some(h);
            self.next_head_seq += 1;
        }
        Ok(out)
    }

    fn make_head(&self) -> Result<SignedTreeHead, LedgerError> {
        let signer = self.signer.as_ref().ok_or(LedgerError::ReadOnly)?;
        let ts = (self.clock)().max(self.latest_head.map_or(0, |h| h.timestamp_ms));
        Ok(signer.sign(TreeHead {
            log_id: self.log_id,
            tree_size: self.replay.len(),
            root_hash: self.replay.tree.root(),
            timestamp_ms: ts,
        }))
    }

    fn head_row(&self, h: &SignedTreeHead) -> HeadRow {
        HeadRow {
            seq: self.next_head_seq,
            tree_size: h.tree_size,
            timestamp_ms: h.timestamp_ms,
            root_hash: h.root_hash.to_vec(),
            signature: h.signature.to_vec(),
        }
    }

    /// Signs and stores a head over all current entries.
    pub fn sign_head(&mut self) -> Result<SignedTreeHead, LedgerError> {
        let h = self.make_head()?;
        let row = self.head_row(&h);
        self.store.append(&[], &[], Some(&row))?;
        self.latest_head = Some(h);
        self.next_head_seq += 1;
        Ok(h)
    }

    /// Inclusion proof of entry `index` in the tree of size `tree_size`.
    pub fn inclusion_proof(
        &self,
        index: u64,
        tree_size: u64,
    ) -> Result<InclusionProof, LedgerError> {
        Ok(InclusionProof {
            leaf_index: index,
            tree_size,
            path: self.replay.tree.inclusion_proof(index, tree_size)?,
        })
    }

    /// Consistency proof between tree sizes `old` and `new`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<ConsistencyProof, LedgerError> {
        Ok(ConsistencyProof {
            old_size: old,
            new_size: new,
            path: self.replay.tree.consistency_proof(old, new)?,
        })
    }

    /// Root over the first `tree_size` entries.
    pub fn root_at(&self, tree_size: u64) -> Result<Hash, LedgerError> {
        Ok(self.replay.tree.root_at(tree_size)?)
    }

    fn signed_head_covering(&self, index: u64) -> Result<SignedTreeHead, LedgerError> {
        match self.latest_head {
            Some(h) if h.tree_size > index => Ok(h),
            _ => Err(LedgerError::NoSuch(format!(
                "entry {index} is not covered by a signed head yet"
            ))),
        }
    }

    /// Self-contained proof that entry `index` is in the log, against the
    /// latest signed head; verify with [`EntryProof::verify`].
    pub fn entry_proof(&self, index: u64) -> Result<EntryProof, LedgerError> {
        let sth = self.signed_head_covering(index)?;
        Ok(EntryProof {
            sth,
            entry: self.entry_bytes(index)?,
            inclusion: self.inclusion_proof(index, sth.tree_size)?,
        })
    }

    /// Every entry of `round` of the given kind tag (see [`crate::entry`]'s
    /// `KIND_*`), in log order, decoded.
    pub fn round_entries(&self, round: u64, kind: u16) -> Result<Vec<Entry>, LedgerError> {
        self.store
            .entries_in_round(round, kind)?
            .into_iter()
            .map(|(idx, bytes)| {
                Entry::decode(&bytes).map_err(|d| {
                    LedgerError::Integrity(Failure::at(
                        Location::Entry { index: idx },
                        Problem::Decode(d),
                    ))
                })
            })
            .collect()
    }

    /// Index of the update `client_id` sent in `round`.
    pub fn find_update(&self, client_id: &str, round: u64) -> Result<u64, LedgerError> {
        for (idx, bytes) in self.store.entries_in_round(round, KIND_UPDATE_RECEIVED)? {
            if let Ok(Entry {
                body: EntryBody::UpdateReceived(UpdateReceived { client_id: c, .. }),
                ..
            }) = Entry::decode(&bytes)
            {
                if c == client_id {
                    return Ok(idx);
                }
            }
        }
        Err(LedgerError::NoSuch(format!(
            "no update from client {client_id:?} in round {round}"
        )))
    }

    /// "My update was counted": proof that update entry `update_index` is
    /// in the log and among the inputs of an aggregate entry, against the
    /// latest signed head. Verify with [`CountedProof::verify`].
    pub fn counted_proof(&self, update_index: u64) -> Result<CountedProof, LedgerError> {
        let (agg, pos) = self
            .store
            .aggregate_containing(update_index)?
            .ok_or_else(|| {
                LedgerError::NoSuch(format!("entry {update_index} is in no aggregate"))
            })?;
        let sth = self.signed_head_covering(agg)?;
        let loc = Location::Entry { index: agg };
        let inputs =
            decode_inputs(&self.store.aggregate_inputs(agg)?).map_err(|p| Failure::at(loc, p))?;
        let leaves: Vec<Hash> = inputs.iter().map(AggregateInput::leaf_hash).collect();
        let input = usize::try_from(pos)
            .ok()
            .and_then(|p| inputs.get(p))
            .cloned()
            .ok_or_else(|| LedgerError::NoSuch(format!("input {pos} of aggregate {agg}")))?;
        Ok(CountedProof {
            sth,
            update_entry: self.entry_bytes(update_index)?,
            update_inclusion: self.inclusion_proof(update_index, sth.tree_size)?,
            aggregate_entry: self.entry_bytes(agg)?,
            aggregate_inclusion: self.inclusion_proof(agg, sth.tree_size)?,
            input,
            input_position: pos,
            input_path: merkle::inclusion_path_of(&leaves, pos)?,
        })
    }

    /// [`counted_proof`](Self::counted_proof) for the update `client_id` sent in `round`.
    pub fn counted_proof_for(
        &self,
        client_id: &str,
        round: u64,
    ) -> Result<CountedProof, LedgerError> {
        self.counted_proof(self.find_update(client_id, round)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::CustomEntry;
    use crate::verify::{verify_log, VerifyOptions};

    fn note(i: u8) -> EntryBody {
        EntryBody::Custom(CustomEntry {
            kind: "note".into(),
            data: vec![i],
        })
    }

    /// A clock stepped back (NTP, a VM restored from a snapshot) must not
    /// write an entry or head dated before the previous one: the log would
    /// refuse it, and the offline verifier would reject the file.
    #[test]
    fn a_clock_behind_the_last_entry_does_not_date_entries_backwards() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.db");
        let signer = LogSigner::from_seed(&[5; 32]);
        let key = signer.public_key();
        let mut log = Ledger::create(&path, "clock", signer).unwrap();
        let first = log.append(0, note(0)).unwrap().index;
        let t0 = log.entry(first).unwrap().timestamp_ms;
        let head0 = log.latest_head().unwrap().timestamp_ms;
        log.clock = || 1;
        let a = log.append(0, note(1)).unwrap();
        let e = log.entry(a.index).unwrap();
        assert_eq!(e.timestamp_ms, t0, "held at the previous entry's time");
        assert_eq!(log.latest_head().unwrap().timestamp_ms, head0);
        log.append_batch(vec![NewEntry::new(0, note(2)), NewEntry::new(0, note(3))])
            .unwrap();
        drop(log);
        let report = verify_log(&path, &key, &VerifyOptions::default()).unwrap();
        assert_eq!(report.entries, 4);
    }
}
