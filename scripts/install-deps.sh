#!/usr/bin/env bash
# Installs the Debian 12 packages mixserve needs to build and test. Idempotent; run as root or with sudo.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config
  libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev
  libpcre2-dev                # BPE pre-tokenizer regexes (Unicode properties, JIT)
  nlohmann-json3-dev          # JSON (chat template messages)
  libsqlite3-dev libssl-dev sqlite3   # compliance ledger (SQLite storage, SHA-256 from libcrypto)
  libyaml-cpp-dev             # chip catalogue, fleet, policy and usage YAML files
  clang libclang-rt-14-dev   # libFuzzer targets
  ocl-icd-opencl-dev opencl-headers pocl-opencl-icd   # OpenCL backend (PoCL runs it on the CPU)
  libboost-dev                # Boost.Asio/Beast: the HTTP server and client
  libglpk-dev                 # GLPK: the placement ILP (mixserve place)
)
# Node.js and npm run the official `openai` npm client in the serving end-to-end test; a machine that
# already has them (from Debian or elsewhere) keeps its own.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
