"""Backup and restore drills: `carnet backup` then `carnet restore` into an empty database of each kind
(SQLite→SQLite, PostgreSQL→PostgreSQL, and across), compared table by table and row by row; the audit
chain still verifies and an encrypted document decrypts byte for byte with the same keys."""
from __future__ import annotations

import hashlib
import io
import json
import secrets
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, func, select, text

from backend.tools import backup as backups
from backend.db import get_db
from backend.records.access import consents
from tests.conftest import POSTGRES_URL, IN_CI, make_app, pg_url
from tests.helpers import NIR_LOUIS, activate, bearer, create_patient
from tests.world import make_doc, make_pro



def _scan() -> bytes:
    """A real PNG whose pixels take every byte value: binary, not text."""
    from PIL import Image

    out = io.BytesIO()
    Image.frombytes("L", (64, 64), bytes(range(256)) * 16).save(out, format="PNG")
    return out.getvalue()


SCAN = _scan()


def _targets() -> list[Any]:
    out: list[Any] = ["sqlite"]
    if POSTGRES_URL or IN_CI:
        out.append(pytest.param("postgresql", marks=pytest.mark.postgres))
    return out


@pytest.fixture
def empty_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with nothing in it, not even a schema (restore creates it at the archive's revisions)."""
    kind = request.param
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'restored.db'}"
        return
    base = pg_url()
    schema = f"carnet_restore_{secrets.token_hex(4)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def populate(app: Flask, client: Any, db: Any) -> dict[str, Any]:
    """A little of everything, made the way the app makes it: accounts, documents (one replaced by another,
    one binary), consents, a block, a profile entry, notifications, the audit trail."""
    camille = create_patient(app, email="camille@example.org")
    tokens = activate(client, camille)
    headers = bearer(tokens["access_token"])
    louis = create_patient(app, NIR_LOUIS, "1990-02-01", given="Louis", family="Bernard", sex="M")
    activate(client, louis)
    r = client.post("/api/v1/record/documents", headers=headers, content_type="multipart/form-data",
                    data={"file": (io.BytesIO(SCAN), "scan.png"), "category": "BIOLOGIE", "title": "Bilan"})
    assert r.status_code == 201, r.get_json()
    scan_id = r.get_json()["id"]
    pro, _ = make_pro(db, 1, "Curie", "Marie")
    blocked, _ = make_pro(db, 2, "Bloque", "Bob")
    consents.grant(db, camille.patient_id, pro.id)
    consents.block(db, camille.patient_id, blocked.rpps)
    old = make_doc(app, db, camille.patient_id, "old", author=pro)
    new = make_doc(app, db, camille.patient_id, "new", author=pro)
    old.replaced_by_id = new.id  # a row that points to a later row of its own table
    db.commit()
    r = client.post("/api/v1/record/profile/allergy", headers=headers,
                    json={"substance": "Pénicilline", "severity": "severe", "since": "2012"})
    assert r.status_code in (200, 201), r.get_json()
    return {"headers": headers, "scan_id": scan_id, "patient_id": camille.patient_id}


def objects(app: Flask) -> dict[str, bytes]:
    """Every object of an app's blob store, by key."""
    store = app.extensions["carnet.blobs"]
    return {info.key: store.get(info.key) for info in store.list()}


