"""``agentcron reports``, ``reports show``, ``deliveries``, ``deliveries retry`` and
``schedules add --deliver`` against a temp SQLite ledger (CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from agentcron.cli import main
from agentcron.cli.celery_agents import agents
from agentcron.clock import FrozenClock
from agentcron.context import RunContext
from agentcron.delivery.outbox import Outbox
from tests.unit.test_guard import World, make_spec


def seeded(tmp_path: Path) -> dict[str, str]:
    world = World(tmp_path, FrozenClock("2026-03-17T06:00:00Z"))

    def agent(ctx: RunContext) -> None:
        ctx.report("Churn", "# Top\n\n- acme", attachments={"top.csv": b"a\n"})

    spec = make_spec(agent, name="churn", deliver=["mailto:team@example.com",
                                                   "https://hooks.example.com/secret/path"])
    world.guard().run_sync(spec, world.message(spec))
    outbox = Outbox(world.ledger.engine, world.clock)
    webhooks = [d for d in outbox.claim("t", 30) if d.kind == "webhook"]
    assert webhooks and outbox.mark_failed(webhooks[0], "t", "HTTP 404")
    world.ledger.close()
    return {"AGENTCRON_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.sqlite'}"}


def test_reports_list_show_and_json(tmp_path: Path) -> None:
    env = seeded(tmp_path)
    listed = CliRunner().invoke(main, ["reports", "--job", "churn"], env=env)
    assert listed.exit_code == 0 and "churn@2026-03-17T06:00:00Z" in listed.output
    data = json.loads(CliRunner().invoke(main, ["reports", "--json"], env=env).output)
    assert data[0]["title"] == "Churn" and data[0]["attachments"] == [{"name": "top.csv",
                                                                      "size": 2}]
    shown = CliRunner().invoke(main, ["reports", "show", str(data[0]["id"])], env=env)
    assert shown.exit_code == 0 and "- acme" in shown.output and "top.csv" in shown.output
    assert CliRunner().invoke(main, ["reports", "--window", "nope"], env=env).output.count(
        "\n") == 1
    missing = CliRunner().invoke(main, ["reports", "show", "999"], env=env)
    assert missing.exit_code == 2 and "no report 999" in missing.output


def test_deliveries_list_filter_retry_and_hide_webhook_paths(tmp_path: Path) -> None:
    env = seeded(tmp_path)
    table = CliRunner().invoke(main, ["deliveries"], env=env)
    assert table.exit_code == 0 and "secret" not in table.output
    failed = json.loads(CliRunner().invoke(main, ["deliveries", "--state", "failed", "--json"],
                                           env=env).output)  # fmt: skip
    assert [(d["kind"], d["target"]) for d in failed] == [("webhook", "https://hooks.example.com/…")]
    retried = CliRunner().invoke(agents, ["deliveries", "retry", str(failed[0]["id"])], env=env)
    assert retried.exit_code == 0, retried.output
    again = CliRunner().invoke(main, ["deliveries", "retry", str(failed[0]["id"])], env=env)
    assert again.exit_code == 2 and "no failed delivery" in again.output
    bad = CliRunner().invoke(main, ["deliveries", "--state", "lost"], env=env)
    assert bad.exit_code == 2


def test_schedules_add_checks_deliver_targets(tmp_path: Path) -> None:
    env = {"AGENTCRON_DATABASE_URL": f"sqlite:///{tmp_path / 'l.sqlite'}",
           "AGENTCRON_SCHEDULE_PATH": str(tmp_path / "none.py"), "AGENTCRON_AGENT_MODULES": "examples"}
    args = ["schedules", "add", "mailer", "--agent", "examples.market:analyse", "--schedule",
            "@daily"]
    bad = CliRunner().invoke(main, [*args, "--deliver", "mailto:nobody"], env=env)
    assert bad.exit_code == 2 and "deliver: not an email address" in bad.output
    good = CliRunner().invoke(main, [*args, "--deliver", "mailto:a@example.com"], env=env)
    assert good.exit_code == 0, good.output
    listed = json.loads(CliRunner().invoke(main, ["schedules", "list", "--json"], env=env).output)
    assert listed[0]["deliver"] == ["mailto:a@example.com"]


def test_up_says_where_report_email_goes_without_the_password(tmp_path: Path) -> None:
    from agentcron.delivery.service import describe_delivery
    from agentcron.settings import Settings

    folder = describe_delivery(Settings(data_dir=tmp_path))
    assert folder.startswith(f"reports: email written to {tmp_path / 'outbox'}/")
    smtp = describe_delivery(Settings(data_dir=tmp_path, mail_from="ops@example.com",
                                      smtp_url="smtp+starttls://me:s3cret@mail.example.com:587"))
    assert smtp == ("reports: email via smtp+starttls://me:***@mail.example.com:587 "
                    "from ops@example.com")


def test_a_bad_smtp_url_is_one_clear_line_without_its_password() -> None:
    import pytest

    from agentcron.delivery.mail import SmtpMailer
    from agentcron.errors import ConfigError

    with pytest.raises(ConfigError, match="AGENTCRON_SMTP_URL") as caught:
        SmtpMailer("imap://me:s3cret@mail.example.com")
    assert "s3cret" not in str(caught.value) and "smtp+starttls://" in str(caught.value)
