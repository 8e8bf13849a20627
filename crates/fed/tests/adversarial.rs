//! The federation against a malicious coordinator, a lying key holder and
//! a forked audit log. Each test plays the adversary and checks that the
//! defence holds; each attack succeeded before its defence existed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cipherflow_ckks::multiparty::Crs;
use cipherflow_ckks::CkksParams;
use cipherflow_fed::messages::{self, Task};
use cipherflow_fed::quant::ShareNoise;
use cipherflow_fed::round_seeds;
use cipherflow_fed::sim::make_roster;
use cipherflow_fed::Action;
use cipherflow_fed::FedError;
use cipherflow_fed::FederationConfig;
use cipherflow_fed::KeyService;
use cipherflow_fed::KeySetupRecord;
use cipherflow_ledger::entry::{DpSettings, EntryBody, RoundOpened, UpdateReceived};
use cipherflow_ledger::{AggregateInput, Ledger, LogSigner};
use common::harness::Fed;

fn train_task(t: &Task) -> messages::TrainTask {
    match t {
        Task::Train(x) => x.clone(),
        other => panic!("expected a training task, got {other:?}"),
    }
}

fn with_train(t: messages::TrainTask) -> Task {
    Task::Train(t)
}

/// Sets the task's model, with the matching hash.
fn put_model(t: &mut messages::TrainTask, w: Vec<f32>) {
    t.model_hash = cipherflow_fed::training::model_hash(&cipherflow_fed::training::to_bytes(&w));
    t.model = w;
}

fn set_model(t: &mut messages::TrainTask, scale: f32) {
    let w = t.model.iter().map(|x| x * scale + 0.01).collect();
    put_model(t, w);
}

#[test]
fn a_coordinator_replaying_a_round_gets_no_second_update() {
    let mut fed = Fed::new("adv-replay", 3, 2, 4);
    fed.coord.tick().unwrap();
    let t5 = fed.task(0);
    let Action::Upload(first) = fed.clients[0].handle(&t5).unwrap() else {
        panic!("no upload")
    };
    // A lost receipt: the byte-identical resend is allowed.
    let Action::Upload(again) = fed.clients[0].handle(&t5).unwrap() else {
        panic!("no resend")
    };
    assert_eq!(first, again, "a resend is byte-identical");
    // Train(r+1), then Train(r) again with another model: the second
    // encryption of round r under the same key share and the same `a`
    // would hand the coordinator v − v'.
    let mut next = train_task(&t5);
    next.round += 1;
    assert!(matches!(
        fed.clients[0].handle(&with_train(next.clone())).unwrap(),
        Action::Upload(_)
    ));
    let mut replay = train_task(&t5);
    set_model(&mut replay, 1.0);
    let e = fed.clients[0].handle(&with_train(replay)).unwrap_err();
    assert!(matches!(e, FedError::Replay(_)), "{e}");
    // The same after a restart: the highest round uploaded is durable.
    fed.restart_client(0);
    for r in [&t5, &with_train(next)] {
        let e = fed.clients[0].handle(r).unwrap_err();
        assert!(matches!(e, FedError::Replay(_)), "{e}");
    }
}

#[test]
fn a_global_model_with_absurd_weights_is_refused_before_training() {
    let mut fed = Fed::new("adv-huge", 3, 2, 2);
    fed.coord.tick().unwrap();
    let mut t = train_task(&fed.task(0));
    // Weights of 1e12 would make the client's update 0 (or explode it).
    set_model(&mut t, 1e12);
    let e = fed.clients[0].handle(&with_train(t.clone())).unwrap_err();
    assert!(
        matches!(&e, FedError::Refused(m) if m.contains("max_model_norm")),
        "{e}"
    );
    // Non-finite weights never decode.
    let n = t.model.len();
    put_model(&mut t, vec![f32::NAN; n]);
    let e = fed.clients[0].handle(&with_train(t)).unwrap_err();
    assert!(
        matches!(&e, FedError::Protocol(m) if m.contains("non-finite")),
        "{e}"
    );
}

#[test]
fn public_polynomials_differ_between_federations_epochs_and_rounds() {
    let crs = Crs([5; 32]);
    let base = round_seeds(&crs, "hospitals", 1, 7, 3);
    assert_eq!(base.len(), 3);
    assert_ne!(base, round_seeds(&crs, "hospitals-2", 1, 7, 3));
    assert_ne!(base, round_seeds(&crs, "hospitals", 2, 7, 3));
    assert_ne!(base, round_seeds(&crs, "hospitals", 1, 8, 3));
    assert_eq!(base, round_seeds(&crs, "hospitals", 1, 7, 3));
    assert_ne!(base[0], base[1]);
}

fn decrypt_task(t: &Task) -> Option<messages::DecryptTask> {
    match t {
        Task::Decrypt(d) => Some(d.clone()),
        _ => None,
    }
}

/// Drives the ready phase until every active key holder is ready.
fn all_ready(fed: &mut Fed) -> Vec<usize> {
    let active = fed.coord.current_active();
    let idx: Vec<usize> = active
        .iter()
        .map(|id| fed.clients.iter().position(|c| c.id() == id).unwrap())
        .collect();
    for &i in &idx {
        let d = decrypt_task(&fed.task(i)).expect("a decryption task");
        assert!(d.prepare, "phase one first");
        assert!(fed.step(i));
    }
    idx
}

