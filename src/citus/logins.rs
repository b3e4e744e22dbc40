//! The application roles' logins on the workers (`tenancy.distribute()`, sql/citus.sql).
//!
//! Citus runs a query's shard tasks over connections it opens to the workers as the role running
//! the query, so `anon`, `authenticated` and `service_role` log in to the workers, with a password
//! that only Citus has (`pg_dist_authinfo`).  A role is the cluster's, but `pg_dist_authinfo` is
//! a database's: every database of the cluster that distributes pg_tenancy has to give Citus the
//! same password, or the last `distribute()` locks the others' queries out of the workers.  A
//! random password per database cannot be shared (no database reads another's catalog), so the
//! password is derived from what every node and every database already shares, the root keyring:
//! HMAC-SHA256 of a label and the role's name under a root key.
//!
//! Each node derives it itself: the coordinator sends a worker the role and the root key's id,
//! never a password, so no statement text that a server logs (`log_statement`), keeps
//! (`pg_stat_statements`) or shows (`pg_stat_activity`) holds one.  A worker sets its role's login
//! with the SCRAM secret of the password (never the password), and writes its `pg_dist_authinfo`
//! with a bound parameter.
//!
//! A root key can change (`rotate_root_key`): each worker says which key's password its role has
//! ([`_citus_login_key`], PostgreSQL's own check against the stored SCRAM or MD5 secret), and a
//! database distributed later keeps that key while it is in the keyring.
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::{c_char, c_int, CStr, CString};

use crate::error::{null_argument, raise, spi_failed};

extern "C-unwind" {
    // libpq/crypt.h and libpq/scram.h, exported by the server (14's `char **logdetail` is the
    // same pointer).
    fn get_role_password(role: *const c_char, logdetail: *mut *const c_char) -> *mut c_char;
    fn plain_crypt_verify(
        role: *const c_char,
        shadow_pass: *const c_char,
        client_pass: *const c_char,
        logdetail: *mut *const c_char,
    ) -> c_int;
    fn pg_be_scram_build_secret(password: *const c_char) -> *mut c_char;
}

/// `role`'s stored secret (palloc'd), or NULL when it has none or it expired.
///
/// # Safety
/// `role` is a NUL-terminated role name; `detail` a valid pointer.
pub(crate) unsafe fn role_password(role: *const c_char, detail: &mut *const c_char) -> *mut c_char {
    // SAFETY: as documented; get_role_password reads pg_authid through the syscache.
    unsafe { get_role_password(role, detail) }
}

/// `role`'s worker password under `root`: 64 hex digits (HMAC-SHA256 of a label and the role).
fn derive(root: &crate::vault::keyring::RootKey, role: &str) -> zeroize::Zeroizing<String> {
    use hmac::{Hmac, Mac};
    use std::fmt::Write;
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&root.key)
        .expect("HMAC-SHA256 takes a key of any length");
    mac.update(b"pg_tenancy citus worker login v1\0");
    mac.update(role.as_bytes());
    let mut out = zeroize::Zeroizing::new(String::with_capacity(64));
    for b in mac.finalize().into_bytes() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn require_superuser(function: &str) {
    // SAFETY: reads the current user's catalog row.
    if !unsafe { pg_sys::superuser() } {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("tenancy.{function}() is for tenancy.distribute(), run by a superuser"),
            None,
        );
    }
}

fn application_role(role: &str) -> CString {
    if !crate::roles::is_application_role_name(role.as_bytes()) {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("{role:?} is not one of pg_tenancy's application roles (anon, authenticated, service_role)"),
            None,
        );
    }
    CString::new(role).expect("no NUL in a role name checked above")
}

/// On this node: which root key's password `role` has.  `none`: no password (or no such role,
/// or it expired); `key:<id>`: the password derived under that key of this node's keyring;
/// `unknown`: a password no key of the keyring derives.  Superuser only (no role is granted it).
#[pg_extern(stable, strict, parallel_unsafe)]
fn _citus_login_key(role: &str) -> String {
    require_superuser("_citus_login_key");
    let role_c = application_role(role);
    let mut detail: *const c_char = std::ptr::null();
    // SAFETY: the role's name is a C string; get_role_password reads pg_authid through the
    // syscache and returns a palloc'd copy of its secret, or NULL.
    let secret = unsafe { get_role_password(role_c.as_ptr(), &mut detail) };
    if secret.is_null() {
        return "none".into();
    }
    let ring = crate::vault::keyring();
    let mut found = "unknown".to_string();
    for key in &ring.keys {
        let password = CString::new(derive(key, role).as_bytes()).expect("hex digits");
        // SAFETY: three C strings; plain_crypt_verify hashes the candidate as the stored secret
        // says (SCRAM-SHA-256 or MD5) and compares.  It returns STATUS_OK (0) on a match.
        let status =
            unsafe { plain_crypt_verify(role_c.as_ptr(), secret, password.as_ptr(), &mut detail) };
        if status == 0 {
            found = format!("key:{}", key.id);
            break;
        }
    }
    // SAFETY: palloc'd by get_role_password, not used after this.
    unsafe { pg_sys::pfree(secret.cast()) };
    found
}

