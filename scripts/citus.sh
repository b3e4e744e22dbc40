#!/usr/bin/env bash
# pg_tenancy on Citus: a coordinator and two workers on this machine.
#
# Usage: scripts/citus.sh build SRC [MAJOR]   build Citus from the source tree SRC (a checkout or
#                                             `git archive` of github.com/citusdata/citus) into
#                                             this project's Citus installation of MAJOR
#        scripts/citus.sh up [MAJOR]          coordinator 127.0.0.1:54400, workers 54401 and 54402,
#                                             database tenancy_citus, Citus and pg_tenancy installed,
#                                             tenancy.distribute() run, the demo data seeded
#        scripts/citus.sh test [MAJOR] [--cluster-only]
#                                             the Citus suites (pgrx-tests/tests/citus*.rs) on it,
#                                             then the shared single-node suites (not with
#                                             --cluster-only)
#        scripts/citus.sh bench [MAJOR]       bench/ scripts on one node and on a new cluster (release
#                                             build), two pgbench processes at once
#        scripts/citus.sh scale [MAJOR]       pre_request and verify_api_key as tenants grow from 1,000
#                                             to 100,000 (1M memberships), one node and the cluster
#        scripts/citus.sh logs [MAJOR]        a tenant's 50 latest request logs among 10M, one node and
#                                             the cluster (bench/request_logs/load_10m.sql, latest_50.sql)
#        scripts/citus.sh down [MAJOR]        stop the three servers
#        scripts/citus.sh installed MAJOR     exit 0 when Citus is built for MAJOR (scripts/test.sh)
# MAJOR defaults to 17.  Citus 14.0 supports PostgreSQL 16-18, 13.2 supports 15-17.
# PGT_CITUS_PORT moves the cluster (coordinator on it, workers on the next two, the benchmark's
# single node on the third after it), to run clusters of two majors side by side.
#
# Where it installs: $PGT_PG_CACHE/citus/<major>, a copy of PyPI's PostgreSQL of that major made
# for Citus alone.  Never the demo's, the benchmarks' or the tests' installation: building Citus
# and installing pg_tenancy there cannot touch a file a running server of theirs has mapped.  Real
# users install Citus from Citus's own packages; this script is for this repository's tests and
# benchmarks, and never copies Citus's source into the repository.
source "$(dirname "$0")/common.sh"

CITUS_BASE_PORT=${PGT_CITUS_PORT:-54400}
CITUS_PORTS=("$CITUS_BASE_PORT" $((CITUS_BASE_PORT + 1)) $((CITUS_BASE_PORT + 2)))
CITUS_NODES=(coordinator worker1 worker2)
CITUS_DB=tenancy_citus

citus_pg_config_of() { echo "$PGT_PG_CACHE/citus/$1/bin/pg_config"; }

# use_citus_pg MAJOR: the Citus installation of MAJOR for pg_bin, psql_q, install_extension.
use_citus_pg() {
    use_pg "$1"
    PGT_PG_CONFIG=$(citus_pg_config_of "$PGT_PG_MAJOR")
}

citus_installed() {
    local pgc
    pgc=$(citus_pg_config_of "$1")
    [ -x "$pgc" ] && [ -f "$("$pgc" --pkglibdir)/citus.so" ]
}

# The Debian packages Citus's build needs (headers of the compression and Kerberos libraries; it
# is configured --without-libcurl).
ensure_citus_build_packages() {
    install_debian_packages build-essential liblz4-dev libzstd-dev libkrb5-dev
}

