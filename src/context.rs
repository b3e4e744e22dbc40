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
//! The readers use no SPI: `STABLE`, `PARALLEL SAFE`, and policies call them as
//! `(SELECT tenancy.current_tenant_id())` or `(SELECT tenancy.current_tenant_for(...))`, so they
//! run once per statement.  Each read checks the context again against its authority (a cached
//! membership, tenant status or key state; a primary-key lookup on a cache miss: see [`Context`])
//! and notes what it saw against the statement ([`statements`]).
use crate::error::{null_argument, raise};
use crate::gucs;
use crate::jwt::claims;
use crate::lookup::{self, Key};
use pgrx::prelude::*;
use std::ffi::{CStr, CString};

pub mod request_settings;
pub mod statements;

// ------------------------------------------------------------------------------------------------
// Readers
// ------------------------------------------------------------------------------------------------

/// The bytes of `tenancy.context` (empty when unset), borrowed while `f` runs.  On a Citus
/// worker, where that setting never arrives, the context the coordinator signed for this role and
/// transaction (`crate::citus`), when it verifies.
fn with_raw<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    if gucs::with_value(&gucs::CONTEXT, <[u8]>::is_empty) {
        return crate::citus::with_verified(|signed| f(signed.unwrap_or_default()));
    }
    gucs::with_value(&gucs::CONTEXT, f)
}

/// Field `n` (0 tenant, 1 user, 2 role, 3 API key, 4 scopes) of a context, `None` when empty.
fn field(raw: &[u8], n: usize) -> Option<&[u8]> {
    raw.split(|b| *b == b',').nth(n).filter(|f| !f.is_empty())
}

fn parse_uuid(b: &[u8]) -> Option<pgrx::Uuid> {
    uuid::Uuid::try_parse_ascii(b)
        .ok()
        .map(|u| pgrx::Uuid::from_bytes(*u.as_bytes()))
}

fn parse_role(b: &[u8]) -> Option<&'static str> {
    ROLES.iter().copied().find(|r| r.as_bytes() == b)
}

/// The whole context, read at once (one read, never two that could disagree), and checked again
/// against the authority it came from: the membership of its user (role unchanged), the tenant's
/// status, the API key's revocation and expiry, as they are now, through the per-backend caches
/// that every write to those tables invalidates.  A context whose authority has changed since it
/// was set (a member removed or demoted, a tenant suspended, a key revoked, by this or another
/// session) keeps its user but loses its tenant, role and key: `stale`.  So a removal counts at
/// the next statement, also in a transaction that is still open.
#[derive(Clone, Copy, Default)]
pub(crate) struct Context {
    pub tenant: Option<pgrx::Uuid>,
    pub user: Option<pgrx::Uuid>,
    pub role: Option<&'static str>,
    pub api_key: Option<pgrx::Uuid>,
    /// The tenant, role and key were dropped because their authority changed.
    pub stale: bool,
}

impl Context {
    fn parse(raw: &[u8]) -> Context {
        let mut c = Context {
            tenant: field(raw, 0).and_then(parse_uuid),
            user: field(raw, 1).and_then(parse_uuid),
            role: field(raw, 2).and_then(parse_role),
            api_key: field(raw, 3).and_then(parse_uuid),
            stale: false,
        };
        if let Some(tenant) = c.tenant {
            if !still_valid(tenant, c.user, c.role, c.api_key) {
                c = Context {
                    user: c.user,
                    stale: true,
                    ..Context::default()
                };
            }
        }
        c
    }
}

/// Is the authority a context came from still there?
fn still_valid(
    tenant: pgrx::Uuid,
    user: Option<pgrx::Uuid>,
    role: Option<&'static str>,
    key: Option<pgrx::Uuid>,
) -> bool {
    match role {
        Some("service") => tenant_status(tenant) == Some("active"),
        Some("api_key") => {
            tenant_status(tenant) == Some("active")
                && key.is_some_and(|k| crate::api_keys::still_valid(&tenant, &k))
        }
        Some(role) => {
            user.is_some_and(|u| cached_membership(tenant, Some(u)) == Some(("active", Some(role))))
        }
        None => false,
    }
}

pub(crate) fn current() -> Context {
    with_raw(Context::parse)
}

/// For the SQL-callable readers: the context's bytes, noted against the statement evaluating the
/// call ([`statements`]: one context per statement), for `f` to parse (and check: [`Context`]).
fn read<R>(fcinfo: pg_sys::FunctionCallInfo, f: impl FnOnce(&[u8]) -> R) -> R {
    with_raw(|raw| {
        statements::note_read(statements::caller_memory(fcinfo), raw);
        f(raw)
    })
}

