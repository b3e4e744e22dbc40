//! Client-side tests: real connections to the test cluster, as real login roles.
use pg_tenancy_client_tests::demo::{ACME, DAVE, FRANK, GLOBEX};
use pg_tenancy_client_tests::{login_role, sqlstate, table_digests, TestDb};

/// A hostile tenant member with a login of its own, a member of `authenticated` only.
#[test]
fn hostile_member_cannot_forge_or_escalate() {
    let db = TestDb::new("pgt_client_hostile");
    login_role("pgt_mallory", "INHERIT", &["authenticated"]);
    let mut c = db.connect("pgt_mallory");
    let claims = format!(r#"{{"sub":"{DAVE}","role":"authenticated","tenant_id":"{ACME}"}}"#);

    c.batch_execute("BEGIN").unwrap();
    c.execute(
        "SELECT set_config('request.jwt.claims', $1, true)",
        &[&claims],
    )
    .unwrap();
    c.batch_execute("SELECT tenancy.pre_request()").unwrap();
    let n: i64 = c
        .query_one("SELECT count(*) FROM tenancy.projects", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 2, "dave sees acme's projects");

    let reserved = c
        .query_one(
            "SELECT current_setting('server_version_num')::int >= 150000",
            &[],
        )
        .unwrap()
        .get::<_, bool>(0);
    let attempts = [
        ("SET ROLE service_role", "42501"),
        ("SET ROLE postgres", "42501"),
        ("SET SESSION AUTHORIZATION postgres", "42501"),
        ("SET tenancy.context = 'b0000000-0000-4000-8000-000000000002,,owner'", "42501"),
        ("SELECT set_config('tenancy.context', ',,owner', false)", "42501"),
        ("RESET tenancy.context", "42501"),
        // PostgreSQL 14 cannot reserve the prefix: the placeholder is planted, and read by nothing.
        ("SET tenancy.tenant_id = 'b0000000-0000-4000-8000-000000000002'", if reserved { "42602" } else { "ok" }),
        ("SELECT tenancy.set_tenant('b0000000-0000-4000-8000-000000000002')", "42501"),
        ("SELECT tenancy.set_tenant('b0000000-0000-4000-8000-000000000002', '00000000-0000-4000-8000-0000000000b1')", "42501"),
        ("SELECT tenancy.seed_demo()", "42501"),
        ("SELECT * FROM tenancy_private.request_logs_default", "42501"),
        ("CREATE TABLE tenancy.planted (id int)", "42501"),
        ("ALTER TABLE tenancy.projects DISABLE ROW LEVEL SECURITY", "42501"),
        ("DROP POLICY tenancy_select ON tenancy.projects", "42501"),
    ];
    for (stmt, want) in attempts {
        c.batch_execute("SAVEPOINT attempt").unwrap();
        let got = sqlstate(c.batch_execute(stmt));
        c.batch_execute("ROLLBACK TO SAVEPOINT attempt").unwrap();
        assert_eq!(got, want, "{stmt}");
    }
    let tenant: String = c
        .query_one("SELECT tenancy.current_tenant_id()::text", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        tenant, ACME,
        "after every attempt the context is still acme's"
    );
    let leaked: i64 = c
        .query_one(
            "SELECT count(*) FROM tenancy.projects WHERE tenant_id <> tenancy.current_tenant_id()",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(leaked, 0);
    c.batch_execute("COMMIT").unwrap();
}

/// The context lives exactly as long as the transaction that set it.
#[test]
fn context_is_transaction_local() {
    let db = TestDb::new("pgt_client_txn");
    let mut c = db.connect("postgres");

    // Autocommit: the statement is its own transaction.
    c.batch_execute(&format!("SELECT tenancy.set_tenant('{ACME}')"))
        .unwrap();
    let t: Option<String> = c
        .query_one("SELECT tenancy.current_tenant_id()::text", &[])
        .unwrap()
        .get(0);
    assert_eq!(t, None, "nothing survives an autocommit statement");

    c.batch_execute(&format!(
        "BEGIN; SELECT tenancy.set_tenant('{ACME}', '{DAVE}');"
    ))
    .unwrap();
    let t: Option<String> = c
        .query_one("SELECT tenancy.current_tenant_id()::text", &[])
        .unwrap()
        .get(0);
    assert_eq!(t.as_deref(), Some(ACME));
    c.batch_execute("COMMIT").unwrap();
    let t: Option<String> = c
        .query_one("SELECT tenancy.current_tenant_id()::text", &[])
        .unwrap()
        .get(0);
    assert_eq!(t, None, "nothing survives COMMIT");

    c.batch_execute(&format!(
        "BEGIN; SELECT tenancy.set_tenant('{GLOBEX}', '{FRANK}'); ROLLBACK;"
    ))
    .unwrap();
    let t: Option<String> = c
        .query_one("SELECT tenancy.current_tenant_id()::text", &[])
        .unwrap()
        .get(0);
    assert_eq!(t, None, "nothing survives ROLLBACK");
}

/// Two connections of two tenants, interleaved: each sees only its own tenant.
#[test]
fn interleaved_connections_do_not_share_context() {
    let db = TestDb::new("pgt_client_two");
    login_role("pgt_app", "NOINHERIT", &["authenticated", "service_role"]);
    let mut a = db.connect("pgt_app");
    let mut b = db.connect("pgt_app");
    for round in 0..20 {
        for (conn, tenant, user) in [(&mut a, ACME, DAVE), (&mut b, GLOBEX, FRANK)] {
            conn.batch_execute(&format!(
                "BEGIN; SET LOCAL ROLE service_role; SELECT tenancy.set_tenant('{tenant}', '{user}'); SET LOCAL ROLE authenticated;"
            ))
            .unwrap();
        }
        for (conn, tenant) in [(&mut a, ACME), (&mut b, GLOBEX)] {
            let rows = conn
                .query("SELECT DISTINCT tenant_id::text FROM tenancy.projects", &[])
                .unwrap();
            let seen: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            assert_eq!(seen, vec![tenant.to_string()], "round {round}");
            conn.batch_execute("COMMIT").unwrap();
        }
    }
}

/// pg_dump + pg_restore into a fresh database keeps every row of every table, and the restored
/// database enforces the same isolation.
#[test]
fn dump_and_restore_keep_every_row() {
    let src = TestDb::new("pgt_client_dump_src");
    let id = {
        let mut c = src.connect("postgres");
        c.batch_execute(
            "CREATE TABLE public.notes (tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id) ON DELETE CASCADE,
                                        id uuid NOT NULL DEFAULT gen_random_uuid(), body text, updated_at timestamptz NOT NULL DEFAULT now(),
                                        PRIMARY KEY (tenant_id, id));
             SELECT tenancy.enable_tenant_isolation('public.notes');
             SELECT tenancy.manage_updated_at('public.notes');
             INSERT INTO public.notes (tenant_id, body) SELECT id, slug FROM tenancy.tenants;",
        )
        .unwrap();
        c.batch_execute("BEGIN").unwrap();
        c.batch_execute(&format!("SELECT tenancy.set_tenant('{ACME}')"))
            .unwrap();
        let id: uuid::Uuid = c
            .query_one(
                "SELECT tenancy.store_credential('a1000000-0000-4000-8000-000000000101', 'oauth2_tokens', $1::text::jsonb, $2)",
                &[&r#"{"access_token": "xoxb-restored"}"#, &"refresh-restored"],
            )
            .unwrap()
            .get(0);
        c.batch_execute("COMMIT").unwrap();
        id
    };
    {
        // Daily partitions, as any database that logs has: maintenance moves the rows of the
        // default partition into them.  On PostgreSQL 14 that is required before a dump: there the
        // default partition is not dumped (pg_dump 14 crashes on a configuration table that is a
        // partition), as docs/upgrading.md says.
        let mut c = src.connect("postgres");
        c.batch_execute("SELECT tenancy.maintain_request_logs()")
            .unwrap();
        let (partitions, left): (i64, i64) = {
            let r = c
                .query_one(
                    "SELECT (SELECT count(*) FROM pg_inherits WHERE inhparent = 'tenancy.request_logs'::regclass),
                            (SELECT count(*) FROM tenancy_private.request_logs_default)",
                    &[],
                )
                .unwrap();
            (r.get(0), r.get(1))
        };
        assert!(partitions > 1, "daily partitions exist");
        assert_eq!(left, 0, "maintenance leaves the default partition empty");
    }
    let dump = std::env::temp_dir().join("pgt_client_dump.pgdump");
    let dump_path = dump.to_str().unwrap();
    let out = src.tool("pg_dump", &["-Fc", "-f", dump_path, &src.name]);
    assert!(
        out.status.success(),
        "pg_dump: {} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    let dst = TestDb::empty("pgt_client_dump_dst");
    let out = dst.tool(
        "pg_restore",
        &["--exit-on-error", "-d", &dst.name, dump_path],
    );
    assert!(
        out.status.success(),
        "pg_restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Every table, with a digest of its whole content.
    let mut s = src.connect("postgres");
    let mut d = dst.connect("postgres");
    let before = table_digests(&mut s);
    assert!(before.len() >= 17, "tables: {before:?}");
    assert_eq!(
        before,
        table_digests(&mut d),
        "rows and content survive dump/restore"
    );
    let total: i64 = d
        .query_one(
            "SELECT (tenancy.health(true) -> 'row_counts' ->> 'memberships')::bigint",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(total, 11);

    // Policies, forced RLS and triggers are the same after the restore.
    let shape = "SELECT (SELECT count(*) FROM pg_policies WHERE schemaname IN ('tenancy', 'public'))::int,
                        (SELECT count(*) FROM pg_class WHERE relnamespace IN ('tenancy'::regnamespace, 'tenancy_private'::regnamespace, 'public'::regnamespace)
                           AND relkind IN ('r','p') AND relforcerowsecurity)::int,
                        (SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                          WHERE c.relnamespace IN ('tenancy'::regnamespace, 'tenancy_private'::regnamespace, 'public'::regnamespace) AND NOT t.tgisinternal)::int";
    let a = s.query_one(shape, &[]).unwrap();
    let b = d.query_one(shape, &[]).unwrap();
    for i in 0..3 {
        assert_eq!(
            a.get::<_, i32>(i),
            b.get::<_, i32>(i),
            "catalog shape column {i}"
        );
    }
    // Wrapped keys and ciphertexts were restored as they were: the credential reads on this server
    // (same keyring), with nothing re-encrypted on the way.
    let mut c = dst.connect("postgres");
    c.batch_execute(&format!("BEGIN; SELECT tenancy.set_tenant('{ACME}')"))
        .unwrap();
    let cred: String = c
        .query_one("SELECT tenancy.read_credential($1)::text", &[&id])
        .unwrap()
        .get(0);
    assert!(
        cred.contains("xoxb-restored") && cred.contains("refresh-restored"),
        "{cred}"
    );
    c.batch_execute("ROLLBACK").unwrap();
    c.batch_execute(&format!(
        "BEGIN; SELECT tenancy.set_tenant('{ACME}', '{DAVE}'); SET LOCAL ROLE authenticated;"
    ))
    .unwrap();
    let bodies: Vec<String> = c
        .query("SELECT body FROM public.notes", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        bodies,
        vec!["acme".to_string()],
        "isolation holds in the restored database"
    );
    c.batch_execute("ROLLBACK").unwrap();
    let _ = std::fs::remove_file(&dump);
}

/// Each backend caches memberships; a change committed by another connection reaches it before
/// its next transaction.
#[test]
fn membership_changes_reach_every_backend() {
    let db = TestDb::new("pgt_client_cache");
    let mut reader = db.connect("postgres");
    let mut writer = db.connect("postgres");
    let enter = format!("SELECT tenancy.set_tenant('{ACME}', '{DAVE}')");
    for _ in 0..3 {
        assert_eq!(
            sqlstate(reader.batch_execute(&enter)),
            "ok",
            "dave is a member (cached after the first call)"
        );
    }
    writer
        .batch_execute(&format!(
            "DELETE FROM tenancy.memberships WHERE tenant_id = '{ACME}' AND user_id = '{DAVE}'"
        ))
        .unwrap();
    assert_eq!(
        sqlstate(reader.batch_execute(&enter)),
        "42501",
        "the revocation is seen by the next transaction"
    );
    writer
        .batch_execute(&format!(
            "INSERT INTO tenancy.memberships VALUES ('{ACME}', '{DAVE}', 'admin')"
        ))
        .unwrap();
    let role: String = reader.query_one(&enter, &[]).unwrap().get(0);
    assert_eq!(role, "admin", "and so is the new membership");
    writer
        .batch_execute(&format!(
            "UPDATE tenancy.tenants SET status = 'suspended' WHERE id = '{ACME}'"
        ))
        .unwrap();
    assert_eq!(
        sqlstate(reader.batch_execute(&enter)),
        "42501",
        "and a suspended tenant"
    );
    // A change that rolls back changes nothing anywhere.
    writer.batch_execute(&format!("BEGIN; UPDATE tenancy.tenants SET status = 'active' WHERE id = '{ACME}'; SELECT tenancy.set_tenant('{ACME}', '{DAVE}'); ROLLBACK;")).unwrap();
    assert_eq!(
        sqlstate(writer.batch_execute(&enter)),
        "42501",
        "the writer itself forgot what the rolled-back transaction showed it"
    );
    assert_eq!(sqlstate(reader.batch_execute(&enter)), "42501");

    // The caches watch the cached tables by OID: the extension dropped and created again (new
    // OIDs) while the reader's backend lives, then a membership removed, is still seen.
    writer
        .batch_execute(
            "DROP EXTENSION pg_tenancy CASCADE; CREATE EXTENSION pg_tenancy; SELECT tenancy.seed_demo();",
        )
        .unwrap();
    let role: String = reader.query_one(&enter, &[]).unwrap().get(0);
    assert_eq!(
        role, "member",
        "the new extension's membership (cached again)"
    );
    writer
        .batch_execute(&format!(
            "DELETE FROM tenancy.memberships WHERE tenant_id = '{ACME}' AND user_id = '{DAVE}'"
        ))
        .unwrap();
    assert_eq!(
        sqlstate(reader.batch_execute(&enter)),
        "42501",
        "a removal in the new extension's tables is seen"
    );
}

/// A non-superuser migration role, given the documented grants, puts its own table under the model.
#[test]
fn migration_role_applies_the_model_to_its_tables() {
    let db = TestDb::new("pgt_client_migrator");
    login_role("pgt_migrator", "", &[]);
    let mut admin = db.connect("postgres");
    admin
        .batch_execute(
            "GRANT CREATE ON SCHEMA public TO pgt_migrator;
             GRANT USAGE ON SCHEMA tenancy TO pgt_migrator;
             GRANT REFERENCES ON tenancy.tenants TO pgt_migrator;
             GRANT EXECUTE ON FUNCTION tenancy.enable_tenant_isolation(regclass), tenancy._isolate(regclass, text[], text[], text[], text[], boolean, boolean),
                                       tenancy.manage_updated_at(regclass, name), tenancy.set_updated_at()
                   TO pgt_migrator;",
        )
        .unwrap();
    let mut m = db.connect("pgt_migrator");
    m.batch_execute(
        "DROP TABLE IF EXISTS public.tickets;
         CREATE TABLE public.tickets (tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id) ON DELETE CASCADE,
                                      id uuid NOT NULL DEFAULT gen_random_uuid(), title text NOT NULL,
                                      updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (tenant_id, id));
         SELECT tenancy.enable_tenant_isolation('public.tickets');
         SELECT tenancy.manage_updated_at('public.tickets');",
    )
    .unwrap();
    // It cannot touch tables it does not own.
    assert_eq!(
        sqlstate(m.batch_execute("SELECT tenancy.enable_tenant_isolation('tenancy.projects')")),
        "42501"
    );
    admin.batch_execute(&format!("INSERT INTO public.tickets (tenant_id, title) VALUES ('{ACME}', 'a'), ('{GLOBEX}', 'g')")).unwrap();
    admin
        .batch_execute(&format!(
            "BEGIN; SELECT tenancy.set_tenant('{ACME}', '{DAVE}'); SET LOCAL ROLE authenticated;"
        ))
        .unwrap();
    let titles: Vec<String> = admin
        .query("SELECT title FROM public.tickets", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(titles, vec!["a".to_string()]);
    admin.batch_execute("ROLLBACK").unwrap();
}

/// Each backend caches unwrapped data keys; shredding a tenant's keys in another connection makes
/// its credentials unreadable for every backend from their next transaction on.
#[test]
fn shredded_keys_are_gone_from_every_backend() {
    let db = TestDb::new("pgt_client_shred");
    let mut reader = db.connect("postgres");
    let mut writer = db.connect("postgres");
    reader
        .batch_execute(&format!("BEGIN; SELECT tenancy.set_tenant('{ACME}')"))
        .unwrap();
    let id: uuid::Uuid = reader
        .query_one("SELECT tenancy.store_credential('a1000000-0000-4000-8000-000000000101', 'bearer', '{\"t\": \"x\"}')", &[])
        .unwrap()
        .get(0);
    reader.batch_execute("COMMIT").unwrap();
    let read = |c: &mut postgres::Client| {
        c.batch_execute("BEGIN").unwrap();
        c.batch_execute(&format!("SELECT tenancy.set_tenant('{ACME}')"))
            .unwrap();
        let r = sqlstate(c.query_one("SELECT tenancy.read_credential($1)", &[&id]));
        c.batch_execute("ROLLBACK").unwrap();
        r
    };
    for _ in 0..3 {
        assert_eq!(
            read(&mut reader),
            "ok",
            "readable (and its data key cached)"
        );
    }
    writer
        .batch_execute(&format!(
            "DELETE FROM tenancy_private.data_keys WHERE tenant_id = '{ACME}'"
        ))
        .unwrap();
    assert_eq!(
        read(&mut reader),
        "55000",
        "after the shredding commits, no backend can read it"
    );
}

/// Secrets passed as bind parameters never reach the server log at default settings, whether the
/// call succeeds or fails (the log records statement texts, which hold only `$1`, `$2`).
#[test]
fn secrets_passed_as_parameters_stay_out_of_the_server_log() {
    let db = TestDb::new("pgt_client_log");
    let log = std::path::Path::new(
        &std::env::var("PGHOST").unwrap_or_else(|_| "/var/tmp/pg_tenancy/test".into()),
    )
    .join("server.log");
    let secret = format!("xoxb-log-canary-{}", std::process::id());
    let refresh = format!("refresh-log-canary-{}", std::process::id());
    let mut c = db.connect("postgres");
    c.batch_execute(&format!("BEGIN; SELECT tenancy.set_tenant('{ACME}')"))
        .unwrap();
    let data = format!(r#"{{"access_token": "{secret}"}}"#);
    let id: uuid::Uuid = c
        .query_one(
            "SELECT tenancy.store_credential('a1000000-0000-4000-8000-000000000101', 'oauth2_tokens', $1::text::jsonb, $2)",
            &[&data, &refresh],
        )
        .unwrap()
        .get(0);
    let read: String = c
        .query_one("SELECT tenancy.read_credential($1)::text", &[&id])
        .unwrap()
        .get(0);
    assert!(read.contains(&secret));
    c.batch_execute("COMMIT").unwrap();
    // Failing calls: an unknown integration, a bad type, data that is not an object.
    for (integration, kind, payload) in [
        (
            "ffffffff-0000-4000-8000-000000000000",
            "oauth2_tokens",
            data.clone(),
        ),
        (
            "a1000000-0000-4000-8000-000000000101",
            "telepathy",
            data.clone(),
        ),
        (
            "a1000000-0000-4000-8000-000000000101",
            "bearer",
            format!("\"{secret}\""),
        ),
    ] {
        c.batch_execute(&format!("BEGIN; SELECT tenancy.set_tenant('{ACME}')"))
            .unwrap();
        let r = c.query_one(
            "SELECT tenancy.store_credential($1::text::uuid, $2, $3::text::jsonb, $4)",
            &[&integration, &kind, &payload, &refresh],
        );
        assert!(r.is_err());
        c.batch_execute("ROLLBACK").unwrap();
    }
    // Duration logging on: with log_parameter_max_length = 0 (docs/vault.md's advice) no value is
    // logged; without it PostgreSQL logs bind-parameter values, which is why the advice exists.
    let store = |c: &mut postgres::Client, canary: &str| {
        c.batch_execute(&format!("BEGIN; SELECT tenancy.set_tenant('{ACME}')"))
            .unwrap();
        let payload = format!(r#"{{"access_token": "{canary}"}}"#);
        c.query_one(
            "SELECT tenancy.store_credential('a1000000-0000-4000-8000-000000000101', 'bearer', $1::text::jsonb)",
            &[&payload],
        )
        .unwrap();
        c.batch_execute("COMMIT").unwrap();
    };
    let hidden = format!("duration-hidden-canary-{}", std::process::id());
    let shown = format!("duration-shown-canary-{}", std::process::id());
    c.batch_execute("SET log_min_duration_statement = 0; SET log_parameter_max_length = 0")
        .unwrap();
    store(&mut c, &hidden);
    c.batch_execute("RESET log_parameter_max_length").unwrap();
    store(&mut c, &shown);
    drop(c);
    let text =
        std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("read {}: {e}", log.display()));
    assert!(
        text.contains("ERROR"),
        "the failures were logged (so the check below means something)"
    );
    assert!(
        !text.contains(&secret) && !text.contains(&refresh),
        "a secret reached {}",
        log.display()
    );
    assert!(
        !text.contains(&hidden),
        "log_parameter_max_length = 0 keeps parameter values out"
    );
    assert!(
        text.contains(&shown),
        "without it, duration logging records parameter values (the risk documented)"
    );
}
