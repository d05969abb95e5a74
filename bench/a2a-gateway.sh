#!/usr/bin/env bash
# The A2A gateway under load: 1 KB `SendMessage` requests (A2A 1.0,
# JSON-RPC) at a fixed rate, direct to a minimal fast A2A agent vs through
# `agentmesh a2a gateway` with full governance (credential or IATP
# attestation, a 101-rule policy, trust, audit of every decision and
# result). Alternating A/B rounds in one run; gateway CPU and RSS from /proc.
#
#   bench/a2a-gateway.sh [SECONDS_PER_RUN] [ROUNDS]
#
# Needs: cargo, curl, python3. The upstream and the load generator are ours
# (crates/loadgen: --serve-a2a, --a2a).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
rounds=${2:-2}
out=bench/out
mkdir -p "$out"
cargo build --release --locked -q -p agentmesh-cli -p agentmesh-loadgen
A=$PWD/target/release/agentmesh
L=$PWD/target/release/agentmesh-loadgen

home=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$home"; }
trap cleanup EXIT

up_port=38400; gw_port=38401
"$L" --serve-a2a "$up_port" >/dev/null 2>&1 & pids+=($!)
"$A" --home "$home/m" init >/dev/null
"$A" --home "$home/m" sponsor create alice@company.com >/dev/null
"$A" --home "$home/m" agent create bench --sponsor alice@company.com --capabilities 'message:fast' >/dev/null
python3 - "$home/policy.yaml" <<'PY'
import sys
y = 'name: hundred\nagents: ["bench"]\nrules:\n  - name: quota\n    condition: "action.type == \'agent_message\'"\n    limit: "1000000000/second"\n'
for i in range(98):
    a = "deny" if i % 3 == 0 else "allow"
    y += f"  - name: r{i}\n    condition: \"action.type == 'type_{i}' && agent.trust_score >= 0.{i%9+1}\"\n    action: {a}\n    priority: {i%7}\n"
y += "  - name: no-secrets\n    condition: \"action.type == 'agent_message' && request.arguments.text.contains('BEGIN PRIVATE KEY')\"\n    action: deny\n    priority: 10\n"
y += "  - name: messages\n    condition: \"action.type == 'agent_message'\"\n    action: allow\n"
open(sys.argv[1], "w").write(y)
PY
cat > "$home/a2a.yaml" <<EOF2
listen: 127.0.0.1:$gw_port
policy: $home/policy.yaml
agents:
  - name: fast
    url: http://127.0.0.1:$up_port
EOF2
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$up_port/.well-known/agent-card.json" && break; sleep 0.1; done
"$A" --home "$home/m" a2a gateway --config "$home/a2a.yaml" >/dev/null 2>"$out/a2a-gateway.log" & gw=$!; pids+=($gw)
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$gw_port/healthz" && break; sleep 0.1; done
token=$("$A" --home "$home/m" --json credential issue bench --ttl 2h | python3 -c 'import json,sys; print(json.load(sys.stdin)["credential"])')
attestation=$("$A" --home "$home/m" --json iatp handshake "http://127.0.0.1:$gw_port" --agent bench | python3 -c 'import json,sys; print(json.load(sys.stdin)["attestation"])')
echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ); ${secs}s per run, ${rounds} rounds, 16 connections, A2A 1.0 JSON-RPC SendMessage, 1 KB"
printf '| round | path | caller | mode | rps | p50 ms | p90 ms | p99 ms | p99.9 ms | errors | gateway CPU | gateway RSS (HWM) |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n'
run() { # path bearer-kind mode-args...
  local path=$1 kind=$2; shift 2
  local url bearer=()
  if [ "$path" = direct ]; then url="http://127.0.0.1:$up_port/"; kind="-"
  else
    url="http://127.0.0.1:$gw_port/"
    if [ "$kind" = attestation ]; then bearer=(--bearer "$attestation"); else bearer=(--bearer "$token"); fi
  fi
  local t0 t1; t0=$(awk '{print $14+$15}' /proc/$gw/stat)
  local r; r=$("$L" --url "$url" --a2a --duration "$secs" --warmup 2 "$@" "${bearer[@]}")
  t1=$(awk '{print $14+$15}' /proc/$gw/stat)
  local cpu="-" rss="-"
  if [ "$path" = gateway ]; then
    cpu=$(python3 -c "print(f'{($t1-$t0)/100/($secs+2):.2f} cores')")
    rss=$(awk '/VmRSS/{r=$2} /VmHWM/{h=$2} END{printf "%.1f MiB (%.1f)", r/1024, h/1024}' /proc/$gw/status)
  fi
  echo "$r" | python3 -c "
import json,sys
r=json.load(sys.stdin)
print(f\"| $round | $path | $kind | {r['mode']} | {r['rps']:.0f} | {r['p50_ms']:.3f} | {r['p90_ms']:.3f} | {r['p99_ms']:.3f} | {r['p999_ms']:.3f} | {r['bad']} | $cpu | $rss |\")"
}
for round in $(seq "$rounds"); do
  run direct - --rate 1000
  run gateway credential --rate 1000
  run gateway attestation --rate 1000
done
run direct - 
run gateway credential
