//! The whole encrypted-inference job a front end runs: inputs in chunks,
//! a limit, each input reported as it is decided, totals that add up;
//! calibration of approximations.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_nn::data::Inputs;
use cipherflow_nn::layers::{Activation, ActivationKind, Dense, Flatten};
use cipherflow_nn::{Layer, NnError, Sequential};
use cipherflow_tensor::{
    calibrate, Approximate, CompileOptions, EncryptedRun, Interval, Mode, OutputOptions, Plan,
    TensorError,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// The caller's error type: the run hands back the caller's errors and
/// converts its own.
#[derive(Debug)]
enum E {
    T(#[allow(dead_code)] TensorError),
    N(NnError),
}
impl From<TensorError> for E {
    fn from(e: TensorError) -> Self {
        E::T(e)
    }
}
impl From<NnError> for E {
    fn from(e: NnError) -> Self {
        E::N(e)
    }
}

fn digits_chunks(size: usize) -> (Vec<Inputs>, usize) {
    let (_, test) = cipherflow_nn::examples::digits()
        .unwrap()
        .split(0.2, 0)
        .unwrap();
    let test = test.subset(&(0..10).collect::<Vec<_>>()).unwrap();
    let chunks = (0..10)
        .step_by(size)
        .map(|s| {
            let idx: Vec<usize> = (s..(s + size).min(10)).collect();
            let d = test.subset(&idx).unwrap();
            Inputs {
                ids: idx.iter().map(|i| format!("img-{i}")).collect(),
                features: d.features().clone(),
                shape: d.shape().to_vec(),
                labels: Some(d.labels().to_vec()),
                class_names: None,
            }
        })
        .collect();
    (chunks, test.len())
}

#[test]
fn chunks_limit_and_totals() {
    let mut model = cipherflow_nn::examples::digits_cnn().unwrap();
    let run = EncryptedRun::new(
        &model,
        &CompileOptions::default(),
        Mode::Latency,
        &OutputOptions::for_inputs(16.0),
    )
    .unwrap();
    let (chunks, _) = digits_chunks(3);
    let mut seen = Vec::new();
    let t = run
        .run(&mut model, chunks.into_iter().map(Ok::<_, E>), 7, |r| {
            seen.push((r.index, r.id.to_string(), r.class, r.plain_class));
            assert_eq!(r.scores.len(), 10);
            Ok(())
        })
        .unwrap();
    // The limit cuts the third chunk; indices run across chunks.
    assert_eq!(t.inputs, 7);
    assert_eq!(seen.len(), 7);
    assert_eq!(
        seen.iter().map(|s| s.0).collect::<Vec<_>>(),
        (0..7).collect::<Vec<_>>()
    );
    assert_eq!(seen[6].1, "img-6");
    assert_eq!(t.agree, 7, "{seen:?}");
    assert_eq!(t.labelled, 7);
    assert!(t.upload_bytes > 0 && t.download_bytes > 0);
    assert!(t.max_logit_error < 1e-2, "{}", t.max_logit_error);
    // An error from a chunk stops the run and comes back as it was.
    let bad = vec![Err(E::N(NnError::Config("broken chunk".into())))];
    let e = run
        .run(&mut model, bad.into_iter(), 7, |_| Ok(()))
        .unwrap_err();
    assert!(matches!(e, E::N(NnError::Config(_))));
}

/// `Flatten → Dense 64→16 (×scale1) → ReLU → Dense 16→12 (×scale2) →
/// ReLU → Dense 12→10`: two ReLUs whose inputs differ in range by the
/// scales.
fn two_relus(scale1: f32, scale2: f32) -> Sequential {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let mut first = Dense::new(64, 16, &mut rng);
    first.weight.value.mapv_inplace(|v| v * scale1);
    first.bias.value.mapv_inplace(|v| v * scale1);
    let mut second = Dense::new(16, 12, &mut rng);
    second.weight.value.mapv_inplace(|v| v * scale2);
    Sequential::new(
        vec![1, 8, 8],
        vec![
            Layer::Flatten(Flatten::new()),
            Layer::Dense(first),
            Layer::Activation(Activation::new(ActivationKind::Relu)),
            Layer::Dense(second),
            Layer::Activation(Activation::new(ActivationKind::Relu)),
            Layer::Dense(Dense::new(12, 10, &mut rng)),
        ],
    )
    .unwrap()
}

#[test]
fn calibration_covers_each_activations_inputs() {
    let mut model = two_relus(1.0, 8.0);
    let (chunks, _) = digits_chunks(10);
    let x = &chunks[0].features;
    let (opts, approx) = calibrate(&mut model, x, 15).unwrap();
    let a = approx.expect("ReLUs to approximate");
    let fitted = opts.approximate.unwrap();
    assert_eq!((fitted.degree, a.degree), (15, 15));
    // Each ReLU on 1.25× the largest value entering it.
    let mut shape = vec![x.nrows()];
    shape.extend([1, 8, 8]);
    let t = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&shape), x.iter().copied().collect())
        .unwrap();
    let bounds = model.input_bounds(&t).unwrap();
    let expected = [1.25 * f64::from(bounds[2]), 1.25 * f64::from(bounds[4])];
    assert_eq!(a.half_widths.len(), 2);
    for (i, (w, e)) in a.half_widths.iter().zip(expected).enumerate() {
        assert!((w - e).abs() < 1e-9, "activation {i}: {w} against {e}");
        assert_eq!(fitted.intervals[i], Interval::from(*w));
    }
    assert!(
        a.half_widths[1] > 2.0 * a.half_widths[0],
        "{:?}",
        a.half_widths
    );
    assert_eq!(a.half_width, a.half_widths[1]);
    assert_eq!(a.errors.len(), 1);
    assert_eq!(a.errors[0].0, "relu");
    // A polynomial model needs none.
    let mut poly = cipherflow_nn::examples::digits_cnn().unwrap();
    let (_, none) = calibrate(&mut poly, x, 15).unwrap();
    assert!(none.is_none());
}

