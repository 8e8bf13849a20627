//! A small in-process threshold federation (3 clients, t = 2) with round 1
//! open and client 1's update uploaded: the state the federated fuzz
//! target and the seed generator start from.
#![allow(dead_code)]
use cipherflow_fed::{Action, ClientAgent, ClientOptions};
use cipherflow_fed::FederationConfig;
use cipherflow_fed::{Coordinator, CoordinatorOptions};
use cipherflow_fed::messages;
use cipherflow_fed::transport::OnWire;
use cipherflow_fed::sim::{make_roster, ManualClock};
use cipherflow_ledger::LogSigner;
use cipherflow_nn::data::Dataset;
use std::sync::{Mutex, OnceLock};

/// The parties, and what they exchanged while being set up.
pub struct Federation {
    pub coord: Coordinator,
    pub clients: Vec<ClientAgent>,
    pub clock: ManualClock,
    pub dir: std::path::PathBuf,
    /// Valid messages seen while setting up, by fuzz selector byte.
    pub seen: Vec<(u8, Vec<u8>)>,
}

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    panic!("fuzz federation setup: {what}: {e}")
}

/// The federation's configuration.
pub const CONFIG: &str = "name = \"fuzz\"\nrounds = 3\nmodel = \"logreg\"\ninput = [6]\nclasses = 2\n\
    round_timeout_s = 5\nthreshold = 2\nquorum = 3\ndecrypt_attempts = 4\n\
    [training]\nepochs = 1\nbatch_size = 8\nlr = 0.1\n";

fn config() -> FederationConfig {
    FederationConfig::parse(CONFIG).unwrap_or_else(|e| fail("config", e))
}

fn data(seed: usize) -> Dataset {
    let rows = 24;
    let x = ndarray::Array2::from_shape_fn((rows, 6), |(i, j)| {
        (((i * 7 + j * 3 + seed) % 11) as f32 - 5.0) / 5.0
    });
    let y = (0..rows).map(|i| (i + seed) % 2).collect();
    Dataset::new(x, y, vec![6], 2).unwrap_or_else(|e| fail("data", e))
}

/// A message's protobuf encoding (what the wire carries).
fn enc<D: OnWire + Clone>(m: &D) -> Vec<u8> {
    prost::Message::encode_to_vec(&D::Proto::from(m.clone()))
}

/// Builds the federation (once per process).
pub fn build(dir: std::path::PathBuf) -> Federation {
    let cfg = config();
    let n = 3;
    let (roster, kx) = make_roster(&cfg.name, n).unwrap();
    let signer = LogSigner::from_seed(&[7; 32]);
    let key = signer.public_key();
    let (clock, f) = ManualClock::new();
    let mut coord = Coordinator::open(CoordinatorOptions {
        config: cfg.clone(),
        roster: roster.clone(),
        state: dir.join("coord/state.db").into(),
        ledger: dir.join("coord/ledger.db"),
        signer,
        eval: None,
        clock: f,
    })
    .unwrap_or_else(|e| fail("coordinator", e));
    let mut seen = Vec::new();
    let mut clients = Vec::new();
    for (i, k) in kx.into_iter().enumerate() {
        let c = ClientAgent::new(ClientOptions {
            client_id: format!("client-{}", i + 1),
            kx: Some(k),
            roster: roster.clone(),
            config: cfg.clone(),
            data: data(i),
            state: Some(dir.join(format!("client-{}.json", i + 1))),
            ledger_key: Some(key),
            synthetic: false,
        })
        .unwrap_or_else(|e| fail("client", e));
        clients.push(c);
    }
    for c in clients.iter_mut() {
        let req = c.join_request();
        seen.push((0, enc(&req)));
        let r = coord.join(c.id(), &req).unwrap_or_else(|e| fail("join", e));
        seen.push((6, enc(&r)));
        c.on_join(&r).unwrap_or_else(|e| fail("on_join", e));
    }
    let task = |coord: &mut Coordinator, c: &ClientAgent, seen: &mut Vec<(u8, Vec<u8>)>| {
        let req = messages::TaskRequest {
            federation: "fuzz".into(),
            wait_ms: 0,
            known_tree_size: c.known_tree_size(),
        };
        seen.push((1, enc(&req)));
        let t = coord
            .next_task(c.id(), &req)
            .unwrap_or_else(|e| fail("task", e));
        seen.push((7, enc(&t)));
        t
    };
    for i in 0..n {
        let t = task(&mut coord, &clients[i], &mut seen);
        match clients[i].handle(&t) {
            Ok(Action::PostKeySetup(p)) => {
                seen.push((4, enc(&p)));
                let id = clients[i].id().to_string();
                coord
                    .post_key_setup(&id, &p)
                    .unwrap_or_else(|e| fail("key setup", e));
            }
            other => fail("key setup", format!("{other:?}")),
        }
    }
    for c in clients.iter_mut() {
        let b = coord
            .get_key_setup(c.id(), &c.key_setup_query())
            .unwrap_or_else(|e| fail("key setup", e));
        seen.push((8, enc(&b)));
        c.on_key_setup(&b).unwrap_or_else(|e| fail("key setup", e));
    }
    for c in &clients {
        task(&mut coord, c, &mut seen);
    }
    coord.tick().unwrap_or_else(|e| fail("tick", e));
    // Client 1 uploads; clients 2 and 3 have their round-1 task.
    let t = task(&mut coord, &clients[0], &mut seen);
    match clients[0].handle(&t) {
        Ok(Action::Upload(chunks)) => {
            for ch in &chunks {
                seen.push((2, enc(ch)));
            }
            let r = coord
                .upload("client-1", &chunks)
                .unwrap_or_else(|e| fail("upload", e));
            seen.push((9, enc(&r)));
            clients[0]
                .on_receipt(&r)
                .unwrap_or_else(|e| fail("receipt", e));
        }
        other => fail("upload", format!("{other:?}")),
    }
    Federation {
        coord,
        clients,
        clock,
        dir,
        seen,
    }
}

/// The process-wide federation, in a fresh temporary directory.
pub fn federation() -> &'static Mutex<Federation> {
    static F: OnceLock<Mutex<Federation>> = OnceLock::new();
    F.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("cipherflow-fuzz-fed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Mutex::new(build(dir))
    })
}
