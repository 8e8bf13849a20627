//! The encrypted-plan compiler: a plaintext [`Sequential`] model becomes a
//! list of stages (fused linear maps, squares, polynomials), a level
//! budget, and the smallest 128-bit secure CKKS parameter set that fits.
//!
//! Depth: each linear stage (any run of consecutive dense, conv, average
//! pooling and flatten layers, fused into one matrix) costs one level, x²
//! one level, a polynomial of degree `d` costs `⌈log2(d + 1)⌉`: the map of
//! its interval onto `[−1, 1]` is folded into the preceding linear stage
//! (or polynomial), and costs one more level only after x² or as the first
//! stage. Softmax as the last layer is dropped (it does not change the
//! predicted class; the encrypted output is the logits). ReLU, sigmoid,
//! tanh and GELU are replaced by Chebyshev approximations when
//! [`CompileOptions::approximate`] says how, and refused otherwise; max
//! pooling is refused, with a message saying what to use instead.

use crate::linear::LinearMap;
use crate::poly::{Approx, Interval, Polynomial};
use crate::TensorError;
use cipherflow_ckks::params::max_log_qp_128;
use cipherflow_ckks::{CkksParams, ParamsBuilder};
use cipherflow_nn::layers::ActivationKind;
use cipherflow_nn::{Layer, Sequential};

/// One step of an encrypted plan.
#[derive(Clone, Debug, PartialEq)]
pub enum Stage {
    /// `y = A x + b` (one level).
    Linear(LinearMap),
    /// `x²` element-wise (one level).
    Square,
    /// A polynomial element-wise (`⌈log2(d + 1)⌉` levels, one more when
    /// its interval map is applied on the ciphertext).
    Poly(Polynomial),
}

impl Stage {
    /// Levels the stage consumes.
    pub fn depth(&self) -> usize {
        match self {
            Stage::Linear(_) | Stage::Square => 1,
            Stage::Poly(p) => p.depth(),
        }
    }

    /// Plaintext evaluation on one example.
    pub fn apply(&self, x: &[f64]) -> Result<Vec<f64>, TensorError> {
        match self {
            Stage::Linear(m) => m.apply(x),
            Stage::Square => Ok(x.iter().map(|v| v * v).collect()),
            Stage::Poly(p) => Ok(x.iter().map(|&v| p.eval(v)).collect()),
        }
    }
}

/// Smallest scale the parameter chooser accepts (bits).
pub const MIN_LOG_SCALE: u32 = 25;
/// Largest scale it uses (bits).
pub const MAX_LOG_SCALE: u32 = 40;
/// Bits of the first prime above the scale: room for outputs up to 2^9.
pub const OUTPUT_HEADROOM_BITS: u32 = 10;

/// A compiled plan: stages, shapes, depth and parameters.
#[derive(Clone, Debug)]
pub struct Plan {
    input_shape: Vec<usize>,
    output_len: usize,
    stages: Vec<Stage>,
    params: CkksParams,
}

/// How activations that are not polynomials (ReLU, leaky ReLU, sigmoid,
/// tanh, GELU) are replaced by their Chebyshev interpolants: one degree,
/// and the interval each one's inputs stay in — one for all of them, or
/// one per activation, which keeps a narrow layer's approximation as
/// tight as its own inputs allow instead of the widest layer's.
#[derive(Clone, Debug, PartialEq)]
pub struct Approximate {
    /// The polynomials' degree.
    pub degree: usize,
    /// One interval for every such activation, or one for each in the
    /// model's order (any other count is refused when compiling).
    pub intervals: Vec<Interval>,
}

impl Approximate {
    /// One interval for every activation.
    pub fn shared(degree: usize, interval: impl Into<Interval>) -> Self {
        Self {
            degree,
            intervals: vec![interval.into()],
        }
    }

    /// One interval per activation, in the model's order.
    pub fn per_activation(degree: usize, intervals: Vec<Interval>) -> Self {
        Self { degree, intervals }
    }

    /// The interval of the `ordinal`-th of `count` approximated
    /// activations.
    fn interval(&self, ordinal: usize, count: usize) -> Result<Interval, TensorError> {
        match self.intervals.as_slice() {
            [one] => Ok(*one),
            all if all.len() == count => all.get(ordinal).copied().ok_or_else(|| {
                TensorError::Invalid(format!("no interval for activation {ordinal}"))
            }),
            all => Err(TensorError::Invalid(format!(
                "{} approximation intervals for a model with {count} activations to \
                 approximate (give one for all, or one for each)",
                all.len()
            ))),
        }
    }
}

/// The activations of `model` that [`Approximate`] replaces, in order.
fn approximated(model: &Sequential) -> usize {
    model
        .layers()
        .iter()
        .filter(|l| matches!(l, Layer::Activation(a) if Approx::of(a.kind).is_some()))
        .count()
}

