#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Prediction from a hand-off: the user and the platform hold additive
//! shares in Z_2^128 of activations times 2^(f + guard); the creator's tail
//! runs on their sum and only the user learns the classes, equal to the
//! plaintext tail's. Shares of the wrong shape are named.

use cipherflow_mpc::programs::handoff::{predict_from_handoff, ActivationShare, PLATFORM, USER};
use cipherflow_mpc::programs::predict::{mlp, share_model, MODEL_OWNER};
use cipherflow_mpc::{run_local, FixedPoint, MpcError, Network};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

const FRAC: u32 = 20;
const GUARD: u32 = 47;

fn shares(x: &[f64], seed: u64) -> (Vec<u128>, Vec<u128>) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    x.iter()
        .map(|&v| {
            let enc = (v * 2f64.powi((FRAC + GUARD) as i32)).round() as i128 as u128;
            let r = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
            (enc.wrapping_add(r), r.wrapping_neg())
        })
        .unzip()
}

type Outcome = Vec<Result<Option<Vec<usize>>, MpcError>>;

fn run(x: &[f64], rows: usize, cols: usize, platform_cols: usize) -> Outcome {
    let model = mlp(vec![cols], &[6], 3, 4).unwrap();
    let (u, p) = shares(x, 1);
    let p: Vec<u128> = p
        .iter()
        .copied()
        .cycle()
        .take(rows * platform_cols)
        .collect();
    let fp = FixedPoint::new::<u128>(FRAC).unwrap();
    let out = run_local::<u128, _, _>(Network::InProcess, fp, |party| {
        let shared = share_model(party, (party.id() == MODEL_OWNER).then_some(&model))?;
        let share = match party.id() {
            USER => Some(ActivationShare {
                rows,
                cols,
                values: &u,
            }),
            PLATFORM => Some(ActivationShare {
                rows,
                cols: platform_cols,
                values: &p,
            }),
            _ => None,
        };
        Ok(predict_from_handoff(party, &shared, share, GUARD))
    });
    match out {
        Ok(r) => r.outputs,
        Err(e) => vec![Err(e)],
    }
}

#[test]
fn the_tail_runs_on_the_sum_of_the_shares() {
    let (rows, cols) = (12, 8);
    let x: Vec<f64> = (0..rows * cols)
        .map(|i| ((i as f64) * 0.61).sin() * 2.5)
        .collect();
    let out = run(&x, rows, cols, cols);
    let got = out[USER].as_ref().unwrap().clone().unwrap();
    assert!(out[MODEL_OWNER].as_ref().unwrap().is_none());
    assert!(out[PLATFORM].as_ref().unwrap().is_none());
    let mut model = mlp(vec![cols], &[6], 3, 4).unwrap();
    let t = ndarray::ArrayD::from_shape_vec(
        ndarray::IxDyn(&[rows, cols]),
        x.iter().map(|&v| v as f32).collect(),
    )
    .unwrap();
    let logits = model.predict(&t).unwrap();
    let want = cipherflow_nn::loss::predict_classes(&logits);
    assert_eq!(got, want);
}

#[test]
fn a_platform_share_of_the_wrong_shape_is_named() {
    let x = vec![0.5; 2 * 8];
    let out = run(&x, 2, 8, 7);
    let named = out.iter().any(|r| {
        matches!(r, Err(MpcError::Malformed { from, what }) if *from == PLATFORM && what.contains("not 8"))
    }) || out.iter().any(|r| {
        matches!(r, Err(e) if e.to_string().contains("activations of 7 values"))
    });
    assert!(named, "{out:?}");
}
