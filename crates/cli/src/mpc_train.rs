//! `cipherflow mpc train`: private training of a neural network on data
//! split between two owners (three parties in this process).

use crate::mpc::{net_json, Common};
use crate::train::{load_file, load_labelled, LabelArgs};
use anyhow::anyhow;
use cipherflow_mpc::jobs::{split_dataset, train_model, Deployment, NnTrainJob, NnTrainOutcome};
use cipherflow_mpc::programs::logreg::Split;
use cipherflow_mpc::programs::train::{NnTrainConfig, Shard};
use cipherflow_mpc::FixedPoint;
use cipherflow_nn::data::{load_inputs, Dataset, InputOptions};
use cipherflow_nn::io::{onnx_export, safetensors};
use cipherflow_nn::spec::{ModelSpec, SpecFile};
use cipherflow_nn::{Preprocessing, Sequential};
use std::path::{Path, PathBuf};

/// `cipherflow mpc train` arguments.
#[derive(clap::Args)]
pub struct TrainArgs {
    /// Model: mlp:W1-W2-… (hidden widths), a preset (mlp, cnn,
    /// tenseal-cnn), a TOML/JSON spec file, or an ONNX/safetensors model
    /// whose weights are the initial weights (owner A brings it). Default:
    /// mlp:128-128.
    #[arg(long)]
    model: Option<String>,
    /// Data: your labelled file or folder (as `cipherflow train --data`
    /// reads it; 20 % held out for testing), digits (shipped), mnist
    /// ($CIPHERFLOW_DATA/mnist, else data/mnist or ../shared/data/mnist)
    /// or mnist:DIR (the IDX files; the t10k files are the test set).
    /// Default: digits. With --party: this owner's own file or folder.
    #[arg(long)]
    data: Option<String>,
    #[command(flatten)]
    labels: LabelArgs,
    /// rows (the owners hold different examples) or columns (different
    /// values of every example; owner B holds the labels).
    #[arg(long, default_value = "rows")]
    split: String,
    /// Passes over the training data.
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// Examples per step.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Learning rate (SGD, on the batch's mean gradient).
    #[arg(long, default_value_t = 0.05)]
    lr: f64,
    /// Momentum.
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// Seed of the initial weights (presets and spec files) and of the
    /// public order of the examples.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Normalization published with the model and applied by each owner:
    /// MEAN,STD or M1,…,Mc,S1,…,Sc (default: the model file's, else none).
    #[arg(long)]
    normalize: Option<String>,
    /// Who learns the trained model: a, b, helper (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "a,b")]
    reveal_to: Vec<String>,
    /// Where to save the trained model (.onnx: ONNX, else safetensors),
    /// with its preprocessing.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run one party of three processes over TLS (see `mpc gen-certs`):
    /// 0 is owner A (--model and its --data), 1 owner B (its --data), 2
    /// the helper (no files). --data is then this owner's own file, whole;
    /// every party passes the same training settings (they are compared).
    #[arg(long, requires = "config")]
    party: Option<usize>,
    /// The network configuration (with --party).
    #[arg(long)]
    config: Option<PathBuf>,
    /// With --party: labelled held-out data this party scores the model
    /// on, if it learns it.
    #[arg(long)]
    test: Option<PathBuf>,
    /// Number of classes (owner A in a columns split holds no labels).
    #[arg(long)]
    classes: Option<usize>,
    /// Ring bits: 128 (default; see the crate docs on truncation) or 64.
    #[arg(long, default_value_t = 128)]
    ring: u32,
    #[command(flatten)]
    common: Common,
}

