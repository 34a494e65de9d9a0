# kerasd images; production is `docker compose up` (DESIGN.md §10).
#
#   --target api         HTTP API, also runs `kerasd migrate` (TensorFlow CPU for the spec checker sandboxes)
#   --target worker      GPU training worker (TensorFlow with the CUDA libraries from PyPI)
#   --target worker-cpu  CPU training worker
#
# e.g. docker build --target worker -t kerasd-worker .
# Every runtime stage installs the dependencies from pyproject.toml alone first, then the kerasd wheel
# without dependencies: a code change rebuilds a small layer, not the gigabytes of TensorFlow and CUDA.
# BuildKit (Docker 23+'s default builder, and compose's) reads the wheel through `RUN --mount` from the builder.

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && python -c "import glob, sys, zipfile; \
names = zipfile.ZipFile(glob.glob('/wheels/kerasd-*.whl')[0]).namelist(); \
sys.exit(0 if any(n.startswith('migrations/versions/') and n.endswith('.py') for n in names) else \
'the kerasd wheel holds no migrations/versions/*.py: kerasd migrate would find no revision')"

# ---------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KERASD_DATA_DIR=/var/lib/kerasd
# A named volume mounted on /var/lib/kerasd starts with this owner, so the non-root user can write it.
RUN groupadd --system --gid 10001 kerasd \
 && useradd --system --uid 10001 --gid kerasd --create-home --home-dir /home/kerasd \
        --shell /usr/sbin/nologin kerasd \
 && install -d -o kerasd -g kerasd -m 0750 /var/lib/kerasd
WORKDIR /home/kerasd

# ---------------------------------------------------------------------------------------------------
FROM runtime AS worker-base
# jemalloc for the worker process when KERASD_WORKER_MALLOC=jemalloc (app/commands/allocator.py; off by default: with
# it a model larger than the host kills the worker instead of failing its job).
RUN apt-get update && apt-get install -y --no-install-recommends libjemalloc2 && rm -rf /var/lib/apt/lists/*

# ---------------------------------------------------------------------------------------------------
FROM worker-base AS worker
# Several workers may share one GPU (compose --scale): take GPU memory as needed, not all of it at start.
ENV TF_FORCE_GPU_ALLOW_GROWTH=true \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
COPY pyproject.toml /tmp/kerasd-deps/
RUN pip install --no-cache-dir "/tmp/kerasd-deps[gpu]" && pip uninstall --yes kerasd && rm -rf /tmp/kerasd-deps
# The wheel is read from the builder stage through a bind mount: it is installed, never copied into a layer.
RUN --mount=type=bind,from=builder,source=/wheels,target=/tmp/wheels pip install --no-cache-dir --no-deps /tmp/wheels/kerasd-*.whl && pip check
USER kerasd
# Solo pool: one process, one job at a time, TensorFlow imported once.
CMD ["kerasd", "worker"]

# ---------------------------------------------------------------------------------------------------
FROM worker-base AS worker-cpu
COPY pyproject.toml /tmp/kerasd-deps/
RUN pip install --no-cache-dir "/tmp/kerasd-deps[cpu]" && pip uninstall --yes kerasd && rm -rf /tmp/kerasd-deps
RUN --mount=type=bind,from=builder,source=/wheels,target=/tmp/wheels pip install --no-cache-dir --no-deps /tmp/wheels/kerasd-*.whl && pip check
USER kerasd
CMD ["kerasd", "worker"]

# ---------------------------------------------------------------------------------------------------
# Last stage, so also what a plain `docker build .` produces.
FROM runtime AS api
COPY pyproject.toml /tmp/kerasd-deps/
RUN pip install --no-cache-dir "/tmp/kerasd-deps[api]" && pip uninstall --yes kerasd && rm -rf /tmp/kerasd-deps
RUN --mount=type=bind,from=builder,source=/wheels,target=/tmp/wheels pip install --no-cache-dir --no-deps /tmp/wheels/kerasd-*.whl && pip check
USER kerasd
EXPOSE 8000
# No curl in the slim image: ask /health with the standard library (urlopen raises on a non-2xx answer).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
CMD ["kerasd", "api", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
