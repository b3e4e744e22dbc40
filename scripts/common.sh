# Shared by scripts/demo.sh, scripts/test.sh and bench/run.sh.  Source it; do not run it.
#
# Everything here is idempotent and quick when already done: it installs what is missing (Debian
# packages, cargo-pgrx 0.18.0, `cargo pgrx init`, an unprivileged OS user to run PostgreSQL), builds
# and installs the extension, and starts throwaway clusters under $PGT_STATE.
set -euo pipefail

PGT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PGT_PG_MAJOR=${PGT_PG_MAJOR:-15}
PGT_PG_CONFIG=${PGT_PG_CONFIG:-/usr/lib/postgresql/$PGT_PG_MAJOR/bin/pg_config}
PGT_STATE=${PGT_STATE:-/var/tmp/pg_tenancy}
PGT_OS_USER=${PGT_OS_USER:-tenancy}
PGRX_VERSION=0.18.0

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Run a command as root (we may already be root, or have sudo).
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Run a command as the unprivileged user that owns the clusters (PostgreSQL refuses root).
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        sudo -u "$PGT_OS_USER" -- "$@"
    else
        "$@"
    fi
}

pg_bin() { echo "$("$PGT_PG_CONFIG" --bindir)/$1"; }

ensure_packages() {
    local wanted=(postgresql-$PGT_PG_MAJOR postgresql-server-dev-$PGT_PG_MAJOR libclang-dev clang sudo
                  postgresql-$PGT_PG_MAJOR-pgtap libtap-parser-sourcehandler-pgtap-perl pgbouncer)
    local missing=()
    for p in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

ensure_cargo_pgrx() {
    command -v cargo >/dev/null || die "cargo not found: install Rust (rustup) first"
    if ! cargo pgrx --version 2>/dev/null | grep -q "$PGRX_VERSION"; then
        log "installing cargo-pgrx $PGRX_VERSION (about 8 minutes, once)"
        cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
    fi
    # `cargo pgrx init` with the distribution's pg_config; never let pgrx download PostgreSQL.
    local cfg="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
    if ! grep -q "^pg$PGT_PG_MAJOR = \"$PGT_PG_CONFIG\"" "$cfg" 2>/dev/null; then
        log "cargo pgrx init --pg$PGT_PG_MAJOR $PGT_PG_CONFIG"
        cargo pgrx init "--pg$PGT_PG_MAJOR" "$PGT_PG_CONFIG" >/dev/null
    fi
}

ensure_os_user() {
    if ! id "$PGT_OS_USER" >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ]; then
            log "creating OS user $PGT_OS_USER (PostgreSQL does not run as root)"
            useradd --system --create-home --shell /bin/bash "$PGT_OS_USER"
        else
            PGT_OS_USER=$(id -un)
        fi
    fi
    as_root mkdir -p "$PGT_STATE"
    as_root chown "$PGT_OS_USER" "$PGT_STATE"
}

ensure_all() {
    ensure_packages
    ensure_cargo_pgrx
    ensure_os_user
}

# Build and install the extension into $PGT_PG_CONFIG's directories.  $1: "release" or "debug".
install_extension() {
    local profile=${1:-debug} flags=()
    [ "$profile" = release ] && flags+=(--release)
    log "building and installing pg_tenancy ($profile) for PostgreSQL $PGT_PG_MAJOR"
    (cd "$PGT_ROOT" && as_root env "PATH=$PATH" "HOME=$HOME" cargo pgrx install "${flags[@]}" \
        --no-default-features --features "pg$PGT_PG_MAJOR" --pg-config "$PGT_PG_CONFIG") >"$PGT_STATE/install.log" 2>&1 \
        || { cat "$PGT_STATE/install.log" >&2; die "cargo pgrx install failed"; }
}

# cluster_start NAME PORT [extra postgresql.conf lines...]: a throwaway cluster under
# $PGT_STATE/NAME, owned by $PGT_OS_USER, listening on 127.0.0.1:PORT and a socket in its folder,
# with pg_tenancy preloaded and a root keyring of its own ($PGT_STATE/NAME/keyring, mode 0600,
# outside the data directory).  The settings live in data/pg_tenancy.conf, rewritten at every
# start.  Exports PGHOST, PGPORT, PGUSER for the caller's psql.
cluster_start() {
    local name=$1 port=$2; shift 2
    local dir="$PGT_STATE/$name"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_root rm -rf "$dir"
        as_root mkdir -p "$dir"
        as_root chown "$PGT_OS_USER" "$dir"
        as_pg "$(pg_bin initdb)" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    fi
    grep -q "^include_if_exists = 'pg_tenancy.conf'" "$dir/data/postgresql.conf" \
        || echo "include_if_exists = 'pg_tenancy.conf'" | as_pg tee -a "$dir/data/postgresql.conf" >/dev/null
    if [ ! -s "$dir/keyring" ]; then
        printf '# pg_tenancy root keyring of the %s cluster (throwaway)\nk1 %s active\n' \
            "$name" "$(head -c 32 /dev/urandom | base64)" | as_pg tee "$dir/keyring" >/dev/null
        as_pg chmod 600 "$dir/keyring"
    fi
    {
        echo "# written by scripts/common.sh at every start"
        echo "port = $port"
        echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = '$dir'"
        echo "shared_preload_libraries = 'pg_tenancy'"
        echo "tenancy.keyring_file = '$dir/keyring'"
        echo "fsync = off"
        echo "max_connections = 100"
        for line in "$@"; do echo "$line"; done
    } | as_pg tee "$dir/data/pg_tenancy.conf" >/dev/null
    if ! as_pg "$(pg_bin pg_ctl)" -D "$dir/data" status >/dev/null 2>&1; then
        as_pg "$(pg_bin pg_ctl)" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
            || { tail -20 "$dir/server.log" >&2; die "PostgreSQL did not start (see $dir/server.log)"; }
    else
        # Already running: restart so that a freshly installed library and the settings are loaded.
        as_pg "$(pg_bin pg_ctl)" -D "$dir/data" -l "$dir/server.log" -w -t 60 restart >/dev/null \
            || { tail -20 "$dir/server.log" >&2; die "PostgreSQL did not restart (see $dir/server.log)"; }
    fi
    export PGHOST="$dir" PGPORT="$port" PGUSER=postgres
}

cluster_stop() {
    local dir="$PGT_STATE/$1"
    as_pg "$(pg_bin pg_ctl)" -D "$dir/data" -w stop -m fast >/dev/null 2>&1 || true
}

psql_q() { "$(pg_bin psql)" -X -q -v ON_ERROR_STOP=1 "$@"; }
