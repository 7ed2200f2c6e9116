"""The insurer's side of the contract (docs/insurer-feed.md), for simulations and the demo: a CNAM-HR
document (CI-SIS "Historique de remboursement", typeCode REMB) of the last 24 months, and the ITI-65
transaction bundle that deposits it. Nothing here is needed by the server to receive a real feed.

The document follows the structure of the ANS example CNAM-HR_2021.01: one section per kind of episode
(10160-0 medicines, 11369-6 vaccinations, 46264-8 devices, 46240-8 hospital stays, 29554-3 acts with the
Assurance Maladie's code systems for care, imaging and biology), each entry pointing to its line of the
narrative table. A period's document is deterministic (same patient and month → same bytes and the same
uniqueId), so running a feed twice deposits nothing new.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import random
import uuid
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from backend.identity import OID_INS_NIR

INSURER_NAMESPACE = uuid.UUID("5b1c3d7e-2f0a-4c1e-9d6b-6a0e51c0a1b2")
SUBMISSIONSET = "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes"
CARE, IMAGING, BIOLOGY = "1.2.250.1.215.200.3.3", "1.2.250.1.215.200.3.4", "1.2.250.1.215.200.4.1"
MEDICINE, ATC_AM = "1.2.250.1.215.200.1.1.1", "1.2.250.1.215.200.1.2.1"
STAYS = "1.2.250.1.215.200.3.1"
LPP = "1.2.250.1.215.200.2.1"


@dataclass(frozen=True)
class Episode:
    kind: str            # consultations | medicines | vaccines | devices | hospital | imaging | biology
    day: dt.date
    label: str
    code: str
    where: str
    end: dt.date | None = None
    atc: str | None = None


# What a simulated history is drawn from (labels and codes as the CNAM's tables write them).
_CATALOGUE: dict[str, list[tuple[str, str, str | None]]] = {
    "consultations": [("CONSULTATION MEDECINE GENERALE", "G", None), ("CONSULTATION SPECIALISTE", "CS", None),
                      ("ACTE INFIRMIER DE SOINS", "AIS", None), ("SEANCE DE KINESITHERAPIE", "AMK", None)],
    "medicines": [("DOLIPRANE 1000MG CPR 8", "3400935955838", "N02BE01"),
                  ("AMOXICILLINE 1G CPR 6", "3400933086565", "J01CA04"),
                  ("VENTOLINE 100MICROG/DOS SUSP INHAL", "3400930016374", "R03AC02")],
    "vaccines": [("VAXIGRIP TETRA SUSP INJ SER 0.5ML", "3400930070086", "J07BB02")],
    "devices": [("BANDELETTES GLYCEMIE", "1120003", None)],
    "imaging": [("RADIOGRAPHIE DU THORAX", "ZBQK002", None), ("ECHOGRAPHIE ABDOMINALE", "ZCQM001", None)],
    "biology": [("T.S.H. (SANG)", "1208", None), ("SANG : GLUCOSE (GLYCEMIE)", "0552", None),
                ("HEMOGRAMME", "1104", None)],
}
_PLACES = {"consultations": "CENTRE DE SANTE DU PARC", "medicines": "PHARMACIE DES VOLCANS",
           "vaccines": "PHARMACIE DES VOLCANS", "devices": "PHARMACIE DES VOLCANS",
           "imaging": "CABINET DE RADIOLOGIE JAUDE", "biology": "LABORATOIRE DES DOMES",
           "hospital": "CHU GABRIEL MONTPIED"}


def period_end(period: str) -> dt.date:
    """The last day of a month "YYYY-MM"."""
    year, month = (int(p) for p in period.split("-"))
    first_next = dt.date(year + month // 12, month % 12 + 1, 1)
    return first_next - dt.timedelta(days=1)


def unique_id(nir: str, period: str) -> str:
    """The uniqueId of a patient's history for a month: an OID under 2.25 (derived from a name-based UUID)."""
    return f"2.25.{uuid.uuid5(INSURER_NAMESPACE, f'cnam-hr:{nir}:{period}').int}"


def simulated_episodes(nir: str, period: str, *, months: int = 24) -> list[Episode]:
    """A plausible, deterministic history for a patient over the ``months`` before the period's end."""
    end = period_end(period)
    start = end - dt.timedelta(days=int(months * 30.4))
    rng = random.Random(hashlib.sha256(f"{nir}:{period}".encode()).digest())
    episodes = []
    for kind, count in (("consultations", 8), ("medicines", 6), ("biology", 3), ("imaging", 2), ("vaccines", 1),
                        ("devices", 1)):
        for _ in range(count):
            label, code, atc = rng.choice(_CATALOGUE[kind])
            day = start + dt.timedelta(days=rng.randrange(max((end - start).days, 1)))
            episodes.append(Episode(kind, day, label, code, _PLACES[kind], atc=atc))
    stay = start + dt.timedelta(days=rng.randrange(max((end - start).days - 10, 1)))
    episodes.append(Episode("hospital", stay, "Interventions sur la main ou le poignet", "0812", _PLACES["hospital"],
                            end=stay + dt.timedelta(days=2)))
    return sorted(episodes, key=lambda e: e.day)