/// The model to start from and its preprocessing.
fn initial_model(
    spec: &str,
    shape: &[usize],
    classes: usize,
    seed: u64,
) -> anyhow::Result<(Sequential, Option<Preprocessing>)> {
    let path = Path::new(spec);
    if path.is_file() {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if matches!(ext.as_deref(), Some("onnx" | "safetensors")) {
            let f = cipherflow_nn::io::load(path)?;
            return Ok((f.model, f.preprocessing));
        }
        let text = std::fs::read_to_string(path).map_err(|e| anyhow!("{spec}: {e}"))?;
        let f = SpecFile::parse(&text).map_err(|e| anyhow!("{spec}: {e}"))?;
        let s = ModelSpec {
            input: f.input.unwrap_or_else(|| shape.to_vec()),
            layers: f.layers,
        };
        return Ok((s.build(seed)?, None));
    }
    Ok((
        ModelSpec::preset(spec, shape, classes, false)?.build(seed)?,
        None,
    ))
}

fn parties(names: &[String]) -> anyhow::Result<Vec<usize>> {
    names
        .iter()
        .map(|n| match n.trim() {
            "a" | "0" => Ok(0),
            "b" | "1" => Ok(1),
            "helper" | "2" => Ok(2),
            other => Err(anyhow!(
                "--reveal-to: unknown party {other:?} (a, b, helper)"
            )),
        })
        .collect()
}

/// What this process holds: the initial model and its preprocessing
/// (owner A), the owners' shards, the test set.
struct Holdings {
    model: Option<(Sequential, Option<Preprocessing>)>,
    shards: [Option<Shard>; 2],
    test: Option<Dataset>,
}

fn model_spec(a: &TrainArgs) -> &str {
    a.model.as_deref().unwrap_or("mlp:128-128")
}

/// The three parties here: the data split between the owners, 20 % held
/// out (MNIST: the t10k files).
fn local_holdings(a: &TrainArgs, split: Split) -> anyhow::Result<Holdings> {
    let loaded = load_labelled(a.data.as_deref().unwrap_or("digits"), &a.labels, 7)?;
    let classes = a.classes.unwrap_or(loaded.train.num_classes());
    let model = initial_model(model_spec(a), loaded.train.shape(), classes, a.seed)?;
    let [sa, sb] = split_dataset(&loaded.train, split);
    Ok(Holdings {
        model: Some(model),
        shards: [Some(sa), Some(sb)],
        test: Some(loaded.test),
    })
}

/// One party's own files: owner A its model and data, owner B its data,
/// the helper nothing.
fn party_holdings(a: &TrainArgs, split: Split, id: usize) -> anyhow::Result<Holdings> {
    let test = match &a.test {
        Some(t) => Some(load_file(t, &a.labels)?.0),
        None => None,
    };
    match id {
        2 => {
            if a.data.is_some() {
                return Err(anyhow!("the helper (party 2) holds no data: drop --data"));
            }
            if a.model.is_some() {
                return Err(anyhow!(
                    "only owner A (party 0) brings the model: drop --model"
                ));
            }
            Ok(Holdings {
                model: None,
                shards: [None, None],
                test,
            })
        }
        0 | 1 => {
            if id == 1 && a.model.is_some() {
                return Err(anyhow!(
                    "only owner A (party 0) brings the model: drop --model"
                ));
            }
            let data = Path::new(a.data.as_deref().unwrap_or_default());
            if !data.exists() {
                return Err(anyhow!(
                    "owner {}: --data must be this owner's own file or folder ({} not found)",
                    if id == 0 { "A" } else { "B" },
                    data.display()
                ));
            }
            // Owner A of a columns split holds features only.
            let shard = if id == 0 && split == Split::Columns {
                let inputs = load_inputs(
                    data,
                    &InputOptions {
                        id_column: a.labels.id_column.clone(),
                        ..InputOptions::default()
                    },
                )?;
                (
                    Shard {
                        x: inputs.features,
                        labels: None,
                    },
                    inputs.shape,
                    None,
                )
            } else {
                let (d, _) = load_file(data, &a.labels)?;
                (
                    Shard {
                        x: d.features().clone(),
                        labels: Some(d.labels().to_vec()),
                    },
                    d.shape().to_vec(),
                    Some(d.num_classes()),
                )
            };
            let (shard, shape, classes) = shard;
            let model = if id == 0 {
                let classes = a.classes.or(classes).ok_or_else(|| {
                    anyhow!("owner A holds no labels in a columns split: give --classes N")
                })?;
                Some(initial_model(model_spec(a), &shape, classes, a.seed)?)
            } else {
                None
            };
            let mut shards = [None, None];
            if let Some(slot) = shards.get_mut(id) {
                *slot = Some(shard);
            }
            Ok(Holdings {
                model,
                shards,
                test,
            })
        }
        other => Err(anyhow!("--party must be 0, 1 or 2, not {other}")),
    }
}

