"""What a run spent, as rows per model and a total (``agentcron runs show`` and the console)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentcron.spend.usage import ModelUsage


def _row(usage: ModelUsage) -> dict[str, Any]:
    return {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
            "cost_usd": round(usage.cost_usd, 6), "calls": usage.calls}  # fmt: skip


def usage_report(by_model: Mapping[str, ModelUsage]) -> dict[str, Any]:
    """``{"models": [{"model", "input_tokens", "output_tokens", "cost_usd", "calls"}, ...],
    "total": {...}}``, models by name; an empty list and zero total when nothing was spent."""
    total = ModelUsage()
    for usage in by_model.values():
        total = ModelUsage(total.input_tokens + usage.input_tokens,
                           total.output_tokens + usage.output_tokens,
                           total.cost_usd + usage.cost_usd, total.calls + usage.calls)  # fmt: skip
    return {"models": [{"model": model} | _row(by_model[model]) for model in sorted(by_model)],
            "total": _row(total)}  # fmt: skip


def render_usage(report: Mapping[str, Any]) -> list[str]:
    """The report as text lines (one per model, then the total)."""
    if not report["models"]:
        return ["usage: (no usage reported through ctx.usage)"]
    lines = ["usage:"]
    for row in [*report["models"], {"model": "total"} | report["total"]]:
        lines.append(f"  {row['model']:<24} input {row['input_tokens']:>10}  output "
                     f"{row['output_tokens']:>10}  cost ${row['cost_usd']:.4f}  calls {row['calls']}")
    return lines
