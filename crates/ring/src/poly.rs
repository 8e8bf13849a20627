//! RNS polynomials over a prefix `q_0 … q_{l}` of the ciphertext primes,
//! optionally extended by the special primes `P`, in coefficient or NTT form.

use crate::context::RingContext;
use crate::ntt::NttTable;
use crate::RingError;
use rayon::prelude::*;
use zeroize::Zeroize;

/// A polynomial in RNS form: `q_len` ciphertext limbs then `p_len` special
/// limbs, each of `n` residues, stored contiguously limb after limb.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RnsPoly {
    n: usize,
    q_len: usize,
    p_len: usize,
    ntt: bool,
    data: Vec<u64>,
}

impl Zeroize for RnsPoly {
    fn zeroize(&mut self) {
        self.data.zeroize();
    }
}

/// Runs `f` on every limb, in parallel across limbs.
fn for_limbs<F>(tables: Vec<&NttTable>, data: &mut [u64], n: usize, f: F)
where
    F: Fn(&NttTable, &mut [u64]) + Sync + Send,
{
    data.par_chunks_mut(n)
        .zip(tables.into_par_iter())
        .for_each(|(limb, t)| f(t, limb));
}

impl RnsPoly {
    /// The zero polynomial of the given shape.
    pub fn zero(ctx: &RingContext, q_len: usize, p_len: usize, ntt: bool) -> Self {
        Self {
            n: ctx.n(),
            q_len,
            p_len,
            ntt,
            data: vec![0; ctx.n() * (q_len + p_len)],
        }
    }

    /// Builds a polynomial from raw limb data (validated: shape and ranges).
    pub fn from_raw(
        ctx: &RingContext,
        q_len: usize,
        p_len: usize,
        ntt: bool,
        data: Vec<u64>,
    ) -> Result<Self, RingError> {
        ctx.check_shape(q_len, p_len)?;
        if data.len() != ctx.n() * (q_len + p_len) {
            return Err(RingError::ShapeMismatch);
        }
        for (limb, t) in data.chunks(ctx.n()).zip(ctx.tables(q_len, p_len)) {
            let q = t.modulus().value();
            if limb.iter().any(|&c| c >= q) {
                return Err(RingError::CoefficientOutOfRange);
            }
        }
        Ok(Self {
            n: ctx.n(),
            q_len,
            p_len,
            ntt,
            data,
        })
    }

    /// Builds a coefficient-form polynomial from small signed coefficients.
    ///
    /// Coefficients below every prime in magnitude (noise, ternary
    /// secrets) skip the modular reduction: a branch-free conditional
    /// negation each. Whether that path is taken depends only on the
    /// largest magnitude, which for noise is public.
    pub fn from_signed(ctx: &RingContext, coeffs: &[i64], q_len: usize, p_len: usize) -> Self {
        let mut p = Self::zero(ctx, q_len, p_len, false);
        let tables: Vec<&NttTable> = ctx.tables(q_len, p_len).collect();
        let largest = coeffs.iter().fold(0u64, |m, c| m.max(c.unsigned_abs()));
        for_limbs(tables, &mut p.data, p.n, |t, limb| {
            t.modulus().reduce_signed_into(coeffs, largest, limb)
        });
        p
    }

    /// [`Self::from_signed`] in NTT form: equal to it followed by
    /// [`Self::ntt_forward`], in one pass per limb (in WebAssembly the
    /// first stage of the transform reads the small coefficients of a
    /// secret or an error directly).
    pub fn from_signed_ntt(ctx: &RingContext, coeffs: &[i64], q_len: usize, p_len: usize) -> Self {
        if coeffs.len() != ctx.n() {
            // Not one coefficient per slot: as from_signed, then transformed.
            let mut p = Self::from_signed(ctx, coeffs, q_len, p_len);
            p.ntt_forward(ctx);
            return p;
        }
        let mut p = Self::zero(ctx, q_len, p_len, true);
        let tables: Vec<&NttTable> = ctx.tables(q_len, p_len).collect();
        let largest = coeffs.iter().fold(0u64, |m, c| m.max(c.unsigned_abs()));
        for_limbs(tables, &mut p.data, p.n, |t, limb| {
            t.forward_from_signed(coeffs, largest, limb)
        });
        p
    }

    /// Ring degree.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Number of ciphertext-prime limbs.
    pub fn q_len(&self) -> usize {
        self.q_len
    }

    /// Number of special-prime limbs.
    pub fn p_len(&self) -> usize {
        self.p_len
    }

    /// Whether the polynomial is in NTT (evaluation) form.
    pub fn is_ntt(&self) -> bool {
        self.ntt
    }

