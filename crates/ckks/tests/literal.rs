//! Parameter literals: every preset and builder shape round-trips JSON and
//! bytes into a parameter set with the same fingerprint, and a literal
//! that lies (composite or non-NTT-friendly primes, a claimed security
//! level its moduli do not reach, insecure moduli, malformed bytes) is
//! refused with its error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_ckks::{
    CkksError, CkksParams, ParamsBuilder, ParamsLiteral, Preset, SecurityLevel, MAX_Q_PRIMES,
};

fn shapes() -> Vec<CkksParams> {
    let mut v: Vec<CkksParams> = [
        Preset::Aggregation,
        Preset::Depth2,
        Preset::N14,
        Preset::N15,
        Preset::N16,
    ]
    .into_iter()
    .map(|p| p.build().unwrap())
    .collect();
    // Explicit digit counts, including one whose digit size is not |P|.
    for dnum in [6, 7, 9, 17] {
        v.push(
            ParamsBuilder::new(15)
                .q_bits(&[60; 1].iter().chain(&[40; 16]).copied().collect::<Vec<_>>())
                .p_bits(&[60, 60, 60])
                .dnum(dnum)
                .build()
                .unwrap(),
        );
    }
    // L + 1 = 4 primes with |P| = 3: the default digit (3 primes) is not
    // ⌈4/dnum⌉ for any dnum, so the literal must say "default".
    v.push(
        ParamsBuilder::new(14)
            .q_bits(&[50, 40, 40, 40])
            .p_bits(&[50, 50, 50])
            .build()
            .unwrap(),
    );
    // No special primes; a scale that is not the default.
    v.push(
        ParamsBuilder::new(12)
            .q_bits(&[50, 30])
            .log_scale(30)
            .build()
            .unwrap(),
    );
    v
}

#[test]
fn literals_round_trip_json_and_bytes() {
    for params in shapes() {
        let lit = params.literal();
        assert_eq!(lit.security, Some(params.security()));
        let json = serde_json::to_string(&lit).unwrap();
        let back: ParamsLiteral = serde_json::from_str(&json).unwrap();
        assert_eq!(back, lit, "{json}");
        let rebuilt = back.build(false).unwrap();
        assert_eq!(rebuilt.fingerprint(), params.fingerprint(), "{json}");
        assert_eq!(
            (rebuilt.alpha(), rebuilt.dnum()),
            (params.alpha(), params.dnum())
        );
        let bytes = lit.to_bytes().unwrap();
        let from_bytes = ParamsLiteral::from_bytes(&bytes).unwrap();
        assert_eq!(from_bytes, lit);
        assert_eq!(
            from_bytes.build(false).unwrap().fingerprint(),
            params.fingerprint()
        );
    }
}

#[test]
fn a_literal_with_bit_sizes_builds_what_the_builder_builds() {
    let lit: ParamsLiteral = serde_json::from_str(
        r#"{"log_n": 13, "q_bits": [60, 40, 40], "p_bits": [60], "log_scale": 40}"#,
    )
    .unwrap();
    let params = lit.build(false).unwrap();
    assert_eq!(
        params.fingerprint(),
        Preset::Depth2.build().unwrap().fingerprint()
    );
    // A literal with bit sizes has no binary encoding (the primes are).
    assert!(matches!(
        lit.to_bytes(),
        Err(CkksError::InvalidParameters(m)) if m.contains("exact primes")
    ));
}

fn depth2() -> ParamsLiteral {
    Preset::Depth2.build().unwrap().literal()
}

fn refused(lit: &ParamsLiteral, needle: &str) {
    match lit.build(false) {
        Err(CkksError::InvalidParameters(m)) if m.contains(needle) => {}
        other => panic!(
            "expected InvalidParameters({needle:?}), got {:?}",
            other.map(|_| ())
        ),
    }
}

