#!/usr/bin/env bash
# Runs a command next to a throwaway Azurite blob service (the pinned npm
# package in this directory) on a free 127.0.0.1 port, then stops it, also when
# the command fails or the script is interrupted.
#
#   run-with-azurite.sh COMMAND [ARGS...]
#
# The command sees AZURITE_ENDPOINT=http://127.0.0.1:<port>/devstoreaccount1.
# If Azurite cannot be started this script fails (exit 1): a missing emulator is
# an error in CI, never a silently skipped suite.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
main="$here/node_modules/azurite/dist/src/blob/main.js"

if ! command -v node >/dev/null; then
  echo "run-with-azurite: node is not installed (run scripts/install-deps.sh --test)" >&2
  exit 1
fi
if [[ ! -f "$main" ]]; then
  echo "run-with-azurite: Azurite is not installed in $here (run scripts/install-deps.sh --test)" >&2
  exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/registryctl-azurite.XXXXXX")"
pid=""
cleanup() {
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

started=$(date +%s.%N)
for attempt in 1 2 3; do
  # A free port: bind port 0, read it, release it.
  port=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();})')
  # ALWAYS --disableTelemetry: telemetry is on by default and phones home.
  node "$main" --blobHost 127.0.0.1 --blobPort "$port" --location "$work/data" \
    --disableTelemetry --silent >"$work/azurite.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 150); do
    if ! kill -0 "$pid" 2>/dev/null; then
      break
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      break 2
    fi
    sleep 0.1
  done
  echo "run-with-azurite: attempt $attempt: Azurite did not start on port $port:" >&2
  cat "$work/azurite.log" >&2 || true
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=""
done
if [[ -z "$pid" ]]; then
  echo "run-with-azurite: FAILED to start Azurite" >&2
  exit 1
fi
ended=$(date +%s.%N)
echo "run-with-azurite: Azurite $(node -p "require('$here/node_modules/azurite/package.json').version") on 127.0.0.1:$port, started in $(awk "BEGIN{printf \"%.2f\", $ended-$started}") s"

export AZURITE_ENDPOINT="http://127.0.0.1:$port/devstoreaccount1"
set +e
"$@"
status=$?
set -e
exit $status
