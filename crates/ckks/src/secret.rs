//! [`SecretPoly`]: the one home of "this polynomial is secret" — zeroized
//! on drop, never printed. Secret keys, key shares, Shamir shares and
//! threshold secrets hold their polynomial in it instead of each writing
//! its own `Drop` and redacted `Debug`.

use cipherflow_ring::RnsPoly;
use std::ops::{Deref, DerefMut};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A secret polynomial: reads like an [`RnsPoly`] (it dereferences to
/// one), is zeroized when dropped and prints as `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SecretPoly(RnsPoly);

impl SecretPoly {
    /// Wraps `poly`, which is zeroized with this value.
    pub(crate) fn new(poly: RnsPoly) -> Self {
        Self(poly)
    }
}

impl From<RnsPoly> for SecretPoly {
    fn from(poly: RnsPoly) -> Self {
        Self(poly)
    }
}

impl Deref for SecretPoly {
    type Target = RnsPoly;
    fn deref(&self) -> &RnsPoly {
        &self.0
    }
}

impl DerefMut for SecretPoly {
    fn deref_mut(&mut self) -> &mut RnsPoly {
        &mut self.0
    }
}

impl Drop for SecretPoly {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for SecretPoly {}

impl std::fmt::Debug for SecretPoly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_secret_polynomial_is_redacted_and_reads_through() {
        let params = crate::ParamsBuilder::new(12)
            .q_bits(&[39, 39])
            .build()
            .unwrap();
        let ring = params.ring();
        let p = SecretPoly::new(RnsPoly::from_signed(ring, &[1, -1, 2], ring.q_len(), 0));
        assert_eq!(format!("{p:?}"), "<redacted>");
        assert_eq!(p.q_len(), ring.q_len());
        let q = p.clone();
        assert!(q == p);
    }
}
