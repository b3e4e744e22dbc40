//! Tenant context: who is asking, for the current transaction only.
//!
//! Three values, read by `tenancy.current_tenant_id()`, `tenancy.current_user_id()` and
//! `tenancy.current_role()`, live in the `PGC_SUSET` GUCs of [`crate::gucs`].  They are set
//! transaction-locally (`GUC_ACTION_LOCAL`: gone at COMMIT/ROLLBACK, restored by ROLLBACK TO
//! SAVEPOINT) and only by the functions here, after a check:
//!
//! * `tenancy.set_tenant(tenant_id, as_user)`: the user already in the context (or `as_user`, which
//!   only `service_role` may pass) must be a member of an active tenant; `service_role` may enter
//!   any active tenant without a user.
//! * `tenancy.pre_request()`: PostgREST's `db-pre-request` hook; reads the claims PostgREST
//!   verified (`request.jwt.claims`), then does what `set_tenant` does.
//!
//! The readers use no SPI and no allocation beyond their result: `STABLE`, `PARALLEL SAFE`, and
//! policies call them as `(SELECT tenancy.current_tenant_id())`, so they run once per statement.
use crate::error::{null_argument, raise};
use crate::gucs;
use crate::lookup::{self, Key};
use pgrx::guc::GucSetting;
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::{CStr, CString};

// ------------------------------------------------------------------------------------------------
// Readers
// ------------------------------------------------------------------------------------------------

/// The raw bytes of a string GUC, `None` when unset or empty.  Borrowed only for the duration of
/// the caller's parse: the GUC machinery may free the string at the next change.
fn guc_bytes<R>(
    setting: &GucSetting<Option<CString>>,
    parse: impl FnOnce(&[u8]) -> Option<R>,
) -> Option<R> {
    // SAFETY: the pointer is the GUC's current value, a NUL-terminated string owned by the GUC
    // machinery, or NULL; nothing changes it while we parse it.
    let ptr = unsafe { *setting.as_ptr() };
    if ptr.is_null() {
        return None;
    }
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    if bytes.is_empty() {
        None
    } else {
        parse(bytes)
    }
}

fn guc_uuid(setting: &GucSetting<Option<CString>>) -> Option<pgrx::Uuid> {
    guc_bytes(setting, |b| {
        uuid::Uuid::try_parse_ascii(b)
            .ok()
            .map(|u| pgrx::Uuid::from_bytes(*u.as_bytes()))
    })
}

/// The roles a context can carry, as static strings (no allocation per call).
pub const ROLES: [&str; 6] = ["owner", "admin", "manager", "member", "client", "service"];

/// The tenant of the current transaction, or NULL when no context is set.
#[pg_extern(stable, parallel_safe)]
pub fn current_tenant_id() -> Option<pgrx::Uuid> {
    guc_uuid(&gucs::TENANT_ID)
}

/// The user of the current transaction, or NULL.
#[pg_extern(stable, parallel_safe)]
pub fn current_user_id() -> Option<pgrx::Uuid> {
    guc_uuid(&gucs::USER_ID)
}

/// The caller's role in the current tenant (`owner`, `admin`, `manager`, `member`, `client`, or
/// `service` for service_role), or NULL.  Always call it schema-qualified: `current_role` alone is
/// the SQL keyword CURRENT_ROLE.
#[pg_extern(stable, parallel_safe)]
pub fn current_role() -> Option<&'static str> {
    guc_bytes(&gucs::ROLE, |b| {
        ROLES.iter().copied().find(|r| r.as_bytes() == b)
    })
}

// ------------------------------------------------------------------------------------------------
// Setters
// ------------------------------------------------------------------------------------------------

fn set_local(name: &CStr, value: &str) {
    let value = CString::new(value).unwrap_or_default(); // ok: our values never contain NUL
                                                         // SAFETY: PGC_SUSET context is what lets this C code set a superuser-only GUC on behalf of an
                                                         // ordinary caller; GUC_ACTION_LOCAL makes it end with the (sub)transaction.
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_LOCAL,
            true,
            PgLogLevel::ERROR as i32,
            false,
        );
    }
}

/// Set (or, with `None`, clear) the whole context at once, so no part of an earlier one survives.
fn set_context(tenant: Option<pgrx::Uuid>, user: Option<pgrx::Uuid>, role: Option<&str>) {
    set_local(
        gucs::TENANT_ID_NAME,
        &tenant.map(|t| t.to_string()).unwrap_or_default(),
    );
    set_local(
        gucs::USER_ID_NAME,
        &user.map(|u| u.to_string()).unwrap_or_default(),
    );
    set_local(gucs::ROLE_NAME, role.unwrap_or_default());
}

