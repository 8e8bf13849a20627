//! Optimizers with PyTorch's update rules, and learning-rate schedules.

use crate::layers::Param;
use crate::{NnError, Tensor};
use ndarray::Zip;

/// Stochastic gradient descent (`torch.optim.SGD`): with weight decay `λ`
/// the gradient is `g + λθ`; with momentum `μ` the step follows
/// `v ← μv + g` (the first step sets `v = g`) and `θ ← θ − lr·v`.
#[derive(Clone, Debug)]
pub struct Sgd {
    /// Momentum μ (0 for none).
    pub momentum: f32,
    /// L2 weight decay λ.
    pub weight_decay: f32,
    velocity: Vec<Option<Tensor>>,
}

/// Adam (`torch.optim.Adam`, L2 weight decay added to the gradient).
#[derive(Clone, Debug)]
pub struct Adam {
    /// β₁.
    pub beta1: f32,
    /// β₂.
    pub beta2: f32,
    /// ε in the denominator.
    pub eps: f32,
    /// L2 weight decay.
    pub weight_decay: f32,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    t: i32,
}

/// An optimizer: the update rule and its current learning rate.
#[derive(Clone, Debug)]
pub struct Optimizer {
    /// The learning rate of the next step.
    pub lr: f32,
    rule: Rule,
}

#[derive(Clone, Debug)]
enum Rule {
    Sgd(Sgd),
    Adam(Adam),
}

impl Optimizer {
    /// SGD with momentum and weight decay.
    pub fn sgd(lr: f32, momentum: f32, weight_decay: f32) -> Result<Self, NnError> {
        check("learning rate", lr, 0.0, f32::MAX)?;
        check("momentum", momentum, 0.0, 1.0)?;
        check("weight decay", weight_decay, 0.0, f32::MAX)?;
        Ok(Optimizer {
            lr,
            rule: Rule::Sgd(Sgd {
                momentum,
                weight_decay,
                velocity: Vec::new(),
            }),
        })
    }

    /// Adam with PyTorch's defaults for β₁ = 0.9, β₂ = 0.999, ε = 1e-8.
    pub fn adam(lr: f32, weight_decay: f32) -> Result<Self, NnError> {
        check("learning rate", lr, 0.0, f32::MAX)?;
        check("weight decay", weight_decay, 0.0, f32::MAX)?;
        Ok(Optimizer {
            lr,
            rule: Rule::Adam(Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay,
                m: Vec::new(),
                v: Vec::new(),
                t: 0,
            }),
        })
    }

    /// Applies one update to `params` from their gradients. The parameter
    /// list must be the same (same order and shapes) at every call.
    pub fn step(&mut self, params: Vec<&mut Param>) -> Result<(), NnError> {
        if params.iter().any(|p| p.grad.iter().any(|g| !g.is_finite())) {
            return Err(NnError::NonFinite("gradient".into()));
        }
        let lr = self.lr;
        match &mut self.rule {
            Rule::Sgd(s) => {
                if s.velocity.len() != params.len() {
                    s.velocity = vec![None; params.len()];
                }
                for (p, v) in params.into_iter().zip(&mut s.velocity) {
                    if !p.trainable {
                        continue;
                    }
                    let mut d = p.grad.clone();
                    if s.weight_decay != 0.0 {
                        d.scaled_add(s.weight_decay, &p.value);
                    }
                    if s.momentum != 0.0 {
                        d = match v.take() {
                            Some(mut buf) if buf.shape() == d.shape() => {
                                buf *= s.momentum;
                                buf += &d;
                                buf
                            }
                            _ => d,
                        };
                        *v = Some(d.clone());
                    }
                    p.value.scaled_add(-lr, &d);
                }
            }
            Rule::Adam(a) => {
                if a.m.len() != params.len()
                    || a.m
                        .iter()
                        .zip(&params)
                        .any(|(m, p)| m.shape() != p.value.shape())
                {
                    a.m = params
                        .iter()
                        .map(|p| Tensor::zeros(p.value.raw_dim()))
                        .collect();
                    a.v = a.m.clone();
                    a.t = 0;
                }
                a.t = a.t.saturating_add(1);
                let bc1 = 1.0 - a.beta1.powi(a.t);
                let bc2 = 1.0 - a.beta2.powi(a.t);
                let (b1, b2, eps, wd) = (a.beta1, a.beta2, a.eps, a.weight_decay);
                for ((p, m), v) in params.into_iter().zip(&mut a.m).zip(&mut a.v) {
                    if !p.trainable {
                        continue;
                    }
                    let Param { value, grad, .. } = p;
                    Zip::from(value)
                        .and(&*grad)
                        .and(m)
                        .and(v)
                        .for_each(|th, &g0, m, v| {
                            let g = g0 + wd * *th;
                            *m = b1 * *m + (1.0 - b1) * g;
                            *v = b2 * *v + (1.0 - b2) * g * g;
                            let mh = *m / bc1;
                            let vh = *v / bc2;
                            *th -= lr * mh / (vh.sqrt() + eps);
                        });
                }
            }
        }
        Ok(())
    }
}

fn check(what: &str, v: f32, lo: f32, hi: f32) -> Result<(), NnError> {
    if !(v.is_finite() && v >= lo && v <= hi) {
        return Err(NnError::Config(format!(
            "{what} must be in [{lo}, {hi}], got {v}"
        )));
    }
    Ok(())
}

/// Learning rate as a function of the epoch (PyTorch's `StepLR` and
/// `CosineAnnealingLR`, stepped once per epoch).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LrSchedule {
    /// The base rate throughout.
    Constant,
    /// Multiply by `gamma` every `step_size` epochs.
    Step {
        /// Epochs between decays.
        step_size: usize,
        /// Decay factor.
        gamma: f32,
    },
    /// Cosine annealing from the base rate to `eta_min` over `t_max` epochs.
    Cosine {
        /// Length of the half cosine, in epochs.
        t_max: usize,
        /// Final rate.
        eta_min: f32,
    },
}

impl LrSchedule {
    /// The rate for `epoch` (0-based) from the base rate.
    pub fn lr(&self, base: f32, epoch: usize) -> f32 {
        match *self {
            LrSchedule::Constant => base,
            LrSchedule::Step { step_size, gamma } => {
                let k = epoch.checked_div(step_size).unwrap_or(0);
                base * gamma.powi(i32::try_from(k).unwrap_or(i32::MAX))
            }
            LrSchedule::Cosine { t_max, eta_min } => {
                if t_max == 0 {
                    return base;
                }
                let t = epoch.min(t_max) as f32 / t_max as f32;
                eta_min + (base - eta_min) * 0.5 * (1.0 + (std::f32::consts::PI * t).cos())
            }
        }
    }
}
