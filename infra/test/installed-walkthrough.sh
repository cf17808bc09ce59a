#!/usr/bin/env bash
# The README's walk-through with installed binaries: packages this checkout (infra/package.sh), installs the tarball
# into a scratch prefix (infra/install.sh --prefix), starts the installed grainfs-silo on its embedded default (free
# loopback ports, state in the scratch folder) and runs the installed grainfs through the README's commands: mount a
# local folder, list, stat, load, cat, report, status, worker list, locality, k8s affinity, bench, a FUSE mount read
# with md5sum, unmount. Prints every command and its output; exit 0 when all of them succeeded. Stops what it started.
#   infra/test/installed-walkthrough.sh [--tarball dist/grainfs-VERSION-linux-x64.tar.gz]   (root for the FUSE part)
set -euo pipefail
cd "$(dirname "$0")/../.."

tarball=""
while [ $# -gt 0 ]; do
  case "$1" in
    --tarball) [ $# -ge 2 ] || { echo "installed-walkthrough: --tarball needs a file" >&2; exit 2; }; tarball=$2; shift 2 ;;
    *) echo "installed-walkthrough: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

if [ -z "$tarball" ]; then
  infra/package.sh
  tarball=$(ls dist/grainfs-*-linux-x64.tar.gz | sort -V | tail -1)
fi
[ -f "$tarball" ] || { echo "installed-walkthrough: no tarball '$tarball'" >&2; exit 2; }

work=$(mktemp -d /tmp/grainfs-walkthrough.XXXXXX)
chmod 755 "$work"
silo_pid=""
mount_pid=""
cleanup() {
  [ -z "$mount_pid" ] || { kill "$mount_pid" 2>/dev/null || true; wait "$mount_pid" 2>/dev/null || true; }
  mountpoint -q "$work/mnt" 2>/dev/null && umount -l "$work/mnt" 2>/dev/null || true
  [ -z "$silo_pid" ] || { kill "$silo_pid" 2>/dev/null || true; wait "$silo_pid" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
run() { echo "\$ $*"; "$@"; echo; }

infra/install.sh --prefix "$work/prefix" "$tarball"
G="$work/prefix/bin/grainfs"
S="$work/prefix/bin/grainfs-silo"
[ -x "$G" ] && [ -x "$S" ] || { echo "installed-walkthrough: the prefix has no bin/grainfs and bin/grainfs-silo" >&2; exit 1; }

gateway=$(free_port)
health=$(free_port)
HOME="$work/home" "$S" --data "$work/silo" --silo-port "$(free_port)" --gateway-port "$gateway" --dashboard-port 0 \
  --metrics-port 0 --health-port "$health" --host walkthrough-host >"$work/silo.log" 2>&1 &
silo_pid=$!
for _ in $(seq 1 90); do
  curl -sf "http://127.0.0.1:$health/readyz" >/dev/null 2>&1 && break
  kill -0 "$silo_pid" 2>/dev/null || { cat "$work/silo.log" >&2; exit 1; }
  sleep 1
done
run curl -s "http://127.0.0.1:$health/readyz"

grainfs() { HOME="$work/home" "$G" --gateway-port "$gateway" "$@"; }
mkdir -p "$work/imagenet/train" "$work/scratch"
for i in $(seq -w 0 29); do head -c $((300000 + 10#$i * 1000)) /dev/urandom >"$work/imagenet/train/n$i.JPEG"; done
(cd "$work/imagenet/train" && md5sum ./* >"$work/MD5SUMS")

run grainfs fs mount /imagenet "file://$work/imagenet" --readonly
run grainfs fs mount /scratch "file://$work/scratch"
run grainfs fs ls -l /imagenet/train
run grainfs fs stat /imagenet/train/n00.JPEG
run grainfs fs load /imagenet/train
echo "\$ grainfs fs cat /imagenet/train/n07.JPEG | md5sum"
grainfs fs cat /imagenet/train/n07.JPEG | md5sum
grep " ./n07.JPEG" "$work/MD5SUMS"
echo
run grainfs report
run grainfs status
run grainfs worker list --json
run grainfs fs locality /imagenet/train
run grainfs k8s affinity /imagenet/train
run grainfs bench /scratch --big-file-size 64MiB --small-files 50

if [ "$(id -u)" = 0 ] && [ -e /dev/fuse ]; then
  mkdir -p "$work/mnt"
  HOME="$work/home" "$G" --gateway-port "$gateway" mount "$work/mnt" >"$work/mount.log" 2>&1 &
  mount_pid=$!
  for _ in $(seq 1 60); do mountpoint -q "$work/mnt" && break; sleep 0.5; done
  mountpoint -q "$work/mnt" || { cat "$work/mount.log" >&2; exit 1; }
  echo "\$ (cd MOUNT/imagenet/train && md5sum -c MD5SUMS)"
  (cd "$work/mnt/imagenet/train" && md5sum -c --quiet "$work/MD5SUMS" && echo "all $(wc -l <"$work/MD5SUMS") files right through FUSE")
  echo
  run grainfs bench --fuse "$work/mnt/scratch" --big-file-size 64MiB --small-files 50
  run "$G" umount "$work/mnt"
  wait "$mount_pid" 2>/dev/null || true
  mount_pid=""
fi

run grainfs fs unmount /scratch
run grainfs fs mounts
echo "walk-through done with $(basename "$tarball") installed in a scratch prefix"
