#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use super::*;

fn spec(parties: usize, threshold: usize, dim: usize, checked: bool) -> SecAggSpec {
    SecAggSpec {
        session: "test".into(),
        epoch: 1,
        parties,
        threshold,
        quorum: 2,
        dim,
        clip: 8.0,
        quant_bits: 16,
        max_weight: 100.0,
        stat_sec_bits: 40,
        checked,
    }
}

/// Keys, dealing and relaying for every party; the state of each party
/// travels through bytes (as in a host's per-node store).
fn setup(spec: &SecAggSpec) -> (SecAggServer, Vec<Vec<u8>>) {
    let mut server = SecAggServer::new(spec.clone()).unwrap();
    let mut parties: Vec<SecAggParty> = (1..=spec.parties as u64)
        .map(|id| SecAggParty::new(spec.clone(), PartyPolicy::default(), id, server.crs()).unwrap())
        .collect();
    for p in &parties {
        server.add_key(p.id(), p.kx_public()).unwrap();
    }
    let keys = server.keys().unwrap();
    for p in parties.iter_mut() {
        let sealed = p.deal(&keys).unwrap();
        let wire: Vec<SealedShare> = sealed
            .iter()
            .map(|s| sealed_from_bytes(&sealed_to_bytes(s)).unwrap())
            .collect();
        server.add_dealing(p.id(), wire).unwrap();
    }
    for p in parties.iter_mut() {
        p.receive(&server.sealed_for(p.id()).unwrap()).unwrap();
        assert!(p.is_ready());
    }
    let states = parties
        .iter()
        .map(|p| p.to_bytes().unwrap().to_vec())
        .collect();
    (server, states)
}

fn restore(states: &mut [Vec<u8>], i: usize, f: impl FnOnce(&mut SecAggParty)) {
    let mut p = SecAggParty::from_bytes(&states[i]).unwrap();
    f(&mut p);
    states[i] = p.to_bytes().unwrap().to_vec();
}

#[test]
fn weighted_mean_of_encrypted_updates_checked_and_plain() {
    for checked in [true, false] {
        let s = spec(4, 3, 10_000, checked);
        let (mut server, mut states) = setup(&s);
        for round in 1..=2u64 {
            server.begin_round(round).unwrap();
            let ups: Vec<Vec<f32>> = (0..4)
                .map(|i| {
                    (0..s.dim)
                        .map(|k| ((k * (i + 1)) % 97) as f32 / 50.0 - 1.0)
                        .collect()
                })
                .collect();
            let examples = [10u64, 20, 30, 40];
            for i in 0..4 {
                restore(&mut states, i, |p| {
                    let b = p.encrypt(round, &ups[i], examples[i]).unwrap();
                    // A repeat of the same request gets the same bytes.
                    assert_eq!(p.encrypt(round, &ups[i], examples[i]).unwrap(), b);
                    server.add_upload(p.id(), &b, examples[i]).unwrap();
                });
            }
            let contributors = server.contributors();
            let active = server.choose_active(&[1, 2, 3, 4]).unwrap();
            assert_eq!(active.len(), s.decryptors());
            let mut shares = Vec::new();
            for &a in &active {
                restore(&mut states, (a - 1) as usize, |p| {
                    shares.push(p.decryption_share(round, &contributors, &active).unwrap());
                });
            }
            let mean = server.finish(&active, &shares).unwrap();
            let wsum: f64 = examples.iter().map(|&e| e as f64 / 100.0).sum();
            // Each client's randomized rounding moves its weighted value by
            // less than one step 1/γ: the mean by at most 4/(γ·Σw).
            let step = 4.0 * (8.0 / 65536.0) / wsum;
            for k in (0..s.dim).step_by(997) {
                let want: f64 = (0..4)
                    .map(|i| f64::from(ups[i][k]) * examples[i] as f64 / 100.0)
                    .sum::<f64>()
                    / wsum;
                assert!(
                    (f64::from(mean[k]) - want).abs() <= step,
                    "{k}: {} vs {want}",
                    mean[k]
                );
            }
        }
    }
}

