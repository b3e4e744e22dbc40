//! What counts as a secret in a request log string, and how it is cut out (pure Rust,
//! unit-tested without a server).
//!
//! [`scan::find`](super::scan::find) finds the secrets: the provider formats of `rules.rs`,
//! names and their values (`names.rs`), and the procedural detectors here: the credentials after
//! `Bearer`, `Basic`, `Token`, `Digest` and `Negotiate`; pg_tenancy API keys (`tk_live_…`,
//! `tk_test_…`); JSON Web Tokens (`eyJ….….…`); and, when turned on, payment card numbers.
//! [`redact_string`] replaces each by [`MARK`].
use super::scan::{self, Config, Finding};

pub const MARK: &str = "[REDACTED]";

/// Authorization schemes whose credentials follow them (lowercase).
pub const SCHEMES: [&str; 5] = ["bearer", "basic", "token", "digest", "negotiate"];

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b)
}

fn is_base62(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// How often (in input bytes) the scanners call their `tick` (CHECK_FOR_INTERRUPTS in the server).
pub const TICK_BYTES: usize = 64 * 1024;

/// The JSON Web Tokens of `b` as byte ranges, in order: `eyJ…` (at the start of a word) followed by
/// exactly two more dot-separated base64url segments, 20 bytes at least.  One pass: the string is
/// cut into maximal runs of base64url characters and dots, each run into its segments, and every
/// segment is looked at once, with the two that follow it (a window of three).
pub fn jwt_spans(b: &[u8], tick: &mut dyn FnMut()) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    // The last (up to) three segments of the current run: (start, end).
    let mut window: [(usize, usize); 3] = [(0, 0); 3];
    let mut filled = 0;
    let mut seg_start: Option<usize> = None;
    for i in 0..=b.len() {
        if i % TICK_BYTES == TICK_BYTES - 1 {
            tick();
        }
        let in_run = i < b.len() && (is_b64url(b[i]) || b[i] == b'.');
        if in_run && seg_start.is_none() {
            seg_start = Some(i);
        }
        if in_run && b[i] != b'.' {
            continue;
        }
        // A segment ends here (at a dot, or at the end of the run).
        if let Some(start) = seg_start {
            if filled == 3 {
                window = [window[1], window[2], (start, i)];
            } else {
                window[filled] = (start, i);
                filled += 1;
            }
            if filled == 3 {
                let (s0, e0) = window[0];
                // The first "eyJ" of the segment that starts a word.
                let at = (s0..e0.saturating_sub(2)).find(|&p| {
                    b[p..].starts_with(b"eyJ") && (p == 0 || !b[p - 1].is_ascii_alphanumeric())
                });
                match at {
                    Some(p) if window[2].1 - p >= 20 => {
                        spans.push((p, window[2].1));
                        filled = 0;
                    }
                    _ => {
                        window = [window[1], window[2], (0, 0)];
                        filled = 2;
                    }
                }
            }
        }
        seg_start = if in_run { Some(i + 1) } else { None };
        if !in_run {
            filled = 0;
        }
    }
    spans
}

/// The credential after an authorization scheme whose name (`SCHEMES[k]`) starts at `i`:
/// `<scheme><blanks><credentials>`, the credentials 8 token characters at least (`Token` and
/// `Basic` are ordinary words too).
pub fn scheme_at(b: &[u8], i: usize, k: usize) -> Option<Finding> {
    let n = SCHEMES[k].len();
    if i > 0 && b[i - 1].is_ascii_alphanumeric() {
        return None;
    }
    let mut j = i + n;
    let blanks = b[j.min(b.len())..]
        .iter()
        .take(3)
        .take_while(|c| **c == b' ' || **c == b'\t')
        .count();
    if blanks == 0 {
        return None;
    }
    j += blanks;
    let start = j;
    while j < b.len() && is_token_char(b[j]) {
        j += 1;
    }
    (j - start >= 8).then_some(Finding {
        start,
        end: j,
        rule: "auth-scheme",
    })
}

