//! t-of-n threshold secret sharing of the collective key (Asharov et al.
//! 2012; Mouchet et al. 2021 §5), over the RNS ring.
//!
//! Dealer `i` picks a random polynomial `f_i(X) = s_i + r_1 X + … +
//! r_{t−1} X^{t−1}` whose coefficients `r_k` are uniform ring elements, and
//! sends `f_i(j)` to party `j`, the evaluation done slot by slot modulo every
//! ciphertext prime (in NTT form, which is a linear bijection, so sharing
//! NTT values shares the polynomial). Party `j` sums what it received:
//! `F(j) = Σ_i f_i(j)`, a degree-`(t−1)` Shamir share of `s = Σ s_i`.
//! For an active set `S` of at least `t` parties, `s = Σ_{j∈S} λ_j F(j)`
//! with the Lagrange coefficients `λ_j = Π_{k∈S, k≠j} x_k/(x_k − x_j)`
//! modulo each prime; `t − 1` shares are uniformly distributed and carry no
//! information on `s`.
//!
//! Bandwidth: instead of sampling `r_1 … r_{t−1}`, the dealer draws the
//! shares of `t − 1` recipients (never itself) as uniform ring elements
//! expanded from fresh 32-byte seeds — together with `f(0) = s_i` they
//! determine the same uniformly random `f` — and interpolates the others.
//! Seeded shares travel as their seed (~120 bytes instead of `N·log2 Q`
//! bits), so a dealer sends `n − t` full shares instead of `n − 1`.

use super::collective_keygen::SecretShare;
use super::error::MultipartyError;
use crate::error::CkksError;
use crate::params::CkksParams;
use crate::secret::SecretPoly;
use cipherflow_ring::sampler::{fresh_seed, uniform_from_seed};
use cipherflow_ring::{Modulus, RnsPoly};
use rand_core::{CryptoRng, RngCore};
use std::collections::BTreeSet;
use zeroize::{ZeroizeOnDrop, Zeroizing};

/// Checks that `ids` are non-zero, distinct, and non-zero and distinct
/// modulo every ciphertext prime (Shamir evaluation points).
pub(crate) fn validate_ids(params: &CkksParams, ids: &[u64]) -> Result<(), CkksError> {
    if ids.is_empty() {
        return Err(MultipartyError::NoShares.into());
    }
    let mut seen = BTreeSet::new();
    for &id in ids {
        if id == 0 {
            return Err(MultipartyError::InvalidPartyId(id).into());
        }
        if !seen.insert(id) {
            return Err(MultipartyError::DuplicateParty(id).into());
        }
    }
    for &q in params.q() {
        let mut residues = BTreeSet::new();
        for &id in ids {
            let r = id % q;
            if r == 0 || !residues.insert(r) {
                return Err(MultipartyError::InvalidPartyId(id).into());
            }
        }
    }
    Ok(())
}

/// A Shamir share `f_from(to)` of dealer `from`'s secret share, for party
/// `to`. Secret: zeroized on drop, redacted in `Debug`; send it only over an
/// authenticated, encrypted channel to `to`.
#[derive(Clone)]
pub struct ShamirShare {
    pub(crate) from: u64,
    pub(crate) to: u64,
    pub(crate) threshold: usize,
    pub(crate) parties: Vec<u64>,
    pub(crate) poly: SecretPoly,
    /// Set when `poly` is the expansion of this (secret) seed: the share
    /// then travels as the seed.
    pub(crate) seed: Option<Zeroizing<[u8; 32]>>,
    pub(crate) params: CkksParams,
}

impl ZeroizeOnDrop for ShamirShare {}

impl std::fmt::Debug for ShamirShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ShamirShare {{ from: {}, to: {}, threshold: {}, parties: {}, poly: <redacted> }}",
            self.from,
            self.to,
            self.threshold,
            self.parties.len()
        )
    }
}

impl ShamirShare {
    /// The dealer's party id.
    pub fn from(&self) -> u64 {
        self.from
    }

    /// The recipient's party id.
    pub fn to(&self) -> u64 {
        self.to
    }

    /// The threshold `t`.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// All party ids of the dealing (sorted).
    pub fn parties(&self) -> &[u64] {
        &self.parties
    }
}

