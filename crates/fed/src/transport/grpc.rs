//! gRPC over mutual TLS (tonic + rustls with the ring provider): the
//! coordinator's (and a region's) and the key service's servers; the
//! clients, in `remote`, are re-exported here.
//!
//! TLS is set up by [`super::tls`]: clients dial each role by its name
//! from the roster and pin its certificate; servers log and count every
//! refused handshake. A peer's identity is the SHA-256 of the certificate
//! it presented in the TLS handshake, looked up in the roster: an unknown
//! certificate is refused as unenrolled, a revoked client as revoked, both
//! logged at `warn` and counted in the metrics. Messages are capped at
//! [`MAX_MESSAGE_BYTES`]; an upload stream at the model's chunk count.

use super::convert::{all_in, all_out, OnWire};
use crate::coordinator::Coordinator;
use crate::error::{FedError, Result};
use crate::keyservice::KeyService;
use crate::messages as m;
use crate::metrics::TransportRefusals;
use crate::proto::{self, coordinator_server, key_service_server};
use crate::roster::{Role, Roster, ServerPin};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tonic::{Request, Response, Status, Streaming};

pub(crate) use super::remote::channel;
pub use super::remote::{CoordinatorRemote, KeyServiceRemote};

/// Largest gRPC message (one ciphertext chunk or share part is far below).
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// PEM files of one party.
pub struct TlsFiles<'a> {
    /// CA certificate.
    pub ca: &'a Path,
    /// Own certificate.
    pub cert: &'a Path,
    /// Own private key.
    pub key: &'a Path,
}

fn server_config(f: &TlsFiles<'_>) -> Result<rustls::ServerConfig> {
    super::tls::server_config(f.ca, f.cert, f.key)
}

/// Maps a protocol error to a gRPC status (messages carry no secrets).
pub fn status(e: FedError) -> Status {
    let m = e.to_string();
    match e {
        FedError::Unenrolled(_) => Status::unauthenticated(m),
        FedError::Revoked(_) => Status::permission_denied(m),
        FedError::Replay(_) => Status::already_exists(m),
        FedError::Refused(_) | FedError::Budget(_) => Status::failed_precondition(m),
        FedError::NotReady(_) => Status::unavailable(m),
        e if is_storage_failure(&e) => {
            Status::unavailable(format!("coordinator storage failure, retry later: {m}"))
        }
        FedError::Protocol(_)
        | FedError::Malformed(_)
        | FedError::Encoding(_)
        | FedError::Ckks(_) => Status::invalid_argument(m),
        _ => Status::internal(m),
    }
}

/// Maps a failed call to `pin`'s role back: a refused TLS handshake (found
/// in the status's sources) is [`FedError::Refused`] with its reason, not
/// retried; otherwise as [`from_status`].
pub fn from_call(pin: &ServerPin, s: Status) -> FedError {
    match super::tls::refusal_in(&s, pin.role, &pin.name) {
        Some(why) => FedError::Refused(why),
        None => from_status(s),
    }
}

/// Maps a gRPC status back (unavailable / transport problems are transient).
pub fn from_status(s: Status) -> FedError {
    use tonic::Code;
    let m = s.message().to_string();
    match s.code() {
        Code::Unauthenticated => FedError::Unenrolled(m),
        Code::PermissionDenied => FedError::Revoked(m),
        Code::AlreadyExists => FedError::Replay(m),
        Code::FailedPrecondition => FedError::Refused(m),
        Code::InvalidArgument => FedError::Protocol(m),
        Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled => {
            FedError::Transport(format!("{:?}: {m}", s.code()))
        }
        _ => FedError::Transport(format!("{:?}: {m}", s.code())),
    }
}

fn peer_fingerprint<T>(req: &Request<T>) -> std::result::Result<String, Status> {
    let certs = req
        .peer_certs()
        .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
    let leaf = certs
        .first()
        .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
    Ok(hex::encode(Sha256::digest(leaf.as_ref())))
}

pub use crate::coordinator::Reopen;
use crate::coordinator::{is_storage_failure, Recovering};

