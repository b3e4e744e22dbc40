//! Finding secrets in a string: one pass of an Aho–Corasick automaton over the literals of every
//! rule (`rules.rs`, and the triggers of the procedural detectors in `redact.rs`), then each rule
//! whose literal was seen runs once over the string; one pass over the assignment operators
//! (`=`, `:`) reads the name before each and, when the name is a secret's (`names.rs`), the
//! value after it.  Everything is linear in the string's length: the automaton and each rule's
//! expression (the `regex` crate's guarantee) are, a name is read back at most
//! [`names::MAX_NAME`] bytes, and a value, read to its end (the next blank or separator; for a
//! credential header, the end of the line), is never read again: the operators inside it are
//! skipped.  A string with an encoded `=` (`%3D`) is read a second time, decoded.  `tick` (the server's
//! CHECK_FOR_INTERRUPTS) is called every [`TICK_BYTES`] of progress and between rules.
//!
//! The automaton and the expressions are built once per backend, each expression when a string
//! first holds one of its literals (most backends never compile most rules).
use super::keywords;
use super::names::{self, Class};
use super::redact::{self, TICK_BYTES};
use super::rules::{Rule, RULES};
use regex::bytes::{Regex, RegexBuilder};
use std::sync::OnceLock;

/// One secret: bytes `start..end` of the string, replaced by [`redact::MARK`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finding {
    pub start: usize,
    pub end: usize,
    pub rule: &'static str,
}

/// What the settings say: extra key names, rules turned off, opt-in rules turned on.
#[derive(Default)]
pub struct Config {
    /// `tenancy.redact_keys`, lowercase.
    pub extra: Vec<String>,
    /// `tenancy.redact_disabled_rules`.
    pub disabled: Vec<String>,
    /// `tenancy.redact_enabled_rules`.
    pub enabled: Vec<String>,
}

impl Config {
    /// Whether a rule runs.
    pub fn on(&self, id: &str) -> bool {
        !self.disabled.iter().any(|d| d == id)
    }

    /// Whether an opt-in rule runs.
    pub fn opted_in(&self, id: &str) -> bool {
        self.enabled.iter().any(|d| d == id) && self.on(id)
    }
}

/// What a literal of the automaton starts.
#[derive(Clone, Copy)]
enum Trigger {
    Rule(usize),
    Scheme(usize),
    ApiKey,
    Jwt,
    Keyword,
}

struct Compiled {
    automaton: aho_corasick::AhoCorasick,
    triggers: Vec<Trigger>,
    regexes: Vec<OnceLock<Regex>>,
}

fn compiled() -> &'static Compiled {
    static COMPILED: OnceLock<Compiled> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let mut literals: Vec<String> = Vec::new();
        let mut triggers = Vec::new();
        for (i, rule) in RULES.iter().enumerate() {
            for lit in rule.literals {
                literals.push(lit.to_string());
                triggers.push(Trigger::Rule(i));
            }
        }
        for (i, scheme) in redact::SCHEMES.iter().enumerate() {
            literals.push(scheme.to_string());
            triggers.push(Trigger::Scheme(i));
        }
        literals.push("tk_".to_string());
        triggers.push(Trigger::ApiKey);
        literals.push("eyj".to_string());
        triggers.push(Trigger::Jwt);
        for lit in keywords::literals() {
            literals.push(lit.to_string());
            triggers.push(Trigger::Keyword);
        }
        // The default kind (a contiguous NFA, about 100 kB here): a DFA would take 0.9 MB per
        // backend to save part of the 1.5% of log_request's time spent in this search (perf).
        let automaton = aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(aho_corasick::MatchKind::Standard)
            .build(&literals)
            .expect("the rules' literals are plain strings");
        Compiled {
            automaton,
            triggers,
            regexes: RULES.iter().map(|_| OnceLock::new()).collect(),
        }
    })
}

/// The compiled expression of a rule.
fn regex(i: usize) -> &'static Regex {
    compiled().regexes[i].get_or_init(|| compile(&RULES[i]))
}

