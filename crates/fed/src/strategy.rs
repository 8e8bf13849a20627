//! Server optimizers: FedAvg / FedProx (`w += η·Δ̄`) and the adaptive
//! FedAdam and FedYogi of Reddi et al. (ICLR 2021, "Adaptive Federated
//! Optimization", Algorithm 2): `m = β1·m + (1 − β1)·Δ̄`, `v` updated by
//! Adam's `β2·v + (1 − β2)·Δ̄²` or Yogi's `v − (1 − β2)·Δ̄²·sign(v − Δ̄²)`,
//! `w += η·m/(√v + τ)`. `v` starts at `τ²` as in the paper.

use crate::config::{StrategyConfig, StrategyKind};
use crate::error::{FedError, Result};
use serde::{Deserialize, Serialize};

/// The optimizer with its state (persisted by the coordinator).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerOptimizer {
    cfg: StrategyConfig,
    m: Vec<f32>,
    v: Vec<f32>,
}

impl ServerOptimizer {
    /// A fresh optimizer for `dim` parameters.
    pub fn new(cfg: &StrategyConfig, dim: usize) -> Self {
        let adaptive = matches!(cfg.kind, StrategyKind::FedAdam | StrategyKind::FedYogi);
        let tau2 = (cfg.tau * cfg.tau) as f32;
        Self {
            cfg: cfg.clone(),
            m: if adaptive { vec![0.0; dim] } else { Vec::new() },
            v: if adaptive {
                vec![tau2; dim]
            } else {
                Vec::new()
            },
        }
    }

    /// The proximal μ clients use (FedProx only).
    pub fn prox_mu(&self) -> f64 {
        if self.cfg.kind == StrategyKind::FedProx {
            self.cfg.mu
        } else {
            0.0
        }
    }

    /// Applies the mean update `delta` to `weights`.
    pub fn apply(&mut self, weights: &mut [f32], delta: &[f32]) -> Result<()> {
        if weights.len() != delta.len() {
            return Err(FedError::Protocol("update and model sizes differ".into()));
        }
        if delta.iter().any(|d| !d.is_finite()) {
            return Err(FedError::Protocol("non-finite aggregate".into()));
        }
        let eta = self.cfg.server_lr as f32;
        match self.cfg.kind {
            StrategyKind::FedAvg | StrategyKind::FedProx => {
                for (w, d) in weights.iter_mut().zip(delta) {
                    *w += eta * d;
                }
            }
            StrategyKind::FedAdam | StrategyKind::FedYogi => {
                if self.m.len() != weights.len() || self.v.len() != weights.len() {
                    return Err(FedError::Protocol(
                        "optimizer state has the wrong size".into(),
                    ));
                }
                let (b1, b2, tau) = (
                    self.cfg.beta1 as f32,
                    self.cfg.beta2 as f32,
                    self.cfg.tau as f32,
                );
                let yogi = self.cfg.kind == StrategyKind::FedYogi;
                for (((w, &d), m), v) in weights
                    .iter_mut()
                    .zip(delta)
                    .zip(self.m.iter_mut())
                    .zip(self.v.iter_mut())
                {
                    *m = b1 * *m + (1.0 - b1) * d;
                    let d2 = d * d;
                    *v = if yogi {
                        *v - (1.0 - b2) * d2 * (*v - d2).signum()
                    } else {
                        b2 * *v + (1.0 - b2) * d2
                    };
                    *w += eta * *m / (v.max(0.0).sqrt() + tau);
                }
            }
        }
        Ok(())
    }

