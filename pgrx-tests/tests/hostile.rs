//! A hostile tenant member with a login of its own (a member of `authenticated`, nothing more),
//! over real connections:
//!
//! * `forged_claims_need_the_jwt_secret`: with `tenancy.jwt_secret` set, writing
//!   `request.jwt.claims` and `request.headers` itself gets it nothing but anon; a token signed with
//!   a guessed secret, or with `alg: none`, is refused; it cannot read, set or reset the secret.
//! * `planted_objects_never_run`: it plants, in a schema of its own and in `pg_temp`, functions
//!   and operators named like the built-ins SQL code calls, and tables named like ours, puts them
//!   first on its `search_path`, and calls every function of the extension and writes every kind
//!   of row.  None of the planted objects ever runs (each would record its name, the user it ran as
//!   and the function that called it).
//! * `index_scans_never_count_rows_of_another_tenant`: probes every indexed column with another
//!   tenant's value and with a value nobody has, and compares what EXPLAIN ANALYZE and
//!   `pg_stat_xact_user_tables` show: only the two documented global keys may differ.
//! * `writes_and_calls_never_touch_another_tenant`: on every table from the catalog, inserts into,
//!   moves rows to, updates, deletes and locks the other tenant's rows, aims every composite
//!   foreign key at its parents, and calls every function with each of its ids: everything the
//!   other tenant owns is byte for byte unchanged.
//! * `verification_time_does_not_depend_on_the_matching_prefix`: a statistical check that
//!   rejecting a wrong secret takes as long whether it matches the real one in no leading
//!   characters or in all but the last.
use hmac::{Hmac, Mac};
use pg_tenancy_client_tests::demo::{ACME, ALICE, BOB, DAVE, FRANK, GLOBEX};
use pg_tenancy_client_tests::{
    connect, enter_as as enter, login_role, pre_request_context, sqlstate, tenant_digests, Cluster,
    TestDb,
};
use postgres::Client;

