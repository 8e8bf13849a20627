//! The networked parties: `cipherflow fl ca`, `fl coordinator`,
//! `fl client` and `key-service`, each its own process, over gRPC with
//! mutual TLS on the identities `fl ca init` issued.

use anyhow::anyhow;
use cipherflow_fed::ca::{self, kx_key_file, Credentials, PkiDir};
use cipherflow_fed::sim::split_among;
use cipherflow_fed::transport::agent::{run_agent, CoordinatorApi, KeyServiceApi, ThroughRegion};
use cipherflow_fed::transport::grpc::{
    self, CoordinatorRemote, CoordinatorServer, KeyServiceRemote, TlsFiles,
};
use cipherflow_fed::transport::shape::Shaped;
use cipherflow_fed::KeyService;
use cipherflow_fed::{real_clock, Coordinator, CoordinatorOptions, Phase};
use cipherflow_fed::{ClientAgent, ClientOptions};
use cipherflow_fed::{FederationConfig, KeysMode};
use cipherflow_fed::{KxSecret, Role, Roster, StateLocation};
use cipherflow_ledger::{LogSigner, PublicKey};
use serde_json::json;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `cipherflow fl ca` subcommands.
#[derive(clap::Subcommand)]
pub enum CaCommand {
    /// Creates a CA, the coordinator's (server and client) and key
    /// service's certificates, the audit-log key, the roster and — for a
    /// demo or tests on one machine only — client identities whose private
    /// keys it generates itself. Hospitals of a real deployment enroll with
    /// `fl ca csr` and `fl ca sign` instead (use --clients 0).
    Init {
        /// Output directory.
        #[arg(long)]
        dir: PathBuf,
        /// Federation name (must match the configuration's).
        #[arg(long)]
        federation: String,
        /// Number of locally generated clients (named client-1 … client-N) …
        #[arg(long, default_value_t = 10)]
        clients: usize,
        /// … or their names, comma separated ([A-Za-z0-9-_], no dots).
        #[arg(long)]
        names: Option<String>,
        /// The coordinator's server name, which clients verify whatever
        /// address they dial [default: coordinator.<federation>.cipherflow.internal].
        #[arg(long)]
        coordinator_name: Option<String>,
        /// The key service's server name
        /// [default: key-service.<federation>.cipherflow.internal].
        #[arg(long)]
        key_service_name: Option<String>,
        /// Further names or IP addresses in the coordinator's certificate,
        /// comma separated (e.g. localhost,127.0.0.1 for other tools).
        #[arg(long)]
        coordinator_san: Option<String>,
        /// Further names or IP addresses in the key service's certificate.
        #[arg(long)]
        key_service_san: Option<String>,
        /// Lifetime of the issued certificates, days (the CA's: ten times as
        /// long). Renew with `fl ca renew` or a new `fl ca sign`.
        #[arg(long, default_value_t = ca::DEFAULT_VALIDITY_DAYS)]
        validity_days: u32,
        /// Regional aggregators region-1 … region-K (hierarchical
        /// aggregation; run each with `fl region`): their server and client
        /// certificates and ledger keys under regions/, the locally
        /// generated clients assigned round robin.
        #[arg(long, default_value_t = 0)]
        regions: usize,
    },
    /// A hospital's side of enrollment: generates its TLS key and its
    /// key-agreement key in --out (mode 0600; they never leave it) and
    /// writes the request to send the CA (--out/request.json, no secret).
    Csr {
        /// The client id to ask for ([A-Za-z0-9-_], no dots).
        #[arg(long)]
        id: String,
        /// The hospital's own directory (created).
        #[arg(long)]
        out: PathBuf,
    },
    /// The CA's side of enrollment: checks a hospital's request, issues its
    /// client certificate (dir/clients/ID/cert.pem, also written to --out)
    /// and adds it to the roster. Signing a new request of an enrolled
    /// client with the same key-agreement key renews its certificate.
    Sign {
        /// The CA directory.
        #[arg(long)]
        dir: PathBuf,
        /// The hospital's request.json.
        #[arg(long, alias = "csr")]
        request: PathBuf,
        /// Also write the certificate here (e.g. the hospital's directory/cert.pem).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Lifetime of the certificate, days.
        #[arg(long, default_value_t = ca::DEFAULT_VALIDITY_DAYS)]
        validity_days: u32,
    },
    /// Re-issues a certificate whose key the CA holds (coordinator,
    /// coordinator-client, key-service, or a locally generated client) and
    /// updates the roster's fingerprint; hand every party the new roster.
    Renew {
        /// The CA directory.
        #[arg(long)]
        dir: PathBuf,
        /// coordinator, coordinator-client, key-service or a client id.
        #[arg(long)]
        who: String,
        /// Lifetime of the new certificate, days.
        #[arg(long, default_value_t = ca::DEFAULT_VALIDITY_DAYS)]
        validity_days: u32,
    },
    /// Revokes a client (the coordinator re-reads the roster).
    Revoke {
        /// The CA directory.
        #[arg(long)]
        dir: PathBuf,
        /// The client id.
        #[arg(long)]
        client: String,
    },
}

