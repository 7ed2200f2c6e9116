"""Faults injected into real components, and what must survive them: nothing half-written, clean errors,
recovery without a hand on the server.

- A real `carnet serve` is killed (SIGKILL, whole process group) while bookings are inside their
  transaction, then restarted: no appointment without its slot hold, reminders and audit entry, nothing
  of the killed bookings, the audit chain intact, and the slot bookable again.
- PostgreSQL (an instance of our own, in a temporary folder on a free port: never the shared cluster) is
  stopped and started again under load: while it is away, a 503 problem+json, never a 500 nor a dropped
  connection; after, the same server answers again (pool pre-ping); no deposit half-written.
- A request's database connection is cut mid-transaction (pg_terminate_backend): a 503 problem+json,
  nothing written, and the next request works.

The kill -9 during a legacy import is tests/test_migration_crash.py.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import Engine

from backend.agenda.models import Appointment, Reminder, SlotHold
from backend.audit import service as audit
from backend.audit.models import AuditEntry
from backend import blobs
from backend.records.documents.models import Document
from bench.soak import LiveServer, free_port, sign_up
from tests.agenda.support import make_pro, publish, schedule_body
from tests.conftest import blob_dir, server_env
from tests.helpers import create_patient, make_nir

PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))


def _engine(url: str) -> Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return create_engine(url, hide_parameters=True)


def _stored_documents(url: str) -> set[int]:
    """The ids of the documents whose bytes are in the live server's blob store."""
    store = blobs.FileBlobStore(blob_dir(url))
    return {parsed[1] for info in store.list("documents/") if (parsed := blobs.parse_key(info.key))}


def _count(engine: Engine, model: Any) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(model)) or 0


