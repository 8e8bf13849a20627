#![doc = include_str!("../README.md")]

mod audit;
mod bench;
mod bench_fl;
mod bench_tensor;
mod demo;
mod dp;
mod fl;
mod fl_net;
mod fl_region;
mod infer;
mod model_host;
mod mpc;
mod mpc_train;
mod platform;
mod splits;
mod train;

use anyhow::anyhow;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

// Large polynomials (megabytes at N = 2^15) are allocated per operation;
// glibc serves them with fresh mmaps that page-fault on every touch.
// mimalloc keeps them in reusable arenas.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// cipherflow: machine learning on data its owners will not reveal.
#[derive(Parser)]
#[command(
    name = "cipherflow",
    version,
    about,
    after_help = "Environment:\n  \
    CIPHERFLOW_LOG         log level of the long-running commands (fl coordinator, fl client, \
    key-service, serve, model-host), on stderr: error, warn (default), info, debug, trace, or a \
    tracing filter such as cipherflow_fed=debug,info\n  \
    CIPHERFLOW_LOG_FORMAT  text (default) or json (one object per line, for log collectors)\n  \
    CIPHERFLOW_DATA        where MNIST is found (DATA/mnist) when no path is given"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The demo: 10 simulated hospitals train on the shipped breast-cancer
    /// data with threshold-encrypted FedAvg and DP-SGD, ending with
    /// the audit-log verification (`demo scoring`: encrypted diagnosis
    /// scoring with CKKS).
    Demo {
        /// `federated` (default) or `scoring`.
        #[arg(default_value = "federated")]
        what: String,
        /// CSV file in the shipped format (scoring; default: the shipped
        /// breast_cancer.csv, embedded in the binary).
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
    /// CKKS utilities.
    Ckks {
        #[command(subcommand)]
        what: CkksCommand,
    },
    /// Differential-privacy accounting.
    Dp {
        #[command(subcommand)]
        what: dp::DpCommand,
    },
    /// Audit ledger: verify, prove, show.
    Audit {
        #[command(subcommand)]
        what: audit::AuditCommand,
    },
    /// Trains a plaintext model (optionally with DP-SGD) and saves it.
    Train(train::TrainArgs),
    /// Encrypted inference: the client encrypts, the server runs the model on ciphertexts.
    Infer(infer::InferArgs),
    /// Three-party secret-shared computation (private prediction and training).
    Mpc {
        #[command(subcommand)]
        what: mpc::MpcCommand,
    },
    /// Federated learning with threshold-encrypted aggregation.
    Fl {
        #[command(subcommand)]
        what: fl::FlCommand,
    },
    /// Key service: holds the federation secret key, decrypts only closed-round aggregates.
    KeyService(fl::KeyServiceArgs),
    /// The encrypted-inference platform: model repository and HTTPS API.
    Serve(platform::ServeArgs),
    /// Models on a platform: upload, list, delete.
    Model {
        #[command(subcommand)]
        what: platform::ModelCommand,
    },
    /// Queries a platform's model on your encrypted inputs.
    Query(platform::QueryArgs),
    /// Serves your model's tail to a platform's mpc queries (model creators).
    ModelHost(model_host::ModelHostArgs),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Per-operation CKKS timings (JSON lines with --json).
    Ckks {
        /// Parameter preset: n13, n14, n15 or n16.
        #[arg(long, default_value = "n13")]
        preset: String,
        /// Worker threads (1 for single-thread comparisons).
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Timed repetitions per operation.
        #[arg(long, default_value_t = 10)]
        reps: usize,
        /// One JSON object per line per operation.
        #[arg(long)]
        json: bool,
    },
    /// Encrypted tensor operations (matvec, conv, polynomial activations).
    Tensor(bench_tensor::TensorArgs),
    /// Encrypted federated aggregation (bytes, encryption, coordinator, rounds).
    Fl(bench_fl::FlBenchArgs),
}

#[derive(Subcommand)]
enum CkksCommand {
    /// Shows a preset's primes, dnum and security level.
    Params {
        /// aggregation, depth2, deep, n13, n14, n15 or n16.
        #[arg(long, default_value = "depth2")]
        preset: String,
    },
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo { what, data } => match what.as_str() {
            "federated" => demo::run_federated(),
            "scoring" => demo::run(data.as_deref()),
            other => Err(anyhow!("unknown demo {other:?} (federated, scoring)")),
        },
        Command::Bench {
            what:
                BenchCommand::Ckks {
                    preset,
                    threads,
                    reps,
                    json,
                },
        } => {
            let p = bench::preset(&preset)
                .ok_or_else(|| anyhow!("unknown preset '{preset}' (n13, n14, n15, n16)"))?;
            if threads == 0 || threads > 1024 {
                return Err(anyhow!("--threads must be in 1..=1024"));
            }
            if reps == 0 || reps > 100_000 {
                return Err(anyhow!("--reps must be in 1..=100000"));
            }
            let params = p.build()?;
            if !json {
                println!("{preset}: {params}");
            }
            let ms = cipherflow_ring::with_threads(threads, || bench::run_ckks(&params, reps))??;
            bench::print(&preset, threads, reps, &ms, json);
            Ok(())
        }
        Command::Ckks {
            what: CkksCommand::Params { preset },
        } => {
            let p = cipherflow_ckks::Preset::from_name(&preset)
                .ok_or_else(|| anyhow!("unknown preset '{preset}'"))?;
            let params = p.build()?;
            println!("{preset}: {params}");
            println!("  q = {:?}", params.q());
            println!("  p = {:?}", params.p());
            Ok(())
        }
        Command::Dp { what } => dp::run(what),
        Command::Audit { what } => audit::run(what),
        Command::Train(args) => train::run(args),
        Command::Infer(args) => infer::run(args),
        Command::Mpc { what } => mpc::run(what),
        Command::Fl { what } => fl::run(what),
        Command::KeyService(args) => fl::run_key_service(args),
        Command::Serve(args) => platform::serve(args),
        Command::Model { what } => platform::model(what),
        Command::Query(args) => platform::query(args),
        Command::ModelHost(args) => model_host::run(args),
        Command::Bench {
            what: BenchCommand::Tensor(args),
        } => bench_tensor::run(args),
        Command::Bench {
            what: BenchCommand::Fl(args),
        } => bench_fl::run(args),
    }
}

/// `cipherflow … | head` closes stdout early; Rust ignores SIGPIPE, so
/// `println!` would panic with "failed printing to stdout". Exit quietly
/// with the shell's SIGPIPE status instead (catching the signal itself
/// would need `unsafe`, which the workspace forbids).
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    quiet_broken_pipe();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