/// Arguments of `cipherflow fl coordinator`.
#[derive(clap::Args)]
pub struct CoordinatorArgs {
    /// Federation configuration (TOML or JSON).
    #[arg(long)]
    pub config: PathBuf,
    /// The directory `fl ca init` wrote.
    #[arg(long)]
    pub pki: PathBuf,
    /// The coordinator's state, resumed when present: a directory (SQLite
    /// state beside the audit log, round models and the final model), or
    /// a Postgres database, postgres://USER@HOST[:PORT]/DB[?sslmode=disable]
    /// (the password from PGPASSWORD, not the command line). Either way
    /// the ledger and models go to --data-dir.
    #[arg(long, default_value = "fl-state")]
    pub state: String,
    /// Where the Postgres state is, beyond its URL.
    #[command(flatten)]
    pub postgres: PostgresArgs,
    /// The coordinator's own directory: the audit ledger (a signed file
    /// auditors copy and verify offline), round models and the final
    /// model. Default: the state directory; with a Postgres state,
    /// fl-state.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:7443")]
    pub listen: SocketAddr,
    /// The key service (key-service mode), e.g. https://127.0.0.1:7444.
    #[arg(long)]
    pub key_service: Option<String>,
    /// Evaluation data for per-round accuracy (breast-cancer, digits, mnist[:DIR]).
    #[arg(long)]
    pub eval: Option<String>,
    /// Serve monitoring on this address (plain HTTP): /metrics (Prometheus text, totals and per client), /healthz (liveness), /readyz (readiness).
    #[arg(long)]
    pub metrics: Option<SocketAddr>,
    /// End with one JSON line.
    #[arg(long)]
    pub json: bool,
    /// Where to write the final model (safetensors with its architecture;
    /// default DATA_DIR/model.safetensors).
    #[arg(long)]
    pub model_out: Option<PathBuf>,
    /// Also write every closed round's model to DATA_DIR/models/round-NNNN.safetensors.
    #[arg(long)]
    pub save_rounds: bool,
}

/// A Postgres state's schema and CA (`fl coordinator`, `fl simulate`).
#[derive(clap::Args, Clone, Default)]
pub struct PostgresArgs {
    /// With a Postgres state: the schema holding this federation's tables
    /// (created if missing; one federation per schema).
    #[arg(long)]
    pub state_schema: Option<String>,
    /// With a Postgres state: the CA certificate (PEM) that signed the
    /// database server's certificate; TLS is then required and the server
    /// verified (its name as in the URL).
    #[arg(long)]
    pub state_ca: Option<PathBuf>,
}

impl PostgresArgs {
    /// The state at `--state VALUE`: a Postgres URL with these, or else a
    /// directory, which these may not accompany.
    pub fn location(&self, value: &str) -> anyhow::Result<StateLocation> {
        match StateLocation::parse(value) {
            StateLocation::Postgres { url, .. } => Ok(StateLocation::Postgres {
                url,
                schema: self.state_schema.clone(),
                ca: self.state_ca.clone(),
            }),
            StateLocation::Sqlite(_) if self.state_schema.is_some() || self.state_ca.is_some() => {
                Err(anyhow!(
                    "--state-schema and --state-ca are for a Postgres state (--state postgres://…)"
                ))
            }
            dir => Ok(dir),
        }
    }
}

