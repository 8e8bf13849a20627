//! The rings Z_2^64 and Z_2^128 and fixed-point encoding.
//!
//! Z2k elements are unsigned integers with wrapping arithmetic; a real
//! number `x` is encoded as `round(x · 2^f)` in two's complement, so values
//! in `[−2^(ℓ−f−1), 2^(ℓ−f−1))` are representable (ℓ = 64 or 128).

use crate::MpcError;
use rand_core::RngCore;
use std::fmt::Debug;

/// The ring Z_2^k (k = `BITS`): wrapping arithmetic on an unsigned integer type, also
/// used bitwise for binary (XOR) sharings.
pub trait Z2k: Copy + Clone + Default + Debug + PartialEq + Eq + Send + Sync + 'static {
    /// k.
    const BITS: u32;
    /// Bytes per element on the wire.
    const BYTES: usize;
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// a + b mod 2^ℓ.
    fn add(self, o: Self) -> Self;
    /// a − b mod 2^ℓ.
    fn sub(self, o: Self) -> Self;
    /// a · b mod 2^ℓ.
    fn mul(self, o: Self) -> Self;
    /// −a mod 2^ℓ.
    fn neg(self) -> Self;
    /// Bitwise XOR.
    fn xor(self, o: Self) -> Self;
    /// Bitwise AND.
    fn and(self, o: Self) -> Self;
    /// Logical left shift.
    fn shl(self, s: u32) -> Self;
    /// Logical right shift.
    fn shr(self, s: u32) -> Self;
    /// Bit `i` as 0 or 1.
    fn bit(self, i: u32) -> Self {
        self.shr(i).and(Self::ONE)
    }
    /// The element of a small signed integer.
    fn from_i64(v: i64) -> Self;
    /// The low 64 bits (reduction mod 2^64).
    fn low_u64(self) -> u64;
    /// The element of a 64-bit word (zero-extended).
    fn from_u64(v: u64) -> Self;
    /// Encodes a real with `frac` fractional bits (saturating at the ring's
    /// range; NaN encodes as 0).
    fn encode(x: f64, frac: u32) -> Self;
    /// Decodes two's complement with `frac` fractional bits.
    fn decode(self, frac: u32) -> f64;
    /// A uniformly random element.
    fn random(rng: &mut dyn RngCore) -> Self;
    /// Appends little-endian bytes.
    fn put(self, out: &mut Vec<u8>);
    /// Reads from exactly [`Z2k::BYTES`] little-endian bytes.
    fn get(bytes: &[u8]) -> Self;
}

macro_rules! impl_ring {
    ($t:ty, $s:ty) => {
        impl Z2k for $t {
            const BITS: u32 = <$t>::BITS;
            const BYTES: usize = std::mem::size_of::<$t>();
            const ZERO: Self = 0;
            const ONE: Self = 1;
            #[inline(always)]
            fn add(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            #[inline(always)]
            fn sub(self, o: Self) -> Self {
                self.wrapping_sub(o)
            }
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
            #[inline(always)]
            fn neg(self) -> Self {
                self.wrapping_neg()
            }
            #[inline(always)]
            fn xor(self, o: Self) -> Self {
                self ^ o
            }
            #[inline(always)]
            fn and(self, o: Self) -> Self {
                self & o
            }
            #[inline(always)]
            fn shl(self, s: u32) -> Self {
                self.checked_shl(s).unwrap_or(0)
            }
            #[inline(always)]
            fn shr(self, s: u32) -> Self {
                self.checked_shr(s).unwrap_or(0)
            }
            fn from_i64(v: i64) -> Self {
                v as $s as $t
            }
            fn low_u64(self) -> u64 {
                self as u64
            }
            fn from_u64(v: u64) -> Self {
                v as $t
            }
            fn encode(x: f64, frac: u32) -> Self {
                // `as` saturates at the signed range and maps NaN to 0.
                (x * (frac as f64).exp2()).round() as $s as $t
            }
            fn decode(self, frac: u32) -> f64 {
                (self as $s) as f64 / (frac as f64).exp2()
            }
            fn random(rng: &mut dyn RngCore) -> Self {
                let mut b = [0u8; std::mem::size_of::<$t>()];
                rng.fill_bytes(&mut b);
                <$t>::from_le_bytes(b)
            }
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(bytes: &[u8]) -> Self {
                let mut b = [0u8; std::mem::size_of::<$t>()];
                let n = b.len().min(bytes.len());
                b[..n].copy_from_slice(&bytes[..n]);
                <$t>::from_le_bytes(b)
            }
        }
    };
}

impl_ring!(u64, i64);
impl_ring!(u128, i128);

/// Serialises ring elements (little-endian, no header).
pub fn to_bytes<R: Z2k>(v: &[R]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * R::BYTES);
    for &x in v {
        x.put(&mut out);
    }
    out
}

