//! What a split's activations reveal about the input, measured: the
//! inversion attack of He, Zhang and Lee ("Model inversion attacks against
//! collaborative inference", ACSAC 2019), in its learned form — whoever
//! receives the activations at the cut (the creator, in `plain-tail` mode)
//! trains an inverse network from activations back to inputs on public
//! data of the same domain, then applies it to what it receives.
//!
//! The score of a split: on held-out inputs, the reconstructions' SSIM
//! (Wang, Bovik, Sheikh, Simoncelli 2004: an 11×11 Gaussian window of
//! σ = 1.5, C1 = (0.01·L)², C2 = (0.03·L)², L = 1, averaged over the
//! window positions inside the image, channel by channel) and PSNR
//! (`10·log10(L² / MSE)`), and the model's accuracy on the reconstructions
//! (how much of the input's meaning survives). The `he` and `mpc` modes
//! reveal no activation to anyone, so they have nothing to score: under
//! RLWE for the platform, and for the creator and the user as long as no
//! two of the three parties collude (`crate::split`).
//!
//! The inverse network: the activations flattened → dense 512 → ReLU →
//! dense (input size) → sigmoid, trained with Adam on the mean squared
//! error; inputs are expected in [0, 1] (as the shipped data sets are).

use crate::PlatformError;
use cipherflow_nn::data::Dataset;
use cipherflow_nn::layers::{Activation, ActivationKind, Dense, Flatten, Layer};
use cipherflow_nn::loss::{Loss, Targets};
use cipherflow_nn::optim::Optimizer;
use cipherflow_nn::{Sequential, Tensor};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// How the attacker trains its inverse network.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InversionSettings {
    /// Passes over the public data.
    pub epochs: usize,
    /// Minibatch size.
    pub batch: usize,
    /// Adam's learning rate.
    pub lr: f32,
    /// Hidden width of the inverse network.
    pub hidden: usize,
    /// Seed of the initial weights and the batch order.
    pub seed: u64,
}

impl Default for InversionSettings {
    fn default() -> Self {
        Self {
            epochs: 5,
            batch: 128,
            lr: 1e-3,
            hidden: 512,
            seed: 0,
        }
    }
}

/// The measured leakage of one split.
#[derive(Clone, Debug, PartialEq)]
pub struct Leakage {
    /// The split: activations after layer `k`.
    pub k: usize,
    /// Activations per input at the cut.
    pub activations: usize,
    /// Mean SSIM of the reconstructions (1: identical).
    pub ssim: f64,
    /// Mean PSNR of the reconstructions (dB).
    pub psnr: f64,
    /// The model's accuracy on the reconstructions.
    pub accuracy_on_reconstructions: f64,
    /// The model's accuracy on the originals.
    pub accuracy: f64,
}

fn bad(e: impl std::fmt::Display) -> PlatformError {
    PlatformError::BadRequest(e.to_string())
}

/// Outputs of `model` for `data`'s inputs, flattened, in batches.
fn outputs(model: &mut Sequential, data: &Dataset) -> Result<Vec<Vec<f32>>, PlatformError> {
    let mut out = Vec::with_capacity(data.len());
    let idx: Vec<usize> = (0..data.len()).collect();
    for chunk in idx.chunks(512) {
        let (x, _) = data.batch(chunk)?;
        let y = model.predict(&x)?;
        let width = y.len() / chunk.len().max(1);
        out.extend(
            y.as_slice()
                .ok_or_else(|| bad("non-contiguous outputs"))?
                .chunks(width.max(1))
                .map(<[f32]>::to_vec),
        );
    }
    Ok(out)
}

fn tensor(rows: &[&Vec<f32>], shape: &[usize]) -> Result<Tensor, PlatformError> {
    let mut s = vec![rows.len()];
    s.extend_from_slice(shape);
    Tensor::from_shape_vec(
        ndarray::IxDyn(&s),
        rows.iter().flat_map(|r| r.iter().copied()).collect(),
    )
    .map_err(bad)
}

