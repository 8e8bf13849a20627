#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every protocol against plaintext, over the in-process transport.

use cipherflow_mpc::protocols::approx::{
    gelu_reference, sigmoid_reference, GELU_MAX_ERROR, SIGMOID_MAX_ERROR, SOFTMAX_MAX_ERROR,
};
use cipherflow_mpc::{run_local, FixedPoint, MpcError, Network, Party, Z2k};
use ndarray::Array2;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

fn rand_matrix(rng: &mut ChaCha20Rng, r: usize, c: usize, scale: f64) -> Array2<f64> {
    Array2::from_shape_fn((r, c), |_| {
        ((rng.next_u32() as f64 / u32::MAX as f64) * 2.0 - 1.0) * scale
    })
}

/// Runs `f` on three in-process parties with x owned by 0 and y by 1 and
/// returns what party 1 gets revealed.
fn two_inputs<R: Z2k>(
    fp: FixedPoint,
    x: &Array2<f64>,
    y: &Array2<f64>,
    f: impl Fn(
            &mut Party<R>,
            &cipherflow_mpc::AShare<R>,
            &cipherflow_mpc::AShare<R>,
        ) -> Result<cipherflow_mpc::AShare<R>, MpcError>
        + Sync,
) -> Array2<f64> {
    let run = run_local::<R, _, _>(Network::InProcess, fp, |p| {
        let xs = p.private_input(0, (p.id() == 0).then_some(x))?;
        let ys = p.private_input(1, (p.id() == 1).then_some(y))?;
        let z = f(p, &xs, &ys)?;
        p.reveal_to(&z, &[1])
    })
    .unwrap();
    assert!(run.outputs[0].is_none() && run.outputs[2].is_none());
    run.outputs[1].clone().unwrap()
}

fn max_err(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    assert_eq!(a.dim(), b.dim());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn linear_ops_mul_and_matmul_match_plaintext() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let fp = FixedPoint::default();
    let ulp = fp.ulp();
    let x = rand_matrix(&mut rng, 17, 33, 4.0);
    let y = rand_matrix(&mut rng, 17, 33, 4.0);
    let got = two_inputs::<u64>(fp, &x, &y, |p, a, b| p.add(a, b));
    assert!(max_err(&got, &(&x + &y)) <= ulp);
    let got = two_inputs::<u64>(fp, &x, &y, |p, a, b| p.sub(a, b));
    assert!(max_err(&got, &(&x - &y)) <= ulp);
    // Element-wise product: encoding (½ ulp each) + truncation (1 ulp).
    let got = two_inputs::<u64>(fp, &x, &y, |p, a, b| p.mul_fx(a, b));
    assert!(
        max_err(&got, &(&x * &y)) <= 6.0 * ulp,
        "{}",
        max_err(&got, &(&x * &y))
    );
    // Matmul: inner dim 33, encoding errors add up over k.
    let yt = y.t().to_owned();
    let got = two_inputs::<u64>(fp, &x, &yt, |p, a, b| p.matmul_fx(a, b));
    let e = max_err(&got, &x.dot(&yt));
    assert!(e <= 33.0 * 4.0 * ulp + ulp, "matmul error {e}");
    // Same in Z_2^128 with 32 fractional bits.
    let fp128 = FixedPoint::new::<u128>(32).unwrap();
    let got = two_inputs::<u128>(fp128, &x, &yt, |p, a, b| p.matmul_fx(a, b));
    assert!(max_err(&got, &x.dot(&yt)) < 1e-7);
    // Public constants.
    let got = two_inputs::<u64>(fp, &x, &y, |p, a, _| p.div_public(a, 3.0));
    assert!(max_err(&got, &(&x / 3.0)) <= 4.0 * ulp);
    let got = two_inputs::<u64>(fp, &x, &y, |p, a, _| p.div_public(a, -8.0));
    assert!(max_err(&got, &(&x / -8.0)) <= 2.0 * ulp);
}

