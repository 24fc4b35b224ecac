#!/usr/bin/env bash
# The code generators tests/contracts/test_codegen.py runs, pinned in tools/codegen/package-lock.json
# (quicktype-core, @asyncapi/modelina, @asyncapi/parser, typescript, @types/node), installed from the npm registry with
# `npm ci` into tools/codegen/node_modules, again only when the lock file changes. Also checks the
# compilers the test needs (Go, javac): the test fails, never skips, when one is missing.
set -euo pipefail
cd "$(dirname "$0")/../tools/codegen"
for tool in node npm go javac; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "ensure-codegen-tools: $tool is missing (Node.js >= 20.19 with npm, Go >= 1.22, a JDK >= 17)" >&2
        exit 1
    fi
done
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ "$(cat node_modules/.ecash-lock-sha256 2>/dev/null)" != "$want" ]; then
    npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
    echo "$want" > node_modules/.ecash-lock-sha256
fi
echo "codegen tools: $(node -p 'require("./node_modules/@asyncapi/modelina/package.json").version') (modelina)," \
    "$(node -p 'require("./node_modules/quicktype-core/package.json").version') (quicktype-core)," \
    "$(node_modules/.bin/tsc --version), $(go version | cut -d' ' -f3), node $(node --version)"
