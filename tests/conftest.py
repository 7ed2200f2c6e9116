"""Fixtures: every database test runs on SQLite and, when CARNET_TEST_POSTGRES_URL is set (always in
CI), on PostgreSQL too. Each database is migrated with Alembic once per session and emptied between
tests; the task queue runs inline (immediate mode) unless a test says otherwise."""
from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, event, text

from backend import create_app
from backend import migrate as migrations
from backend.db import Base, get_db

TEST_SECRET = "test-secret-key-" + "x" * 16
TEST_MASTER_KEY = "dGVzdC1tYXN0ZXIta2V5LTMyLWJ5dGVzLWxvbmctLS0="  # base64 of 32 bytes, tests only


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    """Environment for a real `carnet` process (serve, worker) on the test database."""
    return {**os.environ, "CARNET_DATABASE_URL": database_url, "CARNET_SECRET_KEY": TEST_SECRET,
            "CARNET_MASTER_KEY": TEST_MASTER_KEY, **extra}
POSTGRES_URL = os.environ.get("CARNET_TEST_POSTGRES_URL")
IN_CI = os.environ.get("CI") == "true"
SHARED = Path(__file__).resolve().parents[2] / "shared"


def _backends() -> list[Any]:
    params: list[Any] = ["sqlite"]
    if POSTGRES_URL or IN_CI:
        params.append(pytest.param("postgresql", marks=pytest.mark.postgres))
    return params


def pg_url() -> str:
    if not POSTGRES_URL:
        pytest.fail("CI=true but CARNET_TEST_POSTGRES_URL is not set: the PostgreSQL tests must run in CI")
    url = POSTGRES_URL
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


@pytest.fixture(scope="session", params=_backends())
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated, empty database for the whole session (a SQLite file, or a fresh PostgreSQL schema)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'carnet.db'}"
        migrations.upgrade(url)
        yield url
        return
    base = pg_url()
    schema = f"carnet_test_{secrets.token_hex(4)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    url = f"{base}{sep}options=-csearch_path%3D{schema}"
    migrations.upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def make_app(database_url: str, **overrides: Any) -> Flask:
    config = {"TESTING": True, "SECRET_KEY": TEST_SECRET, "MASTER_KEY": TEST_MASTER_KEY,
              "DATABASE_URL": database_url, "TASK_QUEUE": "immediate",
              "RATELIMIT_STORAGE_URL": "memory://", "LOG_TRACEBACKS": False}
    config.update(overrides)
    return create_app(config)


@pytest.fixture(scope="session")
def session_app(database_url: str) -> Iterator[Flask]:
    app = make_app(database_url)
    yield app
    get_db(app).engine.dispose()  # type: ignore[union-attr]


def empty_database(app: Flask) -> None:
    engine = get_db(app).engine
    assert engine is not None
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f'DELETE FROM "{table}"'))
        conn.execute(text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :h)"), {"h": "0" * 64})


@pytest.fixture
def app(session_app: Flask) -> Iterator[Flask]:
    empty_database(session_app)
    session_app.extensions["carnet.throttle"].reset_all()
    from backend.tasks import configure_queue

    configure_queue(session_app)
    yield session_app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


@pytest.fixture
def db(app: Flask) -> Iterator[Any]:
    """A session of its own for direct checks. No app context is held open: requests must get theirs."""
    factory = get_db(app).session_factory
    assert factory is not None
    session = factory()
    yield session
    session.rollback()
    session.close()


class QueryCounter:
    def __init__(self) -> None:
        self.statements: list[str] = []

    @property
    def count(self) -> int:
        return len(self.statements)


@pytest.fixture
def count_queries(app: Flask) -> Iterator[QueryCounter]:
    engine = get_db(app).engine
    counter = QueryCounter()

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        counter.statements.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    yield counter
    event.remove(engine, "before_cursor_execute", before)


@pytest.fixture(autouse=True)
def _no_outside_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests may talk to this machine only (databases, Redis, the live backend)."""
    real_connect = socket.socket.connect

    def guarded(sock: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and address and isinstance(address[0], str):
            host = address[0]
            if not (host.startswith("127.") or host in {"localhost", "::1"}):
                raise RuntimeError(f"test tried to reach the network: {host}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
