//! The two SQL backends of the state behind one small interface: each
//! statement of [`super`] is written once, with `$1, $2, …` placeholders
//! (rewritten to SQLite's `?1, ?2, …`), in the SQL both dialects share
//! (`ON CONFLICT … DO UPDATE`, `excluded.`), and binds only integers, byte
//! strings and text ([`Arg`]); rows come back as [`Row`]s of [`Cell`]s.
//!
//! Why not an ORM or `sqlx`: the state is a dozen statements, the
//! coordinator is synchronous (its network front end calls it from
//! blocking threads), and the two mature synchronous drivers — `rusqlite`
//! and `postgres` — each do their own dialect well; this module is only
//! the seam between them.

use crate::error::{FedError, Result};
use std::sync::Mutex;

/// The SQLite schema (the embedded default). Payloads are files (see
/// [`super::payload`]), with either backend.
pub(super) const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS clients (
    client_id TEXT PRIMARY KEY,
    num_examples INTEGER NOT NULL,
    participations INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS keysetup (
    from_party INTEGER NOT NULL, to_party INTEGER NOT NULL,
    nonce BLOB NOT NULL, ciphertext BLOB NOT NULL,
    PRIMARY KEY (from_party, to_party)
);
CREATE TABLE IF NOT EXISTS rounds (round INTEGER PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS uploads (
    round INTEGER NOT NULL, client_id TEXT NOT NULL, hash BLOB NOT NULL,
    num_examples INTEGER NOT NULL, ledger_index INTEGER, bytes BLOB,
    PRIMARY KEY (round, client_id)
);
CREATE TABLE IF NOT EXISTS shares (
    round INTEGER NOT NULL, attempt INTEGER NOT NULL, client_id TEXT NOT NULL,
    hash BLOB NOT NULL, ledger_index INTEGER, bytes BLOB,
    PRIMARY KEY (round, attempt, client_id)
);
CREATE TABLE IF NOT EXISTS history (round INTEGER PRIMARY KEY, data TEXT NOT NULL);
";

/// The Postgres schema: the same tables.
pub(super) const POSTGRES_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS clients (
    client_id TEXT PRIMARY KEY,
    num_examples BIGINT NOT NULL,
    participations BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS keysetup (
    from_party BIGINT NOT NULL, to_party BIGINT NOT NULL,
    nonce BYTEA NOT NULL, ciphertext BYTEA NOT NULL,
    PRIMARY KEY (from_party, to_party)
);
CREATE TABLE IF NOT EXISTS rounds (round BIGINT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS uploads (
    round BIGINT NOT NULL, client_id TEXT NOT NULL, hash BYTEA NOT NULL,
    num_examples BIGINT NOT NULL, ledger_index BIGINT, bytes BYTEA,
    segment TEXT, seg_offset BIGINT, seg_len BIGINT,
    PRIMARY KEY (round, client_id)
);
CREATE TABLE IF NOT EXISTS shares (
    round BIGINT NOT NULL, attempt BIGINT NOT NULL, client_id TEXT NOT NULL,
    hash BYTEA NOT NULL, ledger_index BIGINT, bytes BYTEA,
    PRIMARY KEY (round, attempt, client_id)
);
CREATE TABLE IF NOT EXISTS history (round BIGINT PRIMARY KEY, data TEXT NOT NULL);
";

/// The first key of the advisory lock a Postgres state is held with (the
/// second is the schema's name, hashed): "cfst".
const LOCK_CLASS: i32 = 0x6366_7374;

/// A schema name is interpolated into SQL (identifiers cannot be bound),
/// so only plain lower-case identifiers are accepted.
fn check_schema_name(s: &str) -> Result<()> {
    let ok = (1..=63).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(FedError::Config(format!(
            "the Postgres schema {s:?} is not a plain identifier ([a-z_][a-z0-9_]*, at most 63)"
        )))
    }
}

/// A bound value.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Arg<'a> {
    /// A 64-bit integer.
    Int(i64),
    /// A byte string.
    Bytes(&'a [u8]),
    /// Text.
    Text(&'a str),
}

/// A value read back.
#[derive(Debug)]
pub(super) enum Cell {
    Null,
    Int(i64),
    Bytes(Vec<u8>),
    Text(String),
}

/// A row read back; its typed getters take the cell out.
#[derive(Debug)]
pub(super) struct Row(Vec<Cell>);

fn column(i: usize, want: &str) -> FedError {
    FedError::Encoding(format!("a stored column ({i}) is not {want}"))
}

impl Row {
    fn take(&mut self, i: usize) -> Cell {
        self.0
            .get_mut(i)
            .map_or(Cell::Null, |c| std::mem::replace(c, Cell::Null))
    }

    /// An integer, or null.
    pub(super) fn opt_int(&mut self, i: usize) -> Result<Option<i64>> {
        match self.take(i) {
            Cell::Null => Ok(None),
            Cell::Int(v) => Ok(Some(v)),
            _ => Err(column(i, "an integer")),
        }
    }

    /// An integer.
    pub(super) fn int(&mut self, i: usize) -> Result<i64> {
        self.opt_int(i)?.ok_or_else(|| column(i, "an integer"))
    }

    /// Bytes (text read as its UTF-8 bytes), or null.
    pub(super) fn opt_bytes(&mut self, i: usize) -> Result<Option<Vec<u8>>> {
        match self.take(i) {
            Cell::Null => Ok(None),
            Cell::Bytes(b) => Ok(Some(b)),
            Cell::Text(t) => Ok(Some(t.into_bytes())),
            Cell::Int(_) => Err(column(i, "a byte string")),
        }
    }

    /// Bytes.
    pub(super) fn bytes(&mut self, i: usize) -> Result<Vec<u8>> {
        self.opt_bytes(i)?.ok_or_else(|| column(i, "a byte string"))
    }

    /// Text, or null.
    pub(super) fn opt_text(&mut self, i: usize) -> Result<Option<String>> {
        match self.take(i) {
            Cell::Null => Ok(None),
            Cell::Text(t) => Ok(Some(t)),
            Cell::Bytes(b) => String::from_utf8(b)
                .map(Some)
                .map_err(|_| column(i, "text")),
            Cell::Int(_) => Err(column(i, "text")),
        }
    }

    /// Text.
    pub(super) fn text(&mut self, i: usize) -> Result<String> {
        self.opt_text(i)?.ok_or_else(|| column(i, "text"))
    }
}

/// `$1` → `?1` (SQLite numbers its parameters by name; `$N` would be
/// numbered in order of first appearance instead).
fn sqlite_sql(sql: &str) -> String {
    sql.replace('$', "?")
}

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Arg::Int(v) => ValueRef::Integer(*v),
            Arg::Bytes(b) => ValueRef::Blob(b),
            Arg::Text(t) => ValueRef::Text(t.as_bytes()),
        }))
    }
}

