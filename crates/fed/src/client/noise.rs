//! The client's side of a privacy schedule ([`crate::dp_schedule`]): each
//! training task carries the noise multiplier `z` of every round opened so
//! far; the client checks the history against what it was told before and
//! against the federation's ε, enforces its own budget over the rounds it
//! actually joined, and records both durably with its upload.

use super::ClientAgent;
use crate::dp_plan::FedEpsilon;
use crate::dp_schedule::{check_history, history_epsilon};
use crate::error::{FedError, Result};
use crate::messages::TrainTask;
use serde::{Deserialize, Serialize};

/// What a client knows of a schedule, per (federation, key epoch).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct NoiseRecord {
    /// The longest history of `z` it was sent.
    pub(super) history: Vec<f64>,
    /// `z` of the rounds it uploaded in.
    pub(super) joined: Vec<f64>,
}

impl ClientAgent {
    /// Checks a task's noise history: `Some(z)` of the round under a
    /// schedule, `None` without one (and then the task must carry none).
    pub(super) fn check_noise(&self, task: &TrainTask) -> Result<Option<f64>> {
        let Some(plan) = self.dp.as_ref().filter(|p| p.schedule.is_some()) else {
            if task.noise_history.is_empty() {
                return Ok(None);
            }
            return Err(FedError::Refused(
                "the round carries a privacy schedule this client's configuration does not have"
                    .into(),
            ));
        };
        let known = self
            .noise
            .get(&self.upload_key())
            .cloned()
            .unwrap_or_default();
        let z = check_history(plan, &known.history, &task.noise_history)?;
        if let Some(budget) = plan.client_epsilon {
            let mut mine = known.joined.clone();
            mine.push(z);
            let k = mine.len() as u64;
            let eps = history_epsilon(&FedEpsilon::default(), plan, &mine, Some(k))?;
            if eps > budget * (1.0 + 1e-9) {
                return Err(FedError::Refused(format!(
                    "privacy schedule: this round would bring this client's ε to {eps:.4}, over its budget of {budget}"
                )));
            }
        }
        Ok(Some(z))
    }

    /// Records a checked history and the round's `z` (saved with the
    /// upload mark).
    pub(super) fn record_noise(&mut self, task: &TrainTask, z: Option<f64>) {
        let Some(z) = z else {
            return;
        };
        let rec = self.noise.entry(self.upload_key()).or_default();
        if task.noise_history.len() > rec.history.len() {
            rec.history = task.noise_history.clone();
        }
        rec.joined.push(z);
    }
}
