//! A regional aggregator as its own process: a gRPC server for its
//! clients' uploads (the coordinator's upload path: every check, group
//! commit, its own state and signed ledger) and a link to the coordinator,
//! which it polls for the round to collect and to which it forwards each
//! round's sealed sum with its ledger's proof.
//!
//! The region dials the coordinator with its *client* certificate (the
//! coordinator takes regional sums from the roster's region certificates
//! only) and pins the coordinator's server certificate; its clients dial
//! the region by the server name and pin the fingerprint the roster gives
//! for it ([`Roster::region_pin`]). A region learns nothing a coordinator
//! does not: it sums ciphertexts.

use super::grpc::{self, CoordinatorServer, Reopen, TlsFiles, MAX_MESSAGE_BYTES};
use crate::coordinator::{CoordinatorOptions, RegionalAggregator};
use crate::error::{FedError, Result};
use crate::messages::{RegionPoll, RegionStatus, RegionalSum, RegionalSumReceipt};
use crate::proto::coordinator_client::CoordinatorClient;
use crate::roster::{Role, ServerPin};
use cipherflow_ckks::multiparty::Crs;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// The coordinator as a regional aggregator calls it.
pub struct CoordinatorLink {
    client: CoordinatorClient<Channel>,
    pin: ServerPin,
    federation: String,
}

impl CoordinatorLink {
    /// Connects (lazily; call inside a Tokio runtime) to the coordinator at
    /// `url`, which must prove `pin`, with the region's client credentials.
    pub fn connect(
        url: &str,
        tls: &TlsFiles<'_>,
        pin: &ServerPin,
        federation: &str,
    ) -> Result<Self> {
        let ch = grpc::channel(url, tls, pin)?;
        Ok(Self {
            client: CoordinatorClient::new(ch)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            pin: pin.clone(),
            federation: federation.to_string(),
        })
    }

    /// What the coordinator wants of this region now.
    pub async fn poll(&self) -> Result<RegionStatus> {
        let req = RegionPoll {
            federation: self.federation.clone(),
        };
        let reply = self
            .client
            .clone()
            .region_poll(crate::proto::RegionPoll::from(req))
            .await
            .map_err(|s| grpc::from_call(&self.pin, s))?;
        grpc::received(reply)
    }

    /// Forwards a sealed sum.
    pub async fn submit(&self, sum: RegionalSum) -> Result<RegionalSumReceipt> {
        let reply = self
            .client
            .clone()
            .submit_regional_sum(crate::proto::RegionalSum::from(sum))
            .await
            .map_err(|s| grpc::from_call(&self.pin, s))?;
        grpc::received(reply)
    }
}

/// A regional aggregator process: how to open its state, where it
/// listens, how it reaches the coordinator.
pub struct RegionProcess<'a> {
    /// The region's id (the roster lists it).
    pub region: String,
    /// Opens the region's coordinator options (configuration, roster,
    /// state, ledger and its signer) — now, and again after a storage
    /// failure.
    pub options: Box<dyn Fn() -> Result<CoordinatorOptions> + Send + Sync>,
    /// Listen address for its clients.
    pub listen: SocketAddr,
    /// Its server credentials (the certificate its clients pin).
    pub server_tls: TlsFiles<'a>,
    /// Its client credentials (with which it calls the coordinator).
    pub client_tls: TlsFiles<'a>,
    /// The coordinator's URL.
    pub coordinator: String,
    /// The roster file, re-read for revocations.
    pub roster_file: Option<std::path::PathBuf>,
    /// How long to keep retrying an unreachable coordinator.
    pub patience: Duration,
    /// Where to serve /metrics, /healthz and /readyz (plain HTTP) once the
    /// region serves (a probe that waits for it is a startup probe).
    pub metrics: Option<SocketAddr>,
}

/// What a regional aggregator did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RegionSummary {
    /// The region's id.
    pub region: String,
    /// The address it served on.
    pub addr: String,
    /// Rounds it collected and forwarded.
    pub forwarded: u64,
    /// Uploads it accepted.
    pub uploads: u64,
    /// Sums the coordinator refused as late (its round had ended).
    pub late: u64,
    /// Why the federation finished.
    pub finished: String,
}

