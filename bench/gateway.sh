#!/usr/bin/env bash
# The MCP gateway under load: 1 KB `tools/call` requests, direct to a fast
# in-process upstream vs through `agentmesh mcp gateway` with full
# governance (bearer credential, 101-rule policy with a rate limit and an
# argument rule, trust, durable audit of every decision and result).
# Alternating A/B rounds in one run; gateway CPU and RSS from /proc.
#
#   bench/gateway.sh [SECONDS_PER_RUN] [ROUNDS]
#
# BASE_AGENTMESH=/path/to/agentmesh adds a third arm: a second gateway run
# by that binary (e.g. the commit before a change) with its own home made by
# the same commands, the same policy and config; each round then runs direct,
# gateway and base (gateway/base order swapped every other round) and ends
# with medians and current-minus-base (bench/compare.py). WRK=1 adds a
# closed-loop wrk run per path and round (bench/wrk-jsonrpc.lua). With both
# unset the script does what it always did.
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
B=${BASE_AGENTMESH:-}
wrk=${WRK:-0}

home=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$home"; }
trap cleanup EXIT

up_port=38300; gw_port=38301; base_port=38302
"$UP" "$up_port" 200 >/dev/null 2>&1 & pids+=($!)
make_home() { # binary home
  "$1" --home "$2" init >/dev/null
  "$1" --home "$2" sponsor create alice@company.com >/dev/null
  "$1" --home "$2" agent create bench --sponsor alice@company.com --capabilities 'call:fast:*' >/dev/null
}
make_home "$A" "$home/m"
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
gw_config() { # port file
  cat > "$2" <<EOF2
listen: 127.0.0.1:$1
policy: $home/policy.yaml
upstreams:
  - name: fast
    url: http://127.0.0.1:$up_port/mcp
EOF2
}
gw_config "$gw_port" "$home/gw.yaml"
"$A" --home "$home/m" mcp gateway --config "$home/gw.yaml" >/dev/null 2>"$out/gateway.log" & gw=$!; pids+=($gw)
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$gw_port/healthz" && break; sleep 0.1; done
token=$("$A" --home "$home/m" --json credential issue bench --ttl 2h | python3 -c 'import json,sys; print(json.load(sys.stdin)["credential"])')
if [ -n "$B" ]; then
  make_home "$B" "$home/b"
  gw_config "$base_port" "$home/base.yaml"
  "$B" --home "$home/b" mcp gateway --config "$home/base.yaml" >/dev/null 2>"$out/base-gateway.log" & base_gw=$!; pids+=($base_gw)
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$base_port/healthz" && break; sleep 0.1; done
  base_token=$("$B" --home "$home/b" --json credential issue bench --ttl 2h | python3 -c 'import json,sys; print(json.load(sys.stdin)["credential"])')
  rows=$out/gateway-rows.tsv; : > "$rows"
fi
echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ); ${secs}s per run, ${rounds} rounds, 16 connections, legacy sessions (2025-11-25)"
if [ -n "$B" ]; then
  echo "arms: direct; gateway = $A (commit $(git rev-parse --short HEAD)); base = $B"
  echo "load: $(cat /proc/loadavg)"