fn require_preloaded() {
    if !gucs::preloaded() {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "pg_tenancy must be loaded at server start to set a tenant context",
            Some("Add pg_tenancy to shared_preload_libraries in postgresql.conf and restart the server."),
        );
    }
}

/// Does the current role have the privileges of `service_role` (or is it a superuser)?
pub fn caller_is_service() -> bool {
    // SAFETY: catalog lookups with valid, NUL-terminated names.
    unsafe {
        let me = pg_sys::GetUserId();
        if pg_sys::superuser_arg(me) {
            return true;
        }
        let service = pg_sys::get_role_oid(c"service_role".as_ptr(), true);
        service != pg_sys::InvalidOid && pg_sys::has_privs_of_role(me, service)
    }
}

/// What a membership lookup found: the tenant's status and the user's role, or no tenant.
type Membership = Option<(&'static str, Option<&'static str>)>;

/// (tenant status, member role) of `user` in `tenant`; `None` when the tenant does not exist.
/// Two primary-key index scans (see [`crate::lookup`]): no SPI, no search_path, no RLS.
fn lookup_membership(tenant: pgrx::Uuid, user: Option<pgrx::Uuid>) -> Membership {
    let status = lookup::fetch(
        c"tenants",
        c"tenants_pkey",
        &[Key {
            column: 1,
            eq_proc: pg_sys::F_UUID_EQ,
            value: lookup::uuid_datum(&tenant),
        }],
        &[c"status"],
        |cols| cols[0].map(lookup::enum_label),
    )??;
    let role = user.and_then(|user| {
        lookup::fetch(
            c"memberships",
            c"memberships_pkey",
            &[
                Key {
                    column: 1,
                    eq_proc: pg_sys::F_UUID_EQ,
                    value: lookup::uuid_datum(&tenant),
                },
                Key {
                    column: 2,
                    eq_proc: pg_sys::F_UUID_EQ,
                    value: lookup::uuid_datum(&user),
                },
            ],
            &[c"role"],
            |cols| cols[0].map(lookup::enum_label),
        )
        .flatten()
    });
    Some((intern(&status), role.as_deref().map(intern)))
}

/// Enum labels as static strings (a handful of known values; anything else fails closed).
fn intern(label: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "owner",
        "admin",
        "manager",
        "member",
        "client",
        "active",
        "suspended",
        "archived",
        "unknown",
    ];
    KNOWN
        .iter()
        .copied()
        .find(|k| *k == label)
        .unwrap_or("unknown")
}

// ------------------------------------------------------------------------------------------------
// Membership cache
//
// pre_request runs for every request, and a membership rarely changes: each backend keeps what it
// looked up (positive and negative answers) and forgets all of it on any relcache invalidation.
// Every write to tenancy.tenants or tenancy.memberships (INSERT, UPDATE, DELETE, TRUNCATE,
// cascades included) fires a statement trigger that registers a relcache invalidation of that
// table (`tenancy.invalidate_context_cache()`).  PostgreSQL delivers it to every backend when the
// writer commits, before their next transaction (or lock) proceeds; it replays it locally at the
// writer's next command and when the writer's (sub)transaction aborts, so no backend keeps an
// answer that came from rolled-back or superseded rows.  A sinval queue overflow resets every
// relcache, which also clears this cache.
// ------------------------------------------------------------------------------------------------

type CacheKey = ([u8; 16], Option<[u8; 16]>);
const CACHE_CAPACITY: usize = 8192;

thread_local! {
    static CACHE: RefCell<HashMap<CacheKey, Membership>> = RefCell::new(HashMap::new());
    /// Bumped by every invalidation; a lookup that saw it change does not cache its answer.
    static GENERATION: Cell<u64> = const { Cell::new(0) };
    static CALLBACK_REGISTERED: Cell<bool> = const { Cell::new(false) };
}

#[pg_guard]
unsafe extern "C-unwind" fn on_relcache_invalidation(_arg: pg_sys::Datum, _relid: pg_sys::Oid) {
    GENERATION.with(|g| g.set(g.get().wrapping_add(1)));
    CACHE.with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            c.clear();
        }
    });
}

fn cached_membership(tenant: pgrx::Uuid, user: Option<pgrx::Uuid>) -> Membership {
    if !CALLBACK_REGISTERED.with(|r| r.replace(true)) {
        // SAFETY: registers a plain function for the life of the backend.
        unsafe {
            pg_sys::CacheRegisterRelcacheCallback(
                Some(on_relcache_invalidation),
                pg_sys::Datum::from(0),
            )
        };
    }
    let key: CacheKey = (*tenant.as_bytes(), user.map(|u| *u.as_bytes()));
    if let Some(hit) = CACHE.with(|c| c.borrow().get(&key).copied()) {
        return hit;
    }
    let generation = GENERATION.with(Cell::get);
    let found = lookup_membership(tenant, user);
    if GENERATION.with(Cell::get) == generation {
        CACHE.with(|c| {
            let mut c = c.borrow_mut();
            if c.len() >= CACHE_CAPACITY {
                c.clear();
            }
            c.insert(key, found);
        });
    }
    found
}

