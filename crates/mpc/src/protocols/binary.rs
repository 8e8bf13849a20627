//! Binary sharing: AND, arithmetic-to-binary conversion with a
//! parallel-prefix (Kogge–Stone) adder, sign bit, bit injection, ReLU and
//! its derivative, comparison, max and argmax.

use crate::error::shape_err;
use crate::party::{AShare, BShare, Party};
use crate::z2k::Z2k;
use crate::{FixedPoint, MpcError};

fn xor<R: Z2k>(x: &[R], y: &[R]) -> Vec<R> {
    x.iter().zip(y).map(|(&a, &b)| a.xor(b)).collect()
}

fn bxor<R: Z2k>(x: &BShare<R>, y: &BShare<R>) -> BShare<R> {
    BShare {
        a: xor(&x.a, &y.a),
        b: xor(&x.b, &y.b),
    }
}

fn bshl<R: Z2k>(x: &BShare<R>, s: u32) -> BShare<R> {
    BShare {
        a: x.a.iter().map(|v| v.shl(s)).collect(),
        b: x.b.iter().map(|v| v.shl(s)).collect(),
    }
}

fn concat<R: Z2k>(x: &BShare<R>, y: &BShare<R>) -> BShare<R> {
    BShare {
        a: x.a.iter().chain(&y.a).copied().collect(),
        b: x.b.iter().chain(&y.b).copied().collect(),
    }
}

fn split<R: Z2k>(mut x: BShare<R>, at: usize) -> (BShare<R>, BShare<R>) {
    let a2 = x.a.split_off(at.min(x.a.len()));
    let b2 = x.b.split_off(at.min(x.b.len()));
    (x, BShare { a: a2, b: b2 })
}

impl<R: Z2k> Party<R> {
    /// Bitwise AND of binary sharings (one round).
    pub fn and(&mut self, x: &BShare<R>, y: &BShare<R>) -> Result<BShare<R>, MpcError> {
        if x.a.len() != y.a.len() {
            return Err(shape_err("and", format!("{} vs {}", x.a.len(), y.a.len())));
        }
        self.with_op("and", |p| {
            let alpha = p.zero_share_xor(x.a.len());
            let z: Vec<R> = (0..x.a.len())
                .map(|i| {
                    let (xa, xb, ya, yb) = (x.a[i], x.b[i], y.a[i], y.b[i]);
                    xa.and(ya.xor(yb)).xor(xb.and(ya)).xor(alpha[i])
                })
                .collect();
            let (a, b) = p.reshare(z)?;
            Ok(BShare { a, b })
        })
    }

    /// The three components of an arithmetic sharing as trivial binary
    /// sharings (party `i` knows `x_i` and `x_{i+1}`; no communication).
    fn components_binary(&self, x: &AShare<R>) -> [BShare<R>; 3] {
        let zero = vec![R::ZERO; x.len()];
        let mine = BShare {
            a: x.a.clone(),
            b: zero.clone(),
        };
        let next = BShare {
            a: zero.clone(),
            b: x.b.clone(),
        };
        let none = BShare {
            a: zero.clone(),
            b: zero,
        };
        // Slot j holds component x_j.
        match self.id() {
            0 => [mine, next, none],
            1 => [none, mine, next],
            _ => [next, none, mine],
        }
    }

    /// Arithmetic to binary: a carry-save layer turns `x_0 + x_1 + x_2`
    /// into two binary-shared summands (one AND round), and a Kogge–Stone
    /// adder adds them (1 + log2 ℓ rounds).
    pub fn a2b(&mut self, x: &AShare<R>) -> Result<BShare<R>, MpcError> {
        self.with_op("a2b", |p| {
            let [u0, u1, u2] = p.components_binary(x);
            // Full adder: s = u0 ⊕ u1 ⊕ u2, carry = maj(u0, u1, u2) << 1.
            let s = bxor(&bxor(&u0, &u1), &u2);
            let maj = bxor(&p.and(&bxor(&u0, &u2), &bxor(&u1, &u2))?, &u2);
            let c = bshl(&maj, 1);
            p.add_binary(&s, &c)
        })
    }

