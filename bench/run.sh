#!/usr/bin/env bash
# One command for every benchmark: its own cluster, its own data, every case of a group mixed in
# ONE pgbench process (several -f, per-transaction -l logs), ratios taken within a run.
# Usage: bench/run.sh [MAJOR]         (3 runs x 20 s per group on PostgreSQL MAJOR, default 15;
#                                     writes bench/results.md)
#        PGT_BENCH_SECONDS=60 PGT_BENCH_RUNS=5 bench/run.sh
source "$(dirname "$0")/../scripts/common.sh"
use_pg "${1:-15}"
SECONDS_PER_RUN=${PGT_BENCH_SECONDS:-20}
RUNS=${PGT_BENCH_RUNS:-3}
CLIENTS=${PGT_BENCH_CLIENTS:-2}
ensure_all "$PGT_PG_MAJOR"
install_extension release
cluster_start bench 54335 "shared_buffers = 512MB" "max_wal_size = 8GB" "checkpoint_timeout = 30min" "synchronous_commit = off"
BENCH="$PGT_ROOT/bench"
OUT="$PGT_STATE/bench-logs"
as_root rm -rf "$OUT" && mkdir -p "$OUT"
export PGT_BENCH_SUMMARY="$OUT/summary.jsonl"

# matplotlib for the chart, in a virtualenv of the bench's own (PyPI), once.
BENCH_VENV="$PGT_STATE/bench-venv"
if ! "$BENCH_VENV/bin/python" -c "import matplotlib" 2>/dev/null; then
    log "installing matplotlib into $BENCH_VENV (once)"
    python3 -m venv "$BENCH_VENV"
    "$BENCH_VENV/bin/pip" install -q "matplotlib==3.9.2"
fi

log "loading benchmark data (1M rows, 1000 tenants; 4 x 100k rows; 3 x 10k secrets)"
psql_q -d postgres -c "DROP DATABASE IF EXISTS tenancy_bench" -c "CREATE DATABASE tenancy_bench"
psql_q -d tenancy_bench -f "$BENCH/setup.sql" >/dev/null
# JWT tokens signed outside the database (PyJWT, cryptography: Debian's python3-jwt), and the
# JWKS of their keys, passed to every script as the pgbench variable :jwks.
/usr/bin/python3 "$BENCH/jwt/tokens.py" "$OUT/tokens.csv" "$OUT/jwks.json"
psql_q -d tenancy_bench -c "\copy bench.tokens FROM '$OUT/tokens.csv' (FORMAT csv)" >/dev/null
DEFINES=(-D "jwks=$(cat "$OUT/jwks.json")")
# PGT_BENCH_ONLY=<part of a group's name>: run only the groups whose name has it (results go to
# $PGT_STATE/bench-logs/partial.md, not bench/results.md).
ONLY=${PGT_BENCH_ONLY:-}
RESULTS="$BENCH/results.md"
[ -z "$ONLY" ] || RESULTS="$OUT/partial.md"

# run_group NAME BASELINE_INDEX script...
run_group() {
    local group=$1 base=$2; shift 2
    if [ -n "$ONLY" ] && [[ "$group" != *"$ONLY"* ]]; then return 0; fi
    local names=() args=() dirs=()
    # script.sql or script.sql@weight (pgbench's syntax: how often it is picked)
    for s in "$@"; do names+=("$(basename "${s%@*}" .sql)"); args+=(-f "$BENCH/$s"); done
    for run in $(seq 1 "$RUNS"); do
        local dir="$OUT/$group/run$run"
        mkdir -p "$dir"
        log "$group: run $run/$RUNS (${SECONDS_PER_RUN}s, $CLIENTS clients, scripts: ${names[*]})"
        (cd "$dir" && "$(pg_bin pgbench)" -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -T "$SECONDS_PER_RUN" \
            -l --log-prefix="$dir/log" "${DEFINES[@]}" "${args[@]}" tenancy_bench > "$dir/pgbench.out" 2>&1) \
            || { cat "$dir/pgbench.out" >&2; die "pgbench failed"; }
        dirs+=("$dir")
    done
    python3 "$BENCH/report.py" "$group" "$base" "$(IFS=,; echo "${names[*]}")" "$SECONDS_PER_RUN" "${dirs[@]}"
}

# COPY of 100k rows into the plain table: the ceiling for getting rows into a table at all.
copy_ceiling() {
    [ -z "$ONLY" ] || return 0
    local file="$PGT_STATE/bench-logs/copy_logs.csv"
    psql_q -d tenancy_bench -c "COPY (SELECT 'c0000000-0000-4000-8000-000000000001'::uuid, gen_random_uuid(),
        'e0000000-0000-4000-8000-000000000001'::uuid, 'f0000000-0000-4000-8000-000000000001'::uuid, NULL::uuid,
        (SELECT v FROM bench.log_summary), '{\"status\": 200}'::jsonb, 200, 35, 0, NULL::jsonb, now() + g * interval '1 microsecond'
        FROM generate_series(1, 100000) g) TO STDOUT (FORMAT csv)" > "$file"
    local ms
    ms=$(psql_q -d tenancy_bench -At -c "TRUNCATE bench.copy_logs" -c '\timing on' -c "\copy bench.copy_logs FROM '$file' (FORMAT csv)" \
        | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1)
    echo
    echo "COPY of 100k such rows into the plain table (the ceiling): ${ms} ms, $(python3 -c "print(f'{$ms * 1000 / 100000:.1f}')") µs a row."
}

