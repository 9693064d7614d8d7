"""An async analysis agent: aggregate the shipped market metrics into a daily report."""

from __future__ import annotations

import asyncio
import csv
import io
from collections import defaultdict
from pathlib import Path
from typing import Any

from agentcron.context import RunContext

DATA = Path(__file__).parent / "data"


def summarise(rows: list[dict[str, str]]) -> dict[str, Any]:
    """Per symbol: first and last close, change in percent, mean volume."""
    series: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        series[row["symbol"]].append(row)
    report: dict[str, Any] = {}
    for symbol, points in sorted(series.items()):
        points.sort(key=lambda r: r["date"])
        first, last = float(points[0]["close"]), float(points[-1]["close"])
        volume = sum(int(p["volume"]) for p in points) / len(points)
        report[symbol] = {
            "first": first,
            "last": last,
            "change_pct": round((last - first) / first * 100, 2),
            "mean_volume": round(volume),
        }
    return report


async def analyse(ctx: RunContext) -> dict[str, Any]:
    """Agent entry point: read the CSV off the loop, then summarise it."""
    text = await asyncio.to_thread((DATA / "metrics.csv").read_text)
    rows = list(csv.DictReader(io.StringIO(text)))
    symbols = summarise(rows)
    best = max(symbols, key=lambda s: symbols[s]["change_pct"])
    ctx.log.info("market report for %s: best %s", ctx.window_key, best)
    ctx.report(f"Daily market analysis {ctx.slot:%Y-%m-%d}", render(symbols, best))
    return {"window": ctx.window_key, "symbols": symbols, "best": best}


def render(symbols: dict[str, Any], best: str) -> str:
    """The report as markdown: one table row per symbol."""
    lines = [f"Best performer: **{best}**", "", "| symbol | first | last | change % | mean volume |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {s} | {v['first']:.2f} | {v['last']:.2f} | {v['change_pct']:+.2f} | "
              f"{v['mean_volume']:,} |" for s, v in symbols.items()]  # fmt: skip
    return "\n".join(lines)
