//! A secret's keyword followed, within a few characters, by an assignment and a value that looks
//! like a credential, read forward from the keyword: `HEROKU_API_KEY ||= 4f3c…`,
//! `datadog.app =>  "…"`, `<token>ab12…</token>`, `secret_key' => 'sk_…'`.
//!
//! `scan.rs` reads names backward from `=` and `:`; this reads the looser shapes that secret
//! scanners describe (gitleaks' keyword rules are the measure: `tests/redaction/gitleaks.json`):
//! the keyword anywhere in a name (`x_stripe_live`, `myDatadogKey`), up to 20 more name
//! characters, blanks and quotes, then any of `=`, `:`, `:=`, `::=`, `=>`, `?=`, `||`, `>` and `,`,
//! then quotes and blanks, then the value.
//!
//! The keywords are the provider names of [`names::PROVIDERS`] (the finding's rule is
//! `name-provider`) and the generic words `token`, `secret`, `password`, `credential`, `key`,
//! `api`, `auth`, `access`, …  The name the keyword is in (the identifier around it) is judged by
//! [`names::classify`], as every name is, and the finding's rule is the name's (`name-secret`,
//! `name-password`, `name-provider`).  What keeps ordinary text intact:
//! * the name must be a secret's by the rules of `names.rs` (`token_type`, `public_key`,
//!   `keyword`, `sumOfX` are not);
//! * a value counts only if it has letters and digits and at least [`MIN_VALUE`] bytes (after a
//!   provider's name, also a random number of 16 digits or more: client ids);
//! * a keyword of four letters or fewer (`api`, `key`, `okta`) starts a word: `monkey` and `rapid`
//!   hold none; and it is written lowercase, uppercase or capitalised (`Okta`, `OKTA`, `okta`);
//! * `>=` and `->` are not assignments; in a list (`a_key, b_key`) a value that is itself a
//!   secret's name is a name.
//!
//! Each keyword occurrence reads at most [`HEAD`] + [`TAIL`] + 8 bytes around its name, and no
//! value is read twice (occurrences inside a value read are skipped), so the pass is linear in
//! the string.
use super::names::{self, Class};
use super::scan::Finding;

/// Name characters read after the keyword (gitleaks' `[ \t\w.-]{0,20}`).
const TAIL: usize = 20;
/// Name characters read before it (gitleaks' `[\w.-]{0,50}`).
const HEAD: usize = 50;
/// The shortest value taken.
pub const MIN_VALUE: usize = 10;

/// Generic keywords (lowercase): words that start a secret's name.
pub const GENERIC: &[&str] = &[
    "token",
    "secret",
    "credential",
    "creds",
    "api",
    "key",
    "auth",
    "access",
    "passw",
    "pwd",
];

/// Provider names as they are written in names (the words of [`names::PROVIDERS`] joined by `_`
/// or `-`, and environment variable names that hold a provider's key).
pub const SPELLED: &[&str] = &[
    "linked_in",
    "linked-in",
    "message_bird",
    "message-bird",
    "new_relic",
    "new-relic",
    "private_ai",
    "private-ai",
    "new-york-times",
    "new_york_times",
    "co_api_key",
    "drone_ci",
];

/// Every keyword (lowercase), for the automaton of `scan.rs`.
pub fn literals() -> impl Iterator<Item = &'static str> {
    GENERIC
        .iter()
        .chain(names::PROVIDERS)
        .chain(SPELLED)
        .copied()
}

/// ASCII whitespace, vertical tab included.
fn blank(c: u8) -> bool {
    c.is_ascii_whitespace() || c == 0x0B
}

fn ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-')
}

fn tail_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b' ' | b'\t')
}

fn value_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b'+' | b'/' | b'=' | b'~')
}

/// Whether the keyword at `b[start..end]` is written lowercase, uppercase or capitalised, and a
/// short one starts a word.
fn well_written(b: &[u8], start: usize, end: usize) -> bool {
    let kw = &b[start..end];
    let letters = || kw.iter().filter(|c| c.is_ascii_alphabetic());
    let lower = letters().all(u8::is_ascii_lowercase);
    let upper = letters().all(u8::is_ascii_uppercase);
    let capitalised = kw[0].is_ascii_uppercase() && letters().skip(1).all(u8::is_ascii_lowercase);
    if !(lower || upper || capitalised) {
        return false;
    }
    if kw.len() > 4 || start == 0 {
        return true;
    }
    let prev = b[start - 1];
    if !prev.is_ascii_alphabetic() {
        return true;
    }
    // A word starts here in camelCase (`myApiKey`, `xOKTA` after lowercase).
    (capitalised || upper) && prev.is_ascii_lowercase()
}

