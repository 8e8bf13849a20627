//! The checks on received aggregation messages, one at a time: each
//! malformed field of a decryption share or a summed ciphertext is refused
//! with its own error, the values at each limit are accepted, and
//! `combine_aggregate` refuses mismatched shares and a shift too small for
//! the noise (mutation testing found each of these unguarded).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_ckks::multiparty::*;
use cipherflow_ckks::{CkksError, CkksParams, ParamsBuilder};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// Magic, version, kind and parameter fingerprint.
const HEADER: usize = 4 + 1 + 1 + 32;

struct Setup {
    params: CkksParams,
    keys: Vec<SecretShare>,
    received: Vec<Vec<ShamirShare>>,
    seeds: Vec<[u8; 32]>,
    smudging: Smudging,
}

/// Four parties, threshold 2, one chunk.
fn setup() -> Setup {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let params = ParamsBuilder::new(12).q_bits(&[39, 39]).build().unwrap();
    let parties = LocalParties::setup(&params, 4, 2, &mut rng).unwrap();
    let seeds = vec![aggregation_seed(&Crs([3; 32]), b"round-1", 0)];
    let smudging = Smudging::for_share_sum(3, params.n(), 40).unwrap();
    Setup {
        params,
        keys: parties.keys,
        received: parties.received,
        seeds,
        smudging,
    }
}

impl Setup {
    fn share(
        &self,
        party: u64,
        contributors: &[u64],
        active: &[u64],
        seeds: &[[u8; 32]],
    ) -> AggregateShare {
        let mut rng = ChaCha20Rng::seed_from_u64(party);
        aggregate_decryption_share(
            &self.params,
            party,
            &self.received[(party - 1) as usize],
            contributors,
            active,
            seeds,
            &self.smudging,
            &mut rng,
        )
        .unwrap()
    }
}

fn decode_error(params: &CkksParams, bytes: &[u8]) -> String {
    match AggregateShare::from_bytes(params, bytes) {
        Err(CkksError::Decode(m)) => m,
        other => panic!("expected a decode error, got {other:?}"),
    }
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn aggregate_share_decoder_refuses_each_malformed_field_alone() {
    let s = setup();
    let p = &s.params;
    // Party 1, active [1, 2], contributors [1, 2, 3]: the layout is
    // header | party u64 | threshold u32 | smudging u32 | 2 | 1 2 | 3 |
    // 1 2 3 | chunks u32 | …
    let good = s.share(1, &[1, 2, 3], &[1, 2], &s.seeds).to_bytes();
    let (threshold_at, smudging_at, active_at) = (HEADER + 8, HEADER + 12, HEADER + 16);
    let contributors_at = active_at + 4 + 2 * 8;
    let chunks_at = contributors_at + 4 + 3 * 8;
    assert!(AggregateShare::from_bytes(p, &good).is_ok());

    // Smudging: the bound itself is accepted, one more is not.
    let mut b = good.clone();
    put_u32(&mut b, smudging_at, MAX_SMUDGING_LOG2);
    assert!(AggregateShare::from_bytes(p, &b).is_ok());
    put_u32(&mut b, smudging_at, MAX_SMUDGING_LOG2 + 1);
    assert!(decode_error(p, &b).contains("smudging bound out of range"));

    // Threshold: t = 2 for two holders; 1 (a checked set of two) decodes,
    // 0 (a key holder's, with an active set) and 3 do not.
    let mut b = good.clone();
    put_u32(&mut b, threshold_at, 1);
    assert!(AggregateShare::from_bytes(p, &b).is_ok());
    for bad in [0u32, 3, u32::MAX] {
        put_u32(&mut b, threshold_at, bad);
        assert!(
            decode_error(p, &b).contains("threshold does not fit"),
            "{bad}"
        );
    }

    // Party counts: more than MAX_PARTIES is refused before reading ids;
    // exactly MAX_PARTIES is read (and then runs out of bytes).
    let mut b = good.clone();
    put_u32(&mut b, active_at, MAX_PARTIES as u32 + 1);
    assert!(decode_error(p, &b).contains("party count out of range"));
    put_u32(&mut b, active_at, MAX_PARTIES as u32);
    assert!(!decode_error(p, &b).contains("party count out of range"));

    // No contributors: refused. No active set: a key holder's share.
    let mut b = good[..contributors_at].to_vec();
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&good[contributors_at + 4 + 3 * 8..]);
    assert!(decode_error(p, &b).contains("party count out of range"));
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let keys: Vec<&SecretShare> = s.keys.iter().take(3).collect();
    let holder = key_holder_share(p, &keys, &s.seeds, &s.smudging, &mut rng).unwrap();
    let back = AggregateShare::from_bytes(p, &holder.to_bytes()).unwrap();
    assert_eq!((back.party(), back.active()), (0, &[][..]));
    assert_eq!(back.contributors(), &[1, 2, 3]);

    // A sender outside its active set.
    let mut b = good.clone();
    b[HEADER..HEADER + 8].copy_from_slice(&3u64.to_le_bytes());
    assert!(decode_error(p, &b).contains("sender not in its active set"));

    // Ids out of order.
    let mut b = good.clone();
    b[active_at + 4..active_at + 12].copy_from_slice(&2u64.to_le_bytes());
    b[active_at + 12..active_at + 20].copy_from_slice(&1u64.to_le_bytes());
    assert!(decode_error(p, &b).contains("not strictly increasing"));

    // Chunk counts: 0 and more than MAX_CHUNKS are refused; MAX_CHUNKS is
    // read (and then runs out of bytes).
    let mut b = good.clone();
    for (count, refused) in [
        (0, true),
        (MAX_CHUNKS as u32 + 1, true),
        (MAX_CHUNKS as u32, false),
    ] {
        put_u32(&mut b, chunks_at, count);
        assert_eq!(
            decode_error(p, &b).contains("chunk count out of range"),
            refused,
            "{count} chunks"
        );
    }
}

