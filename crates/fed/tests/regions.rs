//! Hierarchical aggregation: regional aggregators sum their clients'
//! updates and forward one ciphertext per round. The sums decrypt to what
//! a flat federation decrypts; a region that forges its commitment, counts
//! someone else's client or forwards another sum is refused; the
//! coordinator and the regions resume after a restart; the simulator runs
//! whole federations through regions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cipherflow_ckks::multiparty::SharedCiphertext;
use cipherflow_fed::messages::{RegionPoll, RegionalSum, UploadChunk};
use cipherflow_fed::sim::{simulate, split_among, DropStage, SimOptions};
use cipherflow_fed::{region_ledger_name, Action, FedError, RegionalAggregator};
use cipherflow_ledger::entry::{EntryBody, UpdateReceived};
use cipherflow_ledger::{verify_log, AggregateInput, Ledger, LogSigner, NewEntry, VerifyOptions};
use common::harness::{on_both, region_signer, signer, Fed};
use sha2::{Digest, Sha256};

/// `n` clients in `k` regions, threshold 2, quorum 2.
fn regional(name: &str, n: usize, k: usize, rounds: u64) -> (Fed, Vec<RegionalAggregator>) {
    let cfg = common::config(
        name,
        rounds,
        "threshold = 2\nquorum = 2\ndecrypt_attempts = 4",
    );
    Fed::with_regions(cfg, n, k)
}

/// Client `i`'s upload for the open round (it trains on the task).
fn train(fed: &mut Fed, i: usize) -> Vec<UploadChunk> {
    let t = fed.task(i);
    match fed.clients[i].handle(&t).unwrap() {
        Action::Upload(ch) => ch,
        other => panic!("client {i} should upload, got {other:?}"),
    }
}

/// Opens the coordinator's round in every region.
fn open_in_regions(fed: &mut Fed, regions: &mut [RegionalAggregator]) {
    fed.open_round();
    for r in regions.iter_mut() {
        let task = fed.coord.region_round(r.id()).unwrap();
        r.open_round(&task).unwrap();
    }
}

/// Every client in `which` trains and uploads through its region (client
/// `i` to region `i mod k`), checking the region's receipt; returns the
/// uploads.
fn upload_through(
    fed: &mut Fed,
    regions: &mut [RegionalAggregator],
    which: &[usize],
) -> Vec<Vec<UploadChunk>> {
    let k = regions.len();
    let mut out = Vec::new();
    for &i in which {
        let ch = train(fed, i);
        let id = fed.clients[i].id().to_string();
        let receipt = regions[i % k]
            .upload_batch(&[(&id, &ch)])
            .unwrap()
            .pop()
            .unwrap()
            .unwrap();
        fed.clients[i].on_receipt(&receipt).unwrap();
        out.push(ch);
    }
    out
}

/// Region `j` (0-based) forwards its sealed sum.
fn forward(fed: &mut Fed, regions: &mut [RegionalAggregator], j: usize) {
    let sum = regions[j].sealed_sum().unwrap().expect("a sealed sum");
    fed.coord.regional_sum(regions[j].id(), &sum).unwrap();
    regions[j].close_round(sum.round).unwrap();
}

/// Every client proves its update of `round` counted.
fn prove_counted(fed: &mut Fed, round: u64) {
    for c in fed.clients.iter_mut() {
        let req = c.proof_request(round).expect("an update to prove");
        let reply = fed.coord.counted_proof(c.id(), &req).unwrap();
        c.on_counted_proof(&reply).unwrap();
    }
}

