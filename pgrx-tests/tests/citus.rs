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
//! * on the workers, a query as an application role with no context the workers accept reads
//!   nothing: no row of any tenant, whatever it sets.
use pg_tenancy_client_tests::demo::{ACME, ALICE, DAVE, GLOBEX};
use pg_tenancy_client_tests::sqlstate;
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
    Client::connect(
        &format!(
            "host=127.0.0.1 port={} user={user} dbname=tenancy_citus",
            port + n
        ),
        NoTls,
    )
    .unwrap_or_else(|e| panic!("connect to node {n} as {user}: {e}"))
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
    let groups: std::collections::BTreeSet<i32> = distributed.iter().map(|r| r.get(2)).collect();
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

/// What an application role reads of the distributed tables, on the coordinator and on each
/// worker directly, with every value it can set.
#[test]
fn without_a_context_the_workers_accept_no_row_is_read() {
    let Some(port) = port() else { return };
    let mut su = node(port, 0, "postgres");
    let total: i64 = su
        .query_one("SELECT count(*) FROM tenancy.projects", &[])
        .unwrap()
        .get(0);
    assert!(total >= 2, "the demo data has projects in both tenants");
    for role in ["authenticated", "anon", "service_role"] {
        // Through the coordinator, in a context set there.
        let mut c = node(port, 0, "postgres");
        c.batch_execute("BEGIN; SET LOCAL ROLE service_role")
            .unwrap();
        c.execute(
            "SELECT tenancy.set_tenant($1::uuid, $2::uuid)",
            &[
                &ACME.parse::<uuid::Uuid>().unwrap(),
                &ALICE.parse::<uuid::Uuid>().unwrap(),
            ],
        )
        .unwrap();
        c.batch_execute(&format!("SET LOCAL ROLE {role}")).unwrap();
        let globex: Result<Vec<postgres::Row>, _> = c.query(
            "SELECT id FROM tenancy.projects WHERE tenant_id = $1::uuid",
            &[&GLOBEX.parse::<uuid::Uuid>().unwrap()],
        );
        if role == "service_role" {
            // service_role reads every tenant's rows by design (tenancy_service policy).
            assert!(globex.is_ok());
        } else {
            match globex {
                Ok(rows) => assert!(rows.is_empty(), "{role} read globex's projects"),
                Err(e) => assert_eq!(e.code().map(|c| c.code()), Some("42501"), "{role}: {e}"),
            }
        }
        c.batch_execute("ROLLBACK").unwrap();
    }
    // Directly on a worker: the context settings are the superuser's alone, and the shards'
    // policies find no context there.
    for w in 1..=2 {
        let mut wk = node(port, w, "authenticated");
        assert_eq!(
            sqlstate(wk.batch_execute(&format!(
                "BEGIN; SET LOCAL tenancy.context = '{ACME},{ALICE},owner'"
            ))),
            "42501"
        );
        wk.batch_execute("ROLLBACK").unwrap();
        let mut wk = node(port, w, "authenticated");
        wk.batch_execute("SET citus.override_table_visibility = off")
            .unwrap();
        let shards = strings(
            &mut wk,
            "SELECT c.oid::regclass::text FROM pg_class c
              WHERE c.relnamespace = 'tenancy'::regnamespace AND c.relname ~ '^projects_[0-9]+$'",
        );
        assert!(!shards.is_empty());
        for shard in shards {
            // Nothing read: no row, or no privilege on the shard itself.
            match wk.query_one(&format!("SELECT count(*) FROM {shard}"), &[]) {
                Ok(r) => assert_eq!(
                    r.get::<_, i64>(0),
                    0,
                    "authenticated read {shard} on worker {w}"
                ),
                Err(e) => assert_eq!(e.code().map(|c| c.code()), Some("42501"), "{shard}: {e}"),
            }
        }
    }
}
