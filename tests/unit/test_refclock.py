"""The reference clock: local time plus an offset measured against the reference (issue 20)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from agentcron.clock import FrozenClock
from agentcron.refclock import ReferenceClock
from agentcron.series import get_metrics


def test_now_is_corrected_by_the_measured_offset_and_warns_past_the_threshold(
    clock: FrozenClock, caplog: pytest.LogCaptureFixture,
) -> None:
    ref = ReferenceClock(clock, warn_after=1.0)
    with caplog.at_level(logging.WARNING, "agentcron.clock"):  # this host runs 90 s fast
        ref.attach(lambda: clock.now() - timedelta(seconds=90), "test")
    assert ref.offset == pytest.approx(-90)
    assert ref.now() == clock.now() - timedelta(seconds=90)
    assert "90.0s ahead of the reference (test)" in caplog.text
    assert get_metrics().clock_offset._value.get() == pytest.approx(-90)
    assert ref.monotonic() == clock.monotonic()


def test_a_reference_that_cannot_be_read_keeps_the_last_offset(clock: FrozenClock) -> None:
    readings = [clock.now() + timedelta(seconds=5)]

    def measure():  # type: ignore[no-untyped-def]
        if not readings:
            raise ConnectionError("database down")
        return readings.pop()

    ref = ReferenceClock(clock, measure, refresh=3600)
    assert ref.offset == pytest.approx(5)
    assert ref.measure_now() is None and ref.offset == pytest.approx(5)
