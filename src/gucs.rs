//! Every GUC of pg_tenancy, in one place.
//!
//! The tenant-context GUCs are `PGC_SUSET`: an ordinary role gets "permission denied" for `SET`,
//! `SET LOCAL`, `set_config(...)` and `RESET` on them, so it cannot forge a context.  Only the
//! functions of [`crate::context`] set them, transaction-locally, after checking who asks.  They are
//! defined in `_PG_init`, which must run at server start (`shared_preload_libraries`): a library
//! loaded later in a session could find a user-created placeholder of the same name.
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use std::ffi::CString;

/// `tenancy.context`: the tenant context of the current transaction, `<tenant>,<user>,<role>`
/// (each part may be empty).  One setting rather than three because setting a GUC costs about a
/// microsecond and `pre_request` runs for every request: one write per context change, none when
/// the context does not change.  Read it with the `tenancy.current_*()` functions.
pub static CONTEXT: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

pub const CONTEXT_NAME: &std::ffi::CStr = c"tenancy.context";

/// `tenancy.citus_context`: on Citus, the signed copy of the context that the coordinator sends
/// to the workers (`crate::citus`).  Any role may set it (Citus replays a `SET LOCAL` on the
/// workers as the role that ran it), but a worker accepts only a value pg_tenancy signed for
/// this role, database and coordinator backend, and the coordinator refuses every `SET` of it
/// but pg_tenancy's own.
pub static CITUS_CONTEXT: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

pub const CITUS_CONTEXT_NAME: &std::ffi::CStr = c"tenancy.citus_context";

/// `tenancy.keyring_file`: path of the root keyring (mode 0600, outside the data directory).
pub static KEYRING_FILE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// `tenancy.keyring_command`: a command whose output is the root keyring.
pub static KEYRING_COMMAND: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// A string setting defined with a check hook, which pgrx's registry cannot take: the address
/// the GUC machinery writes the value's pointer to.
pub struct HookedString(std::cell::UnsafeCell<*mut std::ffi::c_char>);

// SAFETY: a backend is single-threaded, and only the GUC machinery writes the cell.
unsafe impl Sync for HookedString {}

impl HookedString {
    const fn new() -> HookedString {
        HookedString(std::cell::UnsafeCell::new(std::ptr::null_mut()))
    }

    pub fn as_ptr(&self) -> *mut *mut std::ffi::c_char {
        self.0.get()
    }
}

/// `tenancy.jwt_secret`: when set, `pre_request` takes the claims from the request's own token
/// (verified under this secret, JWK or JWKS: src/jwt/keys.rs) instead of trusting
/// `request.jwt.claims`.  Its check hook ([`crate::jwt::backend::check_jwt_secret`]) keeps secret
/// key material out of `ALTER DATABASE/ROLE ... SET`, whose values every role can read.
pub static JWT_SECRET: HookedString = HookedString::new();

/// `tenancy.jwt_aud`, `tenancy.jwt_iss`: when set (and a secret is), a verified token must carry
/// this audience among its `aud` and this issuer as its `iss` (PostgREST's `jwt-aud`).
pub static JWT_AUD: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static JWT_ISS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// `tenancy.jwt_cache_entries`: how many verified tokens each backend remembers (src/jwt/cache.rs).
pub static JWT_CACHE_ENTRIES: GucSetting<i32> = GucSetting::<i32>::new(1000);
/// `tenancy.schema_cache_entries`: how many compiled JSON Schemas each backend keeps
/// (src/actions/schema.rs).
pub static SCHEMA_CACHE_ENTRIES: GucSetting<i32> = GucSetting::<i32>::new(256);

/// `tenancy.redact_keys`: extra key substrings (comma-separated) whose values request logs
/// redact, on top of the built-in list (src/request_log/redact.rs).  It can only add.
pub static REDACT_KEYS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// `tenancy.redact_disabled_rules`: rule ids (comma-separated) request logs do not apply
/// (`tenancy.redaction_rules()` lists them).
pub static REDACT_DISABLED_RULES: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);
/// `tenancy.redact_enabled_rules`: opt-in rule ids (comma-separated) request logs apply
/// (personal data: `pii-card-number`).
pub static REDACT_ENABLED_RULES: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);
/// `tenancy.log_summary_max_bytes`: the most a logged summary keeps; the rest is cut, and said so.
pub static LOG_SUMMARY_MAX_BYTES: GucSetting<i32> = GucSetting::<i32>::new(16384);

/// True once `_PG_init` ran during `shared_preload_libraries` processing.
static PRELOADED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn preloaded() -> bool {
    PRELOADED.load(std::sync::atomic::Ordering::Relaxed)
}

