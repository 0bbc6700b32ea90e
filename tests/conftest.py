"""Shared fixtures. Storage tests take ``db_engine``, which runs each test on SQLite and on PostgreSQL.

Each PostgreSQL test gets its own schema (search_path), so tests and engineers running the suite at the
same time never see each other's rows, and dropping the schema cleans up everything at once.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from bot.settings import DEFAULT_PROGRAMME
from core.clock import LOCAL_TZ, FixedClock
from core.programme import Programme, load_programme
from storage.db import create_all, make_engine

PG_URL = os.environ.get("FIELDBOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _postgres_available() -> bool:
    try:
        eng = create_engine(PG_URL, connect_args={"connect_timeout": 2})
        with eng.connect() as conn:
            conn.execute(text("SELECT 1"))
        eng.dispose()
        return True
    except Exception:
        return False


_PG_OK: bool | None = None


def require_postgres() -> None:
    global _PG_OK
    if _PG_OK is None:
        _PG_OK = _postgres_available()
    if not _PG_OK:
        # CI starts PostgreSQL; a developer without it still gets the SQLite half of the suite.
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_URL}")
        pytest.skip("PostgreSQL not reachable")


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'fieldbot.db'}"


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose connections live in a fresh, private schema."""
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    return request.getfixturevalue("pg_schema_url")


@pytest.fixture
def db_engine(db_url: str) -> Iterator[Engine]:
    """A fresh schema from the models, on SQLite and on PostgreSQL."""
    engine = make_engine(db_url)
    create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """SQLite only: for engine and form tests where the database is not the subject."""
    engine = make_engine(sqlite_url(tmp_path))
    create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def programme() -> Programme:
    return load_programme(DEFAULT_PROGRAMME)


@pytest.fixture
def clock() -> FixedClock:
    """17/11/2021 08:00 in Thủ Dầu Một: the day the district's letter was signed."""
    return FixedClock(datetime(2021, 11, 17, 8, 0, tzinfo=LOCAL_TZ))


@pytest.fixture
def world(db_engine: Engine, clock: FixedClock):
    from tests.factories import seed_world

    return seed_world(db_engine, now=clock.now())


@pytest.fixture
def sqlite_world(sqlite_engine: Engine, clock: FixedClock):
    from tests.factories import seed_world

    return seed_world(sqlite_engine, now=clock.now())


@pytest.fixture(autouse=True)
def _restore_logging():
    """`fieldbot` commands called in-process install a stderr handler; pytest closes that stream later."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
