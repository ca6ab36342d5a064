#!/usr/bin/env bash
# Installs dependencies, builds, runs every test suite (unit, conformance, e2e) and a short fuzz run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh -DMIXSERVE_WERROR=ON
ctest --test-dir build --output-on-failure -j"$(nproc)" -LE 'slow|gpu'
FUZZ_SECONDS="${FUZZ_SECONDS:-30}" scripts/fuzz.sh