struct Shared {
    coord: Mutex<Recovering>,
    /// `Some(id)` when this server is regional aggregator `id`: it takes
    /// its clients' uploads only.
    region: Option<String>,
    roster: Mutex<Roster>,
    notify: Notify,
    max_chunks: usize,
    refusals: Arc<TransportRefusals>,
    uploads: Mutex<UploadQueue>,
}

/// Uploads waiting for the next group commit. The first upload to arrive
/// while no commit runs starts one; it commits everything queued, and then
/// what queued meanwhile, until the queue is empty — so uploads that arrive
/// together share one fsync, and a lone upload waits for nobody.
#[derive(Default)]
struct UploadQueue {
    pending: Vec<QueuedUpload>,
    committing: bool,
}

struct QueuedUpload {
    client: String,
    chunks: Vec<m::UploadChunk>,
    reply: tokio::sync::oneshot::Sender<std::result::Result<m::UploadReceipt, Status>>,
}

/// Uploads per group commit at most (each already in memory: the bound
/// keeps one commit's latency and its segment file in check).
const MAX_UPLOAD_BATCH: usize = 128;

/// Runs `f`, which may block on the coordinator's state, from any thread.
/// On a multi-threaded runtime's worker it goes through `block_in_place`:
/// besides not stalling the worker, the synchronous Postgres client runs
/// its own small runtime, which may not start inside another's. (Most
/// calls already come from `spawn_blocking`; the server's own monitoring
/// loop and [`CoordinatorServer::with`] do not.)
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// The coordinator's gRPC service.
#[derive(Clone)]
pub struct CoordinatorService {
    inner: Arc<Shared>,
}

impl CoordinatorService {
    fn identity<T>(&self, req: &Request<T>) -> std::result::Result<String, Status> {
        let fp = peer_fingerprint(req)?;
        let roster = self
            .inner
            .roster
            .lock()
            .map_err(|_| Status::internal("lock"))?;
        match roster.by_cert(&fp) {
            Some(e) if roster.is_revoked(&e.client_id) => {
                self.inner.refusals.count_revoked(&e.client_id);
                tracing::warn!(client = %e.client_id, "revoked client refused");
                Err(Status::permission_denied(format!(
                    "{} is revoked",
                    e.client_id
                )))
            }
            Some(e) => Ok(e.client_id.clone()),
            None => {
                self.inner.refusals.count_unenrolled();
                tracing::warn!(fingerprint = %fp, "unenrolled certificate refused");
                Err(Status::unauthenticated(format!(
                    "certificate SHA-256 {fp} is not in the roster"
                )))
            }
        }
    }

    /// Refuses a call a regional aggregator does not serve (everything
    /// but uploads: clients join, deal, poll and send shares to the
    /// coordinator).
    fn coordinator_only(&self, what: &str) -> std::result::Result<(), Status> {
        match &self.inner.region {
            Some(id) => Err(Status::failed_precondition(format!(
                "this is regional aggregator {id}, which takes uploads only: {what} goes to the \
                 coordinator"
            ))),
            None => Ok(()),
        }
    }

    /// The region calling (by its client certificate), on the coordinator.
    fn region_identity<T>(&self, req: &Request<T>) -> std::result::Result<String, Status> {
        self.coordinator_only("a region's call")?;
        let fp = peer_fingerprint(req)?;
        let roster = self
            .inner
            .roster
            .lock()
            .map_err(|_| Status::internal("lock"))?;
        match roster.region_by_cert(&fp) {
            Some(r) => Ok(r.region_id.clone()),
            None => {
                self.inner.refusals.count_unenrolled();
                tracing::warn!(fingerprint = %fp, "a region's call from a certificate of no region refused");
                Err(Status::permission_denied(format!(
                    "certificate SHA-256 {fp} is no region's client certificate"
                )))
            }
        }
    }

    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Coordinator) -> Result<T> + Send + 'static,
    ) -> std::result::Result<T, Status> {
        let inner = self.inner.clone();
        let out = tokio::task::spawn_blocking(move || inner.run(f))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(status);
        self.inner.notify.notify_waiters();
        out
    }
}

impl Shared {
    /// Runs `f` on the coordinator; a storage failure reopens it from disk
    /// ([`Recovering`]).
    fn run<T>(&self, f: impl FnOnce(&mut Coordinator) -> Result<T>) -> Result<T> {
        blocking(|| {
            self.coord
                .lock()
                .map_err(|_| FedError::Transport("lock".into()))?
                .run(f)
        })
    }

