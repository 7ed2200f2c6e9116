"""Fixtures: every database test runs on SQLite and, when CARNET_TEST_POSTGRES_URL is set (always in
CI), on PostgreSQL too. Each database is migrated with Alembic once per session and emptied between
tests; the task queue runs inline (immediate mode) unless a test says otherwise."""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, event, text

from backend import create_app
from backend import migrate as migrations
from backend.db import Base, get_db
from backend.notifications.loopback import LoopbackPushService
from backend.notifications.push import application_server_key, generate_vapid_private_pem
from backend.notifications.settings import NotificationSettings
from tests.fhir_helpers import make_pro
from tests.helpers import NIR_CAMILLE, NIR_LOUIS, Patient, activate, bearer, create_patient
from tests.messaging_support import PatientSide, World
from tests.notifications_support import SmtpHandler, configure, free_port


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``make test`` runs the suite on two pytest-xdist workers (``--dist loadgroup``); what shares one
    resource stays on one worker: the tests that use Redis (its numbered test databases, flushed), and each
    module that drives the app (a worker starts one Xvfb, one live backend and one Kivy window for its UI
    modules, and a module's tests follow one another)."""
    for item in items:
        if item.get_closest_marker("redis"):
            item.add_marker(pytest.mark.xdist_group("redis"))
        elif item.get_closest_marker("ui"):
            item.add_marker(pytest.mark.xdist_group(f"ui:{item.module.__name__}"))


TEST_SECRET = "test-secret-key-" + "x" * 16
TEST_MASTER_KEY = "dGVzdC1tYXN0ZXIta2V5LTMyLWJ5dGVzLWxvbmctLS0="  # base64 of 32 bytes, tests only


_BLOB_DIRS: dict[str, str] = {}


def blob_dir(database_url: str) -> str:
    """The blob directory that goes with a test database (its documents' bytes): one per database, so
    two databases of one run never share an object key."""
    if database_url not in _BLOB_DIRS:
        _BLOB_DIRS[database_url] = tempfile.mkdtemp(prefix="carnet-blobs-")
    return _BLOB_DIRS[database_url]


@pytest.fixture(scope="session", autouse=True)
def _remove_blob_dirs() -> Iterator[None]:
    yield
    for path in _BLOB_DIRS.values():
        shutil.rmtree(path, ignore_errors=True)


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    """Environment for a real `carnet` process (serve, worker) on the test database (and its blob store)."""
    return {**os.environ, "CARNET_DATABASE_URL": database_url, "CARNET_SECRET_KEY": TEST_SECRET,
            "CARNET_MASTER_KEY": TEST_MASTER_KEY, "CARNET_BLOB_STORE": "file",
            "CARNET_BLOB_DIR": blob_dir(database_url), **extra}
POSTGRES_URL = os.environ.get("CARNET_TEST_POSTGRES_URL")
IN_CI = os.environ.get("CI") == "true"


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


# Tests move the clock by hours and days around a session made once: with the real 30-minute idle timeout and
# 12-hour lifetime they would be signed out half-way. tests/test_security_sessions.py checks the real ones.
LONG_SESSIONS = {"SESSION_IDLE_MINUTES": 60 * 24 * 3650, "ACCESS_TOKEN_TTL_HOURS": 24 * 3650}


def make_app(database_url: str, **overrides: Any) -> Flask:
    config = {"TESTING": True, "SECRET_KEY": TEST_SECRET, "MASTER_KEY": TEST_MASTER_KEY,
              "DATABASE_URL": database_url, "TASK_QUEUE": "immediate",
              "LOG_TRACEBACKS": False, **LONG_SESSIONS}
    if "BLOB_STORE" not in overrides:
        config.update(BLOB_STORE="file", BLOB_DIR=blob_dir(database_url))
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
    empty_store(app.extensions["carnet.blobs"])


def empty_store(store: Any) -> None:
    """Remove every object (and leftover) of a test's blob store."""
    from backend.blobs import FileBlobStore

    if isinstance(store, FileBlobStore):
        if store.root.exists():
            for child in store.root.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        return
    keys = [info.key for info in store.list()]
    if keys:
        store.client.delete_objects(Bucket=store.bucket,
                                    Delete={"Objects": [{"Key": store.prefix + k} for k in keys]})


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


@pytest.fixture(scope="session")
def s3_server() -> Iterator[Any]:
    """A real S3-compatible server (SeaweedFS) on loopback for the session (tests/s3_server.py)."""
    from tests import s3_server as s3

    try:
        server = s3.start()
    except RuntimeError as exc:
        if IN_CI:
            pytest.fail(f"CI=true: the S3 tests must run: {exc}")
        pytest.skip(str(exc))
    yield server
    server.stop()


# --- notifications: a VAPID key, the loopback push service, a real SMTP server (tests/notifications_support.py)

@pytest.fixture(scope="session")
def vapid_pem() -> str:
    """The server's VAPID private key (PEM), one for the session."""
    return generate_vapid_private_pem()


@pytest.fixture
def push_service(vapid_pem: str) -> Any:
    """The loopback Web Push service, checking our VAPID signature (backend/notifications/loopback.py)."""
    with LoopbackPushService(application_server_key(vapid_pem)) as service:
        yield service


@pytest.fixture
def smtp_server() -> Any:
    """A real SMTP server on 127.0.0.1 (aiosmtpd); its handler records and refuses as told."""
    handler = SmtpHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


@pytest.fixture
def push_enabled(app: Any, monkeypatch: pytest.MonkeyPatch, vapid_pem: str) -> NotificationSettings:
    """Web Push switched on for one test, plain HTTP allowed (the loopback push service)."""
    return configure(app, monkeypatch, vapid_private_key=vapid_pem, push_allow_http=True)


# --- signed-in patients ---------------------------------------------------------------------------------------

@pytest.fixture
def camille(app, client) -> Patient:
    """Camille Martin, signed in (a module may define its own `camille`)."""
    created = create_patient(app)
    tokens = activate(client, created)
    return Patient(created.patient_id, bearer(tokens["access_token"]), created.nir, tokens["secret"])


@pytest.fixture
def louis(app, client) -> Patient:
    """Louis Bernard, another patient, signed in."""
    created = create_patient(app, nir=NIR_LOUIS, birth_date="1990-02-01", family="Bernard", given="Louis", sex="M")
    tokens = activate(client, created)
    return Patient(created.patient_id, bearer(tokens["access_token"]), created.nir, tokens["secret"])


@pytest.fixture
def world(app, client) -> World:
    """The inbox's world (tests/messaging_support.py): Camille and Louis signed in, Drs Durand, Petit and Moreau
    (the access and catalogue tests define a `world` of their own)."""
    camille = create_patient(app)
    louis = create_patient(app, nir=NIR_LOUIS, birth_date="1990-02-01", family="Bernard", given="Louis", sex="M")
    return World(
        PatientSide(camille.patient_id, NIR_CAMILLE, bearer(activate(client, camille)["access_token"])),
        PatientSide(louis.patient_id, NIR_LOUIS, bearer(activate(client, louis)["access_token"])),
        make_pro(app, "10000000001", family="Durand", given="Alice"),
        make_pro(app, "10000000002", family="Petit", given="Hélène"),
        make_pro(app, "10000000003", family="Moreau", given="Yves"))
