"""The legacy import end to end, on SQLite and PostgreSQL: the whole fixture corpus through
`carnet migrate import`, the import on activation (task queue inline), the patient's status, report and
review, idempotency, identity, settings and hostile dossiers."""
from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from backend.records.documents import service as documents
from backend.records import vault
from backend.records.access.models import Block, Consent
from backend.records.documents.models import Document
from backend.records.models import Record
from migration.models import ImportItem, ImportRun
from tests.helpers import activate, bearer, create_patient
from tests.migration_support import (BIRTH, LAYOUT, NIR_277, NIR_FLUDR, NIR_PAT_SIX, NIR_PAT_TROIS, NIR_SAUVEUR,
                                     NIR_VSM, SEX, EXPECTED, build_legacy_dir)

# imported documents: source → (category, service date (UTC, ISO), author RPPS, patient)
IMPORTED = {
    (NIR_PAT_TROIS, "AVC-SUNV_2022.01.xml"): ("SYNTHESE", "2018-10-03T11:00:00+00:00", "01234567897"),
    (NIR_PAT_TROIS, "BIO-CR-BIO_2021.01_Auto-Presentable.xml"): ("BIOLOGIE", "2021-01-04T08:22:00+00:00", "01234534765"),
    (NIR_PAT_TROIS, "CNAM-HR_2021.01.xml"): ("REMB", "2019-01-01T14:45:00+00:00", None),
    (NIR_PAT_TROIS, "IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml"): ("RADIO_SC", "2021-01-08T09:25:00+00:00", "01234560801"),
    (NIR_PAT_TROIS, "VAC-NOTE_2023.01.xml"): ("CAR_VAC", "2021-04-09T14:35:00+00:00", "01234567897"),
    (NIR_PAT_TROIS, "eP-MED-DM_2024.01_PosoStruct.xml"): ("ORD_SOIN", "2023-12-01T08:10:00+00:00", "01234567897"),
    (NIR_PAT_TROIS, "TLM-CR_2022.01.xml"): ("CPT_REND", "2020-03-27T14:45:00+00:00", "01234567123"),
    (NIR_277, "eDISP-MED_2024.01.xml"): ("ORD_SOIN", "2024-12-25T08:00:00+00:00", None),
    (NIR_PAT_SIX, "KA202401/IHE_XDM/SS000001/KOS_1_1.DCM"): ("RADIO_SC", "2021-01-04T09:22:00+00:00", "99700367909"),
    (NIR_SAUVEUR, "XDM_2-CR-BIO/IHE_XDM/IHE_XDM/SUBSET01/DOC00001.XML"): ("BIOLOGIE", "2016-01-04T08:22:00+00:00",
                                                                        "01234567897"),
    (NIR_SAUVEUR, "XDM_VSM/IHE_XDM/IHE_XDM/SUBSET01/DOC00001.XML"): ("SYNTH_PML", "2016-07-11T12:27:58+00:00", None),
    (NIR_VSM, "VSM_v1.4.xml"): ("SYNTH_PML", "2012-03-28T10:17:00+00:00", "01234567897"),
    (NIR_FLUDR, "DLU_FLUDR_v1.2.xml"): ("SYNTHESE", "2008-09-29T08:49:14+00:00", "01234545872"),
}


def _patients(app: Flask, nirs: list[str] | None = None) -> dict[str, int]:
    return {nir: create_patient(app, nir=nir, birth_date=BIRTH[nir], sex=SEX[nir]).patient_id
            for nir in (nirs or list(LAYOUT))}


def _content(app: Flask, db: Any, doc: Document) -> bytes:
    with app.app_context():
        return documents.read_content(db, vault(db), doc)


