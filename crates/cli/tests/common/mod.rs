//! Helpers shared by the process tests of the `cipherflow` binary.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cipherflow"))
}

/// A file or folder of the bring-your-own-data fixtures.
pub fn byo(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../nn/tests/fixtures/byo")
        .join(name)
        .canonicalize()
        .unwrap()
}

/// A base port whose next two are free too (gen-certs uses base..base+2).
/// Tests of this file run in parallel in one process: each call starts
/// its search elsewhere.
pub fn three_free_ports() -> u16 {
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let start = 20_000
        + ((std::process::id() as u64 * 131 + u64::from(call) * 9_973 + u64::from(nanos)) % 40_000)
            as u16;
    (0..2000u16)
        .map(|k| start.wrapping_add(k.wrapping_mul(3)))
        .find(|&b| {
            b > 1024
                && b < 65_000
                && (0..3).all(|i| std::net::TcpListener::bind(("127.0.0.1", b + i)).is_ok())
        })
        .unwrap()
}

/// `mpc gen-certs` in `d` for three free consecutive ports: the network
/// file's absolute path.
pub fn gen_certs(d: &Path) -> PathBuf {
    let port = three_free_ports().to_string();
    let gen = Command::new(bin())
        .args(["mpc", "gen-certs", "--dir", "net", "--base-port", &port])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(
        gen.status.success(),
        "{}",
        String::from_utf8_lossy(&gen.stderr)
    );
    d.join(String::from_utf8_lossy(&gen.stdout).trim())
}

/// The last line of a successful command's stdout, as JSON.
pub fn json_of(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(text.lines().last().unwrap()).unwrap()
}

/// Starts `cipherflow serve --listen 127.0.0.1:0 --repo repo` in `dir`
/// with `extra` arguments and `envs`, stdout read up to its first line;
/// returns the child and the URL it prints.
pub fn spawn_serve(
    dir: &Path,
    extra: &[&str],
    envs: &[(&str, &str)],
    stderr: Stdio,
) -> (Child, String) {
    let mut child = Command::new(bin())
        .current_dir(dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--repo", "repo"])
        .args(extra)
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("https://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (child, url)
}
