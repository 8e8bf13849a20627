//! Homomorphic operations with exact level and scale bookkeeping: a
//! mismatch is a typed error, never silent garbage.

use crate::encoder::Plaintext;
use crate::encoder::Plaintext as Pt;
use crate::encrypt::Ciphertext;
use crate::encrypt::{flooding_poly, Encryptor, Flooding};
use crate::error::CkksError;
use crate::keys::PublicKey;
use crate::keys::{
    conjugation_galois_element, decompose, key_switch, rotation_galois_element, GaloisKeys,
    RelinKey, SwitchingKey,
};
use crate::noise::NoiseBound;
use crate::params::CkksParams;
use cipherflow_ring::RnsPoly;
use rand_core::{CryptoRng, RngCore};
use rayon::prelude::*;

/// Relative tolerance when comparing scales (float rounding of equal paths).
const SCALE_TOLERANCE: f64 = 1e-9;

fn scales_match(a: f64, b: f64) -> bool {
    (a - b).abs() <= SCALE_TOLERANCE * a.abs().max(b.abs())
}

/// One limb of `(c0, c1, plaintext)` in a plaintext product sum.
type LimbTriple<'a> = (&'a [u64], &'a [u64], &'a [u64]);

/// The homomorphic evaluator of a parameter set.
#[derive(Clone, Debug)]
pub struct Evaluator {
    params: CkksParams,
}

impl Evaluator {
    /// An evaluator for `params`.
    pub fn new(params: &CkksParams) -> Self {
        Self {
            params: params.clone(),
        }
    }

    /// The parameters.
    pub fn params(&self) -> &CkksParams {
        &self.params
    }

    fn out(&self, c: Vec<RnsPoly>, scale: f64) -> Ciphertext {
        Ciphertext {
            c,
            scale,
            seed: None,
            fingerprint: *self.params.fingerprint(),
        }
    }

    fn check_pair(&self, a: &Ciphertext, b: &Ciphertext) -> Result<(), CkksError> {
        a.check(&self.params)?;
        b.check(&self.params)?;
        if a.level() != b.level() {
            return Err(CkksError::LevelMismatch(a.level(), b.level()));
        }
        Ok(())
    }

    fn check_scales(a: f64, b: f64) -> Result<(), CkksError> {
        if !scales_match(a, b) {
            return Err(CkksError::ScaleMismatch(a.log2(), b.log2()));
        }
        Ok(())
    }