/// Arguments of `cipherflow fl client`.
#[derive(clap::Args)]
pub struct ClientArgs {
    /// Federation configuration (must equal the coordinator's).
    #[arg(long)]
    pub config: PathBuf,
    /// The federation's public files (ca.pem, roster.json, ledger.pub);
    /// this client's own files are under clients/ID unless --identity.
    #[arg(long)]
    pub pki: PathBuf,
    /// Client id.
    #[arg(long)]
    pub id: String,
    /// This client's own directory (key.pem and kx.key from `fl ca csr`,
    /// cert.pem from `fl ca sign`) [default: PKI/clients/ID].
    #[arg(long)]
    pub identity: Option<PathBuf>,
    /// Coordinator URL.
    #[arg(long, default_value = "https://127.0.0.1:7443")]
    pub coordinator: String,
    /// Key-service URL (key-service mode).
    #[arg(long)]
    pub key_service: Option<String>,
    /// The URL of this client's regional aggregator, when the roster
    /// assigns it one: its updates go there (verified by the region's
    /// roster name and pinned certificate), everything else to the
    /// coordinator.
    #[arg(long)]
    pub region: Option<String>,
    /// Local data: this hospital's own file or folder (a CSV table, an
    /// ImageFolder, .npy or IDX with --labels), used whole; or a shipped
    /// example (breast-cancer, digits, mnist[:DIR]) with --shard.
    #[arg(long, default_value = "breast-cancer")]
    pub data: String,
    #[command(flatten)]
    pub labels: crate::train::LabelArgs,
    /// For a shipped example: this client's shard "K/N" of a seeded split
    /// among N hospitals (a stand-in for each hospital's own records).
    #[arg(long)]
    pub shard: Option<String>,
    /// Dirichlet α of the split (0 = IID; default 0.5 for breast-cancer).
    #[arg(long)]
    pub alpha: Option<f64>,
    /// Split seed (the same for every client).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// State file (key material; default pki/clients/ID/state.json).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Seconds to keep retrying an unreachable coordinator.
    #[arg(long, default_value_t = 120.0)]
    pub patience: f64,
    /// Testing: emulate a bad network to the coordinator, e.g.
    /// `delay=20ms,jitter=5ms,loss=0.05` (each call delayed both ways; lost
    /// calls drop the request or, after the coordinator acted, the reply).
    #[arg(long)]
    pub shape: Option<cipherflow_fed::transport::shape::Shape>,
    /// End with one JSON line.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `cipherflow key-service`.
#[derive(clap::Args)]
pub struct KeyServiceArgs {
    /// Federation configuration (keys = "key-service").
    #[arg(long)]
    pub config: PathBuf,
    /// The directory `fl ca init` wrote.
    #[arg(long)]
    pub pki: PathBuf,
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:7444")]
    pub listen: SocketAddr,
    /// Master secret file (created, mode 0600, when missing).
    #[arg(long, default_value = "key-service-master.key")]
    pub master: PathBuf,
    /// State file (decryption commitments, pinned CRS and ledger head).
    #[arg(long, default_value = "key-service-state.json")]
    pub state: PathBuf,
}

fn tls(c: &Credentials) -> TlsFiles<'_> {
    TlsFiles {
        ca: &c.ca,
        cert: &c.cert,
        key: &c.key,
    }
}

