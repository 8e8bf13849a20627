//! Fast approximate basis conversion (Bajard et al. / HPS), and the ModUp /
//! ModDown steps of hybrid key switching built on it.

use crate::context::RingContext;
use crate::modulus::Modulus;
use crate::ntt::NttTable;
use crate::poly::RnsPoly;
use crate::RingError;
use rayon::prelude::*;
use zeroize::Zeroize;

/// Products accumulated in a `u128` before a reduction (each is < 2^122).
const LAZY_TERMS: usize = 32;
/// Up to this many source primes, Shoup products beat lazy 128-bit sums.
const SHOUP_TERMS: usize = 3;
/// Coefficients per cache block in the conversion loops.
const BLOCK: usize = 1024;

/// Precomputed constants to convert residues from basis `B` to basis `C`:
/// `x ↦ Σ_i [x_i · (B/b_i)^{-1}]_{b_i} · (B/b_i) mod c_j`, which equals
/// `x + u·B` for some `0 ≤ u < |B|` (the approximation ModUp tolerates and
/// ModDown divides away).
#[derive(Clone, Debug)]
pub struct BasisExtender {
    src: Vec<Modulus>,
    dst: Vec<Modulus>,
    /// `((B/b_i)^{-1} mod b_i, shoup)`.
    hat_inv: Vec<(u64, u64)>,
    /// `hat[j][i] = (B/b_i) mod c_j`.
    hat: Vec<Vec<u64>>,
}

impl BasisExtender {
    /// Precomputes the conversion from `src` to `dst`.
    pub fn new(src: &[Modulus], dst: &[Modulus]) -> Result<Self, RingError> {
        let mut hat_inv = Vec::with_capacity(src.len());
        for (i, bi) in src.iter().enumerate() {
            let mut prod = 1u64;
            for (k, bk) in src.iter().enumerate() {
                if k != i {
                    prod = bi.mul(prod, bi.reduce(bk.value()));
                }
            }
            let inv = bi.inv(prod)?;
            hat_inv.push((inv, bi.shoup(inv)));
        }
        let hat = dst
            .iter()
            .map(|cj| {
                (0..src.len())
                    .map(|i| {
                        src.iter()
                            .enumerate()
                            .filter(|(k, _)| *k != i)
                            .fold(1u64, |acc, (_, bk)| cj.mul(acc, cj.reduce(bk.value())))
                    })
                    .collect()
            })
            .collect();
        Ok(Self {
            src: src.to_vec(),
            dst: dst.to_vec(),
            hat_inv,
            hat,
        })
    }

    /// Converts coefficient-form limbs `input` (one per source prime, each of
    /// length `n`) into `output` (one limb per destination prime, flattened).
    pub fn convert(&self, input: &[&[u64]], output: &mut [u64], n: usize) {
        // y_i = x_i * (B/b_i)^{-1} mod b_i
        let y: Vec<Vec<u64>> = input
            .par_iter()
            .zip(self.src.par_iter().zip(self.hat_inv.par_iter()))
            .map(|(x, (m, &(w, ws)))| x.iter().map(|&v| m.mul_shoup(v, w, ws)).collect())
            .collect();
        output
            .par_chunks_mut(n)
            .zip(self.dst.par_iter().zip(self.hat.par_iter()))
            .for_each(|(out, (cj, hat_j))| {
                // Blocked over coefficients so the accumulators stay in L1
                // while every source limb streams through once.
                if y.len() <= SHOUP_TERMS {
                    // Few source primes: Shoup products, no 128-bit reduction.
                    let consts: Vec<(u64, u64)> = hat_j.iter().map(|&h| (h, cj.shoup(h))).collect();
                    for (b, ob) in out.chunks_mut(BLOCK).enumerate() {
                        ob.fill(0);
                        for (yi, &(h, hs)) in y.iter().zip(&consts) {
                            let yb = yi.get(b * BLOCK..).unwrap_or(&[]);
                            for (o, &v) in ob.iter_mut().zip(yb) {
                                *o = cj.add(*o, cj.mul_shoup(v, h, hs));
                            }
                        }
                    }
                    return;
                }
                let mut acc = [0u128; BLOCK];
                for (b, ob) in out.chunks_mut(BLOCK).enumerate() {
                    ob.fill(0);
                    for (ys, hs) in y.chunks(LAZY_TERMS).zip(hat_j.chunks(LAZY_TERMS)) {
                        acc.fill(0);
                        for (yi, &h) in ys.iter().zip(hs) {
                            let h = u128::from(h);
                            let yb = yi.get(b * BLOCK..).unwrap_or(&[]);
                            for (a, &v) in acc.iter_mut().zip(yb) {
                                *a += u128::from(v) * h;
                            }
                        }
                        for (o, a) in ob.iter_mut().zip(acc.iter()) {
                            *o = cj.add(*o, cj.reduce_u128(*a));
                        }
                    }
                }
            });
    }
}

