"""The demo patient's record as a newcomer should find it (``carnet demo``): documents of several kinds,
a medical profile with months of measures, directives, an appointment to come and one gone by, slots to
book, a connected service, and an access history with a professional's reading and an emergency access.

Everything goes through the services the API and the professionals' software use (``store_document``,
``add_entries``, ``add_directive_version``, the agenda, the catalogue, ``authorize``), so the demo shows
what the product really does, traces and notifications included. Each part checks first whether it is
already there: running ``carnet demo`` again adds nothing, except an appointment to come when the last
one has gone by, and opening hours when the last ones have run out.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.tools import demo_content
from backend.accounts.models import Patient
from backend.agenda import service as agenda
from backend.agenda.models import Appointment, Schedule
from backend.audit.models import AuditEntry
from backend.catalog import service as catalog
from backend.catalog.models import CatalogConnection, CatalogService
from backend.professionals import service as pros
from backend.professionals.models import Professional
from backend.records.access import consents
from backend.records.documents import service as docs
from backend.records.profile import service as profile
from backend.records.profile.common import Author, PATIENT
from backend.records.profile import directives as directive_service
from backend.records import vault as record_vault
from backend.records.access.authorize import authorize
from backend.records.access.models import EmergencyAccess
from backend.records.access.policy import Actor, Purpose, Scope
from backend.identity import FRANCE as PARIS  # the one Europe/Paris (backend/identity.py)

# (RPPS, family name, given name, profession, specialty, organisation)
CARDIOLOGIST = ("10101234580", "Roux", "Paul", "10", "SM04", "Clinique des Dômes")
EMERGENCY_DOCTOR = ("10101234581", "Garnier", "Luc", "10", "SM54", "SAMU 63 - CHU de Clermont-Ferrand")
UID = "1.2.250.1.999.2026.7"  # the demo documents' uniqueIds: <UID>.<n>
CONNECTED_SERVICE = "rappel-vaccins"


def _professional(session: Session, spec: tuple[str, ...]) -> Professional:
    rpps, family, given, profession, specialty, organisation = spec
    pro = session.scalar(select(Professional).where(Professional.rpps == rpps))
    if pro is None:
        pro, _token = pros.create_professional(session, rpps=rpps, family_name=family, given_name=given,
                                               profession=profession, specialty=specialty,
                                               organisation=organisation)
    return pro


def _meta(pro: Professional, n: int, title: str, mime: str, type_code: str, when: dt.datetime,
          class_code: str | None = None) -> docs.DocumentMeta:
    return docs.DocumentMeta(
        title=title, mime_type=mime, unique_id=f"{UID}.{n}", type_code=type_code, class_code=class_code,
        author_professional_id=pro.id, author_rpps=pro.rpps, author_name=f"{pro.given_name} {pro.family_name}",
        author_profession=pro.profession_code, author_organisation=pro.organisation, service_date=when,
        submitted_at=when + dt.timedelta(hours=6))


def _documents(session: Session, patient: Patient, gp: Professional, cardiologist: Professional,
               now: dt.datetime) -> list[int]:
    box = record_vault(session)
    name, born = f"Mme {patient.given_names.split()[0]} {patient.family_name}", patient.birth_date.strftime("%d/%m/%Y")
    lab_day = (now - dt.timedelta(days=12)).astimezone(PARIS)
    items = [
        (gp, 1, "Compte rendu de biologie - bilan sanguin", "text/xml", "11502-2",
         lambda: demo_content.lab_report_cda(nir=patient.nir, oid=patient.ins_oid, family_name=patient.family_name,
                                             given_name=patient.given_names.split()[0],
                                             birth_date=patient.birth_date, sex=patient.sex, day=lab_day.date(),
                                             unique_id=f"{UID}.1", author_rpps=gp.rpps), lab_day, None),
        (cardiologist, 2, "Consultation de cardiologie", "application/pdf", "11488-4",
         lambda: demo_content.consultation_letter(name, born, (now - dt.timedelta(days=40)).date()),
         now - dt.timedelta(days=40), None),
        (cardiologist, 3, "Radiographie du thorax", "image/png", "18748-4", demo_content.chest_xray_png,
         now - dt.timedelta(days=75), None),
        (gp, 4, "Attestation de vaccination", "application/pdf", "87273-9",
         lambda: demo_content.vaccination_certificate(name, born), now - dt.timedelta(days=120), None),
    ]
    ids = []
    for pro, n, title, mime, type_code, content, when, class_code in items:
        existing = session.scalar(select(docs.Document.id).where(docs.Document.patient_id == patient.id,
                                                                 docs.Document.unique_id == f"{UID}.{n}"))
        if existing is not None:
            ids.append(existing)
            continue
        stored = docs.store_document(session, box, patient.id, content(), _meta(pro, n, title, mime, type_code, when,
                                                                              class_code),
                                     source="professional", actor=Actor.of_professional(pro), now=when,
                                     notify_patient=n == 1)
        ids.append(stored.document.id)
    return ids


def _check(kind: str, result: Any) -> None:
    if result.rejected:
        raise RuntimeError(f"demo {kind} refused: {result.rejected}")


def _profile(session: Session, patient: Patient, gp: Professional, now: dt.datetime) -> None:
    box = record_vault(session)
    doctor = Author(kind="professional", professional_id=gp.id, rpps=gp.rpps,
                            name=f"Dr {gp.given_name} {gp.family_name}")
    entries: dict[str, list[dict[str, Any]]] = {
        "allergy": [
            {"source_key": "demo-allergy-1", "substance": "Pénicilline", "category": "medication",
             "reaction": "Urticaire géante et gonflement du visage", "severity": "severe", "since": "2009"},
            {"source_key": "demo-allergy-2", "substance": "Arachide", "category": "food",
             "reaction": "Démangeaisons de la bouche", "severity": "moderate"},
        ],
        "treatment": [
            {"source_key": "demo-treatment-1", "name": "Lévothyroxine 75 µg", "dosage": "1 comprimé le matin à jeun",
             "reason": "Hypothyroïdie", "start_date": "2019-05"},
            {"source_key": "demo-treatment-2", "name": "Salbutamol 100 µg", "dosage": "2 bouffées si gêne respiratoire",
             "reason": "Asthme"},
        ],
        "disease": [{"source_key": "demo-disease-1", "label": "Asthme", "onset_date": "1998", "status": "active"},
                    {"source_key": "demo-disease-2", "label": "Hypothyroïdie", "onset_date": "2019",
                     "status": "active"}],
        "vaccination": [
            {"source_key": "demo-vaccination-1", "vaccine": "dTcaP (Boostrixtetra)", "date": "2019-04-03"},
            {"source_key": "demo-vaccination-2", "vaccine": "Grippe saisonnière", "date": "2025-10-14"},
        ],
        "blood_group": [{"source_key": "demo-blood-1", "group": "A", "rhesus": "positive"}],
        "contact": [{"source_key": "demo-contact-1", "contact_kind": "emergency", "name": "Julien Martin",
                     "relationship": "Conjoint", "phone": "06 12 34 56 78"}],
    }
    for kind, items in entries.items():
        _check(kind, profile.add_entries(session, box, patient.id, kind, items, source="patient",
                                         author=PATIENT, now=now))
    # Weight every month for eight months and blood pressure every other week: charts to look at.
    measures = []
    for month in range(8, 0, -1):
        at = (now - dt.timedelta(days=30 * month)).astimezone(PARIS).replace(hour=8, minute=0, second=0,
                                                                             microsecond=0)
        measures.append({"source_key": f"demo-weight-{month}", "type": "weight", "unit": "kg",
                         "value": round(68.4 - 0.35 * (8 - month), 1), "measured_at": at.isoformat()})
    for fortnight in range(12, 0, -1):
        at = (now - dt.timedelta(days=14 * fortnight)).astimezone(PARIS).replace(hour=19, minute=0, second=0,
                                                                                 microsecond=0)
        measures.append({"source_key": f"demo-bp-{fortnight}", "type": "blood_pressure", "unit": "mmHg",
                         "systolic": 118 + (fortnight * 7) % 11, "diastolic": 74 + (fortnight * 3) % 7,
                         "measured_at": at.isoformat()})
    _check("measure", profile.add_entries(session, box, patient.id, "measure", measures, source="patient",
                                          author=PATIENT, now=now))
    profile.add_entries(session, box, patient.id, "measure",
                        [{"source_key": "demo-height-1", "type": "height", "unit": "cm", "value": 166,
                          "measured_at": (now - dt.timedelta(days=40)).isoformat()}],
                        source="professional", author=doctor, now=now)
    directives = directive_service.current_directives(session, box, patient.id)
    if not (directives.get("good_health") or {}).get("current"):
        directive_service.add_directive_version(
            session, box, Scope(patient_id=patient.id, see_masked=True, see_unreleased=True), "good_health",
            text="Si je ne peux plus m'exprimer, je refuse l'acharnement thérapeutique. Je souhaite que mon "
                 "conjoint, Julien Martin, soit consulté en premier.", now=now)


def _agenda(session: Session, config: Any, patient: Patient, gp: Professional, now: dt.datetime) -> None:
    settings = agenda.AgendaSettings.from_config(config)
    today = now.astimezone(PARIS).date()
    live = session.scalar(select(func.count()).select_from(Schedule).where(
        Schedule.professional_id == gp.id, Schedule.active.is_(True),
        (Schedule.valid_until.is_(None)) | (Schedule.valid_until >= today + dt.timedelta(days=14))))
    if not live:
        first = today + dt.timedelta(days=2)
        opening = (dt.datetime.combine(first, dt.time(9, 0), PARIS), dt.datetime.combine(first, dt.time(12, 0), PARIS),
                   "FREQ=WEEKLY;BYDAY=MO,TU,TH,FR")
        afternoon = (dt.datetime.combine(first, dt.time(14, 0), PARIS),
                     dt.datetime.combine(first, dt.time(17, 30), PARIS), "FREQ=WEEKLY;BYDAY=WE")
        agenda.publish_schedule(session, gp, agenda.ScheduleInput(
            visit_type="in_person", slot_minutes=30, tz="Europe/Paris", specialty_code="SM54",
            specialty_label="Médecine générale",
            place=agenda.Place(name="Cabinet du Parc", address="12 avenue des Paulines", postcode="63000",
                               city="Clermont-Ferrand"),
            openings=[opening, afternoon], valid_from=first, valid_until=first + dt.timedelta(days=90)), now=now)
    mine = select(func.count()).select_from(Appointment).where(
        Appointment.patient_id == patient.id, Appointment.professional_id == gp.id, Appointment.status == "booked")
    if not session.scalar(mine.where(Appointment.starts_at > now)):
        day = today + dt.timedelta(days=6)
        while day.weekday() >= 5:  # a weekday
            day += dt.timedelta(days=1)
        start = dt.datetime.combine(day, dt.time(17, 30), PARIS)  # outside the published hours: no clash
        agenda.book_by_professional(session, settings, gp, patient, starts_at=start,
                                    ends_at=start + dt.timedelta(minutes=30), visit_type="in_person", now=now)
    if not session.scalar(mine.where(Appointment.starts_at <= now)):
        day = today - dt.timedelta(days=40)
        start = dt.datetime.combine(day, dt.time(10, 0), PARIS)
        agenda.book_by_professional(session, settings, gp, patient, starts_at=start,
                                    ends_at=start + dt.timedelta(minutes=30), visit_type="in_person",
                                    now=start - dt.timedelta(days=10))


def _service(session: Session, config: Any, patient: Patient, now: dt.datetime) -> None:
    service = session.scalar(select(CatalogService).where(CatalogService.slug == CONNECTED_SERVICE))
    if service is None:
        return
    if session.scalar(select(CatalogConnection.id).where(CatalogConnection.patient_id == patient.id,
                                                         CatalogConnection.service_id == service.id)) is not None:
        return
    settings = catalog.CatalogSettings.from_config(config)
    detail = catalog.service_detail(session, patient.id, service.id)
    scopes = [scope for scope, _purpose in detail.permissions]
    catalog.connect(session, settings, patient.id, service.id, scopes, now=now - dt.timedelta(days=20))


def _accesses(session: Session, patient: Patient, cardiologist: Professional, emergency: Professional,
              document_ids: list[int], now: dt.datetime) -> None:
    """The cardiologist, authorised by the patient, reads the lab report; an emergency doctor opens the record
    (break the glass) with a stated reason: both land in the access history and notify the patient."""
    seen = select(func.count()).select_from(AuditEntry).where(AuditEntry.patient_id == patient.id,
                                                               AuditEntry.actor_type == "professional")
    if not session.scalar(seen.where(AuditEntry.actor_id == cardiologist.rpps,
                                     AuditEntry.action == "document.read")):
        consents.grant(session, patient.id, cardiologist.id, now=now - dt.timedelta(days=9))
        authorize(session, Actor.of_professional(cardiologist), patient.id, "document.read",
                  details={"document_id": document_ids[0]}, now=now - dt.timedelta(days=8))
    if session.scalar(select(EmergencyAccess.id).where(EmergencyAccess.patient_id == patient.id,
                                                       EmergencyAccess.professional_id == emergency.id)) is None:
        authorize(session, Actor.of_professional(emergency), patient.id, "record.emergency_read", purpose=Purpose.BTG,
                  reason="Malaise sur la voie publique, patiente confuse : recherche d'allergies et de traitements",
                  now=now - dt.timedelta(days=3))


def seed_record(session: Session, config: Any, patient: Patient, gp: Professional, *, now: dt.datetime) -> None:
    cardiologist = _professional(session, CARDIOLOGIST)
    emergency = _professional(session, EMERGENCY_DOCTOR)
    document_ids = _documents(session, patient, gp, cardiologist, now)
    _profile(session, patient, gp, now)
    _agenda(session, config, patient, gp, now)
    _service(session, config, patient, now)
    _accesses(session, patient, cardiologist, emergency, document_ids, now)
