//! SQLite storage.
//!
//! Tables:
//!
//! * `meta(key, value)`: format version, log name, log id, public key;
//! * `entries(idx, round, kind, data, leaf_hash)`: canonical entry bytes,
//!   their leaf hash, and round/kind columns used only for look-ups;
//! * `heads(seq, tree_size, timestamp_ms, root_hash, signature)`: signed
//!   tree heads in signing order;
//! * `aggregate_inputs(aggregate_idx, pos, update_idx, data)`: the canonical
//!   [`AggregateInput`](crate::entry::AggregateInput) list of each aggregate.
//!
//! Nothing stored is trusted on open: leaf hashes are recomputed from the
//! bytes, the look-up columns and input lists are checked against the
//! entries, and the tree is checked against the signed heads.
//!
//! Durability: WAL journal with `synchronous=FULL`, so the WAL is fsynced
//! at every commit and an append that returned survives both a process
//! crash and a power loss (`NORMAL` would only survive a process crash).
//! Every append (single or batch, together with its signed head and
//! aggregate inputs) is one `BEGIN IMMEDIATE` transaction, so a crash
//! mid-append leaves the log as it was before that append.

use crate::error::LedgerError;
use crate::merkle::Hash;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::path::Path;

/// `PRAGMA application_id` of ledger files ("CFLG").
const APPLICATION_ID: i64 = 0x4346_4c47;
/// `PRAGMA user_version`: storage format.
const FORMAT_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE entries (
    idx INTEGER PRIMARY KEY,
    round INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    data BLOB NOT NULL,
    leaf_hash BLOB NOT NULL
);
CREATE INDEX entries_by_round ON entries(round, kind);
CREATE TABLE heads (
    seq INTEGER PRIMARY KEY,
    tree_size INTEGER NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    root_hash BLOB NOT NULL,
    signature BLOB NOT NULL
);
CREATE TABLE aggregate_inputs (
    aggregate_idx INTEGER NOT NULL,
    pos INTEGER NOT NULL,
    update_idx INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (aggregate_idx, pos)
) WITHOUT ROWID;
CREATE INDEX aggregate_inputs_by_update ON aggregate_inputs(update_idx);
";

/// Metadata of a log.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub(crate) name: String,
    pub(crate) log_id: Vec<u8>,
    pub(crate) public_key: Vec<u8>,
}

/// One stored entry row.
#[derive(Debug)]
pub(crate) struct EntryRow {
    pub(crate) idx: u64,
    pub(crate) round: u64,
    pub(crate) kind: u64,
    pub(crate) data: Vec<u8>,
    pub(crate) leaf_hash: Vec<u8>,
}

/// One stored head row (the log id is implied by the log).
#[derive(Debug, Clone)]
pub(crate) struct HeadRow {
    pub(crate) seq: u64,
    pub(crate) tree_size: u64,
    pub(crate) timestamp_ms: u64,
    pub(crate) root_hash: Vec<u8>,
    pub(crate) signature: Vec<u8>,
}

/// One aggregate input row to write.
#[derive(Debug)]
pub(crate) struct InputRow {
    pub(crate) aggregate_idx: u64,
    pub(crate) pos: u64,
    pub(crate) update_idx: u64,
    pub(crate) data: Vec<u8>,
}

fn to_i64(v: u64) -> Result<i64, LedgerError> {
    i64::try_from(v)
        .map_err(|_| LedgerError::Refused(format!("value {v} exceeds the storage range")))
}

fn to_u64(v: i64) -> rusqlite::Result<u64> {
    u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, v))
}

/// A ledger database connection.
#[derive(Debug)]
pub(crate) struct Store {
    conn: Connection,
}

