//! Checked threshold decryption: one key holder more than the threshold,
//! so that a lying key holder is caught.
//!
//! # The check
//! Key holder `j` of an active set `A` sends `d_j = λ_j·F(j)·a + E_j`, where
//! `F` is the degree-`(t−1)` Shamir polynomial of the contributors' key sum
//! and `λ_j` its Lagrange coefficient over `A`. With `|A| = t + 1` the
//! Lagrange formula over `A` is exact for every polynomial of degree `≤ t`,
//! in particular for `x·F(x)`, whose value at 0 is 0:
//! `Σ_{j∈A} x_j·λ_j·F(j) = 0`. Hence, with the party ids `x_j` (small
//! integers),
//!
//! `C = Σ_{j∈A} x_j·d_j = Σ_{j∈A} x_j·E_j`, `|C|_∞ ≤ T = Σ_j x_j·2^{k_j}`,
//!
//! a sum the combiner can compute from the shares alone. A holder `l` that
//! adds `δ` to its share moves `C` by `x_l·δ` (mod `Q`), so it passes the
//! check only if `x_l·δ ≡ z (mod Q)` for some `|z| ≤ 2T`:
//! * either `x_l` divides `z` and `|δ| ≤ 2T` — the decryption moves by at
//!   most `2T`, which the shift leaves room for ([`Smudging::min_shift_bits_checked`]),
//!   so the rounded integer sums come out **exact**;
//! * or `δ ≡ (z + j·Q)/x_l` with `1 ≤ j < x_l`, at distance at least
//!   `Q/X − 2T` from every multiple of `Q` (`X` the largest party id) — the
//!   decrypted coefficient then leaves `[−Q/(4X), Q/(4X)]`, which every
//!   honest sum stays inside ([`max_abs_value_checked`]), and is refused.
//!
//! A steered decryption is therefore detected with certainty, or it is
//! harmless. The check catches **one** lying holder per active set: two
//! holders `l, l'` can shift by `x_{l'}·Δ` and `−x_l·Δ` and cancel in `C`.
//! Catching `f` colluding liars needs `t + f` holders and the checks of
//! `x^r·F(x)`, `r ≤ f`, which this module does not offer. The check does
//! not say *which* holder lied; the federated layer narrows it down over
//! rounds.
//!
//! # What the check reveals, and the price
//! The combiner learns `C = Σ x_j·E_j` besides the decryption
//! `R = m + e + Σ E_j`. If every `x_j` were congruent modulo some `g > 1`,
//! `R`'s noise would be known modulo `g` (e.g. all ids odd: `R − C ≡ m + e
//! (mod 2)`), exposing the secret-dependent `e`. A holder therefore answers
//! a `t + 1` set only when some integer vector `u` with `Σ u_j·x_j = 0` and
//! `Σ u_j = 1` exists with `‖u‖₁ ≤ 2^w`, `w = ⌈log2(2X + 1)⌉`
//! ([`is_checkable`]; two consecutive ids give one), and widens its
//! smudging by `w` bits. Then `E ↦ E + d·u` keeps `C`, moves `Σ E_j` by
//! `d`, and changes the uniform box by a statistical distance of at most
//! `|d|·‖u‖₁/2^{k+w+1}` — the smudging lemma's bound without the check.
//! A holder refuses a set of more than `t + 1` (more relations, each a
//! possible leak): today's code never asks for one.
//!
//! The shift grows by about `log2(2·|A|·X) + w` bits and the modulus by
//! `⌈log2(2X)⌉` more (about 20 bits in all for ten key holders): the
//! federated layer's packing plan accounts for both.

use super::error::MultipartyError;
use super::smudging::Smudging;
use crate::error::CkksError;
use crate::params::CkksParams;

/// `⌈log2(v)⌉` for `v ≥ 1`.
fn ceil_log2(v: u128) -> u32 {
    if v <= 1 {
        0
    } else {
        128 - (v - 1).leading_zeros()
    }
}

/// The bits `w` a key holder widens its smudging by in a checked set whose
/// party ids are at most `max_party_id`: `⌈log2(2X + 1)⌉`.
pub fn check_witness_bits(max_party_id: u64) -> u32 {
    ceil_log2(2 * u128::from(max_party_id) + 1)
}

