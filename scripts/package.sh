#!/usr/bin/env bash
# Release packages of pg_tenancy for one PostgreSQL major:
#   scripts/package.sh MAJOR [SOURCE_DIR]
# builds the extension (release, `cargo pgrx package`) against that major's pg_config and writes,
# into $PGT_PACKAGE_OUT (default: target/packages/):
#   pg_tenancy-VERSION-pgMAJOR-ARCH.tar.gz        lib/pg_tenancy.so, extension/ (the control file,
#                                                 the install script, every upgrade script, the
#                                                 frozen install scripts of released versions),
#                                                 LICENSE, INSTALL and install.sh for any layout
#   postgresql-MAJOR-pg-tenancy_VERSION-1_ARCH.deb  the same files where Debian's (and
#                                                 apt.postgresql.org's) postgresql-MAJOR looks:
#                                                 /usr/lib/postgresql/MAJOR/lib and
#                                                 /usr/share/postgresql/MAJOR/extension
# and prints their paths, one per line, on stdout.
#
# Installing either over an older version while a server runs is safe: dpkg and install.sh write
# each file beside its target and rename it into place, so a running server keeps the library it
# mapped (an in-place copy over a mapped library crashes the server at its next fork).  A server
# that preloads pg_tenancy uses the new library from its next restart; run
# `ALTER EXTENSION pg_tenancy UPDATE` in each database after that restart (docs/upgrading.md).
#
# SOURCE_DIR: another checkout to package instead of this one (the package test builds 0.1.0 and
# 0.2.0 from their release commits); its own Cargo.toml gives the version, and it builds in a target
# directory of its own under $PGT_STATE/package-target (a second build is incremental).
source "$(dirname "$0")/common.sh"
[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: scripts/package.sh MAJOR [SOURCE_DIR]"
MAJOR=$1
SRC=$(cd "${2:-$PGT_ROOT}" && pwd)
use_pg "$MAJOR"
ensure_all "$MAJOR" >&2
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (Debian's dpkg)"

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$SRC/Cargo.toml" | head -1)
[ -n "$VERSION" ] || die "no version in $SRC/Cargo.toml"
ARCH=$(dpkg --print-architecture)
OUT=${PGT_PACKAGE_OUT:-$PGT_ROOT/target/packages}
WORK="$PGT_STATE/package-work/$VERSION-pg$MAJOR"
mkdir -p "$OUT"
as_root rm -rf "$WORK"
mkdir -p "$WORK"

# This checkout builds in its own target directory; another source in one of its own per version
# and major: sources of different versions must never share one (cargo may take another version's
# library for fresh and package it).
target="$SRC/target"
[ "$SRC" = "$PGT_ROOT" ] || target="$PGT_STATE/package-target/$VERSION-pg$MAJOR"
log "building pg_tenancy $VERSION (release) for PostgreSQL $MAJOR from $SRC"
(cd "$SRC" && CARGO_TARGET_DIR="$target" \
    cargo pgrx package --no-default-features --features "pg$MAJOR" --pg-config "$PGT_PG_CONFIG" \
    --out-dir "$WORK/pgrx") > "$WORK/build.log" 2>&1 \
    || { tail -40 "$WORK/build.log" >&2; die "cargo pgrx package failed (see $WORK/build.log)"; }

# What cargo pgrx package laid out under pg_config's paths, gathered into lib/ and extension/.
STAGE="$WORK/pg_tenancy-$VERSION-pg$MAJOR-$ARCH"
mkdir -p "$STAGE/lib" "$STAGE/extension"
so=$(find "$WORK/pgrx" -name pg_tenancy.so -type f | head -1)
control=$(find "$WORK/pgrx" -name pg_tenancy.control -type f | head -1)
[ -n "$so" ] && [ -n "$control" ] || die "cargo pgrx package wrote no pg_tenancy.so or control file"
install -m 0755 "$so" "$STAGE/lib/pg_tenancy.so"
strip --strip-unneeded "$STAGE/lib/pg_tenancy.so"   # as Debian's packages are: the symbols PostgreSQL loads stay
cp "$(dirname "$control")"/pg_tenancy.control "$(dirname "$control")"/pg_tenancy--*.sql "$STAGE/extension/"
# Every upgrade script, and the frozen install scripts of released versions (CREATE EXTENSION
# ... VERSION): whatever of them the source has.
for f in "$SRC"/sql/pg_tenancy--*--*.sql "$SRC"/sql/released/pg_tenancy--*.sql; do
    [ -f "$f" ] && cp "$f" "$STAGE/extension/"
done
[ -f "$STAGE/extension/pg_tenancy--$VERSION.sql" ] || die "no install script for $VERSION"
# A released version ships its frozen install script (this checkout's sql/released/), which the
# source must regenerate: the same statements (cargo pgrx may order independent sections
# differently from one build to the next).
frozen="$PGT_ROOT/sql/released/pg_tenancy--$VERSION.sql"
if [ -f "$frozen" ]; then
    cmp -s <(sort "$frozen") <(sort "$STAGE/extension/pg_tenancy--$VERSION.sql") \
        || die "$SRC does not build the released $VERSION: its install script differs from $frozen"
    cp "$frozen" "$STAGE/extension/pg_tenancy--$VERSION.sql"
fi
chmod 0644 "$STAGE"/extension/*
# The library is the one the scripts were made for: every C symbol a script of the package names
# ('MODULE_PATHNAME', '<symbol>': the install scripts, old ones included, and the upgrade scripts)
# is exported by it.
named=$(cat "$STAGE"/extension/*.sql | tr -d '\n' | grep -o "'MODULE_PATHNAME', *'[A-Za-z0-9_]*'" | sed "s/.*'\([A-Za-z0-9_]*\)'$/\1/" | sort -u)
[ -n "$named" ] || die "no C function in the scripts of the package"
missing=$(comm -23 <(echo "$named") <(nm -D --defined-only "$STAGE/lib/pg_tenancy.so" | awk '{print $3}' | sort -u))
[ -z "$missing" ] || die "the library built does not export what the package's scripts name: $(echo $missing)"
if [ -f "$SRC/LICENSE" ]; then cp "$SRC/LICENSE" "$STAGE/LICENSE"; else cp "$PGT_ROOT/LICENSE" "$STAGE/LICENSE"; fi

cat > "$STAGE/install.sh" <<EOF
#!/bin/sh
# Install pg_tenancy $VERSION for PostgreSQL $MAJOR into the installation whose pg_config is
# \$PG_CONFIG (default: the first pg_config on PATH).  Each file is written beside its target and
# renamed into place: a running server keeps the library it mapped.  Run as the owner of the
# PostgreSQL installation (root for a distribution's).
set -eu
PG_CONFIG=\${PG_CONFIG:-pg_config}
here=\$(cd "\$(dirname "\$0")" && pwd)
major=\$("\$PG_CONFIG" --version | sed -n 's/^PostgreSQL \([0-9]*\).*/\1/p')
[ "\$major" = "$MAJOR" ] || { echo "install.sh: this package is for PostgreSQL $MAJOR; \$PG_CONFIG is PostgreSQL \$major" >&2; exit 1; }
put() { # put FILE DIR MODE
    tmp="\$2/.\$(basename "\$1").new.\$\$"
    cp "\$1" "\$tmp" && chmod "\$3" "\$tmp" && mv -f "\$tmp" "\$2/\$(basename "\$1")"
}
libdir=\$("\$PG_CONFIG" --pkglibdir)
extdir=\$("\$PG_CONFIG" --sharedir)/extension
put "\$here/lib/pg_tenancy.so" "\$libdir" 0755
for f in "\$here"/extension/*; do put "\$f" "\$extdir" 0644; done
echo "pg_tenancy $VERSION installed into \$libdir and \$extdir"
EOF
chmod 0755 "$STAGE/install.sh"
cat > "$STAGE/INSTALL" <<EOF
pg_tenancy $VERSION for PostgreSQL $MAJOR ($ARCH)

  PG_CONFIG=/path/to/pg_config ./install.sh      (as the installation's owner)

Then, in postgresql.conf: shared_preload_libraries = 'pg_tenancy' and tenancy.keyring_file
(see README.md, "Configure"), restart, and in each database: CREATE EXTENSION pg_tenancy;
or, over an older version: restart, then ALTER EXTENSION pg_tenancy UPDATE;
EOF

TARBALL="$OUT/pg_tenancy-$VERSION-pg$MAJOR-$ARCH.tar.gz"
tar -C "$WORK" --owner=0 --group=0 --sort=name -czf "$TARBALL" "$(basename "$STAGE")"

# The Debian package.
PKG=postgresql-$MAJOR-pg-tenancy
DEB_ROOT="$WORK/deb"
mkdir -p "$DEB_ROOT/DEBIAN" "$DEB_ROOT/usr/lib/postgresql/$MAJOR/lib" \
         "$DEB_ROOT/usr/share/postgresql/$MAJOR/extension" "$DEB_ROOT/usr/share/doc/$PKG"
install -m 0755 "$STAGE/lib/pg_tenancy.so" "$DEB_ROOT/usr/lib/postgresql/$MAJOR/lib/"
install -m 0644 "$STAGE"/extension/* "$DEB_ROOT/usr/share/postgresql/$MAJOR/extension/"
{
    echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    echo "Upstream-Name: pg_tenancy"
    echo
    echo "Files: *"
    echo "License: Apache-2.0"
    echo
    sed 's/^$/./; s/^/ /' "$STAGE/LICENSE"
} > "$DEB_ROOT/usr/share/doc/$PKG/copyright"
chmod 0644 "$DEB_ROOT/usr/share/doc/$PKG/copyright"
cat > "$DEB_ROOT/DEBIAN/control" <<EOF
Package: $PKG
Version: $VERSION-1
Architecture: $ARCH
Maintainer: pg_tenancy developers <noreply@invalid>
Depends: postgresql-$MAJOR, libc6
Section: database
Priority: optional
Installed-Size: $(du -sk "$DEB_ROOT/usr" | cut -f1)
Description: multi-tenant SaaS data foundation for PostgreSQL $MAJOR
 pg_tenancy installs tenants, users, memberships, API keys, credentials, request
 logs and more, with Row Level Security forced on every table and the tenant
 context set only by functions that check membership.  Preload it
 (shared_preload_libraries = 'pg_tenancy'), restart, then CREATE EXTENSION, or
 ALTER EXTENSION pg_tenancy UPDATE over an older version.
EOF
DEB="$OUT/${PKG}_$VERSION-1_$ARCH.deb"
dpkg-deb --root-owner-group -Zxz --build "$DEB_ROOT" "$DEB" >/dev/null
log "packages of pg_tenancy $VERSION for PostgreSQL $MAJOR in $OUT"
echo "$TARBALL"
echo "$DEB"
