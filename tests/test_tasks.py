"""The task queue: activation handlers run after commit; a real `carnet worker` consumes from Redis."""
import os
import subprocess
import sys
import time

import pytest
import redis
from sqlalchemy import select

from backend.db import get_db
from backend.notifications.models import OutboxEmail
from backend.tasks import configure_queue
from tests.conftest import IN_CI, make_app, server_env
from tests.helpers import activate, create_patient

REDIS_URL = os.environ.get("CARNET_TEST_REDIS_URL")


def test_a_rolled_back_activation_enqueues_nothing(app, db):
    from backend.accounts.hooks import schedule_activation_handlers
    from backend.accounts.models import Patient
    from backend.db import get_session

    created = create_patient(app, email="c@example.org")
    with app.app_context():
        session = get_session()
        schedule_activation_handlers(session, session.get(Patient, created.patient_id))
        session.rollback()
        session.commit()
    assert db.scalar(select(OutboxEmail.id).where(OutboxEmail.kind == "welcome")) is None


@pytest.mark.redis
def test_worker_consumes_activation_tasks_from_redis(database_url, tmp_path):
    if not REDIS_URL:
        if IN_CI:
            pytest.fail("CI=true but CARNET_TEST_REDIS_URL is not set")
        pytest.skip("CARNET_TEST_REDIS_URL not set (set it to run the Redis queue test)")
    redis.Redis.from_url(REDIS_URL).flushdb()
    app = make_app(database_url, TASK_QUEUE="redis", REDIS_URL=REDIS_URL)
    from tests.conftest import empty_database
    empty_database(app)
    env = server_env(database_url, CARNET_TASK_QUEUE="redis", CARNET_REDIS_URL=REDIS_URL,
                     CARNET_INSTANCE_PATH=str(tmp_path))
    worker = subprocess.Popen([sys.executable, "-m", "backend.tools.cli", "worker", "--workers", "1"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        created = create_patient(app, email="c@example.org")
        activate(app.test_client(), created)
        factory = get_db(app).session_factory
        deadline = time.monotonic() + 30
        found = None
        while time.monotonic() < deadline and found is None:
            with factory() as session:
                found = session.scalar(select(OutboxEmail.kind).where(OutboxEmail.patient_id == created.patient_id))
            time.sleep(0.2)
        assert found == "welcome", "the worker did not run the activation handler"
    finally:
        worker.terminate()
        output = worker.communicate(timeout=15)[0].decode()
        get_db(app).engine.dispose()
        configure_queue(app)  # leave nothing bound to Redis
    assert "Traceback" not in output, output
