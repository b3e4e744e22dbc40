//! Bounded work: every function that processes caller input does work linear in its size (and
//! none at all past a documented cap).
//!
//! `time_grows_linearly_with_every_input`: each input (26 of them) is doubled four times, and
//! the median of seven runs of each size taken (sizes kept under a few MB, where a larger
//! allocation or a cache size would add a step of its own).  Linear work doubles (×2 a doubling; less where a fixed
//! cost dominates), quadratic work quadruples.  The test asserts growth, never durations: the
//! least-squares slope of log(time) on log(size) over the five sizes (robust to one noisy point)
//! is at most that of ×2.3 a doubling: the issue's "about 2.2", with room for this machine's
//! noise (linear work measures 1.95-2.10 here, n log n about 2.1, quadratic 4).  On 0.2.0, `tenancy.redact` of `repeat('-eyJ', n)` grew 4× a doubling (10k: 1.8 s,
//! 20k: 6.8 s, 40k: 27 s).
//!
//! The growth of this Rust does not change with the server's major: `scripts/test.sh` runs this
//! file on the newest tested major only (about 7 minutes of a debug build).  That the work stops
//! when asked is checked on every major, by `cancelled.rs`.
use hmac::{Hmac, Mac};
use pg_tenancy_client_tests::demo::{ACME, ALICE};
use pg_tenancy_client_tests::{login_role, TestDb};
use postgres::types::ToSql;
use postgres::Client;
use std::time::Instant;