#[test]
fn a_coordinator_asking_for_a_second_active_set_gets_no_share() {
    let mut fed = Fed::new("adv-sets", 5, 3, 1);
    fed.upload_all();
    let idx = all_ready(&mut fed);
    let i = idx[0];
    let release = decrypt_task(&fed.task(i)).unwrap();
    assert!(!release.prepare);
    let Action::Share(parts) = fed.clients[i]
        .handle(&Task::Decrypt(release.clone()))
        .unwrap()
    else {
        panic!("no share")
    };
    assert!(!parts[0].ready && !parts[0].share.is_empty());
    // Same round, same contributors, another active set that still holds
    // the victim: its share would differ only in the Lagrange factor.
    let me = fed.clients[i].party();
    let outsider = (1..=5u64).find(|p| !release.active.contains(p)).unwrap();
    let mut other = release.clone();
    other.active = release
        .active
        .iter()
        .map(|&p| {
            if p != me && p == *release.active.iter().find(|&&q| q != me).unwrap() {
                outsider
            } else {
                p
            }
        })
        .collect();
    other.active.sort_unstable();
    assert_ne!(other.active, release.active);
    for prepare in [false, true] {
        other.prepare = prepare;
        let e = fed.clients[i]
            .handle(&Task::Decrypt(other.clone()))
            .unwrap_err();
        assert!(
            matches!(&e, FedError::Refused(m) if m.contains("active set")),
            "{e}"
        );
    }
    // The commitment is durable: a restarted key holder refuses too.
    fed.restart_client(i);
    other.prepare = false;
    let e = fed.clients[i].handle(&Task::Decrypt(other)).unwrap_err();
    assert!(
        matches!(&e, FedError::Refused(m) if m.contains("already gave a share")),
        "{e}"
    );
    // Its own set is still answered (a lost share can be resent) — with
    // the very same bytes, after a restart too: fresh smudging noise on
    // every repeat would let a coordinator that asks again and again
    // average the noise away from the secret-dependent term.
    let Action::Share(again) = fed.clients[i].handle(&Task::Decrypt(release)).unwrap() else {
        panic!("no share")
    };
    assert_eq!(
        again.iter().map(|p| &p.share).collect::<Vec<_>>(),
        parts.iter().map(|p| &p.share).collect::<Vec<_>>(),
        "a repeated request got fresh noise"
    );
}

#[test]
fn a_crs_of_the_coordinators_choosing_is_refused() {
    let cfg = common::config("adv-crs", 1, "threshold = 2\nquorum = 3");
    let mut fed = Fed::unjoined(cfg, 3);
    // Client 1 is told another CRS than the one the ledger records.
    for i in 0..3 {
        let c = &mut fed.clients[i];
        let mut r = fed.coord.join(c.id(), &c.join_request()).unwrap();
        if i == 0 {
            r.crs = Crs([9; 32]);
        }
        c.on_join(&r).unwrap();
    }
    for i in 0..3 {
        fed.deal(i);
    }
    let c = &mut fed.clients[0];
    let b = fed
        .coord
        .get_key_setup(c.id(), &c.key_setup_query())
        .unwrap();
    let e = c.on_key_setup(&b).unwrap_err();
    assert!(
        matches!(&e, FedError::Refused(m) if m.contains("key-setup entry")),
        "{e}"
    );
    // An honest client accepts, and then refuses a CRS changed on re-join.
    let c = &mut fed.clients[1];
    let b = fed
        .coord
        .get_key_setup(c.id(), &c.key_setup_query())
        .unwrap();
    assert!(c.on_key_setup(&b).unwrap());
    let mut r = fed.coord.join(c.id(), &c.join_request()).unwrap();
    r.crs.0[0] ^= 1;
    let e = c.on_join(&r).unwrap_err();
    assert!(matches!(e, FedError::Refused(_)), "{e}");
    // A key-setup bundle without the ledger's proof is refused.
    let c = &mut fed.clients[2];
    let mut b = fed
        .coord
        .get_key_setup(c.id(), &c.key_setup_query())
        .unwrap();
    b.key_setup_proof = None;
    let e = c.on_key_setup(&b).unwrap_err();
    assert!(
        matches!(&e, FedError::Refused(m) if m.contains("no ledger proof")),
        "{e}"
    );
}

#[test]
fn threshold_one_is_refused() {
    let cfg = common::config("adv-t1", 1, "threshold = 1");
    let e = cfg.sizes(3).unwrap_err();
    assert!(e.to_string().contains("whole key"), "{e}");
    assert!(common::config("adv-t2", 1, "threshold = 2")
        .sizes(3)
        .is_ok());
    // A key service is one holder by design.
    let ks = common::config("adv-ks", 1, "keys = \"key-service\"");
    assert_eq!(ks.sizes(3).unwrap().threshold, 1);
}

/// Adds `delta` to coefficient `k` of the first chunk of an encoded
/// aggregate share, in the primes `limbs` selects — a key holder lying
/// about its share.
fn steer(params: &CkksParams, share: &mut [u8], k: usize, delta: i128, limbs: &[bool]) {
    let n = params.n();
    // header | party u64 | threshold u32 | smudging u32 | …
    let mut pos = 4 + 1 + 1 + params.fingerprint().len() + 8 + 4 + 4;
    for _ in 0..2 {
        let count = u32::from_le_bytes(share[pos..pos + 4].try_into().unwrap()) as usize;
        pos += 4 + 8 * count;
    }
    pos += 4 + 32; // chunk count, first seed
    let mut bit = pos * 8;
    for (i, &q) in params.q().iter().enumerate() {
        let w = 64 - q.leading_zeros() as usize;
        if limbs.get(i).copied().unwrap_or(false) {
            let at = bit + k * w;
            let mut v: u128 = 0;
            for b in 0..w {
                let x = at + b;
                v |= u128::from((share[x / 8] >> (x % 8)) & 1) << b;
            }
            let q = i128::from(q);
            let nv = (v as i128 + delta).rem_euclid(q) as u128;
            for b in 0..w {
                let x = at + b;
                share[x / 8] &= !(1 << (x % 8));
                share[x / 8] |= (((nv >> b) & 1) as u8) << (x % 8);
            }
        }
        bit += n * w;
    }
}

/// Four breast-cancer clients, threshold 3; `checked`: decryptions by
/// t + 1 = 4 holders whose shares check each other.
fn liar_federation(name: &str, rounds: u64, n: usize, checked: bool) -> Fed {
    let cfg = common::config(
        name,
        rounds,
        &format!(
            "threshold = 3\nquorum = {n}\ndecrypt_attempts = 4\nchecked_decryption = {checked}"
        ),
    );
    Fed::with_config(cfg, n)
}

/// How a key holder lies: (parameters, shift, model size, its share).
type Lie<'a> = dyn Fn(&CkksParams, u32, usize, &mut Vec<u8>) + 'a;

