//! Envelope encryption: per-tenant data keys, stored only wrapped by a root key.
//!
//! A data key is 256 random bits, created on a tenant's first credential.  It is stored in
//! `tenancy_private.data_keys` sealed with AES-256-GCM under the active root key, the associated data
//! binding it to its tenant and version, with the root key's id.  `tenancy_private.root_keys` records a
//! keyed fingerprint of every root key used, so a server started with a different key under the
//! same id gets "wrong root key" rather than an undecryptable mess.
use super::{aead, keyring};
use crate::error::raise;
use crate::lookup::{self, Key};
use pgrx::prelude::*;
use zeroize::Zeroizing;

#[derive(Clone)]
pub struct DataKey {
    pub version: u32,
    pub key: Zeroizing<[u8; 32]>,
}

type TenantBytes = [u8; 16];

/// Data keys (and each tenant's newest version) kept per backend; all forgotten when full.
const MAX_DATA_KEYS: usize = 4096;
/// Root key ids whose fingerprint this backend has checked.
const MAX_ROOT_KEYS: usize = 64;

thread_local! {
    /// Data keys this backend unwrapped (zeroized when dropped), and each tenant's newest version.
    /// Every change to tenancy_private.data_keys or tenancy_private.root_keys (a new version, shredding) empties
    /// them in every backend (crate::lookup::Cache).
    static KEYS: lookup::Cache<(TenantBytes, u32), DataKey> = const { lookup::Cache::new(MAX_DATA_KEYS) };
    static NEWEST: lookup::Cache<TenantBytes, u32> = const { lookup::Cache::new(MAX_DATA_KEYS) };
}

fn wrap_aad(tenant: &pgrx::Uuid, version: u32) -> Vec<u8> {
    let mut aad = b"pg_tenancy/data-key/v1\0".to_vec();
    aad.extend_from_slice(tenant.as_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

fn vault_error(message: String, hint: Option<&str>) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        message,
        hint,
    )
}

thread_local! {
    /// Root key ids whose recorded fingerprint this backend has checked, until tenancy_private.root_keys
    /// changes.
    static VERIFIED: lookup::Cache<String, ()> = const { lookup::Cache::new(MAX_ROOT_KEYS) };
}

/// The root key named `id`, checked against the fingerprint this database recorded for it.
fn root_key(id: &str) -> &'static keyring::RootKey {
    let ring = super::keyring();
    let Some(key) = ring.get(id) else {
        vault_error(
            format!("root key \"{id}\" is not in the keyring"),
            Some("Restore the keyring line with this key id (tenancy.keyring_file) and restart the server."),
        )
    };
    if VERIFIED.with(|v| v.get(&id.to_string())).is_some() {
        return key;
    }
    let id_datum = std::ffi::CString::new(id).expect("root key ids are validated: ASCII, no NUL");
    let recorded = lookup::fetch(
        lookup::Rel::private(c"root_keys"),
        c"root_keys_pkey",
        &[Key {
            column: 1,
            eq_proc: pg_sys::F_TEXTEQ,
            // SAFETY: a NUL-terminated string, copied into a palloc'd text.
            value: unsafe { pg_sys::Datum::from(pg_sys::cstring_to_text(id_datum.as_ptr())) },
        }],
        &[c"fingerprint"],
        |cols| cols[0].map(crate::datum::bytea),
    )
    .flatten();
    match recorded {
        Some(recorded) if recorded.as_slice() != key.fingerprint() => vault_error(
            format!("wrong root key for key id \"{id}\": the keyring holds a different key under that id"),
            Some("Restore the original keyring; nothing was changed."),
        ),
        Some(_) => VERIFIED.with(|v| v.insert(id.to_string(), ())),
        None => {}
    }
    key
}

/// Open `wrapped`, a 32-byte key sealed under root key `root_key_id` (checked against its
/// recorded fingerprint) with associated data `aad`.  `what` names it in errors.
pub fn open_under(
    root_key_id: &str,
    aad: &[u8],
    wrapped: &[u8],
    what: &str,
) -> Zeroizing<[u8; 32]> {
    let root = root_key(root_key_id);
    let plain = Zeroizing::new(aead::open(&root.key, aad, wrapped).unwrap_or_else(|e| {
        raise(
            PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            format!("{what} cannot be unwrapped: {e}"),
            None,
        )
    }));
    if plain.len() != 32 {
        raise(
            PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            format!("{what} has the wrong length"),
            None,
        );
    }
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&plain);
    key
}

/// Decode a stored (root key id, wrapped key) of `tenant` version `version`.
pub fn unwrap(tenant: &pgrx::Uuid, version: u32, root_key_id: &str, wrapped: &[u8]) -> DataKey {
    let key = open_under(
        root_key_id,
        &wrap_aad(tenant, version),
        wrapped,
        &format!("data key {version} of the tenant"),
    );
    DataKey { version, key }
}

type StoredKey = (u32, String, Vec<u8>);

fn read_stored(cols: &[Option<pg_sys::Datum>]) -> Option<StoredKey> {
    Some((
        cols[0]?.value() as i32 as u32,
        crate::datum::text(cols[1]?),
        crate::datum::bytea(cols[2]?),
    ))
}

const KEY_COLUMNS: [&std::ffi::CStr; 3] = [c"version", c"root_key_id", c"wrapped_key"];

/// Data key `version` of `tenant`; an ERROR if it does not exist (never created, or shredded).
pub fn data_key(tenant: &pgrx::Uuid, version: u32) -> DataKey {
    KEYS.with(|cache| {
        cache.get_or_load((*tenant.as_bytes(), version), || {
            data_key_uncached(tenant, version)
        })
    })
}

