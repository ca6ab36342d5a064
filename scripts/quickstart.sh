#!/usr/bin/env bash
# The main job on an embedded default: build, write a small synthetic Llama model with the built-in
# tokenizer, generate text from it, benchmark it against this machine's memory bandwidth, and serve it
# over the OpenAI-compatible HTTP API to concurrent streaming clients; then the fleet demo: four nodes
# declared as Ascend 910B x2, H20 and H800 (all on this CPU) behind the gateway, a burst of requests,
# where they went, the domestic share and the verdict (scripts/demo-fleet.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
mkdir -p build/models
model=build/models/demo-small-q8_0.gguf
[ -f "$model" ] || build/bin/mixserve model synth --arch llama --shape small --type q8_0 -o "$model"
build/bin/mixserve devices
build/bin/mixserve model info -m "$model"
build/bin/mixserve run -m "$model" -p "Once upon a time" -n 48 --temp 0.7 --seed 7
build/bin/mixserve bench -m "$model" -p 128 -n 64 -r 3 --probe-bytes 268435456
build/bin/mixserve bench -m "$model" --serve --concurrency 1,4,16 --serve-prompt 32 --serve-gen 32
scripts/demo-fleet.sh
