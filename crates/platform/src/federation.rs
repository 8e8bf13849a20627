//! The federation dashboard's data (`GET /v1/federation`): a running
//! coordinator's audit ledger, read-only, summarized per round —
//! participants, updates received, updates summed, dropouts, the ε spent
//! after the round against the budget — under its latest signed head.
//!
//! Only the entries that head covers are summarized (later ones are
//! counted as unsigned), so the page can check the figures' head with a
//! key the user holds. The log is checked in full against the public key
//! the platform was given whenever the file changes (the coordinator keeps
//! appending); between changes the summary is served from memory, so
//! visitors cannot make the platform replay the log at will.

use crate::error::PlatformError;
use cipherflow_api::{FederationSummary, Round};
use cipherflow_ledger::{EntryBody, Ledger, PublicKey};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

/// Most entries summarized (a larger log is refused, not truncated).
pub const MAX_DASHBOARD_ENTRIES: u64 = 1 << 20;

/// A coordinator's ledger the platform shows.
#[derive(Clone, Debug)]
pub struct FederationLog {
    /// The ledger file (SQLite) the coordinator writes.
    pub log: PathBuf,
    /// The log's public key: a log signed by another key is refused.
    pub key: PublicKey,
    /// The federation's ε budget, drawn against the ε spent.
    pub epsilon_budget: Option<f64>,
}

fn storage(e: impl std::fmt::Display) -> PlatformError {
    PlatformError::Storage(format!("the federation log: {e}"))
}

/// What identifies a version of the ledger's files: the log and its WAL,
/// their sizes and modification times.
type Stamp = Vec<(u64, Option<SystemTime>)>;

fn stamp(f: &FederationLog) -> Stamp {
    let mut wal = f.log.clone().into_os_string();
    wal.push("-wal");
    [f.log.clone(), PathBuf::from(wal)]
        .iter()
        .map(|p| match std::fs::metadata(p) {
            Ok(m) => (m.len(), m.modified().ok()),
            Err(_) => (0, None),
        })
        .collect()
}

/// The last summary made and the file state it was made from.
#[derive(Default)]
pub(crate) struct SummaryCache(Mutex<Option<(Stamp, FederationSummary)>>);

impl SummaryCache {
    /// The summary of `f`, remade only when its files changed. A failure
    /// is logged in full here and answered without the platform's paths
    /// or keys.
    pub(crate) fn get(&self, f: &FederationLog) -> Result<FederationSummary, PlatformError> {
        let now = stamp(f);
        let mut c = crate::service::lock(&self.0);
        if let Some((s, v)) = c.as_ref() {
            if *s == now {
                return Ok(v.clone());
            }
        }
        let v = federation_summary(f).map_err(|e| {
            tracing::error!("{e}");
            PlatformError::Storage(
                "the federation's ledger cannot be shown (the platform's log says why)".into(),
            )
        })?;
        *c = Some((now, v.clone()));
        Ok(v)
    }
}

