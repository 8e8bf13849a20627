//! `cipherflow serve`, `cipherflow model …` and `cipherflow query`: thin
//! front ends over `cipherflow-platform`.

use anyhow::anyhow;
use cipherflow_nn::data::{stream_inputs, InputOptions};
use cipherflow_nn::io::{prepare_upload, Upload};
use cipherflow_nn::Preprocessing;
use cipherflow_platform::{
    encode_query, Config, LocalTls, Platform, PlatformClient, PlatformError, QueryMode, Session,
    SessionOptions,
};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The repository directory when none is given.
const DEFAULT_REPO: &str = "platform-repo";
/// The address `serve` listens on and clients dial when none is given.
const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

/// `cipherflow serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port, printed).
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: String,
    /// The repository directory (created if missing): models, metadata,
    /// usage, and the local TLS files under tls/.
    #[arg(long, default_value = DEFAULT_REPO)]
    repo: PathBuf,
    /// The server's certificate chain (PEM); default: a local CA and
    /// certificate made on first run under REPO/tls/ (clients trust
    /// REPO/tls/ca.pem).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The server's private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Largest request (model upload, evaluation keys, query) in MiB.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=4096))]
    max_upload_mb: u64,
    /// Longest a query may run (ms); a model that takes longer here is
    /// refused when a session opens, with the measured time.
    #[arg(long, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    query_budget_ms: u64,
    /// Public inputs of a domain, DOMAIN=PATH (repeatable; e.g.
    /// mnist=train-images-idx3-ubyte.gz): models uploaded with that
    /// --domain get their plain-tail leakage measured on them.
    #[arg(long, value_name = "DOMAIN=PATH")]
    public: Vec<String>,
    /// Passes of each inversion attack over the public inputs.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=100))]
    public_epochs: u64,
    /// A federated coordinator's audit ledger to show on the federation
    /// dashboard (read-only, reread on each visit).
    #[arg(long, requires = "federation_key")]
    federation_log: Option<PathBuf>,
    /// The ledger's public key file (PREFIX.pub): a ledger signed by
    /// another key is refused.
    #[arg(long, requires = "federation_log")]
    federation_key: Option<PathBuf>,
    /// The federation's ε budget, drawn against the ε spent.
    #[arg(long, requires = "federation_log")]
    epsilon_budget: Option<f64>,
}

/// Where a client finds the platform.
#[derive(Args, Clone)]
pub struct ServerArgs {
    /// The platform, https://HOST:PORT.
    #[arg(long, default_value = "https://127.0.0.1:8443")]
    server: String,
    /// The CA certificate the platform's certificate chains to (default:
    /// platform-repo/tls/ca.pem, what a local `cipherflow serve` makes).
    #[arg(long)]
    ca: Option<PathBuf>,
}

impl ServerArgs {
    pub(crate) fn client(&self, timeout: Duration) -> anyhow::Result<PlatformClient> {
        let ca = self
            .ca
            .clone()
            .unwrap_or_else(|| LocalTls::under(Path::new(DEFAULT_REPO)).ca);
        Ok(PlatformClient::new(&self.server, &ca, timeout)?)
    }
}

