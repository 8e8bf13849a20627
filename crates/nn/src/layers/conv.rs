//! 2-D convolution on NCHW batches by unfolding (im2col) and one matrix
//! product, in PyTorch's `nn.Conv2d` layout (`weight` `[out, in, kh, kw]`,
//! `bias` `[out]`; groups and dilation 1).
//!
//! Per-example gradient norms use the unfolded input `U_b` (`[L, C·kh·kw]`,
//! one row per output position) and the output gradient `G_b` (`[L, out]`):
//! the example's weight gradient is `G_bᵀ U_b`. Its squared norm is computed
//! either directly from that product or, when the output map is small, as
//! `Σ (U_b U_bᵀ) ⊙ (G_b G_bᵀ)` ("ghost" norm) — whichever costs fewer
//! multiplications. Both cost no more than the layer's weight gradient.

use super::{expect_rank, expect_same, torch_uniform, Param};
use crate::{NnError, Tensor};
use ndarray::{s, Array2, ArrayView2, Axis};
use rayon::prelude::*;

/// 2-D convolution layer.
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// `[out, in, kh, kw]`.
    pub weight: Param,
    /// `[out]`.
    pub bias: Param,
    /// Stride (vertical, horizontal).
    pub stride: (usize, usize),
    /// Zero padding (vertical, horizontal).
    pub padding: (usize, usize),
    cache: Option<Cache>,
}

#[derive(Clone, Debug)]
struct Cache {
    geom: Geometry,
    /// Unfolded input, `[B·L, C·kh·kw]`.
    unfolded: Array2<f32>,
    /// Output gradient with positions as rows, `[B·L, out]`.
    grad_rows: Option<Array2<f32>>,
}

/// Sizes of one convolution call.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    batch: usize,
    cin: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    ph: usize,
    pw: usize,
    ho: usize,
    wo: usize,
}

impl Geometry {
    fn l(&self) -> usize {
        self.ho * self.wo
    }
    fn ckk(&self) -> usize {
        self.cin * self.kh * self.kw
    }
}

