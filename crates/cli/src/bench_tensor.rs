//! `cipherflow bench tensor`: encrypted tensor benchmarks.
//!
//! * `--op matvec --n 64 --preset n13`: an n×n plaintext matrix times an
//!   encrypted vector (diagonal method, BSGS, hoisted rotations), rescale
//!   included;
//! * `--op conv`: the TenSEAL tutorial's convolution (4 kernels 7×7,
//!   stride 3, on a 28×28 image) as one encrypted matrix product;
//! * `--op mnist`: the TenSEAL-tutorial MNIST network per image (latency
//!   mode, parameters chosen by the plan), server time, with client times
//!   and transfer sizes;
//! * `--op mnist-batch`: the same network in throughput mode, one full
//!   ciphertext batch (N/2 images), with images per hour;
//! * `--op poly --function sigmoid --degree 15 [--interval 8]`: a Chebyshev
//!   approximation evaluated on one full ciphertext (N/2 values), interval
//!   map included, parameters chosen from its depth as the plan compiler
//!   does; levels, ciphertext products, approximation error and precision.

use anyhow::anyhow;
use cipherflow_ckks::{Encoder, Encryptor, Evaluator, GaloisKeys, Preset, SecretKey};
use cipherflow_nn::io::safetensors;
use cipherflow_tensor::linear::LinearMap;
use cipherflow_tensor::{
    Approx, EncTensor, EncodedMatVec, EncryptedModel, KeySet, Mode, Plan, Polynomial,
};
use rand_core::RngCore;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `cipherflow bench tensor`.
#[derive(clap::Args)]
pub struct TensorArgs {
    /// matvec, conv, mnist (tutorial network per image), mnist-batch
    /// (throughput mode) or poly (an activation approximation).
    #[arg(long, default_value = "matvec")]
    op: String,
    /// Matrix size for matvec (n×n).
    #[arg(long, default_value_t = 64)]
    n: usize,
    /// Parameter preset for matvec and conv: n13, n14, n15, n16.
    #[arg(long, default_value = "n13")]
    preset: String,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Timed repetitions.
    #[arg(long, default_value_t = 10)]
    reps: usize,
    /// poly: degree of the approximation.
    #[arg(long, default_value_t = 15)]
    degree: usize,
    /// poly: sigmoid, tanh, relu or gelu.
    #[arg(long, default_value = "sigmoid")]
    function: String,
    /// poly: half-width `a` of the interval [−a, a] (default: 8 for
    /// sigmoid, 4 for tanh and GELU, 1 for ReLU).
    #[arg(long)]
    interval: Option<f64>,
    /// Model for mnist / mnist-batch (default: the shipped tutorial network).
    #[arg(long)]
    model: Option<PathBuf>,
    /// One JSON object.
    #[arg(long)]
    json: bool,
}

fn stats(us: &mut [f64]) -> (f64, f64) {
    us.sort_by(f64::total_cmp);
    let min = us.first().copied().unwrap_or(0.0);
    let median = us.get(us.len() / 2).copied().unwrap_or(0.0);
    (median, min)
}

fn time<T, E>(reps: usize, mut f: impl FnMut() -> Result<T, E>) -> anyhow::Result<(f64, f64)>
where
    E: std::error::Error + Send + Sync + 'static,
{
    f()?; // warm-up
    let mut us = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(stats(&mut us))
}

fn rand_values(rng: &mut impl RngCore, n: usize, amp: f64) -> Vec<f64> {
    (0..n)
        .map(|_| (f64::from(rng.next_u32()) / f64::from(u32::MAX) * 2.0 - 1.0) * amp)
        .collect()
}