/// A pg_tenancy API key whose `tk_` starts at `i`: the part after `tk_live_`/`tk_test_`.
pub fn api_key_at(b: &[u8], i: usize) -> Option<Finding> {
    if i > 0 && b[i - 1].is_ascii_alphanumeric() {
        return None;
    }
    if !(b[i..].starts_with(b"tk_live_") || b[i..].starts_with(b"tk_test_")) {
        return None;
    }
    let start = i + 8;
    if b.len() < start + 20 || !b[start..start + 20].iter().all(|c| is_base62(*c)) {
        return None;
    }
    let mut j = start;
    while j < b.len() && is_base62(b[j]) {
        j += 1;
    }
    Some(Finding {
        start,
        end: j,
        rule: "pg-tenancy-api-key",
    })
}

/// Payment card numbers (opt-in): 13 to 19 digits, in groups separated by single spaces or
/// dashes, not inside a longer run of digits or letters, that pass the Luhn check.
pub fn card_numbers(b: &[u8], tick: &mut dyn FnMut(), found: &mut Vec<Finding>) {
    let mut i = 0;
    let mut next_tick = TICK_BYTES;
    while i < b.len() {
        if i >= next_tick {
            tick();
            next_tick = i + TICK_BYTES;
        }
        if !b[i].is_ascii_digit() || (i > 0 && b[i - 1].is_ascii_alphanumeric()) {
            i += 1;
            continue;
        }
        // A run of digits and single separators.
        let start = i;
        let mut j = i;
        let mut digits = 0;
        let mut end = i;
        while j < b.len() && digits <= 19 {
            if b[j].is_ascii_digit() {
                digits += 1;
                j += 1;
                end = j;
            } else if (b[j] == b' ' || b[j] == b'-')
                && j + 1 < b.len()
                && b[j + 1].is_ascii_digit()
                && end == j
            {
                j += 1;
            } else {
                break;
            }
        }
        let bounded = end >= b.len() || !b[end].is_ascii_alphanumeric();
        if (13..=19).contains(&digits) && bounded && luhn(&b[start..end]) {
            found.push(Finding {
                start,
                end,
                rule: "pii-card-number",
            });
        }
        i = end.max(i + 1);
    }
}

/// The Luhn checksum of the digits of `s` (separators skipped).
fn luhn(s: &[u8]) -> bool {
    let mut sum = 0;
    for (k, d) in s
        .iter()
        .rev()
        .filter(|c| c.is_ascii_digit())
        .map(|c| u32::from(c - b'0'))
        .enumerate()
    {
        sum += if k % 2 == 1 {
            let x = d * 2;
            if x > 9 {
                x - 9
            } else {
                x
            }
        } else {
            d
        };
    }
    sum % 10 == 0
}

/// `s` with `found` (sorted, disjoint, on character boundaries) replaced by [`MARK`].
pub fn apply(s: &str, found: &[Finding]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut at = 0;
    for f in found {
        out.push_str(&s[at..f.start]);
        out.push_str(MARK);
        at = f.end;
    }
    out.push_str(&s[at..]);
    out
}

/// `s` with every secret found in it replaced by [`MARK`], and what was found, or `None` if
/// there was nothing.  Linear in the length of `s` (see `scan.rs`; measured by
/// pgrx-tests/tests/bounded.rs on adversarial inputs).  `tick` is called every [`TICK_BYTES`].
pub fn redact_string(
    s: &str,
    cfg: &Config,
    tick: &mut dyn FnMut(),
) -> Option<(String, Vec<Finding>)> {
    let found = scan::find(s, cfg, tick);
    if found.is_empty() {
        return None;
    }
    Some((apply(s, &found), found))
}

/// The longest start of `s` that fits in `room` bytes and ends between words (before whitespace
/// or punctuation that cannot be part of a credential), so that no secret is cut in half and half
/// of it kept: a token cut short could escape the detectors above.  Empty if there is none.
pub fn whole_word_prefix(s: &str, room: usize) -> &str {
    if s.len() <= room {
        return s;
    }
    let b = s.as_bytes();
    // b[end] is the first byte left out; the prefix is kept only if b[end] does not continue a
    // word of b[..end].
    let mut end = room;
    while end > 0 && !separates(b[end]) {
        end -= 1;
    }
    &s[..end]
}