/// The coordinator's running sum after the regions forwarded theirs is
/// exactly the sum of every client's upload (what a flat federation would
/// hold), the rounds decrypt, every client proves its update counted, and
/// every log verifies: the coordinator's and each region's.
#[test]
fn regional_sums_add_up_to_every_clients_update() {
    on_both("regions-sum", || {
        let (mut fed, mut regions) = regional("regions-sum", 6, 3, 2);
        let poll = RegionPoll {
            federation: "regions-sum".into(),
        };
        for round in 1..=2 {
            open_in_regions(&mut fed, &mut regions);
            // What a region's process polls: the key epoch and its round.
            let st = fed.coord.region_status("region-1", &poll).unwrap();
            assert_eq!(st.keys, Some((fed.coord.crs(), fed.coord.epoch())));
            assert_eq!(st.round.map(|r| r.round), Some(round));
            assert_eq!(st.finished, None);
            let all: Vec<usize> = (0..6).collect();
            let uploads = upload_through(&mut fed, &mut regions, &all);
            for j in 0..3 {
                forward(&mut fed, &mut regions, j);
            }
            let params = fed.coord.params().clone();
            let mut expected: Vec<SharedCiphertext> = Vec::new();
            for up in &uploads {
                for (k, c) in up.iter().enumerate() {
                    let ct = SharedCiphertext::from_bytes(&params, &c.ciphertext).unwrap();
                    match expected.get_mut(k) {
                        Some(s) => s.add_assign(&ct).unwrap(),
                        None => expected.push(ct),
                    }
                }
            }
            let held: Vec<Vec<u8>> = fed
                .coord
                .running_sum()
                .unwrap()
                .iter()
                .map(|c| c.to_bytes())
                .collect();
            let want: Vec<Vec<u8>> = expected.iter().map(|c| c.to_bytes()).collect();
            assert!(
                held == want,
                "round {round}: the regional sums do not add up"
            );
            fed.run_decryption(20);
            let h = fed.coord.history();
            assert_eq!(h.len() as u64, round);
            assert!(h.iter().all(|s| s.contributors == 6 && !s.aborted), "{h:?}");
            prove_counted(&mut fed, round);
        }
        // Finished: the regions are told so (their processes then stop);
        // a region the roster does not list is refused.
        fed.coord.tick().unwrap();
        let st = fed.coord.region_status("region-2", &poll).unwrap();
        assert!(st.finished.is_some() && st.round.is_none(), "{st:?}");
        assert!(fed.coord.region_status("region-9", &poll).is_err());
        let ledger = fed.dir.path().join("coord/ledger.db");
        drop(fed.coord);
        verify_log(&ledger, &signer().public_key(), &VerifyOptions::default()).unwrap();
        drop(regions);
        for j in 1..=3 {
            let l = fed.dir.path().join(format!("region-{j}/ledger.db"));
            verify_log(
                &l,
                &region_signer(j).public_key(),
                &VerifyOptions::default(),
            )
            .unwrap();
        }
    });
}

#[test]
fn a_client_uploads_only_through_its_own_region() {
    let (mut fed, mut regions) = regional("regions-route", 4, 2, 1);
    open_in_regions(&mut fed, &mut regions);
    let ch = train(&mut fed, 0);
    // Client 1 (index 0) belongs to region-1: the coordinator and region-2
    // refuse its upload.
    let e = fed.coord.upload("client-1", &ch).unwrap_err();
    assert!(
        matches!(&e, FedError::Refused(m) if m.contains("through region region-1")),
        "{e}"
    );
    let e = regions[1]
        .upload_batch(&[("client-1", &ch)])
        .unwrap()
        .pop()
        .unwrap();
    assert!(matches!(e, Err(FedError::Refused(_))), "{e:?}");
    // Its own region takes it, with a receipt from the region's ledger.
    let r = regions[0]
        .upload_batch(&[("client-1", &ch)])
        .unwrap()
        .pop()
        .unwrap()
        .unwrap();
    fed.clients[0].on_receipt(&r).unwrap();
    // A receipt from another region's ledger is refused.
    let other = regions[1]
        .upload_batch(&[("client-2", &train(&mut fed, 1))])
        .unwrap();
    let foreign = other.into_iter().next().unwrap().unwrap();
    assert!(fed.clients[0].on_receipt(&foreign).is_err());
}

/// The log a dishonest region writes (it holds its own key): rounds
/// `1..=round` opened, `updates` received in `round`, and an aggregate
/// over them committing the SHA-256 of `chunks`; forwarded for `round`.
fn forged(
    fed: &Fed,
    key: LogSigner,
    region: &str,
    round: u64,
    updates: &[(&str, [u8; 32])],
    chunks: Vec<Vec<u8>>,
) -> RegionalSum {
    let dir = tempfile::tempdir().unwrap();
    let name = region_ledger_name(&fed.cfg.name, region);
    let mut log = Ledger::create(&dir.path().join("forged.db"), &name, key).unwrap();
    common::open_rounds(&mut log, round);
    let appended = log
        .append_batch(
            updates
                .iter()
                .map(|(c, h)| {
                    NewEntry::new(
                        round,
                        EntryBody::UpdateReceived(UpdateReceived {
                            client_id: c.to_string(),
                            ciphertext_hash: *h,
                        }),
                    )
                })
                .collect(),
        )
        .unwrap();
    let inputs: Vec<AggregateInput> = updates
        .iter()
        .zip(&appended)
        .map(|((c, h), a)| AggregateInput {
            update_index: a.index,
            client_id: c.to_string(),
            ciphertext_hash: *h,
        })
        .collect();
    let mut h = Sha256::new();
    for c in &chunks {
        h.update(c);
    }
    let agg = log
        .append_aggregate(round, h.finalize().into(), inputs.clone())
        .unwrap();
    RegionalSum {
        federation: fed.cfg.name.clone(),
        round,
        chunks,
        aggregate_proof: log.entry_proof(agg.index).unwrap(),
        examples: vec![10; inputs.len()],
        inputs,
    }
}

