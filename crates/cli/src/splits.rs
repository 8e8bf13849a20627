//! `cipherflow model splits`: the split table of the user's own model on
//! the user's own files — for every split, `mpc` mode's cost (the head
//! under encryption, the hand-off, the tail in three-party computation)
//! and what `plain-tail` would reveal (the inversion attack). A thin front
//! end over `cipherflow_platform::split_table`.

use anyhow::anyhow;
use cipherflow_nn::data::{load_inputs, InputOptions, Inputs};
use cipherflow_nn::Preprocessing;
use cipherflow_platform::{default_input_bound, split_table, InversionData, InversionSettings};
use clap::Args;
use std::path::{Path, PathBuf};

/// `cipherflow model splits`.
#[derive(Args)]
pub struct SplitsArgs {
    /// The model file (ONNX or safetensors).
    #[arg(long)]
    model: PathBuf,
    /// Inputs (images, a folder, IDX, .npy/.npz, CSV): the first --limit
    /// run as queries; up to --held-out score the inversion attack.
    #[arg(long)]
    input: PathBuf,
    /// A label file for IDX or .npy inputs (for the accuracy columns).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Public inputs of the same domain (same formats) that the inversion
    /// attack trains on; without them, no leakage columns.
    #[arg(long)]
    public: Option<PathBuf>,
    /// Inputs run as queries per split.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    limit: u64,
    /// Held-out inputs the inversion attack is scored on.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    held_out: u64,
    /// Passes of the inversion network over the public inputs.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000))]
    epochs: u64,
    /// Normalization the model was trained with (MEAN,STD or per
    /// channel); default: the file's.
    #[arg(long)]
    normalize: Option<String>,
    /// The bound |x| ≤ B of the preprocessed inputs the head's hand-off
    /// is sized for (default: from the model's statistics or
    /// normalization, else measured on the inputs).
    #[arg(long)]
    input_bound: Option<f64>,
    /// Only this split (the head is layers 0..K).
    #[arg(long)]
    split: Option<usize>,
    /// JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

fn load(path: &Path, shape: &[usize], labels: Option<PathBuf>) -> anyhow::Result<Inputs> {
    Ok(load_inputs(
        path,
        &InputOptions {
            shape: Some(shape.to_vec()),
            labels,
            ..InputOptions::default()
        },
    )?)
}

/// Runs `cipherflow model splits`.
pub fn run(a: SplitsArgs) -> anyhow::Result<()> {
    let file = cipherflow_nn::io::load(&a.model)?;
    let model = file.model.folded()?;
    let shape = model.input_shape().to_vec();
    let preprocessing = match &a.normalize {
        Some(s) => Some(Preprocessing::parse_normalize(s)?),
        None => file.preprocessing.clone(),
    };
    if let Some(p) = &preprocessing {
        p.check(&shape)?;
    }
    let mut inputs = load(&a.input, &shape, a.labels.clone())?;
    inputs.relabel(
        preprocessing
            .as_ref()
            .and_then(|p| p.class_names.as_deref()),
    )?;
    let held = inputs.len().min(a.held_out as usize);
    if held == 0 {
        return Err(anyhow!("{}: no inputs", a.input.display()));
    }
    let held_out = inputs.features.slice(ndarray::s![..held, ..]).to_owned();
    let mut queries = held_out
        .slice(ndarray::s![..held.min(a.limit as usize), ..])
        .to_owned();
    if let Some(p) = &preprocessing {
        p.apply(&mut queries, &shape)?;
    }
    let (bound, bound_source) = match (a.input_bound, default_input_bound(&file)) {
        (Some(b), _) => (b, "flag"),
        (None, Some(b)) => (b, "model"),
        (None, None) => (
            queries
                .iter()
                .fold(0f64, |m, &v| m.max(f64::from(v).abs()))
                .max(1e-3),
            "inputs",
        ),
    };
    if !(bound.is_finite() && bound > 0.0) {
        return Err(anyhow!("--input-bound {bound}: a positive number"));
    }
    let queries: Vec<Vec<f64>> = queries
        .outer_iter()
        .map(|r| r.iter().map(|&v| f64::from(v)).collect())
        .collect();
    let labels: Option<Vec<usize>> = inputs
        .labels
        .as_ref()
        .and_then(|l| l.get(..held))
        .map(<[usize]>::to_vec);
    let public = match &a.public {
        Some(p) => Some(load(p, &shape, None)?.features),
        None => None,
    };
    let data = public.as_ref().map(|p| InversionData {
        public: p,
        held_out: &held_out,
        labels: labels.as_deref(),
        preprocessing: preprocessing.as_ref(),
    });
    let settings = InversionSettings {
        epochs: a.epochs as usize,
        ..InversionSettings::default()
    };
    // The queries' accuracy, where the inputs carry labels.
    let accuracy = |classes: &[usize]| {
        labels.as_ref().map(|l| {
            let hits = classes.iter().zip(l).filter(|(a, b)| a == b).count();
            hits as f64 / classes.len().max(1) as f64
        })
    };
    let mut rng = cipherflow_ring::sampler::secure_rng()?;
    let rows = split_table(
        &model,
        bound,
        &queries,
        data.as_ref().map(|d| (d, &settings)),
        a.split,
        &mut rng,
    )?;
    if !a.json {
        println!(
            "{} ({} layers), {} queries per split, input bound {bound} (from the {bound_source}){}",
            a.model.display(),
            model.layers().len(),
            queries.len(),
            if data.is_some() {
                format!(
                    "; inversion trained on {} public inputs, scored on {held}",
                    public.as_ref().map_or(0, |p| p.nrows())
                )
            } else {
                "; no --public inputs: no leakage columns".into()
            }
        );
        println!(
            "{:>3}  {:<28} {:>6} {:>9} {:>10} {:>11} {:>7} {:>8}",
            "k", "after", "N", "ms/input", "keys MB", "KB/input", "SSIM", "PSNR dB"
        );
    }
    for row in &rows {
        let leak = row.leakage.as_ref();
        if a.json {
            let mut j = row.json();
            if let (Ok(r), Some(m)) = (&row.mpc, j.get_mut("mpc")) {
                m["accuracy"] = serde_json::json!(accuracy(&r.classes));
            }
            j["input_bound"] = serde_json::json!(bound);
            println!("{j}");
            continue;
        }
        let after: String = row.after.chars().take(28).collect();
        let (ssim, psnr) = leak.map_or(("-".into(), "-".into()), |l| {
            (format!("{:.3}", l.ssim), format!("{:.1}", l.psnr))
        });
        match &row.mpc {
            Ok(r) => println!(
                "{:>3}  {:<28} {:>6} {:>9.1} {:>10.1} {:>11.0} {:>7} {:>8}",
                row.k,
                after,
                format!("2^{}", r.log_n),
                r.ms_per_input(),
                r.key_bytes as f64 / 1e6,
                r.bytes_per_input() as f64 / 1e3,
                ssim,
                psnr
            ),
            Err(e) => println!(
                "{:>3}  {:<28} mpc: {e}; plain-tail SSIM {ssim}, PSNR {psnr}",
                row.k, after
            ),
        }
    }
    Ok(())
}
