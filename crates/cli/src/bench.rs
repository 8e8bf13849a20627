//! `cipherflow bench ckks`: per-operation timings of the CKKS core, one JSON
//! object per line (a stable contract consumed by `bench/ckks.sh`):
//! `{"preset":"n13","op":"mul_relin_rescale","median_us":…,"min_us":…,"threads":1,"reps":…}`.

use cipherflow_ckks::{
    CkksError, CkksParams, Decryptor, Encoder, Encryptor, Evaluator, GaloisKeys, Preset, PublicKey,
    RelinKey, SecretKey,
};
use cipherflow_ring::sampler::secure_rng;
use std::time::Instant;

/// One measured operation.
pub struct Measurement {
    /// Operation name from the contract.
    pub op: &'static str,
    /// Median wall time, microseconds.
    pub median_us: f64,
    /// Minimum wall time, microseconds.
    pub min_us: f64,
}

fn time<T>(
    reps: usize,
    mut f: impl FnMut() -> Result<T, CkksError>,
) -> Result<(f64, f64), CkksError> {
    // Warm-up (caches, lazily built permutations).
    f()?;
    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        let out = f()?;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
        drop(out);
    }
    samples.sort_by(f64::total_cmp);
    let median = match samples.len() {
        0 => 0.0,
        k if k % 2 == 1 => samples.get(k / 2).copied().unwrap_or(0.0),
        k => {
            (samples.get(k / 2 - 1).copied().unwrap_or(0.0)
                + samples.get(k / 2).copied().unwrap_or(0.0))
                / 2.0
        }
    };
    Ok((median, samples.first().copied().unwrap_or(0.0)))
}

/// Runs every operation of the contract on `params` (current thread pool).
pub fn run_ckks(params: &CkksParams, reps: usize) -> Result<Vec<Measurement>, CkksError> {
    let mut rng = secure_rng()?;
    let sk = SecretKey::generate(params, &mut rng);
    let pk = PublicKey::generate(&sk, &mut rng)?;
    let rlk = RelinKey::generate(&sk, &mut rng)?;
    let gk = GaloisKeys::generate(&sk, &[1], false, &mut rng)?;
    let enc = Encoder::new(params);
    let eval = Evaluator::new(params);
    let dec = Decryptor::new(&sk);
    let values: Vec<f64> = (0..params.slots())
        .map(|i| ((i % 97) as f64) / 97.0)
        .collect();
    let pt = enc.encode_default(&values)?;
    let encp = Encryptor::with_public_key(&pk);
    let encs = Encryptor::with_secret_key(&sk);
    let a = encp.encrypt(&pt, &mut rng)?;
    let b = encp.encrypt(&pt, &mut rng)?;
    let prod = eval.mul(&a, &b)?;
    let relin = eval.relinearize(&prod, &rlk)?;

    let mut out = Vec::new();
    let mut push = |op: &'static str, (median_us, min_us): (f64, f64)| {
        out.push(Measurement {
            op,
            median_us,
            min_us,
        })
    };
    push("encode", time(reps, || enc.encode_default(&values))?);
    push("encrypt_pk", time(reps, || encp.encrypt(&pt, &mut rng))?);
    let mut rng2 = secure_rng()?;
    push("encrypt_sk", time(reps, || encs.encrypt(&pt, &mut rng2))?);
    push("add", time(reps, || eval.add(&a, &b))?);
    push("mul_plain", time(reps, || eval.mul_plain(&a, &pt))?);
    push("mul", time(reps, || eval.mul(&a, &b))?);
    push("relin", time(reps, || eval.relinearize(&prod, &rlk))?);
    push("rescale", time(reps, || eval.rescale(&relin))?);
    push(
        "mul_relin_rescale",
        time(reps, || {
            let m = eval.mul(&a, &b)?;
            let r = eval.relinearize(&m, &rlk)?;
            eval.rescale(&r)
        })?,
    );
    push("rotate", time(reps, || eval.rotate(&a, 1, &gk))?);
    push("decrypt", time(reps, || dec.decrypt_values(&a))?);
    Ok(out)
}

/// Prints the measurements, as JSON lines or a table.
pub fn print(preset: &str, threads: usize, reps: usize, ms: &[Measurement], json: bool) {
    if json {
        for m in ms {
            println!(
                "{}",
                serde_json::json!({
                    "preset": preset,
                    "op": m.op,
                    "median_us": (m.median_us * 1000.0).round() / 1000.0,
                    "min_us": (m.min_us * 1000.0).round() / 1000.0,
                    "threads": threads,
                    "reps": reps,
                })
            );
        }
    } else {
        println!("{:<20} {:>14} {:>14}", "op", "median (µs)", "min (µs)");
        for m in ms {
            println!("{:<20} {:>14.1} {:>14.1}", m.op, m.median_us, m.min_us);
        }
    }
}

/// Resolves a benchmark preset name.
pub fn preset(name: &str) -> Option<Preset> {
    match name {
        "n13" | "n14" | "n15" | "n16" => Preset::from_name(name),
        _ => None,
    }
}
