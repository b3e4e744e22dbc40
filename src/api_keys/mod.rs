//! Tenant API keys, verified by the database: `tenancy.create_api_key`, `verify_api_key`,
//! `authenticate`, `revoke_api_key`, `rotate_api_key`.  What a key looks like and what is stored
//! of it is in [`format`].
//!
//! The stored hash is keyed with a pepper: 256 random bits made by the database and stored only
//! wrapped under the vault's root key (`tenancy_private.peppers`), so a dump of
//! `tenancy_private.api_key_hashes` cannot check guesses offline without the keyring.  Comparison
//! is constant-time.
//!
//! `tenancy.authenticate(key)` turns a key into the transaction's tenant context (role `api_key`,
//! the key's id and scopes), so RLS applies from the next statement on; like every context it ends
//! with the transaction, which is what makes it safe behind PgBouncer's transaction pooling.
pub mod format;

use crate::context;
use crate::error::{new_uuid, null_argument, raise, random, spi_failed};
use crate::lookup::{self, Key};
use crate::vault::envelope;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use zeroize::Zeroizing;

use format::{encode, key_hash, DISPLAY_LEN};
use format::{parse, valid_scope, Env, FormatError};

// ------------------------------------------------------------------------------------------------
// The pepper
// ------------------------------------------------------------------------------------------------

const PURPOSE: &str = "api_keys";

pub fn pepper_aad(purpose: &str) -> Vec<u8> {
    let mut aad = b"pg_tenancy/pepper/v1\0".to_vec();
    aad.extend_from_slice(purpose.as_bytes());
    aad
}

thread_local! {
    /// The unwrapped pepper, until tenancy_private.peppers or tenancy_private.root_keys changes.
    static PEPPER: lookup::Cache<(), Zeroizing<[u8; 32]>> = const { lookup::Cache::new(1) };
}

fn stored_pepper() -> Option<(String, Vec<u8>)> {
    let purpose = std::ffi::CString::new(PURPOSE).expect("PURPOSE is a constant without NUL");
    lookup::fetch(
        lookup::Rel::private(c"peppers"),
        c"peppers_pkey",
        &[Key {
            column: 1,
            eq_proc: pg_sys::F_TEXTEQ,
            // SAFETY: a palloc'd text copy of a NUL-terminated string.
            value: unsafe { pg_sys::Datum::from(pg_sys::cstring_to_text(purpose.as_ptr())) },
        }],
        &[c"root_key_id", c"wrapped_key"],
        |cols| Some((crate::datum::text(cols[0]?), crate::datum::bytea(cols[1]?))),
    )
    .flatten()
}

/// The pepper, made (and stored wrapped under the active root key) on first use.
fn pepper() -> Zeroizing<[u8; 32]> {
    PEPPER.with(|cache| {
        cache.get_or_load((), || {
            let (root_id, wrapped) = stored_pepper().unwrap_or_else(|| {
                let root = envelope::active_root();
                let mut fresh = Zeroizing::new([0u8; 32]);
                random(fresh.as_mut());
                let wrapped = envelope::seal_under(root, &pepper_aad(PURPOSE), &fresh);
                let root_id = root.id.clone();
                crate::superuser::as_superuser_private(|| {
                    Spi::run_with_args(
                        "INSERT INTO tenancy_private.peppers (purpose, root_key_id, wrapped_key) VALUES ($1, $2, $3)
                         ON CONFLICT (purpose) DO NOTHING",
                        &[PURPOSE.into(), root_id.into(), wrapped.into()],
                    )
                    .unwrap_or_else(|e| spi_failed("storing the API-key pepper", e))
                });
                // A concurrent session may have won: read back whichever is stored.
                stored_pepper().unwrap_or_else(|| {
                    raise(
                        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                        "the API-key pepper could not be read back",
                        None,
                    )
                })
            });
            envelope::open_under(&root_id, &pepper_aad(PURPOSE), &wrapped, "the API-key pepper")
        })
    })
}

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------

fn now() -> i64 {
    // SAFETY: the wall clock, in PostgreSQL's timestamp units (µs since 2000-01-01).
    unsafe { pg_sys::GetCurrentTimestamp() }
}

