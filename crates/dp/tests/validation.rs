//! Untrusted input: every public entry point rejects invalid parameters with
//! a typed error (never a panic) and a message that names the problem.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_dp::budget::{Budget, BudgetLedger, Charge};
use cipherflow_dp::clipping::{clip_l2, update_noise_multiplier, AdaptiveClipper};
use cipherflow_dp::discrete::{skellam, DiscreteGaussian};
use cipherflow_dp::distributed::{DistributedNoise, IntegerNoise};
use cipherflow_dp::schedule::{DistributedRound, Mechanism, Profile, Schedule, ScheduleConfig};
use cipherflow_dp::{
    calibrate_sigma, epsilon, gaussian_noise, try_gaussian_noise, Accountant, DpError,
    PldAccountant, PrivacyAccountant, RdpAccountant,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const BAD: [f64; 4] = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0];

#[test]
fn epsilon_rejects_bad_inputs() {
    for acc in [Accountant::Rdp, Accountant::Pld] {
        for q in BAD.iter().copied().chain([0.0, 1.000_001, 2.0]) {
            let e = epsilon(acc, q, 1.0, 10, 1e-5).unwrap_err();
            assert!(matches!(e, DpError::InvalidSamplingRate(_)), "{e}");
            assert!(e.to_string().contains("(0, 1]"));
        }
        for s in BAD.iter().copied().chain([0.0]) {
            let e = epsilon(acc, 0.1, s, 10, 1e-5).unwrap_err();
            assert!(matches!(e, DpError::InvalidNoiseMultiplier(_)), "{e}");
        }
        for d in BAD.iter().copied().chain([0.0, 1.0, 1.5]) {
            let e = epsilon(acc, 0.1, 1.0, 10, d).unwrap_err();
            assert!(matches!(e, DpError::InvalidDelta(_)), "{e}");
        }
        assert!(matches!(
            epsilon(acc, 0.1, 1.0, 0, 1e-5),
            Err(DpError::InvalidSteps(0))
        ));
        assert!(matches!(
            epsilon(acc, 0.1, 1.0, u64::MAX, 1e-5),
            Err(DpError::InvalidSteps(_))
        ));
        for t in BAD.iter().copied().chain([0.0]) {
            let e = calibrate_sigma(acc, 0.1, 10, 1e-5, t).unwrap_err();
            assert!(
                matches!(e, DpError::InvalidTargetEpsilon(x) if x.to_bits() == t.to_bits()),
                "{e:?}"
            );
        }
    }
}

#[test]
fn extreme_but_valid_inputs_do_not_panic() {
    // Tiny σ: RDP is huge but finite or +inf; PLD reports "too large" instead of allocating.
    let r = epsilon(Accountant::Rdp, 0.5, 1e-3, 10, 1e-5).unwrap();
    assert!(r.epsilon > 100.0);
    assert!(matches!(
        epsilon(Accountant::Pld, 0.5, 1e-3, 10, 1e-5),
        Err(DpError::TooLarge(_))
    ));
    // Huge σ, tiny q, tiny δ.
    let r = epsilon(Accountant::Pld, 1e-6, 1e3, 10, 1e-15).unwrap();
    assert!(r.epsilon >= 0.0 && r.epsilon < 1e-3);
    let r = epsilon(Accountant::Rdp, 1e-9, 1e3, 1_000_000_000_000, 1e-300).unwrap();
    assert!(r.epsilon.is_finite());
    // Calibration that cannot succeed reports a calibration error.
    let e = calibrate_sigma(Accountant::Rdp, 1.0, 1_000_000_000_000, 1e-12, 1e-9).unwrap_err();
    assert!(
        matches!(&e, DpError::Calibration(m) if m.contains("no noise multiplier")),
        "{e:?}"
    );
}

