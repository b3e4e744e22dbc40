//! The vault's key lifecycle on the Citus cluster (`scripts/citus.sh up`; PGT_CITUS_PORT, with
//! PGT_CITUS_MAJOR, PGT_BINDIR, PGT_STATE and PGT_OS_USER to restart its nodes): a root key
//! rotation, as a DBA does it on every node at once (a new active key in the shared keyring, the
//! old one kept, a restart, `rotate_root_key()`), then crypto-shredding a tenant.  In a database
//! of its own on the cluster; the cluster's keyring is put back (and the nodes restarted) however
//! the test ends.  Its own file: `cargo test` runs test files one after another, so no other
//! Citus test runs while the nodes restart.
use pg_tenancy_client_tests::demo::{ACME, DAVE, GLOBEX, SLACK_A, SLACK_B};
use pg_tenancy_client_tests::{error_text, read_all_credentials, TestDb};
use postgres::{Client, NoTls};

struct Nodes {
    port: u16,
    bindir: String,
    state: String,
    major: String,
    os_user: String,
    keyring: String,
    original: String,
}

impl Nodes {
    fn from_env() -> Option<Nodes> {
        let (Ok(port), Ok(major), Ok(bindir), Ok(state)) = (
            std::env::var("PGT_CITUS_PORT"),
            std::env::var("PGT_CITUS_MAJOR"),
            std::env::var("PGT_BINDIR"),
            std::env::var("PGT_STATE"),
        ) else {
            eprintln!(
                "skipped: no Citus cluster (scripts/citus.sh up, then scripts/citus.sh test)"
            );
            return None;
        };
        let keyring = format!("{state}/citus-{major}-keyring");
        let original = std::fs::read_to_string(&keyring).expect("the cluster's keyring");
        Some(Nodes {
            port: port.parse().unwrap(),
            bindir,
            state,
            major,
            os_user: std::env::var("PGT_OS_USER").unwrap_or_else(|_| "tenancy".into()),
            keyring,
            original,
        })
    }

