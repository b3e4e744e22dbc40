//! Request logging: `tenancy.log_request`, the one door into `tenancy.request_logs`.
//!
//! Every summary is redacted in Rust before anything is stored ([`redact`] says what a secret
//! is), walking the jsonb binary container with PostgreSQL's own iterator and building the
//! result with its builder: no JSON text, no recursion (a 1,000-level document is no harder than
//! a flat one), and a byte budget per summary (`tenancy.log_summary_max_bytes`) past which the rest
//! is cut and the root object says so (`"_truncated"`).
//!
//! The row is written as the caller, through a prepared statement kept per backend: RLS decides
//! who may log (the tenant's writers, API keys, service_role; append-only for everyone), the
//! composite foreign key (tenant, integration, action) that the action is that integration's and
//! both are the tenant's: the same check for every writer, not only for this function.
pub mod keywords;
pub mod names;
pub mod redact;
pub mod rules;
pub mod scan;

use crate::context;
use crate::error::{new_uuid, null_argument, raise};
use crate::gucs;
use crate::jsonb::{JsonbArg, JsonbDatum};
use crate::spi::KeptStatement;
use names::Class;
use scan::Config;

/// The roles that may log a request (the tenant's writers, and the service).
const LOGGERS: &[&str] = &["owner", "admin", "manager", "member", "api_key", "service"];
use pgrx::prelude::*;