const SECRET: &str = "the-bounded-test-jwt-secret-of-32-bytes-or-more";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The median time (ms) of `runs` executions of `sql` with `param` (after one warm-up), which
/// must succeed unless `may_fail` (then each runs in autocommit).
fn time(c: &mut Client, sql: &str, param: &(dyn ToSql + Sync), runs: usize, may_fail: bool) -> f64 {
    let stmt = c.prepare(sql).unwrap();
    let mut run = || {
        let r = c.execute(&stmt, &[param]);
        assert!(may_fail || r.is_ok(), "{sql}: {r:?}");
    };
    run();
    median(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                run();
                start.elapsed().as_secs_f64() * 1000.0
            })
            .collect(),
    )
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn jwt(claims: &str) -> String {
    let body = format!(
        "{}.{}",
        b64url(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64url(claims.as_bytes())
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("{body}.{}", b64url(&mac.finalize().into_bytes()))
}

/// Claims of alice in acme, padded with `n` bytes of other claims (many short keys).
fn padded_claims(n: usize) -> String {
    let mut pad = String::with_capacity(n + 64);
    let mut i = 0;
    while pad.len() < n {
        pad.push_str(&format!(r#""c{i}":"v{i}","#));
        i += 1;
    }
    format!(r#"{{{pad}"sub":"{ALICE}","tenant_id":"{ACME}","exp":4102444800}}"#)
}

struct Case {
    name: &'static str,
    /// Runs as this login (a member of authenticated) or the superuser ("postgres").
    user: &'static str,
    /// Set up the session.
    setup: String,
    sql: &'static str,
    /// The input of size `n`.
    input: Box<dyn Fn(usize) -> String>,
    /// The smallest size; then doubled four times.
    base: usize,
    /// The call is refused (the input is not valid), in autocommit.
    may_fail: bool,
}

#[test]
fn time_grows_linearly_with_every_input() {
    let db = TestDb::new("pgt_bounded");
    login_role("pgt_bounded_member", "", &["authenticated"]);
    let mut admin = db.connect("postgres");
    admin
        .batch_execute(&format!(
            "SELECT tenancy.maintain_request_logs();
             ALTER DATABASE {} SET tenancy.log_summary_max_bytes = '16MB';",
            db.name
        ))
        .unwrap();
    let enter = format!(
        "BEGIN; SELECT set_config('request.jwt.claims', '{{\"sub\": \"{ALICE}\", \"tenant_id\": \"{ACME}\"}}', true); SELECT tenancy.pre_request();"
    );
    let adversarial: [(&'static str, &'static str); 11] = [
        ("redact: -eyJ (0.2.0 was quadratic)", "-eyJ"),
        ("redact: eyJ segments", "eyJa."),
        ("redact: query names", "?a=&b=;c"),
        ("redact: query secrets", "?token=x?"),
        ("redact: schemes", "Bearer Basic token "),
        ("redact: API-key prefixes", "tk_live_0123456789ABCDEFGHI "),
        ("redact: keywords read forward", "apikeytokenaccess ||= "),
        ("redact: keywords in a value", "x_token=key1keyapi2"),
        ("redact: provider names in words", "xherokuxdatadogx:"),
        ("redact: encoded =", "a%3Dtoken%3Dx%26"),
        ("redact: user:password", "credentials: a:"),
    ];
    let mut cases: Vec<Case> = adversarial
        .iter()
        .map(|(name, unit)| {
            let unit = unit.to_string();
            Case {
                name,
                user: "postgres",
                setup: String::new(),
                sql: "SELECT length(tenancy.redact(jsonb_build_object('s', $1::text))::text)",
                input: Box::new(move |n| unit.repeat(n / unit.len())),
                base: 128 * 1024,
                may_fail: false,
            }
        })
        .collect();
    cases.push(Case {
        name: "redact: many secret keys",
        user: "postgres",
        setup: String::new(),
        sql: "SELECT length(tenancy.redact($1::text::jsonb)::text)",
        input: Box::new(|n| {
            let mut s = String::from("{");
            let mut i = 0;
            while s.len() < n {
                s.push_str(&format!(r#""x-api-key-{i}": "Bearer eyJ.a.b", "#));
                i += 1;
            }
            s.push_str(r#""end": 1}"#);
            s
        }),
        base: 64 * 1024,
        may_fail: false,
    });
    cases.push(Case {
        name: "log_request",
        user: "pgt_bounded_member",
        setup: enter.clone(),
        sql: "SELECT tenancy.log_request('a1000000-0000-4000-8000-000000000101', 'a1000001-0000-4000-8000-000000000201', jsonb_build_object('body', $1::text))",
        input: Box::new(|n| "-eyJ?token=x ".repeat(n / 13)),
        base: 128 * 1024,
        may_fail: false,
    });
    cases.push(Case {
        name: "pre_request: claims (capped at 256 kB)",
        user: "pgt_bounded_member",
        setup: "BEGIN".into(),
        sql: "SELECT set_config('request.jwt.claims', $1, true), tenancy.pre_request()",
        input: Box::new(padded_claims),
        base: 12 * 1024,
        may_fail: false,
    });
    cases.push(Case {
        name: "pre_request: headers (capped at 256 kB)",
        user: "pgt_bounded_member",
        setup: format!(
            "BEGIN; SELECT set_config('request.jwt.claims', '{{\"sub\": \"{ALICE}\"}}', true)"
        ),
        sql: "SELECT set_config('request.headers', $1, true), tenancy.pre_request()",
        input: Box::new(|n| {
            let mut h = String::from("{");
            let mut i = 0;
            while h.len() < n {
                h.push_str(&format!(r#""x-h{i}": "v","#));
                i += 1;
            }
            format!(r#"{h}"x-tenant-id": "{ACME}"}}"#)
        }),
        base: 12 * 1024,
        may_fail: false,
    });
    cases.push(Case {
        name: "pre_request: verified token (capped at 64 kB)",
        // An authenticator-shaped session: the keys set for the transaction (by the superuser,
        // as a configuration file would: a secret is refused in ALTER ROLE ... SET), the cache
        // off so that every call checks the signature, then the role of the request.
        user: "postgres",
        setup: format!(
            "BEGIN; SET LOCAL tenancy.jwt_secret = '{SECRET}'; SET LOCAL tenancy.jwt_cache_entries = 0; SET LOCAL ROLE authenticated"
        ),
        sql: "SELECT set_config('request.headers', $1, true), tenancy.pre_request()",
        input: Box::new(|n| {
            format!(
                r#"{{"authorization": "Bearer {}"}}"#,
                jwt(&padded_claims(n * 3 / 4))
            )
        }),
        base: 3 * 1024,
        may_fail: false,
    });
    cases.push(Case {
        name: "verify_api_key (a key is 101 bytes)",
        user: "pgt_bounded_member",
        setup: String::new(),
        sql: "SELECT tenancy.verify_api_key($1)",
        input: Box::new(|n| "tk_live_".to_string() + &"0".repeat(n)),
        base: 16 * 1024,
        may_fail: true,
    });
    cases.push(Case {
        name: "store_credential (capped at 1 MB)",
        user: "pgt_bounded_member",
        setup: enter.clone(),
        sql: "SELECT tenancy.store_credential('a1000000-0000-4000-8000-000000000101', 'bearer', jsonb_build_object('token', $1::text))",
        input: Box::new(|n| "s".repeat(n)),
        base: 60 * 1024,
        may_fail: false,
    });
    cases.push(Case {
        name: "update_credential (capped at 1 MB)",
        user: "pgt_bounded_member",
        setup: format!(
            "{enter} SELECT tenancy.store_credential('a1000000-0000-4000-8000-000000000101', 'bearer', '{{\"token\": \"t\"}}');"
        ),
        sql: "SELECT tenancy.update_credential((SELECT id FROM tenancy.integration_credentials LIMIT 1), jsonb_build_object('token', $1::text))",
        input: Box::new(|n| "u".repeat(n)),
        base: 60 * 1024,
        may_fail: false,
    });
    cases.push(Case {
        name: "create_api_key: scopes (refused over 64)",
        user: "pgt_bounded_member",
        setup: String::new(),
        sql: "SELECT tenancy.create_api_key('k', string_to_array($1, ','))",
        input: Box::new(|n| {
            "s".repeat(n / 2)
                .chars()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(",")
        }),
        base: 16 * 1024,
        may_fail: true,
    });
    cases.push(Case {
        name: "current_tenant_for: roles",
        user: "pgt_bounded_member",
        setup: enter.clone(),
        sql: "SELECT tenancy.current_tenant_for(VARIADIC string_to_array($1, ','))",
        input: Box::new(|n| {
            "x".repeat(n / 2)
                .chars()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(",")
        }),
        base: 4 * 1024,
        may_fail: false,
    });
    cases.push(Case {
        name: "has_scope",
        user: "pgt_bounded_member",
        setup: String::new(),
        sql: "SELECT tenancy.has_scope($1)",
        input: Box::new(|n| "x".repeat(n)),
        base: 16 * 1024,
        may_fail: false,
    });
    // JSON Schema and field mappings (src/actions/): validation reads the instance in place, and
    // uniqueItems, error lists, patterns and [*] must all stay linear.
    let json_array = |unit: fn(usize) -> String| -> Box<dyn Fn(usize) -> String> {
        Box::new(move |n| {
            let mut s = String::from("[");
            let mut i = 0;
            while s.len() < n {
                if i > 0 {
                    s.push(',');
                }
                s.push_str(&unit(i));
                i += 1;
            }
            s.push(']');
            s
        })
    };
    cases.push(Case {
        name: "jsonb_matches_schema: uniqueItems",
        user: "pgt_bounded_member",
        setup: String::new(),
        sql: r#"SELECT tenancy.jsonb_matches_schema('{"uniqueItems": true, "items": {"type": "string"}}', $1::text::jsonb)"#,
        input: json_array(|i| format!("\"item-{i}\"")),
        base: 32 * 1024,
        may_fail: false,
    });
    cases.push(Case {
        name: "jsonschema_validation_errors: every element",
        user: "pgt_bounded_member",
        setup: String::new(),
        sql: r#"SELECT jsonb_array_length(tenancy.jsonschema_validation_errors('{"items": {"type": "string", "maxLength": 2}}', $1::text::jsonb))"#,
        input: json_array(|i| i.to_string()),
        base: 16 * 1024,
        may_fail: false,
    });
    cases.push(Case {
        name: "jsonb_matches_schema: pattern",
        user: "pgt_bounded_member",
        setup: String::new(),
        sql: r#"SELECT tenancy.jsonb_matches_schema('{"pattern": "^(a|b|ab)*c$"}', to_jsonb($1::text))"#,
        // Up to 512 kB: under a pattern, strings are at most 1 MB (src/actions/ticking.rs).
        input: Box::new(|n| "ab".repeat(n / 2)),
        base: 32 * 1024,
        may_fail: false,
    });
    cases.push(Case {
        name: "apply_field_mappings: [*] over an array",
        user: "pgt_bounded_member",
        setup: format!(
            "{enter} INSERT INTO tenancy.field_mappings (tenant_id, action_id, source_path, target_path, transform_config, direction)
             VALUES ('{ACME}', 'a1000002-0000-4000-8000-000000000201', '$.items[*].sku', '$.lines[*].code', '{{\"case\": \"upper\"}}', 'output'),
                    ('{ACME}', 'a1000002-0000-4000-8000-000000000201', '$.items[*].qty', '$.lines[*].n', '{{\"type\": \"integer\"}}', 'output');"
        ),
        sql: "SELECT length(tenancy.apply_field_mappings('a1000002-0000-4000-8000-000000000201', 'output', jsonb_build_object('items', $1::text::jsonb))::text)",
        input: json_array(|i| format!("{{\"sku\": \"a-{i}\", \"qty\": \"{i}\"}}")),
        base: 32 * 1024,
        may_fail: false,
    });
    let mut report = Vec::new();
    for case in &cases {
        let mut c = db.connect(case.user);
        if !case.setup.is_empty() {
            c.batch_execute(&case.setup).unwrap();
        }
        let times: Vec<f64> = (0..5)
            .map(|k| {
                let input = (case.input)(case.base << k);
                time(&mut c, case.sql, &input, 7, case.may_fail)
            })
            .collect();
        let ratios: Vec<f64> = times.windows(2).map(|w| w[1] / w[0]).collect();
        // The growth exponent: the least-squares slope of log(time) on log(size).  Linear work
        // gives 1 (less when a fixed cost dominates), quadratic 2; 2.3x a doubling is 1.20.
        let xs: Vec<f64> = (0..times.len()).map(|k| k as f64).collect();
        let ys: Vec<f64> = times.iter().map(|t| t.log2()).collect();
        let (mx, my) = (xs.iter().sum::<f64>() / 5.0, ys.iter().sum::<f64>() / 5.0);
        let slope = xs
            .iter()
            .zip(&ys)
            .map(|(x, y)| (x - mx) * (y - my))
            .sum::<f64>()
            / xs.iter().map(|x| (x - mx).powi(2)).sum::<f64>();
        report.push(format!(
            "{:<45} {:>9.2} ms at {:>7} B, ×{:?} per doubling, growth ×{:.2} a doubling",
            case.name,
            times[0],
            case.base,
            ratios
                .iter()
                .map(|r| (r * 100.0).round() / 100.0)
                .collect::<Vec<_>>(),
            slope.exp2()
        ));
        assert!(
            slope <= 2.3f64.log2(),
            "{}: not linear: {times:?} ms for {} B doubled four times (×{:.2} a doubling)",
            case.name,
            case.base,
            slope.exp2()
        );
        let _ = c.batch_execute("ROLLBACK");
    }
    for line in report {
        println!("{line}");
    }
}
