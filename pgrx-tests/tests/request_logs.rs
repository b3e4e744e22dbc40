//! Request logging under load: two pgbench clients call tenancy.log_request for 30 seconds; the
//! table then holds exactly as many rows as pgbench counted successful calls.
use pg_tenancy_client_tests::{bin, TestDb};
use std::process::Command;

#[test]
fn concurrent_logging_loses_and_invents_nothing() {
    let db = TestDb::new("pgt_client_logging");
    let mut c = db.connect("postgres");
    let row = c
        .query_one(
            "SELECT a.integration_id::text, a.id::text FROM tenancy.actions a
             WHERE a.tenant_id = 'a0000000-0000-4000-8000-000000000001' LIMIT 1",
            &[],
        )
        .unwrap();
    let (integration, action): (String, String) = (row.get(0), row.get(1));
    let before: i64 = c
        .query_one("SELECT count(*) FROM tenancy.request_logs", &[])
        .unwrap()
        .get(0);
    let script = std::env::temp_dir().join(format!("pgt-log-{}.sql", std::process::id()));
    std::fs::write(
        &script,
        format!(
            "\\set latency random(1, 500)\n\
             SELECT tenancy.set_tenant('a0000000-0000-4000-8000-000000000001'),\n\
             tenancy.log_request('{integration}', '{action}',\n\
               '{{\"method\": \"GET\", \"headers\": {{\"Authorization\": \"Bearer abcdefghijkl\"}}}}', '{{\"status\": 200}}', 200, :latency);\n"
        ),
    )
    .unwrap();
    let seconds = std::env::var("PGT_LOG_SECONDS").unwrap_or_else(|_| "30".into());
    let host = std::env::var("PGHOST").unwrap_or_else(|_| "/var/tmp/pg_tenancy/test".into());
    let port = std::env::var("PGPORT").unwrap_or_else(|_| "54325".into());
    let out = Command::new(bin("pgbench"))
        .args([
            "-h", &host, "-p", &port, "-U", "postgres", "-n", "-M", "prepared",
        ])
        .args(["-c", "2", "-j", "2", "-T", &seconds, "-f"])
        .arg(&script)
        .arg(&db.name)
        .output()
        .expect("run pgbench");
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "pgbench: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let number = |prefix: &str| -> i64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no \"{prefix}\" in pgbench's output:\n{text}"))
    };
    let processed = number("number of transactions actually processed:");
    assert!(processed > 1000, "pgbench ran ({processed} calls)");
    let after: i64 = c
        .query_one("SELECT count(*) FROM tenancy.request_logs", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        after - before,
        processed,
        "one row per successful call, no more, no less"
    );
    let leaked: i64 = c
        .query_one(
            "SELECT count(*) FROM tenancy.request_logs WHERE request_summary::text LIKE '%abcdefghijkl%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(leaked, 0, "no unredacted secret under load");
}
