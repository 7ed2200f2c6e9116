"""The blob store: where the original bytes of documents and inbox attachments live, out of the database.

A row (``document``, ``inbox_attachment``) holds the metadata, the size and the sha256 of the plaintext;
the bytes, sealed with the patient's key (AES-GCM, AAD ``document:<id>`` / ``inbox-attachment:<id>``,
``records.crypto``) before they leave the process, are one object of the store under a key derived from
the row's id only (:func:`document_key`, :func:`attachment_key`): nothing of the patient is in a key.

Two backends behind one small interface (:class:`BlobStore`): a directory (``file``, the default: the
instance folder, for ``make run`` and one-machine installs) and any S3-compatible object store (``s3``,
production: boto3). ``CARNET_BLOB_STORE``, ``CARNET_BLOB_DIR``, ``CARNET_S3_*`` (:func:`from_config`).

The order that keeps a row from ever pointing to a missing object:
- writing: the row is flushed (it gets its id), the sealed bytes are ``put`` (durable when it returns),
  then the transaction commits. A rollback after the put leaves an orphan object, harmless (nothing
  points to it, it is sealed) and removed by :func:`sweep` (``carnet blobs sweep``).
- destroying: the rows are deleted, the transaction commits, then the objects are deleted
  (:func:`delete_after_commit`). A failure there leaves orphans for the sweep, never a dangling row.
- ids: PostgreSQL's sequences never hand an id out twice. SQLite may (its rowid is max + 1), so on SQLite
  the check "no row has this id" and the deletion run under SQLite's write lock, where no other writer
  can have an uncommitted row with that id; on both, the sweep leaves objects younger than its grace
  period alone (an object whose transaction has not committed yet is seconds old).

Services reach the store through their Session (:func:`of`): the app's session factory carries it, so
signatures stay as they were. Errors: :class:`BlobNotFound` (no such object: an integrity error for the
caller, never served as empty), :class:`BlobUnavailable` (the store does not answer: 503, retry).
"""
from __future__ import annotations

import abc
import datetime as dt
import hashlib
import logging
import os
import secrets
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

SESSION_KEY = "carnet.blobs"
_AFTER_COMMIT_KEY = "carnet.blobs.after_commit"
TMP_PREFIX = ".tmp-"
DELETE_BATCH = 1000  # S3 DeleteObjects takes at most 1,000 keys

# A key's first segment names what it holds and the table whose ``id`` it is derived from.
KINDS: dict[str, str] = {"documents": "document", "attachments": "inbox_attachment"}


class BlobError(RuntimeError):
    """Base of the store's errors. Messages carry keys (ids), never content."""


class BlobNotFound(BlobError):
    """No object under this key."""


class BlobUnavailable(BlobError):
    """The store cannot be reached or refused to answer (network, permissions, server error)."""


# --- keys -------------------------------------------------------------------------------------------------

def _key(kind: str, ident: int) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown blob kind {kind!r}")
    if not isinstance(ident, int) or isinstance(ident, bool) or ident <= 0:
        raise ValueError("a blob key needs a positive integer id")
    # two levels of fan-out from a hash of the id: no directory (or listing page) holds millions of keys
    spread = hashlib.sha256(f"{KINDS[kind]}:{ident}".encode()).hexdigest()
    return f"{kind}/{spread[:2]}/{spread[2:4]}/{ident}"


def document_key(document_id: int) -> str:
    return _key("documents", document_id)


def attachment_key(attachment_id: int) -> str:
    return _key("attachments", attachment_id)


def parse_key(key: str) -> tuple[str, int] | None:
    """(kind, id) of a key this module made, or None for anything else under the store."""
    parts = key.split("/")
    if len(parts) != 4 or parts[0] not in KINDS or not parts[3].isdigit():
        return None
    kind, ident = parts[0], int(parts[3])
    return (kind, ident) if ident > 0 and _key(kind, ident) == key else None


# --- the interface ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BlobInfo:
    key: str
    size: int
    modified: dt.datetime  # UTC


