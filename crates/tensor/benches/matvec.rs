//! Plaintext matrix × encrypted vector (baby-step/giant-step diagonals,
//! hoisted rotations) for a 64×64 and a 256×256 matrix at N = 2^13.
//! `cargo bench -p cipherflow-tensor`; `cipherflow bench tensor --op
//! matvec` is the JSON tool the comparison with TenSEAL uses.
#![allow(clippy::unwrap_used, missing_docs)]

use cipherflow_ckks::{Encoder, Encryptor, Evaluator, GaloisKeys, Preset, SecretKey};
use cipherflow_tensor::{EncTensor, EncodedMatVec, LinearMap};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

fn matvec(c: &mut Criterion) {
    let params = Preset::N13.build().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let encoder = Encoder::new(&params);
    let eval = Evaluator::new(&params);
    let sk = SecretKey::generate(&params, &mut rng);
    let enc = Encryptor::with_secret_key(&sk);
    let (level, scale) = (params.max_level(), params.default_scale());
    let mut g = c.benchmark_group("matvec n13");
    for n in [64usize, 256] {
        let mut uniform = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
        let a: Vec<f64> = (0..n * n).map(|_| uniform() / (n as f64).sqrt()).collect();
        let x: Vec<f64> = (0..n).map(|_| uniform()).collect();
        let map = LinearMap::new(n, n, a, vec![0.0; n]).unwrap();
        let mv = EncodedMatVec::new(&encoder, &eval, &map, level, scale, scale).unwrap();
        let gk = GaloisKeys::generate(&sk, &mv.rotation_steps(), false, &mut rng).unwrap();
        let ct = EncTensor::encrypt(&enc, &encoder, &x, &[n], level, scale, &mut rng).unwrap();
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| mv.apply(&eval, &gk, &ct).unwrap());
        });
    }
    g.finish();
}

criterion_group!(benches, matvec);
criterion_main!(benches);
