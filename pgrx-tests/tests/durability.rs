//! A crash during concurrent writes loses no committed row.  On a cluster of the test's own
//! (`$PGT_STATE/crash`, socket only), four writers commit in a loop (request logs through an API
//! key, credentials through the vault, clients under RLS, and a mix in one transaction) and record
//! every commit the server acknowledged; the server is killed with `pg_ctl stop -m immediate` while
//! they write (no checkpoint, no shutdown: crash recovery replays the WAL at the next start).
//! After the restart every acknowledged row is there and every acknowledged credential decrypts.
//!
//! The cluster runs with `fsync = off` like every test cluster: this is a crash of PostgreSQL's
//! processes, not of the machine (the WAL they wrote is in the OS page cache either way).
use pg_tenancy_client_tests::demo::{ACME, SLACK_A};
use pg_tenancy_client_tests::{random_key, Cluster};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What a writer saw acknowledged: (kind, id).
type Acked = Vec<(&'static str, uuid::Uuid)>;

fn writer(cluster: &Cluster, kind: &'static str, key: &str, stop: &AtomicBool) -> Acked {
    let mut c = cluster.connect("postgres");
    let mut acked = Vec::new();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let result: Result<Vec<(&'static str, uuid::Uuid)>, postgres::Error> = (|| {
            let mut tx = c.transaction()?;
            let mut ids = Vec::new();
            match kind {
                "log" => {
                    tx.execute("SELECT tenancy.authenticate($1)", &[&key])?;
                    let id: uuid::Uuid = tx
                        .query_one(
                            "SELECT tenancy.log_request(a.integration_id, a.id, jsonb_build_object('i', $1::bigint, 'token', 'secret'))
                               FROM tenancy.actions a WHERE a.tenant_id = tenancy.current_tenant_id() ORDER BY a.id LIMIT 1",
                            &[&(i as i64)],
                        )?
                        .get(0);
                    ids.push(("log", id));
                }
                "credential" => {
                    tx.execute("SELECT tenancy.set_tenant($1::text::uuid)", &[&ACME])?;
                    let id: uuid::Uuid = tx
                        .query_one(
                            "SELECT tenancy.store_credential($1::text::uuid, 'api_key', jsonb_build_object('api_key', 'k-' || $2::text), NULL)",
                            &[&SLACK_A, &i.to_string()],
                        )?
                        .get(0);
                    ids.push(("credential", id));
                }
                "client" => {
                    tx.execute("SELECT tenancy.set_tenant($1::text::uuid)", &[&ACME])?;
                    let id: uuid::Uuid = tx
                        .query_one(
                            "INSERT INTO tenancy.clients (tenant_id, name) VALUES ($1::text::uuid, 'c' || $2::text) RETURNING id",
                            &[&ACME, &i.to_string()],
                        )?
                        .get(0);
                    ids.push(("client", id));
                }
                _ => {
                    // Several tables in one transaction: all or nothing.
                    tx.execute("SELECT tenancy.set_tenant($1::text::uuid)", &[&ACME])?;
                    let client: uuid::Uuid = tx
                        .query_one(
                            "INSERT INTO tenancy.clients (tenant_id, name) VALUES ($1::text::uuid, 'mix') RETURNING id",
                            &[&ACME],
                        )?
                        .get(0);
                    let project: uuid::Uuid = tx
                        .query_one(
                            "INSERT INTO tenancy.projects (tenant_id, client_id, name) VALUES ($1::text::uuid, $2, 'mix') RETURNING id",
                            &[&ACME, &client],
                        )?
                        .get(0);
                    ids.push(("client", client));
                    ids.push(("project", project));
                }
            }
            tx.commit()?;
            Ok(ids)
        })();
        match result {
            Ok(ids) => acked.extend(ids),
            // The crash: the connection is gone; what was not acknowledged may or may not be there.
            Err(_) => break,
        }
    }
    acked
}

#[test]
fn a_crash_during_concurrent_writes_loses_no_committed_row() {
    let cluster = Cluster::init("crash", 54347);
    let path = cluster.write_file("keyring", &format!("k1 {} active\n", random_key()), 0o600);
    let settings = [format!("tenancy.keyring_file = '{path}'")];
    cluster.restart(&settings);
    let key: String = {
        let mut c = cluster.connect("postgres");
        c.batch_execute("CREATE EXTENSION pg_tenancy; SELECT tenancy.seed_demo(); SELECT tenancy.maintain_request_logs();")
            .unwrap();
        c.batch_execute(&format!("BEGIN; SELECT tenancy.set_tenant('{ACME}')"))
            .unwrap();
        let key = c
            .query_one("SELECT tenancy.create_api_key('crash')", &[])
            .unwrap()
            .get(0);
        c.batch_execute("COMMIT").unwrap();
        key
    };
    let stop = AtomicBool::new(false);
    let acked: Acked = std::thread::scope(|s| {
        let handles: Vec<_> = ["log", "credential", "client", "mix"]
            .into_iter()
            .map(|kind| {
                let (cluster, key, stop) = (&cluster, key.as_str(), &stop);
                s.spawn(move || writer(cluster, kind, key, stop))
            })
            .collect();
        std::thread::sleep(Duration::from_secs(3));
        cluster.crash();
        stop.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    for kind in ["log", "credential", "client", "project"] {
        assert!(
            acked.iter().filter(|(k, _)| *k == kind).count() >= 5,
            "writers committed some {kind} rows before the crash: {}",
            acked.len()
        );
    }

    cluster.restart(&settings);
    assert!(
        cluster.log().contains("database system was interrupted")
            || cluster.log().contains("was not properly shut down"),
        "the restart went through crash recovery"
    );
    let mut c = cluster.connect("postgres");
    for (kind, table) in [
        ("log", "tenancy.request_logs"),
        ("credential", "tenancy.integration_credentials"),
        ("client", "tenancy.clients"),
        ("project", "tenancy.projects"),
    ] {
        let ids: Vec<uuid::Uuid> = acked
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, id)| *id)
            .collect();
        let found: i64 = c
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE id = ANY($1)"),
                &[&ids],
            )
            .unwrap()
            .get(0);
        assert_eq!(
            found as usize,
            ids.len(),
            "{table}: every acknowledged row survived the crash"
        );
    }
    // Every acknowledged credential decrypts.
    c.batch_execute(&format!("BEGIN; SELECT tenancy.set_tenant('{ACME}')"))
        .unwrap();
    for (_, id) in acked.iter().filter(|(k, _)| *k == "credential") {
        let text: String = c
            .query_one("SELECT tenancy.read_credential($1)::text", &[id])
            .unwrap()
            .get(0);
        assert!(text.contains("\"k-"), "{text}");
    }
    c.batch_execute("ROLLBACK").unwrap();
    println!(
        "crash during writes: {} acknowledged rows, all present after recovery",
        acked.len()
    );
}
