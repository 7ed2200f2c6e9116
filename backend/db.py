"""Database: declarative base with a naming convention, the engine, and one session per request.

Services receive a Session and only ``flush()``; the request boundary (the API layer, a CLI command or
a task) commits or rolls back.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import DateTime, MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every database (SQLite forgets the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(dt.timezone.utc)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime()}


# Primary keys are INTEGER (32-bit on PostgreSQL): a larger identifier names no row, and must not reach the
# driver (PostgreSQL refuses to compare it).
ROW_ID_MAX = 2**31 - 1


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def make_engine(url: str, echo: bool = False, pool_size: int | None = None, max_overflow: int | None = None,
                pre_ping: bool = True) -> Engine:
    # hide_parameters: SQL errors must never copy identifiers or health data into logs.
    kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        # a round trip per checkout (per request); without it, a worker's first request after a database
        # restart fails and the pool reconnects (CARNET_DB_POOL_PRE_PING=false, docs/deploy.md)
        kwargs["pool_pre_ping"] = pre_ping
        # one pooled connection per gunicorn thread: overflow connections are opened and closed per use
        if pool_size is not None:
            kwargs["pool_size"] = int(pool_size)
        if max_overflow is not None:
            kwargs["max_overflow"] = int(max_overflow)
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

    return engine


class Database:
    """The app's engine and session factory (an extension, bound in ``init_app``)."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.session_factory: sessionmaker[Session] | None = None

    def init_app(self, app: Flask, url: str) -> None:
        self.engine = make_engine(url, echo=bool(app.config.get("SQL_ECHO")), pool_size=app.config.get("DB_POOL_SIZE"),
                                  max_overflow=app.config.get("DB_MAX_OVERFLOW"),
                                  pre_ping=bool(app.config.get("DB_POOL_PRE_PING", True)))
        self.session_factory = sessionmaker(bind=self.engine, expire_on_commit=False)
        app.extensions["carnet.db"] = self
        app.teardown_appcontext(self._close_session)

    @staticmethod
    def _close_session(exc: BaseException | None) -> None:
        session: Session | None = g.pop("db_session", None)
        if session is None:
            return
        try:
            if exc is not None:
                session.rollback()
            session.close()
        except DBAPIError:
            # The database went away while the request ran (a restart, a cut connection): its answer is
            # already made, so the connection is dropped, not returned to the pool, and the error does not
            # escape the app as the server's own 500 page in place of that answer.
            logging.getLogger(__name__).warning("the database connection was lost before the request ended")
            session.invalidate()


def get_db(app: Flask | None = None) -> Database:
    return (app or current_app).extensions["carnet.db"]


def get_session() -> Session:
    """The session of the current request (or app context), created on first use."""
    if "db_session" not in g:
        factory = get_db().session_factory
        assert factory is not None
        g.db_session = factory()
    return g.db_session
