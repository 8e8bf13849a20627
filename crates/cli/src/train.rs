//! `cipherflow train`: trains a model on the user's labelled file or
//! folder, a shipped data set or MNIST, optionally with DP-SGD, and saves
//! it as safetensors with its preprocessing (normalization, class names).

use anyhow::anyhow;
use cipherflow_nn::data::{
    load_inputs, load_mnist, Dataset, InputOptions, Inputs, Standardizer, StreamedData,
    TrainingData,
};
use cipherflow_nn::examples;
use cipherflow_nn::io::safetensors;
use cipherflow_nn::spec::{ModelSpec, SpecFile};
use cipherflow_nn::train::{
    accuracy_data, default_loss, fit_data, AccountantKind, DpSpec, Progress, ScheduleSpec,
    TrainConfig,
};
use cipherflow_nn::{Calibration, Preprocessing};

/// Training inputs the stored calibration statistics are measured on.
const CALIBRATION_INPUTS: usize = 10_000;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `cipherflow train`.
#[derive(Args)]
pub struct TrainArgs {
    /// Data: your file or folder — a CSV table with a header (labels in
    /// --label-column), a folder of images with one subfolder per class
    /// (torchvision's ImageFolder), a .npz archive (inputs x, labels y),
    /// or a .npy / IDX file with --labels —
    /// or a shipped example: breast-cancer, digits (embedded in the
    /// binary), mnist[:DIR] (default DIR: $CIPHERFLOW_DATA/mnist, else
    /// data/mnist or ../shared/data/mnist from the working directory).
    /// 20 % is held out for testing.
    #[arg(long, default_value = "breast-cancer")]
    data: String,
    #[command(flatten)]
    labels: LabelArgs,
    /// Read --data (an IDX or .npy file with --labels, or a folder of
    /// images) a window of batches at a time instead of whole: for data
    /// larger than memory. The same batches are drawn (DP-SGD: Poisson
    /// samples of the whole file); each pass over the file gathers up to
    /// 64 MiB of rows.
    #[arg(long)]
    stream: bool,
    /// Normalization applied to the inputs before training, and stored
    /// with the saved model so every command applies it: MEAN,STD or
    /// M1,…,Mc,S1,…,Sc (images are scaled to [0, 1] first).
    #[arg(long)]
    normalize: Option<String>,
    /// Class names, one per line in class-index order, stored with the
    /// model: labels the data names are numbered by this list (a name not
    /// in it is an error); numeric labels are named by it.
    #[arg(long)]
    classes: Option<PathBuf>,
    /// Model: logreg, mlp, cnn, tenseal-cnn, or a TOML/JSON spec file.
    #[arg(long, default_value = "logreg")]
    model: String,
    /// Passes over the training data (default depends on the data set).
    #[arg(long)]
    epochs: Option<usize>,
    /// Batch size (DP-SGD: expected batch size of the Poisson sample).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Learning rate (default: Adam 1e-3 plain, SGD 0.1 + momentum with DP).
    #[arg(long, allow_hyphen_values = true)]
    lr: Option<f32>,
    /// Learning-rate schedule: constant, cosine, or step:EPOCHS:GAMMA.
    #[arg(long)]
    schedule: Option<String>,
    /// Train with DP-SGD to this ε for the whole run (σ is calibrated).
    #[arg(long, allow_hyphen_values = true)]
    dp_epsilon: Option<f64>,
    /// Train with DP-SGD at this noise multiplier σ.
    #[arg(long, allow_hyphen_values = true)]
    dp_sigma: Option<f64>,
    /// δ for DP-SGD.
    #[arg(long, default_value_t = 1e-5, allow_hyphen_values = true)]
    dp_delta: f64,
    /// Per-example clipping norm for DP-SGD.
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    dp_clip: f32,
    /// Accountant for DP-SGD: rdp or pld.
    #[arg(long, default_value = "rdp")]
    accountant: String,
    /// Seed for initialisation, the train/test split and shuffling (DP
    /// noise and sampling always come from the operating system).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Where to save the trained model, with its preprocessing.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The file's format: safetensors (with its architecture; PyTorch
    /// loads the weights with load_state_dict) or onnx (onnxruntime, or
    /// any ONNX tool, runs it). Default: from --out's extension
    /// (.onnx: onnx), else safetensors.
    #[arg(long, value_enum)]
    format: Option<ModelFormatArg>,
    /// End with one JSON line: test_accuracy, epochs, epsilon, seconds,
    /// final_loss (the last epoch's mean training loss), steps.
    #[arg(long)]
    json: bool,
}

