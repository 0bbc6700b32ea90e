"""One engine per process, sessions per unit of work, migrations on start.

SQLite is the embedded default (WAL so readers never block the writer, foreign keys on, a busy timeout so a
second writer waits instead of failing); PostgreSQL takes over when a deployment outgrows one file. The
same models and queries serve both.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, SQLModel

import storage.access_log
import storage.models  # noqa: F401  (registers the tables on SQLModel.metadata)

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 5000


class DatabaseUnavailable(Exception):
    """The database cannot be reached or opened; the message is one line for the operator."""


def make_engine(url: str, *, echo: bool = False, pool_size: int = 5, max_overflow: int = 5) -> Engine:
    """PostgreSQL: at most ``pool_size + max_overflow`` connections per process (docs/deploy.md sizes them
    against ``max_connections``); SQLite ignores both."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    # pre_ping: a restarted PostgreSQL leaves dead pooled connections; replace them instead of failing.
    engine = create_engine(parsed, echo=echo, pool_pre_ping=True, pool_size=pool_size, max_overflow=max_overflow)
    if parsed.get_driver_name() == "psycopg":
        # The dialect's ping is a SELECT 1: one of a conversation step's four round trips (issue 18). An idle
        # connection has nothing to read, so looking at its socket tells the same without asking the server.
        engine.dialect.do_ping = _idle_connection_alive
    return engine


def _idle_connection_alive(dbapi_connection) -> bool:
    """The pool's liveness check on checkout, without a round trip. A server that restarted or terminated
    the backend sent its FATAL message and closed the socket, so the socket of an idle connection is
    readable; anything readable on an idle connection is treated as dead (a fresh one costs a connect, never
    a wrong answer). Returning False makes SQLAlchemy invalidate the whole pool, as its own ping does. A host
    that vanished without closing the socket is caught by the step's error handling either way."""
    import select

    from psycopg.pq import ConnStatus, TransactionStatus

    if dbapi_connection.closed or dbapi_connection.broken:
        return False
    pgconn = dbapi_connection.pgconn
    if pgconn.status != ConnStatus.OK or pgconn.transaction_status != TransactionStatus.IDLE:
        return False
    try:
        readable, _, _ = select.select([pgconn.socket], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable across a process crash, fast commits
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.close()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def check_connection(engine: Engine) -> None:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseUnavailable(
            f"Không kết nối được cơ sở dữ liệu {engine.url.render_as_string(hide_password=True)}: {reason}"
        ) from None


def alembic_config(engine: Engine):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply the migrations (what `fieldbot db upgrade` and start-up run)."""
    from alembic import command

    check_connection(engine)
    command.upgrade(alembic_config(engine), revision)


def refresh_statistics(engine: Engine) -> None:
    """The query planner's statistics. PostgreSQL's autovacuum keeps them; SQLite has nothing that does, and
    without them it reads a province's pupils through ix_student_school_status and the table (~190 ms)
    instead of the covering ix_student_summary (~100 ms). ANALYZE with a sample limit takes milliseconds."""
    if engine.dialect.name != "sqlite":
        return
    with engine.begin() as conn:
        conn.execute(text("PRAGMA analysis_limit=1000"))
        conn.execute(text("ANALYZE"))


def create_all(engine: Engine) -> None:
    """Schema straight from the models: for tests and benchmarks that do not test migrations."""
    SQLModel.metadata.create_all(engine)


def drop_all(engine: Engine) -> None:
    SQLModel.metadata.drop_all(engine)
    with engine.begin() as conn:
        if "alembic_version" in inspect(conn).get_table_names():
            conn.execute(text("DROP TABLE alembic_version"))
