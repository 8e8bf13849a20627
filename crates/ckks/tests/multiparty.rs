//! Multiparty CKKS: collective public key, t-of-n threshold and n-of-n
//! additive decryption with smudging, the federated sum, malformed inputs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_ckks::multiparty::*;
use cipherflow_ckks::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// Scale used throughout: the aggregation preset keeps ~100 bits at level 1.
const LOG_SCALE: i32 = 90;

struct Federation {
    params: CkksParams,
    ids: Vec<u64>,
    sks: Vec<SecretShare>,
    pk: PublicKey,
    thr: Vec<ThresholdSecret>,
    enc: Encoder,
    rng: ChaCha20Rng,
}

fn federation(params: CkksParams, n: u64, t: usize, seed: u64) -> Federation {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let crs = Crs::generate(&mut rng);
    let parties = LocalParties::setup(&params, n, t, &mut rng).unwrap();
    let pk = parties.public_key(&params, &crs, &mut rng).unwrap();
    let thr = parties.threshold_secrets(&params).unwrap();
    let enc = Encoder::new(&params);
    Federation {
        params,
        ids: parties.ids,
        sks: parties.keys,
        pk,
        thr,
        enc,
        rng,
    }
}

fn random_values(rng: &mut ChaCha20Rng, k: usize) -> Vec<f64> {
    (0..k)
        .map(|_| (rng.next_u64() >> 11) as f64 / 2f64.powi(53) * 2.0 - 1.0)
        .collect()
}

fn encrypt(f: &mut Federation, values: &[f64]) -> Ciphertext {
    let pt = f.enc.encode(values, 1, 2f64.powi(LOG_SCALE)).unwrap();
    Encryptor::with_public_key(&f.pk)
        .encrypt(&pt, &mut f.rng)
        .unwrap()
}

fn threshold_decrypt(
    f: &mut Federation,
    active: &[u64],
    ct: &Ciphertext,
    sm: &Smudging,
) -> Result<Vec<f64>, CkksError> {
    let mut shares = Vec::new();
    for &id in active {
        let thr = f.thr.iter().find(|t| t.id() == id).unwrap();
        shares.push(decryption_share(
            &f.params, thr, active, ct, sm, &mut f.rng,
        )?);
    }
    f.enc.decode(&combine_decryption(&f.params, ct, &shares)?)
}

/// Centered coefficients of an NTT-form polynomial over the first two
/// primes (CRT; the values here stay far below q0·q1/2).
fn coeffs(params: &CkksParams, p: &cipherflow_ring::RnsPoly) -> Vec<i128> {
    let ring = params.ring();
    let mut p = p.clone();
    p.ntt_inverse(ring);
    let m0 = *ring.q_tables()[0].modulus();
    let m1 = *ring.q_tables()[1].modulus();
    let (q0, q1) = (m0.value() as i128, m1.value() as i128);
    let inv = m1.inv(m0.value()).unwrap();
    p.limb(0)
        .iter()
        .zip(p.limb(1))
        .map(|(&x0, &x1)| {
            let t = m1.mul(m1.sub(x1, m1.reduce(x0)), inv) as i128;
            let x = x0 as i128 + q0 * t;
            if x > q0 * q1 / 2 {
                x - q0 * q1
            } else {
                x
            }
        })
        .collect()
}

/// `log2` of the largest coefficient of `decrypted − encoded`: the exact
/// ciphertext noise (the encoder's float error is part of the message).
fn noise_log2(
    params: &CkksParams,
    decrypted: &Plaintext,
    encoded: &cipherflow_ring::RnsPoly,
) -> f64 {
    let d = decrypted.poly().sub(params.ring(), encoded).unwrap();
    let max = coeffs(params, &d)
        .iter()
        .map(|x| x.unsigned_abs())
        .max()
        .unwrap();
    (max.max(1) as f64).log2()
}

