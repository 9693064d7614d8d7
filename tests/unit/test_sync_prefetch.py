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


def test_claims_in_the_main_process_reserve_eight_per_child_unless_told() -> None:
    """``AGENTCRON_SYNC_CLAIM=main``: the main process claims what it reserves (workers.claims)."""
    assert celery_config(_settings(AGENTCRON_SYNC_CLAIM="main"))["worker_prefetch_multiplier"] == 1
    told = _settings(AGENTCRON_SYNC_CLAIM="main", AGENTCRON_SYNC_PREFETCH="2")
    assert celery_config(told)["worker_prefetch_multiplier"] == 2
    assert celery_config(_settings(AGENTCRON_SYNC_CLAIM="child"))["worker_prefetch_multiplier"] == 1


def test_claims_in_the_main_process_spawn_the_children() -> None:
    """The main process runs threads (the claims loop, its I/O): a child forked from it, when one
    is replaced, could inherit a lock another thread held."""
    assert celery_config(_settings(AGENTCRON_SYNC_CLAIM="main"))["worker_pool_start_method"] == "spawn"
    assert "worker_pool_start_method" not in celery_config(_settings())


def test_a_bad_claim_setting_stops_the_worker_naming_it() -> None:
    with pytest.raises(SystemExit, match="AGENTCRON_SYNC_CLAIM must be main or child"):
        celery_config(_settings(AGENTCRON_SYNC_CLAIM="parent"))
