#!/usr/bin/env bash
# Builds the GrainFS OCI image without any registry: a minimal Debian bookworm root file system (debootstrap, variant
# minbase, from the Debian mirror of this machine's apt sources) with fuse3 and what a self-contained .NET 10 program
# needs, plus the programs of a package made by infra/package.sh, committed with buildah into local podman storage.
#   infra/deploy/podman/build-image.sh [--tarball dist/grainfs-VERSION-linux-x64.tar.gz] [--tag grainfs:VERSION]
#                                      [--refresh-rootfs]
# --tarball   default: the newest dist/grainfs-*-linux-x64.tar.gz of this repository (run infra/package.sh first)
# --tag       default: localhost/grainfs:VERSION (VERSION from the package)
# --refresh-rootfs  debootstrap again instead of using the cached root file system
# The root file system is cached in $GRAINFS_PODMAN_CACHE (default /var/cache/grainfs-podman/rootfs-bookworm.tar), so
# a rebuild for a new package takes seconds. Needs root, podman, buildah, debootstrap.
# The image: /usr/local/bin/grainfs-silo (the entry point) and /usr/local/bin/grainfs, their published folders in
# /usr/local/lib/grainfs, README, schema and units in /usr/local/share/grainfs; state in /var/lib/grainfs, SSD tier
# under /var/cache/grainfs (both volumes), fuse3 (fusermount3, libfuse3), mountpoint, /bin/sh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

tarball=""
tag=""
refresh=no
while [ $# -gt 0 ]; do
  case "$1" in
    --tarball) [ $# -ge 2 ] || die "--tarball needs a file (dist/grainfs-VERSION-linux-x64.tar.gz)"; tarball=$2; shift 2 ;;
    --tag) [ $# -ge 2 ] || die "--tag needs an image name (grainfs:VERSION)"; tag=$2; shift 2 ;;
    --refresh-rootfs) refresh=yes; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "$me: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
need_root
need_cmd podman buildah debootstrap tar

[ "$(uname -m)" = x86_64 ] || die "this machine is $(uname -m); the image is built for linux-x64 only"
if [ -z "$tarball" ]; then
  tarball=$(ls "$repo_dir"/dist/grainfs-*-linux-x64.tar.gz 2>/dev/null | sort -V | tail -1 || true)
  [ -n "$tarball" ] || die "no dist/grainfs-*-linux-x64.tar.gz in $repo_dir: run infra/package.sh first, or give --tarball FILE"
fi
[ -f "$tarball" ] || die "'$tarball' is not a file"
case "$(basename "$tarball")" in
  grainfs-*-linux-x64.tar.gz) ;;
  *) die "'$tarball' is not a linux-x64 GrainFS package (grainfs-VERSION-linux-x64.tar.gz from infra/package.sh)" ;;
esac

start_build

# 1. The package: bin/grainfs, bin/grainfs-silo (launchers), lib/grainfs/{cli,silo}, share/grainfs.
low tar -C "$work" -xzf "$tarball" || die "'$tarball' could not be unpacked"
unpacked=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'grainfs-*' | head -1)
[ -n "$unpacked" ] && [ -x "$unpacked/bin/grainfs" ] && [ -x "$unpacked/bin/grainfs-silo" ] \
  && [ -x "$unpacked/lib/grainfs/silo/grainfs-silo" ] && [ -x "$unpacked/lib/grainfs/cli/grainfs" ] \
  || die "'$tarball' does not hold bin/grainfs, bin/grainfs-silo and lib/grainfs/{cli,silo}: not a package of infra/package.sh"
version=$(cat "$unpacked/share/grainfs/VERSION" 2>/dev/null || true)
[ -n "$version" ] || die "'$tarball' has no share/grainfs/VERSION"
[ -n "$tag" ] || tag=localhost/grainfs:$version

# 2. The root file system (cached). libicu72: globalization; libssl3: TLS; zlib1g: compression; tzdata: time zones.
rootfs=$(rootfs_tarball bookworm "fuse3,ca-certificates,libicu72,libc6,libgcc-s1,libstdc++6,zlib1g,libssl3,tzdata" "$refresh")

# 3. The image: root file system, then the package under /usr/local (the layout infra/install.sh makes).
mkdir -p "$work/usr/local" "$work/dirs/var/lib/grainfs" "$work/dirs/var/cache/grainfs" "$work/dirs/mnt/grainfs" \
         "$work/dirs/etc/grainfs"
chmod 700 "$work/dirs/var/lib/grainfs" "$work/dirs/var/cache/grainfs"
mv "$unpacked/bin" "$unpacked/lib" "$unpacked/share" "$work/usr/local/"
log "building $tag from $(basename "$tarball")"
ctr=$(buildah from --name "grainfs-build-$$" scratch)
low buildah add --quiet "$ctr" "$rootfs" / >/dev/null
low buildah add --quiet "$ctr" "$work/usr" /usr >/dev/null
buildah add --quiet "$ctr" "$work/dirs" / >/dev/null
created=$(date -u +%FT%TZ)
buildah config \
  --entrypoint '["/usr/local/bin/grainfs-silo"]' \
  --workingdir /var/lib/grainfs \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env LANG=C.UTF-8 \
  --env HOME=/var/lib/grainfs \
  --env GRAINFS_DATA=/var/lib/grainfs \
  --env DOTNET_CLI_TELEMETRY_OPTOUT=1 \
  --port 11111/tcp --port 30000/tcp --port 30001/tcp --port 9464/tcp --port 9465/tcp --port 8080/tcp \
  --volume /var/lib/grainfs --volume /var/cache/grainfs \
  --stop-signal SIGTERM \
  --label org.opencontainers.image.title=grainfs \
  --label org.opencontainers.image.description="GrainFS silo (entry point grainfs-silo) and command line (grainfs, grainfs mount)" \
  --label org.opencontainers.image.version="$version" \
  --label org.opencontainers.image.created="$created" \
  --label org.opencontainers.image.base.name="debian:bookworm (debootstrap minbase)" \
  --label io.grainfs.package="$(basename "$tarball")" \
  "$ctr"
previous=$(podman image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
low buildah commit --quiet --format oci --rm "$ctr" "$tag" >/dev/null
ctr=""
# The image this tag named before, now untagged: removed unless a container still uses it.
if [ -n "$previous" ] && [ "$previous" != "$(podman image inspect --format '{{.Id}}' "$tag")" ]; then
  podman rmi "$previous" >/dev/null 2>&1 || log "the previous $tag ($previous) is still used by a container: kept"
fi

# 4. A smoke test: both programs start in the image (no cluster needed for --help / --version).
probe_podman "$tag"
podman run --rm --network none "${podman_run_opts[@]}" "$tag" --help >/dev/null 2>&1 \
  || die "the image $tag was committed, but 'grainfs-silo --help' fails in it: podman run --rm ${podman_run_opts[*]} $tag --help"
podman run --rm --network none "${podman_run_opts[@]}" --entrypoint grainfs "$tag" --help >/dev/null 2>&1 \
  || die "the image $tag was committed, but 'grainfs --help' fails in it: podman run --rm ${podman_run_opts[*]} --entrypoint grainfs $tag --help"
podman run --rm --network none "${podman_run_opts[@]}" --entrypoint /bin/sh "$tag" -c \
  'command -v fusermount3 >/dev/null && command -v mountpoint >/dev/null' \
  || die "the image $tag lacks fusermount3 or mountpoint"
echo "$tag ($(podman image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}')) built in $(( $(date +%s) - started )) s"
