//! The platform's side of `mpc` mode across processes.
//!
//! * A model's creator runs a host (`cipherflow model-host`) that
//!   registers over a channel (`POST /v1/models/{name}/host`, the
//!   creator's token, its TLS CA in `x-host-ca`) and is told of each new
//!   session on it.
//! * A user opens a session at a split `k` with its evaluation keys; the
//!   platform compiles (once per version and split) the head — the layers
//!   `0..k` it holds — and tells the host (a ticket, the split, the guard
//!   bits). User and host each open two channels: one to the platform
//!   (party 2 of the computation, its end here) and one relayed to each
//!   other, inside which they run TLS the platform cannot read.
//! * Each query: the user's ciphertext → the head → the masked output to
//!   the user, the platform's shares to its party thread; then the three
//!   run the tail (`predict_from_handoff`), the class to the user only.
//!
//! A session ends when the user closes it (`DELETE`), when a party's
//! connection ends (the others hear it at once), or after
//! [`crate::Config::session_idle`] without a query.

use crate::channel::{read_message, write_message, BoxStream, StreamTransport, UPGRADE_PROTOCOL};
use crate::error::PlatformError;
use crate::repo::{ModelRecord, Usage};
use crate::service::{
    blocking, lock, Platform, Shared, CREATOR_TOKEN_HEADER, OUTPUT_PRECISION_BITS,
};
use crate::split::{compile_encrypted_head, SPLIT_FRAC_BITS, SPLIT_STAT_BITS};
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cipherflow_mpc::programs::handoff::{predict_from_handoff, ActivationShare, PLATFORM, USER};
use cipherflow_mpc::programs::predict::{share_model, MODEL_OWNER};
use cipherflow_mpc::{FixedPoint, Party};
use cipherflow_tensor::handoff::HandoffParams;
use cipherflow_tensor::privacy::DEFAULT_RETURNED_OUTPUTS;
use cipherflow_tensor::{
    ActivationDecoding, ActivationShares, EncTensor, EncryptedModel, EvalKeys, InputSpec,
    OutputPrivacy,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The header carrying a model host's CA certificate (DER, hex).
pub const HOST_CA_HEADER: &str = "x-host-ca";
/// Largest host CA certificate accepted (bytes).
const MAX_HOST_CA: usize = 8 << 10;

/// A split's public description: what a user needs to query it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SplitInfo {
    /// Layers `0..k` run encrypted on the platform.
    pub k: usize,
    /// The whole model's layers.
    pub layers: usize,
    /// The head's last layer.
    pub after: String,
    /// The head's input spec (parameters, rotations, input bound).
    pub spec: InputSpec,
    /// The hand-off's public figures.
    pub handoff: HandoffParams,
    /// Guard bits of the decoded shares.
    pub guard: u32,
    /// Milliseconds the head and mask took when the platform tried them.
    pub measured_ms: f64,
    /// The model host now online, if any.
    pub host: Option<HostInfo>,
    /// What `plain-tail` mode reveals at this split, if measured.
    pub leakage: Option<crate::repo_leakage::SplitLeakage>,
}

pub use cipherflow_api::HostInfo;

/// What the platform tells a host about a new session.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Notice {
    /// The host's ticket for this session (not the user's session id).
    pub ticket: String,
    /// The split.
    pub split: usize,
    /// The whole model's layers.
    pub layers: usize,
    /// Guard bits of the shares.
    pub guard: u32,
    /// The model's version.
    pub version: i64,
    /// `mpc`, or `plain-tail` (the user sends its activations; the host
    /// answers the tail's scores).
    #[serde(default = "mpc_mode")]
    pub mode: String,
}

fn mpc_mode() -> String {
    "mpc".into()
}

/// A head compiled for a split, tried once.
pub(crate) struct PreparedHead {
    pub(crate) record: ModelRecord,
    k: usize,
    after: String,
    server: EncryptedModel,
    spec: InputSpec,
    hp: HandoffParams,
    decoding: ActivationDecoding,
    privacy: OutputPrivacy,
    pub(crate) measured_ms: f64,
    /// The session's evaluation keys, the query's ciphertext up and the
    /// masked output down, as measured on the trial run (bytes).
    key_bytes: usize,
    upload_bytes: usize,
    download_bytes: usize,
}

