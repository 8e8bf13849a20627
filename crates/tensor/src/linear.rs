//! Linear maps `y = A x + b` in plaintext: the form every linear layer
//! (dense, 2-D convolution, average pooling, flatten) takes before it is
//! packed for encrypted evaluation, and the fusion of consecutive linear
//! layers into one map (one level instead of several).
//!
//! Convolutions become their (sparse, Toeplitz-structured) matrix over the
//! flattened `[C, H, W]` input: the encrypted product then needs no client
//! side unfolding (the client uploads the raw image once) and the output is
//! already in PyTorch's flatten order for the next dense layer.

use crate::TensorError;
use cipherflow_nn::layers::{BatchNorm, Conv2d, Dense, Pad2d, Pool2d, PoolKind};

/// Largest matrix (entries) a linear map may have: 2^27 (1 GiB of f64).
/// Larger layers are refused before anything is allocated.
pub const MAX_ENTRIES: usize = 1 << 27;

fn check_size(rows: usize, cols: usize) -> Result<(), TensorError> {
    match rows.checked_mul(cols) {
        Some(n) if n <= MAX_ENTRIES => Ok(()),
        _ => Err(TensorError::Unsupported(format!(
            "a {rows}×{cols} linear map exceeds {MAX_ENTRIES} entries"
        ))),
    }
}

/// A dense real matrix with a bias: `y = A x + b`, `A` row-major `rows × cols`.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearMap {
    rows: usize,
    cols: usize,
    a: Vec<f64>,
    bias: Vec<f64>,
}

impl LinearMap {
    /// A map from a row-major matrix and a bias of `rows` entries.
    pub fn new(rows: usize, cols: usize, a: Vec<f64>, bias: Vec<f64>) -> Result<Self, TensorError> {
        check_size(rows, cols)?;
        if rows == 0 || cols == 0 || rows.checked_mul(cols) != Some(a.len()) || bias.len() != rows {
            return Err(TensorError::Shape(format!(
                "matrix {rows}×{cols} needs {} entries and a bias of {rows}, got {} and {}",
                rows.saturating_mul(cols),
                a.len(),
                bias.len()
            )));
        }
        if a.iter().chain(&bias).any(|v| !v.is_finite()) {
            return Err(TensorError::Invalid("non-finite weight".into()));
        }
        Ok(Self {
            rows,
            cols,
            a,
            bias,
        })
    }

