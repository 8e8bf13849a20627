//! Split inference in `mpc` mode, every split of a model, one table row
//! per split (JSON lines): the head under encryption, the hand-off, the
//! tail in three-party computation (the roles in one process; bytes as
//! they would travel); and what `plain-tail` mode would reveal at that
//! split — the learned inversion attack's SSIM, PSNR and the model's
//! accuracy on its reconstructions (`mpc` reveals no activation).
//!
//! ```sh
//! cargo run --release -p cipherflow-platform --example split -- mnist 100   # TenSEAL-tutorial CNN, MNIST test images
//! cargo run --release -p cipherflow-platform --example split -- digits 100  # the shipped digits CNN
//! cargo run --release -p cipherflow-platform --example split -- mnist 100 1 # one split (k = 1)
//! ```

use cipherflow_nn::examples;
use cipherflow_platform::{inversion_leakage, run_split_local, InversionSettings};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let which = args.first().map_or("digits", String::as_str);
    let n: usize = args.get(1).map_or(Ok(50), |s| s.parse())?;
    let only: Option<usize> = args.get(2).map(|s| s.parse()).transpose()?;
    let (mut model, public, data) = match which {
        "mnist" => {
            let dir = examples::mnist_dir(None)?;
            let (train, test) = cipherflow_nn::data::load_mnist(&dir)?;
            (examples::mnist_tenseal_cnn()?, train, test)
        }
        _ => {
            let (train, test) = examples::digits()?.split(0.2, 7)?;
            (examples::digits_cnn()?, train, test)
        }
    };
    // The inversion attack trains on the public set and is scored on the
    // first 1,000 held-out inputs (SPLIT_PUBLIC limits the public set).
    let public = match std::env::var("SPLIT_PUBLIC").ok().and_then(|v| v.parse().ok()) {
        Some(m) => public.subset(&(0..public.len().min(m)).collect::<Vec<usize>>())?,
        None => public,
    };
    let held_out = data.subset(&(0..data.len().min(1000)).collect::<Vec<usize>>())?;
    let n = n.min(data.len());
    let idx: Vec<usize> = (0..n).collect();
    let data = data.subset(&idx)?;
    let x: Vec<Vec<f64>> = data
        .features()
        .outer_iter()
        .map(|r| r.iter().map(|&v| f64::from(v)).collect())
        .collect();
    let mut shape = vec![n];
    shape.extend_from_slice(model.input_shape());
    let t = ndarray::ArrayD::from_shape_vec(
        ndarray::IxDyn(&shape),
        x.iter().flatten().map(|&v| v as f32).collect(),
    )?;
    let logits = model.predict(&t)?;
    let plain: Vec<usize> = logits
        .outer_iter()
        .map(|r| {
            (0..r.len())
                .max_by(|&a, &b| r[a].total_cmp(&r[b]))
                .unwrap_or(0)
        })
        .collect();
    let labels = data.labels();
    // Input bound: MNIST and the digits are scaled to [0, 1].
    let mut rng = cipherflow_ring::sampler::secure_rng()?;
    for k in 1..model.layers().len() {
        if only.is_some_and(|o| o != k) {
            continue;
        }
        let leak = inversion_leakage(&model, k, &public, &held_out, &InversionSettings::default())?;
        let plain_tail = serde_json::json!({
            "activations": leak.activations, "ssim": leak.ssim, "psnr": leak.psnr,
            "accuracy_on_reconstructions": leak.accuracy_on_reconstructions,
            "accuracy": leak.accuracy, "public": public.len(), "held_out": held_out.len(),
        });
        let r = match run_split_local(&model, k, 1.0, &x, &mut rng) {
            Ok(r) => r,
            Err(e) => {
                println!(
                    "{}",
                    serde_json::json!({"model": which, "k": k, "mpc_error": e.to_string(),
                        "plain_tail_leakage": plain_tail})
                );
                continue;
            }
        };
        let agree = r.classes.iter().zip(&plain).filter(|(a, b)| a == b).count();
        let correct = r
            .classes
            .iter()
            .zip(labels.iter())
            .filter(|(a, b)| a == b)
            .count();
        println!(
            "{}",
            serde_json::json!({
                "model": which, "k": k, "after": model.layers()[k - 1].describe(),
                "inputs": n, "head_depth": r.head_depth, "log_n": r.log_n,
                "ms_per_input": r.ms_per_input(), "ms_he": r.ms_he, "ms_mpc": r.ms_mpc, "ms_head": r.ms_head,
                "key_bytes": r.key_bytes, "upload_bytes": r.upload_bytes,
                "download_bytes": r.download_bytes, "mpc_bytes": r.mpc_bytes,
                "mpc_rounds": r.mpc_rounds, "bytes_per_input": r.bytes_per_input(),
                "tail_weight_bytes": r.model_bytes,
                "agreement": agree as f64 / n as f64, "accuracy": correct as f64 / n as f64,
                "plain_tail_leakage": plain_tail,
            })
        );
    }
    Ok(())
}
