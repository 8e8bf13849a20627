//! Payload files written with direct I/O (`O_DIRECT`) where the file
//! system takes it, else through the page cache.
//!
//! A round's uploads are written once, fsynced, and read back only after a
//! restart, so the page cache buys nothing on the way in and costs a copy
//! and its dirty-page write-back: on this project's machines a 1.2 MB
//! upload (10^5 parameters) took 1.75 ms to write buffered and 0.58 ms
//! more to fsync (about 670 MB/s; `dd` writes 1.6 GB/s with `O_DIRECT` to
//! the same disk). Direct, the two took 0.72 ms together (1000 clients, 2
//! rounds: 4.67 s → 1.44 s of the coordinator's time).
//! Direct writes must be aligned in memory, offset and length, so payloads
//! are staged in an aligned buffer and written in whole blocks; the last
//! block is padded and the file then cut back to its length, so a file
//! holds exactly what was appended either way.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// Alignment and block size: a multiple of any device's logical block.
const BLOCK: usize = 4096;
/// The staging buffer: one direct write per this many bytes.
const STAGE: usize = 4 << 20;

/// A payload file being written.
pub(super) enum Sink {
    /// Through the page cache.
    Buffered(io::BufWriter<File>),
    /// Direct, from an aligned staging buffer: `buf[start..start + STAGE]`
    /// is aligned to [`BLOCK`], `fill` bytes of it are used.
    Direct {
        file: File,
        buf: Vec<u8>,
        start: usize,
        fill: usize,
    },
}

#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_: &Path) -> io::Result<File> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "no O_DIRECT here",
    ))
}

/// A zeroed buffer with a [`BLOCK`]-aligned window of `len` bytes, and the
/// window's start. (Safe code: the window is found inside an
/// over-allocated vector rather than allocated with an alignment.)
fn aligned(len: usize) -> (Vec<u8>, usize) {
    let buf = vec![0u8; len + BLOCK];
    let start = buf.as_ptr().align_offset(BLOCK).min(BLOCK);
    (buf, start)
}

/// Whether direct writes work in `dir` (a file system may refuse
/// `O_DIRECT` at open, as tmpfs does, or at the first write).
pub(super) fn supported(dir: &Path) -> bool {
    let probe = dir.join(".direct-io.probe");
    let _ = std::fs::remove_file(&probe);
    let ok = open_direct(&probe).and_then(|mut f| {
        let (buf, start) = aligned(BLOCK);
        f.write_all(buf.get(start..start + BLOCK).unwrap_or_default())
    });
    let _ = std::fs::remove_file(&probe);
    ok.is_ok()
}

impl Sink {
    /// Creates `path` (which must not exist), direct when `direct`.
    pub(super) fn create(path: &Path, direct: bool) -> io::Result<Self> {
        if direct {
            if let Ok(file) = open_direct(path) {
                let (buf, start) = aligned(STAGE);
                return Ok(Sink::Direct {
                    file,
                    buf,
                    start,
                    fill: 0,
                });
            }
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(Sink::Buffered(io::BufWriter::with_capacity(1 << 20, file)))
    }

    /// Appends `data`.
    pub(super) fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        match self {
            Sink::Buffered(w) => w.write_all(data),
            Sink::Direct {
                file,
                buf,
                start,
                fill,
            } => {
                while !data.is_empty() {
                    let stage = buf
                        .get_mut(*start..*start + STAGE)
                        .ok_or_else(|| io::Error::other("staging buffer"))?;
                    let n = data.len().min(STAGE - *fill);
                    let (now, rest) = data.split_at(n);
                    stage
                        .get_mut(*fill..*fill + n)
                        .ok_or_else(|| io::Error::other("staging buffer"))?
                        .copy_from_slice(now);
                    *fill += n;
                    data = rest;
                    if *fill == STAGE {
                        file.write_all(stage)?;
                        *fill = 0;
                    }
                }
                Ok(())
            }
        }
    }

    /// Writes what is staged and makes the file durable (`fsync`); `len`
    /// is the number of bytes appended, to which a direct file is cut.
    pub(super) fn finish(self, len: u64) -> io::Result<()> {
        let file = match self {
            Sink::Buffered(w) => w.into_inner().map_err(|e| e.into_error())?,
            Sink::Direct {
                mut file,
                mut buf,
                start,
                fill,
            } => {
                if fill > 0 {
                    let padded = fill.div_ceil(BLOCK) * BLOCK;
                    let stage = buf
                        .get_mut(start..start + padded)
                        .ok_or_else(|| io::Error::other("staging buffer"))?;
                    if let Some(tail) = stage.get_mut(fill..) {
                        tail.fill(0);
                    }
                    file.write_all(stage)?;
                }
                file.set_len(len)?;
                file
            }
        };
        file.sync_all()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_file_holds_exactly_what_was_appended_direct_or_not() {
        let dir = tempfile::tempdir().unwrap();
        let direct = supported(dir.path());
        eprintln!("direct I/O in the test directory: {direct}");
        // Pieces that straddle the staging buffer and block boundaries.
        let pieces: Vec<Vec<u8>> = [1usize, 4095, 4097, STAGE - 3, 2 * STAGE + 17, 0, 9]
            .iter()
            .enumerate()
            .map(|(k, &n)| (0..n).map(|i| (i * 31 + k * 7) as u8).collect())
            .collect();
        for use_direct in [false, direct] {
            let path = dir.path().join(format!("seg-{use_direct}.bin"));
            let mut s = Sink::create(&path, use_direct).unwrap();
            assert_eq!(matches!(s, Sink::Direct { .. }), use_direct);
            let mut want = Vec::new();
            for p in &pieces {
                s.write(p).unwrap();
                want.extend_from_slice(p);
            }
            s.finish(want.len() as u64).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), want, "direct: {use_direct}");
        }
    }
}
