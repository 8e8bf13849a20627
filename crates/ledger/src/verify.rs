//! Offline verifier: everything about a log file that can be checked with
//! only the file and the log's public key.
//!
//! In log order it checks: the metadata (key, log id), every entry (strict
//! decoding, position, stored leaf hash, hash chain, timestamps, round
//! rules, aggregate inputs), every signed head (signature, log id, order,
//! root equal to the root recomputed from the entries, RFC 9162
//! consistency proof from the previous head), that no entry is left
//! uncovered by a head, that a previously seen head (if given) is still
//! consistent with the log, and that the ε reported when each round closed
//! equals what an accountant recomputes from the logged (q, σ, steps, δ) of
//! every round so far (rounds may differ when the accountant composes
//! them: a dynamic privacy schedule).
//! It stops at the first failure and names it ([`Failure`]).

use crate::entry::{DpSettings, Entry, EntryBody};
use crate::error::{Failure, LedgerError, Location, Problem};
use crate::ledger::{head_from_row, read_meta, replay_store};
use crate::merkle::{self, Hash};
use crate::replay::Replay;
use crate::sth::{PublicKey, SignedTreeHead};
use crate::store::{HeadRow, Store};
use serde::Serialize;
use std::collections::VecDeque;
use std::path::Path;

/// Recomputes ε from logged DP settings: the pluggable link to a DP
/// accountant (the CLI plugs in `cipherflow-dp`).
pub trait EpsilonRecompute {
    /// ε after `steps` steps at the settings' accountant, q, σ and δ.
    fn epsilon(&self, settings: &DpSettings, steps: u64) -> Result<f64, String>;

    /// ε reported for one client after its `steps` steps; by default the
    /// same computation as the global ε (DP-SGD clients). Federated
    /// client-level accounting overrides it (a client's ε over the rounds
    /// it took part in carries no sampling amplification).
    fn client_epsilon(&self, settings: &DpSettings, steps: u64) -> Result<f64, String> {
        self.epsilon(settings, steps)
    }

    /// Whether this accountant composes rounds whose settings differ (a
    /// dynamic privacy schedule). If not, the audit refuses a log whose
    /// mechanism changes between rounds.
    fn composes_rounds(&self) -> bool {
        false
    }

    /// Global ε after the rounds `rounds` (every round opened so far, in
    /// order, each with its own settings and `steps_this_round`). By
    /// default the rounds share one mechanism and this is
    /// [`EpsilonRecompute::epsilon`] at the last round's cumulative steps.
    fn epsilon_rounds(&self, rounds: &[&DpSettings]) -> Result<f64, String> {
        match rounds.last() {
            Some(last) => self.epsilon(last, last.steps_cumulative),
            None => Ok(0.0),
        }
    }

    /// A client's ε after its `steps` steps within `rounds` (as for
    /// [`EpsilonRecompute::epsilon_rounds`]). By default
    /// [`EpsilonRecompute::client_epsilon`] at the last round's settings.
    fn client_epsilon_rounds(&self, rounds: &[&DpSettings], steps: u64) -> Result<f64, String> {
        match rounds.last() {
            Some(last) => self.client_epsilon(last, steps),
            None => Ok(0.0),
        }
    }
}

impl<F> EpsilonRecompute for F
where
    F: Fn(&DpSettings, u64) -> Result<f64, String>,
{
    fn epsilon(&self, settings: &DpSettings, steps: u64) -> Result<f64, String> {
        self(settings, steps)
    }
}

/// What to check besides the log itself.
#[derive(Clone, Copy)]
pub struct VerifyOptions<'a> {
    /// Accountant for the ε check; `None` skips it (and the report says so).
    pub epsilon: Option<&'a dyn EpsilonRecompute>,
    /// Relative tolerance of the ε check: `|reported − recomputed| ≤ tol · max(1, recomputed)`.
    pub epsilon_tolerance: f64,
    /// A head seen earlier (e.g. by a client): the log must still contain it.
    pub trusted_head: Option<&'a SignedTreeHead>,
    /// Accept entries after the last signed head.
    pub allow_unsigned_tail: bool,
}

impl Default for VerifyOptions<'_> {
    fn default() -> Self {
        Self {
            epsilon: None,
            epsilon_tolerance: 1e-6,
            trusted_head: None,
            allow_unsigned_tail: false,
        }
    }
}

impl std::fmt::Debug for VerifyOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyOptions")
            .field("epsilon", &self.epsilon.is_some())
            .field("epsilon_tolerance", &self.epsilon_tolerance)
            .field("trusted_head", &self.trusted_head)
            .field("allow_unsigned_tail", &self.allow_unsigned_tail)
            .finish()
    }
}

