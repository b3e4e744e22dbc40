//! Keyring faults and key rotation across server restarts, on a cluster of the test's own
//! (`$PGT_STATE/keyring-faults`, socket only).
//!
//! One story, in order: credentials are stored under root key k1; the server is restarted without
//! a keyring, with a missing file, with a wrong key under k1, with each kind of malformed keyring,
//! and with a failing keyring command: every time it starts, every vault call fails with SQLSTATE
//! 55000 and the reason, nothing is changed, and no key material reaches the log.  With the right
//! keyring back, everything reads again.  Then k2 becomes the active key, `rotate_root_key`
//! rewraps the data keys in batches, k1 is removed from the keyring, and everything still reads;
//! a tenant rotation runs concurrently with a writer and retires its old key only after the
//! writer's credential is re-encrypted.
use pg_tenancy_client_tests::demo::{ACME, GLOBEX, SLACK_A, SLACK_B};
use pg_tenancy_client_tests::{error_text, random_key, read_all_credentials as read_all, Cluster};
use postgres::Client;

const DB: &str = "postgres";

/// A digest of everything the vault has stored: ciphertexts, wrapped keys, root key records.
fn stored_state(c: &mut Client) -> String {
    c.query_one(
        "SELECT (SELECT md5(string_agg(credential_id::text || encrypted_data::text || coalesce(encrypted_refresh_token::text, '-'), ',' ORDER BY credential_id))
                 FROM tenancy_private.credential_secrets)
             || (SELECT md5(string_agg(tenant_id::text || version || root_key_id || wrapped_key::text, ',' ORDER BY tenant_id, version))
                 FROM tenancy_private.data_keys)
             || (SELECT md5(string_agg(key_id || fingerprint::text, ',' ORDER BY key_id)) FROM tenancy_private.root_keys)",
        &[],
    )
    .unwrap()
    .get(0)
}

fn store(c: &mut Client, tenant: &str, integration: &str, secret: &str) -> String {
    c.batch_execute("BEGIN").unwrap();
    c.batch_execute(&format!("SELECT tenancy.set_tenant('{tenant}')"))
        .unwrap();
    let r = c.query_one(
        "SELECT tenancy.store_credential($1::text::uuid, 'oauth2_tokens', jsonb_build_object('access_token', $2::text), $2)",
        &[&integration, &secret],
    );
    let outcome = error_text(r);
    c.batch_execute(if outcome == "ok" {
        "COMMIT"
    } else {
        "ROLLBACK"
    })
    .unwrap();
    outcome
}