    /// Binary-shared addition mod 2^ℓ with a Kogge–Stone adder.
    fn add_binary(&mut self, x: &BShare<R>, y: &BShare<R>) -> Result<BShare<R>, MpcError> {
        let n = x.a.len();
        let p0 = bxor(x, y);
        let mut g = self.and(x, y)?;
        let mut pr = p0.clone();
        let mut k = 1;
        while k < R::BITS {
            // G ← G ⊕ (P ∧ (G ≪ k)), P ← P ∧ (P ≪ k), in one AND round
            // (G and P∧(G≪k) are disjoint, so OR is XOR).
            let lhs = concat(&pr, &pr);
            let rhs = concat(&bshl(&g, k), &bshl(&pr, k));
            let (pg, pp) = split(self.and(&lhs, &rhs)?, n);
            g = bxor(&g, &pg);
            pr = pp;
            k *= 2;
        }
        // Bit i of the sum is p_i ⊕ carry into i = p_i ⊕ G_{i−1}.
        Ok(bxor(&p0, &bshl(&g, 1)))
    }

    /// The sign bit (most significant bit) of each entry, as a binary
    /// sharing in bit 0 of each word.
    pub fn msb(&mut self, x: &AShare<R>) -> Result<BShare<R>, MpcError> {
        self.with_op("msb", |p| {
            let s = p.a2b(x)?;
            let t = R::BITS - 1;
            Ok(BShare {
                a: s.a.iter().map(|v| v.shr(t)).collect(),
                b: s.b.iter().map(|v| v.shr(t)).collect(),
            })
        })
    }

    /// A binary-shared bit (bit 0 of each word) as an arithmetic sharing
    /// of the integer 0 or 1: `b_0 ⊕ b_1 ⊕ b_2` computed as
    /// `u + v − 2uv` twice on trivial arithmetic sharings (two rounds).
    pub fn bit_to_arith(
        &mut self,
        bits: &BShare<R>,
        rows: usize,
        cols: usize,
    ) -> Result<AShare<R>, MpcError> {
        if rows.checked_mul(cols) != Some(bits.a.len()) {
            return Err(shape_err("bit_to_arith", "shape does not match the bits"));
        }
        self.with_op("b2a", |p| {
            let one = |v: &[R]| v.iter().map(|w| w.and(R::ONE)).collect::<Vec<R>>();
            let x = AShare::from_parts(rows, cols, one(&bits.a), one(&bits.b));
            let [c0, c1, c2] = p.components_arith(&x);
            let two = R::ONE.add(R::ONE);
            let xor_a =
                |p: &mut Party<R>, u: &AShare<R>, v: &AShare<R>| -> Result<AShare<R>, MpcError> {
                    let uv = p.mul(u, v)?;
                    p.sub(&p.add(u, v)?, &p.mul_public(&uv, two))
                };
            let t = xor_a(p, &c0, &c1)?;
            xor_a(p, &t, &c2)
        })
    }

    /// Trivial arithmetic sharings of the three components.
    fn components_arith(&self, x: &AShare<R>) -> [AShare<R>; 3] {
        let [u0, u1, u2] = self.components_binary(x);
        [u0, u1, u2].map(|u| AShare::from_parts(x.rows, x.cols, u.a, u.b))
    }

