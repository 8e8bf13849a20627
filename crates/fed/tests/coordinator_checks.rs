//! The coordinator's checks of received messages that only show with more
//! than the smallest federation: an upload from a client not sampled, a
//! share from a key holder not asked, "ready" answers that carry more,
//! multi-chunk uploads and multi-part shares (one field of one later part
//! wrong), the bytes a round reports, and the key service's answers. Each
//! case has one fault, is refused with its own error and counted once, and
//! leaves the genuine message that follows accepted. (Mutation testing of
//! the coordinator found each of these checks unguarded; see
//! crates/fed/README.md.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cipherflow_fed::messages;
use cipherflow_fed::Action;
use cipherflow_fed::FedError;
use cipherflow_fed::FederationConfig;
use cipherflow_fed::KeyService;
use common::harness::{signer, Fed};
use zeroize::Zeroizing;

/// Polls the clients of an open round that everyone uploaded to until a
/// key holder has a real share (not its "ready" answer, which is sent).
/// Returns the holder's index, its share and the last "ready" answer seen.
fn first_share(fed: &mut Fed) -> (usize, Vec<messages::ShareChunk>, messages::ShareChunk) {
    let mut ready = None;
    for _ in 0..10 {
        fed.coord.tick().unwrap();
        for i in 0..fed.clients.len() {
            let t = fed.task(i);
            if let Action::Share(p) = fed.clients[i].handle(&t).unwrap() {
                let id = fed.clients[i].id().to_string();
                if p.iter().any(|x| x.ready) {
                    ready = Some(p[0].clone());
                    fed.coord.send_share(&id, &p).unwrap();
                } else {
                    return (i, p, ready.expect("a ready answer comes first"));
                }
            }
        }
    }
    panic!("no key holder sent a share");
}

#[test]
fn upload_from_a_client_not_sampled_is_refused() {
    // Poisson sampling of four clients at rate 1/2: rounds that sample all
    // are run to the end, rounds that sample fewer than the quorum (2)
    // abort, until one leaves a client out (each round does with
    // probability 10/16).
    let cfg = common::config(
        "sampled",
        40,
        "clients_per_round = 2\nthreshold = 2\nquorum = 2\ndecrypt_attempts = 4",
    );
    let mut fed = Fed::with_config(cfg, 4);
    let (mut uploads, mut idle) = (Vec::new(), Vec::new());
    for _ in 0..40 {
        for i in 0..4 {
            fed.task(i);
        }
        fed.coord.tick().unwrap();
        (uploads, idle) = (Vec::new(), Vec::new());
        for i in 0..4 {
            let t = fed.task(i);
            match fed.clients[i].handle(&t).unwrap() {
                Action::Upload(ch) => uploads.push((i, ch)),
                _ => idle.push(i),
            }
        }
        if uploads.len() >= 2 && !idle.is_empty() {
            break;
        }
        for (i, ch) in &uploads {
            let id = fed.clients[*i].id().to_string();
            let r = fed.coord.upload(&id, ch).unwrap();
            fed.clients[*i].on_receipt(&r).unwrap();
        }
        fed.run_decryption(10);
        fed.clock.advance(1.0);
    }
    assert!(
        !uploads.is_empty() && !idle.is_empty(),
        "no round left a client out"
    );
    let before = fed.coord.metrics().uploads;
    let outsider = fed.clients[idle[0]].id().to_string();
    let refused = fed.coord.metrics().refused;
    // A genuine update, sent under the id of the client left out.
    let e = fed.coord.upload(&outsider, &uploads[0].1).unwrap_err();
    assert!(
        matches!(&e, FedError::Refused(m) if m.contains("was not sampled in round")),
        "{e}"
    );
    assert_eq!(fed.coord.metrics().refused, refused + 1, "counted once");
    assert_eq!(fed.coord.metrics().uploads, before);
    for (i, ch) in &uploads {
        let id = fed.clients[*i].id().to_string();
        let r = fed.coord.upload(&id, ch).unwrap();
        assert!(!r.duplicate);
    }
    assert_eq!(fed.coord.metrics().uploads, before + uploads.len() as u64);
    // A second, different upload of a sampled client counts once too.
    let (i, ch) = &uploads[0];
    let mut other = ch.clone();
    let byte = other[0].ciphertext[74..]
        .iter_mut()
        .find(|b| **b != 0)
        .unwrap();
    *byte &= *byte - 1;
    let id = fed.clients[*i].id().to_string();
    let e = fed.coord.upload(&id, &other).unwrap_err();
    assert!(
        matches!(&e, FedError::Replay(m) if m.contains("already uploaded")),
        "{e}"
    );
    assert_eq!(fed.coord.metrics().refused, refused + 2);
}

