//! The encrypted aggregate against plaintext FedAvg of the same updates,
//! and threshold decryption needing t online key holders.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cipherflow_fed::messages;
use cipherflow_fed::sim::{make_roster, simulate, split_among, ManualClock, SimOptions, SimReport};
use cipherflow_fed::training::{flatten, local_update};
use cipherflow_fed::{Action, ClientAgent, ClientOptions};
use cipherflow_fed::{Coordinator, CoordinatorOptions, Phase};
use cipherflow_ledger::LogSigner;
use cipherflow_nn::data::Dataset;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// Runs one encrypted round of `cfg` over `clients` and checks the new
/// model against plaintext FedAvg of the same (deterministic) updates.
/// Returns the report and the precision in bits.
fn check_exact(
    cfg: cipherflow_fed::FederationConfig,
    (train, test): (Dataset, Dataset),
    clients: usize,
) -> (SimReport, f64) {
    let parts = split_among(&train, clients, Some(0.5), 3).unwrap();
    let spec = cfg.model_spec().unwrap();
    let mut model = spec.build(cfg.model_seed).unwrap();
    let g0 = flatten(&mut model);
    let nmax = parts.iter().map(|p| p.len()).max().unwrap() as f64;
    let mut num = vec![0f64; g0.len()];
    let mut den = 0f64;
    for p in &parts {
        let mut rng = ChaCha20Rng::seed_from_u64(0);
        let u = local_update(&mut model, &g0, p, &cfg.training, 0.0, &mut rng).unwrap();
        let top = u.iter().map(|&x| f64::from(x).abs()).fold(0.0, f64::max);
        assert!(
            top < cfg.aggregation.clip,
            "the clip must not bite here ({top})"
        );
        let w = p.len() as f64 / nmax;
        for (n, &x) in num.iter_mut().zip(&u) {
            *n += w * f64::from(x);
        }
        den += w;
    }
    let expected: Vec<f64> = g0
        .iter()
        .zip(&num)
        .map(|(&g, &n)| f64::from(g) + n / den)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let report = simulate(SimOptions {
        config: cfg.clone(),
        client_data: parts,
        eval: Some(test),
        dropout: 0.0,
        dir: dir.path().to_path_buf(),
        state: None,
        synthetic: false,
        on_round: None,
        dropout_plan: None,
        regions: 0,
    })
    .unwrap();
    assert_eq!(report.model.len(), expected.len());
    let err = report
        .model
        .iter()
        .zip(&expected)
        .map(|(&a, &b)| (f64::from(a) - b).abs())
        .fold(0.0, f64::max);
    let mean_update = num.iter().map(|n| (n / den).abs()).fold(0.0, f64::max);
    // Each client's weighted coordinate is rounded at random to a multiple
    // of clip/2^quant_bits, so the mean Σv/(γ·Σw) is off by at most
    // n·step/Σw; f32 adds ~1e-7.
    let step =
        cfg.aggregation.clip / 2f64.powi(cfg.aggregation.quant_bits as i32) * clients as f64 / den;
    let bits = (mean_update / err).log2();
    println!(
        "{} parameters, {} per ciphertext: max |encrypted − plaintext| = {err:.3e} (step {step:.3e}); \
         precision {bits:.1} bits of the largest mean coordinate",
        report.model.len(),
        report.ciphertext_capacity
    );
    assert!(err <= step + 1e-6, "error {err}");
    (report, bits)
}

#[test]
fn encrypted_fedavg_equals_plaintext_fedavg() {
    // Full-batch local training is deterministic, so the test can redo it.
    let cfg = cipherflow_fed::FederationConfig::parse(
        "name = \"bc-exact\"\nrounds = 1\nmodel = \"logreg\"\ninput = [30]\nclasses = 2\n\
         [training]\nepochs = 3\nbatch_size = 100000\nlr = 0.5\n[aggregation]\nquant_bits = 20\n",
    )
    .unwrap();
    let (report, bits) = check_exact(cfg, common::breast_cancer(), 5);
    // 31 weights: one coordinate per coefficient (the smaller modulus).
    assert_eq!(report.ciphertext_capacity, 4096);
    assert!(bits > 14.0);
}

#[test]
fn packed_encrypted_fedavg_equals_plaintext_fedavg() {
    // A 4,810-weight MLP on the digits: two coordinates per coefficient,
    // negative and positive sums borrowing across fields (unchecked: the
    // checked plan's larger shift makes one per coefficient cheaper here).
    let cfg = cipherflow_fed::FederationConfig::parse(
        "name = \"digits-exact\"\nrounds = 1\nmodel = \"mlp\"\ninput = [1, 8, 8]\nclasses = 10\n\
         checked_decryption = false\n\
         [training]\nepochs = 2\nbatch_size = 100000\nlr = 0.5\n[aggregation]\nquant_bits = 20\n",
    )
    .unwrap();
    let (report, bits) = check_exact(cfg, common::digits(), 6);
    assert_eq!(report.model.len(), 4810);
    assert_eq!(report.ciphertext_capacity, 8192, "two per coefficient");
    assert!(bits > 12.0, "{bits}");
}