/// `train --format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelFormatArg {
    /// safetensors with the architecture in its metadata.
    Safetensors,
    /// ONNX (opset 13; 20 with GELU).
    Onnx,
}

/// Data-set defaults: (train, test, epochs, lr for Adam), and the class
/// names where the files name them.
pub(crate) struct Loaded {
    pub(crate) train: Dataset,
    pub(crate) test: Dataset,
    epochs: usize,
    lr: f32,
    class_names: Option<Vec<String>>,
}

/// Where the labels are in a user's data file (`--data PATH`).
#[derive(Args, Clone, Debug, Default)]
pub struct LabelArgs {
    /// CSV --data: the column holding the label (default "label").
    #[arg(long = "label-column")]
    pub(crate) column: Option<String>,
    /// CSV --data: a column identifying rows, left out of the features.
    #[arg(long)]
    pub(crate) id_column: Option<String>,
    /// .npy or IDX --data: the IDX label file (gzip or not).
    #[arg(long = "labels")]
    pub(crate) file: Option<PathBuf>,
}

/// A user's labelled file or folder, whole (a hospital's own records),
/// and its class names where the file names them.
pub(crate) fn load_file(
    path: &Path,
    labels: &LabelArgs,
) -> anyhow::Result<(Dataset, Option<Vec<String>>)> {
    let inputs = load_labelled_inputs(path, labels)?;
    dataset_of(path, inputs, None)
}

/// The inputs of a user's labelled file or folder (labels required).
pub(crate) fn load_labelled_inputs(path: &Path, labels: &LabelArgs) -> anyhow::Result<Inputs> {
    let inputs = load_inputs(
        path,
        &InputOptions {
            shape: None,
            labels: labels.file.clone(),
            label_column: Some(labels.column.clone().unwrap_or_else(|| "label".into())),
            id_column: labels.id_column.clone(),
        },
    )?;
    if inputs.labels.is_none() {
        return Err(anyhow!(
            "{}: no labels (a CSV needs a label column, images one subfolder per class, \
             .npy and IDX files --labels FILE)",
            path.display()
        ));
    }
    Ok(inputs)
}

/// A data set from labelled inputs; with `classes` (a federation's class
/// names), labels named in the file are numbered by that list.
pub(crate) fn dataset_of(
    path: &Path,
    mut inputs: Inputs,
    classes: Option<&[String]>,
) -> anyhow::Result<(Dataset, Option<Vec<String>>)> {
    if let Some(c) = classes {
        inputs
            .relabel(Some(c))
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    }
    let Some(y) = inputs.labels.clone() else {
        return Err(anyhow!("{}: no labels", path.display()));
    };
    let count = match (classes, &inputs.class_names) {
        (Some(c), _) => c.len(),
        (None, Some(names)) => names.len(),
        (None, None) => y.iter().max().map_or(2, |m| m + 1),
    }
    .max(2);
    if let Some(&bad) = y.iter().find(|&&l| l >= count) {
        return Err(anyhow!(
            "{}: label {bad} is not below the {count} classes",
            path.display()
        ));
    }
    Ok((
        Dataset::new(inputs.features, y, inputs.shape, count)?,
        inputs.class_names,
    ))
}

