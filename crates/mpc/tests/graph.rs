//! Programs as data (`cipherflow_mpc::Program`): every operation against
//! plaintext, outputs only to the named parties, a party running another
//! program caught before any input is shared, inputs checked, hostile
//! program text refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_mpc::ndarray::{array, Array2};
use cipherflow_mpc::{run_local, FixedPoint, MpcError, Network, Node, Output, Party, Program};
use std::collections::BTreeMap;

fn prog(nodes: Vec<Node>, outputs: Vec<Output>) -> Program {
    Program {
        version: 1,
        nodes,
        outputs,
    }
}

fn out(name: &str, node: usize, to: &[usize]) -> Output {
    Output {
        name: name.into(),
        node,
        to: to.to_vec(),
    }
}

/// Each party's inputs.
type Inputs = [BTreeMap<usize, Array2<f64>>; 3];

/// Runs `program` with each party's inputs; returns each party's outputs.
fn run(program: &Program, inputs: Inputs) -> Result<Vec<BTreeMap<String, Array2<f64>>>, MpcError> {
    let r = run_local::<u64, _, _>(
        Network::InProcess,
        FixedPoint::default(),
        |p: &mut Party| program.run(p, &inputs[p.id()]),
    )?;
    Ok(r.outputs)
}

fn close(a: &Array2<f64>, b: &Array2<f64>, tol: f64) {
    assert_eq!(a.dim(), b.dim());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= tol, "{a} vs {b}");
    }
}

#[test]
fn private_prediction_reveals_only_to_the_client() {
    // Party 0 owns the weights, party 1 the input; y = sigmoid(x·W + b).
    let w = array![[0.5, -1.0, 0.25], [2.0, 0.5, -0.75]];
    let x = array![[1.0, 3.0]];
    let b = vec![0.1, -0.2, 0.3];
    let p = prog(
        vec![
            Node::Input {
                owner: 0,
                rows: 2,
                cols: 3,
            },
            Node::Input {
                owner: 1,
                rows: 1,
                cols: 2,
            },
            Node::Matmul { a: 1, b: 0 },
            Node::AddPublic {
                a: 2,
                values: b.clone(),
            },
            Node::Sigmoid { a: 3 },
            Node::Argmax { a: 3 },
        ],
        vec![out("probs", 4, &[1]), out("class", 5, &[1])],
    );
    let outs = run(
        &p,
        [
            BTreeMap::from([(0, w.clone())]),
            BTreeMap::from([(1, x.clone())]),
            BTreeMap::new(),
        ],
    )
    .unwrap();
    assert!(
        outs[0].is_empty() && outs[2].is_empty(),
        "only the client learns"
    );
    let z = x.dot(&w) + &Array2::from_shape_vec((1, 3), b).unwrap();
    let sig = z.mapv(|v| 1.0 / (1.0 + (-v).exp()));
    close(&outs[1]["probs"], &sig, 0.03);
    assert_eq!(outs[1]["class"], array![[0.0]]);
}

