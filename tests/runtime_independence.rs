//! A second runtime (mio, threads) must need nothing from the smol crate: everything std-only
//! that a runtime shares lives in `switchboard-store` or `switchboard-proto`. This test fails
//! as soon as any crate or file outside `runtime-smol/` depends on `switchboard-smol`, except
//! the binary's `--runtime` choice in `src/serve.rs`.

use std::fs;
use std::path::{Path, PathBuf};

/// The workspace root (this crate's manifest directory).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, skipping build output.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && name != ".git" && name != "runtime-smol" {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `line` with its string literals blanked out: a log filter naming the crate's log target
/// (`"switchboard_smol::commit=debug"`) is not a dependency on it.
fn code_of(line: &str) -> String {
    let mut code = String::new();
    let mut in_string = false;
    let mut escaped = false;
    for c in line.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else {
            code.push(c);
        }
    }
    match code.find("//") {
        Some(i) => code[..i].to_owned(),
        None => code,
    }
}

#[test]
fn only_the_binarys_runtime_choice_uses_the_smol_crate() {
    let root = root();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 20, "found only {} Rust files", files.len());
    let mut users: Vec<String> = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).expect("read a source file");
        if text
            .lines()
            .any(|l| code_of(l).contains("switchboard_smol"))
        {
            let relative = file.strip_prefix(&root).unwrap_or(file);
            users.push(relative.display().to_string());
        }
    }
    assert_eq!(
        users,
        ["src/serve.rs"],
        "files outside runtime-smol using it"
    );
}

#[test]
fn no_crate_but_the_binary_depends_on_the_smol_crate() {
    let root = root();
    let workspace = fs::read_to_string(root.join("Cargo.toml")).expect("read the root manifest");
    let members_line = workspace
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("a members list");
    let members: Vec<&str> = members_line.split('"').skip(1).step_by(2).collect();
    assert!(members.contains(&"runtime-smol"), "members: {members:?}");
    assert!(members.len() >= 5, "members: {members:?}");
    for member in members.into_iter().filter(|m| *m != "runtime-smol") {
        let manifest = fs::read_to_string(root.join(member).join("Cargo.toml"))
            .expect("read a member's manifest");
        assert!(
            !manifest.contains("switchboard-smol"),
            "{member}/Cargo.toml depends on switchboard-smol"
        );
    }
}
