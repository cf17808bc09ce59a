#!/usr/bin/env bash
# A GrainFS cluster in podman containers on one machine: PostgreSQL 15, three silos with different hosts and roles,
# and a FUSE client, on a podman network of their own (addresses 10.89.77.0/24, nothing published on the host).
#   infra/deploy/podman/deploy.sh up       network, database + schema, credentials, silos, a dataset mounted, FUSE client
#   infra/deploy/podman/deploy.sh check    the CLI lists and reads the dataset; the FUSE mount reads it (checksums)
#   infra/deploy/podman/deploy.sh chaos [SILO] [SECONDS]
#                                          readers (FUSE and CLI) run while silo SILO (default gpu-2) is killed
#                                          (podman kill, SIGKILL) and started again SECONDS (default 15) later
#   infra/deploy/podman/deploy.sh status   containers, readiness of each silo, `grainfs status`
#   infra/deploy/podman/deploy.sh cli ARGS...   the grainfs command line as admin, e.g. `cli fs ls -l /datasets/demo`
#   infra/deploy/podman/deploy.sh down [--purge]   remove the containers and the network (--purge: volumes and state)
# Images: build-image.sh (localhost/grainfs:VERSION, the newest unless GRAINFS_IMAGE names one) and build-db-image.sh
# (localhost/grainfs-postgres:15, or GRAINFS_DB_IMAGE). State (CA, credentials, passwords, the demo dataset) in
# GRAINFS_PODMAN_STATE (default /var/tmp/grainfs-podman), bind-mounted into the containers at the same path.
# Silos: gpu-1 and gpu-2 (roles gpu,read), cache-1 (read,write), each its own container, host name, address, MEM tier
# in its /dev/shm and SSD tier on a volume. Needs root (rootful podman). podman run options this machine needs are
# probed (see lib.sh); GRAINFS_PODMAN_RUN_OPTS overrides them.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

state=${GRAINFS_PODMAN_STATE:-/var/tmp/grainfs-podman}
net=grainfs-net
subnet=10.89.77.0/24
db_ip=10.89.77.10
fuse_ip=10.89.77.30
label=io.grainfs.deployment=podman
silos=("gpu-1:gpu,read:10.89.77.21" "gpu-2:gpu,read:10.89.77.22" "cache-1:read,write:10.89.77.23")
dataset=$state/dataset
gateways=$(for s in "${silos[@]}"; do printf '%s:30000,' "${s##*:}"; done | sed 's/,$//')
cluster="Host=$db_ip;Port=5432;Username=grainfs;Database=grainfs"
db_image=${GRAINFS_DB_IMAGE:-localhost/grainfs-postgres:15}

pick_image() {
  if [ -n "${GRAINFS_IMAGE:-}" ]; then image=$GRAINFS_IMAGE; else
    image=$(podman images --format '{{.Repository}}:{{.Tag}}' --filter reference=localhost/grainfs 2>/dev/null \
              | grep -v '<none>' | sort -V | tail -1 || true)
  fi
  [ -n "$image" ] && podman image exists "$image" \
    || die "no GrainFS image${image:+ '$image'}: run infra/deploy/podman/build-image.sh --tarball dist/grainfs-VERSION-linux-x64.tar.gz"
  podman image exists "$db_image" || die "no image '$db_image': run infra/deploy/podman/build-db-image.sh"
  probe_podman "$image"
}

# The grainfs command line in a throw-away container on the network, as the admin identity `ops`.
cli() {
  podman run --rm --network "$net" "${podman_run_opts[@]}" \
    -v "$state/credentials/ops:/etc/grainfs/client-credentials:ro" -e GRAINFS_CREDENTIALS=/etc/grainfs/client-credentials \
    -e GRAINFS_GATEWAYS="$gateways" --entrypoint grainfs "$image" "$@"
}

# grainfs certs ... in a throw-away container, writing into the state folder.
certs() {
  podman run --rm --network none "${podman_run_opts[@]}" -v "$state:$state" --entrypoint grainfs "$image" certs "$@" >/dev/null
}