/// Summary of a log that verified.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Log name.
    pub name: String,
    /// Log id (hex).
    pub log_id: String,
    /// Entries checked.
    pub entries: u64,
    /// Signed heads checked.
    pub heads: u64,
    /// Rounds opened.
    pub rounds_opened: u64,
    /// Rounds whose reported ε was recomputed and matched.
    pub rounds_epsilon_checked: u64,
    /// Whether an accountant was plugged in.
    pub epsilon_checked: bool,
    /// The latest head.
    pub latest_head: Option<SignedTreeHead>,
}

/// Heads read from the store at a time (bounded memory for any log).
const HEAD_PAGE: u32 = 4096;

struct HeadCheck<'a> {
    store: &'a Store,
    key: &'a PublicKey,
    log_id: Hash,
    page: VecDeque<HeadRow>,
    last_seq: Option<u64>,
    page_size: u32,
    prev: Option<SignedTreeHead>,
    count: u64,
}

impl HeadCheck<'_> {
    fn peek(&mut self) -> Result<Option<&HeadRow>, Failure> {
        // An empty page is refilled; once every head is read, each call
        // costs one indexed query that returns nothing (only entries after
        // the last head, an unsigned tail, call it more than once).
        if self.page.is_empty() {
            let rows = self
                .store
                .heads_page(self.last_seq, self.page_size)
                .map_err(|e| Failure::at(Location::Log, Problem::Storage(e.to_string())))?;
            self.page.extend(rows);
        }
        Ok(self.page.front())
    }

    /// Checks every head of size `size`, with the tree replayed to exactly `size`.
    fn check_at(&mut self, replay: &Replay, size: u64) -> Result<(), Failure> {
        while let Some(row) = self.peek()? {
            if row.tree_size > size {
                return Ok(());
            }
            let Some(row) = self.page.pop_front() else {
                return Ok(());
            };
            self.last_seq = Some(row.seq);
            let loc = Location::Head {
                seq: row.seq,
                tree_size: row.tree_size,
            };
            if row.seq != self.count {
                return Err(Failure::at(
                    loc,
                    Problem::HeadOrder(format!("expected head #{}", self.count)),
                ));
            }
            let sth = head_from_row(&row, &self.log_id)?;
            self.key
                .verify_head(&sth, Some(&self.log_id))
                .map_err(|e| Failure::at(loc, e))?;
            if row.tree_size < size {
                return Err(Failure::at(
                    loc,
                    Problem::HeadOrder(format!("smaller than the previous head ({size})")),
                ));
            }
            if let Some(p) = &self.prev {
                if sth.timestamp_ms < p.timestamp_ms {
                    return Err(Failure::at(
                        loc,
                        Problem::HeadOrder("timestamp earlier than the previous head".into()),
                    ));
                }
            }
            if replay.tree.root() != sth.root_hash {
                return Err(Failure::at(loc, Problem::RootMismatch));
            }
            if let Some(p) = &self.prev {
                let proof = replay
                    .tree
                    .consistency_proof(p.tree_size, sth.tree_size)
                    .map_err(|e| Failure::at(loc, Problem::Inconsistent(e)))?;
                merkle::verify_consistency(
                    p.tree_size,
                    sth.tree_size,
                    &p.root_hash,
                    &sth.root_hash,
                    &proof,
                )
                .map_err(|e| Failure::at(loc, Problem::Inconsistent(e)))?;
            }
            self.prev = Some(sth);
            self.count += 1;
        }
        Ok(())
    }
}

/// DP bookkeeping across rounds for the ε check.
struct DpAudit<'a> {
    recompute: Option<&'a dyn EpsilonRecompute>,
    tol: f64,
    first: Option<DpSettings>,
    /// Every opened round's settings, in log order.
    opened: Vec<(u64, DpSettings)>,
    last_cumulative: Option<u64>,
    rounds_opened: u64,
    checked: u64,
}

