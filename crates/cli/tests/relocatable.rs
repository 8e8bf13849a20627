//! The binary copied out of the source tree runs its examples: the shipped
//! data sets and models are embedded, and nothing is looked up at a path
//! fixed at compile time. The checkout is hidden from the commands (a
//! tmpfs mounted over it in a private mount namespace, `unshare -m`), so a
//! compile-time path cannot pass this test by accident.

use std::path::Path;
use std::process::Command;

#[test]
fn the_binary_runs_its_examples_with_the_source_tree_out_of_reach() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().expect("workspace root");
    let dir = tempfile::tempdir().expect("temporary directory");
    assert!(
        !dir.path().starts_with(&root),
        "the temporary directory must be outside the checkout"
    );
    let bin = dir.path().join("cipherflow");
    std::fs::copy(env!("CARGO_BIN_EXE_cipherflow"), &bin).expect("copy the binary");
    let commands = [
        ("demo scoring", "same decision for 113/113 patients"),
        ("train --epochs 2", "test accuracy"),
        ("infer --data digits --limit 2", "agreement"),
        ("mpc predict --data digits --limit 4", "total"),
        ("demo", "audit log: verified"),
    ];
    let mut script = format!(
        "set -e; mount -t tmpfs none {root}; cd {dir}; test ! -e {root}/Cargo.toml",
        root = root.display(),
        dir = dir.path().display()
    );
    for (args, _) in &commands {
        script.push_str(&format!("; echo '>>> {args}'; ./cipherflow {args}"));
    }
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .env_remove("CIPHERFLOW_DATA")
        .output()
        .expect("unshare (util-linux) must be installed");
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "unshare -m needs root or user namespaces; output:\n{text}\n{err}"
    );
    for (args, expect) in &commands {
        let section = text
            .split(&format!(">>> {args}\n"))
            .nth(1)
            .unwrap_or_default()
            .split(">>> ")
            .next()
            .unwrap_or_default();
        assert!(
            section.contains(expect),
            "`cipherflow {args}` printed no {expect:?}:\n{section}\n{err}"
        );
    }
}
