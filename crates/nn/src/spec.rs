//! Models described as data (TOML or JSON), the built-in presets, and the
//! reverse mapping from a model to its description (stored in model files).
//!
//! ```toml
//! input = [1, 28, 28]
//! layers = [
//!   { type = "conv2d", out_channels = 16, kernel = 8, stride = 2, padding = 3 },
//!   { type = "tanh" },
//!   { type = "max_pool2d", kernel = 2, stride = 1 },
//!   { type = "flatten" },
//!   { type = "dense", units = 10 },
//! ]
//! ```

use crate::layers::{
    Activation, ActivationKind, BatchNorm, CellKind, Conv2d, Dense, Flatten, Layer, Pad2d,
    PolyActivation, Pool2d, PoolKind, Recurrent, Reshape, Softmax,
};
use crate::{NnError, Sequential};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};

/// A size given as one number (square) or as `[height, width]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Pair {
    /// Same size both ways.
    One(usize),
    /// `[height, width]`.
    Two([usize; 2]),
}

impl Pair {
    fn get(self) -> (usize, usize) {
        match self {
            Pair::One(a) => (a, a),
            Pair::Two([a, b]) => (a, b),
        }
    }

    fn from_tuple((a, b): (usize, usize)) -> Self {
        if a == b {
            Pair::One(a)
        } else {
            Pair::Two([a, b])
        }
    }
}

fn one() -> Pair {
    Pair::One(1)
}

fn zero() -> Pair {
    Pair::One(0)
}

fn leaky_slope() -> f32 {
    0.01
}

fn bn_eps() -> f32 {
    1e-5
}

fn bn_momentum() -> f32 {
    0.1
}

/// The most parameters [`ModelSpec::build`] allocates (2^28: 1 GiB of
/// weights, and as much again for their gradients).
pub const MAX_PARAMS: usize = 1 << 28;

/// One layer of a [`ModelSpec`]; input sizes are inferred.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerSpec {
    /// Fully connected layer with `units` outputs.
    Dense {
        /// Output size.
        units: usize,
    },
    /// 2-D convolution.
    Conv2d {
        /// Output channels.
        out_channels: usize,
        /// Kernel size.
        kernel: Pair,
        /// Stride (default 1).
        #[serde(default = "one")]
        stride: Pair,
        /// Zero padding (default 0).
        #[serde(default = "zero")]
        padding: Pair,
    },
    /// Average pooling.
    AvgPool2d {
        /// Window.
        kernel: Pair,
        /// Stride (default: the window).
        #[serde(default)]
        stride: Option<Pair>,
    },
    /// Max pooling (plaintext only).
    MaxPool2d {
        /// Window.
        kernel: Pair,
        /// Stride (default: the window).
        #[serde(default)]
        stride: Option<Pair>,
    },
    /// Average over the whole image, `[C, H, W]` → `[C, 1, 1]`
    /// (`nn.AdaptiveAvgPool2d(1)`, ONNX `GlobalAveragePool`).
    GlobalAvgPool2d,
    /// Constant padding (`nn.ZeroPad2d`, `nn.ConstantPad2d`).
    Pad2d {
        /// Rows added above.
        #[serde(default)]
        top: usize,
        /// Rows added below.
        #[serde(default)]
        bottom: usize,
        /// Columns added on the left.
        #[serde(default)]
        left: usize,
        /// Columns added on the right.
        #[serde(default)]
        right: usize,
        /// The value of the added entries (default 0).
        #[serde(default)]
        value: f32,
    },
    /// Batch normalization over the channels (`nn.BatchNorm1d` after a
    /// dense layer, `nn.BatchNorm2d` after a convolution). Not with DP-SGD.
    BatchNorm {
        /// ε added to the variance (default 1e-5).
        #[serde(default = "bn_eps")]
        eps: f32,
        /// Running-statistics momentum (default 0.1).
        #[serde(default = "bn_momentum")]
        momentum: f32,
    },
    /// Flatten to a vector.
    Flatten,
    /// Reshape each example, e.g. `[1, 28, 28]` to `[28, 28]` (rows as
    /// time steps).
    Reshape {
        /// The per-example shape.
        shape: Vec<usize>,
    },
    /// LSTM over `[steps, features]` inputs (`nn.LSTM(batch_first=True)`).
    Lstm {
        /// Hidden size.
        hidden: usize,
        /// Output every step's hidden state (`[steps, hidden]`) instead of
        /// the last one.
        #[serde(default)]
        sequence: bool,
    },
    /// GRU over `[steps, features]` inputs (`nn.GRU(batch_first=True)`).
    Gru {
        /// Hidden size.
        hidden: usize,
        /// Output every step's hidden state instead of the last one.
        #[serde(default)]
        sequence: bool,
    },
    /// ReLU.
    Relu,
    /// Leaky ReLU (`nn.LeakyReLU`).
    LeakyRelu {
        /// The slope for negative inputs (default 0.01, as PyTorch).
        #[serde(default = "leaky_slope")]
        negative_slope: f32,
    },
    /// x².
    Square,
    /// Logistic sigmoid.
    Sigmoid,
    /// tanh.
    Tanh,
    /// GELU, `x·Φ(x)` (PyTorch's default `nn.GELU`).
    Gelu,
    /// Softmax over the last axis.
    Softmax,
    /// Polynomial `Σ a_k x^k`.
    Poly {
        /// `[a_0, …, a_d]`.
        coefficients: Vec<f32>,
        /// Whether training updates them.
        #[serde(default)]
        trainable: bool,
    },
}

