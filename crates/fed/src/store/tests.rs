//! The store on both backends: SQLite always; Postgres too when
//! `CIPHERFLOW_TEST_POSTGRES` names a server (`scripts/test` starts a
//! throwaway cluster and sets it), each test in a fresh schema.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use sha2::{Digest, Sha256};

/// The environment variable naming a Postgres server for the tests.
const PG_ENV: &str = "CIPHERFLOW_TEST_POSTGRES";

/// A fresh Postgres state for test `name`, or `None` (and a line saying
/// so) when no server is given.
fn fresh_postgres(name: &str) -> Option<StateLocation> {
    let Ok(url) = std::env::var(PG_ENV) else {
        eprintln!("{PG_ENV} is not set: the Postgres case of {name} is skipped");
        return None;
    };
    let schema = format!("t_{name}_{}", std::process::id());
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .unwrap();
    Some(StateLocation::Postgres {
        url,
        schema: Some(schema),
        ca: None,
    })
}

/// Runs `f` on a fresh SQLite state and, when a server is given, on a
/// fresh Postgres state (with its payload directory).
fn on_both(name: &str, f: impl Fn(&StateLocation, &Path)) {
    let dir = tempfile::tempdir().unwrap();
    let payloads = dir.path().join("payloads");
    f(
        &StateLocation::Sqlite(dir.path().join("state.db")),
        &payloads,
    );
    if let Some(pg) = fresh_postgres(name) {
        f(&pg, &payloads);
    }
}

