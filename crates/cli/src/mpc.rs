//! `cipherflow mpc`: three-party secret-shared computation.
//!
//! `predict`, `train-logreg` and `bench-matmul` run the three parties as
//! threads of this process (in-process channels, or real TLS sockets on
//! 127.0.0.1 with `--tcp`) and end with one JSON line under `--json`;
//! `party` runs one party of a multi-process deployment (`gen-certs`
//! writes its configuration).

use anyhow::anyhow;
use cipherflow_mpc::ndarray::{self, Array2};
use cipherflow_mpc::programs::logreg::{
    accuracy, plaintext_logreg, private_logreg, split_owners, LogRegConfig, Scaling, Split,
};
use cipherflow_mpc::programs::predict::{
    features_f64, predict_shared, share_model, train_mlp, CLIENT, MODEL_OWNER,
};
use cipherflow_mpc::transport::tls;
use cipherflow_mpc::{run_local, run_party, FixedPoint, MpcError, Network, Party, Stats, Z2k};
use cipherflow_nn::data::{load_mnist, Dataset};
use cipherflow_nn::examples;
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `cipherflow mpc` subcommands.
#[derive(clap::Subcommand)]
pub enum MpcCommand {
    /// Private prediction: model of party 0, inputs of party 1, classes revealed to party 1.
    Predict {
        /// digits (shipped, embedded), mnist ($CIPHERFLOW_DATA/mnist, else
        /// data/mnist or ../shared/data/mnist from the working directory) or
        /// mnist:DIR.
        #[arg(long, default_value = "digits")]
        data: String,
        /// Classify only the first K test examples.
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
    /// Runs one party of a three-process computation over TLS.
    Party {
        /// This party's id: 0, 1 or 2.
        #[arg(long)]
        id: usize,
        /// Network configuration (see `gen-certs`).
        #[arg(long)]
        config: PathBuf,
        /// What to run: predict, train-logreg or bench-matmul.
        #[arg(long, default_value = "bench-matmul")]
        task: String,
        /// Task options as for the local commands.
        #[arg(long, default_value = "digits")]
        data: String,
        /// Examples to classify (predict).
        #[arg(long)]
        limit: Option<usize>,
        /// Single-example predictions to time (predict).
        #[arg(long, default_value_t = 5)]
        latency_reps: usize,
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
    /// Fractional bits of the fixed-point encoding.
    #[arg(long, default_value_t = 16)]
    frac: u32,
    /// One JSON line at the end instead of a summary.
    #[arg(long)]
    json: bool,
}

fn net(c: &Common) -> Network {
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

fn net_json(c: &Common) -> serde_json::Value {
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

/// Runs one party over TLS from a config file, or three local parties.
enum Mode {
    Local(Network),
    Party(usize, PathBuf),
}

struct Outcome<T> {
    outputs: Vec<Option<T>>,
    stats: Stats,
    seconds: f64,
}

fn execute<R: Z2k, T: Send>(
    mode: &Mode,
    fp: FixedPoint,
    program: impl Fn(&mut Party<R>) -> Result<T, MpcError> + Sync,
) -> anyhow::Result<Outcome<T>> {
    match mode {
        Mode::Local(n) => {
            let r = run_local::<R, T, _>(*n, fp, program)?;
            Ok(Outcome {
                outputs: r.outputs.into_iter().map(Some).collect(),
                stats: r.stats,
                seconds: r.seconds,
            })
        }
        Mode::Party(id, cfg) => {
            let run = run_party::<R, T, _>(*id, cfg, fp, program)?;
            let mut outputs: Vec<Option<T>> = vec![None, None, None];
            if let Some(slot) = outputs.get_mut(run.id) {
                *slot = Some(run.output);
            }
            Ok(Outcome {
                outputs,
                stats: run.stats,
                seconds: run.seconds,
            })
        }
    }
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
            data,
            limit,
            hidden,
            epochs,
            latency_reps,
            common,
        } => predict(
            &Mode::Local(net(&common)),
            &data,
            limit,
            hidden,
            epochs,
            latency_reps,
            common.frac,
            common.json,
            net_json(&common),
        ),
        MpcCommand::TrainLogreg {
            split,
            iterations,
            lr,
            common,
        } => logreg(
            &Mode::Local(net(&common)),
            &split,
            LogRegConfig { iterations, lr },
            common.frac,
            common.json,
            net_json(&common),
        ),
        MpcCommand::BenchMatmul { n, ring, common } => {
            let mode = Mode::Local(net(&common));
            if ring == 128 {
                matmul::<u128>(
                    &mode,
                    n,
                    fixed(common.frac, 128)?,
                    common.json,
                    net_json(&common),
                )
            } else if ring == 64 {
                matmul::<u64>(
                    &mode,
                    n,
                    fixed(common.frac, 64)?,
                    common.json,
                    net_json(&common),
                )
            } else {
                Err(anyhow!("--ring must be 64 or 128"))
            }
        }
        MpcCommand::Party {
            id,
            config,
            task,
            data,
            limit,
            latency_reps,
            split,
            iterations,
            n,
            frac,
            json,
        } => {
            if id >= 3 {
                return Err(anyhow!("--id must be 0, 1 or 2"));
            }
            let mode = Mode::Party(id, config);
            let pj = || json!({"kind": "tcp-tls-processes"});
            match task.as_str() {
                "predict" => predict(
                    &mode,
                    &data,
                    limit,
                    None,
                    None,
                    latency_reps,
                    frac,
                    json,
                    pj(),
                ),
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

fn party_of(mode: &Mode) -> Option<usize> {
    match mode {
        Mode::Local(_) => None,
        Mode::Party(id, _) => Some(*id),
    }
}

fn ops_json(s: &Stats) -> serde_json::Value {
    serde_json::Value::Object(
        s.ops
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    json!({"calls": v.calls, "bytes": v.bytes, "rounds": v.rounds}),
                )
            })
            .collect(),
    )
}

fn matmul<R: Z2k>(
    mode: &Mode,
    n: usize,
    fp: FixedPoint,
    json_out: bool,
    netj: serde_json::Value,
) -> anyhow::Result<()> {
    if n == 0 || n > 4096 {
        return Err(anyhow!("--n must be in 1..=4096"));
    }
    let a = Array2::from_shape_fn((n, n), |(i, j)| ((i * 7 + j * 3) % 17) as f64 / 17.0 - 0.5);
    let b = Array2::from_shape_fn((n, n), |(i, j)| ((i * 5 + j * 11) % 13) as f64 / 13.0 - 0.5);
    let out = execute::<R, _>(mode, fp, |p| {
        let x = p.private_input(0, (p.id() == 0).then_some(&a))?;
        let y = p.private_input(1, (p.id() == 1).then_some(&b))?;
        p.reset_stats();
        let t0 = Instant::now();
        let z = p.matmul_fx(&x, &y)?;
        let secs = t0.elapsed().as_secs_f64();
        let st = p.stats().clone();
        // Spot-check the first row at party 0.
        let r = p.reveal_to(&z, &[0])?;
        Ok((secs, st, r))
    })?;
    let mut secs: f64 = 0.0;
    let mut stats = Vec::new();
    let mut max_err: Option<f64> = None;
    for (i, o) in out.outputs.iter().enumerate() {
        if let Some((s, st, r)) = o {
            secs = secs.max(*s);
            stats.push(st.clone());
            if let (0, Some(r)) = (i, r) {
                let want = a.row(0).dot(&b);
                max_err = Some(
                    r.row(0)
                        .iter()
                        .zip(&want)
                        .map(|(x, y)| (x - y).abs())
                        .fold(0.0, f64::max),
                );
            }
        }
    }
    let st = Stats::combine(&stats);
    if json_out {
        let mut j = json!({"task": "bench-matmul", "n": n, "ring": R::BITS, "frac": fp.frac,
            "seconds": secs, "bytes": st.bytes(), "rounds": st.rounds(), "network": netj});
        if let Some(e) = max_err {
            j["max_abs_error_row0"] = json!(e);
        }
        if let Some(id) = party_of(mode) {
            j["party"] = json!(id);
        }
        println!("{j}");
    } else {
        println!(
            "secret-shared {n}×{n} fixed-point matmul (Z_2^{}, f = {}): {secs:.3} s",
            R::BITS,
            fp.frac
        );
        if let Some(e) = max_err {
            println!("max |error| on row 0: {e:.2e}");
        }
        println!("{st}");
    }
    Ok(())
}

struct PredictRun {
    classes: Option<Vec<usize>>,
    batch: (f64, Stats),
    latency: Vec<f64>,
    latency_stats: Stats,
}

#[allow(clippy::too_many_arguments)]
fn predict(
    mode: &Mode,
    data: &str,
    limit: Option<usize>,
    hidden: Option<Vec<usize>>,
    epochs: Option<usize>,
    latency_reps: usize,
    frac: u32,
    json_out: bool,
    netj: serde_json::Value,
) -> anyhow::Result<()> {
    let me = party_of(mode);
    let fp = fixed(frac, 64)?;
    let (train, test, name) = load_classification(data)?;
    let test = take(&test, limit)?;
    let is_mnist = name == "mnist";
    let hidden = hidden.unwrap_or(if is_mnist { vec![128, 128] } else { vec![64] });
    let epochs = epochs.unwrap_or(if is_mnist { 2 } else { 15 });
    // The model owner trains; in a party process only party 0 does.
    let t0 = Instant::now();
    let mut model = if me.is_none() || me == Some(MODEL_OWNER) {
        Some(train_mlp(&train, &hidden, epochs, 1)?)
    } else {
        None
    };
    let train_secs = t0.elapsed().as_secs_f64();
    let plain = match model.as_mut() {
        Some(m) => Some(cipherflow_nn::train::predict(m, &test)?),
        None => None,
    };
    let x = features_f64(&test);
    let out = execute::<u64, _>(mode, fp, |p| {
        let t0 = Instant::now();
        let shared = share_model(
            p,
            if p.id() == MODEL_OWNER {
                model.as_ref()
            } else {
                None
            },
        )?;
        let classes = predict_shared(p, &shared, (p.id() == CLIENT).then_some(&x))?;
        let batch = (t0.elapsed().as_secs_f64(), p.stats().clone());
        p.reset_stats();
        let one = x.slice(ndarray::s![0..1, ..]).to_owned();
        let mut latency = Vec::new();
        for _ in 0..latency_reps {
            let t = Instant::now();
            predict_shared(p, &shared, (p.id() == CLIENT).then_some(&one))?;
            latency.push(t.elapsed().as_secs_f64());
        }
        Ok(PredictRun {
            classes,
            batch,
            latency,
            latency_stats: p.stats().clone(),
        })
    })?;
    let runs: Vec<&PredictRun> = out.outputs.iter().flatten().collect();
    let batch_secs = runs.iter().map(|r| r.batch.0).fold(0.0, f64::max);
    let batch_stats = Stats::combine(&runs.iter().map(|r| r.batch.1.clone()).collect::<Vec<_>>());
    let reps = latency_reps.max(1) as u64;
    let lat_stats = Stats::combine(
        &runs
            .iter()
            .map(|r| r.latency_stats.clone())
            .collect::<Vec<_>>(),
    );
    let mut lat: Vec<f64> = (0..latency_reps)
        .map(|i| {
            runs.iter()
                .filter_map(|r| r.latency.get(i))
                .fold(0.0, |a: f64, &b| a.max(b))
        })
        .collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    let median = lat.get(lat.len() / 2).copied();
    let classes = out
        .outputs
        .get(CLIENT)
        .and_then(|o| o.as_ref())
        .and_then(|r| r.classes.clone());
    let accuracy = classes.as_ref().map(|c| {
        c.iter().zip(test.labels()).filter(|(a, b)| a == b).count() as f64
            / test.len().max(1) as f64
    });
    let agreement = match (&classes, &plain) {
        (Some(c), Some(p)) => {
            Some(c.iter().zip(p).filter(|(a, b)| a == b).count() as f64 / test.len().max(1) as f64)
        }
        _ => None,
    };
    let plain_acc = plain.as_ref().map(|p| {
        p.iter().zip(test.labels()).filter(|(a, b)| a == b).count() as f64
            / test.len().max(1) as f64
    });
    let _ = out.seconds;
    if json_out {
        let mut j = json!({"task": "predict", "data": name, "examples": test.len(), "hidden": hidden,
            "seconds": batch_secs, "bytes": batch_stats.bytes(), "rounds": batch_stats.rounds(),
            "latency_seconds": median, "latency_bytes": lat_stats.bytes() / reps,
            "latency_rounds": lat_stats.rounds() / reps, "train_seconds": train_secs, "ops": ops_json(&batch_stats), "network": netj});
        if let Some(a) = accuracy {
            j["accuracy"] = json!(a);
        }
        if let Some(a) = agreement {
            j["agreement"] = json!(a);
        }
        if let Some(a) = plain_acc {
            j["plaintext_accuracy"] = json!(a);
        }
        if let Some(id) = me {
            // In a multi-process run no single party knows both sides: the
            // client prints what it learnt, the model owner the plaintext
            // predictions, and bench/mpc.sh compares them.
            j["party"] = json!(id);
            if let Some(c) = &classes {
                j["classes"] = json!(c);
            }
            if let Some(p) = &plain {
                j["plaintext_classes"] = json!(p);
            }
        }
        println!("{j}");
    } else {
        println!("private prediction on {name}: {} examples, MLP hidden {hidden:?} (trained in {train_secs:.1} s)", test.len());
        let roles = &cipherflow_mpc::programs::predict::ROLES;
        println!(
            "parties: 0 = {}, 1 = {}, 2 = {}",
            roles.name(0),
            roles.name(1),
            roles.name(2)
        );
        if let Some(a) = accuracy {
            println!("accuracy (revealed to the client only): {:.2} %", 100.0 * a);
        }
        if let (Some(a), Some(p)) = (agreement, plain_acc) {
            println!(
                "agreement with plaintext: {:.2} % (plaintext accuracy {:.2} %)",
                100.0 * a,
                100.0 * p
            );
        }
        println!(
            "batch: {batch_secs:.3} s, {} bytes, {} rounds",
            batch_stats.bytes(),
            batch_stats.rounds()
        );
        if let Some(m) = median {
            println!(
                "one example (model already shared): median {:.1} ms, {} bytes, {} rounds",
                1e3 * m,
                lat_stats.bytes() / reps,
                lat_stats.rounds() / reps
            );
        }
        println!("{batch_stats}");
    }
    Ok(())
}

fn logreg(
    mode: &Mode,
    split: &str,
    cfg: LogRegConfig,
    frac: u32,
    json_out: bool,
    netj: serde_json::Value,
) -> anyhow::Result<()> {
    let split = match split {
        "rows" => Split::Rows,
        "columns" => Split::Columns,
        other => return Err(anyhow!("--split must be rows or columns, not {other:?}")),
    };
    let fp = fixed(frac, 64)?;
    let all = examples::breast_cancer()?;
    let (train, test) = all.split(0.2, 3)?;
    let xtr = features_f64(&train);
    let ytr: Vec<f64> = train.labels().iter().map(|&c| c as f64).collect();
    let xte = features_f64(&test);
    let yte: Vec<f64> = test.labels().iter().map(|&c| c as f64).collect();
    let owners = split_owners(&xtr, &ytr, split);
    let out = execute::<u64, _>(mode, fp, |p| {
        private_logreg(p, split, owners.get(p.id()), cfg)
    })?;
    // Baseline: same algorithm in f64 on the jointly standardised data.
    let sc = Scaling::fit(&xtr);
    let (pw, pb) = plaintext_logreg(&sc.apply(&xtr), &ytr, cfg);
    let plain_acc = accuracy(&sc.apply(&xte), &yte, &pw, pb);
    let trained = out.outputs.iter().flatten().flatten().next();
    let acc = trained.map(|t| accuracy(&sc.apply(&xte), &yte, &t.w, t.b));
    if json_out {
        let mut j = json!({"task": "train-logreg", "split": format!("{split:?}").to_lowercase(),
            "iterations": cfg.iterations, "seconds": out.seconds, "bytes": out.stats.bytes(),
            "rounds": out.stats.rounds(), "plaintext_accuracy": plain_acc, "ops": ops_json(&out.stats), "network": netj});
        if let Some(a) = acc {
            j["accuracy"] = json!(a);
            j["agreement"] = json!(1.0 - (a - plain_acc).abs());
        }
        if let Some(id) = party_of(mode) {
            j["party"] = json!(id);
        }
        println!("{j}");
    } else {
        println!(
            "private logistic regression, {split:?} split, {} iterations: {:.3} s",
            cfg.iterations, out.seconds
        );
        let roles = &cipherflow_mpc::programs::logreg::ROLES;
        println!(
            "parties: 0 = {}, 1 = {}, 2 = {}",
            roles.name(0),
            roles.name(1),
            roles.name(2)
        );
        if let Some(a) = acc {
            println!(
                "test accuracy {:.2} % (plaintext {:.2} %)",
                100.0 * a,
                100.0 * plain_acc
            );
        }
        println!("{}", out.stats);
    }
    Ok(())
}