/// A rule's expression, as every rule is compiled (unit tests compile them all).
pub fn compile(rule: &Rule) -> Regex {
    RegexBuilder::new(rule.pattern)
        .unicode(false)
        .size_limit(4 << 20)
        .build()
        .unwrap_or_else(|e| panic!("rule {}: {e}", rule.id))
}

/// Every secret of `s`, sorted, overlapping ones merged (the first one's rule is kept).
pub fn find(s: &str, cfg: &Config, tick: &mut dyn FnMut()) -> Vec<Finding> {
    let b = s.as_bytes();
    let mut found: Vec<Finding> = Vec::new();
    let c = compiled();
    // 1. The literals: which rules may match, and from where.
    let mut first_hit: Vec<(usize, usize)> = Vec::new(); // (rule, first position)
    let mut seen_rule = vec![false; RULES.len()];
    let mut jwt = false;
    let mut keyword_read_to = 0; // the end of the last value read after a keyword
    let mut next_tick = TICK_BYTES;
    for m in c.automaton.find_overlapping_iter(b) {
        if m.start() >= next_tick {
            tick();
            next_tick = m.start() + TICK_BYTES;
        }
        match c.triggers[m.pattern().as_usize()] {
            Trigger::Rule(r) => {
                if !seen_rule[r] {
                    seen_rule[r] = true;
                    first_hit.push((r, m.start()));
                }
            }
            Trigger::Scheme(k) => {
                if let Some(f) = redact::scheme_at(b, m.start(), k).filter(|f| cfg.on(f.rule)) {
                    found.push(f);
                }
            }
            Trigger::ApiKey => {
                if let Some(f) = redact::api_key_at(b, m.start()).filter(|f| cfg.on(f.rule)) {
                    found.push(f);
                }
            }
            Trigger::Jwt => jwt = cfg.on("jwt"),
            Trigger::Keyword => {
                if m.start() >= keyword_read_to {
                    let (f, read_to) = keywords::after(b, m.start(), m.end(), cfg);
                    keyword_read_to = read_to.unwrap_or(keyword_read_to);
                    found.extend(f);
                }
            }
        }
    }
    if jwt {
        found.extend(
            redact::jwt_spans(b, tick)
                .into_iter()
                .map(|(start, end)| Finding {
                    start,
                    end,
                    rule: "jwt",
                }),
        );
    }
    // 2. The rules whose literal is there, each once over the rest of the string.
    for (r, at) in first_hit {
        let rule = &RULES[r];
        if rule.opt_in && !cfg.opted_in(rule.id) || !cfg.on(rule.id) {
            continue;
        }
        tick();
        let re = regex(r);
        let mut pos = at.saturating_sub(rule.back);
        while pos <= b.len() {
            let Some(caps) = re.captures_at(b, pos) else {
                break;
            };
            let whole = caps.get(0).expect("group 0 is the match");
            let part = caps.name("s").or_else(|| caps.name("l")).unwrap_or(whole);
            if !part.is_empty() && part.as_bytes() != redact::MARK.as_bytes() {
                found.push(Finding {
                    start: part.start(),
                    end: part.end(),
                    rule: rule.id,
                });
            }
            pos = if whole.end() > whole.start() {
                whole.end()
            } else {
                whole.end() + 1
            };
        }
    }
    // 3. Names and their values; and again in a percent-decoded copy when an `=` is encoded
    //    (`?next=https%3A%2F%2Fapp%2Fcb%3Faccess_token%3D…`), mapped back to the original bytes.
    context(b, cfg, tick, &mut found);
    if memchr::memmem::find(b, b"%3D").is_some() || memchr::memmem::find(b, b"%3d").is_some() {
        let (d, map) = percent_decoded(b);
        let mut inner = Vec::new();
        context(&d, cfg, tick, &mut inner);
        found.extend(inner.into_iter().map(|f| Finding {
            start: map[f.start],
            end: map[f.end],
            rule: f.rule,
        }));
    }
    // 4. Opt-in personal data.
    if cfg.opted_in("pii-card-number") {
        redact::card_numbers(b, tick, &mut found);
    }
    merge(s, found)
}

