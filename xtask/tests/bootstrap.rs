//! The xtask is what installs the system packages, so it must build on a
//! fresh Debian machine that has none of them: nothing in its dependency
//! tree may link a system library found through pkg-config.

use std::process::Command;

/// `-sys` crates that build their C code themselves or need no library.
const SELF_CONTAINED: &[&str] = &["libsqlite3-sys", "linux-raw-sys"];

#[test]
fn xtask_links_no_system_library() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "-p",
            "xtask",
            "-e",
            "normal,build",
            "--prefix",
            "none",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).expect("utf-8");
    let linked: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.ends_with("-sys") && !SELF_CONTAINED.contains(name))
        .collect();
    assert!(
        linked.is_empty(),
        "the xtask would need system libraries before it can install them: {linked:?}"
    );
}
