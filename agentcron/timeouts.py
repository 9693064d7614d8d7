"""Connect and socket timeouts for every client, in one place: a dead service is an error in
seconds, never a hang.

- Redis clients (leases, cancel signals, heartbeats, the beat's pipelined publisher, the queue
  inspector): :func:`redis_client` / :func:`async_redis_client`: ``socket_connect_timeout``,
  ``socket_timeout`` and one quick retry of a refused connection, none of a timeout (redis-py's
  default retries three times with a backoff of up to 10 s: with a stalled peer that made a CLI
  command wait over 40 s).
- The broker (Celery/kombu): :func:`broker_options` for the worker app, :func:`cli_app` for the
  short-lived apps of CLI commands (which must fail fast instead of reconnecting for minutes).
- The ledger (PostgreSQL): :func:`postgres_connect_args` (libpq ``connect_timeout``, TCP
  keepalives and ``tcp_user_timeout``); see :mod:`agentcron.ledger.engine`.

Worst case for a dead Redis: one connect or socket timeout (5 s), or two refused connections and
a short backoff.
"""

from __future__ import annotations

from typing import Any

from agentcron.settings import Settings, is_redis_url

CONNECT_TIMEOUT = 3.0
"""Seconds to establish a TCP (and TLS) connection to Redis, the broker or PostgreSQL."""
SOCKET_TIMEOUT = 5.0
"""Seconds to wait for a Redis reply (no command of ours blocks longer server-side)."""
REDIS_RETRIES = 1
HEALTH_CHECK_INTERVAL = 10


def connect_timeout(settings: Settings | None) -> float:
    """The connect timeout for ``settings`` (``AGENTCRON_CONNECT_TIMEOUT``, default 3 s)."""
    return _positive(settings, "AGENTCRON_CONNECT_TIMEOUT", CONNECT_TIMEOUT)


def socket_timeout(settings: Settings | None) -> float:
    """The socket timeout for ``settings`` (``AGENTCRON_SOCKET_TIMEOUT``, default 5 s)."""
    return _positive(settings, "AGENTCRON_SOCKET_TIMEOUT", SOCKET_TIMEOUT)


def _positive(settings: Settings | None, name: str, default: float) -> float:
    raw = settings.extra.get(name) if settings is not None else None
    try:
        value = float(raw) if raw else default
    except ValueError:
        return default
    return value if 0 < value <= 3600 else default


def redis_options(settings: Settings | None = None) -> dict[str, Any]:
    """Keyword arguments for ``redis.Redis.from_url`` (sync and asyncio alike, minus retry)."""
    return {
        "socket_connect_timeout": connect_timeout(settings),
        "socket_timeout": socket_timeout(settings),
        "socket_keepalive": True,
        "health_check_interval": HEALTH_CHECK_INTERVAL,
    }


def redis_client(url: str, settings: Settings | None = None) -> Any:
    """A redis-py client for ``url`` with the timeouts above and one quick retry."""
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    retry = Retry(ExponentialBackoff(cap=0.5, base=0.1), REDIS_RETRIES, (redis.ConnectionError,))
    return redis.Redis.from_url(url, retry=retry, **redis_options(settings))


def async_redis_client(url: str, settings: Settings | None = None) -> Any:
    """An asyncio redis-py client for ``url`` with the timeouts above and one quick retry."""
    import redis.asyncio
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff

    retry = Retry(ExponentialBackoff(cap=0.5, base=0.1), REDIS_RETRIES,
                  (redis.asyncio.ConnectionError,))  # fmt: skip
    return redis.asyncio.Redis.from_url(url, retry=retry, **redis_options(settings))


def broker_options(settings: Settings) -> dict[str, Any]:
    """Celery settings that bound every broker connection attempt and socket wait."""
    options: dict[str, Any] = {"broker_connection_timeout": connect_timeout(settings)}
    if settings.broker_url.startswith("rediss://") and "ssl_cert_reqs" not in settings.broker_url:
        import ssl

        options["broker_use_ssl"] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}  # kombu: CERT_NONE
    if is_redis_url(settings.broker_url):
        options["broker_transport_options"] = {
            "socket_connect_timeout": connect_timeout(settings),
            "socket_timeout": socket_timeout(settings),
            "socket_keepalive": True,
            "health_check_interval": HEALTH_CHECK_INTERVAL,
        }
    return options


def cli_app(settings: Settings, name: str) -> Any:
    """A Celery app for one CLI command: JSON only, and a broker that is down fails in seconds
    (one connection attempt, no publish retries) instead of being retried for minutes."""
    from celery import Celery

    app = Celery(name, broker=settings.broker_url)
    options = broker_options(settings)
    transport = dict(options.pop("broker_transport_options", {}))
    transport["max_retries"] = 1  # kombu's publish-side reconnection attempts
    app.conf.update(
        task_serializer="json", accept_content=["json"], broker_connection_retry=False,
        broker_connection_max_retries=1, broker_transport_options=transport,
        task_publish_retry=False, **options,
    )  # fmt: skip
    return app


def postgres_connect_args(settings: Settings | None = None) -> dict[str, Any]:
    """libpq options: give up connecting after the connect timeout; notice a peer that vanished
    (keepalives every few seconds, unacknowledged data dropped after the socket timeout)."""
    return {
        "connect_timeout": max(2, round(connect_timeout(settings))),  # libpq: whole seconds, >= 2
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "tcp_user_timeout": int(socket_timeout(settings) * 3 * 1000),
    }


def check_broker(settings: Settings) -> None:
    """Connect to the broker once (raise kombu's ``OperationalError`` within seconds if it is
    down): a preflight for commands that start long-lived processes."""
    app = cli_app(settings, "agentcron-preflight")
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0.2, interval_step=0.2, interval_max=0.5,
                               timeout=connect_timeout(settings))  # fmt: skip