/// ModUp of hybrid key switching: splits `c` (NTT form over `Q_l`, no
/// special limbs) into digits of `alpha` consecutive primes and extends each
/// digit `[c]_{D_j}` to the whole basis `Q_l ∪ P`, in NTT form.
pub fn mod_up_digits(
    ctx: &RingContext,
    c: &RnsPoly,
    alpha: usize,
) -> Result<Vec<RnsPoly>, RingError> {
    if !c.is_ntt() || c.p_len() != 0 || alpha == 0 {
        return Err(RingError::ShapeMismatch);
    }
    let n = ctx.n();
    let q_len = c.q_len();
    let p_len = ctx.p_len();
    let mut coeff = c.clone();
    coeff.ntt_inverse(ctx);
    let q_tables = ctx.q_tables();
    let p_tables = ctx.p_tables();
    let digits = q_len.div_ceil(alpha);
    (0..digits)
        .into_par_iter()
        .map(|j| {
            let start = j * alpha;
            let end = ((j + 1) * alpha).min(q_len);
            let src: Vec<Modulus> = q_tables
                .get(start..end)
                .ok_or(RingError::ShapeMismatch)?
                .iter()
                .map(|t| *t.modulus())
                .collect();
            // Destination limbs: every limb of Q_l ∪ P outside the digit.
            let dst_idx: Vec<usize> = (0..q_len + p_len)
                .filter(|&i| i < start || i >= end)
                .collect();
            let all: Vec<&NttTable> = q_tables.iter().take(q_len).chain(p_tables).collect();
            let dst: Vec<Modulus> = dst_idx
                .iter()
                .filter_map(|&i| all.get(i).map(|t| *t.modulus()))
                .collect();
            let ext = BasisExtender::new(&src, &dst)?;
            let input: Vec<&[u64]> = (start..end).map(|i| coeff.limb(i)).collect();
            let mut conv = vec![0u64; dst.len() * n];
            ext.convert(&input, &mut conv, n);
            let mut out = RnsPoly::zero(ctx, q_len, p_len, true);
            // Digit limbs are already known exactly in NTT form.
            for i in start..end {
                out.limb_mut(i).copy_from_slice(c.limb(i));
            }
            for (k, &i) in dst_idx.iter().enumerate() {
                if let Some(src_limb) = conv.get(k * n..(k + 1) * n) {
                    out.limb_mut(i).copy_from_slice(src_limb);
                }
            }
            let data = out.data_mut();
            data.par_chunks_mut(n)
                .enumerate()
                .filter(|(i, _)| !(start..end).contains(i))
                .for_each(|(i, limb)| {
                    if let Some(t) = all.get(i) {
                        t.forward(limb);
                    }
                });
            Ok(out)
        })
        .collect()
}

/// `limb += h + e` (`limb −= h + e` when `negate`) modulo `m`, for `h`
/// reduced and `e` empty (then `h` alone) or one small signed value
/// (`|e| < m`) per coefficient: one pass, `h + e` reduced with two
/// comparisons and no division.
fn add_offsets(m: &Modulus, limb: &mut [u64], h: u64, e: &[i64], negate: bool) {
    let q = m.value();
    let step = |a: u64, t: u64| if negate { m.sub(a, t) } else { m.add(a, t) };
    if e.is_empty() {
        for a in limb.iter_mut() {
            *a = step(*a, h);
        }
        return;
    }
    for (a, &v) in limb.iter_mut().zip(e) {
        // `h + v` in [0, q) from (−q, 2q): the wrapped candidates are huge.
        let t = h.wrapping_add(v as u64);
        let t = t.min(t.wrapping_add(q)).min(t.wrapping_sub(q));
        *a = step(*a, t);
    }
}

