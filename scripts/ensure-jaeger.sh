#!/usr/bin/env bash
# Jaeger, the real tracing backend of tests/integration/test_tracing_otlp.py: pinned as a Go tool in
# tools/jaeger (go.mod, go.sum), its modules from the Go module proxy (default module cache), built once
# into ~/.cache/ecash-worker/jaeger/<version>-<hash of go.mod and go.sum>/jaeger and reused while the pin
# does not change (a cold build takes 5 to 6 minutes on 2 cores and 2.8 GB of Go caches; a cached binary, no
# time at all). Several checkouts on one machine share it. The test fails, never skips, when it is missing.
#   bash scripts/ensure-jaeger.sh          build if needed, print where it is
#   bash scripts/ensure-jaeger.sh --path   only print where it is (or would be); the test asks this
set -euo pipefail
cd "$(dirname "$0")/../tools/jaeger"

version="$(awk '$1 == "github.com/jaegertracing/jaeger" { print $2 }' go.mod)"
if [ -z "$version" ]; then
    echo "ensure-jaeger: tools/jaeger/go.mod does not require github.com/jaegertracing/jaeger" >&2
    exit 1
fi
key="$(cat go.mod go.sum | sha256sum | cut -c1-12)"
dir="${XDG_CACHE_HOME:-$HOME/.cache}/ecash-worker/jaeger/$version-$key"
bin="$dir/jaeger"

if [ "${1:-}" = "--path" ]; then
    echo "$bin"
    exit 0
fi
if [ -x "$bin" ]; then
    echo "jaeger: $bin ($version, cached)"
    exit 0
fi
if ! command -v go >/dev/null 2>&1; then
    echo "ensure-jaeger: go is missing (Go >= 1.26): it builds Jaeger from tools/jaeger" >&2
    exit 1
fi
mkdir -p "$dir"
tmp="$(mktemp "$dir/.jaeger.XXXXXX")"
log="$(mktemp)"
trap 'rm -f "$tmp" "$log"' EXIT
start=$SECONDS
echo "ensure-jaeger: building Jaeger $version (tools/jaeger; about 6 minutes the first time on 2 cores)"
# its ~300 "go: downloading" lines go to a log, shown only if the build fails
if ! GOFLAGS=-mod=readonly go build -trimpath \
    -ldflags "-s -w -X github.com/jaegertracing/jaeger/internal/version.latestVersion=$version" \
    -o "$tmp" github.com/jaegertracing/jaeger/cmd/jaeger >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "ensure-jaeger: building Jaeger $version failed (above: the last lines of go build)" >&2
    exit 1
fi
chmod 755 "$tmp"
mv -f "$tmp" "$bin" # atomic: another checkout building the same pin at the same time is harmless
echo "jaeger: $bin ($version, built in $((SECONDS - start)) s, $(du -m "$bin" | cut -f1) MB)"
