"""Demo data of the seeds' other records, for `make run` (called from ``backend.tools.demo.seed``; idempotent).

Camille Martin's breast-cancer pathway with every step (imaging, pathology, biology, RCP, PPS, operative
report with the implantable port it placed, follow-up imaging, after-treatment programme), written by a care
team of which the oncologist has written to her (so the app's "write to" works for him and explains why
not for the others), a dTcaP vaccine dispensed by her pharmacy (a vaccination to confirm, which the
prevention calendar then follows), and the Assurance Maladie's feed with last month's reimbursement history.

Everything goes through the services real feeders use: ``store_document`` (which reads the implant and the
vaccine; the insurer's history as the insurer, as its ITI-65 deposits are stored) and the inbox. Documents
are CDA R2 level 3 with a narrative, dated relative to today, and keep fixed uniqueIds, so a second run
adds nothing.
"""
from __future__ import annotations

import datetime as dt
import uuid
from xml.sax.saxutils import escape

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.accounts.models import Patient
from backend.professionals.models import Professional
from backend.professionals.service import create_professional
from backend.records.documents.service import DocumentMeta, store_document
from backend.records.crypto import Vault
from backend.records.documents.models import Document

NAMESPACE = uuid.UUID("0b7c4f5e-93a1-4b7e-8e4c-d3f5a2c1e9b0")
LOINC = "2.16.840.1.113883.6.1"

# (rpps, family, given, profession, specialty, organisation)
TEAM = {
    "oncologist": ("10101234568", "Lefort", "Marc", "10", "SM36", "Centre Jean Perrin"),
    "pathologist": ("10101234569", "Vidal", "Hélène", "10", None, "Centre Jean Perrin"),
    "surgeon": ("10101234570", "Moreau", "Paul", "10", None, "Centre Jean Perrin"),
    "radiologist": ("10101234571", "Imbert", "Rémi", "10", "SM55", "Cabinet de radiologie Jaude"),
    "biologist": ("10101234572", "Caron", "Inès", "10", None, "Laboratoire des Volcans"),
    "pharmacist": ("10101234573", "Delive", "Pierre", "21", None, "Pharmacie des Volcans"),
}


def _vault(session: Session) -> Vault:
    return Vault(session, current_app.extensions["carnet.keyring"])


def _uid(name: str) -> str:
    return f"2.25.{uuid.uuid5(NAMESPACE, name).int}"


def _team(session: Session, now: dt.datetime) -> dict[str, Professional]:
    out = {}
    for role, (rpps, family, given, profession, specialty, organisation) in TEAM.items():
        pro = session.scalar(select(Professional).where(Professional.rpps == rpps))
        if pro is None:
            pro, _token = create_professional(session, rpps=rpps, family_name=family, given_name=given,
                                                   profession=profession, specialty=specialty,
                                                   organisation=organisation, now=now)
        out[role] = pro
    return out


def _ts(when: dt.date) -> str:
    return when.strftime("%Y%m%d")


def _cda(uid: str, type_code: str, type_name: str, title: str, when: dt.date, author: Professional,
         sections: list[tuple[str, str, list[str]]], body_extra: str = "") -> bytes:
    """A small CI-SIS-shaped CDA R2 level 3: header, author, one text section per (code, title, lines)."""
    parts = []
    for code, heading, lines in sections:
        paragraphs = "".join(f"<paragraph>{escape(line)}</paragraph>" for line in lines)
        parts.append(f'<component><section><code code="{code}" codeSystem="{LOINC}"/><title>{escape(heading)}</title>'
                     f"<text>{paragraphs}</text></section></component>")
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns:pharm="urn:ihe:pharm:medication">'
        '<realmCode code="FR"/><typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>'
        '<templateId root="2.16.840.1.113883.2.8.2.1"/><templateId root="1.2.250.1.213.1.1.1.1"/>'
        f'<id root="{uid}"/><code code="{type_code}" displayName="{escape(type_name)}" codeSystem="{LOINC}"/>'
        f"<title>{escape(title)}</title><effectiveTime value=\"{_ts(when)}100000+0100\"/>"
        '<confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25"/><languageCode code="fr-FR"/>'
        '<recordTarget><patientRole><patient><name><given>Camille</given><family>MARTIN</family></name>'
        '</patient></patientRole></recordTarget>'
        f'<author><time value="{_ts(when)}"/><assignedAuthor><id root="1.2.250.1.71.4.2.1" extension="8{author.rpps}"/>'
        f"<assignedPerson><name><given>{escape(author.given_name)}</given><family>{escape(author.family_name)}</family>"
        f"</name></assignedPerson><representedOrganization><name>{escape(author.organisation or '')}</name>"
        "</representedOrganization></assignedAuthor></author>"
        f'<documentationOf><serviceEvent><effectiveTime><low value="{_ts(when)}"/></effectiveTime></serviceEvent>'
        f"</documentationOf><component><structuredBody>{''.join(parts)}{body_extra}</structuredBody></component>"
        "</ClinicalDocument>")
    return xml.encode("utf-8")


