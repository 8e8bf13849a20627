//! Shared helpers of the federated tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use cipherflow_fed::FederationConfig;
use cipherflow_nn::data::{load_breast_cancer, load_digits, Dataset, Standardizer};
use std::path::Path;

/// Appends the opening of rounds `1..=last` to `log` (no participants, no
/// DP): a log in which a test may then forge updates and aggregates.
pub fn open_rounds(log: &mut cipherflow_ledger::Ledger, last: u64) {
    use cipherflow_ledger::entry::{DpSettings, EntryBody, RoundOpened};
    for r in 1..=last {
        log.append(
            r,
            EntryBody::RoundOpened(RoundOpened {
                parameters: Default::default(),
                participants: Vec::new(),
                dp: DpSettings::no_dp(1.0, r),
            }),
        )
        .unwrap();
    }
}

/// The proof of round 1's opening in a new log named `name`, signed by
/// `key`.
pub fn opened_round_proof(
    name: &str,
    key: cipherflow_ledger::LogSigner,
) -> cipherflow_ledger::EntryProof {
    let dir = tempfile::tempdir().unwrap();
    let mut log = cipherflow_ledger::Ledger::create(&dir.path().join("log.db"), name, key).unwrap();
    open_rounds(&mut log, 1);
    log.entry_proof(log.len() - 1).unwrap()
}

/// The shipped breast-cancer data, standardised on the train split.
pub fn breast_cancer() -> (Dataset, Dataset) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/breast_cancer.csv");
    let d = load_breast_cancer(&path).unwrap();
    let (mut train, mut test) = d.split(0.2, 7).unwrap();
    let s = Standardizer::fit(&train).unwrap();
    s.apply(&mut train).unwrap();
    s.apply(&mut test).unwrap();
    (train, test)
}

/// The shipped 8×8 digits data (pixels scaled to [0, 1]), split 80/20.
pub fn digits() -> (Dataset, Dataset) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/digits.csv.gz");
    load_digits(&path).unwrap().split(0.2, 7).unwrap()
}

/// A breast-cancer federation configuration (logistic regression).
pub fn config(name: &str, rounds: u64, extra: &str) -> FederationConfig {
    FederationConfig::parse(&format!(
        "name = \"{name}\"\nrounds = {rounds}\nmodel = \"logreg\"\ninput = [30]\nclasses = 2\n\
         round_timeout_s = 5\n{extra}\n[training]\nepochs = 2\nbatch_size = 16\nlr = 0.1\n"
    ))
    .unwrap()
}

/// The environment variable naming a Postgres server for the state tests
/// (`scripts/test` starts a throwaway cluster and sets it).
pub const PG_ENV: &str = "CIPHERFLOW_TEST_POSTGRES";

/// The Postgres server of the state tests, or `None` (and a line saying
/// the Postgres case of `name` is skipped).
pub fn postgres_url(name: &str) -> Option<String> {
    match std::env::var(PG_ENV) {
        Ok(url) => Some(url),
        Err(_) => {
            eprintln!("{PG_ENV} is not set: the Postgres case of {name} is skipped");
            None
        }
    }
}

/// A fresh (emptied) schema of the test server as a coordinator state.
pub fn fresh_postgres_state(url: &str, schema: &str) -> cipherflow_fed::StateLocation {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .unwrap();
    cipherflow_fed::StateLocation::Postgres {
        url: url.to_string(),
        schema: Some(schema.to_string()),
        ca: None,
    }
}

/// Runs SQL in a Postgres state's schema (a test playing the operator's
/// accident); returns the rows' first column as text.
pub fn pg_exec(state: &cipherflow_fed::StateLocation, sql: &str) -> Vec<String> {
    let cipherflow_fed::StateLocation::Postgres { url, schema, .. } = state else {
        panic!("not a Postgres state");
    };
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    if let Some(s) = schema {
        c.batch_execute(&format!("SET search_path = {s}")).unwrap();
    }
    c.query(sql, &[])
        .unwrap()
        .iter()
        .filter_map(|r| r.try_get::<_, String>(0).ok())
        .collect()
}

/// Where a harness federation's coordinator keeps its payload files:
/// beside a SQLite state, beside the ledger with Postgres.
pub fn payload_dir(fed: &harness::Fed) -> std::path::PathBuf {
    match &fed.state {
        cipherflow_fed::StateLocation::Sqlite(_) => fed.dir.path().join("coord/state.blobs"),
        cipherflow_fed::StateLocation::Postgres { .. } => fed.dir.path().join("coord/payloads"),
    }
}

