#!/usr/bin/env bash
# Schemathesis against docs/openapi.json and a running `agentmesh serve`:
# every operation gets generated requests (valid and invalid), and every
# answer must be no 5xx, a documented status and content type, and match
# its schema; a request that breaks the schema must be refused (4xx).
#
#   interop/schemathesis/run.sh            # uses target/debug/agentmesh
#   AGENTMESH_BIN=… EXAMPLES=200 interop/schemathesis/run.sh
#
# Needs .venv/bin/schemathesis (.ci/run installs the pinned version).
# Loopback only; the server it starts is always stopped (trap).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
bin=${AGENTMESH_BIN:-$root/target/debug/agentmesh}
st=${SCHEMATHESIS:-$root/.venv/bin/schemathesis}
examples=${EXAMPLES:-100}
spec=$(realpath "${OPENAPI:-docs/openapi.json}")
[ -x "$bin" ] || { echo "no agentmesh binary at $bin (cargo build -p agentmesh-cli --bin agentmesh)"; exit 1; }
[ -x "$st" ] || { echo "no schemathesis at $st (.venv/bin/pip install schemathesis==4.32.5)"; exit 1; }

tmp=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
token=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
url="http://127.0.0.1:$port"

AGENTMESH_ADMIN_TOKEN=$token "$bin" --home "$tmp/home" serve --listen "127.0.0.1:$port" \
  >"$tmp/serve.log" 2>&1 &
pid=$!

# Bounded wait for /healthz (30 s).
ready=
for _ in $(seq 1 300); do
  if curl -fsS "$url/healthz" >/dev/null 2>&1; then ready=1; break; fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "agentmesh serve did not become healthy on $url:"
  cat "$tmp/serve.log"
  exit 1
fi

# Some state to find: a sponsor whose key the home holds, an agent, a gateway.
# (The generated requests mostly miss it; a few hit it.)
auth=(-H "Authorization: Bearer $token" -H 'Content-Type: application/json')
curl -fsS "${auth[@]}" -d '{"email":"s@example.com","capabilities":["*"]}' "$url/v1/sponsors" >/dev/null
# Agent `a` (the key is the Ed25519 base point: a valid public key nobody
# needs the private half of) is the one the document's examples name.
curl -fsS "${auth[@]}" -d '{"name":"a","sponsor":"s@example.com","capabilities":["read:*"],"did":"did:key:z6MkkQLV92bJ9Frad3fq3yWJzQqc6dpbE4rJWVaRjKCC2wRf"}' "$url/v1/agents" >/dev/null
curl -fsS "${auth[@]}" -X POST "$url/v1/audit/checkpoint" >/dev/null

# /v1/events is a server-sent event stream that never ends: its status and
# content type are checked by the Rust tests, not here.
# One worker: with two, Python 3.11's ast module fails in hypothesis
# (SystemError: AST constructor recursion depth mismatch).
# Run from the temp folder: schemathesis keeps a crash cache (.schemathesis/)
# in its working directory, which would make the next run replay old crashes.
status=0
(cd "$tmp" && "$st" run "$spec" \
  --url "$url" \
  -H "Authorization: Bearer $token" \
  --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance,negative_data_rejection,missing_required_header,unsupported_method \
  --exclude-path /v1/events \
  --max-examples "$examples" \
  --phases examples,coverage,fuzzing \
  --seed 7400 \
  --workers 1 \
  --request-timeout 10 \
  --no-color \
  --generation-database none \
  --warnings off \
  "$@") || status=$?

# What the server answered, by status (its own request counter).
echo "responses by status:"
curl -fsS "$url/metrics" | awk '/^agentmesh_api_requests_total\{/ {
    match($0, /status="[0-9]+"/); st = substr($0, RSTART + 8, 3); n[st] += $NF }
  END { for (s in n) printf "  %s: %d\n", s, n[s] }' | sort || true

if [ "$status" -ne 0 ]; then
  echo "schemathesis failed (exit $status); the server's log:"
  tail -n 50 "$tmp/serve.log"
fi
exit "$status"
