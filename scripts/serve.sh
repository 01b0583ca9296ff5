#!/usr/bin/env bash
# Quick start: install dependencies, build, and serve on 127.0.0.1:5000 with data
# in ./registry-data. Extra arguments go to `registryctl serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
exec build/registryctl --data ./registry-data serve --listen 127.0.0.1:5000 "$@"