fi
printf '| round | path | mode | rps | p50 ms | p90 ms | p99 ms | p99.9 ms | errors | gateway CPU | gateway RSS (HWM) |\n|---|---|---|---|---|---|---|---|---|---|---|\n'
target_of() { # path -> url, bearer, pid of the measured gateway
  case $1 in
    direct) url="http://127.0.0.1:$up_port/mcp"; bearer=(); pid=$gw ;;
    gateway) url="http://127.0.0.1:$gw_port/mcp"; bearer=(--bearer "$token"); pid=$gw ;;
    base) url="http://127.0.0.1:$base_port/mcp"; bearer=(--bearer "$base_token"); pid=$base_gw ;;
  esac
}
report() { # path tool t0 t1 json: one table row (and a row for compare.py)
  local path=$1 tool=$2 t0=$3 t1=$4 r=$5 cpu="-" rss="-"
  if [ "$path" != direct ]; then
    cpu=$(python3 -c "print(f'{($t1-$t0)/100/($secs+2):.2f} cores')")
    rss=$(awk '/VmRSS/{r=$2} /VmHWM/{h=$2} END{printf "%.1f MiB (%.1f)", r/1024, h/1024}' /proc/$pid/status)
  fi
  echo "$r" | python3 -c "
import json,sys
r=json.load(sys.stdin)
mode=r.get('mode','closed loop')
print(f\"| $round | $path | {mode}{' (wrk)' if '$tool' == 'wrk' else ''} | {r['rps']:.0f} | {r['p50_ms']:.3f} | {r['p90_ms']:.3f} | {r['p99_ms']:.3f} | {r['p999_ms']:.3f} | {r['bad']} | $cpu | $rss |\")
if '${rows:-}':
    print('\t'.join(map(str, ['$tool', $round, '$path', '-', mode, r['rps'], r['p50_ms'], r['p90_ms'], r['p99_ms'], r['p999_ms'], r['bad']])), file=open('${rows:-}', 'a'))"
}
run() { # path mode-args...
  local path=$1; shift
  local url bearer pid; target_of "$path"
  local t0 t1; t0=$(awk '{print $14+$15}' /proc/$pid/stat)
  local r; r=$("$L" --url "$url" --legacy --duration "$secs" --warmup 2 "$@" "${bearer[@]}")
  t1=$(awk '{print $14+$15}' /proc/$pid/stat)
  report "$path" loadgen "$t0" "$t1" "$r"
}
run_wrk() { # path: closed loop, wrk -t1 -c16, on a fresh 2025-11-25 session
  local path=$1 url bearer pid; target_of "$path"
  local auth=() tok=${bearer[1]:-}
  [ -n "$tok" ] && auth=(-H "authorization: Bearer $tok")
  local h=(-H 'content-type: application/json' -H 'accept: application/json, text/event-stream' -H 'mcp-protocol-version: 2025-11-25' "${auth[@]}")
  local sid; sid=$(curl -s -D - -o /dev/null "${h[@]}" -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"wrk","version":"1"}}}' "$url" | awk -F': *' 'tolower($1)=="mcp-session-id"{print $2}' | tr -d '\r')
  curl -s -o /dev/null "${h[@]}" -H "mcp-session-id: $sid" -d '{"jsonrpc":"2.0","method":"notifications/initialized"}' "$url"
  local t0 t1; t0=$(awk '{print $14+$15}' /proc/$pid/stat)
  local r; r=$(BENCH_KIND=mcp BENCH_BEARER="$tok" BENCH_SESSION="$sid" wrk -t1 -c16 -d"$((secs + 2))s" -s bench/wrk-jsonrpc.lua "$url" | grep '^{"tool":"wrk"')
  t1=$(awk '{print $14+$15}' /proc/$pid/stat)
  report "$path" wrk "$t0" "$t1" "$r"
}
gateways() { # command args...: run it for the gateway arm, or for both gateway arms, order swapped every other round
  local f=$1; shift
  if [ -z "$B" ]; then "$f" gateway "$@"
  elif [ $((round % 2)) = 1 ]; then "$f" gateway "$@"; "$f" base "$@"
  else "$f" base "$@"; "$f" gateway "$@"; fi
}
for round in $(seq "$rounds"); do
  for rate in 1000 2000; do
    run direct --rate "$rate"
    gateways run --rate "$rate"
  done
  run direct
  gateways run
  if [ "$wrk" = 1 ]; then
    run_wrk direct
    gateways run_wrk
  fi
done
if [ -n "$B" ]; then
  echo "load: $(cat /proc/loadavg)"
  echo
  python3 bench/compare.py "$rows"
fi