def _implant_section(when: dt.date) -> str:
    """The operative report's FR-Dispositif-medical entry: the implantable port placed for chemotherapy."""
    label = "Chambre à cathéter implantable"
    return (
        '<component><section><templateId root="1.2.250.1.213.1.1.2.1"/>'
        f'<code code="46264-8" displayName="Dispositifs médicaux" codeSystem="{LOINC}"/>'
        "<title>Dispositifs médicaux implantés</title><text><table><tbody><tr>"
        f"<td>{when.strftime('%d/%m/%Y')}</td><td><content ID=\"DM-1\">{label}</content></td>"
        "<td>Démo PORT 8 F, lot DEMO-2025-118</td></tr></tbody></table></text>"
        '<entry><supply classCode="SPLY" moodCode="EVN"><templateId root="2.16.840.1.113883.10.20.1.34"/>'
        '<templateId root="1.2.250.1.213.1.1.3.20"/><id nullFlavor="UNK"/>'
        f'<effectiveTime xsi:type="IVL_TS"><low value="{_ts(when)}"/></effectiveTime>'
        '<participant typeCode="DEV"><participantRole classCode="MANU">'
        '<id root="2.16.840.1.113883.3.3719" extension="(01)03760999000118(10)DEMO-2025-118(21)PT8F-0042"/>'
        '<playingDevice classCode="DEV" determinerCode="INSTANCE">'
        '<code><originalText><reference value="#DM-1"/></originalText></code>'
        "<manufacturerModelName>Démo PORT 8 F (chambre titane, cathéter silicone)</manufacturerModelName>"
        "</playingDevice></participantRole></participant></supply></entry></section></component>")


def _dispensation(uid: str, when: dt.date, pharmacist: Professional) -> bytes:
    """An eDISP-MED-shaped dispensation of a dTcaP booster (ATC J07CA02) and a painkiller."""
    def item(index: int, name: str, cip: str, atc: str, generic: str, lot: str) -> str:
        return (
            '<entry><supply classCode="SPLY" moodCode="EVN"><templateId root="1.2.250.1.213.1.1.3.204"/>'
            f'<id root="{_uid(f"{uid}:{index}")}"/><effectiveTime value="{_ts(when)}103000+0100"/>'
            '<quantity value="1" unit="30009000"/><product><manufacturedProduct classCode="MANU">'
            f'<manufacturedMaterial classCode="MMAT" determinerCode="KIND"><code><translation code="{cip}" '
            f'displayName="{escape(name)}" codeSystem="1.2.250.1.213.2.3.2"/></code><name>{escape(name)}</name>'
            f"<lotNumberText>{lot}</lotNumberText><pharm:asSpecializedKind classCode=\"GRIC\">"
            f'<pharm:generalizedMedicineClass classCode="MMAT"><pharm:code code="{atc}" '
            f'codeSystem="2.16.840.1.113883.6.73"/><pharm:name>{escape(generic)}</pharm:name>'
            "</pharm:generalizedMedicineClass></pharm:asSpecializedKind></manufacturedMaterial>"
            "</manufacturedProduct></product></supply></entry>")

    section = (
        f'<component><section><code code="60590-7" displayName="Traitement dispensé" codeSystem="{LOINC}"/>'
        "<title>Médicaments délivrés</title><text><list>"
        "<item>REPEVAX, suspension injectable en seringue préremplie (rappel dTcaP) : 1 seringue</item>"
        "<item>PARACETAMOL 1 g, comprimé : 1 boîte</item></list></text>"
        f"<author><time value=\"{_ts(when)}\"/><assignedAuthor><id nullFlavor=\"UNK\"/><representedOrganization>"
        f"<name>{escape(pharmacist.organisation or '')}</name></representedOrganization></assignedAuthor></author>"
        + item(1, "REPEVAX, suspension injectable en seringue préremplie", "3400935628060", "J07CA02",
               "diphtérie, coqueluche, poliomyélite, tétanos", "DEMO-W7851")
        + item(2, "PARACETAMOL 1 g, comprimé", "3400930000000", "N02BE01", "paracétamol", "DEMO-P221")
        + "</section></component>")
    return _cda(uid, "60593-1", "Dispensation médicamenteuse", "Dispensation médicamenteuse", when, pharmacist,
                [], body_extra=section)


