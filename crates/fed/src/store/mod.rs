//! The coordinator's durable state: the federation, clients, the relayed
//! key-setup messages, rounds, every accepted upload (the running sum is
//! rebuilt from them after a restart, so an accepted update is never lost
//! or counted twice), decryption shares, the global model and the
//! optimizer state.
//!
//! Two backends, one set of statements ([`sql`]):
//! - **SQLite** (the embedded default): one file, WAL, `synchronous=FULL`,
//!   one `BEGIN IMMEDIATE` transaction per change; a lock file keeps a
//!   second coordinator out.
//! - **Postgres** (`--state postgres://…`): the same tables, one
//!   transaction per change, and an advisory lock on the schema held for
//!   the connection's life.
//!
//! Payloads (ciphertexts, decryption shares) are fsynced files with either
//! backend ([`payload`]): beside a SQLite state, in the coordinator's data
//! directory with Postgres.
//!
//! The audit ledger is not here: it is a signed SQLite file on the
//! coordinator's own volume with either backend (see
//! `crates/fed/README.md`, "Where the state lives").

mod direct;
mod files;
mod payload;
mod sql;
mod tls;

pub use files::{read_text_limited, write_atomic, write_private};
pub use payload::{share_blob, upload_blob, upload_segment, SegmentRange, SegmentWriter};
pub use sql::Tx;

use crate::error::{FedError, Result};
use sql::{Arg, Conn};
use std::path::{Path, PathBuf};

/// Where a coordinator keeps its state.
#[derive(Clone, PartialEq, Eq)]
pub enum StateLocation {
    /// A SQLite file (payloads in a directory beside it).
    Sqlite(PathBuf),
    /// A Postgres database.
    Postgres {
        /// A `postgres://…` URL or a `key=value` connection string
        /// (`host=/run/postgresql dbname=fl`); the password, if not in it,
        /// from `PGPASSWORD`.
        url: String,
        /// The schema holding this federation's tables (created if
        /// missing): one federation per schema; `None` uses the
        /// database's default `search_path`.
        schema: Option<String>,
        /// The CA (PEM) that signed the server's certificate: TLS is then
        /// required and the server verified. Without it, `sslmode=require`
        /// is refused and the connection is in the clear (a warning says
        /// so for a server that is not on this machine).
        ca: Option<PathBuf>,
    },
}

impl StateLocation {
    /// A `postgres://` or `postgresql://` URL is a Postgres state (in its
    /// default schema); anything else a SQLite file.
    pub fn parse(s: &str) -> Self {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            StateLocation::Postgres {
                url: s.to_string(),
                schema: None,
                ca: None,
            }
        } else {
            StateLocation::Sqlite(PathBuf::from(s))
        }
    }

    /// Shown in messages and logs: a Postgres address without its
    /// password or options.
    fn shown(&self) -> String {
        match self {
            StateLocation::Sqlite(p) => p.display().to_string(),
            StateLocation::Postgres { url, schema, .. } => {
                let place = match url.parse::<postgres::Config>() {
                    Ok(cfg) => {
                        let hosts: Vec<String> = cfg
                            .get_hosts()
                            .iter()
                            .map(|h| match h {
                                postgres::config::Host::Tcp(h) => h.clone(),
                                #[cfg(unix)]
                                postgres::config::Host::Unix(p) => p.display().to_string(),
                            })
                            .collect();
                        format!(
                            "postgres://{}@{}/{}",
                            cfg.get_user().unwrap_or(""),
                            hosts.join(","),
                            cfg.get_dbname().unwrap_or("")
                        )
                    }
                    Err(_) => "postgres://(unparsable address)".into(),
                };
                match schema {
                    Some(s) => format!("{place} (schema {s})"),
                    None => place,
                }
            }
        }
    }
}

impl std::fmt::Display for StateLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

/// Never prints a Postgres password.
impl std::fmt::Debug for StateLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StateLocation({})", self.shown())
    }
}

impl From<PathBuf> for StateLocation {
    fn from(p: PathBuf) -> Self {
        StateLocation::Sqlite(p)
    }
}

