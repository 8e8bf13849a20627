//! The federated CLI as separate processes over gRPC with mutual TLS on
//! 127.0.0.1: the coordinator is SIGKILLed mid-round twice and restarted;
//! the federation completes with no update lost or counted twice, and the
//! audit log verifies (under a dynamic privacy schedule). Also the `fl simulate --json` output contract.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_ledger::entry::{
    KIND_AGGREGATE_COMPUTED, KIND_ROUND_CLOSED, KIND_ROUND_OPENED, KIND_UPDATE_RECEIVED,
};
use cipherflow_ledger::{EntryBody, Ledger};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cipherflow"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Spawns the coordinator and forwards its stdout lines, and its debug log
/// lines prefixed with `log: `.
fn coordinator(dir: &Path, port: u16, tx: mpsc::Sender<String>) -> Child {
    coordinator_on(dir, port, tx, None)
}

/// The environment variable naming the test Postgres server (a
/// `postgres://` URL; `scripts/test` starts a throwaway cluster).
const PG_ENV: &str = "CIPHERFLOW_TEST_POSTGRES";

/// As [`coordinator`], with its state in `postgres = (URL, schema)` when
/// given (the ledger and model still under `dir/state`).
fn coordinator_on(
    dir: &Path,
    port: u16,
    tx: mpsc::Sender<String>,
    postgres: Option<&(String, String)>,
) -> Child {
    let mut cmd = Command::new(bin());
    cmd.env("CIPHERFLOW_LOG", "cipherflow_fed=debug")
        .current_dir(repo())
        .args(["fl", "coordinator", "--config"])
        .arg(dir.join("fed.toml"))
        .arg("--pki")
        .arg(dir.join("pki"));
    match postgres {
        Some((url, schema)) => cmd
            .args(["--state", url, "--state-schema", schema, "--data-dir"])
            .arg(dir.join("state")),
        None => cmd.arg("--state").arg(dir.join("state")),
    };
    let mut child = cmd
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--eval",
            "breast-cancer",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let log_tx = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if log_tx.send(format!("log: {line}")).is_err() {
                break;
            }
        }
    });
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    child
}

/// Spawns client `i` of `n` (shard `i/n` of the shipped set), JSON
/// summary on stdout.
fn client(dir: &Path, port: u16, i: usize, n: usize, patience_s: u32) -> Child {
    client_with(dir, port, i, &["--shard", &format!("{i}/{n}")], patience_s)
}

/// Spawns client `i` with these data arguments.
fn client_with(dir: &Path, port: u16, i: usize, data: &[&str], patience_s: u32) -> Child {
    Command::new(bin())
        .current_dir(repo())
        .args(["fl", "client", "--config"])
        .arg(dir.join("fed.toml"))
        .arg("--pki")
        .arg(dir.join("pki"))
        .args(["--id", &format!("client-{i}")])
        .args(data)
        .args([
            "--coordinator",
            &format!("https://127.0.0.1:{port}"),
            "--patience",
            &patience_s.to_string(),
            "--json",
        ])
        .stdout(Stdio::piped())
        // Kept in a file (a pipe nobody reads could fill and stall the
        // client), shown when a test finds the client failed.
        .stderr(
            std::fs::File::create(dir.join(format!("client-{i}.stderr")))
                .map_or_else(|_| Stdio::null(), Stdio::from),
        )
        .spawn()
        .unwrap()
}

/// Client `i`'s standard error so far.
fn client_stderr(dir: &Path, i: usize) -> String {
    std::fs::read_to_string(dir.join(format!("client-{i}.stderr"))).unwrap_or_default()
}

fn wait_for(rx: &mpsc::Receiver<String>, log: &mut Vec<String>, pred: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            let hit = pred(&l);
            log.push(l);
            if hit {
                return;
            }
        }
    }
    panic!("timed out; coordinator said:\n{}", log.join("\n"));
}

/// A hospital's own records: every fourth standardized breast-cancer
/// example, as a CSV with a header, an id column and a named label column.
fn hospital_csv() -> String {
    let all = cipherflow_nn::examples::breast_cancer().unwrap();
    let mut d = all
        .subset(&(0..all.len()).step_by(4).collect::<Vec<_>>())
        .unwrap();
    cipherflow_nn::data::Standardizer::fit(&d)
        .unwrap()
        .apply(&mut d)
        .unwrap();
    let mut out = String::from("patient");
    for j in 0..30 {
        out.push_str(&format!(",f{j}"));
    }
    out.push_str(",label\n");
    for (i, (row, y)) in d.features().outer_iter().zip(d.labels()).enumerate() {
        out.push_str(&format!("p{i}"));
        for v in row {
            out.push_str(&format!(",{v}"));
        }
        out.push_str(&format!(",{y}\n"));
    }
    out
}