cmd_build() {
    local src=${1:?usage: scripts/citus.sh build SRC [MAJOR]} major=${2:-17}
    src=$(cd "$src" && pwd) || die "no such source tree: $1"
    [ -x "$src/configure" ] && grep -q 'AC_INIT(\[Citus\]' "$src/configure.ac" 2>/dev/null \
        || die "$src is not a Citus source tree (no configure with AC_INIT([Citus]))"
    local version
    version=$(sed -n 's/^AC_INIT(\[Citus\], \[\([^]]*\)\]).*/\1/p' "$src/configure.ac")
    use_pg "$major"
    ensure_packages
    ensure_citus_build_packages
    local pypi=$major; [ "$major" = 15 ] && pypi=15-pypi
    ensure_postgres "$pypi"
    local dest="$PGT_PG_CACHE/citus/$major"
    if [ ! -x "$dest/bin/pg_config" ]; then
        log "making the Citus installation of PostgreSQL $major ($dest)"
        as_root rm -rf "$dest.partial"
        as_root mkdir -p "$PGT_PG_CACHE/citus"
        as_root cp -a "$PGT_PG_CACHE/$pypi" "$dest.partial"
        as_root mv "$dest.partial" "$dest"
    fi
    # Build in a copy: the given tree stays as it was (a configure run writes into its tree).
    local work="$PGT_STATE/citus-build-$major"
    log "building Citus $version for PostgreSQL $major from $src (about 5 minutes)"
    as_root rm -rf "$work"
    as_root mkdir -p "$work"
    (cd "$src" && tar cf - --exclude=.git .) | (cd "$work" && tar xf -)
    (cd "$work" && make distclean >/dev/null 2>&1 || true
     ./configure -q PG_CONFIG="$dest/bin/pg_config" --without-libcurl >"$work/configure.log" 2>&1 \
        || { tail -30 "$work/configure.log" >&2; exit 1; }
     make -s -j"$(nproc)" >"$work/make.log" 2>&1 || { tail -40 "$work/make.log" >&2; exit 1; }
     as_root make -s install >"$work/install.log" 2>&1 || { tail -20 "$work/install.log" >&2; exit 1; }) \
        || die "building Citus failed (logs in $work)"
    citus_installed "$major" || die "Citus did not install into $dest"
    log "Citus $version installed for PostgreSQL $major in $dest"
}

# The three servers share one root keyring (written once, beside the coordinator): every node derives
# the same keys from it (the vault's data keys, the API-key pepper, the signed context's key).
citus_keyring() { echo "$PGT_STATE/citus-$1-keyring"; }

