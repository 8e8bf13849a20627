//! Noise flooding of released decryptions (IND-CPA^D) and circuit privacy
//! of evaluated ciphertexts: proven noise bounds, flooding sized from them
//! and from the number of decryptions, the parameter helper that keeps a
//! stated precision, and the adversary who reads weights from the noise.

use cipherflow_ckks::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn values(n: usize, seed: u64) -> Vec<f64> {
    (0..n)
        .map(|i| ((i as f64 * 0.37 + seed as f64).sin()) * 0.9)
        .collect()
}

/// The tracked bound of a real computation (public-key encryption, plaintext
/// product, rescale, 8-slot inner sum with rotations, constant) covers the
/// noise measured on it: the bound is proven, the measurement only checks it.
#[test]
fn noise_bound_covers_a_real_computation() {
    let params = Preset::Depth2.build().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let sk = SecretKey::generate(&params, &mut rng);
    let pk = PublicKey::generate(&sk, &mut rng).unwrap();
    let gk = GaloisKeys::generate(&sk, &Evaluator::inner_sum_steps(8), false, &mut rng).unwrap();
    let enc = Encoder::new(&params);
    let eval = Evaluator::new(&params);
    let top = params.max_level();
    let x = values(params.slots(), 1);
    let w = values(params.slots(), 2);
    let ct = Encryptor::with_public_key(&pk)
        .encrypt_values(&enc, &x, &mut rng)
        .unwrap();
    let ql = params.q()[top] as f64;
    let w_pt = enc.encode(&w, top, ql).unwrap();
    let out = eval.rescale(&eval.mul_plain(&ct, &w_pt).unwrap()).unwrap();
    let out = eval.inner_sum(&out, 8, &gk).unwrap();
    let out = eval.add_const(&out, 0.25).unwrap();
    let bound = NoiseBound::fresh(
        &params,
        Fresh::PublicKey,
        1.0,
        params.default_scale(),
        DEFAULT_TAIL_BITS,
    )
    .unwrap()
    .mul_plain(&params, 1.0, ql)
    .unwrap()
    .rescale(&params, top)
    .unwrap()
    .inner_sum(&params, top - 1, 8)
    .unwrap()
    .add_const(0.25)
    .unwrap();
    let slots = params.slots();
    let expected: Vec<f64> = (0..slots)
        .map(|j| {
            (0..8)
                .map(|k| x[(j + k) % slots] * w[(j + k) % slots])
                .sum::<f64>()
                + 0.25
        })
        .collect();
    let dec = Decryptor::new(&sk);
    let measured = dec.measure_canonical_noise_log2(&out, &expected).unwrap();
    eprintln!(
        "measured 2^{measured:.1}, proven noise 2^{:.1} + approx 2^{:.1} (failure ≤ 2^{:.1})",
        bound.noise_log2(),
        bound.approx().log2(),
        bound.failure_probability().log2()
    );
    assert!(measured <= bound.total().log2());
    assert!(bound.failure_probability() < 2f64.powi(-30));
    assert!(bound.values() >= 8.0 * 0.81);
    let got = dec.decrypt_values(&out).unwrap();
    assert!(precision_bits(&expected, &got).unwrap() >= bound.precision_bits());
}

