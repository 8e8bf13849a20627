//! RFC 9162 (Certificate Transparency v2) Merkle tree hashing, proof
//! generation and proof verification.
//!
//! * Leaf hash: `SHA-256(0x00 || data)`; node hash: `SHA-256(0x01 || left || right)`;
//!   the empty tree hashes to `SHA-256("")` (RFC 9162 §2.1.1).
//! * [`MerkleTree`] keeps every complete, aligned subtree hash in memory
//!   (about 64 bytes per leaf), so inclusion and consistency proofs for any
//!   historical tree size cost O(log² n) lookups and O(log n) hashes.
//! * [`verify_inclusion`] and [`verify_consistency`] are the RFC 9162
//!   §2.1.3.2 and §2.1.4.2 verification algorithms; they need only hashes.

use sha2::{Digest, Sha256};
use thiserror::Error;

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// Why a Merkle proof failed to verify, or could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange {
        /// Leaf index.
        index: u64,
        /// Tree size.
        size: u64,
    },
    /// A tree size larger than the tree that was asked about.
    #[error("tree size {size} is larger than the log ({available} entries)")]
    SizeOutOfRange {
        /// Requested size.
        size: u64,
        /// Entries available.
        available: u64,
    },
    /// The older tree is larger than the newer one.
    #[error("old tree size {old} is larger than new tree size {new}")]
    SizeOrder {
        /// Older size.
        old: u64,
        /// Newer size.
        new: u64,
    },
    /// The proof has too many or too few hashes for its position.
    #[error("proof has the wrong number of hashes")]
    WrongLength,
    /// A consistency proof between equal sizes or from the empty tree must be empty.
    #[error("a proof for equal tree sizes or from the empty tree must be empty")]
    NotEmpty,
    /// The hashes do not recompute the expected root.
    #[error("recomputed root does not match the expected root")]
    RootMismatch,
    /// The hashes do not recompute the older root.
    #[error("recomputed old root does not match the expected old root")]
    OldRootMismatch,
}

/// `SHA-256("")`, the hash of the empty tree.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// RFC 9162 leaf hash: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// RFC 9162 interior node hash: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Largest power of two strictly smaller than `n` (requires `n >= 2`).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Merkle tree hash of a list of leaf hashes (RFC 9162 `MTH`), computed
/// directly from its definition. Used for small trees (aggregate inputs) and
/// as a reference in tests.
pub fn root_of(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => empty_root(),
        [one] => *one,
        _ => {
            let k = usize::try_from(split_point(leaves.len() as u64)).unwrap_or(leaves.len() / 2);
            let (l, r) = leaves.split_at(k);
            node_hash(&root_of(l), &root_of(r))
        }
    }
}

/// Inclusion path of leaf `index` in the tree over `leaves`, from the
/// definition (RFC 9162 §2.1.3.1). For small trees and tests.
pub fn inclusion_path_of(leaves: &[Hash], index: u64) -> Result<Vec<Hash>, ProofError> {
    let size = leaves.len() as u64;
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut out = Vec::new();
    path_rec(leaves, index, &mut out);
    Ok(out)
}

fn path_rec(leaves: &[Hash], m: u64, out: &mut Vec<Hash>) {
    if leaves.len() <= 1 {
        return;
    }
    let k = split_point(leaves.len() as u64);
    let ku = usize::try_from(k).unwrap_or(leaves.len() / 2);
    let (l, r) = leaves.split_at(ku);
    if m < k {
        path_rec(l, m, out);
        out.push(root_of(r));
    } else {
        path_rec(r, m - k, out);
        out.push(root_of(l));
    }
}

/// An append-only Merkle tree over leaf hashes that caches every complete,
/// aligned subtree (level `l` holds the hashes of leaves
/// `[i·2^l, (i+1)·2^l)`), so roots and proofs for any size up to
/// [`len`](Self::len) are cheap.
#[derive(Debug, Clone, Default)]
pub struct MerkleTree {
    levels: Vec<Vec<Hash>>,
}