    /// `a + b` (same level and scale; sizes may differ).
    pub fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.add_sub(a, b, false)
    }

    /// `a − b` (same level and scale).
    pub fn sub(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.add_sub(a, b, true)
    }

    fn add_sub(&self, a: &Ciphertext, b: &Ciphertext, sub: bool) -> Result<Ciphertext, CkksError> {
        self.check_pair(a, b)?;
        Self::check_scales(a.scale, b.scale)?;
        let ring = self.params.ring();
        let size = a.size().max(b.size());
        let mut c = Vec::with_capacity(size);
        for i in 0..size {
            let poly = match (a.c.get(i), b.c.get(i)) {
                (Some(x), Some(y)) if sub => x.sub(ring, y)?,
                (Some(x), Some(y)) => x.add(ring, y)?,
                (Some(x), None) => x.clone(),
                (None, Some(y)) if sub => {
                    let mut z = y.clone();
                    z.neg_assign(ring);
                    z
                }
                (None, Some(y)) => y.clone(),
                (None, None) => return Err(CkksError::WrongSize(0, 2)),
            };
            c.push(poly);
        }
        Ok(self.out(c, a.scale))
    }

    /// `−a`.
    pub fn neg(&self, a: &Ciphertext) -> Result<Ciphertext, CkksError> {
        a.check(&self.params)?;
        let ring = self.params.ring();
        let mut c = a.c.clone();
        c.iter_mut().for_each(|x| x.neg_assign(ring));
        Ok(self.out(c, a.scale))
    }

    /// The plaintext's polynomial, whose first `level + 1` limbs serve a
    /// ciphertext at its level or below (no copy).
    fn pt_at_level<'p>(
        &self,
        ct: &Ciphertext,
        pt: &'p Plaintext,
    ) -> Result<&'p RnsPoly, CkksError> {
        if pt.level() < ct.level() {
            return Err(CkksError::LevelMismatch(ct.level(), pt.level()));
        }
        Ok(&pt.poly)
    }

    /// `ct ± pt` on the first component.
    fn add_sub_plain(
        &self,
        ct: &Ciphertext,
        pt: &Plaintext,
        sub: bool,
    ) -> Result<Ciphertext, CkksError> {
        ct.check(&self.params)?;
        Self::check_scales(ct.scale, pt.scale)?;
        let p = self.pt_at_level(ct, pt)?;
        let ring = self.params.ring();
        let mut c = ct.c.clone();
        if let Some(c0) = c.first_mut() {
            if sub {
                c0.sub_assign(ring, p)?;
            } else {
                c0.add_assign(ring, p)?;
            }
        }
        Ok(self.out(c, ct.scale))
    }

    /// `ct + pt` (the plaintext at the ciphertext's scale, at its level or above).
    pub fn add_plain(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext, CkksError> {
        self.add_sub_plain(ct, pt, false)
    }

    /// `ct − pt`.
    pub fn sub_plain(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext, CkksError> {
        self.add_sub_plain(ct, pt, true)
    }

    /// `ct · pt` slot-wise; the result's scale is the product of the scales.
    pub fn mul_plain(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext, CkksError> {
        ct.check(&self.params)?;
        let p = self.pt_at_level(ct, pt)?;
        let ring = self.params.ring();
        let c =
            ct.c.iter()
                .map(|x| x.mul(ring, p))
                .collect::<Result<Vec<_>, _>>()?;
        Ok(self.out(c, ct.scale * pt.scale))
    }

    /// An RNS constant: `round(v)` reduced modulo each prime of the level.
    fn rns_constant(&self, level: usize, v: f64) -> Result<Vec<u64>, CkksError> {
        if !v.is_finite() || v.abs() >= 2f64.powi(126) {
            return Err(CkksError::ValueOutOfRange(format!("constant {v}")));
        }
        let r = v.round() as i128;
        Ok(self
            .params
            .q()
            .iter()
            .take(level + 1)
            .map(|&q| r.rem_euclid(i128::from(q)) as u64)
            .collect())
    }

    /// `ct + v` in every slot.
    pub fn add_const(&self, ct: &Ciphertext, v: f64) -> Result<Ciphertext, CkksError> {
        ct.check(&self.params)?;
        let k = self.rns_constant(ct.level(), v * ct.scale)?;
        let mut c = ct.c.clone();
        if let Some(c0) = c.first_mut() {
            c0.add_rns_scalar(self.params.ring(), &k)?;
        }
        Ok(self.out(c, ct.scale))
    }

    /// `ct · v` in every slot. The constant is encoded at scale `q_l` (the
    /// prime the next rescale divides by), so `rescale` restores the
    /// ciphertext's scale exactly.
    pub fn mul_const(&self, ct: &Ciphertext, v: f64) -> Result<Ciphertext, CkksError> {
        ct.check(&self.params)?;
        let ql = self
            .params
            .q()
            .get(ct.level())
            .copied()
            .ok_or(CkksError::InvalidLevel(ct.level()))? as f64;
        let k = self.rns_constant(ct.level(), v * ql)?;
        let ring = self.params.ring();
        let mut c = ct.c.clone();
        for x in c.iter_mut() {
            x.mul_rns_scalar(ring, &k)?;
        }
        Ok(self.out(c, ct.scale * ql))
    }

    /// `a · b` without relinearization (3 components, scale = product).
    pub fn mul(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.check_pair(a, b)?;
        let (Some(a0), Some(a1), Some(b0), Some(b1), 2, 2) = (
            a.c.first(),
            a.c.get(1),
            b.c.first(),
            b.c.get(1),
            a.size(),
            b.size(),
        ) else {
            return Err(CkksError::WrongSize(a.size().max(b.size()), 2));
        };
        let ring = self.params.ring();
        let d0 = a0.mul(ring, b0)?;
        let mut d1 = a0.mul(ring, b1)?;
        d1.mul_accumulate(ring, a1, b0)?;
        let d2 = a1.mul(ring, b1)?;
        Ok(self.out(vec![d0, d1, d2], a.scale * b.scale))
    }

    /// `a²` without relinearization.
    pub fn square(&self, a: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.mul(a, a)
    }

    /// Switches a size-3 ciphertext back to size 2 with the relinearization key.
    pub fn relinearize(&self, ct: &Ciphertext, rlk: &RelinKey) -> Result<Ciphertext, CkksError> {
        ct.check(&self.params)?;
        if rlk.params != self.params {
            return Err(CkksError::ParamsMismatch);
        }
        let (Some(c0), Some(c1), Some(c2), 3) = (ct.c.first(), ct.c.get(1), ct.c.get(2), ct.size())
        else {
            return Err(CkksError::WrongSize(ct.size(), 3));
        };
        let dec = decompose(&self.params, c2)?;
        let (mut d0, mut d1) = key_switch(&self.params, &dec, &rlk.key, None)?;
        let ring = self.params.ring();
        d0.add_assign(ring, c0)?;
        d1.add_assign(ring, c1)?;
        Ok(self.out(vec![d0, d1], ct.scale))
    }

    /// `relinearize(a · b)`.
    pub fn mul_relin(
        &self,
        a: &Ciphertext,
        b: &Ciphertext,
        rlk: &RelinKey,
    ) -> Result<Ciphertext, CkksError> {
        self.relinearize(&self.mul(a, b)?, rlk)
    }

    /// Divides by the last prime `q_l` (rounding) and drops it: the scale
    /// becomes `scale / q_l`, the level `l − 1`.
    pub fn rescale(&self, ct: &Ciphertext) -> Result<Ciphertext, CkksError> {
        ct.check(&self.params)?;
        let l = ct.level();
        if l == 0 {
            return Err(CkksError::NoLevelLeft(0));
        }
        let ql = self
            .params
            .q()
            .get(l)
            .copied()
            .ok_or(CkksError::InvalidLevel(l))? as f64;
        let ring = self.params.ring();
        let mut c = ct.c.clone();
        c.par_iter_mut()
            .try_for_each(|x| x.rescale(ring))
            .map_err(CkksError::from)?;
        Ok(self.out(c, ct.scale / ql))
    }

    /// Drops primes without dividing (scale unchanged) down to `level`.
    pub fn drop_to_level(&self, ct: &Ciphertext, level: usize) -> Result<Ciphertext, CkksError> {
        ct.check(&self.params)?;
        if level > ct.level() {
            return Err(CkksError::InvalidLevel(level));
        }
        let mut c = ct.c.clone();
        for x in c.iter_mut() {
            x.truncate(level + 1, false)?;
        }
        Ok(self.out(c, ct.scale))
    }

    /// Applies the automorphism `g` and switches the key back to `s`,
    /// reusing a precomputed decomposition of `c1` (hoisting).
    fn galois_with(
        &self,
        ct: &Ciphertext,
        dec: &crate::keys::Decomposed,
        g: u64,
        key: &SwitchingKey,
    ) -> Result<Ciphertext, CkksError> {
        let ring = self.params.ring();
        let perm = ring.permutation(g)?;
        let (mut d0, d1) = key_switch(&self.params, dec, key, Some(&perm))?;
        let c0 = ct.c.first().ok_or(CkksError::WrongSize(0, 2))?;
        d0.add_assign(ring, &c0.automorphism(ring, g)?)?;
        Ok(self.out(vec![d0, d1], ct.scale))
    }

    fn c1_of<'a>(&self, ct: &'a Ciphertext) -> Result<&'a RnsPoly, CkksError> {
        ct.check(&self.params)?;
        match (ct.size(), ct.c.get(1)) {
            (2, Some(c1)) => Ok(c1),
            _ => Err(CkksError::WrongSize(ct.size(), 2)),
        }
    }

    /// Rotates the slots left by `steps` (negative: right).
    pub fn rotate(
        &self,
        ct: &Ciphertext,
        steps: i64,
        gk: &GaloisKeys,
    ) -> Result<Ciphertext, CkksError> {
        let c1 = self.c1_of(ct)?;
        let g = rotation_galois_element(&self.params, steps);
        if g == 1 {
            return Ok(self.out(ct.c.clone(), ct.scale));
        }
        let key = gk.get(g)?;
        let dec = decompose(&self.params, c1)?;
        self.galois_with(ct, &dec, g, key)
    }

    /// Complex conjugation of every slot.
    pub fn conjugate(&self, ct: &Ciphertext, gk: &GaloisKeys) -> Result<Ciphertext, CkksError> {
        let c1 = self.c1_of(ct)?;
        let g = conjugation_galois_element(&self.params);
        let key = gk.get(g)?;
        let dec = decompose(&self.params, c1)?;
        self.galois_with(ct, &dec, g, key)
    }

    /// Several rotations of one ciphertext sharing a single decomposition
    /// (hoisted rotations): one ModUp for all, one inner product and ModDown each.
    pub fn rotate_hoisted(
        &self,
        ct: &Ciphertext,
        steps: &[i64],
        gk: &GaloisKeys,
    ) -> Result<Vec<Ciphertext>, CkksError> {
        let c1 = self.c1_of(ct)?;
        let elements: Vec<u64> = steps
            .iter()
            .map(|&s| rotation_galois_element(&self.params, s))
            .collect();
        for &g in &elements {
            if g != 1 {
                gk.get(g)?;
            }
        }
        let dec = decompose(&self.params, c1)?;
        elements
            .iter()
            .map(|&g| {
                if g == 1 {
                    Ok(self.out(ct.c.clone(), ct.scale))
                } else {
                    self.galois_with(ct, &dec, g, gk.get(g)?)
                }
            })
            .collect()
    }

    /// `Σ_j ct_j · pt_j` slot-wise in one pass (lazy modular reduction):
    /// the inner product of a baby-step block of the diagonal method. All
    /// ciphertexts share a level and scale (size 2), all plaintexts a scale
    /// and a level at or above; the result's scale is the product of scales.
    pub fn mul_plain_sum(
        &self,
        pairs: &[(&Ciphertext, &Plaintext)],
    ) -> Result<Ciphertext, CkksError> {
        let Some(&(first, first_pt)) = pairs.first() else {
            return Err(CkksError::InvalidParameters(
                "empty plaintext product sum".into(),
            ));
        };
        let level = first.level();
        for &(ct, pt) in pairs {
            ct.check(&self.params)?;
            if ct.level() != level {
                return Err(CkksError::LevelMismatch(level, ct.level()));
            }
            if ct.size() != 2 {
                return Err(CkksError::WrongSize(ct.size(), 2));
            }
            Self::check_scales(first.scale, ct.scale)?;
            Self::check_scales(first_pt.scale, pt.scale)?;
            self.pt_at_level(ct, pt)?;
        }
        let limbs: Vec<Vec<LimbTriple<'_>>> = (0..=level)
            .map(|i| {
                pairs
                    .iter()
                    .map(|(ct, pt)| {
                        let c0 = ct.c.first().map_or(&[][..], |p| p.limb(i));
                        let c1 = ct.c.get(1).map_or(&[][..], |p| p.limb(i));
                        (c0, c1, pt.poly.limb(i))
                    })
                    .collect()
            })
            .collect();
        let c = self.lazy_sum(level, pairs.len(), |i, range, acc0, acc1| {
            if let Some(terms) = limbs.get(i).and_then(|t| t.get(range)) {
                for &(c0, c1, p) in terms {
                    for (((a0, a1), &x0), (&x1, &w)) in acc0
                        .iter_mut()
                        .zip(acc1.iter_mut())
                        .zip(c0)
                        .zip(c1.iter().zip(p))
                    {
                        *a0 += u128::from(x0) * u128::from(w);
                        *a1 += u128::from(x1) * u128::from(w);
                    }
                }
            }
        })?;
        Ok(self.out(c, first.scale * first_pt.scale))
    }

    /// `Σ_j w_j · ct_j` for real weights, each rounded to an integer at
    /// `target_scale · q_l / scale`, in one pass: the result has scale
    /// exactly `target_scale · q_l`, so a following [`Evaluator::rescale`]
    /// lands on `target_scale`. All ciphertexts share a level and scale
    /// (size 2). Throughput-mode (one value per slot) layers are this.
    pub fn mul_const_sum(
        &self,
        cts: &[&Ciphertext],
        weights: &[f64],
        target_scale: f64,
    ) -> Result<Ciphertext, CkksError> {
        let Some(first) = cts.first() else {
            return Err(CkksError::InvalidParameters(
                "empty constant product sum".into(),
            ));
        };
        let level = first.level();
        for ct in cts {
            ct.check(&self.params)?;
            if ct.level() != level {
                return Err(CkksError::LevelMismatch(level, ct.level()));
            }
            Self::check_scales(first.scale, ct.scale)?;
        }
        self.linear_combination(cts, weights, level, target_scale)
    }

    /// `Σ_j w_j · ct_j` read at `level`, for ciphertexts at `level` or above
    /// (size 2) whose scales may differ: weight `j` is rounded to an integer
    /// at `target_scale · q_level / scale_j`, so every term, and the result,
    /// has scale exactly `target_scale · q_level` and a following
    /// [`Evaluator::rescale`] lands on `target_scale` at `level − 1`. The
    /// higher limbs of ciphertexts above `level` are ignored (no copy).
    /// Polynomial evaluators combine their basis ciphertexts with this.
    pub fn linear_combination(
        &self,
        cts: &[&Ciphertext],
        weights: &[f64],
        level: usize,
        target_scale: f64,
    ) -> Result<Ciphertext, CkksError> {
        if cts.is_empty() {
            return Err(CkksError::InvalidParameters(
                "empty constant product sum".into(),
            ));
        }
        if cts.len() != weights.len() {
            return Err(CkksError::InvalidParameters(format!(
                "{} ciphertexts but {} weights",
                cts.len(),
                weights.len()
            )));
        }
        for ct in cts {
            ct.check(&self.params)?;
            if ct.level() < level {
                return Err(CkksError::LevelMismatch(level, ct.level()));
            }
            if ct.size() != 2 {
                return Err(CkksError::WrongSize(ct.size(), 2));
            }
        }
        let ql = self
            .params
            .q()
            .get(level)
            .copied()
            .ok_or(CkksError::InvalidLevel(level))? as f64;
        if !target_scale.is_finite() || target_scale <= 0.0 {
            return Err(CkksError::ValueOutOfRange(format!("scale {target_scale}")));
        }
        let consts = weights
            .iter()
            .zip(cts)
            .map(|(&w, ct)| self.rns_constant(level, w * (target_scale * ql / ct.scale)))
            .collect::<Result<Vec<_>, _>>()?;
        let c = self.lazy_sum(level, cts.len(), |i, range, acc0, acc1| {
            let (Some(cts), Some(consts)) = (cts.get(range.clone()), consts.get(range)) else {
                return;
            };
            for (ct, k) in cts.iter().zip(consts) {
                let w = k.get(i).copied().unwrap_or(0);
                if w == 0 {
                    continue;
                }
                let c0 = ct.c.first().map_or(&[][..], |p| p.limb(i));
                let c1 = ct.c.get(1).map_or(&[][..], |p| p.limb(i));
                let w = u128::from(w);
                for ((a0, a1), (&x0, &x1)) in
                    acc0.iter_mut().zip(acc1.iter_mut()).zip(c0.iter().zip(c1))
                {
                    *a0 += u128::from(x0) * w;
                    *a1 += u128::from(x1) * w;
                }
            }
        })?;
        Ok(self.out(c, target_scale * ql))
    }

    /// `v · ct` landing on `target_scale` after the next rescale (see
    /// [`Evaluator::mul_const_sum`]).
    pub fn mul_const_to_scale(
        &self,
        ct: &Ciphertext,
        v: f64,
        target_scale: f64,
    ) -> Result<Ciphertext, CkksError> {
        self.mul_const_sum(&[ct], &[v], target_scale)
    }

    /// Runs `fill(limb, terms, acc0, acc1)` for every limb of `level` over
    /// chunks of the `terms` products, where `fill` adds products of two
    /// reduced residues into 128-bit accumulators; chunks are short enough
    /// never to overflow, and the sums are reduced into two NTT-form
    /// polynomials.
    fn lazy_sum<F>(&self, level: usize, terms: usize, fill: F) -> Result<Vec<RnsPoly>, CkksError>
    where
        F: Fn(usize, std::ops::Range<usize>, &mut [u128], &mut [u128]) + Sync,
    {
        let ring = self.params.ring();
        let n = self.params.n();
        let moduli = ring.q_moduli();
        let mut c0 = RnsPoly::zero(ring, level + 1, 0, true);
        let mut c1 = RnsPoly::zero(ring, level + 1, 0, true);
        c0.data_mut()
            .par_chunks_mut(n)
            .zip(c1.data_mut().par_chunks_mut(n))
            .zip(moduli.par_iter())
            .enumerate()
            .for_each(|(i, ((o0, o1), m))| {
                // (q−1)^2 · chunk + q stays below 2^128.
                let q1 = u128::from(m.value().saturating_sub(1)).max(1);
                let chunk = usize::try_from((u128::MAX / (q1 * q1)).saturating_sub(2))
                    .unwrap_or(usize::MAX)
                    .max(1);
                let mut acc0 = vec![0u128; n];
                let mut acc1 = vec![0u128; n];
                let mut start = 0;
                while start < terms {
                    let end = terms.min(start.saturating_add(chunk));
                    fill(i, start..end, &mut acc0, &mut acc1);
                    if end < terms {
                        for a in acc0.iter_mut().chain(acc1.iter_mut()) {
                            *a = u128::from(m.reduce_u128(*a));
                        }
                    }
                    start = end;
                }
                for (o, a) in o0.iter_mut().zip(&acc0) {
                    *o = m.reduce_u128(*a);
                }
                for (o, a) in o1.iter_mut().zip(&acc1) {
                    *o = m.reduce_u128(*a);
                }
            });
        Ok(vec![c0, c1])
    }

    /// The same ciphertext read at another scale: its value is multiplied
    /// by `scale / new_scale` at no cost in level or noise (a free constant
    /// multiplication, e.g. to map an input interval onto [−1, 1] before a
    /// polynomial approximation).
    pub fn with_scale(&self, ct: &Ciphertext, new_scale: f64) -> Result<Ciphertext, CkksError> {
        ct.check(&self.params)?;
        if !new_scale.is_finite() || new_scale < 1.0 {
            return Err(CkksError::ValueOutOfRange(format!("scale {new_scale}")));
        }
        Ok(self.out(ct.c.clone(), new_scale))
    }

    /// The rotation steps [`Evaluator::inner_sum`] needs for a window of `n` slots.
    pub fn inner_sum_steps(n: usize) -> Vec<i64> {
        let mut v = Vec::new();
        let mut k = 1usize;
        while k < n {
            v.push(k as i64);
            k <<= 1;
        }
        v
    }

    /// Every slot `j` receives `Σ_{k < n} slot_{j+k}` (cyclically); `n` a
    /// power of two up to the slot count. With `n = slots`, every slot holds
    /// the total.
    pub fn inner_sum(
        &self,
        ct: &Ciphertext,
        n: usize,
        gk: &GaloisKeys,
    ) -> Result<Ciphertext, CkksError> {
        if !n.is_power_of_two() || n > self.params.slots() {
            return Err(CkksError::InvalidParameters(format!(
                "inner sum window {n} must be a power of two ≤ {}",
                self.params.slots()
            )));
        }
        let mut acc = ct.clone();
        for s in Self::inner_sum_steps(n) {
            let r = self.rotate(&acc, s, gk)?;
            acc = self.add(&acc, &r)?;
        }
        Ok(acc)
    }

    /// Adds a fresh public-key encryption of zero: `c1` becomes a fresh
    /// RLWE sample, independent of the computation. On its own this hides
    /// how the ciphertext was computed but not its noise, which still
    /// depends on the circuit; [`Evaluator::sanitize`] also floods it.
    pub fn rerandomize<R: RngCore + CryptoRng>(
        &self,
        ct: &Ciphertext,
        pk: &PublicKey,
        rng: &mut R,
    ) -> Result<Ciphertext, CkksError> {
        ct.check(&self.params)?;
        if pk.params != self.params {
            return Err(CkksError::ParamsMismatch);
        }
        if ct.size() != 2 {
            return Err(CkksError::WrongSize(ct.size(), 2));
        }
        let zero = Pt {
            poly: RnsPoly::zero(self.params.ring(), ct.level() + 1, 0, true),
            scale: ct.scale,
        };
        let fresh = Encryptor::with_public_key(pk).encrypt(&zero, rng)?;
        self.add(ct, &fresh)
    }

    /// Circuit privacy: re-randomizes an evaluated ciphertext before it goes
    /// back to the owner of the secret key, so that it reveals the result
    /// and nothing else about the computation (e.g. a model's weights).
    ///
    /// Adds a fresh public-key encryption of zero (the `c1` component
    /// becomes a fresh RLWE sample, independent of the circuit) and
    /// Gaussian flooding noise on `c0` that statistically hides everything
    /// besides `Δ·result` — noise and approximation error, both bounded by
    /// `bound.total()` — in the sense of [`Flooding`] (noise-flooding
    /// circuit privacy, Gentry 2009, Ducas–Stehlé 2016; the divergence is
    /// bounded as in the module documentation of [`crate::encrypt`]).
    /// `flooding` must come from [`Flooding::for_circuit_privacy`] with a
    /// bound at least `bound.total()` and a count of the ciphertexts that
    /// will ever be returned under the same secret inputs.
    ///
    /// Returns the sanitized ciphertext and its bound. The owner's
    /// decryption then carries noise of standard deviation `σ` per
    /// coefficient; see [`Flooding::precision_bits`].
    pub fn sanitize<R: RngCore + CryptoRng>(
        &self,
        ct: &Ciphertext,
        pk: &PublicKey,
        bound: &NoiseBound,
        flooding: &Flooding,
        rng: &mut R,
    ) -> Result<(Ciphertext, NoiseBound), CkksError> {
        ct.check(&self.params)?;
        if pk.params != self.params {
            return Err(CkksError::ParamsMismatch);
        }
        if ct.size() != 2 {
            return Err(CkksError::WrongSize(ct.size(), 2));
        }
        if !flooding.covers(bound.total()) {
            return Err(CkksError::Flooding(format!(
                "the ciphertext's bound 2^{:.1} (noise and approximation error) exceeds the 2^{:.1} \
                 the flooding was sized for",
                bound.total().log2(),
                flooding.bound().log2()
            )));
        }
        let ring = self.params.ring();
        let q_len = ct.level() + 1;
        let mut out = self.rerandomize(ct, pk, rng)?;
        let mut f = flooding_poly(&self.params, flooding.sigma(), q_len, rng)?;
        if let Some(c0) = out.c.first_mut() {
            c0.add_assign(ring, &f)?;
        }
        zeroize::Zeroize::zeroize(&mut f);
        let after = bound.after_flooding(&self.params, flooding.sigma(), flooding.grid(), true);
        Ok((out, after))
    }
}
