//! Key lifecycle: root key rotation, tenant data key rotation, crypto-shredding, and the view of
//! which root keys are still in use.
//!
//! Both rotations are transactional (a failed or cancelled call changes nothing) and resumable:
//! given a `batch_size`, a call does that much and says how much remains, so a DBA can rotate a
//! large database in many short transactions; calling again continues where the last committed
//! call stopped.
//!
//! Concurrency: every writer of a ciphertext holds the tenant's key lock in share mode
//! ([`envelope::lock_tenant_keys`]); a tenant rotation and shredding hold it exclusively, so an old
//! key version is retired only once no uncommitted ciphertext can still be using it.
use super::{credentials, envelope};
use crate::error::{null_argument, raise, spi_failed};
use crate::lookup::{self, Key};
use pgrx::prelude::*;

fn check_batch(batch_size: Option<i32>) {
    if batch_size.is_some_and(|b| b < 1) {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "batch_size must be at least 1 (or NULL for everything in one transaction)",
            None,
        );
    }
}

fn require_tenant(tenant: &pgrx::Uuid) {
    let exists = lookup::fetch(
        lookup::Rel::public(c"tenants"),
        c"tenants_pkey",
        &[Key::uuid(1, tenant)],
        &[],
        |_| (),
    );
    if exists.is_none() {
        raise(
            PgSqlErrorCode::ERRCODE_NO_DATA_FOUND,
            "tenant does not exist",
            None,
        );
    }
}

/// Rewrap every data key (and the API-key pepper) that is not under the active root key with the
/// active root key.  The
/// credential rows are not touched: their ciphertexts stay valid, only the wrapping of the data
/// keys changes.  The root keys being retired must still be in the keyring.  Once `remaining` is
/// 0, no data key needs the old root keys any more (`tenancy.root_key_usage()`), and they can be
/// removed from the keyring at the next restart.  Superuser only.
#[pg_extern(volatile, parallel_unsafe)]
pub fn rotate_root_key(
    batch_size: default!(Option<i32>, "NULL"),
) -> TableIterator<'static, (name!(rewrapped, i64), name!(remaining, i64))> {
    check_batch(batch_size);
    let root = envelope::active_root();
    let root_id = root.id.clone();
    let (rewrapped, remaining) = crate::superuser::as_superuser_private(|| {
        Spi::connect_mut(|client| {
            let rows = client.update(
                "SELECT tenant_id, version, root_key_id, wrapped_key FROM tenancy_private.data_keys
                 WHERE root_key_id <> $1 ORDER BY tenant_id, version LIMIT $2 FOR UPDATE",
                None,
                &[root_id.clone().into(), batch_size.into()],
            )?;
            let mut stale = Vec::with_capacity(rows.len());
            for row in rows {
                stale.push((
                    row.get::<pgrx::Uuid>(1)?,
                    row.get::<i32>(2)?,
                    row.get::<String>(3)?,
                    row.get::<Vec<u8>>(4)?,
                ));
            }
            let mut rewrapped = 0i64;
            for (tenant, version, old_root, wrapped) in stale {
                let (Some(tenant), Some(version), Some(old_root), Some(wrapped)) =
                    (tenant, version, old_root, wrapped)
                else {
                    continue; // every column is NOT NULL
                };
                let key = envelope::unwrap(&tenant, version as u32, &old_root, &wrapped);
                let wrapped = envelope::wrap(root, &tenant, version as u32, &key.key);
                client.update(
                    "UPDATE tenancy_private.data_keys SET root_key_id = $3, wrapped_key = $4
                     WHERE tenant_id = $1 AND version = $2",
                    None,
                    &[
                        tenant.into(),
                        version.into(),
                        root_id.clone().into(),
                        wrapped.into(),
                    ],
                )?;
                rewrapped += 1;
            }
            // The API-key pepper (src/api_keys.rs) is wrapped the same way: one small row.
            let peppers = client.update(
                "SELECT purpose, root_key_id, wrapped_key FROM tenancy_private.peppers
                 WHERE root_key_id <> $1 ORDER BY purpose FOR UPDATE",
                None,
                &[root_id.clone().into()],
            )?;
            let mut stale_peppers = Vec::new();
            for row in peppers {
                stale_peppers.push((
                    row.get::<String>(1)?.unwrap_or_default(),
                    row.get::<String>(2)?.unwrap_or_default(),
                    row.get::<Vec<u8>>(3)?.unwrap_or_default(),
                ));
            }
            for (purpose, old_root, wrapped) in stale_peppers {
                let aad = crate::api_keys::pepper_aad(&purpose);
                let key = envelope::open_under(&old_root, &aad, &wrapped, "a pepper");
                let wrapped = envelope::seal_under(root, &aad, &key);
                client.update(
                    "UPDATE tenancy_private.peppers SET root_key_id = $2, wrapped_key = $3 WHERE purpose = $1",
                    None,
                    &[purpose.into(), root_id.clone().into(), wrapped.into()],
                )?;
                rewrapped += 1;
            }
            let remaining = client
                .update(
                    "SELECT (SELECT count(*) FROM tenancy_private.data_keys WHERE root_key_id <> $1)
                          + (SELECT count(*) FROM tenancy_private.peppers WHERE root_key_id <> $1)",
                    None,
                    &[root_id.clone().into()],
                )?
                .first()
                .get_one::<i64>()?
                .unwrap_or(0);
            Ok::<_, pgrx::spi::Error>((rewrapped, remaining))
        })
    })
    .unwrap_or_else(|e: pgrx::spi::Error| spi_failed("rotating the root key", e));
    TableIterator::once((rewrapped, remaining))
}

