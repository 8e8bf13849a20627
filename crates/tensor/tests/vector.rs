//! Encrypted vectors (`cipherflow_tensor::vector`): every operation against
//! plaintext with a stated precision, level and scale management, public
//! contexts, byte formats under hostile input, and flooded release.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_ckks::{Preset, SecurityLevel};
use cipherflow_tensor::{choose_params, CkksVector, TensorError, VectorContext};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn rng() -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(7)
}

fn values(n: usize, seed: u64) -> Vec<f64> {
    (0..n)
        .map(|i| (((i as u64 * 2654435761 + seed * 97) % 2000) as f64 / 1000.0) - 1.0)
        .collect()
}

/// Bits of precision: −log2 of the largest absolute error.
fn bits(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths");
    let e = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0f64, f64::max);
    let b = -(e.max(1e-300)).log2();
    eprintln!("bits {b:.1}");
    b
}

fn ctx(depth: usize) -> VectorContext {
    let params = choose_params(depth, 20, 10, 13).unwrap();
    VectorContext::generate(&params, 8, &mut rng()).unwrap()
}

fn dec(c: &VectorContext, v: &CkksVector) -> Vec<f64> {
    c.decrypt(v).unwrap()
}

#[test]
fn chosen_parameters_are_secure_and_keep_the_scale_at_every_level() {
    for (depth, precision) in [(1, 20), (4, 25), (10, 28), (20, 20)] {
        let p = choose_params(depth, precision, 10, 13).unwrap();
        assert!(p.security() >= SecurityLevel::Bits128);
        assert_eq!(p.max_level(), depth);
        let c = VectorContext::generate(&p, 1, &mut rng()).unwrap();
        let base = p.default_scale();
        for l in 0..=depth {
            let r = c.scale_at(l).unwrap() / base;
            assert!(
                (r - 1.0).abs() < 2f64.powi(-15),
                "depth {depth} level {l}: {r}"
            );
        }
    }
    // Asking for more than a prime can hold is refused with the reason.
    match choose_params(2, 50, 20, 13) {
        Err(TensorError::DoesNotFit(m)) => assert!(m.contains("precision"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Depth 60 at 2^45 does not fit in N = 2^16.
    assert!(matches!(
        choose_params(60, 25, 10, 13),
        Err(TensorError::DoesNotFit(_))
    ));
}

#[test]
fn presets_work_and_a_drifting_chain_is_refused() {
    let p = Preset::N13.build().unwrap();
    let c = VectorContext::generate(&p, 1, &mut rng()).unwrap();
    let x = values(100, 1);
    let v = c.encrypt(&x, &mut rng()).unwrap();
    let y = c.mul(&v, &v).unwrap();
    let want: Vec<f64> = x.iter().map(|a| a * a).collect();
    assert!(bits(&dec(&c, &y), &want) > 20.0);
    // N16's thirty generic 40-bit primes drift past a factor of 2.
    let deep = Preset::N16.build().unwrap();
    match VectorContext::generate(&deep, 1, &mut rng()) {
        Err(TensorError::Invalid(m)) => assert!(m.contains("choose_params"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn arithmetic_matches_plaintext_across_levels() {
    let c = ctx(4);
    let mut r = rng();
    let (x, y, z) = (values(300, 1), values(300, 2), values(300, 3));
    let (vx, vy, vz) = (
        c.encrypt(&x, &mut r).unwrap(),
        c.encrypt(&y, &mut r).unwrap(),
        c.encrypt(&z, &mut r).unwrap(),
    );
    let want = |f: &dyn Fn(usize) -> f64| -> Vec<f64> { (0..300).map(f).collect() };
    // Fresh results.
    assert!(bits(&dec(&c, &vx), &x) > 20.0);
    assert!(bits(&dec(&c, &c.add(&vx, &vy).unwrap()), &want(&|i| x[i] + y[i])) > 20.0);
    assert!(bits(&dec(&c, &c.sub(&vx, &vy).unwrap()), &want(&|i| x[i] - y[i])) > 20.0);
    assert!(bits(&dec(&c, &c.neg(&vx).unwrap()), &want(&|i| -x[i])) > 20.0);
    assert!(
        bits(
            &dec(&c, &c.add_plain(&vx, &y).unwrap()),
            &want(&|i| x[i] + y[i])
        ) > 20.0
    );
    assert!(
        bits(
            &dec(&c, &c.add_scalar(&vx, 2.5).unwrap()),
            &want(&|i| x[i] + 2.5)
        ) > 20.0
    );
    // Products, then a sum of operands at different levels: x·y + z
    // (level 3 + level 4) and (x·y)·z + x (level 2 + level 4).
    let xy = c.mul(&vx, &vy).unwrap();
    assert_eq!(xy.level(), 3);
    let s = c.add(&xy, &vz).unwrap();
    assert_eq!(s.level(), 3);
    assert!(bits(&dec(&c, &s), &want(&|i| x[i] * y[i] + z[i])) > 20.0);
    let t = c.add(&c.mul(&xy, &vz).unwrap(), &vx).unwrap();
    assert_eq!(t.level(), 2);
    assert!(bits(&dec(&c, &t), &want(&|i| x[i] * y[i] * z[i] + x[i])) > 20.0);
    assert!(
        bits(
            &dec(&c, &c.mul_plain(&vx, &y).unwrap()),
            &want(&|i| x[i] * y[i])
        ) > 20.0
    );
    assert!(
        bits(
            &dec(&c, &c.mul_scalar(&vx, -3.25).unwrap()),
            &want(&|i| -3.25 * x[i])
        ) > 20.0
    );
    let p = c.pow(&vx, 5).unwrap();
    assert_eq!(p.level(), 1);
    assert!(bits(&dec(&c, &p), &want(&|i| x[i].powi(5))) > 20.0);
    // Four levels of products keep the promised 20 bits.
    let p16 = c.pow(&vx, 16).unwrap();
    assert_eq!(p16.level(), 0);
    assert!(bits(&dec(&c, &p16), &want(&|i| x[i].powi(16))) > 20.0);
    // No level left: a typed error, not a panic.
    assert!(matches!(c.mul(&p16, &p16), Err(TensorError::Ckks(_))));
    // Lengths must agree.
    let short = c.encrypt(&x[..10], &mut r).unwrap();
    assert!(matches!(c.add(&vx, &short), Err(TensorError::Shape(_))));
    assert!(matches!(
        c.mul_plain(&vx, &y[..10]),
        Err(TensorError::Shape(_))
    ));
    assert!(matches!(
        c.add_scalar(&vx, f64::NAN),
        Err(TensorError::Invalid(_))
    ));
}

#[test]
fn sums_dot_products_rotations_and_polynomials() {
    let c = ctx(4);
    let mut r = rng();
    let x = values(100, 4);
    let y = values(100, 5);
    let vx = c.encrypt(&x, &mut r).unwrap();
    let vy = c.encrypt(&y, &mut r).unwrap();
    let total: f64 = x.iter().sum();
    let s = c.sum(&vx, &mut r).unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s.level(), vx.level(), "a clean vector sums without a level");
    assert!(bits(&dec(&c, &s), &[total]) > 18.0);
    // Adding a constant dirties the padding (100 of 128): the sum masks it.
    let d = c.add_scalar(&vx, 1.0).unwrap();
    let sd = c.sum(&d, &mut r).unwrap();
    assert_eq!(sd.level(), vx.level() - 1);
    assert!(bits(&dec(&c, &sd), &[total + 100.0]) > 15.0);
    let dot: f64 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
    assert!(bits(&dec(&c, &c.dot(&vx, &vy, &mut r).unwrap()), &[dot]) > 15.0);
    assert!(bits(&dec(&c, &c.dot_plain(&vx, &y, &mut r).unwrap()), &[dot]) > 15.0);
    // Rotation: cyclic over the padded length 128.
    let rot = dec(&c, &c.rotate(&vx, 3, &mut r).unwrap());
    let padded: Vec<f64> = (0..128).map(|i| x.get(i).copied().unwrap_or(0.0)).collect();
    let want: Vec<f64> = (0..100).map(|i| padded[(i + 3) % 128]).collect();
    assert!(bits(&rot, &want) > 20.0);
    let back = dec(&c, &c.rotate(&vx, -5, &mut r).unwrap());
    let want: Vec<f64> = (0..100).map(|i| padded[(i + 128 - 5) % 128]).collect();
    assert!(bits(&back, &want) > 20.0);
    // Polynomial: a degree-3 sigmoid approximation, 2 levels.
    let coeffs = [0.5, 0.197, 0.0, -0.004];
    let pv = c.polyval(&vx, &coeffs).unwrap();
    assert_eq!(pv.level(), vx.level() - 2);
    let want: Vec<f64> = x
        .iter()
        .map(|a| 0.5 + 0.197 * a - 0.004 * a * a * a)
        .collect();
    assert!(bits(&dec(&c, &pv), &want) > 20.0);
    assert!(
        pv.noise_bound_log2().is_some(),
        "inputs within [−1, 1]: bound tracked"
    );
    // Degree 0 and 8.
    let k = c.polyval(&vx, &[1.5]).unwrap();
    assert!(bits(&dec(&c, &k), &[1.5; 100]) > 20.0);
    let c8: Vec<f64> = (0..9).map(|i| 1.0 / (i as f64 + 1.0)).collect();
    let p8 = c.polyval(&vx, &c8).unwrap();
    let want: Vec<f64> = x
        .iter()
        .map(|a| c8.iter().rev().fold(0.0, |acc, k| acc * a + k))
        .collect();
    assert!(bits(&dec(&c, &p8), &want) > 18.0);
}

#[test]
fn matrix_products_of_any_shape() {
    let c = ctx(3);
    let mut r = rng();
    for (rows, cols) in [(64, 64), (5, 3), (10, 300), (300, 7)] {
        let x = values(rows, rows as u64);
        let w = values(rows * cols, cols as u64);
        let vx = c.encrypt(&x, &mut r).unwrap();
        let out = c.matmul(&vx, &w, cols, &mut r).unwrap();
        assert_eq!(out.len(), cols);
        assert_eq!(out.level(), vx.level() - 1);
        let want: Vec<f64> = (0..cols)
            .map(|j| (0..rows).map(|i| x[i] * w[i * cols + j]).sum())
            .collect();
        assert!(bits(&dec(&c, &out), &want) > 15.0, "{rows}×{cols}");
        // The product can be used further: square it, sum it.
        let sq = c.square(&out).unwrap();
        let want_sq: f64 = want.iter().map(|v| v * v).sum();
        let s = c.sum(&sq, &mut r).unwrap();
        let rel = (dec(&c, &s)[0] - want_sq).abs() / want_sq.abs().max(1.0);
        assert!(rel < 1e-4, "{rows}×{cols}: {rel}");
    }
    let vx = c.encrypt(&values(4, 1), &mut r).unwrap();
    assert!(matches!(
        c.matmul(&vx, &[1.0; 7], 2, &mut r),
        Err(TensorError::Shape(_))
    ));
    assert!(matches!(
        c.matmul(&vx, &[f64::INFINITY; 8], 2, &mut r),
        Err(TensorError::Invalid(_))
    ));
}

#[test]
fn a_public_context_computes_but_cannot_decrypt_or_make_keys() {
    let owner = ctx(3);
    let mut r = rng();
    owner.generate_galois_keys(None, &mut r).unwrap();
    let public_bytes = owner.to_bytes(false).unwrap();
    let server = VectorContext::from_bytes(&public_bytes, false).unwrap();
    assert!(!server.has_secret_key());
    let x = values(50, 9);
    let v = server
        .vector_from_bytes(
            &owner
                .vector_to_bytes(&owner.encrypt(&x, &mut r).unwrap())
                .unwrap(),
        )
        .unwrap();
    // Decryption and key generation need the secret key.
    assert!(matches!(
        server.decrypt(&v),
        Err(TensorError::MissingKey(_))
    ));
    assert!(matches!(
        server.generate_galois_keys(None, &mut r),
        Err(TensorError::MissingKey(_))
    ));
    assert!(matches!(
        server.to_bytes(true),
        Err(TensorError::MissingKey(_))
    ));
    // A rotation by 5 is composed from the power-of-two keys (4 + 1).
    let rv = server.rotate(&v, 5, &mut r).unwrap();
    let back = owner
        .vector_from_bytes(&server.vector_to_bytes(&rv).unwrap())
        .unwrap();
    let padded: Vec<f64> = (0..64).map(|i| x.get(i).copied().unwrap_or(0.0)).collect();
    let want: Vec<f64> = (0..50).map(|i| padded[(i + 5) % 64]).collect();
    assert!(bits(&dec(&owner, &back), &want) > 20.0);
    // A matrix product needs keys the owner did not make: named in the error.
    match server.matmul(&v, &vec![0.5; 50 * 50], 50, &mut r) {
        Err(TensorError::MissingKey(m)) => assert!(m.contains("generate_galois_keys"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Sums work from the power-of-two keys.
    let s = server.sum(&v, &mut r).unwrap();
    let back = owner
        .vector_from_bytes(&server.vector_to_bytes(&s).unwrap())
        .unwrap();
    assert!(bits(&dec(&owner, &back), &[x.iter().sum()]) > 18.0);
}

#[test]
fn contexts_and_vectors_round_trip_and_refuse_hostile_bytes() {
    let owner = ctx(2);
    let mut r = rng();
    owner.generate_galois_keys(Some(&[1, 2]), &mut r).unwrap();
    let secret = owner.to_bytes(true).unwrap();
    let again = VectorContext::from_bytes(&secret, false).unwrap();
    assert!(again.has_secret_key());
    assert_eq!(again.galois_key_count(), 2);
    let x = values(20, 3);
    let v = owner.encrypt(&x, &mut r).unwrap();
    let bytes = owner.vector_to_bytes(&v).unwrap();
    assert!(bits(&dec(&again, &again.vector_from_bytes(&bytes).unwrap()), &x) > 20.0);
    // Every truncation is refused without a panic.
    for cut in (0..bytes.len()).step_by(97).chain([bytes.len() - 1]) {
        assert!(owner.vector_from_bytes(&bytes[..cut]).is_err(), "cut {cut}");
    }
    let public = owner.to_bytes(false).unwrap();
    for cut in (0..public.len()).step_by(4099).chain([public.len() - 1]) {
        assert!(
            VectorContext::from_bytes(&public[..cut], false).is_err(),
            "cut {cut}"
        );
    }
    // Trailing bytes, unknown flags, a count beyond the slots, a wrong
    // clean flag, releases beyond the budget.
    let mut t = bytes.clone();
    t.push(0);
    assert!(owner.vector_from_bytes(&t).is_err());
    let mut t = bytes.clone();
    t[5..9].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(owner.vector_from_bytes(&t).is_err());
    let mut t = bytes.clone();
    t[9] = 2;
    assert!(owner.vector_from_bytes(&t).is_err());
    let mut t = public.to_vec();
    t[5] |= 0x80;
    assert!(VectorContext::from_bytes(&t, false).is_err());
    let mut t = public.to_vec();
    t[14..22].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(VectorContext::from_bytes(&t, false).is_err());
    // A section length beyond the input does not allocate it.
    let mut t = public.to_vec();
    t[22..30].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    assert!(VectorContext::from_bytes(&t, false).is_err());
    // A vector of another parameter set is refused.
    let other = ctx(3);
    let foreign = other
        .vector_to_bytes(&other.encrypt(&x, &mut r).unwrap())
        .unwrap();
    assert!(owner.vector_from_bytes(&foreign).is_err());
}

#[test]
fn released_values_are_flooded_counted_and_need_a_bound() {
    let params = choose_params(1, 38, 0, 13).unwrap();
    let c = VectorContext::generate(&params, 3, &mut rng()).unwrap();
    let mut r = rng();
    let x = values(64, 11);
    let v = c.encrypt(&x, &mut r).unwrap();
    let exact = dec(&c, &v);
    let out = c.release(&v, None, 40, &mut r).unwrap();
    assert_eq!(out.remaining, 2);
    // The flooding is really there: the released values sit much farther
    // from the owner's decryption than its own noise does.
    let own = bits(&exact, &x);
    let released = bits(&out.values, &exact);
    assert!(own > released + 15.0, "own {own}, released {released}");
    assert!(
        released > 0.0 && out.precision_bits > 0.0,
        "{released} {}",
        out.precision_bits
    );
    // A vector that arrived as bytes has no bound here: it must be stated.
    let from_bytes = c
        .vector_from_bytes(&c.vector_to_bytes(&v).unwrap())
        .unwrap();
    match c.release(&from_bytes, None, 40, &mut r) {
        Err(TensorError::Invalid(m)) => assert!(m.contains("noise_bound_log2"), "{m}"),
        other => panic!("{other:?}"),
    }
    let stated = c.release(&from_bytes, Some(30.0), 40, &mut r).unwrap();
    assert_eq!(stated.remaining, 1);
    // A stated bound below the truth would under-flood: a bound below a
    // fresh encryption's is refused.
    assert!(c.release(&from_bytes, Some(1.0), 40, &mut r).is_err());
    // The budget: the third release is the last, the fourth is refused,
    // and a reload does not reset it.
    c.release(&v, None, 40, &mut r).unwrap();
    assert!(c.release(&v, None, 40, &mut r).is_err());
    let reloaded = VectorContext::from_bytes(&c.to_bytes(true).unwrap(), false).unwrap();
    assert!(reloaded.release(&v, None, 40, &mut r).is_err());
    // A public context releases nothing.
    let public = c.public().unwrap();
    assert!(matches!(
        public.release(&v, None, 40, &mut r),
        Err(TensorError::MissingKey(_))
    ));
}
