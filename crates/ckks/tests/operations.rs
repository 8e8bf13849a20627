//! Every homomorphic operation against plaintext arithmetic on random
//! vectors, with a stated minimum precision (bits) per parameter set.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::needless_range_loop
)]

use cipherflow_ckks::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

struct Setup {
    params: CkksParams,
    sk: SecretKey,
    pk: PublicKey,
    rlk: RelinKey,
    gk: GaloisKeys,
    enc: Encoder,
    eval: Evaluator,
    rng: ChaCha20Rng,
}

const STEPS: [i64; 6] = [1, 2, 5, -1, -7, 100];

fn setup(params: CkksParams) -> Setup {
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let sk = SecretKey::generate(&params, &mut rng);
    let pk = PublicKey::generate(&sk, &mut rng).unwrap();
    let rlk = RelinKey::generate(&sk, &mut rng).unwrap();
    let gk = GaloisKeys::generate(&sk, &STEPS, true, &mut rng).unwrap();
    Setup {
        enc: Encoder::new(&params),
        eval: Evaluator::new(&params),
        params,
        sk,
        pk,
        rlk,
        gk,
        rng,
    }
}

fn random_values(rng: &mut ChaCha20Rng, n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| (rng.next_u64() as f64 / u64::MAX as f64) * 2.0 - 1.0)
        .collect()
}

/// Minimum precision (bits) for one fresh encryption round trip, and after
/// one mul + relin + rescale at scale 2^40.
const FRESH_BITS: f64 = 21.0;
const MUL_BITS: f64 = 20.0;

fn check(label: &str, want: &[f64], got: &[f64], min_bits: f64) {
    let bits = precision_bits(want, &got[..want.len()]).unwrap();
    println!("{label}: {bits:.1} bits");
    assert!(bits >= min_bits, "{label}: {bits:.1} bits < {min_bits}");
}

