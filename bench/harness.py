"""The pure pieces of ``python -m bench``: medians with their spread, ratios, target lines, tables.

Nothing here touches a service, so ``tests/unit/test_bench_harness.py`` checks it directly.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Stats:
    """The median of several trials and their spread (min-max)."""

    median: float
    low: float
    high: float
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        """The median, min and max of ``values`` (at least one)."""
        if not values:
            raise ValueError("no trials to summarise")
        return cls(statistics.median(values), min(values), max(values), len(values))

    def text(self, digits: int = 2, unit: str = "") -> str:
        """``"3.10 s (2.90-3.40, 3 trials)"``: the median, then the spread."""
        suffix = f" {unit}" if unit else ""
        if self.count == 1:
            return f"{self.median:,.{digits}f}{suffix} (1 trial)"
        return (f"{self.median:,.{digits}f}{suffix} ({self.low:,.{digits}f}-{self.high:,.{digits}f},"
                f" {self.count} trials)")  # fmt: skip


def ratio(ours: float, anchor: float) -> float | None:
    """``ours / anchor``, or None when the anchor is zero (nothing to compare with)."""
    return ours / anchor if anchor else None


def ratio_text(value: float | None) -> str:
    """``"1.23x"`` or ``"—"``."""
    return "—" if value is None else f"{value:.2f}x"


@dataclass(frozen=True)
class Target:
    """One goal of issue 19 and whether this run met it."""

    name: str
    figure: str
    goal: str
    met: bool
    note: str = ""

    def line(self) -> str:
        """``target <name>: <figure> (<note>) (goal <goal>): met`` — or ``not met``."""
        note = f" ({self.note})" if self.note else ""
        verdict = "met" if self.met else "not met"
        return f"target {self.name}: {self.figure}{note} (goal {self.goal}): {verdict}"


def not_measured(name: str, goal: str, why: str) -> Target:
    """A target this run could not measure: never counted as met."""
    return Target(name, "not measured", goal, False, why)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A markdown table's lines."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


@dataclass
class Section:
    """What one section (beat, async, sync) measured: table lines and targets."""

    name: str
    load_before: tuple[float, float, float]
    lines: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)

    def markdown(self) -> list[str]:
        """The section as markdown, load average first."""
        load = ", ".join(f"{x:.2f}" for x in self.load_before)
        return [f"## {self.name}", "", f"Load average before the section (1, 5, 15 min): {load}",
                "", *self.lines, ""]  # fmt: skip


def quick_note(quick: bool, size: int, full_size: int) -> str:
    """``"quick: 10,000"`` when a quick run used a smaller size than the target's."""
    return f"quick: {size:,}" if quick and size != full_size else ""