#[test]
fn matmul_communication_is_independent_of_inner_dimension() {
    let fp = FixedPoint::default();
    let bytes = |k: usize| {
        let run = run_local::<u64, _, _>(Network::InProcess, fp, |p| {
            let a = p.private_variable(&Array2::ones((4, k)))?;
            let b = p.private_variable(&Array2::ones((k, 5)))?;
            p.matmul(&a, &b)?;
            Ok(())
        })
        .unwrap();
        let m = run.stats.ops["matmul"];
        (m.bytes, m.rounds)
    };
    assert_eq!(bytes(3), bytes(300));
    assert_eq!(bytes(3), (3 * (4 * 5 * 8 + 4), 1));
}

#[test]
fn truncation_error_is_at_most_one_ulp() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let fp = FixedPoint::default();
    let x = rand_matrix(&mut rng, 50, 40, 1000.0);
    let got = two_inputs::<u64>(fp, &x, &x, |p, a, _| {
        let scaled = p.mul_public(a, 1 << 16);
        p.truncate(&scaled, 16)
    });
    assert!(max_err(&got, &x) <= 1.5 * fp.ulp());
}

#[test]
fn sign_relu_compare_and_argmax_are_exact() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let fp = FixedPoint::default();
    let mut x = rand_matrix(&mut rng, 20, 7, 100.0);
    x[[0, 0]] = 0.0;
    x[[0, 1]] = -fp.ulp();
    x[[0, 2]] = fp.ulp();
    let y = rand_matrix(&mut rng, 20, 7, 100.0);
    let xq = x.mapv(|v| (v * 65536.0).round() / 65536.0);
    let yq = y.mapv(|v| (v * 65536.0).round() / 65536.0);
    let got = two_inputs::<u64>(fp, &x, &y, |p, a, _| p.relu(a));
    assert_eq!(got, xq.mapv(|v| v.max(0.0)));
    let got = two_inputs::<u64>(fp, &x, &y, |p, a, _| {
        let d = p.drelu(a)?;
        Ok(p.mul_public(&d, 1 << 16))
    });
    assert_eq!(got, xq.mapv(|v| if v >= 0.0 { 1.0 } else { 0.0 }));
    let got = two_inputs::<u64>(fp, &x, &y, |p, a, b| {
        let c = p.ge(a, b)?;
        Ok(p.mul_public(&c, 1 << 16))
    });
    let want = Array2::from_shape_fn(x.dim(), |ij| if xq[ij] >= yq[ij] { 1.0 } else { 0.0 });
    assert_eq!(got, want);
    // Max and argmax per row (u128 ring as well).
    for wide in [false, true] {
        let (mx, am) = if wide {
            let fp = FixedPoint::new::<u128>(20).unwrap();
            let m = two_inputs::<u128>(fp, &x, &y, |p, a, _| Ok(p.max_argmax(a)?.0));
            let i = two_inputs::<u128>(fp, &x, &y, |p, a, _| {
                let i = p.max_argmax(a)?.1;
                Ok(p.mul_public(&i, 1 << 20))
            });
            (m.mapv(|v| (v * 65536.0).round() / 65536.0), i)
        } else {
            let m = two_inputs::<u64>(fp, &x, &y, |p, a, _| Ok(p.max_argmax(a)?.0));
            let i = two_inputs::<u64>(fp, &x, &y, |p, a, _| {
                let i = p.max_argmax(a)?.1;
                Ok(p.mul_public(&i, 1 << 16))
            });
            (m, i)
        };
        for r in 0..x.nrows() {
            let row = xq.row(r);
            let best = row.iter().cloned().fold(f64::MIN, f64::max);
            let arg = row.iter().position(|&v| v == best).unwrap();
            assert_eq!(mx[[r, 0]], best);
            assert_eq!(am[[r, 0]] as usize, arg);
        }
    }
}