cmd_up() {
    local major=${1:-17} i name port
    citus_installed "$major" || die "Citus is not built for PostgreSQL $major: scripts/citus.sh build SRC $major"
    use_citus_pg "$major"
    ensure_all "$major"
    use_citus_pg "$major"
    install_extension "${PGT_CITUS_PROFILE:-debug}"
    local keyring
    keyring=$(citus_keyring "$major")
    if [ ! -s "$keyring" ]; then
        printf '# pg_tenancy root keyring of the Citus test cluster (throwaway), shared by its nodes\nk1 %s active\n' \
            "$(head -c 32 /dev/urandom | base64)" | as_pg tee "$keyring" >/dev/null
        as_pg chmod 600 "$keyring"
    fi
    for i in 0 1 2; do
        name="citus$major-${CITUS_NODES[$i]}"; port=${CITUS_PORTS[$i]}
        log "starting $name on 127.0.0.1:$port"
        # Citus first in shared_preload_libraries, as it requires.
        cluster_start "$name" "$port" "shared_preload_libraries = 'citus,pg_tenancy'" \
            "tenancy.keyring_file = '$keyring'" "max_connections = 200" "max_prepared_transactions = 200" \
            "citus.enable_unsafe_triggers = on" \
            "wal_level = logical" "citus.shard_count = 32" >/dev/null
        if [ "$i" != 0 ]; then
            # A worker admits the application roles with a password only, which only Citus has
            # (tenancy.distribute() sets it): no one logs in to a worker as them but Citus.
            # The suites' own login roles (pgt_*, stand-ins for an application's login roles,
            # which a deployment gives worker logins of their own) are trusted on this loopback
            # test cluster; the application roles never are.
            printf '%s\n' "# written by scripts/citus.sh" \
                "local all postgres trust" "host all postgres 127.0.0.1/32 trust" \
                "host all /^pgt_ 127.0.0.1/32 trust" \
                "local all all scram-sha-256" "host all all 127.0.0.1/32 scram-sha-256" \
                | as_pg tee "$PGT_STATE/$name/data/pg_hba.conf" >/dev/null
            psql_q -h 127.0.0.1 -p "$port" -d postgres -Atc "SELECT pg_reload_conf()" >/dev/null
        fi
    done
    # A new database every time: what a DBA starts from, with this build of pg_tenancy.
    for i in 0 1 2; do
        port=${CITUS_PORTS[$i]}
        psql_q -h 127.0.0.1 -p "$port" -d postgres -c "DROP DATABASE IF EXISTS $CITUS_DB WITH (FORCE)" -c "CREATE DATABASE $CITUS_DB"
        psql_q -h 127.0.0.1 -p "$port" -d "$CITUS_DB" -c "CREATE EXTENSION citus"
    done
    local c=(-h 127.0.0.1 -p "${CITUS_PORTS[0]}" -d "$CITUS_DB")
    psql_q "${c[@]}" -c "SELECT citus_set_coordinator_host('127.0.0.1', ${CITUS_PORTS[0]})" >/dev/null
    for i in 1 2; do
        psql_q "${c[@]}" -Atc "SELECT 1 FROM pg_dist_node WHERE nodeport = ${CITUS_PORTS[$i]}" | grep -q 1 \
            || psql_q "${c[@]}" -c "SELECT citus_add_node('127.0.0.1', ${CITUS_PORTS[$i]})" >/dev/null
    done
    psql_q "${c[@]}" -c "CREATE EXTENSION pg_tenancy"
    log "distributing pg_tenancy"
    psql_q "${c[@]}" -Atc "SELECT jsonb_pretty(tenancy.distribute())"
    log "seeding the demo data (tenancy.seed_demo())"
    psql_q "${c[@]}" -Atc "SELECT tenancy.seed_demo() IS NOT NULL" >/dev/null
    log "Citus cluster up: psql -h 127.0.0.1 -p ${CITUS_PORTS[0]} -U postgres $CITUS_DB   (stop: scripts/citus.sh down $major)"
}

# The single-node suites that also run on the cluster: with PGT_CITUS_PORT set, each test's
# database (TestDb, pgrx-tests/src/lib.rs) is made on every node, distributed, then seeded.  Not
# on the cluster (docs/citus.md, "What does not run yet"):
# index_scans_never_count_rows_of_another_tenant (it observes a single node's counters), and
# a_private_schema_the_extension_did_not_make_is_refused (a database at 0.2.0, which never ran
# on Citus).
CITUS_SHARED_SUITES=(role_matrix hostile_reads hostile_writes hostile_secrets hostile_jwt hostile_planted)
CITUS_SHARED_SKIP=(index_scans_never_count_rows_of_another_tenant a_private_schema_the_extension_did_not_make_is_refused)

# The Citus suites (pgrx-tests/tests/citus*.rs), then the shared ones (not with --cluster-only),
# against the cluster `up` started.
cmd_test() {
    local major=17 shared=1 t args=()
    for t in "$@"; do
        case "$t" in
            --cluster-only) shared=0 ;;
            [0-9]|[0-9][0-9]) major=$t ;;
            *) die "scripts/citus.sh test [MAJOR] [--cluster-only]: unknown argument '$t'" ;;
        esac
    done
    use_citus_pg "$major"
    for t in "$PGT_ROOT"/pgrx-tests/tests/citus*.rs; do args+=(--test "$(basename "$t" .rs)"); done
    [ "$shared" = 1 ] && for t in "${CITUS_SHARED_SUITES[@]}"; do args+=(--test "$t"); done
    (cd "$PGT_ROOT" && PGT_CITUS_PORT=${CITUS_PORTS[0]} PGT_CITUS_MAJOR="$major" PGT_BINDIR="$("$PGT_PG_CONFIG" --bindir)" \
        PGT_STATE="$PGT_STATE" PGT_OS_USER="$PGT_OS_USER" \
        cargo test --no-fail-fast -p pg_tenancy_client_tests "${args[@]}" -- --test-threads=1 --nocapture \
            "${CITUS_SHARED_SKIP[@]/#/--skip=}")
}