/// `(g, a, b)` with `a·x + b·y = g = gcd(x, y)`, `g ≥ 0`.
fn ext_gcd(x: i128, y: i128) -> (i128, i128, i128) {
    let (mut r0, mut r1) = (x, y);
    let (mut a0, mut a1) = (1i128, 0i128);
    let (mut b0, mut b1) = (0i128, 1i128);
    while r1 != 0 {
        let q = r0.div_euclid(r1);
        (r0, r1) = (r1, r0 - q * r1);
        (a0, a1) = (a1, a0 - q * a1);
        (b0, b1) = (b1, b0 - q * b1);
    }
    if r0 < 0 {
        (-r0, -a0, -b0)
    } else {
        (r0, a0, b0)
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A short integer vector `u` with `Σ u_j·x_j = 0` and `Σ u_j = 1` over
/// the (sorted, distinct) ids, or `None` when none was found (e.g. every id
/// odd) or the fold overflows.
///
/// Pairs of neighbours `x < y` with `d = gcd(x, y)` give
/// `(y/d)·e_x − (x/d)·e_y`, whose sum is `(y − x)/d`; a pair with
/// `y − x = d` is a witness of norm `(x + y)/d`, and the shortest such is
/// taken. Otherwise the pair vectors are folded with the extended Euclidean
/// algorithm until their sums' gcd is 1 (the neighbours' differences
/// generate all differences).
fn witness(ids: &[u64]) -> Option<Vec<i128>> {
    let pairs: Vec<(usize, i128, i128, i128)> = ids
        .windows(2)
        .enumerate()
        .filter_map(|(i, w)| match w {
            [x, y] if x < y => {
                let d = gcd(*x, *y);
                Some((
                    i,
                    i128::from(x / d),
                    i128::from(y / d),
                    i128::from((y - x) / d),
                ))
            }
            _ => None,
        })
        .collect();
    let mut u = vec![0i128; ids.len()];
    if let Some(&(i, xd, yd, _)) = pairs.iter().filter(|p| p.3 == 1).min_by_key(|p| p.1 + p.2) {
        *u.get_mut(i)? = yd;
        *u.get_mut(i + 1)? = -xd;
        return Some(u);
    }
    let mut g: i128 = 0;
    for &(i, xd, yd, s) in &pairs {
        if g == 0 {
            *u.get_mut(i)? = yd;
            *u.get_mut(i + 1)? = -xd;
            g = s;
        } else {
            let (g2, a, b) = ext_gcd(g, s);
            for v in u.iter_mut() {
                *v = v.checked_mul(a)?;
            }
            let ui = u.get_mut(i)?;
            *ui = ui.checked_add(b.checked_mul(yd)?)?;
            let uj = u.get_mut(i + 1)?;
            *uj = uj.checked_sub(b.checked_mul(xd)?)?;
            g = g2;
        }
        if g == 1 {
            return Some(u);
        }
    }
    None
}

/// `‖u‖₁` of [`witness`], `None` without one or on overflow.
fn witness_norm(ids: &[u64]) -> Option<u128> {
    witness(ids)?
        .iter()
        .try_fold(0u128, |acc, v| acc.checked_add(v.unsigned_abs()))
}

/// Whether a key holder answers a checked decryption for the active set
/// `active` (sorted or not; at least two distinct non-zero ids) when the
/// largest party id of the dealing is `max_party_id`: a witness that the
/// check hides the noise exists within `2^w`, `w` from
/// [`check_witness_bits`].
pub fn is_checkable(active: &[u64], max_party_id: u64) -> bool {
    let mut ids = active.to_vec();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() != active.len() || ids.len() < 2 || ids.first() == Some(&0) {
        return false;
    }
    if ids.last().is_some_and(|&x| x > max_party_id) {
        return false;
    }
    let bound = 1u128 << check_witness_bits(max_party_id);
    witness_norm(&ids).is_some_and(|n| n <= bound)
}

/// Largest `|v|` per coefficient that `shift` leaves room for in a checked
/// decryption with party ids up to `max_party_id`: `2^shift·(|v| + 1) ≤
/// Q/(4X)` (see the module docs: a steered coefficient lands outside).
pub fn max_abs_value_checked(params: &CkksParams, shift: u32, max_party_id: u64) -> f64 {
    let log_q: f64 = params.q().iter().map(|&q| (q as f64).log2()).sum();
    let x = (max_party_id.max(1) as f64).log2();
    (2f64.powf(log_q - 2.0 - x - f64::from(shift)) - 1.0).max(0.0)
}

impl Smudging {
    /// This smudging widened by `extra` bits (a checked set's `w`).
    pub(crate) fn widened(&self, extra: u32) -> Result<Self, CkksError> {
        let k = self.bound_log2().saturating_add(extra);
        if k > super::MAX_SMUDGING_LOG2 {
            return Err(MultipartyError::InvalidSmudging(format!(
                "smudging bound 2^{k} exceeds 2^{}",
                super::MAX_SMUDGING_LOG2
            ))
            .into());
        }
        Ok(self.with_bound_log2(k))
    }

    /// The smallest shift for which a checked decryption by `decryptors`
    /// (= `t + 1`) key holders with ids up to `max_party_id` rounds to the
    /// exact sums even when one of them steers its share within what the
    /// check lets through: `2^shift > 2·(B + |A|·2^k' + 2·T)` with
    /// `k' = k + w` and `T = |A|·X·2^k'`.
    pub fn min_shift_bits_checked(&self, decryptors: usize, max_party_id: u64) -> u32 {
        let k = f64::from(self.bound_log2() + check_witness_bits(max_party_id));
        let (m, x) = (decryptors as f64, max_party_id.max(1) as f64);
        let noise = 2f64.powf(self.noise_log2()) + m * 2f64.powf(k) * (1.0 + 2.0 * x);
        (2.0 * noise).log2().floor() as u32 + 1
    }
}

/// The checker's verdict on one coefficient's `C` and decryption.
pub(crate) struct CheckBounds {
    /// `T = Σ x_j·2^{k_j}`.
    pub(crate) t: i128,
    /// `Q/(4X)`: no honest decryption leaves `[−room, room]`.
    pub(crate) room: i128,
    /// The active set's party ids with their declared smudging bits.
    pub(crate) weights: Vec<u64>,
}

impl CheckBounds {
    /// Bounds for shares of `active` (sorted ids) declaring `smudging_log2`
    /// each, over the modulus `big_q`; refuses a modulus too small for the
    /// check to be sound (`Q ≤ 4·X·T`).
    pub(crate) fn new(
        active: &[u64],
        smudging_log2: &[u32],
        big_q: i128,
    ) -> Result<Self, CkksError> {
        let mut t: i128 = 0;
        for (&x, &k) in active.iter().zip(smudging_log2) {
            let term = i128::from(x)
                .checked_shl(k)
                .filter(|v| v.checked_shr(k) == Some(i128::from(x)))
                .ok_or_else(|| MultipartyError::InvalidSmudging("smudging too large".into()))?;
            t = t
                .checked_add(term)
                .ok_or_else(|| MultipartyError::InvalidSmudging("smudging too large".into()))?;
        }
        let x = i128::from(active.iter().copied().max().unwrap_or(1).max(1));
        let room = big_q / (4 * x);
        if t.checked_mul(4 * x).is_none_or(|v| v >= big_q) {
            return Err(MultipartyError::InvalidSmudging(
                "the modulus is too small for a checked decryption".into(),
            )
            .into());
        }
        Ok(Self {
            t,
            room,
            weights: active.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    /// The witness of `ids`, checked: `Σ u·x = 0`, `Σ u = 1`; its norm.
    fn check_witness(ids: &[u64]) -> u128 {
        let u = witness(ids).expect("a witness");
        let dot: i128 = u.iter().zip(ids).map(|(a, &x)| a * i128::from(x)).sum();
        assert_eq!(dot, 0, "{ids:?}: {u:?}");
        assert_eq!(u.iter().sum::<i128>(), 1, "{ids:?}: {u:?}");
        witness_norm(ids).unwrap()
    }

    #[test]
    fn neighbours_give_a_direct_witness() {
        assert_eq!(check_witness(&[1, 2, 3]), 3); // (2·e1 − 1·e2)
        assert_eq!(check_witness(&[5, 6]), 11);
        assert_eq!(check_witness(&[2, 4]), 3); // d = 2: e_2·2 − e_4, norm (2 + 4)/2
        assert_eq!(check_witness(&[1, 3, 4, 9]), 7); // 3 and 4 are neighbours
    }

    #[test]
    fn sets_whose_ids_agree_modulo_some_g_have_no_witness() {
        assert!(witness_norm(&[1, 3, 5]).is_none()); // all odd
        assert!(witness_norm(&[1, 4, 7]).is_none()); // all ≡ 1 mod 3
        assert!(!is_checkable(&[1, 3, 5], 5));
        assert!(!is_checkable(&[3, 9, 15, 21], 30));
    }

    #[test]
    fn folded_witnesses_satisfy_both_relations() {
        // No neighbours differ by their gcd; the fold must still succeed.
        for ids in [&[1u64, 3, 6][..], &[3, 5, 10], &[4, 7, 9], &[1, 3, 8, 15]] {
            check_witness(ids);
        }
        // The bound on the norm is enforced.
        assert!(is_checkable(&[1, 2, 4], 4));
    }

    #[test]
    fn checkable_refuses_malformed_sets() {
        assert!(!is_checkable(&[1], 3));
        assert!(!is_checkable(&[1, 1, 2], 3));
        assert!(!is_checkable(&[0, 1, 2], 3));
        assert!(!is_checkable(&[1, 2, 9], 3)); // an id beyond the dealing
        assert!(is_checkable(&[2, 1, 3], 3)); // order does not matter
    }

    #[test]
    fn the_shortest_direct_witness_is_taken() {
        // (5, 6) has norm 11; (6, 8) = 2·(3, 4) has norm 7.
        assert_eq!(check_witness(&[5, 6, 8]), 7);
        assert!(is_checkable(&[1, 2], 2));
    }

    #[test]
    fn helpers_hold_on_their_whole_domain() {
        assert_eq!(ceil_log2(8), 3);
        assert_eq!(ceil_log2(9), 4);
        assert_eq!(ceil_log2(1), 0);
        for (x, y) in [(-4i128, 6i128), (4, -6), (-9, -6), (7, 0), (0, -5), (-7, 0)] {
            let (g, a, b) = ext_gcd(x, y);
            assert!(g >= 0, "{x} {y}");
            assert_eq!(a * x + b * y, g, "{x} {y}");
        }
        assert_eq!(ext_gcd(-4, 6).0, 2);
    }

    #[test]
    fn the_checked_room_is_the_plain_room_over_2x() {
        let params = crate::ParamsBuilder::new(12)
            .q_bits(&[39, 39])
            .build()
            .unwrap();
        for (shift, x) in [(50u32, 4u64), (40, 10), (60, 1)] {
            let plain = super::super::max_abs_value(&params, shift) + 1.0;
            let checked = max_abs_value_checked(&params, shift, x) + 1.0;
            let ratio = plain / checked;
            assert!(
                (ratio / (2.0 * x as f64) - 1.0).abs() < 1e-9,
                "{shift} {x}: {ratio}"
            );
        }
    }

    #[test]
    fn the_checked_shift_covers_the_steering_allowance() {
        // k = 50; X = 5 → w = 4, k' = 54; three holders:
        // 2·(2^10 + 3·2^54·(1 + 2·5)) = 66·2^54 + 2^11 → 2^60.04 → 61.
        let s = Smudging::new(40, 10.0).unwrap();
        assert_eq!(s.bound_log2(), 50);
        assert_eq!(s.min_shift_bits_checked(3, 5), 61);
        // The smudging widening is bounded.
        let top = s.widened(super::super::MAX_SMUDGING_LOG2 - 50).unwrap();
        assert_eq!(top.bound_log2(), super::super::MAX_SMUDGING_LOG2);
        assert!(s.widened(super::super::MAX_SMUDGING_LOG2 - 49).is_err());
        assert_eq!(s.widened(3).unwrap().bound_log2(), 53);
    }

    #[test]
    fn witness_bits_grow_with_the_ids() {
        assert_eq!(check_witness_bits(1), 2); // 2·1 + 1 = 3 → 2 bits
        assert_eq!(check_witness_bits(4), 4); // 9 → 4 bits
        assert_eq!(check_witness_bits(10), 5); // 21 → 5 bits
    }
}
