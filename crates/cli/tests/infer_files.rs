//! `cipherflow infer` on the files a user brings: a PyTorch-exported ONNX
//! model with external data and stored preprocessing, run encrypted on a
//! folder of PNG files, a `.npy` array and a CSV table, from another
//! working directory; the per-input predictions file equals PyTorch's
//! classes, and a wrong input gets a clear error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{byo, json_of};
use std::path::Path;
use std::process::{Command, Output};

fn cipherflow(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cipherflow"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

/// PyTorch's class for each of the eight inputs (argmax of its outputs).
fn torch_classes() -> (Vec<usize>, serde_json::Value) {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(byo("io.json")).unwrap()).unwrap();
    let argmax = |o: &serde_json::Value| {
        let o: Vec<f64> = serde_json::from_value(o.clone()).unwrap();
        (0..o.len()).max_by(|&a, &b| o[a].total_cmp(&o[b])).unwrap()
    };
    let batch = v["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(argmax)
        .collect();
    (batch, v)
}

#[test]
fn encrypted_predictions_on_user_files_equal_pytorchs() {
    let dir = tempfile::tempdir().unwrap();
    let model = byo("digits_norm_cnn.onnx");
    let model = model.to_str().unwrap();
    let (want, io) = torch_classes();
    // A folder of PNG files, one subfolder per class.
    let preds = dir.path().join("images.csv");
    let out = cipherflow(
        dir.path(),
        &[
            "infer",
            "--model",
            model,
            "--input",
            byo("images").to_str().unwrap(),
            "--predictions",
            preds.to_str().unwrap(),
            "--check-plain",
            "--json",
        ],
    );
    let j = json_of(&out);
    assert_eq!(j["inputs"], 8);
    assert_eq!(j["plain_agreement"], 1.0);
    assert_eq!(j["encrypted_accuracy"], 1.0, "{j}");
    assert!(j["upload_bytes"].as_u64().unwrap() > 0 && j["ms_per_input"].as_f64().unwrap() > 0.0);
    let mut r = csv::Reader::from_path(&preds).unwrap();
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 8);
    let image_out = io["image_outputs"].as_object().unwrap();
    for row in &rows {
        let o: Vec<f64> =
            serde_json::from_value(image_out[&format!("images/{}", &row[0])].clone()).unwrap();
        let torch = (0..o.len()).max_by(|&a, &b| o[a].total_cmp(&o[b])).unwrap();
        assert_eq!(row[1].parse::<usize>().unwrap(), torch, "{row:?}");
        assert_eq!(&row[2], io["class_names"][torch].as_str().unwrap());
        assert_eq!(row.len(), 3 + 10);
    }
    // The same inputs as a .npy array and as a table.
    for (input, extra) in [
        ("inputs.npy", vec![]),
        (
            "table.csv",
            vec!["--id-column", "id", "--label-column", "label"],
        ),
    ] {
        let preds = dir.path().join(format!("{input}.csv"));
        let (input_path, preds_path) = (byo(input), preds.display().to_string());
        let mut args = vec![
            "infer",
            "--model",
            model,
            "--input",
            input_path.to_str().unwrap(),
            "--predictions",
            &preds_path,
            "--json",
        ];
        args.extend(extra);
        let j = json_of(&cipherflow(dir.path(), &args));
        assert_eq!(j["plain_agreement"], 1.0, "{input}: {j}");
        let got: Vec<usize> = csv::Reader::from_path(&preds)
            .unwrap()
            .records()
            .map(|r| r.unwrap()[1].parse().unwrap())
            .collect();
        assert_eq!(got, want, "{input}");
    }
}