pub fn init() {
    // SAFETY: a plain read of a global that PostgreSQL sets while it loads preload libraries.
    let in_preload = unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress };
    PRELOADED.store(in_preload, std::sync::atomic::Ordering::Relaxed);

    let context_flags = GucFlags::DISALLOW_IN_FILE | GucFlags::DISALLOW_IN_AUTO_FILE;
    GucRegistry::define_string_guc(
        CONTEXT_NAME,
        c"Tenant context of the current transaction: tenant,user,role.",
        c"Set only by tenancy.set_tenant, pre_request and clear_context; ordinary roles cannot SET it. \
          Read it with tenancy.current_tenant_id(), current_user_id() and current_role().",
        &CONTEXT,
        GucContext::Suset,
        context_flags,
    );
    GucRegistry::define_string_guc(
        CITUS_CONTEXT_NAME,
        c"Citus: the signed tenant context the coordinator sends to the workers.",
        c"Set only by pg_tenancy (SET LOCAL, which Citus propagates); a worker reads it only when it verifies.",
        &CITUS_CONTEXT,
        GucContext::Userset,
        context_flags | GucFlags::NO_SHOW_ALL,
    );
    // Where the root keys come from: read at server start only, by superusers only, and not
    // listed by SHOW ALL (they name a path or a command, never a key, but they are nobody's business).
    let keyring_flags = GucFlags::SUPERUSER_ONLY | GucFlags::NO_SHOW_ALL;
    GucRegistry::define_string_guc(
        c"tenancy.keyring_file",
        c"File holding pg_tenancy's root keys (one \"<id> <base64> [active]\" per line; mode 0600).",
        c"Read at server start.  Must not be inside the data directory.",
        &KEYRING_FILE,
        GucContext::Postmaster,
        keyring_flags,
    );
    GucRegistry::define_string_guc(
        c"tenancy.keyring_command",
        c"Command whose output is pg_tenancy's root keyring (instead of tenancy.keyring_file).",
        c"Run through /bin/sh at server start.",
        &KEYRING_COMMAND,
        GucContext::Postmaster,
        keyring_flags,
    );
    // The JWT keys: superusers only (postgresql.conf, ALTER SYSTEM), never shown; secret material
    // refused in ALTER DATABASE/ROLE ... SET (the check hook).
    // SAFETY: static strings and a static value cell, as PostgreSQL's own GUCs have; the hook is
    // a #[pg_guard] function of the signature GucStringCheckHook names.
    unsafe {
        pgrx::pg_sys::DefineCustomStringVariable(
            c"tenancy.jwt_secret".as_ptr(),
            c"Keys pre_request verifies the request's bearer token with: an HS256 secret, a JWK or a JWKS (PostgREST's jwt-secret).".as_ptr(),
            c"When set, the claims come from the verified token in request.headers, not from request.jwt.claims. \
              Set it in postgresql.conf or with ALTER SYSTEM: a secret is refused in ALTER DATABASE/ROLE ... SET.".as_ptr(),
            JWT_SECRET.as_ptr(),
            std::ptr::null(),
            pgrx::pg_sys::GucContext::PGC_SUSET,
            (pgrx::pg_sys::GUC_SUPERUSER_ONLY | pgrx::pg_sys::GUC_NO_SHOW_ALL) as i32,
            Some(crate::jwt::backend::check_jwt_secret),
            None,
            Some(crate::jwt::backend::show_jwt_secret),
        );
    }
    // What a verified token must also say.  Not secrets, but only superusers set them: an
    // application role must not be able to loosen verification for its own session.
    GucRegistry::define_string_guc(
        c"tenancy.jwt_aud",
        c"Audience a token verified under tenancy.jwt_secret must carry in its aud claim (PostgREST's jwt-aud).",
        c"Empty: aud is not checked.  Supabase's user tokens say \"authenticated\".",
        &JWT_AUD,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"tenancy.jwt_iss",
        c"Issuer a token verified under tenancy.jwt_secret must name in its iss claim.",
        c"Empty: iss is not checked.  Supabase's is https://<project>.supabase.co/auth/v1.",
        &JWT_ISS,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"tenancy.jwt_cache_entries",
        c"How many verified tokens each backend remembers, so that it checks a token's signature once.",
        c"0 turns the cache off.  The claims (exp, nbf, aud, iss) are checked at every use; a change of tenancy.jwt_secret empties it.",
        &JWT_CACHE_ENTRIES,
        0,
        100_000,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"tenancy.schema_cache_entries",
        c"How many compiled JSON Schemas each backend keeps, so that a schema is compiled once.",
        c"0 compiles every schema at every call (as pg_jsonschema once did); the cache also holds at most 64 MB.",
        &SCHEMA_CACHE_ENTRIES,
        0,
        4096,
        GucContext::Suset,
        GucFlags::default(),
    );
    // Request logging: superuser settings (postgresql.conf, ALTER DATABASE/ROLE ... SET), so an
    // application role cannot turn redaction down for its own session.
    GucRegistry::define_string_guc(
        c"tenancy.redact_keys",
        c"Extra key names (substrings, comma-separated) whose values tenancy.log_request redacts.",
        c"Added to the built-in names (src/request_log/names.rs): any key name containing one of them is redacted.",
        &REDACT_KEYS,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"tenancy.redact_disabled_rules",
        c"Redaction rules (ids, comma-separated) that tenancy.log_request does not apply.",
        c"tenancy.redaction_rules() lists the ids; a rule turned off lets its secrets into the logs.",
        &REDACT_DISABLED_RULES,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"tenancy.redact_enabled_rules",
        c"Opt-in redaction rules (ids, comma-separated) that tenancy.log_request applies.",
        c"Personal data rather than secrets: pii-card-number (Luhn-valid payment card numbers).",
        &REDACT_ENABLED_RULES,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"tenancy.log_summary_max_bytes",
        c"The most of each request/response summary tenancy.log_request keeps.",
        c"Past it the rest is cut and the summary's \"_truncated\" key says so.",
        &LOG_SUMMARY_MAX_BYTES,
        256,
        16 * 1024 * 1024,
        GucContext::Suset,
        GucFlags::UNIT_BYTE,
    );
    // SAFETY: reserves the "tenancy" prefix, as PostgreSQL extensions do after defining their GUCs;
    // an unknown tenancy.* name is then an error instead of a silent placeholder.
    unsafe {
        #[cfg(not(any(feature = "pg14")))]
        pgrx::pg_sys::MarkGUCPrefixReserved(c"tenancy".as_ptr());
        #[cfg(feature = "pg14")]
        pgrx::pg_sys::EmitWarningsOnPlaceholders(c"tenancy".as_ptr());
    }
}

