//! Every encrypted operation against plaintext on random data, with the
//! precision (bits, `-log2 max |error|`) each must reach.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_ckks::{
    precision_bits, CkksParams, Decryptor, Encoder, Encryptor, Evaluator, GaloisKeys,
    ParamsBuilder, RelinKey, SecretKey,
};
use cipherflow_tensor::layout::{replicated_chunk, EncTensor, Layout};
use cipherflow_tensor::{ops, EncodedMatVec, LinearMap, Polynomial};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Small ring for speed (N = 2^10, 512 slots): tests only, never for data.
fn small_params(depth: usize) -> CkksParams {
    let mut q = vec![50];
    q.extend(std::iter::repeat_n(36, depth));
    ParamsBuilder::new(10)
        .q_bits(&q)
        .p_bits(&[50])
        .log_scale(36)
        .allow_insecure()
        .build()
        .unwrap()
}

fn rand_vec(rng: &mut ChaCha20Rng, n: usize, amp: f64) -> Vec<f64> {
    (0..n)
        .map(|_| ((rng.next_u32() as f64 / u32::MAX as f64) * 2.0 - 1.0) * amp)
        .collect()
}

struct Ctx {
    params: CkksParams,
    sk: SecretKey,
    rlk: RelinKey,
    enc: Encoder,
    eval: Evaluator,
    rng: ChaCha20Rng,
}

fn ctx(depth: usize) -> Ctx {
    let params = small_params(depth);
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let sk = SecretKey::generate(&params, &mut rng);
    let rlk = RelinKey::generate(&sk, &mut rng).unwrap();
    Ctx {
        enc: Encoder::new(&params),
        eval: Evaluator::new(&params),
        params,
        sk,
        rlk,
        rng,
    }
}

fn encrypt(c: &mut Ctx, x: &[f64]) -> EncTensor {
    let e = Encryptor::with_secret_key(&c.sk);
    let (lvl, s) = (c.params.max_level(), c.params.default_scale());
    EncTensor::encrypt(&e, &c.enc, x, &[x.len()], lvl, s, &mut c.rng).unwrap()
}

fn check_matvec(rows: usize, cols: usize, min_bits: f64) {
    let mut c = ctx(2);
    let slots = c.params.slots();
    let a = rand_vec(&mut c.rng, rows * cols, 1.0 / (cols as f64).sqrt());
    let b = rand_vec(&mut c.rng, rows, 0.5);
    let map = LinearMap::new(rows, cols, a, b).unwrap();
    let x = rand_vec(&mut c.rng, cols, 1.0);
    let want = map.apply(&x).unwrap();
    let (lvl, s) = (c.params.max_level(), c.params.default_scale());
    let mv = EncodedMatVec::new(&c.enc, &c.eval, &map, lvl, s, s).unwrap();
    let gk = GaloisKeys::generate(&c.sk, &mv.rotation_steps(), false, &mut c.rng).unwrap();
    let ct = encrypt(&mut c, &x);
    let y = mv.apply(&c.eval, &gk, &ct).unwrap();
    assert_eq!(y.level(), lvl - 1);
    assert!(
        (y.scale() / s - 1.0).abs() < 1e-9,
        "output lands on the target scale"
    );
    assert_eq!(
        y.layout(),
        Layout::Replicated {
            chunk: replicated_chunk(rows, slots)
        }
    );
    let got = y.decrypt(&Decryptor::new(&c.sk)).unwrap().remove(0);
    let bits = precision_bits(&want, &got).unwrap();
    assert!(
        bits >= min_bits,
        "{rows}×{cols}: {bits:.1} bits < {min_bits}"
    );
    // Replication: every period holds the result (rotations wrap correctly).
    if rows < slots {
        let dec = Decryptor::new(&c.sk)
            .decrypt_values(&y.ciphertexts()[0])
            .unwrap();
        let m = replicated_chunk(rows, slots);
        let last: Vec<f64> = dec[slots - m..slots - m + rows].to_vec();
        assert!(precision_bits(&want, &last).unwrap() >= min_bits);
    }
}

