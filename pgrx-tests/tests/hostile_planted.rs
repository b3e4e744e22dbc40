//! A hostile tenant member plants, in a schema of its own, functions and operators named like the
//! built-ins SQL code calls, and tables named like ours; in `pg_temp` it may plant nothing
//! (src/session_state.rs), so a superuser plants the same there, in the session that then acts as
//! `authenticated`.  Both are put first on the `search_path`, and as `authenticated` the session
//! calls every function of the extension and writes every kind of row.  None of the planted objects ever runs (each would record its name, the user it
//! ran as and the function that called it).
use pg_tenancy_client_tests::demo::{ACME, ALICE, DAVE, SEND_MESSAGE_A, SLACK_A};
use pg_tenancy_client_tests::hostile::in_savepoint;
use pg_tenancy_client_tests::{connect, login_role, sqlstate, TestDb};
use postgres::Client;

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
    let mut member = connect(&db.name, "pgt_planter");
    member
        .batch_execute(
            "CREATE TABLE hostile.hits (name text, ran_as name, session_user_name name);
             GRANT INSERT, SELECT ON hostile.hits TO PUBLIC;
             GRANT USAGE ON SCHEMA hostile TO PUBLIC;",
        )
        .unwrap();
    plant(&mut member, "hostile");
    // The member plants nothing in pg_temp, in no form.
    for plant_temp in [
        "CREATE FUNCTION pg_temp.now() RETURNS timestamptz LANGUAGE sql AS 'SELECT pg_catalog.now()'",
        "CREATE OPERATOR pg_temp.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = uuid_eq)",
        "CREATE TEMP VIEW projects AS SELECT 1 AS id",
        "CREATE TEMP TABLE api_keys (id uuid)",
        "CREATE TABLE pg_temp.memberships (id uuid)",
        "SELECT 1 AS id INTO TEMP users",
        "CREATE TEMP SEQUENCE tenants",
        "CREATE DOMAIN pg_temp.uuid AS pg_catalog.uuid",
        "CREATE TYPE pg_temp.text AS (t pg_catalog.text)",
    ] {
        assert_eq!(
            sqlstate(member.batch_execute(plant_temp)),
            "42501",
            "a member: {plant_temp}"
        );
    }
    // A superuser may create temporary objects; it plants them in its session, which then acts
    // as authenticated.
    let mut c = db.connect("postgres");
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
        member
            .batch_execute(&format!(
                "CREATE TABLE hostile.{table} (LIKE pg_catalog.pg_class);
                 GRANT SELECT ON hostile.{table} TO PUBLIC;"
            ))
            .unwrap();
        c.batch_execute(&format!(
            "CREATE TEMP VIEW {table} AS SELECT * FROM hostile.{table};
             GRANT SELECT ON {table} TO PUBLIC;"
        ))
        .unwrap();
    }
    c.batch_execute(
        "SET ROLE authenticated; SET search_path = hostile, pg_temp, public, pg_catalog",
    )
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
        // The ids as values: on Citus a call over a distributed table's rows is sent to the
        // shard, where log_request's own write cannot run (docs/citus.md, "Limits").
        format!("SELECT tenancy.log_request('{SLACK_A}', '{SEND_MESSAGE_A}', '{{\"password\": \"p\"}}')"),
        format!(
            "SELECT pg_catalog.set_config('request.jwt.claims', '{{\"sub\": \"{DAVE}\", \"tenant_id\": \"{ACME}\"}}', true), tenancy.pre_request()"
        ),
        "SELECT count(*) FROM tenancy.clients".into(),
    ];
    c.batch_execute("BEGIN").unwrap();
    let mut outcomes = Vec::new();
    for stmt in &workload {
        let r = pg_tenancy_client_tests::error_text(in_savepoint(&mut c, stmt));
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
    // On Citus, a write as the extension after the member's own writes in one transaction is
    // refused (25001, docs/citus.md "Limits"): store_credential after the clients' insert.
    let citus = pg_tenancy_client_tests::citus_port().is_some();
    let ok = outcomes
        .iter()
        .filter(|o| o.ends_with(": ok") || citus && o.contains(": 25001: "))
        .count();
    assert!(ok >= workload.len() - 2, "the workload ran: {outcomes:#?}");
    assert!(
        hits.is_empty(),
        "planted objects ran inside pg_tenancy's functions: {hits:?}\n{outcomes:#?}"
    );
}

