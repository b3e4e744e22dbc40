//! Extension upgrades, the release process's test.
//!
//! * `update_from_every_release_matches_a_fresh_install`: install each released version (its
//!   frozen script is in `sql/released/`), fill it with data (demo data, credentials, an API key,
//!   request logs in daily partitions), `ALTER EXTENSION pg_tenancy UPDATE`, and compare the
//!   catalog with a fresh install of the current version: every member object, function
//!   definition, column, constraint, index, policy, trigger, privilege, RLS flag, comment, enum
//!   label and dumped-table registration, line by line.  Every row is still there, every
//!   credential decrypts, the API key verifies, and new partitions get what maintenance gives them.
//! * `released_scripts_are_never_edited`: `sql/released.sha256` pins every released install script
//!   and every upgrade script into a released version.
use pg_tenancy_client_tests::demo::{ACME, SLACK_A};
use pg_tenancy_client_tests::{
    column_digests, connect, login_role, read_all_credentials, table_columns, TestDb,
};
use postgres::Client;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every version with a frozen install script in sql/released/, oldest first.
fn released_versions() -> Vec<String> {
    let mut versions: Vec<String> = std::fs::read_dir(repo().join("sql/released"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_prefix("pg_tenancy--")?
                .strip_suffix(".sql")
                .map(str::to_string)
        })
        .collect();
    versions.sort_by_key(|v| version_key(v));
    versions
}

fn version_key(v: &str) -> Vec<u32> {
    v.split('.').map(|p| p.parse().unwrap()).collect()
}

/// The extension's shape, as sorted lines of text: what must be identical between an updated and
/// a fresh install.  OIDs never appear; daily request-log partitions (not members) are left out.
const CATALOG: &str = r#"
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'pg_tenancy'),
members AS (
    SELECT d.classid, d.objid FROM pg_depend d, ext
     WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'),
rels AS (SELECT objid AS oid FROM members WHERE classid = 'pg_class'::regclass),
lines AS (
    SELECT 'member ' || o.type || ' ' || o.identity AS line
      FROM members m, LATERAL pg_identify_object(m.classid, m.objid, 0) o
    UNION ALL
    SELECT 'function ' || p.oid::regprocedure || E'\n' || pg_get_functiondef(p.oid)
           || E'\nacl ' || coalesce(p.proacl, acldefault('f', p.proowner))::text || ' owner-is-super ' || r.rolsuper
      FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
      JOIN pg_roles r ON r.oid = p.proowner
     WHERE p.prokind IN ('f', 'p')
    UNION ALL
    SELECT 'relation ' || c.oid::regclass || ' kind ' || c.relkind::text || ' rls ' || c.relrowsecurity
           || ' force ' || c.relforcerowsecurity || ' acl ' || coalesce(c.relacl, acldefault('r', c.relowner))::text
           || ' options ' || coalesce(c.reloptions::text, '-')
           || ' partition ' || coalesce(pg_get_expr(c.relpartbound, c.oid), '-')
           || ' comment ' || coalesce(obj_description(c.oid, 'pg_class'), '-')
      FROM pg_class c JOIN rels ON rels.oid = c.oid
    UNION ALL
    -- The column's position among the live ones (a dropped column leaves a gap in attnum).
    SELECT 'column ' || a.attrelid::regclass || '.' || a.attname || ' #'
           || row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum) || ' '
           || format_type(a.atttypid, a.atttypmod) || ' notnull ' || a.attnotnull
           || ' default ' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '-')
           || ' identity ' || a.attidentity::text || ' generated ' || a.attgenerated::text
           || ' acl ' || coalesce(a.attacl::text, '-')
      FROM pg_attribute a JOIN rels ON rels.oid = a.attrelid
      LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
     WHERE a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
      FROM pg_constraint WHERE conrelid IN (SELECT oid FROM rels)
    UNION ALL
    SELECT 'constraint domain ' || contypid::regtype || ' ' || conname || ' ' || pg_get_constraintdef(oid)
      FROM pg_constraint WHERE contypid IN (SELECT objid FROM members WHERE classid = 'pg_type'::regclass)
    UNION ALL
    SELECT 'index ' || pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid IN (SELECT oid FROM rels)
    UNION ALL
    SELECT 'policy ' || schemaname || '.' || tablename || ' ' || policyname || ' ' || permissive || ' '
           || roles::text || ' ' || cmd || ' using ' || coalesce(qual, '-') || ' check ' || coalesce(with_check, '-')
      FROM pg_policies WHERE (schemaname || '.' || tablename)::regclass IN (SELECT oid FROM rels)
    UNION ALL
    SELECT 'trigger ' || pg_get_triggerdef(t.oid) || ' enabled ' || t.tgenabled::text
      FROM pg_trigger t WHERE NOT t.tgisinternal AND t.tgrelid IN (SELECT oid FROM rels)
    UNION ALL
    SELECT 'enum ' || enumtypid::regtype || ' ' || string_agg(enumlabel, ',' ORDER BY enumsortorder)
      FROM pg_enum WHERE enumtypid IN (SELECT objid FROM members WHERE classid = 'pg_type'::regclass)
     GROUP BY enumtypid
    UNION ALL
    SELECT 'config ' || c.oid::regclass || ' where ' || coalesce(e.extcondition[i.n], '-')
      FROM pg_extension e, generate_subscripts(e.extconfig, 1) i(n), pg_class c
     WHERE e.extname = 'pg_tenancy' AND c.oid = e.extconfig[i.n]
    UNION ALL
    SELECT 'schema ' || nspname || ' acl ' || coalesce(nspacl, acldefault('n', nspowner))::text || ' comment '
           || coalesce(obj_description(oid, 'pg_namespace'), '-')
      FROM pg_namespace WHERE nspname IN ('tenancy', 'tenancy_private')
    UNION ALL
    SELECT 'comment ' || o.type || ' ' || o.identity || ' ' || d.description
      FROM pg_description d JOIN members m ON m.classid = d.classoid AND m.objid = d.objoid,
           LATERAL pg_identify_object(d.classoid, d.objoid, d.objsubid) o
)
SELECT line FROM lines ORDER BY line
"#;