type PgParam<'a> = &'a (dyn postgres::types::ToSql + Sync);

fn pg_args<'a>(args: &'a [Arg<'a>]) -> Vec<PgParam<'a>> {
    args.iter()
        .map(|a| -> PgParam<'a> {
            match a {
                Arg::Int(v) => v,
                Arg::Bytes(b) => b,
                Arg::Text(t) => t,
            }
        })
        .collect()
}

fn sqlite_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    use rusqlite::types::ValueRef;
    let n = r.as_ref().column_count();
    let mut cells = Vec::with_capacity(n);
    for i in 0..n {
        cells.push(match r.get_ref(i)? {
            ValueRef::Null => Cell::Null,
            ValueRef::Integer(v) => Cell::Int(v),
            ValueRef::Blob(b) => Cell::Bytes(b.to_vec()),
            ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Real(_) => {
                return Err(rusqlite::Error::InvalidColumnType(
                    i,
                    "real".into(),
                    rusqlite::types::Type::Real,
                ))
            }
        });
    }
    Ok(Row(cells))
}

fn pg_row(r: &postgres::Row) -> Result<Row> {
    use postgres::types::Type;
    let mut cells = Vec::with_capacity(r.len());
    for (i, c) in r.columns().iter().enumerate() {
        let t = c.type_();
        let cell = if *t == Type::INT8 {
            r.try_get::<_, Option<i64>>(i)?.map(Cell::Int)
        } else if *t == Type::INT4 {
            r.try_get::<_, Option<i32>>(i)?.map(|v| Cell::Int(v.into()))
        } else if *t == Type::BYTEA {
            r.try_get::<_, Option<Vec<u8>>>(i)?.map(Cell::Bytes)
        } else if *t == Type::TEXT || *t == Type::VARCHAR || *t == Type::NAME {
            r.try_get::<_, Option<String>>(i)?.map(Cell::Text)
        } else {
            return Err(FedError::Encoding(format!(
                "a stored column ({i}) has the unexpected type {t}"
            )));
        };
        cells.push(cell.unwrap_or(Cell::Null));
    }
    Ok(Row(cells))
}

