//! Times `cipherflow_dp::epsilon` on reference rows (CSV with columns
//! q,sigma,steps,delta[,rdp_eps,pld_eps,...]; `#` lines are comments) and
//! prints one JSON line per row and accountant:
//! `{"lib":"cipherflow","accountant":"pld","q":…,"sigma":…,"steps":…,"delta":…,
//!   "epsilon":…,"median_s":…,"reps":…}`.
//!
//! Usage: `cargo run --release -p cipherflow-dp --example dp_bench -- FILE [REPS]`

use cipherflow_dp::{epsilon, Accountant};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: dp_bench FILE.csv [REPS]");
        std::process::exit(2);
    };
    let reps: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(3).max(1);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot read {path}: {e}");
            std::process::exit(2);
        }
    };
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('q') {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 4 {
            continue;
        }
        let (Ok(mut q), Ok(sigma), Ok(steps), Ok(delta)) = (
            f[0].parse::<f64>(),
            f[1].parse::<f64>(),
            f[2].parse::<u64>(),
            f[3].parse::<f64>(),
        ) else {
            continue;
        };
        // The reference file prints 256/60000 rounded.
        if f[0] == "0.00426667" {
            q = 256.0 / 60000.0;
        }
        for acc in [Accountant::Rdp, Accountant::Pld] {
            let mut times = Vec::with_capacity(reps);
            let mut eps = f64::NAN;
            for _ in 0..reps {
                let t0 = Instant::now();
                match epsilon(acc, q, sigma, steps, delta) {
                    Ok(r) => eps = r.epsilon,
                    Err(e) => {
                        eprintln!("error for {line}: {e}");
                        break;
                    }
                }
                times.push(t0.elapsed().as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            let median = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
            println!(
                "{{\"lib\":\"cipherflow\",\"accountant\":\"{}\",\"q\":{},\"sigma\":{},\"steps\":{},\"delta\":{},\"epsilon\":{},\"median_s\":{},\"reps\":{}}}",
                acc.name(), q, sigma, steps, delta, eps, median, times.len()
            );
        }
    }
}
