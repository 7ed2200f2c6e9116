"""Throttling of attempts (passwords, activation codes, one-time codes) per account and per address, in
the database, so that every gunicorn worker, thread and machine counts against the same number.

An attempt is **reserved before it is checked**: ``reserve`` adds one to each key's counter with a
conditional UPDATE (``… WHERE count < limit``) in a short transaction of its own, committed at once, and
refuses (429 with ``Retry-After``) when a key is spent. Counting only after a failed check would let every
request of a burst pass the check while the others are still hashing their password (40 parallel requests
got 10–12 passwords through a limit of 5 that way). A success gives its reservation back (``refund``, in the
request's transaction: if the request rolls back, the attempt stays counted); a complete sign-in clears the
account's counters (``clear``). Only failures therefore remain counted, as before.

A window starts at the first counted attempt of a key and lasts the configured period ("5 per 15 minutes");
the next attempt after it starts a new one. Keys are stored as keyed digests (no NIR or address in the table).

``reserve`` must be called before the request writes anything: on SQLite its own transaction would otherwise
wait for the request's write lock.
"""
from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from typing import Any

from limits import parse
from sqlalchemy import Table, delete, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from backend.accounts.models import ThrottleCounter
from backend.db import utcnow
from backend.errors import TooManyAttempts
from backend.security import keyed_digest

COUNTERS: Table = ThrottleCounter.__table__  # type: ignore[assignment]  # a mapped class's table is a Table

PURGE_EVERY = 500  # reservations between two deletions of spent windows (per process)


@dataclass(frozen=True)
class Limit:
    amount: int
    window: dt.timedelta

    @classmethod
    def parse(cls, text: str) -> Limit:
        item = parse(text)  # "5 per 15 minutes", the `limits` notation the settings already use
        return cls(int(item.amount), dt.timedelta(seconds=int(item.get_expiry())))


class Throttle:
    def __init__(self, secret_key: str, per_account: str, per_address: str, engine: Engine | None = None) -> None:
        self._secret = secret_key
        self.limits = {"account": Limit.parse(per_account), "address": Limit.parse(per_address)}
        self._engine = engine
        self._reservations = 0
        self._lock = threading.Lock()

    def bind(self, engine: Engine) -> None:
        self._engine = engine

    def _digest(self, scope: str, key: str) -> str:
        return keyed_digest(self._secret, f"throttle\x1f{scope}\x1f{key}")

    def _keys(self, keys: dict[str, str | None]) -> list[tuple[str, str]]:
        return [(scope, self._digest(scope, key)) for scope, key in keys.items() if key is not None]

    # --- counting ---------------------------------------------------------------------------------------------

    def reserve(self, *, now: dt.datetime | None = None, **keys: str | None) -> None:
        """Count one attempt on every key (account=…, address=…), all or none; 429 when any is spent."""
        wanted = self._keys(keys)
        if not wanted:
            return
        now = now or utcnow()
        assert self._engine is not None, "Throttle.bind(engine) first"
        refused: dt.timedelta | None = None
        with self._engine.connect() as conn:
            with conn.begin() as tx:
                for scope, digest in wanted:
                    left = self._reserve_one(conn, scope, digest, now)
                    if left is not None:
                        refused = left
                        break
                if refused is not None:
                    tx.rollback()  # none of this request's keys is counted
        if refused is not None:
            raise TooManyAttempts(retry_after=int(refused.total_seconds()) + 1)
        self._maybe_purge(now)

    def _reserve_one(self, conn: Connection, scope: str, digest: str, now: dt.datetime) -> dt.timedelta | None:
        """None when counted; else how long until the key's window ends."""
        limit = self.limits[scope]
        cutoff = now - limit.window
        table = COUNTERS
        for _ in range(5):  # a row deleted (a sign-in clearing it) or re-created meanwhile: look again
            # a key seen for the first time: the INSERT is the reservation (of two concurrent ones, one inserts;
            # RETURNING says whether this one did: the driver's rowcount does not, for ON CONFLICT)
            inserted = conn.execute(_insert_ignore(conn).values(key=digest, scope=scope, window_start=now, count=1)
                                    .returning(table.c.key)).first()
            if inserted is not None:
                return None
            # the window is over: this attempt opens the next one
            if conn.execute(update(table).where(table.c.key == digest, table.c.window_start <= cutoff)
                            .values(window_start=now, count=1)).rowcount == 1:
                return None
            # within the window: counted only while below the limit (PostgreSQL re-reads the row under its
            # lock, SQLite holds its write lock since the INSERT above)
            if conn.execute(update(table).where(table.c.key == digest, table.c.window_start > cutoff,
                                                table.c["count"] < limit.amount)
                            .values(count=table.c["count"] + 1)).rowcount == 1:
                return None
            row = conn.execute(select(table.c.window_start, table.c["count"]).where(table.c.key == digest)).first()
            if row is not None:
                window_start, seen = row
                if seen >= limit.amount and window_start > cutoff:
                    return max(dt.timedelta(0), window_start + limit.window - now)
        return limit.window  # pragma: no cover - a key cleared and re-created five times over in one instant

    def refund(self, session: Session, **keys: str | None) -> None:
        """Give back the attempt this request reserved: it succeeded (in the request's transaction)."""
        table = COUNTERS
        for _scope, digest in self._keys(keys):
            session.execute(update(table).where(table.c.key == digest, table.c["count"] > 0)
                            .values(count=table.c["count"] - 1))

    def clear(self, session: Session, **keys: str | None) -> None:
        """Forget the keys' failures (a complete sign-in), in the request's transaction."""
        digests = [digest for _scope, digest in self._keys(keys)]
        if digests:
            session.execute(delete(ThrottleCounter).where(ThrottleCounter.key.in_(digests)))

    # --- housekeeping ---------------------------------------------------------------------------------------

    def _maybe_purge(self, now: dt.datetime) -> None:
        with self._lock:
            self._reservations += 1
            due = self._reservations % PURGE_EVERY == 0
        if due:
            self.purge_expired(now)

    def purge_expired(self, now: dt.datetime | None = None) -> int:
        """Delete the counters whose window is over (they would be reset on their next attempt anyway)."""
        now = now or utcnow()
        assert self._engine is not None
        longest = max(limit.window for limit in self.limits.values())
        with self._engine.begin() as conn:
            return conn.execute(delete(COUNTERS).where(
                COUNTERS.c.window_start <= now - longest)).rowcount or 0

    def reset_all(self) -> None:
        assert self._engine is not None
        with self._engine.begin() as conn:
            conn.execute(delete(COUNTERS))


def _insert_ignore(conn: Connection) -> Any:
    """INSERT … ON CONFLICT DO NOTHING, on SQLite and PostgreSQL."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(COUNTERS).on_conflict_do_nothing(index_elements=["key"])
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(COUNTERS).on_conflict_do_nothing(index_elements=["key"])
