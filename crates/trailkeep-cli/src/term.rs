//! Printing untrusted text to a terminal.
//!
//! Event content comes from whoever could call the API. Before it reaches a terminal, control characters
//! (which could move the cursor, rewrite the screen or set the window title) and bidirectional overrides
//! (which could make text read differently than it is) are replaced by a visible placeholder.

/// `s` with control and bidi-override characters replaced by `�`, and newlines by `⏎`.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\n' => '⏎',
            c if c.is_control() => '\u{FFFD}',
            '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{061C}' => '\u{FFFD}',
            c => c,
        })
        .collect()
}

/// `s` sanitised and cut to `width` characters, with `…` when cut.
pub fn cell(s: &str, width: usize) -> String {
    let clean = sanitize(s);
    if clean.chars().count() <= width {
        clean
    } else {
        let mut out: String = clean.chars().take(width.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_bidi_overrides_are_neutralised() {
        assert_eq!(sanitize("a\x1b[2Jb"), "a\u{FFFD}[2Jb");
        assert_eq!(sanitize("evil\u{202E}txt.exe"), "evil\u{FFFD}txt.exe");
        assert_eq!(sanitize("two\nlines"), "two⏎lines");
        assert_eq!(cell("abcdef", 4), "abc…");
        assert_eq!(cell("abc", 4), "abc");
    }
}