class BlobStore(abc.ABC):
    """Whole objects by key: put (atomic and durable when it returns; replaces), get, delete (idempotent)."""

    name: str = "blob store"

    @abc.abstractmethod
    def put(self, key: str, data: bytes) -> None: ...

    @abc.abstractmethod
    def get(self, key: str) -> bytes: ...

    @abc.abstractmethod
    def delete_many(self, keys: Sequence[str]) -> None: ...

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        """Every object whose key starts with ``prefix``, in no particular order."""

    @abc.abstractmethod
    def check(self) -> None:
        """Raise BlobUnavailable unless the store answers and can be written to (readiness)."""

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> int:
        count = 0
        for key, data in items:
            self.put(key, data)
            count += 1
        return count

    def delete(self, key: str) -> None:
        self.delete_many([key])

    def exists(self, key: str) -> bool:
        try:
            self.get(key)
        except BlobNotFound:
            return False
        return True

    def is_empty(self) -> bool:
        return all(parse_key(info.key) is None for info in self.list())


class FileBlobStore(BlobStore):
    """A directory: ``<root>/<key>``. Writes go to a temporary file beside the target, are fsynced and
    renamed into place (then the directory is fsynced): a crash leaves the old state or the new one, and
    at worst a ``.tmp-`` file that the sweep removes."""

    name = "file"

    def __init__(self, root: str | os.PathLike[str], *, durable: bool = True) -> None:
        self.root = Path(root)
        self.durable = durable

    def _path(self, key: str) -> Path:
        if parse_key(key) is None:
            raise ValueError("not a blob key")
        return self.root / key

    def put(self, key: str, data: bytes) -> None:
        self._write(self._path(key), data)

    def _write(self, path: Path, data: bytes) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.parent / f"{TMP_PREFIX}{secrets.token_hex(8)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                if self.durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            if self.durable:
                self._fsync_dir(path.parent)
        except OSError as exc:
            raise BlobUnavailable(f"cannot write {path.name} in the blob directory ({exc.strerror})") from None

    @staticmethod
    def _fsync_dir(directory: Path) -> None:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> int:
        # one flush for the lot (the benchmark seeder writes thousands): written, renamed, then synced
        durable, self.durable = self.durable, False
        count = 0
        try:
            for key, data in items:
                self.put(key, data)
                count += 1
        finally:
            self.durable = durable
        if durable and count:
            os.sync()
        return count

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(key) from None
        except OSError as exc:
            raise BlobUnavailable(f"cannot read {key} ({exc.strerror})") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete_many(self, keys: Sequence[str]) -> None:
        for key in keys:
            try:
                self._path(key).unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise BlobUnavailable(f"cannot delete {key} ({exc.strerror})") from None

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        if not self.root.is_dir():
            return
        for directory, _dirs, files in os.walk(self.root):
            for name in files:
                path = Path(directory) / name
                key = path.relative_to(self.root).as_posix()
                if not key.startswith(prefix):
                    continue
                try:
                    stat = path.stat()
                except FileNotFoundError:  # deleted meanwhile
                    continue
                yield BlobInfo(key, stat.st_size, dt.datetime.fromtimestamp(stat.st_mtime, dt.timezone.utc))

    def remove_partial(self, info: BlobInfo) -> None:
        """Delete a leftover temporary file (an interrupted write)."""
        name = info.key.rsplit("/", 1)[-1]
        if not name.startswith(TMP_PREFIX):
            raise ValueError("not a temporary file")
        try:
            (self.root / info.key).unlink()
        except FileNotFoundError:
            pass

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f"{TMP_PREFIX}ready-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise BlobUnavailable(f"the blob directory is not writable ({exc.strerror})") from None


