//! `cipherflow infer`: encrypted inference end to end. The client generates
//! keys for the model's plan (only the rotations it needs), encrypts each
//! input, the server runs the model on ciphertexts, the client decrypts and
//! the result is compared with the plaintext model. Ciphertexts go through
//! their byte encoding both ways, so the sizes reported are what travels.

use anyhow::anyhow;
use cipherflow_ckks::Ciphertext;
use cipherflow_nn::data::{load_inputs, load_mnist, stream_inputs, Dataset, InputOptions, Inputs};
use cipherflow_nn::examples;
use cipherflow_nn::layers::ActivationKind;
use cipherflow_nn::Layer;
use cipherflow_nn::{Preprocessing, Sequential, Tensor};
use cipherflow_tensor::{
    Approx, CompileOptions, EncTensor, EncryptedModel, Interval, KeySet, Mode, ModelClient, Plan,
    Polynomial,
};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `cipherflow infer`.
#[derive(clap::Args)]
pub struct InferArgs {
    /// Model file: ONNX (opset 7–21; tensors in a `.onnx.data` file beside
    /// it are read) or safetensors with its architecture, told apart by
    /// content. Default: the model the repository ships for --data.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Your inputs: an image (PNG, JPEG), a folder of images (or one
    /// subfolder of images per class, torchvision's ImageFolder: the
    /// folders give the labels), a .npy array ([N, …]), an IDX file (gzip
    /// or not) or a CSV table with a header.
    #[arg(long, conflicts_with = "data")]
    input: Option<PathBuf>,
    /// Labels for an IDX or .npy --input (an IDX label file, gzip or not).
    #[arg(long, requires = "input")]
    labels: Option<PathBuf>,
    /// CSV --input: the column holding the label.
    #[arg(long, requires = "input")]
    label_column: Option<String>,
    /// CSV --input: the column identifying each row (default: row number).
    #[arg(long, requires = "input")]
    id_column: Option<String>,
    /// Normalization the model was trained with, applied after images are
    /// scaled to [0, 1]: MEAN,STD (all channels) or M1,…,Mc,S1,…,Sc.
    /// Overrides what the model file stores.
    #[arg(long)]
    normalize: Option<String>,
    /// Shipped example data instead of --input: digits (the UCI set, its
    /// 20 % test split) or mnist[:DIR] (the 10,000 test images; default DIR
    /// $CIPHERFLOW_DATA/mnist, else data/mnist or ../shared/data/mnist from
    /// the working directory). The digits set and its model are embedded.
    #[arg(long, default_value = "digits")]
    data: String,
    /// Only the first K inputs (default: all).
    #[arg(long)]
    limit: Option<usize>,
    /// Throughput mode: one input per slot, thousands per ciphertext
    /// (default: latency mode, one input per ciphertext).
    #[arg(long)]
    batch: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Replace ReLU, sigmoid, tanh and GELU by Chebyshev approximations on an
    /// interval measured from calibration inputs (reported: the interval,
    /// the approximation's error on it, and the largest logit error).
    /// Without it such models are refused.
    #[arg(long)]
    approximate: bool,
    /// Calibration inputs for --approximate (any --input format; default:
    /// the inputs themselves). The interval is 1.25× the largest value
    /// entering an approximated activation on them.
    #[arg(long, requires = "approximate")]
    calibration: Option<PathBuf>,
    /// Degree of the approximations (depth ⌈log2(degree + 1)⌉ each).
    #[arg(long, default_value_t = 15, requires = "approximate")]
    degree: usize,
    /// Writes one CSV row per input: id, class, class name, scores.
    #[arg(long)]
    predictions: Option<PathBuf>,
    /// End with one JSON line: inputs, ms_per_input, upload_bytes,
    /// download_bytes (per input), plain_agreement (with the plaintext
    /// model), accuracies where labels are known, load_ms (reading and
    /// preprocessing), encrypted_ms (the whole encrypted run) and the key
    /// sizes.
    #[arg(long)]
    json: bool,
}