/// How the compiler treats activations that are not polynomials.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CompileOptions {
    /// Replace ReLU, sigmoid, tanh and GELU by their Chebyshev
    /// interpolants (inputs must stay inside the intervals); `None`
    /// refuses them.
    pub approximate: Option<Approximate>,
    /// Parameters that leave room to flood the outputs for circuit
    /// privacy ([`crate::privacy`]): a scale of 2^60 at every level and
    /// one spare prime so that the output is decrypted over two primes,
    /// at the price of a larger ring ([`choose_bits_for_flooding`]).
    pub for_circuit_privacy: bool,
    /// Parameters whose output level keeps two 60-bit primes, room for
    /// the mask of a hand-off to secret sharing (`crate::handoff`;
    /// [`choose_bits_for_handoff`]).
    pub for_handoff: bool,
}

/// `α · m + β` (affine map of the outputs).
fn affine_after(m: &LinearMap, alpha: f64, beta: f64) -> Result<LinearMap, TensorError> {
    let a: Vec<f64> = (0..m.rows())
        .flat_map(|i| m.row(i).iter().map(move |v| v * alpha))
        .collect();
    let b: Vec<f64> = m.bias().iter().map(|v| alpha * v + beta).collect();
    LinearMap::new(m.rows(), m.cols(), a, b)
}

/// Folds each polynomial's map `x → u` into the stage before it when that
/// is a linear map or a polynomial (free there); after x² or first, it
/// stays on the ciphertext (one level).
fn fold_interval_maps(stages: &mut [Stage]) -> Result<(), TensorError> {
    for i in 1..stages.len() {
        let (before, after) = stages.split_at_mut(i);
        let (Some(prev), Some(Stage::Poly(p))) = (before.last_mut(), after.first_mut()) else {
            continue;
        };
        if !p.maps_input() {
            continue;
        }
        let (alpha, beta) = p.interval().to_unit();
        match prev {
            Stage::Linear(m) => *m = affine_after(m, alpha, beta)?,
            Stage::Poly(q) => *q = q.then_affine(alpha, beta)?,
            Stage::Square => continue,
        }
        *p = p.on_unit_interval();
    }
    Ok(())
}

/// Stages of a model (linear layers fused, interval maps folded).
pub fn stages(model: &Sequential, opts: &CompileOptions) -> Result<Vec<Stage>, TensorError> {
    // BatchNorm after a dense or conv layer is folded into it exactly.
    let folded = model.folded()?;
    let model = &folded;
    let mut shape = model.input_shape().to_vec();
    let mut out: Vec<Stage> = Vec::new();
    let count = model.layers().len();
    let count_approximated = approximated(model);
    let mut ordinal = 0;
    let push_linear = |out: &mut Vec<Stage>, m: LinearMap| -> Result<(), TensorError> {
        if let Some(Stage::Linear(prev)) = out.last() {
            let fused = m.compose(prev)?;
            out.pop();
            out.push(Stage::Linear(fused));
        } else {
            out.push(Stage::Linear(m));
        }
        Ok(())
    };
    for (i, layer) in model.layers().iter().enumerate() {
        let next = layer.output_shape(&shape)?;
        let ctx = |what: &str| format!("layer {i} ({}): {what}", layer.describe());
        match layer {
            Layer::Dense(d) => push_linear(&mut out, LinearMap::from_dense(d)?)?,
            Layer::Conv2d(c) => push_linear(&mut out, LinearMap::from_conv(c, &shape)?)?,
            Layer::Pool2d(p) => push_linear(
                &mut out,
                LinearMap::from_pool(p, &shape).map_err(|e| match e {
                    TensorError::Unsupported(m) => TensorError::Unsupported(ctx(&m)),
                    other => other,
                })?,
            )?,
            // The encrypted vector is the flattened example either way.
            Layer::Flatten(_) | Layer::Reshape(_) => {}
            Layer::Pad2d(p) => push_linear(&mut out, LinearMap::from_pad(p, &shape)?)?,
            // At inference an affine map per channel: fused with the
            // linear layer before it.
            Layer::BatchNorm(b) => push_linear(&mut out, LinearMap::from_batch_norm(b, &shape)?)?,
            Layer::Recurrent(_) => {
                return Err(TensorError::Unsupported(ctx(
                    "recurrent layers are trained and run in plaintext (cipherflow-nn); \
                     encrypted inference of LSTM/GRU is not supported",
                )))
            }
            Layer::Activation(a) => match a.kind {
                ActivationKind::Square => out.push(Stage::Square),
                k => {
                    let (Some(f), Some(approx)) = (Approx::of(k), &opts.approximate) else {
                        return Err(TensorError::Unsupported(ctx(&format!(
                            "{k:?} is not a polynomial; approximate it (cipherflow infer \
                             --approximate; CompileOptions::approximate in the library: a \
                             Chebyshev approximation on an interval), or retrain with x² (type = \
                             \"square\") or a polynomial activation (type = \"poly\")"
                        ))));
                    };
                    let interval = approx.interval(ordinal, count_approximated)?;
                    ordinal += 1;
                    let (p, _) = Polynomial::approximate(f, interval, approx.degree)?;
                    out.push(Stage::Poly(p));
                }
            },
            Layer::Poly(p) => {
                let c: Vec<f64> = p.coefficients.value.iter().map(|&v| f64::from(v)).collect();
                out.push(Stage::Poly(Polynomial::new(&c)?));
            }
            Layer::Softmax(_) => {
                if i + 1 != count {
                    return Err(TensorError::Unsupported(ctx(
                        "softmax is only allowed as the last layer (it is dropped: the \
                         encrypted output is the logits)",
                    )));
                }
            }
        }
        shape = next;
    }
    if out.is_empty() {
        return Err(TensorError::Invalid("the model has no layer to run".into()));
    }
    fold_interval_maps(&mut out)?;
    Ok(out)
}

