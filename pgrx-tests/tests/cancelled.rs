//! Work over caller input stops when asked, on every major: the largest redaction allowed (16 MB)
//! under a `statement_timeout` of a quarter of its time is cancelled (`57014`) within a second of
//! the timeout.  On 0.2.0 one backend ran 12 minutes on `repeat('-eyJ', n)` and ignored
//! `pg_ctl stop -m fast`.  How the work grows with its input is `bounded.rs`'s.
use pg_tenancy_client_tests::{sqlstate, TestDb};
use std::time::{Duration, Instant};

#[test]
fn statement_timeout_is_honoured() {
    let db = TestDb::new("pgt_bounded_timeout");
    let mut c = db.connect("postgres");
    c.batch_execute("SET tenancy.log_summary_max_bytes = '16MB'")
        .unwrap();
    let sql =
        "SELECT length(tenancy.redact(jsonb_build_object('s', $1::text, 't', $1::text))::text)";
    let input = "-eyJ?token=x Bearer ".repeat(8 * 1024 * 1024 / 20);
    let start = Instant::now();
    c.execute(sql, &[&input]).unwrap();
    let full = start.elapsed();
    let timeout = (full / 4).max(Duration::from_millis(10));
    c.batch_execute(&format!(
        "SET statement_timeout = '{}ms'",
        timeout.as_millis()
    ))
    .unwrap();
    let start = Instant::now();
    let code = sqlstate(c.execute(sql, &[&input]));
    let took = start.elapsed();
    println!(
        "16 MB redacted in {full:?}; under statement_timeout {timeout:?}: {code} after {took:?}"
    );
    assert_eq!(code, "57014", "the statement was not cancelled");
    assert!(
        took < timeout + Duration::from_secs(1),
        "cancelled only after {took:?}"
    );
}
