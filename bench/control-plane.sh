#!/usr/bin/env bash
# The control plane: idle RSS of `agentmesh serve` (release build) on the
# embedded registry and on PostgreSQL, then the bulk-registration and
# lookup benchmark (crates/server/benches/control_plane.rs) with 10^6
# agents on both backends.
#
#   bench/control-plane.sh            # AGENT_BENCH_TOTAL=1000000 by default
#
# Needs: cargo, curl; PostgreSQL at AGENTMESH_TEST_POSTGRES_URL
# (default postgres://postgres@127.0.0.1:5432/test).
set -euo pipefail
cd "$(dirname "$0")/.."
export AGENTMESH_TEST_POSTGRES_URL=${AGENTMESH_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
cargo build --release --locked -q -p agentmesh-cli
A=$PWD/target/release/agentmesh
home=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; rm -rf "$home"; }
trap cleanup EXIT

idle_rss() { # $1: label, rest: extra serve args
  local label=$1; shift
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  AGENTMESH_ADMIN_TOKEN=bench-admin-token-0123456789 "$A" --home "$home/$label" serve --listen "127.0.0.1:$port" "$@" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  # A few requests, then idle.
  for _ in $(seq 20); do curl -sf "http://127.0.0.1:$port/metrics" >/dev/null; done
  sleep 5
  printf '%s: serve idle RSS %s kB (high-water %s kB)\n' "$label" \
    "$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)" "$(awk '/^VmHWM/ {print $2}' /proc/$pid/status)"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}
idle_rss sqlite
schema=am_bench_$$
psql "$AGENTMESH_TEST_POSTGRES_URL" -qc "create schema $schema" >/dev/null
idle_rss postgres --database "${AGENTMESH_TEST_POSTGRES_URL}?options=-c%20search_path%3D$schema"
psql "$AGENTMESH_TEST_POSTGRES_URL" -qc "drop schema $schema cascade" >/dev/null 2>&1

AGENT_BENCH_TOTAL=${AGENT_BENCH_TOTAL:-1000000} cargo bench --locked -q -p agentmesh-server --bench control_plane 2>&1 | grep -E '^(sqlite|postgres):'
