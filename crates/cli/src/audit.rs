//! `cipherflow audit`: keys, verification, proofs and display of the audit
//! ledger (`cipherflow-ledger`).
//!
//! `verify` exits 0 only when the whole log verifies; otherwise it exits
//! non-zero naming the first entry or head that fails (with `--json`, one
//! JSON object on stdout either way).

use anyhow::anyhow;
use cipherflow_ledger::entry::EntryBody;
use cipherflow_ledger::{
    verify_log, verify_proof_file, EpsilonRecompute, Hash, Ledger, LogSigner, ProofFileError,
    PublicKey, SignedTreeHead, VerifyOptions,
};
use clap::Subcommand;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Subcommands of `cipherflow audit`.
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Makes a log signing key pair: PREFIX.key (secret, mode 0600) and PREFIX.pub.
    Keygen {
        /// Path prefix of the two files.
        #[arg(long)]
        out: PathBuf,
    },
    /// Verifies a whole log offline with only its public key: every signed
    /// head, consistency between consecutive heads, the entries' hash chain,
    /// round rules, and the ε reported per round against the DP accountant.
    Verify {
        /// Log file.
        log: PathBuf,
        /// Public key file (PREFIX.pub).
        #[arg(long)]
        key: PathBuf,
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
        /// A signed head seen earlier (JSON, e.g. from a proof's `sth`): the log must still contain it.
        #[arg(long)]
        trusted_head: Option<PathBuf>,
        /// Accept entries after the last signed head.
        #[arg(long)]
        allow_unsigned_tail: bool,
        /// Skip the ε recomputation.
        #[arg(long)]
        no_epsilon: bool,
        /// Relative tolerance of the ε check.
        #[arg(long, default_value_t = 1e-6)]
        epsilon_tolerance: f64,
    },
    /// Emits a proof a third party verifies with only the public key: that
    /// an entry is in the log (`--index`), or that a client's update was
    /// logged and summed into an aggregate (`--client` and `--round`).
    Prove {
        /// Log file.
        log: PathBuf,
        /// Entry index.
        #[arg(long, conflicts_with_all = ["client", "round"])]
        index: Option<u64>,
        /// Client id ("my update was counted").
        #[arg(long, requires = "round")]
        client: Option<String>,
        /// Round of the client's update.
        #[arg(long, requires = "client")]
        round: Option<u64>,
        /// Print the proof as JSON on stdout (otherwise a summary).
        #[arg(long)]
        json: bool,
        /// Also write the proof JSON to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Verifies a proof file written by `audit prove`.
    VerifyProof {
        /// Proof JSON file.
        proof: PathBuf,
        /// Public key file (PREFIX.pub).
        #[arg(long)]
        key: PathBuf,
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Shows a log: metadata, heads and entries (human-readable or `--json`).
    Show {
        /// Log file.
        log: PathBuf,
        /// First entry to list.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Most entries to list.
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Writes a small example log (and its key pair) to try the commands on.
    DemoLog {
        /// Log file to create.
        #[arg(long)]
        out: PathBuf,
        /// Key pair prefix to create (PREFIX.key, PREFIX.pub).
        #[arg(long)]
        key: PathBuf,
        /// Rounds.
        #[arg(long, default_value_t = 3)]
        rounds: u64,
        /// Clients per round.
        #[arg(long, default_value_t = 8)]
        clients: usize,
    },
}

/// Runs a `cipherflow audit` subcommand.
pub fn run(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Keygen { out } => keygen(&out),
        AuditCommand::Verify {
            log,
            key,
            json,
            trusted_head,
            allow_unsigned_tail,
            no_epsilon,
            epsilon_tolerance,
        } => verify(
            &log,
            &key,
            json,
            trusted_head.as_deref(),
            allow_unsigned_tail,
            !no_epsilon,
            epsilon_tolerance,
        ),
        AuditCommand::Prove {
            log,
            index,
            client,
            round,
            json,
            out,
        } => prove(&log, index, client.zip(round), json, out.as_deref()),
        AuditCommand::VerifyProof { proof, key, json } => verify_proof(&proof, &key, json),
        AuditCommand::Show {
            log,
            from,
            limit,
            json,
        } => show(&log, from, limit, json),
        AuditCommand::DemoLog {
            out,
            key,
            rounds,
            clients,
        } => demo_log(&out, &key, rounds, clients),
    }
}

fn load_key(path: &Path) -> anyhow::Result<PublicKey> {
    Ok(PublicKey::load(path)?)
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| anyhow!("{}: not JSON: {e}", path.display()))
}