/// σ grows as √D with the number of decryptions D, linearly with the
/// noise bound, and as 2^(λ/2) with the statistical security.
#[test]
fn sigma_grows_with_decryptions_bound_and_lambda() {
    let params = Preset::Aggregation.build().unwrap();
    let s = |b: f64, lambda: u32, d: u64| Flooding::new(&params, b, lambda, d).unwrap().sigma();
    let base = s(2f64.powi(20), 40, 1);
    assert!(
        (base.log2() - (20.0 + 20.0 - 0.5)).abs() < 0.05,
        "2^{}",
        base.log2()
    );
    let r = s(2f64.powi(20), 40, 1024) / base;
    assert!((r - 32.0).abs() < 0.5, "×{r} for 1024 decryptions");
    let r = s(2f64.powi(24), 40, 1) / base;
    assert!((r - 16.0).abs() < 0.2, "×{r} for a 16× bound");
    let r = s(2f64.powi(20), 42, 1) / base;
    assert!((r - 2.0).abs() < 0.02, "×{r} for λ + 2");
    for d in [1u64, 2, 100, 1 << 20] {
        assert!(s(2f64.powi(20), 40, d + 1) > s(2f64.powi(20), 40, d));
    }
    for ((bound, bits, decryptions), why) in [
        ((2f64.powi(20), 40, 0), "decryptions 0 not in"),
        ((2f64.powi(20), 10, 1), "statistical security 10 not in"),
        ((f64::NAN, 40, 1), "noise bound NaN must be finite"),
        ((2f64.powi(90), 128, 1 << 40), "flooding standard deviation"),
        // Its square overflows: said with the bound's size, not as 2^NaN.
        (
            (2f64.powi(600), 40, 1),
            "a noise bound of 2^600.0 is too large",
        ),
    ] {
        let r = Flooding::new(&params, bound, bits, decryptions);
        assert!(
            matches!(&r, Err(CkksError::Flooding(m)) if m.contains(why)),
            "{why}: {r:?}"
        );
    }
}

/// Values that leave the key holder go through a releaser: flooded (two
/// releases of one ciphertext differ), counted (the budget is enforced), and
/// only for ciphertexts whose proven bound the flooding covers.
#[test]
fn releaser_floods_counts_and_refuses() {
    let params = Preset::Depth2.build().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let sk = SecretKey::generate(&params, &mut rng);
    let pk = PublicKey::generate(&sk, &mut rng).unwrap();
    let enc = Encoder::new(&params);
    let x = values(16, 3);
    let level = 1;
    let scale = 2f64.powi(80);
    let ct = Encryptor::with_public_key(&pk)
        .encrypt(&enc.encode(&x, level, scale).unwrap(), &mut rng)
        .unwrap();
    let bound =
        NoiseBound::fresh(&params, Fresh::PublicKey, 1.0, scale, DEFAULT_TAIL_BITS).unwrap();
    let flooding = Flooding::for_release(&params, &bound, 40, 3).unwrap();
    let mut rel = Releaser::new(&sk, flooding);
    let a = rel.release(&ct, &bound, &mut rng).unwrap();
    let b = rel.release(&ct, &bound, &mut rng).unwrap();
    assert_ne!(a, b);
    let want_bits = flooding.precision_bits(&bound);
    for v in [&a, &b] {
        let got = precision_bits(&x, &v[..16]).unwrap();
        assert!(got >= want_bits, "{got} < {want_bits}");
    }
    assert_eq!(rel.remaining(), 1);
    let bigger = NoiseBound::stated(&params, bound.noise() * 4.0, 0.0, 1.0, scale, 0.0).unwrap();
    assert!(matches!(
        rel.release(&ct, &bigger, &mut rng),
        Err(CkksError::Flooding(_))
    ));
    rel.release(&ct, &bound, &mut rng).unwrap();
    assert!(matches!(
        rel.release(&ct, &bound, &mut rng),
        Err(CkksError::Flooding(_))
    ));
    // Stated bounds are validated.
    let r = NoiseBound::stated(&params, 1.0, 0.0, 1.0, scale, 0.0);
    assert!(
        matches!(&r, Err(CkksError::Flooding(m)) if m.contains("a fresh encryption")),
        "below a fresh encryption's noise: {r:?}"
    );
    let r = NoiseBound::stated(&params, f64::INFINITY, 0.0, 1.0, scale, 0.0);
    assert!(
        matches!(&r, Err(CkksError::Flooding(m)) if m.contains("noise must be finite")),
        "{r:?}"
    );
}

