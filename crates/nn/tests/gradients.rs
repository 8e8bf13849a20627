#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::needless_range_loop
)]
//! Finite-difference checks of every layer and loss, and DP-SGD's
//! per-example norms against explicit per-example backward passes.

use cipherflow_nn::layers::{
    Activation, ActivationKind, Conv2d, Dense, Flatten, Layer, PolyActivation, Pool2d, PoolKind,
    Softmax,
};
use cipherflow_nn::loss::{Loss, Targets};
use cipherflow_nn::{Sequential, Tensor};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn randn(shape: &[usize], r: &mut ChaCha20Rng) -> Tensor {
    Tensor::from_shape_fn(ndarray::IxDyn(shape), |_| {
        let u = (r.next_u32() >> 8) as f32 / (1u32 << 24) as f32;
        2.0 * u - 1.0
    })
}

/// L(x, θ) = Σ r ⊙ model(x), in f64 from the f32 output.
fn objective(model: &mut Sequential, x: &Tensor, r: &Tensor) -> f64 {
    let y = model.forward(x, false).unwrap();
    y.iter()
        .zip(r.iter())
        .map(|(&a, &b)| f64::from(a) * f64::from(b))
        .sum()
}

fn close(analytic: f32, numeric: f64, what: &str) {
    let a = f64::from(analytic);
    let tol = 2e-2 * a.abs().max(numeric.abs()).max(0.05);
    assert!(
        (a - numeric).abs() <= tol,
        "{what}: analytic {a} vs numeric {numeric}"
    );
}

/// Checks input and parameter gradients of `model` at a random point.
fn check_model(mut model: Sequential, batch: usize, seed: u64, eps: f32) {
    let mut r = rng(seed);
    let mut shape = vec![batch];
    shape.extend(model.input_shape());
    let x = randn(&shape, &mut r);
    let y = model.forward(&x, true).unwrap();
    let proj = randn(y.shape(), &mut r);
    model.zero_grad();
    let dx = model.backward(&proj).unwrap();
    model.accumulate_grads(&vec![1.0; batch]).unwrap();
    // Input gradient, a sample of coordinates.
    let n = x.len();
    for k in (0..n).step_by((n / 12).max(1)) {
        let mut xp = x.clone();
        let mut xm = x.clone();
        xp.as_slice_mut().unwrap()[k] += eps;
        xm.as_slice_mut().unwrap()[k] -= eps;
        let num = (objective(&mut model, &xp, &proj) - objective(&mut model, &xm, &proj))
            / (2.0 * f64::from(eps));
        close(dx.as_slice().unwrap()[k], num, &format!("dx[{k}]"));
    }
    // Parameter gradients.
    let count = model.params_mut().len();
    for pi in 0..count {
        let len = model.params_mut()[pi].value.len();
        for k in (0..len).step_by((len / 8).max(1)) {
            let analytic = model.params_mut()[pi].grad.as_slice().unwrap()[k];
            let orig = model.params_mut()[pi].value.as_slice().unwrap()[k];
            model.params_mut()[pi].value.as_slice_mut().unwrap()[k] = orig + eps;
            let fp = objective(&mut model, &x, &proj);
            model.params_mut()[pi].value.as_slice_mut().unwrap()[k] = orig - eps;
            let fm = objective(&mut model, &x, &proj);
            model.params_mut()[pi].value.as_slice_mut().unwrap()[k] = orig;
            close(
                analytic,
                (fp - fm) / (2.0 * f64::from(eps)),
                &format!("param {pi}[{k}]"),
            );
        }
    }
}

fn act(k: ActivationKind) -> Layer {
    Layer::Activation(Activation::new(k))
}

#[test]
fn dense_gradients() {
    let mut r = rng(1);
    let m = Sequential::new(vec![5], vec![Layer::Dense(Dense::new(5, 3, &mut r))]).unwrap();
    check_model(m, 4, 10, 1e-2);
}

#[test]
fn conv_gradients_stride_padding_channels() {
    let mut r = rng(2);
    for (stride, padding) in [((1, 1), (0, 0)), ((2, 2), (1, 1)), ((2, 1), (1, 0))] {
        let conv = Conv2d::new(2, 3, (3, 3), stride, padding, &mut r).unwrap();
        let m = Sequential::new(vec![2, 6, 5], vec![Layer::Conv2d(conv)]).unwrap();
        check_model(m, 3, 11, 1e-2);
    }
}

