//! `cipherflow demo`: encrypted diagnosis scoring on the shipped UCI breast
//! cancer data. A model owner trains a logistic regression in the clear; a
//! hospital encrypts its test patients' features (many patients packed in
//! one ciphertext); the server computes every patient's score on the
//! ciphertext without seeing a feature; only the hospital decrypts.

use anyhow::anyhow;
use cipherflow_ckks::{
    precision_bits, Ciphertext, CkksParams, Decryptor, Encoder, Encryptor, Evaluator, FloodTarget,
    Fresh, GaloisKeys, NoiseBound, ParamsBuilder, PublicKey, SecretKey, DEFAULT_TAIL_BITS,
};
use cipherflow_nn::data::{Dataset, Standardizer};
use cipherflow_nn::loss::Loss;
use cipherflow_nn::spec::ModelSpec;
use cipherflow_nn::train::{fit, OptimizerKind, TrainConfig};
use cipherflow_ring::sampler::secure_rng;
use std::path::Path;
use std::time::Instant;

/// Features per patient, padded to a power of two for the slot windows.
const WINDOW: usize = 32;

/// Standardised features are clamped to `±FEATURE_BOUND` before encryption:
/// the declared input range the server's noise bound relies on.
const FEATURE_BOUND: f64 = 8.0;

/// Circuit privacy: score ciphertexts the server may return under one set
/// of weights (the flooding is sized for this many).
const RETURNED_OUTPUTS: u64 = 1 << 10;

/// Circuit privacy: the statistical security of the flooding that hides the
/// weights in a returned score. The flooding must cover the approximation
/// error, whose proven bound (the encoder's floating-point error, about
/// 2^−31 of the scale after this circuit) leaves −2.5 bits of precision at
/// λ = 40 (see crates/ckks/README.md, "Circuit privacy"); 20 bits keep the
/// scores usable. (The hospital's own key needs no flooding here: it
/// decrypts for itself.)
const CIRCUIT_PRIVACY_LAMBDA: u32 = 20;

/// Bits of precision every returned score keeps after flooding.
const SCORE_PRECISION_BITS: f64 = 6.0;

/// The scoring demo's data: `path` (a header line, 30 features and a 0/1
/// label per line) or the shipped file embedded in the binary.
fn load(path: Option<&Path>) -> anyhow::Result<Dataset> {
    let d = match path {
        Some(p) => cipherflow_nn::data::load_breast_cancer(p),
        None => cipherflow_nn::examples::breast_cancer(),
    }?;
    if d.shape().iter().product::<usize>() > WINDOW {
        return Err(anyhow!(
            "{:?} features do not fit a window of {WINDOW}",
            d.shape()
        ));
    }
    Ok(d)
}

/// Logistic regression by full-batch gradient descent (cipherflow-nn's
/// trainer: 500 steps of SGD at 0.5 with a small L2 penalty, zero initial
/// weights); returns the weights and the bias.
fn train_logreg(train: &Dataset) -> anyhow::Result<(Vec<f64>, f64)> {
    let mut model =
        ModelSpec::preset("logreg", train.shape(), 2, false).and_then(|s| s.build(0))?;
    for p in model.params_mut() {
        p.value.fill(0.0);
    }
    let mut cfg = TrainConfig::default_for(500, train.len(), None);
    cfg.optimizer = OptimizerKind::Sgd;
    cfg.lr = 0.5;
    cfg.momentum = 0.0;
    cfg.weight_decay = 1e-3;
    fit(&mut model, Loss::Logistic, train, None, &cfg, &mut |_| {})?;
    let params = model.named_params();
    let value = |name: &str| -> anyhow::Result<Vec<f64>> {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.value.iter().map(|&v| f64::from(v)).collect())
            .ok_or_else(|| anyhow!("the logistic model has no {name}"))
    };
    let b = value("0.bias")?.first().copied().unwrap_or(0.0);
    Ok((value("0.weight")?, b))
}

/// The scoring parameters: N = 2^13, Q = [60, 40, 58], P = [60] (128-bit
/// secure). The weights are encoded at the 58-bit top prime so that their
/// rounding (≤ N/2 in the canonical norm) stays far below the flooding;
/// `q0` is then widened as the flooding needs.
fn score_params() -> ParamsBuilder {
    ParamsBuilder::new(13).q_bits(&[60, 40, 58]).p_bits(&[60])
}

/// The proven bound of a returned score at `scale` (the server's circuit:
/// a public-key encryption of features `|x| ≤ FEATURE_BOUND` at the top
/// level, times weights `|w| ≤ w_bound` encoded at the top prime, a
/// rescale, the inner sum over the window, plus a bias `|b| ≤ b_bound`).
fn score_bound(
    params: &CkksParams,
    scale: f64,
    w_bound: f64,
    b_bound: f64,
) -> Result<NoiseBound, cipherflow_ckks::CkksError> {
    let top = params.max_level();
    let q_top = params.q().get(top).copied().unwrap_or(1) as f64;
    NoiseBound::fresh(
        params,
        Fresh::PublicKey,
        FEATURE_BOUND,
        scale,
        DEFAULT_TAIL_BITS,
    )?
    .mul_plain(params, w_bound, q_top)?
    .rescale(params, top)?
    .inner_sum(params, top - 1, WINDOW)?
    .add_const(b_bound)
}

