//! Durable ledger appends (SQLite, WAL, `synchronous=FULL`): one entry at a
//! time and a batch of 100, each append with its signed tree head.
//! `cargo bench -p cipherflow-ledger`.
#![allow(clippy::unwrap_used, missing_docs)]

use cipherflow_ledger::entry::{CustomEntry, EntryBody};
use cipherflow_ledger::{Ledger, LogSigner, NewEntry};
use criterion::{criterion_group, criterion_main, Criterion};

/// A 64-byte record (the size of an update receipt's fields).
fn record(i: u64) -> EntryBody {
    EntryBody::Custom(CustomEntry {
        kind: "bench".into(),
        data: [i.to_le_bytes().as_slice(), &[7; 56]].concat(),
    })
}

fn append(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Ledger::create(
        &dir.path().join("bench.db"),
        "bench",
        LogSigner::from_seed(&[1; 32]),
    )
    .unwrap();
    let mut i = 0u64;
    let mut g = c.benchmark_group("ledger");
    g.bench_function("append one entry", |b| {
        b.iter(|| {
            i += 1;
            log.append(0, record(i)).unwrap()
        });
    });
    g.bench_function("append a batch of 100", |b| {
        b.iter(|| {
            let batch: Vec<NewEntry> = (0..100)
                .map(|_| {
                    i += 1;
                    NewEntry::new(0, record(i))
                })
                .collect();
            log.append_batch(batch).unwrap()
        });
    });
    g.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
