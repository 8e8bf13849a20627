//! CKKS operations at the `n13` set (N = 2^13, Q = [60, 40, 40], P = [60]):
//! public-key encryption, multiplication with relinearization (a key
//! switch), rescale, and a rotation (a key switch with an automorphism).
//! `cargo bench -p cipherflow-ckks`; `cipherflow bench ckks` prints the
//! same operations as JSON for the side-by-side scripts under `bench/`.
#![allow(clippy::unwrap_used, missing_docs)]

use cipherflow_ckks::{
    Encoder, Encryptor, Evaluator, GaloisKeys, Preset, PublicKey, RelinKey, SecretKey,
};
use criterion::{criterion_group, criterion_main, Criterion};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn operations(c: &mut Criterion) {
    let params = Preset::N13.build().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let sk = SecretKey::generate(&params, &mut rng);
    let pk = PublicKey::generate(&sk, &mut rng).unwrap();
    let rlk = RelinKey::generate(&sk, &mut rng).unwrap();
    let gk = GaloisKeys::generate(&sk, &[1], false, &mut rng).unwrap();
    let encoder = Encoder::new(&params);
    let eval = Evaluator::new(&params);
    let enc = Encryptor::with_public_key(&pk);
    let values: Vec<f64> = (0..params.slots())
        .map(|i| (i as f64 * 0.001).sin())
        .collect();
    let ct = enc.encrypt_values(&encoder, &values, &mut rng).unwrap();
    let mut g = c.benchmark_group("ckks n13");
    g.bench_function("encrypt (public key)", |b| {
        b.iter(|| enc.encrypt_values(&encoder, &values, &mut rng).unwrap());
    });
    g.bench_function("mul_relin", |b| {
        b.iter(|| eval.mul_relin(&ct, &ct, &rlk).unwrap())
    });
    let prod = eval.mul_relin(&ct, &ct, &rlk).unwrap();
    g.bench_function("rescale", |b| b.iter(|| eval.rescale(&prod).unwrap()));
    g.bench_function("rotate by 1", |b| {
        b.iter(|| eval.rotate(&ct, 1, &gk).unwrap())
    });
    g.finish();
}

criterion_group!(benches, operations);
criterion_main!(benches);
