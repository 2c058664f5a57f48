#!/usr/bin/env bash
# Checks that the groupsync binary keeps the linker's dead-method
# elimination. When anything reachable calls reflect.Value.Method or
# MethodByName with a name known only at run time (text/template and
# html/template do, and so does golang.org/x/net/trace, which grpc imports
# unless built with -tags grpcnotrace), the linker must keep every
# exported method of every type stored in an interface. With msgraph-sdk-go
# linked, that is a 182 MB binary instead of 63 MB, and ~20 MB more of it
# resident in every run (docs/bench-notes.md, "Memory"). Builds use
# -tags grpcnotrace (deploy/Dockerfile, scripts/); this script fails when a
# change brings such a call back, and names the function that makes it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
go build -tags grpcnotrace -ldflags=-dumpdep -o "$out/groupsync" ./cmd/groupsync 2>"$out/deps"
size=$(stat -c %s "$out/groupsync")
echo "groupsync binary: $((size / 1048576)) MiB"
if grep -q '<ReflectMethod>' "$out/deps"; then
  echo "a reachable function calls a method by a name known only at run time, so the linker keeps every exported method:" >&2
  grep '<ReflectMethod>' "$out/deps" | sed 's/ ->.*//' | sort -u | head >&2
  echo "find what reaches it: go build -tags grpcnotrace -ldflags=-dumpdep ./cmd/groupsync 2>deps.txt, then follow the edges back" >&2
  exit 1
fi