/// An in-process federation driven message by message, so that a test can
/// play the coordinator, a key holder or the operator between steps.
pub mod tls;

pub mod harness {
    use cipherflow_fed::messages;
    use cipherflow_fed::sim::{make_roster, split_among, ManualClock};
    use cipherflow_fed::FederationConfig;
    use cipherflow_fed::Roster;
    use cipherflow_fed::StateLocation;
    use cipherflow_fed::{Action, ClientAgent, ClientOptions};
    use cipherflow_fed::{Coordinator, CoordinatorOptions};
    use cipherflow_ledger::LogSigner;
    use std::cell::RefCell;
    use std::path::PathBuf;

    thread_local! {
        /// While [`on_both`] runs its Postgres case: the server, the
        /// schema prefix, and how many federations were made.
        static POSTGRES: RefCell<Option<(String, String, usize)>> = const { RefCell::new(None) };
    }

    /// Runs `f` with every [`Fed`] it makes on SQLite, then — when the
    /// test server is given ([`super::PG_ENV`]) — again on Postgres, each
    /// federation in a fresh schema: the same state tests on both.
    pub fn on_both(name: &str, f: impl Fn()) {
        f();
        on_postgres(name, f);
    }

    /// Runs `f` with every [`Fed`] it makes on Postgres (a fresh schema
    /// each), when the test server is given; else says it is skipped.
    pub fn on_postgres(name: &str, f: impl Fn()) {
        if let Some(url) = super::postgres_url(name) {
            let prefix = format!("t_{}_{}", name.replace('-', "_"), std::process::id());
            POSTGRES.with(|p| *p.borrow_mut() = Some((url, prefix, 0)));
            f();
            POSTGRES.with(|p| *p.borrow_mut() = None);
        }
    }

    /// The state of a new federation: SQLite under `dir`, or a fresh
    /// Postgres schema inside [`on_both`]'s Postgres case.
    fn new_state(dir: &std::path::Path) -> StateLocation {
        let pg = POSTGRES.with(|p| {
            p.borrow_mut().as_mut().map(|(url, prefix, k)| {
                *k += 1;
                (url.clone(), format!("{prefix}_{k}"))
            })
        });
        match pg {
            Some((url, schema)) => super::fresh_postgres_state(&url, &schema),
            None => dir.join("coord/state.db").into(),
        }
    }

    /// A coordinator, its clients (with state files), a manual clock.
    pub struct Fed {
        pub coord: Coordinator,
        pub clients: Vec<ClientAgent>,
        pub clock: ManualClock,
        pub cfg: FederationConfig,
        pub roster: Roster,
        pub dir: tempfile::TempDir,
        /// The coordinator's state (SQLite under `dir`, or Postgres).
        pub state: StateLocation,
        /// Each region's state (as `state`), region 1 first.
        pub region_states: Vec<StateLocation>,
    }

    /// The ledger signing key of every harness federation (tests only).
    pub fn signer() -> LogSigner {
        LogSigner::from_seed(&[7; 32])
    }

    /// The ledger signing key of region `j` (tests only).
    pub fn region_signer(j: usize) -> LogSigner {
        LogSigner::from_seed(&[10 + j as u8; 32])
    }

    impl Fed {
        /// `n` breast-cancer clients, threshold `t`, quorum `n`, key setup done.
        pub fn new(name: &str, n: usize, t: usize, rounds: u64) -> Self {
            let cfg = super::config(
                name,
                rounds,
                &format!("threshold = {t}\nquorum = {n}\ndecrypt_attempts = 4"),
            );
            Self::with_config(cfg, n)
        }

        /// `n` clients of `cfg`, key setup done.
        pub fn with_config(cfg: FederationConfig, n: usize) -> Self {
            let mut fed = Self::unjoined(cfg, n);
            fed.join_all();
            fed.key_setup();
            fed
        }

        /// `n` clients of `cfg`, none joined yet.
        pub fn unjoined(cfg: FederationConfig, n: usize) -> Self {
            Self::unjoined_keeping_kx(cfg, n).0
        }

        /// As [`Fed::unjoined`], and a copy of every client's key-agreement
        /// secret (for tests that play a malicious client).
        pub fn unjoined_keeping_kx(
            cfg: FederationConfig,
            n: usize,
        ) -> (Self, Vec<cipherflow_fed::KxSecret>) {
            Self::unjoined_in_regions(cfg, n, 0)
        }

