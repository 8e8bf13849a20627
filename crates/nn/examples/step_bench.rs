//! Time per training step, plain vs DP-SGD (SecureSgd), for the MNIST CNN
//! and an MLP, on random MNIST-shaped data (timing does not depend on the
//! values). One JSON line per (model, mode).
//!
//! `cargo run --release -p cipherflow-nn --example step_bench -- [--batch 256] [--reps 20] [--threads K]`

use cipherflow_nn::data::Dataset;
use cipherflow_nn::loss::Loss;
use cipherflow_nn::optim::Optimizer;
use cipherflow_nn::spec::ModelSpec;
use cipherflow_nn::train::plain_step;
use cipherflow_nn::{DpConfig, NnError, SecureSgd};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::time::Instant;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), NnError> {
    let batch = arg("--batch", 256);
    let reps = arg("--reps", 20);
    let threads = arg("--threads", 0);
    if threads > 0 {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .map_err(|e| NnError::Config(e.to_string()))?;
    }
    // 60,000 random 28×28 "images": Poisson sampling at q = batch / 60,000.
    let n = 60_000;
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let x = ndarray::Array2::from_shape_simple_fn((n, 784), || {
        (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32
    });
    let y: Vec<usize> = (0..n).map(|_| (rng.next_u32() % 10) as usize).collect();
    let data = Dataset::new(x, y, vec![1, 28, 28], 10)?;
    for model_name in ["cnn", "mlp"] {
        let spec = ModelSpec::preset(model_name, &[1, 28, 28], 10, false)?;
        for mode in ["plain", "dp"] {
            let mut model = spec.build(0)?;
            let mut opt = Optimizer::sgd(0.01, 0.9, 0.0)?;
            let mut sgd = SecureSgd::new(
                DpConfig {
                    clip: 1.0,
                    noise_multiplier: 1.1,
                    sample_rate: batch as f64 / n as f64,
                },
                Optimizer::sgd(0.01, 0.9, 0.0)?,
                Box::new(cipherflow_dp::RdpAccountant::new()),
            )?;
            let mut times = Vec::with_capacity(reps);
            let mut start_idx = 0;
            for rep in 0..reps + 2 {
                let t = Instant::now();
                if mode == "plain" {
                    let idx: Vec<usize> = (start_idx..start_idx + batch).map(|i| i % n).collect();
                    start_idx += batch;
                    plain_step(&mut model, Loss::CrossEntropy, &data, &idx, &mut opt, None)?;
                } else {
                    sgd.step(&mut model, Loss::CrossEntropy, &data)?;
                }
                if rep >= 2 {
                    times.push(t.elapsed().as_secs_f64() * 1e3);
                }
            }
            times.sort_by(f64::total_cmp);
            let median = times[times.len() / 2];
            println!(
                "{{\"library\":\"cipherflow\",\"model\":\"{model_name}\",\"mode\":\"{mode}\",\"batch\":{batch},\"threads\":{},\"ms_per_step\":{median:.3}}}",
                rayon::current_num_threads()
            );
        }
    }
    Ok(())
}
