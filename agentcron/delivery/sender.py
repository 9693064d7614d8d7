"""The sender: claims due delivery rows, sends each, and records how it went.

One pass (:meth:`Sender.run_once`) claims a batch under a lease, sends every row through its
transport, and marks it ``sent``; a transient failure is retried with the shared full-jitter
backoff (:func:`agentcron.backoff.backoff_delay`) until the row is ``AGENTCRON_DELIVERY_MAX_AGE``
old; a permanent failure, or one past that age, ends the row ``failed`` and raises an alert
like a missed window. Nothing here blocks on another sender: the lease decides who sends.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine

from agentcron.alerts import Alert, Alerter
from agentcron.backoff import backoff_delay
from agentcron.clock import Clock
from agentcron.delivery.errors import DeliveryError
from agentcron.delivery.mail import FolderMailer, SmtpMailer, build_message
from agentcron.delivery.metrics import DeliveryMetrics, get_delivery_metrics
from agentcron.delivery.outbox import Delivery, Outbox
from agentcron.delivery.targets import TargetKind, parse_target, safe_target
from agentcron.delivery.webhook import WebhookPoster
from agentcron.reports.records import StoredReport, get_report, get_reports
from agentcron.settings import Settings

log = logging.getLogger("agentcron.delivery")


@dataclass(frozen=True)
class SenderOptions:
    """How long and how often to try, and how many rows a pass takes."""

    max_age: float = 86400.0
    lease: float = 60.0
    backoff_base: float = 2.0
    backoff_cap: float = 600.0
    batch: int = 20


@dataclass
class Transports:
    """Where each kind of target goes."""

    mailer: SmtpMailer | FolderMailer
    poster: WebhookPoster
    mail_from: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Transports:
        """SMTP when ``AGENTCRON_SMTP_URL`` is set, else ``<data-dir>/outbox/``."""
        mailer: SmtpMailer | FolderMailer = (
            SmtpMailer(settings.smtp_url, settings.delivery_timeout) if settings.smtp_url
            else FolderMailer(settings.data_dir / "outbox"))  # fmt: skip
        return cls(mailer, WebhookPoster(settings.delivery_timeout), settings.mail_from)


class Sender:
    """Sends the outbox's due rows (see the module docstring)."""

    def __init__(self, engine: Engine, clock: Clock, transports: Transports, owner: str, *,
                 options: SenderOptions | None = None, alerter: Alerter | None = None,
                 rng: random.Random | None = None,
                 metrics: DeliveryMetrics | None = None) -> None:  # fmt: skip
        self.engine = engine
        self.outbox = Outbox(engine, clock)
        self.clock = clock
        self.transports = transports
        self.owner = owner
        self.options = options or SenderOptions()
        self.alerter = alerter or Alerter()
        self.rng = rng or random.Random()
        self.metrics = metrics or get_delivery_metrics()

    def run_once(self) -> int:
        """Claim and send one batch; how many rows it took."""
        items = self.outbox.claim(self.owner, self.options.lease, self.options.batch)
        if items:
            reports = get_reports(self.engine, sorted({i.report_id for i in items}))
            for item in items:
                self._deliver(item, reports.get(item.report_id))
        return len(items)

    def deliver(self, item: Delivery) -> None:
        """Send one claimed row and record the outcome."""
        self._deliver(item, get_report(self.engine, item.report_id))

    def _deliver(self, item: Delivery, report: StoredReport | None) -> None:
        try:
            if report is None:
                raise DeliveryError(f"report {item.report_id} no longer exists", transient=False)
            self.send(item, report)
        except DeliveryError as exc:
            self.metrics.attempts.labels(item.kind, "error").inc()
            self._failed(item, exc)
            return
        except Exception as exc:  # a row no send can take: end it (and alert), never loop on it
            self.metrics.attempts.labels(item.kind, "error").inc()
            log.warning("delivery %d cannot be sent: %s", item.id, type(exc).__name__)
            self._failed(item, DeliveryError(f"cannot be sent: {type(exc).__name__}",
                                             transient=False))  # fmt: skip
            return
        self.metrics.attempts.labels(item.kind, "sent").inc()
        if self.outbox.mark_sent(item, self.owner):
            lag = (self.clock.now() - item.created_at).total_seconds()
            self.metrics.lag.labels(item.kind).observe(max(lag, 0.0))
        else:
            log.warning("delivery %d sent but its lease was lost meanwhile", item.id)

    def send(self, item: Delivery, report: StoredReport) -> None:
        """The send itself (no ledger write)."""
        target = parse_target(item.target)
        if target.kind is TargetKind.EMAIL:
            msg = build_message(report, item, target.address, self.transports.mail_from)
            self.transports.mailer.send(msg)
        else:
            self.transports.poster.send(target.address, report, item)

    def _failed(self, item: Delivery, exc: DeliveryError) -> None:
        now = self.clock.now()
        give_up_at = item.created_at + timedelta(seconds=self.options.max_age)
        where = safe_target(item.target)
        if exc.transient and now < give_up_at:
            delay = backoff_delay(item.attempts, self.options.backoff_base,
                                  self.options.backoff_cap, self.rng)  # fmt: skip
            at = min(now + timedelta(seconds=delay), give_up_at)
            log.warning("delivery %d of %s to %s failed (%s); attempt %d, next at %s", item.id,
                        item.window_key, where, exc, item.attempts, at.isoformat())  # fmt: skip
            self.outbox.mark_retry(item, self.owner, str(exc), at)
            return
        why = str(exc) if not exc.transient else f"{exc}; still failing after {item.attempts} " \
            f"attempts over {self.options.max_age:.0f}s"
        if self.outbox.mark_failed(item, self.owner, why):
            self.metrics.failed.labels(item.kind).inc()
            self.alerter.alert(Alert(item.job, item.window_key, "delivery failed",
                                     f"report {item.seq} to {where}: {why}"))  # fmt: skip

    def close(self) -> None:
        """Close pooled connections of the transports."""
        self.transports.poster.close()


def sender_from_settings(settings: Settings, engine: Engine, clock: Clock, owner: str,
                         alerter: Alerter | None = None) -> Sender:  # fmt: skip
    """A sender configured by ``settings``."""
    # A pass claims no more rows than it can send within the lease, each send running into
    # the timeout: a slow batch is not claimed again (and sent twice) by another sender.
    lease = settings.delivery_lease
    batch = max(1, min(SenderOptions.batch, int((lease - 5) // max(settings.delivery_timeout, 0.1))))
    options = SenderOptions(max_age=settings.delivery_max_age, lease=lease, batch=batch,
                            backoff_base=settings.delivery_backoff_base,
                            backoff_cap=settings.delivery_backoff_cap)
    return Sender(engine, clock, Transports.from_settings(settings), owner, options=options,
                  alerter=alerter)  # fmt: skip
