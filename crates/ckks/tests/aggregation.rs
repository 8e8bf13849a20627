//! Share-encryption aggregation: exact integer sums through threshold and
//! key-holder decryption, dropouts of contributors and decryptors, refusal
//! below the threshold, wrong sets, and validated encodings.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_ckks::multiparty::*;
use cipherflow_ckks::{CkksError, CkksParams, ParamsBuilder};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

fn params() -> CkksParams {
    ParamsBuilder::new(12).q_bits(&[39, 39]).build().unwrap()
}

struct Fed {
    params: CkksParams,
    keys: Vec<SecretShare>,
    /// received[j] = the Shamir shares addressed to ids[j].
    received: Vec<Vec<ShamirShare>>,
}

fn federation(n: u64, t: usize, rng: &mut ChaCha20Rng) -> Fed {
    let params = params();
    let parties = LocalParties::setup(&params, n, t, rng).unwrap();
    Fed {
        params,
        keys: parties.keys,
        received: parties.received,
    }
}

fn random_values(rng: &mut ChaCha20Rng, n: usize, bits: u32) -> Vec<i64> {
    (0..n)
        .map(|_| (rng.next_u64() % (1 << (bits + 1))) as i64 - (1 << bits))
        .collect()
}

#[test]
fn threshold_sum_is_exact_with_dropouts() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let fed = federation(6, 3, &mut rng);
    let p = &fed.params;
    let crs = Crs([7; 32]);
    let chunks = 2;
    let seeds: Vec<[u8; 32]> = (0..chunks)
        .map(|c| aggregation_seed(&crs, b"round-1", c))
        .collect();
    // Client 3 never uploads (dropped before upload).
    let contributors = [1u64, 2, 4, 5, 6];
    let n = p.n();
    let smudging = Smudging::for_share_sum(contributors.len(), n * chunks as usize, 40).unwrap();
    let active = [2u64, 3, 6]; // 3 decrypts although it did not contribute
    let shift = smudging.min_shift_bits(active.len());
    assert!(max_abs_value(p, shift) > (contributors.len() as f64) * 2f64.powi(20));
    let mut expected = vec![vec![0i64; n]; chunks as usize];
    let mut sums: Vec<Option<SharedCiphertext>> = vec![None; chunks as usize];
    for &id in &contributors {
        let key = &fed.keys[(id - 1) as usize];
        for (c, seed) in seeds.iter().enumerate() {
            let v = random_values(&mut rng, n - 5, 20);
            for (e, x) in expected[c].iter_mut().zip(&v) {
                *e += x;
            }
            let ct = share_encrypt(p, key, seed, &v, shift, &mut rng).unwrap();
            // Travels as bytes.
            let ct = SharedCiphertext::from_bytes(p, &ct.to_bytes()).unwrap();
            match &mut sums[c] {
                None => sums[c] = Some(ct),
                Some(s) => s.add_assign(&ct).unwrap(),
            }
        }
    }
    let sums: Vec<SharedCiphertext> = sums.into_iter().map(Option::unwrap).collect();
    let shares: Vec<AggregateShare> = active
        .iter()
        .map(|&j| {
            let s = aggregate_decryption_share(
                p,
                j,
                &fed.received[(j - 1) as usize],
                &contributors,
                &active,
                &seeds,
                &smudging,
                &mut rng,
            )
            .unwrap();
            AggregateShare::from_bytes(p, &s.to_bytes()).unwrap()
        })
        .collect();
    let noise = share_sum_noise_log2(contributors.len(), n * chunks as usize, 40);
    let out = combine_aggregate(p, &sums, &shares, noise).unwrap();
    assert_eq!(out, expected, "the decrypted sum must be exact");

    // A missing decryptor: refused, not garbage.
    assert!(matches!(
        combine_aggregate(p, &sums, &shares[..2], noise),
        Err(CkksError::Multiparty(MultipartyError::MissingParty(6)))
    ));
    // t − 1 decryptors cannot even make shares.
    assert!(matches!(
        aggregate_decryption_share(
            p,
            2,
            &fed.received[1],
            &contributors,
            &[2, 3],
            &seeds,
            &smudging,
            &mut rng
        ),
        Err(CkksError::Multiparty(MultipartyError::NotEnoughShares {
            have: 2,
            need: 3
        }))
    ));
}