/// Runs `cipherflow mpc train`.
pub fn run(a: TrainArgs) -> anyhow::Result<()> {
    let split = match a.split.as_str() {
        "rows" => Split::Rows,
        "columns" => Split::Columns,
        other => return Err(anyhow!("--split must be rows or columns, not {other:?}")),
    };
    let reveal_to = parties(&a.reveal_to)?;
    let (held, deployment) = match (a.party, &a.config) {
        (Some(id), Some(config)) => (
            party_holdings(&a, split, id)?,
            Deployment::Party {
                id,
                config: config.clone(),
            },
        ),
        _ => (
            local_holdings(&a, split)?,
            Deployment::Local(crate::mpc::net(&a.common)),
        ),
    };
    let normalize = a
        .normalize
        .as_deref()
        .map(Preprocessing::parse_normalize)
        .transpose()?;
    let (model, pre) = match &held.model {
        Some((m, file_pre)) => (Some(m), normalize.or_else(|| file_pre.clone())),
        None => (None, None),
    };
    let [sa, sb] = &held.shards;
    let job = NnTrainJob {
        model,
        preprocessing: pre.as_ref(),
        shards: [sa.as_ref(), sb.as_ref()],
        split,
        cfg: NnTrainConfig {
            epochs: a.epochs,
            batch_size: a.batch_size,
            lr: a.lr,
            momentum: a.momentum,
            seed: a.seed,
            reveal_to,
        },
        test: held.test.as_ref(),
    };
    let out: NnTrainOutcome = match a.ring {
        128 => {
            let fp = FixedPoint::new::<u128>(a.common.frac.unwrap_or(20))?;
            train_model::<u128>(&deployment, &job, fp)?
        }
        64 => {
            let fp = FixedPoint::new::<u64>(a.common.frac.unwrap_or(16))?;
            train_model::<u64>(&deployment, &job, fp)?
        }
        other => return Err(anyhow!("--ring must be 64 or 128, not {other}")),
    };
    if let (Some(path), Some(m)) = (&a.out, &out.model) {
        if path.extension().and_then(|e| e.to_str()) == Some("onnx") {
            onnx_export::save(m, out.preprocessing.as_ref(), path)?;
        } else {
            safetensors::save_with(m, out.preprocessing.as_ref(), path)?;
        }
    }
    let r = &out.report;
    if a.common.json {
        let mut j = serde_json::to_value(r)?;
        j["network"] = net_json(&a.common);
        println!("{j}");
        return Ok(());
    }
    println!(
        "private training ({} split, {} examples, {} epochs, Z_2^{} with {} fractional bits)",
        r.split, r.examples, r.epochs, r.ring, r.frac
    );
    for (i, s) in r.epoch_seconds.iter().enumerate() {
        println!("  epoch {}: {s:.1} s", i + 1);
    }
    println!(
        "{:.1} s, {:.1} MB sent, {} rounds",
        r.seconds,
        r.bytes as f64 / 1e6,
        r.rounds
    );
    if let Some(acc) = r.test_accuracy {
        println!("test accuracy {:.2} %", 100.0 * acc);
    }
    if let Some(acc) = r.plaintext_accuracy {
        println!("the same training in plaintext: {:.2} %", 100.0 * acc);
    }
    if let (Some(path), Some(_)) = (&a.out, &out.model) {
        println!("saved {}", path.display());
    }
    Ok(())
}
