//! Programs as data: a computation written once — in Python
//! (`cipherflow.mpc`, tf-encrypted's style) or as JSON — and run by each of
//! the three parties, here or in separate processes.
//!
//! A [`Program`] is a list of nodes in order (each names only earlier
//! nodes) and the outputs to reveal, each to the parties it names. It
//! carries no data: each party supplies the inputs it owns when it runs
//! ([`Program::run`]), and nothing else. Before computing, the parties
//! compare the program's digest (SHA-256 of its canonical JSON), so a party
//! that runs a different program — e.g. one that reveals more — is caught
//! before any input is shared.
//!
//! Untrusted programs are validated before anything runs: node references,
//! owners, shapes (each operation's rule), sizes bounded by
//! [`MAX_ELEMENTS`] per matrix and [`MAX_NODES`] nodes, finite constants,
//! unique output names; integer results (argmax) may only be revealed.

use crate::party::{AShare, Party};
use crate::z2k::Z2k;
use crate::MpcError;
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// Largest matrix (entries) a program may name.
pub const MAX_ELEMENTS: usize = 1 << 24;
/// Most nodes in a program.
pub const MAX_NODES: usize = 100_000;
/// Largest program text accepted.
pub const MAX_PROGRAM_BYTES: usize = 64 << 20;
/// The program format's version.
pub const PROGRAM_VERSION: u32 = 1;

/// One step of a program. Every `a` and `b` is the index of an earlier
/// node (the operands, documented here once rather than on each field).
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Node {
    /// A matrix `owner` supplies at run time.
    Input {
        /// The party that owns it.
        owner: usize,
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
    },
    /// A public initial value, secret once combined with secrets.
    Variable {
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
        /// Row-major values.
        values: Vec<f64>,
    },
    /// `a + b`.
    Add { a: usize, b: usize },
    /// `a − b`.
    Sub { a: usize, b: usize },
    /// `a ⊙ b` (element-wise, fixed point).
    Mul { a: usize, b: usize },
    /// `a · b` (matrix product, fixed point).
    Matmul { a: usize, b: usize },
    /// `a + c` for public values: one, one per column (added to every
    /// row), or one per entry.
    AddPublic { a: usize, values: Vec<f64> },
    /// `c · a` for a public real.
    MulPublic { a: usize, c: f64 },
    /// `−a`.
    Neg { a: usize },
    /// `aᵀ`.
    Transpose { a: usize },
    /// Column sums: `rows × cols → 1 × cols`.
    SumRows { a: usize },
    /// Row sums: `rows × cols → rows × 1`.
    SumCols { a: usize },
    /// ReLU (exact).
    Relu { a: usize },
    /// Piecewise-linear sigmoid.
    Sigmoid { a: usize },
    /// Row-wise softmax.
    Softmax { a: usize },
    /// Row-wise argmax: `rows × 1` integers (reveal only).
    Argmax { a: usize },
}

/// A value revealed at the end.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    /// Its name in the results.
    pub name: String,
    /// The node revealed.
    pub node: usize,
    /// The parties that learn it.
    pub to: Vec<usize>,
}

/// A computation of three parties, as data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Program {
    /// [`PROGRAM_VERSION`].
    pub version: u32,
    /// The steps, in order.
    pub nodes: Vec<Node>,
    /// What is revealed, to whom.
    pub outputs: Vec<Output>,
}

fn invalid(m: String) -> MpcError {
    MpcError::Program(m)
}

/// What validation learns about a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Meta {
    rows: usize,
    cols: usize,
    integer: bool,
}

fn checked_len(rows: usize, cols: usize, at: usize) -> Result<usize, MpcError> {
    match rows.checked_mul(cols) {
        Some(n) if n > 0 && n <= MAX_ELEMENTS => Ok(n),
        _ => Err(invalid(format!(
            "node {at}: a {rows}×{cols} matrix is empty or larger than {MAX_ELEMENTS} entries"
        ))),
    }
}

impl Program {
    /// Parses and validates a program's JSON.
    pub fn from_json(text: &str) -> Result<Self, MpcError> {
        if text.len() > MAX_PROGRAM_BYTES {
            return Err(invalid(format!(
                "{} bytes exceed the {MAX_PROGRAM_BYTES}-byte limit",
                text.len()
            )));
        }
        let p: Program =
            serde_json::from_str(text).map_err(|e| invalid(format!("not a program: {e}")))?;
        p.validate()?;
        Ok(p)
    }