    /// Commits queued uploads in groups until none is left (see
    /// [`UploadQueue`]); answers every upload it takes.
    fn commit_uploads(&self) {
        // Should a commit panic, the next upload must still start one.
        struct Reset<'a>(&'a Mutex<UploadQueue>);
        impl Drop for Reset<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    if let Ok(mut q) = self.0.lock() {
                        q.committing = false;
                    }
                }
            }
        }
        let _reset = Reset(&self.uploads);
        loop {
            let batch: Vec<QueuedUpload> = {
                let Ok(mut q) = self.uploads.lock() else {
                    return;
                };
                if q.pending.is_empty() {
                    q.committing = false;
                    return;
                }
                let n = q.pending.len().min(MAX_UPLOAD_BATCH);
                q.pending.drain(..n).collect()
            };
            let items: Vec<crate::coordinator::UploadItem<'_>> = batch
                .iter()
                .map(|u| (u.client.as_str(), u.chunks.as_slice()))
                .collect();
            let out = self.run(|c| c.upload_batch(&items));
            drop(items);
            match out {
                Ok(results) => {
                    for (u, r) in batch.into_iter().zip(results) {
                        let _ = u.reply.send(r.map_err(status));
                    }
                }
                Err(e) => {
                    let st = status(e);
                    for u in batch {
                        let _ = u.reply.send(Err(st.clone()));
                    }
                }
            }
            self.notify.notify_waiters();
        }
    }
}

/// A request as the server receives it: converted to its domain type, or
/// refused as `invalid_argument`.
fn incoming<D: OnWire>(p: D::Proto) -> std::result::Result<D, Status> {
    D::try_from(p).map_err(status)
}

/// A reply, in its protobuf form.
fn outgoing<D: OnWire>(d: D) -> Response<D::Proto> {
    Response::new(d.into())
}

/// A reply as the calling client receives it: one that does not convert
/// is [`FedError::Malformed`].
pub(crate) fn received<D: OnWire>(r: Response<D::Proto>) -> Result<D> {
    D::try_from(r.into_inner()).map_err(|e| FedError::Malformed(e.to_string()))
}

#[tonic::async_trait]
impl coordinator_server::Coordinator for CoordinatorService {
    async fn join(
        &self,
        req: Request<proto::JoinRequest>,
    ) -> std::result::Result<Response<proto::JoinReply>, Status> {
        self.coordinator_only("joining")?;
        let id = self.identity(&req)?;
        let r = incoming(req.into_inner())?;
        self.call(move |c| c.join(&id, &r)).await.map(outgoing)
    }

    async fn post_key_setup(
        &self,
        req: Request<proto::KeySetupPost>,
    ) -> std::result::Result<Response<proto::KeySetupBundle>, Status> {
        self.coordinator_only("the key setup")?;
        let id = self.identity(&req)?;
        let r = incoming(req.into_inner())?;
        self.call(move |c| c.post_key_setup(&id, &r))
            .await
            .map(outgoing)
    }

    async fn get_key_setup(
        &self,
        req: Request<proto::KeySetupQuery>,
    ) -> std::result::Result<Response<proto::KeySetupBundle>, Status> {
        self.coordinator_only("the key setup")?;
        let id = self.identity(&req)?;
        let r = incoming(req.into_inner())?;
        self.call(move |c| c.get_key_setup(&id, &r))
            .await
            .map(outgoing)
    }

    async fn next_task(
        &self,
        req: Request<proto::TaskRequest>,
    ) -> std::result::Result<Response<proto::Task>, Status> {
        self.coordinator_only("asking for tasks")?;
        let id = self.identity(&req)?;
        let r: m::TaskRequest = incoming(req.into_inner())?;
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(u64::from(r.wait_ms.min(30_000)));
        loop {
            let notified = self.inner.notify.notified();
            let (id2, r2) = (id.clone(), r.clone());
            let task = self.call(move |c| c.next_task(&id2, &r2)).await?;
            let waiting = matches!(task, m::Task::Wait { .. });
            if !waiting || tokio::time::Instant::now() >= deadline {
                return Ok(outgoing(task));
            }
            let _ = tokio::time::timeout_at(
                deadline.min(tokio::time::Instant::now() + Duration::from_millis(250)),
                notified,
            )
            .await;
        }
    }

