//! `cipherflow mpc`: three-party secret-shared computation.
//!
//! `predict`, `train-logreg` and `bench-matmul` run the three parties as
//! threads of this process (in-process channels, or real TLS sockets on
//! 127.0.0.1 with `--tcp`) and end with one JSON line under `--json`;
//! `party` runs one party of a multi-process deployment (`gen-certs`
//! writes its configuration).

use anyhow::anyhow;
use cipherflow_mpc::jobs::{self, Deployment, PredictJob};
use cipherflow_mpc::programs::logreg::{LogRegConfig, Split};
use cipherflow_mpc::transport::tls;
use cipherflow_mpc::{FixedPoint, Network, Stats, Z2k};
use cipherflow_nn::data::{load_inputs, load_mnist, Dataset, InputOptions};
use cipherflow_nn::examples;
use cipherflow_nn::Preprocessing;
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

/// `cipherflow mpc` subcommands.
#[derive(clap::Subcommand)]
pub enum MpcCommand {
    /// Private prediction: the model owner's model on the data owner's
    /// inputs, the classes revealed to the data owner only. With --model
    /// and --input, your files; without, a benchmark that trains an MLP on
    /// --data.
    Predict {
        #[command(flatten)]
        files: Files,
        /// The benchmark's data (without --model): digits (shipped,
        /// embedded), mnist ($CIPHERFLOW_DATA/mnist, else data/mnist or
        /// ../shared/data/mnist from the working directory) or mnist:DIR.
        #[arg(long, default_value = "digits")]
        data: String,
        /// Classify only the first K inputs.
        #[arg(long)]
        limit: Option<usize>,
        /// Hidden layer widths of the MLP trained with the nn crate (default 64 for digits, 128,128 for MNIST).
        #[arg(long, value_delimiter = ',')]
        hidden: Option<Vec<usize>>,
        /// Training epochs of the plaintext model.
        #[arg(long)]
        epochs: Option<usize>,
        /// Also time this many single-example predictions (latency).
        #[arg(long, default_value_t = 5)]
        latency_reps: usize,
        #[command(flatten)]
        common: Common,
    },
    /// Private training of a neural network (an MLP, a small CNN, your
    /// model) on data split between two owners, by rows or by columns;
    /// the trained model revealed only to the parties --reveal-to names.
    Train(crate::mpc_train::TrainArgs),
    /// Private logistic regression on breast cancer split between two owners.
    TrainLogreg {
        /// rows (owners hold different patients) or columns (different features).
        #[arg(long, default_value = "rows")]
        split: String,
        /// Gradient-descent iterations.
        #[arg(long, default_value_t = 60)]
        iterations: usize,
        /// Learning rate.
        #[arg(long, default_value_t = 1.0)]
        lr: f64,
        #[command(flatten)]
        common: Common,
    },
    /// Secret-shared n×n fixed-point matrix product.
    BenchMatmul {
        /// Matrix size.
        #[arg(long, default_value_t = 1000)]
        n: usize,
        /// Ring: 64 or 128 bits.
        #[arg(long, default_value_t = 64)]
        ring: u32,
        #[command(flatten)]
        common: Common,
    },
    /// Runs one party of a three-process computation over TLS. For private
    /// prediction each party brings only what it owns: `--role
    /// model-owner --model FILE`, `--role data-owner --input PATH`, `--role
    /// helper`.
    Party {
        /// This party's role (prediction); it fixes the id.
        #[arg(long, value_enum)]
        role: Option<Role>,
        /// This party's id: 0, 1 or 2 (other tasks).
        #[arg(long)]
        id: Option<usize>,
        #[command(flatten)]
        files: Files,
        /// Network configuration (see `gen-certs`).
        #[arg(long)]
        config: PathBuf,
        /// What to run: predict (with --role), train-logreg or bench-matmul
        /// (default: predict with --role, else bench-matmul).
        #[arg(long)]
        task: Option<String>,
        /// Inputs to classify (predict, data owner).
        #[arg(long)]
        limit: Option<usize>,
        /// Split (train-logreg).
        #[arg(long, default_value = "rows")]
        split: String,
        /// Iterations (train-logreg).
        #[arg(long, default_value_t = 10)]
        iterations: usize,
        /// Matrix size (bench-matmul).
        #[arg(long, default_value_t = 1000)]
        n: usize,
        /// Fractional bits.
        #[arg(long, default_value_t = 16)]
        frac: u32,
        /// One JSON line.
        #[arg(long)]
        json: bool,
    },
    /// Writes a CA, party certificates and keys, and mpc.toml for three local processes.
    GenCerts {
        /// Output directory.
        #[arg(long)]
        dir: PathBuf,
        /// Ports base..base+2 on 127.0.0.1.
        #[arg(long, default_value_t = 7700)]
        base_port: u16,
    },
}