class S3BlobStore(BlobStore):
    """An S3-compatible bucket (AWS S3, SeaweedFS, Ceph RGW, MinIO…), through boto3.

    One client per process, made on first use (a client must not cross a fork: gunicorn forks after the
    app is built) and shared by the process's threads (boto3 clients are thread-safe)."""

    name = "s3"

    def __init__(self, bucket: str, *, prefix: str = "", endpoint_url: str | None = None,
                 region: str | None = None, access_key_id: str | None = None, secret_access_key: str | None = None,
                 session_token: str | None = None, addressing_style: str | None = None,
                 max_connections: int = 20, connect_timeout: float = 3.0, read_timeout: float = 20.0,
                 max_attempts: int = 3) -> None:
        if not bucket:
            raise ValueError("an S3 blob store needs a bucket")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url or None
        self._settings = dict(region=region or "us-east-1", access_key_id=access_key_id or None,
                              secret_access_key=secret_access_key or None, session_token=session_token or None,
                              addressing_style=addressing_style or ("path" if endpoint_url else "auto"),
                              max_connections=max_connections, connect_timeout=connect_timeout,
                              read_timeout=read_timeout, max_attempts=max_attempts)
        self._client: Any = None
        self._pid = 0
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None or self._pid != os.getpid():
            with self._lock:
                if self._client is None or self._pid != os.getpid():
                    self._client = self._make_client()
                    self._pid = os.getpid()
        return self._client

    def _make_client(self) -> Any:
        import boto3
        from botocore.config import Config

        s = self._settings
        config = Config(region_name=s["region"], s3={"addressing_style": s["addressing_style"]},
                        retries={"mode": "standard", "max_attempts": s["max_attempts"]},
                        max_pool_connections=s["max_connections"], connect_timeout=s["connect_timeout"],
                        read_timeout=s["read_timeout"])
        session = boto3.session.Session()
        return session.client("s3", endpoint_url=self.endpoint_url, aws_access_key_id=s["access_key_id"],
                              aws_secret_access_key=s["secret_access_key"], aws_session_token=s["session_token"],
                              config=config)

    def _full(self, key: str) -> str:
        if parse_key(key) is None:
            raise ValueError("not a blob key")
        return self.prefix + key

    @staticmethod
    def _unavailable(exc: Exception, what: str) -> BlobUnavailable:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "error")
            return BlobUnavailable(f"the object store refused to {what} ({code})")
        return BlobUnavailable(f"the object store does not answer ({type(exc).__name__})")

    @staticmethod
    def _errors() -> tuple[type[Exception], ...]:
        from botocore.exceptions import BotoCoreError, ClientError

        return (BotoCoreError, ClientError)

    def put(self, key: str, data: bytes) -> None:
        try:
            # S3 makes a PUT visible whole or not at all, and durable before it answers
            self.client.put_object(Bucket=self.bucket, Key=self._full(key), Body=data,
                                   ContentType="application/octet-stream")
        except self._errors() as exc:
            raise self._unavailable(exc, f"store {key}") from None

    def put_many(self, items: Iterable[tuple[str, bytes]], *, concurrency: int = 8) -> int:
        """Several PUTs in flight at once, a bounded window of them (a restore's objects are not all read
        into memory first)."""
        from concurrent.futures import ThreadPoolExecutor
        from itertools import islice

        count = 0
        iterator = iter(items)
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            while chunk := list(islice(iterator, concurrency * 4)):
                for _ in pool.map(lambda item: self.put(*item), chunk):
                    count += 1
        return count

    def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._full(key))
            return response["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                raise BlobNotFound(key) from None
            raise self._unavailable(exc, f"read {key}") from None
        except self._errors() as exc:
            raise self._unavailable(exc, f"read {key}") from None

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._full(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return False
            raise self._unavailable(exc, f"read {key}") from None
        except self._errors() as exc:
            raise self._unavailable(exc, f"read {key}") from None

    def delete_many(self, keys: Sequence[str]) -> None:
        keys = list(keys)
        for start in range(0, len(keys), DELETE_BATCH):
            chunk = [{"Key": self._full(k)} for k in keys[start:start + DELETE_BATCH]]
            try:
                result = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True})
            except self._errors() as exc:
                raise self._unavailable(exc, "delete objects") from None
            failed = [e for e in result.get("Errors", []) if e.get("Code") not in ("NoSuchKey",)]
            if failed:
                raise BlobUnavailable(f"the object store did not delete {len(failed)} objects "
                                      f"({failed[0].get('Code')})")

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", []):
                    key = item["Key"][len(self.prefix):]
                    modified = item["LastModified"]
                    if modified.tzinfo is None:
                        modified = modified.replace(tzinfo=dt.timezone.utc)
                    yield BlobInfo(key, int(item["Size"]), modified.astimezone(dt.timezone.utc))
        except self._errors() as exc:
            raise self._unavailable(exc, "list objects") from None

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except self._errors() as exc:
            raise self._unavailable(exc, f"reach bucket {self.bucket}") from None


