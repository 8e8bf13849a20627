//! `cipherflow infer`: encrypted inference end to end. The client generates
//! keys for the model's plan (only the rotations it needs), encrypts each
//! input, the server runs the model on ciphertexts, the client decrypts and
//! the result is compared with the plaintext model. Ciphertexts go through
//! their byte encoding both ways, so the sizes reported are what travels.

use anyhow::anyhow;
use cipherflow_ckks::Ciphertext;
use cipherflow_nn::data::{load_mnist, Dataset};
use cipherflow_nn::examples;
use cipherflow_nn::io::safetensors;
use cipherflow_nn::{Sequential, Tensor};
use cipherflow_tensor::{EncTensor, EncryptedModel, KeySet, Mode, ModelClient, Plan};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `cipherflow infer`.
#[derive(clap::Args)]
pub struct InferArgs {
    /// Model (safetensors with its architecture); default: the model the
    /// repository ships for the data set (data/models/).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Data: digits (the shipped UCI set, its 20 % test split) or
    /// mnist[:DIR] (the 10,000 test images; default DIR
    /// $CIPHERFLOW_DATA/mnist, else data/mnist or ../shared/data/mnist from
    /// the working directory). The digits set and its model are embedded.
    #[arg(long, default_value = "digits")]
    data: String,
    /// Only the first K test images (default: all).
    #[arg(long)]
    limit: Option<usize>,
    /// Throughput mode: one image per slot, thousands per ciphertext
    /// (default: latency mode, one image per ciphertext).
    #[arg(long)]
    batch: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// End with one JSON line: images, plain_accuracy, encrypted_accuracy,
    /// agreement, ms_per_image, upload_bytes, download_bytes (per image).
    #[arg(long)]
    json: bool,
}

/// The test split of a data set and the shipped model for it.
fn load(data: &str) -> anyhow::Result<(Dataset, Sequential)> {
    let (name, dir) = data
        .split_once(':')
        .map_or((data, None), |(n, d)| (n, Some(d)));
    match (name, dir) {
        ("digits", None) => {
            let d = examples::digits()?;
            // The split `cipherflow train --data digits` holds out (seed 0).
            let (_, test) = d.split(0.2, 0)?;
            Ok((test, examples::digits_cnn()?))
        }
        ("mnist", dir) => {
            let dir = examples::mnist_dir(dir.map(Path::new))?;
            let (_, test) = load_mnist(&dir).map_err(|e| anyhow!("{e} (pass --data mnist:DIR)"))?;
            Ok((test, examples::mnist_tenseal_cnn()?))
        }
        _ => Err(anyhow!("unknown data set '{data}' (digits, mnist[:DIR])")),
    }
}

fn argmax(v: &[f64]) -> usize {
    v.iter()
        .enumerate()
        .fold(
            (0, f64::NEG_INFINITY),
            |b, (i, &x)| if x > b.1 { (i, x) } else { b },
        )
        .0
}

fn plain_predictions(model: &mut Sequential, xs: &[Vec<f64>]) -> anyhow::Result<Vec<usize>> {
    let mut out = Vec::with_capacity(xs.len());
    for chunk in xs.chunks(512) {
        let mut shape = vec![chunk.len()];
        shape.extend(model.input_shape());
        let flat: Vec<f32> = chunk.iter().flatten().map(|&v| v as f32).collect();
        let t = Tensor::from_shape_vec(ndarray::IxDyn(&shape), flat)?;
        let y = model.predict(&t)?;
        let classes = y.len() / chunk.len().max(1);
        let v: Vec<f64> = y.iter().map(|&v| f64::from(v)).collect();
        out.extend(v.chunks(classes.max(1)).map(argmax));
    }
    Ok(out)
}

/// Serializes and parses back every ciphertext (what a network hop does);
/// returns the tensor as received and the bytes sent.
fn transfer(
    t: &EncTensor,
    params: &cipherflow_ckks::CkksParams,
) -> anyhow::Result<(EncTensor, usize)> {
    let mut bytes = 0;
    let mut cts = Vec::with_capacity(t.ciphertexts().len());
    for ct in t.ciphertexts() {
        let b = ct.to_bytes(params)?;
        bytes += b.len();
        cts.push(Ciphertext::from_bytes(params, &b)?);
    }
    let t = EncTensor::from_parts(cts, t.shape().to_vec(), t.layout(), params.slots())?;
    Ok((t, bytes))
}

