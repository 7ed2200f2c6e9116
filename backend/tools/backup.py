"""Backups that outlive the database engine: ``carnet backup FILE`` and ``carnet restore FILE``.

The archive is a zip that any tool can read, made of
- ``manifest.json``: format name and version, the Alembic revisions of the database, the source dialect,
  and for each table in dependency order its file, row count, SHA-256 and columns (with how each is
  encoded: ``binary`` as base64, ``datetime`` as ISO 8601 UTC, ``date`` as ISO 8601, ``raw`` as JSON);
- ``tables/<table>.jsonl``: one JSON object per row, ordered by primary key;
- ``blobs/<key>``: the objects of the blob store that the archived rows point to (documents' and inbox
  attachments' bytes, sealed under each patient's data key, as stored), listed in ``blobs.jsonl`` (key,
  size, SHA-256), whose count and digest are in the manifest.

The archive holds the documents encrypted, as stored, and the same master key reads them after a
restore, into an empty database and an empty store of either kind (a directory or an S3 bucket).

A backup is one consistent snapshot (PostgreSQL: a REPEATABLE READ transaction; SQLite: an online copy
of the file made with SQLite's backup API); the objects of the snapshot's rows are read from the store
while it is open (an object is never changed once its row committed; one destroyed meanwhile by the
retention purge makes the backup stop: run it again). A restore checks every table's and every object's
count and digest before writing anything, puts the objects in the store first, then writes every row in
one transaction (all or nothing), into an empty database at the archive's revisions (migrated there if
it has no schema yet), then realigns PostgreSQL's sequences.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import sqlite3
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Date, DateTime, Enum, LargeBinary, MetaData, String, Table, create_engine, func, inspect
from sqlalchemy import select, text, type_coerce, update
from sqlalchemy.engine import Connection, Engine

FORMAT = "carnet-backup"
VERSION = 2  # 2: documents' and attachments' bytes as blobs/ (version 1 had them in table rows)
BLOB_INDEX = "blobs.jsonl"
BATCH = 500
GENESIS_HEAD = {"id": 1, "seq": 0, "hash": "0" * 64}  # what the first migration writes into audit_head


class BackupError(RuntimeError):
    """A backup or restore that cannot be done safely; the message says why."""


@dataclass
class TableReport:
    name: str
    rows: int
    sha256: str


@dataclass
class Report:
    revisions: list[str]
    tables: list[TableReport] = field(default_factory=list)
    blobs: int = 0
    blob_bytes: int = 0

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def as_dict(self) -> dict[str, Any]:
        return {"revisions": self.revisions, "tables": len(self.tables), "rows": self.rows,
                "counts": {t.name: t.rows for t in self.tables if t.rows}, "blobs": self.blobs,
                "blob_bytes": self.blob_bytes}


def metadata() -> MetaData:
    from backend import models  # noqa: F401  (every table known)
    from backend.db import Base

    return Base.metadata


def _kind(column: Any) -> str:
    col_type = column.type
    impl = getattr(col_type, "impl", col_type)
    if isinstance(impl, LargeBinary):
        return "binary"
    if isinstance(impl, DateTime):
        return "datetime"
    if isinstance(impl, Date):
        return "date"
    return "raw"


def _encode(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "binary":
        return base64.b64encode(bytes(value)).decode("ascii")
    if kind == "datetime":
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc).isoformat()
    if kind == "date":
        return value.isoformat()
    return value


def _decode(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "binary":
        return base64.b64decode(value)
    if kind == "datetime":
        return dt.datetime.fromisoformat(value)
    if kind == "date":
        return dt.date.fromisoformat(value)
    return value


def _columns(table: Table) -> list[Any]:
    # Enums as the strings the database holds: the archive stays readable without the code's enums.
    return [type_coerce(c, String()).label(c.name) if isinstance(c.type, Enum) else c for c in table.columns]


def table_rows(conn: Connection, table: Table) -> Iterator[dict[str, Any]]:
    """Every row of a table as archived (encoded values), in primary-key order."""
    kinds = {c.name: _kind(c) for c in table.columns}
    order = list(table.primary_key.columns) or list(table.columns)
    result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(
        select(*_columns(table)).order_by(*order))
    for row in result.mappings():
        yield {name: _encode(kinds[name], row[name]) for name in kinds}


def _revisions(conn: Connection) -> list[str]:
    if not inspect(conn).has_table("alembic_version"):
        return []
    return sorted(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())


def _check_known_tables(conn: Connection, meta: MetaData) -> None:
    unknown = set(inspect(conn).get_table_names()) - set(meta.tables) - {"alembic_version"}
    if unknown:
        raise BackupError(f"tables unknown to this version of Carnet would be left out: {sorted(unknown)}")


# --- backup ----------------------------------------------------------------------------------------------

@contextmanager
def _snapshot(url: str) -> Iterator[Connection]:
    """A connection that sees one consistent state of the whole database."""
    if url.startswith("sqlite"):
        source_path = url.split(":///", 1)[1]
        if not source_path or source_path == ":memory:" or not Path(source_path).is_file():
            raise BackupError(f"no SQLite database at {source_path or url}")
        with tempfile.TemporaryDirectory(prefix="carnet-backup-") as tmp:
            copy = Path(tmp) / "snapshot.db"
            source = sqlite3.connect(source_path, timeout=30)
            target = sqlite3.connect(copy)
            try:
                source.backup(target)  # SQLite's online backup: a consistent copy while the app writes
            finally:
                target.close()
                source.close()
            engine = create_engine(f"sqlite:///{copy}")
            try:
                with engine.connect() as conn:
                    yield conn
            finally:
                engine.dispose()
        return
    engine = create_engine(url, hide_parameters=True)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn
    finally:
        engine.dispose()


def _blob_keys(conn: Connection) -> Iterator[str]:
    """The keys of the objects the snapshot's rows point to, in id order."""
    from backend import blobs

    names = set(inspect(conn).get_table_names())
    for kind, table in blobs.KINDS.items():
        if table not in names:
            continue
        for ident in conn.execute(text(f'SELECT id FROM "{table}" ORDER BY id')).scalars():
            yield blobs._key(kind, int(ident))


