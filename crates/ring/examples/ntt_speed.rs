//! Quick timing of the ring kernels (not a benchmark suite).
#![allow(clippy::unwrap_used, missing_docs)]
use cipherflow_ring::*;
use std::time::Instant;
fn main() {
    let n = 8192;
    for bits in [60u32, 40] {
        let q = generate_primes(bits, n, 1, &[]).unwrap()[0];
        let t = ntt::NttTable::new(n, Modulus::new(q).unwrap()).unwrap();
        let mut a: Vec<u64> = (0..n as u64).map(|i| i * 7919 % q).collect();
        let reps = 2000;
        let s = Instant::now();
        for _ in 0..reps {
            t.forward(&mut a);
        }
        let f = s.elapsed().as_secs_f64() * 1e6 / reps as f64;
        let s = Instant::now();
        for _ in 0..reps {
            t.inverse(&mut a);
        }
        let i = s.elapsed().as_secs_f64() * 1e6 / reps as f64;
        let m = Modulus::new(q).unwrap();
        let b = a.clone();
        let s = Instant::now();
        for _ in 0..reps {
            for (x, &y) in a.iter_mut().zip(&b) {
                *x = m.mul(*x, y);
            }
        }
        let mm = s.elapsed().as_secs_f64() * 1e6 / reps as f64;
        let (w, ws) = (12345u64, m.shoup(12345));
        let s = Instant::now();
        for _ in 0..reps {
            for x in a.iter_mut() {
                *x = m.mul_shoup(*x, w, ws);
            }
        }
        let sh = s.elapsed().as_secs_f64() * 1e6 / reps as f64;
        let mut acc = vec![0u64; n];
        let s = Instant::now();
        for _ in 0..reps {
            t.mul_accumulate(&mut acc, &a, &b);
        }
        let ma = s.elapsed().as_secs_f64() * 1e6 / reps as f64;
        let mut want = vec![0u64; n];
        for (w, (x, y)) in want.iter_mut().zip(a.iter().zip(&b)) {
            *w = m.mul(*x, *y);
        }
        let mut acc = vec![0u64; n];
        t.mul_accumulate(&mut acc, &a, &b);
        assert_eq!(acc, want);
        println!("  simd mul_accumulate {ma:.1} us");
        println!("{bits}-bit n={n}: fwd {f:.1} us, inv {i:.1} us, barrett mul {mm:.1} us, shoup mul {sh:.1} us");
    }
}