def dump(url: str) -> dict[str, list[dict[str, Any]]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {t.name: list(backups.table_rows(conn, t)) for t in backups.metadata().sorted_tables}
    finally:
        engine.dispose()


def app_url(app: Flask) -> str:
    return app.config["SQLALCHEMY_URL"]


@pytest.mark.parametrize("empty_target", _targets(), indirect=True)
def test_backup_then_restore_into_an_empty_database_loses_nothing(app, client, db, runner, empty_target, tmp_path):
    world = populate(app, client, db)
    archive = tmp_path / "carnet.zip"
    result = runner.invoke(args=["backup", str(archive)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["rows"] > 20 and summary["blobs"] == 3  # the three documents' bytes, from the blob store

    restored = make_app(empty_target)
    try:
        result = restored.test_cli_runner().invoke(args=["restore", str(archive)])
        assert result.exit_code == 0, result.output
        # every table, row by row (ids, encrypted bytes, timestamps, hashes)
        source, target = dump(app_url(app)), dump(empty_target)
        assert set(source) == set(target)
        for table in source:
            assert target[table] == source[table], f"table {table} differs after the restore"
        assert sum(len(rows) for rows in target.values()) == summary["rows"]
        # the restored store holds the same objects, byte for byte (sealed as they were)
        assert objects(restored) == objects(app) and len(objects(app)) == 3

        verify = restored.test_cli_runner().invoke(args=["audit", "verify"])
        assert verify.exit_code == 0 and "entries verified" in verify.output, verify.output

        # the same bearer token and the same keys read the same bytes
        rclient = restored.test_client()
        content = rclient.get(f"/api/v1/record/documents/{world['scan_id']}/content", headers=world["headers"])
        assert content.status_code == 200 and content.get_data() == SCAN
        # and the restored database takes new rows (PostgreSQL's sequences follow the restored ids)
        r = rclient.post("/api/v1/record/documents", headers=world["headers"], content_type="multipart/form-data",
                         data={"file": (io.BytesIO(b"apres restauration\n"), "note.txt")})
        assert r.status_code == 201, r.get_json()
        assert r.get_json()["id"] > max(row["id"] for row in source["document"])

        # a second restore into what is now a database with data: refused, nothing touched
        before = dump(empty_target)
        again = restored.test_cli_runner().invoke(args=["restore", str(archive)])
        assert again.exit_code == 1 and "not empty" in again.output, again.output
        assert dump(empty_target) == before
        # --force replaces the content with the archive's
        forced = restored.test_cli_runner().invoke(args=["restore", "--force", str(archive)])
        assert forced.exit_code == 0, forced.output
        assert dump(empty_target) == source
        assert objects(restored) == objects(app)  # the note's object went with its row
    finally:
        get_db(restored).engine.dispose()


def test_the_archive_is_portable_and_describes_itself(app, client, db, runner, tmp_path):
    populate(app, client, db)
    archive = tmp_path / "carnet.zip"
    assert runner.invoke(args=["backup", str(archive)]).exit_code == 0
    with zipfile.ZipFile(archive) as z:
        manifest = json.loads(z.read("manifest.json"))
        assert manifest["format"] == "carnet-backup" and manifest["version"] == 2
        engine = get_db(app).engine
        with engine.connect() as conn:
            heads = sorted(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
            assert manifest["alembic_revisions"] == heads
            names = [t["name"] for t in manifest["tables"]]
            assert names == [t.name for t in backups.metadata().sorted_tables]  # dependency order
            for entry in manifest["tables"]:
                data = z.read(entry["file"])
                assert hashlib.sha256(data).hexdigest() == entry["sha256"]
                assert len(data.splitlines()) == entry["rows"]
                table = backups.metadata().tables[entry["name"]]
                assert entry["rows"] == conn.scalar(select(func.count()).select_from(table))
        # the documents' bytes: one member per object, sealed as stored, listed with their size and digest
        listed = [json.loads(line) for line in z.read("blobs.jsonl").splitlines()]
        assert manifest["blobs"] == {"file": "blobs.jsonl", "count": 3,
                                     "sha256": hashlib.sha256(z.read("blobs.jsonl")).hexdigest()}
        assert {item["key"] for item in listed} == set(objects(app))
        for item in listed:
            data = z.read(f"blobs/{item['key']}")
            assert (len(data), hashlib.sha256(data).hexdigest()) == (item["size"], item["sha256"])
            assert SCAN not in data and data == objects(app)[item["key"]]


@pytest.mark.parametrize("damage", ["digest", "version", "not_a_zip", "unknown_table", "blob", "blob_missing",
                                    "version_1"])
def test_a_damaged_or_foreign_archive_is_refused_and_nothing_is_written(app, client, db, runner, tmp_path, damage):
    populate(app, client, db)
    good, bad = tmp_path / "good.zip", tmp_path / "bad.zip"
    assert runner.invoke(args=["backup", str(good)]).exit_code == 0
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        manifest = json.loads(src.read("manifest.json"))
        for item in src.infolist():
            data = src.read(item.filename)
            if damage == "digest" and item.filename == "tables/document.jsonl":
                data = data.replace(b'"masked":false', b'"masked":true', 1)
            if damage == "blob" and item.filename.startswith("blobs/"):
                data = bytes([data[0] ^ 1]) + data[1:]
            if damage == "blob_missing" and item.filename.startswith("blobs/"):
                continue
            if item.filename != "manifest.json":
                dst.writestr(item.filename, data)
        if damage == "version":
            manifest["version"] = 99
        if damage == "version_1":
            manifest["version"] = 1
        if damage == "unknown_table":
            manifest["tables"].append({"name": "mystery", "file": "tables/mystery.jsonl", "rows": 0,
                                       "sha256": hashlib.sha256(b"").hexdigest(), "columns": []})
            dst.writestr("tables/mystery.jsonl", b"")
        dst.writestr("manifest.json", json.dumps(manifest))
    if damage == "not_a_zip":
        bad.write_bytes(b"PK\x03\x04 this is not a zip")
    target = tmp_path / "target.db"
    restored = make_app(f"sqlite:///{target}")
    try:
        result = restored.test_cli_runner().invoke(args=["restore", str(bad)])
        assert result.exit_code == 1, result.output
        assert result.output.startswith("error: "), result.output
        if target.exists():
            assert all(not rows for name, rows in dump(f"sqlite:///{target}").items() if name != "audit_head")
        assert objects(restored) == {}  # and not one object in the store
    finally:
        get_db(restored).engine.dispose()


def test_restore_refuses_a_database_at_other_revisions(app, client, db, runner, tmp_path):
    populate(app, client, db)
    archive = tmp_path / "carnet.zip"
    assert runner.invoke(args=["backup", str(archive)]).exit_code == 0
    target = f"sqlite:///{tmp_path / 'older.db'}"
    from backend import migrate

    migrate.upgrade(target, "0001_foundation")
    restored = make_app(target)
    try:
        result = restored.test_cli_runner().invoke(args=["restore", str(archive)])
        assert result.exit_code == 1 and "revisions" in result.output, result.output
    finally:
        get_db(restored).engine.dispose()
