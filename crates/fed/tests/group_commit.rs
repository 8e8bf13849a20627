//! Group commit of uploads: a batch is checked upload by upload (a bad one
//! is refused alone), made durable together (one segment file, one state
//! transaction, one ledger batch), and survives a restart whole.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use cipherflow_fed::messages::UploadChunk;
use cipherflow_fed::{Action, FedError, UploadItem};
use cipherflow_ledger::entry::EntryBody;
use cipherflow_ledger::Ledger;
use common::harness::{on_both, Fed};

/// Every client's upload for the open round, not sent.
fn prepared_uploads(fed: &mut Fed) -> Vec<(String, Vec<UploadChunk>)> {
    fed.open_round();
    (0..fed.clients.len())
        .map(|i| {
            let t = fed.task(i);
            match fed.clients[i].handle(&t).unwrap() {
                Action::Upload(ch) => (fed.clients[i].id().to_string(), ch),
                other => panic!("client {i} should upload, got {other:?}"),
            }
        })
        .collect()
}

/// The upload segment files stored.
fn segments(fed: &Fed) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(common::payload_dir(fed))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("segment-"))
        .collect();
    v.sort();
    v
}

fn running_sum_bytes(fed: &Fed) -> Vec<Vec<u8>> {
    let sum = fed.coord.running_sum().unwrap();
    sum.iter().map(|c| c.to_bytes()).collect()
}

fn logged_updates(fed: &Fed) -> Vec<String> {
    let ledger = Ledger::open_read_only(&fed.dir.path().join("coord/ledger.db")).unwrap();
    (0..ledger.len())
        .filter_map(|i| match ledger.entry(i).unwrap().body {
            EntryBody::UpdateReceived(u) => Some(u.client_id),
            _ => None,
        })
        .collect()
}

#[test]
fn a_batch_refuses_its_bad_uploads_alone_and_commits_the_rest_together() {
    on_both("batch_refusals", batch_refusals);
}

fn batch_refusals() {
    let mut fed = Fed::new("group-commit", 5, 3, 2);
    let ups = prepared_uploads(&mut fed);
    let mut short = ups[2].1.clone();
    short[0].ciphertext.pop();
    let refused_before = fed.coord.metrics().refused;
    let batch: Vec<UploadItem> = vec![
        (ups[0].0.as_str(), ups[0].1.as_slice()),
        ("mallory", ups[1].1.as_slice()),
        (ups[1].0.as_str(), ups[1].1.as_slice()),
        // The same client twice in one batch: the second copy waits.
        (ups[1].0.as_str(), ups[1].1.as_slice()),
        (ups[2].0.as_str(), short.as_slice()),
    ];
    let out = fed.coord.upload_batch(&batch).unwrap();
    assert_eq!(out.len(), batch.len());
    assert!(out[0].is_ok() && out[2].is_ok());
    assert!(matches!(&out[1], Err(FedError::Unenrolled(id)) if id == "mallory"));
    assert!(
        matches!(&out[3], Err(FedError::NotReady(m)) if m.contains("being committed")),
        "{:?}",
        out[3]
    );
    assert!(
        matches!(&out[4], Err(FedError::Protocol(m)) if m.contains("ciphertext each")),
        "{:?}",
        out[4]
    );
    // Two refusals counted (the wait is not a refusal); one segment for
    // the two accepted uploads, both logged with verifiable receipts.
    assert_eq!(fed.coord.metrics().refused, refused_before + 2);
    assert_eq!(segments(&fed), vec!["segment-1-0.bin".to_string()]);
    assert_eq!(logged_updates(&fed), vec!["client-1", "client-2"]);
    for (i, r) in [(0usize, &out[0]), (1, &out[2])] {
        let receipt = r.as_ref().unwrap();
        assert!(!receipt.duplicate);
        fed.clients[i].on_receipt(receipt).unwrap();
    }
    // The second copy, sent again, gets the first one's receipt.
    let again = fed.coord.upload(&ups[1].0, &ups[1].1).unwrap();
    assert!(again.duplicate);
    assert_eq!(
        Some(again.ledger_index),
        out[2].as_ref().ok().map(|r| r.ledger_index)
    );
    // The rest upload as one more batch, which completes the round.
    let rest: Vec<UploadItem> = ups[2..]
        .iter()
        .map(|(id, ch)| (id.as_str(), ch.as_slice()))
        .collect();
    let out = fed.coord.upload_batch(&rest).unwrap();
    for (k, r) in out.iter().enumerate() {
        fed.clients[2 + k].on_receipt(r.as_ref().unwrap()).unwrap();
    }
    assert_eq!(segments(&fed).len(), 2);
    fed.run_decryption(10);
    let h = fed.coord.history().last().cloned().unwrap();
    assert_eq!((h.round, h.aborted, h.contributors), (1, false, 5));
}

#[test]
fn a_committed_batch_survives_a_restart_and_counts_once() {
    on_both("batch_restart", batch_restart);
}