# The benchmark: the same scripts of bench/ on one node and on the cluster `up` started, as two
# pgbench processes at the same time (a pgbench process talks to one server), three runs.  One
# node: a server of the same installation on the port after the workers' (54403), pg_tenancy
# without Citus.
# bench_sides_up MAJOR OUT: a new cluster (release build) and one node of the same installation
# on the port after the workers', pg_tenancy without Citus, both with bench/citus/setup.sql's
# data; OUT emptied.  Sets S and C, the psql connection options of each side.
bench_sides_up() {
    local major=$1 out=$2
    PGT_CITUS_PROFILE=release cmd_up "$major"
    use_citus_pg "$major"
    as_root rm -rf "$out" && mkdir -p "$out"
    cluster_start "citus$major-single" $((CITUS_BASE_PORT + 3)) >/dev/null
    S=(-h 127.0.0.1 -p $((CITUS_BASE_PORT + 3))) C=(-h 127.0.0.1 -p "${CITUS_PORTS[0]}")
    psql_q "${S[@]}" -d postgres -c "DROP DATABASE IF EXISTS tenancy_single WITH (FORCE)" -c "CREATE DATABASE tenancy_single"
    psql_q "${S[@]}" -d tenancy_single -c "CREATE EXTENSION pg_tenancy" -c "SELECT tenancy.seed_demo() IS NOT NULL" >/dev/null
    log "loading the benchmark data on one node and on the cluster"
    psql_q "${S[@]}" -d tenancy_single -f "$PGT_ROOT/bench/citus/setup.sql" >/dev/null
    psql_q "${C[@]}" -d "$CITUS_DB" -f "$PGT_ROOT/bench/citus/setup.sql" >/dev/null
}

# bench_pair DIR SECONDS CLIENTS PGBENCH_ARGS...: the same pgbench run against one node and against
# the cluster, two processes at the same time; their -l logs in DIR/single and DIR/citus.
bench_pair() {
    local dir=$1 seconds=$2 clients=$3; shift 3
    mkdir -p "$dir/single" "$dir/citus"
    (cd "$dir/single" && "$(pg_bin pgbench)" "${S[@]}" -U postgres -n -M prepared -c "$clients" -j "$clients" \
        -T "$seconds" -l --log-prefix="$dir/single/log" "$@" tenancy_single > pgbench.out 2>&1) &
    (cd "$dir/citus" && "$(pg_bin pgbench)" "${C[@]}" -U postgres -n -M prepared -c "$clients" -j "$clients" \
        -T "$seconds" -l --log-prefix="$dir/citus/log" "$@" "$CITUS_DB" > pgbench.out 2>&1) &
    wait
}

