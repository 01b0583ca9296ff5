#!/usr/bin/env bash
# Install dependencies, build, and run the whole test suite (unit + end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
scripts/build.sh
cd build
ctest --output-on-failure --timeout 1200
