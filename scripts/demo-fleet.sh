#!/usr/bin/env bash
# The fleet demo: four `mixserve serve` nodes declared as different chips (two Huawei Ascend 910B, one
# NVIDIA H20, one NVIDIA H800) behind a `mixserve gateway` that keeps at least half of the served
# tokens on domestic chips. A burst of chat requests goes through the gateway; the demo prints where
# each request went, the domestic share and the compliance verdict, then verifies the ledger.
# All four nodes run on THIS machine's CPU: the chip ids are declarations (as an operator declares an
# upstream's chip), not hardware found here. Needs build/bin/mixserve (scripts/build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/bin/mixserve
work=build/demo-fleet
rm -rf "$work"
mkdir -p "$work"
model=build/models/demo-small-q8_0.gguf
mkdir -p build/models
[ -f "$model" ] || "$bin" model synth --arch llama --shape small --type q8_0 -o "$model" >/dev/null 2>&1

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# Starts a process logging to $1 and waits for its "on http://HOST:PORT" line; sets $port and $pid.
start() {
  local log=$1; shift
  "$@" >"$log" 2>&1 &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 1 300); do
    if grep -qo 'on http://[^ ]*:[0-9]*' "$log"; then
      port=$(grep -o 'on http://[^ ]*:[0-9]*' "$log" | head -1 | sed 's/.*://')
      return
    fi
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.1
  done
  echo "timed out waiting for $log" >&2
  exit 1
}

declare -A chips=([a1]=huawei-ascend-910b [a2]=huawei-ascend-910b [h20]=nvidia-h20 [h800]=nvidia-h800)
declare -A ports
for name in a1 a2 h20 h800; do
  start "$work/$name.log" "$bin" serve -m "$model" --alias demo --port 0 -t 1 --chip "${chips[$name]}"
  ports[$name]=$port
  echo "node $name: ${chips[$name]} (simulated on this CPU) on port ${ports[$name]}"
done

cat >"$work/fleet.yaml" <<YAML
nodes:
  - {name: a1, pool: inference, devices: [{chip: huawei-ascend-910b, count: 1}]}
  - {name: a2, pool: inference, devices: [{chip: huawei-ascend-910b, count: 1}]}
  - {name: h20, pool: inference, devices: [{chip: nvidia-h20, count: 1}]}
  - {name: h800, pool: inference, devices: [{chip: nvidia-h800, count: 1}]}
YAML
cat >"$work/policy.yaml" <<YAML
rules:
  - {name: tokens-50, basis: served_tokens, min_domestic_share: 0.5, mode: enforce}
  - {name: devices-50, basis: device_count, min_domestic_share: 0.5, mode: enforce}
YAML
{
  echo "listen: 127.0.0.1:0"
  echo "fleet: fleet.yaml"
  echo "policy: policy.yaml"
  echo "ledger: ledger.db"
  echo "usage_interval_s: 1"
  echo "upstreams:"
  for name in a1 a2 h20 h800; do
    echo "  - {name: $name, url: \"http://127.0.0.1:${ports[$name]}\", chip: ${chips[$name]}}"
  done
} >"$work/cluster.yaml"
start "$work/gateway.log" "$bin" gateway --config "$work/cluster.yaml"
gw=$port
gw_pid=$pid
echo "gateway on port $gw (config $work/cluster.yaml)"
echo
"$bin" burst --url "http://127.0.0.1:$gw" --model demo -n 48 -c 8 --max-tokens 24 --stream
echo
kill "$gw_pid"  # the gateway drains and writes its last usage records
wait "$gw_pid" 2>/dev/null || true
"$bin" ledger verify --ledger "$work/ledger.db"
"$bin" ledger show --ledger "$work/ledger.db"
echo
echo "policy check of the fleet with the usage the gateway recorded:"
"$bin" policy check --fleet "$work/fleet.yaml" --policy "$work/policy.yaml" --usage-ledger "$work/ledger.db"
