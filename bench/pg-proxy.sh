#!/usr/bin/env bash
# pgbench read-only (-S) directly against PostgreSQL, through `vakt proxy
# pg`, and through PgBouncer (session pooling: the hop a user would add
# anyway), on a throwaway cluster; prints TPS and the ratios to direct.
#
#   bench/pg-proxy.sh [SECONDS] [CLIENTS] [THREADS] [ROUNDS]   (default 20 8 2 3)
#
# Direct and proxied runs alternate ROUNDS times and the medians are
# compared, since a shared machine's speed drifts from minute to minute.
# PGBENCH_MODE (default -S) picks the workload, e.g. "-S -M prepared" for
# the extended protocol, or "-N" for simple updates. VAKT_PROXY_ARGS adds
# options to `vakt proxy pg` (e.g. "--threads 0").
#
# Beside TPS it prints the CPU time each middle process (vakt, PgBouncer)
# spent per transaction, from /proc/PID/stat (user + system) around each
# of its rounds: what the hop costs, whatever the neighbours take.
#
# INSTRUCTIONS=1 also counts the user-space instructions each middle
# process executes per transaction, under valgrind's callgrind (installed
# with apt-get when absent): unlike CPU time, a count that a shared,
# noisy machine does not move. Two fixed-length pgbench runs per process
# (4 clients, 500 and 2,500 transactions each), and the difference is
# divided by the extra transactions, so start-up and shutdown cancel out.
#
# VAKT_BIN=PATH measures that vakt binary instead of building this tree's
# (to compare two builds in the same hour).
#
# PERF_OUT=FILE adds one more round through vakt under `perf record -g`
# (attached to the proxy process only), written to FILE for `perf report`.
#
# Needs the PostgreSQL server binaries and pgbench (Debian: apt-get install
# postgresql postgresql-contrib); PgBouncer is measured when installed
# (apt-get install pgbouncer). As root, PostgreSQL runs as `postgres`
# (or `nobody`). Everything listens on 127.0.0.1 and is removed at exit.
set -euo pipefail

SECONDS_RUN=${1:-20}
CLIENTS=${2:-8}
THREADS=${3:-2}
ROUNDS=${4:-3}
MODE=${PGBENCH_MODE:--S}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

bin=""
for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
  if [[ -x $d/initdb && -x $d/postgres ]]; then bin=$d; break; fi
done
if [[ -z $bin ]]; then
  bin=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
fi
for tool in initdb postgres pg_isready; do
  if [[ ! -x $bin/$tool ]]; then
    echo "pg-proxy.sh: $tool not found (looked in /usr/lib/postgresql/*/bin and PATH); install postgresql" >&2
    exit 1
  fi