#[test]
fn sigmoid_and_softmax_within_stated_error() {
    let fp = FixedPoint::default();
    let x = Array2::from_shape_fn((1, 401), |(_, j)| -10.0 + 0.05 * j as f64);
    let got = two_inputs::<u64>(fp, &x, &x, |p, a, _| p.sigmoid(a));
    let exact = x.mapv(|v| 1.0 / (1.0 + (-v).exp()));
    let e = max_err(&got, &exact);
    assert!(e <= SIGMOID_MAX_ERROR, "sigmoid error {e}");
    let r = max_err(&got, &x.mapv(sigmoid_reference));
    eprintln!("sigmoid: error {e:.2e}, vs piecewise reference {r:.2e}");
    assert!(r <= 1e-3, "{r}");
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let l = rand_matrix(&mut rng, 8, 10, 6.0);
    let got = two_inputs::<u64>(fp, &l, &l, |p, a, _| p.softmax(a));
    let mut want = l.mapv(f64::exp);
    for mut row in want.rows_mut() {
        let s = row.sum();
        row /= s;
    }
    let e = max_err(&got, &want);
    eprintln!("softmax: error {e:.2e}");
    assert!(e <= SOFTMAX_MAX_ERROR, "softmax error {e}");
}

#[test]
fn gelu_within_stated_error_in_both_rings() {
    // Dense on [−6, 6], then the tails up to ±100.
    let mut v: Vec<f64> = (0..=480).map(|j| -6.0 + 0.025 * f64::from(j)).collect();
    v.extend([-100.0, -40.0, -10.0, 10.0, 40.0, 100.0]);
    let x = Array2::from_shape_vec((1, v.len()), v).unwrap();
    let exact = x.mapv(|t| 0.5 * t * (1.0 + libm::erf(t / std::f64::consts::SQRT_2)));
    let g64 = two_inputs::<u64>(FixedPoint::default(), &x, &x, |p, a, _| p.gelu(a));
    let fp128 = FixedPoint::new::<u128>(20).unwrap();
    let g128 = two_inputs::<u128>(fp128, &x, &x, |p, a, _| p.gelu(a));
    for got in [&g64, &g128] {
        let e = max_err(got, &exact);
        let r = max_err(got, &x.mapv(gelu_reference));
        eprintln!("gelu: error {e:.2e}, vs piecewise reference {r:.2e}");
        assert!(e <= GELU_MAX_ERROR, "gelu error {e}");
        assert!(r <= 1e-3, "{r}");
    }
}

#[test]
fn argmax_of_wide_rows_and_ties() {
    let fp = FixedPoint::default();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    // 20 columns: the tournament path; 5 columns with ties: all-pairs.
    let wide = rand_matrix(&mut rng, 4, 20, 50.0).mapv(|v| (v * 256.0).round() / 256.0);
    let mut ties = rand_matrix(&mut rng, 3, 5, 1.0).mapv(|v| (v * 256.0).round() / 256.0);
    ties[[0, 1]] = 9.0;
    ties[[0, 3]] = 9.0;
    ties.row_mut(2).fill(0.5);
    for x in [&wide, &ties] {
        let got = two_inputs::<u64>(fp, x, x, |p, a, _| {
            let (m, i) = p.max_argmax(a)?;
            let only = p.argmax(a)?;
            let i = p.mul_public(&i, 1 << 16);
            let only = p.mul_public(&only, 1 << 16);
            p.hstack(&[&m, &i, &only])
        });
        for r in 0..x.nrows() {
            let best = x.row(r).iter().cloned().fold(f64::MIN, f64::max);
            let arg = x.row(r).iter().position(|&v| v == best).unwrap();
            assert_eq!(got[[r, 0]], best);
            assert_eq!(got[[r, 1]] as usize, arg, "row {r}");
            assert_eq!(got[[r, 2]] as usize, arg, "row {r}");
        }
    }
}