/// For a function of ours that reads tenant tables as the caller, whose policies read the
/// context: the context's bytes when it holds a tenant (its authority checked now, as every
/// reader checks it), noted against the statement evaluating the call like any reader's read;
/// `None` without a tenant.  What such a function caches of its reads is keyed by these bytes.
pub(crate) fn tenant_context(fcinfo: pg_sys::FunctionCallInfo) -> Option<Box<[u8]>> {
    read(fcinfo, |raw| Context::parse(raw).tenant.map(|_| raw.into()))
}

/// The roles a context can carry, as static strings (no allocation per call).  `api_key`: the
/// context came from `tenancy.authenticate(key)`; it writes like a member, and its scopes are
/// checked with `tenancy.has_scope()`.
pub const ROLES: [&str; 7] = [
    "owner", "admin", "manager", "member", "client", "service", "api_key",
];

/// The tenant of the current transaction, or NULL when no context is set.
#[pg_extern(stable, parallel_safe)]
pub fn current_tenant_id(fcinfo: pg_sys::FunctionCallInfo) -> Option<pgrx::Uuid> {
    read(fcinfo, |raw| Context::parse(raw).tenant)
}

/// The user of the current transaction, or NULL.
#[pg_extern(stable, parallel_safe)]
pub fn current_user_id(fcinfo: pg_sys::FunctionCallInfo) -> Option<pgrx::Uuid> {
    // The user is kept whatever its authority in the tenant (see Context): nothing to check.
    read(fcinfo, |raw| field(raw, 1).and_then(parse_uuid))
}

/// The caller's role in the current tenant (`owner`, `admin`, `manager`, `member`, `client`,
/// `service` for service_role, or `api_key` after `tenancy.authenticate`), or NULL.  Always call
/// it schema-qualified: `current_role` alone is the SQL keyword CURRENT_ROLE.
#[pg_extern(stable, parallel_safe)]
pub fn current_role(fcinfo: pg_sys::FunctionCallInfo) -> Option<&'static str> {
    read(fcinfo, |raw| Context::parse(raw).role)
}

/// The current tenant if the context's role is one of `roles`, else NULL: tenant and role read
/// together, in one call.  What the policies compare `tenant_id` with, so that each policy has one
/// InitPlan, `tenant_id = (SELECT tenancy.current_tenant_for('owner', 'admin'))`.
#[pg_extern(stable, strict, parallel_safe)]
pub fn current_tenant_for(
    roles: VariadicArray<&str>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<pgrx::Uuid> {
    read(fcinfo, |raw| {
        let c = Context::parse(raw);
        let role = c.role?;
        if roles.iter().flatten().any(|r| r == role) {
            c.tenant
        } else {
            None
        }
    })
}

/// The API key the current context came from (`tenancy.authenticate`), or NULL.
#[pg_extern(stable, parallel_safe)]
pub fn current_api_key_id(fcinfo: pg_sys::FunctionCallInfo) -> Option<pgrx::Uuid> {
    read(fcinfo, |raw| Context::parse(raw).api_key)
}

/// Whether the current context came from an API key that carries `scope` (or the scope `*`).
/// False without an API key: scopes limit keys; users are limited by their role.
#[pg_extern(stable, parallel_safe)]
pub fn has_scope(scope: &str, fcinfo: pg_sys::FunctionCallInfo) -> bool {
    read(fcinfo, |raw| {
        Context::parse(raw).api_key.is_some()
            && field(raw, 4).is_some_and(|scopes| {
                scopes
                    .split(|c| *c == b' ')
                    .any(|s| s == scope.as_bytes() || s == b"*")
            })
    })
}

/// The tenant of the context, if the caller is its owner or admin, or service_role: who may
/// handle credentials and API keys.  `what` names them in the refusal.
pub(crate) fn admin_tenant(what: &str) -> pgrx::Uuid {
    tenant_of_roles(&current(), &["owner", "admin", "service"], || {
        format!("permission denied for {what}: only a tenant's owner or admin, or service_role, may handle them")
    })
}

/// 42501: the context's authority changed after it was set (see [`Context`]).
pub(crate) fn stale() -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        "the tenant context is no longer valid: its membership was removed or changed, the tenant suspended, or the API key revoked",
        Some("Enter the tenant again (tenancy.set_tenant, pre_request or authenticate)."),
    )
}

