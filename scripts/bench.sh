#!/usr/bin/env bash
# Reproduces BENCHMARKS.md: PostgreSQL (Debian's package) and the OpenFGA
# pinned in go.mod on it, groupsync and the baselines against tenants served
# by graphtest. Needs root for apt-get the first time; takes ~15 minutes for
# all three sizes on 2 cores.
#
#   bash scripts/bench.sh                       # small, medium, large
#   SIZES=small,medium bash scripts/bench.sh    # quicker
#   GRAPH_THROTTLE=true bash scripts/bench.sh   # Graph-like throttling on
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-small,medium,large}
GRAPH_LATENCY=${GRAPH_LATENCY:-30ms}
GRAPH_THROTTLE=${GRAPH_THROTTLE:-false}
work=${BENCH_WORK:-/tmp/groupsync-bench}
pgport=55432
fgaport=18180
mkdir -p "$work"

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v gnuplot >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql gnuplot-nox >/dev/null
fi
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)

echo "== PostgreSQL on 127.0.0.1:$pgport ($work/pg)"
# Stop only what an earlier run of this script started (its PID file), never
# another OpenFGA on the machine.
stop_openfga() {
  local pid
  pid=$(cat "$work/openfga.pid" 2>/dev/null) || return 0
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q openfga "/proc/$pid/cmdline" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$work/openfga.pid"
}
stop_openfga
if [ -f "$work/pg/postmaster.pid" ]; then su postgres -s /bin/sh -c "$pgbin/pg_ctl -D $work/pg -m fast stop" >/dev/null 2>&1 || true; fi
rm -rf "$work/pg" && mkdir -p "$work/pg" && chown postgres "$work/pg"
su postgres -s /bin/sh -c "$pgbin/initdb -D $work/pg -U postgres --auth=trust" >"$work/initdb.log"
su postgres -s /bin/sh -c "$pgbin/pg_ctl -D $work/pg -l $work/pg/server.log -o '-p $pgport -k /tmp -c shared_buffers=512MB -c max_connections=200' start" >/dev/null
trap 'stop_openfga; su postgres -s /bin/sh -c "$pgbin/pg_ctl -D $work/pg -m fast stop" >/dev/null 2>&1 || true' EXIT
for i in $(seq 50); do "$pgbin/pg_isready" -h 127.0.0.1 -p $pgport >/dev/null 2>&1 && break; sleep 0.2; done
psql="$pgbin/psql -h 127.0.0.1 -p $pgport -U postgres -q"
$psql -c "CREATE DATABASE openfga" >/dev/null
dsn="postgres://postgres@127.0.0.1:$pgport/openfga?sslmode=disable"

echo "== OpenFGA (the version pinned in go.mod) on 127.0.0.1:$fgaport"
# Built to a file and started directly, so $! is OpenFGA itself and the
# trap stops exactly that process.
go build -o "$work/openfga" github.com/openfga/openfga/cmd/openfga
"$work/openfga" migrate --datastore-engine postgres --datastore-uri "$dsn" >"$work/migrate.log" 2>&1
"$work/openfga" run --datastore-engine postgres --datastore-uri "$dsn" \
  --http-addr 127.0.0.1:$fgaport --grpc-addr 127.0.0.1:$((fgaport + 1)) \
  --playground-enabled=false --metrics-enabled=false --log-level warn >"$work/openfga.log" 2>&1 &
echo $! >"$work/openfga.pid"
for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$fgaport) 2>/dev/null && break; sleep 0.2; done

echo "== build"
# GROUPSYNC_BIN measures another build of groupsync (an older commit, to
# compare) with this harness.
if [ -n "${GROUPSYNC_BIN:-}" ]; then cp "$GROUPSYNC_BIN" "$work/groupsync"; else go build -tags grpcnotrace -o "$work/groupsync" ./cmd/groupsync; fi
go build -o "$work/groupsync-bench" ./cmd/groupsync-bench

