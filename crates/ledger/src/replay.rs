//! Sequential checks shared by appending, opening and verifying: the hash
//! chain, timestamps, round rules and aggregate inputs, feeding the Merkle
//! tree as it goes.
//!
//! Round rules: a round is opened once, with a number larger than every
//! round opened before; updates, decryption shares and aggregates belong
//! to an open round; a client sends at most one update per round; every
//! aggregate input names an update of the same round (index, client and
//! hash), in increasing index order, and the list's Merkle root and count
//! are the ones in the aggregate entry; closing ends the round.

use crate::entry::{genesis_hash, inputs_root, AggregateInput, DpSettings, Entry, EntryBody};
use crate::error::Problem;
use crate::merkle::{self, Hash, MerkleTree};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone)]
struct RoundState {
    dp: DpSettings,
    open: bool,
    /// client id -> (update index, ciphertext hash); dropped when closed.
    updates: HashMap<String, (u64, Hash)>,
}

#[derive(Debug)]
enum Undo {
    Opened {
        round: u64,
        prev_max: Option<u64>,
    },
    Update {
        round: u64,
        client: String,
    },
    Closed {
        round: u64,
        updates: HashMap<String, (u64, Hash)>,
    },
}

/// Replays entries in order and checks them.
#[derive(Debug)]
pub(crate) struct Replay {
    pub(crate) tree: MerkleTree,
    chain: Hash,
    last_ts: u64,
    rounds: BTreeMap<u64, RoundState>,
    max_round: Option<u64>,
    journal: Option<(u64, Hash, u64, Vec<Undo>)>,
}

impl Replay {
    pub(crate) fn new(log_id: &Hash) -> Self {
        Self {
            tree: MerkleTree::new(),
            chain: genesis_hash(log_id),
            last_ts: 0,
            rounds: BTreeMap::new(),
            max_round: None,
            journal: None,
        }
    }

    /// Number of entries replayed.
    pub(crate) fn len(&self) -> u64 {
        self.tree.len()
    }

    /// `prev_hash` for the next entry.
    pub(crate) fn chain(&self) -> Hash {
        self.chain
    }

    /// Timestamp of the last entry.
    pub(crate) fn last_ts(&self) -> u64 {
        self.last_ts
    }

    /// DP settings of a round that was opened.
    pub(crate) fn round_dp(&self, round: u64) -> Option<&DpSettings> {
        self.rounds.get(&round).map(|r| &r.dp)
    }

    /// Starts recording changes so that [`rollback`](Self::rollback) can undo them.
    pub(crate) fn begin(&mut self) {
        self.journal = Some((self.tree.len(), self.chain, self.last_ts, Vec::new()));
    }

    /// Keeps the changes since [`begin`](Self::begin).
    pub(crate) fn commit(&mut self) {
        self.journal = None;
    }

    /// Undoes the changes since [`begin`](Self::begin).
    pub(crate) fn rollback(&mut self) {
        let Some((len, chain, ts, undo)) = self.journal.take() else {
            return;
        };
        self.tree.truncate(len);
        self.chain = chain;
        self.last_ts = ts;
        for u in undo.into_iter().rev() {
            match u {
                Undo::Opened { round, prev_max } => {
                    self.rounds.remove(&round);
                    self.max_round = prev_max;
                }
                Undo::Update { round, client } => {
                    if let Some(r) = self.rounds.get_mut(&round) {
                        r.updates.remove(&client);
                    }
                }
                Undo::Closed { round, updates } => {
                    if let Some(r) = self.rounds.get_mut(&round) {
                        r.open = true;
                        r.updates = updates;
                    }
                }
            }
        }
    }

    fn record(&mut self, u: Undo) {
        if let Some((_, _, _, j)) = self.journal.as_mut() {
            j.push(u);
        }
    }

    /// Checks entry `e` (whose canonical bytes hash to `leaf`) as the next
    /// entry and applies it. `inputs` must be given for aggregates.
    pub(crate) fn apply(
        &mut self,
        e: &Entry,
        leaf: Hash,
        inputs: Option<&[AggregateInput]>,
    ) -> Result<(), Problem> {
        let n = self.tree.len();
        if e.index != n {
            return Err(Problem::IndexMismatch { recorded: e.index });
        }
        if e.prev_hash != self.chain {
            return Err(Problem::ChainBroken);
        }
        if e.timestamp_ms < self.last_ts {
            return Err(Problem::TimeReversed {
                previous: self.last_ts,
                this: e.timestamp_ms,
            });
        }
        e.body.validate().map_err(Problem::InvalidEntry)?;
        self.apply_round_rules(e, inputs)?;
        self.tree.push(leaf);
        self.chain = leaf;
        self.last_ts = e.timestamp_ms;
        Ok(())
    }

    fn open_round(&mut self, round: u64) -> Result<&mut RoundState, Problem> {
        match self.rounds.get_mut(&round) {
            Some(r) if r.open => Ok(r),
            Some(_) => Err(Problem::InvalidEntry(format!(
                "round {round} is already closed"
            ))),
            None => Err(Problem::InvalidEntry(format!(
                "round {round} was never opened"
            ))),
        }
    }

