"""The app with its documents in a real S3-compatible server (SeaweedFS on loopback, tests/s3_server.py):
uploads, downloads, exports, the retention purge and the sweep, backup and restore across backends,
and a store that does not answer. CI runs these (CI=true fails rather than skips without the server)."""
from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from backend import blobs
from backend.accounts.models import Patient
from backend.db import get_db
from backend.records.documents.models import Document
from tests.conftest import empty_store, make_app
from tests.helpers import STRONG_PASSWORD, activate, assert_problem, bearer, create_patient
from tests.s3_server import new_prefix

SCAN = bytes(range(256)) * 40


@pytest.fixture
def s3_app(app: Flask, s3_server: Any) -> Iterator[Flask]:
    """The app on the test database (emptied by ``app``), its blob store a bucket prefix of its own."""
    made = make_app(app.config["DATABASE_URL"], **s3_server.config(new_prefix()))
    assert isinstance(made.extensions["carnet.blobs"], blobs.S3BlobStore)
    yield made
    empty_store(made.extensions["carnet.blobs"])
    get_db(made).engine.dispose()


def _objects(app: Flask) -> dict[str, bytes]:
    store = app.extensions["carnet.blobs"]
    return {info.key: store.get(info.key) for info in store.list()}


def _upload(client: Any, headers: dict[str, str], content: bytes, name: str = "note.txt") -> Any:
    return client.post("/api/v1/record/documents", headers=headers, content_type="multipart/form-data",
                       data={"file": (io.BytesIO(content), name)})


@pytest.fixture
def patient(s3_app: Flask) -> dict[str, Any]:
    created = create_patient(s3_app)
    tokens = activate(s3_app.test_client(), created)
    return {"id": created.patient_id, "headers": bearer(tokens["access_token"])}


def test_documents_live_in_the_bucket_sealed_and_come_back_whole(s3_app, patient, s3_server):
    client = s3_app.test_client()
    note = "Compte rendu de consultation : tension normale.\n".encode()
    r = _upload(client, patient["headers"], note)
    assert r.status_code == 201, r.get_json()
    doc_id = r.get_json()["id"]
    store = s3_app.extensions["carnet.blobs"]
    # in the bucket, under the store's prefix and a key made of the id only; sealed
    raw = store.client.list_objects_v2(Bucket=s3_server.bucket, Prefix=store.prefix)["Contents"]
    assert [o["Key"] for o in raw] == [store.prefix + blobs.document_key(doc_id)]
    sealed = store.get(blobs.document_key(doc_id))
    assert note not in sealed and b"tension" not in sealed
    r = client.get(f"/api/v1/record/documents/{doc_id}/content", headers=patient["headers"])
    assert r.status_code == 200 and r.data == note
    # the "take my data with me" ZIP carries the original, byte for byte
    with client.get("/api/v1/record/export/zip", headers=patient["headers"]) as r:
        assert r.status_code == 200
        data = r.get_data()
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert note in [z.read(n) for n in z.namelist() if n.startswith("documents/")]


def test_the_retention_purge_and_the_sweep_on_s3(s3_app, patient):
    client = s3_app.test_client()
    doc_id = _upload(client, patient["headers"], b"a purger\n").get_json()["id"]
    store = s3_app.extensions["carnet.blobs"]
    orphan = blobs.document_key(987654)
    store.put(orphan, b"sealed bytes of a write whose transaction rolled back")
    engine = get_db(s3_app).engine
    assert blobs.sweep(engine, store, grace=dt.timedelta(hours=24)).recent == 1  # young: kept
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)
    report = blobs.sweep(engine, store, grace=dt.timedelta(hours=24), now=later)
    assert (report.deleted, report.referenced) == (1, 1) and not store.exists(orphan)

    client.post("/api/v1/account/close", json={"password": STRONG_PASSWORD, "request_deletion": True},
                headers=patient["headers"])
    # past its retention date (by the database, not the clock: S3 refuses requests signed ten years ahead)
    with get_db(s3_app).engine.begin() as conn:
        conn.execute(update(Patient).where(Patient.id == patient["id"])
                     .values(retention_until=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)))
    out = json.loads(s3_app.test_cli_runner().invoke(args=["retention", "purge"]).output)
    assert out["patients_removed"] == 1
    assert not store.exists(blobs.document_key(doc_id)) and _objects(s3_app) == {}


