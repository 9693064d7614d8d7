"""The jobs agentcron runs: data only. Validate with ``agentcron validate``.

Reports (``ctx.report``) go to each job's ``deliver`` targets: with no ``AGENTCRON_SMTP_URL``
the emails are written to ``<data-dir>/outbox/*.eml``.
"""

from agentcron import Job

JOBS = [
    Job(
        "daily_market_analysis",
        agent="examples.market:analyse",
        schedule="0 6 * * *",
        tz="UTC",
        overlap="skip",
        max_retries=3,
        deliver=["mailto:team@example.com"],  # a placeholder: put your team's address here
    ),
    Job(
        "log_anomaly_monitor",
        agent="examples.logscan:scan",
        schedule="every 15 minutes",
        config={"log": "server.log", "error_threshold": 0.2},
        overlap="skip",
    ),
    Job(
        "weekday_briefing",
        agent="examples.briefing:briefing",
        schedule="0 9 * * mon-fri",
        tz="America/New_York",
        task="Summarise open tickets for the 09:00 stand-up",
        window="day",
    ),
    Job(
        "weekly_churn_report",
        agent="examples.churn:weekly",
        schedule="0 7 * * mon",
        tz="UTC",
        task="Rank customers by churn risk",
        window="week",
        max_retries=2,
        deliver=["mailto:team@example.com"],
    ),
    Job(
        "monthly_compliance_audit",
        agent="examples.compliance:audit",
        schedule="0 0 1 * *",
        tz="UTC",
        window="month",
        deliver=["mailto:compliance@example.com"],
    ),
]
