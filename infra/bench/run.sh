#!/usr/bin/env bash
# GrainFS against the tools users would pick instead — direct S3 GETs, rclone mount (full VFS cache), s3fs
# (use_cache) and local disk — on the same data in one run, with a training-style workload.
#   infra/bench/run.sh                      the default run (about 12 minutes on 2 cores)
#   infra/bench/run.sh --preset large       30,000 images and 2 × 1 GiB files (flags such as --images override it)
#   infra/bench/run.sh --epochs false       without the epoch section (cold first epoch, a dataset twice the cache)
# Results (markdown table, JSON, PNG chart, machine description) go to infra/bench/results/.
# Every mount and process it starts is stopped when it exits, fails or is interrupted (Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/../.."
bench=infra/bench
work=${GRAINFS_BENCH_WORK:-/tmp/grainfs-bench/compare}

missing=()
for tool in dotnet node npm rclone s3fs fusermount3 fio; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
[ -e /dev/fuse ] || missing+=("/dev/fuse")
/usr/bin/python3 -c "import torch, PIL, numpy, matplotlib" 2>/dev/null || missing+=("python3-torch/python3-pil/python3-matplotlib for /usr/bin/python3")
if [ ${#missing[@]} -gt 0 ]; then
  echo "run.sh: missing: ${missing[*]}" >&2
  echo "run.sh: on Debian: apt-get install -y rclone s3fs fuse3 fio nodejs npm python3-torch python3-pil python3-matplotlib" >&2
  exit 2
fi

if [ ! -f "$bench/node_modules/s3rver/bin/s3rver.js" ]; then
  echo "run.sh: installing s3rver (npm)" >&2
  (cd "$bench" && npm install --no-audit --no-fund --loglevel=error >/dev/null) || { echo "run.sh: npm install of s3rver failed" >&2; exit 2; }
fi

cleanup() {
  local m pid
  if [ -d "$work/mnt" ]; then
    for m in "$work"/mnt/*; do
      mountpoint -q "$m" 2>/dev/null && { fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; }
    done
  fi
  # What the harness started names the work folder on its command line; the shells that started this script
  # may too (GRAINFS_BENCH_WORK=… in a wrapper), so this script's ancestors are spared.
  local ancestors=" " p=$$
  while [ -n "$p" ] && [ "$p" -gt 1 ]; do
    ancestors+="$p "
    p=$(awk '/^PPid:/ {print $2}' "/proc/$p/status" 2>/dev/null)
  done
  for pid in $(pgrep -f -- "$work" 2>/dev/null); do
    [[ "$ancestors" == *" $pid "* ]] || kill -9 "$pid" 2>/dev/null || true
  done
  # The GrainFS silo's MEM tier is RAM (tmpfs): not left occupied after the run.
  rm -rf /dev/shm/grainfs-compare /dev/shm/grainfs-compare-*
}
trap cleanup EXIT
trap 'exit 130' INT TERM

dotnet build Orleans.sln -c Release -nologo -v q >/dev/null
mkdir -p "$work"
dotnet Tests/Benchmarks/bin/Release/net10.0/grainfs-bench.dll compare --work "$work" "$@"