fn agents(
    n: usize,
    t: usize,
) -> (
    Coordinator,
    Vec<ClientAgent>,
    ManualClock,
    tempfile::TempDir,
) {
    let (train, _) = common::breast_cancer();
    // Decryption may wait 20 attempts (200 s) for key holders to return.
    let cfg = common::config(
        "bc-t",
        1,
        &format!("threshold = {t}\nquorum = {n}\ndecrypt_attempts = 20"),
    );
    let (roster, kx) = make_roster(&cfg.name, n).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let signer = LogSigner::generate().unwrap();
    let key = signer.public_key();
    let (clock, f) = ManualClock::new();
    let mut coord = Coordinator::open(CoordinatorOptions {
        config: cfg.clone(),
        roster: roster.clone(),
        state: dir.path().join("c.db").into(),
        ledger: dir.path().join("l.db"),
        signer,
        eval: None,
        clock: f,
    })
    .unwrap();
    let parts = split_among(&train, n, None, 1).unwrap();
    let mut clients: Vec<ClientAgent> = parts
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
                state: None,
                ledger_key: Some(key),
                synthetic: false,
            })
            .unwrap()
        })
        .collect();
    for c in clients.iter_mut() {
        let r = coord.join(c.id(), &c.join_request()).unwrap();
        c.on_join(&r).unwrap();
    }
    // Key setup.
    for c in clients.iter_mut() {
        let t = coord.next_task(c.id(), &task_req(c)).unwrap();
        match c.handle(&t).unwrap() {
            Action::PostKeySetup(p) => {
                coord.post_key_setup(c.id(), &p).unwrap();
            }
            other => panic!("{other:?}"),
        }
    }
    for c in clients.iter_mut() {
        let b = coord.get_key_setup(c.id(), &c.key_setup_query()).unwrap();
        assert!(c.on_key_setup(&b).unwrap());
    }
    (coord, clients, clock, dir)
}

fn task_req(c: &ClientAgent) -> messages::TaskRequest {
    messages::TaskRequest {
        federation: "bc-t".into(),
        wait_ms: 0,
        known_tree_size: c.known_tree_size(),
    }
}

/// Lets client `c` poll once and act; returns whether it sent something.
fn step(coord: &mut Coordinator, c: &mut ClientAgent) -> bool {
    let t = coord.next_task(c.id(), &task_req(c)).unwrap();
    match c.handle(&t).unwrap() {
        Action::Upload(ch) => {
            let r = coord.upload(c.id(), &ch).unwrap();
            c.on_receipt(&r).unwrap();
            true
        }
        Action::Share(p) => {
            coord.send_share(c.id(), &p).unwrap();
            true
        }
        _ => false,
    }
}

#[test]
fn decryption_needs_t_online_key_holders() {
    let (mut coord, mut clients, clock, _dir) = agents(5, 3);
    coord.tick().unwrap();
    for c in clients.iter_mut() {
        assert!(step(&mut coord, c), "every client uploads");
    }
    // Only two key holders (t − 1) stay; the others vanish after uploading.
    for _ in 0..10 {
        clock.advance(6.0);
        coord.tick().unwrap();
        for c in clients.iter_mut().take(2) {
            step(&mut coord, c);
        }
    }
    assert!(
        coord.history().is_empty(),
        "decrypted with t − 1 key holders"
    );
    assert_eq!(coord.current_round(), Some(1));
    // The round waits for threshold shares: a "key service" answer is not
    // one (this federation has none), whatever round it names.
    let ks = messages::ShareChunk {
        federation: "bc-t".into(),
        round: 1,
        ..Default::default()
    };
    let e = coord.key_service_share(&[ks]).unwrap_err();
    assert!(
        matches!(&e, cipherflow_fed::FedError::Protocol(m) if m.contains("no key-service decryption pending")),
        "{e}"
    );
    // A third comes back: the next attempt succeeds.
    for _ in 0..4 {
        clock.advance(6.0);
        coord.tick().unwrap();
        for c in clients.iter_mut().take(3) {
            step(&mut coord, c);
        }
        if !coord.history().is_empty() {
            break;
        }
    }
    let h = &coord.history()[0];
    assert_eq!((h.contributors, h.decryptors), (5, 3));
    assert!(h.attempts >= 2);
    coord.tick().unwrap();
    assert!(matches!(coord.phase(), Phase::Finished(_)));
}

