//! Unit tests that need crate internals: a forced combination of `t − 1`
//! threshold shares (bypassing the checks) yields garbage.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::{Encoder, Encryptor, Preset};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

#[test]
fn forced_combination_below_threshold_is_garbage() {
    let params = Preset::Aggregation.build().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let crs = Crs([5; 32]);
    let parties = LocalParties::setup(&params, 4, 3, &mut rng).unwrap();
    let pk = parties.public_key(&params, &crs, &mut rng).unwrap();
    let mut thr = parties.threshold_secrets(&params).unwrap();
    let enc = Encoder::new(&params);
    let values = [0.25, -0.5, 0.75];
    let pt = enc.encode(&values, 1, 2f64.powi(90)).unwrap();
    let ct = Encryptor::with_public_key(&pk)
        .encrypt(&pt, &mut rng)
        .unwrap();
    let sm = Smudging::for_fresh_sum(&params, 4, 1, 40).unwrap();
    let active = [1u64, 2];
    // The checked API refuses …
    assert!(matches!(
        decryption_share(&params, &thr[0], &active, &ct, &sm, &mut rng),
        Err(crate::CkksError::Multiparty(
            MultipartyError::NotEnoughShares { have: 2, need: 3 }
        ))
    ));
    // … and parties that ignore the threshold get garbage: two points do
    // not determine a degree-2 polynomial.
    for th in thr.iter_mut() {
        th.threshold = 2;
    }
    let shares: Vec<_> = thr[..2]
        .iter()
        .map(|th| decryption_share(&params, th, &active, &ct, &sm, &mut rng).unwrap())
        .collect();
    let out = combine_decryption(&params, &ct, &shares)
        .and_then(|p| enc.decode(&p))
        .map(|v| v[..3].to_vec());
    match out {
        Err(_) => {}
        Ok(v) => {
            let err = v
                .iter()
                .zip(values)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(err > 1e3, "t-1 shares decrypted to within {err}");
        }
    }
}
