"""The blob store (backend/blobs.py): the same contract from a directory and from a real S3 server
(SeaweedFS, tests/s3_server.py); the order that keeps a row from pointing to a missing object; what an
interrupted write leaves and how the sweep removes it; destruction after commit; integrity on read;
the migration that moves existing bytes out of the database, interrupted and resumed."""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import secrets
from pathlib import Path
from typing import Any

import pytest
import time_machine
from sqlalchemy import create_engine, func, inspect, select, text

from backend import blobs, migrate
from backend.accounts.models import Patient
from backend.db import get_db, get_session
from backend.records.documents import service as documents
from backend.records import vault
from backend.records.documents.service import DocumentMeta
from backend.records.documents.models import Document
from tests.conftest import POSTGRES_URL, IN_CI, make_app, pg_url
from tests.helpers import (STRONG_PASSWORD, activate, assert_problem, bearer, blob_keys, create_patient, make_nir,
                           sealed_document)
from tests.s3_server import new_prefix

PDF_LIKE = bytes(range(256)) * 8


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> blobs.BlobStore:
    if request.param == "file":
        return blobs.FileBlobStore(tmp_path / "blobs")
    server = request.getfixturevalue("s3_server")
    return blobs.S3BlobStore(server.bucket, prefix=new_prefix(), endpoint_url=server.endpoint_url,
                             access_key_id=server.access_key, secret_access_key=server.secret_key)


# --- keys -------------------------------------------------------------------------------------------------

def test_keys_are_derived_from_the_id_alone():
    key = blobs.document_key(42)
    assert key == blobs.document_key(42) and key.startswith("documents/") and key.endswith("/42")
    assert blobs.attachment_key(42) != key and blobs.attachment_key(42).startswith("attachments/")
    assert blobs.parse_key(key) == ("documents", 42) and blobs.parse_key(blobs.attachment_key(7)) == ("attachments", 7)
    # two levels of fan-out from a hash of the id, nothing else: no patient, no title, no date
    spread = hashlib.sha256(b"document:42").hexdigest()
    assert key == f"documents/{spread[:2]}/{spread[2:4]}/42"
    for foreign in ("documents/00/00/42", "documents/42", "other/ab/cd/1", "documents/ab/cd/x", "documents/ab/cd/0"):
        assert blobs.parse_key(foreign) is None
    for bad in (0, -1, True, "42"):
        with pytest.raises(ValueError):
            blobs.document_key(bad)  # type: ignore[arg-type]


# --- the contract, from both backends ---------------------------------------------------------------------

def test_the_store_contract(store):
    key, other = blobs.document_key(1), blobs.attachment_key(1)
    assert store.is_empty()
    store.check()
    with pytest.raises(blobs.BlobNotFound):
        store.get(key)
    assert not store.exists(key)
    store.put(key, PDF_LIKE)
    assert store.get(key) == PDF_LIKE and store.exists(key) and not store.is_empty()
    store.put(key, b"replaced")  # a put replaces, whole
    assert store.get(key) == b"replaced"
    assert store.put_many([(other, b"a"), (blobs.document_key(2), b"bb")]) == 2
    listed = {info.key: info for info in store.list()}
    assert set(listed) == {key, other, blobs.document_key(2)}
    assert listed[key].size == len(b"replaced")
    assert abs((listed[key].modified - dt.datetime.now(dt.timezone.utc)).total_seconds()) < 120
    assert {i.key for i in store.list("attachments/")} == {other}
    store.delete_many([key, blobs.document_key(999)])  # deleting what is not there is not an error
    store.delete(key)
    assert not store.exists(key) and {i.key for i in store.list()} == {other, blobs.document_key(2)}
    with pytest.raises(ValueError):
        store.put("../../etc/passwd", b"x")  # only keys this module makes