impl DpAudit<'_> {
    /// `|reported − expected| ≤ tol · max(1, |expected|)` for finite values;
    /// an infinite ε (no privacy) matches only itself, and NaN nothing (a
    /// relative tolerance of ∞ would otherwise accept any finite report).
    fn close_enough(&self, reported: f64, expected: f64) -> bool {
        if !reported.is_finite() || !expected.is_finite() {
            return reported == expected;
        }
        (reported - expected).abs() <= self.tol * expected.abs().max(1.0)
    }

    fn entry(&mut self, replay: &Replay, e: &Entry) -> Result<(), Failure> {
        let loc = Location::Entry { index: e.index };
        let fail = |m: String| Failure::at(loc, Problem::Epsilon(m));
        match &e.body {
            EntryBody::RoundOpened(o) => {
                self.rounds_opened += 1;
                let want = self
                    .last_cumulative
                    .unwrap_or(0)
                    .saturating_add(o.dp.steps_this_round);
                if o.dp.steps_cumulative != want {
                    return Err(fail(format!(
                        "steps_cumulative {} ≠ previous cumulative + this round's steps = {want}",
                        o.dp.steps_cumulative
                    )));
                }
                self.last_cumulative = Some(o.dp.steps_cumulative);
                self.opened.push((e.round, o.dp.clone()));
                let composes = self.recompute.is_some_and(|r| r.composes_rounds());
                match &self.first {
                    None => self.first = Some(o.dp.clone()),
                    Some(f)
                        if self.recompute.is_some() && !composes && !f.same_mechanism(&o.dp) =>
                    {
                        return Err(fail(format!(
                            "round {} changes (accountant, q, σ, δ); cumulative ε over rounds with different settings cannot be recomputed with a single-setting accountant",
                            e.round
                        )));
                    }
                    Some(_) => {}
                }
            }
            EntryBody::RoundClosed(c) => {
                let Some(r) = self.recompute else {
                    return Ok(());
                };
                let dp = replay
                    .round_dp(e.round)
                    .ok_or_else(|| fail(format!("round {} was never opened", e.round)))?;
                // The rounds composed: every round opened up to this one.
                let rounds: Vec<&DpSettings> = self
                    .opened
                    .iter()
                    .filter(|(round, _)| *round <= e.round)
                    .map(|(_, s)| s)
                    .collect();
                let global = r
                    .epsilon_rounds(&rounds)
                    .map_err(|m| fail(format!("accountant failed: {m}")))?;
                if !self.close_enough(c.epsilon_global, global) {
                    return Err(fail(format!(
                        "round {}: reported global ε {} but the accountant gives {global} for {} steps",
                        e.round, c.epsilon_global, dp.steps_cumulative
                    )));
                }
                for ce in &c.clients {
                    if ce.steps > dp.steps_cumulative {
                        return Err(fail(format!(
                            "client {:?} reports {} steps, more than the {} taken in all",
                            ce.client_id, ce.steps, dp.steps_cumulative
                        )));
                    }
                    let want = r
                        .client_epsilon_rounds(&rounds, ce.steps)
                        .map_err(|m| fail(format!("accountant failed: {m}")))?;
                    if !self.close_enough(ce.epsilon, want) {
                        return Err(fail(format!(
                            "round {}: client {:?} reported ε {} but the accountant gives {want} for {} steps",
                            e.round, ce.client_id, ce.epsilon, ce.steps
                        )));
                    }
                }
                self.checked += 1;
            }
            _ => {}
        }
        Ok(())
    }
}

fn storage(e: LedgerError) -> Failure {
    match e {
        LedgerError::Integrity(f) => f,
        LedgerError::Sqlite(s) => Failure::at(Location::Log, Problem::NotALedger(s.to_string())),
        other => Failure::at(Location::Log, Problem::Storage(other.to_string())),
    }
}

/// Verifies the log at `path` against `key` (see the module docs). Opens
/// the file read-only and trusts nothing in it.
pub fn verify_log(
    path: &Path,
    key: &PublicKey,
    opts: &VerifyOptions<'_>,
) -> Result<VerifyReport, Failure> {
    verify_log_paged(path, key, opts, HEAD_PAGE)
}

fn verify_log_paged(
    path: &Path,
    key: &PublicKey,
    opts: &VerifyOptions<'_>,
    page_size: u32,
) -> Result<VerifyReport, Failure> {
    let store = Store::open(path, false).map_err(storage)?;
    // One snapshot for everything, so a log being appended to verifies as
    // of one moment.
    store.begin_read().map_err(storage)?;
    let result = verify_store(&store, key, opts, page_size);
    store.end_read().map_err(storage)?;
    result
}

