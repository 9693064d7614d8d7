"""``AGENTCRON_SYNC_PREFETCH``: a prefork worker's prefetch multiplier (opt-in, default 1)."""

from __future__ import annotations

import pytest

from agentcron.settings import Settings
from workers.app import celery_config, sync_prefetch


def _settings(**extra: str) -> Settings:
    return Settings(broker_url="redis://127.0.0.1:6379/15", extra=extra)


def test_default_is_one_message_per_child() -> None:
    assert celery_config(_settings())["worker_prefetch_multiplier"] == 1


def test_a_sync_worker_may_reserve_more() -> None:
    assert celery_config(_settings(AGENTCRON_SYNC_PREFETCH="4"))["worker_prefetch_multiplier"] == 4


def test_the_async_worker_keeps_one_per_slot() -> None:
    config = celery_config(_settings(AGENTCRON_SYNC_PREFETCH="4", AGENTCRON_WORKER_POOL="async"))
    assert config["worker_prefetch_multiplier"] == 1


@pytest.mark.parametrize("text", ["0", "-1", "two", "1001", "2.5"])
def test_a_bad_value_stops_the_worker_naming_it(text: str) -> None:
    with pytest.raises(SystemExit, match="AGENTCRON_SYNC_PREFETCH"):
        sync_prefetch(_settings(AGENTCRON_SYNC_PREFETCH=text))
