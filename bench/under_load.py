"""Runs chosen tests many times in a row while busy loops keep every core busy (as `stress --cpu N` does)."""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The tests whose outcome once depended on the machine's speed: each must pass every time with both cores busy.
TIMING_TESTS = [
    "tests/test_worker_options.py::test_time_limit_stops_keeps_the_checkpoint_and_fails",
    "tests/test_tuning.py::test_choose_steps_per_execution",
    "tests/test_tuning.py::test_seed_example_identical_with_and_without_tuning",
    "tests/test_tuning.py::test_live_progress_during_tuned_training",
    "tests/test_tenants.py::test_over_the_request_rate_is_429_with_retry_after",
    "tests/test_sdk_auth.py::test_over_the_request_rate_is_rate_limited",
    "tests/test_scheduling.py::test_a_tenant_at_its_running_quota_waits_its_turn_and_others_use_the_free_worker",
    "tests/test_tenants.py::test_one_tenants_many_jobs_do_not_starve_anothers_one",
    "tests/test_tenants.py::test_metrics_are_for_admins_and_count_the_fleet",
    "tests/test_cli_watch.py::test_watch_follows_a_running_job_to_its_end_then_replays_it",
    "tests/test_examples.py::test_fit_progress_bar_advances_during_training",
]


def busy() -> None:
    while True:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("tests", nargs="*", help="pytest node ids (default: the timing-dependent tests)")
    parser.add_argument("--times", type=int, default=20, help="runs of each test in a row")
    parser.add_argument("--burners", type=int, default=os.cpu_count() or 2, help="busy loops (default: one a core)")
    parser.add_argument("--basetemp", default="/tmp/pt-under-load")
    args = parser.parse_args()

    # At the tests' own priority and in their session: the kernel's autogroup would otherwise give a loop in
    # another session no more than that session's share, which is lighter than `stress`.
    burners = [multiprocessing.Process(target=busy, daemon=True) for _ in range(args.burners)]
    for burner in burners:
        burner.start()
    results = []
    pytest_interrupted = 2
    try:
        for test in args.tests or TIMING_TESTS:
            started = time.monotonic()
            # pytest-repeat runs the test --count times in a row in one session (its stack fixtures started once);
            # -x stops at the first failure, so "passed" means every run in a row.
            command = [
                sys.executable,
                "-m",
                "pytest",
                test,
                f"--count={args.times}",
                "-x",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--basetemp={args.basetemp}",
                "-o",
                "addopts=-ra",
            ]
            child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            # Stopped from outside: pytest is interrupted as by Ctrl-C, so its fixtures stop the stacks they started.
            signal.signal(signal.SIGTERM, lambda *_, child=child: child.send_signal(signal.SIGINT))
            stdout, stderr = child.communicate()
            done = subprocess.CompletedProcess(command, child.returncode, stdout, stderr)
            if done.returncode == pytest_interrupted:
                print(f"stopped during {test}", flush=True)
                break
            summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]
            load = os.getloadavg()[0]
            results.append((test, done.returncode, summary, time.monotonic() - started, load))
            print(
                f"{'ok  ' if done.returncode == 0 else 'FAIL'} {test}: {summary} "
                f"({time.monotonic() - started:.0f} s, load {load:.1f})",
                flush=True,
            )
            if done.returncode != 0:
                print(done.stdout[-4000:], flush=True)
    finally:
        for burner in burners:
            burner.terminate()
    return 0 if all(code == 0 for _, code, *_ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
