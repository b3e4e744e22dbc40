//! Attacks on the mapping lists `apply_field_mappings` keeps per backend (src/actions/lists.rs,
//! src/invalidation.rs): whatever a backend keeps, every call must answer what reading the rows
//! as the caller, now, answers.  One connection plays every part, so its cache is always warm
//! with what the previous part saw:
//!
//! * `a_kept_list_follows_every_write`: another session's insert, update, delete and TRUNCATE,
//!   counted at the next call, also inside an open (even REPEATABLE READ) transaction; this
//!   transaction's own writes, and their rollback, to a savepoint too; the rows of a statement
//!   that failed before its triggers ran.
//! * `a_kept_list_never_crosses_contexts_or_roles`: the same action id in two tenants, a client
//!   context in the tenant whose owner filled the cache, `SET ROLE` to a role without the
//!   table, `REVOKE SELECT`, a restrictive policy, `BYPASSRLS` given and taken away (mappings
//!   and the action's schemas).
//! * `one_statement_applies_one_version_of_the_mappings`: another session's commit part-way
//!   through a statement changes nothing for the statement's remaining rows.
//! * `what_statements_keep_is_bounded`: open cursors over actions with heavy mappings.
//! * `a_statement_that_applied_mappings_keeps_its_context`: a cursor over calls (cache hit or
//!   miss) is a reader: the context cannot change under it.  And in parallel mode nothing is kept.
use pg_tenancy_client_tests::demo::{ACME, ALICE, ERIN, GLOBEX, SEND_MESSAGE_A, SLACK_A};
use pg_tenancy_client_tests::{login_role, sqlstate, TestDb};
use postgres::Client;

/// The demo's "Send message" action of acme; its input mappings: $.message -> $.text,
/// $.room -> $.channel (trim, lower).
const ACTION: &str = SEND_MESSAGE_A;
const PAYLOAD: &str = r#"{"message": "hi", "room": " GEN ", "extra": 7}"#;

/// In a transaction of its own: enter `tenant` as `user` (trusted claims: no JWT secret is
/// configured here), map PAYLOAD through ACTION's input mappings; the document or the SQLSTATE.
fn mapped(c: &mut Client, user: &str, tenant: &str) -> String {
    enter(c, user, tenant);
    let out = map_now(c);
    c.batch_execute("ROLLBACK").unwrap();
    out
}

fn enter(c: &mut Client, user: &str, tenant: &str) {
    enter_with(c, "BEGIN", user, tenant)
}

