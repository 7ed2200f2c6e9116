"""Production mode: what `carnet serve --production` refuses, the readiness probe, and ProxyFix."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from flask import request

from backend.tools import production
from backend.config import ConfigError
from backend.db import get_db
from backend.web import public
from tests.conftest import POSTGRES_URL, make_app, server_env

ROOT = Path(__file__).resolve().parents[1]
CARNET = [sys.executable, "-m", "backend.tools.cli"]
NO_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture
def fresh_apps():
    """Apps made for one test with their own settings; their pools are closed afterwards."""
    made = []

    def make(database_url, **overrides):
        made.append(make_app(database_url, **overrides))
        return made[-1]

    yield make
    for app in made:
        get_db(app).engine.dispose()


def production_config(**overrides):
    config = {"SQLALCHEMY_URL": "postgresql+psycopg://carnet@db/carnet", "TASK_QUEUE": "redis",
              "REDIS_URL": "redis://127.0.0.1:6379/0",
              "SECRET_KEY": "s" * 32, "MASTER_KEY": "k" * 44, "BLOB_STORE": "s3", "S3_BUCKET": "carnet"}
    config.update(overrides)
    return config


def test_a_complete_production_configuration_passes():
    production.check(production_config())


@pytest.mark.parametrize("overrides, says", [
    ({"SQLALCHEMY_URL": "sqlite:////srv/carnet.db"}, "PostgreSQL"),
    ({"TASK_QUEUE": "sqlite"}, "CARNET_TASK_QUEUE=redis"),
    ({"TASK_QUEUE": "immediate"}, "CARNET_TASK_QUEUE=redis"),
    ({"REDIS_URL": "http://127.0.0.1:6379"}, "CARNET_REDIS_URL"),
    ({"MASTER_KEY": None}, "CARNET_MASTER_KEY"),
    ({"DEBUG": True}, "DEBUG"),
    ({"BLOB_STORE": "file"}, "CARNET_BLOB_STORE=s3"),  # the instance folder is one machine's
])
def test_production_refuses_what_cannot_run_on_several_machines(overrides, says):
    with pytest.raises(ConfigError, match=says):
        production.check(production_config(**overrides))


def _serve_production(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CARNET, "serve", "--production", "--port", "1"], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_serve_production_refuses_sqlite_with_one_sentence(tmp_path):
    env = server_env(f"sqlite:///{tmp_path / 'carnet.db'}", CARNET_INSTANCE_PATH=str(tmp_path),
                     CARNET_TASK_QUEUE="redis")
    done = _serve_production(env)
    assert done.returncode == 2
    assert "production mode needs PostgreSQL" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL, reason="needs CARNET_TEST_POSTGRES_URL")
def test_serve_production_refuses_the_embedded_queue(tmp_path):
    env = server_env(POSTGRES_URL or "", CARNET_INSTANCE_PATH=str(tmp_path), CARNET_TASK_QUEUE="sqlite")
    done = _serve_production(env)
    assert done.returncode == 2 and "CARNET_TASK_QUEUE=redis" in done.stderr


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL, reason="needs CARNET_TEST_POSTGRES_URL")
def test_serve_production_fails_fast_when_redis_does_not_answer(tmp_path):
    env = server_env(POSTGRES_URL or "", CARNET_INSTANCE_PATH=str(tmp_path), CARNET_TASK_QUEUE="redis",
                     CARNET_REDIS_URL=NO_REDIS)
    done = _serve_production(env)
    assert done.returncode == 2
    assert "Redis does not answer" in done.stderr
    assert "127.0.0.1:1" not in done.stderr  # reasons are exception names, never addresses or credentials


def test_ready_checks_the_database(client):
    response = client.get("/api/ready")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "checks": {"database": "ok", "blobs": "ok"}}


def test_ready_says_unavailable_when_the_database_does_not_answer(database_url, fresh_apps):
    if not database_url.startswith("postgresql"):
        pytest.skip("an unreachable server is a PostgreSQL notion")
    app = fresh_apps("postgresql+psycopg://postgres@127.0.0.1:1/nothing")
    response = app.test_client().get("/api/ready")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "checks": {"database": "down"}}
    assert app.test_client().get("/api/health").status_code == 200  # liveness does not depend on it


def test_ready_checks_redis_when_the_queue_lives_there(database_url, fresh_apps):
    app = fresh_apps(database_url, TASK_QUEUE="redis", REDIS_URL=NO_REDIS)
    response = app.test_client().get("/api/ready")
    assert response.status_code == 503
    assert response.get_json()["checks"] == {"redis": "down"}


@pytest.mark.redis
@pytest.mark.skipif(not os.environ.get("CARNET_TEST_REDIS_URL"), reason="needs CARNET_TEST_REDIS_URL")
def test_ready_with_redis_up(database_url, fresh_apps):
    app = fresh_apps(database_url, TASK_QUEUE="redis", REDIS_URL=os.environ["CARNET_TEST_REDIS_URL"])
    response = app.test_client().get("/api/ready")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": "ok", "blobs": "ok", "redis": "ok"}


def test_ready_says_unavailable_when_the_blob_store_does_not_answer(database_url, fresh_apps):
    app = fresh_apps(database_url, BLOB_STORE="s3", S3_BUCKET="carnet", S3_ENDPOINT_URL="http://127.0.0.1:1",
                     S3_ACCESS_KEY_ID="nobody", S3_SECRET_ACCESS_KEY="nothing")  # nothing listens on port 1
    response = app.test_client().get("/api/ready")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "checks": {"blobs": "down"}}


def test_a_shared_blob_directory_is_accepted_in_production():
    production.check(production_config(BLOB_STORE="file", BLOB_DIR="/mnt/shared/carnet-blobs"))


def _address_app(fresh_apps, database_url: str, count: int):
    app = fresh_apps(database_url, PROXY_FIX_COUNT=count)

    @app.get("/api/test-address")
    @public
    def address() -> dict[str, str | None]:
        return {"remote_addr": request.remote_addr, "scheme": request.scheme, "host": request.host}

    return app


def test_proxy_fix_trusts_the_configured_proxies_only(database_url, fresh_apps):
    headers = {"X-Forwarded-For": "198.51.100.7, 203.0.113.9", "X-Forwarded-Proto": "https",
               "X-Forwarded-Host": "api.carnet.example"}
    behind_one = _address_app(fresh_apps, database_url, 1).test_client().get("/api/test-address", headers=headers,
                                                                 environ_base={"REMOTE_ADDR": "10.0.0.2"})
    # one proxy: its own entry (the last one) is the client; an address the client forged before it is not
    assert behind_one.get_json() == {"remote_addr": "203.0.113.9", "scheme": "https", "host": "api.carnet.example"}
    direct = _address_app(fresh_apps, database_url, 0).test_client().get("/api/test-address", headers=headers,
                                                             environ_base={"REMOTE_ADDR": "10.0.0.2"})
    assert direct.get_json() == {"remote_addr": "10.0.0.2", "scheme": "http", "host": "localhost"}


def test_a_negative_proxy_count_is_refused(database_url):  # refused before any engine exists
    with pytest.raises(ConfigError, match="PROXY_FIX_COUNT"):
        make_app(database_url, PROXY_FIX_COUNT=-1)


# --- the demo account -----------------------------------------------------------------------------------------

def _seed_demo(app) -> None:
    from backend.tools import demo
    from backend.db import get_session

    with app.app_context():
        demo.seed(get_session(), app.config)


def test_production_refuses_a_database_that_holds_the_demo_account(app):
    """`carnet demo` publishes the demo patient's password and TOTP seed: a production server on that
    database would let anyone in. The refusal is one sentence an operator can act on."""
    production.refuse_demo_data(app)  # an empty database is fine
    _seed_demo(app)
    with pytest.raises(ConfigError, match="holds the demo account") as refused:
        production.refuse_demo_data(app)
    assert "carnet demo" in str(refused.value)


def test_a_real_patient_with_the_demo_nir_is_not_the_demo_account(app, client):
    """The NIR alone says nothing (a real person may have it): the published credentials do."""
    from backend.tools.demo import DEMO_NIR
    from tests.helpers import activate, create_patient

    activate(client, create_patient(app, nir=DEMO_NIR))
    production.refuse_demo_data(app)


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL, reason="needs CARNET_TEST_POSTGRES_URL")
def test_serve_production_refuses_the_demo_database(app, database_url, tmp_path):
    if not database_url.startswith("postgresql"):
        pytest.skip("production mode runs on PostgreSQL only")
    _seed_demo(app)
    # checked before Redis is reached: no Redis needed to be refused
    env = server_env(database_url, CARNET_INSTANCE_PATH=str(tmp_path), CARNET_TASK_QUEUE="redis",
                     CARNET_REDIS_URL=NO_REDIS)
    done = _serve_production(env)
    assert done.returncode == 2, done.stderr[-500:]
    assert "holds the demo account" in done.stderr and "Traceback" not in done.stderr