fn upload_hash(ch: &[UploadChunk]) -> [u8; 32] {
    let mut h = Sha256::new();
    for c in ch {
        h.update(&c.ciphertext);
    }
    h.finalize().into()
}

fn refused(r: cipherflow_fed::Result<cipherflow_ledger::EntryProof>, want: &str) {
    match r {
        Err(e) if e.to_string().contains(want) => {}
        other => panic!("expected a refusal naming {want:?}, got {other:?}"),
    }
}

/// A region holds its key and writes what it likes in its own log: the
/// coordinator still refuses a contributor set or a sum that is not the
/// committed one, a client of another region or of nobody, a commitment
/// of another round, kind or log, and a malformed sum — and counts
/// nothing of a refused sum.
#[test]
fn a_region_forging_its_commitment_is_refused() {
    let (mut fed, mut regions) = regional("regions-forge", 4, 2, 2);
    open_in_regions(&mut fed, &mut regions);
    // client-1 and client-3 are region-1's, client-2 and client-4 region-2's.
    let c1 = train(&mut fed, 0);
    let c2 = train(&mut fed, 1);
    let c3 = train(&mut fed, 2);
    let (h1, h2, h3) = (upload_hash(&c1), upload_hash(&c2), upload_hash(&c3));
    let bytes = |ch: &[UploadChunk]| ch.iter().map(|c| c.ciphertext.clone()).collect::<Vec<_>>();
    let r1 = || region_signer(1);
    let refused_before = fed.coord.metrics().refused;

    // A consistent forgery: region-1 commits client-1 and client-3 as its
    // contributors but forwards client-1's update alone as their sum. The
    // coordinator cannot tell (the region committed these bytes); the key
    // holders' shares are for the contributor set, so client-1's update
    // would decrypt masked by client-3's key share. It is the base of the
    // malformed variants below, then accepted.
    let honest_shape = forged(
        &fed,
        r1(),
        "region-1",
        1,
        &[("client-1", h1), ("client-3", h3)],
        bytes(&c1),
    );

    // Someone else's client.
    let s = forged(
        &fed,
        r1(),
        "region-1",
        1,
        &[("client-1", h1), ("client-2", h2)],
        bytes(&c1),
    );
    refused(
        fed.coord.regional_sum("region-1", &s),
        "client of another region",
    );
    // A client outside the roster.
    let s = forged(
        &fed,
        r1(),
        "region-1",
        1,
        &[("client-1", h1), ("client-99", h2)],
        bytes(&c1),
    );
    refused(fed.coord.regional_sum("region-1", &s), "client-99");
    // Under a key the roster does not pin for the region.
    let s = forged(
        &fed,
        LogSigner::from_seed(&[99; 32]),
        "region-1",
        1,
        &[("client-1", h1)],
        bytes(&c1),
    );
    refused(fed.coord.regional_sum("region-1", &s), "ledger proof");
    // Region-1's log presented as region-2's.
    let s = forged(&fed, r1(), "region-1", 1, &[("client-2", h2)], bytes(&c2));
    refused(fed.coord.regional_sum("region-2", &s), "ledger proof");
    // A commitment of another round.
    let mut s = forged(&fed, r1(), "region-1", 2, &[("client-1", h1)], bytes(&c1));
    s.round = 1;
    refused(fed.coord.regional_sum("region-1", &s), "of round 2");
    // Another sum than the committed one (one byte flipped).
    let mut s = honest_shape.clone();
    s.chunks[0][100] ^= 1;
    refused(fed.coord.regional_sum("region-1", &s), "sum is not the one");
    // Another contributor list than the committed one: shorter, or as
    // long with another update's hash.
    let mut s = honest_shape.clone();
    s.inputs.truncate(1);
    s.examples.truncate(1);
    refused(fed.coord.regional_sum("region-1", &s), "contributor list");
    let mut s = honest_shape.clone();
    s.inputs[1].ciphertext_hash = h2;
    refused(fed.coord.regional_sum("region-1", &s), "contributor list");
    // The region's key, but a log of another name (here the coordinator's).
    let mut s = honest_shape.clone();
    s.aggregate_proof = common::opened_round_proof(&fed.cfg.name, r1());
    refused(fed.coord.regional_sum("region-1", &s), "ledger proof");
    // The proof of a round's opening, not of an aggregate.
    let mut s = honest_shape.clone();
    s.aggregate_proof =
        common::opened_round_proof(&region_ledger_name(&fed.cfg.name, "region-1"), r1());
    refused(
        fed.coord.regional_sum("region-1", &s),
        "not of an aggregate",
    );
    // Malformed: a chunk missing, examples not one per contributor, no
    // contributor, another federation, an unknown region, another round.
    let mut s = honest_shape.clone();
    s.chunks.pop();
    assert!(matches!(
        fed.coord.regional_sum("region-1", &s),
        Err(FedError::Protocol(_))
    ));
    let mut s = honest_shape.clone();
    s.examples.pop();
    assert!(matches!(
        fed.coord.regional_sum("region-1", &s),
        Err(FedError::Protocol(_))
    ));
    let mut s = honest_shape.clone();
    s.inputs.clear();
    s.examples.clear();
    assert!(matches!(
        fed.coord.regional_sum("region-1", &s),
        Err(FedError::Protocol(_))
    ));
    let mut s = honest_shape.clone();
    s.federation = "elsewhere".into();
    assert!(matches!(
        fed.coord.regional_sum("region-1", &s),
        Err(FedError::Protocol(_))
    ));
    assert!(matches!(
        fed.coord.regional_sum("region-9", &honest_shape),
        Err(FedError::Unenrolled(_))
    ));
    let mut s = honest_shape.clone();
    s.round = 7;
    assert!(matches!(
        fed.coord.regional_sum("region-1", &s),
        Err(FedError::Replay(_))
    ));
    // Every refusal counted; nothing summed.
    assert_eq!(fed.coord.metrics().refused, refused_before + 16);
    assert_eq!(fed.coord.current_uploads(), 0);
    // The consistent forgery is accepted (its commitment holds): a resend
    // is answered alike, another sum for the same round is a replay.
    let first = fed.coord.regional_sum("region-1", &honest_shape).unwrap();
    let again = fed.coord.regional_sum("region-1", &honest_shape).unwrap();
    assert_eq!(first.inclusion, again.inclusion);
    assert_eq!(first.entry, again.entry);
    let other = forged(&fed, r1(), "region-1", 1, &[("client-1", h1)], bytes(&c1));
    assert!(matches!(
        fed.coord.regional_sum("region-1", &other),
        Err(FedError::Replay(_))
    ));
    assert_eq!(fed.coord.current_uploads(), 2);
    // The same sum and clients with another update's hash is no resend.
    let mut s = honest_shape.clone();
    s.inputs[1].ciphertext_hash = h2;
    assert!(matches!(
        fed.coord.regional_sum("region-1", &s),
        Err(FedError::Replay(_))
    ));
    // A client counted by region-1 cannot be counted again (here by a
    // region-2 that lies about it: refused as another region's client).
    let s = forged(
        &fed,
        region_signer(2),
        "region-2",
        1,
        &[("client-1", h1)],
        bytes(&c1),
    );
    refused(fed.coord.regional_sum("region-2", &s), "another region");
}