#[test]
fn refused_messages() {
    use cipherflow_ckks::CkksError;
    use cipherflow_fed::FedError;
    let (mut coord, mut clients, _clock, _dir) = agents(3, 2);
    // Not in the roster.
    let e = coord
        .join("mallory", &clients[0].join_request())
        .unwrap_err();
    assert!(matches!(e, FedError::Unenrolled(_)), "{e}");
    // Another federation's message: refused and counted.
    let refused = coord.metrics().refused;
    let mut r = clients[0].join_request();
    r.federation = "other".into();
    let e = coord.join("client-1", &r).unwrap_err();
    assert!(
        matches!(&e, FedError::Protocol(m) if m.contains("federation \"other\"")),
        "{e}"
    );
    assert_eq!(coord.metrics().refused, refused + 1);
    coord.tick().unwrap();
    let t = coord.next_task("client-1", &task_req(&clients[0])).unwrap();
    let Action::Upload(chunks) = clients[0].handle(&t).unwrap() else {
        panic!()
    };
    // 31 weights: one chunk, one shared ciphertext.
    assert_eq!(chunks.len(), 1);
    // Each case below has exactly one fault; none of them may count as the
    // client's upload (the genuine one is accepted afterwards).
    let refused = coord.metrics().refused;
    // Someone outside the roster sends a genuine update. (A complete
    // upload under another sampled client's id is not refused here: the
    // coordinator cannot tell whose key share encrypted it; the transport's
    // mutual TLS binds the id to the sender.)
    let e = coord.upload("mallory", &chunks).unwrap_err();
    assert!(
        matches!(&e, FedError::Unenrolled(id) if id == "mallory"),
        "{e}"
    );
    // An empty upload.
    let e = coord.upload("client-1", &[]).unwrap_err();
    assert!(
        matches!(&e, FedError::Protocol(m) if m.contains("empty upload")),
        "{e}"
    );
    // A truncated upload: the ciphertext one byte short.
    let mut short = chunks.clone();
    short[0].ciphertext.pop();
    let e = coord.upload("client-1", &short).unwrap_err();
    assert!(
        matches!(&e, FedError::Protocol(m) if m.contains("ciphertext each")),
        "{e}"
    );
    // Chunks misnumbered: an index or a total that is not the plan's.
    for (index, total) in [(1, 1), (0, 2)] {
        let mut bad = chunks.clone();
        bad[0].index = index;
        bad[0].total = total;
        let e = coord.upload("client-1", &bad).unwrap_err();
        assert!(
            matches!(&e, FedError::Protocol(m) if m.contains("chunks numbered")),
            "index {index}, total {total}: {e}"
        );
    }
    // A wrong round.
    let mut wrong = chunks.clone();
    for c in wrong.iter_mut() {
        c.round = 7;
    }
    let e = coord.upload("client-1", &wrong).unwrap_err();
    assert!(
        matches!(&e, FedError::Replay(m) if m.contains("upload for round 7")),
        "{e}"
    );
    // Corrupted bytes. The encoding is magic 4, version 1, kind 1,
    // parameter fingerprint 32, seed of `a` 32, shift 4, then the residues
    // bit-packed. A flip inside a residue that stays below its prime is a
    // valid-looking ciphertext (only the transport can tell); the
    // fingerprint, the seed and out-of-range residues are checked here.
    let mut fp = chunks.clone();
    fp[0].ciphertext[10] ^= 1;
    let e = coord.upload("client-1", &fp).unwrap_err();
    assert!(
        matches!(e, FedError::Ckks(CkksError::ParamsMismatch)),
        "{e}"
    );
    let mut seed = chunks.clone();
    seed[0].ciphertext[38] ^= 1;
    let e = coord.upload("client-1", &seed).unwrap_err();
    assert!(
        matches!(&e, FedError::Protocol(m) if m.contains("another round, chunk or shift")),
        "{e}"
    );
    // 16 bytes of ones hold a whole residue of all ones (≥ its prime).
    let mut range = chunks.clone();
    for b in &mut range[0].ciphertext[74..90] {
        *b = 0xff;
    }
    let e = coord.upload("client-1", &range).unwrap_err();
    assert!(
        matches!(&e, FedError::Ckks(CkksError::Decode(m)) if m.contains("out of range")),
        "{e}"
    );
    // Every refusal above was counted.
    assert_eq!(coord.metrics().refused, refused + 9);
    assert_eq!(
        coord.metrics().uploads,
        0,
        "no refused upload counts as one"
    );
    // The genuine upload is accepted; a byte-identical resend is idempotent.
    let first = coord.upload("client-1", &chunks).unwrap();
    assert!(!first.duplicate);
    let sent: usize = chunks.iter().map(|c| c.ciphertext.len()).sum();
    assert_eq!(coord.metrics().uploads, 1);
    assert_eq!(coord.metrics().upload_bytes, sent as u64);
    let again = coord.upload("client-1", &chunks).unwrap();
    assert!(again.duplicate, "a byte-identical resend is a duplicate");
    assert_eq!(again.ledger_index, first.ledger_index);
    // Different bytes for the same (client, round) are a replay, even a
    // well-formed ciphertext: clearing a set bit only lowers a residue.
    let mut other = chunks.clone();
    let byte = other[0].ciphertext[74..]
        .iter_mut()
        .find(|b| **b != 0)
        .unwrap();
    *byte &= *byte - 1;
    assert_ne!(other[0].ciphertext, chunks[0].ciphertext);
    let e = coord.upload("client-1", &other).unwrap_err();
    assert!(
        matches!(&e, FedError::Replay(m) if m.contains("already uploaded")),
        "{e}"
    );
    // The replay changed nothing: the genuine upload is still the one held.
    assert!(coord.upload("client-1", &chunks).unwrap().duplicate);
    // Revoked clients are refused.
    coord.revoke("client-3");
    let t = coord.next_task("client-3", &task_req(&clients[2]));
    assert!(matches!(t, Err(FedError::Revoked(_))));
}

