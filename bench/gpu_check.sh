#!/usr/bin/env bash
# The GPU check (docs/backends.md): on a machine with an NVIDIA GPU, Python 3.12, JAX and PyTorch for CUDA, h5py and
# numpy, no TensorFlow and no package registry. Installs kerasd from the source tree and the wheels that
# bench/gpu_wheels.py fetched elsewhere (no index), then for each backend it finds (jax, torch) starts the
# embedded stack on it (`kerasd up --backend B`, a GPU worker), runs bench/gpu_check.py (the §3.2 job and a small
# CNN against plain fit on the same backend and GPU) and stops it.
#
#   bench/gpu_check.sh [WHEELS_DIR]     (default ./wheels; BACKENDS="jax torch", PYTHON=python3, GPUS=1)
# With CPU=1 it runs on the CPU (no nvidia-smi needed, jobs ask for no GPU): how the script is tested here.
set -euo pipefail
cd "$(dirname "$0")/.."
wheels=${1:-wheels}
python=${PYTHON:-python3}
venv=${GPU_VENV:-.gpu-venv}
gpus=${GPUS:-1}
if [ "${CPU:-0}" = 1 ]; then gpus=0; export JAX_PLATFORMS=cpu; else nvidia-smi -L || { echo "no NVIDIA GPU visible"; exit 1; }; fi
"$python" --version
if [ ! -x "$venv/bin/python" ]; then
    # The machine's JAX and PyTorch (with their CUDA libraries) are used as they are installed.
    "$python" -m venv --system-site-packages "$venv"
fi
extras=()
for backend in ${BACKENDS:-jax torch}; do
    if "$venv/bin/python" -c "import $backend" 2>/dev/null; then extras+=("$backend"); else echo "skipping $backend: not importable"; fi
done
[ ${#extras[@]} -gt 0 ] || { echo "neither JAX nor PyTorch is importable"; exit 1; }
extra_list=$(IFS=,; echo "embedded-jax,${extras[*]}")
if [ -d "$wheels" ]; then
    "$venv/bin/python" -m pip install --quiet --no-index --find-links "$wheels" -e ".[$extra_list]"
else
    "$venv/bin/python" -m pip install --quiet -e ".[$extra_list]"  # a machine that reaches a registry
fi
"$venv/bin/python" -c "import importlib.util as u; print('tensorflow importable:', u.find_spec('tensorflow') is not None)"
port=${PORT:-8765}
for backend in "${extras[@]}"; do
    data=$(mktemp -d)
    echo "== $backend =="
    "$venv/bin/python" -m kerasd up --backend "$backend" --port "$port" --redis-port $((port + 1)) --data-dir "$data" &
    up=$!
    trap 'kill $up 2>/dev/null; wait $up 2>/dev/null; rm -rf "$data"' EXIT
    for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 1; done
    # The worker announces itself a moment after the API answers.
    for _ in $(seq 120); do curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break; sleep 1; done
    "$venv/bin/python" -m bench.gpu_check "http://127.0.0.1:$port" --gpus "$gpus"
    kill $up; wait $up 2>/dev/null || true
    rm -rf "$data"
    trap - EXIT
done
