//! The coordinator: an untrusted aggregator that only ever holds
//! ciphertexts, sums them as they arrive, and publishes each round's model
//! after the key holders (or the key service) decrypted the *sum*.
//!
//! The coordinator is a state machine behind plain method calls, one per
//! protocol message ([`Coordinator::join`], [`Coordinator::next_task`],
//! [`Coordinator::upload`], …) plus [`Coordinator::tick`] for timeouts; the
//! transports (in-process, gRPC) only deliver messages and identities.
//! Every change is durable in SQLite before it is acknowledged, and every
//! protocol step is recorded in the audit ledger; after a crash
//! [`Coordinator::open`] resumes the round where it stopped (the running
//! sum is rebuilt from the stored uploads; ledger entries written but not
//! yet acknowledged in the state are found, not written twice). A state
//! that lost writes relative to its ledger (deleted, rolled back, damaged)
//! is refused, and [`Recovering`] reopens the coordinator from disk after
//! a storage failure.

mod decrypt;
mod recover;
mod region;
mod resume;
mod round;
mod suspects;
mod upload;

use crate::config::{FederationConfig, KeysMode, Sizes};
use crate::dp_plan::{DpPlan, FedEpsilon, LocalDpPlan};
use crate::dp_schedule::FedSchedule;
use crate::error::{FedError, Result};
use crate::messages::{
    FinishedTask, JoinReply, JoinRequest, KeySetupBundle, KeySetupPost, KeySetupQuery,
    KeySetupTask, Party, SealedShare, Task, TaskRequest,
};
use crate::metrics::Metrics;
use crate::packing::PackingPlan;
use crate::records::{FederationRecord, KeySetupRecord, KIND_KEY_SETUP};
use crate::roster::{parse_public, Roster};
use crate::store::{self, StateLocation, Store};
use crate::strategy::ServerOptimizer;
use crate::training;
use cipherflow_ckks::multiparty::{Crs, SharedCiphertext};
use cipherflow_ckks::CkksParams;
use cipherflow_ledger::entry::{EntryBody, KIND_CUSTOM};
use cipherflow_ledger::{Ledger, LogSigner, PublicKey};
use cipherflow_nn::data::Dataset;
use cipherflow_nn::spec::ModelSpec;
use cipherflow_nn::Sequential;
use round::RoundState;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
pub use upload::UploadItem;

pub use recover::{is_storage_failure, Recovering, Reopen};
pub use region::RegionalAggregator;
pub use round::{RoundSummary, SHARE_PART_CHUNKS};

/// Seconds since an arbitrary origin (injectable for simulations).
pub type Clock = Arc<dyn Fn() -> f64 + Send + Sync>;

/// A clock reading real time.
pub fn real_clock() -> Clock {
    let start = std::time::Instant::now();
    Arc::new(move || start.elapsed().as_secs_f64())
}

/// Everything the coordinator needs to start or resume.
pub struct CoordinatorOptions {
    /// The federation.
    pub config: FederationConfig,
    /// Who may take part.
    pub roster: Roster,
    /// State database (created if missing, resumed otherwise): a SQLite
    /// file or a Postgres database.
    pub state: StateLocation,
    /// Audit ledger file.
    pub ledger: PathBuf,
    /// The ledger's signing key.
    pub signer: LogSigner,
    /// Public evaluation data for reporting accuracy (optional).
    pub eval: Option<Dataset>,
    /// Time source.
    pub clock: Clock,
}

/// Federation phase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Waiting for every key holder's Shamir dealing.
    KeySetup,
    /// Running rounds.
    Training,
    /// Done (rounds completed, budget exhausted, …).
    Finished(String),
}

struct ClientInfo {
    party: u64,
    num_examples: u64,
    participations: u64,
    last_seen: f64,
    /// Did not answer a decryption request; skipped until seen again.
    unresponsive: bool,
}