def _store(session: Session, patient: Patient, pro: Professional, content: bytes, uid: str, *, type_code: str,
           class_code: str, title: str, when: dt.date, now: dt.datetime) -> None:
    from backend.records.access.policy import Actor

    meta = DocumentMeta(
        title=title, mime_type="text/xml", unique_id=uid, class_code=class_code, type_code=type_code,
        type_system=LOINC, author_professional_id=pro.id, author_rpps=pro.rpps, author_name=pro.display_name,
        author_profession=pro.profession_code, author_specialty=pro.specialty_code,
        author_organisation=pro.organisation,
        service_date=dt.datetime.combine(when, dt.time(9, 0), dt.timezone.utc), submitted_at=now)
    store_document(session, _vault(session), patient.id, content, meta, source="professional",
                             actor=Actor.of_professional(pro), now=now, notify_patient=False)


def _pathway() -> list[tuple[str, str, str, str, str, int, list[tuple[str, str, list[str]]]]]:
    """(role, key, type, class, title, days ago, sections) of each step."""
    return [
        ("radiologist", "mammo", "18748-4", "31", "Mammographie et échographie mammaires", 230,
         [("18782-3", "Résultat", ["Masse de 14 mm du quadrant supéro-externe du sein gauche, ACR 5.",
                                   "Biopsie échoguidée recommandée."])]),
        ("pathologist", "acp", "60568-3", "10", "Biopsie mammaire gauche : carcinome canalaire infiltrant", 220,
         [("22637-3", "Conclusion", ["Carcinome canalaire infiltrant de grade II (SBR), RE+ RP+ HER2-.",
                                     "Ki67 15 %."])]),
        ("biologist", "bio", "11502-2", "10", "Bilan biologique avant traitement", 215,
         [("30954-2", "Résultats", ["Hémogramme normal.", "Fonction rénale et hépatique normales.",
                                    "CA 15-3 : 18 U/mL (N < 30)."])]),
        ("oncologist", "rcp", "34794-8", "11", "Fiche RCP sénologie", 210,
         [("18776-5", "Proposition thérapeutique", [
             "Tumorectomie avec ganglion sentinelle.",
             "Chimiothérapie adjuvante puis radiothérapie, hormonothérapie 5 ans.",
             "Pose d'une chambre implantable."])]),
        ("oncologist", "pps", "18776-5", "44", "Programme personnalisé de soins", 205,
         [("18776-5", "Calendrier des soins", [
             "Chirurgie, puis chimiothérapie pendant quatre mois, puis radiothérapie.",
             "Infirmière de coordination : 04 73 27 80 80."])]),
        ("surgeon", "cro", "34874-8", "10", "Tumorectomie gauche et pose de chambre implantable", 190,
         [("10219-4", "Compte rendu", ["Tumorectomie du quadrant supéro-externe gauche, ganglion sentinelle.",
                                       "Pose d'une chambre à cathéter implantable sous-claviculaire droite."])]),
        ("radiologist", "mammo2", "18748-4", "31", "Mammographie de contrôle", 40,
         [("18782-3", "Résultat", ["Aspect post-thérapeutique, pas de lésion suspecte."])]),
        ("oncologist", "ppac", "18776-5", "44", "Programme personnalisé de l'après-cancer", 20,
         [("18776-5", "Suivi", ["Consultation alternée oncologue / médecin traitant tous les 6 mois.",
                                "Mammographie annuelle. Retrait de la chambre implantable à discuter."])]),
    ]