/// On this node: give `role` the password derived under root key `key_id` of this node's keyring
/// (the active key when NULL), in `pg_dist_authinfo` (a row per node of the cluster: Citus's
/// connections from here to it) and, when `login`, as the role's login (`ALTER ROLE … LOGIN PASSWORD` with the
/// password's SCRAM secret, not propagated).  Returns the key's id.  Superuser only.
#[pg_extern(volatile, parallel_unsafe)]
fn _citus_set_login(role: Option<&str>, key_id: Option<&str>, login: Option<bool>) -> String {
    require_superuser("_citus_set_login");
    let role = role.unwrap_or_else(|| null_argument("role"));
    let login = login.unwrap_or_else(|| null_argument("login"));
    application_role(role);
    let ring = crate::vault::keyring();
    let key = match key_id {
        None => ring.active(),
        Some(id) => ring.get(id).unwrap_or_else(|| {
            raise(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("root key {id:?} is not in this node's keyring"),
                Some("Every node of the cluster needs the same keyring (tenancy.keyring_file)."),
            )
        }),
    };
    let password = derive(key, role);
    let authinfo = zeroize::Zeroizing::new(format!("password={}", password.as_str()));
    let statement = if login {
        let password_c = CString::new(password.as_bytes()).expect("hex digits");
        // SAFETY: a C string; returns a palloc'd SCRAM-SHA-256 secret.
        let secret = unsafe { pg_be_scram_build_secret(password_c.as_ptr()) };
        // SAFETY: NUL-terminated, palloc'd above; copied before it is freed.
        let secret_text = unsafe { CStr::from_ptr(secret) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: palloc'd by pg_be_scram_build_secret, not used after this.
        unsafe { pg_sys::pfree(secret.cast()) };
        Some(format!(
            "ALTER ROLE {} LOGIN PASSWORD {}",
            spi::quote_identifier(role),
            spi::quote_literal(&secret_text)
        ))
    } else {
        None
    };
    // The utility hook lets this ALTER ROLE through (crate::citus::keep_worker_logins).
    super::while_set(&super::SETTING_LOGIN, || Spi::connect_mut(|client| {
        client.update(
            "SELECT pg_catalog.set_config('citus.enable_ddl_propagation', 'off', true)",
            None,
            &[],
        )?;
        if let Some(statement) = &statement {
            // An error here would carry the statement, and so the role's SCRAM secret, in its
            // context (SPI's "SQL statement …"): it is raised again with its message alone.
            let client = std::panic::AssertUnwindSafe(&mut *client);
            PgTryBuilder::new(move || {
                let client = client; // the whole wrapper, not its field
                client.0.update(statement, None, &[]).map(|_| ())
            })
            .catch_others(|e| {
                let message = match &e {
                    pg_sys::panic::CaughtError::PostgresError(r)
                    | pg_sys::panic::CaughtError::ErrorReport(r) => r.message().to_string(),
                    _ => "an internal error".to_string(),
                };
                raise(
                    PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!("could not give role {role:?} its Citus login here: {message}"),
                    None,
                )
            })
            .execute()?;
        }
        // One row per node of the cluster (and -1, a node's connections to itself), never the
        // wildcard (nodeid 0): Citus gives the wildcard's password to a connection to any host,
        // and `citus_check_connection_to_node(host, port)` connects, as its caller, wherever it
        // is told (a server that asks for the password in clear text then has it).
        client.update(
            "DELETE FROM pg_catalog.pg_dist_authinfo WHERE rolename = $1",
            None,
            &[role.into()],
        )?;
        client.update(
            "INSERT INTO pg_catalog.pg_dist_authinfo (nodeid, rolename, authinfo)
             SELECT n, $1, $2 FROM (SELECT nodeid FROM pg_catalog.pg_dist_node UNION SELECT -1) s(n)",
            None,
            &[role.into(), authinfo.as_str().into()],
        )?;
        Ok::<_, pgrx::spi::Error>(())
    }))
    .unwrap_or_else(|e| spi_failed("setting an application role's Citus login", e));
    key.id.clone()
}

#[cfg(test)]
mod unit {
    use crate::vault::keyring::RootKey;

    fn key(id: &str, byte: u8) -> RootKey {
        RootKey {
            id: id.into(),
            active: true,
            key: [byte; 32],
        }
    }

    #[test]
    fn a_password_is_the_keys_and_the_roles_only() {
        let (k1, k2) = (key("k1", 1), key("k2", 2));
        let p = super::derive(&k1, "authenticated");
        assert_eq!(p.len(), 64);
        assert!(p.bytes().all(|b| b.is_ascii_hexdigit()));
        // The same under another key id with the same key material (nothing but the key counts).
        assert_eq!(p, super::derive(&key("other", 1), "authenticated"));
        assert_ne!(p, super::derive(&k2, "authenticated"));
        assert_ne!(p, super::derive(&k1, "anon"));
        assert_ne!(
            super::derive(&k1, "anon"),
            super::derive(&k1, "service_role")
        );
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn a_node_says_which_root_keys_password_a_role_has() {
        // The pg_test server has no keyring: a role without a password is "none" before any key
        // is needed.
        Spi::run("ALTER ROLE anon PASSWORD NULL").unwrap();
        assert_eq!(
            Spi::get_one::<String>("SELECT tenancy._citus_login_key('anon')").unwrap(),
            Some("none".into())
        );
    }

    #[pg_test(
        error = "\"postgres\" is not one of pg_tenancy's application roles (anon, authenticated, service_role)"
    )]
    fn only_the_application_roles() {
        Spi::run("SELECT tenancy._citus_login_key('postgres')").unwrap();
    }

    #[pg_test(error = "permission denied for function _citus_login_key")]
    fn only_a_superuser_asks() {
        Spi::run("SET ROLE authenticated; SELECT tenancy._citus_login_key('anon')").unwrap();
    }

    #[pg_test(error = "permission denied for function _citus_set_login")]
    fn only_a_superuser_sets() {
        Spi::run("SET ROLE service_role; SELECT tenancy._citus_set_login('anon', NULL, true)")
            .unwrap();
    }
}