    /// ReLU′: 1 where x ≥ 0, else 0 (arithmetic integer sharing, not
    /// scaled by 2^f).
    ///
    /// In rings wider than 64 bits the sign is computed on the low 64 bits
    /// of the shares (a local reduction mod 2^64), which halves the bytes
    /// of the adder: exact while |x| < 2^63, i.e. real values below
    /// 2^(63−f) (8.8·10^12 for f = 20; fixed-point products in Z_2^128
    /// already need far smaller values).
    pub fn drelu(&mut self, x: &AShare<R>) -> Result<AShare<R>, MpcError> {
        self.with_op("drelu", |p| {
            let m = if R::BITS > 64 {
                let low = |v: &[R]| v.iter().map(|w| w.low_u64()).collect::<Vec<u64>>();
                let x64 = AShare::from_parts(x.rows, x.cols, low(&x.a), low(&x.b));
                let fp = FixedPoint { frac: 16 };
                let m = p.in_ring::<u64, _>(fp, |q| q.msb(&x64))?;
                let lift = |v: &[u64]| v.iter().map(|&w| R::from_u64(w)).collect::<Vec<R>>();
                BShare {
                    a: lift(&m.a),
                    b: lift(&m.b),
                }
            } else {
                p.msb(x)?
            };
            let neg = p.bit_to_arith(&m, x.rows, x.cols)?;
            let ones = p.share_public(x.rows, x.cols, &vec![R::ONE; x.len()])?;
            p.sub(&ones, &neg)
        })
    }

    /// ReLU: `x · ReLU′(x)` (exact).
    pub fn relu(&mut self, x: &AShare<R>) -> Result<AShare<R>, MpcError> {
        self.with_op("relu", |p| {
            let d = p.drelu(x)?;
            p.mul(x, &d)
        })
    }

    /// `[x ≥ y]` as an integer 0/1 sharing (exact while |x − y| < 2^(ℓ−1)).
    pub fn ge(&mut self, x: &AShare<R>, y: &AShare<R>) -> Result<AShare<R>, MpcError> {
        let d = self.sub(x, y)?;
        self.with_op("compare", |p| p.drelu(&d))
    }

    /// Row-wise maximum and argmax of a `rows × cols` matrix: the maxima
    /// (`rows × 1`) and the argmax as integer sharings (`rows × 1`; ties go
    /// to the lower index). Up to [`ALL_PAIRS_MAX_COLS`] columns, all
    /// pairs are compared at once and each column's "is the maximum" bit is
    /// the product of its comparison bits (10 + ⌈log2(cols − 1)⌉ + 1
    /// rounds); wider rows use a tournament (11 rounds per layer).
    pub fn max_argmax(&mut self, x: &AShare<R>) -> Result<(AShare<R>, AShare<R>), MpcError> {
        if x.cols == 0 {
            return Err(shape_err("max", "no columns"));
        }
        if x.cols <= ALL_PAIRS_MAX_COLS {
            return self.with_op("argmax", |p| {
                let w = p.argmax_onehot(x)?;
                let cols = p.vstack(
                    &(0..x.cols)
                        .map(|c| column(x, c))
                        .collect::<Vec<_>>()
                        .iter()
                        .collect::<Vec<_>>(),
                )?;
                let picked = p.mul(&w, &cols)?;
                Ok((
                    sum_blocks(&picked, x.cols, x.rows),
                    p.onehot_index(&w, x.cols, x.rows)?,
                ))
            });
        }
        self.max_argmax_tournament(x)
    }

    /// Row-wise argmax as an integer sharing (`rows × 1`, ties to the
    /// lower index); see [`Party::max_argmax`] for the rounds.
    pub fn argmax(&mut self, x: &AShare<R>) -> Result<AShare<R>, MpcError> {
        if x.cols == 0 {
            return Err(shape_err("argmax", "no columns"));
        }
        if x.cols <= ALL_PAIRS_MAX_COLS {
            return self.with_op("argmax", |p| {
                let w = p.argmax_onehot(x)?;
                p.onehot_index(&w, x.cols, x.rows)
            });
        }
        Ok(self.max_argmax_tournament(x)?.1)
    }

    /// `Σ_i i · w_i` over the column blocks of a one-hot sharing.
    fn onehot_index(&self, w: &AShare<R>, cols: usize, rows: usize) -> Result<AShare<R>, MpcError> {
        let weights: Vec<R> = (0..cols)
            .flat_map(|i| std::iter::repeat_n(R::from_i64(i as i64), rows))
            .collect();
        let scaled = AShare::from_parts(
            w.rows,
            1,
            w.a.iter().zip(&weights).map(|(&v, &c)| v.mul(c)).collect(),
            w.b.iter().zip(&weights).map(|(&v, &c)| v.mul(c)).collect(),
        );
        Ok(sum_blocks(&scaled, cols, rows))
    }

