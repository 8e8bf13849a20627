//! Executing a [`Schedule`] on ciphertexts with exact scale bookkeeping.
//!
//! Basis powers: `T_{2k} = 2T_k² − 1` and `T_{j+k} = 2T_jT_k − T_{j−k}`,
//! `T_i` at `⌈log2 i⌉` levels below `u`; the subtracted `T_{j−k}` is
//! multiplied by the integer closest to `scale(T_jT_k) / scale(T_{j−k})`
//! before the rescale, so it costs no level. Every node is produced at the
//! exact scale its parent asks for: a leaf rounds its constants at
//! `target · q_w / scale(T_i)` (one pass, one rescale); a split asks its
//! quotient for `target · q_w / scale(T_g)`, so the rescaled product
//! `q · T_g` lands on `target` and adds to the remainder without any
//! fix-up.

use super::schedule::{factors, Node, Schedule};
use crate::TensorError;
use cipherflow_ckks::{Ciphertext, CkksError, Evaluator, RelinKey};
use std::collections::BTreeMap;

/// What one encrypted polynomial evaluation cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvalStats {
    /// Levels consumed (input level − output level).
    pub levels: usize,
    /// Ciphertext × ciphertext products (each relinearized).
    pub products: usize,
}

/// A node's value: a plain constant or a ciphertext.
enum Val {
    Const(f64),
    Ct(Ciphertext),
}

pub(super) struct Exec<'a> {
    eval: &'a Evaluator,
    rlk: &'a RelinKey,
    top: usize,
    pows: BTreeMap<usize, Ciphertext>,
    pub(super) products: usize,
}

fn q_at(eval: &Evaluator, level: usize) -> Result<f64, TensorError> {
    Ok(*eval
        .params()
        .q()
        .get(level)
        .ok_or(TensorError::Ckks(CkksError::InvalidLevel(level)))? as f64)
}

impl<'a> Exec<'a> {
    /// Computes every basis power of `s` from `u`.
    pub(super) fn new(
        eval: &'a Evaluator,
        rlk: &'a RelinKey,
        u: Ciphertext,
        s: &Schedule,
    ) -> Result<Self, TensorError> {
        let mut ex = Self {
            eval,
            rlk,
            top: u.level(),
            pows: BTreeMap::new(),
            products: 0,
        };
        ex.pows.insert(1, u);
        for &i in &s.powers {
            let t = ex.compute_power(i)?;
            ex.pows.insert(i, t);
        }
        Ok(ex)
    }

    fn pow(&self, i: usize) -> Result<&Ciphertext, TensorError> {
        self.pows
            .get(&i)
            .ok_or_else(|| TensorError::Invalid(format!("basis power T_{i} not computed")))
    }

    fn at_level(&self, ct: &Ciphertext, level: usize) -> Result<Ciphertext, TensorError> {
        Ok(if ct.level() > level {
            self.eval.drop_to_level(ct, level)?
        } else {
            ct.clone()
        })
    }

    fn compute_power(&mut self, i: usize) -> Result<Ciphertext, TensorError> {
        let (j, k, m) = factors(i);
        let (tj, tk) = (self.pow(j)?, self.pow(k)?);
        let lvl = tj.level().min(tk.level());
        let p =
            self.eval
                .mul_relin(&self.at_level(tj, lvl)?, &self.at_level(tk, lvl)?, self.rlk)?;
        self.products += 1;
        let p2 = self.eval.add(&p, &p)?;
        let t = if m == 0 {
            self.eval.add_const(&p2, -1.0)?
        } else {
            let tm = self.pow(m)?;
            let ql = q_at(self.eval, lvl)?;
            let sub = self
                .eval
                .linear_combination(&[tm], &[1.0], lvl, p.scale() / ql)?;
            self.eval.sub(&p2, &sub)?
        };
        Ok(self.eval.rescale(&t)?)
    }

    /// Evaluates `node` `budget` levels below `u`, at exactly `scale`.
    fn node(&mut self, node: &Node, budget: usize, scale: f64) -> Result<Val, TensorError> {
        let out = self
            .top
            .checked_sub(budget)
            .ok_or(TensorError::Ckks(CkksError::NoLevelLeft(self.top)))?;
        let w = out + 1;
        match node {
            Node::Leaf(c) => {
                let c0 = c.first().copied().unwrap_or(0.0);
                let mut cts = Vec::new();
                let mut ws = Vec::new();
                for (i, &ci) in c.iter().enumerate().skip(1) {
                    if ci != 0.0 {
                        cts.push(self.pow(i)?);
                        ws.push(ci);
                    }
                }
                if cts.is_empty() {
                    return Ok(Val::Const(c0));
                }
                let acc = self.eval.linear_combination(&cts, &ws, w, scale)?;
                let acc = self.eval.add_const(&acc, c0)?;
                Ok(Val::Ct(self.eval.rescale(&acc)?))
            }
            Node::Split { g, q, r } => {
                let tg = self.at_level(self.pow(*g)?, w)?;
                let prod = match q.as_ref() {
                    Node::Leaf(v) if v.len() == 1 => {
                        let c = v.first().copied().unwrap_or(0.0);
                        self.eval.linear_combination(&[&tg], &[c], w, scale)?
                    }
                    qn => {
                        let qs = scale * q_at(self.eval, w)? / tg.scale();
                        let Val::Ct(qc) = self.node(qn, budget.saturating_sub(1), qs)? else {
                            return Err(TensorError::Invalid(
                                "constant quotient outside a leaf".into(),
                            ));
                        };
                        self.products += 1;
                        self.eval.mul_relin(&qc, &tg, self.rlk)?
                    }
                };
                let prod = self.eval.rescale(&prod)?;
                Ok(Val::Ct(match self.node(r, budget, scale)? {
                    Val::Const(c) => self.eval.add_const(&prod, c)?,
                    Val::Ct(rc) => self.eval.add(&prod, &rc)?,
                }))
            }
        }
    }

    /// Evaluates the schedule's root at `depth` levels below `u`, at `scale`.
    pub(super) fn run(&mut self, s: &Schedule, scale: f64) -> Result<Ciphertext, TensorError> {
        let depth = s.depth();
        match self.node(&s.root, depth, scale)? {
            Val::Ct(ct) => Ok(ct),
            Val::Const(c) => {
                let w = (self.top + 1)
                    .checked_sub(depth)
                    .ok_or(TensorError::Ckks(CkksError::NoLevelLeft(self.top)))?;
                let u = self.pow(1)?;
                let zero = self.eval.linear_combination(&[u], &[0.0], w, scale)?;
                Ok(self.eval.rescale(&self.eval.add_const(&zero, c)?)?)
            }
        }
    }
}
