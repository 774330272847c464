//! The README's "Try it" transcript is what the server says: its client lines are played
//! against the core and every server line must come back, byte for byte and in order.

use std::path::Path;

use switchboard_snapshots::{play, Delivery, Scenario};

/// The lines of the README's "Try it" block after its `$ nc ...` command.
fn try_it() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let section = readme
        .split_once("## Try it")
        .map(|(_, rest)| rest)
        .expect("README has a \"## Try it\" section");
    let block = section
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block)
        .expect("\"Try it\" holds a ```sh block");
    let mut lines = block.lines();
    let command = lines.next().unwrap_or_default();
    assert!(command.starts_with("$ nc -C 127.0.0.1 1030"), "{command:?}");
    lines.map(str::to_owned).collect()
}

/// What the server sent one client that sends `sends`, one line each, as text lines.
fn server_lines(sends: &[String]) -> Vec<String> {
    let mut text = String::from("# the README's Try it\n!connect:me/ws2017\n");
    for line in sends {
        text.push_str(&format!("me c: {line}\n"));
    }
    let scenario = Scenario::parse("readme.scn", &text).unwrap_or_else(|e| panic!("{e}"));
    let transcript = play(&scenario, Delivery::AsWritten).unwrap_or_else(|e| panic!("{e}"));
    transcript
        .lines()
        .filter_map(|l| l.split_once(" s: ").map(|(_, text)| text.to_owned()))
        .filter(|text| !text.starts_with("(closed: "))
        .collect()
}

/// Reads the block as a client at a terminal: a line is the server's while the server
/// has said something not yet matched, and the client's otherwise.
#[test]
fn the_readme_transcript_is_what_the_server_says() {
    let lines = try_it();
    assert!(lines.len() > 4, "{lines:?}");
    let mut sends = Vec::new();
    let mut heard = server_lines(&sends);
    let mut matched = 0;
    for line in &lines {
        if matched < heard.len() {
            assert_eq!(line, &heard[matched], "README line after {sends:?}");
            matched += 1;
        } else {
            sends.push(line.clone());
            heard = server_lines(&sends);
        }
    }
    assert_eq!(
        heard[matched..],
        [] as [String; 0],
        "the server says more than the README shows"
    );
    assert!(sends.contains(&"uname carol".to_owned()), "{sends:?}");
}
