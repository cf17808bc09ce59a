# Shared helpers of the podman scripts (build-image.sh, build-db-image.sh, deploy.sh); sourced, not run.
#   . "$(dirname "$0")/lib.sh"
# Every helper prints its errors as "<script>: <what failed>" on stderr.

me=$(basename "$0" .sh)
podman_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(cd "$podman_dir/../../.." && pwd)

# Where the Debian root file system is cached between builds (outside the repository).
cache_dir=${GRAINFS_PODMAN_CACHE:-/var/cache/grainfs-podman}

die() { echo "$me: $*" >&2; exit 1; }
log() { echo "$me: $*" >&2; }

# Heavy steps run at the lowest CPU and I/O priority: the machine is shared.
low() { nice -n 19 ionice -c3 "$@"; }

need_root() { [ "$(id -u)" -eq 0 ] || die "needs root (rootful podman and buildah; debootstrap needs root too)"; }

need_cmd() {
  local cmd
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null || die "'$cmd' not found: apt-get install -y --no-install-recommends podman buildah debootstrap runc iptables"
  done
}

# The Debian mirror: $GRAINFS_DEBIAN_MIRROR, else the first .../debian URI of this machine's apt sources.
debian_mirror() {
  if [ -n "${GRAINFS_DEBIAN_MIRROR:-}" ]; then echo "$GRAINFS_DEBIAN_MIRROR"; return; fi
  local url
  url=$(grep -hoE '(https?://[^ ]+/debian)/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
          /etc/apt/sources.list.d/*.sources 2>/dev/null | tr -d ' ' | sed 's:/$::' | head -1 || true)
  [ -n "$url" ] || url=http://deb.debian.org/debian
  echo "$url"
}

# Options every `podman run` of these scripts needs on this machine, found by running /bin/true in IMAGE:
# first with podman's defaults, then with the work-arounds this kind of machine needs
#   --runtime runc          crun 1.8 refuses a cgroup v1/v2 hybrid ("cgroups in hybrid mode not supported")
#   --ulimit nofile/nproc   root here lacks CAP_SYS_RESOURCE: podman's default limits (nofile 1048576) are above
#                           the hard limits and setrlimit fails ("error setting rlimit type 7: operation not permitted")
# $GRAINFS_PODMAN_RUN_OPTS, when set, is used as it is (split at spaces) and not probed.
podman_run_opts=()
probe_podman() {
  local image=$1 out hard_nofile memo=/run/grainfs-podman/run-opts
  if [ -n "${GRAINFS_PODMAN_RUN_OPTS+set}" ]; then
    read -ra podman_run_opts <<<"$GRAINFS_PODMAN_RUN_OPTS"
    return
  fi
  # Found once per boot (and per podman version), then remembered.
  local key
  key="$(podman --version) $(ulimit -Hn)"
  if [ -s "$memo" ] && [ "$(head -1 "$memo")" = "$key" ]; then
    read -ra podman_run_opts <<<"$(sed -n 2p "$memo")"
    return
  fi
  if out=$(podman run --rm --network none --entrypoint /bin/true "$image" 2>&1); then
    podman_run_opts=()
    mkdir -p "${memo%/*}" && printf '%s\n\n' "$key" >"$memo"
    return
  fi
  local tried="  podman's defaults: $out"
  hard_nofile=$(ulimit -Hn)
  [ "$hard_nofile" = unlimited ] && hard_nofile=1048576
  local candidates=(
    "--ulimit nofile=$hard_nofile:$hard_nofile --ulimit nproc=32768:32768"
    "--runtime runc"
    "--runtime runc --ulimit nofile=$hard_nofile:$hard_nofile --ulimit nproc=32768:32768"
  )
  local c
  for c in "${candidates[@]}"; do
    read -ra podman_run_opts <<<"$c"
    if out=$(podman run --rm --network none --entrypoint /bin/true "${podman_run_opts[@]}" "$image" 2>&1); then
      log "podman run needs '$c' on this machine (with podman's defaults: $(echo "${tried#*: }" | head -1));" \
          "remembered in $memo; GRAINFS_PODMAN_RUN_OPTS overrides"
      mkdir -p "${memo%/*}" && printf '%s\n%s\n' "$key" "$c" >"$memo"
      return
    fi
    tried="$tried
  $c: $out"
  done
  echo "$tried" >&2
  die "podman cannot run a container of $image on this machine (errors above)"
}

# The same for `buildah run`: its own runtime flag (buildah's default ulimits already fit).
buildah_run_opts=()
probe_buildah() {
  local ctr=$1 out
  if out=$(buildah run --network none "$ctr" -- /bin/true 2>&1); then
    buildah_run_opts=()
    return
  fi
  log "buildah run with its defaults fails here: $out"
  if command -v runc >/dev/null && out=$(buildah run --runtime "$(command -v runc)" --network none "$ctr" -- /bin/true 2>&1); then
    buildah_run_opts=(--runtime "$(command -v runc)")
    log "using buildah run --runtime $(command -v runc)"
    return
  fi
  die "buildah cannot run a command in a container here: $out"
}

# A cached minimal Debian bookworm root file system, as a tarball: made once with debootstrap (variant minbase) from
# the Debian mirror with the packages named, upgraded from bookworm-updates and bookworm-security, docs removed.
# Rebuilt when the package list changes or with refresh=yes. Prints the tarball's path.
#   rootfs_tarball NAME "pkg1,pkg2,..." [yes]
rootfs_tarball() {
  local name=$1 include=$2 refresh=${3:-no}
  local tarball="$cache_dir/rootfs-$name.tar" mirror root
  mkdir -p "$cache_dir"
  if [ "$refresh" != yes ] && [ -s "$tarball" ] && [ "$(cat "$tarball.packages" 2>/dev/null)" = "$include" ]; then
    log "root file system from the cache: $tarball (made $(date -u -r "$tarball" +%FT%TZ); --refresh-rootfs makes it again)"
    echo "$tarball"
    return
  fi
  mirror=$(debian_mirror)
  root=$(mktemp -d "$cache_dir/rootfs-$name.XXXXXX")
  # shellcheck disable=SC2064
  trap "umount '$root/proc' 2>/dev/null || true; rm -rf '$root'" EXIT
  log "debootstrap --variant=minbase bookworm from $mirror (packages: $include)"
  if ! low debootstrap --variant=minbase --include="$include" bookworm "$root" "$mirror" >"$cache_dir/debootstrap-$name.log" 2>&1; then
    tail -15 "$cache_dir/debootstrap-$name.log" >&2
    die "debootstrap failed (log: $cache_dir/debootstrap-$name.log)"
  fi
  # Point-release updates and security fixes (libssl3, libc6, ...), from the same mirror host.
  cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror}-security bookworm-security main
EOF
  mount -t proc proc "$root/proc"
  if ! low chroot "$root" /bin/sh -c 'export DEBIAN_FRONTEND=noninteractive; apt-get -q update && apt-get -q -y upgrade' \
        >>"$cache_dir/debootstrap-$name.log" 2>&1; then
    tail -15 "$cache_dir/debootstrap-$name.log" >&2
    die "apt-get upgrade in the new root file system failed (log: $cache_dir/debootstrap-$name.log)"
  fi
  chroot "$root" apt-get clean
  umount "$root/proc"
  # What a container does not need: package lists (apt-get update brings them back), docs, man pages, locales.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/*.log "$root"/var/log/apt/* \
         "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* "$root"/tmp/*
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  low tar --numeric-owner --xattrs -C "$root" -cf "$tarball.new" .
  mv "$tarball.new" "$tarball"
  echo "$include" >"$tarball.packages"
  rm -rf "$root"
  trap - EXIT
  log "root file system cached: $tarball ($(du -h "$tarball" | cut -f1))"
  echo "$tarball"
}

# The start of an image build: its clock ($started), a scratch folder ($work) and the buildah container ($ctr, set once
# made), both removed when the script exits.
start_build() {
  started=$(date +%s)
  work=$(mktemp -d)
  ctr=""
  trap cleanup_build EXIT
}

cleanup_build() {
  [ -z "$ctr" ] || buildah rm "$ctr" >/dev/null 2>&1 || true
  rm -rf "$work"
}
