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

/// `limb += h + e` modulo `m`, for `h` reduced and `e` empty (then `h`
/// alone) or one small signed value (`|e| < m`) per coefficient.
fn add_offsets(m: &Modulus, limb: &mut [u64], h: u64, e: &[i64]) {
    if e.is_empty() {
        for a in limb.iter_mut() {
            *a = m.add(*a, h);
        }
        return;
    }
    for (a, &v) in limb.iter_mut().zip(e) {
        *a = m.add(*a, offset(h, v, m.value()));
    }
}

/// `h + v` in `[0, q)` for `h` reduced and `|v| < q`, from (−q, 2q) with
/// two comparisons: the wrapped candidates are huge.
#[inline(always)]
fn offset(h: u64, v: i64, q: u64) -> u64 {
    let t = h.wrapping_add(v as u64);
    t.min(t.wrapping_add(q)).min(t.wrapping_sub(q))
}

/// `x mod q` for any `x < 2^64` and `q ≥ 2^13`, `q_inv = 1/q`: the
/// quotient estimated in double precision is within one of the true one
/// (relative error below 2^−52, quotient below 2^51), so the remainder is
/// in (−q, 2q) before two corrections, branch-free (`x` may be a
/// secret-dependent limb): a negative remainder wraps to a huge word, so
/// `min` picks the corrected one. No 128-bit product, which WebAssembly
/// lacks.
#[inline(always)]
fn reduce_float(x: u64, q: u64, q_inv: f64) -> u64 {
    let est = (x as f64 * q_inv) as u64;
    let r = x.wrapping_sub(est.wrapping_mul(q));
    let r = r.min(r.wrapping_add(q));
    r.min(r.wrapping_sub(q))
}

/// The correction of one `Q` limb `o` (coefficient form):
/// `conv − (h + e) − P·m`. `conv` is `o` itself (the fast conversion's
/// output) or, with one special prime, that prime's limb `single` reduced
/// modulo this prime, in the same pass. `(mi, p, p_shoup)` is this limb
/// of `m` (empty: none) with `P mod q` and its Shoup constant.
fn correct(
    m: &Modulus,
    o: &mut [u64],
    single: Option<&[u64]>,
    h: u64,
    e: &[i64],
    (mi, p, p_shoup): (&[u64], u64, u64),
) {
    let q = m.value();
    let q_inv = 1.0 / q as f64;
    match (single, e.is_empty()) {
        (Some(x), false) => {
            for ((a, &v), &ek) in o.iter_mut().zip(x).zip(e) {
                *a = m.sub(reduce_float(v, q, q_inv), offset(h, ek, q));
            }
        }
        (Some(x), true) => {
            for (a, &v) in o.iter_mut().zip(x) {
                *a = m.sub(reduce_float(v, q, q_inv), h);
            }
        }
        (None, false) => {
            for (a, &ek) in o.iter_mut().zip(e) {
                *a = m.sub(*a, offset(h, ek, q));
            }
        }
        (None, true) => {
            for a in o.iter_mut() {
                *a = m.sub(*a, h);
            }
        }
    }
    for (a, &v) in o.iter_mut().zip(mi) {
        *a = m.sub(*a, m.mul_shoup(v, p, p_shoup));
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
            add_offsets(m, l, h, e);
        });
    let p_mod: Vec<Modulus> = p_tables.iter().map(|t| *t.modulus()).collect();
    let q_mod: Vec<Modulus> = q_tables.iter().map(|t| *t.modulus()).collect();
    let mut out = RnsPoly::zero(ctx, q_len, 0, true);
    // One special prime (the usual case): the conversion is the reduction
    // of its limb modulo each `q_j`, done in the pass below; more: the
    // fast conversion.
    let single = if p_len == 1 {
        Some(p_part.as_slice())
    } else {
        let ext = BasisExtender::new(&p_mod, &q_mod)?;
        let input: Vec<&[u64]> = p_part.chunks(n).collect();
        ext.convert(&input, out.data_mut(), n);
        None
    };
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
            // Less `P·m`, which the division by P turns into `+m`.
            let ps = m.shoup(p_here);
            let mi = plus.get(i * n..(i + 1) * n).unwrap_or_default();
            correct(m, o, single, h, e, (mi, p_here, ps));
            t.forward(o);
            let p_inv = m.inv(p_here)?;
            let ps = m.shoup(p_inv);
            for (a, &b) in o.iter_mut().zip(xi) {
                *a = m.mul_shoup(m.sub(b, *a), p_inv, ps);
            }
            Ok(())
        })?;
    // The special limbs of `x + e`: secret-dependent in an encryption.
    p_part.zeroize();
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The floating-point reduction is exact for every word, the
    /// neighbourhoods of multiples of `q` included, where the estimate
    /// is one over or one under the quotient, for primes of 13 to 61 bits.
    #[test]
    fn float_reduction_is_exact() {
        use rand_core::{RngCore, SeedableRng};
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(8);
        let (mut over, mut under) = (0, 0);
        for bits in [13u32, 20, 36, 40, 48, 55, 60, 61] {
            let q = crate::modulus::generate_primes(bits, 16, 1, &[]).unwrap()[0];
            let q_inv = 1.0 / q as f64;
            let mut xs = vec![0, 1, q - 1, q, q + 1, u64::MAX, u64::MAX - 1];
            for _ in 0..20_000 {
                let k = rng.next_u64() % (u64::MAX / q);
                for d in [0u64, 1, 2, 3] {
                    xs.extend([(k * q).wrapping_sub(d), k * q + d]);
                }
                xs.push(rng.next_u64());
            }
            for x in xs {
                let est = (x as f64 * q_inv) as u64;
                if est > x / q {
                    over += 1;
                }
                if est < x / q {
                    under += 1;
                }
                assert_eq!(reduce_float(x, q, q_inv), x % q, "x={x} q={q}");
            }
        }
        // Both corrections were needed somewhere.
        assert!(over > 0 && under > 0, "over {over}, under {under}");
    }
}
