//! Chebyshev-basis Paterson–Stockmeyer evaluation on ciphertexts: degrees
//! 3 to 63 of ReLU, sigmoid, tanh and GELU approximations, encrypted
//! against plaintext, with the levels consumed and the ciphertext products
//! counted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_ckks::{
    precision_bits, CkksParams, Decryptor, Encoder, Encryptor, Evaluator, ParamsBuilder, RelinKey,
    SecretKey,
};
use cipherflow_tensor::poly::ceil_log2;
use cipherflow_tensor::{Approx, Polynomial};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

const LEVELS: usize = 7; // degree 63 (6) + the interval map (1)

/// N = 2^12 with 7 levels of 2^36: tests only (`allow_insecure`).
fn params() -> CkksParams {
    let mut q = vec![50];
    q.extend(std::iter::repeat_n(36, LEVELS));
    ParamsBuilder::new(12)
        .q_bits(&q)
        .p_bits(&[50])
        .log_scale(36)
        .allow_insecure()
        .build()
        .unwrap()
}

/// Products a power-basis evaluator needs (squarings for `u^(2^k)`, then
/// one product per extra set bit of each exponent): the old evaluator.
fn power_basis_products(d: usize) -> usize {
    (ceil_log2(d + 1) - 1) + (2..=d).map(|i| i.count_ones() as usize - 1).sum::<usize>()
}

/// The functions, written out here rather than taken from the library.
fn reference(f: Approx, x: f64) -> f64 {
    match f {
        Approx::Relu => {
            if x > 0.0 {
                x
            } else {
                0.0
            }
        }
        Approx::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Approx::Tanh => x.tanh(),
        // The tanh form (Hendrycks & Gimpel; PyTorch approximate="tanh").
        Approx::Gelu => {
            let k = (2.0 / std::f64::consts::PI).sqrt();
            0.5 * x * (1.0 + (k * (x + 0.044715 * x.powi(3))).tanh())
        }
        // The exact form (PyTorch's default), Φ from libm's erf.
        Approx::GeluErf => 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)),
        Approx::LeakyRelu(a) => x.max(0.0) + a * x.min(0.0),
    }
}

/// `Σ c_k T_k(u)` with `T_k(u) = cos(k·arccos u)` and `u` the map of `x`
/// onto [−1, 1]: the polynomial's own coefficients, but not the library's
/// Clenshaw recurrence.
fn cheb_eval(p: &Polynomial, x: f64) -> f64 {
    let iv = p.interval();
    let u = ((2.0 * x - iv.lo - iv.hi) / (iv.hi - iv.lo)).clamp(-1.0, 1.0);
    let theta = u.acos();
    p.coefficients()
        .iter()
        .enumerate()
        .map(|(k, c)| c * (k as f64 * theta).cos())
        .sum()
}

/// Max `|p(x) − f(x)|` on 20,001 evenly spaced points of `[lo, hi]`,
/// computed here (a NaN is kept).
fn max_error(p: &Polynomial, f: Approx, lo: f64, hi: f64) -> f64 {
    (0..=20_000)
        .map(|i| {
            let x = lo + (hi - lo) * f64::from(i) / 20_000.0;
            (cheb_eval(p, x) - reference(f, x)).abs()
        })
        .fold(0.0, |m: f64, d| if d.is_nan() || d > m { d } else { m })
}

#[test]
fn reference_functions_at_known_points() {
    assert_eq!(reference(Approx::Sigmoid, 0.0), 0.5);
    assert_eq!(reference(Approx::Relu, -1.0), 0.0);
    assert_eq!(reference(Approx::Relu, 0.5), 0.5);
    assert!((reference(Approx::Tanh, 1.0) - 0.761_594_155_955_764_9).abs() < 1e-15);
    assert!((reference(Approx::Gelu, 1.0) - 0.841_191_990_608_276_8).abs() < 1e-15);
    // Φ(1) = 0.841344746068542948… (the normal table's value).
    assert!((reference(Approx::GeluErf, 1.0) - 0.841_344_746_068_542_9).abs() < 1e-15);
    for f in [
        Approx::Relu,
        Approx::Sigmoid,
        Approx::Tanh,
        Approx::Gelu,
        Approx::GeluErf,
        Approx::LeakyRelu(0.1),
    ] {
        for x in [-3.0, -0.5, 0.0, 0.7, 2.5] {
            assert!((f.eval(x) - reference(f, x)).abs() < 1e-15, "{f:?}({x})");
        }
    }
}

