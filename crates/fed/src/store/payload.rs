//! Payloads — ciphertext uploads and decryption shares, megabytes each —
//! kept apart from the state rows that refer to them.
//!
//! With SQLite they are files beside the database (`<state>.blobs/`),
//! written and fsynced before the row that names them commits; with
//! Postgres they are rows of `payload_parts`, committed before the rows
//! that name them. Either way a state row is the commit point and a
//! payload without one is ignored (and removed with its round). Uploads
//! are committed in groups: one segment holds a batch's payloads (one
//! fsync, or one Postgres commit, for all of them), and each upload row
//! names its segment, offset and length.

use super::sql::Arg;
use super::Store;
use crate::error::{FedError, Result};
use std::path::PathBuf;

/// Where payloads are kept.
pub(super) enum Payloads {
    /// Files in this directory (SQLite state).
    Files(PathBuf),
    /// The state database's `payload_parts` table (Postgres state).
    Database,
}

/// Where an accepted upload's payload lies: a range of a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentRange {
    /// The segment's name (see [`upload_segment`]).
    pub segment: String,
    /// Offset of the payload in it.
    pub offset: u64,
    /// Length of the payload.
    pub len: u64,
}

/// The name of a round's segment whose first upload is the round's
/// `seq`-th.
pub fn upload_segment(round: u64, seq: usize) -> String {
    format!("segment-{round}-{seq}.bin")
}

/// The payload name of an upload (states from before segments).
pub fn upload_blob(round: u64, client: &str) -> String {
    format!("upload-{round}-{client}.bin")
}

/// The payload name of a decryption share.
pub fn share_blob(round: u64, attempt: u32, client: &str) -> String {
    format!("share-{round}-{attempt}-{client}.bin")
}

/// A payload name read back from the state: a plain file name, never a
/// path.
pub(super) fn check_blob_name(name: &str) -> Result<()> {
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

/// A segment being written (see [`Store::segment_writer`]): nothing in it
/// counts until [`Store::commit_segment`] made it durable and a state row
/// names it.
pub struct SegmentWriter {
    name: String,
    offset: u64,
    sink: Sink,
}

enum Sink {
    /// Streamed to a temporary file, renamed when committed.
    File {
        file: std::io::BufWriter<std::fs::File>,
        tmp: PathBuf,
        path: PathBuf,
        dir: PathBuf,
    },
    /// Held until committed in one transaction: (offset, payload).
    Rows(Vec<(u64, Vec<u8>)>),
}

impl SegmentWriter {
    /// Appends one payload, given as consecutive pieces; returns where it
    /// will lie.
    pub fn append(&mut self, pieces: &[&[u8]]) -> Result<SegmentRange> {
        use std::io::Write;
        let start = self.offset;
        let len: u64 = pieces.iter().map(|p| p.len() as u64).sum();
        match &mut self.sink {
            Sink::File { file, tmp, .. } => {
                for p in pieces {
                    file.write_all(p).map_err(|e| FedError::io(&*tmp, e))?;
                }
            }
            Sink::Rows(rows) => rows.push((start, pieces.concat())),
        }
        self.offset += len;
        Ok(SegmentRange {
            segment: self.name.clone(),
            offset: start,
            len,
        })
    }
}

fn db_offset(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| FedError::Encoding("a payload offset beyond 2^63".into()))
}

impl Store {
    /// Writes a payload durably.
    pub fn save_blob(&mut self, name: &str, data: &[u8]) -> Result<()> {
        self.save_segment(name, &[data]).map(|_| ())
    }

    /// Writes `parts` one after the other into one segment, durably (one
    /// fsync or one commit for all of them); returns where each part lies.
    pub fn save_segment(&mut self, name: &str, parts: &[&[u8]]) -> Result<Vec<SegmentRange>> {
        let mut w = self.segment_writer(name)?;
        let ranges = parts
            .iter()
            .map(|p| w.append(&[p]))
            .collect::<Result<Vec<_>>>()?;
        self.commit_segment(w)?;
        Ok(ranges)
    }

    /// A segment written piece by piece (to a file as soon as each piece
    /// is accepted, so that a batch's payloads are not all held in memory
    /// — with Postgres they are, until the commit) and made durable once,
    /// by [`Store::commit_segment`]. A segment of the same name left by a
    /// batch that never committed is replaced.
    pub fn segment_writer(&self, name: &str) -> Result<SegmentWriter> {
        check_blob_name(name)?;
        let sink = match &self.payloads {
            Payloads::Files(dir) => {
                let path = dir.join(name);
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
                Sink::File {
                    file: std::io::BufWriter::with_capacity(1 << 20, file),
                    tmp,
                    path,
                    dir: dir.clone(),
                }
            }
            Payloads::Database => Sink::Rows(Vec::new()),
        };
        Ok(SegmentWriter {
            name: name.to_string(),
            offset: 0,
            sink,
        })
    }

