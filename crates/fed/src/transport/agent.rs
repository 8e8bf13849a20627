//! The client's main loop over any transport: join, (enroll,) deal, then
//! act on tasks until the federation finishes, retrying through
//! coordinator restarts and network errors, and verifying after every
//! round that its update was counted.

use crate::client::{Action, ClientAgent};
use crate::config::KeysMode;
use crate::error::{FedError, Result};
use crate::messages::{
    EnrollReply, EnrollRequest, JoinReply, JoinRequest, KeySetupBundle, KeySetupPost,
    KeySetupQuery, ProofReply, ProofRequest, ShareChunk, ShareReceipt, Task, TaskRequest,
    UploadChunk, UploadReceipt,
};
use serde::Serialize;
use std::time::{Duration, Instant};

/// The coordinator as a client sees it.
pub trait CoordinatorApi {
    /// Join.
    fn join(&mut self, r: &JoinRequest) -> Result<JoinReply>;
    /// Post a key-setup dealing.
    fn post_key_setup(&mut self, r: &KeySetupPost) -> Result<KeySetupBundle>;
    /// Poll the key setup.
    fn get_key_setup(&mut self, r: &KeySetupQuery) -> Result<KeySetupBundle>;
    /// Long-poll for a task. A task that does not convert (a malformed
    /// message) is an error of the call.
    fn next_task(&mut self, r: &TaskRequest) -> Result<Task>;
    /// Stream an update.
    fn upload(&mut self, chunks: Vec<UploadChunk>) -> Result<UploadReceipt>;
    /// Stream a decryption share.
    fn send_share(&mut self, parts: Vec<ShareChunk>) -> Result<ShareReceipt>;
    /// "My update was counted" proof.
    fn counted_proof(&mut self, r: &ProofRequest) -> Result<ProofReply>;
}

/// A client of a region: uploads go to its regional aggregator, every
/// other call to the coordinator.
pub struct ThroughRegion<'a> {
    /// The coordinator.
    pub coordinator: &'a mut dyn CoordinatorApi,
    /// The client's regional aggregator.
    pub region: &'a mut dyn CoordinatorApi,
}

impl CoordinatorApi for ThroughRegion<'_> {
    fn join(&mut self, r: &JoinRequest) -> Result<JoinReply> {
        self.coordinator.join(r)
    }
    fn post_key_setup(&mut self, r: &KeySetupPost) -> Result<KeySetupBundle> {
        self.coordinator.post_key_setup(r)
    }
    fn get_key_setup(&mut self, r: &KeySetupQuery) -> Result<KeySetupBundle> {
        self.coordinator.get_key_setup(r)
    }
    fn next_task(&mut self, r: &TaskRequest) -> Result<Task> {
        self.coordinator.next_task(r)
    }
    fn upload(&mut self, chunks: Vec<UploadChunk>) -> Result<UploadReceipt> {
        self.region.upload(chunks)
    }
    fn send_share(&mut self, parts: Vec<ShareChunk>) -> Result<ShareReceipt> {
        self.coordinator.send_share(parts)
    }
    fn counted_proof(&mut self, r: &ProofRequest) -> Result<ProofReply> {
        self.coordinator.counted_proof(r)
    }
}

/// The key service as a client sees it.
pub trait KeyServiceApi {
    /// Get this client's key share.
    fn enroll(&mut self, r: &EnrollRequest) -> Result<EnrollReply>;
}

/// What a client did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AgentSummary {
    /// Updates uploaded.
    pub uploads: u64,
    /// Decryption shares sent.
    pub shares: u64,
    /// Counted proofs verified.
    pub counted_proofs: u64,
    /// Tasks refused (e.g. an aggregate below the quorum).
    pub refused: u64,
    /// Transport errors retried.
    pub retries: u64,
    /// What an emulated bad network did (`fl client --shape`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shaped: Option<super::shape::ShapeCounts>,
    /// Why the federation finished.
    pub finished: String,
    /// Seconds.
    pub seconds: f64,
}

fn transient(e: &FedError) -> bool {
    matches!(e, FedError::Transport(_) | FedError::NotReady(_))
}

/// Tracks how long this client's own storage has been failing (its state
/// file could not be written, e.g. a full disk): the action is retried —
/// nothing was sent — until `patience` runs out.
#[derive(Default)]
struct LocalFailures {
    since: Option<Instant>,
}

impl LocalFailures {
    /// `Ok(())` to retry after a pause, or the error once patience ran out.
    fn retry_or_fail(&mut self, e: FedError, patience: Duration) -> Result<()> {
        let since = *self.since.get_or_insert_with(Instant::now);
        if since.elapsed() >= patience {
            tracing::error!(error = %e, "local storage still failing: giving up");
            return Err(e);
        }
        tracing::error!(error = %e, "local storage failure: nothing sent; retrying");
        std::thread::sleep(Duration::from_millis(500));
        Ok(())
    }

    fn ok(&mut self) {
        self.since = None;
    }
}

