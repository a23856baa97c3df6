#!/usr/bin/env bash
# vakt and CrowdSec on the same nginx log, in one run, on this machine.
#   usage: bench/crowdsec-side-by-side.sh [LINES] [SEED]
# Needs: python3, GNU time (apt-get install -y time), and CrowdSec for its half
# (apt-get install -y crowdsec || true; its post-install registration fails
# offline, the binaries are installed).
set -euo pipefail
cd "$(dirname "$0")/.."
LINES=${1:-100000}
SEED=${2:-42}
SHARED=${VAKT_SHARED_BENCH:-../shared/bench}
[ -x /usr/bin/time ] || { echo "GNU time is missing: apt-get install -y time"; exit 2; }
W=${BENCH_DIR:-/tmp/vakt-vs-crowdsec}
mkdir -p "$W"
LOG="$W/access.log"
python3 "$SHARED/gen_nginx_log.py" "$LINES" --seed "$SEED" --out "$LOG"
cargo build --release -q
VAKT=target/release/vakt

echo "== vakt"
/usr/bin/time -v -o "$W/vakt.time" "$VAKT" watch --format nginx --directory bench/nginx-directory.toml \
  "$LOG" > "$W/vakt-alerts.jsonl" 2> "$W/vakt.stderr" || { cat "$W/vakt.stderr"; exit 1; }
grep -E '^vakt watch|rejected|alerts:' "$W/vakt.stderr"
vakt_wall=$(awk -F': ' '/Elapsed \(wall/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$W/vakt.time")
vakt_rss=$(awk -F': ' '/Maximum resident/ {print $2}' "$W/vakt.time")
# Alerts -> score.py's TSV: actor address, rule, event time of the first alert line.
python3 - "$W/vakt-alerts.jsonl" > "$W/vakt-detections.tsv" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    a = json.loads(line)
    if a["severity"] == "low":
        continue
    # A group alert names its members (address and user agent) in its evidence.
    members = [m["client"].split(" ")[0] for m in a.get("evidence", {}).get("member_reads", [])]
    for ip in members or [a.get("source.ip") or a.get("user.name")]:
        print(f"{ip}\t{a['rule.id']}\t{a['@timestamp']}")
PY
python3 "$SHARED/score.py" "$LOG.labels.json" "$W/vakt-detections.tsv"

if command -v crowdsec >/dev/null; then
  echo "== CrowdSec"
  CS_OUT="$W/crowdsec" bash "$SHARED/crowdsec_replay.sh" "$LOG" | tee "$W/crowdsec.txt"
  cs_wall=$(awk -F': ' '/Elapsed \(wall/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$W/crowdsec/time.txt")
  cs_rss=$(awk -F': ' '/Maximum resident/ {print $2}' "$W/crowdsec/time.txt")
  echo "== side by side ($LINES lines, seed $SEED)"
  python3 - "$LINES" "$vakt_wall" "$vakt_rss" "$cs_wall" "$cs_rss" <<'PY'
import sys
n, vw, vr, cw, cr = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
vw, cw = max(vw, 0.01), max(cw, 0.01)
print(f"vakt     : {vw:8.2f} s wall, {n / vw:12,.0f} lines/s, peak RSS {vr / 1024:7.1f} MiB")
print(f"CrowdSec : {cw:8.2f} s wall, {n / cw:12,.0f} lines/s, peak RSS {cr / 1024:7.1f} MiB")
print(f"vakt/CrowdSec throughput ratio: {cw / vw:,.0f}x")
PY
else
  echo "CrowdSec is not installed: apt-get install -y crowdsec || true   (then run this again)"
fi
