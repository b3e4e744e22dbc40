//! `tenancy.store_credential` and `tenancy.read_credential`: integration credentials encrypted by
//! the database.
//!
//! The rows are written through SPI with the extension's privileges, after the role check RLS
//! would make (owner/admin of the current tenant, or service_role): no application role has INSERT
//! or UPDATE on the table, so these functions are the only way a ciphertext gets in.  The
//! composite foreign key decides that the integration belongs to the tenant.  They are read by
//! primary key `(tenant_id, id)` with the context's tenant, after the same role check, without
//! SPI: the rows RLS would give, at a fraction of the cost.  The ciphertexts are in
//! `tenancy_private.credential_secrets` and the data keys in `tenancy_private.data_keys` (see
//! [`super::envelope`]), which no application role can reach.  Every ciphertext's associated data
//! is its tenant, its credential's id and its column, so a ciphertext moved anywhere else fails to
//! decrypt.
//!
//! Arguments are checked before the INSERT: a NOT NULL or CHECK violation would put the whole
//! failing row, ciphertexts included, into the error's DETAIL.
use super::{aead, envelope};
use crate::context;
use crate::error::{new_uuid, null_argument, raise, spi_failed};
use crate::jsonb::{JsonbArg, JsonbDatum, ObjectBuilder};
use crate::lookup::{self, Key};
use crate::spi::KeptStatement;
use pgrx::prelude::*;
use std::cell::OnceCell;

pub(super) const DATA: &str = "encrypted_data";
pub(super) const REFRESH: &str = "encrypted_refresh_token";

// The credential's row, then its ciphertexts' (tenancy_private), in one statement.
const INSERT_SQL: &str = "WITH c AS (
        INSERT INTO tenancy.integration_credentials
            (tenant_id, id, integration_id, credential_type, expires_at, scopes)
        VALUES ($1, $2, $3, $4::pg_catalog.text::tenancy.credential_type, $7, coalesce($8, '{}'::pg_catalog.text[]))
        RETURNING tenant_id, id)
    INSERT INTO tenancy_private.credential_secrets (tenant_id, credential_id, encrypted_data, encrypted_refresh_token)
    SELECT c.tenant_id, c.id, $5, $6 FROM c";

thread_local! {
    // Planned once per backend and kept (the plan cache replans them when the caller's role or
    // the tables change).  Every name in them is schema-qualified.
    static INSERT: KeptStatement = const {
        KeptStatement::new(
            INSERT_SQL,
            &[
                pg_sys::UUIDOID,
                pg_sys::UUIDOID,
                pg_sys::UUIDOID,
                pg_sys::TEXTOID,
                pg_sys::BYTEAOID,
                pg_sys::BYTEAOID,
                pg_sys::TIMESTAMPTZOID,
                pg_sys::TEXTARRAYOID,
            ],
        )
    };
}

/// The largest secret a credential holds: `data` (as jsonb) and the refresh token, each.  Service
/// account keys and certificate chains are a few kB; a larger value is refused (54000) before it
/// is encrypted, so no call does unbounded work (AES-GCM runs without interrupt checks).
pub const MAX_SECRET_BYTES: usize = 1024 * 1024;

fn check_size(data: Option<&JsonbArg>, refresh_token: Option<&str>) {
    let too_big = |what: &str| -> ! {
        raise(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!("{what} is larger than 1 MB, the most a credential holds"),
            None,
        )
    };
    if data.is_some_and(|d| d.container().len() > MAX_SECRET_BYTES) {
        too_big("data");
    }
    if refresh_token.is_some_and(|t| t.len() > MAX_SECRET_BYTES) {
        too_big("refresh_token");
    }
}

fn credential_tenant() -> pgrx::Uuid {
    context::admin_tenant("credentials")
}

pub(super) fn seal(
    key: &envelope::DataKey,
    tenant: &pgrx::Uuid,
    id: &pgrx::Uuid,
    field: &str,
    plaintext: &[u8],
) -> Vec<u8> {
    let aad = aead::associated_data(tenant.as_bytes(), id.as_bytes(), field);
    aead::seal(&key.key, key.version, &aad, plaintext)
        .unwrap_or_else(|_| crate::error::rng_failed())
}

pub(super) fn open(
    tenant: &pgrx::Uuid,
    id: &pgrx::Uuid,
    field: &str,
    ciphertext: &[u8],
) -> Vec<u8> {
    let corrupt = |e: aead::OpenError| -> ! {
        raise(
            PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            format!("credential {id} cannot be decrypted ({field}): {e}"),
            None,
        )
    };
    let version = aead::key_version(ciphertext).unwrap_or_else(|e| corrupt(e));
    let key = envelope::data_key(tenant, version);
    let aad = aead::associated_data(tenant.as_bytes(), id.as_bytes(), field);
    aead::open(&key.key, &aad, ciphertext).unwrap_or_else(|e| corrupt(e))
}

