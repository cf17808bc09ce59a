#!/usr/bin/env bash
# Publishes self-contained `grainfs` (the CLI, FUSE mount and SDK tools) and `grainfs-silo` for Linux into
#   dist/grainfs-VERSION-RID.tar.gz
# with the README, the PostgreSQL schema (infra/db) and the service units (infra/deploy/systemd). Build output goes under
# dist/.artifacts: nothing is written outside dist/ (but the NuGet cache).
#   infra/package.sh [--rid linux-x64] [--rid linux-arm64]     (default: linux-x64, and linux-arm64 when it builds)
# Install with infra/install.sh [--prefix DIR] [TARBALL].
set -euo pipefail
cd "$(dirname "$0")/.."
rids=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rid) [ $# -ge 2 ] || { echo "package.sh: --rid needs a runtime id (linux-x64, linux-arm64)" >&2; exit 2; }; rids+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "package.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
explicit=${#rids[@]}
[ "$explicit" -gt 0 ] || rids=(linux-x64 linux-arm64)
version=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' Directory.Build.props | head -1)
[ -n "$version" ] || { echo "package.sh: no <Version> in Directory.Build.props" >&2; exit 1; }
mkdir -p dist
made=()
for rid in "${rids[@]}"; do
  name="grainfs-$version-$rid"
  stage="dist/.stage/$name"
  rm -rf "$stage"
  mkdir -p "$stage/bin" "$stage/lib/grainfs" "$stage/share/grainfs"
  echo "package.sh: publishing $name" >&2
  ok=yes
  for project in Client/Cli/Cli.csproj:cli Silo/Silo.csproj:silo; do
    if ! dotnet publish "${project%%:*}" -c Release -r "$rid" --self-contained true -nologo -v q \
        --artifacts-path "dist/.artifacts/$rid" -o "$stage/lib/grainfs/${project##*:}" \
        -p:DebugType=none >"dist/.publish-$rid.log" 2>&1; then
      ok=no
      break
    fi
  done
  if [ $ok = no ]; then
    if [ "$explicit" -gt 0 ] || [ "$rid" = linux-x64 ]; then
      tail -20 "dist/.publish-$rid.log" >&2
      echo "package.sh: publishing for $rid failed (log: dist/.publish-$rid.log)" >&2
      exit 1
    fi
    echo "package.sh: $rid does not build here (log: dist/.publish-$rid.log); skipped" >&2
    rm -rf "$stage"
    continue
  fi
  # The commands: small launchers that find the published folder next to them, wherever the tree is unpacked.
  for cmd in grainfs:cli grainfs-silo:silo; do
    cat >"$stage/bin/${cmd%%:*}" <<LAUNCHER
#!/bin/sh
here=\$(dirname "\$(readlink -f "\$0")")
exec "\$here/../lib/grainfs/${cmd##*:}/${cmd%%:*}" "\$@"
LAUNCHER
    chmod 755 "$stage/bin/${cmd%%:*}"
  done
  cp README.md "$stage/share/grainfs/"
  mkdir -p "$stage/share/grainfs/db"
  cp infra/db/*.sql infra/db/apply.sh "$stage/share/grainfs/db/"
  if [ -d infra/deploy/systemd ]; then
    mkdir -p "$stage/share/grainfs/systemd"
    cp infra/deploy/systemd/* "$stage/share/grainfs/systemd/"
  fi
  echo "$version" >"$stage/share/grainfs/VERSION"
  tar -C dist/.stage -czf "dist/$name.tar.gz" "$name"
  rm -rf "$stage"
  made+=("dist/$name.tar.gz")
done
rm -rf dist/.stage
[ ${#made[@]} -gt 0 ] || { echo "package.sh: nothing was packaged" >&2; exit 1; }
for tarball in "${made[@]}"; do
  echo "$tarball ($(du -h "$tarball" | cut -f1))"
done
