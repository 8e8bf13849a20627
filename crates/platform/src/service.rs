//! The platform's HTTPS API (see `openapi.yaml`): the repository, sessions
//! of evaluation keys, and encrypted queries.
//!
//! Every body is bounded (`max_upload_bytes`) before it is read; models,
//! keys and ciphertexts are parsed by their own strict decoders, and a bad
//! one is answered 4xx with its reason (JSON `{"error": …}`), never a
//! crash. Heavy work (parsing a model, preparing it, evaluating) runs on
//! the blocking pool; a query that runs past the time budget is answered
//! 503. Nothing secret is logged: the platform holds no secret of a user's.

use crate::error::PlatformError;
use crate::leakage::InversionSettings;
use crate::repo::{ModelInfo, ModelRecord, Repository, UploadMeta, Usage};
use crate::served_mpc;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use cipherflow_api::{FederationSummary, HeQuery, ModelCard, ModelList, SessionOpened, Uploaded};
use cipherflow_tensor::privacy::DEFAULT_RETURNED_OUTPUTS;
use cipherflow_tensor::{
    approximate_with, CompileOptions, EncTensor, EncryptedModel, EvalKeys, InputSpec, KeySet, Mode,
    OutputPrivacy, Plan,
};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The header carrying a model creator's token.
pub const CREATOR_TOKEN_HEADER: &str = "x-creator-token";
/// Precision (bits) the platform keeps in returned outputs after flooding.
pub const OUTPUT_PRECISION_BITS: f64 = 8.0;
/// Degree of the approximations of non-polynomial activations.
pub const APPROXIMATION_DEGREE: usize = 15;

/// The platform's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The repository directory.
    pub repo: PathBuf,
    /// Largest request body (a model upload, a session's keys, a query).
    pub max_upload_bytes: usize,
    /// Longest a query may run; a model whose measured run exceeds it is
    /// refused when a session opens.
    pub query_budget: Duration,
    /// Most open sessions of each mode (the oldest is closed beyond it).
    pub max_sessions: usize,
    /// Longest an `mpc` session waits for its next query (and a party of
    /// it for a message) before it ends.
    pub session_idle: Duration,
    /// Public inputs per domain (`mnist` → its training images): what the
    /// platform trains `plain-tail` inversion attacks on.
    pub public: Vec<(String, PathBuf)>,
    /// How those attacks are trained.
    pub inversion: InversionSettings,
    /// Public inputs held out to score an attack on.
    pub held_out: usize,
    /// Most public inputs read.
    pub public_limit: usize,
    /// A coordinator's audit ledger shown on the federation dashboard.
    pub federation: Option<crate::federation::FederationLog>,
}

impl Config {
    /// The defaults for a repository in `repo`: 256 MiB bodies, 60 s per
    /// query, 64 sessions, 300 s of idleness.
    pub fn new(repo: PathBuf) -> Self {
        Self {
            repo,
            max_upload_bytes: 256 << 20,
            query_budget: Duration::from_secs(60),
            max_sessions: 64,
            session_idle: Duration::from_secs(300),
            public: Vec::new(),
            inversion: InversionSettings::default(),
            held_out: 1000,
            public_limit: 60_000,
            federation: None,
        }
    }
}

/// A model prepared for encrypted queries (`he` mode).
struct Prepared {
    record: ModelRecord,
    server: EncryptedModel,
    spec: InputSpec,
    privacy: OutputPrivacy,
    /// Milliseconds one query took when the platform tried it.
    measured_ms: f64,
}

struct Session {
    model: Arc<Prepared>,
    keys: EvalKeys,
    opened: Instant,
}

/// The platform's state.
pub struct Platform {
    pub(crate) cfg: Config,
    /// The pool every evaluation runs in (run *inside* it, so that the
    /// limb-parallel loops of an evaluation do not each cross threads).
    pub(crate) pool: rayon::ThreadPool,
    pub(crate) repo: Mutex<Repository>,
    prepared: Mutex<HashMap<(String, i64), Arc<Prepared>>>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    pub(crate) mpc: crate::served_mpc::MpcState,
    pub(crate) plain: crate::served_plain::LeakageJobs,
    federation: crate::federation::SummaryCache,
}

