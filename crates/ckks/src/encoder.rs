//! The CKKS encoder: the canonical embedding through a special FFT.
//!
//! Slot `j` holds the evaluation of the plaintext polynomial at
//! `ζ^(5^j)`, `ζ = exp(iπ/N)`. Writing the real coefficients as
//! `w_k = m_k + i·m_{k+N/2}` (k < N/2) gives, because `ζ^(5^j·N/2) = i`,
//! `z_j = Σ_k w_k ζ^(5^j k) = Σ_k (w_k ζ^k) ω^(k t_j)` with `ω = ζ^4` and
//! `t_j = (5^j - 1)/4 mod N/2`. Encoding and decoding are therefore one
//! complex FFT of size `N/2`, a twist by `ζ^k` and the slot permutation `t_j`.
//! Rotating slots left by `r` is the automorphism `X -> X^(5^r)`.

use crate::error::CkksError;
use crate::params::CkksParams;
use cipherflow_ring::RnsPoly;
use num_complex::Complex64;
use rustfft::{Fft, FftDirection, FftPlanner};
use std::f64::consts::PI;
use std::sync::Arc;

/// An encoded (not encrypted) message: a polynomial in NTT form at some
/// level, with the scale its slots were multiplied by.
#[derive(Clone, Debug, PartialEq)]
pub struct Plaintext {
    pub(crate) poly: RnsPoly,
    pub(crate) scale: f64,
}

impl Plaintext {
    /// Level (number of primes − 1).
    pub fn level(&self) -> usize {
        self.poly.q_len() - 1
    }

    /// Scale of the encoding.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The underlying polynomial (NTT form).
    pub fn poly(&self) -> &RnsPoly {
        &self.poly
    }
}

/// The two complex FFTs of size `N/2` (rustfft's plans: SIMD kernels,
/// several times faster than a textbook radix-2 loop at N = 2^13).
#[derive(Clone)]
struct Ffts {
    /// `a_k ↦ Σ_j a_j ω^{jk}`, `ω = exp(2πi/M)` (decoding).
    positive: Arc<dyn Fft<f64>>,
    /// `a_k ↦ Σ_j a_j ω^{−jk}` (encoding; no `1/M`).
    negative: Arc<dyn Fft<f64>>,
}

impl std::fmt::Debug for Ffts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ffts({})", self.positive.len())
    }
}

/// Encoder/decoder for a parameter set.
#[derive(Clone, Debug)]
pub struct Encoder {
    params: CkksParams,
    /// `ζ^k`, k < N/2.
    twist: Vec<Complex64>,
    ffts: Ffts,
    /// `t_j` for each slot j.
    slot_index: Vec<usize>,
}

impl Encoder {
    /// Precomputes the tables for `params`.
    pub fn new(params: &CkksParams) -> Self {
        let n = params.n();
        let m = n / 2;
        let two_n = 2 * n as u64;
        let twist = (0..m)
            .map(|k| Complex64::from_polar(1.0, PI * k as f64 / n as f64))
            .collect();
        let mut planner = FftPlanner::new();
        // rustfft's inverse direction is `exp(+2πi jk/M)`, unnormalized.
        let ffts = Ffts {
            positive: planner.plan_fft(m, FftDirection::Inverse),
            negative: planner.plan_fft(m, FftDirection::Forward),
        };
        let mut slot_index = Vec::with_capacity(m);
        let mut g = 1u64;
        for _ in 0..m {
            slot_index.push(((g - 1) / 4) as usize);
            g = (g * 5) % two_n;
        }
        Self {
            params: params.clone(),
            twist,
            ffts,
            slot_index,
        }
    }

    /// Number of slots (`N/2`).
    pub fn slots(&self) -> usize {
        self.twist.len()
    }