fn batch_restart() {
    let mut fed = Fed::new("group-restart", 4, 3, 2);
    let ups = prepared_uploads(&mut fed);
    let first: Vec<UploadItem> = ups[..3]
        .iter()
        .map(|(id, ch)| (id.as_str(), ch.as_slice()))
        .collect();
    let out = fed.coord.upload_batch(&first).unwrap();
    assert!(out.iter().all(Result::is_ok));
    let sum_before = running_sum_bytes(&fed);
    let stray = common::payload_dir(&fed).join("segment-1-7.bin");
    // A stray segment of a batch that never committed (no row names it).
    let mut fed = fed
        .restart_coordinator(|_| std::fs::write(stray, b"torn").unwrap())
        .map_err(|(e, _)| e)
        .unwrap();
    // The running sum is rebuilt from the segment, and a resend of a
    // committed upload is a duplicate, not a second contribution.
    let sum_after = running_sum_bytes(&fed);
    assert_eq!(sum_before, sum_after);
    assert!(fed.coord.upload(&ups[0].0, &ups[0].1).unwrap().duplicate);
    for (i, r) in out.iter().enumerate() {
        fed.clients[i].on_receipt(r.as_ref().unwrap()).unwrap();
    }
    let last = fed.coord.upload(&ups[3].0, &ups[3].1).unwrap();
    fed.clients[3].on_receipt(&last).unwrap();
    fed.run_decryption(10);
    let h = fed.coord.history().last().cloned().unwrap();
    assert_eq!((h.round, h.aborted, h.contributors), (1, false, 4));
    assert_eq!(logged_updates(&fed).len(), 4);
}

/// After the last round closed, an upload or a share sent again (its first
/// copy's reply lost on the way) is answered "closed", not "try again": a
/// client must not retry it until the coordinator is gone.
#[test]
fn messages_for_a_closed_round_are_final_not_transient() {
    on_both("closed_round", closed_round);
}

fn closed_round() {
    let mut fed = Fed::new("group-closed", 3, 2, 1);
    let ups = prepared_uploads(&mut fed);
    for (i, (id, ch)) in ups.iter().enumerate() {
        let r = fed.coord.upload(id, ch).unwrap();
        fed.clients[i].on_receipt(&r).unwrap();
    }
    // Keep one share message to send again later.
    let mut kept = None;
    for _ in 0..10 {
        for i in 0..3 {
            let t = fed.task(i);
            if let Action::Share(parts) = fed.clients[i].handle(&t).unwrap() {
                let id = fed.clients[i].id().to_string();
                fed.coord.send_share(&id, &parts).unwrap();
                if parts.iter().all(|p| !p.ready) {
                    kept = Some((id, parts));
                }
            }
        }
        if !fed.coord.history().is_empty() {
            break;
        }
        fed.coord.tick().unwrap();
    }
    assert_eq!(fed.coord.history().len(), 1, "the only round closed");
    assert!(fed.coord.current_round().is_none());
    let e = fed.coord.upload(&ups[0].0, &ups[0].1).unwrap_err();
    assert!(
        matches!(&e, FedError::Replay(m) if m.contains("closed")),
        "{e}"
    );
    let (id, parts) = kept.expect("a share was sent");
    let e = fed.coord.send_share(&id, &parts).unwrap_err();
    assert!(
        matches!(&e, FedError::Replay(m) if m.contains("closed")),
        "{e}"
    );
}

/// A roster client that was not sampled in the round cannot slip an update
/// into a batch (the transport authenticates it; sampling is the
/// coordinator's own check), while a sampled one in the same batch is taken.
#[test]
fn an_unsampled_client_is_refused_in_a_batch() {
    on_both("unsampled", unsampled);
}

fn unsampled() {
    let cfg = common::config(
        "group-sampled",
        3,
        "clients_per_round = 3\nquorum = 2\nthreshold = 4\ndecrypt_attempts = 4",
    );
    let mut fed = Fed::with_config(cfg, 6);
    // Poisson sampling: find a round with someone in and someone out.
    for _ in 0..20 {
        fed.open_round();
        let tasks: Vec<_> = (0..6).map(|i| fed.task(i)).collect();
        let sampled: Vec<usize> = (0..6)
            .filter(|&i| matches!(tasks[i], cipherflow_fed::messages::Task::Train(_)))
            .collect();
        let (Some(out), Some(&inn)) = ((0..6).find(|i| !sampled.contains(i)), sampled.first())
        else {
            // Everyone or no one (3 % of rounds): let this round time out.
            for _ in 0..3 {
                fed.clock.advance(fed.cfg.round_timeout_s * 1.01);
                fed.coord.tick().unwrap();
            }
            continue;
        };
        let chunks = match fed.clients[inn].handle(&tasks[inn]).unwrap() {
            Action::Upload(ch) => ch,
            other => panic!("a sampled client uploads, got {other:?}"),
        };
        let outsider = fed.clients[out].id().to_string();
        let insider = fed.clients[inn].id().to_string();
        let batch: Vec<UploadItem> = vec![
            (outsider.as_str(), chunks.as_slice()),
            (insider.as_str(), chunks.as_slice()),
        ];
        let r = fed.coord.upload_batch(&batch).unwrap();
        assert!(
            matches!(&r[0], Err(FedError::Refused(m)) if m.contains("was not sampled")),
            "{:?}",
            r[0]
        );
        assert!(r[1].is_ok(), "{:?}", r[1]);
        assert_eq!(logged_updates(&fed), vec![insider]);
        return;
    }
    panic!("no round sampled some clients and left others out");
}