impl From<&Path> for StateLocation {
    fn from(p: &Path) -> Self {
        StateLocation::Sqlite(p.to_path_buf())
    }
}

/// Adds the columns that later versions use to SQLite state files made
/// before them (nothing stored is rewritten).
fn migrate(conn: &rusqlite::Connection) -> Result<()> {
    let mut st = conn.prepare("SELECT name FROM pragma_table_info('uploads')")?;
    let cols: Vec<String> = st
        .query_map([], |r| r.get(0))?
        .collect::<std::result::Result<_, _>>()?;
    if !cols.iter().any(|c| c == "segment") {
        conn.execute_batch(
            "ALTER TABLE uploads ADD COLUMN segment TEXT;
             ALTER TABLE uploads ADD COLUMN seg_offset INTEGER;
             ALTER TABLE uploads ADD COLUMN seg_len INTEGER;",
        )?;
    }
    Ok(())
}

/// An accepted upload.
#[derive(Clone, Debug, PartialEq)]
pub struct UploadRow {
    /// Client id.
    pub client_id: String,
    /// SHA-256 of the upload bytes.
    pub hash: [u8; 32],
    /// Examples reported with it.
    pub num_examples: u64,
    /// Its ledger entry, once appended.
    pub ledger_index: Option<u64>,
    /// The concatenated chunk encodings (absent once pruned).
    pub bytes: Option<Vec<u8>>,
}

/// A received decryption share.
#[derive(Clone, Debug, PartialEq)]
pub struct ShareRow {
    /// Client id.
    pub client_id: String,
    /// SHA-256 of the share bytes.
    pub hash: [u8; 32],
    /// Its ledger entry, once appended.
    pub ledger_index: Option<u64>,
    /// The concatenated parts, each length-prefixed.
    pub bytes: Vec<u8>,
}

/// A relayed key-setup message: (dealer, nonce, ciphertext).
pub type SealedRow = (u64, Vec<u8>, Vec<u8>);

/// The state database.
pub struct Store {
    conn: Conn,
    /// The payload files' directory.
    blobs: PathBuf,
    /// Whether payload files are written with direct I/O there.
    direct_io: bool,
    /// SQLite: held open with an exclusive lock for the store's lifetime,
    /// so a second coordinator on the same state is refused (Postgres: an
    /// advisory lock held by the connection).
    _lock: Option<std::fs::File>,
}

/// Checks a stored payload against the SHA-256 recorded for it.
fn check_hash(what: &str, bytes: &[u8], hash: &[u8; 32]) -> Result<()> {
    use sha2::{Digest, Sha256};
    let got: [u8; 32] = Sha256::digest(bytes).into();
    if &got != hash {
        return Err(FedError::Integrity(format!(
            "{what} does not match its recorded SHA-256 (stored {}, recorded {}): \
             the state was damaged",
            hex::encode(&got[..8]),
            hex::encode(&hash[..8])
        )));
    }
    Ok(())
}

fn hash_of(v: Vec<u8>) -> Result<[u8; 32]> {
    v.try_into()
        .map_err(|_| FedError::Encoding("stored hash is not 32 bytes".into()))
}

fn idx(v: Option<i64>) -> Option<u64> {
    v.and_then(|x| u64::try_from(x).ok())
}

/// A row count or index as stored (SQL integers are signed).
fn int(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| FedError::Encoding(format!("{v} does not fit the state")))
}

impl Store {
    /// Opens (creating if needed) the state at `at`. Payload files go
    /// beside a SQLite state (`<state>.blobs/`) and to `payloads` with a
    /// Postgres one.
    pub fn open(at: &StateLocation, payloads: &Path) -> Result<Self> {
        match at {
            StateLocation::Sqlite(path) => Self::open_sqlite(path),
            StateLocation::Postgres { url, schema, ca } => {
                let conn = Conn::open_postgres(url, schema.as_deref(), ca.as_deref(), &at.shown())?;
                std::fs::create_dir_all(payloads).map_err(|e| FedError::io(payloads, e))?;
                Ok(Self {
                    conn,
                    blobs: payloads.to_path_buf(),
                    direct_io: direct::supported(payloads),
                    _lock: None,
                })
            }
        }
    }

