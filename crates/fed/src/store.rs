//! The coordinator's durable state in SQLite (WAL, `synchronous=FULL`, one
//! `BEGIN IMMEDIATE` transaction per change): the federation, clients, the
//! relayed key-setup messages, rounds, every accepted upload (the running
//! sum is rebuilt from them after a restart, so an accepted update is never
//! lost or counted twice), decryption shares, the global model and the
//! optimizer state. Ciphertext payloads (megabytes each) are files beside
//! the database, written and fsynced before the row that refers to them
//! commits; a row is the commit point, a file without one is ignored.
//! Uploads are committed in groups: one segment file holds a batch's
//! payloads (one fsync for all of them), and each row names its segment,
//! offset and length.

use crate::error::{FedError, Result};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use std::path::Path;

const SCHEMA: &str = "
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

/// Adds the columns that later versions use to state files made before
/// them (nothing stored is rewritten).
fn migrate(conn: &Connection) -> Result<()> {
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

/// Where an accepted upload's payload lies: a range of a segment file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentRange {
    /// The segment file's name (see [`upload_segment`]).
    pub segment: String,
    /// Offset of the payload in it.
    pub offset: u64,
    /// Length of the payload.
    pub len: u64,
}

/// The name of a round's segment file whose first upload is the round's
/// `seq`-th.
pub fn upload_segment(round: u64, seq: usize) -> String {
    format!("segment-{round}-{seq}.bin")
}

/// A payload file being written (see [`Store::segment_writer`]): nothing
/// in it counts until [`SegmentWriter::finish`] made it durable and a
/// state row names it.
pub struct SegmentWriter {
    file: std::io::BufWriter<std::fs::File>,
    name: String,
    tmp: std::path::PathBuf,
    path: std::path::PathBuf,
    dir: std::path::PathBuf,
    offset: u64,
}

impl SegmentWriter {
    /// Appends one payload, given as consecutive pieces; returns where it
    /// will lie.
    pub fn append(&mut self, pieces: &[&[u8]]) -> Result<SegmentRange> {
        use std::io::Write;
        let start = self.offset;
        for p in pieces {
            self.file
                .write_all(p)
                .map_err(|e| FedError::io(&self.tmp, e))?;
            self.offset += p.len() as u64;
        }
        Ok(SegmentRange {
            segment: self.name.clone(),
            offset: start,
            len: self.offset - start,
        })
    }

    /// Makes the file durable under its name: flush, fsync, rename, fsync
    /// of the directory.
    pub fn finish(self) -> Result<()> {
        let file = self
            .file
            .into_inner()
            .map_err(|e| FedError::io(&self.tmp, e.into_error()))?;
        file.sync_all().map_err(|e| FedError::io(&self.tmp, e))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path).map_err(|e| FedError::io(&self.path, e))?;
        #[cfg(unix)]
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| FedError::io(&self.dir, e))?;
        Ok(())
    }
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
    conn: Connection,
    blobs: std::path::PathBuf,
    /// Held open with an exclusive lock for the store's lifetime: a second
    /// coordinator on the same state is refused.
    _lock: std::fs::File,
}

/// Checks a stored payload against the SHA-256 recorded for it.
fn check_hash(what: &str, bytes: &[u8], hash: &[u8; 32]) -> Result<()> {
    use sha2::{Digest, Sha256};
    let got: [u8; 32] = Sha256::digest(bytes).into();
    if &got != hash {
        return Err(FedError::Integrity(format!(
            "{what} does not match its recorded SHA-256 (stored {}, recorded {}): \
             the state directory was damaged",
            hex::encode(&got[..8]),
            hex::encode(&hash[..8])
        )));
    }
    Ok(())
}

/// A payload file name read back from the state: a plain file name in the
/// payload directory, never a path.
fn check_blob_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(FedError::Integrity(format!(
            "a stored payload file name {name:?} is not a plain file name"
        )))
    }
}

/// The payload file name of an upload.
pub fn upload_blob(round: u64, client: &str) -> String {
    format!("upload-{round}-{client}.bin")
}

/// The payload file name of a decryption share.
pub fn share_blob(round: u64, attempt: u32, client: &str) -> String {
    format!("share-{round}-{attempt}-{client}.bin")
}

