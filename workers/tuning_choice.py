"""The tuning decisions of a fit, as pure functions of what was measured (no Keras, no clock)."""

from __future__ import annotations

import functools
import math


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