    fn open_sqlite(path: &Path) -> Result<Self> {
        if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d).map_err(|e| FedError::io(d, e))?;
        }
        let lock_path = path.with_extension("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| FedError::io(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                tracing::warn!(state = %path.display(), "state in use by another process");
                return Err(FedError::Locked(format!(
                    "{} is in use by another coordinator (lock {})",
                    path.display(),
                    lock_path.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(FedError::io(&lock_path, e)),
        }
        let conn = rusqlite::Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(sql::SQLITE_SCHEMA)?;
        migrate(&conn)?;
        let blobs = path.with_extension("blobs");
        std::fs::create_dir_all(&blobs).map_err(|e| FedError::io(&blobs, e))?;
        Ok(Self {
            conn: Conn::Sqlite(conn),
            direct_io: direct::supported(&blobs),
            blobs,
            _lock: Some(lock),
        })
    }

    /// Runs `f` in one transaction (all or nothing).
    pub fn tx<T>(&mut self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        self.conn.transaction(f)
    }

    /// A meta value.
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let mut rows = self
            .conn
            .query("SELECT value FROM meta WHERE key = $1", &[Arg::Text(key)])?;
        rows.pop().map(|mut r| r.bytes(0)).transpose()
    }

    /// A meta value as UTF-8 text.
    pub fn meta_text(&self, key: &str) -> Result<Option<String>> {
        self.meta(key)?
            .map(|v| String::from_utf8(v).map_err(|_| FedError::Encoding(format!("meta {key}"))))
            .transpose()
    }

    /// Uploads of a round, by ledger order then client id, each checked
    /// against its recorded hash.
    pub fn uploads(&self, round: u64) -> Result<Vec<UploadRow>> {
        let rows = self.conn.query(
            "SELECT client_id, hash, num_examples, ledger_index, bytes, segment, seg_offset,
                    seg_len FROM uploads
             WHERE round = $1 ORDER BY ledger_index, client_id",
            &[Arg::Int(int(round)?)],
        )?;
        rows.into_iter()
            .map(|mut r| {
                let client_id = r.text(0)?;
                let hash = hash_of(r.bytes(1)?)?;
                let n = r.int(2)?;
                let li = r.opt_int(3)?;
                let bytes = match (
                    r.opt_bytes(4)?,
                    r.opt_text(5)?,
                    r.opt_int(6)?,
                    r.opt_int(7)?,
                ) {
                    (Some(b), ..) => Some(b),
                    (None, Some(segment), Some(offset), Some(len)) => {
                        let range = SegmentRange {
                            segment,
                            offset: u64::try_from(offset).unwrap_or(u64::MAX),
                            len: u64::try_from(len).unwrap_or(u64::MAX),
                        };
                        match self.load_range(&range)? {
                            Some(b) => Some(b),
                            None => {
                                return Err(FedError::Integrity(format!(
                                    "the stored upload of {client_id} in round {round} is \
                                     missing from {}: the state was damaged",
                                    range.segment
                                )))
                            }
                        }
                    }
                    (None, ..) => self.load_blob(&upload_blob(round, &client_id))?,
                };
                if let Some(b) = &bytes {
                    check_hash(
                        &format!("the stored upload of {client_id} in round {round}"),
                        b,
                        &hash,
                    )?;
                }
                Ok(UploadRow {
                    client_id,
                    hash,
                    num_examples: u64::try_from(n).unwrap_or(0),
                    ledger_index: idx(li),
                    bytes,
                })
            })
            .collect()
    }

    /// Shares of a round's attempt, each checked against its recorded hash.
    pub fn shares(&self, round: u64, attempt: u32) -> Result<Vec<ShareRow>> {
        let rows = self.conn.query(
            "SELECT client_id, hash, ledger_index, bytes FROM shares
             WHERE round = $1 AND attempt = $2 ORDER BY client_id",
            &[Arg::Int(int(round)?), Arg::Int(attempt.into())],
        )?;
        rows.into_iter()
            .map(|mut r| {
                let client_id = r.text(0)?;
                let hash = hash_of(r.bytes(1)?)?;
                let li = r.opt_int(2)?;
                let bytes = match r.opt_bytes(3)? {
                    Some(b) => b,
                    None => self
                        .load_blob(&share_blob(round, attempt, &client_id))?
                        .ok_or_else(|| {
                            FedError::Integrity(format!(
                                "the stored decryption share of {client_id} in round {round} \
                                 is missing: the state was damaged"
                            ))
                        })?,
                };
                check_hash(
                    &format!("the stored decryption share of {client_id} in round {round}"),
                    &bytes,
                    &hash,
                )?;
                Ok(ShareRow {
                    client_id,
                    hash,
                    ledger_index: idx(li),
                    bytes,
                })
            })
            .collect()
    }

    /// The JSON record of a round.
    pub fn round(&self, round: u64) -> Result<Option<String>> {
        let mut rows = self.conn.query(
            "SELECT data FROM rounds WHERE round = $1",
            &[Arg::Int(int(round)?)],
        )?;
        rows.pop().map(|mut r| r.text(0)).transpose()
    }

    /// The highest round with a record.
    pub fn latest_round(&self) -> Result<Option<u64>> {
        let mut rows = self.conn.query("SELECT MAX(round) FROM rounds", &[])?;
        let v = match rows.pop() {
            Some(mut r) => r.opt_int(0)?,
            None => None,
        };
        Ok(idx(v))
    }

    /// Every round summary (JSON), in order.
    pub fn history(&self) -> Result<Vec<String>> {
        self.conn
            .query("SELECT data FROM history ORDER BY round", &[])?
            .into_iter()
            .map(|mut r| r.text(0))
            .collect()
    }

    /// Clients that joined: (id, examples, participations), by id.
    pub fn clients(&self) -> Result<Vec<(String, u64, u64)>> {
        self.conn
            .query(
                "SELECT client_id, num_examples, participations FROM clients ORDER BY client_id",
                &[],
            )?
            .into_iter()
            .map(|mut r| {
                Ok((
                    r.text(0)?,
                    u64::try_from(r.int(1)?).unwrap_or(0),
                    u64::try_from(r.int(2)?).unwrap_or(0),
                ))
            })
            .collect()
    }

    /// Key-setup messages addressed to `to`: (from, nonce, ciphertext).
    pub fn keysetup_for(&self, to: u64) -> Result<Vec<SealedRow>> {
        self.conn
            .query(
                "SELECT from_party, nonce, ciphertext FROM keysetup WHERE to_party = $1 \
                 ORDER BY from_party",
                &[Arg::Int(int(to)?)],
            )?
            .into_iter()
            .map(|mut r| {
                Ok((
                    u64::try_from(r.int(0)?).unwrap_or(0),
                    r.bytes(1)?,
                    r.bytes(2)?,
                ))
            })
            .collect()
    }

    /// Dealers who have posted their key setup.
    pub fn keysetup_dealers(&self) -> Result<Vec<u64>> {
        self.conn
            .query(
                "SELECT DISTINCT from_party FROM keysetup ORDER BY from_party",
                &[],
            )?
            .into_iter()
            .map(|mut r| Ok(u64::try_from(r.int(0)?).unwrap_or(0)))
            .collect()
    }
}

