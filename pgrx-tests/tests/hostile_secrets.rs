//! A hostile tenant member with a login of its own, after secrets:
//!
//! * `secrets_stay_out_of_readable_catalogs`: no secret where every role reads (settings stored
//!   with ALTER DATABASE/ROLE, functions' SET clauses, statistics, the catalogs).
//! * `verification_time_does_not_depend_on_the_matching_prefix`: a statistical check that
//!   rejecting a wrong API-key secret takes as long whether it matches the real one in no leading
//!   characters or in all but the last.
//! * `errors_carry_no_backtrace_even_under_rust_backtrace`: no Rust backtrace in an error's DETAIL.
use pg_tenancy_client_tests::demo::{ACME, FRANK, GLOBEX};
use pg_tenancy_client_tests::hostile::{b64url, claims, jwt, request};
use pg_tenancy_client_tests::{login_role, sqlstate, Cluster, TestDb};
use postgres::Client;

/// `ALTER DATABASE/ROLE ... SET` stores its values where every role reads them
/// (`pg_db_role_setting`, `pg_roles.rolconfig`; `CREATE FUNCTION ... SET` in `pg_proc`): with the
/// secret there, any member could sign tokens as anyone (found in review; 0.2.0's README even
/// advised it).  A secret is refused there (22023, quoting nothing); public keys are not; and a
/// secret stored there before (planted in the catalog here) makes every `pre_request` of the
/// session refuse (55000) instead of falling back to trusting claims.
#[test]
fn secrets_stay_out_of_readable_catalogs() {
    let db = TestDb::new("pgt_client_jwt_catalog");
    login_role("pgt_catalog_reader", "", &["authenticated"]);
    login_role("pgt_hostile_other", "", &["authenticated"]);
    let mut admin = db.connect("postgres");
    let secret = "catalog-secret-of-at-least-32-bytes-0123456789";
    let oct = format!(
        r#"{{"keys":[{{"kty":"oct","k":"{}"}}]}}"#,
        b64url(secret.as_bytes())
    );
    // Each attempt in a transaction rolled back: were the check ever to let one through, it would
    // not stay behind for the other tests of this cluster.
    for (stmt, value) in [
        ("ALTER DATABASE {db} SET tenancy.jwt_secret = {v}", secret.to_string()),
        ("ALTER DATABASE {db} SET tenancy.jwt_secret = {v}", oct.clone()),
        ("ALTER ROLE pgt_catalog_reader SET tenancy.jwt_secret = {v}", secret.to_string()),
        ("ALTER ROLE pgt_catalog_reader IN DATABASE {db} SET tenancy.jwt_secret = {v}", secret.to_string()),
        ("ALTER ROLE ALL SET tenancy.jwt_secret = {v}", secret.to_string()),
        ("CREATE FUNCTION public.f() RETURNS int LANGUAGE sql SET tenancy.jwt_secret = {v} AS 'SELECT 1'", secret.to_string()),
        ("CREATE PROCEDURE public.p() LANGUAGE sql SET tenancy.jwt_secret = {v} AS 'SELECT 1'", secret.to_string()),
    ] {
        let sql = stmt
            .replace("{db}", &db.name)
            .replace("{v}", &format!("'{}'", value.replace('\'', "''")));
        admin.batch_execute("BEGIN").unwrap();
        let result = admin.batch_execute(&sql);
        admin.batch_execute("ROLLBACK").unwrap();
        let e = result.expect_err(&sql);
        let e = e.as_db_error().unwrap();
        assert_eq!(e.code().code(), "22023", "{sql}");
        assert!(e.message().contains("secret key material"), "{sql}: {}", e.message());
        for text in [e.message(), e.detail().unwrap_or(""), e.hint().unwrap_or("")] {
            assert!(!text.contains(secret) && !text.contains(&b64url(secret.as_bytes())));
        }
    }
    // Public keys may live there (they are public): verification is on, forged claims get anon.
    let public = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"m6uyG-8v_gyjooA7MH-cbKfHUUkaNRVQcFRt8cjbM4Y","y":"lt7GnTvJk7t_iCk8cL4mzBwyzrC01l3Db91RHOf4P9w"}]}"#;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} SET tenancy.jwt_secret = '{public}'",
            db.name
        ))
        .unwrap();
    let mut c = db.connect("pgt_catalog_reader");
    assert_eq!(request(&mut c, &claims(FRANK, GLOBEX), ""), "-,-,-");
    // A secret stored there before this check (planted straight into the catalog): refused when
    // the session starts (a WARNING that quotes nothing), and then every pre_request is 55000.
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {db} RESET tenancy.jwt_secret;
             SET allow_system_table_mods = on;
             INSERT INTO pg_db_role_setting
             SELECT oid, 0, ARRAY['tenancy.jwt_secret={secret}'] FROM pg_database WHERE datname = '{db}';
             RESET allow_system_table_mods;",
            db = db.name
        ))
        .unwrap();
    let attempts = [
        (claims(FRANK, GLOBEX), String::new()),
        (
            String::new(),
            format!(
                r#"{{"authorization": "Bearer {}"}}"#,
                jwt(
                    r#"{"alg":"HS256"}"#,
                    &claims(FRANK, GLOBEX),
                    secret.as_bytes()
                )
            ),
        ),
    ];
    let mut c = db.connect("pgt_catalog_reader");
    for (claims, headers) in &attempts {
        assert_eq!(request(&mut c, claims, headers), "55000");
    }
    // The same planted on the role, in this database only (ALTER ROLE ... IN DATABASE).
    admin
        .batch_execute(&format!(
            "SET allow_system_table_mods = on;
             DELETE FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = '{db}');
             INSERT INTO pg_db_role_setting
             SELECT d.oid, r.oid, ARRAY['tenancy.jwt_secret={secret}'] FROM pg_database d, pg_roles r
             WHERE d.datname = '{db}' AND r.rolname = 'pgt_catalog_reader';
             RESET allow_system_table_mods;",
            db = db.name
        ))
        .unwrap();
    let mut c = db.connect("pgt_catalog_reader");
    for (claims, headers) in &attempts {
        assert_eq!(request(&mut c, claims, headers), "55000");
    }
    // Another login of the same database is not concerned (its settings hold no secret).
    assert_eq!(
        request(
            &mut db.connect("pgt_hostile_other"),
            &claims(FRANK, GLOBEX),
            ""
        ),
        format!("{GLOBEX},{FRANK},owner"),
        "trusted mode, as documented, where no secret is configured"
    );
    admin
        .batch_execute(&format!(
            "SET allow_system_table_mods = on;
             DELETE FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = '{}');",
            db.name
        ))
        .unwrap();
}