fn usage(c: &mut Client) -> Vec<(String, bool, bool, Option<bool>, i64)> {
    c.query(
        "SELECT key_id, in_keyring, active, matches_record, wrapped_keys FROM tenancy.root_key_usage() ORDER BY key_id",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
    .collect()
}

#[test]
fn keyring_faults_and_root_key_rotation() {
    let cluster = Cluster::init("keyring-faults", 54345);
    let (k1, k2, wrong) = (random_key(), random_key(), random_key());
    let keyring = |contents: &str| {
        let path = cluster.write_file("keyring", contents, 0o600);
        vec![format!("tenancy.keyring_file = '{path}'")]
    };
    let right = || keyring(&format!("# test keyring\nk1 {k1} active\n"));
    cluster.restart(&right());
    let mut c = cluster.connect(DB);
    c.batch_execute("CREATE EXTENSION pg_tenancy; SELECT tenancy.seed_demo();")
        .unwrap();
    for i in 0..3 {
        assert_eq!(
            store(&mut c, ACME, SLACK_A, &format!("acme-secret-{i}")),
            "ok"
        );
        assert_eq!(
            store(&mut c, GLOBEX, SLACK_B, &format!("globex-secret-{i}")),
            "ok"
        );
    }
    let expected = read_all(&mut c).expect("everything reads under the right keyring");
    assert_eq!(expected.len(), 6);
    // An API key: its hash is keyed with the pepper, which the root key wraps.
    c.batch_execute(&format!("BEGIN; SELECT tenancy.set_tenant('{ACME}')"))
        .unwrap();
    let api_key: String = c
        .query_one("SELECT tenancy.create_api_key('keyring test')", &[])
        .unwrap()
        .get(0);
    c.batch_execute("COMMIT").unwrap();
    let verify = |c: &mut Client| {
        error_text(c.query_one(
            "SELECT tenant_id FROM tenancy.verify_api_key($1)",
            &[&api_key],
        ))
    };
    assert_eq!(verify(&mut c), "ok");
    let state = stored_state(&mut c);
    drop(c);

    // Each fault: (what, how the server is configured, the message every vault call must give).
    let missing = cluster.dir.join("no-such-keyring").display().to_string();
    let inside = format!("{}/keyring", cluster.data());
    let file = |contents: String, mode: u32| Setup::File(contents, mode);
    let faults: Vec<(&str, Setup, &str)> = vec![
        (
            "no keyring configured",
            Setup::Settings(vec![]),
            "no keyring is configured",
        ),
        (
            "a keyring file that does not exist",
            Setup::Settings(vec![format!("tenancy.keyring_file = '{missing}'")]),
            "No such file or directory",
        ),
        (
            "a wrong key under the same id",
            file(format!("k1 {wrong} active\n"), 0o600),
            "wrong root key for key id \"k1\"",
        ),
        (
            "a key that is not base64",
            file("k1 this-is-not-base64!! active\n".into(), 0o600),
            "the key is not valid base64",
        ),
        (
            "a short key",
            file(format!("k1 {} active\n", &k1[..24]), 0o600),
            "must be exactly 32 bytes",
        ),
        (
            "no key marked active",
            file(format!("k1 {k1}\n"), 0o600),
            "no key is marked active",
        ),
        ("an empty file", file(String::new(), 0o600), "no root key"),
        (
            "a file others can read",
            file(format!("k1 {k1} active\n"), 0o644),
            "group or others may access it",
        ),
        (
            "a keyring inside the data directory",
            Setup::InsideDataDir(format!("k1 {k1} active\n")),
            "must not be inside the data directory",
        ),
        (
            "a keyring command that fails",
            Setup::Settings(vec!["tenancy.keyring_command = 'exit 3'".into()]),
            "keyring command: exited with",
        ),
        (
            "both a file and a command",
            Setup::Settings(vec![
                format!("tenancy.keyring_file = '{missing}'"),
                "tenancy.keyring_command = 'true'".into(),
            ]),
            "not both",
        ),
    ];
    for (what, setup, message) in faults {
        let settings = match setup {
            Setup::Settings(s) => s,
            Setup::File(contents, mode) => {
                let path = cluster.write_file("keyring", &contents, mode);
                vec![format!("tenancy.keyring_file = '{path}'")]
            }
            Setup::InsideDataDir(contents) => {
                let path = cluster.write_file("data/keyring", &contents, 0o600);
                assert_eq!(path, inside);
                vec![format!("tenancy.keyring_file = '{path}'")]
            }
        };
        cluster.restart(&settings);
        let mut c = cluster.connect(DB);
        let got = read_all(&mut c).expect_err(what);
        assert!(
            got.starts_with("55000: ") && got.contains(message),
            "{what}: reading gives {got:?}, expected 55000 and {message:?}"
        );
        let stored = store(&mut c, ACME, SLACK_A, "secret-during-fault");
        assert!(
            stored.starts_with("55000: ") && stored.contains(message),
            "{what}: storing gives {stored:?}"
        );
        let verified = verify(&mut c);
        assert!(
            verified.starts_with("55000: ") && verified.contains(message),
            "{what}: verifying an API key gives {verified:?} (the hashes are useless without the keyring)"
        );
        let rotated = error_text(c.batch_execute("SELECT tenancy.rotate_root_key()"));
        assert!(
            rotated.starts_with("55000: "),
            "{what}: rotate_root_key gives {rotated:?}"
        );
        // A wrong key is a well-formed keyring: it loads, and is refused at use.
        assert_eq!(
            keyring_loaded(&mut c),
            what == "a wrong key under the same id",
            "{what}: library_info()'s keyring_loaded"
        );
        assert_eq!(
            stored_state(&mut c),
            state,
            "{what}: nothing stored was changed"
        );
        drop(c);
    }
    let _ = std::fs::remove_file(&inside);
    let log = cluster.log();
    for key in [&k1, &k2, &wrong] {
        assert!(
            !log.contains(key.as_str()),
            "key material in the server log"
        );
    }
    assert!(
        log.contains("pg_tenancy: the keyring could not be loaded"),
        "a bad keyring is reported at server start"
    );

    // The right keyring again: everything reads, nothing was lost.
    cluster.restart(&right());
    let mut c = cluster.connect(DB);
    assert_eq!(
        read_all(&mut c).unwrap(),
        expected,
        "the right keyring reads everything again"
    );
    assert_eq!(verify(&mut c), "ok", "and verifies API keys again");

    // The same keyring from a command.
    let file = cluster.write_file("keyring.src", &format!("k1 {k1} active\n"), 0o600);
    drop(c);
    cluster.restart(&[format!("tenancy.keyring_command = 'cat {file}'")]);
    let mut c = cluster.connect(DB);
    assert_eq!(
        read_all(&mut c).unwrap(),
        expected,
        "a keyring command works the same"
    );
    drop(c);

    // Root key rotation: k2 becomes active, k1 stays until the data keys are rewrapped.
    cluster.restart(&keyring(&format!("k1 {k1}\nk2 {k2} active\n")));
    let mut c = cluster.connect(DB);
    assert_eq!(
        read_all(&mut c).unwrap(),
        expected,
        "k1's data keys read while k2 is active"
    );
    let ciphertexts: String = c
        .query_one(
            "SELECT md5(string_agg(encrypted_data::text, ',' ORDER BY credential_id)) FROM tenancy_private.credential_secrets",
            &[],
        )
        .unwrap()
        .get(0);
    let (rewrapped, remaining): (i64, i64) = {
        let r = c
            .query_one(
                "SELECT rewrapped, remaining FROM tenancy.rotate_root_key(1)",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(
        (rewrapped, remaining),
        (2, 1),
        "a batch of one data key (and the pepper): one data key left"
    );
    assert_eq!(
        usage(&mut c),
        vec![
            ("k1".into(), true, false, Some(true), 1),
            ("k2".into(), true, true, Some(true), 2)
        ],
        "root_key_usage mid-rotation"
    );
    let r = c
        .query_one(
            "SELECT rewrapped, remaining FROM tenancy.rotate_root_key()",
            &[],
        )
        .unwrap();
    assert_eq!((r.get::<_, i64>(0), r.get::<_, i64>(1)), (1, 0), "the rest");
    let r = c
        .query_one(
            "SELECT rewrapped, remaining FROM tenancy.rotate_root_key()",
            &[],
        )
        .unwrap();
    assert_eq!(
        (r.get::<_, i64>(0), r.get::<_, i64>(1)),
        (0, 0),
        "nothing left"
    );
    let after: String = c
        .query_one(
            "SELECT md5(string_agg(encrypted_data::text, ',' ORDER BY credential_id)) FROM tenancy_private.credential_secrets",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        after, ciphertexts,
        "rewrapping does not touch the credential rows"
    );
    drop(c);

    // k1 removed from the keyring: everything still reads.
    cluster.restart(&keyring(&format!("k2 {k2} active\n")));
    let mut c = cluster.connect(DB);
    assert_eq!(
        read_all(&mut c).unwrap(),
        expected,
        "after rotation, the old root key is not needed"
    );
    assert_eq!(
        verify(&mut c),
        "ok",
        "API keys verify under the rewrapped pepper"
    );
    assert_eq!(
        usage(&mut c),
        vec![
            ("k1".into(), false, false, None, 0),
            ("k2".into(), true, true, Some(true), 3)
        ],
        "k1 is out of the keyring and wraps nothing"
    );
    assert_eq!(store(&mut c, ACME, SLACK_A, "after-rotation"), "ok");

    // A tenant rotation waits for an uncommitted writer, then re-encrypts its credential too
    // before retiring the old version.
    let mut writer = cluster.connect(DB);
    writer
        .batch_execute(&format!("BEGIN; SELECT tenancy.set_tenant('{ACME}')"))
        .unwrap();
    let pending: uuid::Uuid = writer
        .query_one(
            "SELECT tenancy.store_credential($1::text::uuid, 'bearer', '{\"t\": \"pending\"}')",
            &[&SLACK_A],
        )
        .unwrap()
        .get(0);
    let path = cluster.dir.clone();
    let port = cluster.port;
    let rotation = std::thread::spawn(move || {
        let mut r = postgres::Client::connect(
            &format!(
                "host={} port={port} user=postgres dbname={DB}",
                path.display()
            ),
            postgres::NoTls,
        )
        .unwrap();
        let row = r
            .query_one(
                &format!("SELECT key_version, remaining, retired_versions FROM tenancy.rotate_tenant_key('{ACME}')"),
                &[],
            )
            .unwrap();
        (
            row.get::<_, Option<i32>>(0),
            row.get::<_, i64>(1),
            row.get::<_, i64>(2),
        )
    });
    let mut waited = false;
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let waiting: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 29808 AND NOT granted",
                &[],
            )
            .unwrap()
            .get(0);
        if waiting == 1 {
            waited = true;
            break;
        }
    }
    assert!(waited, "the rotation waits for the writer's key lock");
    writer.batch_execute("COMMIT").unwrap();
    let (version, remaining, retired) = rotation.join().unwrap();
    assert_eq!(
        (version, remaining, retired),
        (Some(2), 0, 1),
        "the rotation finished and retired version 1"
    );
    writer
        .batch_execute(&format!("BEGIN; SELECT tenancy.set_tenant('{ACME}')"))
        .unwrap();
    let t: String = writer
        .query_one(
            "SELECT tenancy.read_credential($1) -> 'data' ->> 't'",
            &[&pending],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        t, "pending",
        "the writer's credential was re-encrypted, not lost"
    );
    writer.batch_execute("COMMIT").unwrap();
    let now = read_all(&mut c).unwrap();
    for e in &expected {
        assert!(
            now.contains(e),
            "every original credential still reads after the tenant rotation"
        );
    }

    // Rotation refuses a snapshot older than its lock.
    c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .unwrap();
    let rr = error_text(c.batch_execute(&format!("SELECT tenancy.rotate_tenant_key('{ACME}')")));
    assert!(rr.starts_with("0A000: "), "REPEATABLE READ: {rr}");
    c.batch_execute("ROLLBACK").unwrap();

    // A crash right after rotation: the committed rotation survives.
    cluster.crash();
    cluster.restart(&keyring(&format!("k2 {k2} active\n")));
    let mut c = cluster.connect(DB);
    let again = read_all(&mut c).unwrap();
    assert_eq!(again, now, "after a crash, everything committed reads");
}

/// How a fault is set up: settings as they are, or a keyring file written just before the start.
enum Setup {
    Settings(Vec<String>),
    File(String, u32),
    InsideDataDir(String),
}

/// Whether `tenancy.library_info()` says a keyring is loaded.
fn keyring_loaded(c: &mut Client) -> bool {
    c.query_one(
        "SELECT (tenancy.library_info() ->> 'keyring_loaded')::boolean",
        &[],
    )
    .unwrap()
    .get::<_, Option<bool>>(0)
    .unwrap_or(false)
}
