#!/usr/bin/env bash
# The whole test suite, on a fresh machine or an old one, for every supported PostgreSQL major:
#   1. lint: cargo fmt --check, cargo clippy -D warnings (once per major: cfg-gated code included)
#   then for each major:
#   2. Rust unit tests and #[pg_test]s (cargo pgrx test, cluster run as an unprivileged user)
#   3. SQL suites tests/*.sql (pgTAP via pg_prove) against a throwaway cluster
#   4. client-side tests (pgrx-tests/: real connections, login roles, pg_dump/pg_restore, and a
#      cluster of their own restarted with broken and rotated keyrings); bounded.rs (growth with
#      input, the same Rust on every major) on the newest tested major only
#   and across majors:
#   5. pg_dump from one major restored into the next (15 -> 16, 17 -> 18), when both are tested
#   6. the Citus suites (pgrx-tests/tests/citus*.rs) on a coordinator and two workers, for each
#      tested major that Citus is built for (scripts/citus.sh); said plainly when skipped; the
#      single-node suites replayed on the cluster, on the newest of those majors
#   7. the packages of 0.1.0, 0.2.0 and this version through dpkg -i and ALTER EXTENSION UPDATE
#      under a running server (scripts/package-test.sh), when 15 is tested
# Everything runs on the tests' own PostgreSQL installations (common.sh: test_pg_config_of), never
# on the one the demo or a user's server runs from (but for step 7, which installs there the way a
# DBA does, with dpkg, because that is what must be safe); and a server like the demo's (pg_tenancy
# preloaded, on a tested major's own installation) runs beside the whole suite, which fails if
# that server stops answering or its log shows a crash.
# Usage: scripts/test.sh [MAJOR...]        (default: 14 15 16 17 18)
# Ends with one line per major and "total: N passed, M failed".
source "$(dirname "$0")/common.sh"
MAJORS=("${@:-${PGT_ALL_MAJORS[@]}}")
for m in "${MAJORS[@]}"; do use_pg "$m"; done
ensure_all "${MAJORS[@]}"
cd "$PGT_ROOT"
STEPS_FAILED=()
OUTDIR="$PGT_STATE/test-output"
rm -rf "$OUTDIR"; mkdir -p "$OUTDIR"
SECONDS=0

# The server beside the run: a tested major's own installation (15 if tested: the demo's default,
# Debian's), pg_tenancy installed there as scripts/demo.sh installs it when it is not yet.
SENTINEL=${MAJORS[0]}
case " ${MAJORS[*]} " in *" 15 "*) SENTINEL=15;; esac
use_pg "$SENTINEL"
[ -f "$("$PGT_PG_CONFIG" --pkglibdir)/pg_tenancy.so" ] || install_extension debug
log "a server beside the run: PostgreSQL $SENTINEL's own installation, pg_tenancy preloaded (port 54398)"
# In a subshell: cluster_start dies (exits) when the server does not start, as it would with a
# library left there by an older build; then install the current one and start again.
(cluster_start "sentinel-$SENTINEL" 54398) || { install_extension debug; cluster_start "sentinel-$SENTINEL" 54398; }
SENTINEL_LOG="$PGT_STATE/sentinel-$SENTINEL/server.log"
SENTINEL_FROM=$(($(wc -l < "$SENTINEL_LOG") + 1))

log "lint: cargo fmt --check"
cargo fmt --all -- --check || STEPS_FAILED+=(fmt)
for m in "${MAJORS[@]}"; do
    log "lint: cargo clippy (pg$m)"
    cargo clippy --workspace --all-targets --no-default-features --features "pg$m pg_test" -q -- -D warnings \
        || STEPS_FAILED+=("clippy-pg$m")
done

