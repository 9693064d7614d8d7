"""Deliveries per second through the outbox, beside plain sends in a loop.

N windows' reports (one report, one target each) are written as the runs' successes write them
(:func:`agentcron.ledger.outputs.write_outputs`); a :class:`~agentcron.delivery.sender.Sender`
then drains them (claim with a lease, build the message, send, mark sent) to a local aiosmtpd
server and to a local HTTP receiver. The anchors are the same sends without the outbox: a plain
``smtplib`` loop (one connection per message, as the sender opens) and a plain ``httpx`` loop
(one pooled client, as the sender keeps). Single-threaded, median of ``--repeat`` rounds.

    .venv/bin/python -m bench.delivery --n 300 --repeat 3 [--database-url postgresql+psycopg://…]
"""

from __future__ import annotations

import argparse
import smtplib
import statistics
import tempfile
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import httpx
from sqlalchemy import text

from agentcron.clock import SystemClock
from agentcron.delivery.mail import SmtpMailer
from agentcron.delivery.sender import Sender, SenderOptions, Transports
from agentcron.delivery.webhook import WebhookPoster
from agentcron.ledger.engine import begin_write
from agentcron.ledger.outputs import write_outputs
from agentcron.ledger.store import Ledger
from agentcron.reports.content import make_report
from tests.delivery_servers import HttpReceiver, SmtpServer, http_receiver, smtp_server

BODY = "# Daily market analysis\n\n| symbol | change |\n|---|---:|\n| ACME | +1.2 |\n" * 5


def seed(ledger: Ledger, n: int, target: str, round_no: int) -> None:
    report = make_report("Daily market analysis", BODY)
    now = SystemClock().now()
    with begin_write(ledger.engine) as conn:
        for i in range(n):
            write_outputs(conn, "bench", f"bench@r{round_no}-{i}", [report], [target], now)


def through_outbox(ledger: Ledger, n: int, target: str, round_no: int,
                   smtp: SmtpServer) -> float:  # fmt: skip
    seed(ledger, n, target, round_no)
    transports = Transports(SmtpMailer(smtp.url, 10), WebhookPoster(10), "bench@example.com")
    sender = Sender(ledger.engine, SystemClock(), transports, "bench",
                    options=SenderOptions(lease=300, batch=20))  # fmt: skip
    started = time.perf_counter()
    sent = 0
    while sent < n:
        taken = sender.run_once()
        if taken == 0:
            raise RuntimeError("the outbox ran dry before every delivery was sent")
        sent += taken
    took = time.perf_counter() - started
    sender.close()
    return n / took


def plain_smtp(n: int, smtp: SmtpServer) -> float:
    started = time.perf_counter()
    for i in range(n):
        msg = EmailMessage()
        msg["Subject"], msg["From"], msg["To"] = "Daily market analysis", "b@example.com", \
            "team@example.com"
        msg["Message-ID"] = f"<plain-{i}@example.com>"
        msg.set_content(BODY)
        with smtplib.SMTP("127.0.0.1", smtp.port, timeout=10) as client:
            client.send_message(msg)
    return n / (time.perf_counter() - started)


def plain_httpx(n: int, receiver: HttpReceiver) -> float:
    started = time.perf_counter()
    with httpx.Client(timeout=10) as client:
        for i in range(n):
            client.post(receiver.url(), json={"title": "Daily market analysis", "body": BODY},
                        headers={"Idempotency-Key": f"plain-{i}"}).raise_for_status()
    return n / (time.perf_counter() - started)


def median(rounds: int, measure: Callable[[int], float]) -> float:
    return statistics.median(measure(r) for r in range(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, smtp_server() as smtp, http_receiver() as http:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'ledger.sqlite'}"
        ledger = Ledger(url)
        ledger.upgrade()
        with begin_write(ledger.engine) as conn:
            conn.execute(text("DELETE FROM deliveries"))
            conn.execute(text("DELETE FROM reports"))
        kind = ledger.engine.dialect.name
        rows = [
            ("email", "outbox", median(args.repeat, lambda r: through_outbox(
                ledger, args.n, "mailto:team@example.com", r, smtp))),
            ("email", "plain smtplib", median(args.repeat, lambda r: plain_smtp(args.n, smtp))),
            ("webhook", "outbox", median(args.repeat, lambda r: through_outbox(
                ledger, args.n, http.url(), 100 + r, smtp))),
            ("webhook", "plain httpx", median(args.repeat, lambda r: plain_httpx(args.n, http))),
        ]  # fmt: skip
        ledger.close()
    print(f"ledger: {kind}; {args.n} deliveries per round, median of {args.repeat}")
    print(f"{'target':<8} {'path':<14} {'deliveries/s':>12} {'ms each':>8}")
    for target, path, rate in rows:
        print(f"{target:<8} {path:<14} {rate:>12.0f} {1000 / rate:>8.2f}")


if __name__ == "__main__":
    main()
