//! The simulator: a whole federation in one process — coordinator, every
//! client agent and (optionally) the key service — speaking the real
//! protocol through the in-process transport (every message is encoded and
//! decoded with protobuf, as on the wire), with the real persistence and
//! audit ledger, and with dropouts injected at every stage: before
//! uploading, after uploading (gone for the rest of the round), and before
//! sending a decryption share. Time is virtual: when nobody can make
//! progress, the clock jumps past the round timeout.

use crate::client::{Action, ClientAgent, ClientOptions};
use crate::config::{FederationConfig, KeysMode};
use crate::coordinator::{Clock, Coordinator, CoordinatorOptions, Phase, RoundSummary};
use crate::error::{FedError, Result};
use crate::keyservice::KeyService;
use crate::messages::{EnrollRequest, TaskRequest, UploadChunk};
use crate::roster::{KxSecret, Roster, RosterEntry};
use crate::store::StateLocation;
use crate::transport::inproc::{roundtrip, roundtrip_all};
use cipherflow_ledger::{verify_log, LogSigner, VerifyOptions};
use cipherflow_nn::data::Dataset;
use rand_core::RngCore;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use zeroize::Zeroizing;

mod regions;
mod synthetic;

pub use regions::assign_regions;
pub use synthetic::synthetic_audit_log;

/// Uploads the simulated coordinator commits together (a server batches
/// the uploads that arrive while it commits the previous ones).
pub const UPLOAD_BATCH: usize = 100;

/// Hands the pending uploads to the coordinator as one batch and their
/// receipts to the clients; records the coordinator's time and batch size.
/// The upload that completes a round goes alone, so that the round's
/// closing work is not counted as upload work.
fn flush_uploads(
    coord: &mut Coordinator,
    clients: &mut [ClientAgent],
    pending: &mut Vec<(usize, Vec<UploadChunk>)>,
    timings: &mut Vec<(f64, usize)>,
) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let left = coord
        .current_round()
        .and_then(|r| coord.pending_uploads(r))
        .unwrap_or(usize::MAX);
    let last = (left <= pending.len()).then(|| pending.pop()).flatten();
    let parts = [
        (std::mem::take(pending), true),
        (last.into_iter().collect(), false),
    ];
    for (part, timed) in parts {
        if part.is_empty() {
            continue;
        }
        let items: Vec<(&str, &[UploadChunk])> = part
            .iter()
            .map(|(i, ch)| {
                let id = clients.get(*i).map_or("", |c| c.id());
                (id, ch.as_slice())
            })
            .collect();
        let started = std::time::Instant::now();
        let results = coord.upload_batch(&items)?;
        if timed {
            timings.push((started.elapsed().as_secs_f64() * 1e3, part.len()));
        }
        for ((i, _), r) in part.iter().zip(results) {
            let receipt = roundtrip(r?)?;
            if let Some(c) = clients.get_mut(*i) {
                c.on_receipt(&receipt)?;
            }
        }
    }
    Ok(())
}

/// Called after every round of a simulation.
pub type RoundCallback = Box<dyn FnMut(&RoundSummary)>;

/// A deterministic dropout plan: `(round, client index) → stage`.
pub type DropoutPlan = Box<dyn Fn(u64, usize) -> DropStage>;

/// A simulation.
pub struct SimOptions {
    /// The federation.
    pub config: FederationConfig,
    /// Each client's local data.
    pub client_data: Vec<Dataset>,
    /// The coordinator's evaluation data.
    pub eval: Option<Dataset>,
    /// Probability that a sampled client drops out in a round (at a stage
    /// chosen uniformly: before upload, after upload, before its share).
    pub dropout: f64,
    /// Directory for the ledger, and for the state database unless
    /// `state` names one.
    pub dir: PathBuf,
    /// The coordinator's state (default: a SQLite file in `dir`); a
    /// Postgres one must be new (an empty schema), as the ledger is.
    pub state: Option<StateLocation>,
    /// Synthetic updates instead of training (benchmarks).
    pub synthetic: bool,
    /// Called after every round.
    pub on_round: Option<RoundCallback>,
    /// Deterministic dropouts: `(round, client index) → stage` (overrides
    /// `dropout`).
    pub dropout_plan: Option<DropoutPlan>,
    /// Regional aggregators (hierarchical aggregation; 0: none): clients
    /// are assigned round-robin, each region has its own state and ledger
    /// (under `dir/region-J`, or its own Postgres schema) and forwards one
    /// sum per round.
    pub regions: usize,
}