fn hash_of(v: Vec<u8>) -> Result<[u8; 32]> {
    v.try_into()
        .map_err(|_| FedError::Encoding("stored hash is not 32 bytes".into()))
}

fn idx(v: Option<i64>) -> Option<u64> {
    v.and_then(|x| u64::try_from(x).ok())
}

impl Store {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
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
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(SCHEMA)?;
        migrate(&conn)?;
        let blobs = path.with_extension("blobs");
        std::fs::create_dir_all(&blobs).map_err(|e| FedError::io(&blobs, e))?;
        Ok(Self {
            conn,
            blobs,
            _lock: lock,
        })
    }

    /// Writes a payload file durably (temporary file, fsync, rename, fsync
    /// of the directory).
    pub fn save_blob(&self, name: &str, data: &[u8]) -> Result<()> {
        self.save_segment(name, &[data]).map(|_| ())
    }

    /// Writes `parts` one after the other into one payload file, durably
    /// (one fsync for all of them, and one of the directory); returns where
    /// each part lies.
    pub fn save_segment(&self, name: &str, parts: &[&[u8]]) -> Result<Vec<SegmentRange>> {
        let mut w = self.segment_writer(name)?;
        let ranges = parts
            .iter()
            .map(|p| w.append(&[p]))
            .collect::<Result<Vec<_>>>()?;
        w.finish()?;
        Ok(ranges)
    }

    /// A payload file written piece by piece (each piece as soon as it is
    /// accepted, so that a batch's payloads are not all held in memory)
    /// and made durable once, by [`SegmentWriter::finish`].
    pub fn segment_writer(&self, name: &str) -> Result<SegmentWriter> {
        check_blob_name(name)?;
        let path = self.blobs.join(name);
        let tmp = path.with_extension("tmp");
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(FedError::io(&tmp, e)),
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| FedError::io(&tmp, e))?;
        Ok(SegmentWriter {
            file: std::io::BufWriter::with_capacity(1 << 20, file),
            name: name.to_string(),
            tmp,
            path,
            dir: self.blobs.clone(),
            offset: 0,
        })
    }

    /// Reads a range of a segment file; `None` when the file is missing or
    /// shorter than the range (the hash check then reports the damage).
    fn load_range(&self, r: &SegmentRange) -> Result<Option<Vec<u8>>> {
        use std::io::{Read, Seek, SeekFrom};
        check_blob_name(&r.segment)?;
        let path = self.blobs.join(&r.segment);
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(FedError::io(&path, e)),
        };
        let size = f.metadata().map_err(|e| FedError::io(&path, e))?.len();
        if r.offset.checked_add(r.len).is_none_or(|end| end > size) {
            return Ok(None);
        }
        let len = usize::try_from(r.len)
            .map_err(|_| FedError::Integrity("a stored upload's length".into()))?;
        let mut buf = vec![0u8; len];
        f.seek(SeekFrom::Start(r.offset))
            .and_then(|_| f.read_exact(&mut buf))
            .map_err(|e| FedError::io(&path, e))?;
        Ok(Some(buf))
    }

    /// Reads a payload file, if present.
    pub fn load_blob(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let path = self.blobs.join(name);
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(FedError::io(&path, e)),
        }
    }

    /// Deletes the payload files of a round (uploads and shares).
    pub fn remove_round_blobs(&self, round: u64) {
        let prefixes = [
            format!("upload-{round}-"),
            format!("segment-{round}-"),
            format!("share-{round}-"),
        ];
        if let Ok(rd) = std::fs::read_dir(&self.blobs) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if prefixes.iter().any(|p| name.starts_with(p.as_str())) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }

    /// Runs `f` in one immediate transaction (all or nothing).
    pub fn tx<T>(&mut self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// A meta value.
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// A meta value as UTF-8 text.
    pub fn meta_text(&self, key: &str) -> Result<Option<String>> {
        self.meta(key)?
            .map(|v| String::from_utf8(v).map_err(|_| FedError::Encoding(format!("meta {key}"))))
            .transpose()
    }

    /// Uploads of a round, by ledger order then client id.
    pub fn uploads(&self, round: u64) -> Result<Vec<UploadRow>> {
        let mut st = self.conn.prepare(
            "SELECT client_id, hash, num_examples, ledger_index, bytes, segment, seg_offset,
                    seg_len FROM uploads
             WHERE round = ?1 ORDER BY ledger_index, client_id",
        )?;
        let rows = st.query_map([round as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, Option<Vec<u8>>>(4)?,
                (
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                    r.get::<_, Option<i64>>(7)?,
                ),
            ))
        })?;
        let rows: Vec<_> = rows.collect::<std::result::Result<_, _>>()?;
        rows.into_iter()
            .map(|(client_id, hash, n, li, bytes, seg)| {
                let bytes = match (bytes, seg) {
                    (Some(b), _) => Some(b),
                    (None, (Some(segment), Some(offset), Some(len))) => {
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
                                     missing from {}: the state directory was damaged",
                                    range.segment
                                )))
                            }
                        }
                    }
                    (None, _) => self.load_blob(&upload_blob(round, &client_id))?,
                };
                let hash = hash_of(hash)?;
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

    /// Shares of a round's attempt.
    pub fn shares(&self, round: u64, attempt: u32) -> Result<Vec<ShareRow>> {
        let mut st = self.conn.prepare(
            "SELECT client_id, hash, ledger_index, bytes FROM shares
             WHERE round = ?1 AND attempt = ?2 ORDER BY client_id",
        )?;
        let rows = st.query_map(params![round as i64, attempt], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, Option<Vec<u8>>>(3)?,
            ))
        })?;
        let rows: Vec<_> = rows.collect::<std::result::Result<_, _>>()?;
        rows.into_iter()
            .map(|(client_id, hash, li, bytes)| {
                let bytes = match bytes {
                    Some(b) => b,
                    None => self
                        .load_blob(&share_blob(round, attempt, &client_id))?
                        .ok_or_else(|| {
                            FedError::Encoding("a stored share's payload is missing".into())
                        })?,
                };
                let hash = hash_of(hash)?;
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
        Ok(self
            .conn
            .query_row(
                "SELECT data FROM rounds WHERE round = ?1",
                [round as i64],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The highest round with a record.
    pub fn latest_round(&self) -> Result<Option<u64>> {
        let v: Option<i64> = self
            .conn
            .query_row("SELECT MAX(round) FROM rounds", [], |r| r.get(0))?;
        Ok(idx(v))
    }

    /// Every round summary (JSON), in order.
    pub fn history(&self) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare("SELECT data FROM history ORDER BY round")?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Clients that joined: (id, examples, participations).
    pub fn clients(&self) -> Result<Vec<(String, u64, u64)>> {
        let mut st = self
            .conn
            .prepare("SELECT client_id, num_examples, participations FROM clients")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        rows.map(|row| {
            let (id, n, p) = row?;
            Ok((
                id,
                u64::try_from(n).unwrap_or(0),
                u64::try_from(p).unwrap_or(0),
            ))
        })
        .collect()
    }

    /// Key-setup messages addressed to `to`: (from, nonce, ciphertext).
    pub fn keysetup_for(&self, to: u64) -> Result<Vec<SealedRow>> {
        let mut st = self.conn.prepare(
            "SELECT from_party, nonce, ciphertext FROM keysetup WHERE to_party = ?1 ORDER BY from_party",
        )?;
        let rows = st.query_map([to as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })?;
        rows.map(|row| {
            let (f, n, c) = row?;
            Ok((u64::try_from(f).unwrap_or(0), n, c))
        })
        .collect()
    }

    /// Dealers who have posted their key setup.
    pub fn keysetup_dealers(&self) -> Result<Vec<u64>> {
        let mut st = self
            .conn
            .prepare("SELECT DISTINCT from_party FROM keysetup ORDER BY from_party")?;
        let rows = st.query_map([], |r| r.get::<_, i64>(0))?;
        rows.map(|r| Ok(u64::try_from(r?).unwrap_or(0))).collect()
    }
}

/// Sets a meta value.
pub fn set_meta(tx: &Transaction<'_>, key: &str, value: &[u8]) -> Result<()> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

/// Inserts or updates a client's example count.
pub fn upsert_client(tx: &Transaction<'_>, id: &str, num_examples: u64) -> Result<()> {
    tx.execute(
        "INSERT INTO clients (client_id, num_examples) VALUES (?1, ?2)
         ON CONFLICT(client_id) DO UPDATE SET num_examples = excluded.num_examples",
        params![id, num_examples as i64],
    )?;
    Ok(())
}

/// Adds one participation to each client.
pub fn add_participations(tx: &Transaction<'_>, ids: &[String]) -> Result<()> {
    for id in ids {
        tx.execute(
            "UPDATE clients SET participations = participations + 1 WHERE client_id = ?1",
            [id],
        )?;
    }
    Ok(())
}

/// Stores a dealer's sealed shares.
pub fn insert_keysetup(
    tx: &Transaction<'_>,
    from: u64,
    to: u64,
    nonce: &[u8],
    ciphertext: &[u8],
) -> Result<()> {
    tx.execute(
        "INSERT INTO keysetup (from_party, to_party, nonce, ciphertext) VALUES (?1, ?2, ?3, ?4)",
        params![from as i64, to as i64, nonce, ciphertext],
    )?;
    Ok(())
}

/// Writes a round record.
pub fn put_round(tx: &Transaction<'_>, round: u64, json: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO rounds (round, data) VALUES (?1, ?2)
         ON CONFLICT(round) DO UPDATE SET data = excluded.data",
        params![round as i64, json],
    )?;
    Ok(())
}

/// Writes a round summary.
pub fn put_history(tx: &Transaction<'_>, round: u64, json: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO history (round, data) VALUES (?1, ?2)
         ON CONFLICT(round) DO UPDATE SET data = excluded.data",
        params![round as i64, json],
    )?;
    Ok(())
}

/// Records an accepted upload whose payload is already saved with
/// [`Store::save_segment`] at `at`.
pub fn insert_upload(
    tx: &Transaction<'_>,
    round: u64,
    client: &str,
    hash: &[u8; 32],
    num_examples: u64,
    at: &SegmentRange,
) -> Result<()> {
    tx.execute(
        "INSERT INTO uploads (round, client_id, hash, num_examples, segment, seg_offset, seg_len)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            round as i64,
            client,
            &hash[..],
            num_examples as i64,
            at.segment,
            at.offset as i64,
            at.len as i64
        ],
    )?;
    Ok(())
}

/// Records an upload's ledger entry.
pub fn set_upload_index(tx: &Transaction<'_>, round: u64, client: &str, index: u64) -> Result<()> {
    tx.execute(
        "UPDATE uploads SET ledger_index = ?3 WHERE round = ?1 AND client_id = ?2",
        params![round as i64, client, index as i64],
    )?;
    Ok(())
}

/// Drops the ciphertexts of a closed round (hashes and indices stay).
pub fn prune_uploads(tx: &Transaction<'_>, round: u64) -> Result<()> {
    tx.execute(
        "UPDATE uploads SET bytes = NULL WHERE round = ?1",
        [round as i64],
    )?;
    Ok(())
}

/// Records a decryption share whose payload is saved under [`share_blob`].
pub fn insert_share(
    tx: &Transaction<'_>,
    round: u64,
    attempt: u32,
    client: &str,
    hash: &[u8; 32],
) -> Result<()> {
    tx.execute(
        "INSERT INTO shares (round, attempt, client_id, hash) VALUES (?1, ?2, ?3, ?4)",
        params![round as i64, attempt, client, &hash[..]],
    )?;
    Ok(())
}

/// Records a share's ledger entry.
pub fn set_share_index(
    tx: &Transaction<'_>,
    round: u64,
    attempt: u32,
    client: &str,
    index: u64,
) -> Result<()> {
    tx.execute(
        "UPDATE shares SET ledger_index = ?4 WHERE round = ?1 AND attempt = ?2 AND client_id = ?3",
        params![round as i64, attempt, client, index as i64],
    )?;
    Ok(())
}

/// Reads a UTF-8 file of at most `max` bytes: a larger one is refused
/// before it is read into memory.
pub fn read_text_limited(path: &Path, max: u64) -> Result<String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| FedError::io(path, e))?;
    let mut text = String::new();
    f.take(max + 1)
        .read_to_string(&mut text)
        .map_err(|e| FedError::io(path, e))?;
    if text.len() as u64 > max {
        return Err(FedError::Config(format!(
            "{} is larger than {max} bytes",
            path.display()
        )));
    }
    Ok(text)
}