fn managing_tenant() -> pgrx::Uuid {
    context::admin_tenant("API keys")
}

fn rejected(code: PgSqlErrorCode, message: &str) -> ! {
    raise(code, message, None)
}

fn invalid() -> ! {
    rejected(PgSqlErrorCode::ERRCODE_INVALID_PASSWORD, "invalid API key")
}

// ------------------------------------------------------------------------------------------------
// Verification
// ------------------------------------------------------------------------------------------------

pub struct Verified {
    pub tenant: pgrx::Uuid,
    pub id: pgrx::Uuid,
    pub scopes: Vec<String>,
}

/// What is stored of a key: its hash (tenancy_private.api_key_hashes) and, from its row, the
/// scopes, expiry (µs), revocation and environment.
struct KeyRow {
    hash: Vec<u8>,
    scopes: Vec<String>,
    expires_at: Option<i64>,
    revoked: bool,
    environment: String,
}

/// Keys' stored rows kept per backend; all forgotten when full.
const MAX_KEY_ROWS: usize = 4096;

thread_local! {
    /// The stored rows of the keys this backend verified or holds a context from, or `None` for a
    /// key that has none.  Every write to api_keys or api_key_hashes empties it in every backend
    /// before their next verification (crate::lookup::Cache, sql/caches.sql; verification reads
    /// pending invalidations first), so a revocation counts at once.  The hashes are keyed with
    /// the pepper, which this backend holds anyway.
    static KEY_ROWS: lookup::Cache<[u8; 32], Option<Rc<KeyRow>>> = const { lookup::Cache::new(MAX_KEY_ROWS) };
}

/// The stored row of key `id` of `tenant`: the hash first (a key whose hash is gone is gone),
/// then the key's row, both by primary key; kept per backend (KEY_ROWS).
fn key_row(tenant: &pgrx::Uuid, id: &pgrx::Uuid) -> Option<Rc<KeyRow>> {
    let mut k = [0u8; 32];
    k[..16].copy_from_slice(tenant.as_bytes());
    k[16..].copy_from_slice(id.as_bytes());
    KEY_ROWS.with(|cache| {
        cache.get_or_load(k, || {
            let keys = [Key::uuid(1, tenant), Key::uuid(2, id)];
            let hash = lookup::fetch(
                lookup::Rel::private(c"api_key_hashes"),
                c"api_key_hashes_pkey",
                &keys,
                &[c"key_hash"],
                |cols| cols[0].map(crate::datum::bytea),
            )
            .flatten()?;
            lookup::fetch(
                lookup::Rel::public(c"api_keys"),
                c"api_keys_pkey",
                &keys,
                &[c"scopes", c"expires_at", c"revoked_at", c"environment"],
                |cols| {
                    // SAFETY: datums of the columns' types from a live slot; from_datum copies.
                    unsafe {
                        Some(KeyRow {
                            hash,
                            scopes: Vec::<String>::from_datum(cols[0]?, false).unwrap_or_default(),
                            expires_at: cols[1].map(|d| d.value() as i64),
                            revoked: cols[2].is_some(),
                            environment: crate::datum::text(cols[3]?),
                        })
                    }
                },
            )
            .flatten()
            .map(Rc::new)
        })
    })
}

