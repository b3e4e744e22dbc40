//! What `pre_request` calls when `tenancy.jwt_secret` is set, and `tenancy.jwt_keys()`: the
//! setting parsed once per backend per distinct value, the verified-token cache ([`super::cache`]),
//! the settings of the moment (`tenancy.jwt_aud`, `tenancy.jwt_iss`, `tenancy.jwt_cache_entries`),
//! and the SQLSTATEs: 28000 for a token that is refused, 55000 for a setting that cannot be used.
//!
//! Rotation takes effect without a restart: a new value of `tenancy.jwt_secret` (the configuration
//! file or `ALTER SYSTEM` and a reload, or a `SET` by a superuser) differs from the one parsed,
//! so the next `pre_request` parses it and empties the token cache (docs/security.md, "Rotating
//! JWT signing keys").
use super::cache::{Digest, TokenCache};
use super::keys::{self, KeySet};
use super::{check_claims, verify_signature, Expected, Refusal, Verified};
use crate::error::raise;
use crate::gucs;
use pgrx::prelude::*;
use sha2::{Digest as _, Sha256};
use std::cell::RefCell;
use std::ffi::CStr;
use std::rc::Rc;
use zeroize::Zeroizing;

#[derive(Default)]
struct State {
    /// The value of `tenancy.jwt_secret` that `keys` was parsed from (it may hold a secret).
    setting: Zeroizing<Vec<u8>>,
    keys: Option<Rc<KeySet>>,
    tokens: TokenCache,
    hits: u64,
    misses: u64,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::default();
}

/// Set when this session's database or role settings tried to give `tenancy.jwt_secret` secret
/// key material (see [`check_jwt_secret`]): `pre_request` then refuses every request.
static EXPOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether `pre_request` verifies tokens: `tenancy.jwt_secret` is set and not empty (an empty
/// value turns verification off).  55000 when the session's database or role settings held a
/// secret: it was refused (so as not to use a key every role can read), and falling back to
/// trusting `request.jwt.claims` instead would hand the context to anyone who writes them.
pub fn configured() -> bool {
    if EXPOSED.load(std::sync::atomic::Ordering::Relaxed) {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "tenancy.jwt_secret was set with ALTER DATABASE/ROLE ... SET and holds secret key material: it is refused, and so is every request",
            Some("Every role can read those settings in pg_db_role_setting: remove it there (ALTER DATABASE/ROLE ... RESET), rotate the secret, set the new one in a file included from postgresql.conf, and reconnect."),
        );
    }
    gucs::with_value(&gucs::JWT_SECRET, |s| !s.is_empty())
}

/// The check hook of `tenancy.jwt_secret`.  `ALTER DATABASE/ROLE ... SET` (and `CREATE FUNCTION
/// ... SET`) store their values in catalogs every role can read (`pg_db_role_setting`,
/// `pg_proc.proconfig`), and an HS256 secret or a private key there lets anyone sign tokens.
/// So a value holding secret material ([`keys::holds_secret`]) is refused when such a command
/// validates it (`PGC_S_TEST`), and when a session applies one that was stored before this check
/// existed (the database and role sources), which also marks the session so that `pre_request`
/// refuses rather than falling back to trusted claims.  Public keys (a JWKS of EC, RSA and OKP
/// keys) may be stored there.  The message never shows the value.
#[pg_guard]
pub unsafe extern "C-unwind" fn check_jwt_secret(
    newval: *mut *mut std::ffi::c_char,
    _extra: *mut *mut std::ffi::c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    use pg_sys::GucSource::*;
    let catalog = matches!(
        source,
        PGC_S_GLOBAL | PGC_S_DATABASE | PGC_S_USER | PGC_S_DATABASE_USER
    );
    if source != PGC_S_TEST && !catalog {
        return true;
    }
    // SAFETY: the proposed value, a NUL-terminated string or NULL, for the hook's duration.
    let value = unsafe { *newval };
    if value.is_null() {
        return true;
    }
    // SAFETY: non-NULL (above).
    let bytes = unsafe { CStr::from_ptr(value) }.to_bytes();
    if bytes.is_empty() || !keys::holds_secret(bytes) {
        return true;
    }
    if catalog {
        EXPOSED.store(true, std::sync::atomic::Ordering::Relaxed);
    } else {
        // The refused statement (ALTER ... SET with the secret in it) would be logged with the
        // error (log_min_error_statement): the server log keeps the error, not the statement.
        forget_statement();
    }
    // SAFETY: PostgreSQL reads these (palloc'd) strings to report the refusal, instead of its
    // default message, which would quote the value.
    unsafe {
        pg_sys::GUC_check_errmsg_string = pg_sys::pstrdup(
            c"tenancy.jwt_secret holds secret key material, which ALTER DATABASE/ROLE ... SET would show to every role".as_ptr(),
        );
        pg_sys::GUC_check_errdetail_string = pg_sys::pstrdup(
            c"Those settings are stored in pg_db_role_setting (and function settings in pg_proc), which every role can read.".as_ptr(),
        );
        pg_sys::GUC_check_errhint_string = pg_sys::pstrdup(
            c"Set it in a file included from postgresql.conf; a secret that was stored this way must be rotated.".as_ptr(),
        );
    }
    false
}

fn unusable(e: keys::ConfigError) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        e.0,
        Some("tenancy.jwt_keys(value) checks a value before it is set."),
    )
}

fn refuse(why: Refusal) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
        format!("invalid JWT: {why}"),
        None,
    )
}