/// Runs one round of `fed` in which the key holder `liar` (a client id),
/// when asked, lies with `lie`; returns the round's summary.
fn run_round_with(
    fed: &mut Fed,
    liar: Option<&str>,
    lie: &Lie<'_>,
) -> cipherflow_fed::RoundSummary {
    let closed = fed.coord.history().len();
    fed.upload_all();
    let idx = all_ready(fed);
    let params = fed.coord.params().clone();
    let (shift, dim) = (fed.coord.packing().shift, fed.coord.packing().dim);
    for &i in &idx {
        let t = fed.task(i);
        let Action::Share(mut parts) = fed.clients[i].handle(&t).unwrap() else {
            panic!("no share")
        };
        let id = fed.clients[i].id().to_string();
        if Some(id.as_str()) == liar {
            lie(&params, shift, dim, &mut parts[0].share);
        }
        fed.coord.send_share(&id, &parts).unwrap();
    }
    assert_eq!(fed.coord.history().len(), closed + 1, "the round ended");
    fed.coord.history().last().cloned().unwrap()
}

/// Runs one round in which the first active key holder lies with `lie`;
/// returns the round's summary and whether the global model changed.
fn round_with_a_liar(
    name: &str,
    checked: bool,
    lie: impl Fn(&CkksParams, u32, usize, &mut Vec<u8>),
) -> (cipherflow_fed::RoundSummary, bool) {
    let mut fed = liar_federation(name, 1, 4, checked);
    let before = fed.coord.global_model().to_vec();
    let liar = fed.clients[0].id().to_string();
    let h = run_round_with(&mut fed, Some(&liar), &lie);
    (h, fed.coord.global_model() != before.as_slice())
}

#[test]
fn a_key_holder_sending_a_random_share_is_caught() {
    // One prime's residue moved: the sum decrypts to garbage.
    let (h, changed) = round_with_a_liar("adv-liar-random", false, |p, _, _, s| {
        let q0 = i128::from(p.q()[0]);
        steer(p, s, 3, q0 / 3, &[true, false]);
    });
    assert!(h.aborted, "{h:?}");
    assert!(h.abort_reason.unwrap().contains("failed its checks"));
    assert!(!changed, "nothing was published");
}

#[test]
fn a_key_holder_steering_a_sum_out_of_its_bound_is_caught() {
    // Coordinate 5 moved by 2^20 > its bound 4·(2^16 + 1).
    // Unchecked (t holders): the range checks are the only defence.
    let (h, changed) = round_with_a_liar("adv-liar-bound", false, |p, shift, _, s| {
        steer(p, s, 5, (1i128 << 20) << shift, &[true, true]);
    });
    assert!(h.aborted, "{h:?}");
    assert!(h.abort_reason.unwrap().contains("bound"));
    assert!(!changed);
}

#[test]
fn a_key_holder_steering_a_coefficient_past_the_model_is_caught() {
    let (h, changed) = round_with_a_liar("adv-liar-padding", false, |p, shift, dim, s| {
        steer(p, s, dim + 2, 1i128 << shift, &[true, true]);
    });
    assert!(h.aborted, "{h:?}");
    assert!(h.abort_reason.unwrap().contains("past the model"));
    assert!(!changed);
}

/// A key-service federation's first aggregate, logged by hand.
#[test]
fn a_key_holder_steering_a_sum_inside_its_bound_is_caught_by_the_check() {
    // Coordinate 5 moved by 1: inside every bound, so t holders publish it.
    let lie = |p: &CkksParams, shift: u32, _: usize, s: &mut Vec<u8>| {
        steer(p, s, 5, 1i128 << shift, &[true, true]);
    };
    let (h, changed) = round_with_a_liar("adv-liar-inbound-plain", false, lie);
    assert!(
        !h.aborted && changed,
        "unchecked, the lie is published: {h:?}"
    );
    // t + 1 holders: the shares check each other.
    let (h, changed) = round_with_a_liar("adv-liar-inbound", true, lie);
    assert!(h.aborted, "{h:?}");
    let why = h.abort_reason.unwrap();
    assert!(why.contains("inconsistent"), "{why}");
    assert!(!changed, "nothing was published");
    // A random share, and one crafted so that the check's sum moves by 1
    // only (2·δ ≡ 1 mod Q, on holder 2 of the set): caught too.
    let (h, _) = round_with_a_liar("adv-liar-random-checked", true, |p, _, _, s| {
        let q0 = i128::from(p.q()[0]);
        steer(p, s, 3, q0 / 3, &[true, false]);
    });
    assert!(h.abort_reason.unwrap().contains("failed its checks"));
}

#[test]
fn a_key_holder_that_keeps_lying_is_identified_and_left_out() {
    // Five key holders, t = 3: each checked decryption asks four.
    let mut fed = liar_federation("adv-liar-hunt", 10, 5, true);
    let liar = fed.clients[1].id().to_string();
    let lie = |p: &CkksParams, shift: u32, _: usize, s: &mut Vec<u8>| {
        steer(p, s, 2, 3i128 << shift, &[true, true]);
    };
    let mut rounds = 0;
    while fed.coord.identified_liars().is_empty() {
        rounds += 1;
        assert!(rounds <= 5, "the liar is identified within five rounds");
        let h = run_round_with(&mut fed, Some(&liar), &lie);
        if let Some(why) = h.abort_reason.as_deref() {
            assert!(why.contains("inconsistent"), "round {rounds}: {why}");
        }
    }
    assert_eq!(fed.coord.identified_liars(), std::slice::from_ref(&liar));
    // Named in the abort reason when a failure identifies it.
    let named = fed.coord.history().iter().any(|h| {
        h.abort_reason
            .as_deref()
            .is_some_and(|w| w.contains("identified") && w.contains(&liar))
    });
    let last_failed = fed.coord.history().last().is_some_and(|h| h.aborted);
    assert_eq!(named, last_failed);
    // Afterwards it is never asked, and rounds close again.
    for _ in 0..2 {
        let h = run_round_with(&mut fed, Some(&liar), &lie);
        assert!(!h.aborted, "{h:?}");
    }
    // The record survives a restart of the coordinator.
    let mut fed = fed.restart_coordinator(|_| ()).map_err(|e| e.0).unwrap();
    let h = run_round_with(&mut fed, Some(&liar), &lie);
    assert!(!h.aborted, "{h:?}");
}