impl MerkleTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves.
    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut carry = leaf;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let Some(row) = self.levels.get_mut(level) else {
                return;
            };
            row.push(carry);
            let n = row.len();
            if !n.is_multiple_of(2) {
                return;
            }
            match (row.get(n - 2), row.get(n - 1)) {
                (Some(l), Some(r)) => carry = node_hash(l, r),
                _ => return,
            }
            level += 1;
        }
    }

    /// Drops leaves past `size` (used to undo a failed append).
    pub fn truncate(&mut self, size: u64) {
        for (level, row) in self.levels.iter_mut().enumerate() {
            let keep = size.checked_shr(level as u32).unwrap_or(0);
            row.truncate(usize::try_from(keep).unwrap_or(usize::MAX));
        }
        while self.levels.last().is_some_and(|r| r.is_empty()) {
            self.levels.pop();
        }
    }

    /// The hash of leaf `index`.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.cached(0, index)
    }

    fn cached(&self, level: u32, i: u64) -> Option<Hash> {
        let row = self.levels.get(usize::try_from(level).ok()?)?;
        row.get(usize::try_from(i).ok()?).copied()
    }

    /// Hash of the RFC 9162 subtree over leaves `[start, end)`; `start` must
    /// be a multiple of a power of two that is at least `end - start`, which
    /// holds for every node of the tree.
    fn range_hash(&self, start: u64, end: u64) -> Option<Hash> {
        let n = end.checked_sub(start)?;
        if n == 0 {
            return None;
        }
        if n.is_power_of_two() && start.is_multiple_of(n) {
            return self.cached(n.trailing_zeros(), start / n);
        }
        let k = split_point(n);
        let l = self.range_hash(start, start + k)?;
        let r = self.range_hash(start + k, end)?;
        Some(node_hash(&l, &r))
    }

    fn check_size(&self, size: u64) -> Result<(), ProofError> {
        if size > self.len() {
            return Err(ProofError::SizeOutOfRange {
                size,
                available: self.len(),
            });
        }
        Ok(())
    }

    /// Root hash of the current tree.
    pub fn root(&self) -> Hash {
        self.root_at(self.len()).unwrap_or_else(|_| empty_root())
    }

    /// Root hash of the tree over the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, ProofError> {
        self.check_size(size)?;
        if size == 0 {
            return Ok(empty_root());
        }
        self.range_hash(0, size).ok_or(ProofError::WrongLength)
    }

    /// Inclusion path (RFC 9162 §2.1.3.1) of leaf `index` in the tree of
    /// the first `size` leaves.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(size)?;
        if index >= size {
            return Err(ProofError::IndexOutOfRange { index, size });
        }
        let mut out = Vec::new();
        self.path(index, 0, size, &mut out)
            .ok_or(ProofError::WrongLength)?;
        Ok(out)
    }

    fn path(&self, m: u64, start: u64, end: u64, out: &mut Vec<Hash>) -> Option<()> {
        let n = end - start;
        if n <= 1 {
            return Some(());
        }
        let k = split_point(n);
        if m < k {
            self.path(m, start, start + k, out)?;
            out.push(self.range_hash(start + k, end)?);
        } else {
            self.path(m - k, start + k, end, out)?;
            out.push(self.range_hash(start, start + k)?);
        }
        Some(())
    }

    /// Consistency proof (RFC 9162 §2.1.4.1) between the trees of the first
    /// `old` and the first `new` leaves. Empty when `old` is 0 or `old == new`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(new)?;
        if old > new {
            return Err(ProofError::SizeOrder { old, new });
        }
        let mut out = Vec::new();
        if old == 0 || old == new {
            return Ok(out);
        }
        self.subproof(old, 0, new, true, &mut out)
            .ok_or(ProofError::WrongLength)?;
        Ok(out)
    }

    fn subproof(
        &self,
        m: u64,
        start: u64,
        end: u64,
        whole: bool,
        out: &mut Vec<Hash>,
    ) -> Option<()> {
        let n = end - start;
        if m == n {
            if !whole {
                out.push(self.range_hash(start, end)?);
            }
            return Some(());
        }
        let k = split_point(n);
        if m <= k {
            self.subproof(m, start, start + k, whole, out)?;
            out.push(self.range_hash(start + k, end)?);
        } else {
            self.subproof(m - k, start + k, end, false, out)?;
            out.push(self.range_hash(start, start + k)?);
        }
        Some(())
    }
}

