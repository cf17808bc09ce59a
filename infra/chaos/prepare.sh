# Sourced by infra/chaos/run.sh and soak.sh: checks what they need, installs s3rver (npm) when missing and builds the
# solution (Release). $1 names the calling script in messages.
missing=()
for tool in dotnet node npm fusermount3; do command -v "$tool" >/dev/null || missing+=("$tool"); done
/usr/bin/python3 -c "import fusepy" 2>/dev/null || missing+=("python3-fusepy libfuse2")
if [ ${#missing[@]} -gt 0 ]; then
  echo "$1: missing: ${missing[*]} (on Debian: apt-get install -y fuse3 nodejs npm python3-fusepy libfuse2)" >&2
  exit 2
fi
if [ ! -f infra/bench/node_modules/s3rver/bin/s3rver.js ]; then
  echo "$1: installing s3rver (npm)" >&2
  (cd infra/bench && npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi
dotnet build Orleans.sln -c Release -nologo -v q >/dev/null
