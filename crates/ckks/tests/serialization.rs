//! Serialization round trips, sizes, and decoders fed malformed input:
//! truncated, oversized, bit-flipped and random bytes give errors, never panics.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::needless_range_loop
)]

use cipherflow_ckks::*;
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::sync::OnceLock;

struct Fixture {
    params: CkksParams,
    sk: SecretKey,
    ct_pk: Vec<u8>,
    ct_sk: Vec<u8>,
    pk: Vec<u8>,
    sk_bytes: Vec<u8>,
    rlk: Vec<u8>,
    gk: Vec<u8>,
    values: Vec<f64>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let params = ParamsBuilder::new(10)
            .q_bits(&[40, 30])
            .p_bits(&[45])
            .allow_insecure()
            .build()
            .unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let sk = SecretKey::generate(&params, &mut rng);
        let pk = PublicKey::generate(&sk, &mut rng).unwrap();
        let rlk = RelinKey::generate(&sk, &mut rng).unwrap();
        let gk = GaloisKeys::generate(&sk, &[1, -3], true, &mut rng).unwrap();
        let enc = Encoder::new(&params);
        let values: Vec<f64> = (0..params.slots()).map(|i| (i as f64).cos()).collect();
        let ct_pk = Encryptor::with_public_key(&pk)
            .encrypt_values(&enc, &values, &mut rng)
            .unwrap();
        let ct_sk = Encryptor::with_secret_key(&sk)
            .encrypt_values(&enc, &values, &mut rng)
            .unwrap();
        Fixture {
            ct_pk: ct_pk.to_bytes(&params).unwrap(),
            ct_sk: ct_sk.to_bytes(&params).unwrap(),
            pk: pk.to_bytes(),
            sk_bytes: sk.to_bytes().to_vec(),
            rlk: rlk.to_bytes(),
            gk: gk.to_bytes(&params),
            params,
            sk,
            values,
        }
    })
}

/// Every decoder on `bytes`; returns how many accepted.
fn decode_all(p: &CkksParams, bytes: &[u8]) -> usize {
    [
        Ciphertext::from_bytes(p, bytes).is_ok(),
        PublicKey::from_bytes(p, bytes).is_ok(),
        SecretKey::from_bytes(p, bytes).is_ok(),
        RelinKey::from_bytes(p, bytes).is_ok(),
        GaloisKeys::from_bytes(p, bytes).is_ok(),
    ]
    .iter()
    .filter(|&&x| x)
    .count()
}

/// Every decoder on `bytes` (ciphertext, public, secret, relinearization
/// and Galois keys), each result re-encoded.
fn decode_each(p: &CkksParams, bytes: &[u8]) -> [Result<Vec<u8>, CkksError>; 5] {
    [
        Ciphertext::from_bytes(p, bytes).map(|x| x.to_bytes(p).unwrap()),
        PublicKey::from_bytes(p, bytes).map(|x| x.to_bytes()),
        SecretKey::from_bytes(p, bytes).map(|x| x.to_bytes().to_vec()),
        RelinKey::from_bytes(p, bytes).map(|x| x.to_bytes()),
        GaloisKeys::from_bytes(p, bytes).map(|x| x.to_bytes(p)),
    ]
}

/// The fixture's encodings with the index of their decoder in [`decode_each`].
fn sources(f: &Fixture) -> [(&Vec<u8>, usize); 6] {
    [
        (&f.ct_pk, 0),
        (&f.ct_sk, 0),
        (&f.pk, 1),
        (&f.sk_bytes, 2),
        (&f.rlk, 3),
        (&f.gk, 4),
    ]
}

/// What the decoders must say of `src` (decoded by decoder `kind`) with bit
/// `bit` of byte `i` flipped: magic, version and kind (bytes 0..6) and
/// every other decoder (wrong kind) give `Decode`; the parameter
/// fingerprint (6..38) gives `ParamsMismatch`; in the body, `Decode`, or an
/// object that re-encodes to the flipped bytes (a decoder never ignores a
/// change). Galois keys re-sort their elements, so a flipped element id may
/// re-encode in another order: there only the change itself is checked.
fn check_flip(p: &CkksParams, src: &[u8], kind: usize, i: usize, bit: u8) -> Result<(), String> {
    let mut v = src.to_vec();
    v[i] ^= 1 << bit;
    for (k, r) in decode_each(p, &v).into_iter().enumerate() {
        let ok = match (&r, k == kind, i) {
            (Err(CkksError::Decode(_)), false, _) | (Err(CkksError::Decode(_)), true, 0..6) => true,
            (Err(CkksError::ParamsMismatch), true, 6..38) => true,
            (Err(CkksError::Decode(_)), true, 38..) => true,
            (Ok(re), true, 38..) => *re != src && (k == 4 || *re == v),
            _ => false,
        };
        if !ok {
            return Err(format!(
                "decoder {k} on source kind {kind}, byte {i} bit {bit}: {:?}",
                r.map(|re| re.len())
            ));
        }
    }
    Ok(())
}

