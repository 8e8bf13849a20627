//! `cipherflow dp`: differential-privacy accounting from the command line.
//!
//! Stable contract (other tools parse it):
//! * `cipherflow dp epsilon --q Q --sigma S --steps T --delta D --accountant rdp|pld --json`
//!   prints `{"epsilon":…,"accountant":"rdp","order":…}` (`order` for RDP only);
//! * `cipherflow dp sigma --q Q --steps T --delta D --target-epsilon E --accountant rdp|pld --json`
//!   prints `{"sigma":…}`.
//!
//! Invalid arguments (q outside (0, 1], σ ≤ 0, δ outside (0, 1), steps = 0,
//! non-finite numbers) are reported as errors, which `main` prints as
//! `error: …` with exit status 1.

use anyhow::anyhow;
use cipherflow_dp::{calibrate_sigma, epsilon, Accountant};
use clap::{Subcommand, ValueEnum};

/// Accountant choice on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AccountantArg {
    /// Rényi DP (dp-accounting's default orders, tight conversion).
    Rdp,
    /// Privacy loss distributions (pessimistic, discretisation 1e-4).
    Pld,
}

impl From<AccountantArg> for Accountant {
    fn from(a: AccountantArg) -> Accountant {
        match a {
            AccountantArg::Rdp => Accountant::Rdp,
            AccountantArg::Pld => Accountant::Pld,
        }
    }
}

/// Subcommands of `cipherflow dp`.
#[derive(Subcommand)]
pub enum DpCommand {
    /// ε of the Poisson-subsampled Gaussian mechanism after T steps.
    Epsilon {
        /// Poisson sampling rate q in (0, 1] (1 = no subsampling).
        #[arg(long, allow_negative_numbers = true)]
        q: f64,
        /// Noise multiplier σ (noise stddev / L2 sensitivity), > 0.
        #[arg(long, allow_negative_numbers = true)]
        sigma: f64,
        /// Number of steps T ≥ 1.
        #[arg(long)]
        steps: u64,
        /// δ in (0, 1).
        #[arg(long, allow_negative_numbers = true)]
        delta: f64,
        /// Accountant.
        #[arg(long, value_enum, default_value_t = AccountantArg::Rdp)]
        accountant: AccountantArg,
        /// Print one JSON object instead of a sentence.
        #[arg(long)]
        json: bool,
    },
    /// Smallest noise multiplier σ reaching a target ε after T steps.
    Sigma {
        /// Poisson sampling rate q in (0, 1].
        #[arg(long, allow_negative_numbers = true)]
        q: f64,
        /// Number of steps T ≥ 1.
        #[arg(long)]
        steps: u64,
        /// δ in (0, 1).
        #[arg(long, allow_negative_numbers = true)]
        delta: f64,
        /// Target ε > 0.
        #[arg(long, allow_negative_numbers = true)]
        target_epsilon: f64,
        /// Accountant.
        #[arg(long, value_enum, default_value_t = AccountantArg::Rdp)]
        accountant: AccountantArg,
        /// Print one JSON object instead of a sentence.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `cipherflow dp` subcommand.
pub fn run(cmd: DpCommand) -> anyhow::Result<()> {
    println!("{}", render(cmd)?);
    Ok(())
}

/// The text a subcommand prints (one line, without the newline).
fn render(cmd: DpCommand) -> anyhow::Result<String> {
    match cmd {
        DpCommand::Epsilon {
            q,
            sigma,
            steps,
            delta,
            accountant,
            json,
        } => {
            let acc = Accountant::from(accountant);
            let r = epsilon(acc, q, sigma, steps, delta)?;
            if !r.epsilon.is_finite() {
                return Err(anyhow!(
                    "no finite epsilon at delta = {delta}: the mass at infinite privacy loss exceeds delta"
                ));
            }
            if json {
                let v = match r.order {
                    Some(order) => serde_json::json!({
                        "epsilon": r.epsilon,
                        "accountant": acc.name(),
                        "order": order,
                    }),
                    None => serde_json::json!({
                        "epsilon": r.epsilon,
                        "accountant": acc.name(),
                    }),
                };
                Ok(v.to_string())
            } else {
                let how = match r.order {
                    Some(o) => format!("RDP, optimal order {o}"),
                    None => "PLD".to_string(),
                };
                Ok(format!(
                    "epsilon = {:.6} ({how}) for q = {q}, sigma = {sigma}, steps = {steps}, delta = {delta:e}",
                    r.epsilon
                ))
            }
        }
        DpCommand::Sigma {
            q,
            steps,
            delta,
            target_epsilon,
            accountant,
            json,
        } => {
            let acc = Accountant::from(accountant);
            let s = calibrate_sigma(acc, q, steps, delta, target_epsilon)?;
            if json {
                Ok(serde_json::json!({ "sigma": s }).to_string())
            } else {
                Ok(format!(
                    "sigma = {s:.6} gives epsilon <= {target_epsilon} ({}) for q = {q}, steps = {steps}, delta = {delta:e}",
                    acc.name().to_uppercase()
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eps(
        q: f64,
        sigma: f64,
        steps: u64,
        delta: f64,
        accountant: AccountantArg,
    ) -> anyhow::Result<String> {
        render(DpCommand::Epsilon {
            q,
            sigma,
            steps,
            delta,
            accountant,
            json: true,
        })
    }

    #[test]
    fn epsilon_json_contract() {
        let out = eps(256.0 / 60000.0, 1.1, 3516, 1e-5, AccountantArg::Rdp).unwrap();
        assert!(out.starts_with("{\"epsilon\":1.281"), "{out}");
        assert!(
            out.contains(",\"accountant\":\"rdp\",\"order\":"),
            "key order: {out}"
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["order"], 12.0);
        let out = eps(0.01, 1.0, 100, 1e-5, AccountantArg::Pld).unwrap();
        assert!(out.starts_with("{\"epsilon\":0.718"), "{out}");
        assert!(
            out.ends_with(",\"accountant\":\"pld\"}"),
            "no order for PLD: {out}"
        );
    }

    #[test]
    fn sigma_json_contract() {
        let out = render(DpCommand::Sigma {
            q: 0.01,
            steps: 1000,
            delta: 1e-5,
            target_epsilon: 2.0,
            accountant: AccountantArg::Rdp,
            json: true,
        })
        .unwrap();
        assert!(out.starts_with("{\"sigma\":1.02228"), "{out}");
    }

    #[test]
    fn invalid_arguments_are_errors() {
        for (q, s, d) in [
            (0.0, 1.0, 1e-5),
            (1.5, 1.0, 1e-5),
            (0.1, 0.0, 1e-5),
            (0.1, -1.0, 1e-5),
            (0.1, 1.0, 1.0),
            (f64::NAN, 1.0, 0.5),
        ] {
            let e = eps(q, s, 10, d, AccountantArg::Rdp).unwrap_err();
            assert!(e.to_string().starts_with("invalid "), "{e}");
        }
        assert!(eps(0.1, 1.0, 0, 1e-5, AccountantArg::Pld).is_err());
    }

    #[test]
    fn human_output() {
        let out = render(DpCommand::Epsilon {
            q: 0.01,
            sigma: 1.0,
            steps: 1000,
            delta: 1e-5,
            accountant: AccountantArg::Rdp,
            json: false,
        })
        .unwrap();
        assert!(out.starts_with("epsilon = 2.101"), "{out}");
    }
}