    /// Marks the representation without transforming (for data known to be in that form).
    pub fn set_ntt_flag(&mut self, ntt: bool) {
        self.ntt = ntt;
    }

    /// All residues, limb after limb.
    pub fn data(&self) -> &[u64] {
        &self.data
    }

    /// Mutable residues, limb after limb.
    pub fn data_mut(&mut self) -> &mut [u64] {
        &mut self.data
    }

    /// Limb `i` (ciphertext limbs first, then special limbs).
    pub fn limb(&self, i: usize) -> &[u64] {
        self.data.get(i * self.n..(i + 1) * self.n).unwrap_or(&[])
    }

    /// Mutable limb `i`.
    pub fn limb_mut(&mut self, i: usize) -> &mut [u64] {
        let n = self.n;
        self.data.get_mut(i * n..(i + 1) * n).unwrap_or(&mut [])
    }

    /// Iterator over limbs.
    pub fn limbs(&self) -> std::slice::Chunks<'_, u64> {
        self.data.chunks(self.n)
    }

    fn tables<'a>(&self, ctx: &'a RingContext) -> Vec<&'a NttTable> {
        ctx.tables(self.q_len, self.p_len).collect()
    }

    /// Whether `other` can be the second operand of an element-wise
    /// operation on `self`: same shape, or (without special limbs) a longer
    /// ciphertext-limb prefix, of which the first `q_len` limbs are used.
    fn operand_ok(&self, other: &Self) -> Result<(), RingError> {
        let prefix = self.p_len == 0 && other.p_len == 0 && other.q_len >= self.q_len;
        if self.n != other.n
            || self.ntt != other.ntt
            || !(prefix || other.q_len == self.q_len)
            || self.p_len != other.p_len
        {
            return Err(RingError::ShapeMismatch);
        }
        Ok(())
    }

    /// Forward NTT of every limb (no-op if already in NTT form).
    pub fn ntt_forward(&mut self, ctx: &RingContext) {
        if !self.ntt {
            for_limbs(self.tables(ctx), &mut self.data, self.n, |t, l| {
                t.forward(l)
            });
            self.ntt = true;
        }
    }

    /// Inverse NTT of every limb (no-op if already in coefficient form).
    pub fn ntt_inverse(&mut self, ctx: &RingContext) {
        if self.ntt {
            for_limbs(self.tables(ctx), &mut self.data, self.n, |t, l| {
                t.inverse(l)
            });
            self.ntt = false;
        }
    }

    fn zip_apply<F>(&mut self, ctx: &RingContext, other: &Self, f: F) -> Result<(), RingError>
    where
        F: Fn(&crate::Modulus, &mut u64, u64) + Sync + Send,
    {
        self.operand_ok(other)?;
        let n = self.n;
        let tables = self.tables(ctx);
        self.data
            .par_chunks_mut(n)
            .zip(other.data.par_chunks(n))
            .zip(tables.into_par_iter())
            .for_each(|((a, b), t)| {
                let m = t.modulus();
                for (x, &y) in a.iter_mut().zip(b) {
                    f(m, x, y);
                }
            });
        Ok(())
    }

    fn zip_new<F>(&self, ctx: &RingContext, other: &Self, f: F) -> Result<Self, RingError>
    where
        F: Fn(&crate::Modulus, u64, u64) -> u64 + Sync + Send,
    {
        self.operand_ok(other)?;
        let n = self.n;
        // Element-wise passes are memory-bound: fill the output in one
        // sequential pass, without zero-initialising it first.
        let mut data = Vec::with_capacity(self.data.len());
        for ((a, b), t) in self
            .data
            .chunks(n)
            .zip(other.data.chunks(n))
            .zip(self.tables(ctx))
        {
            let m = t.modulus();
            data.extend(a.iter().zip(b).map(|(&x, &y)| f(m, x, y)));
        }
        Ok(Self {
            n,
            q_len: self.q_len,
            p_len: self.p_len,
            ntt: self.ntt,
            data,
        })
    }

    /// `self + other` into a new polynomial (one pass, no copy).
    pub fn add(&self, ctx: &RingContext, other: &Self) -> Result<Self, RingError> {
        self.zip_new(ctx, other, |m, x, y| m.add(x, y))
    }

    /// `self - other` into a new polynomial.
    pub fn sub(&self, ctx: &RingContext, other: &Self) -> Result<Self, RingError> {
        self.zip_new(ctx, other, |m, x, y| m.sub(x, y))
    }

    /// `self += other`.
    pub fn add_assign(&mut self, ctx: &RingContext, other: &Self) -> Result<(), RingError> {
        self.zip_apply(ctx, other, |m, x, y| *x = m.add(*x, y))
    }

    /// `self -= other`.
    pub fn sub_assign(&mut self, ctx: &RingContext, other: &Self) -> Result<(), RingError> {
        self.zip_apply(ctx, other, |m, x, y| *x = m.sub(*x, y))
    }

    /// `self *= other`, coefficient-wise; both must be in NTT form.
    pub fn mul_assign(&mut self, ctx: &RingContext, other: &Self) -> Result<(), RingError> {
        *self = self.mul(ctx, other)?;
        Ok(())
    }

    /// `self · other`, coefficient-wise (SIMD); both must be in NTT form.
    pub fn mul(&self, ctx: &RingContext, other: &Self) -> Result<Self, RingError> {
        let mut out = Self::zero(ctx, self.q_len, self.p_len, true);
        out.mul_accumulate(ctx, self, other)?;
        Ok(out)
    }

    /// `self += a · b`, coefficient-wise (SIMD); all in NTT form, same shape.
    pub fn mul_accumulate(
        &mut self,
        ctx: &RingContext,
        a: &Self,
        b: &Self,
    ) -> Result<(), RingError> {
        self.product_pass(ctx, a, b, NttTable::mul_accumulate)
    }

    /// `self −= a · b`, coefficient-wise; all in NTT form, same shape.
    pub fn mul_subtract(&mut self, ctx: &RingContext, a: &Self, b: &Self) -> Result<(), RingError> {
        self.product_pass(ctx, a, b, NttTable::mul_subtract)
    }

    /// One pass of `kernel(limb, a's limb, b's limb)` over every limb,
    /// after the shape checks of an NTT-form product.
    fn product_pass(
        &mut self,
        ctx: &RingContext,
        a: &Self,
        b: &Self,
        kernel: fn(&NttTable, &mut [u64], &[u64], &[u64]),
    ) -> Result<(), RingError> {
        if !self.ntt {
            return Err(RingError::NotNtt);
        }
        self.operand_ok(a)?;
        self.operand_ok(b)?;
        let n = self.n;
        let tables = self.tables(ctx);
        self.data
            .par_chunks_mut(n)
            .zip(a.data.par_chunks(n))
            .zip(b.data.par_chunks(n))
            .zip(tables.into_par_iter())
            .for_each(|(((o, x), y), t)| kernel(t, o, x, y));
        Ok(())
    }

    /// `self = -self`.
    pub fn neg_assign(&mut self, ctx: &RingContext) {
        for_limbs(self.tables(ctx), &mut self.data, self.n, |t, l| {
            let m = t.modulus();
            for x in l.iter_mut() {
                *x = m.neg(*x);
            }
        });
    }

    /// Applies `f(modulus, limb, c_i mod q_i)` to every limb with its residue of `c`.
    fn with_rns_scalar<F>(&mut self, ctx: &RingContext, c: &[u64], f: F) -> Result<(), RingError>
    where
        F: Fn(&crate::Modulus, &mut [u64], u64) + Sync + Send,
    {
        if c.len() != self.q_len + self.p_len {
            return Err(RingError::ShapeMismatch);
        }
        let n = self.n;
        let tables = self.tables(ctx);
        self.data
            .par_chunks_mut(n)
            .zip(tables.into_par_iter())
            .zip(c.par_iter())
            .for_each(|((l, t), &c)| {
                let m = t.modulus();
                f(m, l, m.reduce(c));
            });
        Ok(())
    }

    /// Multiplies limb `i` by the constant `c[i]` (an RNS constant, one residue per limb).
    pub fn mul_rns_scalar(&mut self, ctx: &RingContext, c: &[u64]) -> Result<(), RingError> {
        self.with_rns_scalar(ctx, c, |m, l, c| {
            let cs = m.shoup(c);
            for x in l.iter_mut() {
                *x = m.mul_shoup(*x, c, cs);
            }
        })
    }

    /// Adds the RNS constant `c` (one residue per limb) to the polynomial.
    /// In NTT form this adds it to every slot; in coefficient form, to the constant term.
    pub fn add_rns_scalar(&mut self, ctx: &RingContext, c: &[u64]) -> Result<(), RingError> {
        let ntt = self.ntt;
        self.with_rns_scalar(ctx, c, |m, l, c| {
            if ntt {
                for x in l.iter_mut() {
                    *x = m.add(*x, c);
                }
            } else if let Some(x) = l.first_mut() {
                *x = m.add(*x, c);
            }
        })
    }

    /// Keeps only the first `q_len` ciphertext limbs (and drops the special limbs
    /// when `keep_p` is false). Exact for the residues kept.
    pub fn truncate(&mut self, q_len: usize, keep_p: bool) -> Result<(), RingError> {
        if q_len == 0 || q_len > self.q_len {
            return Err(RingError::ShapeMismatch);
        }
        let n = self.n;
        if keep_p && self.p_len > 0 {
            let p_start = self.q_len * n;
            self.data.copy_within(p_start.., q_len * n);
            self.data.truncate((q_len + self.p_len) * n);
        } else {
            self.data.truncate(q_len * n);
            self.p_len = 0;
        }
        self.q_len = q_len;
        Ok(())
    }

    /// Applies `X -> X^g` (g odd). Works in either representation.
    pub fn automorphism(&self, ctx: &RingContext, g: u64) -> Result<Self, RingError> {
        let mut out = Self {
            n: self.n,
            q_len: self.q_len,
            p_len: self.p_len,
            ntt: self.ntt,
            data: vec![0; self.data.len()],
        };
        self.automorphism_into(ctx, g, &mut out)?;
        Ok(out)
    }

    /// Applies `X -> X^g` writing into `out` (same shape as `self`).
    pub fn automorphism_into(
        &self,
        ctx: &RingContext,
        g: u64,
        out: &mut Self,
    ) -> Result<(), RingError> {
        if out.data.len() != self.data.len() {
            return Err(RingError::ShapeMismatch);
        }
        out.q_len = self.q_len;
        out.p_len = self.p_len;
        out.ntt = self.ntt;
        let n = self.n;
        if self.ntt {
            let perm = ctx.permutation(g)?;
            out.data
                .par_chunks_mut(n)
                .zip(self.data.par_chunks(n))
                .for_each(|(o, i)| {
                    for (d, &p) in o.iter_mut().zip(perm.iter()) {
                        *d = i.get(p as usize).copied().unwrap_or(0);
                    }
                });
        } else {
            let two_n = 2 * n as u64;
            let g = g % two_n;
            if g.is_multiple_of(2) {
                return Err(RingError::InvalidGaloisElement(g));
            }
            let tables = self.tables(ctx);
            out.data
                .par_chunks_mut(n)
                .zip(self.data.par_chunks(n))
                .zip(tables.into_par_iter())
                .for_each(|((o, i), t)| {
                    let m = t.modulus();
                    for (k, &c) in i.iter().enumerate() {
                        let e = (k as u64 * g) % two_n;
                        let (idx, v) = if e >= n as u64 {
                            (e as usize - n, m.neg(c))
                        } else {
                            (e as usize, c)
                        };
                        if let Some(d) = o.get_mut(idx) {
                            *d = v;
                        }
                    }
                });
        }
        Ok(())
    }

    /// Divides by the last ciphertext prime `q_l` with rounding and drops
    /// that limb. The polynomial must be in NTT form with no special limbs;
    /// only the dropped limb is inverse-transformed.
    pub fn rescale(&mut self, ctx: &RingContext) -> Result<(), RingError> {
        if !self.ntt || self.p_len != 0 {
            return Err(RingError::NotNtt);
        }
        if self.q_len < 2 {
            return Err(RingError::ShapeMismatch);
        }
        let n = self.n;
        let l = self.q_len - 1;
        let tables = ctx.q_tables();
        let last_t = tables.get(l).ok_or(RingError::ShapeMismatch)?;
        let ql = last_t.modulus().value();
        let half = ql >> 1;
        let (head, last) = self.data.split_at_mut(l * n);
        // Rounded division: subtract the centered residue of x mod q_l, then
        // multiply by q_l^{-1}.
        last_t.inverse(last);
        let last: &[u64] = last;
        head.par_chunks_mut(n)
            .zip(tables.par_iter())
            .for_each(|(limb, t)| {
                let m = t.modulus();
                let ql_mod = m.reduce(ql);
                let mut u: Vec<u64> = last
                    .iter()
                    .map(|&x| {
                        let r = m.reduce(x);
                        if x > half {
                            m.sub(r, ql_mod)
                        } else {
                            r
                        }
                    })
                    .collect();
                t.forward(&mut u);
                let inv = m.inv(ql).unwrap_or(0);
                let inv_s = m.shoup(inv);
                for (x, &v) in limb.iter_mut().zip(&u) {
                    *x = m.mul_shoup(m.sub(*x, v), inv, inv_s);
                }
            });
        self.data.truncate(l * n);
        self.q_len = l;
        Ok(())
    }
}
