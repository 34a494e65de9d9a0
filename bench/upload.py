"""Upload throughput and memory (issue 4), in one run:

1. a 1 GiB .npy uploaded through the API (multipart, as clients send it) against the same bytes inserted
   into PostgreSQL directly as 1 MiB chunks in one transaction: ratio of throughputs (goal >= 0.8) and the
   API process's peak memory growth during the upload (goal <= 64 MiB); the file read back too;
2. a fit on an N-byte dataset: the worker's peak memory growth against N + 300 MiB.

    .venv/bin/python -m bench.upload [--gib 1] [--runs 3] [--fit-mib 256] [--against TREE]

--against TREE also runs an API from another source tree (`git archive COMMIT | tar -x -C TREE`) on the same
database, and each run uploads the same file to both, alternating which goes first: two versions compared in one
run, under the same load.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import numpy as np
import psycopg

from bench._harness import PeakMemory, api_process, scratch_database, server_env, summary, worker_process
from tests.services import Process, free_port


def make_npy(path: Path, total_bytes: int) -> None:
    rows = total_bytes // (4 * 256)
    array = np.lib.format.open_memmap(path, mode="w+", dtype="float32", shape=(rows, 256))
    rng = np.random.default_rng(0)
    step = 65536
    for start in range(0, rows, step):
        array[start : start + step] = rng.random((min(step, rows - start), 256), dtype="float32")
    array.flush()
    del array


def direct_insert(database_url: str, path: Path, chunk_bytes: int) -> float:
    """The physical baseline: the same bytes into PostgreSQL as 1 MiB bytea rows, one transaction."""
    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_chunks (seq int PRIMARY KEY, data bytea NOT NULL)")
        conn.execute("TRUNCATE bench_chunks")
        conn.commit()
        start = time.perf_counter()
        with path.open("rb") as source, conn.cursor() as cursor:
            seq = 0
            digest = hashlib.sha256()
            while block := source.read(chunk_bytes):
                digest.update(block)
                cursor.execute("INSERT INTO bench_chunks (seq, data) VALUES (%s, %s)", (seq, block))
                seq += 1
        conn.commit()
        elapsed = time.perf_counter() - start
        conn.execute("DROP TABLE bench_chunks")
        conn.commit()
    return elapsed


def upload_once(base_url: str, path: Path, api_pid: int) -> tuple[float, int, str]:
    with (
        httpx.Client(base_url=base_url, timeout=3600) as client,
        path.open("rb") as source,
        PeakMemory(api_pid) as memory,
    ):
        start = time.perf_counter()
        response = client.post("/v1/datasets", files={"file": (path.name, source, "application/octet-stream")})
        elapsed = time.perf_counter() - start
    response.raise_for_status()
    return elapsed, memory.growth, response.json()["id"]


@contextmanager
def tree_api(tree: Path, env: dict[str, str], log_dir: Path):
    """(process, URL) of an API whose code is `tree`'s: -P keeps the working directory off sys.path and PYTHONPATH
    puts the tree ahead of this checkout's editable install."""
    port = free_port()
    process = Process(
        [sys.executable, "-P", "-m", "kerasd", "api", "--port", str(port), "--log-level", "warning"],
        {**env, "PYTHONPATH": str(tree)},
        log_dir / f"api-{tree.name}.log",
    )
    try:
        process.wait_for_http(f"http://127.0.0.1:{port}/health", timeout_s=120)
        yield process, f"http://127.0.0.1:{port}"
    finally:
        process.stop()


def forget(database_url: str, base_url: str, dataset_id: str) -> None:
    """Delete the dataset and its blob: the next run must store the bytes again, not find them deduplicated."""
    httpx.delete(f"{base_url}/v1/datasets/{dataset_id}")
    with psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute("DELETE FROM blobs WHERE sha256 NOT IN (SELECT blob_sha256 FROM datasets)")


def compare(database_url: str, path: Path, apis: dict[str, tuple[Process, str]], runs: int) -> None:
    """Each run uploads the file to every API, in turn, the first one alternating."""
    mib = 1024 * 1024
    rates: dict[str, list[float]] = {name: [] for name in apis}
    direct: list[float] = []
    for run in range(runs):
        direct.append(path.stat().st_size / direct_insert(database_url, path, mib) / mib)
        order = list(apis) if run % 2 == 0 else list(reversed(apis))
        for name in order:
            api, base_url = apis[name]
            upload_s, _growth, dataset_id = upload_once(base_url, path, api.popen.pid)
            forget(database_url, base_url, dataset_id)
            rates[name].append(path.stat().st_size / upload_s / mib)
        print(
            f"run {run + 1}: direct insert {direct[-1]:.0f} MiB/s, "
            + ", ".join(f"{name} {rates[name][-1]:.0f} MiB/s" for name in order),
            flush=True,
        )
    print(f"\ndirect insert MiB/s: {summary(direct)}")
    for name, values in rates.items():
        print(f"upload MiB/s, {name}: {summary(values)}")


def read_back(base_url: str, dataset_id: str) -> tuple[float, int]:
    with httpx.Client(base_url=base_url, timeout=3600) as client:
        start = time.perf_counter()
        size = 0
        with client.stream("GET", f"/v1/datasets/{dataset_id}/content") as response:
            for chunk in response.iter_bytes():
                size += len(chunk)
        return time.perf_counter() - start, size