#[test]
fn collective_key_additive_decryption() {
    let mut f = federation(Preset::Aggregation.build().unwrap(), 5, 5, 1);
    let values = random_values(&mut f.rng, f.params.slots());
    let ct = encrypt(&mut f, &values);
    let sm = Smudging::for_fresh_sum(&f.params, 5, 1, DEFAULT_STAT_SEC_BITS).unwrap();
    let shares: Vec<_> = f
        .sks
        .iter()
        .map(|s| decryption_share_additive(&f.params, s, &ct, &sm, &mut f.rng).unwrap())
        .collect();
    let out = f
        .enc
        .decode(&combine_decryption(&f.params, &ct, &shares).unwrap())
        .unwrap();
    let bits = precision_bits(&values, &out).unwrap();
    let expected = sm.expected_precision_bits(&f.params, 2f64.powi(LOG_SCALE), 5);
    assert!(
        bits >= 22.0 && bits >= expected - 1.0,
        "{bits:.1} bits, expected {expected:.1}"
    );
    // The ideal key s = Σ s_i decrypts the same ciphertext without smudging.
    let ideal = ideal_secret_key(&f.params, &f.sks).unwrap();
    let exact = Decryptor::new(&ideal).decrypt_values(&ct).unwrap();
    assert!(precision_bits(&values, &exact).unwrap() > 40.0);
    // Missing one party: garbage.
    let out = combine_decryption(&f.params, &ct, &shares[1..])
        .and_then(|p| f.enc.decode(&p))
        .map(|v| precision_bits(&values, &v).unwrap());
    assert!(
        out.as_ref().map_or(true, |&b| b < 0.0),
        "n-1 additive shares decrypted: {out:?}"
    );
}

#[test]
fn threshold_with_exactly_t_parties_of_several_subsets() {
    let mut f = federation(Preset::Aggregation.build().unwrap(), 6, 4, 2);
    let values = random_values(&mut f.rng, 64);
    let ct = encrypt(&mut f, &values);
    let sm = Smudging::for_fresh_sum(&f.params, 6, 1, DEFAULT_STAT_SEC_BITS).unwrap();
    for active in [
        vec![1u64, 2, 3, 4],
        vec![3, 4, 5, 6],
        vec![1, 6, 2, 5],
        vec![1, 2, 3, 4, 5, 6],
    ] {
        let out = threshold_decrypt(&mut f, &active, &ct, &sm).unwrap();
        let bits = precision_bits(&values, &out[..64]).unwrap();
        assert!(bits >= 22.0, "{active:?}: {bits:.1} bits");
    }
}

#[test]
fn fewer_than_t_shares_fail() {
    let mut f = federation(Preset::Aggregation.build().unwrap(), 5, 3, 3);
    let ct = encrypt(&mut f, &[0.5]);
    let sm = Smudging::for_fresh_sum(&f.params, 5, 1, 40).unwrap();
    match threshold_decrypt(&mut f, &[1, 2], &ct, &sm) {
        Err(CkksError::Multiparty(MultipartyError::NotEnoughShares { have: 2, need: 3 })) => {}
        other => panic!("t-1 parties: {other:?}"),
    }
    // A share set for 3 active parties with one missing.
    let active = [1u64, 2, 3];
    let shares: Vec<_> = f.thr[..2]
        .iter()
        .map(|t| decryption_share(&f.params, t, &active, &ct, &sm, &mut f.rng).unwrap())
        .collect();
    assert!(matches!(
        combine_decryption(&f.params, &ct, &shares),
        Err(CkksError::Multiparty(MultipartyError::MissingParty(3)))
    ));
    // Duplicate party.
    let dup = vec![shares[0].clone(), shares[0].clone(), shares[1].clone()];
    assert!(matches!(
        combine_decryption(&f.params, &ct, &dup),
        Err(CkksError::Multiparty(MultipartyError::DuplicateParty(1)))
    ));
    // A party outside the active set, and an id outside the federation.
    let e = decryption_share(&f.params, &f.thr[4], &active, &ct, &sm, &mut f.rng).unwrap_err();
    assert!(
        matches!(&e, CkksError::Multiparty(MultipartyError::Mismatch(m))
            if m == "party 5 is not in the active set"),
        "{e:?}"
    );
    assert!(matches!(
        decryption_share(&f.params, &f.thr[0], &[1, 2, 9], &ct, &sm, &mut f.rng),
        Err(CkksError::Multiparty(MultipartyError::UnexpectedParty(9)))
    ));
}