    /// The identity on `n` entries.
    pub fn identity(n: usize) -> Result<Self, TensorError> {
        check_size(n, n)?;
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            if let Some(x) = a.get_mut(i * n + i) {
                *x = 1.0;
            }
        }
        Self::new(n, n, a, vec![0.0; n])
    }

    /// Output size.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input size.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Entry `(i, j)` (0 outside the matrix).
    pub fn get(&self, i: usize, j: usize) -> f64 {
        if i >= self.rows || j >= self.cols {
            return 0.0;
        }
        self.a.get(i * self.cols + j).copied().unwrap_or(0.0)
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        self.a
            .get(i * self.cols..(i + 1) * self.cols)
            .unwrap_or(&[])
    }

    /// The bias.
    pub fn bias(&self) -> &[f64] {
        &self.bias
    }

    /// `A x + b` in plaintext.
    pub fn apply(&self, x: &[f64]) -> Result<Vec<f64>, TensorError> {
        if x.len() != self.cols {
            return Err(TensorError::Shape(format!(
                "input of {} entries for a {}×{} map",
                x.len(),
                self.rows,
                self.cols
            )));
        }
        Ok((0..self.rows)
            .map(|i| {
                self.row(i).iter().zip(x).map(|(a, b)| a * b).sum::<f64>()
                    + self.bias.get(i).copied().unwrap_or(0.0)
            })
            .collect())
    }

    /// `self ∘ inner`: `A₂(A₁x + b₁) + b₂`.
    pub fn compose(&self, inner: &LinearMap) -> Result<Self, TensorError> {
        if self.cols != inner.rows {
            return Err(TensorError::Shape(format!(
                "cannot compose {}×{} after {}×{}",
                self.rows, self.cols, inner.rows, inner.cols
            )));
        }
        let (m, k, n) = (self.rows, self.cols, inner.cols);
        check_size(m, n)?;
        let mut a = vec![0.0; m * n];
        for (i, out) in a.chunks_mut(n).enumerate() {
            for (t, &w) in self.row(i).iter().enumerate() {
                if w != 0.0 {
                    for (o, &v) in out.iter_mut().zip(inner.row(t)) {
                        *o += w * v;
                    }
                }
            }
        }
        let mut bias = self.bias.clone();
        for (i, b) in bias.iter_mut().enumerate() {
            *b += (0..k)
                .map(|t| self.get(i, t) * inner.bias.get(t).copied().unwrap_or(0.0))
                .sum::<f64>();
        }
        Self::new(m, n, a, bias)
    }

    /// Number of non-zero matrix entries.
    pub fn nonzeros(&self) -> usize {
        self.a.iter().filter(|v| **v != 0.0).count()
    }

    /// A dense layer (`weight [out, in]`).
    pub fn from_dense(d: &Dense) -> Result<Self, TensorError> {
        let (rows, cols) = (d.outputs(), d.inputs());
        let a = d.weight.value.iter().map(|&v| f64::from(v)).collect();
        let bias = d.bias.value.iter().map(|&v| f64::from(v)).collect();
        Self::new(rows, cols, a, bias)
    }

    /// A convolution on `[C, H, W]` inputs as a matrix over the flattened
    /// input (zero padding, any stride); rows in `[C_out, H_out, W_out]` order.
    pub fn from_conv(c: &Conv2d, input: &[usize]) -> Result<Self, TensorError> {
        let (co, ci, kh, kw) = c.dims();
        let &[cin, h, w] = input else {
            return Err(TensorError::Shape(format!(
                "conv input {input:?} is not [C, H, W]"
            )));
        };
        if cin != ci {
            return Err(TensorError::Shape(format!(
                "conv expects {ci} channels, got {cin}"
            )));
        }
        let (sh, sw) = c.stride;
        let (ph, pw) = c.padding;
        let (hp, wp) = (h + 2 * ph, w + 2 * pw);
        if hp < kh || wp < kw || sh == 0 || sw == 0 {
            return Err(TensorError::Shape(
                "conv kernel larger than its input".into(),
            ));
        }
        let (ho, wo) = ((hp - kh) / sh + 1, (wp - kw) / sw + 1);
        let rows = co * ho * wo;
        let cols = cin * h * w;
        check_size(rows, cols)?;
        let wt: Vec<f64> = c.weight.value.iter().map(|&v| f64::from(v)).collect();
        let mut a = vec![0.0; rows * cols];
        for o in 0..co {
            for oy in 0..ho {
                for ox in 0..wo {
                    let r = (o * ho + oy) * wo + ox;
                    for i in 0..ci {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let (Some(iy), Some(ix)) = (
                                    (oy * sh + ky).checked_sub(ph),
                                    (ox * sw + kx).checked_sub(pw),
                                ) else {
                                    continue;
                                };
                                if iy >= h || ix >= w {
                                    continue;
                                }
                                let col = (i * h + iy) * w + ix;
                                let k = ((o * ci + i) * kh + ky) * kw + kx;
                                if let (Some(dst), Some(&v)) =
                                    (a.get_mut(r * cols + col), wt.get(k))
                                {
                                    *dst += v;
                                }
                            }
                        }
                    }
                }
            }
        }
        let bias = (0..rows)
            .map(|r| {
                let o = r / (ho * wo);
                c.bias.value.get(o).map_or(0.0, |&b| f64::from(b))
            })
            .collect();
        Self::new(rows, cols, a, bias)
    }

    /// Average pooling on `[C, H, W]` inputs (max pooling is refused).
    pub fn from_pool(p: &Pool2d, input: &[usize]) -> Result<Self, TensorError> {
        if p.kind != PoolKind::Avg {
            return Err(TensorError::Unsupported(
                "max pooling is not a polynomial: use average pooling".into(),
            ));
        }
        let &[c, h, w] = input else {
            return Err(TensorError::Shape(format!(
                "pool input {input:?} is not [C, H, W]"
            )));
        };
        let ((kh, kw), (sh, sw)) = (p.kernel, p.stride);
        if h < kh || w < kw || sh == 0 || sw == 0 {
            return Err(TensorError::Shape(
                "pooling window larger than its input".into(),
            ));
        }
        let (ho, wo) = ((h - kh) / sh + 1, (w - kw) / sw + 1);
        let rows = c * ho * wo;
        let cols = c * h * w;
        check_size(rows, cols)?;
        let mut a = vec![0.0; rows * cols];
        let v = 1.0 / (kh * kw) as f64;
        for ch in 0..c {
            for oy in 0..ho {
                for ox in 0..wo {
                    let r = (ch * ho + oy) * wo + ox;
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let col = (ch * h + oy * sh + ky) * w + ox * sw + kx;
                            if let Some(dst) = a.get_mut(r * cols + col) {
                                *dst = v;
                            }
                        }
                    }
                }
            }
        }
        Self::new(rows, cols, a, vec![0.0; rows])
    }

    /// Constant padding of `[C, H, W]` inputs: a copy of each entry, the
    /// padding value as the bias of the added entries.
    pub fn from_pad(p: &Pad2d, input: &[usize]) -> Result<Self, TensorError> {
        let &[c, h, w] = input else {
            return Err(TensorError::Shape(format!(
                "pad input {input:?} is not [C, H, W]"
            )));
        };
        let (ho, wo) = (h + p.top + p.bottom, w + p.left + p.right);
        let rows = c * ho * wo;
        let cols = c * h * w;
        check_size(rows, cols)?;
        let mut a = vec![0.0; rows * cols];
        let mut bias = vec![f64::from(p.value); rows];
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let r = (ch * ho + y + p.top) * wo + x + p.left;
                    let col = (ch * h + y) * w + x;
                    if let Some(dst) = a.get_mut(r * cols + col) {
                        *dst = 1.0;
                    }
                    if let Some(b) = bias.get_mut(r) {
                        *b = 0.0;
                    }
                }
            }
        }
        Self::new(rows, cols, a, bias)
    }

    /// Inference-mode batch normalization of `[C]` or `[C, H, W]` inputs: a
    /// diagonal map, `scale_c` and `shift_c` per channel.
    pub fn from_batch_norm(b: &BatchNorm, input: &[usize]) -> Result<Self, TensorError> {
        let aff = b.affine();
        let c = aff.len();
        if input.first() != Some(&c) {
            return Err(TensorError::Shape(format!(
                "BatchNorm of {c} channels on inputs {input:?}"
            )));
        }
        let n: usize = input.iter().product();
        check_size(n, n)?;
        let per = n / c.max(1);
        let mut a = vec![0.0; n * n];
        let mut bias = vec![0.0; n];
        for k in 0..n {
            let (s, t) = aff.get(k / per.max(1)).copied().unwrap_or((1.0, 0.0));
            if let Some(d) = a.get_mut(k * n + k) {
                *d = s;
            }
            if let Some(v) = bias.get_mut(k) {
                *v = t;
            }
        }
        Self::new(n, n, a, bias)
    }
}