/// A party's role in private prediction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Party 0: holds the model.
    ModelOwner,
    /// Party 1: holds the inputs and learns the classes.
    DataOwner,
    /// Party 2: holds nothing.
    Helper,
}

/// The files of private prediction (each party reads only its own).
#[derive(clap::Args, Clone, Default)]
pub struct Files {
    /// The model (model owner): ONNX or safetensors, its preprocessing
    /// and class names published to the other parties.
    #[arg(long)]
    model: Option<PathBuf>,
    /// The inputs (data owner): an image, a folder of images, .npy, .npz, IDX
    /// or a CSV table.
    #[arg(long)]
    input: Option<PathBuf>,
    /// IDX labels for --input, to report accuracy (data owner).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// CSV --input: the column holding labels, left out of the features
    /// (data owner; reports accuracy).
    #[arg(long)]
    label_column: Option<String>,
    /// CSV --input: a column identifying rows, left out of the features
    /// and written to --predictions (data owner).
    #[arg(long)]
    id_column: Option<String>,
    /// Normalization the data owner applies instead of the model's
    /// published one: MEAN,STD or M1,…,Mc,S1,…,Sc.
    #[arg(long)]
    normalize: Option<String>,
    /// Writes id, class, class name per input (data owner).
    #[arg(long)]
    predictions: Option<PathBuf>,
}

/// Options shared by the local commands.
#[derive(clap::Args)]
pub struct Common {
    /// Use TCP + mutual TLS on 127.0.0.1 instead of in-process channels.
    #[arg(long)]
    tcp: bool,
    /// Emulate a WAN in-process: one-way latency added to every message, in
    /// milliseconds (as `tc netem delay` on each party's interface).
    #[arg(long)]
    latency_ms: Option<f64>,
    /// Bandwidth of each emulated link in Mbit/s (with --latency-ms).
    #[arg(long, default_value_t = 1000.0)]
    bandwidth_mbps: f64,
    /// Fractional bits of the fixed-point encoding (default 16; private
    /// training in the 128-bit ring: 20).
    #[arg(long)]
    pub(crate) frac: Option<u32>,
    /// One JSON line at the end instead of a summary.
    #[arg(long)]
    pub(crate) json: bool,
}

impl Common {
    fn frac(&self) -> u32 {
        self.frac.unwrap_or(16)
    }
}

pub(crate) fn net(c: &Common) -> Network {
    if let Some(ms) = c.latency_ms {
        Network::Shaped {
            latency: Duration::from_secs_f64(ms.max(0.0) / 1e3),
            bytes_per_sec: c.bandwidth_mbps.max(1e-3) * 1e6 / 8.0,
        }
    } else if c.tcp {
        Network::LocalTls
    } else {
        Network::InProcess
    }
}

pub(crate) fn net_json(c: &Common) -> serde_json::Value {
    match (c.latency_ms, c.tcp) {
        (Some(r), _) => {
            json!({"kind": "emulated", "latency_ms": r, "bandwidth_mbps": c.bandwidth_mbps})
        }
        (None, true) => json!({"kind": "tcp-tls-localhost"}),
        _ => json!({"kind": "in-process"}),
    }
}

