//! `cipherflow fl region`: a regional aggregator as its own process
//! (hierarchical aggregation) — it takes the uploads of the clients the
//! roster assigns it and forwards one sum per round to the coordinator.

use crate::fl_net::{init_tracing, runtime, PostgresArgs};
use anyhow::anyhow;
use cipherflow_fed::ca::{Credentials, PkiDir};
use cipherflow_fed::transport::grpc::TlsFiles;
use cipherflow_fed::transport::region::{run_region, RegionProcess};
use cipherflow_fed::{real_clock, CoordinatorOptions, FederationConfig, Roster, StateLocation};
use cipherflow_ledger::LogSigner;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `cipherflow fl region`.
#[derive(clap::Args)]
pub struct RegionArgs {
    /// Federation configuration (must equal the coordinator's).
    #[arg(long)]
    pub config: PathBuf,
    /// The directory `fl ca init --regions K` wrote (the region's own
    /// files are under regions/ID).
    #[arg(long)]
    pub pki: PathBuf,
    /// The region's id, as the roster lists it (e.g. region-1).
    #[arg(long)]
    pub id: String,
    /// The region's state, resumed when present: a directory (SQLite
    /// state beside its ledger), or a Postgres database
    /// postgres://USER@HOST[:PORT]/DB (the ledger then goes to --data-dir).
    #[arg(long, default_value = "fl-region-state")]
    pub state: String,
    /// Where the Postgres state is, beyond its URL.
    #[command(flatten)]
    pub postgres: PostgresArgs,
    /// The region's own directory (its signed ledger). Default: the state
    /// directory; with a Postgres state, fl-region-state.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Listen address for the region's clients.
    #[arg(long, default_value = "127.0.0.1:7445")]
    pub listen: SocketAddr,
    /// The coordinator's URL.
    #[arg(long, default_value = "https://127.0.0.1:7443")]
    pub coordinator: String,
    /// Serve monitoring on this address (plain HTTP) once the region
    /// serves, i.e. after the federation's key setup: /metrics
    /// (Prometheus text), /healthz (liveness), /readyz (readiness).
    #[arg(long)]
    pub metrics: Option<SocketAddr>,
    /// Seconds to keep retrying an unreachable coordinator.
    #[arg(long, default_value_t = 120.0)]
    pub patience: f64,
    /// End with one JSON line.
    #[arg(long)]
    pub json: bool,
}

fn tls(c: &Credentials) -> TlsFiles<'_> {
    TlsFiles {
        ca: &c.ca,
        cert: &c.cert,
        key: &c.key,
    }
}

/// Runs `cipherflow fl region` until the federation finishes.
pub fn run_region_process(a: RegionArgs) -> anyhow::Result<()> {
    init_tracing()?;
    let cfg = FederationConfig::load(&a.config)?;
    let pki = PkiDir::new(&a.pki);
    let roster_path = pki.roster();
    let roster = Roster::load(&roster_path)?;
    if roster.region(&a.id).is_none() {
        return Err(anyhow!(
            "the roster lists no region {:?} (fl ca init --regions K creates region-1 … region-K)",
            a.id
        ));
    }
    let (state, data_dir) = match a.postgres.location(&a.state)? {
        StateLocation::Sqlite(dir) => {
            let data = a.data_dir.clone().unwrap_or_else(|| dir.clone());
            (StateLocation::Sqlite(dir.join("region.db")), data)
        }
        pg => (
            pg,
            a.data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("fl-region-state")),
        ),
    };
    std::fs::create_dir_all(&data_dir).map_err(|e| anyhow!("{}: {e}", data_dir.display()))?;
    // The region's options, now and again after a storage failure: the
    // roster and the signing key are re-read.
    let options = {
        let key = pki.region_ledger_signing_key(&a.id);
        let ledger = data_dir.join("ledger.db");
        let roster_path = roster_path.clone();
        move || {
            Ok(CoordinatorOptions {
                config: cfg.clone(),
                roster: Roster::load(&roster_path)?,
                state: state.clone(),
                ledger: ledger.clone(),
                signer: LogSigner::load(&key)?,
                eval: None,
                clock: real_clock(),
            })
        }
    };
    let server = Credentials::region_server(&a.pki, &a.id);
    let client = Credentials::region_client(&a.pki, &a.id);
    let json_out = a.json;
    let id = a.id.clone();
    let summary = runtime()?.block_on(run_region(
        RegionProcess {
            region: a.id.clone(),
            options: Box::new(options),
            listen: a.listen,
            server_tls: tls(&server),
            client_tls: tls(&client),
            coordinator: a.coordinator.clone(),
            roster_file: Some(roster_path),
            patience: Duration::from_secs_f64(a.patience.clamp(1.0, 3600.0)),
            metrics: a.metrics,
        },
        move |addr| {
            if !json_out {
                println!("regional aggregator {id} on {addr}");
            }
        },
    ))?;
    if a.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "{}: {} sums forwarded ({} uploads, {} late); finished: {}",
            summary.region, summary.forwarded, summary.uploads, summary.late, summary.finished
        );
    }
    Ok(())
}