    /// The canonical JSON.
    pub fn to_json(&self) -> Result<String, MpcError> {
        serde_json::to_string(self).map_err(|e| invalid(e.to_string()))
    }

    /// SHA-256 of the canonical JSON: what the parties compare.
    pub fn digest(&self) -> Result<[u8; 32], MpcError> {
        Ok(Sha256::digest(self.to_json()?.as_bytes()).into())
    }

    fn validate(&self) -> Result<Vec<Meta>, MpcError> {
        if self.version != PROGRAM_VERSION {
            return Err(invalid(format!(
                "version {} (this build reads {PROGRAM_VERSION})",
                self.version
            )));
        }
        if self.nodes.len() > MAX_NODES {
            return Err(invalid(format!("more than {MAX_NODES} nodes")));
        }
        let mut meta: Vec<Meta> = Vec::with_capacity(self.nodes.len());
        for (at, node) in self.nodes.iter().enumerate() {
            let get = |i: usize| -> Result<Meta, MpcError> {
                let m = meta.get(i).copied().ok_or_else(|| {
                    invalid(format!(
                        "node {at} uses node {i}, which does not precede it"
                    ))
                })?;
                if m.integer {
                    return Err(invalid(format!(
                        "node {at} computes on node {i}, an integer result (argmax): reveal it only"
                    )));
                }
                Ok(m)
            };
            let real = |rows, cols| Meta {
                rows,
                cols,
                integer: false,
            };
            let same = |a: usize, b: usize, what: &str| -> Result<Meta, MpcError> {
                let (x, y) = (get(a)?, get(b)?);
                if (x.rows, x.cols) != (y.rows, y.cols) {
                    return Err(invalid(format!(
                        "node {at} ({what}): {}×{} and {}×{}",
                        x.rows, x.cols, y.rows, y.cols
                    )));
                }
                Ok(x)
            };
            let m = match node {
                Node::Input { owner, rows, cols } => {
                    if *owner >= 3 {
                        return Err(invalid(format!("node {at}: no party {owner}")));
                    }
                    checked_len(*rows, *cols, at)?;
                    real(*rows, *cols)
                }
                Node::Variable { rows, cols, values } => {
                    if checked_len(*rows, *cols, at)? != values.len() {
                        return Err(invalid(format!(
                            "node {at}: {} values for {rows}×{cols}",
                            values.len()
                        )));
                    }
                    if values.iter().any(|v| !v.is_finite()) {
                        return Err(invalid(format!("node {at}: values must be finite")));
                    }
                    real(*rows, *cols)
                }
                Node::Add { a, b } => same(*a, *b, "add")?,
                Node::Sub { a, b } => same(*a, *b, "sub")?,
                Node::Mul { a, b } => same(*a, *b, "mul")?,
                Node::Matmul { a, b } => {
                    let (x, y) = (get(*a)?, get(*b)?);
                    if x.cols != y.rows {
                        return Err(invalid(format!(
                            "node {at} (matmul): {}×{} times {}×{}",
                            x.rows, x.cols, y.rows, y.cols
                        )));
                    }
                    checked_len(x.rows, y.cols, at)?;
                    real(x.rows, y.cols)
                }
                Node::AddPublic { a, values } => {
                    let x = get(*a)?;
                    let n = x.rows * x.cols;
                    if ![1, x.cols, n].contains(&values.len()) {
                        return Err(invalid(format!(
                            "node {at}: {} public values for {}×{} (1, {} or {n})",
                            values.len(),
                            x.rows,
                            x.cols,
                            x.cols
                        )));
                    }
                    if values.iter().any(|v| !v.is_finite()) {
                        return Err(invalid(format!("node {at}: values must be finite")));
                    }
                    x
                }
                Node::MulPublic { a, c } => {
                    if !c.is_finite() {
                        return Err(invalid(format!("node {at}: constant {c}")));
                    }
                    get(*a)?
                }
                Node::Neg { a } | Node::Relu { a } | Node::Sigmoid { a } | Node::Softmax { a } => {
                    get(*a)?
                }
                Node::Transpose { a } => {
                    let x = get(*a)?;
                    real(x.cols, x.rows)
                }
                Node::SumRows { a } => real(1, get(*a)?.cols),
                Node::SumCols { a } => real(get(*a)?.rows, 1),
                Node::Argmax { a } => Meta {
                    rows: get(*a)?.rows,
                    cols: 1,
                    integer: true,
                },
            };
            meta.push(m);
        }
        let mut names = BTreeSet::new();
        for o in &self.outputs {
            if o.node >= meta.len() {
                return Err(invalid(format!("output {:?}: no node {}", o.name, o.node)));
            }
            if o.to.is_empty() || o.to.iter().any(|&t| t >= 3) {
                return Err(invalid(format!(
                    "output {:?}: reveal to one or more of the parties 0, 1, 2",
                    o.name
                )));
            }
            if o.name.is_empty() || o.name.len() > 256 || !names.insert(o.name.as_str()) {
                return Err(invalid(format!(
                    "output names are unique and 1 to 256 bytes: {:?}",
                    o.name
                )));
            }
        }
        Ok(meta)
    }

