//! The role matrix of docs/security.md, against what each role can actually do.
//!
//! `the_matrix_is_what_the_documentation_says`: every table of schemas `tenancy` and
//! `tenancy_private` that the catalog lists (partitions aside), every role (a user's five roles in acme through PostgREST's exact
//! sequence, an API key through `tenancy.authenticate`, `service_role` and `anon` through
//! `SET LOCAL ROLE` from a NOINHERIT authenticator, as PostgREST does), and each of SELECT,
//! INSERT, UPDATE and DELETE, tried for real in a savepoint that is rolled back:
//!
//! * `S`: a SELECT returns at least one row;
//! * `I`: an INSERT of a copy of one of acme's rows (a new id), into the columns the role may
//!   insert into, passes privileges and policies (it succeeds, or fails on a unique or foreign
//!   key constraint, which are checked after them);
//! * `U`: an UPDATE of some column to its own value touches at least one of acme's rows;
//! * `D`: a DELETE of acme's rows deletes at least one.
//!
//! The result must equal the documented table cell by cell: a table, role or command the
//! documentation does not list, or lists wrongly, fails the test.
use pg_tenancy_client_tests::demo::{ACME, SLACK_A};
use pg_tenancy_client_tests::{citus_port, connect, login_role, TestDb};
use postgres::Client;
use std::collections::BTreeMap;

const USERS: [(&str, &str); 5] = [
    ("owner", "00000000-0000-4000-8000-0000000000a1"),
    ("admin", "00000000-0000-4000-8000-0000000000a2"),
    ("manager", "00000000-0000-4000-8000-0000000000a3"),
    ("member", "00000000-0000-4000-8000-0000000000a4"),
    ("client", "00000000-0000-4000-8000-0000000000a5"),
];
const ROLES: [&str; 8] = [
    "owner",
    "admin",
    "manager",
    "member",
    "client",
    "api_key",
    "service_role",
    "anon",
];

type Matrix = BTreeMap<String, BTreeMap<String, String>>;

/// The table under "## The role matrix" in docs/security.md.
fn documented() -> Matrix {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/security.md");
    let text = std::fs::read_to_string(path).expect("docs/security.md");
    let section = text
        .split("## The role matrix")
        .nth(1)
        .expect("a section \"The role matrix\"");
    let mut lines = section.lines().skip_while(|l| !l.starts_with("| table |"));
    let header: Vec<String> = cells(lines.next().expect("the matrix's header"));
    assert_eq!(header[1..], ROLES.map(String::from), "the matrix's columns");
    lines
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let c = cells(l);
            let table = c[0].trim_matches('`').to_string();
            let row = ROLES
                .iter()
                .zip(&c[1..])
                .map(|(r, v)| (r.to_string(), normalise(v)))
                .collect();
            (table, row)
        })
        .collect()
}

fn cells(line: &str) -> Vec<String> {
    line.trim()
        .trim_matches('|')
        .split('|')
        .map(|c| c.trim().to_string())
        .collect()
}