    /// One-hot argmax: for each column i, the product over j ≠ i of
    /// `[x_i ≥ x_j]` (j > i) or `[x_i > x_j]` (j < i), stacked column
    /// block by column block (`cols·rows × 1`).
    fn argmax_onehot(&mut self, x: &AShare<R>) -> Result<AShare<R>, MpcError> {
        let (rows, c) = x.shape();
        let cols: Vec<AShare<R>> = (0..c).map(|k| column(x, k)).collect();
        if c == 1 {
            return self.share_public(rows, 1, &vec![R::ONE; rows]);
        }
        let pairs: Vec<(usize, usize)> = (0..c)
            .flat_map(|i| (i + 1..c).map(move |j| (i, j)))
            .collect();
        let l = self.vstack(&pairs.iter().map(|&(i, _)| &cols[i]).collect::<Vec<_>>())?;
        let r = self.vstack(&pairs.iter().map(|&(_, j)| &cols[j]).collect::<Vec<_>>())?;
        let ge = self.ge(&l, &r)?;
        let ones = self.share_public(rows, 1, &vec![R::ONE; rows])?;
        let mut fac: Vec<Vec<AShare<R>>> = vec![Vec::with_capacity(c - 1); c];
        for (k, &(i, j)) in pairs.iter().enumerate() {
            let cp = rows_of(&ge, k * rows, rows);
            fac[j].push(self.sub(&ones, &cp)?);
            fac[i].push(cp);
        }
        // level[k] stacks every column's k-th factor.
        let mut level: Vec<AShare<R>> = (0..c - 1)
            .map(|k| self.vstack(&fac.iter().map(|f| &f[k]).collect::<Vec<_>>()))
            .collect::<Result<_, _>>()?;
        let block = c * rows;
        while level.len() > 1 {
            let half = level.len() / 2;
            let left = self.vstack(&(0..half).map(|m| &level[2 * m]).collect::<Vec<_>>())?;
            let right = self.vstack(&(0..half).map(|m| &level[2 * m + 1]).collect::<Vec<_>>())?;
            let prod = self.mul(&left, &right)?;
            let mut next: Vec<AShare<R>> = (0..half)
                .map(|m| rows_of(&prod, m * block, block))
                .collect();
            if level.len() % 2 == 1 {
                if let Some(last) = level.pop() {
                    next.push(last);
                }
            }
            level = next;
        }
        level.pop().ok_or_else(|| shape_err("argmax", "no factors"))
    }

    /// Row-wise maximum (`rows × 1`) by a tournament: ⌈log2 cols⌉ levels
    /// of one comparison and one product each, `cols − 1` comparisons per
    /// row — fewer bytes than [`Party::max_argmax`]'s all-pairs
    /// comparisons, more rounds. Exact.
    pub fn max_rows(&mut self, x: &AShare<R>) -> Result<AShare<R>, MpcError> {
        if x.cols == 0 {
            return Err(shape_err("max", "no columns"));
        }
        self.with_op("max", |p| {
            let rows = x.rows;
            let mut vals: Vec<AShare<R>> = (0..x.cols).map(|c| column(x, c)).collect();
            while vals.len() > 1 {
                let pairs = vals.len() / 2;
                let l = p.vstack(&(0..pairs).map(|k| &vals[2 * k]).collect::<Vec<_>>())?;
                let r = p.vstack(&(0..pairs).map(|k| &vals[2 * k + 1]).collect::<Vec<_>>())?;
                // max = r + [l ≥ r]·(l − r).
                let c = p.ge(&l, &r)?;
                let d = p.sub(&l, &r)?;
                let sel = p.mul(&c, &d)?;
                let won = p.add(&r, &sel)?;
                let mut next: Vec<AShare<R>> =
                    (0..pairs).map(|k| rows_of(&won, k * rows, rows)).collect();
                if vals.len() % 2 == 1 {
                    if let Some(v) = vals.pop() {
                        next.push(v);
                    }
                }
                vals = next;
            }
            vals.pop()
                .ok_or_else(|| shape_err("max", "empty tournament"))
        })
    }