#[test]
fn a_model_without_preprocessing_warns_and_a_wrong_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let plain = byo("digits_norm_cnn_plain.onnx");
    let out = cipherflow(
        dir.path(),
        &[
            "infer",
            "--model",
            plain.to_str().unwrap(),
            "--input",
            byo("inputs.npy").to_str().unwrap(),
            "--limit",
            "1",
        ],
    );
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stores no preprocessing") && err.contains("--normalize"),
        "{err}"
    );
    // With the normalization given, no warning.
    let out = cipherflow(
        dir.path(),
        &[
            "infer",
            "--model",
            plain.to_str().unwrap(),
            "--input",
            byo("inputs.npy").to_str().unwrap(),
            "--normalize",
            "0.3052,0.3749",
            "--limit",
            "1",
        ],
    );
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));
    // A file that is no input; a model file that is no model.
    let junk = dir.path().join("notes.txt");
    std::fs::write(&junk, "hello").unwrap();
    for (model, input, expect) in [
        (plain.clone(), junk.clone(), "not a PNG or JPEG image"),
        (
            junk.clone(),
            byo("inputs.npy"),
            "neither an ONNX model nor a safetensors file",
        ),
    ] {
        let out = cipherflow(
            dir.path(),
            &[
                "infer",
                "--model",
                model.to_str().unwrap(),
                "--input",
                input.to_str().unwrap(),
            ],
        );
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{err}");
    }
}

#[test]
fn a_model_trained_on_user_files_carries_its_preprocessing_to_infer() {
    let dir = tempfile::tempdir().unwrap();
    let images = byo("images");
    let out = cipherflow(
        dir.path(),
        &[
            "train",
            "--data",
            images.to_str().unwrap(),
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
    let j = json_of(&out);
    assert!(j["test_accuracy"].is_number(), "{j}");
    // The stored preprocessing (normalization and the folder names as
    // class names) reaches infer: no warning, labels matched by name.
    let preds = dir.path().join("p.csv");
    let out = cipherflow(
        dir.path(),
        &[
            "infer",
            "--model",
            "m.safetensors",
            "--input",
            images.to_str().unwrap(),
            "--predictions",
            preds.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));
    let j = json_of(&out);
    assert_eq!(j["plain_agreement"], 1.0, "{j}");
    assert!(
        j["encrypted_accuracy"].is_number(),
        "labels known by name: {j}"
    );
    let names: Vec<String> = csv::Reader::from_path(&preds)
        .unwrap()
        .records()
        .map(|r| r.unwrap()[2].to_string())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| ["eight", "five", "three", "zero"].contains(&n.as_str())),
        "{names:?}"
    );
    // A CSV table: the id column named, the label column by default.
    let out = cipherflow(
        dir.path(),
        &[
            "train",
            "--data",
            byo("table.csv").to_str().unwrap(),
            "--id-column",
            "id",
            "--model",
            "logreg",
            "--epochs",
            "2",
            "--json",
        ],
    );
    assert!(json_of(&out)["test_accuracy"].is_number());
    // Without the id column the first text value is named.
    let out = cipherflow(
        dir.path(),
        &["train", "--data", byo("table.csv").to_str().unwrap()],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("row 2, column \"id\""),
        "{err}"
    );
}

#[test]
fn a_relu_model_is_refused_naming_the_flag_and_runs_approximated() {
    let dir = tempfile::tempdir().unwrap();
    let model = byo("relu_mlp.onnx");
    let images = byo("images");
    let base = [
        "infer",
        "--model",
        model.to_str().unwrap(),
        "--input",
        images.to_str().unwrap(),
    ];
    let out = cipherflow(dir.path(), &base);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--approximate"),
        "{err}"
    );
    let mut args = base.to_vec();
    args.extend(["--approximate", "--degree", "31", "--json"]);
    let j = json_of(&cipherflow(dir.path(), &args));
    let a = &j["approximation"];
    assert_eq!(a["degree"], 31, "{j}");
    let half = a["interval"][1].as_f64().unwrap();
    assert!(half > 1.0 && half < 100.0, "{j}");
    // The approximation's own error bounds what the logits may move by
    // (one ReLU layer feeding a 32→10 map), and the classes hold.
    let relu_err = a["max_error"]["relu"].as_f64().unwrap();
    assert!(relu_err > 0.0 && relu_err < 0.05 * half, "{j}");
    assert!(j["plain_agreement"].as_f64().unwrap() >= 0.875, "{j}");
    assert!(j["max_logit_error"].as_f64().unwrap() < 2.0, "{j}");
    // GELU as PyTorch's opset-13 export writes it (five nodes).
    let gelu = byo("gelu_mlp13.onnx");
    let npy = byo("inputs.npy");
    let j = json_of(&cipherflow(
        dir.path(),
        &[
            "infer",
            "--model",
            gelu.to_str().unwrap(),
            "--input",
            npy.to_str().unwrap(),
            "--normalize",
            "0.3052,0.3749",
            "--approximate",
            "--json",
        ],
    ));
    assert!(
        j["approximation"]["max_error"]["gelu"].as_f64().unwrap() > 0.0,
        "{j}"
    );
    assert!(j["plain_agreement"].as_f64().unwrap() >= 0.875, "{j}");
}

