//! Average and max pooling over NCHW batches (no padding; PyTorch's
//! `nn.AvgPool2d` / `nn.MaxPool2d` with `padding=0`, floor mode).
//! Average pooling is linear and runs under encryption; max pooling is for
//! plaintext models only.

use super::{expect_rank, expect_same};
use crate::{NnError, Tensor};
use rayon::prelude::*;

/// Which pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// Mean of each window.
    Avg,
    /// Maximum of each window.
    Max,
}

/// A pooling layer.
#[derive(Clone, Debug)]
pub struct Pool2d {
    /// Average or max.
    pub kind: PoolKind,
    /// Window (height, width).
    pub kernel: (usize, usize),
    /// Stride (vertical, horizontal).
    pub stride: (usize, usize),
    input_shape: Option<Vec<usize>>,
    /// For max pooling: the flat input index of each output's maximum.
    argmax: Vec<usize>,
}

impl Pool2d {
    /// A pooling layer; kernel and stride must be positive.
    pub fn new(
        kind: PoolKind,
        kernel: (usize, usize),
        stride: (usize, usize),
    ) -> Result<Self, NnError> {
        if kernel.0 == 0 || kernel.1 == 0 || stride.0 == 0 || stride.1 == 0 {
            return Err(NnError::Config(
                "pooling kernel and stride must be positive".into(),
            ));
        }
        Ok(Pool2d {
            kind,
            kernel,
            stride,
            input_shape: None,
            argmax: Vec::new(),
        })
    }

    fn out_hw(&self, h: usize, w: usize) -> Result<(usize, usize), NnError> {
        let (kh, kw) = self.kernel;
        if h < kh || w < kw {
            return Err(NnError::Config(format!(
                "pooling window {kh}×{kw} larger than the input {h}×{w}"
            )));
        }
        Ok(((h - kh) / self.stride.0 + 1, (w - kw) / self.stride.1 + 1))
    }

    pub(crate) fn forward(&mut self, x: &Tensor, train: bool) -> Result<Tensor, NnError> {
        let shape = expect_rank(x, 4, "pooling")?.to_vec();
        let [b, c, h, w] = [shape[0], shape[1], shape[2], shape[3]];
        let (ho, wo) = self.out_hw(h, w)?;
        let (kh, kw) = self.kernel;
        let (sh, sw) = self.stride;
        let xs = x.as_standard_layout();
        let xs = xs
            .as_slice()
            .ok_or(NnError::Config("pooling input layout".into()))?;
        let mut y = vec![0f32; b * c * ho * wo];
        let mut arg = vec![
            0usize;
            if self.kind == PoolKind::Max {
                y.len()
            } else {
                0
            }
        ];
        let inv = 1.0 / (kh * kw) as f32;
        let plane_out = (ho * wo).max(1);
        let compute = |(ch, yp): (usize, &mut [f32]), mut ap: Option<&mut [usize]>| {
            let base = ch * h * w;
            for oh in 0..ho {
                for ow in 0..wo {
                    let mut acc = 0f32;
                    let mut best = f32::NEG_INFINITY;
                    let mut best_i = base + oh * sh * w + ow * sw;
                    for ki in 0..kh {
                        for kj in 0..kw {
                            let i = base + (oh * sh + ki) * w + ow * sw + kj;
                            let v = xs[i];
                            acc += v;
                            if v > best {
                                best = v;
                                best_i = i;
                            }
                        }
                    }
                    let o = oh * wo + ow;
                    match self.kind {
                        PoolKind::Avg => yp[o] = acc * inv,
                        PoolKind::Max => {
                            yp[o] = best;
                            if let Some(a) = ap.as_deref_mut() {
                                a[o] = best_i;
                            }
                        }
                    }
                }
            }
        };
        if self.kind == PoolKind::Max {
            y.par_chunks_mut(plane_out)
                .zip(arg.par_chunks_mut(plane_out))
                .enumerate()
                .for_each(|(ch, (yp, ap))| compute((ch, yp), Some(ap)));
        } else {
            y.par_chunks_mut(plane_out)
                .enumerate()
                .for_each(|(ch, yp)| compute((ch, yp), None));
        }
        if train {
            self.input_shape = Some(shape);
            self.argmax = arg;
        }
        Tensor::from_shape_vec(ndarray::IxDyn(&[b, c, ho, wo]), y)
            .map_err(|e| NnError::Config(e.to_string()))
    }

    pub(crate) fn backward(&mut self, grad_out: &Tensor) -> Result<Tensor, NnError> {
        let shape = self
            .input_shape
            .clone()
            .ok_or(NnError::NoForward("pooling"))?;
        let [b, c, h, w] = [shape[0], shape[1], shape[2], shape[3]];
        let (ho, wo) = self.out_hw(h, w)?;
        expect_same("pooling gradient", &[b, c, ho, wo], grad_out)?;
        let gs = grad_out.as_standard_layout();
        let gs = gs
            .as_slice()
            .ok_or(NnError::Config("pooling gradient layout".into()))?;
        let mut dx = vec![0f32; b * c * h * w];
        match self.kind {
            PoolKind::Max => {
                for (&i, &g) in self.argmax.iter().zip(gs) {
                    if let Some(d) = dx.get_mut(i) {
                        *d += g;
                    }
                }
            }
            PoolKind::Avg => {
                let (kh, kw) = self.kernel;
                let (sh, sw) = self.stride;
                let inv = 1.0 / (kh * kw) as f32;
                dx.par_chunks_mut((h * w).max(1))
                    .zip(gs.par_chunks((ho * wo).max(1)))
                    .for_each(|(dp, gp)| {
                        for oh in 0..ho {
                            for ow in 0..wo {
                                let g = gp[oh * wo + ow] * inv;
                                for ki in 0..kh {
                                    for kj in 0..kw {
                                        dp[(oh * sh + ki) * w + ow * sw + kj] += g;
                                    }
                                }
                            }
                        }
                    });
            }
        }
        Tensor::from_shape_vec(ndarray::IxDyn(&shape), dx)
            .map_err(|e| NnError::Config(e.to_string()))
    }

    pub(crate) fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, NnError> {
        let [c, h, w] = input else {
            return Err(NnError::Config(format!(
                "pooling expects [channels, height, width] inputs, got {input:?}"
            )));
        };
        let (ho, wo) = self.out_hw(*h, *w)?;
        Ok(vec![*c, ho, wo])
    }

    pub(crate) fn clear_cache(&mut self) {
        self.input_shape = None;
        self.argmax = Vec::new();
    }

    pub(crate) fn describe(&self) -> String {
        let name = match self.kind {
            PoolKind::Avg => "AvgPool2d",
            PoolKind::Max => "MaxPool2d",
        };
        format!("{name}({:?}, stride {:?})", self.kernel, self.stride)
    }
}
