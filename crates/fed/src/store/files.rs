//! Small files written safely: configuration read with a size bound,
//! private state (mode 0600) and public files replaced atomically.

use crate::error::{FedError, Result};
use std::path::Path;

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
