#![doc = include_str!("../README.md")]
// Failing the calling test is this crate's job: it panics by design, and
// only test code depends on it.
#![allow(clippy::panic)]

use std::path::{Path, PathBuf};

/// The variable that turns a missing-data failure into a reported skip.
pub const SKIP_MISSING_DATA_ENV: &str = "CIPHERFLOW_SKIP_MISSING_DATA";

/// The workspace root (the checkout).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A file the repository ships under `data/` (e.g. `"digits.csv.gz"`,
/// `"models/digits-cnn.safetensors"`).
pub fn shipped(rel: &str) -> PathBuf {
    workspace_root().join("data").join(rel)
}

/// Whether data a test needs is present. When it is not, panics with
/// `what`, unless [`SKIP_MISSING_DATA_ENV`] is `1`: then prints that the
/// test was skipped and returns `false`.
pub fn require(what: &str, present: bool) -> bool {
    if present {
        return true;
    }
    if std::env::var(SKIP_MISSING_DATA_ENV).as_deref() == Ok("1") {
        eprintln!("SKIPPED: {what} ({SKIP_MISSING_DATA_ENV}=1)");
        return false;
    }
    panic!("{what}; set {SKIP_MISSING_DATA_ENV}=1 to skip the tests that need it");
}

/// The MNIST directory beside the checkout (`../shared/data/mnist`), when
/// it holds the test images and labels (gzip, either file naming); absent,
/// [`require`]'s rule applies (`None` when skipped).
pub fn mnist() -> Option<PathBuf> {
    let dir = workspace_root().join("../shared/data/mnist");
    let has = |stem: &str, kind: &str| {
        [format!("{stem}-{kind}.gz"), format!("{stem}.{kind}.gz")]
            .iter()
            .any(|f| dir.join(f).is_file())
    };
    let present = has("t10k-images", "idx3-ubyte") && has("t10k-labels", "idx1-ubyte");
    require(&format!("MNIST not found in {}", dir.display()), present).then_some(dir)
}

/// `n` distinct free TCP addresses on 127.0.0.1 (bound together, read,
/// released), for tests that start servers on them.
pub fn free_addresses(n: usize) -> Vec<String> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap_or_else(|e| panic!("binding 127.0.0.1:0: {e}"))
        })
        .collect();
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .unwrap_or_else(|e| panic!("a bound socket's address: {e}"))
                .to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_files_are_found_from_any_test_crate() {
        assert!(shipped("breast_cancer.csv").is_file());
        assert!(workspace_root().join("Cargo.toml").is_file());
    }

    #[test]
    #[should_panic(expected = "set CIPHERFLOW_SKIP_MISSING_DATA=1")]
    fn missing_data_fails_unless_skipping_is_asked_for() {
        if std::env::var(SKIP_MISSING_DATA_ENV).as_deref() == Ok("1") {
            // Skipping was asked for: the rule returns false instead.
            assert!(!require("nothing here", false));
            panic!("set CIPHERFLOW_SKIP_MISSING_DATA=1 (skipped as asked)");
        }
        require("nothing here", false);
    }
}