/// Verify `key`: format and checksum (no table), then the row by key id, the keyed hash in
/// constant time, revocation, expiry, and the tenant's status.  Every rejection is an ERROR
/// (28000 for what is not a key at all, 28P01 for a key that is not valid); none repeats the key.
pub fn verify(key: Option<&str>) -> Verified {
    // A revocation committed a moment ago must count even inside an open transaction.
    // SAFETY: processes pending shared invalidations, as taking any relation lock would.
    unsafe { pg_sys::AcceptInvalidationMessages() };
    let Some(key) = key else {
        rejected(
            PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
            "no API key given",
        )
    };
    let parsed = parse(key.as_bytes()).unwrap_or_else(|e| match e {
        FormatError::Empty => rejected(
            PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
            "no API key given",
        ),
        FormatError::Malformed | FormatError::Checksum => raise(
            PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
            "malformed API key",
            Some("pg_tenancy API keys are 101 characters starting with tk_live_ or tk_test_; this is not one, or it was mistyped."),
        ),
    });
    let expected = key_hash(
        &pepper(),
        parsed.env,
        &parsed.tenant,
        &parsed.id,
        &parsed.secret,
    );
    let tenant = pgrx::Uuid::from_bytes(parsed.tenant);
    let id = pgrx::Uuid::from_bytes(parsed.id);
    let Some(row) = key_row(&tenant, &id) else {
        // Same work as a wrong secret: hash compared against something.
        let _ = subtle::ConstantTimeEq::ct_eq(&expected[..], &[0u8; 32][..]);
        invalid()
    };
    let matches: bool = subtle::ConstantTimeEq::ct_eq(&expected[..], row.hash.as_slice()).into();
    if !matches || row.environment != parsed.env.name() {
        invalid();
    }
    if row.revoked {
        rejected(
            PgSqlErrorCode::ERRCODE_INVALID_PASSWORD,
            "API key has been revoked",
        );
    }
    if row.expires_at.is_some_and(|t| t <= now()) {
        rejected(
            PgSqlErrorCode::ERRCODE_INVALID_PASSWORD,
            "API key has expired",
        );
    }
    match context::tenant_status(tenant) {
        Some("active") => {}
        Some(status) => raise(
            PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
            format!("the API key's tenant is {status}"),
            None,
        ),
        None => invalid(),
    }
    touch(&tenant, &id);
    Verified {
        tenant,
        id,
        scopes: row.scopes.clone(),
    }
}

/// Is key `id` of `tenant` still neither revoked nor expired, its hash still there?  For a context
/// that came from it (`crate::context`: a key revoked while a transaction is open counts at its
/// next statement).  The caller has read pending invalidations (the tenant-status check does).
pub(crate) fn still_valid(tenant: &pgrx::Uuid, id: &pgrx::Uuid) -> bool {
    key_row(tenant, id).is_some_and(|row| !row.revoked && row.expires_at.is_none_or(|e| e > now()))
}

thread_local! {
    /// When this backend last recorded each key's use (µs), to skip even the lookup within a minute.
    static TOUCHED: RefCell<HashMap<[u8; 16], i64>> = RefCell::new(HashMap::new());
}

const MINUTE: i64 = 60_000_000;
/// Lock class of the "recording this key's use" try-locks in `pg_locks` (objsubid 29809).
const USAGE_LOCK_CLASS: u16 = 0x7471;

/// Record that key `id` was used: at most once a minute per key, never waiting for a lock, not
/// in a read-only transaction or on a standby.
fn touch(tenant: &pgrx::Uuid, id: &pgrx::Uuid) {
    let now = now();
    // SAFETY: reading backend-local state.
    let read_only = unsafe { pg_sys::XactReadOnly || pg_sys::RecoveryInProgress() };
    if read_only {
        return;
    }
    let recent = |t: i64| now - t < MINUTE;
    if TOUCHED
        .with(|t| t.borrow().get(id.as_bytes()).copied())
        .is_some_and(recent)
    {
        return;
    }
    let remember = || {
        TOUCHED.with(|t| {
            let mut t = t.borrow_mut();
            if t.len() >= 10_000 {
                t.clear();
            }
            t.insert(*id.as_bytes(), now);
        })
    };
    let last = lookup::fetch(
        lookup::Rel::private(c"api_key_usage"),
        c"api_key_usage_pkey",
        &[Key::uuid(1, tenant), Key::uuid(2, id)],
        &[c"last_used_at"],
        |cols| cols[0].map(|d| d.value() as i64),
    )
    .flatten();
    if last.is_some_and(recent) {
        return remember();
    }
    // Whoever holds this lock is recording the same key's use: let them.
    let acquired = crate::advisory::advisory_xact_lock(USAGE_LOCK_CLASS, id, true, false);
    if !acquired {
        return;
    }
    crate::superuser::as_superuser_private(|| {
        // The time and the minute before it as values (no function in ON CONFLICT's WHERE: what
        // Citus accepts for a distributed table).
        let at = TimestampWithTimeZone::try_from(now)
            .unwrap_or_else(|_| spi_failed("recording the API key's use", "clock out of range"));
        let minute_before = TimestampWithTimeZone::try_from(now - MINUTE)
            .unwrap_or_else(|_| spi_failed("recording the API key's use", "clock out of range"));
        Spi::run_with_args(
            "INSERT INTO tenancy_private.api_key_usage AS u (tenant_id, key_id, last_used_at) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id, key_id) DO UPDATE SET last_used_at = excluded.last_used_at
             WHERE u.last_used_at < $4",
            &[(*tenant).into(), (*id).into(), at.into(), minute_before.into()],
        )
        .unwrap_or_else(|e| spi_failed("recording the API key's use", e))
    });
    remember();
}