def _ts(day: dt.date) -> str:
    return day.strftime("%Y%m%d")


def _section(code: str, display: str, title: str, rows: list[tuple[str, Episode]], entry: Any) -> str:
    lines = "".join(f"<tr><td>{e.day.strftime('%d/%m/%Y')}</td><td><content ID={quoteattr(ref)}>{escape(e.label)}"
                    f"</content></td><td>{escape(e.where)}</td></tr>" for ref, e in rows)
    entries = "".join(entry(ref, e) for ref, e in rows)
    return (f'<component><section><code code="{code}" displayName={quoteattr(display)} '
            f'codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC"/><title>{escape(title)}</title>'
            f"<text><table><thead><tr><th>Date</th><th>Libellé</th><th>Lieu</th></tr></thead><tbody>{lines}"
            f"</tbody></table></text>{entries}</section></component>")


def _performer(e: Episode) -> str:
    return (f"<performer><assignedEntity><id nullFlavor=\"UNK\"/><representedOrganization>"
            f"<name>{escape(e.where)}</name></representedOrganization></assignedEntity></performer>")


def _procedure(system: str) -> Any:
    def entry(ref: str, e: Episode) -> str:
        return (f'<entry><procedure classCode="PROC" moodCode="EVN"><templateId root="1.2.250.1.213.1.1.3.62"/>'
                f'<id nullFlavor="UNK"/><code code={quoteattr(e.code)} displayName={quoteattr(e.label)} '
                f'codeSystem="{system}"/><text><reference value="#{ref}"/></text><statusCode code="completed"/>'
                f'<effectiveTime value="{_ts(e.day)}"/>{_performer(e)}</procedure></entry>')
    return entry


def _medicine(ref: str, e: Episode) -> str:
    atc = f'<translation code="{e.atc}" codeSystem="{ATC_AM}"/>' if e.atc else ""
    vaccine = e.kind == "vaccines"
    template = "1.2.250.1.213.1.1.3.45" if vaccine else "1.2.250.1.213.1.1.3.42"
    return (f'<entry><substanceAdministration classCode="SBADM" moodCode="EVN"><templateId root="{template}"/>'
            f'<id root="{uuid.uuid5(INSURER_NAMESPACE, ref + e.label)}"/><text><reference value="#{ref}"/></text>'
            f'<statusCode code="completed"/><effectiveTime value="{_ts(e.day)}"/><consumable><manufacturedProduct>'
            f'<manufacturedMaterial><code><originalText><reference value="#{ref}"/></originalText>'
            f'<translation code={quoteattr(e.code)} displayName={quoteattr(e.label)} codeSystem="{MEDICINE}"/>{atc}'
            f'</code><name>{escape(e.label)}</name></manufacturedMaterial></manufacturedProduct></consumable>'
            f'{_performer(e)}</substanceAdministration></entry>')


def _device(ref: str, e: Episode) -> str:
    return (f'<entry><supply classCode="SPLY" moodCode="EVN"><templateId root="1.2.250.1.213.1.1.3.20"/>'
            f'<id nullFlavor="UNK"/><text><reference value="#{ref}"/></text><effectiveTime value="{_ts(e.day)}"/>'
            f'{_performer(e)}<participant typeCode="DEV"><participantRole classCode="MANU"><playingDevice>'
            f'<code><originalText><reference value="#{ref}"/></originalText><translation code={quoteattr(e.code)} '
            f'displayName={quoteattr(e.label)} codeSystem="{LPP}"/></code></playingDevice></participantRole>'
            f'</participant></supply></entry>')


def _stay(ref: str, e: Episode) -> str:
    return (f'<entry><encounter classCode="ENC" moodCode="EVN"><templateId root="1.2.250.1.213.1.1.3.58"/>'
            f'<id nullFlavor="UNK"/><code code="IMP" displayName="Hospitalisation" codeSystem="2.16.840.1.113883.5.4">'
            f'<qualifier><value code={quoteattr(e.code)} displayName={quoteattr(e.label)} codeSystem="{STAYS}"/>'
            f'</qualifier></code><text><reference value="#{ref}"/></text><effectiveTime><low value="{_ts(e.day)}"/>'
            f'<high value="{_ts(e.end or e.day)}"/></effectiveTime>{_performer(e)}</encounter></entry>')


