//! Property tests of the ring layer: NTT round trips and products, basis
//! conversion, ModUp/ModDown, rescaling and automorphisms.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::needless_range_loop
)]

use cipherflow_ring::basis::{mod_down, mod_down_adding, mod_up_digits, BasisExtender};
use cipherflow_ring::{generate_primes, Modulus, RingContext, RnsPoly};
use proptest::prelude::*;
use std::sync::Arc;

const N: usize = 64;

fn ctx() -> Arc<RingContext> {
    let q = generate_primes(50, N, 3, &[]).unwrap();
    let mut q2 = generate_primes(40, N, 2, &q).unwrap();
    let mut all = q.clone();
    all.append(&mut q2);
    let p = generate_primes(55, N, 2, &all).unwrap();
    RingContext::new(N, &all, &p).unwrap()
}

/// One special prime above the ciphertext primes, as the browser's
/// parameters (60, 40, 40, 40, 40 | 60 bits): ModDown's conversion is then
/// a reduction.
fn ctx_one_special() -> Arc<RingContext> {
    let q0 = generate_primes(60, N, 1, &[]).unwrap();
    let mut q = q0.clone();
    q.append(&mut generate_primes(40, N, 4, &q0).unwrap());
    let p = generate_primes(60, N, 1, &q).unwrap();
    RingContext::new(N, &q, &p).unwrap()
}

/// Schoolbook negacyclic product mod q.
fn negacyclic(a: &[u64], b: &[u64], m: &Modulus) -> Vec<u64> {
    let n = a.len();
    let mut out = vec![0u64; n];
    for i in 0..n {
        for j in 0..n {
            let p = m.mul(a[i], b[j]);
            let k = i + j;
            if k < n {
                out[k] = m.add(out[k], p);
            } else {
                out[k - n] = m.sub(out[k - n], p);
            }
        }
    }
    out
}