/// `b` with its `%XX` escapes of ASCII bytes decoded, and for every byte of the copy (and its
/// end) the offset in `b` it came from.
pub fn percent_decoded(b: &[u8]) -> (Vec<u8>, Vec<usize>) {
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(b.len());
    let mut map = Vec::with_capacity(b.len() + 1);
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                let v = (h * 16 + l) as u8;
                if v.is_ascii() {
                    out.push(v);
                    map.push(i);
                    i += 3;
                    continue;
                }
            }
        }
        out.push(b[i]);
        map.push(i);
        i += 1;
    }
    map.push(b.len());
    (out, map)
}

/// Sorted, overlapping or touching findings joined, every bound on a character boundary.
fn merge(s: &str, mut found: Vec<Finding>) -> Vec<Finding> {
    for f in &mut found {
        while !s.is_char_boundary(f.start) {
            f.start -= 1;
        }
        while !s.is_char_boundary(f.end) {
            f.end += 1;
        }
    }
    found.sort_by_key(|f| (f.start, std::cmp::Reverse(f.end)));
    let mut out: Vec<Finding> = Vec::with_capacity(found.len());
    for f in found {
        match out.last_mut() {
            Some(last) if f.start < last.end => last.end = last.end.max(f.end),
            _ => out.push(f),
        }
    }
    out
}

/// The bytes a name may hold (non-ASCII letters included: `contraseña`, `hasło`).
fn name_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"_.-%[]$@".contains(&c) || c >= 0x80
}

/// Where values end: after `=`, everything but `:`; after `:`, `:` too.
fn value_end(c: u8, colon: bool) -> bool {
    c.is_ascii_whitespace() || b"\"'`;,&#<>(){}[]\\|=".contains(&c) || (colon && c == b':')
}

/// Values that stand in for a secret rather than being one.
fn placeholder(v: &[u8]) -> bool {
    if v.is_empty() || v.iter().all(|c| b"*#.-_ ".contains(c)) {
        return true;
    }
    if v.len() >= 4 && v.iter().all(|c| b"*xX".contains(c)) {
        return true; // a mask: xxxx, ****
    }
    // <placeholder>, ${VAR}, {{template}}, $(command), %s
    if v[0] == b'<'
        || v.starts_with(b"${")
        || v.starts_with(b"{{")
        || v.starts_with(b"$(")
        || v == b"%s"
    {
        return true;
    }
    // {name} (no digits: `{Xk9pL2qR7}` is a secret in braces) and $NAME (upper case: a
    // variable, not `$ecretPassw0rd`), whole; a lone `$` (before `(command)`).
    if v == b"$" {
        return true;
    }
    let ident = |w: &[u8], upper: bool| {
        !w.is_empty()
            && (w[0].is_ascii_alphabetic() || w[0] == b'_')
            && w.iter().all(|&c| {
                (if upper {
                    c.is_ascii_uppercase() || c.is_ascii_digit()
                } else {
                    c.is_ascii_alphabetic()
                }) || b"_.-".contains(&c)
            })
    };
    if v.len() >= 3 && v[0] == b'{' && v[v.len() - 1] == b'}' && ident(&v[1..v.len() - 1], false) {
        return true;
    }
    if v.len() >= 2
        && v[0] == b'$'
        && ident(&v[1..], true)
        && !v.contains(&b'.')
        && !v.contains(&b'-')
    {
        return true;
    }
    const WORDS: &[&[u8]] = &[
        b"[redacted]",
        b"redacted",
        b"[filtered]",
        b"filtered",
        b"null",
        b"none",
        b"nil",
        b"undefined",
        b"true",
        b"false",
        b"hidden",
        b"masked",
        b"required",
        b"missing",
        b"invalid",
        b"expired",
        b"empty",
    ];
    WORDS.iter().any(|w| v.eq_ignore_ascii_case(w))
}