/// The operator at `p`, as its length.
fn operator(b: &[u8], p: usize) -> Option<usize> {
    let at = |k: usize| b.get(p + k).copied().unwrap_or(0);
    match at(0) {
        b':' => {
            let mut n = 1;
            while n < 3 && at(n) == b':' {
                n += 1;
            }
            if at(n) == b'=' {
                Some(n + 1)
            } else if n == 1 && at(1) != b'/' {
                Some(1) // not a URL's `://`
            } else {
                None
            }
        }
        b'=' => Some(if at(1) == b'>' { 2 } else { 1 }),
        b'?' if at(1) == b'=' => Some(2),
        b'|' if at(1) == b'|' => Some(2),
        // Not `>=` (a comparison) nor `->` (an arrow).
        b'>' if at(1) != b'=' && p > 0 && b[p - 1] != b'-' => Some(1),
        b',' => Some(1),
        _ => None,
    }
}

/// Whether a value after a keyword is a credential's: letters and digits, at least
/// [`MIN_VALUE`] bytes, not a URL, a date or a placeholder; after a provider's name also a long
/// number.
fn credential(v: &[u8], class: Class) -> bool {
    if v.len() < MIN_VALUE {
        return false;
    }
    let digits = v.iter().filter(|c| c.is_ascii_digit()).count();
    if class == Class::Provider && digits == v.len() {
        return v.len() >= 16 && super::scan::entropy(v) >= 2.5; // not 0000…
    }
    let letters = v.iter().any(u8::is_ascii_alphabetic);
    letters && digits > 0 && super::scan::provider_value(class, v)
}