pub(crate) type Shared = Arc<Platform>;

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl IntoResponse for PlatformError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!("{self}");
        } else {
            tracing::warn!("refused: {self}");
        }
        (
            status,
            Json(cipherflow_api::ErrorBody {
                error: self.to_string(),
            }),
        )
            .into_response()
    }
}

/// Runs `f` on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PlatformError> + Send + 'static,
) -> Result<T, PlatformError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PlatformError::Storage(format!("a worker failed: {e}")))?
}

/// The card of `r` as the list shows it (the model's own page adds its
/// `he`, `mpc` and plain-tail sections).
fn card(r: &ModelRecord) -> ModelCard {
    ModelCard {
        name: r.name.clone(),
        version: r.version,
        sha256: r.sha256.clone(),
        bytes: r.bytes,
        created: r.created,
        layers: r.layers,
        head_layers: r.head_layers,
        input_shape: r.input_shape.clone(),
        outputs: r.outputs,
        // Written by cipherflow-nn; a value that would not serialize is
        // left out rather than failing the whole card.
        preprocessing: r
            .preprocessing
            .as_ref()
            .and_then(|p| serde_json::to_value(p).ok()),
        input_bound: r.input_bound,
        splits: r.splits.clone(),
        info: r.info.clone(),
        modes: r.modes().into_iter().map(str::to_string).collect(),
        he: None,
        mpc: None,
        plain_tail: None,
    }
}

/// Throwaway keys made by the platform for `server`, and an encryption of
/// zeros under them: what a model's trial run evaluates.
pub(crate) fn trial_input(
    server: &EncryptedModel,
) -> Result<(KeySet, EncTensor, rand_chacha::ChaCha20Rng), PlatformError> {
    let mut rng = cipherflow_ring::sampler::secure_rng()
        .map_err(|e| PlatformError::Storage(e.to_string()))?;
    let client = server.client()?;
    let keys = KeySet::generate(&client, &mut rng)?;
    let zeros = vec![0.0; client.spec().input_shape.iter().product()];
    let x = client.encrypt(&keys.sk, &[zeros], &mut rng)?;
    Ok((keys, x, rng))
}

impl Platform {
    /// Opens the repository of `cfg`.
    pub fn open(cfg: Config) -> Result<Arc<Self>, PlatformError> {
        let repo = Repository::open(&cfg.repo)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("eval-{i}"))
            .build()
            .map_err(|e| PlatformError::Storage(format!("thread pool: {e}")))?;
        Ok(Arc::new(Self {
            cfg,
            pool,
            repo: Mutex::new(repo),
            prepared: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            mpc: crate::served_mpc::MpcState::default(),
            plain: crate::served_plain::LeakageJobs::default(),
            federation: crate::federation::SummaryCache::default(),
        }))
    }

    /// The API's routes.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/", get(crate::web::index))
            .route("/ui/{*file}", get(crate::web::asset))
            .route("/v1/health", get(|| async { "ok" }))
            .route("/v1/federation", get(federation))
            .route("/v1/models", get(list).post(upload))
            .route("/v1/models/{name}", get(model_card).delete(delete_model))
            .route("/v1/models/{name}/usage", get(usage))
            .route("/v1/models/{name}/sessions", post(open_session))
            .route("/v1/models/{name}/splits/{k}", get(served_mpc::split_info))
            .route("/v1/models/{name}/host", post(served_mpc::register_host))
            .route("/v1/sessions/{id}", delete(close_session))
            .route("/v1/sessions/{id}/infer", post(infer))
            .route("/v1/sessions/{id}/channel", post(served_mpc::user_channel))
            .route("/v1/hosts/{ticket}/channel", post(served_mpc::host_channel))
            .layer(DefaultBodyLimit::max(self.cfg.max_upload_bytes))
            .with_state(self.clone())
    }

    /// The model prepared for `he` queries (compiled, encoded, tried once
    /// with throwaway keys to measure its time), cached per version.
    fn prepare(&self, name: &str) -> Result<Arc<Prepared>, PlatformError> {
        let record = lock(&self.repo).get(name, None)?;
        let key = (record.name.clone(), record.version);
        if let Some(p) = lock(&self.prepared).get(&key) {
            return Ok(p.clone());
        }
        if !record.modes().contains(&"he") {
            return Err(PlatformError::Forbidden(format!(
                "{name}: its creator lets the platform hold {} of {} layers{}; encrypted \
                 queries of the whole model (he) need all of them",
                record.head_layers,
                record.layers,
                if record.input_bound.is_none() {
                    ", and no input bound is known (upload it with input_bound)"
                } else {
                    ""
                }
            )));
        }
        let file = lock(&self.repo).load(&record)?;
        let opts = match file
            .preprocessing
            .as_ref()
            .and_then(|p| p.calibration.as_ref())
        {
            Some(c) => approximate_with(&file.model, c, APPROXIMATION_DEGREE)?.0,
            None => CompileOptions::default(),
        };
        let plan = Plan::compile_with(&file.model, &opts)?;
        let bound = record.input_bound.unwrap_or(1.0);
        let server = EncryptedModel::new(&plan, Mode::Latency)?.with_input_bound(bound)?;
        let privacy = server.output_privacy(DEFAULT_RETURNED_OUTPUTS, OUTPUT_PRECISION_BITS)?;
        let spec = server.input_spec();
        // One run with the platform's own throwaway keys: the cost a
        // session is checked against.
        let (keys, x, mut rng) = trial_input(&server)?;
        let t = Instant::now();
        server.respond(&keys.rlk, &keys.gk, &keys.pk, &x, &privacy, &mut rng)?;
        let measured_ms = t.elapsed().as_secs_f64() * 1e3;
        let p = Arc::new(Prepared {
            record,
            server,
            spec,
            privacy,
            measured_ms,
        });
        lock(&self.prepared).insert(key, p.clone());
        Ok(p)
    }
}

