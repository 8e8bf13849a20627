//! Hierarchical aggregation as separate processes over gRPC with mutual
//! TLS on 127.0.0.1: a coordinator, two `fl region` aggregators and six
//! clients uploading through their regions. Every update is counted once
//! and provably; all three ledgers verify. A client that dials another
//! region, asks a region for tasks, or speaks as a region to the
//! coordinator is refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_fed::ca::Credentials;
use cipherflow_fed::messages::{TaskRequest, UploadChunk};
use cipherflow_fed::transport::agent::CoordinatorApi;
use cipherflow_fed::transport::grpc::{CoordinatorRemote, TlsFiles};
use cipherflow_fed::transport::region::CoordinatorLink;
use cipherflow_fed::{FedError, Role, Roster};
use cipherflow_ledger::entry::{KIND_CUSTOM, KIND_UPDATE_RECEIVED};
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Spawns `args` with stdout lines forwarded to `tx` (prefixed with
/// `tag`) and stderr kept in `dir/tag.stderr`.
fn spawn(dir: &Path, tag: &str, args: &[String], tx: &mpsc::Sender<String>) -> Child {
    let mut child = Command::new(bin())
        .current_dir(dir)
        .env("CIPHERFLOW_LOG", "cipherflow_fed=info")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(
            std::fs::File::create(dir.join(format!("{tag}.stderr")))
                .map_or_else(|_| Stdio::null(), Stdio::from),
        )
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, tag) = (tx.clone(), tag.to_string());
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(format!("{tag}: {line}")).is_err() {
                break;
            }
        }
    });
    child
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn tls(c: &Credentials) -> TlsFiles<'_> {
    TlsFiles {
        ca: &c.ca,
        cert: &c.cert,
        key: &c.key,
    }
}

/// Waits for a line that satisfies `pred`; panics with everything said
/// (and the processes' logs) after two minutes.
fn wait_for(
    dir: &Path,
    rx: &mpsc::Receiver<String>,
    log: &mut Vec<String>,
    pred: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            log.push(l.clone());
            if pred(&l) {
                return l;
            }
        }
    }
    let mut logs = String::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "stderr") {
            logs.push_str(&format!(
                "--- {}\n{}\n",
                e.path().display(),
                std::fs::read_to_string(e.path()).unwrap_or_default()
            ));
        }
    }
    panic!("timed out; said:\n{}\n{logs}", log.join("\n"));
}

/// The line starting with `prefix`, said already or waited for.
fn said(dir: &Path, rx: &mpsc::Receiver<String>, log: &mut Vec<String>, prefix: &str) -> String {
    match log.iter().find(|l| l.starts_with(prefix)) {
        Some(l) => l.clone(),
        None => wait_for(dir, rx, log, |l| l.starts_with(prefix)),
    }
}

