"""Alembic: the hand-written migration builds exactly the models' schema, idempotently."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from agentcron.ledger import Ledger
from agentcron.ledger.engine import create_engine_for
from agentcron.ledger.orm import Base
from agentcron.migrations import alembic_config, current_revision, upgrade
from tests.services import reset_postgres

EXPECTED_TABLES = {"runs", "schedules", "leases", "reports", "dead_letters", "run_logs",
                   "run_history", "force_grants",
                   "run_usage", "budget_alerts", "limit_slots", "limit_grants",
                   "deliveries"}
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> sqlalchemy.Engine:
    if request.param == "sqlite":
        return create_engine_for(f"sqlite:///{tmp_path / 'm.sqlite'}")
    url: str = request.getfixturevalue("postgres_url")
    reset_postgres(url)
    return create_engine_for(url)


def test_upgrade_twice_is_idempotent(engine: sqlalchemy.Engine) -> None:
    assert current_revision(engine) is None
    upgrade(engine)
    upgrade(engine)
    assert current_revision(engine) == HEAD
    engine.dispose()


def test_migrated_schema_matches_the_models(engine: sqlalchemy.Engine) -> None:
    upgrade(engine)
    inspector = sqlalchemy.inspect(engine)
    tables = set(inspector.get_table_names()) - {"alembic_version"}
    assert tables == set(Base.metadata.tables) == EXPECTED_TABLES
    for name, table in Base.metadata.tables.items():
        columns = {c["name"]: c["nullable"] for c in inspector.get_columns(name)}
        assert columns == {c.name: c.nullable for c in table.columns}, name
        indexes = {i["name"] for i in inspector.get_indexes(name)}
        assert indexes >= {i.name for i in table.indexes}, name
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    engine.dispose()


def test_sqlite_ledger_migrates_itself_and_creates_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "ledger.sqlite"
    ledger = Ledger(f"sqlite:///{path}")
    assert path.exists()
    assert current_revision(ledger.engine) == HEAD
    ledger.close()


def test_auto_migrate_false_leaves_the_database_alone(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.sqlite'}", auto_migrate=False)
    assert current_revision(ledger.engine) is None
    ledger.upgrade()
    assert current_revision(ledger.engine) == HEAD
    ledger.close()


def test_sqlite_connections_use_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'p.sqlite'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1
    engine.dispose()


def test_sqlite_write_transactions_begin_immediate(tmp_path: Path) -> None:
    """A second writer cannot even begin while the first holds its write transaction."""
    url = f"sqlite:///{tmp_path / 'i.sqlite'}"
    first = create_engine_for(url)
    second = create_engine_for(url, connect_args={"timeout": 0.05})
    with first.begin() as conn:
        conn.exec_driver_sql("SELECT 1")
        with pytest.raises(sqlalchemy.exc.OperationalError, match="locked"), second.begin():
            pass
    with second.begin() as conn:
        conn.exec_driver_sql("SELECT 1")
    first.dispose()
    second.dispose()


def test_threads_of_one_process_can_migrate_at_once(tmp_path: Path) -> None:
    """Alembic's context is per process: a worker's runtime and its dead-letter store migrate
    from two threads (this failed with "No context has been configured yet")."""
    from concurrent.futures import ThreadPoolExecutor

    engines = [create_engine_for(f"sqlite:///{tmp_path / f'm{n}.sqlite'}") for n in range(6)]
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(upgrade, engines))
    assert [current_revision(e) for e in engines] == [HEAD] * 6
    for engine in engines:
        engine.dispose()
