//! Regional aggregators in a simulation: each with its own state and
//! signed ledger, opened on the coordinator's rounds, taking its clients'
//! uploads and forwarding its sealed sum.

use crate::client::ClientAgent;
use crate::config::FederationConfig;
use crate::coordinator::{Clock, Coordinator, CoordinatorOptions, RegionalAggregator};
use crate::error::{FedError, Result};
use crate::messages::UploadChunk;
use crate::roster::{RegionEntry, Roster};
use crate::store::StateLocation;
use crate::transport::inproc::roundtrip;
use cipherflow_ledger::{verify_log, LogSigner, PublicKey, VerifyOptions};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Assigns the roster's clients to `k` regions `region-1 … region-k`
/// (client `i` to region `i mod k`) with fresh ledger keys; returns the
/// regions' signers.
pub fn assign_regions(roster: &mut Roster, k: usize) -> Result<Vec<LogSigner>> {
    if k == 0 || k > roster.clients.len() {
        return Err(FedError::Config(format!(
            "regions must be 1..={} (one client at least in each)",
            roster.clients.len()
        )));
    }
    let signers = (0..k)
        .map(|_| LogSigner::generate().map_err(FedError::from))
        .collect::<Result<Vec<_>>>()?;
    roster.regions = signers
        .iter()
        .enumerate()
        .map(|(j, s)| RegionEntry {
            region_id: format!("region-{}", j + 1),
            ledger_key: s.public_key().to_hex(),
            server_name: None,
            server_cert_sha256: None,
            client_cert_sha256: None,
        })
        .collect();
    for (i, c) in roster.clients.iter_mut().enumerate() {
        c.region = Some(format!("region-{}", i % k + 1));
    }
    Ok(signers)
}

/// A region's state beside the coordinator's: a SQLite file in its own
/// directory, or its own schema in the coordinator's Postgres database.
fn region_state(top: Option<&StateLocation>, dir: &Path, j: usize) -> StateLocation {
    match top {
        Some(StateLocation::Postgres { url, schema, ca }) => StateLocation::Postgres {
            url: url.clone(),
            schema: Some(format!(
                "{}_region_{j}",
                schema.as_deref().unwrap_or("cipherflow")
            )),
            ca: ca.clone(),
        },
        _ => dir.join("region.db").into(),
    }
}

/// The simulation's regions.
pub(super) struct Regions {
    aggs: Vec<RegionalAggregator>,
    ledgers: Vec<(PathBuf, PublicKey)>,
    /// Milliseconds and uploads of every regional batch.
    pub(super) timings: Vec<(f64, usize)>,
    /// Milliseconds of every regional sum the coordinator accepted
    /// (counted as no uploads).
    pub(super) top_timings: Vec<(f64, usize)>,
    /// Regional sums accepted.
    pub(super) forwarded: usize,
}

impl Regions {
    /// Opens every region of `roster` under `dir/region-J`.
    pub(super) fn open(
        config: &FederationConfig,
        roster: &Roster,
        signers: Vec<LogSigner>,
        top: &Coordinator,
        dir: &Path,
        state: Option<&StateLocation>,
        clock: &dyn Fn() -> Clock,
    ) -> Result<Self> {
        let mut aggs = Vec::new();
        let mut ledgers = Vec::new();
        for (j, (r, signer)) in roster.regions.iter().zip(signers).enumerate() {
            let d = dir.join(&r.region_id);
            std::fs::create_dir_all(&d).map_err(|e| FedError::io(&d, e))?;
            let ledger = d.join("ledger.db");
            let key = signer.public_key();
            aggs.push(RegionalAggregator::open(
                CoordinatorOptions {
                    config: config.clone(),
                    roster: roster.clone(),
                    state: region_state(state, &d, j + 1),
                    ledger: ledger.clone(),
                    signer,
                    eval: None,
                    clock: clock(),
                },
                &r.region_id,
                top.crs(),
                top.epoch(),
            )?);
            ledgers.push((ledger, key));
        }
        Ok(Self {
            aggs,
            ledgers,
            timings: Vec::new(),
            top_timings: Vec::new(),
            forwarded: 0,
        })
    }