/// The keys of the current `tenancy.jwt_secret`, parsed when it differs from the last value
/// parsed (the token cache is then emptied: the keys changed).
fn current_keys(state: &mut State) -> Result<Rc<KeySet>, keys::ConfigError> {
    gucs::with_value(&gucs::JWT_SECRET, |raw| {
        if let Some(keys) = &state.keys {
            if state.setting.as_slice() == raw {
                return Ok(keys.clone());
            }
        }
        let text = std::str::from_utf8(raw)
            .map_err(|_| keys::ConfigError("tenancy.jwt_secret is not valid UTF-8".into()))?;
        let parsed = Rc::new(keys::parse(text)?);
        state.setting = Zeroizing::new(raw.to_vec());
        state.keys = Some(parsed.clone());
        state.tokens.clear();
        Ok(parsed)
    })
}

fn nonempty(s: &[u8]) -> Option<&str> {
    std::str::from_utf8(s).ok().filter(|s| !s.is_empty())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// What `token` says, verified under `tenancy.jwt_secret` and checked as
/// [`check_claims`] does: 28000 if the token is refused, 55000 if the setting cannot be used.
/// Nothing of the token reaches a message.
pub fn verified_claims(token: &str) -> Rc<Verified> {
    let now = unix_now();
    let capacity = gucs::JWT_CACHE_ENTRIES.get().max(0) as usize;
    let outcome = gucs::with_value(&gucs::JWT_AUD, |aud| {
        gucs::with_value(&gucs::JWT_ISS, |iss| {
            let expected = Expected {
                aud: nonempty(aud),
                iss: nonempty(iss),
            };
            STATE.with_borrow_mut(|state| verify_cached(state, token, now, expected, capacity))
        })
    });
    match outcome {
        Ok(Ok(payload)) => payload,
        Ok(Err(refusal)) => refuse(refusal),
        Err(config) => unusable(config),
    }
}

fn verify_cached(
    state: &mut State,
    token: &str,
    now: i64,
    expected: Expected,
    capacity: usize,
) -> Result<Result<Rc<Verified>, Refusal>, keys::ConfigError> {
    let keys = current_keys(state)?;
    // With the cache off, no digest either.
    let digest: Option<Digest> = (capacity > 0).then(|| Sha256::digest(token.as_bytes()).into());
    if let Some(verified) = digest.and_then(|d| state.tokens.get(&d, now)) {
        state.hits += 1;
        return Ok(verified.claims.check(now, expected).map(|()| verified));
    }
    state.misses += 1;
    Ok(verify_signature(token, &keys).and_then(|payload| {
        let claims = check_claims(&payload, now, expected)?;
        let verified = Rc::new(Verified::new(&payload, claims));
        if let Some(d) = digest {
            state.tokens.insert(d, verified.clone(), capacity, now);
        }
        Ok(verified)
    }))
}

/// Keep the current statement's text out of the server log's report of the error about to be
/// raised: PostgreSQL logs it (`STATEMENT:`) only while `debug_query_string` is set, and sets it
/// again when the next statement starts.  For statements that carry a secret we refuse.
fn forget_statement() {
    // SAFETY: a plain global of the backend, which PostgreSQL itself sets to NULL between
    // statements; nothing holds the old pointer on our side.
    unsafe {
        pg_sys::debug_query_string = std::ptr::null();
    }
}

/// `SHOW tenancy.jwt_secret` and `current_setting()`: never the value.  Superusers and members of
/// `pg_read_all_settings` (`pg_monitor` among them) may run them; the keys are read in place by
/// [`verified_claims`], not through SHOW.
#[pg_guard]
pub unsafe extern "C-unwind" fn show_jwt_secret() -> *const std::ffi::c_char {
    if gucs::with_value(&gucs::JWT_SECRET, |s| s.is_empty()) {
        c"".as_ptr()
    } else {
        c"(set; see tenancy.jwt_keys())".as_ptr()
    }
}

/// For `tenancy.library_info()`: this backend's token cache.
pub fn cache_info() -> serde_json::Value {
    STATE.with_borrow(|s| {
        serde_json::json!({
            "entries": s.tokens.len(),
            "hits": s.hits,
            "misses": s.misses,
        })
    })
}

/// The keys of `tenancy.jwt_secret` (or of `setting`, to check a value before setting it): one
/// row per key, the ones used and the ones skipped with why.  55000 when the value cannot be
/// used, and then the server log keeps the error but not the statement that carried the value.
/// Never any key material; superuser only (no grant).
#[pg_extern(stable, parallel_unsafe)]
#[allow(clippy::type_complexity)]
fn jwt_keys(
    setting: default!(Option<&str>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(position, i32),
        name!(kid, Option<String>),
        name!(kty, String),
        name!(alg, Option<String>),
        name!(bits, Option<i32>),
        name!(used, bool),
        name!(note, Option<String>),
    ),
> {
    let parsed = match setting {
        Some(value) => keys::parse(value).map(Rc::new),
        None => {
            if !configured() {
                return TableIterator::new(Vec::new());
            }
            STATE.with_borrow_mut(current_keys)
        }
    };
    let set = parsed.unwrap_or_else(|e| {
        if setting.is_some() {
            // The value may be a secret: the log keeps the error, not the statement.
            forget_statement();
        }
        unusable(e)
    });
    let note = (set.form == keys::Form::Secret).then(|| "a secret string (HS256)".to_string());
    let mut rows: Vec<_> = set
        .keys
        .iter()
        .map(|k| {
            (
                k.position as i32,
                k.kid.clone(),
                k.kty.to_string(),
                Some(k.alg.name().to_string()),
                Some(k.bits as i32),
                true,
                note.clone(),
            )
        })
        .chain(set.skipped.iter().map(|s| {
            (
                s.index as i32,
                s.kid.clone(),
                s.kty.clone(),
                None,
                None,
                false,
                Some(s.why.to_string()),
            )
        }))
        .collect();
    rows.sort_by_key(|r| r.0);
    TableIterator::new(rows)
}