# Every client-side test file but the dump/restore one (run per pair of majors below) and the
# Citus suites (below): a new file is run without being listed here.  bounded.rs measures how the
# extension's own Rust loops grow with their input (about 7 minutes on a debug build): that does
# not change with the server's major, so it runs once, on the newest tested major.
CLIENT_TESTS=()
ONCE_TESTS=(--test bounded)
ONCE_MAJOR=$(printf '%s\n' "${MAJORS[@]}" | sort -n | tail -n 1)
for f in pgrx-tests/tests/*.rs; do
    t="$(basename "$f" .rs)"
    case "$t" in major_upgrade|citus*|bounded) ;; *) CLIENT_TESTS+=(--test "$t");; esac
done

for m in "${MAJORS[@]}"; do
    use_test_pg "$m"
    out="$OUTDIR/pg$m.log"
    : > "$out"
    log "PostgreSQL $m: Rust unit tests and #[pg_test] (cargo pgrx test pg$m)  [${SECONDS}s]"
    as_root rm -rf "$PGT_STATE/pgrx-test-$m"
    as_root mkdir -p "$PGT_STATE/pgrx-test-$m" && as_root chown "$PGT_OS_USER" "$PGT_STATE/pgrx-test-$m"
    cargo pgrx test "pg$m" --runas "$PGT_OS_USER" --pgdata "$PGT_STATE/pgrx-test-$m" 2>&1 | tee -a "$out" \
        || STEPS_FAILED+=("pg_test-pg$m")

    install_extension debug
    for other in "${PGT_ALL_MAJORS[@]}"; do (use_test_pg "$other"; cluster_stop "test-$other"); done  # port 54325
    cluster_start "test-$m" 54325
    log "PostgreSQL $m: SQL suites (pg_prove tests/*.sql)  [${SECONDS}s]"
    psql_q -d postgres -c "DROP DATABASE IF EXISTS tenancy_test" -c "CREATE DATABASE tenancy_test"
    psql_q -d tenancy_test -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION pg_tenancy"
    PATH="$("$PGT_PG_CONFIG" --bindir):$PATH" pg_prove --ext .sql -d tenancy_test tests/ 2>&1 | tee -a "$out" \
        || STEPS_FAILED+=("sql-pg$m")

    tests=("${CLIENT_TESTS[@]}") once=""
    if [ "$m" = "$ONCE_MAJOR" ]; then tests+=("${ONCE_TESTS[@]}"); once=", bounded.rs included"; fi
    log "PostgreSQL $m: client-side tests (pgrx-tests/$once)  [${SECONDS}s]"
    PGT_BINDIR="$("$PGT_PG_CONFIG" --bindir)" PGT_STATE="$PGT_STATE" PGT_OS_USER="$PGT_OS_USER" \
        cargo test --no-fail-fast -p pg_tenancy_client_tests "${tests[@]}" -- --test-threads=1 --nocapture 2>&1 \
        | tee -a "$out" || STEPS_FAILED+=("client-pg$m")
    cluster_stop "test-$m"
done

# pg_dump of one major restored into the next: each pair whose two majors were both tested (their
# own installations, where the loop above installed pg_tenancy).  The tests' 15 is PyPI's 15.19:
# Debian's 15.20 is a newer minor release than PyPI's 16.15 and writes a column option that
# 16.15 cannot restore.
for pair in "15 16" "17 18"; do
    read -r from to <<< "$pair"
    case " ${MAJORS[*]} " in *" $from "*) ;; *) continue;; esac
    case " ${MAJORS[*]} " in *" $to "*) ;; *) continue;; esac
    log "dump PostgreSQL $from, restore into $to  [${SECONDS}s]"
    PGT_FROM_BINDIR="$("$(test_pg_config_of "$from")" --bindir)" PGT_TO_BINDIR="$("$(test_pg_config_of "$to")" --bindir)" \
        PGT_STATE="$PGT_STATE" PGT_OS_USER="$PGT_OS_USER" \
        cargo test --no-fail-fast -p pg_tenancy_client_tests --test major_upgrade -- --test-threads=1 2>&1 \
        | tee -a "$OUTDIR/dump-$from-to-$to.log" || STEPS_FAILED+=("dump-$from-to-$to")
done

# The Citus suites, on a coordinator and two workers (scripts/citus.sh), for each tested major
# that Citus is built for (scripts/citus.sh build SRC MAJOR: Citus is in no package registry this
# machine reaches, so the suite never builds it by itself).  The cluster's own suites
# (pgrx-tests/tests/citus*.rs) run on every one; the single-node suites replayed on the cluster
# (role matrix and hostile suites, about 4 minutes) on the newest of them, as bounded.rs above.
CITUS_MAJORS=()
for m in "${MAJORS[@]}"; do
    if "$PGT_ROOT/scripts/citus.sh" installed "$m"; then
        CITUS_MAJORS+=("$m")
    else
        log "Citus suites SKIPPED for PostgreSQL $m: Citus is not built for it (scripts/citus.sh build SRC $m)"
    fi
done
CITUS_NEWEST=$(printf '%s\n' "${CITUS_MAJORS[@]}" | sort -n | tail -n 1)
for m in "${CITUS_MAJORS[@]}"; do
    only=(--cluster-only) what="the cluster's suites"
    if [ "$m" = "$CITUS_NEWEST" ]; then only=() what="the cluster's suites and the shared ones"; fi
    log "PostgreSQL $m with Citus: scripts/citus.sh up, test ($what), down  [${SECONDS}s]"
    { "$PGT_ROOT/scripts/citus.sh" up "$m" && "$PGT_ROOT/scripts/citus.sh" test "$m" "${only[@]}"; } 2>&1 \
        | tee "$OUTDIR/citus-pg$m.log" || STEPS_FAILED+=("citus-pg$m")
    "$PGT_ROOT/scripts/citus.sh" down "$m"
done

# The packages (scripts/package.sh) of 0.1.0, 0.2.0 and this version, installed with dpkg -i into
# Debian's PostgreSQL 15 under a running server, and updated through: when 15 is tested.  The
# sentinel runs from that installation too, so it is checked below with the packages installed.
case " ${MAJORS[*]} " in
    *" 15 "*)
        log "packages: 0.1.0 -> 0.2.0 -> this version on PostgreSQL 15 (scripts/package-test.sh)  [${SECONDS}s]"
        scripts/package-test.sh 2>&1 | tee "$OUTDIR/packages.log" || STEPS_FAILED+=(packages)
        ;;
esac

# The server beside the run must still answer, and its log since the run began show no crash.
use_pg "$SENTINEL"
log "the server beside the run (PostgreSQL $SENTINEL, port 54398): still answering, no crash in its log"
if ! PGHOST="$PGT_STATE/sentinel-$SENTINEL" PGPORT=54398 PGUSER=postgres \
        psql_q -d postgres -Atc "SELECT 'pg_tenancy loaded: ' || (current_setting('shared_preload_libraries') = 'pg_tenancy')"; then
    STEPS_FAILED+=("sentinel-pg$SENTINEL")
fi
if tail -n "+$SENTINEL_FROM" "$SENTINEL_LOG" | grep -E "terminated by signal|was terminated|PANIC|startup process|shutting down due to" ; then
    echo "the server beside the run crashed (see $SENTINEL_LOG)"
    STEPS_FAILED+=("sentinel-pg$SENTINEL")
fi
cluster_stop "sentinel-$SENTINEL"

# One line per log, and a total: cargo's "test result: ... N passed; M failed" lines and
# pg_prove's "Tests=N" with its "Failed: M" report lines.
python3 - "$OUTDIR" > "$OUTDIR/summary" <<'PY'
import glob, os, re, sys
P = F = 0
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.log"))):
    text = open(path, errors="replace").read()
    p = f = 0
    for m in re.finditer(r"test result: \w+\. (\d+) passed; (\d+) failed", text):
        p += int(m.group(1)); f += int(m.group(2))
    tap_total = sum(int(n) for n in re.findall(r"Files=\d+, Tests=(\d+)", text))
    tap_failed = sum(int(n) for n in re.findall(r"Tests: \d+ Failed: (\d+)\)", text))
    p += tap_total - tap_failed; f += tap_failed
    print(f"{os.path.basename(path)[:-4]}: {p} passed, {f} failed")
    P += p; F += f
print(f"total: {P} passed, {F} failed")
PY
log "finished in ${SECONDS}s"
if [ ${#STEPS_FAILED[@]} -gt 0 ]; then
    echo "FAILED steps: ${STEPS_FAILED[*]}"
    cat "$OUTDIR/summary"
    exit 1
fi
cat "$OUTDIR/summary"
