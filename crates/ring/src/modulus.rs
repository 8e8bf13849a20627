//! Word-size modular arithmetic: Barrett reduction of 128-bit products,
//! Shoup multiplication by precomputed constants, and NTT-friendly primes.
//!
//! Every modulus handled here is an odd prime below 2^62, so sums of two
//! residues never overflow a `u64` and products fit a `u128` with room for
//! lazy accumulation of up to 16 products.

use crate::RingError;

/// Largest supported modulus bit width (`q < 2^61` keeps 16 lazy products
/// inside a `u128` and satisfies the 62-bit fast path of `tfhe-ntt`).
pub const MAX_MODULUS_BITS: u32 = 61;

/// Whether [`mul_hi`] approximates: in WebAssembly, which has no 64-bit
/// multiply-high (a `u128` product there is a call of the compiler's
/// `__multi3`).
const APPROX_HI: bool = cfg!(target_arch = "wasm32");

/// The high word of `a · b`: exact, or (`APPROX`) from three 32×32-bit
/// products without the carries between them, up to two short.
#[inline(always)]
fn mul_hi<const APPROX: bool>(a: u64, b: u64) -> u64 {
    if APPROX {
        crate::ntt_split::mul_hi_approx(a, b)
    } else {
        ((u128::from(a) * u128::from(b)) >> 64) as u64
    }
}

/// A prime modulus with its precomputed reduction constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Modulus {
    q: u64,
    bits: u32,
    /// `floor(2^128 / q)`, high word.
    mu_hi: u64,
    /// `floor(2^128 / q)`, low word.
    mu_lo: u64,
    /// `floor(2^(2·bits) / q)` for the single-word Barrett of products.
    mu_short: u64,
}

impl Modulus {
    /// Wraps `q`; it must be an odd prime of at most [`MAX_MODULUS_BITS`] bits.
    pub fn new(q: u64) -> Result<Self, RingError> {
        if q < 3 || q >> MAX_MODULUS_BITS != 0 || !is_prime(q) {
            return Err(RingError::InvalidModulus(q));
        }
        // floor(2^128 / q) = floor((2^128 - 1) / q) because q is odd and > 1.
        let mu = u128::MAX / u128::from(q);
        let bits = 64 - q.leading_zeros();
        Ok(Self {
            q,
            bits,
            mu_hi: (mu >> 64) as u64,
            mu_lo: mu as u64,
            mu_short: ((1u128 << (2 * bits)) / u128::from(q)) as u64,
        })
    }

    /// The modulus value.
    #[inline(always)]
    pub const fn value(&self) -> u64 {
        self.q
    }

    /// Bit length of the modulus.
    #[inline(always)]
    pub const fn bits(&self) -> u32 {
        self.bits
    }

    /// `(a + b) mod q` for reduced inputs.
    #[inline(always)]
    pub fn add(&self, a: u64, b: u64) -> u64 {
        let s = a + b;
        s.min(s.wrapping_sub(self.q))
    }

    /// `(a - b) mod q` for reduced inputs.
    #[inline(always)]
    pub fn sub(&self, a: u64, b: u64) -> u64 {
        let d = a.wrapping_sub(b);
        d.min(d.wrapping_add(self.q))
    }

    /// `-a mod q` for a reduced input.
    #[inline(always)]
    pub fn neg(&self, a: u64) -> u64 {
        if a == 0 {
            0
        } else {
            self.q - a
        }
    }

    /// Reduces any 128-bit value modulo `q` (Barrett with a two-word constant).
    #[inline(always)]
    pub fn reduce_u128(&self, x: u128) -> u64 {
        let x0 = x as u64;
        let x1 = (x >> 64) as u64;
        // Exact floor(x * mu / 2^128).
        let lo_lo = (u128::from(x0) * u128::from(self.mu_lo)) >> 64;
        let t1 = u128::from(x0) * u128::from(self.mu_hi);
        let t2 = u128::from(x1) * u128::from(self.mu_lo);
        let mid = lo_lo + u128::from(t1 as u64) + u128::from(t2 as u64);
        let qhat = (u128::from(x1) * u128::from(self.mu_hi))
            .wrapping_add(t1 >> 64)
            .wrapping_add(t2 >> 64)
            .wrapping_add(mid >> 64) as u64;
        // The estimate is at most one below the true quotient.
        let r = x0.wrapping_sub(qhat.wrapping_mul(self.q));
        r.min(r.wrapping_sub(self.q))
    }