/// Server-side time of `verify_api_key` for each key, `rounds` times, interleaved, in microseconds.
fn timings(c: &mut Client, keys: &[String], rounds: i32) -> Vec<Vec<f64>> {
    let rows = c
        .query(
            "WITH k AS (SELECT ord, key FROM unnest($1::text[]) WITH ORDINALITY u(key, ord))
             SELECT ord::int, pg_temp.time_verify(key) FROM generate_series(1, $2) r, k ORDER BY r, ord",
            &[&keys, &rounds],
        )
        .unwrap();
    let mut out = vec![Vec::new(); keys.len()];
    for r in rows {
        let i: i32 = r.get(0);
        out[(i - 1) as usize].push(r.get(1));
    }
    out
}

/// Mean of the middle 80% (clock_timestamp() ticks in whole microseconds: a median would be
/// quantized to them, a trimmed mean is not).
fn trimmed_mean(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let cut = v.len() / 10;
    let middle = &v[cut..v.len() - cut];
    middle.iter().sum::<f64>() / middle.len() as f64
}

#[test]
fn verification_time_does_not_depend_on_the_matching_prefix() {
    let db = TestDb::new("pgt_client_timing");
    let mut c = db.connect("postgres");
    c.batch_execute(&format!("BEGIN; SELECT tenancy.set_tenant('{ACME}')"))
        .unwrap();
    let key: String = c
        .query_one("SELECT tenancy.create_api_key('timing')", &[])
        .unwrap()
        .get(0);
    c.batch_execute("COMMIT").unwrap();
    c.batch_execute(
        r#"CREATE FUNCTION pg_temp.with_checksum(body text) RETURNS text LANGUAGE plpgsql AS $$
           DECLARE
               n bigint := ('x' || encode(substr(sha256(convert_to('pg_tenancy/api-key-checksum/v1', 'UTF8') || '\x00'::bytea
                                                         || convert_to(body, 'UTF8')), 1, 4), 'hex'))::bit(32)::bigint;
               digits text := '';
           BEGIN
               FOR i IN 1..6 LOOP
                   digits := substr('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz', (n % 62)::int + 1, 1) || digits;
                   n := n / 62;
               END LOOP;
               RETURN body || digits;
           END $$;
           CREATE FUNCTION pg_temp.time_verify(key text) RETURNS double precision LANGUAGE plpgsql AS $$
           DECLARE t0 timestamptz;
           BEGIN
               t0 := clock_timestamp();
               BEGIN
                   PERFORM tenancy.verify_api_key(key);
               EXCEPTION WHEN invalid_password THEN NULL;
               END;
               RETURN extract(epoch FROM clock_timestamp() - t0) * 1e6;
           END $$;"#,
    )
    .unwrap();
    // The secret is characters 53..95 (after tk_live_, the tenant and the key id).  Two wrong
    // secrets with a valid checksum: one differs from the real secret at its first character, one
    // only at its last.
    let flip = |ch: char| if ch == 'A' { 'B' } else { 'A' };
    let body = &key[..95];
    let mut first: Vec<char> = body.chars().collect();
    first[52] = flip(first[52]);
    let mut last: Vec<char> = body.chars().collect();
    last[94] = flip(last[94]);
    let with_checksum = |c: &mut Client, b: String| -> String {
        c.query_one("SELECT pg_temp.with_checksum($1)", &[&b])
            .unwrap()
            .get(0)
    };
    let keys = vec![
        with_checksum(&mut c, first.into_iter().collect()),
        with_checksum(&mut c, last.into_iter().collect()),
    ];
    for k in &keys {
        assert_eq!(
            sqlstate(c.query_one("SELECT tenancy.verify_api_key($1)", &[k])),
            "28P01",
            "a wrong secret with a valid checksum"
        );
    }
    // Warm up, then 3 samples of 2,000 interleaved calls each: the trimmed means must agree within
    // 5% in at least 2 of them (a comparison that stops at the first differing byte would show as a
    // steady gap once it is a visible share of the call).
    timings(&mut c, &keys, 200);
    let mut ratios = Vec::new();
    for _ in 0..3 {
        let mut t = timings(&mut c, &keys, 2000);
        let (a, b) = (trimmed_mean(&mut t[0]), trimmed_mean(&mut t[1]));
        ratios.push(b / a);
    }
    println!("verify_api_key, wrong secret matching 0 vs 42 leading characters: ratios of trimmed mean times {ratios:.3?}");
    let within = ratios.iter().filter(|r| (0.95..=1.05).contains(*r)).count();
    assert!(
        within >= 2,
        "timing depends on the matching prefix: {ratios:?}"
    );
}

