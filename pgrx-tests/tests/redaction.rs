//! Redaction measured on corpora (`tests/redaction/`, made by `scripts/redaction-corpus.py`):
//!
//! * `our_rules_catch_their_samples_everywhere`: every provider rule's samples, each put in free
//!   text, under a neutral key, in a URL and in JSON inside a string, are cut out (per-rule
//!   recall printed); their near misses (the secret cut to three characters) are kept.
//! * `a_public_scanners_samples_are_caught`: samples generated from the rules of a scanner we
//!   did not write (gitleaks), each in a logged error message: the issue asks 90%; 92.1% is
//!   measured, and 92% asserted so that it cannot fall back.
//! * `ordinary_values_are_kept`: Faker's values and common ids, in messages, under neutral keys
//!   and in URLs: at least 97% kept intact.
use pg_tenancy_client_tests::TestDb;
use postgres::Client;
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn corpus(name: &str) -> Value {
    let path = format!("{}/../tests/redaction/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
        .unwrap()
}

/// `tenancy.redact` of each document, as JSON text, in order.
fn redact_all(c: &mut Client, docs: &[Value]) -> Vec<String> {
    let input = Value::Array(docs.to_vec()).to_string();
    c.query(
        "SELECT tenancy.redact(d)::text FROM jsonb_array_elements($1::text::jsonb) WITH ORDINALITY AS t(d, n) ORDER BY n",
        &[&input],
    )
    .unwrap()
    .iter()
    .map(|r| r.get::<_, String>(0))
    .collect()
}

/// Redacting what was redacted changes nothing: the marker is not read as a secret, and no
/// secret's remains become one.  Returns the documents that changed.
fn not_idempotent(c: &mut Client, out: &[String]) -> Vec<String> {
    let docs: Vec<Value> = out
        .iter()
        .map(|o| serde_json::from_str(o).unwrap())
        .collect();
    let again = redact_all(c, &docs);
    out.iter()
        .zip(&again)
        .filter(|(a, b)| {
            serde_json::from_str::<Value>(a).unwrap() != serde_json::from_str::<Value>(b).unwrap()
        })
        .map(|(a, b)| format!("{a} -> {b}"))
        .collect()
}

/// A sample in the four places a secret turns up in a log.
fn placements(sample: &str) -> Vec<(&'static str, Value)> {
    let mut out = vec![
        (
            "text",
            json!({"error": format!("upstream said: invalid credentials {sample} (request 7)")}),
        ),
        ("neutral-key", json!({"detail": sample})),
        (
            "json-in-string",
            json!({"body": json!({"error": {"message": format!("rejected {sample}")}}).to_string()}),
        ),
    ];
    if !sample.chars().any(char::is_whitespace) {
        out.push((
            "url",
            json!({"url": format!("https://api.example.com/v1/hooks/{sample}?page=2")}),
        ));
    }
    out
}

fn db() -> (TestDb, Client) {
    let db = TestDb::new("pgt_redaction");
    let c = db.connect("postgres");
    (db, c)
}

#[test]
fn our_rules_catch_their_samples_everywhere() {
    let (_db, mut c) = db();
    let rules = corpus("rules.json");
    let mut docs = Vec::new();
    let mut expect = Vec::new(); // (rule, secret)
    let mut misses = Vec::new();
    for r in rules.as_array().unwrap() {
        let id = r["rule"].as_str().unwrap();
        for p in r["positives"].as_array().unwrap() {
            let sample = p["sample"].as_str().unwrap();
            for (_, doc) in placements(sample) {
                docs.push(doc);
                expect.push((id, p["secret"].as_str().unwrap().to_string()));
            }
        }
        for m in r["near_misses"].as_array().unwrap() {
            misses.push((
                id,
                json!({"detail": format!("upstream said {}", m.as_str().unwrap())}),
            ));
        }
    }
    let out = redact_all(&mut c, &docs);
    let changed = not_idempotent(&mut c, &out);
    assert!(changed.is_empty(), "redacted twice, changed: {changed:#?}");
    let mut per_rule: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for ((id, secret), (got, doc)) in expect.iter().zip(out.iter().zip(&docs)) {
        let e = per_rule.entry(id).or_default();
        e.1 += 1;
        // The secret as it would appear in the JSON text (escaped), in this place.
        let escaped = serde_json::to_string(secret).unwrap();
        let inner = &escaped[1..escaped.len() - 1];
        let twice = serde_json::to_string(inner).unwrap();
        let inner2 = &twice[1..twice.len() - 1];
        if got.contains(inner) || got.contains(inner2) {
            failures.push(format!("{id}: {doc}"));
        } else {
            e.0 += 1;
        }
    }
    println!(
        "per-rule recall (our corpus, {} samples in 3-4 places each):",
        expect.len() / 4
    );
    for (id, (ok, n)) in &per_rule {
        println!("  {id:40} {ok:3}/{n:3}");
    }
    let docs: Vec<Value> = misses.iter().map(|(_, d)| d.clone()).collect();
    let out = redact_all(&mut c, &docs);
    let mut kept = 0;
    let mut over = Vec::new();
    for ((id, doc), got) in misses.iter().zip(&out) {
        if serde_json::from_str::<Value>(got).unwrap() == *doc {
            kept += 1;
        } else {
            over.push(format!("{id}: {doc} -> {got}"));
        }
    }
    println!("near misses kept: {kept}/{}", misses.len());
    for o in &over {
        println!("  over-redacted {o}");
    }
    for f in failures.iter().take(40) {
        println!("  missed {f}");
    }
    // Baseline of the first increment (95.0%): the misses are the keyword-context rules'
    // generated samples inside JSON-in-a-string, whose escaping the context rules do not read yet.
    let recall = 100.0 - failures.len() as f64 * 100.0 / expect.len() as f64;
    println!(
        "recall on our corpus: {recall:.1}% ({} missed)",
        failures.len()
    );
    assert!(recall >= 94.0, "recall {recall:.1}% on our own corpus");
    assert!(
        kept * 100 >= misses.len() * 95,
        "near misses kept: {kept}/{}",
        misses.len()
    );
}

#[test]
fn a_public_scanners_samples_are_caught() {
    let (_db, mut c) = db();
    let rules = corpus("gitleaks.json");
    let mut docs = Vec::new();
    let mut expect = Vec::new();
    for r in rules.as_array().unwrap() {
        let id = r["rule"].as_str().unwrap().to_string();
        for p in r["positives"].as_array().unwrap() {
            let sample = p["sample"].as_str().unwrap();
            docs.push(json!({"error": {"message": format!("upstream said: {sample}")}}));
            expect.push((id.clone(), p["secret"].as_str().unwrap().to_string()));
        }
    }
    let out = redact_all(&mut c, &docs);
    let mut per_rule: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut caught = 0;
    for ((id, secret), got) in expect.iter().zip(&out) {
        let e = per_rule.entry(id.clone()).or_default();
        e.1 += 1;
        let escaped = serde_json::to_string(secret).unwrap();
        if !got.contains(&escaped[1..escaped.len() - 1]) {
            caught += 1;
            e.0 += 1;
        }
    }
    println!("gitleaks rules, per-rule recall:");
    for (id, (ok, n)) in &per_rule {
        if ok < n {
            println!("  {id:45} {ok}/{n}");
        }
    }
    let pct = caught as f64 * 100.0 / expect.len() as f64;
    println!(
        "recall on gitleaks-generated samples: {caught}/{} = {pct:.1}%",
        expect.len()
    );
    let changed = not_idempotent(&mut c, &out);
    assert!(changed.is_empty(), "redacted twice, changed: {changed:#?}");
    // The issue asks 90%; 92.1% is measured (781/848; what is missed is listed above: mostly
    // samples of expressions that no real token matches, such as `ey…` JWTs that are not JSON or
    // `hooks.slack.com` with any byte for each dot).  The bound keeps it from regressing.
    assert!(pct >= 92.0, "recall {pct:.1}% fell below the 92% reached");
}

#[test]
fn ordinary_values_are_kept() {
    let (_db, mut c) = db();
    let values = corpus("ordinary.json");
    let mut docs = Vec::new();
    let mut kinds = Vec::new();
    for v in values.as_array().unwrap() {
        let value = v["value"].as_str().unwrap();
        let kind = v["kind"].as_str().unwrap();
        for doc in [
            json!({"error": {"message": format!("upstream said: {value}")}}),
            json!({"detail": value, "note": format!("id={value}"), "at": format!("received: {value}")}),
            json!({"url": format!("https://api.example.com/v1/items?ref={value}&page=2")}),
        ] {
            docs.push(doc);
            kinds.push(kind);
        }
    }
    let out = redact_all(&mut c, &docs);
    let mut per_kind: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut kept = 0;
    for ((doc, got), kind) in docs.iter().zip(&out).zip(&kinds) {
        let e = per_kind.entry(kind).or_default();
        e.1 += 1;
        if serde_json::from_str::<Value>(got).unwrap() == *doc {
            kept += 1;
            e.0 += 1;
        } else {
            println!("  changed {doc} -> {got}");
        }
    }
    for (k, (ok, n)) in &per_kind {
        if ok < n {
            println!("  {k:20} {ok}/{n}");
        }
    }
    let pct = kept as f64 * 100.0 / docs.len() as f64;
    println!(
        "ordinary values kept intact: {kept}/{} = {pct:.1}%",
        docs.len()
    );
    assert!(pct >= 97.0, "kept {pct:.1}% < 97%");
}
