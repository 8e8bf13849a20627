//! The proven noise bound of [`super::Polynomial::eval_ct`]: the same
//! schedule walked on [`NoiseBound`]s instead of ciphertexts, operation
//! for operation (see [`super::eval`]).
//!
//! **Premise:** the input stays inside the polynomial's interval, so
//! `|u| ≤ 1` and every basis value `|T_i(u)| ≤ 1` — the premise of the
//! approximation itself (outside it the result is wrong anyway). The
//! bounds on values through the schedule follow from it; the noise rules
//! are those of `cipherflow_ckks::noise`.

use super::schedule::{factors, Node, Schedule};
use crate::TensorError;
use cipherflow_ckks::{CkksError, CkksParams, NoiseBound};
use std::collections::BTreeMap;

/// A basis power's bound and level.
#[derive(Clone, Copy)]
struct Pow {
    b: NoiseBound,
    level: usize,
}

enum Val {
    Const(f64),
    Bound(NoiseBound),
}

pub(super) struct BoundExec<'a> {
    params: &'a CkksParams,
    top: usize,
    pows: BTreeMap<usize, Pow>,
}

fn q_at(params: &CkksParams, level: usize) -> Result<f64, TensorError> {
    Ok(*params
        .q()
        .get(level)
        .ok_or(TensorError::Ckks(CkksError::InvalidLevel(level)))? as f64)
}

impl<'a> BoundExec<'a> {
    /// Bounds every basis power of `s` from `u` (at `level`).
    pub(super) fn new(
        params: &'a CkksParams,
        u: NoiseBound,
        level: usize,
        s: &Schedule,
    ) -> Result<Self, TensorError> {
        let mut ex = Self {
            params,
            top: level,
            pows: BTreeMap::new(),
        };
        ex.pows.insert(
            1,
            Pow {
                b: u.with_values(1.0)?,
                level,
            },
        );
        for &i in &s.powers {
            let t = ex.power(i)?;
            ex.pows.insert(i, t);
        }
        Ok(ex)
    }

    fn pow(&self, i: usize) -> Result<Pow, TensorError> {
        self.pows
            .get(&i)
            .copied()
            .ok_or_else(|| TensorError::Invalid(format!("basis power T_{i} not bounded")))
    }

    /// `T_i = 2·T_j·T_k − T_m` (or `− 1`), rescaled.
    fn power(&self, i: usize) -> Result<Pow, TensorError> {
        let (j, k, m) = factors(i);
        let (tj, tk) = (self.pow(j)?, self.pow(k)?);
        let lvl = tj.level.min(tk.level);
        let p = tj.b.mul_relin(&tk.b, self.params, lvl)?;
        let p2 = p.add(&p)?;
        let t = if m == 0 {
            p2.add_const(-1.0)?
        } else {
            let sub = self.pow(m)?.b.mul_const_at(1.0, p.scale())?;
            p2.add(&sub)?
        };
        let level = lvl
            .checked_sub(1)
            .ok_or(TensorError::Ckks(CkksError::NoLevelLeft(0)))?;
        Ok(Pow {
            b: t.rescale(self.params, lvl)?.with_values(1.0)?,
            level,
        })
    }

    fn node(&self, node: &Node, budget: usize, scale: f64) -> Result<Val, TensorError> {
        let out = self
            .top
            .checked_sub(budget)
            .ok_or(TensorError::Ckks(CkksError::NoLevelLeft(self.top)))?;
        let w = out + 1;
        let qw = q_at(self.params, w)?;
        match node {
            Node::Leaf(c) => {
                let c0 = c.first().copied().unwrap_or(0.0);
                let mut acc: Option<NoiseBound> = None;
                for (i, &ci) in c.iter().enumerate().skip(1) {
                    if ci != 0.0 {
                        let t = self.pow(i)?.b.mul_const_at(ci, scale * qw)?;
                        acc = Some(match acc {
                            None => t,
                            Some(a) => a.add(&t)?,
                        });
                    }
                }
                let Some(acc) = acc else {
                    return Ok(Val::Const(c0));
                };
                Ok(Val::Bound(acc.add_const(c0)?.rescale(self.params, w)?))
            }
            Node::Split { g, q, r } => {
                let tg = self.pow(*g)?.b;
                let prod = match q.as_ref() {
                    Node::Leaf(v) if v.len() == 1 => {
                        let c = v.first().copied().unwrap_or(0.0);
                        tg.mul_const_at(c, scale * qw)?
                    }
                    qn => {
                        let qs = scale * qw / tg.scale();
                        let Val::Bound(qc) = self.node(qn, budget.saturating_sub(1), qs)? else {
                            return Err(TensorError::Invalid(
                                "constant quotient outside a leaf".into(),
                            ));
                        };
                        qc.mul_relin(&tg, self.params, w)?
                    }
                };
                let prod = prod.rescale(self.params, w)?;
                Ok(Val::Bound(match self.node(r, budget, scale)? {
                    Val::Const(c) => prod.add_const(c)?,
                    Val::Bound(rb) => prod.add(&rb)?,
                }))
            }
        }
    }

    /// The bound of the schedule's result at `scale`.
    pub(super) fn run(&self, s: &Schedule, scale: f64) -> Result<NoiseBound, TensorError> {
        let depth = s.depth();
        match self.node(&s.root, depth, scale)? {
            Val::Bound(b) => Ok(b),
            Val::Const(c) => {
                let w = (self.top + 1)
                    .checked_sub(depth)
                    .ok_or(TensorError::Ckks(CkksError::NoLevelLeft(self.top)))?;
                let u = self
                    .pow(1)?
                    .b
                    .mul_const_at(0.0, scale * q_at(self.params, w)?)?;
                Ok(u.add_const(c)?.rescale(self.params, w)?)
            }
        }
    }
}
