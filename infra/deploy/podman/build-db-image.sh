#!/usr/bin/env bash
# Builds a PostgreSQL 15 OCI image for a GrainFS cluster without any registry: the same cached Debian bookworm root
# file system as build-image.sh, with Debian's postgresql-15 installed by apt-get inside a buildah container (from the
# Debian mirror), and an entry point that makes the database on first start.
#   infra/deploy/podman/build-db-image.sh [--tag grainfs-postgres:15] [--refresh-rootfs]
# The container: data in /var/lib/postgresql/data (a volume); on first start it runs initdb and makes role and
# database `grainfs` (GRAINFS_DB_USER / GRAINFS_DB_NAME) with the password in the file GRAINFS_DB_PASSWORD_FILE
# (required then; connections from other hosts use scram-sha-256; the superuser `postgres` has no password and logs
# in only through the local socket). It serves on port 5432 of every address. psql is in the image too.
# Needs root, podman, buildah, debootstrap (for the root file system the first time).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

tag=localhost/grainfs-postgres:15
refresh=no
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) [ $# -ge 2 ] || die "--tag needs an image name"; tag=$2; shift 2 ;;
    --refresh-rootfs) refresh=yes; shift ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "$me: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
need_root
need_cmd podman buildah debootstrap tar

start_build

# The same package list as build-image.sh, so both images share the cached root file system.
rootfs=$(rootfs_tarball bookworm "fuse3,ca-certificates,libicu72,libc6,libgcc-s1,libstdc++6,zlib1g,libssl3,tzdata" "$refresh")

# The entry point, run as root: prepares the data folder, then becomes postgres.
mkdir -p "$work/bin"
cat >"$work/bin/grainfs-db" <<'ENTRY'
#!/bin/sh
# Entry point of the grainfs-postgres image: initdb on first start, then postgres in the foreground (PID 1).
set -eu
PGDATA=${PGDATA:-/var/lib/postgresql/data}
bin=/usr/lib/postgresql/15/bin
user=${GRAINFS_DB_USER:-grainfs}
db=${GRAINFS_DB_NAME:-grainfs}
fail() { echo "grainfs-db: $*" >&2; exit 1; }
mkdir -p "$PGDATA" /run/postgresql
chown postgres:postgres "$PGDATA" /run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  [ -n "${GRAINFS_DB_PASSWORD_FILE:-}" ] || fail "first start: set GRAINFS_DB_PASSWORD_FILE to a file holding the password of role $user"
  [ -r "$GRAINFS_DB_PASSWORD_FILE" ] || fail "first start: cannot read GRAINFS_DB_PASSWORD_FILE '$GRAINFS_DB_PASSWORD_FILE'"
  password=$(head -n1 "$GRAINFS_DB_PASSWORD_FILE")
  case "$password" in
    ''|*"'"*|*'\'*) fail "the password in $GRAINFS_DB_PASSWORD_FILE is empty or holds a quote or backslash" ;;
  esac
  case "$user$db" in *[!a-z0-9_]*) fail "GRAINFS_DB_USER and GRAINFS_DB_NAME: lower-case letters, digits and _ only" ;; esac
  runuser -u postgres -- "$bin/initdb" -D "$PGDATA" -U postgres -E UTF8 --locale=C.UTF-8 \
    --auth-local=peer --auth-host=scram-sha-256 >/dev/null
  printf "CREATE ROLE %s LOGIN PASSWORD '%s'\nCREATE DATABASE %s OWNER %s\n" "$user" "$password" "$db" "$user" \
    | runuser -u postgres -- "$bin/postgres" --single -D "$PGDATA" postgres >/dev/null
  echo "host all all 0.0.0.0/0 scram-sha-256" >>"$PGDATA/pg_hba.conf"
  echo "host all all ::/0 scram-sha-256" >>"$PGDATA/pg_hba.conf"
  echo "grainfs-db: made database $db for role $user in $PGDATA" >&2
fi
# setpriv execs (runuser would stay the parent and not pass SIGINT, the stop signal, on to postgres).
exec setpriv --reuid=postgres --regid=postgres --init-groups "$bin/postgres" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/run/postgresql "$@"
ENTRY
chmod 755 "$work/bin/grainfs-db"

log "building $tag (postgresql-15 from the Debian mirror, inside a buildah container)"
ctr=$(buildah from --name "grainfs-db-build-$$" scratch)
low buildah add --quiet "$ctr" "$rootfs" / >/dev/null
probe_buildah "$ctr"
# The host's network: the mirror is reached as the host reaches it (no bridge or NAT needed for the build).
if ! low buildah run "${buildah_run_opts[@]}" --network host "$ctr" -- /bin/sh -c \
    'export DEBIAN_FRONTEND=noninteractive; apt-get -q update && apt-get -q -y install --no-install-recommends postgresql-15 postgresql-client-15 \
     && apt-get clean && rm -rf /var/lib/apt/lists/* /usr/share/man/* /usr/share/locale/*' >"$work/apt.log" 2>&1; then
  tail -15 "$work/apt.log" >&2
  die "apt-get install postgresql-15 failed inside the build container"
fi
buildah add --quiet "$ctr" "$work/bin/grainfs-db" /usr/local/bin/grainfs-db >/dev/null
buildah config \
  --entrypoint '["/usr/local/bin/grainfs-db"]' \
  --env PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env LANG=C.UTF-8 \
  --env PGDATA=/var/lib/postgresql/data \
  --port 5432/tcp \
  --volume /var/lib/postgresql/data \
  --stop-signal SIGINT \
  --label org.opencontainers.image.title=grainfs-postgres \
  --label org.opencontainers.image.description="PostgreSQL 15 (Debian bookworm) for a GrainFS cluster" \
  --label org.opencontainers.image.version=15 \
  --label org.opencontainers.image.created="$(date -u +%FT%TZ)" \
  "$ctr"
previous=$(podman image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
low buildah commit --quiet --format oci --rm "$ctr" "$tag" >/dev/null
ctr=""
# The image this tag named before, now untagged: removed unless a container still uses it.
if [ -n "$previous" ] && [ "$previous" != "$(podman image inspect --format '{{.Id}}' "$tag")" ]; then
  podman rmi "$previous" >/dev/null 2>&1 || log "the previous $tag ($previous) is still used by a container: kept"
fi
echo "$tag ($(podman image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}')) built in $(( $(date +%s) - started )) s"
