//! Bad input for every SQL function of the extension, found in the catalog (so a new function is
//! fuzzed without anyone listing it): NULLs, empty values, huge values, malformed JSON, arrays with
//! NULLs, extreme numbers and times, strings of random characters (control characters, non-ASCII,
//! lookalikes of our API keys), generated from a fixed seed (`PGT_FUZZ_SEED`, default 20261122)
//! for a bounded number of calls per function (`PGT_FUZZ_CALLS`, default 40), as a superuser and
//! as a tenant member through `authenticated`.
//!
//! Every call either returns or fails with a proper SQLSTATE: never an internal error (`XX000`,
//! which is what a Rust panic caught by pgrx becomes), never a message about a panic or an
//! `unwrap`, never a lost connection (a backend crash), and each finishes within its statement
//! timeout.  Invalid UTF-8 cannot reach a function in a UTF-8 database: the server refuses it at
//! the protocol level (checked at the end with raw bytes through psql).
use pg_tenancy_client_tests::demo::{ACME, DAVE};
use pg_tenancy_client_tests::{bin, conninfo, TestDb};
use postgres::types::ToSql;
use postgres::Client;

/// SplitMix64: a fixed, portable sequence for test inputs (not for anything secret).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    /// A string of random characters from awkward classes.
    fn text(&mut self, max: usize) -> String {
        let len = self.below(max + 1);
        let classes: [&[char]; 6] = [
            &['a', 'Z', '0', '9', '_', '-', ' ', '.', ','],
            &['\'', '"', '\\', '{', '}', '[', ']', ':', '%', '$'],
            &['\u{1}', '\u{7}', '\t', '\n', '\r', '\u{1b}', '\u{7f}'],
            &[
                'é', 'ß', 'Ω', '中', '🔑', '\u{200b}', '\u{feff}', '\u{fffd}',
            ],
            &['t', 'k', '_', 'l', 'i', 'v', 'e'],
            &['e', 'y', 'J', '.', '=', '&', '?', '/'],
        ];
        (0..len)
            .map(|_| {
                let class = classes[self.below(classes.len())];
                class[self.below(class.len())]
            })
            .collect()
    }
    fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            b >> 52,
            b & 0xffff_ffff_ffff
        )
    }
}

/// A value for an argument of type `ty`, as text to cast (None = SQL NULL).
fn value(rng: &mut Rng, ty: &str) -> Option<String> {
    if rng.below(6) == 0 {
        return None;
    }
    let huge = || "x".repeat(1 << 20);
    Some(match ty {
        "uuid" => match rng.below(5) {
            0 => ACME.into(),
            1 => "00000000-0000-0000-0000-000000000000".into(),
            2 => "a1000000-0000-4000-8000-000000000101".into(),
            // The demo's "Send message" action: schemas and field mappings of both directions.
            3 => "a1000001-0000-4000-8000-000000000201".into(),
            _ => rng.uuid(),
        },
        "text" | "name" => match rng.below(10) {
            0 => String::new(),
            1 => huge(),
            2 => format!("tk_live_{}", rng.text(93)),
            3 => "tk_live_".to_string() + &"A".repeat(93),
            4 => rng.pick(&["member", "owner", "admin", "api_key", "standard", "append_only", "live", "test", "oauth2_tokens", "basic"]).into(),
            5 => rng.text(10_000),
            _ => rng.text(40),
        },
        "jsonb" => match rng.below(12) {
            0 => "{}".into(),
            1 => "[]".into(),
            2 => "null".into(),
            3 => "\"a string\"".into(),
            4 => "12345678901234567890123456789012345678901234567890.5".into(),
            5 => "[".repeat(5000) + &"]".repeat(5000),
            6 => format!("{{\"s\": \"{}\"}}", huge()),
            7 => format!(
                "{{\"authorization\": \"Bearer {}\", \"nested\": {{\"password\": [1, {{\"token\": null}}]}}}}",
                rng.text(20).replace(['"', '\\'], "")
            ),
            8 => "{\"a\":".into(), // malformed: the cast refuses it (22P02)
            9 => serde_like_object(rng),
            _ => format!("{{\"k\": {}}}", rng.below(1000)),
        },
        "text[]" => match rng.below(5) {
            0 => "{}".into(),
            1 => "{NULL}".into(),
            2 => "{logs:write,\"\",\"a b\"}".into(),
            3 => format!("{{{}}}", vec!["s"; 10_000].join(",")),
            _ => "{read}".into(),
        },
        "integer" => rng.pick(&["0", "-1", "1", "2147483647", "-2147483648", "100"]).into(),
        "boolean" => rng.pick(&["true", "false"]).into(),
        "tenancy.mapping_direction" => rng.pick(&["input", "output"]).into(),
        "timestamp with time zone" => rng
            .pick(&["infinity", "-infinity", "epoch", "2026-11-22 00:00:00+00", "4713-01-01 BC", "294276-12-31 23:59:59+00"])
            .into(),
        "interval" => rng
            .pick(&["0", "-1 day", "1 second", "178000000 years", "30 days", "-178000000 years"])
            .into(),
        "regclass" => rng
            .pick(&["tenancy.tenants", "tenancy.request_logs", "pg_catalog.pg_class", "public.fuzz_plain", "public.fuzz_notes", "tenancy.api_keys"])
            .into(),
        other => panic!("the fuzzer has no values for type {other}: add some"),
    })
}