# --- configuration ----------------------------------------------------------------------------------------

CONFIG_DEFAULTS: dict[str, object] = {
    "BLOB_STORE": "file",          # file | s3
    "BLOB_DIR": None,              # file: default <instance>/blobs
    "BLOB_SWEEP_GRACE_HOURS": 24,  # the sweep leaves younger orphans alone
    "S3_ENDPOINT_URL": None,       # none: AWS S3 itself
    "S3_BUCKET": None,
    "S3_PREFIX": "",
    "S3_REGION": "us-east-1",
    "S3_ACCESS_KEY_ID": None,      # or CARNET_S3_ACCESS_KEY_ID_FILE; none: boto3's chain (AWS_*, ~/.aws, role)
    "S3_SECRET_ACCESS_KEY": None,  # or CARNET_S3_SECRET_ACCESS_KEY_FILE
    "S3_ADDRESSING_STYLE": None,   # path | virtual | auto (default: path with an endpoint URL, else auto)
    "S3_MAX_CONNECTIONS": 20,      # per process: keep >= gunicorn threads
}


def _secret(config: Any, name: str, environ: Any) -> str | None:
    value = config.get(name)
    if value:
        return str(value).strip()
    path = environ.get(f"CARNET_{name}_FILE") or config.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip() or None
        except OSError as exc:
            from backend.config import ConfigError

            raise ConfigError(f"CARNET_{name}_FILE cannot be read ({exc.strerror}).") from None
    return None


def from_config(config: Any, instance_path: str | os.PathLike[str], environ: Any = None) -> BlobStore:
    """The store the configuration names. Raises ConfigError for a configuration that cannot work."""
    from backend.config import ConfigError

    environ = os.environ if environ is None else environ
    kind = str(config.get("BLOB_STORE") or "file").lower()
    if kind == "file":
        root = config.get("BLOB_DIR") or Path(instance_path) / "blobs"
        return FileBlobStore(root)
    if kind == "s3":
        bucket = config.get("S3_BUCKET")
        if not bucket:
            raise ConfigError("CARNET_BLOB_STORE=s3 needs CARNET_S3_BUCKET.")
        access, secret = _secret(config, "S3_ACCESS_KEY_ID", environ), _secret(config, "S3_SECRET_ACCESS_KEY", environ)
        if bool(access) != bool(secret):
            raise ConfigError("CARNET_S3_ACCESS_KEY_ID and CARNET_S3_SECRET_ACCESS_KEY go together (or neither: "
                              "boto3's own credentials chain).")
        style = config.get("S3_ADDRESSING_STYLE")
        if style and style not in ("path", "virtual", "auto"):
            raise ConfigError("CARNET_S3_ADDRESSING_STYLE must be path, virtual or auto.")
        return S3BlobStore(str(bucket), prefix=str(config.get("S3_PREFIX") or ""),
                           endpoint_url=config.get("S3_ENDPOINT_URL") or None, region=config.get("S3_REGION"),
                           access_key_id=access, secret_access_key=secret, addressing_style=style,
                           max_connections=int(config.get("S3_MAX_CONNECTIONS") or 20))
    raise ConfigError("CARNET_BLOB_STORE must be file or s3.")