        /// As [`Fed::unjoined_keeping_kx`], the clients assigned to `k`
        /// regions (client `i` to `region-(i mod k + 1)`, each region's
        /// ledger key [`region_signer`]); none when `k` is 0.
        pub fn unjoined_in_regions(
            cfg: FederationConfig,
            n: usize,
            k: usize,
        ) -> (Self, Vec<cipherflow_fed::KxSecret>) {
            let (train, _) = super::breast_cancer();
            let (mut roster, kx) = make_roster(&cfg.name, n).unwrap();
            roster.regions = (1..=k)
                .map(|j| cipherflow_fed::RegionEntry {
                    region_id: format!("region-{j}"),
                    ledger_key: region_signer(j).public_key().to_hex(),
                    server_name: None,
                    server_cert_sha256: None,
                    client_cert_sha256: None,
                })
                .collect();
            if k > 0 {
                for (i, c) in roster.clients.iter_mut().enumerate() {
                    c.region = Some(format!("region-{}", i % k + 1));
                }
            }
            let copies = kx
                .iter()
                .map(|k| cipherflow_fed::KxSecret::from_bytes(*k.to_bytes()))
                .collect();
            let dir = tempfile::tempdir().unwrap();
            let (clock, f) = ManualClock::new();
            let state = new_state(dir.path());
            let region_states = (1..=k)
                .map(|j| new_state(&dir.path().join(format!("region-{j}"))))
                .collect();
            let coord = Coordinator::open(CoordinatorOptions {
                config: cfg.clone(),
                roster: roster.clone(),
                state: state.clone(),
                ledger: dir.path().join("coord/ledger.db"),
                signer: signer(),
                eval: None,
                clock: f,
            })
            .unwrap();
            let parts = split_among(&train, n, None, 1).unwrap();
            let clients = parts
                .into_iter()
                .zip(kx)
                .enumerate()
                .map(|(i, (d, k))| {
                    ClientAgent::new(ClientOptions {
                        client_id: format!("client-{}", i + 1),
                        kx: Some(k),
                        roster: roster.clone(),
                        config: cfg.clone(),
                        data: d,
                        state: Some(dir.path().join(format!("client-{}.json", i + 1))),
                        ledger_key: Some(signer().public_key()),
                        synthetic: false,
                    })
                    .unwrap()
                })
                .collect();
            (
                Self {
                    coord,
                    clients,
                    clock,
                    cfg,
                    roster,
                    dir,
                    state,
                    region_states,
                },
                copies,
            )
        }

        /// `n` clients of `cfg` in `k` regions, key setup done, with the
        /// regions' aggregators (each under `dir/region-J`).
        pub fn with_regions(
            cfg: FederationConfig,
            n: usize,
            k: usize,
        ) -> (Self, Vec<cipherflow_fed::RegionalAggregator>) {
            let mut fed = Self::unjoined_in_regions(cfg, n, k).0;
            fed.join_all();
            fed.key_setup();
            let regions = (1..=k).map(|j| fed.open_region(j).unwrap()).collect();
            (fed, regions)
        }

        /// Region `j`'s aggregator (1-based), started or resumed.
        pub fn open_region(
            &self,
            j: usize,
        ) -> cipherflow_fed::Result<cipherflow_fed::RegionalAggregator> {
            let state = self.region_states[j - 1].clone();
            let d = self.dir.path().join(format!("region-{j}"));
            cipherflow_fed::RegionalAggregator::open(
                CoordinatorOptions {
                    config: self.cfg.clone(),
                    roster: self.roster.clone(),
                    state,
                    ledger: d.join("ledger.db"),
                    signer: region_signer(j),
                    eval: None,
                    clock: self.clock.clock(),
                },
                &format!("region-{j}"),
                self.coord.crs(),
                self.coord.epoch(),
            )
        }

        /// Options to open this federation's coordinator (again).
        pub fn coordinator_options(&self) -> CoordinatorOptions {
            CoordinatorOptions {
                config: self.cfg.clone(),
                roster: self.roster.clone(),
                state: self.state.clone(),
                ledger: self.dir.path().join("coord/ledger.db"),
                signer: signer(),
                eval: None,
                clock: self.clock.clock(),
            }
        }