fn serde_like_object(rng: &mut Rng) -> String {
    let n = rng.below(8);
    let fields: Vec<String> = (0..n)
        .map(|i| {
            let key = rng.pick(&[
                "token",
                "Authorization",
                "x-api-key",
                "url",
                "name",
                "value",
                "password",
                "data",
            ]);
            let value = match rng.below(4) {
                0 => format!(
                    "\"{}\"",
                    rng.text(30)
                        .replace(['"', '\\'], "")
                        .replace(|c: char| c.is_control(), "")
                ),
                1 => "null".into(),
                2 => "[1, 2, {\"secret\": \"s\"}]".into(),
                _ => "\"https://x.test/?access_token=abc&page=2\"".into(),
            };
            format!("\"{key}{i}\": {value}")
        })
        .collect();
    format!("{{{}}}", fields.join(", "))
}

struct Function {
    signature: String,
    name: String,
    args: Vec<String>,
}

fn functions(c: &mut Client) -> Vec<Function> {
    c.query(
        "SELECT p.oid::regprocedure::text, quote_ident(p.proname),
                array(SELECT format_type(t, NULL) FROM unnest(p.proargtypes::oid[]) t)
           FROM pg_proc p
          WHERE p.pronamespace = 'tenancy'::regnamespace AND p.prokind = 'f'
            AND p.prorettype <> 'trigger'::regtype
          ORDER BY 1",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| Function {
        signature: r.get(0),
        name: r.get(1),
        args: r.get(2),
    })
    .collect()
}

/// Call `f` with `values`; Err(description) if the outcome is not acceptable.
fn call(c: &mut Client, f: &Function, values: &[Option<String>]) -> Result<(), String> {
    let placeholders: Vec<String> = f
        .args
        .iter()
        .enumerate()
        .map(|(i, ty)| format!("${}::text::{ty}", i + 1))
        .collect();
    let sql = format!("SELECT tenancy.{}({})", f.name, placeholders.join(", "));
    let params: Vec<&(dyn ToSql + Sync)> =
        values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
    c.batch_execute("SAVEPOINT fuzz")
        .map_err(|e| format!("connection lost before the call: {e}"))?;
    let outcome = c.query(&sql, &params);
    let verdict = match &outcome {
        Ok(_) => Ok(()),
        Err(e) => match e.as_db_error() {
            None => Err(format!(
                "no SQLSTATE (backend crash or lost connection?): {e}"
            )),
            Some(db) => {
                let code = db.code().code();
                let text = format!("{} {:?} {:?}", db.message(), db.detail(), db.hint());
                if code == "57014" {
                    Err(format!(
                        "did not finish within the statement timeout: {text}"
                    ))
                } else if code.starts_with("XX") {
                    Err(format!("internal error {code}: {text}"))
                } else if ["panick", "unwrap", "RUST_BACKTRACE", "called `"]
                    .iter()
                    .any(|w| text.contains(w))
                {
                    Err(format!(
                        "a panic's message reached the caller ({code}): {text}"
                    ))
                } else {
                    Ok(())
                }
            }
        },
    };
    c.batch_execute("ROLLBACK TO SAVEPOINT fuzz")
        .map_err(|e| format!("connection lost after the call: {e}"))?;
    verdict
}