/// The bit sizes `(log_n, q_bits, p_bits)` of the smallest 128-bit secure
/// parameter set with `depth` levels: one special prime (one prime per
/// key-switching digit), a first prime of `scale + 10` bits, and the largest
/// scale up to 2^40 that fits; the ring grows when the scale would drop
/// below 2^25.
pub fn choose_bits(depth: usize) -> Result<(u32, Vec<u32>, Vec<u32>), TensorError> {
    let d = u32::try_from(depth).map_err(|_| TensorError::DoesNotFit("depth overflow".into()))?;
    for log_n in 13..=16u32 {
        let Some(budget) = max_log_qp_128(log_n) else {
            continue;
        };
        // 2·(s + h) + d·s ≤ budget − 1 (one bit of margin for prime sizes)
        let avail = budget.saturating_sub(1 + 2 * OUTPUT_HEADROOM_BITS);
        let s = (avail / (d + 2)).min(MAX_LOG_SCALE);
        if s >= MIN_LOG_SCALE && d <= 60 {
            let q0 = s + OUTPUT_HEADROOM_BITS;
            let mut q = vec![q0];
            q.extend(std::iter::repeat_n(s, depth));
            return Ok((log_n, q, vec![q0]));
        }
    }
    Err(TensorError::DoesNotFit(format!(
        "depth {depth} needs more than the 1772 bits of modulus N = 2^16 allows at 128-bit \
         security with a scale of at least 2^{MIN_LOG_SCALE}; use fewer or lower-degree \
         activations, or fuse linear layers"
    )))
}

/// Scale (bits) of [`choose_bits_for_flooding`].
pub const FLOODING_LOG_SCALE: u32 = 60;

/// The bit sizes `(log_n, q_bits, p_bits)` of the smallest 128-bit secure
/// parameter set with `depth` levels at a scale of 2^60 and a spare level:
/// `q0` of 61 bits, a 60-bit prime the output keeps (the decoder reads
/// `q0·q1`, room for the values and the flooding's tail), `depth` primes
/// of 60 bits, one special prime of 61 bits. The proven rounding floor of
/// a rescale (about 2^22) then sits 38 bits below the scale instead of 18.
pub fn choose_bits_for_flooding(depth: usize) -> Result<(u32, Vec<u32>, Vec<u32>), TensorError> {
    let d = u32::try_from(depth).map_err(|_| TensorError::DoesNotFit("depth overflow".into()))?;
    let s = FLOODING_LOG_SCALE;
    let total = 61 + s + d.saturating_mul(s) + 61;
    for log_n in 13..=16u32 {
        if max_log_qp_128(log_n).is_some_and(|budget| total < budget) {
            let mut q = vec![61, s];
            q.extend(std::iter::repeat_n(s, depth));
            return Ok((log_n, q, vec![61]));
        }
    }
    Err(TensorError::DoesNotFit(format!(
        "depth {depth} at a scale of 2^{s} with a spare level needs {total} bits of modulus, more \
         than N = 2^16 allows at 128-bit security"
    )))
}

