"""GET /version names the GPUs each live worker has (CHECKLIST §1): none for this machine's CPU worker, and the
count a worker was given with `kerasd worker --gpus` (with the queues that count serves)."""

from __future__ import annotations

import uuid

import kerasd
from tests.services import Process, kerasd_command
from tests.test_fault_tolerance import wait_for


def workers_on(client: kerasd.Client, queue: str) -> list[dict]:
    return [w for w in client.version()["workers"] if w.get("queue") == queue]


def test_version_reports_no_gpus_for_the_cpu_worker(api_url, worker, run_id) -> None:
    queue = f"kerasd-test-{run_id}"
    with kerasd.Client(api_url, verbose=0) as client:
        found = wait_for(lambda: workers_on(client, queue), timeout_s=60, every_s=0.5)
    assert len(found) == 1, found
    seen = found[0]
    assert "gpus" in seen, seen
    assert seen["gpus"] == 0
    assert seen["queues"] == [queue]
    assert seen["pid"] and seen["backend"] == "tensorflow"


def test_version_reports_the_gpus_a_worker_was_given(api_url, server_env, logs_dir) -> None:
    """`--gpus 0` gives a worker GPU 0 whether or not this machine has one (CUDA_VISIBLE_DEVICES=0): it must
    say so in /version and serve the one-GPU queue before the CPU one. On a queue of its own: no job is sent."""
    queue = f"kerasd-gpus-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in server_env.items() if k != "KERASD_WORKER_GPUS"} | {"KERASD_QUEUE": queue}
    name = f"gpus-{uuid.uuid4().hex[:6]}"
    process = Process(kerasd_command("worker", "--gpus", "0", "--name", f"{name}@%h"), env, logs_dir / f"{name}.log")
    try:
        process.wait_for_log(" ready.", timeout_s=180)
        with kerasd.Client(api_url, verbose=0) as client:
            found = wait_for(lambda: workers_on(client, queue), timeout_s=60, every_s=0.5)
        assert len(found) == 1, found
        assert found[0]["gpus"] == 1, found[0]
        assert found[0]["queues"] == [f"{queue}.gpu", queue], found[0]
    finally:
        process.stop()