fn big_mod(coeffs_big: &[i128], ctx: &RingContext, q_len: usize, p_len: usize) -> RnsPoly {
    let mut p = RnsPoly::zero(ctx, q_len, p_len, false);
    let tables: Vec<_> = ctx.tables(q_len, p_len).collect();
    for (i, t) in tables.iter().enumerate() {
        let q = i128::from(t.modulus().value());
        for (d, &c) in p.limb_mut(i).iter_mut().zip(coeffs_big) {
            *d = c.rem_euclid(q) as u64;
        }
    }
    p
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn ntt_round_trip_and_product(a in prop::collection::vec(any::<u64>(), N),
                                  b in prop::collection::vec(any::<u64>(), N)) {
        let ctx = ctx();
        for t in ctx.q_tables().iter().chain(ctx.p_tables()) {
            let m = t.modulus();
            let a: Vec<u64> = a.iter().map(|&x| m.reduce(x)).collect();
            let b: Vec<u64> = b.iter().map(|&x| m.reduce(x)).collect();
            let mut fa = a.clone();
            t.forward(&mut fa);
            let mut back = fa.clone();
            t.inverse(&mut back);
            prop_assert_eq!(&back, &a);
            let mut fb = b.clone();
            t.forward(&mut fb);
            let mut prod: Vec<u64> = fa.iter().zip(&fb).map(|(&x, &y)| m.mul(x, y)).collect();
            t.inverse(&mut prod);
            prop_assert_eq!(prod, negacyclic(&a, &b, m));
        }
    }

    #[test]
    fn fused_products_add_and_subtract(c in prop::collection::vec(any::<u64>(), 3 * N)) {
        let ctx = ctx();
        let (q_len, p_len) = (ctx.q_len(), ctx.p_len());
        let poly = |k: usize| {
            let mut p = RnsPoly::zero(&ctx, q_len, p_len, true);
            for (i, t) in ctx.tables(q_len, p_len).enumerate() {
                let m = t.modulus();
                for (d, &x) in p.limb_mut(i).iter_mut().zip(&c[k * N..(k + 1) * N]) {
                    *d = m.reduce(x.rotate_left(7 * i as u32));
                }
            }
            p
        };
        let (acc, a, b) = (poly(0), poly(1), poly(2));
        let (mut plus, mut minus) = (acc.clone(), acc.clone());
        plus.mul_accumulate(&ctx, &a, &b).unwrap();
        minus.mul_subtract(&ctx, &a, &b).unwrap();
        for (i, t) in ctx.tables(q_len, p_len).enumerate() {
            let m = t.modulus();
            for j in 0..N {
                let ab = m.mul(a.limb(i)[j], b.limb(i)[j]);
                prop_assert_eq!(plus.limb(i)[j], m.add(acc.limb(i)[j], ab));
                prop_assert_eq!(minus.limb(i)[j], m.sub(acc.limb(i)[j], ab));
            }
        }
        let mut coeff = acc.clone();
        coeff.set_ntt_flag(false);
        prop_assert!(coeff.mul_subtract(&ctx, &a, &b).is_err());
    }

    #[test]
    fn basis_conversion_is_exact_up_to_multiples(x in prop::collection::vec(0u64..(1 << 40), N)) {
        let ctx = ctx();
        let src = ctx.q_moduli()[..2].to_vec();
        let dst = ctx.p_moduli();
        let b: u128 = src.iter().map(|m| u128::from(m.value())).product();
        // x < B: residues then convert; result must be x + u*B with u < |B|.
        let xs: Vec<u128> = x.iter().map(|&v| (u128::from(v) * 977) % b).collect();
        let limbs: Vec<Vec<u64>> = src.iter().map(|m| xs.iter().map(|&v| (v % u128::from(m.value())) as u64).collect()).collect();
        let input: Vec<&[u64]> = limbs.iter().map(|l| l.as_slice()).collect();
        let mut out = vec![0u64; dst.len() * N];
        BasisExtender::new(&src, &dst).unwrap().convert(&input, &mut out, N);
        for (j, m) in dst.iter().enumerate() {
            for c in 0..N {
                let got = out[j * N + c];
                let ok = (0..src.len() as u128).any(|u| ((xs[c] + u * b) % u128::from(m.value())) as u64 == got);
                prop_assert!(ok);
            }
        }
    }

    /// Small coefficients (the negation path) and any others (the
    /// reduction path) give each residue exactly, sign included.
    #[test]
    fn from_signed_is_exact(c in prop::collection::vec(-40i64..40, N),
                            big in prop::collection::vec(any::<i64>(), N)) {
        let ctx = ctx();
        let mut extremes = big.clone();
        extremes[0] = i64::MIN;
        extremes[1] = i64::MAX;
        // The smallest prime itself and its neighbours: the largest
        // magnitude at the edge of the negation path.
        let q_min = ctx.tables(3, 2).map(|t| t.modulus().value()).min().unwrap() as i64;
        let mut edge = c.clone();
        edge[..4].copy_from_slice(&[q_min, -q_min, q_min - 1, 1 - q_min]);
        for coeffs in [&c, &big, &extremes, &edge] {
            let p = RnsPoly::from_signed(&ctx, coeffs, 3, 2);
            // In NTT form directly: the same as transforming it.
            let mut p_ntt = p.clone();
            p_ntt.ntt_forward(&ctx);
            prop_assert_eq!(&RnsPoly::from_signed_ntt(&ctx, coeffs, 3, 2), &p_ntt);
            let moduli: Vec<_> = ctx.q_moduli().into_iter().take(3).chain(ctx.p_moduli().into_iter().take(2)).collect();
            for (limb, m) in p.limbs().zip(&moduli) {
                let q = i128::from(m.value());
                for (&got, &x) in limb.iter().zip(coeffs.iter()) {
                    prop_assert_eq!(i128::from(got), i128::from(x).rem_euclid(q));
                }
            }
        }
    }

    #[test]
    fn automorphisms_compose_and_agree_across_forms(c in prop::collection::vec(-1000i64..1000, N),
                                                    g1 in 0u64..(N as u64), g2 in 0u64..(N as u64)) {
        let ctx = ctx();
        let (g1, g2) = (2 * g1 + 1, 2 * g2 + 1);
        let p = RnsPoly::from_signed(&ctx, &c, 3, 1);
        let mut pn = p.clone();
        pn.ntt_forward(&ctx);
        // NTT-form automorphism equals coefficient-form automorphism.
        let mut via_ntt = pn.automorphism(&ctx, g1).unwrap();
        via_ntt.ntt_inverse(&ctx);
        prop_assert_eq!(&via_ntt, &p.automorphism(&ctx, g1).unwrap());
        // phi_g2 ∘ phi_g1 = phi_{g1 g2}.
        let two = pn.automorphism(&ctx, g1).unwrap().automorphism(&ctx, g2).unwrap();
        let one = pn.automorphism(&ctx, (g1 * g2) % (2 * N as u64)).unwrap();
        prop_assert_eq!(two, one);
    }

    #[test]
    fn rescale_rounds_division(c in prop::collection::vec(any::<i64>(), N)) {
        let ctx = ctx();
        let q_len = 3;
        let ql = i128::from(ctx.q_moduli()[q_len - 1].value());
        let big: Vec<i128> = c.iter().map(|&v| i128::from(v) * 1_000_003).collect();
        let mut p = big_mod(&big, &ctx, q_len, 0);
        p.ntt_forward(&ctx);
        p.rescale(&ctx).unwrap();
        p.ntt_inverse(&ctx);
        let want: Vec<i128> = big.iter().map(|&v| {
            let r = v.rem_euclid(ql);
            let r = if r > ql / 2 { r - ql } else { r };
            (v - r) / ql
        }).collect();
        prop_assert_eq!(p, big_mod(&want, &ctx, q_len - 1, 0));
    }

    #[test]
    fn mod_up_then_mod_down_recovers(c in prop::collection::vec(any::<u64>(), N)) {
        // ModUp each digit, multiply by P (what a key does), sum, ModDown:
        // the result must equal the input exactly up to a tiny error.
        let ctx = ctx();
        let q_len = 5;
        let mut x = RnsPoly::zero(&ctx, q_len, 0, false);
        for (i, t) in ctx.q_tables().iter().enumerate() {
            let m = t.modulus();
            for (d, &v) in x.limb_mut(i).iter_mut().zip(&c) { *d = m.reduce(v); }
        }
        x.ntt_forward(&ctx);
        let alpha = 2;
        let digits = mod_up_digits(&ctx, &x, alpha).unwrap();
        prop_assert_eq!(digits.len(), 3);
        let pm = ctx.p_moduli();
        let mut acc = RnsPoly::zero(&ctx, q_len, ctx.p_len(), true);
        for (j, d) in digits.iter().enumerate() {
            // Gadget factor of digit j: P on its own primes, 0 elsewhere.
            let consts: Vec<u64> = ctx.tables(q_len, ctx.p_len()).enumerate().map(|(i, t)| {
                let m = t.modulus();
                if i < q_len && (j * alpha..(j + 1) * alpha).contains(&i) {
                    pm.iter().fold(1, |a, p| m.mul(a, m.reduce(p.value())))
                } else { 0 }
            }).collect();
            let mut term = d.clone();
            term.mul_rns_scalar(&ctx, &consts).unwrap();
            acc.add_assign(&ctx, &term).unwrap();
        }
        let mut back = mod_down(&ctx, &acc).unwrap();
        back.ntt_inverse(&ctx);
        x.ntt_inverse(&ctx);
        // Differences are at most a couple of units per coefficient.
        for (i, t) in ctx.q_tables().iter().enumerate() {
            let m = t.modulus();
            for (a, b) in back.limb(i).iter().zip(x.limb(i)) {
                prop_assert!(m.center(m.sub(*a, *b)).abs() <= 2);
            }
        }
    }

    /// ModDown of `x` plus a small coefficient-form `e` equals ModDown of
    /// `x + NTT(e)` exactly, and with a coefficient-form `m` that plus
    /// `NTT(m)`, at the top level and below; `e` of another length and an
    /// NTT-form `m` are refused.
    #[test]
    fn mod_down_adding_equals_mod_down_of_the_sum(
        c in prop::collection::vec(any::<u64>(), N),
        e in prop::collection::vec(-19i64..=19, N),
        q_len in 1usize..=5,
        one_special in any::<bool>(),
    ) {
        let ctx = if one_special { ctx_one_special() } else { ctx() };
        let mut x = RnsPoly::zero(&ctx, q_len, ctx.p_len(), true);
        for (i, t) in ctx.tables(q_len, ctx.p_len()).enumerate() {
            let m = t.modulus();
            for (d, &v) in x.limb_mut(i).iter_mut().zip(&c) { *d = m.reduce(v.rotate_left(i as u32)); }
        }
        let mut sum = RnsPoly::from_signed(&ctx, &e, q_len, ctx.p_len());
        sum.ntt_forward(&ctx);
        sum.add_assign(&ctx, &x).unwrap();
        prop_assert_eq!(mod_down_adding(&ctx, &x, &e, None).unwrap(), mod_down(&ctx, &sum).unwrap());
        prop_assert_eq!(mod_down_adding(&ctx, &x, &[], None).unwrap(), mod_down(&ctx, &x).unwrap());
        prop_assert!(mod_down_adding(&ctx, &x, &e[1..], None).is_err());
        // A message in coefficient form, added after the division.
        let mut m = RnsPoly::zero(&ctx, q_len, 0, false);
        for (i, t) in ctx.q_tables().iter().take(q_len).enumerate() {
            let md = t.modulus();
            for (d, &v) in m.limb_mut(i).iter_mut().zip(&c) { *d = md.reduce(v.rotate_right(i as u32 + 3)); }
        }
        let mut want = mod_down(&ctx, &sum).unwrap();
        let mut m_ntt = m.clone();
        m_ntt.ntt_forward(&ctx);
        want.add_assign(&ctx, &m_ntt).unwrap();
        prop_assert_eq!(mod_down_adding(&ctx, &x, &e, Some(&m)).unwrap(), want);
        prop_assert!(mod_down_adding(&ctx, &x, &e, Some(&m_ntt)).is_err());
    }
}