#[test]
fn accountant_trait_validates() {
    let mut accs: Vec<Box<dyn PrivacyAccountant>> = vec![
        Box::new(RdpAccountant::new()),
        Box::new(PldAccountant::new()),
    ];
    for a in accs.iter_mut() {
        let e = a.record_poisson_gaussian(f64::NAN, 1.0, 1).unwrap_err();
        assert!(
            matches!(e, DpError::InvalidSamplingRate(q) if q.is_nan()),
            "{e:?}"
        );
        let e = a.record_poisson_gaussian(0.1, 0.0, 1).unwrap_err();
        assert!(matches!(e, DpError::InvalidNoiseMultiplier(0.0)), "{e:?}");
        let e = a.record_poisson_gaussian(0.1, 1.0, 0).unwrap_err();
        assert!(matches!(e, DpError::InvalidSteps(0)), "{e:?}");
        let e = a.epsilon(0.0).unwrap_err();
        assert!(matches!(e, DpError::InvalidDelta(0.0)), "{e:?}");
        let e = a.epsilon(f64::NAN).unwrap_err();
        assert!(matches!(e, DpError::InvalidDelta(d) if d.is_nan()), "{e:?}");
    }
    let e = PldAccountant::with_discretization(0.0).unwrap_err();
    assert!(
        matches!(
            e,
            DpError::InvalidParameter {
                name: "discretization",
                ..
            }
        ),
        "{e:?}"
    );
    for orders in [vec![1.0], vec![]] {
        let e = RdpAccountant::with_orders(orders).unwrap_err();
        assert!(
            matches!(e, DpError::InvalidParameter { name: "orders", .. }),
            "{e:?}"
        );
    }
}

