"""An LLM agent: summarise the open tickets with any OpenAI-compatible endpoint, recording spend.

Uses the ``openai`` SDK (``pip install 'agentcron[openai]'``), which reads ``OPENAI_API_KEY``
and ``OPENAI_BASE_URL`` itself (a local server such as vLLM or Ollama works too). The call's
usage goes to ``ctx.usage_from(response)``, so ``agentcron spend`` and the job's budget see it.
Without the SDK or an API key it falls back to an offline, deterministic summary and says so.

    LIMITS = [Limit("openai", concurrency=4, tokens_per_minute=90_000)]
    JOBS = [Job("ticket_summary", agent="examples.llm_summary:summarise", schedule="0 7 * * *",
                config={"model": "gpt-4o-mini", "limit": "openai"},
                budget={"cost_usd": 1.0, "per": "day"})]
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from agentcron.context import RunContext

DATA = Path(__file__).parent / "data"
OFFLINE = "offline summary: no OpenAI-compatible endpoint configured (set OPENAI_API_KEY, OPENAI_BASE_URL)"


def open_tickets() -> list[dict[str, Any]]:
    """The open tickets of the shipped export."""
    return [t for t in json.loads((DATA / "tickets.json").read_text()) if t["open"]]


def offline_summary(tickets: list[dict[str, Any]]) -> str:
    """The same input always gives the same text."""
    by_priority = Counter(t["priority"] for t in tickets)
    teams = Counter(t["team"] for t in tickets).most_common(1)
    busiest = f"; busiest team: {teams[0][0]} ({teams[0][1]})" if teams else ""
    counts = ", ".join(f"{n} {p}" for p, n in sorted(by_priority.items()))
    return f"{len(tickets)} open tickets ({counts}){busiest}."


def _client() -> Any | None:
    """An async OpenAI client, or None without the SDK or an API key."""
    try:
        import openai
    except ImportError:
        return None
    try:
        return openai.AsyncOpenAI(max_retries=1, timeout=30.0)
    except openai.OpenAIError:  # no OPENAI_API_KEY
        return None


async def summarise(ctx: RunContext) -> dict[str, Any]:
    """Agent entry point: one chat completion, its usage recorded; offline without an endpoint."""
    tickets = open_tickets()
    client = _client()
    if client is None:
        ctx.log.info(OFFLINE)
        return {"source": "offline", "note": OFFLINE, "summary": offline_summary(tickets)}
    model = str(ctx.config.get("model", "gpt-4o-mini"))
    lines = "\n".join(f"- [{t['priority']}] {t['team']}: {t.get('title', t['id'])}" for t in tickets)
    messages = [{"role": "system", "content": "Summarise these support tickets in 3 sentences."},
                {"role": "user", "content": lines}]  # fmt: skip
    limit = ctx.config.get("limit")  # a fleet-wide Limit shared by every worker, if declared
    async with client:
        if limit:
            async with ctx.limit(str(limit), tokens=len(lines) // 4 + 300):
                response = await client.chat.completions.create(model=model, messages=messages,
                                                                max_tokens=300)
        else:
            response = await client.chat.completions.create(model=model, messages=messages,
                                                            max_tokens=300)
    cost = ctx.usage_from(response)
    text = response.choices[0].message.content or ""
    return {"source": "llm", "model": response.model, "summary": text.strip(),
            "cost_usd": round(cost, 6)}
