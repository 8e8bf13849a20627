//! The ring context: degree, the ciphertext primes `Q = q_0 … q_L`, the
//! special primes `P = p_0 … p_{k-1}`, their NTT tables and cached
//! automorphism permutations.

use crate::modulus::Modulus;
use crate::ntt::{automorphism_permutation, NttTable};
use crate::RingError;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Shared, immutable description of the RNS ring `Z_{QP}[X]/(X^n + 1)`.
#[derive(Debug)]
pub struct RingContext {
    n: usize,
    q: Vec<NttTable>,
    p: Vec<NttTable>,
    perms: RwLock<HashMap<u64, Arc<Vec<u32>>>>,
}

impl RingContext {
    /// Builds a context for degree `n` over the given primes.
    pub fn new(n: usize, q: &[u64], p: &[u64]) -> Result<Arc<Self>, RingError> {
        if !n.is_power_of_two() || !(16..=1 << 17).contains(&n) {
            return Err(RingError::InvalidDegree(n));
        }
        if q.is_empty() {
            return Err(RingError::EmptyBasis);
        }
        let mut seen = q.to_vec();
        seen.extend_from_slice(p);
        seen.sort_unstable();
        if seen.windows(2).any(|w| w.first() == w.get(1)) {
            return Err(RingError::DuplicateModulus);
        }
        let build = |ms: &[u64]| -> Result<Vec<NttTable>, RingError> {
            ms.iter()
                .map(|&m| NttTable::new(n, Modulus::new(m)?))
                .collect()
        };
        Ok(Arc::new(Self {
            n,
            q: build(q)?,
            p: build(p)?,
            perms: RwLock::new(HashMap::new()),
        }))
    }

    /// Ring degree `n`.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Number of ciphertext primes `L + 1`.
    pub fn q_len(&self) -> usize {
        self.q.len()
    }

    /// Number of special primes.
    pub fn p_len(&self) -> usize {
        self.p.len()
    }

    /// NTT tables of the ciphertext primes.
    pub fn q_tables(&self) -> &[NttTable] {
        &self.q
    }

    /// NTT tables of the special primes.
    pub fn p_tables(&self) -> &[NttTable] {
        &self.p
    }

    /// The ciphertext moduli.
    pub fn q_moduli(&self) -> Vec<Modulus> {
        self.q.iter().map(|t| *t.modulus()).collect()
    }

    /// The special moduli.
    pub fn p_moduli(&self) -> Vec<Modulus> {
        self.p.iter().map(|t| *t.modulus()).collect()
    }

    /// The tables of a polynomial with `q_len` ciphertext limbs and `p_len`
    /// special limbs, in limb order.
    pub fn tables(&self, q_len: usize, p_len: usize) -> impl Iterator<Item = &NttTable> + Clone {
        self.q.iter().take(q_len).chain(self.p.iter().take(p_len))
    }

    /// Checks that a basis shape exists in this context.
    pub fn check_shape(&self, q_len: usize, p_len: usize) -> Result<(), RingError> {
        if q_len == 0 || q_len > self.q.len() || p_len > self.p.len() {
            return Err(RingError::ShapeMismatch);
        }
        Ok(())
    }

    /// Cached NTT-domain permutation for `X -> X^g` (g odd, reduced mod 2n).
    pub fn permutation(&self, g: u64) -> Result<Arc<Vec<u32>>, RingError> {
        let g = g & (2 * self.n as u64 - 1);
        if g.is_multiple_of(2) {
            return Err(RingError::InvalidGaloisElement(g));
        }
        if let Ok(map) = self.perms.read() {
            if let Some(p) = map.get(&g) {
                return Ok(Arc::clone(p));
            }
        }
        let perm = Arc::new(automorphism_permutation(self.n, g));
        if let Ok(mut map) = self.perms.write() {
            map.insert(g, Arc::clone(&perm));
        }
        Ok(perm)
    }
}