fn keygen(out: &Path) -> anyhow::Result<()> {
    let signer = LogSigner::generate()?;
    let (sk, pk) = signer.save(out)?;
    println!("secret key: {}", sk.display());
    println!(
        "public key: {} ({})",
        pk.display(),
        signer.public_key().to_hex()
    );
    Ok(())
}

fn verify(
    log: &Path,
    key: &Path,
    json: bool,
    trusted: Option<&Path>,
    allow_unsigned_tail: bool,
    epsilon: bool,
    tolerance: f64,
) -> anyhow::Result<()> {
    let key = load_key(key)?;
    let trusted: Option<SignedTreeHead> = match trusted {
        Some(p) => {
            let mut v = read_json(p)?;
            // Accept a bare head or any proof file (its `sth`).
            if let Some(sth) = v.get("sth") {
                v = sth.clone();
            }
            Some(serde_json::from_value(v).map_err(|e| anyhow!("trusted head: {e}"))?)
        }
        None => None,
    };
    if !(tolerance.is_finite() && tolerance >= 0.0) {
        return Err(anyhow!("--epsilon-tolerance must be a finite number ≥ 0"));
    }
    let dp = cipherflow_fed::FedEpsilon::default();
    let opts = VerifyOptions {
        epsilon: epsilon.then_some(&dp as &dyn EpsilonRecompute),
        epsilon_tolerance: tolerance,
        trusted_head: trusted.as_ref(),
        allow_unsigned_tail,
    };
    match verify_log(log, &key, &opts) {
        Ok(r) => {
            if json {
                println!("{}", json!({ "ok": true, "report": r }));
            } else {
                println!(
                    "OK {}: log {:?} ({}), {} entries, {} signed heads, {} rounds",
                    log.display(),
                    r.name,
                    r.log_id,
                    r.entries,
                    r.heads,
                    r.rounds_opened
                );
                if r.epsilon_checked {
                    println!(
                        "   ε recomputed with cipherflow-dp for {} closed rounds (tolerance {tolerance:e})",
                        r.rounds_epsilon_checked
                    );
                } else {
                    println!("   ε not checked (--no-epsilon)");
                }
                if let Some(h) = r.latest_head {
                    println!(
                        "   latest head: size {} root {}",
                        h.tree_size,
                        hex::encode(h.root_hash)
                    );
                }
            }
            Ok(())
        }
        Err(f) => {
            if json {
                println!(
                    "{}",
                    json!({ "ok": false, "failure": { "location": f.location, "problem": f.problem.to_string(), "message": f.to_string() } })
                );
            }
            Err(anyhow!("verification FAILED at {f}"))
        }
    }
}

fn prove(
    log: &Path,
    index: Option<u64>,
    client: Option<(String, u64)>,
    json: bool,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let ledger = Ledger::open_read_only(log)?;
    let (value, summary) = match (index, client) {
        (Some(i), None) => {
            let p = ledger.entry_proof(i)?;
            let e = ledger.entry(i)?;
            let mut v = serde_json::to_value(&p)?;
            v["type"] = json!("entry_proof");
            let s = format!(
                "entry {i} ({}, round {}) is in the log under the head of size {} (root {}), path of {} hashes",
                e.body.kind_name(),
                e.round,
                p.sth.tree_size,
                hex::encode(p.sth.root_hash),
                p.inclusion.path.len()
            );
            (v, s)
        }
        (None, Some((c, r))) => {
            let p = ledger.counted_proof_for(&c, r)?;
            let counted = p
                .verify(&ledger.public_key(), Some(&ledger.log_id()))
                .map_err(|e| anyhow!("internal: fresh proof does not verify: {e}"))?;
            let mut v = serde_json::to_value(&p)?;
            v["type"] = json!("counted_proof");
            let s = format!(
                "client {:?}'s update (entry {}) in round {r} was counted in aggregate entry {} ({} inputs) under the head of size {}",
                counted.client_id, counted.update_index, counted.aggregate_index, counted.input_count, counted.tree_size
            );
            (v, s)
        }
        _ => return Err(anyhow!("give --index I, or --client ID --round R")),
    };
    let text = serde_json::to_string_pretty(&value)?;
    if let Some(o) = out {
        std::fs::write(o, format!("{text}\n")).map_err(|e| anyhow!("{}: {e}", o.display()))?;
    }
    if json {
        println!("{text}");
    } else {
        println!("{summary}");
        match out {
            Some(o) => println!("proof written to {}", o.display()),
            None => println!("(use --json or --out FILE for the proof itself)"),
        }
    }
    Ok(())
}