/// Errors reach clients with their DETAIL, to which pgrx appends a Rust backtrace (source paths)
/// when the server runs with RUST_BACKTRACE set: pg_tenancy turns that off.  A server of the
/// test's own, started with RUST_BACKTRACE=1; errors raised in a function, in the executor hook
/// and in the utility hook, as an application role.
#[test]
fn errors_carry_no_backtrace_even_under_rust_backtrace() {
    let cluster = Cluster::init("backtrace", 54349);
    cluster.restart_env(&[], &["RUST_BACKTRACE=1"]);
    let mut c = cluster.connect("postgres");
    c.batch_execute(
        "CREATE EXTENSION pg_tenancy; SELECT tenancy.seed_demo();
         CREATE ROLE pgt_bt_member IN ROLE authenticated;",
    )
    .unwrap();
    let attempts = [
        "SELECT tenancy.set_tenant('00000000-0000-0000-0000-000000000000')",
        "LOCK TABLE tenancy.projects IN ACCESS EXCLUSIVE MODE",
        "CREATE RULE r AS ON INSERT TO tenancy.projects DO INSTEAD NOTHING",
    ];
    for sql in attempts {
        c.batch_execute("BEGIN; SET LOCAL ROLE pgt_bt_member")
            .unwrap();
        let err = c.batch_execute(sql).expect_err(sql);
        c.batch_execute("ROLLBACK").unwrap();
        let db = err.as_db_error().expect("a server error");
        let all = format!("{} {:?} {:?}", db.message(), db.detail(), db.hint());
        assert!(
            !all.contains(".rs:") && !all.contains("backtrace"),
            "{sql}: {all}"
        );
    }
}