fn ks_request(
    ledger: &mut Ledger,
    cfg: &FederationConfig,
    round: u64,
    ids: &[&str],
    chunks: u32,
) -> messages::KeyServiceDecrypt {
    ledger
        .append(
            round,
            EntryBody::RoundOpened(RoundOpened {
                parameters: Default::default(),
                participants: Vec::new(),
                dp: DpSettings::no_dp(1.0, round),
            }),
        )
        .unwrap();
    let mut inputs = Vec::new();
    for id in ids {
        let i = ledger
            .append(
                round,
                EntryBody::UpdateReceived(UpdateReceived {
                    client_id: (*id).into(),
                    ciphertext_hash: [round as u8; 32],
                }),
            )
            .unwrap()
            .index;
        inputs.push(AggregateInput {
            update_index: i,
            client_id: (*id).into(),
            ciphertext_hash: [round as u8; 32],
        });
    }
    let a = ledger
        .append_aggregate(round, [1; 32], inputs.clone())
        .unwrap()
        .index;
    messages::KeyServiceDecrypt {
        federation: cfg.name.clone(),
        round,
        aggregate_proof: ledger.entry_proof(a).unwrap(),
        inputs,
        consistency_proofs: Vec::new(),
        chunks,
        crs: Crs([4; 32]),
        epoch: 1,
    }
}

