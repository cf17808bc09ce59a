#!/usr/bin/env bash
# Creates or upgrades the whole GrainFS PostgreSQL schema (Orleans membership + GrainFS metadata) in the
# database named by an Npgsql connection string, the same string the silo and CLI take with --cluster:
#   infra/db/apply.sh "Host=127.0.0.1;Port=5432;Username=postgres;Password=…;Database=grainfs"
# Every NNN_*.sql file here is idempotent and applied in order, each in its own transaction.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
conn=${1:-${GRAINFS_CLUSTER:-}}
if [ -z "$conn" ]; then
  echo "usage: infra/db/apply.sh \"<Npgsql connection string>\" (or set GRAINFS_CLUSTER)" >&2
  exit 2
fi
command -v psql >/dev/null || { echo "apply.sh: psql not found (apt-get install postgresql-client)" >&2; exit 2; }

# Npgsql keywords -> libpq environment. Keys are case-insensitive; unknown keys are ignored.
unset PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE PGSSLMODE
IFS=';' read -ra parts <<<"$conn"
for part in "${parts[@]}"; do
  [ -z "${part// /}" ] && continue
  key=$(echo "${part%%=*}" | tr '[:upper:]' '[:lower:]' | tr -d ' ')
  value=${part#*=}
  case "$key" in
    host|server) export PGHOST=$value ;;
    port) export PGPORT=$value ;;
    username|user|userid|"user id") export PGUSER=$value ;;
    password) export PGPASSWORD=$value ;;
    database|db) export PGDATABASE=$value ;;
    sslmode) export PGSSLMODE=$(echo "$value" | tr '[:upper:]' '[:lower:]') ;;
  esac
done

for file in "$here"/[0-9][0-9][0-9]_*.sql; do
  if ! out=$(psql -X -q -v ON_ERROR_STOP=1 --single-transaction -f "$file" 2>&1); then
    echo "apply.sh: $(basename "$file") failed on ${PGHOST:-localhost}:${PGPORT:-5432}/${PGDATABASE:-}: $out" >&2
    exit 1
  fi
done
version=$(psql -X -qtA -c "select version from grainfs_schema where id = 1")
echo "GrainFS schema at version $version on ${PGHOST:-localhost}:${PGPORT:-5432}/${PGDATABASE:-${PGUSER:-}}"
