//! Every `scenarios/**/*.scn` played against the core; its transcript is an insta snapshot.
//!
//! Accept new or changed transcripts with `INSTA_UPDATE=always cargo test -p
//! switchboard-snapshots` (or `cargo insta review`), then read every changed `.snap`.

use std::path::Path;

use switchboard_snapshots::{longest_send, play, Delivery, Scenario};

/// The scenario at `path`, or a panic naming the file and line of the mistake.
fn load(path: &Path) -> Scenario {
    let scenario = Scenario::load(path).unwrap_or_else(|e| panic!("{e}"));
    if scenario.description().is_none() {
        panic!(
            "{}: the first `#` comment describes the scenario; add one",
            path.display()
        );
    }
    scenario
}

/// The snapshot suffix: the scenario's path under `scenarios/`, `ws2017/login.scn` giving
/// `ws2017__login.scn`; independent of which other scenarios exist.
fn suffix(path: &Path) -> String {
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let scenarios = scenarios.canonicalize().unwrap_or(scenarios);
    let relative = path.strip_prefix(&scenarios).unwrap_or(path);
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("__")
}

#[test]
fn transcript() {
    insta::glob!("..", "scenarios/**/*.scn", |path| {
        let scenario = load(path);
        let transcript = play(&scenario, Delivery::AsWritten).unwrap_or_else(|e| panic!("{e}"));
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_suffix(suffix(path));
        settings.set_description(scenario.description().unwrap_or_default());
        settings.set_omit_expression(true);
        settings.bind(|| insta::assert_snapshot!(transcript));
    });
}

/// Panics naming the first line where `split`, the transcript of `how`, differs from
/// `whole`.
fn assert_same(path: &Path, how: &str, whole: &str, split: &str) {
    if let Some((n, (a, b))) = whole
        .lines()
        .zip(split.lines())
        .enumerate()
        .find(|(_, (a, b))| a != b)
    {
        panic!(
            "{}: {how} changes transcript line {}:\n  whole: {a}\n  split: {b}",
            path.display(),
            n + 1
        );
    }
    assert_eq!(
        whole.lines().count(),
        split.lines().count(),
        "{}: {how} changes the transcript's length",
        path.display()
    );
}

/// The codecs must not care how bytes are chunked: every scenario, replayed with every
/// client byte in its own delivery, gives the same transcript.
#[test]
fn transcripts_do_not_depend_on_how_bytes_are_split() {
    insta::glob!("..", "scenarios/**/*.scn", |path| {
        let scenario = load(path);
        let whole = play(&scenario, Delivery::AsWritten).unwrap_or_else(|e| panic!("{e}"));
        let bytewise = play(&scenario, Delivery::Bytewise).unwrap_or_else(|e| panic!("{e}"));
        assert_same(path, "byte-by-byte delivery", &whole, &bytewise);
    });
}

/// Every scenario replayed once per cut point, each send cut in two reads there: a send
/// of several lines is then read as complete lines with a partial one, and the partial
/// one completed by the next read. The transcript must not change.
#[test]
fn transcripts_do_not_depend_on_where_sends_are_cut() {
    insta::glob!("..", "scenarios/**/*.scn", |path| {
        let scenario = load(path);
        let whole = play(&scenario, Delivery::AsWritten).unwrap_or_else(|e| panic!("{e}"));
        for at in 1..longest_send(&scenario) {
            let split = play(&scenario, Delivery::SplitAt(at)).unwrap_or_else(|e| panic!("{e}"));
            assert_same(
                path,
                &format!("cutting sends after {at} bytes"),
                &whole,
                &split,
            );
        }
    });
}

/// Playing a scenario twice gives the same transcript: nothing depends on the run.
#[test]
fn transcripts_are_deterministic() {
    insta::glob!("..", "scenarios/**/*.scn", |path| {
        let scenario = load(path);
        let first = play(&scenario, Delivery::AsWritten).unwrap_or_else(|e| panic!("{e}"));
        let second = play(&scenario, Delivery::AsWritten).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first, second, "{}: two runs differ", path.display());
    });
}
