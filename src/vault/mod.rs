//! The credential vault: the root keyring (loaded at server start, here), the ciphertext format
//! (`aead`), per-tenant data keys wrapped by the root key (`envelope`), the credential functions
//! (`credentials`) and the keys' lifecycle: rotation and shredding (`lifecycle`).
//!
//! The keyring is read once, in the postmaster, while `shared_preload_libraries` is processed;
//! every backend inherits it.  Changing it needs a restart (the GUCs are `PGC_POSTMASTER`).
pub mod aead;
pub mod credentials;
pub mod envelope;
pub mod keyring;
pub mod lifecycle;

use crate::error::raise;
use crate::gucs;
use keyring::Keyring;
use pgrx::prelude::*;
use std::sync::OnceLock;

static KEYRING: OnceLock<Result<Keyring, String>> = OnceLock::new();

const NOT_CONFIGURED: &str =
    "no keyring is configured: set tenancy.keyring_file or tenancy.keyring_command in postgresql.conf and restart";

fn data_dir() -> Option<std::path::PathBuf> {
    // SAFETY: DataDir is a NUL-terminated path set by the postmaster, or NULL.
    unsafe {
        let p = pg_sys::DataDir;
        (!p.is_null()).then(|| {
            std::path::PathBuf::from(std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned())
        })
    }
}

/// Load the keyring (in the postmaster, from `_PG_init`).  A keyring that is configured but
/// unusable is logged (without key material) and reported again at every use.
pub fn load_at_start() {
    let file = gucs::KEYRING_FILE.get();
    let command = gucs::KEYRING_COMMAND.get();
    let result = match (file, command) {
        (Some(_), Some(_)) => {
            Err("set tenancy.keyring_file or tenancy.keyring_command, not both".to_string())
        }
        (Some(f), None) => keyring::read_file(&f.to_string_lossy(), data_dir().as_deref()),
        (None, Some(c)) => keyring::run_command(&c.to_string_lossy()),
        (None, None) => Err(NOT_CONFIGURED.to_string()),
    };
    if let Err(e) = &result {
        if e != NOT_CONFIGURED {
            pgrx::warning!("pg_tenancy: the keyring could not be loaded: {e}");
        }
    }
    let _ = KEYRING.set(result);
}

/// The loaded keyring, or an ERROR (SQLSTATE 55000) saying why there is none.
pub fn keyring() -> &'static Keyring {
    match KEYRING.get() {
        Some(Ok(ring)) => ring,
        Some(Err(e)) => raise(PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, format!("pg_tenancy keyring: {e}"), None),
        None => raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "pg_tenancy keyring: the library was not preloaded",
            Some("Add pg_tenancy to shared_preload_libraries in postgresql.conf and restart the server."),
        ),
    }
}

/// For `tenancy.health()`: whether a keyring is loaded, its key ids and the active one, or why not.
/// Never key material, never fingerprints.
pub fn status() -> serde_json::Value {
    match KEYRING.get() {
        Some(Ok(ring)) => serde_json::json!({
            "keyring_loaded": true,
            "root_key_ids": ring.keys.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(),
            "active_root_key": ring.active().id,
        }),
        Some(Err(e)) => serde_json::json!({ "keyring_loaded": false, "keyring_error": e }),
        None => {
            serde_json::json!({ "keyring_loaded": false, "keyring_error": "the library was not preloaded" })
        }
    }
}

/// A fresh keyring line, `<key_id> <base64 of 32 random bytes> active`, for the keyring file.
/// Superuser only.  Equivalent shell: `printf '%s %s active\n' k1 "$(openssl rand -base64 32)"`.
#[pg_extern(volatile, parallel_unsafe)]
pub fn generate_root_key(key_id: default!(&str, "'k1'")) -> String {
    keyring::generate_line(key_id)
        .unwrap_or_else(|e| raise(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, e, None))
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn generated_root_keys_are_valid_keyring_lines() {
        let line = Spi::get_one::<String>("SELECT tenancy.generate_root_key('k-test')")
            .unwrap()
            .unwrap();
        assert!(line.starts_with("k-test ") && line.ends_with(" active"));
        assert_eq!(
            crate::vault::keyring::parse(&line, "sql")
                .unwrap()
                .active()
                .id,
            "k-test"
        );
    }

    #[pg_test(error = "a key id is 1-64 characters of A-Z a-z 0-9 _ - .")]
    fn bad_key_id() {
        Spi::run("SELECT tenancy.generate_root_key('no spaces')").unwrap();
    }
}