wait_ready() { # NAME IP SECONDS
  local name=$1 ip=$2 limit=$3 i=0 body
  while :; do
    if body=$(curl -fsS -m 2 "http://$ip:9465/readyz" 2>/dev/null); then
      log "$name ready ($i s): $body"
      return 0
    fi
    if [ "$(podman inspect --format '{{.State.Running}}' "grainfs-$name" 2>/dev/null)" != true ]; then
      podman logs --tail 30 "grainfs-$name" >&2 || true
      die "silo container grainfs-$name is not running (its last log lines above)"
    fi
    i=$((i + 1))
    if [ "$i" -ge "$limit" ]; then
      podman logs --tail 30 "grainfs-$name" >&2 || true
      curl -sS -m 2 "http://$ip:9465/readyz" >&2 || true
      die "silo $name not ready after $limit s (http://$ip:9465/readyz; its last log lines above)"
    fi
    sleep 1
  done
}

make_dataset() {
  [ -s "$dataset/MD5SUMS" ] && return
  log "making the demo dataset in $dataset (40 files of 1 MiB, 400 of 256 KiB, random bytes)"
  rm -rf "$dataset"
  mkdir -p "$dataset/train" "$dataset/chaos"
  local i
  for i in $(seq -w 0 39); do head -c 1048576 /dev/urandom >"$dataset/train/f-$i.bin"; done
  for i in $(seq -w 0 399); do head -c 262144 /dev/urandom >"$dataset/chaos/c-$i.bin"; done
  (cd "$dataset" && find train chaos -type f | sort | xargs md5sum >MD5SUMS.new && mv MD5SUMS.new MD5SUMS)
  chmod -R a+rX "$dataset"
}