/// What `infer` runs: the model, what it is called, its preprocessing and
/// class names, and the inputs, read a chunk at a time.
struct Job {
    inputs: Box<dyn Iterator<Item = Result<Inputs, cipherflow_nn::NnError>>>,
    model: Sequential,
    model_name: String,
    class_names: Option<Vec<String>>,
    preprocessing: Option<Preprocessing>,
}

/// The test split of a shipped data set and the shipped model for it.
fn shipped(data: &str) -> anyhow::Result<(Dataset, Sequential)> {
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
        _ => Err(anyhow!(
            "unknown data set '{data}' (digits, mnist[:DIR]); your own files go in --input"
        )),
    }
}

/// Inputs per chunk: memory holds one chunk of inputs (and its
/// ciphertexts) at a time, whatever the data set's size.
fn chunk_size(batch: bool, slots: usize) -> usize {
    if batch {
        slots.max(1)
    } else {
        1024
    }
}

fn load_job(args: &InferArgs, chunk: usize) -> anyhow::Result<Job> {
    let mut preprocessing = None;
    let (model, model_name) = match &args.model {
        Some(path) => {
            let f = cipherflow_nn::io::load(path)?;
            preprocessing = f.preprocessing;
            (f.model, format!("{} ({:?})", path.display(), f.format))
        }
        None if args.input.is_some() => {
            return Err(anyhow!("--input needs the model to run: pass --model FILE"))
        }
        None => (shipped(&args.data)?.1, format!("shipped for {}", args.data)),
    };
    let inputs: Box<dyn Iterator<Item = Result<Inputs, cipherflow_nn::NnError>>> = match &args.input
    {
        Some(path) => {
            let stream = stream_inputs(
                path,
                &InputOptions {
                    shape: Some(model.input_shape().to_vec()),
                    labels: args.labels.clone(),
                    label_column: args.label_column.clone(),
                    id_column: args.id_column.clone(),
                },
                chunk,
            )?;
            if model.input_shape() != stream.shape() {
                return Err(anyhow!(
                    "the model takes inputs of shape {:?}, the data has {:?}",
                    model.input_shape(),
                    stream.shape()
                ));
            }
            Box::new(stream)
        }
        None => {
            let (test, _) = shipped(&args.data)?;
            if model.input_shape() != test.shape() {
                return Err(anyhow!(
                    "the model takes inputs of shape {:?}, the data has {:?}",
                    model.input_shape(),
                    test.shape()
                ));
            }
            Box::new(std::iter::once(Ok(Inputs {
                ids: (0..test.len()).map(|i| i.to_string()).collect(),
                features: test.features().clone(),
                shape: test.shape().to_vec(),
                labels: Some(test.labels().to_vec()),
                class_names: None,
            })))
        }
    };
    if let Some(s) = &args.normalize {
        let mut p = Preprocessing::parse_normalize(s)?;
        p.check(model.input_shape())?;
        p.class_names = preprocessing.and_then(|q| q.class_names);
        preprocessing = Some(p);
    } else if args.model.is_some() && preprocessing.is_none() {
        eprintln!(
            "warning: the model stores no preprocessing; its inputs are used as loaded \
             (images scaled to [0, 1], no normalization). Pass --normalize MEAN,STD if it \
             was trained with one (e.g. 0.1307,0.3081 for torchvision's MNIST)."
        );
    }
    Ok(Job {
        class_names: preprocessing.as_ref().and_then(|p| p.class_names.clone()),
        inputs,
        model,
        model_name,
        preprocessing,
    })
}