/// A region too late: the coordinator closed collection at its deadline
/// with the quorum from the other region; the late sum is refused and
/// the round decrypts without it.
#[test]
fn a_regional_sum_after_collection_closed_is_refused() {
    let (mut fed, mut regions) = regional("regions-late", 4, 2, 1);
    open_in_regions(&mut fed, &mut regions);
    upload_through(&mut fed, &mut regions, &[0, 1, 2, 3]);
    forward(&mut fed, &mut regions, 0);
    fed.clock.advance(fed.cfg.round_timeout_s * 1.01);
    fed.coord.tick().unwrap();
    let late = regions[1].sealed_sum().unwrap().expect("region-2 sealed");
    refused(
        fed.coord.regional_sum("region-2", &late),
        "no longer collects",
    );
    fed.run_decryption(20);
    assert_eq!(fed.coord.history()[0].contributors, 2);
}

/// A client of a region drops out: once every region has reported, the
/// coordinator closes collection at once (no wait for its deadline) and
/// stops offering the round to the regions.
#[test]
fn collection_closes_when_every_region_has_reported() {
    let (mut fed, mut regions) = regional("regions-early", 4, 2, 1);
    open_in_regions(&mut fed, &mut regions);
    // client-3 (region-1) never uploads; region-1 seals at 0.8 of the
    // timeout, before the coordinator's deadline.
    upload_through(&mut fed, &mut regions, &[0, 1, 3]);
    fed.clock.advance(fed.cfg.round_timeout_s * 0.85);
    regions[0].tick().unwrap();
    forward(&mut fed, &mut regions, 0);
    assert_eq!(fed.coord.pending_uploads(1), Some(3), "region-2 not in yet");
    assert!(fed.coord.region_round("region-2").is_some());
    forward(&mut fed, &mut regions, 1);
    assert_eq!(fed.coord.pending_uploads(1), None, "collection closed");
    assert!(fed.coord.region_round("region-1").is_none());
    fed.run_decryption(20);
    assert_eq!(fed.coord.history()[0].contributors, 3);
}