#[test]
fn shares_for_another_contributor_set_do_not_decrypt() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let fed = federation(4, 2, &mut rng);
    let p = &fed.params;
    let seed = aggregation_seed(&Crs([1; 32]), b"r", 0);
    let n = p.n();
    let smudging = Smudging::for_share_sum(4, n, 40).unwrap();
    let shift = smudging.min_shift_bits(2);
    let v = random_values(&mut rng, n, 10);
    let mut sum = share_encrypt(p, &fed.keys[0], &seed, &v, shift, &mut rng).unwrap();
    let v2 = random_values(&mut rng, n, 10);
    sum.add_assign(&share_encrypt(p, &fed.keys[1], &seed, &v2, shift, &mut rng).unwrap())
        .unwrap();
    let want: Vec<i64> = v.iter().zip(&v2).map(|(a, b)| a + b).collect();
    let noise = share_sum_noise_log2(2, n, 40);
    // Shares for S = {1, 2, 3}: the sum only holds 1 and 2 → garbage.
    let wrong: Vec<_> = [1u64, 4]
        .iter()
        .map(|&j| {
            aggregate_decryption_share(
                p,
                j,
                &fed.received[(j - 1) as usize],
                &[1, 2, 3],
                &[1, 4],
                &[seed],
                &smudging,
                &mut rng,
            )
            .unwrap()
        })
        .collect();
    let out = combine_aggregate(p, std::slice::from_ref(&sum), &wrong, noise).unwrap();
    let agree = out[0].iter().zip(&want).filter(|(a, b)| a == b).count();
    assert!(agree < 10, "{agree} coefficients agree with the wrong set");
    // The right set decrypts.
    let right: Vec<_> = [1u64, 4]
        .iter()
        .map(|&j| {
            aggregate_decryption_share(
                p,
                j,
                &fed.received[(j - 1) as usize],
                &[1, 2],
                &[1, 4],
                &[seed],
                &smudging,
                &mut rng,
            )
            .unwrap()
        })
        .collect();
    assert_eq!(
        combine_aggregate(p, std::slice::from_ref(&sum), &right, noise).unwrap()[0],
        want
    );
    // Another seed (another round) cannot use these shares.
    let other = aggregation_seed(&Crs([1; 32]), b"r2", 0);
    let mut sum2 = share_encrypt(p, &fed.keys[0], &other, &v, shift, &mut rng).unwrap();
    sum2.add_assign(&share_encrypt(p, &fed.keys[1], &other, &v2, shift, &mut rng).unwrap())
        .unwrap();
    let r = combine_aggregate(p, &[sum2], &right, noise);
    assert!(
        matches!(&r, Err(CkksError::Multiparty(MultipartyError::Mismatch(m)))
            if m.contains("another seed")),
        "{r:?}"
    );
    // Mixing seeds in one sum is refused.
    let mut mixed = sum.clone();
    let r = mixed.add_assign(&share_encrypt(p, &fed.keys[2], &other, &v, shift, &mut rng).unwrap());
    assert!(
        matches!(&r, Err(CkksError::Multiparty(MultipartyError::Mismatch(m)))
            if m.contains("different seeds")),
        "{r:?}"
    );
}