/// Recomputes the root from an inclusion path (RFC 9162 §2.1.3.2, steps 1–4).
pub fn root_from_inclusion(
    leaf_index: u64,
    tree_size: u64,
    leaf: &Hash,
    path: &[Hash],
) -> Result<Hash, ProofError> {
    if leaf_index >= tree_size {
        return Err(ProofError::IndexOutOfRange {
            index: leaf_index,
            size: tree_size,
        });
    }
    let mut fnode = leaf_index;
    let mut snode = tree_size - 1;
    let mut r = *leaf;
    for p in path {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    Ok(r)
}

/// Verifies an inclusion path against a root (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf_index: u64,
    tree_size: u64,
    leaf: &Hash,
    path: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    let got = root_from_inclusion(leaf_index, tree_size, leaf, path)?;
    if &got == root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// Verifies a consistency proof between two tree heads (RFC 9162 §2.1.4.2),
/// with the trivial cases handled first: equal sizes need an empty proof and
/// equal roots; an empty old tree (whose root must be `SHA-256("")`) needs
/// an empty proof.
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_hash: &Hash,
    second_hash: &Hash,
    path: &[Hash],
) -> Result<(), ProofError> {
    if first > second {
        return Err(ProofError::SizeOrder {
            old: first,
            new: second,
        });
    }
    if first == second {
        if !path.is_empty() {
            return Err(ProofError::NotEmpty);
        }
        return if first_hash == second_hash {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    if first == 0 {
        if !path.is_empty() {
            return Err(ProofError::NotEmpty);
        }
        return if *first_hash == empty_root() {
            Ok(())
        } else {
            Err(ProofError::OldRootMismatch)
        };
    }
    // Step 1.
    let Some((head, rest)) = path.split_first() else {
        return Err(ProofError::WrongLength);
    };
    // Step 2: a power-of-two old tree is itself a node of the new tree and
    // its root is not repeated in the proof.
    let (start, rest) = if first.is_power_of_two() {
        (*first_hash, path)
    } else {
        (*head, rest)
    };
    // Steps 3–4.
    let mut fnode = first - 1;
    let mut snode = second - 1;
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 5.
    let mut fr = start;
    let mut sr = start;
    // Step 6.
    for c in rest {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 7.
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if &fr != first_hash {
        return Err(ProofError::OldRootMismatch);
    }
    if &sr != second_hash {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn split_points() {
        assert_eq!(split_point(2), 1);
        assert_eq!(split_point(3), 2);
        assert_eq!(split_point(4), 2);
        assert_eq!(split_point(5), 4);
        assert_eq!(split_point(9), 8);
    }

    #[test]
    fn cached_roots_match_definition() {
        let ls = leaves(70);
        let mut t = MerkleTree::new();
        assert_eq!(t.root(), empty_root());
        for (i, l) in ls.iter().enumerate() {
            t.push(*l);
            assert_eq!(t.root(), root_of(&ls[..=i]));
        }
        for size in 0..=70u64 {
            assert_eq!(t.root_at(size), Ok(root_of(&ls[..size as usize])));
        }
        assert!(t.root_at(71).is_err());
    }

    #[test]
    fn truncate_restores_earlier_tree() {
        let ls = leaves(37);
        let mut t = MerkleTree::new();
        for l in &ls {
            t.push(*l);
        }
        for size in (0..37u64).rev() {
            let mut u = t.clone();
            u.truncate(size);
            assert_eq!(u.len(), size);
            assert_eq!(u.root(), root_of(&ls[..size as usize]));
            u.push(ls[size as usize]);
            assert_eq!(u.root(), root_of(&ls[..=size as usize]));
        }
    }

    #[test]
    fn cached_paths_match_definition() {
        let ls = leaves(33);
        let mut t = MerkleTree::new();
        for l in &ls {
            t.push(*l);
        }
        for size in 1..=33u64 {
            for i in 0..size {
                let a = t.inclusion_proof(i, size);
                let b = inclusion_path_of(&ls[..size as usize], i);
                assert_eq!(a, b);
            }
        }
    }
}