    /// Makes a segment durable under its name: for a file flush, fsync,
    /// rename and fsync of the directory; for Postgres one transaction
    /// that replaces any earlier segment of that name.
    pub fn commit_segment(&mut self, w: SegmentWriter) -> Result<()> {
        let SegmentWriter { name, sink, .. } = w;
        match sink {
            Sink::File {
                file,
                tmp,
                path,
                dir,
            } => {
                let file = file
                    .into_inner()
                    .map_err(|e| FedError::io(&tmp, e.into_error()))?;
                file.sync_all().map_err(|e| FedError::io(&tmp, e))?;
                drop(file);
                std::fs::rename(&tmp, &path).map_err(|e| FedError::io(&path, e))?;
                #[cfg(unix)]
                std::fs::File::open(&dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| FedError::io(&dir, e))?;
                #[cfg(not(unix))]
                let _ = dir;
                Ok(())
            }
            Sink::Rows(rows) => {
                self.conn.transaction(|tx| {
                    tx.execute(
                        "DELETE FROM payload_parts WHERE segment = $1",
                        &[Arg::Text(&name)],
                    )?;
                    for (offset, data) in &rows {
                        tx.execute(
                        "INSERT INTO payload_parts (segment, seg_offset, data) VALUES ($1, $2, $3)",
                        &[Arg::Text(&name), Arg::Int(db_offset(*offset)?), Arg::Bytes(data)],
                    )?;
                    }
                    Ok(())
                })
            }
        }
    }

    /// Reads a range of a segment; `None` when it is missing or shorter
    /// than the range (the hash check then reports the damage).
    pub(super) fn load_range(&self, r: &SegmentRange) -> Result<Option<Vec<u8>>> {
        use std::io::{Read, Seek, SeekFrom};
        check_blob_name(&r.segment)?;
        let dir = match &self.payloads {
            Payloads::Files(dir) => dir,
            Payloads::Database => {
                let part = self.load_part(&r.segment, r.offset)?;
                return Ok(part.filter(|b| b.len() as u64 == r.len));
            }
        };
        let path = dir.join(&r.segment);
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

    fn load_part(&self, segment: &str, offset: u64) -> Result<Option<Vec<u8>>> {
        let mut rows = self.conn.query(
            "SELECT data FROM payload_parts WHERE segment = $1 AND seg_offset = $2",
            &[Arg::Text(segment), Arg::Int(db_offset(offset)?)],
        )?;
        rows.pop().map(|mut r| r.bytes(0)).transpose()
    }

    /// Reads a whole payload, if present.
    pub fn load_blob(&self, name: &str) -> Result<Option<Vec<u8>>> {
        check_blob_name(name)?;
        let dir = match &self.payloads {
            Payloads::Files(dir) => dir,
            Payloads::Database => return self.load_part(name, 0),
        };
        let path = dir.join(name);
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(FedError::io(&path, e)),
        }
    }

    /// Deletes the payloads of a round (uploads and shares). A failure
    /// only leaves garbage, which the next call removes: it is logged.
    pub fn remove_round_blobs(&self, round: u64) {
        let prefixes = [
            format!("upload-{round}-"),
            format!("segment-{round}-"),
            format!("share-{round}-"),
        ];
        match &self.payloads {
            Payloads::Files(dir) => {
                if let Ok(rd) = std::fs::read_dir(dir) {
                    for e in rd.flatten() {
                        let name = e.file_name().to_string_lossy().to_string();
                        if prefixes.iter().any(|p| name.starts_with(p.as_str())) {
                            let _ = std::fs::remove_file(e.path());
                        }
                    }
                }
            }
            Payloads::Database => {
                // Names are [A-Za-z0-9._-]: `_` is LIKE's one-character
                // wildcard, so the prefix is compared exactly instead.
                for p in &prefixes {
                    let done = self.conn.execute(
                        "DELETE FROM payload_parts WHERE starts_with(segment, $1)",
                        &[Arg::Text(p)],
                    );
                    if let Err(e) = done {
                        tracing::warn!(round, error = %e, "could not remove a round's payloads");
                    }
                }
            }
        }
    }
}
