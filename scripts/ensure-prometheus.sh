#!/usr/bin/env bash
# Make sure the Prometheus server is on this machine; print where it is.
#
# Used by tests/integration/test_real_prometheus.py (a real Prometheus scrapes a short real run and answers
# every dashboard, alert and KEDA expression) and by `python -m bench.dashboard_snapshot` (the picture in
# docs/dashboard.png). Debian's `prometheus` package ships /usr/bin/prometheus next to promtool:
#   - already on PATH (scripts/ensure-promtool.sh installed the package as root): nothing to do;
#   - else, unpacked earlier into ~/.cache/ecash-worker/prometheus: nothing to do;
#   - else the package is fetched with `apt-get download` (no root needed) and unpacked there with
#     `dpkg-deb -x`; no daemon is installed or started. bench/dashboard_snapshot/prometheus.py looks in
#     both places.
set -euo pipefail

cache="${XDG_CACHE_HOME:-$HOME/.cache}/ecash-worker/prometheus"
if command -v prometheus >/dev/null 2>&1; then
    echo "prometheus: $(command -v prometheus)"
    exit 0
fi
if [ -x "$cache/usr/bin/prometheus" ]; then
    echo "prometheus: $cache/usr/bin/prometheus"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if ! (cd "$work" && apt-get download -qq prometheus >/dev/null); then
    echo "ensure-prometheus: apt-get download prometheus failed (as root, apt-get update first)" >&2
    exit 1
fi
mkdir -p "$cache"
dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
mkdir -p "$cache/usr/bin"
cp "$work/root/usr/bin/prometheus" "$cache/usr/bin/prometheus"
"$cache/usr/bin/prometheus" --version >/dev/null
echo "prometheus: $cache/usr/bin/prometheus"
