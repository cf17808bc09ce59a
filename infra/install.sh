#!/usr/bin/env bash
# Installs a GrainFS package made by infra/package.sh.
#   infra/install.sh [--prefix DIR] [TARBALL]
# Default: programs under /usr/local (bin/grainfs, bin/grainfs-silo, lib/grainfs, share/grainfs), configuration under
# /etc/grainfs (example env files, never overwritten), the `grainfs` system user, and the systemd units
# (grainfs-silo.service, grainfs-mount@.service) in /etc/systemd/system, followed by `systemctl daemon-reload`.
# With --prefix DIR: everything under DIR (DIR/etc/grainfs for configuration), no user and no systemctl.
# TARBALL defaults to the newest dist/grainfs-*-linux-ARCH.tar.gz of this machine's architecture.
set -euo pipefail
prefix=""
tarball=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || { echo "install.sh: --prefix needs a folder" >&2; exit 2; }; prefix="$2"; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "install.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) [ -z "$tarball" ] || { echo "install.sh: one tarball at most ('$tarball', then '$1')" >&2; exit 2; }; tarball="$1"; shift ;;
  esac
done
case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64|arm64) arch=arm64 ;;
  *) echo "install.sh: this machine's architecture '$(uname -m)' has no package (linux-x64, linux-arm64)" >&2; exit 1 ;;
esac
if [ -z "$tarball" ]; then
  repo=$(cd "$(dirname "$0")/.." && pwd)
  tarball=$(ls "$repo"/dist/grainfs-*-linux-$arch.tar.gz 2>/dev/null | sort -V | tail -1 || true)
  [ -n "$tarball" ] || { echo "install.sh: no dist/grainfs-*-linux-$arch.tar.gz: run infra/package.sh first, or name a tarball" >&2; exit 1; }
fi
[ -f "$tarball" ] || { echo "install.sh: '$tarball' is not a file" >&2; exit 1; }
case "$(basename "$tarball")" in
  grainfs-*-linux-$arch.tar.gz) ;;
  grainfs-*-linux-*.tar.gz) echo "install.sh: '$tarball' is for another architecture than this machine's (linux-$arch)" >&2; exit 1 ;;
  *) echo "install.sh: '$tarball' is not a GrainFS package (grainfs-VERSION-linux-ARCH.tar.gz)" >&2; exit 1 ;;
esac

if [ -n "$prefix" ]; then
  mkdir -p "$prefix"
  root=$(cd "$prefix" && pwd)
  etc="$root/etc/grainfs"
  system=no
else
  [ "$(id -u)" -eq 0 ] || { echo "install.sh: installing into /usr/local needs root (or give --prefix DIR)" >&2; exit 1; }
  root=/usr/local
  etc=/etc/grainfs
  system=yes
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -C "$work" -xzf "$tarball"
unpacked=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'grainfs-*' | head -1)
[ -n "$unpacked" ] && [ -x "$unpacked/bin/grainfs" ] && [ -x "$unpacked/bin/grainfs-silo" ] || { echo "install.sh: '$tarball' does not hold bin/grainfs and bin/grainfs-silo" >&2; exit 1; }
version=$(cat "$unpacked/share/grainfs/VERSION")

# The programs: the new tree is put in place whole, then swapped for the old one (a running silo keeps its files open).
mkdir -p "$root/bin" "$root/lib" "$root/share"
rm -rf "$root/lib/grainfs.new" "$root/share/grainfs.new"
cp -a "$unpacked/lib/grainfs" "$root/lib/grainfs.new"
cp -a "$unpacked/share/grainfs" "$root/share/grainfs.new"
rm -rf "$root/lib/grainfs.old" "$root/share/grainfs.old"
[ ! -e "$root/lib/grainfs" ] || mv "$root/lib/grainfs" "$root/lib/grainfs.old"
[ ! -e "$root/share/grainfs" ] || mv "$root/share/grainfs" "$root/share/grainfs.old"
mv "$root/lib/grainfs.new" "$root/lib/grainfs"
mv "$root/share/grainfs.new" "$root/share/grainfs"
rm -rf "$root/lib/grainfs.old" "$root/share/grainfs.old"
install -m 755 "$unpacked/bin/grainfs" "$unpacked/bin/grainfs-silo" "$root/bin/"

# Configuration: examples, never over the operator's own files.
mkdir -p "$etc"
for example in "$root"/share/grainfs/systemd/*.env.example; do
  [ -e "$example" ] || continue
  target="$etc/$(basename "$example" .example)"
  [ -e "$target" ] || install -m 640 "$example" "$target"
done

if [ $system = yes ]; then
  if ! id grainfs >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/grainfs --create-home --shell /usr/sbin/nologin grainfs
  fi
  mkdir -p /var/lib/grainfs /var/cache/grainfs
  chown grainfs:grainfs /var/lib/grainfs /var/cache/grainfs
  chmod 700 /var/lib/grainfs /var/cache/grainfs
  chgrp grainfs "$etc"/*.env 2>/dev/null || true
  if [ -d "$root/share/grainfs/systemd" ]; then
    for unit in "$root"/share/grainfs/systemd/*.service; do
      [ -e "$unit" ] || continue
      sed "s:/usr/local/:$root/:g" "$unit" >"/etc/systemd/system/$(basename "$unit")"
    done
    if [ -d /run/systemd/system ]; then
      systemctl daemon-reload
    fi
  fi
fi

echo "installed GrainFS $version into $root (configuration in $etc)"
echo "  $root/bin/grainfs-silo --help       the silo;  $root/bin/grainfs --help   the command line and FUSE mount"
[ $system = no ] || echo "  systemctl enable --now grainfs-silo   (settings in $etc/silo.env)"