/// (train, test) for `digits` or `mnist[:DIR]`.
fn load_classification(spec: &str) -> anyhow::Result<(Dataset, Dataset, &'static str)> {
    if spec == "digits" {
        let all = examples::digits()?;
        let (tr, te) = all.split(0.2, 7)?;
        return Ok((tr, te, "digits"));
    }
    let dir = match spec.strip_prefix("mnist") {
        Some("") => examples::mnist_dir(None)?,
        Some(rest) => PathBuf::from(rest.trim_start_matches(':')),
        None => {
            return Err(anyhow!(
                "unknown data set {spec:?} (digits, mnist, mnist:DIR)"
            ))
        }
    };
    let (tr, te) = load_mnist(&dir)?;
    Ok((tr, te, "mnist"))
}

fn take(data: &Dataset, limit: Option<usize>) -> anyhow::Result<Dataset> {
    let n = limit.unwrap_or(data.len()).min(data.len());
    Ok(data.subset(&(0..n).collect::<Vec<_>>())?)
}

fn fixed(frac: u32, ring: u32) -> anyhow::Result<FixedPoint> {
    Ok(if ring == 128 {
        FixedPoint::new::<u128>(frac)?
    } else {
        FixedPoint::new::<u64>(frac)?
    })
}

/// Runs a `cipherflow mpc` subcommand.
pub fn run(what: MpcCommand) -> anyhow::Result<()> {
    match what {
        MpcCommand::Predict {
            files,
            limit,
            common,
            ..
        } if files.model.is_some() || files.input.is_some() => {
            if files.model.is_none() || files.input.is_none() {
                return Err(anyhow!(
                    "mpc predict with your files needs both --model FILE and --input PATH"
                ));
            }
            predict_files(
                &Deployment::Local(net(&common)),
                &files,
                limit,
                common.frac(),
                common.json,
                net_json(&common),
            )
        }
        MpcCommand::Predict {
            data,
            limit,
            hidden,
            epochs,
            latency_reps,
            common,
            ..
        } => predict(
            &Deployment::Local(net(&common)),
            &data,
            limit,
            hidden,
            epochs,
            latency_reps,
            common.frac(),
            common.json,
            net_json(&common),
        ),
        MpcCommand::Train(args) => crate::mpc_train::run(args),
        MpcCommand::TrainLogreg {
            split,
            iterations,
            lr,
            common,
        } => logreg(
            &Deployment::Local(net(&common)),
            &split,
            LogRegConfig { iterations, lr },
            common.frac(),
            common.json,
            net_json(&common),
        ),
        MpcCommand::BenchMatmul { n, ring, common } => {
            let mode = Deployment::Local(net(&common));
            if ring == 128 {
                matmul::<u128>(
                    &mode,
                    n,
                    fixed(common.frac(), 128)?,
                    common.json,
                    net_json(&common),
                )
            } else if ring == 64 {
                matmul::<u64>(
                    &mode,
                    n,
                    fixed(common.frac(), 64)?,
                    common.json,
                    net_json(&common),
                )
            } else {
                Err(anyhow!("--ring must be 64 or 128"))
            }
        }
        MpcCommand::Party {
            role,
            id,
            files,
            config,
            task,
            limit,
            split,
            iterations,
            n,
            frac,
            json,
        } => {
            let id = match (role, id) {
                (Some(r), None) => r as usize,
                (Some(r), Some(i)) if r as usize == i => i,
                (Some(_), Some(_)) => return Err(anyhow!("--role and --id disagree")),
                (None, Some(i)) if i < 3 => i,
                (None, Some(_)) => return Err(anyhow!("--id must be 0, 1 or 2")),
                (None, None) => return Err(anyhow!("give --role (prediction) or --id")),
            };
            let task = task.unwrap_or_else(|| {
                if role.is_some() {
                    "predict".into()
                } else {
                    "bench-matmul".into()
                }
            });
            let mode = Deployment::Party { id, config };
            let pj = || json!({"kind": "tcp-tls-processes"});
            match task.as_str() {
                "predict" => {
                    // Each party reads only its own file.
                    let own = Files {
                        model: files.model.filter(|_| id == 0),
                        input: files.input.filter(|_| id == 1),
                        labels: files.labels.filter(|_| id == 1),
                        label_column: files.label_column.filter(|_| id == 1),
                        id_column: files.id_column.filter(|_| id == 1),
                        normalize: files.normalize.filter(|_| id == 1),
                        predictions: files.predictions.filter(|_| id == 1),
                    };
                    match id {
                        0 if own.model.is_none() => {
                            return Err(anyhow!("the model owner needs --model FILE"))
                        }
                        1 if own.input.is_none() => {
                            return Err(anyhow!("the data owner needs --input PATH"))
                        }
                        _ => {}
                    }
                    predict_files(&mode, &own, limit, frac, json, pj())
                }
                "train-logreg" => logreg(
                    &mode,
                    &split,
                    LogRegConfig {
                        iterations,
                        lr: 1.0,
                    },
                    frac,
                    json,
                    pj(),
                ),
                "bench-matmul" => matmul::<u64>(&mode, n, fixed(frac, 64)?, json, pj()),
                other => Err(anyhow!("unknown task {other:?}")),
            }
        }
        MpcCommand::GenCerts { dir, base_port } => {
            let addrs: Vec<String> = (0..3u16)
                .map(|i| format!("127.0.0.1:{}", base_port.saturating_add(i)))
                .collect();
            let path = tls::write_credentials(&dir, &addrs)?;
            println!("{}", path.display());
            Ok(())
        }
    }
}