def test_a_store_that_does_not_answer_is_unavailable_not_missing(tmp_path):
    dead = blobs.S3BlobStore("carnet", endpoint_url="http://127.0.0.1:1", access_key_id="a", secret_access_key="b",
                             max_attempts=1, connect_timeout=0.5)  # nothing listens on port 1
    for call in (lambda: dead.get(blobs.document_key(1)), lambda: dead.put(blobs.document_key(1), b"x"), dead.check,
                 lambda: dead.delete(blobs.document_key(1))):
        with pytest.raises(blobs.BlobUnavailable) as excinfo:
            call()
        assert "127.0.0.1" not in str(excinfo.value)  # an exception name, not an address
    blocked = tmp_path / "a-file"
    blocked.write_bytes(b"")
    with pytest.raises(blobs.BlobUnavailable):
        blobs.FileBlobStore(blocked / "blobs").put(blobs.document_key(1), b"x")  # a directory under a file


def test_file_writes_are_atomic_and_leave_no_partial_file(tmp_path):
    store = blobs.FileBlobStore(tmp_path)
    key = blobs.document_key(5)
    store.put(key, b"one")
    store.put(key, b"two")
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files == [tmp_path / key] and files[0].read_bytes() == b"two"
    assert (files[0].stat().st_mode & 0o777) == 0o600


# --- configuration ----------------------------------------------------------------------------------------

def test_configuration_names_the_backend(tmp_path):
    from backend.config import ConfigError

    store = blobs.from_config({}, tmp_path, environ={})
    assert isinstance(store, blobs.FileBlobStore) and store.root == tmp_path / "blobs"
    assert blobs.from_config({"BLOB_DIR": str(tmp_path / "x")}, tmp_path, environ={}).root == tmp_path / "x"
    key_file, secret_file = tmp_path / "ak", tmp_path / "sk"
    key_file.write_text("AKIDFROMFILE\n")
    secret_file.write_text("secret-from-file\n")
    s3 = blobs.from_config({"BLOB_STORE": "s3", "S3_BUCKET": "b", "S3_ENDPOINT_URL": "http://127.0.0.1:9"}, tmp_path,
                           environ={"CARNET_S3_ACCESS_KEY_ID_FILE": str(key_file),
                                    "CARNET_S3_SECRET_ACCESS_KEY_FILE": str(secret_file)})
    assert isinstance(s3, blobs.S3BlobStore) and s3.bucket == "b"
    assert s3._settings["access_key_id"] == "AKIDFROMFILE" and s3._settings["secret_access_key"] == "secret-from-file"
    assert s3._settings["addressing_style"] == "path"
    for bad, says in (({"BLOB_STORE": "tape"}, "file or s3"), ({"BLOB_STORE": "s3"}, "CARNET_S3_BUCKET"),
                      ({"BLOB_STORE": "s3", "S3_BUCKET": "b", "S3_ACCESS_KEY_ID": "a"}, "go together")):
        with pytest.raises(ConfigError, match=says):
            blobs.from_config(bad, tmp_path, environ={})


# --- the app: writes, reads, integrity ------------------------------------------------------------------

def _meta(title: str = "Compte rendu") -> DocumentMeta:
    return DocumentMeta(title=title, mime_type="application/pdf", type_code="11488-4", class_code="10")


def _store(app, patient_id: int, content: bytes, title: str = "Compte rendu", commit: bool = True) -> int:
    with app.app_context():
        session = get_session()
        stored = documents.store_document(session, vault(session), patient_id, content, _meta(title),
                                          source="professional")
        doc_id = stored.document.id
        session.commit() if commit else session.rollback()
        return doc_id


@pytest.fixture
def camille(app, client):
    patient = create_patient(app)
    tokens = activate(client, patient)
    return {"id": patient.patient_id, "headers": bearer(tokens["access_token"]), "tokens": tokens}