fn run_all(s: &mut Setup) {
    let slots = s.params.slots();
    let a = random_values(&mut s.rng, slots);
    let b = random_values(&mut s.rng, slots);
    let encp = Encryptor::with_public_key(&s.pk);
    let encs = Encryptor::with_secret_key(&s.sk);
    let dec = Decryptor::new(&s.sk);
    let ca = encp.encrypt_values(&s.enc, &a, &mut s.rng).unwrap();
    let cb = encs.encrypt_values(&s.enc, &b, &mut s.rng).unwrap();
    check(
        "encode/decode",
        &a,
        &s.enc.decode(&s.enc.encode_default(&a).unwrap()).unwrap(),
        30.0,
    );
    check(
        "encrypt pk",
        &a,
        &dec.decrypt_values(&ca).unwrap(),
        FRESH_BITS,
    );
    check(
        "encrypt sk",
        &b,
        &dec.decrypt_values(&cb).unwrap(),
        FRESH_BITS,
    );

    // Every level: the encryptors and the decryptor read a prefix of
    // their keys' limbs.
    for level in 0..=s.params.max_level() {
        let pt = s.enc.encode(&a, level, s.params.default_scale()).unwrap();
        for (label, e) in [("pk", &encp), ("sk", &encs)] {
            let ct = e.encrypt(&pt, &mut s.rng).unwrap();
            assert_eq!(ct.level(), level);
            let got = dec.decrypt_values(&ct).unwrap();
            check(
                &format!("encrypt {label} at level {level}"),
                &a,
                &got,
                FRESH_BITS,
            );
        }
    }

    let sum: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    let diff: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
    let prod: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x * y).collect();
    check(
        "add",
        &sum,
        &dec.decrypt_values(&s.eval.add(&ca, &cb).unwrap()).unwrap(),
        FRESH_BITS,
    );
    check(
        "sub",
        &diff,
        &dec.decrypt_values(&s.eval.sub(&ca, &cb).unwrap()).unwrap(),
        FRESH_BITS,
    );
    let neg: Vec<f64> = a.iter().map(|x| -x).collect();
    check(
        "neg",
        &neg,
        &dec.decrypt_values(&s.eval.neg(&ca).unwrap()).unwrap(),
        FRESH_BITS,
    );

    let pb = s.enc.encode_default(&b).unwrap();
    check(
        "add_plain",
        &sum,
        &dec.decrypt_values(&s.eval.add_plain(&ca, &pb).unwrap())
            .unwrap(),
        FRESH_BITS,
    );
    check(
        "sub_plain",
        &diff,
        &dec.decrypt_values(&s.eval.sub_plain(&ca, &pb).unwrap())
            .unwrap(),
        FRESH_BITS,
    );
    let mp = s
        .eval
        .rescale(&s.eval.mul_plain(&ca, &pb).unwrap())
        .unwrap();
    check(
        "mul_plain+rescale",
        &prod,
        &dec.decrypt_values(&mp).unwrap(),
        MUL_BITS,
    );

    let plus: Vec<f64> = a.iter().map(|x| x + 0.75).collect();
    check(
        "add_const",
        &plus,
        &dec.decrypt_values(&s.eval.add_const(&ca, 0.75).unwrap())
            .unwrap(),
        FRESH_BITS,
    );
    let times: Vec<f64> = a.iter().map(|x| x * -3.25).collect();
    let mc = s
        .eval
        .rescale(&s.eval.mul_const(&ca, -3.25).unwrap())
        .unwrap();
    assert!(
        (mc.scale() / ca.scale() - 1.0).abs() < 1e-12,
        "mul_const+rescale keeps the scale"
    );
    check(
        "mul_const+rescale",
        &times,
        &dec.decrypt_values(&mc).unwrap(),
        MUL_BITS,
    );

    // mul, relin, rescale, and all three together.
    let m3 = s.eval.mul(&ca, &cb).unwrap();
    assert_eq!(m3.size(), 3);
    let mut prod_scaled = dec.decrypt_values(&m3).unwrap();
    prod_scaled.truncate(slots);
    check("mul (size 3)", &prod, &prod_scaled, MUL_BITS);
    let relin = s.eval.relinearize(&m3, &s.rlk).unwrap();
    check(
        "relin",
        &prod,
        &dec.decrypt_values(&relin).unwrap(),
        MUL_BITS,
    );
    let mrr = s.eval.rescale(&relin).unwrap();
    assert_eq!(mrr.level(), ca.level() - 1);
    check(
        "mul_relin_rescale",
        &prod,
        &dec.decrypt_values(&mrr).unwrap(),
        MUL_BITS,
    );
    // A top-level plaintext serves a lower-level ciphertext (its prefix limbs).
    let pb_scale = s.enc.encode(&b, s.params.max_level(), mrr.scale()).unwrap();
    let abb: Vec<f64> = prod.iter().zip(&b).map(|(x, y)| x * y).collect();
    let low = s
        .eval
        .rescale(&s.eval.mul_plain(&mrr, &pb).unwrap())
        .unwrap();
    check(
        "mul_plain at lower level",
        &abb,
        &dec.decrypt_values(&low).unwrap(),
        MUL_BITS - 2.0,
    );
    let sum_low: Vec<f64> = prod.iter().zip(&b).map(|(x, y)| x + y).collect();
    check(
        "add_plain at lower level",
        &sum_low,
        &dec.decrypt_values(&s.eval.add_plain(&mrr, &pb_scale).unwrap())
            .unwrap(),
        MUL_BITS,
    );
    let sq: Vec<f64> = a.iter().map(|x| x * x).collect();
    let csq = s
        .eval
        .rescale(
            &s.eval
                .relinearize(&s.eval.square(&ca).unwrap(), &s.rlk)
                .unwrap(),
        )
        .unwrap();
    check("square", &sq, &dec.decrypt_values(&csq).unwrap(), MUL_BITS);

    // Rotations by several steps, negative ones, hoisted, and conjugation.
    for &k in &STEPS {
        let want: Vec<f64> = (0..slots)
            .map(|j| a[(j as i64 + k).rem_euclid(slots as i64) as usize])
            .collect();
        let r = s.eval.rotate(&ca, k, &s.gk).unwrap();
        check(
            &format!("rotate {k}"),
            &want,
            &dec.decrypt_values(&r).unwrap(),
            FRESH_BITS - 2.0,
        );
    }
    let hoisted = s.eval.rotate_hoisted(&ca, &STEPS, &s.gk).unwrap();
    for (&k, r) in STEPS.iter().zip(&hoisted) {
        let want: Vec<f64> = (0..slots)
            .map(|j| a[(j as i64 + k).rem_euclid(slots as i64) as usize])
            .collect();
        check(
            &format!("hoisted rotate {k}"),
            &want,
            &dec.decrypt_values(r).unwrap(),
            FRESH_BITS - 2.0,
        );
    }
    let z: Vec<Complex64> = a
        .iter()
        .zip(&b)
        .map(|(&x, &y)| Complex64::new(x, y))
        .collect();
    let cz = encp
        .encrypt(
            &s.enc
                .encode_complex(&z, s.params.max_level(), s.params.default_scale())
                .unwrap(),
            &mut s.rng,
        )
        .unwrap();
    let conj = dec
        .decrypt_complex(&s.eval.conjugate(&cz, &s.gk).unwrap())
        .unwrap();
    let im: Vec<f64> = conj.iter().map(|c| -c.im).collect();
    check("conjugate (imag)", &b, &im, FRESH_BITS - 2.0);
    let re: Vec<f64> = conj.iter().map(|c| c.re).collect();
    check("conjugate (real)", &a, &re, FRESH_BITS - 2.0);

    // Missing key is a typed error.
    assert!(matches!(
        s.eval.rotate(&ca, 3, &s.gk),
        Err(CkksError::MissingGaloisKey(_))
    ));
}

