//! The federation dashboard's data (`GET /v1/federation`): a running
//! coordinator's audit ledger, read-only, summarized per round —
//! participants, updates received, updates summed, dropouts, the ε spent
//! after the round against the budget — with its latest signed head. The
//! log is opened afresh for each request (the coordinator keeps appending)
//! and checked in full against the public key the platform was given; the
//! page verifies the signed head again, in the browser.

use crate::error::PlatformError;
use cipherflow_ledger::{EntryBody, Ledger, PublicKey};
use std::collections::BTreeMap;
use std::path::PathBuf;

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

/// One round's figures.
#[derive(Clone, Debug, Default, serde::Serialize)]
struct Round {
    round: u64,
    participants: usize,
    updates: usize,
    summed: u64,
    dropouts: usize,
    epsilon: Option<f64>,
    delta: Option<f64>,
    closed: bool,
    opened_ms: Option<u64>,
    closed_ms: Option<u64>,
}

fn storage(e: impl std::fmt::Display) -> PlatformError {
    PlatformError::Storage(format!("the federation log: {e}"))
}

/// Summarizes the ledger of `f` (see the module's documentation).
pub fn federation_summary(f: &FederationLog) -> Result<serde_json::Value, PlatformError> {
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
    let mut rounds: BTreeMap<u64, Round> = BTreeMap::new();
    for i in 0..n {
        let e = ledger.entry(i).map_err(storage)?;
        let r = rounds.entry(e.round).or_insert_with(|| Round {
            round: e.round,
            ..Round::default()
        });
        match &e.body {
            EntryBody::RoundOpened(o) => {
                r.participants = o.participants.len();
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
    Ok(serde_json::json!({
        "name": ledger.name(),
        "log_id": hex::encode(ledger.log_id()),
        "public_key": f.key.to_hex(),
        "entries": n,
        "signed_head": ledger.latest_head(),
        "epsilon_budget": f.epsilon_budget,
        "rounds": rounds.into_values().collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
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
                dp,
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
        let r = &s["rounds"][0];
        assert_eq!(r["participants"], 3);
        assert_eq!(r["updates"], 2);
        assert_eq!(r["summed"], 2);
        assert_eq!(r["dropouts"], 1);
        assert_eq!(r["epsilon"], 1.25);
        assert_eq!(r["closed"], true);
        assert_eq!(s["signed_head"]["tree_size"], 5);
        assert_eq!(s["epsilon_budget"], 3.0);
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
        // No log there.
        let f = FederationLog {
            log: d.path().join("missing.db"),
            key: LogSigner::generate().unwrap().public_key(),
            epsilon_budget: None,
        };
        assert!(federation_summary(&f).is_err());
    }
}