/// Each activation on its own interval: the narrow layer's approximation
/// is as tight as its inputs allow, and the plan's logits are closer to
/// the exact model's than with the widest interval for both.
#[test]
fn per_activation_intervals_beat_one_shared_interval() {
    let mut model = two_relus(1.0, 8.0);
    let (chunks, _) = digits_chunks(10);
    let x = &chunks[0].features;
    let (per, approx) = calibrate(&mut model, x, 15).unwrap();
    let widest = approx.unwrap().half_width;
    let shared = CompileOptions {
        approximate: Some(Approximate::shared(15, widest)),
        ..CompileOptions::default()
    };
    let n = x.nrows().min(60);
    let exact = model
        .predict(
            &ndarray::ArrayD::from_shape_vec(
                ndarray::IxDyn(&[n, 1, 8, 8]),
                x.rows().into_iter().take(n).flatten().copied().collect(),
            )
            .unwrap(),
        )
        .unwrap();
    let worst = |opts: &CompileOptions| {
        let plan = Plan::compile_with(&model, opts).unwrap();
        let mut worst = 0f64;
        for (i, row) in x.rows().into_iter().take(n).enumerate() {
            let input: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
            let got = plan.eval_plain(&input).unwrap();
            for (j, g) in got.iter().enumerate() {
                worst = worst.max((g - f64::from(exact[[i, j]])).abs());
            }
        }
        worst
    };
    let (e_per, e_shared) = (worst(&per), worst(&shared));
    eprintln!("largest logit error: per activation {e_per:.4}, shared {e_shared:.4}");
    assert!(
        e_per < 0.75 * e_shared,
        "per activation {e_per:.4}, shared {e_shared:.4}"
    );
    // Any other count of intervals than one or one per activation is
    // refused, naming the counts.
    let three = CompileOptions {
        approximate: Some(Approximate::per_activation(
            15,
            vec![Interval::from(1.0); 3],
        )),
        ..CompileOptions::default()
    };
    let e = Plan::compile_with(&model, &three).unwrap_err().to_string();
    assert!(
        e.contains("3 approximation intervals") && e.contains("2 activations"),
        "{e}"
    );
}

fn layer_fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../nn/tests/fixtures/layers")
        .join(name)
}

/// PyTorch's `ZeroPad2d → Conv → LeakyReLU → ConstantPad2d(0.5) → Conv →
/// AdaptiveAvgPool2d(1) → Linear` (bench/layer_fixtures.py) runs
/// encrypted: each padding is folded into the linear map around it (the
/// constant 0.5 as a bias), the LeakyReLU is approximated on the
/// calibrated interval, and the classes equal the exact model's.
#[test]
fn padding_leaky_relu_and_global_pooling_run_encrypted() {
    let mut model = cipherflow_nn::io::load(&layer_fixture("pad_leaky_gap.onnx"))
        .unwrap()
        .model;
    let (chunks, n) = digits_chunks(10);
    let (opts, approx) = calibrate(&mut model, &chunks[0].features, 31).unwrap();
    let a = approx.unwrap();
    assert_eq!(a.errors[0].0, "leaky_relu(0.10000000149011612)");
    // The exact model's logits, to tell a real error from a near tie.
    let x = &chunks[0].features;
    let exact = model
        .predict(
            &ndarray::ArrayD::from_shape_vec(
                ndarray::IxDyn(&[x.nrows(), 1, 8, 8]),
                x.iter().copied().collect(),
            )
            .unwrap(),
        )
        .unwrap();
    let run = EncryptedRun::new(
        &model,
        &opts,
        Mode::Latency,
        &OutputOptions::for_inputs(64.0),
    )
    .unwrap();
    let mut near_ties = 0;
    let t = run
        .run(&mut model, chunks.into_iter().map(Ok::<_, E>), n, |r| {
            let row: Vec<f32> = exact
                .index_axis(ndarray::Axis(0), r.index)
                .iter()
                .copied()
                .collect();
            let mut sorted = row;
            sorted.sort_by(|a, b| b.total_cmp(a));
            let margin = f64::from(sorted[0] - sorted[1]);
            if r.class != r.plain_class {
                // Only where the exact model is nearly undecided.
                assert!(margin < 0.1, "input {}: margin {margin}", r.index);
                near_ties += 1;
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(t.inputs, n);
    eprintln!(
        "max logit error {}, near ties {near_ties}",
        t.max_logit_error
    );
    assert!(t.agree + near_ties == n && t.agree >= n - 1);
    assert!(t.max_logit_error < 0.05, "{}", t.max_logit_error);
}

/// Recurrent models are refused for encrypted inference, by layer.
#[test]
fn recurrent_layers_are_refused_encrypted() {
    let model = cipherflow_nn::io::load(&layer_fixture("lstm_last.onnx"))
        .unwrap()
        .model;
    let Err(e) = EncryptedRun::new(
        &model,
        &CompileOptions::default(),
        Mode::Latency,
        &OutputOptions::for_inputs(1.0),
    ) else {
        panic!("an LSTM compiled to an encrypted run");
    };
    assert!(e.to_string().contains("layer 1 (LSTM"), "{e}");
}