impl Conv2d {
    /// A layer with PyTorch's default initialisation.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
        rng: &mut dyn rand_core::RngCore,
    ) -> Result<Self, NnError> {
        let fan_in = in_channels * kernel.0 * kernel.1;
        let weight = torch_uniform(
            &[out_channels, in_channels, kernel.0, kernel.1],
            fan_in,
            rng,
        );
        let bias = torch_uniform(&[out_channels], fan_in, rng);
        Self::try_from_weights(weight, bias, stride, padding)
    }

    /// A layer from explicit weights, checking shapes and hyper-parameters.
    pub fn try_from_weights(
        weight: Tensor,
        bias: Tensor,
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Self, NnError> {
        let ws = weight.shape();
        if ws.len() != 4 || ws.contains(&0) || bias.shape() != [ws[0]] {
            return Err(NnError::Config(format!(
                "Conv2d weights must be [out, in, kh, kw] (non-empty) and [out], got {:?} and {:?}",
                ws,
                bias.shape()
            )));
        }
        if stride.0 == 0 || stride.1 == 0 {
            return Err(NnError::Config("Conv2d stride must be positive".into()));
        }
        if padding.0 >= ws[2] || padding.1 >= ws[3] {
            return Err(NnError::Config(format!(
                "Conv2d padding {padding:?} must be smaller than the kernel {:?}",
                (ws[2], ws[3])
            )));
        }
        Ok(Conv2d {
            weight: Param::new(weight),
            bias: Param::new(bias),
            stride,
            padding,
            cache: None,
        })
    }

    /// (out channels, in channels, kernel height, kernel width).
    pub fn dims(&self) -> (usize, usize, usize, usize) {
        let s = self.weight.value.shape();
        (s[0], s[1], s[2], s[3])
    }

    fn geometry(&self, batch: usize, input: &[usize]) -> Result<Geometry, NnError> {
        let (_, cin, kh, kw) = self.dims();
        let [c, h, w] = input else {
            return Err(NnError::Config(format!(
                "Conv2d expects [channels, height, width] inputs, got {input:?}"
            )));
        };
        if *c != cin {
            return Err(NnError::shape("Conv2d channels", &[cin], &[*c]));
        }
        let (ph, pw) = self.padding;
        if h + 2 * ph < kh || w + 2 * pw < kw {
            return Err(NnError::Config(format!(
                "Conv2d kernel {kh}×{kw} larger than the padded input {}×{}",
                h + 2 * ph,
                w + 2 * pw
            )));
        }
        let (sh, sw) = self.stride;
        Ok(Geometry {
            batch,
            cin,
            h: *h,
            w: *w,
            kh,
            kw,
            sh,
            sw,
            ph,
            pw,
            ho: (h + 2 * ph - kh) / sh + 1,
            wo: (w + 2 * pw - kw) / sw + 1,
        })
    }

    fn w2(&self) -> Result<ArrayView2<'_, f32>, NnError> {
        let (co, ci, kh, kw) = self.dims();
        self.weight
            .value
            .view()
            .into_shape_with_order((co, ci * kh * kw))
            .map_err(|_| NnError::Config("Conv2d weight layout".into()))
    }

    pub(crate) fn forward(&mut self, x: &Tensor, train: bool) -> Result<Tensor, NnError> {
        let shape = expect_rank(x, 4, "Conv2d")?;
        let g = self.geometry(shape[0], &shape[1..])?;
        let xs = x.as_standard_layout();
        let xs = xs
            .as_slice()
            .ok_or(NnError::Config("Conv2d input layout".into()))?;
        let unfolded = unfold(xs, &g);
        let rows = unfolded.dot(&self.w2()?.t()); // [B·L, out]
        let cout = self.dims().0;
        let l = g.l();
        let mut y = Tensor::zeros(ndarray::IxDyn(&[g.batch, cout, g.ho, g.wo]));
        let bias = self.bias.value.as_slice().unwrap_or(&[]);
        if let Some(ys) = y.as_slice_mut() {
            ys.par_chunks_mut(cout * l)
                .zip(rows.axis_chunks_iter(Axis(0), l.max(1)).into_par_iter())
                .for_each(|(yb, rb)| {
                    for (p, r) in rb.rows().into_iter().enumerate() {
                        for (co, &v) in r.iter().enumerate() {
                            yb[co * l + p] = v + bias.get(co).copied().unwrap_or(0.0);
                        }
                    }
                });
        }
        self.cache = train.then_some(Cache {
            geom: g,
            unfolded,
            grad_rows: None,
        });
        Ok(y)
    }

    pub(crate) fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor, NnError> {
        let cout = self.dims().0;
        let w2 = self.w2()?.to_owned();
        let cache = self.cache.as_mut().ok_or(NnError::NoForward("Conv2d"))?;
        let g = cache.geom;
        expect_same("Conv2d gradient", &[g.batch, cout, g.ho, g.wo], grad_out)?;
        let gs = grad_out.as_standard_layout();
        let gs = gs
            .as_slice()
            .ok_or(NnError::Config("Conv2d gradient layout".into()))?;
        let l = g.l();
        let mut grad_rows = Array2::<f32>::zeros((g.batch * l, cout));
        if let Some(gr) = grad_rows.as_slice_mut() {
            gr.par_chunks_mut(l * cout)
                .zip(gs.par_chunks(cout * l))
                .for_each(|(dst, src)| {
                    for co in 0..cout {
                        for p in 0..l {
                            dst[p * cout + co] = src[co * l + p];
                        }
                    }
                });
        }
        let d_unfolded = grad_rows.dot(&w2); // [B·L, C·kh·kw]
        cache.grad_rows = Some(grad_rows);
        Ok(fold(&d_unfolded, &g))
    }

    fn cached(&self) -> Result<(&Geometry, &Array2<f32>, &Array2<f32>), NnError> {
        match &self.cache {
            Some(Cache {
                geom,
                unfolded,
                grad_rows: Some(gr),
            }) => Ok((geom, unfolded, gr)),
            _ => Err(NnError::NoForward("Conv2d")),
        }
    }

    pub(crate) fn per_example_sq_norms(&self, out: &mut [f32]) -> Result<(), NnError> {
        let (g, u, gr) = self.cached()?;
        if out.len() != g.batch {
            return Err(NnError::shape("Conv2d norms", &[g.batch], &[out.len()]));
        }
        let (l, ckk, cout) = (g.l(), g.ckk(), gr.ncols());
        let ghost = l * (ckk + cout) < ckk * cout;
        let norms: Vec<f32> = (0..g.batch)
            .into_par_iter()
            .map(|b| {
                let ub = u.slice(s![b * l..(b + 1) * l, ..]);
                let gb = gr.slice(s![b * l..(b + 1) * l, ..]);
                let bias: f32 = gb.sum_axis(Axis(0)).iter().map(|v| v * v).sum();
                let weight: f32 = if ghost {
                    let uu = ub.dot(&ub.t());
                    let gg = gb.dot(&gb.t());
                    uu.iter().zip(gg.iter()).map(|(a, b)| a * b).sum()
                } else {
                    gb.t().dot(&ub).iter().map(|v| v * v).sum()
                };
                weight + bias
            })
            .collect();
        for (o, n) in out.iter_mut().zip(norms) {
            *o += n;
        }
        Ok(())
    }

    pub(crate) fn accumulate_grads(&mut self, weights: &[f32]) -> Result<(), NnError> {
        let (g, u, gr) = self.cached()?;
        if weights.len() != g.batch {
            return Err(NnError::shape(
                "Conv2d weights",
                &[g.batch],
                &[weights.len()],
            ));
        }
        let l = g.l().max(1);
        let mut gw = gr.clone();
        for (mut chunk, &w) in gw.axis_chunks_iter_mut(Axis(0), l).zip(weights) {
            chunk *= w;
        }
        let dw = gw.t().dot(u); // [out, C·kh·kw]
        let db = gw.sum_axis(Axis(0));
        let shape = self.weight.value.raw_dim();
        let dw = dw
            .into_shape_with_order(shape)
            .map_err(|_| NnError::Config("Conv2d gradient layout".into()))?;
        self.weight.grad += &dw;
        self.bias.grad += &db.into_dyn();
        Ok(())
    }

    pub(crate) fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, NnError> {
        let g = self.geometry(1, input)?;
        Ok(vec![self.dims().0, g.ho, g.wo])
    }

    pub(crate) fn clear_cache(&mut self) {
        self.cache = None;
    }

    pub(crate) fn describe(&self) -> String {
        let (co, ci, kh, kw) = self.dims();
        format!(
            "Conv2d({ci} → {co}, {kh}×{kw}, stride {:?}, padding {:?})",
            self.stride, self.padding
        )
    }
}

