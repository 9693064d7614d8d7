"""A sync agent: the monthly compliance audit over a shipped snapshot, kept as a checklist report.

Each control is checked against the snapshot in ``data/compliance.json`` (accounts, backups,
storage, vendors, log retention) as of the snapshot's date: a deterministic result, so a retried
window writes the same report. The report is a markdown checklist (``- [x]`` passed, ``- [ ]``
failed with its findings) plus ``findings.csv``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from agentcron.context import RunContext

DATA = Path(__file__).parent / "data"
Check = Callable[[dict[str, Any], date], list[str]]


def _days(since: str, today: date) -> int:
    return (today - date.fromisoformat(since)).days


def mfa_everywhere(s: dict[str, Any], today: date) -> list[str]:
    return [f"{a['user']} has no MFA" for a in s["accounts"] if not a["mfa"]]


def access_reviewed(s: dict[str, Any], today: date) -> list[str]:
    return [f"{a['user']} last reviewed {a['reviewed']}" for a in s["accounts"]
            if _days(a["reviewed"], today) > 90]  # fmt: skip


def dormant_accounts(s: dict[str, Any], today: date) -> list[str]:
    return [f"{a['user']} idle since {a['last_login']}" for a in s["accounts"]
            if _days(a["last_login"], today) > 60]  # fmt: skip


def backups_fresh(s: dict[str, Any], today: date) -> list[str]:
    return [f"{b['system']} last backup {b['last_success']}" for b in s["backups"]
            if _days(b["last_success"], today) > 2]  # fmt: skip


def restores_tested(s: dict[str, Any], today: date) -> list[str]:
    return [f"{b['system']} restore last tested {b['restore_tested']}" for b in s["backups"]
            if _days(b["restore_tested"], today) > 90]  # fmt: skip


def storage_locked_down(s: dict[str, Any], today: date) -> list[str]:
    found = [f"{b['bucket']} is not encrypted" for b in s["storage"] if not b["encrypted"]]
    return found + [f"{b['bucket']} is public" for b in s["storage"] if b["public"]]


def vendors_covered(s: dict[str, Any], today: date) -> list[str]:
    found = [f"{v['name']} has no signed DPA" for v in s["vendors"] if not v["dpa_signed"]]
    return found + [f"{v['name']} review overdue since {v['review_due']}" for v in s["vendors"]
                    if date.fromisoformat(v["review_due"]) < today]  # fmt: skip


def logs_retained(s: dict[str, Any], today: date) -> list[str]:
    days = int(s["log_retention_days"])
    return [] if days >= 365 else [f"logs kept {days} days, policy 365"]


CONTROLS: list[tuple[str, Check]] = [
    ("MFA on every account", mfa_everywhere),
    ("Access reviewed in the last 90 days", access_reviewed),
    ("No account idle for more than 60 days", dormant_accounts),
    ("Backups succeeded in the last 2 days", backups_fresh),
    ("Restores tested in the last 90 days", restores_tested),
    ("Storage encrypted and private", storage_locked_down),
    ("Vendors under a DPA and reviewed", vendors_covered),
    ("Logs kept for at least 365 days", logs_retained),
]


def run_audit(snapshot: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """Every control with its findings (an empty list: passed)."""
    today = date.fromisoformat(snapshot["as_of"])
    return [(name, check(snapshot, today)) for name, check in CONTROLS]


def checklist(results: list[tuple[str, list[str]]], as_of: str) -> str:
    """The markdown checklist."""
    passed = sum(1 for _, findings in results if not findings)
    lines = [f"Snapshot of {as_of}: **{passed} of {len(results)} controls pass**.", ""]
    for name, findings in results:
        lines.append(f"- [{' ' if findings else 'x'}] {name}")
        lines += [f"    - {finding}" for finding in findings]
    return "\n".join(lines)


def audit(ctx: RunContext) -> dict[str, Any]:
    """Agent entry point: audit the snapshot, keep the checklist, return the counts."""
    snapshot = json.loads((DATA / "compliance.json").read_text())
    results = run_audit(snapshot)
    rows = "".join(f'"{name}","{finding}"\n' for name, findings in results for finding in findings)
    ctx.report(f"Monthly compliance audit {ctx.slot:%Y-%m}", checklist(results, snapshot["as_of"]),
               attachments={"findings.csv": ("control,finding\n" + rows).encode()})
    failed = [name for name, findings in results if findings]
    return {"controls": len(results), "failed": len(failed), "failing": failed}
