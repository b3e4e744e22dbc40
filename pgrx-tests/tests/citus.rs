//! pg_tenancy distributed by Citus: a coordinator and two workers (`scripts/citus.sh up`, which
//! runs `tenancy.distribute()` and `tenancy.seed_demo()`), found through PGT_CITUS_PORT (the
//! coordinator's port; the workers' are the next two).  `scripts/test.sh` runs this file when
//! Citus is built for a tested major (`scripts/citus.sh build SRC MAJOR`); without
//! PGT_CITUS_PORT every test says it is skipped and passes.
//!
//! What holds today (docs/citus.md):
//! * `distribute()` places every table as documented, is idempotent, and leaves no policy with a
//!   subquery (Citus refuses them);
//! * every shard on every worker has FORCE ROW LEVEL SECURITY, the policies and the triggers;
//! * the context is checked on the coordinator against its own copy of the reference tables
//!   (memberships, tenants), and a removal counts at the next statement;
//! * the context reaches the workers signed (`tenancy.citus_context`): a member reads its
//!   tenant's rows of the distributed tables through the workers, and nothing else;
//! * a value pg_tenancy did not set in this transaction, for this role and coordinator backend,
//!   yields nothing: forged, tampered, replayed, or presented by another role or backend;
//! * no one logs in to a worker as an application role but Citus, and Citus's run-anything
//!   functions are the superuser's;
//! * a member removed or demoted in another session loses the context on the workers at the next
//!   statement.
use pg_tenancy_client_tests::demo::{ACME, ALICE, BOB, CAROL, DAVE, ERIN, FRANK, GLOBEX, IVAN};
use pg_tenancy_client_tests::{error_text, sqlstate, transaction_id};
use postgres::{Client, NoTls};

fn port() -> Option<u16> {
    match std::env::var("PGT_CITUS_PORT") {
        Ok(p) => Some(p.parse().expect("PGT_CITUS_PORT is a port")),
        Err(_) => {
            eprintln!("skipped: no Citus cluster (PGT_CITUS_PORT unset; scripts/citus.sh up, then scripts/citus.sh test)");
            None
        }
    }
}

/// Node 0 is the coordinator, 1 and 2 the workers.
fn node(port: u16, n: u16, user: &str) -> Client {
    node_db(port, n, user, "tenancy_citus")
}

fn node_db(port: u16, n: u16, user: &str, db: &str) -> Client {
    Client::connect(
        &format!("host=127.0.0.1 port={} user={user} dbname={db}", port + n),
        NoTls,
    )
    .unwrap_or_else(|e| panic!("connect to {db} on node {n} as {user}: {e}"))
}

fn strings(c: &mut Client, sql: &str) -> Vec<String> {
    c.query(sql, &[])
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

const REFERENCE: [&str; 8] = [
    "tenancy.users",
    "tenancy.tenants",
    "tenancy.memberships",
    "tenancy.api_keys",
    "tenancy_private.root_keys",
    "tenancy_private.peppers",
    "tenancy_private.data_keys",
    "tenancy_private.api_key_hashes",
];

#[test]
fn distribute_places_every_table_and_is_idempotent() {
    let Some(port) = port() else { return };
    let mut c = node(port, 0, "postgres");
    // Every table of the extension is a Citus table: reference, or hash-distributed by
    // tenant_id in one colocation group.
    let local = strings(
        &mut c,
        "SELECT c.oid::regclass::text FROM pg_class c
          WHERE c.relnamespace IN ('tenancy'::regnamespace, 'tenancy_private'::regnamespace)
            AND c.relkind IN ('r', 'p')
            AND NOT EXISTS (SELECT FROM pg_dist_partition d WHERE d.logicalrelid = c.oid)",
    );
    assert!(local.is_empty(), "tables Citus does not know: {local:?}");
    let mut reference = strings(
        &mut c,
        "SELECT logicalrelid::text FROM pg_dist_partition WHERE partmethod = 'n'
            AND logicalrelid::text ~ '^tenancy' ORDER BY 1",
    );
    reference.sort();
    let mut want: Vec<String> = REFERENCE.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(reference, want);
    let distributed = c
        .query(
            "SELECT logicalrelid::text, column_to_column_name(logicalrelid, partkey), colocationid
               FROM pg_dist_partition WHERE partmethod = 'h' AND logicalrelid::text ~ '^tenancy'",
            &[],
        )
        .unwrap();
    assert!(
        distributed.len() >= 14,
        "{} distributed tables",
        distributed.len()
    );
    // One colocation group, but API keys' last use (written by pg_tenancy as the superuser).
    let groups: std::collections::BTreeSet<i32> = distributed
        .iter()
        .filter(|r| r.get::<_, String>(0) != "tenancy_private.api_key_usage")
        .map(|r| r.get(2))
        .collect();
    assert_eq!(groups.len(), 1, "one colocation group");
    for r in &distributed {
        assert_eq!(
            r.get::<_, String>(1),
            "tenant_id",
            "{}",
            r.get::<_, String>(0)
        );
    }
    // A second call changes nothing and says so.
    let report: String = c
        .query_one("SELECT tenancy.distribute()::text", &[])
        .unwrap()
        .get(0);
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["reference_tables"], serde_json::json!([]));
    assert_eq!(report["distributed_tables"], serde_json::json!([]));
    assert_eq!(
        report["already_distributed"].as_array().unwrap().len(),
        REFERENCE.len() + 14
    );
    // Only a superuser may call it; the application roles cannot even execute it.
    let mut app = node(port, 0, "postgres");
    app.batch_execute("SET ROLE service_role").unwrap();
    assert_eq!(
        sqlstate(app.query("SELECT tenancy.distribute()", &[])),
        "42501"
    );
}

#[test]
fn no_policy_has_a_subquery_and_every_shard_is_forced() {
    let Some(port) = port() else { return };
    let mut c = node(port, 0, "postgres");
    let with_subqueries = strings(
        &mut c,
        "SELECT polrelid::regclass || ' ' || polname FROM pg_policy
          WHERE polrelid::regclass::text ~ '^tenancy'
            AND (pg_get_expr(polqual, polrelid) ~* 'select' OR pg_get_expr(polwithcheck, polrelid) ~* 'select')",
    );
    assert!(with_subqueries.is_empty(), "{with_subqueries:?}");
    // What each table has on the coordinator: its shards must have the same.
    let tables: std::collections::HashMap<String, (i64, i64)> = c
        .query(
            "SELECT c.relname::text,
                    (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid),
                    (SELECT count(*) FROM pg_trigger g WHERE g.tgrelid = c.oid AND NOT g.tgisinternal)
               FROM pg_class c
              WHERE c.relnamespace IN ('tenancy'::regnamespace, 'tenancy_private'::regnamespace)
                AND c.relkind IN ('r', 'p')",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    for w in 1..=2 {
        let mut wk = node(port, w, "postgres");
        wk.batch_execute("SET citus.override_table_visibility = off")
            .unwrap();
        // Each shard has what its table has: FORCE RLS, the policies, the updated_at and cache
        // triggers (and the audit trail's detach trigger on subscriptions).
        let rows = wk
            .query(
                "SELECT regexp_replace(s.relname::text, '_[0-9]+$', ''), s.relname::text, s.relforcerowsecurity,
                        (SELECT count(*) FROM pg_policy p WHERE p.polrelid = s.oid),
                        (SELECT count(*) FROM pg_trigger g WHERE g.tgrelid = s.oid AND NOT g.tgisinternal)
                   FROM pg_class s
                  WHERE s.relnamespace IN ('tenancy'::regnamespace, 'tenancy_private'::regnamespace)
                    AND s.relkind IN ('r', 'p') AND s.relname ~ '_[0-9]+$'",
                &[],
            )
            .unwrap();
        assert!(rows.len() > 100, "worker {w}: {} shards", rows.len());
        for r in rows {
            let table: String = r.get(0);
            let name: String = r.get(1);
            let Some(&(policies, triggers)) = tables.get(&table) else {
                continue; // a partition's own name
            };
            assert!(r.get::<_, bool>(2), "worker {w}: {name} without FORCE RLS");
            assert_eq!(r.get::<_, i64>(3), policies, "worker {w}: {name} policies");
            assert_eq!(r.get::<_, i64>(4), triggers, "worker {w}: {name} triggers");
        }
    }
}

