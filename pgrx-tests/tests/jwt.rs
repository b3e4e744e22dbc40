//! `tenancy.jwt_secret` as a JWKS, with tokens signed independently of pg_tenancy (PyJWT and
//! `cryptography`, in `support/jwt_tokens.py`, with fresh keys each run):
//!
//! * `every_token_as_a_hostile_member`: a login role that is a member of `authenticated` (and so
//!   can write `request.jwt.claims` and `request.headers` itself) sends each token: the good ones
//!   (ES256, RS256, HS256 from an `oct` key, EdDSA, ES384; with and without `kid`) give the
//!   context of their Supabase-shaped claims, every bad one (alg none, HMAC keyed with the RSA
//!   public key, a foreign key under a known kid, an unknown kid, expired, not yet valid, issued in
//!   the future, wrong aud or iss, a swapped payload, a header claiming another algorithm, crit,
//!   an embedded jwk, a DER signature, ...) is 28000 with no part of the token in the message.
//! * `verified_tokens_are_cached_per_backend`: the second use of a token checks no signature
//!   (`library_info()->'jwt_cache'`), a change of the keys empties the cache, and
//!   `tenancy.jwt_cache_entries = 0` turns it off.
//! * `keys_rotate_without_a_restart`: on a cluster of its own, an authenticator session stays
//!   connected while the JWKS goes through a rotation with `ALTER SYSTEM` and a reload: a standby
//!   key added, then the old key revoked; a token of the revoked key is refused at once, although
//!   that backend had cached it.
use pg_tenancy_client_tests::demo::{ACME, DAVE};
use pg_tenancy_client_tests::{pre_request_context, Cluster, TestDb};
use postgres::Client;
use serde_json::Value;

const ISS: &str = "https://project.supabase.test/auth/v1";

