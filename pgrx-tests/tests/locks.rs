//! No application role blocks another tenant.
//!
//! `a_hostile_session_holding_every_lock_it_can_take_blocks_no_other_tenant`: the owner of globex,
//! with a login of its own, opens a transaction and takes every lock it can: every mode of `LOCK
//! TABLE` on every relation of the schema, `FOR UPDATE` / `FOR NO KEY UPDATE` / `FOR SHARE` /
//! `FOR KEY SHARE` on every row it can see, a write of its own in each table it may write, reads
//! of every table, and the SQL advisory lock maintenance used to take.  Then it sits idle.  Meanwhile
//! acme's users and keys do what a request does (verify and authenticate an API key, PostgREST's
//! pre_request on a fresh backend, reads and writes of every kind, credentials, request logs,
//! members, API keys), each under a 5 s statement_timeout, and the service runs request-log
//! maintenance.  Nothing waits.  On 0.2.0 `LOCK tenancy.api_keys, tenancy.memberships IN ACCESS
//! EXCLUSIVE MODE` succeeded and every tenant's authentication waited for the hostile transaction.
//!
//! `statements_that_lock_before_checking_are_refused_at_once`: statements PostgreSQL runs by
//! locking the table first and checking privileges after (a rule, a partition attached or
//! created, a trigger, a foreign key even from a temporary table, inheritance, comments,
//! statistics, a strong LOCK through a view of one's own, and the same from a DO block) are
//! refused before any lock, so that, queued behind an ordinary writer, they cannot make every
//! other reader or writer queue behind them.  On 0.2.0 they queued (55P03 after lock_timeout).
//! A strong LOCK of any relation, the catalogs and others' views included, is checked as
//! PostgreSQL checks it, before anything is locked.
use pg_tenancy_client_tests::demo::{ACME, ALICE, FRANK, GLOBEX, SEND_MESSAGE_A, SLACK_A};
use pg_tenancy_client_tests::{connect, enter_as as enter, login_role, sqlstate, TestDb};
use postgres::Client;
use std::time::{Duration, Instant};

/// A user of no tenant yet, whom acme adds.  (Adding the hostile user itself waits for the row
/// lock it holds on its own profile, alone: see docs/security.md, "What remains".)
const IVAN: &str = "00000000-0000-4000-8000-0000000000c1";
const ACTION_A: &str = SEND_MESSAGE_A;
const MODES: [&str; 8] = [
    "ACCESS SHARE",
    "ROW SHARE",
    "ROW EXCLUSIVE",
    "SHARE UPDATE EXCLUSIVE",
    "SHARE",
    "SHARE ROW EXCLUSIVE",
    "EXCLUSIVE",
    "ACCESS EXCLUSIVE",
];

/// `sql` in a savepoint of the open transaction: true if it succeeded (and keeps its locks).
fn try_keep(c: &mut Client, sql: &str) -> bool {
    c.batch_execute("SAVEPOINT try").unwrap();
    let ok = c.batch_execute(sql).is_ok();
    c.batch_execute(if ok {
        "RELEASE SAVEPOINT try"
    } else {
        "ROLLBACK TO SAVEPOINT try"
    })
    .unwrap();
    ok
}

