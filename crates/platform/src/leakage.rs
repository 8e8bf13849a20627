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
//! (how much of the input's meaning survives; without labels, how many
//! reconstructions it classifies as the originals). The `he` and `mpc` modes
//! reveal no activation to anyone, so they have nothing to score: under
//! RLWE for the platform, and for the creator and the user as long as no
//! two of the three parties collude (`crate::split`).
//!
//! The inverse network: the activations flattened → dense 512 → ReLU →
//! dense (input size) → sigmoid, trained with Adam on the mean squared
//! error; inputs are expected in [0, 1] (as the shipped data sets are).

use crate::PlatformError;
use cipherflow_nn::layers::{Activation, ActivationKind, Dense, Flatten, Layer};
use cipherflow_nn::loss::{Loss, Targets};
use cipherflow_nn::optim::Optimizer;
use cipherflow_nn::{Preprocessing, Sequential, Tensor};
use ndarray::Array2;
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
    /// Fraction of reconstructions the model classifies as it classifies
    /// the originals (`None` when only the head is known).
    pub agreement_on_reconstructions: Option<f64>,
    /// The model's accuracy on the reconstructions (where labels exist).
    pub accuracy_on_reconstructions: Option<f64>,
    /// The model's accuracy on the originals (where labels exist).
    pub accuracy: Option<f64>,
    /// The first held-out input and its reconstruction, to be seen.
    pub example: LeakageExample,
}

/// One held-out input and the attack's reconstruction of it: raw values
/// (in [0, 1] for the shipped data) in the model's input shape.
#[derive(Clone, Debug, PartialEq)]
pub struct LeakageExample {
    /// The model's input shape, e.g. `[1, 28, 28]`.
    pub shape: Vec<usize>,
    /// The held-out input.
    pub original: Vec<f32>,
    /// What the inverse network made of its activations.
    pub reconstruction: Vec<f32>,
}

/// What the attack is measured on: raw inputs (`[N, F]`, values in
/// [0, 1], the model's input shape), the model's preprocessing applied
/// before the model sees them, held-out labels if known.
#[derive(Clone, Copy, Debug)]
pub struct InversionData<'a> {
    /// Public inputs of the domain: the attacker's training set.
    pub public: &'a Array2<f32>,
    /// Held-out inputs: what the attack is scored on.
    pub held_out: &'a Array2<f32>,
    /// The held-out inputs' labels.
    pub labels: Option<&'a [usize]>,
    /// Applied to inputs (and reconstructions) before the model.
    pub preprocessing: Option<&'a Preprocessing>,
}

fn bad(e: impl std::fmt::Display) -> PlatformError {
    PlatformError::BadRequest(e.to_string())
}