/// `cipherflow model …`.
#[derive(Subcommand)]
pub enum ModelCommand {
    /// Uploads a model (ONNX or safetensors) as the next version of NAME.
    Upload {
        #[command(flatten)]
        server: ServerArgs,
        /// The model file.
        #[arg(long)]
        model: PathBuf,
        /// Its name in the repository.
        #[arg(long)]
        name: String,
        /// Normalization it was trained with (MEAN,STD or per channel),
        /// stored with it (overrides the file's).
        #[arg(long)]
        normalize: Option<String>,
        /// Class names, one per line (overrides the file's).
        #[arg(long)]
        classes: Option<PathBuf>,
        /// How many leading layers the platform may hold in the clear:
        /// `all` (the whole model: he mode, and mpc at every split) or K
        /// (only layers 1..=K are uploaded; the rest stays with you, and
        /// you serve it with `cipherflow model-host`: mpc mode).
        #[arg(long)]
        head_layers: String,
        /// The bound |x| ≤ B of the preprocessed inputs (default: from the
        /// model's stored statistics or normalization).
        #[arg(long)]
        input_bound: Option<f64>,
        /// Where the creator's token is kept (read for a new version of
        /// an existing name, written, mode 0600, for a new name).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Its task, shown and searched (e.g. "digit classification").
        #[arg(long)]
        task: Option<String>,
        /// Its license.
        #[arg(long)]
        license: Option<String>,
        /// Who made it.
        #[arg(long)]
        creator: Option<String>,
        /// Its accuracy as you measured it (0 to 1).
        #[arg(long)]
        accuracy: Option<f64>,
        /// Its input domain (e.g. mnist): the platform measures what
        /// plain-tail mode would reveal on its public data of that name.
        #[arg(long)]
        domain: Option<String>,
    },
    /// Lists (and searches) the repository's models.
    List {
        #[command(flatten)]
        server: ServerArgs,
        /// Words that must occur in the name, task, license, creator or
        /// domain.
        #[arg(long)]
        search: Option<String>,
        /// Only models served in this mode (he, mpc).
        #[arg(long)]
        mode: Option<String>,
    },
    /// The split table of a model file on your inputs: for every split,
    /// mpc mode's cost (ms, evaluation keys, bytes per input) and what
    /// plain-tail would reveal (an inversion attack's SSIM and PSNR,
    /// trained on --public inputs). Runs locally; nothing is uploaded.
    Splits(crate::splits::SplitsArgs),
    /// Deletes every version of a model (its creator only).
    Delete {
        #[command(flatten)]
        server: ServerArgs,
        /// The model's name.
        #[arg(long)]
        name: String,
        /// The creator's token file.
        #[arg(long)]
        token_file: PathBuf,
    },
}

/// `cipherflow query`.
#[derive(Args)]
pub struct QueryArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The model's name.
    #[arg(long)]
    model: String,
    /// `mpc`: the first --split layers run on your encrypted input at the
    /// platform, the rest in three-party computation with the platform
    /// and the model's creator (nobody sees your input or its
    /// activations; only you learn the class). `he`: the whole model on
    /// your encrypted input (when its creator allows it).
    #[arg(long, default_value = "mpc")]
    mode: String,
    /// Layers run encrypted on the platform (mpc: default the model
    /// card's recommended split; he: all of them).
    #[arg(long)]
    split: Option<usize>,
    /// mpc: the SHA-256 (hex) the creator's host certificate must have,
    /// as the creator published it (default: the one the platform names).
    #[arg(long)]
    host_fingerprint: Option<String>,
    /// plain-tail: accept the leakage the platform measured for the split
    /// (printed first; without this flag plain-tail stops there).
    #[arg(long)]
    accept_leakage: bool,
    /// mpc: seconds a party waits for a message before the session ends.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=3600))]
    idle_s: u64,
    /// Your inputs (any format `cipherflow infer --input` reads).
    #[arg(long)]
    input: PathBuf,
    /// Labels for an IDX or .npy --input.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// CSV --input: the label column.
    #[arg(long)]
    label_column: Option<String>,
    /// CSV --input: the id column.
    #[arg(long)]
    id_column: Option<String>,
    /// Only the first K inputs.
    #[arg(long)]
    limit: Option<usize>,
    /// One JSON line per input, then a summary line.
    #[arg(long)]
    json: bool,
}