#[test]
fn matvec_square_wide_tall_and_split() {
    // Precision: ≥ 18 bits for 36-bit scales at N = 2^10 (values O(1)).
    check_matvec(64, 64, 18.0); // square
    check_matvec(10, 100, 18.0); // wide: folds partial sums
    check_matvec(200, 30, 18.0); // tall
    check_matvec(20, 700, 17.0); // input larger than the 512 slots: split
    check_matvec(600, 40, 17.0); // output larger than the slots: split
}

#[test]
fn sum_mean_dot() {
    let mut c = ctx(2);
    let n = 100;
    let x = rand_vec(&mut c.rng, n, 1.0);
    let y = rand_vec(&mut c.rng, n, 1.0);
    let slots = c.params.slots();
    let gk =
        GaloisKeys::generate(&c.sk, &ops::reduction_steps(n, slots), false, &mut c.rng).unwrap();
    let s = c.params.default_scale();
    let cx = encrypt(&mut c, &x);
    let cy = encrypt(&mut c, &y);
    let dec = Decryptor::new(&c.sk);
    let total: f64 = x.iter().sum();
    let got = dec
        .decrypt_values(&ops::sum(&c.eval, &c.enc, &gk, &cx, s).unwrap())
        .unwrap();
    assert!(
        precision_bits(&[total; 4], &got[..4]).unwrap() >= 18.0,
        "sum {got:?} vs {total}"
    );
    let got = dec
        .decrypt_values(&ops::mean(&c.eval, &c.enc, &gk, &cx, s).unwrap())
        .unwrap();
    assert!(precision_bits(&[total / n as f64], &got[..1]).unwrap() >= 20.0);
    let d: f64 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
    let got = dec
        .decrypt_values(&ops::dot(&c.eval, &c.enc, &c.rlk, &gk, &cx, &cy, s).unwrap())
        .unwrap();
    assert!(
        precision_bits(&[d], &got[..1]).unwrap() >= 16.0,
        "dot {} vs {d}",
        got[0]
    );
    let got = dec
        .decrypt_values(&ops::dot_plain(&c.eval, &c.enc, &gk, &cx, &y, s).unwrap())
        .unwrap();
    assert!(precision_bits(&[d], &got[..1]).unwrap() >= 18.0);
}

#[test]
fn polynomials_at_minimal_depth() {
    let mut c = ctx(4);
    let x = rand_vec(&mut c.rng, 256, 1.0);
    let ct = encrypt(&mut c, &x);
    let dec = Decryptor::new(&c.sk);
    let s = c.params.default_scale();
    for coeffs in [
        vec![0.5, -1.0, 0.25],
        vec![0.1, 0.9, 0.0, -0.3],
        vec![0.0, 0.5, -0.2, 0.3, 0.1, -0.05, 0.02, 0.01],
        vec![
            0.3, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.2,
        ],
    ] {
        let p = Polynomial::new(&coeffs).unwrap();
        let out = p.eval_ct(&c.eval, &c.rlk, &ct.ciphertexts()[0], s).unwrap();
        assert_eq!(
            out.level(),
            c.params.max_level() - p.depth(),
            "depth of {coeffs:?}"
        );
        assert!((out.scale() / s - 1.0).abs() < 1e-9);
        let got = dec.decrypt_values(&out).unwrap();
        let want: Vec<f64> = x.iter().map(|&v| p.eval(v)).collect();
        let bits = precision_bits(&want, &got[..256]).unwrap();
        assert!(bits >= 16.0, "degree {}: {bits:.1} bits", p.degree());
    }
    assert_eq!(Polynomial::new(&[0.0; 8]).unwrap().depth(), 1);
    assert_eq!(Polynomial::new(&[1.0; 8]).unwrap().depth(), 3);
    assert_eq!(Polynomial::new(&[1.0; 9]).unwrap().depth(), 4);
}