/// The files of a folder that holds one data set per hospital: CSV tables,
/// or ImageFolders (subfolders whose entries are class folders); `None`
/// for anything else (a file, an ImageFolder itself).
pub(crate) fn hospital_files(path: &Path) -> anyhow::Result<Option<Vec<PathBuf>>> {
    if !path.is_dir() {
        return Ok(None);
    }
    let mut entries = Vec::new();
    for e in std::fs::read_dir(path).map_err(|e| anyhow!("{}: {e}", path.display()))? {
        let p = e.map_err(|e| anyhow!("{}: {e}", path.display()))?.path();
        if !p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'))
        {
            entries.push(p);
        }
    }
    entries.sort();
    let is_csv = |p: &PathBuf| {
        p.is_file() && {
            let n = p.to_string_lossy().to_ascii_lowercase();
            n.ends_with(".csv") || n.ends_with(".csv.gz")
        }
    };
    let is_image_folder = |p: &PathBuf| {
        p.is_dir()
            && std::fs::read_dir(p).is_ok_and(|mut d| d.all(|e| e.is_ok_and(|e| e.path().is_dir())))
    };
    let hospitals =
        entries.len() >= 2 && (entries.iter().all(is_csv) || entries.iter().all(is_image_folder));
    Ok(hospitals.then_some(entries))
}

/// One hospital's data each, from [`hospital_files`].
pub(crate) struct Hospitals {
    /// Each hospital's training part (80 %).
    pub(crate) clients: Vec<Dataset>,
    /// The held-out 20 % of every hospital, together.
    pub(crate) eval: Dataset,
    /// The union of the class names the files give, sorted.
    pub(crate) class_names: Option<Vec<String>>,
}

/// Loads each hospital's file, numbers the named classes by their union
/// (so a hospital lacking a class numbers the others as everyone does),
/// and holds out 20 % of each.
pub(crate) fn per_hospital(
    files: &[PathBuf],
    labels: &LabelArgs,
    seed: u64,
) -> anyhow::Result<Hospitals> {
    let inputs: Vec<Inputs> = files
        .iter()
        .map(|f| load_labelled_inputs(f, labels))
        .collect::<anyhow::Result<_>>()?;
    let named = inputs.iter().filter(|i| i.class_names.is_some()).count();
    let class_names = match named {
        0 => None,
        n if n == inputs.len() => {
            let mut all: Vec<String> = inputs
                .iter()
                .flat_map(|i| i.class_names.clone().unwrap_or_default())
                .collect();
            all.sort();
            all.dedup();
            Some(all)
        }
        _ => {
            return Err(anyhow!(
                "some hospitals' files name their classes and others number them: give every \
                 file the same kind of labels"
            ))
        }
    };
    let mut sets = Vec::with_capacity(files.len());
    for (f, i) in files.iter().zip(inputs) {
        sets.push(dataset_of(f, i, class_names.as_deref())?.0);
    }
    let classes = sets.iter().map(Dataset::num_classes).max().unwrap_or(2);
    let shape = sets.first().map(|d| d.shape().to_vec()).unwrap_or_default();
    let (mut clients, mut held) = (Vec::new(), Vec::new());
    for (f, d) in files.iter().zip(sets) {
        if d.shape() != shape.as_slice() {
            return Err(anyhow!(
                "{}: inputs of shape {:?}, the first hospital's are {shape:?}",
                f.display(),
                d.shape()
            ));
        }
        let d = Dataset::new(
            d.features().clone(),
            d.labels().to_vec(),
            shape.clone(),
            classes,
        )?;
        let (train, test) = d.split(0.2, seed)?;
        clients.push(train);
        held.push(test);
    }
    let views: Vec<_> = held.iter().map(|d| d.features().view()).collect();
    let features = ndarray::concatenate(ndarray::Axis(0), &views)?;
    let y: Vec<usize> = held.iter().flat_map(|d| d.labels().to_vec()).collect();
    Ok(Hospitals {
        clients,
        eval: Dataset::new(features, y, shape, classes)?,
        class_names,
    })
}