/// A computation decrypted at level 0 (modulus q0 alone): the helper widens
/// q0 from 40 bits and picks the scale so that flooded results keep the
/// stated precision, measured against the plaintext; an impossible
/// precision is refused.
#[test]
fn q0_helper_keeps_stated_precision_or_refuses() {
    let builder = ParamsBuilder::new(12).q_bits(&[40, 40]);
    let bound_at = |p: &CkksParams, scale: f64| {
        NoiseBound::fresh(p, Fresh::PublicKey, 1.0, scale, DEFAULT_TAIL_BITS)?
            .mul_plain(p, 1.0, p.q()[1] as f64)?
            .rescale(p, 1)
    };
    let target = FloodTarget {
        precision_bits: 8.0,
        stat_sec_bits: 30,
        decryptions: 16,
        circuit_privacy: false,
    };
    let fp = builder
        .clone()
        .widen_q0_for_flooding(0, target, bound_at)
        .unwrap();
    let params = &fp.params;
    eprintln!(
        "q0 {} bits, scale 2^{:.1}, σ 2^{:.1}, noise 2^{:.1}, guaranteed {:.1} bits",
        fp.q0_bits,
        fp.scale.log2(),
        fp.flooding.sigma_log2(),
        fp.bound.noise_log2(),
        fp.precision_bits
    );
    assert!(fp.q0_bits > 40 && fp.q0_bits <= 61);
    assert!(fp.precision_bits >= 8.0);
    let mut rng = ChaCha20Rng::seed_from_u64(13);
    let sk = SecretKey::generate(params, &mut rng);
    let pk = PublicKey::generate(&sk, &mut rng).unwrap();
    let enc = Encoder::new(params);
    let eval = Evaluator::new(params);
    let x = values(params.slots(), 4);
    let w = values(params.slots(), 5);
    let ct = Encryptor::with_public_key(&pk)
        .encrypt(&enc.encode(&x, 1, fp.scale).unwrap(), &mut rng)
        .unwrap();
    let w_pt = enc.encode(&w, 1, params.q()[1] as f64).unwrap();
    let out = eval.rescale(&eval.mul_plain(&ct, &w_pt).unwrap()).unwrap();
    assert!((out.scale() / fp.scale - 1.0).abs() < 1e-9);
    let want: Vec<f64> = x.iter().zip(&w).map(|(a, b)| a * b).collect();
    let mut rel = Releaser::new(&sk, fp.flooding);
    let mut worst = f64::INFINITY;
    for _ in 0..4 {
        let got = rel.release(&out, &fp.bound, &mut rng).unwrap();
        worst = worst.min(precision_bits(&want, &got).unwrap());
    }
    eprintln!("measured precision after flooding: {worst:.1} bits");
    assert!(worst >= 8.0, "{worst} bits");
    // Without the helper (q0 = 40 bits, scale 2^40) the same flooding leaves nothing.
    let fresh_scale = NoiseBound::fresh(params, Fresh::PublicKey, 1.0, 2f64.powi(40), 40).unwrap();
    assert!(fp.flooding.precision_bits(&fresh_scale) < 0.0);
    // Twenty bits at λ = 30 need more than a 61-bit q0: refused, with the figures.
    let err = builder
        .widen_q0_for_flooding(
            0,
            FloodTarget {
                precision_bits: 20.0,
                ..target
            },
            bound_at,
        )
        .unwrap_err();
    assert!(
        matches!(&err, CkksError::Flooding(m) if m.contains("q0 would need")),
        "{err}"
    );
}

/// Variance over the slots of `decrypt(ct) − expected`, in units of 1/scale.
#[allow(clippy::unwrap_used)]
fn error_variance(dec: &Decryptor, enc: &Encoder, ct: &Ciphertext, expected: &[f64]) -> f64 {
    let pt = dec.decrypt(ct).unwrap();
    let got = enc.decode(&pt).unwrap();
    // Slot errors in units of the scale: variance over the slots.
    let d: Vec<f64> = got
        .iter()
        .zip(expected)
        .map(|(g, e)| (g - e) * ct.scale())
        .collect();
    let m = d.iter().sum::<f64>() / d.len() as f64;
    d.iter().map(|x| (x - m).powi(2)).sum::<f64>() / d.len() as f64
}

