#!/usr/bin/env bash
# The whole test suite, on a fresh machine or an old one:
#   1. lint: cargo fmt --check, cargo clippy -D warnings
#   2. Rust unit tests and #[pg_test]s (cargo pgrx test, cluster run as an unprivileged user)
#   3. SQL suites tests/*.sql (pgTAP via pg_prove) against a throwaway cluster
#   4. client-side tests (pgrx-tests/: real connections, login roles, pg_dump/pg_restore, and a
#      cluster of their own restarted with broken and rotated keyrings)
# Usage: scripts/test.sh            (PostgreSQL 15)
source "$(dirname "$0")/common.sh"
ensure_all
cd "$PGT_ROOT"
STEPS_FAILED=()
OUTPUT="$PGT_STATE/test-output.log"
: > "$OUTPUT"

log "lint: cargo fmt --check and cargo clippy"
cargo fmt --all -- --check || STEPS_FAILED+=(fmt)
cargo clippy --workspace --all-targets --no-default-features --features "pg$PGT_PG_MAJOR pg_test" -q -- -D warnings \
    || STEPS_FAILED+=(clippy)

log "Rust unit tests and #[pg_test] (cargo pgrx test pg$PGT_PG_MAJOR)"
as_root mkdir -p "$PGT_STATE/pgrx-test" && as_root chown "$PGT_OS_USER" "$PGT_STATE/pgrx-test"
cargo pgrx test "pg$PGT_PG_MAJOR" --runas "$PGT_OS_USER" --pgdata "$PGT_STATE/pgrx-test" 2>&1 | tee -a "$OUTPUT" \
    || STEPS_FAILED+=(pg_test)

install_extension debug
cluster_start test 54325
log "SQL suites (pg_prove tests/*.sql)"
psql_q -d postgres -c "DROP DATABASE IF EXISTS tenancy_test" -c "CREATE DATABASE tenancy_test"
psql_q -d tenancy_test -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION pg_tenancy"
pg_prove --ext .sql -d tenancy_test tests/ 2>&1 | tee -a "$OUTPUT" || STEPS_FAILED+=(sql)

log "client-side tests (pgrx-tests/)"
PGT_BINDIR="$("$PGT_PG_CONFIG" --bindir)" PGT_STATE="$PGT_STATE" PGT_OS_USER="$PGT_OS_USER" \
    cargo test -p pg_tenancy_client_tests --test clients --test keyring --test api_keys --test request_logs -- --test-threads=1 2>&1 \
    | tee -a "$OUTPUT" || STEPS_FAILED+=(client)
cluster_stop test

# One closing line over every runner: cargo's "test result: ... N passed; M failed" lines and
# pg_prove's "Tests=N" with its "Failed: M" report lines.
read -r passed failed < <(python3 - "$OUTPUT" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read()
p = f = 0
for m in re.finditer(r"test result: \w+\. (\d+) passed; (\d+) failed", text):
    p += int(m.group(1)); f += int(m.group(2))
tap_total = sum(int(n) for n in re.findall(r"Files=\d+, Tests=(\d+)", text))
tap_failed = sum(int(n) for n in re.findall(r"Tests: \d+ Failed: (\d+)\)", text))
print(p + tap_total - tap_failed, f + tap_failed)
PY
)

if [ ${#STEPS_FAILED[@]} -gt 0 ]; then
    echo "FAILED steps: ${STEPS_FAILED[*]}"
    echo "total: $passed passed, $failed failed"
    exit 1
fi
echo "total: $passed passed, $failed failed"