    /// The inputs `party` supplies: node index → shape.
    pub fn inputs_of(&self, party: usize) -> BTreeMap<usize, (usize, usize)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| match n {
                Node::Input { owner, rows, cols } if *owner == party => Some((i, (*rows, *cols))),
                _ => None,
            })
            .collect()
    }

    /// Runs this party's share of the program: checks the inputs it
    /// supplies (exactly its own, of the declared shapes, finite), checks
    /// that both peers run the same program, computes, and returns the
    /// outputs revealed to this party by name.
    pub fn run<R: Z2k>(
        &self,
        p: &mut Party<R>,
        inputs: &BTreeMap<usize, Array2<f64>>,
    ) -> Result<BTreeMap<String, Array2<f64>>, MpcError> {
        let meta = self.validate()?;
        let mine = self.inputs_of(p.id());
        for (node, value) in inputs {
            match mine.get(node) {
                Some(&(r, c)) if value.dim() == (r, c) => {}
                Some(&(r, c)) => {
                    return Err(invalid(format!(
                        "input {node} is {r}×{c}, got {:?}",
                        value.dim()
                    )))
                }
                None => {
                    return Err(invalid(format!(
                        "node {node} is not an input of party {}",
                        p.id()
                    )))
                }
            }
            if value.iter().any(|v| !v.is_finite()) {
                return Err(invalid(format!("input {node}: values must be finite")));
            }
        }
        if let Some(missing) = mine.keys().find(|k| !inputs.contains_key(k)) {
            return Err(invalid(format!(
                "party {} supplies no value for its input node {missing}",
                p.id()
            )));
        }
        self.agree(p)?;
        // Free each share after its last use.
        let mut last_use = vec![0usize; self.nodes.len()];
        for (at, n) in self.nodes.iter().enumerate() {
            for i in n.operands() {
                if let Some(l) = last_use.get_mut(i) {
                    *l = at;
                }
            }
        }
        let revealed: BTreeSet<usize> = self.outputs.iter().map(|o| o.node).collect();
        let mut vals: Vec<Option<AShare<R>>> = vec![None; self.nodes.len()];
        for (at, node) in self.nodes.iter().enumerate() {
            let v = self.step(p, node, &vals, inputs.get(&at), at)?;
            if let Some(slot) = vals.get_mut(at) {
                *slot = Some(v);
            }
            for i in node.operands() {
                if last_use.get(i) == Some(&at) && !revealed.contains(&i) {
                    if let Some(slot) = vals.get_mut(i) {
                        *slot = None;
                    }
                }
            }
        }
        let mut out = BTreeMap::new();
        for o in &self.outputs {
            let x = vals
                .get(o.node)
                .and_then(Option::as_ref)
                .ok_or_else(|| invalid(format!("output {:?} was not computed", o.name)))?;
            let integer = meta.get(o.node).is_some_and(|m| m.integer);
            let got = if integer {
                p.reveal_int_to(x, &o.to)?.map(|v| {
                    Array2::from_shape_vec(x.shape(), v.iter().map(|&i| i as f64).collect())
                })
            } else {
                p.reveal_to(x, &o.to)?.map(Ok)
            };
            if let Some(a) = got {
                let a = a.map_err(|e| invalid(e.to_string()))?;
                out.insert(o.name.clone(), a);
            }
        }
        Ok(out)
    }

    /// Sends this program's digest to both peers and checks theirs.
    fn agree<R: Z2k>(&self, p: &mut Party<R>) -> Result<(), MpcError> {
        let d = self.digest()?;
        let (next, prev) = (p.next(), p.prev());
        p.send_bytes(next, d.to_vec())?;
        p.send_bytes(prev, d.to_vec())?;
        for peer in [prev, next] {
            if p.recv_bytes(peer)? != d {
                return Err(invalid(format!(
                    "party {peer} runs a different program (digests differ): nothing was shared"
                )));
            }
        }
        Ok(())
    }

    fn step<R: Z2k>(
        &self,
        p: &mut Party<R>,
        node: &Node,
        vals: &[Option<AShare<R>>],
        input: Option<&Array2<f64>>,
        at: usize,
    ) -> Result<AShare<R>, MpcError> {
        let get = |i: usize| -> Result<&AShare<R>, MpcError> {
            vals.get(i)
                .and_then(Option::as_ref)
                .ok_or_else(|| invalid(format!("node {at}: node {i} is not available")))
        };
        Ok(match node {
            Node::Input { owner, .. } => p.private_input(*owner, input)?,
            Node::Variable { rows, cols, values } => {
                let a = Array2::from_shape_vec((*rows, *cols), values.clone())
                    .map_err(|e| invalid(e.to_string()))?;
                p.private_variable(&a)?
            }
            Node::Add { a, b } => p.add(get(*a)?, get(*b)?)?,
            Node::Sub { a, b } => p.sub(get(*a)?, get(*b)?)?,
            Node::Mul { a, b } => {
                let (x, y) = (get(*a)?.clone(), get(*b)?.clone());
                p.mul_fx(&x, &y)?
            }
            Node::Matmul { a, b } => {
                let (x, y) = (get(*a)?.clone(), get(*b)?.clone());
                p.matmul_fx(&x, &y)?
            }
            Node::AddPublic { a, values } => {
                let x = get(*a)?;
                let (rows, cols) = x.shape();
                let full: Vec<f64> = if values.len() == cols && rows > 1 {
                    (0..rows * cols)
                        .map(|i| values.get(i % cols).copied().unwrap_or(0.0))
                        .collect()
                } else {
                    values.clone()
                };
                let enc = p.fixed_point().encode::<R>(&full);
                p.add_public(x, &enc)?
            }
            Node::MulPublic { a, c } => {
                let x = get(*a)?.clone();
                p.mul_public_fx(&x, *c)?
            }
            Node::Neg { a } => {
                let x = get(*a)?;
                let (r, c) = x.shape();
                let zero = p.private_variable(&Array2::zeros((r, c)))?;
                p.sub(&zero, x)?
            }
            Node::Transpose { a } => p.transpose(get(*a)?),
            Node::SumRows { a } => p.sum_cols(get(*a)?),
            Node::SumCols { a } => p.sum_rows(get(*a)?),
            Node::Relu { a } => {
                let x = get(*a)?.clone();
                p.relu(&x)?
            }
            Node::Sigmoid { a } => {
                let x = get(*a)?.clone();
                p.sigmoid(&x)?
            }
            Node::Softmax { a } => {
                let x = get(*a)?.clone();
                p.softmax(&x)?
            }
            Node::Argmax { a } => {
                let x = get(*a)?.clone();
                p.argmax(&x)?
            }
        })
    }
}

impl Node {
    /// The nodes this one reads.
    pub fn operands(&self) -> Vec<usize> {
        match self {
            Node::Input { .. } | Node::Variable { .. } => vec![],
            Node::Add { a, b }
            | Node::Sub { a, b }
            | Node::Mul { a, b }
            | Node::Matmul { a, b } => {
                vec![*a, *b]
            }
            Node::AddPublic { a, .. }
            | Node::MulPublic { a, .. }
            | Node::Neg { a }
            | Node::Transpose { a }
            | Node::SumRows { a }
            | Node::SumCols { a }
            | Node::Relu { a }
            | Node::Sigmoid { a }
            | Node::Softmax { a }
            | Node::Argmax { a } => vec![*a],
        }
    }
}