/// Runs `cipherflow infer`.
pub fn run(args: InferArgs) -> anyhow::Result<()> {
    let threads = match args.threads {
        Some(t) if t == 0 || t > 1024 => return Err(anyhow!("--threads must be in 1..=1024")),
        Some(t) => t,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    cipherflow_ring::with_threads(threads, || run_inner(&args))?
}

fn run_inner(args: &InferArgs) -> anyhow::Result<()> {
    let (test, shipped_model) = load(&args.data)?;
    let (mut model, model_name) = match &args.model {
        Some(path) => (safetensors::load_model(path)?, path.display().to_string()),
        None => (shipped_model, format!("shipped for {}", args.data)),
    };
    if model.input_shape() != test.shape() {
        return Err(anyhow!(
            "the model takes inputs of shape {:?}, the data has {:?}",
            model.input_shape(),
            test.shape()
        ));
    }
    let n = args.limit.unwrap_or(test.len()).min(test.len());
    if n == 0 {
        return Err(anyhow!("no images to run (--limit 0?)"));
    }
    let xs: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            test.features()
                .row(i)
                .iter()
                .map(|&v| f64::from(v))
                .collect()
        })
        .collect();
    let labels = test.labels().get(..n).unwrap_or(&[]).to_vec();
    let plain = plain_predictions(&mut model, &xs)?;

    let t0 = Instant::now();
    let plan = Plan::compile(&model)?;
    let mode = if args.batch {
        Mode::Throughput
    } else {
        Mode::Latency
    };
    let server = EncryptedModel::new(&plan, mode)?;
    let prep_ms = t0.elapsed().as_secs_f64() * 1e3;
    let params = plan.params().clone();
    let mut rng = cipherflow_ring::sampler::secure_rng()?;
    let t0 = Instant::now();
    // The client knows the model only by its published input spec (no
    // weights), as a remote client would.
    let spec = serde_json::to_string(&server.input_spec())?;
    let client = ModelClient::new(serde_json::from_str(&spec)?)?;
    let keys = KeySet::generate(&client, &mut rng)?;
    let keygen_ms = t0.elapsed().as_secs_f64() * 1e3;
    let gk_bytes = keys.galois_bytes();
    let rlk_bytes = keys.relin_bytes();
    if !args.json {
        println!("model {model_name}: {}", plan.summary());
        println!(
            "mode {:?}: {} rotation keys ({} bytes), relinearization key {} bytes, \
             {} rotations per image; prepared in {prep_ms:.0} ms, keys in {keygen_ms:.0} ms",
            mode,
            server.rotation_steps().len(),
            gk_bytes,
            rlk_bytes,
            server.rotations_per_run()
        );
    }

    let dec = keys.decryptor();
    let mut enc_pred = Vec::with_capacity(n);
    let (mut up, mut down) = (0usize, 0usize);
    let (mut client_s, mut server_s) = (0.0f64, 0.0f64);
    let group = if args.batch { params.slots() } else { 1 };
    for (g, chunk) in xs.chunks(group).enumerate() {
        let t = Instant::now();
        let ct = client.encrypt(&keys.sk, chunk, &mut rng)?;
        let (ct, b) = transfer(&ct, &params)?;
        client_s += t.elapsed().as_secs_f64();
        up += b;
        let t = Instant::now();
        let out = server.run(&keys.rlk, &keys.gk, &ct)?;
        server_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let (out, b) = transfer(&out, &params)?;
        down += b;
        let logits = out.decrypt(&dec)?;
        client_s += t.elapsed().as_secs_f64();
        if !args.json && args.batch && g == 0 && n > 20 {
            println!("(throughput mode: the first 20 of {n} images)");
        }
        for (k, l) in logits.iter().enumerate() {
            let i = g * group + k;
            let p = argmax(l);
            if !args.json && (!args.batch || i < 20) {
                println!(
                    "image {i}: encrypted class {p}, plaintext class {}, label {}{}",
                    plain.get(i).copied().unwrap_or(0),
                    labels.get(i).copied().unwrap_or(0),
                    if plain.get(i) == Some(&p) {
                        ""
                    } else {
                        "  <- disagrees"
                    }
                );
            }
            enc_pred.push(p);
        }
    }
    let acc = |p: &[usize]| p.iter().zip(&labels).filter(|(a, b)| a == b).count() as f64 / n as f64;
    let agreement = enc_pred.iter().zip(&plain).filter(|(a, b)| a == b).count() as f64 / n as f64;
    let ms_per_image = (client_s + server_s) * 1e3 / n as f64;
    let server_ms = server_s * 1e3 / n as f64;
    let (up_i, down_i) = (up / n, down / n);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "images": n,
                "plain_accuracy": acc(&plain),
                "encrypted_accuracy": acc(&enc_pred),
                "agreement": agreement,
                "ms_per_image": ms_per_image,
                "upload_bytes": up_i,
                "download_bytes": down_i,
                "mode": if args.batch { "throughput" } else { "latency" },
                "server_ms_per_image": server_ms,
                "keygen_ms": keygen_ms,
                "galois_key_bytes": gk_bytes,
                "relin_key_bytes": rlk_bytes,
                "log_n": params.log_n(),
                "threads": rayon::current_num_threads(),
            })
        );
    } else {
        println!(
            "{n} images: plaintext accuracy {:.2} %, encrypted accuracy {:.2} %, agreement {:.2} %",
            100.0 * acc(&plain),
            100.0 * acc(&enc_pred),
            100.0 * agreement
        );
        println!(
            "{ms_per_image:.2} ms per image end to end ({server_ms:.2} ms on the server); \
             upload {up_i} bytes, download {down_i} bytes per image"
        );
    }
    Ok(())
}
