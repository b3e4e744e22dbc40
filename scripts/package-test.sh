#!/usr/bin/env bash
# The packages, as a DBA installs them, on PostgreSQL 15 (the one major every release ran on):
# scripts/package.sh builds 0.1.0 and 0.2.0 from their release commits and this checkout, then
#   1. each .deb is installed with `dpkg -i` over the one before into Debian's PostgreSQL 15
#      while a server that preloads pg_tenancy runs from it (and the test suite's sentinel, when
#      it runs): the server keeps answering, new connections work, its log shows no crash;
#   2. after each install the server restarts and `ALTER EXTENSION pg_tenancy UPDATE` takes the
#      database 0.1.0 -> 0.2.0 -> this version: the credentials written by 0.1.0 decrypt, its API
#      key verifies, every row is still there;
#   3. each release's package carries exactly its frozen install script (sql/released/), and
#      every upgrade script;
#   4. the tarball's install.sh installs into another installation of 15 (renaming each file into
#      place) and refuses an installation of another major.
# It leaves this version's package installed in Debian's 15, and its server stopped, also when it
# fails.  A clone without the release commits (a shallow one) fetches them from its origin; when
# it cannot, 1 and 2 run with this version's package only, from a database made with the released
# 0.2.0 install script the package carries.
# Usage: scripts/package-test.sh            (from scripts/test.sh, or on its own)
# Prints "test result: ok. N passed; M failed" like cargo, for test.sh's summary; exits non-zero
# when a check failed.
source "$(dirname "$0")/common.sh"
MAJOR=15
# The release commits: the source each released version was built from (scripts/package.sh
# checks that it regenerates the frozen install script).  A clone without this history cannot run
# the test.
RELEASES=("0.1.0 1e7e0915a144fdea242f881a00e76276a54cbaf5" "0.2.0 b37e95aca29fc54fe0d284e7b82e5e078d4100b6")
PORT=54397
export PGT_PACKAGE_OUT="$PGT_STATE/packages"
rm -rf "$PGT_PACKAGE_OUT"

PASSED=0 FAILED=0
ok() { PASSED=$((PASSED + 1)); echo "ok - $*"; }
not_ok() { FAILED=$((FAILED + 1)); echo "FAILED - $*"; }
check() { # check DESCRIPTION COMMAND...: the command succeeds
    local what=$1; shift
    if "$@"; then ok "$what"; else not_ok "$what"; fi
}
same() { # same DESCRIPTION EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1: expected '$2', got '$3'"; fi
}
finish() {
    echo "test result: $([ "$FAILED" = 0 ] && echo ok || echo FAILED). $PASSED passed; $FAILED failed"
    [ "$FAILED" = 0 ]
}

use_pg "$MAJOR"
ensure_all "$MAJOR"

# package MAJOR [SOURCE] into TARBALL[version] and DEB[version] (package.sh's exit status kept).
declare -A DEB TARBALL
package() {
    local out version
    out=$("$PGT_ROOT/scripts/package.sh" "$@") || die "scripts/package.sh $* failed"
    version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "${2:-$PGT_ROOT}/Cargo.toml" | head -1)
    TARBALL[$version]=$(sed -n 1p <<< "$out"); DEB[$version]=$(sed -n 2p <<< "$out")
}
CURRENT=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$PGT_ROOT/Cargo.toml" | head -1)