def cnam_hr(nir: str, period: str, episodes: list[Episode], *, insurer_name: str = "Assurance Maladie",
            ins_oid: str = OID_INS_NIR) -> bytes:
    """The CNAM-HR CDA R2 document of ``episodes`` (level 3, narrative tables and coded entries)."""
    end = period_end(period)
    by_kind: dict[str, list[tuple[str, Episode]]] = {}
    for index, e in enumerate(episodes, start=1):
        by_kind.setdefault(e.kind, []).append((f"{e.kind[:4].upper()}{index:03d}", e))
    sections = [
        ("10160-0", "Médication administrée", "Médicaments", "medicines", _medicine),
        ("11369-6", "Historique des vaccinations", "Vaccinations", "vaccines", _medicine),
        ("46264-8", "Dispositifs médicaux", "Dispositifs médicaux", "devices", _device),
        ("46240-8", "Historique des rencontres", "Hospitalisations", "hospital", _stay),
        ("29554-3", "Actes", "Soins médicaux et dentaires", "consultations", _procedure(CARE)),
        ("29554-3", "Actes", "Radiologie", "imaging", _procedure(IMAGING)),
        ("29554-3", "Actes", "Biologie", "biology", _procedure(BIOLOGY)),
    ]
    body = "".join(_section(code, display, title, by_kind[kind], entry)
                   for code, display, title, kind, entry in sections if by_kind.get(kind))
    org = f"<representedOrganization><name>{escape(insurer_name)}</name></representedOrganization>"
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        '<realmCode code="FR"/><typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>'
        '<templateId root="2.16.840.1.113883.2.8.2.1"/><templateId root="1.2.250.1.213.1.1.1.1"/>'
        f'<id root="{unique_id(nir, period)}"/>'
        '<code code="REMB" displayName="Données de remboursement" codeSystem="1.2.250.1.213.1.1.4.12"/>'
        '<title>Données de remboursement</title>'
        f'<effectiveTime value="{_ts(end)}"/>'
        '<confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25"/><languageCode code="fr-FR"/>'
        f'<recordTarget><patientRole><id root="{ins_oid}" extension="{escape(nir)}"/>'
        '<patient><name nullFlavor="MSK"/></patient></patientRole></recordTarget>'
        f'<author><time value="{_ts(end)}"/><assignedAuthor><id nullFlavor="NA"/>'
        '<code code="ALIM_AM" displayName="Alimentation auto à partir du SI de l\'Ass Maladie" '
        'codeSystem="1.2.250.1.213.1.1.4.6"/><assignedAuthoringDevice><softwareName>'
        f'{escape(insurer_name)}</softwareName></assignedAuthoringDevice>{org}</assignedAuthor></author>'
        f'<custodian><assignedCustodian><representedCustodianOrganization><name>{escape(insurer_name)}</name>'
        '</representedCustodianOrganization></assignedCustodian></custodian>'
        f'<documentationOf><serviceEvent><effectiveTime><low value="{_ts(end - dt.timedelta(days=730))}"/>'
        f'<high value="{_ts(end)}"/></effectiveTime></serviceEvent></documentationOf>'
        f'<component><structuredBody>{body}</structuredBody></component></ClinicalDocument>')
    return xml.encode("utf-8")


def provide_bundle(nir: str, content: bytes, *, uid: str, service_date: dt.date,
                   ins_oid: str = OID_INS_NIR, replaces: str | None = None,
                   title: str = "Historique de remboursement") -> dict[str, Any]:
    """The ITI-65 transaction bundle (List + DocumentReference + Binary) of one CNAM-HR document."""
    subject = {"identifier": {"system": f"urn:oid:{ins_oid}", "value": nir}}
    ref_url, bin_url = f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}"
    reference: dict[str, Any] = {
        "resourceType": "DocumentReference", "status": "current",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:oid:{uid}"},
        "type": {"coding": [{"system": "urn:oid:1.2.250.1.213.1.1.4.12", "code": "REMB",
                             "display": "Données de remboursement"}]},
        "category": [{"coding": [{"system": "urn:oid:1.2.250.1.213.1.1.4.1", "code": "60",
                                  "display": "Données de remboursement"}]}],
        "subject": subject, "description": title,
        "securityLabel": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                                       "code": "N"}]}],
        "content": [{"attachment": {"contentType": "text/xml", "url": bin_url, "title": title,
                                    "size": len(content),
                                    "hash": base64.b64encode(hashlib.sha1(content).digest()).decode()},
                     "format": {"system": "urn:oid:1.2.250.1.213.1.1.4.2.282",
                                "code": "urn:asip:ci-sis:cnam-hr:2021"}}],
        "context": {"period": {"start": service_date.isoformat()}},
    }
    if replaces:
        reference["relatesTo"] = [{"code": "replaces",
                                   "target": {"identifier": {"system": "urn:ietf:rfc:3986",
                                                             "value": f"urn:oid:{replaces}"}}}]
    submission = {
        "resourceType": "List", "status": "current", "mode": "working",
        "code": {"coding": [{"system": SUBMISSIONSET, "code": "submissionset"}]},
        "subject": subject, "identifier": [{"use": "official", "system": "urn:ietf:rfc:3986",
                                            "value": f"urn:oid:{uid}.1"}],
        "entry": [{"item": {"reference": ref_url}}]}
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": submission, "request": {"method": "POST", "url": "List"}},
        {"fullUrl": ref_url, "resource": reference, "request": {"method": "POST", "url": "DocumentReference"}},
        {"fullUrl": bin_url, "resource": {"resourceType": "Binary", "contentType": "text/xml",
                                          "data": base64.b64encode(content).decode()},
         "request": {"method": "POST", "url": "Binary"}},
    ]}