struct Host {
    ca_der: Vec<u8>,
    notices: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    serial: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    PlatformUser,
    PlatformHost,
    RelayUser,
    RelayHost,
}

/// The four channels of a session: `None` free, `Some(None)` being
/// opened, `Some(Some(_))` open and waiting for its pair.
#[derive(Default)]
struct Slots([Option<Option<BoxStream>>; 4]);

/// A session in `mpc` or `plain-tail` mode.
pub(crate) struct MpcSession {
    /// `plain-tail`: no computation, the head's output goes back whole.
    plain: bool,
    pub(crate) head: Arc<PreparedHead>,
    keys: EvalKeys,
    pub(crate) opened: Instant,
    ticket: String,
    shares: Mutex<Option<mpsc::Sender<(ActivationShares, Usage)>>>,
    shares_rx: Mutex<Option<mpsc::Receiver<(ActivationShares, Usage)>>>,
    slots: Mutex<Slots>,
    ended: Arc<Mutex<Option<String>>>,
}

impl MpcSession {
    fn claim(&self, slot: Slot) -> Result<(), PlatformError> {
        let mut s = lock(&self.slots);
        let e =
            s.0.get_mut(slot as usize)
                .ok_or_else(|| PlatformError::BadRequest("no such channel".into()))?;
        if e.is_some() {
            return Err(PlatformError::BadRequest(format!(
                "the session's {slot:?} channel is already open"
            )));
        }
        *e = Some(None);
        Ok(())
    }

    /// Puts an open channel in its slot; returns the pair it completes.
    fn put(&self, slot: Slot, s: BoxStream) -> Option<(BoxStream, BoxStream)> {
        let mut g = lock(&self.slots);
        let (a, b) = match slot {
            Slot::PlatformUser | Slot::PlatformHost => (Slot::PlatformUser, Slot::PlatformHost),
            Slot::RelayUser | Slot::RelayHost => (Slot::RelayUser, Slot::RelayHost),
        };
        if let Some(e) = g.0.get_mut(slot as usize) {
            *e = Some(Some(s));
        }
        let ready = |g: &Slots, x: Slot| matches!(g.0.get(x as usize), Some(Some(Some(_))));
        if !(ready(&g, a) && ready(&g, b)) {
            return None;
        }
        let mut take = |x: Slot| {
            g.0.get_mut(x as usize)
                .and_then(|e| e.as_mut())
                .and_then(Option::take)
        };
        Some((take(a)?, take(b)?))
    }

    pub(crate) fn end(&self, why: &str) {
        lock(&self.shares).take();
        lock(&self.ended).get_or_insert_with(|| why.to_string());
    }
}

/// The `mpc` mode's state in the platform.
#[derive(Default)]
pub(crate) struct MpcState {
    heads: Mutex<HashMap<(String, i64, usize), Arc<PreparedHead>>>,
    hosts: Mutex<HashMap<String, Host>>,
    pub(crate) sessions: Mutex<HashMap<String, Arc<MpcSession>>>,
    serial: AtomicU64,
}

impl MpcState {
    /// Forgets everything of model `name` (deleted).
    pub(crate) fn forget(&self, name: &str) {
        lock(&self.heads).retain(|k, _| k.0 != name);
        lock(&self.hosts).remove(name);
        lock(&self.sessions).retain(|_, s| {
            let keep = s.head.record.name != name;
            if !keep {
                s.end("the model was deleted");
            }
            keep
        });
    }

    fn host_info(&self, name: &str) -> Option<HostInfo> {
        lock(&self.hosts).get(name).map(|h| HostInfo {
            ca: hex::encode(&h.ca_der),
            fingerprint: crate::tls::fingerprint(&h.ca_der),
        })
    }

