#!/usr/bin/env bash
# The system tools the tests call, from Debian's packages when missing (CI runs as root):
# promtool (alert rules), prometheus (the real server the dashboard and alert expressions are run against;
# same Debian package, unpacked without root when not installed), Jaeger (the real tracing backend the worker
# exports its spans to: built from tools/jaeger once per pin, cached), docker-compose (compose file validation,
# no engine needed), kubectl (kustomize; part of this machine's image). Each test that needs one fails, never
# skips, when it is absent.
set -euo pipefail
cd "$(dirname "$0")"
bash ./ensure-promtool.sh
bash ./ensure-codegen-tools.sh
bash ./ensure-example-tools.sh
bash ./ensure-prometheus.sh
bash ./ensure-jaeger.sh
if ! command -v docker-compose >/dev/null 2>&1 && ! docker compose version >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "ensure-test-tools: docker-compose is missing and installing it needs root" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
fi
echo "docker-compose: $(command -v docker-compose || echo 'docker compose plugin')"
command -v kubectl >/dev/null 2>&1 && echo "kubectl: $(command -v kubectl)" || echo "kubectl: missing (deploy tests will say how to install kustomize)"