/// Runs `cipherflow fl ca`.
pub fn run_ca(what: CaCommand) -> anyhow::Result<()> {
    match what {
        CaCommand::Init {
            dir,
            federation,
            clients,
            names,
            coordinator_name,
            key_service_name,
            coordinator_san,
            key_service_san,
            validity_days,
            regions,
        } => {
            let names: Vec<String> = match names {
                Some(n) => n.split(',').map(|s| s.trim().to_string()).collect(),
                None => (1..=clients).map(|i| format!("client-{i}")).collect(),
            };
            if names.len() > 4096 {
                return Err(anyhow!("at most 4096 clients"));
            }
            let list = |s: Option<String>| -> Vec<String> {
                s.map(|s| {
                    s.split(',')
                        .map(|x| x.trim().to_string())
                        .filter(|x| !x.is_empty())
                        .collect()
                })
                .unwrap_or_default()
            };
            let opts = ca::CaOptions {
                federation: federation.clone(),
                clients: names,
                coordinator_name,
                key_service_name,
                coordinator_extra_names: list(coordinator_san),
                key_service_extra_names: list(key_service_san),
                validity_days,
                regions,
            };
            let r = ca::init_with(&dir, &opts)?;
            println!(
                "CA for {federation:?} in {}: {} locally generated clients (keys included: local use only), \
                 coordinator {:?} and key service {:?} certificates valid {validity_days} days, roster.json, ledger.key/.pub",
                dir.display(),
                r.clients.len(),
                r.coordinator_name.as_deref().unwrap_or(""),
                r.key_service_name.as_deref().unwrap_or(""),
            );
            for g in &r.regions {
                println!(
                    "  {} ({}): certificates and ledger key in {}",
                    g.region_id,
                    g.server_name.as_deref().unwrap_or(""),
                    PkiDir::new(&dir).region_dir(&g.region_id).display()
                );
            }
            Ok(())
        }
        CaCommand::Csr { id, out } => {
            let req = ca::make_request(&out, &id)?;
            println!(
                "keys for {id:?} in {} (keep them there); send {} to the CA and confirm its SHA-256 {} out of band",
                out.display(),
                out.join(ca::REQUEST_FILE).display(),
                req.fingerprint()?
            );
            Ok(())
        }
        CaCommand::Sign {
            dir,
            request,
            out,
            validity_days,
        } => {
            let req = ca::EnrollmentRequest::load(&request)?;
            let fp = req.fingerprint()?;
            let pem = ca::sign_request(&dir, &req, validity_days)?;
            if let Some(o) = &out {
                cipherflow_fed::write_atomic(o, pem.as_bytes(), false)?;
            }
            println!(
                "{} enrolled (request SHA-256 {fp}); certificate in {}; hand it, ca.pem, roster.json and ledger.pub to the hospital and the new roster.json to every party",
                req.client_id,
                PkiDir::new(&dir).party_dir(&req.client_id).join("cert.pem").display()
            );
            Ok(())
        }
        CaCommand::Renew {
            dir,
            who,
            validity_days,
        } => {
            let fp = ca::renew(&dir, &who, validity_days)?;
            println!(
                "{who}: new certificate (SHA-256 {fp}), valid {validity_days} days; hand every party the new {}",
                PkiDir::new(&dir).roster().display()
            );
            Ok(())
        }
        CaCommand::Revoke { dir, client } => {
            ca::revoke(&dir, &client)?;
            println!(
                "{client} revoked in {}",
                PkiDir::new(&dir).roster().display()
            );
            Ok(())
        }
    }
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Logs of the long-running commands on stderr: the level (or a tracing
/// filter) from `CIPHERFLOW_LOG` (default `warn`), the format from
/// `CIPHERFLOW_LOG_FORMAT` (`text`, the default, or `json`: one object per
/// line). A value that does not parse is an error, not a silent default.
pub(crate) fn init_tracing() -> anyhow::Result<()> {
    let filter = match std::env::var("CIPHERFLOW_LOG") {
        Ok(v) => tracing_subscriber::EnvFilter::try_new(&v)
            .map_err(|e| anyhow!("CIPHERFLOW_LOG={v:?}: {e} (a level such as info, or a filter such as cipherflow_fed=debug)"))?,
        Err(_) => tracing_subscriber::EnvFilter::new("warn"),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let format = std::env::var("CIPHERFLOW_LOG_FORMAT").unwrap_or_default();
    // A second initialization (tests run several commands in one process)
    // keeps the first: ignored.
    match format.as_str() {
        "" | "text" => {
            let _ = builder
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .try_init();
        }
        "json" => {
            let _ = builder.json().with_ansi(false).try_init();
        }
        other => return Err(anyhow!("CIPHERFLOW_LOG_FORMAT={other:?}: text or json")),
    }
    Ok(())
}

/// The coordinator's state and its own directory, from `--state`,
/// `--state-schema` and `--data-dir`.
fn coordinator_state(a: &CoordinatorArgs) -> anyhow::Result<(StateLocation, PathBuf)> {
    Ok(match a.postgres.location(&a.state)? {
        StateLocation::Sqlite(dir) => {
            let data = a.data_dir.clone().unwrap_or_else(|| dir.clone());
            (StateLocation::Sqlite(dir.join("coordinator.db")), data)
        }
        pg => (
            pg,
            a.data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("fl-state")),
        ),
    })
}

/// Runs `cipherflow fl coordinator` until the federation finishes.
pub fn run_coordinator(a: CoordinatorArgs) -> anyhow::Result<()> {
    init_tracing()?;
    let cfg = FederationConfig::load(&a.config)?;
    let roster_path = PkiDir::new(&a.pki).roster();
    let roster = Roster::load(&roster_path)?;
    let (state, data_dir) = coordinator_state(&a)?;
    std::fs::create_dir_all(&data_dir).map_err(|e| anyhow!("{}: {e}", data_dir.display()))?;
    let signer = LogSigner::load(&PkiDir::new(&a.pki).ledger_signing_key())?;
    let eval = match &a.eval {
        Some(d) => Some(crate::train::load(d, 1)?.test),
        None => None,
    };
    if cfg.keys == KeysMode::KeyService && a.key_service.is_none() {
        return Err(anyhow!("key-service mode: pass --key-service URL"));
    }
    // How to open the coordinator — now, and again after a storage failure
    // (a full disk): the roster and the signing key are re-read.
    let open = {
        let (cfg, roster_path, data_dir) = (cfg.clone(), roster_path.clone(), data_dir.clone());
        let key_path = PkiDir::new(&a.pki).ledger_signing_key();
        let rounds_dir = a.save_rounds.then(|| data_dir.join("models"));
        move |signer: LogSigner| {
            let mut c = Coordinator::open(CoordinatorOptions {
                config: cfg.clone(),
                roster: Roster::load(&roster_path)?,
                state: state.clone(),
                ledger: data_dir.join("ledger.db"),
                signer,
                eval: eval.clone(),
                clock: real_clock(),
            })?;
            if let Some(d) = &rounds_dir {
                c.save_round_models(d.clone());
            }
            Ok::<_, cipherflow_fed::FedError>((c, key_path.clone()))
        }
    };
    let (coord, key_path) = open(signer)?;
    let reopen: cipherflow_fed::transport::grpc::Reopen = Box::new(move || {
        let signer = LogSigner::load(&key_path)?;
        open(signer).map(|(c, _)| c)
    });
    let model_out = a
        .model_out
        .clone()
        .unwrap_or_else(|| data_dir.join("model.safetensors"));
    let resumed = coord.current_round().is_some() || !coord.history().is_empty();
    let resume_note = match coord.current_round() {
        Some(r) => format!(
            "resumed in round {r} with {} stored updates",
            coord.current_uploads()
        ),
        None if resumed => "resumed between rounds".to_string(),
        None => "new federation".to_string(),
    };
    let creds = Credentials::under(&a.pki, "coordinator");
    // It calls the key service with its client certificate (a PKI from
    // before the split has one certificate for both).
    let mut client_creds = Credentials::under(&a.pki, "coordinator-client");
    if !client_creds.cert.exists() {
        client_creds = creds.clone();
    }
    let rt = runtime()?;
    let json_out = a.json;
    rt.block_on(async move {
        let ks = a
            .key_service
            .as_ref()
            .map(|u| (u.clone(), tls(&client_creds)));
        let server =
            CoordinatorServer::start(coord, roster, a.listen, &tls(&creds), ks, Some(roster_path))
                .await?;
        server.recover_with(reopen);
        if !json_out {
            println!(
                "coordinator for {:?} on {} ({resume_note}){}",
                cfg.name,
                server.addr,
                a.metrics.map_or(String::new(), |m| format!(
                    ", metrics on http://{m}/metrics"
                ))
            );
        }
        if let Some(m) = a.metrics {
            let listener = cipherflow_fed::transport::metrics::bind(m).await?;
            let handle = server.handle();
            tokio::spawn(async move {
                if let Err(e) = cipherflow_fed::transport::metrics::serve(listener, handle).await {
                    tracing::error!(%e, "metrics endpoint stopped");
                }
            });
        }
        let mut printed = server.with(|c| c.history().len())?;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let (hist, phase) = server.with(|c| (c.history().to_vec(), c.phase().clone()))?;
            for h in hist.iter().skip(printed) {
                if !json_out {
                    println!(
                        "  round {:>3}: {} updates, {} shares, accuracy {}, ε {}{}",
                        h.round,
                        h.contributors,
                        h.decryptors,
                        h.accuracy
                            .map_or("—".into(), |x| format!("{:.1} %", 100.0 * x)),
                        h.epsilon.map_or("—".into(), |e| format!("{e:.3}")),
                        match (&h.aborted, &h.abort_reason) {
                            (true, Some(why)) => format!(" (aborted: {why})"),
                            (true, None) => " (aborted)".to_string(),
                            _ => String::new(),
                        }
                    );
                }
            }
            printed = hist.len();
            if let Phase::Finished(reason) = phase {
                // Let clients fetch their last tasks and proofs.
                tokio::time::sleep(Duration::from_secs(3)).await;
                let last = hist.iter().rev().find(|h| !h.aborted);
                server.with(|c| c.write_model(&model_out))??;
                if json_out {
                    println!(
                        "{}",
                        json!({
                            "rounds": hist.len(),
                            "final_accuracy": last.and_then(|h| h.accuracy),
                            "epsilon": last.and_then(|h| h.epsilon),
                            "finished": reason,
                            "model": model_out.display().to_string(),
                        })
                    );
                } else {
                    println!("  finished: {reason}");
                    println!("  model: {}", model_out.display());
                }
                server.stop().await?;
                return Ok(());
            }
        }
    })
}

fn parse_shard(s: &str) -> anyhow::Result<(usize, usize)> {
    let bad = || anyhow!("--shard must be K/N with 1 ≤ K ≤ N, not {s:?}");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n): (usize, usize) = (k.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    if k == 0 || k > n || n > 4096 {
        return Err(bad());
    }
    Ok((k, n))
}

/// Runs `cipherflow fl client` until the federation finishes.
pub fn run_client(a: ClientArgs) -> anyhow::Result<()> {
    init_tracing()?;
    let cfg = FederationConfig::load(&a.config)?;
    let roster = Roster::load(&PkiDir::new(&a.pki).roster())?;
    let own = Path::new(&a.data);
    let data = if own.exists() {
        if a.shard.is_some() {
            return Err(anyhow!(
                "--shard splits a shipped example among simulated hospitals; {} is this \
                 hospital's own data and is used whole",
                own.display()
            ));
        }
        let inputs = crate::train::load_labelled_inputs(own, &a.labels)?;
        if inputs.class_names.is_some() && cfg.class_names.is_none() {
            tracing::warn!(
                "{} names its labels, and the federation config lists no class_names: this \
                 hospital numbers them in its own sorted order, which agrees with the others' \
                 only if every hospital has every class",
                own.display()
            );
        }
        crate::train::dataset_of(own, inputs, cfg.class_names.as_deref())?.0
    } else {
        let shard = a.shard.as_deref().ok_or_else(|| {
            anyhow!(
                "--data {}: a shipped example needs --shard K/N (or pass this hospital's own \
                 file)",
                a.data
            )
        })?;
        let (k, n) = parse_shard(shard)?;
        let loaded = crate::train::load(&a.data, a.seed)?;
        let alpha = match a.alpha {
            Some(x) if x <= 0.0 => None,
            Some(x) => Some(x),
            None if a.data.starts_with("breast-cancer") => Some(0.5),
            None => None,
        };
        let parts = split_among(&loaded.train, n, alpha, a.seed)?;
        parts
            .into_iter()
            .nth(k - 1)
            .ok_or_else(|| anyhow!("shard out of range"))?
    };
    let dir = a
        .identity
        .clone()
        .unwrap_or_else(|| a.pki.join("clients").join(&a.id));
    let kx = KxSecret::load(&kx_key_file(&dir))?;
    let coordinator_pin = roster.server_pin(Role::Coordinator)?;
    let key_service_pin = roster.server_pin(Role::KeyService)?;
    let roster_region = match roster.by_id(&a.id).and_then(|c| c.region.clone()) {
        Some(r) => Some(roster.region_pin(&r)?),
        None => None,
    };
    let ledger_key = PublicKey::load(&PkiDir::new(&a.pki).ledger_public_key())?;
    let keys = cfg.keys;
    let mut agent = ClientAgent::new(ClientOptions {
        client_id: a.id.clone(),
        kx: Some(kx),
        roster,
        config: cfg,
        data,
        state: Some(a.state.clone().unwrap_or_else(|| dir.join("state.json"))),
        ledger_key: Some(ledger_key),
        synthetic: false,
    })?;
    let creds = Credentials::own(&PkiDir::new(&a.pki).ca_cert(), &dir);
    let mut coord = CoordinatorRemote::connect(&a.coordinator, &tls(&creds), &coordinator_pin)?;
    let mut kms = match &a.key_service {
        Some(u) => Some(KeyServiceRemote::connect(
            u,
            &tls(&creds),
            &key_service_pin,
        )?),
        None => None,
    };
    if !a.json {
        println!(
            "{} ({} local examples) → {}",
            a.id,
            agent.num_examples(),
            a.coordinator
        );
    }
    let patience = Duration::from_secs_f64(a.patience.clamp(1.0, 3600.0));
    let kms = kms.as_mut().map(|k| k as &mut dyn KeyServiceApi);
    let mut region = match (roster_region, &a.region) {
        (Some(pin), Some(url)) => Some(CoordinatorRemote::connect(url, &tls(&creds), &pin)?),
        (Some(pin), None) => {
            return Err(anyhow!(
                "the roster assigns {} to {}: pass --region URL of that regional aggregator",
                a.id,
                pin.name
            ))
        }
        (None, Some(_)) => {
            return Err(anyhow!(
                "the roster assigns {} to no region: --region does not apply",
                a.id
            ))
        }
        (None, None) => None,
    };
    let mut routed;
    let coord: &mut dyn CoordinatorApi = match region.as_mut() {
        Some(r) => {
            routed = ThroughRegion {
                coordinator: &mut coord,
                region: r,
            };
            &mut routed
        }
        None => &mut coord,
    };
    let s = match a.shape {
        Some(shape) => {
            let mut shaped = Shaped::new(coord, shape)?;
            let mut s = run_agent(&mut agent, &mut shaped, kms, keys, patience)?;
            s.shaped = Some(shaped.counts());
            s
        }
        None => run_agent(&mut agent, coord, kms, keys, patience)?,
    };
    if a.json {
        println!("{}", serde_json::to_string(&s)?);
    } else {
        println!(
            "{}: {} updates, {} decryption shares, {} counted proofs verified, {} refused tasks; finished: {}",
            a.id, s.uploads, s.shares, s.counted_proofs, s.refused, s.finished
        );
    }
    Ok(())
}

/// Runs `cipherflow key-service` (until killed).
pub fn run_key_service(a: KeyServiceArgs) -> anyhow::Result<()> {
    init_tracing()?;
    let cfg = FederationConfig::load(&a.config)?;
    let roster = Roster::load(&PkiDir::new(&a.pki).roster())?;
    let ledger_key = PublicKey::load(&PkiDir::new(&a.pki).ledger_public_key())?;
    let master = cipherflow_fed::load_or_create_master_key(&a.master)?;
    let ks = KeyService::new(
        cfg.clone(),
        roster.clone(),
        master,
        ledger_key,
        "coordinator",
        Some(a.state.clone()),
    )?
    .with_roster_file(PkiDir::new(&a.pki).roster());
    let creds = Credentials::under(&a.pki, "key-service");
    println!("key service for {:?} on {}", cfg.name, a.listen);
    Ok(runtime()?.block_on(grpc::serve_key_service(ks, roster, a.listen, &tls(&creds)))?)
}