/// `train --out` stores the activation ranges it measured on its training
/// inputs, and `infer --approximate` uses them when no --calibration is
/// given (reported as such); a DP-trained model stores none (the DP
/// guarantee does not cover them), and infer says it falls back to the
/// inputs themselves.
#[test]
fn calibration_statistics_travel_with_a_trained_model() {
    let dir = tempfile::tempdir().unwrap();
    let images = byo("images");
    let images = images.to_str().unwrap();
    let train = |extra: &[&str], out: &str| {
        let mut args = vec![
            "train", "--data", images, "--model", "mlp", "--epochs", "3", "--out", out, "--json",
        ];
        args.extend(extra);
        json_of(&cipherflow(dir.path(), &args));
    };
    let infer = |model: &str| {
        json_of(&cipherflow(
            dir.path(),
            &[
                "infer",
                "--model",
                model,
                "--input",
                images,
                "--approximate",
                "--json",
            ],
        ))
    };
    train(&[], "plain.safetensors");
    let file = cipherflow_nn::io::load(&dir.path().join("plain.safetensors")).unwrap();
    let stored = file.preprocessing.unwrap().calibration.unwrap();
    let relu = file
        .model
        .layers()
        .iter()
        .position(|l| l.describe() == "Relu")
        .unwrap();
    // Measured on the training split of the eight images.
    assert!(stored.inputs > 0 && stored.inputs < 8, "{stored:?}");
    let j = infer("plain.safetensors");
    let a = &j["approximation"];
    assert_eq!(a["calibration"], "model", "{j}");
    // The values entering the ReLU set the interval.
    let want = 1.25 * f64::from(stored.bounds[relu]);
    assert!(
        (a["interval"][1].as_f64().unwrap() - want).abs() < 1e-3 * want,
        "{j}"
    );
    assert_eq!(a["intervals"][0], a["interval"], "{j}");
    train(&["--dp-epsilon", "5"], "dp.safetensors");
    let p = cipherflow_nn::io::load(&dir.path().join("dp.safetensors"))
        .unwrap()
        .preprocessing;
    assert!(p.and_then(|p| p.calibration).is_none());
    assert_eq!(
        infer("dp.safetensors")["approximation"]["calibration"],
        "inputs"
    );
}

/// `train --stream` reads an IDX file a window at a time and trains the
/// model `train` trains with the file in memory (same split, same
/// batches, same seed): the same test accuracy to the last digit.
#[test]
fn streamed_training_matches_training_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let images = byo("inputs-idx3-ubyte.gz");
    let labels = byo("labels-idx1-ubyte.gz");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--data",
            images.to_str().unwrap(),
            "--labels",
            labels.to_str().unwrap(),
            "--model",
            "mlp",
            "--epochs",
            "4",
            "--batch-size",
            "2",
            "--json",
        ];
        args.extend(extra);
        json_of(&cipherflow(dir.path(), &args))
    };
    let whole = run(&[]);
    let streamed = run(&["--stream"]);
    assert_eq!(whole["test_accuracy"], streamed["test_accuracy"]);
    assert_eq!(
        whole["final_loss"], streamed["final_loss"],
        "{whole} {streamed}"
    );
    // A CSV table is read whole: --stream says so.
    let out = cipherflow(
        dir.path(),
        &[
            "train",
            "--data",
            byo("table.csv").to_str().unwrap(),
            "--id-column",
            "id",
            "--stream",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("drop --stream"),
        "{err}"
    );
}