    /// Write the keyring every node reads, and restart the three (the keyring is read at start).
    fn restart_with(&self, keyring: &str) {
        std::fs::write(&self.keyring, keyring).unwrap();
        for n in ["coordinator", "worker1", "worker2"] {
            let dir = format!("{}/citus{}-{n}", self.state, self.major);
            let status = std::process::Command::new("sudo")
                .args([
                    "-u",
                    &self.os_user,
                    &format!("{}/pg_ctl", self.bindir),
                    "-D",
                ])
                .arg(format!("{dir}/data"))
                .args(["-w", "-t", "60", "-m", "fast", "restart", "-l"])
                .arg(format!("{dir}/server.log"))
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "restart of {n}");
        }
    }

    fn connect(&self, n: u16, db: &str) -> Client {
        // Citus needs a moment after a restart before it plans distributed queries.
        for _ in 0..50 {
            if let Ok(c) = Client::connect(
                &format!(
                    "host=127.0.0.1 port={} user=postgres dbname={db}",
                    self.port + n
                ),
                NoTls,
            ) {
                return c;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!("node {n} does not accept connections");
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        self.restart_with(&self.original.clone());
    }
}

fn strings(c: &mut Client, sql: &str) -> Vec<String> {
    c.query(sql, &[])
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

/// What each node's copy of the reference tables says of the root keys wrapping the data keys and
/// the pepper.
fn wrapping_keys_on_every_node(nodes: &Nodes, db: &str) -> Vec<Vec<String>> {
    (0..3)
        .map(|n| {
            let mut c = nodes.connect(n, db);
            strings(
                &mut c,
                "SELECT DISTINCT root_key_id FROM (SELECT root_key_id FROM tenancy_private.data_keys
                  UNION ALL SELECT root_key_id FROM tenancy_private.peppers) k ORDER BY 1",
            )
        })
        .collect()
}

#[test]
fn root_keys_rotate_and_tenants_shred_on_every_node() {
    let Some(nodes) = Nodes::from_env() else {
        return;
    };
    let active = nodes
        .original
        .lines()
        .find(|l| l.ends_with(" active"))
        .expect("an active key")
        .to_string();
    let old_id = active.split(' ').next().unwrap().to_string();
    let db = TestDb::new("pgt_citus_keyring");
    let mut su = nodes.connect(0, &db.name);
    // Credentials of both tenants and an API key, all under the cluster's root key.
    for (tenant, integration) in [(ACME, SLACK_A), (GLOBEX, SLACK_B)] {
        su.batch_execute(&format!(
            "BEGIN; SELECT tenancy.set_tenant('{tenant}');
             SELECT tenancy.store_credential('{integration}', 'bearer', '{{\"token\": \"before-{tenant}\"}}');
             COMMIT;"
        ))
        .unwrap();
    }
    let key = pg_tenancy_client_tests::new_api_key(&db, ACME, "rotation");
    assert_eq!(
        wrapping_keys_on_every_node(&nodes, &db.name),
        vec![vec![old_id.clone()]; 3]
    );

    // The DBA's rotation: a new active key, the old one kept, on every node; then rewrap.
    let new_line = format!(
        "k-rotated {} active",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            uuid::Uuid::new_v4().as_bytes().repeat(2)
        )
    );
    let rotated: Vec<&str> = nodes
        .original
        .lines()
        .map(|l| {
            if l == active {
                l.trim_end_matches(" active")
            } else {
                l
            }
        })
        .chain([new_line.as_str()])
        .collect();
    nodes.restart_with(&(rotated.join("\n") + "\n"));
    let mut su = nodes.connect(0, &db.name);
    let (rewrapped, remaining): (i64, i64) = su
        .query_one("SELECT * FROM tenancy.rotate_root_key()", &[])
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert!(rewrapped >= 3, "two data keys and the pepper: {rewrapped}");
    assert_eq!(remaining, 0);
    assert_eq!(
        wrapping_keys_on_every_node(&nodes, &db.name),
        vec![vec!["k-rotated".to_string()]; 3],
        "every node's copy rewrapped"
    );
    let mut usage = strings(
        &mut su,
        "SELECT key_id || ' ' || active || ' ' || wrapped_keys FROM tenancy.root_key_usage()",
    );
    usage.sort();
    let mut want = vec![
        format!("k-rotated true {rewrapped}"),
        format!("{old_id} false 0"),
    ];
    want.sort();
    assert_eq!(usage, want);
    // Everything still reads: both tenants' credentials, the API key made before.
    let creds = read_all_credentials(&mut su).unwrap();
    assert_eq!(creds.len(), 2);
    assert!(creds
        .iter()
        .any(|(_, v)| v.contains(&format!("before-{ACME}"))));
    su.batch_execute("BEGIN").unwrap();
    let tenant: Option<uuid::Uuid> = su
        .query_one("SELECT tenancy.authenticate($1)", &[&key])
        .unwrap()
        .get(0);
    su.batch_execute("ROLLBACK").unwrap();
    assert_eq!(tenant, Some(ACME.parse().unwrap()));

    // A database distributed after the rotation gives Citus the password the workers already
    // have (the old key's, still in the keyring): the cluster's first database still reaches them.
    let later = TestDb::new("pgt_citus_keyring_later");
    for name in ["tenancy_citus", later.name.as_str()] {
        let mut c = nodes.connect(0, name);
        c.batch_execute("BEGIN; SET LOCAL ROLE authenticated")
            .unwrap();
        c.execute(
            "SELECT set_config('request.jwt.claims', $1, true)",
            &[&format!(r#"{{"sub": "{DAVE}", "tenant_id": "{ACME}"}}"#)],
        )
        .unwrap();
        c.batch_execute("SELECT tenancy.pre_request()").unwrap();
        let n: i64 = c
            .query_one("SELECT count(*) FROM tenancy.projects", &[])
            .unwrap_or_else(|e| panic!("{name}: {}", error_text(Err::<(), _>(e))))
            .get(0);
        assert!(n > 0, "{name}");
        c.batch_execute("ROLLBACK").unwrap();
    }
    drop(later);

    // Crypto-shredding globex: its data keys gone from every node's copy, its credentials
    // revoked on its shard and unreadable; acme's untouched.
    let destroyed: i32 = su
        .query_one(
            "SELECT tenancy.shred_tenant($1::uuid)",
            &[&GLOBEX.parse::<uuid::Uuid>().unwrap()],
        )
        .unwrap()
        .get(0);
    assert_eq!(destroyed, 1);
    for n in 0..3 {
        let mut c = nodes.connect(n, &db.name);
        let left: i64 = c
            .query_one(
                "SELECT count(*) FROM tenancy_private.data_keys WHERE tenant_id = $1::uuid",
                &[&GLOBEX.parse::<uuid::Uuid>().unwrap()],
            )
            .unwrap()
            .get(0);
        assert_eq!(left, 0, "globex's data keys on node {n}");
    }
    let status = strings(
        &mut su,
        "SELECT tenant_id::text || ' ' || status FROM tenancy.integration_credentials ORDER BY 1",
    );
    assert_eq!(
        status,
        vec![format!("{ACME} active"), format!("{GLOBEX} revoked")]
    );
    // Each tenant's credential, read by id (a query on the distributed table that called
    // read_credential would be sent whole to the worker: docs/citus.md, Limits).
    let mut read = |tenant: &str| {
        let id: uuid::Uuid = su
            .query_one(
                "SELECT id FROM tenancy.integration_credentials WHERE tenant_id = $1::text::uuid",
                &[&tenant],
            )
            .unwrap()
            .get(0);
        su.batch_execute(&format!("BEGIN; SELECT tenancy.set_tenant('{tenant}')"))
            .unwrap();
        let r = su.query_one("SELECT tenancy.read_credential($1)::text", &[&id]);
        su.batch_execute("ROLLBACK").unwrap();
        r.map(|r| r.get::<_, String>(0))
            .map_err(|e| error_text(Err::<(), _>(e)))
    };
    let globex = read(GLOBEX).unwrap_err();
    assert!(globex.starts_with("55000: data key"), "{globex}");
    assert!(read(ACME).unwrap().contains(&format!("before-{ACME}")));
    drop(su);
    drop(db);
}