/// The bit sizes `(log_n, q_bits, p_bits)` of the smallest 128-bit secure
/// parameter set with `depth` levels above an output level of two 60-bit
/// primes (`q0·q1 ≈ 2^120`: a hand-off mask of 2^(κ + log2 N + 2) times
/// the output's coefficients, κ = 40, fits for values up to about 2^20 at
/// a 2^40 scale), the scale the largest up to 2^40 that fits, one special
/// prime of 60 bits.
pub fn choose_bits_for_handoff(depth: usize) -> Result<(u32, Vec<u32>, Vec<u32>), TensorError> {
    let d = u32::try_from(depth).map_err(|_| TensorError::DoesNotFit("depth overflow".into()))?;
    for log_n in 13..=16u32 {
        let Some(budget) = max_log_qp_128(log_n) else {
            continue;
        };
        let avail = budget.saturating_sub(1 + 3 * 60);
        let s = avail
            .checked_div(d)
            .unwrap_or(MAX_LOG_SCALE)
            .min(MAX_LOG_SCALE);
        if s >= MIN_LOG_SCALE && d <= 60 {
            let mut q = vec![60, 60];
            q.extend(std::iter::repeat_n(s, depth));
            return Ok((log_n, q, vec![60]));
        }
    }
    Err(TensorError::DoesNotFit(format!(
        "a head of depth {depth} with a hand-off level of two 60-bit primes needs more modulus          than N = 2^16 allows at 128-bit security with a scale of at least 2^{MIN_LOG_SCALE}"
    )))
}

impl Plan {
    /// Compiles `model` with automatically chosen parameters.
    pub fn compile(model: &Sequential) -> Result<Self, TensorError> {
        Self::compile_with(model, &CompileOptions::default())
    }

    /// [`Plan::compile`] with options (approximations of activations).
    pub fn compile_with(model: &Sequential, opts: &CompileOptions) -> Result<Self, TensorError> {
        let st = stages(model, opts)?;
        let depth: usize = st.iter().map(Stage::depth).sum();
        let (log_n, q, p) = if opts.for_circuit_privacy {
            choose_bits_for_flooding(depth)?
        } else if opts.for_handoff {
            choose_bits_for_handoff(depth)?
        } else {
            choose_bits(depth)?
        };
        let params = ParamsBuilder::new(log_n)
            .q_bits(&q)
            .p_bits(&p)
            // The scale is the primes the levels drop (q[1] otherwise,
            // the primes above the two kept for a hand-off).
            .log_scale(
                q.get(if opts.for_handoff && !opts.for_circuit_privacy {
                    2
                } else {
                    1
                })
                .copied()
                .unwrap_or(MAX_LOG_SCALE),
            )
            .build()?;
        Self::from_stages(model, st, params)
    }

    /// Compiles `model` for given parameters (refused when too shallow).
    pub fn with_params(model: &Sequential, params: CkksParams) -> Result<Self, TensorError> {
        Self::from_stages(model, stages(model, &CompileOptions::default())?, params)
    }

    fn from_stages(
        model: &Sequential,
        st: Vec<Stage>,
        params: CkksParams,
    ) -> Result<Self, TensorError> {
        let depth: usize = st.iter().map(Stage::depth).sum();
        if depth > params.max_level() {
            return Err(TensorError::DoesNotFit(format!(
                "the model needs {depth} levels, the parameters have {}",
                params.max_level()
            )));
        }
        if params.alpha() == 0 {
            return Err(TensorError::Invalid(
                "parameters without key switching".into(),
            ));
        }
        Ok(Self {
            input_shape: model.input_shape().to_vec(),
            output_len: model.output_shape().iter().product(),
            stages: st,
            params,
        })
    }

    /// The stages.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// Levels consumed.
    pub fn depth(&self) -> usize {
        self.stages.iter().map(Stage::depth).sum()
    }

    /// The parameter set.
    pub fn params(&self) -> &CkksParams {
        &self.params
    }

    /// Per-example input shape.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// Number of outputs (logits).
    pub fn output_len(&self) -> usize {
        self.output_len
    }

    /// Plaintext evaluation of the compiled stages (reference for tests).
    pub fn eval_plain(&self, x: &[f64]) -> Result<Vec<f64>, TensorError> {
        let mut h = x.to_vec();
        for s in &self.stages {
            h = s.apply(&h)?;
        }
        Ok(h)
    }

    /// A one-line description.
    pub fn summary(&self) -> String {
        let st: Vec<String> = self
            .stages
            .iter()
            .map(|s| match s {
                Stage::Linear(m) => format!("linear {}→{}", m.cols(), m.rows()),
                Stage::Square => "x²".into(),
                Stage::Poly(p) => format!(
                    "poly deg {} ({} ct×ct{})",
                    p.degree(),
                    p.products(),
                    if p.maps_input() {
                        ", +1 level for x→u"
                    } else {
                        ""
                    }
                ),
            })
            .collect();
        format!(
            "{} | depth {} | {}",
            st.join(" → "),
            self.depth(),
            self.params
        )
    }
}
