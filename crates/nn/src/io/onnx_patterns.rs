//! Subgraphs that exporters write for one PyTorch layer, fused back into
//! one node before import: GELU as opsets before 20 spell it,
//! `Div(x, √2) → Erf → Add(·, 1) → Mul(x, ·) → Mul(·, ½)`, becomes a
//! `Gelu` node (opset 20's own operator, imported the same way); the
//! transposes and squeezes around a `batch_first` LSTM or GRU become one
//! recurrent node; nodes whose outputs nobody reads are dropped.

use super::onnx::{AttributeProto, GraphProto, NodeProto};
use super::onnx_fold::Const;
use std::collections::{HashMap, HashSet};

/// The scalar value of a constant input (an initializer or a `Constant`
/// node's output), if it is one.
fn scalar(consts: &HashMap<String, Vec<f64>>, name: &str) -> Option<f64> {
    match consts.get(name).map(Vec::as_slice) {
        Some([v]) => Some(*v),
        _ => None,
    }
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() <= 1e-4 * b.abs())
}

/// Replaces every GELU subgraph by one `Gelu` node. `consts`: the scalar
/// constants of the graph by name. Nodes that do not form the whole
/// pattern are left as they are (and reported by the importer).
pub(super) fn fuse_gelu(graph: &mut GraphProto, consts: &HashMap<String, Vec<f64>>) {
    let nodes = std::mem::take(&mut graph.node);
    // Positions of the non-Constant nodes, in order.
    let ops: Vec<usize> = (0..nodes.len())
        .filter(|&i| nodes.get(i).is_some_and(|n| n.op_type() != "Constant"))
        .collect();
    let mut skip = vec![false; nodes.len()];
    let mut fused: HashMap<usize, NodeProto> = HashMap::new();
    for w in ops.windows(5) {
        let [a, b, c, d, e] = [w[0], w[1], w[2], w[3], w[4]];
        if skip[a] {
            continue;
        }
        let (Some(div), Some(erf), Some(add), Some(mul), Some(half)) = (
            nodes.get(a),
            nodes.get(b),
            nodes.get(c),
            nodes.get(d),
            nodes.get(e),
        ) else {
            continue;
        };
        let out = |n: &NodeProto| n.output.first().cloned().unwrap_or_default();
        let input = |n: &NodeProto, k: usize| n.input.get(k).cloned().unwrap_or_default();
        let x = input(div, 0);
        let ok = div.op_type() == "Div"
            && close(scalar(consts, &input(div, 1)), std::f64::consts::SQRT_2)
            && erf.op_type() == "Erf"
            && input(erf, 0) == out(div)
            && add.op_type() == "Add"
            && input(add, 0) == out(erf)
            && close(scalar(consts, &input(add, 1)), 1.0)
            && mul.op_type() == "Mul"
            && ((input(mul, 0) == x && input(mul, 1) == out(add))
                || (input(mul, 1) == x && input(mul, 0) == out(add)))
            && half.op_type() == "Mul"
            && input(half, 0) == out(mul)
            && close(scalar(consts, &input(half, 1)), 0.5);
        if !ok {
            continue;
        }
        let g = NodeProto {
            op_type: Some("Gelu".into()),
            name: Some(format!("{} (GELU)", div.name())),
            input: vec![x],
            output: vec![out(half)],
            ..NodeProto::default()
        };
        fused.insert(a, g);
        for i in [a, b, c, d, e] {
            skip[i] = true;
        }
    }
    graph.node = nodes
        .into_iter()
        .enumerate()
        .filter_map(|(i, n)| match fused.remove(&i) {
            Some(g) => Some(g),
            None if skip.get(i).copied().unwrap_or(false) => None,
            None => Some(n),
        })
        .collect();
}

/// The op type of the node [`fuse_recurrent`] writes (in cipherflow's own
/// domain, so no real ONNX operator is shadowed).
pub(super) const FUSED_RECURRENT: &str = "CipherflowRecurrent";

fn ints_of(n: &NodeProto, k: usize, name: &str, consts: &HashMap<String, Const>) -> Vec<i64> {
    match n.input.get(k).and_then(|s| consts.get(s)) {
        Some((_, v)) => v.iter().map(|&x| x as i64).collect(),
        None => n
            .attribute
            .iter()
            .find(|a| a.name() == name)
            .map(|a| a.ints.clone())
            .unwrap_or_default(),
    }
}

fn is_transpose_102(n: &NodeProto) -> bool {
    n.op_type() == "Transpose"
        && n.attribute
            .iter()
            .find(|a| a.name() == "perm")
            .is_some_and(|a| a.ints == [1, 0, 2])
}

