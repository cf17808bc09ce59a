#!/usr/bin/env bash
# The GrainFS test command. Builds the solution and runs every test; the tests start what they need
# themselves (PostgreSQL 15 from Debian and moto's S3 server, on free 127.0.0.1 ports, plus silo and CLI
# processes) under one scratch folder, and everything started is stopped when this script exits,
# whether the tests pass, fail or are interrupted.
#   infra/test/run-tests.sh [extra dotnet test arguments, e.g. --filter FullyQualifiedName~Cluster]
set -euo pipefail
cd "$(dirname "$0")/../.."

missing=()
command -v dotnet >/dev/null || missing+=("the .NET 10 SDK (dotnet)")
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=("PostgreSQL 15 server (apt-get install postgresql-15)")
command -v psql >/dev/null || missing+=("psql (apt-get install postgresql-client-15)")
python3 -c "import moto.server" 2>/dev/null || missing+=("moto's S3 server for python3 (pip install 'moto[server]')")
command -v fusermount3 >/dev/null || missing+=("fuse3 (apt-get install fuse3)")
[ -e /dev/fuse ] || missing+=("/dev/fuse (the FUSE tests mount for real)")
/usr/bin/python3 -c "import torch, PIL" 2>/dev/null || missing+=("PyTorch and Pillow for Debian's python3 (apt-get install python3-torch python3-pil)")
command -v rsync >/dev/null || missing+=("rsync (apt-get install rsync)")
/usr/bin/python3 -c "import ensurepip, venv" 2>/dev/null || missing+=("python3-venv (apt-get install python3-venv)")
command -v tcpdump >/dev/null || missing+=("tcpdump (apt-get install tcpdump)")
/usr/bin/python3 -c "import fusepy" 2>/dev/null || missing+=("fusepy for Debian's python3 (apt-get install python3-fusepy libfuse2)")
if [ ${#missing[@]} -gt 0 ]; then
  printf 'run-tests.sh: missing prerequisites:\n' >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 2
fi

root=$(mktemp -d /tmp/grainfs-tests.XXXXXX)
chmod 755 "$root"
export GRAINFS_TEST_ROOT=$root

cleanup() {
  local pid
  # Every child of the tests carries GRAINFS_TEST_ROOT in its environment.
  for pid in $(grep -lsa "GRAINFS_TEST_ROOT=$root" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3); do
    [ "$pid" != "$$" ] && kill -9 "$pid" 2>/dev/null || true
  done
  for data in "$root"/pg-*/data; do
    [ -d "$data" ] || continue
    if [ "$(id -u)" = 0 ]; then
      su postgres -s /bin/bash -c "/usr/lib/postgresql/15/bin/pg_ctl -D $data -m immediate stop" >/dev/null 2>&1 || true
    else
      /usr/lib/postgresql/15/bin/pg_ctl -D "$data" -m immediate stop >/dev/null 2>&1 || true
    fi
  done
  rm -rf "$root"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

configuration=${CONFIGURATION:-Release}
dotnet build Orleans.sln -c "$configuration" -nologo -v q
dotnet test Orleans.sln -c "$configuration" --no-build -nologo \
  --blame-hang-timeout 10m "$@"
