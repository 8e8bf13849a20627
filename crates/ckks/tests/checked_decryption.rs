//! Checked threshold decryption (`t + 1` key holders): a lying key holder
//! is caught, or its lie leaves the sums exact; sets whose check would
//! leak are refused. Each lie below goes unnoticed with `t` holders.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_ckks::multiparty::*;
use cipherflow_ckks::{CkksError, CkksParams, ParamsBuilder};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

const N_PARTIES: u64 = 4;
const T: usize = 3;

struct Round {
    params: CkksParams,
    received: Vec<Vec<ShamirShare>>,
    seeds: Vec<[u8; 32]>,
    contributors: Vec<u64>,
    smudging: Smudging,
    sums: Vec<SharedCiphertext>,
    expected: Vec<i64>,
    shift: u32,
}

/// Four parties, threshold three; all four contribute 12-bit values to one
/// chunk, with the shift planned for a checked decryption.
fn round(seed: u64) -> Round {
    let params = ParamsBuilder::new(12).q_bits(&[39, 39]).build().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let parties = LocalParties::setup(&params, N_PARTIES, T, &mut rng).unwrap();
    let seeds = vec![aggregation_seed(&Crs([3; 32]), b"round-9", 0)];
    let contributors: Vec<u64> = (1..=N_PARTIES).collect();
    let n = params.n();
    let smudging = Smudging::for_share_sum(contributors.len(), n, 40).unwrap();
    let shift = smudging.min_shift_bits_checked(T + 1, N_PARTIES);
    let bound = max_abs_value_checked(&params, shift, N_PARTIES);
    assert!(bound > 4.0 * 2f64.powi(12), "room {bound}");
    let mut expected = vec![0i64; n];
    let mut sum: Option<SharedCiphertext> = None;
    for key in &parties.keys {
        let v: Vec<i64> = (0..n)
            .map(|_| (rng.next_u64() % (1 << 13)) as i64 - (1 << 12))
            .collect();
        for (e, x) in expected.iter_mut().zip(&v) {
            *e += x;
        }
        let ct = share_encrypt(&params, key, &seeds[0], &v, shift, &mut rng).unwrap();
        match &mut sum {
            None => sum = Some(ct),
            Some(s) => s.add_assign(&ct).unwrap(),
        }
    }
    Round {
        params,
        received: parties.received,
        seeds,
        contributors,
        smudging,
        sums: vec![sum.unwrap()],
        expected,
        shift,
    }
}

impl Round {
    fn share(&self, id: u64, active: &[u64]) -> Result<AggregateShare, CkksError> {
        let mut rng = ChaCha20Rng::seed_from_u64(1000 + id);
        aggregate_decryption_share(
            &self.params,
            id,
            &self.received[(id - 1) as usize],
            &self.contributors,
            active,
            &self.seeds,
            &self.smudging,
            &mut rng,
        )
    }

    fn shares(&self, active: &[u64]) -> Vec<AggregateShare> {
        active
            .iter()
            .map(|&j| self.share(j, active).unwrap())
            .collect()
    }

    fn combine(&self, shares: &[AggregateShare]) -> Result<Vec<i64>, CkksError> {
        let noise = share_sum_noise_log2(self.contributors.len(), self.params.n(), 40);
        Ok(combine_aggregate(&self.params, &self.sums, shares, noise)?.remove(0))
    }

    /// `share` with `delta` (an integer modulo `Q`, as residues) added to
    /// coefficient `k`: a key holder lying about its share.
    fn steer(&self, share: &AggregateShare, k: usize, delta: i128) -> AggregateShare {
        let mut b = share.to_bytes();
        let p = &self.params;
        let mut pos = 4 + 1 + 1 + p.fingerprint().len() + 8 + 4 + 4;
        for _ in 0..2 {
            let count = u32::from_le_bytes(b[pos..pos + 4].try_into().unwrap()) as usize;
            pos += 4 + 8 * count;
        }
        pos += 4 + 32; // chunk count, seed
        let mut bit = pos * 8;
        for &q in p.q() {
            let w = 64 - q.leading_zeros() as usize;
            let at = bit + k * w;
            let mut v: u128 = 0;
            for i in 0..w {
                let x = at + i;
                v |= u128::from((b[x / 8] >> (x % 8)) & 1) << i;
            }
            let nv = (v as i128 + delta).rem_euclid(i128::from(q)) as u128;
            for i in 0..w {
                let x = at + i;
                b[x / 8] &= !(1 << (x % 8));
                b[x / 8] |= (((nv >> i) & 1) as u8) << (x % 8);
            }
            bit += p.n() * w;
        }
        AggregateShare::from_bytes(p, &b).unwrap()
    }

    fn big_q(&self) -> i128 {
        self.params.q().iter().map(|&q| i128::from(q)).product()
    }
}

fn is_check_failure(e: &CkksError) -> bool {
    matches!(e, CkksError::Multiparty(MultipartyError::CheckFailed(_)))
}

#[test]
fn honest_checked_decryption_is_exact_and_widens_the_smudging() {
    let r = round(1);
    let active = [1u64, 2, 3, 4];
    let shares = r.shares(&active);
    let w = check_witness_bits(N_PARTIES);
    for s in &shares {
        assert!(s.is_checked());
        assert_eq!(s.threshold(), T as u32);
        assert_eq!(s.smudging_log2(), r.smudging.bound_log2() + w);
    }
    assert_eq!(r.combine(&shares).unwrap(), r.expected);
    // A plain set of t holders is not checked and keeps the smudging.
    let plain = r.shares(&[1, 2, 4]);
    assert!(!plain[0].is_checked());
    assert_eq!(plain[0].smudging_log2(), r.smudging.bound_log2());
    assert_eq!(r.combine(&plain).unwrap(), r.expected);
}