#[test]
fn the_key_service_refuses_a_forked_log_another_log_and_revoked_clients() {
    let cfg = common::config("adv-ks-fork", 3, "keys = \"key-service\"\nquorum = 2");
    let (roster, _) = make_roster(&cfg.name, 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let roster_file = dir.path().join("roster.json");
    roster.save(&roster_file).unwrap();
    let seed = [3u8; 32];
    let key = LogSigner::from_seed(&seed).public_key();
    let mut ks = KeyService::new(
        cfg.clone(),
        roster.clone(),
        zeroize::Zeroizing::new([8; 32]),
        key,
        "coordinator",
        Some(dir.path().join("ks.json")),
    )
    .unwrap()
    .with_roster_file(roster_file.clone());
    let sizes = cfg.sizes(3).unwrap();
    let dim = cfg.model_spec().unwrap().build(0).unwrap().num_params();
    let chunks = cipherflow_fed::PackingPlan::for_federation(&cfg, &sizes, None, dim)
        .unwrap()
        .chunks as u32;
    let mut honest = Ledger::create(
        &dir.path().join("a.db"),
        &cfg.name,
        LogSigner::from_seed(&seed),
    )
    .unwrap();
    let r1 = ks_request(&mut honest, &cfg, 1, &["client-1", "client-2"], chunks);
    let first = ks.decrypt("coordinator", &r1).unwrap();
    // A repeated request gets the very same share, not fresh noise to
    // average away.
    let again = ks.decrypt("coordinator", &r1).unwrap();
    assert_eq!(
        again.iter().map(|p| &p.share).collect::<Vec<_>>(),
        first.iter().map(|p| &p.share).collect::<Vec<_>>(),
        "the key service drew fresh noise for a repeat"
    );
    // The key epoch is pinned with the CRS.
    let mut other_epoch = r1.clone();
    other_epoch.epoch = 2;
    let e = ks.decrypt("coordinator", &other_epoch).unwrap_err();
    assert!(
        matches!(&e, FedError::Refused(m) if m.contains("epoch")),
        "{e}"
    );
    // A fork: the same log id and key, other history, a larger tree.
    let mut fork = Ledger::create(
        &dir.path().join("b.db"),
        &cfg.name,
        LogSigner::from_seed(&seed),
    )
    .unwrap();
    ks_request(&mut fork, &cfg, 1, &["client-1", "client-3"], chunks);
    let mut r2 = ks_request(&mut fork, &cfg, 2, &["client-2", "client-3"], chunks);
    // Without a consistency proof, and with one that is not from the
    // key service's last head, the fork is refused.
    let e = ks.decrypt("coordinator", &r2).unwrap_err();
    assert!(
        matches!(&e, FedError::Refused(m) if m.contains("consistency")),
        "{e}"
    );
    let size = fork.len();
    let proof = fork.consistency_proof(1, size).unwrap();
    r2.consistency_proofs = vec![proof];
    let e = ks.decrypt("coordinator", &r2).unwrap_err();
    assert!(
        matches!(&e, FedError::Refused(m) if m.contains("no consistency proof from tree size")),
        "{e}"
    );
    // A proof from exactly the head the key service last saw (the one r1's
    // entry proof is signed over, covering all of `honest`), made from the
    // fork: the sizes match, so only the proof's verification refuses it.
    let r1_proof = &r1.aggregate_proof;
    let head = r1_proof.sth.tree_size;
    assert_eq!(head, honest.len());
    let fake = fork.consistency_proof(head, size).unwrap();
    r2.consistency_proofs = vec![fake];
    let e = ks.decrypt("coordinator", &r2).unwrap_err();
    assert!(
        matches!(&e, FedError::Refused(m) if m.contains("ledger not append-only")),
        "a forked log passed: {e}"
    );
    // The honest log's continuation, with its proof, is accepted.
    let seen = honest.len();
    let mut r3 = ks_request(&mut honest, &cfg, 2, &["client-2", "client-3"], chunks);
    let proof = honest.consistency_proof(seen, honest.len()).unwrap();
    r3.consistency_proofs = vec![proof];
    ks.decrypt("coordinator", &r3).unwrap();
    // Another log signed with the same key (another name) is refused.
    let mut other = Ledger::create(
        &dir.path().join("c.db"),
        "another-federation",
        LogSigner::from_seed(&seed),
    )
    .unwrap();
    let r4 = ks_request(&mut other, &cfg, 3, &["client-1", "client-2"], chunks);
    let e = ks.decrypt("coordinator", &r4).unwrap_err();
    assert!(
        matches!(&e, FedError::Refused(m) if m.contains("ledger proof")),
        "{e}"
    );
    // A revocation in the roster file takes effect without a restart.
    let req = messages::EnrollRequest {
        federation: cfg.name.clone(),
    };
    ks.enroll("client-3", &req).unwrap();
    let mut r = roster.clone();
    r.revoked.push("client-3".into());
    r.save(&roster_file).unwrap();
    let e = ks.enroll("client-3", &req).unwrap_err();
    assert!(matches!(e, FedError::Revoked(_)), "{e}");
}

/// A coordinator holds the ledger's signing key, so it can log a key-setup
/// entry of its choosing. A client checks the entry against what it
/// pinned: one field changed at a time (kind, CRS, epoch, threshold,
/// parties) is refused; the same forgery with nothing changed passes, so
/// each refusal is that field's.
#[test]
fn a_key_setup_entry_that_differs_in_one_field_is_refused() {
    use cipherflow_ledger::entry::CustomEntry;
    let cfg = common::config("adv-ks-entry", 1, "threshold = 2\nquorum = 3");
    let name = cfg.name.clone();
    let mut fed = Fed::unjoined(cfg, 3);
    fed.join_all();
    for i in 0..3 {
        fed.deal(i);
    }
    let key = common::harness::signer().public_key();
    let log_id = cipherflow_ledger::log_id(&key, &name);
    let id = fed.clients[0].id().to_string();
    let query = fed.clients[0].key_setup_query();
    let genuine = fed.coord.get_key_setup(&id, &query).unwrap();
    let proof = genuine.key_setup_proof.clone().unwrap();
    let EntryBody::Custom(entry) = proof.verify(&key, Some(&log_id)).unwrap().body else {
        panic!("the key-setup proof is of a custom entry")
    };
    let record = KeySetupRecord::parse(&entry.data).unwrap();
    // A log of the coordinator's making: same name and key, one entry.
    let dir = tempfile::tempdir().unwrap();
    let forge = |n: usize, kind: &str, record: &KeySetupRecord| {
        let path = dir.path().join(format!("forged-{n}.db"));
        let mut log = Ledger::create(&path, &name, common::harness::signer()).unwrap();
        let body = EntryBody::Custom(CustomEntry {
            kind: kind.into(),
            data: record.to_entry().data,
        });
        let i = log.append(0, body).unwrap().index;
        let mut b = genuine.clone();
        b.key_setup_proof = Some(log.entry_proof(i).unwrap());
        b
    };
    let edit = |f: &dyn Fn(&mut KeySetupRecord)| {
        let mut r = record.clone();
        f(&mut r);
        r
    };
    let edits: [(&str, KeySetupRecord); 4] = [
        ("crs", edit(&|r| r.crs[0] ^= 1)),
        ("epoch", edit(&|r| r.epoch += 1)),
        ("threshold", edit(&|r| r.threshold = 3)),
        ("parties", edit(&|r| r.parties = vec![1, 2])),
    ];
    let mut cases: Vec<(String, messages::KeySetupBundle)> = edits
        .iter()
        .enumerate()
        .map(|(n, (field, r))| (field.to_string(), forge(n, "key-setup", r)))
        .collect();
    cases.push(("kind".into(), forge(9, "key-setup-v2", &record)));
    for (field, bundle) in &cases {
        let e = fed.clients[0].on_key_setup(bundle).unwrap_err();
        assert!(
            matches!(&e, FedError::Refused(m) if m.contains("does not match this client's")),
            "{field}: {e}"
        );
    }
    // The same forgery, unchanged, is accepted: the refusals above are the
    // fields', not the forgery's.
    assert!(fed.clients[0]
        .on_key_setup(&forge(10, "key-setup", &record))
        .unwrap());
}

/// A client pinned the ledger key: a join reply naming another key (with
/// a log id that matches that key) is refused.
#[test]
fn a_ledger_key_other_than_the_pinned_one_is_refused() {
    let cfg = common::config("adv-ledger-key", 1, "threshold = 2\nquorum = 3");
    let name = cfg.name.clone();
    let mut fed = Fed::unjoined(cfg, 3);
    let c = &mut fed.clients[0];
    let mut r = fed.coord.join(c.id(), &c.join_request()).unwrap();
    let other = LogSigner::from_seed(&[8; 32]).public_key();
    r.ledger_public_key = other;
    r.ledger_log_id = cipherflow_ledger::log_id(&other, &name);
    let e = c.on_join(&r).unwrap_err();
    assert!(
        matches!(&e, FedError::Refused(m) if m.contains("differs from the pinned one")),
        "{e}"
    );
    // The genuine reply is accepted.
    let r = fed.coord.join(c.id(), &c.join_request()).unwrap();
    c.on_join(&r).unwrap();
}

/// A coordinator that announces a round with weaker protection than the
/// federation's configuration — a wider clip, a smaller noise share, another
/// scale, shift or noise kind, another chunk count — is refused before the
/// client trains: each client recomputes the quantization from its own copy
/// of the configuration. One field at a time.
#[test]
fn a_round_with_other_quantization_or_noise_is_refused() {
    let cfg = common::config(
        "adv-quant",
        2,
        "threshold = 2\nquorum = 3\n[dp]\nepsilon = 3.0\n",
    );
    let mut fed = Fed::with_config(cfg, 3);
    fed.open_round();
    let genuine = train_task(&fed.task(0));
    let ShareNoise::DiscreteGaussian(sigma) = genuine.quantization.noise else {
        panic!("a DP federation adds discrete Gaussian noise")
    };
    assert!(sigma > 0.0, "a DP federation adds noise");
    type Edit<'a> = (&'a str, &'a dyn Fn(&mut messages::TrainTask));
    let edits: [Edit; 8] = [
        ("clip", &|t| t.quantization.clip *= 2.0),
        ("gamma", &|t| t.quantization.gamma *= 2.0),
        ("l2 bound", &|t| t.quantization.l2_bound *= 2.0),
        ("noise σ", &|t| {
            t.quantization.noise = ShareNoise::DiscreteGaussian(sigma / 2.0)
        }),
        ("weight reference", &|t| {
            t.quantization.weight_reference *= 2.0
        }),
        ("shift", &|t| t.quantization.shift -= 1),
        ("noise kind", &|t| {
            t.quantization.noise = ShareNoise::Skellam(sigma * sigma)
        }),
        ("chunks", &|t| t.chunks += 1),
    ];
    for (what, edit) in edits {
        let mut t = genuine.clone();
        edit(&mut t);
        let e = fed.clients[0].handle(&with_train(t)).unwrap_err();
        assert!(
            matches!(&e, FedError::Refused(m) if m.contains("quantization or noise differs")),
            "{what}: {e}"
        );
    }
    // The genuine task is still accepted.
    assert!(matches!(
        fed.clients[0].handle(&with_train(genuine)).unwrap(),
        Action::Upload(_)
    ));
}

/// The global model's norm bound is inclusive: a model exactly at
/// `max_model_norm` is trained on.
#[test]
fn a_global_model_exactly_at_the_norm_bound_is_accepted() {
    let probe = common::config("adv-norm", 1, "threshold = 2\nquorum = 3");
    let mut model = probe.model_spec().unwrap().build(probe.model_seed).unwrap();
    let w = cipherflow_fed::training::flatten(&mut model);
    let norm = w
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    let cfg = common::config(
        "adv-norm",
        1,
        &format!("threshold = 2\nquorum = 3\nmax_model_norm = {norm:?}"),
    );
    assert_eq!(cfg.max_model_norm, norm);
    let mut fed = Fed::with_config(cfg, 3);
    fed.open_round();
    let t = fed.task(0);
    assert!(matches!(
        fed.clients[0].handle(&t).unwrap(),
        Action::Upload(_)
    ));
}

/// Key setup: a dealing task for another epoch or threshold is refused
/// (one field at a time), and an incomplete bundle changes nothing.
#[test]
fn key_setup_tasks_and_bundles_are_checked() {
    let cfg = common::config("adv-deal", 1, "threshold = 2\nquorum = 3");
    let mut fed = Fed::unjoined(cfg, 3);
    fed.join_all();
    let Task::KeySetup(genuine) = fed.task(0) else {
        panic!("a key-setup task first")
    };
    for (what, edit) in [
        (
            "epoch",
            &(|k: &mut messages::KeySetupTask| k.epoch += 1)
                as &dyn Fn(&mut messages::KeySetupTask),
        ),
        ("threshold", &|k: &mut messages::KeySetupTask| {
            k.threshold += 1
        }),
    ] {
        let mut k = genuine.clone();
        edit(&mut k);
        let e = fed.clients[0].handle(&Task::KeySetup(k)).unwrap_err();
        assert!(
            matches!(&e, FedError::Refused(m) if m.contains("another epoch or threshold")),
            "{what}: {e}"
        );
    }
    // Client 1 deals; the others have not: its bundle is incomplete.
    let Action::PostKeySetup(p) = fed.clients[0].handle(&Task::KeySetup(genuine)).unwrap() else {
        panic!("client 1 deals")
    };
    let id = fed.clients[0].id().to_string();
    let bundle = fed.coord.post_key_setup(&id, &p).unwrap();
    assert!(!bundle.complete);
    assert!(!fed.clients[0].on_key_setup(&bundle).unwrap());
    assert!(!fed.clients[0].has_keys());
    // The others deal; now the bundle completes the setup.
    for i in 1..3 {
        fed.deal(i);
    }
    let c = &mut fed.clients[0];
    let b = fed
        .coord
        .get_key_setup(c.id(), &c.key_setup_query())
        .unwrap();
    assert!(b.complete);
    assert!(c.on_key_setup(&b).unwrap());
}

/// The coordinator's receipt must prove that this client's update — its
/// id, its ciphertext's hash, this round — is in the log. Another client's
/// receipt is refused, and so is a receipt forged by the coordinator (it
/// holds the ledger key) that differs in one of the three.
#[test]
fn a_receipt_for_another_update_is_refused() {
    let mut fed = Fed::new("adv-receipt", 3, 2, 1);
    fed.open_round();
    let mut receipts = Vec::new();
    for i in 0..2 {
        let t = fed.task(i);
        let Action::Upload(chunks) = fed.clients[i].handle(&t).unwrap() else {
            panic!("client {i} uploads")
        };
        let id = fed.clients[i].id().to_string();
        receipts.push(fed.coord.upload(&id, &chunks).unwrap());
    }
    let refused = |e: &FedError| matches!(e, FedError::Refused(m) if m.contains("not for this client's update"));
    // Client 2's receipt shown to client 1.
    let e = fed.clients[0].on_receipt(&receipts[1]).unwrap_err();
    assert!(refused(&e), "{e}");
    // What client 1's genuine receipt proves.
    let key = common::harness::signer().public_key();
    let log_id = cipherflow_ledger::log_id(&key, "adv-receipt");
    let proof = receipts[0].entry_proof.clone().unwrap();
    let entry = proof.verify(&key, Some(&log_id)).unwrap();
    let EntryBody::UpdateReceived(mine) = entry.body else {
        panic!("an update receipt")
    };
    let round = entry.round;
    // Forged logs: same name and key, the round opened, one entry.
    let dir = tempfile::tempdir().unwrap();
    let forge = |n: usize, at: u64, client: &str, hash: [u8; 32]| {
        let mut log = Ledger::create(
            &dir.path().join(format!("f{n}.db")),
            "adv-receipt",
            common::harness::signer(),
        )
        .unwrap();
        common::open_rounds(&mut log, at);
        let i = log
            .append(
                at,
                EntryBody::UpdateReceived(UpdateReceived {
                    client_id: client.into(),
                    ciphertext_hash: hash,
                }),
            )
            .unwrap()
            .index;
        messages::UploadReceipt {
            ledger_index: i,
            entry_proof: Some(log.entry_proof(i).unwrap()),
            duplicate: false,
        }
    };
    let mut other_hash = mine.ciphertext_hash;
    other_hash[0] ^= 1;
    for (what, receipt) in [
        ("client", forge(0, round, "client-2", mine.ciphertext_hash)),
        ("hash", forge(1, round, &mine.client_id, other_hash)),
        (
            "round",
            forge(2, round + 1, &mine.client_id, mine.ciphertext_hash),
        ),
    ] {
        let e = fed.clients[0].on_receipt(&receipt).unwrap_err();
        assert!(refused(&e), "{what}: {e}");
        assert!(
            !fed.clients[0].uploaded_in(round),
            "{what}: nothing recorded"
        );
    }
    // The same forgery, unchanged, passes; so does the genuine receipt.
    fed.clients[0]
        .on_receipt(&forge(3, round, &mine.client_id, mine.ciphertext_hash))
        .unwrap();
    fed.clients[0].on_receipt(&receipts[0]).unwrap();
    assert!(fed.clients[0].uploaded_in(round));
}

/// "My update was counted" must name this client's update — id,
/// ciphertext hash and round. A counted proof forged by the coordinator
/// (it holds the ledger key) that differs in one of the three is refused
/// and the update stays pending; the unchanged forgery passes.
#[test]
fn a_counted_proof_for_another_update_is_refused() {
    let mut fed = Fed::new("adv-counted", 3, 2, 1);
    fed.open_round();
    let t = fed.task(0);
    let Action::Upload(chunks) = fed.clients[0].handle(&t).unwrap() else {
        panic!("client 1 uploads")
    };
    let id = fed.clients[0].id().to_string();
    let receipt = fed.coord.upload(&id, &chunks).unwrap();
    fed.clients[0].on_receipt(&receipt).unwrap();
    // A resent receipt (the coordinator answers a resend with the same
    // one) is recorded once: one counted proof clears the update below.
    fed.clients[0].on_receipt(&receipt).unwrap();
    let key = common::harness::signer().public_key();
    let log_id = cipherflow_ledger::log_id(&key, "adv-counted");
    let proof = receipt.entry_proof.clone().unwrap();
    let entry = proof.verify(&key, Some(&log_id)).unwrap();
    let EntryBody::UpdateReceived(mine) = entry.body else {
        panic!("an update receipt")
    };
    let round = entry.round;
    assert!(fed.clients[0].uploaded_in(round));
    let dir = tempfile::tempdir().unwrap();
    let forge = |n: usize, at: u64, client: &str, hash: [u8; 32]| {
        let mut log = Ledger::create(
            &dir.path().join(format!("c{n}.db")),
            "adv-counted",
            common::harness::signer(),
        )
        .unwrap();
        common::open_rounds(&mut log, at);
        let mut inputs = Vec::new();
        for (c, h) in [
            (client.to_string(), hash),
            ("client-3".to_string(), [9; 32]),
        ] {
            let i = log
                .append(
                    at,
                    EntryBody::UpdateReceived(UpdateReceived {
                        client_id: c.clone(),
                        ciphertext_hash: h,
                    }),
                )
                .unwrap()
                .index;
            inputs.push(AggregateInput {
                update_index: i,
                client_id: c,
                ciphertext_hash: h,
            });
        }
        let counted = inputs[0].update_index;
        log.append_aggregate(at, [1; 32], inputs).unwrap();
        messages::ProofReply {
            counted_proof: log.counted_proof(counted).unwrap(),
        }
    };
    let mut other_hash = mine.ciphertext_hash;
    other_hash[0] ^= 1;
    for (what, reply) in [
        ("client", forge(0, round, "client-2", mine.ciphertext_hash)),
        ("hash", forge(1, round, &mine.client_id, other_hash)),
        (
            "round",
            forge(2, round + 1, &mine.client_id, mine.ciphertext_hash),
        ),
    ] {
        let e = fed.clients[0].on_counted_proof(&reply).unwrap_err();
        assert!(
            matches!(&e, FedError::Refused(m) if m.contains("for another update")),
            "{what}: {e}"
        );
        assert!(fed.clients[0].uploaded_in(round), "{what}: still pending");
    }
    let c = fed.clients[0]
        .on_counted_proof(&forge(3, round, &mine.client_id, mine.ciphertext_hash))
        .unwrap();
    assert_eq!(
        (c.client_id.as_str(), c.round),
        (mine.client_id.as_str(), round)
    );
    assert!(!fed.clients[0].uploaded_in(round), "shown counted");
}

/// A malicious key holder deals Shamir shares that do not fit the
/// federation — another threshold, another party list, a share that is
/// another dealer's, or one meant for another recipient — sealed properly
/// (the coordinator cannot see inside). Each honest recipient refuses the
/// key setup; an honest dealing in the same place completes it.
#[test]
fn dealing_shares_that_do_not_fit_the_federation_are_refused() {
    use cipherflow_ckks::multiparty::{shamir_deal, SecretShare};
    use cipherflow_fed::envelope;
    use cipherflow_fed::parse_public;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[derive(Debug, Clone, Copy)]
    enum Fault {
        Threshold,
        Parties,
        Dealer,
        Recipient,
        None,
    }
    for fault in [
        Fault::Threshold,
        Fault::Parties,
        Fault::Dealer,
        Fault::Recipient,
        Fault::None,
    ] {
        let cfg = common::config("adv-dealer", 1, "threshold = 2\nquorum = 3");
        let (mut fed, kx) = Fed::unjoined_keeping_kx(cfg.clone(), 3);
        fed.join_all();
        let Task::KeySetup(task) = fed.task(1) else {
            panic!("a key-setup task")
        };
        // Clients 1 and 3 deal honestly.
        for i in [0, 2] {
            let t = fed.task(i);
            let Action::PostKeySetup(p) = fed.clients[i].handle(&t).unwrap() else {
                panic!("client {i} deals")
            };
            let id = fed.clients[i].id().to_string();
            fed.coord.post_key_setup(&id, &p).unwrap();
        }
        // Client 2 (party 2) deals what `fault` says.
        let params = fed.coord.packing().params().unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(17);
        let dealer = match fault {
            Fault::Dealer => 3,
            _ => 2,
        };
        let sk = SecretShare::generate_for(&params, dealer, &mut rng);
        let (threshold, parties): (usize, Vec<u64>) = match fault {
            Fault::Threshold => (3, vec![1, 2, 3]),
            Fault::Parties => (2, vec![1, 2, 3, 4]),
            _ => (2, vec![1, 2, 3]),
        };
        let dealt = shamir_deal(&params, &sk, threshold, &parties, &mut rng).unwrap();
        let shares: Vec<_> = dealt
            .iter()
            .filter(|s| s.to() == 1 || s.to() == 3)
            .map(|s| {
                let to = match fault {
                    Fault::Recipient => 4 - s.to(), // 1 ↔ 3
                    _ => s.to(),
                };
                let peer = parse_public(&fed.roster.by_party(to).unwrap().kx_public).unwrap();
                envelope::seal(&kx[1], &peer, &cfg.name, task.epoch, 2, to, &s.to_bytes()).unwrap()
            })
            .collect();
        let post = messages::KeySetupPost {
            federation: cfg.name.clone(),
            epoch: task.epoch,
            shares,
        };
        let id = fed.clients[1].id().to_string();
        fed.coord.post_key_setup(&id, &post).unwrap();
        for i in [0, 2] {
            let c = &mut fed.clients[i];
            let b = fed
                .coord
                .get_key_setup(c.id(), &c.key_setup_query())
                .unwrap();
            assert!(b.complete, "{fault:?}");
            match (fault, c.on_key_setup(&b)) {
                (Fault::None, Ok(done)) => assert!(done),
                (Fault::None, Err(e)) => panic!("an honest dealing refused: {e}"),
                (_, Err(FedError::Protocol(m))) => {
                    assert!(
                        m.contains("does not match the federation"),
                        "{fault:?}: {m}"
                    )
                }
                (_, other) => panic!("{fault:?}: {other:?}"),
            }
        }
    }
}

/// A key holder remembers the last signed head it verified: a coordinator
/// that later shows it a forked log (same key and name, another history,
/// an aggregate that would pass every other check) gets no share, with or
/// without a consistency proof; the genuine log is still answered.
#[test]
fn a_key_holder_refuses_a_forked_log() {
    let mut fed = Fed::new("adv-fork", 3, 2, 2);
    fed.upload_all();
    fed.run_decryption(10);
    assert_eq!(fed.coord.history().len(), 1);
    // A key holder that verified a head in round 1.
    let i = (0..3)
        .find(|&i| fed.clients[i].known_tree_size() > 0)
        .expect("a key holder saw the log");
    let seen = fed.clients[i].known_tree_size();
    // Round 2: everyone uploads; the coordinator asks for shares.
    fed.upload_all();
    fed.coord.tick().unwrap();
    let genuine = (0..3)
        .find_map(|j| match fed.task(j) {
            Task::Decrypt(d) => Some(d),
            _ => None,
        })
        .expect("a decryption request");
    // The forged log: rounds 1 and 2, every client's "update", round 2's
    // aggregate, padded past the size the key holder saw.
    let dir = tempfile::tempdir().unwrap();
    let mut log = Ledger::create(
        &dir.path().join("fork.db"),
        "adv-fork",
        common::harness::signer(),
    )
    .unwrap();
    common::open_rounds(&mut log, 2);
    while log.len() + 4 <= seen {
        log.append(
            0,
            EntryBody::Custom(cipherflow_ledger::entry::CustomEntry {
                kind: "padding".into(),
                data: vec![0; 8],
            }),
        )
        .unwrap();
    }
    let mut inputs = Vec::new();
    for c in ["client-1", "client-2", "client-3"] {
        let k = log
            .append(
                2,
                EntryBody::UpdateReceived(UpdateReceived {
                    client_id: c.into(),
                    ciphertext_hash: [c.len() as u8; 32],
                }),
            )
            .unwrap()
            .index;
        inputs.push(AggregateInput {
            update_index: k,
            client_id: c.into(),
            ciphertext_hash: [c.len() as u8; 32],
        });
    }
    let a = log
        .append_aggregate(2, [5; 32], inputs.clone())
        .unwrap()
        .index;
    assert!(log.len() > seen, "the fork is longer than what was seen");
    let mut forged = genuine.clone();
    forged.prepare = true;
    forged.aggregate_proof = log.entry_proof(a).unwrap();
    forged.inputs = inputs;
    // A consistency proof within the fork does not connect to the head
    // the key holder saw; none at all is refused too.
    for consistency in [Some(log.consistency_proof(seen, log.len()).unwrap()), None] {
        forged.consistency_proof = consistency;
        let e = fed.clients[i]
            .handle(&Task::Decrypt(forged.clone()))
            .unwrap_err();
        assert!(
            matches!(&e, FedError::Refused(m) if m.contains("append-only") || m.contains("consistency proof")),
            "{e}"
        );
    }
    assert_eq!(
        fed.clients[i].known_tree_size(),
        seen,
        "the fork was not adopted"
    );
    // A genuine consistency proof, but from another size than the one the
    // key holder saw, is refused as such.
    let real = Ledger::open_read_only(&fed.dir.path().join("coord/ledger.db")).unwrap();
    let agg = &genuine.aggregate_proof;
    let mut other = genuine.clone();
    other.prepare = true;
    other.consistency_proof = Some(real.consistency_proof(seen - 1, agg.sth.tree_size).unwrap());
    let e = fed.clients[i].handle(&Task::Decrypt(other)).unwrap_err();
    assert!(
        matches!(&e, FedError::Refused(m) if m.contains("consistency proof for other sizes")),
        "{e}"
    );
    drop(real);
    // The inputs sent with the request must be the logged ones: one hash
    // changed (same count), or one input dropped.
    let logged = genuine.inputs.clone();
    let mut changed = logged.clone();
    changed[0].ciphertext_hash[0] ^= 1;
    let mut dropped = logged.clone();
    dropped.pop();
    for inputs in [changed, dropped] {
        let mut t = genuine.clone();
        t.prepare = true;
        t.inputs = inputs;
        let e = fed.clients[i].handle(&Task::Decrypt(t)).unwrap_err();
        assert!(
            matches!(&e, FedError::Refused(m) if m.contains("input list does not match")),
            "{e}"
        );
    }
    // The genuine log completes the round.
    fed.run_decryption(10);
    assert_eq!(fed.coord.history().len(), 2);
}
