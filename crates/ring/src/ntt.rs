//! Negacyclic NTT over one prime, on top of `tfhe-ntt`'s 64-bit prime plans,
//! plus the slot-index bookkeeping that lets automorphisms `X -> X^g` act
//! directly on NTT-form (evaluation) vectors as permutations.

use crate::modulus::Modulus;
use crate::RingError;
use tfhe_ntt::prime64::Plan;

/// NTT plan for one prime modulus.
#[derive(Clone, Debug)]
pub struct NttTable {
    plan: Plan,
    modulus: Modulus,
    /// In WebAssembly, the transforms without 128-bit products (see
    /// `ntt_split`); `tfhe-ntt` elsewhere.
    #[cfg(target_arch = "wasm32")]
    split: crate::ntt_split::SplitPlan,
}

impl NttTable {
    /// Builds the plan for ring degree `n` (a power of two ≥ 16) and modulus `q ≡ 1 mod 2n`.
    pub fn new(n: usize, modulus: Modulus) -> Result<Self, RingError> {
        let plan = Plan::try_new(n, modulus.value()).ok_or(RingError::NoNttPlan {
            n,
            q: modulus.value(),
        })?;
        #[cfg(target_arch = "wasm32")]
        let split = {
            let mut x = vec![0u64; n];
            if let Some(c) = x.get_mut(1) {
                *c = 1;
            }
            plan.fwd(&mut x);
            crate::ntt_split::SplitPlan::new(n, &modulus, x.first().copied().unwrap_or(0))?
        };
        let table = Self {
            plan,
            modulus,
            #[cfg(target_arch = "wasm32")]
            split,
        };
        table.check_layout()?;
        Ok(table)
    }

    /// The modulus of this table.
    pub fn modulus(&self) -> &Modulus {
        &self.modulus
    }

    /// Forward negacyclic NTT in place (output in bit-reversed evaluation order).
    #[inline]
    pub fn forward(&self, a: &mut [u64]) {
        #[cfg(target_arch = "wasm32")]
        self.split.forward(a);
        #[cfg(not(target_arch = "wasm32"))]
        self.plan.fwd(a);
    }

    /// The forward NTT of signed coefficients `coeffs` (`largest` is
    /// `max |c|`) into `out`, a limb of their length. In WebAssembly small
    /// ones (a secret's, an error's) skip the first stage's products
    /// (`SplitPlan::forward_small`); otherwise they are reduced, then
    /// transformed. The result is the same either way.
    pub(crate) fn forward_from_signed(&self, coeffs: &[i64], largest: u64, out: &mut [u64]) {
        #[cfg(target_arch = "wasm32")]
        if self.split.forward_small(coeffs, largest, out) {
            return;
        }
        self.modulus.reduce_signed_into(coeffs, largest, out);
        self.forward(out);
    }

    /// Inverse negacyclic NTT in place, including the `1/n` normalisation.
    #[inline]
    pub fn inverse(&self, a: &mut [u64]) {
        #[cfg(target_arch = "wasm32")]
        self.split.inverse(a);
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.plan.inv(a);
            self.plan.normalize(a);
        }
    }

    /// `acc += a · b` element-wise modulo the prime (SIMD: AVX-512 IFMA
    /// for primes below 2^50, AVX-512 or AVX2 otherwise). Inputs reduced.
    #[inline]
    pub fn mul_accumulate(&self, acc: &mut [u64], a: &[u64], b: &[u64]) {
        #[cfg(target_arch = "wasm32")]
        self.split.mul_accumulate(acc, a, b);
        #[cfg(not(target_arch = "wasm32"))]
        self.plan.mul_accumulate(acc, a, b);
    }

    /// `acc −= a · b` element-wise modulo the prime, inputs reduced: one
    /// fused pass in WebAssembly; natively `tfhe-ntt`'s vectorized
    /// accumulation between two negations (`−(−acc + a·b)`).
    #[inline]
    pub fn mul_subtract(&self, acc: &mut [u64], a: &[u64], b: &[u64]) {
        #[cfg(target_arch = "wasm32")]
        self.split.mul_subtract(acc, a, b);
        #[cfg(not(target_arch = "wasm32"))]
        {
            let m = &self.modulus;
            acc.iter_mut().for_each(|x| *x = m.neg(*x));
            self.plan.mul_accumulate(acc, a, b);
            acc.iter_mut().for_each(|x| *x = m.neg(*x));
        }
    }

    /// Inverse NTT without the `1/n` factor (callers fold it into a later constant).
    #[inline]
    pub fn inverse_unnormalized(&self, a: &mut [u64]) {
        #[cfg(target_arch = "wasm32")]
        self.split.inverse_unnormalized(a);
        #[cfg(not(target_arch = "wasm32"))]
        self.plan.inv(a);
    }

    /// Checks that slot `j` of the forward transform holds the evaluation at
    /// `psi^(2*bitrev(j)+1)` for a primitive `2n`-th root `psi`, the layout the
    /// automorphism permutations rely on. `tfhe-ntt` documents bit-reversed
    /// output; this turns that promise into a checked invariant.
    fn check_layout(&self) -> Result<(), RingError> {
        let n = self.plan.ntt_size();
        let mut x = vec![0u64; n];
        if let Some(c) = x.get_mut(1) {
            *c = 1;
        }
        self.forward(&mut x);
        let psi = x.first().copied().unwrap_or(0);
        let m = &self.modulus;
        let log_n = n.trailing_zeros();
        for (j, &v) in x.iter().enumerate() {
            let e = 2 * bit_reverse(j, log_n) as u64 + 1;
            if m.pow(psi, e) != v {
                return Err(RingError::NoNttPlan { n, q: m.value() });
            }
        }
        if m.pow(psi, n as u64) != m.value() - 1 {
            return Err(RingError::NoNttPlan { n, q: m.value() });
        }
        Ok(())
    }
}

/// Reverses the lowest `bits` bits of `x`.
#[inline]
pub fn bit_reverse(x: usize, bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        x.reverse_bits() >> (usize::BITS - bits)
    }
}

/// The permutation that applies `X -> X^g` (g odd) to an NTT-form vector:
/// `out[j] = in[perm[j]]`.
pub fn automorphism_permutation(n: usize, g: u64) -> Vec<u32> {
    let log_n = n.trailing_zeros();
    let mask = 2 * n as u64 - 1;
    (0..n)
        .map(|j| {
            let e = 2 * bit_reverse(j, log_n) as u64 + 1;
            let ge = e.wrapping_mul(g) & mask;
            bit_reverse(((ge - 1) / 2) as usize, log_n) as u32
        })
        .collect()
}