#[test]
fn pooling_gradients() {
    let avg = Pool2d::new(PoolKind::Avg, (2, 2), (2, 2)).unwrap();
    check_model(
        Sequential::new(vec![2, 4, 4], vec![Layer::Pool2d(avg)]).unwrap(),
        2,
        12,
        1e-2,
    );
    let avg = Pool2d::new(PoolKind::Avg, (3, 2), (1, 2)).unwrap();
    check_model(
        Sequential::new(vec![1, 5, 4], vec![Layer::Pool2d(avg)]).unwrap(),
        2,
        13,
        1e-2,
    );
    // Max pooling: small ε so no window's maximum changes hands.
    let max = Pool2d::new(PoolKind::Max, (2, 2), (1, 1)).unwrap();
    check_model(
        Sequential::new(vec![2, 4, 4], vec![Layer::Pool2d(max)]).unwrap(),
        2,
        14,
        1e-3,
    );
}

#[test]
fn activation_gradients() {
    for (kind, eps) in [
        (ActivationKind::Relu, 1e-3),
        (ActivationKind::Square, 1e-2),
        (ActivationKind::Sigmoid, 1e-2),
        (ActivationKind::Tanh, 1e-2),
        (ActivationKind::Gelu, 1e-2),
    ] {
        check_model(
            Sequential::new(vec![7], vec![act(kind)]).unwrap(),
            3,
            15,
            eps,
        );
    }
}

#[test]
fn polynomial_softmax_flatten_gradients() {
    let poly = PolyActivation::new(&[0.1, 0.5, 0.25, -0.1], true).unwrap();
    check_model(
        Sequential::new(vec![6], vec![Layer::Poly(poly)]).unwrap(),
        3,
        16,
        1e-2,
    );
    check_model(
        Sequential::new(vec![5], vec![Layer::Softmax(Softmax::new())]).unwrap(),
        3,
        17,
        1e-2,
    );
    check_model(
        Sequential::new(vec![2, 3, 2], vec![Layer::Flatten(Flatten::new())]).unwrap(),
        2,
        18,
        1e-2,
    );
}

#[test]
fn whole_network_gradients() {
    let mut r = rng(3);
    let layers = vec![
        Layer::Conv2d(Conv2d::new(1, 3, (3, 3), (1, 1), (1, 1), &mut r).unwrap()),
        act(ActivationKind::Tanh),
        Layer::Pool2d(Pool2d::new(PoolKind::Avg, (2, 2), (2, 2)).unwrap()),
        Layer::Flatten(Flatten::new()),
        Layer::Dense(Dense::new(12, 6, &mut r)),
        Layer::Poly(PolyActivation::new(&[0.0, 1.0, 0.3], true).unwrap()),
        Layer::Dense(Dense::new(6, 4, &mut r)),
    ];
    check_model(Sequential::new(vec![1, 4, 4], layers).unwrap(), 3, 19, 1e-2);
}

/// Loss gradients against finite differences of the per-example losses.
#[test]
fn loss_gradients() {
    let mut r = rng(4);
    let y = randn(&[4, 3], &mut r);
    let classes = [0usize, 2, 1, 2];
    let values = randn(&[4, 3], &mut r);
    let cases: Vec<(Loss, Tensor, Targets<'_>)> = vec![
        (Loss::CrossEntropy, y.clone(), Targets::Classes(&classes)),
        (Loss::Mse, y.clone(), Targets::Values(&values)),
        (Loss::Mse, y.clone(), Targets::Classes(&classes)),
        (
            Loss::Logistic,
            randn(&[4, 1], &mut r),
            Targets::Classes(&[0, 1, 1, 0]),
        ),
    ];
    for (loss, out, t) in cases {
        let lo = loss.compute(&out, &t).unwrap();
        for k in 0..out.len() {
            let b = k / out.shape()[1];
            let mut p = out.clone();
            let mut m = out.clone();
            p.as_slice_mut().unwrap()[k] += 1e-2;
            m.as_slice_mut().unwrap()[k] -= 1e-2;
            let lp = f64::from(loss.compute(&p, &t).unwrap().losses[b]);
            let lm = f64::from(loss.compute(&m, &t).unwrap().losses[b]);
            close(
                lo.grad.as_slice().unwrap()[k],
                (lp - lm) / 2e-2,
                &format!("{loss:?} grad[{k}]"),
            );
        }
    }
}