/// Runs `cipherflow serve` until interrupted.
pub fn serve(a: ServeArgs) -> anyhow::Result<()> {
    crate::fl_net::init_tracing()?;
    let listen: std::net::SocketAddr = a
        .listen
        .parse()
        .map_err(|e| anyhow!("--listen {}: {e}", a.listen))?;
    std::fs::create_dir_all(&a.repo).map_err(|e| anyhow!("{}: {e}", a.repo.display()))?;
    let (cert, key, ca) = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone(), None),
        _ => {
            let local = LocalTls::under(&a.repo);
            let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
            let ip = listen.ip().to_string();
            if !listen.ip().is_unspecified() && !names.contains(&ip) {
                names.push(ip);
            }
            local.ensure(&names)?;
            (local.cert, local.key, Some(local.ca))
        }
    };
    let tls = cipherflow_platform::server_config(&cert, &key)?;
    let mut cfg = Config::new(a.repo.clone());
    for p in &a.public {
        let (domain, path) = p
            .split_once('=')
            .filter(|(d, f)| !d.is_empty() && !f.is_empty())
            .ok_or_else(|| anyhow!("--public {p}: DOMAIN=PATH"))?;
        let path = std::fs::canonicalize(path).map_err(|e| anyhow!("--public {path}: {e}"))?;
        cfg.public.push((domain.to_string(), path));
    }
    cfg.inversion.epochs = usize::try_from(a.public_epochs)?;
    cfg.max_upload_bytes = usize::try_from(a.max_upload_mb << 20)?;
    cfg.query_budget = Duration::from_millis(a.query_budget_ms);
    if let (Some(log), Some(key)) = (&a.federation_log, &a.federation_key) {
        if let Some(b) = a.epsilon_budget.filter(|b| !(b.is_finite() && *b > 0.0)) {
            return Err(anyhow!("--epsilon-budget {b}: a positive number"));
        }
        cfg.federation = Some(cipherflow_platform::FederationLog {
            log: std::fs::canonicalize(log).map_err(|e| anyhow!("{}: {e}", log.display()))?,
            key: cipherflow_ledger::PublicKey::load(key)?,
            epsilon_budget: a.epsilon_budget,
        });
    }
    let platform = Platform::open(cfg)?;
    crate::fl_net::runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| anyhow!("--listen {listen}: {e}"))?;
        let addr = listener.local_addr()?;
        println!(
            "listening on https://{addr} (repository {}{})",
            a.repo.display(),
            ca.map_or(String::new(), |c| format!(
                "; clients trust {}",
                c.display()
            ))
        );
        use std::io::Write;
        std::io::stdout().flush()?;
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        cipherflow_platform::serve(listener, tls, platform, stop).await?;
        Ok(())
    })
}

pub(crate) fn read_token(p: &Path) -> anyhow::Result<String> {
    let t = std::fs::read_to_string(p).map_err(|e| anyhow!("{}: {e}", p.display()))?;
    let t = t.trim().to_string();
    if t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(anyhow!("{}: not a creator token", p.display()));
    }
    Ok(t)
}