cmd_bench() {
    local major=${1:-17} run seconds=${PGT_BENCH_SECONDS:-20} runs=${PGT_BENCH_RUNS:-3} clients=${PGT_BENCH_CLIENTS:-2}
    local out="$PGT_STATE/citus-bench" single="citus$major-single" scripts=(
        api_keys/verify_api_key.sql context/pre_request_user_tenant.sql rls/rls_postgrest.sql request_logs/log_request.sql)
    bench_sides_up "$major" "$out"
    local s=("${S[@]}") c=("${C[@]}")
    local args=() names=() pairs=()
    for f in "${scripts[@]}"; do args+=(-f "$PGT_ROOT/bench/$f"); names+=("$(basename "$f" .sql)"); done
    for run in $(seq 1 "$runs"); do
        log "run $run/$runs: ${seconds}s, $clients clients on each side, scripts: ${names[*]}"
        bench_pair "$out/run$run" "$seconds" "$clients" "${args[@]}"
        pairs+=("$out/run$run/single,$out/run$run/citus")
    done
    {
        echo "Citus $(psql_q "${c[@]}" -d "$CITUS_DB" -Atc "SELECT extversion FROM pg_extension WHERE extname = 'citus'"), PostgreSQL $major: one node against a coordinator and two workers (loopback), ${runs} runs of ${seconds}s, ${clients} clients each side, both at once."
        echo
        python3 "$PGT_ROOT/bench/citus/report.py" "$(IFS=,; echo "${names[*]}")" "${pairs[@]}"
        echo
        echo "Shards a member's query reaches (EXPLAIN, Task Count):"
        echo
        for q in "SELECT id, created_at, payload FROM bench.items ORDER BY created_at DESC LIMIT 20" \
                 "SELECT * FROM tenancy.request_logs ORDER BY created_at DESC LIMIT 50"; do
            echo "- \`$q\`: $(psql_q "${c[@]}" -d "$CITUS_DB" -At \
                -c "BEGIN" -c "SELECT set_config('request.jwt.claims', '{\"sub\":\"d0000000-0000-4000-8000-000000000001\",\"tenant_id\":\"c0000000-0000-4000-8000-000000000001\"}', true), set_config('role', 'authenticated', true), tenancy.pre_request()" \
                -c "EXPLAIN (COSTS OFF) $q" -c "ROLLBACK" | sed -n 's/^ *Task Count: //p') of $(psql_q "${c[@]}" -d "$CITUS_DB" -Atc "SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'bench.items'::regclass")"
        done
    } | tee "$out/report.md"
    cluster_stop "$single"
}

# How cost grows with tenants: bench/citus/setup.sql's data grown (bench/scale/grow.sql) to each
# size of PGT_SCALE_SIZES (1,000, 10,000, 100,000 tenants: 10 memberships per user, 1M at
# 100,000) on one node and on a new cluster, then tenancy.pre_request() (a random membership of
# the whole table) and verify_api_key, one pgbench process per side, both at once, at each size.
cmd_scale() {
    local major=${1:-17} seconds=${PGT_BENCH_SECONDS:-20} clients=${PGT_BENCH_CLIENTS:-2} n start
    local sizes=(${PGT_SCALE_SIZES:-1000 10000 100000}) out="$PGT_STATE/citus-scale" runs=() loads=()
    bench_sides_up "$major" "$out"
    for n in "${sizes[@]}"; do
        log "growing both sides to $n tenants"
        start=$SECONDS
        psql_q "${S[@]}" -d tenancy_single -v n="$n" -f "$PGT_ROOT/bench/scale/grow.sql" >/dev/null
        loads+=("$((SECONDS - start))")
        start=$SECONDS
        psql_q "${C[@]}" -d "$CITUS_DB" -v n="$n" -f "$PGT_ROOT/bench/scale/grow.sql" >/dev/null
        loads+=("$((SECONDS - start))")
        log "$n tenants: ${seconds}s, $clients clients on each side: pre_request, verify_api_key"
        bench_pair "$out/n$n" "$seconds" "$clients" -D ntenants="$n" \
            -f "$PGT_ROOT/bench/scale/pre_request.sql" -f "$PGT_ROOT/bench/api_keys/verify_api_key.sql"
        runs+=("$n,$(psql_q "${C[@]}" -d "$CITUS_DB" -Atc "SELECT count(*) FROM tenancy.memberships"),$out/n$n/single,$out/n$n/citus")
    done
    {
        echo "Citus $(psql_q "${C[@]}" -d "$CITUS_DB" -Atc "SELECT extversion FROM pg_extension WHERE extname = 'citus'"), PostgreSQL $major: one node and a coordinator with two workers (loopback), ${seconds}s per size, ${clients} clients each side, both at once.  Seconds to grow each size (one node, cluster): ${loads[*]}."
        echo
        python3 "$PGT_ROOT/bench/scale/report.py" "${runs[@]}"
    } | tee "$out/report.md"
    cluster_stop "citus$major-single"
}

