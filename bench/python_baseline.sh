#!/usr/bin/env bash
# Runs the Python original's micro-benchmarks (PyPI agentmesh-platform 3.7.0)
# so they can be quoted side by side with ours, in the same session.
#   bench/python_baseline.sh [path/to/agentmesh_py_baseline.py] [N]
# The baseline script lives in the steering repo's shared/bench/; the venv
# is created under target/ and reused.
set -euo pipefail
cd "$(dirname "$0")/.."
script=${1:-../shared/bench/agentmesh_py_baseline.py}
n=${2:-5000}
venv=target/py-baseline
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'agentmesh-platform==3.7.0'
fi
"$venv/bin/python" "$script" "$n"