/// Where 0.3.0 keeps what older versions had in a table of `tenancy`: the table it moved to
/// (internal tables, request_logs' partitions), or a query giving the old table's columns back
/// (API-key hashes and credentials' ciphertexts moved out of their rows into tables of
/// `tenancy_private`).
fn moved_since_0_3(table: &str) -> Option<String> {
    // request_logs' partitions, the default one and the daily ones.
    if let Some(partition) = table.strip_prefix("tenancy.request_logs_") {
        return Some(format!("tenancy_private.request_logs_{partition}"));
    }
    Some(match table {
        "tenancy.root_keys" => "tenancy_private.root_keys",
        "tenancy.data_keys" => "tenancy_private.data_keys",
        "tenancy.peppers" => "tenancy_private.peppers",
        "tenancy.api_key_usage" => "tenancy_private.api_key_usage",
        "tenancy.api_keys" => {
            "(SELECT k.*, h.key_hash FROM tenancy.api_keys k
                JOIN tenancy_private.api_key_hashes h ON (h.tenant_id, h.key_id) = (k.tenant_id, k.id)) moved"
        }
        "tenancy.integration_credentials" => {
            "(SELECT c.*, s.encrypted_data, s.encrypted_refresh_token FROM tenancy.integration_credentials c
                JOIN tenancy_private.credential_secrets s ON (s.tenant_id, s.credential_id) = (c.tenant_id, c.id)) moved"
        }
        _ => return None,
    }
    .to_string())
}

