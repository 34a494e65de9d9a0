"""The tuning decisions of a fit, as pure functions of what was measured (no Keras, no clock)."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

# XLA must be at least this much faster to be worth a different compiled program.
XLA_MIN_SPEEDUP = 1.1


def _divisors(n: int) -> list[int]:
    return sorted({d for i in range(1, math.isqrt(n) + 1) if n % i == 0 for d in (i, n // i)})


def choose_steps_per_execution(step_s: float, *, execution_s: float, steps_per_epoch: int | None,
                               must_divide: list[int]) -> int:
    """As many steps as fit in `execution_s`, within an epoch; a divisor of each of `must_divide`.

    Without a divisor to respect, the epoch's steps are split into equal executions (1563 steps at most 90
    a time: 18 executions of 87), so the last one is not a short remainder.
    """
    most = max(1, int(execution_s / max(step_s, 1e-6)))
    if steps_per_epoch:
        most = min(most, steps_per_epoch)
    if must_divide:
        common = functools.reduce(math.gcd, must_divide)
        return max(d for d in _divisors(common) if d <= most)
    if steps_per_epoch:
        executions = math.ceil(steps_per_epoch / most)
        return math.ceil(steps_per_epoch / executions)
    return most


def batch_event_interval_s(event_interval_s: float, execution_s: float) -> float:
    """The progress throttle: shortened by the length of an execution, since a batch event can only go
    at the end of one; so an event still comes every `event_interval_s` at the latest."""
    return max(event_interval_s / 2, event_interval_s - execution_s)


def fit_seconds(step_s: float | None, *, steps_per_epoch: int | None, epochs: int) -> float | None:
    """How long the fit's remaining `epochs` take at the measured step, when both are known."""
    if step_s is None or not steps_per_epoch:
        return None
    return step_s * steps_per_epoch * max(epochs, 1)


def xla_trial_obstacle(fit_s: float | None, *, min_fit_s: float) -> str | None:
    """Why a fit of `fit_s` seconds does not repay an XLA trial's compile; None when it does."""
    if fit_s is None:
        return "not tried: the fit's length is unknown"
    if fit_s < min_fit_s:
        return (f"not tried: the fit is estimated at {fit_s:.0f} s, too short to repay an XLA trial "
                f"(from {min_fit_s:.0f} s)")
    return None


@dataclass(frozen=True)
class JitChoice:
    """What an XLA trial decides: `jit_compile` to set (None: Keras's default stays), and why."""

    jit_compile: bool | None
    speedup: float
    note: str


def choose_jit_compile(step_ms: dict[str, float], *, identical: bool, default: bool) -> JitChoice:
    """From a trial's step times (`xla`, `no_xla`) and whether both gave the same weights: the other setting
    than Keras's `default` only when it gives identical weights and is at least XLA_MIN_SPEEDUP faster."""
    fast, slow = ("xla", "no_xla") if not default else ("no_xla", "xla")
    speedup = step_ms[slow] / max(step_ms[fast], 1e-9)
    if identical and speedup >= XLA_MIN_SPEEDUP:
        return JitChoice(not default, speedup, f"jit_compile={not default}: {speedup:.2f}x faster a step in a "
                                               "trial, bit-identical weights")
    reason = "weights differ" if not identical else f"only {speedup:.2f}x faster"
    return JitChoice(None, speedup, f"jit_compile stays {default} (Keras's default here): trial {reason}")
