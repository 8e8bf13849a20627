//! The HE → secret-sharing hand-off: the server's and the client's shares
//! add up, modulo 2^128, to the slots in fixed point; the client's share
//! alone says nothing about them; a ciphertext without room for the mask
//! is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_ckks::handoff::{handoff_coeff_bound, handoff_level};
use cipherflow_ckks::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const FRAC: u32 = 20;

struct Setup {
    params: CkksParams,
    pk: PublicKey,
    dec: Decryptor,
    eval: Evaluator,
    out: Ciphertext,
    bound: NoiseBound,
    expected: Vec<f64>,
}

/// `x·w` for x of period `period` (replicated), encrypted under the
/// public key and rescaled once: level 1 of Depth2 ([60, 40, 40]).
fn setup(period: usize, amp: f64, seed: u64) -> Setup {
    let params = Preset::Depth2.build().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let sk = SecretKey::generate(&params, &mut rng);
    let pk = PublicKey::generate(&sk, &mut rng).unwrap();
    let enc = Encoder::new(&params);
    let eval = Evaluator::new(&params);
    let slots = params.slots();
    let base: Vec<f64> = (0..period)
        .map(|i| ((i as f64 * 0.73 + seed as f64).sin()) * amp)
        .collect();
    let x: Vec<f64> = (0..slots).map(|j| base[j % period]).collect();
    let w = 0.5;
    let top = params.max_level();
    let ct = Encryptor::with_public_key(&pk)
        .encrypt_values(&enc, &x, &mut rng)
        .unwrap();
    let out = eval.rescale(&eval.mul_const(&ct, w).unwrap()).unwrap();
    let bound = NoiseBound::fresh(
        &params,
        Fresh::PublicKey,
        amp,
        params.default_scale(),
        DEFAULT_TAIL_BITS,
    )
    .unwrap()
    .mul_const(&params, top, w)
    .unwrap()
    .rescale(&params, top)
    .unwrap();
    Setup {
        params,
        pk,
        dec: Decryptor::new(&sk),
        eval,
        out,
        bound,
        expected: base.iter().map(|v| v * w).collect(),
    }
}

fn joined(a: &[u128], b: &[u128], guard: u32) -> Vec<f64> {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let v = x.wrapping_add(y) as i128;
            // Rounded division by 2^guard, then to a real.
            let t = (v + (1i128 << (guard - 1))) >> guard;
            t as f64 / f64::from(1u32 << FRAC)
        })
        .collect()
}

fn decoding(s: &Setup, slots: &[usize], chunk: usize) -> SlotDecoding {
    let b = handoff_coeff_bound(&s.params, &s.bound).unwrap();
    SlotDecoding::new(
        &s.params,
        slots,
        chunk,
        s.out.scale(),
        FRAC,
        b,
        s.bound.values() + 1.0,
    )
    .unwrap()
}

#[test]
fn the_shares_add_up_to_the_slots_in_fixed_point() {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    for (period, picked) in [
        (16usize, (0..16).collect::<Vec<_>>()),
        (4096, vec![0, 1, 7, 4095]),
    ] {
        let s = setup(period, 3.0, 1);
        let (masked, server) = s
            .eval
            .mask_for_handoff(&s.out, &s.pk, &s.bound, HANDOFF_STAT_BITS, &mut rng)
            .unwrap();
        let client = s.dec.decrypt_handoff(&masked).unwrap();
        let d = decoding(&s, &picked, period);
        let got = joined(
            &d.apply(&client).unwrap(),
            &d.apply(&server).unwrap(),
            d.guard_bits(),
        );
        let want: Vec<f64> = picked.iter().map(|&j| s.expected[j]).collect();
        let err = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        eprintln!(
            "period {period}: level {}, guard {} bits, max error {err:.2e} (ulp {:.2e})",
            masked.level(),
            d.guard_bits(),
            2f64.powi(-(FRAC as i32))
        );
        assert!(
            err <= 2.0 * 2f64.powi(-(FRAC as i32)),
            "{got:?} vs {want:?}"
        );
        // The mask needs 2^(40 + 13 + 2)·B with B ≈ 2^41.6: two primes.
        assert_eq!(masked.level(), 1);
    }
}

