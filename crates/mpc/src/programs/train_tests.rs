//! Lying or mismatched parties in private training: what each sends is
//! checked by the others before any training step.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::{run_local, FixedPoint, Network};
use cipherflow_nn::spec::ModelSpec;

fn mlp() -> Sequential {
    ModelSpec::parse(r#"{"input": [4], "layers": [{"type": "dense", "units": 2}]}"#)
        .unwrap()
        .build(1)
        .unwrap()
}

fn shard(rows: usize, cols: usize, labels: bool) -> Shard {
    Shard {
        x: Array2::from_shape_fn((rows, cols), |(i, j)| ((i + j) % 3) as f32),
        labels: labels.then(|| (0..rows).map(|i| i % 2).collect()),
    }
}

fn cfg() -> NnTrainConfig {
    NnTrainConfig {
        epochs: 1,
        batch_size: 4,
        ..NnTrainConfig::default()
    }
}

/// Runs a training where party `i` brings `shards[i]` and `cfgs[i]`;
/// returns each party's error message ("" where it succeeded).
fn run(split: Split, shards: [Option<Shard>; 2], cfgs: [NnTrainConfig; 3]) -> Vec<String> {
    let model = mlp();
    let r = run_local::<u128, _, _>(
        Network::InProcess,
        FixedPoint::new::<u128>(20).unwrap(),
        |p| {
            let me = p.id();
            let s = shards.get(me).and_then(Option::as_ref);
            let m = (me == OWNER_A).then_some((&model, None));
            Ok(match private_train(p, split, m, s, &cfgs[me]) {
                Ok(_) => String::new(),
                Err(e) => e.to_string(),
            })
        },
    );
    match r {
        Ok(run) => run.outputs,
        Err(e) => vec![e.to_string()],
    }
}

#[test]
fn honest_owners_train() {
    let out = run(
        Split::Rows,
        [Some(shard(8, 4, true)), Some(shard(8, 4, true))],
        [cfg(), cfg(), cfg()],
    );
    assert!(out.iter().all(String::is_empty), "{out:?}");
}

#[test]
fn a_party_with_other_settings_is_named_before_data_moves() {
    let mut other = cfg();
    other.lr = 0.5;
    let out = run(
        Split::Rows,
        [Some(shard(8, 4, true)), Some(shard(8, 4, true))],
        [cfg(), other, cfg()],
    );
    // Both honest parties name party 1, whichever finishes first (party
    // 1 may close its end before the others have sent); party 1 learns
    // that it is the odd one out.
    for honest in [0, 2] {
        assert!(
            out[honest].contains("party 1 trains with other settings"),
            "{out:?}"
        );
    }
    assert!(
        out[1].contains("this party 1 was started with other settings"),
        "{out:?}"
    );
}

#[test]
fn three_different_settings_are_all_reported() {
    let mut b = cfg();
    b.lr = 0.5;
    let mut c = cfg();
    c.seed = 7;
    let out = run(
        Split::Rows,
        [Some(shard(8, 4, true)), Some(shard(8, 4, true))],
        [cfg(), b, c],
    );
    assert!(
        out.iter().all(|e| e.contains("all three parties")),
        "{out:?}"
    );
}

#[test]
fn an_owner_with_data_of_the_wrong_width_is_caught() {
    // Rows split: owner B's examples have 3 values, the model takes 4.
    let out = run(
        Split::Rows,
        [Some(shard(8, 4, true)), Some(shard(8, 3, true))],
        [cfg(), cfg(), cfg()],
    );
    assert!(out[0].contains("malformed message from party 1"), "{out:?}");
    // Columns split: owner B holds fewer examples than owner A, or too
    // few values of each.
    for b in [shard(7, 2, true), shard(8, 1, true)] {
        let out = run(
            Split::Columns,
            [Some(shard(8, 2, false)), Some(b)],
            [cfg(), cfg(), cfg()],
        );
        assert!(
            out[0].contains("malformed message from party 1") && out[0].contains("columns"),
            "{out:?}"
        );
    }
}

#[test]
fn settings_over_the_bound_are_refused_before_comparison() {
    for (len, want) in [
        (MAX_SETTINGS_BYTES + 1, "over 4 KiB"),
        (MAX_SETTINGS_BYTES, "other settings"),
    ] {
        let r = run_local::<u128, _, _>(
            Network::InProcess,
            FixedPoint::new::<u128>(20).unwrap(),
            |p| {
                if p.id() == 1 {
                    p.with_op("settings", |p| {
                        p.round();
                        p.send_bytes(2, vec![b'x'; len])?;
                        p.send_bytes(0, vec![b'x'; len])?;
                        // Stays until the others have sent theirs.
                        let _ = p.recv_bytes(2);
                        let _ = p.recv_bytes(0);
                        Ok(())
                    })?;
                    return Ok(String::new());
                }
                Ok(match agree(p, Split::Rows, &cfg()) {
                    Ok(()) => String::new(),
                    Err(e) => e.to_string(),
                })
            },
        )
        .unwrap();
        assert!(r.outputs[0].contains(want), "{len}: {:?}", r.outputs);
    }
}

#[test]
fn only_a_final_softmax_is_trainable() {
    let spec = |layers: &str| {
        ModelSpec::parse(&format!(r#"{{"input": [4], "layers": [{layers}]}}"#))
            .unwrap()
            .build(0)
            .unwrap()
    };
    check_trainable(&spec(
        r#"{"type": "dense", "units": 2}, {"type": "softmax"}"#,
    ))
    .unwrap();
    let e = check_trainable(&spec(
        r#"{"type": "dense", "units": 3}, {"type": "softmax"}, {"type": "dense", "units": 2}"#,
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("layer 1 (Softmax"), "{e}");
}