    /// In-place FFT of size N/2 with `ω^{jk}` (`inverse`: `ω^{−jk}`), no
    /// `1/M`.
    fn fft(&self, a: &mut [Complex64], inverse: bool) {
        if inverse {
            self.ffts.negative.process(a);
        } else {
            self.ffts.positive.process(a);
        }
    }

    /// Real coefficients (already multiplied by the scale) of the polynomial
    /// whose slots are `values`.
    fn embed_inverse(&self, values: &[Complex64], scale: f64) -> Result<Vec<f64>, CkksError> {
        let m = self.slots();
        if values.len() > m {
            return Err(CkksError::TooManyValues {
                given: values.len(),
                slots: m,
            });
        }
        if !scale.is_finite() || scale <= 0.0 {
            return Err(CkksError::ValueOutOfRange(format!("scale {scale}")));
        }
        let mut a = vec![Complex64::default(); m];
        for (v, &t) in values.iter().zip(&self.slot_index) {
            if !v.re.is_finite() || !v.im.is_finite() {
                return Err(CkksError::ValueOutOfRange("non-finite value".into()));
            }
            if let Some(x) = a.get_mut(t) {
                *x = *v;
            }
        }
        self.fft(&mut a, true);
        let f = scale / m as f64;
        let mut coeffs = vec![0.0; 2 * m];
        let (lo, hi) = coeffs.split_at_mut(m);
        for (((x, tw), l), h) in a.iter().zip(&self.twist).zip(lo).zip(hi) {
            let w = x * tw.conj() * f;
            *l = w.re;
            *h = w.im;
        }
        Ok(coeffs)
    }

    /// Encodes complex `values` (at most `N/2`, zero-padded) at `level` and `scale`.
    pub fn encode_complex(
        &self,
        values: &[Complex64],
        level: usize,
        scale: f64,
    ) -> Result<Plaintext, CkksError> {
        if level > self.params.max_level() {
            return Err(CkksError::InvalidLevel(level));
        }
        let coeffs = self.embed_inverse(values, scale)?;
        let poly = self.coeffs_to_poly(&coeffs, level + 1)?;
        Ok(Plaintext { poly, scale })
    }

    /// Encodes real `values` at `level` and `scale`.
    pub fn encode(&self, values: &[f64], level: usize, scale: f64) -> Result<Plaintext, CkksError> {
        let c: Vec<Complex64> = values.iter().map(|&x| Complex64::new(x, 0.0)).collect();
        self.encode_complex(&c, level, scale)
    }

    /// Encodes real `values` at the top level and the default scale.
    pub fn encode_default(&self, values: &[f64]) -> Result<Plaintext, CkksError> {
        self.encode(values, self.params.max_level(), self.params.default_scale())
    }

    /// [`Encoder::encode_default`] left in coefficient form, for the
    /// encryptor, which adds it inside its own transforms
    /// ([`crate::Encryptor::encrypt_values`]); never handed out (every
    /// other operation takes NTT form).
    pub(crate) fn encode_default_coefficients(
        &self,
        values: &[f64],
    ) -> Result<Plaintext, CkksError> {
        let c: Vec<Complex64> = values.iter().map(|&x| Complex64::new(x, 0.0)).collect();
        let scale = self.params.default_scale();
        let coeffs = self.embed_inverse(&c, scale)?;
        let poly = self.coeffs_to_coefficients(&coeffs, self.params.max_level() + 1)?;
        Ok(Plaintext { poly, scale })
    }

    /// Rounds scaled real coefficients into an NTT-form RNS polynomial.
    fn coeffs_to_poly(&self, coeffs: &[f64], q_len: usize) -> Result<RnsPoly, CkksError> {
        let mut poly = self.coeffs_to_coefficients(coeffs, q_len)?;
        poly.ntt_forward(self.params.ring());
        Ok(poly)
    }