fn enter_with(c: &mut Client, begin: &str, user: &str, tenant: &str) {
    c.batch_execute(begin).unwrap();
    c.execute(
        "SELECT pg_catalog.set_config('request.jwt.claims', $1, true)",
        &[&format!(r#"{{"sub": "{user}", "tenant_id": "{tenant}"}}"#)],
    )
    .unwrap();
    c.batch_execute("SELECT tenancy.pre_request()").unwrap();
}

/// Map PAYLOAD in the open transaction, inside a savepoint (an error leaves the transaction
/// usable).
fn map_now(c: &mut Client) -> String {
    c.batch_execute("SAVEPOINT m").unwrap();
    let out = c.query_one(
        &format!("SELECT tenancy.apply_field_mappings('{ACTION}', 'input', '{PAYLOAD}')::text"),
        &[],
    );
    match out {
        Ok(row) => {
            c.batch_execute("RELEASE SAVEPOINT m").unwrap();
            row.get(0)
        }
        Err(e) => {
            c.batch_execute("ROLLBACK TO SAVEPOINT m").unwrap();
            sqlstate(Err::<(), _>(e))
        }
    }
}

const BASE: &str = r#"{"text": "hi", "channel": "gen"}"#;
const WITH_X: &str = r#"{"x": 7, "text": "hi", "channel": "gen"}"#;

fn setup(name: &str) -> (TestDb, Client, Client) {
    let db = TestDb::new(name);
    login_role("pgt_mapper", "", &["authenticated"]);
    let mut admin = db.connect("postgres");
    // To read its own backend's cache counts; and as an earlier failed run may have left it.
    admin
        .batch_execute(
            "GRANT EXECUTE ON FUNCTION tenancy.library_info() TO pgt_mapper; ALTER ROLE pgt_mapper NOBYPASSRLS",
        )
        .unwrap();
    let c = db.connect("pgt_mapper");
    (db, admin, c)
}

#[test]
fn a_kept_list_follows_every_write() {
    let (_db, mut admin, mut c) = setup("pgt_client_kept_writes");
    assert_eq!(mapped(&mut c, ALICE, ACME), BASE);
    assert_eq!(mapped(&mut c, ALICE, ACME), BASE, "a hit answers the same");

    // Another session's committed insert, update and delete.
    let insert = format!(
        "INSERT INTO tenancy.field_mappings (tenant_id, action_id, source_path, target_path, direction)
         VALUES ('{ACME}', '{ACTION}', '$.extra', '$.x', 'input')"
    );
    admin.batch_execute(&insert).unwrap();
    assert_eq!(mapped(&mut c, ALICE, ACME), WITH_X, "insert");
    admin
        .batch_execute(
            r#"UPDATE tenancy.field_mappings SET transform_config = '{"type": "string"}' WHERE target_path = '$.x'"#,
        )
        .unwrap();
    assert_eq!(
        mapped(&mut c, ALICE, ACME),
        r#"{"x": "7", "text": "hi", "channel": "gen"}"#,
        "update"
    );
    admin
        .batch_execute("DELETE FROM tenancy.field_mappings WHERE target_path = '$.x'")
        .unwrap();
    assert_eq!(mapped(&mut c, ALICE, ACME), BASE, "delete");

    // Inside a transaction that is already open, REPEATABLE READ included: the list is read as
    // committed when the call runs (src/actions/lists.rs), and a kept one is dropped at once.
    for isolation in ["READ COMMITTED", "REPEATABLE READ"] {
        enter_with(
            &mut c,
            &format!("BEGIN ISOLATION LEVEL {isolation}"),
            ALICE,
            ACME,
        );
        assert_eq!(map_now(&mut c), BASE, "{isolation}");
        // Uncommitted: not seen.
        admin.batch_execute(&format!("BEGIN; {insert}")).unwrap();
        assert_eq!(map_now(&mut c), BASE, "{isolation}: uncommitted");
        admin.batch_execute("COMMIT").unwrap();
        assert_eq!(map_now(&mut c), WITH_X, "{isolation}: committed meanwhile");
        admin
            .batch_execute("DELETE FROM tenancy.field_mappings WHERE target_path = '$.x'")
            .unwrap();
        assert_eq!(map_now(&mut c), BASE, "{isolation}: deleted meanwhile");
        c.batch_execute("ROLLBACK").unwrap();
    }

    // This transaction's own write (the owner may write mappings), then its rollback; and the
    // same with a savepoint.
    enter(&mut c, ALICE, ACME);
    assert_eq!(map_now(&mut c), BASE);
    c.batch_execute(&insert).unwrap();
    assert_eq!(map_now(&mut c), WITH_X, "own insert");
    c.batch_execute("ROLLBACK").unwrap();
    assert_eq!(mapped(&mut c, ALICE, ACME), BASE, "own insert rolled back");
    enter(&mut c, ALICE, ACME);
    c.batch_execute(&format!("SAVEPOINT s; {insert}")).unwrap();
    assert_eq!(map_now(&mut c), WITH_X, "insert in a savepoint");
    c.batch_execute("ROLLBACK TO SAVEPOINT s").unwrap();
    assert_eq!(map_now(&mut c), BASE, "savepoint rolled back");
    c.batch_execute("ROLLBACK").unwrap();

    // Rows written by a statement that fails before its AFTER ROW triggers run send no
    // invalidation: a volatile function that INSERT ... SELECT calls sees the rows written so
    // far, reads them into a list, and the statement fails.  Found in review: the list with the
    // rolled-back row was served to later transactions.  Also in a savepoint.
    admin
        .batch_execute(&format!(
            "CREATE FUNCTION public.probe(i int) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
             DECLARE r jsonb;
             BEGIN
               IF i = 2 THEN
                 r := (SELECT tenancy.apply_field_mappings('{ACTION}', 'input', '{PAYLOAD}'));
                 IF r ? 'x1' THEN RAISE EXCEPTION 'abort now'; END IF;
                 RAISE EXCEPTION 'the rows written so far were not read: %', r;
               END IF;
               RETURN true;
             END $$;
             GRANT EXECUTE ON FUNCTION public.probe(int) TO authenticated;"
        ))
        .unwrap();
    let failing = format!(
        "INSERT INTO tenancy.field_mappings (tenant_id, action_id, source_path, target_path, direction)
         SELECT '{ACME}', '{ACTION}', '$.extra', '$.x' || i, 'input' FROM generate_series(1, 2) i WHERE public.probe(i)"
    );
    enter(&mut c, ALICE, ACME);
    let e = c.batch_execute(&failing).unwrap_err();
    assert!(format!("{e:?}").contains("abort now"), "{e:?}");
    c.batch_execute("ROLLBACK").unwrap();
    assert_eq!(
        mapped(&mut c, ALICE, ACME),
        BASE,
        "a failed statement's rows"
    );
    enter(&mut c, ALICE, ACME);
    c.batch_execute("SAVEPOINT s").unwrap();
    assert!(c.batch_execute(&failing).is_err());
    c.batch_execute("ROLLBACK TO SAVEPOINT s").unwrap();
    assert_eq!(
        map_now(&mut c),
        BASE,
        "a failed statement's rows, in a savepoint"
    );
    c.batch_execute("ROLLBACK").unwrap();
    assert_eq!(mapped(&mut c, ALICE, ACME), BASE);

    // TRUNCATE (no row trigger fires), and the action deleted.
    admin
        .batch_execute("TRUNCATE tenancy.field_mappings")
        .unwrap();
    assert_eq!(mapped(&mut c, ALICE, ACME), "{}", "truncate");
    admin
        .batch_execute(&format!(
            "DELETE FROM tenancy.request_logs WHERE action_id = '{ACTION}';
             DELETE FROM tenancy.actions WHERE id = '{ACTION}'"
        ))
        .unwrap();
    assert_eq!(mapped(&mut c, ALICE, ACME), "P0002", "action deleted");
    let info: String = c
        .query_one("SELECT tenancy.library_info()->>'mapping_lists'", &[])
        .unwrap()
        .get(0);
    assert!(info.contains("\"hits\""), "{info}");
}

#[test]
fn a_kept_list_never_crosses_contexts_or_roles() {
    let (_db, mut admin, mut c) = setup("pgt_client_kept_roles");
    // Globex gets an action with acme's action id (ids are unique per tenant only), and a
    // mapping of its own.
    admin
        .batch_execute(&format!(
            "INSERT INTO tenancy.actions (tenant_id, id, integration_id, name, slug, http_method, endpoint_template)
             VALUES ('{GLOBEX}', '{ACTION}', 'b1000000-0000-4000-8000-000000000101', 'Same id', 'same-id', 'POST', '/same');
             INSERT INTO tenancy.field_mappings (tenant_id, action_id, source_path, target_path, direction)
             VALUES ('{GLOBEX}', '{ACTION}', '$.extra', '$.globex', 'input');"
        ))
        .unwrap();
    for _ in 0..2 {
        assert_eq!(mapped(&mut c, ALICE, ACME), BASE);
        assert_eq!(
            mapped(&mut c, ALICE, GLOBEX),
            r#"{"globex": 7}"#,
            "same id, other tenant"
        );
        // Acme's client may not read actions or mappings (docs/security.md): the owner's list,
        // kept by this backend for the same tenant and action, is not the client's.
        assert_eq!(mapped(&mut c, ERIN, ACME), "P0002", "client");
    }

    // A role without the table, in the same session: SET ROLE (as SECURITY DEFINER would).
    admin
        .batch_execute(
            "DROP ROLE IF EXISTS pgt_mapper_narrow; CREATE ROLE pgt_mapper_narrow;
             GRANT USAGE ON SCHEMA tenancy TO pgt_mapper_narrow;
             GRANT EXECUTE ON FUNCTION tenancy.apply_field_mappings(uuid, tenancy.mapping_direction, jsonb),
                   tenancy.current_tenant_id(), tenancy.pre_request() TO pgt_mapper_narrow;
             GRANT pgt_mapper_narrow TO pgt_mapper;",
        )
        .unwrap();
    assert_eq!(mapped(&mut c, ALICE, ACME), BASE);
    enter(&mut c, ALICE, ACME);
    c.batch_execute("SET LOCAL ROLE pgt_mapper_narrow").unwrap();
    assert_eq!(
        map_now(&mut c),
        "42501",
        "SET ROLE to a role that cannot read the table"
    );
    c.batch_execute("ROLLBACK").unwrap();

    // REVOKE SELECT, and GRANT it back.
    assert_eq!(mapped(&mut c, ALICE, ACME), BASE);
    admin
        .batch_execute("REVOKE SELECT ON tenancy.field_mappings FROM authenticated")
        .unwrap();
    assert_eq!(mapped(&mut c, ALICE, ACME), "42501", "revoked");
    admin
        .batch_execute("GRANT SELECT ON tenancy.field_mappings TO authenticated")
        .unwrap();
    assert_eq!(mapped(&mut c, ALICE, ACME), BASE, "granted again");

    // A DBA's restrictive policy counts at the next call, and its removal too.
    admin
        .batch_execute(
            "CREATE POLICY only_plain ON tenancy.field_mappings AS RESTRICTIVE FOR SELECT TO authenticated
                    USING (transform_config IS NULL)",
        )
        .unwrap();
    assert_eq!(mapped(&mut c, ALICE, ACME), r#"{"text": "hi"}"#, "policy");
    admin
        .batch_execute("DROP POLICY only_plain ON tenancy.field_mappings")
        .unwrap();
    assert_eq!(mapped(&mut c, ALICE, ACME), BASE, "policy dropped");

    // BYPASSRLS given, then taken away (a role's attribute: no relcache invalidation of the
    // table, a syscache one of the role; and PostgreSQL's plan cache keeps a prepared query's
    // policies across it, found on 14: the statements that read as the caller are planned
    // again).  The action's schemas are read by such a statement too.
    let validated = |c: &mut Client| -> String {
        enter(c, ERIN, ACME);
        c.batch_execute("SAVEPOINT v").unwrap();
        let out = match c.query_one(
            &format!("SELECT tenancy.validate_action_input('{ACTION}', '{{}}')::text"),
            &[],
        ) {
            Ok(row) => row.get(0),
            Err(e) => sqlstate(Err::<(), _>(e)),
        };
        c.batch_execute("ROLLBACK").unwrap();
        out
    };
    assert_eq!(validated(&mut c), "P0002", "a client reads no action");
    admin
        .batch_execute("ALTER ROLE pgt_mapper BYPASSRLS")
        .unwrap();
    assert_eq!(mapped(&mut c, ERIN, ACME), BASE, "a client, with BYPASSRLS");
    assert!(
        validated(&mut c).contains("required"),
        "a client, with BYPASSRLS"
    );
    admin
        .batch_execute("ALTER ROLE pgt_mapper NOBYPASSRLS")
        .unwrap();
    assert_eq!(mapped(&mut c, ERIN, ACME), "P0002", "BYPASSRLS taken away");
    assert_eq!(validated(&mut c), "P0002", "BYPASSRLS taken away");

    // A member removed while their transaction is open: the context loses its tenant at once.
    enter(&mut c, ALICE, GLOBEX);
    assert_eq!(map_now(&mut c), r#"{"globex": 7}"#);
    admin
        .batch_execute(&format!(
            "DELETE FROM tenancy.memberships WHERE tenant_id = '{GLOBEX}' AND user_id = '{ALICE}'"
        ))
        .unwrap();
    assert_eq!(map_now(&mut c), "P0002", "member removed");
    c.batch_execute("ROLLBACK").unwrap();
}

/// A commit by another session part-way through a statement does not change the mappings for
/// the statement's remaining rows, nor for another call in it (found in review: rows 2 and 3
/// took the new mappings; then, with lists kept per call site, a second call site did).  The
/// statement waits, between its first and second row, for an advisory lock that the other
/// session releases when it commits its change.
#[test]
fn one_statement_applies_one_version_of_the_mappings() {
    let (db, mut admin, _) = setup("pgt_client_kept_one_version");
    for round in ["miss", "hit"] {
        let mut other = db.connect("postgres");
        other
            .batch_execute("BEGIN; SELECT pg_advisory_xact_lock(4242)")
            .unwrap();
        let mut c = db.connect("pgt_mapper");
        if round == "hit" {
            assert_eq!(mapped(&mut c, ALICE, ACME), BASE); // the first row finds it kept
        }
        let statement = std::thread::spawn(move || {
            enter(&mut c, ALICE, ACME);
            let rows: Vec<String> = c
                .query(
                    &format!(
                        "SELECT CASE WHEN g = 2 THEN pg_advisory_lock(4242)::text END AS waited,
                                tenancy.apply_field_mappings('{ACTION}', 'input', '{PAYLOAD}')::text,
                                CASE WHEN g >= 2 THEN tenancy.apply_field_mappings('{ACTION}', 'input', '{PAYLOAD}')::text END
                           FROM generate_series(1, 3) g"
                    ),
                    &[],
                )
                .unwrap()
                .iter()
                .flat_map(|r| [r.get(1), r.get::<_, Option<String>>(2).unwrap_or(BASE.into())])
                .collect();
            c.batch_execute("ROLLBACK").unwrap();
            (c, rows)
        });
        // Wait until the statement waits for the lock, then change a mapping and commit.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let waiting: i64 = admin
                .query_one(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
                    &[],
                )
                .unwrap()
                .get(0);
            if waiting > 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{round}: the statement never waited"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        other
            .batch_execute(
                "UPDATE tenancy.field_mappings SET target_path = '$.changed' WHERE target_path = '$.channel'; COMMIT",
            )
            .unwrap();
        let (mut c, rows) = statement.join().unwrap();
        assert_eq!(
            rows,
            vec![BASE.to_string(); 6],
            "{round}: one statement, one version (a second call site, first used after the change, too)"
        );
        assert_eq!(
            mapped(&mut c, ALICE, ACME),
            r#"{"text": "hi", "changed": "gen"}"#,
            "{round}: the next statement takes the change"
        );
        admin
            .batch_execute(
                "UPDATE tenancy.field_mappings SET target_path = '$.channel' WHERE target_path = '$.changed'",
            )
            .unwrap();
        assert_eq!(mapped(&mut c, ALICE, ACME), BASE);
    }
}

#[test]
fn a_statement_that_applied_mappings_keeps_its_context() {
    let (db, mut admin, mut c) = setup("pgt_client_kept_statement");
    // Twice: the first cursor reads the list (a miss), the second finds it kept (a hit); either
    // way the call is a reader of the context, noted against the cursor's statement.
    for round in ["miss", "hit"] {
        enter(&mut c, ALICE, ACME);
        c.batch_execute(&format!(
            "DECLARE m CURSOR FOR SELECT tenancy.apply_field_mappings('{ACTION}', 'input',
                     '{PAYLOAD}'::jsonb || jsonb_build_object('n', g)) FROM generate_series(1, 3) g"
        ))
        .unwrap();
        let first = c.query("FETCH 1 FROM m", &[]).unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(
            sqlstate(c.batch_execute(&format!("SELECT tenancy.set_tenant('{GLOBEX}')"))),
            "55000",
            "{round}: the context changed under a cursor that applied mappings"
        );
        c.batch_execute("ROLLBACK").unwrap();
    }

    // In parallel mode (the leader above a Gather), the list is read with the statement's
    // snapshot and not kept; the answer is the same.  A fresh connection: nothing kept yet.
    admin
        .batch_execute(
            "CREATE TABLE public.ns AS SELECT g FROM generate_series(1, 3) g;
             GRANT SELECT ON public.ns TO authenticated; ANALYZE public.ns;",
        )
        .unwrap();
    let mut c = db.connect("pgt_mapper");
    let kept = |c: &mut Client| -> i64 {
        c.query_one(
            "SELECT (tenancy.library_info()->'mapping_lists'->>'entries')::bigint",
            &[],
        )
        .unwrap()
        .get(0)
    };
    let query = format!(
        "SELECT tenancy.apply_field_mappings('{ACTION}', 'input', '{PAYLOAD}'::jsonb || jsonb_build_object('n', g))::text FROM public.ns"
    );
    enter(&mut c, ALICE, ACME);
    c.batch_execute(
        "SET LOCAL parallel_setup_cost = 0; SET LOCAL parallel_tuple_cost = 0;
         SET LOCAL min_parallel_table_scan_size = 0; SET LOCAL max_parallel_workers_per_gather = 2",
    )
    .unwrap();
    let plan: Vec<String> = c
        .query(&format!("EXPLAIN (COSTS OFF) {query}"), &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(plan.iter().any(|l| l.contains("Gather")), "{plan:?}");
    let rows = c.query(&query, &[]).unwrap();
    assert_eq!(rows.len(), 3);
    for r in &rows {
        assert_eq!(r.get::<_, String>(0), BASE);
    }
    assert_eq!(kept(&mut c), 0, "read in parallel mode: not kept");
    c.batch_execute("ROLLBACK").unwrap();
    assert_eq!(mapped(&mut c, ALICE, ACME), BASE);
    assert_eq!(kept(&mut c), 1, "read outside parallel mode: kept");
}

/// What running statements keep is bounded for the whole backend, open cursors included (found
/// in review: six cursors over sixteen actions whose mappings held 100,000-entry maps kept 1 GB
/// until they closed).
#[test]
fn what_statements_keep_is_bounded() {
    let (db, mut admin, _) = setup("pgt_client_kept_bounded");
    admin
        .batch_execute(&format!(
            "INSERT INTO tenancy.actions (tenant_id, id, integration_id, name, slug, http_method, endpoint_template)
             SELECT '{ACME}', gen_random_uuid(), '{SLACK_A}', 'Big ' || n, 'big-' || n, 'POST', '/big' FROM generate_series(1, 8) n;
             INSERT INTO tenancy.field_mappings (tenant_id, action_id, source_path, target_path, transform_config, direction)
             SELECT '{ACME}', a.id, '$.room', '$.room',
                    jsonb_build_object('map', (SELECT jsonb_object_agg('k' || i || a.slug, i) FROM generate_series(1, 50000) i)),
                    'input'
               FROM tenancy.actions a WHERE a.slug LIKE 'big-%';"
        ))
        .unwrap();
    let mut c = db.connect("pgt_mapper");
    let pinned = |c: &mut Client| -> (i64, i64) {
        let row = c
            .query_one(
                "SELECT (p->>'statements')::bigint, (p->>'bytes')::bigint
                   FROM (SELECT tenancy.library_info()->'mapping_lists'->'pinned' AS p) x",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    enter(&mut c, ALICE, ACME);
    for n in 0..4 {
        c.batch_execute(&format!(
            "DECLARE c{n} CURSOR FOR SELECT tenancy.apply_field_mappings(a.id, 'input', '{{\"room\": \"x\"}}')::text
               FROM tenancy.actions a WHERE a.slug LIKE 'big-%'"
        ))
        .unwrap();
        let rows = c.query(&format!("FETCH ALL FROM c{n}"), &[]).unwrap();
        assert_eq!(rows.len(), 8);
        for r in &rows {
            assert_eq!(r.get::<_, String>(0), r#"{"room": "x"}"#);
        }
    }
    let (statements, bytes) = pinned(&mut c);
    assert!(
        (1..=4).contains(&statements) && bytes > 0 && bytes <= 16 << 20,
        "4 open cursors keep {bytes} bytes in {statements} statements"
    );
    c.batch_execute("CLOSE ALL").unwrap();
    assert_eq!(pinned(&mut c), (0, 0), "closed: nothing kept");
    c.batch_execute("ROLLBACK").unwrap();
}
