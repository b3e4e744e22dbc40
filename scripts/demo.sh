#!/usr/bin/env bash
# The demo: a throwaway PostgreSQL with pg_tenancy preloaded, the demo data set, and a psql
# walkthrough of every capability (tenant context, isolation, triggers, health).
# Usage: scripts/demo.sh [MAJOR]             (PostgreSQL 14..18, default 15; runs the walkthrough
#                                             and leaves the cluster running on port 543MAJOR)
#        scripts/demo.sh --stop [MAJOR]      (stops that demo cluster)
source "$(dirname "$0")/common.sh"
if [ "${1:-}" = --stop ]; then use_pg "${2:-15}"; cluster_stop "demo-$PGT_PG_MAJOR"; exit 0; fi
use_pg "${1:-15}"
ensure_all "$PGT_PG_MAJOR"
install_extension debug
cluster_start "demo-$PGT_PG_MAJOR" "543$PGT_PG_MAJOR"
psql_q -d postgres -c "DROP DATABASE IF EXISTS tenancy_demo" -c "CREATE DATABASE tenancy_demo"
"$(pg_bin psql)" -X -v ON_ERROR_STOP=1 -d tenancy_demo -f "$PGT_ROOT/scripts/demo.sql"
log "demo cluster still running: psql -h $PGHOST -p $PGPORT -U postgres tenancy_demo   (stop: scripts/demo.sh --stop $PGT_PG_MAJOR)"
