//! Arithmetic sharing: input, reveal, linear operations, multiplication,
//! matrix multiplication, truncation, division by public constants.

use crate::error::shape_err;
use crate::kernels::{matmul_sum_bt, transpose};
use crate::party::{AShare, Party};
use crate::z2k::Z2k;
use crate::MpcError;

/// Largest matrix a peer may announce in an input header (2^28 elements).
const MAX_ELEMS: usize = 1 << 28;

fn same_shape<R: Z2k>(op: &'static str, x: &AShare<R>, y: &AShare<R>) -> Result<(), MpcError> {
    if x.shape() != y.shape() {
        return Err(shape_err(op, format!("{:?} vs {:?}", x.shape(), y.shape())));
    }
    Ok(())
}

fn zip<R: Z2k>(x: &[R], y: &[R], f: impl Fn(R, R) -> R) -> Vec<R> {
    x.iter().zip(y).map(|(&a, &b)| f(a, b)).collect()
}

impl<R: Z2k> Party<R> {
    /// Secret-shares `owner`'s `rows × cols` matrix of ring elements
    /// (`Some` at the owner, `None` elsewhere; the shape travels with the
    /// shares). The owner's first two components come from PRF streams it
    /// shares with its neighbours; it sends the third to both. One round.
    pub fn share_ring(
        &mut self,
        owner: usize,
        value: Option<(usize, usize, &[R])>,
    ) -> Result<AShare<R>, MpcError> {
        if owner >= 3 {
            return Err(MpcError::Party(format!("no party {owner}")));
        }
        self.with_op("input", |p| {
            let me = p.id();
            // All parties open the streams; only k_owner and k_{owner+1} are drawn.
            let (mut s_own, mut s_next) = p_streams(p);
            p.round();
            if me == owner {
                let (rows, cols, v) = value.ok_or_else(|| {
                    MpcError::Party(format!("party {me} owns this input but gave none"))
                })?;
                if rows.checked_mul(cols) != Some(v.len()) || v.len() > MAX_ELEMS {
                    return Err(shape_err(
                        "input",
                        format!("{rows}×{cols} vs {} values", v.len()),
                    ));
                }
                let mut x0 = vec![R::ZERO; v.len()];
                let mut x1 = vec![R::ZERO; v.len()];
                crate::z2k::fill_random(&mut s_own, &mut x0);
                crate::z2k::fill_random(&mut s_next, &mut x1);
                let x2: Vec<R> = v
                    .iter()
                    .zip(x0.iter().zip(&x1))
                    .map(|(&x, (&a, &b))| x.sub(a).sub(b))
                    .collect();
                let mut msg = Vec::with_capacity(16 + x2.len() * R::BYTES);
                msg.extend_from_slice(&(rows as u64).to_le_bytes());
                msg.extend_from_slice(&(cols as u64).to_le_bytes());
                msg.extend_from_slice(&crate::z2k::to_bytes(&x2));
                p.send_bytes(p.next(), msg.clone())?;
                p.send_bytes(p.prev(), msg)?;
                Ok(AShare::from_parts(rows, cols, x0, x1))
            } else {
                let msg = p.recv_bytes(owner)?;
                let bad = |what: &str| MpcError::Malformed {
                    from: owner,
                    what: what.into(),
                };
                let (head, body) = msg
                    .split_at_checked(16)
                    .ok_or_else(|| bad("short input header"))?;
                let rows = u64::from_le_bytes(head[..8].try_into().map_err(|_| bad("header"))?);
                let cols = u64::from_le_bytes(head[8..].try_into().map_err(|_| bad("header"))?);
                let n = usize::try_from(rows)
                    .ok()
                    .zip(usize::try_from(cols).ok())
                    .and_then(|(r, c)| r.checked_mul(c))
                    .filter(|&n| n <= MAX_ELEMS)
                    .ok_or_else(|| bad("input shape too large"))?;
                let x2 = crate::z2k::from_bytes::<R>(body, n, owner)?;
                let mut other = vec![R::ZERO; n];
                let (rows, cols) = (rows as usize, cols as usize);
                if me == (owner + 1) % 3 {
                    // Holds (x_{o+1}, x_{o+2}); k_{o+1} is its own key.
                    crate::z2k::fill_random(&mut s_own, &mut other);
                    Ok(AShare::from_parts(rows, cols, other, x2))
                } else {
                    // Party o+2 holds (x_{o+2}, x_o); k_o is its next key.
                    crate::z2k::fill_random(&mut s_next, &mut other);
                    Ok(AShare::from_parts(rows, cols, x2, other))
                }
            }
        })
    }

