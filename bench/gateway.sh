#!/usr/bin/env bash
# The MCP gateway under load: 1 KB `tools/call` requests, direct to a fast
# in-process upstream vs through `agentmesh mcp gateway` with full
# governance (bearer credential, 101-rule policy with a rate limit and an
# argument rule, trust, durable audit of every decision and result).
# Alternating A/B rounds in one run; gateway CPU and RSS from /proc.
#
#   bench/gateway.sh [SECONDS_PER_RUN] [ROUNDS]
#
# Needs: cargo, curl. The upstream is the team's fast_mcp_upstream
# (../shared/bench/fast_mcp_upstream, built into target/); the load
# generator is ours (crates/loadgen).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
rounds=${2:-2}
shared=${SHARED:-../shared}
out=bench/out
mkdir -p "$out"
cargo build --release --locked -q -p agentmesh-cli -p agentmesh-loadgen
rm -rf target/fast_mcp_upstream && cp -r "$shared/bench/fast_mcp_upstream" target/fast_mcp_upstream && chmod -R u+w target/fast_mcp_upstream
(cd target/fast_mcp_upstream && CARGO_TARGET_DIR=../fast-upstream-target cargo build --release -q)
A=$PWD/target/release/agentmesh
L=$PWD/target/release/agentmesh-loadgen
UP=$PWD/target/fast-upstream-target/release/fast_mcp_upstream

home=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$home"; }
trap cleanup EXIT

up_port=38300; gw_port=38301
"$UP" "$up_port" 200 >/dev/null 2>&1 & pids+=($!)
"$A" --home "$home/m" init >/dev/null
"$A" --home "$home/m" sponsor create alice@company.com >/dev/null
"$A" --home "$home/m" agent create bench --sponsor alice@company.com --capabilities 'call:fast:*' >/dev/null
python3 - "$home/policy.yaml" <<'PY'
import sys
y = 'name: hundred\nagents: ["bench"]\nrules:\n  - name: quota\n    condition: "action.tool == \'echo\'"\n    limit: "1000000000/second"\n'
for i in range(98):
    a = "deny" if i % 3 == 0 else "allow"
    y += f"  - name: r{i}\n    condition: \"action.type == 'type_{i}' && agent.trust_score >= 0.{i%9+1}\"\n    action: {a}\n    priority: {i%7}\n"
y += "  - name: no-etc\n    condition: \"action.tool == 'echo' && request.arguments.text.startsWith('/etc/')\"\n    action: deny\n    priority: 10\n"
y += "  - name: echo\n    condition: \"action.tool == 'echo'\"\n    action: allow\n"
open(sys.argv[1], "w").write(y)
PY
cat > "$home/gw.yaml" <<EOF2
listen: 127.0.0.1:$gw_port
policy: $home/policy.yaml
upstreams:
  - name: fast
    url: http://127.0.0.1:$up_port/mcp
EOF2
"$A" --home "$home/m" mcp gateway --config "$home/gw.yaml" >/dev/null 2>"$out/gateway.log" & gw=$!; pids+=($gw)
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$gw_port/healthz" && break; sleep 0.1; done
token=$("$A" --home "$home/m" --json credential issue bench --ttl 2h | python3 -c 'import json,sys; print(json.load(sys.stdin)["credential"])')
echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ); ${secs}s per run, ${rounds} rounds, 16 connections, legacy sessions (2025-11-25)"
printf '| round | path | mode | rps | p50 ms | p90 ms | p99 ms | p99.9 ms | errors | gateway CPU | gateway RSS (HWM) |\n|---|---|---|---|---|---|---|---|---|---|---|\n'
run() { # path mode-args...
  local path=$1; shift
  local url bearer=()
  if [ "$path" = direct ]; then url="http://127.0.0.1:$up_port/mcp"; else url="http://127.0.0.1:$gw_port/mcp"; bearer=(--bearer "$token"); fi
  local t0 t1; t0=$(awk '{print $14+$15}' /proc/$gw/stat)
  local r; r=$("$L" --url "$url" --legacy --duration "$secs" --warmup 2 "$@" "${bearer[@]}")
  t1=$(awk '{print $14+$15}' /proc/$gw/stat)
  local cpu="-" rss="-"
  if [ "$path" = gateway ]; then
    cpu=$(python3 -c "print(f'{($t1-$t0)/100/($secs+2):.2f} cores')")
    rss=$(awk '/VmRSS/{r=$2} /VmHWM/{h=$2} END{printf "%.1f MiB (%.1f)", r/1024, h/1024}' /proc/$gw/status)
  fi
  echo "$r" | python3 -c "
import json,sys
r=json.load(sys.stdin)
print(f\"| $round | $path | {r['mode']} | {r['rps']:.0f} | {r['p50_ms']:.3f} | {r['p90_ms']:.3f} | {r['p99_ms']:.3f} | {r['p999_ms']:.3f} | {r['bad']} | $cpu | $rss |\")"
}
for round in $(seq "$rounds"); do
  for rate in 1000 2000; do
    run direct --rate "$rate"
    run gateway --rate "$rate"
  done
  run direct
  run gateway
done