/// Sets a meta value.
pub fn set_meta(tx: &mut Tx<'_>, key: &str, value: &[u8]) -> Result<()> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[Arg::Text(key), Arg::Bytes(value)],
    )?;
    Ok(())
}

/// Inserts or updates a client's example count.
pub fn upsert_client(tx: &mut Tx<'_>, id: &str, num_examples: u64) -> Result<()> {
    tx.execute(
        "INSERT INTO clients (client_id, num_examples) VALUES ($1, $2)
         ON CONFLICT (client_id) DO UPDATE SET num_examples = excluded.num_examples",
        &[Arg::Text(id), Arg::Int(int(num_examples)?)],
    )?;
    Ok(())
}

/// Adds one participation to each client.
pub fn add_participations(tx: &mut Tx<'_>, ids: &[String]) -> Result<()> {
    for id in ids {
        tx.execute(
            "UPDATE clients SET participations = participations + 1 WHERE client_id = $1",
            &[Arg::Text(id)],
        )?;
    }
    Ok(())
}

/// Stores a dealer's sealed shares.
pub fn insert_keysetup(
    tx: &mut Tx<'_>,
    from: u64,
    to: u64,
    nonce: &[u8],
    ciphertext: &[u8],
) -> Result<()> {
    tx.execute(
        "INSERT INTO keysetup (from_party, to_party, nonce, ciphertext) VALUES ($1, $2, $3, $4)",
        &[
            Arg::Int(int(from)?),
            Arg::Int(int(to)?),
            Arg::Bytes(nonce),
            Arg::Bytes(ciphertext),
        ],
    )?;
    Ok(())
}