# The request-log dashboard at 10M rows: bench/request_logs/load_10m.sql (10M logs of 1,000
# tenants over 10 daily partitions) on one node and on the cluster, then latest_50.sql (a
# member's 50 latest, the PostgREST way) on both at once, PGT_BENCH_RUNS runs, and the query's
# Task Count.
cmd_logs() {
    local major=${1:-17} seconds=${PGT_BENCH_SECONDS:-20} runs=${PGT_BENCH_RUNS:-3} clients=${PGT_BENCH_CLIENTS:-2}
    local out="$PGT_STATE/citus-logs" run start loads=() pairs=()
    bench_sides_up "$major" "$out"
    log "loading 10M request logs on one node, then on the cluster"
    start=$SECONDS
    psql_q "${S[@]}" -d tenancy_single -f "$PGT_ROOT/bench/request_logs/load_10m.sql" >/dev/null
    loads+=("$((SECONDS - start))")
    start=$SECONDS
    psql_q "${C[@]}" -d "$CITUS_DB" -f "$PGT_ROOT/bench/request_logs/load_10m.sql" >/dev/null
    loads+=("$((SECONDS - start))")
    for run in $(seq 1 "$runs"); do
        log "run $run/$runs: ${seconds}s, $clients clients on each side: latest_50"
        bench_pair "$out/run$run" "$seconds" "$clients" -f "$PGT_ROOT/bench/request_logs/latest_50.sql"
        pairs+=("$out/run$run/single,$out/run$run/citus")
    done
    local q="SELECT id, created_at, action_id, status_code, latency_ms FROM tenancy.request_logs ORDER BY created_at DESC LIMIT 50"
    {
        echo "Citus $(psql_q "${C[@]}" -d "$CITUS_DB" -Atc "SELECT extversion FROM pg_extension WHERE extname = 'citus'"), PostgreSQL $major: one node against a coordinator and two workers (loopback), $(psql_q "${C[@]}" -d "$CITUS_DB" -Atc "SELECT count(*) FROM tenancy.request_logs") request logs of 1,000 tenants in daily partitions on each, ${runs} runs of ${seconds}s, ${clients} clients each side, both at once.  Seconds to load (one node, cluster): ${loads[*]}."
        echo
        python3 "$PGT_ROOT/bench/citus/report.py" latest_50 "${pairs[@]}"
        echo
        echo "- \`$q\` as a member: Task Count $(psql_q "${C[@]}" -d "$CITUS_DB" -At \
            -c "BEGIN" -c "SELECT set_config('request.jwt.claims', '{\"sub\":\"d0000000-0000-4000-8000-000000000001\",\"tenant_id\":\"c0000000-0000-4000-8000-000000000001\"}', true), set_config('role', 'authenticated', true), tenancy.pre_request()" \
            -c "EXPLAIN (COSTS OFF) $q" -c "ROLLBACK" | sed -n 's/^ *Task Count: //p') of $(psql_q "${C[@]}" -d "$CITUS_DB" -Atc "SELECT count(*) FROM pg_dist_shard s JOIN pg_inherits i ON i.inhrelid = s.logicalrelid WHERE i.inhparent = 'tenancy.request_logs'::regclass") shards of its partitions"
    } | tee "$out/report.md"
    cluster_stop "citus$major-single"
}

cmd_down() {
    local major=${1:-17} i
    use_citus_pg "$major"
    for i in 0 1 2; do cluster_stop "citus$major-${CITUS_NODES[$i]}"; done
}

cmd="${1:-}"; shift || true
case "$cmd" in
    build) cmd_build "$@" ;;
    up) cmd_up "$@" ;;
    test) cmd_test "$@" ;;
    bench) cmd_bench "$@" ;;
    scale) cmd_scale "$@" ;;
    logs) cmd_logs "$@" ;;
    down) cmd_down "$@" ;;
    installed) citus_installed "${1:?usage: scripts/citus.sh installed MAJOR}" ;;
    *) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
