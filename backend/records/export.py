""""Take my data with me": the patient's whole record, as a FHIR R4 Bundle or as a ZIP of the originals.

Both are generators, so a large record streams out in pieces: documents come from one streamed query
(``yield_per``) and are decrypted one at a time, the access history in batches. The caller has already
called ``access.authorize`` (which traces the export) and passes the ``Scope`` it returned: the export
holds exactly what the patient may see (not the INVISIBLE_PATIENT documents their author has not released).

- :func:`fhir_bundle` yields the text of a ``collection`` Bundle: Patient (with contacts), DocumentReference
  + Binary per document, the profile (AllergyIntolerance, Condition, FamilyMemberHistory,
  MedicationStatement, Immunization, Observation, advance directives as Consent), the authorisations and
  blocks (Consent), and the access history (AuditEvent). Entries reference each other by their ``fullUrl``
  (``<base>/<type>/<id>``, the server's FHIR base), so the file stands alone.
- :func:`zip_archive` yields the bytes of a ZIP: every original under ``documents/`` byte for byte, and
  ``manifest.json`` describing each file (title, category, dates, author, type, size, sha256).

Services only: a Session and a Vault in, no Flask.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.accounts.models import Patient
from backend.audit.models import AuditEntry
from backend.db import utcnow
import backend.fhir.profile_resources as pr
import backend.fhir.resources as fr
from backend.professionals.models import Professional
from backend.records.documents import service as docs
from backend.records.crypto import Vault
from backend.records.documents.content import ContentIntegrityError, read_content
from backend.records.access.models import Block, Consent
from backend.records.documents.models import Document
from backend.records.access.policy import Scope

DOCUMENT_BATCH = 20
AUDIT_BATCH = 500


class ExportIntegrityError(RuntimeError):
    """A stored document no longer matches its recorded hash: the export stops rather than ship it."""


def _documents(session: Session, vault: Vault, scope: Scope) -> Iterator[tuple[Document, bytes]]:
    """The documents the scope permits with their original bytes (from the blob store, one at a time),
    oldest first, one streamed query."""
    stmt = (select(Document).where(scope.document_filter()).order_by(Document.id)
            .execution_options(yield_per=DOCUMENT_BATCH))
    for doc in session.scalars(stmt):
        try:
            yield doc, read_content(session, vault, doc)
        except ContentIntegrityError as exc:
            raise ExportIntegrityError(str(exc)) from None


def _audit_entries(session: Session, patient_id: int) -> Iterator[AuditEntry]:
    last = 0
    while True:
        rows = list(session.scalars(select(AuditEntry).where(AuditEntry.patient_id == patient_id,
                                                             AuditEntry.seq > last)
                                    .order_by(AuditEntry.seq).limit(AUDIT_BATCH)))
        yield from rows
        if len(rows) < AUDIT_BATCH:
            return
        last = rows[-1].seq


def _profile(session: Session, vault: Vault, patient_id: int) -> dict[str, list[dict[str, Any]]]:
    from backend.records.profile import service as profile

    return profile.profile_for_export(session, vault, patient_id)


def _entry(base_url: str, resource: dict[str, Any]) -> str:
    url = f"{base_url}{resource['resourceType']}/{resource['id']}"
    return json.dumps({"fullUrl": url, "resource": resource}, ensure_ascii=False, separators=(",", ":"),
                      default=str)


def fhir_bundle(session: Session, vault: Vault, patient: Patient, scope: Scope, base_url: str,
                now: dt.datetime | None = None) -> Iterator[str]:
    """The whole record as the text of one FHIR R4 Bundle (type collection), in pieces.

    ``base_url`` ends with "/" (``https://…/fhir/R4/``): each entry's fullUrl is ``<base><type>/<id>``."""
    now = now or utcnow()
    subject = {"reference": f"{base_url}Patient/{patient.id}"}
    profile = _profile(session, vault, patient.id)

    yield json.dumps({"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "collection",
                      "timestamp": fr.instant(now)}, ensure_ascii=False)[:-1] + ',"entry":['
    holder = fr.patient(patient)
    contacts = [pr.contact(item) for item in profile.get("contact", [])]
    if contacts:
        holder["contact"] = contacts
    yield _entry(base_url, holder)

    document_urls: dict[int, str] = {}
    for doc, data in _documents(session, vault, scope):
        reference = fr.document_reference(doc, patient, base_url)
        reference["subject"] = {**subject, "identifier": reference["subject"]["identifier"]}
        document_urls[doc.id] = f"{base_url}DocumentReference/{doc.id}"
        yield "," + _entry(base_url, reference)
        yield "," + _entry(base_url, fr.binary(doc, data))

    today = now.date()
    for kind, items in profile.items():
        for item in items:
            if kind == "implant":   # two resources: the Device and the statement that the patient carries it
                for resource in pr.implant(item, subject, document_urls.get(item.get("document_id") or 0)):
                    yield "," + _entry(base_url, resource)
                continue
            resource = _profile_resource(kind, item, subject, today, document_urls)
            if resource is not None:
                yield "," + _entry(base_url, resource)

    for consent, pro in session.execute(select(Consent, Professional)
                                        .join(Professional, Professional.id == Consent.professional_id)
                                        .where(Consent.patient_id == patient.id).order_by(Consent.id)):
        yield "," + _entry(base_url, pr.authorisation(consent, pro, subject))
    for row in session.scalars(select(Block).where(Block.patient_id == patient.id).order_by(Block.id)):
        yield "," + _entry(base_url, pr.block(row, subject))
    for audit_entry in _audit_entries(session, patient.id):
        yield "," + _entry(base_url, pr.audit_event(audit_entry, subject))
    yield "]}"


def _profile_resource(kind: str, item: dict[str, Any], subject: dict[str, Any], today: dt.date,
                      document_urls: dict[int, str]) -> dict[str, Any] | None:
    if kind == "allergy":
        return pr.allergy(item, subject)
    if kind in ("disease", "hospitalisation", "disability"):
        return pr.condition(item, subject)
    if kind == "family_history":
        return pr.family_history(item, subject)
    if kind == "treatment":
        return pr.medication(item, subject, today)
    if kind == "vaccination":
        return pr.immunization(item, subject)
    if kind == "blood_group":
        return pr.blood_group(item, subject)
    if kind in ("lifestyle", "wish"):
        return pr.statement(item, subject)
    if kind == "measure":
        return pr.measure(item, subject)
    if kind == "organ_donation":
        return pr.organ_donation(item, subject)
    if kind == "directive":
        document = item.get("document") or {}
        return pr.directive(item, subject, document_urls.get(document.get("id")) if document else None)
    return None  # contacts are in Patient.contact


# --- ZIP of the originals -----------------------------------------------------------------------------------

class _Sink:
    """A write-only file for zipfile: what it writes is taken out piece by piece (no seek: data descriptors)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


def _slug(text: str, limit: int = 60) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9]+", "-", ascii_text).strip("-")
    return slug[:limit].rstrip("-") or "document"


def file_name(doc: Document, position: int) -> str:
    extension = docs.file_extension(doc.mime_type)
    when = (doc.service_date or doc.submitted_at).date().isoformat()
    return f"documents/{position:04d}_{when}_{_slug(doc.title)}.{extension}"


def _zip_time(value: dt.datetime) -> tuple[int, int, int, int, int, int]:
    value = max(value.astimezone(dt.timezone.utc), dt.datetime(1980, 1, 1, tzinfo=dt.timezone.utc))
    return (value.year, value.month, value.day, value.hour, value.minute, value.second)


def zip_archive(session: Session, vault: Vault, patient: Patient, scope: Scope,
                now: dt.datetime | None = None) -> Iterator[bytes]:
    """Every original the patient may see, byte for byte, and a manifest; streamed."""
    now = now or utcnow()
    sink = _Sink()
    manifest: list[dict[str, Any]] = []
    with zipfile.ZipFile(sink, "w") as archive:  # type: ignore[arg-type]
        for position, (doc, data) in enumerate(_documents(session, vault, scope), start=1):
            name = file_name(doc, position)
            info = zipfile.ZipInfo(name, date_time=_zip_time(doc.submitted_at))
            compressible = doc.mime_type.startswith("text/") or doc.mime_type.endswith("xml")
            info.compress_type = zipfile.ZIP_DEFLATED if compressible else zipfile.ZIP_STORED
            archive.writestr(info, data)
            manifest.append({
                "file": name, "document_id": doc.id, "unique_id": doc.unique_id, "title": doc.title,
                "category": doc.category, "class_code": doc.class_code, "type_code": doc.type_code,
                "mime_type": doc.mime_type, "size": doc.size, "sha256": doc.sha256,
                "service_date": fr.instant(doc.service_date), "submitted_at": fr.instant(doc.submitted_at),
                "source": doc.source, "author": {"name": doc.author_name, "rpps": doc.author_rpps,
                                                 "organisation": doc.author_organisation},
                "masked": doc.masked, "patient_comment": doc.patient_comment})
            yield sink.take()
        body = {"format": "carnet-export/1", "generated_at": fr.instant(now),
                "patient": {"ins": {"oid": patient.ins_oid, "value": patient.nir},
                            "family_name": patient.birth_family_name, "given_names": patient.given_names,
                            "birth_date": patient.birth_date.isoformat()},
                "documents": manifest}
        info = zipfile.ZipInfo("manifest.json", date_time=_zip_time(now))
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, json.dumps(body, ensure_ascii=False, indent=2))
    yield sink.take()