#[test]
fn federated_sum_of_client_vectors() {
    // 10 clients under a 6-of-10 key; 3 drop out before decryption.
    let n = 10;
    let mut f = federation(Preset::Aggregation.build().unwrap(), n, 6, 4);
    let eval = Evaluator::new(&f.params);
    let slots = f.params.slots();
    let mut sum = vec![0.0; slots];
    let mut acc: Option<Ciphertext> = None;
    let mut pt_sum: Option<cipherflow_ring::RnsPoly> = None;
    for _ in 0..n {
        let v = random_values(&mut f.rng, slots);
        for (s, x) in sum.iter_mut().zip(&v) {
            *s += x;
        }
        let pt = f.enc.encode(&v, 1, 2f64.powi(LOG_SCALE)).unwrap();
        pt_sum = Some(match pt_sum {
            None => pt.poly().clone(),
            Some(p) => p.add(f.params.ring(), pt.poly()).unwrap(),
        });
        let ct = Encryptor::with_public_key(&f.pk)
            .encrypt(&pt, &mut f.rng)
            .unwrap();
        acc = Some(match acc {
            None => ct,
            Some(a) => eval.add(&a, &ct).unwrap(),
        });
    }
    let acc = acc.unwrap();
    let sm = Smudging::for_fresh_sum(&f.params, n as usize, n as usize, 40)
        .unwrap()
        .with_value_bound(n as f64)
        .unwrap();
    let active = [1u64, 2, 4, 5, 7, 8, 10];
    let out = threshold_decrypt(&mut f, &active, &acc, &sm).unwrap();
    let bits = precision_bits(&sum, &out).unwrap();
    let expected = sm.expected_precision_bits(&f.params, acc.scale(), active.len());
    assert!(
        bits >= 20.0 && bits >= expected - 1.5,
        "{bits:.1} bits, expected {expected:.1}"
    );
    // The stated noise bound covers the actual noise of the sum.
    let ideal = ideal_secret_key(&f.params, &f.sks).unwrap();
    let noise = noise_log2(
        &f.params,
        &Decryptor::new(&ideal).decrypt(&acc).unwrap(),
        &pt_sum.unwrap(),
    );
    assert!(
        noise < sm.noise_log2(),
        "noise 2^{noise:.1} > bound 2^{:.1}",
        sm.noise_log2()
    );
}