/// Statement trigger on tenancy.tenants and tenancy.memberships: every backend's membership cache
/// is dropped once this transaction commits (and this backend's at its next command).
#[no_mangle]
pub extern "C" fn pg_finfo_invalidate_context_cache() -> &'static pg_sys::Pg_finfo_record {
    static V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// # Safety
/// Called by the function manager as a trigger.
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn invalidate_context_cache(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let context = (*fcinfo).context;
    if context.is_null() || (*context).type_ != pg_sys::NodeTag::T_TriggerData {
        raise(
            PgSqlErrorCode::ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
            "tenancy.invalidate_context_cache() must be called as a trigger",
            None,
        );
    }
    let trigdata = context as *mut pg_sys::TriggerData;
    pg_sys::CacheInvalidateRelcache((*trigdata).tg_relation);
    pg_sys::Datum::from(0)
}

/// Check and set the context for `tenant`, acting as `user` (or as the service when `user` is
/// `None` and the caller is service_role).  Returns the role that was set.
fn enter_tenant(tenant: pgrx::Uuid, user: Option<pgrx::Uuid>, is_service: bool) -> &'static str {
    if user.is_none() && !is_service {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
            "no authenticated user in this transaction",
            Some("Call tenancy.pre_request() with verified JWT claims, or tenancy.authenticate(api_key), first."),
        );
    }
    let not_member = || -> ! {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "permission denied for tenant: the user is not a member of it",
            None,
        )
    };
    // A non-member learns nothing, not even whether the tenant exists.
    let Some((status, role)) = cached_membership(tenant, user) else {
        if is_service {
            raise(
                PgSqlErrorCode::ERRCODE_NO_DATA_FOUND,
                "tenant does not exist",
                None,
            );
        }
        not_member()
    };
    let role: &'static str = match (user, role) {
        (Some(_), Some(r)) => ROLES
            .iter()
            .copied()
            .find(|x| *x == r)
            .unwrap_or_else(|| not_member()),
        (Some(_), None) => not_member(),
        (None, _) => "service",
    };
    if status != "active" {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("tenant is {status}"),
            Some(
                "Only active tenants can be entered; service_role can change the tenant's status.",
            ),
        );
    }
    set_context(Some(tenant), user, Some(role));
    role
}

/// Enter `tenant_id` for the rest of the current transaction and return the caller's role in it.
///
/// The user is the one already in the context (from `pre_request` or `authenticate`); a caller with
/// `service_role` privileges may name another with `as_user` (a trusted backend acting for a user),
/// or enter any tenant as the service when there is no user.
#[pg_extern(volatile, parallel_unsafe)]
pub fn set_tenant(
    tenant_id: Option<pgrx::Uuid>,
    as_user: default!(Option<pgrx::Uuid>, "NULL"),
) -> &'static str {
    require_preloaded();
    let tenant = tenant_id.unwrap_or_else(|| null_argument("tenant_id"));
    let is_service = caller_is_service();
    let user = match as_user {
        Some(u) if is_service => Some(u),
        Some(_) => raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "permission denied to act as another user",
            Some("Only service_role may pass as_user."),
        ),
        None => current_user_id(),
    };
    enter_tenant(tenant, user, is_service)
}

/// Clear the tenant context of the current transaction (fail closed from here on).
#[pg_extern(volatile, parallel_unsafe)]
pub fn clear_context() {
    require_preloaded();
    set_context(None, None, None);
}

/// A setting of the current session, or `None` when unset/empty (`current_setting(name, true)`).
fn setting(name: &CStr) -> Option<String> {
    // SAFETY: GetConfigOption returns NULL or a NUL-terminated string we copy at once.
    let ptr = unsafe { pg_sys::GetConfigOption(name.as_ptr(), true, false) };
    if ptr.is_null() {
        return None;
    }
    let s = unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned();
    (!s.is_empty()).then_some(s)
}

fn bad_claims(what: &str) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
        format!("invalid JWT claims: {what}"),
        None,
    )
}

fn claim_uuid(value: Option<&serde_json::Value>, name: &str) -> Option<pgrx::Uuid> {
    match value {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => match uuid::Uuid::try_parse(s) {
            Ok(u) => Some(pgrx::Uuid::from_bytes(*u.as_bytes())),
            Err(_) => bad_claims(&format!("{name} is not a uuid")),
        },
        Some(_) => bad_claims(&format!("{name} is not a string")),
    }
}

