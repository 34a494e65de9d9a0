"""A user's training script, run as a process of its own by the tests of what the SDK says while it waits and
fails: `client.remote(model).fit(...)` on the seed's arrays, then the epochs its History holds."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FIT_SCRIPT = r'''
import os, sys
if os.environ.get("KERASD_TEST_JUPYTER"):
    # What a Jupyter kernel has loaded, and what Keras and kerasd look at to know they draw in a notebook.
    import types
    sys.modules["ipykernel"] = types.ModuleType("ipykernel")
import keras
import kerasd
from tests.seed import seed_arrays

url, epochs, batch_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
arrays = seed_arrays(5)
client = kerasd.Client(url)
model = client.remote(keras.Sequential([keras.Input((72,)), keras.layers.Dense(16, activation="relu"),
                                        keras.layers.Dense(10, activation="softmax")]), seed=1)
model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["categorical_accuracy"])
history = model.fit(arrays["train_x"], arrays["train_y"], epochs=epochs, batch_size=batch_size,
                    validation_data=(arrays["val_x"], arrays["val_y"]))
print("history epochs:", history.epoch)
'''


def takes_ctrl_c() -> None:
    """A process started from a shell's background job inherits SIGINT ignored (and Python then leaves it so):
    the processes the tests interrupt take it as a terminal's foreground process does."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def fit_process(url: str, *, epochs: int, batch_size: int = 100, jupyter: bool = False,
                text: bool = True) -> subprocess.Popen:
    """The script running against `url`, its stdout and stderr piped (so neither is a terminal). `text=False`
    keeps the bytes as written (text mode would turn a `\r` into a new line)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    env.pop("KERASD_URL", None)
    if jupyter:
        env["KERASD_TEST_JUPYTER"] = "1"
    return subprocess.Popen([sys.executable, "-c", FIT_SCRIPT, url, str(epochs), str(batch_size)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=text,
                            preexec_fn=takes_ctrl_c)


class Lines:
    """A process's pipe, read line by line in a thread, so a test can wait for a line while the process runs."""

    def __init__(self, pipe) -> None:
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe) -> None:
        for line in iter(pipe.readline, ""):
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()

    def all(self, timeout_s: float = 30) -> str:
        """Everything, once the process closed the pipe."""
        self._thread.join(timeout_s)
        return self.text

    @property
    def text(self) -> str:
        with self._changed:
            return "".join(self._lines)

    def wait_for(self, pattern: str, timeout_s: float) -> re.Match:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                found = re.search(pattern, "".join(self._lines), re.M)
                if found:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no line matching {pattern!r} in {timeout_s} s:\n{''.join(self._lines)}")
                self._changed.wait(min(left, 1.0))


def seed_ids(client) -> dict[str, str]:
    """The seed's arrays uploaded and its model created: their ids."""
    from tests.seed import SEED_MODEL, npz_bytes, seed_arrays, upload

    dataset = upload(client, "seed.npz", npz_bytes(**seed_arrays())).json()
    return {"dataset": dataset["id"], "model": client.post("/v1/models", json=SEED_MODEL).json()["id"]}