#[test]
fn depth2_preset_all_operations() {
    let mut s = setup(Preset::Depth2.build().unwrap());
    run_all(&mut s);
}

#[test]
fn multi_digit_small_ring_all_operations() {
    // Several primes per digit, 2 special primes (insecure size for speed).
    let params = ParamsBuilder::new(11)
        .q_bits(&[55, 40, 40, 40, 40])
        .p_bits(&[58, 58])
        .allow_insecure()
        .build()
        .unwrap();
    assert_eq!(params.dnum(), 3);
    let mut s = setup(params);
    run_all(&mut s);
}

#[test]
fn depth_chain_and_inner_sum() {
    let params = ParamsBuilder::new(12)
        .q_bits(&[50, 40, 40, 40])
        .p_bits(&[50])
        .allow_insecure()
        .build()
        .unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let sk = SecretKey::generate(&params, &mut rng);
    let rlk = RelinKey::generate(&sk, &mut rng).unwrap();
    let slots = params.slots();
    let gk =
        GaloisKeys::generate(&sk, &Evaluator::inner_sum_steps(slots), false, &mut rng).unwrap();
    let enc = Encoder::new(&params);
    let eval = Evaluator::new(&params);
    let dec = Decryptor::new(&sk);
    let x = random_values(&mut rng, slots);
    let mut ct = Encryptor::with_secret_key(&sk)
        .encrypt_values(&enc, &x, &mut rng)
        .unwrap();
    // x^8 by three squarings, using every level.
    for _ in 0..3 {
        ct = eval
            .rescale(&eval.mul_relin(&ct, &ct, &rlk).unwrap())
            .unwrap();
    }
    assert_eq!(ct.level(), 0);
    let want: Vec<f64> = x.iter().map(|v| v.powi(8)).collect();
    check("x^8", &want, &dec.decrypt_values(&ct).unwrap(), 15.0);
    assert!(matches!(eval.rescale(&ct), Err(CkksError::NoLevelLeft(0))));

    let ct = Encryptor::with_secret_key(&sk)
        .encrypt_values(&enc, &x, &mut rng)
        .unwrap();
    let total: f64 = x.iter().sum();
    let s = dec
        .decrypt_values(&eval.inner_sum(&ct, slots, &gk).unwrap())
        .unwrap();
    assert!(s.iter().all(|v| (v - total).abs() < 1e-5), "inner sum");
}

