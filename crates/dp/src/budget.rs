//! Privacy budget ledgers: a global budget and per-client budgets, each a
//! total (ε, δ) and the charges made so far. The ledger is plain data
//! (serde) persisted by the caller ([`BudgetLedger::to_json`],
//! [`BudgetLedger::save`], [`BudgetLedger::load`]); every charge is checked
//! against the client's and the global budget atomically, and a request
//! that would exceed either is refused with [`DpError::BudgetExceeded`],
//! which says how much ε remains. Nothing is recorded on refusal.
//!
//! Spent ε of an account = Σ(pure ε charges) + ε of the RDP composition of
//! all Gaussian charges at the account's δ (tight, not additive, for the
//! Gaussian part; basic composition across the two parts).

use crate::error::{check_delta, check_q, check_sigma, check_steps, invalid, DpError};
use crate::rdp::RdpAccountant;
use crate::PrivacyAccountant;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// A total privacy budget.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// Total ε.
    pub epsilon: f64,
    /// δ at which ε is measured.
    pub delta: f64,
}

impl Budget {
    /// A validated budget: ε finite and ≥ 0, δ in (0, 1).
    pub fn new(epsilon: f64, delta: f64) -> Result<Self, DpError> {
        if !(epsilon.is_finite() && epsilon >= 0.0) {
            return Err(DpError::InvalidEpsilon(epsilon));
        }
        check_delta(delta)?;
        Ok(Budget { epsilon, delta })
    }
}

/// One charge against a budget.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Charge {
    /// A mechanism already accounted as (ε, 0)- or (ε, δ ≤ budget δ)-DP;
    /// composed additively.
    Epsilon {
        /// ε of the mechanism.
        epsilon: f64,
    },
    /// `steps` steps of the Poisson-subsampled Gaussian mechanism; composed
    /// with the account's other Gaussian charges by RDP.
    PoissonGaussian {
        /// Sampling rate.
        q: f64,
        /// Noise multiplier.
        sigma: f64,
        /// Number of steps.
        steps: u64,
    },
}

impl Charge {
    fn validate(&self) -> Result<(), DpError> {
        match *self {
            Charge::Epsilon { epsilon } => {
                if epsilon.is_finite() && epsilon >= 0.0 {
                    Ok(())
                } else {
                    Err(DpError::InvalidEpsilon(epsilon))
                }
            }
            Charge::PoissonGaussian { q, sigma, steps } => {
                check_q(q)?;
                check_sigma(sigma)?;
                check_steps(steps).map(|_| ())
            }
        }
    }
}

/// One budget with its history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// The total budget.
    pub budget: Budget,
    /// Every accepted charge, in order.
    pub charges: Vec<Charge>,
    pure_epsilon: f64,
    rdp: RdpAccountant,
}

impl Account {
    /// A fresh account.
    pub fn new(budget: Budget) -> Self {
        Account {
            budget,
            charges: Vec::new(),
            pure_epsilon: 0.0,
            rdp: RdpAccountant::new(),
        }
    }

    /// ε spent so far (at the budget's δ).
    pub fn spent(&self) -> Result<f64, DpError> {
        Ok(self.pure_epsilon + self.rdp.epsilon(self.budget.delta)?)
    }

    /// ε still available (never negative).
    pub fn remaining(&self) -> Result<f64, DpError> {
        Ok((self.budget.epsilon - self.spent()?).max(0.0))
    }

    /// The account after `charge`, without modifying this one.
    fn with(&self, charge: &Charge) -> Result<Account, DpError> {
        let mut next = self.clone();
        match *charge {
            Charge::Epsilon { epsilon } => next.pure_epsilon += epsilon,
            Charge::PoissonGaussian { q, sigma, steps } => {
                next.rdp.record_poisson_gaussian(q, sigma, steps)?
            }
        }
        next.charges.push(charge.clone());
        Ok(next)
    }

    fn validate(&self) -> Result<(), DpError> {
        Budget::new(self.budget.epsilon, self.budget.delta)?;
        if !(self.pure_epsilon.is_finite() && self.pure_epsilon >= 0.0) {
            return Err(invalid(
                "pure_epsilon",
                self.pure_epsilon,
                "must be finite and >= 0",
            ));
        }
        self.rdp.validate()?;
        self.charges.iter().try_for_each(Charge::validate)
    }
}

/// Receipt of an accepted charge.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Receipt {
    /// ε the charge added to the global account.
    pub global_cost: f64,
    /// ε remaining in the global budget afterwards.
    pub global_remaining: f64,
    /// ε remaining in the client's budget afterwards (if a client was named).
    pub client_remaining: Option<f64>,
}

