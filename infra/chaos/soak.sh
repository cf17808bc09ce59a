#!/usr/bin/env bash
# The soak: the fault suite's deployment (PostgreSQL, s3rver, two silos, a FUSE mount, all on loopback) under mixed
# reads and writes from several processes — this one through the SDK, a Python reader and a Python writer through the
# FUSE mount (soak_fuse.py) — with silo B SIGKILLed and started again every --kill-every seconds. Checks every byte read
# and every acknowledged write, samples every process's memory, threads and open files, prints the table with the
# memory slopes and writes it to infra/chaos/results/soak-DATE.md. Exit 0 when nothing was wrong or lost and no error
# came outside a silo's restart.
#   infra/chaos/soak.sh [--minutes 30] [--kill-every 180] [--sample 20]
set -euo pipefail
cd "$(dirname "$0")/../.."
source infra/chaos/prepare.sh "soak.sh"
exec dotnet Tests/Benchmarks/bin/Release/net10.0/grainfs-bench.dll soak "$@"
