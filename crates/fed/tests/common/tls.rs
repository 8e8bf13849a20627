//! A federation over real gRPC with mutual TLS on 127.0.0.1: the CA's
//! identities, a coordinator served with them, and clients run by their
//! agents in threads.

use cipherflow_fed::ca::{self, Credentials};
use cipherflow_fed::sim::split_among;
use cipherflow_fed::transport::agent::{run_agent, AgentSummary};
use cipherflow_fed::transport::grpc::{CoordinatorRemote, CoordinatorServer, TlsFiles};
use cipherflow_fed::{real_clock, Coordinator, CoordinatorOptions, FedError, FederationConfig};
use cipherflow_fed::{ClientAgent, ClientOptions, KeysMode, KxSecret, Role, Roster};
use cipherflow_ledger::{LogSigner, PublicKey};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

/// The TLS files of `c`.
pub fn tls(c: &Credentials) -> TlsFiles<'_> {
    TlsFiles {
        ca: &c.ca,
        cert: &c.cert,
        key: &c.key,
    }
}

/// A running coordinator over mutual TLS and its federation's files.
pub struct TlsFederation {
    /// Everything on disk (the CA directory under `pki`).
    pub dir: tempfile::TempDir,
    /// The CA directory.
    pub pki: PathBuf,
    /// The roster.
    pub roster: Roster,
    /// The configuration.
    pub cfg: FederationConfig,
    /// The clients' ids.
    pub names: Vec<String>,
    /// The runtime serving the coordinator.
    pub rt: tokio::runtime::Runtime,
    /// The coordinator's server.
    pub server: CoordinatorServer,
    /// Its URL.
    pub url: String,
}

impl TlsFederation {
    /// `clients` breast-cancer hospitals (`client-1 …`), `rounds` rounds,
    /// per-round accuracy on the test split; the coordinator re-reads the
    /// roster file.
    pub fn start(name: &str, clients: usize, rounds: u64) -> Self {
        Self::with_regions(name, clients, rounds, 0)
    }

    /// As [`TlsFederation::start`], with `regions` regional aggregators in
    /// the CA's roster (`fl ca init --regions`).
    pub fn with_regions(name: &str, clients: usize, rounds: u64, regions: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        let names: Vec<String> = (1..=clients).map(|i| format!("client-{i}")).collect();
        let mut o = ca::CaOptions::new(name, &names);
        o.regions = regions;
        ca::init_with(&pki, &o).unwrap();
        let roster = Roster::load(&pki.join("roster.json")).unwrap();
        let cfg = super::config(name, rounds, "");
        let (_, test) = super::breast_cancer();
        let coord = Coordinator::open(CoordinatorOptions {
            config: cfg.clone(),
            roster: roster.clone(),
            state: dir.path().join("c.db").into(),
            ledger: dir.path().join("l.db"),
            signer: LogSigner::load(&pki.join("ledger.key")).unwrap(),
            eval: Some(test),
            clock: real_clock(),
        })
        .unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = rt
            .block_on(CoordinatorServer::start(
                coord,
                roster.clone(),
                "127.0.0.1:0".parse().unwrap(),
                &tls(&Credentials::under(&pki, "coordinator")),
                None,
                Some(pki.join("roster.json")),
            ))
            .unwrap();
        let url = format!("https://{}", server.addr);
        Self {
            dir,
            pki,
            roster,
            cfg,
            names,
            rt,
            server,
            url,
        }
    }

    /// Runs every client to the end in its own thread, on a Dirichlet
    /// (α = 0.5) split of the training data, client `id` saving its state
    /// at `state(id)`.
    pub fn run_clients(
        &self,
        state: impl Fn(&Path, &str) -> PathBuf,
    ) -> Vec<JoinHandle<Result<AgentSummary, FedError>>> {
        let (train, _) = super::breast_cancer();
        let parts = split_among(&train, self.names.len(), Some(0.5), 1).unwrap();
        let ledger_key = PublicKey::load(&self.pki.join("ledger.pub")).unwrap();
        parts
            .into_iter()
            .zip(self.names.clone())
            .map(|(data, id)| {
                let (pki, url) = (self.pki.clone(), self.url.clone());
                let (roster, cfg) = (self.roster.clone(), self.cfg.clone());
                let state = state(&pki, &id);
                std::thread::spawn(move || {
                    let cdir = pki.join("clients").join(&id);
                    let pin = roster.server_pin(Role::Coordinator)?;
                    let mut agent = ClientAgent::new(ClientOptions {
                        client_id: id.clone(),
                        kx: Some(KxSecret::load(&cdir.join("kx.key"))?),
                        roster,
                        config: cfg,
                        data,
                        state: Some(state),
                        ledger_key: Some(ledger_key),
                        synthetic: false,
                    })?;
                    let c = Credentials::under(&pki, &id);
                    let mut remote = CoordinatorRemote::connect(&url, &tls(&c), &pin)?;
                    run_agent(
                        &mut agent,
                        &mut remote,
                        None,
                        KeysMode::Threshold,
                        Duration::from_secs(60),
                    )
                })
            })
            .collect()
    }
}
