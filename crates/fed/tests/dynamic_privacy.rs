//! Dynamic privacy (`[dp.schedule]`): the noise follows a schedule and
//! adapts to a plateau of the evaluation accuracy, the total ε is never
//! exceeded, the ledger records every round's noise and the audit
//! recomputes ε over rounds of different noise; a coordinator that lowers
//! the noise, rewrites the history, or overspends is refused by the
//! clients.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cipherflow_fed::dp_schedule::{history_epsilon, min_noise_multiplier};
use cipherflow_fed::messages::{self, Task};
use cipherflow_fed::sim::{simulate, split_among, SimOptions, SimReport};
use cipherflow_fed::{Action, FedEpsilon, FedError, FederationConfig};
use cipherflow_ledger::entry::{DpSettings, EntryBody};
use cipherflow_ledger::{verify_log, EpsilonRecompute, Ledger, VerifyOptions};
use common::harness::{signer, Fed};
use std::path::Path;

const SCHEDULE: &str = "[dp]\nepsilon = 3.0\n[dp.schedule]\nratio = 0.5\nphases = 3\n";

/// A simulated breast-cancer federation of `clients` (with the
/// coordinator's evaluation split when `eval`).
fn simulate_in(
    cfg: FederationConfig,
    clients: usize,
    eval: bool,
    dir: &Path,
) -> cipherflow_fed::Result<SimReport> {
    let (train, test) = common::breast_cancer();
    simulate(SimOptions {
        config: cfg,
        client_data: split_among(&train, clients, Some(0.5), 1).unwrap(),
        eval: eval.then_some(test),
        dropout: 0.0,
        dir: dir.to_path_buf(),
        state: None,
        synthetic: false,
        on_round: None,
        dropout_plan: None,
        regions: 0,
    })
}

fn run(cfg: FederationConfig, dir: &Path) -> SimReport {
    simulate_in(cfg, 10, true, dir).unwrap()
}

/// Every opened round's DP settings, from the ledger.
fn opened(ledger: &Path) -> Vec<DpSettings> {
    let log = Ledger::open_read_only(ledger).unwrap();
    (0..log.len())
        .filter_map(|i| match log.entry(i).unwrap().body {
            EntryBody::RoundOpened(o) => Some(o.dp),
            _ => None,
        })
        .collect()
}

#[test]
fn a_geometric_schedule_spends_the_budget_with_less_noise_late() {
    let dir = tempfile::tempdir().unwrap();
    let report = run(common::config("bc-dyn", 6, SCHEDULE), dir.path());
    assert_eq!(report.rounds, 6, "{}", report.finished);
    assert_eq!(report.ledger, "verified", "ε recomputed round by round");
    let eps = report.epsilon.unwrap();
    assert!(
        eps <= 3.0 && eps > 2.99,
        "the budget is spent, not exceeded: {eps}"
    );
    eprintln!("scheduled: accuracy {:?}", report.final_accuracy);
    // Three phases of two rounds, the noise halving from first to last.
    let zs: Vec<f64> = opened(&dir.path().join("ledger.db"))
        .iter()
        .map(|d| d.noise_multiplier)
        .collect();
    assert_eq!(zs.len(), 6);
    assert!(zs[0] == zs[1] && zs[2] == zs[3] && zs[4] == zs[5], "{zs:?}");
    assert!(zs[0] > zs[2] && zs[2] > zs[4], "{zs:?}");
    assert!((zs[4] / zs[0] - 0.5).abs() < 1e-9, "{zs:?}");
    // The fixed plan's σ lies between the first and last phase's.
    let fixed = cipherflow_fed::DpPlan::new(
        common::config("bc-dyn", 6, "[dp]\nepsilon = 3.0\n")
            .dp
            .as_ref()
            .unwrap(),
        &common::config("bc-dyn", 6, "").sizes(10).unwrap(),
        6,
        31,
    )
    .unwrap();
    assert!(zs[4] < fixed.noise_multiplier && fixed.noise_multiplier < zs[0]);
}