fn uuid_shaped(v: &[u8]) -> bool {
    v.len() == 36
        && v.iter().enumerate().all(|(i, &c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// The secret assigned after the keyword at `b[start..end]`, and the end of the value read, if
/// one was.
pub fn after(
    b: &[u8],
    start: usize,
    end: usize,
    cfg: &super::scan::Config,
) -> (Option<Finding>, Option<usize>) {
    if !well_written(b, start, end) {
        return (None, None);
    }
    // The name the keyword is in: the identifier before it and the name characters after it,
    // read as `names.rs` reads every name.
    // Back over the identifier, and over up to two more words before it (`Idempotency key`,
    // `public key`: the words that make a name ordinary come first).
    let mut from = start;
    for word in 0..3 {
        if word > 0 {
            let mut f = from;
            while f > 0 && from - f < 2 && matches!(b[f - 1], b' ' | b'\t') {
                f -= 1;
            }
            if f == from || f == 0 || !ident_byte(b[f - 1]) {
                break;
            }
            from = f;
        }
        while from > 0 && start - from < HEAD && ident_byte(b[from - 1]) {
            from -= 1;
        }
    }
    let mut p = end;
    while p < b.len() && p - end < TAIL && tail_byte(b[p]) {
        p += 1;
    }
    let name_end = p;
    // Blanks and quotes, the operator, quotes and blanks: looked at before the name is judged,
    // since most keywords are followed by none.
    let mut n = 0;
    while p < b.len() && n < 3 && (blank(b[p]) || b[p] == b'\'' || b[p] == b'"') {
        p += 1;
        n += 1;
    }
    let Some(op) = operator(b, p) else {
        return (None, None);
    };
    // `>` after a tag's name (`<Password>…</Password>`) needs the closing tag after the value, and
    // a bare `<Key>` is an object's key (S3), not a secret; `>` closing an attribute's value
    // (`class="key">`) assigns nothing.
    let tag = b[p] == b'>' && from > 0 && b[from - 1] == b'<';
    if tag && (name_end != p || b[from..name_end].eq_ignore_ascii_case(b"key")) {
        return (None, None);
    }
    if b[p] == b'>' && from >= 2 && matches!(b[from - 1], b'"' | b'\'') && b[from - 2] == b'=' {
        return (None, None);
    }
    // ` > ` between spaces compares (`commit key > a94a…`).
    if b[p] == b'>' && b[p - 1] == b' ' && b.get(p + 1) == Some(&b' ') {
        return (None, None);
    }
    let p_op = p;
    p += op;
    let mut n = 0;
    while p < b.len() && n < 5 && (blank(b[p]) || b"`'\"=".contains(&b[p])) {
        p += 1;
        n += 1;
    }
    let v0 = p;
    let listed = op == 1 && b[p_op] == b',';
    while p < b.len() && value_byte(b[p]) {
        // After `,` a value ends at an `=` that is not padding (`token, request_id=…`).
        if listed && b[p] == b'=' && b.get(p + 1).is_some_and(|&c| c != b'=' && value_byte(c)) {
            break;
        }
        p += 1;
    }
    if b[p..].starts_with(super::redact::MARK.as_bytes()) {
        return (None, Some(p)); // the start of a token already cut: left as it is
    }
    let v = &b[v0..p];
    if tag && !b[p..].starts_with(b"</") {
        return (None, Some(p));
    }
    if v.len() < MIN_VALUE {
        return (None, Some(p));
    }
    let Ok(name) = std::str::from_utf8(&b[from..name_end]) else {
        return (None, Some(p));
    };
    let Some(class) = names::classify(name.trim(), &cfg.extra).filter(|c| cfg.on(c.rule())) else {
        return (None, Some(p));
    };
    // In a list (`a_key, b_key`) a value that is itself a secret's name is a name, and a UUID
    // an id (`Invalid token, 7f3a…`).
    if !credential(v, class)
        || listed
            && (uuid_shaped(v)
                || names::classify(std::str::from_utf8(v).unwrap_or(""), &cfg.extra).is_some())
    {
        return (None, Some(p));
    }
    let rule = class.rule();
    (
        Some(Finding {
            start: v0,
            end: p,
            rule,
        }),
        Some(p),
    )
}

#[cfg(test)]
mod unit_tests {
    fn redact(s: &str) -> String {
        let cfg = super::super::scan::Config::default();
        let f = super::super::scan::find(s, &cfg, &mut || ());
        super::super::redact::apply(s, &f)
    }

    #[test]
    fn loose_assignments_after_a_keyword() {
        for (input, want) in [
            (
                "HEROKU_API_KEY ||= 4f3c9a8b7d6e5f40",
                "HEROKU_API_KEY ||= [REDACTED]",
            ),
            (
                "datadog.app =>  \"ab12cd34ef56gh78\"",
                "datadog.app =>  \"[REDACTED]\"",
            ),
            (
                "<token>ab12cd34ef56gh78</token>",
                "<token>[REDACTED]</token>",
            ),
            (
                "x_OKTA_live ?= 00Os0sZqx_oOR3hRJ",
                "x_OKTA_live ?= [REDACTED]",
            ),
            ("discord ::= 463275285955099421", "discord ::= [REDACTED]"),
            (
                "<Password>hunter2abc123</Password>",
                "<Password>[REDACTED]</Password>",
            ),
            (
                "slack_token > xoxe.xoxp-1-[REDACTED]",
                "slack_token > xoxe.xoxp-1-[REDACTED]",
            ),
        ] {
            assert_eq!(redact(input), want, "{input}");
        }
    }

    #[test]
    fn ordinary_text_is_kept() {
        for input in [
            "monkey: abc123def456ghi",
            "global_ref: 8f7e6d5c4b3a2910",
            "token_type: bearer_abc123xyz",
            "api_version=2024-01-01",
            "stripe_customer_id: cus_NffrFeUfNV2Hib",
            "https://api.example.com:8443/v1/items",
            "access: granted_to_admin_user",
            "the API, as documented",
            "discord, 2024-05-01T12:30:00Z",
            "Api-Key: see https://docs.example.com/keys",
            "aPi: abc123def456ghi",
            // From gitleaks' own false positives (cmd/generate/config/rules/*.go).
            "sumOfExposures = 3Kof2VffNQ0QgYIhXUPJosVlCaQKm2hfpWE6F1fT9YGY74blQBIPsrkCcf1TwKE5;",
            "rookTable = 0023452Lllk2KqjLBvaxANWEgTd7bqjsxjo8aZj0wd",
            "secretSize must be >= XXH3_SECRET_SIZE_MIN",
            "|| pIdxKey->default_rc==0",
            "<SourceFile TokenFile=\"RTL_INST_CODE.cer\">",
            "aws-cli@sha256:eaaa7b11777babe28e6133a8b19ff71cea687e0d7f05158dee95a71f76ce3d00",
            "usernameVariable: 'USERNAME', passwordVariable: 'PASSWORD'",
            "X-MS-Exchange-Organization-AuthSource: sm02915.int.contoso.com",
            "import { chain_Anvil1_Key, chain_Anvil2_Key } from './consts';",
            "schemaKey = 'DOC_Vector_5_32'",
            "http://assets.r7.com/video_box.ico-7a388b69018576d24b59331fd60aab0c.png",
            "SUMO_ACCESS_KEY={SumoAccessKey}",
            "JFROG_SECRET = $(cat /run/secrets/jfrog_secret)",
            "discord=000000000000000000",
            // The hostile review of the change.
            "Idempotency key: 7f3a9c2b-1e4d-4a5b-8c6d-0e1f2a3b4c5d",
            "public key: MIIBIjANBgkq1234",
            "<Error><Key>uploads/2024/05/invoice_12345.pdf</Key></Error>",
            "<span class=\"key\">ORD-2024-000123</span>",
            "<td class=\"auth\">user42-session</td>",
            "commit key > a94a8fe5ccb19ba61c4c0873d391e987982fbbd3",
            "Invalid token, request_id=req_8f7e6d5c4b3a2910",
            "unknown key, 7f3a9c2b-1e4d-4a5b-8c6d-0e1f2a3b4c5d",
        ] {
            assert_eq!(redact(input), input);
        }
    }
}