/// Deals `sk` (whose party id must be set, see
/// [`SecretShare::with_party_id`]) into one Shamir share per party of
/// `party_ids`, any `threshold` of which reconstruct it. A dealer among
/// `party_ids` keeps the share addressed to itself; a dealer outside them
/// (a client dealing to a committee of key holders) keeps none — its id
/// only labels whose secret the shares carry, it is never an evaluation
/// point.
pub fn shamir_deal<R: RngCore + CryptoRng>(
    params: &CkksParams,
    sk: &SecretShare,
    threshold: usize,
    party_ids: &[u64],
    rng: &mut R,
) -> Result<Vec<ShamirShare>, CkksError> {
    sk.check(params)?;
    validate_ids(params, party_ids)?;
    let from = sk.party_id.ok_or_else(|| {
        MultipartyError::Mismatch(
            "the dealer's secret share has no party id (SecretShare::with_party_id)".into(),
        )
    })?;
    if from == 0 {
        return Err(MultipartyError::InvalidPartyId(from).into());
    }
    if threshold == 0 || threshold > party_ids.len() {
        return Err(MultipartyError::InvalidThreshold {
            threshold,
            parties: party_ids.len(),
        }
        .into());
    }
    let ring = params.ring();
    let q_len = ring.q_len();
    let n = params.n();
    // The shares of t − 1 recipients other than the dealer are uniform ring
    // elements expanded from fresh secret seeds (so they travel as 32
    // bytes); with f(0) = s_i they fix the uniformly random degree-(t − 1)
    // polynomial f, whose other values are interpolated.
    let seeded: Vec<u64> = party_ids
        .iter()
        .copied()
        .filter(|&p| p != from)
        .take(threshold - 1)
        .collect();
    let seeds: Vec<Zeroizing<[u8; 32]>> = seeded
        .iter()
        .map(|_| Zeroizing::new(fresh_seed(rng)))
        .collect();
    let values: Vec<SecretPoly> = std::iter::once(sk.restricted(q_len))
        .chain(
            seeds
                .iter()
                .map(|seed| Ok(SecretPoly::new(uniform_from_seed(ring, seed, q_len, 0)))),
        )
        .collect::<Result<_, CkksError>>()?;
    // Interpolation nodes: 0, then the seeded recipients.
    let nodes: Vec<u64> = std::iter::once(0).chain(seeded.iter().copied()).collect();
    let mut parties = party_ids.to_vec();
    parties.sort_unstable();
    let moduli = ring.q_moduli();
    let mut out = Vec::with_capacity(party_ids.len());
    for &to in party_ids {
        let position = seeded.iter().position(|&p| p == to);
        let (poly, seed) = match position {
            Some(k) => {
                let v = values.get(k + 1).ok_or(MultipartyError::NoShares)?;
                (RnsPoly::clone(v), seeds.get(k).cloned())
            }
            None => {
                let mut acc = RnsPoly::zero(ring, q_len, 0, true);
                for (i, m) in moduli.iter().enumerate() {
                    let lo = i * n;
                    let dst = acc.data_mut().get_mut(lo..lo + n).unwrap_or(&mut []);
                    for (node, v) in values.iter().enumerate() {
                        let w = lagrange_basis_at(m, &nodes, node, to)?;
                        let ws = m.shoup(w);
                        for (a, &r) in dst.iter_mut().zip(v.limb(i)) {
                            *a = m.add(*a, m.mul_shoup(r, w, ws));
                        }
                    }
                }
                (acc, None)
            }
        };
        out.push(ShamirShare {
            from,
            to,
            threshold,
            parties: parties.clone(),
            poly: poly.into(),
            seed,
            params: params.clone(),
        });
    }
    Ok(out)
}

/// A party's threshold secret `F(id) = Σ_i f_i(id)`: its Shamir share of
/// the collective secret. Zeroized on drop, redacted in `Debug`.
#[derive(Clone)]
pub struct ThresholdSecret {
    pub(crate) id: u64,
    pub(crate) threshold: usize,
    pub(crate) parties: Vec<u64>,
    pub(crate) poly: SecretPoly,
    pub(crate) params: CkksParams,
}

impl ZeroizeOnDrop for ThresholdSecret {}

impl std::fmt::Debug for ThresholdSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ThresholdSecret {{ id: {}, threshold: {}, parties: {}, poly: <redacted> }}",
            self.id,
            self.threshold,
            self.parties.len()
        )
    }
}

impl ThresholdSecret {
    /// This party's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The threshold `t`.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// All party ids of the federation (sorted).
    pub fn parties(&self) -> &[u64] {
        &self.parties
    }
}

/// The dealing a set of received shares belongs to, and their sum.
pub(crate) struct ReceivedSum {
    /// The dealing's threshold.
    pub(crate) threshold: usize,
    /// The dealing's parties (sorted).
    pub(crate) parties: Vec<u64>,
    /// The sum of the shares' polynomials.
    pub(crate) sum: SecretPoly,
}