/// The next chunk, preprocessed and labelled as the model numbers its
/// classes, cut at `left` inputs (`None`: no more).
fn next_chunk(job: &mut Job, left: usize) -> anyhow::Result<Option<Inputs>> {
    if left == 0 {
        return Ok(None);
    }
    let Some(chunk) = job.inputs.next() else {
        return Ok(None);
    };
    let mut c = chunk?;
    c.truncate(left);
    if let Some(p) = &job.preprocessing {
        p.apply(&mut c.features, &c.shape)?;
    }
    c.relabel(job.class_names.as_deref())?;
    Ok(Some(c))
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

/// The exact model's classes and logits.
fn plain_predictions(
    model: &mut Sequential,
    xs: &[Vec<f64>],
) -> anyhow::Result<(Vec<usize>, Vec<Vec<f64>>)> {
    let mut out = Vec::with_capacity(xs.len());
    let mut all = Vec::with_capacity(xs.len());
    for chunk in xs.chunks(512) {
        let mut shape = vec![chunk.len()];
        shape.extend(model.input_shape());
        let flat: Vec<f32> = chunk.iter().flatten().map(|&v| v as f32).collect();
        let t = Tensor::from_shape_vec(ndarray::IxDyn(&shape), flat)?;
        let y = model.predict(&t)?;
        let classes = y.len() / chunk.len().max(1);
        let v: Vec<f64> = y.iter().map(|&v| f64::from(v)).collect();
        out.extend(v.chunks(classes.max(1)).map(argmax));
        all.extend(v.chunks(classes.max(1)).map(<[f64]>::to_vec));
    }
    Ok((out, all))
}

/// What --approximate did: the interval, the degree, and the largest
/// error of each approximated function on the interval.
struct Approximation {
    half_width: f64,
    degree: usize,
    errors: Vec<(String, f64)>,
}

/// Compile options for --approximate: the interval from the calibration
/// inputs (1.25× the largest value entering a non-polynomial activation).
fn approximation(
    args: &InferArgs,
    model: &mut Sequential,
    inputs: &Inputs,
    preprocessing: Option<&Preprocessing>,
) -> anyhow::Result<(CompileOptions, Option<Approximation>)> {
    if !args.approximate {
        return Ok((CompileOptions::default(), None));
    }
    let cal = match &args.calibration {
        Some(path) => {
            let mut c = load_inputs(
                path,
                &InputOptions {
                    shape: Some(model.input_shape().to_vec()),
                    ..InputOptions::default()
                },
            )?;
            if let Some(p) = preprocessing {
                p.apply(&mut c.features, &c.shape)?;
            }
            c.features
        }
        None => inputs.features.clone(),
    };
    let mut shape = vec![cal.nrows()];
    shape.extend(model.input_shape());
    let x = Tensor::from_shape_vec(ndarray::IxDyn(&shape), cal.iter().copied().collect())?;
    let bounds = model.input_bounds(&x)?;
    let mut kinds = Vec::new();
    let mut widest = 0f32;
    for (l, b) in model.layers().iter().zip(&bounds) {
        let approx = match l {
            Layer::Activation(a) => match a.kind {
                ActivationKind::Relu => Some(Approx::Relu),
                ActivationKind::Sigmoid => Some(Approx::Sigmoid),
                ActivationKind::Tanh => Some(Approx::Tanh),
                ActivationKind::Gelu => Some(Approx::GeluErf),
                ActivationKind::Square => None,
            },
            _ => None,
        };
        if let Some(f) = approx {
            widest = widest.max(*b);
            if !kinds.contains(&f) {
                kinds.push(f);
            }
        }
    }
    if kinds.is_empty() {
        return Ok((CompileOptions::default(), None));
    }
    let half_width = (1.25 * f64::from(widest)).max(1e-3);
    let mut errors = Vec::new();
    for f in &kinds {
        let (_, e) = Polynomial::approximate(*f, half_width, args.degree)?;
        errors.push((
            format!("{f:?}").to_lowercase().replace("geluerf", "gelu"),
            e,
        ));
    }
    Ok((
        CompileOptions {
            approximate: Some((args.degree, Interval::from(half_width))),
        },
        Some(Approximation {
            half_width,
            degree: args.degree,
            errors,
        }),
    ))
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

/// What the run has seen so far.
#[derive(Default)]
struct Tally {
    n: usize,
    labelled: usize,
    plain_correct: usize,
    enc_correct: usize,
    agree: usize,
    max_logit_error: f64,
    up: usize,
    down: usize,
    client_s: f64,
    server_s: f64,
}

/// Inputs printed one per line in the text output.
const SHOWN: usize = 20;

fn run_inner(args: &InferArgs) -> anyhow::Result<()> {
    let t_load = Instant::now();
    let chunk = chunk_size(args.batch, 16384);
    let mut job = load_job(args, chunk)?;
    let limit = args.limit.unwrap_or(usize::MAX);
    let first =
        next_chunk(&mut job, limit)?.ok_or_else(|| anyhow!("no inputs to run (--limit 0?)"))?;
    // Reading, decoding and preprocessing the inputs (and the model).
    let mut load_s = t_load.elapsed().as_secs_f64();
    let (opts, approx) = approximation(args, &mut job.model, &first, job.preprocessing.as_ref())?;

    let t0 = Instant::now();
    let plan = Plan::compile_with(&job.model, &opts)?;
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
        println!("model {}: {}", job.model_name, plan.summary());
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
    let group = if args.batch { params.slots() } else { 1 };
    let mut writer = match &args.predictions {
        Some(p) => Some(csv::Writer::from_path(p)?),
        None => None,
    };
    // A progress bar on stderr (not under --json; indicatif draws it only
    // when the run lasts).
    let bar = if args.json {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::with_draw_target(
            args.limit.map(|l| l as u64),
            indicatif::ProgressDrawTarget::stderr(),
        );
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos} inputs encrypted, run, decrypted",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    };
    let mut t = Tally::default();
    let mut next = Some(first);
    while let Some(inputs) = next {
        let xs: Vec<Vec<f64>> = inputs
            .features
            .rows()
            .into_iter()
            .map(|r| r.iter().map(|&v| f64::from(v)).collect())
            .collect();
        let (plain, exact_logits) = plain_predictions(&mut job.model, &xs)?;
        for (g, group_xs) in xs.chunks(group).enumerate() {
            let t_c = Instant::now();
            let ct = client.encrypt(&keys.sk, group_xs, &mut rng)?;
            let (ct, b) = transfer(&ct, &params)?;
            t.client_s += t_c.elapsed().as_secs_f64();
            t.up += b;
            let t_s = Instant::now();
            let out = server.run(&keys.rlk, &keys.gk, &ct)?;
            t.server_s += t_s.elapsed().as_secs_f64();
            let t_c = Instant::now();
            let (out, b) = transfer(&out, &params)?;
            t.down += b;
            let logits = out.decrypt(&dec)?;
            t.client_s += t_c.elapsed().as_secs_f64();
            bar.inc(group_xs.len() as u64);
            for (k, l) in logits.iter().enumerate() {
                let i = g * group + k;
                let p = argmax(l);
                let exact = plain.get(i).copied().unwrap_or(0);
                let label = inputs.labels.as_ref().and_then(|v| v.get(i)).copied();
                if !args.json && t.n < SHOWN {
                    let names = job.class_names.as_deref();
                    let shown_label = label.map_or(String::new(), |l| {
                        format!(", label {}", class_name(names, l))
                    });
                    bar.suspend(|| {
                        println!(
                            "{}: encrypted class {}, plaintext class {}{shown_label}{}",
                            inputs.ids.get(i).map_or("?", String::as_str),
                            class_name(names, p),
                            class_name(names, exact),
                            if exact == p { "" } else { "  <- disagrees" }
                        );
                    });
                }
                t.n += 1;
                t.agree += usize::from(exact == p);
                if let Some(l) = label {
                    t.labelled += 1;
                    t.plain_correct += usize::from(exact == l);
                    t.enc_correct += usize::from(p == l);
                }
                if let Some(e) = exact_logits.get(i) {
                    let d = e
                        .iter()
                        .zip(l)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0, f64::max);
                    t.max_logit_error = t.max_logit_error.max(d);
                }
                if let Some(w) = writer.as_mut() {
                    if t.n == 1 {
                        let mut header =
                            vec!["id".to_string(), "class".into(), "class_name".into()];
                        header.extend((0..l.len()).map(|c| format!("score_{c}")));
                        w.write_record(&header)?;
                    }
                    let id = inputs.ids.get(i).cloned().unwrap_or_default();
                    let mut row =
                        vec![id, p.to_string(), class_name(job.class_names.as_deref(), p)];
                    row.extend(l.iter().map(|v| format!("{v:.6}")));
                    w.write_record(&row)?;
                }
            }
        }
        let t_l = Instant::now();
        next = next_chunk(&mut job, limit.saturating_sub(t.n))?;
        load_s += t_l.elapsed().as_secs_f64();
    }
    bar.finish_and_clear();
    if let Some(w) = writer.as_mut() {
        w.flush()?;
    }
    report(
        args,
        &t,
        approx.as_ref(),
        load_s,
        keygen_ms,
        gk_bytes,
        rlk_bytes,
        &params,
    )
}

/// Prints the summary (text or one JSON line).
#[allow(clippy::too_many_arguments)]
fn report(
    args: &InferArgs,
    t: &Tally,
    approx: Option<&Approximation>,
    load_s: f64,
    keygen_ms: f64,
    gk_bytes: usize,
    rlk_bytes: usize,
    params: &cipherflow_ckks::CkksParams,
) -> anyhow::Result<()> {
    let n = t.n.max(1);
    let acc = |c: usize| (t.labelled > 0).then(|| c as f64 / t.labelled as f64);
    let agreement = t.agree as f64 / n as f64;
    let ms_per_input = (t.client_s + t.server_s) * 1e3 / n as f64;
    let server_ms = t.server_s * 1e3 / n as f64;
    let (up_i, down_i) = (t.up / n, t.down / n);
    if !args.json && t.n > SHOWN {
        println!(
            "(the first {SHOWN} of {} inputs{})",
            t.n,
            if args.predictions.is_some() {
                "; all of them in --predictions"
            } else {
                "; --predictions FILE.csv writes all of them"
            }
        );
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "inputs": t.n,
                "ms_per_input": ms_per_input,
                "upload_bytes": up_i,
                "download_bytes": down_i,
                "plain_agreement": agreement,
                "plain_accuracy": acc(t.plain_correct),
                "encrypted_accuracy": acc(t.enc_correct),
                "mode": if args.batch { "throughput" } else { "latency" },
                "server_ms_per_input": server_ms,
                "load_ms": load_s * 1e3,
                "encrypted_ms": (t.client_s + t.server_s) * 1e3,
                "keygen_ms": keygen_ms,
                "galois_key_bytes": gk_bytes,
                "relin_key_bytes": rlk_bytes,
                "log_n": params.log_n(),
                "threads": rayon::current_num_threads(),
                "max_logit_error": t.max_logit_error,
                "approximation": approx.map(|a| serde_json::json!({
                    "interval": [-a.half_width, a.half_width],
                    "degree": a.degree,
                    "max_error": a.errors.iter().map(|(k, e)| (k.clone(), serde_json::json!(e)))
                        .collect::<serde_json::Map<_, _>>(),
                })),
                // The names of earlier releases, kept for scripts that read them.
                "images": t.n,
                "agreement": agreement,
                "ms_per_image": ms_per_input,
                "server_ms_per_image": server_ms,
            })
        );
        return Ok(());
    }
    match (acc(t.plain_correct), acc(t.enc_correct)) {
        (Some(p), Some(e)) => println!(
            "{} inputs: plaintext accuracy {:.2} %, encrypted accuracy {:.2} %, agreement {:.2} %",
            t.n,
            100.0 * p,
            100.0 * e,
            100.0 * agreement
        ),
        _ => println!(
            "{} inputs (no labels): agreement with the plaintext model {:.2} %",
            t.n,
            100.0 * agreement
        ),
    }
    if let Some(a) = approx {
        let errs: Vec<String> = a
            .errors
            .iter()
            .map(|(k, e)| format!("{k} {e:.3e}"))
            .collect();
        println!(
            "approximated on [−{0:.3}, {0:.3}] at degree {1}: max error {2}; largest logit \
             difference from the exact model {3:.3e}",
            a.half_width,
            a.degree,
            errs.join(", "),
            t.max_logit_error
        );
    }
    println!(
        "{ms_per_input:.2} ms per input end to end ({server_ms:.2} ms on the server); \
         upload {up_i} bytes, download {down_i} bytes per input"
    );
    Ok(())
}

/// A class's name where the model names its classes, else its index.
fn class_name(names: Option<&[String]>, class: usize) -> String {
    names
        .and_then(|n| n.get(class))
        .cloned()
        .unwrap_or_else(|| class.to_string())
}