    /// Rounds scaled real coefficients into a coefficient-form RNS polynomial.
    fn coeffs_to_coefficients(&self, coeffs: &[f64], q_len: usize) -> Result<RnsPoly, CkksError> {
        let ring = self.params.ring();
        let limit = 2f64.powi(126);
        if coeffs.iter().any(|c| !c.is_finite() || c.abs() >= limit) {
            return Err(CkksError::ValueOutOfRange(
                "scaled coefficient exceeds 2^126".into(),
            ));
        }
        // Ties to even: one instruction in WebAssembly, where `round` (ties
        // away from zero) is a call.
        if coeffs.iter().all(|c| c.abs() < 2f64.powi(62)) {
            let rounded: Vec<i64> = coeffs.iter().map(|c| c.round_ties_even() as i64).collect();
            return Ok(RnsPoly::from_signed(ring, &rounded, q_len, 0));
        }
        let mut poly = RnsPoly::zero(ring, q_len, 0, false);
        for (i, t) in ring.q_tables().iter().take(q_len).enumerate() {
            let q = i128::from(t.modulus().value());
            for (d, &c) in poly.limb_mut(i).iter_mut().zip(coeffs) {
                *d = (c.round_ties_even() as i128).rem_euclid(q) as u64;
            }
        }
        Ok(poly)
    }

    /// Centered integer coefficients of `poly` (coefficient form) as floats,
    /// by CRT over the first two primes, checked against the third: a value
    /// too large to reconstruct is an error, never silent garbage.
    pub(crate) fn poly_to_coeffs(&self, poly: &RnsPoly) -> Result<Vec<f64>, CkksError> {
        let ring = self.params.ring();
        let tables = ring.q_tables();
        let (Some(t0), Some(l0)) = (tables.first(), poly.limbs().next()) else {
            return Err(CkksError::InvalidLevel(0));
        };
        let m0 = t0.modulus();
        if poly.q_len() == 1 {
            return Ok(l0.iter().map(|&x| m0.center(x) as f64).collect());
        }
        let (Some(t1), Some(l1)) = (tables.get(1), poly.limbs().nth(1)) else {
            return Err(CkksError::InvalidLevel(1));
        };
        let m1 = t1.modulus();
        let q0 = u128::from(m0.value());
        let big_q = q0 * u128::from(m1.value());
        let q0_inv = m1.inv(m0.value())?;
        let check = tables.get(2).zip(poly.limbs().nth(2));
        let odd = |q: u64| Divides::new(q).ok_or(CkksError::InvalidLevel(0));
        let d1 = odd(m1.value())?;
        let d2 = match check {
            Some((t2, _)) => Some(odd(t2.modulus().value())?),
            None => None,
        };
        let mut out = Vec::with_capacity(poly.n());
        for (k, (&x0, &x1)) in l0.iter().zip(l1).enumerate() {
            // The usual case, in 64-bit arithmetic (128-bit operations are
            // library calls in WebAssembly): a value below q0/2 in
            // magnitude is x0 centered, when it agrees with the second
            // prime's residue (and the third's).
            let c = m0.center(x0);
            if d1.congruent(x1, c)
                && check
                    .zip(d2)
                    .is_none_or(|((_, l2), d2)| l2.get(k).is_some_and(|&x2| d2.congruent(x2, c)))
            {
                out.push(c as f64);
                continue;
            }
            let t = m1.mul(m1.sub(x1, m1.reduce(x0)), q0_inv);
            let x = u128::from(x0) + q0 * u128::from(t);
            let centered: i128 = if x > big_q / 2 {
                -((big_q - x) as i128)
            } else {
                x as i128
            };
            if let Some((t2, l2)) = check {
                // `centered mod q2` without a 128-bit division.
                let m2 = t2.modulus();
                let r = m2.reduce_u128(centered.unsigned_abs());
                let r = if centered < 0 { m2.neg(r) } else { r };
                if l2.get(k).copied() != Some(r) {
                    return Err(CkksError::ValueOutOfRange(
                        "decrypted coefficient exceeds the decoder's 2^120 range".into(),
                    ));
                }
            }
            out.push(centered as f64);
        }
        Ok(out)
    }