#[test]
fn mismatches_are_errors() {
    let params = Preset::Depth2.build().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let sk = SecretKey::generate(&params, &mut rng);
    let enc = Encoder::new(&params);
    let eval = Evaluator::new(&params);
    let e = Encryptor::with_secret_key(&sk);
    let a = e.encrypt_values(&enc, &[1.0], &mut rng).unwrap();
    let low = eval.drop_to_level(&a, 1).unwrap();
    assert!(matches!(
        eval.add(&a, &low),
        Err(CkksError::LevelMismatch(2, 1))
    ));
    let pt = enc.encode(&[1.0], 2, 2f64.powi(30)).unwrap();
    let b = e.encrypt(&pt, &mut rng).unwrap();
    assert!(matches!(
        eval.add(&a, &b),
        Err(CkksError::ScaleMismatch(..))
    ));
    assert!(matches!(
        eval.relinearize(&a, &RelinKey::generate(&sk, &mut rng).unwrap()),
        Err(CkksError::WrongSize(2, 3))
    ));
    // A ciphertext of other parameters is rejected.
    let other = ParamsBuilder::new(13)
        .q_bits(&[50, 40])
        .p_bits(&[50])
        .build()
        .unwrap();
    let sk2 = SecretKey::generate(&other, &mut rng);
    let c2 = Encryptor::with_secret_key(&sk2)
        .encrypt_values(&Encoder::new(&other), &[1.0], &mut rng)
        .unwrap();
    assert!(matches!(eval.neg(&c2), Err(CkksError::ParamsMismatch)));
    assert!(matches!(
        enc.encode(&vec![0.0; params.slots() + 1], 0, 1e9),
        Err(CkksError::TooManyValues { .. })
    ));
    assert!(enc.encode(&[f64::NAN], 0, 1e9).is_err());
}

#[test]
fn flooding_adds_calibrated_noise() {
    let params = Preset::Depth2.build().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let sk = SecretKey::generate(&params, &mut rng);
    let enc = Encoder::new(&params);
    let x = random_values(&mut rng, params.slots());
    let ct = Encryptor::with_secret_key(&sk)
        .encrypt_values(&enc, &x, &mut rng)
        .unwrap();
    let dec = Decryptor::new(&sk);
    let bound = NoiseBound::fresh(
        &params,
        Fresh::SecretKey,
        1.0,
        params.default_scale(),
        DEFAULT_TAIL_BITS,
    )
    .unwrap();
    let measured = dec.measure_canonical_noise_log2(&ct, &x).unwrap();
    assert!(
        measured <= bound.total().log2(),
        "{measured} > {}",
        bound.total().log2()
    );
    let fl = Flooding::for_release(&params, &bound, 30, 1).unwrap();
    let plain = dec.decrypt_values(&ct).unwrap();
    let flooded = dec.decrypt_flooded(&ct, &bound, &fl, &mut rng).unwrap();
    let b_plain = precision_bits(&x, &plain).unwrap();
    let b_flood = precision_bits(&x, &flooded).unwrap();
    // σ ≈ 2^15·B/√2 with B ≈ 2^15 canonical: about 30 bits of precision lost.
    assert!(b_flood < b_plain - 15.0, "{b_plain} -> {b_flood}");
    assert!(
        b_flood >= fl.precision_bits(&bound),
        "{b_flood} < {}",
        fl.precision_bits(&bound)
    );
}

