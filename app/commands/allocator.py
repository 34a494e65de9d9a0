"""The worker process's memory allocator: the system's, or jemalloc where the machine has it
(KERASD_WORKER_MALLOC=jemalloc).

Not the default: where the kernel overcommits heuristically (vm.overcommit_memory 0, the usual), jemalloc maps
its memory MAP_NORESERVE, so an allocation larger than the host succeeds and the process is OOM-killed when it
touches it; glibc's malloc refuses it and TensorFlow raises ResourceExhaustedError, which fails the job cleanly
and keeps the worker (tests/test_worker_options.py). Measured 2026-11-28: a model over 40 GB killed a jemalloc
worker (22 GB resident) with either configuration below.

TensorFlow on a CPU allocates and frees each step's large temporary buffers (convolutions above all); glibc's
malloc hands big blocks back to the kernel and maps them again, step after step, and jemalloc keeps them.
Measured on a 2-core machine, a small CNN's `fit` used about 15% less CPU with jemalloc and the same weights
bit for bit (bench/throughput.py). The allocator must be chosen before the process starts, so the worker
re-executes itself once with jemalloc preloaded; `system` (or a machine without libjemalloc) keeps glibc's.

jemalloc's defaults undo that for the biggest buffers: allocations above `oversize_threshold` (8 MiB) come from
an arena that returns its pages to the kernel at once, so every step faulted them in again. Measured on a
2-core AMD EPYC (AVX2), one epoch of that CNN at batch 32: 1.4 million page faults and ~26 s of CPU with
jemalloc's defaults, 60-140 thousand and ~18-20 s with glibc, 35-100 thousand and ~17-18 s with
`oversize_threshold:0,background_thread:true` (big buffers in the ordinary arenas, whose freed pages go back
after jemalloc's usual decay, by a background thread instead of the training threads). The worker sets that,
unless MALLOC_CONF is already set (an operator's own choice wins).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

JEMALLOC_CONF = "oversize_threshold:0,background_thread:true"
JEMALLOC_PATHS = ("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
                  "/usr/lib64/libjemalloc.so.2", "/usr/lib/libjemalloc.so.2", "/usr/local/lib/libjemalloc.so.2")


def jemalloc_path() -> str | None:
    return next((path for path in JEMALLOC_PATHS if Path(path).exists()), None)


def reexec_with_jemalloc(choice: str) -> None:
    """Replace this process by itself with jemalloc preloaded, unless `choice` is 'system', jemalloc is
    already loaded, or the machine has none. Returns only when nothing was done."""
    preload = os.environ.get("LD_PRELOAD", "")
    if choice != "jemalloc" or "jemalloc" in preload:
        return
    library = jemalloc_path()
    if library is None:
        return
    os.environ["LD_PRELOAD"] = f"{library}:{preload}" if preload else library
    os.environ.setdefault("MALLOC_CONF", JEMALLOC_CONF)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "kerasd", *sys.argv[1:]])