/// Writes private state (mode 0600), replacing the file atomically.
pub fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    write_file(path, &[data], true)
}

/// Writes `data` to `path` through a temporary file and a rename (mode
/// 0600 and refusing to overwrite when `secret`).
pub fn write_atomic(path: &Path, data: &[u8], secret: bool) -> Result<()> {
    if secret && path.exists() {
        return Err(FedError::Config(format!(
            "{} exists: refusing to overwrite a secret",
            path.display()
        )));
    }
    write_file(path, &[data], secret)
}

fn write_file(path: &Path, parts: &[&[u8]], secret: bool) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(d) = dir {
        std::fs::create_dir_all(d).map_err(|e| FedError::io(d, e))?;
    }
    let tmp = path.with_extension("tmp");
    {
        // A left-over temporary file (another mode, another owner, a link)
        // is removed, and the new one created afresh: its mode is then
        // the one asked for, not the old file's.
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(FedError::io(&tmp, e)),
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(if secret { 0o600 } else { 0o644 });
        }
        let mut f = opts.open(&tmp).map_err(|e| FedError::io(&tmp, e))?;
        #[cfg(unix)]
        if secret {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(|e| FedError::io(&tmp, e))?;
        }
        for data in parts {
            f.write_all(data).map_err(|e| FedError::io(&tmp, e))?;
        }
        f.sync_all().map_err(|e| FedError::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| FedError::io(path, e))
}

