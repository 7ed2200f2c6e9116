"""Schema migrations with Alembic, driven from the app (``carnet db upgrade``).

A migration that moves bytes (document and attachment contents into the blob store, revisions 0017*)
reaches the configured store through ``blobs``: ``carnet db upgrade`` passes the app's store; without
one such a migration refuses to run when it has rows to move (an empty database needs none)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str, connection: Connection | None = None, blobs: Any = None,
                   blob_batch: int | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    if blobs is not None:
        cfg.attributes["blob_store"] = blobs
    if blob_batch is not None:
        cfg.attributes["blob_batch"] = blob_batch  # rows moved per committed batch (default 200)
    return cfg


def upgrade(url: str, revision: str = "heads", connection: Connection | None = None, blobs: Any = None,
            blob_batch: int | None = None) -> None:
    command.upgrade(alembic_config(url, connection, blobs, blob_batch), revision)


def downgrade(url: str, revision: str, connection: Connection | None = None, blobs: Any = None) -> None:
    command.downgrade(alembic_config(url, connection, blobs), revision)


def revision(url: str, message: str) -> None:
    command.revision(alembic_config(url), message=message, autogenerate=True)