def test_the_whole_fixture_corpus(app: Flask, runner: Any, db: Any, tmp_path: Path) -> None:
    legacy = build_legacy_dir(tmp_path)
    ids = _patients(app)
    report_path = tmp_path / "report.json"
    result = runner.invoke(args=["migrate", "import", str(legacy), "--report", str(report_path)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    report = json.loads(report_path.read_text())
    by_source = {(next(n for n, i in ids.items() if i == e["patient_id"]), e["source"]): e for e in report["items"]}
    # every file of the corpus is in the report, with a status; every quarantine has a precise reason
    for nir, files in LAYOUT.items():
        for src, name in files:
            if src.is_file() and not name.endswith((".pdf", ".zip")):
                assert (nir, name) in by_source, name
    for key, entry in by_source.items():
        assert entry["status"] in ("imported", "duplicate", "quarantined")
        assert set(entry) >= {"source", "status", "reason", "document_id", "sha256"}
        if key in EXPECTED:
            assert (entry["status"], entry["reason"]) == EXPECTED[key], key
        elif key[1] != "settings.json":
            assert entry["status"] == "imported", (key, entry["reason"], entry["detail"])
    assert summary["quarantined"] == len(EXPECTED) and summary["items"] == len(report["items"])
    assert summary["imported"] + summary["duplicate"] + summary["quarantined"] == summary["items"]

    for (nir, name), (category, service, rpps) in IMPORTED.items():
        entry = by_source[(nir, name)]
        doc = db.get(Document, entry["document_id"])
        assert doc.patient_id == ids[nir] and doc.source == "migration"
        assert doc.category == category, name
        assert doc.service_date.isoformat() == service, name
        assert doc.author_rpps == rpps, name
        original = _original(legacy / nir, name)
        assert entry["sha256"] == doc.sha256 == hashlib.sha256(original).hexdigest()
        assert _content(app, db, doc) == original  # identical bytes, decrypted from the record

    # every document in the record is one of the imported items, attached to the dossier's holder
    imported = [e for e in report["items"] if e["status"] == "imported" and e["document_id"]]
    assert db.scalar(select(func.count()).select_from(Document)) >= len(imported)
    for e in imported:
        assert db.get(Document, e["document_id"]).patient_id == e["patient_id"]
    # the DRIMbox KOS: XDS metadata only (DICOM), signature kept out, hash problems recorded
    kos = db.get(Document, by_source[(NIR_PAT_SIX, "KA202401/IHE_XDM/SS000001/KOS_1_1.DCM")]["document_id"])
    assert (kos.mime_type, kos.class_code, kos.type_code) == ("application/dicom", "31", "IMG-KOS")
    assert "hash_mismatch" in by_source[(NIR_SAUVEUR, "XDM_VSM/IHE_XDM/IHE_XDM/SUBSET01/DOC00001.XML")]["warnings"]
    # nothing of a quarantined item reaches any record
    for key, entry in by_source.items():
        if entry["status"] == "quarantined":
            assert entry["document_id"] is None
            if entry["sha256"]:
                assert db.scalar(select(func.count()).select_from(Document)
                                 .where(Document.sha256 == entry["sha256"])) == 0, key


def _original(dossier: Path, name: str) -> bytes:
    if "!/" in name:
        package, member = name.split("!/", 1)
        with zipfile.ZipFile(dossier / package) as zf:
            return zf.read(member)
    return (dossier / name).read_bytes()


def test_rerun_adds_nothing(app: Flask, runner: Any, db: Any, tmp_path: Path) -> None:
    legacy = build_legacy_dir(tmp_path, only=[NIR_277, NIR_SAUVEUR])
    _patients(app, [NIR_277, NIR_SAUVEUR])
    first = runner.invoke(args=["migrate", "import", str(legacy)])
    assert first.exit_code == 0, first.output
    docs = db.scalar(select(func.count()).select_from(Document))
    items = db.scalar(select(func.count()).select_from(ImportItem))
    again = runner.invoke(args=["migrate", "import", str(legacy)])
    assert again.exit_code == 0
    assert db.scalar(select(func.count()).select_from(Document)) == docs
    assert db.scalar(select(func.count()).select_from(ImportItem)) == items
    assert json.loads(again.output.strip().splitlines()[-1])["items"] == items


def test_duplicates_by_id_and_by_content_are_merged(app: Flask, runner: Any, db: Any, tmp_path: Path) -> None:
    legacy = build_legacy_dir(tmp_path, only=[NIR_277])
    dossier = legacy / NIR_277
    original = (dossier / "PPS-PAERPA_2021.01.xml").read_bytes()
    (dossier / "copy").mkdir()
    (dossier / "copy" / "same-bytes.xml").write_bytes(original)                      # same bytes, same id
    (dossier / "copy" / "same-id-crlf.xml").write_bytes(original.replace(b"\n", b"\r\n"))  # same id, other bytes
    ids = _patients(app, [NIR_277])
    assert runner.invoke(args=["migrate", "import", str(legacy)]).exit_code == 0
    rows = {r.source: r for r in db.scalars(select(ImportItem).where(ImportItem.patient_id == ids[NIR_277]))}
    kept = rows["PPS-PAERPA_2021.01.xml"]
    for name in ("copy/same-bytes.xml", "copy/same-id-crlf.xml"):
        assert rows[name].status == "duplicate" and rows[name].document_id == kept.document_id
    assert rows["copy/same-bytes.xml"].reason == "duplicate_unique_id"
    assert "same_id_different_bytes" in json.loads(rows["copy/same-id-crlf.xml"].provenance)["warnings"]
    assert db.scalar(select(func.count()).select_from(Document).where(Document.patient_id == ids[NIR_277])) == 4


def test_another_persons_document_never_reaches_the_account(app: Flask, runner: Any, db: Any,
                                                            tmp_path: Path) -> None:
    legacy = build_legacy_dir(tmp_path, only=[NIR_277])
    # a document of PAT-TROIS slipped into the dossier of NIR_277, loose and inside an XDM-looking zip
    other = (build_legacy_dir(tmp_path / "o", only=[NIR_PAT_TROIS]) / NIR_PAT_TROIS / "VAC-NOTE_2023.01.xml").read_bytes()
    (legacy / NIR_277 / "intrus.xml").write_bytes(other)
    ids = _patients(app, [NIR_277, NIR_PAT_TROIS])
    assert runner.invoke(args=["migrate", "import", str(legacy)]).exit_code == 0
    row = db.scalar(select(ImportItem).where(ImportItem.source == "intrus.xml"))
    assert (row.patient_id, row.status, row.reason) == (ids[NIR_277], "quarantined", "identity_other_person")
    digest = hashlib.sha256(other).hexdigest()
    assert db.scalar(select(func.count()).select_from(Document).where(Document.sha256 == digest)) == 0
    assert db.scalar(select(func.count()).select_from(Document).where(Document.patient_id == ids[NIR_PAT_TROIS])) == 0


def test_activation_imports_on_the_queue_and_the_patient_follows_it(app: Flask, client: Any, db: Any,
                                                                    tmp_path: Path) -> None:
    legacy = build_legacy_dir(tmp_path, only=[NIR_PAT_TROIS])
    app.config["LEGACY_DIR"] = str(legacy)
    try:
        created = create_patient(app, nir=NIR_PAT_TROIS, birth_date=BIRTH[NIR_PAT_TROIS], sex="F")
        token = activate(client, created)["access_token"]
    finally:
        app.config["LEGACY_DIR"] = None
    r = client.get("/api/v1/migration/status", headers=bearer(token))
    assert r.status_code == 200, r.get_json()
    status = r.get_json()
    assert status["state"] == "done" and status["processed"] == status["total"] > 20
    assert status["counts"]["imported"] >= 17 and status["counts"]["quarantined"] == 9
    # the report, paginated: where each item came from and why it was set aside
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        r = client.get("/api/v1/migration/items", query_string={"limit": 10, **({"cursor": cursor} if cursor else {})},
                       headers=bearer(token))
        assert r.status_code == 200
        seen.extend(r.get_json()["items"])
        cursor = r.get_json()["next_cursor"]
        if not cursor:
            break
    assert len(seen) == status["processed"]
    us = next(i for i in seen if i["source"] == "samplexdm.zip › Document01.xml")
    assert us["status"] == "quarantined" and us["reason"] == "identity_missing"
    assert "identifiant national" in us["reason_text"]
    vac = next(i for i in seen if i["source"] == "VAC-NOTE_2023.01.xml")
    assert vac["category"] == "CAR_VAC" and vac["document_id"] and vac["entries"] == {"vaccination": 1}
    # the imported documents are in the patient's record, through the records API
    r = client.get(f"/api/v1/record/documents/{vac['document_id']}", headers=bearer(token))
    assert r.status_code == 200
    # two summaries disagree on the problem/allergy lists: entries are flagged for the review
    r = client.get("/api/v1/migration/conflicts", headers=bearer(token))
    assert r.status_code == 200
    groups = r.get_json()["groups"]
    if groups:
        entry = groups[0]["entries"][0]
        r = client.post(f"/api/v1/migration/conflicts/{groups[0]['kind']}/{entry['id']}", json={"decision": "hide"},
                        headers=bearer(token))
        assert r.status_code == 200
        remaining = {e["id"] for g in r.get_json()["groups"] for e in g["entries"]}
        assert entry["id"] not in remaining
    assert client.post("/api/v1/migration/review", headers=bearer(token)).get_json()["reviewed_at"]


def test_conflicting_allergy_lists_are_flagged(app: Flask, client: Any, db: Any, tmp_path: Path) -> None:
    legacy = build_legacy_dir(tmp_path, only=[NIR_PAT_TROIS])
    dossier = legacy / NIR_PAT_TROIS
    for p in dossier.rglob("*"):
        if p.is_file() and p.name not in ("IPS-FR_2024.01.xml", "LDL-SES_2022.01.xml"):
            p.unlink()
    # a second summary of the same patient whose allergy list says something else
    ips = (dossier / "IPS-FR_2024.01.xml").read_bytes()
    changed = ips.replace(b"1.2.250.1.213.1.1.1.51.2024.1.1", b"1.2.250.1.213.1.1.1.51.2024.1.9")
    changed = changed.replace(b'<code code="XM5DJ7" displayName="PARACETAMOL"', b'<code code="XM9ZZ1" displayName="LATEX"', 1)
    (dossier / "IPS-bis.xml").write_bytes(changed)
    app.config["LEGACY_DIR"] = str(legacy)
    try:
        token = activate(client, create_patient(app, nir=NIR_PAT_TROIS, birth_date=BIRTH[NIR_PAT_TROIS]))["access_token"]
    finally:
        app.config["LEGACY_DIR"] = None
    groups = client.get("/api/v1/migration/conflicts", headers=bearer(token)).get_json()["groups"]
    kinds = {g["kind"] for g in groups}
    assert "allergy" in kinds
    assert client.get("/api/v1/migration/status", headers=bearer(token)).get_json()["open_conflicts"] >= 2
    allergy = next(g for g in groups if g["kind"] == "allergy")
    for e in allergy["entries"]:
        r = client.post(f"/api/v1/migration/conflicts/allergy/{e['id']}", json={"decision": "confirm"},
                        headers=bearer(token))
        assert r.status_code == 200
    r = client.post(f"/api/v1/migration/conflicts/allergy/{allergy['entries'][0]['id']}", json={"decision": "hide"},
                    headers=bearer(token))
    assert r.status_code == 404 and r.mimetype == "application/problem+json"


def test_settings_applied_through_the_access_services(app: Flask, runner: Any, db: Any, tmp_path: Path) -> None:
    from backend.professionals.service import create_professional

    legacy = build_legacy_dir(tmp_path, only=[NIR_277])
    (legacy / NIR_277 / "settings.json").write_text(json.dumps({
        "version": 1,
        "authorised_professionals": [{"rpps": "10001234567"},
                                     {"rpps": "10007654321", "family_name": "Durand", "given_name": "Anne",
                                      "profession": "60", "since": "2019-05-01"}],
        "blocked_professionals": [{"rpps": "10009999999"}],
        "medecin_traitant": {"rpps": "10001234567"},
        "emergency": {"samu": False, "break_the_glass": True, "masked_documents": True},
        "mask_new_documents": True}))
    ids = _patients(app, [NIR_277])
    with app.app_context():
        from backend.db import get_session

        s = get_session()
        create_professional(s, rpps="10001234567", family_name="Martin", given_name="Luc", profession="10")
        s.commit()
    assert runner.invoke(args=["migrate", "import", str(legacy)]).exit_code == 0
    pid = ids[NIR_277]
    item = db.scalar(select(ImportItem).where(ImportItem.source == "settings.json"))
    assert item.status == "imported", item.reason_detail
    record = db.scalar(select(Record).where(Record.patient_id == pid))
    assert (record.emergency_samu, record.emergency_btg, record.emergency_masked, record.mask_new_documents) == \
        (False, True, True, True)
    assert record.medecin_traitant_id is not None
    assert db.scalar(select(func.count()).select_from(Consent).where(Consent.patient_id == pid)) == 2
    assert db.scalar(select(Block.rpps).where(Block.patient_id == pid)) == "10009999999"


@pytest.mark.parametrize("settings,reason,detail", [
    ('{"version": 1, "blocked_professionals": [{"rpps": "10009999999"}], "emergency": {"samu": "non"}}',
     "settings_invalid", "/emergency/samu"),
    ('{"version": 1, "blocked_professionals": [{"rpps": "10009999999"}], '
     '"authorised_professionals": [{"rpps": "10001111111"}]}', "settings_not_applicable", "unknown professional"),
])
def test_invalid_settings_apply_nothing(app: Flask, runner: Any, db: Any, tmp_path: Path, settings: str,
                                        reason: str, detail: str) -> None:
    legacy = build_legacy_dir(tmp_path, only=[NIR_277])
    (legacy / NIR_277 / "settings.json").write_text(settings)
    ids = _patients(app, [NIR_277])
    assert runner.invoke(args=["migrate", "import", str(legacy)]).exit_code == 0
    item = db.scalar(select(ImportItem).where(ImportItem.source == "settings.json"))
    assert (item.status, item.reason) == ("quarantined", reason) and detail in item.reason_detail
    assert db.scalar(select(func.count()).select_from(Block).where(Block.patient_id == ids[NIR_277])) == 0
    record = db.scalar(select(Record).where(Record.patient_id == ids[NIR_277]))
    assert record.emergency_samu is True
    # the documents still come in
    assert db.scalar(select(func.count()).select_from(Document).where(Document.patient_id == ids[NIR_277])) == 4


def test_hostile_dossier(app: Flask, runner: Any, db: Any, tmp_path: Path) -> None:
    legacy = tmp_path / "legacy"
    dossier = legacy / NIR_277
    dossier.mkdir(parents=True)
    (dossier / "xxe.xml").write_bytes(b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                                      b'<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&x;</title></ClinicalDocument>')
    (dossier / "laughs.xml").write_bytes(b'<!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><l>&b;</l>')
    with zipfile.ZipFile(dossier / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("IHE_XDM/SUBSET01/DOC00001.XML", b"\0" * (50 * 1024 * 1024))
    with zipfile.ZipFile(dossier / "travel.zip", "w") as zf:
        zf.writestr("../../outside.xml", b"<x/>")
    ids = _patients(app, [NIR_277])
    result = runner.invoke(args=["migrate", "import", str(legacy)])
    assert result.exit_code == 0, result.output
    rows = {r.source: (r.status, r.reason) for r in db.scalars(select(ImportItem))}
    assert rows == {"xxe.xml": ("quarantined", "xml_entities"), "laughs.xml": ("quarantined", "xml_entities"),
                    "bomb.zip": ("quarantined", "zip_bomb"), "travel.zip": ("quarantined", "zip_path_traversal")}
    assert not (tmp_path / "outside.xml").exists()
    assert db.scalar(select(func.count()).select_from(Document).where(Document.patient_id == ids[NIR_277])) == 0


def test_migrate_status_and_no_dossier(app: Flask, runner: Any, db: Any, tmp_path: Path, client: Any) -> None:
    legacy = build_legacy_dir(tmp_path, only=[NIR_277])
    app.config["LEGACY_DIR"] = str(legacy)
    try:
        _patients(app, [NIR_277])
        r = runner.invoke(args=["migrate", "status"])
        assert json.loads(r.output)["dossiers"] == {"total": 1, "done": 0, "pending": 1}
        assert runner.invoke(args=["migrate", "import", str(legacy)]).exit_code == 0
        r = runner.invoke(args=["migrate", "status"])
        out = json.loads(r.output)
        assert out["dossiers"]["pending"] == 0 and out["runs"] == {"done": 1}
        # an activated account without a legacy dossier: "no_dossier", nothing else
        token = activate(client, create_patient(app, nir=NIR_VSM, birth_date=BIRTH[NIR_VSM]))["access_token"]
        assert client.get("/api/v1/migration/status", headers=bearer(token)).get_json()["state"] == "no_dossier"
        assert db.scalar(select(ImportRun.state).where(ImportRun.trigger == "activation")) == "no_dossier"
    finally:
        app.config["LEGACY_DIR"] = None
