#!/usr/bin/env bash
# The demo: a throwaway PostgreSQL with pg_tenancy preloaded, the demo data set, and a psql
# walkthrough of every capability (tenant context, isolation, triggers, health).
# Usage: scripts/demo.sh              (runs the walkthrough, leaves the cluster running)
#        scripts/demo.sh --stop       (stops the demo cluster)
source "$(dirname "$0")/common.sh"
if [ "${1:-}" = --stop ]; then cluster_stop demo; exit 0; fi
ensure_all
install_extension debug
cluster_start demo 54315
psql_q -d postgres -c "DROP DATABASE IF EXISTS tenancy_demo" -c "CREATE DATABASE tenancy_demo"
"$(pg_bin psql)" -X -v ON_ERROR_STOP=1 -d tenancy_demo -f "$PGT_ROOT/scripts/demo.sql"
log "demo cluster still running: psql -h $PGHOST -p $PGPORT -U postgres tenancy_demo   (stop: scripts/demo.sh --stop)"
