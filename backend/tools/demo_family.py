"""The demo patient's family (``carnet demo``): Camille MARTIN is the legal representative of her son Léo
(5 years old: a vaccination certificate from his GP, one document under the minor's secrecy she never sees)
and the carer of her father, Jean MARTIN (agenda and messages), so a newcomer finds the profile switcher
with three records. Idempotent: each part checks first whether it is there.

Léo's record has his own NIR (his INS): a newborn's record waits for the NIR INSEE gives at the birth's
registration, never the parent's NIR with a rank of birth (that pair names an insured's dependant for
reimbursement, not a person: README "Family space").
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.tools import demo_content
from backend.accounts import service as accounts
from backend.accounts.models import AccountState, Patient
from backend.family.models import CarerLink, CarerState, LegalRepresentative, RepresentationState
from backend.identity import InsTraits, nir_key
from backend.professionals.models import Professional
from backend.records.documents import service as docs
from backend.records import vault as record_vault
from backend.records.access.policy import Actor

CHILD_NIR = "1210975056123" + nir_key("1210975056123")      # Léo, born 3 September 2021 in Paris
PARENT_NIR = "1520563113045" + nir_key("1520563113045")     # Jean, born May 1952 in Clermont-Ferrand
UID = "1.2.250.1.999.2026.8"


def _person(session: Session, settings: accounts.AccountSettings, nir: str, family: str, given: str,
            born: dt.date, sex: str, now: dt.datetime) -> Patient:
    person = session.scalar(select(Patient).where(Patient.nir == nir))
    if person is None:
        traits = InsTraits(nir=nir, birth_family_name=family, given_names=given, birth_date=born, sex=sex)
        person, _code = accounts.create_patient(session, settings, traits, now=now)
        person.state = AccountState.ACTIVE
        person.activated_at = now
        session.flush()
    return person


def seed_family(session: Session, config: Any, patient: Patient, gp: Professional, *, now: dt.datetime) -> None:
    settings = accounts.AccountSettings.from_config(config)
    child = _person(session, settings, CHILD_NIR, "Martin", "Léo", dt.date(2021, 9, 3), "M", now)
    if session.scalar(select(LegalRepresentative.id).where(LegalRepresentative.child_id == child.id)) is None:
        session.add(LegalRepresentative(child_id=child.id, representative_id=patient.id,
                                        state=RepresentationState.ACTIVE, created_at=now, started_at=now))
    box = record_vault(session)
    items = [(1, "Certificat de vaccination (ROR, DTCaP)", False,
              lambda: demo_content.vaccination_certificate("Léo MARTIN", "03/09/2021")),
             (2, "Consultation (secret du mineur)", True,
              lambda: demo_content.consultation_letter("Léo MARTIN", "03/09/2021", (now - dt.timedelta(days=9)).date()))]
    for n, title, secret, content in items:
        uid = f"{UID}.{n}"
        if session.scalar(select(docs.Document.id).where(docs.Document.unique_id == uid)) is not None:
            continue
        when = now - dt.timedelta(days=20 - n)
        meta = docs.DocumentMeta(title=title, mime_type="application/pdf", unique_id=uid,
                                 type_code="87273-9" if n == 1 else "11488-4", author_professional_id=gp.id,
                                 author_rpps=gp.rpps, author_name=f"{gp.given_name} {gp.family_name}",
                                 author_profession=gp.profession_code, author_organisation=gp.organisation,
                                 service_date=when, submitted_at=when,
                                 confidentiality=("N", "INVISIBLE_REPRESENTANTS_LEGAUX") if secret else ("N",))
        docs.store_document(session, box, child.id, content(), meta, source="professional",
                            actor=Actor.of_professional(gp), now=when)
    father = _person(session, settings, PARENT_NIR, "Martin", "Jean", dt.date(1952, 5, 11), "M", now)
    if session.scalar(select(CarerLink.id).where(CarerLink.patient_id == father.id,
                                                 CarerLink.carer_id == patient.id)) is None:
        session.add(CarerLink(patient_id=father.id, carer_id=patient.id, scopes="agenda,messages",
                              state=CarerState.ACCEPTED, created_at=now, accepted_at=now))
    session.flush()