/// A comma-separated string setting, as trimmed lowercase items.
fn list_setting(setting: &pgrx::GucSetting<Option<std::ffi::CString>>, dash: bool) -> Vec<String> {
    setting
        .get()
        .map(|s| {
            s.to_string_lossy()
                .split(',')
                .map(|k| {
                    let k = k.trim().to_ascii_lowercase();
                    if dash {
                        k.replace('-', "_")
                    } else {
                        k
                    }
                })
                .filter(|k| !k.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// What the redaction settings say now.
fn config() -> Config {
    Config {
        extra: list_setting(&gucs::REDACT_KEYS, true),
        disabled: list_setting(&gucs::REDACT_DISABLED_RULES, false),
        enabled: list_setting(&gucs::REDACT_ENABLED_RULES, false),
    }
}

fn jbv_string(s: &str) -> pg_sys::JsonbValue {
    // SAFETY: a zeroed union, then a palloc'd copy of the bytes (pnstrdup).
    unsafe {
        let mut v = pg_sys::JsonbValue {
            type_: pg_sys::jbvType::jbvString,
            val: std::mem::zeroed(),
        };
        v.val.string.len = s.len() as i32;
        v.val.string.val = pg_sys::pnstrdup(s.as_ptr().cast(), s.len());
        v
    }
}

/// The text of a jbvString (borrowed from the container), if it is UTF-8.
///
/// # Safety
/// `v` must be a valid JsonbValue whose string outlives `'a`.
unsafe fn jbv_str<'a>(v: &pg_sys::JsonbValue) -> Option<&'a str> {
    // SAFETY: the caller's; the union member is read only for a jbvString.
    unsafe {
        if v.type_ != pg_sys::jbvType::jbvString {
            return None;
        }
        let bytes =
            std::slice::from_raw_parts(v.val.string.val as *const u8, v.val.string.len as usize);
        std::str::from_utf8(bytes).ok()
    }
}

/// What a scalar costs against the budget.
///
/// # Safety
/// `v` must be a valid JsonbValue.
unsafe fn cost(v: &pg_sys::JsonbValue) -> usize {
    // SAFETY: the caller's; the union member is read only for a jbvString.
    unsafe {
        match v.type_ {
            pg_sys::jbvType::jbvString => v.val.string.len as usize + 2,
            _ => 8,
        }
    }
}

/// One redaction, as `tenancy.redact(…, explain => true)` shows it.
pub struct Redaction {
    /// Where: `$.headers."X-Api-Key"`, `$.items[2].note`.
    pub path: String,
    pub rule: &'static str,
    /// For a secret inside a string: where it started and how long it was, in characters.
    pub span: Option<(usize, usize)>,
}

struct Level {
    is_object: bool,
    /// In a `{"name": "<sensitive header>", "value": …}` pair, the value is a secret.
    name_class: Option<Class>,
    /// Elements seen so far (arrays).
    elements: usize,
    /// In a `["X-Auth-Token", "…"]` pair (an array in an array), the second element is a secret.
    pair_class: Option<Class>,
    /// The current key (objects), kept only when explaining.
    key: Option<String>,
    /// Keys of this object that were cut (`{"Bearer …": 1, "Bearer …": 2}`): the second and
    /// later get `#2`, `#3`, so that no two become one key and lose a value.
    cut_keys: usize,
}

/// What a name says about the value under it.
#[derive(Clone, Copy)]
enum Verdict {
    /// Scan the value like any other.
    Ordinary,
    /// The value is a secret, by its name.
    Named(Class),
    /// A field named `key`: a secret, unless its value is a name (`{"key": "page", "value": 2}`).
    KeyField,
}

impl Verdict {
    /// Whether a container under this name is replaced whole.
    fn hides_container(self) -> bool {
        matches!(self, Verdict::Named(c) if !c.by_value())
    }
}

/// The most redactions `explain` lists (one more is kept to say the list was cut), and the
/// longest path it shows, in bytes: what explain returns stays bounded whatever the document.
const EXPLAIN_MAX: usize = 1000;
const PATH_MAX: usize = 256;

/// Whether explain has room for one more redaction.
fn explain_room(ex: &[Redaction]) -> bool {
    ex.len() <= EXPLAIN_MAX
}

/// `"$"` and the steps to the value at the top of `levels`, at most [`PATH_MAX`] bytes (a
/// longer one ends with `…`).
fn path_of(levels: &[Level]) -> String {
    let mut p = path_in_full(levels);
    if p.len() > PATH_MAX {
        let mut end = PATH_MAX;
        while !p.is_char_boundary(end) {
            end -= 1;
        }
        p.truncate(end);
        p.push('…');
    }
    p
}

fn path_in_full(levels: &[Level]) -> String {
    let mut p = String::from("$");
    for l in levels {
        if l.is_object {
            if let Some(k) = &l.key {
                if !k.is_empty()
                    && k.chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    p.push('.');
                    p.push_str(k);
                } else {
                    p.push('.');
                    p.push_str(&serde_json::to_string(k).unwrap_or_default());
                }
            }
        } else {
            p.push_str(&format!("[{}]", l.elements.saturating_sub(1)));
        }
    }
    p
}

/// `input` with every secret replaced and everything past `budget` bytes cut; when `explain`
/// is given, every redaction is pushed onto it.
fn redact_jsonb(
    input: &JsonbArg,
    cfg: &Config,
    budget: usize,
    mut explain: Option<&mut Vec<Redaction>>,
) -> JsonbDatum {
    use pg_sys::JsonbIteratorToken::*;
    let container = input.container();
    let explaining = explain.is_some();
    // SAFETY: iterating a detoasted jsonb that lives for the call; every pushed scalar either
    // points into it or is a palloc'd copy; containers are opened and closed in pairs.
    unsafe {
        let mut it = pg_sys::JsonbIteratorInit(container.as_ptr() as *mut pg_sys::JsonbContainer);
        let mut state: *mut pg_sys::JsonbParseState = std::ptr::null_mut();
        let mut v: pg_sys::JsonbValue = std::mem::zeroed();
        let mut levels: Vec<Level> = Vec::new();
        let mut depth = 0usize; // the iterator's nesting
        let mut skip_to: Option<usize> = None; // skipping a redacted or cut container
        let mut pending: Option<(pg_sys::JsonbValue, Verdict)> = None; // a key and its verdict
        let mut used = 0usize;
        // What the string scanners read: a redacted string is charged its stored size, so the
        // input read is bounded apart (4 times the budget, 1 MB at least), and cut past it.
        let mut scanned = (0usize, budget.saturating_mul(4).max(1 << 20));
        let mut cut = false;
        let mut result: *mut pg_sys::JsonbValue = std::ptr::null_mut();
        let push = |state: &mut *mut pg_sys::JsonbParseState,
                    tok,
                    val: Option<&mut pg_sys::JsonbValue>| {
            pg_sys::pushJsonbValue(
                state,
                tok,
                val.map_or(std::ptr::null_mut(), |v| v as *mut _),
            )
        };
        let mut tokens = 0usize;
        loop {
            // Past the budget nothing more goes in: stop reading, close what is open (below).
            if cut {
                break;
            }
            tokens += 1;
            if tokens.is_multiple_of(1024) {
                pgrx::check_for_interrupts!();
            }
            let tok = pg_sys::JsonbIteratorNext(&mut it, &mut v, false);
            match tok {
                WJB_DONE => break,
                WJB_BEGIN_ARRAY | WJB_BEGIN_OBJECT => {
                    depth += 1;
                    if skip_to.is_some() {
                        continue;
                    }
                    // An element of an array: counted, and maybe the secret of a pair.
                    let mut verdict = Verdict::Ordinary;
                    if let Some(parent) = levels.last_mut() {
                        if !parent.is_object {
                            parent.elements += 1;
                            if let (2, Some(c)) = (parent.elements, parent.pair_class) {
                                verdict = Verdict::Named(c);
                            }
                        }
                    }
                    let key = pending.take();
                    if let Some((_, Verdict::Named(c))) = key {
                        verdict = Verdict::Named(c);
                    }
                    if verdict.hides_container() {
                        // A secret's value: the whole container becomes the marker.
                        let key_len = key.as_ref().map_or(0, |(k, _)| k.val.string.len as usize);
                        let need = key_len + redact::MARK.len();
                        if !cut && used + need <= budget {
                            used += need;
                            if let Some((mut k, _)) = key {
                                push(&mut state, WJB_KEY, Some(&mut k));
                                push(&mut state, WJB_VALUE, Some(&mut jbv_string(redact::MARK)));
                            } else {
                                push(&mut state, WJB_ELEM, Some(&mut jbv_string(redact::MARK)));
                            }
                            if let (Some(ex), Verdict::Named(c)) = (
                                explain.as_deref_mut().filter(|ex| explain_room(ex)),
                                verdict,
                            ) {
                                ex.push(Redaction {
                                    path: path_of(&levels),
                                    rule: c.rule(),
                                    span: None,
                                });
                            }
                        } else {
                            cut = true;
                        }
                        skip_to = Some(depth - 1);
                        continue;
                    }
                    let need = key.as_ref().map_or(0, |(k, _)| k.val.string.len as usize) + 2;
                    if cut || (depth > 1 && used + need > budget) {
                        cut = true;
                        skip_to = Some(depth - 1);
                        continue;
                    }
                    used += need;
                    if let Some((mut k, _)) = key {
                        push(&mut state, WJB_KEY, Some(&mut k));
                    }
                    push(&mut state, tok, Some(&mut v));
                    levels.push(Level {
                        is_object: tok == WJB_BEGIN_OBJECT,
                        name_class: None,
                        elements: 0,
                        pair_class: None,
                        key: None,
                        cut_keys: 0,
                    });
                }
                WJB_END_ARRAY | WJB_END_OBJECT => {
                    depth -= 1;
                    if let Some(d) = skip_to {
                        if depth == d {
                            skip_to = None;
                        }
                        continue;
                    }
                    levels.pop();
                    result = push(&mut state, tok, None);
                }
                WJB_KEY => {
                    if skip_to.is_some() {
                        continue;
                    }
                    let name = jbv_str(&v).unwrap_or("");
                    let level = levels.last_mut();
                    let in_pair = level
                        .as_ref()
                        .and_then(|l| l.name_class)
                        .filter(|_| name.eq_ignore_ascii_case("value"));
                    if let Some(l) = level {
                        if explaining {
                            l.key = Some(name.to_string());
                        }
                    }
                    let class = in_pair.or_else(|| names::classify(name, &cfg.extra));
                    let verdict = match class {
                        Some(_) if in_pair.is_none() && name.eq_ignore_ascii_case("key") => {
                            if cfg.on(Class::Secret.rule()) {
                                Verdict::KeyField
                            } else {
                                Verdict::Ordinary
                            }
                        }
                        Some(c) if cfg.on(c.rule()) => Verdict::Named(c),
                        _ => Verdict::Ordinary,
                    };
                    // A key may itself be a secret (a token used as a map key): a key that could
                    // hold one (16 bytes or more, or with `=`, `:` or a blank) is scanned like a
                    // string, and charged to what the scanners may read.
                    let mut key = v;
                    if name.len() >= 16 || name.bytes().any(|c| matches!(c, b'=' | b':' | b' ')) {
                        scanned.0 += name.len();
                        if scanned.0 > scanned.1 {
                            cut = true;
                        } else if let Some((r, found)) =
                            redact::redact_string(name, cfg, &mut || {
                                pgrx::check_for_interrupts!();
                            })
                        {
                            let mut r = r;
                            if let Some(l) = levels.last_mut() {
                                l.cut_keys += 1;
                                if l.cut_keys > 1 {
                                    r = format!("{r}#{}", l.cut_keys);
                                }
                                if explaining {
                                    l.key = Some(r.clone()); // the path shows the key as stored
                                }
                            }
                            if let Some(ex) = explain.as_deref_mut() {
                                for f in &found {
                                    if !explain_room(ex) {
                                        break;
                                    }
                                    ex.push(Redaction {
                                        path: format!("{} (the key)", path_of(&levels)),
                                        rule: f.rule,
                                        span: Some((
                                            name[..f.start].chars().count(),
                                            name[f.start..f.end].chars().count(),
                                        )),
                                    });
                                }
                            }
                            key = jbv_string(&r);
                        }
                    }
                    pending = Some((key, verdict));
                }
                WJB_VALUE => {
                    if skip_to.is_some() {
                        continue;
                    }
                    let Some((mut k, verdict)) = pending.take() else {
                        continue;
                    };
                    let key = jbv_str(&k).unwrap_or("");
                    if key.eq_ignore_ascii_case("name") || key.eq_ignore_ascii_case("key") {
                        let class = jbv_str(&v).and_then(|h| names::classify(h, &cfg.extra));
                        if let (Some(l), Some(c)) = (levels.last_mut(), class) {
                            if cfg.on(c.rule()) && !c.by_value() {
                                l.name_class = Some(c);
                            }
                        }
                    }
                    let Some(mut out) = admit(
                        &v,
                        verdict,
                        k.val.string.len as usize,
                        &mut used,
                        budget,
                        &mut cut,
                        &mut scanned,
                        cfg,
                        &levels,
                        explain.as_deref_mut(),
                    ) else {
                        continue;
                    };
                    push(&mut state, WJB_KEY, Some(&mut k));
                    push(&mut state, WJB_VALUE, Some(&mut out));
                }
                WJB_ELEM => {
                    if skip_to.is_some() {
                        continue;
                    }
                    let mut verdict = Verdict::Ordinary;
                    let in_pair_list = levels.len() >= 2 && !levels[levels.len() - 2].is_object;
                    if let Some(l) = levels.last_mut() {
                        l.elements += 1;
                        if l.elements == 1 && in_pair_list {
                            let class = jbv_str(&v).and_then(|h| names::classify(h, &cfg.extra));
                            l.pair_class = class.filter(|c| cfg.on(c.rule()) && !c.by_value());
                        } else if l.elements == 2 {
                            if let Some(c) = l.pair_class {
                                verdict = Verdict::Named(c);
                            }
                        }
                    }
                    // A scalar document (an array of one "raw scalar") is never cut.
                    let limit = if depth > 1 { budget } else { usize::MAX };
                    let Some(mut out) = admit(
                        &v,
                        verdict,
                        0,
                        &mut used,
                        limit,
                        &mut cut,
                        &mut scanned,
                        cfg,
                        &levels,
                        explain.as_deref_mut(),
                    ) else {
                        continue;
                    };
                    push(&mut state, WJB_ELEM, Some(&mut out));
                }
                _ => {}
            }
        }
        // Cut: close every container still open, innermost first; the root object says so.
        while let Some(level) = levels.pop() {
            if levels.is_empty() && level.is_object {
                let mut k = jbv_string("_truncated");
                let mut note = jbv_string(&format!(
                    "cut at {budget} bytes (tenancy.log_summary_max_bytes); the input had {} bytes",
                    container.len()
                ));
                push(&mut state, WJB_KEY, Some(&mut k));
                push(&mut state, WJB_VALUE, Some(&mut note));
            }
            let end = if level.is_object {
                WJB_END_OBJECT
            } else {
                WJB_END_ARRAY
            };
            result = push(&mut state, end, None);
        }
        JsonbDatum::from_value(result)
    }
}

/// Whether a scalar under a name with this verdict is replaced whole.
///
/// # Safety
/// `v` must be a valid JsonbValue.
unsafe fn named_secret(v: &pg_sys::JsonbValue, verdict: Verdict) -> bool {
    let class = match verdict {
        Verdict::Ordinary => return false,
        Verdict::Named(class) => class,
        Verdict::KeyField => {
            // SAFETY: the caller's.
            return unsafe { jbv_str(v) }.is_some_and(|s| {
                !s.bytes()
                    .all(|c| c.is_ascii_alphabetic() || b"_.-".contains(&c))
                    || s.len() > 64
            });
        }
    };
    // SAFETY: the caller's.
    match (class, v.type_, unsafe { jbv_str(v) }) {
        // No secret is a boolean or a null.
        (_, pg_sys::jbvType::jbvBool | pg_sys::jbvType::jbvNull, _) => false,
        (c, _, Some(s)) if c.by_value() => scan::provider_value(c, s.as_bytes()),
        (c, _, None) if c.by_value() => false,
        _ => true,
    }
}

/// What goes in for a scalar after `key_len` bytes of key: the marker if its name says it is a
/// secret, else the scalar with the secrets inside its string replaced; counted against the
/// budget (`limit`).  The first value that does not fit ends the document (`cut`); if it is a
/// long string, its start goes in: cut first, at a word boundary, and only then redacted, so the
/// work done is bounded by the budget, not by the input.  `None` if nothing of it goes in.
#[allow(clippy::too_many_arguments)]
unsafe fn admit(
    v: &pg_sys::JsonbValue,
    verdict: Verdict,
    key_len: usize,
    used: &mut usize,
    limit: usize,
    cut: &mut bool,
    scanned: &mut (usize, usize),
    cfg: &Config,
    levels: &[Level],
    mut explain: Option<&mut Vec<Redaction>>,
) -> Option<pg_sys::JsonbValue> {
    const CUT: &str = "…[cut]";
    if *cut {
        return None;
    }
    let room = limit.saturating_sub(used.saturating_add(key_len));
    // SAFETY: `v` is a scalar of the document being walked.
    if let Some(s) = unsafe { jbv_str(v) } {
        scanned.0 += s.len().min(room);
        if scanned.0 > scanned.1 {
            *cut = true;
            return None;
        }
    }
    let mut tick = || {
        pgrx::check_for_interrupts!();
    };
    let mut note = |s: &str, found: &[scan::Finding]| {
        if let Some(ex) = explain.as_deref_mut() {
            // Character offsets, counted once along the string.
            let (mut chars, mut at) = (0usize, 0usize);
            for f in found {
                if !explain_room(ex) {
                    break;
                }
                chars += s[at..f.start].chars().count();
                let len = s[f.start..f.end].chars().count();
                ex.push(Redaction {
                    path: path_of(levels),
                    rule: f.rule,
                    span: Some((chars, len)),
                });
                chars += len;
                at = f.end;
            }
        }
    };
    // SAFETY: `v` is a scalar of the document being walked, alive for this call.
    let out = unsafe {
        match (named_secret(v, verdict), jbv_str(v)) {
            (true, _) => {
                if let (Some(ex), Verdict::Named(c)) =
                    (explain.as_mut().filter(|ex| explain_room(ex)), verdict)
                {
                    ex.push(Redaction {
                        path: path_of(levels),
                        rule: c.rule(),
                        span: None,
                    });
                }
                jbv_string(redact::MARK)
            }
            (false, Some(s)) if s.len() + 2 > room => {
                *cut = true;
                let keep = room.checked_sub(CUT.len() + 2).filter(|k| *k >= 32)?;
                let head = redact::whole_word_prefix(s, keep);
                if head.is_empty() {
                    return None;
                }
                let mut kept = match redact::redact_string(head, cfg, &mut tick) {
                    Some((r, found)) => {
                        note(head, &found);
                        r
                    }
                    None => head.to_string(),
                };
                // A marker may have made it longer than `keep` again.
                let mut end = kept.len().min(keep);
                while !kept.is_char_boundary(end) {
                    end -= 1;
                }
                kept.truncate(end);
                kept.push_str(CUT);
                jbv_string(&kept)
            }
            (false, Some(s)) => match redact::redact_string(s, cfg, &mut tick) {
                Some((redacted, found)) => {
                    note(s, &found);
                    jbv_string(&redacted)
                }
                None => *v,
            },
            (false, None) => *v,
        }
    };
    // SAFETY: `out` is `v` or a value just built.
    let need = unsafe { cost(&out) };
    if need > room {
        *cut = true;
        return None;
    }
    *used += key_len + need;
    Some(out)
}

const INSERT_SQL: &str = "INSERT INTO tenancy.request_logs
        (tenant_id, id, integration_id, action_id, api_key_id, request_summary, response_summary,
         status_code, latency_ms, retry_count, error)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

thread_local! {
    static INSERT: KeptStatement = const {
        KeptStatement::new(
            INSERT_SQL,
            &[
                pg_sys::UUIDOID,
                pg_sys::UUIDOID,
                pg_sys::UUIDOID,
                pg_sys::UUIDOID,
                pg_sys::UUIDOID,
                pg_sys::JSONBOID,
                pg_sys::JSONBOID,
                pg_sys::INT4OID,
                pg_sys::INT4OID,
                pg_sys::INT4OID,
                pg_sys::JSONBOID,
            ],
        )
    };
}

fn invalid(message: &str) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        message,
        None,
    )
}

/// Log one request of an action of an integration of the current tenant and return the row's id.
/// `request` and `response` are JSON objects (summaries: method, URL, headers, body…); `error`
/// any JSON.  Secrets are redacted and each summary is capped before anything is stored.  The
/// tenant (and the API key, when the context came from one) come from the context.
#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile, parallel_unsafe)]
pub fn log_request(
    integration_id: Option<pgrx::Uuid>,
    action_id: Option<pgrx::Uuid>,
    request: Option<JsonbArg>,
    response: default!(Option<JsonbArg>, "NULL"),
    status_code: default!(Option<i32>, "NULL"),
    latency_ms: default!(Option<i32>, "0"),
    retry_count: default!(Option<i32>, "0"),
    error: default!(Option<JsonbArg>, "NULL"),
) -> pgrx::Uuid {
    let integration_id = integration_id.unwrap_or_else(|| null_argument("integration_id"));
    let action_id = action_id.unwrap_or_else(|| null_argument("action_id"));
    let request = request.unwrap_or_else(|| null_argument("request"));
    if !request.is_object() {
        invalid("request must be a JSON object");
    }
    if response.as_ref().is_some_and(|r| !r.is_object()) {
        invalid("response must be a JSON object (or NULL)");
    }
    if status_code.is_some_and(|s| !(100..=599).contains(&s)) {
        invalid("status_code must be an HTTP status, 100-599 (or NULL)");
    }
    let latency_ms = latency_ms.unwrap_or(0);
    let retry_count = retry_count.unwrap_or(0);
    if latency_ms < 0 || retry_count < 0 {
        invalid("latency_ms and retry_count must not be negative");
    }
    // Tenant, role and API key from one read of the context.  The row is written with the
    // extension's privileges (no application role may insert into request_logs: this function
    // is the one door), so the checks RLS made are made here: a writer of the tenant.
    let ctx = context::current();
    let tenant = context::tenant_of_roles(&ctx, LOGGERS, || {
        "permission denied to log requests: only a tenant's writers (owner, admin, manager, member, an API key) or service_role may".to_string()
    });
    let cfg = config();
    let budget = gucs::LOG_SUMMARY_MAX_BYTES.get().max(256) as usize;
    let request = redact_jsonb(&request, &cfg, budget, None);
    let response = response.map(|r| redact_jsonb(&r, &cfg, budget, None));
    let error = error.map(|e| redact_jsonb(&e, &cfg, budget, None));
    let id = new_uuid();
    let args = [
        tenant.into(),
        id.into(),
        integration_id.into(),
        action_id.into(),
        ctx.api_key.into(),
        request.into(),
        response.into(),
        status_code.into(),
        latency_ms.into(),
        retry_count.into(),
        error.into(),
    ];
    crate::superuser::as_extension(|| {
        INSERT.with(|insert| insert.execute(&args, "logging the request"))
    });
    id
}

/// For tests and for callers who want to see what would be stored: `value` redacted and capped
/// exactly as `log_request` stores a summary.
#[pg_extern(stable, parallel_safe)]
pub fn redact(value: JsonbArg) -> JsonbDatum {
    let budget = gucs::LOG_SUMMARY_MAX_BYTES.get().max(256) as usize;
    redact_jsonb(&value, &config(), budget, None)
}

/// `tenancy.redact(value, explain => true)`: `{"redacted": <what would be stored>,
/// "redactions": [{"path", "rule", "at", "length"}…]}`, one entry per value cut out (`at` and
/// `length` in characters, for a secret inside a string), so an operator can see why.  With
/// `explain => false`, what `redact(value)` returns.
#[pg_extern(stable, parallel_safe, name = "redact")]
pub fn redact_explain(value: JsonbArg, explain: bool) -> JsonbDatum {
    let budget = gucs::LOG_SUMMARY_MAX_BYTES.get().max(256) as usize;
    let cfg = config();
    if !explain {
        return redact_jsonb(&value, &cfg, budget, None);
    }
    let mut found = Vec::new();
    let redacted = redact_jsonb(&value, &cfg, budget, Some(&mut found));
    let more = found.len() > EXPLAIN_MAX;
    found.truncate(EXPLAIN_MAX);
    let list: Vec<serde_json::Value> = found
        .into_iter()
        .map(|r| {
            let mut o = serde_json::json!({"path": r.path, "rule": r.rule});
            if let Some((at, len)) = r.span {
                o["at"] = at.into();
                o["length"] = len.into();
            }
            o
        })
        .collect();
    let list = crate::jsonb::from_text(&serde_json::Value::Array(list).to_string());
    let mut out = crate::jsonb::ObjectBuilder::new();
    out.container("redacted", redacted.container());
    out.container("redactions", list.container());
    if more {
        out.container(
            "redactions_cut",
            crate::jsonb::from_text(&format!("\"only the first {EXPLAIN_MAX} are listed\""))
                .container(),
        );
    }
    out.finish()
}

/// Every redaction rule: its id (what `explain` reports and `tenancy.redact_disabled_rules`
/// names), its kind (`name`: a key or parameter name; `provider`: a token format;
/// `built-in`: schemes, API keys, JSON Web Tokens; `opt-in`: personal data, off unless
/// `tenancy.redact_enabled_rules` names it), its category, and whether it is applied now.
#[pg_extern(stable, parallel_safe)]
pub fn redaction_rules() -> TableIterator<
    'static,
    (
        name!(rule, String),
        name!(kind, String),
        name!(category, String),
        name!(enabled, bool),
    ),
> {
    let cfg = config();
    let mut rows = Vec::new();
    for c in Class::RULES {
        rows.push((
            c.rule().to_string(),
            "name".to_string(),
            "generic".to_string(),
            cfg.on(c.rule()),
        ));
    }
    for (id, cat) in rules::BUILT_IN {
        rows.push((
            id.to_string(),
            "built-in".to_string(),
            cat.to_string(),
            cfg.on(id),
        ));
    }
    for r in rules::RULES {
        rows.push((
            r.id.to_string(),
            "provider".to_string(),
            r.category.to_string(),
            cfg.on(r.id),
        ));
    }
    for (id, _) in rules::OPT_IN {
        rows.push((
            id.to_string(),
            "opt-in".to_string(),
            "pii".to_string(),
            cfg.opted_in(id),
        ));
    }
    TableIterator::new(rows)
}

/// Lock class of the request-log maintenance lock (`objsubid = 29811` in `pg_locks`).
const MAINTENANCE_LOCK_CLASS: u16 = 0x7473;

/// One `tenancy.maintain_request_logs()` at a time: a transaction lock of the extension's own
/// class, which SQL's `pg_advisory_lock()` cannot take (so no role can hold maintenance up by
/// taking it first).  Internal: no role is granted it.
#[pg_extern(volatile, parallel_unsafe)]
fn _lock_request_log_maintenance() {
    crate::advisory::advisory_xact_lock(
        MAINTENANCE_LOCK_CLASS,
        &pgrx::Uuid::from_bytes([0; 16]),
        true,
        true,
    );
}
