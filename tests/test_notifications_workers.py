"""The jobs on real queue consumers: two `carnet worker` processes on Redis (db 14, CI runs it) sharing
the same due items, the embedded SQLite queue of `make run`, and the operators' commands."""
from __future__ import annotations

import base64
import datetime as dt
import json
import os
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from backend import migrate as migrations
from backend.db import get_db, get_session
from backend.notifications import service as notifications
from backend.notifications.loopback import LoopbackPushService
from backend.notifications.models import Notification, PushDelivery
from backend.notifications.push import application_server_key
from backend.tasks import configure_queue
from tests.conftest import IN_CI, TEST_SECRET, empty_database, make_app
from tests.notifications_support import signed_in, subscribe

MASTER_KEY = base64.b64encode(os.urandom(32)).decode()  # the worker is a production-like process
REDIS_URL = os.environ.get("CARNET_TEST_NOTIF_REDIS_URL", "redis://127.0.0.1:6379/14")


def worker_env(database_url: str, instance: Path, pem: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "CARNET_DATABASE_URL": database_url, "CARNET_SECRET_KEY": TEST_SECRET,
            "CARNET_MASTER_KEY": MASTER_KEY, "CARNET_INSTANCE_PATH": str(instance), "CARNET_VAPID_PRIVATE_KEY": pem, "CARNET_PUSH_ALLOW_HTTP": "true",
            **extra}


def start_worker(env: dict[str, str], threads: int = 2, periodic: bool = True) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "backend.tools.cli", "worker", "--workers", str(threads),
                             "--periodic" if periodic else "--no-periodic"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def stop_workers(workers: list[subprocess.Popen]) -> str:
    for w in workers:
        w.terminate()
    return "".join(w.communicate(timeout=20)[0].decode() for w in workers)


def redis_or_skip() -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError:
        if IN_CI:
            pytest.fail(f"CI=true but Redis does not answer at {REDIS_URL}: the Redis job test must run in CI")
        pytest.skip(f"Redis does not answer at {REDIS_URL} (set CARNET_TEST_NOTIF_REDIS_URL)")


@pytest.mark.redis
def test_two_redis_workers_deliver_each_due_notification_once(app, database_url, tmp_path, vapid_pem):
    redis_or_skip()
    redis.Redis.from_url(REDIS_URL).flushdb()
    env = worker_env(database_url, tmp_path, vapid_pem, CARNET_TASK_QUEUE="redis", CARNET_REDIS_URL=REDIS_URL)
    redis_app = make_app(database_url, TASK_QUEUE="redis", REDIS_URL=REDIS_URL, VAPID_PRIVATE_KEY=vapid_pem,
                         PUSH_ALLOW_HTTP=True)
    workers: list[subprocess.Popen] = []
    factory = get_db(redis_app).session_factory
    try:
        with LoopbackPushService(application_server_key(vapid_pem)) as service:
            # without the periodic schedule: its every-minute delivery would otherwise take the due records
            # below when a minute turns between their commit and the six jobs (seen once in CI: the six
            # reported 0 dispatched), and the race under test would not be run
            workers = [start_worker(env, periodic=False), start_worker(env, periodic=False)]
            client = redis_app.test_client()
            device = signed_in(redis_app, client, email=None)
            endpoint, _ = subscribe(client, device, service)

            # 1. a record committed by a feature goes onto the Redis queue and out through a worker
            with redis_app.app_context():
                session = get_session()
                first = notifications.notify(session, device.patient_id, "message").public_id
                session.commit()
            assert [m.json()["id"] for m in service.wait_for(1, timeout=60)] == [first]

            # 2. due records nobody dispatched yet, and the deliver job enqueued six times: four consumer
            #    threads in two processes race on them
            past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
            with factory() as session:
                rows = [Notification(patient_id=device.patient_id, kind="document", created_at=past)
                        for _ in range(30)]
                session.add_all(rows)
                session.commit()
                expected = {first} | {r.public_id for r in rows}
            from backend.notifications.tasks import run_job

            results = [run_job("deliver") for _ in range(6)]
            reports = [r.get(blocking=True, timeout=90) for r in results]
            assert sum(r["dispatched"] for r in reports) == 30
            received = Counter(m.json()["id"] for m in service.messages(endpoint))
            assert set(received) == expected and set(received.values()) == {1}
            with factory() as session:
                assert set(session.scalars(select(PushDelivery.status))) == {"sent"}
                assert set(session.scalars(select(PushDelivery.attempts))) == {1}
    finally:
        output = stop_workers(workers)
        get_db(redis_app).engine.dispose()
        configure_queue(app)  # leave the queue immediate and bound to the test app
        empty_database(app)
    assert "Traceback" not in output, output
    assert output.count("Periodic tasks are disabled.") == 2, output  # `carnet worker --no-periodic`, twice