#[test]
fn a_plateau_spends_the_rest_over_fewer_less_noisy_rounds() {
    // No round gains half a point of accuracy: a plateau after the second
    // round halves the remaining rounds.
    let cfg = common::config(
        "bc-plateau",
        8,
        "[dp]\nepsilon = 3.0\n[dp.schedule]\nratio = 1.0\nphases = 1\n\
         [dp.schedule.plateau]\npatience = 1\nmin_improvement = 0.5\nkeep_fraction = 0.5\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let report = run(cfg, dir.path());
    assert!(report.rounds < 8, "{} rounds", report.rounds);
    assert!(
        report.finished.contains("privacy schedule spent"),
        "{}",
        report.finished
    );
    assert_eq!(report.ledger, "verified");
    let eps = report.epsilon.unwrap();
    assert!(eps <= 3.0 && eps > 2.99, "{eps}");
    let zs: Vec<f64> = opened(&dir.path().join("ledger.db"))
        .iter()
        .map(|d| d.noise_multiplier)
        .collect();
    assert_eq!(zs.len(), report.rounds);
    assert!(
        zs[0] == zs[1] && zs[2] < zs[1],
        "less noise after the plateau: {zs:?}"
    );
    // Without evaluation data there is nothing to react to: refused.
    let e = simulate_in(
        common::config(
            "bc-plateau-blind",
            4,
            "[dp]\nepsilon = 3.0\n[dp.schedule]\n[dp.schedule.plateau]\n",
        ),
        4,
        false,
        &dir.path().join("blind"),
    )
    .unwrap_err();
    assert!(
        matches!(&e, FedError::Config(m) if m.contains("evaluation data")),
        "{e}"
    );
}

fn train_task(t: &Task) -> messages::TrainTask {
    match t {
        Task::Train(x) => x.clone(),
        other => panic!("expected a training task, got {other:?}"),
    }
}

fn refused(fed: &mut Fed, i: usize, t: messages::TrainTask, needle: &str) {
    match fed.clients[i].handle(&Task::Train(t)) {
        Err(FedError::Refused(m)) => assert!(m.contains(needle), "{m:?} lacks {needle:?}"),
        Err(e) => panic!("expected a refusal with {needle:?}, got {e}"),
        Ok(_) => panic!("expected a refusal with {needle:?}, but the client acted"),
    }
}

#[test]
fn clients_refuse_less_noise_a_rewritten_history_or_an_overspent_budget() {
    let cfg = common::config(
        "adv-dyn",
        6,
        &format!("threshold = 2\nquorum = 3\n{SCHEDULE}"),
    );
    let mut fed = Fed::with_config(cfg, 3);
    fed.open_round();
    let honest = train_task(&fed.task(0));
    let plan = fed.coord.dp_plan().unwrap().clone();
    assert_eq!(honest.noise_history.len(), 1);
    let z1 = honest.noise_history[0];

    // A quarter of the planned noise: this round alone would exceed ε.
    let mut t = honest.clone();
    t.noise_history = vec![z1 / 4.0];
    refused(&mut fed, 0, t, "exceeds the federation's ε");
    // Below the smallest share σ (4), or above what the packing holds.
    let lo = min_noise_multiplier(&plan);
    let floor = 4.0 * (plan.min_survivors as f64).sqrt() / plan.l2_bound;
    assert!((lo - floor).abs() < 1e-12 * floor);
    let hi = plan.max_noise_multiplier;
    for z in [floor * 0.99, hi * 1.01, f64::NAN, f64::INFINITY] {
        let mut t = honest.clone();
        t.noise_history = vec![z];
        refused(&mut fed, 0, t, "outside the planned range");
    }
    // Just inside the range the other checks decide.
    let mut t = honest.clone();
    t.noise_history = vec![floor * 1.01];
    refused(&mut fed, 0, t, "exceeds the federation's ε");
    // The first phase is the noisiest (ratio < 1): the honest round sits
    // on the upper edge of the range, which is inclusive.
    assert_eq!(z1, hi);
    // Within the range, but a history that would exceed ε: every one of
    // the six rounds at the least noise the range allows.
    let over = vec![lo * 1.01; 6];
    assert!(history_epsilon(&FedEpsilon::default(), &plan, &over, None).unwrap() > 3.0);
    let mut t = honest.clone();
    t.round += 5;
    t.noise_history = over;
    refused(&mut fed, 0, t, "exceeds the federation's ε");
    // No history at all.
    let mut t = honest.clone();
    t.noise_history.clear();
    refused(&mut fed, 0, t, "no noise history");
    // Noise that does not match the round's z: the quantizer check.
    let mut t = honest.clone();
    t.noise_history = vec![z1 * 0.99];
    match fed.clients[0].handle(&Task::Train(t)) {
        Err(FedError::Refused(m)) => assert!(m.contains("quantization or noise"), "{m}"),
        other => panic!("{other:?}"),
    }

    // The honest round: everyone uploads, the round closes.
    for i in 0..3 {
        assert!(fed.step(i));
    }
    fed.run_decryption(10);
    assert_eq!(fed.coord.history().len(), 1);
    fed.open_round();
    let second = train_task(&fed.task(1));
    assert_eq!(second.noise_history.len(), 2);
    assert_eq!(second.noise_history[0], z1);
    // Rewriting round 1 (claiming it was noisier, to make room) is seen by
    // a client that took part in it, also after a restart.
    let mut t = second.clone();
    t.noise_history[0] = z1 * 1.5;
    refused(&mut fed, 1, t.clone(), "this client was told");
    fed.restart_client(1);
    refused(&mut fed, 1, t, "this client was told");
    // The honest second round is accepted.
    assert!(matches!(
        fed.clients[1].handle(&Task::Train(second)).unwrap(),
        Action::Upload(_)
    ));
}

#[test]
fn a_client_without_a_schedule_refuses_a_scheduled_round() {
    let mut fed = Fed::new("adv-no-schedule", 3, 2, 3);
    fed.open_round();
    let mut t = train_task(&fed.task(0));
    t.noise_history = vec![1.0];
    refused(&mut fed, 0, t, "does not have");
}

/// The audit recomputes ε over rounds of different noise: an honest
/// scheduled log verifies, one that under-reports ε after a change of
/// noise does not, and a single-setting accountant refuses the change.
#[test]
fn the_audit_recomputes_epsilon_over_rounds_of_different_noise() {
    let cfg = common::config("audit-dyn", 6, SCHEDULE);
    let plan =
        cipherflow_fed::DpPlan::new(cfg.dp.as_ref().unwrap(), &cfg.sizes(10).unwrap(), 6, 31)
            .unwrap();
    let zs = [1.4, 1.4, 1.0, 1.0, 0.7];
    let acct = FedEpsilon::default();
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &Path, cheat: bool| {
        let mut log = Ledger::create(path, "audit-dyn", signer()).unwrap();
        for (i, &z) in zs.iter().enumerate() {
            let round = i as u64 + 1;
            let dp = plan.ledger_settings_at(round, z);
            log.append(
                round,
                EntryBody::RoundOpened(cipherflow_ledger::entry::RoundOpened {
                    parameters: Default::default(),
                    participants: vec![],
                    dp,
                }),
            )
            .unwrap();
            let mut eps = history_epsilon(&acct, &plan, &zs[..=i], None).unwrap();
            if cheat && i == 4 {
                // As if every round had had the first round's noise.
                eps = history_epsilon(&acct, &plan, &[zs[0]; 5], None).unwrap();
            }
            let k = round.div_ceil(2);
            log.append(
                round,
                EntryBody::RoundClosed(cipherflow_ledger::entry::RoundClosed {
                    model_hash: [0; 32],
                    epsilon_global: eps,
                    clients: vec![cipherflow_ledger::entry::ClientEpsilon {
                        client_id: "client-1".into(),
                        steps: k,
                        epsilon: history_epsilon(&acct, &plan, &zs[..=i], Some(k)).unwrap(),
                    }],
                }),
            )
            .unwrap();
        }
    };
    let verify = |path: &Path, acct: &dyn EpsilonRecompute| {
        verify_log(
            path,
            &signer().public_key(),
            &VerifyOptions {
                epsilon: Some(acct),
                ..VerifyOptions::default()
            },
        )
    };
    let honest = dir.path().join("honest.db");
    write(&honest, false);
    let r = verify(&honest, &acct).unwrap();
    assert_eq!(r.rounds_epsilon_checked, 5);
    let cheat = dir.path().join("cheat.db");
    write(&cheat, true);
    let f = verify(&cheat, &FedEpsilon::default()).unwrap_err();
    assert!(f.to_string().contains("reported global ε"), "{f}");
    // The per-client bound is the k least noisy rounds: round 5's client
    // (3 rounds of its own) is charged for z = 0.7, 1.0, 1.0.
    let k3 = history_epsilon(&acct, &plan, &[0.7, 1.0, 1.0], Some(3)).unwrap();
    assert_eq!(history_epsilon(&acct, &plan, &zs, Some(3)).unwrap(), k3);
    assert!(k3 > history_epsilon(&acct, &plan, &[1.4, 1.4, 1.0], Some(3)).unwrap());
    // A single-setting accountant cannot compose them and says so.
    let single = |s: &DpSettings, steps: u64| acct.epsilon(s, steps);
    let f = verify(&honest, &single).unwrap_err();
    assert!(f.to_string().contains("changes (accountant"), "{f}");
}

/// The schedule is durable with the round: a restarted coordinator sends
/// the same history, and a state that lost the schedule is refused rather
/// than re-planned from scratch (which would forget the spent budget).
#[test]
fn the_schedule_survives_a_restart_and_its_loss_is_refused() {
    let cfg = common::config(
        "dyn-restart",
        6,
        &format!("threshold = 2\nquorum = 3\n{SCHEDULE}"),
    );
    let mut fed = Fed::with_config(cfg, 3);
    fed.upload_all();
    fed.run_decryption(10);
    fed.open_round();
    let before = train_task(&fed.task(0)).noise_history;
    assert_eq!(before.len(), 2);
    // The privacy gauges a dashboard scrapes: budget, spent, current noise.
    let g = fed.coord.metrics().privacy.unwrap();
    assert_eq!(g.epsilon_budget, 3.0);
    assert_eq!(Some(g.epsilon_spent), fed.coord.history()[0].epsilon);
    assert_eq!(g.noise_multiplier, before[1]);
    assert!(fed
        .coord
        .metrics()
        .render(2, false)
        .contains("cipherflow_fed_dp_epsilon_spent "));
    let mut fed = fed.restart_coordinator(|_| {}).map_err(|(e, _)| e).unwrap();
    assert_eq!(train_task(&fed.task(0)).noise_history, before);
    let e = fed
        .restart_coordinator(|dir| {
            let db = rusqlite::Connection::open(dir.join("state.db")).unwrap();
            db.execute("DELETE FROM meta WHERE key = 'dp_schedule'", [])
                .unwrap();
        })
        .map(|_| ())
        .unwrap_err()
        .0;
    assert!(
        matches!(&e, FedError::Integrity(m) if m.contains("granted 0 rounds, but 2 were opened")),
        "{e}"
    );
}

/// A client enforces its own budget over the rounds it actually joined,
/// whatever the coordinator's bookkeeping says.
#[test]
fn a_client_refuses_a_round_over_its_own_budget() {
    let base = format!("threshold = 2\nquorum = 3\n{SCHEDULE}");
    let cfg = common::config("dyn-client-budget", 6, &base);
    let plan = cipherflow_fed::DpPlan::new(cfg.dp.as_ref().unwrap(), &cfg.sizes(3).unwrap(), 6, 31)
        .unwrap();
    let acct = FedEpsilon::default();
    let z1 = cipherflow_fed::dp_schedule::FedSchedule::new(&plan)
        .unwrap()
        .map(|mut s| s.grant().unwrap().unwrap())
        .unwrap();
    let one = history_epsilon(&acct, &plan, &[z1], Some(1)).unwrap();
    let two = history_epsilon(&acct, &plan, &[z1, z1], Some(2)).unwrap();
    assert!(one < two);
    // A budget between one and two rounds at z1.
    let budget = (one + two) / 2.0;
    let cfg = common::config(
        "dyn-client-budget",
        6,
        &base.replace(
            "epsilon = 3.0\n",
            &format!("epsilon = 3.0\nclient_epsilon = {budget}\n"),
        ),
    );
    let mut fed = Fed::with_config(cfg, 3);
    fed.open_round();
    let first = train_task(&fed.task(0));
    assert_eq!(first.noise_history, vec![z1]);
    assert!(matches!(
        fed.clients[0].handle(&Task::Train(first.clone())).unwrap(),
        Action::Upload(_)
    ));
    // A second round at the same noise fits the federation's ε but not
    // this client's budget.
    let mut second = first;
    second.round += 1;
    second.noise_history = vec![z1, z1];
    assert!(history_epsilon(&acct, &plan, &[z1, z1], None).unwrap() < 3.0);
    refused(&mut fed, 0, second, "over its budget");
}

/// A schedule sizes the integer grid for its noisiest and least noisy
/// phase: at ε = 1 over 20 rounds a fourfold ratio either way still fits
/// the discrete-Gaussian sampler (σ ≤ 1024) and keeps shares of σ ≥ 4.
#[test]
fn a_schedule_sizes_the_grid_for_its_extreme_phases() {
    for ratio in [0.25, 4.0] {
        let cfg = common::config(
            "dyn-grid",
            20,
            &format!("[dp]\nepsilon = 1.0\n[dp.schedule]\nratio = {ratio}\nphases = 4\n"),
        );
        let plan =
            cipherflow_fed::DpPlan::new(cfg.dp.as_ref().unwrap(), &cfg.sizes(10).unwrap(), 20, 31)
                .unwrap();
        assert!(
            plan.max_share_sigma() <= cipherflow_fed::MAX_DG_SHARE_SIGMA,
            "{ratio}"
        );
        let mut s = cipherflow_fed::dp_schedule::FedSchedule::new(&plan)
            .unwrap()
            .unwrap();
        let mut zs = Vec::new();
        while let Some(z) = s.grant().unwrap() {
            assert!(plan.share_sigma_at(z) >= cipherflow_fed::MIN_SHARE_SIGMA);
            assert!(z <= plan.max_noise_multiplier * (1.0 + 1e-9));
            zs.push(z);
        }
        assert_eq!(zs.len(), 20);
        let eps = history_epsilon(&FedEpsilon::default(), &plan, &zs, None).unwrap();
        assert!(eps <= 1.0 && eps > 0.99, "{ratio}: {eps}");
    }
}