/// A byte that ends any word the detectors look for: ASCII whitespace, punctuation that no token
/// format here uses, or the first byte of a non-ASCII character (every token class is ASCII).
fn separates(c: u8) -> bool {
    c.is_ascii_whitespace() || b",;\"'<>()[]{}|!`".contains(&c) || c >= 0xC0
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    /// The definition, written the obvious (quadratic) way: from every word start with "eyJ",
    /// the longest run of base64url with at most two dots, if it has two and 20 bytes.
    fn naive_jwts(b: &[u8]) -> Vec<(usize, usize)> {
        let mut spans = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i..].starts_with(b"eyJ") && (i == 0 || !b[i - 1].is_ascii_alphanumeric()) {
                let (mut j, mut dots) = (i, 0);
                while j < b.len() && (is_b64url(b[j]) || (b[j] == b'.' && dots < 2)) {
                    dots += usize::from(b[j] == b'.');
                    j += 1;
                }
                if dots == 2 && j - i >= 20 {
                    spans.push((i, j));
                    i = j;
                    continue;
                }
            }
            i += 1;
        }
        spans
    }

    #[test]
    fn jwt_spans_match_the_definition() {
        // A fixed pseudo-random walk over the characters that matter.
        let alphabet = b"eyJa.-_ xQ";
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for len in [0, 1, 5, 20, 40, 80, 200] {
            for _ in 0..2000 {
                let s: Vec<u8> = (0..len)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        alphabet[(state % alphabet.len() as u64) as usize]
                    })
                    .collect();
                assert_eq!(
                    jwt_spans(&s, &mut || ()),
                    naive_jwts(&s),
                    "{}",
                    String::from_utf8_lossy(&s)
                );
            }
        }
        let jwt = b"x eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl.eyJ";
        assert_eq!(jwt_spans(jwt, &mut || ()), naive_jwts(jwt));
        assert_eq!(jwt_spans(jwt, &mut || ()).len(), 1);
    }

    #[test]
    fn strings() {
        let cfg = Config::default();
        let cases = [
            ("Bearer abcdefghijkl.mnop", Some("Bearer [REDACTED]")),
            (
                "auth: bearer xoxb-123456789-abc rest",
                Some("auth: bearer [REDACTED] rest"),
            ),
            ("Basic dXNlcjpwYXNzd29yZA==", Some("Basic [REDACTED]")),
            ("a Token of appreciation", None),
            (
                "see tk_live_0123456789ABCDEFGHIJabcdefghij here",
                Some("see tk_live_[REDACTED] here"),
            ),
            (
                "https://api.example.com/v1/items?access_token=abc123&page=2#top",
                Some("https://api.example.com/v1/items?access_token=[REDACTED]&page=2#top"),
            ),
            (
                "https://x.test/cb?code=1&client_secret=s3cr3t",
                Some("https://x.test/cb?code=1&client_secret=[REDACTED]"),
            ),
            ("https://x.test/?page=2&sort=asc", None),
            (
                "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl!",
                Some("jwt [REDACTED]!"),
            ),
            ("é Bearer ééé", None),
            (
                "naïve Bearer 0123456789abcdef ü",
                Some("naïve Bearer [REDACTED] ü"),
            ),
            ("plain text", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(
                redact_string(input, &cfg, &mut || ())
                    .map(|r| r.0)
                    .as_deref(),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn card_numbers_opt_in() {
        let mut cfg = Config::default();
        let s = "paid with 4242 4242 4242 4242 on 2024-05-01, order 1234567890123";
        assert_eq!(redact_string(s, &cfg, &mut || ()), None);
        cfg.enabled = vec!["pii-card-number".into()];
        assert_eq!(
            redact_string(s, &cfg, &mut || ()).map(|r| r.0).as_deref(),
            Some("paid with [REDACTED] on 2024-05-01, order 1234567890123")
        );
    }
}
