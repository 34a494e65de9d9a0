"""Issue 9, `localhost-open`: requests without a key are let in only when the API binds a loopback address.

Through the real entry points: `kerasd api` refuses KERASD_AUTH=localhost-open on a non-loopback address
before it starts (app/commands/__init__.py), the app itself refuses it at startup when run by uvicorn directly
(app/main.py's lifespan), a non-loopback bind without KERASD_AUTH requires keys even from this machine, and
`kerasd up` says at startup that it runs without keys, which its API then does.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.services import Process, free_port, kerasd_command, running_api
from tests.test_bad_input import assert_problem


def nothing_listens(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_kerasd_api_refuses_localhost_open_on_a_non_loopback_address(server_env) -> None:
    port = free_port()
    env = {**server_env, "KERASD_AUTH": "localhost-open"}
    refused = subprocess.run(kerasd_command("api", "--host", "0.0.0.0", "--port", str(port)), env=env,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0
    assert "kerasd api: KERASD_AUTH=localhost-open" in refused.stderr, refused.stderr
    assert "'0.0.0.0'" in refused.stderr and "KERASD_AUTH=required" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert nothing_listens(port)


def test_the_app_refuses_localhost_open_when_it_cannot_know_a_loopback_bind(server_env, tmp_path) -> None:
    """uvicorn run directly (not `kerasd api`): the app is not told the bind address, so it cannot vouch for a
    loopback one, and its startup fails with the reason."""
    port = free_port()
    env = {k: v for k, v in server_env.items() if k != "KERASD_API_HOST"} | {"KERASD_AUTH": "localhost-open"}
    refused = subprocess.run([sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app", "--host",
                              "127.0.0.1", "--port", str(port)], env=env, capture_output=True, text=True,
                             timeout=120, cwd=Path(__file__).resolve().parent.parent)
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0, output
    assert "KERASD_AUTH=localhost-open" in output and "an unknown address" in output, output
    assert "Application startup failed" in output
    assert nothing_listens(port)


def test_a_non_loopback_bind_requires_keys_even_from_this_machine(server_env, logs_dir) -> None:
    env = {k: v for k, v in server_env.items() if k not in ("KERASD_AUTH", "KERASD_API_HOST")}
    with running_api(env, logs_dir / "api-all-addresses.log", "--host", "0.0.0.0") as (url, process):
        with httpx.Client(base_url=url, timeout=60) as anonymous:
            assert_problem(anonymous.get("/v1/models"), 401, "needs a key")
            assert anonymous.get("/health").status_code == 200
        process.wait_for_log("API keys are required on every /v1 request", timeout_s=10)


def test_the_session_api_on_loopback_is_open_and_says_so(api_url, logs_dir) -> None:
    with httpx.Client(base_url=api_url, timeout=60) as anonymous:
        assert anonymous.get("/v1/models").status_code == 200
    log = (logs_dir / "api.log").read_text(errors="replace")
    assert "API keys are not required from this machine (KERASD_AUTH=localhost-open, bound to 127.0.0.1)" in log


def test_kerasd_up_says_it_runs_without_keys_and_does(tmp_path) -> None:
    port, redis_port = free_port(), free_port()
    # Nothing of the test session's servers: `up` brings its own SQLite and Redis.
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERASD_")}
    up = Process(kerasd_command("up", "--port", str(port), "--redis-port", str(redis_port), "--data-dir",
                                str(tmp_path / "data")), env, tmp_path / "up.log")
    try:
        up.wait_for_log("kerasd is up", timeout_s=300)
        # Printed just after "kerasd is up" (a second or so later: it imports app.http.auth to decide).
        up.wait_for_log("No API key needed from this machine", timeout_s=60)
        assert "(KERASD_AUTH=localhost-open, bound to 127.0.0.1)" in up.log_text()
        assert "API keys are required" not in up.log_text()
        # Said once: the API, which logs its own notice at start-up (before "kerasd is up"), runs at warning level.
        assert up.log_text().count("No API key needed from this machine") == 1
        assert "API keys are not required from this machine" not in up.log_text()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as anonymous:
            assert anonymous.get("/v1/models").status_code == 200
    finally:
        up.popen.send_signal(signal.SIGTERM)
        up.popen.wait(timeout=60)