#[test]
fn chebyshev_paterson_stockmeyer_degrees_3_to_63() {
    let params = params();
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let sk = SecretKey::generate(&params, &mut rng);
    let rlk = RelinKey::generate(&sk, &mut rng).unwrap();
    let enc = Encoder::new(&params);
    let eval = Evaluator::new(&params);
    let encryptor = Encryptor::with_secret_key(&sk);
    let dec = Decryptor::new(&sk);
    let s = params.default_scale();
    let top = params.max_level();
    // (function, interval, degree, bound on the max approximation error on
    // 20,001 points, min bits of encrypted vs plaintext polynomial)
    let cases: Vec<(Approx, f64, usize, f64, f64)> = vec![
        (Approx::Sigmoid, 8.0, 3, 0.117, 20.0),
        (Approx::Sigmoid, 8.0, 7, 0.030, 20.0),
        (Approx::Sigmoid, 8.0, 15, 1.4e-3, 20.0),
        (Approx::Sigmoid, 8.0, 31, 3.1e-6, 20.0),
        (Approx::Sigmoid, 8.0, 63, 1.5e-11, 20.0),
        (Approx::Tanh, 4.0, 3, 0.233, 20.0),
        (Approx::Tanh, 4.0, 7, 0.060, 20.0),
        (Approx::Tanh, 4.0, 15, 2.8e-3, 20.0),
        (Approx::Tanh, 4.0, 31, 6.1e-6, 20.0),
        (Approx::Tanh, 4.0, 63, 3e-11, 20.0),
        (Approx::Relu, 1.0, 3, 0.136, 20.0),
        (Approx::Relu, 1.0, 7, 0.064, 20.0),
        (Approx::Relu, 1.0, 15, 0.0315, 20.0),
        (Approx::Relu, 1.0, 31, 0.0157, 20.0),
        (Approx::Relu, 1.0, 63, 0.0079, 20.0),
        (Approx::Gelu, 4.0, 3, 0.426, 20.0),
        (Approx::Gelu, 4.0, 7, 0.053, 20.0),
        (Approx::Gelu, 4.0, 15, 2.8e-4, 20.0),
        (Approx::Gelu, 4.0, 31, 9.5e-9, 20.0),
        (Approx::Gelu, 4.0, 63, 1e-13, 20.0),
        (Approx::GeluErf, 4.0, 7, 0.053, 20.0),
        (Approx::GeluErf, 4.0, 15, 2.5e-4, 20.0),
        (Approx::GeluErf, 4.0, 31, 8e-11, 20.0),
    ];
    let n = 1024;
    for (f, a, d, err_bound, min_bits) in cases {
        let (p, err) = Polynomial::approximate(f, a, d).unwrap();
        assert!(
            err <= err_bound && err > 0.0,
            "{f:?} deg {d}: error {err:e}"
        );
        // The same bound on an error measured here, which also agrees with
        // the one the library reports.
        let mine = max_error(&p, f, -a, a);
        assert!(
            mine <= err_bound && mine > 0.0,
            "{f:?} deg {d}: measured error {mine:e}"
        );
        assert!(
            (mine - err).abs() <= 1e-6 * mine + 1e-14,
            "{f:?} deg {d}: measured {mine:e}, reported {err:e}"
        );
        let x: Vec<f64> = (0..n)
            .map(|_| (f64::from(rng.next_u32()) / f64::from(u32::MAX) * 2.0 - 1.0) * a)
            .collect();
        let want: Vec<f64> = x.iter().map(|&v| p.eval(v)).collect();
        for (&v, &w) in x.iter().zip(&want) {
            assert!((w - cheb_eval(&p, v)).abs() < 1e-12, "{f:?} deg {d} at {v}");
        }
        let ct = encryptor
            .encrypt(&enc.encode(&x, top, s).unwrap(), &mut rng)
            .unwrap();
        let (out, stats) = p.eval_ct_stats(&eval, &rlk, &ct, s).unwrap();
        let depth = ceil_log2(d + 1);
        let map = usize::from(a != 1.0);
        assert_eq!(p.maps_input(), a != 1.0);
        assert_eq!(
            stats.levels,
            depth + map,
            "{f:?} deg {d}: ⌈log2(d+1)⌉ (+ x→u)"
        );
        assert_eq!(out.level(), top - depth - map);
        assert!((out.scale() / s - 1.0).abs() < 1e-9, "exact output scale");
        assert_eq!(stats.products, p.products(), "schedule count");
        let got = dec.decrypt_values(&out).unwrap();
        let bits = precision_bits(&want, &got[..n]).unwrap();
        println!(
            "{f:?} on [-{a}, {a}] degree {d}: max error {err:.2e} ({:.1} bits), encrypted vs \
             plaintext {bits:.1} bits, depth {} (+{map} for x→u), {} ct×ct products (baby steps \
             {}; power basis {})",
            -err.log2(),
            depth,
            stats.products,
            p.schedule().baby_steps(),
            power_basis_products(d)
        );
        assert!(
            bits >= min_bits,
            "{f:?} deg {d}: {bits:.1} bits < {min_bits}"
        );
        // Input already on [−1, 1] (the map folded elsewhere): exactly ⌈log2(d+1)⌉.
        let unit = p.on_unit_interval();
        let u: Vec<f64> = x.iter().map(|v| v / a).collect();
        let ct = encryptor
            .encrypt(&enc.encode(&u, top, s).unwrap(), &mut rng)
            .unwrap();
        let (out, stats) = unit.eval_ct_stats(&eval, &rlk, &ct, s).unwrap();
        assert_eq!(stats.levels, depth, "{f:?} deg {d} without the map");
        let got = dec.decrypt_values(&out).unwrap();
        assert!(precision_bits(&want, &got[..n]).unwrap() >= min_bits);
    }
}