def _archive_blobs(conn: Connection, store: Any, archive: zipfile.ZipFile, report: Report) -> dict[str, Any]:
    from backend import blobs

    index = hashlib.sha256()
    count = 0
    # the list is written aside (a zip takes one member at a time), then added after the objects
    with tempfile.TemporaryFile() as listing:
        for key in _blob_keys(conn):
            try:
                data = store.get(key)
            except blobs.BlobNotFound:
                raise BackupError(f"{key} is missing from the blob store (a row without its bytes, or destroyed "
                                  "by the retention purge while the backup ran: run it again; "
                                  "`carnet blobs check` lists such rows)") from None
            except blobs.BlobUnavailable as exc:
                raise BackupError(f"the blob store does not answer: {exc}") from None
            member = zipfile.ZipInfo(f"blobs/{key}", date_time=(1980, 1, 1, 0, 0, 0))
            member.compress_type = zipfile.ZIP_STORED  # sealed bytes do not compress
            with archive.open(member, "w", force_zip64=True) as blob_out:
                blob_out.write(data)
            line = (json.dumps({"key": key, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()},
                               separators=(",", ":")) + "\n").encode()
            index.update(line)
            listing.write(line)
            count += 1
            report.blobs += 1
            report.blob_bytes += len(data)
        listing.seek(0)
        with archive.open(BLOB_INDEX, "w", force_zip64=True) as out:
            for chunk in iter(lambda: listing.read(1 << 20), b""):
                out.write(chunk)
    return {"file": BLOB_INDEX, "count": count, "sha256": index.hexdigest()}