/// Runs the demo and prints a report.
pub fn run(path: Option<&Path>) -> anyhow::Result<()> {
    let data = load(path)?;
    let n = data.len();
    let d = data.shape().iter().product::<usize>();
    // Deterministic 80/20 split: every fifth patient is a test patient.
    let (train_idx, test): (Vec<usize>, Vec<usize>) = (0..n).partition(|i| i % 5 != 4);
    let mut train = data.subset(&train_idx)?;
    // Standardisation with training statistics (part of the public model);
    // the encrypted features are clamped to ±FEATURE_BOUND.
    let standardizer = Standardizer::fit(&train)?;
    standardizer.apply(&mut train)?;
    let mut standardized = data.clone();
    standardizer.apply(&mut standardized)?;
    let label = |i: usize| data.labels().get(i).copied().unwrap_or(0);
    let z = |i: usize| -> Vec<f64> {
        standardized
            .features()
            .row(i)
            .iter()
            .map(|&v| f64::from(v).clamp(-FEATURE_BOUND, FEATURE_BOUND))
            .collect()
    };
    let (w, b) = train_logreg(&train)?;

    println!("cipherflow demo — encrypted breast-cancer diagnosis scores");
    let source = path.map_or_else(
        || "breast_cancer.csv (shipped)".into(),
        |p| p.display().to_string(),
    );
    println!("  data: {source} ({n} patients, {d} features)");
    // Model owner: parameters whose returned scores can be flooded for
    // circuit privacy and keep SCORE_PRECISION_BITS (public, with the scale).
    let w_bound = w.iter().fold(b.abs(), |m, v| m.max(v.abs()));
    let w_bound = 2f64.powf(w_bound.max(1e-3).log2().ceil());
    let b_bound = w_bound;
    let builder = score_params();
    let top = builder.clone().build()?.max_level();
    let fp = builder.widen_q0_for_flooding(
        top - 1,
        FloodTarget {
            precision_bits: SCORE_PRECISION_BITS,
            stat_sec_bits: CIRCUIT_PRIVACY_LAMBDA,
            decryptions: RETURNED_OUTPUTS,
            circuit_privacy: true,
        },
        |p, scale| score_bound(p, scale, w_bound, b_bound),
    )?;
    let params = fp.params.clone();
    println!(
        "  CKKS: {params}; features encrypted at scale 2^{:.1}",
        fp.scale.log2()
    );
    let slots = params.slots();
    let per_ct = slots / WINDOW;

    // Hospital: keys and encryption of the test patients.
    let t0 = Instant::now();
    let mut rng = secure_rng()?;
    let sk = SecretKey::generate(&params, &mut rng);
    let pk = PublicKey::generate(&sk, &mut rng)?;
    let gk = GaloisKeys::generate(&sk, &Evaluator::inner_sum_steps(WINDOW), false, &mut rng)?;
    let t_keys = t0.elapsed();
    let enc = Encoder::new(&params);
    let encryptor = Encryptor::with_public_key(&pk);
    let t1 = Instant::now();
    let mut cts: Vec<Ciphertext> = Vec::new();
    for chunk in test.chunks(per_ct) {
        let mut packed = vec![0.0; slots];
        for (k, &i) in chunk.iter().enumerate() {
            for (j, v) in z(i).iter().enumerate() {
                if let Some(s) = packed.get_mut(k * WINDOW + j) {
                    *s = *v;
                }
            }
        }
        cts.push(encryptor.encrypt(&enc.encode(&packed, top, fp.scale)?, &mut rng)?);
    }
    let t_enc = t1.elapsed();
    let packing: usize = cts
        .iter()
        .map(|c| c.to_bytes(&params).map(|b| b.len()))
        .sum::<Result<usize, _>>()?;

    // Server: w·x + b for every patient, on ciphertexts only.
    let eval = Evaluator::new(&params);
    let mut wrep = vec![0.0; slots];
    for k in 0..per_ct {
        for (j, wj) in w.iter().enumerate() {
            if let Some(s) = wrep.get_mut(k * WINDOW + j) {
                *s = *wj;
            }
        }
    }
    let w_pt = enc.encode(&wrep, top, params.q().get(top).copied().unwrap_or(1) as f64)?;
    let t2 = Instant::now();
    let scores_ct: Vec<Ciphertext> = cts
        .iter()
        .map(|c| {
            let prod = eval.rescale(&eval.mul_plain(c, &w_pt)?)?;
            let summed = eval.inner_sum(&prod, WINDOW, &gk)?;
            let scores = eval.add_const(&summed, b)?;
            // Circuit privacy: re-randomised and flooded before it leaves.
            Ok(eval
                .sanitize(&scores, &pk, &fp.bound, &fp.flooding, &mut rng)?
                .0)
        })
        .collect::<Result<_, cipherflow_ckks::CkksError>>()?;
    let t_eval = t2.elapsed();

    // Hospital: decrypt, compare with the plaintext model.
    let dec = Decryptor::new(&sk);
    let (mut got, mut want) = (Vec::new(), Vec::new());
    for (chunk, ct) in test.chunks(per_ct).zip(&scores_ct) {
        let vals = dec.decrypt_values(ct)?;
        for (k, &i) in chunk.iter().enumerate() {
            got.push(vals.get(k * WINDOW).copied().unwrap_or(f64::NAN));
            want.push(z(i).iter().zip(&w).map(|(a, c)| a * c).sum::<f64>() + b);
        }
    }
    let agree = got
        .iter()
        .zip(&want)
        .filter(|(g, p)| (**g > 0.0) == (**p > 0.0))
        .count();
    let correct = got
        .iter()
        .zip(&test)
        .filter(|(g, &i)| (**g > 0.0) == (label(i) == 1))
        .count();
    println!(
        "  keys: {:.0} ms; encrypt {} patients into {} ciphertext(s): {:.0} ms, {} KiB on the wire",
        t_keys.as_secs_f64() * 1e3,
        test.len(),
        cts.len(),
        t_enc.as_secs_f64() * 1e3,
        packing / 1024
    );
    println!(
        "  encrypted scoring (mul_plain, rescale, {} rotations): {:.0} ms",
        Evaluator::inner_sum_steps(WINDOW).len(),
        t_eval.as_secs_f64() * 1e3
    );
    println!(
        "  scores re-randomised and flooded before leaving the server (circuit privacy: \
         σ = 2^{:.1}, λ = {CIRCUIT_PRIVACY_LAMBDA}, sized for {} returned ciphertexts): \
         ≥ {:.1} bits guaranteed",
        fp.flooding.sigma_log2(),
        RETURNED_OUTPUTS,
        fp.precision_bits
    );
    let bits = precision_bits(&want, &got)?;
    println!(
        "  scores vs plaintext model: {bits:.1} bits of precision; same decision for {agree}/{} patients",
        test.len()
    );
    println!(
        "  test accuracy under encryption: {:.1}% ({correct}/{})",
        100.0 * correct as f64 / test.len() as f64,
        test.len()
    );
    if agree != test.len() {
        return Err(anyhow!("encrypted and plaintext decisions differ"));
    }
    Ok(())
}

