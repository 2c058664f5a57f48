#!/usr/bin/env bash
# Quickstart: sync the example tenant (examples/tenant.yaml) into a real
# OpenFGA started here from the version pinned in go.mod (its tool line),
# on a sqlite file. Shows the plan, the apply and a second, empty plan.
# Needs nothing but Go; the first run builds OpenFGA (a few minutes).
#
#   bash scripts/quickstart.sh            # port 18080, data in .quickstart/
#   QUICKSTART_PORT=28080 bash scripts/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."

port=${QUICKSTART_PORT:-18080}
work=.quickstart
rm -rf "$work" && mkdir -p "$work"
export GROUPSYNC_CONFIG=examples/groupsync.yaml
export GROUPSYNC_OPENFGA_API_URL="http://127.0.0.1:${port}"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "Building groupsync and OpenFGA (the first build of OpenFGA takes a few minutes)"
# -tags grpcnotrace: see scripts/check-binary.sh.
go build -tags grpcnotrace -o "$work/groupsync" ./cmd/groupsync
# OpenFGA is built to a file and started directly, so the PID below is
# OpenFGA's own and the exit trap stops exactly that process.
go build -o "$work/openfga" github.com/openfga/openfga/cmd/openfga
gs() { "$work/groupsync" "$@"; }

step "Starting OpenFGA on 127.0.0.1:${port} with sqlite ($work/openfga.db)"
db="file:$work/openfga.db"
"$work/openfga" migrate --datastore-engine sqlite --datastore-uri "$db" >"$work/migrate.log" 2>&1
"$work/openfga" run --datastore-engine sqlite --datastore-uri "$db" \
  --http-addr "127.0.0.1:${port}" --grpc-addr "127.0.0.1:$((port + 1))" \
  --playground-enabled=false --metrics-enabled=false --log-level warn >"$work/openfga.log" 2>&1 &
fga_pid=$!
trap 'kill $fga_pid 2>/dev/null || true; wait $fga_pid 2>/dev/null || true' EXIT
for i in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; then break; fi
  if ! kill -0 $fga_pid 2>/dev/null; then cat "$work/openfga.log"; echo "OpenFGA did not start" >&2; exit 1; fi
  sleep 0.2
done

step "groupsync model write   (create the store and write the model the mapping needs)"
gs model write

expect() { # expect CODE command...: run, show output, check the exit code
  local want=$1; shift
  set +e; "$@"; local got=$?; set -e
  if [ "$got" != "$want" ]; then echo "quickstart: '$*' exited $got, expected $want" >&2; exit 1; fi
  echo "(exit code $got)"
}

step "groupsync plan   (exit 2: changes pending)"
expect 2 gs plan
step "groupsync apply"
expect 0 gs apply
step "groupsync plan   (exit 0: OpenFGA matches the source)"
expect 0 gs plan
step "groupsync plan -o json   (the machine-readable report)"
expect 0 gs plan -o json --log-level warn

printf '\nQuickstart done: the example tenant is in OpenFGA (store groupsync-quickstart).\n'