#[cfg(test)]
mod private_file_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn files_larger_than_their_limit_are_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fed.toml");
        std::fs::write(&path, vec![b'#'; 2048]).unwrap();
        assert!(read_text_limited(&path, 1024).is_err());
        assert_eq!(read_text_limited(&path, 2048).unwrap().len(), 2048);
    }

    #[cfg(unix)]
    #[test]
    fn a_secret_is_written_0600_even_over_a_left_over_temporary_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.json");
        // A temporary file left world-readable by an earlier crash.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, b"old").unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&path, b"secret").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"secret");
        // And when the file itself existed with a wider mode.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&path, b"secret 2").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

#[cfg(test)]
mod segment_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn a_state_from_before_segments_is_migrated_and_its_uploads_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let payload = b"an upload stored as its own file".to_vec();
        let hash: [u8; 32] = Sha256::digest(&payload).into();
        {
            // The uploads table as it was before segments.
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE uploads (
                    round INTEGER NOT NULL, client_id TEXT NOT NULL, hash BLOB NOT NULL,
                    num_examples INTEGER NOT NULL, ledger_index INTEGER, bytes BLOB,
                    PRIMARY KEY (round, client_id));",
            )
            .unwrap();
            c.execute(
                "INSERT INTO uploads (round, client_id, hash, num_examples) VALUES (1, 'a', ?1, 3)",
                [&hash[..]],
            )
            .unwrap();
            let blobs = path.with_extension("blobs");
            std::fs::create_dir_all(&blobs).unwrap();
            std::fs::write(blobs.join(upload_blob(1, "a")), &payload).unwrap();
        }
        let mut store = Store::open(&path).unwrap();
        let rows = store.uploads(1).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].bytes.as_deref(), Some(payload.as_slice()));
        // New uploads go to segments beside the old rows.
        let other = b"a new upload".to_vec();
        let h2: [u8; 32] = Sha256::digest(&other).into();
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
    fn segment_ranges_are_checked_before_use() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("state.db")).unwrap();
        let parts: [&[u8]; 2] = [b"first", b"second"];
        let at = store.save_segment(&upload_segment(2, 0), &parts).unwrap();
        assert_eq!((at[1].offset, at[1].len), (5, 6));
        let hash = |b: &[u8]| -> [u8; 32] { Sha256::digest(b).into() };
        // A range past the file's end, a path instead of a name, a payload
        // that does not match its hash: typed errors, nothing read outside.
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
                    segment: "../state.db".into(),
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
                    tx.execute("DELETE FROM uploads WHERE client_id = ?1", [id])?;
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
    }
}