#[derive(Deserialize)]
struct ListQuery {
    /// Words that must occur in the name, task, license, creator or
    /// domain (case-insensitive).
    q: Option<String>,
    /// A mode the model must be served in.
    mode: Option<String>,
}

async fn list(
    State(p): State<Shared>,
    Query(q): Query<ListQuery>,
) -> Result<Json<ModelList>, PlatformError> {
    let models = lock(&p.repo).list()?;
    let words: Vec<String> =
        q.q.as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_lowercase)
            .collect();
    let found: Vec<_> = models
        .iter()
        .filter(|m| words.iter().all(|w| m.info.matches(&m.name, w)))
        .filter(|m| {
            q.mode
                .as_deref()
                .is_none_or(|mode| m.modes().contains(&mode))
        })
        .map(card)
        .collect();
    Ok(Json(ModelList { models: found }))
}

#[derive(Deserialize)]
struct UploadQuery {
    name: String,
    head_layers: Option<usize>,
    layers: Option<usize>,
    outputs: Option<usize>,
    task: Option<String>,
    license: Option<String>,
    creator: Option<String>,
    accuracy: Option<f64>,
    domain: Option<String>,
    input_bound: Option<f64>,
}

async fn upload(
    State(p): State<Shared>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Uploaded>), PlatformError> {
    let meta = UploadMeta {
        head_layers: q.head_layers,
        layers: q.layers,
        outputs: q.outputs,
        input_bound: q.input_bound,
        creator_token: headers
            .get(CREATOR_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        info: ModelInfo {
            task: q.task,
            license: q.license,
            creator: q.creator,
            accuracy: q.accuracy,
            domain: q.domain,
        },
    };
    let q2 = p.clone();
    let (record, token) = blocking(move || lock(&q2.repo).add(&q.name, &body, &meta)).await?;
    crate::served_plain::start_leakage(&p, &record);
    served_mpc::prepare_all_heads(&p, &record);
    tracing::info!(
        "model {} v{} uploaded ({} bytes)",
        record.name,
        record.version,
        record.bytes
    );
    Ok((
        StatusCode::CREATED,
        Json(Uploaded {
            model: card(&record),
            creator_token: Some(token),
        }),
    ))
}

async fn model_card(
    State(p): State<Shared>,
    Path(name): Path<String>,
) -> Result<Json<ModelCard>, PlatformError> {
    let record = lock(&p.repo).get(&name, None)?;
    let mut c = card(&record);
    if record.modes().contains(&"mpc") {
        c.mpc = Some(p.mpc.card(&record));
        c.plain_tail = Some(crate::served_plain::card(&p, &record));
    }
    if record.modes().contains(&"he") {
        let prepared = blocking(move || p.pool.install(|| p.prepare(&name))).await?;
        c.he = Some(HeQuery {
            spec: serde_json::to_value(&prepared.spec)
                .map_err(|e| PlatformError::Storage(format!("the model's spec: {e}")))?,
            output_privacy: prepared.privacy.describe(),
            measured_ms: prepared.measured_ms,
            rotations: prepared.spec.rotations.len(),
        });
    }
    Ok(Json(c))
}

async fn federation(State(p): State<Shared>) -> Result<Json<FederationSummary>, PlatformError> {
    let Some(f) = p.cfg.federation.clone() else {
        return Err(PlatformError::NotFound(
            "no federation is shown here (cipherflow serve --federation-log LOG \
             --federation-key LOG.pub)"
                .into(),
        ));
    };
    let p2 = p.clone();
    Ok(Json(blocking(move || p2.federation.get(&f)).await?))
}

async fn delete_model(
    State(p): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, PlatformError> {
    let token = headers
        .get(CREATOR_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| PlatformError::Forbidden("deleting needs the creator's token".into()))?
        .to_string();
    lock(&p.repo).delete(&name, &token)?;
    lock(&p.prepared).retain(|k, _| k.0 != name);
    lock(&p.sessions).retain(|_, s| s.model.record.name != name);
    p.mpc.forget(&name);
    Ok(StatusCode::NO_CONTENT)
}

async fn usage(
    State(p): State<Shared>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, PlatformError> {
    lock(&p.repo).get(&name, None)?;
    Ok(Json(
        serde_json::json!({ "usage": lock(&p.repo).usage(&name)? }),
    ))
}

fn session_id() -> Result<String, PlatformError> {
    let mut b = [0u8; 16];
    rand_core::RngCore::fill_bytes(
        &mut cipherflow_ring::sampler::secure_rng()
            .map_err(|e| PlatformError::Storage(e.to_string()))?,
        &mut b,
    );
    Ok(hex::encode(b))
}

#[derive(Deserialize)]
struct SessionQuery {
    mode: Option<String>,
    split: Option<usize>,
    accept_leakage: Option<u8>,
}

async fn open_session(
    State(p): State<Shared>,
    Path(name): Path<String>,
    Query(q): Query<SessionQuery>,
    body: Bytes,
) -> Result<(StatusCode, Json<SessionOpened>), PlatformError> {
    match (q.mode.as_deref().unwrap_or("he"), q.split) {
        ("he", None) => {}
        ("he", Some(k)) => {
            return Err(PlatformError::BadRequest(format!(
                "split {k}: he mode runs the whole model (no split)"
            )))
        }
        ("mpc", Some(k)) => return served_mpc::open_session(p, name, k, body, false).await,
        ("plain-tail", Some(k)) if q.accept_leakage == Some(1) => {
            return served_mpc::open_session(p, name, k, body, true).await
        }
        ("plain-tail", Some(k)) => {
            return Err(PlatformError::Forbidden(format!(
                "plain-tail hands your activations at split {k} to the model's creator: read \
                 the leakage measured for it (GET /v1/models/{name}/splits/{k}) and accept it \
                 with accept_leakage=1"
            )))
        }
        ("mpc" | "plain-tail", None) => {
            return Err(PlatformError::BadRequest(
                "the split modes need a split (the card lists them)".into(),
            ))
        }
        (m, _) => {
            return Err(PlatformError::BadRequest(format!(
                "mode {m:?}: he, mpc or plain-tail"
            )))
        }
    }
    let budget = p.cfg.query_budget;
    let q = p.clone();
    let model = blocking(move || q.pool.install(|| q.prepare(&name))).await?;
    let budget_ms = budget.as_secs_f64() * 1e3;
    if model.measured_ms > budget_ms {
        return Err(PlatformError::OverBudget(format!(
            "a query of {} takes about {:.0} ms here, over the {budget_ms:.0} ms budget",
            model.record.name, model.measured_ms
        )));
    }
    let m = model.clone();
    let keys = blocking(move || {
        Ok(EvalKeys::from_bytes(
            m.server.plan().params(),
            &m.spec,
            &body,
        )?)
    })
    .await?;
    let id = session_id()?;
    {
        let mut s = lock(&p.sessions);
        while s.len() >= p.cfg.max_sessions {
            let Some(oldest) = s
                .iter()
                .min_by_key(|(_, v)| v.opened)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            s.remove(&oldest);
        }
        s.insert(
            id.clone(),
            Arc::new(Session {
                model: model.clone(),
                keys,
                opened: Instant::now(),
            }),
        );
    }
    Ok((
        StatusCode::CREATED,
        Json(SessionOpened {
            session: id,
            model: model.record.name.clone(),
            version: model.record.version,
            mode: None,
            split: None,
        }),
    ))
}

async fn close_session(
    State(p): State<Shared>,
    Path(id): Path<String>,
) -> Result<StatusCode, PlatformError> {
    let he = lock(&p.sessions).remove(&id).is_some();
    let mpc = lock(&p.mpc.sessions).remove(&id);
    if let Some(s) = &mpc {
        s.end("closed by the user");
    }
    if he || mpc.is_some() {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(PlatformError::NotFound(
            "session (expired or never opened)".into(),
        ))
    }
}

fn record_usage(p: &Shared, u: Usage) {
    // A synchronous SQLite write, after the answer leaves.
    let q = p.clone();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = lock(&q.repo).record_usage(&u) {
            tracing::error!("usage record lost: {e}");
        }
    });
}

fn octets(out: Vec<u8>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        out,
    )
        .into_response()
}