    async fn upload(
        &self,
        req: Request<Streaming<proto::UploadChunk>>,
    ) -> std::result::Result<Response<proto::UploadReceipt>, Status> {
        let id = self.identity(&req)?;
        let mut stream = req.into_inner();
        let mut chunks = Vec::new();
        while let Some(c) = stream.message().await? {
            if chunks.len() >= self.inner.max_chunks {
                return Err(Status::invalid_argument("too many chunks"));
            }
            chunks.push(c);
        }
        let chunks: Vec<m::UploadChunk> = all_in(chunks).map_err(status)?;
        // Group commit: queue the upload; start a commit if none runs.
        let (reply, answer) = tokio::sync::oneshot::channel();
        let lead = {
            let mut q = self
                .inner
                .uploads
                .lock()
                .map_err(|_| Status::internal("lock"))?;
            q.pending.push(QueuedUpload {
                client: id,
                chunks,
                reply,
            });
            !std::mem::replace(&mut q.committing, true)
        };
        if lead {
            let inner = self.inner.clone();
            tokio::task::spawn_blocking(move || inner.commit_uploads());
        }
        answer
            .await
            .map_err(|_| Status::internal("the upload's commit was abandoned"))?
            .map(outgoing)
    }

    async fn send_share(
        &self,
        req: Request<Streaming<proto::ShareChunk>>,
    ) -> std::result::Result<Response<proto::ShareReceipt>, Status> {
        self.coordinator_only("a decryption share")?;
        let id = self.identity(&req)?;
        let mut stream = req.into_inner();
        let mut parts = Vec::new();
        while let Some(p) = stream.message().await? {
            if parts.len() >= self.inner.max_chunks {
                return Err(Status::invalid_argument("too many share parts"));
            }
            parts.push(p);
        }
        let parts: Vec<m::ShareChunk> = all_in(parts).map_err(status)?;
        self.call(move |c| c.send_share(&id, &parts))
            .await
            .map(outgoing)
    }

    async fn counted_proof(
        &self,
        req: Request<proto::ProofRequest>,
    ) -> std::result::Result<Response<proto::ProofReply>, Status> {
        self.coordinator_only("asking for a counted proof")?;
        let id = self.identity(&req)?;
        let r = incoming(req.into_inner())?;
        self.call(move |c| c.counted_proof(&id, &r))
            .await
            .map(outgoing)
    }

    async fn region_poll(
        &self,
        req: Request<proto::RegionPoll>,
    ) -> std::result::Result<Response<proto::RegionStatus>, Status> {
        let id = self.region_identity(&req)?;
        let r = incoming(req.into_inner())?;
        self.call(move |c| c.region_status(&id, &r))
            .await
            .map(outgoing)
    }

    async fn submit_regional_sum(
        &self,
        req: Request<proto::RegionalSum>,
    ) -> std::result::Result<Response<proto::RegionalSumReceipt>, Status> {
        let id = self.region_identity(&req)?;
        let sum: m::RegionalSum = incoming(req.into_inner())?;
        if sum.chunks.len() > self.inner.max_chunks {
            return Err(Status::invalid_argument("too many chunks"));
        }
        self.call(move |c| c.regional_sum(&id, &sum))
            .await
            .map(|entry_proof| outgoing(m::RegionalSumReceipt { entry_proof }))
    }
}