/// Shannon entropy of `v`, in bits per byte.
pub fn entropy(v: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for &c in v {
        counts[c as usize] += 1;
    }
    let n = v.len() as f64;
    counts
        .iter()
        .filter(|&&k| k > 0)
        .map(|&k| {
            let p = f64::from(k) / n;
            -p * p.log2()
        })
        .sum()
}

/// Whether a value under a secret's name looks like a credential rather than a word, a number,
/// a date or a URL.
pub fn credential_like(v: &[u8]) -> bool {
    if v.len() < 8 || placeholder(v) || v.windows(3).any(|w| w == b"://") {
        return false;
    }
    if v.iter().all(|c| b"0123456789:TZ.+-/ ".contains(c)) {
        return false; // numbers, dates, times
    }
    let letters = v.iter().any(u8::is_ascii_alphabetic);
    let digits = v.iter().any(u8::is_ascii_digit);
    (letters && digits) || (v.len() >= 12 && entropy(v) >= 3.0)
}

/// Whether a value under a provider's name is a credential: one that looks like it, and, when
/// the provider's name was inside a word, one of 14 bytes or more and 3.3 bits of entropy per
/// byte (the weaker the name, the stronger the value must be).
pub fn provider_value(class: Class, v: &[u8]) -> bool {
    match class {
        Class::Provider => v.len() >= 10 && credential_like(v),
        Class::ProviderInWord => v.len() >= 14 && credential_like(v) && entropy(v) >= 3.3,
        _ => credential_like(v),
    }
}

/// Names before `=`, `=>`, `:=`, `:` and the secrets after them.
fn context(b: &[u8], cfg: &Config, tick: &mut dyn FnMut(), found: &mut Vec<Finding>) {
    let mut resume = 0; // the end of the last value taken
    let mut next_tick = TICK_BYTES;
    for i in memchr::memchr2_iter(b'=', b':', b) {
        if i >= next_tick {
            tick();
            next_tick = i + TICK_BYTES;
        }
        if i < resume {
            continue;
        }
        // A value read, taken or not, is not read again by the operators inside it.
        let (f, read_to) = assignment(b, i, cfg);
        resume = read_to;
        if let Some(f) = f {
            found.push(f);
        }
    }
}

/// The secret assigned at operator byte `i`, if the name before it is a secret's, and where the
/// value read ended (`i` when none was read).
fn assignment(b: &[u8], i: usize, cfg: &Config) -> (Option<Finding>, usize) {
    match read_assignment(b, i, cfg) {
        Some((f, read_to)) => (f, read_to),
        None => (None, i),
    }
}

