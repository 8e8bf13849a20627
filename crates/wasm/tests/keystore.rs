//! A secret key kept on the device, sealed under a passphrase: it opens
//! with its passphrase, for its model and spec only, and decrypts what the
//! first keys' session answers; a wrong passphrase, a changed byte, a cut
//! or padded record, out-of-range KDF costs, another model or another spec
//! are refused with typed errors (never a panic, never a key).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_tensor::{Mode, ServerHalf};
use cipherflow_wasm::{
    seal_secret_key, sealed_info, BrowserClient, WebError, MAX_M_KIB, MAX_PASSES,
    MAX_PASSPHRASE_BYTES, MAX_SEALED_BYTES, MIN_M_KIB, MIN_PASSPHRASE_CHARS,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::path::Path;

const PASS: &str = "correct horse battery staple";

fn compiled(mode: Mode) -> ServerHalf {
    let onnx = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../nn/tests/fixtures/layers/pad_leaky_gap.onnx"),
    )
    .unwrap();
    let (_, test) = cipherflow_nn::examples::digits()
        .unwrap()
        .split(0.2, 0)
        .unwrap();
    let x = test.subset(&[0, 1]).unwrap().features().clone();
    ServerHalf::compile(&onnx, &x, Some(15), mode, 64.0).unwrap()
}