// ------------------------------------------------------------------------------------------------
// SQL functions
// ------------------------------------------------------------------------------------------------

/// Create an API key for the current tenant and return it: the only time the key is ever shown.
/// Owner/admin of the tenant, or service_role (after `set_tenant`).  `scopes`: what the key may
/// do, checked with `tenancy.has_scope()`; `expires_at`: NULL for never; `environment`: `live`
/// or `test`.
#[pg_extern(volatile, parallel_unsafe)]
pub fn create_api_key(
    name: Option<&str>,
    scopes: default!(Option<Vec<Option<String>>>, "'{}'"),
    expires_at: default!(Option<TimestampWithTimeZone>, "NULL"),
    environment: default!(Option<&str>, "'live'"),
) -> String {
    let name = name.unwrap_or_else(|| null_argument("name"));
    let env = Env::parse(environment.unwrap_or_else(|| null_argument("environment")))
        .unwrap_or_else(|| {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "environment must be 'live' or 'test'",
                None,
            )
        });
    let scopes = checked_scopes(scopes.unwrap_or_default());
    if expires_at.is_some_and(|t| t.into_inner() <= now()) {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "expires_at must be in the future",
            None,
        );
    }
    let tenant = managing_tenant();
    let (key, _) = insert_key(&tenant, name, &scopes, expires_at, env);
    key.to_string()
}

fn checked_scopes(scopes: Vec<Option<String>>) -> Vec<String> {
    if scopes.len() > 64 {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "a key has at most 64 scopes",
            None,
        );
    }
    let mut out: Vec<String> = scopes
        .into_iter()
        .map(|s| match s {
            Some(s) if valid_scope(&s) => s,
            _ => raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "a scope is 1-100 characters of letters, digits and _ . : * -",
                None,
            ),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Make a key, store its hash, return (key, id).
fn insert_key(
    tenant: &pgrx::Uuid,
    name: &str,
    scopes: &[String],
    expires_at: Option<TimestampWithTimeZone>,
    env: Env,
) -> (Zeroizing<String>, pgrx::Uuid) {
    if name.is_empty() || name.len() > 255 {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "name must be 1-255 bytes",
            None,
        );
    }
    let id = *new_uuid().as_bytes();
    let mut secret = Zeroizing::new([0u8; 32]);
    random(secret.as_mut());
    let hash = key_hash(&pepper(), env, tenant.as_bytes(), &id, &secret);
    let key = encode(env, tenant.as_bytes(), &id, &secret);
    let prefix = key[..DISPLAY_LEN].to_string();
    let id = pgrx::Uuid::from_bytes(id);
    let created_by = context::current().user;
    crate::superuser::as_superuser_private(|| {
        // Two plain INSERTs (no CTE, no subquery: what Citus accepts of a write to a reference
        // table); the creator only if the user row exists.
        let created_by = created_by.filter(|u| {
            Spi::get_one_with_args::<bool>(
                "SELECT EXISTS (SELECT FROM tenancy.users u WHERE u.id OPERATOR(pg_catalog.=) $1)",
                &[(*u).into()],
            )
            .unwrap_or_else(|e| spi_failed("storing the API key", e))
            .unwrap_or(false)
        });
        Spi::run_with_args(
            "INSERT INTO tenancy.api_keys (tenant_id, id, name, prefix, environment, scopes, expires_at, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                (*tenant).into(),
                id.into(),
                name.into(),
                prefix.into(),
                env.name().into(),
                scopes.to_vec().into(),
                expires_at.into(),
                created_by.into(),
            ],
        )
        .unwrap_or_else(|e| spi_failed("storing the API key", e));
        Spi::run_with_args(
            "INSERT INTO tenancy_private.api_key_hashes (tenant_id, key_id, key_hash) VALUES ($1, $2, $3)",
            &[(*tenant).into(), id.into(), hash.to_vec().into()],
        )
        .unwrap_or_else(|e| spi_failed("storing the API key", e))
    });
    (key, id)
}