    /// The card's `mpc` section of `r`: its splits, the recommended one,
    /// the host online, and the figures of every head prepared so far
    /// (the head's time here, its rotations).
    pub(crate) fn card(&self, r: &ModelRecord) -> cipherflow_api::MpcSplits {
        let splits = r.mpc_splits();
        let heads = lock(&self.heads);
        let measured = splits
            .iter()
            .filter_map(|&k| heads.get(&(r.name.clone(), r.version, k)))
            .map(|h| cipherflow_api::HeadFigures {
                k: h.k,
                after: h.after.clone(),
                head_ms: h.measured_ms,
                rotations: h.spec.rotations.len(),
                log_n: h.spec.params.log_n,
                key_bytes: h.key_bytes,
                upload_bytes: h.upload_bytes,
                download_bytes: h.download_bytes,
            })
            .collect();
        cipherflow_api::MpcSplits {
            // The cheapest split: the least under encryption.
            recommended: splits.first().copied(),
            splits,
            measured,
            host: self.host_info(&r.name),
        }
    }
}

fn random_id() -> Result<String, PlatformError> {
    let mut b = [0u8; 16];
    rand_core::RngCore::fill_bytes(
        &mut cipherflow_ring::sampler::secure_rng()
            .map_err(|e| PlatformError::Storage(e.to_string()))?,
        &mut b,
    );
    Ok(hex::encode(b))
}

impl Platform {
    /// The head of `name` for split `k`, compiled and tried once (cached
    /// per version and split).
    pub(crate) fn prepare_head(
        &self,
        name: &str,
        k: usize,
    ) -> Result<Arc<PreparedHead>, PlatformError> {
        let record = lock(&self.repo).get(name, None)?;
        let splits = record.mpc_splits();
        if !splits.contains(&k) {
            return Err(PlatformError::BadRequest(format!(
                "split {k}: {name} is served in mpc mode at splits {splits:?}"
            )));
        }
        let key = (record.name.clone(), record.version, k);
        if let Some(h) = lock(&self.mpc.heads).get(&key) {
            return Ok(h.clone());
        }
        let file = lock(&self.repo).load(&record)?;
        let head = if k == file.model.layers().len() {
            file.model.clone()
        } else {
            file.model.split_at(k)?.0
        };
        let after = head
            .layers()
            .last()
            .map(|l| l.describe())
            .unwrap_or_default();
        let bound = record.input_bound.unwrap_or(1.0);
        let server = compile_encrypted_head(&head, bound)?;
        let hp = server.handoff_params(SPLIT_FRAC_BITS, SPLIT_STAT_BITS)?;
        let spec = server.input_spec();
        // One run with throwaway keys: its time, and the decoding of the
        // masked output (public figures only).
        let (keys, x, mut rng) = crate::service::trial_input(&server)?;
        let t = Instant::now();
        let (masked, _) =
            server.respond_handoff(&keys.rlk, &keys.gk, &keys.pk, &x, &hp, &mut rng)?;
        let measured_ms = t.elapsed().as_secs_f64() * 1e3;
        let key_bytes = keys.eval_key_bytes()?.len();
        let upload_bytes = x.to_bytes(server.plan().params())?.len();
        let download_bytes = masked.to_bytes(server.plan().params())?.len();
        let decoding = ActivationDecoding::new(server.plan().params(), &masked, &hp)?;
        let privacy = server.output_privacy(DEFAULT_RETURNED_OUTPUTS, OUTPUT_PRECISION_BITS)?;
        let h = Arc::new(PreparedHead {
            record,
            k,
            after,
            server,
            spec,
            hp,
            decoding,
            privacy,
            measured_ms,
            key_bytes,
            upload_bytes,
            download_bytes,
        });
        lock(&self.mpc.heads).insert(key, h.clone());
        Ok(h)
    }