# A tenant's 50 latest requests over 10M rows of 1,000 tenants: latency percentiles of the whole
# PostgREST-style transaction (target: p95 under 1 ms).
latest_50() {
    [ -z "$ONLY" ] || return 0
    log "request logs: loading 10M rows (a few minutes, once)"
    if [ "$(psql_q -d tenancy_bench -At -c "SELECT count(*) >= 10000000 FROM tenancy.request_logs")" != t ]; then
        psql_q -d tenancy_bench -f "$BENCH/request_logs/load_10m.sql" >/dev/null
    fi
    local dir="$OUT/latest_50" pcts
    mkdir -p "$dir"
    log "request logs: latest 50 of a tenant (${SECONDS_PER_RUN}s, $CLIENTS clients)"
    (cd "$dir" && "$(pg_bin pgbench)" -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -T "$SECONDS_PER_RUN" \
        -l --log-prefix="$dir/log" -f "$BENCH/request_logs/latest_50.sql" tenancy_bench > "$dir/pgbench.out" 2>&1) \
        || { cat "$dir/pgbench.out" >&2; die "pgbench failed"; }
    pcts=$(python3 - "$dir" <<'PY'
import glob, sys
lat = sorted(int(l.split()[2]) for f in glob.glob(sys.argv[1] + "/log*") for l in open(f) if len(l.split()) > 3)
p = lambda q: lat[min(len(lat) - 1, int(len(lat) * q))] / 1000
print(f"{len(lat)} transactions; p50 {p(0.50):.3f} ms, p95 {p(0.95):.3f} ms, p99 {p(0.99):.3f} ms")
PY
)
    echo
    echo "#### request logs: a tenant's 50 latest requests, 10M rows, 1,000 tenants, daily partitions"
    echo
    echo "Whole PostgREST-style transaction (claims, role, \`pre_request\`, the SELECT, COMMIT): $pcts."
}

{
    echo "### Benchmarks"
    echo
    echo "PostgreSQL $("$(pg_bin postgres)" --version | awk '{print $3}'), pg_tenancy release build, $(nproc) cores;"
    echo "$RUNS runs x ${SECONDS_PER_RUN}s, $CLIENTS clients, \`pgbench -M prepared\`, all cases of a group mixed in one pgbench process."
    echo "Command: \`bench/run.sh\` (date: $(date -u +%Y-%m-%d))."
    run_group "updated_at: UPDATE by primary key, 100k rows" 0 \
        updated_at/no_trigger.sql updated_at/pg_tenancy.sql updated_at/moddatetime.sql updated_at/plpgsql.sql
    run_group "RLS: latest 20 rows of my tenant, 1M rows, 1000 tenants" 0 \
        rls/explicit_where.sql rls/rls_postgrest.sql
    run_group "context: what tenancy.pre_request() adds to a PostgREST request" 0 \
        context/envelope_only.sql context/pre_request_user.sql context/pre_request_user_tenant.sql
    run_group "JWT: pre_request trusting request.jwt.claims vs verifying the token itself (HS256, ES256, RS256; cache off, and ES256 cached)" 0 \
        jwt/claims_trusted.sql jwt/token_hs256.sql jwt/token_es256_cold.sql jwt/token_rs256_cold.sql jwt/token_es256_cached.sql
    run_group "actions: validate and map a ~1 kB input, 20-property schema, 20 mappings (50 calls per statement)" 0 \
        actions/floor.sql actions/schema_cached.sql actions/schema_per_call.sql actions/plpgsql_check.sql \
        actions/validate_action.sql actions/map_pg_tenancy.sql actions/map_sql.sql
    run_group "vault: read a ~200-byte secret" 0 \
        vault/floor_md5.sql vault/read_pg_tenancy.sql vault/read_pgp_sym.sql vault/read_raw_aes.sql
    run_group "vault: store a ~200-byte secret" 0 \
        vault/floor_md5.sql vault/store_pg_tenancy.sql vault/store_pgp_sym.sql vault/store_raw_aes.sql
    run_group "request logs: one ~300-byte request summary per call" 0 \
        request_logs/plain_insert.sql request_logs/log_request.sql
    run_group "request logs: redact() of a ~16 kB summary, without and with secrets" 0 \
        request_logs/redact_floor.sql request_logs/redact_clean.sql request_logs/redact_secrets.sql
    copy_ceiling
    run_group "API keys: check a key sent by the client, 1000 keys (bcrypt: 100, picked 1/50 as often)" 0 \
        api_keys/pk_lookup.sql@50 api_keys/verify_api_key.sql@50 api_keys/verify_api_key_from.sql@50 api_keys/authenticate.sql@50 \
        api_keys/sha256_lookup.sql@50 api_keys/bcrypt.sql@1
    latest_50
    echo
    echo "![throughput ratios](results.png)"
} | tee "$RESULTS"
if [ -z "$ONLY" ]; then
    "$BENCH_VENV/bin/python" "$BENCH/chart.py" "$PGT_BENCH_SUMMARY" "$BENCH/results.png"
    log "wrote bench/results.md and bench/results.png"
fi
cluster_stop bench
