//! Logs of the long-running commands: the variables are documented in
//! `--help`, `CIPHERFLOW_LOG_FORMAT=json` writes one JSON object per line
//! on stderr (here: `cipherflow serve` recording an upload), and a value
//! that does not parse stops the command with the variable named.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{bin, byo, spawn_serve};
use std::io::Read;
use std::process::{Command, Stdio};

#[test]
fn help_documents_the_log_variables() {
    let out = Command::new(bin()).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for v in ["CIPHERFLOW_LOG ", "CIPHERFLOW_LOG_FORMAT", "json"] {
        assert!(text.contains(v), "{v} in {text}");
    }
}

#[test]
fn json_logs_are_one_object_per_line_and_bad_values_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut serve, url) = spawn_serve(
        dir.path(),
        &[],
        &[
            ("CIPHERFLOW_LOG", "info"),
            ("CIPHERFLOW_LOG_FORMAT", "json"),
        ],
        Stdio::piped(),
    );
    let ca = dir.path().join("repo/tls/ca.pem");
    let model = byo("digits_norm_cnn_plain.onnx");
    let up = Command::new(bin())
        .current_dir(dir.path())
        .args(["model", "upload", "--server", &url, "--ca"])
        .arg(&ca)
        .arg("--model")
        .arg(&model)
        .args([
            "--name",
            "digits",
            "--head-layers",
            "all",
            "--normalize",
            "0.3052,0.3749",
        ])
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let _ = serve.kill();
    let _ = serve.wait();
    let mut err = String::new();
    serve
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let logs: Vec<serde_json::Value> = err
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        logs.iter().any(|j| j["level"] == "INFO"
            && j["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("digits v1 uploaded"))),
        "{err}"
    );
    for (var, value) in [("CIPHERFLOW_LOG_FORMAT", "xml"), ("CIPHERFLOW_LOG", "=[")] {
        let out = Command::new(bin())
            .current_dir(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0", "--repo", "repo2"])
            .env(var, value)
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && e.contains(var), "{var}: {e}");
    }
}
