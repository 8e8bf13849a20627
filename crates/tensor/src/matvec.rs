//! Plaintext matrix × encrypted vector: the diagonal method (Halevi–Shoup)
//! in baby-step/giant-step form with hoisted baby-step rotations, for any
//! shape.
//!
//! The input is replicated with period `n'` (its padded length) and the
//! output comes out replicated with period `m'`. For an `m' × n'` block
//! with `D = min(m', n')` generalised diagonals of length `L = max(m', n')`,
//! `d_j[i] = A[i mod m', (i + j) mod n']`:
//!
//! `z = Σ_j d_j ⊙ rot(x, j) = Σ_g rot(Σ_b rot(d_{g·n1+b}, −g·n1) ⊙ rot(x, b), g·n1)`
//!
//! with `n1·n2 = D`: `n1 − 1` hoisted baby rotations of the input (one
//! decomposition), `n2 − 1` giant rotations, and for wide blocks
//! (`n' > m'`) `log2(n'/m')` more to fold the `n'/m'` partial sums. Inputs
//! longer than the slot count are split in slot-sized chunks (column
//! blocks) that share the giant rotations; outputs longer than the slots
//! come out as several ciphertexts (row blocks). All-zero diagonals (common
//! in convolution matrices) are skipped, and a giant step with no diagonal
//! costs nothing. The diagonals are encoded once, at the input level, with
//! the scale that makes the rescaled output land exactly on the target scale.

use crate::layout::{replicated_chunk, EncTensor, Layout};
use crate::linear::LinearMap;
use crate::TensorError;
use cipherflow_ckks::{
    Ciphertext, CkksParams, Encoder, Evaluator, GaloisKeys, NoiseBound, Plaintext,
};
use std::collections::BTreeSet;

/// The packing geometry of a matrix product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Slot count.
    pub slots: usize,
    /// Output chunk `m'` (output replication period).
    pub m_chunk: usize,
    /// Input chunk `n'` (input replication period).
    pub n_chunk: usize,
    /// Output ciphertexts.
    pub row_blocks: usize,
    /// Input ciphertexts.
    pub col_blocks: usize,
    /// Baby steps.
    pub n1: usize,
    /// Giant steps.
    pub n2: usize,
}

impl Geometry {
    /// The geometry of a `rows × cols` product in `slots` slots.
    pub fn new(rows: usize, cols: usize, slots: usize) -> Self {
        let m_chunk = replicated_chunk(rows, slots);
        let n_chunk = replicated_chunk(cols, slots);
        let d = m_chunk.min(n_chunk);
        let log_d = d.trailing_zeros();
        // Baby steps share one decomposition (hoisted), giant steps do not:
        // n1 ≈ 2√D is faster than √D for small blocks (64×64 at N = 2^13,
        // one thread: 23 ms with 15 + 3 rotations vs 31 ms with 7 + 7);
        // from D = 256 on the two take the same time (the TenSEAL CNN's
        // 256 × 1024 convolution at N = 2^13, two threads: 112–117 ms with
        // 15 + 15 against 114–119 ms with 31 + 7), and √D needs a fifth
        // fewer Galois keys (21.3 MB against 26.7 MB), which the user
        // uploads.
        let extra = u32::from(d < 256);
        let n1 = 1usize << (log_d.div_ceil(2) + extra).min(log_d);
        Geometry {
            slots,
            m_chunk,
            n_chunk,
            row_blocks: rows.div_ceil(m_chunk).max(1),
            col_blocks: cols.div_ceil(n_chunk).max(1),
            n1,
            n2: d / n1,
        }
    }

    /// Number of generalised diagonals per block.
    pub fn diagonals(&self) -> usize {
        self.m_chunk.min(self.n_chunk)
    }

    /// Rotations folding the partial sums of a wide block.
    pub fn fold_steps(&self) -> Vec<i64> {
        let mut v = Vec::new();
        let mut s = self.m_chunk;
        while s < self.n_chunk {
            v.push(s as i64);
            s *= 2;
        }
        v
    }
}

/// One encoded term: column block, baby step, pre-rotated diagonal.
#[derive(Clone, Debug)]
struct Term {
    col: usize,
    baby: usize,
    pt: Plaintext,
    /// Largest |value| of the diagonal (for the noise bound).
    max_abs: f64,
}

/// A matrix pre-encoded for products with encrypted vectors at one level
/// and input scale (cached: encode once, multiply many times).
#[derive(Clone, Debug)]
pub struct EncodedMatVec {
    geom: Geometry,
    rows: usize,
    cols: usize,
    level: usize,
    in_scale: f64,
    out_scale: f64,
    /// `[row block][giant step]` → terms.
    terms: Vec<Vec<Vec<Term>>>,
    /// Per row block, at the product scale.
    bias: Vec<Plaintext>,
    /// Largest |bias| (for the noise bound).
    bias_max: f64,
    /// Largest row sum of |weights| (for the bound on the output values).
    row_abs_max: f64,
    babies: Vec<usize>,
}