/// Rows of `x` (raw) through the preprocessing and `model`, in batches of
/// 512: each output flattened.
fn outputs(
    model: &mut Sequential,
    x: &Array2<f32>,
    preprocessing: Option<&Preprocessing>,
) -> Result<Vec<Vec<f32>>, PlatformError> {
    let shape = model.input_shape().to_vec();
    let mut out = Vec::with_capacity(x.nrows());
    let n = x.nrows();
    let mut start = 0;
    while start < n {
        let end = (start + 512).min(n);
        let mut chunk = x.slice(ndarray::s![start..end, ..]).to_owned();
        if let Some(p) = preprocessing {
            p.apply(&mut chunk, &shape)?;
        }
        let mut dims = vec![end - start];
        dims.extend_from_slice(&shape);
        let t = chunk
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order(ndarray::IxDyn(&dims))
            .map_err(bad)?;
        let y = model.predict(&t)?;
        let width = y.len() / (end - start).max(1);
        out.extend(
            y.as_slice()
                .ok_or_else(|| bad("non-contiguous outputs"))?
                .chunks(width.max(1))
                .map(<[f32]>::to_vec),
        );
        start = end;
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

fn argmax_rows(y: &[Vec<f32>]) -> Vec<usize> {
    y.iter()
        .map(|r| {
            (0..r.len())
                .max_by(|&a, &b| r[a].total_cmp(&r[b]))
                .unwrap_or(0)
        })
        .collect()
}

/// Trains the inverse network of `model`'s activations after layer `k`
/// on `data.public` and scores it on `data.held_out` (see the module
/// documentation).
pub fn inversion_leakage(
    model: &Sequential,
    k: usize,
    data: &InversionData<'_>,
    settings: &InversionSettings,
) -> Result<Leakage, PlatformError> {
    let (head, _) = model.split_at(k)?;
    invert(head, Some(model), data, settings)
}

/// [`inversion_leakage`] at the end of `head` when only the head is known
/// (the platform, holding the layers before a split): SSIM and PSNR, no
/// classification of the reconstructions.
pub fn inversion_leakage_of_head(
    head: &Sequential,
    data: &InversionData<'_>,
    settings: &InversionSettings,
) -> Result<Leakage, PlatformError> {
    invert(head.clone(), None, data, settings)
}

fn invert(
    mut head: Sequential,
    model: Option<&Sequential>,
    data: &InversionData<'_>,
    settings: &InversionSettings,
) -> Result<Leakage, PlatformError> {
    let k = head.layers().len();
    let input_shape = head.input_shape().to_vec();
    let input_len: usize = input_shape.iter().product();
    for (what, x) in [("public", data.public), ("held-out", data.held_out)] {
        if x.nrows() == 0 || x.ncols() != input_len {
            return Err(bad(format!(
                "{what} inputs: {} of {} values, the model takes {input_len}",
                x.nrows(),
                x.ncols()
            )));
        }
    }
    if data
        .labels
        .is_some_and(|l| l.len() != data.held_out.nrows())
    {
        return Err(bad("as many held-out labels as inputs are needed"));
    }
    let acts = outputs(&mut head, data.public, data.preprocessing)?;
    let width = acts.first().map_or(0, Vec::len);
    let mut rng = ChaCha20Rng::seed_from_u64(settings.seed);
    let mut inverse = Sequential::new(
        vec![width.max(1)],
        vec![
            Layer::Flatten(Flatten::new()),
            Layer::Dense(Dense::new(width.max(1), settings.hidden, &mut rng)),
            Layer::Activation(Activation::new(ActivationKind::Relu)),
            Layer::Dense(Dense::new(settings.hidden, input_len, &mut rng)),
            Layer::Activation(Activation::new(ActivationKind::Sigmoid)),
        ],
    )?;
    let mut opt = Optimizer::adam(settings.lr, 0.0)?;
    let targets: Vec<Vec<f32>> = data.public.outer_iter().map(|r| r.to_vec()).collect();
    let mut order: Vec<usize> = (0..targets.len()).collect();
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
    // Held-out: reconstruct, score, classify both.
    let held_acts = outputs(&mut head, data.held_out, data.preprocessing)?;
    let refs: Vec<&Vec<f32>> = held_acts.iter().collect();
    let mut rec_rows: Vec<Vec<f32>> = Vec::with_capacity(refs.len());
    for chunk in refs.chunks(512) {
        let rec = inverse.predict(&tensor(chunk, &[width])?)?;
        rec_rows.extend(
            rec.as_slice()
                .ok_or_else(|| bad("non-contiguous reconstructions"))?
                .chunks(input_len)
                .map(<[f32]>::to_vec),
        );
    }
    let rec = Array2::from_shape_vec(
        (rec_rows.len(), input_len),
        rec_rows.iter().flatten().copied().collect(),
    )
    .map_err(bad)?;
    let classes = match model {
        Some(m) => {
            let mut m = m.clone();
            Some((
                argmax_rows(&outputs(&mut m, &rec, data.preprocessing)?),
                argmax_rows(&outputs(&mut m, data.held_out, data.preprocessing)?),
            ))
        }
        None => None,
    };
    let mut ssim_sum = 0.0;
    let mut psnr_sum = 0.0;
    for (o, r) in data.held_out.outer_iter().zip(&rec_rows) {
        let o = o.to_vec();
        ssim_sum += ssim(&o, r, &input_shape)?;
        psnr_sum += psnr(&o, r);
    }
    let n = data.held_out.nrows() as f64;
    let frac = |hits: usize| hits as f64 / n;
    let correct = |pred: &[usize], labels: &[usize]| {
        frac(pred.iter().zip(labels).filter(|(a, b)| a == b).count())
    };
    let (agreement, on_rec, on_orig) = match &classes {
        Some((rec, orig)) => (
            Some(correct(rec, orig)),
            data.labels.map(|l| correct(rec, l)),
            data.labels.map(|l| correct(orig, l)),
        ),
        None => (None, None, None),
    };
    let example = LeakageExample {
        shape: input_shape.clone(),
        original: data
            .held_out
            .outer_iter()
            .next()
            .map(|r| r.to_vec())
            .unwrap_or_default(),
        reconstruction: rec_rows.first().cloned().unwrap_or_default(),
    };
    Ok(Leakage {
        k,
        activations: width,
        ssim: ssim_sum / n,
        psnr: psnr_sum / n,
        agreement_on_reconstructions: agreement,
        accuracy_on_reconstructions: on_rec,
        accuracy: on_orig,
        example,
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
    let (c, h, w) = match *shape {
        [c, h, w] => (c, h, w),
        [h, w] => (1, h, w),
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
