"""What the inbox tests share: the two sides' addresses, a Communication as a professional's EHR writes it and
its sending, and reading back a thread and an extension (the ``world`` fixture, two patients and three
professionals, is in tests/conftest.py)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from backend.messaging.models import Message
from tests.fhir_helpers import Pro

FHIR = "/fhir/R4/Communication"
INBOX = "/api/v1/inbox"
INS = "urn:oid:1.2.250.1.213.1.4.8"
EXT = "https://carnet.example/fhir/StructureDefinition"
IDNPS = "urn:oid:1.2.250.1.71.4.2.1"


@dataclass
class PatientSide:
    id: int
    nir: str
    headers: dict[str, str]


@dataclass
class World:
    camille: PatientSide
    louis: PatientSide
    durand: Pro      # writes to Camille
    petit: Pro       # in copy of some threads
    moreau: Pro      # never wrote to anyone
    extra: dict[str, Any] = field(default_factory=dict)


def communication(nir: str, subject: str | None, text_: str | None, *, answers: int | None = None,
                  attachments: list[dict[str, Any]] = (), copies: list[str] = (), replies_allowed: bool | None = None,
                  establishment: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Communication", "status": "completed",
                            "subject": {"identifier": {"system": INS, "value": nir}}, "payload": []}
    if subject is not None:
        body["topic"] = {"text": subject}
    if text_ is not None:
        body["payload"].append({"contentString": text_})
    for attachment in attachments:
        body["payload"].append({"contentAttachment": attachment})
    if not body["payload"]:
        del body["payload"]
    if answers is not None:
        body["inResponseTo"] = [{"reference": f"Communication/{answers}"}]
    if copies:
        body["recipient"] = [{"identifier": {"system": IDNPS, "value": "8" + rpps}} for rpps in copies]
    extensions = []
    if replies_allowed is not None:
        extensions.append({"url": f"{EXT}/communication-replies-allowed", "valueBoolean": replies_allowed})
    if establishment:
        extensions.append({"url": f"{EXT}/communication-establishment", "valueString": establishment})
    if extensions:
        body["extension"] = extensions
    return body


def send(client, pro: Pro, nir: str, subject: str | None = "Résultats de votre bilan sanguin",
         text_: str | None = "Bonjour, vos résultats sont normaux.", expect: int = 201, **kw: Any) -> dict[str, Any]:
    r = client.post(FHIR, headers=pro.headers(), data=json.dumps(communication(nir, subject, text_, **kw)),
                    content_type="application/fhir+json")
    assert r.status_code == expect, r.get_data(as_text=True)
    return r.get_json()


def thread_of(db, message_id: int) -> int:
    db.expire_all()
    return db.scalar(select(Message.thread_id).where(Message.id == int(message_id)))


def extension(resource: dict[str, Any], name: str) -> Any:
    for ext in resource.get("extension", []):
        if ext["url"] == f"{EXT}/{name}":
            return next(v for k, v in ext.items() if k.startswith("value"))
    return None


def outcome_code(response) -> str:
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome", body
    return body["issue"][0]["details"]["coding"][0]["code"]
