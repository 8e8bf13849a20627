//! `cipherflow model splits` on a user's own model and files: one row per
//! split, each split that runs giving the right classes with its cost, and
//! the plain-tail leakage measured on the user's public inputs; a split
//! out of range is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{bin, byo};
use std::process::Command;

#[test]
fn the_split_table_of_a_users_model_on_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let mut c = Command::new(bin());
        c.current_dir(dir.path())
            .args(["model", "splits", "--model"]);
        c.arg(byo("digits_norm_cnn.onnx"))
            .arg("--input")
            .arg(byo("images"));
        c.args(extra).output().unwrap()
    };
    let out = run(&[
        "--public",
        byo("inputs.npy").to_str().unwrap(),
        "--limit",
        "4",
        "--epochs",
        "3",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(rows.len() >= 2, "{rows:?}");
    let mut ran = 0;
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["k"], i + 1, "{r}");
        let leak = &r["plain_tail_leakage"];
        let ssim = leak["ssim"].as_f64().unwrap();
        assert!((-1.0..=1.0).contains(&ssim), "{r}");
        assert!(leak["psnr"].as_f64().unwrap() > 0.0, "{r}");
        let mpc = &r["mpc"];
        if mpc.get("error").is_some() {
            assert!(!mpc["error"].as_str().unwrap().is_empty());
            continue;
        }
        ran += 1;
        assert_eq!(mpc["classes"].as_array().unwrap().len(), 4, "{r}");
        assert_eq!(mpc["accuracy"], 1.0, "{r}");
        assert!(
            mpc["key_bytes"].as_u64().unwrap() > 0 && mpc["ms_per_input"].as_f64().unwrap() > 0.0
        );
    }
    assert!(ran >= 1, "{rows:?}");
    // The text table, one split; a split out of range is refused.
    let out = run(&["--limit", "2", "--split", "1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("no leakage columns"),
        "{text}"
    );
    let out = run(&["--split", "99"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("split 99"),
        "{stderr}"
    );
}