/// One region holding every sampled client: its sum counts them all.
#[test]
fn one_region_may_hold_every_client() {
    let (mut fed, mut regions) = regional("regions-single", 3, 1, 1);
    open_in_regions(&mut fed, &mut regions);
    upload_through(&mut fed, &mut regions, &[0, 1, 2]);
    forward(&mut fed, &mut regions, 0);
    fed.run_decryption(20);
    assert_eq!(fed.coord.history()[0].contributors, 3);
}

/// A region counting a client of its own that the coordinator did not
/// sample this round is refused (sampling at rate 1/2: rounds are opened
/// until one leaves a client out).
#[test]
fn a_region_counting_an_unsampled_client_is_refused() {
    let cfg = common::config(
        "regions-unsampled",
        30,
        "threshold = 2\nquorum = 2\ndecrypt_attempts = 4\nclients_per_round = 4",
    );
    let (mut fed, _regions) = Fed::with_regions(cfg, 8, 1);
    for _ in 0..30 {
        fed.open_round();
        let Some(task) = fed.coord.region_round("region-1") else {
            continue; // too few sampled: the round was aborted
        };
        let ids: Vec<String> = (1..=8).map(|i| format!("client-{i}")).collect();
        let Some(out) = ids.iter().find(|c| !task.sampled.contains(c)) else {
            // Everyone sampled: let the round time out.
            fed.clock.advance(fed.cfg.round_timeout_s * 3.1);
            fed.coord.tick().unwrap();
            continue;
        };
        let inside = task.sampled[0].clone();
        let i: usize = inside.trim_start_matches("client-").parse().unwrap();
        let up = train(&mut fed, i - 1);
        let chunks = up.iter().map(|c| c.ciphertext.clone()).collect();
        let s = forged(
            &fed,
            region_signer(1),
            "region-1",
            task.round,
            &[(inside.as_str(), upload_hash(&up)), (out.as_str(), [9; 32])],
            chunks,
        );
        refused(fed.coord.regional_sum("region-1", &s), "not sampled");
        return;
    }
    panic!("no round left a client out");
}

#[test]
fn a_revoked_contributor_fails_the_regional_sum() {
    let (mut fed, mut regions) = regional("regions-revoked", 4, 2, 1);
    open_in_regions(&mut fed, &mut regions);
    upload_through(&mut fed, &mut regions, &[0, 2]);
    let sum = regions[0].sealed_sum().unwrap().expect("region-1 sealed");
    fed.coord.revoke("client-3");
    refused(fed.coord.regional_sum("region-1", &sum), "revoked");
}

#[test]
fn a_previous_rounds_sum_is_a_replay() {
    let (mut fed, mut regions) = regional("regions-replay", 4, 2, 2);
    open_in_regions(&mut fed, &mut regions);
    upload_through(&mut fed, &mut regions, &[0, 1, 2, 3]);
    let old = regions[0].sealed_sum().unwrap().unwrap();
    forward(&mut fed, &mut regions, 0);
    forward(&mut fed, &mut regions, 1);
    fed.run_decryption(20);
    assert_eq!(fed.coord.history().len(), 1);
    open_in_regions(&mut fed, &mut regions);
    assert!(matches!(
        fed.coord.regional_sum("region-1", &old),
        Err(FedError::Replay(_))
    ));
    // And a region refuses to go back to an old round.
    let mut task = fed.coord.region_round("region-1").unwrap();
    task.round = 1;
    assert!(matches!(
        regions[0].open_round(&task),
        Err(FedError::Replay(_))
    ));
}

