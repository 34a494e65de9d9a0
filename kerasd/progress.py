"""Progress shown while jobs run: the training bar (fed by the job's live events), the queue, and transfers.

Where Keras is loaded (the bridge, `client.remote(...)`) and the output is live (a terminal, or a Jupyter
kernel), the training bar is Keras's own `keras.utils.Progbar`: one line updated in place, as `model.fit`
draws it. Without Keras (the bare SDK, the CLI) the bar here draws the same line. When output goes to a file
or a pipe, each epoch is one line, in Keras's layout with an ASCII bar: Keras's Progbar takes every POSIX
process for a terminal and would write backspaces and colour codes into a log.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

from kerasd.events import Event


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def live(stream: TextIO) -> bool:
    """Output a person watches as it is drawn: a terminal, or a Jupyter kernel (whose streams are no tty,
    but whose front end redraws a line on `\\r`, which is how Keras tells it too)."""
    return _isatty(stream) or "ipykernel" in sys.modules


def _format_eta(seconds: float) -> str:
    if seconds > 3600:
        return f"{seconds // 3600:.0f}:{(seconds % 3600) // 60:02.0f}:{seconds % 60:02.0f}"
    if seconds > 60:
        return f"{seconds // 60:.0f}:{seconds % 60:02.0f}"
    return f"{seconds:.0f}s"


def _format_per_step(seconds: float | None, unit: str) -> str:
    if not seconds:
        return ""
    if seconds >= 1:
        return f" {seconds:.0f}s/{unit}"
    if seconds >= 1e-3:
        return f" {seconds * 1000:.0f}ms/{unit}"
    return f" {seconds * 1e6:.0f}us/{unit}"


def _format_value(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.4f}" if abs(value) > 1e-3 or value == 0 else f"{value:.4e}"
    return str(value)


class ProgressBar:
    """Keras's `Progbar` look: `7/10 ━━━━━━━━━━━━━━━━━━━━ 1s 5ms/step - loss: 0.1234`, where Keras is absent
    or the output is a log (there: one line when the bar is complete, `10/10 [====================]`).

    Values are shown as given: Keras 3 already reports running means, and so does the worker.
    """

    def __init__(self, target: int | None, *, width: int = 20, verbose: int = 1, stream: TextIO | None = None,
                 unit_name: str = "step", interval: float = 0.05) -> None:
        self.target = target if target and target > 0 else None
        self.width = width
        self.verbose = verbose
        self.stream = stream or sys.stdout
        self.unit_name = unit_name
        self.interval = interval
        self.dynamic = live(self.stream)
        self._start = time.monotonic()
        self._last_update = 0.0
        self._prev_width = 0
        self.seen = 0
        self.finalized = False

    def update(self, current: int, values: dict[str, Any] | None = None, *, finalize: bool | None = None,
               eta_s: float | None = None, seconds_per_step: float | None = None,
               elapsed_s: float | None = None) -> None:
        if self.finalized:
            return
        self.seen = max(self.seen, current)
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        now = time.monotonic()
        elapsed = elapsed_s if elapsed_s is not None else now - self._start
        if seconds_per_step is None and current:
            seconds_per_step = elapsed / current
        values = values or {}
        metrics = "".join(f" - {name}: {_format_value(value)}" for name, value in values.items())
        if self.verbose == 2:
            if finalize:
                count = self._count(current)
                self._write(f"{count} - {elapsed:.0f}s -{_format_per_step(seconds_per_step, self.unit_name)}"
                            f"{metrics}\n")
                self.finalized = True
            return
        if self.verbose != 1:
            self.finalized = bool(finalize)
            return
        # A log gets the finished bar only: a line per update would bury the epochs.
        if not finalize and (not self.dynamic or now - self._last_update < self.interval):
            return
        self._last_update = now
        bar = self._bar(current)
        if self.target is not None and not finalize:
            if eta_s is None and seconds_per_step:
                eta_s = seconds_per_step * (self.target - current)
            timing = f" {_format_eta(eta_s or 0)}"
        else:
            timing = f" {elapsed:.0f}s"
        line = f"{bar}{timing}{_format_per_step(seconds_per_step, self.unit_name)}{metrics}"
        if self.dynamic:
            visible = len(line) - (self._ansi_len if self.target else 0)
            padding = " " * max(0, self._prev_width - visible)
            self._write(f"\r{line}{padding}" + ("\n" if finalize else ""))
            self._prev_width = visible
        else:
            self._write(line + "\n")
        if finalize:
            self.finalized = True

    _ansi_len = 34  # the escape sequences _bar adds on a terminal

    def _count(self, current: int) -> str:
        if self.target is None:
            return f"{current:7d}/Unknown"
        digits = int(math.log10(self.target)) + 1
        return f"{current:{digits}d}/{self.target}"

    def _bar(self, current: int) -> str:
        count = self._count(current)
        if self.target is None:
            return count
        done = min(self.width, int(self.width * current / self.target))
        if self.dynamic:
            return (f"\x1b[1m{count}\x1b[0m \x1b[32m{'━' * done}\x1b[0m"
                    f"\x1b[37m{'━' * (self.width - done)}\x1b[0m")
        arrow = ">" if 0 < done < self.width else ""
        filled = "=" * max(0, done - len(arrow)) + arrow
        return f"{count} [{filled}{'.' * (self.width - len(filled))}]"

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


class KerasProgbar:
    """`keras.utils.Progbar`, fed by a job's events: Keras draws the line (and knows Jupyter)."""

    def __init__(self, target: int | None, *, verbose: int = 1) -> None:
        import keras

        # The worker sends running means already (Keras 3's logs): Keras shows them as given, not averaged again.
        self._progbar = keras.utils.Progbar(target, verbose=verbose, stateless_metrics=())
        self.target = target
        self.seen = 0

    def update(self, current: int, values: dict[str, Any] | None = None, *, finalize: bool | None = None,
               **_timing: Any) -> None:
        # Keras times steps by its own clock, which here is when events arrive: close to the worker's.
        self.seen = max(self.seen, current)
        self._progbar.update(current, list((values or {}).items()), finalize=finalize)


