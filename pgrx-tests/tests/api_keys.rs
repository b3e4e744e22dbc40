//! API keys over real connections: revocation racing verification, last use recorded at most once
//! a minute and never in a read-only transaction or by waiting, and PgBouncer in transaction
//! pooling mode with one shared server connection.
use pg_tenancy_client_tests::demo::{ACME, GLOBEX};
use pg_tenancy_client_tests::{login_role, new_api_key, simple_value, sqlstate, Bouncer, TestDb};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// After `revoke_api_key` commits, no verification succeeds: neither in a new transaction nor in
/// one that was already open (every verification reads pending invalidations first).
#[test]
fn no_verification_succeeds_after_the_revocation_commits() {
    let db = TestDb::new("pgt_client_revoke");
    let key = new_api_key(&db, ACME, "raced");
    for in_open_transaction in [false, true] {
        let key = if in_open_transaction {
            new_api_key(&db, ACME, "raced in a transaction")
        } else {
            key.clone()
        };
        let committed = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let mut verifier = db.connect("postgres");
        let (k, c, s) = (key.clone(), committed.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            if in_open_transaction {
                verifier.batch_execute("BEGIN").unwrap();
            }
            let (mut ok_before, mut ok_after, mut refused_after) = (0, 0, 0);
            loop {
                let after = c.load(Ordering::SeqCst);
                let r = verifier.query_one("SELECT key_id FROM tenancy.verify_api_key($1)", &[&k]);
                match (after, r.is_ok()) {
                    (false, true) => ok_before += 1,
                    (true, true) => ok_after += 1,
                    (true, false) => refused_after += 1,
                    (false, false) => {}
                }
                if in_open_transaction && r.is_err() {
                    verifier.batch_execute("ROLLBACK; BEGIN").unwrap();
                }
                if s.load(Ordering::SeqCst) {
                    break;
                }
            }
            (ok_before, ok_after, refused_after)
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        let mut admin = db.connect("postgres");
        // A revocation must not wait for verifying transactions (a regression fails, not hangs).
        admin
            .batch_execute("SET statement_timeout = '10s'")
            .unwrap();
        let mut t = admin.transaction().unwrap();
        t.execute(&format!("SELECT tenancy.set_tenant('{ACME}')"), &[])
            .unwrap();
        t.execute(
            "SELECT tenancy.revoke_api_key(key_id) FROM tenancy.verify_api_key($1)",
            &[&key],
        )
        .unwrap();
        t.commit().unwrap();
        committed.store(true, Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(300));
        stop.store(true, Ordering::SeqCst);
        let (ok_before, ok_after, refused_after) = handle.join().unwrap();
        assert!(
            ok_before > 10,
            "the key verified before the revocation ({ok_before})"
        );
        assert_eq!(
            ok_after, 0,
            "verifications after the revocation committed (open transaction: {in_open_transaction})"
        );
        assert!(
            refused_after > 10,
            "and they were refused ({refused_after})"
        );
    }
}

fn last_used(db: &TestDb) -> Option<std::time::SystemTime> {
    db.connect("postgres")
        .query_opt(
            "SELECT last_used_at FROM tenancy_private.api_key_usage",
            &[],
        )
        .unwrap()
        .map(|r| r.get(0))
}

/// last_used_at: written on first use, not again within a minute (even from other backends), again
/// after a minute; never in a read-only transaction; never by waiting for another writer.
#[test]
fn last_use_is_recorded_at_most_once_a_minute_without_waiting() {
    let db = TestDb::new("pgt_client_last_used");
    let key = new_api_key(&db, GLOBEX, "usage");
    let verify = |before: &[&str]| {
        let mut c = db.connect("postgres");
        for sql in before {
            c.batch_execute(sql).unwrap();
        }
        let r = sqlstate(c.query_one("SELECT tenancy.verify_api_key($1)", &[&key]));
        let _ = c.batch_execute("COMMIT");
        r
    };
    assert_eq!(last_used(&db), None, "a new key was never used");
    assert_eq!(
        verify(&["BEGIN READ ONLY"]),
        "ok",
        "a read-only transaction verifies"
    );
    assert_eq!(last_used(&db), None, "without writing");
    assert_eq!(
        verify(&["SET default_transaction_read_only = on", "BEGIN"]),
        "ok",
        "so does a read-only session"
    );
    assert_eq!(last_used(&db), None, "without writing");
    assert_eq!(verify(&["BEGIN"]), "ok");
    let first = last_used(&db).expect("the first read-write use is recorded");
    for _ in 0..3 {
        assert_eq!(verify(&["BEGIN"]), "ok");
    }
    assert_eq!(
        last_used(&db),
        Some(first),
        "not again within the minute, from any backend"
    );
    db.connect("postgres")
        .batch_execute(
            "UPDATE tenancy_private.api_key_usage SET last_used_at = last_used_at - interval '2 minutes'",
        )
        .unwrap();
    assert_eq!(verify(&["BEGIN"]), "ok");
    assert!(last_used(&db).unwrap() > first, "again after a minute");

    // Another backend is recording this key's use and has not committed: a verification neither
    // waits for it nor fails.
    db.connect("postgres")
        .batch_execute(
            "UPDATE tenancy_private.api_key_usage SET last_used_at = last_used_at - interval '2 minutes'",
        )
        .unwrap();
    let mut holder = db.connect("postgres");
    holder.batch_execute("BEGIN").unwrap();
    holder
        .query_one("SELECT tenancy.verify_api_key($1)", &[&key])
        .unwrap();
    let started = std::time::Instant::now();
    assert_eq!(
        verify(&["SET statement_timeout = '5s'", "BEGIN"]),
        "ok",
        "verification while another transaction records the use"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "it did not wait for the other writer"
    );
    holder.batch_execute("ROLLBACK").unwrap();
}

/// Two applications of different tenants behind PgBouncer (transaction pooling, one shared server
/// connection), alternating transactions that authenticate with their key: each sees only its own
/// tenant, and nothing of a context survives its transaction on the shared backend.
#[test]
fn pgbouncer_transaction_pooling_never_leaks_a_context() {
    let db = TestDb::new("pgt_client_bouncer");
    login_role("pgt_bouncer_app", "", &["authenticated"]);
    let acme_key = new_api_key(&db, ACME, "bouncer");
    let globex_key = new_api_key(&db, GLOBEX, "bouncer");
    let bouncer = Bouncer::start(&db.name, 54355);
    let mut clients = [
        (bouncer.connect(&db.name, "pgt_bouncer_app"), ACME, acme_key),
        (
            bouncer.connect(&db.name, "pgt_bouncer_app"),
            GLOBEX,
            globex_key,
        ),
    ];
    let mut backends = std::collections::HashSet::new();
    for round in 0..100 {
        for (client, tenant, key) in clients.iter_mut() {
            // Outside a transaction: no context, whoever used the backend before.
            assert_eq!(
                simple_value(client, "SELECT tenancy.current_tenant_id()").unwrap(),
                None,
                "round {round}: a context outlived its transaction"
            );
            client.batch_execute("BEGIN").unwrap();
            let got =
                simple_value(client, &format!("SELECT tenancy.authenticate('{key}')")).unwrap();
            assert_eq!(got.as_deref(), Some(*tenant));
            let other: Option<String> = simple_value(
                client,
                "SELECT count(*) FROM tenancy.projects WHERE tenant_id <> tenancy.current_tenant_id()",
            )
            .unwrap();
            assert_eq!(
                other.as_deref(),
                Some("0"),
                "round {round}: another tenant's rows"
            );
            let mine = simple_value(client, "SELECT count(*) FROM tenancy.projects").unwrap();
            assert_ne!(mine.as_deref(), Some("0"), "its own rows are visible");
            backends.insert(simple_value(client, "SELECT pg_backend_pid()").unwrap());
            if round % 2 == 0 {
                client.batch_execute("COMMIT").unwrap();
            } else {
                client.batch_execute("ROLLBACK").unwrap();
            }
        }
    }
    assert_eq!(
        backends.len(),
        1,
        "both clients shared one server connection"
    );
    drop(clients);
    drop(bouncer);
}