fn read_assignment(b: &[u8], i: usize, cfg: &Config) -> Option<(Option<Finding>, usize)> {
    let at = |k: usize| b.get(k).copied().unwrap_or(0);
    let colon = b[i] == b':';
    let mut op_end = i + 1;
    if colon {
        if at(i + 1) == b'/' && at(i + 2) == b'/' {
            return None; // a URL's scheme
        }
        if at(i + 1) == b'=' || at(i + 1) == b':' {
            op_end = i + 2;
        }
    } else {
        if i > 0 && b":=!<>".contains(&b[i - 1]) {
            return None; // part of `:=`, `==`, `!=`, `<=`, `>=`
        }
        match at(i + 1) {
            b'>' => op_end = i + 2,
            b'=' => return None,
            _ => {}
        }
    }
    // The name: back over a closing quote and blanks, then over the name (words and blanks).
    let mut j = i;
    let mut skipped = 0;
    while j > 0 && skipped < 3 && b" \t'\"`\\".contains(&b[j - 1]) {
        j -= 1;
        skipped += 1;
    }
    let name_end = j;
    while j > 0
        && name_end - j < names::MAX_NAME
        && (name_byte(b[j - 1]) || b[j - 1] == b' ' || b[j - 1] == b'\t')
    {
        j -= 1;
    }
    while j < name_end && (b[j] == b' ' || b[j] == b'\t' || b[j] >= 0x80 && b[j] < 0xC0) {
        j += 1; // leading blanks, or the middle of a character cut by the bound
    }
    if j == name_end {
        return None;
    }
    let name = std::str::from_utf8(&b[j..name_end]).ok()?;
    let class = names::classify(name, &cfg.extra)?;
    if !cfg.on(class.rule()) {
        return None;
    }
    // The value: after blanks and an opening quote.
    let mut k = op_end;
    let mut quote = None;
    let mut skipped = 0;
    while k < b.len() && skipped < 5 && b" \t'\"`=\\".contains(&b[k]) {
        if b"'\"`".contains(&b[k]) {
            quote = Some(b[k]);
        }
        k += 1;
        skipped += 1;
    }
    let start = k;
    if b[start..].starts_with(redact::MARK.as_bytes()) {
        return Some((None, start + redact::MARK.len()));
    }
    let header_line = class == Class::Header && colon && quote.is_none();
    let end = if header_line {
        while k < b.len()
            && b[k] != b'\r'
            && b[k] != b'\n'
            && !(b[k] == b'\\' && matches!(at(k + 1), b'r' | b'n' | b'"'))
        {
            k += 1;
        }
        k
    } else if let Some(q) = quote {
        while k < b.len() && b[k] != q && b[k] != b'\n' {
            k += 1;
        }
        if k > start && b[k - 1] == b'\\' {
            k - 1 // an escaped quote ends it: {\"password\": \"…\"}
        } else {
            k
        }
    } else {
        // The first byte may be anything but a blank or a separator (`%23…`, `#…`, `(…)`).
        if k < b.len() && !b[k].is_ascii_whitespace() && !b"\"'`;,&\\".contains(&b[k]) {
            k += 1;
        }
        while k < b.len() && !value_end(b[k], colon) {
            k += 1;
        }
        // `user:password` after a secret's name and `:` (`credentials: alice:s3cr3t`).
        if colon
            && matches!(class, Class::Secret | Class::Password)
            && at(k) == b':'
            && !value_end(at(k + 1), true)
            && at(k + 1) != b'/'
        {
            k += 1;
            while k < b.len() && !value_end(b[k], true) {
                k += 1;
            }
        }
        // A `{name}` placeholder's closing brace.
        if at(start) == b'{' && at(k) == b'}' {
            k += 1;
        }
        // Base64 padding.
        while k < b.len() && b[k] == b'=' {
            k += 1;
        }
        k
    };
    let v = &b[start..end];
    if placeholder(v) {
        return Some((None, end));
    }
    // "Password: must be 8 characters": after an unquoted value, more words mean prose.
    let mut after = end;
    while after < b.len() && (b[after] == b' ' || b[after] == b'\t') {
        after += 1;
    }
    let prose = colon
        && quote.is_none()
        && !header_line
        && after > end
        && at(after).is_ascii_alphanumeric();
    let take = match class {
        Class::Header => true,
        Class::Password | Class::Card => !prose || credential_like(v),
        // After `=` (query strings, form bodies, assignments) any value; in text, one that looks
        // like a credential.
        Class::Secret => !colon || credential_like(v),
        Class::Provider | Class::ProviderInWord => provider_value(class, v),
    };
    let f = take.then_some(Finding {
        start,
        end,
        rule: class.rule(),
    });
    Some((f, end))
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn every_rule_compiles() {
        for rule in RULES {
            compile(rule);
            assert!(!rule.literals.is_empty(), "{}", rule.id);
            for lit in rule.literals {
                assert_eq!(
                    *lit,
                    lit.to_ascii_lowercase(),
                    "{}: literals are lowercase",
                    rule.id
                );
            }
        }
        let mut ids: Vec<&str> = RULES.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n, "rule ids are unique");
        assert!(n >= 120, "{n} rules");
    }

    fn redact(s: &str) -> String {
        let cfg = Config::default();
        let f = find(s, &cfg, &mut || ());
        redact::apply(s, &f)
    }

    /// Every operator inside a value that was read and refused reads nothing again: the bytes
    /// read grow with the input, not with the number of operators in a value.
    #[test]
    fn a_refused_value_is_read_once() {
        let cfg = Config::default();
        let mut found = Vec::new();
        let s = "Cookie: <".repeat(2000);
        let b = s.as_bytes();
        let mut reads = 0usize;
        let mut resume = 0;
        for i in memchr::memchr2_iter(b'=', b':', b) {
            if i < resume {
                continue;
            }
            let (f, read_to) = assignment(b, i, &cfg);
            reads += read_to.saturating_sub(i);
            resume = read_to;
            found.extend(f);
        }
        assert!(reads <= 2 * b.len(), "{reads} bytes read for {}", b.len());
    }

    #[test]
    fn strings() {
        let cases = [
            (
                "upstream said: invalid key sk_live_51H8abcdefghijklmnop",
                "upstream said: invalid key sk_live_[REDACTED]",
            ),
            ("api_key=sk_live_51H8abcdefghijklmnop", "api_key=[REDACTED]"),
            (
                "postgres://app:S3cret@db/prod",
                "postgres://app:[REDACTED]@db/prod",
            ),
            ("https://user:pa55@host/", "https://user:[REDACTED]@host/"),
            (
                "client_secret=abc123xyz789&grant_type=client_credentials",
                "client_secret=[REDACTED]&grant_type=client_credentials",
            ),
            (
                "https://app.test/cb#access_token=ya29a0AfH6SMBx&state=1",
                "https://app.test/cb#access_token=[REDACTED]&state=1",
            ),
            ("api%5Fkey=abcdef123456", "api%5Fkey=[REDACTED]"),
            (
                "X-Api-Key: abcdef123456\r\nCookie: a=b; c=d\r\nAccept: */*",
                "X-Api-Key: [REDACTED]\r\nCookie: [REDACTED]\r\nAccept: */*",
            ),
            (
                "{\"password\": \"hunter2\", \"user\": \"bob\"}",
                "{\"password\": \"[REDACTED]\", \"user\": \"bob\"}",
            ),
            ("Bearer\tabcdefghijklmnop", "Bearer\t[REDACTED]"),
            (
                "Password: must be at least 8 characters",
                "Password: must be at least 8 characters",
            ),
            ("password=[REDACTED]", "password=[REDACTED]"),
            ("key AKIAIOSFODNN7EXAMPLE in use", "key [REDACTED] in use"),
            (
                "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            (
                "at 2024-05-01T12:30:00Z id=cus_NffrFeUfNV2Hib",
                "at 2024-05-01T12:30:00Z id=cus_NffrFeUfNV2Hib",
            ),
            (
                "https://a.test/login?next=https%3A%2F%2Fapp.test%2Fcb%3Faccess_token%3Dabc123xyz789%26state%3D1",
                "https://a.test/login?next=https%3A%2F%2Fapp.test%2Fcb%3Faccess_token%3D[REDACTED]%26state%3D1",
            ),
            (
                "https://a.test/?q=a%3Db%26page%3D2",
                "https://a.test/?q=a%3Db%26page%3D2",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "{input}");
        }
        assert_eq!(
            redact("credentials: alice:s3cr3t"),
            "credentials: [REDACTED]"
        );
        // Placeholders are whole ${VAR}, {name}, $NAME; a secret starting with $ or { is cut.
        for (input, want) in [
            ("DB_PASSWORD=$ecretPassw0rd", "DB_PASSWORD=[REDACTED]"),
            ("client_secret=$3cr3tV4lu3", "client_secret=[REDACTED]"),
            ("passwd={Xk9pL2qR7} ok", "passwd=[REDACTED] ok"),
            ("client_secret=${DB_SECRET}", "client_secret=${DB_SECRET}"),
            ("client_secret=$DB_SECRET", "client_secret=$DB_SECRET"),
            (
                "client_secret={client_secret}",
                "client_secret={client_secret}",
            ),
            (
                "Sending credentials: '{\"username\":\"bob\",\"password\":\"hunter2\"}'",
                "Sending credentials: '[REDACTED]'",
            ),
            (
                "GET /verify?token_hash=pkce_7f3a9c2b&type=email",
                "GET /verify?token_hash=[REDACTED]&type=email",
            ),
            (
                "password_digest: \"$2a$12$R9h/cIPz0gi.URNNX3kh2O\"",
                "password_digest: \"[REDACTED]\"",
            ),
        ] {
            assert_eq!(redact(input), want, "{input}");
        }
        assert_eq!(redact("token: 12:30 today"), "token: 12:30 today");
        // Values that end the string (a panic once: an index at the end).
        for s in [
            "password=",
            "client_secret={",
            "token: {",
            "x_api_key=$",
            "secret: '",
        ] {
            redact(s);
        }
        // A value is cut whole, however long: no tail is left past a bound.
        let long = "a1".repeat(400);
        assert_eq!(
            redact(&format!("password={long} ok")),
            "password=[REDACTED] ok"
        );
        assert_eq!(
            redact(&format!("Cookie: {}\r\nAccept: */*", "s=1; ".repeat(1200))),
            "Cookie: [REDACTED]\r\nAccept: */*"
        );
    }
}