def init_app(app: Any) -> None:
    """Make the store from the configuration and give it to every session of the app's factory."""
    from backend.db import get_db

    for name, value in CONFIG_DEFAULTS.items():
        app.config.setdefault(name, value)
    store = from_config(app.config, app.instance_path)
    app.extensions["carnet.blobs"] = store
    factory = get_db(app).session_factory
    assert factory is not None
    factory.configure(info={SESSION_KEY: store})


def of(session: Session) -> BlobStore:
    """The store of a session made by the app's factory."""
    store = session.info.get(SESSION_KEY)
    if store is None:
        raise RuntimeError("this session has no blob store: use the app's session factory")
    return store


def app_store(app: Any = None) -> BlobStore:
    from flask import current_app

    return (app or current_app).extensions["carnet.blobs"]


# --- destruction after commit -----------------------------------------------------------------------------

def delete_after_commit(session: Session, kind: str, ids: Iterable[int]) -> None:
    """Delete the objects of these rows once the transaction that deletes the rows has committed (a
    rollback forgets them). Only objects whose row is really gone are deleted."""
    wanted = [i for i in ids]
    if wanted:
        pending = session.info.setdefault(_AFTER_COMMIT_KEY, {})
        pending.setdefault(kind, set()).update(wanted)


def delete_patient_blobs_after_commit(session: Session, patient_id: int) -> int:
    """Schedule the objects of every document and attachment of a patient whose rows this transaction
    destroys (the retention purge): deleted once it commits. Returns how many."""
    total = 0
    for kind, table in KINDS.items():
        ids = list(session.execute(text(f'SELECT id FROM "{table}" WHERE patient_id = :p'), {"p": patient_id})
                   .scalars())
        delete_after_commit(session, kind, ids)
        total += len(ids)
    return total


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint released: the rows are not gone yet
        return
    pending: dict[str, set[int]] = session.info.pop(_AFTER_COMMIT_KEY, {})
    if not pending:
        return
    store = session.info.get(SESSION_KEY)
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else getattr(bind, "engine", None)
    if store is None or engine is None:
        log.error("blobs of destroyed rows left for the sweep (no store or engine on the session)")
        return
    for kind, ids in pending.items():
        try:
            delete_unreferenced(engine, store, kind, sorted(ids))
        except Exception as exc:  # the rows are gone; orphans are harmless and the sweep removes them
            log.error("could not delete %d %s blobs after commit (%s): `carnet blobs sweep` will",
                      len(ids), kind, type(exc).__name__)


def _forget(session: Session, *_args: Any) -> None:
    # a savepoint rolled back: keep the list (deletion checks that each row is really gone)
    if not session.in_nested_transaction():
        session.info.pop(_AFTER_COMMIT_KEY, None)


def _install_session_hooks() -> None:
    from sqlalchemy import event

    if not event.contains(Session, "after_commit", _after_commit):
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_rollback", _forget)


_install_session_hooks()


def delete_unreferenced(engine: Engine, store: BlobStore, kind: str, ids: Sequence[int]) -> list[int]:
    """Delete the objects of ``ids`` that no row of their table has; returns the ids deleted.

    On SQLite the check and the deletion hold the write lock (``BEGIN IMMEDIATE``): a writer that has
    inserted a row with one of these ids (SQLite may reuse an id) has committed before, or inserts it
    after, and then writes its object again."""
    table = KINDS[kind]
    deleted: list[int] = []
    for start in range(0, len(ids), DELETE_BATCH):
        chunk = list(ids[start:start + DELETE_BATCH])
        query = text(f'SELECT id FROM "{table}" WHERE id IN :ids').bindparams(bindparam("ids", expanding=True))
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            live = set(conn.execute(query, {"ids": chunk}).scalars())
            gone = [i for i in chunk if i not in live]
            store.delete_many([_key(kind, i) for i in gone])
            conn.rollback()  # nothing written: it only held the lock
        deleted.extend(gone)
    return deleted