done
PGBENCH=$(command -v pgbench || echo "$bin/pgbench")
[[ -x $PGBENCH ]] || { echo "pg-proxy.sh: pgbench not found; install postgresql-contrib" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

tmp=$(mktemp -d)
as=()
if [[ $(id -u) == 0 ]]; then
  user=postgres; id -u postgres >/dev/null 2>&1 || user=nobody
  chown "$user" "$tmp"
  as=(runuser -u "$user" --)
fi
pg_pid=""; proxy_pid=""; bouncer_pid=""
cleanup() {
  [[ -n $proxy_pid ]] && kill "$proxy_pid" 2>/dev/null && wait "$proxy_pid" 2>/dev/null || true
  [[ -n $bouncer_pid ]] && kill "$bouncer_pid" 2>/dev/null && wait "$bouncer_pid" 2>/dev/null || true
  if [[ -n $pg_pid ]]; then
    kill -QUIT "$pg_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pg_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pg_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

PG_PORT=$(free_port)
PROXY_PORT=$(free_port)
BOUNCER_PORT=$(free_port)
echo "== cluster: $bin, port $PG_PORT" >&2
"${as[@]}" "$bin/initdb" -D "$tmp/data" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$tmp/initdb.log" 2>&1 \
  || { cat "$tmp/initdb.log" >&2; exit 1; }
"${as[@]}" "$bin/postgres" -D "$tmp/data" -c listen_addresses=127.0.0.1 -c port="$PG_PORT" -k "$tmp" \
  -c fsync=off -c synchronous_commit=off -c max_connections=100 >"$tmp/postgres.log" 2>&1 &
pg_pid=$!
# As root `runuser` stays the parent; signal postgres itself.
for _ in $(seq 300); do
  "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break
  kill -0 "$pg_pid" 2>/dev/null || { cat "$tmp/postgres.log" >&2; exit 1; }
  sleep 0.1
done
"$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" || { echo "postgres did not start in 30 s" >&2; cat "$tmp/postgres.log" >&2; exit 1; }
pg_pid=$(head -1 "$tmp/data/postmaster.pid")

echo "== pgbench -i -s 10" >&2
"$PGBENCH" -i -s 10 -q -h 127.0.0.1 -p "$PG_PORT" -U postgres postgres >"$tmp/init.log" 2>&1 \
  || { cat "$tmp/init.log" >&2; exit 1; }

if [[ -n ${VAKT_BIN:-} ]]; then
  vakt=$VAKT_BIN
else
  echo "== building the proxy" >&2
  (cd "$ROOT" && cargo build --release -q -p vakt)
  target=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  vakt=$target/release/vakt
fi
cat >"$tmp/directory.toml" <<'EOF'
[postgres]
key_columns = ["aid"]

[[postgres.table]]
name = "pgbench_accounts"
categories = ["balance"]
EOF
"$vakt" proxy pg --listen "127.0.0.1:$PROXY_PORT" --upstream "127.0.0.1:$PG_PORT" \
  --data "$tmp/vakt-data" --directory "$tmp/directory.toml" --alerts "$tmp/alerts.jsonl" ${VAKT_PROXY_ARGS:-} 2>"$tmp/proxy.log" &
proxy_pid=$!
BOUNCER=$(command -v pgbouncer || true)
if [[ -n $BOUNCER ]]; then
  printf '"postgres" ""\n' >"$tmp/users.txt"
  cat >"$tmp/pgbouncer.ini" <<INI
[databases]
postgres = host=127.0.0.1 port=$PG_PORT dbname=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $tmp/users.txt
pool_mode = session
max_client_conn = 200
default_pool_size = 50
logfile = $tmp/pgbouncer.log
pidfile = $tmp/pgbouncer.pid
INI
  chmod a+r "$tmp"/pgbouncer.ini "$tmp"/users.txt
  "${as[@]}" "$BOUNCER" "$tmp/pgbouncer.ini" >/dev/null 2>&1 &
  bouncer_pid=$!
else
  echo "== pgbouncer not installed (apt-get install pgbouncer): measuring direct and vakt only" >&2
fi
for _ in $(seq 100); do
  "$bin/pg_isready" -q -h 127.0.0.1 -p "$PROXY_PORT" && break
  sleep 0.1
done

tps() { # PORT SECONDS
  # shellcheck disable=SC2086
  "$PGBENCH" $MODE -c "$CLIENTS" -j "$THREADS" -T "$2" -n -h 127.0.0.1 -p "$1" -U postgres postgres 2>/dev/null \
    | sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p; s/^number of transactions actually processed: \([0-9]*\).*$/\1/p' \
    | tr '\n' ' '
}
ticks() { # PID: "user system" CPU ticks so far
  awk '{ print $14, $15 }' "/proc/$1/stat" 2>/dev/null || echo 0 0
}
# One round through a middle process: "TPS CPU-us-per-transaction
# user-us system-us" (CPU of all its threads).
measured() { # PORT PID
  local before after out
  before=$(ticks "$2")
  out=$(tps "$1" "$SECONDS_RUN")
  after=$(ticks "$2")
  # shellcheck disable=SC2086
  set -- $out $before $after
  python3 -c "
import sys
n, t = int(sys.argv[1]), float(sys.argv[2])
bu, bs, au, as_ = (int(x) for x in sys.argv[3:7])
per = 1e6 / $(getconf CLK_TCK) / max(n, 1)
print('%.2f %.2f %.2f %.2f' % (t, (au - bu + as_ - bs) * per, (au - bu) * per, (as_ - bs) * per))" "$@"
}

echo "== warm-up (5 s, direct)" >&2
tps "$PG_PORT" 5 >/dev/null
bouncer_real=""
if [[ -n $bouncer_pid && -f $tmp/pgbouncer.pid ]]; then bouncer_real=$(cat "$tmp/pgbouncer.pid"); fi
direct=(); proxied=(); bounced=(); proxy_cpu=(); bouncer_cpu=()
proxy_user=(); proxy_sys=(); bouncer_user=(); bouncer_sys=()
for r in $(seq "$ROUNDS"); do
  echo "== round $r/$ROUNDS: pgbench $MODE -c $CLIENTS -j $THREADS -T $SECONDS_RUN: direct, vakt, pgbouncer" >&2
  d=$(tps "$PG_PORT" "$SECONDS_RUN"); direct+=("${d#* }")
  read -r t c u s <<<"$(measured "$PROXY_PORT" "$proxy_pid")"
  proxied+=("$t"); proxy_cpu+=("$c"); proxy_user+=("$u"); proxy_sys+=("$s")
  if [[ -n $bouncer_real ]]; then
    read -r t c u s <<<"$(measured "$BOUNCER_PORT" "$bouncer_real")"
    bounced+=("$t"); bouncer_cpu+=("$c"); bouncer_user+=("$u"); bouncer_sys+=("$s")
  fi
  echo "   direct ${direct[-1]} tps, vakt ${proxied[-1]} tps (${proxy_cpu[-1]} us CPU/tx: user ${proxy_user[-1]}, system ${proxy_sys[-1]}), pgbouncer ${bounced[-1]:-n/a} tps (${bouncer_cpu[-1]:-n/a} us CPU/tx: user ${bouncer_user[-1]:-n/a}, system ${bouncer_sys[-1]:-n/a})" >&2
done
if [[ -n ${PERF_OUT:-} ]]; then
  echo "== profiling the proxy for one more round: $PERF_OUT" >&2
  perf record -q -g -p "$proxy_pid" -o "$PERF_OUT" -- sleep "$SECONDS_RUN" 2>/dev/null &
  perf_pid=$!
  tps "$PROXY_PORT" "$SECONDS_RUN" >/dev/null
  wait "$perf_pid" || true
fi
kill -INT "$proxy_pid"; wait "$proxy_pid" 2>/dev/null || true; proxy_pid=""

# Instructions of one middle process under callgrind for TX transactions per client.
instructions() { # vakt|pgbouncer TX
  local port out pid
  port=$(free_port); out="$tmp/callgrind.$1.$2"
  if [[ $1 == vakt ]]; then
    rm -rf "$tmp/vakt-counted"
    valgrind --tool=callgrind --callgrind-out-file="$out" "$vakt" proxy pg \
      --listen "127.0.0.1:$port" --upstream "127.0.0.1:$PG_PORT" --data "$tmp/vakt-counted" \
      --directory "$tmp/directory.toml" --alerts "$tmp/alerts-counted.jsonl" ${VAKT_PROXY_ARGS:-} >/dev/null 2>&1 &
  else
    sed "s/^listen_port = .*/listen_port = $port/; s|^pidfile = .*|pidfile = $tmp/counted.pid|" \
      "$tmp/pgbouncer.ini" >"$tmp/counted.ini"
    chmod a+r "$tmp/counted.ini"; chmod a+rwx "$tmp"
    "${as[@]}" valgrind --tool=callgrind --callgrind-out-file="$out" "$BOUNCER" "$tmp/counted.ini" >/dev/null 2>&1 &
  fi
  pid=$!
  for _ in $(seq 600); do "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" && break; sleep 0.2; done
  "$PGBENCH" $MODE -c 4 -j 1 -t "$2" -n -h 127.0.0.1 -p "$port" -U postgres postgres >/dev/null 2>&1
  pkill -INT -f "callgrind-out-file=$out" || true
  wait "$pid" 2>/dev/null || true
  for _ in $(seq 100); do [[ -s $out ]] && break; sleep 0.2; done
  sed -n 's/^totals: \([0-9]*\).*/\1/p; s/^summary: \([0-9]*\).*/\1/p' "$out" | head -1
}
counted=""
if [[ -n ${INSTRUCTIONS:-} ]]; then
  command -v valgrind >/dev/null || apt-get install -y valgrind >/dev/null 2>&1 \
    || { echo "pg-proxy.sh: valgrind is missing and could not be installed" >&2; exit 1; }
  for who in vakt ${BOUNCER:+pgbouncer}; do
    echo "== counting instructions under callgrind: $who" >&2
    small=$(instructions "$who" 500); large=$(instructions "$who" 2500)
    counted+="$who $(( (large - small) / (4 * 2000) )) "
  done
fi

printf 'pgbench %s -c %s -j %s -T %s, scale 10, %s rounds, %s cores\n' "$MODE" "$CLIENTS" "$THREADS" "$SECONDS_RUN" "$ROUNDS" "$(nproc)"
python3 - "${direct[*]}" "${proxied[*]}" "${bounced[*]:-}" "${proxy_cpu[*]}" "${bouncer_cpu[*]:-}" \
  "${proxy_user[*]}" "${proxy_sys[*]}" "${bouncer_user[*]:-}" "${bouncer_sys[*]:-}" <<'PY'
import statistics, sys
d = [float(x) for x in sys.argv[1].split()]
p = [float(x) for x in sys.argv[2].split()]
b = [float(x) for x in sys.argv[3].split() if x]
pc = [float(x) for x in sys.argv[4].split()]
bc = [float(x) for x in sys.argv[5].split() if x]
pu, ps = [float(x) for x in sys.argv[6].split()], [float(x) for x in sys.argv[7].split()]
bu, bs = [float(x) for x in sys.argv[8].split() if x], [float(x) for x in sys.argv[9].split() if x]
md, mp = statistics.median(d), statistics.median(p)
print("  direct:           %10.0f tps (median of %s)" % (md, ", ".join("%.0f" % x for x in d)))
print("  vakt proxy pg:    %10.0f tps (median of %s)  ratio to direct %.3f" % (mp, ", ".join("%.0f" % x for x in p), mp / md))
if b:
    mb = statistics.median(b)
    print("  pgbouncer:        %10.0f tps (median of %s)  ratio to direct %.3f" % (mb, ", ".join("%.0f" % x for x in b), mb / md))
    print("  vakt / pgbouncer: %10.3f" % (mp / mb))
print("  CPU per transaction, vakt proxy pg: %.1f us (median of %s)" % (statistics.median(pc), ", ".join("%.1f" % x for x in pc)))
if bc:
    print("  CPU per transaction, pgbouncer:     %.1f us (median of %s)  vakt / pgbouncer %.2f" % (statistics.median(bc), ", ".join("%.1f" % x for x in bc), statistics.median(pc) / statistics.median(bc)))
print("    of which user / system, vakt:      %.1f / %.1f us" % (statistics.median(pu), statistics.median(ps)))
if bu:
    print("    of which user / system, pgbouncer: %.1f / %.1f us" % (statistics.median(bu), statistics.median(bs)))
PY
if [[ -n $counted ]]; then
  # shellcheck disable=SC2086
  set -- $counted
  printf '  user-space instructions per transaction (callgrind): %s %s' "$1" "$2"
  if [[ $# -ge 4 ]]; then
    printf ', %s %s, vakt / pgbouncer %s' "$3" "$4" "$(python3 -c "print('%.2f' % ($2 / $4))")"
  fi
  echo
fi
grep 'accesses recorded' "$tmp/proxy.log" | sed 's/^/  /' || true
