"""Helpers for driving the account lifecycle in tests."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
from flask import Flask
from flask.testing import FlaskClient

from backend.identity import nir_key

STRONG_PASSWORD = "Lune-Verte-42!x"
SHARED = Path(__file__).resolve().parents[2] / "shared"  # the shared fixtures (real documents, legacy exports)


def make_nir(first13: str) -> str:
    return first13 + nir_key(first13)


NIR_CAMILLE = make_nir("2840763220010")
NIR_LOUIS = make_nir("1900275123456")


@dataclass
class Created:
    patient_id: int
    nir: str
    birth_date: str
    code: str


def create_patient(app: Flask, nir: str = NIR_CAMILLE, birth_date: str = "1984-07-14", *, email: str | None = None,
                   family: str = "Martin", given: str = "Camille", sex: str = "F") -> Created:
    from backend.accounts import service as accounts
    from backend.db import get_session
    from backend.identity import InsTraits

    with app.app_context():
        session = get_session()
        settings = app.extensions["carnet.account_settings"]
        traits = InsTraits(nir=nir, birth_family_name=family, given_names=given,
                           birth_date=dt.date.fromisoformat(birth_date), sex=sex)
        patient, code = accounts.create_patient(session, settings, traits, email=email)
        session.commit()
        return Created(patient.id, nir, birth_date, code)


def assert_problem(response, status, code=None):
    """An API error: application/problem+json with its status, a title, a type and a detail (and `code`)."""
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert body["status"] == status
    assert body["detail"] and body["title"] and body["type"]
    if code:
        assert body["code"] == code
    return body


class Patient:
    """A signed-in patient: their id, the headers of their session, their NIR and TOTP secret."""

    def __init__(self, patient_id: int, headers: dict[str, str], nir: str = "", secret: str = "") -> None:
        self.id = patient_id
        self.headers = headers
        self.nir = nir
        self.secret = secret


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def next_totp(secret: str, at: dt.datetime | None = None) -> str:
    return pyotp.TOTP(secret).at(at or dt.datetime.now(dt.timezone.utc))


def activate(client: FlaskClient, created: Created, password: str = STRONG_PASSWORD) -> dict[str, Any]:
    """Activation + TOTP enrolment; returns {access_token, secret}."""
    r = client.post("/api/v1/activation", json={"nir": created.nir, "birth_date": created.birth_date,
                                                 "activation_code": created.code, "password": password})
    assert r.status_code == 201, r.get_json()
    enrolment = r.get_json()["token"]
    r = client.post("/api/v1/mfa/enrol", json={"method": "totp"}, headers=bearer(enrolment))
    assert r.status_code == 200, r.get_json()
    secret = r.get_json()["secret"]
    r = client.post("/api/v1/mfa/confirm", json={"code": next_totp(secret), "device_name": "Test phone"},
                    headers=bearer(enrolment))
    assert r.status_code == 200, r.get_json()
    return {"access_token": r.get_json()["access_token"], "secret": secret}


def login(client: FlaskClient, nir: str, secret: str, password: str = STRONG_PASSWORD,
          at: dt.datetime | None = None, device: str = "Phone") -> str:
    r = client.post("/api/v1/auth/login", json={"nir": nir, "password": password})
    assert r.status_code == 200, r.get_json()
    mfa = r.get_json()["token"]
    r = client.post("/api/v1/auth/verify", json={"code": next_totp(secret, at), "device_name": device},
                    headers=bearer(mfa))
    assert r.status_code == 200, r.get_json()
    return r.get_json()["access_token"]


# --- the blob store (documents' and attachments' bytes) ---------------------------------------------------

def sealed_document(db: Any, document_id: int) -> bytes:
    """A document's bytes as stored: sealed, in the blob store of the session's app."""
    from backend import blobs

    return blobs.of(db).get(blobs.document_key(document_id))


def sealed_attachment(db: Any, attachment_id: int) -> bytes:
    from backend import blobs

    return blobs.of(db).get(blobs.attachment_key(attachment_id))


def blob_keys(db: Any, kind: str = "") -> set[str]:
    """The keys of the objects of the session's store (``kind``: "documents" or "attachments")."""
    from backend import blobs

    return {info.key for info in blobs.of(db).list(f"{kind}/" if kind else "") if blobs.parse_key(info.key)}