#[test]
fn mechanisms_reject_bad_inputs() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut v = vec![1.0; 4];
    for s in BAD {
        let e = try_gaussian_noise(&mut rng, s, &mut v).unwrap_err();
        assert!(
            matches!(e, DpError::InvalidParameter { name: "sigma", .. }),
            "{e:?}"
        );
        assert_eq!(v, vec![1.0; 4], "untouched on error");
        let mut w = vec![1.0; 3];
        gaussian_noise(&mut rng, s, &mut w);
        assert!(
            w.iter().all(|x| x.is_nan()),
            "poisoned, never silently un-noised"
        );
    }
    for (num, den) in [(0, 1), (1, 0), (1 << 41, 1)] {
        let e = DiscreteGaussian::new(num, den).unwrap_err();
        assert!(
            matches!(&e, DpError::InvalidParameter { name: "sigma^2", value, .. }
                if *value == format!("{num}/{den}")),
            "{e:?}"
        );
    }
    for s in [f64::NAN, 1e9] {
        let e = DiscreteGaussian::from_sigma(s).unwrap_err();
        assert!(
            matches!(e, DpError::InvalidParameter { name: "sigma", .. }),
            "{e:?}"
        );
    }
    for mu in BAD {
        let e = skellam(&mut rng, mu).unwrap_err();
        assert!(
            matches!(e, DpError::InvalidParameter { name: "mu", .. }),
            "{e:?}"
        );
    }
    // No clients (with the smallest otherwise-valid survivor count).
    let e = DistributedNoise::new(IntegerNoise::Skellam, 0, 1, 1.0).unwrap_err();
    assert!(
        matches!(
            e,
            DpError::InvalidParameter {
                name: "clients",
                ..
            }
        ),
        "{e:?}"
    );
    let e = DistributedNoise::new(IntegerNoise::Skellam, 10, 11, 1.0).unwrap_err();
    assert!(
        matches!(
            e,
            DpError::InvalidParameter {
                name: "min_survivors",
                ..
            }
        ),
        "{e:?}"
    );
    let e = DistributedNoise::new(IntegerNoise::Skellam, 10, 5, f64::NAN).unwrap_err();
    assert!(
        matches!(
            e,
            DpError::InvalidParameter {
                name: "target_stddev",
                ..
            }
        ),
        "{e:?}"
    );
    let plan = DistributedNoise::new(IntegerNoise::DiscreteGaussian, 10, 5, 10.0).unwrap();
    for survivors in [0, 11] {
        let e = plan
            .epsilon(survivors, 1.0, 1.0, 1, 1.0, 1, 1e-5)
            .unwrap_err();
        assert!(
            matches!(
                e,
                DpError::InvalidParameter {
                    name: "survivors",
                    ..
                }
            ),
            "{e:?}"
        );
    }
    let e = plan.epsilon(5, f64::NAN, 1.0, 1, 1.0, 1, 1e-5).unwrap_err();
    assert!(
        matches!(
            e,
            DpError::InvalidParameter {
                name: "sensitivity",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn clipping_rejects_bad_inputs() {
    for (args, param) in [
        ((0.0, 0.5, 0.2, 1.0), "initial clip"),
        ((1.0, 1.0, 0.2, 1.0), "target quantile"),
        ((1.0, 0.5, f64::NAN, 1.0), "learning rate"),
        ((1.0, 0.5, 0.2, -1.0), "count noise stddev"),
    ] {
        let e = AdaptiveClipper::new(args.0, args.1, args.2, args.3).unwrap_err();
        assert!(
            matches!(e, DpError::InvalidParameter { name, .. } if name == param),
            "{args:?}: {e:?}"
        );
    }
    // 2σ_b ≤ z
    let e = update_noise_multiplier(1.0, 0.4).unwrap_err();
    assert!(
        matches!(
            e,
            DpError::InvalidParameter {
                name: "count noise stddev",
                ..
            }
        ),
        "{e:?}"
    );
    let e = update_noise_multiplier(f64::NAN, 1.0).unwrap_err();
    assert!(
        matches!(e, DpError::InvalidNoiseMultiplier(z) if z.is_nan()),
        "{e:?}"
    );
    let mut v = vec![3.0, 4.0];
    assert_eq!(clip_l2(&mut v, f64::NAN), 5.0);
    assert_eq!(v, vec![0.0, 0.0], "NaN bound clips to zero");
}

#[test]
fn budget_and_schedule_reject_bad_inputs() {
    let e = Budget::new(f64::NAN, 1e-5).unwrap_err();
    assert!(
        matches!(e, DpError::InvalidEpsilon(x) if x.is_nan()),
        "{e:?}"
    );
    let e = Budget::new(1.0, 0.0).unwrap_err();
    assert!(matches!(e, DpError::InvalidDelta(0.0)), "{e:?}");
    let mut l = BudgetLedger::new(Budget::new(1.0, 1e-5).unwrap(), None).unwrap();
    let e = l
        .try_charge(None, Charge::Epsilon { epsilon: -1.0 })
        .unwrap_err();
    assert!(matches!(e, DpError::InvalidEpsilon(-1.0)), "{e:?}");
    let e = l
        .try_charge(
            None,
            Charge::PoissonGaussian {
                q: 2.0,
                sigma: 1.0,
                steps: 1,
            },
        )
        .unwrap_err();
    assert!(matches!(e, DpError::InvalidSamplingRate(2.0)), "{e:?}");
    let e = l
        .try_charge(Some("nobody"), Charge::Epsilon { epsilon: 0.1 })
        .unwrap_err();
    assert!(
        matches!(&e, DpError::InvalidParameter { name: "client", value, .. } if value == "nobody"),
        "no default budget: {e:?}"
    );
    let e = BudgetLedger::from_json("{").unwrap_err();
    assert!(
        matches!(&e, DpError::Json(j) if j.is_eof()),
        "truncated JSON: {e:?}"
    );
    let e = BudgetLedger::from_json("null").unwrap_err();
    assert!(
        matches!(&e, DpError::Json(j) if j.is_data()),
        "not a ledger: {e:?}"
    );
    let base = ScheduleConfig {
        total_epsilon: 1.0,
        delta: 1e-5,
        rounds: 10,
        q: 0.01,
        steps_per_round: 10,
        mechanism: Mechanism::Gaussian(Accountant::Rdp),
        profile: Profile::Constant,
        plateau: None,
    };
    Schedule::new(base.clone()).expect("the base configuration is valid");
    let e = Schedule::new(ScheduleConfig {
        total_epsilon: 0.0,
        ..base.clone()
    })
    .unwrap_err();
    assert!(matches!(e, DpError::InvalidTargetEpsilon(0.0)), "{e:?}");
    let e = Schedule::new(ScheduleConfig {
        delta: 1.0,
        ..base.clone()
    })
    .unwrap_err();
    assert!(matches!(e, DpError::InvalidDelta(1.0)), "{e:?}");
    let e = Schedule::new(ScheduleConfig {
        rounds: 0,
        ..base.clone()
    })
    .unwrap_err();
    assert!(matches!(e, DpError::InvalidSteps(0)), "{e:?}");
    let e = Schedule::new(ScheduleConfig {
        q: 0.0,
        ..base.clone()
    })
    .unwrap_err();
    assert!(matches!(e, DpError::InvalidSamplingRate(0.0)), "{e:?}");
    let e = Schedule::new(ScheduleConfig {
        profile: Profile::Geometric {
            ratio: 0.005,
            phases: 3,
        },
        ..base.clone()
    })
    .unwrap_err();
    assert!(
        matches!(e, DpError::InvalidParameter { name: "ratio", .. }),
        "{e:?}"
    );
    let e = Schedule::new(ScheduleConfig {
        profile: Profile::Geometric {
            ratio: 2.0,
            phases: 0,
        },
        ..base
    })
    .unwrap_err();
    assert!(
        matches!(e, DpError::InvalidParameter { name: "phases", .. }),
        "{e:?}"
    );
}

#[test]
fn client_budgets_are_set_kept_and_enforced() {
    let b = |epsilon| Budget::new(epsilon, 1e-5).unwrap();
    let mut l = BudgetLedger::new(b(10.0), None).unwrap();
    l.set_client_budget("a", b(0.5)).unwrap();
    assert_eq!(l.client("a").unwrap().budget, b(0.5));
    l.try_charge(Some("a"), Charge::Epsilon { epsilon: 0.4 })
        .unwrap();
    match l.try_charge(Some("a"), Charge::Epsilon { epsilon: 0.2 }) {
        Err(DpError::BudgetExceeded { scope, total, .. }) => {
            assert!(scope.contains('a'), "{scope}");
            assert_eq!(total, 0.5);
        }
        other => panic!("a client's budget was not enforced: {other:?}"),
    }
    // Raising it keeps the history: 0.4 spent of 1.0.
    l.set_client_budget("a", b(1.0)).unwrap();
    let a = l.client("a").unwrap();
    assert_eq!((a.budget, a.charges.len()), (b(1.0), 1));
    assert!((a.remaining().unwrap() - 0.6).abs() < 1e-12);
    // An invalid budget is refused and changes nothing.
    let bad = Budget {
        epsilon: f64::NAN,
        delta: 1e-5,
    };
    assert!(matches!(
        l.set_client_budget("a", bad),
        Err(DpError::InvalidEpsilon(e)) if e.is_nan()
    ));
    assert_eq!(l.client("a").unwrap().budget, b(1.0));
}

#[test]
fn a_stored_ledger_with_a_negative_spend_is_refused() {
    let mut l = BudgetLedger::new(Budget::new(10.0, 1e-5).unwrap(), None).unwrap();
    l.set_client_budget("a", Budget::new(1.0, 1e-5).unwrap())
        .unwrap();
    l.try_charge(Some("a"), Charge::Epsilon { epsilon: 0.5 })
        .unwrap();
    let json = l.to_json().unwrap();
    assert_eq!(BudgetLedger::from_json(&json).unwrap(), l);
    // Someone edits the file to give a client its budget back.
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    for (scope, path) in [
        ("client", "/clients/a/pure_epsilon"),
        ("global", "/global/pure_epsilon"),
    ] {
        let mut edited = v.clone();
        *edited.pointer_mut(path).unwrap() = serde_json::json!(-1.0);
        match BudgetLedger::from_json(&edited.to_string()) {
            Err(DpError::InvalidParameter { name, .. }) => assert_eq!(name, "pure_epsilon"),
            other => panic!("{scope} account with ε spent −1 accepted: {other:?}"),
        }
    }
    *v.pointer_mut("/clients/a/pure_epsilon").unwrap() = serde_json::json!(0.25);
    let back = BudgetLedger::from_json(&v.to_string()).unwrap();
    assert!((back.client("a").unwrap().spent().unwrap() - 0.25).abs() < 1e-12);
}

/// A budget can be spent to the last bit (within a relative 1e-12 for
/// floating-point composition noise) and not one ulp beyond.
#[test]
fn the_budget_can_be_spent_exactly_and_not_beyond_its_tolerance() {
    let fresh = || BudgetLedger::new(Budget::new(1.0, 1e-5).unwrap(), None).unwrap();
    let edge = 1.0 * (1.0 + 1e-12);
    for ok in [1.0, edge] {
        fresh()
            .try_charge(None, Charge::Epsilon { epsilon: ok })
            .unwrap_or_else(|e| panic!("ε {ok} of 1.0 refused: {e}"));
    }
    let over = f64::from_bits(edge.to_bits() + 1);
    assert!(matches!(
        fresh().try_charge(None, Charge::Epsilon { epsilon: over }),
        Err(DpError::BudgetExceeded { .. })
    ));
}

/// A federation's distributed-noise rounds under a schedule: a constant
/// plan is the single-setting calibration, a geometric plan composes
/// rounds of different noise to at most the total, and the composition
/// of a heterogeneous history is the order-wise sum of its rounds' RDP.
#[test]
fn a_distributed_noise_schedule_composes_heterogeneous_rounds() {
    let round = DistributedRound {
        kind: IntegerNoise::DiscreteGaussian,
        clients: 20,
        min_survivors: 14,
        l1: 800.0,
        l2: 110.0,
        dim: 1000,
    };
    let base = ScheduleConfig {
        total_epsilon: 4.0,
        delta: 1e-5,
        rounds: 30,
        q: 0.2,
        steps_per_round: 1,
        mechanism: Mechanism::Distributed(round.clone()),
        profile: Profile::Constant,
        plateau: None,
    };
    let constant = Schedule::new(base.clone()).unwrap();
    let z = constant.plan()[0].sigma;
    let noise =
        DistributedNoise::new(IntegerNoise::DiscreteGaussian, 20, 14, z * round.l2).unwrap();
    let eps = noise
        .epsilon(14, 800.0, 110.0, 1000, 0.2, 30, 1e-5)
        .unwrap();
    assert!(
        eps <= 4.0 && eps > 3.99,
        "the constant plan spends the budget: ε = {eps}"
    );

    // Less noise late: σ falls to a quarter over 5 phases.
    let mut late = Schedule::new(ScheduleConfig {
        profile: Profile::Geometric {
            ratio: 0.25,
            phases: 5,
        },
        ..base.clone()
    })
    .unwrap();
    let plan = late.plan().to_vec();
    assert_eq!(plan.len(), 5);
    assert!(plan[0].sigma > z && plan[4].sigma < z, "{plan:?} vs {z}");
    let mut by_hand = cipherflow_dp::distributed::DistributedComposition::default();
    let mut last = 0.0;
    for _ in 0..30 {
        let g = late.next_round().unwrap();
        by_hand
            .record(&round.round_rdp(g.sigma, 0.2).unwrap(), 1)
            .unwrap();
        let e = by_hand.epsilon(1e-5).unwrap();
        assert!(
            (e - g.epsilon_spent).abs() < 1e-12,
            "{e} vs {}",
            g.epsilon_spent
        );
        assert!(e > last && e <= 4.0);
        last = e;
    }
    assert!(last > 3.99, "the budget is spent: {last}");
    assert!(matches!(
        late.next_round(),
        Err(DpError::ScheduleExhausted(30))
    ));
    // A distributed round is one step.
    assert!(Schedule::new(ScheduleConfig {
        steps_per_round: 2,
        ..base
    })
    .is_err());
}
