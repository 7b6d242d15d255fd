//! The README's Rust quick start is the marked region of `core/examples/quickstart.rs`, and it
//! runs against real registries (so the front door never drifts; the Python and Node quick
//! starts are run by `bindings-py/tests/test_readme.py` and `tests/node/readme.test.js`).
#![allow(clippy::expect_used)]

use std::time::Duration;

#[path = "../examples/quickstart.rs"]
#[allow(dead_code)]
mod quickstart;

const README: &str = include_str!("../../README.md");
const EXAMPLE: &str = include_str!("../examples/quickstart.rs");

/// The first ```rust block after `## Quick start: Rust`.
fn readme_block() -> String {
    let section = README
        .split("## Quick start: Rust")
        .nth(1)
        .expect("README has a \"## Quick start: Rust\" section");
    let start = section.find("```rust\n").expect("a ```rust block") + "```rust\n".len();
    let len = section[start..].find("```").expect("the block ends");
    section[start..start + len].to_string()
}

/// The lines between `// README-BEGIN` and `// README-END`, less their common indent and the
/// blank lines at either end.
fn example_region() -> String {
    let lines: Vec<&str> = EXAMPLE.lines().collect();
    let begin = lines
        .iter()
        .position(|l| l.trim() == "// README-BEGIN")
        .expect("a README-BEGIN marker");
    let end = lines
        .iter()
        .position(|l| l.trim() == "// README-END")
        .expect("a README-END marker");
    let mut region = &lines[begin + 1..end];
    while region.first().is_some_and(|l| l.trim().is_empty()) {
        region = &region[1..];
    }
    while region.last().is_some_and(|l| l.trim().is_empty()) {
        region = &region[..region.len() - 1];
    }
    let indent = region
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    region
        .iter()
        .map(|l| format!("{}\n", l.get(indent..).unwrap_or("")))
        .collect()
}

#[test]
fn the_readme_rust_quick_start_is_the_example_region() {
    let block = readme_block();
    assert!(block.contains("register_with_network"), "{block}");
    assert_eq!(
        block,
        example_region(),
        "README.md's Rust quick start and the marked region of core/examples/quickstart.rs differ"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_rust_quick_start_runs() {
    let (db, first_event) = tokio::time::timeout(Duration::from_secs(60), quickstart::run())
        .await
        .expect("the quick start finished within 60 s")
        .expect("the quick start ran without error");
    assert_eq!(db.as_deref(), Some("http://127.0.0.1:5432"));
    assert_eq!(first_event, "Up http://127.0.0.1:5432");
}
