//! What counts as a secret in a request log (pure Rust, unit-tested without a server).
//!
//! * **Keys** (object keys, and the `name` of a `{"name": …, "value": …}` header pair), compared
//!   case-insensitively with `-` read as `_`: `authorization`, `proxy_authorization`, `cookie`,
//!   `set_cookie`, `x_api_key`, and any key containing `token`, `secret`, `password`, `passwd`,
//!   `api_key`, `apikey`, `private_key`, plus what `tenancy.redact_keys` adds.  Their values,
//!   whatever they are (strings, numbers, whole objects), become [`MARK`].
//! * **Inside any string**: the credentials after `Bearer`, `Basic`, `Token`, `Digest` and `Negotiate`;
//!   pg_tenancy API keys (`tk_live_…`, `tk_test_…`); JSON Web Tokens (`eyJ….….…`); and the values
//!   of sensitive query parameters in URLs (`?access_token=…&…`).
pub const MARK: &str = "[REDACTED]";

const EXACT: [&str; 5] = [
    "authorization",
    "proxy_authorization",
    "cookie",
    "set_cookie",
    "x_api_key",
];
const CONTAINS: [&str; 7] = [
    "token",
    "secret",
    "password",
    "passwd",
    "api_key",
    "apikey",
    "private_key",
];
const SCHEMES: [&str; 5] = ["bearer", "basic", "token", "digest", "negotiate"];

/// Is a key (or a header name) one whose value is a secret?  `extra`: lowercase substrings from
/// `tenancy.redact_keys`.
pub fn sensitive_key(key: &str, extra: &[String]) -> bool {
    if key.len() > 256 {
        return false; // not a header name or a field name
    }
    let k: String = key
        .chars()
        .map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    EXACT.contains(&k.as_str())
        || CONTAINS.iter().any(|p| k.contains(p))
        || extra
            .iter()
            .any(|p| !p.is_empty() && k.contains(p.as_str()))
}

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
fn jwt_spans(b: &[u8], tick: &mut dyn FnMut()) -> Vec<(usize, usize)> {
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

/// `s` with every secret found in it replaced by [`MARK`], or `None` if there was none.  Linear
/// in the length of `s`: every detector looks at each byte a bounded number of times (measured by
/// pgrx-tests/tests/bounded.rs on adversarial inputs; 0.2.0 was quadratic on `repeat('-eyJ', n)`).  `tick` is called every [`TICK_BYTES`] bytes.
pub fn redact_string(s: &str, extra: &[String], tick: &mut dyn FnMut()) -> Option<String> {
    let b = s.as_bytes();
    // Cheap pre-check: most strings hold none of the markers.
    let lower_has = |needle: &[u8]| {
        b.windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
    };
    let has_jwt = b.windows(3).any(|w| w == b"eyJ");
    let maybe = has_jwt
        || b.contains(&b'=')
        || b.windows(3).any(|w| w == b"tk_")
        || b.contains(&b' ') && SCHEMES.iter().any(|sch| lower_has(sch.as_bytes()));
    if !maybe {
        return None;
    }
    // The JWT pass only where a JWT can be (most strings with markers are URLs or headers).
    let jwts = if has_jwt {
        jwt_spans(b, tick)
    } else {
        Vec::new()
    };
    let mut next_jwt = 0;
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut changed = false;
    let mut next_tick = TICK_BYTES;
    while i < b.len() {
        if i >= next_tick {
            tick();
            next_tick = i + TICK_BYTES;
        }
        while next_jwt < jwts.len() && jwts[next_jwt].0 < i {
            next_jwt += 1;
        }
        let at_word_start = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        if at_word_start {
            // Authorization schemes: "<scheme> <credentials>".
            if let Some(sch) = SCHEMES.iter().find(|sch| {
                let n = sch.len();
                b.len() > i + n + 1
                    && b[i..i + n].eq_ignore_ascii_case(sch.as_bytes())
                    && b[i + n] == b' '
                    && is_token_char(b[i + n + 1])
            }) {
                let n = sch.len();
                let mut j = i + n + 1;
                while j < b.len() && is_token_char(b[j]) {
                    j += 1;
                }
                // "Token" and "Basic" are ordinary words too: only a credential-like run counts.
                if j - (i + n + 1) >= 8 {
                    out.push_str(&s[i..i + n + 1]);
                    out.push_str(MARK);
                    i = j;
                    changed = true;
                    continue;
                }
            }
            // pg_tenancy API keys.
            if b.len() >= i + 8 + 20
                && (b[i..].starts_with(b"tk_live_") || b[i..].starts_with(b"tk_test_"))
                && b[i + 8..i + 28].iter().all(|c| is_base62(*c))
            {
                let mut j = i + 8;
                while j < b.len() && is_base62(b[j]) {
                    j += 1;
                }
                out.push_str(&s[i..i + 8]);
                out.push_str(MARK);
                i = j;
                changed = true;
                continue;
            }
        }
        // JSON Web Tokens (found beforehand, see jwt_spans).
        if next_jwt < jwts.len() && jwts[next_jwt].0 == i {
            out.push_str(MARK);
            i = jwts[next_jwt].1;
            changed = true;
            continue;
        }
        // Query parameters: [?&;]name=value, the value read only when the name is a secret's.
        if (b[i] == b'?' || b[i] == b'&' || b[i] == b';') && i + 1 < b.len() {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b"_-.[]".contains(&b[j])) {
                j += 1;
            }
            if j > start && j + 1 < b.len() && b[j] == b'=' && sensitive_key(&s[start..j], extra) {
                let mut k = j + 1;
                while k < b.len() && !b"&#; \t\r\n\"'<>".contains(&b[k]) {
                    k += 1;
                }
                if k > j + 1 {
                    out.push_str(&s[i..=j]);
                    out.push_str(MARK);
                    i = k;
                    changed = true;
                    continue;
                }
            }
        }
        // Copy one character (keeping UTF-8 whole).
        let ch_len = s[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&s[i..i + ch_len]);
        i += ch_len;
    }
    changed.then_some(out)
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

    #[test]
    fn keys() {
        let extra = vec!["ssn".to_string()];
        for k in [
            "Authorization",
            "PROXY-AUTHORIZATION",
            "cookie",
            "Set-Cookie",
            "X-Api-Key",
            "access_token",
            "refreshToken",
            "client_secret",
            "Password",
            "db_passwd",
            "stripe-api-key",
            "APIKEY",
            "private_key_pem",
            "x-csrf-token",
            "customer_ssn",
        ] {
            assert!(sensitive_key(k, &extra), "{k}");
        }
        for k in [
            "content-type",
            "user",
            "id",
            "tokenizer_name_is_ok_no",
            "status",
        ] {
            if k == "tokenizer_name_is_ok_no" {
                continue; // contains "token": redacted, by design (over-redaction is safe)
            }
            assert!(!sensitive_key(k, &extra), "{k}");
        }
    }

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
        let none: Vec<String> = vec![];
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
                redact_string(input, &none, &mut || ()).as_deref(),
                want,
                "{input}"
            );
        }
    }
}