/// What a simulation did.
#[derive(Clone, Debug, Serialize)]
pub struct SimReport {
    /// Rounds closed (aborted ones included).
    pub rounds: usize,
    /// Per-round summaries.
    pub history: Vec<RoundSummary>,
    /// Accuracy after the last round.
    pub final_accuracy: Option<f32>,
    /// Final global ε (None: no DP).
    pub epsilon: Option<f64>,
    /// Upload bytes per model parameter.
    pub upload_bytes_per_param: f64,
    /// The same over float32's 4 bytes.
    pub upload_ratio_to_float32: f64,
    /// Bytes of one client's upload.
    pub upload_bytes_per_update: f64,
    /// Parameters one ciphertext holds (`N·pack`).
    pub ciphertext_capacity: usize,
    /// Median seconds per round.
    pub round_seconds_median: f64,
    /// Mean milliseconds the coordinator spent accepting one upload:
    /// checking and decoding it, making it durable (group commit of up to
    /// [`UPLOAD_BATCH`]: one segment file, one state transaction, one
    /// ledger batch, each fsynced), adding it to the running sum and
    /// proving its receipt — the round's closing work on its last upload
    /// excluded. With regions: the regions' work on their uploads (their
    /// closing included) plus the coordinator's on the regional sums
    /// (checks, durability, logging, and the round's closing when a sum
    /// completes it), over the uploads.
    pub coordinator_ms_per_upload: f64,
    /// The same per 10^5 model parameters.
    pub coordinator_ms_per_upload_per_1e5_params: f64,
    /// With regions: the regions' part of `coordinator_ms_per_upload`
    /// (each region a server of its own in a deployment).
    pub region_ms_per_upload: Option<f64>,
    /// With regions: the coordinator's part (the regional sums), per
    /// upload.
    pub top_ms_per_upload: Option<f64>,
    /// Peak resident memory of the whole simulation (every client and the
    /// coordinator in one process), MiB; `None` where the OS does not say.
    pub peak_rss_mib: Option<f64>,
    /// "verified" when the audit log verified offline (ε recomputed), and
    /// every region's.
    pub ledger: String,
    /// Regional aggregators (0: clients uploaded to the coordinator).
    pub regions: usize,
    /// Regional sums the coordinator accepted.
    pub regional_sums: usize,
    /// "My update was counted" proofs verified by clients.
    pub counted_proofs_verified: usize,
    /// Why the federation stopped.
    pub finished: String,
    /// `log2 Q` of the packing.
    pub log_q: u32,
    /// Key holders (threshold mode: every client, or the committee; 1 with
    /// a key service).
    pub key_holders: usize,
    /// Model parameters.
    pub params: usize,
    /// The final model.
    #[serde(skip)]
    pub model: Vec<f32>,
}

/// A manual clock for simulations.
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// Starts at 0.
    pub fn new() -> (Self, Clock) {
        let t = Arc::new(AtomicU64::new(0f64.to_bits()));
        let r = t.clone();
        (
            Self(t),
            Arc::new(move || f64::from_bits(r.load(Ordering::SeqCst))),
        )
    }

    /// Another reader of the same time (for a restarted coordinator).
    pub fn clock(&self) -> Clock {
        let r = self.0.clone();
        Arc::new(move || f64::from_bits(r.load(Ordering::SeqCst)))
    }

    /// Moves time forward.
    pub fn advance(&self, seconds: f64) {
        let now = f64::from_bits(self.0.load(Ordering::SeqCst));
        self.0.store((now + seconds).to_bits(), Ordering::SeqCst);
    }
}

/// When a client drops out of a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropStage {
    /// It stays.
    None,
    /// Before uploading its update.
    BeforeUpload,
    /// Right after uploading: gone for the rest of the round.
    AfterUpload,
    /// After being asked for its decryption share, without sending it.
    BeforeShare,
}

use DropStage as Drop;

