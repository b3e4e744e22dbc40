//! A hostile tenant member reads what is not its own:
//!
//! * `nothing_of_another_tenant_leaks`: every table from the catalog, and the attacks that read
//!   through leaky functions, statistics, locks and errors: no value of the other tenant is seen.
//! * `postgrest_replay_for_every_role`: PostgREST's exact sequence for every role of both tenants,
//!   anon and service_role, on every table.
//! * `index_scans_never_count_rows_of_another_tenant`: probes every indexed column with another
//!   tenant's value and with a value nobody has, and compares what EXPLAIN ANALYZE and
//!   `pg_stat_xact_user_tables` show: only the two documented global keys may differ.
use pg_tenancy_client_tests::demo::{ACME, ALICE, BOB, DAVE, FRANK, GLOBEX, SLACK_B};
use pg_tenancy_client_tests::hostile::in_savepoint;
use pg_tenancy_client_tests::{
    connect, enter_as as enter, login_role, sqlstate, transaction_id, TestDb,
};
use postgres::Client;

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
            // Reading assigns no transaction id (no WAL at commit; a standby could serve it).
            assert_eq!(
                transaction_id(c),
                None,
                "{role}'s read-only request was given a transaction id"
            );
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
            Ok(r) => {
                assert_eq!(
                    transaction_id(&mut c),
                    None,
                    "anon's read of {t} was given a transaction id"
                );
                r.get::<_, i64>(0).to_string()
            }
            Err(e) => sqlstate(Err::<(), _>(e)),
        };
        c.batch_execute("ROLLBACK").unwrap();
        assert!(out == "0" || out == "42501", "anon on {t}: {out}");
    }
    // service_role: the backend's own key; no tenant in the claims, every tenant's rows.
    let (tenants, rows) = request(&mut c, "service_role", r#"{"role": "service_role"}"#);
    assert!(rows > 0, "service_role's request read every table");
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
             SELECT tenancy.store_credential('{SLACK_B}',
                                             'bearer', '{{\"t\": \"x\"}}', NULL, now() + interval '47 days');
             COMMIT;
             UPDATE tenancy.api_keys SET created_by = '{FRANK}' WHERE tenant_id = '{GLOBEX}';
             UPDATE tenancy.users SET subscription_tier = 'enterprise', subscription_status = 'active' WHERE id = '{FRANK}';
             UPDATE tenancy.integrations SET slug = 'globex-' || slug WHERE tenant_id = '{GLOBEX}';
             UPDATE tenancy.actions SET slug = 'globex-' || slug WHERE tenant_id = '{GLOBEX}';
             UPDATE tenancy.field_mappings SET target_path = '$.globex' || substr(target_path, 2) WHERE tenant_id = '{GLOBEX}';
             UPDATE tenancy.jobs SET job_type = 'globex-' || job_type, user_id = '{FRANK}',
                    status = CASE WHEN status = 'completed' THEN 'failed' ELSE 'partial' END,
                    created_at = now() - interval '3 days' WHERE tenant_id = '{GLOBEX}';
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
