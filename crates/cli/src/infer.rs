//! `cipherflow infer`: encrypted inference end to end on the user's model
//! and inputs. This module reads the arguments, opens the model and the
//! inputs (streamed, preprocessed as the model declares), hands them to
//! `cipherflow_tensor::EncryptedRun` — which compiles the plan, makes the
//! client's keys from the published input spec, and runs every input
//! through its ciphertexts' byte encodings both ways — and prints.

use anyhow::anyhow;
use cipherflow_nn::data::{load_inputs, load_mnist, stream_inputs, Dataset, InputOptions, Inputs};
use cipherflow_nn::examples;
use cipherflow_nn::{Preprocessing, Sequential};
use cipherflow_tensor::{
    approximate_with, calibrate, Approximation, CompileOptions, EncryptedRun, Mode, OutputOptions,
    OutputPrivacy, RunTotals,
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
    /// folders give the labels), a .npy array ([N, …]) or .npz archive
    /// (inputs x, labels y), an IDX file (gzip or not) or a CSV table with
    /// a header.
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
    /// Replace ReLU, LeakyReLU, sigmoid, tanh and GELU by Chebyshev
    /// approximations on an interval measured from calibration inputs
    /// (reported: the interval, the approximation's error on it, and the
    /// largest logit error). Without it such models are refused.
    #[arg(long)]
    approximate: bool,
    /// Calibration inputs for --approximate (any --input format; default:
    /// the statistics `train` stored with the model, else the inputs
    /// themselves). The interval is 1.25× the largest value entering an
    /// approximated activation on them.
    #[arg(long, requires = "approximate")]
    calibration: Option<PathBuf>,
    /// Degree of the approximations (depth ⌈log2(degree + 1)⌉ each).
    #[arg(long, default_value_t = 15, requires = "approximate")]
    degree: usize,
    /// Flood every returned output for circuit privacy at this statistical
    /// security (bits), on parameters chosen to leave room for it (a 2^60
    /// scale, a larger ring); refused, with the figures, when it does not
    /// fit. Without it the outputs are re-randomized and flooded at the
    /// strongest λ (20 to 64) that keeps --output-precision on the default
    /// parameters, or re-randomized only when none does (said in the
    /// output).
    #[arg(long, value_parser = clap::value_parser!(u32).range(20..=128))]
    circuit_privacy: Option<u32>,
    /// Outputs the flooding must cover over the model's life (the more,
    /// the more noise).
    #[arg(long, default_value_t = 1 << 20, value_parser = clap::value_parser!(u64).range(1..=(1u64 << 40)))]
    returned_outputs: u64,
    /// Bits of precision every returned output value keeps after flooding.
    #[arg(long, default_value_t = 8.0)]
    output_precision: f64,
    /// The bound |x| ≤ B the inputs are declared to satisfy (rounded up to
    /// a power of two; the client clamps to it, the flooding is sized for
    /// it). Default: the largest |value| in the first chunk of the inputs.
    #[arg(long)]
    input_bound: Option<f64>,
    /// Compare every input's encrypted class with the exact plaintext
    /// model's (`plain_agreement` in the JSON). Always done: the flag is
    /// accepted for scripts written to the output contract.
    #[arg(long)]
    check_plain: bool,
    /// The model's class names, one per line in class-index order (for a
    /// model that does not store them; overrides stored ones).
    #[arg(long)]
    classes: Option<PathBuf>,
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
/// ciphertexts) at a time, whatever the data set's size. In batch mode a
/// chunk fills the slots of every ring up to N = 2^15.
fn chunk_size(batch: bool) -> usize {
    if batch {
        16384
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
        let stored = preprocessing.take();
        p.class_names = stored.as_ref().and_then(|q| q.class_names.clone());
        // Stored activation ranges hold only for the normalization they
        // were measured with.
        p.calibration = stored
            .filter(|q| q.mean == p.mean && q.std == p.std)
            .and_then(|q| q.calibration);
        preprocessing = Some(p);
    } else if args.model.is_some() && preprocessing.is_none() {
        eprintln!(
            "warning: the model stores no preprocessing; its inputs are used as loaded \
             (images scaled to [0, 1], no normalization). Pass --normalize MEAN,STD if it \
             was trained with one (e.g. 0.1307,0.3081 for torchvision's MNIST)."
        );
    }
    let mut class_names = preprocessing.as_ref().and_then(|p| p.class_names.clone());
    if let Some(path) = &args.classes {
        let names = Preprocessing::read_class_names(path)?;
        let outputs: usize = model.output_shape().iter().product();
        if names.len() != outputs.max(2) {
            return Err(anyhow!(
                "{}: {} class names for a model of {outputs} outputs",
                path.display(),
                names.len()
            ));
        }
        class_names = Some(names);
    }
    Ok(Job {
        class_names,
        inputs,
        model,
        model_name,
        preprocessing,
    })
}

/// The inputs preprocessed and labelled as the model numbers its classes,
/// chunk by chunk.
fn prepared(
    inputs: Box<dyn Iterator<Item = Result<Inputs, cipherflow_nn::NnError>>>,
    preprocessing: Option<Preprocessing>,
    class_names: Option<Vec<String>>,
) -> impl Iterator<Item = anyhow::Result<Inputs>> {
    inputs.map(move |c| {
        let mut c = c?;
        if let Some(p) = &preprocessing {
            p.apply(&mut c.features, &c.shape)?;
        }
        c.relabel(class_names.as_deref())?;
        Ok(c)
    })
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

/// Inputs printed one per line in the text output.
const SHOWN: usize = 20;

fn run_inner(args: &InferArgs) -> anyhow::Result<()> {
    let t_load = Instant::now();
    let Job {
        inputs,
        mut model,
        model_name,
        class_names,
        preprocessing,
    } = load_job(args, chunk_size(args.batch))?;
    let limit = args.limit.unwrap_or(usize::MAX);
    let mut chunks = prepared(inputs, preprocessing.clone(), class_names.clone()).peekable();
    // --approximate: the interval from --calibration, else the statistics
    // stored with the model, else the first chunk of the inputs.
    let stored = preprocessing.as_ref().and_then(|p| p.calibration.clone());
    let (opts, approx, calibration_source) = if args.approximate {
        let (found, source) = match (&args.calibration, stored) {
            (Some(path), _) => {
                let mut c = load_inputs(
                    path,
                    &InputOptions {
                        shape: Some(model.input_shape().to_vec()),
                        ..InputOptions::default()
                    },
                )?;
                if let Some(p) = &preprocessing {
                    p.apply(&mut c.features, &c.shape)?;
                }
                (calibrate(&mut model, &c.features, args.degree)?, "file")
            }
            (None, Some(s)) => (approximate_with(&model, &s, args.degree)?, "model"),
            (None, None) => match chunks.peek() {
                Some(Ok(c)) => {
                    if !args.json {
                        eprintln!(
                            "note: the model stores no calibration statistics and no \
                             --calibration was given: the approximation interval is measured \
                             on the first {} inputs themselves",
                            c.len()
                        );
                    }
                    (calibrate(&mut model, &c.features, args.degree)?, "inputs")
                }
                _ => return Err(anyhow!("no inputs to calibrate --approximate on")),
            },
        };
        (found.0, found.1, Some(source))
    } else {
        (CompileOptions::default(), None, None)
    };
    let load_ms = t_load.elapsed().as_secs_f64() * 1e3;
    let mode = if args.batch {
        Mode::Throughput
    } else {
        Mode::Latency
    };
    if !(args.output_precision.is_finite() && (1.0..=40.0).contains(&args.output_precision)) {
        return Err(anyhow!("--output-precision must be between 1 and 40 bits"));
    }
    let input_bound = match args.input_bound {
        Some(b) => b,
        None => match chunks.peek() {
            Some(Ok(c)) => c
                .features
                .iter()
                .fold(0f32, |m, v| m.max(v.abs()))
                .max(1e-3)
                .into(),
            _ => 1.0,
        },
    };
    let opts = CompileOptions {
        for_circuit_privacy: args.circuit_privacy.is_some(),
        ..opts
    };
    let output = OutputOptions {
        input_bound,
        circuit_privacy_bits: args.circuit_privacy,
        returned_outputs: args.returned_outputs,
        min_precision_bits: args.output_precision,
    };
    let run = EncryptedRun::new(&model, &opts, mode, &output)?;
    if !args.json {
        println!("model {model_name}: {}", run.plan().summary());
        println!(
            "mode {:?}: {} rotation keys ({} bytes), relinearization key {} bytes, \
             {} rotations per image; prepared in {:.0} ms, keys in {:.0} ms",
            mode,
            run.server().rotation_steps().len(),
            run.keys().galois_bytes(),
            run.keys().relin_bytes(),
            run.server().rotations_per_run(),
            run.prepare_ms,
            run.keygen_ms
        );
    }
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
    let names = class_names.as_deref();
    let totals = run.run(&mut model, chunks, limit, |r| -> anyhow::Result<()> {
        bar.inc(1);
        if !args.json && r.index < SHOWN {
            let label = r.label.map_or(String::new(), |l| {
                format!(", label {}", class_name(names, l))
            });
            bar.suspend(|| {
                println!(
                    "{}: encrypted class {}, plaintext class {}{label}{}",
                    r.id,
                    class_name(names, r.class),
                    class_name(names, r.plain_class),
                    if r.class == r.plain_class {
                        ""
                    } else {
                        "  <- disagrees"
                    }
                );
            });
        }
        if let Some(w) = writer.as_mut() {
            if r.index == 0 {
                let mut header = vec!["id".to_string(), "class".into(), "class_name".into()];
                header.extend((0..r.scores.len()).map(|c| format!("score_{c}")));
                w.write_record(&header)?;
            }
            let mut row = vec![
                r.id.to_string(),
                r.class.to_string(),
                class_name(names, r.class),
            ];
            row.extend(r.scores.iter().map(|v| format!("{v:.6}")));
            w.write_record(&row)?;
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    if totals.inputs == 0 {
        return Err(anyhow!("no inputs to run (--limit 0?)"));
    }
    if let Some(w) = writer.as_mut() {
        w.flush()?;
    }
    let approx = approx.map(|a| (a, calibration_source.unwrap_or("inputs")));
    report(
        args,
        &totals,
        approx.as_ref(),
        load_ms,
        &run,
        model.num_params(),
    )
}

/// Prints the summary (text or one JSON line).
fn report(
    args: &InferArgs,
    t: &RunTotals,
    approx: Option<&(Approximation, &str)>,
    load_ms: f64,
    run: &EncryptedRun,
    parameters: usize,
) -> anyhow::Result<()> {
    let n = t.inputs.max(1);
    let acc = |c: usize| (t.labelled > 0).then(|| c as f64 / t.labelled as f64);
    let load_ms = load_ms + t.input_seconds * 1e3;
    let agreement = t.agree as f64 / n as f64;
    let ms_per_input = (t.client_seconds + t.server_seconds) * 1e3 / n as f64;
    let server_ms = t.server_seconds * 1e3 / n as f64;
    let (up_i, down_i) = (t.upload_bytes / n, t.download_bytes / n);
    if !args.json && t.inputs > SHOWN {
        println!(
            "(the first {SHOWN} of {} inputs{})",
            t.inputs,
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
                "inputs": t.inputs,
                "ms_per_input": ms_per_input,
                "upload_bytes": up_i,
                "download_bytes": down_i,
                "plain_agreement": agreement,
                "plain_accuracy": acc(t.plain_correct),
                "encrypted_accuracy": acc(t.encrypted_correct),
                "mode": if args.batch { "throughput" } else { "latency" },
                "server_ms_per_input": server_ms,
                "load_ms": load_ms,
                "encrypted_ms": (t.client_seconds + t.server_seconds) * 1e3,
                "keygen_ms": run.keygen_ms,
                "galois_key_bytes": run.keys().galois_bytes(),
                "relin_key_bytes": run.keys().relin_bytes(),
                "log_n": run.params().log_n(),
                "depth": run.plan().depth(),
                "parameters": parameters,
                "threads": rayon::current_num_threads(),
                "max_logit_error": t.max_logit_error,
                "input_bound": run.server().input_bound(),
                "circuit_privacy": privacy_json(run.output_privacy()),
                "approximation": approx.map(|(a, calibration_source)| serde_json::json!({
                    // The widest; `intervals`: each activation's, in order.
                    "interval": [-a.half_width, a.half_width],
                    "intervals": a.half_widths.iter().map(|w| [-w, *w]).collect::<Vec<_>>(),
                    "degree": a.degree,
                    "calibration": calibration_source,
                    "max_error": a.errors.iter().map(|(k, e)| (k.clone(), serde_json::json!(e)))
                        .collect::<serde_json::Map<_, _>>(),
                })),
                // The names of earlier releases, kept for scripts that read them.
                "images": t.inputs,
                "agreement": agreement,
                "ms_per_image": ms_per_input,
                "server_ms_per_image": server_ms,
            })
        );
        return Ok(());
    }
    match (acc(t.plain_correct), acc(t.encrypted_correct)) {
        (Some(p), Some(e)) => println!(
            "{} inputs: plaintext accuracy {:.2} %, encrypted accuracy {:.2} %, agreement {:.2} %",
            t.inputs,
            100.0 * p,
            100.0 * e,
            100.0 * agreement
        ),
        _ => println!(
            "{} inputs (no labels): agreement with the plaintext model {:.2} %",
            t.inputs,
            100.0 * agreement
        ),
    }
    if let Some((a, source)) = approx {
        let errs: Vec<String> = a
            .errors
            .iter()
            .map(|(k, e)| format!("{k} {e:.3e}"))
            .collect();
        let intervals: Vec<String> = a
            .half_widths
            .iter()
            .map(|w| format!("[−{w:.3}, {w:.3}]"))
            .collect();
        println!(
            "approximated on {0} (one per activation, calibrated on the {4}) at degree {1}: max \
             error {2}; largest logit difference from the exact model {3:.3e}",
            intervals.join(", "),
            a.degree,
            errs.join(", "),
            t.max_logit_error,
            match *source {
                "file" => "--calibration inputs",
                "model" => "statistics stored with the model",
                _ => "inputs themselves",
            }
        );
    }
    println!(
        "inputs declared |x| ≤ {} (clamped by the client); {}",
        run.server().input_bound().unwrap_or(f64::NAN),
        run.output_privacy().describe()
    );
    println!(
        "{ms_per_input:.2} ms per input end to end ({server_ms:.2} ms on the server); \
         upload {up_i} bytes, download {down_i} bytes per input"
    );
    Ok(())
}

/// The circuit privacy of the returned outputs, for the JSON line.
fn privacy_json(p: &OutputPrivacy) -> serde_json::Value {
    match p {
        OutputPrivacy::Flooded(c) => serde_json::json!({
            "flooded": true,
            "stat_sec_bits": c.stat_sec_bits(),
            "outputs": c.outputs(),
            "sigma_log2": c.flooding().sigma_log2(),
            "bound_log2": c.bound().total().log2(),
            "precision_bits": c.precision_bits(),
        }),
        OutputPrivacy::RerandomizedOnly { why } => serde_json::json!({
            "flooded": false,
            "why": why,
        }),
    }
}

/// A class's name where the model names its classes, else its index.
fn class_name(names: Option<&[String]>, class: usize) -> String {
    names
        .and_then(|n| n.get(class))
        .cloned()
        .unwrap_or_else(|| class.to_string())
}