/// One JSON line: the report, with the network it ran over.
fn print_json(report: &impl serde::Serialize, network: serde_json::Value) -> anyhow::Result<()> {
    let mut j = serde_json::to_value(report)?;
    j["network"] = network;
    println!("{j}");
    Ok(())
}

fn print_roles(roles: &cipherflow_mpc::Roles) {
    println!(
        "parties: 0 = {}, 1 = {}, 2 = {}",
        roles.name(0),
        roles.name(1),
        roles.name(2)
    );
}

fn print_ops(ops: &std::collections::BTreeMap<&'static str, cipherflow_mpc::OpStats>) {
    println!("{}", Stats { ops: ops.clone() });
}

#[allow(clippy::too_many_arguments)]
fn predict(
    deployment: &Deployment,
    data: &str,
    limit: Option<usize>,
    hidden: Option<Vec<usize>>,
    epochs: Option<usize>,
    latency_reps: usize,
    frac: u32,
    json_out: bool,
    network: serde_json::Value,
) -> anyhow::Result<()> {
    let (train, test, name) = load_classification(data)?;
    let test = take(&test, limit)?;
    let is_mnist = name == "mnist";
    let job = PredictJob {
        train: &train,
        test: &test,
        data: name,
        hidden: hidden.unwrap_or(if is_mnist { vec![128, 128] } else { vec![64] }),
        epochs: epochs.unwrap_or(if is_mnist { 2 } else { 15 }),
        latency_reps,
    };
    let r = jobs::predict(deployment, &job, fixed(frac, 64)?)?;
    if json_out {
        return print_json(&r, network);
    }
    println!(
        "private prediction on {name}: {} examples, MLP hidden {:?} (trained in {:.1} s)",
        r.examples, r.hidden, r.train_seconds
    );
    print_roles(&cipherflow_mpc::programs::predict::ROLES);
    if let Some(a) = r.accuracy {
        println!("accuracy (revealed to the client only): {:.2} %", 100.0 * a);
    }
    if let (Some(a), Some(p)) = (r.agreement, r.plaintext_accuracy) {
        println!(
            "agreement with plaintext: {:.2} % (plaintext accuracy {:.2} %)",
            100.0 * a,
            100.0 * p
        );
    }
    println!(
        "batch: {:.3} s, {} bytes, {} rounds",
        r.seconds, r.bytes, r.rounds
    );
    if let Some(m) = r.latency_seconds {
        println!(
            "one example (model already shared): median {:.1} ms, {} bytes, {} rounds",
            1e3 * m,
            r.latency_bytes,
            r.latency_rounds
        );
    }
    print_ops(&r.ops);
    Ok(())
}