/// A global budget plus per-client budgets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BudgetLedger {
    global: Account,
    /// Budget given to a client the first time it is charged (if any).
    default_client_budget: Option<Budget>,
    clients: BTreeMap<String, Account>,
}

impl BudgetLedger {
    /// A ledger with a global budget and, optionally, a default per-client budget.
    pub fn new(global: Budget, default_client_budget: Option<Budget>) -> Result<Self, DpError> {
        Budget::new(global.epsilon, global.delta)?;
        if let Some(b) = default_client_budget {
            Budget::new(b.epsilon, b.delta)?;
        }
        Ok(BudgetLedger {
            global: Account::new(global),
            default_client_budget,
            clients: BTreeMap::new(),
        })
    }

    /// Sets (or replaces the budget of) a client's account, keeping its history.
    pub fn set_client_budget(&mut self, client: &str, budget: Budget) -> Result<(), DpError> {
        Budget::new(budget.epsilon, budget.delta)?;
        self.clients
            .entry(client.to_string())
            .and_modify(|a| a.budget = budget)
            .or_insert_with(|| Account::new(budget));
        Ok(())
    }

    /// The global account.
    pub fn global(&self) -> &Account {
        &self.global
    }

    /// A client's account, if it has one.
    pub fn client(&self, client: &str) -> Option<&Account> {
        self.clients.get(client)
    }

    fn exceeded(
        scope: String,
        before: &Account,
        after: &Account,
    ) -> Result<Option<DpError>, DpError> {
        let spent_before = before.spent()?;
        let spent_after = after.spent()?;
        // A tiny tolerance for floating-point noise in the composition.
        if spent_after > before.budget.epsilon * (1.0 + 1e-12) {
            return Ok(Some(DpError::BudgetExceeded {
                scope,
                requested: spent_after - spent_before,
                remaining: (before.budget.epsilon - spent_before).max(0.0),
                total: before.budget.epsilon,
                delta: before.budget.delta,
            }));
        }
        Ok(None)
    }

    /// Checks `charge` against the global budget and, when `client` is
    /// given, against that client's budget (created from the default
    /// per-client budget on first use); records it in both only if both
    /// allow it.
    pub fn try_charge(&mut self, client: Option<&str>, charge: Charge) -> Result<Receipt, DpError> {
        charge.validate()?;
        let global_after = self.global.with(&charge)?;
        if let Some(e) = Self::exceeded("global".into(), &self.global, &global_after)? {
            return Err(e);
        }
        let client_after = match client {
            None => None,
            Some(id) => {
                let before = match self.clients.get(id) {
                    Some(a) => a.clone(),
                    None => match self.default_client_budget {
                        Some(b) => Account::new(b),
                        None => {
                            return Err(invalid(
                                "client",
                                id,
                                "has no budget and the ledger has no default client budget",
                            ))
                        }
                    },
                };
                let after = before.with(&charge)?;
                if let Some(e) = Self::exceeded(format!("client `{id}`"), &before, &after)? {
                    return Err(e);
                }
                Some((id.to_string(), after))
            }
        };
        let global_cost = global_after.spent()? - self.global.spent()?;
        self.global = global_after;
        let client_remaining = match client_after {
            Some((id, acc)) => {
                let r = acc.remaining()?;
                self.clients.insert(id, acc);
                Some(r)
            }
            None => None,
        };
        Ok(Receipt {
            global_cost,
            global_remaining: self.global.remaining()?,
            client_remaining,
        })
    }

    /// Serialises the ledger to JSON.
    pub fn to_json(&self) -> Result<String, DpError> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// Parses and validates a ledger from JSON (untrusted input).
    pub fn from_json(s: &str) -> Result<Self, DpError> {
        let ledger: BudgetLedger = serde_json::from_str(s)?;
        ledger.global.validate()?;
        if let Some(b) = ledger.default_client_budget {
            Budget::new(b.epsilon, b.delta)?;
        }
        ledger.clients.values().try_for_each(Account::validate)?;
        Ok(ledger)
    }

    /// Writes the ledger as JSON to `path` (via a temporary file and rename,
    /// so a crash never leaves a half-written ledger).
    pub fn save(&self, path: &Path) -> Result<(), DpError> {
        let json = self.to_json()?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// Reads and validates a ledger from `path`.
    pub fn load(path: &Path) -> Result<Self, DpError> {
        Self::from_json(&std::fs::read_to_string(path)?)
    }
}