#[test]
fn products_grow_like_sqrt_of_degree() {
    for d in [3usize, 7, 15, 31, 63, 127] {
        let c: Vec<f64> = (0..=d).map(|i| 1.0 / (1.0 + i as f64)).collect();
        let p = Polynomial::chebyshev(&c, 1.0).unwrap();
        let bound = 2.0 * ((d + 1) as f64).sqrt() + ceil_log2(d + 1) as f64;
        assert!(
            (p.products() as f64) <= bound,
            "degree {d}: {} products > {bound}",
            p.products()
        );
        if d >= 15 {
            assert!(p.products() < power_basis_products(d));
        }
        assert_eq!(p.depth(), ceil_log2(d + 1));
    }
}

#[test]
fn power_basis_input_and_plaintext_agree() {
    // Monomials converted to the Chebyshev basis evaluate identically.
    let coeffs = [0.1, -0.4, 0.25, 0.3, -0.05, 0.02];
    let p = Polynomial::new(&coeffs).unwrap();
    let q = Polynomial::scaled(&coeffs, 2.0).unwrap();
    // Σ c_i x^i by explicit powers; p(0) = 0.1, p(1) = Σ c_i = 0.22,
    // p(−1) = Σ (−1)^i c_i = 0.38; q(y) = p(y/2).
    let powers = |x: f64| -> f64 {
        coeffs
            .iter()
            .enumerate()
            .map(|(i, c)| c * x.powi(i as i32))
            .sum()
    };
    for (x, want) in [(0.0, 0.1), (1.0, 0.22), (-1.0, 0.38)] {
        assert!((p.eval(x) - want).abs() < 1e-12, "p({x}) = {}", p.eval(x));
        assert!((q.eval(2.0 * x) - want).abs() < 1e-12);
    }
    for k in 0..21 {
        let x = -1.0 + 0.1 * k as f64;
        assert!((p.eval(x) - powers(x)).abs() < 1e-12);
        assert!((q.eval(2.0 * x) - powers(x)).abs() < 1e-12);
    }
    // Asymmetric interval: the fit is good where it was asked for.
    let (p, err) = Polynomial::approximate(Approx::Sigmoid, (0.0, 6.0), 15).unwrap();
    assert!(err < 1e-5, "{err}");
    let mine = max_error(&p, Approx::Sigmoid, 0.0, 6.0);
    assert!(mine < 1e-5 && mine > 0.0, "{mine}");
    assert!(p.maps_input());
    // α·p + β folds into the coefficients.
    let r = p.then_affine(2.0, -1.0).unwrap();
    assert!((r.eval(3.0) - (2.0 * p.eval(3.0) - 1.0)).abs() < 1e-12);
    // 2σ(3) − 1 = tanh(3/2), within twice the fit's error.
    assert!((r.eval(3.0) - 1.5f64.tanh()).abs() <= 2.0 * mine + 1e-12);
    assert!(Polynomial::chebyshev(&[1.0], (1.0, 1.0)).is_err());
    assert!(Polynomial::chebyshev(&[f64::NAN], 1.0).is_err());
    assert!(Polynomial::chebyshev(&[0.0; 257], 1.0).is_err());
}