async fn infer(
    State(p): State<Shared>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, PlatformError> {
    let mpc = lock(&p.mpc.sessions).get(&id).cloned();
    if let Some(s) = mpc {
        // Its usage is recorded once the tail's computation has run.
        return Ok(octets(served_mpc::infer(p.clone(), s, body).await?));
    }
    let session = lock(&p.sessions)
        .get(&id)
        .cloned()
        .ok_or_else(|| PlatformError::NotFound("session (expired or never opened)".into()))?;
    let up = body.len();
    let t = Instant::now();
    let s = session.clone();
    let q = p.clone();
    let work = blocking(move || {
        q.pool.install(|| {
            let m = &s.model;
            let params = m.server.plan().params();
            let x = EncTensor::from_bytes(params, &body)?;
            let mut rng = cipherflow_ring::sampler::secure_rng()
                .map_err(|e| PlatformError::Storage(e.to_string()))?;
            let out = m.server.respond(
                &s.keys.rlk,
                &s.keys.gk,
                &s.keys.pk,
                &x,
                &m.privacy,
                &mut rng,
            )?;
            Ok(out.to_bytes(params)?)
        })
    });
    let out = tokio::time::timeout(p.cfg.query_budget, work)
        .await
        .map_err(|_| {
            PlatformError::OverBudget(format!(
                "the query ran past the {:.0} ms budget",
                p.cfg.query_budget.as_secs_f64() * 1e3
            ))
        })??;
    let u = Usage {
        model: session.model.record.name.clone(),
        version: session.model.record.version,
        mode: "he".into(),
        inputs: 1,
        upload_bytes: up as i64,
        download_bytes: out.len() as i64,
        ms: t.elapsed().as_secs_f64() * 1e3,
        platform_host_bytes: 0,
    };
    record_usage(&p, u);
    Ok(octets(out))
}

/// Serves `platform` over TLS on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: rustls::ServerConfig,
    platform: Arc<Platform>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), PlatformError> {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let app = platform.router();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => r?,
            () = &mut shutdown => return Ok(()),
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("{peer}: {e}");
        }
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::warn!("TLS handshake with {peer} refused: {e}");
                        return;
                    }
                    Err(_) => {
                        tracing::warn!("TLS handshake with {peer} timed out");
                        return;
                    }
                };
            let svc = hyper_util::service::TowerToHyperService::new(app);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                .with_upgrades()
                .await
            {
                tracing::debug!("connection from {peer}: {e}");
            }
        });
    }
}