/// Store a credential of `integration_id` in the current tenant and return its id.  `data` is the
/// secret JSON (tokens, keys, passwords); it and `refresh_token` are encrypted before they reach
/// the table.  Pass secrets as bind parameters, never as literals in SQL text (statement logs).
#[pg_extern(volatile, parallel_unsafe)]
pub fn store_credential(
    integration_id: Option<pgrx::Uuid>,
    credential_type: Option<&str>,
    data: Option<JsonbArg>,
    refresh_token: default!(Option<&str>, "NULL"),
    expires_at: default!(Option<TimestampWithTimeZone>, "NULL"),
    scopes: default!(Option<Vec<Option<String>>>, "NULL"),
) -> pgrx::Uuid {
    let integration_id = integration_id.unwrap_or_else(|| null_argument("integration_id"));
    let scopes = without_nulls(scopes);
    let credential_type = credential_type.unwrap_or_else(|| null_argument("credential_type"));
    let data = data.unwrap_or_else(|| null_argument("data"));
    if !data.is_object() {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "data must be a JSON object",
            None,
        );
    }
    check_size(Some(&data), refresh_token);
    let tenant = credential_tenant();
    let id = new_uuid();
    envelope::lock_tenant_keys(&tenant, false);
    let key = envelope::current_data_key(&tenant);
    let encrypted_data = seal(&key, &tenant, &id, DATA, data.container());
    let encrypted_refresh = refresh_token.map(|t| seal(&key, &tenant, &id, REFRESH, t.as_bytes()));
    let args = [
        tenant.into(),
        id.into(),
        integration_id.into(),
        credential_type.into(),
        encrypted_data.into(),
        encrypted_refresh.into(),
        expires_at.into(),
        scopes.into(),
    ];
    // With the extension's privileges: no application role may write ciphertexts (the vault's
    // functions are the one door); credential_tenant() made the check RLS made before, and the
    // composite foreign key still decides that the integration is the tenant's.
    crate::superuser::as_extension_private(|| {
        INSERT.with(|insert| insert.execute(&args, "storing the credential"))
    });
    id
}

/// OAuth scopes as given, or 22004 when the array has a NULL element.
fn without_nulls(scopes: Option<Vec<Option<String>>>) -> Option<Vec<String>> {
    scopes.map(|v| {
        v.into_iter()
            .map(|s| s.unwrap_or_else(|| null_argument("an element of scopes")))
            .collect()
    })
}

/// Decrypt credential `id` of the current tenant: its metadata with `data` and `refresh_token`.
/// Owner/admin of the tenant or service_role only; a credential the caller cannot see is "not
/// found", whether or not it exists.
#[pg_extern(volatile, parallel_unsafe)]
pub fn read_credential(id: Option<pgrx::Uuid>) -> JsonbDatum {
    let id = id.unwrap_or_else(|| null_argument("id"));
    let tenant = credential_tenant();
    let mut out = ObjectBuilder::new();
    // The row by primary key (tenant_id, id) with the tenant of the context: exactly the rows the
    // RLS policy gives this caller (owner/admin of the tenant, or service_role), which
    // credential_tenant() has established; read without SPI (see crate::lookup).  The metadata
    // goes into the result while the row is at hand.
    let keys = [Key::uuid(1, &tenant), Key::uuid(2, &id)];
    let found = lookup::fetch(
        lookup::Rel::public(c"integration_credentials"),
        c"integration_credentials_pkey",
        &keys,
        &[
            c"integration_id",
            c"credential_type",
            c"expires_at",
            c"scopes",
            c"status",
        ],
        |cols| {
            out.string("id", Some(&hyphenated(&id)));
            // SAFETY: each datum is of the column's type, from a live slot; from_datum copies.
            unsafe {
                let integration = cols[0].and_then(|d| pgrx::Uuid::from_datum(d, false));
                out.string(
                    "integration_id",
                    integration.as_ref().map(hyphenated).as_deref(),
                );
                out.string(
                    "credential_type",
                    cols[1].map(crate::datum::enum_label).as_deref(),
                );
                out.string(
                    "expires_at",
                    cols[2].map(crate::datum::timestamptz_json).as_deref(),
                );
                // NULL elements cannot come through our functions; a direct write could add one.
                let scopes = cols[3]
                    .and_then(|d| Vec::<Option<String>>::from_datum(d, false))
                    .map(|v| v.into_iter().flatten().collect::<Vec<String>>());
                out.strings("scopes", scopes.as_deref());
                out.string("status", cols[4].map(crate::datum::enum_label).as_deref());
            }
        },
    );
    // Its ciphertexts, from tenancy_private, by the same key.
    let secrets = found.and_then(|()| {
        lookup::fetch(
            lookup::Rel::private(c"credential_secrets"),
            c"credential_secrets_pkey",
            &keys,
            &[c"encrypted_data", c"encrypted_refresh_token"],
            |cols| {
                (
                    cols[0].map(crate::datum::bytea),
                    cols[1].map(crate::datum::bytea),
                )
            },
        )
    });
    let Some((Some(encrypted_data), encrypted_refresh)) = secrets else {
        raise(
            PgSqlErrorCode::ERRCODE_NO_DATA_FOUND,
            format!("credential {id} not found"),
            None,
        )
    };
    let corrupt = |what: &str| -> ! {
        raise(
            PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            format!("credential {id}: the decrypted {what}"),
            None,
        )
    };
    // The plaintext is the jsonb container store_credential encrypted (the AEAD tag proves it).
    let data = zeroize::Zeroizing::new(open(&tenant, &id, DATA, &encrypted_data));
    if !crate::jsonb::container_is_object(&data) {
        corrupt("data is not a jsonb object");
    }
    out.container("data", &data);
    let refresh =
        encrypted_refresh.map(|c| zeroize::Zeroizing::new(open(&tenant, &id, REFRESH, &c)));
    let refresh_token = refresh
        .as_ref()
        .map(|r| std::str::from_utf8(r).unwrap_or_else(|_| corrupt("refresh token is not UTF-8")));
    out.string("refresh_token", refresh_token);
    out.finish()
}