fn normalise(cell: &str) -> String {
    let letters: String = cell.chars().filter(|c| "SIUD".contains(*c)).collect();
    if letters.is_empty() {
        "–".into()
    } else {
        letters
            .chars()
            .map(String::from)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Enter `role`'s context in a new transaction (see the module comment).
fn enter(c: &mut Client, role: &str, key: &str) {
    c.batch_execute("BEGIN").unwrap();
    match role {
        "service_role" | "anon" => c.batch_execute(&format!("SET LOCAL ROLE {role}")).unwrap(),
        "api_key" => {
            c.batch_execute("SET LOCAL ROLE authenticated").unwrap();
            c.execute("SELECT tenancy.authenticate($1)", &[&key])
                .unwrap();
        }
        _ => {
            let user = USERS.iter().find(|(r, _)| *r == role).unwrap().1;
            c.batch_execute("SET LOCAL ROLE authenticated").unwrap();
            c.execute(
                "SELECT set_config('request.jwt.claims', $1, true)",
                &[&format!(
                    r#"{{"sub": "{user}", "tenant_id": "{ACME}", "role": "authenticated"}}"#
                )],
            )
            .unwrap();
            c.batch_execute("SELECT tenancy.pre_request()").unwrap();
        }
    }
}

/// Run `sql` in a savepoint that is always rolled back: Ok(rows affected or returned) or the SQLSTATE.
fn attempt(
    c: &mut Client,
    sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<u64, String> {
    c.batch_execute("SAVEPOINT probe").unwrap();
    let r = if sql.starts_with("SELECT") {
        c.query_one(sql, params).map(|r| r.get::<_, i64>(0) as u64)
    } else {
        c.execute(sql, params)
    };
    c.batch_execute("ROLLBACK TO SAVEPOINT probe").unwrap();
    r.map_err(|e| {
        e.code()
            .map(|s| s.code().to_string())
            .unwrap_or_else(|| e.to_string())
    })
}

#[test]
fn the_matrix_is_what_the_documentation_says() {
    let db = TestDb::new("pgt_role_matrix");
    let mut admin = db.connect("postgres");
    admin
        .batch_execute(&format!(
            "BEGIN; SELECT tenancy.set_tenant('{ACME}');
             CREATE TABLE public.matrix_key AS SELECT tenancy.create_api_key('matrix', '{{*}}') AS key;
             SELECT tenancy.store_credential('{SLACK_A}', 'bearer', '{{\"token\": \"t\"}}');
             COMMIT;"
        ))
        .unwrap();
    let key: String = admin
        .query_one("SELECT key FROM public.matrix_key", &[])
        .unwrap()
        .get(0);
    admin
        .execute("SELECT tenancy.verify_api_key($1)", &[&key])
        .unwrap();
    login_role(
        "pgt_matrix_authenticator",
        "NOINHERIT",
        &["anon", "authenticated", "service_role"],
    );

    // Every table of the schema (partitions are reached through their parent), with acme's rows.
    let tables: Vec<(String, Vec<String>, i64)> = admin
        .query(
            "SELECT CASE WHEN c.relnamespace = 'tenancy'::regnamespace THEN c.relname::text
                         ELSE c.relnamespace::regnamespace::text || '.' || c.relname END,
                    array_agg(a.attname::text ORDER BY a.attnum), c.oid::bigint
               FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
              WHERE c.relnamespace IN ('tenancy'::regnamespace, 'tenancy_private'::regnamespace)
                AND c.relkind IN ('r', 'p') AND NOT c.relispartition
              GROUP BY 1, c.oid ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let mut actual = Matrix::new();
    let mut c = connect(&db.name, "pgt_matrix_authenticator");
    for role in ROLES {
        let user = USERS.iter().find(|(r, _)| *r == role).map(|u| u.1);
        for (table, columns, oid) in &tables {
            // Tables of `tenancy` by name, those of `tenancy_private` with their schema.
            let qualified = if table.contains('.') {
                table.clone()
            } else {
                format!("tenancy.{table}")
            };
            let has = |col: &str| columns.iter().any(|c| c == col);
            // Which of acme's rows the probes aim at.
            let scope = match table.as_str() {
                "tenants" => format!("id = '{ACME}'"),
                "users" => match user {
                    Some(u) => format!("id = '{u}'"),
                    None => format!("id = '{}'", USERS[0].1),
                },
                "tenancy_private.root_keys" => "true".into(),
                _ if has("tenant_id") => format!("tenant_id = '{ACME}'"),
                _ => "true".into(),
            };
            // A copy of one of those rows, as the superuser sees it, with a fresh id (and what
            // else must be fresh to be a new row).
            let mut row: Option<serde_json::Value> = admin
                .query_opt(
                    &format!("SELECT to_jsonb(r)::text FROM {qualified} r WHERE {scope} LIMIT 1"),
                    &[],
                )
                .unwrap()
                .map(|r| serde_json::from_str(r.get(0)).unwrap());
            if let Some(serde_json::Value::Object(map)) = row.as_mut() {
                let fresh = uuid::Uuid::new_v4().to_string();
                if has("id") {
                    map.insert("id".into(), fresh.clone().into());
                }
                match table.as_str() {
                    "tenants" => {
                        map.insert("slug".into(), format!("s{}", &fresh[..8]).into());
                        map.insert("email".into(), format!("{}@t.test", &fresh[..8]).into());
                    }
                    "users" => {
                        map.insert("email".into(), format!("{}@t.test", &fresh[..8]).into());
                    }
                    "jobs" => {
                        map.insert(
                            "user_id".into(),
                            user.map_or(serde_json::Value::Null, |u| u.into()),
                        );
                    }
                    _ => {}
                }
            }
            enter(&mut c, role, &key);
            let mut cell = Vec::new();
            if attempt(&mut c, &format!("SELECT count(*) FROM {qualified}"), &[])
                .is_ok_and(|n| n > 0)
            {
                cell.push("S");
            }
            // Into the columns the role may insert into (column privileges), the rest defaulted.
            let insertable: Vec<String> = columns
                .iter()
                .filter(|col| {
                    c.query_one(
                        &format!("SELECT has_column_privilege({oid}::oid, '{col}', 'INSERT')"),
                        &[],
                    )
                    .unwrap()
                    .get::<_, bool>(0)
                })
                .cloned()
                .collect();
            if let (Some(row), false) = (&row, insertable.is_empty()) {
                let cols = insertable.join(", ");
                // On Citus, with RETURNING: without it (or ON CONFLICT) Citus writes an
                // INSERT ... SELECT it cannot push down with COPY, which PostgreSQL refuses under
                // RLS (docs/citus.md, Limits).  Not on one node: RETURNING also applies the
                // table's SELECT policies to the new row.
                let returning = if citus_port().is_some() {
                    " RETURNING 1"
                } else {
                    ""
                };
                let inserted = attempt(
                    &mut c,
                    &format!("INSERT INTO {qualified} ({cols}) SELECT {cols} FROM jsonb_populate_record(NULL::{qualified}, $1::text::jsonb){returning}"),
                    &[&row.to_string()],
                );
                if inserted.is_ok() || inserted.as_ref().is_err_and(|e| e.starts_with("23")) {
                    cell.push("I");
                }
            }
            if columns.iter().any(|col| {
                attempt(
                    &mut c,
                    &format!("UPDATE {qualified} SET {col} = {col} WHERE {scope}"),
                    &[],
                )
                .is_ok_and(|n| n > 0)
            }) {
                cell.push("U");
            }
            if attempt(
                &mut c,
                &format!("DELETE FROM {qualified} WHERE {scope}"),
                &[],
            )
            .is_ok_and(|n| n > 0)
            {
                cell.push("D");
            }
            c.batch_execute("ROLLBACK").unwrap();
            let cell = if cell.is_empty() {
                "–".to_string()
            } else {
                cell.join(" ")
            };
            actual
                .entry(table.clone())
                .or_default()
                .insert(role.to_string(), cell);
        }
    }

    let documented = documented();
    let mut differences = Vec::new();
    for (table, row) in &actual {
        for role in ROLES {
            let want = documented.get(table).and_then(|r| r.get(role));
            let got = &row[role];
            if want != Some(got) {
                differences.push(format!(
                    "{table} / {role}: documented {}, actual {got}",
                    want.map_or("(not listed)", |w| w.as_str())
                ));
            }
        }
    }
    for table in documented.keys().filter(|t| !actual.contains_key(*t)) {
        differences.push(format!("{table}: documented, but not in the catalog"));
    }
    for (table, row) in &actual {
        println!(
            "{table:<24} {}",
            ROLES.map(|r| format!("{:<8}", row[r])).join("|")
        );
    }
    assert!(
        differences.is_empty(),
        "docs/security.md and the database disagree:\n{}",
        differences.join("\n")
    );
}
