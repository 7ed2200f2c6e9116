"""What the document tests share: real documents (the ANS's CDA test contents, the imaging report PDF) and
other contents a patient uploads, a professional's deposit through the store (the signed-in patients
``camille`` and ``louis`` are fixtures of tests/conftest.py)."""
from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

from PIL import Image

from backend.db import get_session
from backend.professionals.models import Professional
from backend.professionals.service import create_professional
from backend.records.documents import service as documents, viewer
from backend.records import vault
from backend.records.documents.service import DocumentMeta
from backend.records.access.policy import Actor
from tests.helpers import SHARED

EXTERNAL = SHARED / "fixtures" / "external"
CDA3 = EXTERNAL / "ans-testcontenucda-3.0"
LDL_SES = CDA3 / "LDL-SES_2022.01.xml"              # level 3, discharge letter 11490-0
BIO_L1 = CDA3 / "DOC_NON_STRUCTURE_CDA-R2-N1.xml"   # level 1, PDF inside, biology 11502-2
IMG_PDF = EXTERNAL / "ans-drimbox" / "cda" / "IMG_CR_IMG_2023.11_Doc_metier.pdf"
# Real documents used to fill a record (bytes differ, so do hashes).
REAL_DOCUMENTS = sorted(CDA3.glob("*.xml")) + sorted((EXTERNAL / "ans-testcontenucda-2.41").glob("*.xml"))
RTF = (rb"{\rtf1\ansi\ansicpg1252\deff0{\fonttbl{\f0 Times New Roman;}}"
       rb"\f0\fs24 Compte rendu de kin\'e9sith\'e9rapie\par S\'e9ances 1 \'e0 10 : r\'e9\'e9ducation du genou.\par}")
TXT = "Mesures de tension relevées à domicile\n12/03 : 13/8\n13/03 : 12/7\n".encode()


def read(path: Path) -> bytes:
    return path.read_bytes()


def page_image(fmt: str, **options) -> bytes:
    """A real page (the imaging report PDF) saved in another format, as a patient's scan would be."""
    png, _ = viewer.render_page(read(IMG_PDF), 1, width=600)
    out = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").save(out, format=fmt, **options)
    return out.getvalue()


def make_pro(app, rpps: str = "10003456789", *, family: str = "Bideault", given: str = "Jacques",
             profession: str = "10", organisation: str = "Clinique du Belvédère") -> int:
    with app.app_context():
        session = get_session()
        pro, _token = create_professional(session, rpps=rpps, family_name=family, given_name=given,
                                          profession=profession, organisation=organisation)
        session.commit()
        return pro.id


def deposit(app, patient_id: int, content: bytes, *, pro_id: int | None = None, title: str = "Lettre de liaison",
            type_code: str | None = "11490-0", class_code: str | None = "10", mime: str = "text/xml",
            service_date: dt.datetime | None = None, submitted_at: dt.datetime | None = None,
            confidentiality: tuple[str, ...] = (), unique_id: str | None = None, source: str = "professional",
            author_name: str | None = "Jacques BIDEAULT", organisation: str | None = "Clinique du Belvédère",
            ) -> documents.Stored:
    with app.app_context():
        session = get_session()
        pro = session.get(Professional, pro_id) if pro_id else None
        meta = DocumentMeta(title=title, mime_type=mime, unique_id=unique_id, class_code=class_code,
                            type_code=type_code, type_system=documents.LOINC, author_professional_id=pro_id,
                            author_rpps=pro.rpps if pro else None, author_name=author_name,
                            author_profession=pro.profession_code if pro else None,
                            author_organisation=organisation, service_date=service_date,
                            submitted_at=submitted_at, confidentiality=confidentiality)
        stored = documents.store_document(session, vault(session), patient_id, content, meta, source=source,
                                          actor=Actor.of_professional(pro) if pro else None)
        session.commit()
        return stored