def test_backup_from_a_directory_restores_into_an_empty_bucket_and_back(app, client, s3_server, tmp_path):
    created = create_patient(app)
    headers = bearer(activate(client, created)["access_token"])
    ids = [_upload(client, headers, f"note {i}\n".encode() * 50, f"n{i}.txt").get_json()["id"] for i in range(3)]
    archive = tmp_path / "carnet.zip"
    assert app.test_cli_runner().invoke(args=["backup", str(archive)]).exit_code == 0

    # file store -> empty database + empty bucket
    target = make_app(f"sqlite:///{tmp_path / 'restored.db'}", **s3_server.config(new_prefix()))
    try:
        result = target.test_cli_runner().invoke(args=["restore", str(archive)])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["blobs"] == 3
        assert _objects(target) == _objects(app)
        for i, doc_id in enumerate(ids):
            r = target.test_client().get(f"/api/v1/record/documents/{doc_id}/content", headers=headers)
            assert r.status_code == 200 and r.data == f"note {i}\n".encode() * 50
        # a bucket that holds objects is not an empty store: refused without --force
        same_bucket = s3_server.config(target.extensions["carnet.blobs"].prefix.rstrip("/"))
        again = make_app(f"sqlite:///{tmp_path / 'second.db'}", **same_bucket)
        try:
            refused = again.test_cli_runner().invoke(args=["restore", str(archive)])
            assert refused.exit_code == 1 and "blob store is not empty" in refused.output
        finally:
            get_db(again).engine.dispose()

        # and back: the bucket -> a backup -> an empty database + an empty directory
        second = tmp_path / "from-s3.zip"
        assert target.test_cli_runner().invoke(args=["backup", str(second)]).exit_code == 0
        home = make_app(f"sqlite:///{tmp_path / 'home.db'}", BLOB_STORE="file", BLOB_DIR=str(tmp_path / "home"))
        try:
            assert home.test_cli_runner().invoke(args=["restore", str(second)]).exit_code == 0
            assert _objects(home) == _objects(app)
        finally:
            get_db(home).engine.dispose()
    finally:
        empty_store(target.extensions["carnet.blobs"])
        get_db(target).engine.dispose()


def test_a_bucket_that_does_not_answer_is_a_503_and_writes_nothing(app, client, db):
    created = create_patient(app)
    headers = bearer(activate(client, created)["access_token"])
    doc_id = _upload(client, headers, b"lisible\n").get_json()["id"]
    down = make_app(app.config["DATABASE_URL"], BLOB_STORE="s3", S3_BUCKET="carnet",
                    S3_ENDPOINT_URL="http://127.0.0.1:1", S3_ACCESS_KEY_ID="a", S3_SECRET_ACCESS_KEY="b")
    try:
        c = down.test_client()
        before = db.scalar(select(func.count()).select_from(Document))
        assert_problem(_upload(c, headers, b"perdu ?\n"), 503, "service_unavailable")
        db.expire_all()
        assert db.scalar(select(func.count()).select_from(Document)) == before
        assert_problem(c.get(f"/api/v1/record/documents/{doc_id}/content", headers=headers), 503,
                       "service_unavailable")
    finally:
        get_db(down).engine.dispose()


def test_the_migration_moves_rows_into_a_bucket(s3_app, patient, tmp_path):
    """`carnet db upgrade` with CARNET_BLOB_STORE=s3: the bytes of rows still in the database go to the bucket."""
    from sqlalchemy import text

    from backend import migrate

    url = f"sqlite:///{tmp_path / 'move.db'}"
    migrate.upgrade(url)
    config = {k: v for k, v in s3_app.config.items() if k.startswith(("S3_", "BLOB_"))}
    mover = make_app(url, **config)
    try:
        holder = create_patient(mover)
        r = _upload(mover.test_client(), bearer(activate(mover.test_client(), holder)["access_token"]),
                    b"dans la base\n")
        doc_id = r.get_json()["id"]
        store = mover.extensions["carnet.blobs"]
        migrate.downgrade(url, "blobs@-1", blobs=store)  # the bytes back in document_content…
        store.delete(blobs.document_key(doc_id))        # …and only there
        result = mover.test_cli_runner().invoke(args=["db", "upgrade"])
        assert result.exit_code == 0, result.output
        assert store.exists(blobs.document_key(doc_id))
        with get_db(mover).engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM document WHERE id = :i"), {"i": doc_id}).scalar() == 1
    finally:
        get_db(mover).engine.dispose()


