//! Split inference in `mpc` mode on the shipped digits CNN (conv → x² →
//! dense → x² → dense): for every split, the head under encryption, the
//! hand-off, and the tail in three-party computation give the plaintext
//! model's classes; the figures per split are printed. A split whose
//! proven activation bound does not fit the decoding is refused, not run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_platform::run_split_local;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

#[test]
fn every_split_of_the_digits_cnn_gives_the_plaintext_classes() {
    let mut model = cipherflow_nn::examples::digits_cnn().unwrap();
    let data = cipherflow_nn::examples::digits().unwrap();
    let n = 12;
    let x: Vec<Vec<f64>> = data
        .features()
        .outer_iter()
        .rev()
        .take(n)
        .map(|r| r.iter().map(|&v| f64::from(v)).collect())
        .collect();
    let t = ndarray::ArrayD::from_shape_vec(
        ndarray::IxDyn(&[n, 1, 8, 8]),
        x.iter().flatten().map(|&v| v as f32).collect(),
    )
    .unwrap();
    let logits = model.predict(&t).unwrap();
    let want = cipherflow_nn::loss::predict_classes(&logits);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let layers = model.layers().len();
    for k in 1..layers {
        let r = match run_split_local(&model, k, 1.0, &x, &mut rng) {
            Ok(r) => r,
            // After the second x², the proven bound of the activations
            // (inputs in [0, 1], every weight at its worst) is too wide
            // for the decoding's ring: refused with the figure.
            Err(e) if k == layers - 1 => {
                eprintln!("k = {k}: {e}");
                assert!(e.to_string().contains("decoded values need 2^"), "{e}");
                continue;
            }
            Err(e) => panic!("split after layer {k}: {e}"),
        };
        eprintln!(
            "k = {k}: depth {} (N = 2^{}), {:.1} ms/input ({:.1} HE + {:.1} MPC), keys {} KB, \
             up {} KB, down {} KB, MPC {} KB and {} rounds per input, tail weights {} KB once",
            r.head_depth,
            r.log_n,
            r.ms_per_input(),
            r.ms_he,
            r.ms_mpc,
            r.key_bytes / 1000,
            r.upload_bytes / 1000,
            r.download_bytes / 1000,
            r.mpc_bytes / 1000,
            r.mpc_rounds,
            r.model_bytes / 1000
        );
        assert_eq!(r.classes, want, "split after layer {k}");
    }
}