/// The spec of a compiled model, a client for it, and its key sealed for
/// "digits" under `PASS`.
fn sealed_for_digits() -> (String, BrowserClient, Vec<u8>) {
    let spec = serde_json::to_string(compiled(Mode::Latency).spec()).unwrap();
    let client = BrowserClient::new(&spec, None).unwrap();
    let sealed = seal_secret_key(&client, "digits", PASS).unwrap();
    (spec, client, sealed)
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Offsets of the header's fields (model name "digits").
const M_KIB_AT: usize = 5;
const PASSES_AT: usize = 9;
const NAME_LEN_AT: usize = 13 + 16 + 24;
const NAME_AT: usize = NAME_LEN_AT + 1;
const LEN_AT: usize = NAME_AT + 6 + 32;
const HEADER: usize = LEN_AT + 4;

fn with_u32(sealed: &[u8], at: usize, v: u32) -> Vec<u8> {
    let mut b = sealed.to_vec();
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    b
}

#[test]
fn a_sealed_key_opens_with_its_passphrase_and_decrypts_the_sessions_answers() {
    let server = compiled(Mode::Latency);
    let spec = serde_json::to_string(server.spec()).unwrap();
    let first = BrowserClient::new(&spec, None).unwrap();
    let session_keys = first.eval_keys().unwrap();
    let sealed = seal_secret_key(&first, "digits", PASS).unwrap();
    assert_eq!(&sealed[..5], b"CFSK\x01");
    // Sealed at OWASP's minimum for Argon2id: 19 MiB, 2 passes.
    let u32_at = |at: usize| u32::from_le_bytes(sealed[at..at + 4].try_into().unwrap());
    assert_eq!((u32_at(M_KIB_AT), u32_at(PASSES_AT)), (19 * 1024, 2));
    assert_eq!(u32_at(LEN_AT) as usize, sealed.len() - HEADER);
    let info = sealed_info(&sealed).unwrap();
    assert_eq!(info.model, "digits");
    assert_eq!(info.spec_sha256.len(), 64);
    // Sealed twice: fresh salt and nonce each time.
    let again = seal_secret_key(&first, "digits", PASS).unwrap();
    assert_eq!(again.len(), sealed.len());
    assert_ne!(again[13..NAME_LEN_AT], sealed[13..NAME_LEN_AT]);
    assert_ne!(again[HEADER..], sealed[HEADER..]);
    // The same key: what the first client encrypts, the session's (old)
    // evaluation keys evaluate, and the restored client decrypts, equals
    // the first client's own decryption.
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let x = vec![0.25; 64];
    let answer = server
        .respond(&session_keys, &first.encrypt(&x).unwrap(), &mut rng)
        .unwrap();
    let want = first.decrypt(&answer).unwrap();
    drop(first);
    // Another spelling of the same spec (whitespace) opens it too.
    let spaced = serde_json::to_string_pretty(server.spec()).unwrap();
    let restored = BrowserClient::from_sealed(&spaced, None, "digits", &sealed, PASS).unwrap();
    let err = max_diff(&restored.decrypt(&answer).unwrap(), &want);
    assert!(err < 1e-9, "restored decryption differs by {err}");
    // Its ciphertexts are served by the old session's keys.
    let answer = server
        .respond(&session_keys, &restored.encrypt(&x).unwrap(), &mut rng)
        .unwrap();
    let err = max_diff(&restored.decrypt(&answer).unwrap(), &want);
    assert!(err < 0.05, "old session, restored key: logit error {err}");
    assert_eq!(
        restored.eval_keys().unwrap().len(),
        session_keys.len(),
        "fresh evaluation keys for a new session"
    );
}

#[test]
fn a_sealed_key_refuses_wrong_passphrases_and_every_changed_byte() {
    let (spec, _client, sealed) = sealed_for_digits();
    let open = |b: &[u8], pass: &str| BrowserClient::from_sealed(&spec, None, "digits", b, pass);
    for wrong in [
        "correct horse battery stapl",
        "Correct horse battery staple",
        "",
    ] {
        assert!(
            matches!(open(&sealed, wrong), Err(WebError::Passphrase(_))),
            "{wrong:?}"
        );
    }
    assert!(matches!(
        open(&sealed, &"x".repeat(MAX_PASSPHRASE_BYTES + 1)),
        Err(WebError::Passphrase(_))
    ));
    // One bit of every header byte (the associated data) and of
    // ciphertext bytes throughout.
    let mut at: Vec<usize> = (0..HEADER).collect();
    at.extend((HEADER..sealed.len()).step_by(4099));
    at.push(sealed.len() - 1);
    for i in at {
        let mut b = sealed.clone();
        b[i] ^= 0x01;
        match open(&b, PASS) {
            Err(WebError::Sealed(_) | WebError::Passphrase(_)) => {}
            Err(e) => panic!("byte {i}: {e}"),
            Ok(_) => panic!("byte {i} changed, and the key opened"),
        }
    }
    // Cut anywhere in the header, in the ciphertext, or padded.
    for cut in (0..HEADER + 2).chain([sealed.len() / 2, sealed.len() - 1]) {
        assert!(
            matches!(open(&sealed[..cut], PASS), Err(WebError::Sealed(_))),
            "cut at {cut}"
        );
        assert!(sealed_info(&sealed[..cut]).is_err());
    }
    let mut padded = sealed.clone();
    padded.push(0);
    assert!(matches!(open(&padded, PASS), Err(WebError::Sealed(_))));
    // A length naming more than there is (and more than is ever kept).
    for len in [u32::MAX, sealed.len() as u32, 16] {
        let b = with_u32(&sealed, LEN_AT, len);
        assert!(
            matches!(open(&b, PASS), Err(WebError::Sealed(_))),
            "length {len}"
        );
    }
    // The bounds on the sealed length, exactly: a tag and one byte, and
    // MAX_SEALED_BYTES, reach the tag's check; a tag alone, and one byte
    // more than the most, are refused as malformed.
    for (len, in_bounds) in [
        (17, true),
        (16, false),
        (MAX_SEALED_BYTES, true),
        (MAX_SEALED_BYTES + 1, false),
    ] {
        let mut b = with_u32(&sealed[..HEADER], LEN_AT, len as u32);
        b.resize(HEADER + len, 0);
        match open(&b, PASS) {
            Err(WebError::Passphrase(_)) if in_bounds => {}
            Err(WebError::Sealed(m)) if !in_bounds => assert!(m.contains("sealed bytes"), "{m}"),
            other => panic!("{len} sealed bytes: {other:?}"),
        }
    }
}

#[test]
fn kdf_costs_model_and_spec_are_bound() {
    let (spec, _client, sealed) = sealed_for_digits();
    let open = |b: &[u8]| BrowserClient::from_sealed(&spec, None, "digits", b, PASS);
    // Costs outside the accepted range are refused before any stretching
    // (a hostile record cannot make the page allocate gigabytes), and a
    // downgrade is refused as well.
    for (at, v) in [
        (M_KIB_AT, MAX_M_KIB + 1),
        (M_KIB_AT, u32::MAX),
        (M_KIB_AT, 1024),
        (M_KIB_AT, MIN_M_KIB - 1),
        (PASSES_AT, MAX_PASSES + 1),
        (PASSES_AT, 1),
        (PASSES_AT, 0),
    ] {
        match open(&with_u32(&sealed, at, v)) {
            Err(WebError::Sealed(m)) => assert!(m.contains("costs"), "{m}"),
            other => panic!("cost {v} at {at}: {other:?}"),
        }
    }
    // In range, but not what it was sealed with: the tag refuses it.
    assert!(matches!(
        open(&with_u32(&sealed, PASSES_AT, 3)),
        Err(WebError::Passphrase(_))
    ));
    // Another model's name, asked for or stored.
    match BrowserClient::from_sealed(&spec, None, "digits2", &sealed, PASS) {
        Err(WebError::Sealed(m)) => assert!(m.contains("saved for digits"), "{m}"),
        other => panic!("{other:?}"),
    }
    let mut renamed = sealed.clone();
    renamed[NAME_AT..NAME_AT + 6].copy_from_slice(b"digitz");
    assert!(matches!(
        BrowserClient::from_sealed(&spec, None, "digitz", &renamed, PASS),
        Err(WebError::Passphrase(_))
    ));
    for n in [0u8, 65, 255] {
        let mut b = sealed.clone();
        b[NAME_LEN_AT] = n;
        assert!(matches!(open(&b), Err(WebError::Sealed(_))), "name of {n}");
        // A record otherwise well formed around a name of n bytes.
        let mut b = sealed[..NAME_LEN_AT].to_vec();
        b.push(n);
        b.extend(std::iter::repeat_n(b'm', usize::from(n)));
        b.extend_from_slice(&sealed[NAME_AT + 6..]);
        assert!(sealed_info(&b).is_err(), "name of {n}");
    }
    // The model's spec changed (another version): refused, with the way out.
    let other = serde_json::to_string(compiled(Mode::Throughput).spec()).unwrap();
    assert_ne!(other, spec);
    match BrowserClient::from_sealed(&other, None, "digits", &sealed, PASS) {
        Err(WebError::Sealed(m)) => assert!(m.contains("another version"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(BrowserClient::from_sealed("{", None, "digits", &sealed, PASS).is_err());
    // Specs are read up to 1 MiB: the same spec padded to exactly that
    // opens the key, one byte more is refused before any stretching.
    let padded = spec.clone() + &" ".repeat((1 << 20) - spec.len());
    assert!(BrowserClient::from_sealed(&padded, None, "digits", &sealed, PASS).is_ok());
    match BrowserClient::from_sealed(&format!("{padded} "), None, "digits", &sealed, PASS) {
        Err(WebError::Invalid(m)) => assert!(m.contains("1 MiB"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Not a sealed key at all, another format version.
    assert!(matches!(open(b"CFSH"), Err(WebError::Sealed(_))));
    let mut v2 = sealed.clone();
    v2[4] = 2;
    assert!(matches!(open(&v2), Err(WebError::Sealed(_))));
}

#[test]
fn sealing_needs_a_real_passphrase_and_a_model_name() {
    let (spec, client, _) = sealed_for_digits();
    let short = "x".repeat(MIN_PASSPHRASE_CHARS - 1);
    assert!(matches!(
        seal_secret_key(&client, "digits", &short),
        Err(WebError::Passphrase(_))
    ));
    // Counted in characters, not bytes.
    assert!(matches!(
        seal_secret_key(&client, "digits", &"é".repeat(MIN_PASSPHRASE_CHARS - 1)),
        Err(WebError::Passphrase(_))
    ));
    assert!(seal_secret_key(&client, "digits", &"é".repeat(MIN_PASSPHRASE_CHARS)).is_ok());
    assert!(matches!(
        seal_secret_key(&client, "digits", &"x".repeat(MAX_PASSPHRASE_BYTES + 1)),
        Err(WebError::Passphrase(_))
    ));
    let longest = "x".repeat(MAX_PASSPHRASE_BYTES);
    let sealed = seal_secret_key(&client, "digits", &longest).unwrap();
    assert!(BrowserClient::from_sealed(&spec, None, "digits", &sealed, &longest).is_ok());
    for name in ["", &"m".repeat(65)] {
        assert!(seal_secret_key(&client, name, PASS).is_err(), "{name:?}");
    }
    // The longest name the repository allows is kept and opens.
    let name = "m".repeat(64);
    let sealed = seal_secret_key(&client, &name, PASS).unwrap();
    assert_eq!(sealed_info(&sealed).unwrap().model, name);
    assert!(BrowserClient::from_sealed(&spec, None, &name, &sealed, PASS).is_ok());
}
