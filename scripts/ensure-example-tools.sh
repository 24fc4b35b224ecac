#!/usr/bin/env bash
# What tests/integration/test_examples.py needs to build the producer examples (examples/README.md):
# the Go example's modules (pinned in examples/go/go.sum, from the Go module proxy into the default module
# cache, `go mod download`) and the TypeScript example's packages (kafkajs, typescript, @types/node, pinned
# in examples/typescript/package-lock.json, `npm ci` into examples/typescript/node_modules, again only when
# the lock file changes). The test fails, never skips, when node, npm or go is missing.
set -euo pipefail
cd "$(dirname "$0")/../examples"
for tool in node npm go; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "ensure-example-tools: $tool is missing (Node.js >= 20 with npm, Go >= 1.26)" >&2
        exit 1
    fi
done
(cd go && GOFLAGS=-mod=readonly go mod download)
cd typescript
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ "$(cat node_modules/.ecash-lock-sha256 2>/dev/null)" != "$want" ]; then
    npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
    echo "$want" > node_modules/.ecash-lock-sha256
fi
echo "example tools: kafkajs $(node -p 'require("./node_modules/kafkajs/package.json").version')," \
    "$(node_modules/.bin/tsc --version), franz-go $(cd ../go && go list -m -f '{{.Version}}' github.com/twmb/franz-go)," \
    "$(go version | cut -d' ' -f3), node $(node --version)"