#[test]
fn batched_layout_linear_and_square() {
    let mut c = ctx(2);
    let batch = 300;
    let (rows, cols) = (5, 12);
    let a = rand_vec(&mut c.rng, rows * cols, 0.5);
    let b = rand_vec(&mut c.rng, rows, 0.5);
    let map = LinearMap::new(rows, cols, a, b).unwrap();
    let xs: Vec<Vec<f64>> = (0..batch)
        .map(|_| rand_vec(&mut c.rng, cols, 1.0))
        .collect();
    let e = Encryptor::with_secret_key(&c.sk);
    let (lvl, s) = (c.params.max_level(), c.params.default_scale());
    let ct = EncTensor::encrypt_batch(&e, &c.enc, &xs, &[cols], lvl, s, &mut c.rng).unwrap();
    let dec = Decryptor::new(&c.sk);
    // Row 0 of the map, through mul_const_sum, then x².
    let refs: Vec<_> = ct.ciphertexts().iter().collect();
    let y0 = c
        .eval
        .rescale(
            &c.eval
                .add_const(
                    &c.eval.mul_const_sum(&refs, map.row(0), s).unwrap(),
                    map.bias()[0],
                )
                .unwrap(),
        )
        .unwrap();
    let sq = c
        .eval
        .rescale(&c.eval.mul_relin(&y0, &y0, &c.rlk).unwrap())
        .unwrap();
    let got = dec.decrypt_values(&sq).unwrap();
    let want: Vec<f64> = xs
        .iter()
        .map(|x| map.apply(x).unwrap()[0].powi(2))
        .collect();
    assert!(precision_bits(&want, &got[..batch]).unwrap() >= 16.0);
    let back = ct.decrypt(&dec).unwrap();
    assert_eq!(back.len(), batch);
    assert!(precision_bits(&xs[17], &back[17]).unwrap() >= 20.0);
}

#[test]
fn malformed_inputs_are_errors() {
    assert!(LinearMap::new(2, 3, vec![0.0; 5], vec![0.0; 2]).is_err());
    assert!(LinearMap::new(2, 3, vec![f64::NAN; 6], vec![0.0; 2]).is_err());
    assert!(Polynomial::new(&[]).is_err());
    assert!(matches!(
        LinearMap::identity(1 << 14),
        Err(cipherflow_tensor::TensorError::Unsupported(_))
    ));
    assert!(Polynomial::chebyshev_fit(|x| x, 1.0, 0).is_err());
    let mut c = ctx(2);
    let map = LinearMap::identity(8).unwrap();
    let (lvl, s) = (c.params.max_level(), c.params.default_scale());
    let mv = EncodedMatVec::new(&c.enc, &c.eval, &map, lvl, s, s).unwrap();
    let gk = GaloisKeys::generate(&c.sk, &mv.rotation_steps(), false, &mut c.rng).unwrap();
    let wrong = encrypt(&mut c, &[1.0; 9]);
    assert!(mv.apply(&c.eval, &gk, &wrong).is_err());
}

#[test]
fn long_constant_sums_with_60_bit_primes_do_not_overflow() {
    // (2^60)^2 · 300 overflows 128 bits: the lazy accumulator must reduce
    // in chunks.
    let params = ParamsBuilder::new(10)
        .q_bits(&[60, 60])
        .p_bits(&[60])
        .log_scale(40)
        .allow_insecure()
        .build()
        .unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let sk = SecretKey::generate(&params, &mut rng);
    let enc = Encoder::new(&params);
    let eval = Evaluator::new(&params);
    let x = rand_vec(&mut rng, 64, 1.0);
    let ct = Encryptor::with_secret_key(&sk)
        .encrypt(
            &enc.encode(&x, 1, params.default_scale()).unwrap(),
            &mut rng,
        )
        .unwrap();
    let refs = vec![&ct; 300];
    let w = vec![0.01; 300];
    let s = params.default_scale();
    let y = eval
        .rescale(&eval.mul_const_sum(&refs, &w, s).unwrap())
        .unwrap();
    let got = Decryptor::new(&sk).decrypt_values(&y).unwrap();
    let want: Vec<f64> = x.iter().map(|v| 3.0 * v).collect();
    assert!(precision_bits(&want, &got[..64]).unwrap() >= 20.0);
    // mul_plain_sum too.
    let pt = enc.encode(&vec![0.5; 64], 1, params.q()[1] as f64).unwrap();
    let pairs: Vec<_> = (0..300).map(|_| (&ct, &pt)).collect();
    let y = eval.rescale(&eval.mul_plain_sum(&pairs).unwrap()).unwrap();
    let got = Decryptor::new(&sk).decrypt_values(&y).unwrap();
    let want: Vec<f64> = x.iter().map(|v| 150.0 * v).collect();
    assert!(
        precision_bits(&want, &got[..64]).unwrap() >= 14.0,
        "{}",
        precision_bits(&want, &got[..64]).unwrap()
    );
}