/// Examples in memory or read from a file as needed (`--stream`).
enum Set {
    Memory(Dataset),
    File(Box<StreamedData>),
}

impl Set {
    fn data(&self) -> &dyn TrainingData {
        match self {
            Set::Memory(d) => d,
            Set::File(s) => s.as_ref(),
        }
    }

    fn normalized(self, p: &Preprocessing) -> anyhow::Result<Self> {
        Ok(match self {
            Set::Memory(d) => Set::Memory(normalized(&d, p)?),
            Set::File(s) => Set::File(Box::new(s.normalized(p.clone())?)),
        })
    }
}

/// [`Loaded`], for either kind of [`Set`].
struct Examples {
    train: Set,
    test: Set,
    epochs: usize,
    lr: f32,
    class_names: Option<Vec<String>>,
}

/// A user's labelled file or folder read as needed (80 % / 20 % split).
fn streamed(path: &Path, labels: &LabelArgs, seed: u64) -> anyhow::Result<Examples> {
    if labels.column.is_some() || labels.id_column.is_some() {
        return Err(anyhow!(
            "--stream reads IDX and .npy files (with --labels) and image folders; a CSV table \
             is read whole (drop --stream)"
        ));
    }
    let all = StreamedData::open(
        path,
        &InputOptions {
            labels: labels.file.clone(),
            ..InputOptions::default()
        },
    )?;
    let class_names = all.class_names().map(<[String]>::to_vec);
    let (train, test) = all.split(0.2, seed)?;
    Ok(Examples {
        train: Set::File(Box::new(train)),
        test: Set::File(Box::new(test)),
        epochs: 10,
        lr: 1e-3,
        class_names,
    })
}

/// A user's labelled file or folder as a data set (80 % / 20 % split).
fn load_path(path: &Path, labels: &LabelArgs, seed: u64) -> anyhow::Result<Loaded> {
    let (all, class_names) = load_file(path, labels)?;
    let (train, test) = all.split(0.2, seed)?;
    Ok(Loaded {
        train,
        test,
        epochs: 10,
        lr: 1e-3,
        class_names,
    })
}

pub(crate) fn load(data: &str, seed: u64) -> anyhow::Result<Loaded> {
    load_labelled(data, &LabelArgs::default(), seed)
}

/// [`load`], with where a user's file keeps its labels.
pub(crate) fn load_labelled(data: &str, labels: &LabelArgs, seed: u64) -> anyhow::Result<Loaded> {
    if Path::new(data).exists() {
        return load_path(Path::new(data), labels, seed);
    }
    let (name, dir) = data
        .split_once(':')
        .map_or((data, None), |(n, d)| (n, Some(d)));
    match (name, dir) {
        ("breast-cancer", None) => {
            let d = examples::breast_cancer()?;
            let (mut train, mut test) = d.split(0.2, seed)?;
            let s = Standardizer::fit(&train)?;
            s.apply(&mut train)?;
            s.apply(&mut test)?;
            Ok(Loaded {
                train,
                test,
                epochs: 30,
                lr: 1e-2,
                class_names: None,
            })
        }
        ("digits", None) => {
            let d = examples::digits()?;
            let (train, test) = d.split(0.2, seed)?;
            Ok(Loaded {
                train,
                test,
                epochs: 15,
                lr: 1e-2,
                class_names: None,
            })
        }
        ("mnist", dir) => {
            let dir = examples::mnist_dir(dir.map(Path::new))?;
            let (train, test) =
                load_mnist(&dir).map_err(|err| anyhow!("{err} (pass --data mnist:DIR)"))?;
            Ok(Loaded {
                train,
                test,
                epochs: 10,
                lr: 1e-3,
                class_names: None,
            })
        }
        _ => Err(anyhow!(
            "no file or folder '{data}', and no shipped data set of that name \
             (breast-cancer, digits, mnist[:DIR])"
        )),
    }
}

