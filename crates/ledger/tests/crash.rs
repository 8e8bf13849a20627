#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Crash test: a writer process is SIGKILLed at random points while it
//! appends (single entries and batches); afterwards the log must open,
//! verify, and hold every entry whose append had returned.
//!
//! The writer is this test binary itself, re-run with
//! `CIPHERFLOW_LEDGER_CRASH_CHILD=<log path>` on the `crash_writer_child`
//! test; it prints `APPENDED <index> <leaf hash>` after each append returns.
//!
//! `crash_5_kills` runs in CI; the full run is
//! `cargo test -p cipherflow-ledger --test crash -- --ignored crash_100_kills --nocapture`
//! (also `bench/ledger_crash.sh`).

mod common;

use cipherflow_ledger::entry::{CustomEntry, EntryBody};
use cipherflow_ledger::{verify_log, Ledger, NewEntry, VerifyOptions};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "CIPHERFLOW_LEDGER_CRASH_CHILD";

fn note(i: u64) -> EntryBody {
    EntryBody::Custom(CustomEntry {
        kind: "crash-test".into(),
        data: i.to_be_bytes().repeat(4),
    })
}

/// The writer. A no-op unless spawned by [`run_kills`].
#[test]
fn crash_writer_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut log = Ledger::open(Path::new(&path), common::signer()).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(std::process::id() as u64);
    let out = std::io::stdout();
    loop {
        let n = log.len();
        let appended = if rng.next_u32().is_multiple_of(3) {
            let k = 1 + u64::from(rng.next_u32() % 50);
            log.append_batch((n..n + k).map(|i| NewEntry::new(0, note(i))).collect())
                .unwrap()
        } else {
            vec![log.append(0, note(n)).unwrap()]
        };
        let mut o = out.lock();
        for a in appended {
            writeln!(o, "APPENDED {} {}", a.index, hex::encode(a.leaf_hash)).unwrap();
        }
        o.flush().unwrap();
    }
}

fn run_kills(kills: usize, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    drop(Ledger::create(&path, "crash-test", common::signer()).unwrap());
    let exe = std::env::current_exe().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut acked: BTreeMap<u64, String> = BTreeMap::new();
    let start = Instant::now();
    for _ in 0..kills {
        let mut child = Command::new(&exe)
            .args([
                "crash_writer_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("APPENDED ") {
                    let mut it = rest.split(' ');
                    if let (Some(i), Some(h)) = (it.next(), it.next()) {
                        lines.push((i.parse::<u64>().unwrap(), h.to_string()));
                    }
                }
            }
            lines
        });
        std::thread::sleep(Duration::from_millis(20 + rng.next_u64() % 180));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        for (i, h) in reader.join().unwrap() {
            if let Some(prev) = acked.insert(i, h.clone()) {
                assert_eq!(
                    prev, h,
                    "index {i} acknowledged twice with different content"
                );
            }
        }
    }
    // Everything acknowledged is there, byte for byte, and the log verifies.
    let log = Ledger::open_read_only(&path).unwrap();
    for (i, h) in &acked {
        assert!(
            *i < log.len(),
            "acknowledged entry {i} lost (log has {})",
            log.len()
        );
        let leaf = cipherflow_ledger::merkle::leaf_hash(&log.entry_bytes(*i).unwrap());
        assert_eq!(&hex::encode(leaf), h, "entry {i} differs");
    }
    let report = verify_log(
        &path,
        &common::signer().public_key(),
        &VerifyOptions::default(),
    )
    .unwrap();
    assert_eq!(report.entries, log.len());
    eprintln!(
        "crash test: {kills} kills in {:.1} s, {} acknowledged entries checked, log holds {}, {} heads",
        start.elapsed().as_secs_f64(),
        acked.len(),
        log.len(),
        report.heads
    );
    assert!(!acked.is_empty(), "the writer never got to append");
}

#[test]
fn crash_5_kills() {
    run_kills(5, 1);
}

#[test]
#[ignore = "slow: 100 kills (about a minute)"]
fn crash_100_kills() {
    run_kills(100, 2);
}
