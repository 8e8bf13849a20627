//! Private prediction that continues from a hand-off: the first layers of
//! a model ran under homomorphic encryption at a platform, and the platform
//! and the user now hold additive shares, in `Z_2^128`, of the head's
//! activations (`cipherflow_ckks::handoff`: the user's decryption of a
//! masked ciphertext and the platform's `−mask`, both decoded to slot
//! values times `2^(f + guard)`). The model's creator holds the tail.
//!
//! Parties: the creator is the model owner (party 0, the tail's weights
//! are its private input), the user is the data owner (party 1, it alone
//! learns the classes), the platform is party 2 (its share of the
//! activations is its private input). Each of the two shares is input as
//! a replicated sharing; their sum is the activations times
//! `2^(f + guard)`; one truncation by `guard` bits gives fixed-point
//! activations, and the tail runs as in [`super::predict`].
//!
//! **Security** (semi-honest, honest majority, as the rest of the crate):
//! any one party's view is simulatable from its own input and output.
//! The user's share is its decryption of a masked ciphertext, within
//! statistical distance 2^−40 of uniform whatever the activations; the
//! platform's share is its own random mask; the creator sees only
//! replicated shares. No single party — and neither the platform nor the
//! creator — sees an activation; two colluding parties could reconstruct
//! (the honest-majority assumption). The truncation fails with
//! probability below 2^−40 per element when the shared value stays below
//! 2^86 (`SlotDecoding` refuses parameters that would exceed it).

use super::predict::{logits_from, SharedModel, CLIENT, HELPER};
use crate::party::Party;
use crate::MpcError;

/// The user's role: it holds one share and receives the classes.
pub const USER: usize = CLIENT;
/// The platform's role: it holds the other share.
pub const PLATFORM: usize = HELPER;

/// One side's shares of the head's activations: `rows` examples of
/// `cols` values each, row-major, in `Z_2^128`.
#[derive(Clone, Copy, Debug)]
pub struct ActivationShare<'a> {
    /// Examples.
    pub rows: usize,
    /// Values per example.
    pub cols: usize,
    /// The shares.
    pub values: &'a [u128],
}

/// The user (`Some` at party 1) and the platform (`Some` at party 2) put
/// in their shares; the tail (`model`, shared by the creator) runs on their
/// sum truncated by `guard` bits; the user gets `Some(classes)`.
pub fn predict_from_handoff(
    p: &mut Party<u128>,
    model: &SharedModel<u128>,
    share: Option<ActivationShare<'_>>,
    guard: u32,
) -> Result<Option<Vec<usize>>, MpcError> {
    let me = p.id();
    let mine = |who: usize| {
        if me == who {
            share
                .map(|s| (s.rows, s.cols, s.values))
                .ok_or_else(|| MpcError::Party(format!("party {me} holds a share but gave none")))
                .map(Some)
        } else {
            Ok(None)
        }
    };
    let width: usize = model.input_shape().iter().product();
    if guard == 0 || guard > 100 {
        return Err(MpcError::Config(format!(
            "guard bits {guard} not in 1..=100"
        )));
    }
    let a = p.share_ring(USER, mine(USER)?)?;
    let b = p.share_ring(PLATFORM, mine(PLATFORM)?)?;
    for (who, s) in [(USER, &a), (PLATFORM, &b)] {
        if s.shape().1 != width {
            return Err(MpcError::Malformed {
                from: who,
                what: format!("activations of {} values, not {width}", s.shape().1),
            });
        }
    }
    if a.shape() != b.shape() {
        return Err(MpcError::Malformed {
            from: PLATFORM,
            what: format!(
                "{} examples of activations, the user's share has {}",
                b.shape().0,
                a.shape().0
            ),
        });
    }
    let sum = p.add(&a, &b)?;
    let h = p.with_op("handoff", |p| p.truncate(&sum, guard))?;
    let logits = logits_from(p, model, h)?;
    let idx = p.argmax(&logits)?;
    Ok(p.reveal_int_to(&idx, &[USER])?
        .map(|v| v.into_iter().map(|c| c.max(0) as usize).collect()))
}