    fn split_info(&self, h: &PreparedHead) -> SplitInfo {
        SplitInfo {
            k: h.k,
            layers: h.record.layers,
            after: h.after.clone(),
            spec: h.spec.clone(),
            handoff: h.hp,
            guard: h.decoding.guard_bits(),
            measured_ms: h.measured_ms,
            host: self.mpc.host_info(&h.record.name),
            leakage: lock(&self.repo)
                .leakage(&h.record.name, h.record.version)
                .ok()
                .and_then(|v| v.into_iter().find(|l| l.k == h.k)),
        }
    }
}

/// Prepares every split's head of `r` in the background, so that the
/// card shows each split's cost (head time, key bytes, bytes per query)
/// before anyone asks for it.
pub(crate) fn prepare_all_heads(p: &Shared, r: &ModelRecord) {
    if r.mpc_splits().is_empty() {
        return;
    }
    let (p2, r2) = (p.clone(), r.clone());
    let spawned = std::thread::Builder::new()
        .name("prepare-heads".into())
        .spawn(move || {
            for k in r2.mpc_splits() {
                if let Err(e) = p2.pool.install(|| p2.prepare_head(&r2.name, k)) {
                    tracing::warn!("{} v{} split {k}: {e}", r2.name, r2.version);
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("no thread to prepare the heads of {}: {e}", r.name);
    }
}

fn creator_token(headers: &HeaderMap, what: &str) -> Result<String, PlatformError> {
    headers
        .get(CREATOR_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| PlatformError::Forbidden(format!("{what} needs the creator's token")))
}

/// `GET /v1/models/{name}/splits/{k}`.
pub(crate) async fn split_info(
    State(p): State<Shared>,
    Path((name, k)): Path<(String, usize)>,
) -> Result<Json<SplitInfo>, PlatformError> {
    let q = p.clone();
    let h = blocking(move || q.pool.install(|| q.prepare_head(&name, k))).await?;
    Ok(Json(p.split_info(&h)))
}

/// Checks an upgrade request and takes its connection.
fn take_upgrade(req: &mut Request) -> Result<hyper::upgrade::OnUpgrade, PlatformError> {
    let ok = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(UPGRADE_PROTOCOL));
    if !ok {
        return Err(PlatformError::BadRequest(format!(
            "a channel is a request upgraded to {UPGRADE_PROTOCOL}"
        )));
    }
    Ok(hyper::upgrade::on(req))
}

fn switching() -> Response {
    (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::CONNECTION, "upgrade"),
            (header::UPGRADE, UPGRADE_PROTOCOL),
        ],
    )
        .into_response()
}

async fn opened(on: hyper::upgrade::OnUpgrade) -> Option<BoxStream> {
    match on.await {
        Ok(u) => Some(Box::new(hyper_util::rt::TokioIo::new(u))),
        Err(e) => {
            tracing::warn!("a channel failed to open: {e}");
            None
        }
    }
}

/// `POST /v1/models/{name}/host`: a model host registers (upgraded).
pub(crate) async fn register_host(
    State(p): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    mut req: Request,
) -> Result<Response, PlatformError> {
    let token = creator_token(&headers, "hosting a model")?;
    lock(&p.repo).check_creator(&name, &token, "host it")?;
    let ca_der = headers
        .get(HOST_CA_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 2 * MAX_HOST_CA)
        .and_then(|v| hex::decode(v).ok())
        .ok_or_else(|| {
            PlatformError::BadRequest(format!(
                "a host gives its CA certificate in {HOST_CA_HEADER} (DER, hex, at most \
                 {MAX_HOST_CA} bytes)"
            ))
        })?;
    // Only a certificate users can verify against is published.
    crate::tls::host_client_config(&ca_der)
        .map_err(|e| PlatformError::BadRequest(e.to_string()))?;
    let on = take_upgrade(&mut req)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let serial = p.mpc.serial.fetch_add(1, Ordering::Relaxed);
    lock(&p.mpc.hosts).insert(
        name.clone(),
        Host {
            ca_der,
            notices: tx,
            serial,
        },
    );
    tracing::info!("a host of {name} registered");
    tokio::spawn(async move {
        if let Some(s) = opened(on).await {
            let (mut r, mut w) = tokio::io::split(s);
            loop {
                tokio::select! {
                    n = rx.recv() => match n {
                        Some(m) if write_message(&mut w, &m).await.is_ok() => {}
                        _ => break,
                    },
                    m = read_message(&mut r) => if !matches!(m, Ok(Some(_))) { break },
                }
            }
        }
        let mut hosts = lock(&p.mpc.hosts);
        if hosts.get(&name).is_some_and(|h| h.serial == serial) {
            hosts.remove(&name);
            tracing::info!("the host of {name} left");
        }
    });
    Ok(switching())
}