/// Polls until the coordinator's key setup is done (the region's state
/// needs the key epoch) or the federation finished.
async fn await_keys(
    link: &CoordinatorLink,
    patience: Duration,
) -> Result<std::result::Result<(Crs, u64), String>> {
    let mut unreachable_since: Option<Instant> = None;
    loop {
        match link.poll().await {
            Ok(RegionStatus {
                finished: Some(why),
                ..
            }) => return Ok(Err(why)),
            Ok(RegionStatus { keys: Some(k), .. }) => return Ok(Ok(k)),
            Ok(_) => unreachable_since = None,
            Err(e) if is_transient(&e) => {
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= patience {
                    return Err(e);
                }
                tracing::debug!(error = %e, "coordinator not reachable yet");
            }
            Err(e) => return Err(e),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn is_transient(e: &FedError) -> bool {
    matches!(e, FedError::Transport(_) | FedError::NotReady(_))
}

/// Runs region `p` until the federation finishes: waits for the key
/// setup, serves its clients' uploads, opens each round the coordinator
/// opens for it, forwards each sealed sum and closes the round once the
/// coordinator took it. `on_start` is told the address it serves on.
pub async fn run_region(
    p: RegionProcess<'_>,
    on_start: impl FnOnce(SocketAddr),
) -> Result<RegionSummary> {
    let opts = (p.options)()?;
    let pin = opts.roster.server_pin(Role::Coordinator)?;
    let link = CoordinatorLink::connect(&p.coordinator, &p.client_tls, &pin, &opts.config.name)?;
    let (crs, epoch) = match await_keys(&link, p.patience).await? {
        Ok(k) => k,
        Err(why) => {
            return Ok(RegionSummary {
                region: p.region,
                finished: why,
                ..RegionSummary::default()
            })
        }
    };
    let roster = opts.roster.clone();
    let agg = RegionalAggregator::open(opts, &p.region, crs, epoch)?;
    let server = CoordinatorServer::start(
        agg.into_coordinator(),
        roster,
        p.listen,
        &p.server_tls,
        None,
        p.roster_file.clone(),
    )
    .await?;
    let reopen: Reopen = {
        let (options, region) = (p.options, p.region.clone());
        Box::new(move || {
            RegionalAggregator::open(options()?, &region, crs, epoch)
                .map(RegionalAggregator::into_coordinator)
        })
    };
    server.recover_with(reopen);
    if let Some(m) = p.metrics {
        let listener = super::metrics::bind(m).await?;
        let handle = server.handle();
        tokio::spawn(async move {
            if let Err(e) = super::metrics::serve(listener, handle).await {
                tracing::error!(%e, "metrics endpoint stopped");
            }
        });
    }
    on_start(server.addr);
    tracing::info!(region = %p.region, addr = %server.addr, "regional aggregator serving");
    let mut s = RegionSummary {
        region: p.region.clone(),
        addr: server.addr.to_string(),
        ..RegionSummary::default()
    };
    let mut unreachable_since: Option<Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let status = match link.poll().await {
            Ok(st) => {
                unreachable_since = None;
                st
            }
            Err(e) if is_transient(&e) => {
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= p.patience {
                    return Err(e);
                }
                tracing::debug!(error = %e, "coordinator not reachable; retrying");
                continue;
            }
            Err(e) => return Err(e),
        };
        if let Some(why) = status.finished {
            s.finished = why;
            break;
        }
        if let Some(task) = status.round.filter(|t| !t.sampled.is_empty()) {
            if let Err(e) = server.with(|c| c.region_open_round(&task))? {
                tracing::warn!(round = task.round, error = %e, "round not opened here");
            }
        }
        let Some(sum) = server.with(|c| c.region_sealed_sum())?? else {
            continue;
        };
        let round = sum.round;
        match link.submit(sum).await {
            Ok(_) => {
                s.forwarded += 1;
                tracing::info!(region = %p.region, round, "regional sum forwarded");
            }
            // The coordinator's round ended without it: dropped with the
            // region's round.
            Err(FedError::Replay(why)) => {
                s.late += 1;
                tracing::warn!(region = %p.region, round, %why, "regional sum too late");
            }
            Err(e) if is_transient(&e) => {
                tracing::debug!(error = %e, "sum not forwarded yet; retrying");
                continue;
            }
            Err(e) => return Err(e),
        }
        server.with(|c| c.region_close_round(round))??;
    }
    s.uploads = server.with(|c| c.metrics().uploads)?;
    server.stop().await?;
    Ok(s)
}
