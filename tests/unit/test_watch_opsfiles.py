"""ops/prometheus/alerts.yml and ops/grafana/dashboard.json only use series agentcron exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from agentcron.delivery.metrics import DeliveryMetrics
from agentcron.series import Metrics
from agentcron.spend.prom import SpendMetrics

ROOT = Path(__file__).resolve().parents[2]
SERIES = re.compile(r"\bagentcron_[a-z_]+\b")


def exported() -> set[str]:
    registry = CollectorRegistry()
    Metrics(registry)
    SpendMetrics(registry)
    DeliveryMetrics(registry)
    names: set[str] = set()
    for family in registry.collect():
        names.add(family.name)
        names.update(f"{family.name}{suffix}" for suffix in ("_total", "_bucket", "_sum", "_count"))
    return names


def test_alert_rules_cover_the_required_cases_with_real_series() -> None:
    rules = yaml.safe_load((ROOT / "ops/prometheus/alerts.yml").read_text())["groups"][0]["rules"]
    names = {rule["alert"] for rule in rules}
    assert {"AgentcronWindowMissed", "AgentcronBeatDown", "AgentcronNoWorkerOnQueue",
            "AgentcronFailureRatio", "AgentcronStartLag", "AgentcronDeadLetters",
            "AgentcronDeliveryFailed"} <= names
    used = {series for rule in rules for series in SERIES.findall(rule["expr"])}
    assert used and used <= exported(), used - exported()


def test_dashboard_queries_use_real_series() -> None:
    dashboard = json.loads((ROOT / "ops/grafana/dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {series for expr in exprs for series in SERIES.findall(expr)}
    assert len(used) >= 10 and used <= exported(), used - exported()


def test_spend_alert_rules_use_real_series() -> None:
    groups = yaml.safe_load((ROOT / "ops/prometheus/alerts.yml").read_text())["groups"]
    (spend,) = [g for g in groups if g["name"] == "agentcron-spend"]
    names = {rule["alert"] for rule in spend["rules"]}
    assert {"AgentcronBudgetAt80Percent", "AgentcronRunsSkippedByBudget"} <= names
    used = {series for rule in spend["rules"] for series in SERIES.findall(rule["expr"])}
    assert used and used <= exported(), used - exported()
