//! A negacyclic NTT for WebAssembly: Harvey's lazy butterflies with Shoup
//! multiplication, the high half of each 64×64-bit product assembled from
//! four 32×32-bit products.
//!
//! Why not `tfhe-ntt` there: WebAssembly has no 64-bit multiply-high, so
//! the `u128` products of `tfhe-ntt`'s scalar path compile to calls of the
//! compiler's `__multi3` routine, which computes the whole 128-bit product;
//! in the browser client's profile those calls took a fifth of the time.
//! Natively `tfhe-ntt` (AVX2, AVX-512, IFMA) stays in use; this plan is
//! compiled everywhere so that its tests compare it with `tfhe-ntt`
//! natively, bit for bit, and it is selected only for `wasm32`.
//!
//! The layout is `tfhe-ntt`'s: the plan takes `tfhe-ntt`'s own `ψ`, so
//! slot `j` of the forward transform holds the evaluation at
//! `ψ^(2·bitrev(j)+1)` and the two plans agree exactly.

use crate::modulus::Modulus;
use crate::ntt::bit_reverse;
use crate::RingError;

/// The high 64 bits of `a · b` less 0, 1 or 2: three 32×32-bit products,
/// the low one and the carries between them dropped. (The exact four-
/// product form is recognized by the compiler as a 128-bit product and
/// turned back into a `__multi3` call.)
#[inline(always)]
fn mul_hi_approx(a: u64, b: u64) -> u64 {
    const M: u64 = 0xffff_ffff;
    let (a0, a1) = (a & M, a >> 32);
    let (b0, b1) = (b & M, b >> 32);
    a1 * b1 + ((a1 * b0) >> 32) + ((a0 * b1) >> 32)
}

/// `x · w mod q` in `[0, 2q)` for any `x < 2^64` and `q < 2^62`, with
/// `w_shoup = ⌊w · 2^64 / q⌋`: Shoup's product, whose quotient is short by
/// at most 3 here (2 from [`mul_hi_approx`]), so one subtraction of `2q`.
#[inline(always)]
fn mul_shoup_lazy(x: u64, w: u64, w_shoup: u64, q: u64) -> u64 {
    let r = x
        .wrapping_mul(w)
        .wrapping_sub(mul_hi_approx(x, w_shoup).wrapping_mul(q));
    if r >= 2 * q {
        r - 2 * q
    } else {
        r
    }
}

/// The exact 128-bit product `a · b` as (low, high) words: three 32×32-bit
/// products and the native wrapping 64-bit one, the middle carry recovered
/// from the low word (not the four-product form the compiler turns into a
/// `__multi3` call).
#[inline(always)]
fn mul_wide(a: u64, b: u64) -> (u64, u64) {
    const M: u64 = 0xffff_ffff;
    let (a0, a1) = (a & M, a >> 32);
    let (b0, b1) = (b & M, b >> 32);
    let lo = a.wrapping_mul(b);
    let (p01, p10) = (a0 * b1, a1 * b0);
    // The middle sum is t plus ⌊a0·b0 / 2^32⌋ (below 2^32), and its low
    // 32 bits are the low word's high half: that fixes it exactly.
    let t = (p01 & M) + (p10 & M);
    let s = t + ((lo >> 32).wrapping_sub(t) & M);
    (lo, a1 * b1 + (p01 >> 32) + (p10 >> 32) + (s >> 32))
}

/// A root and its Shoup companion.
#[derive(Clone, Copy, Debug)]
struct Twiddle {
    w: u64,
    shoup: u64,
}

fn twiddle(w: u64, q: u64) -> Twiddle {
    let shoup = ((u128::from(w) << 64) / u128::from(q)) as u64;
    Twiddle { w, shoup }
}

/// The plan for one prime `q < 2^62` and degree `n`.
#[derive(Clone, Debug)]
pub(crate) struct SplitPlan {
    q: u64,
    /// `-q^-1 mod 2^64` (Montgomery reduction).
    q_inv_neg: u64,
    /// `2^64 mod q`, undoing Montgomery's factor.
    r: Twiddle,
    /// `ψ^bitrev(k)`, k < n.
    fwd: Vec<Twiddle>,
    /// `ψ^-bitrev(k)`, k < n.
    inv: Vec<Twiddle>,
    n_inv: Twiddle,
}

