//! `cipherflow model-host`: the model creator's part of `mpc` mode, a thin
//! front end over `cipherflow_platform::run_model_host`.

use crate::platform::{read_token, ServerArgs};
use anyhow::anyhow;
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `cipherflow model-host`.
#[derive(Args)]
pub struct ModelHostArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The model's name on the platform.
    #[arg(long)]
    model: String,
    /// Your model file (ONNX or safetensors): the whole model, or only
    /// the layers after the platform's head. Its weights never leave this
    /// process except as secret shares.
    #[arg(long)]
    tail: PathBuf,
    /// The creator's token file (written by `model upload`; default
    /// NAME.token).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Seconds a session waits for a message before it ends.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=3600))]
    idle_s: u64,
}

/// Serves the model's tail until interrupted: one JSON line when
/// registered (`host`, `fingerprint`: what users may pin), one per
/// session that ends.
pub fn run(a: ModelHostArgs) -> anyhow::Result<()> {
    crate::fl_net::init_tracing()?;
    cipherflow_platform::check_name(&a.model)?;
    let token_file = a
        .token_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.token", a.model)));
    let token = read_token(&token_file)?;
    let file =
        cipherflow_nn::io::load(&a.tail).map_err(|e| anyhow!("{}: {e}", a.tail.display()))?;
    let cfg = cipherflow_platform::HostConfig {
        name: a.model.clone(),
        token,
        model: Arc::new(file.model),
        idle: Duration::from_secs(a.idle_s),
    };
    let client = a.server.client(Duration::from_secs(60))?;
    let name = a.model.clone();
    crate::fl_net::runtime()?.block_on(cipherflow_platform::run_model_host(
        client,
        cfg,
        |fp| {
            println!("{}", serde_json::json!({ "host": name, "fingerprint": fp }));
            use std::io::Write;
            let _ = std::io::stdout().flush();
        },
        |end| {
            println!(
                "{}",
                serde_json::json!({
                    "session_end": { "split": end.split, "queries": end.queries, "error": end.error }
                })
            );
            use std::io::Write;
            let _ = std::io::stdout().flush();
        },
        async {
            let _ = tokio::signal::ctrl_c().await;
        },
    ))?;
    Ok(())
}