# Whatever happens, the installation ends with this version's package and the test's server
# stopped (the demo and a developer's server run from Debian's 15 too).
NAME=packages-$MAJOR
cleanup() {
    cluster_stop "$NAME" >/dev/null 2>&1 || true
    if [ -n "${DEB[$CURRENT]:-}" ]; then
        as_root env DEBIAN_FRONTEND=noninteractive dpkg -i "${DEB[$CURRENT]}" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

# The packages: each release from its commit (a clone without the history, such as a shallow
# one, fetches them from its origin; failing that, only this version's package is tested, from
# the released install scripts it carries), then this checkout.
HISTORY=yes
for release in "${RELEASES[@]}"; do
    read -r version commit <<< "$release"
    git -C "$PGT_ROOT" cat-file -e "$commit^{commit}" 2>/dev/null \
        || git -C "$PGT_ROOT" fetch -q --depth=1 origin "$commit" 2>/dev/null \
        || { HISTORY=no; echo "skipped - the release commits are not in this clone: $version ($commit)"; }
done
if [ "$HISTORY" = yes ]; then
    for release in "${RELEASES[@]}"; do
        read -r version commit <<< "$release"
        src="$PGT_STATE/package-src/$version"
        if [ "$(cat "$src/.commit" 2>/dev/null)" != "$commit" ]; then
            rm -rf "$src"; mkdir -p "$src"
            # -m: files dated now, not at the commit, so that cargo never takes an older build in
            # the release's target directory for up to date.
            git -C "$PGT_ROOT" archive "$commit" | tar -xm -C "$src"
            echo "$commit" > "$src/.commit"
        fi
        package "$MAJOR" "$src"
    done
fi
package "$MAJOR"

# 3. What each package carries.
for version in "${!DEB[@]}"; do
    listing=$(dpkg-deb -c "${DEB[$version]}" | awk '{print $6}')
    for f in "$PGT_ROOT"/sql/pg_tenancy--*--*.sql; do
        to=$(basename "$f" .sql); to=${to##*--}
        # An upgrade script into a version up to this one ships with it.
        if [ "$(printf '%s\n%s\n' "$to" "$version" | sort -V | tail -1)" = "$version" ]; then
            same "$version: the package carries $(basename "$f")" yes \
                "$(grep -qx "./usr/share/postgresql/$MAJOR/extension/$(basename "$f")" <<< "$listing" && echo yes || echo no)"
        fi
    done
    for f in pg_tenancy.so; do
        same "$version: the package carries lib/$f" yes \
            "$(grep -qx "./usr/lib/postgresql/$MAJOR/lib/$f" <<< "$listing" && echo yes || echo no)"
    done
    same "$version: the package carries its licence" yes \
        "$(grep -q "copyright$" <<< "$listing" && echo yes || echo no)"
    if [ -f "$PGT_ROOT/sql/released/pg_tenancy--$version.sql" ]; then
        got=$(tar -xzOf "${TARBALL[$version]}" --wildcards "*/extension/pg_tenancy--$version.sql" | sha256sum | cut -d' ' -f1)
        want=$(sha256sum < "$PGT_ROOT/sql/released/pg_tenancy--$version.sql" | cut -d' ' -f1)
        same "$version: the package's install script is the frozen one (sql/released/)" "$want" "$got"
    fi
done

# 1 and 2: dpkg -i over the previous version while the server runs, restart, update.
LOG="$PGT_STATE/$NAME/server.log"
q() { PGHOST="$PGT_STATE/$NAME" PGPORT=$PORT PGUSER=postgres psql_q -d pkgtest -Atc "$1"; }
answers() { q "SELECT 1" >/dev/null 2>&1; }
no_crash() { ! tail -n "+$1" "$LOG" | grep -E "terminated by signal|was terminated|PANIC|startup process|shutting down due to"; }
install_deb() { as_root env DEBIAN_FRONTEND=noninteractive dpkg -i "$1" > "$PGT_STATE/package-dpkg.log" 2>&1; }

cluster_stop "$NAME" 2>/dev/null || true
as_root rm -rf "$PGT_STATE/$NAME"
ACME=a0000000-0000-4000-8000-000000000001
SLACK=a1000000-0000-4000-8000-000000000101
if [ "$HISTORY" = yes ]; then
    FIRST=0.1.0 CHAIN=(0.2.0 "$CURRENT")
else
    # This version's package over itself (dpkg replaces every file the same way), from a database
    # made with the released 0.2.0 install script it carries.
    FIRST=$CURRENT CHAIN=("$CURRENT")
fi
check "dpkg -i the $FIRST package" install_deb "${DEB[$FIRST]}"
cluster_start "$NAME" $PORT
PGHOST="$PGT_STATE/$NAME" PGPORT=$PORT PGUSER=postgres psql_q -d postgres -c "CREATE DATABASE pkgtest"
if [ "$HISTORY" = yes ]; then
    same "CREATE EXTENSION installs 0.1.0, the default version of its package" 0.1.0 \
        "$(q "CREATE EXTENSION pg_tenancy; SELECT extversion FROM pg_extension WHERE extname = 'pg_tenancy'")"
else
    same "CREATE EXTENSION ... VERSION '0.2.0' from the released script the package carries" 0.2.0 \
        "$(q "CREATE EXTENSION pg_tenancy VERSION '0.2.0'; SELECT extversion FROM pg_extension WHERE extname = 'pg_tenancy'")"
fi
q "SELECT tenancy.seed_demo()" >/dev/null
CRED= KEY=
if [ "$HISTORY" = yes ]; then
    CRED=$(q "BEGIN; SELECT tenancy.set_tenant('$ACME'); SELECT tenancy.store_credential('$SLACK', 'oauth2_tokens', '{\"access_token\": \"written-by-0.1.0\"}', 'refresh-0.1.0'); COMMIT" | tail -1)
    KEY=$(q "BEGIN; SELECT tenancy.set_tenant('$ACME'); SELECT tenancy.create_api_key('from 0.1.0'); COMMIT" | tail -1)
fi
ROWS="SELECT (SELECT count(*) FROM tenancy.tenants) || '/' || (SELECT count(*) FROM tenancy.memberships) || '/'
          || (SELECT count(*) FROM tenancy.projects) || '/' || (SELECT count(*) FROM tenancy.request_logs) || '/'
          || (SELECT count(*) FROM tenancy.integration_credentials) || '/' || (SELECT count(*) FROM tenancy.api_keys)"
BEFORE=$(q "$ROWS")

for version in "${CHAIN[@]}"; do
    from=$(wc -l < "$LOG")
    check "dpkg -i the $version package while the server runs" install_deb "${DEB[$version]}"
    check "$version: the server still answers after the install" answers
    # New backends fork from the postmaster, which keeps the library it mapped: its functions run.
    same "$version: a new connection runs the library's functions" t \
        "$(q "SELECT tenancy.current_tenant_id() IS NULL")"
    check "$version: no crash in the server's log during the install" no_crash "$((from + 1))"
    cluster_stop "$NAME"
    cluster_start "$NAME" $PORT
    q "ALTER EXTENSION pg_tenancy UPDATE" >/dev/null 2>"$PGT_STATE/package-update.log" \
        || cat "$PGT_STATE/package-update.log"
    same "ALTER EXTENSION pg_tenancy UPDATE after the restart: $version" "$version" \
        "$(q "SELECT extversion FROM pg_extension WHERE extname = 'pg_tenancy'")"
    same "$version: every row is still there" "$BEFORE" "$(q "$ROWS")"
    if [ -n "$CRED" ]; then
        same "$version: the credential written by 0.1.0 decrypts" "written-by-0.1.0 refresh-0.1.0" \
            "$(q "BEGIN; SELECT tenancy.set_tenant('$ACME'); SELECT (r -> 'data' ->> 'access_token') || ' ' || (r ->> 'refresh_token') FROM tenancy.read_credential('$CRED') r; COMMIT" | tail -1)"
        same "$version: the API key made by 0.1.0 verifies" "$ACME" \
            "$(q "SELECT (tenancy.verify_api_key('$KEY')).tenant_id")"
    fi
    check "$version: no crash in the server's log since the install" no_crash "$((from + 1))"
done
same "$CURRENT: the secrets are in tenancy_private, no application role can use it" "f" \
    "$(q "SELECT has_schema_privilege('authenticated', 'tenancy_private', 'USAGE')")"
cluster_stop "$NAME"

# 4. The tarball's install.sh, into a copy of an installation of 15, and refusing another major.
dir="$PGT_STATE/package-tarball"
rm -rf "$dir"; mkdir -p "$dir"
tar -xzf "${TARBALL[$CURRENT]}" -C "$dir"
inst=$(echo "$dir"/pg_tenancy-*)
other=$(test_pg_config_of 16)
if [ -x "$other" ]; then
    check "install.sh refuses an installation of another major" \
        bash -c "! PG_CONFIG='$other' '$inst/install.sh' >/dev/null 2>&1"
fi
# Into a copy of the tests' own installation of 15, thrown away after.
if [ -x "$(test_pg_config_of "$MAJOR")" ]; then
    as_root rm -rf "$dir/pg"
    cp -a "$(dirname "$(dirname "$(test_pg_config_of "$MAJOR")")")" "$dir/pg"
    target="$dir/pg/bin/pg_config"
    check "install.sh installs into an installation of $MAJOR" as_root env PG_CONFIG="$target" "$inst/install.sh"
    same "install.sh: the library installed is the package's" \
        "$(sha256sum < "$inst/lib/pg_tenancy.so")" "$(sha256sum < "$("$target" --pkglibdir)/pg_tenancy.so")"
    same "install.sh: every script of the package installed" "$(ls "$inst/extension" | wc -l)" \
        "$(cd "$inst/extension" && for f in *; do cmp -s "$f" "$("$target" --sharedir)/extension/$f" && echo "$f"; done | wc -l)"
    as_root rm -rf "$dir/pg"
fi
finish