# --- the sweep --------------------------------------------------------------------------------------------

@dataclass
class SweepReport:
    scanned: int = 0
    referenced: int = 0
    recent: int = 0          # orphans younger than the grace period, left for a later sweep
    deleted: int = 0
    partial: int = 0         # leftover temporary files of interrupted writes (file store)
    foreign: list[str] = field(default_factory=list)  # objects under the store that are not ours: untouched

    def as_dict(self) -> dict[str, Any]:
        return {"scanned": self.scanned, "referenced": self.referenced, "recent_orphans": self.recent,
                "deleted": self.deleted, "partial_writes_removed": self.partial,
                "foreign": len(self.foreign), "foreign_examples": self.foreign[:5]}


def sweep(engine: Engine, store: BlobStore, *, grace: dt.timedelta, dry_run: bool = False,
          now: dt.datetime | None = None) -> SweepReport:
    """Remove the objects no row points to (rolled-back writes, deletions interrupted after their commit)
    that are older than ``grace``. Objects of live rows are never touched; nor are younger ones (the row
    of an object just written may not have committed yet), nor anything under the store that is not ours."""
    now = now or dt.datetime.now(dt.timezone.utc)
    cutoff = now - grace
    report = SweepReport()
    for kind in KINDS:
        old: list[int] = []
        young: list[int] = []
        for info in store.list(f"{kind}/"):
            report.scanned += 1
            parsed = parse_key(info.key)
            if parsed is None:
                if isinstance(store, FileBlobStore) and info.key.rsplit("/", 1)[-1].startswith(TMP_PREFIX):
                    if info.modified < cutoff:
                        report.partial += 1
                        if not dry_run:
                            store.remove_partial(info)
                    continue
                report.foreign.append(info.key)
                continue
            (old if info.modified < cutoff else young).append(parsed[1])
        live_old, live_young = _live(engine, kind, old), _live(engine, kind, young)
        report.referenced += len(live_old) + len(live_young)
        report.recent += len(young) - len(live_young)
        orphans = [i for i in old if i not in live_old]
        if dry_run:
            report.deleted += len(orphans)
        elif orphans:
            report.deleted += len(delete_unreferenced(engine, store, kind, orphans))
    return report


def _live(engine: Engine, kind: str, ids: Sequence[int]) -> set[int]:
    """The ids among ``ids`` that a row of the kind's table has."""
    query = text(f'SELECT id FROM "{KINDS[kind]}" WHERE id IN :ids').bindparams(bindparam("ids", expanding=True))
    live: set[int] = set()
    with engine.connect() as conn:
        for start in range(0, len(ids), DELETE_BATCH):
            live.update(conn.execute(query, {"ids": list(ids[start:start + DELETE_BATCH])}).scalars())
    return live


# --- moving bytes between table rows and the store (migrations 0017, 0017a) --------------------------------

def migration_store() -> BlobStore | None:
    """The store ``carnet db upgrade`` passed to Alembic (``backend.migrate``), if any."""
    from alembic import context

    return context.config.attributes.get("blob_store")