#[test]
fn smudging_noise_is_2_lambda_times_the_ciphertext_noise() {
    let mut f = federation(Preset::Aggregation.build().unwrap(), 3, 3, 5);
    let values = random_values(&mut f.rng, f.params.slots());
    let pt = f.enc.encode(&values, 1, 2f64.powi(LOG_SCALE)).unwrap();
    let ct = Encryptor::with_public_key(&f.pk)
        .encrypt(&pt, &mut f.rng)
        .unwrap();
    let ideal = ideal_secret_key(&f.params, &f.sks).unwrap();
    let dec = Decryptor::new(&ideal);
    let ct_noise = noise_log2(&f.params, &dec.decrypt(&ct).unwrap(), pt.poly());
    // Made over Q ∪ P and divided by P: what is left is the rounding's
    // τ0 + τ1·s (coefficients of order √N), not v·e + e0 + e1·s.
    assert!(
        ct_noise > 4.0 && ct_noise < 12.0,
        "fresh noise 2^{ct_noise:.1}"
    );
    let lambda = 40;
    let sm = Smudging::new(lambda, ct_noise).unwrap();
    assert_eq!(
        sm.bound_log2(),
        (f64::from(lambda) + ct_noise).ceil() as u32
    );
    // One party's smudging noise: its additive share minus s_1·c1, i.e. the
    // combined plaintext of all shares minus the exact decryption, with the
    // other parties' shares unsmudged … measured here for all three at once.
    let shares: Vec<_> = f
        .sks
        .iter()
        .map(|s| decryption_share_additive(&f.params, s, &ct, &sm, &mut f.rng).unwrap())
        .collect();
    let smudged = combine_decryption(&f.params, &ct, &shares).unwrap();
    let exact = dec.decrypt(&ct).unwrap();
    let e: Vec<i128> = coeffs(
        &f.params,
        &smudged.poly().sub(f.params.ring(), exact.poly()).unwrap(),
    );
    let max = e.iter().map(|x| x.unsigned_abs()).max().unwrap() as f64;
    let std = (e.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / e.len() as f64).sqrt();
    let want_std = sm.sigma() * 3f64.sqrt();
    assert!(
        max.log2() >= f64::from(lambda) + ct_noise,
        "max 2^{:.1}",
        max.log2()
    );
    assert!(max <= 3.0 * 2f64.powi(sm.bound_log2() as i32));
    assert!(
        (std / want_std - 1.0).abs() < 0.05,
        "std 2^{:.2} vs 2^{:.2}",
        std.log2(),
        want_std.log2()
    );
}

#[test]
fn shares_are_bound_to_their_ciphertext_and_mode() {
    let mut f = federation(Preset::Aggregation.build().unwrap(), 3, 2, 6);
    let a = encrypt(&mut f, &[1.0]);
    let b = encrypt(&mut f, &[1.0]);
    let sm = Smudging::for_fresh_sum(&f.params, 3, 1, 40).unwrap();
    let active = [1u64, 2];
    let sa: Vec<_> = f.thr[..2]
        .iter()
        .map(|t| decryption_share(&f.params, t, &active, &a, &sm, &mut f.rng).unwrap())
        .collect();
    assert!(matches!(
        combine_decryption(&f.params, &b, &sa),
        Err(CkksError::Multiparty(MultipartyError::Mismatch(_)))
    ));
    let add = decryption_share_additive(&f.params, &f.sks[2], &a, &sm, &mut f.rng).unwrap();
    assert!(matches!(
        combine_decryption(&f.params, &a, &[sa[0].clone(), add]),
        Err(CkksError::Multiparty(MultipartyError::MixedModes))
    ));
    // Shares for different active sets.
    let other = decryption_share(&f.params, &f.thr[1], &[2, 3], &a, &sm, &mut f.rng).unwrap();
    let e = combine_decryption(&f.params, &a, &[sa[0].clone(), other]).unwrap_err();
    assert!(
        matches!(&e, CkksError::Multiparty(MultipartyError::Mismatch(m))
            if m.contains("different active sets")),
        "{e:?}"
    );
    assert_eq!(
        combine_decryption(&f.params, &a, &[]).unwrap_err(),
        CkksError::Multiparty(MultipartyError::NoShares)
    );
    // Public-key shares of another CRS, or twice the same share.
    let mut rng = ChaCha20Rng::seed_from_u64(60);
    let crs = Crs([1; 32]);
    let p1 = public_key_share(&f.params, &f.sks[0], &crs, &mut rng).unwrap();
    let p2 = public_key_share(&f.params, &f.sks[1], &Crs([2; 32]), &mut rng).unwrap();
    let e = combine_public_key(&f.params, &crs, &[p1.clone(), p2]).unwrap_err();
    assert!(
        matches!(&e, CkksError::Multiparty(MultipartyError::Mismatch(m))
            if m.contains("another CRS")),
        "{e:?}"
    );
    let e = combine_public_key(&f.params, &crs, &[p1.clone(), p1]).unwrap_err();
    assert!(
        matches!(&e, CkksError::Multiparty(MultipartyError::Mismatch(m))
            if m.contains("given twice")),
        "{e:?}"
    );
}