/// Give `tenant` a new data key version and re-encrypt its credentials under it; once none is left
/// on an older version, the older versions are destroyed.  A call that finds an unfinished
/// rotation (credentials still on older versions) continues it instead of starting another.
/// service_role or superuser.  Must run at READ COMMITTED: a snapshot taken before the rotation's
/// lock could miss a credential written concurrently, and its key must not be retired.
#[pg_extern(volatile, parallel_unsafe)]
pub fn rotate_tenant_key(
    tenant: Option<pgrx::Uuid>,
    batch_size: default!(Option<i32>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(key_version, Option<i32>),
        name!(reencrypted, i64),
        name!(remaining, i64),
        name!(retired_versions, i64),
    ),
> {
    let tenant = tenant.unwrap_or_else(|| null_argument("tenant"));
    check_batch(batch_size);
    // SAFETY: reading a backend-local global.
    if unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "tenancy.rotate_tenant_key() must run at READ COMMITTED",
            Some("A snapshot taken before the rotation's lock could miss a credential written concurrently."),
        );
    }
    require_tenant(&tenant);
    envelope::lock_tenant_keys(&tenant, true);
    let result = crate::superuser::as_superuser_private(|| {
        let newest = Spi::get_one_with_args::<i32>(
            "SELECT max(version) FROM tenancy_private.data_keys WHERE tenant_id = $1",
            &[tenant.into()],
        )
        .unwrap_or_else(|e| spi_failed("reading the tenant's data keys", e));
        let Some(newest) = newest else {
            return (None, 0, 0, 0); // no credential was ever stored, or the keys were shredded
        };
        let stale_sql = "SELECT credential_id, encrypted_data, encrypted_refresh_token
            FROM tenancy_private.credential_secrets
            WHERE tenant_id = $1
              AND (substring(encrypted_data FROM 2 FOR 4) <> $2
                   OR substring(encrypted_refresh_token FROM 2 FOR 4) <> $2)
            ORDER BY credential_id LIMIT $3 FOR UPDATE";
        let newest_bytes = (newest as u32).to_be_bytes().to_vec();
        let unfinished = Spi::get_one_with_args::<bool>(
            &format!("SELECT EXISTS ({stale_sql})"),
            &[tenant.into(), newest_bytes.into(), Some(1i32).into()],
        )
        .unwrap_or_else(|e| spi_failed("reading the tenant's credentials", e))
        .unwrap_or(false);
        let target = if unfinished {
            newest
        } else {
            envelope::create_data_key(&tenant, newest as u32 + 1);
            newest + 1
        };
        let key = envelope::data_key(&tenant, target as u32);
        let target_bytes = (target as u32).to_be_bytes().to_vec();
        Spi::connect_mut(|client| {
            let rows = client.update(
                stale_sql,
                None,
                &[
                    tenant.into(),
                    target_bytes.clone().into(),
                    batch_size.into(),
                ],
            )?;
            let mut stale = Vec::with_capacity(rows.len());
            for row in rows {
                stale.push((
                    row.get::<pgrx::Uuid>(1)?,
                    row.get::<Vec<u8>>(2)?,
                    row.get::<Vec<u8>>(3)?,
                ));
            }
            let mut reencrypted = 0i64;
            for (id, data, refresh) in stale {
                let (Some(id), Some(data)) = (id, data) else {
                    continue; // both NOT NULL
                };
                let reseal = |field: &str, ciphertext: &[u8]| {
                    let plain =
                        zeroize::Zeroizing::new(credentials::open(&tenant, &id, field, ciphertext));
                    credentials::seal(&key, &tenant, &id, field, &plain)
                };
                let data = reseal(credentials::DATA, &data);
                let refresh = refresh.map(|r| reseal(credentials::REFRESH, &r));
                client.update(
                    "UPDATE tenancy_private.credential_secrets
                     SET encrypted_data = $3, encrypted_refresh_token = $4
                     WHERE tenant_id = $1 AND credential_id = $2",
                    None,
                    &[tenant.into(), id.into(), data.into(), refresh.into()],
                )?;
                reencrypted += 1;
            }
            let remaining = client
                .update(
                    &format!("SELECT count(*) FROM ({stale_sql}) s"),
                    None,
                    &[
                        tenant.into(),
                        target_bytes.clone().into(),
                        None::<i32>.into(),
                    ],
                )?
                .first()
                .get_one::<i64>()?
                .unwrap_or(0);
            let retired = if remaining == 0 {
                client
                    .update(
                        "DELETE FROM tenancy_private.data_keys WHERE tenant_id = $1 AND version < $2",
                        None,
                        &[tenant.into(), target.into()],
                    )?
                    .len() as i64
            } else {
                0
            };
            Ok::<_, pgrx::spi::Error>((Some(target), reencrypted, remaining, retired))
        })
        .unwrap_or_else(|e| spi_failed("rotating the tenant's data key", e))
    });
    TableIterator::once(result)
}

