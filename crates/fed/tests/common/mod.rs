//! Shared helpers of the federated tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use cipherflow_fed::FederationConfig;
use cipherflow_nn::data::{load_breast_cancer, load_digits, Dataset, Standardizer};
use std::path::Path;

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

/// An in-process federation driven message by message, so that a test can
/// play the coordinator, a key holder or the operator between steps.
pub mod harness {
    use cipherflow_fed::messages;
    use cipherflow_fed::sim::{make_roster, split_among, ManualClock};
    use cipherflow_fed::FederationConfig;
    use cipherflow_fed::Roster;
    use cipherflow_fed::{Action, ClientAgent, ClientOptions};
    use cipherflow_fed::{Coordinator, CoordinatorOptions};
    use cipherflow_ledger::LogSigner;
    use std::path::PathBuf;

    /// A coordinator, its clients (with state files), a manual clock.
    pub struct Fed {
        pub coord: Coordinator,
        pub clients: Vec<ClientAgent>,
        pub clock: ManualClock,
        pub cfg: FederationConfig,
        pub roster: Roster,
        pub dir: tempfile::TempDir,
    }

    /// The ledger signing key of every harness federation (tests only).
    pub fn signer() -> LogSigner {
        LogSigner::from_seed(&[7; 32])
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
            let (train, _) = super::breast_cancer();
            let (roster, kx) = make_roster(&cfg.name, n).unwrap();
            let copies = kx
                .iter()
                .map(|k| cipherflow_fed::KxSecret::from_bytes(*k.to_bytes()))
                .collect();
            let dir = tempfile::tempdir().unwrap();
            let (clock, f) = ManualClock::new();
            let coord = Coordinator::open(CoordinatorOptions {
                config: cfg.clone(),
                roster: roster.clone(),
                state: dir.path().join("coord/state.db"),
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
                },
                copies,
            )
        }

        /// Options to open this federation's coordinator (again).
        pub fn coordinator_options(&self) -> CoordinatorOptions {
            CoordinatorOptions {
                config: self.cfg.clone(),
                roster: self.roster.clone(),
                state: self.dir.path().join("coord/state.db"),
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