#[test]
fn every_operation_matches_plaintext() {
    let a = array![[1.5, -2.0], [0.25, 3.0], [-1.0, 0.5]];
    let c = array![[0.5, 1.0], [-2.0, 0.75], [1.25, -0.5]];
    let nodes = vec![
        Node::Input {
            owner: 0,
            rows: 3,
            cols: 2,
        }, // 0: a
        Node::Input {
            owner: 2,
            rows: 3,
            cols: 2,
        }, // 1: c
        Node::Add { a: 0, b: 1 },    // 2
        Node::Sub { a: 0, b: 1 },    // 3
        Node::Mul { a: 0, b: 1 },    // 4
        Node::Transpose { a: 1 },    // 5: cᵀ
        Node::Matmul { a: 0, b: 5 }, // 6: a·cᵀ
        Node::AddPublic {
            a: 0,
            values: vec![1.0],
        }, // 7
        Node::AddPublic {
            a: 0,
            values: vec![1.0, 2.0],
        }, // 8: per column
        Node::MulPublic { a: 0, c: -0.5 }, // 9
        Node::Neg { a: 0 },          // 10
        Node::SumRows { a: 0 },      // 11: 1×2
        Node::SumCols { a: 0 },      // 12: 3×1
        Node::Relu { a: 0 },         // 13
        Node::Softmax { a: 0 },      // 14
        Node::Variable {
            rows: 1,
            cols: 2,
            values: vec![2.0, -3.0],
        }, // 15
        Node::AddPublic {
            a: 0,
            values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        }, // 16: per entry
    ];
    let names = [
        (2, "add"),
        (3, "sub"),
        (4, "mul"),
        (6, "matmul"),
        (7, "add1"),
        (8, "addcol"),
        (9, "mulpub"),
        (10, "neg"),
        (11, "sumrows"),
        (12, "sumcols"),
        (13, "relu"),
        (14, "softmax"),
        (15, "variable"),
        (16, "addall"),
        // An input revealed while later nodes still use it.
        (0, "a"),
    ];
    let outputs = names.iter().map(|&(n, s)| out(s, n, &[0, 1, 2])).collect();
    let p = prog(nodes, outputs);
    let outs = run(
        &p,
        [
            BTreeMap::from([(0, a.clone())]),
            BTreeMap::new(),
            BTreeMap::from([(1, c.clone())]),
        ],
    )
    .unwrap();
    let soft = {
        let mut s = a.mapv(f64::exp);
        for mut row in s.rows_mut() {
            let t: f64 = row.sum();
            row.mapv_inplace(|v| v / t);
        }
        s
    };
    let want: Vec<(&str, Array2<f64>)> = vec![
        ("add", &a + &c),
        ("sub", &a - &c),
        ("mul", &a * &c),
        ("matmul", a.dot(&c.t())),
        ("add1", a.mapv(|v| v + 1.0)),
        ("addcol", &a + &array![[1.0, 2.0]]),
        ("mulpub", a.mapv(|v| -0.5 * v)),
        ("neg", a.mapv(|v| -v)),
        (
            "sumrows",
            a.sum_axis(cipherflow_mpc::ndarray::Axis(0))
                .insert_axis(cipherflow_mpc::ndarray::Axis(0)),
        ),
        (
            "sumcols",
            a.sum_axis(cipherflow_mpc::ndarray::Axis(1))
                .insert_axis(cipherflow_mpc::ndarray::Axis(1)),
        ),
        ("relu", a.mapv(|v| v.max(0.0))),
        ("softmax", soft),
        ("variable", array![[2.0, -3.0]]),
        ("addall", &a + &array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]),
        ("a", a.clone()),
    ];
    for party in &outs {
        for (name, w) in &want {
            close(&party[*name], w, 2e-2);
        }
    }
}

#[test]
fn a_party_running_another_program_is_caught_before_sharing() {
    let honest = prog(
        vec![
            Node::Input {
                owner: 0,
                rows: 1,
                cols: 2,
            },
            Node::Input {
                owner: 1,
                rows: 2,
                cols: 1,
            },
            Node::Matmul { a: 0, b: 1 },
        ],
        vec![out("y", 2, &[1])],
    );
    // Party 2 would like to learn party 0's input.
    let mut greedy = honest.clone();
    greedy.outputs.push(out("w", 0, &[2]));
    let inputs = [
        BTreeMap::from([(0, array![[1.0, 2.0]])]),
        BTreeMap::from([(1, array![[3.0], [4.0]])]),
        BTreeMap::new(),
    ];
    let r = run_local::<u64, _, _>(
        Network::InProcess,
        FixedPoint::default(),
        |p: &mut Party| {
            let program = if p.id() == 2 { &greedy } else { &honest };
            program.run(p, &inputs[p.id()])
        },
    );
    match r {
        Err(MpcError::Program(m)) => assert!(m.contains("different program"), "{m}"),
        other => panic!("{other:?}"),
    }
    // With the same program, the result is revealed to party 1 only.
    let outs = run(&honest, inputs.clone()).unwrap();
    close(&outs[1]["y"], &array![[11.0]], 1e-3);
}

#[test]
fn inputs_are_checked_before_anything_is_shared() {
    let p = prog(
        vec![Node::Input {
            owner: 0,
            rows: 2,
            cols: 2,
        }],
        vec![out("x", 0, &[1])],
    );
    let cases: Vec<(Inputs, &str)> = vec![
        (
            [BTreeMap::new(), BTreeMap::new(), BTreeMap::new()],
            "supplies no value",
        ),
        (
            [
                BTreeMap::from([(0, Array2::zeros((3, 2)))]),
                BTreeMap::new(),
                BTreeMap::new(),
            ],
            "is 2×2",
        ),
        (
            [
                BTreeMap::from([(0, Array2::zeros((2, 2)))]),
                BTreeMap::from([(0, Array2::zeros((2, 2)))]),
                BTreeMap::new(),
            ],
            "not an input of party 1",
        ),
        (
            [
                BTreeMap::from([(0, array![[f64::NAN, 0.0], [0.0, 0.0]])]),
                BTreeMap::new(),
                BTreeMap::new(),
            ],
            "finite",
        ),
    ];
    for (inputs, needle) in cases {
        let r = run_local::<u64, _, _>(
            Network::InProcess,
            FixedPoint::default(),
            |party: &mut Party| p.run(party, &inputs[party.id()]),
        );
        match r {
            Err(MpcError::Program(m)) => assert!(m.contains(needle), "{needle}: {m}"),
            other => panic!("{needle}: {other:?}"),
        }
    }
}

