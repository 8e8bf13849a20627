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
        let mut line = row.json();
        line["model"] = serde_json::json!(which);
        if let (Ok(r), Some(m)) = (&row.mpc, line.get_mut("mpc")) {
            let labels = held_out.labels().iter();
            let correct = r.classes.iter().zip(labels).filter(|(a, b)| a == b).count();
            m["accuracy"] = serde_json::json!(correct as f64 / r.classes.len().max(1) as f64);
        }
        println!("{line}");
    }
    Ok(())
}