#[test]
fn header_bit_flips_give_their_error() {
    let f = fixture();
    for (src, kind) in sources(f) {
        for i in 0..38 {
            for bit in 0..8 {
                check_flip(&f.params, src, kind, i, bit).unwrap();
            }
        }
    }
}

#[test]
fn round_trips_and_sizes() {
    let f = fixture();
    let p = &f.params;
    let dec = Decryptor::new(&f.sk);
    for bytes in [&f.ct_pk, &f.ct_sk] {
        let ct = Ciphertext::from_bytes(p, bytes).unwrap();
        assert_eq!(&ct.to_bytes(p).unwrap(), bytes);
        let got = dec.decrypt_values(&ct).unwrap();
        assert!(precision_bits(&f.values, &got).unwrap() > 15.0);
    }
    // Bit-packed: 40 + 30 bits per coefficient pair instead of 128; the
    // secret-key ciphertext stores c1 as a seed (half size).
    let n = p.n();
    let packed = 70 * n / 8;
    assert!(f.ct_pk.len() <= 2 * packed + 100, "{}", f.ct_pk.len());
    assert!(f.ct_sk.len() <= packed + 140, "{}", f.ct_sk.len());
    let sk2 = SecretKey::from_bytes(p, &f.sk_bytes).unwrap();
    assert_eq!(sk2.to_bytes().to_vec(), f.sk_bytes);
    assert_eq!(PublicKey::from_bytes(p, &f.pk).unwrap().to_bytes(), f.pk);
    assert_eq!(RelinKey::from_bytes(p, &f.rlk).unwrap().to_bytes(), f.rlk);
    let gk = GaloisKeys::from_bytes(p, &f.gk).unwrap();
    assert_eq!(gk.to_bytes(p), f.gk);
    assert_eq!(gk.elements().count(), 3);
}

#[test]
fn wrong_kind_version_and_params_rejected() {
    let f = fixture();
    let p = &f.params;
    assert_eq!(decode_all(p, &f.ct_pk), 1);
    assert_eq!(decode_all(p, &f.gk), 1);
    let mut v = f.ct_pk.clone();
    v[4] = 99;
    assert!(matches!(
        Ciphertext::from_bytes(p, &v),
        Err(CkksError::Decode(_))
    ));
    let other = ParamsBuilder::new(10)
        .q_bits(&[40, 31])
        .p_bits(&[45])
        .allow_insecure()
        .build()
        .unwrap();
    assert!(matches!(
        Ciphertext::from_bytes(&other, &f.ct_pk),
        Err(CkksError::ParamsMismatch)
    ));
}

#[test]
fn truncated_and_oversized_inputs_are_errors() {
    let f = fixture();
    let p = &f.params;
    for bytes in [&f.ct_pk, &f.ct_sk, &f.pk, &f.sk_bytes, &f.rlk, &f.gk] {
        for cut in (0..bytes.len()).step_by(97).chain([bytes.len() - 1]) {
            assert_eq!(decode_all(p, &bytes[..cut]), 0, "truncated at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode_all(p, &longer), 0);
    }
}

#[test]
fn out_of_range_coefficient_rejected() {
    let f = fixture();
    let p = &f.params;
    // Header 38 + size/level 2 + scale 8 + flags 1 = 49; set the first
    // 40-bit coefficient to all ones (≥ q_0).
    let mut v = f.ct_pk.clone();
    for b in &mut v[49..54] {
        *b = 0xff;
    }
    assert!(matches!(
        Ciphertext::from_bytes(p, &v),
        Err(CkksError::Decode(_))
    ));
    let mut v = f.ct_pk.clone();
    v[39] = 77; // level
    assert!(Ciphertext::from_bytes(p, &v).is_err());
    let mut v = f.ct_pk.clone();
    v[41..49].copy_from_slice(&f64::NAN.to_le_bytes());
    assert!(Ciphertext::from_bytes(p, &v).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let p = &fixture().params;
        // No magic: every decoder says Decode.
        for r in decode_each(p, &bytes) {
            prop_assert!(matches!(r, Err(CkksError::Decode(_))), "{:?}", r.map(|b| b.len()));
        }
        // Also with a valid ciphertext header in front: too short for any
        // ciphertext of these parameters, another kind for the others.
        let mut v = fixture().ct_pk[..38].to_vec();
        v.extend_from_slice(&bytes);
        for r in decode_each(p, &v) {
            prop_assert!(matches!(r, Err(CkksError::Decode(_))), "{:?}", r.map(|b| b.len()));
        }
    }

    #[test]
    fn bit_flips_never_panic(pos in 0usize..200_000, bit in 0u8..8, which in 0usize..6) {
        let f = fixture();
        let (src, kind) = sources(f)[which];
        let i = pos % src.len();
        if let Err(m) = check_flip(&f.params, src, kind, i, bit) {
            prop_assert!(false, "{}", m);
        }
    }
}