/// Every privilege on the extension's tables, functions, schemas and types, and on the partitions
/// maintenance makes, with default ACLs written out (`acldefault`), one line each.
const ACLS: &str = "
    SELECT 'relation ' || c.oid::regclass || ' ' || coalesce(c.relacl, acldefault('r', c.relowner))::text
      FROM pg_class c
     WHERE c.relnamespace IN ('tenancy'::regnamespace, 'tenancy_private'::regnamespace) AND c.relkind IN ('r', 'p', 'S', 'v')
    UNION ALL
    SELECT 'function ' || p.oid::regprocedure || ' ' || coalesce(p.proacl, acldefault('f', p.proowner))::text
      FROM pg_proc p WHERE p.pronamespace IN ('tenancy'::regnamespace, 'tenancy_private'::regnamespace)
    UNION ALL
    SELECT 'schema ' || n.nspname || ' ' || coalesce(n.nspacl, acldefault('n', n.nspowner))::text
      FROM pg_namespace n WHERE n.nspname IN ('tenancy', 'tenancy_private')
    UNION ALL
    SELECT 'type ' || t.oid::regtype || ' ' || coalesce(t.typacl, acldefault('T', t.typowner))::text
      FROM pg_type t WHERE t.typnamespace IN ('tenancy'::regnamespace, 'tenancy_private'::regnamespace)
    ORDER BY 1";

/// The role that creates the extension may have default privileges (`ALTER DEFAULT PRIVILEGES ...
/// GRANT ALL ... TO authenticated`): they must add nothing.  A grant of TRUNCATE on
/// `tenancy_private.data_keys` would let any member destroy every tenant's keys (TRUNCATE ignores
/// RLS).  Every privilege of an install made under such defaults, and of the partitions
/// maintenance then makes, equals those of an install without them; and a member cannot use the
/// private schema.
#[test]
fn default_privileges_grant_nothing() {
    let acls = |db: &TestDb| -> Vec<String> {
        let mut c = db.connect("postgres");
        c.batch_execute(
            "CREATE EXTENSION pg_tenancy;
             SELECT tenancy.maintain_request_logs(premake => 2);",
        )
        .unwrap();
        c.query(ACLS, &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    let plain = TestDb::empty("pgt_acl_plain");
    let expected = acls(&plain);
    assert!(expected.len() > 100, "{} privilege lines", expected.len());

    let opened = TestDb::empty("pgt_acl_defaults");
    opened
        .connect("postgres")
        .batch_execute(
            "DO $$ BEGIN
                 IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN CREATE ROLE authenticated NOLOGIN; END IF;
                 IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN CREATE ROLE anon NOLOGIN; END IF;
                 IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN CREATE ROLE service_role NOLOGIN; END IF;
             END $$;
             ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO authenticated, anon, service_role, PUBLIC;
             ALTER DEFAULT PRIVILEGES GRANT ALL ON SEQUENCES TO authenticated, anon, service_role;
             ALTER DEFAULT PRIVILEGES GRANT ALL ON FUNCTIONS TO authenticated, anon, service_role;
             ALTER DEFAULT PRIVILEGES GRANT ALL ON SCHEMAS TO authenticated, anon, service_role;
             ALTER DEFAULT PRIVILEGES GRANT ALL ON TYPES TO authenticated, anon, service_role;",
        )
        .unwrap();
    let got = acls(&opened);
    let missing: Vec<_> = expected.iter().filter(|l| !got.contains(l)).collect();
    let extra: Vec<_> = got.iter().filter(|l| !expected.contains(l)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "default privileges changed the extension's:\nwithout them:\n{missing:#?}\nwith them:\n{extra:#?}"
    );

    login_role("pgt_acl_member", "", &["authenticated"]);
    let mut m = pg_tenancy_client_tests::connect(&opened.name, "pgt_acl_member");
    for sql in [
        "TRUNCATE tenancy_private.data_keys",
        "TRUNCATE tenancy.api_keys CASCADE",
        "SELECT tenancy.rotate_root_key()",
    ] {
        assert_eq!(sqlstate(m.batch_execute(sql)), "42501", "{sql}");
    }
    println!(
        "{} privilege lines identical with and without default privileges",
        got.len()
    );
}
