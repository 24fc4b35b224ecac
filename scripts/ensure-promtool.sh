#!/usr/bin/env bash
# Make sure `promtool` (Prometheus' rule checker) is on this machine; print where it is.
#
# Used by the alert-rule tests (tests/unit/observability/test_alert_rules.py) and by CI.
# Debian's `prometheus` package ships /usr/bin/promtool. Its postinst would also start the Prometheus
# daemon through invoke-rc.d (port 9090) where no policy forbids it: we install a temporary
# /usr/sbin/policy-rc.d that answers 101 ("action forbidden") so that nothing is started, and remove it
# afterwards (an existing policy file is left untouched). Non-interactive; must run as root to install.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
    echo "promtool: $(command -v promtool)"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-promtool: promtool is missing and installing it needs root (apt-get install prometheus)" >&2
    exit 1
fi

policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# temporary, from ecash-worker scripts/ensure-promtool.sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    created_policy=1
fi
cleanup() {
    if [ "$created_policy" -eq 1 ]; then
        rm -f "$policy"
    fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends prometheus >/dev/null

if ! command -v promtool >/dev/null 2>&1; then
    echo "ensure-promtool: the prometheus package installed but promtool is not on PATH" >&2
    exit 1
fi
echo "promtool: $(command -v promtool)"
