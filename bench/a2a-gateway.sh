#!/usr/bin/env bash
# The A2A gateway under load: 1 KB `SendMessage` requests (A2A 1.0,
# JSON-RPC) at a fixed rate, direct to a minimal fast A2A agent vs through
# `agentmesh a2a gateway` with full governance (credential or IATP
# attestation, a 101-rule policy, trust, audit of every decision and
# result). Alternating A/B rounds in one run; gateway CPU and RSS from /proc.
#
#   bench/a2a-gateway.sh [SECONDS_PER_RUN] [ROUNDS]
#
# BASE_AGENTMESH=/path/to/agentmesh adds a third arm: a second gateway run
# by that binary (e.g. the commit before a change) with its own home made by
# the same commands, the same policy and config; each round then runs direct,
# gateway and base (gateway/base order swapped every other round), the
# closed-loop runs move into every round, and the run ends with medians and
# current-minus-base (bench/compare.py). WRK=1 adds a closed-loop wrk run
# per path and round (bench/wrk-jsonrpc.lua, credential). With both unset
# the script does what it always did.
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
B=${BASE_AGENTMESH:-}
wrk=${WRK:-0}

home=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$home"; }
trap cleanup EXIT

up_port=38400; gw_port=38401; base_port=38402
"$L" --serve-a2a "$up_port" >/dev/null 2>&1 & pids+=($!)
make_home() { # binary home
  "$1" --home "$2" init >/dev/null
  "$1" --home "$2" sponsor create alice@company.com >/dev/null
  "$1" --home "$2" agent create bench --sponsor alice@company.com --capabilities 'message:fast' >/dev/null
}
make_home "$A" "$home/m"
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
gw_config() { # port file
  cat > "$2" <<EOF2
listen: 127.0.0.1:$1
policy: $home/policy.yaml
agents:
  - name: fast
    url: http://127.0.0.1:$up_port
EOF2
}
gw_config "$gw_port" "$home/a2a.yaml"
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$up_port/.well-known/agent-card.json" && break; sleep 0.1; done
"$A" --home "$home/m" a2a gateway --config "$home/a2a.yaml" >/dev/null 2>"$out/a2a-gateway.log" & gw=$!; pids+=($gw)
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$gw_port/healthz" && break; sleep 0.1; done
token=$("$A" --home "$home/m" --json credential issue bench --ttl 2h | python3 -c 'import json,sys; print(json.load(sys.stdin)["credential"])')
attest() { # binary home port: a fresh IATP attestation (it lives 5 minutes, so every round gets one)
  "$1" --home "$2" --json iatp handshake "http://127.0.0.1:$3" --agent bench | python3 -c 'import json,sys; print(json.load(sys.stdin)["attestation"])'
}
attestation=$(attest "$A" "$home/m" "$gw_port")
if [ -n "$B" ]; then
  make_home "$B" "$home/b"
  gw_config "$base_port" "$home/base.yaml"
  "$B" --home "$home/b" a2a gateway --config "$home/base.yaml" >/dev/null 2>"$out/base-a2a-gateway.log" & base_gw=$!; pids+=($base_gw)
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$base_port/healthz" && break; sleep 0.1; done
  base_token=$("$B" --home "$home/b" --json credential issue bench --ttl 2h | python3 -c 'import json,sys; print(json.load(sys.stdin)["credential"])')
  base_attestation=$(attest "$B" "$home/b" "$base_port")
  rows=$out/a2a-gateway-rows.tsv; : > "$rows"
fi
echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ); ${secs}s per run, ${rounds} rounds, 16 connections, A2A 1.0 JSON-RPC SendMessage, 1 KB"
if [ -n "$B" ]; then
  echo "arms: direct; gateway = $A (commit $(git rev-parse --short HEAD)); base = $B"
  echo "load: $(cat /proc/loadavg)"