/// The README's main job: 10 simulated hospitals, the shipped breast-cancer
/// data split non-IID (Dirichlet α = 0.5), 20 rounds of 6-of-10
/// threshold-encrypted FedAvg with sample-level DP (every hospital trains
/// with DP-SGD; ε = 3 per patient), per-round accuracy and ε, and the
/// offline verification of the audit log.
pub fn run_federated() -> anyhow::Result<()> {
    let args = crate::fl::SimulateArgs {
        data: "breast-cancer".into(),
        labels: crate::train::LabelArgs::default(),
        clients: 10,
        rounds: Some(20),
        dropout: 0.0,
        keys: crate::fl::Keys::Threshold,
        dp_epsilon: Some(3.0),
        dp_level: crate::fl::DpLevel::Sample,
        dp_noise: crate::fl::DpNoise::DiscreteGaussian,
        dp_schedule: None,
        params_per_client: None,
        alpha: Some(0.5),
        model: None,
        config: None,
        clients_per_round: None,
        stat_sec: None,
        key_holders: None,
        regions: 0,
        compare_plaintext: false,
        dir: None,
        state: None,
        postgres: Default::default(),
        seed: 1,
        threads: None,
        json: false,
    };
    crate::fl::run_simulate(
        &args,
        Some(
            "cipherflow demo — 10 hospitals, threshold-encrypted FedAvg with differential privacy",
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The figure the README and CIRCUIT_PRIVACY_LAMBDA cite: at λ = 40 and
    /// 1024 returned scores, flooding for circuit privacy leaves at most
    /// −2.5 bits (weights bounded by 2, as the shipped model's are), while
    /// λ = 20 keeps the stated precision. Run with `--nocapture` to see it.
    #[test]
    fn circuit_privacy_at_lambda_40_is_out_of_reach_and_20_keeps_6_bits() {
        let top = 2;
        let target = |lambda| FloodTarget {
            precision_bits: SCORE_PRECISION_BITS,
            stat_sec_bits: lambda,
            decryptions: RETURNED_OUTPUTS,
            circuit_privacy: true,
        };
        let bound = |p: &CkksParams, s: f64| score_bound(p, s, 2.0, 2.0);
        match score_params().widen_q0_for_flooding(top - 1, target(40), bound) {
            Err(cipherflow_ckks::CkksError::Flooding(m)) => {
                eprintln!("λ = 40: {m}");
                assert!(m.contains("cap it at -2.5 bits"), "{m}");
            }
            other => panic!("λ = 40 should be out of reach: {other:?}"),
        }
        let fp =
            score_params().widen_q0_for_flooding(top - 1, target(CIRCUIT_PRIVACY_LAMBDA), bound);
        assert!(
            matches!(&fp, Ok(f) if f.precision_bits >= SCORE_PRECISION_BITS),
            "{fp:?}"
        );
    }
}
