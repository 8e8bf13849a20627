//! Arithmetic on encrypted vectors: every result sits at the canonical
//! scale of its level (see the module documentation of `vector`).

use super::context::VectorContext;
use crate::layout::{replicated_chunk, EncTensor, Layout};
use crate::{EncodedMatVec, LinearMap, Polynomial, TensorError};
use cipherflow_ckks::{rotation_galois_element, Ciphertext, CkksError, NoiseBound};
use rand_core::{CryptoRng, RngCore};
use std::borrow::Cow;

/// An encrypted vector of `len` values (one ciphertext).
#[derive(Clone, Debug)]
pub struct CkksVector {
    pub(crate) ct: Ciphertext,
    pub(crate) len: usize,
    pub(crate) chunk: usize,
    /// The padding slots (`len..chunk` of each period) hold zero.
    pub(crate) clean: bool,
    /// The proven noise bound, when this process computed the vector from
    /// encryptions it made (unknown for a vector that arrived as bytes).
    pub(crate) bound: Option<NoiseBound>,
}

impl CkksVector {
    pub(crate) fn new(
        ct: Ciphertext,
        len: usize,
        chunk: usize,
        clean: bool,
        bound: Option<NoiseBound>,
    ) -> Self {
        Self {
            ct,
            len,
            chunk,
            clean,
            bound,
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the vector is empty (never: vectors hold at least one value).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Multiplicative levels left.
    pub fn level(&self) -> usize {
        self.ct.level()
    }

    /// The scale of the ciphertext (the canonical scale of its level).
    pub fn scale(&self) -> f64 {
        self.ct.scale()
    }

    /// The ciphertext.
    pub fn ciphertext(&self) -> &Ciphertext {
        &self.ct
    }

    /// `log2` of the proven noise bound, when known here.
    pub fn noise_bound_log2(&self) -> Option<f64> {
        self.bound.map(|b| b.noise_log2())
    }
}

fn map_bound<F>(b: Option<NoiseBound>, f: F) -> Result<Option<NoiseBound>, TensorError>
where
    F: FnOnce(NoiseBound) -> Result<NoiseBound, CkksError>,
{
    Ok(match b {
        Some(b) => Some(f(b)?),
        None => None,
    })
}

fn both<F>(
    a: Option<NoiseBound>,
    b: Option<NoiseBound>,
    f: F,
) -> Result<Option<NoiseBound>, TensorError>
where
    F: FnOnce(NoiseBound, NoiseBound) -> Result<NoiseBound, CkksError>,
{
    Ok(match (a, b) {
        (Some(a), Some(b)) => Some(f(a, b)?),
        _ => None,
    })
}

fn check_values(w: &[f64], len: usize) -> Result<f64, TensorError> {
    if w.len() != len {
        return Err(TensorError::Shape(format!(
            "{} plaintext values for a vector of {len}",
            w.len()
        )));
    }
    finite_max(w)
}

fn finite_max(w: &[f64]) -> Result<f64, TensorError> {
    if w.iter().any(|v| !v.is_finite()) {
        return Err(TensorError::Invalid(
            "plaintext values must be finite".into(),
        ));
    }
    Ok(w.iter().fold(0.0f64, |m, v| m.max(v.abs())))
}

fn check_scalar(v: f64) -> Result<(), TensorError> {
    if !v.is_finite() {
        return Err(TensorError::Invalid(format!("scalar {v} is not finite")));
    }
    Ok(())
}

impl VectorContext {
    fn q_at(&self, level: usize) -> Result<f64, TensorError> {
        self.params
            .q()
            .get(level)
            .map(|&q| q as f64)
            .ok_or(TensorError::Ckks(CkksError::InvalidLevel(level)))
    }

    /// Puts `ct` exactly on its level's canonical scale (it is within
    /// floating-point rounding of it after every operation here).
    fn settle(&self, ct: Ciphertext) -> Result<Ciphertext, TensorError> {
        let want = self.scale_at(ct.level())?;
        if ct.scale() == want {
            return Ok(ct);
        }
        if (ct.scale() - want).abs() > 1e-9 * want {
            return Err(TensorError::Invalid(format!(
                "a ciphertext at scale 2^{:.4} where level {} has 2^{:.4} (not made by this context?)",
                ct.scale().log2(),
                ct.level(),
                want.log2()
            )));
        }
        Ok(self.eval.with_scale(&ct, want)?)
    }

    fn check(&self, v: &CkksVector) -> Result<(), TensorError> {
        if v.ct.scale() != self.scale_at(v.level())? {
            return Err(TensorError::Invalid(
                "the vector's scale is not its level's canonical scale (not made by this context?)"
                    .into(),
            ));
        }
        Ok(())
    }

    fn same_len(a: &CkksVector, b: &CkksVector) -> Result<(), TensorError> {
        if a.len != b.len {
            return Err(TensorError::Shape(format!(
                "vectors of {} and {} values",
                a.len, b.len
            )));
        }
        Ok(())
    }

    /// `v` brought down to `level` at that level's canonical scale
    /// (borrowed, not copied, when it is there already).
    fn lower<'v>(
        &self,
        v: &'v CkksVector,
        level: usize,
    ) -> Result<Cow<'v, CkksVector>, TensorError> {
        self.check(v)?;
        if v.level() == level {
            return Ok(Cow::Borrowed(v));
        }
        if v.level() < level {
            return Err(TensorError::Ckks(CkksError::InvalidLevel(level)));
        }
        let above = level + 1;
        let ct = self.eval.drop_to_level(&v.ct, above)?;
        let target = self.scale_at(level)?;
        let q = self.q_at(above)?;
        let ct = self
            .eval
            .rescale(&self.eval.mul_const_to_scale(&ct, 1.0, target)?)?;
        let bound = map_bound(v.bound, |b| {
            b.mul_const_at(1.0, target * q)?
                .rescale(&self.params, above)
        })?;
        Ok(Cow::Owned(CkksVector::new(
            self.settle(ct)?,
            v.len,
            v.chunk,
            v.clean,
            bound,
        )))
    }