/// The one check of Shamir shares a party received (both for its threshold
/// secret and for an aggregate's decryption): every share is for `params`,
/// addressed to `my_id`, of one dealing (same threshold and party set, which
/// holds `my_id`), and `senders` each sent exactly one. Senders need not be
/// parties of the dealing: with a committee of key holders every client
/// deals, and only the committee holds shares. Returns the dealing and the sum of the shares; shares from
/// other parties than `senders` are ignored.
pub(crate) fn sum_received(
    params: &CkksParams,
    my_id: u64,
    received: &[ShamirShare],
    senders: &[u64],
) -> Result<ReceivedSum, CkksError> {
    let mut mine = received.iter().filter(|s| senders.contains(&s.from));
    let first = mine.next().ok_or(MultipartyError::NoShares)?;
    let (threshold, parties) = (first.threshold, first.parties.clone());
    validate_ids(params, &parties)?;
    if !parties.contains(&my_id) {
        return Err(MultipartyError::UnexpectedParty(my_id).into());
    }
    let ring = params.ring();
    let mut sum = SecretPoly::new(RnsPoly::zero(ring, ring.q_len(), 0, true));
    let mut seen = BTreeSet::new();
    for s in std::iter::once(first).chain(mine) {
        if &s.params != params {
            return Err(CkksError::ParamsMismatch);
        }
        if s.to != my_id {
            return Err(MultipartyError::Mismatch(format!(
                "share addressed to party {}, not {my_id}",
                s.to
            ))
            .into());
        }
        if s.threshold != threshold || s.parties != parties {
            return Err(MultipartyError::Mismatch(
                "shares of different dealings (threshold or party set differ)".into(),
            )
            .into());
        }
        if !seen.insert(s.from) {
            return Err(MultipartyError::DuplicateParty(s.from).into());
        }
        sum.add_assign(ring, &s.poly)?;
    }
    if let Some(&missing) = senders.iter().find(|p| !seen.contains(p)) {
        return Err(MultipartyError::MissingParty(missing).into());
    }
    Ok(ReceivedSum {
        threshold,
        parties,
        sum,
    })
}

/// Sums the Shamir shares party `my_id` received — exactly one from every
/// party of the dealing, itself included — into its threshold secret.
pub fn shamir_combine(
    params: &CkksParams,
    my_id: u64,
    received: &[ShamirShare],
) -> Result<ThresholdSecret, CkksError> {
    let first = received.first().ok_or(MultipartyError::NoShares)?;
    let parties = first.parties.clone();
    // `sum_received` ignores senders outside the list it is given; here
    // every share must come from the dealing.
    if let Some(s) = received.iter().find(|s| !parties.contains(&s.from)) {
        return Err(MultipartyError::UnexpectedParty(s.from).into());
    }
    let r = sum_received(params, my_id, received, &parties)?;
    Ok(ThresholdSecret {
        id: my_id,
        threshold: r.threshold,
        parties: r.parties,
        poly: r.sum,
        params: params.clone(),
    })
}

/// The Lagrange basis polynomial of `nodes[node]` over `nodes`, evaluated
/// at `x`, modulo `m`: `Π_{k≠node} (x − x_k)/(x_node − x_k)`.
fn lagrange_basis_at(m: &Modulus, nodes: &[u64], node: usize, x: u64) -> Result<u64, CkksError> {
    let xn = m.reduce(nodes.get(node).copied().ok_or(MultipartyError::NoShares)?);
    let x = m.reduce(x);
    let (mut num, mut den) = (1u64, 1u64);
    for (_, &xk) in nodes.iter().enumerate().filter(|&(k, _)| k != node) {
        let xk = m.reduce(xk);
        num = m.mul(num, m.sub(x, xk));
        den = m.mul(den, m.sub(xn, xk));
    }
    Ok(m.mul(num, m.inv(den)?))
}

/// Lagrange coefficient of `me` for interpolation at 0 over `active`,
/// modulo `m`: `Π_{k≠me} x_k / (x_k − x_me)`.
pub(crate) fn lagrange(m: &Modulus, me: u64, active: &[u64]) -> Result<u64, CkksError> {
    let xm = m.reduce(me);
    let (mut num, mut den) = (1u64, 1u64);
    for &k in active.iter().filter(|&&k| k != me) {
        let xk = m.reduce(k);
        num = m.mul(num, xk);
        den = m.mul(den, m.sub(xk, xm));
    }
    Ok(m.mul(num, m.inv(den)?))
}