/// Verify an API key: its tenant, id and scopes (a `tenancy.verified_api_key`), or an ERROR
/// saying why not (28000: not a key; 28P01: not a valid one).  Does not change the context; see
/// `tenancy.authenticate`.  A composite, not a set: `SELECT tenancy.verify_api_key($1)` costs no
/// set-returning machinery, and `SELECT * FROM tenancy.verify_api_key($1)` works too.
#[pg_extern(volatile, parallel_unsafe)]
pub fn verify_api_key(key: Option<&str>) -> Verified {
    verify(key)
}

// SAFETY: builds a tuple of the function's declared result type (tenancy.verified_api_key:
// uuid, uuid, text[]) in the current memory context and returns it as a composite datum.
unsafe impl pgrx::callconv::BoxRet for Verified {
    unsafe fn box_into<'fcx>(
        self,
        fcinfo: &mut pgrx::callconv::FcInfo<'fcx>,
    ) -> pgrx::datum::Datum<'fcx> {
        // SAFETY: see the impl's; fcinfo is the function manager's for this call.
        unsafe {
            let mut desc: pg_sys::TupleDesc = std::ptr::null_mut();
            let kind =
                pg_sys::get_call_result_type(fcinfo.as_mut_ptr(), std::ptr::null_mut(), &mut desc);
            if kind != pg_sys::TypeFuncClass::TYPEFUNC_COMPOSITE
                || desc.is_null()
                || (*desc).natts != 3
            {
                raise(
                    PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                    "tenancy.verify_api_key() must return tenancy.verified_api_key",
                    None,
                );
            }
            let desc = pg_sys::BlessTupleDesc(desc);
            let mut values = [
                self.tenant.into_datum().unwrap_or_else(pg_sys::Datum::null),
                self.id.into_datum().unwrap_or_else(pg_sys::Datum::null),
                self.scopes.into_datum().unwrap_or_else(pg_sys::Datum::null),
            ];
            let mut nulls = [false; 3];
            let tuple = pg_sys::heap_form_tuple(desc, values.as_mut_ptr(), nulls.as_mut_ptr());
            fcinfo.return_raw_datum(pg_sys::HeapTupleHeaderGetDatum((*tuple).t_data))
        }
    }
}

pgrx::impl_sql_translatable!(Verified, "verified_api_key");

/// Verify an API key and make its tenant the context of the current transaction (role
/// `api_key`, with the key's id and scopes), so RLS applies from the next statement.  Returns the
/// tenant id.  Transaction-local, like every context: use it inside the transaction that needs it.
#[pg_extern(volatile, parallel_unsafe)]
pub fn authenticate(key: Option<&str>) -> pgrx::Uuid {
    if !crate::gucs::preloaded() {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "pg_tenancy must be loaded at server start to set a tenant context",
            Some("Add pg_tenancy to shared_preload_libraries in postgresql.conf and restart the server."),
        );
    }
    let v = verify(key);
    context::set_context_with_key(
        Some(v.tenant),
        None,
        Some("api_key"),
        Some((&v.id, &v.scopes)),
    );
    v.tenant
}

/// The current time (`clock_timestamp()`), as a value for an UPDATE: Citus refuses a volatile
/// function in an UPDATE of a distributed or reference table.
fn clock_value() -> TimestampWithTimeZone {
    TimestampWithTimeZone::try_from(now())
        .unwrap_or_else(|e| spi_failed("reading the clock", format!("{e:?}")))
}

