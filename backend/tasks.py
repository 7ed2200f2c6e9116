"""The task queue (huey): embedded SQLite storage by default, Redis in production, immediate in tests.

Tasks are plain functions taking a Session; :func:`app_task` runs them inside an app context with a
session of their own that commits on success. Work that must see committed data is enqueued with
:func:`enqueue_after_commit`, so a rollback never leaves a task behind.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask
from huey import Huey
from huey.storage import RedisStorage, SqliteStorage
from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

# The queue object exists at import time so tasks can be declared with decorators; its storage is chosen
# by configure_queue() from the app's configuration.
queue = Huey("carnet", immediate=True, utc=True)


class _Bound:
    app: Flask | None = None


_bound = _Bound()


def configure_queue(app: Flask) -> None:
    kind = app.config["TASK_QUEUE"]
    if kind == "immediate":
        queue.immediate = True
    else:
        if kind == "redis":
            queue.storage_class = RedisStorage
            queue.storage_kwargs = {"url": app.config["REDIS_URL"]}
        else:
            Path(app.instance_path).mkdir(parents=True, exist_ok=True)
            queue.storage_class = SqliteStorage
            queue.storage_kwargs = {"filename": str(Path(app.instance_path) / "queue.db")}
        queue._immediate = False  # set directly: the setter would keep the memory storage
        queue.storage = queue.create_storage()
    _bound.app = app


def bound_app() -> Flask:
    if _bound.app is None:
        raise RuntimeError("the task queue is not bound to an app (create_app was not called)")
    return _bound.app


def app_task(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """Declare a task whose function receives a fresh Session first; commits on success."""

    def decorator(fn: Callable[..., Any]) -> Any:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            from backend.db import get_session

            app = bound_app()
            with app.app_context():
                session = get_session()
                try:
                    result = fn(session, *args, **kwargs)
                    session.commit()
                    return result
                except Exception:
                    session.rollback()
                    raise

        return queue.task(name=f"{fn.__module__}.{fn.__name__}", **options)(run)

    return decorator


_AFTER_COMMIT_KEY = "carnet.after_commit"


def enqueue_after_commit(session: Session, task: Any, *args: Any) -> None:
    session.info.setdefault(_AFTER_COMMIT_KEY, []).append((task, args))


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    pending = session.info.pop(_AFTER_COMMIT_KEY, [])
    for task, args in pending:
        try:
            task(*args)
        except Exception:
            # In immediate mode the task ran here and failed; it is logged, the committed action stands.
            log.exception("task %s failed when enqueued", getattr(task, "name", task))


@event.listens_for(Session, "after_rollback")
def _drop_after_rollback(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT_KEY, None)


def run_worker(app: Flask, workers: int = 2, periodic: bool = True) -> None:
    """Run huey's own consumer (the `carnet worker` command)."""
    configure_queue(app)
    consumer = queue.create_consumer(workers=workers, worker_type="thread", periodic=periodic,
                                     check_worker_health=True)
    consumer.run()