/// Trains the inverse network of `model`'s activations after layer `k` on
/// `public` and scores it on `held_out` (see the module documentation).
pub fn inversion_leakage(
    model: &Sequential,
    k: usize,
    public: &Dataset,
    held_out: &Dataset,
    settings: &InversionSettings,
) -> Result<Leakage, PlatformError> {
    let (mut head, _) = model.split_at(k)?;
    let input_shape = model.input_shape().to_vec();
    let input_len: usize = input_shape.iter().product();
    let acts = outputs(&mut head, public)?;
    let width = acts.first().map_or(0, Vec::len);
    if width == 0 || public.is_empty() || held_out.is_empty() {
        return Err(bad("inversion needs public and held-out inputs"));
    }
    let mut rng = ChaCha20Rng::seed_from_u64(settings.seed);
    let mut inverse = Sequential::new(
        vec![width],
        vec![
            Layer::Flatten(Flatten::new()),
            Layer::Dense(Dense::new(width, settings.hidden, &mut rng)),
            Layer::Activation(Activation::new(ActivationKind::Relu)),
            Layer::Dense(Dense::new(settings.hidden, input_len, &mut rng)),
            Layer::Activation(Activation::new(ActivationKind::Sigmoid)),
        ],
    )?;
    let mut opt = Optimizer::adam(settings.lr, 0.0)?;
    let targets: Vec<Vec<f32>> = public.features().outer_iter().map(|r| r.to_vec()).collect();
    let mut order: Vec<usize> = (0..public.len()).collect();
    for _ in 0..settings.epochs {
        shuffle(&mut order, &mut rng);
        for chunk in order.chunks(settings.batch.max(1)) {
            let a: Vec<&Vec<f32>> = chunk.iter().filter_map(|&i| acts.get(i)).collect();
            let t: Vec<&Vec<f32>> = chunk.iter().filter_map(|&i| targets.get(i)).collect();
            let x = tensor(&a, &[width])?;
            let y = tensor(&t, &[input_len])?;
            inverse.zero_grad();
            let out = inverse.forward(&x, true)?;
            let lo = Loss::Mse.compute(&out, &Targets::Values(&y))?;
            inverse.backward(&lo.grad)?;
            inverse.accumulate_grads(&vec![1.0 / chunk.len() as f32; chunk.len()])?;
            inverse.clear_cache();
            opt.step(inverse.params_mut())?;
        }
    }
    // Held-out: reconstruct, score, classify.
    let mut model = model.clone();
    let held_acts = outputs(&mut head, held_out)?;
    let originals: Vec<Vec<f32>> = held_out
        .features()
        .outer_iter()
        .map(|r| r.to_vec())
        .collect();
    let mut ssim_sum = 0.0;
    let mut psnr_sum = 0.0;
    let mut correct_rec = 0usize;
    let mut correct = 0usize;
    let all: Vec<usize> = (0..held_out.len()).collect();
    for chunk in all.chunks(512) {
        let a: Vec<&Vec<f32>> = chunk.iter().filter_map(|&i| held_acts.get(i)).collect();
        let rec = inverse.predict(&tensor(&a, &[width])?)?;
        let rec_rows: Vec<Vec<f32>> = rec
            .as_slice()
            .ok_or_else(|| bad("non-contiguous reconstructions"))?
            .chunks(input_len)
            .map(<[f32]>::to_vec)
            .collect();
        let orig: Vec<&Vec<f32>> = chunk.iter().filter_map(|&i| originals.get(i)).collect();
        for (r, o) in rec_rows.iter().zip(&orig) {
            ssim_sum += ssim(o, r, &input_shape)?;
            psnr_sum += psnr(o, r);
        }
        let rec_refs: Vec<&Vec<f32>> = rec_rows.iter().collect();
        let pred_rec = cipherflow_nn::loss::predict_classes(
            &model.predict(&tensor(&rec_refs, &input_shape)?)?,
        );
        let pred = cipherflow_nn::loss::predict_classes(
            &model.predict(&tensor(&orig, &input_shape)?)?,
        );
        for ((&i, pr), p) in chunk.iter().zip(&pred_rec).zip(&pred) {
            let label = held_out.labels().get(i).copied();
            correct_rec += usize::from(Some(*pr) == label);
            correct += usize::from(Some(*p) == label);
        }
    }
    let n = held_out.len() as f64;
    Ok(Leakage {
        k,
        activations: width,
        ssim: ssim_sum / n,
        psnr: psnr_sum / n,
        accuracy_on_reconstructions: correct_rec as f64 / n,
        accuracy: correct as f64 / n,
    })
}

fn shuffle(v: &mut [usize], rng: &mut ChaCha20Rng) {
    use rand_core::RngCore;
    for i in (1..v.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// PSNR (dB) of `b` against `a`, data range 1; 100 for identical images.
pub fn psnr(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len()).max(1) as f64;
    let mse: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / n;
    if mse <= 1e-10 {
        100.0
    } else {
        10.0 * (1.0 / mse).log10()
    }
}

/// SSIM of `b` against `a` (data range 1), `shape` `[C, H, W]` or
/// `[H, W]` (see the module documentation); images smaller than the
/// window use a window of their size.
pub fn ssim(a: &[f32], b: &[f32], shape: &[usize]) -> Result<f64, PlatformError> {
    let (c, h, w) = match shape {
        &[c, h, w] => (c, h, w),
        &[h, w] => (1, h, w),
        _ => return Err(bad(format!("SSIM needs images, not {shape:?}"))),
    };
    if a.len() != c * h * w || b.len() != a.len() || h == 0 || w == 0 {
        return Err(bad("SSIM of images of different sizes"));
    }
    let win = 11.min(h).min(w);
    let sigma = 1.5;
    let half = (win as f64 - 1.0) / 2.0;
    let g: Vec<f64> = (0..win)
        .map(|i| (-((i as f64 - half).powi(2)) / (2.0 * sigma * sigma)).exp())
        .collect();
    let gs: f64 = g.iter().sum();
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let mut total = 0.0;
    let mut count = 0usize;
    for ch in 0..c {
        let px = |img: &[f32], y: usize, x: usize| {
            f64::from(img.get(ch * h * w + y * w + x).copied().unwrap_or(0.0))
        };
        for y0 in 0..=(h - win) {
            for x0 in 0..=(w - win) {
                let (mut ma, mut mb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
                for (dy, gy) in g.iter().enumerate() {
                    for (dx, gx) in g.iter().enumerate() {
                        let wt = gy * gx / (gs * gs);
                        let (va, vb) = (px(a, y0 + dy, x0 + dx), px(b, y0 + dy, x0 + dx));
                        ma += wt * va;
                        mb += wt * vb;
                        saa += wt * va * va;
                        sbb += wt * vb * vb;
                        sab += wt * va * vb;
                    }
                }
                let (va, vb, cov) = (saa - ma * ma, sbb - mb * mb, sab - ma * mb);
                total += ((2.0 * ma * mb + c1) * (2.0 * cov + c2))
                    / ((ma * ma + mb * mb + c1) * (va + vb + c2));
                count += 1;
            }
        }
    }
    Ok(total / count.max(1) as f64)
}
