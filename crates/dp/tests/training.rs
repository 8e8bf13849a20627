//! Clipping, adaptive clipping, budget ledgers, the dynamic schedule and
//! distributed-noise accounting.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_dp::budget::{Budget, BudgetLedger, Charge};
use cipherflow_dp::clipping::{
    joint_noise_multiplier, l2_norm, try_clip_l2, update_noise_multiplier, AdaptiveClipper,
};
use cipherflow_dp::distributed::{DistributedNoise, IntegerNoise};
use cipherflow_dp::schedule::{Mechanism, PlateauPolicy, Profile, Schedule, ScheduleConfig};
use cipherflow_dp::{
    clip_l2, epsilon, Accountant, DpError, PldAccountant, PrivacyAccountant, RdpAccountant,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

#[test]
fn fixed_clipping() {
    let mut v = vec![3.0, 4.0];
    assert_eq!(clip_l2(&mut v, 1.0), 5.0);
    assert!((l2_norm(&v) - 1.0).abs() < 1e-15);
    assert!((v[0] - 0.6).abs() < 1e-15 && (v[1] - 0.8).abs() < 1e-15);
    let mut small = vec![0.1, 0.2];
    clip_l2(&mut small, 1.0);
    assert_eq!(small, vec![0.1, 0.2], "inside the ball: unchanged");
    let mut huge = vec![1e300, 1e300];
    let n = clip_l2(&mut huge, 2.0);
    assert!((n / 1e300 - 2f64.sqrt()).abs() < 1e-12, "no overflow: {n}");
    assert!((l2_norm(&huge) - 2.0).abs() < 1e-12);
    let mut tiny = vec![1e-300, 1e-300];
    assert!(clip_l2(&mut tiny, 1.0) > 0.0, "no underflow");
    let mut bad = vec![1.0, f64::NAN];
    assert!(clip_l2(&mut bad, 1.0).is_nan());
    assert_eq!(bad, vec![0.0, 0.0], "non-finite input never leaks");
    let mut inf = vec![f64::INFINITY, 1.0];
    assert_eq!(clip_l2(&mut inf, 1.0), f64::INFINITY);
    assert_eq!(inf, vec![0.0, 0.0]);
    let mut empty: Vec<f64> = vec![];
    assert_eq!(clip_l2(&mut empty, 1.0), 0.0);
    let mut z = vec![3.0, 4.0];
    assert_eq!(clip_l2(&mut z, 0.0), 5.0);
    assert_eq!(z, vec![0.0, 0.0]);
    assert!(try_clip_l2(&mut [1.0], -1.0).is_err());
}

#[test]
fn adaptive_clipping_tracks_the_quantile() {
    // Update norms ~ |N(0, 1)|·10 → the median is ≈ 6.745.
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let mut clipper = AdaptiveClipper::new(0.1, 0.5, 0.2, 5.0).unwrap();
    let m = 1000usize;
    for _ in 0..400 {
        let mut count = 0u64;
        for _ in 0..m {
            let norm = 10.0 * cipherflow_dp::mechanisms::standard_normal(&mut rng).abs();
            count += u64::from(clipper.indicator(norm));
        }
        clipper.update(&mut rng, count, m as f64).unwrap();
    }
    let c = clipper.clip();
    assert!((c - 6.745).abs() < 0.6, "clip {c}");
    // Geometric update direction: too many unclipped → C shrinks.
    let mut k = AdaptiveClipper::new(1.0, 0.5, 0.2, 0.0).unwrap();
    k.update(&mut rng, 100, 100.0).unwrap();
    assert!((k.clip() - (-0.2f64 * 0.5).exp()).abs() < 1e-15);
}

#[test]
fn noise_multiplier_correction() {
    // σ_Δ = (z⁻² − (2σ_b)⁻²)^(−1/2); the paper's example: z = 1, σ_b = m/20 with m = 100 → σ_b = 5.
    let s = update_noise_multiplier(1.0, 5.0).unwrap();
    assert!((s - (1.0f64 - 0.01).powf(-0.5)).abs() < 1e-15);
    assert!((joint_noise_multiplier(s, 5.0).unwrap() - 1.0).abs() < 1e-14);
    assert!(s > 1.0);
}

#[test]
fn ledger_charges_refuses_and_persists() {
    let global = Budget::new(3.0, 1e-5).unwrap();
    let per_client = Budget::new(1.0, 1e-5).unwrap();
    let mut ledger = BudgetLedger::new(global, Some(per_client)).unwrap();
    let r = ledger
        .try_charge(Some("alice"), Charge::Epsilon { epsilon: 0.4 })
        .unwrap();
    assert!((r.global_cost - 0.4).abs() < 1e-12);
    assert!((r.client_remaining.unwrap() - 0.6).abs() < 1e-12);
    // A Gaussian charge composes by RDP.
    let g = Charge::PoissonGaussian {
        q: 0.01,
        sigma: 2.0,
        steps: 1000,
    };
    let want = epsilon(Accountant::Rdp, 0.01, 2.0, 1000, 1e-5)
        .unwrap()
        .epsilon;
    let r = ledger.try_charge(Some("bob"), g.clone()).unwrap();
    assert!(
        (r.global_cost - want).abs() < 1e-9,
        "{} vs {want}",
        r.global_cost
    );
    // Alice cannot spend 0.7 more: refused with the remaining ε, nothing recorded.
    let before = ledger.clone();
    let err = ledger
        .try_charge(Some("alice"), Charge::Epsilon { epsilon: 0.7 })
        .unwrap_err();
    match &err {
        DpError::BudgetExceeded {
            scope,
            remaining,
            requested,
            total,
            ..
        } => {
            assert_eq!(scope, "client `alice`");
            assert!((remaining - 0.6).abs() < 1e-12);
            assert!((requested - 0.7).abs() < 1e-12);
            assert_eq!(*total, 1.0);
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("0.600000"), "{err}");
    assert_eq!(ledger, before, "refusal is atomic");
    // The global budget refuses too.
    let err = ledger
        .try_charge(None, Charge::Epsilon { epsilon: 2.9 })
        .unwrap_err();
    assert!(matches!(err, DpError::BudgetExceeded { ref scope, .. } if scope == "global"));
    // Persist and reload.
    let dir = std::env::temp_dir().join(format!("cfdp-ledger-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ledger.json");
    ledger.save(&path).unwrap();
    let back = BudgetLedger::load(&path).unwrap();
    assert_eq!(back, ledger);
    assert_eq!(back.client("alice").unwrap().charges.len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
    // Tampered JSON is rejected, not trusted.
    let json = ledger
        .to_json()
        .unwrap()
        .replacen("\"epsilon\": 3.0", "\"epsilon\": -3.0", 1);
    assert!(BudgetLedger::from_json(&json).is_err());
}

#[test]
fn accountant_trait_objects_compose_heterogeneous_steps() {
    let mut accs: Vec<Box<dyn PrivacyAccountant>> = vec![
        Box::new(RdpAccountant::new()),
        Box::new(PldAccountant::new()),
    ];
    for a in accs.iter_mut() {
        a.record_poisson_gaussian(0.02, 1.2, 100).unwrap();
        let e1 = a.epsilon(1e-5).unwrap();
        a.record_poisson_gaussian(0.01, 3.0, 50).unwrap();
        let e2 = a.epsilon(1e-5).unwrap();
        assert!(e2 > e1 && e1 > 0.0);
    }
}

fn config(
    accountant: Accountant,
    profile: Profile,
    plateau: Option<PlateauPolicy>,
) -> ScheduleConfig {
    ScheduleConfig {
        total_epsilon: 2.0,
        delta: 1e-5,
        rounds: 50,
        q: 0.01,
        steps_per_round: 20,
        mechanism: Mechanism::Gaussian(accountant),
        profile,
        plateau,
    }
}

#[test]
fn schedule_constant_matches_calibration() {
    let s = Schedule::new(config(Accountant::Rdp, Profile::Constant, None)).unwrap();
    assert_eq!(s.plan().len(), 1);
    let want = cipherflow_dp::calibrate_sigma(Accountant::Rdp, 0.01, 1000, 1e-5, 2.0).unwrap();
    assert!(
        (s.plan()[0].sigma / want - 1.0).abs() < 1e-5,
        "{} vs {want}",
        s.plan()[0].sigma
    );
    let e = s.planned_epsilon().unwrap();
    assert!(e <= 2.0 && e > 1.999, "{e}");
}

#[test]
fn schedule_front_loaded_never_exceeds_total() {
    let mut s = Schedule::new(config(
        Accountant::Rdp,
        Profile::Geometric {
            ratio: 2.0,
            phases: 5,
        },
        None,
    ))
    .unwrap();
    let plan = s.plan().to_vec();
    assert_eq!(plan.len(), 5);
    assert!(plan[0].sigma < plan[4].sigma);
    assert!((plan[4].sigma / plan[0].sigma - 2.0).abs() < 1e-9);
    let mut last = 0.0;
    for i in 0..50 {
        let g = s.next_round().unwrap();
        assert_eq!(g.round, i);
        assert!(g.epsilon_spent >= last && g.epsilon_spent <= 2.0);
        last = g.epsilon_spent;
    }
    assert!(last > 1.999, "the budget is used: {last}");
    assert!(matches!(
        s.next_round(),
        Err(DpError::ScheduleExhausted(50))
    ));
    // Early rounds spend more than late rounds.
    let mut a = RdpAccountant::new();
    a.record_poisson_gaussian(0.01, plan[0].sigma, 200).unwrap();
    let early = a.epsilon(1e-5).unwrap();
    let mut b = RdpAccountant::new();
    b.record_poisson_gaussian(0.01, plan[4].sigma, 200).unwrap();
    assert!(early > b.epsilon(1e-5).unwrap());
}

#[test]
fn schedule_reacts_to_plateau_within_budget() {
    let policy = PlateauPolicy {
        patience: 2,
        min_improvement: 1e-3,
        keep_fraction: 0.5,
        minimize: true,
    };
    let mut s = Schedule::new(config(Accountant::Rdp, Profile::Constant, Some(policy))).unwrap();
    let sigma0 = s.plan()[0].sigma;
    for _ in 0..10 {
        s.next_round().unwrap();
    }
    assert!(!s.observe_validation(1.0).unwrap());
    assert!(!s.observe_validation(0.9).unwrap());
    assert!(!s.observe_validation(0.9).unwrap()); // stale 1
    assert!(s.observe_validation(0.9).unwrap()); // stale 2 → re-plan
    assert_eq!(s.remaining_rounds(), 20);
    let sigma1 = s.plan()[0].sigma;
    assert!(
        sigma1 < sigma0,
        "fewer rounds, less noise: {sigma1} vs {sigma0}"
    );
    let mut spent = 0.0;
    while let Ok(g) = s.next_round() {
        spent = g.epsilon_spent;
    }
    assert!(spent <= 2.0 && spent > 1.999, "{spent}");
    assert_eq!(s.rounds_done(), 30);
    assert!(s.observe_validation(f64::NAN).is_err());
}

#[test]
fn schedule_refuses_what_the_accountant_does_not_allow() {
    let mut s = Schedule::new(config(Accountant::Rdp, Profile::Constant, None)).unwrap();
    for _ in 0..25 {
        s.next_round().unwrap();
    }
    // A tampered checkpoint asking for far less noise is refused by the
    // per-round verification, with the remaining budget in the error.
    let json = serde_json::to_string(&s).unwrap();
    let sigma = s.plan()[0].sigma;
    let tampered = json.replace(&format!("\"sigma\":{sigma}"), "\"sigma\":0.3");
    assert_ne!(json, tampered);
    let mut t: Schedule = serde_json::from_str(&tampered).unwrap();
    let spent = t.epsilon_spent();
    match t.next_round().unwrap_err() {
        DpError::BudgetExceeded {
            remaining, total, ..
        } => {
            assert!((remaining - (2.0 - spent)).abs() < 1e-12);
            assert_eq!(total, 2.0);
        }
        other => panic!("{other}"),
    }
    // After the whole budget is spent, a re-plan can only buy rounds with
    // enormous noise, and they still fit.
    for _ in 0..25 {
        s.next_round().unwrap();
    }
    s.replan(10, Profile::Constant).unwrap();
    assert!(s.plan()[0].sigma > 100.0 * sigma);
    while let Ok(g) = s.next_round() {
        assert!(g.epsilon_spent <= 2.0);
    }
}

#[test]
fn schedule_with_pld_accountant() {
    let mut cfg = config(
        Accountant::Pld,
        Profile::Geometric {
            ratio: 1.5,
            phases: 2,
        },
        None,
    );
    cfg.rounds = 10;
    cfg.steps_per_round = 100;
    let mut s = Schedule::new(cfg).unwrap();
    let mut last = 0.0;
    while let Ok(g) = s.next_round() {
        last = g.epsilon_spent;
    }
    assert!(last <= 2.0 && last > 1.99, "{last}");
    // Serialisable for checkpoints.
    let json = serde_json::to_string(&s).unwrap();
    let back: Schedule = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
}

#[test]
fn distributed_epsilon_accounts_for_dropouts() {
    for kind in [IntegerNoise::DiscreteGaussian, IntegerNoise::Skellam] {
        // Sensitivity 100 (integer units after scaling), target σ = 100·1.0 with ≥ 80 of 100 survivors.
        let plan = DistributedNoise::new(kind, 100, 80, 100.0).unwrap();
        let at_plan = plan.epsilon(80, 1000.0, 100.0, 100, 1.0, 10, 1e-5).unwrap();
        let gaussian = epsilon(Accountant::Rdp, 1.0, 1.0, 10, 1e-5)
            .unwrap()
            .epsilon;
        // Close to the continuous Gaussian with the same noise multiplier (small corrections).
        assert!(
            at_plan >= gaussian * 0.99 && at_plan < gaussian * 1.1,
            "{kind:?}: {at_plan} vs {gaussian}"
        );
        let dropped = plan.epsilon(40, 1000.0, 100.0, 100, 1.0, 10, 1e-5).unwrap();
        assert!(dropped > at_plan * 1.3, "{kind:?}: {dropped} vs {at_plan}");
        // Client subsampling amplifies.
        let sub = plan
            .epsilon(80, 1000.0, 100.0, 100, 0.05, 10, 1e-5)
            .unwrap();
        assert!(sub < at_plan / 3.0, "{kind:?}: {sub} vs {at_plan}");
    }
}