def test_the_embedded_sqlite_queue_of_make_run_delivers(tmp_path, monkeypatch, vapid_pem):
    """`make run` serves with the embedded queue: a SQLite file in the instance folder, one worker."""
    from backend import tasks

    bound = tasks._bound.app
    url = f"sqlite:///{tmp_path / 'carnet.db'}"
    migrations.upgrade(url)
    monkeypatch.setenv("CARNET_INSTANCE_PATH", str(tmp_path))
    local = make_app(url, TASK_QUEUE="sqlite", VAPID_PRIVATE_KEY=vapid_pem, PUSH_ALLOW_HTTP=True)
    assert Path(local.instance_path) == tmp_path
    workers: list[subprocess.Popen] = []
    try:
        with LoopbackPushService(application_server_key(vapid_pem)) as service:
            workers = [start_worker(worker_env(url, tmp_path, vapid_pem, CARNET_TASK_QUEUE="sqlite"), threads=1)]
            client = local.test_client()
            device = signed_in(local, client, email=None)
            subscribe(client, device, service)
            with local.app_context():
                session = get_session()
                public_id = notifications.notify(session, device.patient_id, "emergency_access").public_id
                session.commit()
            [message] = service.wait_for(1, timeout=60)
            assert message.json() == {"v": 1, "kind": "emergency_access", "id": public_id}
            assert (tmp_path / "queue.db").is_file()
    finally:
        output = stop_workers(workers)
        get_db(local).engine.dispose()
        if bound is not None:
            configure_queue(bound)  # leave the queue immediate and bound to the test app
    assert "Traceback" not in output, output
    assert "Periodic tasks are enabled." in output, output  # what `make run` starts schedules the jobs


# --- commands ------------------------------------------------------------------------------------------

def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str, **config: str):
    """Run `carnet ARGS` in-process against an app whose instance folder is ``tmp_path``."""
    from backend import tasks

    bound = tasks._bound.app
    monkeypatch.setenv("CARNET_INSTANCE_PATH", str(tmp_path))
    local = make_app(f"sqlite:///{tmp_path / 'cli.db'}", **config)
    try:
        return local.test_cli_runner().invoke(args=list(args))
    finally:
        get_db(local).engine.dispose()
        tasks._bound.app = bound  # creating an app binds the queue to it: give it back


def test_push_keys_creates_the_pair_once_and_keeps_it(tmp_path, monkeypatch):
    first = cli(tmp_path, monkeypatch, "push", "keys")
    assert first.exit_code == 0, first.output
    out = json.loads(first.stdout)
    key_file = tmp_path / "vapid_private.pem"
    assert out["created"] is True and out["private_key"] == str(key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert out["public_key"] == application_server_key(key_file.read_text())
    assert len(out["public_key"]) == 87  # 65-byte uncompressed P-256 point in base64url

    again = cli(tmp_path, monkeypatch, "push", "keys")
    assert again.exit_code == 0 and json.loads(again.stdout) == {**out, "created": False}
    assert "keeping it" in again.stderr
    shown = cli(tmp_path, monkeypatch, "push", "keys", "--show")
    assert json.loads(shown.stdout)["public_key"] == out["public_key"]
    # an app configured from that folder pushes with that key
    from backend.notifications.settings import DEFAULTS, load_vapid_private_key

    assert load_vapid_private_key(DEFAULTS, str(tmp_path)) == key_file.read_text().strip()


def test_push_keys_show_the_key_from_the_environment(tmp_path, monkeypatch, vapid_pem):
    result = cli(tmp_path, monkeypatch, "push", "keys", "--show", VAPID_PRIVATE_KEY=vapid_pem)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"public_key": application_server_key(vapid_pem),
                                         "private_key": "CARNET_VAPID_PRIVATE_KEY", "created": False}
    assert not (tmp_path / "vapid_private.pem").exists()
    missing = cli(tmp_path / "other", monkeypatch, "push", "keys", "--show")
    assert missing.exit_code != 0 and "carnet push keys" in missing.stderr


def test_notifications_commands(runner):
    result = runner.invoke(args=["notifications", "jobs"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)["jobs"]
    # other features may add their own jobs to the registry
    assert {"activation_expiry", "deliver", "reminders", "retention_purge"} <= set(listed) and listed == sorted(listed)
    result = runner.invoke(args=["notifications", "run", "deliver"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["job"] == "deliver"
    result = runner.invoke(args=["notifications", "run", "nothing"])
    assert result.exit_code != 0 and "unknown job" in result.output