/// The coordinator state machine.
pub struct Coordinator {
    cfg: FederationConfig,
    roster: Roster,
    sizes: Sizes,
    store: Store,
    ledger: Ledger,
    spec: ModelSpec,
    model: Sequential,
    packing: PackingPlan,
    params: CkksParams,
    dp: Option<DpPlan>,
    local_dp: Option<LocalDpPlan>,
    crs: Crs,
    epoch: u64,
    global: Vec<f32>,
    optimizer: ServerOptimizer,
    phase: Phase,
    rounds_opened: u64,
    round: Option<RoundState>,
    clients: BTreeMap<String, ClientInfo>,
    history: Vec<RoundSummary>,
    eval: Option<Dataset>,
    clock: Clock,
    metrics: Metrics,
    round_models: Option<PathBuf>,
    /// Said that no client is live (once, until one is seen again).
    said_idle: bool,
    /// Key holders suspected or identified as lying about their shares.
    suspects: suspects::Suspects,
    /// The dynamic privacy schedule, if the plan has one.
    schedule: Option<FedSchedule>,
    /// The accountant (caches per-round RDP across rounds).
    acct: FedEpsilon,
    /// The region this instance aggregates for ([`RegionalAggregator`]);
    /// `None`: the federation's coordinator.
    region: Option<String>,
}

/// What makes a coordinator a regional aggregator: its region, and the
/// key epoch's CRS and number (the federation's, given by its operator
/// from the coordinator's ledger; pinned in the state at first start).
pub(crate) struct RegionSetup {
    pub(crate) id: String,
    pub(crate) crs: Crs,
    pub(crate) epoch: u64,
}

const META_CONFIG: &str = "config";
const META_CRS: &str = "crs";
const META_GLOBAL: &str = "global";
const META_OPTIMIZER: &str = "optimizer";
const META_PHASE: &str = "phase";
const META_ROUNDS_OPENED: &str = "rounds_opened";
const META_KS_HEADS: &str = "key_service_heads";
const META_SUSPECTS: &str = "decryption_suspects";
const META_DP_SCHEDULE: &str = "dp_schedule";

/// The privacy schedule: the stored one, or a fresh one before the first
/// round. A plateau reaction needs evaluation data, and the stored
/// schedule must have granted exactly the rounds opened.
fn load_schedule(
    store: &Store,
    dp: Option<&DpPlan>,
    has_eval: bool,
    rounds_opened: u64,
) -> Result<Option<FedSchedule>> {
    let Some(plan) = dp else {
        return Ok(None);
    };
    if plan.schedule.as_ref().is_some_and(|s| s.plateau.is_some()) && !has_eval {
        return Err(FedError::Config(
            "dp.schedule.plateau reacts to the evaluation accuracy: give the coordinator evaluation data".into(),
        ));
    }
    let schedule: Option<FedSchedule> = match store.meta_text(META_DP_SCHEDULE)? {
        Some(t) => Some(serde_json::from_str(&t)?),
        None => FedSchedule::new(plan)?,
    };
    if let Some(s) = &schedule {
        if s.granted().len() as u64 != rounds_opened {
            return Err(FedError::Integrity(format!(
                "the stored privacy schedule granted {} rounds, but {rounds_opened} were opened",
                s.granted().len()
            )));
        }
    }
    Ok(schedule)
}

impl Coordinator {
    /// Starts a new federation or resumes the one in `opts.state`.
    pub fn open(opts: CoordinatorOptions) -> Result<Self> {
        Self::open_as(opts, None)
    }