@contextmanager
def audit_lock(engine: Engine) -> Iterator[None]:
    """Hold the audit chain's head: every write that records an audit entry waits there, inside its
    transaction, after its other writes."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT 1 FROM audit_head WHERE id = 1 FOR UPDATE"))
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # SQLite: the single write lock
        try:
            yield
        finally:
            conn.rollback()


def wait_for(condition: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def waiting_on_locks(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                "AND datname = current_database()")) or 0


def fire(calls: list[Any]) -> tuple[list[Any], list[threading.Thread]]:
    """Start each call in its own thread; results land in the list (a response or the exception)."""
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            results[i] = calls[i]()
        except Exception as exc:  # the server died: surfaced to the caller
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    return results, threads


def assert_problem_503(response: requests.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "service_unavailable" and body["detail"]


# --- kill -9 during a booking --------------------------------------------------------------------------

def test_kill_9_during_bookings_leaves_no_half_written_booking(app, client, database_url, tmp_path):
    pro = make_pro(app)
    publish(client, pro, schedule_body())  # weekdays 9:00–12:00 every week
    env = server_env(database_url, CARNET_INSTANCE_PATH=str(tmp_path / "instance"), CARNET_TASK_QUEUE="immediate")
    engine = _engine(database_url)
    server = LiveServer(env, tmp_path / "server.log").start()
    try:
        patients = []
        for i in range(3):
            created = create_patient(app, make_nir(f"28407751230{i:02d}"))
            patients.append(sign_up(env, server.url, created.nir, activation_code=created.code)[0])
        tomorrow = (dt.date.today() + dt.timedelta(days=7)).isoformat()
        found = requests.get(f"{server.url}/api/v1/agenda/slots", headers=patients[0], timeout=30,
                             params={"professional_id": pro.id, "date": tomorrow, "days": 7, "limit": 20}).json()
        slot_ids = [s["slot_id"] for s in found["items"]]
        assert len(slot_ids) >= 6, found
        audit_before = _count(engine, AuditEntry)

        # three bookings inside their transaction (held at the audit head), then the server is killed
        calls = [lambda h=h, s=s: requests.post(f"{server.url}/api/v1/agenda/appointments", json={"slot_id": s},
                                                headers=h, timeout=60)
                 for h, s in zip(patients, slot_ids[:3])]
        with audit_lock(engine):
            results, threads = fire(calls)
            if engine.dialect.name == "postgresql":
                wait_for(lambda: waiting_on_locks(engine) >= 3, "the bookings to wait inside their transaction")
            else:
                time.sleep(1.0)  # SQLite: they wait for the write lock (busy_timeout), no way to observe it
            server.kill9()
        for t in threads:
            t.join(timeout=60)
        assert all(isinstance(r, requests.RequestException) for r in results), results

        # nothing of them is in the database
        assert _count(engine, Appointment) == 0 and _count(engine, SlotHold) == 0 and _count(engine, Reminder) == 0
        assert _count(engine, AuditEntry) == audit_before

        # restarted, the same slots are free and a booking goes through whole
        server.start()
        r = requests.post(f"{server.url}/api/v1/agenda/appointments", json={"slot_id": slot_ids[0]},
                          headers=patients[1], timeout=60)
        assert r.status_code == 201, r.text
        # then kills at random moments of a burst of bookings: each booking is there whole or not at all
        for round_ in range(2):
            burst = [lambda h=h, s=s: requests.post(f"{server.url}/api/v1/agenda/appointments",
                                                    json={"slot_id": s}, headers=h, timeout=60)
                     for h, s in zip(patients * 2, slot_ids[1:])]
            results, threads = fire(burst)
            time.sleep(0.05 + 0.1 * round_)
            server.kill9()
            for t in threads:
                t.join(timeout=60)
            server.start()
        check_bookings_whole(engine)
        with engine.connect() as conn:
            from sqlalchemy.orm import Session

            assert audit.verify(Session(bind=conn)).ok
    finally:
        server.stop()
        engine.dispose()


def check_bookings_whole(engine: Engine) -> None:
    """Every booked appointment has its slot hold, its reminders and its audit entry; no orphan hold."""
    with engine.connect() as conn:
        booked = set(conn.execute(select(Appointment.id).where(Appointment.kind == "booking",
                                                               Appointment.status == "booked")).scalars())
        held = conn.execute(select(SlotHold.appointment_id)).scalars().all()
        reminded = set(conn.execute(select(Reminder.appointment_id)).scalars())
        audited = conn.scalar(select(func.count()).select_from(AuditEntry)
                              .where(AuditEntry.action == "agenda.appointment_booked"))
    assert sorted(held) == sorted(booked), "a slot hold without its booking, or the reverse"
    assert booked <= reminded, "a booking without its reminders"
    assert audited == len(booked), "a booking without its audit entry, or an entry without its booking"


# --- our own PostgreSQL, restarted under load ------------------------------------------------------------

class OwnPostgres:
    """A throwaway PostgreSQL cluster in a temporary folder, on a free loopback port."""

    def __init__(self) -> None:
        self.bin = PG_BIN[-1].parent
        self.root = Path(tempfile.mkdtemp(prefix="carnet-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0  # initdb refuses root
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")

    def run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> OwnPostgres:
        self.run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self.start()
        admin = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres",
                              isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE carnet"))
        admin.dispose()
        return self

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/carnet"

    def start(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-t", "60", "-o",
                 f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off", "start")

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def destroy(self) -> None:
        try:
            self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    if not PG_BIN:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL's binaries (/usr/lib/postgresql/*/bin) are required in CI")
        pytest.skip("PostgreSQL's binaries are not installed")
    pg = OwnPostgres().init()
    try:
        from backend import migrate

        migrate.upgrade("postgresql+psycopg://" + pg.url.split("://", 1)[1])
        yield pg
    finally:
        pg.destroy()


@pytest.mark.postgres
def test_postgresql_restarted_under_load(own_postgres: OwnPostgres, tmp_path: Path) -> None:
    env = server_env(own_postgres.url, CARNET_INSTANCE_PATH=str(tmp_path / "instance"), CARNET_TASK_QUEUE="immediate")
    engine = _engine(own_postgres.url)
    server = LiveServer(env, tmp_path / "server.log", workers=2).start()
    seen: dict[str, list[Any]] = {"before": [], "down": [], "after": []}
    created: list[int] = []
    phase = ["before"]
    stop = threading.Event()
    try:
        headers, _ = sign_up(env, server.url, make_nir("2840775123456"))

        def load(n: int) -> None:
            http = requests.Session()
            i = 0
            while not stop.is_set():
                i += 1
                current = phase[0]
                try:
                    if i % 3 == 0:
                        r = http.post(f"{server.url}/api/v1/record/documents", headers=headers, timeout=30,
                                      files={"file": ("n.txt", f"note {n}-{i}\n".encode(), "text/plain")})
                        if r.status_code == 201:
                            created.append(r.json()["id"])
                    else:
                        r = http.get(f"{server.url}/api/v1/record/documents", headers=headers, timeout=30)
                    seen[current].append((r.status_code, r.headers.get("Content-Type", ""), r.text[:200]))
                except requests.RequestException as exc:
                    seen[current].append((f"error:{type(exc).__name__}", "", ""))

        threads = [threading.Thread(target=load, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        wait_for(lambda: len(seen["before"]) >= 10, "load before the restart")
        phase[0] = "down"
        own_postgres.stop()
        wait_for(lambda: sum(1 for s in seen["down"] if s[0] == 503) >= 3, "clean refusals while the database is down")
        own_postgres.start()
        phase[0] = "after"
        wait_for(lambda: sum(1 for s in seen["after"] if s[0] in (200, 201)) >= 10, "recovery after the restart")
        stop.set()
        for t in threads:
            t.join(timeout=60)

        for phase_name, outcomes in seen.items():
            for status, content_type, body in outcomes:
                assert status in (200, 201, 503), (phase_name, status, body)
                if status == 503:
                    assert content_type.startswith("application/problem+json"), body
        assert server.process is not None and server.process.poll() is None, "the server itself went down"
        # every deposit answered 201 is there, whole; none is half-written
        with engine.connect() as conn:
            docs = set(conn.execute(select(Document.id)).scalars())
        contents = _stored_documents(own_postgres.url)
        assert set(created) <= docs
        # a row never points to a missing object; an object without a row (its transaction rolled back
        # when PostgreSQL stopped) is an orphan for `carnet blobs sweep`
        assert docs <= contents, "a document without its content"
    finally:
        stop.set()
        server.stop()
        engine.dispose()


@pytest.mark.postgres
def test_connection_cut_mid_request_is_a_clean_503_and_writes_nothing(own_postgres: OwnPostgres,
                                                                       tmp_path: Path) -> None:
    env = server_env(own_postgres.url, CARNET_INSTANCE_PATH=str(tmp_path / "instance"), CARNET_TASK_QUEUE="immediate")
    engine = _engine(own_postgres.url)
    server = LiveServer(env, tmp_path / "server.log").start()
    try:
        headers, _ = sign_up(env, server.url, make_nir("2840775123457"))
        before = (_count(engine, Document), _stored_documents(own_postgres.url), _count(engine, AuditEntry))
        deposit = lambda: requests.post(f"{server.url}/api/v1/record/documents", headers=headers, timeout=60,  # noqa: E731
                                        files={"file": ("cut.txt", b"coupure en cours de route\n", "text/plain")})
        with audit_lock(engine):
            results, threads = fire([deposit])
            wait_for(lambda: waiting_on_locks(engine) >= 1, "the deposit to wait inside its transaction")
            with engine.connect() as conn:
                cut = conn.scalar(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                       "WHERE wait_event_type = 'Lock' AND datname = current_database()"))
            assert cut == 1
        threads[0].join(timeout=60)
        assert_problem_503(results[0])
        assert (_count(engine, Document), _count(engine, AuditEntry)) == (before[0], before[2])
        # its bytes had been put in the store before the commit that never came: one orphan, no row;
        # the sweep removes it and nothing else
        orphans = _stored_documents(own_postgres.url) - before[1]
        assert len(orphans) == 1
        report = blobs.sweep(engine, blobs.FileBlobStore(blob_dir(own_postgres.url)), grace=dt.timedelta(0))
        assert report.deleted == 1 and _stored_documents(own_postgres.url) == before[1]
        # the pool drops the dead connection: the next request goes through
        r = deposit()
        assert r.status_code == 201, r.text
        assert _count(engine, Document) == before[0] + 1
    finally:
        server.stop()
        engine.dispose()


def test_a_connection_lost_at_the_requests_end_keeps_its_answer(app, monkeypatch):
    """The database restarted under a request: closing its session fails on the dead connection after the
    answer was made. The request's teardown swallows that (the answer stands, not the server's HTML 500)
    and invalidates the connection instead of returning it to the pool."""
    from sqlalchemy.exc import OperationalError

    from backend.db import Database, get_session

    invalidated = []

    def lost() -> None:
        raise OperationalError("ROLLBACK", {}, Exception("server closed the connection unexpectedly"))

    with app.app_context():
        session = get_session()
        monkeypatch.setattr(session, "rollback", lost)
        monkeypatch.setattr(session, "invalidate", lambda: invalidated.append(True))
        Database._close_session(RuntimeError("the request failed"))  # raises nothing
    assert invalidated == [True]