/// PostgREST's `db-pre-request` hook: turn the verified JWT claims of this request into a tenant
/// context.  `sub` is the user; the tenant comes from the claim `tenant_id`, else
/// `app_metadata.tenant_id`, else the request header `X-Tenant-Id`.  A request with no claims
/// (anon) gets an empty context.
#[pg_extern(volatile, parallel_unsafe)]
pub fn pre_request() {
    require_preloaded();
    set_context(None, None, None);
    let Some(raw) = setting(c"request.jwt.claims") else {
        return;
    };
    let claims: serde_json::Value =
        serde_json::from_str(&raw).unwrap_or_else(|_| bad_claims("not JSON"));
    if !claims.is_object() {
        bad_claims("not a JSON object");
    }
    let user = claim_uuid(claims.get("sub"), "sub");
    let mut tenant = claim_uuid(claims.get("tenant_id"), "tenant_id");
    if tenant.is_none() {
        tenant = claim_uuid(
            claims.get("app_metadata").and_then(|m| m.get("tenant_id")),
            "app_metadata.tenant_id",
        );
    }
    if tenant.is_none() {
        if let Some(headers) = setting(c"request.headers") {
            let headers: serde_json::Value = serde_json::from_str(&headers).unwrap_or_default();
            tenant = claim_uuid(headers.get("x-tenant-id"), "header x-tenant-id");
        }
    }
    let is_service = caller_is_service();
    match tenant {
        Some(t) => {
            enter_tenant(t, user, is_service);
        }
        None => set_context(None, user, None),
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn setup() {
        Spi::run(
            "INSERT INTO tenancy.users (id, email) VALUES ('00000000-0000-0000-0000-0000000000a1', 'a@example.com');
             INSERT INTO tenancy.tenants (id, slug, name) VALUES
                ('00000000-0000-0000-0000-00000000000a', 'ta', 'A'),
                ('00000000-0000-0000-0000-00000000000b', 'tb', 'B');
             INSERT INTO tenancy.memberships (tenant_id, user_id, role) VALUES
                ('00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-0000000000a1', 'admin');",
        )
        .unwrap();
    }

    #[pg_test]
    fn readers_are_null_without_context() {
        assert_eq!(
            Spi::get_one::<pgrx::Uuid>("SELECT tenancy.current_tenant_id()").unwrap(),
            None
        );
        assert_eq!(
            Spi::get_one::<String>("SELECT tenancy.current_role()").unwrap(),
            None
        );
    }

    #[pg_test]
    fn service_enters_any_tenant_and_acts_as_member() {
        setup();
        // The test runs as the superuser, which counts as service_role.
        let role = Spi::get_one::<String>(
            "SELECT tenancy.set_tenant('00000000-0000-0000-0000-00000000000b')",
        );
        assert_eq!(role.unwrap().as_deref(), Some("service"));
        let role = Spi::get_one::<String>(
            "SELECT tenancy.set_tenant('00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-0000000000a1')",
        );
        assert_eq!(role.unwrap().as_deref(), Some("admin"));
        let t = Spi::get_one::<String>("SELECT tenancy.current_tenant_id()::text").unwrap();
        assert_eq!(t.as_deref(), Some("00000000-0000-0000-0000-00000000000a"));
    }

    #[pg_test(error = "permission denied for tenant: the user is not a member of it")]
    fn non_member_is_refused() {
        setup();
        Spi::run("SELECT tenancy.set_tenant('00000000-0000-0000-0000-00000000000b', '00000000-0000-0000-0000-0000000000a1')")
            .unwrap();
    }

    #[pg_test(error = "tenant_id must not be NULL")]
    fn null_tenant_is_refused() {
        Spi::run("SELECT tenancy.set_tenant(NULL)").unwrap();
    }

    #[pg_test]
    fn pre_request_reads_claims() {
        setup();
        Spi::run(
            r#"SELECT set_config('request.jwt.claims',
                 '{"sub":"00000000-0000-0000-0000-0000000000a1","role":"authenticated","app_metadata":{"tenant_id":"00000000-0000-0000-0000-00000000000a"}}', true);
               SELECT tenancy.pre_request();"#,
        )
        .unwrap();
        assert_eq!(
            Spi::get_one::<String>("SELECT tenancy.current_role()")
                .unwrap()
                .as_deref(),
            Some("admin")
        );
        assert_eq!(
            Spi::get_one::<String>("SELECT tenancy.current_user_id()::text")
                .unwrap()
                .as_deref(),
            Some("00000000-0000-0000-0000-0000000000a1")
        );
    }

    #[pg_test(error = "invalid JWT claims: sub is not a uuid")]
    fn pre_request_rejects_bad_sub() {
        Spi::run(r#"SELECT set_config('request.jwt.claims', '{"sub":"nope"}', true); SELECT tenancy.pre_request();"#)
            .unwrap();
    }
}