#[test]
fn coordinator_killed_mid_round_resumes_without_loss() {
    killed_mid_round(None);
}

/// The same with the coordinator's state in Postgres: two SIGKILLs, each
/// followed by a resume from the database, and nothing lost or counted
/// twice.
#[test]
fn coordinator_on_postgres_killed_mid_round_resumes_without_loss() {
    let Ok(url) = std::env::var(PG_ENV) else {
        eprintln!("{PG_ENV} is not set: the Postgres case of the kill test is skipped");
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let schema = format!("fl_kill_{}_{nanos}", std::process::id());
    killed_mid_round(Some(&(url, schema)));
}

fn killed_mid_round(postgres: Option<&(String, String)>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("fed.toml"),
        "name = \"bc-restart\"\nrounds = 6\nmodel = \"logreg\"\ninput = [30]\nclasses = 2\n\
         round_timeout_s = 20\n[training]\nepochs = 20\nbatch_size = 4\nlr = 0.05\n\
         [dp]\nepsilon = 8.0\n[dp.schedule]\nratio = 0.5\nphases = 3\n",
    )
    .unwrap();
    let ok = Command::new(bin())
        .args([
            "fl",
            "ca",
            "init",
            "--federation",
            "bc-restart",
            "--clients",
            "4",
            "--dir",
        ])
        .arg(dir.join("pki"))
        .status()
        .unwrap();
    assert!(ok.success());
    // Hospital 4 brings its own file (a CSV with a header and a label
    // column, standardized features), used whole; the others are shards.
    let own = dir.join("hospital-4.csv");
    std::fs::write(&own, hospital_csv()).unwrap();
    let port = free_port();
    let (tx, rx) = mpsc::channel();
    let mut coord = coordinator_on(dir, port, tx.clone(), postgres);
    let mut clients: Vec<Child> = (1..=3).map(|i| client(dir, port, i, 4, 90)).collect();
    clients.push(client_with(
        dir,
        port,
        4,
        &["--data", own.to_str().unwrap(), "--id-column", "patient"],
        90,
    ));
    let mut log = Vec::new();
    // Kill the coordinator twice mid-round: in round 3 right after it
    // stored its second update, in round 5 right after it asked for
    // decryption shares.
    let mut resumed = Vec::new();
    for (k, event, need) in [(0, "update accepted", 2), (1, "decryption requested", 1)] {
        let round = format!("round={}", 3 + 2 * k);
        let seen = std::cell::Cell::new(0);
        wait_for(&rx, &mut log, |l| {
            if l.starts_with("log: ") && l.contains(event) && l.contains(&round) {
                seen.set(seen.get() + 1);
            }
            seen.get() >= need
        });
        coord.kill().unwrap();
        coord.wait().unwrap();
        log.push(format!(
            "--- coordinator SIGKILLed (kill {k}: {round}, {event})"
        ));
        coord = coordinator_on(dir, port, tx.clone(), postgres);
        wait_for(&rx, &mut log, |l| {
            !l.starts_with("log: ") && l.contains("resumed")
        });
        resumed.push(log.last().cloned().unwrap_or_default());
    }
    wait_for(&rx, &mut log, |l| {
        !l.starts_with("log: ") && l.contains("finished:")
    });
    assert!(coord.wait().unwrap().success());
    let said: Vec<&String> = log.iter().filter(|l| !l.starts_with("log: ")).collect();
    println!(
        "{}",
        said.iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(resumed[0].contains("in round 3 with"), "{}", resumed[0]);
    assert!(resumed[1].contains("in round 5"), "{}", resumed[1]);
    for (i, c) in clients.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "client {i} failed ({}): {}",
            out.status,
            client_stderr(dir, i + 1)
        );
        let last = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or("")
            .to_string();
        let v: serde_json::Value = serde_json::from_str(&last).unwrap();
        assert_eq!(v["uploads"].as_u64(), Some(6), "{last}");
        assert_eq!(v["counted_proofs"].as_u64(), Some(6), "{last}");
    }
    // No round is reported closed twice. (A report can be missing: a kill
    // that lands between a round's commit and its progress line.)
    for r in 1..=6 {
        let lines: Vec<&String> = log
            .iter()
            .filter(|l| l.trim_start().starts_with(&format!("round {r:>3}:")))
            .collect();
        assert!(lines.len() <= 1, "round {r}: {lines:?}");
        assert!(lines.iter().all(|l| l.contains("4 updates")), "{lines:?}");
    }
    // With Postgres, the state lived in the database: no SQLite file.
    assert_eq!(
        dir.join("state/coordinator.db").exists(),
        postgres.is_none(),
        "where the state lived"
    );
    // The ledger is the record: every round opened and closed exactly once,
    // each client's update logged once and summed once.
    let ledger = Ledger::open_read_only(&dir.join("state/ledger.db")).unwrap();
    for r in 1..=6 {
        let count = |kind| ledger.round_entries(r, kind).unwrap().len();
        assert_eq!(count(KIND_ROUND_OPENED), 1, "round {r} opened");
        assert_eq!(count(KIND_ROUND_CLOSED), 1, "round {r} closed");
        let senders: BTreeSet<String> = ledger
            .round_entries(r, KIND_UPDATE_RECEIVED)
            .unwrap()
            .into_iter()
            .filter_map(|e| match e.body {
                EntryBody::UpdateReceived(u) => Some(u.client_id),
                _ => None,
            })
            .collect();
        assert_eq!(senders.len(), 4, "round {r}: {senders:?}");
        assert_eq!(
            count(KIND_UPDATE_RECEIVED),
            4,
            "round {r}: an update logged twice"
        );
        for e in ledger.round_entries(r, KIND_AGGREGATE_COMPUTED).unwrap() {
            match e.body {
                EntryBody::AggregateComputed(a) => assert_eq!(a.input_count, 4, "round {r}"),
                other => panic!("round {r}: {other:?}"),
            }
        }
    }
    assert!(log.iter().any(|l| l.contains("finished: 6 rounds done")));
    // The federation's model is a file the rest of the tool loads.
    let model = cipherflow_nn::io::safetensors::load_model(&dir.join("state/model.safetensors"))
        .expect("the coordinator wrote the final model");
    assert_eq!(model.num_params(), 31);
    let v = Command::new(bin())
        .args(["audit", "verify"])
        .arg(dir.join("state/ledger.db"))
        .arg("--key")
        .arg(dir.join("pki/ledger.pub"))
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    // A privacy schedule ran across both kills: three phases of two rounds,
    // each round's noise in the ledger, ε recomputed over all of them by
    // the audit above.
    let zs: Vec<f64> = (1..=6)
        .map(
            |r| match &ledger.round_entries(r, KIND_ROUND_OPENED).unwrap()[0].body {
                EntryBody::RoundOpened(o) => o.dp.noise_multiplier,
                other => panic!("{other:?}"),
            },
        )
        .collect();
    assert!(
        zs[0] == zs[1] && zs[1] > zs[2] && zs[2] == zs[3] && zs[3] > zs[4],
        "{zs:?}"
    );
    assert!((zs[5] / zs[0] - 0.5).abs() < 1e-9, "{zs:?}");
}