fn data_key_uncached(tenant: &pgrx::Uuid, version: u32) -> DataKey {
    let stored = lookup::fetch(
        lookup::Rel::private(c"data_keys"),
        c"data_keys_pkey",
        &[
            Key::uuid(1, tenant),
            Key {
                column: 2,
                eq_proc: pg_sys::F_INT4EQ,
                value: pg_sys::Datum::from(version as i32),
            },
        ],
        &KEY_COLUMNS,
        read_stored,
    )
    .flatten();
    match stored {
        Some((v, root_id, wrapped)) => unwrap(tenant, v, &root_id, &wrapped),
        None => raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("data key {version} of the tenant does not exist: the tenant's keys were shredded, or the ciphertext was made elsewhere"),
            None,
        ),
    }
}

fn newest(tenant: &pgrx::Uuid) -> Option<StoredKey> {
    lookup::fetch_last(
        lookup::Rel::private(c"data_keys"),
        c"data_keys_pkey",
        &[Key::uuid(1, tenant)],
        &KEY_COLUMNS,
        read_stored,
    )
    .flatten()
}

/// The data key new ciphertexts of `tenant` use: the newest version, created (version 1) if the
/// tenant has none yet.
pub fn current_data_key(tenant: &pgrx::Uuid) -> DataKey {
    if let Some(v) = NEWEST.with(|n| n.get(tenant.as_bytes())) {
        return data_key(tenant, v);
    }
    let before = lookup::generation();
    let key = current_data_key_uncached(tenant);
    if lookup::generation() == before {
        NEWEST.with(|n| n.insert(*tenant.as_bytes(), key.version));
        KEYS.with(|k| k.insert((*tenant.as_bytes(), key.version), key.clone()));
    }
    key
}

fn current_data_key_uncached(tenant: &pgrx::Uuid) -> DataKey {
    if let Some((v, root_id, wrapped)) = newest(tenant) {
        return unwrap(tenant, v, &root_id, &wrapped);
    }
    create_data_key(tenant, 1);
    let (v, root_id, wrapped) = newest(tenant).unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            "a new data key could not be read back",
            None,
        )
    });
    unwrap(tenant, v, &root_id, &wrapped)
}

/// The active root key, with its fingerprint recorded in `tenancy_private.root_keys` (on its first use)
/// and checked against that record: a key that contradicts the record is refused.
pub fn active_root() -> &'static keyring::RootKey {
    let root = super::keyring().active();
    if VERIFIED.with(|v| v.get(&root.id)).is_some() {
        return root;
    }
    root_key(&root.id); // refuses a key that contradicts the recorded fingerprint
    let fingerprint = root.fingerprint().to_vec();
    let root_id = root.id.clone();
    crate::superuser::as_superuser_private(|| {
        Spi::run_with_args(
            "INSERT INTO tenancy_private.root_keys (key_id, fingerprint) VALUES ($1, $2) ON CONFLICT (key_id) DO NOTHING",
            &[root_id.into(), fingerprint.into()],
        )
        .unwrap_or_else(|e| crate::error::spi_failed("recording the root key", e))
    });
    // The fingerprint just recorded (or found, if a concurrent session won) must be this key's.
    root_key(&root.id)
}

/// `key`, data key `version` of `tenant`, sealed under the root key `root`.
pub fn wrap(root: &keyring::RootKey, tenant: &pgrx::Uuid, version: u32, key: &[u8; 32]) -> Vec<u8> {
    seal_under(root, &wrap_aad(tenant, version), key)
}

/// `key` sealed under the root key `root` with associated data `aad`.
pub fn seal_under(root: &keyring::RootKey, aad: &[u8], key: &[u8; 32]) -> Vec<u8> {
    aead::seal(&root.key, 0, aad, key).unwrap_or_else(|_| crate::error::rng_failed())
}

/// Create data key `version` of `tenant`, wrapped under the active root key.  A concurrent
/// creation of the same version wins quietly (ON CONFLICT DO NOTHING).
pub fn create_data_key(tenant: &pgrx::Uuid, version: u32) {
    let root = active_root();
    let mut key = Zeroizing::new([0u8; 32]);
    crate::error::random(key.as_mut());
    let wrapped = wrap(root, tenant, version, &key);
    let root_id = root.id.clone();
    crate::superuser::as_superuser_private(|| {
        Spi::run_with_args(
            "INSERT INTO tenancy_private.data_keys (tenant_id, version, root_key_id, wrapped_key) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, version) DO NOTHING",
            &[(*tenant).into(), (version as i32).into(), root_id.into(), wrapped.into()],
        )
        .unwrap_or_else(|e| crate::error::spi_failed("storing a data key", e))
    });
}

/// Lock class of pg_tenancy's tenant-key locks in `pg_locks` (`locktype = 'advisory'`,
/// `objsubid = 29808`); SQL-level advisory locks use 1 and 2, so they can never collide.
const KEY_LOCK_CLASS: u16 = 0x7470;

/// Take the transaction-level lock on `tenant`'s data keys: shared by every writer of a
/// ciphertext (store, update), exclusive for rotation and shredding, so that a rotation never
/// retires a key version that an uncommitted ciphertext uses.  After the lock, pending cache
/// invalidations are read, so a writer that waited for a rotation sees its new key version.
pub fn lock_tenant_keys(tenant: &pgrx::Uuid, exclusive: bool) {
    crate::advisory::advisory_xact_lock(KEY_LOCK_CLASS, tenant, exclusive, true);
    // SAFETY: processes pending shared invalidations, as taking a relation lock would.
    unsafe {
        pg_sys::AcceptInvalidationMessages();
    }
}