impl SplitPlan {
    /// The plan for degree `n` with `psi` a primitive `2n`-th root of
    /// unity modulo `modulus` (below 2^62).
    pub(crate) fn new(n: usize, modulus: &Modulus, psi: u64) -> Result<Self, RingError> {
        let q = modulus.value();
        if q >= 1 << 62 || !n.is_power_of_two() {
            return Err(RingError::NoNttPlan { n, q });
        }
        let log_n = n.trailing_zeros();
        let psi_inv = modulus.inv(psi)?;
        let mut fwd = Vec::with_capacity(n);
        let mut inv = Vec::with_capacity(n);
        for k in 0..n {
            let e = bit_reverse(k, log_n) as u64;
            fwd.push(twiddle(modulus.pow(psi, e), q));
            inv.push(twiddle(modulus.pow(psi_inv, e), q));
        }
        let n_inv = twiddle(modulus.inv(n as u64 % q)?, q);
        // q^-1 mod 2^64 by Newton's iteration (q odd): each step doubles
        // the correct low bits, from 3 (q·q ≡ 1 mod 8).
        let mut q_inv = q;
        for _ in 0..5 {
            q_inv = q_inv.wrapping_mul(2u64.wrapping_sub(q.wrapping_mul(q_inv)));
        }
        let r = twiddle(((1u128 << 64) % u128::from(q)) as u64, q);
        Ok(Self {
            q,
            q_inv_neg: q_inv.wrapping_neg(),
            r,
            fwd,
            inv,
            n_inv,
        })
    }

    /// `a · b mod q` for reduced inputs: Montgomery's reduction of the
    /// exact product (which divides by 2^64), then a Shoup product by
    /// `2^64 mod q`.
    #[inline(always)]
    fn mul_mod(&self, a: u64, b: u64) -> u64 {
        let q = self.q;
        let (lo, hi) = mul_wide(a, b);
        let m = lo.wrapping_mul(self.q_inv_neg);
        // lo + (m·q mod 2^64) ≡ 0: the sum carries exactly when lo ≠ 0.
        let (_, m_hi) = mul_wide(m, q);
        let mut x = hi + m_hi + u64::from(lo != 0);
        if x >= q {
            x -= q;
        }
        let y = mul_shoup_lazy(x, self.r.w, self.r.shoup, q);
        if y >= q {
            y - q
        } else {
            y
        }
    }

    /// `acc += a · b` element-wise modulo `q`, inputs reduced.
    pub(crate) fn mul_accumulate(&self, acc: &mut [u64], a: &[u64], b: &[u64]) {
        debug_assert!(
            acc.len() == a.len() && a.len() == b.len(),
            "vectors of one length"
        );
        let q = self.q;
        for ((c, &x), &y) in acc.iter_mut().zip(a).zip(b) {
            let s = *c + self.mul_mod(x, y);
            *c = if s >= q { s - q } else { s };
        }
    }

