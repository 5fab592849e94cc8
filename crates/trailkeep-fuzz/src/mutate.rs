//! Byte-level and line-level mutations of a corpus member, stacked a few at a time.
//!
//! The mutations are the classic ones of coverage-guided fuzzers — flip a bit, overwrite, insert or
//! delete bytes, duplicate a run, splice in another input — plus two that suit text formats: inserting a
//! token from the target's dictionary (keys, operators, escapes, numbers at the edges of their types)
//! and moving whole lines around, which is how a bundle's entries get dropped, repeated and reordered.

use rand::Rng;
use rand::rngs::StdRng;

/// Tokens worth splicing into any text input: JSON structure, escapes, numbers at the edges of their
/// types, and bytes that are not UTF-8.
const COMMON: &[&str] = &[
    "\"",
    "\\",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\n",
    "\r\n",
    " ",
    "\t",
    "\0",
    "null",
    "true",
    "false",
    "0",
    "-0",
    "-1",
    "1e400",
    "-1e400",
    "1e-400",
    "NaN",
    "Infinity",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "9007199254740993",
    "0.1",
    "1.5e308",
    "\\u0000",
    "\\ud800",
    "\\udc00\\ud800",
    "\\u2028",
    "\u{2028}",
    "\u{202e}",
    "\u{feff}",
    "\u{2014}",
    "é",
    "😀",
    "\u{0301}",
    "\x7f",
];

/// Bytes that are not UTF-8 on their own.
const BAD_UTF8: &[&[u8]] = &[b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf"];

/// Changes `input` in place by `count` stacked mutations; `dictionary` is the target's own tokens and
/// `others` the corpus, for splicing. The result is at most `max_len` bytes.
pub fn mutate(
    rng: &mut StdRng,
    input: &mut Vec<u8>,
    count: usize,
    dictionary: &[&str],
    others: &[Vec<u8>],
    max_len: usize,
) {
    for _ in 0..count {
        one(rng, input, dictionary, others);
    }
    input.truncate(max_len);
}

fn token<'a>(rng: &mut StdRng, dictionary: &[&'a str]) -> &'a [u8] {
    if !dictionary.is_empty() && rng.random_bool(0.7) {
        dictionary[rng.random_range(0..dictionary.len())].as_bytes()
    } else {
        COMMON[rng.random_range(0..COMMON.len())].as_bytes()
    }
}

/// A position in `input`, `0..=len`.
fn at(rng: &mut StdRng, input: &[u8]) -> usize {
    rng.random_range(0..=input.len())
}

/// A short run `start..end` inside `input`, mostly a few bytes long.
fn run(rng: &mut StdRng, input: &[u8]) -> (usize, usize) {
    let start = rng.random_range(0..input.len());
    let longest = (input.len() - start).min(if rng.random_bool(0.8) { 8 } else { 256 });
    (start, start + rng.random_range(1..=longest))
}

fn one(rng: &mut StdRng, input: &mut Vec<u8>, dictionary: &[&str], others: &[Vec<u8>]) {
    if input.is_empty() {
        input.extend_from_slice(token(rng, dictionary));
        return;
    }
    match rng.random_range(0..13) {
        0 => {
            let i = rng.random_range(0..input.len());
            input[i] ^= 1 << rng.random_range(0..8);
        }
        1 => {
            let i = rng.random_range(0..input.len());
            input[i] = rng.random();
        }
        2 => {
            let (start, end) = run(rng, input);
            input.drain(start..end);
        }
        3 => {
            let i = at(rng, input);
            let len = rng.random_range(1..=8);
            let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            input.splice(i..i, bytes);
        }
        4 => {
            let (start, end) = run(rng, input);
            let copy = input[start..end].to_vec();
            let i = at(rng, input);
            input.splice(i..i, copy);
        }
        5 | 6 => {
            let i = at(rng, input);
            let t = token(rng, dictionary).to_vec();
            input.splice(i..i, t);
        }
        7 => {
            // Overwrite a run with a token: a value replaced by another.
            let (start, end) = run(rng, input);
            let t = token(rng, dictionary).to_vec();
            input.splice(start..end, t);
        }
        8 => {
            let i = at(rng, input);
            let bad = BAD_UTF8[rng.random_range(0..BAD_UTF8.len())];
            input.splice(i..i, bad.iter().copied());
        }
        9 if !others.is_empty() => {
            // Splice: our head, another input's tail.
            let other = &others[rng.random_range(0..others.len())];
            let cut = at(rng, input);
            let from = rng.random_range(0..=other.len());
            input.truncate(cut);
            input.extend_from_slice(&other[from..]);
        }
        10 => {
            let cut = rng.random_range(0..input.len());
            input.truncate(cut);
        }
        11 => replace_number(rng, input),
        _ => lines(rng, input),
    }
}

/// Replaces a run of digits with a number at the edge of some type.
fn replace_number(rng: &mut StdRng, input: &mut Vec<u8>) {
    const NUMBERS: &[&str] =
        &["0", "1", "2", "-1", "255", "65535", "65536", "4294967296", "9007199254740993", "18446744073709551615"];
    let digits: Vec<usize> = input.iter().enumerate().filter(|(_, b)| b.is_ascii_digit()).map(|(i, _)| i).collect();
    if digits.is_empty() {
        return;
    }
    let start = digits[rng.random_range(0..digits.len())];
    let end = input[start..].iter().position(|b| !b.is_ascii_digit()).map_or(input.len(), |n| start + n);
    let n = NUMBERS[rng.random_range(0..NUMBERS.len())].as_bytes().to_vec();
    input.splice(start..end, n);
}

/// Drops, repeats or swaps whole lines.
fn lines(rng: &mut StdRng, input: &mut Vec<u8>) {
    let mut lines: Vec<Vec<u8>> = input.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    if lines.len() < 2 {
        return;
    }
    let i = rng.random_range(0..lines.len());
    let j = rng.random_range(0..lines.len());
    match rng.random_range(0..3) {
        0 => {
            lines.remove(i);
        }
        1 => {
            let copy = lines[i].clone();
            lines.insert(j, copy);
        }
        _ => lines.swap(i, j),
    }
    *input = lines.join(&b'\n');
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn the_same_seed_makes_the_same_mutations_and_the_length_is_bounded() {
        let seed = b"{\"organization_id\":\"acme\",\"action\":\"a.b\"}\n{\"end\":true}".to_vec();
        let go = |s: u64| {
            let mut rng = StdRng::seed_from_u64(s);
            (0..200)
                .map(|_| {
                    let mut input = seed.clone();
                    mutate(&mut rng, &mut input, 4, &["action"], std::slice::from_ref(&seed), 64);
                    assert!(input.len() <= 64);
                    input
                })
                .collect::<Vec<_>>()
        };
        let first = go(7);
        assert_eq!(first, go(7));
        assert_ne!(first, go(8));
        assert!(first.iter().filter(|m| **m != seed).count() > 150, "most rounds change the input");
    }
}