    /// Slots of the polynomial with (unscaled, centered) coefficients `coeffs`, divided by `scale`.
    pub(crate) fn embed(&self, coeffs: &[f64], scale: f64) -> Vec<Complex64> {
        let m = self.slots();
        let inv = 1.0 / scale;
        let mut a: Vec<Complex64> = (0..m)
            .map(|k| {
                let re = coeffs.get(k).copied().unwrap_or(0.0);
                let im = coeffs.get(k + m).copied().unwrap_or(0.0);
                Complex64::new(re, im) * self.twist.get(k).copied().unwrap_or_default() * inv
            })
            .collect();
        self.fft(&mut a, false);
        self.slot_index
            .iter()
            .map(|&t| a.get(t).copied().unwrap_or_default())
            .collect()
    }

    /// Decodes a plaintext into its `N/2` complex slots.
    pub fn decode_complex(&self, pt: &Plaintext) -> Result<Vec<Complex64>, CkksError> {
        self.decode_owned(pt.clone())
    }

    /// Decodes a plaintext into the real parts of its slots.
    pub fn decode(&self, pt: &Plaintext) -> Result<Vec<f64>, CkksError> {
        Ok(self.decode_complex(pt)?.iter().map(|c| c.re).collect())
    }

    /// [`Encoder::decode_complex`] of a plaintext the caller gives up (a
    /// decryption's): transformed in place, not copied first.
    pub(crate) fn decode_owned(&self, mut pt: Plaintext) -> Result<Vec<Complex64>, CkksError> {
        pt.poly.ntt_inverse(self.params.ring());
        let coeffs = self.poly_to_coeffs(&pt.poly)?;
        Ok(self.embed(&coeffs, pt.scale))
    }
}

/// Bits of precision of `got` against `want`: `-log2(max |got - want|)`,
/// `+∞` when they are equal and `−∞` when a difference is not finite (a
/// NaN or infinite value has no precision).
///
/// The slices must have the same, non-zero length (compare a prefix with
/// `&got[..want.len()]`): an empty or short output is an error, never a
/// vacuous match.
pub fn precision_bits(want: &[f64], got: &[f64]) -> Result<f64, CkksError> {
    if want.is_empty() || want.len() != got.len() {
        return Err(CkksError::LengthMismatch {
            want: want.len(),
            got: got.len(),
        });
    }
    let mut err = 0.0f64;
    for (a, b) in want.iter().zip(got) {
        let d = (a - b).abs();
        if !d.is_finite() {
            return Ok(f64::NEG_INFINITY);
        }
        err = err.max(d);
    }
    Ok(if err == 0.0 {
        f64::INFINITY
    } else {
        -err.log2()
    })
}

/// Divisibility of signed values by one odd prime `q` with one
/// multiplication (Granlund and Montgomery; Hacker's Delight §10-17): the
/// decoder's check of each coefficient against the other primes'
/// residues, without a 64-bit division (tens of cycles each in
/// WebAssembly).
///
/// With `inv = q^−1 mod 2^64` and `bound = ⌊(2^63 − 1)/q⌋`, `n = k·q`
/// exactly when `n·inv mod 2^64`, read as signed, is some `k` in
/// `[−bound, bound]`: a multiple's `k` is in that range, and a `k` there
/// has `k·q ≡ n (mod 2^64)` with both in `i64`, hence equal.
#[derive(Clone, Copy)]
struct Divides {
    inv: u64,
    bound: u64,
}

