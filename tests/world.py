"""Builders shared by the access tests (professionals, documents with sentinel titles and contents,
patients without the HTTP ceremony); tests/test_records_access_world.py checks they build what they say."""
from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from flask import Flask
from sqlalchemy.orm import Session

from backend.accounts import service as accounts
from backend.accounts.models import AccountState, Patient
from backend.db import utcnow
from backend.identity import InsTraits
from backend.professionals.models import Professional
from backend.professionals.service import create_professional
from backend.records.crypto import Vault
from backend.records.documents.service import write_content
from backend.records.documents.models import Document
from tests.helpers import make_nir


def rpps_of(n: int) -> str:
    """A distinct 11-digit RPPS per small integer."""
    return f"{10_000_000_000 + n}"


def nir_of(n: int) -> str:
    return make_nir(f"1{80 + n % 19:02d}{(n % 12) + 1:02d}75{(100 + n) % 1000:03d}{(n * 7) % 1000:03d}")


def make_pro(session: Session, n: int, family: str, given: str = "Alex", profession: str = "10", *,
             samu: bool = False) -> tuple[Professional, str]:
    """A professional and their bearer token for the professional API."""
    return create_professional(session, rpps=rpps_of(n), family_name=family, given_name=given,
                               profession=profession, samu_regulator=samu)


def make_patient(app: Flask, session: Session, n: int, *, given: str = "Camille", family: str = "Martin",
                 active: bool = True) -> Patient:
    """A patient with their record, active without the activation ceremony (no password, no token)."""
    settings = app.extensions["carnet.account_settings"]
    traits = InsTraits(nir=nir_of(n), birth_family_name=family, given_names=given,
                       birth_date=dt.date(1980, 1, 1 + n % 28), sex="F")
    patient, _ = accounts.create_patient(session, settings, traits)
    if active:
        patient.state = AccountState.ACTIVE
        patient.activated_at = utcnow()
    session.flush()
    return patient


def make_doc(app: Flask, session: Session, patient_id: int, name: str, *, category: str = "CPT_REND",
             type_code: str | None = None, author: Professional | None = None, masked: bool = False,
             invisible: bool = False, released: bool = False, deleted: bool = False,
             legal_hidden: bool = False, **extra: Any) -> Document:
    """A document whose title and bytes are sentinels (``TITLE-<name>-<patient>``, ``CONTENT-…``): a
    response that contains them has shown the document."""
    now = utcnow()
    content = sentinel_content(name, patient_id)
    doc = Document(patient_id=patient_id, unique_id=f"1.2.250.1.999.{patient_id}.{name}", category=category,
                   type_code=type_code, title=sentinel_title(name, patient_id), mime_type="text/plain",
                   size=len(content), sha256=hashlib.sha256(content).hexdigest(), source="professional" if author else "patient",
                   author_professional_id=author.id if author else None, author_rpps=author.rpps if author else None,
                   author_name=author.display_name if author else None,
                   author_profession=author.profession_code if author else None, submitted_at=now,
                   masked=masked, invisible_patient=invisible, released_at=now if (invisible and released) else None,
                   invisible_legal_representatives=legal_hidden, deleted_at=now if deleted else None, **extra)
    session.add(doc)
    session.flush()
    vault = Vault(session, app.extensions["carnet.keyring"])
    write_content(session, vault, doc, content)
    return doc


def sentinel_title(name: str, patient_id: int) -> str:
    return f"TITLE-{name}-{patient_id}"


def sentinel_content(name: str, patient_id: int) -> bytes:
    return f"CONTENT-{name}-{patient_id}".encode()