const SECRET: &str = "the-hostile-test-jwt-secret-32-bytes-or-more";

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn jwt(header: &str, claims: &str, secret: &[u8]) -> String {
    let body = format!(
        "{}.{}",
        b64url(header.as_bytes()),
        b64url(claims.as_bytes())
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(body.as_bytes());
    format!("{body}.{}", b64url(&mac.finalize().into_bytes()))
}

fn claims(user: &str, tenant: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    format!(r#"{{"sub":"{user}","tenant_id":"{tenant}","role":"authenticated","exp":{exp}}}"#)
}

/// Run `sql` in a savepoint: released if it succeeds, rolled back if it fails.
fn in_savepoint(
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
fn request(c: &mut Client, claims: &str, headers: &str) -> String {
    pre_request_context(c, None, claims, headers).unwrap_or_else(|e| sqlstate(Err::<(), _>(e)))
}

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

/// Built-ins that SQL code (ours, PostgreSQL's) calls unqualified: each gets an impostor with the
/// same argument types.  (name, arguments, return type, how to compute the real result).
const IMPOSTORS: &[(&str, &str, &str, &str)] = &[
    ("now", "", "timestamptz", "pg_catalog.now()"),
    ("lower", "text", "text", "pg_catalog.lower($1)"),
    ("upper", "text", "text", "pg_catalog.upper($1)"),
    ("length", "text", "integer", "pg_catalog.length($1)"),
    ("btrim", "text", "text", "pg_catalog.btrim($1)"),
    ("left", "text, integer", "text", "pg_catalog.left($1, $2)"),
    ("format", "text", "text", "pg_catalog.format($1)"),
    ("format", "text, text", "text", "pg_catalog.format($1, $2)"),
    ("concat", "text, text", "text", "pg_catalog.concat($1, $2)"),
    (
        "replace",
        "text, text, text",
        "text",
        "pg_catalog.replace($1, $2, $3)",
    ),
    (
        "current_setting",
        "text",
        "text",
        "pg_catalog.current_setting($1)",
    ),
    (
        "current_setting",
        "text, boolean",
        "text",
        "pg_catalog.current_setting($1, $2)",
    ),
    (
        "set_config",
        "text, text, boolean",
        "text",
        "pg_catalog.set_config($1, $2, $3)",
    ),
    (
        "gen_random_uuid",
        "",
        "uuid",
        "pg_catalog.gen_random_uuid()",
    ),
    (
        "jsonb_build_object",
        "text, text",
        "jsonb",
        "pg_catalog.jsonb_build_object($1, $2)",
    ),
    (
        "jsonb_typeof",
        "jsonb",
        "text",
        "pg_catalog.jsonb_typeof($1)",
    ),
    ("to_jsonb", "text", "jsonb", "pg_catalog.to_jsonb($1)"),
    (
        "date_trunc",
        "text, timestamptz",
        "timestamptz",
        "pg_catalog.date_trunc($1, $2)",
    ),
    (
        "to_char",
        "timestamptz, text",
        "text",
        "pg_catalog.to_char($1, $2)",
    ),
    ("hashtext", "text", "integer", "pg_catalog.hashtext($1)"),
    (
        "pg_advisory_xact_lock",
        "bigint",
        "void",
        "pg_catalog.pg_advisory_xact_lock($1)",
    ),
    ("encode", "bytea, text", "text", "pg_catalog.encode($1, $2)"),
    ("decode", "text, text", "bytea", "pg_catalog.decode($1, $2)"),
    ("sha256", "bytea", "bytea", "pg_catalog.sha256($1)"),
    ("md5", "text", "text", "pg_catalog.md5($1)"),
    (
        "to_regclass",
        "text",
        "regclass",
        "pg_catalog.to_regclass($1)",
    ),
    (
        "array_length",
        "anyarray, integer",
        "integer",
        "pg_catalog.array_length($1, $2)",
    ),
    (
        "cardinality",
        "anyarray",
        "integer",
        "pg_catalog.cardinality($1)",
    ),
    ("quote_ident", "text", "text", "pg_catalog.quote_ident($1)"),
    (
        "regexp_match",
        "text, text",
        "text[]",
        "pg_catalog.regexp_match($1, $2)",
    ),
    (
        "uuid_eq",
        "uuid, uuid",
        "boolean",
        "pg_catalog.uuid_eq($1, $2)",
    ),
    (
        "texteq",
        "text, text",
        "boolean",
        "pg_catalog.texteq($1, $2)",
    ),
    (
        "textcat",
        "text, text",
        "text",
        "pg_catalog.textcat($1, $2)",
    ),
];

/// Plant the impostors (functions, and operators = and || over them) in `schema`; each records
/// its name, the user it runs as and the session user in hostile.hits, then does the real work.
fn plant(c: &mut Client, schema: &str) {
    for (name, args, ret, real) in IMPOSTORS {
        c.batch_execute(&format!(
            "CREATE FUNCTION {schema}.{name}({args}) RETURNS {ret} LANGUAGE sql VOLATILE AS $f$
                 INSERT INTO hostile.hits VALUES ('{schema}.{name}', current_user, session_user);
                 SELECT {real}
             $f$"
        ))
        .unwrap_or_else(|e| panic!("plant {schema}.{name}({args}): {e}"));
    }
    for (op, left, right, func) in [
        ("=", "uuid", "uuid", "uuid_eq"),
        ("=", "text", "text", "texteq"),
        ("||", "text", "text", "textcat"),
    ] {
        c.batch_execute(&format!(
            "CREATE OPERATOR {schema}.{op} (LEFTARG = {left}, RIGHTARG = {right}, FUNCTION = {schema}.{func})"
        ))
        .unwrap_or_else(|e| panic!("plant operator {schema}.{op}: {e}"));
    }
}

#[test]
fn planted_objects_never_run() {
    let db = TestDb::new("pgt_client_planted");
    login_role("pgt_planter", "", &["authenticated"]);
    let mut admin = db.connect("postgres");
    // A schema the hostile role owns (it can create in it), as on many real databases.
    admin
        .batch_execute(
            "CREATE SCHEMA hostile AUTHORIZATION pgt_planter;
             SELECT tenancy.set_tenant('a0000000-0000-4000-8000-000000000001');
             SELECT tenancy.store_credential('a1000000-0000-4000-8000-000000000101', 'bearer', '{\"token\": \"t\"}');",
        )
        .unwrap();
    admin
        .batch_execute("SELECT tenancy.clear_context()")
        .unwrap();
    let api_key: String = {
        admin.batch_execute("BEGIN").unwrap();
        admin
            .execute("SELECT tenancy.set_tenant($1::text::uuid)", &[&ACME])
            .unwrap();
        let k = admin
            .query_one("SELECT tenancy.create_api_key('planted', ARRAY['*'])", &[])
            .unwrap()
            .get(0);
        admin.batch_execute("COMMIT").unwrap();
        k
    };
    let mut c = connect(&db.name, "pgt_planter");
    c.batch_execute(
        "CREATE TABLE hostile.hits (name text, ran_as name, session_user_name name);
         GRANT INSERT ON hostile.hits TO PUBLIC;",
    )
    .unwrap();
    plant(&mut c, "hostile");
    plant(&mut c, "pg_temp");
    // Tables and views named like ours, in both places (pg_temp comes first for relations).
    for table in [
        "tenants",
        "memberships",
        "users",
        "api_keys",
        "api_key_usage",
        "api_key_hashes",
        "credential_secrets",
        "peppers",
        "data_keys",
        "root_keys",
        "integration_credentials",
        "integrations",
        "actions",
        "request_logs",
        "request_logs_default",
        "clients",
        "projects",
    ] {
        c.batch_execute(&format!(
            "CREATE TABLE hostile.{table} (LIKE pg_catalog.pg_class);
             CREATE TEMP VIEW {table} AS SELECT * FROM hostile.{table};"
        ))
        .unwrap();
    }
    c.batch_execute("SET search_path = hostile, pg_temp, public, pg_catalog")
        .unwrap();

    // Everything a member, an API key and PostgREST do, with that search_path.  The workload's own
    // calls are schema-qualified, so that any impostor that runs was called from inside pg_tenancy.
    let key = api_key.replace('\'', "");
    let workload = [
        format!(
            "SELECT pg_catalog.set_config('request.jwt.claims', '{{\"sub\": \"{ALICE}\", \"tenant_id\": \"{ACME}\"}}', true), tenancy.pre_request()"
        ),
        "SELECT tenancy.current_tenant_id(), tenancy.current_user_id(), tenancy.current_role()".into(),
        "SELECT count(*) FROM tenancy.projects".into(),
        "INSERT INTO tenancy.clients (tenant_id, name) VALUES (tenancy.current_tenant_id(), 'planted') RETURNING id".into(),
        "UPDATE tenancy.clients SET name = 'renamed' WHERE name OPERATOR(pg_catalog.=) 'planted'".into(),
        "SELECT tenancy.read_credential(id) FROM tenancy.integration_credentials".into(),
        "SELECT tenancy.store_credential('a1000000-0000-4000-8000-000000000101', 'bearer', '{\"token\": \"u\"}')".into(),
        "SELECT * FROM tenancy.list_api_keys()".into(),
        "SELECT * FROM tenancy.request_stats(pg_catalog.now() - interval '1 day')".into(),
        "SELECT * FROM tenancy.credentials_expiring('1 day')".into(),
        "SELECT tenancy.redact('{\"authorization\": \"Bearer x\", \"url\": \"https://a/?token=1\"}')".into(),
        "SELECT tenancy.health()".into(),
        "SELECT tenancy.clear_context()".into(),
        format!("SELECT tenancy.authenticate('{key}')"),
        format!("SELECT * FROM tenancy.verify_api_key('{key}')"),
        "SELECT tenancy.has_scope('logs:write'), tenancy.current_api_key_id()".into(),
        "SELECT tenancy.log_request(a.integration_id, a.id, '{\"password\": \"p\"}') FROM tenancy.actions a ORDER BY a.id LIMIT 1".into(),
        format!(
            "SELECT pg_catalog.set_config('request.jwt.claims', '{{\"sub\": \"{DAVE}\", \"tenant_id\": \"{ACME}\"}}', true), tenancy.pre_request()"
        ),
        "SELECT count(*) FROM tenancy.clients".into(),
    ];
    c.batch_execute("BEGIN").unwrap();
    let mut outcomes = Vec::new();
    for stmt in &workload {
        let r = sqlstate(in_savepoint(&mut c, stmt));
        outcomes.push(format!("{stmt}: {r}"));
    }
    let hits: Vec<(String, String)> = c
        .query("SELECT name, ran_as::text FROM hostile.hits", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    c.batch_execute("ROLLBACK").unwrap();
    // The impostors work: called on purpose, they record themselves.
    let own: i64 = {
        c.batch_execute("BEGIN").unwrap();
        c.batch_execute("SELECT now(), lower('A')").unwrap();
        let n = c
            .query_one("SELECT count(*) FROM hostile.hits", &[])
            .unwrap()
            .get(0);
        c.batch_execute("ROLLBACK").unwrap();
        n
    };
    assert_eq!(
        own, 2,
        "the planted functions are first on the search_path and record themselves"
    );
    let ok = outcomes.iter().filter(|o| o.ends_with(": ok")).count();
    assert!(ok >= workload.len() - 2, "the workload ran: {outcomes:#?}");
    assert!(
        hits.is_empty(),
        "planted objects ran inside pg_tenancy's functions: {hits:?}\n{outcomes:#?}"
    );
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

/// Every table, from the catalog: what the member may read shows only its tenant; what it may not
/// read refuses (internal tables, partitions).  Then the classic leaks: EXPLAIN ANALYZE output,
/// RETURNING, ON CONFLICT, error messages, its own views, and a cheap "leaky" function in a WHERE
/// clause that would print every row it sees if it ran before the policy.
#[test]
fn nothing_of_another_tenant_leaks() {
    let db = TestDb::new("pgt_client_leaks");
    login_role("pgt_leaker", "", &["authenticated"]);
    let mut admin = db.connect("postgres");
    admin
        .batch_execute("CREATE SCHEMA leaker AUTHORIZATION pgt_leaker; ANALYZE")
        .unwrap();
    // Every value of globex's rows that a leak could show: names, slugs, e-mails, ids.
    let secrets: Vec<String> = admin
        .query(
            "SELECT DISTINCT v FROM (
                 SELECT name AS v FROM tenancy.clients WHERE tenant_id = $1::text::uuid
                 UNION ALL SELECT id::text FROM tenancy.clients WHERE tenant_id = $1::text::uuid
                 UNION ALL SELECT name FROM tenancy.projects WHERE tenant_id = $1::text::uuid
                 UNION ALL SELECT name FROM tenancy.integrations WHERE tenant_id = $1::text::uuid
                 UNION ALL SELECT slug FROM tenancy.integrations WHERE tenant_id = $1::text::uuid
                 UNION ALL SELECT id::text FROM tenancy.projects WHERE tenant_id = $1::text::uuid
                 UNION ALL SELECT id::text FROM tenancy.integrations WHERE tenant_id = $1::text::uuid
                 UNION ALL SELECT name FROM tenancy.tenants WHERE id = $1::text::uuid
                 UNION ALL SELECT u.email FROM tenancy.users u JOIN tenancy.memberships m ON m.user_id = u.id
                            WHERE m.tenant_id = $1::text::uuid AND u.email NOT LIKE '%@acme.test') s
              WHERE length(v) >= 6",
            &[&GLOBEX],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(secrets.len() >= 4, "{secrets:?}");
    let notices = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut config: postgres::Config = pg_tenancy_client_tests::conninfo(&db.name, "pgt_leaker")
        .parse()
        .unwrap();
    let sink = notices.clone();
    config.notice_callback(move |n| sink.lock().unwrap().push(n.message().to_string()));
    let mut c = config.connect(postgres::NoTls).unwrap();
    let mut seen = String::new();
    let mut run = |c: &mut Client, sql: &str| -> String {
        let out = match in_savepoint(c, sql) {
            Ok(msgs) => {
                let mut text = String::from("ok");
                for m in msgs {
                    if let postgres::SimpleQueryMessage::Row(r) = m {
                        for i in 0..r.len() {
                            text.push(' ');
                            text.push_str(r.get(i).unwrap_or(""));
                        }
                    }
                }
                text
            }
            Err(e) => match e.as_db_error() {
                Some(db) => format!(
                    "{} {} {:?} {:?}",
                    db.code().code(),
                    db.message(),
                    db.detail(),
                    db.hint()
                ),
                None => format!("{e}"),
            },
        };
        seen.push_str(&out);
        seen.push('\n');
        out
    };
    enter(&mut c, DAVE, ACME);

    // Every table of the schema, from the catalog.
    let tables: Vec<(String, bool, bool)> = c
        .query(
            "SELECT c.oid::regclass::text, has_any_column_privilege(c.oid, 'SELECT'),
                    EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')
               FROM pg_class c WHERE c.relnamespace IN ('tenancy'::regnamespace, 'tenancy_private'::regnamespace) AND c.relkind IN ('r', 'p')
              ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert!(tables.len() >= 20, "{tables:?}");
    let (mut readable, mut refused) = (0, 0);
    for (table, may_select, has_tenant) in &tables {
        let out = run(&mut c, &format!("SELECT count(*) FROM {table}"));
        if !may_select {
            assert!(out.starts_with("42501"), "{table}: {out}");
            refused += 1;
        } else if *has_tenant {
            let other = run(
                &mut c,
                &format!("SELECT count(*) FROM {table} WHERE tenant_id <> '{ACME}'"),
            );
            assert_eq!(other, "ok 0", "{table}: rows of another tenant");
            readable += 1;
        }
    }
    // The classic leaks, aimed at globex's rows.
    let globex_client: String = admin
        .query_one(
            "SELECT id::text FROM tenancy.clients WHERE tenant_id = $1::text::uuid LIMIT 1",
            &[&GLOBEX],
        )
        .unwrap()
        .get(0);
    c.batch_execute(
        "CREATE FUNCTION leaker.peek(text) RETURNS boolean LANGUAGE plpgsql COST 0.000001 AS
             $f$ BEGIN RAISE NOTICE 'peek %', $1; RETURN true; END $f$;
         CREATE VIEW leaker.all_clients AS SELECT * FROM tenancy.clients;",
    )
    .unwrap();
    let attacks = [
        format!("EXPLAIN (ANALYZE, VERBOSE, BUFFERS) SELECT * FROM tenancy.clients WHERE tenant_id = '{GLOBEX}'"),
        "EXPLAIN (ANALYZE, VERBOSE, FORMAT JSON) SELECT * FROM tenancy.clients".into(),
        "SELECT * FROM tenancy.clients WHERE leaker.peek(name)".into(),
        "SELECT * FROM tenancy.projects p WHERE leaker.peek(p.name) AND leaker.peek(p.id::text)".into(),
        "SELECT * FROM leaker.all_clients".into(),
        format!("UPDATE tenancy.clients SET name = name WHERE id = '{globex_client}' RETURNING *"),
        "UPDATE tenancy.clients SET name = name RETURNING *".into(),
        format!("DELETE FROM tenancy.clients WHERE id = '{globex_client}' RETURNING *"),
        format!(
            "INSERT INTO tenancy.clients (tenant_id, id, name) VALUES ('{GLOBEX}', '{globex_client}', 'x')
             ON CONFLICT (tenant_id, id) DO UPDATE SET name = excluded.name RETURNING *"
        ),
        format!(
            "INSERT INTO tenancy.clients (tenant_id, id, name) VALUES ('{ACME}', '{globex_client}', 'x') RETURNING *"
        ),
        format!(
            "INSERT INTO tenancy.projects (tenant_id, client_id, name) VALUES ('{ACME}', '{globex_client}', 'x') RETURNING *"
        ),
        format!("SELECT * FROM tenancy.clients WHERE id = '{globex_client}' FOR UPDATE"),
        "SELECT * FROM pg_stats WHERE schemaname = 'tenancy'".into(),
        format!("SELECT tenancy.read_credential(id) FROM tenancy.integration_credentials WHERE tenant_id = '{GLOBEX}'"),
    ];
    for sql in &attacks {
        run(&mut c, sql);
    }
    c.batch_execute("ROLLBACK").unwrap();
    let notices = notices.lock().unwrap().join("\n");
    assert!(
        notices.contains("peek"),
        "the leaky function ran on the member's own rows"
    );
    for secret in &secrets {
        assert!(
            !seen.contains(secret.as_str()) || secret == &globex_client,
            "{secret:?} of globex leaked:\n{seen}"
        );
        assert!(
            !notices.contains(secret.as_str()),
            "{secret:?} of globex leaked through a NOTICE"
        );
    }
    // The one globex value the attacker typed itself may come back in an error, nothing else.
    println!(
        "leaks: {} tables from the catalog ({readable} readable with tenant_id, {refused} refused), {} attacks, {} globex values never seen",
        tables.len(),
        attacks.len(),
        secrets.len()
    );
}

/// PostgREST's exact sequence per request, through a login role like its authenticator
/// (`NOINHERIT`, a member of anon, authenticated and service_role), for anon, for every role of
/// both tenants (owner, admin, manager, member, client), and for service_role: every table from
/// the catalog, counted.  Members see their tenant only; anon sees nothing; service_role sees both.
#[test]
fn postgrest_replay_for_every_role() {
    let db = TestDb::new("pgt_client_replay");
    login_role(
        "pgt_authenticator",
        "NOINHERIT",
        &["anon", "authenticated", "service_role"],
    );
    let mut c = connect(&db.name, "pgt_authenticator");
    let tables: Vec<String> = db
        .connect("postgres")
        .query(
            "SELECT c.oid::regclass::text FROM pg_class c
              WHERE c.relnamespace = 'tenancy'::regnamespace AND c.relkind IN ('r', 'p')
                AND EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')
                AND has_table_privilege('authenticated', c.oid, 'SELECT')
              ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(tables.len() >= 12, "{tables:?}");
    // (role, claims, tenant): None = anon or service_role.
    let users = [
        ("a1", ACME),
        ("a2", ACME),
        ("a3", ACME),
        ("a4", ACME),
        ("a5", ACME),
        ("b1", GLOBEX),
        ("b2", GLOBEX),
        ("b3", GLOBEX),
        ("b4", GLOBEX),
        ("b5", GLOBEX),
    ];
    let mut requests = 0;
    // One request: (tenants seen across all tables, rows seen).
    let mut request =
        |c: &mut Client, role: &str, claims: &str| -> (std::collections::BTreeSet<String>, i64) {
            requests += 1;
            c.batch_execute(&format!("BEGIN; SET LOCAL ROLE {role};"))
                .unwrap();
            c.execute(
                "SELECT pg_catalog.set_config('request.jwt.claims', $1, true)",
                &[&claims],
            )
            .unwrap();
            c.batch_execute("SELECT tenancy.pre_request()").unwrap();
            let mut tenants = std::collections::BTreeSet::new();
            let mut rows = 0;
            for t in &tables {
                // A user reads its own memberships in every tenant (to choose one): by design,
                // so those rows are counted apart below, and every other row must be its tenant's.
                let own = if t == "tenancy.memberships" {
                    " WHERE user_id IS DISTINCT FROM tenancy.current_user_id()"
                } else {
                    ""
                };
                match c.query(
                    &format!("SELECT tenant_id::text, count(*) FROM {t}{own} GROUP BY 1"),
                    &[],
                ) {
                    Ok(result) => {
                        for r in result {
                            tenants.insert(r.get::<_, String>(0));
                            rows += r.get::<_, i64>(1);
                        }
                    }
                    Err(e) => {
                        // anon has no grant on most tables; that is a refusal, not a leak.
                        assert_eq!(sqlstate(Err::<(), _>(e)), "42501", "{role} on {t}");
                        c.batch_execute("ROLLBACK").unwrap();
                        return (tenants, -1);
                    }
                }
            }
            c.batch_execute("COMMIT").unwrap();
            (tenants, rows)
        };
    for (suffix, tenant) in users {
        let user = format!("00000000-0000-4000-8000-0000000000{suffix}");
        let claims =
            format!(r#"{{"sub": "{user}", "tenant_id": "{tenant}", "role": "authenticated"}}"#);
        let (tenants, rows) = request(&mut c, "authenticated", &claims);
        assert_eq!(
            tenants.iter().collect::<Vec<_>>(),
            vec![tenant],
            "{user} in {tenant} sees only its tenant"
        );
        assert!(rows > 0, "{user} sees its own rows");
    }
    // Alice belongs to both tenants: in acme's context she sees, of globex, her own membership
    // and nothing else (not globex's other members).
    c.batch_execute("BEGIN; SET LOCAL ROLE authenticated;")
        .unwrap();
    c.execute(
        "SELECT pg_catalog.set_config('request.jwt.claims', $1, true)",
        &[&format!(r#"{{"sub": "{ALICE}", "tenant_id": "{ACME}"}}"#)],
    )
    .unwrap();
    c.batch_execute("SELECT tenancy.pre_request()").unwrap();
    let elsewhere: Vec<(String, String)> = c
        .query(
            "SELECT user_id::text, role::text FROM tenancy.memberships WHERE tenant_id <> $1::text::uuid",
            &[&ACME],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    c.batch_execute("ROLLBACK").unwrap();
    assert_eq!(elsewhere, vec![(ALICE.to_string(), "member".to_string())]);
    // anon: no context; every table it may read shows nothing.
    for t in &tables {
        c.batch_execute("BEGIN; SET LOCAL ROLE anon;").unwrap();
        c.execute(
            "SELECT pg_catalog.set_config('request.jwt.claims', '{\"role\": \"anon\"}', true)",
            &[],
        )
        .unwrap();
        c.batch_execute("SELECT tenancy.pre_request()").unwrap();
        let n = c.query_one(&format!("SELECT count(*) FROM {t}"), &[]);
        let out = match n {
            Ok(r) => r.get::<_, i64>(0).to_string(),
            Err(e) => sqlstate(Err::<(), _>(e)),
        };
        c.batch_execute("ROLLBACK").unwrap();
        assert!(out == "0" || out == "42501", "anon on {t}: {out}");
    }
    // service_role: the backend's own key; no tenant in the claims, every tenant's rows.
    let (tenants, _) = request(&mut c, "service_role", r#"{"role": "service_role"}"#);
    assert_eq!(
        tenants.len(),
        2,
        "service_role sees both tenants: {tenants:?}"
    );
    println!(
        "PostgREST replay: {requests} requests x {} tables for 10 users of 2 tenants and service_role; anon on every table",
        tables.len()
    );
}

/// What a member can observe of one probe: EXPLAIN ANALYZE's row counters summed over every plan
/// node (timings off), and the transaction's index statistics.
fn observe(c: &mut Client, setup: &str, probe: &str) -> Result<Vec<i64>, String> {
    fn walk(node: &serde_json::Value, sums: &mut [i64; 5]) {
        let keys = [
            "Actual Rows",
            "Rows Removed by Filter",
            "Rows Removed by Index Recheck",
            "Heap Fetches",
            "Actual Loops",
        ];
        for (i, k) in keys.iter().enumerate() {
            sums[i] += node.get(*k).and_then(|v| v.as_f64()).unwrap_or(0.0) as i64;
        }
        for child in node
            .get("Plans")
            .and_then(|p| p.as_array())
            .into_iter()
            .flatten()
        {
            walk(child, sums);
        }
    }
    let stats = "SELECT coalesce(sum(idx_tup_fetch), 0)::text
                   FROM pg_stat_xact_user_tables WHERE schemaname = 'tenancy'";
    enter(c, BOB, ACME);
    c.batch_execute(setup).unwrap();
    let before: String = c.query_one(stats, &[]).unwrap().get(0);
    let plan = c.simple_query(&format!(
        "EXPLAIN (ANALYZE, FORMAT JSON, TIMING OFF, SUMMARY OFF) {probe}"
    ));
    let out = match plan {
        Ok(msgs) => {
            let text = msgs
                .iter()
                .find_map(|m| match m {
                    postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                    _ => None,
                })
                .unwrap();
            let json: serde_json::Value = serde_json::from_str(&text).unwrap();
            let mut sums = [0i64; 5];
            walk(&json[0]["Plan"], &mut sums);
            let after: String = c.query_one(stats, &[]).unwrap().get(0);
            let mut v = sums.to_vec();
            v.push(after.parse::<i64>().unwrap() - before.parse::<i64>().unwrap());
            Ok(v)
        }
        Err(e) => Err(sqlstate(Err::<(), _>(e))),
    };
    c.batch_execute("ROLLBACK").unwrap();
    out
}

/// An index scan checks its own conditions before the policy's filter, and comparison operators
/// are leakproof, so an index whose first column is not the one the policy pins lets a member
/// count, then (range after range) read, that column's values in every tenant (sql/schema.sql,
/// "index rule").  For every column of every btree index a member can reach, the member probes
/// with a value only the other tenant has and with a value nobody has, with sequential scans and
/// then bitmap scans disabled to push the planner onto the index: what it can see of the two
/// probes must be identical, except for the two documented global keys.  The slug is the control
/// that shows the probe finds such an index.
#[test]
fn index_scans_never_count_rows_of_another_tenant() {
    let db = TestDb::new("pgt_client_oracle");
    login_role("pgt_prober", "", &["authenticated"]);
    let mut admin = db.connect("postgres");
    // Give globex values that acme does not have in every indexed column the seed leaves alike.
    admin
        .batch_execute(&format!(
            "BEGIN;
             SELECT tenancy.set_tenant('{GLOBEX}');
             SELECT tenancy.create_api_key('globex probe key');
             SELECT tenancy.store_credential((SELECT id FROM tenancy.integrations WHERE tenant_id = '{GLOBEX}' LIMIT 1),
                                             'bearer', '{{\"t\": \"x\"}}', NULL, now() + interval '47 days');
             COMMIT;
             UPDATE tenancy.api_keys SET created_by = '{FRANK}' WHERE tenant_id = '{GLOBEX}';
             UPDATE tenancy.users SET subscription_tier = 'enterprise', subscription_status = 'active' WHERE id = '{FRANK}';
             UPDATE tenancy.integrations SET slug = 'globex-' || slug WHERE tenant_id = '{GLOBEX}';
             UPDATE tenancy.actions SET slug = 'globex-' || slug WHERE tenant_id = '{GLOBEX}';
             UPDATE tenancy.field_mappings SET target_path = '$.globex' || substr(target_path, 2) WHERE tenant_id = '{GLOBEX}';
             UPDATE tenancy.jobs SET job_type = 'globex-' || job_type, user_id = '{FRANK}',
                    status = CASE status WHEN 'completed' THEN 'failed' ELSE 'partial' END,
                    created_at = created_at - interval '3 days' WHERE tenant_id = '{GLOBEX}';
             UPDATE tenancy.assets SET user_id = '{FRANK}' WHERE tenant_id = '{GLOBEX}';
             UPDATE tenancy.projects SET status = 'on_hold' WHERE tenant_id = '{GLOBEX}';
             INSERT INTO tenancy.subscription_audit (tenant_id, user_id, action, stripe_event_id, created_at)
                  VALUES ('{GLOBEX}', '{FRANK}', 'probe', 'evt_globex_probe', now() - interval '400 days');
             INSERT INTO tenancy.request_logs (tenant_id, integration_id, action_id, request_summary, created_at)
                  SELECT tenant_id, integration_id, id, '{{}}', now() - interval '3 days'
                    FROM tenancy.actions WHERE tenant_id = '{GLOBEX}' LIMIT 1;
             ANALYZE;"
        ))
        .unwrap();
    // (table, column, base type, the index's predicate if partial).  Probes cast to the base type:
    // a cast to a domain is not folded, and would keep the planner off the index.
    let columns: Vec<(String, String, String, String)> = admin
        .query(
            "SELECT DISTINCT coalesce(pg_partition_root(c.oid), c.oid)::regclass::text, a.attname::text,
                    format_type(coalesce(nullif(t.typbasetype, 0), t.oid), NULL),
                    coalesce(pg_get_expr(i.indpred, i.indrelid), 'true')
               FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
               JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY (i.indkey::int2[]) AND a.attnum > 0
               JOIN pg_type t ON t.oid = a.atttypid
              WHERE c.relnamespace = 'tenancy'::regnamespace AND am.amname = 'btree'
                AND has_any_column_privilege('authenticated', coalesce(pg_partition_root(c.oid), c.oid), 'SELECT')
                AND a.attname <> 'tenant_id'
              ORDER BY 1, 2",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert!(columns.len() >= 40, "{columns:?}");
    let mut c = connect(&db.name, "pgt_prober");
    let (mut probed, mut no_value, mut refused) = (0, Vec::new(), 0);
    let mut leaks = std::collections::BTreeSet::new();
    for (table, column, base, predicate) in &columns {
        let (own, other) = match table.as_str() {
            "tenancy.tenants" => (format!("id = '{ACME}'"), format!("id <> '{ACME}'")),
            "tenancy.users" => (format!("id = '{BOB}'"), format!("id <> '{BOB}'")),
            _ => (
                format!("tenant_id = '{ACME}'"),
                format!("tenant_id <> '{ACME}'"),
            ),
        };
        let value: Option<String> = admin
            .query_opt(
                &format!(
                    "SELECT {column}::text FROM {table} WHERE {other} AND {column} IS NOT NULL
                        AND {column} NOT IN (SELECT {column} FROM {table} WHERE {own} AND {column} IS NOT NULL)
                      LIMIT 1"
                ),
                &[],
            )
            .unwrap()
            .map(|r| r.get(0));
        let Some(value) = value else {
            no_value.push(format!("{table}.{column}"));
            continue;
        };
        let absent = match base.as_str() {
            "uuid" => "00000000-dead-4bad-8bad-000000000000".to_string(),
            "timestamp with time zone" => "1901-02-03 04:05:06+00".to_string(),
            "integer" | "bigint" | "smallint" => "-1234567".to_string(),
            _ => format!("{value}-absent"),
        };
        let probe = |v: &str| {
            format!(
                "SELECT 1 FROM {table} WHERE {column} = '{}'::{base} AND ({predicate})",
                v.replace('\'', "''")
            )
        };
        for setup in [
            "SET LOCAL enable_seqscan = off;",
            "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off;",
        ] {
            let (seen, unseen) = (
                observe(&mut c, setup, &probe(&value)),
                observe(&mut c, setup, &probe(&absent)),
            );
            match (&seen, &unseen) {
                (Err(a), Err(b)) if a == "42501" && b == "42501" => refused += 1,
                (Ok(a), Ok(b)) => {
                    probed += 1;
                    if a != b {
                        println!(
                            "{table}.{column} = another tenant's value: {a:?}, nobody's: {b:?}"
                        );
                        leaks.insert(format!("{table}.{column}"));
                    }
                }
                _ => panic!("{table}.{column}: {seen:?} against {unseen:?}"),
            }
        }
    }
    println!(
        "index probes: {} indexed columns, {probed} probe pairs, {refused} refused, no other-tenant value for {no_value:?}; differences: {leaks:?}",
        columns.len()
    );
    assert!(
        leaks.contains("tenancy.tenants.slug"),
        "the control: the probe must see the global slug index"
    );
    let allowed = ["tenancy.tenants.slug", "tenancy.memberships.user_id"];
    let unexpected: Vec<_> = leaks
        .iter()
        .filter(|l| !allowed.contains(&l.as_str()))
        .collect();
    assert!(
        unexpected.is_empty(),
        "an index shows rows of another tenant through {unexpected:?}"
    );
    assert!(no_value.len() * 3 <= columns.len(), "{no_value:?}");
}

/// Acme's admin, through `authenticated`, on every table from the catalog: inserts a copy of one
/// of its own rows into globex, moves its own rows to globex by UPDATE of tenant_id, updates and
/// deletes globex's rows by their ids, points each composite foreign key at globex's parent row;
/// then calls every function of the extension with each of globex's ids in each uuid argument.
/// Each attempt is refused or touches nothing, and everything globex owns is byte for byte what
/// it was (a digest of every row, read as a superuser, before and after; the session commits).
#[test]
fn writes_and_calls_never_touch_another_tenant() {
    let db = TestDb::new("pgt_client_writes");
    login_role("pgt_writer", "", &["authenticated"]);
    let mut admin = db.connect("postgres");
    admin
        .batch_execute(&format!(
            "BEGIN;
             SELECT tenancy.set_tenant('{ACME}');
             SELECT tenancy.create_api_key('acme key');
             SELECT tenancy.store_credential((SELECT id FROM tenancy.integrations WHERE tenant_id = '{ACME}' LIMIT 1),
                                             'bearer', '{{\"t\": \"acme secret\"}}');
             SELECT tenancy.set_tenant('{GLOBEX}');
             SELECT tenancy.create_api_key('globex key');
             SELECT tenancy.store_credential((SELECT id FROM tenancy.integrations WHERE tenant_id = '{GLOBEX}' LIMIT 1),
                                             'bearer', '{{\"t\": \"globex secret\"}}');
             COMMIT;"
        ))
        .unwrap();
    let before = tenant_digests(&mut admin, Some(GLOBEX));
    // Every id globex has, of every kind: the attacker's ammunition.
    let ids: Vec<String> = admin
        .query(
            &format!(
                "SELECT DISTINCT v FROM (
                     SELECT '{GLOBEX}' AS v
                     UNION ALL SELECT '{FRANK}'
                     UNION ALL SELECT id::text FROM tenancy.clients WHERE tenant_id = '{GLOBEX}'
                     UNION ALL SELECT id::text FROM tenancy.projects WHERE tenant_id = '{GLOBEX}'
                     UNION ALL SELECT id::text FROM tenancy.integrations WHERE tenant_id = '{GLOBEX}'
                     UNION ALL SELECT id::text FROM tenancy.actions WHERE tenant_id = '{GLOBEX}'
                     UNION ALL SELECT id::text FROM tenancy.integration_credentials WHERE tenant_id = '{GLOBEX}'
                     UNION ALL SELECT id::text FROM tenancy.api_keys WHERE tenant_id = '{GLOBEX}'
                     UNION ALL SELECT id::text FROM tenancy.jobs WHERE tenant_id = '{GLOBEX}'
                     UNION ALL SELECT id::text FROM tenancy.subscriptions WHERE tenant_id = '{GLOBEX}') s ORDER BY 1"
            ),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(ids.len() >= 10, "{ids:?}");
    let tables: Vec<String> = admin
        .query(
            "SELECT c.oid::regclass::text FROM pg_class c
              WHERE c.relnamespace IN ('tenancy'::regnamespace, 'tenancy_private'::regnamespace) AND c.relkind IN ('r', 'p') AND NOT c.relispartition
                AND EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')
              ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Composite foreign keys: (table, its columns, the parent, the parent's columns).
    let fkeys: Vec<(String, Vec<String>, String, Vec<String>)> = admin
        .query(
            "SELECT con.conrelid::regclass::text,
                    array(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, o)
                            JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o),
                    con.confrelid::regclass::text,
                    array(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, o)
                            JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o)
               FROM pg_constraint con
              WHERE con.contype = 'f' AND con.connamespace IN ('tenancy'::regnamespace, 'tenancy_private'::regnamespace)
                AND array_length(con.conkey, 1) > 1 AND NOT con.conrelid::regclass::text LIKE '%\\_p20%'
              ORDER BY 1, 2",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert!(fkeys.len() >= 8, "{fkeys:?}");

    let mut c = connect(&db.name, "pgt_writer");
    enter(&mut c, BOB, ACME);
    // Outcome of one attempt: "ok N" (rows affected or returned) or the SQLSTATE.
    let mut attempts = 0;
    let mut attempt = |c: &mut Client, sql: &str| -> String {
        attempts += 1;
        match in_savepoint(c, sql) {
            Ok(msgs) => {
                let n = msgs.iter().find_map(|m| match m {
                    postgres::SimpleQueryMessage::CommandComplete(n) => Some(*n),
                    _ => None,
                });
                format!("ok {}", n.unwrap_or(0))
            }
            Err(e) => sqlstate(Err::<(), _>(e)),
        }
    };
    let copy_of_own = |table: &str, set: &str| {
        format!(
            "INSERT INTO {table} SELECT (jsonb_populate_record(NULL::{table}, to_jsonb(r) || {set})).* FROM {table} r LIMIT 1"
        )
    };
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for t in &tables {
        let own_rows = attempt(&mut c, &format!("SELECT 1 FROM {t}"));
        for sql in [
            copy_of_own(
                t,
                &format!("jsonb_build_object('tenant_id', '{GLOBEX}', 'id', gen_random_uuid())"),
            ),
            format!("UPDATE {t} SET tenant_id = '{GLOBEX}'"),
            format!("UPDATE {t} SET tenant_id = tenant_id WHERE tenant_id = '{GLOBEX}'"),
            format!("DELETE FROM {t} WHERE tenant_id = '{GLOBEX}'"),
            format!("SELECT 1 FROM {t} WHERE tenant_id = '{GLOBEX}' FOR UPDATE"),
        ] {
            let out = attempt(&mut c, &sql);
            // A refusal, or nothing affected (a copy of nothing when the member has no row here).
            assert!(
                out == "42501" || out == "ok 0" || out == "23514" || out == "P0001",
                "{t}: {sql} -> {out} (own rows: {own_rows})"
            );
            *outcomes.entry(out).or_default() += 1;
        }
        for id in &ids {
            for col in ["id", "user_id", "integration_id", "client_id", "key_id"] {
                let out = attempt(
                    &mut c,
                    &format!("UPDATE {t} SET tenant_id = tenant_id WHERE {col}::text = '{id}'"),
                );
                assert!(
                    out == "ok 0" || out == "42501" || out == "42703",
                    "{t}.{col} = {id}: {out}"
                );
                let out = attempt(
                    &mut c,
                    &format!("DELETE FROM {t} WHERE {col}::text = '{id}'"),
                );
                assert!(
                    out == "ok 0" || out == "42501" || out == "42703",
                    "{t}.{col} = {id}: {out}"
                );
            }
        }
    }
    // Each composite foreign key aimed at a parent row of globex that acme has no twin of (Alice
    // is a member of both), from a copy of one of acme's own rows.  The member cannot read
    // globex's parent: the superuser picks it, the attacker only types its ids.
    let mut fk_skipped = 0;
    for (table, cols, parent, pcols) in &fkeys {
        let pairs: Vec<(&String, &String)> = cols
            .iter()
            .zip(pcols)
            .filter(|(c, _)| *c != "tenant_id")
            .collect();
        let build: Vec<String> = pairs.iter().map(|(c, p)| format!("'{c}', g.{p}")).collect();
        let twin: Vec<String> = pairs
            .iter()
            .map(|(_, p)| format!("a.{p} = g.{p}"))
            .collect();
        let resolved: Option<String> = admin
            .query_opt(
                &format!(
                    "SELECT jsonb_build_object({})::text FROM {parent} g WHERE g.tenant_id = '{GLOBEX}'
                        AND NOT EXISTS (SELECT FROM {parent} a WHERE a.tenant_id = '{ACME}' AND {})
                      LIMIT 1",
                    build.join(", "),
                    twin.join(" AND ")
                ),
                &[],
            )
            .unwrap()
            .map(|r| r.get(0));
        let Some(resolved) = resolved else {
            fk_skipped += 1;
            continue;
        };
        let sql = copy_of_own(
            table,
            &format!("jsonb_build_object('id', gen_random_uuid()) || '{resolved}'::jsonb"),
        );
        let out = attempt(&mut c, &sql);
        assert!(
            out == "23503" || out == "ok 0" || out == "42501",
            "{table} ({}) -> {parent} {resolved}: {out}",
            cols.join(", ")
        );
        *outcomes.entry(format!("fk {out}")).or_default() += 1;
    }
    // Every function, with each globex id in each uuid argument.
    let functions: Vec<(String, Vec<String>)> = admin
        .query(
            "SELECT quote_ident(p.proname), array(SELECT format_type(t, NULL) FROM unnest(p.proargtypes::oid[]) t)
               FROM pg_proc p
              WHERE p.pronamespace = 'tenancy'::regnamespace AND p.prokind = 'f' AND p.prorettype <> 'trigger'::regtype
                AND 'uuid'::regtype = ANY (p.proargtypes::oid[])
              ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(functions.len() >= 8, "{functions:?}");
    let mut calls = 0;
    for (name, args) in &functions {
        for (i, _) in args.iter().enumerate().filter(|(_, t)| *t == "uuid") {
            for id in &ids {
                let values: Vec<String> = args
                    .iter()
                    .enumerate()
                    .map(|(j, ty)| {
                        let v = if j == i {
                            id.clone()
                        } else {
                            match ty.as_str() {
                                "uuid" => ACME.to_string(),
                                "jsonb" => "{\"k\": 1}".into(),
                                "text" => "bearer".into(),
                                "text[]" => "{}".into(),
                                "integer" => "1".into(),
                                "boolean" => "true".into(),
                                "timestamp with time zone" => "2030-01-01".into(),
                                "interval" => "1 day".into(),
                                "tenancy.mapping_direction" => "input".into(),
                                other => panic!("no value for {other}"),
                            }
                        };
                        format!("'{}'::{ty}", v.replace('\'', "''"))
                    })
                    .collect();
                calls += 1;
                let sql = format!("SELECT tenancy.{name}({})", values.join(", "));
                match in_savepoint(&mut c, &sql) {
                    Ok(msgs) => {
                        for m in msgs {
                            if let postgres::SimpleQueryMessage::Row(r) = m {
                                let text = r.get(0).unwrap_or("");
                                assert!(
                                    !text.contains("globex secret"),
                                    "{name} with {id}: {text}"
                                );
                            }
                        }
                    }
                    Err(e) => assert_ne!(sqlstate(Err::<(), _>(e)), "XX000", "{name} with {id}"),
                }
            }
        }
    }
    c.batch_execute("COMMIT").unwrap();
    let after = tenant_digests(&mut admin, Some(GLOBEX));
    assert_eq!(before, after, "globex changed");
    println!(
        "writes: {} tables, {} ids of globex, {attempts} statements ({outcomes:?}), {} composite foreign keys ({fk_skipped} without a parent to aim at), {calls} calls of {} functions: globex unchanged",
        tables.len(),
        ids.len(),
        fkeys.len(),
        functions.len()
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