/// ModDown rounds to the nearest integer, ties up: with one special prime
/// (the conversion is then exact) `x = a·P + r` gives `a` for
/// `r ≤ (P − 1)/2` and `a + 1` above, for `a` of either sign, with and
/// without an added `e`.
#[test]
fn mod_down_rounds_to_nearest() {
    // The special prime below the others, and above (a reduction).
    for (q_bits, p_bits) in [(50, 45), (40, 60)] {
        rounds_to_nearest(q_bits, p_bits);
    }
}

fn rounds_to_nearest(q_bits: u32, p_bits: u32) {
    let q = generate_primes(q_bits, N, 2, &[]).unwrap();
    let p = generate_primes(p_bits, N, 1, &q).unwrap();
    let ctx = RingContext::new(N, &q, &p).unwrap();
    let big_p = i128::from(p[0]);
    let h = (big_p - 1) / 2;
    let cases: Vec<(i128, i128)> = [-3i128, -1, 0, 1, 1 << 40]
        .iter()
        .flat_map(|&a| {
            [
                (a, 0),
                (a, 1),
                (a, h - 1),
                (a, h),
                (a, h + 1),
                (a, big_p - 1),
                (a, -h),
            ]
        })
        .collect();
    let x_int: Vec<i128> = cases.iter().map(|&(a, r)| a * big_p + r).collect();
    let e: Vec<i64> = (0..N as i64).map(|i| i % 7 - 3).collect();
    for with_e in [false, true] {
        let mut x = RnsPoly::zero(&ctx, 2, 1, false);
        for (i, t) in ctx.tables(2, 1).enumerate() {
            let m = i128::from(t.modulus().value());
            for (d, v) in x.limb_mut(i).iter_mut().zip(&x_int) {
                *d = v.rem_euclid(m) as u64;
            }
        }
        x.ntt_forward(&ctx);
        let mut got = if with_e {
            mod_down_adding(&ctx, &x, &e, None).unwrap()
        } else {
            mod_down(&ctx, &x).unwrap()
        };
        got.ntt_inverse(&ctx);
        for (k, v) in x_int.iter().enumerate() {
            let v = v + if with_e { i128::from(e[k]) } else { 0 };
            let want = (v + h).div_euclid(big_p);
            for (i, t) in ctx.q_tables().iter().enumerate() {
                let m = i128::from(t.modulus().value());
                assert_eq!(
                    i128::from(got.limb(i)[k]),
                    want.rem_euclid(m),
                    "x = {v}, e: {with_e}, prime {i}, P of {p_bits} bits"
                );
            }
        }
    }
}