/// Revoke key `id` of the current tenant, at once and for good.  Owner/admin or service_role.
/// Returns false if it was already revoked.
#[pg_extern(volatile, parallel_unsafe)]
pub fn revoke_api_key(id: Option<pgrx::Uuid>) -> bool {
    let id = id.unwrap_or_else(|| null_argument("id"));
    let tenant = managing_tenant();
    let revoked = crate::superuser::as_superuser(|| {
        Spi::connect_mut(|c| {
            let rows = c.update(
                &format!(
                    "SELECT revoked_at IS NULL FROM {} WHERE tenant_id = $1 AND id = $2 FOR NO KEY UPDATE",
                    crate::citus::row_lock_target("tenancy", "api_keys")
                ),
                None,
                &[tenant.into(), id.into()],
            )?;
            let found = match rows.into_iter().next() {
                Some(row) => row.get::<bool>(1)?,
                None => None,
            };
            if found == Some(true) {
                // The time as a value: Citus refuses a volatile function in an UPDATE's SET.
                c.update(
                    "UPDATE tenancy.api_keys SET revoked_at = $3 WHERE tenant_id = $1 AND id = $2",
                    None,
                    &[tenant.into(), id.into(), clock_value().into()],
                )?;
            }
            Ok::<_, pgrx::spi::Error>(found)
        })
    })
    .unwrap_or_else(|e| spi_failed("revoking the API key", e));
    match revoked {
        Some(newly) => newly,
        None => raise(
            PgSqlErrorCode::ERRCODE_NO_DATA_FOUND,
            format!("API key {id} not found"),
            None,
        ),
    }
}

/// Replace key `id` of the current tenant by a new one with the same name, scopes, expiry and
/// environment, and return the new key (shown once).  The old key keeps working for `grace`
/// (default 24 hours; `0` ends it now) so clients can switch over, then expires.
#[pg_extern(volatile, parallel_unsafe)]
pub fn rotate_api_key(
    id: Option<pgrx::Uuid>,
    grace: default!(Option<Interval>, "'24 hours'"),
) -> String {
    let id = id.unwrap_or_else(|| null_argument("id"));
    let grace = grace.unwrap_or_else(|| null_argument("grace"));
    let tenant = managing_tenant();
    let old = crate::superuser::as_superuser(|| {
        Spi::connect_mut(|c| {
            let rows = c.update(
                &format!(
                    "SELECT name, scopes, expires_at, environment, revoked_at IS NOT NULL,
                            expires_at IS NOT NULL AND expires_at <= clock_timestamp(), $3::interval < '0'
                     FROM {} WHERE tenant_id = $1 AND id = $2 FOR NO KEY UPDATE",
                    crate::citus::row_lock_target("tenancy", "api_keys")
                ),
                None,
                &[tenant.into(), id.into(), grace.into()],
            )?;
            let Some(row) = rows.into_iter().next() else {
                return Ok(None);
            };
            Ok::<_, pgrx::spi::Error>(Some((
                row.get::<String>(1)?.unwrap_or_default(),
                row.get::<Vec<String>>(2)?.unwrap_or_default(),
                row.get::<TimestampWithTimeZone>(3)?,
                row.get::<String>(4)?.unwrap_or_default(),
                row.get::<bool>(5)?.unwrap_or(true),
                row.get::<bool>(6)?.unwrap_or(true),
                row.get::<bool>(7)?.unwrap_or(true),
            )))
        })
    })
    .unwrap_or_else(|e| spi_failed("reading the API key", e));
    let Some((name, scopes, expires_at, env, revoked, expired, negative)) = old else {
        raise(
            PgSqlErrorCode::ERRCODE_NO_DATA_FOUND,
            format!("API key {id} not found"),
            None,
        )
    };
    if negative {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "grace must not be negative",
            None,
        );
    }
    if revoked || expired {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "a revoked or expired API key cannot be rotated",
            Some("Create a new key with tenancy.create_api_key()."),
        );
    }
    let env = Env::parse(&env).unwrap_or(Env::Live);
    let (key, new_id) = insert_key(&tenant, &name, &scopes, expires_at, env);
    crate::superuser::as_superuser(|| {
        Spi::run_with_args(
            "UPDATE tenancy.api_keys
             SET expires_at = least(coalesce(expires_at, 'infinity'), $5::timestamptz + $3::interval), replaced_by = $4
             WHERE tenant_id = $1 AND id = $2",
            &[tenant.into(), id.into(), grace.into(), new_id.into(), clock_value().into()],
        )
        .unwrap_or_else(|e| spi_failed("retiring the old API key", e))
    });
    key.to_string()
}