fn verify_proof(path: &Path, key: &Path, json: bool) -> anyhow::Result<()> {
    let key = load_key(key)?;
    let v = read_json(path)?;
    let kind = v
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    match verify_proof_file(v, &key, None) {
        Ok((kind, detail)) => {
            if json {
                println!("{}", json!({ "ok": true, "type": kind, "detail": detail }));
            } else {
                println!("OK {kind}: {detail}");
            }
            Ok(())
        }
        Err(ProofFileError::Failed(e)) => {
            if json {
                println!(
                    "{}",
                    json!({ "ok": false, "type": kind, "problem": e.to_string() })
                );
            }
            Err(anyhow!("proof does NOT verify: {e}"))
        }
        Err(e) => Err(e.into()),
    }
}

fn show(log: &Path, from: u64, limit: u64, json: bool) -> anyhow::Result<()> {
    let ledger = Ledger::open_read_only(log)?;
    let heads = ledger.head_count()?;
    let end = from.saturating_add(limit).min(ledger.len());
    let mut entries = Vec::new();
    for i in from.min(end)..end {
        entries.push(ledger.entry(i)?);
    }
    if json {
        let v = json!({
            "name": ledger.name(),
            "log_id": hex::encode(ledger.log_id()),
            "public_key": ledger.public_key().to_hex(),
            "entries": ledger.len(),
            "heads": heads,
            "root": hex::encode(ledger.root()),
            "latest_head": ledger.latest_head(),
            "listed": { "from": from, "entries": entries },
        });
        println!("{v}");
        return Ok(());
    }
    println!("log        {:?}", ledger.name());
    println!("log id     {}", hex::encode(ledger.log_id()));
    println!("public key {}", ledger.public_key().to_hex());
    println!("entries    {}", ledger.len());
    println!("heads      {heads}");
    if let Some(h) = ledger.latest_head() {
        println!(
            "latest     size {} root {} at {} ms",
            h.tree_size,
            hex::encode(h.root_hash),
            h.timestamp_ms
        );
    }
    for e in &entries {
        println!("{:>8}  round {:<5} {}", e.index, e.round, describe(&e.body));
    }
    if end < ledger.len() {
        println!("... {} more (use --from/--limit)", ledger.len() - end);
    }
    Ok(())
}

fn short(h: &Hash) -> String {
    hex::encode(&h[..6])
}

fn describe(b: &EntryBody) -> String {
    match b {
        EntryBody::RoundOpened(o) => format!(
            "round opened: {} participants, {} q={} σ={} δ={} steps {} (cumulative {}), {} parameters",
            o.participants.len(),
            o.dp.accountant,
            o.dp.sampling_rate,
            o.dp.noise_multiplier,
            o.dp.delta,
            o.dp.steps_this_round,
            o.dp.steps_cumulative,
            o.parameters.len()
        ),
        EntryBody::UpdateReceived(u) => {
            format!("update from {:?} ciphertext {}…", u.client_id, short(&u.ciphertext_hash))
        }
        EntryBody::AggregateComputed(a) => format!(
            "aggregate {}… of {} inputs (inputs root {}…)",
            short(&a.aggregate_hash),
            a.input_count,
            short(&a.inputs_root)
        ),
        EntryBody::DecryptionShareReceived(d) => {
            format!("decryption share from {:?} {}…", d.party_id, short(&d.share_hash))
        }
        EntryBody::RoundClosed(c) => format!(
            "round closed: model {}…, ε global {}, ε for {} clients",
            short(&c.model_hash),
            c.epsilon_global,
            c.clients.len()
        ),
        EntryBody::Custom(c) => format!("custom {:?} ({} bytes)", c.kind, c.data.len()),
        _ => "entry of a newer kind".into(),
    }
}

