//! Correlated randomness without a dealer: pairwise PRF keys.
//!
//! Party `i` draws a 32-byte key `k_i` from the operating system's CSPRNG
//! and gives it to party `i − 1`, so party `i` holds `(k_i, k_{i+1})` — the
//! same pattern as its shares `(x_i, x_{i+1})`. ChaCha20 keyed with `k_j`
//! then yields values known exactly to parties `j − 1` and `j`:
//!
//! * a random replicated sharing `r = Σ_j F(k_j)` (party `i` computes its
//!   pair `(F(k_i), F(k_{i+1}))` locally);
//! * a zero sharing `α_i = F(k_i) − F(k_{i+1})` (Σ α_i = 0), which masks the
//!   three-out-of-three shares of a product before resharing.
//!
//! Each operation that needs randomness opens fresh ChaCha20 streams
//! numbered by a per-session counter; all parties run the same program, so
//! both holders of a key draw the same values.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::fmt;
use zeroize::Zeroizing;

/// A 32-byte PRF key, zeroized on drop.
pub type Key = Zeroizing<[u8; 32]>;

/// A fresh key from the operating system's CSPRNG.
pub fn fresh_key() -> Result<Key, crate::MpcError> {
    let mut k = Zeroizing::new([0u8; 32]);
    cipherflow_ring::sampler::secure_rng()
        .map_err(|e| crate::MpcError::Config(e.to_string()))?
        .fill_bytes(k.as_mut());
    Ok(k)
}

/// Party `i`'s two keys `(k_i, k_{i+1})` and the stream counter.
pub struct PairwiseKeys {
    own: Key,
    next: Key,
    counter: u64,
}

impl fmt::Debug for PairwiseKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PairwiseKeys {{ <redacted>, counter: {} }}",
            self.counter
        )
    }
}

impl PairwiseKeys {
    /// Keys `k_i` (own) and `k_{i+1}` (received from the next party).
    pub fn new(own: Key, next: Key) -> Self {
        PairwiseKeys {
            own,
            next,
            counter: 0,
        }
    }

    /// Fresh streams `(F(k_i), F(k_{i+1}))` for one operation.
    ///
    /// The ChaCha20 state holds the key while in use; `rand_chacha` does not
    /// zeroize it on drop (the long-lived copies here are).
    pub(crate) fn streams(&mut self) -> (ChaCha20Rng, ChaCha20Rng) {
        let mut a = ChaCha20Rng::from_seed(*self.own);
        let mut b = ChaCha20Rng::from_seed(*self.next);
        a.set_stream(self.counter);
        b.set_stream(self.counter);
        self.counter = self.counter.wrapping_add(1);
        (a, b)
    }
}
