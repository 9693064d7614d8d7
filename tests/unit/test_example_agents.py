"""The shipped example agents do real, deterministic work on shipped data."""

from __future__ import annotations

import asyncio

from agentcron.context import RunContext
from agentcron.instants import parse_instant
from examples.briefing import briefing
from examples.churn import report
from examples.logscan import scan
from examples.market import analyse


def ctx(config: dict[str, object] | None = None) -> RunContext:
    at = parse_instant("2026-03-17T06:00:00Z")
    return RunContext("j", "task", config or {}, "j@2026-03-17T06:00:00Z", at, at)


def test_log_scan_finds_the_error_burst_and_latency_spike() -> None:
    result = scan(ctx())
    kinds = {a["kind"] for a in result["anomalies"]}
    assert kinds == {"error_rate", "latency"}
    minutes = {a["minute"] for a in result["anomalies"] if a["kind"] == "error_rate"}
    assert minutes and all("T05:4" in m or "T05:5" in m for m in minutes)
    assert scan(ctx()) == result


def test_market_report_is_deterministic() -> None:
    first = asyncio.run(analyse(ctx()))
    assert set(first["symbols"]) == {"ACME", "GLOBX", "INITECH", "UMBRL"}
    assert first == asyncio.run(analyse(ctx()))


def test_briefing_and_churn_objects() -> None:
    out = briefing.run("brief")
    assert out["open"] == sum(out["by_priority"].values())
    churn = asyncio.run(report.arun("rank"))
    assert churn["customers"] == 200 and 0 < churn["at_risk"] < 200


def test_the_examples_keep_their_reports() -> None:
    from examples.compliance import audit

    market, churn, compliance = ctx(), ctx(), ctx()
    asyncio.run(analyse(market))
    from examples.churn import weekly

    asyncio.run(weekly(churn))
    result = audit(compliance)
    [m], [c], [a] = market.reports, churn.reports, compliance.reports
    assert m.title == "Daily market analysis 2026-03-17" and "| ACME |" in m.body
    assert c.title == "Weekly churn report 2026-W12" and c.attachments[0].name == "churn_top10.csv"
    assert a.title == "Monthly compliance audit 2026-03" and "- [x] Logs kept" in a.body
    assert "- [ ] MFA on every account\n    - chen has no MFA" in a.body
    assert result == {"controls": 8, "failed": 7, "failing": result["failing"]}
