#!/usr/bin/env bash
# A throwaway Ceph radosgw on loopback for the S3 driver tests:
# one mon, one OSD (bluestore on a sparse file), one radosgw, no mgr, no auth
# between daemons. See /work/shared/reference/local-object-stores.md section 3.
#
#   radosgw.sh start DIR [WATCH_PID]   starts everything under DIR (created), creates
#                                      the user and the bucket, prints KEY=VALUE lines:
#                                      endpoint, region, bucket, access_key_id,
#                                      secret_access_key, and the same gateway on
#                                      IPv6 (ipv6_endpoint, http://[::1]:PORT) and
#                                      over TLS (tls_endpoint, https://127.0.0.1:PORT,
#                                      with a throwaway certificate in ca_file). With WATCH_PID, a watchdog
#                                      stops the daemons when that process exits.
#   radosgw.sh stop DIR                stops radosgw, then the OSD, then the mon
#                                      (SIGTERM, SIGKILL after 5 s). Idempotent.
#
# The daemons run in the foreground (-f) as children of this script, so their PIDs
# are known; their output goes to DIR/*.log.
set -euo pipefail

access_key=REGISTRYTESTKEY
secret_key=registry-test-secret-key-0123456789
bucket=registry-test
region=us-east-1

usage() {
  echo "usage: $0 start DIR [WATCH_PID] | stop DIR" >&2
  exit 2
}

# Stops the daemon whose PID is in DIR/$1.pid: SIGTERM, then SIGKILL after 5 s.
stop_one() {
  local pidfile="$D/$1.pid" pid
  [[ -f "$pidfile" ]] || return 0
  pid=$(cat "$pidfile")
  local started=$SECONDS
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  echo "$(date -u +%T.%N) stopped $1 ($((SECONDS - started)) s)" >>"$D/stop.log"
  rm -f "$pidfile"
}

stop_all() {
  # The watchdog is our own shell loop: no reason to wait for it.
  if [[ -f "$D/watchdog.pid" ]]; then
    kill -KILL "$(cat "$D/watchdog.pid")" 2>/dev/null || true
    rm -f "$D/watchdog.pid"
  fi
  # Reverse order: killing the mon first leaves radosgw hanging for minutes.
  stop_one radosgw
  stop_one osd
  stop_one mon
}

# A TCP port below the ephemeral range that nothing listens on, on 127.0.0.1
# and on ::1.
free_port() {
  local port
  for _ in $(seq 200); do
    port=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && ! (exec 3<>"/dev/tcp/::1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  echo "no free port found" >&2
  return 1
}

fail() {
  echo "radosgw.sh: $*" >&2
  for log in "$D"/*.log; do
    [[ -f "$log" ]] && { echo "--- tail of $log" >&2; tail -n 15 "$log" >&2; }
  done
  stop_all
  exit 1
}

[[ $# -ge 2 ]] || usage
cmd=$1
D=$(realpath -m "$2")

case "$cmd" in
stop)
  stop_all
  exit 0
  ;;
start) ;;
*) usage ;;
esac

for tool in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool curl openssl; do
  command -v "$tool" >/dev/null || { echo "radosgw.sh: $tool not installed (scripts/install-deps.sh --test)" >&2; exit 1; }
done

mkdir -p "$D/mon" "$D/osd" "$D/run"
mon_v2=$(free_port)
mon_v1=$(free_port)
rgw_port=$(free_port)
rgw6_port=$(free_port)
rgw_tls_port=$(free_port)
fsid=$(cat /proc/sys/kernel/random/uuid)
osd_uuid=$(cat /proc/sys/kernel/random/uuid)
C="$D/ceph.conf"

cat >"$C" <<CONF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_v2,v1:127.0.0.1:$mon_v1
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc secure
run dir = $D/run
admin socket = $D/run/\$name.asok
log file = $D/\$name.log
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon data avail crit = 1
osd crush chooseleaf type = 0
paxos propose interval = 0.05
objecter tick interval = 0.5
osd mon report interval = 1

[mon.a]
mon data = $D/mon

[osd.0]
osd data = $D/osd
osd objectstore = bluestore
bluestore block path = $D/osd-block.img
bluestore block create = true
bluestore block size = 10G
bluestore cache autotune = false
bluestore cache size = 256M
bluestore fsck on mkfs = false

[client.rgw]
rgw frontends = beast tcp_nodelay=1 endpoint=127.0.0.1:$rgw_port endpoint=[::1]:$rgw6_port ssl_endpoint=127.0.0.1:$rgw_tls_port ssl_certificate=$D/tls.pem ssl_private_key=$D/tls.key
rgw dns name = s3.localhost
# SIGTERM otherwise waits about 6 s for in-flight requests; the data is throwaway.
rgw exit timeout secs = 1
CONF

run() { timeout 60 "$@" >>"$D/setup.log" 2>&1 || fail "failed: $*"; }

run openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$D/tls.key" -out "$D/tls.pem"
run monmaptool --create --addv a "[v2:127.0.0.1:$mon_v2,v1:127.0.0.1:$mon_v1]" --fsid "$fsid" "$D/monmap"
run ceph-mon -c "$C" -i a --mkfs --monmap "$D/monmap"
ceph-mon -c "$C" -i a -f </dev/null >>"$D/mon.out.log" 2>&1 &
echo $! >"$D/mon.pid"

run ceph -c "$C" osd new "$osd_uuid"
run ceph-osd -c "$C" -i 0 --mkfs --osd-uuid "$osd_uuid"
ceph-osd -c "$C" -i 0 -f </dev/null >>"$D/osd.out.log" 2>&1 &
echo $! >"$D/osd.pid"

radosgw -c "$C" -n client.rgw -f </dev/null >>"$D/radosgw.out.log" 2>&1 &
echo $! >"$D/radosgw.pid"

if [[ $# -ge 3 ]]; then
  watch_pid=$3
  # Stops the daemons when the test process goes away, even on a crash.
  (
    while kill -0 "$watch_pid" 2>/dev/null; do sleep 1; done
    rm -f "$D/watchdog.pid"
    "$0" stop "$D"
  ) </dev/null >/dev/null 2>&1 &
  echo $! >"$D/watchdog.pid"
fi

endpoint="http://127.0.0.1:$rgw_port"
up=0
for _ in $(seq 600); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$rgw_port") 2>/dev/null; then
    up=1
    break
  fi
  kill -0 "$(cat "$D/radosgw.pid")" 2>/dev/null || fail "radosgw exited during start"
  sleep 0.1
done
[[ $up == 1 ]] || fail "radosgw did not listen on $endpoint within 60 s"

run radosgw-admin -c "$C" user create --uid=registry-test --display-name=registry-test \
  --access-key="$access_key" --secret="$secret_key"

# The bucket, with a SigV4-signed PUT (radosgw wants x-amz-content-sha256).
status=$(curl -sS -o "$D/bucket.out" -w '%{http_code}' --aws-sigv4 "aws:amz:$region:s3" \
  --user "$access_key:$secret_key" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
  -X PUT "$endpoint/$bucket") || fail "cannot create bucket $bucket"
[[ $status == 200 ]] || fail "creating bucket $bucket answered $status: $(cat "$D/bucket.out")"

cat <<OUT
endpoint=$endpoint
region=$region
bucket=$bucket
access_key_id=$access_key
secret_access_key=$secret_key
ipv6_endpoint=http://[::1]:$rgw6_port
tls_endpoint=https://127.0.0.1:$rgw_tls_port
ca_file=$D/tls.pem
OUT