#[cfg(test)]
mod corpus_dev {
    use super::*;

    /// The corpora without a server, for quick iteration on the rules (the measurement that
    /// counts is pgrx-tests/tests/redaction.rs, through SQL): `cargo test --lib
    /// --no-default-features --features "pg15 pg_test" -- --ignored corpus_dev --nocapture`
    /// prints every gitleaks sample missed and every ordinary value changed.
    #[test]
    #[ignore]
    fn gitleaks_misses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/redaction/gitleaks.json");
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let cfg = Config::default();
        let (mut n, mut ok) = (0, 0);
        for r in v.as_array().unwrap() {
            for p in r["positives"].as_array().unwrap() {
                let s = format!("upstream said: {}", p["sample"].as_str().unwrap());
                let secret = p["secret"].as_str().unwrap();
                let f = find(&s, &cfg, &mut || ());
                let out = redact::apply(&s, &f);
                n += 1;
                if out.contains(secret) {
                    println!("MISS {} {:?}", r["rule"], s);
                } else {
                    ok += 1;
                }
            }
        }
        println!(
            "{ok}/{n}; automaton {} bytes",
            compiled().automaton.memory_usage()
        );
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/redaction/ordinary.json");
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let (mut n, mut ok) = (0, 0);
        for o in v.as_array().unwrap() {
            let value = o["value"].as_str().unwrap();
            for s in [
                format!("upstream said: {value}"),
                value.to_string(),
                format!("id={value}"),
                format!("received: {value}"),
                format!("https://api.example.com/v1/items?ref={value}&page=2"),
            ] {
                n += 1;
                let f = find(&s, &cfg, &mut || ());
                if f.is_empty() {
                    ok += 1;
                } else {
                    println!("OVER {} {:?} -> {:?}", o["kind"], s, redact::apply(&s, &f));
                }
            }
        }
        println!("ordinary {ok}/{n}");
        // scripts/gitleaks-false-positives.py writes them (outside the tree).
        if let Some(t) =
            std::env::var_os("PGT_REDACTION_FPS").and_then(|p| std::fs::read_to_string(p).ok())
        {
            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
            let (mut n, mut ok) = (0, 0);
            for o in v.as_array().unwrap() {
                let s = o["text"].as_str().unwrap();
                n += 1;
                let f = find(s, &cfg, &mut || ());
                if f.is_empty() {
                    ok += 1;
                } else {
                    let rules: Vec<&str> = f.iter().map(|f| f.rule).collect();
                    println!(
                        "FP {} {:?} -> {:?} {:?}",
                        o["rule"],
                        s,
                        redact::apply(s, &f),
                        rules
                    );
                }
            }
            println!("fps {ok}/{n}");
        }
    }
}