/// Keys, JWKS and tokens from the independent signer.
fn signed() -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/jwt_tokens.py");
    let out = std::process::Command::new("/usr/bin/python3")
        .args([script, &now, DAVE, ACME, ISS])
        .output()
        .expect("run /usr/bin/python3 (python3-jwt, python3-cryptography)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// One PostgREST request with `token` as its bearer: the context it got ("tenant,user,role", "-"
/// for none) or "SQLSTATE: message".  `as_role`: the `SET LOCAL ROLE` of an authenticator, if any.
fn request(c: &mut Client, as_role: Option<&str>, token: &str) -> String {
    let headers = serde_json::json!({"authorization": format!("Bearer {token}")}).to_string();
    pre_request_context(c, as_role, "", &headers).unwrap_or_else(|e| {
        let db = e.as_db_error().expect("a server error");
        format!("{}: {}", db.code().code(), db.message())
    })
}

fn dave_in_acme() -> String {
    format!("{ACME},{DAVE},member")
}

#[test]
fn every_token_as_a_hostile_member() {
    let v = signed();
    // The keys in the configuration file, where a JWKS with an oct key (a secret) belongs
    // (ALTER DATABASE/ROLE ... SET refuses secrets: hostile_secrets.rs secrets_stay_out_of_readable_catalogs).
    let cluster = Cluster::with_demo(
        "jwt-tokens",
        54353,
        &[
            format!("tenancy.jwt_secret = {}", quote(&v["jwks"].to_string())),
            "tenancy.jwt_aud = 'authenticated'".to_string(),
            format!("tenancy.jwt_iss = {}", quote(ISS)),
        ],
        "CREATE ROLE pgt_jwt_hostile LOGIN; GRANT authenticated TO pgt_jwt_hostile;",
    );
    let mut admin = cluster.connect("postgres");
    let mut c = cluster.connect_as("postgres", "pgt_jwt_hostile");
    let cases = v["cases"].as_array().unwrap();
    let (mut good, mut bad) = (0, 0);
    for case in cases {
        let (name, token) = (
            case["name"].as_str().unwrap(),
            case["token"].as_str().unwrap(),
        );
        let got = request(&mut c, None, token);
        if case["want"] == "ok" {
            assert_eq!(got, dave_in_acme(), "{name}");
            good += 1;
        } else {
            assert!(got.starts_with("28000: invalid JWT: "), "{name}: {got}");
            for part in token.split('.').filter(|p| p.len() > 3) {
                assert!(
                    !got.contains(part),
                    "{name}: the message quotes the token: {got}"
                );
            }
            bad += 1;
        }
    }
    assert!(good >= 9 && bad >= 25, "{good} good, {bad} bad");
    // The member can neither read nor change the keys, nor loosen the checks, nor turn the cache.
    for sql in [
        "SELECT current_setting('tenancy.jwt_secret')",
        "SET tenancy.jwt_secret = 'mine-mine-mine-mine-mine-mine-mine-mine'",
        "SET tenancy.jwt_aud = ''",
        "SET tenancy.jwt_cache_entries = 0",
        "SELECT * FROM tenancy.jwt_keys()",
        "SELECT * FROM tenancy.jwt_keys('{}')",
    ] {
        let e = c.batch_execute(sql).expect_err(sql);
        assert_eq!(e.code().map(|c| c.code()), Some("42501"), "{sql}: {e}");
    }
    // The superuser's view of the keys: what is used, what is skipped and why, no material.
    let rows = admin
        .query(
            "SELECT position, kid, kty, alg, bits, used, note FROM tenancy.jwt_keys() ORDER BY position",
            &[],
        )
        .unwrap();
    let described: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {} {} {} {}",
                r.get::<_, i32>(0),
                r.get::<_, Option<String>>(1).unwrap_or_default(),
                r.get::<_, String>(2),
                r.get::<_, Option<String>>(3).unwrap_or_default(),
                r.get::<_, Option<i32>>(4).unwrap_or_default(),
                r.get::<_, bool>(5),
                r.get::<_, Option<String>>(6).unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        described,
        [
            "1 ec-1 EC ES256 256 true ",
            "2 ec384-1 EC ES384 384 true ",
            "3 rsa-1 RSA RS256 2048 true ",
            "4 ed-1 OKP EdDSA 256 true ",
            "5 hs-1 oct HS256 256 true ",
            "6 enc-1 RSA  0 false \"use\" is not \"sig\"",
        ]
    );
    // A value is checked before it is set; a bad one says why (55000) and quotes nothing.
    let bad_secret = r#"{"kty":"oct","k":"c2hvcnQtc2VjcmV0"}"#;
    let e = admin
        .query(
            &format!("SELECT * FROM tenancy.jwt_keys({})", quote(bad_secret)),
            &[],
        )
        .unwrap_err();
    let db_error = e.as_db_error().unwrap();
    assert_eq!(db_error.code().code(), "55000");
    assert!(
        db_error.message().contains("at least 32 bytes") && !db_error.message().contains("c2hvcnQ"),
        "{}",
        db_error.message()
    );
    // Refused statements that carried a secret leave the error in the server log, not the
    // statement: ALTER DATABASE ... SET (refused for a secret) and jwt_keys(<bad value>).
    let oct_k = v["keys"]["hs"]["k"].as_str().unwrap();
    let e = admin
        .batch_execute(&format!(
            "ALTER DATABASE postgres SET tenancy.jwt_secret = {}",
            quote(&v["jwks"].to_string())
        ))
        .unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("22023"));
    let bad = format!(
        r#"{{"keys":[{{"kty":"oct","k":"{oct_k}"}},{{"kty":"RSA","n":"AQAB","e":"AQAB"}}]}}"#
    );
    let e = admin
        .query(
            &format!("SELECT * FROM tenancy.jwt_keys({})", quote(&bad)),
            &[],
        )
        .unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("55000"));
    // The log is written a moment later than the client hears of the error.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let log = cluster.log();
    assert!(
        log.contains("holds secret key material") && log.contains("an RSA modulus of 17 bits"),
        "the errors are logged: {log}"
    );
    assert!(
        !log.contains(oct_k),
        "a secret reached the server log: {log}"
    );
    // The legacy form: a secret string, HS256 only (ALTER SYSTEM and a reload; the connected
    // session sees it at its next statement once its backend has processed the SIGHUP).
    let secret_token = v["secret_token"].as_str().unwrap();
    admin
        .batch_execute(&format!(
            "ALTER SYSTEM SET tenancy.jwt_secret = {}",
            quote(v["secret"].as_str().unwrap())
        ))
        .unwrap();
    admin.batch_execute("SELECT pg_reload_conf()").unwrap();
    wait_for(&mut c, None, secret_token, &dave_in_acme());
    let es256 = cases[0]["token"].as_str().unwrap();
    assert!(
        request(&mut c, None, es256).starts_with("28000"),
        "an ES256 token under a secret"
    );
}