#[test]
fn a_party_refuses_what_the_server_must_not_get() {
    let s = spec(3, 2, 100, true);
    let (mut server, mut states) = setup(&s);
    server.begin_round(5).unwrap();
    let up = vec![0.5f32; 100];
    restore(&mut states, 0, |p| {
        p.encrypt(5, &up, 1).unwrap();
        // Another update for the same round, or an older round: refused.
        assert!(p.encrypt(5, &vec![0.25f32; 100], 1).is_err());
        assert!(p.encrypt(4, &up, 1).is_err());
        // A sum of one update: refused; a second active set: refused.
        assert!(p.decryption_share(5, &[1], &[1, 2, 3]).is_err());
        let share = p.decryption_share(5, &[1, 2], &[1, 2, 3]).unwrap();
        let seed5 = p.last_decrypt.as_ref().unwrap().2.clone();
        // A repeated request: the same bytes (no fresh noise to average).
        assert_eq!(p.decryption_share(5, &[2, 1], &[3, 2, 1]).unwrap(), share);
        assert!(p.decryption_share(5, &[1, 3], &[1, 2, 3]).is_err());
        assert!(p.decryption_share(4, &[1, 2], &[1, 2, 3]).is_err());
        // Malformed sets.
        for (s, a) in [
            (&[1u64, 1, 2][..], &[1u64, 2, 3][..]),
            (&[1, 2], &[1, 2, 2, 3]),
            (&[0, 1, 2], &[1, 2, 3]),
            (&[1, 2], &[1, 2, 4]),
        ] {
            assert!(p.decryption_share(6, s, a).is_err(), "{s:?} {a:?}");
        }
        // A later round's share gets fresh smudging noise: the same noise
        // under two rounds' `a` would expose the key share's product.
        p.encrypt(6, &vec![0.125f32; 100], 1).unwrap();
        p.decryption_share(6, &[1, 2], &[1, 2, 3]).unwrap();
        assert_ne!(*p.last_decrypt.as_ref().unwrap().2, *seed5);
        // The next round, with another update: accepted (and never with
        // the last round's randomness under a new `a`).
        let other = vec![0.25f32; 100];
        let b7 = p.encrypt(7, &other, 1).unwrap();
        assert_eq!(p.encrypt(7, &other, 1).unwrap(), b7);
        // Round 8 with another update is a new upload (fresh randomness).
        p.encrypt(8, &vec![0.75f32; 100], 1).unwrap();
    });
    // The refusals survive the state's round trip.
    restore(&mut states, 0, |p| {
        assert!(p.encrypt(5, &vec![0.25f32; 100], 1).is_err());
        assert!(p.decryption_share(5, &[1, 3], &[1, 2, 3]).is_err());
    });
}

#[test]
fn a_party_refuses_a_weak_spec() {
    let crs = [1u8; 32];
    let pol = PartyPolicy::default();
    let mut weak = spec(4, 2, 10, false);
    assert!(
        SecAggParty::new(weak.clone(), pol, 1, crs).is_err(),
        "t = n/2"
    );
    weak.threshold = 3;
    weak.stat_sec_bits = 30;
    assert!(
        SecAggParty::new(weak.clone(), pol, 1, crs).is_err(),
        "λ = 30"
    );
    weak.stat_sec_bits = 40;
    assert!(
        SecAggParty::new(weak.clone(), pol, 5, crs).is_err(),
        "id 5 of 4"
    );
    // Honest majority: t = 4 of 7 is fine, 3 of 6 is not.
    let mut seven = spec(7, 4, 10, false);
    assert!(SecAggParty::new(seven.clone(), pol, 1, crs).is_ok());
    seven.parties = 6;
    seven.threshold = 3;
    assert!(SecAggParty::new(seven, pol, 1, crs).is_err());
    let strict = PartyPolicy {
        min_quorum: 3,
        ..pol
    };
    assert!(
        SecAggParty::new(weak.clone(), strict, 1, crs).is_err(),
        "quorum 2 < 3"
    );
    assert!(SecAggParty::new(weak, pol, 1, crs).is_ok());
}

