//! Ledger benchmark: durable appends per second (single and batched), open
//! time, and proof generation / verification time at 10^6 entries.
//!
//! ```text
//! cargo run --release -p cipherflow-ledger --example ledger_bench -- [--entries N] [--dir DIR]
//! ```
//!
//! The big log is built as federated rounds, one batch (one transaction)
//! per round: round opened, 996 updates, an aggregate of them, a
//! decryption share, round closed (1000 entries).

use cipherflow_ledger::entry::{
    ClientEpsilon, DecryptionShareReceived, DpSettings, EntryBody, RoundClosed, RoundOpened,
    UpdateReceived,
};
use cipherflow_ledger::merkle::{leaf_hash, verify_consistency, verify_inclusion};
use cipherflow_ledger::{
    verify_log, AggregateInput, Hash, Ledger, LedgerError, LogSigner, NewEntry, VerifyOptions,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

const PER_ROUND: u64 = 1000;
const CLIENTS: u64 = PER_ROUND - 4;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn h(tag: &[u8], a: u64, b: u64) -> Hash {
    leaf_hash(&[tag, &a.to_be_bytes(), &b.to_be_bytes()].concat())
}

fn dp(round: u64) -> DpSettings {
    DpSettings {
        accountant: cipherflow_ledger::entry::DpAccounting::Rdp,
        sampling_rate: 0.01,
        noise_multiplier: 1.1,
        delta: 1e-5,
        steps_this_round: 10,
        steps_cumulative: 10 * round,
    }
}

fn fake_eps(s: &DpSettings, steps: u64) -> Result<f64, String> {
    Ok(s.sampling_rate * (steps as f64).sqrt() / s.noise_multiplier)
}

fn round_batch(log: &Ledger, round: u64) -> Vec<NewEntry> {
    let base = log.len();
    let mut v = Vec::with_capacity(PER_ROUND as usize);
    v.push(NewEntry::new(
        round,
        EntryBody::RoundOpened(RoundOpened {
            parameters: BTreeMap::new(),
            participants: vec![],
            dp: dp(round),
        }),
    ));
    let mut inputs = Vec::with_capacity(CLIENTS as usize);
    for c in 0..CLIENTS {
        let id = format!("client-{c}");
        let ct = h(b"ct", round, c);
        inputs.push(AggregateInput {
            update_index: base + 1 + c,
            client_id: id.clone(),
            ciphertext_hash: ct,
        });
        v.push(NewEntry::new(
            round,
            EntryBody::UpdateReceived(UpdateReceived {
                client_id: id,
                ciphertext_hash: ct,
            }),
        ));
    }
    v.push(NewEntry::aggregate(round, h(b"sum", round, 0), inputs));
    v.push(NewEntry::new(
        round,
        EntryBody::DecryptionShareReceived(DecryptionShareReceived {
            party_id: "kh".into(),
            share_hash: h(b"share", round, 0),
        }),
    ));
    let d = dp(round);
    let eps = fake_eps(&d, d.steps_cumulative).unwrap_or(0.0);
    v.push(NewEntry::new(
        round,
        EntryBody::RoundClosed(RoundClosed {
            model_hash: h(b"model", round, 0),
            epsilon_global: eps,
            clients: vec![ClientEpsilon {
                client_id: "client-0".into(),
                steps: d.steps_cumulative,
                epsilon: eps,
            }],
        }),
    ));
    v
}

fn note(i: u64) -> EntryBody {
    EntryBody::Custom(cipherflow_ledger::entry::CustomEntry {
        kind: "bench".into(),
        data: h(b"note", i, 0).to_vec(),
    })
}

fn single_appends(dir: &Path, n: u64, sign: bool) -> Res<f64> {
    let path = dir.join(format!("single-{sign}.db"));
    let mut log = Ledger::create(&path, "bench", LogSigner::from_seed(&[1; 32]))?;
    log.set_auto_sign(sign);
    let t = Instant::now();
    for i in 0..n {
        log.append(0, note(i))?;
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

fn batched_appends(dir: &Path, n: u64, batch: u64) -> Res<f64> {
    let path = dir.join(format!("batch-{batch}.db"));
    let mut log = Ledger::create(&path, "bench", LogSigner::from_seed(&[1; 32]))?;
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        log.append_batch((i..i + batch).map(|j| NewEntry::new(0, note(j))).collect())?;
        i += batch;
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

fn per_op<T>(reps: u64, mut f: impl FnMut(u64) -> Result<T, LedgerError>) -> Res<f64> {
    let t = Instant::now();
    for i in 0..reps {
        std::hint::black_box(f(i)?);
    }
    Ok(t.elapsed().as_secs_f64() * 1e6 / reps as f64)
}

fn main() -> Res<()> {
    let mut entries: u64 = 1_000_000;
    let mut dir: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--entries" => entries = args.next().ok_or("--entries N")?.parse()?,
            "--dir" => dir = Some(args.next().ok_or("--dir DIR")?.into()),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let tmp = tempfile::tempdir_in(dir.as_deref().unwrap_or(Path::new(".")))?;
    let d = tmp.path();
    println!(
        "ledger bench in {} (SQLite WAL, synchronous=FULL)",
        d.display()
    );

    let s = single_appends(d, 2000, true)?;
    println!("append, single, signed head each      {s:>12.0} entries/s");
    let s = single_appends(d, 2000, false)?;
    println!("append, single, no head               {s:>12.0} entries/s");
    for b in [10, 100, 1000] {
        let s = batched_appends(d, 100_000, b)?;
        println!("append, batch of {b:<5} + signed head  {s:>12.0} entries/s");
    }

    // The big log.
    let path = d.join("big.db");
    let mut log = Ledger::create(&path, "bench-big", LogSigner::from_seed(&[2; 32]))?;
    let key = log.public_key();
    let t = Instant::now();
    let rounds = entries.div_ceil(PER_ROUND);
    for r in 1..=rounds {
        let batch = round_batch(&log, r);
        log.append_batch(batch)?;
    }
    let build = t.elapsed().as_secs_f64();
    let n = log.len();
    println!(
        "built {n} entries ({rounds} rounds of {PER_ROUND}, one tx each) in {build:.1} s = {:.0} entries/s",
        n as f64 / build
    );
    drop(log);
    let size = std::fs::metadata(&path)?.len();
    println!(
        "file size                             {:>12.1} MiB",
        size as f64 / 1048576.0
    );

    let t = Instant::now();
    let log = Ledger::open_read_only(&path)?;
    println!(
        "open (rehash + replay + check head)    {:>12.2} s",
        t.elapsed().as_secs_f64()
    );

    let head = *log.latest_head().ok_or("no head")?;
    let reps = 10_000;
    let idx = |i: u64| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % n;
    let us = per_op(reps, |i| log.inclusion_proof(idx(i), n))?;
    println!("inclusion proof (in-memory tree)      {us:>12.2} µs");
    let us = per_op(reps, |i| log.consistency_proof(1 + idx(i) % (n - 1), n))?;
    println!("consistency proof                     {us:>12.2} µs");
    let us = per_op(reps, |i| log.entry_proof(idx(i)))?;
    println!("entry proof (+ entry read from db)    {us:>12.2} µs");
    let client_reps = 200;
    let us = per_op(client_reps, |i| {
        let round = 1 + i % rounds;
        let c = i % CLIENTS;
        log.counted_proof(PER_ROUND * (round - 1) + 1 + c)
    })?;
    println!("counted proof ({CLIENTS} inputs/aggregate)   {us:>12.2} µs");

    let proofs: Vec<_> = (0..reps)
        .map(|i| log.inclusion_proof(idx(i), n))
        .collect::<Result<_, _>>()?;
    let leaves: Vec<Hash> = (0..reps)
        .map(|i| log.entry_bytes(idx(i)).map(|b| leaf_hash(&b)))
        .collect::<Result<_, _>>()?;
    let t = Instant::now();
    for (p, l) in proofs.iter().zip(&leaves) {
        verify_inclusion(p.leaf_index, p.tree_size, l, &p.path, &head.root_hash)?;
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / reps as f64;
    println!(
        "verify inclusion ({} hashes)          {us:>12.2} µs",
        proofs.first().map_or(0, |p| p.path.len())
    );
    let cons: Vec<_> = (0..reps)
        .map(|i| log.consistency_proof(1 + idx(i) % (n - 1), n))
        .collect::<Result<_, _>>()?;
    let roots: Vec<Hash> = cons
        .iter()
        .map(|c| log.root_at(c.old_size))
        .collect::<Result<_, _>>()?;
    let t = Instant::now();
    for (c, r) in cons.iter().zip(&roots) {
        verify_consistency(c.old_size, c.new_size, r, &head.root_hash, &c.path)?;
    }
    println!(
        "verify consistency                    {:>12.2} µs",
        t.elapsed().as_secs_f64() * 1e6 / reps as f64
    );
    let eps: Vec<_> = (0..1000)
        .map(|i| log.entry_proof(idx(i)))
        .collect::<Result<_, _>>()?;
    let t = Instant::now();
    for p in &eps {
        p.verify(&key, None)?;
    }
    println!(
        "verify entry proof (with signature)   {:>12.2} µs",
        t.elapsed().as_secs_f64() * 1e6 / eps.len() as f64
    );
    let cps: Vec<_> = (0..200)
        .map(|i| log.counted_proof(1 + (i % rounds) * PER_ROUND + i % CLIENTS))
        .collect::<Result<_, _>>()?;
    let t = Instant::now();
    for p in &cps {
        p.verify(&key, None)?;
    }
    println!(
        "verify counted proof                  {:>12.2} µs",
        t.elapsed().as_secs_f64() * 1e6 / cps.len() as f64
    );
    drop(log);

    let t = Instant::now();
    let acct = fake_eps;
    let r = verify_log(
        &path,
        &key,
        &VerifyOptions {
            epsilon: Some(&acct),
            ..VerifyOptions::default()
        },
    )?;
    println!(
        "verify whole log ({} entries, {} heads) {:>9.2} s",
        r.entries,
        r.heads,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