fn describe(values: &[Option<String>]) -> String {
    values
        .iter()
        .map(|v| match v {
            None => "NULL".to_string(),
            Some(s) if s.len() > 60 => format!(
                "{:?}…({} bytes)",
                &s.chars().take(40).collect::<String>(),
                s.len()
            ),
            Some(s) => format!("{s:?}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn every_function_survives_bad_input() {
    let seed: u64 = std::env::var("PGT_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261122);
    let calls: usize = std::env::var("PGT_FUZZ_CALLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let db = TestDb::new("pgt_client_fuzz");
    let mut c = db.connect("postgres");
    c.batch_execute(
        "CREATE TABLE public.fuzz_plain (id int);
         CREATE TABLE public.fuzz_notes (tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id), id uuid DEFAULT gen_random_uuid(),
                                         updated_at timestamptz, PRIMARY KEY (tenant_id, id));",
    )
    .unwrap();
    let fns = functions(&mut c);
    assert!(fns.len() >= 30, "{} functions", fns.len());
    let mut rng = Rng(seed);
    let (mut total, mut failures) = (0usize, Vec::new());
    for f in &fns {
        // As a superuser (no context), and as a member of acme through `authenticated`.
        for as_member in [false, true] {
            c.batch_execute("BEGIN; SET LOCAL statement_timeout = '10s'")
                .unwrap();
            if as_member {
                c.batch_execute(&format!(
                    "SELECT tenancy.set_tenant('{ACME}', '{DAVE}'); SET LOCAL ROLE authenticated"
                ))
                .unwrap();
            }
            let mut cases: Vec<Vec<Option<String>>> = vec![vec![None; f.args.len()]];
            for i in 0..f.args.len() {
                let mut v: Vec<Option<String>> =
                    f.args.iter().map(|t| value(&mut rng, t)).collect();
                v[i] = None;
                cases.push(v);
            }
            for _ in 0..calls {
                cases.push(f.args.iter().map(|t| value(&mut rng, t)).collect());
            }
            for values in &cases {
                total += 1;
                if let Err(why) = call(&mut c, f, values) {
                    failures.push(format!(
                        "{} ({}) with ({}): {why}",
                        f.signature,
                        if as_member { "member" } else { "superuser" },
                        describe(values)
                    ));
                    if c.is_closed() {
                        c = db.connect("postgres");
                        c.batch_execute("BEGIN").unwrap();
                    }
                }
            }
            c.batch_execute("ROLLBACK").unwrap();
        }
    }
    println!(
        "fuzz: {} functions, {total} calls (seed {seed}), {} bad outcomes",
        fns.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} bad outcomes:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Invalid UTF-8 never reaches a function: the server refuses the bytes (22021).
    use std::os::unix::ffi::OsStringExt;
    let sql =
        std::ffi::OsString::from_vec(b"SELECT tenancy.redact('{\"a\": \"\xff\xfe\"}')".to_vec());
    let out = std::process::Command::new(bin("psql"))
        .arg("-X")
        .arg("-v")
        .arg("VERBOSITY=verbose")
        .arg("-d")
        .arg(conninfo(&db.name, "postgres"))
        .arg("-c")
        .arg(sql)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("22021"),
        "invalid UTF-8: {stderr}"
    );
}
