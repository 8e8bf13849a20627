//! Homomorphic operations with exact level and scale bookkeeping: a
//! mismatch is a typed error, never silent garbage.

use crate::encoder::Plaintext;
use crate::encrypt::Ciphertext;
use crate::error::CkksError;
use crate::keys::{
    conjugation_galois_element, decompose, key_switch, rotation_galois_element, GaloisKeys,
    RelinKey, SwitchingKey,
};
use crate::params::CkksParams;
use cipherflow_ring::RnsPoly;
use rayon::prelude::*;

/// Relative tolerance when comparing scales (float rounding of equal paths).
const SCALE_TOLERANCE: f64 = 1e-9;

fn scales_match(a: f64, b: f64) -> bool {
    (a - b).abs() <= SCALE_TOLERANCE * a.abs().max(b.abs())
}

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
}