/// A running coordinator server.
pub struct CoordinatorServer {
    service: CoordinatorService,
    /// The bound address.
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<std::result::Result<(), tonic::transport::Error>>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl CoordinatorServer {
    /// Serves `coord` on `addr` (port 0: any) with mutual TLS on the
    /// coordinator's server certificate `tls`; a ticker drives timeouts
    /// every 100 ms, forwards key-service requests to `key_service` (if
    /// any: its URL and the coordinator's *client* credentials; the key
    /// service is dialled by its roster name and pinned) and re-reads
    /// `roster_file` revocations.
    pub async fn start(
        coord: Coordinator,
        roster: Roster,
        addr: SocketAddr,
        tls: &TlsFiles<'_>,
        key_service: Option<(String, TlsFiles<'_>)>,
        roster_file: Option<std::path::PathBuf>,
    ) -> Result<Self> {
        let max_chunks = coord.packing().chunks.max(1) + 1;
        let ks_pin = match &key_service {
            Some(_) => Some(roster.server_pin(Role::KeyService)?),
            None => None,
        };
        let refusals = Arc::new(TransportRefusals::default());
        let region = coord.region_id().map(str::to_string);
        let inner = Arc::new(Shared {
            coord: Mutex::new(Recovering::new(coord)),
            region,
            roster: Mutex::new(roster),
            notify: Notify::new(),
            max_chunks,
            refusals: refusals.clone(),
            uploads: Mutex::new(UploadQueue::default()),
        });
        let service = CoordinatorService { inner };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| FedError::Transport(format!("bind {addr}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| FedError::Transport(e.to_string()))?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let svc = coordinator_server::CoordinatorServer::new(service.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let router = tonic::transport::Server::builder().add_service(svc);
        let (incoming, acceptor) =
            super::tls::accept_tls(listener, server_config(tls)?, "coordinator", refusals);
        let handle = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
            let _ = rx.await;
        }));
        let ks = match (key_service, ks_pin) {
            (Some((url, f)), Some(pin)) => {
                Some(KeyServiceRemote::connect_async(&url, &f, &pin).await?)
            }
            _ => None,
        };
        let ticker = service.clone();
        tokio::spawn(async move { ticker.tick_loop(ks, roster_file).await });
        Ok(Self {
            service,
            addr,
            shutdown: Some(tx),
            handle,
            acceptor,
        })
    }

    /// Runs `f` on the coordinator (status, tests).
    pub fn with<T>(&self, f: impl FnOnce(&mut Coordinator) -> T) -> Result<T> {
        self.service.inner.run(|c| Ok(f(c)))
    }

    /// How to reopen the coordinator after a storage failure (see
    /// `Shared::run`); without it, a failed write is only reported.
    pub fn recover_with(&self, reopen: Reopen) {
        if let Ok(mut c) = self.service.inner.coord.lock() {
            c.set_reopen(reopen);
        }
    }

    /// A handle for the metrics endpoint.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle(self.service.inner.clone())
    }

    /// Stops serving.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.acceptor.abort();
        self.handle
            .await
            .map_err(|e| FedError::Transport(e.to_string()))?
            .map_err(|e| FedError::Transport(e.to_string()))
    }
}

/// A cloneable view of a running coordinator.
#[derive(Clone)]
pub struct ServerHandle(Arc<Shared>);

impl ServerHandle {
    /// The Prometheus text of the coordinator's counters.
    /// Whether the coordinator is ready to serve: its state loaded, not
    /// recovering from a storage failure.
    pub fn readiness(&self) -> std::result::Result<(), String> {
        match self.0.coord.lock() {
            Ok(g) => match g.get() {
                Some(_) => Ok(()),
                None => Err("recovering from a storage failure".into()),
            },
            Err(_) => Err("coordinator lock poisoned".into()),
        }
    }

    /// The Prometheus text of the coordinator's counters.
    pub fn metrics_text(&self) -> String {
        match self.0.coord.lock() {
            Ok(g) => {
                let Some(c) = g.get() else {
                    return String::new();
                };
                let mut m = c.metrics().clone();
                m.transport = self.0.refusals.snapshot();
                self.0.refusals.add_per_client(&mut m.clients);
                m.render(
                    c.current_round().unwrap_or(0),
                    matches!(c.phase(), crate::coordinator::Phase::Finished(_)),
                )
            }
            Err(_) => String::new(),
        }
    }
}

