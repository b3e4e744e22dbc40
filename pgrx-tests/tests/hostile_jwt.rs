//! A hostile tenant member with a login of its own (a member of `authenticated`, nothing more)
//! forges its identity: with `tenancy.jwt_secret` set, writing `request.jwt.claims` and
//! `request.headers` itself gets it nothing but anon; a token signed with a guessed secret, or with
//! `alg: none`, is refused; it cannot read, set or reset the secret.
use pg_tenancy_client_tests::demo::{ACME, DAVE, FRANK, GLOBEX};
use pg_tenancy_client_tests::hostile::{b64url, claims, jwt, request, SECRET};
use pg_tenancy_client_tests::{connect, login_role, sqlstate, Cluster, TestDb};

#[test]
fn forged_claims_need_the_jwt_secret() {
    let db = TestDb::new("pgt_client_jwt");
    login_role("pgt_hostile", "", &["authenticated"]);
    let mut c = connect(&db.name, "pgt_hostile");
    let frank_in_globex = claims(FRANK, GLOBEX);
    // Without a secret: the documented trust in request.jwt.claims; this is the attack.
    assert_eq!(
        request(&mut c, &frank_in_globex, ""),
        format!("{GLOBEX},{FRANK},owner"),
        "without tenancy.jwt_secret a role with SQL access can claim to be anyone (README: trust boundary)"
    );
    // The secret in the configuration file, where it belongs (ALTER DATABASE/ROLE ... SET refuses
    // it: secrets_stay_out_of_readable_catalogs).
    let cluster = Cluster::with_demo(
        "jwt-secret",
        54352,
        &[format!("tenancy.jwt_secret = '{SECRET}'")],
        "CREATE ROLE pgt_hostile LOGIN; GRANT authenticated TO pgt_hostile;",
    );
    let mut c = cluster.connect_as("postgres", "pgt_hostile");
    let bearer = |t: &str| format!(r#"{{"authorization": "Bearer {t}"}}"#);
    let hs256 = r#"{"alg":"HS256","typ":"JWT"}"#;
    let attempts = [
        (
            "forged claims, no token",
            frank_in_globex.clone(),
            String::new(),
            "-,-,-",
        ),
        (
            "forged claims, forged headers",
            frank_in_globex.clone(),
            r#"{"x-tenant-id": "b0000000-0000-4000-8000-000000000002"}"#.into(),
            "-,-,-",
        ),
        (
            "a token under a guessed secret",
            String::new(),
            bearer(&jwt(hs256, &frank_in_globex, b"secret")),
            "28000",
        ),
        (
            "a token under an empty secret",
            String::new(),
            bearer(&jwt(hs256, &frank_in_globex, b"")),
            "28000",
        ),
        (
            "alg none",
            String::new(),
            bearer(&format!(
                "{}.{}.",
                b64url(br#"{"alg":"none"}"#),
                b64url(frank_in_globex.as_bytes())
            )),
            "28000",
        ),
        (
            "alg HS512",
            String::new(),
            bearer(&jwt(
                r#"{"alg":"HS512"}"#,
                &frank_in_globex,
                SECRET.as_bytes(),
            )),
            "28000",
        ),
    ];
    for (what, claims, headers, want) in attempts {
        let got = request(&mut c, &claims, &headers);
        assert_eq!(got, want, "{what}");
    }
    // The real token of dave still works, and claims that disagree with it are ignored.
    let dave = jwt(hs256, &claims(DAVE, ACME), SECRET.as_bytes());
    assert_eq!(
        request(&mut c, &frank_in_globex, &bearer(&dave)),
        format!("{ACME},{DAVE},member")
    );
    // The secret: not readable, not settable, not resettable, by this role.
    for stmt in [
        "SELECT current_setting('tenancy.jwt_secret')",
        "SET tenancy.jwt_secret = 'my-own-secret-my-own-secret-my-own-secret'",
        "SELECT set_config('tenancy.jwt_secret', 'my-own-secret-my-own-secret-my-own', false)",
        "RESET tenancy.jwt_secret",
        "ALTER ROLE pgt_hostile SET tenancy.jwt_secret = 'x'",
    ] {
        assert_eq!(sqlstate(c.batch_execute(stmt)), "42501", "{stmt}");
    }
    // Not listed by pg_settings / SHOW ALL.
    let listed: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_settings WHERE name = 'tenancy.jwt_secret'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(listed, 0);
    // pg_read_all_settings (pg_monitor's) may SHOW superuser-only settings: the show hook gives
    // them, and superusers, a placeholder, never the secret.
    let mut admin = cluster.connect("postgres");
    admin
        .batch_execute("CREATE ROLE pgt_monitor LOGIN; GRANT pg_monitor TO pgt_monitor;")
        .unwrap();
    for mut client in [admin, cluster.connect_as("postgres", "pgt_monitor")] {
        let shown: String = client
            .query_one("SELECT current_setting('tenancy.jwt_secret')", &[])
            .unwrap()
            .get(0);
        assert_eq!(shown, "(set; see tenancy.jwt_keys())");
    }
}
