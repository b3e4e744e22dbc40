#!/usr/bin/env bash
# Drizzle over the public schema `tenancy`, as a TypeScript developer would use it:
#   1. install   npm ci, only when node_modules is missing or was installed from another
#                package.json / package-lock.json / node version
#   2. pull      drizzle-kit pull of schema `tenancy` into ./out (cleaned first), as DATABASE_URL
#   3. grep      nothing in out/schema.ts or out/relations.ts that drizzle-kit marks as unsupported
#                (unknown(...), TODO, Warning, "can't parse", name conflicts), nor a CHECK that it
#                mangled (its text starting with "CHECK (")
#   4. tsc       tsc --noEmit (strict) over out/schema.ts, out/relations.ts, app.ts, request_logs.ts,
#                drizzle.config.ts
#   5. app       tsx app.ts as APP_URL with API_KEY: authenticate, then select through Drizzle
# Env: DATABASE_URL (the database's owner or a superuser: used by the pull only), APP_URL (a login
# role, a member of `authenticated`), API_KEY (a key of the tenant the app should see).
# Exits non-zero at the first step that fails, saying which.  Used by pgrx-tests/tests/drizzle.rs.
set -uo pipefail
cd "$(dirname "$0")" || exit 1
DIR=$(pwd)

step() { STEP=$1; STEP_START=$SECONDS; echo "run.sh: [$STEP] $2"; }
done_step() { echo "run.sh: [$STEP] done ($((SECONDS - STEP_START))s)"; }
fail() {
    echo "run.sh: FAILED at step '$STEP': $*" >&2
    exit 1
}

STEP=env
for v in DATABASE_URL APP_URL API_KEY; do
    [ -n "${!v:-}" ] || fail "$v is not set"
done
command -v node >/dev/null || fail "node is not installed (Debian: apt-get install nodejs npm)"
command -v npm >/dev/null || fail "npm is not installed (Debian: apt-get install npm)"
[ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ] || fail "node $(node --version) is too old: 20 or later"

step install "node $(node --version), npm $(npm --version)"
MARKER=node_modules/.pg_tenancy-installed
WANT=$({ cat package.json package-lock.json; node --version; } | sha256sum | cut -d' ' -f1)
if [ "$(cat "$MARKER" 2>/dev/null)" != "$WANT" ] \
    || [ ! -x node_modules/.bin/drizzle-kit ] || [ ! -x node_modules/.bin/tsc ] || [ ! -x node_modules/.bin/tsx ]; then
    echo "run.sh: [install] node_modules missing or stale: npm ci"
    npm ci --prefer-offline --no-audit --no-fund || fail "npm ci"
    echo "$WANT" > "$MARKER"
else
    echo "run.sh: [install] node_modules up to date with package-lock.json"
fi
done_step

step pull "drizzle-kit pull (schemaFilter: tenancy) into $DIR/out"
rm -rf out
# Its progress output is noise (spinners): kept in pull.log, shown when the pull fails.
if ! node_modules/.bin/drizzle-kit pull --config drizzle.config.ts > pull.log 2>&1; then
    sed 's/\x1b\[[0-9;]*[A-Za-z]//g' pull.log | awk '!seen[$0]++' >&2
    # drizzle-kit exits 1 without a word when it cannot connect: say why.
    node --input-type=module -e "
        import pg from 'pg';
        const c = new pg.Client({ connectionString: process.env.DATABASE_URL });
        try { await c.connect(); await c.query('SELECT 1'); }
        catch (e) { console.error('run.sh: [pull] DATABASE_URL: ' + e.message); }
        finally { await c.end().catch(() => {}); }" >&2
    fail "drizzle-kit pull"
fi
for f in out/schema.ts out/relations.ts; do
    [ -s "$f" ] || { cat pull.log >&2; fail "drizzle-kit pull wrote no $f"; }
done
sed 's/\x1b\[[0-9;]*[A-Za-z]//g' pull.log | grep -oE '\[✓\] +[0-9]+ +[a-z ]+ fetched' \
    | tr -s ' ' | awk '!seen[$0]++' | sed 's/^/run.sh: [pull]   /'
done_step

step grep "what drizzle-kit could not represent"
unsupported=$(grep -nE "unknown\(|TODO|Warning|[Ff]ailed to parse|[Cc]an't parse|in conflict with|[Uu]nsupported" \
    out/schema.ts out/relations.ts)
mangled=$(grep -nHE 'sql`CHECK ?\(' out/schema.ts)
if [ -n "$unsupported" ]; then
    echo "run.sh: [grep] what drizzle-kit does not support ($(echo "$unsupported" | grep -c 'unknown(') unknown() columns):" >&2
    echo "$unsupported" >&2
fi
if [ -n "$mangled" ]; then
    echo "run.sh: [grep] CHECK constraints that drizzle-kit mangled (a CHECK whose whole expression is a function call: write it 'f(...) IS NOT FALSE'):" >&2
    echo "$mangled" >&2
fi
[ -z "$unsupported$mangled" ] || fail "the pulled schema has what drizzle-kit cannot represent, lines above"
done_step

step tsc "tsc --noEmit (strict) over out/schema.ts, out/relations.ts, app.ts"
node_modules/.bin/tsc --noEmit -p tsconfig.json || fail "tsc: the pulled schema or app.ts does not type-check"
done_step

step app "tsx app.ts as APP_URL"
node_modules/.bin/tsx app.ts || fail "app.ts"
done_step
echo "run.sh: all steps passed"
