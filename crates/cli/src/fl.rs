//! `cipherflow fl …` and `cipherflow key-service`: federated learning with
//! encrypted aggregation — the simulator (all parties in one process, real
//! protocol), the CA, and the coordinator, client and key service as
//! separate processes over gRPC with mutual TLS.

use crate::fl_net;
use anyhow::anyhow;
use cipherflow_fed::sim::{simulate, split_among, SimOptions};
use cipherflow_fed::{
    FederationConfig, FederationPreset, KeysMode, ModelChoice, NoiseKind, StateLocation,
};
use cipherflow_nn::data::Dataset;
use cipherflow_nn::spec::{LayerSpec, ModelSpec};
use serde_json::json;
use std::path::PathBuf;

pub use fl_net::KeyServiceArgs;

/// `cipherflow fl` subcommands.
#[derive(clap::Subcommand)]
pub enum FlCommand {
    /// A whole federation in one process (real protocol, in-process transport).
    Simulate(SimulateArgs),
    /// Certificate authority: identities and the roster of a federation.
    Ca {
        #[command(subcommand)]
        what: fl_net::CaCommand,
    },
    /// The coordinator (gRPC + mutual TLS server).
    Coordinator(fl_net::CoordinatorArgs),
    /// A client (hospital) agent.
    Client(fl_net::ClientArgs),
    /// A regional aggregator (hierarchical aggregation): takes the uploads
    /// of the clients the roster assigns it, forwards one sum per round.
    Region(crate::fl_region::RegionArgs),
}

/// `--keys`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keys {
    /// t-of-n threshold keys held by the clients.
    Threshold,
    /// A separate key service.
    KeyService,
}

/// `--dp-level`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DpLevel {
    /// Distributed noise on the aggregate (client-level DP).
    Client,
    /// DP-SGD on every client (sample-level DP).
    Sample,
}

/// `--dp-noise`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DpNoise {
    /// Exact discrete Gaussian shares.
    DiscreteGaussian,
    /// Skellam shares.
    Skellam,
}

