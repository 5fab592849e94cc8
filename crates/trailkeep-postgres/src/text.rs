//! Full text, cut into words the way the SQLite engine's FTS5 index cuts it, so that a phrase matches the
//! same events on both engines.
//!
//! FTS5's `unicode61` tokenizer (with `remove_diacritics 2`) takes runs of letters and digits as words,
//! folds case and strips diacritics; everything else separates words. PostgreSQL's own parser would read
//! `ann@example.com` as one email token, `a-b` as a hyphenated word and so on, and depends on the
//! database's locale, so the words are made here instead and handed to PostgreSQL as literal `tsvector`
//! and `tsquery` values: each word a lexeme at its position, and a phrase as words that must follow one
//! another (`<->`). Only letters and digits reach those literals, so nothing in them needs escaping.
//!
//! Two limits of `tsvector` apply: positions stop counting at 16,383, so a phrase far beyond that in a
//! very long text may be misplaced, and a lexeme longer than 2,046 bytes cannot be stored (such a word is
//! skipped; FTS5 keeps it). The body is capped well below the type's 1 MB limit.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// The longest word PostgreSQL stores as a lexeme.
const MAX_LEXEME_BYTES: usize = 2046;
/// The most text indexed per event, in bytes of words.
const MAX_BODY_BYTES: usize = 512 * 1024;

/// The words of `text`, lower-cased and without diacritics.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<String>| {
        if !word.is_empty() {
            out.push(fold(word));
            word.clear();
        }
    };
    for c in text.chars() {
        if c.is_alphanumeric() || (is_combining_mark(c) && !word.is_empty()) {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
        }
    }
    flush(&mut word, &mut out);
    out.retain(|w| !w.is_empty());
    out
}

/// Lower case, diacritics removed: `Élan` becomes `elan`.
fn fold(word: &str) -> String {
    word.nfd().filter(|c| !is_combining_mark(*c)).flat_map(char::to_lowercase).collect()
}

/// The `tsvector` literal of `text`: every word at its position.
pub fn tsvector_literal(text: &str) -> String {
    let mut out = String::new();
    let mut bytes = 0;
    for (i, word) in words(text).iter().enumerate() {
        if word.len() > MAX_LEXEME_BYTES {
            continue;
        }
        bytes += word.len();
        if bytes > MAX_BODY_BYTES {
            break;
        }
        let position = (i + 1).min(16_383);
        if !out.is_empty() {
            out.push(' ');
        }
        out.push('\'');
        out.push_str(word);
        out.push_str("':");
        out.push_str(&position.to_string());
    }
    out
}

/// The `tsquery` literal matching `phrase`: its words adjacent and in order. `None` when the phrase has
/// no word, which matches nothing.
pub fn tsquery_literal(phrase: &str) -> Option<String> {
    let words = words(phrase);
    if words.is_empty() {
        return None;
    }
    Some(words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" <-> "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_runs_of_letters_and_digits_folded() {
        assert_eq!(words("Ann@Example.com rotated key-42"), ["ann", "example", "com", "rotated", "key", "42"]);
        assert_eq!(words("Élan naïve  ÅSA"), ["elan", "naive", "asa"]);
        assert_eq!(words("\0 'quoted' \"x\" a:b OR *"), ["quoted", "x", "a", "b", "or"]);
        assert!(words(" -- !! ").is_empty());
    }

    #[test]
    fn literals_hold_only_words_and_positions() {
        assert_eq!(tsvector_literal("The key, the KEY"), "'the':1 'key':2 'the':3 'key':4");
        assert_eq!(tsquery_literal("rotated 'key'").as_deref(), Some("'rotated' <-> 'key'"));
        assert_eq!(tsquery_literal("!!"), None);
        let long = "x".repeat(3000);
        assert_eq!(tsvector_literal(&format!("a {long} b")), "'a':1 'b':3");
    }
}
