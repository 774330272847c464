//! Every fuzz target over its checked-in corpus (`fuzz/corpus/<target>/`), on stable: the
//! inputs cargo-fuzz found interesting, and every crash it found (each fixed since), so
//! `cargo test` keeps them passing without nightly or libFuzzer.
//!
//! `SWITCHBOARD_FUZZ_FILE=path cargo test -p switchboard-sim --test fuzz_corpus one_file`
//! runs a single input (with `SWITCHBOARD_FUZZ_TRACE=1`, the server target prints its steps);
//! `SWITCHBOARD_FUZZ_TARGET` names its target (default `server`).

use std::path::PathBuf;

use switchboard_sim::fuzz::{run, Target};

fn corpus(target: Target) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target.name())
}

#[test]
fn every_target_passes_its_corpus() {
    let mut failures = Vec::new();
    for target in Target::ALL {
        let dir = corpus(target);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("a corpus entry").path())
            .collect();
        files.sort();
        assert!(
            files.len() >= 8,
            "{}: {} files, expected a corpus",
            dir.display(),
            files.len()
        );
        for file in files {
            let data = std::fs::read(&file).expect("a corpus file");
            if let Err(problem) = run(target, &data) {
                failures.push(format!("{}: {problem}", file.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn one_file() {
    let Some(path) = std::env::var_os("SWITCHBOARD_FUZZ_FILE") else {
        return;
    };
    let name = std::env::var("SWITCHBOARD_FUZZ_TARGET").unwrap_or_else(|_| "server".into());
    let target = Target::ALL
        .into_iter()
        .find(|t| t.name() == name)
        .unwrap_or_else(|| panic!("no target {name}"));
    let data = std::fs::read(&path).expect("the input");
    if let Err(problem) = run(target, &data) {
        panic!("{problem}");
    }
}