impl Divides {
    /// The test for `q`, `None` when `q` is even (no prime of a ring is).
    fn new(q: u64) -> Option<Self> {
        if q.is_multiple_of(2) {
            return None;
        }
        // Newton's iteration doubles the correct low bits from 3 (q·q ≡ 1 mod 8).
        let mut inv = q;
        for _ in 0..5 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(q.wrapping_mul(inv)));
        }
        Some(Self {
            inv,
            bound: (i64::MAX as u64) / q,
        })
    }

    /// Whether `c ≡ x (mod q)` for a residue `x < q` and `|c| < 2^62`
    /// (so that `x − c` is in `i64`).
    #[inline]
    fn congruent(&self, x: u64, c: i64) -> bool {
        let n = (x as i64).wrapping_sub(c) as u64;
        n.wrapping_mul(self.inv).wrapping_add(self.bound) <= 2 * self.bound
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The one-multiplication test agrees with the remainder at and
    /// around multiples of `q` (to the ends of the range it takes), and on
    /// random values and residues, for small and large primes.
    #[test]
    fn congruence_by_multiplication_equals_the_remainder() {
        use rand_core::{RngCore, SeedableRng};
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        assert!(Divides::new(1 << 40).is_none());
        let primes = [
            3u64,
            12_289,
            1_099_511_480_321,
            (1 << 60) - 93,
            (1 << 61) - 1,
        ];
        for q in primes {
            let d = Divides::new(q).unwrap();
            assert_eq!(q.wrapping_mul(d.inv), 1, "q={q}");
            let limit = 1i64 << 62;
            let want = |x: u64, c: i64| (c - x as i64).rem_euclid(q as i64) == 0;
            let mut cases = vec![];
            for x in [0, 1, q / 2, q - 1] {
                for k in [
                    0i64,
                    1,
                    -1,
                    2,
                    -2,
                    (limit - 1) / q as i64,
                    -(limit - 1) / (q as i64),
                ] {
                    let m = (x as i64).saturating_add(k.saturating_mul(q as i64));
                    for c in [m - 1, m, m + 1] {
                        if c.abs() < limit {
                            cases.push((x, c));
                        }
                    }
                }
            }
            cases.extend((0..20_000).map(|i| {
                let x = rng.next_u64() % q;
                let c = (rng.next_u64() as i64) >> (2 + i % 62);
                // Every other case a multiple of q away from x.
                let c = if i % 2 == 0 {
                    c
                } else {
                    x as i64 + (c / q as i64) * q as i64
                };
                (x, c)
            }));
            let mut hits = 0;
            for (x, c) in cases {
                assert_eq!(d.congruent(x, c), want(x, c), "q={q}, x={x}, c={c}");
                hits += usize::from(want(x, c));
            }
            assert!(hits > 10_000, "q={q}: {hits} congruent cases");
        }
    }

    /// Decoding reconstructs each coefficient from the first two primes
    /// and checks it against the third: negative and positive values
    /// decode to what was encoded, and one residue of the third prime off
    /// by one (a coefficient beyond the decoder's range) is an error.
    #[test]
    fn decoding_checks_every_coefficient_against_the_third_prime() {
        let params = crate::Preset::N13.build().unwrap();
        let enc = Encoder::new(&params);
        let values: Vec<f64> = (0..enc.slots())
            .map(|i| ((i as f64) * 0.37).sin() * 1000.0)
            .collect();
        let pt = enc.encode_default(&values).unwrap();
        assert!(pt.level() >= 2);
        let back = enc.decode(&pt).unwrap();
        assert!(precision_bits(&values, &back).unwrap() > 20.0);
        let ring = params.ring();
        for k in [0usize, 1, 4095, 8191] {
            let mut bad = pt.clone();
            bad.poly.ntt_inverse(ring);
            let q2 = ring.q_tables()[2].modulus().value();
            let c = &mut bad.poly.limb_mut(2)[k];
            *c = (*c + 1) % q2;
            bad.poly.ntt_forward(ring);
            let e = enc.decode(&bad).unwrap_err();
            assert!(e.to_string().contains("2^120 range"), "{k}: {e}");
        }
    }

    /// Values whose coefficients pass half the first prime take the
    /// decoder's 128-bit path, small ones its 64-bit one: both exact.
    #[test]
    fn decoding_is_exact_on_both_sides_of_half_the_first_prime() {
        let params = crate::Preset::N13.build().unwrap();
        let enc = Encoder::new(&params);
        let ring = params.ring();
        let half_q0 = ring.q_tables()[0].modulus().value() / 2;
        for magnitude in [1.0, 1e3, 2f64.powi(30)] {
            let values: Vec<f64> = (0..enc.slots())
                .map(|i| ((i as f64) * 0.37).sin() * magnitude)
                .collect();
            let pt = enc.encode_default(&values).unwrap();
            let mut coeffs = pt.poly.clone();
            coeffs.ntt_inverse(ring);
            let big = enc
                .poly_to_coeffs(&coeffs)
                .unwrap()
                .iter()
                .any(|c| c.abs() > half_q0 as f64);
            assert_eq!(big, magnitude > 1e6, "magnitude {magnitude}");
            let back = enc.decode(&pt).unwrap();
            assert!(
                precision_bits(&values, &back).unwrap() > 20.0,
                "{magnitude}"
            );
        }
    }

    /// Crafted residues on both sides of ±q0/2 and at the ends of the two
    /// primes' range, with and without a third prime to check against: every coefficient decoded exactly, the
    /// 64-bit path's answers equal to the 128-bit one's.
    #[test]
    fn decoded_coefficients_are_exact_at_the_boundaries() {
        let params = crate::Preset::N13.build().unwrap();
        let enc = Encoder::new(&params);
        let ring = params.ring();
        let qs: Vec<u64> = ring
            .q_tables()
            .iter()
            .map(|t| t.modulus().value())
            .collect();
        let h = i128::from((qs[0] - 1) / 2);
        // The ends of the two-prime range: ±(q0·q1 − 1)/2.
        let h01 = (i128::from(qs[0]) * i128::from(qs[1]) - 1) / 2;
        let values: Vec<i128> = vec![
            h01,
            -h01,
            0,
            1,
            -1,
            12_345,
            -(1 << 50),
            h,
            -h,
            h + 1,
            -h - 1,
            h + 7,
            1 << 70,
            -(1 << 70),
        ];
        for q_len in [2usize, 3] {
            let mut poly = RnsPoly::zero(ring, q_len, 0, false);
            for (i, q) in qs.iter().take(q_len).enumerate() {
                let limb = poly.limb_mut(i);
                for (k, v) in values.iter().enumerate() {
                    limb[k] = v.rem_euclid(i128::from(*q)) as u64;
                }
            }
            let got = enc.poly_to_coeffs(&poly).unwrap();
            for (k, v) in values.iter().enumerate() {
                assert_eq!(got[k], *v as f64, "q_len {q_len}, value {v}");
            }
            assert!(got[values.len()..].iter().all(|&c| c == 0.0));
        }
    }

    #[test]
    fn precision_bits_refuses_to_compare_nothing() {
        assert_eq!(
            precision_bits(&[1.0, 2.0], &[1.0, 2.0 + 2f64.powi(-10)]),
            Ok(10.0)
        );
        assert_eq!(precision_bits(&[0.5], &[0.5]), Ok(f64::INFINITY));
        assert_eq!(
            precision_bits(&[0.5, 1.0], &[0.5, f64::NAN]),
            Ok(f64::NEG_INFINITY)
        );
        assert_eq!(
            precision_bits(&[0.5], &[f64::INFINITY]),
            Ok(f64::NEG_INFINITY)
        );
        for (want, got) in [
            (&[][..], &[][..]),
            (&[1.0][..], &[][..]),
            (&[1.0][..], &[1.0, 2.0][..]),
        ] {
            assert_eq!(
                precision_bits(want, got),
                Err(CkksError::LengthMismatch {
                    want: want.len(),
                    got: got.len()
                })
            );
        }
    }
}
