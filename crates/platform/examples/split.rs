//! Split inference in `mpc` mode, every split of a model, one table row
//! per split (JSON lines): the head under encryption, the hand-off, the
//! tail in three-party computation (the roles in one process; bytes as
//! they would travel); and what `plain-tail` mode would reveal at that
//! split — the learned inversion attack's SSIM, PSNR and the model's
//! accuracy on its reconstructions (`mpc` reveals no activation).
//! `cipherflow model splits` does the same on the user's own files.
//!
//! ```sh
//! cargo run --release -p cipherflow-platform --example split -- mnist 100   # TenSEAL-tutorial CNN, MNIST test images
//! cargo run --release -p cipherflow-platform --example split -- digits 100  # the shipped digits CNN
//! cargo run --release -p cipherflow-platform --example split -- mnist 100 1 # one split (k = 1)
//! ```

use cipherflow_nn::examples;
use cipherflow_platform::{split_table, InversionData, InversionSettings};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let which = args.first().map_or("digits", String::as_str);
    let n: usize = args.get(1).map_or(Ok(50), |s| s.parse())?;
    let only: Option<usize> = args.get(2).map(|s| s.parse()).transpose()?;
    let (model, public, data) = match which {
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
    // first 1,000 held-out inputs; the first `n` are also the queries.
    let held_out = data.subset(&(0..data.len().min(1000)).collect::<Vec<usize>>())?;
    let inputs: Vec<Vec<f64>> = held_out
        .features()
        .outer_iter()
        .take(n)
        .map(|r| r.iter().map(|&v| f64::from(v)).collect())
        .collect();
    let inversion = InversionData {
        public: public.features(),
        held_out: held_out.features(),
        labels: Some(held_out.labels()),
        preprocessing: None,
    };
    let mut rng = cipherflow_ring::sampler::secure_rng()?;
    // Inputs are images scaled to [0, 1]: the bound is 1.
    let rows = split_table(
        &model,
        1.0,
        &inputs,
        Some((&inversion, &InversionSettings::default())),
        only,
        &mut rng,
    )?;
    for row in rows {
        let leak = row.leakage.as_ref().map(|l| {
            serde_json::json!({
                "activations": l.activations, "ssim": l.ssim, "psnr": l.psnr,
                "agreement_on_reconstructions": l.agreement_on_reconstructions,
                "accuracy_on_reconstructions": l.accuracy_on_reconstructions,
                "accuracy": l.accuracy, "public": public.len(), "held_out": held_out.len(),
            })
        });
        let line = match &row.mpc {
            Ok(r) => {
                let labels = &held_out.labels()[..n.min(held_out.len())];
                let correct = r.classes.iter().zip(labels).filter(|(a, b)| a == b).count();
                serde_json::json!({
                    "model": which, "k": row.k, "after": row.after, "inputs": r.classes.len(),
                    "head_depth": r.head_depth, "log_n": r.log_n,
                    "ms_per_input": r.ms_per_input(), "ms_he": r.ms_he, "ms_mpc": r.ms_mpc,
                    "ms_head": r.ms_head, "key_bytes": r.key_bytes,
                    "upload_bytes": r.upload_bytes, "download_bytes": r.download_bytes,
                    "mpc_bytes": r.mpc_bytes, "mpc_rounds": r.mpc_rounds,
                    "bytes_per_input": r.bytes_per_input(), "tail_weight_bytes": r.model_bytes,
                    "accuracy": correct as f64 / r.classes.len().max(1) as f64,
                    "plain_tail_leakage": leak,
                })
            }
            Err(e) => serde_json::json!({
                "model": which, "k": row.k, "after": row.after, "mpc_error": e,
                "plain_tail_leakage": leak,
            }),
        };
        println!("{line}");
    }
    Ok(())
}