fn verify_store(
    store: &Store,
    key: &PublicKey,
    opts: &VerifyOptions<'_>,
    page_size: u32,
) -> Result<VerifyReport, Failure> {
    let (name, log_id, stored_key) = read_meta(store).map_err(storage)?;
    if &stored_key != key {
        return Err(Failure::at(Location::Meta, Problem::KeyMismatch));
    }
    let mut heads = HeadCheck {
        store,
        key,
        log_id,
        page: VecDeque::new(),
        last_seq: None,
        page_size,
        prev: None,
        count: 0,
    };
    let mut dp = DpAudit {
        recompute: opts.epsilon,
        tol: opts.epsilon_tolerance,
        first: None,
        opened: Vec::new(),
        last_cumulative: None,
        rounds_opened: 0,
        checked: 0,
    };
    // Heads of the empty tree come before any entry.
    let empty = Replay::new(&log_id);
    heads.check_at(&empty, 0)?;
    let replay = replay_store(store, &log_id, |replay, e| {
        // `e` is entry `replay.len() - 1`: heads of size `replay.len()` are due.
        dp.entry(replay, e)?;
        heads.check_at(replay, replay.len())
    })
    .map_err(storage)?;
    let n = replay.len();
    if let Some(row) = heads.peek()?.cloned() {
        return Err(Failure::at(
            Location::Head {
                seq: row.seq,
                tree_size: row.tree_size,
            },
            Problem::HeadBeyondLog {
                tree_size: row.tree_size,
                entries: n,
            },
        ));
    }
    let Some(latest) = heads.prev else {
        return Err(Failure::at(Location::Log, Problem::NoHead));
    };
    if latest.tree_size < n && !opts.allow_unsigned_tail {
        return Err(Failure::at(
            Location::Entry {
                index: latest.tree_size,
            },
            Problem::UnsignedTail {
                first: latest.tree_size,
                last: n - 1,
            },
        ));
    }
    if let Some(t) = opts.trusted_head {
        let loc = Location::TrustedHead;
        key.verify_head(t, Some(&log_id))
            .map_err(|e| Failure::at(loc, e))?;
        if t.tree_size > n {
            return Err(Failure::at(
                loc,
                Problem::HeadBeyondLog {
                    tree_size: t.tree_size,
                    entries: n,
                },
            ));
        }
        let root = replay
            .tree
            .root_at(t.tree_size)
            .map_err(|e| Failure::at(loc, Problem::Inconsistent(e)))?;
        if root != t.root_hash {
            return Err(Failure::at(loc, Problem::RootMismatch));
        }
    }
    Ok(VerifyReport {
        name,
        log_id: hex::encode(log_id),
        entries: n,
        heads: heads.count,
        rounds_opened: dp.rounds_opened,
        rounds_epsilon_checked: dp.checked,
        epsilon_checked: opts.epsilon.is_some(),
        latest_head: Some(latest),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::CustomEntry;
    use crate::ledger::Ledger;
    use crate::sth::LogSigner;

    fn log_with_heads(path: &Path, appends: u8) -> PublicKey {
        let signer = LogSigner::from_seed(&[3; 32]);
        let key = signer.public_key();
        let mut log = Ledger::create(path, "paged", signer).unwrap();
        for i in 0..appends {
            log.append(
                0,
                EntryBody::Custom(CustomEntry {
                    kind: "n".into(),
                    data: vec![i],
                }),
            )
            .unwrap();
        }
        key
    }

    /// Heads are read a page at a time: every page is checked, the last
    /// one included, and each head exactly once.
    #[test]
    fn heads_beyond_the_first_page_are_checked_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.db");
        // 1 + 6 heads: pages of 2, 2, 2 and 1.
        let key = log_with_heads(&path, 6);
        let opts = VerifyOptions::default();
        for page in [1, 2, 3, 7, 8, HEAD_PAGE] {
            let r = verify_log_paged(&path, &key, &opts, page).unwrap();
            assert_eq!((r.entries, r.heads), (6, 7), "page {page}");
        }
        // A flipped signature in the last head, on the last page.
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute(
            "UPDATE heads SET signature = zeroblob(64) WHERE seq = 6",
            [],
        )
        .unwrap();
        for page in [1, 2, 3, 7] {
            let f = verify_log_paged(&path, &key, &opts, page).unwrap_err();
            assert_eq!(
                f.location,
                Location::Head {
                    seq: 6,
                    tree_size: 6
                },
                "page {page}: {f}"
            );
        }
    }

    #[test]
    fn options_debug_shows_what_is_checked_without_the_accountant() {
        let acct = |_: &DpSettings, _: u64| Ok(1.0);
        let opts = VerifyOptions {
            epsilon: Some(&acct),
            epsilon_tolerance: 0.5,
            trusted_head: None,
            allow_unsigned_tail: true,
        };
        assert_eq!(
            format!("{opts:?}"),
            "VerifyOptions { epsilon: true, epsilon_tolerance: 0.5, trusted_head: None, allow_unsigned_tail: true }"
        );
    }
}
