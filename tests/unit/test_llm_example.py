"""The LLM example agent against a tiny local OpenAI-compatible server (started here), and its
offline fallback; its usage lands in the run's meter and in the ledger through the guard."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agentcron.clock import FrozenClock
from agentcron.context import RunContext
from agentcron.jobs import Declared, Job, compile_job
from agentcron.ledger.records import RunState
from agentcron.limits import Limit
from tests.unit.test_guard import World

pytest.importorskip("openai")
from examples import llm_summary

AT = datetime(2026, 3, 17, 7, tzinfo=UTC)


class FakeOpenAI(BaseHTTPRequestHandler):
    """``POST /v1/chat/completions`` answered as OpenAI does, with a usage block."""

    requests: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeOpenAI.requests.append({"path": self.path, "body": body,
                                    "auth": self.headers.get("Authorization")})
        answer = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1,
                  "model": body["model"], "choices": [{"index": 0, "finish_reason": "stop",
                  "message": {"role": "assistant", "content": " Billing is busiest. "}}],
                  "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150}}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    FakeOpenAI.requests.clear()
    yield url
    server.shutdown()


def test_the_agent_calls_the_endpoint_and_records_usage(endpoint: str, tmp_path: Path) -> None:
    world = World(tmp_path, FrozenClock(AT))
    world.settings = world.settings.with_overrides(
        prices='{"tiny-model": {"input": 1.0, "output": 2.0}}')
    guard = world.guard()
    declared = Declared(limits={"openai": Limit("openai", concurrency=1, tokens_per_minute=10_000)})
    spec = compile_job(Job("summary", agent=llm_summary.summarise, schedule="0 7 * * *",
                           config={"model": "tiny-model", "limit": "openai"},
                           budget={"cost_usd": 1.0, "per": "day"}), declarations=declared)
    outcome = asyncio.run(guard.run_async(spec, world.message(spec, "2026-03-17T07:00:00Z")))
    assert outcome.state is RunState.SUCCEEDED, outcome.error
    assert outcome.result["source"] == "llm" and outcome.result["summary"] == "Billing is busiest."
    assert outcome.result["cost_usd"] == pytest.approx((120 * 1.0 + 30 * 2.0) / 1e6)
    (request,) = FakeOpenAI.requests
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer sk-test"
    usage = guard.spend.store.of_window("summary", AT)
    assert usage["tiny-model"].input_tokens == 120 and usage["tiny-model"].output_tokens == 30


def test_without_an_endpoint_it_says_it_is_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    ctx = RunContext("summary", "", {}, "summary@2026-03-17T07:00:00Z", AT, AT)
    first = asyncio.run(llm_summary.summarise(ctx))
    again = asyncio.run(llm_summary.summarise(ctx))
    assert first == again and first["source"] == "offline" and "no OpenAI" in first["note"]
    assert "open tickets (" in first["summary"]
    assert ctx.meter.by_model == {}
