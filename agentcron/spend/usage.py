"""What a run spent: tokens and cost per model, added up as the agent reports them.

``ctx.usage(model=, input_tokens=, output_tokens=, cost_usd=None)`` lands here. When the cost is
not given it comes from the price table (``AGENTCRON_PRICES``: model -> price per million input
and output tokens); there are no built-in prices, which would go stale. A model without a price
counts as costing nothing (logged once per model and process).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("agentcron.spend")
MODEL_MAX = 128
_UNPRICED: set[str] = set()


@dataclass(frozen=True)
class Price:
    """USD per million input and output tokens."""

    input: float
    output: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input + output_tokens * self.output) / 1_000_000


@dataclass
class ModelUsage:
    """One model's totals within one run."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    calls: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    if value < 0:
        raise ValueError(f"{what} must not be negative, got {value!r}")
    return float(value)


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be a whole number of tokens, got {value!r}")
    if value < 0 or value > 10**15:
        raise ValueError(f"{what} out of range: {value!r}")
    return value


def parse_prices(raw: str | Mapping[str, Any]) -> dict[str, Price]:
    """``{"model": {"input": usd_per_million, "output": usd_per_million}}``; ValueError naming
    the model and field that is wrong."""
    if isinstance(raw, str):
        if not raw.strip():
            return {}
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"AGENTCRON_PRICES is not JSON: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise ValueError("AGENTCRON_PRICES must be a JSON object: model -> {input, output}")
    prices: dict[str, Price] = {}
    for model, entry in raw.items():
        if not isinstance(entry, Mapping) or set(entry) - {"input", "output"}:
            raise ValueError(f"AGENTCRON_PRICES[{model!r}] must be {{'input': n, 'output': n}}")
        prices[str(model)] = Price(
            _number(entry.get("input", 0), f"AGENTCRON_PRICES[{model!r}].input"),
            _number(entry.get("output", 0), f"AGENTCRON_PRICES[{model!r}].output"),
        )
    return prices


# A watcher sees every addition (the run's budgets); it may cancel the run or raise.
Watcher = Callable[["UsageMeter"], None]


class UsageMeter:
    """One run's usage by model. Thread-safe: a sync agent may report from its own threads."""

    def __init__(self, prices: Mapping[str, Price] | None = None,
                 watcher: Watcher | None = None) -> None:  # fmt: skip
        self.prices = prices or {}
        self.watcher = watcher
        self.by_model: dict[str, ModelUsage] = {}
        self._recorded: dict[str, ModelUsage] = {}
        self._lock = threading.Lock()

    def add(self, model: str, input_tokens: int = 0, output_tokens: int = 0,
            cost_usd: float | None = None) -> float:  # fmt: skip
        """Add one call's usage; return its cost in USD."""
        if not isinstance(model, str) or not model or len(model) > MODEL_MAX:
            raise ValueError(f"model must be a name of 1-{MODEL_MAX} characters, got {model!r}")
        inputs = _count(input_tokens, "input_tokens")
        outputs = _count(output_tokens, "output_tokens")
        if cost_usd is None:
            price = self.prices.get(model)
            if price is None and model not in _UNPRICED:
                _UNPRICED.add(model)
                log.warning("no price for model %r in AGENTCRON_PRICES; its cost counts as 0",
                            model)  # fmt: skip
            cost = price.cost(inputs, outputs) if price else 0.0
        else:
            cost = _number(cost_usd, "cost_usd")
        with self._lock:
            entry = self.by_model.setdefault(model, ModelUsage())
            entry.input_tokens += inputs
            entry.output_tokens += outputs
            entry.cost_usd += cost
            entry.calls += 1
        if self.watcher is not None:
            self.watcher(self)
        return cost

    def merge(self, usage: Mapping[str, ModelUsage]) -> None:
        """Add usage counted by another meter (a run's attempt in a prefork child), then let
        the budget watch it as if it had been added here."""
        with self._lock:
            for model, more in usage.items():
                entry = self.by_model.setdefault(model, ModelUsage())
                entry.input_tokens += more.input_tokens
                entry.output_tokens += more.output_tokens
                entry.cost_usd += more.cost_usd
                entry.calls += more.calls
        if usage and self.watcher is not None:
            self.watcher(self)

    @property
    def cost_usd(self) -> float:
        with self._lock:
            return sum(u.cost_usd for u in self.by_model.values())

    @property
    def tokens(self) -> int:
        with self._lock:
            return sum(u.tokens for u in self.by_model.values())

    def unrecorded(self) -> dict[str, ModelUsage]:
        """What was added since the last call (by model), now counted as recorded: an
        attempt's share of a run's usage (the meter keeps adding up across retries)."""
        with self._lock:
            delta: dict[str, ModelUsage] = {}
            for model, now in self.by_model.items():
                was = self._recorded.get(model, ModelUsage())
                if now.calls != was.calls:
                    delta[model] = ModelUsage(now.input_tokens - was.input_tokens,
                                              now.output_tokens - was.output_tokens,
                                              now.cost_usd - was.cost_usd, now.calls - was.calls)
                self._recorded[model] = ModelUsage(now.input_tokens, now.output_tokens,
                                                   now.cost_usd, now.calls)  # fmt: skip
            return delta

    def snapshot(self) -> dict[str, ModelUsage]:
        """A copy of the totals by model."""
        with self._lock:
            return {m: ModelUsage(u.input_tokens, u.output_tokens, u.cost_usd, u.calls)
                    for m, u in self.by_model.items()}  # fmt: skip


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def usage_of(response: Any, model: str | None = None) -> tuple[str, int, int]:
    """``(model, input_tokens, output_tokens)`` of an OpenAI-compatible or Anthropic response
    (an object or its dict form), duck-typed on its ``usage`` field."""
    usage = _field(response, "usage")
    if usage is None:
        raise ValueError("the response has no 'usage' field")
    name = model or _field(response, "model")
    if not isinstance(name, str) or not name:
        raise ValueError("the response names no model; pass model=")
    prompt, completion = _field(usage, "prompt_tokens"), _field(usage, "completion_tokens")
    if prompt is None and completion is None:  # Anthropic's Messages API
        prompt, completion = _field(usage, "input_tokens"), _field(usage, "output_tokens")
    if prompt is None and completion is None:
        raise ValueError("the response's usage has neither prompt/completion nor input/output tokens")
    return name, int(prompt or 0), int(completion or 0)