/// Whether the named value is zero: absent, a zero constant, or a
/// `ConstantOfShape` with a zero (or no) value.
fn is_zero_state(
    name: Option<&String>,
    producers: &HashMap<&str, &NodeProto>,
    consts: &HashMap<String, Const>,
) -> bool {
    let Some(name) = name.filter(|s| !s.is_empty()) else {
        return true;
    };
    if let Some((_, v)) = consts.get(name) {
        return v.iter().all(|&x| x == 0.0);
    }
    producers.get(name.as_str()).is_some_and(|p| {
        p.op_type() == "ConstantOfShape"
            && match p
                .attribute
                .iter()
                .find(|a| a.name() == "value")
                .and_then(|a| a.t.as_ref())
            {
                None => true,
                Some(t) => {
                    super::onnx::tensor_values(t).is_ok_and(|(_, v)| v.iter().all(|&x| x == 0.0))
                }
            }
    })
}

/// Replaces each LSTM/GRU that PyTorch exported for a `batch_first`
/// layer by one [`FUSED_RECURRENT`] node from the batch-major input to
/// the batch-major output: `Transpose(1,0,2) → LSTM/GRU`, then either
/// `Y → Squeeze(1) → Transpose(1,0,2)` (every step, optionally followed
/// by `Gather(axis 1)` of one step) or `Y_h → Gather(axis 0)|Squeeze(0)`
/// (the last step). Zero initial states only (what PyTorch writes when
/// none is passed). Layers that do not match stay as they are and are
/// reported by the importer; the nodes computing the zero initial state
/// are removed afterwards by [`remove_dead`].
pub(super) fn fuse_recurrent(graph: &mut GraphProto, consts: &HashMap<String, Const>) {
    loop {
        let Some((remove, mut inserts)) = find_recurrent(graph, consts) else {
            return;
        };
        let nodes = std::mem::take(&mut graph.node);
        let mut kept = Vec::with_capacity(nodes.len() + inserts.len());
        for (i, n) in nodes.into_iter().enumerate() {
            let mut here: Vec<NodeProto> = Vec::new();
            inserts.retain(|(at, node)| {
                if *at == i {
                    here.push(node.clone());
                    false
                } else {
                    true
                }
            });
            kept.extend(here);
            if !remove.contains(&i) {
                kept.push(n);
            }
        }
        graph.node = kept;
    }
}

/// One recurrent pattern: the node positions to remove, and the nodes to
/// put in their place (the fused node where the recurrent node was).
type Rewrite = (Vec<usize>, Vec<(usize, NodeProto)>);

