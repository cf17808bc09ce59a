#!/usr/bin/env bash
# The fault suite: a GrainFS deployment on loopback (s3rver, one silo whose SSD tier sits on faultfs.py, a FUSE mount)
# under readers (SDK and FUSE, every byte checked) and a writer (SDK, every acknowledged file checked once uploaded),
# with each fault injected for real; prints the table (fault, expectation, reads, writes, errors, bytes wrong,
# acknowledged writes lost, recovery time) and writes it to infra/chaos/results/. Exit 0 when every row met its expectation.
#   infra/chaos/run.sh [--only fuse-kill,silo-stop,s3-stall,s3-down,disk-eio,disk-full,files-removed] [--hold SECONDS]
# Needs root, fuse3, python3-fusepy + libfuse2 (faultfs.py) and node (s3rver, installed by npm as infra/bench/run.sh does).
set -euo pipefail
cd "$(dirname "$0")/../.."
source infra/chaos/prepare.sh "run.sh"
exec dotnet Tests/Benchmarks/bin/Release/net10.0/grainfs-bench.dll chaos "$@"
