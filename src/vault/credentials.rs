//! `tenancy.store_credential` and `tenancy.read_credential`: integration credentials encrypted by
//! the database.
//!
//! The row is written and read **as the caller**, through SPI: RLS decides who may (owner/admin of
//! the current tenant, or service_role), and the composite foreign key decides that the
//! integration belongs to the tenant.  Only the data key comes from a table no application role
//! can read (see [`super::envelope`]).  Every ciphertext's associated data is its tenant, its row
//! id and its column, so a ciphertext moved anywhere else fails to decrypt.
//!
//! Arguments are checked before the INSERT: a NOT NULL or CHECK violation would put the whole
//! failing row, ciphertexts included, into the error's DETAIL.
use super::{aead, envelope};
use crate::context;
use crate::error::{null_argument, raise};
use pgrx::prelude::*;

const DATA: &str = "encrypted_data";
const REFRESH: &str = "encrypted_refresh_token";

/// The tenant of the context, if the caller's role in it may handle credentials.
fn credential_tenant() -> pgrx::Uuid {
    let Some(tenant) = context::current_tenant_id() else {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "no tenant in this transaction's context",
            Some(
                "Call tenancy.set_tenant(), tenancy.pre_request() or tenancy.authenticate() first.",
            ),
        )
    };
    match context::current_role() {
        Some("owner" | "admin" | "service") => tenant,
        _ => raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "permission denied for credentials: only a tenant's owner or admin, or service_role, may handle them",
            None,
        ),
    }
}

fn new_id() -> pgrx::Uuid {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).unwrap_or_else(|_| {
        raise(
            PgSqlErrorCode::ERRCODE_SYSTEM_ERROR,
            "the OS random number generator failed",
            None,
        )
    });
    pgrx::Uuid::from_bytes(
        *uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .as_bytes(),
    )
}

fn seal(
    key: &envelope::DataKey,
    tenant: &pgrx::Uuid,
    id: &pgrx::Uuid,
    field: &str,
    plaintext: &[u8],
) -> Vec<u8> {
    let aad = aead::associated_data(tenant.as_bytes(), id.as_bytes(), field);
    aead::seal(&key.key, key.version, &aad, plaintext).unwrap_or_else(|_| {
        raise(
            PgSqlErrorCode::ERRCODE_SYSTEM_ERROR,
            "the OS random number generator failed",
            None,
        )
    })
}

fn open(tenant: &pgrx::Uuid, id: &pgrx::Uuid, field: &str, ciphertext: &[u8]) -> Vec<u8> {
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
    data: Option<pgrx::JsonB>,
    refresh_token: default!(Option<&str>, "NULL"),
    expires_at: default!(Option<TimestampWithTimeZone>, "NULL"),
    scopes: default!(Option<Vec<String>>, "NULL"),
) -> pgrx::Uuid {
    let integration_id = integration_id.unwrap_or_else(|| null_argument("integration_id"));
    let credential_type = credential_type.unwrap_or_else(|| null_argument("credential_type"));
    let data = data.unwrap_or_else(|| null_argument("data"));
    if !data.0.is_object() {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "data must be a JSON object",
            None,
        );
    }
    let tenant = credential_tenant();
    let id = new_id();
    let key = envelope::current_data_key(&tenant);
    let plaintext = zeroize::Zeroizing::new(data.0.to_string().into_bytes());
    let encrypted_data = seal(&key, &tenant, &id, DATA, &plaintext);
    let encrypted_refresh = refresh_token.map(|t| seal(&key, &tenant, &id, REFRESH, t.as_bytes()));
    Spi::run_with_args(
        "INSERT INTO tenancy.integration_credentials
             (tenant_id, id, integration_id, credential_type, encrypted_data, encrypted_refresh_token, expires_at, scopes)
         VALUES ($1, $2, $3, $4::pg_catalog.text::tenancy.credential_type, $5, $6, $7, coalesce($8, '{}'::pg_catalog.text[]))",
        &[
            tenant.into(),
            id.into(),
            integration_id.into(),
            credential_type.into(),
            encrypted_data.into(),
            encrypted_refresh.into(),
            expires_at.into(),
            scopes.into(),
        ],
    )
    .unwrap_or_else(|e| raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("storing the credential failed: {e}"), None));
    id
}

/// Decrypt credential `id` of the current tenant: its metadata with `data` and `refresh_token`.
/// Owner/admin of the tenant or service_role only; a credential the caller cannot see is "not
/// found", whether or not it exists.
#[pg_extern(volatile, parallel_unsafe)]
pub fn read_credential(id: Option<pgrx::Uuid>) -> pgrx::JsonB {
    let id = id.unwrap_or_else(|| null_argument("id"));
    let tenant = credential_tenant();
    let row = Spi::connect(|client| {
        let table = client.select(
            "SELECT pg_catalog.jsonb_build_object(
                        'id', id, 'integration_id', integration_id, 'credential_type', credential_type,
                        'expires_at', expires_at, 'scopes', scopes, 'status', status),
                    encrypted_data, encrypted_refresh_token
             FROM tenancy.integration_credentials
             WHERE tenant_id OPERATOR(pg_catalog.=) $1 AND id OPERATOR(pg_catalog.=) $2",
            Some(1),
            &[tenant.into(), id.into()],
        )?;
        if table.is_empty() {
            return Ok::<_, pgrx::spi::Error>(None);
        }
        let row = table.first();
        Ok(Some((row.get::<pgrx::JsonB>(1)?, row.get::<Vec<u8>>(2)?, row.get::<Vec<u8>>(3)?)))
    })
    .unwrap_or_else(|e| raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("reading the credential failed: {e}"), None));
    let Some((Some(meta), Some(encrypted_data), encrypted_refresh)) = row else {
        raise(
            PgSqlErrorCode::ERRCODE_NO_DATA_FOUND,
            format!("credential {id} not found"),
            None,
        )
    };
    let data = zeroize::Zeroizing::new(open(&tenant, &id, DATA, &encrypted_data));
    let data: serde_json::Value = serde_json::from_slice(&data).unwrap_or_else(|_| {
        raise(
            PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            format!("credential {id}: decrypted data is not JSON"),
            None,
        )
    });
    let refresh = encrypted_refresh.map(|c| {
        let plain = zeroize::Zeroizing::new(open(&tenant, &id, REFRESH, &c));
        String::from_utf8_lossy(&plain).into_owned()
    });
    let mut out = meta.0;
    if let Some(obj) = out.as_object_mut() {
        obj.insert("data".into(), data);
        obj.insert(
            "refresh_token".into(),
            refresh
                .map(serde_json::Value::String)
                .unwrap_or(serde_json::Value::Null),
        );
    }
    pgrx::JsonB(out)
}