/// Runs `cipherflow bench tensor`.
pub fn run(args: TensorArgs) -> anyhow::Result<()> {
    let threads = match args.threads {
        Some(t) if t == 0 || t > 1024 => return Err(anyhow!("--threads must be in 1..=1024")),
        Some(t) => t,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    if args.reps == 0 || args.reps > 10_000 {
        return Err(anyhow!("--reps must be in 1..=10000"));
    }
    cipherflow_ring::with_threads(threads, || match args.op.as_str() {
        "matvec" | "conv" => bench_matvec(&args, threads),
        "mnist" | "mnist-batch" => bench_network(&args, threads),
        "poly" => bench_poly(&args, threads),
        other => Err(anyhow!(
            "unknown --op '{other}' (matvec, conv, mnist, mnist-batch, poly)"
        )),
    })?
}

fn bench_matvec(args: &TensorArgs, threads: usize) -> anyhow::Result<()> {
    let preset = Preset::from_name(&args.preset)
        .filter(|p| matches!(p, Preset::N13 | Preset::N14 | Preset::N15 | Preset::N16))
        .ok_or_else(|| anyhow!("unknown preset '{}' (n13, n14, n15, n16)", args.preset))?;
    let params = preset.build()?;
    let mut rng = cipherflow_ring::sampler::secure_rng()?;
    let (map, n) = if args.op == "conv" {
        let mut model =
            cipherflow_nn::spec::ModelSpec::preset("tenseal-cnn", &[1, 28, 28], 10, false)
                .and_then(|s| s.build(0))?;
        let conv = match model.layers_mut().first() {
            Some(cipherflow_nn::Layer::Conv2d(c)) => c.clone(),
            _ => return Err(anyhow!("tenseal-cnn preset has no convolution first")),
        };
        (LinearMap::from_conv(&conv, &[1, 28, 28])?, 784)
    } else {
        if args.n == 0 || args.n > params.slots() * 4 {
            return Err(anyhow!("--n must be in 1..={}", params.slots() * 4));
        }
        let n = args.n;
        let a = rand_values(&mut rng, n * n, 1.0 / (n as f64).sqrt());
        (LinearMap::new(n, n, a, vec![0.0; n])?, n)
    };
    let encoder = Encoder::new(&params);
    let eval = Evaluator::new(&params);
    let level = params.max_level();
    let scale = params.default_scale();
    let mv = EncodedMatVec::new(&encoder, &eval, &map, level, scale, scale)?;
    let sk = SecretKey::generate(&params, &mut rng);
    let steps = mv.rotation_steps();
    let gk = GaloisKeys::generate(&sk, &steps, false, &mut rng)?;
    let x = rand_values(&mut rng, map.cols(), 1.0);
    let enc = Encryptor::with_secret_key(&sk);
    let ct = EncTensor::encrypt(&enc, &encoder, &x, &[map.cols()], level, scale, &mut rng)?;
    let (median, min) = time(args.reps, || mv.apply(&eval, &gk, &ct))?;
    let gk_bytes = gk.to_bytes(&params).len();
    let upload = ct.byte_size(&params)?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "op": args.op, "n": n, "preset": args.preset,
                "median_us": median, "min_us": min, "rotations": mv.rotation_count(),
                "diagonals": mv.diagonal_count(), "rotation_keys": steps.len(),
                "galois_key_bytes": gk_bytes, "upload_bytes": upload, "threads": threads,
            })
        );
    } else {
        println!(
            "{} {}×{} at {}: median {:.0} µs, min {:.0} µs, {} rotations, {} diagonals, \
             {} rotation keys ({} bytes), threads {threads}",
            args.op,
            map.rows(),
            map.cols(),
            params,
            median,
            min,
            mv.rotation_count(),
            mv.diagonal_count(),
            steps.len(),
            gk_bytes
        );
    }
    Ok(())
}

