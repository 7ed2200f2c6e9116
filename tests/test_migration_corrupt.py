"""One damaged file in a legacy zip does not fail the dossier: a real zip whose entry lies about its size
(the archive's checks pass, the CRC-32 does not), as loose documents and inside an XDM package. The damaged
item is set aside with its reason (patient words, French and English, in the report); everything else of the
dossier is imported."""
from __future__ import annotations

import shutil
import struct
import zipfile
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from backend.records.documents.models import Document
from migration.models import ImportItem
from migration.readers.archive import ArchiveRefused, ZipFiles
from tests.helpers import activate, bearer, create_patient
from tests.migration_support import BIRTH, INSC_SAUVEUR, NIR_PAT_TROIS, NIR_SAUVEUR, SEX, V3, V222

LOOSE = ["AVC-SUNV_2022.01.xml", "TLM-CR_2022.01.xml", "VAC-NOTE_2023.01.xml"]  # three of Mme Trois's documents


def lie_about_size(path: Path, member: str, by: int = -100) -> None:
    """Rewrite the uncompressed size of ``member``, in its local header and the central directory, as a
    damaged or forged archive would carry it. The data and its CRC-32 stay as they were."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
        offset, size = info.header_offset, info.file_size
    data = bytearray(path.read_bytes())
    assert data[offset:offset + 4] == b"PK\x03\x04"
    struct.pack_into("<I", data, offset + 22, size + by)
    central = data.find(b"PK\x01\x02")
    while central != -1:
        name_length = struct.unpack_from("<H", data, central + 28)[0]
        if bytes(data[central + 46:central + 46 + name_length]) == member.encode():
            struct.pack_into("<I", data, central + 24, size + by)
            break
        central = data.find(b"PK\x01\x02", central + 4)
    else:
        raise AssertionError("member not in the central directory")
    path.write_bytes(bytes(data))


def zip_folder(source: Path, target: Path) -> None:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(source.parent).as_posix())


def test_the_crafted_zip_passes_the_archive_checks_and_fails_its_crc(tmp_path: Path) -> None:
    package = tmp_path / "export.zip"
    with zipfile.ZipFile(package, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in LOOSE:
            zf.write(V3 / name, name)
    lie_about_size(package, "TLM-CR_2022.01.xml")
    with zipfile.ZipFile(package) as zf, pytest.raises(zipfile.BadZipFile, match="CRC"):
        zf.read("TLM-CR_2022.01.xml")  # what the standard library says of it
    files = ZipFiles(package, label="export.zip")  # the archive checks pass: sizes and ratios look fine
    with pytest.raises(ArchiveRefused) as refused:
        files.read("TLM-CR_2022.01.xml")
    assert refused.value.reason == "zip_entry_corrupt"
    assert files.read("VAC-NOTE_2023.01.xml") == (V3 / "VAC-NOTE_2023.01.xml").read_bytes()


def _import(runner: Any, legacy: Path) -> None:
    result = runner.invoke(args=["migrate", "import", str(legacy)])
    assert result.exit_code == 0, result.output


def _rows(db: Any, patient_id: int) -> dict[str, tuple[str, str | None]]:
    db.expire_all()
    return {r.source: (r.status, r.reason) for r in db.scalars(select(ImportItem).where(ImportItem.patient_id == patient_id))}


def test_a_damaged_entry_is_set_aside_and_the_rest_of_the_zip_is_imported(app: Flask, runner: Any, db: Any,
                                                                          client: Any, tmp_path: Path) -> None:
    dossier = tmp_path / "legacy" / NIR_PAT_TROIS
    dossier.mkdir(parents=True)
    with zipfile.ZipFile(dossier / "export.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for name in LOOSE:
            zf.write(V3 / name, name)
    lie_about_size(dossier / "export.zip", "TLM-CR_2022.01.xml")
    created = create_patient(app, nir=NIR_PAT_TROIS, birth_date=BIRTH[NIR_PAT_TROIS], sex=SEX[NIR_PAT_TROIS])
    _import(runner, tmp_path / "legacy")
    assert _rows(db, created.patient_id) == {
        "export.zip!/AVC-SUNV_2022.01.xml": ("imported", None),
        "export.zip!/VAC-NOTE_2023.01.xml": ("imported", None),
        "export.zip!/TLM-CR_2022.01.xml": ("quarantined", "zip_entry_corrupt"),
    }
    assert db.scalar(select(func.count()).select_from(Document).where(Document.patient_id == created.patient_id)) == 2
    # the patient reads why, in their words
    token = bearer(activate(client, created)["access_token"])
    items = client.get("/api/v1/migration/items", headers=token).get_json()["items"]
    damaged = next(i for i in items if i["reason"] == "zip_entry_corrupt")
    assert damaged["reason_text"].startswith("Fichier abîmé dans l'archive")
    english = client.get("/api/v1/migration/items", headers={**token, "Accept-Language": "en"}).get_json()["items"]
    assert next(i for i in english if i["reason"] == "zip_entry_corrupt")["reason_text"].startswith("A damaged file")
    # a re-run does not try the damaged entry again as a new item, nor add anything
    _import(runner, tmp_path / "legacy")
    assert db.scalar(select(func.count()).select_from(Document).where(Document.patient_id == created.patient_id)) == 2


def test_a_damaged_document_or_metadata_in_an_xdm_zip(app: Flask, runner: Any, db: Any, tmp_path: Path) -> None:
    """XDM packages, zipped: a damaged document is set aside alone; damaged metadata sets its package aside;
    the dossier's other package is imported either way."""
    dossier = tmp_path / "legacy" / NIR_SAUVEUR
    dossier.mkdir(parents=True)
    (dossier / "settings.json").write_text(
        '{"version": 1, "identifiers": [{"oid": "1.2.250.1.213.1.4.2", "value": "%s"}]}' % INSC_SAUVEUR)
    shutil.copytree(V222 / "xdm" / "XDM_VSM", dossier / "XDM_VSM")
    zip_folder(V222 / "xdm" / "XDM_2-CR-BIO", dossier / "bio.zip")
    with zipfile.ZipFile(dossier / "bio.zip") as zf:
        names = zf.namelist()
    document = next(n for n in names if n.endswith("SUBSET01/DOC00001.XML"))
    metadata = next(n for n in names if n.endswith("SUBSET01/METADATA.XML"))
    lie_about_size(dossier / "bio.zip", document)
    created = create_patient(app, nir=NIR_SAUVEUR, birth_date=BIRTH[NIR_SAUVEUR], sex=SEX[NIR_SAUVEUR])
    _import(runner, tmp_path / "legacy")
    rows = _rows(db, created.patient_id)
    assert rows[f"bio.zip!/{document}"] == ("quarantined", "zip_entry_corrupt")
    assert rows["XDM_VSM/IHE_XDM/IHE_XDM/SUBSET01/DOC00001.XML"] == ("imported", None)
    assert rows["settings.json"] == ("imported", None)

    # the metadata damaged instead: the package is set aside whole, with the reason; the rest goes on
    other = tmp_path / "legacy2" / NIR_SAUVEUR
    shutil.copytree(dossier, other)
    (other / "bio.zip").unlink()
    zip_folder(V222 / "xdm" / "XDM_2-CR-BIO", other / "bio.zip")
    lie_about_size(other / "bio.zip", metadata)
    db.execute(ImportItem.__table__.delete())
    db.execute(Document.__table__.delete())
    db.commit()
    _import(runner, tmp_path / "legacy2")
    rows = _rows(db, created.patient_id)
    assert rows[f"bio.zip!/{metadata}"] == ("quarantined", "zip_entry_corrupt")
    assert rows["XDM_VSM/IHE_XDM/IHE_XDM/SUBSET01/DOC00001.XML"] == ("imported", None)