cmd_up() {
  pick_image
  need_cmd curl
  log "image $image, database image $db_image, state in $state"
  mkdir -p "$state"
  chmod 700 "$state"

  # Credentials: a cluster CA, a folder per silo, an admin client (ops) and a reader (trainer).
  if [ ! -s "$state/ca/ca.crt" ]; then
    rm -rf "$state/ca" "$state/credentials"
    certs init "$state/ca"
    mkdir -p "$state/credentials"
    local s
    for s in "${silos[@]}"; do certs issue "$state/ca" --silo "${s%%:*}" --out "$state/credentials/${s%%:*}"; done
    certs issue "$state/ca" --client ops --admin --out "$state/credentials/ops"
    certs issue "$state/ca" --client trainer --out "$state/credentials/trainer"
    log "credentials issued into $state/credentials (CA in $state/ca)"
  fi
  # The database password (in the pgpass file only: no password in an environment or on a command line) and the
  # password of the silos' dashboard and /metrics (they listen on their container address, so HTTPS + password).
  (umask 077
   [ -s "$state/db.password" ] || od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$state/db.password"
   echo "$db_ip:5432:grainfs:grainfs:$(cat "$state/db.password")" >"$state/pgpass"
   [ -s "$state/web.pw" ] || od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$state/web.pw")
  make_dataset

  podman network exists "$net" || podman network create --subnet "$subnet" --label "$label" "$net" >/dev/null
  log "network $net ($subnet)"

  # PostgreSQL.
  if ! podman container exists grainfs-db; then
    podman run -d --name grainfs-db --hostname db --label "$label" --network "$net" --ip "$db_ip" "${podman_run_opts[@]}" \
      -v grainfs-db-data:/var/lib/postgresql/data -v "$state/db.password:/run/secrets/db.password:ro" \
      -e GRAINFS_DB_PASSWORD_FILE=/run/secrets/db.password "$db_image" >/dev/null
  else
    podman start grainfs-db >/dev/null
  fi
  local i=0
  until podman exec grainfs-db pg_isready -q -h 127.0.0.1 -U grainfs -d grainfs 2>/dev/null; do
    i=$((i + 1)); [ "$i" -le 60 ] || { podman logs --tail 20 grainfs-db >&2; die "PostgreSQL (grainfs-db) did not become ready in 60 s"; }
    sleep 1
  done
  log "PostgreSQL ready at $db_ip:5432 ($i s)"

  # The schema: infra/db/apply.sh as packaged in the image (the version its binaries expect), run with psql of the
  # database image.
  rm -rf "$state/db"
  local tmp
  tmp=$(podman create "$image")
  podman cp "$tmp:/usr/local/share/grainfs/db" "$state/db"
  podman rm -v "$tmp" >/dev/null
  podman run --rm --network "$net" "${podman_run_opts[@]}" -v "$state/db:/db:ro" \
    -v "$state/pgpass:/run/secrets/pgpass:ro" -e PGPASSFILE=/run/secrets/pgpass \
    --entrypoint /bin/bash "$db_image" /db/apply.sh "$cluster" >&2 || die "applying the schema failed"

  # The silos.
  local s name roles ip dash out
  for s in "${silos[@]}"; do
    IFS=: read -r name roles ip <<<"$s"
    if podman container exists "grainfs-$name"; then podman start "grainfs-$name" >/dev/null; continue; fi
    dash=0
    [ "$name" != cache-1 ] || dash=8080
    podman run -d --name "grainfs-$name" --hostname "$name" --label "$label" --network "$net" --ip "$ip" \
      "${podman_run_opts[@]}" --shm-size 512m \
      -v "grainfs-$name-cache:/var/cache/grainfs" -v "grainfs-$name-data:/var/lib/grainfs" \
      -v "$state/credentials/$name:/etc/grainfs/credentials:ro" \
      -v "$state/pgpass:/etc/grainfs/pgpass:ro" -v "$state/web.pw:/etc/grainfs/web.pw:ro" \
      -v "$dataset:$dataset:ro" \
      -e GRAINFS_CLUSTER="$cluster" -e PGPASSFILE=/etc/grainfs/pgpass \
      "$image" \
      --name "$name" --host "$name" --roles "$roles" --advertise "$ip" --listen-address "$ip" \
      --credentials /etc/grainfs/credentials --web-password-file /etc/grainfs/web.pw \
      --silo-port 11111 --gateway-port 30000 --data-port 30001 --health-port 9465 --metrics-port 9464 \
      --dashboard-port "$dash" --allow-local-root "$dataset" \
      --tier MEM=/dev/shm/grainfs:256MiB --tier SSD=/var/cache/grainfs/ssd:2GiB >/dev/null
    log "started silo $name ($roles) at $ip"
  done
  for s in "${silos[@]}"; do IFS=: read -r name roles ip <<<"$s"; wait_ready "$name" "$ip" 180; done

  # The dataset, mounted read-only in GrainFS; the reader identity may read it.
  # (Each CLI call is a new client: on a loaded machine its 5 s connection timeout can pass; tried 3 times.)
  for i in 1 2 3; do
    if out=$(cli fs mounts 2>&1); then
      grep -q '/datasets/demo' <<<"$out" && break
      if out=$(cli fs mount /datasets/demo "file://$dataset" --read-only --option readers=trainer 2>&1); then break; fi
    fi
    log "try $i: $out"
    [ "$i" -lt 3 ] || die "could not mount the dataset in GrainFS (above)"
  done
  cli fs mounts >&2

  # The FUSE client: its own container and host name, /dev/fuse and CAP_SYS_ADMIN, the reader identity. The mount is
  # seen inside this container only (podman exec grainfs-fuse ...). The host's bdi folder is bound writable so that
  # --kernel-read-ahead can be set (a container's /sys is read-only: the mount would stay at 128 KiB).
  if ! podman container exists grainfs-fuse; then
    podman run -d --name grainfs-fuse --hostname client-1 --label "$label" --network "$net" --ip "$fuse_ip" \
      "${podman_run_opts[@]}" --device /dev/fuse --cap-add SYS_ADMIN \
      -v /sys/devices/virtual/bdi:/sys/devices/virtual/bdi:rw \
      -v "$state/credentials/trainer:/etc/grainfs/client-credentials:ro" \
      -e GRAINFS_CREDENTIALS=/etc/grainfs/client-credentials -e GRAINFS_GATEWAYS="$gateways" -e GRAINFS_HOST=client-1 \
      --entrypoint grainfs "$image" mount /mnt/grainfs --read-only >/dev/null
  else
    podman start grainfs-fuse >/dev/null
  fi
  i=0
  until podman exec grainfs-fuse mountpoint -q /mnt/grainfs 2>/dev/null; do
    i=$((i + 1))
    if [ "$i" -gt 60 ] || [ "$(podman inspect --format '{{.State.Running}}' grainfs-fuse)" != true ]; then
      podman logs --tail 30 grainfs-fuse >&2 || true
      die "the FUSE mount in grainfs-fuse did not come up (its last log lines above)"
    fi
    sleep 1
  done
  log "FUSE mount up in grainfs-fuse at /mnt/grainfs ($i s)"
  echo "up: silos ${silos[*]%%:*}; CLI: $0 cli fs ls /datasets/demo; FUSE: podman exec grainfs-fuse ls /mnt/grainfs/datasets/demo"
}

cmd_check() {
  pick_image
  echo "== grainfs status"
  cli status
  echo "== grainfs fs ls -l /datasets/demo/train (first lines)"
  cli fs ls -l /datasets/demo/train | head -5
  echo "== grainfs fs cat: checksums of 3 files against the source folder"
  local f want got bad=0
  for f in train/f-00.bin train/f-17.bin chaos/c-123.bin; do
    want=$(md5sum <"$dataset/$f" | cut -d' ' -f1)
    got=$(cli fs cat "/datasets/demo/$f" | md5sum | cut -d' ' -f1)
    if [ "$want" = "$got" ]; then echo "  $f ok ($got)"; else echo "  $f WRONG: $got, source $want"; bad=1; fi
  done
  echo "== FUSE mount in grainfs-fuse: ls and md5sum -c of train/ (40 files, 40 MiB)"
  podman exec grainfs-fuse sh -c 'ls /mnt/grainfs/datasets/demo; ls /mnt/grainfs/datasets/demo/train | wc -l'
  local start end
  start=$(date +%s.%N)
  if podman exec grainfs-fuse sh -c 'cd /mnt/grainfs/datasets/demo && grep " train/" MD5SUMS | md5sum -c --quiet -'; then
    end=$(date +%s.%N)
    echo "  40 files read through FUSE, all checksums right ($(awk "BEGIN{printf \"%.2f\", $end - $start}") s)"
  else
    echo "  FUSE reads gave wrong checksums or errors (above)"; bad=1
  fi
  echo "== grainfs report"
  cli report
  [ "$bad" -eq 0 ] || die "check failed"
}