#[test]
fn modulus_too_small_for_smudging_is_refused() {
    let mut f = federation(Preset::Aggregation.build().unwrap(), 3, 2, 7);
    // Level 0 (60 bits) cannot hold 2^64 smudging (λ = 50, B = 2^14).
    let sm = Smudging::new(50, 14.0).unwrap();
    let pt = f.enc.encode(&[1.0], 0, 2f64.powi(40)).unwrap();
    let ct = Encryptor::with_public_key(&f.pk)
        .encrypt(&pt, &mut f.rng)
        .unwrap();
    assert!(matches!(
        decryption_share(&f.params, &f.thr[0], &[1, 2], &ct, &sm, &mut f.rng),
        Err(CkksError::Multiparty(
            MultipartyError::ModulusTooSmall { .. }
        ))
    ));
    assert!(matches!(
        decryption_share_additive(&f.params, &f.sks[0], &ct, &sm, &mut f.rng),
        Err(CkksError::Multiparty(
            MultipartyError::ModulusTooSmall { .. }
        ))
    ));
    // Level 1 (100 bits) at scale 2^90 with a declared value bound of 2^12.
    let sm = Smudging::for_fresh_sum(&f.params, 3, 1, 40).unwrap();
    let ct = encrypt(&mut f, &[1.0]);
    assert!(decryption_share(&f.params, &f.thr[0], &[1, 2], &ct, &sm, &mut f.rng).is_ok());
    let max = sm.max_log_scale(&f.params, 1, 2).unwrap();
    assert!(max > 95.0 && max < 99.0, "max scale 2^{max:.1}");
    assert!(sm.max_log_scale(&f.params, 0, 2).unwrap() < 60.0);
    let big = sm.with_value_bound(2f64.powi(12)).unwrap();
    let e = decryption_share(&f.params, &f.thr[0], &[1, 2], &ct, &big, &mut f.rng).unwrap_err();
    assert!(
        matches!(
            e,
            CkksError::Multiparty(MultipartyError::ModulusTooSmall {
                level: 1,
                parties: 2,
                ..
            })
        ),
        "{e:?}"
    );
    // λ out of 20..=128, a non-finite noise bound, and λ + log2 B = 228
    // over the 120-bit sampler.
    for (lambda, noise, why) in [
        (10, 5.0, "statistical security 10"),
        (40, f64::NAN, "noise bound"),
        (128, 100.0, "smudging bound 2^228"),
    ] {
        let e = Smudging::new(lambda, noise).unwrap_err();
        assert!(
            matches!(&e, CkksError::Multiparty(MultipartyError::InvalidSmudging(m))
                if m.contains(why)),
            "{lambda} {noise}: {e:?}"
        );
    }
}