/// Opens a session in `mpc` mode (`plain`: `plain-tail`, the user having
/// accepted its measured leakage) at split `k` (from `open_session`).
pub(crate) async fn open_session(
    p: Shared,
    name: String,
    k: usize,
    body: Bytes,
    plain: bool,
) -> Result<(StatusCode, Json<cipherflow_api::SessionOpened>), PlatformError> {
    let q = p.clone();
    let n = name.clone();
    let head = blocking(move || q.pool.install(|| q.prepare_head(&n, k))).await?;
    let budget_ms = p.cfg.query_budget.as_secs_f64() * 1e3;
    if head.measured_ms > budget_ms {
        return Err(PlatformError::OverBudget(format!(
            "the head of {name} at split {k} takes about {:.0} ms here, over the \
             {budget_ms:.0} ms budget",
            head.measured_ms
        )));
    }
    let notices = lock(&p.mpc.hosts)
        .get(&name)
        .map(|h| h.notices.clone())
        .ok_or_else(|| {
            PlatformError::Unavailable(format!(
                "no host of {name} is online: its creator runs `cipherflow model-host`"
            ))
        })?;
    if plain {
        let measured = lock(&p.repo)
            .leakage(&name, head.record.version)?
            .into_iter()
            .any(|l| l.k == k);
        if !measured {
            return Err(PlatformError::Forbidden(format!(
                "plain-tail at split {k} of {name}: its leakage has not been measured, so it \
                 is not served (mpc mode reveals no activation)"
            )));
        }
    }
    let h = head.clone();
    let keys = blocking(move || {
        Ok(EvalKeys::from_bytes(
            h.server.plan().params(),
            &h.spec,
            &body,
        )?)
    })
    .await?;
    let (id, ticket) = (random_id()?, random_id()?);
    let (tx, rx) = mpsc::channel();
    let session = Arc::new(MpcSession {
        plain,
        head: head.clone(),
        keys,
        opened: Instant::now(),
        ticket: ticket.clone(),
        shares: Mutex::new(Some(tx)),
        shares_rx: Mutex::new(Some(rx)),
        slots: Mutex::new(Slots::default()),
        ended: Arc::new(Mutex::new(None)),
    });
    {
        let mut all = lock(&p.mpc.sessions);
        while all.len() >= p.cfg.max_sessions {
            let Some(oldest) = all
                .iter()
                .min_by_key(|(_, v)| v.opened)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(o) = all.remove(&oldest) {
                o.end("closed to make room for newer sessions");
            }
        }
        all.insert(id.clone(), session);
    }
    let notice = Notice {
        ticket,
        split: k,
        layers: head.record.layers,
        guard: head.decoding.guard_bits(),
        version: head.record.version,
        mode: if plain { "plain-tail" } else { "mpc" }.into(),
    };
    let msg = serde_json::to_vec(&notice).map_err(|e| PlatformError::Storage(e.to_string()))?;
    if notices.send(msg).is_err() {
        lock(&p.mpc.sessions).remove(&id);
        return Err(PlatformError::Unavailable(format!(
            "the host of {name} just left"
        )));
    }
    Ok((
        StatusCode::CREATED,
        Json(cipherflow_api::SessionOpened {
            session: id,
            model: head.record.name.clone(),
            version: head.record.version,
            mode: Some(if plain { "plain-tail" } else { "mpc" }.into()),
            split: Some(k),
        }),
    ))
}