/// Calls `f(row, k, i)` for every tap of every window of one image: output
/// position `row` (= oh·Wo + ow), column `k` in (c, ki, kj) order — which
/// matches the flattened PyTorch weight — and flat input index `i`; taps
/// that fall on padding are skipped.
fn for_each_tap(g: &Geometry, mut f: impl FnMut(usize, usize, usize)) {
    for oh in 0..g.ho {
        for ow in 0..g.wo {
            let row = oh * g.wo + ow;
            let mut k = 0;
            for c in 0..g.cin {
                for ki in 0..g.kh {
                    let ih = (oh * g.sh + ki).wrapping_sub(g.ph);
                    for kj in 0..g.kw {
                        let iw = (ow * g.sw + kj).wrapping_sub(g.pw);
                        if ih < g.h && iw < g.w {
                            f(row, k, (c * g.h + ih) * g.w + iw);
                        }
                        k += 1;
                    }
                }
            }
        }
    }
}

/// im2col: `[B, C, H, W]` → `[B·L, C·kh·kw]`, zero where the window covers
/// padding.
fn unfold(x: &[f32], g: &Geometry) -> Array2<f32> {
    let (l, ckk) = (g.l(), g.ckk());
    let mut out = Array2::<f32>::zeros((g.batch * l, ckk));
    let img = g.cin * g.h * g.w;
    if let Some(o) = out.as_slice_mut() {
        o.par_chunks_mut((l * ckk).max(1))
            .zip(x.par_chunks(img.max(1)))
            .for_each(|(ob, xb)| for_each_tap(g, |row, k, i| ob[row * ckk + k] = xb[i]));
    }
    out
}

/// col2im: adds the rows of `[B·L, C·kh·kw]` back into `[B, C, H, W]`.
fn fold(d: &Array2<f32>, g: &Geometry) -> Tensor {
    let (l, ckk) = (g.l(), g.ckk());
    let img = g.cin * g.h * g.w;
    let mut dx = Tensor::zeros(ndarray::IxDyn(&[g.batch, g.cin, g.h, g.w]));
    if let (Some(o), Some(ds)) = (dx.as_slice_mut(), d.as_slice()) {
        o.par_chunks_mut(img.max(1))
            .zip(ds.par_chunks((l * ckk).max(1)))
            .for_each(|(xb, db)| for_each_tap(g, |row, k, i| xb[i] += db[row * ckk + k]));
    }
    dx
}