fn hash(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

#[test]
fn rows_and_payloads_survive_a_reopen() {
    on_both("reopen", |at, payloads| {
        {
            let mut s = Store::open(at, payloads).unwrap();
            let at0 = s
                .save_segment(&upload_segment(1, 0), &[b"first", b"second"])
                .unwrap();
            s.save_blob(&share_blob(1, 0, "a"), b"share of a").unwrap();
            s.tx(|tx| {
                set_meta(tx, "crs", &[7u8; 32])?;
                set_meta(tx, "crs", &[8u8; 32])?; // an upsert
                upsert_client(tx, "a", 10)?;
                upsert_client(tx, "b", 20)?;
                upsert_client(tx, "a", 11)?;
                add_participations(tx, &["a".into(), "b".into(), "a".into()])?;
                insert_keysetup(tx, 1, 2, b"nonce", b"sealed")?;
                insert_keysetup(tx, 3, 2, b"n3", b"s3")?;
                put_round(tx, 1, "{\"r\":1}")?;
                put_round(tx, 2, "{\"r\":2}")?;
                put_history(tx, 1, "{\"h\":1}")?;
                insert_upload(tx, 1, "a", &hash(b"first"), 5, &at0[0])?;
                insert_upload(tx, 1, "b", &hash(b"second"), 6, &at0[1])?;
                set_upload_index(tx, 1, "b", 3)?;
                set_upload_index(tx, 1, "a", 4)?;
                insert_share(tx, 1, 0, "a", &hash(b"share of a"))?;
                set_share_index(tx, 1, 0, "a", 9)?;
                Ok(())
            })
            .unwrap();
        }
        let s = Store::open(at, payloads).unwrap();
        assert_eq!(s.meta("crs").unwrap(), Some(vec![8u8; 32]));
        assert_eq!(s.meta("absent").unwrap(), None);
        assert_eq!(
            s.clients().unwrap(),
            vec![("a".to_string(), 11, 2), ("b".to_string(), 20, 1)]
        );
        assert_eq!(
            s.keysetup_for(2).unwrap(),
            vec![
                (1, b"nonce".to_vec(), b"sealed".to_vec()),
                (3, b"n3".to_vec(), b"s3".to_vec())
            ]
        );
        assert_eq!(s.keysetup_dealers().unwrap(), vec![1, 3]);
        assert_eq!(s.latest_round().unwrap(), Some(2));
        assert_eq!(s.round(1).unwrap().as_deref(), Some("{\"r\":1}"));
        assert_eq!(s.history().unwrap(), vec!["{\"h\":1}".to_string()]);
        // In ledger order: b (3) before a (4); the payloads read back.
        let ups = s.uploads(1).unwrap();
        assert_eq!(
            ups.iter()
                .map(|u| (u.client_id.as_str(), u.ledger_index, u.num_examples))
                .collect::<Vec<_>>(),
            vec![("b", Some(3), 6), ("a", Some(4), 5)]
        );
        assert_eq!(ups[0].bytes.as_deref(), Some(&b"second"[..]));
        let sh = s.shares(1, 0).unwrap();
        assert_eq!(
            (sh[0].ledger_index, sh[0].bytes.as_slice()),
            (Some(9), &b"share of a"[..])
        );
        // Removing a round's payloads: its rows now name missing files,
        // which reads as damage, not as an I/O failure.
        s.remove_round_blobs(1);
        let e = s.uploads(1).unwrap_err();
        assert!(
            matches!(&e, FedError::Integrity(m) if m.contains("missing")),
            "{e}"
        );
    });
}

#[test]
fn a_payload_directory_that_cannot_be_read_is_an_io_failure_not_damage() {
    // Damage aborts a round; an I/O failure makes the coordinator reopen
    // and peers retry. A payload directory replaced by a file (ENOTDIR)
    // must read as the latter.
    on_both("enotdir", |at, payloads| {
        let mut s = Store::open(at, payloads).unwrap();
        let r = s.save_segment(&upload_segment(3, 0), &[b"data"]).unwrap();
        s.tx(|tx| insert_upload(tx, 3, "a", &hash(b"data"), 1, &r[0]))
            .unwrap();
        let dir = match at {
            StateLocation::Sqlite(p) => p.with_extension("blobs"),
            StateLocation::Postgres { .. } => payloads.to_path_buf(),
        };
        std::fs::rename(&dir, dir.with_extension("moved")).unwrap();
        std::fs::write(&dir, b"not a directory").unwrap();
        let e = s.uploads(3).unwrap_err();
        assert!(matches!(e, FedError::Io { .. }), "{e}");
        std::fs::remove_file(&dir).unwrap();
        std::fs::rename(dir.with_extension("moved"), &dir).unwrap();
        assert_eq!(s.uploads(3).unwrap().len(), 1);
    });
}

#[test]
fn payload_names_are_plain_file_names() {
    for ok in [
        "segment-1-0.bin",
        "share-2-0-client_3.bin",
        &"a".repeat(128),
    ] {
        assert!(payload::check_blob_name(ok).is_ok(), "{ok}");
    }
    // Each breaks one rule only.
    for bad in ["", &"a".repeat(129), ".segment", "a/b", "../x", "a b"] {
        assert!(payload::check_blob_name(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_failed_transaction_leaves_nothing() {
    on_both("rollback", |at, payloads| {
        let mut s = Store::open(at, payloads).unwrap();
        s.tx(|tx| put_round(tx, 1, "kept")).unwrap();
        let e = s.tx(|tx| {
            put_round(tx, 1, "overwritten")?;
            put_history(tx, 1, "written")?;
            // A second upload of the same client in the same round.
            let r = SegmentRange {
                segment: upload_segment(1, 0),
                offset: 0,
                len: 1,
            };
            insert_upload(tx, 1, "a", &[0; 32], 1, &r)?;
            insert_upload(tx, 1, "a", &[0; 32], 1, &r)
        });
        assert!(e.is_err());
        assert_eq!(s.round(1).unwrap().as_deref(), Some("kept"));
        assert!(s.history().unwrap().is_empty());
        assert!(s.uploads(1).unwrap().is_empty());
    });
}

#[test]
fn a_second_coordinator_on_the_same_state_is_refused() {
    on_both("lock", |at, payloads| {
        let first = Store::open(at, payloads).unwrap();
        let e = Store::open(at, payloads)
            .err()
            .expect("a second open must fail");
        assert!(matches!(e, FedError::Locked(_)), "{e}");
        drop(first);
        Store::open(at, payloads).unwrap();
    });
}

#[test]
fn an_uncommitted_segment_is_replaced_and_a_payload_without_its_row_ignored() {
    on_both("segments", |at, payloads| {
        let mut s = Store::open(at, payloads).unwrap();
        // A batch that crashed after its segment, before its rows.
        s.save_segment(&upload_segment(4, 0), &[b"lost one", b"lost two"])
            .unwrap();
        assert!(s.uploads(4).unwrap().is_empty());
        // The retried batch reuses the name with other contents.
        let mut w = s.segment_writer(&upload_segment(4, 0)).unwrap();
        let r = w.append(&[b"new ", b"payload"]).unwrap();
        w.finish().unwrap();
        assert_eq!((r.offset, r.len), (0, 11));
        s.tx(|tx| insert_upload(tx, 4, "c", &hash(b"new payload"), 1, &r))
            .unwrap();
        let ups = s.uploads(4).unwrap();
        assert_eq!(ups.len(), 1);
        assert_eq!(ups[0].bytes.as_deref(), Some(&b"new payload"[..]));
    });
}

#[test]
fn segment_ranges_and_hashes_are_checked_before_use() {
    on_both("ranges", |at, payloads| {
        let mut store = Store::open(at, payloads).unwrap();
        let parts: [&[u8]; 2] = [b"first", b"second"];
        let at = store.save_segment(&upload_segment(2, 0), &parts).unwrap();
        // A file outside the payload directory whose bytes match a
        // recorded hash: only the name check keeps it out.
        let outside = payloads.parent().unwrap().join("outside.bin");
        std::fs::write(&outside, b"first").unwrap();
        assert_eq!((at[1].offset, at[1].len), (5, 6));
        // A range past the segment's end, a path instead of a name, a
        // payload that does not match its hash: typed errors, nothing read
        // outside.
        let cases: [(&str, SegmentRange, [u8; 32]); 3] = [
            (
                "c1",
                SegmentRange {
                    len: 60,
                    ..at[1].clone()
                },
                hash(b"second"),
            ),
            (
                "c2",
                SegmentRange {
                    segment: "../outside.bin".into(),
                    ..at[0].clone()
                },
                hash(b"first"),
            ),
            ("c3", at[0].clone(), hash(b"other")),
        ];
        for (id, range, h) in &cases {
            store
                .tx(|tx| insert_upload(tx, 2, id, h, 1, range))
                .unwrap();
            let e = store.uploads(2).unwrap_err();
            assert!(matches!(&e, FedError::Integrity(_)), "{id}: {e}");
            store
                .tx(|tx| {
                    tx.execute(
                        "DELETE FROM uploads WHERE client_id = $1",
                        &[sql::Arg::Text(id)],
                    )?;
                    Ok(())
                })
                .unwrap();
        }
        store
            .tx(|tx| insert_upload(tx, 2, "ok", &hash(b"second"), 1, &at[1]))
            .unwrap();
        assert_eq!(
            store.uploads(2).unwrap()[0].bytes.as_deref(),
            Some(&b"second"[..])
        );
    });
}

#[test]
fn a_sqlite_state_from_before_segments_is_migrated_and_its_uploads_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let payload = b"an upload stored as its own file".to_vec();
    let h = hash(&payload);
    {
        // The uploads table as it was before segments.
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE uploads (
                round INTEGER NOT NULL, client_id TEXT NOT NULL, hash BLOB NOT NULL,
                num_examples INTEGER NOT NULL, ledger_index INTEGER, bytes BLOB,
                PRIMARY KEY (round, client_id));",
        )
        .unwrap();
        c.execute(
            "INSERT INTO uploads (round, client_id, hash, num_examples) VALUES (1, 'a', ?1, 3)",
            [&h[..]],
        )
        .unwrap();
        let blobs = path.with_extension("blobs");
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::write(blobs.join(upload_blob(1, "a")), &payload).unwrap();
    }
    let mut store = Store::open(&path.clone().into(), dir.path()).unwrap();
    let rows = store.uploads(1).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].bytes.as_deref(), Some(payload.as_slice()));
    // New uploads go to segments beside the old rows.
    let other = b"a new upload".to_vec();
    let h2 = hash(&other);
    let at = store
        .save_segment(&upload_segment(1, 1), &[&other])
        .unwrap();
    store
        .tx(|tx| insert_upload(tx, 1, "b", &h2, 1, &at[0]))
        .unwrap();
    let rows = store.uploads(1).unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows
        .iter()
        .any(|r| r.bytes.as_deref() == Some(other.as_slice())));
}