#[derive(Deserialize)]
pub(crate) struct ChannelQuery {
    peer: String,
}

/// `POST /v1/sessions/{id}/channel?peer=platform|host`: a user's channel.
pub(crate) async fn user_channel(
    State(p): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<ChannelQuery>,
    mut req: Request,
) -> Result<Response, PlatformError> {
    let s = lock(&p.mpc.sessions)
        .get(&id)
        .cloned()
        .ok_or_else(|| PlatformError::NotFound("mpc session (expired or never opened)".into()))?;
    let slot = match q.peer.as_str() {
        "platform" => Slot::PlatformUser,
        "host" => Slot::RelayUser,
        other => {
            return Err(PlatformError::BadRequest(format!(
                "peer {other:?}: platform or host"
            )))
        }
    };
    channel(p, s, slot, &mut req)
}

/// `POST /v1/hosts/{ticket}/channel?peer=platform|user`: a host's channel.
pub(crate) async fn host_channel(
    State(p): State<Shared>,
    Path(ticket): Path<String>,
    Query(q): Query<ChannelQuery>,
    headers: HeaderMap,
    mut req: Request,
) -> Result<Response, PlatformError> {
    let token = creator_token(&headers, "a host's channel")?;
    let s = lock(&p.mpc.sessions)
        .values()
        .find(|s| s.ticket == ticket)
        .cloned()
        .ok_or_else(|| PlatformError::NotFound("host ticket (expired or never issued)".into()))?;
    lock(&p.repo).check_creator(&s.head.record.name, &token, "serve its queries")?;
    let slot = match q.peer.as_str() {
        "platform" => Slot::PlatformHost,
        "user" => Slot::RelayHost,
        other => {
            return Err(PlatformError::BadRequest(format!(
                "peer {other:?}: platform or user"
            )))
        }
    };
    channel(p, s, slot, &mut req)
}

fn channel(
    p: Shared,
    s: Arc<MpcSession>,
    slot: Slot,
    req: &mut Request,
) -> Result<Response, PlatformError> {
    if s.plain && matches!(slot, Slot::PlatformUser | Slot::PlatformHost) {
        return Err(PlatformError::BadRequest(
            "a plain-tail session has no computation: only the user-host channel".into(),
        ));
    }
    let on = take_upgrade(req)?;
    s.claim(slot)?;
    tokio::spawn(async move {
        let Some(stream) = opened(on).await else {
            s.end("a channel failed to open");
            return;
        };
        match (slot, s.put(slot, stream)) {
            (_, None) => {}
            (Slot::RelayUser | Slot::RelayHost, Some((mut a, mut b))) => {
                // Bytes the platform cannot read (TLS between the two).
                let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
            }
            (_, Some((user, host))) => start_party(&p, &s, user, host),
        }
    });
    Ok(switching())
}

/// The platform's party (2) of a session, on its own thread.
fn start_party(p: &Shared, s: &Arc<MpcSession>, user: BoxStream, host: BoxStream) {
    let handle = tokio::runtime::Handle::current();
    let rx = lock(&s.shares_rx).take();
    let ended = s.ended.clone();
    let guard = s.head.decoding.guard_bits();
    let idle = p.cfg.session_idle;
    let platform = p.clone();
    let run = move || -> Result<usize, PlatformError> {
        let rx = rx.ok_or_else(|| PlatformError::Storage("the session already ran".into()))?;
        let t = StreamTransport::new(
            PLATFORM,
            vec![(USER, user), (MODEL_OWNER, host)],
            handle,
            idle,
        )?;
        let traffic = t.traffic();
        let mut party =
            Party::<u128>::setup(Box::new(t), FixedPoint::new::<u128>(SPLIT_FRAC_BITS)?)?;
        let model = match share_model(&mut party, None) {
            Ok(m) => m,
            Err(e) => {
                party.abort(&e);
                return Err(e.into());
            }
        };
        let mut served = 0;
        while let Ok((a, mut usage)) = rx.recv_timeout(idle) {
            let before = traffic.with(MODEL_OWNER);
            let share = ActivationShare {
                rows: a.rows,
                cols: a.cols,
                values: &a.values,
            };
            if let Err(e) = predict_from_handoff(&mut party, &model, Some(share), guard) {
                party.abort(&e);
                return Err(e.into());
            }
            served += 1;
            usage.platform_host_bytes =
                i64::try_from(traffic.with(MODEL_OWNER).saturating_sub(before)).unwrap_or(i64::MAX);
            // On this thread (no runtime here): a synchronous write.
            if let Err(e) = lock(&platform.repo).record_usage(&usage) {
                tracing::error!("usage record lost: {e}");
            }
        }
        Ok(served)
    };
    let spawned = std::thread::Builder::new()
        .name("mpc-party".into())
        .spawn(move || {
            let why = match run() {
                Ok(n) => format!("the session ended after {n} queries"),
                Err(e) => {
                    tracing::warn!("an mpc session failed: {e}");
                    e.to_string()
                }
            };
            lock(&ended).get_or_insert(why);
        });
    if let Err(e) = spawned {
        s.end(&format!("no thread for the computation: {e}"));
    }
}