#[test]
fn shares_from_key_holders_not_asked_and_swollen_ready_answers() {
    // Unchecked, so that t = 2 of the 3 holders are asked.
    let cfg = common::config(
        "asked",
        1,
        "threshold = 2\nquorum = 3\ndecrypt_attempts = 4\nchecked_decryption = false",
    );
    let mut fed = Fed::with_config(cfg, 3);
    fed.upload_all();
    let (i, parts, ready) = first_share(&mut fed);
    let refused = fed.coord.metrics().refused;
    // The genuine share, sent under each other key holder's id: the one
    // not in the active set is refused as such; the other active holder's
    // is refused as a share made by another party.
    let mut not_asked = 0;
    for j in (0..3).filter(|&j| j != i) {
        let id = fed.clients[j].id().to_string();
        match fed.coord.send_share(&id, &parts).unwrap_err() {
            FedError::Refused(m) if m.contains("was not asked to decrypt") => not_asked += 1,
            FedError::Protocol(m) if m.contains("for another party") => {}
            e => panic!("{e}"),
        }
    }
    assert_eq!(not_asked, 1, "one of the three holders was not asked");
    // A "ready" answer carries nothing else: one extra field at a time.
    let id = fed.clients[i].id().to_string();
    let swollen: [&dyn Fn(&mut messages::ShareChunk); 3] =
        [&|p| p.share = vec![1], &|p| p.index = 1, &|p| p.total = 2];
    for edit in swollen {
        let mut p = ready.clone();
        edit(&mut p);
        let e = fed.coord.send_share(&id, &[p]).unwrap_err();
        assert!(
            matches!(&e, FedError::Protocol(m) if m.contains("a ready answer carries no share")),
            "{e}"
        );
    }
    assert_eq!(
        fed.coord.metrics().refused,
        refused + 5,
        "each counted once"
    );
    // None of it displaced the genuine share.
    let r = fed.coord.send_share(&id, &parts).unwrap();
    assert!(r.accepted && !r.duplicate);
    fed.run_decryption(10);
    assert_eq!(fed.coord.history().len(), 1);
    assert_eq!(fed.coord.history()[0].decryptors, 2);
}

/// A 495,002-weight MLP: more than 16 ciphertext chunks, so an upload has
/// several chunks and a decryption share several parts.
fn big_model(name: &str) -> FederationConfig {
    FederationConfig::parse(&format!(
        "name = \"{name}\"\nrounds = 1\nthreshold = 2\nquorum = 3\nround_timeout_s = 5\n\
         decrypt_attempts = 4\n\
         [model]\ninput = [30]\nlayers = [{{type = \"dense\", units = 15000}}, \
         {{type = \"relu\"}}, {{type = \"dense\", units = 2}}]\n\
         [training]\nepochs = 1\nbatch_size = 64\nlr = 0.01\n"
    ))
    .unwrap()
}

#[test]
fn multi_chunk_uploads_and_multi_part_shares() {
    let mut fed = Fed::with_config(big_model("big"), 3);
    fed.open_round();
    let t = fed.task(0);
    let Action::Upload(chunks) = fed.clients[0].handle(&t).unwrap() else {
        panic!("client 1 uploads")
    };
    assert!(chunks.len() > 16, "{} chunks", chunks.len());
    let refused = fed.coord.metrics().refused;
    // One field of the second chunk wrong at a time.
    let faults: [&dyn Fn(&mut messages::UploadChunk); 5] = [
        &|c| c.index += 1,
        &|c| c.total += 1,
        &|c| c.round += 1,
        &|c| c.num_examples += 1,
        &|c| c.federation.push('x'),
    ];
    for f in faults {
        let mut bad = chunks.clone();
        f(&mut bad[1]);
        let e = fed.coord.upload("client-1", &bad).unwrap_err();
        assert!(
            matches!(&e, FedError::Protocol(m) if m.contains("chunks numbered")),
            "{e}"
        );
    }
    // A chunk missing.
    let e = fed
        .coord
        .upload("client-1", &chunks[..chunks.len() - 1])
        .unwrap_err();
    assert!(
        matches!(&e, FedError::Protocol(m) if m.contains("chunks numbered")),
        "{e}"
    );
    assert_eq!(fed.coord.metrics().refused, refused + 6);
    // The genuine upload, then the others'.
    let bytes: u64 = chunks.iter().map(|c| c.ciphertext.len() as u64).sum();
    let r = fed.coord.upload("client-1", &chunks).unwrap();
    fed.clients[0].on_receipt(&r).unwrap();
    for i in 1..3 {
        assert!(fed.step(i), "client {i} uploads");
    }
    assert_eq!(fed.coord.metrics().upload_bytes, 3 * bytes);
    // A decryption share in several parts: one field of the second part
    // wrong at a time.
    let (i, parts, _) = first_share(&mut fed);
    assert!(parts.len() > 1, "{} parts", parts.len());
    let id = fed.clients[i].id().to_string();
    let refused = fed.coord.metrics().refused;
    let faults: [&dyn Fn(&mut messages::ShareChunk); 5] = [
        &|p| p.index += 1,
        &|p| p.total += 1,
        &|p| p.round += 1,
        &|p| p.attempt += 1,
        &|p| p.ready = true,
    ];
    for f in faults {
        let mut bad = parts.clone();
        f(&mut bad[1]);
        let e = fed.coord.send_share(&id, &bad).unwrap_err();
        assert!(
            matches!(&e, FedError::Protocol(m) if m.contains("out of order") || m.contains("carries no share")),
            "{e}"
        );
    }
    assert_eq!(fed.coord.metrics().refused, refused + 5);
    fed.coord.send_share(&id, &parts).unwrap();
    fed.run_decryption(10);
    let h = &fed.coord.history()[0];
    assert_eq!(
        (h.contributors, h.decryptors),
        (3, 3),
        "checked: t + 1 holders"
    );
    // The round reports the bytes of the three accepted uploads, not of
    // the refused ones.
    assert_eq!(h.upload_bytes, 3 * bytes);
}