#[test]
fn a_postgres_address_is_shown_without_its_password() {
    let at = StateLocation::parse("postgres://fl:s3cret@db.example:5432/fed?sslmode=disable");
    assert!(matches!(at, StateLocation::Postgres { .. }));
    for shown in [at.to_string(), format!("{at:?}")] {
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("db.example") && shown.contains("fed"),
            "{shown}"
        );
    }
    assert!(matches!(
        StateLocation::parse("fl-state/coordinator.db"),
        StateLocation::Sqlite(_)
    ));
}

/// The TLS endpoint of the test server and its CA, when the server was
/// started with TLS (`scripts/postgres-throwaway.sh`).
fn tls_server(name: &str) -> Option<(String, PathBuf, PathBuf)> {
    let var = |k: &str| std::env::var(k).ok();
    match (
        var("CIPHERFLOW_TEST_POSTGRES_TLS"),
        var("CIPHERFLOW_TEST_POSTGRES_CA"),
        var("CIPHERFLOW_TEST_POSTGRES_OTHER_CA"),
    ) {
        (Some(url), Some(ca), Some(other)) => Some((url, ca.into(), other.into())),
        _ => {
            eprintln!("no TLS test server: the TLS case of {name} is skipped");
            None
        }
    }
}

#[test]
fn a_postgres_server_is_verified_over_tls() {
    let Some((url, ca, other_ca)) = tls_server("tls") else {
        return;
    };
    let fresh = |schema: &str, url: &str, ca: Option<&PathBuf>| {
        if let Ok(base) = std::env::var(PG_ENV) {
            let mut c = postgres::Client::connect(&base, postgres::NoTls).unwrap();
            c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .unwrap();
        }
        StateLocation::Postgres {
            url: url.to_string(),
            schema: Some(schema.to_string()),
            ca: ca.cloned(),
        }
    };
    // The server signed by the CA the operator gave: TLS, state kept.
    let pid = std::process::id();
    let good = fresh(&format!("t_tls_{pid}"), &url, Some(&ca));
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = Store::open(&good, dir.path()).unwrap();
        s.tx(|tx| put_round(tx, 1, "over tls")).unwrap();
    }
    assert_eq!(
        Store::open(&good, dir.path())
            .unwrap()
            .round(1)
            .unwrap()
            .as_deref(),
        Some("over tls")
    );
    // A server whose certificate another CA signed (an impersonator, as
    // far as the coordinator can tell) is refused before any state moves.
    let e = Store::open(
        &fresh(&format!("t_tls_bad_{pid}"), &url, Some(&other_ca)),
        dir.path(),
    )
    .err()
    .expect("a server the CA did not sign must be refused");
    assert!(matches!(e, FedError::Postgres(_)), "{e}");
    assert!(format!("{e:?}").contains("UnknownIssuer"), "{e:?}");
    // sslmode=require without a CA to verify with is refused up front.
    let e = Store::open(
        &fresh(
            &format!("t_tls_noca_{pid}"),
            &format!("{url}?sslmode=require"),
            None,
        ),
        dir.path(),
    )
    .err()
    .expect("sslmode=require without --state-ca");
    assert!(
        matches!(&e, FedError::Config(m) if m.contains("--state-ca")),
        "{e}"
    );
}