/// Parses exactly `n` ring elements sent by `from`; any other length is a
/// [`MpcError::Malformed`].
pub fn from_bytes<R: Z2k>(bytes: &[u8], n: usize, from: usize) -> Result<Vec<R>, MpcError> {
    if Some(bytes.len()) != n.checked_mul(R::BYTES) {
        return Err(MpcError::Malformed {
            from,
            what: format!(
                "expected {n} elements ({} bytes), got {} bytes",
                n.saturating_mul(R::BYTES),
                bytes.len()
            ),
        });
    }
    Ok(bytes.chunks_exact(R::BYTES).map(R::get).collect())
}

/// Fills `out` with uniformly random ring elements from `rng`.
pub fn fill_random<R: Z2k>(rng: &mut dyn RngCore, out: &mut [R]) {
    let mut buf = vec![0u8; out.len() * R::BYTES];
    rng.fill_bytes(&mut buf);
    for (o, c) in out.iter_mut().zip(buf.chunks_exact(R::BYTES)) {
        *o = R::get(c);
    }
}

/// Fixed-point parameters: `frac` fractional bits in the ring `R`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedPoint {
    /// Fractional bits f (a real x is stored as round(x · 2^f)).
    pub frac: u32,
}

impl Default for FixedPoint {
    /// 16 fractional bits: resolution 1.5e-5, products need |x·y| < 2^31
    /// in Z_2^64.
    fn default() -> Self {
        FixedPoint { frac: 16 }
    }
}

impl FixedPoint {
    /// `frac` fractional bits; must leave room for products in `R`
    /// (2·frac + 8 < ℓ).
    pub fn new<R: Z2k>(frac: u32) -> Result<Self, MpcError> {
        if frac == 0 || 2 * frac + 8 >= R::BITS {
            return Err(MpcError::Config(format!(
                "{frac} fractional bits do not fit a {}-bit ring",
                R::BITS
            )));
        }
        Ok(FixedPoint { frac })
    }

    /// Encodes reals.
    pub fn encode<R: Z2k>(&self, x: &[f64]) -> Vec<R> {
        x.iter().map(|&v| R::encode(v, self.frac)).collect()
    }

    /// Decodes ring elements.
    pub fn decode<R: Z2k>(&self, x: &[R]) -> Vec<f64> {
        x.iter().map(|v| v.decode(self.frac)).collect()
    }

    /// One unit in the last place, 2^−f.
    pub fn ulp(&self) -> f64 {
        (-(self.frac as f64)).exp2()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let fp = FixedPoint::default();
        for x in [-3.25, 0.0, 1e-5, 12345.678, -0.5] {
            let e: u64 = u64::encode(x, fp.frac);
            assert!((e.decode(fp.frac) - x).abs() <= fp.ulp() / 2.0 + 1e-12);
            let e: u128 = u128::encode(x, 40);
            assert!((e.decode(40) - x).abs() < 1e-11);
        }
        assert!(matches!(
            FixedPoint::new::<u64>(30),
            Err(MpcError::Config(_))
        ));
        assert!(FixedPoint::new::<u128>(40).is_ok());
        assert_eq!(FixedPoint::default().ulp(), 1.0 / 65536.0);
        assert_eq!(
            FixedPoint::new::<u128>(40).map(|f| f.ulp()).ok(),
            Some(2f64.powi(-40))
        );
    }

    #[test]
    fn bits_are_read_from_the_right() {
        let v: u64 = 0b1010;
        let bits: Vec<u64> = (0..5).map(|i| v.bit(i)).collect();
        assert_eq!(bits, [0, 1, 0, 1, 0]);
        assert_eq!((1u128 << 127).bit(127), 1);
        assert_eq!(u64::MAX.bit(63), 1);
    }

    #[test]
    fn bytes_round_trip_and_length_check() {
        let v: Vec<u128> = vec![1, u128::MAX, 7 << 100];
        let b = to_bytes(&v);
        assert_eq!(from_bytes::<u128>(&b, 3, 1).ok(), Some(v));
        assert!(from_bytes::<u128>(&b[1..], 3, 1).is_err());
        assert!(from_bytes::<u64>(&b, usize::MAX, 1).is_err());
    }
}