    fn meet<'v>(
        &self,
        a: &'v CkksVector,
        b: &'v CkksVector,
    ) -> Result<(Cow<'v, CkksVector>, Cow<'v, CkksVector>), TensorError> {
        Self::same_len(a, b)?;
        let level = a.level().min(b.level());
        Ok((self.lower(a, level)?, self.lower(b, level)?))
    }

    /// Slot values of a plaintext vector in `v`'s layout (zero padding).
    fn pack(&self, w: &[f64], chunk: usize) -> Vec<f64> {
        (0..self.slots())
            .map(|t| w.get(t % chunk).copied().unwrap_or(0.0))
            .collect()
    }

    /// The scale at which a plaintext multiplied into a ciphertext at
    /// `level` lands the rescaled product on `Δ_{level−1}`.
    fn product_scale(&self, level: usize) -> Result<f64, TensorError> {
        if level == 0 {
            return Err(TensorError::Ckks(CkksError::NoLevelLeft(0)));
        }
        Ok(self.q_at(level)? * self.scale_at(level - 1)? / self.scale_at(level)?)
    }

    /// `a + b`.
    pub fn add(&self, a: &CkksVector, b: &CkksVector) -> Result<CkksVector, TensorError> {
        let (a, b) = self.meet(a, b)?;
        let ct = self.eval.add(&a.ct, &b.ct)?;
        let bound = both(a.bound, b.bound, |x, y| x.add(&y))?;
        Ok(CkksVector::new(
            ct,
            a.len,
            a.chunk,
            a.clean && b.clean,
            bound,
        ))
    }

    /// `a − b`.
    pub fn sub(&self, a: &CkksVector, b: &CkksVector) -> Result<CkksVector, TensorError> {
        let (a, b) = self.meet(a, b)?;
        let ct = self.eval.sub(&a.ct, &b.ct)?;
        let bound = both(a.bound, b.bound, |x, y| x.add(&y))?;
        Ok(CkksVector::new(
            ct,
            a.len,
            a.chunk,
            a.clean && b.clean,
            bound,
        ))
    }

    /// `−v`.
    pub fn neg(&self, v: &CkksVector) -> Result<CkksVector, TensorError> {
        self.check(v)?;
        let ct = self.eval.neg(&v.ct)?;
        Ok(CkksVector::new(ct, v.len, v.chunk, v.clean, v.bound))
    }

    /// `v + w` for plaintext values `w` (as many as `v` has).
    pub fn add_plain(&self, v: &CkksVector, w: &[f64]) -> Result<CkksVector, TensorError> {
        self.check(v)?;
        let max = check_values(w, v.len)?;
        let pt = self
            .encoder
            .encode(&self.pack(w, v.chunk), v.level(), v.ct.scale())?;
        let ct = self.eval.add_plain(&v.ct, &pt)?;
        let bound = map_bound(v.bound, |b| b.add_plain(&self.params, max))?;
        Ok(CkksVector::new(ct, v.len, v.chunk, v.clean, bound))
    }

    /// `v + c` for a scalar `c` (added to every value).
    pub fn add_scalar(&self, v: &CkksVector, c: f64) -> Result<CkksVector, TensorError> {
        self.check(v)?;
        check_scalar(c)?;
        let ct = self.eval.add_const(&v.ct, c)?;
        let bound = map_bound(v.bound, |b| b.add_const(c))?;
        let clean = v.clean && (c == 0.0 || v.len == v.chunk);
        Ok(CkksVector::new(ct, v.len, v.chunk, clean, bound))
    }

    /// `a ⊙ b` (element-wise; one level).
    pub fn mul(&self, a: &CkksVector, b: &CkksVector) -> Result<CkksVector, TensorError> {
        let same = std::ptr::eq(a, b);
        let (a, b) = self.meet(a, b)?;
        let level = a.level();
        if level == 0 {
            return Err(TensorError::Ckks(CkksError::NoLevelLeft(0)));
        }
        let prod = if same {
            self.eval.square(&a.ct)?
        } else {
            self.eval.mul(&a.ct, &b.ct)?
        };
        let ct = self
            .eval
            .rescale(&self.eval.relinearize(&prod, self.relin()?)?)?;
        let bound = both(a.bound, b.bound, |x, y| {
            x.mul_relin(&y, &self.params, level)?
                .rescale(&self.params, level)
        })?;
        Ok(CkksVector::new(
            self.settle(ct)?,
            a.len,
            a.chunk,
            a.clean || b.clean,
            bound,
        ))
    }

    /// `v ⊙ w` for plaintext values `w` (one level).
    pub fn mul_plain(&self, v: &CkksVector, w: &[f64]) -> Result<CkksVector, TensorError> {
        self.check(v)?;
        let max = check_values(w, v.len)?;
        let level = v.level();
        let pt_scale = self.product_scale(level)?;
        let pt = self
            .encoder
            .encode(&self.pack(w, v.chunk), level, pt_scale)?;
        let ct = self.eval.rescale(&self.eval.mul_plain(&v.ct, &pt)?)?;
        let bound = map_bound(v.bound, |b| {
            b.mul_plain(&self.params, max, pt_scale)?
                .rescale(&self.params, level)
        })?;
        // The plaintext's padding is zero: so is the product's.
        Ok(CkksVector::new(
            self.settle(ct)?,
            v.len,
            v.chunk,
            true,
            bound,
        ))
    }

    /// `c · v` for a scalar `c` (one level).
    pub fn mul_scalar(&self, v: &CkksVector, c: f64) -> Result<CkksVector, TensorError> {
        self.check(v)?;
        check_scalar(c)?;
        let level = v.level();
        if level == 0 {
            return Err(TensorError::Ckks(CkksError::NoLevelLeft(0)));
        }
        let target = self.scale_at(level - 1)?;
        let q = self.q_at(level)?;
        let ct = self
            .eval
            .rescale(&self.eval.mul_const_to_scale(&v.ct, c, target)?)?;
        let bound = map_bound(v.bound, |b| {
            b.mul_const_at(c, target * q)?.rescale(&self.params, level)
        })?;
        Ok(CkksVector::new(
            self.settle(ct)?,
            v.len,
            v.chunk,
            v.clean,
            bound,
        ))
    }

    /// `v ⊙ v` (one level).
    pub fn square(&self, v: &CkksVector) -> Result<CkksVector, TensorError> {
        self.mul(v, v)
    }

    /// `v^k` element-wise (`k ≥ 1`; `⌈log2 k⌉` levels, by squaring).
    pub fn pow(&self, v: &CkksVector, k: u32) -> Result<CkksVector, TensorError> {
        if k == 0 {
            return Err(TensorError::Invalid(
                "pow needs an exponent of at least 1".into(),
            ));
        }
        let mut result: Option<CkksVector> = None;
        let mut base = v.clone();
        let mut e = k;
        loop {
            if e & 1 == 1 {
                result = Some(match result {
                    None => base.clone(),
                    Some(r) => self.mul(&r, &base)?,
                });
            }
            e >>= 1;
            if e == 0 {
                break;
            }
            base = self.square(&base)?;
        }
        result.ok_or_else(|| TensorError::Invalid("pow".into()))
    }

    /// Makes sure the Galois keys for `steps` are here (made now when the
    /// secret key is; otherwise a [`TensorError::MissingKey`] naming them).
    fn ensure_steps<R: RngCore + CryptoRng>(
        &self,
        steps: &[i64],
        rng: &mut R,
    ) -> Result<(), TensorError> {
        let missing: Vec<i64> = {
            let g = self.read_galois()?;
            steps
                .iter()
                .copied()
                .filter(|&s| !g.contains(rotation_galois_element(&self.params, s)))
                .filter(|&s| s.rem_euclid(self.slots() as i64) != 0)
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        if self.has_secret_key() {
            self.generate_galois_keys(Some(&missing), rng)?;
            return Ok(());
        }
        Err(TensorError::MissingKey(format!(
            "Galois keys for the rotation steps {missing:?}: the key holder makes them with \
             generate_galois_keys before sharing the public context"
        )))
    }

    /// `v` rotated left by `k` (right for negative `k`), cyclically over
    /// its padded length. Uses the key for `k` when present (or makes it,
    /// holding the secret key), otherwise composes power-of-two rotations.
    pub fn rotate<R: RngCore + CryptoRng>(
        &self,
        v: &CkksVector,
        k: i64,
        rng: &mut R,
    ) -> Result<CkksVector, TensorError> {
        self.check(v)?;
        let chunk = v.chunk as i64;
        let step = k.rem_euclid(chunk);
        if step == 0 {
            return Ok(v.clone());
        }
        let direct = self
            .read_galois()?
            .contains(rotation_galois_element(&self.params, step));
        let steps: Vec<i64> = if direct || self.has_secret_key() {
            vec![step]
        } else {
            (0..63)
                .map(|b| 1i64 << b)
                .take_while(|&p| p <= step)
                .filter(|&p| step & p != 0)
                .collect()
        };
        self.ensure_steps(&steps, rng)?;
        let g = self.read_galois()?;
        let level = v.level();
        let mut ct = v.ct.clone();
        let mut bound = v.bound;
        for s in steps {
            ct = self.eval.rotate(&ct, s, &g)?;
            bound = map_bound(bound, |b| b.rotate(&self.params, level))?;
        }
        let clean = v.clean && v.len == v.chunk;
        Ok(CkksVector::new(ct, v.len, v.chunk, clean, bound))
    }

    /// The sum of the values: a vector of one value (one level when the
    /// padding may hold non-zero values, none otherwise).
    pub fn sum<R: RngCore + CryptoRng>(
        &self,
        v: &CkksVector,
        rng: &mut R,
    ) -> Result<CkksVector, TensorError> {
        let v: Cow<'_, CkksVector> = if v.clean {
            self.check(v)?;
            Cow::Borrowed(v)
        } else {
            Cow::Owned(self.mul_plain(v, &vec![1.0; v.len])?)
        };
        let steps = cipherflow_ckks::Evaluator::inner_sum_steps(v.chunk);
        self.ensure_steps(&steps, rng)?;
        let g = self.read_galois()?;
        let ct = self.eval.inner_sum(&v.ct, v.chunk, &g)?;
        let level = v.level();
        let bound = map_bound(v.bound, |b| b.inner_sum(&self.params, level, v.chunk))?;
        Ok(CkksVector::new(ct, 1, 1, true, bound))
    }

    /// `Σ a_i b_i`: a vector of one value.
    pub fn dot<R: RngCore + CryptoRng>(
        &self,
        a: &CkksVector,
        b: &CkksVector,
        rng: &mut R,
    ) -> Result<CkksVector, TensorError> {
        let p = self.mul(a, b)?;
        self.sum(&p, rng)
    }

    /// `Σ v_i w_i` for plaintext `w`: a vector of one value (one level).
    pub fn dot_plain<R: RngCore + CryptoRng>(
        &self,
        v: &CkksVector,
        w: &[f64],
        rng: &mut R,
    ) -> Result<CkksVector, TensorError> {
        let p = self.mul_plain(v, w)?;
        self.sum(&p, rng)
    }

    /// `v · W` for a plaintext matrix `W` of `v.len()` rows and `cols`
    /// columns, row-major (numpy's `v @ W`): a vector of `cols` values, one
    /// level (the diagonal method, see [`EncodedMatVec`]).
    pub fn matmul<R: RngCore + CryptoRng>(
        &self,
        v: &CkksVector,
        w: &[f64],
        cols: usize,
        rng: &mut R,
    ) -> Result<CkksVector, TensorError> {
        self.check(v)?;
        let rows = v.len;
        if cols == 0 || cols > self.slots() || Some(w.len()) != rows.checked_mul(cols) {
            return Err(TensorError::Shape(format!(
                "a {rows}-vector times a matrix needs {rows}×cols values with 1 ≤ cols ≤ {}, got \
                 {} values for {cols} columns",
                self.slots(),
                w.len()
            )));
        }
        finite_max(w)?;
        let level = v.level();
        let out_scale = self.scale_at(
            level
                .checked_sub(1)
                .ok_or(TensorError::Ckks(CkksError::NoLevelLeft(0)))?,
        )?;
        // The map y = Wᵀ v: row j of the map is column j of W.
        let mut a = vec![0.0; rows * cols];
        for (i, row) in w.chunks_exact(cols).enumerate() {
            for (j, &x) in row.iter().enumerate() {
                if let Some(slot) = a.get_mut(j * rows + i) {
                    *slot = x;
                }
            }
        }
        let map = LinearMap::new(cols, rows, a, vec![0.0; cols])?;
        let emv = EncodedMatVec::new(
            &self.encoder,
            &self.eval,
            &map,
            level,
            v.ct.scale(),
            out_scale,
        )?;
        self.ensure_steps(&emv.rotation_steps(), rng)?;
        let x = EncTensor::from_parts(
            vec![v.ct.clone()],
            vec![rows],
            Layout::Replicated { chunk: v.chunk },
            self.slots(),
        )?;
        let g = self.read_galois()?;
        let out = emv.apply(&self.eval, &g, &x)?;
        let ct = out
            .ciphertexts()
            .first()
            .cloned()
            .ok_or_else(|| TensorError::Shape("the product has no ciphertext".into()))?;
        let bound = map_bound(v.bound, |b| {
            emv.bound(&self.params, &b).map_err(|e| match e {
                TensorError::Ckks(c) => c,
                other => CkksError::Flooding(other.to_string()),
            })
        })?;
        let chunk = replicated_chunk(cols, self.slots());
        Ok(CkksVector::new(self.settle(ct)?, cols, chunk, true, bound))
    }

    /// `Σ_i coeffs[i] · v^i` element-wise (power basis, at most 64
    /// coefficients; `⌈log2(degree + 1)⌉` levels or so, the schedule of
    /// [`Polynomial`]). The noise bound is tracked only for inputs proven
    /// within `[−1, 1]`.
    pub fn polyval(&self, v: &CkksVector, coeffs: &[f64]) -> Result<CkksVector, TensorError> {
        self.check(v)?;
        let last = coeffs.iter().rposition(|&c| c != 0.0).unwrap_or(0);
        let coeffs = coeffs.get(..=last).unwrap_or(coeffs);
        if coeffs.len() <= 1 {
            let c = coeffs.first().copied().unwrap_or(0.0);
            let zero = self.mul_scalar(v, 0.0)?;
            return self.add_scalar(&zero, c);
        }
        let p = Polynomial::new(coeffs)?;
        let level = v.level();
        let out_level = level
            .checked_sub(p.depth())
            .ok_or(TensorError::Ckks(CkksError::NoLevelLeft(level)))?;
        let out_scale = self.scale_at(out_level)?;
        let ct = p.eval_ct(&self.eval, self.relin()?, &v.ct, out_scale)?;
        let bound = match v.bound {
            Some(b) if b.values() <= 1.0 => Some(p.bound(&self.params, &b, level, out_scale)?),
            _ => None,
        };
        let constant = coeffs.first().copied().unwrap_or(0.0);
        let clean = v.clean && (constant == 0.0 || v.len == v.chunk);
        Ok(CkksVector::new(
            self.settle(ct)?,
            v.len,
            v.chunk,
            clean,
            bound,
        ))
    }
}