fn catalog(c: &mut Client) -> BTreeSet<String> {
    c.query(CATALOG, &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn in_tenant<T>(c: &mut Client, f: impl FnOnce(&mut Client) -> T) -> T {
    c.batch_execute(&format!("BEGIN; SELECT tenancy.set_tenant('{ACME}')"))
        .unwrap();
    let out = f(c);
    c.batch_execute("COMMIT").unwrap();
    out
}

/// Data of every kind, written through the given version's functions.
const BAD_ACTION: &str = "a1000009-0000-4000-8000-0000000009ff";

/// Every field mapping: id, source, target, transform config ("" when none).
fn field_mappings(c: &mut Client) -> Vec<(String, String, String, String)> {
    c.query(
        "SELECT id::text, source_path, target_path, coalesce(transform_config::text, '')
           FROM tenancy.field_mappings ORDER BY id",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

/// What the vault and API keys hold, as `(old table, query in the current layout)`: the rows are
/// made by the current library in a fresh database and copied, bytes and all, into the old
/// version's tables.  The library of this build works on the current layout only (0.3.0 moved
/// these rows into tenancy_private), and the stored formats are the same in every version
/// (ciphertext format 1, the key hash, the wrapping of data keys and pepper: pinned by the vault's
/// and API keys' unit tests), so these are the bytes the old version would have written.  The
/// associated data binds tenant, row and column, not the database: copied rows with the same ids
/// decrypt in the cluster that holds the root keyring.
const VAULT_ROWS: [(&str, &str); 6] = [
    ("tenancy.root_keys", "SELECT * FROM tenancy_private.root_keys"),
    ("tenancy.data_keys", "SELECT * FROM tenancy_private.data_keys"),
    ("tenancy.peppers", "SELECT * FROM tenancy_private.peppers"),
    (
        "tenancy.integration_credentials",
        "SELECT c.*, s.encrypted_data, s.encrypted_refresh_token FROM tenancy.integration_credentials c
           JOIN tenancy_private.credential_secrets s ON (s.tenant_id, s.credential_id) = (c.tenant_id, c.id)",
    ),
    (
        "tenancy.api_keys",
        "SELECT k.*, h.key_hash FROM tenancy.api_keys k
           JOIN tenancy_private.api_key_hashes h ON (h.tenant_id, h.key_id) = (k.tenant_id, k.id)",
    ),
    ("tenancy.api_key_usage", "SELECT * FROM tenancy_private.api_key_usage"),
];

/// Data of every kind in the old version's database `c`: its own demo data (seed_demo), request
/// logs in daily partitions, and credentials and an API key made in `source` (see VAULT_ROWS).
/// Returns the key.
fn fill(c: &mut Client, source: &TestDb) -> String {
    c.batch_execute("SELECT tenancy.seed_demo()").unwrap();
    let mut s = source.connect("postgres");
    s.batch_execute("SELECT tenancy.seed_demo()").unwrap();
    for i in 0..3 {
        in_tenant(&mut s, |s| {
            s.execute(
                "SELECT tenancy.store_credential($1::text::uuid, 'oauth2_tokens', jsonb_build_object('access_token', $2::text), $2)",
                &[&SLACK_A, &format!("upgrade-secret-{i}")],
            )
            .unwrap()
        });
    }
    let key: String = in_tenant(&mut s, |s| {
        s.query_one("SELECT tenancy.create_api_key('upgrade')", &[])
            .unwrap()
            .get(0)
    });
    s.batch_execute(&format!(
        "BEGIN; SELECT tenancy.authenticate('{key}'); COMMIT"
    ))
    .unwrap();
    for (old, current) in VAULT_ROWS {
        let rows: String = s
            .query_one(
                &format!("SELECT coalesce(json_agg(r), '[]')::text FROM ({current}) r"),
                &[],
            )
            .unwrap()
            .get(0);
        c.execute(
            &format!("INSERT INTO {old} SELECT * FROM json_populate_recordset(NULL::{old}, $1::text::json)"),
            &[&rows],
        )
        .unwrap_or_else(|e| panic!("copying {old}: {e}"));
    }
    c.batch_execute("SELECT tenancy.maintain_request_logs()")
        .unwrap();
    for i in 0..5 {
        in_tenant(c, |c| {
            c.execute(
                "SELECT tenancy.log_request(a.integration_id, a.id, jsonb_build_object('i', $1::int, 'password', 'p'))
                   FROM tenancy.actions a WHERE a.tenant_id = tenancy.current_tenant_id() ORDER BY a.id LIMIT 1",
                &[&i],
            )
            .unwrap()
        });
    }
    key
}

#[test]
fn update_from_every_release_matches_a_fresh_install() {
    let fresh = TestDb::empty("pgt_upgrade_fresh");
    let mut f = fresh.connect("postgres");
    // 0.1.0 ran on PostgreSQL 15 only (it used ON DELETE SET NULL (column)); 0.2.0 on 14-18.
    let pg14 = f
        .query_one(
            "SELECT current_setting('server_version_num')::int < 150000",
            &[],
        )
        .unwrap()
        .get::<_, bool>(0);
    f.batch_execute("CREATE EXTENSION pg_tenancy").unwrap();
    let current: String = f
        .query_one(
            "SELECT extversion FROM pg_extension WHERE extname = 'pg_tenancy'",
            &[],
        )
        .unwrap()
        .get(0);
    let expected = catalog(&mut f);
    assert!(expected.len() > 300, "{} catalog lines", expected.len());

    let released = released_versions();
    assert!(
        !released.is_empty(),
        "sql/released/ has the released install scripts"
    );
    for version in released
        .iter()
        .filter(|v| **v != current && !(pg14 && v.as_str() == "0.1.0"))
    {
        let db = TestDb::empty("pgt_upgrade_old");
        let mut c = db.connect("postgres");
        c.batch_execute(&format!("CREATE EXTENSION pg_tenancy VERSION '{version}'"))
            .unwrap_or_else(|e| panic!("install {version}: {e}"));
        let source = TestDb::empty("pgt_upgrade_source");
        source
            .connect("postgres")
            .batch_execute("CREATE EXTENSION pg_tenancy")
            .unwrap();
        let key = fill(&mut c, &source);
        // What the credentials decrypt to, where they were made (the same ids and bytes).
        let credentials = read_all_credentials(&mut source.connect("postgres")).unwrap();
        assert!(credentials.len() >= 3);
        drop(source);
        // Every row, over the columns it had before (an update may add columns).
        let columns = table_columns(&mut c);
        let rows = column_digests(&mut c, &columns);
        let mappings = field_mappings(&mut c);
        // An action whose input_schema is no schema, written before schemas were checked: the
        // update keeps the new constraint NOT VALID and says so (removed again below).
        c.batch_execute(&format!(
            "INSERT INTO tenancy.actions (tenant_id, id, integration_id, name, slug, http_method, endpoint_template, input_schema)
             SELECT tenant_id, '{BAD_ACTION}', integration_id, 'bad', 'bad-schema', 'GET', '/x', '{{\"type\": \"objekt\"}}'
               FROM tenancy.actions LIMIT 1"
        ))
        .unwrap();

        // A JWT secret stored the way 0.2.0's README advised (ALTER DATABASE ... SET, readable by
        // every role; planted in the catalog, since the current library refuses the command):
        // the update warns about it, without the value.
        let secret = "a-secret-stored-where-every-role-reads-it-0123";
        c.batch_execute(&format!(
            "SET allow_system_table_mods = on;
             INSERT INTO pg_db_role_setting SELECT oid, 0, ARRAY['tenancy.jwt_secret={secret}']
             FROM pg_database WHERE datname = current_database();
             RESET allow_system_table_mods;"
        ))
        .unwrap();
        // Default privileges of the role running the update (ALTER DEFAULT PRIVILEGES ... GRANT
        // ALL): the objects the update makes get none of them (the catalog compared below holds
        // every privilege).  And a session of a role holding temporary views over the columns
        // the update changes, open throughout: the views are dropped, the update goes through.
        // (Not an application role: those may not create temporary objects, src/session_state.rs.
        // A role with USAGE on the schema, granted for the test and revoked before the catalogs
        // are compared.)
        // (From 0.2.0: the released 0.1.0 -> 0.2.0 script, frozen, leaves the functions it makes
        // to the default privileges; docs/upgrading.md says so.)
        let defaults = version.as_str() != "0.1.0";
        c.batch_execute(if !defaults {
            ""
        } else {
            "ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO authenticated, PUBLIC;
             ALTER DEFAULT PRIVILEGES GRANT ALL ON FUNCTIONS TO authenticated;
             ALTER DEFAULT PRIVILEGES GRANT ALL ON SCHEMAS TO authenticated;
             ALTER DEFAULT PRIVILEGES GRANT ALL ON TYPES TO authenticated;"
        })
        .unwrap();
        login_role("pgt_upgrade_reader", "", &[]);
        c.batch_execute("GRANT USAGE ON SCHEMA tenancy TO pgt_upgrade_reader")
            .unwrap();
        let mut blocker = connect(&db.name, "pgt_upgrade_reader");
        blocker
            .batch_execute(
                "CREATE TEMP VIEW hashes AS SELECT key_hash FROM tenancy.api_keys;
                 CREATE TEMP VIEW secrets AS SELECT encrypted_refresh_token FROM tenancy.integration_credentials;
                 CREATE TEMP VIEW slugs AS SELECT t.slug, a.slug AS action FROM tenancy.tenants t, tenancy.actions a;
                 CREATE TEMP TABLE t (x int);
                 CREATE RULE peek AS ON INSERT TO t DO ALSO SELECT key_hash FROM tenancy.api_keys;",
            )
            .unwrap();
        let out = db.tool(
            "psql",
            &[
                "-X",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &db.name,
                "-c",
                &format!("ALTER EXTENSION pg_tenancy UPDATE TO '{current}'"),
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "update {version} -> {current}: {stderr}"
        );
        let views: i64 = blocker
            .query_one(
                "SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema() AND relkind = 'v'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(
            views, 0,
            "the temporary views over changed columns are gone"
        );
        let rules: i64 = blocker
            .query_one("SELECT count(*) FROM pg_rules WHERE rulename = 'peek'", &[])
            .unwrap()
            .get(0);
        assert_eq!(rules, 0, "and so is the rule that read key_hash");
        assert!(
            stderr.contains("WARNING:  dropping the temporary view pg_temp_")
                && stderr.contains("WARNING:  dropping the temporary rule peek on pg_temp_"),
            "the update says which temporary views it dropped: {stderr}"
        );
        drop(blocker);
        c.batch_execute(
            "REVOKE USAGE ON SCHEMA tenancy FROM pgt_upgrade_reader;
             ALTER DEFAULT PRIVILEGES REVOKE ALL ON TABLES FROM authenticated, PUBLIC;
             ALTER DEFAULT PRIVILEGES REVOKE ALL ON FUNCTIONS FROM authenticated;
             ALTER DEFAULT PRIVILEGES REVOKE ALL ON SCHEMAS FROM authenticated;
             ALTER DEFAULT PRIVILEGES REVOKE ALL ON TYPES FROM authenticated;",
        )
        .unwrap();
        assert!(
            stderr.contains("WARNING:  tenancy.jwt_secret is stored with ALTER DATABASE/ROLE")
                && !stderr.contains(secret),
            "{stderr}"
        );
        assert!(
            stderr.contains("WARNING:  tenancy.actions: rows written before 0.3.0 break its new constraint actions_input_schema_valid")
                && stderr.contains(" at /type: ")
                && stderr.contains("VALIDATE CONSTRAINT actions_input_schema_valid"),
            "{stderr}"
        );
        assert!(
            !stderr.contains("actions_output_schema_valid")
                && !stderr.contains("field_mappings_valid"),
            "only the table with a bad row is left NOT VALID: {stderr}"
        );
        c.batch_execute(&format!(
            "SET allow_system_table_mods = on;
             DELETE FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database());
             RESET allow_system_table_mods;
             DELETE FROM tenancy.actions WHERE id = '{BAD_ACTION}';
             ALTER TABLE tenancy.actions VALIDATE CONSTRAINT actions_input_schema_valid;"
        ))
        .unwrap();
        let got = catalog(&mut c);
        let missing: Vec<_> = expected.difference(&got).collect();
        let extra: Vec<_> = got.difference(&expected).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{version} -> {current} differs from a fresh {current}:\nonly in the fresh install:\n{missing:#?}\nonly in the updated one:\n{extra:#?}"
        );

        // Every row intact, but for the demo's field mappings of 0.2.0, whose paths 0.3.0
        // corrects (sql/pg_tenancy--0.2.0--0.3.0.sql, section 7): compared apart.
        let but_mappings = |d: Vec<(String, i64, String)>| -> Vec<_> {
            d.into_iter()
                .filter(|(t, _, _)| t != "tenancy.field_mappings")
                .collect()
        };
        // Where the rows are now (0.3.0 moved internal tables and secret columns to
        // tenancy_private), with the columns they had, under their old names.
        let now: Vec<_> = columns
            .iter()
            .map(|(t, cols)| {
                (
                    moved_since_0_3(t).unwrap_or_else(|| t.clone()),
                    cols.clone(),
                )
            })
            .collect();
        let after: Vec<_> = column_digests(&mut c, &now)
            .into_iter()
            .zip(&columns)
            .map(|((_, n, digest), (t, _))| (t.clone(), n, digest))
            .collect();
        assert_eq!(
            but_mappings(after),
            but_mappings(rows.clone()),
            "{version} -> {current}: every row intact"
        );
        let corrected: Vec<_> = mappings
            .iter()
            .map(|(id, s, t, config)| {
                let (s2, t2, c2) = match (s.as_str(), t.as_str(), config.as_str()) {
                    ("$.message", "text", "") => ("$.message", "$.text", ""),
                    ("$.room", "channel", "") => {
                        ("$.room", "$.channel", r#"{"case": "lower", "trim": true}"#)
                    }
                    ("ts", "$.messageId", "") => ("$.ts", "$.messageId", r#"{"type": "string"}"#),
                    _ => (s.as_str(), t.as_str(), config.as_str()),
                };
                (id.clone(), s2.to_string(), t2.to_string(), c2.to_string())
            })
            .collect();
        assert_ne!(
            corrected, mappings,
            "the demo's mappings of {version} need the correction"
        );
        assert_eq!(
            field_mappings(&mut c),
            corrected,
            "{version} -> {current}: field mappings"
        );
        assert_eq!(
            read_all_credentials(&mut c).unwrap(),
            credentials,
            "every credential decrypts after the update"
        );
        let tenant: String = c
            .query_one(
                "SELECT (tenancy.verify_api_key($1)).tenant_id::text",
                &[&key],
            )
            .unwrap()
            .get(0);
        assert_eq!(tenant, ACME, "the API key made by {version} verifies");
        // The daily partitions made by the old version, and those made after the update, have the
        // key and the per-integration index, and a dump restores (see clients.rs).
        let report: String = c
            .query_one(
                "SELECT tenancy.maintain_request_logs(premake => 10)::text",
                &[],
            )
            .unwrap()
            .get(0);
        let bare: Vec<String> = c
            .query(
                "SELECT i.inhrelid::regclass::text FROM pg_inherits i
                  WHERE i.inhparent = 'tenancy.request_logs'::regclass
                    AND (SELECT count(*) FROM pg_index x WHERE x.indrelid = i.inhrelid) <> 2",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(
            bare.is_empty(),
            "partitions without their two indexes: {bare:?} ({report})"
        );
        println!(
            "{version} -> {current}: {} catalog lines identical to a fresh install, {} tables' rows intact",
            got.len(),
            rows.len()
        );
    }
}

#[test]
fn released_scripts_are_never_edited() {
    let pins = std::fs::read_to_string(repo().join("sql/released.sha256"))
        .expect("sql/released.sha256 lists every released script");
    let mut pinned = BTreeSet::new();
    for line in pins
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let (hash, path) = line.split_once("  ").expect("<sha256>  <path>");
        let bytes = std::fs::read(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        let actual = format!("{:x}", Sha256::digest(&bytes));
        assert_eq!(
            actual, hash,
            "{path} was released and must never change: write a new upgrade script instead"
        );
        pinned.insert(path.to_string());
    }
    let released = released_versions();
    let newest = version_key(released.last().unwrap());
    for v in &released {
        let path = format!("sql/released/pg_tenancy--{v}.sql");
        assert!(
            pinned.contains(&path),
            "{path} is pinned in sql/released.sha256"
        );
    }
    // Every upgrade script into a released version is pinned too.
    for e in std::fs::read_dir(repo().join("sql")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        let Some(target) = name
            .strip_prefix("pg_tenancy--")
            .and_then(|s| s.strip_suffix(".sql"))
            .and_then(|s| s.split_once("--"))
            .map(|(_, to)| to.to_string())
        else {
            continue;
        };
        if version_key(&target) <= newest {
            let path = format!("sql/{name}");
            assert!(
                pinned.contains(&path),
                "{path} upgrades into the released {target}: pin it in sql/released.sha256"
            );
        }
    }
}
