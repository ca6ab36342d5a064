#!/usr/bin/env bash
# Installs dependencies, builds, runs a short fuzz pass (libFuzzer, clang) and every test suite
# (unit, conformance, e2e). ctest's summary is the last thing printed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh -DMIXSERVE_WERROR=ON
FUZZ_SECONDS="${FUZZ_SECONDS:-30}" scripts/fuzz.sh
ctest --test-dir build --output-on-failure -j"$(nproc)" -LE 'slow|gpu'