/// ModDown of hybrid key switching: maps `x` (NTT form over `Q_l ∪ P`) to
/// `round(x / P)` over `Q_l` in NTT form (up to the small approximation error
/// of the fast conversion). The rounding is centred: `⌊(x + h)/P⌋` with
/// `h = (P − 1)/2`, so its error has no bias.
pub fn mod_down(ctx: &RingContext, x: &RnsPoly) -> Result<RnsPoly, RingError> {
    mod_down_adding(ctx, x, &[], None)
}

/// [`mod_down`] of `x + e`, plus `m`: `round((x + e) / P) + m` over `Q_l`
/// in NTT form, for `e` a polynomial of `N` small signed coefficients
/// (empty: none) and `m` one over `Q_l` (no special limbs), both in
/// coefficient form. They are added where they cost no transform: `e` to
/// the special limbs after their inverse NTT, and `e` and `−P·m` to the
/// correction before its forward NTT, so the result equals
/// `mod_down(x + NTT(e)) + NTT(m)` exactly. Public-key encryption over
/// `Q ∪ P` uses it: its error enters before the division by `P`, the
/// message after.
pub fn mod_down_adding(
    ctx: &RingContext,
    x: &RnsPoly,
    e: &[i64],
    m: Option<&RnsPoly>,
) -> Result<RnsPoly, RingError> {
    let n = ctx.n();
    if !x.is_ntt()
        || x.p_len() != ctx.p_len()
        || ctx.p_len() == 0
        || !(e.is_empty() || e.len() == n)
    {
        return Err(RingError::ShapeMismatch);
    }
    if m.is_some_and(|m| m.is_ntt() || m.q_len() != x.q_len() || m.p_len() != 0 || m.n() != n) {
        return Err(RingError::ShapeMismatch);
    }
    let q_len = x.q_len();
    let p_len = x.p_len();
    let p_tables = ctx.p_tables();
    let q_tables: Vec<&NttTable> = ctx.q_tables().iter().take(q_len).collect();
    // P-part to coefficient form, plus `e`.
    let mut p_part: Vec<u64> = (q_len..q_len + p_len)
        .flat_map(|i| x.limb(i).iter().copied())
        .collect();
    // `h = (P − 1)/2` (P is odd) is `(p − 1)/2 = ⌊p/2⌋` mod each special prime `p`.
    p_part
        .par_chunks_mut(n)
        .zip(p_tables.par_iter())
        .for_each(|(l, t)| {
            t.inverse(l);
            let m = t.modulus();
            let h = m.value() / 2;
            add_offsets(m, l, h, e, false);
        });
    let p_mod: Vec<Modulus> = p_tables.iter().map(|t| *t.modulus()).collect();
    let q_mod: Vec<Modulus> = q_tables.iter().map(|t| *t.modulus()).collect();
    let ext = BasisExtender::new(&p_mod, &q_mod)?;
    let input: Vec<&[u64]> = p_part.chunks(n).collect();
    let mut out = RnsPoly::zero(ctx, q_len, 0, true);
    ext.convert(&input, out.data_mut(), n);
    // The special limbs of `x + e`: secret-dependent in an encryption.
    p_part.zeroize();
    let xq = x.data();
    let plus = m.map(RnsPoly::data).unwrap_or_default();
    out.data_mut()
        .par_chunks_mut(n)
        .zip(xq.par_chunks(n))
        .zip(q_tables.par_iter())
        .enumerate()
        .try_for_each(|(i, ((o, xi), t))| -> Result<(), RingError> {
            let m = t.modulus();
            let p_here = p_mod
                .iter()
                .fold(1u64, |acc, p| m.mul(acc, m.reduce(p.value())));
            // The correction less `e + h`: (x_Q + e + h − conv) = x_Q − (conv − e − h),
            // `h = (P − 1)/2` here `(P − 1)·2^−1`.
            let h = m.mul(m.sub(p_here, 1), m.inv(2)?);
            add_offsets(m, o, h, e, true);
            // Less `P·m`, which the division by P turns into `+m`.
            if let Some(mi) = plus.get(i * n..(i + 1) * n) {
                let ps = m.shoup(p_here);
                for (a, &v) in o.iter_mut().zip(mi) {
                    *a = m.sub(*a, m.mul_shoup(v, p_here, ps));
                }
            }
            t.forward(o);
            let p_inv = m.inv(p_here)?;
            let ps = m.shoup(p_inv);
            for (a, &b) in o.iter_mut().zip(xi) {
                *a = m.mul_shoup(m.sub(b, *a), p_inv, ps);
            }
            Ok(())
        })?;
    Ok(out)
}
