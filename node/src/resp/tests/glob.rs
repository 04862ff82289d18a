//! Glob matching as Redis's KEYS and SCAN MATCH do it.

use crate::resp::glob_match;

fn matches(pattern: &str, text: &str) -> bool {
    glob_match(pattern.as_bytes(), text.as_bytes())
}

#[test]
fn star_matches_any_sequence_including_empty() {
    assert!(matches("*", ""));
    assert!(matches("*", "anything"));
    assert!(matches("key:*", "key:"));
    assert!(matches("key:*", "key:0001"));
    assert!(matches("*:0001", "key:0001"));
    assert!(matches("k*y*1", "key:0001"));
    assert!(matches("a**b", "ab"));
    assert!(!matches("key:*", "ke"));
    assert!(!matches("*x", "key"));
}

#[test]
fn question_mark_matches_exactly_one_byte() {
    assert!(matches("h?llo", "hello"));
    assert!(matches("h?llo", "hallo"));
    assert!(!matches("h?llo", "hllo"));
    assert!(!matches("h?llo", "heello"));
}

#[test]
fn classes_ranges_negation_and_escapes() {
    assert!(matches("h[ae]llo", "hello"));
    assert!(matches("h[ae]llo", "hallo"));
    assert!(!matches("h[ae]llo", "hillo"));
    assert!(matches("h[^e]llo", "hallo"));
    assert!(!matches("h[^e]llo", "hello"));
    assert!(matches("h[a-b]llo", "hbllo"));
    assert!(
        matches("h[b-a]llo", "hallo"),
        "a reversed range is swapped, as in Redis"
    );
    assert!(!matches("h[a-b]llo", "hcllo"));
    assert!(matches("key\\*", "key*"));
    assert!(!matches("key\\*", "key1"));
    assert!(matches("[\\]]", "]"));
    assert!(
        matches("a[bc", "ab"),
        "an unterminated class runs to the end of the pattern"
    );
}

#[test]
fn backtracking_stays_polynomial() {
    // Exponential matchers take ages on this; ours is O(pattern × text).
    let text = "a".repeat(5_000);
    let pattern = "*a".repeat(50) + "b";
    let started = std::time::Instant::now();
    assert!(!matches(&pattern, &text));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