def progress_bar(target: int | None, *, verbose: int = 1, stream: TextIO | None = None) -> ProgressBar | KerasProgbar:
    """Keras's Progbar where Keras is loaded and the bar is drawn live on standard output; ours elsewhere."""
    stream = stream or sys.stdout
    if verbose == 1 and "keras" in sys.modules and stream is sys.stdout and live(stream):
        return KerasProgbar(target, verbose=verbose)
    return ProgressBar(target, verbose=verbose, stream=stream)


class QueueNotice:
    """Says, on stderr, that a job waits in the queue and at which position, updated while it waits; nothing for a
    job that starts within `grace_s`. On a live display one line is redrawn; in a log, a line per new position."""

    def __init__(self, job_id: str, *, verbose: int = 1, stream: TextIO | None = None, grace_s: float = 1.0) -> None:
        self.job_id = job_id
        self.verbose = verbose
        self.stream = stream or sys.stderr
        self.grace_s = grace_s
        self.dynamic = live(self.stream)
        self.shown = False
        self._start = time.monotonic()
        self._last: Any = None
        self._width = 0

    def update(self, job: dict[str, Any]) -> None:
        waited = time.monotonic() - self._start
        position = job.get("queue_position")
        if not self.verbose or waited < self.grace_s or (position == self._last and not self.dynamic):
            return
        self._last = position
        where = f"position {position} in the queue" if position else "in the queue"
        text = f"job {self.job_id} is queued: {where} (1 = next), waiting {waited:.0f} s for a worker"
        if self.dynamic:
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.shown = True
        self.stream.flush()

    def close(self, job: dict[str, Any] | None = None) -> None:
        """The job left the queue: say so, once, where a wait was shown. A job that a worker took "started", even
        when it had already ended by the next look (a short job between two looks a second apart); one that never
        ran says how it left the queue (cancelled, failed)."""
        if not self.shown:
            return
        job = job or {}
        ran = job.get("started_at") is not None or job.get("status", "running") == "running"
        text = f"job {self.job_id} {'started' if ran else job['status']} after " \
               f"{time.monotonic() - self._start:.0f} s in the queue"
        self.stream.write(("\r" + text.ljust(self._width) if self.dynamic else text) + "\n")
        self.stream.flush()
        self.shown = False


