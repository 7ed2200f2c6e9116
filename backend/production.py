"""Production mode: what a web worker needs behind a load balancer, and the checks that refuse to serve
otherwise.

- ``init_app`` (every app): the readiness probe ``GET /api/ready`` (the database answers, and Redis when
  the queue or the rate limits live there) beside the liveness probe ``/api/health``; and, when
  ``CARNET_PROXY_FIX_COUNT`` > 0, werkzeug's ProxyFix trusting that many proxies' ``X-Forwarded-*``
  headers, so the client address that the per-address throttling counts is the patient's, not the load
  balancer's.
- ``check`` / ``prepare_server`` (``carnet serve --production``): PostgreSQL, Redis for the queue and
  the rate limits, a real secret and master key; every dependency reached once before gunicorn forks,
  so a misconfigured machine fails at start-up with one clear sentence instead of on its first request.

Deployment is described in ``docs/deploy.md``.
"""
from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask, Response, current_app, jsonify
from sqlalchemy import text

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
    from backend.benchseed import bench_group

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
    names = ["database"]
    if _uses_redis(app.config):
        names.append("redis")
    return names


def _uses_redis(config: Any) -> bool:
    return config["TASK_QUEUE"] == "redis" or str(config["RATELIMIT_STORAGE_URL"]).startswith(REDIS_SCHEMES)


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
    if _uses_redis(app.config):
        for url in _redis_urls(app.config):
            try:
                _ping_redis(url)
            except Exception as exc:
                problems["redis"] = type(exc).__name__
                break
    return problems


def _redis_urls(config: Any) -> list[str]:
    urls = []
    if config["TASK_QUEUE"] == "redis":
        urls.append(str(config["REDIS_URL"]))
    limits_url = str(config["RATELIMIT_STORAGE_URL"])
    if limits_url.startswith(("redis://", "rediss://", "unix://")) and limits_url not in urls:
        urls.append(limits_url)
    return urls


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
    if not str(config["RATELIMIT_STORAGE_URL"]).startswith(REDIS_SCHEMES):
        raise ConfigError(
            "production mode needs shared rate limits: set CARNET_RATELIMIT_STORAGE_URL=redis://host:6379/N "
            "(with memory:// each worker counts failed logins on its own, and an attacker gets N times more tries).")
    if not config.get("SECRET_KEY") or not config.get("MASTER_KEY"):
        raise ConfigError("production mode needs CARNET_SECRET_KEY(_FILE) and CARNET_MASTER_KEY(_FILE).")
    if config.get("TESTING") or config.get("DEBUG"):
        raise ConfigError("production mode refuses TESTING or DEBUG.")


def prepare_server(app: Flask, *, threads: int) -> dict[str, Any]:
    """Check the configuration, reach PostgreSQL and Redis once, and return gunicorn settings for
    production. Raises ConfigError with a sentence an operator can act on."""
    check(app.config)
    problems = dependency_problems(app)
    if "database" in problems:
        raise ConfigError(f"PostgreSQL does not answer ({problems['database']}): check CARNET_DATABASE_URL.")
    if "redis" in problems:
        raise ConfigError(f"Redis does not answer ({problems['redis']}): check CARNET_REDIS_URL and "
                          "CARNET_RATELIMIT_STORAGE_URL.")
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