#[test]
fn simulate_json_contract() {
    let out = Command::new(bin())
        .current_dir(repo())
        .args([
            "fl",
            "simulate",
            "--data",
            "breast-cancer",
            "--clients",
            "6",
            "--rounds",
            "2",
        ])
        .args(["--dropout", "0.2", "--dp-epsilon", "3", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    for k in [
        "rounds",
        "final_accuracy",
        "epsilon",
        "upload_bytes_per_param",
        "round_seconds_median",
        "ledger",
    ] {
        assert!(v.get(k).is_some(), "missing {k} in {v}");
    }
    assert_eq!(v["ledger"], "verified");
    assert!(v["epsilon"].as_f64().unwrap() <= 3.0);
    // Bad arguments fail with a message, not a panic.
    let bad = Command::new(bin())
        .args(["fl", "simulate", "--clients", "1"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--clients"));
    // Absurd sizes are refused before anything is allocated (no panic, no
    // allocator abort).
    for p in ["0", "1", "10000000000"] {
        let bad = Command::new(bin())
            .args(["fl", "simulate", "--params-per-client", p, "--clients", "4"])
            .output()
            .unwrap();
        assert_eq!(bad.status.code(), Some(1), "--params-per-client {p}");
        assert!(
            String::from_utf8_lossy(&bad.stderr).contains("--params-per-client"),
            "{}",
            String::from_utf8_lossy(&bad.stderr)
        );
    }
    // A configuration is read exactly as the processes read it: shapes that
    // do not fit the data are an error, not silently replaced.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("fed.toml");
    std::fs::write(
        &cfg,
        "name = \"bc\"\nrounds = 1\nmodel = \"logreg\"\ninput = [10]\nclasses = 2\n",
    )
    .unwrap();
    let bad = Command::new(bin())
        .current_dir(repo())
        .args(["fl", "simulate", "--clients", "4", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("the configuration says input [10]"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

/// Unmounts on drop (even when the test fails).
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_under_the_coordinator_during_key_setup_is_survived() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("fed.toml"),
        "name = \"bc-full\"\nrounds = 2\nmodel = \"logreg\"\ninput = [30]\nclasses = 2\n\
         round_timeout_s = 20\n[training]\nepochs = 2\nbatch_size = 16\nlr = 0.1\n",
    )
    .unwrap();
    let ok = Command::new(bin())
        .args([
            "fl",
            "ca",
            "init",
            "--federation",
            "bc-full",
            "--clients",
            "3",
            "--dir",
        ])
        .arg(dir.join("pki"))
        .status()
        .unwrap();
    assert!(ok.success());
    // The coordinator's state on a 4 MiB file system of its own.
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&state)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: cannot mount a tmpfs here (root needed); full-disk test not run");
        return;
    }
    let _unmount = Mounted(state.clone());
    let port = free_port();
    let (tx, rx) = mpsc::channel();
    let mut log = Vec::new();
    let mut coord = coordinator(dir, port, tx);
    wait_for(&rx, &mut log, |l| l.starts_with("coordinator for"));
    // Fill the disk before anyone joins: every join and dealing fails to
    // be stored.
    let filler = state.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 << 10];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }
    let clients: Vec<Child> = (1..=3).map(|i| client(dir, port, i, 3, 120)).collect();
    // The coordinator says what failed, at error level…
    wait_for(&rx, &mut log, |l| {
        l.starts_with("log: ") && l.contains("ERROR") && l.contains("storage failure")
    });
    std::thread::sleep(Duration::from_secs(2));
    // …and once space returns, the federation resumes and completes.
    std::fs::remove_file(&filler).unwrap();
    wait_for(&rx, &mut log, |l| {
        !l.starts_with("log: ") && l.contains("finished:")
    });
    assert!(coord.wait().unwrap().success());
    assert!(
        log.iter().any(|l| l.contains("finished: 2 rounds done")),
        "{log:?}"
    );
    for (i, c) in clients.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "client {} gave up: {}",
            i + 1,
            client_stderr(dir, i + 1)
        );
        let last = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or("")
            .to_string();
        let v: serde_json::Value = serde_json::from_str(&last).unwrap();
        assert_eq!(v["uploads"].as_u64(), Some(2), "{last}");
        assert!(v["retries"].as_u64().unwrap_or(0) > 0, "{last}");
    }
    let v = Command::new(bin())
        .args(["audit", "verify"])
        .arg(state.join("ledger.db"))
        .arg("--key")
        .arg(dir.join("pki/ledger.pub"))
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
}

/// `fl simulate --data DIR`: one CSV table per hospital, as many clients as
/// tables; every round counts each hospital's update (a proof per client
/// per round), whatever --clients says.
#[test]
fn simulate_takes_one_file_per_hospital() {
    let dir = tempfile::tempdir().unwrap();
    let hospitals = dir.path().join("hospitals");
    std::fs::create_dir(&hospitals).unwrap();
    let csv = hospital_csv();
    let lines: Vec<&str> = csv.lines().collect();
    let (header, rows) = lines.split_first().unwrap();
    for h in 0..3 {
        let mut t = format!("{header}\n");
        for r in rows.iter().skip(h).step_by(3) {
            t.push_str(r);
            t.push('\n');
        }
        std::fs::write(hospitals.join(format!("hospital-{h}.csv")), t).unwrap();
    }
    let out = Command::new(bin())
        .current_dir(dir.path())
        .args([
            "fl",
            "simulate",
            "--data",
            "hospitals",
            "--id-column",
            "patient",
        ])
        .args(["--clients", "10", "--rounds", "2", "--json"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(v["counted_proofs_verified"], 6, "{v}");
    assert!(v["final_accuracy"].as_f64().unwrap() > 0.8, "{v}");
}
