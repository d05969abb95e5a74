#!/usr/bin/env bash
# A Python client generated from docs/openapi.json by openapi-python-client,
# exercised against a running `agentmesh serve`: exercise.py talks to the
# server only through the generated endpoint functions and models (sponsor,
# agent, list, get, suspend, trust, audit, policy, 401 as the Error model).
#
#   interop/openapi-client/run.sh           # uses target/debug/agentmesh
#   AGENTMESH_BIN=… OPENAPI=… interop/openapi-client/run.sh
#
# Needs .venv/bin/openapi-python-client (.ci/run installs the pinned
# version). The client is generated into a temporary folder, never
# committed. Loopback only; the server it starts is always stopped (trap).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
bin=${AGENTMESH_BIN:-$root/target/debug/agentmesh}
gen=${OPENAPI_PYTHON_CLIENT:-$root/.venv/bin/openapi-python-client}
python=${PYTHON:-$root/.venv/bin/python}
spec=$(realpath "${OPENAPI:-docs/openapi.json}")
[ -x "$bin" ] || { echo "no agentmesh binary at $bin (cargo build -p agentmesh-cli --bin agentmesh)"; exit 1; }
[ -x "$gen" ] || { echo "no openapi-python-client at $gen (.venv/bin/pip install openapi-python-client==0.29.1)"; exit 1; }

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

# Generate. Any warning (an operation or response left out, a schema it
# could not read) fails the run: the document must generate completely.
# The generator sends non-JSON request bodies only as octet-stream, so the
# policy's application/yaml body is mapped to that (the request keeps
# Content-Type: application/yaml), and OpenMetrics text to text/plain.
# No post hooks: ruff is not needed to import the code.
cat >"$tmp/config.yaml" <<'YAML'
content_type_overrides:
  application/yaml: application/octet-stream
  application/openmetrics-text: text/plain
post_hooks: []
YAML
"$gen" generate --path "$spec" --config "$tmp/config.yaml" --meta none \
  --output-path "$tmp/gen/agentmesh_client" >"$tmp/generate.log" 2>&1 \
  || { cat "$tmp/generate.log"; echo "openapi-python-client failed"; exit 1; }
if grep -qiE 'warning|error' "$tmp/generate.log"; then
  cat "$tmp/generate.log"
  echo "openapi-python-client warned: the document did not generate completely"
  exit 1
fi
echo "generated: $(ls "$tmp/gen/agentmesh_client/api/default" | grep -c '\.py$' | awk '{print $1 - 1}') operations, $(ls "$tmp/gen/agentmesh_client/models" | grep -c '\.py$' | awk '{print $1 - 1}') models"

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

status=0
PYTHONPATH="$tmp/gen" "$python" interop/openapi-client/exercise.py agentmesh_client "$url" "$token" \
  || status=$?
if [ "$status" -ne 0 ]; then
  echo "the generated client's round trip failed (exit $status); the server's log:"
  tail -n 50 "$tmp/serve.log"
fi
exit "$status"
