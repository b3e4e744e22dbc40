//! A major-version upgrade by dump and restore: a cluster of the older major
//! (`$PGT_FROM_BINDIR`) with pg_tenancy, demo data, credentials, an API key and request logs is
//! dumped with the newer major's `pg_dump` (as PostgreSQL advises) and restored into a cluster of
//! the newer major (`$PGT_TO_BINDIR`) that has the same root keyring.  Every row of every table is
//! there, byte for byte; every credential decrypts to what it was; the API key verifies; and the
//! restored database works: new logs, new credentials, isolation.
//!
//! `scripts/test.sh` runs it for 15 -> 16 and 17 -> 18.
use pg_tenancy_client_tests::demo::{ACME, DAVE, GLOBEX, SLACK_A, SLACK_B};
use pg_tenancy_client_tests::{random_key, read_all_credentials, table_digests, Cluster};
use postgres::Client;

fn in_tenant<T>(c: &mut Client, tenant: &str, f: impl FnOnce(&mut Client) -> T) -> T {
    c.batch_execute("BEGIN").unwrap();
    c.execute("SELECT tenancy.set_tenant($1::text::uuid)", &[&tenant])
        .unwrap();
    let out = f(c);
    c.batch_execute("COMMIT").unwrap();
    out
}

fn store(c: &mut Client, tenant: &str, integration: &str, secret: &str) -> uuid::Uuid {
    in_tenant(c, tenant, |c| {
        c.query_one(
            "SELECT tenancy.store_credential($1::text::uuid, 'oauth2_tokens',
                    jsonb_build_object('access_token', $2::text, 'n', 12345678901234567890.5), $2)",
            &[&integration, &secret],
        )
        .unwrap()
        .get(0)
    })
}

/// Verify `key` and log one request under it (tenant and key from the context): the log's id.
fn log_with_key(c: &mut Client, key: &str, path: &str) -> uuid::Uuid {
    c.batch_execute("BEGIN").unwrap();
    c.execute("SELECT tenancy.authenticate($1)", &[&key])
        .unwrap();
    let id = c
        .query_one(
            "SELECT tenancy.log_request(i.id, a.id, jsonb_build_object('path', $1::text, 'authorization', 'Bearer secret-token'))
               FROM tenancy.integrations i JOIN tenancy.actions a ON a.tenant_id = i.tenant_id AND a.integration_id = i.id
              WHERE i.tenant_id = tenancy.current_tenant_id()
              ORDER BY i.id, a.id LIMIT 1",
            &[&path],
        )
        .unwrap()
        .get(0);
    c.batch_execute("COMMIT").unwrap();
    id
}

fn server_major(c: &mut Client) -> i32 {
    c.query_one(
        "SELECT current_setting('server_version_num')::int / 10000",
        &[],
    )
    .unwrap()
    .get(0)
}