def move_rows_into_store(conn: Any, store: BlobStore | None, *, table: str, id_column: str, kind: str,
                         batch: int | None = None, log_every: int = 10_000) -> int:
    """Move the sealed bytes of ``table`` (``id_column``, ``ciphertext``) into the store, batch by batch:
    each batch is put in the store (durable), then its rows are deleted and committed. Resumable: what is
    left in the table is exactly what is left to do (a batch interrupted between its puts and its delete
    is put again, the same bytes under the same key). Returns how many rows were moved.

    Runs in Alembic's autocommit block; the caller then drops the table under an exclusive lock after
    a last pass (:func:`move_remaining_locked`)."""
    from alembic import context, op

    batch = batch or int(context.config.attributes.get("blob_batch") or 200)
    select_batch = text(f'SELECT "{id_column}", ciphertext FROM "{table}" ORDER BY "{id_column}" LIMIT :n')
    delete_batch = text(f'DELETE FROM "{table}" WHERE "{id_column}" IN :ids').bindparams(
        bindparam("ids", expanding=True))
    remaining = conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar() or 0
    if not remaining:
        return 0
    if store is None:
        raise RuntimeError(f"{remaining} rows of {table} must move to the blob store, and this migration was not "
                           "given one: run it with `carnet db upgrade` (the store of CARNET_BLOB_STORE)")
    moved = 0
    with op.get_context().autocommit_block():
        while True:
            rows = conn.execute(select_batch, {"n": batch}).all()
            if not rows:
                break
            store.put_many((_key(kind, int(ident)), bytes(sealed)) for ident, sealed in rows)
            conn.execute(delete_batch, {"ids": [int(ident) for ident, _ in rows]})
            moved += len(rows)
            if moved // log_every != (moved - len(rows)) // log_every:
                log.warning("%s: %d of %d rows moved to the blob store", table, moved, remaining)
    return moved


def move_remaining_locked(conn: Any, store: BlobStore | None, *, table: str, id_column: str, kind: str) -> int:
    """In the migration's own transaction: lock the table (PostgreSQL: nothing can insert any more), move
    what an older version still running wrote meanwhile, so the table can be dropped in this transaction."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE'))
    rows = conn.execute(text(f'SELECT "{id_column}", ciphertext FROM "{table}"')).all()
    if rows and store is None:
        raise RuntimeError(f"{len(rows)} rows of {table} must move to the blob store: run `carnet db upgrade`")
    if rows:
        assert store is not None
        store.put_many((_key(kind, int(ident)), bytes(sealed)) for ident, sealed in rows)
    return len(rows)


def copy_store_into_rows(conn: Any, store: BlobStore | None, *, table: str, id_column: str, kind: str,
                         source_table: str, batch: int = 200) -> int:
    """Downgrade: every row of ``source_table`` gets its bytes back in ``table`` from the store (rows
    already there are skipped, so an interrupted downgrade resumes). The objects stay in the store."""
    count = conn.execute(text(f'SELECT count(*) FROM "{source_table}"')).scalar() or 0
    if not count:
        return 0
    if store is None:
        raise RuntimeError(f"{count} rows of {source_table} need their bytes back from the blob store: run "
                           "`carnet db downgrade`")
    copied = 0
    last = 0
    missing = text(f'SELECT s.id FROM "{source_table}" s LEFT JOIN "{table}" t ON t."{id_column}" = s.id '
                   f'WHERE t."{id_column}" IS NULL AND s.id > :last ORDER BY s.id LIMIT :n')
    insert = text(f'INSERT INTO "{table}" ("{id_column}", ciphertext) VALUES (:i, :c)')
    while True:
        ids = [int(i) for i in conn.execute(missing, {"last": last, "n": batch}).scalars()]
        if not ids:
            return copied
        for ident in ids:
            conn.execute(insert, {"i": ident, "c": store.get(_key(kind, ident))})
        copied += len(ids)
        last = ids[-1]


# --- checking rows against the store ------------------------------------------------------------------------

def missing_objects(engine: Engine, store: BlobStore, *, limit: int = 100) -> dict[str, list[int]]:
    """The rows (by kind) whose object is not in the store: never expected (a row commits after its
    object is durable); at most ``limit`` ids per kind."""
    from sqlalchemy import inspect

    out: dict[str, list[int]] = {}
    with engine.connect() as conn:
        names = set(inspect(conn).get_table_names())
        for kind, table in KINDS.items():
            if table not in names:
                continue
            missing: list[int] = []
            for ident in conn.execute(text(f'SELECT id FROM "{table}" ORDER BY id')).scalars():
                if not store.exists(_key(kind, int(ident))):
                    missing.append(int(ident))
                    if len(missing) >= limit:
                        break
            out[kind] = missing
    return out
