#!/usr/bin/env bash
# The whole test suite, on a fresh machine or an old one:
#   1. lint: cargo fmt --check, cargo clippy -D warnings
#   2. Rust unit tests and #[pg_test]s (cargo pgrx test, cluster run as an unprivileged user)
#   3. SQL suites tests/*.sql (pgTAP via pg_prove) against a throwaway cluster
#   4. client-side tests (pgrx-tests/: real connections, login roles, pg_dump/pg_restore)
# Usage: scripts/test.sh            (PostgreSQL 15)
source "$(dirname "$0")/common.sh"
ensure_all
cd "$PGT_ROOT"
STEPS_FAILED=()

log "lint: cargo fmt --check and cargo clippy"
cargo fmt --all -- --check || STEPS_FAILED+=(fmt)
cargo clippy --workspace --all-targets --no-default-features --features "pg$PGT_PG_MAJOR pg_test" -q -- -D warnings \
    || STEPS_FAILED+=(clippy)

log "Rust unit tests and #[pg_test] (cargo pgrx test pg$PGT_PG_MAJOR)"
as_root mkdir -p "$PGT_STATE/pgrx-test" && as_root chown "$PGT_OS_USER" "$PGT_STATE/pgrx-test"
cargo pgrx test "pg$PGT_PG_MAJOR" --runas "$PGT_OS_USER" --pgdata "$PGT_STATE/pgrx-test" \
    || STEPS_FAILED+=(pg_test)

install_extension debug
cluster_start test 54325
log "SQL suites (pg_prove tests/*.sql)"
psql_q -d postgres -c "DROP DATABASE IF EXISTS tenancy_test" -c "CREATE DATABASE tenancy_test"
psql_q -d tenancy_test -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION pg_tenancy"
pg_prove --ext .sql -d tenancy_test tests/ || STEPS_FAILED+=(sql)

log "client-side tests (pgrx-tests/)"
PGT_BINDIR="$("$PGT_PG_CONFIG" --bindir)" cargo test -p pg_tenancy_client_tests -- --test-threads=1 \
    || STEPS_FAILED+=(client)
cluster_stop test

if [ ${#STEPS_FAILED[@]} -gt 0 ]; then
    echo "FAILED steps: ${STEPS_FAILED[*]}"
    exit 1
fi
log "all test steps passed"