    fn index_of(&self, roster: &Roster, client: &str) -> Option<usize> {
        let r = roster.region_of(client)?;
        self.aggs.iter().position(|a| a.id() == r.region_id)
    }

    /// Opens the coordinator's collecting round in every region with
    /// sampled clients.
    pub(super) fn follow(&mut self, top: &Coordinator) -> Result<()> {
        for a in &mut self.aggs {
            if let Some(task) = top.region_round(a.id()) {
                if !task.sampled.is_empty() && a.current_round() != Some(task.round) {
                    a.open_round(&task)?;
                }
            }
        }
        Ok(())
    }

    /// Hands each region its clients' pending uploads as one batch, and
    /// the receipts to the clients (the regions first follow the
    /// coordinator: a round may have opened since they last did).
    pub(super) fn flush(
        &mut self,
        top: &Coordinator,
        roster: &Roster,
        clients: &mut [ClientAgent],
        pending: &mut Vec<(usize, Vec<UploadChunk>)>,
    ) -> Result<()> {
        self.follow(top)?;
        let all = std::mem::take(pending);
        for j in 0..self.aggs.len() {
            let part: Vec<&(usize, Vec<UploadChunk>)> = all
                .iter()
                .filter(|(i, _)| {
                    clients.get(*i).and_then(|c| self.index_of(roster, c.id())) == Some(j)
                })
                .collect();
            if part.is_empty() {
                continue;
            }
            let items: Vec<(&str, &[UploadChunk])> = part
                .iter()
                .map(|(i, ch)| (clients.get(*i).map_or("", |c| c.id()), ch.as_slice()))
                .collect();
            let Some(agg) = self.aggs.get_mut(j) else {
                continue;
            };
            let started = Instant::now();
            let results = agg.upload_batch(&items)?;
            self.timings
                .push((started.elapsed().as_secs_f64() * 1e3, part.len()));
            for ((i, _), r) in part.iter().zip(results) {
                let receipt = roundtrip(r?)?;
                if let Some(c) = clients.get_mut(*i) {
                    c.on_receipt(&receipt)?;
                }
            }
        }
        Ok(())
    }

    /// Ticks every region and forwards each sealed sum to the coordinator;
    /// whether any was forwarded.
    pub(super) fn forward(&mut self, top: &mut Coordinator) -> Result<bool> {
        let mut any = false;
        for a in &mut self.aggs {
            a.tick()?;
            let Some(sum) = a.sealed_sum()? else {
                continue;
            };
            let started = Instant::now();
            match top.regional_sum(a.id(), &sum) {
                Ok(_) => {
                    self.top_timings
                        .push((started.elapsed().as_secs_f64() * 1e3, 0));
                    self.forwarded += 1;
                    any = true;
                }
                // The coordinator moved on (its round ended): the sum is
                // dropped with the region's round.
                Err(FedError::Replay(why)) => {
                    tracing::warn!(region = a.id(), %why, "regional sum too late");
                }
                Err(e) => return Err(e),
            }
            a.close_round(sum.round)?;
        }
        Ok(any)
    }

    /// Uploads the regions accepted.
    pub(super) fn uploads(&self) -> usize {
        self.timings.iter().map(|t| t.1).sum()
    }

    /// Bytes of the clients' uploads the regions accepted.
    pub(super) fn upload_bytes(&self) -> u64 {
        self.aggs.iter().map(|a| a.metrics().upload_bytes).sum()
    }

    /// Verifies every region's ledger offline; "verified" or the failure.
    pub(super) fn verify(self) -> String {
        let ledgers = self.ledgers;
        drop(self.aggs);
        for (path, key) in &ledgers {
            if let Err(f) = verify_log(path, key, &VerifyOptions::default()) {
                return format!("failed: {}: {f}", path.display());
            }
        }
        "verified".into()
    }
}
