#![doc = include_str!("../README.md")]
//!
//! ## Modules
//!
//! * [`Modulus`]: Barrett and Shoup modular arithmetic for primes below 2^61,
//!   and [`generate_primes`] for NTT-friendly primes `q ≡ 1 (mod 2n)`.
//! * [`RingContext`] and [`RnsPoly`]: polynomials of `Z_{QP}[X]/(X^n+1)` in
//!   residue-number-system form, in coefficient or NTT form (NTT through
//!   `tfhe-ntt`'s 64-bit prime plans).
//! * [`basis`]: fast basis conversion, ModUp / ModDown of hybrid key switching.
//! * [`sampler`]: seeded uniform, ternary, constant-time discrete Gaussian.
//!
//! Limb-level work runs on the current `rayon` pool; use [`with_threads`] to
//! pin a computation to a given number of threads (1 for fair single-thread
//! comparisons).
//!
//! The functions here are the hot loops of the scheme; they are the seam
//! where an accelerated backend (GPU kernels) plugs in later.

pub mod basis;
// Compiled everywhere (its tests compare it with rand_chacha natively);
// used in WebAssembly only.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod chacha;
pub mod context;
pub mod modulus;
pub mod ntt;
// Compiled everywhere (its tests compare it with tfhe-ntt natively); used
// in WebAssembly only.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod ntt_split;
pub mod poly;
pub mod sampler;

pub use context::RingContext;
pub use modulus::{generate_primes, is_prime, Modulus, MAX_MODULUS_BITS};
pub use poly::RnsPoly;

/// The known-answer checks of the SIMD128 kernels of WebAssembly builds
/// (ChaCha20's four-block function and the Gaussian sampler's two-lane
/// table scan) against their portable forms: run before any key is made
/// there, since a fault would go unseen (keys that still work, from the
/// wrong distribution or the wrong public `a`). Natively the portable forms
/// are compared with themselves.
pub fn simd_self_test() -> bool {
    chacha::self_test() && sampler::cdt_self_test()
}

/// Errors of the ring layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// The value is not an odd prime below 2^61.
    #[error("{0} is not an odd prime below 2^61")]
    InvalidModulus(u64),
    /// Not enough primes of the requested shape exist.
    #[error("cannot find {count} distinct {bits}-bit primes congruent to 1 mod {}", 2 * n)]
    NoPrimes {
        /// Bit size requested.
        bits: u32,
        /// Ring degree.
        n: usize,
        /// Number requested.
        count: usize,
    },
    /// `tfhe-ntt` has no plan for this degree and modulus.
    #[error("no negacyclic NTT of size {n} modulo {q}")]
    NoNttPlan {
        /// Ring degree.
        n: usize,
        /// Modulus.
        q: u64,
    },
    /// The ring degree is not a supported power of two.
    #[error("ring degree {0} is not a power of two in [16, 2^17]")]
    InvalidDegree(usize),
    /// A basis has no primes.
    #[error("empty RNS basis")]
    EmptyBasis,
    /// Two primes of the basis are equal.
    #[error("duplicate modulus in the RNS basis")]
    DuplicateModulus,
    /// Operands have different shapes or representations.
    #[error("polynomial shapes or representations do not match")]
    ShapeMismatch,
    /// The operation needs NTT form.
    #[error("operation requires NTT form")]
    NotNtt,
    /// A residue is not reduced modulo its prime.
    #[error("coefficient out of range for its modulus")]
    CoefficientOutOfRange,
    /// A value has no inverse modulo the prime.
    #[error("value is not invertible")]
    NotInvertible,
    /// The operating system could not supply randomness.
    #[error("operating-system randomness unavailable: {0}")]
    Rng(String),
    /// Automorphisms need an odd exponent.
    #[error("galois element {0} is not odd")]
    InvalidGaloisElement(u64),
    /// The thread pool could not be built.
    #[error("thread pool: {0}")]
    ThreadPool(String),
}

/// Runs `f` on a dedicated rayon pool of `threads` threads, so that all
/// limb-parallel work inside it uses exactly that many threads.
pub fn with_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> Result<T, RingError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| RingError::ThreadPool(e.to_string()))?;
    Ok(pool.install(f))
}
