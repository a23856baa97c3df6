#!/usr/bin/env bash
# The HTTP proxy against direct access, side by side in one run:
#  1. paced load at RATE requests/s (default 5000): p50/p99 latency direct
#     and through `vakt proxy http`, and the latency the proxy adds;
#  2. wrk at full speed: requests/s direct and through, and their ratio.
# Needs: wrk (apt-get install -y wrk). Usage: bench/http-proxy.sh [RATE] [SECONDS]
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
UP=$(free_port); PX=$(free_port)
$T/examples/lookup_api 127.0.0.1:$UP 2>/dev/null &
$T/vakt proxy http --listen 127.0.0.1:$PX --upstream http://127.0.0.1:$UP \
  --directory bench/http-proxy-directory.toml --data "$WORK/data" --alerts "$WORK/alerts.jsonl" ${VAKT_PROXY_ARGS:-} 2>"$WORK/proxy.log" &
for _ in $(seq 50); do curl -fs -o /dev/null http://127.0.0.1:$PX/api/v1/customers/C-1 && break; sleep 0.1; done

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
wd=$(wrk -t2 -c32 -d${SECS}s --latency http://127.0.0.1:$UP/api/v1/customers/C-1)
wp=$(wrk -t2 -c32 -d${SECS}s --latency -H 'X-Account: bench-wrk' http://127.0.0.1:$PX/api/v1/customers/C-1)
rd=$(echo "$wd" | awk '/Requests\/sec/ {print $2}')
rp=$(echo "$wp" | awk '/Requests\/sec/ {print $2}')
echo "direct:        $rd requests/s, p99 $(echo "$wd" | awk '$1=="99%" {print $2}')"
echo "through proxy: $rp requests/s, p99 $(echo "$wp" | awk '$1=="99%" {print $2}')"
python3 -c "print(f'ratio proxy/direct: {float($rp)/float($rd):.2f}')"
kill -INT %2 2>/dev/null || true
wait %2 2>/dev/null || true
grep -E "accesses" "$WORK/proxy.log" || true