/// Circuit privacy, played as the data owner: the server multiplies the
/// owner's ciphertext by secret weights (small or large). Unsanitized, the
/// decrypted error's variance tells the two apart by a factor of hundreds;
/// after `sanitize` it is the flooding's, equal for both within 10 %, the
/// ciphertext differs from the input, and the values keep the stated
/// precision.
#[test]
fn sanitize_hides_the_weights_and_keeps_precision() {
    let w_max = 8.0;
    let target = FloodTarget {
        precision_bits: 8.0,
        stat_sec_bits: 30,
        decryptions: 16,
        circuit_privacy: true,
    };
    let bound_at = |p: &CkksParams, scale: f64| {
        NoiseBound::fresh(p, Fresh::PublicKey, 1.0, scale, DEFAULT_TAIL_BITS)?
            .mul_plain(p, w_max, p.q()[2] as f64)?
            .rescale(p, 2)
    };
    let fp = ParamsBuilder::new(13)
        .q_bits(&[50, 50, 60])
        .widen_q0_for_flooding(1, target, bound_at)
        .unwrap();
    let params = &fp.params;
    eprintln!(
        "circuit privacy: scale 2^{:.1}, bound 2^{:.1}, σ 2^{:.1}, guaranteed {:.1} bits",
        fp.scale.log2(),
        fp.bound.total().log2(),
        fp.flooding.sigma_log2(),
        fp.precision_bits
    );
    let mut rng = ChaCha20Rng::seed_from_u64(14);
    let sk = SecretKey::generate(params, &mut rng);
    let pk = PublicKey::generate(&sk, &mut rng).unwrap();
    let enc = Encoder::new(params);
    let eval = Evaluator::new(params);
    let dec = Decryptor::new(&sk);
    let x = values(params.slots(), 6);
    let ct = Encryptor::with_public_key(&pk)
        .encrypt(&enc.encode(&x, 2, fp.scale).unwrap(), &mut rng)
        .unwrap();
    let q2 = params.q()[2] as f64;
    let mut raw_var = Vec::new();
    let mut clean_var = Vec::new();
    for w in [1.0 / w_max, w_max] {
        let w_pt = enc.encode(&vec![w; params.slots()], 2, q2).unwrap();
        let out = eval.rescale(&eval.mul_plain(&ct, &w_pt).unwrap()).unwrap();
        let want: Vec<f64> = x.iter().map(|v| v * w).collect();
        raw_var.push(error_variance(&dec, &enc, &out, &want));
        let (clean, after) = eval
            .sanitize(&out, &pk, &fp.bound, &fp.flooding, &mut rng)
            .unwrap();
        assert_ne!(clean.components()[1], out.components()[1]);
        assert_ne!(clean.components()[0], out.components()[0]);
        clean_var.push(error_variance(&dec, &enc, &clean, &want));
        let got = dec.decrypt_values(&clean).unwrap();
        let bits = precision_bits(&want, &got).unwrap();
        assert!(bits >= target.precision_bits, "{bits} bits after sanitize");
        assert!(
            bits >= after.precision_bits(),
            "{bits} < {}",
            after.precision_bits()
        );
    }
    let raw_ratio = raw_var[1] / raw_var[0];
    let clean_ratio = clean_var[1] / clean_var[0];
    // A slot's real part sums N coefficients: variance ≈ σ²·N/2.
    let flood_var = fp.flooding.sigma().powi(2) * params.n() as f64 / 2.0;
    eprintln!(
        "error variance ratio (large/small weights): raw {raw_ratio:.0}, sanitized {clean_ratio:.3}; \
         sanitized/flooding {:.3}",
        clean_var[0] / flood_var
    );
    assert!(raw_ratio > 100.0, "raw ratio {raw_ratio}");
    assert!(
        (clean_ratio - 1.0).abs() < 0.1,
        "sanitized ratio {clean_ratio}"
    );
    for v in &clean_var {
        assert!((v / flood_var - 1.0).abs() < 0.1, "{}", v / flood_var);
    }
    // A flooding sized for a smaller bound is refused.
    let small = Flooding::for_circuit_privacy(params, &fp.bound, 30, 1).unwrap();
    let bigger =
        NoiseBound::stated(params, fp.bound.total() * 2.0, 0.0, w_max, fp.scale, 0.0).unwrap();
    let w_pt = enc.encode(&[1.0], 2, q2).unwrap();
    let out = eval.rescale(&eval.mul_plain(&ct, &w_pt).unwrap()).unwrap();
    let r = eval.sanitize(&out, &pk, &bigger, &small, &mut rng);
    assert!(
        matches!(&r, Err(CkksError::Flooding(m)) if m.contains("the flooding was sized for")),
        "{:?}",
        r.as_ref().err()
    );
}