    /// Reduces a 64-bit value modulo `q`.
    #[inline(always)]
    pub fn reduce(&self, x: u64) -> u64 {
        self.reduce_with::<APPROX_HI>(x)
    }

    /// [`Self::reduce`] by Barrett's quotient `hi(x · ⌊2^64/q⌋)`, at most
    /// one short (`x/2^64 < 1`), three with an approximate high half: the
    /// remainder, below `4q`, takes two branch-free corrections.
    #[inline(always)]
    fn reduce_with<const APPROX: bool>(&self, x: u64) -> u64 {
        // mu_hi = ⌊⌊2^128/q⌋ / 2^64⌋ = ⌊2^64/q⌋.
        let qhat = mul_hi::<APPROX>(x, self.mu_hi);
        let r = x.wrapping_sub(qhat.wrapping_mul(self.q));
        let r = r.min(r.wrapping_sub(2 * self.q));
        r.min(r.wrapping_sub(self.q))
    }

    /// Reduces a signed value modulo `q` into `[0, q)`.
    #[inline(always)]
    pub fn reduce_i64(&self, x: i64) -> u64 {
        let r = self.reduce(x.unsigned_abs());
        // Branch-free conditional negation (x may be secret noise).
        let neg_mask = 0u64.wrapping_sub((x < 0) as u64);
        let negated = (self.q - r) & 0u64.wrapping_sub((r != 0) as u64);
        (negated & neg_mask) | (r & !neg_mask)
    }

    /// `coeffs` reduced into `out` (`largest` is `max |c|`): below `q`
    /// without a division or a branch on a coefficient.
    pub(crate) fn reduce_signed_into(&self, coeffs: &[i64], largest: u64, out: &mut [u64]) {
        let q = self.q;
        if largest < q {
            for (d, &c) in out.iter_mut().zip(coeffs) {
                // c + q when negative, c otherwise.
                *d = (c as u64).wrapping_add(q & (c >> 63) as u64);
            }
        } else {
            for (d, &c) in out.iter_mut().zip(coeffs) {
                *d = self.reduce_i64(c);
            }
        }
    }

    /// `(a * b) mod q` for reduced inputs (classical Barrett, HAC 14.42:
    /// one 64×64 product for the quotient estimate, at most two corrections).
    #[inline(always)]
    pub fn mul(&self, a: u64, b: u64) -> u64 {
        self.reduce_product(u128::from(a) * u128::from(b))
    }

    /// Reduces `x < q^2` (a product of two reduced residues).
    #[inline(always)]
    pub fn reduce_product(&self, x: u128) -> u64 {
        let q1 = (x >> (self.bits - 1)) as u64;
        let q3 = ((u128::from(q1) * u128::from(self.mu_short)) >> (self.bits + 1)) as u64;
        let r = (x as u64).wrapping_sub(q3.wrapping_mul(self.q));
        // Branch-free corrections: `min` picks r − q exactly when r ≥ q.
        let r = r.min(r.wrapping_sub(self.q));
        r.min(r.wrapping_sub(self.q))
    }

    /// Shoup constant `floor(w * 2^64 / q)` for repeated multiplication by `w`.
    #[inline(always)]
    pub fn shoup(&self, w: u64) -> u64 {
        ((u128::from(w) << 64) / u128::from(self.q)) as u64
    }

    /// `(a * w) mod q` with the Shoup constant `w_shoup = self.shoup(w)`.
    #[inline(always)]
    pub fn mul_shoup(&self, a: u64, w: u64, w_shoup: u64) -> u64 {
        self.mul_shoup_with::<APPROX_HI>(a, w, w_shoup)
    }

