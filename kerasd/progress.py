"""Progress bars: Keras's look for training (fed by the job's live events), and one for transfers.

On a terminal the bar redraws in place, as Keras's does; when output goes to a file or a pipe, each
update is a line of its own, so a log shows how training advanced.
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
    """Keras's `Progbar` look: `7/10 ━━━━━━━━━━━━━━━━━━━━ 1s 5ms/step - loss: 0.1234`.

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
        self.dynamic = _isatty(self.stream)
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
        if not finalize and now - self._last_update < self.interval:
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
        self._bar: ProgressBar | None = None

    def _start(self, epoch: int, total: int | None, steps: int | None) -> None:
        if total:
            self.epochs = total
        self.current = epoch
        if self.verbose:
            self.stream.write(f"Epoch {epoch + 1}/{self.epochs or '?'}\n")
            self.stream.flush()
        self._bar = ProgressBar(steps, verbose=self.verbose, stream=self.stream)

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
        self.dynamic = _isatty(self.stream)
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
