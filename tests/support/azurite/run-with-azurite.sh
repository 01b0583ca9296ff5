#!/usr/bin/env bash
# Runs a command next to a throwaway Azurite blob service (the pinned npm
# package in this directory) on a free 127.0.0.1 port, then stops it, also when
# the command fails or the script is interrupted.
#
#   run-with-azurite.sh COMMAND [ARGS...]
#
# The command sees AZURITE_ENDPOINT=http://127.0.0.1:<port>/devstoreaccount1, and
# AZURITE_TLS_ENDPOINT (https) with AZURITE_TLS_CA, the certificate it trusts.
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
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_azurite NAME [EXTRA ARGS...]: starts one instance on a free loopback
# port; sets $port. Three attempts (a port can be taken between pick and bind).
start_azurite() {
  local name=$1
  shift
  local pid
  for attempt in 1 2 3; do
    # A free port: bind port 0, read it, release it.
    port=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();})')
    # ALWAYS --disableTelemetry: telemetry is on by default and phones home.
    node "$main" --blobHost 127.0.0.1 --blobPort "$port" --location "$work/$name" \
      --disableTelemetry --silent "$@" >"$work/$name.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 150); do
      if ! kill -0 "$pid" 2>/dev/null; then
        break
      fi
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        pids+=("$pid")
        return 0
      fi
      sleep 0.1
    done
    echo "run-with-azurite: $name attempt $attempt: Azurite did not start on port $port:" >&2
    cat "$work/$name.log" >&2 || true
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  echo "run-with-azurite: FAILED to start Azurite ($name)" >&2
  exit 1
}

started=$(date +%s.%N)
start_azurite http
http_port=$port
# A second instance serves HTTPS with a throwaway self-signed certificate, for
# the TLS tests (ca_file, verification failures).
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
start_azurite https --cert "$work/cert.pem" --key "$work/key.pem"
https_port=$port
ended=$(date +%s.%N)
echo "run-with-azurite: Azurite $(node -p "require('$here/node_modules/azurite/package.json').version") on 127.0.0.1:$http_port (http) and :$https_port (https), started in $(awk "BEGIN{printf \"%.2f\", $ended-$started}") s"

export AZURITE_ENDPOINT="http://127.0.0.1:$http_port/devstoreaccount1"
export AZURITE_TLS_ENDPOINT="https://127.0.0.1:$https_port/devstoreaccount1"
export AZURITE_TLS_CA="$work/cert.pem"
set +e
"$@"
status=$?
set -e
exit $status
