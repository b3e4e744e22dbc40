//! A TypeScript backend on Drizzle: `drizzle-kit pull` of the public schema `tenancy` loads and
//! type-checks (strict) without edits, and a Drizzle program on node-postgres, logged in as a role
//! that is a member of `authenticated`, authenticates with an API key and reads its tenant's
//! projects (and, through a hand-written definition, its request logs: drizzle-kit does not pull
//! partitioned tables) through the query builder, and nothing of the other tenant's.  The steps are
//! pgrx-tests/drizzle/run.sh's (npm ci when node_modules is stale, pull, grep for what drizzle-kit
//! does not support, tsc --noEmit, tsx app.ts); this test sets up the database and reads what the
//! program prints.  Needs Node.js 20+ and npm: without them it fails, it does not skip.
use pg_tenancy_client_tests::demo::{ACME, GLOBEX};
use pg_tenancy_client_tests::{login_role, new_api_key, TestDb};
use std::collections::BTreeSet;
use std::process::Command;

/// A connection string for node-postgres (and drizzle-kit, which uses it): the test cluster's
/// socket directory goes in `host=`, the URL's host name is then ignored.
fn url(db: &str, user: &str) -> String {
    let host = std::env::var("PGHOST").unwrap_or_else(|_| "/var/tmp/pg_tenancy/test".into());
    let port = std::env::var("PGPORT").unwrap_or_else(|_| "54325".into());
    if host.starts_with('/') {
        format!("postgresql://{user}@localhost:{port}/{db}?host={host}")
    } else {
        format!("postgresql://{user}@{host}:{port}/{db}")
    }
}

/// (id, name) of every project of `tenant`, read as the superuser.
fn projects_of(db: &TestDb, tenant: &str) -> BTreeSet<(String, String)> {
    db.connect("postgres")
        .query(
            "SELECT id::text, name FROM tenancy.projects WHERE tenant_id = $1::text::uuid",
            &[&tenant],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[test]
fn drizzle_pull_type_checks_and_an_api_key_reads_only_its_tenant() {
    for tool in ["node", "npm"] {
        let found = Command::new(tool)
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            found,
            "{tool} is not installed: the Drizzle test needs Node.js 20+ and npm"
        );
    }

    let db = TestDb::new("pgt_client_drizzle");
    login_role("pgt_drizzle_app", "", &["authenticated"]);
    let acme = projects_of(&db, ACME);
    let globex = projects_of(&db, GLOBEX);
    assert!(!acme.is_empty(), "the demo data gives acme projects");
    assert!(!globex.is_empty(), "and globex");
    let key = new_api_key(&db, ACME, "drizzle");

    let script = format!("{}/drizzle/run.sh", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(&script)
        .env("DATABASE_URL", url(&db.name, "postgres"))
        .env("APP_URL", url(&db.name, "pgt_drizzle_app"))
        .env("API_KEY", &key)
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "run.sh failed ({}):\n{stderr}",
        out.status
    );

    let lines: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|l| !l.starts_with("run.sh:"))
        .map(|l| l.split('\t').collect())
        .collect();
    let value = |tag: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|f| f[0] == tag)
            .map(|f| f[1..].join("\t"))
            .collect()
    };
    assert_eq!(
        value("without-key"),
        vec!["0"],
        "no project is visible before the key is used"
    );
    assert_eq!(
        value("tenant"),
        vec![ACME],
        "authenticate() returned the key's tenant"
    );
    let seen: Vec<(String, String, String)> = lines
        .iter()
        .filter(|f| f[0] == "project")
        .map(|f| {
            assert_eq!(f.len(), 4, "a project line: {f:?}");
            (f[1].to_string(), f[2].to_string(), f[3].to_string())
        })
        .collect();
    for (tenant, id, name) in &seen {
        assert_eq!(tenant, ACME, "project {id} ({name}) is another tenant's");
        assert!(
            !globex.iter().any(|(g, _)| g == id),
            "globex's project {id} ({name}) was read with acme's key"
        );
    }
    let seen_set: BTreeSet<(String, String)> = seen
        .iter()
        .map(|(_, id, name)| (id.clone(), name.clone()))
        .collect();
    assert_eq!(seen_set, acme, "exactly acme's projects");
    assert_eq!(seen.len(), acme.len(), "each once");
    // request_logs (partitioned: defined by hand, pgrx-tests/drizzle/request_logs.ts): acme's
    // count only.
    let acme_logs: i64 = db
        .connect("postgres")
        .query_one(
            "SELECT count(*) FROM tenancy.request_logs WHERE tenant_id = $1::text::uuid",
            &[&ACME],
        )
        .unwrap()
        .get(0);
    assert!(acme_logs > 0, "the demo data gives acme request logs");
    assert_eq!(
        value("request-logs"),
        vec![format!("{ACME}\t{acme_logs}")],
        "request_logs through the hand-written table: acme's rows, and no other tenant's"
    );
    assert_eq!(
        value("after-commit"),
        vec!["0"],
        "the context ended with its transaction"
    );
    assert_eq!(value("ok"), vec![""], "the program ran to its end");
}