    /// [`Self::mul_shoup`]: the quotient `hi(a · w_shoup)` is at most one
    /// short, three with an approximate high half, so the remainder is
    /// below `4q` before two corrections.
    #[inline(always)]
    fn mul_shoup_with<const APPROX: bool>(&self, a: u64, w: u64, w_shoup: u64) -> u64 {
        let qhat = mul_hi::<APPROX>(a, w_shoup);
        let r = a.wrapping_mul(w).wrapping_sub(qhat.wrapping_mul(self.q));
        let r = r.min(r.wrapping_sub(2 * self.q));
        r.min(r.wrapping_sub(self.q))
    }

    /// `a^e mod q`.
    pub fn pow(&self, mut a: u64, mut e: u64) -> u64 {
        let mut r = 1u64;
        a = self.reduce(a);
        while e > 0 {
            if e & 1 == 1 {
                r = self.mul(r, a);
            }
            a = self.mul(a, a);
            e >>= 1;
        }
        r
    }

    /// Multiplicative inverse of `a` (which must be non-zero modulo the prime `q`).
    pub fn inv(&self, a: u64) -> Result<u64, RingError> {
        let a = self.reduce(a);
        if a == 0 {
            return Err(RingError::NotInvertible);
        }
        Ok(self.pow(a, self.q - 2))
    }

    /// Lifts a residue to the centered representative in `(-q/2, q/2]`.
    #[inline(always)]
    pub fn center(&self, a: u64) -> i64 {
        if a > self.q / 2 {
            -((self.q - a) as i64)
        } else {
            a as i64
        }
    }
}

/// Deterministic Miller–Rabin primality test for 64-bit integers.
pub fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    for p in [2u64, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37] {
        if n.is_multiple_of(p) {
            return n == p;
        }
    }
    let mulmod = |a: u64, b: u64| ((u128::from(a) * u128::from(b)) % u128::from(n)) as u64;
    let powmod = |mut a: u64, mut e: u64| {
        let mut r = 1u64;
        while e > 0 {
            if e & 1 == 1 {
                r = mulmod(r, a);
            }
            a = mulmod(a, a);
            e >>= 1;
        }
        r
    };
    let s = (n - 1).trailing_zeros();
    let d = (n - 1) >> s;
    // These bases are a proven deterministic set for all n < 2^64.
    'witness: for a in [2u64, 325, 9375, 28178, 450775, 9780504, 1795265022] {
        let a = a % n;
        if a == 0 {
            continue;
        }
        let mut x = powmod(a, d);
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mulmod(x, x);
            if x == n - 1 {
                continue 'witness;
            }
        }
        return false;
    }
    true
}

