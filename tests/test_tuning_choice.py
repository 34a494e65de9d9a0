"""Execution tuning's decisions as pure functions of measured step times: given times in, the choice out."""

from __future__ import annotations

import subprocess
import sys

import pytest

from workers.tuning_choice import (
    XLA_MIN_SPEEDUP,
    batch_event_interval_s,
    choose_jit_compile,
    choose_steps_per_execution,
    fit_seconds,
    xla_trial_obstacle,
)


@pytest.mark.parametrize(("step_s", "steps_per_epoch", "expected"), [
    (0.001, None, 100),  # 1 ms a step, executions of 0.1 s: 100 steps
    (0.0004, None, 250),
    (0.5, 100, 1),  # a step longer than an execution: one at a time
    (0.1, 100, 1),
    (0.001, 10, 10),  # a short epoch is one execution
    (0.001, 1563, 98),  # at most 100 a time, split evenly: 16 executions of 98 (not 15 of 100 and one of 63)
    (0.0011, 1563, 87),  # at most 90 a time: 18 executions of 87
    (0.0, 50, 50),  # a step too fast to measure is bounded by the epoch
])
def test_steps_per_execution_fill_the_execution_time_within_an_epoch(step_s, steps_per_epoch, expected):
    chosen = choose_steps_per_execution(step_s, execution_s=0.1, steps_per_epoch=steps_per_epoch, must_divide=[])
    assert chosen == expected
    if steps_per_epoch:
        executions = -(-steps_per_epoch // chosen)
        assert executions * chosen - steps_per_epoch < executions  # no execution much shorter than the others


def test_steps_per_execution_divide_steps_per_epoch_and_validation_steps():
    # steps_per_epoch=30 over data of 3 batches: Keras would run past the data with anything but 1 or 3.
    assert choose_steps_per_execution(0.001, execution_s=0.1, steps_per_epoch=30, must_divide=[30, 3]) == 3
    assert choose_steps_per_execution(0.001, execution_s=0.1, steps_per_epoch=24, must_divide=[24, 16]) == 8
    # A slower step: the largest common divisor that still fits in an execution.
    assert choose_steps_per_execution(0.03, execution_s=0.1, steps_per_epoch=24, must_divide=[24, 16]) == 2
    assert choose_steps_per_execution(0.001, execution_s=0.1, steps_per_epoch=7, must_divide=[7, 5]) == 1


def test_a_longer_step_never_gets_more_steps_per_execution():
    times = [0.0001 * 1.3 ** i for i in range(40)]
    chosen = [choose_steps_per_execution(t, execution_s=0.1, steps_per_epoch=None, must_divide=[]) for t in times]
    assert chosen == sorted(chosen, reverse=True) and chosen[0] == 1000 and chosen[-1] == 1
    for t, spe in zip(times, chosen, strict=True):
        assert spe == 1 or spe * t <= 0.1 + 1e-12  # an execution lasts no longer than asked


def test_batch_events_come_earlier_by_the_length_of_an_execution():
    assert batch_event_interval_s(0.5, 0.0) == 0.5
    assert batch_event_interval_s(0.5, 0.1) == pytest.approx(0.4)
    assert batch_event_interval_s(0.5, 0.4) == 0.25  # never more often than twice an interval
    assert batch_event_interval_s(0.5, 3.0) == 0.25


def test_fit_length_from_the_measured_step():
    assert fit_seconds(0.01, steps_per_epoch=100, epochs=3) == pytest.approx(3.0)
    assert fit_seconds(0.01, steps_per_epoch=100, epochs=0) == pytest.approx(1.0)  # a resumed fit runs at least one
    assert fit_seconds(None, steps_per_epoch=100, epochs=3) is None  # not measured
    assert fit_seconds(0.01, steps_per_epoch=None, epochs=3) is None  # a pipeline of unknown length


def test_xla_is_tried_only_for_fits_long_enough_to_repay_the_trial():
    assert xla_trial_obstacle(None, min_fit_s=120.0) == "not tried: the fit's length is unknown"
    too_short = xla_trial_obstacle(60.0, min_fit_s=120.0)
    assert too_short is not None and "60 s" in too_short and "120 s" in too_short
    assert xla_trial_obstacle(120.0, min_fit_s=120.0) is None
    assert xla_trial_obstacle(3600.0, min_fit_s=120.0) is None


def test_xla_is_chosen_only_when_faster_enough_and_bit_identical():
    faster = choose_jit_compile({"xla": 1.0, "no_xla": 2.0}, identical=True, default=False)
    assert faster.jit_compile is True and faster.speedup == pytest.approx(2.0)
    assert faster.note.startswith("jit_compile=True: 2.00x faster")

    differ = choose_jit_compile({"xla": 1.0, "no_xla": 2.0}, identical=False, default=False)
    assert differ.jit_compile is None and differ.note.endswith("trial weights differ")

    barely = choose_jit_compile({"xla": 1.0, "no_xla": 0.99 * XLA_MIN_SPEEDUP}, identical=True, default=False)
    assert barely.jit_compile is None and "only 1.09x faster" in barely.note

    at_threshold = choose_jit_compile({"xla": 1.0, "no_xla": XLA_MIN_SPEEDUP}, identical=True, default=False)
    assert at_threshold.jit_compile is True

    slower = choose_jit_compile({"xla": 3.0, "no_xla": 1.0}, identical=True, default=False)
    assert slower.jit_compile is None and slower.speedup == pytest.approx(1 / 3)


def test_where_keras_turns_xla_on_it_is_turned_off_only_when_that_is_faster():
    off = choose_jit_compile({"xla": 2.0, "no_xla": 1.0}, identical=True, default=True)
    assert off.jit_compile is False and off.note.startswith("jit_compile=False: 2.00x faster")
    stays = choose_jit_compile({"xla": 1.0, "no_xla": 2.0}, identical=True, default=True)
    assert stays.jit_compile is None and stays.note.startswith("jit_compile stays True")


def test_the_choices_need_neither_keras_nor_tensorflow():
    code = ("import sys, workers.tuning_choice\n"
            "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