    fn apply_round_rules(
        &mut self,
        e: &Entry,
        inputs: Option<&[AggregateInput]>,
    ) -> Result<(), Problem> {
        let round = e.round;
        match &e.body {
            EntryBody::RoundOpened(o) => {
                if let Some(m) = self.max_round {
                    if round <= m {
                        return Err(Problem::InvalidEntry(format!(
                            "round {round} opened after round {m} (rounds must increase)"
                        )));
                    }
                }
                let prev_max = self.max_round;
                self.rounds.insert(
                    round,
                    RoundState {
                        dp: o.dp.clone(),
                        open: true,
                        updates: HashMap::new(),
                    },
                );
                self.max_round = Some(round);
                self.record(Undo::Opened { round, prev_max });
            }
            EntryBody::UpdateReceived(u) => {
                let index = e.index;
                let r = self.open_round(round)?;
                if r.updates.contains_key(&u.client_id) {
                    return Err(Problem::InvalidEntry(format!(
                        "client {:?} already sent an update in round {round}",
                        u.client_id
                    )));
                }
                r.updates
                    .insert(u.client_id.clone(), (index, u.ciphertext_hash));
                self.record(Undo::Update {
                    round,
                    client: u.client_id.clone(),
                });
            }
            EntryBody::DecryptionShareReceived(_) => {
                self.open_round(round)?;
            }
            EntryBody::AggregateComputed(a) => {
                let r = self.open_round(round)?;
                let inputs = inputs.ok_or_else(|| {
                    Problem::AggregateInputs("the aggregate's input list is missing".into())
                })?;
                if inputs.len() as u64 != a.input_count {
                    return Err(Problem::AggregateInputs(format!(
                        "{} inputs stored, entry says {}",
                        inputs.len(),
                        a.input_count
                    )));
                }
                let mut last: Option<u64> = None;
                for (pos, inp) in inputs.iter().enumerate() {
                    if last.is_some_and(|l| inp.update_index <= l) {
                        return Err(Problem::AggregateInputs(format!(
                            "input {pos}: update indices must increase"
                        )));
                    }
                    last = Some(inp.update_index);
                    match r.updates.get(&inp.client_id) {
                        Some((idx, h)) if *idx == inp.update_index && *h == inp.ciphertext_hash => {
                        }
                        _ => {
                            return Err(Problem::AggregateInputs(format!(
                            "input {pos} (client {:?}, entry {}) is not an update of round {round}",
                            inp.client_id, inp.update_index
                        )))
                        }
                    }
                }
                if inputs_root(inputs) != a.inputs_root {
                    return Err(Problem::AggregateInputs(
                        "Merkle root of the stored inputs is not the entry's inputs_root".into(),
                    ));
                }
            }
            EntryBody::RoundClosed(_) => {
                let r = self.open_round(round)?;
                r.open = false;
                let updates = std::mem::take(&mut r.updates);
                self.record(Undo::Closed { round, updates });
            }
            EntryBody::Custom(_) => {}
        }
        Ok(())
    }
}

/// Decodes stored input rows, checking each row's update index column.
pub(crate) fn decode_inputs(rows: &[(u64, u64, Vec<u8>)]) -> Result<Vec<AggregateInput>, Problem> {
    rows.iter()
        .enumerate()
        .map(|(pos, (stored_pos, upd, data))| {
            if *stored_pos != pos as u64 {
                return Err(Problem::AggregateInputs(format!("input {pos} is missing")));
            }
            let inp = AggregateInput::decode(data).map_err(|e| {
                Problem::AggregateInputs(format!("input {pos} does not decode: {e}"))
            })?;
            if inp.update_index != *upd {
                return Err(Problem::ColumnMismatch("aggregate_inputs.update_idx"));
            }
            Ok(inp)
        })
        .collect()
}

/// Checks a stored row's bytes and columns, returning the decoded entry and
/// its recomputed leaf hash.
pub(crate) fn check_row(row: &crate::store::EntryRow) -> Result<(Entry, Hash), Problem> {
    let leaf = merkle::leaf_hash(&row.data);
    if row.leaf_hash.as_slice() != leaf.as_slice() {
        return Err(Problem::LeafHashMismatch);
    }
    let e = Entry::decode(&row.data)?;
    if e.index != row.idx {
        return Err(Problem::IndexMismatch { recorded: e.index });
    }
    if e.round != row.round {
        return Err(Problem::ColumnMismatch("round"));
    }
    if u64::from(e.body.kind_tag()) != row.kind {
        return Err(Problem::ColumnMismatch("kind"));
    }
    Ok((e, leaf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::CustomEntry;

    fn note(r: &Replay, ts: u64) -> (Entry, Hash) {
        let e = Entry {
            index: r.len(),
            round: 0,
            timestamp_ms: ts,
            prev_hash: r.chain(),
            body: EntryBody::Custom(CustomEntry {
                kind: "n".into(),
                data: vec![1],
            }),
        };
        let leaf = merkle::leaf_hash(&e.encode());
        (e, leaf)
    }

    /// A committed append cannot be undone by a later rollback; an
    /// uncommitted one is undone entirely (tree, chain, clock).
    #[test]
    fn rollback_undoes_only_what_was_not_committed() {
        let mut r = Replay::new(&[1; 32]);
        let (e, leaf) = note(&r, 5);
        r.begin();
        r.apply(&e, leaf, None).unwrap();
        r.commit();
        r.rollback();
        assert_eq!((r.len(), r.chain(), r.last_ts()), (1, leaf, 5));
        let (e2, leaf2) = note(&r, 9);
        r.begin();
        r.apply(&e2, leaf2, None).unwrap();
        assert_eq!((r.len(), r.chain(), r.last_ts()), (2, leaf2, 9));
        r.rollback();
        assert_eq!((r.len(), r.chain(), r.last_ts()), (1, leaf, 5));
    }
}