# OpenFGA's write path checks each tuple's existence; until PostgreSQL has
# statistics for the tuple table it picks a slow plan (first loads can fall
# to ~600 tuples/s). Warm it: load 50k tuples into a throwaway store, then
# ANALYZE. The harness also runs ANALYZE after every bulk load.
echo "== warm-up"
"$work/groupsync-bench" -openfga "http://127.0.0.1:$fgaport" -groupsync "$work/groupsync" -sizes small \
  -graph-latency 0s -naive-budget 1s -work "$work" -out /dev/null >"$work/warmup.log" 2>&1
$psql -d openfga -c "ANALYZE" >/dev/null

echo "== benchmark ($SIZES)"
"$work/groupsync-bench" -openfga "http://127.0.0.1:$fgaport" -groupsync "$work/groupsync" -sizes "$SIZES" \
  -graph-latency "$GRAPH_LATENCY" -graph-throttle="$GRAPH_THROTTLE" -work "$work" \
  -analyze "$psql -d openfga -c 'ANALYZE tuple'" -out "$work/results.md" -data "$work/plot.dat" ${BENCH_ARGS:-}

if [ "$(grep -cv '^#' "$work/plot.dat" 2>/dev/null || echo 0)" -lt 2 ]; then
  # One size makes no curve; a partial run must not replace the record.
  echo "== one size measured: results in $work/results.md (BENCHMARKS.md and docs/bench.png left as they are)"
  exit 0
fi

gnuplot <<GP
set terminal pngcairo size 900,560 font ",11"
set output "docs/bench.png"
set title "Time to sync vs tenant size (OpenFGA on PostgreSQL, 2 cores)"
set xlabel "managed tuples"
set ylabel "seconds"
set logscale xy
set key top left
set grid
plot "$work/plot.dat" using 1:2 with linespoints lw 2 title "groupsync first sync", \
     "" using 1:3 with linespoints lw 2 title "raw write ceiling", \
     "" using 1:4 with linespoints lw 2 title "naive sync (one request per tuple)", \
     "" using 1:5 with linespoints lw 2 title "groupsync no-change sync", \
     "" using 1:6 with linespoints lw 2 title "bare read of managed tuples"
GP

cp "$work/plot.dat" docs/bench-data.txt

# Full against incremental runs: time and peak RSS against tenant size.
gnuplot <<GP
set terminal pngcairo size 1100,480 font ",11"
set output "docs/bench-incremental.png"
set multiplot layout 1,2 title "Full and incremental runs vs tenant size (OpenFGA on PostgreSQL, 2 cores)"
set xlabel "managed tuples"
set logscale xy
set key top left
set grid
set ylabel "seconds"
plot "$work/plot.dat" using 1:2 with linespoints lw 2 title "first sync (full)", \
     "" using 1:5 with linespoints lw 2 title "no change, full read", \
     "" using 1:7 with linespoints lw 2 title "no change, incremental"
set ylabel "peak RSS (MB)"
plot "$work/plot.dat" using 1:8 with linespoints lw 2 title "first sync (full)", \
     "" using 1:9 with linespoints lw 2 title "no change, full read", \
     "" using 1:10 with linespoints lw 2 title "no change, incremental"
unset multiplot
GP

{
  echo "# Benchmarks"
  echo
  echo "Reproduce with \`bash scripts/bench.sh\` (this file and docs/bench.png are its output; the notes"
  echo "come from docs/bench-notes.md). Versions: $(go version | cut -d' ' -f3), OpenFGA $(go list -m -f '{{.Version}}' github.com/openfga/openfga),"
  echo "PostgreSQL $($pgbin/postgres --version | awk '{print $3}'), go-sdk $(go list -m -f '{{.Version}}' github.com/openfga/go-sdk), msgraph-sdk-go $(go list -m -f '{{.Version}}' github.com/microsoftgraph/msgraph-sdk-go). Run on $(date -u +%Y-%m-%d)."
  echo
  echo "![time vs size](docs/bench.png)"
  echo
  echo "![full and incremental runs vs size](docs/bench-incremental.png)"
  echo
  echo "## Results"
  echo
  cat "$work/results.md"
  echo
  cat docs/bench-notes.md
} > BENCHMARKS.md
echo "== wrote BENCHMARKS.md and docs/bench.png"
