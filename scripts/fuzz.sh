#!/usr/bin/env bash
# Runs every Go fuzz target of the module, one after the other, each for
# FUZZTIME. The targets are found, not listed: packages whose test files
# declare a `func Fuzz...`, then the package's test binary's -test.list
# '^Fuzz' (what `go test -list '^Fuzz'` runs).
#
#   bash scripts/fuzz.sh                     # the short pass (10s a target)
#   FUZZTIME=5s bash scripts/fuzz.sh         # CI's pass
#   FUZZTIME=10m bash scripts/fuzz.sh        # the long pass (hours in all)
#   FUZZ_PACKAGES="./daemon" bash scripts/fuzz.sh   # some packages only
#
# FUZZTIME takes what `go test -fuzztime` takes (10s, 10m, or 5000x runs).
# FUZZ_MINIMIZE bounds the minimizing of each new input (go test
# -fuzzminimizetime; 5s by default: Go's 60s would eat a short pass).
#
# A target that fails leaves its input in <package>/testdata/fuzz/<Target>/
# (the generated corpus stays in $(go env GOCACHE)/fuzz, as with go test):
# commit it with the fix, it then runs with every `go test` as a seed.
# Exits non-zero when any target failed, after running all of them.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS=${GOFLAGS:--buildvcs=false}

FUZZTIME=${FUZZTIME:-10s}
FUZZ_MINIMIZE=${FUZZ_MINIMIZE:-5s}

if [ -n "${FUZZ_PACKAGES:-}" ]; then
  read -r -a pkgs <<<"$FUZZ_PACKAGES"
else
  mapfile -t pkgs < <(git ls-files '*_test.go' | xargs grep -l '^func Fuzz[A-Z0-9_a-z]*(f \*testing\.F)' |
    xargs -n1 dirname | sort -u | sed 's|^|./|')
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log=$work/log
cache=$(go env GOCACHE)/fuzz
failed=()
total=0
start=$(date +%s)
for pkg in "${pkgs[@]}"; do
  # One instrumented test binary a package (what `go test -fuzz` builds
  # for each run), its targets from its -test.list: `go test -list
  # '^Fuzz'` without a second build.
  bin=$work/$(echo "$pkg" | tr '/.' '__').test
  t0=$(date +%s)
  go test -c -fuzz=. -o "$bin" "$pkg"
  importpath=$(go list "$pkg")
  mapfile -t targets < <(cd "$pkg" && "$bin" -test.list '^Fuzz' | grep '^Fuzz' || true)
  echo "== $pkg: ${targets[*]} (built in $(($(date +%s) - t0))s)"
  for target in "${targets[@]}"; do
    total=$((total + 1))
    t0=$(date +%s)
    status=0
    # As go test runs it: in the package's directory (testdata/fuzz holds
    # the seeds), the generated corpus in Go's cache.
    (cd "$pkg" && "$bin" -test.run '^$' -test.fuzz "^${target}\$" -test.fuzztime "$FUZZTIME" \
      -test.fuzzminimizetime "$FUZZ_MINIMIZE" -test.fuzzcachedir "$cache/$importpath") >"$log" 2>&1 || status=$?
    # The progress lines only go; a failure and its input stay in full.
    grep -v '^fuzz: elapsed: ' "$log" | sed 's/^/   /' || true
    if [ "$status" -ne 0 ]; then
      failed+=("$pkg $target")
    fi
    echo "   $target: $(($(date +%s) - t0))s"
  done
done

echo "== $total fuzz targets in $(($(date +%s) - start))s, ${#failed[@]} failed"
if [ ${#failed[@]} -gt 0 ]; then
  printf '   FAILED: %s\n' "${failed[@]}"
  exit 1
fi