#[test]
fn key_holder_decrypts_alone_and_shift_is_checked() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let fed = federation(3, 2, &mut rng);
    let p = &fed.params;
    let n = p.n();
    let seed = aggregation_seed(&Crs([9; 32]), b"x", 3);
    let smudging = Smudging::for_share_sum(3, n, 40).unwrap();
    let shift = smudging.min_shift_bits(1);
    let mut want = vec![0i64; n];
    let mut sum: Option<SharedCiphertext> = None;
    for k in &fed.keys {
        let v = random_values(&mut rng, n, 16);
        for (w, x) in want.iter_mut().zip(&v) {
            *w += x;
        }
        let ct = share_encrypt(p, k, &seed, &v, shift, &mut rng).unwrap();
        match &mut sum {
            None => sum = Some(ct),
            Some(s) => s.add_assign(&ct).unwrap(),
        }
    }
    let sum = sum.unwrap();
    let keys: Vec<&SecretShare> = fed.keys.iter().collect();
    let share = key_holder_share(p, &keys, &[seed], &smudging, &mut rng).unwrap();
    assert_eq!(share.contributors(), &[1, 2, 3]);
    let noise = share_sum_noise_log2(3, n, 40);
    assert_eq!(
        combine_aggregate(p, std::slice::from_ref(&sum), &[share], noise).unwrap()[0],
        want
    );

    // Too small a shift for the smudging: refused before decoding.
    let low = share_encrypt(p, &fed.keys[0], &seed, &[1, 2, 3], 20, &mut rng).unwrap();
    let sh = key_holder_share(p, &keys[..1], &[seed], &smudging, &mut rng).unwrap();
    assert!(matches!(
        combine_aggregate(p, &[low], &[sh], noise),
        Err(CkksError::Multiparty(
            MultipartyError::ModulusTooSmall { .. }
        ))
    ));
    // Values beyond the room the shift leaves: refused at encryption.
    let big = (max_abs_value(p, shift) * 2.0) as i64;
    let r = share_encrypt(p, &fed.keys[0], &seed, &[big], shift, &mut rng);
    assert!(
        matches!(&r, Err(CkksError::Multiparty(MultipartyError::Mismatch(m)))
            if m.contains("a value exceeds")),
        "{r:?}"
    );
}

