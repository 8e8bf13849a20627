//! Payloads — ciphertext uploads and decryption shares, megabytes each —
//! are files, with either backend: beside a SQLite state
//! (`<state>.blobs/`), or in the coordinator's data directory beside the
//! ledger with a Postgres state. They are written and fsynced before the
//! state row that names them commits; a row is the commit point, and a file
//! without one is ignored (and removed with its round). Uploads are
//! committed in groups: one segment file holds a batch's payloads (one
//! fsync for all of them), and each upload row names its segment, offset
//! and length.
//!
//! Why not in Postgres too: they are write-once, checked against the hash
//! their row records, and deleted when their round closes, so the database
//! gains nothing from holding them; and Postgres stores a large value as
//! ~2 KB TOAST rows, each written to the heap, its index and the WAL — an
//! upload of 10^5 parameters cost 9.3 ms there against 1.5 ms as a file
//! (`bench/fl_state.sh`, 200 clients), above the 2 ms target. The
//! coordinator needs its volume for the ledger anyway.

use super::Store;
use crate::error::{FedError, Result};
use std::path::PathBuf;

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

/// A segment file being written (see [`Store::segment_writer`]): nothing
/// in it counts until [`SegmentWriter::finish`] made it durable and a state
/// row names it.
pub struct SegmentWriter {
    sink: super::direct::Sink,
    name: String,
    tmp: PathBuf,
    path: PathBuf,
    dir: PathBuf,
    offset: u64,
}

impl SegmentWriter {
    /// Appends one payload, given as consecutive pieces; returns where it
    /// will lie.
    pub fn append(&mut self, pieces: &[&[u8]]) -> Result<SegmentRange> {
        let start = self.offset;
        for p in pieces {
            self.sink.write(p).map_err(|e| FedError::io(&self.tmp, e))?;
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
        self.sink
            .finish(self.offset)
            .map_err(|e| FedError::io(&self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| FedError::io(&self.path, e))?;
        #[cfg(unix)]
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| FedError::io(&self.dir, e))?;
        Ok(())
    }
}

impl Store {
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
    /// accepted, so that a batch's payloads are not all held in memory;
    /// with direct I/O where the file system allows, see [`super::direct`])
    /// and made durable once, by [`SegmentWriter::finish`]. A file of the
    /// same name left by a batch that never committed is replaced.
    pub fn segment_writer(&self, name: &str) -> Result<SegmentWriter> {
        check_blob_name(name)?;
        let path = self.blobs.join(name);
        let tmp = path.with_extension("tmp");
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(FedError::io(&tmp, e)),
        }
        let sink =
            super::direct::Sink::create(&tmp, self.direct_io).map_err(|e| FedError::io(&tmp, e))?;
        Ok(SegmentWriter {
            sink,
            name: name.to_string(),
            tmp,
            path,
            dir: self.blobs.clone(),
            offset: 0,
        })
    }

    /// Reads a range of a segment file; `None` when the file is missing or
    /// shorter than the range (the hash check then reports the damage).
    pub(super) fn load_range(&self, r: &SegmentRange) -> Result<Option<Vec<u8>>> {
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
        check_blob_name(name)?;
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
}
