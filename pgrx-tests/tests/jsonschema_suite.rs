//! The official JSON-Schema-Test-Suite (vendored in `tests/jsonschema-suite/`, see its README)
//! through `tenancy.jsonb_matches_schema`, for drafts 4, 6, 7, 2019-09 and 2020-12: every case of
//! the required tests must pass; `optional/` (formats among them) is counted and printed apart.
//! A schema that lacks `$schema` is given its draft's (our functions choose the draft by it).
//! Cases whose schema refers to the suite's remote documents (`http://localhost:1234/...`) are
//! counted as such: pg_tenancy resolves `$ref` only inside the schema, by design (a tenant's
//! schema must not make the server fetch anything).
use pg_tenancy_client_tests::TestDb;
use postgres::Client;
use serde_json::Value;
use std::path::{Path, PathBuf};

const DRAFTS: [(&str, &str); 5] = [
    ("draft4", "http://json-schema.org/draft-04/schema#"),
    ("draft6", "http://json-schema.org/draft-06/schema#"),
    ("draft7", "http://json-schema.org/draft-07/schema#"),
    (
        "draft2019-09",
        "https://json-schema.org/draft/2019-09/schema",
    ),
    (
        "draft2020-12",
        "https://json-schema.org/draft/2020-12/schema",
    ),
];

#[derive(Default, Debug)]
struct Counts {
    passed: usize,
    failed: Vec<String>,
    remote: usize,
    /// Cases jsonb cannot hold (a \u0000 in a string: PostgreSQL's text has no NUL).
    not_jsonb: usize,
    refused: Vec<String>,
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|e| e == "json") {
            out.push(p);
        }
    }
}

fn run_file(c: &mut Client, path: &Path, uri: &str, counts: &mut Counts) {
    let groups: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    for group in groups {
        let mut schema = group["schema"].clone();
        if let Some(o) = schema.as_object_mut() {
            o.entry("$schema").or_insert(Value::String(uri.into()));
        }
        let tests = group["tests"].as_array().unwrap();
        let label = format!("{name}: {}", group["description"].as_str().unwrap_or(""));
        if schema.to_string().contains("localhost:1234") {
            counts.remote += tests.len();
            continue;
        }
        let schema_text = schema.to_string();
        if schema_text.contains("\\u0000") {
            counts.not_jsonb += tests.len();
            continue;
        }
        let valid: bool = c
            .query_one(
                "SELECT tenancy.jsonschema_is_valid($1::text::jsonb)",
                &[&schema_text],
            )
            .unwrap()
            .get(0);
        if !valid {
            counts.refused.push(label.clone());
            counts.failed.extend(tests.iter().map(|t| {
                format!(
                    "{label} / {} (schema refused)",
                    t["description"].as_str().unwrap_or("")
                )
            }));
            continue;
        }
        for t in tests {
            let data = t["data"].to_string();
            if data.contains("\\u0000") {
                counts.not_jsonb += 1;
                continue;
            }
            let got = c.query_one(
                "SELECT tenancy.jsonb_matches_schema($1::text::jsonb, $2::text::jsonb)",
                &[&schema_text, &data],
            );
            let want = t["valid"].as_bool().unwrap();
            match got {
                Ok(row) if row.get::<_, bool>(0) == want => counts.passed += 1,
                Ok(_) => counts.failed.push(format!(
                    "{label} / {} (expected {want})",
                    t["description"].as_str().unwrap_or("")
                )),
                Err(e) => counts.failed.push(format!(
                    "{label} / {} ({})",
                    t["description"].as_str().unwrap_or(""),
                    e.as_db_error()
                        .map(|d| d.message().to_string())
                        .unwrap_or_default()
                )),
            }
        }
    }
}

#[test]
fn the_official_suite_passes() {
    let db = TestDb::new("pgt_client_jsonschema_suite");
    let mut c = db.connect("postgres");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/jsonschema-suite/tests");
    let mut report = Vec::new();
    let mut required_failures = Vec::new();
    for (draft, uri) in DRAFTS {
        let mut all = Vec::new();
        files(&root.join(draft), &mut all);
        let (mut required, mut optional) = (Counts::default(), Counts::default());
        for path in &all {
            let optional_file = path.components().any(|c| c.as_os_str() == "optional");
            let counts = if optional_file {
                &mut optional
            } else {
                &mut required
            };
            run_file(&mut c, path, uri, counts);
        }
        report.push(format!(
            "{draft:<13} required: {} passed, {} failed ({} remote $ref, {} not jsonb);  optional: {} passed, {} failed ({} remote, {} not jsonb)",
            required.passed,
            required.failed.len(),
            required.remote,
            required.not_jsonb,
            optional.passed,
            optional.failed.len(),
            optional.remote,
            optional.not_jsonb
        ));
        for f in &optional.failed {
            println!("optional {draft}: {f}");
        }
        required_failures.extend(required.failed.iter().map(|f| format!("{draft}: {f}")));
    }
    for line in &report {
        println!("{line}");
    }
    assert!(
        required_failures.is_empty(),
        "{} required cases failed:\n{}",
        required_failures.len(),
        required_failures.join("\n")
    );
}