/// `--classes FILE` names a model's classes: at training (stored with the
/// model, and the order labels are numbered in) and at inference (for a
/// model that stores none); a wrong count or a label not listed is named.
#[test]
fn class_names_come_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ]
    .map(String::from)
    .to_vec();
    let reversed: Vec<String> = names.iter().rev().cloned().collect();
    std::fs::write(dir.path().join("classes.txt"), reversed.join("\n") + "\n").unwrap();
    // The ImageFolder names its classes; --classes fixes their numbering.
    let images = byo("images");
    json_of(&cipherflow(
        dir.path(),
        &[
            "train",
            "--data",
            images.to_str().unwrap(),
            "--classes",
            "classes.txt",
            "--model",
            "logreg",
            "--epochs",
            "2",
            "--out",
            "m.safetensors",
            "--json",
        ],
    ));
    let stored = cipherflow_nn::io::load(&dir.path().join("m.safetensors"))
        .unwrap()
        .preprocessing
        .unwrap()
        .class_names
        .unwrap();
    assert_eq!(stored, reversed);
    // A plain export names nothing; --classes names its outputs.
    let model = byo("digits_norm_cnn_plain.onnx");
    std::fs::write(dir.path().join("names.txt"), names.join("\n")).unwrap();
    let out = cipherflow(
        dir.path(),
        &[
            "infer",
            "--model",
            model.to_str().unwrap(),
            "--input",
            images.to_str().unwrap(),
            "--normalize",
            "0.3052,0.3749",
            "--classes",
            "names.txt",
            "--predictions",
            "p.csv",
            "--json",
        ],
    );
    let j = json_of(&out);
    assert_eq!(j["encrypted_accuracy"], 1.0, "{j}");
    let p = std::fs::read_to_string(dir.path().join("p.csv")).unwrap();
    assert!(
        p.contains("zero/0.png,0,zero,") && p.contains("eight/6.png,8,eight,"),
        "{p}"
    );
    // Three names for ten outputs.
    std::fs::write(dir.path().join("three.txt"), "a\nb\nc\n").unwrap();
    let out = cipherflow(
        dir.path(),
        &[
            "infer",
            "--model",
            model.to_str().unwrap(),
            "--input",
            images.to_str().unwrap(),
            "--classes",
            "three.txt",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("3 class names for a model of 10"),
        "{err}"
    );
    // A folder label the list lacks.
    std::fs::write(dir.path().join("short.txt"), "one\ntwo\n").unwrap();
    let out = cipherflow(
        dir.path(),
        &[
            "train",
            "--data",
            images.to_str().unwrap(),
            "--classes",
            "short.txt",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("is not one of"),
        "{err}"
    );
}

/// Every output infer returns is re-randomized; it is flooded at the λ
/// asked when the parameters leave room (a linear model, batched), and a λ
/// that does not fit is refused with the figures; the default run says
/// what it did.
#[test]
fn returned_outputs_are_flooded_as_asked_or_the_run_says_why_not() {
    let dir = tempfile::tempdir().unwrap();
    let images = byo("images");
    let images = images.to_str().unwrap();
    let out = cipherflow(
        dir.path(),
        &[
            "train",
            "--data",
            images,
            "--model",
            "logreg",
            "--epochs",
            "3",
            "--normalize",
            "0.3052,0.3749",
            "--out",
            "m.safetensors",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let infer = |extra: &[&str]| {
        let mut args = vec![
            "infer",
            "--model",
            "m.safetensors",
            "--input",
            images,
            "--json",
        ];
        args.extend_from_slice(extra);
        cipherflow(dir.path(), &args)
    };
    let j = json_of(&infer(&[
        "--batch",
        "--circuit-privacy",
        "20",
        "--returned-outputs",
        "1024",
    ]));
    let cp = &j["circuit_privacy"];
    assert_eq!(cp["flooded"], true, "{j}");
    assert_eq!(cp["stat_sec_bits"], 20, "{j}");
    assert_eq!(cp["outputs"], 1024, "{j}");
    assert!(cp["precision_bits"].as_f64().unwrap() >= 8.0, "{j}");
    assert_eq!(j["plain_agreement"], 1.0, "{j}");
    assert_eq!(j["input_bound"], 2.0, "{j}");
    // The default parameters leave no room: re-randomized only, and why.
    let j = json_of(&infer(&[]));
    assert_eq!(j["circuit_privacy"]["flooded"], false, "{j}");
    assert!(
        j["circuit_privacy"]["why"]
            .as_str()
            .unwrap()
            .contains("bits of precision"),
        "{j}"
    );
    // More than fits is refused, with the figures.
    let out = infer(&["--batch", "--circuit-privacy", "60"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("flooding at λ = 60") && err.contains("precision"),
        "{err}"
    );
}
