#!/usr/bin/env bash
# The HTTP proxy against direct access, side by side in one run:
#  1. paced load at RATE requests/s (default 5000): p50/p99 latency direct
#     and through `vakt proxy http`, and the latency the proxy adds;
#  2. wrk at full speed: requests/s direct, through vakt and through nginx
#     (the reverse proxy a user would put there instead: one worker,
#     keep-alive to the API, no access log, no inspection) and through
#     HAProxy (one thread) twice: as an HTTP proxy, and in TCP mode, a
#     byte pump that parses nothing, the ceiling any proxy on this machine
#     can reach; their ratios to direct, and the CPU time per request
#     (user + system, from /proc/PID/stat around each wrk run) of the vakt
#     process (every thread: serving, detection, ledger) and of the peers.
# Needs: wrk (apt-get install -y wrk); nginx and HAProxy are measured when
# installed (apt-get install -y nginx-light haproxy).
# INSTRUCTIONS=1 then counts each proxy's user-space instructions per
# request under valgrind's callgrind (installed with apt-get when absent),
# a figure a shared, noisy machine does not move: each proxy is started
# under callgrind twice, paced at 300 requests/s for 3 s and for 9 s, and
# the difference is divided by the extra requests (start-up, shutdown and
# idle work between requests cancel out or count against the proxy).
# Usage: bench/http-proxy.sh [RATE] [SECONDS]
# VAKT_PROXY_ARGS adds options to `vakt proxy http` (e.g. "--threads 0").
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-5000}
SECS=${2:-15}
command -v wrk >/dev/null || { echo "bench/http-proxy.sh needs wrk: apt-get install -y wrk" >&2; exit 1; }
cargo build --release -q -p vakt -p vakt-proxy --examples --bins
T=target/release
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(free_port); PX=$(free_port); NX=$(free_port); HT=$(free_port); HH=$(free_port)
$T/examples/lookup_api 127.0.0.1:$UP 2>/dev/null &
$T/vakt proxy http --listen 127.0.0.1:$PX --upstream http://127.0.0.1:$UP \
  --directory bench/http-proxy-directory.toml --data "$WORK/data" --alerts "$WORK/alerts.jsonl" ${VAKT_PROXY_ARGS:-} 2>"$WORK/proxy.log" &