#[test]
fn key_service_answers_are_checked() {
    let cfg = common::config("ks-checks", 1, "keys = \"key-service\"");
    let mut fed = Fed::unjoined(cfg.clone(), 3);
    fed.join_all();
    let mut ks = KeyService::new(
        cfg.clone(),
        fed.roster.clone(),
        Zeroizing::new([9u8; 32]),
        signer().public_key(),
        "coordinator",
        None,
    )
    .unwrap();
    for c in fed.clients.iter_mut() {
        let r = ks
            .enroll(
                c.id(),
                &messages::EnrollRequest {
                    federation: cfg.name.clone(),
                },
            )
            .unwrap();
        c.on_enroll(r).unwrap();
    }
    let refused = fed.coord.metrics().refused;
    for i in 0..3 {
        fed.task(i);
    }
    assert!(
        fed.coord.tick().unwrap().is_none(),
        "collecting: no request"
    );
    // An answer while the round still collects updates.
    let early = messages::ShareChunk {
        federation: cfg.name.clone(),
        round: 1,
        total: 1,
        ..Default::default()
    };
    let e = fed.coord.key_service_share(&[early]).unwrap_err();
    assert!(
        matches!(&e, FedError::Protocol(m) if m.contains("no key-service decryption pending")),
        "{e}"
    );
    for i in 0..3 {
        assert!(fed.step(i), "client {i} uploads");
    }
    let req = (0..3)
        .find_map(|_| fed.coord.tick().unwrap())
        .expect("the coordinator asks the key service");
    let parts = ks.decrypt("coordinator", &req).unwrap();
    // An answer naming another round, and an empty one.
    let mut other = parts.clone();
    other.iter_mut().for_each(|p| p.round += 1);
    for bad in [other, Vec::new()] {
        let e = fed.coord.key_service_share(&bad).unwrap_err();
        assert!(
            matches!(&e, FedError::Replay(m) if m.contains("for another round")),
            "{e}"
        );
    }
    assert_eq!(
        fed.coord.metrics().refused,
        refused + 3,
        "each counted once"
    );
    assert!(fed.coord.history().is_empty());
    // The genuine answer closes the round.
    fed.coord.key_service_share(&parts).unwrap();
    let h = &fed.coord.history()[0];
    assert_eq!((h.contributors, h.decryptors, h.aborted), (3, 1, false));
}

#[test]
fn per_client_metrics_count_joined_missed_shares_and_latency() {
    // Four clients, quorum 3: client-4 stays online (it decrypts) but never
    // uploads; the round closes on the timeout with three updates.
    let cfg = common::config(
        "per-client",
        1,
        "threshold = 3\nquorum = 3\ndecrypt_attempts = 4",
    );
    let mut fed = Fed::with_config(cfg, 4);
    fed.open_round();
    fed.clock.advance(1.5);
    for i in 0..3 {
        assert!(fed.step(i), "client {i} uploads");
    }
    fed.task(3); // seen, but it sends nothing
    fed.clock.advance(fed.cfg.round_timeout_s * 1.01);
    fed.coord.tick().unwrap();
    fed.run_decryption(10);
    assert_eq!(fed.coord.history().len(), 1, "{:?}", fed.coord.history());
    let m = fed.coord.metrics();
    for id in ["client-1", "client-2", "client-3"] {
        let c = &m.clients[id];
        assert_eq!(
            (c.joined, c.missed, c.upload_latency_count),
            (1, 0, 1),
            "{id}"
        );
        assert!(
            c.upload_latency_sum >= 1.5,
            "{id}: {}",
            c.upload_latency_sum
        );
        assert!(c.upload_bytes > 0);
    }
    let late = &m.clients["client-4"];
    assert_eq!((late.joined, late.missed, late.upload_bytes), (0, 1, 0));
    // Checked decryption: t + 1 = 4 shares, one from each.
    assert_eq!(m.clients.values().map(|c| c.shares).sum::<u64>(), 4);
    // A refused message counts against its sender.
    let bad = messages::TaskRequest {
        federation: "other".into(),
        wait_ms: 0,
        known_tree_size: 0,
    };
    assert!(fed.coord.next_task("client-2", &bad).is_err());
    assert_eq!(fed.coord.metrics().clients["client-2"].refused, 1);
    assert_eq!(fed.coord.metrics().clients["client-1"].refused, 0);
}