#[test]
fn invalid_ids_and_thresholds_are_refused() {
    let params = Preset::Aggregation.build().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let sk = SecretShare::generate_for(&params, 1, &mut rng);
    use MultipartyError as M;
    let mp = |r: Result<Vec<ShamirShare>, CkksError>| match r {
        Err(CkksError::Multiparty(e)) => e,
        other => panic!("expected a multiparty error, got {other:?}"),
    };
    for (t, ids, want) in [
        (2, vec![0u64, 1], M::InvalidPartyId(0)),
        (2, vec![1, 1, 2], M::DuplicateParty(1)),
        (
            0,
            vec![1, 2],
            M::InvalidThreshold {
                threshold: 0,
                parties: 2,
            },
        ),
        (
            3,
            vec![1, 2],
            M::InvalidThreshold {
                threshold: 3,
                parties: 2,
            },
        ),
    ] {
        let e = mp(shamir_deal(&params, &sk, t, &ids, &mut rng));
        assert_eq!(e, want, "{t} {ids:?}");
    }
    // A dealer (party 1) outside the recipients deals to them (a committee
    // of key holders) and keeps no share; such shares are not a threshold
    // secret of the whole federation, which every party deals to.
    let to_committee = shamir_deal(&params, &sk, 2, &[2, 3], &mut rng).unwrap();
    assert_eq!(
        to_committee.iter().map(ShamirShare::to).collect::<Vec<_>>(),
        [2, 3]
    );
    let e = shamir_combine(&params, 2, &to_committee[..1]).unwrap_err();
    assert!(
        matches!(&e, CkksError::Multiparty(M::UnexpectedParty(1))),
        "{e}"
    );
    let anonymous = SecretShare::generate(&params, &mut rng);
    let e = mp(shamir_deal(&params, &anonymous, 1, &[1], &mut rng));
    assert!(
        matches!(&e, M::Mismatch(m) if m.contains("no party id")),
        "{e}"
    );
    // An id ≡ 0 modulo a prime.
    let q0 = params.q()[0];
    let e = mp(shamir_deal(&params, &sk, 1, &[1, q0], &mut rng));
    assert_eq!(e, M::InvalidPartyId(q0));
    // Combining shares addressed to someone else, or from two dealings.
    let s = shamir_deal(&params, &sk, 1, &[1, 2], &mut rng).unwrap();
    let e = shamir_combine(&params, 1, &s).unwrap_err();
    assert!(
        matches!(&e, CkksError::Multiparty(M::Mismatch(m)) if m.contains("addressed to party 2")),
        "{e}"
    );
    // Party 2's dealing is missing.
    let e = shamir_combine(&params, 1, &s[..1]).unwrap_err();
    assert_eq!(e, CkksError::Multiparty(M::MissingParty(2)));
    assert!(format!("{sk:?}").contains("redacted"));
    assert!(format!("{:?}", s[0]).contains("redacted"));
}

/// `Err(CkksError::Decode(m))` with `m` containing `want`.
fn assert_decode_error<T>(r: Result<T, CkksError>, want: &str, what: &str) {
    match r {
        Err(CkksError::Decode(m)) if m.contains(want) => {}
        other => panic!(
            "{what}: expected Decode(\"…{want}…\"), got {:?}",
            other.map(|_| ())
        ),
    }
}

/// Every malformed variant of `bytes` is refused with its own error;
/// `tail_error` is the message of the saturated tail (the secret share's
/// ternary check, a residue's range check elsewhere).
fn assert_decode_errors<T: std::fmt::Debug>(
    name: &str,
    bytes: &[u8],
    tail_error: &str,
    parse: impl Fn(&[u8]) -> Result<T, CkksError>,
) {
    assert!(parse(bytes).is_ok(), "{name}: valid bytes refused");
    for cut in [0, 5, 38, 40, bytes.len() / 2, bytes.len() - 1] {
        assert_decode_error(
            parse(&bytes[..cut]),
            "truncated",
            &format!("{name}: truncated at {cut}"),
        );
    }
    let mut long = bytes.to_vec();
    long.push(0);
    assert_decode_error(
        parse(&long),
        "trailing bytes",
        &format!("{name}: trailing byte"),
    );
    let mut kind = bytes.to_vec();
    kind[5] ^= 0x0f;
    let want = format!("object kind {}, expected {}", bytes[5] ^ 0x0f, bytes[5]);
    assert_decode_error(parse(&kind), &want, &format!("{name}: wrong kind"));
    let mut fp = bytes.to_vec();
    fp[10] ^= 1;
    assert!(
        matches!(parse(&fp), Err(CkksError::ParamsMismatch)),
        "{name}: fingerprint"
    );
    // Saturating the tail: an out-of-range residue, or in a secret share a
    // coefficient code 3 (N·width bits fill whole bytes: there is no padding
    // for the padding check to see).
    let mut tail = bytes.to_vec();
    let len = tail.len();
    for b in &mut tail[len - 16..] {
        *b = 0xff;
    }
    assert_decode_error(parse(&tail), tail_error, &format!("{name}: saturated tail"));
}

