//! Timings and sizes of the multiparty protocol: n parties, threshold t.
//!
//! `cargo run --release -p cipherflow-ckks --example multiparty_bench -- [n] [t] [reps]`
//! prints one JSON line per (preset, operation), single-threaded.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_ckks::multiparty::*;
use cipherflow_ckks::{Encoder, Encryptor, Evaluator, Preset};
use std::time::Instant;

fn median_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn run(name: &str, preset: Preset, n: u64, t: usize, reps: usize) {
    let params = preset.build().unwrap();
    let mut rng = cipherflow_ring::sampler::secure_rng().unwrap();
    let crs = Crs::generate(&mut rng);
    let parties = LocalParties::setup(&params, n, t, &mut rng).unwrap();
    let (ids, sks) = (&parties.ids, &parties.keys);
    let emit = |op: &str, ms: f64, bytes: Option<usize>, note: &str| {
        println!(
            "{{\"bench\":\"ckks_multiparty\",\"preset\":\"{name}\",\"parties\":{n},\"threshold\":{t},\"op\":\"{op}\",\"ms\":{ms:.3},\"bytes\":{},\"threads\":1,\"note\":\"{note}\"}}",
            bytes.map_or("null".to_string(), |b| b.to_string())
        );
    };
    let ms = median_ms(reps, || {
        public_key_share(&params, &sks[0], &crs, &mut rng).unwrap();
    });
    let pks: Vec<_> = sks
        .iter()
        .map(|s| public_key_share(&params, s, &crs, &mut rng).unwrap())
        .collect();
    emit("pk_share", ms, Some(pks[0].to_bytes().len()), "one party");
    let ms = median_ms(reps, || {
        combine_public_key(&params, &crs, &pks).unwrap();
    });
    let pk = combine_public_key(&params, &crs, &pks).unwrap();
    emit(
        "pk_combine",
        ms,
        Some(pk.to_bytes().len()),
        "n shares -> collective pk",
    );
    let ms = median_ms(reps, || {
        shamir_deal(&params, &sks[0], t, ids, &mut rng).unwrap();
    });
    let dealt: Vec<&ShamirShare> = parties.received.iter().flatten().collect();
    let sent: usize = dealt
        .iter()
        .filter(|s| s.from() == 1 && s.to() != 1)
        .map(|s| s.to_bytes().len())
        .sum();
    emit(
        "shamir_deal",
        ms,
        Some(sent),
        "one dealer; bytes = all it sends (t-1 seeded shares + n-t full shares)",
    );
    let ms = median_ms(reps, || {
        shamir_combine(&params, 1, parties.received_by(1)).unwrap();
    });
    let thr: Vec<ThresholdSecret> = parties.threshold_secrets(&params).unwrap();
    emit(
        "shamir_combine",
        ms,
        Some(dealt.iter().map(|s| s.to_bytes().len()).max().unwrap()),
        "one party, n received; bytes = one full share",
    );
    // A sum of n fresh ciphertexts at the top level, decrypted by t parties.
    let enc = Encoder::new(&params);
    let eval = Evaluator::new(&params);
    let level = params.max_level();
    let vals: Vec<f64> = (0..params.slots())
        .map(|i| (i as f64 * 0.37).sin())
        .collect();
    let sm = Smudging::for_fresh_sum(&params, n as usize, n as usize, DEFAULT_STAT_SEC_BITS)
        .unwrap()
        .with_value_bound(n as f64)
        .unwrap();
    let log_scale = sm
        .max_log_scale(&params, level, t)
        .unwrap()
        .floor()
        .min(100.0);
    let pt = enc.encode(&vals, level, 2f64.powf(log_scale)).unwrap();
    let mut sum = Encryptor::with_public_key(&pk)
        .encrypt(&pt, &mut rng)
        .unwrap();
    for _ in 1..n {
        let c = Encryptor::with_public_key(&pk)
            .encrypt(&pt, &mut rng)
            .unwrap();
        sum = eval.add(&sum, &c).unwrap();
    }
    let active: Vec<u64> = ids.iter().copied().take(t).collect();
    let ms = median_ms(reps, || {
        decryption_share(&params, &thr[0], &active, &sum, &sm, &mut rng).unwrap();
    });
    let shares: Vec<_> = thr[..t]
        .iter()
        .map(|th| decryption_share(&params, th, &active, &sum, &sm, &mut rng).unwrap())
        .collect();
    emit(
        "decryption_share",
        ms,
        Some(shares[0].to_bytes().len()),
        &format!("level {level}, scale 2^{log_scale}"),
    );
    let ms = median_ms(reps, || {
        combine_decryption(&params, &sum, &shares).unwrap();
    });
    let out = enc
        .decode(&combine_decryption(&params, &sum, &shares).unwrap())
        .unwrap();
    let want: Vec<f64> = vals.iter().map(|v| v * n as f64).collect();
    let bits = cipherflow_ckks::precision_bits(&want, &out).unwrap();
    let exp = sm.expected_precision_bits(&params, 2f64.powf(log_scale), t);
    emit(
        "combine_decryption",
        ms,
        None,
        &format!(
            "t shares; precision {bits:.1} bits (expected {exp:.1}), smudging 2^{}",
            sm.bound_log2()
        ),
    );
    let ms = median_ms(reps, || {
        decryption_share_additive(&params, &sks[0], &sum, &sm, &mut rng).unwrap();
    });
    emit("decryption_share_additive", ms, None, "n-of-n");
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(10) as u64;
    let t = args.get(1).copied().unwrap_or(6);
    let reps = args.get(2).copied().unwrap_or(9);
    cipherflow_ring::with_threads(1, || {
        run("aggregation", Preset::Aggregation, n, t, reps);
        run("n13", Preset::N13, n, t, reps);
    })
    .unwrap();
}
