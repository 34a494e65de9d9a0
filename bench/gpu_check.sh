#!/usr/bin/env bash
# On a machine with an NVIDIA GPU and kerasd installed (pip install -e '.[gpu,embedded]', or '.[jax,embedded]'
# with jax[cuda12] for the JAX backend): start the embedded service with a GPU worker, run the seed's
# example and a small CNN through it, print the device the worker sees and rows/s. Usage: bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
nvidia-smi -L || { echo "no NVIDIA GPU visible"; exit 1; }
data=$(mktemp -d)
port=${PORT:-8765}
"$python" -m kerasd up --port "$port" --redis-port $((port + 1)) --data-dir "$data" &
up=$!
trap 'kill $up 2>/dev/null; wait $up 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 180); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 1; done
# The worker announces itself a moment after the API answers.
for _ in $(seq 60); do curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break; sleep 1; done
"$python" -m bench.gpu_check "http://127.0.0.1:$port"