def test_a_stored_document_is_one_sealed_object_and_comes_back_whole(app, client, db, camille):
    doc_id = _store(app, camille["id"], PDF_LIKE)
    assert blob_keys(db) == {blobs.document_key(doc_id)}
    sealed = sealed_document(db, doc_id)
    assert PDF_LIKE not in sealed and len(sealed) == len(PDF_LIKE) + 12 + 16  # nonce + GCM tag
    r = client.get(f"/api/v1/record/documents/{doc_id}/content", headers=camille["headers"])
    assert r.status_code == 200 and r.data == PDF_LIKE


@pytest.mark.parametrize("damage", ["altered", "missing", "another_documents"])
def test_a_damaged_or_missing_object_is_an_error_never_served(app, client, db, camille, damage, caplog):
    doc_id = _store(app, camille["id"], PDF_LIKE)
    other_id = _store(app, camille["id"], b"%PDF-1.4 autre", title="Autre")
    store = blobs.of(db)
    key = blobs.document_key(doc_id)
    if damage == "altered":
        sealed = bytearray(store.get(key))
        sealed[20] ^= 1
        store.put(key, bytes(sealed))
    elif damage == "missing":
        store.delete(key)
    else:  # a valid object of the same patient, under the wrong key: the AAD binds it to its id
        store.put(key, store.get(blobs.document_key(other_id)))
    for path in ("content", "pages", "narrative"):
        r = client.get(f"/api/v1/record/documents/{doc_id}/{path}", headers=camille["headers"])
        assert r.status_code == 500 and r.mimetype == "application/problem+json", (path, r.status_code)
        assert PDF_LIKE[:64] not in r.data
    assert f"document {doc_id}" in caplog.text
    # the other document is untouched
    assert client.get(f"/api/v1/record/documents/{other_id}/content", headers=camille["headers"]).data == \
        b"%PDF-1.4 autre"


def test_a_write_the_store_refuses_leaves_no_row(database_url, camille, tmp_path, db):
    blocked = tmp_path / "not-a-directory"
    blocked.write_bytes(b"")
    broken = make_app(database_url, BLOB_STORE="file", BLOB_DIR=str(blocked / "blobs"))
    try:
        before = db.scalar(select(func.count()).select_from(Document))
        r = broken.test_client().post("/api/v1/record/documents", headers=camille["headers"],
                                      content_type="multipart/form-data",
                                      data={"file": (io.BytesIO(b"une note\n"), "note.txt")})
        assert_problem(r, 503, "service_unavailable")
        assert r.headers["Retry-After"] == "5"
        db.expire_all()
        assert db.scalar(select(func.count()).select_from(Document)) == before
    finally:
        get_db(broken).engine.dispose()