#[test]
fn shared_ciphertext_decoder_refuses_a_shift_with_no_room() {
    let s = setup();
    let p = &s.params;
    let log_q: f64 = p.q().iter().map(|&q| (q as f64).log2()).sum();
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let ct = share_encrypt(p, &s.keys[0], &s.seeds[0], &[1, -2, 3], 20, &mut rng).unwrap();
    let shift_at = HEADER + 32;
    // `shift + 2 ≤ log2 Q` is the rule: the largest shift it allows is
    // accepted, the next is refused.
    let largest = (log_q - 2.0).floor() as u32;
    for (shift, ok) in [(largest, true), (largest + 1, false), (largest + 3, false)] {
        let mut b = ct.to_bytes();
        put_u32(&mut b, shift_at, shift);
        match SharedCiphertext::from_bytes(p, &b) {
            Ok(back) => assert!(ok && back.shift() == shift, "shift {shift} accepted"),
            Err(CkksError::Decode(m)) => {
                assert!(!ok && m.contains("no room"), "shift {shift}: {m}")
            }
            Err(e) => panic!("shift {shift}: {e}"),
        }
    }
}

#[test]
fn combine_refuses_mismatched_shares_and_a_shift_too_small() {
    let s = setup();
    let p = &s.params;
    let contributors = [1u64, 2, 3];
    let shift = s.smudging.min_shift_bits(2);
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let mut sum: Option<SharedCiphertext> = None;
    for k in &s.keys[..3] {
        let ct = share_encrypt(p, k, &s.seeds[0], &[5, -7], shift, &mut rng).unwrap();
        match &mut sum {
            None => sum = Some(ct),
            Some(acc) => acc.add_assign(&ct).unwrap(),
        }
    }
    let sums = vec![sum.unwrap()];
    let noise = share_sum_noise_log2(3, p.n(), 40);
    let a = s.share(1, &contributors, &[1, 2], &s.seeds);
    let b = s.share(2, &contributors, &[1, 2], &s.seeds);
    let out = combine_aggregate(p, &sums, &[a.clone(), b.clone()], noise).unwrap();
    assert_eq!(&out[0][..3], &[15, -21, 0]);

    let mismatch = |shares: &[AggregateShare]| {
        matches!(
            combine_aggregate(p, &sums, shares, noise),
            Err(CkksError::Multiparty(MultipartyError::Mismatch(_)))
        )
    };
    // Same active set, another contributor set.
    let other_contributors = s.share(2, &[1, 2, 4], &[1, 2], &s.seeds);
    assert!(mismatch(&[a.clone(), other_contributors]));
    // Same sets, another seed (same number of chunks).
    let other_seed = [aggregation_seed(&Crs([3; 32]), b"round-2", 0)];
    let other_seeds = s.share(2, &contributors, &[1, 2], &other_seed);
    assert!(mismatch(&[a.clone(), other_seeds]));

    // The noise must fit below the shift: 2·(2^noise + smudging) < 2^shift.
    let smudging_total = 2.0 * 2f64.powi(s.smudging.bound_log2() as i32);
    let too_much = (2f64.powi(shift as i32 - 1) - smudging_total).log2();
    match combine_aggregate(p, &sums, &[a, b], too_much) {
        Err(CkksError::Multiparty(MultipartyError::ModulusTooSmall {
            need_bits, parties, ..
        })) => {
            let want = (2.0 * (2f64.powf(too_much) + smudging_total)).log2() + 1.0;
            assert!((need_bits - want).abs() < 1e-9, "{need_bits} vs {want}");
            assert_eq!(parties, 2);
        }
        other => panic!("expected ModulusTooSmall, got {other:?}"),
    }
}