    /// A sharing of a public matrix (no communication): `x_0 = v`.
    pub fn share_public(&self, rows: usize, cols: usize, v: &[R]) -> Result<AShare<R>, MpcError> {
        if rows.checked_mul(cols) != Some(v.len()) {
            return Err(shape_err("public", format!("{rows}×{cols} vs {}", v.len())));
        }
        let zero = vec![R::ZERO; v.len()];
        Ok(match self.id() {
            0 => AShare::from_parts(rows, cols, v.to_vec(), zero),
            2 => AShare::from_parts(rows, cols, zero, v.to_vec()),
            _ => AShare::from_parts(rows, cols, zero.clone(), zero),
        })
    }

    /// Reveals `x` to the parties in `to` (one round); they get `Some`.
    pub fn reveal_ring(&mut self, x: &AShare<R>, to: &[usize]) -> Result<Option<Vec<R>>, MpcError> {
        self.with_op("reveal", |p| {
            p.round();
            // Party j misses x_{j+2}: party j+2 holds it as `a`.
            let target = p.next();
            if to.contains(&target) {
                p.send_ring(target, &x.a)?;
            }
            if to.contains(&p.id()) {
                let missing = p.recv_ring(p.prev(), x.len())?;
                Ok(Some(
                    x.a.iter()
                        .zip(&x.b)
                        .zip(&missing)
                        .map(|((&a, &b), &c)| a.add(b).add(c))
                        .collect(),
                ))
            } else {
                Ok(None)
            }
        })
    }

    /// x + y.
    pub fn add(&self, x: &AShare<R>, y: &AShare<R>) -> Result<AShare<R>, MpcError> {
        same_shape("add", x, y)?;
        Ok(AShare::from_parts(
            x.rows,
            x.cols,
            zip(&x.a, &y.a, R::add),
            zip(&x.b, &y.b, R::add),
        ))
    }

    /// x − y.
    pub fn sub(&self, x: &AShare<R>, y: &AShare<R>) -> Result<AShare<R>, MpcError> {
        same_shape("sub", x, y)?;
        Ok(AShare::from_parts(
            x.rows,
            x.cols,
            zip(&x.a, &y.a, R::sub),
            zip(&x.b, &y.b, R::sub),
        ))
    }