/// The client holds its share and its secret key; decoding the share
/// alone gives values uncorrelated with the activations, where an
/// unmasked decryption gives them exactly. The server's share is drawn
/// independently of everything; the returned `c1` is fresh, not the
/// evaluated one (which is a function of the server's computation).
#[test]
fn the_clients_share_alone_says_nothing_about_the_activations() {
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let s = setup(4096, 3.0, 2);
    let (masked, _server) = s
        .eval
        .mask_for_handoff(&s.out, &s.pk, &s.bound, HANDOFF_STAT_BITS, &mut rng)
        .unwrap();
    let client = s.dec.decrypt_handoff(&masked).unwrap();
    let slots: Vec<usize> = (0..512).collect();
    let d = decoding(&s, &slots, 4096);
    let alone: Vec<f64> = d
        .apply(&client)
        .unwrap()
        .iter()
        .map(|&v| v as i128 as f64)
        .collect();
    let want: Vec<f64> = slots.iter().map(|&j| s.expected[j]).collect();
    let corr = correlation(&alone, &want);
    eprintln!("correlation of the client's decoded share with the activations: {corr:.3}");
    assert!(corr.abs() < 0.2, "{corr}");
    let unmasked = s.dec.decrypt_values(&s.out).unwrap();
    assert!(correlation(&unmasked[..512], &want) > 0.999);
    // Its coefficients spread over [0, Q_1), not around zero.
    let q: f64 = s.params.q().iter().take(2).map(|&q| q as f64).product();
    let mean = client.coeffs().iter().map(|&c| c as f64 / q).sum::<f64>() / 8192.0;
    assert!((mean - 0.5).abs() < 0.02, "{mean}");
    // c1 re-randomized.
    let dropped = s.eval.drop_to_level(&s.out, 1).unwrap();
    assert_ne!(masked.components()[1], dropped.components()[1]);
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va.sqrt() * vb.sqrt())
}

#[test]
fn a_ciphertext_without_room_for_the_mask_is_refused() {
    let s = setup(16, 3.0, 3);
    let b = handoff_coeff_bound(&s.params, &s.bound).unwrap();
    // At level 0 (one 60-bit prime) a 2^41.6 bound leaves no 2^−40 mask.
    let e = handoff_level(&s.params, 0, b, HANDOFF_STAT_BITS).unwrap_err();
    assert!(e.to_string().contains("one more level"), "{e}");
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let low = s.eval.drop_to_level(&s.out, 0).unwrap();
    assert!(s
        .eval
        .mask_for_handoff(&low, &s.pk, &s.bound, HANDOFF_STAT_BITS, &mut rng)
        .is_err());
    // A weaker κ fits one prime.
    assert_eq!(handoff_level(&s.params, 0, 2f64.powi(10), 30).unwrap(), 0);
    // Decoding refuses slots outside the period and a ring overflow.
    assert!(SlotDecoding::new(&s.params, &[16], 16, s.out.scale(), FRAC, b, 4.0).is_err());
    assert!(SlotDecoding::new(&s.params, &[0], 16, s.out.scale(), 60, b, 4.0).is_err());
}

/// The mask's interval keeps `m + r` inside `[0, q)` for every
/// `|m| ≤ b` and every `r` — checked at the four corners — and is
/// refused when there is no room.
#[test]
fn the_mask_never_wraps_around_the_modulus() {
    use cipherflow_ckks::handoff::mask_interval;
    for (q, b) in [
        (1u128 << 100, 2f64.powi(40)),
        (1000, 7.0),
        (1000, 7.5),
        (21, 10.0),
        (5, 0.0),
    ] {
        let (lo, width) = mask_interval(q, b).unwrap();
        let bi = b.ceil() as u128;
        // m = −b with the smallest r, m = +b with the largest.
        assert!(lo >= bi, "{q} {b}");
        assert!(lo + width - 1 + bi < q, "{q} {b}");
        // And the interval is as wide as that allows.
        assert_eq!(width, q - 2 * bi);
    }
    for (q, b) in [
        (20u128, 10.0),
        (10, 10.0),
        (1 << 60, f64::NAN),
        (1 << 60, -1.0),
    ] {
        assert!(mask_interval(q, b).is_err(), "{q} {b}");
    }
}