#[test]
fn the_coordinator_checks_the_context_on_its_copy_of_the_reference_tables() {
    let Some(port) = port() else { return };
    let mut c = node(port, 0, "postgres");
    let mut t = c.transaction().unwrap();
    t.batch_execute("SET LOCAL ROLE service_role").unwrap();
    let role: String = t
        .query_one(
            "SELECT tenancy.set_tenant($1::uuid, $2::uuid)",
            &[
                &ACME.parse::<uuid::Uuid>().unwrap(),
                &ALICE.parse::<uuid::Uuid>().unwrap(),
            ],
        )
        .unwrap()
        .get(0);
    assert_eq!(role, "owner");
    t.batch_execute("SET LOCAL ROLE authenticated").unwrap();
    // Memberships are a reference table: read on the coordinator's copy, under RLS.
    let tenants: Vec<String> = t
        .query(
            "SELECT DISTINCT tenant_id::text FROM tenancy.memberships",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(tenants.contains(&ACME.to_string()));
    // Alice sees her own globex membership (own rows), never globex's other members.
    let globex_members: i64 = t
        .query_one(
            "SELECT count(*) FROM tenancy.memberships WHERE tenant_id = $1::uuid",
            &[&GLOBEX.parse::<uuid::Uuid>().unwrap()],
        )
        .unwrap()
        .get(0);
    assert_eq!(globex_members, 1);
    t.rollback().unwrap();

    // A member removed in another session loses the context at the next statement.
    let mut admin = node(port, 0, "postgres");
    let mut s = node(port, 0, "postgres");
    s.batch_execute("BEGIN; SET LOCAL ROLE service_role")
        .unwrap();
    s.execute(
        "SELECT tenancy.set_tenant($1::uuid, $2::uuid)",
        &[
            &ACME.parse::<uuid::Uuid>().unwrap(),
            &DAVE.parse::<uuid::Uuid>().unwrap(),
        ],
    )
    .unwrap();
    s.batch_execute("SET LOCAL ROLE authenticated").unwrap();
    let before: Option<uuid::Uuid> = s
        .query_one("SELECT tenancy.current_tenant_id()", &[])
        .unwrap()
        .get(0);
    assert!(before.is_some());
    let mut a = admin.transaction().unwrap();
    a.execute(
        "UPDATE tenancy.memberships SET role = 'client' WHERE tenant_id = $1::uuid AND user_id = $2::uuid",
        &[&ACME.parse::<uuid::Uuid>().unwrap(), &DAVE.parse::<uuid::Uuid>().unwrap()],
    )
    .unwrap();
    a.commit().unwrap();
    let after: Option<uuid::Uuid> = s
        .query_one("SELECT tenancy.current_tenant_id()", &[])
        .unwrap()
        .get(0);
    s.batch_execute("ROLLBACK").unwrap();
    admin
        .execute(
            "UPDATE tenancy.memberships SET role = 'member' WHERE tenant_id = $1::uuid AND user_id = $2::uuid",
            &[&ACME.parse::<uuid::Uuid>().unwrap(), &DAVE.parse::<uuid::Uuid>().unwrap()],
        )
        .unwrap();
    assert_eq!(after, None, "a demoted member kept the context");
}

/// Enter `tenant` as `user` the way PostgREST does (SET LOCAL ROLE authenticated, the claims,
/// pre_request), on the coordinator.
fn enter(c: &mut Client, user: &str, tenant: &str) {
    c.batch_execute("BEGIN; SET LOCAL ROLE authenticated")
        .unwrap();
    c.execute(
        "SELECT pg_catalog.set_config('request.jwt.claims', $1, true)",
        &[&format!(r#"{{"sub": "{user}", "tenant_id": "{tenant}"}}"#)],
    )
    .unwrap();
    c.batch_execute("SELECT tenancy.pre_request()").unwrap();
}

/// The distributed tables authenticated may read, with tenant_id.
fn readable_distributed(c: &mut Client) -> Vec<String> {
    strings(
        c,
        "SELECT logicalrelid::regclass::text FROM pg_dist_partition d
          WHERE partmethod = 'h' AND logicalrelid::regclass::text ~ '^tenancy\\.'
            AND has_table_privilege('authenticated', logicalrelid, 'SELECT')
            AND NOT EXISTS (SELECT FROM pg_inherits i WHERE i.inhrelid = d.logicalrelid)
          ORDER BY 1",
    )
}

fn tenants_read(c: &mut Client, table: &str) -> Vec<(String, i64)> {
    c.query(
        &format!("SELECT tenant_id::text, count(*) FROM {table} GROUP BY 1 ORDER BY 1"),
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[test]
fn members_read_their_tenant_through_the_workers_and_nothing_else() {
    let Some(port) = port() else { return };
    let mut su = node(port, 0, "postgres");
    let tables = readable_distributed(&mut su);
    assert!(tables.len() >= 10, "{tables:?}");
    let mut acme_rows = 0;
    for (user, role) in [
        (ALICE, "owner"),
        (BOB, "admin"),
        (CAROL, "manager"),
        (DAVE, "member"),
        (ERIN, "client"),
    ] {
        let mut c = node(port, 0, "postgres");
        enter(&mut c, user, ACME);
        let r: String = c
            .query_one("SELECT tenancy.current_role()", &[])
            .unwrap()
            .get(0);
        assert_eq!(r, role);
        for table in &tables {
            match c.query(
                &format!("SELECT tenant_id::text, count(*) FROM {table} GROUP BY 1"),
                &[],
            ) {
                Ok(rows) => {
                    for row in rows {
                        assert_eq!(
                            row.get::<_, String>(0),
                            ACME,
                            "{role} read another tenant's {table}"
                        );
                        acme_rows += row.get::<_, i64>(1);
                    }
                }
                Err(e) => assert_eq!(
                    e.code().map(|c| c.code()),
                    Some("42501"),
                    "{role} {table}: {e}"
                ),
            }
        }
        c.batch_execute("ROLLBACK").unwrap();
    }
    // Not vacuous: the members read acme's rows, which live on the workers.
    assert!(acme_rows > 10, "{acme_rows} rows of acme read");
    // The owner reads what the superuser sees of acme, table by table.
    let mut c = node(port, 0, "postgres");
    enter(&mut c, ALICE, ACME);
    for table in [
        "tenancy.projects",
        "tenancy.clients",
        "tenancy.integrations",
        "tenancy.actions",
        "tenancy.jobs",
    ] {
        let mine = tenants_read(&mut c, table);
        let all: Vec<(String, i64)> = tenants_read(&mut su, table)
            .into_iter()
            .filter(|(t, _)| t == ACME)
            .collect();
        assert_eq!(mine, all, "{table}");
        assert!(!all.is_empty(), "{table} has acme rows");
    }
    // A query that names globex's rows reads none of them; the shards are all asked.
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM tenancy.projects WHERE tenant_id = $1::uuid",
            &[&GLOBEX.parse::<uuid::Uuid>().unwrap()],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    c.batch_execute("ROLLBACK").unwrap();
}

/// The value pg_tenancy set on the coordinator for `user` in `tenant`, and that backend's gpid.
fn signed_value(c: &mut Client, user: &str, tenant: &str) -> (String, i64) {
    enter(c, user, tenant);
    let v: String = c
        .query_one("SELECT current_setting('tenancy.citus_context')", &[])
        .unwrap()
        .get(0);
    let g: i64 = c
        .query_one("SELECT citus_backend_gpid()", &[])
        .unwrap()
        .get(0);
    assert!(v.starts_with("v1:"), "{v}");
    (v, g)
}

/// A connection to worker `w` as `role` with Citus's password for it (as Citus connects), under
/// `application_name`.
fn as_citus(port: u16, w: u16, role: &str, application_name: &str) -> Client {
    let mut su = node(port, 0, "postgres");
    let auth: String = su
        .query_one(
            "SELECT authinfo FROM pg_dist_authinfo WHERE rolename = $1 LIMIT 1",
            &[&role],
        )
        .unwrap()
        .get(0);
    let password = auth.trim_start_matches("password=");
    Client::connect(
        &format!(
            "host=127.0.0.1 port={} user={role} dbname=tenancy_citus password={password} application_name='{application_name}'",
            port + w
        ),
        NoTls,
    )
    .unwrap_or_else(|e| panic!("connect to worker {w} as {role}: {e}"))
}

/// What `tenancy.current_tenant_id()` says on worker 1, in a backend like Citus's (application
/// name of coordinator backend `gpid`, logged in as `role`), with `tenancy.citus_context = value`.
fn worker_reads(port: u16, role: &str, gpid: i64, value: &str) -> Option<uuid::Uuid> {
    let mut w = as_citus(port, 1, role, &format!("citus_internal gpid={gpid}"));
    // As Citus sends it: a top-level SET LOCAL in the transaction (values hold no quote).
    assert!(!value.contains('\''));
    w.batch_execute(&format!(
        "BEGIN; SET LOCAL tenancy.citus_context = '{value}'"
    ))
    .unwrap();
    let t: Option<uuid::Uuid> = w
        .query_one("SELECT tenancy.current_tenant_id()", &[])
        .unwrap()
        .get(0);
    w.batch_execute("ROLLBACK").unwrap();
    t
}

#[test]
fn the_workers_accept_only_a_value_signed_for_this_role_and_coordinator_backend() {
    let Some(port) = port() else { return };
    let mut c = node(port, 0, "postgres");
    let (value, gpid) = signed_value(&mut c, ALICE, ACME);
    // The genuine value, where Citus would present it: the worker reads acme.  (The control:
    // without it every refusal below would prove nothing.)
    assert_eq!(
        worker_reads(port, "authenticated", gpid, &value),
        Some(ACME.parse().unwrap())
    );
    // The same value set any other way on that worker backend: nothing.  (A query's expressions
    // run on the worker, so set_config() there is the caller's.)
    for set in [
        format!("SELECT set_config('tenancy.citus_context', '{value}', true)"),
        format!("SELECT set_config('tenancy.citus_context', '{value}', false)"),
        format!("DO $$ BEGIN EXECUTE 'SET LOCAL tenancy.citus_context = ' || quote_literal('{value}'); END $$"),
    ] {
        let mut w = as_citus(port, 1, "authenticated", &format!("citus_internal gpid={gpid}"));
        w.batch_execute("BEGIN").unwrap();
        let _ = w.batch_execute(&set);
        let t = w
            .query_one("SELECT tenancy.current_tenant_id()", &[])
            .map(|r| r.get::<_, Option<uuid::Uuid>>(0));
        assert!(!matches!(t, Ok(Some(_))), "{set}: {t:?}");
    }
    // The application name changed after the connection started: not Citus's gpid.
    {
        let mut w = as_citus(port, 1, "authenticated", "citus_internal gpid=1");
        w.batch_execute(&format!(
            "SET application_name = 'citus_internal gpid={gpid}'; BEGIN; SET LOCAL tenancy.citus_context = '{value}'"
        ))
        .unwrap();
        let t: Option<uuid::Uuid> = w
            .query_one("SELECT tenancy.current_tenant_id()", &[])
            .unwrap()
            .get(0);
        assert_eq!(t, None);
    }
    // From another coordinator backend: nothing.
    assert_eq!(worker_reads(port, "authenticated", gpid + 1, &value), None);
    // As another role: nothing.
    assert_eq!(worker_reads(port, "service_role", gpid, &value), None);
    // Tampered: globex in place of acme, the mac kept.
    let parts: Vec<&str> = value.split(':').collect();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let ctx = String::from_utf8(b64.decode(parts[2]).unwrap()).unwrap();
    let forged_ctx = b64.encode(ctx.replace(ACME, GLOBEX));
    let tampered = format!(
        "{}:{}:{}:{}:{}",
        parts[0], parts[1], forged_ctx, parts[3], parts[4]
    );
    assert_eq!(worker_reads(port, "authenticated", gpid, &tampered), None);
    // Made up, and under a key id the keyring does not have.
    assert_eq!(
        worker_reads(
            port,
            "authenticated",
            gpid,
            &format!("v1:k1:{forged_ctx}:AAAA:AAAA")
        ),
        None
    );
    assert_eq!(
        worker_reads(
            port,
            "authenticated",
            gpid,
            &value.replacen("v1:k1:", "v1:nokey:", 1)
        ),
        None
    );
    // In a session that switched roles (a client, not Citus's connection): nothing, even with the
    // genuine value and application name.
    let mut su = node(port, 0, "postgres");
    su.batch_execute(
        "DROP ROLE IF EXISTS citus_test_switcher;
         CREATE ROLE citus_test_switcher LOGIN PASSWORD 'switcher-pw' IN ROLE authenticated;",
    )
    .unwrap();
    let mut w = Client::connect(
        &format!(
            "host=127.0.0.1 port={} user=citus_test_switcher password=switcher-pw dbname=tenancy_citus application_name='citus_internal gpid={gpid}'",
            port + 1
        ),
        NoTls,
    )
    .unwrap();
    // Its SET is refused (it is no backend of Citus's), and set_config() is not read.
    assert_eq!(
        sqlstate(w.batch_execute(&format!(
            "BEGIN; SET LOCAL ROLE authenticated; SET LOCAL tenancy.citus_context = '{value}'"
        ))),
        "42501"
    );
    w.batch_execute("ROLLBACK").unwrap();
    w.batch_execute("BEGIN; SET LOCAL ROLE authenticated")
        .unwrap();
    w.execute(
        "SELECT set_config('tenancy.citus_context', $1, true)",
        &[&value],
    )
    .unwrap();
    let t: Option<uuid::Uuid> = w
        .query_one("SELECT tenancy.current_tenant_id()", &[])
        .unwrap()
        .get(0);
    assert_eq!(t, None);
    w.batch_execute("ROLLBACK").unwrap();
    drop(w);
    su.batch_execute("DROP ROLE citus_test_switcher").unwrap();
    c.batch_execute("ROLLBACK").unwrap();
}

#[test]
fn a_value_cannot_be_set_but_by_pg_tenancy_nor_replayed() {
    let Some(port) = port() else { return };
    let mut c = node(port, 0, "postgres");
    let (value, _) = signed_value(&mut c, ALICE, ACME);
    c.batch_execute("ROLLBACK").unwrap();
    let globex = GLOBEX.parse::<uuid::Uuid>().unwrap();
    let acme = ACME.parse::<uuid::Uuid>().unwrap();
    // Replayed in a later transaction, as the same role: SET is refused on the coordinator.
    c.batch_execute("BEGIN; SET LOCAL ROLE authenticated")
        .unwrap();
    assert_eq!(
        sqlstate(c.batch_execute(&format!("SET LOCAL tenancy.citus_context = '{value}'"))),
        "42501"
    );
    c.batch_execute("ROLLBACK").unwrap();
    // Also in a function, and as RESET.
    c.batch_execute("BEGIN; SET LOCAL ROLE authenticated")
        .unwrap();
    assert_eq!(
        sqlstate(c.batch_execute(&format!(
            "DO $$ BEGIN SET LOCAL tenancy.citus_context = '{value}'; END $$"
        ))),
        "42501"
    );
    c.batch_execute("ROLLBACK").unwrap();
    // set_config() is not a SET statement: Citus does not send it, the coordinator does not read
    // it, and the workers see no context.
    c.batch_execute("BEGIN; SET LOCAL ROLE authenticated")
        .unwrap();
    c.execute(
        "SELECT set_config('tenancy.citus_context', $1, true)",
        &[&value],
    )
    .unwrap();
    for t in [acme, globex] {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM tenancy.projects WHERE tenant_id = $1",
                &[&t],
            )
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "replayed value read {t}");
    }
    c.batch_execute("ROLLBACK").unwrap();
    // In a transaction with a context of its own (dave), alice's value replayed: refused.
    enter(&mut c, DAVE, ACME);
    assert_eq!(
        sqlstate(c.batch_execute(&format!("SET LOCAL tenancy.citus_context = '{value}'"))),
        "42501"
    );
    c.batch_execute("ROLLBACK").unwrap();
}

#[test]
fn only_citus_reaches_the_workers_as_an_application_role() {
    let Some(port) = port() else { return };
    for role in ["authenticated", "anon", "service_role"] {
        for w in 1..=2 {
            let r = Client::connect(
                &format!(
                    "host=127.0.0.1 port={} user={role} dbname=tenancy_citus password=guess",
                    port + w
                ),
                NoTls,
            );
            assert_eq!(sqlstate(r), "28P01", "{role} logged in to worker {w}");
        }
    }
    // Citus's functions that run any SQL on the workers: not for application roles.
    let mut c = node(port, 0, "postgres");
    for role in ["authenticated", "service_role", "anon"] {
        c.batch_execute(&format!("SET ROLE {role}")).unwrap();
        for sql in [
            "SELECT * FROM run_command_on_workers('SELECT 1')",
            "SELECT * FROM run_command_on_all_nodes('SELECT 1')",
            "SELECT * FROM run_command_on_shards('tenancy.projects', 'SELECT 1')",
            "SELECT * FROM run_command_on_placements('tenancy.projects', 'SELECT 1')",
        ] {
            assert_eq!(sqlstate(c.query(sql, &[])), "42501", "{role}: {sql}");
        }
        c.batch_execute("RESET ROLE").unwrap();
    }
}

#[test]
fn a_demoted_member_loses_the_context_on_the_workers_at_the_next_statement() {
    let Some(port) = port() else { return };
    let acme = ACME.parse::<uuid::Uuid>().unwrap();
    let dave = DAVE.parse::<uuid::Uuid>().unwrap();
    let mut c = node(port, 0, "postgres");
    enter(&mut c, DAVE, ACME);
    // Integrations: members read them, clients do not.
    let before: i64 = c
        .query_one("SELECT count(*) FROM tenancy.integrations", &[])
        .unwrap()
        .get(0);
    assert!(before >= 1);
    // Dave is a member again afterwards, however this test ends.
    struct Restore(u16);
    impl Drop for Restore {
        fn drop(&mut self) {
            node(self.0, 0, "postgres")
                .execute(
                    "UPDATE tenancy.memberships SET role = 'member' WHERE tenant_id = $1::uuid AND user_id = $2::uuid",
                    &[&ACME.parse::<uuid::Uuid>().unwrap(), &DAVE.parse::<uuid::Uuid>().unwrap()],
                )
                .unwrap();
        }
    }
    let restore = Restore(port);
    let mut admin = node(port, 0, "postgres");
    admin
        .execute(
            "UPDATE tenancy.memberships SET role = 'client' WHERE tenant_id = $1 AND user_id = $2",
            &[&acme, &dave],
        )
        .unwrap();
    let after = c
        .query_one("SELECT count(*) FROM tenancy.integrations", &[])
        .map(|r| r.get::<_, i64>(0));
    let _ = c.batch_execute("ROLLBACK");
    drop(restore);
    match after {
        Ok(n) => assert_eq!(
            n, 0,
            "a demoted member still read integrations on the workers"
        ),
        Err(e) => assert_eq!(e.code().map(|c| c.code()), Some("42501"), "{e}"),
    }
}

fn task_count(c: &mut Client, sql: &str) -> i64 {
    let plan = strings(c, &format!("EXPLAIN (COSTS OFF) {sql}"));
    let line = plan
        .iter()
        .find(|l| l.trim_start().starts_with("Task Count:"))
        .unwrap_or_else(|| panic!("no Task Count in the plan of {sql}: {plan:#?}"));
    line.trim_start()["Task Count:".len()..]
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_tenants_query_reaches_only_its_shard() {
    let Some(port) = port() else { return };
    let mut c = node(port, 0, "postgres");
    enter(&mut c, ALICE, ACME);
    for sql in [
        "SELECT * FROM tenancy.projects ORDER BY created_at DESC LIMIT 20",
        "SELECT * FROM tenancy.request_logs ORDER BY created_at DESC LIMIT 50",
        "SELECT p.name, c.name FROM tenancy.projects p LEFT JOIN tenancy.clients c ON c.tenant_id = p.tenant_id AND c.id = p.client_id",
        "SELECT * FROM tenancy.integrations i WHERE EXISTS (SELECT FROM tenancy.actions a WHERE a.tenant_id = i.tenant_id AND a.integration_id = i.id)",
        "WITH p AS (SELECT * FROM tenancy.projects) SELECT count(*) FROM p",
        "UPDATE tenancy.projects SET name = name WHERE status = 'archived'",
        "DELETE FROM tenancy.projects WHERE name = 'none of them'",
    ] {
        assert_eq!(task_count(&mut c, sql), 1, "{sql}");
    }
    c.batch_execute("ROLLBACK").unwrap();
    // service_role sees every tenant (its policy): never routed, even with a tenant in context.
    c.batch_execute("BEGIN; SET LOCAL ROLE service_role")
        .unwrap();
    c.execute(
        "SELECT tenancy.set_tenant($1::uuid)",
        &[&ACME.parse::<uuid::Uuid>().unwrap()],
    )
    .unwrap();
    assert!(task_count(&mut c, "SELECT * FROM tenancy.projects") > 1);
    let tenants = strings(
        &mut c,
        "SELECT DISTINCT tenant_id::text FROM tenancy.projects ORDER BY 1",
    );
    assert_eq!(tenants, vec![ACME.to_string(), GLOBEX.to_string()]);
    c.batch_execute("ROLLBACK").unwrap();
    // Without a context nothing is routed (and nothing is read).
    c.batch_execute("BEGIN; SET LOCAL ROLE authenticated")
        .unwrap();
    assert!(task_count(&mut c, "SELECT * FROM tenancy.projects") > 1);
    c.batch_execute("ROLLBACK").unwrap();
}

fn tenants_of(c: &mut Client, sql: &str) -> Vec<String> {
    strings(c, sql)
}

#[test]
fn a_plan_made_for_one_tenant_never_runs_for_another() {
    let Some(port) = port() else { return };
    let frank = "00000000-0000-4000-8000-0000000000b1";
    let mut su = node(port, 0, "postgres");
    su.batch_execute(
        "CREATE OR REPLACE FUNCTION public.citus_test_project_tenants() RETURNS SETOF text
         LANGUAGE plpgsql STABLE AS $$ BEGIN
             RETURN QUERY SELECT DISTINCT tenant_id::text FROM tenancy.projects;
         END $$;
         GRANT EXECUTE ON FUNCTION public.citus_test_project_tenants() TO authenticated;",
    )
    .unwrap();
    let mut c = node(port, 0, "postgres");
    // A statement without parameters: always its one generic plan.  And one with a parameter,
    // forced generic.
    c.batch_execute(
        "PREPARE tenants AS SELECT DISTINCT tenant_id::text FROM tenancy.projects;
         SET plan_cache_mode = force_generic_plan;
         PREPARE tenants_limit(int) AS SELECT DISTINCT tenant_id::text FROM tenancy.projects LIMIT $1;",
    )
    .unwrap();
    let check = |c: &mut Client, want: &str| {
        for sql in [
            "EXECUTE tenants",
            "EXECUTE tenants_limit(10)",
            "SELECT * FROM public.citus_test_project_tenants()",
        ] {
            assert_eq!(tenants_of(c, sql), vec![want.to_string()], "{sql}");
        }
    };
    for _ in 0..2 {
        enter(&mut c, ALICE, ACME);
        check(&mut c, ACME);
        c.batch_execute("COMMIT").unwrap();
        enter(&mut c, frank, GLOBEX);
        check(&mut c, GLOBEX);
        c.batch_execute("COMMIT").unwrap();
    }
    // Within one transaction: alice in acme, then in globex (she is a member of both), then
    // back to acme by rolling back to a savepoint.
    enter(&mut c, ALICE, ACME);
    check(&mut c, ACME);
    c.batch_execute("SAVEPOINT s").unwrap();
    c.execute(
        "SELECT pg_catalog.set_config('request.jwt.claims', $1, true)",
        &[&format!(r#"{{"sub": "{ALICE}", "tenant_id": "{GLOBEX}"}}"#)],
    )
    .unwrap();
    c.batch_execute("SELECT tenancy.pre_request()").unwrap();
    check(&mut c, GLOBEX);
    c.batch_execute("ROLLBACK TO SAVEPOINT s").unwrap();
    check(&mut c, ACME);
    c.batch_execute("ROLLBACK").unwrap();
    su.batch_execute("DROP FUNCTION public.citus_test_project_tenants()")
        .unwrap();
}

#[test]
fn api_keys_work_through_the_coordinator() {
    let Some(port) = port() else { return };
    let mut c = node(port, 0, "postgres");
    enter(&mut c, ALICE, ACME);
    let key: String = c
        .query_one(
            "SELECT tenancy.create_api_key('citus suite', ARRAY['projects:read'])",
            &[],
        )
        .unwrap()
        .get(0);
    c.batch_execute("COMMIT").unwrap();
    // A backend authenticates with the key: the key's tenant, role api_key, on the workers too.
    c.batch_execute("BEGIN; SET LOCAL ROLE authenticated")
        .unwrap();
    let tenant: uuid::Uuid = c
        .query_one("SELECT tenancy.authenticate($1)", &[&key])
        .unwrap()
        .get(0);
    assert_eq!(tenant, ACME.parse::<uuid::Uuid>().unwrap());
    let tenants = strings(
        &mut c,
        "SELECT DISTINCT tenant_id::text FROM tenancy.projects",
    );
    assert_eq!(tenants, vec![ACME.to_string()]);
    assert_eq!(task_count(&mut c, "SELECT * FROM tenancy.projects"), 1);
    c.batch_execute("COMMIT").unwrap();
    // Last use is recorded (api_key_usage, distributed).
    let mut su = node(port, 0, "postgres");
    let used: i64 = su
        .query_one(
            "SELECT count(*) FROM tenancy_private.api_key_usage u JOIN tenancy.api_keys k
                 ON k.tenant_id = u.tenant_id AND k.id = u.key_id WHERE k.name = 'citus suite'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(used, 1);
    // Revoked: refused at once, on the next statement of a transaction that holds it.
    c.batch_execute("BEGIN; SET LOCAL ROLE authenticated")
        .unwrap();
    c.query_one("SELECT tenancy.authenticate($1)", &[&key])
        .unwrap();
    let before = strings(
        &mut c,
        "SELECT DISTINCT tenant_id::text FROM tenancy.projects",
    );
    assert_eq!(before.len(), 1);
    su.batch_execute("UPDATE tenancy.api_keys SET revoked_at = now() WHERE name = 'citus suite'")
        .unwrap();
    let after = strings(
        &mut c,
        "SELECT DISTINCT tenant_id::text FROM tenancy.projects",
    );
    assert!(after.is_empty(), "a revoked key still read {after:?}");
    c.batch_execute("ROLLBACK").unwrap();
    assert_eq!(
        sqlstate(c.query("SELECT tenancy.verify_api_key($1)", &[&key])),
        "28P01"
    );
    su.batch_execute("DELETE FROM tenancy.api_keys WHERE name = 'citus suite'")
        .unwrap();
}

#[test]
fn members_are_managed_through_the_coordinator() {
    let Some(port) = port() else { return };
    let mut su = node(port, 0, "postgres");
    su.batch_execute(
        "INSERT INTO tenancy.users (id, email) VALUES ('00000000-0000-4000-8000-0000000000c9', 'citus-new@example.test')
         ON CONFLICT DO NOTHING",
    )
    .unwrap();
    let newcomer = "00000000-0000-4000-8000-0000000000c9";
    let mut c = node(port, 0, "postgres");
    enter(&mut c, ALICE, ACME);
    let added: bool = c
        .query_one(
            "SELECT tenancy.add_member($1::uuid, 'member')",
            &[&newcomer.parse::<uuid::Uuid>().unwrap()],
        )
        .unwrap()
        .get(0);
    assert!(added);
    c.batch_execute("COMMIT").unwrap();
    // The newcomer reads acme through the workers at once (memberships: a reference table, on
    // every node).
    enter(&mut c, newcomer, ACME);
    let tenants = strings(
        &mut c,
        "SELECT DISTINCT tenant_id::text FROM tenancy.projects",
    );
    assert_eq!(tenants, vec![ACME.to_string()]);
    c.batch_execute("COMMIT").unwrap();
    enter(&mut c, ALICE, ACME);
    let removed: bool = c
        .query_one(
            "SELECT tenancy.remove_member($1::uuid)",
            &[&newcomer.parse::<uuid::Uuid>().unwrap()],
        )
        .unwrap()
        .get(0);
    assert!(removed);
    c.batch_execute("COMMIT").unwrap();
    // Removed: pre_request refuses, and nothing is read.
    c.batch_execute("BEGIN; SET LOCAL ROLE authenticated")
        .unwrap();
    c.execute(
        "SELECT pg_catalog.set_config('request.jwt.claims', $1, true)",
        &[&format!(
            r#"{{"sub": "{newcomer}", "tenant_id": "{ACME}"}}"#
        )],
    )
    .unwrap();
    assert_eq!(
        sqlstate(c.batch_execute("SELECT tenancy.pre_request()")),
        "42501"
    );
    c.batch_execute("ROLLBACK").unwrap();
    su.batch_execute("DELETE FROM tenancy.users WHERE id = '00000000-0000-4000-8000-0000000000c9'")
        .unwrap();
}

#[test]
fn request_logs_are_written_read_and_maintained_on_the_workers() {
    let Some(port) = port() else { return };
    let mut su = node(port, 0, "postgres");
    su.query_one("SELECT tenancy.maintain_request_logs()", &[])
        .unwrap();
    let (integration, action): (uuid::Uuid, uuid::Uuid) = {
        let r = su
            .query_one(
                "SELECT integration_id, id FROM tenancy.actions WHERE tenant_id = $1::uuid LIMIT 1",
                &[&ACME.parse::<uuid::Uuid>().unwrap()],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    let mut c = node(port, 0, "postgres");
    enter(&mut c, ALICE, ACME);
    let id: uuid::Uuid = c
        .query_one(
            "SELECT tenancy.log_request($1, $2, $3::text::jsonb, '{\"status\": 200}'::jsonb, 200, 12)",
            &[
                &integration,
                &action,
                &r#"{"method": "GET", "url": "https://api.example.test/v1/items?api_key=sk_live_4eC39HqLyjWDarjtT1zdp7dc"}"#,
            ],
        )
        .unwrap()
        .get(0);
    // log_request writes with pg_tenancy's privileges; Citus then refuses the caller's own reads
    // of the tenant's shards in that transaction (docs/citus.md): read in the next one.
    c.batch_execute("COMMIT").unwrap();
    enter(&mut c, ALICE, ACME);
    let url: String = c
        .query_one(
            "SELECT request_summary->>'url' FROM tenancy.request_logs WHERE id = $1",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert!(!url.contains("4eC39HqLyjWDarjtT1zdp7dc"), "{url}");
    assert_eq!(
        task_count(
            &mut c,
            "SELECT * FROM tenancy.request_logs ORDER BY created_at DESC LIMIT 50"
        ),
        1
    );
    c.batch_execute("COMMIT").unwrap();
    // Globex reads none of it.
    enter(&mut c, "00000000-0000-4000-8000-0000000000b1", GLOBEX);
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM tenancy.request_logs WHERE id = $1",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    c.batch_execute("ROLLBACK").unwrap();
    // The day's partition is distributed, colocated, with its shards' policies and RLS.
    let parts = strings(
        &mut su,
        "SELECT p.logicalrelid::text FROM pg_inherits i JOIN pg_dist_partition p ON p.logicalrelid = i.inhrelid
          WHERE i.inhparent = 'tenancy.request_logs'::regclass
            AND p.colocationid = (SELECT colocationid FROM pg_dist_partition WHERE logicalrelid = 'tenancy.projects'::regclass)",
    );
    let all = strings(
        &mut su,
        "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'tenancy.request_logs'::regclass",
    );
    assert!(
        all.len() > 2 && parts.len() == all.len(),
        "{parts:?} of {all:?}"
    );
    // Past the retention: as of 60 days from now, every partition up to today's is dropped, on
    // every node, with the log in it; then today's are made again.
    let dropped = strings(
        &mut su,
        "SELECT jsonb_array_elements_text(tenancy.maintain_request_logs('30 days', 7, now() + interval '60 days') -> 'dropped')",
    );
    assert!(!dropped.is_empty(), "nothing dropped");
    for part in &dropped {
        let part = part.trim_start_matches("tenancy_private.");
        let left: i64 = su
            .query_one("SELECT count(*) FROM pg_class WHERE relname = $1", &[&part])
            .unwrap()
            .get(0);
        assert_eq!(left, 0, "{part} still on the coordinator");
        for w in 1..=2 {
            let shards: i64 = node(port, w, "postgres")
                .query_one(
                    "SELECT count(*) FROM pg_class WHERE relname LIKE $1 || '\\_%'",
                    &[&part],
                )
                .unwrap()
                .get(0);
            assert_eq!(shards, 0, "{part}'s shards still on worker {w}");
        }
    }
    let gone: i64 = su
        .query_one(
            "SELECT count(*) FROM tenancy.request_logs WHERE id = $1",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert_eq!(gone, 0, "the log went with its partition");
    su.query_one("SELECT tenancy.maintain_request_logs()", &[])
        .unwrap();
}

#[test]
fn a_shard_move_keeps_policies_triggers_and_isolation() {
    let Some(port) = port() else { return };
    let mut su = node(port, 0, "postgres");
    // The shard of projects that holds acme, and the worker it is on.
    let row = su
        .query_one(
            "SELECT s.shardid, n.nodeport FROM pg_dist_shard s
               JOIN pg_dist_placement p ON p.shardid = s.shardid
               JOIN pg_dist_node n ON n.groupid = p.groupid
              WHERE s.shardid = get_shard_id_for_distribution_column('tenancy.projects', $1::uuid)",
            &[&ACME.parse::<uuid::Uuid>().unwrap()],
        )
        .unwrap();
    let (shard, from): (i64, i32) = (row.get(0), row.get(1));
    let to = if from == (port + 1) as i32 {
        port + 2
    } else {
        port + 1
    };
    su.execute(
        "SELECT citus_move_shard_placement($1, '127.0.0.1', $2, '127.0.0.1', $3, shard_transfer_mode => 'block_writes')",
        &[&shard, &from, &(to as i32)],
    )
    .unwrap();
    // Moved (with every colocated shard): acme's rows are read from the new worker, and only
    // acme's.
    let mut c = node(port, 0, "postgres");
    enter(&mut c, ALICE, ACME);
    let plan = strings(&mut c, "EXPLAIN (COSTS OFF) SELECT * FROM tenancy.projects");
    assert!(
        plan.iter().any(|l| l.contains(&format!("port={to}"))),
        "{plan:#?}"
    );
    let tenants = strings(
        &mut c,
        "SELECT DISTINCT tenant_id::text FROM tenancy.projects",
    );
    assert_eq!(tenants, vec![ACME.to_string()]);
    // The updated_at trigger runs on the moved shard.
    let stamped: bool = c
        .query_one(
            "WITH u AS (UPDATE tenancy.projects SET name = name || '' RETURNING updated_at)
             SELECT bool_and(updated_at >= now()) FROM u",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(stamped);
    c.batch_execute("ROLLBACK").unwrap();
    // On the new worker, the moved shard has FORCE RLS, its policies and its triggers.
    let mut w = node(port, to - port, "postgres");
    w.batch_execute("SET citus.override_table_visibility = off")
        .unwrap();
    let r = w
        .query_one(
            "SELECT c.relforcerowsecurity,
                    (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid),
                    (SELECT count(*) FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal)
               FROM pg_class c WHERE c.oid = ('tenancy.projects_' || $1::text)::regclass",
            &[&shard.to_string()],
        )
        .unwrap();
    let want = su
        .query_one(
            "SELECT (SELECT count(*) FROM pg_policy WHERE polrelid = 'tenancy.projects'::regclass),
                    (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'tenancy.projects'::regclass AND NOT tgisinternal)",
            &[],
        )
        .unwrap();
    assert!(r.get::<_, bool>(0));
    assert_eq!(r.get::<_, i64>(1), want.get::<_, i64>(0));
    assert_eq!(r.get::<_, i64>(2), want.get::<_, i64>(1));
    // Back where it was, for the other tests.
    su.execute(
        "SELECT citus_move_shard_placement($1, '127.0.0.1', $2, '127.0.0.1', $3, shard_transfer_mode => 'block_writes')",
        &[&shard, &(to as i32), &from],
    )
    .unwrap();
    // The moved-from copies now, not by Citus's cleaner seconds later: dropping one locks the
    // reference tables its foreign keys point to, and a later test's write of one of them
    // deadlocked with it (40P01 on a worker, once in a run).
    su.batch_execute("CALL citus_cleanup_orphaned_resources()")
        .unwrap();
}

#[test]
fn a_worker_restart_mid_traffic_never_shows_another_tenants_rows() {
    let Some(port) = port() else { return };
    let (Ok(major), Ok(bindir), Ok(state)) = (
        std::env::var("PGT_CITUS_MAJOR"),
        std::env::var("PGT_BINDIR"),
        std::env::var("PGT_STATE"),
    ) else {
        eprintln!("skipped: PGT_CITUS_MAJOR, PGT_BINDIR or PGT_STATE unset (scripts/citus.sh test sets them)");
        return;
    };
    let os_user = std::env::var("PGT_OS_USER").unwrap_or_else(|_| "tenancy".into());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Traffic: members of acme and globex, each reading its projects over and over, on
    // connections of their own (reconnecting after an error).
    let traffic: Vec<_> = [
        (ALICE, ACME),
        ("00000000-0000-4000-8000-0000000000b1", GLOBEX),
    ]
    .into_iter()
    .map(|(user, tenant)| {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u32, 0u32);
            let mut c = node(port, 0, "postgres");
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = c.batch_execute("ROLLBACK");
                let r = (|| -> Result<Vec<String>, postgres::Error> {
                    c.batch_execute("BEGIN; SET LOCAL ROLE authenticated")?;
                    c.execute(
                        "SELECT pg_catalog.set_config('request.jwt.claims', $1, true)",
                        &[&format!(r#"{{"sub": "{user}", "tenant_id": "{tenant}"}}"#)],
                    )?;
                    c.batch_execute("SELECT tenancy.pre_request()")?;
                    let rows =
                        c.query("SELECT DISTINCT tenant_id::text FROM tenancy.projects", &[])?;
                    c.batch_execute("COMMIT")?;
                    Ok(rows.iter().map(|r| r.get(0)).collect())
                })();
                match r {
                    Ok(tenants) => {
                        assert_eq!(tenants, vec![tenant.to_string()], "{user} read {tenants:?}");
                        ok += 1;
                    }
                    Err(_) => {
                        failed += 1;
                        if c.is_closed() {
                            c = node(port, 0, "postgres");
                        }
                        std::thread::sleep(std::time::Duration::from_millis(50));
                    }
                }
            }
            (ok, failed)
        })
    })
    .collect();
    std::thread::sleep(std::time::Duration::from_millis(500));
    for w in ["worker1", "worker2"] {
        let status = std::process::Command::new("sudo")
            .args(["-u", &os_user, &format!("{bindir}/pg_ctl"), "-D"])
            .arg(format!("{state}/citus{major}-{w}/data"))
            .args(["-w", "-t", "60", "-m", "fast", "restart", "-l"])
            .arg(format!("{state}/citus{major}-{w}/server.log"))
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "restart of {w}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in traffic {
        let (ok, failed) = t
            .join()
            .expect("a traffic thread saw another tenant's rows");
        assert!(ok > 10, "{ok} reads succeeded ({failed} failed)");
    }
    // Afterwards every read succeeds again.
    let mut c = node(port, 0, "postgres");
    enter(&mut c, ALICE, ACME);
    assert_eq!(
        strings(
            &mut c,
            "SELECT DISTINCT tenant_id::text FROM tenancy.projects"
        ),
        vec![ACME.to_string()]
    );
    c.batch_execute("ROLLBACK").unwrap();
}

/// The attacks of a member with raw SQL through the coordinator, whose query's expressions run on
/// the workers: setting the context there, or reading other backends' query text there.
#[test]
fn a_query_pushed_to_a_worker_cannot_set_or_steal_a_context() {
    let Some(port) = port() else { return };
    let acme = ACME.parse::<uuid::Uuid>().unwrap();
    // Alice's genuine value and coordinator backend, as an attacker who saw them would have them.
    let mut alice = node(port, 0, "postgres");
    let (value, gpid) = signed_value(&mut alice, ALICE, ACME);
    let mut c = node(port, 0, "postgres");
    // No context of its own.  On the worker that holds acme's shard (the WHERE routes there),
    // the query's HAVING sets the application name and the context for the rest of the session.
    let attack = format!(
        "SELECT count(*) FROM tenancy.projects WHERE tenant_id = '{ACME}'
          HAVING set_config('application_name', 'citus_internal gpid={gpid}', false) IS NOT NULL
             AND set_config('tenancy.citus_context', '{value}', false) IS NOT NULL"
    );
    for _ in 0..3 {
        c.batch_execute("BEGIN; SET LOCAL ROLE authenticated")
            .unwrap();
        let _ = c.batch_execute(&attack);
        let n = c
            .query_one(
                "SELECT count(*) FROM tenancy.projects WHERE tenant_id = $1",
                &[&acme],
            )
            .map(|r| r.get::<_, i64>(0));
        assert!(
            matches!(n, Ok(0) | Err(_)),
            "the pushed-down context read acme: {n:?}"
        );
        let _ = c.batch_execute("ROLLBACK");
    }
    // pre_request() evaluated on a worker, with claims of the caller's choosing (set first: CASE
    // evaluates its condition before its result): refused there.
    c.batch_execute("BEGIN; SET LOCAL ROLE authenticated")
        .unwrap();
    let r = c.batch_execute(&format!(
        "SELECT count(*) FROM tenancy.projects WHERE tenant_id = '{ACME}'
         HAVING CASE WHEN set_config('request.jwt.claims', '{{\"sub\": \"{ALICE}\", \"tenant_id\": \"{ACME}\"}}', true) IS NOT NULL
                     THEN tenancy.pre_request() IS NULL END"
    ));
    let e = error_text(r);
    // (set_config() itself is refused there now.)
    assert!(
        e.contains("not on a worker") || e.contains("does not run on a Citus worker"),
        "{e}"
    );
    c.batch_execute("ROLLBACK").unwrap();
    // set_tenant() there: refused too (for want of a user, before anything else).
    c.batch_execute("BEGIN; SET LOCAL ROLE authenticated")
        .unwrap();
    let r = c.batch_execute(&format!(
        "SELECT count(*) FROM tenancy.projects WHERE tenant_id = '{ACME}' HAVING tenancy.set_tenant('{ACME}') IS NOT NULL"
    ));
    let e = error_text(r);
    assert!(
        e.starts_with("28000") || e.contains("not on a worker"),
        "{e}"
    );
    c.batch_execute("ROLLBACK").unwrap();
    // Other backends' query text on the worker (pg_stat_activity): refused.
    for probe in [
        "(SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%citus_context%')",
        "(SELECT count(*) FROM pg_stat_get_activity(NULL))",
    ] {
        c.batch_execute("BEGIN; SET LOCAL ROLE authenticated")
            .unwrap();
        let r = c.batch_execute(&format!(
            "SELECT count(*) FROM tenancy.projects WHERE tenant_id = '{ACME}' HAVING {probe} >= 0"
        ));
        // Citus on PostgreSQL 16 does not send the view (outer joins) to a worker at all.
        let e = error_text(r);
        assert!(
            e.starts_with("42501")
                || e.starts_with("XX000: Distributed queries with outer joins and pseudoconstant quals are not supported in PG16"),
            "{probe}: {e}"
        );
        c.batch_execute("ROLLBACK").unwrap();
    }
    alice.batch_execute("ROLLBACK").unwrap();
}

#[test]
fn on_every_node_citus_run_anything_functions_are_not_the_application_roles() {
    let Some(port) = port() else { return };
    for n in 0..=2 {
        let mut c = node(port, n, "postgres");
        for role in ["anon", "authenticated", "service_role"] {
            let open = strings(
                &mut c,
                &format!(
                    "SELECT p.oid::regprocedure::text FROM pg_proc p
                      WHERE p.proname ~ '^(run_command_on|master_run_on)'
                        AND has_function_privilege('{role}', p.oid, 'EXECUTE')"
                ),
            );
            assert!(open.is_empty(), "node {n}: {role} may execute {open:?}");
        }
        if n > 0 {
            let readable: bool = c
                .query_one(
                    "SELECT has_table_privilege('authenticated', 'pg_catalog.pg_stat_activity', 'SELECT')",
                    &[],
                )
                .unwrap()
                .get(0);
            assert!(!readable, "node {n}: authenticated reads pg_stat_activity");
        }
        // Nor signals another backend: every tenant's worker connections are the same role
        // (Citus's overloads by global pid reach any node).
        {
            // On the coordinator, PostgreSQL's own stay (there a member's session is its login
            // role's, not `authenticated`'s).
            let signals = strings(
                &mut c,
                &format!(
                    "SELECT p.oid::regprocedure::text FROM pg_proc p
                      WHERE p.proname IN ('pg_cancel_backend', 'pg_terminate_backend')
                        AND ({n} > 0 OR p.proargtypes[0] = 'bigint'::regtype)
                        AND has_function_privilege('authenticated', p.oid, 'EXECUTE')"
                ),
            );
            assert!(
                signals.is_empty(),
                "node {n}: authenticated may {signals:?}"
            );
        }
        // Nor connects, as itself, to a host and port it names (Citus would send its password).
        for role in ["anon", "authenticated", "service_role"] {
            let open: bool = c
                .query_one(
                    &format!("SELECT has_function_privilege('{role}', 'citus_check_connection_to_node(text, integer)', 'EXECUTE')"),
                    &[],
                )
                .unwrap()
                .get(0);
            assert!(!open, "node {n}: {role} may citus_check_connection_to_node");
        }
        // And no password of theirs is Citus's for any host: one row per node, none for all.
        let wildcard: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_dist_authinfo WHERE nodeid = 0",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(wildcard, 0, "node {n}: a wildcard pg_dist_authinfo row");
    }
    // A member's query sent whole to a worker cannot cancel another tenant's backend there.
    let mut m = node(port, 0, "postgres");
    enter(&mut m, DAVE, ACME);
    let e = error_text(m.query(
        "SELECT pg_cancel_backend(pg_backend_pid()) FROM tenancy.jobs WHERE tenant_id = $1::uuid LIMIT 1",
        &[&ACME.parse::<uuid::Uuid>().unwrap()],
    ));
    assert!(
        e.starts_with("42501: permission denied for function pg_cancel_backend"),
        "{e}"
    );
    m.batch_execute("ROLLBACK").unwrap();
}

/// The second review's attacks: a SET's whole query string sent by Citus to later (superuser)
/// connections, a client naming itself Citus at connection start, the application roles'
/// defaults, and context changes without end.
#[test]
fn what_citus_would_send_for_a_member_is_refused() {
    let Some(port) = port() else { return };
    let mut c = node(port, 0, "postgres");
    // Propagation on (SET or set_config), then any SET: refused; pg_tenancy's own still works.
    for on in [
        "SET LOCAL citus.propagate_set_commands = 'local'",
        "SELECT set_config('citus.propagate_set_commands', 'local', true)",
    ] {
        enter(&mut c, DAVE, ACME);
        c.batch_execute(on).unwrap();
        for set in [
            "SET LOCAL foo.bar = 'x'",
            "RESET statement_timeout",
            "SET LOCAL statement_timeout = '1s'; DO $$ BEGIN RAISE NOTICE 'payload'; END $$",
        ] {
            c.batch_execute("SAVEPOINT s").unwrap();
            assert_eq!(sqlstate(c.batch_execute(set)), "42501", "{on}; {set}");
            c.batch_execute("ROLLBACK TO SAVEPOINT s").unwrap();
        }
        c.batch_execute("SELECT tenancy.pre_request()").unwrap();
        let tenants = strings(
            &mut c,
            "SELECT DISTINCT tenant_id::text FROM tenancy.projects",
        );
        assert_eq!(tenants, vec![ACME.to_string()]);
        c.batch_execute("ROLLBACK").unwrap();
    }
    // A login role (like PostgREST's authenticator) that names itself Citus at connection start:
    // on the coordinator it is a client like any other.
    let mut su = node(port, 0, "postgres");
    su.batch_execute(
        "DROP ROLE IF EXISTS citus_test_login;
         CREATE ROLE citus_test_login LOGIN NOINHERIT IN ROLE authenticated;",
    )
    .unwrap();
    let mut l = Client::connect(
        &format!(
            "host=127.0.0.1 port={port} user=citus_test_login dbname=tenancy_citus application_name='citus_internal gpid=10000012345'"
        ),
        NoTls,
    )
    .unwrap();
    assert_eq!(
        sqlstate(
            l.batch_execute("BEGIN; SET LOCAL tenancy.citus_context = 'v1:k1:AAAA:BBBB:CCCC'")
        ),
        "42501"
    );
    l.batch_execute("ROLLBACK").unwrap();
    drop(l);
    su.batch_execute("DROP ROLE citus_test_login").unwrap();
    // The application roles' defaults: a superuser's (every tenant's worker connections log in
    // as them).
    // Nor their passwords (Citus propagates the ALTER ROLE, which then holds the role's row on
    // every worker until the caller's transaction ends).
    for role in ["authenticated", "anon", "service_role"] {
        for alter in [
            "SET statement_timeout = '1ms'",
            "PASSWORD 'chosen-by-a-member'",
        ] {
            c.batch_execute(&format!("BEGIN; SET LOCAL ROLE {role}"))
                .unwrap();
            assert_eq!(
                sqlstate(c.batch_execute(&format!("ALTER ROLE {role} {alter}"))),
                "42501",
                "{role}: {alter}"
            );
            c.batch_execute("ROLLBACK").unwrap();
        }
    }
    // Context changes in one transaction: bounded (each is sent to every later connection).
    c.batch_execute("BEGIN; SET LOCAL ROLE service_role")
        .unwrap();
    let r = c.batch_execute(&format!(
        "DO $$ BEGIN FOR i IN 1..1001 LOOP
             PERFORM tenancy.set_tenant(CASE WHEN i % 2 = 0 THEN '{ACME}'::uuid ELSE '{GLOBEX}'::uuid END);
         END LOOP; END $$"
    ));
    assert_eq!(sqlstate(r), "54000");
    c.batch_execute("ROLLBACK").unwrap();
    // A thousand is allowed, and the transaction after it starts from zero.
    c.batch_execute("BEGIN; SET LOCAL ROLE service_role")
        .unwrap();
    c.batch_execute(&format!(
        "DO $$ BEGIN FOR i IN 1..1000 LOOP
             PERFORM tenancy.set_tenant(CASE WHEN i % 2 = 0 THEN '{ACME}'::uuid ELSE '{GLOBEX}'::uuid END);
         END LOOP; END $$"
    ))
    .unwrap();
    c.batch_execute("COMMIT").unwrap();
}

#[test]
fn the_vault_stores_reads_and_rotates_on_the_workers() {
    let Some(port) = port() else { return };
    let integration: uuid::Uuid = node(port, 0, "postgres")
        .query_one(
            "SELECT id FROM tenancy.integrations WHERE tenant_id = $1::uuid LIMIT 1",
            &[&ACME.parse::<uuid::Uuid>().unwrap()],
        )
        .unwrap()
        .get(0);
    let mut c = node(port, 0, "postgres");
    enter(&mut c, ALICE, ACME);
    let id: uuid::Uuid = c
        .query_one(
            "SELECT tenancy.store_credential($1, 'api_key', '{\"token\": \"citus-secret-1\"}'::jsonb)",
            &[&integration],
        )
        .unwrap()
        .get(0);
    c.batch_execute("COMMIT").unwrap();
    let read = |c: &mut Client| -> String {
        c.query_one("SELECT tenancy.read_credential($1)::text", &[&id])
            .unwrap()
            .get(0)
    };
    enter(&mut c, ALICE, ACME);
    assert!(read(&mut c).contains("citus-secret-1"));
    c.execute(
        "SELECT tenancy.update_credential($1, '{\"token\": \"citus-secret-2\"}'::jsonb)",
        &[&id],
    )
    .unwrap();
    c.batch_execute("COMMIT").unwrap();
    // At rest on the worker: ciphertext only.
    let mut su = node(port, 0, "postgres");
    let plain: i64 = su
        .query_one(
            "SELECT count(*) FROM tenancy_private.credential_secrets
              WHERE credential_id = $1 AND position('citus-secret' in encode(encrypted_data, 'escape')) > 0",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert_eq!(plain, 0);
    // Another tenant's owner: not found (P0002), as on one node.
    enter(&mut c, "00000000-0000-4000-8000-0000000000b1", GLOBEX);
    assert_eq!(
        sqlstate(c.query("SELECT tenancy.read_credential($1)", &[&id])),
        "P0002"
    );
    c.batch_execute("ROLLBACK").unwrap();
    // A new data key version, the credential re-encrypted under it, still readable.
    su.query_one(
        "SELECT tenancy.rotate_tenant_key($1::uuid)",
        &[&ACME.parse::<uuid::Uuid>().unwrap()],
    )
    .unwrap();
    enter(&mut c, ALICE, ACME);
    assert!(read(&mut c).contains("citus-secret-2"));
    c.batch_execute("ROLLBACK").unwrap();
}

#[test]
fn a_users_own_table_is_isolated_and_routed_when_distributed() {
    let Some(port) = port() else { return };
    let mut su = node(port, 0, "postgres");
    su.batch_execute(
        "DROP TABLE IF EXISTS public.citus_notes;
         CREATE TABLE public.citus_notes (
             tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id) ON DELETE CASCADE,
             id uuid NOT NULL DEFAULT gen_random_uuid(),
             body text NOT NULL,
             PRIMARY KEY (tenant_id, id));
         SELECT tenancy.enable_tenant_isolation('public.citus_notes');
         SELECT create_distributed_table('public.citus_notes', 'tenant_id', colocate_with => 'tenancy.clients');",
    )
    .unwrap();
    su.execute(
        "INSERT INTO public.citus_notes (tenant_id, body) VALUES ($1::uuid, 'acme note'), ($2::uuid, 'globex note')",
        &[&ACME.parse::<uuid::Uuid>().unwrap(), &GLOBEX.parse::<uuid::Uuid>().unwrap()],
    )
    .unwrap();
    let mut c = node(port, 0, "postgres");
    enter(&mut c, DAVE, ACME);
    assert_eq!(
        strings(&mut c, "SELECT body FROM public.citus_notes"),
        vec!["acme note".to_string()]
    );
    assert_eq!(task_count(&mut c, "SELECT body FROM public.citus_notes"), 1);
    c.batch_execute("ROLLBACK").unwrap();
    su.batch_execute("DROP TABLE public.citus_notes").unwrap();
}

/// Dave's count of acme's projects through a new coordinator connection to `db` (so Citus opens
/// new connections to the workers, as `authenticated`, with `db`'s pg_dist_authinfo), or the
/// error.
fn dave_reads_through_new_connections(port: u16, db: &str) -> Result<i64, String> {
    let mut c = node_db(port, 0, "postgres", db);
    enter(&mut c, DAVE, ACME);
    // Every shard (a count over all of them, not routed: every worker is reached).
    c.query_one(
        "SELECT count(*) FROM tenancy.projects p WHERE tenancy.current_tenant_id() IS NOT NULL",
        &[],
    )
    .map(|r| r.get(0))
    .map_err(|e| error_text(Err::<(), _>(e)))
}

/// Roles are the cluster's, `pg_dist_authinfo` is a database's: a second database of the cluster
/// that distributes pg_tenancy gives Citus the same worker password (derived from the shared root
/// keyring), so the first still reaches the workers.  A worker password that no root key derives
/// is replaced only when asked.
#[test]
fn a_second_database_on_the_cluster_leaves_the_first_reaching_the_workers() {
    let Some(port) = port() else { return };
    let first = dave_reads_through_new_connections(port, "tenancy_citus").unwrap();
    assert!(first > 0);
    // pg_tenancy installed in another database, not distributed there: Citus copies the roles to
    // the workers as the coordinator has them (NOLOGIN, no password); the workers keep the logins.
    let installed = pg_tenancy_client_tests::TestDb::empty("pgt_citus_installed");
    installed
        .connect("postgres")
        .batch_execute("CREATE EXTENSION pg_tenancy")
        .unwrap();
    for w in 1..=2 {
        assert_eq!(
            strings(
                &mut node(port, w, "postgres"),
                "SELECT tenancy._citus_login_key(r) FROM unnest('{anon,authenticated,service_role}'::text[]) r"
            ),
            vec!["key:k1"; 3],
            "worker {w}"
        );
    }
    assert_eq!(
        dave_reads_through_new_connections(port, "tenancy_citus"),
        Ok(first),
        "the first database after pg_tenancy was installed in another"
    );
    drop(installed);
    let second = pg_tenancy_client_tests::TestDb::new("pgt_citus_second");
    assert_eq!(
        dave_reads_through_new_connections(port, "tenancy_citus"),
        Ok(first),
        "the first database after the second's distribute()"
    );
    assert_eq!(
        dave_reads_through_new_connections(port, &second.name),
        Ok(first)
    );
    let authinfo = |db: &str| -> Vec<String> {
        let mut c = node_db(port, 0, "postgres", db);
        strings(
            &mut c,
            "SELECT DISTINCT rolename || ' ' || authinfo FROM pg_dist_authinfo ORDER BY 1",
        )
    };
    let info = authinfo("tenancy_citus");
    assert_eq!(info.len(), 3, "{}", info.len());
    assert_eq!(info, authinfo(&second.name));

    // A password no root key derives (set by hand on worker 1): distribute() stops and says why.
    node(port, 1, "postgres")
        .batch_execute("ALTER ROLE service_role PASSWORD 'set-by-hand-on-worker-1'")
        .unwrap();
    let mut c2 = node_db(port, 0, "postgres", &second.name);
    let refused = c2
        .query_one("SELECT tenancy.distribute()", &[])
        .unwrap_err();
    let db = refused.as_db_error().unwrap();
    let text = format!(
        "{} {} {:?} {:?}",
        db.code().code(),
        db.message(),
        db.detail(),
        db.hint()
    );
    assert!(
        text.starts_with("55000 role service_role logs in to worker")
            && text.contains("distribute(reset_worker_logins => true)"),
        "{text}"
    );
    assert!(!text.contains("set-by-hand"), "{text}");
    // Asked to: the root key's password again, on every worker; the first database's is the same.
    c2.query_one(
        "SELECT tenancy.distribute(reset_worker_logins => true)",
        &[],
    )
    .unwrap();
    assert_eq!(authinfo(&second.name), info);
    let service_reaches = |db: &str| {
        let mut c = node_db(port, 0, "postgres", db);
        c.batch_execute("BEGIN; SET LOCAL ROLE service_role")
            .unwrap();
        let r = c.query_one("SELECT count(*) FROM tenancy.projects", &[]);
        c.batch_execute("ROLLBACK").unwrap();
        r.map(|r| r.get::<_, i64>(0))
            .map_err(|e| error_text(Err::<(), _>(e)))
    };
    assert!(
        service_reaches("tenancy_citus").is_ok(),
        "{:?}",
        service_reaches("tenancy_citus")
    );
    assert!(service_reaches(&second.name).is_ok());
}

/// `distribute()` with every statement logged on every node: no node's log holds a worker
/// password (each node derives it; only the role and the root key's id travel).
#[test]
fn no_worker_password_reaches_a_servers_log() {
    let Some(port) = port() else { return };
    let (Ok(major), Ok(state)) = (std::env::var("PGT_CITUS_MAJOR"), std::env::var("PGT_STATE"))
    else {
        eprintln!("skipped: PGT_CITUS_MAJOR or PGT_STATE unset (scripts/citus.sh test sets them)");
        return;
    };
    let passwords: Vec<String> = strings(
        &mut node(port, 0, "postgres"),
        "SELECT DISTINCT ON (rolename) substring(authinfo FROM 'password=(.*)') FROM pg_dist_authinfo ORDER BY rolename",
    );
    assert_eq!(passwords.len(), 3);
    let logs = ["coordinator", "worker1", "worker2"]
        .map(|n| format!("{state}/citus{major}-{n}/server.log"));
    let sizes: Vec<u64> = logs
        .iter()
        .map(|l| std::fs::metadata(l).map(|m| m.len()).unwrap_or(0))
        .collect();
    for n in 0..3 {
        let mut c = node(port, n, "postgres");
        c.batch_execute("ALTER SYSTEM SET log_statement = 'all'")
            .unwrap();
        c.batch_execute("SELECT pg_reload_conf()").unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let report: String = node(port, 0, "postgres")
        .query_one("SELECT tenancy.distribute()::text", &[])
        .unwrap()
        .get(0);
    for n in 0..3 {
        let mut c = node(port, n, "postgres");
        c.batch_execute("ALTER SYSTEM RESET log_statement").unwrap();
        c.batch_execute("SELECT pg_reload_conf()").unwrap();
    }
    let mut logged = String::new();
    for (log, size) in logs.iter().zip(sizes) {
        let bytes = std::fs::read(log).unwrap();
        logged.push_str(&String::from_utf8_lossy(&bytes[size as usize..]));
    }
    assert!(
        logged.contains("_citus_set_login('authenticated'"),
        "the workers' statements were logged: {}",
        &logged[..logged.len().min(2000)]
    );
    for p in &passwords {
        assert!(
            !logged.contains(p.as_str()),
            "a worker password in a server log"
        );
        assert!(!report.contains(p.as_str()));
    }
    // The same passwords after the second call (the workers' key is kept).
    assert_eq!(
        strings(
            &mut node(port, 0, "postgres"),
            "SELECT DISTINCT ON (rolename) substring(authinfo FROM 'password=(.*)') FROM pg_dist_authinfo ORDER BY rolename",
        ),
        passwords
    );
}

/// Citus sends an INSERT's defaulted columns to the shard explicitly, so a member (INSERT on some
/// of jobs' columns only) was refused there (42501 on the shard).  distribute() grants those
/// columns, and a trigger on every shard gives them their defaults again for anyone but
/// service_role: a member's job starts queued, whatever it says.
#[test]
fn a_members_job_starts_queued_on_the_workers() {
    let Some(port) = port() else { return };
    let mut c = node(port, 0, "postgres");
    enter(&mut c, DAVE, ACME);
    let row = c
        .query_one(
            "INSERT INTO tenancy.jobs (tenant_id, user_id, job_type, status, progress, created_at)
             VALUES ($1::uuid, $2::uuid, 'export', 'completed', 100, '2000-01-01')
             RETURNING status, progress, created_at <> '2000-01-01'::timestamptz",
            &[
                &ACME.parse::<uuid::Uuid>().unwrap(),
                &DAVE.parse::<uuid::Uuid>().unwrap(),
            ],
        )
        .unwrap();
    assert_eq!(
        (
            row.get::<_, String>(0),
            row.get::<_, i32>(1),
            row.get::<_, bool>(2)
        ),
        ("queued".to_string(), 0, true)
    );
    // What it may not name stays refused on the coordinator, as on one node.
    assert_eq!(
        sqlstate(c.query(
            "INSERT INTO tenancy.jobs (tenant_id, job_type, result) VALUES ($1::uuid, 'x', '{}')",
            &[&ACME.parse::<uuid::Uuid>().unwrap()]
        )),
        "42501"
    );
    c.batch_execute("ROLLBACK; BEGIN; SET LOCAL ROLE service_role")
        .unwrap();
    let status: String = c
        .query_one(
            "INSERT INTO tenancy.jobs (tenant_id, job_type, status) VALUES ($1::uuid, 'import', 'processing')
             RETURNING status",
            &[&ACME.parse::<uuid::Uuid>().unwrap()],
        )
        .unwrap()
        .get(0);
    assert_eq!(status, "processing");
    c.batch_execute("ROLLBACK").unwrap();
}

/// A globex member's open transaction holding an intermediate result (a CTE joined with a
/// catalog: Citus computes the CTE on its shard and keeps its rows, under the coordinator's
/// results directory of that role and transaction).  Returns the session and the transaction's
/// (node, number, stamp).
fn globex_with_an_intermediate_result(port: u16) -> (Client, i32, i64, String) {
    let mut b = node(port, 0, "postgres");
    enter(&mut b, IVAN, GLOBEX);
    let rows = b
        .query(
            "WITH c AS MATERIALIZED (SELECT id, name FROM tenancy.projects)
             SELECT c.name FROM c JOIN pg_catalog.pg_namespace n ON n.nspname = 'tenancy'",
            &[],
        )
        .unwrap();
    assert!(!rows.is_empty(), "globex has projects");
    let r = b
        .query_one(
            "SELECT initiator_node_identifier, transaction_number::bigint, transaction_stamp::text
               FROM get_current_transaction_id()",
            &[],
        )
        .unwrap();
    let (node_id, number, stamp): (i32, i64, String) = (r.get(0), r.get(1), r.get(2));
    assert!(number > 0, "a distributed transaction");
    (b, node_id, number, stamp)
}

/// Citus keeps a transaction's intermediate results in files named by the role and the
/// transaction's number: every tenant's are `authenticated`'s, so a member who joined another
/// tenant's open transaction read its rows (src/citus/internals.rs).
#[test]
fn a_member_cannot_join_another_tenants_distributed_transaction() {
    let Some(port) = port() else { return };
    let (mut b, node_id, number, stamp) = globex_with_an_intermediate_result(port);
    let join = format!("assign_distributed_transaction_id({node_id}, {number}, '{stamp}')");
    // On the coordinator, in a transaction of its own.
    let mut a = node(port, 0, "postgres");
    enter(&mut a, DAVE, ACME);
    let e = error_text(a.batch_execute(&format!("SELECT {join}")));
    assert!(
        e.starts_with("42501: assign_distributed_transaction_id()"),
        "{e}"
    );
    a.batch_execute("ROLLBACK").unwrap();
    // Pushed down to a worker, in a statement of its own (no transaction block: Citus sends
    // no BEGIN, so the worker's backend has no transaction number yet), with no context (HAVING
    // runs once even over no rows).
    let mut p = node(port, 0, "postgres");
    p.batch_execute("SET ROLE authenticated").unwrap();
    let e = error_text(p.batch_execute(&format!(
        "SELECT count(*) FROM tenancy.projects WHERE tenant_id = '{ACME}' HAVING {join} IS NULL"
    )));
    assert!(
        e.starts_with("42501: assign_distributed_transaction_id()"),
        "{e}"
    );
    // Citus's own command, as Citus sends it to a worker, passes; the same call otherwise not.
    let mut w = as_citus(port, 1, "authenticated", "citus_internal gpid=10000099999");
    w.batch_execute(&format!(
        "BEGIN TRANSACTION ISOLATION LEVEL READ COMMITTED;SELECT assign_distributed_transaction_id(0, 4242424242, '{stamp}');"
    ))
    .unwrap();
    w.batch_execute("ROLLBACK").unwrap();
    let e = error_text(w.batch_execute(&format!(
        "BEGIN; SELECT assign_distributed_transaction_id(0, 4242424243, '{stamp}')"
    )));
    assert!(e.starts_with("42501"), "{e}");
    b.batch_execute("ROLLBACK").unwrap();
}

/// Citus's lock functions take any mode past the LOCK guard (src/lock_guard.rs).
#[test]
fn a_member_locks_nothing_through_citus_functions() {
    let Some(port) = port() else { return };
    let mut su = node(port, 0, "postgres");
    let users_shard: i64 = su
        .query_one(
            "SELECT shardid FROM pg_dist_shard WHERE logicalrelid = 'tenancy.users'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    let mut c = node(port, 0, "postgres");
    for call in [
        format!("lock_shard_resources(7, ARRAY[{users_shard}]::bigint[])"),
        format!("lock_shard_metadata(7, ARRAY[{users_shard}]::bigint[])"),
        "lock_relation_if_exists('tenancy.projects', 'SHARE ROW EXCLUSIVE')".to_string(),
    ] {
        // On the coordinator, and pushed down to a worker.
        for sql in [
            format!("SELECT {call}"),
            format!("SELECT count(*) FROM tenancy.projects WHERE tenant_id = '{ACME}' HAVING {call} IS NOT NULL"),
        ] {
            enter(&mut c, DAVE, ACME);
            let e = error_text(c.batch_execute(&sql));
            assert!(e.starts_with("42501"), "{sql}: {e}");
            c.batch_execute("ROLLBACK").unwrap();
        }
    }
    // Citus's own command, as it sends it to the first worker, passes.
    let mut w = as_citus(port, 1, "authenticated", "citus_internal gpid=10000099999");
    w.batch_execute("BEGIN").unwrap();
    w.batch_execute(&format!(
        "SELECT lock_shard_resources(3, ARRAY[{users_shard}])"
    ))
    .unwrap();
    w.batch_execute("ROLLBACK").unwrap();
    // A member's write to a reference table (Citus serialises those with it) still goes.
    enter(&mut c, DAVE, ACME);
    c.execute(
        "UPDATE tenancy.users SET name = name WHERE id = $1::uuid",
        &[&DAVE.parse::<uuid::Uuid>().unwrap()],
    )
    .unwrap();
    c.batch_execute("COMMIT").unwrap();
}

/// A worker connection's session outlives the transaction and serves the coordinator backend's
/// next one, which may be another tenant's.
#[test]
fn a_pushed_down_query_leaves_no_setting_on_a_worker_connection() {
    let Some(port) = port() else { return };
    let mut su = node(port, 0, "postgres");
    su.batch_execute(
        "CREATE OR REPLACE FUNCTION public.citus_test_leave_timeout() RETURNS boolean
         LANGUAGE plpgsql AS $$ BEGIN SET statement_timeout = '1ms'; RETURN true; END $$;
         GRANT EXECUTE ON FUNCTION public.citus_test_leave_timeout() TO authenticated;",
    )
    .unwrap();
    let mut c = node(port, 0, "postgres");
    for leave in [
        "set_config('statement_timeout', '1ms', false) IS NOT NULL",
        "public.citus_test_leave_timeout()",
    ] {
        enter(&mut c, DAVE, ACME);
        let e = error_text(c.batch_execute(&format!(
            "SELECT count(*) FROM tenancy.projects WHERE tenant_id = '{ACME}' HAVING {leave}"
        )));
        assert!(e.starts_with("42501"), "{leave}: {e}");
        c.batch_execute("ROLLBACK").unwrap();
        // The next tenant's statement on the same coordinator backend (and worker connection).
        enter(&mut c, IVAN, GLOBEX);
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM tenancy.projects WHERE pg_sleep(0.01) IS NOT NULL",
                &[],
            )
            .unwrap()
            .get(0);
        assert!(n > 0);
        c.batch_execute("COMMIT").unwrap();
    }
    // SET LOCAL in a function ends with the transaction: it passes.
    su.batch_execute(
        "CREATE OR REPLACE FUNCTION public.citus_test_local_timeout() RETURNS boolean
         LANGUAGE plpgsql AS $$ BEGIN SET LOCAL statement_timeout = '5s'; RETURN true; END $$;
         GRANT EXECUTE ON FUNCTION public.citus_test_local_timeout() TO authenticated;",
    )
    .unwrap();
    enter(&mut c, DAVE, ACME);
    c.batch_execute(&format!(
        "SELECT count(*) FROM tenancy.projects WHERE tenant_id = '{ACME}' HAVING public.citus_test_local_timeout()"
    ))
    .unwrap();
    c.batch_execute("ROLLBACK").unwrap();
    su.batch_execute(
        "DROP FUNCTION public.citus_test_leave_timeout(); DROP FUNCTION public.citus_test_local_timeout();",
    )
    .unwrap();
}

/// Smaller doors: renaming an application role, and a subscription that would carry a worker
/// password to a host of the caller's choosing.
#[test]
fn application_roles_are_not_renamed_and_no_subscription_borrows_their_passwords() {
    let Some(port) = port() else { return };
    let mut su = node(port, 0, "postgres");
    su.batch_execute(
        "DROP ROLE IF EXISTS citus_test_admin;
         CREATE ROLE citus_test_admin CREATEROLE;
         GRANT authenticated TO citus_test_admin WITH ADMIN OPTION;",
    )
    .unwrap();
    su.batch_execute("BEGIN; SET LOCAL ROLE citus_test_admin")
        .unwrap();
    let e = error_text(su.batch_execute("ALTER ROLE authenticated RENAME TO citus_test_renamed"));
    assert!(
        e.starts_with("42501: anon, authenticated and service_role"),
        "{e}"
    );
    su.batch_execute("ROLLBACK").unwrap();
    let major: i32 = su
        .query_one(
            "SELECT current_setting('server_version_num')::int / 10000",
            &[],
        )
        .unwrap()
        .get(0);
    if major >= 16 {
        su.batch_execute(
            "GRANT pg_create_subscription TO citus_test_admin;
             GRANT CREATE ON DATABASE tenancy_citus TO citus_test_admin;",
        )
        .unwrap();
        let mut s = node(port, 0, "postgres");
        s.batch_execute("SET ROLE citus_test_admin").unwrap();
        let r = s.batch_execute(&format!(
            "CREATE SUBSCRIPTION citus_test_sub CONNECTION 'host=127.0.0.1 port={} dbname=tenancy_citus user=authenticated'
             PUBLICATION p WITH (citus_use_authinfo = true, connect = false)",
            port + 1
        ));
        let e = error_text(r);
        if e == "ok" {
            s.batch_execute("RESET ROLE; DROP SUBSCRIPTION citus_test_sub")
                .unwrap();
        }
        assert!(e.starts_with("42501: citus_use_authinfo"), "{e}");
        su.batch_execute("REVOKE CREATE ON DATABASE tenancy_citus FROM citus_test_admin")
            .unwrap();
    }
    su.batch_execute("DROP ROLE citus_test_admin").unwrap();
}

/// An error while a worker login is set says what failed, without the statement (which holds the
/// role's SCRAM secret).
#[test]
fn a_failed_login_change_shows_no_scram_secret() {
    let Some(port) = port() else { return };
    let mut w = node(port, 1, "postgres");
    w.batch_execute("BEGIN TRANSACTION READ ONLY").unwrap();
    let e = w
        .query_one("SELECT tenancy._citus_set_login('anon', NULL, true)", &[])
        .unwrap_err();
    let db = e.as_db_error().expect("a server error");
    let shown = format!("{db:?}");
    assert!(db.message().contains("read-only transaction"), "{shown}");
    assert!(!shown.contains("SCRAM-SHA-256"), "{shown}");
    w.batch_execute("ROLLBACK").unwrap();
}

/// A superuser's own `ALTER ROLE authenticated NOLOGIN` on the coordinator leaves the workers'
/// login (every tenant's Citus connections use it), and says so on the coordinator.
#[test]
fn a_superusers_alter_role_keeps_the_worker_login_and_says_so() {
    let Some(port) = port() else { return };
    let out = std::process::Command::new(pg_tenancy_client_tests::bin("psql"))
        .args([
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            "tenancy_citus",
        ])
        .args([
            "-c",
            "BEGIN",
            "-c",
            "ALTER ROLE authenticated NOLOGIN",
            "-c",
            "ROLLBACK",
        ])
        .output()
        .expect("run psql");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("WARNING:  the workers keep role authenticated's LOGIN and password"),
        "{stderr}"
    );
    // And members still reach the workers.
    let mut c = node(port, 0, "postgres");
    enter(&mut c, DAVE, ACME);
    let n: i64 = c
        .query_one("SELECT count(*) FROM tenancy.projects", &[])
        .unwrap()
        .get(0);
    assert!(n > 0);
    c.batch_execute("ROLLBACK").unwrap();
}

/// Citus locks a reference table's whole shard for an UPDATE or DELETE until the transaction
/// ends (src/citus/reference_writes.rs): a member's write to one of pg_tenancy's, or pg_tenancy's
/// own write in a member's transaction, left open, must not stop another tenant's writes.
#[test]
fn a_write_left_open_on_a_reference_table_stops_no_other_tenant() {
    let Some(port) = port() else { return };
    let mut su = node(port, 0, "postgres");
    su.batch_execute(
        "INSERT INTO tenancy.users (id, email) VALUES ('00000000-0000-4000-8000-0000000000c8', 'citus-lock@example.test')
         ON CONFLICT DO NOTHING",
    )
    .unwrap();
    let newcomer: uuid::Uuid = "00000000-0000-4000-8000-0000000000c8".parse().unwrap();
    let mut a = node(port, 0, "postgres");
    let mut b = node(port, 0, "postgres");
    for (what, hold) in [
        ("a DELETE that matches nothing", "DELETE FROM tenancy.api_keys WHERE false".to_string()),
        (
            "the same in a modifying CTE",
            "WITH d AS (DELETE FROM tenancy.api_keys WHERE false RETURNING 1) SELECT count(*) FROM d"
                .to_string(),
        ),
        (
            "add_member() then remove_member()",
            format!("SELECT tenancy.add_member('{newcomer}', 'member'); SELECT tenancy.remove_member('{newcomer}')"),
        ),
    ] {
        // Acme's administrator writes and keeps the transaction open.
        enter(&mut a, ALICE, ACME);
        a.batch_execute(&hold).unwrap();
        // Globex's owner makes an API key (an INSERT into api_keys) and changes its members.
        enter(&mut b, FRANK, GLOBEX);
        b.batch_execute("SET LOCAL lock_timeout = '3s'; SET LOCAL statement_timeout = '5s'")
            .unwrap();
        let key = b.batch_execute("SELECT tenancy.create_api_key('citus lock test')");
        assert_eq!(sqlstate(key), "ok", "{what}: globex's create_api_key");
        // Rotates it, and revokes the new one (UPDATEs, after a row-locking read).
        let current = |b: &mut Client| -> uuid::Uuid {
            b.query_one(
                "SELECT id FROM tenancy.api_keys WHERE name = 'citus lock test' AND replaced_by IS NULL",
                &[],
            )
            .unwrap()
            .get(0)
        };
        let id = current(&mut b);
        let rotate = b.execute("SELECT tenancy.rotate_api_key($1, '1 hour')", &[&id]);
        assert_eq!(sqlstate(rotate), "ok", "{what}: globex's rotate_api_key");
        let id = current(&mut b);
        let revoke = b.execute("SELECT tenancy.revoke_api_key($1)", &[&id]);
        assert_eq!(sqlstate(revoke), "ok", "{what}: globex's revoke_api_key");
        let member = b.batch_execute(&format!(
            "SELECT tenancy.add_member('{newcomer}', 'member'); SELECT tenancy.remove_member('{newcomer}')"
        ));
        assert_eq!(sqlstate(member), "ok", "{what}: globex's add_member");
        b.batch_execute("ROLLBACK").unwrap();
        a.batch_execute("ROLLBACK").unwrap();
    }
    // A member's row-locking read of a reference table (its column UPDATE privileges allow
    // one): Citus would lock the whole shard, whatever the setting.  Refused.
    for lock in [
        "SELECT 1 FROM tenancy.api_keys WHERE false FOR UPDATE",
        "SELECT 1 FROM tenancy.users WHERE false FOR KEY SHARE",
        "SELECT 1 FROM tenancy.tenants t WHERE false FOR SHARE OF t",
        "SELECT (SELECT 1 FROM tenancy.users WHERE false FOR NO KEY UPDATE)",
    ] {
        enter(&mut a, DAVE, ACME);
        assert_eq!(sqlstate(a.batch_execute(lock)), "0A000", "{lock}");
        a.batch_execute("ROLLBACK").unwrap();
    }
    // Two writes of one row still wait for each other (row locks), as on one node.
    enter(&mut a, ALICE, ACME);
    a.batch_execute(&format!(
        "SELECT tenancy.add_member('{newcomer}', 'member')"
    ))
    .unwrap();
    enter(&mut b, BOB, ACME);
    b.batch_execute("SET LOCAL lock_timeout = '300ms'").unwrap();
    let same = b.batch_execute(&format!(
        "SELECT tenancy.add_member('{newcomer}', 'member')"
    ));
    assert_eq!(
        sqlstate(same),
        "55P03",
        "the same membership, written twice at once"
    );
    b.batch_execute("ROLLBACK").unwrap();
    a.batch_execute("ROLLBACK").unwrap();
    su.batch_execute("DELETE FROM tenancy.users WHERE id = '00000000-0000-4000-8000-0000000000c8'")
        .unwrap();
}

/// Citus trusts a caller of its internal functions by the application name, which any role may
/// set; and its `worker_*` functions run whatever statement they are given.  A member deleted
/// another tenant's shard placement from the metadata, and planted temporary objects on the
/// worker connections other tenants use next (src/citus/internals.rs).
#[test]
fn citus_internal_functions_are_not_the_application_roles() {
    let Some(port) = port() else { return };
    let mut su = node(port, 0, "postgres");
    let placement: i64 = su
        .query_one(
            "SELECT p.placementid FROM pg_dist_placement p JOIN pg_dist_shard s USING (shardid)
              WHERE s.logicalrelid = 'tenancy.projects'::regclass LIMIT 1",
            &[],
        )
        .unwrap()
        .get(0);
    let mut c = node(port, 0, "postgres");
    // On the coordinator, named as Citus's connection.
    for call in [
        format!("citus_internal.delete_placement_metadata({placement})"),
        "citus_internal.add_tenant_schema('tenancy'::regnamespace, 2)".to_string(),
        "citus_unmark_object_distributed('pg_authid'::regclass, 'authenticated'::regrole, 0, false)"
            .to_string(),
        "worker_apply_shard_ddl_command(0, 'x', 'CREATE TEMP TABLE loot (v text)')".to_string(),
    ] {
        enter(&mut c, DAVE, ACME);
        c.batch_execute("SET LOCAL application_name = 'citus_internal gpid=10000099999'")
            .unwrap();
        let e = error_text(c.batch_execute(&format!("SELECT {call}")));
        assert!(e.starts_with("42501: this Citus function is Citus's own"), "{call}: {e}");
        c.batch_execute("ROLLBACK").unwrap();
        // Pushed down to a worker, where the connection is Citus's.
        enter(&mut c, DAVE, ACME);
        let e = error_text(c.batch_execute(&format!(
            "SELECT count(*) FROM tenancy.projects WHERE tenant_id = '{GLOBEX}' HAVING {call} IS NULL"
        )));
        assert!(e.starts_with("42501"), "pushed down {call}: {e}");
        c.batch_execute("ROLLBACK").unwrap();
    }
    let left: i64 = su
        .query_one(
            "SELECT count(*) FROM pg_dist_placement WHERE placementid = $1",
            &[&placement],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 1);
    // A function that runs the query it is given, pushed down: it wrote one copy of a reference
    // table, outside the coordinator.  Refused, also inside a member's EXPLAIN ANALYZE (which
    // Citus runs on the worker inside its own worker_save_query_explain_analyze() command, under
    // Citus's command text); Citus's own use of it (EXPLAIN ANALYZE) works.
    let write_one_copy = "SELECT p.id, (SELECT count(*) FROM worker_save_query_explain_analyze(
             'UPDATE tenancy.api_keys SET name = name WHERE false', '{}'::jsonb) AS x(plan text))
           FROM tenancy.projects p LIMIT 1";
    for sql in [
        write_one_copy.to_string(),
        format!("EXPLAIN ANALYZE {write_one_copy}"),
    ] {
        enter(&mut c, ALICE, ACME);
        let e = error_text(c.batch_execute(&sql));
        assert!(
            e.starts_with("42501: this Citus function runs the query"),
            "{sql}: {e}"
        );
        c.batch_execute("ROLLBACK").unwrap();
    }
    enter(&mut c, ALICE, ACME);
    let plan = strings(
        &mut c,
        "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(*) FROM tenancy.projects",
    );
    assert!(plan.iter().any(|l| l.contains("Task Count: 1")), "{plan:?}");
    c.batch_execute("ROLLBACK").unwrap();
}

/// A tenant's projects, as the superuser counts them.
fn projects_of(admin: &mut Client, tenant: &str) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM tenancy.projects WHERE tenant_id = $1::text::uuid",
            &[&tenant],
        )
        .unwrap()
        .get(0)
}

/// Citus forgets the `SET LOCAL`s of a savepoint when it ends (its `PopSubXact`), released or
/// not, so the connections it opened afterwards lacked the context: a member's read of its
/// projects found nothing and its insert failed the policy.  pg_tenancy signs the context again
/// before the next statement whenever what Citus would send is not it: after `RELEASE
/// SAVEPOINT`, after a savepoint that signed it again was rolled back, in statements each in a
/// savepoint of their own, after a PL/pgSQL block with an `EXCEPTION` clause; a rolled-back
/// savepoint's context goes back to the parent's on every node.
#[test]
fn a_context_set_in_a_released_savepoint_reaches_the_workers() {
    let Some(port) = port() else { return };
    let mut admin = node(port, 0, "postgres");
    let (acme, globex) = (
        projects_of(&mut admin, ACME),
        projects_of(&mut admin, GLOBEX),
    );
    assert!(acme > 0 && globex > 0);
    let claims = |user: &str, tenant: &str| {
        format!(
            "SELECT pg_catalog.set_config('request.jwt.claims', '{{\"sub\": \"{user}\", \"tenant_id\": \"{tenant}\"}}', true);
             SELECT tenancy.pre_request();"
        )
    };
    let seen = |c: &mut Client| -> Vec<(String, i64)> {
        c.query(
            "SELECT tenant_id::text, count(*) FROM tenancy.projects GROUP BY 1 ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
    };
    let mut c = node(port, 0, "postgres");
    // Alice is acme's owner and a member of globex.
    c.batch_execute("BEGIN; SET LOCAL ROLE authenticated; SAVEPOINT s;")
        .unwrap();
    c.batch_execute(&claims(ALICE, ACME)).unwrap();
    c.batch_execute("RELEASE SAVEPOINT s").unwrap();
    assert_eq!(seen(&mut c), [(ACME.to_string(), acme)], "after RELEASE");
    c.batch_execute(&format!(
        "INSERT INTO tenancy.clients (tenant_id, name) VALUES ('{ACME}', 'released savepoint')"
    ))
    .unwrap();
    // Another tenant in a savepoint, released: the workers follow.
    c.batch_execute("SAVEPOINT t").unwrap();
    c.batch_execute(&claims(ALICE, GLOBEX)).unwrap();
    c.batch_execute("RELEASE SAVEPOINT t").unwrap();
    assert_eq!(
        seen(&mut c),
        [(GLOBEX.to_string(), globex)],
        "after a second RELEASE"
    );
    // Rolled back: globex's context stays, on every node.
    c.batch_execute("SAVEPOINT u").unwrap();
    c.batch_execute(&claims(ALICE, ACME)).unwrap();
    c.batch_execute("ROLLBACK TO SAVEPOINT u").unwrap();
    assert_eq!(
        seen(&mut c),
        [(GLOBEX.to_string(), globex)],
        "after ROLLBACK TO"
    );
    c.batch_execute("ROLLBACK").unwrap();
    // Signed again inside a savepoint that is then rolled back (Citus forgets that too), before
    // any worker connection is open: the first read still finds the context on the workers.
    c.batch_execute("BEGIN; SET LOCAL ROLE authenticated")
        .unwrap();
    c.batch_execute(&claims(ALICE, ACME)).unwrap();
    c.batch_execute("SAVEPOINT s1").unwrap();
    c.batch_execute(&claims(ALICE, GLOBEX)).unwrap();
    c.batch_execute("RELEASE SAVEPOINT s1; SAVEPOINT s2; SELECT 1; ROLLBACK TO SAVEPOINT s2")
        .unwrap();
    assert_eq!(
        seen(&mut c),
        [(GLOBEX.to_string(), globex)],
        "after a savepoint that signed it again was rolled back"
    );
    c.batch_execute("ROLLBACK").unwrap();
    // Statements each in a savepoint of their own (psql's ON_ERROR_ROLLBACK): the context set in
    // one of them holds in every later one.
    c.batch_execute("BEGIN; SET LOCAL ROLE authenticated")
        .unwrap();
    c.batch_execute("SAVEPOINT e").unwrap();
    c.batch_execute(&claims(ALICE, GLOBEX)).unwrap();
    c.batch_execute("RELEASE SAVEPOINT e").unwrap();
    for _ in 0..3 {
        c.batch_execute("SAVEPOINT e").unwrap();
        assert_eq!(
            seen(&mut c),
            [(GLOBEX.to_string(), globex)],
            "ON_ERROR_ROLLBACK"
        );
        c.batch_execute("RELEASE SAVEPOINT e").unwrap();
    }
    c.batch_execute("ROLLBACK").unwrap();
    // A PL/pgSQL block with an EXCEPTION clause is a subtransaction that commits.
    c.batch_execute("BEGIN; SET LOCAL ROLE authenticated")
        .unwrap();
    c.batch_execute(&format!(
        "DO $$ BEGIN
             BEGIN
                 PERFORM pg_catalog.set_config('request.jwt.claims', '{{\"sub\": \"{ALICE}\", \"tenant_id\": \"{ACME}\"}}', true);
                 PERFORM tenancy.pre_request();
             EXCEPTION WHEN others THEN RAISE;
             END;
         END $$"
    ))
    .unwrap();
    assert_eq!(
        seen(&mut c),
        [(ACME.to_string(), acme)],
        "after an EXCEPTION block"
    );
    c.batch_execute("ROLLBACK").unwrap();
}

/// What the workers receive follows the coordinator's context and the role that runs the
/// statement: the README's backend pattern (`SET LOCAL ROLE service_role`, `set_tenant(t,
/// as_user)`, then `SET LOCAL ROLE authenticated`) reads the tenant's rows; `COPY … TO` after a
/// released savepoint too; after `RESET ALL` the workers have no context either, and statements
/// go on (no re-signing at each one); signing assigns no transaction id.
#[test]
fn the_workers_follow_the_coordinators_context_and_role() {
    let Some(port) = port() else { return };
    let acme = projects_of(&mut node(port, 0, "postgres"), ACME);
    assert!(acme > 0);
    let count = |c: &mut Client| -> i64 {
        c.query_one("SELECT count(*) FROM tenancy.projects", &[])
            .unwrap()
            .get(0)
    };
    let mut c = node(port, 0, "postgres");
    c.batch_execute(&format!(
        "BEGIN; SET LOCAL ROLE service_role;
         SELECT tenancy.set_tenant('{ACME}', as_user => '{DAVE}');
         SET LOCAL ROLE authenticated;"
    ))
    .unwrap();
    assert_eq!(count(&mut c), acme, "the backend pattern, acting for dave");
    c.batch_execute("ROLLBACK").unwrap();
    // A PostgREST request that only reads assigns no transaction id (signing writes nothing).
    enter(&mut c, DAVE, ACME);
    assert_eq!(count(&mut c), acme);
    assert_eq!(
        transaction_id(&mut c),
        None,
        "a read-only request was given a transaction id"
    );
    c.batch_execute("ROLLBACK").unwrap();
    // COPY of a distributed table after the context was set in a released savepoint.
    c.batch_execute("BEGIN; SET LOCAL ROLE authenticated; SAVEPOINT s")
        .unwrap();
    c.execute(
        "SELECT pg_catalog.set_config('request.jwt.claims', $1, true)",
        &[&format!(r#"{{"sub": "{DAVE}", "tenant_id": "{ACME}"}}"#)],
    )
    .unwrap();
    c.batch_execute("SELECT tenancy.pre_request(); RELEASE SAVEPOINT s")
        .unwrap();
    let mut out = Vec::new();
    {
        use std::io::Read;
        c.copy_out("COPY (SELECT id FROM tenancy.projects) TO STDOUT")
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
    }
    assert_eq!(
        out.iter().filter(|b| **b == b'\n').count() as i64,
        acme,
        "COPY after a released savepoint"
    );
    // RESET ALL takes the coordinator's context away: the workers' too, and the statements after
    // it are not signed again one by one (1,000 of them would end in 54000).
    c.batch_execute("RESET ALL; SET LOCAL ROLE authenticated")
        .unwrap();
    assert_eq!(count(&mut c), 0, "after RESET ALL");
    c.batch_execute(
        "DO $$ DECLARE n bigint; BEGIN
             FOR i IN 1..1200 LOOP SELECT count(*) INTO n FROM tenancy.projects; END LOOP;
         END $$",
    )
    .unwrap();
    c.batch_execute("ROLLBACK").unwrap();
}