    /// x + c for a public ring element per entry (`c.len() == x.len()`) or
    /// one for all (`c.len() == 1`).
    pub fn add_public(&self, x: &AShare<R>, c: &[R]) -> Result<AShare<R>, MpcError> {
        if c.len() != 1 && c.len() != x.len() {
            return Err(shape_err(
                "add_public",
                format!("{} constants for {}", c.len(), x.len()),
            ));
        }
        let cst = |i: usize| if c.len() == 1 { c[0] } else { c[i] };
        let mut out = x.clone();
        match self.id() {
            0 => out
                .a
                .iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = v.add(cst(i))),
            2 => out
                .b
                .iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = v.add(cst(i))),
            _ => {}
        }
        Ok(out)
    }

    /// x · c for one public ring element (no truncation).
    pub fn mul_public(&self, x: &AShare<R>, c: R) -> AShare<R> {
        AShare::from_parts(
            x.rows,
            x.cols,
            x.a.iter().map(|v| v.mul(c)).collect(),
            x.b.iter().map(|v| v.mul(c)).collect(),
        )
    }

    /// Element-wise product in the ring (no truncation). One round.
    pub fn mul(&mut self, x: &AShare<R>, y: &AShare<R>) -> Result<AShare<R>, MpcError> {
        same_shape("mul", x, y)?;
        self.with_op("mul", |p| {
            let alpha = p.zero_share(x.len());
            let z: Vec<R> = (0..x.len())
                .map(|i| {
                    let (xa, xb, ya, yb) = (x.a[i], x.b[i], y.a[i], y.b[i]);
                    xa.mul(ya.add(yb)).add(xb.mul(ya)).add(alpha[i])
                })
                .collect();
            let (a, b) = p.reshare(z)?;
            Ok(AShare::from_parts(x.rows, x.cols, a, b))
        })
    }

    /// Matrix product in the ring (no truncation): each party computes
    /// `X_i·(Y_i + Y_{i+1}) + X_{i+1}·Y_i` (two local products), masks it
    /// with a zero sharing and reshares. One round; communication is the
    /// size of the output, whatever the inner dimension.
    pub fn matmul(&mut self, x: &AShare<R>, y: &AShare<R>) -> Result<AShare<R>, MpcError> {
        if x.cols != y.rows {
            return Err(shape_err(
                "matmul",
                format!("{:?} · {:?}", x.shape(), y.shape()),
            ));
        }
        let yt_sum = transpose(&zip(&y.a, &y.b, R::add), y.rows, y.cols);
        let yt_a = transpose(&y.a, y.rows, y.cols);
        self.matmul_bt_parts(x, &yt_sum, &yt_a, y.cols)
    }

    /// Matrix product with the right operand given transposed (`wt` is
    /// `n × k`, as the nn crate stores Dense weights): `x · wtᵀ`.
    pub fn matmul_transposed(
        &mut self,
        x: &AShare<R>,
        wt: &AShare<R>,
    ) -> Result<AShare<R>, MpcError> {
        if x.cols != wt.cols {
            return Err(shape_err(
                "matmul",
                format!("{:?} · {:?}ᵀ", x.shape(), wt.shape()),
            ));
        }
        let sum = zip(&wt.a, &wt.b, R::add);
        self.matmul_bt_parts(x, &sum, &wt.a, wt.rows)
    }

    fn matmul_bt_parts(
        &mut self,
        x: &AShare<R>,
        yt_sum: &[R],
        yt_a: &[R],
        n: usize,
    ) -> Result<AShare<R>, MpcError> {
        let (m, k) = x.shape();
        self.with_op("matmul", |p| {
            let mut z = matmul_sum_bt(&[(&x.a, yt_sum, k), (&x.b, yt_a, k)], m, n);
            let alpha = p.zero_share(z.len());
            z.iter_mut().zip(alpha).for_each(|(v, a)| *v = v.add(a));
            let (a, b) = p.reshare(z)?;
            Ok(AShare::from_parts(m, n, a, b))
        })
    }

    /// Divides by 2^d (ABY3 share truncation, one round): party 1 sends
    /// one element per entry to party 0. See the module docs for the bound.
    pub fn truncate(&mut self, x: &AShare<R>, d: u32) -> Result<AShare<R>, MpcError> {
        self.with_op("truncate", |p| {
            // y_2 = F(k_2): party 1's next key, party 2's own key.
            let (own, next) = p.prf_pair(x.len());
            p.round();
            match p.id() {
                0 => {
                    let y0: Vec<R> = x.a.iter().map(|v| v.shr(d)).collect();
                    let y1 = p.recv_ring(1, x.len())?;
                    Ok(AShare::from_parts(x.rows, x.cols, y0, y1))
                }
                1 => {
                    let y1: Vec<R> =
                        x.a.iter()
                            .zip(&x.b)
                            .zip(&next)
                            .map(|((&z1, &z2), &r)| z1.add(z2).neg().shr(d).neg().sub(r))
                            .collect();
                    p.send_ring(0, &y1)?;
                    Ok(AShare::from_parts(x.rows, x.cols, y1, next))
                }
                _ => {
                    let y0: Vec<R> = x.b.iter().map(|v| v.shr(d)).collect();
                    Ok(AShare::from_parts(x.rows, x.cols, own, y0))
                }
            }
        })
    }

    /// Fixed-point element-wise product: [`Party::mul`] then truncation by f.
    pub fn mul_fx(&mut self, x: &AShare<R>, y: &AShare<R>) -> Result<AShare<R>, MpcError> {
        let f = self.fixed_point().frac;
        self.with_op("mul", |p| {
            let z = p.mul(x, y)?;
            p.truncate(&z, f)
        })
    }

    /// Fixed-point matrix product: [`Party::matmul`] then truncation by f.
    pub fn matmul_fx(&mut self, x: &AShare<R>, y: &AShare<R>) -> Result<AShare<R>, MpcError> {
        let f = self.fixed_point().frac;
        self.with_op("matmul", |p| {
            let z = p.matmul(x, y)?;
            p.truncate(&z, f)
        })
    }

    /// Multiplies by a public real (encoded with f bits) and truncates.
    /// Error ≤ |x|·2^(−f−1) (encoding of c) + 1 ulp.
    pub fn mul_public_fx(&mut self, x: &AShare<R>, c: f64) -> Result<AShare<R>, MpcError> {
        let f = self.fixed_point().frac;
        let y = self.mul_public(x, R::encode(c, f));
        self.truncate(&y, f)
    }

    /// Division by a public constant: by 2^k a pure truncation, otherwise
    /// multiplication by the encoded reciprocal ([`Party::mul_public_fx`]).
    pub fn div_public(&mut self, x: &AShare<R>, c: f64) -> Result<AShare<R>, MpcError> {
        if !c.is_finite() || c == 0.0 {
            return Err(MpcError::Config(format!("cannot divide by {c}")));
        }
        let k = c.abs().log2();
        if k.fract() == 0.0 && k >= 1.0 && (k as u32) < R::BITS {
            let t = self.truncate(x, k as u32)?;
            return Ok(if c < 0.0 {
                self.mul_public(&t, R::ONE.neg())
            } else {
                t
            });
        }
        self.mul_public_fx(x, 1.0 / c)
    }

    /// Rearranges entries (local): output entry `k` (of `rows × cols`,
    /// row-major) is `x`'s entry `idx[k]`, or a sharing of 0 where
    /// `idx[k]` is [`ZERO_ENTRY`] (padding). Reshapes, im2col and pooling
    /// windows are gathers.
    pub fn gather(
        &self,
        x: &AShare<R>,
        rows: usize,
        cols: usize,
        idx: &[usize],
    ) -> Result<AShare<R>, MpcError> {
        if rows.checked_mul(cols) != Some(idx.len())
            || idx.iter().any(|&i| i != ZERO_ENTRY && i >= x.len())
        {
            return Err(shape_err(
                "gather",
                format!(
                    "{} indices into {} entries for {rows}×{cols}",
                    idx.len(),
                    x.len()
                ),
            ));
        }
        let pick = |v: &[R]| {
            idx.iter()
                .map(|&i| v.get(i).copied().unwrap_or(R::ZERO))
                .collect()
        };
        Ok(AShare::from_parts(rows, cols, pick(&x.a), pick(&x.b)))
    }

    /// The adjoint of [`Party::gather`] (local): a `rows × cols` matrix
    /// of zeros to which `x`'s entry `k` is added at `idx[k]` (skipped
    /// where it is [`ZERO_ENTRY`]). The gradient of a gather.
    pub fn scatter_add(
        &self,
        x: &AShare<R>,
        rows: usize,
        cols: usize,
        idx: &[usize],
    ) -> Result<AShare<R>, MpcError> {
        let len = rows
            .checked_mul(cols)
            .ok_or_else(|| shape_err("scatter_add", format!("{rows}×{cols}")))?;
        if idx.len() != x.len() || idx.iter().any(|&i| i != ZERO_ENTRY && i >= len) {
            return Err(shape_err(
                "scatter_add",
                format!(
                    "{} indices for {} entries into {rows}×{cols}",
                    idx.len(),
                    x.len()
                ),
            ));
        }
        let put = |v: &[R]| {
            let mut out = vec![R::ZERO; len];
            for (&i, &e) in idx.iter().zip(v) {
                if let Some(o) = out.get_mut(i) {
                    *o = o.add(e);
                }
            }
            out
        };
        Ok(AShare::from_parts(rows, cols, put(&x.a), put(&x.b)))
    }

    /// Sums each column: `rows × cols` → `1 × cols` (local).
    pub fn sum_cols(&self, x: &AShare<R>) -> AShare<R> {
        let s = |v: &[R]| {
            let mut acc = vec![R::ZERO; x.cols];
            for row in v.chunks(x.cols.max(1)) {
                acc.iter_mut().zip(row).for_each(|(a, &e)| *a = a.add(e));
            }
            acc
        };
        AShare::from_parts(1, x.cols, s(&x.a), s(&x.b))
    }

    /// The same entries as `rows × cols` (row-major; local).
    pub fn reshape(&self, x: &AShare<R>, rows: usize, cols: usize) -> Result<AShare<R>, MpcError> {
        if rows.checked_mul(cols) != Some(x.len()) {
            return Err(shape_err(
                "reshape",
                format!("{:?} to {rows}×{cols}", x.shape()),
            ));
        }
        Ok(AShare::from_parts(rows, cols, x.a.clone(), x.b.clone()))
    }

    /// Transpose (local).
    pub fn transpose(&self, x: &AShare<R>) -> AShare<R> {
        AShare::from_parts(
            x.cols,
            x.rows,
            transpose(&x.a, x.rows, x.cols),
            transpose(&x.b, x.rows, x.cols),
        )
    }

    /// Stacks matrices with equal column counts on top of each other.
    pub fn vstack(&self, parts: &[&AShare<R>]) -> Result<AShare<R>, MpcError> {
        let cols = parts.first().map_or(0, |p| p.cols);
        if parts.iter().any(|p| p.cols != cols) {
            return Err(shape_err("vstack", "column counts differ"));
        }
        let rows = parts.iter().map(|p| p.rows).sum();
        Ok(AShare::from_parts(
            rows,
            cols,
            parts.iter().flat_map(|p| p.a.iter().copied()).collect(),
            parts.iter().flat_map(|p| p.b.iter().copied()).collect(),
        ))
    }

    /// Puts matrices with equal row counts side by side.
    pub fn hstack(&self, parts: &[&AShare<R>]) -> Result<AShare<R>, MpcError> {
        let ts: Vec<AShare<R>> = parts.iter().map(|p| self.transpose(p)).collect();
        let refs: Vec<&AShare<R>> = ts.iter().collect();
        Ok(self.transpose(
            &self
                .vstack(&refs)
                .map_err(|_| shape_err("hstack", "row counts differ"))?,
        ))
    }

    /// Sums each row: `rows × cols` → `rows × 1` (local).
    pub fn sum_rows(&self, x: &AShare<R>) -> AShare<R> {
        let s = |v: &[R]| {
            v.chunks(x.cols.max(1))
                .map(|r| r.iter().fold(R::ZERO, |acc, &e| acc.add(e)))
                .collect::<Vec<R>>()
        };
        AShare::from_parts(x.rows, 1, s(&x.a), s(&x.b))
    }

    /// Repeats a `rows × 1` column `cols` times: → `rows × cols` (local).
    pub fn broadcast_cols(&self, x: &AShare<R>, cols: usize) -> AShare<R> {
        let s = |v: &[R]| {
            v.iter()
                .flat_map(|&e| std::iter::repeat_n(e, cols))
                .collect()
        };
        AShare::from_parts(x.rows, cols, s(&x.a), s(&x.b))
    }

    /// Adds a `1 × cols` row to every row of `x` (bias addition; local).
    pub fn add_row(&self, x: &AShare<R>, row: &AShare<R>) -> Result<AShare<R>, MpcError> {
        if row.rows != 1 || row.cols != x.cols {
            return Err(shape_err(
                "add_row",
                format!("{:?} + {:?}", x.shape(), row.shape()),
            ));
        }
        let f = |v: &[R], r: &[R]| {
            v.chunks(x.cols.max(1))
                .flat_map(|c| c.iter().zip(r).map(|(&a, &b)| a.add(b)))
                .collect()
        };
        Ok(AShare::from_parts(
            x.rows,
            x.cols,
            f(&x.a, &row.a),
            f(&x.b, &row.b),
        ))
    }
}

/// The index [`Party::gather`] reads as "a zero here".
pub const ZERO_ENTRY: usize = usize::MAX;

fn p_streams<R: Z2k>(p: &mut Party<R>) -> (rand_chacha::ChaCha20Rng, rand_chacha::ChaCha20Rng) {
    p.streams()
}