fn find_recurrent(graph: &GraphProto, consts: &HashMap<String, Const>) -> Option<Rewrite> {
    let nodes = &graph.node;
    let mut producers: HashMap<&str, &NodeProto> = HashMap::new();
    let mut position: HashMap<&str, usize> = HashMap::new();
    let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for o in &n.output {
            producers.insert(o.as_str(), n);
            position.insert(o.as_str(), i);
        }
        for inp in &n.input {
            consumers.entry(inp.as_str()).or_default().push(i);
        }
    }
    let only_consumer = |name: &str| -> Option<usize> {
        match consumers.get(name).map(Vec::as_slice) {
            Some([c]) if !graph.output.iter().any(|o| o.name() == name) => Some(*c),
            _ => None,
        }
    };
    let unused = |name: &str| name.is_empty() || !consumers.contains_key(name);
    for (r, rnn) in nodes.iter().enumerate() {
        let cell = match rnn.op_type() {
            "LSTM" => "LSTM",
            "GRU" => "GRU",
            _ => continue,
        };
        let attr = |name: &str| rnn.attribute.iter().find(|a| a.name() == name);
        let plain = attr("direction").is_none_or(|a| a.s() == b"forward")
            && attr("layout").is_none_or(|a| a.i() == 0)
            && attr("activations").is_none()
            && attr("clip").is_none()
            && attr("input_forget").is_none_or(|a| a.i() == 0)
            && (cell == "LSTM" || attr("linear_before_reset").is_some_and(|a| a.i() == 1))
            && rnn.input.get(4).is_none_or(String::is_empty)
            && rnn.input.get(7).is_none_or(String::is_empty)
            && is_zero_state(rnn.input.get(5), &producers, consts)
            && is_zero_state(rnn.input.get(6), &producers, consts);
        if !plain {
            continue;
        }
        let Some(x) = rnn.input.first() else { continue };
        let Some(&t_in) = position.get(x.as_str()) else {
            continue;
        };
        let tin = nodes.get(t_in)?;
        if !is_transpose_102(tin) || only_consumer(x) != Some(r) {
            continue;
        }
        let data = tin.input.first()?.clone();
        let y = rnn.output.first().cloned().unwrap_or_default();
        let y_h = rnn.output.get(1).cloned().unwrap_or_default();
        let y_c = rnn.output.get(2).cloned().unwrap_or_default();
        if !unused(&y_c) {
            continue;
        }
        let mut remove = vec![t_in, r];
        let mut inserts: Vec<(usize, NodeProto)> = Vec::new();
        let mut sequence = false;
        let mut step: Option<i64> = None;
        let out;
        if unused(&y_h) && !unused(&y) {
            let Some(sq) = only_consumer(&y) else {
                continue;
            };
            let squeeze = nodes.get(sq)?;
            if squeeze.op_type() != "Squeeze" || ints_of(squeeze, 1, "axes", consts) != [1] {
                continue;
            }
            let s_out = squeeze.output.first()?.clone();
            remove.push(sq);
            // The time-major steps feed PyTorch's Transpose back to batch
            // major and, when layers are stacked, the next LSTM/GRU
            // directly (the exporter cancels that layer's own Transpose).
            let users = consumers.get(s_out.as_str()).cloned().unwrap_or_default();
            let back = users
                .iter()
                .copied()
                .find(|&c| nodes.get(c).is_some_and(is_transpose_102));
            let b_out = match back.and_then(|b| nodes.get(b)) {
                Some(t) => t.output.first()?.clone(),
                None => format!("{s_out} (batch first)"),
            };
            if let Some(b) = back {
                remove.push(b);
            }
            let time_major_users = users.iter().any(|&c| Some(c) != back);
            let gather = only_consumer(&b_out)
                .filter(|_| !time_major_users)
                .and_then(|g| nodes.get(g).map(|n| (g, n)))
                .filter(|(_, n)| {
                    n.op_type() == "Gather"
                        && n.attribute
                            .iter()
                            .find(|a| a.name() == "axis")
                            .is_some_and(|a| a.i() == 1)
                });
            match gather.and_then(|(g, n)| {
                let idx = consts.get(n.input.get(1)?)?;
                match idx {
                    (s, v) if s.is_empty() && v.len() == 1 => {
                        Some((g, v.first().copied()? as i64, n.output.first()?.clone()))
                    }
                    _ => None,
                }
            }) {
                Some((g, i, o)) => {
                    remove.push(g);
                    step = Some(i);
                    out = o;
                }
                None => {
                    sequence = true;
                    out = b_out.clone();
                }
            }
            if time_major_users {
                // Give the next layer its time-major input back, as a
                // Transpose of the batch-major output (fused in turn).
                inserts.push((
                    sq,
                    NodeProto {
                        op_type: Some("Transpose".into()),
                        name: Some(format!("{} (time major)", rnn.name())),
                        input: vec![b_out],
                        output: vec![s_out],
                        attribute: vec![ints_attribute("perm", &[1, 0, 2])],
                        ..NodeProto::default()
                    },
                ));
            }
        } else if unused(&y) && !unused(&y_h) {
            let Some(g) = only_consumer(&y_h) else {
                continue;
            };
            let n = nodes.get(g)?;
            let ok = match n.op_type() {
                "Squeeze" => ints_of(n, 1, "axes", consts) == [0],
                "Gather" => {
                    n.attribute
                        .iter()
                        .find(|a| a.name() == "axis")
                        .is_none_or(|a| a.i() == 0)
                        && n.input
                            .get(1)
                            .and_then(|i| consts.get(i))
                            .is_some_and(|(s, v)| {
                                s.is_empty() && (v.as_slice() == [0.0] || v.as_slice() == [-1.0])
                            })
                }
                _ => false,
            };
            if !ok {
                continue;
            }
            remove.push(g);
            out = n.output.first()?.clone();
        } else {
            continue;
        }
        let mut attributes = vec![
            string_attr("cell", cell),
            int_attribute("sequence", i64::from(sequence)),
        ];
        attributes.extend(attr("hidden_size").cloned());
        if let Some(i) = step {
            attributes.push(int_attribute("step", i));
        }
        let fused = NodeProto {
            op_type: Some(FUSED_RECURRENT.into()),
            domain: Some("ai.cipherflow".into()),
            name: Some(format!("{} ({cell}, batch first)", rnn.name())),
            input: std::iter::once(data)
                .chain(rnn.input.iter().skip(1).take(3).cloned())
                .collect(),
            output: vec![out],
            attribute: attributes,
        };
        inserts.push((r, fused));
        return Some((remove, inserts));
    }
    None
}

fn string_attr(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        s: Some(v.as_bytes().to_vec()),
        r#type: Some(3),
        ..AttributeProto::default()
    }
}

fn ints_attribute(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        ints: v.to_vec(),
        r#type: Some(7),
        ..AttributeProto::default()
    }
}

fn int_attribute(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        i: Some(v),
        r#type: Some(2),
        ..AttributeProto::default()
    }
}

/// Removes nodes none of whose outputs is used (by a node or as a graph
/// output), repeatedly: what is left of a shape computation once the node
/// it fed was fused.
pub(super) fn remove_dead(graph: &mut GraphProto) {
    loop {
        let used: HashSet<&str> = graph
            .node
            .iter()
            .flat_map(|n| n.input.iter().map(String::as_str))
            .chain(graph.output.iter().map(|o| o.name()))
            .collect();
        let dead: Vec<bool> = graph
            .node
            .iter()
            .map(|n| !n.output.iter().any(|o| used.contains(o.as_str())))
            .collect();
        if !dead.contains(&true) {
            return;
        }
        let mut i = 0;
        graph.node.retain(|_| {
            let keep = !dead.get(i).copied().unwrap_or(false);
            i += 1;
            keep
        });
    }
}