/// A model: per-example input shape and layers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Per-example input shape, e.g. `[1, 28, 28]` or `[30]`.
    pub input: Vec<usize>,
    /// The layers in order.
    pub layers: Vec<LayerSpec>,
}

impl ModelSpec {
    /// Builds the model with PyTorch's default initialisation from a seeded
    /// generator (the same seed gives the same initial weights).
    /// At most [`MAX_PARAMS`] parameters (see [`ModelSpec::build_bounded`]).
    pub fn build(&self, seed: u64) -> Result<Sequential, NnError> {
        self.build_bounded(seed, MAX_PARAMS)
    }

    /// [`ModelSpec::build`], refusing (before allocating) a model of more
    /// than `max_params` parameters or inputs of more than 2^28 values: for
    /// architectures that come from someone else.
    pub fn build_bounded(&self, seed: u64, max_params: usize) -> Result<Sequential, NnError> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut shape = self.input.clone();
        let mut layers = Vec::with_capacity(self.layers.len());
        let mut params = 0usize;
        for (i, ls) in self.layers.iter().enumerate() {
            let ctx = |e: NnError| NnError::Config(format!("layer {i}: {e}"));
            let values = shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .filter(|&v| v <= 1 << 28);
            let Some(width) = values else {
                return Err(ctx(NnError::Config(format!(
                    "inputs of shape {shape:?} are too large"
                ))));
            };
            let own = match ls {
                LayerSpec::Dense { units } => {
                    units.checked_add(1).and_then(|u| u.checked_mul(width))
                }
                LayerSpec::Conv2d {
                    out_channels,
                    kernel,
                    ..
                } => {
                    let (kh, kw) = kernel.get();
                    let cin = shape.first().copied().unwrap_or(0);
                    [cin, kh, kw]
                        .iter()
                        .try_fold(*out_channels, |a, &d| a.checked_mul(d))
                        .and_then(|v| v.checked_add(*out_channels))
                }
                LayerSpec::Lstm { hidden, .. } | LayerSpec::Gru { hidden, .. } => {
                    let f = shape.last().copied().unwrap_or(0);
                    f.checked_add(*hidden)
                        .and_then(|v| v.checked_add(2))
                        .and_then(|v| v.checked_mul(*hidden))
                        .and_then(|v| v.checked_mul(4))
                }
                _ => Some(0),
            };
            params = own
                .and_then(|o| params.checked_add(o))
                .filter(|&p| p <= max_params)
                .ok_or_else(|| {
                    ctx(NnError::Config(format!(
                        "the model would have more than {max_params} parameters"
                    )))
                })?;
            let layer = match ls {
                LayerSpec::Dense { units } => {
                    let [inputs] = shape[..] else {
                        return Err(ctx(NnError::Config(format!(
                            "dense layers take flat inputs, got {shape:?} (add a flatten layer)"
                        ))));
                    };
                    if *units == 0 {
                        return Err(ctx(NnError::Config("units must be positive".into())));
                    }
                    Layer::Dense(Dense::new(inputs, *units, &mut rng))
                }
                LayerSpec::Conv2d {
                    out_channels,
                    kernel,
                    stride,
                    padding,
                } => {
                    let cin = match shape[..] {
                        [c, _, _] => c,
                        _ => {
                            return Err(ctx(NnError::Config(format!(
                                "conv2d takes [channels, height, width] inputs, got {shape:?}"
                            ))))
                        }
                    };
                    if *out_channels == 0 {
                        return Err(ctx(NnError::Config("out_channels must be positive".into())));
                    }
                    Layer::Conv2d(
                        Conv2d::new(
                            cin,
                            *out_channels,
                            kernel.get(),
                            stride.get(),
                            padding.get(),
                            &mut rng,
                        )
                        .map_err(ctx)?,
                    )
                }
                LayerSpec::AvgPool2d { kernel, stride } => Layer::Pool2d(
                    Pool2d::new(PoolKind::Avg, kernel.get(), stride.unwrap_or(*kernel).get())
                        .map_err(ctx)?,
                ),
                LayerSpec::MaxPool2d { kernel, stride } => Layer::Pool2d(
                    Pool2d::new(PoolKind::Max, kernel.get(), stride.unwrap_or(*kernel).get())
                        .map_err(ctx)?,
                ),
                LayerSpec::GlobalAvgPool2d => {
                    let [_, h, w] = shape[..] else {
                        return Err(ctx(NnError::Config(format!(
                            "global average pooling takes [channels, height, width] inputs, \
                             got {shape:?}"
                        ))));
                    };
                    Layer::Pool2d(Pool2d::new(PoolKind::Avg, (h, w), (h, w)).map_err(ctx)?)
                }
                LayerSpec::Pad2d {
                    top,
                    bottom,
                    left,
                    right,
                    value,
                } => Layer::Pad2d(Pad2d::new(*top, *bottom, *left, *right, *value).map_err(ctx)?),
                LayerSpec::BatchNorm { eps, momentum } => {
                    let c = shape.first().copied().unwrap_or(0);
                    Layer::BatchNorm(Box::new(BatchNorm::new(c, *eps, *momentum).map_err(ctx)?))
                }
                LayerSpec::Flatten => Layer::Flatten(Flatten::new()),
                LayerSpec::Reshape { shape: to } => {
                    Layer::Reshape(Reshape::new(to.clone()).map_err(ctx)?)
                }
                LayerSpec::Lstm { hidden, sequence } | LayerSpec::Gru { hidden, sequence } => {
                    let cell = if matches!(ls, LayerSpec::Lstm { .. }) {
                        CellKind::Lstm
                    } else {
                        CellKind::Gru
                    };
                    let [_, features] = shape[..] else {
                        return Err(ctx(NnError::Config(format!(
                            "{cell:?} takes [steps, features] inputs, got {shape:?} (add a \
                             reshape layer)"
                        ))));
                    };
                    Layer::Recurrent(Box::new(
                        Recurrent::new(cell, features, *hidden, *sequence, &mut rng)
                            .map_err(ctx)?,
                    ))
                }
                LayerSpec::Relu => Layer::Activation(Activation::new(ActivationKind::Relu)),
                LayerSpec::LeakyRelu { negative_slope } => {
                    if !negative_slope.is_finite() {
                        return Err(ctx(NnError::Config("the slope must be finite".into())));
                    }
                    Layer::Activation(Activation::new(ActivationKind::LeakyRelu(*negative_slope)))
                }
                LayerSpec::Square => Layer::Activation(Activation::new(ActivationKind::Square)),
                LayerSpec::Sigmoid => Layer::Activation(Activation::new(ActivationKind::Sigmoid)),
                LayerSpec::Tanh => Layer::Activation(Activation::new(ActivationKind::Tanh)),
                LayerSpec::Gelu => Layer::Activation(Activation::new(ActivationKind::Gelu)),
                LayerSpec::Softmax => Layer::Softmax(Softmax::new()),
                LayerSpec::Poly {
                    coefficients,
                    trainable,
                } => Layer::Poly(PolyActivation::new(coefficients, *trainable).map_err(ctx)?),
            };
            shape = layer.output_shape(&shape).map_err(ctx)?;
            layers.push(layer);
        }
        Sequential::new(self.input.clone(), layers)
    }

    /// The description of an existing model (current polynomial
    /// coefficients included).
    pub fn from_model(model: &Sequential) -> Result<Self, NnError> {
        let layers = model
            .layers()
            .iter()
            .map(|l| match l {
                Layer::Dense(d) => LayerSpec::Dense { units: d.outputs() },
                Layer::Conv2d(c) => LayerSpec::Conv2d {
                    out_channels: c.dims().0,
                    kernel: Pair::from_tuple((c.dims().2, c.dims().3)),
                    stride: Pair::from_tuple(c.stride),
                    padding: Pair::from_tuple(c.padding),
                },
                Layer::Pool2d(p) => {
                    let kernel = Pair::from_tuple(p.kernel);
                    let stride = Some(Pair::from_tuple(p.stride));
                    match p.kind {
                        PoolKind::Avg => LayerSpec::AvgPool2d { kernel, stride },
                        PoolKind::Max => LayerSpec::MaxPool2d { kernel, stride },
                    }
                }
                Layer::Flatten(_) => LayerSpec::Flatten,
                Layer::Activation(a) => match a.kind {
                    ActivationKind::Relu => LayerSpec::Relu,
                    ActivationKind::Square => LayerSpec::Square,
                    ActivationKind::Sigmoid => LayerSpec::Sigmoid,
                    ActivationKind::Tanh => LayerSpec::Tanh,
                    ActivationKind::Gelu => LayerSpec::Gelu,
                    ActivationKind::LeakyRelu(negative_slope) => {
                        LayerSpec::LeakyRelu { negative_slope }
                    }
                },
                Layer::Poly(p) => LayerSpec::Poly {
                    coefficients: p.coefficients.value.iter().copied().collect(),
                    trainable: p.coefficients.trainable,
                },
                Layer::Softmax(_) => LayerSpec::Softmax,
                Layer::Pad2d(p) => LayerSpec::Pad2d {
                    top: p.top,
                    bottom: p.bottom,
                    left: p.left,
                    right: p.right,
                    value: p.value,
                },
                Layer::Reshape(r) => LayerSpec::Reshape {
                    shape: r.shape.clone(),
                },
                Layer::BatchNorm(b) => LayerSpec::BatchNorm {
                    eps: b.eps,
                    momentum: b.momentum,
                },
                Layer::Recurrent(r) => match r.cell {
                    CellKind::Lstm => LayerSpec::Lstm {
                        hidden: r.hidden(),
                        sequence: r.sequence,
                    },
                    CellKind::Gru => LayerSpec::Gru {
                        hidden: r.hidden(),
                        sequence: r.sequence,
                    },
                },
            })
            .collect();
        Ok(ModelSpec {
            input: model.input_shape().to_vec(),
            layers,
        })
    }

    /// Parses TOML or JSON (chosen by the first non-blank character).
    pub fn parse(text: &str) -> Result<Self, NnError> {
        parse_text(text)
    }

    /// A built-in architecture for inputs of `input` shape and `classes`
    /// classes:
    /// * `logreg`: logistic regression (one logit for two classes,
    ///   multinomial otherwise);
    /// * `mlp`: one hidden layer of 64 ReLU units; `mlp:W1-W2-…` hidden
    ///   layers of those widths (`mlp:128-128`: SecureML's MNIST network);
    /// * `cnn`: for 28×28 images the DP-SGD reference CNN of TensorFlow
    ///   Privacy's MNIST tutorial (conv 16@8×8/2 → max-pool 2/1 → conv
    ///   32@4×4/2 → max-pool 2/1 → dense 32 → dense 10), for 8×8 images a
    ///   small conv 16@3×3 → avg-pool 2 → dense 32 network. With `dp` the
    ///   activations are tanh, which trains better under clipping and noise
    ///   (Papernot et al. 2021, "Tempered sigmoid activations"); otherwise
    ///   ReLU;
    /// * `tenseal-cnn`: the TenSEAL encrypted-MNIST tutorial network (conv
    ///   4@7×7/3 → x² → dense 64 → x² → dense 10), HE-friendly.
    pub fn preset(name: &str, input: &[usize], classes: usize, dp: bool) -> Result<Self, NnError> {
        use LayerSpec as L;
        let act = if dp { L::Tanh } else { L::Relu };
        let flat = input.len() > 1;
        let mut layers = Vec::new();
        match name {
            "logreg" => {
                if flat {
                    layers.push(L::Flatten);
                }
                layers.push(L::Dense {
                    units: if classes == 2 { 1 } else { classes },
                });
            }
            "mlp" => {
                if flat {
                    layers.push(L::Flatten);
                }
                layers.extend([L::Dense { units: 64 }, act, L::Dense { units: classes }]);
            }
            mlp if mlp.starts_with("mlp:") => {
                // mlp:W1-W2-…: hidden layers of those widths.
                let widths = mlp
                    .strip_prefix("mlp:")
                    .unwrap_or_default()
                    .split('-')
                    .map(|w| w.trim().parse::<usize>().ok().filter(|&w| w > 0))
                    .collect::<Option<Vec<usize>>>()
                    .filter(|w| !w.is_empty() && w.len() <= 64)
                    .ok_or_else(|| {
                        NnError::Config(format!(
                            "'{mlp}': give the hidden widths as mlp:W1-W2-… (e.g. mlp:128-128)"
                        ))
                    })?;
                if flat {
                    layers.push(L::Flatten);
                }
                for units in widths {
                    layers.extend([L::Dense { units }, act.clone()]);
                }
                layers.push(L::Dense { units: classes });
            }
            "cnn" => match input {
                [_, h, w] if *h >= 28 && *w >= 28 => layers.extend([
                    L::Conv2d {
                        out_channels: 16,
                        kernel: Pair::One(8),
                        stride: Pair::One(2),
                        padding: Pair::One(3),
                    },
                    act.clone(),
                    L::MaxPool2d {
                        kernel: Pair::One(2),
                        stride: Some(Pair::One(1)),
                    },
                    L::Conv2d {
                        out_channels: 32,
                        kernel: Pair::One(4),
                        stride: Pair::One(2),
                        padding: Pair::One(0),
                    },
                    act.clone(),
                    L::MaxPool2d {
                        kernel: Pair::One(2),
                        stride: Some(Pair::One(1)),
                    },
                    L::Flatten,
                    L::Dense { units: 32 },
                    act,
                    L::Dense { units: classes },
                ]),
                [_, h, w] if *h >= 4 && *w >= 4 => layers.extend([
                    L::Conv2d {
                        out_channels: 16,
                        kernel: Pair::One(3),
                        stride: Pair::One(1),
                        padding: Pair::One(1),
                    },
                    act.clone(),
                    L::AvgPool2d {
                        kernel: Pair::One(2),
                        stride: None,
                    },
                    L::Flatten,
                    L::Dense { units: 32 },
                    act,
                    L::Dense { units: classes },
                ]),
                _ => {
                    return Err(NnError::Config(format!(
                        "the cnn preset needs image inputs, got {input:?}"
                    )))
                }
            },
            "tenseal-cnn" => layers.extend([
                L::Conv2d {
                    out_channels: 4,
                    kernel: Pair::One(7),
                    stride: Pair::One(3),
                    padding: Pair::One(0),
                },
                L::Square,
                L::Flatten,
                L::Dense { units: 64 },
                L::Square,
                L::Dense { units: classes },
            ]),
            other => {
                return Err(NnError::Config(format!(
                    "unknown model preset '{other}' (logreg, mlp, mlp:W1-W2-…, cnn, tenseal-cnn)"
                )))
            }
        }
        Ok(ModelSpec {
            input: input.to_vec(),
            layers,
        })
    }
}

/// A spec file for `cipherflow train`: the layers (the input shape is
/// taken from the data when absent) and optionally the training settings.
///
/// ```toml
/// layers = [{ type = "flatten" }, { type = "dense", units = 10 }]
///
/// [train]
/// epochs = 10
/// batch_size = 64
/// optimizer = "adam"
/// lr = 0.001
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    /// Per-example input shape (default: the data's).
    #[serde(default)]
    pub input: Option<Vec<usize>>,
    /// The layers.
    pub layers: Vec<LayerSpec>,
    /// Training settings (default: the command line's).
    #[serde(default)]
    pub train: Option<crate::train::TrainConfig>,
}

impl SpecFile {
    /// Parses TOML or JSON.
    pub fn parse(text: &str) -> Result<Self, NnError> {
        parse_text(text)
    }
}

/// Parses a serde type from TOML or JSON text.
pub(crate) fn parse_text<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, NnError> {
    if text.len() > (1 << 20) {
        return Err(NnError::Config("spec larger than 1 MiB".into()));
    }
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| NnError::Config(format!("JSON spec: {e}")))
    } else {
        toml::from_str(text).map_err(|e| NnError::Config(format!("TOML spec: {e}")))
    }
}
