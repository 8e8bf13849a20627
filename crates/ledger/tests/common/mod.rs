//! Shared fixtures for the ledger integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_ledger::entry::{
    ClientEpsilon, DecryptionShareReceived, DpAccounting, DpSettings, EntryBody, RoundClosed,
    RoundOpened, UpdateReceived,
};
use cipherflow_ledger::{AggregateInput, Hash, Ledger, LogSigner, NewEntry};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// Steps each round takes.
pub const STEPS: u64 = 10;

pub fn h(parts: &[&[u8]]) -> Hash {
    let mut d = Sha256::new();
    for p in parts {
        d.update(p);
    }
    d.finalize().into()
}

pub fn signer() -> LogSigner {
    LogSigner::from_seed(&[7; 32])
}

pub fn dp(round: u64) -> DpSettings {
    DpSettings {
        accountant: DpAccounting::Rdp,
        sampling_rate: 0.01,
        noise_multiplier: 1.1,
        delta: 1e-5,
        steps_this_round: STEPS,
        steps_cumulative: STEPS * round,
    }
}

/// Test double for the accountant: any deterministic function of the settings.
pub fn fake_epsilon(s: &DpSettings, steps: u64) -> Result<f64, String> {
    if s.accountant != DpAccounting::Rdp {
        return Err(format!("unknown accountant {}", s.accountant));
    }
    Ok(s.sampling_rate * (steps as f64).sqrt() / s.noise_multiplier + s.delta.ln().abs() / 100.0)
}

pub fn client(c: usize) -> String {
    format!("client-{c}")
}

pub fn update_hash(round: u64, c: usize) -> Hash {
    h(&[b"update", &round.to_be_bytes(), client(c).as_bytes()])
}

/// Appends one full round (1-based `round`): open, `clients` updates, an
/// aggregate of every client but the last, a decryption share, close.
/// Returns the update indices.
pub fn append_round(log: &mut Ledger, round: u64, clients: usize) -> Vec<u64> {
    let mut parameters = BTreeMap::new();
    parameters.insert("preset".to_string(), "aggregation".into());
    log.append(
        round,
        EntryBody::RoundOpened(RoundOpened {
            parameters,
            participants: (0..clients).map(|c| h(&[client(c).as_bytes()])).collect(),
            dp: dp(round),
        }),
    )
    .unwrap();
    let batch: Vec<NewEntry> = (0..clients)
        .map(|c| {
            NewEntry::new(
                round,
                EntryBody::UpdateReceived(UpdateReceived {
                    client_id: client(c),
                    ciphertext_hash: update_hash(round, c),
                }),
            )
        })
        .collect();
    let idx: Vec<u64> = log
        .append_batch(batch)
        .unwrap()
        .iter()
        .map(|a| a.index)
        .collect();
    let inputs: Vec<AggregateInput> = (0..clients.saturating_sub(1))
        .map(|c| AggregateInput {
            update_index: idx[c],
            client_id: client(c),
            ciphertext_hash: update_hash(round, c),
        })
        .collect();
    log.append_aggregate(round, h(&[b"sum", &round.to_be_bytes()]), inputs)
        .unwrap();
    log.append(
        round,
        EntryBody::DecryptionShareReceived(DecryptionShareReceived {
            party_id: "keyholder-0".into(),
            share_hash: h(&[b"share", &round.to_be_bytes()]),
        }),
    )
    .unwrap();
    let d = dp(round);
    log.append(
        round,
        EntryBody::RoundClosed(RoundClosed {
            model_hash: h(&[b"model", &round.to_be_bytes()]),
            epsilon_global: fake_epsilon(&d, d.steps_cumulative).unwrap(),
            clients: (0..clients)
                .map(|c| ClientEpsilon {
                    client_id: client(c),
                    steps: d.steps_cumulative,
                    epsilon: fake_epsilon(&d, d.steps_cumulative).unwrap(),
                })
                .collect(),
        }),
    )
    .unwrap();
    idx
}

/// A log of `rounds` rounds with `clients` clients each.
pub fn build_log(path: &Path, rounds: u64, clients: usize) -> Ledger {
    let mut log = Ledger::create(path, "test-log", signer()).unwrap();
    for r in 1..=rounds {
        append_round(&mut log, r, clients);
    }
    log
}

/// Raw SQLite access for tampering.
pub fn raw(path: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(path).unwrap();
    // Tampering need not be durable; keeps the bit-flip tests fast.
    c.pragma_update(None, "synchronous", "OFF").unwrap();
    c
}

pub fn entry_bytes(path: &Path, idx: u64) -> Vec<u8> {
    raw(path)
        .query_row(
            "SELECT data FROM entries WHERE idx = ?1",
            [idx as i64],
            |r| r.get(0),
        )
        .unwrap()
}

pub fn set_entry(path: &Path, idx: u64, data: &[u8], leaf: Option<&[u8]>) {
    let c = raw(path);
    c.execute(
        "UPDATE entries SET data = ?1 WHERE idx = ?2",
        rusqlite::params![data, idx as i64],
    )
    .unwrap();
    if let Some(l) = leaf {
        c.execute(
            "UPDATE entries SET leaf_hash = ?1 WHERE idx = ?2",
            rusqlite::params![l, idx as i64],
        )
        .unwrap();
    }
}
