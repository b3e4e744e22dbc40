//! The claims `tenancy.pre_request()` reads: who a request is (`sub`) and which tenant it names
//! (`tenant_id`, else `app_metadata.tenant_id`, else the request header `x-tenant-id`).  From a
//! token this extension verified ([`super`]) or, in trusted mode, from `request.jwt.claims` as
//! PostgREST verified it.  Pure (no server), unit-tested here; errors name the claim, never echo
//! its value.
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

/// What `pre_request` takes from the claims: the user (`sub`) and, if named, the tenant.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ClaimedIdentity {
    pub user: Option<uuid::Uuid>,
    pub tenant: Option<uuid::Uuid>,
}

/// One claim's value: a string (borrowed from the JSON text when it has no escapes), or
/// anything else (skipped without allocating).
enum Claim<'a> {
    Str(Cow<'a, str>),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Claim<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Claim<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Claim<'a>, E> {
                Ok(Claim::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Claim<'a>, E> {
                Ok(Claim::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Claim<'a>, E> {
                Ok(Claim::Other)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Claim<'a>, E> {
                Ok(Claim::Other)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Claim<'a>, E> {
                Ok(Claim::Other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Claim<'a>, E> {
                Ok(Claim::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Claim<'a>, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Claim::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Claim<'a>, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Claim::Other)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

#[derive(Deserialize)]
struct RawClaims<'a> {
    #[serde(default, borrow)]
    sub: Option<Claim<'a>>,
    #[serde(default, borrow)]
    tenant_id: Option<Claim<'a>>,
    #[serde(default, borrow)]
    app_metadata: Option<RawAppMetadata<'a>>,
}

#[derive(Deserialize)]
struct RawAppMetadata<'a> {
    #[serde(default, borrow)]
    tenant_id: Option<Claim<'a>>,
}

#[derive(Deserialize)]
struct RawHeaders<'a> {
    #[serde(rename = "x-tenant-id", default, borrow)]
    tenant_id: Option<Claim<'a>>,
}

fn claim_uuid(claim: Option<Claim>, name: &'static str) -> Result<Option<uuid::Uuid>, String> {
    match claim {
        None => Ok(None),
        Some(Claim::Str(s)) => uuid::Uuid::try_parse(&s)
            .map(Some)
            .map_err(|_| format!("{name} is not a uuid")),
        Some(Claim::Other) => Err(format!("{name} is not a string")),
    }
}

/// Who the claims name: the user (`sub`) and the tenant (`tenant_id`, else
/// `app_metadata.tenant_id`).  Errors name the claim, never echo its value.
pub fn claimed(claims: &str) -> Result<ClaimedIdentity, String> {
    // serde reads a struct from a JSON array too (fields by position): claims must be an object.
    if !claims.trim_start().starts_with('{') {
        return Err(match serde_json::from_str::<IgnoredAny>(claims) {
            Ok(_) => "not a JSON object of claims".to_string(),
            Err(_) => "not JSON".to_string(),
        });
    }
    let raw: RawClaims = serde_json::from_str(claims).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => "not a JSON object of claims".to_string(),
        _ => "not JSON".to_string(),
    })?;
    let user = claim_uuid(raw.sub, "sub")?;
    let mut tenant = claim_uuid(raw.tenant_id, "tenant_id")?;
    if tenant.is_none() {
        tenant = claim_uuid(
            raw.app_metadata.and_then(|m| m.tenant_id),
            "app_metadata.tenant_id",
        )?;
    }
    Ok(ClaimedIdentity { user, tenant })
}

/// The identity the claims name, the tenant taken from the `x-tenant-id` entry of
/// `request.headers` when the claims name none.
pub(crate) fn with_header_tenant(
    identity: Result<ClaimedIdentity, String>,
    headers: Option<&str>,
) -> Result<ClaimedIdentity, String> {
    let mut identity = identity?;
    if identity.tenant.is_none() {
        // An object, as for the claims (serde would read an array by position).
        if let Some(Ok(h)) = headers
            .filter(|h| h.trim_start().starts_with('{'))
            .map(serde_json::from_str::<RawHeaders>)
        {
            identity.tenant = claim_uuid(h.tenant_id, "header x-tenant-id")?;
        }
    }
    Ok(identity)
}

/// Parse `request.jwt.claims` (and, when the claims name no tenant, the `x-tenant-id` entry of
/// `request.headers`).  Errors name the claim, never echo its value.
pub fn parse_claims(claims: &str, headers: Option<&str>) -> Result<ClaimedIdentity, String> {
    with_header_tenant(claimed(claims), headers)
}