/// A database still at 0.2.0, with this version's library loaded (between installing a package
/// and `ALTER EXTENSION pg_tenancy UPDATE`): a role that may create schemas makes its own
/// `tenancy_private`, with tables named like the extension's and triggers that record who ran
/// them.  The library refuses it (`42501`) before it runs anything there with its own privileges:
/// creating an API key, storing a credential, verifying a key.  No trigger ever runs (on the first
/// version of the private schema they ran as the bootstrap superuser).
#[test]
fn a_private_schema_the_extension_did_not_make_is_refused() {
    let db = TestDb::empty("pgt_fake_private");
    let mut admin = db.connect("postgres");
    admin
        .batch_execute("CREATE EXTENSION pg_tenancy VERSION '0.2.0'; SELECT tenancy.seed_demo();")
        .unwrap();
    login_role("pgt_schema_maker", "", &["authenticated"]);
    admin
        .batch_execute(&format!(
            "GRANT CREATE ON DATABASE {} TO pgt_schema_maker",
            db.name
        ))
        .unwrap();
    // No tenancy_private yet: what would name it is refused before it runs (a schema made between
    // a check and the statement could otherwise be the one the statement finds).
    admin.batch_execute("BEGIN").unwrap();
    admin
        .execute(&format!("SELECT tenancy.set_tenant('{ACME}')"), &[])
        .unwrap();
    let got = pg_tenancy_client_tests::error_text(admin.batch_execute(&format!(
        "SELECT tenancy.store_credential('{}', 'bearer', '{{\"t\": 1}}')",
        pg_tenancy_client_tests::demo::SLACK_A
    )));
    admin.batch_execute("ROLLBACK").unwrap();
    assert!(
        got.starts_with("42P01: ") && got.contains("tenancy_private"),
        "a database not yet updated: {got}"
    );
    let mut maker = connect(&db.name, "pgt_schema_maker");
    maker
        .batch_execute(
            "CREATE SCHEMA tenancy_private;
             CREATE TABLE tenancy_private.hits (tbl name, ran_as name);
             CREATE FUNCTION tenancy_private.hit() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN INSERT INTO tenancy_private.hits VALUES (TG_TABLE_NAME, current_user); RETURN NEW; END $$;
             CREATE TABLE tenancy_private.root_keys (key_id text CONSTRAINT root_keys_pkey PRIMARY KEY,
                 fingerprint bytea, first_used_at timestamptz DEFAULT now());
             CREATE TABLE tenancy_private.peppers (purpose text CONSTRAINT peppers_pkey PRIMARY KEY,
                 root_key_id text, wrapped_key bytea, created_at timestamptz DEFAULT now());
             CREATE TABLE tenancy_private.data_keys (tenant_id uuid, version int, root_key_id text,
                 wrapped_key bytea, created_at timestamptz DEFAULT now(),
                 CONSTRAINT data_keys_pkey PRIMARY KEY (tenant_id, version));
             CREATE TRIGGER hit BEFORE INSERT ON tenancy_private.root_keys FOR EACH ROW EXECUTE FUNCTION tenancy_private.hit();
             CREATE TRIGGER hit BEFORE INSERT ON tenancy_private.peppers FOR EACH ROW EXECUTE FUNCTION tenancy_private.hit();
             CREATE TRIGGER hit BEFORE INSERT ON tenancy_private.data_keys FOR EACH ROW EXECUTE FUNCTION tenancy_private.hit();
             GRANT USAGE ON SCHEMA tenancy_private TO PUBLIC;
             GRANT INSERT ON tenancy_private.hits TO PUBLIC;",
        )
        .unwrap();
    // A well-formed key (made where the extension is current): verification reads the pepper.
    let minted = TestDb::new("pgt_fake_private_key");
    let key = pg_tenancy_client_tests::new_api_key(&minted, ACME, "minted");
    for (what, call) in [
        (
            "create_api_key",
            "SELECT tenancy.create_api_key('planted')".to_string(),
        ),
        (
            "store_credential",
            format!(
                "SELECT tenancy.store_credential('{}', 'bearer', '{{\"t\": 1}}')",
                pg_tenancy_client_tests::demo::SLACK_A
            ),
        ),
        (
            "verify_api_key",
            format!("SELECT tenancy.verify_api_key('{key}')"),
        ),
    ] {
        admin.batch_execute("BEGIN").unwrap();
        admin
            .execute(&format!("SELECT tenancy.set_tenant('{ACME}')"), &[])
            .unwrap();
        let got = pg_tenancy_client_tests::error_text(admin.batch_execute(&call));
        admin.batch_execute("ROLLBACK").unwrap();
        assert!(
            got.starts_with("42501") && got.contains("schema tenancy_private is not pg_tenancy's"),
            "{what}: {got}"
        );
    }
    let hits: i64 = admin
        .query_one("SELECT count(*) FROM tenancy_private.hits", &[])
        .unwrap()
        .get(0);
    assert_eq!(hits, 0, "a trigger of the planted schema ran");
}
