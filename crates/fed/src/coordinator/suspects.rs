//! Narrowing down a lying key holder across rounds.
//!
//! A checked decryption (`t + 1` key holders) that fails its check says
//! that one of the set lied, not which. The coordinator keeps the failed
//! sets and the holders of checked sets that passed since: the culprit is
//! in every failed set and — if it lies every time — in no passing one.
//! When one holder remains it is identified: it is no longer asked to
//! decrypt, the round's abort reason names it, and the operator can revoke
//! it. Attempts after a failure prefer holders outside the failed sets, so
//! that the next decryption (the next round) succeeds and clears them.
//! With exactly `t + 1` key holders every set is the same, and a culprit
//! can be detected but not identified. The state survives restarts.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The suspects' record (stored as JSON in the state's metadata).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Suspects {
    /// Active sets whose checked decryption failed, since the last
    /// identification.
    pub(super) failed: Vec<BTreeSet<String>>,
    /// Holders of checked sets that passed after the first of `failed`.
    pub(super) cleared: BTreeSet<String>,
    /// Identified culprits: never asked to decrypt again.
    pub(super) identified: BTreeSet<String>,
}

impl Suspects {
    /// The holders in every failed set and in no passing one.
    pub(super) fn candidates(&self) -> BTreeSet<String> {
        let mut it = self.failed.iter();
        let Some(first) = it.next() else {
            return BTreeSet::new();
        };
        let mut c = first.clone();
        for f in it {
            c.retain(|h| f.contains(h));
        }
        c.retain(|h| !self.cleared.contains(h));
        c
    }

    /// Records a failed checked decryption by `set`; returns the culprit
    /// when it is now identified.
    pub(super) fn failed(&mut self, set: &[String]) -> Option<String> {
        self.failed.push(set.iter().cloned().collect());
        if self.candidates().is_empty() {
            // Inconsistent with one liar that always lies (it lied only
            // sometimes, or several lie): start over from this set.
            self.failed = vec![set.iter().cloned().collect()];
            self.cleared.clear();
        }
        self.identify()
    }

    /// Records a checked decryption by `set` that passed; returns the
    /// culprit when it is now identified.
    pub(super) fn passed(&mut self, set: &[String]) -> Option<String> {
        if self.failed.is_empty() {
            return None;
        }
        self.cleared.extend(set.iter().cloned());
        if self.candidates().is_empty() {
            // Every suspect behaved: nothing to go on any more.
            self.failed.clear();
            self.cleared.clear();
            return None;
        }
        self.identify()
    }

    /// One candidate left (after at least one failure and one elimination
    /// or a second failure): identified.
    fn identify(&mut self) -> Option<String> {
        let c = self.candidates();
        if c.len() != 1 {
            return None;
        }
        let culprit = c.into_iter().next()?;
        self.identified.insert(culprit.clone());
        self.failed.clear();
        self.cleared.clear();
        Some(culprit)
    }

    /// Whether `holder` is a current candidate.
    #[cfg(test)]
    fn is_candidate(&self, holder: &str) -> bool {
        self.candidates().contains(holder)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn set(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_consistent_liar_is_identified_by_elimination() {
        let mut s = Suspects::default();
        assert_eq!(s.failed(&set(&["a", "b", "c"])), None);
        assert!(s.is_candidate("b"));
        assert_eq!(s.passed(&set(&["a", "d", "e"])), None);
        assert!(!s.is_candidate("a"));
        assert_eq!(s.failed(&set(&["b", "c", "d"])), None); // {b, c} left
        assert_eq!(s.passed(&set(&["c", "d", "e"])), Some("b".into()));
        assert!(s.identified.contains("b"));
        assert!(s.failed.is_empty() && s.cleared.is_empty());
        // Two failures alone can pin it too.
        let mut s = Suspects::default();
        s.failed(&set(&["a", "b", "c"]));
        assert_eq!(s.failed(&set(&["c", "d", "e"])), Some("c".into()));
    }

    #[test]
    fn an_inconsistent_record_starts_over() {
        let mut s = Suspects::default();
        s.failed(&set(&["a", "b", "c"]));
        s.failed(&set(&["b", "c", "d"]));
        // The liar lied only sometimes: every candidate passed once.
        assert_eq!(s.passed(&set(&["b", "c", "e"])), None);
        assert!(s.failed.is_empty() && s.candidates().is_empty());
        assert_eq!(s.failed(&set(&["c", "d", "e"])), None);
        assert_eq!(s.failed.len(), 1);
        assert_eq!(s.candidates().len(), 3);
        // Failures with no common member: start over from the last.
        assert_eq!(s.failed(&set(&["a", "f", "g"])), None);
        assert_eq!(s.failed.len(), 1);
        assert!(s.is_candidate("f") && !s.is_candidate("c"));
    }

    #[test]
    fn passes_without_a_failure_clear_no_one_in_advance() {
        let mut s = Suspects::default();
        assert_eq!(s.passed(&set(&["a", "b"])), None);
        assert!(s.cleared.is_empty());
        assert_eq!(s.failed(&set(&["a", "b", "c"])), None);
        assert_eq!(s.candidates().len(), 3);
    }
}