/// The coordinator's checks of a decryption share, one fault at a time:
/// each is refused with its own error and counted, and none displaces the
/// genuine share that follows.
#[test]
fn refused_shares() {
    use cipherflow_fed::FedError;
    let (mut coord, mut clients, _clock, _dir) = agents(3, 2);
    coord.tick().unwrap();
    for c in clients.iter_mut() {
        assert!(step(&mut coord, c), "every client uploads");
    }
    // Poll until a key holder has its share ready (after its "ready" answer).
    let mut found = None;
    'poll: for _ in 0..10 {
        coord.tick().unwrap();
        for (i, c) in clients.iter_mut().enumerate() {
            let t = coord.next_task(c.id(), &task_req(c)).unwrap();
            if let Action::Share(p) = c.handle(&t).unwrap() {
                if p.iter().any(|x| x.ready) {
                    coord.send_share(c.id(), &p).unwrap();
                } else {
                    found = Some((i, p));
                    break 'poll;
                }
            }
        }
    }
    let (i, parts) = found.expect("a key holder sends its share");
    let id = clients[i].id().to_string();
    let refused = coord.metrics().refused;
    let mut refuse = |bad: Vec<messages::ShareChunk>| coord.send_share(&id, &bad).unwrap_err();
    let edit = |f: &dyn Fn(&mut messages::ShareChunk)| {
        let mut p = parts.clone();
        p.iter_mut().for_each(f);
        p
    };
    let e = refuse(edit(&|p| p.round += 1));
    assert!(
        matches!(&e, FedError::Replay(m) if m.contains("share for round")),
        "{e}"
    );
    let e = refuse(edit(&|p| p.attempt += 1));
    assert!(
        matches!(&e, FedError::Replay(m) if m.contains("attempt")),
        "{e}"
    );
    let e = refuse(edit(&|p| p.ready = true));
    assert!(
        matches!(&e, FedError::Protocol(m) if m.contains("a ready answer carries no share")),
        "{e}"
    );
    let e = refuse(edit(&|p| p.index += 1));
    assert!(
        matches!(&e, FedError::Protocol(m) if m.contains("out of order")),
        "{e}"
    );
    let e = refuse(edit(&|p| p.total += 1));
    assert!(
        matches!(&e, FedError::Protocol(m) if m.contains("out of order")),
        "{e}"
    );
    assert_eq!(
        coord.metrics().refused,
        refused + 5,
        "each refusal counted once"
    );
    // The genuine share is accepted; the same bytes again are a duplicate;
    // different bytes are a replay, and counted.
    let r = coord.send_share(&id, &parts).unwrap();
    assert!(r.accepted && !r.duplicate);
    assert!(coord.send_share(&id, &parts).unwrap().duplicate);
    let mut other = parts.clone();
    let byte = other[0].share.iter_mut().rev().find(|b| **b != 0).unwrap();
    *byte &= *byte - 1;
    let e = coord.send_share(&id, &other).unwrap_err();
    assert!(
        matches!(&e, FedError::Replay(m) if m.contains("different share")),
        "{e}"
    );
    assert_eq!(coord.metrics().refused, refused + 6);
}