cmd_chaos() {
  local victim=${1:-gpu-2} down=${2:-15} s ip=""
  for s in "${silos[@]}"; do [ "${s%%:*}" != "$victim" ] || ip=${s##*:}; done
  [ -n "$ip" ] || die "no silo '$victim' (one of: ${silos[*]%%:*})"
  pick_image
  podman exec grainfs-fuse mountpoint -q /mnt/grainfs || die "the FUSE mount is not up: run '$0 up' first"
  local log_dir=$state/chaos-$(date -u +%Y%m%dT%H%M%SZ)
  mkdir -p "$log_dir"
  # Reader 1: through the FUSE mount, every file of chaos/ once (400 x 256 KiB, never read before by this mount, so
  # each read reaches the daemon and the cluster), one every 0.2 s, each checked against MD5SUMS.
  podman exec grainfs-fuse bash -c '
    cd /mnt/grainfs/datasets/demo || exit 1
    grep " chaos/" MD5SUMS | while read -r sum file; do
      t0=$(date +%s%N)
      if got=$(md5sum <"$file" 2>&1); then
        ms=$(( ($(date +%s%N) - t0) / 1000000 ))
        if [ "${got%% *}" = "$sum" ]; then r=ok; else r="WRONG-CHECKSUM"; fi
      else ms=$(( ($(date +%s%N) - t0) / 1000000 )); r="ERROR: $got"; fi
      echo "$(date -u +%T.%3N) fuse $file $r ${ms}ms"
      sleep 0.2
    done' >"$log_dir/fuse-reader.log" 2>&1 &
  local fuse_pid=$!
  # Reader 2: the command line (a new client process each time: gateway choice, login, cat) in the same container.
  podman exec grainfs-fuse bash -c '
    set -o pipefail
    i=0
    while [ ! -e /tmp/stop-cli-reader ]; do
      f=train/f-$(printf %02d $((i % 40))).bin; i=$((i + 1))
      sum=$(grep " $f\$" /mnt/grainfs/datasets/demo/MD5SUMS | cut -d" " -f1)
      t0=$(date +%s%N)
      if got=$(grainfs fs cat /datasets/demo/$f 2>/tmp/cli-err | md5sum); then
        ms=$(( ($(date +%s%N) - t0) / 1000000 ))
        if [ "${got%% *}" = "$sum" ]; then r=ok; else r="WRONG: $(tail -1 /tmp/cli-err)"; fi
      else ms=$(( ($(date +%s%N) - t0) / 1000000 )); r="ERROR: $(tail -1 /tmp/cli-err)"; fi
      echo "$(date -u +%T.%3N) cli $f $r ${ms}ms"
    done; rm -f /tmp/stop-cli-reader' >"$log_dir/cli-reader.log" 2>&1 &
  local cli_pid=$!
  sleep 10
  echo "$(date -u +%T.%3N) podman kill grainfs-$victim" | tee "$log_dir/events.log"
  podman kill grainfs-"$victim" >/dev/null
  sleep "$down"
  echo "$(date -u +%T.%3N) podman start grainfs-$victim" | tee -a "$log_dir/events.log"
  podman start grainfs-"$victim" >/dev/null
  wait_ready "$victim" "$ip" 180
  echo "$(date -u +%T.%3N) $victim ready again (/readyz 200)" | tee -a "$log_dir/events.log"
  wait "$fuse_pid" || true
  podman exec grainfs-fuse touch /tmp/stop-cli-reader
  wait "$cli_pid" || true
  echo "== reads, in time order (logs in $log_dir)"
  sort -s -k1,1 "$log_dir/events.log" "$log_dir/fuse-reader.log" "$log_dir/cli-reader.log" \
    | awk '!/ ok / || (n++ % 10 == 0)'
  echo "== (every failed read above; of the right ones, every 10th)"
  local f
  for f in fuse cli; do
    awk -v who="$f" '/ ok /{ok++; ms=$NF+0; if (ms > max) {max=ms; slow=$3}; next} {bad++}
      END{printf "== %s reader: %d reads right, %d failed or wrong; slowest right read %d ms (%s)\n", who, ok, bad, max, slow}' \
      "$log_dir/$f-reader.log"
  done
  cli status
}

cmd_status() {
  podman ps -a --filter "label=$label" --format '{{.Names}}\t{{.Status}}\t{{.Image}}'
  local s name roles ip
  for s in "${silos[@]}"; do
    IFS=: read -r name roles ip <<<"$s"
    printf '%-8s %-12s %-12s readyz: %s\n' "$name" "$roles" "$ip" "$(curl -sS -m 2 "http://$ip:9465/readyz" 2>&1 || true)"
  done
  if podman container exists grainfs-fuse; then
    podman exec grainfs-fuse mountpoint /mnt/grainfs 2>&1 || true
  fi
  pick_image
  cli status || true
}

cmd_down() {
  local purge=no
  [ "${1:-}" != --purge ] || purge=yes
  local c
  # The FUSE client first: SIGTERM unmounts cleanly. Then the silos, then the database.
  for c in grainfs-fuse grainfs-gpu-1 grainfs-gpu-2 grainfs-cache-1 grainfs-db; do
    podman container exists "$c" || continue
    podman stop -t 20 "$c" >/dev/null || true
    podman rm -f -v "$c" >/dev/null
    log "removed $c"
  done
  ! podman network exists "$net" || { podman network rm "$net" >/dev/null; log "removed network $net"; }
  if [ $purge = yes ]; then
    podman volume ls -q | grep -E '^grainfs-(db-data|gpu-1-|gpu-2-|cache-1-)' | xargs -r podman volume rm >/dev/null
    rm -rf "$state"
    log "removed the volumes and $state"
  fi
}

need_root
need_cmd podman
case "${1:-}" in
  up) cmd_up ;;
  check) cmd_check ;;
  chaos) shift; cmd_chaos "$@" ;;
  status) cmd_status ;;
  cli) shift; pick_image; cli "$@" ;;
  down) shift; cmd_down "$@" ;;
  -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) echo "$me: usage: $0 up|check|chaos [SILO] [SECONDS]|status|cli ARGS...|down [--purge] (see --help)" >&2; exit 2 ;;
esac
