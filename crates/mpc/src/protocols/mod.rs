//! Protocols on replicated shares (semi-honest, honest majority).
//!
//! | protocol | rounds | bytes sent per party | error |
//! | --- | --- | --- | --- |
//! | input (owner → others) | 1 | owner: 2·n·ℓ/8 | exact |
//! | add, sub, public ±, × public integer | 0 | 0 | exact |
//! | mul, matmul (integer) | 1 | n·ℓ/8 (output size, not inner dim.) | exact |
//! | truncation by d bits | 1 | party 1: n·ℓ/8 | ≤ 1 ulp (2^−f); fails w.p. ≤ 2^(ℓx+1−ℓ) |
//! | fixed-point mul / matmul | 2 | ×2 | as truncation |
//! | AND (binary) | 1 | n·ℓ/8 | exact |
//! | A2B, sign bit (msb) | 2 + log2 ℓ | ≈ (3 + 2·log2 ℓ)·n·ℓ/8 | exact |
//! | bit → arithmetic | 2 | 2·n·ℓ/8 | exact |
//! | ReLU, ReLU′, comparison | 5 + log2 ℓ | | exact |
//! | argmax over C ≤ 16 (all pairs) | 10 + ⌈log2(C−1)⌉ (+1 for the max) | | exact |
//! | max / argmax over C > 16 (tournament) | 11·⌈log2 C⌉ | | exact |
//! | sigmoid (33-piece linear) | 7 + log2 ℓ | | ≤ 4e-3 + 2 ulp |
//! | softmax | see [`approx`] | | ≤ 2e-3 (measured) |
//!
//! Truncation is ABY3's share truncation (Π_trunc1): for a product `z`
//! with `|z| < 2^ℓx` (fixed point: `|x·y| < 2^(ℓx−2f)`), the result is
//! `⌊z/2^d⌋ + e`, `e ∈ {0, 1}`, except with probability ≤ 2^(ℓx+1−ℓ), in
//! which case it is garbage. In Z_2^64 with f = 16 and products below 2^15
//! (ℓx = 47) that is 2^−16 per element; the Z_2^128 ring makes it 2^−80.

pub mod approx;
pub mod arith;
pub mod binary;