#[test]
fn scram_over_tls_is_bound_to_the_servers_certificate() {
    let Some((_, ca, _)) = tls_server("scram") else {
        return;
    };
    let (Ok(base), Ok(url)) = (
        std::env::var(PG_ENV),
        std::env::var("CIPHERFLOW_TEST_POSTGRES_SCRAM"),
    ) else {
        return;
    };
    let mut admin = postgres::Client::connect(&base, postgres::NoTls).unwrap();
    admin
        .batch_execute(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fl_scram') THEN
                 CREATE ROLE fl_scram LOGIN SUPERUSER PASSWORD 'scram-test-password';
               END IF;
             END $$",
        )
        .unwrap();
    let schema = format!("t_scram_{}", std::process::id());
    admin
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .unwrap();
    // `channel_binding=require` in the URL: SCRAM-SHA-256-PLUS with our
    // `tls-server-end-point` hash, which the server checks.
    let at = StateLocation::Postgres {
        url,
        schema: Some(schema),
        ca: Some(ca),
    };
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&at, dir.path()).unwrap();
    s.tx(|tx| set_meta(tx, "k", b"v")).unwrap();
    assert_eq!(s.meta("k").unwrap().as_deref(), Some(&b"v"[..]));
}

#[test]
fn a_schema_is_added_to_the_urls_own_options() {
    let Some(StateLocation::Postgres { url, schema, ca }) = fresh_postgres("options") else {
        return;
    };
    // The URL sets its own options (here a statement timeout).
    let sep = if url.contains('?') { '&' } else { '?' };
    let at = StateLocation::Postgres {
        url: format!("{url}{sep}options=-cstatement_timeout%3D45000"),
        schema: schema.clone(),
        ca,
    };
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&at, dir.path()).unwrap();
    let show = |q: &str| {
        s.conn
            .query(q, &[])
            .unwrap()
            .pop()
            .unwrap()
            .text(0)
            .unwrap()
    };
    assert_eq!(show("SHOW statement_timeout"), "45s");
    assert_eq!(show("SELECT current_schema()::text"), schema.unwrap());
}
