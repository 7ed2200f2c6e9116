"""Production mode: what a web worker needs behind a load balancer, and the checks that refuse to serve
otherwise.

- ``init_app`` (every app): the readiness probe ``GET /api/ready`` (the database answers, and Redis when
  the queue lives there) beside the liveness probe ``/api/health``; and, when
  ``CARNET_PROXY_FIX_COUNT`` > 0, werkzeug's ProxyFix trusting that many proxies' ``X-Forwarded-*``
  headers, so the client address that the per-address throttling counts is the patient's, not the load
  balancer's.
- ``check`` / ``prepare_server`` (``carnet serve --production``): PostgreSQL, Redis for the queue, a real
  secret and master key, and a database without the demo account (its password and one-time-code seed are
  published in the source); every dependency reached once before gunicorn forks, so a misconfigured machine
  fails at start-up with one clear sentence instead of on its first request. The failed-attempt counters
  live in the database (``backend.throttle``), shared by every worker without further setup.

Deployment is described in ``docs/deploy.md``.
"""
from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask, Response, current_app, jsonify
from sqlalchemy import select, text

from backend.config import ConfigError

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    # Number of proxies in front of the app whose X-Forwarded-For/-Proto/-Host/-Port/-Prefix are trusted
    # (0: none, the development default; 1: one load balancer). Never more than really stand in front:
    # a client could otherwise forge its own address.
    "PROXY_FIX_COUNT": 0,
}

REDIS_SCHEMES = ("redis://", "rediss://", "redis+sentinel://", "redis+cluster://", "unix://")


def init_app(app: Flask) -> None:
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)
    count = int(app.config["PROXY_FIX_COUNT"] or 0)
    if count < 0:
        raise ConfigError("CARNET_PROXY_FIX_COUNT must be 0 or more.")
    if count:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count,  # type: ignore[method-assign]
                                x_port=count, x_prefix=count)
    _register_ready(app)
    from backend.tools.benchseed import bench_group

    app.cli.add_command(bench_group)  # `carnet bench seed`: benchmark data (docs/deploy.md)


def _register_ready(app: Flask) -> None:
    from backend.web import public

    @app.get("/api/ready")
    @public
    def ready() -> Response:
        """Readiness: 200 when the database (and Redis, when used) answer; 503 otherwise. For the load
        balancer, which stops sending requests to a worker that cannot reach them."""
        problems = dependency_problems(current_app)
        if problems:
            response = jsonify(status="unavailable", checks={name: "down" for name in problems})
            response.status_code = 503
            return response
        return jsonify(status="ok", checks={name: "ok" for name in _checked(current_app)})


def _checked(app: Flask) -> list[str]:
    names = ["database", "blobs"]
    if _uses_redis(app.config):
        names.append("redis")
    return names


def _uses_redis(config: Any) -> bool:
    return config["TASK_QUEUE"] == "redis"


def dependency_problems(app: Flask) -> dict[str, str]:
    """{"database" | "redis": reason} for each dependency that does not answer; empty when all do.
    Reasons are exception class names only: connection errors may carry host names and user names."""
    problems: dict[str, str] = {}
    from backend.db import get_db

    engine = get_db(app).engine
    assert engine is not None
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means "not ready"
        problems["database"] = type(exc).__name__
    try:
        app.extensions["carnet.blobs"].check()
    except Exception as exc:  # the blob store (documents' bytes) cannot be reached or written
        problems["blobs"] = type(exc).__name__
    if _uses_redis(app.config):
        for url in _redis_urls(app.config):
            try:
                _ping_redis(url)
            except Exception as exc:
                problems["redis"] = type(exc).__name__
                break
    return problems


def _redis_urls(config: Any) -> list[str]:
    return [str(config["REDIS_URL"])] if config["TASK_QUEUE"] == "redis" else []


def _ping_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