def fit_memory(base_url: str, worker_pid: int, workdir: Path, mib: int) -> tuple[int, int]:
    """(dataset bytes, worker peak growth) for a 1-epoch fit on a float32 dataset of about `mib` MiB, on a
    worker that has run one small job before (TensorFlow's one-time start-up is not the dataset's cost)."""
    if mib > 1:
        fit_memory(base_url, worker_pid, workdir, 1)
    rows = mib * 1024 * 1024 // (4 * 72)
    rng = np.random.default_rng(1)
    x = rng.random((rows, 72), dtype="float32")
    y = np.eye(10, dtype="float32")[rng.integers(0, 10, rows)]
    path = workdir / "fit.npz"
    np.savez(path, x=x, y=y)
    nbytes = x.nbytes + y.nbytes
    del x, y
    with httpx.Client(base_url=base_url, timeout=3600) as client:
        with path.open("rb") as source:
            dataset = client.post("/v1/datasets", files={"file": ("fit.npz", source)}).json()
        model = client.post(
            "/v1/models",
            json={
                "type": "sequential",
                "input_shape": [72],
                "layers": [
                    {"class_name": "Dense", "units": 32, "activation": "relu"},
                    {"class_name": "Dense", "units": 10, "activation": "softmax"},
                ],
            },
        ).json()
        # The worker's own memory: the cache file's mapped pages are the page cache's, shared and evictable.
        with PeakMemory(worker_pid, field="RssAnon") as memory:
            job = client.post(
                "/v1/jobs",
                json={
                    "model_id": model["id"],
                    "compile": {"optimizer": "adam", "loss": "categorical_crossentropy"},
                    "fit": {
                        "x": {"dataset_id": dataset["id"], "array": "x"},
                        "y": {"dataset_id": dataset["id"], "array": "y"},
                        "epochs": 1,
                        "batch_size": 1024,
                    },
                    "artifacts": ["weights.h5"],
                },
            ).json()
            while client.get(f"/v1/jobs/{job['id']}").json()["status"] in ("queued", "running"):
                time.sleep(0.2)
        status = client.get(f"/v1/jobs/{job['id']}").json()
        assert status["status"] == "succeeded", status["error"]
    return nbytes, memory.growth


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--fit-mib", type=int, default=256)
    parser.add_argument("--skip-upload", action="store_true", help="only the worker-memory measurement")
    parser.add_argument("--against", type=Path, help="a source tree whose API's uploads to compare with this one's")
    args = parser.parse_args()
    mib = 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="kerasd-bench-") as tmp, scratch_database() as database_url:
        workdir = Path(tmp)
        path = workdir / "big.npy"
        make_npy(path, int(args.gib * 1024 * mib))
        size = path.stat().st_size
        env = server_env(database_url, workdir / "data", KERASD_MAX_UPLOAD_BYTES=str(8 * 1024**3))
        if args.against:
            with ExitStack() as stack:
                apis = {
                    "this tree": stack.enter_context(api_process(env, workdir)),
                    args.against.name: stack.enter_context(tree_api(args.against.resolve(), env, workdir)),
                }
                compare(database_url, path, apis, args.runs)
            return
        ratios, upload_rates, direct_rates, growths, read_rates = [], [], [], [], []
        with api_process(env, workdir) as (api, base_url):
            for run in range(0 if args.skip_upload else args.runs):
                direct_s = direct_insert(database_url, path, 1024 * 1024)
                upload_s, growth, dataset_id = upload_once(base_url, path, api.popen.pid)
                read_s, read_size = read_back(base_url, dataset_id)
                assert read_size == size
                forget(database_url, base_url, dataset_id)
                upload_rates.append(size / upload_s / mib)
                direct_rates.append(size / direct_s / mib)
                ratios.append(direct_s / upload_s)
                growths.append(growth / mib)
                read_rates.append(size / read_s / mib)
                print(
                    f"run {run + 1}: upload {size / upload_s / mib:.0f} MiB/s, direct insert "
                    f"{size / direct_s / mib:.0f} MiB/s, ratio {direct_s / upload_s:.2f}, API growth "
                    f"{growth / mib:.1f} MiB, read back {size / read_s / mib:.0f} MiB/s",
                    flush=True,
                )
            if ratios:
                print(f"\n{size / mib:.0f} MiB .npy, {args.runs} runs")
                print(f"upload throughput / direct insert: {summary(ratios)}  (goal >= 0.8)")
                print(f"upload MiB/s: {summary(upload_rates)}; direct insert MiB/s: {summary(direct_rates)}")
                print(f"API peak memory growth during upload, MiB: {summary(growths)}  (goal <= 64)")
                print(f"read back MiB/s: {summary(read_rates)}")
            if args.fit_mib:
                with worker_process(env, workdir) as worker:
                    nbytes, growth = fit_memory(base_url, worker.popen.pid, workdir, args.fit_mib)
                print(
                    f"fit on a {nbytes / mib:.0f} MiB dataset: worker peak growth (RssAnon) {growth / mib:.0f} "
                    f"MiB; bound N + 300 MiB = {(nbytes / mib) + 300:.0f} MiB"
                )


if __name__ == "__main__":
    main()