/// Generates `count` distinct primes of exactly `bits` bits with
/// `q ≡ 1 (mod 2n)`, the largest such primes that are not in `exclude`,
/// in decreasing order.
pub fn generate_primes(
    bits: u32,
    n: usize,
    count: usize,
    exclude: &[u64],
) -> Result<Vec<u64>, RingError> {
    let two_n = 2 * n as u64;
    if !(10..=MAX_MODULUS_BITS).contains(&bits) || !n.is_power_of_two() || two_n >= 1u64 << bits {
        return Err(RingError::NoPrimes { bits, n, count });
    }
    let lower = 1u64 << (bits - 1);
    // Largest candidate < 2^bits congruent to 1 mod 2n.
    let mut cand = (1u64 << bits) - two_n + 1;
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        if cand <= lower {
            return Err(RingError::NoPrimes { bits, n, count });
        }
        if is_prime(cand) && !exclude.contains(&cand) {
            out.push(cand);
        }
        cand -= two_n;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn barrett_and_shoup_match_u128() {
        let q = generate_primes(61, 1 << 16, 1, &[]).unwrap()[0];
        let m = Modulus::new(q).unwrap();
        let mut x = 0x1234_5678_9abc_def1u64;
        for _ in 0..10_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let a = x % q;
            let b = x.rotate_left(17) % q;
            let want = ((u128::from(a) * u128::from(b)) % u128::from(q)) as u64;
            assert_eq!(m.mul(a, b), want);
            assert_eq!(
                m.mul(q - 1, q - 1 - (a & 0xff)),
                ((u128::from(q - 1) * u128::from(q - 1 - (a & 0xff))) % u128::from(q)) as u64
            );
            assert_eq!(m.mul_shoup(a, b, m.shoup(b)), want);
            let big = (u128::from(x) << 64) | u128::from(x.rotate_left(7));
            assert_eq!(m.reduce_u128(big), (big % u128::from(q)) as u64);
        }
        assert_eq!(m.reduce_u128(u128::MAX), (u128::MAX % u128::from(q)) as u64);
    }

    /// Word reduction and Shoup products are exact with the exact high
    /// half (native) and the approximate one (WebAssembly), for every
    /// word, at small and large primes, at and around multiples of `q`.
    #[test]
    fn word_reduction_and_shoup_are_exact_both_ways() {
        let mut x = 0x0fed_cba9_8765_4321u64;
        for q in [3u64, 5, 65_537, (1 << 31) - 1]
            .into_iter()
            .chain([36u32, 40, 50, 60, 61].map(|b| generate_primes(b, 16, 1, &[]).unwrap()[0]))
        {
            let m = Modulus::new(q).unwrap();
            let mut words = vec![
                0,
                1,
                q - 1,
                q,
                q + 1,
                2 * q,
                4 * q - 1,
                u64::MAX,
                u64::MAX - 1,
            ];
            for _ in 0..20_000 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let k = x % (u64::MAX / q);
                words.extend([x, k * q, (k * q).wrapping_sub(1), k * q + 1, x >> (x % 64)]);
            }
            for &v in &words {
                assert_eq!(m.reduce_with::<false>(v), v % q, "q={q} x={v}");
                assert_eq!(m.reduce_with::<true>(v), v % q, "q={q} x={v}, approximate");
                let (a, w) = (v, v.rotate_left(23) % q);
                let want = ((u128::from(a) * u128::from(w)) % u128::from(q)) as u64;
                let ws = m.shoup(w);
                assert_eq!(m.mul_shoup_with::<false>(a, w, ws), want, "q={q} {a}·{w}");
                assert_eq!(
                    m.mul_shoup_with::<true>(a, w, ws),
                    want,
                    "q={q} {a}·{w}, approximate"
                );
                for w in [0, 1, q - 1] {
                    let want = ((u128::from(a) * u128::from(w)) % u128::from(q)) as u64;
                    assert_eq!(m.mul_shoup_with::<true>(a, w, m.shoup(w)), want);
                }
            }
        }
    }

    #[test]
    fn primes_have_requested_shape() {
        let ps = generate_primes(40, 1 << 13, 5, &[]).unwrap();
        for p in &ps {
            assert_eq!(64 - p.leading_zeros(), 40);
            assert_eq!(p % (1 << 14), 1);
            assert!(is_prime(*p));
        }
        let more = generate_primes(40, 1 << 13, 2, &ps).unwrap();
        assert!(more.iter().all(|p| !ps.contains(p)));
        assert!(!is_prime(561) && !is_prime(3_215_031_751) && is_prime(2_305_843_009_213_693_951));
    }

    #[test]
    fn signed_reduction_and_inverse() {
        let m = Modulus::new(generate_primes(50, 1024, 1, &[]).unwrap()[0]).unwrap();
        assert_eq!(m.reduce_i64(-1), m.value() - 1);
        assert_eq!(m.reduce_i64(0), 0);
        assert_eq!(m.reduce_i64(5), 5);
        let a = 123_456_789;
        assert_eq!(m.mul(a, m.inv(a).unwrap()), 1);
        assert!(m.inv(0).is_err());
        assert_eq!(m.center(m.value() - 3), -3);
    }
}