def backup(url: str, path: str | os.PathLike[str], *, blobs: Any) -> Report:
    """Write the whole database and the objects its rows point to (from the blob store ``blobs``) to a
    new archive at ``path`` (written aside, then renamed into place)."""
    meta = metadata()
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    with _snapshot(url) as conn:
        _check_known_tables(conn, meta)
        revisions = _revisions(conn)
        if not revisions:
            raise BackupError("the database has no schema (run `carnet db upgrade` first)")
        report = Report(revisions)
        manifest: dict[str, Any] = {"format": FORMAT, "version": VERSION, "created_at": _now(),
                                    "dialect": conn.dialect.name, "alembic_revisions": revisions, "tables": []}
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for table in meta.sorted_tables:
                member = f"tables/{table.name}.jsonl"
                digest = hashlib.sha256()
                count = 0
                with archive.open(member, "w", force_zip64=True) as out:
                    for row in table_rows(conn, table):
                        line = (json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
                        digest.update(line)
                        out.write(line)
                        count += 1
                report.tables.append(TableReport(table.name, count, digest.hexdigest()))
                manifest["tables"].append({
                    "name": table.name, "file": member, "rows": count, "sha256": digest.hexdigest(),
                    "columns": [{"name": c.name, "encoding": _kind(c)} for c in table.columns]})
            manifest["blobs"] = _archive_blobs(conn, blobs, archive, report)
            archive.writestr("manifest.json", json.dumps(manifest, ensure_ascii=False, indent=1))
    os.replace(partial, target)
    return report


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


# --- restore ---------------------------------------------------------------------------------------------

def read_manifest(archive: zipfile.ZipFile) -> dict[str, Any]:
    try:
        manifest = json.loads(archive.read("manifest.json"))
    except KeyError:
        raise BackupError("not a Carnet backup: manifest.json is missing") from None
    except ValueError:
        raise BackupError("not a Carnet backup: manifest.json is not JSON") from None
    if manifest.get("format") != FORMAT:
        raise BackupError("not a Carnet backup (unknown format)")
    if manifest.get("version") == 1:
        raise BackupError("backup format version 1 keeps documents in table rows: restore it with the version "
                          "of Carnet that made it, then `carnet db upgrade` moves them into the blob store")
    if manifest.get("version") != VERSION:
        raise BackupError(f"backup format version {manifest.get('version')} is not supported (this Carnet "
                          f"reads version {VERSION})")
    return manifest


def _lines(archive: zipfile.ZipFile, member: str) -> Iterator[bytes]:
    with archive.open(member) as stream:
        yield from stream


def verify_archive(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Check every table file against the manifest's count and SHA-256; return the manifest."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise BackupError(f"cannot read the archive: {exc}") from None
    with archive:
        manifest = read_manifest(archive)
        names = set(archive.namelist())
        for entry in manifest["tables"]:
            if entry["file"] not in names:
                raise BackupError(f"table {entry['name']}: {entry['file']} is missing from the archive")
            digest = hashlib.sha256()
            count = 0
            for line in _lines(archive, entry["file"]):
                digest.update(line)
                count += 1
            if count != entry["rows"] or digest.hexdigest() != entry["sha256"]:
                raise BackupError(f"table {entry['name']}: the archive is damaged (count or SHA-256 differs "
                                  "from the manifest)")
        _verify_blobs(archive, manifest, names)
    return manifest


def _blob_entries(archive: zipfile.ZipFile) -> Iterator[dict[str, Any]]:
    for line in _lines(archive, BLOB_INDEX):
        yield json.loads(line)


def _verify_blobs(archive: zipfile.ZipFile, manifest: dict[str, Any], names: set[str]) -> None:
    """The object index matches the manifest, and every object its index (size and SHA-256)."""
    from backend import blobs

    entry = manifest.get("blobs")
    if not isinstance(entry, dict) or entry.get("file") != BLOB_INDEX or BLOB_INDEX not in names:
        raise BackupError("the archive's list of blobs is missing")
    digest = hashlib.sha256()
    count = 0
    for line in _lines(archive, BLOB_INDEX):
        digest.update(line)
        count += 1
    if count != entry.get("count") or digest.hexdigest() != entry.get("sha256"):
        raise BackupError("the archive's list of blobs is damaged (count or SHA-256 differs from the manifest)")
    for item in _blob_entries(archive):
        key = item.get("key")
        if not isinstance(key, str) or blobs.parse_key(key) is None:
            raise BackupError("the archive lists a blob that is not a Carnet key")
        member = f"blobs/{key}"
        if member not in names:
            raise BackupError(f"{member} is missing from the archive")
        h = hashlib.sha256()
        size = 0
        with archive.open(member) as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                h.update(chunk)
                size += len(chunk)
        if size != item.get("size") or h.hexdigest() != item.get("sha256"):
            raise BackupError(f"{member} is damaged (size or SHA-256 differs from the archive's list)")


def _present(conn: Connection, meta: MetaData) -> list[Table]:
    """The code's tables that exist in this database (one at an older revision may lack newer ones)."""
    names = set(inspect(conn).get_table_names())
    return [t for t in meta.sorted_tables if t.name in names]


def _is_empty(conn: Connection, meta: MetaData) -> list[str]:
    """The tables that hold data (the migrations' genesis row of audit_head does not count)."""
    busy = []
    for table in _present(conn, meta):
        count = conn.scalar(select(func.count()).select_from(table)) or 0
        if table.name == "audit_head" and count == 1:
            row = conn.execute(select(table)).mappings().one()
            if dict(row) == GENESIS_HEAD:
                continue
        if count:
            busy.append(table.name)
    return busy


def _prepare_schema(url: str, revisions: list[str]) -> None:
    from backend import migrate

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            current = _revisions(conn)
    finally:
        engine.dispose()
    if not current:
        try:
            for revision in revisions:
                migrate.upgrade(url, revision)
        except Exception as exc:  # alembic names the unknown revision
            raise BackupError(f"cannot create the archive's schema (revisions {revisions}): {exc}") from None
        return
    if current != revisions:
        raise BackupError(f"the database is at revisions {current}, the archive at {revisions}: restore into an "
                          "empty database (its schema is then created at the archive's revisions), or with the "
                          "version of Carnet that made the archive")


def _restore_blobs(store: Any, path: str | os.PathLike[str], report: Report) -> set[str]:
    """Put the archive's objects in the store (before any row: a row never points to a missing object)."""
    from backend import blobs

    keys: set[str] = set()
    with zipfile.ZipFile(path) as archive:

        def items() -> Iterator[tuple[str, bytes]]:
            for item in _blob_entries(archive):
                data = archive.read(f"blobs/{item['key']}")
                keys.add(item["key"])
                report.blobs += 1
                report.blob_bytes += len(data)
                yield item["key"], data

        try:
            store.put_many(items())
        except blobs.BlobUnavailable as exc:
            raise BackupError(f"the blob store does not answer: {exc}") from None
    return keys


def _remove_replaced_blobs(engine: Engine, store: Any, kept: set[str]) -> None:
    """``--force``: the objects of the replaced content that the restored rows do not point to."""
    from backend import blobs

    by_kind: dict[str, list[int]] = {}
    for info in store.list():
        parsed = blobs.parse_key(info.key)
        if parsed is not None and info.key not in kept:
            by_kind.setdefault(parsed[0], []).append(parsed[1])
    for kind, ids in by_kind.items():
        blobs.delete_unreferenced(engine, store, kind, ids)


def restore(url: str, path: str | os.PathLike[str], *, blobs: Any, force: bool = False) -> Report:
    """Restore an archive into an empty database and an empty blob store (``force``: replace what they
    hold). The objects are put first, then every row in one transaction (all or nothing)."""
    from backend.db import make_engine

    manifest = verify_archive(path)
    meta = metadata()
    revisions = sorted(manifest["alembic_revisions"])
    archived = {t["name"] for t in manifest["tables"]}
    missing = [t.name for t in meta.sorted_tables if t.name not in archived]
    unknown = sorted(archived - set(meta.tables))
    if unknown:
        raise BackupError(f"the archive has tables this version of Carnet does not know: {unknown}")
    _prepare_schema(url, revisions)
    report = Report(revisions)
    engine: Engine = make_engine(url)
    try:
        with engine.connect() as conn:
            busy = _is_empty(conn, meta)
        if busy and not force:
            raise BackupError(f"the database is not empty (tables with data: {', '.join(busy)}): restore into "
                              "an empty database, or use --force to replace its content")
        if not force and not blobs.is_empty():
            raise BackupError("the blob store is not empty: restore into an empty store (CARNET_BLOB_DIR, "
                              "CARNET_S3_BUCKET/CARNET_S3_PREFIX), or use --force to replace its content")
        kept = _restore_blobs(blobs, path, report)
        with engine.begin() as conn, zipfile.ZipFile(path) as archive:
            busy = _is_empty(conn, meta)
            if busy and not force:
                raise BackupError(f"the database is not empty (tables with data: {', '.join(busy)}): restore into "
                                  "an empty database, or use --force to replace its content")
            present = _present(conn, meta)
            absent = sorted(archived - {t.name for t in present})
            if absent:
                raise BackupError(f"the archive has tables this database lacks at its revisions: {absent}")
            for table in reversed(present):
                conn.execute(table.delete())
            by_name = {t["name"]: t for t in manifest["tables"]}
            for table in present:
                if table.name in missing:
                    continue
                entry = by_name[table.name]
                count = _load_table(conn, table, archive, entry)
                report.tables.append(TableReport(table.name, count, entry["sha256"]))
            if missing and "audit_head" in missing:
                conn.execute(meta.tables["audit_head"].insert().values(**GENESIS_HEAD))
            if conn.dialect.name == "postgresql":
                _realign_sequences(conn, meta)
        if force:
            _remove_replaced_blobs(engine, blobs, kept)
    finally:
        engine.dispose()
    return report


def _load_table(conn: Connection, table: Table, archive: zipfile.ZipFile, entry: dict[str, Any]) -> int:
    kinds = {c["name"]: c["encoding"] for c in entry["columns"]}
    unknown = set(kinds) - set(table.columns.keys())
    if unknown:
        raise BackupError(f"table {table.name}: columns unknown to this schema: {sorted(unknown)}")
    # A row may point to a later row of its own table (a replaced document to its replacement): those
    # columns are written once every row is in.
    self_refs = [fk.parent.name for fk in table.foreign_keys if fk.column.table is table]
    pk = [c.name for c in table.primary_key.columns]
    later: list[dict[str, Any]] = []
    batch: list[dict[str, Any]] = []
    count = 0
    for line in _lines(archive, entry["file"]):
        raw = json.loads(line)
        row = {name: _decode(kinds[name], value) for name, value in raw.items()}
        for name in self_refs:
            if row.get(name) is not None:
                later.append({**{f"pk_{k}": row[k] for k in pk}, "value": row[name], "column": name})
                row[name] = None
        batch.append(row)
        count += 1
        if len(batch) >= BATCH:
            conn.execute(table.insert(), batch)
            batch = []
    if batch:
        conn.execute(table.insert(), batch)
    for item in later:
        where = [table.c[k] == item[f"pk_{k}"] for k in pk]
        conn.execute(update(table).where(*where).values({item["column"]: item["value"]}))
    return count


def _realign_sequences(conn: Connection, meta: MetaData) -> None:
    """After rows came in with their ids, the next id must follow the largest."""
    for table in meta.sorted_tables:
        pk = list(table.primary_key.columns)
        if len(pk) != 1 or not pk[0].autoincrement or str(pk[0].type) not in ("INTEGER", "BIGINT"):
            continue
        sequence = conn.scalar(text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": pk[0].name})
        if sequence:
            conn.execute(text(f'SELECT setval(:s, COALESCE((SELECT MAX("{pk[0].name}") FROM "{table.name}"), 0) + 1, '
                              "false)"), {"s": sequence})


# --- commands (registered by backend.tools.cli) ------------------------------------------------------------------

def _commands() -> tuple[Any, Any]:
    import click
    from flask import current_app
    from flask.cli import with_appcontext

    @click.command("backup")
    @click.argument("file", type=click.Path(dir_okay=False, writable=True))
    @with_appcontext
    def backup_command(file: str) -> None:
        """Write the whole database and its documents' bytes (encrypted as stored) to the archive FILE."""
        try:
            report = backup(current_app.config["SQLALCHEMY_URL"], file, blobs=current_app.extensions["carnet.blobs"])
        except BackupError as exc:
            click.echo(f"error: {exc}", err=True)
            raise SystemExit(1) from None
        click.echo(json.dumps({"file": file, **report.as_dict()}, ensure_ascii=False))

    @click.command("restore")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False))
    @click.option("--force", is_flag=True, help="replace the content of a database that is not empty")
    @with_appcontext
    def restore_command(file: str, force: bool) -> None:
        """Restore the archive FILE into an empty database (its schema is created if missing) and an empty
        blob store."""
        try:
            report = restore(current_app.config["SQLALCHEMY_URL"], file, blobs=current_app.extensions["carnet.blobs"],
                             force=force)
        except BackupError as exc:
            click.echo(f"error: {exc}", err=True)
            raise SystemExit(1) from None
        click.echo(json.dumps({"file": file, **report.as_dict()}, ensure_ascii=False))

    return backup_command, restore_command


backup_command, restore_command = _commands()