def test_a_rolled_back_write_leaves_an_orphan_that_the_sweep_removes(app, db, camille, runner):
    kept = _store(app, camille["id"], b"%PDF-1.4 garde")
    orphan = _store(app, camille["id"], b"%PDF-1.4 abandon", title="Abandon", commit=False)
    assert db.get(Document, orphan) is None  # no row…
    orphan_key = blobs.document_key(orphan)
    store = blobs.of(db)
    if orphan != kept:  # (SQLite may hand the id out again: then the next write replaces the orphan)
        assert store.exists(orphan_key)  # …but its object, written before the commit that never came
    engine = get_db(app).engine
    # young orphans are left alone: their transaction may not have committed yet
    report = blobs.sweep(engine, store, grace=dt.timedelta(hours=1))
    assert report.deleted == 0 and report.recent == 1 and report.referenced == 1
    dry = json.loads(runner.invoke(args=["blobs", "sweep", "--grace-hours", "0", "--dry-run"]).output)
    assert dry["deleted"] == 1 and dry["dry_run"] and store.exists(orphan_key)
    result = runner.invoke(args=["blobs", "sweep", "--grace-hours", "0"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (out["deleted"], out["referenced"], out["foreign"]) == (1, 1, 0)
    assert blob_keys(db) == {blobs.document_key(kept)}
    check = runner.invoke(args=["blobs", "check"])
    assert check.exit_code == 0 and json.loads(check.output)["missing"] == {"documents": [], "attachments": []}


def test_the_sweep_never_touches_a_live_row_or_what_is_not_ours(app, db, camille):
    doc_id = _store(app, camille["id"], b"%PDF-1.4 vieux")
    store = blobs.of(db)
    assert isinstance(store, blobs.FileBlobStore)
    (store.root / "notes.txt").write_bytes(b"an operator's file")
    stray = store.root / "documents" / "zz"
    stray.mkdir(parents=True)
    (stray / "readme").write_bytes(b"not ours")
    partial = store.root / "documents" / f"{blobs.TMP_PREFIX}dead"
    partial.write_bytes(b"half")  # a write interrupted by a crash
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30)
    report = blobs.sweep(get_db(app).engine, store, grace=dt.timedelta(hours=24), now=later)
    assert (report.deleted, report.referenced, report.partial) == (0, 1, 1)
    assert report.foreign == ["documents/zz/readme"]
    assert store.exists(blobs.document_key(doc_id)) and (stray / "readme").exists() and not partial.exists()


def test_check_names_a_row_without_its_object(app, db, camille, runner):
    doc_id = _store(app, camille["id"], b"%PDF-1.4 x")
    blobs.of(db).delete(blobs.document_key(doc_id))
    result = runner.invoke(args=["blobs", "check"])
    assert result.exit_code == 3 and json.loads(result.output)["missing"]["documents"] == [doc_id]


# --- destruction ------------------------------------------------------------------------------------------

def test_the_retention_purge_deletes_the_objects_after_its_commit(app, client, db, camille, runner):
    doc_id = _store(app, camille["id"], b"%PDF-1.4 a purger")
    kept_patient = create_patient(app, _nir("1900275123456"), "1990-02-17", family="Bernard", given="Louis", sex="M")
    kept_doc = _store(app, kept_patient.patient_id, b"%PDF-1.4 garde")
    client.post("/api/v1/account/close", json={"password": STRONG_PASSWORD, "request_deletion": True},
                headers=camille["headers"])
    with time_machine.travel(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3660)):
        dry = json.loads(runner.invoke(args=["retention", "purge", "--dry-run"]).output)
        assert dry["patients_removed"] == 1
        assert blob_keys(db) == {blobs.document_key(doc_id), blobs.document_key(kept_doc)}  # dry run: untouched
        assert json.loads(runner.invoke(args=["retention", "purge"]).output)["patients_removed"] == 1
    db.expire_all()
    assert db.get(Patient, camille["id"]) is None
    assert blob_keys(db) == {blobs.document_key(kept_doc)}


def _nir(first13: str) -> str:
    return make_nir(first13)


def test_deletion_waits_for_the_outer_commit_and_a_rollback_cancels_it(app, db, camille):
    doc_id = _store(app, camille["id"], b"%PDF-1.4 y")
    key = blobs.document_key(doc_id)
    store = blobs.of(db)
    with app.app_context():
        session = get_session()
        session.execute(text("DELETE FROM document WHERE id = :i"), {"i": doc_id})
        blobs.delete_after_commit(session, "documents", [doc_id])
        with session.begin_nested():  # a savepoint released is not the commit
            session.execute(text("SELECT 1"))
        assert store.exists(key)
        session.rollback()  # the row is back: so is the plan to delete its object (dropped)
        assert store.exists(key)
        session.commit()
        assert store.exists(key)
        # an object whose row is still there is never deleted, whatever was scheduled
        blobs.delete_after_commit(session, "documents", [doc_id])
        session.commit()
        assert store.exists(key)
        session.execute(text("DELETE FROM document WHERE id = :i"), {"i": doc_id})
        blobs.delete_after_commit(session, "documents", [doc_id])
        session.commit()
    assert not store.exists(key)


# --- the migration that moves bytes out of the database ----------------------------------------------------