/// Retries `f` on transport errors (coordinator restarting) for up to `patience`.
fn retry<T>(
    summary: &mut AgentSummary,
    patience: Duration,
    mut f: impl FnMut() -> Result<T>,
) -> Result<T> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        match f() {
            Err(e) if transient(&e) && start.elapsed() < patience => {
                summary.retries += 1;
                tracing::debug!(error = %e, "retrying");
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

/// Runs `agent` against `coord` until the federation finishes. Transport
/// errors are retried for `patience` each (long enough to ride out a
/// coordinator restart).
pub fn run_agent(
    agent: &mut ClientAgent,
    coord: &mut dyn CoordinatorApi,
    mut kms: Option<&mut dyn KeyServiceApi>,
    keys: KeysMode,
    patience: Duration,
) -> Result<AgentSummary> {
    let start = Instant::now();
    let mut s = AgentSummary::default();
    let join = agent.join_request();
    // A failure of this client's own storage (its state file, where the
    // pinned CRS and key go) is retried until `patience` runs out: joining
    // and enrolling again are harmless.
    let mut local = LocalFailures::default();
    let reply = loop {
        let reply = retry(&mut s, patience, || coord.join(&join))?;
        match agent.on_join(&reply) {
            Ok(()) => break reply,
            Err(e @ FedError::Io { .. }) => local.retry_or_fail(e, patience)?,
            Err(e) => return Err(e),
        }
    };
    local.ok();
    if keys == KeysMode::KeyService && !agent.has_keys() {
        let kms = kms
            .as_mut()
            .ok_or_else(|| FedError::Config("key-service mode needs the key service".into()))?;
        let req = EnrollRequest {
            federation: reply.federation.clone(),
        };
        loop {
            let r = retry(&mut s, patience, || kms.enroll(&req))?;
            match agent.on_enroll(r) {
                Ok(()) => break,
                Err(e @ FedError::Io { .. }) => local.retry_or_fail(e, patience)?,
                Err(e) => return Err(e),
            }
        }
        local.ok();
    }
    let mut posted = false;
    let mut closed_round = 0u64;
    loop {
        if keys == KeysMode::Threshold && (posted || agent.has_key_share()) && !agent.has_keys() {
            let q = agent.key_setup_query();
            let b = retry(&mut s, patience, || coord.get_key_setup(&q))?;
            match agent.on_key_setup(&b) {
                Ok(true) => local.ok(),
                // Not complete: ask for a task, which is the key setup again
                // if the coordinator never got this client's dealing (its
                // write failed, or the client's did before it was posted).
                Ok(false) => {}
                Err(e @ FedError::Io { .. }) => {
                    local.retry_or_fail(e, patience)?;
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        while let Some(req) = agent.proof_request(closed_round) {
            match retry(&mut s, patience, || coord.counted_proof(&req)) {
                Ok(reply) => {
                    let c = agent.on_counted_proof(&reply)?;
                    tracing::info!(
                        round = c.round,
                        inputs = c.input_count,
                        "my update was counted"
                    );
                    s.counted_proofs += 1;
                }
                Err(e) => {
                    tracing::warn!(round = req.round, error = %e, "no proof that my update was counted");
                    agent.forget_unverified(req.round);
                }
            }
        }
        let treq = TaskRequest {
            federation: reply.federation.clone(),
            wait_ms: 2000,
            known_tree_size: agent.known_tree_size(),
        };
        // A malformed task is refused like a task the agent's checks
        // refuse: the coordinator may answer better on the next poll.
        let task = match retry(&mut s, patience, || coord.next_task(&treq)) {
            Ok(t) => t,
            Err(e @ FedError::Malformed(_)) => {
                tracing::warn!(error = %e, "task refused");
                s.refused += 1;
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            Err(e) => return Err(e),
        };
        if let Task::Train(t) = &task {
            closed_round = closed_round.max(t.round.saturating_sub(1));
        }
        let action = match agent.handle(&task) {
            Ok(a) => a,
            Err(e @ (FedError::Refused(_) | FedError::Protocol(_))) => {
                tracing::warn!(error = %e, "task refused");
                s.refused += 1;
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            Err(e) if transient(&e) => {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            Err(e @ FedError::Io { .. }) => {
                local.retry_or_fail(e, patience)?;
                continue;
            }
            Err(e) => return Err(e),
        };
        local.ok();
        match action {
            Action::PostKeySetup(post) => {
                retry(&mut s, patience, || coord.post_key_setup(&post))?;
                posted = true;
            }
            Action::Upload(chunks) => {
                let receipt = retry(&mut s, patience, || coord.upload(chunks.clone()))?;
                agent.on_receipt(&receipt)?;
                s.uploads += 1;
            }
            Action::Share(parts) => {
                let ready = parts.iter().all(|p| p.ready);
                match retry(&mut s, patience, || coord.send_share(parts.clone())) {
                    Ok(_) if ready => {}
                    Ok(_) => s.shares += 1,
                    Err(e) => {
                        tracing::warn!(error = %e, "decryption share not accepted");
                        s.refused += 1;
                    }
                }
            }
            Action::Wait(ms) => std::thread::sleep(Duration::from_millis(u64::from(ms.min(100)))),
            Action::Finished(f) => {
                closed_round = u64::MAX;
                // The last proofs are retried too (a lost request or reply
                // must not cost the proof), but not for the whole patience:
                // a finished coordinator does not wait for ever.
                let last_patience = patience.min(Duration::from_secs(10));
                while let Some(req) = agent.proof_request(closed_round) {
                    match retry(&mut s, last_patience, || coord.counted_proof(&req)) {
                        Ok(reply) => {
                            agent.on_counted_proof(&reply)?;
                            s.counted_proofs += 1;
                        }
                        Err(_) => agent.forget_unverified(req.round),
                    }
                }
                s.finished = f.reason;
                break;
            }
        }
    }
    s.seconds = start.elapsed().as_secs_f64();
    Ok(s)
}
