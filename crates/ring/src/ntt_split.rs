//! A negacyclic NTT and pointwise products for WebAssembly: Harvey's lazy
//! butterflies with Shoup multiplication and Barrett's reduction of
//! products, the high half of each 64×64-bit product assembled from
//! 32×32-bit products.
//!
//! Why not `tfhe-ntt` there: WebAssembly has no 64-bit multiply-high, so
//! the `u128` products of `tfhe-ntt`'s scalar path compile to calls of the
//! compiler's `__multi3` routine, which computes the whole 128-bit product;
//! in the browser client's profile those calls took a fifth of the time.
//! Natively `tfhe-ntt` (AVX2, AVX-512, IFMA) stays in use; this plan is
//! compiled everywhere so that its tests compare it with `tfhe-ntt`
//! natively, bit for bit, and it is selected only for `wasm32`.
//!
//! Below 2^48 (the 40-bit primes of the usual parameters) the quotient of
//! each modular product is estimated in double precision instead
//! ([`mul_float_lazy`], [`SplitPlan::mul_mod`]): two integer products and
//! one or two floating-point ones, where the integer path needs five
//! (Shoup) or eight (Barrett).
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
pub(crate) fn mul_hi_approx(a: u64, b: u64) -> u64 {
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
pub(crate) fn mul_wide(a: u64, b: u64) -> (u64, u64) {
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

/// The largest `|c|` [`SplitPlan::forward_small`] takes: its quotient
/// estimate needs `|c| < 2^31` (errors are cut at 19, secrets ternary).
pub(crate) const SMALL_SIGNED_MAX: u64 = (1 << 31) - 1;

/// Primes below this take the floating-point quotient path.
const FLOAT_PATH_BOUND: u64 = 1 << 48;

/// `x · w mod q` in `[0, 2q)` for `x < 4q`, `w < q < 2^48`, with
/// `ratio = w / q` in double precision: the quotient `⌊x·w/q⌋ < 2^50` is
/// estimated as `⌊x · ratio⌋`, whose relative error is below 2^−51
/// (`x` and `w` are exact doubles; two roundings), so its absolute error
/// is below 1/2 and the estimate is the quotient or one off either way.
/// The remainder `x·w − est·q`, exact in wrapping 64-bit arithmetic, is
/// then in `[−q, 2q)`; one conditional addition of `q` brings it to
/// `[0, 2q)`.
#[inline(always)]
fn mul_float_lazy(x: u64, w: u64, ratio: f64, q: u64) -> u64 {
    let est = (x as f64 * ratio) as u64;
    let r = x.wrapping_mul(w).wrapping_sub(est.wrapping_mul(q)) as i64;
    (if r < 0 { r + q as i64 } else { r }) as u64
}

/// One stage of butterflies `bf` on the pairs `t` apart within blocks of
/// `2t` values, block `i` with `roots[i]`. Blocks of 2 and 4 values have
/// loops of their own: the general loop's per-block overhead was most of
/// their time.
#[inline(always)]
fn stage(a: &mut [u64], t: usize, roots: &[Twiddle], bf: impl Fn(&mut u64, &mut u64, Twiddle)) {
    match t {
        1 => {
            for (pair, &w) in a.chunks_exact_mut(2).zip(roots) {
                if let [x, y] = pair {
                    bf(x, y, w);
                }
            }
        }
        2 => {
            for (quad, &w) in a.chunks_exact_mut(4).zip(roots) {
                if let [x0, x1, y0, y1] = quad {
                    bf(x0, y0, w);
                    bf(x1, y1, w);
                }
            }
        }
        _ => {
            for (block, &w) in a.chunks_exact_mut(2 * t).zip(roots) {
                let (lo, hi) = block.split_at_mut(t);
                for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
                    bf(x, y, w);
                }
            }
        }
    }
}

/// A root with its Shoup companion and, for the floating-point path, `w / q`.
#[derive(Clone, Copy, Debug)]
struct Twiddle {
    w: u64,
    shoup: u64,
    ratio: f64,
}

fn twiddle(w: u64, q: u64) -> Twiddle {
    let shoup = ((u128::from(w) << 64) / u128::from(q)) as u64;
    Twiddle {
        w,
        shoup,
        ratio: w as f64 / q as f64,
    }
}

/// `x · w mod q` in `[0, 2q)` (`x < 4q`) by the path `FLOAT` names.
#[inline(always)]
fn mul_twiddle<const FLOAT: bool>(x: u64, w: Twiddle, q: u64) -> u64 {
    if FLOAT {
        mul_float_lazy(x, w.w, w.ratio, q)
    } else {
        mul_shoup_lazy(x, w.w, w.shoup, q)
    }
}

/// The plan for one prime `q < 2^61` and degree `n`.
#[derive(Clone, Debug)]
pub(crate) struct SplitPlan {
    q: u64,
    /// `1 / q` in double precision (the floating-point path's products).
    q_inv_f: f64,
    /// Bits of `q`.
    bits: u32,
    /// `⌊2^(63+bits) / q⌋` (Barrett's products).
    barrett: u64,
    /// `ψ^bitrev(k)`, k < n.
    fwd: Vec<Twiddle>,
    /// `ψ^-bitrev(k)`, k < n.
    inv: Vec<Twiddle>,
    n_inv: Twiddle,
    /// `ψ^-bitrev(1) / n`: the last inverse stage's root with `1/n`.
    last_n_inv: Twiddle,
}

impl SplitPlan {
    /// The plan for degree `n` with `psi` a primitive `2n`-th root of
    /// unity modulo `modulus` (below 2^61, as every [`Modulus`]).
    pub(crate) fn new(n: usize, modulus: &Modulus, psi: u64) -> Result<Self, RingError> {
        let q = modulus.value();
        // Below 2^61 (as every `Modulus`): Barrett's remainder below 5q
        // then fits a word.
        if q >= 1 << 61 || !n.is_power_of_two() {
            return Err(RingError::NoNttPlan { n, q });
        }
        let bits = 64 - q.leading_zeros();
        let log_n = n.trailing_zeros();
        let psi_inv = modulus.inv(psi)?;
        let mut fwd = Vec::with_capacity(n);
        let mut inv = Vec::with_capacity(n);
        for k in 0..n {
            let e = bit_reverse(k, log_n) as u64;
            fwd.push(twiddle(modulus.pow(psi, e), q));
            inv.push(twiddle(modulus.pow(psi_inv, e), q));
        }
        let n_inv_value = modulus.inv(n as u64 % q)?;
        let n_inv = twiddle(n_inv_value, q);
        let last_root = inv.get(1).map_or(1, |w| w.w);
        let last_n_inv = twiddle(modulus.mul(last_root, n_inv_value), q);
        Ok(Self {
            q,
            q_inv_f: 1.0 / q as f64,
            bits,
            barrett: ((1u128 << (63 + bits)) / u128::from(q)) as u64,
            fwd,
            inv,
            n_inv,
            last_n_inv,
        })
    }

    /// Whether this prime takes the floating-point path.
    fn float_path(&self) -> bool {
        self.q < FLOAT_PATH_BOUND
    }

    /// `a · b mod q` for reduced inputs below 2^48: the quotient
    /// `⌊a·b/q⌋ < q` estimated as `⌊(a·b)·(1/q)⌋` in double precision
    /// (relative error below 3·2^−53, so absolute below 1/2: the quotient
    /// or one off either way), the remainder `a·b − est·q` exact in
    /// wrapping arithmetic and in `[−q, 2q)`, then brought to `[0, q)`.
    #[inline(always)]
    fn mul_mod_float(&self, a: u64, b: u64) -> u64 {
        let q = self.q as i64;
        let est = (a as f64 * b as f64 * self.q_inv_f) as u64;
        let r = a.wrapping_mul(b).wrapping_sub(est.wrapping_mul(self.q)) as i64;
        let r = if r < 0 { r + q } else { r };
        (if r >= q { r - q } else { r }) as u64
    }

    /// `a · b mod q` for reduced inputs, by the path `FLOAT` names.
    #[inline(always)]
    fn mul_mod<const FLOAT: bool>(&self, a: u64, b: u64) -> u64 {
        if FLOAT {
            self.mul_mod_float(a, b)
        } else {
            self.mul_mod_barrett(a, b)
        }
    }

    /// `a · b mod q` for reduced inputs, `q < 2^61` of `k` bits: Barrett's
    /// reduction with a Shoup-style quotient. With `x = a·b` (exact, two
    /// words), `x' = ⌊x / 2^(k−1)⌋ < 2^(k+1)` and
    /// `μ = ⌊2^(63+k) / q⌋ < 2^64`, the estimate `hi(x'·μ)` is at most the
    /// quotient `⌊x/q⌋` and at least it less 2 (the truncations: `x/q`
    /// less `2^(k−63) + 1`), and [`mul_hi_approx`] may drop 2 more: the
    /// remainder `x − est·q` is in `[0, 5q)`, below 2^64, exact in the low
    /// word, and three conditional subtractions (`4q`, `2q`, `q`) reduce
    /// it: eight integer products. Used for `q ≥ 2^48` only (smaller
    /// primes take [`Self::mul_mod_float`]), so both shifts are in range.
    #[inline(always)]
    fn mul_mod_barrett(&self, a: u64, b: u64) -> u64 {
        let q = self.q;
        let (lo, hi) = mul_wide(a, b);
        let k1 = self.bits - 1;
        let x1 = (hi << (64 - k1)) | (lo >> k1);
        let est = mul_hi_approx(x1, self.barrett);
        let mut r = lo.wrapping_sub(est.wrapping_mul(q));
        for m in [4 * q, 2 * q, q] {
            if r >= m {
                r -= m;
            }
        }
        r
    }

    /// `acc += a · b` element-wise modulo `q`, inputs reduced.
    pub(crate) fn mul_accumulate(&self, acc: &mut [u64], a: &[u64], b: &[u64]) {
        self.fused::<false>(acc, a, b);
    }

    /// `acc −= a · b` element-wise modulo `q`, inputs reduced.
    pub(crate) fn mul_subtract(&self, acc: &mut [u64], a: &[u64], b: &[u64]) {
        self.fused::<true>(acc, a, b);
    }

    /// `acc ± a · b` (`SUB`: minus) by the product path of this prime.
    fn fused<const SUB: bool>(&self, acc: &mut [u64], a: &[u64], b: &[u64]) {
        debug_assert!(
            acc.len() == a.len() && a.len() == b.len(),
            "vectors of one length"
        );
        if self.float_path() {
            self.fused_with::<true, SUB>(acc, a, b);
        } else {
            self.fused_with::<false, SUB>(acc, a, b);
        }
    }

    fn fused_with<const FLOAT: bool, const SUB: bool>(
        &self,
        acc: &mut [u64],
        a: &[u64],
        b: &[u64],
    ) {
        let q = self.q;
        for ((c, &x), &y) in acc.iter_mut().zip(a).zip(b) {
            let p = self.mul_mod::<FLOAT>(x, y);
            // Both in [0, q): the sum or the difference (plus q) below 2q.
            let s = if SUB { *c + q - p } else { *c + p };
            *c = if s >= q { s - q } else { s };
        }
    }

    /// Forward transform in place, output reduced to `[0, q)`.
    pub(crate) fn forward(&self, a: &mut [u64]) {
        if self.float_path() {
            self.forward_with::<true>(a, 1);
        } else {
            self.forward_with::<false>(a, 1);
        }
    }

    /// The forward transform of a polynomial of small signed coefficients
    /// (`|c| ≤` [`SMALL_SIGNED_MAX`]: a secret, an error, an encryption's
    /// `v`) into `out`. The coefficients are reduced as the first stage
    /// reads them, so they need no pass of their own, and that stage's
    /// products `w·|c|` take one short multiplication for their quotient:
    /// `⌊|c| · ⌊w_shoup / 2^32⌋ / 2^32⌋` is the quotient or one short (the
    /// truncations lose below `|c|/2^32 + |c|/2^64 < 1`), so the remainder
    /// is in `[0, 2q)`. No branch or table index depends on a coefficient
    /// (they are secret). `largest` is `max |c|`; larger than
    /// [`SMALL_SIGNED_MAX`] or `q`, or a length other than the plan's: refused
    /// with `false`, `out` untouched.
    pub(crate) fn forward_small(&self, coeffs: &[i64], largest: u64, out: &mut [u64]) -> bool {
        let n = out.len();
        let q = self.q;
        if largest > SMALL_SIGNED_MAX
            || largest >= q
            || coeffs.len() != n
            || n != self.fwd.len()
            || n < 2
        {
            return false;
        }
        let w = self.fwd.get(1).copied().unwrap_or_else(|| twiddle(1, q));
        let w_hi = w.shoup >> 32;
        let two_q = 2 * q;
        let (lo_c, hi_c) = coeffs.split_at(n / 2);
        let (lo, hi) = out.split_at_mut(n / 2);
        for (((x, y), &c0), &c1) in lo.iter_mut().zip(hi.iter_mut()).zip(lo_c).zip(hi_c) {
            // c0 mod q, c0 + q when negative: in [0, q).
            let u = (c0 as u64).wrapping_add(q & (c0 >> 63) as u64);
            let a = c1.unsigned_abs();
            let r = a
                .wrapping_mul(w.w)
                .wrapping_sub(((a * w_hi) >> 32).wrapping_mul(q));
            // w·c1: r for c1 ≥ 0, 2q − r below, in [0, 2q].
            let neg = (c1 >> 63) as u64;
            let v = r.wrapping_add(neg & two_q.wrapping_sub(2 * r));
            // As the general butterfly's outputs: below 4q.
            *x = u + v;
            *y = u + two_q - v;
        }
        if self.float_path() {
            self.forward_with::<true>(out, 2);
        } else {
            self.forward_with::<false>(out, 2);
        }
        true
    }

    /// The stages from the one with `first` blocks on (`1`: all of them).
    fn forward_with<const FLOAT: bool>(&self, a: &mut [u64], first: usize) {
        debug_assert_eq!(a.len(), self.fwd.len(), "a vector of the plan's length");
        let n = a.len();
        let (q, two_q) = (self.q, 2 * self.q);
        let bf = |x: &mut u64, y: &mut u64, w: Twiddle| {
            let mut u = *x;
            if u >= two_q {
                u -= two_q;
            }
            let v = mul_twiddle::<FLOAT>(*y, w, q);
            *x = u + v;
            *y = u + two_q - v;
        };
        let mut t = n / first;
        let mut m = first;
        while m < n {
            t /= 2;
            let roots = self.fwd.get(m..2 * m).unwrap_or_default();
            if t == 1 {
                // The last stage, its outputs reduced from [0, 4q) to
                // [0, q) as they are made.
                let reduce = |v: u64| {
                    let v = if v >= two_q { v - two_q } else { v };
                    if v >= q {
                        v - q
                    } else {
                        v
                    }
                };
                stage(a, 1, roots, |x, y, w| {
                    bf(x, y, w);
                    *x = reduce(*x);
                    *y = reduce(*y);
                });
                return;
            }
            stage(a, t, roots, bf);
            m *= 2;
        }
        // Only when no stage ran (n = 1).
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
        if self.float_path() {
            self.inverse_lazy::<true>(a, 1);
        } else {
            self.inverse_lazy::<false>(a, 1);
        }
        self.reduce_from_4q(a);
    }

    /// Inverse transform in place with the `1/n` factor, reduced: the
    /// factor is folded into the last stage's two products (`1/n` and
    /// `ψ^-bitrev(1)/n`), which saves a pass over the vector.
    pub(crate) fn inverse(&self, a: &mut [u64]) {
        if self.float_path() {
            self.inverse_with::<true>(a);
        } else {
            self.inverse_with::<false>(a);
        }
    }

    fn inverse_with<const FLOAT: bool>(&self, a: &mut [u64]) {
        self.inverse_lazy::<FLOAT>(a, 2);
        let (q, two_q) = (self.q, 2 * self.q);
        let (x_w, y_w) = (self.n_inv, self.last_n_inv);
        let (lo, hi) = a.split_at_mut(a.len() / 2);
        for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
            let (u, v) = (*x, *y);
            let s = mul_twiddle::<FLOAT>(u + v, x_w, q);
            let d = mul_twiddle::<FLOAT>(u + two_q - v, y_w, q);
            *x = if s >= q { s - q } else { s };
            *y = if d >= q { d - q } else { d };
        }
    }

    /// Gentleman–Sande butterflies of the stages on blocks of more than
    /// `last` values (`1`: all of them), values kept in `[0, 2q)`.
    fn inverse_lazy<const FLOAT: bool>(&self, a: &mut [u64], last: usize) {
        debug_assert_eq!(a.len(), self.inv.len(), "a vector of the plan's length");
        let n = a.len();
        let (q, two_q) = (self.q, 2 * self.q);
        let bf = |x: &mut u64, y: &mut u64, w: Twiddle| {
            let (u, v) = (*x, *y);
            let mut s = u + v;
            if s >= two_q {
                s -= two_q;
            }
            *x = s;
            *y = mul_twiddle::<FLOAT>(u + two_q - v, w, q);
        };
        let mut t = 1;
        let mut m = n;
        while m > last {
            let h = m / 2;
            let roots = self.inv.get(h..m).unwrap_or_default();
            stage(a, t, roots, bf);
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

    /// A `bits`-bit prime for degree `n`, its modulus, `tfhe-ntt`'s plan
    /// and ours on the same `ψ` (the root `tfhe-ntt`'s transform of `X`
    /// puts in slot 0).
    fn plans(n: usize, bits: u32) -> (u64, Modulus, Plan, SplitPlan) {
        let q = crate::modulus::generate_primes(bits, n, 1, &[]).unwrap()[0];
        let m = Modulus::new(q).unwrap();
        let tfhe = Plan::try_new(n, q).unwrap();
        let mut x = vec![0u64; n];
        x[1] = 1;
        tfhe.fwd(&mut x);
        let ours = SplitPlan::new(n, &m, x[0]).unwrap();
        (q, m, tfhe, ours)
    }

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
        // 36 to 48 bits: the floating-point path; 49 and up: Barrett's.
        for bits in [36u32, 40, 47, 48, 49, 50, 60, 61] {
            let (q, _, _, plan) = plans(16, bits);
            let n = 4096;
            let mut a: Vec<u64> = (0..n).map(|_| rng.next_u64() % q).collect();
            let mut b: Vec<u64> = (0..n).map(|_| rng.next_u64() % q).collect();
            a.extend([0, q - 1, q - 1, 1]);
            b.extend([q - 1, q - 1, 1, 0]);
            let acc0: Vec<u64> = (0..a.len()).map(|_| rng.next_u64() % q).collect();
            let mut acc = acc0.clone();
            plan.mul_accumulate(&mut acc, &a, &b);
            let mut diff = acc0.clone();
            plan.mul_subtract(&mut diff, &a, &b);
            for i in 0..a.len() {
                let product = u128::from(a[i]) * u128::from(b[i]) % u128::from(q);
                let want = (u128::from(acc0[i]) + product) % u128::from(q);
                assert_eq!(u128::from(acc[i]), want, "q={q} i={i}");
                let want = (u128::from(acc0[i]) + u128::from(q) - product) % u128::from(q);
                assert_eq!(u128::from(diff[i]), want, "q={q} i={i}: subtracted");
            }
        }
    }

    /// `r` is `x · w mod q`, lazily reduced: below `2q` and congruent.
    fn assert_lazy_product(q: u64, x: u64, w: u64, r: u64) {
        assert!(r < 2 * q, "q={q} x={x} w={w}: {r}");
        assert_eq!(
            u128::from(r) % u128::from(q),
            u128::from(x) * u128::from(w) % u128::from(q),
            "q={q} x={x} w={w}"
        );
    }

    #[test]
    fn float_products_are_reduced_below_2q() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
        for bits in [20u32, 36, 40, 47, 48] {
            let q = crate::modulus::generate_primes(bits, 16, 1, &[]).unwrap()[0];
            assert!(q < FLOAT_PATH_BOUND);
            let mut cases: Vec<(u64, u64)> = (0..50_000)
                .map(|_| (rng.next_u64() % (4 * q), rng.next_u64() % q))
                .collect();
            cases.extend([
                (4 * q - 1, q - 1),
                (0, q - 1),
                (4 * q - 1, 0),
                (q, 1),
                (2 * q, q - 1),
            ]);
            for (x, w) in cases {
                let t = twiddle(w, q);
                assert_lazy_product(q, x, w, mul_float_lazy(x, t.w, t.ratio, q));
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
                assert_lazy_product(q, x, w, mul_shoup_lazy(x, t.w, t.shoup, q));
            }
        }
    }

    /// The transform of small signed coefficients is `tfhe-ntt`'s of their
    /// residues, bit for bit: ternary, Gaussian-sized and the largest
    /// magnitudes allowed, of both signs; out-of-range ones are refused.
    #[test]
    fn small_signed_transform_agrees_with_tfhe_ntt() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(6);
        for (n, bits) in [
            (16usize, 36u32),
            (2048, 40),
            (1024, 48),
            (1024, 49),
            (8192, 60),
            (4096, 61),
        ] {
            let (q, m, tfhe, ours) = plans(n, bits);
            let top = SMALL_SIGNED_MAX as i64;
            let cases: Vec<Vec<i64>> = vec![
                (0..n).map(|_| (rng.next_u64() % 3) as i64 - 1).collect(),
                (0..n).map(|_| (rng.next_u64() % 39) as i64 - 19).collect(),
                (0..n)
                    .map(|_| (rng.next_u64() % (2 * top as u64 + 1)) as i64 - top)
                    .collect(),
                vec![top; n],
                vec![-top; n],
                (0..n)
                    .map(|i| if i % 2 == 0 { top } else { -top })
                    .collect(),
                vec![0; n],
            ];
            for (k, c) in cases.iter().enumerate() {
                let largest = c.iter().map(|v| v.unsigned_abs()).max().unwrap();
                let mut want: Vec<u64> = c.iter().map(|&v| m.reduce_i64(v)).collect();
                tfhe.fwd(&mut want);
                let mut got = vec![7u64; n];
                assert!(
                    ours.forward_small(c, largest, &mut got),
                    "n={n} q={q} case {k}"
                );
                assert_eq!(got, want, "n={n} q={q} case {k}");
            }
            // Refused, the output untouched: too large, or the wrong length.
            let mut out = vec![7u64; n];
            let big = vec![top + 1; n];
            assert!(!ours.forward_small(&big, SMALL_SIGNED_MAX + 1, &mut out));
            assert!(!ours.forward_small(&cases[0][1..], 1, &mut out[1..]));
            assert!(!ours.forward_small(&cases[0][1..], 1, &mut out));
            assert!(out.iter().all(|&v| v == 7));
        }
        // The smallest degrees, where the first stage is all or most of the
        // transform: equal to the general transform of the residues.
        for n in [2usize, 4, 8] {
            let q = crate::modulus::generate_primes(40, n, 1, &[]).unwrap()[0];
            let m = Modulus::new(q).unwrap();
            // ψ: a primitive 2n-th root of unity (ψ^n = −1).
            let psi = (2..q)
                .map(|g| m.pow(g, (q - 1) / (2 * n as u64)))
                .find(|&r| m.pow(r, n as u64) == q - 1)
                .unwrap();
            let plan = SplitPlan::new(n, &m, psi).unwrap();
            let c: Vec<i64> = (0..n as i64)
                .map(|i| [3, -2, 0, 1, -1, 7, -7, 2][i as usize % 8])
                .collect();
            let mut want: Vec<u64> = c.iter().map(|&v| m.reduce_i64(v)).collect();
            plan.forward(&mut want);
            let mut got = vec![0u64; n];
            assert!(plan.forward_small(&c, 7, &mut got), "n={n}");
            assert_eq!(got, want, "n={n}");
        }
        // A prime below the largest magnitude: refused.
        let (q, _, _, ours) = plans(16, 20);
        let mut out = vec![0u64; 16];
        assert!(!ours.forward_small(&[q as i64; 16], q, &mut out));
    }

    /// Bit for bit `tfhe-ntt`'s transforms, at the primes CKKS uses (36 to
    /// 61 bits), on random and extreme inputs.
    #[test]
    fn agrees_with_tfhe_ntt() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
        for (n, bits) in [
            (16usize, 36u32),
            (1024, 40),
            (512, 48),
            (512, 49),
            (8192, 60),
            (4096, 61),
            (2048, 50),
        ] {
            let (q, _, tfhe, ours) = plans(n, bits);
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