#[test]
fn serialization_round_trips_and_rejects_malformed_bytes() {
    let mut f = federation(Preset::Aggregation.build().unwrap(), 3, 2, 9);
    let params = f.params.clone();
    let crs = Crs([3; 32]);
    // Secret share.
    let sk_bytes = f.sks[0].to_bytes();
    let back = SecretShare::from_bytes(&params, &sk_bytes).unwrap();
    assert_eq!(back.party_id(), Some(1));
    assert_eq!(back.to_bytes(), sk_bytes);
    assert_decode_errors("secret share", &sk_bytes, "not ternary", |b| {
        SecretShare::from_bytes(&params, b)
    });
    // Public-key share.
    let pks = public_key_share(&params, &f.sks[0], &crs, &mut f.rng).unwrap();
    let pb = pks.to_bytes();
    assert_eq!(PublicKeyShare::from_bytes(&params, &pb).unwrap(), pks);
    assert_decode_errors("pk share", &pb, "coefficient out of range", |b| {
        PublicKeyShare::from_bytes(&params, b)
    });
    // Shamir share and threshold secret.
    let sh = shamir_deal(&params, &f.sks[0], 2, &f.ids, &mut f.rng).unwrap();
    // Party 2's share is drawn from a seed (t − 1 = 1 seeded recipient) and
    // travels as 32 bytes; party 3's is interpolated and travels in full.
    let seeded = sh[1].to_bytes();
    assert!(seeded.len() < 200, "seeded share of {} bytes", seeded.len());
    let back = ShamirShare::from_bytes(&params, &seeded).unwrap();
    assert_eq!((back.from(), back.to(), back.threshold()), (1, 2, 2));
    assert_eq!(back.to_bytes(), seeded);
    let sb = sh[2].to_bytes();
    assert!(sb.len() > 100_000);
    let back = ShamirShare::from_bytes(&params, &sb).unwrap();
    assert_eq!((back.from(), back.to(), back.threshold()), (1, 3, 2));
    assert_eq!(back.to_bytes(), sb);
    assert_decode_errors("shamir share", &sb, "coefficient out of range", |b| {
        ShamirShare::from_bytes(&params, b)
    });
    let tb = f.thr[0].to_bytes();
    assert_eq!(
        ThresholdSecret::from_bytes(&params, &tb)
            .unwrap()
            .to_bytes(),
        tb
    );
    assert_decode_errors("threshold secret", &tb, "coefficient out of range", |b| {
        ThresholdSecret::from_bytes(&params, b)
    });
    // Decryption share; then with a corrupted party id / threshold.
    let ct = encrypt(&mut f, &[1.0]);
    let sm = Smudging::for_fresh_sum(&params, 3, 1, 40).unwrap();
    let ds = decryption_share(&params, &f.thr[0], &[1, 3], &ct, &sm, &mut f.rng).unwrap();
    let db = ds.to_bytes();
    assert_eq!(DecryptionShare::from_bytes(&params, &db).unwrap(), ds);
    assert_decode_errors("decryption share", &db, "coefficient out of range", |b| {
        DecryptionShare::from_bytes(&params, b)
    });
    let header = 4 + 1 + 1 + 32;
    let mut bad_party = db.clone();
    bad_party[header] = 7; // party 7 is not in the active set
    assert_eq!(
        DecryptionShare::from_bytes(&params, &bad_party).unwrap_err(),
        CkksError::Multiparty(MultipartyError::UnexpectedParty(7))
    );
    let mut bad_t = db.clone();
    bad_t[header + 8 + 1 + 4 + 16] = 9; // threshold 9 > 2 active
    assert_eq!(
        DecryptionShare::from_bytes(&params, &bad_t).unwrap_err(),
        CkksError::Multiparty(MultipartyError::InvalidThreshold {
            threshold: 9,
            parties: 2
        })
    );
    let mut bad_ternary = sk_bytes.to_vec();
    bad_ternary[header + 9] = 0xff; // coefficient code 3
    let e = SecretShare::from_bytes(&params, &bad_ternary).unwrap_err();
    assert!(
        matches!(&e, CkksError::Decode(m) if m.contains("not ternary")),
        "{e}"
    );
    // A share re-parsed from bytes still combines.
    let ds3 = decryption_share(&params, &f.thr[2], &[1, 3], &ct, &sm, &mut f.rng).unwrap();
    let parsed = DecryptionShare::from_bytes(&params, &ds3.to_bytes()).unwrap();
    let out = f
        .enc
        .decode(&combine_decryption(&params, &ct, &[ds, parsed]).unwrap())
        .unwrap();
    assert!((out[0] - 1.0).abs() < 1e-5);
}