/// A connection to the state database.
pub(super) enum Conn {
    /// The embedded default.
    Sqlite(rusqlite::Connection),
    /// `--state postgres://…`; the client needs `&mut` even to read, so
    /// reads through `&self` lock it.
    Postgres(Box<Mutex<postgres::Client>>),
}

impl Conn {
    /// Opens a Postgres state: connects, takes the state's advisory lock
    /// (held for the connection's life: a second coordinator is refused),
    /// creates the tables.
    pub(super) fn open_postgres(
        config: &str,
        schema: Option<&str>,
        ca: Option<&std::path::Path>,
        shown: &str,
    ) -> Result<Self> {
        let mut cfg: postgres::Config = config
            .parse()
            .map_err(|e| FedError::Config(format!("the Postgres state address {shown}: {e}")))?;
        if let Some(s) = schema {
            check_schema_name(s)?;
            // Added to the URL's own `options`, not in their place.
            let options = match cfg.get_options() {
                Some(o) if !o.trim().is_empty() => format!("{o} -csearch_path={s}"),
                _ => format!("-csearch_path={s}"),
            };
            cfg.options(&options);
        }
        // A database that vanishes without closing the connection (a
        // partition, a host that died) must fail the coordinator's call
        // within a minute, not hang it: TCP keepalives and a user timeout,
        // unless the URL sets its own.
        if !cfg.get_keepalives() {
            tracing::warn!(state = %shown, "TCP keepalives to the Postgres state are off");
        } else if cfg.get_keepalives_idle() == std::time::Duration::from_secs(2 * 60 * 60) {
            cfg.keepalives_idle(std::time::Duration::from_secs(30));
            cfg.keepalives_interval(std::time::Duration::from_secs(10));
            cfg.keepalives_retries(3);
        }
        if cfg.get_tcp_user_timeout().is_none() {
            cfg.tcp_user_timeout(std::time::Duration::from_secs(60));
        }
        // libpq's convention: the password from the environment rather
        // than on a command line that `ps` shows.
        if cfg.get_password().is_none() {
            if let Ok(p) = std::env::var("PGPASSWORD") {
                cfg.password(p);
            }
        }
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(std::time::Duration::from_secs(10));
        }
        // Names the federation's schema, so that an operator (or a test)
        // tells coordinators apart in `pg_stat_activity`.
        cfg.application_name(&match schema {
            Some(s) => format!("cipherflow-coordinator/{s}"),
            None => "cipherflow-coordinator".into(),
        });
        let mut client = match ca {
            Some(ca) => {
                cfg.ssl_mode(postgres::config::SslMode::Require);
                cfg.connect(super::tls::MakeRustls::with_ca(ca)?)?
            }
            None if cfg.get_ssl_mode() == postgres::config::SslMode::Require => {
                return Err(FedError::Config(format!(
                    "the Postgres state {shown} asks for sslmode=require: give the CA that \
                     signed the server's certificate (--state-ca)"
                )))
            }
            None => {
                let remote = cfg.get_hosts().iter().any(|h| match h {
                    postgres::config::Host::Tcp(h) => {
                        !matches!(h.as_str(), "localhost" | "127.0.0.1" | "::1")
                    }
                    #[cfg(unix)]
                    postgres::config::Host::Unix(_) => false,
                });
                if remote {
                    tracing::warn!(
                        state = %shown,
                        "the Postgres state is reached in the clear: give --state-ca for TLS"
                    );
                }
                cfg.connect(postgres::NoTls)?
            }
        };
        if let Some(s) = schema {
            // The name is checked above: a plain lower-case identifier.
            client.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {s}"))?;
        }
        let schema: Option<String> = client
            .query_one("SELECT current_schema()::text", &[])?
            .try_get(0)?;
        let Some(schema) = schema else {
            return Err(FedError::Config(format!(
                "the Postgres state {shown}: its search_path names no existing schema"
            )));
        };
        let locked: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock($1, hashtext($2))",
                &[&LOCK_CLASS, &schema],
            )?
            .try_get(0)?;
        if !locked {
            tracing::warn!(state = %shown, "state in use by another process");
            return Err(FedError::Locked(format!(
                "the Postgres state {shown} (schema {schema:?}) is in use by another coordinator"
            )));
        }
        client.batch_execute(POSTGRES_SCHEMA)?;
        Ok(Conn::Postgres(Box::new(Mutex::new(client))))
    }

    fn pg(m: &Mutex<postgres::Client>) -> Result<std::sync::MutexGuard<'_, postgres::Client>> {
        m.lock()
            .map_err(|_| FedError::Encoding("the Postgres connection was poisoned".into()))
    }

    /// Rows of a read outside any transaction.
    pub(super) fn query(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>> {
        match self {
            Conn::Sqlite(c) => {
                let mut st = c.prepare(&sqlite_sql(sql))?;
                let rows = st.query_map(rusqlite::params_from_iter(args.iter()), sqlite_row)?;
                Ok(rows.collect::<std::result::Result<_, _>>()?)
            }
            Conn::Postgres(m) => {
                let rows = Self::pg(m)?.query(sql, &pg_args(args))?;
                rows.iter().map(pg_row).collect()
            }
        }
    }

    /// Runs `f` in one transaction (all or nothing; SQLite's is
    /// `IMMEDIATE`, taking the write lock at once).
    pub(super) fn transaction<T>(&mut self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        match self {
            Conn::Sqlite(c) => {
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let mut tx = Tx(TxInner::Sqlite(tx));
                let out = f(&mut tx)?;
                tx.commit()?;
                Ok(out)
            }
            Conn::Postgres(m) => {
                let client = m.get_mut().map_err(|_| {
                    FedError::Encoding("the Postgres connection was poisoned".into())
                })?;
                let mut tx = Tx(TxInner::Postgres(client.transaction()?));
                let out = f(&mut tx)?;
                tx.commit()?;
                Ok(out)
            }
        }
    }
}

