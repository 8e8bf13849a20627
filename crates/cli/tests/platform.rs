//! The platform as separate processes on 127.0.0.1 over TLS: `cipherflow
//! serve` (the platform), `cipherflow model upload` (a model creator, in
//! its own directory) and `cipherflow query` (a user, in another): the
//! user's encrypted answers equal what `cipherflow infer` decides on the
//! same files; a model without a split, an unserved mode, a new version
//! without the creator's token and a stopped platform end with clear
//! errors; a user killed mid-query does not stop the
//! others; a platform restarted on its repository has lost nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{bin, byo, json_of, spawn_serve};
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

/// The platform, killed when dropped.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cipherflow serve` on a free port in `dir`; returns it and its URL.
fn serve(dir: &Path) -> (Serve, String) {
    serve_with(dir, &[])
}

/// [`serve`] with more arguments.
fn serve_with(dir: &Path, extra: &[&str]) -> (Serve, String) {
    let (child, url) = spawn_serve(dir, extra, &[], Stdio::inherit());
    (Serve(child), url)
}

#[test]
fn a_creator_uploads_a_user_queries_encrypted_in_separate_processes() {
    let root = tempfile::tempdir().unwrap();
    let (platform_dir, creator, user) = (
        root.path().join("platform"),
        root.path().join("creator"),
        root.path().join("user"),
    );
    for d in [&platform_dir, &creator, &user] {
        std::fs::create_dir(d).unwrap();
    }
    let (mut server, url) = serve(&platform_dir);
    let ca = platform_dir.join("repo/tls/ca.pem");
    let ca = ca.to_str().unwrap();
    let images = byo("images");
    let images = images.to_str().unwrap();
    // The creator trains a model on its files and uploads it, the whole
    // model open to the platform; a second one stays closed.
    let out = run(
        &creator,
        &[
            "train",
            "--data",
            images,
            "--model",
            "logreg",
            "--epochs",
            "5",
            "--normalize",
            "0.3052,0.3749",
            "--out",
            "m.safetensors",
            "--json",
        ],
    );
    assert!(out.status.success());
    let up = |name: &str, head: &str| {
        run(
            &creator,
            &[
                "model",
                "upload",
                "--server",
                &url,
                "--ca",
                ca,
                "--model",
                "m.safetensors",
                "--name",
                name,
                "--head-layers",
                head,
            ],
        )
    };
    let j = json_of(&up("logreg", "all"));
    assert_eq!(j["model"]["modes"][0], "he", "{j}");
    assert!(creator.join("logreg.token").exists());
    // What the model decides, run locally by its owner.
    let preds = creator.join("p.csv");
    let out = run(
        &creator,
        &[
            "infer",
            "--model",
            "m.safetensors",
            "--input",
            images,
            "--predictions",
            preds.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(json_of(&out)["plain_agreement"], 1.0);
    let want: Vec<(String, String)> = csv::Reader::from_path(&preds)
        .unwrap()
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_string(), r[1].to_string())
        })
        .collect();
    // The user queries from its own directory, holding no model file.
    let out = run(
        &user,
        &[
            "query", "--server", &url, "--ca", ca, "--model", "logreg", "--mode", "he", "--input",
            images, "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (answers, summary) = lines.split_at(lines.len() - 1);
    assert_eq!(answers.len(), want.len());
    for (a, (id, class)) in answers.iter().zip(&want) {
        assert_eq!(a["id"], id.as_str());
        assert_eq!(a["class"].to_string(), *class, "{a}");
        assert_eq!(a["mode"], "he");
        for k in [
            "class_name",
            "split",
            "ms",
            "upload_bytes",
            "download_bytes",
        ] {
            assert!(!a[k].is_null(), "{k} in {a}");
        }
    }
    assert_eq!(summary[0]["inputs"], want.len(), "{}", summary[0]);
    assert!(summary[0]["key_bytes"].as_u64().unwrap() > 0);
    // A one-layer model has no split (mpc, the default mode, and
    // plain-tail): clear refusals.
    for (mode, why) in [
        ("mpc", "not served in mpc mode"),
        ("plain-tail", "needs --split"),
        ("plain-tail --split 1", "served in mpc mode at splits []"),
    ] {
        let mut args = vec![
            "query", "--server", &url, "--ca", ca, "--model", "logreg", "--input", images, "--mode",
        ];
        args.extend(mode.split(' '));
        let out = run(&user, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(why), "{err}");
    }
    // A new version needs the creator's token file.
    json_of(&up("logreg", "all"));
    std::fs::remove_file(creator.join("logreg.token")).unwrap();
    let out = up("logreg", "all");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("403"), "{err}");
    // A user killed mid-query: the platform goes on serving the others.
    let mut victim = Command::new(bin())
        .current_dir(&user)
        .args([
            "query", "--server", &url, "--ca", ca, "--model", "logreg", "--mode", "he", "--input",
            images, "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(victim.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    victim.kill().unwrap();
    victim.wait().unwrap();
    let classes = |out: &Output| -> Vec<String> {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|j| j.get("class").is_some())
            .map(|j| j["class"].to_string())
            .collect()
    };
    let query = || {
        run(
            &user,
            &[
                "query", "--server", &url, "--ca", ca, "--model", "logreg", "--mode", "he",
                "--input", images, "--json",
            ],
        )
    };
    let before = classes(&query());
    assert_eq!(before.len(), want.len());
    // The platform stops: the user's query fails with a clear error.
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    let out = query();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("transport"), "{err}");
    // Restarted on its repository (same address, same certificates):
    // nothing stored was lost.
    let port = url.rsplit(':').next().unwrap();
    let mut again = Command::new(bin())
        .current_dir(&platform_dir)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--repo",
            "repo",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(again.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _again = Serve(again);
    let list = json_of(&run(
        &user,
        &["model", "list", "--server", &url, "--ca", ca],
    ));
    let names: Vec<&str> = list["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["logreg"], "{list}");
    assert_eq!(list["models"][0]["version"], 2, "{list}");
    assert_eq!(classes(&query()), before);
}

/// A background process killed when dropped.
struct Bg(Child);

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The split modes as three processes: the creator uploads only the first
/// two layers of its ONNX CNN and hosts the rest; the user's classes in
/// `mpc` mode — and in `plain-tail` once its measured leakage is accepted —
/// equal what `cipherflow infer` decides; so do `he` and `mpc` on the
/// shipped digits CNN; `he` on the ONNX model is refused (the platform
/// does not hold it); a killed user does not stop the others; a host
/// killed mid-session ends the user's query with a clear error, and new
/// sessions are refused until a host returns.
#[test]
fn mpc_mode_runs_as_three_processes_and_a_killed_host_is_named() {
    let root = tempfile::tempdir().unwrap();
    let (platform_dir, creator, user) = (
        root.path().join("platform"),
        root.path().join("creator"),
        root.path().join("user"),
    );
    for d in [&platform_dir, &creator, &user] {
        std::fs::create_dir(d).unwrap();
    }
    let public = format!("digits={}", byo("inputs-idx3-ubyte.gz").display());
    let (_server, url) = serve_with(
        &platform_dir,
        &["--public", &public, "--public-epochs", "1"],
    );
    let ca = platform_dir.join("repo/tls/ca.pem");
    let ca = ca.to_str().unwrap();
    let images = byo("images");
    let images = images.to_str().unwrap();
    let model = byo("digits_norm_cnn.onnx");
    let model = model.to_str().unwrap();
    let j = json_of(&run(
        &creator,
        &[
            "model",
            "upload",
            "--server",
            &url,
            "--ca",
            ca,
            "--model",
            model,
            "--name",
            "digits",
            "--head-layers",
            "2",
            "--domain",
            "digits",
            "--task",
            "digit classification",
        ],
    ));
    assert_eq!(j["model"]["modes"], serde_json::json!(["mpc"]), "{j}");
    assert_eq!(j["model"]["head_layers"], 2, "{j}");
    // What the model decides, run by its owner.
    let out = run(
        &creator,
        &[
            "infer",
            "--model",
            model,
            "--input",
            images,
            "--predictions",
            "p.csv",
            "--json",
        ],
    );
    assert_eq!(json_of(&out)["plain_agreement"], 1.0);
    let want: Vec<(String, String)> = csv::Reader::from_path(creator.join("p.csv"))
        .unwrap()
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_string(), r[1].to_string())
        })
        .collect();
    let host_of = |name: &str, file: &str| {
        let mut c = Command::new(bin())
            .current_dir(&creator)
            .args([
                "model-host",
                "--server",
                &url,
                "--ca",
                ca,
                "--model",
                name,
                "--tail",
                file,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(c.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let j: serde_json::Value = serde_json::from_str(&line).unwrap();
        (Bg(c), j["fingerprint"].as_str().unwrap().to_string(), out)
    };
    let (mut hosted, fp, _host_out) = host_of("digits", model);
    let query = |extra: &[&str]| {
        let mut args = vec![
            "query", "--server", &url, "--ca", ca, "--model", "digits", "--input", images, "--json",
        ];
        args.extend(extra);
        run(&user, &args)
    };
    for extra in [&["--host-fingerprint", fp.as_str()][..], &["--split", "2"]] {
        let out = query(extra);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let (answers, summary) = lines.split_at(lines.len() - 1);
        assert_eq!(answers.len(), want.len());
        for (a, (id, class)) in answers.iter().zip(&want) {
            assert_eq!(a["id"], id.as_str());
            assert_eq!(a["class"].to_string(), *class, "{a}");
            assert_eq!(a["mode"], "mpc");
            for k in [
                "class_name",
                "ms",
                "upload_bytes",
                "download_bytes",
                "mpc_bytes",
            ] {
                assert!(!a[k].is_null(), "{k} in {a}");
            }
        }
        let split = if extra.contains(&"--split") { 2 } else { 1 };
        assert_eq!(summary[0]["split"], split, "{}", summary[0]);
        assert_eq!(summary[0]["inputs"], want.len(), "{}", summary[0]);
    }
    // The shipped digits CNN, the whole of it open to the platform: he and
    // mpc on it give what `infer` decides.
    let shipped =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/models/digits-cnn.safetensors");
    let shipped = shipped.to_str().unwrap();
    json_of(&run(
        &creator,
        &[
            "model",
            "upload",
            "--server",
            &url,
            "--ca",
            ca,
            "--model",
            shipped,
            "--name",
            "shipped",
            "--head-layers",
            "all",
            "--input-bound",
            "1",
        ],
    ));
    // The same images, labelled by class index (the shipped model names
    // no classes).
    let numbered = root.path().join("numbered");
    for (name, idx) in [("zero", 0), ("three", 3), ("five", 5), ("eight", 8)] {
        let to = numbered.join(idx.to_string());
        std::fs::create_dir_all(&to).unwrap();
        for f in std::fs::read_dir(byo("images").join(name)).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
        }
    }
    let numbered = numbered.to_str().unwrap();
    let out = run(
        &creator,
        &[
            "infer",
            "--model",
            shipped,
            "--input",
            numbered,
            "--predictions",
            "s.csv",
            "--json",
        ],
    );
    assert_eq!(json_of(&out)["plain_agreement"], 1.0);
    let want_shipped: Vec<String> = csv::Reader::from_path(creator.join("s.csv"))
        .unwrap()
        .records()
        .map(|r| r.unwrap()[1].to_string())
        .collect();
    let (_shipped_host, _, _shipped_out) = host_of("shipped", shipped);
    for mode in ["he", "mpc"] {
        let out = run(
            &user,
            &[
                "query", "--server", &url, "--ca", ca, "--model", "shipped", "--mode", mode,
                "--input", numbered, "--json",
            ],
        );
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|j| j.get("class").is_some())
            .map(|j| j["class"].to_string())
            .collect();
        assert_eq!(got, want_shipped, "{mode}");
    }
    // plain-tail: refused with the measured leakage until accepted (the
    // measurement runs after the upload), then the same classes.
    let mut err = String::new();
    for _ in 0..300 {
        let out = query(&["--mode", "plain-tail", "--split", "1"]);
        assert!(!out.status.success());
        err = String::from_utf8_lossy(&out.stderr).to_string();
        if err.contains("SSIM") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(err.contains("--accept-leakage"), "{err}");
    let out = query(&["--mode", "plain-tail", "--split", "1", "--accept-leakage"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|j: &serde_json::Value| j.get("class").is_some())
        .collect();
    assert_eq!(got.len(), want.len());
    for (a, (_, class)) in got.iter().zip(&want) {
        assert_eq!(a["class"].to_string(), *class, "{a}");
        assert_eq!(a["mode"], "plain-tail");
    }
    // A pinned fingerprint that is not the host's; he on a model the
    // platform holds only the head of.
    for (extra, why) in [
        (
            &["--host-fingerprint", &"ab".repeat(32)][..],
            "not the pinned",
        ),
        (&["--mode", "he"], "cannot be queried encrypted (he)"),
    ] {
        let out = query(extra);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(why), "{err}");
    }
    // A user killed mid-session: the others go on (and the host too).
    let mut gone = Command::new(bin())
        .current_dir(&user)
        .args([
            "query", "--server", &url, "--ca", ca, "--model", "digits", "--input", images, "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(gone.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    gone.kill().unwrap();
    gone.wait().unwrap();
    let out = query(&["--limit", "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The host is killed while a user's session is open: that user's
    // query ends with the reason, soon.
    let mut victim = Command::new(bin())
        .current_dir(&user)
        .args([
            "query", "--server", &url, "--ca", ca, "--model", "digits", "--input", images, "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(victim.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("\"class\""), "{first}");
    hosted.0.kill().unwrap();
    hosted.0.wait().unwrap();
    let t = std::time::Instant::now();
    let out = victim.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("party 0") || err.contains("computation ended"),
        "{err}"
    );
    assert!(t.elapsed().as_secs() < 30, "{:?}", t.elapsed());
    // No host: new sessions are refused with the reason.
    let out = query(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no host of digits is online"),
        "{err}"
    );
}