class FitDisplay:
    """What `model.fit(verbose=...)` prints, driven by a job's events instead of the training loop.

    Each epoch is shown once: a resumed stream or a retried attempt that repeats an epoch adds nothing.
    """

    def __init__(self, *, epochs: int | None, verbose: int = 1, stream: TextIO | None = None,
                 steps: int | None = None) -> None:
        self.epochs = epochs
        # Steps per epoch: the client's estimate until a batch event says.
        self.steps = steps
        self.verbose = verbose
        self.stream = stream or sys.stdout
        self.current: int | None = None
        self.done: set[int] = set()
        self._bar: ProgressBar | KerasProgbar | None = None

    def _start(self, epoch: int, total: int | None, steps: int | None) -> None:
        if total:
            self.epochs = total
        self.current = epoch
        if self.verbose:
            self.stream.write(f"Epoch {epoch + 1}/{self.epochs or '?'}\n")
            self.stream.flush()
        self._bar = progress_bar(steps, verbose=self.verbose, stream=self.stream)

    def handle(self, event: Event) -> None:
        epoch = event.epoch
        if epoch is None or epoch in self.done or event.type not in ("batch", "epoch"):
            return
        data = event.data
        steps = data.get("steps") if isinstance(data.get("steps"), int) else None
        if steps:
            self.steps = steps
        steps = self.steps
        if self.current != epoch or self._bar is None:
            self._start(epoch, data.get("epochs") if isinstance(data.get("epochs"), int) else None, steps)
        bar = self._bar
        if event.type == "batch":
            step = data.get("step")
            if isinstance(step, int):
                rate = data.get("steps_per_s")
                bar.update(step, event.logs, finalize=False, eta_s=data.get("eta_s"),
                           seconds_per_step=(1 / rate) if isinstance(rate, int | float) and rate > 0 else None)
            return
        self.done.add(epoch)
        seconds = data.get("seconds") if isinstance(data.get("seconds"), int | float) else None
        final_steps = bar.target or steps or bar.seen
        per_step = seconds / final_steps if seconds is not None and final_steps else None
        bar.update(final_steps, event.logs, finalize=True, elapsed_s=seconds, seconds_per_step=per_step)
        self._bar = None


class TransferBar:
    """Bytes sent or received, on stderr; shown only for transfers of at least `min_bytes`."""

    def __init__(self, total: int | None, label: str, *, verbose: int = 1, stream: TextIO | None = None,
                 min_bytes: int = 1 << 20) -> None:
        self.total = total
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = bool(verbose) and (total is None or total >= min_bytes)
        self.dynamic = live(self.stream)
        self.done = 0
        self._last = 0.0
        self._start = time.monotonic()
        self._closed = False

    def reset(self) -> None:
        self.done = 0

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if self.enabled and now - self._last >= (0.1 if self.dynamic else 1.0):
            self._last = now
            self._draw(final=False)

    def close(self) -> None:
        if self.enabled and not self._closed:
            self._draw(final=True)
        self._closed = True

    def _draw(self, *, final: bool) -> None:
        mb = self.done / 1e6
        elapsed = max(time.monotonic() - self._start, 1e-6)
        if self.total:
            share = min(1.0, self.done / self.total)
            filled = int(30 * share)
            text = (f"{self.label}: {mb:.1f}/{self.total / 1e6:.1f} MB [{'=' * filled}{'.' * (30 - filled)}] "
                    f"{share:4.0%} {mb / elapsed:.1f} MB/s")
        else:
            text = f"{self.label}: {mb:.1f} MB {mb / elapsed:.1f} MB/s"
        if self.dynamic:
            self.stream.write("\r" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