#[cfg(test)]
mod unit_tests {
    use super::{parse_claims, ClaimedIdentity};

    const U: &str = "00000000-0000-4000-8000-0000000000a1";
    const T: &str = "a0000000-0000-4000-8000-000000000001";
    const T2: &str = "b0000000-0000-4000-8000-000000000002";

    fn id(user: Option<&str>, tenant: Option<&str>) -> ClaimedIdentity {
        ClaimedIdentity {
            user: user.map(|u| u.parse().unwrap()),
            tenant: tenant.map(|t| t.parse().unwrap()),
        }
    }

    #[test]
    fn where_the_tenant_comes_from() {
        let h = |t: &str| Some(format!(r#"{{"x-tenant-id":"{t}"}}"#));
        let cases: &[(String, Option<String>, ClaimedIdentity)] = &[
            (format!(r#"{{"sub":"{U}"}}"#), None, id(Some(U), None)),
            (
                format!(r#"{{"sub":"{U}","tenant_id":"{T}"}}"#),
                None,
                id(Some(U), Some(T)),
            ),
            (
                format!(r#"{{"sub":"{U}","app_metadata":{{"tenant_id":"{T}"}}}}"#),
                None,
                id(Some(U), Some(T)),
            ),
            // The top-level claim wins over app_metadata, and claims win over the header.
            (
                format!(
                    r#"{{"sub":"{U}","tenant_id":"{T}","app_metadata":{{"tenant_id":"{T2}"}}}}"#
                ),
                h(T2),
                id(Some(U), Some(T)),
            ),
            (format!(r#"{{"sub":"{U}"}}"#), h(T2), id(Some(U), Some(T2))),
            // Unparsable headers are ignored (PostgREST always sends JSON; nothing to trust there).
            (
                format!(r#"{{"sub":"{U}"}}"#),
                Some("not json".into()),
                id(Some(U), None),
            ),
            (r#"{"role":"anon"}"#.to_string(), None, id(None, None)),
            (
                r#"{"sub":null,"tenant_id":null}"#.to_string(),
                None,
                id(None, None),
            ),
            // Escaped strings are decoded (the owned path).
            (
                r#"{"sub":"00000000-0000-4000-8000-0000000000a1"}"#.to_string(),
                None,
                id(Some(U), None),
            ),
            // A realistic Supabase payload: every other claim is skipped.
            (
                format!(
                    r#"{{"aud":"authenticated","exp":1790000000,"iat":1789996400,"iss":"https://x.supabase.co/auth/v1",
                        "sub":"{U}","email":"a@b.c","phone":"","app_metadata":{{"provider":"email","providers":["email"],"tenant_id":"{T}"}},
                        "user_metadata":{{"name":"A","nested":{{"deep":[1,2,{{"x":null}}]}}}},"role":"authenticated","aal":"aal1",
                        "amr":[{{"method":"password","timestamp":1789996400}}],"session_id":"s","is_anonymous":false}}"#
                ),
                None,
                id(Some(U), Some(T)),
            ),
        ];
        for (claims, headers, want) in cases {
            assert_eq!(
                &parse_claims(claims, headers.as_deref()).unwrap(),
                want,
                "{claims}"
            );
        }
    }

    #[test]
    fn bad_claims_name_the_claim_not_its_value() {
        let cases = [
            (r#"{"sub":"nope"}"#, "sub is not a uuid"),
            (r#"{"sub":42}"#, "sub is not a string"),
            (r#"{"sub":{"id":1}}"#, "sub is not a string"),
            (
                r#"{"tenant_id":"secret-looking-value"}"#,
                "tenant_id is not a uuid",
            ),
            (
                r#"{"app_metadata":{"tenant_id":[1]}}"#,
                "app_metadata.tenant_id is not a string",
            ),
            (r#"{"app_metadata":"x"}"#, "not a JSON object of claims"),
            (r#"[1,2]"#, "not a JSON object of claims"),
            (r#""text""#, "not a JSON object of claims"),
            ("null", "not a JSON object of claims"),
            (r#"{"sub":"#, "not JSON"),
            ("", "not JSON"),
        ];
        for (claims, want) in cases {
            let got = parse_claims(claims, None).unwrap_err();
            assert_eq!(got, want, "{claims}");
            assert!(!got.contains("secret-looking-value"));
        }
        assert_eq!(
            parse_claims(
                r#"{"sub":"00000000-0000-4000-8000-0000000000a1"}"#,
                Some(r#"{"x-tenant-id":"zzz"}"#)
            )
            .unwrap_err(),
            "header x-tenant-id is not a uuid"
        );
    }
}