/// Writes a round record.
pub fn put_round(tx: &mut Tx<'_>, round: u64, json: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO rounds (round, data) VALUES ($1, $2)
         ON CONFLICT (round) DO UPDATE SET data = excluded.data",
        &[Arg::Int(int(round)?), Arg::Text(json)],
    )?;
    Ok(())
}

/// Writes a round summary.
pub fn put_history(tx: &mut Tx<'_>, round: u64, json: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO history (round, data) VALUES ($1, $2)
         ON CONFLICT (round) DO UPDATE SET data = excluded.data",
        &[Arg::Int(int(round)?), Arg::Text(json)],
    )?;
    Ok(())
}

/// Records an accepted upload whose payload is already saved with
/// [`Store::save_segment`] at `at`.
pub fn insert_upload(
    tx: &mut Tx<'_>,
    round: u64,
    client: &str,
    hash: &[u8; 32],
    num_examples: u64,
    at: &SegmentRange,
) -> Result<()> {
    tx.execute(
        "INSERT INTO uploads (round, client_id, hash, num_examples, segment, seg_offset, seg_len)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            Arg::Int(int(round)?),
            Arg::Text(client),
            Arg::Bytes(hash),
            Arg::Int(int(num_examples)?),
            Arg::Text(&at.segment),
            Arg::Int(int(at.offset)?),
            Arg::Int(int(at.len)?),
        ],
    )?;
    Ok(())
}

/// Records an upload's ledger entry.
pub fn set_upload_index(tx: &mut Tx<'_>, round: u64, client: &str, index: u64) -> Result<()> {
    tx.execute(
        "UPDATE uploads SET ledger_index = $3 WHERE round = $1 AND client_id = $2",
        &[
            Arg::Int(int(round)?),
            Arg::Text(client),
            Arg::Int(int(index)?),
        ],
    )?;
    Ok(())
}

/// Drops the inline ciphertexts of a closed round (hashes and indices
/// stay; segments go with [`Store::remove_round_blobs`]).
pub fn prune_uploads(tx: &mut Tx<'_>, round: u64) -> Result<()> {
    tx.execute(
        "UPDATE uploads SET bytes = NULL WHERE round = $1",
        &[Arg::Int(int(round)?)],
    )?;
    Ok(())
}

/// Records a decryption share whose payload is saved under [`share_blob`].
pub fn insert_share(
    tx: &mut Tx<'_>,
    round: u64,
    attempt: u32,
    client: &str,
    hash: &[u8; 32],
) -> Result<()> {
    tx.execute(
        "INSERT INTO shares (round, attempt, client_id, hash) VALUES ($1, $2, $3, $4)",
        &[
            Arg::Int(int(round)?),
            Arg::Int(attempt.into()),
            Arg::Text(client),
            Arg::Bytes(hash),
        ],
    )?;
    Ok(())
}

/// Records a share's ledger entry.
pub fn set_share_index(
    tx: &mut Tx<'_>,
    round: u64,
    attempt: u32,
    client: &str,
    index: u64,
) -> Result<()> {
    tx.execute(
        "UPDATE shares SET ledger_index = $4 WHERE round = $1 AND attempt = $2 AND client_id = $3",
        &[
            Arg::Int(int(round)?),
            Arg::Int(attempt.into()),
            Arg::Text(client),
            Arg::Int(int(index)?),
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests;