/// Encryptors, decryptors and releasers own their keys: they outlive the
/// key they were made from and move across threads, as a Python or
/// WebAssembly object holding them must.
#[test]
fn encryptor_and_decryptor_own_their_keys() {
    fn send_sync<T: Send + Sync + 'static>(_: &T) {}
    let params = Preset::Depth2.build().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let encoder = Encoder::new(&params);
    let (enc, dec, pk_enc) = {
        let sk = SecretKey::generate(&params, &mut rng);
        let pk = PublicKey::generate(&sk, &mut rng).unwrap();
        (
            Encryptor::with_secret_key(&sk),
            Decryptor::new(&sk),
            Encryptor::with_public_key(&pk),
        )
    }; // the keys they were made from are dropped (and zeroized) here
    send_sync(&enc);
    send_sync(&dec);
    let values = [0.25, -1.5, 3.0];
    let worker = std::thread::spawn(move || {
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        let a = enc.encrypt_values(&encoder, &values, &mut rng).unwrap();
        let b = pk_enc.encrypt_values(&encoder, &values, &mut rng).unwrap();
        (
            dec.decrypt_values(&a).unwrap(),
            dec.decrypt_values(&b).unwrap(),
        )
    });
    let (a, b) = worker.join().unwrap();
    for got in [a, b] {
        check("owned keys", &values, &got[..values.len()], 20.0);
    }
}

/// Without special primes the public key spans the ciphertext primes only
/// and encryption adds its noise undivided; both entry points (encoded
/// first, or values encoded inside the encryption) still decrypt.
#[test]
fn public_key_encryption_without_special_primes() {
    let params = ParamsBuilder::new(10)
        .q_bits(&[45, 35])
        .allow_insecure()
        .build()
        .unwrap();
    assert!(params.p().is_empty());
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let sk = SecretKey::generate(&params, &mut rng);
    let pk = PublicKey::generate(&sk, &mut rng).unwrap();
    let enc = Encoder::new(&params);
    let (encp, dec) = (Encryptor::with_public_key(&pk), Decryptor::new(&sk));
    let a = random_values(&mut rng, params.slots());
    let by_values = encp.encrypt_values(&enc, &a, &mut rng).unwrap();
    check(
        "no P, values",
        &a,
        &dec.decrypt_values(&by_values).unwrap(),
        18.0,
    );
    for level in 0..=params.max_level() {
        let pt = enc.encode(&a, level, params.default_scale()).unwrap();
        let ct = encp.encrypt(&pt, &mut rng).unwrap();
        check(
            &format!("no P, level {level}"),
            &a,
            &dec.decrypt_values(&ct).unwrap(),
            18.0,
        );
    }
}

/// A fresh encryption's measured noise (canonical norm: the largest slot
/// of an encryption of zeros, times the scale) is within its proven bound,
/// under the public key (made over Q ∪ P and divided by P) and the secret
/// key, at the N = 8192 benchmark parameters.
#[test]
fn fresh_noise_is_within_its_bound() {
    let params = ParamsBuilder::new(13)
        .q_bits(&[60, 40, 40])
        .p_bits(&[60])
        .log_scale(40)
        .build()
        .unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(13);
    let sk = SecretKey::generate(&params, &mut rng);
    let pk = PublicKey::generate(&sk, &mut rng).unwrap();
    let (enc, dec) = (Encoder::new(&params), Decryptor::new(&sk));
    let zeros = vec![0.0; params.slots()];
    let scale = params.default_scale();
    for (kind, e) in [
        (Fresh::PublicKey, Encryptor::with_public_key(&pk)),
        (Fresh::SecretKey, Encryptor::with_secret_key(&sk)),
    ] {
        let bound = NoiseBound::fresh(&params, kind, 0.0, scale, DEFAULT_TAIL_BITS).unwrap();
        for _ in 0..3 {
            let ct = e.encrypt_values(&enc, &zeros, &mut rng).unwrap();
            let got = dec.decrypt_complex(&ct).unwrap();
            let measured = got.iter().map(|z| z.norm()).fold(0.0, f64::max) * scale;
            println!(
                "{kind:?}: measured 2^{:.1}, bound 2^{:.1}",
                measured.log2(),
                bound.noise().log2()
            );
            assert!(measured > 0.0 && measured <= bound.noise(), "{kind:?}");
        }
    }
}