#[test]
fn a_lying_party_is_caught_by_the_check() {
    let s = spec(4, 3, 500, true);
    let (mut server, mut states) = setup(&s);
    server.begin_round(1).unwrap();
    for i in 0..4 {
        restore(&mut states, i, |p| {
            let b = p.encrypt(1, &vec![0.1f32; 500], 5).unwrap();
            server.add_upload(p.id(), &b, 5).unwrap();
        });
    }
    let c = server.contributors();
    let active = server.choose_active(&[1, 2, 3, 4]).unwrap();
    let mut shares = Vec::new();
    for &a in &active {
        restore(&mut states, (a - 1) as usize, |p| {
            shares.push(p.decryption_share(1, &c, &active).unwrap());
        });
    }
    // Flip the top bits of a run of bytes deep in the first share's
    // polynomial data: large changes, inside every residue's range.
    let n = shares[0].len();
    for b in &mut shares[0][n - 300..n - 290] {
        *b ^= 0x80;
    }
    match server.finish(&active, &shares) {
        Err(FedError::Verification(why)) => assert!(why.contains("altered"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn hostile_bytes_get_typed_errors() {
    assert!(SecAggParty::from_bytes(b"").is_err());
    assert!(SecAggParty::from_bytes(&[0u8; 64]).is_err());
    let s = spec(3, 2, 50, false);
    let (mut server, states) = setup(&s);
    for cut in [1, 8, 100, states[0].len() - 1] {
        assert!(SecAggParty::from_bytes(&states[0][..cut]).is_err(), "{cut}");
    }
    let mut longer = states[0].clone();
    longer.push(0);
    assert!(SecAggParty::from_bytes(&longer).is_err());
    assert!(sealed_from_bytes(&[0u8; 39]).is_err());
    assert!(SecAggSpec::from_json("{}").is_err());
    assert!(SecAggSpec::from_json(&"x".repeat(70_000)).is_err());
    server.begin_round(1).unwrap();
    assert!(server.add_upload(1, &[0u8; 10], 1).is_err());
    assert!(server.add_upload(9, &[], 1).is_err());
    assert!(server.finish(&[1, 2], &[]).is_err());
}

#[test]
fn a_dealer_that_lies_in_its_sealed_shares_is_refused() {
    use cipherflow_ckks::multiparty::shamir_deal;
    let s = spec(3, 2, 50, false);
    let server = SecAggServer::new(s.clone()).unwrap();
    let mut parties: Vec<SecAggParty> = (1..=3u64)
        .map(|id| SecAggParty::new(s.clone(), PartyPolicy::default(), id, server.crs()).unwrap())
        .collect();
    let keys: Vec<[u8; 32]> = parties.iter().map(SecAggParty::kx_public).collect();
    let dealt: Vec<Vec<SealedShare>> = parties.iter_mut().map(|p| p.deal(&keys).unwrap()).collect();
    let to_1 = |from: usize| -> SealedShare {
        dealt[from]
            .iter()
            .find(|x| x.to_party == 1)
            .unwrap()
            .clone()
    };
    let fresh = |p: &SecAggParty| SecAggParty::from_bytes(&p.to_bytes().unwrap()).unwrap();
    // The same dealer twice (and nothing from the other).
    assert!(fresh(&parties[0]).receive(&[to_1(1), to_1(1)]).is_err());
    // A share relabelled as another dealer's: it does not authenticate.
    let mut relabelled = to_1(1);
    relabelled.from_party = 3;
    assert!(fresh(&parties[0]).receive(&[to_1(1), relabelled]).is_err());
    // A share addressed to another party.
    assert!(fresh(&parties[0])
        .receive(&[
            to_1(1),
            dealt[2].iter().find(|x| x.to_party == 2).unwrap().clone()
        ])
        .is_err());
    // Party 2 seals to party 1, with its own key, a share of its dealing
    // for threshold `t` addressed to `to`: it opens, but must fit.
    let liar = &parties[1];
    let forge = |t: usize, to: u64| -> SealedShare {
        let mut rng = cipherflow_ring::sampler::secure_rng().unwrap();
        let share = shamir_deal(&liar.params, &liar.key, t, &[1, 2, 3], &mut rng)
            .unwrap()
            .into_iter()
            .find(|x| x.to() == to)
            .unwrap();
        let peer = x25519_dalek::PublicKey::from(keys[0]);
        crate::envelope::seal(
            &liar.kx,
            &peer,
            &label(&s),
            s.epoch,
            2,
            1,
            &share.to_bytes(),
        )
        .unwrap()
    };
    // Another threshold, or the share meant for party 3.
    for sealed in [forge(3, 1), forge(2, 3)] {
        let e = fresh(&parties[0]).receive(&[sealed, to_1(2)]).unwrap_err();
        assert!(e.to_string().contains("does not fit"), "{e}");
    }
    // The honest pair is accepted.
    let mut ok = fresh(&parties[0]);
    ok.receive(&[to_1(1), to_1(2)]).unwrap();
    assert!(ok.is_ready());
}