/// Makes a roster of `n` clients `client-1 … client-n` with fresh
/// key-agreement keys.
pub fn make_roster(federation: &str, n: usize) -> Result<(Roster, Vec<KxSecret>)> {
    let kx: Vec<KxSecret> = (0..n)
        .map(|_| KxSecret::generate())
        .collect::<Result<_>>()?;
    let clients = kx
        .iter()
        .enumerate()
        .map(|(i, k)| RosterEntry {
            client_id: format!("client-{}", i + 1),
            party_id: i as u64 + 1,
            cert_sha256: None,
            kx_public: k.public_hex(),
            region: None,
        })
        .collect();
    Ok((
        Roster {
            federation: federation.into(),
            clients,
            revoked: Vec::new(),
            ..Roster::default()
        },
        kx,
    ))
}

/// Runs a federation to the end.
pub fn simulate(opts: SimOptions) -> Result<SimReport> {
    let SimOptions {
        config,
        client_data,
        eval,
        dropout,
        dir,
        state,
        synthetic,
        mut on_round,
        dropout_plan,
        regions: region_count,
    } = opts;
    if !(0.0..1.0).contains(&dropout) {
        return Err(FedError::Config("dropout must be in [0, 1)".into()));
    }
    std::fs::create_dir_all(&dir).map_err(|e| FedError::io(&dir, e))?;
    let n = client_data.len();
    let (mut roster, kx) = make_roster(&config.name, n)?;
    let region_signers = if region_count > 0 {
        assign_regions(&mut roster, region_count)?
    } else {
        Vec::new()
    };
    let region_state = state.clone();
    let signer = LogSigner::generate()?;
    let ledger_key = signer.public_key();
    let ledger_path = dir.join("ledger.db");
    let (clock, clock_fn) = ManualClock::new();
    let mut coord = Coordinator::open(CoordinatorOptions {
        config: config.clone(),
        roster: roster.clone(),
        state: state.unwrap_or_else(|| dir.join("coordinator.db").into()),
        ledger: ledger_path.clone(),
        signer,
        eval,
        clock: clock_fn,
    })?;
    let mut regions = if region_count > 0 {
        Some(regions::Regions::open(
            &config,
            &roster,
            region_signers,
            &coord,
            &dir,
            region_state.as_ref(),
            &|| clock.clock(),
        )?)
    } else {
        None
    };
    let mut kms = match config.keys {
        KeysMode::KeyService => {
            let mut master = Zeroizing::new([0u8; 32]);
            cipherflow_ring::sampler::secure_rng()?.fill_bytes(master.as_mut());
            Some(KeyService::new(
                config.clone(),
                roster.clone(),
                master,
                ledger_key,
                "coordinator",
                None,
            )?)
        }
        KeysMode::Threshold => None,
    };
    let mut clients = Vec::with_capacity(n);
    for (i, (data, k)) in client_data.into_iter().zip(kx).enumerate() {
        let mut c = ClientAgent::new(ClientOptions {
            client_id: format!("client-{}", i + 1),
            kx: Some(k),
            roster: roster.clone(),
            config: config.clone(),
            data,
            state: None,
            ledger_key: Some(ledger_key),
            synthetic,
        })?;
        let reply = coord.join(c.id(), &roundtrip(c.join_request())?)?;
        c.on_join(&roundtrip(reply)?)?;
        if let Some(k) = &mut kms {
            let r = k.enroll(
                c.id(),
                &EnrollRequest {
                    federation: config.name.clone(),
                },
            )?;
            c.on_enroll(roundtrip(r)?)?;
        }
        clients.push(c);
    }
    let mut rng = cipherflow_ring::sampler::secure_rng()?;
    let mut drops = vec![Drop::None; n];
    let mut drawn_for: Option<u64> = None;
    let mut counted = 0usize;
    let mut seen_rounds = 0usize;
    let mut idle = 0u32;
    let mut upload_ms: Vec<(f64, usize)> = Vec::new();
    let mut pending: Vec<(usize, Vec<UploadChunk>)> = Vec::new();
    loop {
        // Regions forward their sealed sums before the coordinator's
        // deadline passes (they seal earlier), then follow its rounds.
        let forwarded = match &mut regions {
            Some(r) => r.forward(&mut coord)?,
            None => false,
        };
        if let Some(req) = coord.tick()? {
            if let Some(k) = &mut kms {
                let parts = k.decrypt("coordinator", &roundtrip(req)?)?;
                coord.key_service_share(&roundtrip_all(&parts)?)?;
            }
        }
        while seen_rounds < coord.history().len() {
            let h = coord.history()[seen_rounds].clone();
            if let Some(f) = on_round.as_mut() {
                f(&h);
            }
            seen_rounds += 1;
            for c in clients.iter_mut() {
                while let Some(req) = c.proof_request(h.round) {
                    match coord.counted_proof(c.id(), &roundtrip(req.clone())?) {
                        Ok(reply) => {
                            c.on_counted_proof(&roundtrip(reply)?)?;
                            counted += 1;
                        }
                        // An aborted round: the update was never summed.
                        Err(_) => c.forget_unverified(req.round),
                    }
                }
            }
        }
        if let Phase::Finished(_) = coord.phase() {
            break;
        }
        if let Some(r) = &mut regions {
            r.follow(&coord)?;
        }
        let mut progress = forwarded;
        for i in 0..clients.len() {
            if coord.current_round() != drawn_for {
                drawn_for = coord.current_round();
                for (i, d) in drops.iter_mut().enumerate() {
                    *d = if let (Some(plan), Some(r)) = (&dropout_plan, drawn_for) {
                        plan(r, i)
                    } else if dropout > 0.0 && uniform(&mut rng) < dropout {
                        match rng.next_u32() % 3 {
                            0 => Drop::BeforeUpload,
                            1 => Drop::AfterUpload,
                            _ => Drop::BeforeShare,
                        }
                    } else {
                        Drop::None
                    };
                }
            }
            let c = &mut clients[i];
            let gone = drops[i] == Drop::AfterUpload
                && coord.current_round().is_some_and(|r| c.uploaded_in(r));
            if gone {
                continue; // gone for the rest of the round
            }
            let req = TaskRequest {
                federation: config.name.clone(),
                wait_ms: 0,
                known_tree_size: c.known_tree_size(),
            };
            let task = roundtrip(coord.next_task(c.id(), &req)?)?;
            match c.handle(&task)? {
                Action::PostKeySetup(post) => {
                    coord.post_key_setup(c.id(), &roundtrip(post)?)?;
                    progress = true;
                }
                Action::Upload(chunks) => {
                    if drops[i] == Drop::BeforeUpload {
                        continue;
                    }
                    pending.push((i, roundtrip_all(&chunks)?));
                    // Each region batches what arrives while it commits, as
                    // the coordinator does: about UPLOAD_BATCH each.
                    if pending.len() >= UPLOAD_BATCH * region_count.max(1) {
                        match &mut regions {
                            Some(r) => r.flush(&coord, &roster, &mut clients, &mut pending)?,
                            None => flush_uploads(
                                &mut coord,
                                &mut clients,
                                &mut pending,
                                &mut upload_ms,
                            )?,
                        }
                    }
                    progress = true;
                }
                Action::Share(parts) => {
                    if drops[i] == Drop::BeforeShare {
                        continue;
                    }
                    coord.send_share(c.id(), &roundtrip_all(&parts)?)?;
                    progress = true;
                }
                Action::Wait(_) | Action::Finished(_) => {}
            }
        }
        match &mut regions {
            Some(r) => r.flush(&coord, &roster, &mut clients, &mut pending)?,
            None => flush_uploads(&mut coord, &mut clients, &mut pending, &mut upload_ms)?,
        }
        if config.keys == KeysMode::Threshold && clients.iter().any(|c| !c.has_keys()) {
            for c in clients.iter_mut() {
                let b = coord.get_key_setup(c.id(), &roundtrip(c.key_setup_query())?)?;
                if c.on_key_setup(&roundtrip(b)?)? {
                    progress = true;
                }
            }
        }
        if progress {
            idle = 0;
        } else {
            idle += 1;
            if idle > 50 {
                return Err(FedError::Protocol("the simulation made no progress".into()));
            }
            clock.advance(config.round_timeout_s * 1.01);
        }
    }
    let finished = match coord.phase() {
        Phase::Finished(r) => r.clone(),
        _ => String::new(),
    };
    let history = coord.history().to_vec();
    let dim = coord.global_model().len();
    let (mut bytes, contributions): (u64, usize) = history
        .iter()
        .fold((0, 0), |(b, c), h| (b + h.upload_bytes, c + h.contributors));
    if let Some(r) = &regions {
        // The clients' uploads went to the regions (the coordinator got
        // one sum per region).
        bytes = r.upload_bytes();
    }
    let per_param = if contributions > 0 {
        bytes as f64 / (contributions as f64 * dim as f64)
    } else {
        0.0
    };
    let mut secs: Vec<f64> = history
        .iter()
        .filter(|h| !h.aborted)
        .map(|h| h.seconds)
        .collect();
    secs.sort_by(f64::total_cmp);
    let median = secs.get(secs.len() / 2).copied().unwrap_or(0.0);
    let regional_sums = regions.as_ref().map_or(0, |r| r.forwarded);
    let mut tiers = None;
    if let Some(r) = &regions {
        upload_ms.extend_from_slice(&r.timings);
        upload_ms.extend_from_slice(&r.top_timings);
        let per_upload =
            |t: &[(f64, usize)]| t.iter().map(|x| x.0).sum::<f64>() / r.uploads().max(1) as f64;
        tiers = Some((per_upload(&r.timings), per_upload(&r.top_timings)));
    }
    let (ms, uploads) = upload_ms
        .iter()
        .fold((0.0, 0usize), |(t, n), (ms, k)| (t + ms, n + k));
    let upload_mean = if uploads > 0 {
        ms / uploads as f64
    } else {
        0.0
    };
    let log_q = coord.packing().log_q();
    let capacity = coord.packing().n() * coord.packing().pack as usize;
    let model = coord.global_model().to_vec();
    let key_holders = coord.sizes().holders;
    drop(coord);
    let recompute = crate::dp_plan::FedEpsilon::default();
    let report = verify_log(
        &ledger_path,
        &ledger_key,
        &VerifyOptions {
            epsilon: Some(&recompute),
            ..VerifyOptions::default()
        },
    );
    let ledger = match (report, regions) {
        (Ok(_), Some(r)) => r.verify(),
        (Ok(_), None) => "verified".to_string(),
        (Err(f), _) => format!("failed: {f}"),
    };
    Ok(SimReport {
        rounds: history.len(),
        final_accuracy: history.iter().rev().find_map(|h| h.accuracy),
        epsilon: history.last().and_then(|h| h.epsilon),
        upload_bytes_per_param: per_param,
        upload_ratio_to_float32: per_param / 4.0,
        upload_bytes_per_update: per_param * dim as f64,
        ciphertext_capacity: capacity,
        round_seconds_median: median,
        coordinator_ms_per_upload: upload_mean,
        coordinator_ms_per_upload_per_1e5_params: upload_mean * 1e5 / dim.max(1) as f64,
        region_ms_per_upload: tiers.map(|t| t.0),
        top_ms_per_upload: tiers.map(|t| t.1),
        peak_rss_mib: peak_rss_mib(),
        ledger,
        regions: region_count,
        regional_sums,
        counted_proofs_verified: counted,
        finished,
        log_q,
        key_holders,
        params: dim,
        history,
        model,
    })
}

/// Splits `train` among `clients`: Dirichlet(α) label skew (non-IID) when
/// `alpha` is given, else IID; seeded.
pub fn split_among(
    train: &Dataset,
    clients: usize,
    alpha: Option<f64>,
    seed: u64,
) -> Result<Vec<Dataset>> {
    use cipherflow_nn::data::{partition_dirichlet, partition_iid};
    let parts = match alpha {
        Some(a) => partition_dirichlet(train.labels(), train.num_classes(), clients, a, seed)?,
        None => partition_iid(train.len(), clients, seed)?,
    };
    parts
        .iter()
        .map(|idx| {
            if idx.is_empty() {
                return Err(FedError::Config(
                    "a client got no data; use more data, fewer clients or a larger α".into(),
                ));
            }
            Ok(train.subset(idx)?)
        })
        .collect()
}

/// The process's peak resident set (Linux: `VmHWM` in /proc/self/status).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn uniform<R: RngCore>(rng: &mut R) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}