/// The coefficient bound covers each part of what the client decrypts:
/// the scaled values, the evaluation's error and the re-randomization's
/// fresh noise; the level is the lowest whose modulus holds the mask,
/// exactly at its edge.
#[test]
fn the_coefficient_bound_and_the_level_are_those_the_mask_needs() {
    let s = setup(16, 3.0, 4);
    let b = handoff_coeff_bound(&s.params, &s.bound).unwrap();
    let fresh = NoiseBound::fresh(
        &s.params,
        Fresh::PublicKey,
        f64::MIN_POSITIVE,
        s.bound.scale(),
        s.bound.tail_bits(),
    )
    .unwrap()
    .noise();
    let parts = s.bound.scale() * s.bound.values() + s.bound.error() + fresh;
    assert!((b - parts).abs() <= 1e-9 * parts, "{b} vs {parts}");
    assert!(fresh > 0.0 && s.bound.error() > 0.0);
    // The level's edge: need = log2 B + κ + log2 N + 2.
    let q0 = (s.params.q()[0] as f64).log2();
    let n_bits = (s.params.n() as f64).log2();
    let fits = 2f64.powf(q0 - 40.0 - n_bits - 2.0);
    assert_eq!(handoff_level(&s.params, 1, fits * 0.999, 40).unwrap(), 0);
    assert_eq!(handoff_level(&s.params, 1, fits * 1.001, 40).unwrap(), 1);
    assert_eq!(handoff_level(&s.params, 1, 1.0, 40).unwrap(), 0);
    for bad in [0.5, f64::INFINITY, f64::NAN] {
        let e = handoff_level(&s.params, 1, bad, 40).unwrap_err();
        assert!(e.to_string().contains("coefficient bound"), "{e}");
    }
}

/// A share's scale is the ciphertext's; neither side's share is ever
/// printed.
#[test]
fn shares_carry_the_scale_and_print_nothing_secret() {
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let s = setup(16, 3.0, 5);
    let (masked, server) = s
        .eval
        .mask_for_handoff(&s.out, &s.pk, &s.bound, HANDOFF_STAT_BITS, &mut rng)
        .unwrap();
    let client = s.dec.decrypt_handoff(&masked).unwrap();
    for share in [&server, &client] {
        assert_eq!(share.scale(), s.out.scale());
        let shown = format!("{share:?}");
        assert!(
            shown.contains("redacted") && shown.contains("8192"),
            "{shown}"
        );
        let first = share.coeffs()[0].to_string();
        assert!(!shown.contains(&first), "{shown}");
    }
    // One or two primes make a share; three do not, even when their
    // product would fit 128 bits (the shares are reconstructed from two).
    let params = ParamsBuilder::new(12)
        .q_bits(&[39, 39, 39])
        .allow_insecure()
        .build()
        .unwrap();
    let sk = SecretKey::generate(&params, &mut rng);
    let dec = Decryptor::new(&sk);
    let eval = Evaluator::new(&params);
    let top = Encryptor::with_secret_key(&sk)
        .encrypt_values(&Encoder::new(&params), &[1.0], &mut rng)
        .unwrap();
    assert_eq!(top.level(), 2);
    assert!(dec.decrypt_handoff(&top).is_err());
    for level in [0, 1] {
        let low = eval.drop_to_level(&top, level).unwrap();
        assert_eq!(dec.decrypt_handoff(&low).unwrap().coeffs().len(), 4096);
    }
}