fn write_token(p: &Path, token: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o
        .open(p)
        .map_err(|e| anyhow!("{}: {e} (the creator's token is written once)", p.display()))?;
    f.write_all(token.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// Runs `cipherflow model …`.
pub fn model(cmd: ModelCommand) -> anyhow::Result<()> {
    let rt = crate::fl_net::runtime()?;
    match cmd {
        ModelCommand::Upload {
            server,
            model,
            name,
            normalize,
            classes,
            head_layers,
            input_bound,
            token_file,
            task,
            license,
            creator,
            accuracy,
            domain,
        } => {
            cipherflow_platform::check_name(&name)?;
            let file = cipherflow_nn::io::load(&model)?;
            let layers = file.model.layers().len();
            let head = match head_layers.as_str() {
                "all" => None,
                k => Some(
                    k.parse::<usize>()
                        .ok()
                        .filter(|&k| (1..=layers).contains(&k))
                        .ok_or_else(|| anyhow!("--head-layers {k}: 1 to {layers}, or all"))?,
                ),
            };
            let classes = classes
                .as_deref()
                .map(Preprocessing::read_class_names)
                .transpose()?;
            let original =
                std::fs::read(&model).map_err(|e| anyhow!("{}: {e}", model.display()))?;
            // Only the head travels when the tail stays here; preprocessing
            // given here replaces the file's.
            let Upload {
                bytes,
                layers,
                head_layers: head,
                outputs,
                ..
            } = prepare_upload(file, &original, head, normalize.as_deref(), classes)?;
            let token_file = token_file.unwrap_or_else(|| PathBuf::from(format!("{name}.token")));
            let token = if token_file.exists() {
                Some(read_token(&token_file)?)
            } else {
                None
            };
            let mut path = format!("/v1/models?name={}&head_layers={head}", encode_query(&name));
            if head < layers {
                path.push_str(&format!("&layers={layers}&outputs={outputs}"));
            }
            if let Some(b) = input_bound {
                path.push_str(&format!("&input_bound={b}"));
            }
            for (k, v) in [
                ("task", task),
                ("license", license),
                ("creator", creator),
                ("domain", domain),
                ("accuracy", accuracy.map(|a| a.to_string())),
            ] {
                if let Some(v) = v {
                    path.push_str(&format!("&{k}={}", encode_query(&v)));
                }
            }
            let client = server.client(Duration::from_secs(600))?;
            let j = rt.block_on(client.json("POST", &path, bytes, token.as_deref()))?;
            if token.is_none() {
                let t = j
                    .get("creator_token")
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| anyhow!("the platform returned no creator token"))?;
                write_token(&token_file, t)?;
            }
            let m = j.get("model").cloned().unwrap_or_default();
            println!(
                "{}",
                serde_json::json!({
                    "model": m,
                    "token_file": token_file.display().to_string(),
                })
            );
            Ok(())
        }
        ModelCommand::Splits(args) => crate::splits::run(args),
        ModelCommand::List {
            server,
            search,
            mode,
        } => {
            let client = server.client(Duration::from_secs(60))?;
            let mut path = "/v1/models?".to_string();
            if let Some(q) = search {
                path.push_str(&format!("q={}&", encode_query(&q)));
            }
            if let Some(m) = mode {
                path.push_str(&format!("mode={}", encode_query(&m)));
            }
            let j = rt.block_on(client.json("GET", &path, Vec::new(), None))?;
            println!("{j}");
            Ok(())
        }
        ModelCommand::Delete {
            server,
            name,
            token_file,
        } => {
            cipherflow_platform::check_name(&name)?;
            let token = read_token(&token_file)?;
            let client = server.client(Duration::from_secs(60))?;
            rt.block_on(client.request(
                "DELETE",
                &format!("/v1/models/{name}"),
                Vec::new(),
                Some(&token),
            ))?;
            println!("{}", serde_json::json!({ "deleted": name }));
            Ok(())
        }
    }
}

/// Runs `cipherflow query` (encryption and decryption inside a rayon
/// pool, as `infer` runs them).
pub fn query(a: QueryArgs) -> anyhow::Result<()> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    cipherflow_ring::with_threads(threads, || query_inner(a))?
}