/// Arguments of `cipherflow fl simulate`.
#[derive(clap::Args, Clone)]
pub struct SimulateArgs {
    /// Data: your labelled file or folder (a CSV table, an ImageFolder,
    /// .npy or IDX with --labels), split among the simulated hospitals; a
    /// folder of one CSV table or one ImageFolder per hospital (each
    /// hospital its own file, --clients is their number; 20 % of each is
    /// held out for the evaluation); or breast-cancer, digits or
    /// mnist[:DIR].
    #[arg(long, default_value = "breast-cancer")]
    pub data: String,
    #[command(flatten)]
    pub labels: crate::train::LabelArgs,
    /// Number of clients.
    #[arg(long, default_value_t = 10)]
    pub clients: usize,
    /// Rounds.
    #[arg(long)]
    pub rounds: Option<u64>,
    /// Probability that a sampled client drops out in a round.
    #[arg(long, default_value_t = 0.0)]
    pub dropout: f64,
    /// Who decrypts the sum: any t of the clients, or a key service.
    #[arg(long, value_enum, default_value_t = Keys::Threshold)]
    pub keys: Keys,
    /// DP with this total ε (δ = 1e-5).
    #[arg(long)]
    pub dp_epsilon: Option<f64>,
    /// DP level: `client` (distributed noise on the aggregate) or `sample`
    /// (local DP-SGD on every client).
    #[arg(long, value_enum, default_value_t = DpLevel::Client)]
    pub dp_level: DpLevel,
    /// Client-level noise shares.
    #[arg(long, value_enum, default_value_t = DpNoise::DiscreteGaussian)]
    pub dp_noise: DpNoise,
    /// A dynamic privacy schedule for client-level DP:
    /// `ratio=R,phases=P[,plateau=PATIENCE,keep=F,min-improvement=D]`
    /// (R = last phase's noise / first phase's; a plateau of the
    /// evaluation accuracy spends the rest over fewer, less noisy rounds).
    #[arg(long)]
    pub dp_schedule: Option<cipherflow_fed::dp_schedule::DpScheduleConfig>,
    /// Synthetic benchmark: a model of this many parameters and random updates.
    #[arg(long)]
    pub params_per_client: Option<usize>,
    /// Dirichlet α of the non-IID split (0 = IID).
    #[arg(long)]
    pub alpha: Option<f64>,
    /// Model preset (logreg, mlp, cnn, tenseal-cnn).
    #[arg(long)]
    pub model: Option<String>,
    /// A federation configuration file (TOML/JSON); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Clients sampled per round (default: all).
    #[arg(long)]
    pub clients_per_round: Option<usize>,
    /// Statistical security λ of the decryption smudging (bits).
    #[arg(long)]
    pub stat_sec: Option<u32>,
    /// Threshold keys: a committee of this many key holders (the clients
    /// with party ids 1..=K) instead of every client.
    #[arg(long)]
    pub key_holders: Option<usize>,
    /// Hierarchical aggregation: this many regional aggregators, each with
    /// its own state and signed ledger, sum their clients' updates and
    /// forward one ciphertext per round (clients assigned round-robin).
    #[arg(long, default_value_t = 0)]
    pub regions: usize,
    /// Then run the same federation in plaintext (FedAvg, same model, data
    /// and local training; updates stored and logged alike) and report the
    /// encrypted round's time over the plaintext round's.
    #[arg(long)]
    pub compare_plaintext: bool,
    /// Directory for the state and the audit log (default: a temporary one).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The coordinator's state in Postgres instead, postgres://… (a new
    /// federation: give an empty --state-schema); the ledger stays in --dir.
    #[arg(long)]
    pub state: Option<String>,
    /// With --state: its schema (empty) and CA.
    #[command(flatten)]
    pub postgres: fl_net::PostgresArgs,
    /// Data split seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Rayon threads.
    #[arg(long)]
    pub threads: Option<usize>,
    /// End with one JSON line.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `cipherflow fl` subcommand.
pub fn run(what: FlCommand) -> anyhow::Result<()> {
    match what {
        FlCommand::Simulate(a) => run_simulate(&a, None),
        FlCommand::Ca { what } => fl_net::run_ca(what),
        FlCommand::Coordinator(a) => fl_net::run_coordinator(a),
        FlCommand::Client(a) => fl_net::run_client(a),
        FlCommand::Region(a) => crate::fl_region::run_region_process(a),
    }
}

/// Runs `cipherflow key-service`.
pub fn run_key_service(args: KeyServiceArgs) -> anyhow::Result<()> {
    fl_net::run_key_service(args)
}

/// Largest synthetic model of `fl simulate --params-per-client`.
const MAX_SYNTHETIC_PARAMS: usize = 100_000_000;
/// Largest `--params-per-client × --clients` (about 4 GB of float32 data
/// rows, plus updates and ciphertexts, in one process).
const MAX_SYNTHETIC_TOTAL: usize = 1_000_000_000;

/// The default federation for a data set (and the flags' overrides).
pub fn federation_config(
    a: &SimulateArgs,
    input: &[usize],
    classes: usize,
) -> anyhow::Result<FederationConfig> {
    let mut cfg = match &a.config {
        Some(p) => FederationConfig::load(p)?,
        None => {
            let preset = match a.data.split(':').next() {
                Some("mnist") => FederationPreset::Mnist,
                Some("digits") => FederationPreset::Digits,
                _ => FederationPreset::BreastCancer,
            };
            FederationConfig::preset(preset, input, classes)?
        }
    };
    // A configuration file is read exactly as the coordinator and the
    // clients read it: if its shapes do not fit the data, the processes
    // would fail after key setup, so the simulator refuses too.
    if let (Some(path), ModelChoice::Preset(_)) = (&a.config, &cfg.model) {
        if a.model.is_none() && (cfg.input != input || cfg.classes != classes) {
            return Err(anyhow!(
                "{}: the configuration says input {:?} with {} classes, but the data has \
                 input {input:?} with {classes} classes",
                path.display(),
                cfg.input,
                cfg.classes
            ));
        }
    }
    if let Some(m) = &a.model {
        cfg.model = ModelChoice::Preset(m.clone());
        cfg.input = input.to_vec();
        cfg.classes = classes;
    }
    if let Some(r) = a.rounds {
        cfg.rounds = r;
    }
    cfg.keys = match a.keys {
        Keys::Threshold => KeysMode::Threshold,
        Keys::KeyService => KeysMode::KeyService,
    };
    if let Some(e) = a.dp_epsilon {
        match a.dp_level {
            DpLevel::Client => cfg.set_client_dp(
                e,
                match a.dp_noise {
                    DpNoise::DiscreteGaussian => NoiseKind::DiscreteGaussian,
                    DpNoise::Skellam => NoiseKind::Skellam,
                },
            ),
            DpLevel::Sample => cfg.set_sample_dp(e),
        }
    }
    if let Some(sc) = &a.dp_schedule {
        let dp = cfg
            .dp
            .as_mut()
            .ok_or_else(|| anyhow!("--dp-schedule needs client-level DP (--dp-epsilon)"))?;
        dp.schedule = Some(sc.clone());
    }
    if let Some(k) = a.clients_per_round {
        cfg.clients_per_round = Some(k);
        cfg.fraction = None;
    }
    if let Some(l) = a.stat_sec {
        cfg.aggregation.stat_sec_bits = l;
    }
    if let Some(k) = a.key_holders {
        cfg.key_holders = Some(k);
    }
    if let Some(p) = a.params_per_client {
        if !(2..=MAX_SYNTHETIC_PARAMS).contains(&p) {
            return Err(anyhow!(
                "--params-per-client must be in 2..={MAX_SYNTHETIC_PARAMS}"
            ));
        }
        cfg.model = ModelChoice::Spec(ModelSpec {
            input: vec![p - 1],
            layers: vec![LayerSpec::Dense { units: 1 }],
        });
        cfg.name = format!("synthetic-{p}");
        cfg.dp = None;
    }
    cfg.validate()?;
    Ok(cfg)
}

fn synthetic_data(p: usize, clients: usize) -> anyhow::Result<Vec<Dataset>> {
    (0..clients)
        .map(|_| {
            Ok(Dataset::new(
                ndarray::Array2::zeros((1, p - 1)),
                vec![0],
                vec![p - 1],
                2,
            )?)
        })
        .collect()
}

/// Runs the simulator; prints per-round lines, then a summary (or JSON).
/// `banner` replaces the first line (the demo).
pub fn run_simulate(a: &SimulateArgs, banner: Option<&str>) -> anyhow::Result<()> {
    // A folder of one file per hospital: as many clients as files.
    let hospitals = crate::train::hospital_files(std::path::Path::new(&a.data))?;
    let adjusted;
    let a = match &hospitals {
        Some(files) => {
            adjusted = SimulateArgs {
                clients: files.len(),
                ..a.clone()
            };
            &adjusted
        }
        None => a,
    };
    if let Some(t) = a.threads {
        if t == 0 || t > 1024 {
            return Err(anyhow!("--threads must be in 1..=1024"));
        }
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global();
    }
    if !(a.clients >= 2 && a.clients <= 4096) {
        return Err(anyhow!("--clients must be in 2..=4096"));
    }
    if !(0.0..0.9).contains(&a.dropout) {
        return Err(anyhow!("--dropout must be in [0, 0.9)"));
    }
    if let Some(p) = a.params_per_client {
        // Checked before anything is allocated: the simulator holds every
        // client's data row, update and ciphertexts in memory.
        if !(2..=MAX_SYNTHETIC_PARAMS).contains(&p) {
            return Err(anyhow!(
                "--params-per-client must be in 2..={MAX_SYNTHETIC_PARAMS}"
            ));
        }
        if p.saturating_mul(a.clients) > MAX_SYNTHETIC_TOTAL {
            return Err(anyhow!(
                "--params-per-client × --clients = {} exceeds {MAX_SYNTHETIC_TOTAL} \
                 (the simulator keeps every client in this process's memory)",
                p.saturating_mul(a.clients)
            ));
        }
    }
    let mut class_names = None;
    let (client_data, eval, input, classes) = match a.params_per_client {
        Some(p) => (synthetic_data(p, a.clients)?, None, vec![p - 1], 2),
        None if hospitals.is_some() => {
            let h =
                crate::train::per_hospital(hospitals.as_deref().unwrap_or(&[]), &a.labels, a.seed)?;
            class_names = h.class_names;
            let input = h.eval.shape().to_vec();
            let classes = h.eval.num_classes();
            (h.clients, Some(h.eval), input, classes)
        }
        None => {
            let l = crate::train::load_labelled(&a.data, &a.labels, a.seed)?;
            let alpha = match a.alpha {
                Some(x) if x <= 0.0 => None,
                Some(x) => Some(x),
                None if a.data.starts_with("breast-cancer") => Some(0.5),
                None => None,
            };
            let parts = split_among(&l.train, a.clients, alpha, a.seed)?;
            let input = l.train.shape().to_vec();
            let classes = l.train.num_classes();
            (parts, Some(l.test), input, classes)
        }
    };
    let mut cfg = federation_config(a, &input, classes)?;
    if class_names.is_some() {
        cfg.class_names = class_names;
        cfg.validate()?;
    }
    let tmp = tempdir()?;
    let dir = a.dir.clone().unwrap_or_else(|| tmp.clone());
    let quiet = a.json;
    if !quiet {
        println!(
            "{}",
            banner.map_or_else(
                || format!(
                    "cipherflow fl simulate — {} clients, {} rounds, {:?} keys",
                    a.clients, cfg.rounds, cfg.keys
                ),
                str::to_string
            )
        );
        let sizes = cfg.sizes(a.clients)?;
        println!(
            "  data: {} ({} clients{}), model: {}",
            a.params_per_client
                .map_or(a.data.clone(), |p| format!("synthetic, {p} parameters")),
            a.clients,
            match a.alpha {
                Some(x) if x > 0.0 => format!(", non-IID Dirichlet α = {x}"),
                None if a.data.starts_with("breast-cancer") && a.params_per_client.is_none() =>
                    ", non-IID Dirichlet α = 0.5".into(),
                _ => String::new(),
            },
            match &cfg.model {
                ModelChoice::Preset(p) => p.clone(),
                ModelChoice::Spec(_) => "custom".into(),
            }
        );
        println!(
            "  keys: {}; quorum {} of {} sampled per round; {}",
            match cfg.keys {
                KeysMode::Threshold if sizes.holders < sizes.clients => format!(
                    "{}-of-{} threshold held by a committee of the {} clients \
                     (collective key, Shamir-shared)",
                    sizes.threshold, sizes.holders, sizes.clients
                ),
                KeysMode::Threshold => format!(
                    "{}-of-{} threshold (collective key, Shamir-shared)",
                    sizes.threshold, sizes.clients
                ),
                KeysMode::KeyService => "key service".into(),
            },
            sizes.quorum,
            sizes.sampled,
            match (&cfg.dp, &cfg.local_dp) {
                (Some(d), _) => format!(
                    "client-level DP ε = {} (δ = {:e}), {:?} noise shares{}",
                    d.epsilon,
                    d.delta,
                    d.noise,
                    d.schedule.as_ref().map_or(String::new(), |s| format!(
                        "; privacy schedule: noise × {} over {} phases{}",
                        s.ratio,
                        s.phases,
                        s.plateau.as_ref().map_or(String::new(), |p| format!(
                            ", re-planned after {} rounds without +{} accuracy (keeping {} of the rest)",
                            p.patience, p.min_improvement, p.keep_fraction
                        ))
                    ))
                ),
                (None, Some(l)) => format!(
                    "sample-level DP ε = {} per patient (δ = {:e}): every hospital trains with DP-SGD (q = {})",
                    l.epsilon, l.delta, l.sample_rate
                ),
                (None, None) => "no DP".into(),
            }
        );
    }
    let start = std::time::Instant::now();
    let rounds = cfg.rounds;
    let baseline_inputs = a
        .compare_plaintext
        .then(|| (cfg.clone(), client_data.clone(), eval.clone()));
    let report = simulate(SimOptions {
        config: cfg,
        client_data,
        eval,
        dropout: a.dropout,
        dir: dir.clone(),
        state: match &a.state {
            Some(url) => match a.postgres.location(url)? {
                StateLocation::Sqlite(_) => {
                    return Err(anyhow!("--state takes a postgres:// URL (else use --dir)"))
                }
                pg => Some(pg),
            },
            None if a.postgres.state_schema.is_some() || a.postgres.state_ca.is_some() => {
                return Err(anyhow!(
                    "--state-schema and --state-ca go with --state postgres://…"
                ))
            }
            None => None,
        },
        synthetic: a.params_per_client.is_some(),
        on_round: if quiet {
            None
        } else {
            Some(Box::new(move |h| {
                if h.aborted {
                    println!(
                        "  round {:>3}/{rounds}: aborted ({})",
                        h.round,
                        h.abort_reason.as_deref().unwrap_or("no reason logged")
                    );
                    return;
                }
                println!(
                    "  round {:>3}/{rounds}: {:>3}/{} updates summed encrypted, {} decryption shares{}, accuracy {}, ε {}{}, {:.2} s",
                    h.round,
                    h.contributors,
                    h.sampled,
                    h.decryptors,
                    if h.attempts > 1 { format!(" ({} attempts)", h.attempts) } else { String::new() },
                    h.accuracy.map_or("—".into(), |x| format!("{:.1} %", 100.0 * x)),
                    h.epsilon.map_or("—".into(), |e| format!("{e:.3}")),
                    h.noise_multiplier.map_or(String::new(), |z| format!(" (noise z = {z:.3})")),
                    h.seconds
                );
            }))
        },
        dropout_plan: None,
        regions: a.regions,
    })?;
    let secs = start.elapsed().as_secs_f64();
    let plain = match baseline_inputs {
        Some((cfg, data, eval)) => {
            let pdir = dir.join("plaintext");
            std::fs::create_dir_all(&pdir)?;
            let p =
                cipherflow_fed::baseline::plaintext_training(&cfg, &data, eval.as_ref(), &pdir)?;
            let mut s = p.round_seconds.clone();
            s.sort_by(f64::total_cmp);
            let median = s.get(s.len() / 2).copied().unwrap_or(0.0);
            Some((median, p.accuracy.last().copied()))
        }
        None => None,
    };
    if !quiet {
        if let Some((median, acc)) = plain {
            println!(
                "  plaintext FedAvg (same model, data, training; stored and logged alike): median round {median:.3} s{}; encrypted / plaintext = {:.2}×",
                acc.map_or(String::new(), |a| format!(", accuracy {:.1} %", 100.0 * a)),
                report.round_seconds_median / median.max(1e-9)
            );
        }
        println!(
            "  upload: {:.1} KiB per update = {:.2} bytes per parameter ({:.2}× float32; log2 Q = {}{}); median round {:.3} s; {:.1} s in all",
            report.upload_bytes_per_update / 1024.0,
            report.upload_bytes_per_param,
            report.upload_ratio_to_float32,
            report.log_q,
            if report.params < report.ciphertext_capacity {
                format!(", one ciphertext holds {} parameters, the model has {}", report.ciphertext_capacity, report.params)
            } else {
                String::new()
            },
            report.round_seconds_median,
            secs
        );
        println!(
            "  coordinator: {:.2} ms per accepted upload (durable{}){}",
            report.coordinator_ms_per_upload,
            // Per 10^5 parameters only where that scale means something.
            if report.params >= 10_000 {
                format!(
                    "; {:.2} ms per 10^5 parameters",
                    report.coordinator_ms_per_upload_per_1e5_params
                )
            } else {
                String::new()
            },
            report.peak_rss_mib.map_or(String::new(), |m| format!(
                "; peak memory {m:.0} MiB (all parties)"
            ))
        );
        if report.regions > 0 {
            println!(
                "  {} regions: {} regional sums forwarded, each checked against its region's signed ledger; per upload {:.2} ms in the regions, {:.3} ms in the coordinator",
                report.regions,
                report.regional_sums,
                report.region_ms_per_upload.unwrap_or(0.0),
                report.top_ms_per_upload.unwrap_or(0.0)
            );
        }
        println!(
            "  audit log{}: {} ({} \"my update was counted\" proofs verified by clients)",
            if report.regions > 0 {
                "s (coordinator and regions)"
            } else {
                ""
            },
            report.ledger,
            report.counted_proofs_verified
        );
        if a.dir.is_some() {
            println!("  state and audit log in {}", dir.display());
        }
        println!("  finished: {}", report.finished);
    } else {
        println!(
            "{}",
            json!({
                "rounds": report.rounds,
                "final_accuracy": report.final_accuracy,
                "epsilon": report.epsilon,
                "upload_bytes_per_param": report.upload_bytes_per_param,
                "round_seconds_median": report.round_seconds_median,
                "round_seconds": report.history.iter().map(|h| h.seconds).collect::<Vec<_>>(),
                "coordinator_ms_per_upload": report.coordinator_ms_per_upload,
                "coordinator_ms_per_upload_per_1e5_params":
                    report.coordinator_ms_per_upload_per_1e5_params,
                "peak_rss_mib": report.peak_rss_mib,
                "clients": a.clients,
                "plaintext_round_seconds_median": plain.map(|p| p.0),
                "plaintext_final_accuracy": plain.and_then(|p| p.1),
                "encrypted_to_plaintext": plain.map(|p| report.round_seconds_median / p.0.max(1e-9)),
                "key_holders": report.key_holders,
                "regions": report.regions,
                "regional_sums": report.regional_sums,
                "region_ms_per_upload": report.region_ms_per_upload,
                "top_ms_per_upload": report.top_ms_per_upload,
                "ledger": report.ledger,
                "upload_ratio_to_float32": report.upload_ratio_to_float32,
                "params": report.params,
                "log_q": report.log_q,
                "counted_proofs_verified": report.counted_proofs_verified,
                "aborted_rounds": report.history.iter().filter(|h| h.aborted).count(),
                "seconds": secs,
            })
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
    if report.ledger != "verified" {
        return Err(anyhow!("the audit log did not verify: {}", report.ledger));
    }
    Ok(())
}

fn tempdir() -> anyhow::Result<PathBuf> {
    let mut rng = cipherflow_ring::sampler::secure_rng()?;
    let name = format!(
        "cipherflow-fl-{:016x}",
        rand_core::RngCore::next_u64(&mut rng)
    );
    let d = std::env::temp_dir().join(name);
    std::fs::create_dir_all(&d).map_err(|e| anyhow!("{}: {e}", d.display()))?;
    Ok(d)
}