impl Store {
    fn configure(conn: &Connection, writable: bool) -> Result<(), LedgerError> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        if writable {
            let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(LedgerError::Refused(format!(
                    "could not enable WAL (journal_mode={mode})"
                )));
            }
            conn.pragma_update(None, "synchronous", "FULL")?;
        }
        Ok(())
    }

    /// Creates a new log file with its first signed head; refuses to touch
    /// an existing path. The file is built under `PATH.creating` and renamed
    /// into place once complete, so a crash during creation never leaves a
    /// half-made log at `path`.
    pub(crate) fn create(
        path: &Path,
        name: &str,
        log_id: &Hash,
        public_key: &[u8; 32],
        first_head: &HeadRow,
    ) -> Result<Self, LedgerError> {
        if path.exists() {
            return Err(LedgerError::AlreadyExists(path.to_path_buf()));
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".creating");
        let tmp = std::path::PathBuf::from(tmp);
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = tmp.as_os_str().to_owned();
            p.push(suffix);
            // A leftover from a creation that crashed; nothing else writes here.
            let _ = std::fs::remove_file(std::path::PathBuf::from(p));
        }
        {
            let conn = Connection::open_with_flags(
                &tmp,
                OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_CREATE
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            Self::configure(&conn, true)?;
            let mut store = Self { conn };
            let tx = store.conn.transaction()?;
            tx.pragma_update(None, "application_id", APPLICATION_ID)?;
            tx.pragma_update(None, "user_version", FORMAT_VERSION)?;
            tx.execute_batch(SCHEMA)?;
            {
                let mut ins = tx.prepare("INSERT INTO meta (key, value) VALUES (?1, ?2)")?;
                ins.execute(params!["name", name.as_bytes()])?;
                ins.execute(params!["log_id", &log_id[..]])?;
                ins.execute(params!["public_key", &public_key[..]])?;
            }
            tx.commit()?;
            store.append(&[], &[], Some(first_head))?;
            // Closing the only connection checkpoints the WAL into the file.
            store.conn.close().map_err(|(_, e)| e)?;
        }
        let io =
            |e: std::io::Error| LedgerError::Refused(format!("creating {}: {e}", path.display()));
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
        if path.exists() {
            return Err(LedgerError::AlreadyExists(path.to_path_buf()));
        }
        std::fs::rename(&tmp, path).map_err(io)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Make the rename durable (best effort where directories cannot be opened).
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Self::open(path, true)
    }

    /// Opens an existing log. Checks the file is a ledger of a known format.
    pub(crate) fn open(path: &Path, writable: bool) -> Result<Self, LedgerError> {
        if !path.exists() {
            return Err(LedgerError::NotFound(path.to_path_buf()));
        }
        let flags = if writable {
            OpenFlags::SQLITE_OPEN_READ_WRITE
        } else {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        Self::configure(&conn, writable)?;
        Ok(Self { conn })
    }

    /// Starts a read transaction: every read until [`end_read`](Self::end_read)
    /// sees one snapshot, even while another process appends.
    pub(crate) fn begin_read(&self) -> Result<(), LedgerError> {
        self.conn.execute_batch("BEGIN DEFERRED")?;
        Ok(())
    }

    /// Ends the read transaction of [`begin_read`](Self::begin_read).
    pub(crate) fn end_read(&self) -> Result<(), LedgerError> {
        if !self.conn.is_autocommit() {
            self.conn.execute_batch("COMMIT")?;
        }
        Ok(())
    }

    /// Application id and format version; `Err` text says what is wrong.
    pub(crate) fn check_format(&self) -> Result<Result<(), String>, LedgerError> {
        let app: i64 = self
            .conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))?;
        if app != APPLICATION_ID {
            return Ok(Err(format!("application id {app:#x}")));
        }
        let ver: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if ver != FORMAT_VERSION {
            return Ok(Err(format!("unsupported format version {ver}")));
        }
        Ok(Ok(()))
    }

    /// Reads the metadata; `None` if a key is missing.
    pub(crate) fn meta(&self) -> Result<Option<Meta>, LedgerError> {
        let get = |k: &str| -> Result<Option<Vec<u8>>, LedgerError> {
            Ok(self
                .conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0))
                .optional()?)
        };
        let (Some(name), Some(log_id), Some(public_key)) =
            (get("name")?, get("log_id")?, get("public_key")?)
        else {
            return Ok(None);
        };
        let Ok(name) = String::from_utf8(name) else {
            return Ok(None);
        };
        Ok(Some(Meta {
            name,
            log_id,
            public_key,
        }))
    }

    /// Calls `f` on every entry row in index order.
    pub(crate) fn for_each_entry<E: From<rusqlite::Error>>(
        &self,
        mut f: impl FnMut(EntryRow) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut stmt = self
            .conn
            .prepare("SELECT idx, round, kind, data, leaf_hash FROM entries ORDER BY idx")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            f(EntryRow {
                idx: to_u64(r.get(0)?)?,
                round: to_u64(r.get(1)?)?,
                kind: to_u64(r.get(2)?)?,
                data: r.get(3)?,
                leaf_hash: r.get(4)?,
            })?;
        }
        Ok(())
    }

    /// Bytes of entry `idx`.
    pub(crate) fn entry(&self, idx: u64) -> Result<Option<Vec<u8>>, LedgerError> {
        Ok(self
            .conn
            .query_row(
                "SELECT data FROM entries WHERE idx = ?1",
                [to_i64(idx)?],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// `(idx, bytes)` of the entries of one round and kind.
    pub(crate) fn entries_in_round(
        &self,
        round: u64,
        kind: u16,
    ) -> Result<Vec<(u64, Vec<u8>)>, LedgerError> {
        let mut stmt = self
            .conn
            .prepare("SELECT idx, data FROM entries WHERE round = ?1 AND kind = ?2 ORDER BY idx")?;
        let rows = stmt.query_map(params![to_i64(round)?, i64::from(kind)], |r| {
            Ok((to_u64(r.get(0)?)?, r.get(1)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Input rows `(pos, update_idx, bytes)` of an aggregate, by position.
    pub(crate) fn aggregate_inputs(
        &self,
        aggregate_idx: u64,
    ) -> Result<Vec<(u64, u64, Vec<u8>)>, LedgerError> {
        let mut stmt = self
            .conn
            .prepare("SELECT pos, update_idx, data FROM aggregate_inputs WHERE aggregate_idx = ?1 ORDER BY pos")?;
        let rows = stmt.query_map([to_i64(aggregate_idx)?], |r| {
            Ok((
                to_u64(r.get(0)?)?,
                to_u64(r.get(1)?)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The first aggregate that lists update `update_idx`, as `(aggregate_idx, pos)`.
    pub(crate) fn aggregate_containing(
        &self,
        update_idx: u64,
    ) -> Result<Option<(u64, u64)>, LedgerError> {
        Ok(self
            .conn
            .query_row(
                "SELECT aggregate_idx, pos FROM aggregate_inputs WHERE update_idx = ?1 ORDER BY aggregate_idx LIMIT 1",
                [to_i64(update_idx)?],
                |r| Ok((to_u64(r.get(0)?)?, to_u64(r.get(1)?)?)),
            )
            .optional()?)
    }

    /// Number of aggregate input rows.
    pub(crate) fn aggregate_input_count(&self) -> Result<u64, LedgerError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM aggregate_inputs", [], |r| r.get(0))?;
        Ok(to_u64(n)?)
    }

    /// Heads with `seq > after` (all when `None`), in order, at most `limit`.
    pub(crate) fn heads_page(
        &self,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<HeadRow>, LedgerError> {
        let after = match after {
            Some(a) => to_i64(a)?,
            None => -1,
        };
        let mut stmt = self.conn.prepare(
            "SELECT seq, tree_size, timestamp_ms, root_hash, signature FROM heads WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after, limit], head_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The most recent head.
    pub(crate) fn latest_head(&self) -> Result<Option<HeadRow>, LedgerError> {
        Ok(self
            .conn
            .query_row(
                "SELECT seq, tree_size, timestamp_ms, root_hash, signature FROM heads ORDER BY seq DESC LIMIT 1",
                [],
                head_row,
            )
            .optional()?)
    }

    /// Number of heads.
    pub(crate) fn head_count(&self) -> Result<u64, LedgerError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM heads", [], |r| r.get(0))?;
        Ok(to_u64(n)?)
    }

    /// Writes entries, aggregate inputs and optionally a head in one durable
    /// transaction.
    pub(crate) fn append(
        &mut self,
        entries: &[EntryRow],
        inputs: &[InputRow],
        head: Option<&HeadRow>,
    ) -> Result<(), LedgerError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT INTO entries (idx, round, kind, data, leaf_hash) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for e in entries {
                ins.execute(params![
                    to_i64(e.idx)?,
                    to_i64(e.round)?,
                    to_i64(e.kind)?,
                    e.data,
                    e.leaf_hash
                ])?;
            }
            let mut ins = tx.prepare_cached(
                "INSERT INTO aggregate_inputs (aggregate_idx, pos, update_idx, data) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for i in inputs {
                ins.execute(params![
                    to_i64(i.aggregate_idx)?,
                    to_i64(i.pos)?,
                    to_i64(i.update_idx)?,
                    i.data
                ])?;
            }
            if let Some(h) = head {
                tx.prepare_cached(
                    "INSERT INTO heads (seq, tree_size, timestamp_ms, root_hash, signature) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                    to_i64(h.seq)?,
                    to_i64(h.tree_size)?,
                    to_i64(h.timestamp_ms)?,
                    h.root_hash,
                    h.signature
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

fn head_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<HeadRow> {
    Ok(HeadRow {
        seq: to_u64(r.get(0)?)?,
        tree_size: to_u64(r.get(1)?)?,
        timestamp_ms: to_u64(r.get(2)?)?,
        root_hash: r.get(3)?,
        signature: r.get(4)?,
    })
}