/// One transaction of the coordinator's state: the functions of
/// [`crate::store`] that change the state take it, and nothing is written
/// unless all of them succeed.
pub struct Tx<'a>(TxInner<'a>);

enum TxInner<'a> {
    Sqlite(rusqlite::Transaction<'a>),
    Postgres(postgres::Transaction<'a>),
}

impl Tx<'_> {
    /// Runs one statement.
    pub(crate) fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        match &mut self.0 {
            TxInner::Sqlite(t) => {
                Ok(t.execute(&sqlite_sql(sql), rusqlite::params_from_iter(args.iter()))? as u64)
            }
            TxInner::Postgres(t) => Ok(t.execute(sql, &pg_args(args))?),
        }
    }

    fn commit(self) -> Result<()> {
        match self.0 {
            TxInner::Sqlite(t) => t.commit()?,
            TxInner::Postgres(t) => t.commit()?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for ok in ["fl", "hospital_fl_2", "_x"] {
            assert!(check_schema_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Fl",
            "2fl",
            "fl;drop table meta",
            "a-b",
            "x\"y",
            &"a".repeat(64),
        ] {
            assert!(check_schema_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn placeholders_keep_their_numbers_in_sqlite() {
        // `$3` first: SQLite would bind it first if left as `$3`.
        assert_eq!(
            sqlite_sql("UPDATE t SET a = $3 WHERE b = $1 AND c = $2"),
            "UPDATE t SET a = ?3 WHERE b = ?1 AND c = ?2"
        );
    }
}
