//! Times the local wrapping matrix-product kernel (one party's share of a
//! secret-shared n×n matmul: two products, i.e. inner dimension 2n).
//! `cargo run --release -p cipherflow-mpc --example kernel -- 1000`

use cipherflow_mpc::kernels::matmul_sum_bt;
use std::time::Instant;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let a: Vec<u64> = (0..n * n)
        .map(|i| (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .collect();
    let b: Vec<u64> = (0..n * n)
        .map(|i| (i as u64).wrapping_mul(0xc2b2_ae3d_27d4_eb4f))
        .collect();
    for _ in 0..3 {
        let t = Instant::now();
        let c = matmul_sum_bt(&[(&a, &b, n), (&b, &a, n)], n, n);
        let s = t.elapsed().as_secs_f64();
        println!(
            "{n}×{}×{n}: {:.3} s, {:.2} G mul-add/s (checksum {})",
            2 * n,
            s,
            2.0 * (n * n * n) as f64 / s / 1e9,
            c.iter().fold(0u64, |x, &y| x.wrapping_add(y))
        );
    }
}
