//! What the hostile-member tests (pgrx-tests/tests/hostile_*.rs) share: a JWT secret and tokens
//! signed with it, PostgREST's request as a hostile session fakes it, and a statement tried in a
//! savepoint.
use crate::{pre_request_context, sqlstate};
use hmac::{Hmac, Mac};
use postgres::Client;

/// The `tenancy.jwt_secret` the tests that need one set.
pub const SECRET: &str = "the-hostile-test-jwt-secret-32-bytes-or-more";

pub fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn jwt(header: &str, claims: &str, secret: &[u8]) -> String {
    let body = format!(
        "{}.{}",
        b64url(header.as_bytes()),
        b64url(claims.as_bytes())
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(body.as_bytes());
    format!("{body}.{}", b64url(&mac.finalize().into_bytes()))
}

pub fn claims(user: &str, tenant: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    format!(r#"{{"sub":"{user}","tenant_id":"{tenant}","role":"authenticated","exp":{exp}}}"#)
}

/// Run `sql` in a savepoint: released if it succeeds, rolled back if it fails.
pub fn in_savepoint(
    c: &mut Client,
    sql: &str,
) -> Result<Vec<postgres::SimpleQueryMessage>, postgres::Error> {
    c.batch_execute("SAVEPOINT attempt").unwrap();
    let result = c.simple_query(sql);
    c.batch_execute(if result.is_ok() {
        "RELEASE SAVEPOINT attempt"
    } else {
        "ROLLBACK TO SAVEPOINT attempt"
    })
    .unwrap();
    result
}

/// One request as PostgREST would send it, or as the hostile session fakes it: the context it got
/// ("tenant,user,role", "-" for none) or the SQLSTATE.
pub fn request(c: &mut Client, claims: &str, headers: &str) -> String {
    pre_request_context(c, None, claims, headers).unwrap_or_else(|e| sqlstate(Err::<(), _>(e)))
}
