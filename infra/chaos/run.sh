#!/usr/bin/env bash
# The fault suite: a GrainFS deployment on loopback (s3rver, one silo whose SSD tier sits on faultfs.py, a FUSE mount)
# under readers (SDK and FUSE, every byte checked) and a writer (SDK, every acknowledged file checked once uploaded),
# with each fault injected for real; prints the table (fault, expectation, reads, writes, errors, bytes wrong,
# acknowledged writes lost, recovery time) and writes it to infra/chaos/results/. Exit 0 when every row met its expectation.
#   infra/chaos/run.sh [--only fuse-kill,silo-stop,s3-stall,s3-down,disk-eio,disk-full,files-removed] [--hold SECONDS]
# Needs root, fuse3, python3-fusepy + libfuse2 (faultfs.py) and node (s3rver, installed by npm as infra/bench/run.sh does).
set -euo pipefail
cd "$(dirname "$0")/../.."
missing=()
for tool in dotnet node npm fusermount3; do command -v "$tool" >/dev/null || missing+=("$tool"); done
/usr/bin/python3 -c "import fusepy" 2>/dev/null || missing+=("python3-fusepy libfuse2")
if [ ${#missing[@]} -gt 0 ]; then
  echo "run.sh: missing: ${missing[*]} (on Debian: apt-get install -y fuse3 nodejs npm python3-fusepy libfuse2)" >&2
  exit 2
fi
if [ ! -f infra/bench/node_modules/s3rver/bin/s3rver.js ]; then
  echo "run.sh: installing s3rver (npm)" >&2
  (cd infra/bench && npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi
dotnet build Orleans.sln -c Release -nologo -v q >/dev/null
exec dotnet Tests/Benchmarks/bin/Release/net10.0/grainfs-bench.dll chaos "$@"
