"""Building a :class:`BeatService` from :class:`~agentcron.settings.Settings` and a Celery app."""

from __future__ import annotations

import logging
from typing import Any

from agentcron.beat.fastpublish import RedisListPublisher, header_template
from agentcron.beat.leader import LeaderElection, leader_leases
from agentcron.beat.service import BeatConfig, BeatService, gc_paused
from agentcron.beat.sources import SpecSource
from agentcron.clock import SYSTEM_CLOCK, Clock
from agentcron.emission.emitter import Emitter
from agentcron.emission.publisher import CeleryPublisher, Publisher
from agentcron.jobs import JobSpec, compile_jobs
from agentcron.ledger.schedules import ScheduleStore
from agentcron.ledger.store import Ledger
from agentcron.refclock import ReferenceClock, attach_reference
from agentcron.schedule_file import load_declarations
from agentcron.settings import Settings, is_redis_url, redact_url

log = logging.getLogger(__name__)


def open_publisher(app: Any, settings: Settings) -> Publisher:
    """Pipelined LPUSHes for a Redis broker; Celery's own producer for any other, and also on
    Redis when something listens to Celery's publish signals (tracing that adds headers, say),
    which the pipelined path does not send."""
    if not is_redis_url(settings.broker_url):
        return CeleryPublisher(app, signing_key=settings.signing_key)
    listeners = publish_listeners()
    if listeners:
        log.info("beat publishes through Celery's producer: %s listen to its publish signals",
                 ", ".join(listeners))  # fmt: skip
        return CeleryPublisher(app, signing_key=settings.signing_key)
    from agentcron.beat.fastpublish import reply_to_of
    from agentcron.timeouts import redis_client

    client = redis_client(settings.broker_url, settings)
    options = app.conf.broker_transport_options or {}
    return RedisListPublisher(client, header_template(app), reply_to=reply_to_of(app),
                              key_prefix=str(options.get("global_keyprefix", "")),
                              signing_key=settings.signing_key)  # fmt: skip


def publish_listeners() -> list[str]:
    """Names of the live receivers of Celery's ``before/after_task_publish``, except ours
    (marked ``agentcron_internal``: what they do, the pipelined path already does)."""
    import weakref

    from celery import signals

    names: list[str] = []
    for signal in (signals.before_task_publish, signals.after_task_publish):
        for _key, receiver in signal.receivers:
            target = receiver() if isinstance(receiver, weakref.ReferenceType) else receiver
            if target is not None and not getattr(target, "agentcron_internal", False):
                names.append(f"{getattr(target, '__module__', '?')}."
                             f"{getattr(target, '__qualname__', repr(target))}")  # fmt: skip
    return names


def file_specs(settings: Settings) -> list[JobSpec]:
    """The schedule file's jobs compiled, all together (nothing from a half-valid file)."""
    path = settings.schedule_path
    if not path.is_file():
        log.warning("no schedule file at %s; only dynamic schedules run", path)
        return []
    jobs, declared = load_declarations(path, settings.limits)
    return compile_jobs(jobs, [path.parent.resolve()], settings.config_max_bytes, declared)


def build_beat(
    app: Any, settings: Settings | None = None, clock: Clock = SYSTEM_CLOCK
) -> BeatService:
    """A beat on ``settings``' ledger and leases, publishing through ``app``."""
    settings = settings or Settings.from_env()
    if clock is SYSTEM_CLOCK:  # decide on the reference time, never on this host's clock
        clock = ReferenceClock(refresh=settings.clock_refresh_interval,
                               warn_after=settings.clock_skew_warn)  # fmt: skip
    ledger = Ledger.from_settings(settings, clock)
    ledger.upgrade()
    if isinstance(clock, ReferenceClock):
        attach_reference(clock, settings, ledger.engine)
    with gc_paused():  # 100,000 jobs and specs that live as long as the beat: no GC passes
        specs = file_specs(settings)  # compiled once: the source takes them as they are
    folder = settings.schedule_path.parent.resolve()
    store = ScheduleStore(ledger.engine, clock)
    source = SpecSource(store, [spec.job for spec in specs], [folder], settings.config_max_bytes,
                        settings, file_specs=specs)  # fmt: skip
    emitter = Emitter(ledger, open_publisher(app, settings), clock)  # one unnest INSERT on PostgreSQL
    leader = LeaderElection(leader_leases(ledger.engine, clock), clock, settings.beat_leader_ttl)
    leader.start()
    config = BeatConfig(max_interval=settings.beat_max_loop_interval,
                        refresh_interval=settings.schedule_refresh_interval)  # fmt: skip
    log.info("beat %s: ledger %s (leader lease in its leases table), run leases %s",
             leader.owner, redact_url(settings.database_url), settings.lease_backend)  # fmt: skip
    return BeatService(source, emitter, clock, engine=ledger.engine, leader=leader, config=config)
