//! `cipherflow mpc train` on the user's own CSV table: the JSON contract,
//! both splits, the trained model saved and then used by `mpc predict`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{bin, gen_certs, json_of};
use std::path::Path;
use std::process::{Command, Output, Stdio};

const HEADER: &str = "age,bp,chol,hr,bmi,glu,label\n";

/// 600 patients, 6 measurements, a class that depends non-linearly on
/// them (an MLP's job): label 1 where x0·x1 + x2/2 > 0.
fn write_table(path: &Path) {
    let mut s = String::from(HEADER);
    let mut state = 12_345u64;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        ((state >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0
    };
    for _ in 0..600 {
        let x: Vec<f64> = (0..6).map(|_| next()).collect();
        let label = usize::from(x[0] * x[1] + 0.5 * x[2] > 0.0);
        let row: Vec<String> = x.iter().map(|v| format!("{v:.4}")).collect();
        s.push_str(&format!("{},{label}\n", row.join(",")));
    }
    std::fs::write(path, s).unwrap();
}

#[test]
fn private_training_on_a_users_table_saves_a_model_mpc_predict_runs() {
    let dir = tempfile::tempdir().unwrap();
    write_table(&dir.path().join("patients.csv"));
    for split in ["rows", "columns"] {
        let model = format!("trained-{split}.safetensors");
        let out = Command::new(bin())
            .current_dir(dir.path())
            .args([
                "mpc",
                "train",
                "--data",
                "patients.csv",
                "--model",
                "mlp:16",
            ])
            .args(["--split", split, "--epochs", "30", "--batch-size", "32"])
            .args(["--lr", "0.1", "--out", &model, "--json"])
            .output()
            .unwrap();
        let j = json_of(&out);
        for k in ["test_accuracy", "seconds", "bytes", "rounds", "epochs"] {
            assert!(j.get(k).is_some(), "{k}: {j}");
        }
        let acc = j["test_accuracy"].as_f64().unwrap();
        let plain = j["plaintext_accuracy"].as_f64().unwrap();
        assert!(acc > 0.85, "{split}: {j}");
        assert!((acc - plain).abs() < 0.05, "{split}: {j}");
        assert_eq!(j["examples"], 480, "{j}");
        assert_eq!(j["split"], split, "{j}");
        // The saved model runs in private prediction on the same table.
        let pred = Command::new(bin())
            .current_dir(dir.path())
            .args([
                "mpc",
                "predict",
                "--model",
                &model,
                "--input",
                "patients.csv",
            ])
            .args(["--label-column", "label", "--json"])
            .output()
            .unwrap();
        let p = json_of(&pred);
        assert_eq!(p["inputs"], 600, "{p}");
        assert!(p["accuracy"].as_f64().unwrap() > 0.85, "{p}");
    }
}

#[test]
fn bad_training_arguments_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    write_table(&dir.path().join("t.csv"));
    for (args, want) in [
        (vec!["--split", "diagonal"], "rows or columns"),
        (vec!["--reveal-to", "eve"], "unknown party"),
        (vec!["--ring", "32"], "64 or 128"),
        (vec!["--model", "mlp:0"], "hidden widths"),
        (vec!["--lr=-1"], "learning rate"),
        (vec!["--model", "cnn"], "image inputs"),
    ] {
        let out = Command::new(bin())
            .current_dir(dir.path())
            .args(["mpc", "train", "--data", "t.csv", "--epochs", "1"])
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(want),
            "{args:?}: {err}"
        );
    }
}

/// Rows `range` of the table at `from`, with its header, written to `to`.
fn rows(from: &Path, range: std::ops::Range<usize>, to: &Path) {
    let text = std::fs::read_to_string(from).unwrap();
    let body: Vec<&str> = text.lines().skip(1).collect();
    std::fs::write(to, format!("{HEADER}{}\n", body[range].join("\n"))).unwrap();
}

const SETTINGS: [&str; 8] = [
    "--epochs",
    "30",
    "--batch-size",
    "32",
    "--lr",
    "0.1",
    "--json",
    "--split=rows",
];

/// Three processes over TLS, each given only its own files; returns their
/// outputs (owner A, owner B, helper).
fn three_parties(d: &Path, config: &str, extra: [&[&str]; 3]) -> Vec<Output> {
    let own: [Vec<&str>; 3] = [
        vec![
            "--data",
            "a.csv",
            "--model",
            "mlp:16",
            "--test",
            "test.csv",
            "--out",
            "a.safetensors",
        ],
        vec![
            "--data",
            "b.csv",
            "--test",
            "test.csv",
            "--out",
            "b.safetensors",
        ],
        vec![],
    ];
    let children: Vec<_> = (0..3)
        .map(|id| {
            Command::new(bin())
                .current_dir(d)
                .args([
                    "mpc",
                    "train",
                    "--party",
                    &id.to_string(),
                    "--config",
                    config,
                ])
                .args(SETTINGS)
                .args(&own[id])
                .args(extra[id])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

#[test]
fn three_processes_each_with_its_own_table_train_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_table(&d.join("all.csv"));
    rows(&d.join("all.csv"), 0..250, &d.join("a.csv"));
    rows(&d.join("all.csv"), 250..500, &d.join("b.csv"));
    rows(&d.join("all.csv"), 500..600, &d.join("test.csv"));
    let config = gen_certs(d).display().to_string();
    let out = three_parties(d, &config, [&[], &[], &[]]);
    let j: Vec<serde_json::Value> = out.iter().map(json_of).collect();
    // Both owners learn the model and score it on their test table.
    for owner in &j[..2] {
        assert_eq!(owner["examples"], 500, "{owner}");
        assert!(owner["test_accuracy"].as_f64().unwrap() > 0.85, "{owner}");
        assert!(owner.get("plaintext_accuracy").is_none(), "{owner}");
    }
    // The helper learns nothing and saves nothing.
    assert!(j[2].get("test_accuracy").is_none(), "{}", j[2]);
    let params = |f: &str| -> Vec<f32> {
        let m = cipherflow_nn::io::load(&d.join(f)).unwrap().model;
        m.named_params()
            .iter()
            .flat_map(|(_, p)| p.value.iter().copied().collect::<Vec<_>>())
            .collect()
    };
    assert_eq!(
        params("a.safetensors"),
        params("b.safetensors"),
        "the same model"
    );
    assert!(!d.join("helper.safetensors").exists());
    // An owner started with another momentum is named before any
    // data is shared, and nobody trains.
    let out = three_parties(d, &config, [&[], &["--momentum", "0.5"], &[]]);
    for (id, o) in out.iter().enumerate() {
        assert!(!o.status.success(), "party {id} went on");
    }
    let err = String::from_utf8_lossy(&out[0].stderr);
    assert!(err.contains("party 1 trains with other settings"), "{err}");
    // The helper refuses data it would not use.
    let o = Command::new(bin())
        .current_dir(d)
        .args([
            "mpc", "train", "--party", "2", "--config", &config, "--data", "a.csv",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("holds no data"));
}