/// Summarizes the ledger of `f` (see the module's documentation).
pub fn federation_summary(f: &FederationLog) -> Result<FederationSummary, PlatformError> {
    let ledger = Ledger::open_read_only(&f.log).map_err(storage)?;
    if ledger.public_key() != f.key {
        return Err(storage(format!(
            "{} is signed by key {}, not the configured {}",
            f.log.display(),
            ledger.public_key().to_hex(),
            f.key.to_hex()
        )));
    }
    let n = ledger.len();
    if n > MAX_DASHBOARD_ENTRIES {
        return Err(storage(format!(
            "{n} entries, more than the dashboard reads ({MAX_DASHBOARD_ENTRIES})"
        )));
    }
    // The figures the latest signed head covers; nothing before a head.
    let head = ledger.latest_head().cloned();
    let signed = head.as_ref().map_or(0, |h| h.tree_size.min(n));
    let mut rounds: BTreeMap<u64, Round> = BTreeMap::new();
    for i in 0..signed {
        let e = ledger.entry(i).map_err(storage)?;
        let r = rounds.entry(e.round).or_insert_with(|| Round {
            round: e.round,
            ..Round::default()
        });
        match &e.body {
            EntryBody::RoundOpened(o) => {
                r.participants = o.participants.len() as u64;
                r.delta = Some(o.dp.delta);
                r.opened_ms = Some(e.timestamp_ms);
            }
            EntryBody::UpdateReceived(_) => r.updates += 1,
            EntryBody::AggregateComputed(a) => r.summed = a.input_count,
            EntryBody::RoundClosed(c) => {
                r.closed = true;
                r.epsilon = c.epsilon_global.is_finite().then_some(c.epsilon_global);
                r.closed_ms = Some(e.timestamp_ms);
            }
            // Decryption shares, custom entries and kinds added later.
            _ => {}
        }
    }
    for r in rounds.values_mut() {
        r.dropouts = r.participants.saturating_sub(r.updates);
    }
    let signed_head = head
        .map(|h| serde_json::to_value(h).map_err(storage))
        .transpose()?;
    Ok(FederationSummary {
        name: ledger.name().to_string(),
        log_id: hex::encode(ledger.log_id()),
        public_key: f.key.to_hex(),
        entries: signed,
        unsigned_entries: n - signed,
        signed_head,
        epsilon_budget: f.epsilon_budget,
        rounds: rounds.into_values().collect(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use cipherflow_ledger::entry::{
        DpAccounting, DpSettings, RoundClosed, RoundOpened, UpdateReceived,
    };
    use cipherflow_ledger::{AggregateInput, LogSigner};

    /// A round of three participants of which one dropped out, ε 1.25.
    fn log(dir: &std::path::Path) -> (PathBuf, PublicKey) {
        let path = dir.join("fl.db");
        let signer = LogSigner::generate().unwrap();
        let key = signer.public_key();
        let mut l = Ledger::create(&path, "dash", signer).unwrap();
        let dp = DpSettings {
            accountant: DpAccounting::Rdp,
            sampling_rate: 0.02,
            noise_multiplier: 1.0,
            delta: 1e-5,
            steps_this_round: 20,
            steps_cumulative: 20,
        };
        l.append(
            1,
            EntryBody::RoundOpened(RoundOpened {
                parameters: BTreeMap::new(),
                participants: vec![[1; 32], [2; 32], [3; 32]],
                dp: dp.clone(),
            }),
        )
        .unwrap();
        let mut inputs = Vec::new();
        for c in ["a", "b"] {
            let h = [c.as_bytes()[0]; 32];
            let a = l
                .append(
                    1,
                    EntryBody::UpdateReceived(UpdateReceived {
                        client_id: c.into(),
                        ciphertext_hash: h,
                    }),
                )
                .unwrap();
            inputs.push(AggregateInput {
                update_index: a.index,
                client_id: c.into(),
                ciphertext_hash: h,
            });
        }
        l.append_aggregate(1, [9; 32], inputs).unwrap();
        l.append(
            1,
            EntryBody::RoundClosed(RoundClosed {
                model_hash: [0; 32],
                epsilon_global: 1.25,
                clients: vec![],
            }),
        )
        .unwrap();
        l.sign_head().unwrap();
        // An entry after the head: not summarized, counted as unsigned.
        l.set_auto_sign(false);
        l.append(
            2,
            EntryBody::RoundOpened(RoundOpened {
                parameters: BTreeMap::new(),
                participants: vec![[1; 32]],
                dp: DpSettings {
                    steps_cumulative: 40,
                    ..dp
                },
            }),
        )
        .unwrap();
        (path, key)
    }

    #[test]
    fn rounds_are_summarized_and_a_foreign_log_refused() {
        let d = tempfile::tempdir().unwrap();
        let (path, key) = log(d.path());
        let f = FederationLog {
            log: path.clone(),
            key,
            epsilon_budget: Some(3.0),
        };
        let s = federation_summary(&f).unwrap();
        let r = &s.rounds[0];
        assert_eq!(r.participants, 3);
        assert_eq!(r.updates, 2);
        assert_eq!(r.summed, 2);
        assert_eq!(r.dropouts, 1);
        assert_eq!(r.epsilon, Some(1.25));
        assert!(r.closed);
        assert_eq!(s.signed_head.as_ref().unwrap()["tree_size"], 5);
        assert_eq!(s.entries, 5);
        assert_eq!(s.unsigned_entries, 1);
        assert_eq!(s.rounds.len(), 1, "round 2 is unsigned");
        // The cache answers the same until the files change.
        let cache = SummaryCache::default();
        assert_eq!(cache.get(&f).unwrap(), s);
        assert_eq!(cache.get(&f).unwrap(), s);
        assert_eq!(s.epsilon_budget, Some(3.0));
        // The same log under another key than the one configured.
        let other = LogSigner::generate().unwrap().public_key();
        let f = FederationLog {
            log: path,
            key: other,
            epsilon_budget: None,
        };
        assert!(matches!(
            federation_summary(&f),
            Err(PlatformError::Storage(m)) if m.contains("signed by key")
        ));
        // Clients get no paths or keys.
        match SummaryCache::default().get(&f) {
            Err(PlatformError::Storage(m)) => {
                assert!(!m.contains('/') && !m.contains(&f.key.to_hex()), "{m}")
            }
            other => panic!("{other:?}"),
        }
        // No log there.
        let f = FederationLog {
            log: d.path().join("missing.db"),
            key: LogSigner::generate().unwrap().public_key(),
            epsilon_budget: None,
        };
        assert!(federation_summary(&f).is_err());
    }
}