/// The tenant of `context` if its role is one of `roles`, else 42501: no tenant at all, or
/// `refusal()`.
pub(crate) fn tenant_of_roles(
    context: &Context,
    roles: &[&str],
    refusal: impl FnOnce() -> String,
) -> pgrx::Uuid {
    let Some(tenant) = context.tenant else {
        if context.stale {
            stale()
        }
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "no tenant in this transaction's context",
            Some(
                "Call tenancy.set_tenant(), tenancy.pre_request() or tenancy.authenticate() first.",
            ),
        )
    };
    match context.role {
        Some(role) if roles.contains(&role) => tenant,
        _ => raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            refusal(),
            None,
        ),
    }
}

// ------------------------------------------------------------------------------------------------
// Setters
// ------------------------------------------------------------------------------------------------

/// Set (or, with `None`, clear) the whole context at once, so no part of an earlier one survives.
/// Transaction-local (`GUC_ACTION_LOCAL`), and skipped when the context would not change.
fn set_context(tenant: Option<pgrx::Uuid>, user: Option<pgrx::Uuid>, role: Option<&str>) {
    set_context_with_key(tenant, user, role, None)
}

/// [`set_context`], for a context that came from an API key: its id and scopes are fields 3 and 4
/// (scopes separated by spaces; src/api_keys.rs allows no space or comma in a scope).
pub(crate) fn set_context_with_key(
    tenant: Option<pgrx::Uuid>,
    user: Option<pgrx::Uuid>,
    role: Option<&str>,
    key: Option<(&pgrx::Uuid, &[String])>,
) {
    let mut value = String::with_capacity(90);
    let mut buf = uuid::Uuid::encode_buffer();
    for id in [tenant, user] {
        if let Some(id) = id {
            value.push_str(
                uuid::Uuid::from_bytes(*id.as_bytes())
                    .hyphenated()
                    .encode_lower(&mut buf),
            );
        }
        value.push(',');
    }
    value.push_str(role.unwrap_or_default());
    if let Some((id, scopes)) = key {
        value.push(',');
        value.push_str(
            uuid::Uuid::from_bytes(*id.as_bytes())
                .hyphenated()
                .encode_lower(&mut buf),
        );
        value.push(',');
        value.push_str(&scopes.join(" "));
    }
    let unchanged =
        with_raw(|current| current == value.as_bytes() || (current.is_empty() && value == ",,"));
    if unchanged {
        return;
    }
    // On a Citus worker the context is the coordinator's.
    crate::citus::refuse_local_context();
    // One context per statement: not while a statement that read the old one is open.
    statements::ensure_no_reader();
    // On Citus, no plan made for the old tenant runs for the new one.
    crate::citus::routing::context_changed();
    // ok: uuids and role names contain no NUL
    let value = CString::new(value).unwrap_or_default();
    // PGC_SUSET: the privilege this function exercises for its ordinary caller, after its checks;
    // GUC_ACTION_LOCAL: the value ends with the (sub)transaction.
    gucs::set(
        gucs::CONTEXT_NAME,
        &value,
        pg_sys::GucContext::PGC_SUSET,
        pg_sys::GucAction::GUC_ACTION_LOCAL,
    );
    // On Citus, the same context signed for the workers.
    crate::citus::issue(value.to_bytes());
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
        lookup::Rel::public(c"tenants"),
        c"tenants_pkey",
        &[Key::uuid(1, &tenant)],
        &[c"status"],
        |cols| cols[0].map(crate::datum::enum_label),
    )??;
    let role = user.and_then(|user| {
        lookup::fetch(
            lookup::Rel::public(c"memberships"),
            c"memberships_pkey",
            &[Key::uuid(1, &tenant), Key::uuid(2, &user)],
            &[c"role"],
            |cols| cols[0].map(crate::datum::enum_label),
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

/// The status of `tenant` (`active`, `suspended`, `archived`), or `None` if it does not exist;
/// from the same per-backend cache as memberships.
pub(crate) fn tenant_status(tenant: pgrx::Uuid) -> Option<&'static str> {
    cached_membership(tenant, None).map(|(status, _)| status)
}

type CacheKey = ([u8; 16], Option<[u8; 16]>);

/// Memberships (positive and negative) kept per backend; all forgotten when full.
const MAX_MEMBERSHIPS: usize = 8192;

thread_local! {
    /// Memberships this backend looked up, positive and negative (see crate::lookup::Cache for
    /// how every write to tenants or memberships empties it in every backend).
    static MEMBERSHIPS: lookup::Cache<CacheKey, Membership> = const { lookup::Cache::new(MAX_MEMBERSHIPS) };
}

fn cached_membership(tenant: pgrx::Uuid, user: Option<pgrx::Uuid>) -> Membership {
    // A membership revoked or a tenant suspended by a transaction that committed a moment ago
    // counts at once, also inside a transaction that is already open: the relcache invalidation
    // that empties the cache is otherwise only read at the next transaction or new table lock.
    // SAFETY: processes pending shared invalidations, as taking a relation lock would.
    unsafe { pg_sys::AcceptInvalidationMessages() };
    let key: CacheKey = (*tenant.as_bytes(), user.map(|u| *u.as_bytes()));
    MEMBERSHIPS.with(|cache| cache.get_or_load(key, || lookup_membership(tenant, user)))
}

/// Check and set the context for `tenant`, acting as `user` (or as the service when `user` is
/// `None` and the caller is service_role).  Returns the role that was set.  `is_service` is only
/// asked when it matters (no user, or no such tenant): a role-membership check is not free, and
/// PostgREST's requests alternate roles, which defeats PostgreSQL's one-role membership cache.
fn enter_tenant(
    tenant: pgrx::Uuid,
    user: Option<pgrx::Uuid>,
    is_service: impl Fn() -> bool,
) -> &'static str {
    if user.is_none() && !is_service() {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
            "no authenticated user in this transaction",
            Some("Call tenancy.pre_request() with verified JWT claims first, or, as service_role, pass as_user."),
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
        if is_service() {
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
    let user = match as_user {
        Some(u) if caller_is_service() => Some(u),
        Some(_) => raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "permission denied to act as another user",
            Some("Only service_role may pass as_user."),
        ),
        None => current().user,
    };
    enter_tenant(tenant, user, caller_is_service)
}

/// Clear the tenant context of the current transaction (fail closed from here on).
#[pg_extern(volatile, parallel_unsafe)]
pub fn clear_context() {
    require_preloaded();
    set_context(None, None, None);
}

/// The most of `request.jwt.claims` or `request.headers` that pre_request reads: a request whose
/// settings are larger is refused before any parsing (PostgREST's are a few kB; any role can set
/// them to anything).
pub const MAX_REQUEST_SETTING: usize = 256 * 1024;

/// A request setting, or `None` when unset or empty (`current_setting(name, true)`; a request's
/// settings end with its transaction: src/context/request_settings.rs); 28000 when it is longer
/// than [`MAX_REQUEST_SETTING`].
fn setting(name: &CStr) -> Option<String> {
    // SAFETY: GetConfigOption returns NULL or a NUL-terminated string we copy at once.
    let ptr = unsafe { pg_sys::GetConfigOption(name.as_ptr(), true, false) };
    if ptr.is_null() {
        return None;
    }
    // SAFETY: non-NULL: a NUL-terminated string owned by the GUC machinery, read before any
    // other call can change the setting.
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    if bytes.len() > MAX_REQUEST_SETTING {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
            format!("{} is longer than 256 kB", name.to_string_lossy()),
            None,
        );
    }
    let s = String::from_utf8_lossy(bytes).into_owned();
    (!s.is_empty()).then_some(s)
}

/// PostgREST's `db-pre-request` hook: turn the verified JWT claims of this request into a tenant
/// context.  `sub` is the user; the tenant comes from the claim `tenant_id`, else
/// `app_metadata.tenant_id`, else the request header `X-Tenant-Id`.  A request with no claims
/// (anon) gets an empty context.
#[pg_extern(volatile, parallel_unsafe)]
pub fn pre_request() {
    require_preloaded();
    let headers = setting(c"request.headers");
    let claimed = if crate::jwt::backend::configured() {
        // Verified mode: the claims of the request's own token (read once, kept with it in the
        // token cache), whatever request.jwt.claims says.
        headers
            .as_deref()
            .and_then(crate::jwt::bearer_token)
            .map(|token| {
                crate::jwt::backend::verified_claims(&token)
                    .identity
                    .clone()
            })
    } else {
        // Trusted mode: the claims PostgREST verified (docs/security.md: "The trust boundary").
        setting(c"request.jwt.claims").map(|raw| claims::claimed(&raw))
    };
    let Some(claimed) = claimed else {
        set_context(None, None, None);
        return;
    };
    let identity = claims::with_header_tenant(claimed, headers.as_deref()).unwrap_or_else(|what| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
            format!("invalid JWT claims: {what}"),
            None,
        )
    });
    let to_pg = |u: uuid::Uuid| pgrx::Uuid::from_bytes(*u.as_bytes());
    let user = identity.user.map(to_pg);
    match identity.tenant.map(to_pg) {
        Some(t) => {
            enter_tenant(t, user, caller_is_service);
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