#[test]
fn a_lie_inside_every_bound_is_caught_with_t_plus_one_holders() {
    let r = round(2);
    // Move one decrypted value by +1: in bound, invisible to range checks.
    let delta = 1i128 << r.shift;
    let plain = r.shares(&[1, 2, 3]);
    let mut lied = plain.clone();
    lied[1] = r.steer(&plain[1], 5, delta);
    let out = r.combine(&lied).unwrap();
    assert_eq!(out[5], r.expected[5] + 1, "t holders: the lie goes through");

    for liar in 0..4 {
        let mut shares = r.shares(&[1, 2, 3, 4]);
        shares[liar] = r.steer(&shares[liar], 5, delta);
        let e = r.combine(&shares).unwrap_err();
        assert!(is_check_failure(&e), "liar {liar}: {e}");
        assert!(e.to_string().contains("inconsistent"), "{e}");
    }
}

#[test]
fn a_random_share_is_caught() {
    let r = round(3);
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let mut shares = r.shares(&[1, 2, 3, 4]);
    let q = r.big_q();
    for k in [0usize, 17, 4000] {
        let delta = i128::from(rng.next_u64()) * i128::from(rng.next_u64() >> 20) % q;
        shares[2] = r.steer(&shares[2], k, delta);
    }
    assert!(is_check_failure(&r.combine(&shares).unwrap_err()));
}

#[test]
fn a_lie_that_passes_the_sum_check_lands_outside_the_room() {
    // Holder 2 adds δ = (Q + 1)/2: 2·δ ≡ 1 (mod Q), so the check's sum
    // moves by 1 only; the decryption moves by about Q/2.
    let r = round(4);
    let mut shares = r.shares(&[1, 2, 3, 4]);
    let delta = (r.big_q() + 1) / 2;
    shares[1] = r.steer(&shares[1], 7, delta);
    let e = r.combine(&shares).unwrap_err();
    assert!(is_check_failure(&e), "{e}");
    assert!(e.to_string().contains("outside the room"), "{e}");
    // Holder 4: δ = (Q + z)/4 with Q + z divisible by 4 — same fate.
    let mut shares = r.shares(&[1, 2, 3, 4]);
    let q = r.big_q();
    let z = (4 - q % 4) % 4;
    shares[3] = r.steer(&shares[3], 7, (q + z) / 4);
    assert!(is_check_failure(&r.combine(&shares).unwrap_err()));
}

#[test]
fn a_lie_small_enough_to_pass_leaves_the_sums_exact() {
    let r = round(5);
    let mut shares = r.shares(&[1, 2, 3, 4]);
    // The largest shift the check can let through is about T/x_l; take a
    // quarter of one holder's smudging bound, on many coefficients.
    let k = shares[0].smudging_log2();
    for c in 0..64 {
        shares[0] = r.steer(&shares[0], c, 1i128 << (k - 2));
    }
    assert_eq!(r.combine(&shares).unwrap(), r.expected);
}

#[test]
fn sets_that_would_leak_or_overreach_are_refused() {
    let r = round(6);
    // Threshold 3 of 4: a set of five is impossible, but t + 2 must be
    // refused in general; with t = 2 of 5 parties check {1, 3, 5} and
    // {1, 2, 3, 4}.
    let params = &r.params;
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let parties = LocalParties::setup(params, 5, 2, &mut rng).unwrap();
    let contributors: Vec<u64> = (1..=5).collect();
    let ask = |id: u64, active: &[u64]| {
        let mut rng = ChaCha20Rng::seed_from_u64(id);
        aggregate_decryption_share(
            params,
            id,
            &parties.received[(id - 1) as usize],
            &contributors,
            active,
            &r.seeds,
            &r.smudging,
            &mut rng,
        )
    };
    // All ids odd: the check would reveal the noise modulo 2.
    let e = ask(1, &[1, 3, 5]).unwrap_err();
    assert!(e.to_string().contains("hide the noise"), "{e}");
    // t + 2 holders: refused.
    assert!(ask(1, &[1, 2, 3, 4]).is_err());
    // t and checkable t + 1 are fine.
    assert!(ask(1, &[1, 3]).is_ok());
    assert!(ask(1, &[1, 2, 5]).is_ok());
    assert!(!is_checkable(&[1, 3, 5], 5));
}

#[test]
fn shares_claiming_different_thresholds_are_not_combined() {
    let r = round(7);
    let mut shares = r.shares(&[1, 2, 3, 4]);
    // Rewrite holder 3's threshold field to 4 (= |A|: a plain share).
    let mut b = shares[2].to_bytes();
    let at = 4 + 1 + 1 + r.params.fingerprint().len() + 8;
    b[at..at + 4].copy_from_slice(&4u32.to_le_bytes());
    shares[2] = AggregateShare::from_bytes(&r.params, &b).unwrap();
    let e = r.combine(&shares).unwrap_err();
    assert!(e.to_string().contains("thresholds"), "{e}");
    // A threshold that fits neither t nor t + 1 holders does not decode.
    b[at..at + 4].copy_from_slice(&1u32.to_le_bytes());
    assert!(AggregateShare::from_bytes(&r.params, &b).is_err());
}