impl EncodedMatVec {
    /// Encodes `map` for inputs at `level` and `in_scale`; the (rescaled)
    /// output will be at `level − 1` and exactly `out_scale`.
    pub fn new(
        encoder: &Encoder,
        eval: &Evaluator,
        map: &LinearMap,
        level: usize,
        in_scale: f64,
        out_scale: f64,
    ) -> Result<Self, TensorError> {
        let params = eval.params();
        let slots = params.slots();
        if level == 0 {
            return Err(TensorError::Ckks(cipherflow_ckks::CkksError::NoLevelLeft(
                0,
            )));
        }
        let ql = *params.q().get(level).ok_or(TensorError::Ckks(
            cipherflow_ckks::CkksError::InvalidLevel(level),
        ))? as f64;
        let pt_scale = out_scale * ql / in_scale;
        let geom = Geometry::new(map.rows(), map.cols(), slots);
        let (mc, nc) = (geom.m_chunk, geom.n_chunk);
        let len = mc.max(nc);
        let mut terms = Vec::with_capacity(geom.row_blocks);
        let mut babies = BTreeSet::new();
        for r in 0..geom.row_blocks {
            let mut per_giant = Vec::with_capacity(geom.n2);
            for g in 0..geom.n2 {
                let mut list = Vec::new();
                for c in 0..geom.col_blocks {
                    for b in 0..geom.n1 {
                        let j = g * geom.n1 + b;
                        let diag: Vec<f64> = (0..len)
                            .map(|i| map.get(r * mc + i % mc, c * nc + (i + j) % nc))
                            .collect();
                        if diag.iter().all(|v| *v == 0.0) {
                            continue;
                        }
                        let shift = g * geom.n1;
                        let slotsv: Vec<f64> = (0..slots)
                            .map(|t| {
                                diag.get(((t + slots - shift % slots) % slots) % len)
                                    .copied()
                                    .unwrap_or(0.0)
                            })
                            .collect();
                        let pt = encoder.encode(&slotsv, level, pt_scale)?;
                        babies.insert(b);
                        list.push(Term {
                            col: c,
                            baby: b,
                            pt,
                            max_abs: diag.iter().fold(0.0, |m, v| m.max(v.abs())),
                        });
                    }
                }
                per_giant.push(list);
            }
            terms.push(per_giant);
        }
        let bias = (0..geom.row_blocks)
            .map(|r| {
                let v: Vec<f64> = (0..slots)
                    .map(|t| {
                        let i = r * mc + t % mc;
                        if i < map.rows() {
                            map.bias().get(i).copied().unwrap_or(0.0)
                        } else {
                            0.0
                        }
                    })
                    .collect();
                encoder.encode(&v, level, in_scale * pt_scale)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            geom,
            rows: map.rows(),
            cols: map.cols(),
            level,
            in_scale,
            out_scale,
            terms,
            bias,
            bias_max: map.bias().iter().fold(0.0, |m, v| m.max(v.abs())),
            row_abs_max: (0..map.rows())
                .map(|i| map.row(i).iter().map(|v| v.abs()).sum::<f64>())
                .fold(0.0, f64::max),
            babies: babies.into_iter().collect(),
        })
    }

    /// The packing geometry.
    pub fn geometry(&self) -> Geometry {
        self.geom
    }

    /// Exactly the rotation steps [`EncodedMatVec::apply`] uses.
    pub fn rotation_steps(&self) -> Vec<i64> {
        let mut s: BTreeSet<i64> = self
            .babies
            .iter()
            .filter(|&&b| b > 0)
            .map(|&b| b as i64)
            .collect();
        for per_giant in &self.terms {
            for (g, list) in per_giant.iter().enumerate() {
                if g > 0 && !list.is_empty() {
                    s.insert((g * self.geom.n1) as i64);
                }
            }
        }
        s.extend(self.geom.fold_steps());
        s.into_iter().collect()
    }

    /// Number of key switches (rotations) one product costs.
    pub fn rotation_count(&self) -> usize {
        let babies = self.babies.iter().filter(|&&b| b > 0).count() * self.geom.col_blocks;
        let giants: usize = self
            .terms
            .iter()
            .map(|pg| {
                pg.iter()
                    .enumerate()
                    .filter(|(g, l)| *g > 0 && !l.is_empty())
                    .count()
            })
            .sum();
        babies + giants + self.geom.fold_steps().len() * self.geom.row_blocks
    }

    /// Number of encoded (non-zero) diagonals.
    pub fn diagonal_count(&self) -> usize {
        self.terms.iter().flatten().map(Vec::len).sum()
    }

    /// Input level.
    pub fn level(&self) -> usize {
        self.level
    }

    /// Input scale.
    pub fn in_scale(&self) -> f64 {
        self.in_scale
    }

    /// Output scale (after the rescale).
    pub fn out_scale(&self) -> f64 {
        self.out_scale
    }