class FailingAfter(blobs.FileBlobStore):
    """A real directory store that stops answering after ``n`` puts (the object store going down
    in the middle of the migration)."""

    def __init__(self, root: Path, n: int) -> None:
        super().__init__(root)
        self.left = n

    def put(self, key: str, data: bytes) -> None:
        if self.left <= 0:
            raise blobs.BlobUnavailable("the store went away")
        self.left -= 1
        super().put(key, data)


def _fresh_database(kind: str, tmp_path: Path) -> tuple[str, Any]:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'move.db'}", None
    base = pg_url()
    schema = f"carnet_move_{secrets.token_hex(4)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}", (admin, schema)


def _kinds() -> list[Any]:
    out: list[Any] = ["sqlite"]
    if POSTGRES_URL or IN_CI:
        out.append(pytest.param("postgresql", marks=pytest.mark.postgres))
    return out


@pytest.mark.parametrize("kind", _kinds())
def test_the_migration_moves_existing_bytes_and_resumes_after_an_interruption(kind, tmp_path):
    url, cleanup = _fresh_database(kind, tmp_path)
    root = tmp_path / "store"
    try:
        migrate.upgrade(url)
        app = make_app(url, BLOB_STORE="file", BLOB_DIR=str(root))
        engine = get_db(app).engine
        patient = create_patient(app)
        contents = {}
        for i in range(7):
            content = f"%PDF-1.4 document {i} ".encode() * (i + 1)
            contents[_store(app, patient.patient_id, content, title=f"Doc {i}")] = content
        # back to the schema before: the bytes return into document_content (downgrade), the store is emptied
        migrate.downgrade(url, "blobs@-1", blobs=app.extensions["carnet.blobs"])
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM document_content")) == 7
        for key in list(blob_keys_of(root)):
            (root / key).unlink()

        # the object store goes down after 3 objects: batches of 2 rows, so one batch committed
        with pytest.raises(blobs.BlobUnavailable):
            migrate.upgrade(url, blobs=FailingAfter(root, 3), blob_batch=2)
        with engine.connect() as conn:
            left = set(conn.execute(text("SELECT document_id FROM document_content")).scalars())
        moved = set(contents) - left
        assert len(moved) == 2 and len(left) == 5  # the committed batch left the table…
        assert {blobs.document_key(i) for i in moved} <= blob_keys_of(root)  # …and its objects are in the store
        # nothing lost on the way: each document is in the table or in the store

        migrate.upgrade(url, blobs=blobs.FileBlobStore(root), blob_batch=2)  # resumed
        with engine.connect() as conn:
            assert not inspect(conn).has_table("document_content")
            assert not inspect(conn).has_table("inbox_attachment_content")
        assert blob_keys_of(root) == {blobs.document_key(i) for i in contents}
        with app.app_context():
            session = get_session()
            for doc_id, content in contents.items():
                assert documents.read_content(session, vault(session), session.get(Document, doc_id)) == content
        engine.dispose()
    finally:
        if cleanup:
            admin, schema = cleanup
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


def blob_keys_of(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()
            and blobs.parse_key(p.relative_to(root).as_posix())}


def test_the_migration_refuses_to_drop_bytes_it_cannot_move(tmp_path):
    url = f"sqlite:///{tmp_path / 'nostore.db'}"
    migrate.upgrade(url)
    app = make_app(url, BLOB_STORE="file", BLOB_DIR=str(tmp_path / "store"))
    patient = create_patient(app)
    _store(app, patient.patient_id, b"%PDF-1.4 z")
    migrate.downgrade(url, "blobs@-1", blobs=app.extensions["carnet.blobs"])
    with pytest.raises(RuntimeError, match="carnet db upgrade"):
        migrate.upgrade(url)  # no store given: nothing is moved, nothing dropped
    engine = get_db(app).engine
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM document_content")) == 1
    engine.dispose()