/// Send `token` until the answer starts with `want` (a reload reaches a session a moment later).
fn wait_for(c: &mut Client, as_role: Option<&str>, token: &str, want: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got = request(c, as_role, token);
        if got.starts_with(want) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the reload did not reach the session: {got}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn cache_counts(c: &mut Client) -> (i64, i64) {
    let row = c
        .query_one(
            "SELECT (i->'jwt_cache'->>'hits')::bigint, (i->'jwt_cache'->>'misses')::bigint FROM tenancy.library_info() i",
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

#[test]
fn verified_tokens_are_cached_per_backend() {
    let db = TestDb::new("pgt_client_jwt_cache");
    let v = signed();
    // An authenticator-shaped session (here the superuser, so it can change the setting itself).
    let mut c = db.connect("postgres");
    c.batch_execute(&format!(
        "SET tenancy.jwt_secret = {}",
        quote(&v["jwks"].to_string())
    ))
    .unwrap();
    let es256 = v["cases"][0]["token"].as_str().unwrap();
    let (hits, misses) = cache_counts(&mut c);
    for _ in 0..3 {
        assert_eq!(
            request(&mut c, Some("authenticated"), es256),
            dave_in_acme()
        );
    }
    assert_eq!(
        cache_counts(&mut c),
        (hits + 2, misses + 1),
        "verified once, then hits"
    );
    // A refused token is never cached: each use checks it again.
    let forged = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "a foreign EC key under a known kid")
        .unwrap()["token"]
        .as_str()
        .unwrap();
    for _ in 0..2 {
        assert!(request(&mut c, Some("authenticated"), forged).starts_with("28000"));
    }
    assert_eq!(cache_counts(&mut c), (hits + 2, misses + 3));
    // Claims are checked at every use, also on a hit: a cached token under a new audience rule.
    c.batch_execute("SET tenancy.jwt_aud = 'another-audience'")
        .unwrap();
    assert!(request(&mut c, Some("authenticated"), es256).contains("aud"));
    assert_eq!(cache_counts(&mut c), (hits + 3, misses + 3));
    c.batch_execute("RESET tenancy.jwt_aud").unwrap();
    // Other keys (the same set with the EC key removed): the cache is emptied, and the token of
    // the removed key is refused although it was cached.
    let mut reduced = v["jwks"].clone();
    reduced["keys"].as_array_mut().unwrap().remove(0);
    c.batch_execute(&format!(
        "SET tenancy.jwt_secret = {}",
        quote(&reduced.to_string())
    ))
    .unwrap();
    assert!(request(&mut c, Some("authenticated"), es256).starts_with("28000"));
    let entries: i64 = c
        .query_one(
            "SELECT (tenancy.library_info()->'jwt_cache'->>'entries')::bigint",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(entries, 0);
    // Off: every use verifies.
    c.batch_execute(&format!(
        "SET tenancy.jwt_secret = {}; SET tenancy.jwt_cache_entries = 0",
        quote(&v["jwks"].to_string())
    ))
    .unwrap();
    let (hits, misses) = cache_counts(&mut c);
    for _ in 0..3 {
        assert_eq!(
            request(&mut c, Some("authenticated"), es256),
            dave_in_acme()
        );
    }
    assert_eq!(cache_counts(&mut c), (hits, misses + 3));
}

#[test]
fn keys_rotate_without_a_restart() {
    let v = signed();
    let cluster = Cluster::with_demo(
        "jwt-rotation",
        54351,
        &[],
        "CREATE ROLE authenticator LOGIN NOINHERIT; GRANT anon, authenticated TO authenticator;",
    );
    let mut admin = cluster.connect("postgres");
    let mut api = cluster.connect_as("postgres", "authenticator");
    let old = v["cases"][0]["token"].as_str().unwrap();
    let standby = v["standby"]["token"].as_str().unwrap();
    let (key_a, key_b) = (&v["keys"]["ec"], &v["standby"]["jwk"]);
    // Each step: ALTER SYSTEM and a reload; the authenticator's session, connected all along,
    // sees the new keys at its next statement once its backend has processed the SIGHUP.
    let step =
        |admin: &mut Client, api: &mut Client, keys: &[&Value], probe: &str, want_probe: &str| {
            let jwks = serde_json::json!({ "keys": keys }).to_string();
            admin
                .batch_execute(&format!(
                    "ALTER SYSTEM SET tenancy.jwt_secret = {}",
                    quote(&jwks)
                ))
                .unwrap();
            admin.batch_execute("SELECT pg_reload_conf()").unwrap();
            wait_for(api, Some("authenticated"), probe, want_probe);
        };
    // 1. The current key only: its tokens pass (and are cached), the standby's are refused.
    step(&mut admin, &mut api, &[key_a], old, &dave_in_acme());
    assert_eq!(
        request(&mut api, Some("authenticated"), old),
        dave_in_acme()
    );
    assert!(request(&mut api, Some("authenticated"), standby).starts_with("28000"));
    // 2. The standby key published beside it: both pass, tokens already issued included.
    step(
        &mut admin,
        &mut api,
        &[key_a, key_b],
        standby,
        &dave_in_acme(),
    );
    assert_eq!(
        request(&mut api, Some("authenticated"), old),
        dave_in_acme()
    );
    // 3. The old key revoked: its token is refused at once in the same session, cached or not.
    step(&mut admin, &mut api, &[key_b], old, "28000");
    assert!(request(&mut api, Some("authenticated"), old).starts_with("28000: invalid JWT: "));
    assert_eq!(
        request(&mut api, Some("authenticated"), standby),
        dave_in_acme()
    );
    // No crash along the way.
    let log = cluster.log();
    assert!(
        !log.contains("PANIC") && !log.contains("terminated by signal"),
        "{log}"
    );
}