fn demo_log(out: &Path, key: &Path, rounds: u64, clients: usize) -> anyhow::Result<()> {
    let signer = LogSigner::generate()?;
    let (sk, pk) = signer.save(key)?;
    let entries = cipherflow_fed::sim::synthetic_audit_log(out, signer, rounds, clients)?;
    println!(
        "wrote {} ({entries} entries) and keys {} / {}",
        out.display(),
        sk.display(),
        pk.display()
    );
    println!(
        "try: cipherflow audit verify {} --key {}",
        out.display(),
        pk.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cipherflow_ledger::entry::{DpSettings, RoundClosed, RoundOpened};
    use std::collections::BTreeMap;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cf-audit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn demo_log_prove_show_and_verify() {
        let d = tmpdir("demo");
        let log = d.join("demo.db");
        demo_log(&log, &d.join("demo"), 2, 4).unwrap();
        let key = d.join("demo.pub");
        verify(&log, &key, true, None, false, true, 1e-6).unwrap();
        prove(&log, Some(3), None, true, Some(&d.join("p.json"))).unwrap();
        verify_proof(&d.join("p.json"), &key, false).unwrap();
        prove(
            &log,
            None,
            Some(("client-1".into(), 2)),
            false,
            Some(&d.join("c.json")),
        )
        .unwrap();
        verify_proof(&d.join("c.json"), &key, true).unwrap();
        // A head seen earlier (here: the one in a proof file) must still be in the log.
        verify(
            &log,
            &key,
            false,
            Some(&d.join("c.json")),
            false,
            true,
            1e-6,
        )
        .unwrap();
        show(&log, 0, 5, true).unwrap();
        show(&log, 3, 100, false).unwrap();
        assert!(prove(&log, None, None, false, None).is_err());
        // Another key rejects both the log and the proofs.
        keygen(&d.join("other")).unwrap();
        let other = d.join("other.pub");
        assert!(verify(&log, &other, false, None, false, true, 1e-6).is_err());
        assert!(verify_proof(&d.join("c.json"), &other, false).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn misreported_epsilon_fails_verification() {
        let d = tmpdir("eps");
        let path = d.join("eps.db");
        let signer = LogSigner::generate().unwrap();
        signer.public_key().save(&d.join("k.pub")).unwrap();
        let mut log = Ledger::create(&path, "eps", signer).unwrap();
        let dp = DpSettings {
            accountant: cipherflow_ledger::entry::DpAccounting::Rdp,
            sampling_rate: 0.02,
            noise_multiplier: 1.0,
            delta: 1e-5,
            steps_this_round: 20,
            steps_cumulative: 20,
        };
        let real = cipherflow_fed::FedEpsilon::default()
            .epsilon(&dp, 20)
            .unwrap();
        log.append(
            1,
            EntryBody::RoundOpened(RoundOpened {
                parameters: BTreeMap::new(),
                participants: vec![],
                dp,
            }),
        )
        .unwrap();
        log.append(
            1,
            EntryBody::RoundClosed(RoundClosed {
                model_hash: [0; 32],
                epsilon_global: real * 0.5,
                clients: vec![],
            }),
        )
        .unwrap();
        drop(log);
        let key = d.join("k.pub");
        let e = verify(&path, &key, true, None, false, true, 1e-6).unwrap_err();
        assert!(e.to_string().contains("entry 1"), "{e}");
        verify(&path, &key, false, None, false, false, 1e-6).unwrap();
        let _ = std::fs::remove_dir_all(&d);
    }
}
