//! The federated CLI as separate processes over gRPC with mutual TLS on
//! 127.0.0.1: the coordinator is SIGKILLed mid-round twice and restarted;
//! the federation completes with no update lost or counted twice, and the
//! audit log verifies. Also the `fl simulate --json` output contract.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

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

/// Spawns the coordinator and forwards its stdout lines.
fn coordinator(dir: &Path, port: u16, tx: mpsc::Sender<String>) -> Child {
    let mut child = Command::new(bin())
        .current_dir(repo())
        .args(["fl", "coordinator", "--config"])
        .arg(dir.join("fed.toml"))
        .arg("--pki")
        .arg(dir.join("pki"))
        .arg("--state")
        .arg(dir.join("state"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--eval",
            "breast-cancer",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
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

#[test]
fn coordinator_killed_mid_round_resumes_without_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("fed.toml"),
        "name = \"bc-restart\"\nrounds = 6\nmodel = \"logreg\"\ninput = [30]\nclasses = 2\n\
         round_timeout_s = 20\n[training]\nepochs = 20\nbatch_size = 4\nlr = 0.05\n",
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
    let port = free_port();
    let (tx, rx) = mpsc::channel();
    let mut coord = coordinator(dir, port, tx.clone());
    let clients: Vec<Child> = (1..=4)
        .map(|i| {
            Command::new(bin())
                .current_dir(repo())
                .args(["fl", "client", "--config"])
                .arg(dir.join("fed.toml"))
                .arg("--pki")
                .arg(dir.join("pki"))
                .args(["--id", &format!("client-{i}"), "--shard", &format!("{i}/4")])
                .args([
                    "--coordinator",
                    &format!("https://127.0.0.1:{port}"),
                    "--patience",
                    "90",
                    "--json",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut log = Vec::new();
    // Kill the coordinator twice, each time soon after a round closed, i.e.
    // while the next round is collecting or decrypting.
    for (k, after) in [(0, "round   2:"), (1, "round   4:")] {
        wait_for(&rx, &mut log, |l| l.contains(after));
        std::thread::sleep(Duration::from_millis(150 + 100 * k));
        coord.kill().unwrap();
        coord.wait().unwrap();
        log.push(format!("--- coordinator SIGKILLed (kill {k})"));
        coord = coordinator(dir, port, tx.clone());
        wait_for(&rx, &mut log, |l| l.contains("resumed"));
    }
    wait_for(&rx, &mut log, |l| l.contains("finished:"));
    assert!(coord.wait().unwrap().success());
    println!("{}", log.join("\n"));
    for c in clients {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success());
        let last = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or("")
            .to_string();
        let v: serde_json::Value = serde_json::from_str(&last).unwrap();
        assert_eq!(v["uploads"].as_u64(), Some(6), "{last}");
        assert_eq!(v["counted_proofs"].as_u64(), Some(6), "{last}");
    }
    // Every round closed exactly once, with all four updates.
    for r in 1..=6 {
        let lines: Vec<&String> = log
            .iter()
            .filter(|l| l.trim_start().starts_with(&format!("round {r:>3}:")))
            .collect();
        assert_eq!(lines.len(), 1, "round {r}: {lines:?}");
        assert!(lines[0].contains("4 updates"), "{}", lines[0]);
    }
    assert!(log.iter().any(|l| l.contains("finished: 6 rounds done")));
    let v = Command::new(bin())
        .args(["audit", "verify"])
        .arg(dir.join("state/ledger.db"))
        .arg("--key")
        .arg(dir.join("pki/ledger.pub"))
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
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
}
