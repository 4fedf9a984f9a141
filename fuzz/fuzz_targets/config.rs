//! `Config::parse` (what kioskd loads) and `Config::problems` (what
//! `kioskctl config check` prints) on arbitrary text: never a panic, both
//! agree on whether the text is valid, and every problem names the key it
//! is about or the line it is on.
//! Run: `cargo xtask fuzz config`.
#![no_main]

use kiosk::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Files are read as UTF-8; lossy decoding lets every input reach the
    // TOML parser.
    let text = String::from_utf8_lossy(data);
    let parsed = Config::parse(&text);
    let problems = Config::problems(&text);
    if let Err(found) = &parsed {
        assert!(!found.is_empty());
        for problem in found {
            assert!(names_key_or_line(problem), "parse: {problem:?}");
        }
    }
    for problem in &problems {
        assert!(names_key_or_line(problem), "problems: {problem:?}");
    }
    assert_eq!(
        parsed.is_ok(),
        problems.is_empty(),
        "parse {parsed:?} but problems {problems:?}"
    );
});

/// `key.path: …` / `readers[0]: …`, a TOML syntax error with its line, or
/// a serde message quoting the field (`missing field `x``).
fn names_key_or_line(problem: &str) -> bool {
    let key = problem.split(": ").next().unwrap_or_default();
    let is_key = !key.is_empty()
        && key.starts_with(|c: char| c.is_ascii_alphabetic())
        && key.split(' ').next().is_some_and(|k| {
            k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.[]".contains(c))
        });
    is_key || problem.contains(" line ") || problem.contains("field `")
}