#[test]
fn regional_aggregators_as_processes_count_every_update_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("fed.toml"),
        "name = \"bc-regions\"\nrounds = 20\nmodel = \"logreg\"\ninput = [30]\nclasses = 2\n\
         round_timeout_s = 30\n[training]\nepochs = 5\nbatch_size = 8\nlr = 0.05\n",
    )
    .unwrap();
    let pki = dir.join("pki");
    let ok = Command::new(bin())
        .args(["fl", "ca", "init", "--federation", "bc-regions"])
        .args(["--clients", "6", "--regions", "2", "--dir"])
        .arg(&pki)
        .status()
        .unwrap();
    assert!(ok.success());
    let roster = Roster::load(&pki.join("roster.json")).unwrap();
    assert_eq!(roster.regions.len(), 2);
    let (port, r1, r2) = (free_port(), free_port(), free_port());
    let top = format!("https://127.0.0.1:{port}");
    let region_url = |j: usize| format!("https://127.0.0.1:{}", [r1, r2][j - 1]);
    let (cfg, pki_s) = (
        dir.join("fed.toml").display().to_string(),
        pki.display().to_string(),
    );
    let (tx, rx) = mpsc::channel();
    let mut coord = spawn(
        dir,
        "coordinator",
        &strs(&[
            "fl",
            "coordinator",
            "--config",
            &cfg,
            "--pki",
            &pki_s,
            "--state",
            "top",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--json",
        ]),
        &tx,
    );
    let regions: Vec<Child> = (1..=2)
        .map(|j| {
            spawn(
                dir,
                &format!("region-{j}"),
                &strs(&[
                    "fl",
                    "region",
                    "--config",
                    &cfg,
                    "--pki",
                    &pki_s,
                    "--id",
                    &format!("region-{j}"),
                    "--state",
                    &format!("r{j}"),
                    "--listen",
                    &format!("127.0.0.1:{}", [r1, r2][j - 1]),
                    "--coordinator",
                    &top,
                ]),
                &tx,
            )
        })
        .collect();
    let clients: Vec<Child> = (1..=6)
        .map(|i| {
            let region = roster
                .by_id(&format!("client-{i}"))
                .and_then(|c| c.region.clone())
                .unwrap();
            let j: usize = region.trim_start_matches("region-").parse().unwrap();
            spawn(
                dir,
                &format!("client-{i}"),
                &strs(&[
                    "fl",
                    "client",
                    "--config",
                    &cfg,
                    "--pki",
                    &pki_s,
                    "--id",
                    &format!("client-{i}"),
                    "--shard",
                    &format!("{i}/6"),
                    "--coordinator",
                    &top,
                    "--region",
                    &region_url(j),
                    "--patience",
                    "60",
                    "--json",
                ]),
                &tx,
            )
        })
        .collect();
    let mut log: Vec<String> = Vec::new();
    // Once the key setup is done the regions serve: play the adversaries.
    // (Twenty rounds keep the federation running meanwhile.)
    for j in 1..=2 {
        said(
            dir,
            &rx,
            &mut log,
            &format!("region-{j}: regional aggregator"),
        );
    }
    refusals(&pki, &roster, &top, &region_url(1), &region_url(2));
    let done = wait_for(dir, &rx, &mut log, |l| {
        l.starts_with("coordinator: ") && l.contains("\"finished\"")
    });
    assert!(done.contains("\"rounds\":20"), "{done}");
    assert!(coord.wait().unwrap().success());
    for (i, c) in clients.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "client {} failed", i + 1);
        let tag = format!("client-{}: {{", i + 1);
        let line = said(dir, &rx, &mut log, &tag);
        let v: serde_json::Value = serde_json::from_str(line.split_once(": ").unwrap().1).unwrap();
        assert_eq!(v["uploads"].as_u64(), Some(20), "{line}");
        assert_eq!(v["counted_proofs"].as_u64(), Some(20), "{line}");
    }
    for (j, r) in (1..=2).zip(regions) {
        let out = r.wait_with_output().unwrap();
        assert!(out.status.success(), "region {j} failed");
        let tag = format!("region-{j}: region-{j}: ");
        let line = said(dir, &rx, &mut log, &tag);
        assert!(
            line.ends_with("20 sums forwarded (60 uploads, 0 late); finished: 20 rounds done"),
            "{line}"
        );
    }
    // The coordinator's ledger: each client's update once per round, and
    // one region-sum record per region and round.
    let ledger = Ledger::open_read_only(&dir.join("top/ledger.db")).unwrap();
    for round in 1..=20 {
        let senders: Vec<String> = ledger
            .round_entries(round, KIND_UPDATE_RECEIVED)
            .unwrap()
            .into_iter()
            .filter_map(|e| match e.body {
                EntryBody::UpdateReceived(u) => Some(u.client_id),
                _ => None,
            })
            .collect();
        let distinct: BTreeSet<&String> = senders.iter().collect();
        assert_eq!((senders.len(), distinct.len()), (6, 6), "round {round}");
        assert_eq!(
            ledger.round_entries(round, KIND_CUSTOM).unwrap().len(),
            2,
            "round {round}: one region-sum record per region"
        );
    }
    // All three ledgers verify offline under their pinned keys.
    for (db, key) in [
        ("top/ledger.db", "pki/ledger.pub"),
        ("r1/ledger.db", "pki/regions/region-1/ledger.pub"),
        ("r2/ledger.db", "pki/regions/region-2/ledger.pub"),
    ] {
        let v = Command::new(bin())
            .args(["audit", "verify"])
            .arg(dir.join(db))
            .arg("--key")
            .arg(dir.join(key))
            .output()
            .unwrap();
        assert!(
            v.status.success(),
            "{db}: {}{}",
            String::from_utf8_lossy(&v.stdout),
            String::from_utf8_lossy(&v.stderr)
        );
    }
}

/// What a client may not do with the regions and the coordinator.
fn refusals(pki: &Path, roster: &Roster, top: &str, region1: &str, region2: &str) {
    let c1 = Credentials::under(pki, "client-1");
    assert_eq!(
        roster.by_id("client-1").unwrap().region.as_deref(),
        Some("region-1")
    );
    let pin1 = roster.region_pin("region-1").unwrap();
    // Region 2's server does not hold region 1's pinned certificate.
    let mut wrong = CoordinatorRemote::connect(region2, &tls(&c1), &pin1).unwrap();
    let chunk = UploadChunk {
        federation: "bc-regions".into(),
        round: 1,
        index: 0,
        total: 1,
        num_examples: 1,
        ciphertext: vec![0; 16],
    };
    match wrong.upload(vec![chunk.clone()]) {
        Err(FedError::Refused(why)) => assert!(why.contains("region"), "{why}"),
        other => panic!("an impostor region was accepted: {other:?}"),
    }
    // A region takes uploads only.
    let mut mine = CoordinatorRemote::connect(region1, &tls(&c1), &pin1).unwrap();
    let poll = TaskRequest {
        federation: "bc-regions".into(),
        wait_ms: 0,
        known_tree_size: 0,
    };
    match mine.next_task(&poll) {
        Err(e) => assert!(e.to_string().contains("takes uploads only"), "{e}"),
        Ok(t) => panic!("a region handed out a task: {t:?}"),
    }
    // Only a region's client certificate speaks as a region.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pin = roster.server_pin(Role::Coordinator).unwrap();
    let as_region = rt.block_on(async {
        CoordinatorLink::connect(top, &tls(&c1), &pin, "bc-regions")
            .unwrap()
            .poll()
            .await
    });
    match as_region {
        Err(e) => assert!(e.to_string().contains("no region"), "{e}"),
        Ok(s) => panic!("a client polled as a region: {s:?}"),
    }
    // A region's server certificate is not a client certificate either.
    let server = Credentials::region_server(pki, "region-1");
    let with_server_cert = rt.block_on(async {
        CoordinatorLink::connect(top, &tls(&server), &pin, "bc-regions")
            .unwrap()
            .poll()
            .await
    });
    assert!(
        with_server_cert.is_err(),
        "a server certificate authenticated a region"
    );
}