        /// Stops the coordinator, lets `damage` act on its directory, and
        /// starts it again.
        pub fn restart_coordinator(
            self,
            damage: impl FnOnce(&std::path::Path),
        ) -> Result<Self, (cipherflow_fed::FedError, tempfile::TempDir)> {
            let opts = self.coordinator_options();
            let Fed {
                coord,
                clients,
                clock,
                cfg,
                roster,
                dir,
                state,
                region_states,
            } = self;
            drop(coord);
            damage(&dir.path().join("coord"));
            match Coordinator::open(opts) {
                Ok(coord) => Ok(Fed {
                    coord,
                    clients,
                    clock,
                    cfg,
                    roster,
                    dir,
                    state,
                    region_states,
                }),
                Err(e) => Err((e, dir)),
            }
        }

        /// Client `i` again, as restarted from its state file.
        pub fn restart_client(&mut self, i: usize) {
            let (train, _) = super::breast_cancer();
            let n = self.clients.len();
            let data = split_among(&train, n, None, 1).unwrap().swap_remove(i);
            self.clients[i] = ClientAgent::new(ClientOptions {
                client_id: format!("client-{}", i + 1),
                kx: Some(cipherflow_fed::KxSecret::generate().unwrap()),
                roster: self.roster.clone(),
                config: self.cfg.clone(),
                data,
                state: Some(self.client_state(i)),
                ledger_key: Some(signer().public_key()),
                synthetic: false,
            })
            .unwrap();
            let c = &mut self.clients[i];
            let r = self.coord.join(c.id(), &c.join_request()).unwrap();
            c.on_join(&r).unwrap();
        }

        pub fn join_all(&mut self) {
            for c in self.clients.iter_mut() {
                let r = self.coord.join(c.id(), &c.join_request()).unwrap();
                c.on_join(&r).unwrap();
            }
        }

        /// Client `i` takes its key-setup task and posts its dealing.
        pub fn deal(&mut self, i: usize) -> messages::KeySetupBundle {
            let t = self.task(i);
            match self.clients[i].handle(&t).unwrap() {
                Action::PostKeySetup(p) => {
                    let id = self.clients[i].id().to_string();
                    self.coord.post_key_setup(&id, &p).unwrap()
                }
                other => panic!("client {i} should deal, got {other:?}"),
            }
        }

        pub fn key_setup(&mut self) {
            for i in 0..self.clients.len() {
                self.deal(i);
            }
            for c in self.clients.iter_mut() {
                let b = self
                    .coord
                    .get_key_setup(c.id(), &c.key_setup_query())
                    .unwrap();
                assert!(c.on_key_setup(&b).unwrap());
            }
        }

        /// The state file of client `i`.
        pub fn client_state(&self, i: usize) -> PathBuf {
            self.dir.path().join(format!("client-{}.json", i + 1))
        }

        /// What the coordinator tells client `i` to do now.
        pub fn task(&mut self, i: usize) -> messages::Task {
            let c = &self.clients[i];
            let req = messages::TaskRequest {
                federation: self.cfg.name.clone(),
                wait_ms: 0,
                known_tree_size: c.known_tree_size(),
            };
            let id = c.id().to_string();
            self.coord.next_task(&id, &req).unwrap()
        }

        /// Client `i` polls once and acts honestly; returns whether it sent
        /// something.
        pub fn step(&mut self, i: usize) -> bool {
            let t = self.task(i);
            let id = self.clients[i].id().to_string();
            match self.clients[i].handle(&t).unwrap() {
                Action::Upload(ch) => {
                    let r = self.coord.upload(&id, &ch).unwrap();
                    self.clients[i].on_receipt(&r).unwrap();
                    true
                }
                Action::Share(p) => {
                    self.coord.send_share(&id, &p).unwrap();
                    true
                }
                _ => false,
            }
        }

        /// Every client is seen (a coordinator opens no round for nobody),
        /// then the coordinator ticks: a round opens if one is due.
        pub fn open_round(&mut self) {
            for i in 0..self.clients.len() {
                self.task(i);
            }
            self.coord.tick().unwrap();
        }

        /// Every client uploads in the open round (opening it if needed).
        pub fn upload_all(&mut self) {
            self.open_round();
            for i in 0..self.clients.len() {
                assert!(self.step(i), "client {i} uploads");
            }
        }

        /// Honest clients poll until the round closes or `polls` passes end.
        pub fn run_decryption(&mut self, polls: usize) {
            let closed = self.coord.history().len();
            for _ in 0..polls {
                for i in 0..self.clients.len() {
                    self.step(i);
                    if self.coord.history().len() > closed {
                        return;
                    }
                }
                self.clock.advance(self.cfg.round_timeout_s * 1.01);
                self.coord.tick().unwrap();
            }
        }
    }
}