fn query_inner(a: QueryArgs) -> anyhow::Result<()> {
    let rt = crate::fl_net::runtime()?;
    let client = a.server.client(Duration::from_secs(600))?;
    let opts = SessionOptions {
        mode: a.mode.parse()?,
        split: a.split,
        host_fingerprint: a.host_fingerprint.clone(),
        accept_leakage: a.accept_leakage,
        idle: Duration::from_secs(a.idle_s),
    };
    if opts.mode == QueryMode::PlainTail && opts.split.is_none() {
        return Err(anyhow!("--mode plain-tail needs --split K"));
    }
    let session = match rt.block_on(Session::open(client, &a.model, &opts)) {
        Err(PlatformError::Forbidden(m))
            if opts.mode == QueryMode::PlainTail && !a.accept_leakage =>
        {
            return Err(anyhow!("{m} (rerun with --accept-leakage to accept it)"))
        }
        other => other?,
    };
    if opts.mode == QueryMode::PlainTail {
        eprintln!("{}", session.description());
    }
    let mode = opts.mode.name();
    let split = session.split();
    let pre = session.preprocessing()?;
    let names = pre.as_ref().and_then(|p| p.class_names.clone());
    let shape = session.input_shape();
    let stream = stream_inputs(
        &a.input,
        &InputOptions {
            shape: Some(shape.clone()),
            labels: a.labels.clone(),
            label_column: a.label_column.clone(),
            id_column: a.id_column.clone(),
        },
        64,
    )?;
    if stream.shape() != shape {
        return Err(anyhow!(
            "the model takes inputs of shape {shape:?}, {} has {:?}",
            a.input.display(),
            stream.shape()
        ));
    }
    let (key_bytes, keygen_ms) = session.key_bytes();
    if !a.json {
        let how = session.description();
        println!(
            "model {} v{} ({mode}): keys made in {keygen_ms:.0} ms, {key_bytes} bytes of \
             evaluation keys uploaded; {how}",
            a.model,
            session.card().version,
        );
    }
    let limit = a.limit.unwrap_or(usize::MAX);
    let (mut n, mut ms, mut up, mut down, mut labelled, mut correct) = (0usize, 0.0, 0, 0, 0, 0);
    let mut mpc_bytes = 0;
    'outer: for chunk in stream {
        let mut c = chunk?;
        if let Some(p) = &pre {
            p.apply(&mut c.features, &c.shape)?;
        }
        c.relabel(names.as_deref())?;
        for (i, row) in c.features.rows().into_iter().enumerate() {
            if n >= limit {
                break 'outer;
            }
            let x: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
            let ans = rt.block_on(session.classify(&x))?;
            let class_name = names
                .as_ref()
                .and_then(|v| v.get(ans.class))
                .cloned()
                .unwrap_or_else(|| ans.class.to_string());
            let label = c.labels.as_ref().and_then(|l| l.get(i)).copied();
            if let Some(l) = label {
                labelled += 1;
                correct += usize::from(l == ans.class);
            }
            let id = c.ids.get(i).cloned().unwrap_or_else(|| n.to_string());
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "id": id,
                        "class": ans.class,
                        "class_name": class_name,
                        "mode": mode,
                        "split": split,
                        "ms": ans.ms,
                        "upload_bytes": ans.upload_bytes,
                        "download_bytes": ans.download_bytes,
                        "mpc_bytes": ans.mpc_bytes,
                    })
                );
            } else {
                println!("{id}: class {class_name} ({:.0} ms)", ans.ms);
            }
            n += 1;
            ms += ans.ms;
            up += ans.upload_bytes;
            down += ans.download_bytes;
            mpc_bytes += ans.mpc_bytes;
        }
    }
    if n == 0 {
        return Err(anyhow!("no inputs in {}", a.input.display()));
    }
    let accuracy = (labelled > 0).then(|| correct as f64 / labelled as f64);
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "inputs": n,
                "ms_per_input": ms / n as f64,
                "upload_bytes": up / n,
                "download_bytes": down / n,
                "mpc_bytes": mpc_bytes / n,
                "key_bytes": key_bytes,
                "keygen_ms": keygen_ms,
                "mode": mode,
                "split": split,
                "accuracy": accuracy,
            })
        );
    } else {
        println!(
            "{n} inputs: {:.0} ms per input; {} bytes up, {} bytes down{} per input{}",
            ms / n as f64,
            up / n,
            down / n,
            if mpc_bytes > 0 {
                format!(", {} bytes in the computation", mpc_bytes / n)
            } else {
                String::new()
            },
            accuracy.map_or(String::new(), |a| format!("; accuracy {:.2} %", 100.0 * a))
        );
    }
    rt.block_on(session.close())?;
    Ok(())
}