    /// JSON state.
    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string(self)?)
    }

    /// From JSON state, checked against the configuration and size.
    pub fn from_json(text: &str, cfg: &StrategyConfig, dim: usize) -> Result<Self> {
        let s: Self = serde_json::from_str(text)?;
        let fresh = Self::new(cfg, dim);
        if s.cfg != *cfg || s.m.len() != fresh.m.len() || s.v.len() != fresh.v.len() {
            return Err(FedError::Protocol(
                "stored optimizer state does not match the configuration".into(),
            ));
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn fedavg_and_adam_steps() {
        let mut cfg = StrategyConfig::default();
        let mut o = ServerOptimizer::new(&cfg, 2);
        let mut w = vec![1.0f32, 2.0];
        o.apply(&mut w, &[0.5, -1.0]).unwrap();
        assert_eq!(w, vec![1.5, 1.0]);
        cfg.kind = StrategyKind::FedAdam;
        cfg.server_lr = 0.1;
        let mut o = ServerOptimizer::new(&cfg, 1);
        let mut w = vec![0.0f32];
        o.apply(&mut w, &[1.0]).unwrap();
        // m = 0.1, v = 0.99·1e-6 + 0.01 → step 0.1·0.1/(0.1000495 + 0.001) ≈ 0.0990
        assert!((w[0] - 0.0990).abs() < 1e-3, "{}", w[0]);
        let back = ServerOptimizer::from_json(&o.to_json().unwrap(), &cfg, 1).unwrap();
        assert_eq!(back, o);
        assert!(ServerOptimizer::from_json(&o.to_json().unwrap(), &cfg, 2).is_err());
        cfg.kind = StrategyKind::FedYogi;
        let mut o = ServerOptimizer::new(&cfg, 1);
        let mut w = vec![0.0f32];
        o.apply(&mut w, &[1.0]).unwrap();
        assert!(w[0] > 0.0);
    }

    #[test]
    fn fedyogi_two_steps_by_hand() {
        // Reddi et al. 2021, Algorithm 2 (FedYogi), no bias correction:
        //   m = β1·m + (1 − β1)·Δ,  v = v − (1 − β2)·Δ²·sign(v − Δ²),
        //   w += η·m/(√v + τ),  v starts at τ².
        // β1 = 0.5, β2 = 0.75, τ = 0.5 (v0 = 0.25), η = 1: every m and v
        // below is exact in f32.
        let cfg = StrategyConfig {
            kind: StrategyKind::FedYogi,
            server_lr: 1.0,
            beta1: 0.5,
            beta2: 0.75,
            tau: 0.5,
            ..StrategyConfig::default()
        };
        let mut o = ServerOptimizer::new(&cfg, 4);
        let mut w = vec![1.0f32, 2.0, -1.0, 0.5];
        let close = |w: &[f32], want: [f64; 4]| {
            assert_eq!(w.len(), want.len());
            for (i, (&got, want)) in w.iter().zip(want).enumerate() {
                assert!(
                    (f64::from(got) - want).abs() < 1e-6,
                    "w[{i}] = {got}, expected {want}"
                );
            }
        };
        // Step 1, Δ = [2, −1, 0.25, 0], Δ² = [4, 1, 0.0625, 0]:
        //   m = [1, −0.5, 0.125, 0]
        //   v0 − Δ² = [−3.75, −0.75, 0.1875, 0.25]: signs [−, −, +, +]
        //   v = [0.25 + 1, 0.25 + 0.25, 0.25 − 0.015625, 0.25]
        //     = [1.25, 0.5, 0.234375, 0.25]   (Adam would give 1.1875, …)
        //   Δw = [1/(√1.25 + 0.5) = (√5 − 1)/2, −0.5/(√0.5 + 0.5) = 1 − √2,
        //         0.125/(√0.234375 + 0.5), 0]
        o.apply(&mut w, &[2.0, -1.0, 0.25, 0.0]).unwrap();
        assert_eq!(o.m, vec![1.0, -0.5, 0.125, 0.0]);
        assert_eq!(o.v, vec![1.25, 0.5, 0.234375, 0.25]);
        let r = 0.234375f64.sqrt() + 0.5;
        let w1 = [
            1.0 + (5f64.sqrt() - 1.0) / 2.0,
            2.0 + 1.0 - 2f64.sqrt(),
            -1.0 + 0.125 / r,
            0.5,
        ];
        close(&w, w1);
        // Step 2, Δ = [1, 1, 0, −0.75], Δ² = [1, 1, 0, 0.5625]:
        //   m = [0.5 + 0.5, −0.25 + 0.5, 0.0625, −0.375] = [1, 0.25, 0.0625, −0.375]
        //   v − Δ² = [0.25, −0.5, 0.234375, −0.3125]: signs [+, −, +, −]
        //   v = [1.25 − 0.25, 0.5 + 0.25, 0.234375, 0.25 + 0.140625]
        //     = [1, 0.75, 0.234375, 0.390625]
        //   Δw = [1/1.5, 0.25/(√0.75 + 0.5), 0.0625/(√0.234375 + 0.5),
        //         −0.375/(0.625 + 0.5) = −1/3]
        o.apply(&mut w, &[1.0, 1.0, 0.0, -0.75]).unwrap();
        assert_eq!(o.m, vec![1.0, 0.25, 0.0625, -0.375]);
        assert_eq!(o.v, vec![1.0, 0.75, 0.234375, 0.390625]);
        close(
            &w,
            [
                w1[0] + 1.0 / 1.5,
                w1[1] + 0.25 / (0.75f64.sqrt() + 0.5),
                w1[2] + 0.0625 / r,
                w1[3] - 1.0 / 3.0,
            ],
        );
    }
}