/// The locks the hostile backend holds, as "relation mode" lines.
fn held(admin: &mut Client, pid: i32) -> Vec<String> {
    admin
        .query(
            "SELECT coalesce(relation::regclass::text, locktype) || ' ' || mode FROM pg_locks
              WHERE pid = $1 AND granted AND locktype IN ('relation', 'advisory', 'tuple') ORDER BY 1",
            &[&pid],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn a_hostile_session_holding_every_lock_it_can_take_blocks_no_other_tenant() {
    let db = TestDb::new("pgt_locks");
    let mut admin = db.connect("postgres");
    login_role("pgt_hostile_owner", "", &["authenticated"]);
    login_role("pgt_victim", "", &["authenticated"]);
    admin
        .batch_execute(&format!(
            "SELECT tenancy.maintain_request_logs();
             INSERT INTO tenancy.users (id, email) VALUES ('{IVAN}', 'ivan@acme.test');
             BEGIN; SELECT tenancy.set_tenant('{ACME}');
             CREATE TEMP TABLE k AS SELECT tenancy.create_api_key('acme backend') AS key;
             COMMIT;"
        ))
        .unwrap();
    let key: String = admin.query_one("SELECT key FROM k", &[]).unwrap().get(0);

    // The hostile owner of globex takes everything it can, and keeps it.
    let mut h = connect(&db.name, "pgt_hostile_owner");
    let pid: i32 = h.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    enter(&mut h, FRANK, GLOBEX);
    let relations: Vec<String> = admin
        .query(
            "SELECT c.oid::regclass::text FROM pg_class c
              WHERE c.relnamespace IN ('tenancy'::regnamespace, 'tenancy_private'::regnamespace)
                AND c.relkind IN ('r', 'p', 'v', 'm') ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(relations.len() >= 20, "{relations:?}");
    let mut taken = Vec::new();
    for rel in &relations {
        for mode in MODES {
            if try_keep(&mut h, &format!("LOCK TABLE {rel} IN {mode} MODE NOWAIT")) {
                taken.push(format!("LOCK {rel} {mode}"));
            }
        }
        for strength in ["UPDATE", "NO KEY UPDATE", "SHARE", "KEY SHARE"] {
            if try_keep(
                &mut h,
                &format!("SELECT 1 FROM {rel} FOR {strength} NOWAIT"),
            ) {
                taken.push(format!("FOR {strength} {rel}"));
            }
        }
        try_keep(&mut h, &format!("SELECT 1 FROM {rel} LIMIT 1"));
    }
    // Its own writes (row locks, ROW EXCLUSIVE) where it may write.
    try_keep(
        &mut h,
        &format!("INSERT INTO tenancy.clients (tenant_id, name) VALUES ('{GLOBEX}', 'hostile')"),
    );
    try_keep(&mut h, "UPDATE tenancy.projects SET name = name");
    try_keep(&mut h, "UPDATE tenancy.tenants SET name = name");
    try_keep(
        &mut h,
        "SELECT pg_advisory_xact_lock(hashtext('tenancy.maintain_request_logs'))",
    );
    let strong: Vec<&String> = taken
        .iter()
        .filter(|t| {
            t.starts_with("LOCK ")
                && !["ACCESS SHARE", "ROW SHARE", "ROW EXCLUSIVE"]
                    .iter()
                    .any(|m| t.ends_with(&format!(" {m}")))
        })
        .collect();
    let locks = held(&mut admin, pid);
    println!(
        "the hostile session holds {} locks on {} relations ({} LOCK statements and {} row locks taken)",
        locks.len(),
        locks.iter().map(|l| l.split(' ').next().unwrap_or("")).collect::<std::collections::BTreeSet<_>>().len(),
        taken.iter().filter(|t| t.starts_with("LOCK ")).count(),
        taken.iter().filter(|t| t.starts_with("FOR ")).count()
    );
    assert!(
        strong.is_empty(),
        "an application role took locks that make other tenants wait: {strong:?}"
    );

    // Meanwhile, acme.  Every call on a backend of its own with a 5 s statement_timeout.
    let mut failures = Vec::new();
    let mut timed_as = |user: &str, what: &str, sql: &str| {
        let mut v = connect(&db.name, user);
        v.batch_execute("SET statement_timeout = '5s'").unwrap();
        let start = Instant::now();
        let r = v.batch_execute(sql);
        let took = start.elapsed();
        if r.is_err() || took > Duration::from_secs(2) {
            failures.push(format!("{what}: {} after {took:?}", sqlstate(r)));
        }
        println!("{what}: {took:.0?}");
    };
    let mut timed = |what: &str, sql: &str| timed_as("pgt_victim", what, sql);
    let claims = format!(r#"{{"sub": "{ALICE}", "tenant_id": "{ACME}"}}"#);
    let as_alice = format!(
        "BEGIN; SET LOCAL ROLE authenticated; SELECT set_config('request.jwt.claims', '{claims}', true); SELECT tenancy.pre_request();"
    );
    timed(
        "verify_api_key",
        &format!("SELECT tenancy.verify_api_key('{key}')"),
    );
    timed(
        "authenticate and read",
        &format!("BEGIN; SET LOCAL ROLE authenticated; SELECT tenancy.authenticate('{key}'); SELECT count(*) FROM tenancy.projects; COMMIT"),
    );
    timed(
        "pre_request on a fresh backend",
        &format!("{as_alice} COMMIT"),
    );
    for rel in &relations {
        if rel.contains("request_logs_") || rel.starts_with("tenancy_private.") {
            continue;
        }
        timed(
            &format!("read {rel}"),
            &format!("{as_alice} SELECT count(*) FROM {rel}; COMMIT"),
        );
    }
    timed(
        "write ordinary tables",
        &format!(
            "{as_alice} INSERT INTO tenancy.clients (tenant_id, name) VALUES ('{ACME}', 'c');
             UPDATE tenancy.projects SET name = name; DELETE FROM tenancy.clients WHERE name = 'c';
             UPDATE tenancy.integrations SET description = 'd'; UPDATE tenancy.tenants SET settings = settings;
             INSERT INTO tenancy.jobs (tenant_id, user_id, job_type) VALUES ('{ACME}', '{ALICE}', 'j'); COMMIT"
        ),
    );
    timed(
        "credentials",
        &format!(
            "{as_alice} SELECT tenancy.read_credential(tenancy.store_credential('{SLACK_A}', 'bearer', '{{\"token\": \"t\"}}')); COMMIT"
        ),
    );
    timed(
        "request logs",
        &format!("{as_alice} SELECT tenancy.log_request('{SLACK_A}', '{ACTION_A}', '{{}}'); SELECT * FROM tenancy.request_stats(now() - interval '1 day'); COMMIT"),
    );
    timed(
        "API keys",
        &format!("{as_alice} SELECT tenancy.revoke_api_key(k.id) FROM tenancy.api_keys k WHERE k.name = 'x'; SELECT tenancy.create_api_key('another'); SELECT count(*) FROM tenancy.list_api_keys(); COMMIT"),
    );
    // Adding the hostile user waits for the row lock it holds on its own profile (the foreign
    // key's), but without holding acme's membership lock: acme's other membership changes go on.
    let stuck = std::thread::spawn({
        let (name, as_alice) = (db.name.clone(), as_alice.clone());
        move || {
            let mut v = connect(&name, "pgt_victim");
            v.batch_execute("SET statement_timeout = '3s'").unwrap();
            let r = v.batch_execute(&format!("{as_alice} SELECT tenancy.add_member('{FRANK}')"));
            sqlstate(r)
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    timed(
        "members",
        &format!("{as_alice} SELECT tenancy.add_member('{IVAN}', 'client'); SELECT tenancy.remove_member('{IVAN}'); COMMIT"),
    );
    assert_eq!(
        stuck.join().unwrap(),
        "57014",
        "adding the hostile user did not wait for its row lock"
    );
    // Partition DDL needs strong locks on request_logs, which the hostile session's read holds
    // off: maintenance waits at most lock_wait per step, skips it, and says so.
    timed_as(
        "postgres",
        "request-log maintenance",
        "SELECT tenancy.maintain_request_logs(premake => 10, lock_wait => '200 ms')",
    );
    let report: String = admin
        .query_one(
            "SELECT tenancy.maintain_request_logs(premake => 10, lock_wait => '200 ms')::text",
            &[],
        )
        .unwrap()
        .get(0);
    println!("maintenance while the hostile session reads request_logs: {report}");
    assert!(
        failures.is_empty(),
        "other tenants waited for the hostile session: {failures:#?}"
    );
    h.batch_execute("ROLLBACK").unwrap();
}

#[test]
fn statements_that_lock_before_checking_are_refused_at_once() {
    let db = TestDb::new("pgt_locks_first");
    login_role("pgt_hostile_member", "", &["authenticated"]);
    let mut admin = db.connect("postgres");
    // Someone else's view the member may read (as PostgREST setups grant them), over a table of
    // its own.
    admin
        .batch_execute(
            "CREATE TABLE public.shared_base (x int);
             CREATE VIEW public.shared_view AS SELECT x FROM public.shared_base;
             GRANT SELECT ON public.shared_view TO pgt_hostile_member;",
        )
        .unwrap();
    // An ordinary writer of globex holds ROW EXCLUSIVE on tenancy.projects (as every write does),
    // and ACCESS SHARE on what it reads: request logs, a catalog, the shared view.
    admin
        .batch_execute(&format!(
            "BEGIN; SELECT tenancy.set_tenant('{GLOBEX}'); UPDATE tenancy.projects SET name = name WHERE tenant_id = '{GLOBEX}';
             SELECT count(*) FROM tenancy.request_logs; SELECT count(*) FROM pg_catalog.pg_class;
             SELECT count(*) FROM public.shared_view;"
        ))
        .unwrap();
    // (statement, what PostgreSQL answers once it may check): each must answer at once, never
    // queue for a lock behind the writer (55P03 after lock_timeout).
    let statements = [
        ("CREATE RULE r AS ON INSERT TO tenancy.projects DO INSTEAD NOTHING", "42501"),
        ("CREATE TEMP TABLE part PARTITION OF tenancy.request_logs FOR VALUES FROM ('2000-01-01') TO ('2000-01-02')", "42501"),
        ("CREATE TEMP TABLE tp (tenant_id uuid, id uuid) PARTITION BY LIST (tenant_id);
          ALTER TABLE tp ATTACH PARTITION tenancy.projects FOR VALUES IN ('00000000-0000-0000-0000-000000000001')", "42501"),
        ("CREATE TRIGGER t BEFORE INSERT ON tenancy.projects FOR EACH ROW EXECUTE FUNCTION tenancy.set_updated_at()", "42501"),
        ("CREATE CONSTRAINT TRIGGER t AFTER INSERT ON tenancy.projects FROM tenancy.clients FOR EACH ROW EXECUTE FUNCTION tenancy.set_updated_at()", "42501"),
        ("CREATE TEMP TABLE fk (t uuid, p uuid, FOREIGN KEY (t, p) REFERENCES tenancy.projects (tenant_id, id))", "42501"),
        ("CREATE TEMP TABLE fk2 (t uuid, p uuid); ALTER TABLE fk2 ADD FOREIGN KEY (t, p) REFERENCES tenancy.projects (tenant_id, id)", "42501"),
        ("CREATE TEMP TABLE fk3 (t uuid); ALTER TABLE fk3 ADD COLUMN c uuid REFERENCES tenancy.tenants (id)", "42501"),
        ("CREATE TEMP TABLE child () INHERITS (tenancy.projects)", "42501"),
        ("CREATE TEMP TABLE orphan (LIKE tenancy.projects); ALTER TABLE orphan INHERIT tenancy.projects", "42501"),
        ("COMMENT ON TABLE tenancy.projects IS 'x'", "42501"),
        ("COMMENT ON COLUMN tenancy.projects.name IS 'x'", "42501"),
        ("CREATE STATISTICS s ON tenant_id, client_id FROM tenancy.projects", "42501"),
        ("LOCK TABLE tenancy.projects IN SHARE MODE", "42501"),
        // Relations that are not pg_tenancy's: PostgreSQL's own checks, made before the lock
        // (in 0.3.0 before this fix, the guard locked first: every new connection waited).
        ("LOCK TABLE pg_catalog.pg_class IN ACCESS EXCLUSIVE MODE", "42501"),
        ("LOCK TABLE public.shared_view IN EXCLUSIVE MODE", "42501"),
        ("CREATE TEMP VIEW mine AS SELECT x FROM public.shared_view; LOCK TABLE mine IN ACCESS EXCLUSIVE MODE", "42501"),
        ("/* autocommit */ LOCK TABLE pg_catalog.pg_class IN ACCESS EXCLUSIVE MODE", "25P01"),
        ("CREATE TEMP VIEW v AS SELECT * FROM tenancy.projects; LOCK TABLE v IN ACCESS EXCLUSIVE MODE", "42501"),
        ("CREATE TEMP VIEW w AS SELECT 1 FROM tenancy.clients WHERE EXISTS (SELECT FROM tenancy.projects);
          LOCK TABLE w IN EXCLUSIVE MODE", "42501"),
        ("DO $$ BEGIN EXECUTE 'CREATE RULE r AS ON INSERT TO tenancy.projects DO INSTEAD NOTHING'; END $$", "42501"),
        // A view over more relations than anyone would check (1,000 of its own, then ours).
        ("DO $$ BEGIN
              FOR i IN 0..999 LOOP EXECUTE format('CREATE TEMP TABLE t%s (x int)', i); END LOOP;
              EXECUTE 'CREATE TEMP VIEW big AS '
                      || (SELECT string_agg(format('SELECT x FROM t%s', i), ' UNION ALL ') FROM generate_series(0, 999) i)
                      || ' UNION ALL SELECT 1 FROM tenancy.clients';
          END $$;
          LOCK TABLE big IN ACCESS EXCLUSIVE MODE", "42501"),
        // VACUUM and ANALYZE of the partitioned table queue for every partition's lock before
        // checking (VACUUM runs outside a transaction block).
        ("VACUUM FULL tenancy.request_logs", "42501"),
        ("VACUUM tenancy.request_logs", "42501"),
        ("ANALYZE tenancy.request_logs", "42501"),
        // These lock in ACCESS SHARE only (measured on 15): answered at once by PostgreSQL itself.
        ("DROP TRIGGER IF EXISTS nope ON tenancy.projects", "ok"),
        ("DROP POLICY IF EXISTS nope ON tenancy.projects", "ok"),
        ("DROP RULE IF EXISTS nope ON tenancy.projects", "ok"),
    ];
    let mut h = connect(&db.name, "pgt_hostile_member");
    h.batch_execute("SET lock_timeout = '3s'").unwrap();
    let mut outcomes = Vec::new();
    for (sql, want) in statements {
        let in_block = !sql.starts_with("VACUUM") && !sql.starts_with("/* autocommit */");
        if in_block {
            h.batch_execute("BEGIN").unwrap();
        }
        let start = Instant::now();
        let code = sqlstate(h.batch_execute(sql));
        let took = start.elapsed();
        if in_block {
            h.batch_execute("ROLLBACK").unwrap();
        }
        outcomes.push(format!("{code} in {took:.0?}: {sql}"));
        // At once: well under the 3 s lock_timeout that a statement which queued would wait out
        // (the 1,000-table view's setup alone takes up to a second on a loaded machine).
        assert!(
            code == want && took < Duration::from_millis(2500),
            "{sql}: {code} after {took:?}, expected {want} at once (55P03 means it queued for a lock behind the writer)"
        );
    }
    admin.batch_execute("ROLLBACK").unwrap();
    for o in outcomes {
        println!("{o}");
    }
}

/// pg_locks is readable by every role: the extension's own locks name a hash of the tenant, not
/// the tenant.  (On 0.2.0 a membership change showed the first 8 bytes of the tenant's id.)
#[test]
fn pg_locks_does_not_name_the_tenant() {
    let db = TestDb::new("pgt_locks_tags");
    let mut admin = db.connect("postgres");
    admin
        .batch_execute(&format!(
            "INSERT INTO tenancy.users (id, email) VALUES ('{IVAN}', 'ivan@acme.test');
             BEGIN; SELECT tenancy.set_tenant('{GLOBEX}'); SELECT tenancy.add_member('{IVAN}');"
        ))
        .unwrap();
    let mut observer = db.connect("postgres");
    let tags: Vec<(i64, i64)> = observer
        .query(
            "SELECT classid::int8, objid::int8 FROM pg_locks WHERE locktype = 'advisory' AND objsubid >= 29808",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    admin.batch_execute("ROLLBACK").unwrap();
    assert!(!tags.is_empty(), "the membership lock is held");
    let hex = GLOBEX.replace('-', "");
    let word = |i: usize| i64::from(u32::from_str_radix(&hex[8 * i..8 * i + 8], 16).unwrap());
    for (classid, objid) in tags {
        assert!(
            classid != word(0) && objid != word(1),
            "pg_locks shows globex's id: {classid:x} {objid:x}"
        );
    }
}

/// LOCK of one's own table keeps PostgreSQL's behaviour: the guard takes the LOCK's own mode, not
/// a weaker one first (which two sessions would then both try to upgrade, a deadlock), and NOWAIT
/// does not wait.
#[test]
fn locks_of_ones_own_tables_behave_as_without_the_guard() {
    let db = TestDb::new("pgt_locks_own");
    login_role("pgt_lock_owner", "", &[]);
    let mut admin = db.connect("postgres");
    admin
        .batch_execute(
            "DROP TABLE IF EXISTS public.own; CREATE TABLE public.own (x int);
             ALTER TABLE public.own OWNER TO pgt_lock_owner;
             CREATE VIEW public.own_view AS SELECT x FROM public.own; ALTER VIEW public.own_view OWNER TO pgt_lock_owner;",
        )
        .unwrap();
    let mut first = connect(&db.name, "pgt_lock_owner");
    first
        .batch_execute("BEGIN; LOCK TABLE public.own_view IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let mut nowait = connect(&db.name, "pgt_lock_owner");
    let start = Instant::now();
    let code = sqlstate(nowait.batch_execute("BEGIN; LOCK TABLE public.own NOWAIT"));
    assert_eq!(code, "55P03", "NOWAIT waited or succeeded");
    assert!(start.elapsed() < Duration::from_secs(1));
    nowait.batch_execute("ROLLBACK").unwrap();
    let second = std::thread::spawn({
        let name = db.name.clone();
        move || {
            let mut c = connect(&name, "pgt_lock_owner");
            let r = c.batch_execute(
                "BEGIN; LOCK TABLE public.own_view IN ACCESS EXCLUSIVE MODE; COMMIT",
            );
            sqlstate(r)
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    first.batch_execute("COMMIT").unwrap();
    assert_eq!(
        second.join().unwrap(),
        "ok",
        "the second LOCK did not simply wait for the first"
    );
}
