#!/usr/bin/env bash
# The GPU check (docs/backends.md): on a machine with an NVIDIA GPU, Python 3.12, JAX and PyTorch for CUDA, h5py and
# numpy, no TensorFlow and no package registry. Installs kerasd from the source tree and the wheels that
# bench/gpu_wheels.py fetched elsewhere (no index) into a fresh venv that sees the machine's own packages, then for
# each backend it finds (jax, torch) starts the embedded stack on it (`kerasd up --backend B`, a GPU worker), runs
# bench/gpu_check.py (the §3.2 job and a small CNN against plain fit on the same backend and GPU) and stops it.
#
#   bench/gpu_check.sh [WHEELS_DIR]     (default ./wheels; BACKENDS="jax torch", PYTHON=python3, GPUS=1)
# With CPU=1 it runs on the CPU (no nvidia-smi needed, jobs ask for no GPU): how the script is tested here.
set -euo pipefail
cd "$(dirname "$0")/.."
wheels=${1:-wheels}
python=${PYTHON:-python3}
venv=${GPU_VENV:-.gpu-venv}
gpus=${GPUS:-1}
if [ "${CPU:-0}" = 1 ]; then
    gpus=0
    export JAX_PLATFORMS=cpu CUDA_VISIBLE_DEVICES=-1  # the CPU even where a GPU is
    echo "CPU=1: a CPU run; no GPU is used, nvidia-smi is not asked, no GPU memory is measured"
else
    nvidia-smi -L || { echo "no NVIDIA GPU visible (nvidia-smi -L failed); CPU=1 $0 runs the check on the CPU"; exit 1; }
fi
# `kerasd up` nices its worker (10) so that the API it shares the machine with answers first; here plain fit runs at
# the default priority, so the worker does too, or on a loaded machine rows/s would measure the nice.
export KERASD_WORKER_NICE=${KERASD_WORKER_NICE:-0}
echo "$(date -u); load average $(cut -d" " -f1-3 /proc/loadavg); $(nproc) CPUs"
"$python" --version
if [ ! -x "$venv/bin/python" ]; then
    # --system-site-packages reaches the base interpreter's packages only; where `python3` is itself a venv (as on
    # the lent GPU machines, /opt/torch/.venv) its JAX and PyTorch are in that venv, so a .pth file adds every
    # site-packages folder `python3` sees, after the new venv's own (kerasd's wheels win, the frameworks are found).
    # Without ensurepip (Debian's python3 without python3-venv) the venv is made without pip, and the machine's
    # pip installs into it (pip --python).
    "$python" -m venv --system-site-packages "$venv" 2>/dev/null ||
        { rm -rf "$venv"; "$python" -m venv --system-site-packages --without-pip "$venv"; }
    site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    "$python" -c 'import sys; print("\n".join(p for p in sys.path if p.endswith(("site-packages", "dist-packages"))))' \
        >"$site/gpu-check-host.pth"
fi
if "$venv/bin/python" -m pip --version >/dev/null 2>&1; then pip=("$venv/bin/python" -m pip); else pip=("$python" -m pip --python "$venv/bin/python"); fi
extras=()
for backend in ${BACKENDS:-jax torch}; do
    if "$venv/bin/python" -c "import $backend" 2>/dev/null; then extras+=("$backend"); else echo "skipping $backend: not importable"; fi
done
[ ${#extras[@]} -gt 0 ] || { echo "neither JAX nor PyTorch is importable"; exit 1; }
extra_list=$(IFS=,; echo "embedded-jax,${extras[*]}")
if [ -d "$wheels" ]; then
    "${pip[@]}" install --quiet --no-index --find-links "$wheels" -e ".[$extra_list]"
else
    "${pip[@]}" install --quiet -e ".[$extra_list]"  # a machine that reaches a registry
fi
"$venv/bin/python" -c "import importlib.util as u; print('tensorflow importable:', u.find_spec('tensorflow') is not None)"
port=${PORT:-8765}
wait_for() {  # wait_for PATH SECONDS: until the stack answers 200 there (no curl needed)
    "$venv/bin/python" - "http://127.0.0.1:$port$1" "$2" <<'EOF'
import sys, time, urllib.request
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=5) as answer:
            if answer.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(1)
sys.exit(f"{sys.argv[1]} did not answer in {sys.argv[2]} s")
EOF
}
for backend in "${extras[@]}"; do
    data=$(mktemp -d)
    echo "== $backend =="
    "$venv/bin/python" -m kerasd up --backend "$backend" --port "$port" --redis-port $((port + 1)) --data-dir "$data" &
    up=$!
    trap 'kill $up 2>/dev/null; wait $up 2>/dev/null; rm -rf "$data"' EXIT
    wait_for /health 300
    wait_for /ready 120  # the worker announces itself a moment after the API answers
    "$venv/bin/python" -m bench.gpu_check "http://127.0.0.1:$port" --gpus "$gpus"
    kill $up; wait $up 2>/dev/null || true
    rm -rf "$data"
    trap - EXIT
done
echo "$(date -u); load average $(cut -d" " -f1-3 /proc/loadavg)"