/// ModDown refuses what it cannot divide: an input without the special
/// limbs, a ring without special primes, an error of another length, and
/// a message in NTT form, with special limbs or at another level.
#[test]
fn mod_down_refuses_wrong_shapes() {
    let ctx = ctx();
    let x = {
        let mut x = RnsPoly::zero(&ctx, 3, ctx.p_len(), false);
        x.ntt_forward(&ctx);
        x
    };
    assert!(mod_down_adding(&ctx, &x, &[], None).is_ok());
    let mut no_p = RnsPoly::zero(&ctx, 3, 0, false);
    no_p.ntt_forward(&ctx);
    assert!(mod_down(&ctx, &no_p).is_err(), "no special limbs");
    let coeff = RnsPoly::zero(&ctx, 3, ctx.p_len(), false);
    assert!(mod_down(&ctx, &coeff).is_err(), "coefficient form");
    let q = generate_primes(50, N, 2, &[]).unwrap();
    let bare = RingContext::new(N, &q, &[]).unwrap();
    let mut y = RnsPoly::zero(&bare, 2, 0, false);
    y.ntt_forward(&bare);
    assert!(mod_down(&bare, &y).is_err(), "no special primes");
    assert!(
        mod_down_adding(&ctx, &x, &[1; N + 1], None).is_err(),
        "long e"
    );
    let m_ok = RnsPoly::zero(&ctx, 3, 0, false);
    assert!(mod_down_adding(&ctx, &x, &[], Some(&m_ok)).is_ok());
    let m_level = RnsPoly::zero(&ctx, 2, 0, false);
    assert!(
        mod_down_adding(&ctx, &x, &[], Some(&m_level)).is_err(),
        "m's level"
    );
    let m_p = RnsPoly::zero(&ctx, 3, ctx.p_len(), false);
    assert!(
        mod_down_adding(&ctx, &x, &[], Some(&m_p)).is_err(),
        "m's special limbs"
    );
}