#[test]
fn dump_of_one_major_restores_into_the_next() {
    let (Ok(from), Ok(to)) = (
        std::env::var("PGT_FROM_BINDIR"),
        std::env::var("PGT_TO_BINDIR"),
    ) else {
        panic!("set PGT_FROM_BINDIR and PGT_TO_BINDIR (scripts/test.sh does)");
    };
    let keyring = format!("k1 {} active\n", random_key());

    let old = Cluster::init_with("major-from", 54365, &from);
    let path = old.write_file("keyring", &keyring, 0o600);
    old.restart(&[format!("tenancy.keyring_file = '{path}'")]);
    old.connect("postgres")
        .batch_execute("CREATE DATABASE app")
        .unwrap();
    let mut o = old.connect("app");
    o.batch_execute("CREATE EXTENSION pg_tenancy; SELECT tenancy.seed_demo();")
        .unwrap();
    for i in 0..3 {
        store(&mut o, ACME, SLACK_A, &format!("acme-secret-{i}"));
        store(&mut o, GLOBEX, SLACK_B, &format!("globex-secret-{i}"));
    }
    let api_key: String = in_tenant(&mut o, ACME, |c| {
        c.query_one(
            "SELECT tenancy.create_api_key('upgrade test', ARRAY['logs:write'])",
            &[],
        )
        .unwrap()
        .get(0)
    });
    for i in 0..5 {
        log_with_key(&mut o, &api_key, &format!("/before/{i}"));
    }
    // Daily partitions (not members of the extension) and a row left in the default partition
    // (a member, dumped as configuration data).
    o.batch_execute(&format!(
        "SELECT tenancy.maintain_request_logs();
         INSERT INTO tenancy.request_logs (tenant_id, integration_id, action_id, request_summary, created_at)
         SELECT tenant_id, integration_id, id, '{{\"late\": true}}', now() + interval '1 year'
           FROM tenancy.actions WHERE tenant_id = '{ACME}' ORDER BY id LIMIT 1;"
    ))
    .unwrap();
    let digests = table_digests(&mut o);
    let credentials = read_all_credentials(&mut o).expect("credentials read on the old major");
    assert!(credentials.len() >= 6, "{credentials:?}");
    let old_major = server_major(&mut o);
    drop(o);

    // Dump with the newer pg_dump, restore into a fresh cluster of the newer major.
    let new = Cluster::init_with("major-to", 54366, &to);
    let path = new.write_file("keyring", &keyring, 0o600);
    new.restart(&[format!("tenancy.keyring_file = '{path}'")]);
    new.connect("postgres")
        .batch_execute("CREATE DATABASE app")
        .unwrap();
    let dump = new.dir.join("app.pgdump").to_string_lossy().into_owned();
    let out = old.tool(&to, "pg_dump", &["-Fc", "-f", &dump, "app"]);
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = new.tool(&to, "pg_restore", &["--exit-on-error", "-d", "app", &dump]);
    assert!(
        out.status.success(),
        "pg_restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut n = new.connect("app");
    let new_major = server_major(&mut n);
    assert_eq!(new_major, old_major + 1, "restored into the next major");
    assert_eq!(
        table_digests(&mut n),
        digests,
        "every row of every table, byte for byte"
    );
    assert_eq!(
        read_all_credentials(&mut n).expect("credentials read on the new major"),
        credentials,
        "every credential decrypts to what it was"
    );

    // The restored database works: the API key verifies and logs, new credentials store and read,
    // and isolation holds for a member.
    let logged = log_with_key(&mut n, &api_key, "/after");
    let (tenant, path): (uuid::Uuid, String) = in_tenant(&mut n, ACME, |c| {
        let r = c
            .query_one(
                "SELECT tenant_id, request_summary ->> 'path' FROM tenancy.request_logs WHERE id = $1",
                &[&logged],
            )
            .unwrap();
        (r.get(0), r.get(1))
    });
    assert_eq!((tenant.to_string(), path.as_str()), (ACME.into(), "/after"));
    let id = store(&mut n, ACME, SLACK_A, "stored-after-upgrade");
    let text: String = in_tenant(&mut n, ACME, |c| {
        c.query_one("SELECT tenancy.read_credential($1)::text", &[&id])
            .unwrap()
            .get(0)
    });
    assert!(text.contains("stored-after-upgrade"), "{text}");
    n.batch_execute(&format!(
        "BEGIN; SELECT tenancy.set_tenant('{ACME}', '{DAVE}'); SET LOCAL ROLE authenticated;"
    ))
    .unwrap();
    let foreign: i64 = n
        .query_one(
            "SELECT count(*) FROM tenancy.integrations WHERE tenant_id <> $1::text::uuid",
            &[&ACME],
        )
        .unwrap()
        .get(0);
    n.batch_execute("ROLLBACK").unwrap();
    assert_eq!(
        foreign, 0,
        "a member sees no other tenant's rows after the restore"
    );
}