#[test]
fn collective_key_at_n13() {
    let mut f = federation(Preset::N13.build().unwrap(), 4, 3, 10);
    let values = random_values(&mut f.rng, 32);
    let pt = f.enc.encode(&values, 2, 2f64.powi(LOG_SCALE)).unwrap();
    let ct = Encryptor::with_public_key(&f.pk)
        .encrypt(&pt, &mut f.rng)
        .unwrap();
    let sm = Smudging::for_fresh_sum(&f.params, 4, 1, 40).unwrap();
    let out = threshold_decrypt(&mut f, &[2, 3, 4], &ct, &sm).unwrap();
    assert!(precision_bits(&values, &out[..32]).unwrap() >= 22.0);
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    /// Valid encodings of every multiparty object (built once).
    fn corpus() -> &'static (CkksParams, Vec<Vec<u8>>) {
        static C: OnceLock<(CkksParams, Vec<Vec<u8>>)> = OnceLock::new();
        C.get_or_init(|| {
            let mut f = federation(Preset::Aggregation.build().unwrap(), 3, 2, 12);
            let ct = encrypt(&mut f, &[1.0]);
            let sm = Smudging::for_fresh_sum(&f.params, 3, 1, 40).unwrap();
            let ds = decryption_share(&f.params, &f.thr[0], &[1, 2], &ct, &sm, &mut f.rng).unwrap();
            let pks = public_key_share(&f.params, &f.sks[0], &Crs([4; 32]), &mut f.rng).unwrap();
            let sh = shamir_deal(&f.params, &f.sks[1], 2, &f.ids, &mut f.rng).unwrap();
            let bytes = vec![
                f.sks[0].to_bytes().to_vec(),
                pks.to_bytes(),
                sh[0].to_bytes().to_vec(),
                f.thr[1].to_bytes().to_vec(),
                ds.to_bytes(),
            ];
            (f.params.clone(), bytes)
        })
    }

    fn parse_all(params: &CkksParams, b: &[u8]) -> usize {
        [
            SecretShare::from_bytes(params, b).is_ok(),
            PublicKeyShare::from_bytes(params, b).is_ok(),
            ShamirShare::from_bytes(params, b).is_ok(),
            ThresholdSecret::from_bytes(params, b).is_ok(),
            DecryptionShare::from_bytes(params, b).is_ok(),
        ]
        .iter()
        .filter(|&&ok| ok)
        .count()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Mutated header bytes never panic; each mutation is either refused
        /// or parses as at most one object kind.
        #[test]
        fn mutated_headers_never_panic(which in 0usize..5, pos in 0usize..200, val: u8) {
            let (params, corpus) = corpus();
            let mut b = corpus[which].clone();
            let p = pos.min(b.len() - 1);
            b[p] = val;
            prop_assert!(parse_all(params, &b) <= 1);
        }

        /// Arbitrary short inputs are refused without panicking.
        #[test]
        fn random_bytes_are_refused(b in proptest::collection::vec(any::<u8>(), 0..512)) {
            let (params, _) = corpus();
            prop_assert_eq!(parse_all(params, &b), 0);
        }
    }
}