    /// [`Coordinator::open`], as the federation's coordinator or (with
    /// `region`) as a regional aggregator.
    pub(crate) fn open_as(opts: CoordinatorOptions, region: Option<RegionSetup>) -> Result<Self> {
        let CoordinatorOptions {
            config: cfg,
            roster,
            state,
            ledger: ledger_path,
            signer,
            eval,
            clock,
        } = opts;
        cfg.validate()?;
        roster.validate()?;
        if roster.federation != cfg.name {
            return Err(FedError::Config(format!(
                "the roster is for federation {:?}, the configuration for {:?}",
                roster.federation, cfg.name
            )));
        }
        let ledger_name = match &region {
            Some(r) => {
                let entry = roster.region(&r.id).ok_or_else(|| {
                    FedError::Config(format!("the roster lists no region {:?}", r.id))
                })?;
                if entry.public_key()? != signer.public_key() {
                    return Err(FedError::Config(format!(
                        "region {}'s ledger key is not the one the roster pins",
                        r.id
                    )));
                }
                crate::roster::region_ledger_name(&cfg.name, &r.id)
            }
            None => cfg.name.clone(),
        };
        let sizes = cfg.sizes(roster.clients.len())?;
        let spec = cfg.model_spec()?;
        let mut model = spec.build(cfg.model_seed)?;
        let dim = model.num_params();
        let dp = match &cfg.dp {
            Some(d) => Some(DpPlan::new(d, &sizes, cfg.rounds, dim as u64)?),
            None => None,
        };
        let local_dp = match &cfg.local_dp {
            Some(l) => Some(LocalDpPlan::new(l, cfg.rounds, cfg.training.epochs)?),
            None => None,
        };
        let packing = PackingPlan::for_federation(&cfg, &sizes, dp.as_ref(), dim)?;
        let params = packing.params()?;
        // With a Postgres state, payload files go beside the ledger.
        let payloads = ledger_path
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join("payloads");
        let mut store = Store::open(&state, &payloads)?;
        let cfg_json = cfg.to_json()?;
        let resumed = match store.meta_text(META_CONFIG)? {
            Some(stored) if stored == cfg_json => true,
            Some(_) => {
                return Err(FedError::Config(format!(
                    "{state} belongs to a federation with another configuration"
                )))
            }
            None => false,
        };
        if let Some(d) = ledger_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d).map_err(|e| FedError::io(d, e))?;
        }
        let ledger = if ledger_path.exists() {
            Ledger::open(&ledger_path, signer)?
        } else {
            if resumed {
                return Err(FedError::Config(format!(
                    "the state exists but its ledger {} is missing",
                    ledger_path.display()
                )));
            }
            Ledger::create(&ledger_path, &ledger_name, signer)?
        };
        if ledger.name() != ledger_name {
            return Err(FedError::Config(format!(
                "the ledger {} is {:?}'s, not {ledger_name:?}'s",
                ledger_path.display(),
                ledger.name()
            )));
        }
        if !resumed && !ledger.is_empty() {
            tracing::error!(
                state = %state,
                ledger = %ledger_path.display(),
                "the ledger holds a federation but the state is new or lost"
            );
            return Err(FedError::Integrity(format!(
                "the ledger {} already holds {} entries of federation {:?}, but the state {state} \
                 holds none (deleted or damaged): refusing to start a new federation over it; \
                 restore the state, or start a new federation with a new ledger",
                ledger_path.display(),
                ledger.len(),
                ledger.name(),
            )));
        }
        let (crs, global, optimizer, phase, rounds_opened) = if resumed {
            let crs: [u8; 32] = store
                .meta(META_CRS)?
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| FedError::Encoding("stored CRS".into()))?;
            let global = training::from_bytes(&store.meta(META_GLOBAL)?.unwrap_or_default(), dim)?;
            let optimizer = ServerOptimizer::from_json(
                &store.meta_text(META_OPTIMIZER)?.unwrap_or_default(),
                &cfg.strategy,
                dim,
            )?;
            let phase: Phase =
                serde_json::from_str(&store.meta_text(META_PHASE)?.unwrap_or_default())?;
            let opened: u64 = store
                .meta_text(META_ROUNDS_OPENED)?
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            if region.as_ref().is_some_and(|r| r.crs.0 != crs) {
                return Err(FedError::Integrity(
                    "the region's state holds another key epoch's CRS".into(),
                ));
            }
            (Crs(crs), global, optimizer, phase, opened)
        } else {
            let crs = match &region {
                Some(r) => r.crs,
                None => Crs::generate(&mut cipherflow_ring::sampler::secure_rng()?),
            };
            let global = training::flatten(&mut model);
            let optimizer = ServerOptimizer::new(&cfg.strategy, dim);
            let phase = match cfg.keys {
                KeysMode::Threshold if region.is_none() => Phase::KeySetup,
                _ => Phase::Training,
            };
            store.tx(|tx| {
                store::set_meta(tx, META_CONFIG, cfg_json.as_bytes())?;
                store::set_meta(tx, META_CRS, &crs.0)?;
                store::set_meta(tx, META_GLOBAL, &training::to_bytes(&global))?;
                store::set_meta(tx, META_OPTIMIZER, optimizer.to_json()?.as_bytes())?;
                store::set_meta(tx, META_PHASE, serde_json::to_string(&phase)?.as_bytes())?;
                store::set_meta(tx, META_ROUNDS_OPENED, b"0")?;
                Ok(())
            })?;
            (crs, global, optimizer, phase, 0)
        };
        let suspects = match store.meta_text(META_SUSPECTS)? {
            Some(t) => serde_json::from_str(&t)?,
            None => suspects::Suspects::default(),
        };
        // A region accounts no privacy: the coordinator grants each round.
        let schedule = match region {
            Some(_) => None,
            None => load_schedule(&store, dp.as_ref(), eval.is_some(), rounds_opened)?,
        };
        let mut clients = BTreeMap::new();
        for (id, n, p) in store.clients()? {
            if let Some(e) = roster.by_id(&id) {
                clients.insert(
                    id,
                    ClientInfo {
                        party: e.party_id,
                        num_examples: n,
                        participations: p,
                        last_seen: f64::NEG_INFINITY,
                        unresponsive: false,
                    },
                );
            }
        }
        let history = store
            .history()?
            .iter()
            .map(|h| serde_json::from_str(h).map_err(FedError::from))
            .collect::<Result<Vec<RoundSummary>>>()?;
        let mut c = Self {
            cfg,
            roster,
            sizes,
            store,
            ledger,
            spec,
            model,
            packing,
            params,
            dp,
            local_dp,
            crs,
            epoch: region.as_ref().map_or(1, |r| r.epoch),
            global,
            optimizer,
            phase,
            rounds_opened,
            round: None,
            clients,
            history,
            eval,
            clock,
            metrics: Metrics::default(),
            round_models: None,
            said_idle: false,
            suspects,
            schedule,
            acct: FedEpsilon::default(),
            region: region.map(|r| r.id),
        };
        if !resumed && c.ledger.is_empty() {
            c.log_federation()?;
        }
        c.check_state_against_ledger()?;
        if c.region.is_none() {
            c.log_key_setup()?;
        }
        c.resume_round()?;
        tracing::info!(
            federation = %c.cfg.name,
            resumed,
            clients = c.sizes.clients,
            dim,
            log_q = c.packing.log_q(),
            "coordinator ready"
        );
        Ok(c)
    }

    /// The state is written before the ledger, so the ledger may lag the
    /// state but never lead it: a ledger with rounds the state does not
    /// know, a round closed in the ledger but open in the state, or a
    /// stored global model that is not the last closed round's means the
    /// state lost writes (a damaged or rolled-back database). Refuse.
    fn check_state_against_ledger(&self) -> Result<()> {
        let n = self.ledger.len();
        if n == 0 {
            return Ok(());
        }
        let last = self.ledger.entry(n - 1)?;
        let state_round = self.store.latest_round()?.unwrap_or(0);
        let damaged = |why: String| {
            tracing::error!(%why, "state behind the ledger");
            Err(FedError::Integrity(format!(
                "{why}: the state database lost writes (damaged, truncated or restored from \
                 an old copy); refusing to continue over it"
            )))
        };
        if last.round > state_round {
            return damaged(format!(
                "the ledger records round {} but the state only knows round {state_round}",
                last.round
            ));
        }
        if state_round > 0 {
            let json = self.store.round(state_round)?.unwrap_or_default();
            let rec: round::RoundRecord = serde_json::from_str(&json)?;
            let closed_in_ledger = !self
                .ledger
                .round_entries(state_round, cipherflow_ledger::entry::KIND_ROUND_CLOSED)?
                .is_empty();
            if closed_in_ledger && !rec.is_finished() {
                return damaged(format!(
                    "round {state_round} is closed in the ledger but open in the state"
                ));
            }
        }
        if let Some(h) = self.history.iter().rev().find(|h| !h.aborted) {
            let stored = hex::encode(training::model_hash(&training::to_bytes(&self.global)));
            if stored != h.model_hash {
                return damaged(format!(
                    "the stored global model is not round {}'s (SHA-256 {} instead of {})",
                    h.round,
                    &stored[..16],
                    h.model_hash.get(..16).unwrap_or("")
                ));
            }
        }
        Ok(())
    }

    fn log_federation(&mut self) -> Result<()> {
        let record = FederationRecord::new(
            &self.cfg.name,
            self.cfg.digest()?,
            &self.crs,
            self.epoch,
            self.cfg.keys,
            (self.sizes.threshold, self.roster.clients.len()),
            &self.packing,
        );
        self.ledger
            .append(0, EntryBody::Custom(record.to_entry()))?;
        Ok(())
    }

    fn now(&self) -> f64 {
        (self.clock)()
    }

    fn persist_phase(&mut self) -> Result<()> {
        let json = serde_json::to_string(&self.phase)?;
        self.store
            .tx(|tx| store::set_meta(tx, META_PHASE, json.as_bytes()))
    }

    /// Counts a refused message, against `client` too when it is a roster
    /// client (so per-client labels stay bounded by the roster).
    fn refuse(&mut self, client: &str) {
        self.metrics.refused += 1;
        if self.roster.by_id(client).is_some() {
            self.metrics
                .clients
                .entry(client.to_string())
                .or_default()
                .refused += 1;
        }
    }

    /// The per-client counters of a roster client.
    fn client_counters(&mut self, client: &str) -> Option<&mut crate::metrics::ClientCounters> {
        self.roster.by_id(client)?;
        Some(self.metrics.clients.entry(client.to_string()).or_default())
    }

    /// Counts, per client, a finished round's sampled clients that joined
    /// (their update was accepted) or missed it.
    pub(super) fn count_participation(&mut self, sampled: &[String], joined: &[String]) {
        for id in sampled {
            if !joined.contains(id) {
                if let Some(c) = self.client_counters(id) {
                    c.missed += 1;
                }
            }
        }
    }

    /// Admits `client` (enrolled, not revoked) and notes that it was seen.
    fn admit(&mut self, client: &str) -> Result<u64> {
        let party = match self.roster.admit(client) {
            Ok(e) => e.party_id,
            Err(e) => {
                self.refuse(client);
                tracing::warn!(client, reason = %e, "refused message");
                return Err(e);
            }
        };
        let now = self.now();
        if let Some(info) = self.clients.get_mut(client) {
            info.last_seen = now;
        }
        Ok(party)
    }

    /// Counts and logs a refused message from `client` that no check
    /// counted yet (`before` is the refusal count when it arrived), so each
    /// refused message counts exactly once. Errors that are not the
    /// message's fault (storage, not ready) are not refusals.
    fn count_refusal<T>(
        &mut self,
        client: &str,
        what: &str,
        before: u64,
        r: Result<T>,
    ) -> Result<T> {
        if let Err(e) = &r {
            let refusal = matches!(
                e,
                FedError::Protocol(_)
                    | FedError::Unenrolled(_)
                    | FedError::Revoked(_)
                    | FedError::Replay(_)
                    | FedError::Refused(_)
                    | FedError::Crypto(_)
                    | FedError::Ckks(_)
                    | FedError::Encoding(_)
                    | FedError::Verification(_)
            );
            if refusal && self.metrics.refused == before {
                self.refuse(client);
                tracing::warn!(client, reason = %e, "{what} refused");
            }
        }
        r
    }

    fn check_federation(&mut self, client: &str, federation: &str) -> Result<()> {
        if federation != self.cfg.name {
            self.refuse(client);
            tracing::warn!(client, federation, "message for another federation");
            return Err(FedError::Protocol(format!(
                "message for federation {federation:?}, this is {:?}",
                self.cfg.name
            )));
        }
        Ok(())
    }

    /// A client announces itself.
    pub fn join(&mut self, client: &str, req: &JoinRequest) -> Result<JoinReply> {
        let party = self.admit(client)?;
        self.check_federation(client, &req.federation)?;
        let n = req.num_examples.min(1 << 40);
        self.store.tx(|tx| store::upsert_client(tx, client, n))?;
        let now = self.now();
        let info = self
            .clients
            .entry(client.to_string())
            .or_insert(ClientInfo {
                party,
                num_examples: n,
                participations: 0,
                last_seen: now,
                unresponsive: false,
            });
        info.num_examples = n;
        info.last_seen = now;
        tracing::info!(client, party, examples = n, "client joined");
        Ok(JoinReply {
            federation: self.cfg.name.clone(),
            config_digest: self.cfg.digest()?,
            crs: self.crs,
            epoch: self.epoch,
            party_id: party,
            ledger_public_key: self.ledger.public_key(),
            ledger_log_id: self.ledger.log_id(),
        })
    }

    /// A client posts its sealed Shamir dealing: one share to every key
    /// holder but itself (every other client, or the committee).
    pub fn post_key_setup(&mut self, client: &str, post: &KeySetupPost) -> Result<KeySetupBundle> {
        let party = self.admit(client)?;
        self.check_federation(client, &post.federation)?;
        if post.epoch != self.epoch {
            return Err(FedError::Replay(format!(
                "key setup for epoch {}, the current epoch is {}",
                post.epoch, self.epoch
            )));
        }
        if self.cfg.keys != KeysMode::Threshold {
            return Err(FedError::Protocol(
                "key-service mode has no key setup".into(),
            ));
        }
        let dealers = self.store.keysetup_dealers()?;
        let mut expected: Vec<u64> = self.sizes.holder_ids();
        expected.retain(|&p| p != party);
        let mut got: Vec<u64> = post.shares.iter().map(|s| s.to_party).collect();
        got.sort_unstable();
        if got != expected || post.shares.iter().any(|s| s.from_party != party) {
            return Err(FedError::Protocol(
                "a dealing must hold exactly one share from the sender to every other key holder"
                    .into(),
            ));
        }
        let max_len = 64
            + 2 * cipherflow_ckks::multiparty::SharedCiphertext::encoded_len(&self.params)
            + 4096;
        if post.shares.iter().any(|s| s.ciphertext.len() > max_len) {
            return Err(FedError::Protocol("sealed share of the wrong size".into()));
        }
        if dealers.contains(&party) {
            // Idempotent repeat of the same dealing; anything else is a replay.
            let mine: BTreeMap<u64, Vec<u8>> = expected
                .iter()
                .map(|&to| {
                    self.store
                        .keysetup_for(to)
                        .map(|v| v.into_iter().find(|(f, _, _)| *f == party).map(|x| x.2))
                        .map(|c| (to, c.unwrap_or_default()))
                })
                .collect::<Result<_>>()?;
            let same = post
                .shares
                .iter()
                .all(|s| mine.get(&s.to_party) == Some(&s.ciphertext));
            if !same {
                self.refuse(client);
                tracing::warn!(client, "conflicting second key-setup dealing refused");
                return Err(FedError::Replay("this party already dealt".into()));
            }
        } else {
            self.store.tx(|tx| {
                for s in &post.shares {
                    store::insert_keysetup(tx, party, s.to_party, &s.nonce, &s.ciphertext)?;
                }
                Ok(())
            })?;
            tracing::info!(client, party, "key-setup dealing stored");
        }
        if self.phase == Phase::KeySetup
            && self.store.keysetup_dealers()?.len() == self.roster.clients.len()
        {
            self.phase = Phase::Training;
            self.persist_phase()?;
            self.log_key_setup()?;
            tracing::info!("key setup complete");
        }
        self.key_setup_bundle(party)
    }

    /// The ledger index of the key-setup entry, if logged.
    fn key_setup_entry(&self) -> Result<Option<u64>> {
        Ok(self
            .ledger
            .round_entries(0, KIND_CUSTOM)?
            .into_iter()
            .find(|e| matches!(&e.body, EntryBody::Custom(c) if c.kind == KIND_KEY_SETUP))
            .map(|e| e.index))
    }

    /// Logs the completed key setup (CRS, epoch, threshold, parties) unless
    /// the ledger already holds it (a crash between the phase change and
    /// the entry is repaired on start-up).
    fn log_key_setup(&mut self) -> Result<()> {
        if self.cfg.keys != KeysMode::Threshold
            || self.phase == Phase::KeySetup
            || self.key_setup_entry()?.is_some()
        {
            return Ok(());
        }
        let record = KeySetupRecord::new(
            self.epoch,
            &self.crs,
            self.sizes.threshold,
            self.sizes.holder_ids(),
        );
        self.ledger
            .append(0, EntryBody::Custom(record.to_entry()))?;
        Ok(())
    }

    /// The dealing shares addressed to `client`, once every key holder dealt.
    pub fn get_key_setup(&mut self, client: &str, q: &KeySetupQuery) -> Result<KeySetupBundle> {
        let party = self.admit(client)?;
        self.check_federation(client, &q.federation)?;
        if q.epoch != self.epoch {
            return Err(FedError::Replay(format!(
                "epoch {} is not current",
                q.epoch
            )));
        }
        self.key_setup_bundle(party)
    }

    fn key_setup_bundle(&self, party: u64) -> Result<KeySetupBundle> {
        let complete = self.phase != Phase::KeySetup;
        let shares = if complete {
            self.store
                .keysetup_for(party)?
                .into_iter()
                .map(|(from, nonce, ciphertext)| {
                    Ok(SealedShare {
                        from_party: from,
                        to_party: party,
                        nonce: nonce.as_slice().try_into().map_err(|_| {
                            FedError::Integrity("a stored sealed share's nonce".into())
                        })?,
                        ciphertext,
                    })
                })
                .collect::<Result<_>>()?
        } else {
            Vec::new()
        };
        let key_setup_proof = match (complete, self.key_setup_entry()?) {
            (true, Some(i)) => Some(self.ledger.entry_proof(i)?),
            _ => None,
        };
        Ok(KeySetupBundle {
            complete,
            shares,
            key_setup_proof,
        })
    }

    /// What `client` should do now.
    pub fn next_task(&mut self, client: &str, req: &TaskRequest) -> Result<Task> {
        let party = self.admit(client)?;
        self.check_federation(client, &req.federation)?;
        if !self.clients.contains_key(client) {
            return Err(FedError::NotReady("join first".into()));
        }
        let wait = |reason: &str| Task::Wait {
            retry_ms: 200,
            reason: reason.into(),
        };
        match &self.phase {
            Phase::Finished(reason) => Ok(Task::Finished(FinishedTask {
                rounds: self.history.len() as u64,
                model: self.global.clone(),
                reason: reason.clone(),
            })),
            Phase::KeySetup => {
                if self.store.keysetup_dealers()?.contains(&party) {
                    return Ok(wait("waiting for the other key holders' dealings"));
                }
                let parties = self
                    .roster
                    .clients
                    .iter()
                    .map(|c| {
                        Ok(Party {
                            client_id: c.client_id.clone(),
                            party_id: c.party_id,
                            kx_public: parse_public(&c.kx_public)?.to_bytes(),
                        })
                    })
                    .collect::<Result<_>>()?;
                Ok(Task::KeySetup(KeySetupTask {
                    epoch: self.epoch,
                    threshold: self.sizes.threshold as u32,
                    parties,
                }))
            }
            Phase::Training => Ok(self
                .round_task(client, req.known_tree_size)?
                .unwrap_or_else(|| wait("nothing for this client now"))),
        }
    }

    /// The federation phase.
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// Summaries of the closed rounds.
    pub fn history(&self) -> &[RoundSummary] {
        &self.history
    }

    /// The current global model (flat).
    pub fn global_model(&self) -> &[f32] {
        &self.global
    }

    /// The model architecture.
    pub fn model_spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The packing plan.
    pub fn packing(&self) -> &PackingPlan {
        &self.packing
    }

    /// The client-level DP plan, if on.
    pub fn dp_plan(&self) -> Option<&DpPlan> {
        self.dp.as_ref()
    }

    /// The sample-level DP plan, if on.
    pub fn local_dp_plan(&self) -> Option<&LocalDpPlan> {
        self.local_dp.as_ref()
    }

    /// Federation sizes.
    pub fn sizes(&self) -> Sizes {
        self.sizes
    }

    /// The ledger's public key.
    pub fn ledger_public_key(&self) -> PublicKey {
        self.ledger.public_key()
    }

    /// Counters for the metrics endpoint.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The common reference string.
    pub fn crs(&self) -> Crs {
        self.crs
    }

    /// The key epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The packing parameters.
    pub fn params(&self) -> &CkksParams {
        &self.params
    }

    /// Writes the current global model as a safetensors file with its
    /// architecture (what `cipherflow infer` and `cipherflow train --init`
    /// load), atomically.
    pub fn write_model(&mut self, path: &std::path::Path) -> Result<()> {
        training::load_flat(&mut self.model, &self.global)?;
        cipherflow_nn::io::safetensors::save(&self.model, path)?;
        Ok(())
    }

    /// Also writes every closed round's model to
    /// `dir/round-NNNN.safetensors`.
    pub fn save_round_models(&mut self, dir: PathBuf) {
        self.round_models = Some(dir);
    }

    /// The region this is, when it is a regional aggregator's.
    pub fn region_id(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// The current round number, if a round is open.
    pub fn current_round(&self) -> Option<u64> {
        self.round.as_ref().map(|r| r.record.round)
    }

    /// The running encrypted sum of the current round (for tests and audits).
    pub fn running_sum(&self) -> Option<&[SharedCiphertext]> {
        self.round.as_ref().map(|r| r.sum.as_slice())
    }

    /// Revokes a client now (in this coordinator's copy of the roster).
    pub fn revoke(&mut self, client: &str) {
        if !self.roster.is_revoked(client) {
            self.roster.revoked.push(client.to_string());
            tracing::warn!(client, "client revoked");
        }
    }
}