PX_PID=$!
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
NX_PID=""
if [[ -x $NGINX ]]; then
  cat >"$WORK/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx-body;
  proxy_temp_path $WORK/nginx-proxy;
  upstream api { server 127.0.0.1:$UP; keepalive 64; }
  server {
    listen 127.0.0.1:$NX;
    location / { proxy_pass http://api; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
  "$NGINX" -c "$WORK/nginx.conf" -p "$WORK" 2>"$WORK/nginx.out" &
else
  echo "nginx not installed (apt-get install -y nginx-light): measuring direct and vakt only" >&2
fi
HA_PID=""
if command -v haproxy >/dev/null; then
  cat >"$WORK/haproxy.cfg" <<CONF
global
  nbthread 1
defaults
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend tcp_in
  bind 127.0.0.1:$HT
  mode tcp
  default_backend tcp_api
backend tcp_api
  mode tcp
  server api 127.0.0.1:$UP
frontend http_in
  bind 127.0.0.1:$HH
  mode http
  default_backend http_api
backend http_api
  mode http
  http-reuse always
  server api 127.0.0.1:$UP
CONF
  haproxy -f "$WORK/haproxy.cfg" -db 2>"$WORK/haproxy.out" &
  HA_PID=$!
else
  echo "haproxy not installed (apt-get install -y haproxy): measuring without it" >&2
fi
for _ in $(seq 50); do curl -fs -o /dev/null http://127.0.0.1:$PX/api/v1/customers/C-1 && break; sleep 0.1; done
if [[ -n $HA_PID ]]; then
  for _ in $(seq 50); do curl -fs -o /dev/null http://127.0.0.1:$HH/api/v1/customers/C-1 && break; sleep 0.1; done
fi
if [[ -x $NGINX ]]; then
  for _ in $(seq 50); do curl -fs -o /dev/null http://127.0.0.1:$NX/api/v1/customers/C-1 && break; sleep 0.1; done
  NX_PID=$(pgrep -P "$(cat "$WORK/nginx.pid")" | head -1)
fi
ticks() { awk '{ print $14, $15 }' "/proc/$1/stat"; }
# wrk at full speed through PORT, CPU of PID:
# "requests/s p99 us-CPU-per-request us-user us-system".
full_speed() { # PORT PID [wrk options]
  local port=$1 pid=$2 before after out; shift 2
  before=$(ticks "$pid")
  out=$(wrk -t2 -c32 -d${SECS}s --latency "$@" http://127.0.0.1:$port/api/v1/customers/C-1)
  after=$(ticks "$pid")
  python3 - "$before" "$after" "$(echo "$out" | awk '/requests in/ {print $1}')" \
    "$(echo "$out" | awk '/Requests\/sec/ {print $2}')" "$(echo "$out" | awk '$1=="99%" {print $2}')" "$(getconf CLK_TCK)" <<'PY'
import sys
b, a, n, rps, p99, hz = sys.argv[1:]
(bu, bs), (au, as_) = (map(int, x.split()) for x in (b, a))
us = lambda t: t / int(hz) * 1e6 / max(int(n), 1)
print(rps, p99, "%.1f %.1f %.1f" % (us(au + as_ - bu - bs), us(au - bu), us(as_ - bs)))
PY
}

echo "== paced load, $RATE requests/s for $SECS s (latency from scheduled time)"
D=$($T/examples/paced_load http://127.0.0.1:$UP "$RATE" "$SECS" 32)
P=$($T/examples/paced_load http://127.0.0.1:$PX "$RATE" "$SECS" 32)
echo "direct:        $D"
echo "through proxy: $P"
python3 - "$D" "$P" <<'PY'
import json, sys
d, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"added latency: p50 {p['p50_ms']-d['p50_ms']:+.3f} ms, p99 {p['p99_ms']-d['p99_ms']:+.3f} ms")
PY

echo "== wrk, 2 threads, 32 connections, $SECS s"
read -r rd pd _ <<<"$(full_speed "$UP" "$(pgrep -f "examples/lookup_api 127.0.0.1:$UP" | head -1)")"
read -r rp pp cp up sp <<<"$(full_speed "$PX" "$PX_PID" -H 'X-Account: bench-wrk')"
echo "direct:          $rd requests/s, p99 $pd"
echo "through vakt:    $rp requests/s, p99 $pp, $cp us CPU per request (user $up, system $sp)"
if [[ -n $NX_PID ]]; then
  read -r rn pn cn un sn <<<"$(full_speed "$NX" "$NX_PID")"
  echo "through nginx:   $rn requests/s, p99 $pn, $cn us CPU per request (user $un, system $sn)"
fi
if [[ -n $HA_PID ]]; then
  read -r rh ph ch uh sh <<<"$(full_speed "$HH" "$HA_PID")"
  echo "through HAProxy: $rh requests/s, p99 $ph, $ch us CPU per request (user $uh, system $sh)"
  read -r rt pt ct ut st <<<"$(full_speed "$HT" "$HA_PID")"
  echo "HAProxy TCP:     $rt requests/s, p99 $pt, $ct us CPU per request (user $ut, system $st): bytes pumped, nothing parsed"
fi
python3 - "$rd" "$rp" "$cp" "${rn:-}" "${cn:-}" "${rh:-}" "${ch:-}" "${rt:-}" <<'PY'
import sys
d, p, cp, n, cn, h, ch, t = sys.argv[1:]
print(f"ratio vakt/direct: {float(p)/float(d):.2f}")
for name, r, c in (("nginx", n, cn), ("HAProxy", h, ch)):
    if r:
        print(f"ratio {name}/direct: {float(r)/float(d):.2f}; vakt/{name}: {float(p)/float(r):.2f} of the throughput, {float(cp)/float(c):.2f}x the CPU per request")
if t:
    print(f"ratio HAProxy TCP/direct: {float(t)/float(d):.2f} (the ceiling of a proxy here)")
PY
kill -INT "$PX_PID" 2>/dev/null || true
wait "$PX_PID" 2>/dev/null || true
grep -E "accesses" "$WORK/proxy.log" || true

if [[ -n ${INSTRUCTIONS:-} ]]; then
  command -v valgrind >/dev/null || apt-get install -y valgrind >/dev/null 2>&1 \
    || { echo "http-proxy.sh: valgrind is missing and could not be installed" >&2; exit 1; }
  [[ -n $HA_PID ]] && kill "$HA_PID" 2>/dev/null
  [[ -n $NX_PID ]] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null
  sleep 1
  # Instructions of one proxy for SECS at 300 requests/s: PORT SIGNAL SECS CMD...
  counted() {
    local port=$1 signal=$2 secs=$3 pid; shift 3
    rm -rf "$WORK/cg.out" "$WORK/cg-data"
    valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" "$@" >/dev/null 2>"$WORK/cg.log" &
    pid=$!
    for _ in $(seq 300); do curl -fs -o /dev/null http://127.0.0.1:$port/api/v1/customers/C-1 && break; sleep 0.2; done
    $T/examples/paced_load http://127.0.0.1:$port 300 "$secs" 8 >/dev/null
    kill -"$signal" "$pid"; wait "$pid" 2>/dev/null || true
    awk '/^(summary|totals):/ { print $2; exit }' "$WORK/cg.out"
  }
  per_request() { # PORT SIGNAL CMD...
    local small large
    small=$(counted "$1" "$2" 3 "${@:3}"); large=$(counted "$1" "$2" 9 "${@:3}")
    echo $(( (large - small) / (300 * 6) ))
  }
  echo "== user-space instructions per request (callgrind, 300 requests/s, 9 s minus 3 s)"
  CX=$(free_port)
  iv=$(per_request "$CX" INT $T/vakt proxy http --listen 127.0.0.1:$CX --upstream http://127.0.0.1:$UP \
    --directory bench/http-proxy-directory.toml --data "$WORK/cg-data" --alerts "$WORK/cg-alerts.jsonl" ${VAKT_PROXY_ARGS:-})
  echo "vakt:    $iv"
  if [[ -n $NX_PID ]]; then
    sed -e "s/listen 127.0.0.1:$NX/listen 127.0.0.1:$CX/" -e 's/^daemon off;/daemon off;\nmaster_process off;/' \
      "$WORK/nginx.conf" >"$WORK/nginx-cg.conf"
    inx=$(per_request "$CX" TERM "$NGINX" -c "$WORK/nginx-cg.conf" -p "$WORK")
    echo "nginx:   $inx  (vakt / nginx $(python3 -c "print('%.2f' % ($iv / $inx))"))"
  fi
  if [[ -n $HA_PID ]]; then
    sed "s/bind 127.0.0.1:$HH/bind 127.0.0.1:$CX/" "$WORK/haproxy.cfg" >"$WORK/haproxy-cg.cfg"
    iha=$(per_request "$CX" TERM haproxy -f "$WORK/haproxy-cg.cfg" -db)
    echo "HAProxy: $iha  (vakt / HAProxy $(python3 -c "print('%.2f' % ($iv / $iha))"))"
  fi
fi