def check(config: Any) -> None:
    """Refuse a configuration that cannot run as several stateless web workers. Raises ConfigError."""
    url = str(config.get("SQLALCHEMY_URL") or config.get("DATABASE_URL") or "")
    if not url.startswith("postgresql"):
        raise ConfigError(
            "production mode needs PostgreSQL: set CARNET_DATABASE_URL=postgresql://user@host/db "
            "(SQLite is one file on one machine; several web workers cannot share it).")
    if config["TASK_QUEUE"] != "redis":
        raise ConfigError(
            "production mode needs the Redis task queue: set CARNET_TASK_QUEUE=redis and CARNET_REDIS_URL "
            f"(it is {config['TASK_QUEUE']!r}: tasks would stay on this machine or run inside requests).")
    if not str(config["REDIS_URL"]).startswith(REDIS_SCHEMES):
        raise ConfigError("CARNET_REDIS_URL must be a redis:// (or rediss://) URL.")
    if not config.get("SECRET_KEY") or not config.get("MASTER_KEY"):
        raise ConfigError("production mode needs CARNET_SECRET_KEY(_FILE) and CARNET_MASTER_KEY(_FILE).")
    if str(config.get("BLOB_STORE") or "file") == "file" and not config.get("BLOB_DIR"):
        raise ConfigError(
            "production mode needs a shared blob store: CARNET_BLOB_STORE=s3 with CARNET_S3_BUCKET (and "
            "CARNET_S3_ENDPOINT_URL for a store other than AWS), or CARNET_BLOB_DIR set to a directory every web "
            "and worker machine shares (the default, inside the instance folder, is one machine's).")
    if config.get("TESTING") or config.get("DEBUG"):
        raise ConfigError("production mode refuses TESTING or DEBUG.")


def refuse_demo_data(app: Flask) -> None:
    """The demo patient's password and TOTP seed are in the source code: whoever reads it could sign in to
    a production database that holds this account. Refuse to serve it. (A real patient may have the same
    NIR: only an account that opens with the published credentials is the demo one.)"""
    from backend.accounts.models import Patient
    from backend.db import get_db
    from backend.tools.demo import DEMO_NIR, DEMO_PASSWORD, DEMO_TOTP_SECRET
    from backend.security import unseal, verify_password

    from sqlalchemy import inspect

    database = get_db(app)
    assert database.engine is not None and database.session_factory is not None
    if not inspect(database.engine).has_table("patient"):
        return  # no schema yet (`carnet db upgrade` comes next): no account at all
    with database.session_factory() as session:
        patient = session.scalar(select(Patient).where(Patient.nir == DEMO_NIR))
        if patient is None:
            return
        try:
            seed = unseal(str(app.config["SECRET_KEY"]), patient.mfa_secret) if patient.mfa_secret else ""
        except Exception:  # sealed with another secret: not the seed this process would publish
            seed = ""
        if seed == f"totp:{DEMO_TOTP_SECRET}" or verify_password(patient.password_hash, DEMO_PASSWORD):
            raise ConfigError(
                "production mode refuses this database: it holds the demo account (Camille MARTIN, made by "
                "`carnet demo`), whose password and one-time-code seed are published in the source code, so "
                "anyone could sign in to it. Serve production from a database where `carnet demo` never ran.")


def prepare_server(app: Flask, *, threads: int) -> dict[str, Any]:
    """Check the configuration, reach PostgreSQL and Redis once, and return gunicorn settings for
    production. Raises ConfigError with a sentence an operator can act on."""
    check(app.config)
    problems = dependency_problems(app)
    if "database" in problems:
        raise ConfigError(f"PostgreSQL does not answer ({problems['database']}): check CARNET_DATABASE_URL.")
    if "blobs" in problems:
        raise ConfigError(f"the blob store does not answer ({problems['blobs']}): check CARNET_BLOB_STORE, "
                          "CARNET_BLOB_DIR or CARNET_S3_ENDPOINT_URL, CARNET_S3_BUCKET and the S3 credentials.")
    refuse_demo_data(app)
    if "redis" in problems:
        raise ConfigError(f"Redis does not answer ({problems['redis']}): check CARNET_REDIS_URL.")
    from backend.db import get_db

    engine = get_db(app).engine
    assert engine is not None
    pool_size = getattr(engine.pool, "size", lambda: threads)()
    if threads > pool_size:
        log.warning("%d threads per worker share %d pooled connections (CARNET_DB_POOL_SIZE): requests will "
                    "open and close overflow connections; set CARNET_DB_POOL_SIZE >= --threads", threads, pool_size)
    # The connection used for the check above must not be inherited by the forked workers.
    engine.dispose()

    def post_fork(server: Any, worker: Any) -> None:
        # A pool copied from the master is never used across processes (SQLAlchemy's rule for forks).
        get_db(app).engine.dispose(close=False)  # type: ignore[union-attr]

    return {
        "post_fork": post_fork,
        # behind a load balancer: keep connections open longer than its idle timeout is not our call;
        # a few seconds lets it reuse them between requests
        "keepalive": 5,
        # recycle workers now and then (jitter so they do not all restart at once): bounds slow leaks
        "max_requests": 20000,
        "max_requests_jitter": 2000,
        "timeout": 60,
        "graceful_timeout": 30,
        # the workers' heartbeat files in memory, not on a disk that may stall
        **({"worker_tmp_dir": "/dev/shm"} if os.path.isdir("/dev/shm") else {}),
    }