    /// The proven bound of [`EncodedMatVec::apply`]'s output for an input
    /// bounded by `x` (every output ciphertext: the worst row block),
    /// mirroring its operations: hoisted baby-step rotations, products
    /// with the diagonals (each bounded by its largest |value|), giant-step
    /// rotations, the folds, the bias and the rescale; the output values
    /// are bounded by the largest row sum of |weights| times the input's.
    pub fn bound(&self, params: &CkksParams, x: &NoiseBound) -> Result<NoiseBound, TensorError> {
        let level = self.level;
        let ql = *params.q().get(level).ok_or(TensorError::Ckks(
            cipherflow_ckks::CkksError::InvalidLevel(level),
        ))? as f64;
        let pt_scale = self.out_scale * ql / self.in_scale;
        let rotated = x.rotate(params, level)?;
        let mut worst: Option<NoiseBound> = None;
        for per_giant in &self.terms {
            let mut acc: Option<NoiseBound> = None;
            for (g, list) in per_giant.iter().enumerate() {
                let mut inner: Option<NoiseBound> = None;
                for t in list {
                    let xb = if t.baby > 0 { &rotated } else { x };
                    let p = xb.mul_plain(params, t.max_abs, pt_scale)?;
                    inner = Some(match inner {
                        None => p,
                        Some(a) => a.add(&p)?,
                    });
                }
                let Some(mut inner) = inner else { continue };
                if g > 0 {
                    inner = inner.rotate(params, level)?;
                }
                acc = Some(match acc {
                    None => inner,
                    Some(a) => a.add(&inner)?,
                });
            }
            let Some(mut acc) = acc else { continue };
            for _ in self.geom.fold_steps() {
                acc = acc.add(&acc.rotate(params, level)?)?;
            }
            // Every output slot holds one output (or a copy, or 0): its
            // value is bounded by a row sum, far below the sum of the
            // diagonals' maxima the operations carry.
            let out = acc
                .add_plain(params, self.bias_max)?
                .rescale(params, level)?
                .with_values(self.row_abs_max * x.values() + self.bias_max)?;
            worst = Some(match worst {
                None => out,
                Some(w) => w.worst(&out)?,
            });
        }
        worst.ok_or_else(|| TensorError::Invalid("a matrix without any non-zero entry".into()))
    }

    /// `A x + b` on an encrypted vector in the replicated layout; the result
    /// is rescaled (one level) and replicated with period `m'`.
    pub fn apply(
        &self,
        eval: &Evaluator,
        gk: &GaloisKeys,
        x: &EncTensor,
    ) -> Result<EncTensor, TensorError> {
        if x.len() != self.cols
            || x.layout
                != (Layout::Replicated {
                    chunk: self.geom.n_chunk,
                })
        {
            return Err(TensorError::Shape(format!(
                "matrix {}×{} needs a replicated vector of {} (chunk {}), got {:?} in {:?}",
                self.rows, self.cols, self.cols, self.geom.n_chunk, x.shape, x.layout
            )));
        }
        let x_cts: Vec<Ciphertext> = x
            .cts
            .iter()
            .map(|ct| {
                if ct.level() > self.level {
                    eval.drop_to_level(ct, self.level)
                } else {
                    Ok(ct.clone())
                }
            })
            .collect::<Result<_, _>>()?;
        let steps: Vec<i64> = self.babies.iter().map(|&b| b as i64).collect();
        // babies[c][k] = rot(x_c, self.babies[k])
        let babies: Vec<Vec<Ciphertext>> = x_cts
            .iter()
            .map(|ct| eval.rotate_hoisted(ct, &steps, gk))
            .collect::<Result<_, _>>()?;
        let baby_index = |b: usize| self.babies.iter().position(|&x| x == b);
        let mut out = Vec::with_capacity(self.geom.row_blocks);
        for (r, per_giant) in self.terms.iter().enumerate() {
            let mut acc: Option<Ciphertext> = None;
            for (g, list) in per_giant.iter().enumerate() {
                if list.is_empty() {
                    continue;
                }
                let pairs: Vec<(&Ciphertext, &Plaintext)> = list
                    .iter()
                    .filter_map(|t| {
                        let k = baby_index(t.baby)?;
                        Some((babies.get(t.col)?.get(k)?, &t.pt))
                    })
                    .collect();
                let mut inner = eval.mul_plain_sum(&pairs)?;
                if g > 0 {
                    inner = eval.rotate(&inner, (g * self.geom.n1) as i64, gk)?;
                }
                acc = Some(match acc {
                    None => inner,
                    Some(a) => eval.add(&a, &inner)?,
                });
            }
            let bias = self
                .bias
                .get(r)
                .ok_or_else(|| TensorError::Shape("missing bias block".into()))?;
            let mut acc = match acc {
                Some(a) => a,
                None => {
                    return Err(TensorError::Invalid(
                        "a row block of the matrix is entirely zero; remove those outputs".into(),
                    ))
                }
            };
            for s in self.geom.fold_steps() {
                let rot = eval.rotate(&acc, s, gk)?;
                acc = eval.add(&acc, &rot)?;
            }
            acc = eval.add_plain(&acc, bias)?;
            out.push(eval.rescale(&acc)?);
        }
        EncTensor::from_parts(
            out,
            vec![self.rows],
            Layout::Replicated {
                chunk: self.geom.m_chunk,
            },
            self.geom.slots,
        )
    }
}
