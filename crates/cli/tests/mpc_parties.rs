//! `cipherflow mpc` with each party's own files, as three processes over
//! TLS on 127.0.0.1: the model owner reads only the model, the data owner
//! only its inputs, the helper nothing; the classes reach the data
//! owner's predictions file and nobody's output. Where strace is
//! installed, the files each process opens are checked too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{bin, byo, gen_certs, json_of};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// PyTorch's classes for the eight fixture images (io.json).
fn torch_classes() -> Vec<usize> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(byo("io.json")).unwrap()).unwrap();
    v["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let o: Vec<f64> = serde_json::from_value(o.clone()).unwrap();
            (0..o.len()).max_by(|&a, &b| o[a].total_cmp(&o[b])).unwrap()
        })
        .collect()
}

#[test]
fn each_party_reads_its_own_file_and_only_the_data_owner_learns_the_classes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = gen_certs(d).display().to_string();
    let model = byo("digits_norm_cnn.onnx");
    let inputs = byo("inputs-idx3-ubyte.gz");
    let labels = byo("labels-idx1-ubyte.gz");
    let strace = Command::new("strace").arg("-V").output().is_ok();
    // Every party is given every path: each must use only its own.
    let all = [
        "--model",
        model.to_str().unwrap(),
        "--input",
        inputs.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
        "--predictions",
        "predictions.csv",
    ];
    let children: Vec<_> = ["model-owner", "data-owner", "helper"]
        .iter()
        .map(|role| {
            let wd = d.join(role);
            std::fs::create_dir_all(&wd).unwrap();
            let mut args: Vec<String> = Vec::new();
            let mut cmd = if strace {
                args.extend(["-f", "-e", "trace=open,openat", "-o", "trace.txt"].map(String::from));
                args.push(bin().display().to_string());
                Command::new("strace")
            } else {
                Command::new(bin())
            };
            args.extend(
                [
                    "mpc", "party", "--role", role, "--config", &config, "--json",
                ]
                .map(String::from),
            );
            args.extend(all.map(String::from));
            cmd.args(&args)
                .current_dir(&wd)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let reports: Vec<serde_json::Value> = outs.iter().map(json_of).collect();
    for (i, r) in reports.iter().enumerate() {
        assert_eq!(r["party"], i, "{r}");
        assert_eq!(r["inputs"], 8);
        assert!(
            r.get("classes").is_none(),
            "classes printed by party {i}: {r}"
        );
        for k in ["seconds", "bytes", "rounds", "ms_per_input"] {
            assert!(r[k].is_number(), "{k}: {r}");
        }
    }
    // The data owner learned the classes (PyTorch's), and its accuracy;
    // the others know neither.
    assert!(reports[1]["accuracy"].is_number());
    assert!(reports[0].get("accuracy").is_none() && reports[2].get("accuracy").is_none());
    let pred = std::fs::read_to_string(d.join("data-owner/predictions.csv")).unwrap();
    let classes: Vec<usize> = pred
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(classes, torch_classes());
    // Class names published by the model owner name the classes.
    assert!(
        pred.lines()
            .nth(1)
            .unwrap()
            .split(',')
            .nth(2)
            .unwrap()
            .len()
            > 1
    );
    for role in ["model-owner", "helper"] {
        assert!(!d.join(role).join("predictions.csv").exists(), "{role}");
    }
    if strace {
        let opened = |role: &str, path: &Path| {
            std::fs::read_to_string(d.join(role).join("trace.txt"))
                .unwrap()
                .contains(&path.display().to_string())
        };
        assert!(opened("model-owner", &model));
        assert!(!opened("model-owner", &inputs) && !opened("model-owner", &labels));
        assert!(opened("data-owner", &inputs) && opened("data-owner", &labels));
        assert!(!opened("data-owner", &model));
        for f in [&model, &inputs, &labels] {
            assert!(!opened("helper", f));
        }
    } else {
        eprintln!("strace not installed: the files each party opens were not traced");
    }
}

/// The local form: three parties in one process, the contract's JSON line.
#[test]
fn local_private_prediction_of_a_cnn_on_user_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .current_dir(dir.path())
        .args(["mpc", "predict", "--model"])
        .arg(byo("digits_norm_cnn.onnx"))
        .arg("--input")
        .arg(byo("images"))
        .args(["--predictions", "p.csv", "--json"])
        .output()
        .unwrap();
    let j = json_of(&out);
    for k in ["inputs", "seconds", "bytes", "rounds", "ms_per_input"] {
        assert!(j.get(k).is_some(), "{k}: {j}");
    }
    // ImageFolder labels (class names) matched to the model's names.
    assert_eq!(j["accuracy"], 1.0, "{j}");
    let missing = Command::new(bin())
        .args(["mpc", "predict", "--model"])
        .arg(byo("digits_norm_cnn.onnx"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--input"));
}

/// A party stopped mid-computation (SIGSTOP) fails the other two within
/// the configured timeout; the one blocked on it names it — whether it was
/// waiting to receive from it or to send to it (a full socket buffer) —
/// and tells the other why it stops (an abort notice), so both name it.
#[test]
fn a_stopped_party_is_named_within_the_timeout() {
    if Command::new("kill").arg("-l").output().is_err() {
        eprintln!("no kill command: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = short_deadline(dir.path());
    let start = std::time::Instant::now();
    let mut children: Vec<_> = (0..3)
        .map(|id| {
            Command::new(bin())
                .args(["mpc", "party", "--id", &id.to_string(), "--config"])
                .arg(&config)
                .args(["--task", "bench-matmul", "--n", "1500", "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let stopped = children.pop().unwrap();
    let pid = stopped.id().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    let outs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let elapsed = start.elapsed().as_secs_f64();
    let _ = Command::new("kill").args(["-KILL", &pid]).status();
    let _ = stopped.wait_with_output();
    let errs: Vec<String> = outs
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .collect();
    for (i, (o, err)) in outs.iter().zip(&errs).enumerate() {
        assert!(!o.status.success(), "party {i} finished: {err}");
        assert!(err.contains("party "), "party {i} names no party: {err}");
    }
    // The party blocked on party 2 itself (receiving from it, or sending
    // into its full buffers) names it; the other, waiting on that party,
    // receives its abort notice, which names party 2 too — the cascade
    // points at the stopped party from both sides.
    for (i, e) in errs.iter().enumerate() {
        assert!(
            e.contains("party 2"),
            "party {i} does not name party 2: {e}"
        );
    }
    // 1.5 s before the stop, one 3 s timeout, and the local work of a
    // 1500×1500 product on a loaded machine.
    assert!(elapsed < 45.0, "the others took {elapsed:.1} s");
}

/// The network file with a 3 s deadline, and party 2's address.
fn short_deadline(d: &Path) -> (PathBuf, String) {
    let config = gen_certs(d);
    let text = std::fs::read_to_string(&config).unwrap();
    let addrs: Vec<String> = text
        .split('"')
        .filter(|s| s.starts_with("127.0.0.1:"))
        .map(String::from)
        .collect();
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("timeout_ms") {
                "timeout_ms = 3000".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&config, text).unwrap();
    (config, addrs[2].clone())
}

/// Parties 0 and 1 of a 1500×1500 product; party 2 as `party2` arranges.
fn two_parties_with(config: &Path, party2: impl FnOnce()) -> (Vec<String>, f64) {
    let start = std::time::Instant::now();
    let children: Vec<_> = (0..2)
        .map(|id| {
            Command::new(bin())
                .args(["mpc", "party", "--id", &id.to_string(), "--config"])
                .arg(config)
                .args(["--task", "bench-matmul", "--n", "1500", "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    party2();
    let errs = children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            assert!(!o.status.success());
            String::from_utf8_lossy(&o.stderr).into_owned()
        })
        .collect();
    (errs, start.elapsed().as_secs_f64())
}

/// A party that never starts, one that accepts connections and stays
/// silent (half-open), and one killed mid-computation (SIGKILL): each time
/// both others fail within a few deadlines and name party 2.
#[test]
fn never_started_half_open_and_killed_parties_are_named_within_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let (config, addr2) = short_deadline(dir.path());
    // Never started.
    let (errs, secs) = two_parties_with(&config, || {});
    for e in &errs {
        assert!(e.contains("party 2"), "never started: {e}");
    }
    eprintln!("never started: {secs:.1} s, {errs:?}");
    assert!(secs < 20.0, "never started: {secs:.1} s");
    // Half-open: TCP accepted and held, nothing said.
    let listener = std::net::TcpListener::bind(&addr2).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    listener.set_nonblocking(true).unwrap();
    let holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok((s, _)) = listener.accept() {
                held.push(s);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    });
    let (errs, secs) = two_parties_with(&config, || {});
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    holder.join().unwrap();
    for e in &errs {
        assert!(e.contains("party 2"), "half-open: {e}");
    }
    eprintln!("half-open: {secs:.1} s, {errs:?}");
    assert!(secs < 20.0, "half-open: {secs:.1} s");
    // Killed mid-computation.
    if Command::new("kill").arg("-l").output().is_err() {
        eprintln!("no kill command: SIGKILL case skipped");
        return;
    }
    let (errs, secs) = two_parties_with(&config, || {
        let mut p2 = Command::new(bin())
            .args(["mpc", "party", "--id", "2", "--config"])
            .arg(&config)
            .args(["--task", "bench-matmul", "--n", "1500", "--json"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        p2.kill().unwrap();
        p2.wait().unwrap();
    });
    for e in &errs {
        assert!(e.contains("party 2"), "killed: {e}");
    }
    eprintln!("killed: {secs:.1} s, {errs:?}");
    assert!(secs < 20.0, "killed: {secs:.1} s");
}