def seed_pathways(session: Session, patient: Patient, *, now: dt.datetime) -> None:
    """Camille's cancer pathway, her implant, a dispensed vaccine, the oncologist's message and the
    insurer's feed. Idempotent: nothing is added when the first document is already there."""
    if session.scalar(select(Document.id).where(Document.patient_id == patient.id,
                                                Document.unique_id == _uid("acp"))) is not None:
        return
    today = now.date()
    team = _team(session, now)
    for role, key, type_code, class_code, title, days, sections in _pathway():
        when = today - dt.timedelta(days=days)
        extra = _implant_section(when) if key == "cro" else ""
        content = _cda(_uid(key), type_code, title, title, when, team[role], sections, body_extra=extra)
        _store(session, patient, team[role], content, _uid(key), type_code=type_code, class_code=class_code,
               title=title, when=when, now=now)
    dispensed = today - dt.timedelta(days=25)
    _store(session, patient, team["pharmacist"], _dispensation(_uid("disp"), dispensed, team["pharmacist"]),
           _uid("disp"), type_code="60593-1", class_code="43", title="Dispensation médicamenteuse", when=dispensed,
           now=now)
    _oncologist_writes(session, patient, team["oncologist"], now)
    _insurer_feed(session, patient, now)


def _oncologist_writes(session: Session, patient: Patient, pro: Professional, now: dt.datetime) -> None:
    from backend.messaging.professional import start_thread
    from backend.messaging.service import Outgoing

    start_thread(session, _vault(session), current_app.extensions["carnet.inbox_settings"], pro, patient,
                 "Votre programme de l'après-cancer",
                 Outgoing(body="Bonjour Madame Martin,\n\nVotre programme personnalisé de l'après-cancer "
                                           "est dans votre dossier. N'hésitez pas à m'écrire si vous avez des "
                                           "questions sur le suivi.\n\nDr Marc Lefort, Centre Jean Perrin"),
                       establishment="Centre Jean Perrin", now=now - dt.timedelta(days=19))


def _insurer_feed(session: Session, patient: Patient, now: dt.datetime) -> None:
    """The Assurance Maladie's last monthly history (the document its feed deposits, as the insurer)."""
    from backend.insurer.credentials import DEFAULT_CODE, by_code, create_insurer
    from backend.insurer.feed import cnam_hr, simulated_episodes, unique_id
    from backend.records.access.policy import Actor

    insurer = by_code(session, DEFAULT_CODE)
    if insurer is None:
        insurer, _token = create_insurer(session, now=now)
    last = now.date().replace(day=1) - dt.timedelta(days=1)
    period = f"{last.year:04d}-{last.month:02d}"
    content = cnam_hr(patient.nir, period, simulated_episodes(patient.nir, period), ins_oid=patient.ins_oid)
    meta = DocumentMeta(
        title="Historique de remboursement", mime_type="text/xml", unique_id=unique_id(patient.nir, period),
        class_code="60", type_code="REMB", type_system="1.2.250.1.213.1.1.4.12", category="REMB",
        author_name=insurer.name, author_organisation=insurer.name,
        service_date=dt.datetime.combine(last, dt.time(12, 0), dt.timezone.utc), submitted_at=now)
    store_document(session, _vault(session), patient.id, content, meta, source="insurer",
                             actor=Actor.of_insurer(insurer.id), now=now, notify_patient=False)