/// The coordinator restarts between two regional sums: the first is
/// counted from its stored payload (checked against its hash), its
/// contributors' entries are not written twice, and the round decrypts.
#[test]
fn the_coordinator_resumes_a_round_holding_a_regional_sum() {
    on_both("regions-resume", || {
        let (mut fed, mut regions) = regional("regions-resume", 4, 2, 1);
        open_in_regions(&mut fed, &mut regions);
        upload_through(&mut fed, &mut regions, &[0, 1, 2, 3]);
        forward(&mut fed, &mut regions, 0);
        let before = fed.coord.current_uploads();
        assert_eq!(before, 2);
        let mut fed = fed.restart_coordinator(|_| {}).map_err(|(e, _)| e).unwrap();
        assert_eq!(
            fed.coord.current_uploads(),
            2,
            "region-1's contributors resumed"
        );
        forward(&mut fed, &mut regions, 1);
        fed.run_decryption(20);
        let h = fed.coord.history();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].contributors, 4);
        prove_counted(&mut fed, 1);
        let ledger = fed.dir.path().join("coord/ledger.db");
        drop(fed.coord);
        verify_log(&ledger, &signer().public_key(), &VerifyOptions::default()).unwrap();
    });
}

/// A region restarts mid-collection: what it accepted is still in its
/// sum, a resend of an accepted upload gets its receipt again.
#[test]
fn a_region_resumes_its_round_after_a_restart() {
    on_both("regions-region-restart", || {
        let (mut fed, mut regions) = regional("regions-region-restart", 4, 2, 1);
        open_in_regions(&mut fed, &mut regions);
        let c1 = train(&mut fed, 0);
        let r = regions[0]
            .upload_batch(&[("client-1", &c1)])
            .unwrap()
            .pop()
            .unwrap()
            .unwrap();
        fed.clients[0].on_receipt(&r).unwrap();
        drop(regions.remove(0));
        regions.insert(0, fed.open_region(1).unwrap());
        assert!(
            regions[0].sealed_sum().unwrap().is_none(),
            "still collecting"
        );
        let again = regions[0]
            .upload_batch(&[("client-1", &c1)])
            .unwrap()
            .pop()
            .unwrap()
            .unwrap();
        assert!(again.duplicate);
        upload_through(&mut fed, &mut regions, &[1, 2, 3]);
        let sum = regions[0].sealed_sum().unwrap().unwrap();
        assert_eq!(sum.inputs.len(), 2);
        forward(&mut fed, &mut regions, 0);
        forward(&mut fed, &mut regions, 1);
        fed.run_decryption(20);
        assert_eq!(fed.coord.history()[0].contributors, 4);
        prove_counted(&mut fed, 1);
    });
}

/// Whole federations through regions in the simulator, with dropouts at
/// every stage: rounds close, every log verifies (the coordinator's and
/// each region's), every counted proof verifies.
#[test]
fn the_simulator_runs_a_federation_through_regions() {
    let (train, test) = common::breast_cancer();
    let dir = tempfile::tempdir().unwrap();
    let report = simulate(SimOptions {
        config: common::config("regions-sim", 3, "threshold = 4\nquorum = 6"),
        client_data: split_among(&train, 10, Some(0.5), 1).unwrap(),
        eval: Some(test),
        dropout: 0.0,
        dir: dir.path().to_path_buf(),
        state: None,
        synthetic: false,
        on_round: None,
        dropout_plan: Some(Box::new(|round, i| match (round, i) {
            (2, 3) => DropStage::BeforeUpload,
            (2, 4) => DropStage::AfterUpload,
            (3, 0) => DropStage::BeforeShare,
            _ => DropStage::None,
        })),
        regions: 3,
    })
    .unwrap();
    assert_eq!(report.rounds, 3);
    assert_eq!(report.ledger, "verified");
    assert_eq!(report.regions, 3);
    assert_eq!(report.regional_sums, 9);
    let contributors: Vec<usize> = report.history.iter().map(|h| h.contributors).collect();
    assert_eq!(contributors, [10, 9, 10]);
    assert_eq!(report.counted_proofs_verified, 29);
    assert!(
        report.final_accuracy.unwrap() > 0.85,
        "{:?}",
        report.final_accuracy
    );
}