/// A uuid in its usual text form, without going through `fmt` (measurably slower per call).
fn hyphenated(u: &pgrx::Uuid) -> String {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Uuid::from_bytes(*u.as_bytes())
        .hyphenated()
        .encode_lower(&mut buf)
        .to_string()
}

/// Change credential `id` of the current tenant: the fields given are replaced (secrets
/// re-encrypted under the tenant's current data key), the others kept; `clear_refresh_token`
/// removes the refresh token.  Owner/admin or service_role; a credential the caller cannot see is
/// "not found".
#[pg_extern(volatile, parallel_unsafe)]
pub fn update_credential(
    id: Option<pgrx::Uuid>,
    data: default!(Option<JsonbArg>, "NULL"),
    refresh_token: default!(Option<&str>, "NULL"),
    expires_at: default!(Option<TimestampWithTimeZone>, "NULL"),
    scopes: default!(Option<Vec<Option<String>>>, "NULL"),
    status: default!(Option<&str>, "NULL"),
    clear_refresh_token: default!(Option<bool>, false),
) {
    let id = id.unwrap_or_else(|| null_argument("id"));
    let scopes = without_nulls(scopes);
    let clear_refresh_token =
        clear_refresh_token.unwrap_or_else(|| null_argument("clear_refresh_token"));
    if data.as_ref().is_some_and(|d| !d.is_object()) {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "data must be a JSON object",
            None,
        );
    }
    if clear_refresh_token && refresh_token.is_some() {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "pass refresh_token or clear_refresh_token, not both",
            None,
        );
    }
    check_size(data.as_ref(), refresh_token);
    let tenant = credential_tenant();
    // The tenant's current data key, fetched only if a secret is replaced.
    let key = OnceCell::new();
    let key = || {
        key.get_or_init(|| {
            envelope::lock_tenant_keys(&tenant, false);
            envelope::current_data_key(&tenant)
        })
    };
    let encrypted_data = data.map(|d| seal(key(), &tenant, &id, DATA, d.container()));
    let encrypted_refresh = refresh_token.map(|t| seal(key(), &tenant, &id, REFRESH, t.as_bytes()));
    // With the extension's privileges, after credential_tenant()'s check (see store_credential).
    let updated = crate::superuser::as_superuser_private(|| Spi::connect_mut(|client| {
        client
            .update(
                "WITH c AS (
                     UPDATE tenancy.integration_credentials SET
                         expires_at = coalesce($5, expires_at),
                         scopes = coalesce($6, scopes),
                         status = coalesce($7::pg_catalog.text::tenancy.credential_status, status)
                     WHERE tenant_id OPERATOR(pg_catalog.=) $1 AND id OPERATOR(pg_catalog.=) $2
                     RETURNING tenant_id, id),
                 s AS (
                     UPDATE tenancy_private.credential_secrets s SET
                         encrypted_data = coalesce($3, s.encrypted_data),
                         encrypted_refresh_token = CASE WHEN $8 THEN NULL ELSE coalesce($4, s.encrypted_refresh_token) END
                     FROM c
                     WHERE s.tenant_id OPERATOR(pg_catalog.=) c.tenant_id AND s.credential_id OPERATOR(pg_catalog.=) c.id
                     RETURNING s.credential_id)
                 -- A credential is its row and its secrets: with either missing it is not
                 -- found, and the raise below undoes the update of the other.
                 SELECT c.id FROM c JOIN s ON s.credential_id OPERATOR(pg_catalog.=) c.id",
                None,
                &[
                    tenant.into(),
                    id.into(),
                    encrypted_data.into(),
                    encrypted_refresh.into(),
                    expires_at.into(),
                    scopes.into(),
                    status.into(),
                    clear_refresh_token.into(),
                ],
            )
            .map(|t| t.len())
    }))
    .unwrap_or_else(|e| spi_failed("updating the credential", e));
    if updated == 0 {
        raise(
            PgSqlErrorCode::ERRCODE_NO_DATA_FOUND,
            format!("credential {id} not found"),
            None,
        );
    }
}