#[test]
fn lying_literals_are_refused() {
    // A composite in place of a prime (the same residue mod 2N).
    let mut lit = depth2();
    let two_n = 2u64 << 13;
    let mut c = lit.q[1] + two_n;
    while cipherflow_ring::is_prime(c) {
        c += two_n;
    }
    lit.q[1] = c;
    refused(&lit, "is not a prime");
    // A prime that is not NTT-friendly (2^61 − 1 ≢ 1 mod 2N).
    let mut lit = depth2();
    lit.q[0] = (1 << 61) - 1;
    refused(&lit, "congruent to 1 mod");
    // The same prime twice.
    let mut lit = depth2();
    lit.q[2] = lit.q[1];
    refused(&lit, "listed twice");
    // Primes and bit sizes both, or neither.
    let mut lit = depth2();
    lit.q_bits = vec![60, 40, 40];
    refused(&lit, "as primes (q, p) or as bit sizes");
    let mut lit = depth2();
    lit.q.clear();
    lit.p.clear();
    refused(&lit, "as primes (q, p) or as bit sizes");
    // More security claimed than the moduli give.
    let mut lit = depth2();
    lit.security = Some(SecurityLevel::Bits192);
    refused(&lit, "claims 192-bit security");
    // Too many primes: refused before any is checked.
    let mut lit = depth2();
    lit.q = vec![lit.q[0]; MAX_Q_PRIMES + 1];
    refused(&lit, "at most 64 ciphertext");
    // A digit count of zero.
    let mut lit = depth2();
    lit.dnum = Some(0);
    refused(&lit, "dnum must be positive");
}

#[test]
fn insecure_literals_need_the_opt_in() {
    // N = 2^12 holds 109 bits at 128-bit security; 150 bits do not fit.
    let params = ParamsBuilder::new(12)
        .q_bits(&[50, 50, 50])
        .allow_insecure()
        .build()
        .unwrap();
    assert_eq!(params.security(), SecurityLevel::Insecure);
    let lit = params.literal();
    let e = lit.build(false).unwrap_err();
    assert!(
        matches!(e, CkksError::InsecureParameters { log_n: 12, .. }),
        "{e}"
    );
    // Claiming 128 bits does not help.
    let mut claim = lit.clone();
    claim.security = Some(SecurityLevel::Bits128);
    assert!(matches!(
        claim.build(false),
        Err(CkksError::InsecureParameters { .. })
    ));
    assert_eq!(lit.build(true).unwrap().fingerprint(), params.fingerprint());
}

#[test]
fn malformed_bytes_are_refused() {
    let good = depth2().to_bytes().unwrap();
    let decode_err = |b: &[u8], needle: &str| match ParamsLiteral::from_bytes(b) {
        Err(CkksError::Decode(m)) if m.contains(needle) => {}
        other => panic!("expected Decode({needle:?}), got {other:?}"),
    };
    // Every proper prefix is truncated.
    for len in 0..good.len() {
        decode_err(&good[..len], "truncated");
    }
    let mut b = good.clone();
    b.push(0);
    decode_err(&b, "1 trailing bytes");
    let mut b = good.clone();
    b[0] ^= 1;
    decode_err(&b, "magic");
    let mut b = good.clone();
    b[4] = 2;
    decode_err(&b, "version 2");
    let mut b = good.clone();
    b[9] = 9;
    decode_err(&b, "unknown security level 9");
    // A prime count over the limit (q's count is at offset 10).
    let mut b = good.clone();
    b[10] = 65;
    decode_err(&b, "65 primes, at most 64");
    // No ciphertext prime: nothing to encrypt under.
    decode_err(
        &[b"CFPL".as_slice(), &[1, 13, 40, 0, 0, 2, 0, 0]].concat(),
        "no ciphertext primes",
    );
    // JSON with a field this version does not know.
    let e = serde_json::from_str::<ParamsLiteral>(
        r#"{"log_n": 13, "q_bits": [60], "log_scale": 40, "secret": 1}"#,
    )
    .unwrap_err();
    assert!(e.to_string().contains("unknown field"), "{e}");
}
