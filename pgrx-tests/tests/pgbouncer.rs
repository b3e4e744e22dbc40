//! Eight applications of eight tenants behind one PgBouncer (transaction pooling, ONE server
//! connection for all of them), interleaving transactions for `$PGT_BOUNCER_SECONDS` (default 20)
//! seconds.  Each client, in turn: a PostgREST-style request (`SET LOCAL ROLE authenticated`, JWT
//! claims, `pre_request`) that reads and writes; an API-key transaction (`authenticate`) that
//! reads; a transaction that fails halfway; a savepoint rolled back; and a check, outside any
//! transaction, that no context is left on the shared backend.  Any row of another tenant ever
//! seen fails the test; at the end every tenant has exactly the rows it committed.
use pg_tenancy_client_tests::{login_role, simple_value, Bouncer, TestDb};
use postgres::{Client, SimpleQueryMessage};
use std::time::{Duration, Instant};

const TENANTS: usize = 8;

struct App {
    tenant: String,
    user: String,
    key: String,
}

/// Every row of `sql` (simple protocol: PgBouncer's transaction mode has no named statements),
/// first column, as text.
fn column(c: &mut Client, sql: &str) -> Vec<Option<String>> {
    c.simple_query(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
            _ => None,
        })
        .collect()
}

/// One application's loop; returns (transactions, rows it committed).
fn run_app(port: u16, db: &str, app: &App, until: Instant) -> (u64, u64) {
    let mut c = Client::connect(
        &format!("host=127.0.0.1 port={port} user=pgt_bouncer_app dbname={db}"),
        postgres::NoTls,
    )
    .unwrap();
    let (tenant, user, key) = (&app.tenant, &app.user, &app.key);
    let claims =
        format!(r#"{{"sub": "{user}", "tenant_id": "{tenant}", "role": "authenticated"}}"#);
    let (mut transactions, mut committed) = (0u64, 0u64);
    let mut round = 0u64;
    while Instant::now() < until {
        round += 1;
        // Outside a transaction: no context, whoever used the backend before.
        assert_eq!(
            simple_value(&mut c, "SELECT tenancy.current_tenant_id()").unwrap(),
            None,
            "{tenant} round {round}: a context outlived its transaction"
        );

        // 1. PostgREST: role, claims, pre-request, then the request's statements.
        c.batch_execute(&format!(
            "BEGIN; SET LOCAL ROLE authenticated;
             SELECT set_config('request.jwt.claims', '{claims}', true);
             SELECT tenancy.pre_request();"
        ))
        .unwrap();
        let seen = column(&mut c, "SELECT tenant_id::text FROM tenancy.clients");
        assert!(
            seen.iter().all(|t| t.as_deref() == Some(tenant.as_str())),
            "{tenant} round {round}: another tenant's client: {seen:?}"
        );
        column(
            &mut c,
            &format!(
                "INSERT INTO tenancy.clients (tenant_id, name) VALUES ('{tenant}', 'p{round}') RETURNING tenant_id"
            ),
        );
        let keep = !round.is_multiple_of(3);
        c.batch_execute(if keep { "COMMIT" } else { "ROLLBACK" })
            .unwrap();
        committed += keep as u64;
        transactions += 1;

        // 2. API key: authenticate, read.
        c.batch_execute("BEGIN").unwrap();
        let got = simple_value(&mut c, &format!("SELECT tenancy.authenticate('{key}')")).unwrap();
        assert_eq!(got.as_deref(), Some(tenant.as_str()));
        let foreign = simple_value(
            &mut c,
            &format!("SELECT count(*) FROM tenancy.clients WHERE tenant_id <> '{tenant}'"),
        )
        .unwrap();
        assert_eq!(
            foreign.as_deref(),
            Some("0"),
            "{tenant} round {round}: a key saw another tenant"
        );
        c.batch_execute("COMMIT").unwrap();
        transactions += 1;

        // 3. A transaction that fails halfway (the pooler gets the backend back aborted).
        c.batch_execute(&format!(
            "BEGIN; SET LOCAL ROLE authenticated; SELECT set_config('request.jwt.claims', '{claims}', true); SELECT tenancy.pre_request();"
        ))
        .unwrap();
        assert!(c.batch_execute("SELECT 1 / 0").is_err());
        c.batch_execute("ROLLBACK").unwrap();
        transactions += 1;

        // 4. A savepoint that switches nothing it may not, rolled back.
        c.batch_execute(&format!(
            "BEGIN; SELECT tenancy.authenticate('{key}'); SAVEPOINT s;
             INSERT INTO tenancy.clients (tenant_id, name) VALUES ('{tenant}', 'rolled back');
             ROLLBACK TO SAVEPOINT s;"
        ))
        .unwrap();
        let now = simple_value(&mut c, "SELECT tenancy.current_tenant_id()").unwrap();
        assert_eq!(now.as_deref(), Some(tenant.as_str()));
        c.batch_execute("COMMIT").unwrap();
        transactions += 1;
    }
    (transactions, committed)
}

#[test]
fn eight_tenants_interleave_through_pgbouncer() {
    let seconds: u64 = std::env::var("PGT_BOUNCER_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let db = TestDb::new("pgt_client_bouncer8");
    login_role("pgt_bouncer_app", "", &["authenticated"]);
    let mut admin = db.connect("postgres");
    let mut apps = Vec::new();
    for i in 0..TENANTS {
        let row = admin
            .query_one(
                "WITH t AS (INSERT INTO tenancy.tenants (slug, name) VALUES ($1::text, $1::text) RETURNING id),
                      u AS (INSERT INTO tenancy.users (email) VALUES ($1::text || '@pool.test') RETURNING id),
                      m AS (INSERT INTO tenancy.memberships (tenant_id, user_id, role) SELECT t.id, u.id, 'member' FROM t, u)
                 SELECT t.id::text, u.id::text FROM t, u",
                &[&format!("pool-{i}")],
            )
            .unwrap();
        let (tenant, user): (String, String) = (row.get(0), row.get(1));
        admin.batch_execute("BEGIN").unwrap();
        admin
            .execute("SELECT tenancy.set_tenant($1::text::uuid)", &[&tenant])
            .unwrap();
        let key: String = admin
            .query_one("SELECT tenancy.create_api_key('pool')", &[])
            .unwrap()
            .get(0);
        admin.batch_execute("COMMIT").unwrap();
        apps.push(App { tenant, user, key });
    }
    let bouncer = Bouncer::start(&db.name, 54356);
    let until = Instant::now() + Duration::from_secs(seconds);
    let results: Vec<(u64, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = apps
            .iter()
            .map(|app| {
                let name = db.name.clone();
                let port = bouncer.port;
                s.spawn(move || run_app(port, &name, app, until))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let total: u64 = results.iter().map(|r| r.0).sum();
    println!(
        "{TENANTS} clients, {seconds} s through PgBouncer (pool size 1): {total} transactions"
    );
    for (app, (transactions, committed)) in apps.iter().zip(&results) {
        assert!(
            *transactions > 20,
            "{}: only {transactions} transactions",
            app.tenant
        );
        let rows: i64 = admin
            .query_one(
                "SELECT count(*) FROM tenancy.clients WHERE tenant_id = $1::text::uuid",
                &[&app.tenant],
            )
            .unwrap()
            .get(0);
        assert_eq!(
            rows as u64, *committed,
            "{}: exactly its committed rows",
            app.tenant
        );
    }
    let backends: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = 'pgt_bouncer_app' AND datname = current_database()",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        backends <= 1,
        "one shared server connection, not {backends}"
    );
    drop(bouncer);
}