#[test]
fn encodings_are_validated() {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let fed = federation(3, 2, &mut rng);
    let p = &fed.params;
    let seed = aggregation_seed(&Crs([2; 32]), b"e", 0);
    let ct = share_encrypt(p, &fed.keys[0], &seed, &[5, -6, 7], 40, &mut rng).unwrap();
    let bytes = ct.to_bytes();
    assert_eq!(bytes.len(), SharedCiphertext::encoded_len(p));
    // 78 bits per coefficient: 9.75 bytes per packed integer.
    assert_eq!(bytes.len() - 74, p.n() * 78 / 8);
    assert_eq!(SharedCiphertext::from_bytes(p, &bytes).unwrap(), ct);
    let decode_error = |r: Result<SharedCiphertext, CkksError>| match r {
        Err(CkksError::Decode(m)) => m,
        other => panic!("not a decoding error: {other:?}"),
    };
    for cut in [0, 10, 73, bytes.len() - 1] {
        let m = decode_error(SharedCiphertext::from_bytes(p, &bytes[..cut]));
        assert_eq!(m, "truncated", "cut at {cut}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    let m = decode_error(SharedCiphertext::from_bytes(p, &longer));
    assert_eq!(m, "trailing bytes");
    // Every residue must be below its prime: set a coefficient to all ones.
    let mut bad = bytes.clone();
    for b in &mut bad[74..84] {
        *b = 0xff;
    }
    let m = decode_error(SharedCiphertext::from_bytes(p, &bad));
    assert!(m.contains("out of range for its modulus"), "{m}");
    // Random garbage never panics.
    for len in [0usize, 5, 100, bytes.len()] {
        let mut g = vec![0u8; len];
        rng.fill_bytes(&mut g);
        let _ = SharedCiphertext::from_bytes(p, &g);
        let _ = AggregateShare::from_bytes(p, &g);
    }
    // Another parameter set is refused.
    let other = ParamsBuilder::new(12).q_bits(&[40, 38]).build().unwrap();
    assert!(matches!(
        SharedCiphertext::from_bytes(&other, &bytes),
        Err(CkksError::ParamsMismatch)
    ));
    let share = aggregate_decryption_share(
        p,
        1,
        &fed.received[0],
        &[1],
        &[1, 2],
        &[seed],
        &Smudging::for_share_sum(1, p.n(), 40).unwrap(),
        &mut rng,
    )
    .unwrap();
    let sb = share.to_bytes();
    assert_eq!(AggregateShare::from_bytes(p, &sb).unwrap(), share);
    for cut in [0, 40, sb.len() / 2, sb.len() - 1] {
        let r = AggregateShare::from_bytes(p, &sb[..cut]);
        assert!(
            matches!(&r, Err(CkksError::Decode(m)) if m == "truncated"),
            "cut at {cut}: {r:?}"
        );
    }
}

/// The one check of received Shamir shares (shared by `shamir_combine` and
/// `aggregate_decryption_share`): a share from another dealing — same
/// threshold, another party set — a share addressed to someone else, and a
/// contributor's share missing are each refused by the aggregate share.
#[test]
fn aggregate_shares_check_the_received_shamir_shares() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let fed = federation(4, 2, &mut rng);
    let p = &fed.params;
    let seed = aggregation_seed(&Crs([1; 32]), b"r", 0);
    let smudging = Smudging::for_share_sum(3, p.n(), 40).unwrap();
    let share = |received: &[ShamirShare]| {
        aggregate_decryption_share(
            p,
            1,
            received,
            &[1, 2, 3],
            &[1, 2],
            &[seed],
            &smudging,
            &mut ChaCha20Rng::seed_from_u64(4),
        )
    };
    assert!(share(&fed.received[0]).is_ok());
    // Party 2 re-deals to {1, 2, 3} only: same threshold, another party set.
    let other = shamir_deal(p, &fed.keys[1], 2, &[1, 2, 3], &mut rng).unwrap();
    let mut mixed: Vec<ShamirShare> = fed.received[0]
        .iter()
        .filter(|s| s.from() != 2)
        .cloned()
        .collect();
    mixed.extend(other.into_iter().filter(|s| s.to() == 1));
    let e = share(&mixed).unwrap_err();
    assert!(
        matches!(&e, CkksError::Multiparty(MultipartyError::Mismatch(m)) if m.contains("different dealings")),
        "{e}"
    );
    // Party 2's share for party 1 swapped for its share for party 3.
    let mut misaddressed: Vec<ShamirShare> = fed.received[0]
        .iter()
        .filter(|s| s.from() != 2)
        .cloned()
        .collect();
    misaddressed.extend(fed.received[2].iter().filter(|s| s.from() == 2).cloned());
    let e = share(&misaddressed).unwrap_err();
    assert!(
        matches!(&e, CkksError::Multiparty(MultipartyError::Mismatch(m)) if m.contains("addressed to party 3")),
        "{e}"
    );
    // Contributor 3's share is missing.
    let missing: Vec<ShamirShare> = fed.received[0]
        .iter()
        .filter(|s| s.from() != 3)
        .cloned()
        .collect();
    assert_eq!(
        share(&missing).unwrap_err(),
        CkksError::Multiparty(MultipartyError::MissingParty(3))
    );
}

/// A committee of key holders: every client deals its key share to the
/// holders only (dealers outside the committee keep no share), and any `t`
/// holders decrypt a sum whose contributors are mostly not holders; the
/// dealt shares travel as bytes, and fewer than `t` holders cannot decrypt.
#[test]
fn a_committee_of_key_holders_decrypts_every_clients_sum() {
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let p = &params();
    let (clients, holders, t) = (8u64, vec![1u64, 2, 3, 4], 3);
    let keys: Vec<SecretShare> = (1..=clients)
        .map(|id| SecretShare::generate_for(p, id, &mut rng))
        .collect();
    // received[j] = what holder j + 1 got from every client.
    let mut received: Vec<Vec<ShamirShare>> = vec![Vec::new(); holders.len()];
    for k in &keys {
        let dealt = shamir_deal(p, k, t, &holders, &mut rng).unwrap();
        assert_eq!(
            dealt.len(),
            holders.len(),
            "one share per holder, none kept"
        );
        for s in dealt {
            let s = ShamirShare::from_bytes(p, &s.to_bytes()).unwrap();
            assert_eq!(s.parties(), holders.as_slice());
            received[(s.to() - 1) as usize].push(s);
        }
    }
    let crs = Crs([3; 32]);
    let seeds = vec![aggregation_seed(&crs, b"round-1", 0)];
    let contributors = [2u64, 5, 6, 7, 8]; // one holder, four other clients
    let n = p.n();
    let smudging = Smudging::for_share_sum(contributors.len(), n, 40).unwrap();
    let shift = smudging.min_shift_bits(t);
    let mut expected = vec![0i64; n];
    let mut sum: Option<SharedCiphertext> = None;
    for &id in &contributors {
        let v = random_values(&mut rng, n, 16);
        for (e, x) in expected.iter_mut().zip(&v) {
            *e += x;
        }
        let ct =
            share_encrypt(p, &keys[(id - 1) as usize], &seeds[0], &v, shift, &mut rng).unwrap();
        match &mut sum {
            None => sum = Some(ct),
            Some(s) => s.add_assign(&ct).unwrap(),
        }
    }
    let sums = vec![sum.unwrap()];
    let active = [1u64, 3, 4];
    let shares: Vec<AggregateShare> = active
        .iter()
        .map(|&j| {
            aggregate_decryption_share(
                p,
                j,
                &received[(j - 1) as usize],
                &contributors,
                &active,
                &seeds,
                &smudging,
                &mut rng,
            )
            .unwrap()
        })
        .collect();
    let noise = share_sum_noise_log2(contributors.len(), n, 40);
    let out = combine_aggregate(p, &sums, &shares, noise).unwrap();
    assert_eq!(
        out,
        vec![expected],
        "the committee's decryption must be exact"
    );
    // A client outside the committee holds nothing to decrypt with, and an
    // active set reaching outside the committee is refused by the holders.
    assert!(aggregate_decryption_share(
        p,
        1,
        &received[0],
        &contributors,
        &[1, 3, 5],
        &seeds,
        &smudging,
        &mut rng
    )
    .is_err());
    // A share addressed outside the committee does not parse: dealer 5's
    // share for holder 1, readdressed to client 6 (`from | to` are adjacent).
    let share = received[0].iter().find(|s| s.from() == 5).unwrap();
    let mut forged = share.to_bytes().to_vec();
    let from_to: Vec<u8> = [5u64.to_le_bytes(), 1u64.to_le_bytes()].concat();
    let pos = forged
        .windows(16)
        .position(|w| w == from_to.as_slice())
        .unwrap();
    forged[pos + 8..pos + 16].copy_from_slice(&6u64.to_le_bytes());
    assert!(matches!(
        ShamirShare::from_bytes(p, &forged),
        Err(CkksError::Multiparty(MultipartyError::UnexpectedParty(6)))
    ));
    // Readdressed to holder 2 instead, it parses (the id is valid) but holder
    // 1 refuses to sum a share addressed to another party.
    forged[pos + 8..pos + 16].copy_from_slice(&2u64.to_le_bytes());
    let wrong = ShamirShare::from_bytes(p, &forged).unwrap();
    let mut mixed: Vec<ShamirShare> = received[0]
        .iter()
        .filter(|s| s.from() != 5)
        .cloned()
        .collect();
    mixed.push(wrong);
    assert!(aggregate_decryption_share(
        p,
        1,
        &mixed,
        &contributors,
        &active,
        &seeds,
        &smudging,
        &mut rng
    )
    .is_err());
}
