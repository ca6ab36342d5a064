#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in build-fuzz/ and runs each for FUZZ_SECONDS (default 30).
# Usage: scripts/fuzz.sh [fuzz_name ...]   (default: every tests/fuzz/fuzz_*.cpp)
# Exits non-zero when a build fails or any fuzzer finds a crash, leak, timeout or out-of-memory input;
# the reproducer is left in build-fuzz/artifacts/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${root}/build-fuzz"
seconds="${FUZZ_SECONDS:-30}"
jobs="${FUZZ_BUILD_JOBS:-2}"

if [[ $# -gt 0 ]]; then
  fuzzers=("$@")
else
  fuzzers=()
  for src in "${root}"/tests/fuzz/fuzz_*.cpp; do
    [[ -e "${src}" ]] && fuzzers+=("$(basename "${src}" .cpp)")
  done
fi
if [[ ${#fuzzers[@]} -eq 0 ]]; then
  echo "fuzz.sh: no fuzz targets found in tests/fuzz" >&2
  exit 1
fi

# -O1 with line tables only: enough for sanitizer reports, and much quicker to compile than -O2 -g.
CC=clang CXX=clang++ cmake -S "${root}" -B "${build}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only -DNDEBUG" \
  -DMIXSERVE_FUZZ=ON -DMIXSERVE_TESTS=ON -DMIXSERVE_BENCH=OFF >/dev/null
cmake --build "${build}" -j "${jobs}" --target "${fuzzers[@]}"

mkdir -p "${build}/artifacts"
status=0
for name in "${fuzzers[@]}"; do
  seeds="${root}/tests/fuzz/corpus/${name}"
  work="${build}/tests/fuzz/corpus/${name}"
  mkdir -p "${work}" "${seeds}"
  echo "== ${name}: ${seconds}s"
  # New inputs go to the build-tree corpus (first directory); the checked-in seeds are only read.
  if ! "${build}/tests/fuzz/${name}" -max_total_time="${seconds}" -rss_limit_mb=2048 -timeout=10 \
      -print_final_stats=1 -artifact_prefix="${build}/artifacts/${name}-" "${work}" "${seeds}"; then
    echo "fuzz.sh: ${name} FAILED (reproducer in ${build}/artifacts/)" >&2
    status=1
  fi
done
exit "${status}"
