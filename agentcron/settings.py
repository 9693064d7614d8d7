"""One settings object; the only module that reads the environment.

Every variable is ``AGENTCRON_*``. With none set, agentcron runs embedded: SQLite broker (kombu's
SQLAlchemy transport), SQLite ledger and SQL leases, all in ``./.agentcron``. With
``AGENTCRON_BROKER_URL=redis://…`` and ``AGENTCRON_DATABASE_URL=postgresql+psycopg://…`` the same
processes run distributed, and leases move to Redis.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agentcron.errors import ConfigError, Problem
from agentcron.secrets import redact_url as redact_url  # its home; imported from here too

PREFIX = "AGENTCRON_"


def read_environment(name: str) -> str | None:
    """One variable of the process environment (``env:NAME`` config values, read at run time)."""
    return os.environ.get(name)


def is_redis_url(url: str | None) -> bool:
    return bool(url) and urlsplit(url or "").scheme in ("redis", "rediss", "unix")


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with the embedded mode's defaults."""

    data_dir: Path = Path(".agentcron")
    schedule_path: Path = Path("beat_schedule.py")
    broker_url: str = ""
    database_url: str = ""
    redis_url: str = ""
    lease_backend: str = ""
    visibility_timeout: float = 7200.0
    result_max_bytes: int = 256 * 1024
    config_max_bytes: int = 64 * 1024
    error_max_chars: int = 2000
    message_max_bytes: int = 256 * 1024  # a bigger queue entry is dead-lettered unread
    dead_letters_keep: int = 10_000  # the dead-letter store keeps this many, newest first
    beat_leader_ttl: float = 30.0
    beat_max_loop_interval: float = 1.0
    schedule_refresh_interval: float = 2.0
    async_concurrency: int = 1000
    sync_concurrency: int = 0
    shutdown_timeout: float = 30.0
    worker_lost_cap: int = 3
    metrics_port: int = 0
    metrics_addr: str = "127.0.0.1"
    alert_webhook_url: str = ""
    ping_urls: str = ""
    ping_style: str = "healthchecks"
    alert_timeout: float = 5.0
    watchdog_interval: float = 60.0
    watchdog_republish_after: float = 600.0
    watchdog_min_age: float = 30.0
    watchdog_grace: float = 0.0
    heartbeat_interval: float = 10.0
    heartbeat_ttl: float = 30.0
    log_level: str = "INFO"
    web_token: str = ""  # the console's login token (generated at start when empty)
    web_readonly: bool = False  # the console hides and refuses actions
    agent_modules: str = ""
    signing_key: str = field(default="", repr=False)
    prices: str = ""  # JSON: model -> {"input": usd_per_million, "output": usd_per_million}
    limits: str = ""  # JSON: fleet-wide limits besides the schedule file's LIMITS
    limit_wait: float = 30.0  # a run waiting longer for a limit is re-queued with a delay
    allow_eviction: bool = False  # start even if Redis' maxmemory-policy can evict (eviction.py)
    clock_refresh_interval: float = 30.0  # reference clock offset refresh (refclock.py)
    clock_skew_warn: float = 1.0  # warn when a process's clock is off by more (seconds)
    # Delivery of reports (agentcron.delivery): no SMTP URL writes email as .eml files to
    # <data_dir>/outbox/. The URL's password is never printed (redact_url).
    smtp_url: str = ""
    mail_from: str = "agentcron@localhost"
    delivery_max_age: float = 86400.0
    delivery_interval: float = 2.0
    delivery_lease: float = 300.0
    delivery_timeout: float = 30.0
    delivery_backoff_base: float = 2.0
    delivery_backoff_cap: float = 600.0
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        data_dir = self.data_dir
        defaults = {
            "broker_url": f"sqla+sqlite:///{(data_dir / 'broker.sqlite').resolve()}",
            "database_url": f"sqlite:///{(data_dir / 'ledger.sqlite').resolve()}",
        }
        for name, value in defaults.items():
            if not getattr(self, name):
                object.__setattr__(self, name, value)
        if not self.redis_url and is_redis_url(self.broker_url):
            object.__setattr__(self, "redis_url", self.broker_url)
        if not self.lease_backend:
            object.__setattr__(self, "lease_backend", "redis" if self.redis_url else "sql")
        if self.lease_backend not in ("redis", "sql"):
            raise ConfigError([Problem(None, f"{PREFIX}LEASE_BACKEND", self.lease_backend,
                                       "one of redis, sql")])
        if self.lease_backend == "redis" and not self.redis_url:
            raise ConfigError([Problem(None, f"{PREFIX}REDIS_URL", "", "redis leases need a URL")])

    @property
    def embedded(self) -> bool:
        """True when the broker is the SQLite transport (one machine, no servers)."""
        return self.broker_url.startswith("sqla+sqlite")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``AGENTCRON_*`` from ``env`` (default: the process environment)."""
        source = os.environ if env is None else env
        values: dict[str, Any] = {}
        for spec in fields(cls):
            if spec.name == "extra":
                continue
            raw = source.get(PREFIX + spec.name.upper())
            if raw is None or raw == "":
                continue
            values[spec.name] = _convert(spec.name, raw, getattr(cls, spec.name, None))
        known = {PREFIX + f.name.upper() for f in fields(cls)}
        extra = {k: v for k, v in source.items() if k.startswith(PREFIX) and k not in known}
        values["extra"] = extra
        values.update(overrides)
        return cls(**values)

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def environment(self) -> dict[str, str]:
        """These settings as ``AGENTCRON_*`` variables, for child processes."""
        out = {PREFIX + k.upper(): str(v) for k, v in self.__dict__.items() if k != "extra"}
        out.update(self.extra)
        return out


def _convert(name: str, raw: str, default: object) -> Any:
    try:
        if isinstance(default, Path):
            return Path(raw)
        if isinstance(default, bool):
            return raw.lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError as exc:
        raise ConfigError([Problem(None, PREFIX + name.upper(), raw, "not a number")]) from exc
    return raw