/// Crypto-shredding, the GDPR erase path for a tenant's credentials: destroy its data keys, so
/// its ciphertexts can never be decrypted again (here, or from a dump taken from now on), and mark
/// its credentials revoked.  Every backend's cached copy of the keys goes too (sql/caches.sql).
/// Returns the number of data keys destroyed.  service_role or superuser.
#[pg_extern(volatile, parallel_unsafe)]
pub fn shred_tenant(tenant: Option<pgrx::Uuid>) -> i32 {
    let tenant = tenant.unwrap_or_else(|| null_argument("tenant"));
    require_tenant(&tenant);
    envelope::lock_tenant_keys(&tenant, true);
    crate::superuser::as_superuser_private(|| {
        Spi::connect_mut(|client| {
            let destroyed = client
                .update(
                    "DELETE FROM tenancy_private.data_keys WHERE tenant_id = $1",
                    None,
                    &[tenant.into()],
                )?
                .len();
            client.update(
                "UPDATE tenancy.integration_credentials SET status = 'revoked'
                 WHERE tenant_id = $1 AND status <> 'revoked'",
                None,
                &[tenant.into()],
            )?;
            Ok::<_, pgrx::spi::Error>(destroyed as i32)
        })
    })
    .unwrap_or_else(|e| spi_failed("shredding the tenant's keys", e))
}

/// Every root key this database knows of (recorded in `tenancy_private.root_keys`) or the keyring holds:
/// whether it is in the keyring, whether it is the active one, whether the keyring's key matches
/// the recorded fingerprint, and how many keys it wraps (tenant data keys and the API-key
/// pepper).  A key with `wrapped_keys = 0` can be removed from the keyring.  Never key material or fingerprints.  Superuser only.
#[pg_extern(volatile, parallel_unsafe)]
pub fn root_key_usage() -> TableIterator<
    'static,
    (
        name!(key_id, String),
        name!(in_keyring, bool),
        name!(active, bool),
        name!(matches_record, Option<bool>),
        name!(wrapped_keys, i64),
    ),
> {
    let ring = super::keyring();
    let recorded: Vec<(String, Vec<u8>, i64)> = crate::superuser::as_superuser_private(|| {
        Spi::connect(|client| {
            let mut out = Vec::new();
            for row in client.select(
                "SELECT r.key_id, r.fingerprint,
                        (SELECT count(*) FROM tenancy_private.data_keys d WHERE d.root_key_id = r.key_id)
                      + (SELECT count(*) FROM tenancy_private.peppers p WHERE p.root_key_id = r.key_id)
                 FROM tenancy_private.root_keys r ORDER BY r.key_id",
                None,
                &[],
            )? {
                out.push((
                    row.get::<String>(1)?.unwrap_or_default(),
                    row.get::<Vec<u8>>(2)?.unwrap_or_default(),
                    row.get::<i64>(3)?.unwrap_or(0),
                ));
            }
            Ok::<_, pgrx::spi::Error>(out)
        })
    })
    .unwrap_or_else(|e| spi_failed("reading the root keys", e));
    let active = &ring.active().id;
    let mut rows: Vec<_> = recorded
        .iter()
        .map(|(id, fingerprint, count)| {
            let key = ring.get(id);
            (
                id.clone(),
                key.is_some(),
                id == active,
                key.map(|k| k.fingerprint().as_slice() == fingerprint.as_slice()),
                *count,
            )
        })
        .collect();
    for key in &ring.keys {
        if !recorded.iter().any(|(id, _, _)| id == &key.id) {
            rows.push((key.id.clone(), true, &key.id == active, None, 0));
        }
    }
    TableIterator::new(rows)
}
