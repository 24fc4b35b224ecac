#!/usr/bin/env bash
# A real single-node Apache Kafka (KRaft) on 127.0.0.1:19092, with one command.
#   deploy/kafka/local-kafka.sh start|stop|status|restart [--port N] [--data-dir DIR] [--fresh] [--hard]
# Thin wrapper: everything happens in devtools/ecash_dev/kafka (see docs/kafka.md).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
  if [[ -x "$repo/.venv/bin/python" ]]; then python="$repo/.venv/bin/python"; else python=python3; fi
fi
export PYTHONPATH="$repo:$repo/devtools${PYTHONPATH:+:$PYTHONPATH}"  # relative paths stay relative to the caller
exec "$python" -m ecash_dev.kafka "$@"
