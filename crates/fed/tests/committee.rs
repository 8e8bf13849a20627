//! A committee of key holders (`key_holders = k`): every client deals its
//! key share to the clients with party ids `1..=k` only, those alone give
//! decryption shares, and a round's sum of everybody's updates decrypts
//! exactly. A coordinator or client that tries to deal outside the
//! committee, or to make a client outside it decrypt, is refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use cipherflow_fed::messages::{self, Task};
use cipherflow_fed::Action;
use cipherflow_fed::FedError;
use cipherflow_ledger::entry::EntryBody;
use cipherflow_ledger::Ledger;
use common::harness::Fed;

const CLIENTS: usize = 7;
const HOLDERS: u64 = 4;

fn committee(name: &str) -> Fed {
    let cfg = common::config(
        name,
        3,
        &format!(
            "key_holders = {HOLDERS}\nthreshold = 3\nquorum = {CLIENTS}\ndecrypt_attempts = 4"
        ),
    );
    Fed::unjoined(cfg, CLIENTS)
}

/// The parties that sent decryption shares in the ledger.
fn decryptors(fed: &Fed) -> Vec<String> {
    let ledger = Ledger::open_read_only(&fed.dir.path().join("coord/ledger.db")).unwrap();
    let size = ledger.len();
    let mut out: Vec<String> = (0..size)
        .filter_map(|i| match ledger.entry(i).unwrap().body {
            EntryBody::DecryptionShareReceived(d) => Some(d.party_id),
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[test]
fn a_committee_decrypts_the_sum_of_every_clients_update() {
    let mut fed = committee("committee-round");
    fed.join_all();
    // Each client deals to the committee only: the holders get one share
    // from every client, the others none, and still complete the setup.
    for i in 0..CLIENTS {
        fed.deal(i);
    }
    for (i, c) in fed.clients.iter_mut().enumerate() {
        let b = fed
            .coord
            .get_key_setup(c.id(), &c.key_setup_query())
            .unwrap();
        let holder = (i as u64) < HOLDERS;
        assert_eq!(b.shares.len(), if holder { CLIENTS - 1 } else { 0 }, "{i}");
        assert!(c.on_key_setup(&b).unwrap());
        assert!(c.has_keys());
        assert_eq!(c.is_key_holder(), holder);
    }
    // A client outside the committee keeps its completed setup across a
    // restart (its state file), and uploads.
    fed.restart_client(CLIENTS - 1);
    assert!(fed.clients[CLIENTS - 1].has_keys());
    for round in 1..=2 {
        fed.upload_all();
        fed.run_decryption(10);
        let h = fed.coord.history();
        assert_eq!(h.len(), round, "round {round} closes");
        let last = h.last().unwrap();
        assert!(!last.aborted, "{:?}", last.abort_reason);
        assert_eq!(last.contributors, CLIENTS);
        // Checked decryption: t + 1 = 4 holders.
        assert_eq!(last.decryptors, 4);
    }
    // Only holders ever gave decryption shares.
    let who = decryptors(&fed);
    assert!(!who.is_empty());
    for id in &who {
        let party = fed.roster.by_id(id).unwrap().party_id;
        assert!(
            party <= HOLDERS,
            "{id} (party {party}) is outside the committee"
        );
    }
}

#[test]
fn nobody_deals_or_decrypts_outside_the_committee() {
    let mut fed = committee("committee-adversary");
    fed.join_all();
    // A dealing that also addresses a client outside the committee (as a
    // coordinator collecting shares for itself through a sixth "holder"
    // would need) is refused by the coordinator...
    let t = fed.task(0);
    let Action::PostKeySetup(honest) = fed.clients[0].handle(&t).unwrap() else {
        panic!("client 0 deals")
    };
    assert_eq!(
        honest.shares.len(),
        HOLDERS as usize - 1,
        "to the other holders"
    );
    let mut wide = honest.clone();
    let mut extra = honest.shares[0].clone();
    extra.to_party = 6;
    wide.shares.push(extra);
    let e = fed.coord.post_key_setup("client-1", &wide).unwrap_err();
    assert!(
        matches!(&e, FedError::Protocol(m) if m.contains("every other key holder")),
        "{e}"
    );
    // ...and so is one that leaves a holder out.
    let mut narrow = honest.clone();
    narrow.shares.pop();
    assert!(fed.coord.post_key_setup("client-1", &narrow).is_err());
    fed.coord.post_key_setup("client-1", &honest).unwrap();
    for i in 1..CLIENTS {
        fed.deal(i);
    }
    // A coordinator that hands a client outside the committee a holder's
    // sealed share: refused (that client holds no share of the key).
    let holder_bundle = {
        let c = &fed.clients[1];
        fed.coord
            .get_key_setup(c.id(), &c.key_setup_query())
            .unwrap()
    };
    let outsider = &mut fed.clients[5];
    let mut forged = outsider_bundle(&mut fed.coord, outsider);
    forged.shares = holder_bundle.shares.clone();
    let e = fed.clients[5].on_key_setup(&forged).unwrap_err();
    assert!(
        matches!(&e, FedError::Protocol(m) if m.contains("outside the key-holder committee")),
        "{e}"
    );
    for c in fed.clients.iter_mut() {
        let b = fed
            .coord
            .get_key_setup(c.id(), &c.key_setup_query())
            .unwrap();
        assert!(c.on_key_setup(&b).unwrap());
    }
    // A decryption request replayed to a client outside the committee is
    // refused as such, before anything is checked or committed.
    fed.upload_all();
    let mut request = None;
    for _ in 0..4 {
        for i in 0..HOLDERS as usize {
            if let Task::Decrypt(d) = fed.task(i) {
                request = Some(d);
            }
        }
        if request.is_some() {
            break;
        }
        fed.coord.tick().unwrap();
    }
    let request: messages::DecryptTask = request.expect("a holder is asked to decrypt");
    let e = fed.clients[5].handle(&Task::Decrypt(request)).unwrap_err();
    assert!(
        matches!(&e, FedError::Refused(m) if m.contains("outside the key-holder committee")),
        "{e}"
    );
    fed.run_decryption(10);
    assert_eq!(fed.coord.history().len(), 1);
}

fn outsider_bundle(
    coord: &mut cipherflow_fed::Coordinator,
    c: &mut cipherflow_fed::ClientAgent,
) -> messages::KeySetupBundle {
    let b = coord.get_key_setup(c.id(), &c.key_setup_query()).unwrap();
    assert!(b.complete && b.shares.is_empty());
    b
}

#[test]
fn committee_sizes_are_validated() {
    let sizes = |extra: &str, n: usize| common::config("committee-sizes", 1, extra).sizes(n);
    let s = sizes("key_holders = 5", 100).unwrap();
    assert_eq!((s.holders, s.threshold, s.decryptors()), (5, 3, 4));
    assert_eq!(s.holder_ids(), vec![1, 2, 3, 4, 5]);
    assert!(s.is_holder(5) && !s.is_holder(6) && !s.is_holder(0));
    // Without a committee every client holds the key.
    assert_eq!(sizes("", 9).unwrap().holders, 9);
    for (extra, n, why) in [
        ("key_holders = 1", 10, "key_holders 1"),
        ("key_holders = 11", 10, "key_holders 11"),
        (
            "key_holders = 4\nthreshold = 5",
            10,
            "threshold 5 must be in 1..=4",
        ),
        (
            "key_holders = 4\nthreshold = 4\nchecked_decryption = true",
            10,
            "needs t + 1 = 5 key holders",
        ),
        (
            "keys = \"key-service\"\nkey_holders = 4",
            10,
            "threshold-mode setting",
        ),
    ] {
        let e = sizes(extra, n).unwrap_err();
        assert!(e.to_string().contains(why), "{extra}: {e}");
    }
}