fn bench_network(args: &TensorArgs, threads: usize) -> anyhow::Result<()> {
    let model = match &args.model {
        Some(path) => safetensors::load_model(path)?,
        None => cipherflow_nn::examples::mnist_tenseal_cnn()?,
    };
    let plan = Plan::compile(&model)?;
    let batch = args.op == "mnist-batch";
    let mode = if batch {
        Mode::Throughput
    } else {
        Mode::Latency
    };
    let server = EncryptedModel::new(&plan, mode)?;
    let params = plan.params().clone();
    let mut rng = cipherflow_ring::sampler::secure_rng()?;
    let client = server.client()?;
    let keys = KeySet::generate(&client, &mut rng)?;
    let len: usize = plan.input_shape().iter().product();
    let count = if batch { params.slots() } else { 1 };
    let xs: Vec<Vec<f64>> = (0..count)
        .map(|_| {
            rand_values(&mut rng, len, 1.0)
                .iter()
                .map(|v| v.abs())
                .collect()
        })
        .collect();
    let te = Instant::now();
    let ct = client.encrypt(&keys.sk, &xs, &mut rng)?;
    let encrypt_us = te.elapsed().as_secs_f64() * 1e6;
    let reps = if batch { args.reps.min(3) } else { args.reps };
    let (median, min) = time(reps, || server.run(&keys.rlk, &keys.gk, &ct))?;
    let out = server.run(&keys.rlk, &keys.gk, &ct)?;
    let td = Instant::now();
    let _ = out.decrypt(&keys.decryptor())?;
    let decrypt_us = td.elapsed().as_secs_f64() * 1e6;
    let up = ct.byte_size(&params)?;
    let down = out.byte_size(&params)?;
    let per_image = |v: f64| v / count as f64;
    let images_per_hour = 3600.0 * 1e6 / per_image(median + encrypt_us + decrypt_us);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "op": args.op, "n": count, "preset": format!("auto-n{}", params.log_n()),
                "median_us": median, "min_us": min, "rotations": server.rotations_per_run(),
                "encrypt_us": encrypt_us, "decrypt_us": decrypt_us,
                "median_us_per_image": per_image(median),
                "images_per_hour": images_per_hour,
                "upload_bytes": up / count, "download_bytes": down / count,
                "galois_key_bytes": keys.galois_bytes(),
                "relin_key_bytes": keys.relin_bytes(), "threads": threads,
            })
        );
    } else {
        println!("{}", plan.summary());
        println!(
            "{} ({} images per run): server median {:.1} ms ({:.3} ms per image), min {:.1} ms; \
             encrypt {:.1} ms, decrypt {:.1} ms; {:.0} images/hour; upload {} B, download {} B \
             per image; {} rotations per run; threads {threads}",
            args.op,
            count,
            median / 1e3,
            per_image(median) / 1e3,
            min / 1e3,
            encrypt_us / 1e3,
            decrypt_us / 1e3,
            images_per_hour,
            up / count,
            down / count,
            server.rotations_per_run()
        );
    }
    Ok(())
}

fn bench_poly(args: &TensorArgs, threads: usize) -> anyhow::Result<()> {
    let (f, default_a) = match args.function.as_str() {
        "sigmoid" => (Approx::Sigmoid, 8.0),
        "tanh" => (Approx::Tanh, 4.0),
        "relu" => (Approx::Relu, 1.0),
        "gelu" => (Approx::Gelu, 4.0),
        other => {
            return Err(anyhow!(
                "unknown --function '{other}' (sigmoid, tanh, relu, gelu)"
            ))
        }
    };
    let a = args.interval.unwrap_or(default_a);
    let (p, max_error) = Polynomial::approximate(f, a, args.degree)?;
    let (log_n, q, pb) = cipherflow_tensor::plan::choose_bits(p.depth())?;
    let params = cipherflow_ckks::ParamsBuilder::new(log_n)
        .q_bits(&q)
        .p_bits(&pb)
        .log_scale(q.get(1).copied().unwrap_or(40))
        .build()?;
    let mut rng = cipherflow_ring::sampler::secure_rng()?;
    let sk = SecretKey::generate(&params, &mut rng);
    let rlk = cipherflow_ckks::RelinKey::generate(&sk, &mut rng)?;
    let encoder = Encoder::new(&params);
    let eval = Evaluator::new(&params);
    let x = rand_values(&mut rng, params.slots(), a);
    let (level, scale) = (params.max_level(), params.default_scale());
    let pt = encoder.encode(&x, level, scale)?;
    let ct = Encryptor::with_secret_key(&sk).encrypt(&pt, &mut rng)?;
    let (median, min) = time(args.reps, || p.eval_ct(&eval, &rlk, &ct, scale))?;
    let (out, stats) = p.eval_ct_stats(&eval, &rlk, &ct, scale)?;
    let got = cipherflow_ckks::Decryptor::new(&sk).decrypt_values(&out)?;
    let want: Vec<f64> = x.iter().map(|&v| p.eval(v)).collect();
    let bits = cipherflow_ckks::precision_bits(&want, got.get(..want.len()).unwrap_or(&[]))?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "op": "poly", "function": args.function, "degree": args.degree,
                "interval": [-a, a], "preset": format!("auto-n{}", params.log_n()),
                "levels": stats.levels, "products": stats.products,
                "max_error": max_error, "precision_bits": bits,
                "median_us": median, "min_us": min, "slots": params.slots(), "threads": threads,
            })
        );
    } else {
        println!(
            "{} degree {} on [-{a}, {a}] at {}: median {:.1} ms, min {:.1} ms for {} slots; \
             {} levels (x→u included), {} ct×ct products; max approximation error {:.2e}, \
             encrypted vs plaintext {:.1} bits; threads {threads}",
            args.function,
            args.degree,
            params,
            median / 1e3,
            min / 1e3,
            params.slots(),
            stats.levels,
            stats.products,
            max_error,
            bits
        );
    }
    Ok(())
}