#[test]
fn hostile_program_text_is_refused() {
    let good = prog(
        vec![
            Node::Input {
                owner: 0,
                rows: 2,
                cols: 2,
            },
            Node::Argmax { a: 0 },
        ],
        vec![out("k", 1, &[0])],
    );
    let text = good.to_json().unwrap();
    assert_eq!(Program::from_json(&text).unwrap(), good);
    assert_eq!(
        good.digest().unwrap(),
        Program::from_json(&text).unwrap().digest().unwrap()
    );
    let bad = [
        (
            r#"{"version":1,"nodes":[{"op":"add","a":0,"b":1}],"outputs":[]}"#,
            "does not precede",
        ),
        (
            r#"{"version":1,"nodes":[{"op":"input","owner":3,"rows":1,"cols":1}],"outputs":[]}"#,
            "no party 3",
        ),
        (
            r#"{"version":1,"nodes":[{"op":"input","owner":0,"rows":4294967296,"cols":4294967296}],"outputs":[]}"#,
            "larger than",
        ),
        (
            r#"{"version":1,"nodes":[{"op":"input","owner":0,"rows":0,"cols":1}],"outputs":[]}"#,
            "empty",
        ),
        (
            r#"{"version":1,"nodes":[{"op":"input","owner":0,"rows":2,"cols":2},{"op":"argmax","a":0},{"op":"relu","a":1}],"outputs":[]}"#,
            "integer result",
        ),
        (
            r#"{"version":1,"nodes":[{"op":"input","owner":0,"rows":1,"cols":1}],"outputs":[{"name":"x","node":0,"to":[1]},{"name":"x","node":0,"to":[2]}]}"#,
            "unique",
        ),
        (
            r#"{"version":1,"nodes":[],"outputs":[{"name":"x","node":0,"to":[1]}]}"#,
            "no node 0",
        ),
        (
            r#"{"version":1,"nodes":[{"op":"input","owner":0,"rows":1,"cols":1}],"outputs":[{"name":"x","node":0,"to":[]}]}"#,
            "reveal to",
        ),
        (
            r#"{"version":1,"nodes":[{"op":"input","owner":0,"rows":1,"cols":2},{"op":"input","owner":1,"rows":1,"cols":2},{"op":"matmul","a":0,"b":1}],"outputs":[]}"#,
            "matmul",
        ),
        (
            r#"{"version":1,"nodes":[{"op":"variable","rows":1,"cols":2,"values":[1.0]}],"outputs":[]}"#,
            "1 values",
        ),
        (r#"{"version":2,"nodes":[],"outputs":[]}"#, "version 2"),
        (
            r#"{"version":1,"nodes":[{"op":"fly","a":0}],"outputs":[]}"#,
            "not a program",
        ),
        (
            r#"{"version":1,"nodes":[],"outputs":[],"extra":1}"#,
            "not a program",
        ),
    ];
    for (text, needle) in bad {
        match Program::from_json(text) {
            Err(MpcError::Program(m)) => assert!(m.contains(needle), "{needle}: {m}"),
            other => panic!("{needle}: {other:?}"),
        }
    }
    let huge = " ".repeat(cipherflow_mpc::MAX_NODES * 700);
    assert!(Program::from_json(&huge).is_err());
}

#[test]
fn limits_hold_at_their_boundaries() {
    // Text: the limit itself is accepted (then parsed), one byte more is not.
    let valid = r#"{"version":1,"nodes":[],"outputs":[]}"#;
    let pad = " ".repeat(cipherflow_mpc::MAX_PROGRAM_BYTES - valid.len());
    let at_limit = format!("{valid}{pad}");
    assert!(Program::from_json(&at_limit).is_ok());
    match Program::from_json(&format!("{at_limit} ")) {
        Err(MpcError::Program(m)) => assert!(m.contains("byte limit"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Nodes: MAX_NODES are accepted, one more is not.
    let node = Node::Variable {
        rows: 1,
        cols: 1,
        values: vec![0.0],
    };
    let mut p = prog(vec![node.clone(); cipherflow_mpc::MAX_NODES], vec![]);
    assert!(Program::from_json(&p.to_json().unwrap()).is_ok());
    p.nodes.push(node);
    match Program::from_json(&p.to_json().unwrap()) {
        Err(MpcError::Program(m)) => assert!(m.contains("more than"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Output names: 1 to 256 bytes.
    let input = Node::Input {
        owner: 0,
        rows: 1,
        cols: 1,
    };
    for (name, ok) in [
        ("x".repeat(256), true),
        ("x".repeat(257), false),
        (String::new(), false),
    ] {
        let p = prog(vec![input.clone()], vec![out(&name, 0, &[0])]);
        assert_eq!(
            Program::from_json(&p.to_json().unwrap()).is_ok(),
            ok,
            "{}",
            name.len()
        );
    }
}
