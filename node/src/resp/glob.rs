//! Redis glob patterns (KEYS, SCAN MATCH): `*`, `?`, `[abc]`, `[^a-z]` and
//! `\` escapes, matched byte by byte.

/// Whether `text` matches the Redis glob `pattern`.
///
/// `*` is matched with a single backtracking point (the most recent star),
/// which is exact for globs and takes O(pattern × text) time in the worst
/// case, so a hostile pattern cannot make a scan exponential.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let mut pattern_index = 0;
    let mut text_index = 0;
    // Where to resume after a mismatch: (pattern index after the star, text index).
    let mut backtrack: Option<(usize, usize)> = None;
    while text_index < text.len() {
        if pattern_index < pattern.len() {
            if pattern[pattern_index] == b'*' {
                // Consecutive stars are one star.
                while pattern_index < pattern.len() && pattern[pattern_index] == b'*' {
                    pattern_index += 1;
                }
                if pattern_index == pattern.len() {
                    return true;
                }
                backtrack = Some((pattern_index, text_index));
                continue;
            }
            if let Some(next) = match_one(pattern, pattern_index, text[text_index]) {
                pattern_index = next;
                text_index += 1;
                continue;
            }
        }
        match backtrack {
            Some((star_next, star_text)) => {
                pattern_index = star_next;
                text_index = star_text + 1;
                backtrack = Some((star_next, star_text + 1));
            }
            None => return false,
        }
    }
    pattern[pattern_index..].iter().all(|&byte| byte == b'*')
}

/// Matches one non-star pattern element at `index` against `byte`; returns
/// the index just past the element on a match.
fn match_one(pattern: &[u8], index: usize, byte: u8) -> Option<usize> {
    match pattern[index] {
        b'?' => Some(index + 1),
        b'[' => match_class(pattern, index + 1, byte),
        b'\\' if index + 1 < pattern.len() => (pattern[index + 1] == byte).then_some(index + 2),
        literal => (literal == byte).then_some(index + 1),
    }
}

/// A `[...]` class starting just after its `[`. As in Redis, a class with no
/// closing `]` runs to the end of the pattern.
fn match_class(pattern: &[u8], mut index: usize, byte: u8) -> Option<usize> {
    let negated = pattern.get(index) == Some(&b'^');
    if negated {
        index += 1;
    }
    let mut matched = false;
    while index < pattern.len() && pattern[index] != b']' {
        if pattern[index] == b'\\' && index + 1 < pattern.len() {
            matched |= pattern[index + 1] == byte;
            index += 2;
        } else if index + 2 < pattern.len()
            && pattern[index + 1] == b'-'
            && pattern[index + 2] != b']'
        {
            let (low, high) = (
                pattern[index].min(pattern[index + 2]),
                pattern[index].max(pattern[index + 2]),
            );
            matched |= (low..=high).contains(&byte);
            index += 3;
        } else {
            matched |= pattern[index] == byte;
            index += 1;
        }
    }
    let end = (index + 1).min(pattern.len());
    (matched != negated).then_some(end)
}