/// Per-example squared gradient norms from the layer rules (Dense ghost
/// norms, Conv2d direct and ghost paths, trainable polynomials) equal the
/// norms of gradients from explicit batch-size-1 backward passes, and the
/// weighted accumulation equals the weighted sum of those gradients.
#[test]
fn per_example_norms_match_explicit_backward() {
    let mut r = rng(5);
    // conv 1: input 9×9, L = 81 > … → direct path; conv 2: L = 4, C·k·k = 72,
    // out 16 → ghost path.
    let layers = vec![
        Layer::Conv2d(Conv2d::new(2, 8, (3, 3), (1, 1), (1, 1), &mut r).unwrap()),
        act(ActivationKind::Relu),
        Layer::Pool2d(Pool2d::new(PoolKind::Max, (2, 2), (2, 2)).unwrap()),
        Layer::Conv2d(Conv2d::new(8, 16, (3, 3), (1, 1), (0, 0), &mut r).unwrap()),
        act(ActivationKind::Tanh),
        Layer::Flatten(Flatten::new()),
        Layer::Dense(Dense::new(64, 10, &mut r)),
        Layer::Poly(PolyActivation::new(&[0.0, 1.0, 0.1], true).unwrap()),
        Layer::Dense(Dense::new(10, 3, &mut r)),
    ];
    let mut model = Sequential::new(vec![2, 9, 9], layers).unwrap();
    let batch = 6;
    let x = randn(&[batch, 2, 9, 9], &mut r);
    let targets = [0usize, 1, 2, 2, 1, 0];
    let out = model.forward(&x, true).unwrap();
    let lo = Loss::CrossEntropy
        .compute(&out, &Targets::Classes(&targets))
        .unwrap();
    model.backward(&lo.grad).unwrap();
    let norms = model.per_example_sq_norms(batch).unwrap();
    let weights: Vec<f32> = (0..batch).map(|b| 0.5 + b as f32 * 0.25).collect();
    model.zero_grad();
    model.accumulate_grads(&weights).unwrap();
    let batched: Vec<Vec<f32>> = model
        .params_mut()
        .iter()
        .map(|p| p.grad.iter().copied().collect())
        .collect();

    let mut expected_sum: Vec<Vec<f32>> = batched.iter().map(|g| vec![0.0; g.len()]).collect();
    for b in 0..batch {
        let xb = x
            .slice(ndarray::s![b..b + 1, .., .., ..])
            .to_owned()
            .into_dyn();
        let out = model.forward(&xb, true).unwrap();
        let lo = Loss::CrossEntropy
            .compute(&out, &Targets::Classes(&targets[b..b + 1]))
            .unwrap();
        model.backward(&lo.grad).unwrap();
        model.zero_grad();
        model.accumulate_grads(&[1.0]).unwrap();
        let mut sq = 0f64;
        for (pi, p) in model.params_mut().iter().enumerate() {
            for (k, &g) in p.grad.iter().enumerate() {
                sq += f64::from(g) * f64::from(g);
                expected_sum[pi][k] += weights[b] * g;
            }
        }
        let got = f64::from(norms[b]);
        assert!(
            (got - sq).abs() <= 1e-4 * sq.max(1e-6),
            "example {b}: layer-rule {got} vs explicit {sq}"
        );
    }
    for (pi, (a, e)) in batched.iter().zip(&expected_sum).enumerate() {
        for (k, (x, y)) in a.iter().zip(e).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * y.abs().max(1e-2),
                "param {pi}[{k}]: {x} vs {y}"
            );
        }
    }
}

#[test]
fn shape_errors_are_typed() {
    let mut r = rng(6);
    let mut m = Sequential::new(vec![5], vec![Layer::Dense(Dense::new(5, 3, &mut r))]).unwrap();
    assert!(m
        .forward(&Tensor::zeros(ndarray::IxDyn(&[2, 4])), false)
        .is_err());
    assert!(
        m.backward(&Tensor::zeros(ndarray::IxDyn(&[2, 3]))).is_err(),
        "backward before forward"
    );
    assert!(Sequential::new(vec![5], vec![Layer::Dense(Dense::new(4, 3, &mut r))]).is_err());
    assert!(Conv2d::new(1, 1, (3, 3), (0, 1), (0, 0), &mut r).is_err());
    assert!(Sequential::new(
        vec![1, 2, 2],
        vec![Layer::Conv2d(
            Conv2d::new(1, 1, (3, 3), (1, 1), (0, 0), &mut r).unwrap()
        )]
    )
    .is_err());
}

/// PyTorch's default initialisation: U(−1/√fan_in, 1/√fan_in) for Linear
/// and Conv2d weights and biases (kaiming_uniform with a = √5).
#[test]
fn initialisation_matches_pytorch_defaults() {
    let mut r = rng(7);
    let d = Dense::new(400, 300, &mut r);
    let c = Conv2d::new(16, 64, (5, 5), (1, 1), (0, 0), &mut r).unwrap();
    for (w, fan_in) in [(&d.weight.value, 400.0f64), (&c.weight.value, 400.0)] {
        let bound = 1.0 / fan_in.sqrt();
        let n = w.len() as f64;
        assert!(w.iter().all(|&v| f64::from(v).abs() <= bound));
        let var = w.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / n;
        assert!(
            (var / (bound * bound / 3.0) - 1.0).abs() < 0.03,
            "variance {var}"
        );
    }
    assert!(d
        .bias
        .value
        .iter()
        .all(|&v| f64::from(v).abs() <= 1.0 / 20.0));
}