/// A string setting whose value cell (the address the GUC machinery writes the value's pointer
/// to) can be read in place.
pub trait StringCell {
    fn cell(&self) -> *mut *mut std::ffi::c_char;
}

impl StringCell for GucSetting<Option<CString>> {
    fn cell(&self) -> *mut *mut std::ffi::c_char {
        self.as_ptr()
    }
}

impl StringCell for HookedString {
    fn cell(&self) -> *mut *mut std::ffi::c_char {
        self.as_ptr()
    }
}

/// The bytes of a string setting's current value (empty when unset), read in place and borrowed
/// while `f` runs: the GUC machinery may free the string at its next change, so nothing borrowed
/// escapes.  For the hot readers (the context, the JWT keys), which must not copy the value at
/// every call.
pub fn with_value<R>(guc: &impl StringCell, f: impl FnOnce(&[u8]) -> R) -> R {
    // SAFETY: the cell of a defined string GUC holds its current value, a NUL-terminated string
    // owned by the GUC machinery, or NULL; nothing changes it while `f` runs (callers' `f` set no
    // GUC).
    let ptr = unsafe { *guc.cell() };
    if ptr.is_null() {
        return f(&[]);
    }
    // SAFETY: non-NULL and NUL-terminated (above).
    f(unsafe { std::ffi::CStr::from_ptr(ptr) }.to_bytes())
}

/// Set a GUC for the current (sub)transaction or nest level, raising an ERROR if PostgreSQL
/// refuses.  `context` is the privilege the caller exercises: `PGC_SUSET` is how the context
/// functions set `tenancy.context` for an ordinary caller after their own checks.
pub fn set(
    name: &std::ffi::CStr,
    value: &std::ffi::CStr,
    context: pgrx::pg_sys::GucContext::Type,
    action: pgrx::pg_sys::GucAction::Type,
) {
    // SAFETY: NUL-terminated name and value; elevel ERROR makes a refusal an ERROR, not a return code.
    unsafe {
        pgrx::pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            context,
            pgrx::pg_sys::GucSource::PGC_S_SESSION,
            action,
            true,
            pgrx::PgLogLevel::ERROR as i32,
            false,
        );
    }
}

/// `f` with the GUC `name` set to `value` for its duration alone (a nest level of its own, as a
/// function's `SET` clause has): restored after, or by the (sub)transaction's abort on an ERROR.
pub fn with_setting<R>(name: &std::ffi::CStr, value: &std::ffi::CStr, f: impl FnOnce() -> R) -> R {
    // SAFETY: the calls fmgr_security_definer makes for a SET clause, in the same order.
    unsafe {
        let level = pgrx::pg_sys::NewGUCNestLevel();
        set(
            name,
            value,
            pgrx::pg_sys::GucContext::PGC_USERSET,
            pgrx::pg_sys::GucAction::GUC_ACTION_SAVE,
        );
        let result = f();
        pgrx::pg_sys::AtEOXact_GUC(true, level);
        result
    }
}