/// A copy of `d` with `p` applied to its features.
fn normalized(d: &Dataset, p: &Preprocessing) -> anyhow::Result<Dataset> {
    let mut x = d.features().clone();
    p.apply(&mut x, d.shape())?;
    Ok(Dataset::new(
        x,
        d.labels().to_vec(),
        d.shape().to_vec(),
        d.num_classes(),
    )?)
}

fn parse_schedule(s: &str) -> anyhow::Result<ScheduleSpec> {
    let bad = || anyhow!("bad --schedule '{s}' (constant, cosine, step:EPOCHS:GAMMA)");
    match s.split(':').collect::<Vec<_>>()[..] {
        ["constant"] => Ok(ScheduleSpec::Constant),
        ["cosine"] => Ok(ScheduleSpec::Cosine { eta_min: 0.0 }),
        ["step", n, g] => {
            let step_size: usize = n.parse().map_err(|_| bad())?;
            let gamma: f32 = g.parse().map_err(|_| bad())?;
            if step_size == 0 || !(gamma > 0.0 && gamma <= 1.0) {
                return Err(bad());
            }
            Ok(ScheduleSpec::Step { step_size, gamma })
        }
        _ => Err(bad()),
    }
}

/// Runs `cipherflow train`.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    if let Some(t) = args.threads {
        if t == 0 || t > 1024 {
            return Err(anyhow!("--threads must be in 1..=1024"));
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()?;
    }
    if args.dp_epsilon.is_some() && args.dp_sigma.is_some() {
        return Err(anyhow!("give --dp-epsilon or --dp-sigma, not both"));
    }
    if let Some(eps) = args.dp_epsilon {
        if !(eps.is_finite() && eps > 0.0) {
            return Err(anyhow!("--dp-epsilon must be positive, got {eps}"));
        }
    }
    if !(args.dp_delta > 0.0 && args.dp_delta < 1.0) {
        return Err(anyhow!(
            "--dp-delta must be in (0, 1), got {}",
            args.dp_delta
        ));
    }
    let accountant = match args.accountant.as_str() {
        "rdp" => AccountantKind::Rdp,
        "pld" => AccountantKind::Pld,
        other => return Err(anyhow!("unknown accountant '{other}' (rdp, pld)")),
    };
    let classes_file = args
        .classes
        .as_deref()
        .map(Preprocessing::read_class_names)
        .transpose()?;
    let mut loaded = if args.stream {
        if classes_file.is_some() {
            return Err(anyhow!(
                "--classes with --stream: number the label file's classes as listed and drop \
                 --classes, or train in memory"
            ));
        }
        streamed(Path::new(&args.data), &args.labels, args.seed)?
    } else if let (Some(names), true) = (&classes_file, Path::new(&args.data).exists()) {
        let path = Path::new(&args.data);
        let inputs = load_labelled_inputs(path, &args.labels)?;
        let (all, _) = dataset_of(path, inputs, Some(names))?;
        let (train, test) = all.split(0.2, args.seed)?;
        Examples {
            train: Set::Memory(train),
            test: Set::Memory(test),
            epochs: 10,
            lr: 1e-3,
            class_names: Some(names.clone()),
        }
    } else {
        let l = load_labelled(&args.data, &args.labels, args.seed)?;
        Examples {
            train: Set::Memory(l.train),
            test: Set::Memory(l.test),
            epochs: l.epochs,
            lr: l.lr,
            class_names: l.class_names,
        }
    };
    if let Some(names) = &classes_file {
        let n = loaded.train.data().num_classes();
        if names.len() != n {
            return Err(anyhow!(
                "--classes names {} classes; the data has {n}",
                names.len()
            ));
        }
        loaded.class_names = Some(names.clone());
    }
    let preprocessing = match &args.normalize {
        Some(s) => {
            let mut p = Preprocessing::parse_normalize(s)?;
            p.check(loaded.train.data().shape())?;
            loaded.train = loaded.train.normalized(&p)?;
            loaded.test = loaded.test.normalized(&p)?;
            p.class_names = loaded.class_names.clone();
            Some(p)
        }
        None => loaded.class_names.clone().map(|names| Preprocessing {
            mean: vec![0.0],
            std: vec![1.0],
            class_names: Some(names),
            calibration: None,
        }),
    };
    let dp_wanted = args.dp_epsilon.is_some() || args.dp_sigma.is_some();
    let classes = loaded.train.data().num_classes();
    let (spec, file_train) = if Path::new(&args.model).is_file() {
        let text =
            std::fs::read_to_string(&args.model).map_err(|e| anyhow!("{}: {e}", args.model))?;
        let f = SpecFile::parse(&text).map_err(|e| anyhow!("{}: {e}", args.model))?;
        let input = f
            .input
            .unwrap_or_else(|| loaded.train.data().shape().to_vec());
        (
            ModelSpec {
                input,
                layers: f.layers,
            },
            f.train,
        )
    } else {
        let spec = ModelSpec::preset(&args.model, loaded.train.data().shape(), classes, dp_wanted)?;
        (spec, None)
    };
    let mut model = spec.build(args.seed)?;
    let dp = dp_wanted.then_some(DpSpec {
        clip: args.dp_clip,
        noise_multiplier: args.dp_sigma,
        target_epsilon: args.dp_epsilon,
        delta: args.dp_delta,
        accountant,
    });
    let mut cfg = file_train.unwrap_or_else(|| {
        let mut c = TrainConfig::default_for(loaded.epochs, 32, dp);
        if dp.is_none() {
            c.lr = loaded.lr;
        }
        c
    });
    if dp.is_some() {
        cfg.dp = dp;
    }
    cfg.seed = args.seed;
    if let Some(e) = args.epochs {
        cfg.epochs = e;
    }
    if let Some(b) = args.batch_size {
        cfg.batch_size = b;
    }
    if let Some(lr) = args.lr {
        cfg.lr = lr;
    }
    if let Some(s) = &args.schedule {
        cfg.schedule = parse_schedule(s)?;
    }
    if !args.json {
        println!(
            "{} training / {} test examples, {} classes{}",
            loaded.train.data().len(),
            loaded.test.data().len(),
            classes,
            if args.stream {
                " (read from the file a window at a time)"
            } else {
                ""
            }
        );
        print!("{model}");
    }
    let loss = default_loss(&model);
    let bar = ProgressBar::hidden();
    let json = args.json;
    let start = Instant::now();
    let summary = fit_data(
        &mut model,
        loss,
        loaded.train.data(),
        Some(loaded.test.data()),
        &cfg,
        &mut |p| match p {
            Progress::Start { total_steps } => {
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                bar.set_length(total_steps);
                bar.set_style(
                    ProgressStyle::with_template(
                        "{elapsed_precise} [{bar:30}] {pos}/{len} steps, {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
            }
            Progress::Step { loss } => {
                bar.inc(1);
                bar.set_message(format!("loss {loss:.4}"));
            }
            Progress::Epoch(r) => {
                let line = format!(
                    "epoch {:>3}/{}: loss {:.4}, test accuracy {:.4}{}, {:.1} s",
                    r.epoch + 1,
                    cfg.epochs,
                    r.loss,
                    r.test_accuracy.unwrap_or(f32::NAN),
                    r.epsilon.map_or(String::new(), |e| format!(", ε = {e:.3}")),
                    r.seconds
                );
                if !json {
                    bar.suspend(|| println!("{line}"));
                }
            }
        },
    )?;
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let acc = accuracy_data(&mut model, loaded.test.data())?;
    // The activation ranges an encrypted run approximates on, measured on
    // (up to 10,000) training inputs. Not for DP-trained models: the
    // statistic is not covered by their guarantee.
    let mut preprocessing = preprocessing;
    if args.out.is_some() && !dp_wanted {
        let n = loaded.train.data().len().min(CALIBRATION_INPUTS);
        let sample = loaded.train.data().rows(&(0..n).collect::<Vec<_>>())?;
        let measured = Calibration::measure(&mut model, sample.features())?;
        preprocessing
            .get_or_insert_with(|| Preprocessing {
                mean: vec![0.0],
                std: vec![1.0],
                class_names: None,
                calibration: None,
            })
            .calibration = Some(measured);
    } else if args.out.is_some() && !json {
        println!(
            "note: no calibration statistics stored (a DP guarantee does not cover them); \
             give `infer --approximate --calibration FILE` public inputs"
        );
    }
    if let Some(out) = &args.out {
        let onnx = match args.format {
            Some(f) => f == ModelFormatArg::Onnx,
            None => out
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("onnx")),
        };
        if onnx {
            cipherflow_nn::io::onnx_export::save(&model, preprocessing.as_ref(), out)?;
        } else {
            safetensors::save_with(&model, preprocessing.as_ref(), out)?;
        }
    }
    if json {
        let line = serde_json::json!({
            "test_accuracy": acc,
            "epochs": cfg.epochs,
            "epsilon": summary.epsilon,
            "seconds": seconds,
            "final_loss": summary.epochs.last().map(|e| e.loss),
            "steps": summary.steps,
        });
        println!("{line}");
    } else {
        println!(
            "test accuracy {acc:.4} after {} epochs in {seconds:.1} s",
            cfg.epochs
        );
        if let (Some(eps), Some(sigma)) = (summary.epsilon, summary.noise_multiplier) {
            println!(
                "DP-SGD: σ = {sigma:.4}, C = {}, ε = {eps:.4} at δ = {} ({} accountant, {} steps)",
                args.dp_clip, args.dp_delta, args.accountant, summary.steps
            );
        }
        if let Some(out) = &args.out {
            println!("saved {}", out.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// Two hospitals' tables, the second without the class "eight":
    /// numbered by the union of names, both number "zero" alike.
    #[test]
    fn hospitals_number_classes_by_their_union() {
        let dir = tempfile::tempdir().unwrap();
        let rows = |labels: &[&str]| {
            let mut t = String::from("id,a,b,label\n");
            for (i, l) in labels.iter().enumerate() {
                t.push_str(&format!("r{i},{i},1,{l}\n"));
            }
            t
        };
        std::fs::write(
            dir.path().join("a.csv"),
            rows(&["zero", "eight", "zero", "five", "eight"]),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.csv"),
            rows(&["zero", "five", "zero", "five", "zero"]),
        )
        .unwrap();
        let files = hospital_files(dir.path()).unwrap().unwrap();
        let labels = LabelArgs {
            id_column: Some("id".into()),
            ..LabelArgs::default()
        };
        let h = per_hospital(&files, &labels, 1).unwrap();
        assert_eq!(h.class_names.as_deref().unwrap(), ["eight", "five", "zero"]);
        // Alone, b.csv would number "zero" 1 (of five, zero); here it is 2.
        let alone = load_file(&files[1], &labels).unwrap().0;
        assert!(alone.labels().iter().all(|&l| l < 2));
        let all: Vec<usize> = h.clients.iter().flat_map(|d| d.labels().to_vec()).collect();
        assert!(all.contains(&2) && !h.clients[1].labels().contains(&0));
        assert!(h.clients.iter().all(|d| d.num_classes() == 3));
        // A federation's names decide; a name it does not list is an error.
        let names = vec!["five".to_string(), "zero".to_string()];
        let inputs = load_labelled_inputs(&files[0], &labels).unwrap();
        let e = dataset_of(&files[0], inputs, Some(&names)).unwrap_err();
        assert!(e.to_string().contains("\"eight\""), "{e}");
        // An ImageFolder is not a folder of hospitals, nor is one file.
        assert!(hospital_files(&files[0]).unwrap().is_none());
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        assert!(hospital_files(dir.path()).unwrap().is_none());
    }
}