/// Private prediction with the parties' files: this process loads what
/// its parties own, and only the data owner prints or writes classes.
fn predict_files(
    deployment: &Deployment,
    files: &Files,
    limit: Option<usize>,
    frac: u32,
    json_out: bool,
    network: serde_json::Value,
) -> anyhow::Result<()> {
    let model = files
        .model
        .as_deref()
        .map(cipherflow_nn::io::load)
        .transpose()?;
    let mut inputs = match &files.input {
        Some(p) => Some(load_inputs(
            p,
            &InputOptions {
                labels: files.labels.clone(),
                label_column: files.label_column.clone(),
                id_column: files.id_column.clone(),
                shape: None,
            },
        )?),
        None => None,
    };
    if let (Some(i), Some(k)) = (inputs.as_mut(), limit) {
        i.truncate(k);
    }
    let normalize = files
        .normalize
        .as_deref()
        .map(Preprocessing::parse_normalize)
        .transpose()?;
    let job = jobs::ModelPredictJob {
        model: model.as_ref().map(|m| &m.model),
        preprocessing: model.as_ref().and_then(|m| m.preprocessing.as_ref()),
        inputs: inputs.as_ref(),
        normalize: normalize.as_ref(),
    };
    let r = jobs::predict_model(deployment, &job, fixed(frac, 64)?)?;
    if let (Some(classes), Some(i), Some(path)) = (&r.classes, &inputs, &files.predictions) {
        let mut w = csv::Writer::from_path(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        w.write_record(["id", "class", "class_name"])?;
        for (id, &c) in i.ids.iter().zip(classes) {
            let name = r
                .class_names
                .as_ref()
                .and_then(|n| n.get(c))
                .cloned()
                .unwrap_or_else(|| c.to_string());
            w.write_record([id.as_str(), &c.to_string(), &name])?;
        }
        w.flush()?;
    }
    if json_out {
        let mut j = serde_json::to_value(&r)?;
        if let Some(o) = j.as_object_mut() {
            // The classes go to --predictions, not to the summary line.
            o.remove("classes");
        }
        j["network"] = network;
        println!("{j}");
        return Ok(());
    }
    print_roles(&cipherflow_mpc::programs::predict::ROLES);
    println!(
        "private prediction of {} inputs: {:.3} s ({:.2} ms per input), {} bytes, {} rounds",
        r.inputs, r.seconds, r.ms_per_input, r.bytes, r.rounds
    );
    if let Some(c) = &r.classes {
        let shown: Vec<String> = c.iter().take(20).map(usize::to_string).collect();
        println!(
            "classes (the data owner's only): {}{}",
            shown.join(" "),
            if c.len() > 20 { " …" } else { "" }
        );
    }
    if let Some(a) = r.accuracy {
        println!("accuracy (known to the data owner): {:.2} %", 100.0 * a);
    }
    print_ops(&r.ops);
    Ok(())
}

fn logreg(
    deployment: &Deployment,
    split: &str,
    cfg: LogRegConfig,
    frac: u32,
    json_out: bool,
    network: serde_json::Value,
) -> anyhow::Result<()> {
    let split = match split {
        "rows" => Split::Rows,
        "columns" => Split::Columns,
        other => return Err(anyhow!("--split must be rows or columns, not {other:?}")),
    };
    let all = examples::breast_cancer()?;
    let (train, test) = all.split(0.2, 3)?;
    let r = jobs::logreg(deployment, &train, &test, split, cfg, fixed(frac, 64)?)?;
    if json_out {
        return print_json(&r, network);
    }
    println!(
        "private logistic regression, {split:?} split, {} iterations: {:.3} s",
        cfg.iterations, r.seconds
    );
    print_roles(&cipherflow_mpc::programs::logreg::ROLES);
    if let Some(a) = r.accuracy {
        println!(
            "test accuracy {:.2} % (plaintext {:.2} %)",
            100.0 * a,
            100.0 * r.plaintext_accuracy
        );
    }
    print_ops(&r.ops);
    Ok(())
}

fn matmul<R: Z2k>(
    deployment: &Deployment,
    n: usize,
    fp: FixedPoint,
    json_out: bool,
    network: serde_json::Value,
) -> anyhow::Result<()> {
    let r = jobs::matmul::<R>(deployment, n, fp)?;
    if json_out {
        return print_json(&r, network);
    }
    println!(
        "secret-shared {n}×{n} fixed-point matmul (Z_2^{}, f = {}): {:.3} s",
        r.ring, r.frac, r.seconds
    );
    if let Some(e) = r.max_abs_error {
        println!("max |error| on row 0: {e:.2e}");
    }
    println!("{}", r.stats);
    Ok(())
}