/// One query of an `mpc` session: the head, the masked output back, the
/// platform's shares to its party.
pub(crate) async fn infer(
    p: Shared,
    s: Arc<MpcSession>,
    body: Bytes,
) -> Result<Vec<u8>, PlatformError> {
    if let Some(why) = lock(&s.ended).clone() {
        return Err(PlatformError::Unavailable(format!(
            "the session's computation ended: {why}"
        )));
    }
    let up = body.len();
    let t = Instant::now();
    let s2 = s.clone();
    let q = p.clone();
    let work = blocking(move || {
        q.pool.install(|| {
            let h = &s2.head;
            let params = h.server.plan().params();
            let x = EncTensor::from_bytes(params, &body)?;
            let mut rng = cipherflow_ring::sampler::secure_rng()
                .map_err(|e| PlatformError::Storage(e.to_string()))?;
            let k = &s2.keys;
            if s2.plain {
                let out = h
                    .server
                    .respond(&k.rlk, &k.gk, &k.pk, &x, &h.privacy, &mut rng)?;
                return Ok((out.to_bytes(params)?, None));
            }
            let (masked, shares) = h
                .server
                .respond_handoff(&k.rlk, &k.gk, &k.pk, &x, &h.hp, &mut rng)?;
            if !h.decoding.fits(&masked) {
                return Err(PlatformError::Storage(
                    "the head's output changed shape since it was prepared".into(),
                ));
            }
            let mine = h.decoding.apply(&shares)?;
            Ok((masked.to_bytes(params)?, Some(mine)))
        })
    });
    let (out, mine) = tokio::time::timeout(p.cfg.query_budget, work)
        .await
        .map_err(|_| {
            PlatformError::OverBudget(format!(
                "the head ran past the {:.0} ms budget",
                p.cfg.query_budget.as_secs_f64() * 1e3
            ))
        })??;
    let usage = Usage {
        model: s.head.record.name.clone(),
        version: s.head.record.version,
        mode: if s.plain { "plain-tail" } else { "mpc" }.into(),
        inputs: 1,
        upload_bytes: up as i64,
        download_bytes: out.len() as i64,
        ms: t.elapsed().as_secs_f64() * 1e3,
        platform_host_bytes: 0,
    };
    let Some(mine) = mine else {
        // plain-tail: the answer is the whole of it.
        if let Err(e) = lock(&p.repo).record_usage(&usage) {
            tracing::error!("usage record lost: {e}");
        }
        return Ok(out);
    };
    let sent = lock(&s.shares)
        .as_ref()
        .map(|tx| tx.send((mine, usage)).is_ok());
    if sent != Some(true) {
        let why = lock(&s.ended).clone().unwrap_or_else(|| "closed".into());
        return Err(PlatformError::Unavailable(format!(
            "the session's computation ended: {why}"
        )));
    }
    Ok(out)
}