impl CoordinatorService {
    async fn tick_loop(
        self,
        mut ks: Option<KeyServiceRemote>,
        roster_file: Option<std::path::PathBuf>,
    ) {
        let mut last_mtime = None;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Some(p) = &roster_file {
                let m = std::fs::metadata(p).and_then(|m| m.modified()).ok();
                if m != last_mtime {
                    last_mtime = m;
                    if let Ok(r) = Roster::load(p) {
                        let revoked = r.revoked.clone();
                        let _ = self.inner.run(move |c| {
                            for id in &revoked {
                                c.revoke(id);
                            }
                            Ok(())
                        });
                        if let Ok(mut mine) = self.inner.roster.lock() {
                            *mine = r;
                        }
                    }
                }
            }
            let req = match self.call(|c| c.tick()).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "tick failed");
                    continue;
                }
            };
            if let (Some(req), Some(k)) = (req, ks.as_mut()) {
                match k.decrypt_async(req).await {
                    Ok(parts) => {
                        if let Err(e) = self.call(move |c| c.key_service_share(&parts)).await {
                            tracing::error!(error = %e, "key-service share refused");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "key service unavailable"),
                }
            }
        }
    }
}

/// The key service's gRPC service.
#[derive(Clone)]
pub struct KeyServiceService {
    ks: Arc<Mutex<KeyService>>,
    roster: Arc<Roster>,
    refusals: Arc<TransportRefusals>,
}

type ShareStream = Pin<
    Box<dyn tokio_stream::Stream<Item = std::result::Result<proto::ShareChunk, Status>> + Send>,
>;

#[tonic::async_trait]
impl key_service_server::KeyService for KeyServiceService {
    async fn enroll(
        &self,
        req: Request<proto::EnrollRequest>,
    ) -> std::result::Result<Response<proto::EnrollReply>, Status> {
        let fp = peer_fingerprint(&req)?;
        let id = self
            .roster
            .by_cert(&fp)
            .map(|e| e.client_id.clone())
            .ok_or_else(|| {
                self.refusals.count_unenrolled();
                tracing::warn!(fingerprint = %fp, "unenrolled certificate refused by the key service");
                Status::unauthenticated(format!("certificate SHA-256 {fp} is not in the roster"))
            })?;
        let r = incoming(req.into_inner())?;
        let ks = self.ks.clone();
        tokio::task::spawn_blocking(move || {
            ks.lock()
                .map_err(|_| FedError::Transport("lock".into()))?
                .enroll(&id, &r)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map(outgoing)
        .map_err(status)
    }

    type DecryptStream = ShareStream;

    async fn decrypt(
        &self,
        req: Request<proto::KeyServiceDecrypt>,
    ) -> std::result::Result<Response<ShareStream>, Status> {
        let fp = peer_fingerprint(&req)?;
        let caller = if self.roster.is_coordinator_client(&fp) {
            "coordinator".to_string()
        } else {
            self.refusals.count_unenrolled();
            tracing::warn!(fingerprint = %fp, "decryption request from a non-coordinator refused");
            return Err(Status::permission_denied(
                "only the coordinator may request decryptions",
            ));
        };
        let r = incoming(req.into_inner())?;
        let ks = self.ks.clone();
        let parts = tokio::task::spawn_blocking(move || {
            ks.lock()
                .map_err(|_| FedError::Transport("lock".into()))?
                .decrypt(&caller, &r)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(status)?;
        let parts: Vec<proto::ShareChunk> = all_out(parts);
        Ok(Response::new(Box::pin(tokio_stream::iter(
            parts.into_iter().map(Ok),
        ))))
    }
}

/// Serves a key service until the process ends.
pub async fn serve_key_service(
    ks: KeyService,
    roster: Roster,
    addr: SocketAddr,
    tls: &TlsFiles<'_>,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| FedError::Transport(format!("bind {addr}: {e}")))?;
    serve_key_service_on(ks, roster, listener, tls).await
}

/// Serves a key service on a bound listener until the process ends.
pub async fn serve_key_service_on(
    ks: KeyService,
    roster: Roster,
    listener: tokio::net::TcpListener,
    tls: &TlsFiles<'_>,
) -> Result<()> {
    let refusals = Arc::new(TransportRefusals::default());
    let svc = KeyServiceService {
        ks: Arc::new(Mutex::new(ks)),
        roster: Arc::new(roster),
        refusals: refusals.clone(),
    };
    let (incoming, _acceptor) =
        super::tls::accept_tls(listener, server_config(tls)?, "key service", refusals);
    tonic::transport::Server::builder()
        .add_service(
            key_service_server::KeyServiceServer::new(svc)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .serve_with_incoming(incoming)
        .await
        .map_err(|e| FedError::Transport(e.to_string()))
}