    fn max_argmax_tournament(&mut self, x: &AShare<R>) -> Result<(AShare<R>, AShare<R>), MpcError> {
        self.with_op("argmax", |p| {
            let rows = x.rows;
            // Candidates: per row, a list of (value, index) columns.
            let mut vals: Vec<AShare<R>> = (0..x.cols).map(|c| column(x, c)).collect();
            let mut idx: Vec<AShare<R>> = (0..x.cols)
                .map(|c| p.share_public(rows, 1, &vec![R::from_i64(c as i64); rows]))
                .collect::<Result<_, _>>()?;
            while vals.len() > 1 {
                let pairs = vals.len() / 2;
                let left: Vec<&AShare<R>> = (0..pairs).map(|k| &vals[2 * k]).collect();
                let right: Vec<&AShare<R>> = (0..pairs).map(|k| &vals[2 * k + 1]).collect();
                let l = p.vstack(&left)?;
                let r = p.vstack(&right)?;
                let li = p.vstack(&(0..pairs).map(|k| &idx[2 * k]).collect::<Vec<_>>())?;
                let ri = p.vstack(&(0..pairs).map(|k| &idx[2 * k + 1]).collect::<Vec<_>>())?;
                // c = [l ≥ r]; winner = r + c·(l − r), for values and indices at once.
                let c = p.ge(&l, &r)?;
                let dv = p.sub(&l, &r)?;
                let di = p.sub(&li, &ri)?;
                let both_d = p.vstack(&[&dv, &di])?;
                let both_c = p.vstack(&[&c, &c])?;
                let sel = p.mul(&both_c, &both_d)?;
                let base = p.vstack(&[&r, &ri])?;
                let won = p.add(&base, &sel)?;
                let mut nv = Vec::with_capacity(pairs + 1);
                let mut ni = Vec::with_capacity(pairs + 1);
                for k in 0..pairs {
                    nv.push(rows_of(&won, k * rows, rows));
                    ni.push(rows_of(&won, (pairs + k) * rows, rows));
                }
                if vals.len() % 2 == 1 {
                    if let (Some(v), Some(i)) = (vals.pop(), idx.pop()) {
                        nv.push(v);
                        ni.push(i);
                    }
                }
                vals = nv;
                idx = ni;
            }
            match (vals.pop(), idx.pop()) {
                (Some(v), Some(i)) => Ok((v, i)),
                _ => Err(shape_err("max", "empty tournament")),
            }
        })
    }
}

/// Widest rows for the all-pairs argmax (C(C−1)/2 comparisons).
pub const ALL_PAIRS_MAX_COLS: usize = 16;

/// Sums `blocks` consecutive blocks of `rows` rows of a single-column
/// sharing: → `rows × 1`.
fn sum_blocks<R: Z2k>(x: &AShare<R>, blocks: usize, rows: usize) -> AShare<R> {
    let s = |v: &[R]| {
        (0..rows)
            .map(|r| {
                (0..blocks).fold(R::ZERO, |acc, b| {
                    acc.add(v.get(b * rows + r).copied().unwrap_or(R::ZERO))
                })
            })
            .collect::<Vec<R>>()
    };
    AShare::from_parts(rows, 1, s(&x.a), s(&x.b))
}

/// Column `c` of `x` as `rows × 1`.
fn column<R: Z2k>(x: &AShare<R>, c: usize) -> AShare<R> {
    let pick = |v: &[R]| v.iter().skip(c).step_by(x.cols.max(1)).copied().collect();
    AShare::from_parts(x.rows, 1, pick(&x.a), pick(&x.b))
}

/// Rows `start..start+n` of a single-column sharing.
fn rows_of<R: Z2k>(x: &AShare<R>, start: usize, n: usize) -> AShare<R> {
    let r = start..(start + n).min(x.a.len());
    AShare::from_parts(n, 1, x.a[r.clone()].to_vec(), x.b[r].to_vec())
}
