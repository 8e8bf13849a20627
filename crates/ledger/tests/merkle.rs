#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! RFC 9162 Merkle tree: a published CT test vector, and exhaustive proofs
//! for every tree size up to 300 and every leaf index.

use cipherflow_ledger::merkle::{
    empty_root, inclusion_path_of, leaf_hash, root_of, verify_consistency, verify_inclusion,
    MerkleTree,
};
use cipherflow_ledger::{Hash, ProofError};

fn hx(s: &str) -> Hash {
    let mut h = [0u8; 32];
    hex::decode_to_slice(s, &mut h).unwrap();
    h
}

// Test vector from Google's Certificate Transparency reference tests as
// published in github.com/transparency-dev/merkle (testonly/constants.go and
// proof/verify_test.go): eight leaf inputs, the roots of trees of size 0..8,
// the level hashes, and known inclusion and consistency proofs.
const LEAF_INPUTS: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

const LEAF_HASHES: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
];

/// (leaf index, tree size, path)
const INCLUSION: [(u64, u64, &[&str]); 4] = [
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

/// (old size, new size, proof)
const CONSISTENCY: [(u64, u64, &[&str]); 5] = [
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

fn vector_tree() -> MerkleTree {
    let mut t = MerkleTree::new();
    for input in LEAF_INPUTS {
        t.push(leaf_hash(&hex::decode(input).unwrap()));
    }
    t
}

fn hashes(v: &[&str]) -> Vec<Hash> {
    v.iter().map(|s| hx(s)).collect()
}

/// Length of the inclusion path of leaf `index` in a tree of `size` leaves
/// (`index < size`): the levels below the split of `index` and `size − 1`,
/// plus one hash per set bit above it (transparency-dev/merkle,
/// `decompInclProof`). An independent oracle for the expected errors.
fn inclusion_len(index: u64, size: u64) -> usize {
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    let border = (index >> inner).count_ones();
    (inner + border) as usize
}

/// Length of the consistency proof between sizes `0 < old < new`
/// (transparency-dev/merkle, `VerifyConsistency`): the inclusion path of
/// leaf `old − 1` without the levels inside the largest power-of-two subtree
/// ending at `old`, plus that subtree's root unless it is the whole old tree.
fn consistency_len(old: u64, new: u64) -> usize {
    let shift = old.trailing_zeros() as usize;
    let seed = usize::from(!old.is_power_of_two());
    seed + inclusion_len(old - 1, new) - shift
}

/// The error `verify_inclusion` must give for a path of `len` hashes that is
/// the right path for some other position, or has the wrong length: the
/// index check comes first, then the length; with both right only the
/// recomputed root can differ.
fn inclusion_error(index: u64, size: u64, len: usize) -> ProofError {
    if index >= size {
        ProofError::IndexOutOfRange { index, size }
    } else if len != inclusion_len(index, size) {
        ProofError::WrongLength
    } else {
        ProofError::RootMismatch
    }
}

/// The size check `verify_consistency` must fail for a proof of `len`
/// hashes between `old` and `new`, or `None` when the sizes and the length
/// are consistent (then only a root can mismatch).
fn consistency_size_error(old: u64, new: u64, len: usize) -> Option<ProofError> {
    if old > new {
        Some(ProofError::SizeOrder { old, new })
    } else if old == new || old == 0 {
        (len > 0).then_some(ProofError::NotEmpty)
    } else if len != consistency_len(old, new) {
        Some(ProofError::WrongLength)
    } else {
        None
    }
}

/// The error for a right-length consistency proof checked against a wrong
/// old root. A power-of-two old tree is itself a node of the new tree: its
/// root seeds the recomputation, so a wrong one shows up as a new-root
/// mismatch; otherwise the old root is recomputed from the proof and fails.
fn wrong_old_root_error(old: u64) -> ProofError {
    if old.is_power_of_two() {
        ProofError::RootMismatch
    } else {
        ProofError::OldRootMismatch
    }
}

#[test]
fn ct_vector_leaves_and_roots() {
    assert_eq!(empty_root(), hx(ROOTS[0]));
    let t = vector_tree();
    for (i, want) in LEAF_HASHES.iter().enumerate() {
        assert_eq!(t.leaf(i as u64), Some(hx(want)), "leaf {i}");
    }
    for (size, want) in ROOTS.iter().enumerate() {
        assert_eq!(
            t.root_at(size as u64).unwrap(),
            hx(want),
            "root of size {size}"
        );
    }
}

#[test]
fn ct_vector_inclusion_proofs() {
    let t = vector_tree();
    for (index, size, path) in INCLUSION {
        let want = hashes(path);
        assert_eq!(
            t.inclusion_proof(index, size).unwrap(),
            want,
            "{index}/{size}"
        );
        let leaf = hx(LEAF_HASHES[index as usize]);
        let root = hx(ROOTS[size as usize]);
        verify_inclusion(index, size, &leaf, &want, &root).unwrap();
        // Corruptions the verifier must reject.
        let bad_inputs: Vec<(u64, u64, Hash, Vec<Hash>, Hash)> = vec![
            (index.wrapping_sub(1), size, leaf, want.clone(), root),
            (index + 1, size, leaf, want.clone(), root),
            (index ^ 2, size, leaf, want.clone(), root),
            (index, size * 2, leaf, want.clone(), root),
            (index, size / 2, leaf, want.clone(), root),
            (index, size, [0; 32], want.clone(), root),
            (index, size, leaf, want.clone(), empty_root()),
            (index, size, leaf, [want.clone(), vec![root]].concat(), root),
            (index, size, leaf, [vec![root], want.clone()].concat(), root),
            (index, size, leaf, want[..want.len() - 1].to_vec(), root),
        ];
        assert_eq!(want.len(), inclusion_len(index, size), "{index}/{size}");
        for (i, (bi, bs, bl, bp, br)) in bad_inputs.into_iter().enumerate() {
            // Probes 5 and 6 keep the position and corrupt the leaf or root.
            let expected = inclusion_error(bi, bs, bp.len());
            assert_eq!(
                verify_inclusion(bi, bs, &bl, &bp, &br),
                Err(expected),
                "probe {i} of {index}/{size}"
            );
        }
    }
}

#[test]
fn ct_vector_consistency_proofs() {
    let t = vector_tree();
    for (old, new, path) in CONSISTENCY {
        let want = hashes(path);
        assert_eq!(t.consistency_proof(old, new).unwrap(), want, "{old}->{new}");
        let r1 = hx(ROOTS[old as usize]);
        let r2 = hx(ROOTS[new as usize]);
        verify_consistency(old, new, &r1, &r2, &want).unwrap();
        if want.is_empty() {
            continue;
        }
        let probes: Vec<(u64, u64, Hash, Hash, Vec<Hash>)> = vec![
            (old - 1, new, r1, r2, want.clone()),
            (old + 1, new, r1, r2, want.clone()),
            (old ^ 2, new, r1, r2, want.clone()),
            (old, new * 2, r1, r2, want.clone()),
            (old, new / 2, r1, r2, want.clone()),
            (old, new, [1; 32], r2, want.clone()),
            (old, new, r1, [1; 32], want.clone()),
            (old, new, r2, r1, want.clone()),
            (old, new, r1, r2, vec![]),
            (old, new, r1, r2, [want.clone(), vec![r1]].concat()),
            (old, new, r1, r2, [want.clone(), vec![r2]].concat()),
            (old, new, r1, r2, [vec![r1], want.clone()].concat()),
            (old, new, r1, r2, [vec![want[0]], want.clone()].concat()),
            (old, new, r1, r2, want[..want.len() - 1].to_vec()),
        ];
        assert_eq!(want.len(), consistency_len(old, new), "{old}->{new}");
        for (i, (a, b, x, y, p)) in probes.into_iter().enumerate() {
            let expected = match i {
                // Wrong old root (replaced, or swapped with the new one).
                5 | 7 => wrong_old_root_error(old),
                6 => ProofError::RootMismatch,
                // Every other probe changes a size or the proof length.
                _ => consistency_size_error(a, b, p.len())
                    .unwrap_or_else(|| panic!("probe {i} of {old}->{new} is size-consistent")),
            };
            assert_eq!(
                verify_consistency(a, b, &x, &y, &p),
                Err(expected),
                "probe {i} of {old}->{new}"
            );
        }
    }
}

#[test]
fn trivial_consistency_cases() {
    let r = [5u8; 32];
    assert_eq!(
        verify_consistency(0, 0, &empty_root(), &empty_root(), &[]),
        Ok(())
    );
    assert_eq!(verify_consistency(0, 5, &empty_root(), &r, &[]), Ok(()));
    assert_eq!(
        verify_consistency(0, 5, &empty_root(), &r, &[r]),
        Err(ProofError::NotEmpty)
    );
    assert_eq!(
        verify_consistency(0, 5, &r, &r, &[]),
        Err(ProofError::OldRootMismatch)
    );
    assert_eq!(verify_consistency(3, 3, &r, &r, &[]), Ok(()));
    assert_eq!(
        verify_consistency(3, 3, &r, &[6; 32], &[]),
        Err(ProofError::RootMismatch)
    );
    assert_eq!(
        verify_consistency(3, 3, &r, &r, &[r]),
        Err(ProofError::NotEmpty)
    );
    assert!(matches!(
        verify_consistency(4, 3, &r, &r, &[r]),
        Err(ProofError::SizeOrder { .. })
    ));
    assert_eq!(
        verify_inclusion(0, 0, &r, &[], &r),
        Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
    );
    assert_eq!(verify_inclusion(0, 1, &r, &[], &r), Ok(()));
    assert_eq!(
        verify_inclusion(1, 1, &r, &[], &r),
        Err(ProofError::IndexOutOfRange { index: 1, size: 1 })
    );
}

fn flip(h: &Hash, bit: usize) -> Hash {
    let mut x = *h;
    x[bit / 8] ^= 1 << (bit % 8);
    x
}

const N: u64 = 300;

fn big_tree() -> (MerkleTree, Vec<Hash>) {
    let leaves: Vec<Hash> = (0..N).map(|i| leaf_hash(&i.to_le_bytes())).collect();
    let mut t = MerkleTree::new();
    for l in &leaves {
        t.push(*l);
    }
    (t, leaves)
}

#[test]
fn every_inclusion_proof_up_to_300_verifies_and_rejects_tampering() {
    let (t, leaves) = big_tree();
    for size in 1..=N {
        let root = t.root_at(size).unwrap();
        assert_eq!(root, root_of(&leaves[..size as usize]), "root {size}");
        for i in 0..size {
            let p = t.inclusion_proof(i, size).unwrap();
            assert_eq!(p.len(), inclusion_len(i, size), "{i}/{size}");
            if size <= 64 {
                assert_eq!(p, inclusion_path_of(&leaves[..size as usize], i).unwrap());
            }
            let leaf = leaves[i as usize];
            verify_inclusion(i, size, &leaf, &p, &root).unwrap();
            // A different index, a flipped bit in the leaf, root or any path
            // element (cycling through bit positions), or a shortened path fail.
            if size > 1 {
                let j = (i + 1) % size;
                assert_eq!(
                    verify_inclusion(j, size, &leaf, &p, &root),
                    Err(inclusion_error(j, size, p.len())),
                    "{i}/{size} checked as {j}"
                );
            }
            let bit = ((i * 7 + size) % 256) as usize;
            let mismatch = Err(ProofError::RootMismatch);
            assert_eq!(
                verify_inclusion(i, size, &flip(&leaf, bit), &p, &root),
                mismatch
            );
            assert_eq!(
                verify_inclusion(i, size, &leaf, &p, &flip(&root, bit)),
                mismatch
            );
            for k in 0..p.len() {
                let mut q = p.clone();
                q[k] = flip(&q[k], (bit + k) % 256);
                assert_eq!(verify_inclusion(i, size, &leaf, &q, &root), mismatch);
            }
            if !p.is_empty() {
                assert_eq!(
                    verify_inclusion(i, size, &leaf, &p[1..], &root),
                    Err(ProofError::WrongLength)
                );
            }
        }
    }
}

#[test]
fn every_consistency_proof_up_to_300_verifies_and_rejects_tampering() {
    let (t, leaves) = big_tree();
    let roots: Vec<Hash> = (0..=N).map(|s| t.root_at(s).unwrap()).collect();
    // End of the leaf range of every complete, aligned subtree, by its hash.
    // A proof hash whose subtree ends at or before `old` is part of the old
    // root; flipping it fails the old-root check. Any other proof hash (a
    // subtree after `old`, or a partial one on the new tree's right edge)
    // only enters the new root.
    let mut subtree_end = std::collections::HashMap::new();
    let mut width = 1;
    while width <= N {
        for start in (0..=N - width).step_by(width as usize) {
            let range = start as usize..(start + width) as usize;
            subtree_end.insert(root_of(&leaves[range]), start + width);
        }
        width *= 2;
    }
    for new in 1..=N {
        for old in 1..=new {
            let p = t.consistency_proof(old, new).unwrap();
            let (r1, r2) = (roots[old as usize], roots[new as usize]);
            verify_consistency(old, new, &r1, &r2, &p).unwrap();
            if old == new {
                assert!(p.is_empty());
                continue;
            }
            assert_eq!(p.len(), consistency_len(old, new), "{old}->{new}");
            let bit = ((old * 13 + new) % 256) as usize;
            assert_eq!(
                verify_consistency(old, new, &flip(&r1, bit), &r2, &p),
                Err(wrong_old_root_error(old)),
                "{old}->{new}"
            );
            assert_eq!(
                verify_consistency(old, new, &r1, &flip(&r2, bit), &p),
                Err(ProofError::RootMismatch),
                "{old}->{new}"
            );
            for k in 0..p.len() {
                let mut q = p.clone();
                q[k] = flip(&q[k], (bit + k) % 256);
                let in_old_root = subtree_end.get(&p[k]).is_some_and(|&end| end <= old);
                let expected = if in_old_root {
                    ProofError::OldRootMismatch
                } else {
                    ProofError::RootMismatch
                };
                assert_eq!(
                    verify_consistency(old, new, &r1, &r2, &q),
                    Err(expected),
                    "{old}->{new} elem {k}"
                );
            }
            assert_eq!(
                verify_consistency(old, new, &r1, &r2, &p[..p.len() - 1]),
                Err(ProofError::WrongLength),
                "{old}->{new}"
            );
            if old + 1 < new {
                // The proof for `old` checked as one for `old + 1`.
                let expected = consistency_size_error(old + 1, new, p.len())
                    .unwrap_or_else(|| panic!("{old}->{new}: same length as from {}", old + 1));
                assert_eq!(
                    verify_consistency(old + 1, new, &roots[old as usize + 1], &r2, &p),
                    Err(expected),
                    "{old}->{new}"
                );
            }
        }
    }
}

#[test]
fn proofs_past_the_tree_are_errors_not_panics() {
    let (t, _) = big_tree();
    let past = Err(ProofError::SizeOutOfRange {
        size: N + 1,
        available: N,
    });
    assert_eq!(t.inclusion_proof(0, N + 1), past);
    assert_eq!(
        t.inclusion_proof(N, N),
        Err(ProofError::IndexOutOfRange { index: N, size: N })
    );
    assert_eq!(t.consistency_proof(5, N + 1), past);
    assert_eq!(
        t.consistency_proof(6, 5),
        Err(ProofError::SizeOrder { old: 6, new: 5 })
    );
    assert_eq!(
        t.root_at(N + 1),
        Err(ProofError::SizeOutOfRange {
            size: N + 1,
            available: N,
        })
    );
    assert_eq!(
        verify_inclusion(u64::MAX, u64::MAX, &[0; 32], &[[0; 32]; 70], &[0; 32]),
        Err(ProofError::IndexOutOfRange {
            index: u64::MAX,
            size: u64::MAX,
        })
    );
    // In range, but no tree of 2^64 − 1 leaves has a 70-hash path.
    assert_eq!(
        verify_inclusion(u64::MAX - 1, u64::MAX, &[0; 32], &[[0; 32]; 70], &[0; 32]),
        Err(ProofError::WrongLength)
    );
    assert_eq!(
        verify_consistency(u64::MAX - 1, u64::MAX, &[0; 32], &[0; 32], &[[0; 32]; 70]),
        Err(ProofError::WrongLength)
    );
}
