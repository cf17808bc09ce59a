#!/usr/bin/env bash
# The FUSE serving process killed with SIGKILL during a PyTorch DataLoader epoch over a GrainFS mount: the epoch must
# complete with every sample right (SHA-256 against the source) and no error; prints the kills, how long each
# replacement took to serve, and the longest wait of the training loop for a batch.
#   infra/chaos/fuse-kill-epoch.sh [--kills N (20)] [--files N (12000)] [--size BYTES (16384)] [--compute-ms MS (100)]
# Starts what it needs on loopback (an embedded silo, a FUSE mount of a local folder) under a scratch folder and
# stops it all at exit. Needs root (drops the page cache so that every read reaches the mount), fuse3, python3-torch.
set -euo pipefail
cd "$(dirname "$0")/../.."
kills=20 files=12000 size=16384 compute=100
while [ $# -gt 0 ]; do
  case $1 in
    --kills) kills=$2; shift 2 ;;
    --files) files=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --compute-ms) compute=$2; shift 2 ;;
    *) echo "fuse-kill-epoch.sh: unknown option $1 (see the header of this script)" >&2; exit 2 ;;
  esac
done
for n in "$kills" "$files" "$size" "$compute"; do
  [[ $n =~ ^[0-9]+$ ]] || { echo "fuse-kill-epoch.sh: '$n' is not a whole number" >&2; exit 2; }
done

dotnet build Orleans.sln -c Release -nologo -v q >/dev/null
cli=$(realpath Client/Cli/bin/Release/net10.0/grainfs.dll)
silo=$(realpath Silo/bin/Release/net10.0/grainfs-silo.dll)
work=$(mktemp -d /tmp/grainfs-chaos.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  fusermount3 -u -z "$work/mnt" 2>/dev/null || umount -l "$work/mnt" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 1
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
grainfs() { dotnet "$cli" --gateway-port "$gateway" "$@"; }

python3 - "$work/src" "$files" "$size" <<'PY'
import os, random, sys
root, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(7)
for i in range(count):
    folder = os.path.join(root, f"c{i % 10}")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"s{i:06d}.bin"), "wb") as f:
        f.write(rng.randbytes(size // 2 + rng.randrange(size)))
PY

gateway=$(port)
(cd "$(dirname "$silo")" && exec dotnet "$silo" --gateway-port "$gateway" --silo-port "$(port)" --data "$work/silo" \
  --dashboard-port "$(port)" --metrics-port "$(port)" --data-port "$(port)" --tier "SSD=$work/tier:4GiB") >"$work/silo.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 90); do grainfs fs mounts >/dev/null 2>&1 && break; sleep 1; done
grainfs fs mount /ds "file://$work/src" >/dev/null
mkdir -p "$work/mnt"
dotnet "$cli" --gateway-port "$gateway" mount "$work/mnt" >"$work/fuse.log" 2>&1 &
supervisor=$!
pids+=($supervisor)
for _ in $(seq 1 60); do grep -q "mounted at" "$work/fuse.log" && break; sleep 0.5; done
grep -q "mounted at" "$work/fuse.log" || { tail -5 "$work/fuse.log"; echo "fuse-kill-epoch.sh: the mount did not come up" >&2; exit 1; }
state=/run/grainfs/$(printf '%s' "$work/mnt" | sha256sum | cut -c1-16).d
[ "$(id -u)" = 0 ] || state=/tmp/grainfs-$(id -u)/$(printf '%s' "$work/mnt" | sha256sum | cut -c1-16).d
sync; [ "$(id -u)" = 0 ] && echo 3 > /proc/sys/vm/drop_caches

PYTHONUNBUFFERED=1 /usr/bin/python3 infra/chaos/epoch_check.py "$work/mnt/ds" "$work/src" 2 "$compute" >"$work/epoch.json" 2>"$work/epoch.err" &
epoch=$!
now_ms() { date +%s%3N; }
done_kills=0 restarts=()
sleep 2
while [ "$done_kills" -lt "$kills" ] && kill -0 "$epoch" 2>/dev/null; do
  victim=$(cat "$state/serving" 2>/dev/null || true)
  [ -n "$victim" ] && [ "$victim" != "$supervisor" ] || { sleep 0.1; continue; }
  kill -9 "$victim"
  killed=$(now_ms)
  done_kills=$((done_kills + 1))
  until now=$(cat "$state/serving" 2>/dev/null) && [ -n "$now" ] && [ "$now" != "$victim" ]; do sleep 0.02; done
  restarts+=($(( $(now_ms) - killed )))
  sleep 1   # the new process serves reads before the next kill
done
status=0
wait "$epoch" || status=$?
kill -0 "$supervisor" 2>/dev/null && alive=yes || alive=no
sorted=$(printf '%s\n' "${restarts[@]}" | sort -n)
median=$(echo "$sorted" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
longest=$(echo "$sorted" | tail -1)
echo "kills of the serving process during the epoch: $done_kills (asked $kills); supervisor alive: $alive"
echo "a replacement served after: median ${median} ms, longest ${longest} ms"
echo "epoch: $(cat "$work/epoch.json")"
[ -s "$work/epoch.err" ] && tail -3 "$work/epoch.err"
[ "$status" -eq 0 ] && [ "$done_kills" -eq "$kills" ] && [ "$alive" = yes ] || { echo "FAILED"; exit 1; }
echo "ok"
