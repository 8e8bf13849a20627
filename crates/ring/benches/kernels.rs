//! The ring layer's hot loops: the negacyclic NTT (forward and inverse)
//! at N = 2^13 and 2^15, and the ModUp/ModDown basis conversions of
//! hybrid key switching. `cargo bench -p cipherflow-ring`.
#![allow(clippy::unwrap_used, missing_docs)]

use cipherflow_ring::{basis, generate_primes, RingContext, RnsPoly};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

fn context(log_n: u32, q: usize, p: usize) -> std::sync::Arc<RingContext> {
    let n = 1usize << log_n;
    let mut primes = generate_primes(60, n, 1, &[]).unwrap();
    let forties = generate_primes(40, n, q - 1, &primes).unwrap();
    primes.extend(forties);
    let special = generate_primes(61, n, p, &primes).unwrap();
    RingContext::new(n, &primes, &special).unwrap()
}

fn random_poly(ctx: &RingContext, q: usize, p: usize) -> RnsPoly {
    let coeffs: Vec<i64> = (0..ctx.n() as i64)
        .map(|i| (i * 7919) % 1_000_003 - 500_000)
        .collect();
    RnsPoly::from_signed(ctx, &coeffs, q, p)
}

fn ntt(c: &mut Criterion) {
    let mut g = c.benchmark_group("ntt");
    for log_n in [13u32, 15] {
        let ctx = context(log_n, 3, 0);
        let mut a = random_poly(&ctx, 3, 0);
        g.bench_with_input(
            BenchmarkId::new("forward+inverse, 3 limbs", 1 << log_n),
            &log_n,
            |b, _| {
                b.iter(|| {
                    a.ntt_forward(&ctx);
                    a.ntt_inverse(&ctx);
                });
            },
        );
    }
    g.finish();
}

fn basis_conversion(c: &mut Criterion) {
    let mut g = c.benchmark_group("basis");
    let ctx = context(13, 3, 1);
    let mut x = random_poly(&ctx, 3, 0);
    x.ntt_forward(&ctx);
    g.bench_function("mod_up, N = 2^13, 3 digits of 1 prime", |b| {
        b.iter(|| basis::mod_up_digits(&ctx, &x, 1).unwrap());
    });
    let mut y = random_poly(&ctx, 3, 1);
    y.ntt_forward(&ctx);
    g.bench_function("mod_down, N = 2^13, Q 3 primes, P 1", |b| {
        b.iter(|| basis::mod_down(&ctx, &y).unwrap());
    });
    g.finish();
}

criterion_group!(benches, ntt, basis_conversion);
criterion_main!(benches);
