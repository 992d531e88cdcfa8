//! The reconcile core must stay pure: no async runtime, no database, no network, at any depth
//! of its dependency tree (STYLE.md, "A pure core, IO at the edges").

use std::process::Command;

const FORBIDDEN: &[&str] = &[
    "tokio",
    "async-std",
    "smol",
    "mio",
    "rusqlite",
    "libsqlite3-sys",
    "sqlx",
    "async-imap",
    "imap",
    "lettre",
    "reqwest",
    "hyper",
    "rustls",
    "native-tls",
    "openssl",
    "socket2",
    "notify",
];

#[test]
fn the_core_depends_on_no_io_crate() {
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let output = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-p",
            "crmsync-core",
            "--edges",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    let tree = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(crates.contains(&"crmsync-core"), "{tree}");
    for name in &crates {
        assert!(
            !FORBIDDEN.contains(name),
            "crmsync-core depends on {name}:\n{tree}"
        );
    }
}