    /// Forward transform in place, output reduced to `[0, q)`.
    pub(crate) fn forward(&self, a: &mut [u64]) {
        debug_assert_eq!(a.len(), self.fwd.len(), "a vector of the plan's length");
        let n = a.len();
        let (q, two_q) = (self.q, 2 * self.q);
        let mut t = n;
        let mut m = 1;
        while m < n {
            t /= 2;
            for (i, block) in a.chunks_exact_mut(2 * t).enumerate() {
                let Some(&w) = self.fwd.get(m + i) else {
                    return;
                };
                let (lo, hi) = block.split_at_mut(t);
                for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
                    let mut u = *x;
                    if u >= two_q {
                        u -= two_q;
                    }
                    let v = mul_shoup_lazy(*y, w.w, w.shoup, q);
                    *x = u + v;
                    *y = u + two_q - v;
                }
            }
            m *= 2;
        }
        self.reduce_from_4q(a);
    }

    /// Values in `[0, 4q)` reduced to `[0, q)`.
    fn reduce_from_4q(&self, a: &mut [u64]) {
        let (q, two_q) = (self.q, 2 * self.q);
        for x in a.iter_mut() {
            let mut v = *x;
            if v >= two_q {
                v -= two_q;
            }
            if v >= q {
                v -= q;
            }
            *x = v;
        }
    }

    /// Inverse transform in place without the `1/n` factor, output
    /// reduced to `[0, q)`.
    pub(crate) fn inverse_unnormalized(&self, a: &mut [u64]) {
        self.inverse_lazy(a);
        self.reduce_from_4q(a);
    }

    /// Inverse transform in place with the `1/n` factor, reduced.
    pub(crate) fn inverse(&self, a: &mut [u64]) {
        self.inverse_lazy(a);
        let q = self.q;
        let w = self.n_inv;
        for x in a.iter_mut() {
            let v = mul_shoup_lazy(*x, w.w, w.shoup, q);
            *x = if v >= q { v - q } else { v };
        }
    }

    /// Gentleman–Sande butterflies, values kept in `[0, 2q)`.
    fn inverse_lazy(&self, a: &mut [u64]) {
        debug_assert_eq!(a.len(), self.inv.len(), "a vector of the plan's length");
        let n = a.len();
        let (q, two_q) = (self.q, 2 * self.q);
        let mut t = 1;
        let mut m = n;
        while m > 1 {
            let h = m / 2;
            for (i, block) in a.chunks_exact_mut(2 * t).enumerate() {
                let Some(&w) = self.inv.get(h + i) else {
                    return;
                };
                let (lo, hi) = block.split_at_mut(t);
                for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
                    let (u, v) = (*x, *y);
                    let mut s = u + v;
                    if s >= two_q {
                        s -= two_q;
                    }
                    *x = s;
                    *y = mul_shoup_lazy(u + two_q - v, w.w, w.shoup, q);
                }
            }
            t *= 2;
            m = h;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use rand_core::{RngCore, SeedableRng};
    use tfhe_ntt::prime64::Plan;

    #[test]
    fn mul_hi_approx_is_short_by_at_most_two() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let mut cases: Vec<(u64, u64)> = (0..200_000)
            .map(|_| (rng.next_u64(), rng.next_u64()))
            .collect();
        cases.extend([
            (u64::MAX, u64::MAX),
            (0, u64::MAX),
            (u64::MAX, 1),
            (1 << 32, 1 << 32),
        ]);
        for (a, b) in cases {
            let exact = ((u128::from(a) * u128::from(b)) >> 64) as u64;
            let d = exact - mul_hi_approx(a, b);
            assert!(d <= 2, "{a} × {b}: short by {d}");
        }
    }

    #[test]
    fn wide_products_are_exact() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
        let mut cases: Vec<(u64, u64)> = (0..200_000)
            .map(|_| (rng.next_u64(), rng.next_u64()))
            .collect();
        cases.extend([
            (u64::MAX, u64::MAX),
            (0, 7),
            (u64::MAX, 1),
            (1 << 32, (1 << 32) - 1),
        ]);
        for (a, b) in cases {
            let p = u128::from(a) * u128::from(b);
            assert_eq!(mul_wide(a, b), (p as u64, (p >> 64) as u64), "{a} × {b}");
        }
    }

    #[test]
    fn products_and_accumulation_are_exact() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        for bits in [36u32, 40, 50, 60, 61] {
            let q = crate::modulus::generate_primes(bits, 16, 1, &[]).unwrap()[0];
            let m = Modulus::new(q).unwrap();
            let plan = SplitPlan::new(16, &m, {
                let t = Plan::try_new(16, q).unwrap();
                let mut x = vec![0u64; 16];
                x[1] = 1;
                t.fwd(&mut x);
                x[0]
            })
            .unwrap();
            let n = 4096;
            let mut a: Vec<u64> = (0..n).map(|_| rng.next_u64() % q).collect();
            let mut b: Vec<u64> = (0..n).map(|_| rng.next_u64() % q).collect();
            a.extend([0, q - 1, q - 1, 1]);
            b.extend([q - 1, q - 1, 1, 0]);
            let acc0: Vec<u64> = (0..a.len()).map(|_| rng.next_u64() % q).collect();
            let mut acc = acc0.clone();
            plan.mul_accumulate(&mut acc, &a, &b);
            for i in 0..a.len() {
                let want =
                    (u128::from(acc0[i]) + u128::from(a[i]) * u128::from(b[i])) % u128::from(q);
                assert_eq!(u128::from(acc[i]), want, "q={q} i={i}");
            }
        }
    }

    #[test]
    fn shoup_products_are_reduced_below_2q() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        for bits in [36u32, 40, 50, 60, 61] {
            let q = crate::modulus::generate_primes(bits, 16, 1, &[]).unwrap()[0];
            for _ in 0..50_000 {
                let (x, w) = (rng.next_u64(), rng.next_u64() % q);
                let t = twiddle(w, q);
                let r = mul_shoup_lazy(x, t.w, t.shoup, q);
                assert!(r < 2 * q);
                assert_eq!(
                    u128::from(r) % u128::from(q),
                    u128::from(x) * u128::from(w) % u128::from(q)
                );
            }
        }
    }

    /// Bit for bit `tfhe-ntt`'s transforms, at the primes CKKS uses (36 to
    /// 61 bits), on random and extreme inputs.
    #[test]
    fn agrees_with_tfhe_ntt() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
        for (n, bits) in [
            (16usize, 36u32),
            (1024, 40),
            (8192, 60),
            (4096, 61),
            (2048, 50),
        ] {
            let q = crate::modulus::generate_primes(bits, n, 1, &[]).unwrap()[0];
            let m = Modulus::new(q).unwrap();
            let tfhe = Plan::try_new(n, q).unwrap();
            let mut x = vec![0u64; n];
            x[1] = 1;
            tfhe.fwd(&mut x);
            let ours = SplitPlan::new(n, &m, x[0]).unwrap();
            for case in 0..3 {
                let a: Vec<u64> = match case {
                    0 => (0..n).map(|_| rng.next_u64() % q).collect(),
                    1 => vec![q - 1; n],
                    _ => (0..n as u64).collect(),
                };
                let (mut want, mut got) = (a.clone(), a.clone());
                tfhe.fwd(&mut want);
                ours.forward(&mut got);
                assert_eq!(got, want, "forward n={n} q={q} case {case}");
                tfhe.inv(&mut want);
                ours.inverse_unnormalized(&mut got);
                assert_eq!(got, want, "inverse n={n} q={q} case {case}");
                tfhe.normalize(&mut want);
                let mut back = a.clone();
                ours.forward(&mut back);
                ours.inverse(&mut back);
                assert_eq!(back, a, "round trip n={n} q={q} case {case}");
                assert_eq!(want, a);
            }
        }
    }
}