fi
printf '| round | path | caller | mode | rps | p50 ms | p90 ms | p99 ms | p99.9 ms | errors | gateway CPU | gateway RSS (HWM) |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n'
target_of() { # path bearer-kind -> url, bearer, pid of the measured gateway
  case $1 in
    direct) url="http://127.0.0.1:$up_port/"; bearer=(); pid=$gw ;;
    gateway) url="http://127.0.0.1:$gw_port/"; pid=$gw
      if [ "$2" = attestation ]; then bearer=(--bearer "$attestation"); else bearer=(--bearer "$token"); fi ;;
    base) url="http://127.0.0.1:$base_port/"; pid=$base_gw
      if [ "$2" = attestation ]; then bearer=(--bearer "$base_attestation"); else bearer=(--bearer "$base_token"); fi ;;
  esac
}
report() { # path bearer-kind tool t0 t1 json: one table row (and a row for compare.py)
  local path=$1 kind=$2 tool=$3 t0=$4 t1=$5 r=$6 cpu="-" rss="-"
  if [ "$path" != direct ]; then
    cpu=$(python3 -c "print(f'{($t1-$t0)/100/($secs+2):.2f} cores')")
    rss=$(awk '/VmRSS/{r=$2} /VmHWM/{h=$2} END{printf "%.1f MiB (%.1f)", r/1024, h/1024}' /proc/$pid/status)
  fi
  echo "$r" | python3 -c "
import json,sys
r=json.load(sys.stdin)
mode=r.get('mode','closed loop')
print(f\"| $round | $path | $kind | {mode}{' (wrk)' if '$tool' == 'wrk' else ''} | {r['rps']:.0f} | {r['p50_ms']:.3f} | {r['p90_ms']:.3f} | {r['p99_ms']:.3f} | {r['p999_ms']:.3f} | {r['bad']} | $cpu | $rss |\")
if '${rows:-}':
    print('\t'.join(map(str, ['$tool', $round, '$path', '$kind', mode, r['rps'], r['p50_ms'], r['p90_ms'], r['p99_ms'], r['p999_ms'], r['bad']])), file=open('${rows:-}', 'a'))"
}
run() { # path bearer-kind mode-args...
  local path=$1 kind=$2; shift 2
  [ "$path" = direct ] && kind="-"
  local url bearer pid; target_of "$path" "$kind"
  local t0 t1; t0=$(awk '{print $14+$15}' /proc/$pid/stat)
  local r; r=$("$L" --url "$url" --a2a --duration "$secs" --warmup 2 "$@" "${bearer[@]}")
  t1=$(awk '{print $14+$15}' /proc/$pid/stat)
  report "$path" "$kind" loadgen "$t0" "$t1" "$r"
}
run_wrk() { # path bearer-kind: closed loop, wrk -t1 -c16
  local path=$1 kind=$2
  [ "$path" = direct ] && kind="-"
  local url bearer pid; target_of "$path" "$kind"
  local t0 t1; t0=$(awk '{print $14+$15}' /proc/$pid/stat)
  local r; r=$(BENCH_KIND=a2a BENCH_BEARER="${bearer[1]:-}" wrk -t1 -c16 -d"$((secs + 2))s" -s bench/wrk-jsonrpc.lua "$url" | grep '^{"tool":"wrk"')
  t1=$(awk '{print $14+$15}' /proc/$pid/stat)
  report "$path" "$kind" wrk "$t0" "$t1" "$r"
}
gateways() { # command bearer-kind args...: run it for the gateway arm, or for both gateway arms, order swapped every other round
  local f=$1; shift
  if [ -z "$B" ]; then "$f" gateway "$@"
  elif [ $((round % 2)) = 1 ]; then "$f" gateway "$@"; "$f" base "$@"
  else "$f" base "$@"; "$f" gateway "$@"; fi
}
for round in $(seq "$rounds"); do
  if [ "$round" -gt 1 ]; then
    attestation=$(attest "$A" "$home/m" "$gw_port")
    if [ -n "$B" ]; then base_attestation=$(attest "$B" "$home/b" "$base_port"); fi
  fi
  run direct - --rate 1000
  gateways run credential --rate 1000
  gateways run attestation --rate 1000
  if [ -n "$B" ]; then
    run direct -
    gateways run credential
  fi
  if [ "$wrk" = 1 ]; then
    run_wrk direct -
    gateways run_wrk credential
  fi
done
if [ -z "$B" ]; then
  run direct -
  run gateway credential
else
  echo "load: $(cat /proc/loadavg)"
  echo
  python3 bench/compare.py "$rows"
fi
