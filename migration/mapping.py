"""From what the readers found to what the record stores: pure functions, no I/O, no database.

* :func:`check_identity` — is every patient identifier of an item the holder's? (INS-NIR ``.8``, test
  INS ``.10`` and NIR-as-social-security ``.13`` compare with the holder's NIR; NIA and legacy INS-C
  only through identifiers listed for the holder in settings.json.) Anything else is a refusal.
* :func:`map_document` — XDS metadata and/or CDA header → the fields of a record document (category,
  class and type codes, visibility flags, author with RPPS, facility, dates), or a refusal.
* :func:`extract_entries` (in :mod:`migration.extraction`) — structured profile entries of a level-3 CDA.

A refusal is a :class:`Refusal` with a stable reason code (see ``migration/messages.py``) and
parameters that never contain health data or a patient identifier.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field

from backend.cda import hl7_time
from backend.identity import (OID_INS_C, OID_INS_NIA, OID_INS_NIA_TEST, OID_INS_NIR, OID_INS_NIR_TEST,
                              OID_NIR_SOCIAL_SECURITY)
from backend.identity import FRANCE as PARIS  # the one Europe/Paris (backend/identity.py)
from migration.readers.cda import CdaHeader
from migration.readers.xdm import XdsCode, XdsEntry

NIR_OIDS = {OID_INS_NIR, OID_INS_NIR_TEST, OID_NIR_SOCIAL_SECURITY}
LISTED_ONLY_OIDS = {OID_INS_C, OID_INS_NIA, OID_INS_NIA_TEST}
NATIONAL_OIDS = NIR_OIDS | LISTED_ONLY_OIDS

OID_CLASS = "1.2.250.1.213.1.1.4.1"
OID_FRENCH_TYPES = "1.2.250.1.213.1.1.4.12"
OID_LOINC = "2.16.840.1.113883.6.1"
OID_VISIBILITY = "1.2.250.1.213.1.1.4.13"
OID_HL7_CONFIDENTIALITY = "2.16.840.1.113883.5.25"
OID_IDNAT_PS = "1.2.250.1.71.4.2.1"
SIGNATURE_CLASS = "urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1"

MAX_UNIQUE_ID = 128


@dataclass(frozen=True)
class Refusal:
    reason: str
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Holder:
    """Who the dossier belongs to: the account's NIR and the legacy identifiers listed in settings.json."""

    nir: str
    listed: frozenset[tuple[str, str]] = frozenset()  # (oid, value)


@dataclass(frozen=True)
class PatientId:
    oid: str
    value: str
    where: str  # cda, xds, xds_source, submission


# --- identity ----------------------------------------------------------------------------------------

def parse_cx(cx: str | None, where: str) -> PatientId | None:
    """HL7 v2 CX ``value^^^&oid&ISO^type`` (tolerates a missing caret or a missing type)."""
    if not cx:
        return None
    parts = cx.strip().split("^")
    value = parts[0].strip()
    oid = ""
    for comp in parts[1:5]:
        if "&" in comp:
            sub = comp.split("&")
            oid = sub[1].strip() if len(sub) > 1 else ""
            break
    if not value:
        return None
    return PatientId(oid.removeprefix("urn:oid:"), value, where)


def _normalise_id(value: str) -> str:
    return re.sub(r"[\s.\-]", "", value).upper()


def check_identity(holder: Holder, ids: list[PatientId]) -> Refusal | None:
    """None when the identifiers designate the holder and nobody else; else the refusal."""
    matched = False
    national = [i for i in ids if i.oid in NATIONAL_OIDS]
    for pid in national:
        value = _normalise_id(pid.value)
        if pid.oid in NIR_OIDS:
            # A NIR: 15 characters with its key, sometimes 13 without.
            if value == holder.nir or (len(value) == 13 and value == holder.nir[:13]):
                matched = True
            else:
                return Refusal("identity_other_person", {"oid": pid.oid, "where": pid.where})
        elif (pid.oid, value) in holder.listed:
            matched = True
    if matched:
        return None
    if national:
        oids = sorted({i.oid for i in national})
        return Refusal("identity_unlisted", {"oid": ", ".join(oids)})
    foreign = sorted({i.oid or "?" for i in ids})
    return Refusal("identity_missing", {"oid": ", ".join(foreign) or "-"})


def item_patient_ids(xds: XdsEntry | None, cda: CdaHeader | None, submission_patient: str | None) -> list[PatientId]:
    ids: list[PatientId] = []
    if xds is not None:
        for cx, where in ((xds.patient_id, "xds"), (xds.source_patient_id, "xds_source")):
            pid = parse_cx(cx, where)
            if pid is not None:
                ids.append(pid)
    sub = parse_cx(submission_patient, "submission")
    if sub is not None:
        ids.append(sub)
    if cda is not None:
        ids.extend(PatientId(i.root, i.extension or "", "cda") for i in cda.patient_ids if i.extension)
    return ids


# --- category --------------------------------------------------------------------------------------

# typeCode (LOINC or TRE_A05 French codes) → the patient's category; the classCode decides otherwise.
TYPE_CATEGORY: dict[str, str] = {
    # vaccination
    "11369-6": "CAR_VAC", "87273-9": "CAR_VAC", "96874-3": "CAR_VAC",
    # biology
    "11502-2": "BIOLOGIE", "96173-0": "BIOLOGIE", "51969-4": "BIOLOGIE", "DOCPAT05": "BIOLOGIE",
    # imaging
    "18748-4": "RADIO_SC", "IMG-KOS": "RADIO_SC", "52040-3": "RADIO_SC", "55115-0": "ORD_SOIN",
    "DOCPAT04": "RADIO_SC",
    # prescriptions, dispensations, care
    "57833-6": "ORD_SOIN", "57828-6": "ORD_SOIN", "57832-8": "ORD_SOIN", "60593-1": "ORD_SOIN",
    "DISP_AUT": "ORD_SOIN", "75468-9": "ORD_SOIN", "PRESC-AAT": "ORD_SOIN", "PRESC-BIO": "ORD_SOIN",
    "PRESC-KINE": "ORD_SOIN", "PRESC-INF": "ORD_SOIN", "PRESC-PEDI": "ORD_SOIN", "PRESC-ORTHOPHO": "ORD_SOIN",
    "PRESC-ORTHOPTIE": "ORD_SOIN", "80565-5": "ORD_SOIN", "DOCPAT02": "ORD_SOIN",
    # summaries
    "60591-5": "SYNTHESE", "SYNTH": "SYNTHESE", "34133-9": "SYNTHESE", "68599-0": "SYNTHESE",
    "57055-6": "SYNTHESE", "57057-2": "SYNTHESE", "57075-4": "SYNTHESE", "89235-6": "SYNTHESE",
    "78489-2": "SYNTHESE", "DOCPAT01": "SYNTHESE", "DOCPAT08": "SYNTHESE", "18776-5": "SYNTHESE",
    "PROT_ALD": "SYNTHESE", "83869-8": "SYNTHESE", "77604-7": "SYNTHESE",
    # certificates
    "89601-9": "CERT_MED", "CERT_DECL": "CERT_MED", "59284-0": "CERT_MED", "86531-1": "CERT_MED",
    "DOCPAT07": "CERT_MED",
    # reimbursements
    "REMB": "REMB",
    # patient wishes and advance directives
    "EXPPAT_1": "VDP", "EXPPAT_2": "VDP", "EXPPAT_3": "DIR_ANT",
    # screening and prevention
    "75492-9": "DEPISTAG", "75482-0": "DEPISTAG", "68817-6": "DEPISTAG", "DOCPAT06": "DEPISTAG",
    # questionnaires
    "74465-6": "QUEST_SANTE",
    # administrative
    "51851-4": "DOC_ADM", "ATTEST-ASS-COMPL": "DOC_ADM", "ATTEST-RESID": "DOC_ADM", "ATTEST-HEBGT": "DOC_ADM",
    "ATTEST-DROITS-AM": "DOC_ADM", "PIECE-IDENTITE": "DOC_ADM", "FICHE-CONTACTS": "DOC_ADM",
    "DOCPAT09": "DOC_ADM", "56446-8": "DOC_ADM",
    "DOCPAT03": "CPT_REND",
    # reports of the cancer pathway (the DCC's documents) and the implant card
    "60568-3": "CPT_REND", "11526-1": "CPT_REND", "34874-8": "CPT_REND", "34794-8": "CPT_REND",
    "101881-1": "CPT_REND",
}
CLASS_CATEGORY: dict[str, str] = {
    "10": "CPT_REND", "11": "SYNTHESE", "31": "RADIO_SC", "42": "ORD_SOIN", "43": "ORD_SOIN", "44": "SYNTHESE",
    "45": "ORD_SOIN", "52": "CERT_MED", "60": "REMB", "90": "AUTR_DOC", "95": "DOC_ADM",
}
# A typeCode implies a classCode when the metadata has none (a loose CDA).
TYPE_CLASS: dict[str, str] = {
    "CAR_VAC": "10", "BIOLOGIE": "10", "RADIO_SC": "31", "SYNTHESE": "11", "CERT_MED": "52", "REMB": "60",
    "DOC_ADM": "95", "VDP": "90", "DIR_ANT": "90", "CPT_REND": "10", "DEPISTAG": "10", "QUEST_SANTE": "90",
}
TECHNICAL_TYPES = {"FEUILLE-DE-STYLE", "E1762"}
PRESCRIPTION_TYPES = {"57833-6", "57828-6", "57832-8", "55115-0"}
DISPENSATION_TYPES = {"60593-1", "DISP_AUT"}


def category_for(class_code: str | None, type_code: str | None) -> str:
    if type_code and type_code in TYPE_CATEGORY:
        return TYPE_CATEGORY[type_code]
    if class_code and class_code in CLASS_CATEGORY:
        return CLASS_CATEGORY[class_code]
    return "AUTR_DOC"


def class_for(type_code: str | None, category: str) -> str | None:
    if type_code in PRESCRIPTION_TYPES:
        return "42"
    if type_code in DISPENSATION_TYPES:
        return "43"
    if type_code and type_code.startswith("DOCPAT"):
        return "90"
    return TYPE_CLASS.get(category)


# --- authors -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Author:
    rpps: str | None = None
    name: str | None = None
    profession: str | None = None
    specialty: str | None = None
    organisation: str | None = None


def rpps_from_idnat(value: str | None, root: str | None = OID_IDNAT_PS) -> str | None:
    """The national PS identifier is '8' + RPPS (11 digits); '0' + ADELI and '3' + FINESS are not RPPS."""
    if not value or (root and root != OID_IDNAT_PS):
        return None
    value = value.strip()
    if len(value) == 12 and value.startswith("8") and value[1:].isdigit():
        return value[1:]
    return None


def _profession_specialty(code: str | None) -> tuple[str | None, str | None]:
    # TRE_G15 profession + specialty, e.g. "G15_10/SM26" → ("10", "G15_10/SM26")
    if not code:
        return None, None
    m = re.match(r"^G15_(\d+)", code)
    return (m.group(1) if m else None), code[:32]


def author_from_xds(xds: XdsEntry) -> Author | None:
    for a in xds.authors:
        rpps = name = None
        if a.person:
            parts = a.person.split("^")
            authority = parts[8] if len(parts) > 8 else ""
            root = authority.split("&")[1] if authority.count("&") >= 1 else None
            rpps = rpps_from_idnat(parts[0], root or OID_IDNAT_PS)
            given = parts[2].strip() if len(parts) > 2 else ""
            family = parts[1].strip() if len(parts) > 1 else ""
            name = " ".join(p for p in (given, family) if p) or (parts[0] if len(parts) == 1 else None)
        specialty = a.specialties[0].split("^")[0].strip() if a.specialties else None
        profession, specialty = _profession_specialty(specialty)
        org = a.institutions[0].split("^")[0].strip() if a.institutions else None
        return Author(rpps, name or None, profession, specialty, org or None)
    return None


def author_from_cda(cda: CdaHeader) -> Author | None:
    for a in cda.authors:
        rpps = next((r for r in (rpps_from_idnat(i.extension, i.root) for i in a.ids) if r), None)
        name = " ".join(p for p in (a.given, a.family) if p) or None
        profession, specialty = _profession_specialty(a.specialty.code if a.specialty else None)
        return Author(rpps, name, profession, specialty, a.organisation)
    return None


# --- the document ------------------------------------------------------------------------------------

@dataclass
class MappedDocument:
    unique_id: str
    category: str
    class_code: str | None
    type_code: str | None
    type_system: str | None
    title: str
    mime_type: str
    format_code: str | None
    author: Author
    facility: str | None
    service_date: dt.datetime | None
    submitted_at: dt.datetime | None
    confidentiality: str
    invisible_patient: bool
    invisible_legal_representatives: bool
    masked: bool
    warnings: list[str] = field(default_factory=list)
    # the rest of the XDS DocumentEntry, as the legacy metadata gave it: (codingScheme, code, displayName)
    type_display: str | None = None
    class_display: str | None = None
    format_scheme: str | None = None
    format_display: str | None = None
    facility_type: tuple[str | None, str, str | None] | None = None
    practice_setting: tuple[str | None, str, str | None] | None = None
    events: tuple[tuple[str | None, str, str | None], ...] = ()
    language: str | None = None
    creation_time: dt.datetime | None = None
    service_end: dt.datetime | None = None
    comments: str | None = None
    entry_uuid: str | None = None


def _coded(code: XdsCode | None, code_max: int = 64) -> tuple[str | None, str, str | None] | None:
    if code is None or not code.code or len(code.code) > code_max or len(code.scheme or "") > 128:
        return None
    return code.scheme, code.code, (code.display or None) and code.display[:300]


def _xds_extra(xds: XdsEntry | None) -> dict[str, object]:
    """What the legacy DocumentEntry says beyond the record's own fields (XDS metadata kept as received)."""
    if xds is None:
        return {}
    fmt, kind, klass = xds.code("format"), xds.code("type"), xds.code("class")
    language = xds.slot("languageCode")
    entry = (xds.entry_id or "").lower()
    return {
        "type_display": (kind.display or None) and kind.display[:300] if kind else None,
        "class_display": (klass.display or None) and klass.display[:300] if klass else None,
        "format_scheme": fmt.scheme[:128] if fmt and fmt.scheme else None,
        "format_display": (fmt.display or None) and fmt.display[:300] if fmt else None,
        "facility_type": _coded(xds.code("facility_type")), "practice_setting": _coded(xds.code("practice_setting")),
        "events": tuple(c for c in (_coded(e, 128) for e in xds.codes.get("event") or []) if c),
        "language": language if language and re.fullmatch(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*", language)
        and len(language) <= 35 else None,
        "creation_time": hl7_time(xds.slot("creationTime")), "service_end": hl7_time(xds.slot("serviceStopTime")),
        "comments": xds.comments[:10_000] if xds.comments else None,
        "entry_uuid": entry if re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", entry) else None,
    }


def unique_key(raw: str) -> str:
    raw = raw.strip()
    if len(raw) <= MAX_UNIQUE_ID:
        return raw
    return "sha256:" + hashlib.sha256(raw.encode()).hexdigest()


def _visibility(codes: list[XdsCode], cda: CdaHeader | None) -> tuple[str, bool, bool, bool]:
    level = "N"
    flags = set()
    for c in codes:
        if c.code in ("N", "R", "V"):
            level = max(level, c.code, key="NRV".index)
        elif c.code in ("INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX", "MASQUE_PS"):
            flags.add(c.code)
    if cda is not None and cda.confidentiality is not None and cda.confidentiality.code in ("N", "R", "V"):
        level = max(level, cda.confidentiality.code, key="NRV".index)
    return level, "INVISIBLE_PATIENT" in flags, "INVISIBLE_REPRESENTANTS_LEGAUX" in flags, "MASQUE_PS" in flags


def guess_mime(name: str, data_head: bytes) -> str:
    lower = name.lower()
    if data_head.startswith(b"%PDF"):
        return "application/pdf"
    if lower.endswith((".xml",)):
        return "text/xml"
    if lower.endswith(".dcm") or data_head[128:132] == b"DICM":
        return "application/dicom"
    for ext, mime in ((".pdf", "application/pdf"), (".txt", "text/plain"), (".jpg", "image/jpeg"),
                      (".jpeg", "image/jpeg"), (".png", "image/png"), (".tif", "image/tiff"),
                      (".tiff", "image/tiff"), (".rtf", "application/rtf")):
        if lower.endswith(ext):
            return mime
    return "application/octet-stream"


def map_document(*, xds: XdsEntry | None, cda: CdaHeader | None, submission_time: str | None,
                 file_name: str, data_head: bytes, sha256: str) -> MappedDocument | Refusal:
    """The record fields for one legacy document. Identity is checked separately (:func:`check_identity`)."""
    warnings: list[str] = []
    if xds is not None and xds.is_signature:
        return Refusal("technical_signature")
    xds_type = xds.code("type") if xds else None
    xds_class = xds.code("class") if xds else None
    if (xds_type and xds_type.code in TECHNICAL_TYPES) or (xds_class and xds_class.code in ("99", SIGNATURE_CLASS)):
        return Refusal("technical_document", {"code": (xds_type or xds_class).code})  # type: ignore[union-attr]

    # typeCode: the XDS one, else the CDA code
    type_code = type_system = None
    if xds_type is not None:
        type_code, type_system = xds_type.code, xds_type.scheme
    elif cda is not None and cda.code is not None:
        type_code, type_system = cda.code.code, cda.code.system
    if cda is not None and cda.code is not None and type_code and cda.code.code != type_code:
        warnings.append("type_code_differs")
    if type_system and type_system not in (OID_LOINC, OID_FRENCH_TYPES):
        warnings.append("type_code_system_unknown")

    class_code = None
    if xds_class is not None:
        class_code = xds_class.code
        if xds_class.scheme and xds_class.scheme != OID_CLASS:
            warnings.append("class_code_scheme_wrong")
        if class_code not in CLASS_CATEGORY:
            warnings.append("class_code_unknown")
    category = category_for(class_code, type_code)
    if class_code is None or class_code not in CLASS_CATEGORY:
        class_code = class_for(type_code, category) or class_code

    # unique id: the XDS uniqueId is the DMP's key; else the CDA id; else the content
    uid_raw = (xds.unique_id if xds else None) or (cda.id.key if cda and cda.id else None)
    if xds is not None and xds.unique_id and cda is not None and cda.id is not None and cda.id.key != xds.unique_id:
        warnings.append("unique_id_differs")
    if not uid_raw:
        uid_raw = f"sha256:{sha256}"
        warnings.append("no_unique_id")
    unique_id = unique_key(uid_raw)

    author = (author_from_xds(xds) if xds else None) or (author_from_cda(cda) if cda else None) or Author()
    if cda is not None and author.rpps is None:
        cda_author = author_from_cda(cda)
        if cda_author is not None and cda_author.rpps:
            author = Author(cda_author.rpps, author.name or cda_author.name, author.profession or cda_author.profession,
                            author.specialty or cda_author.specialty, author.organisation or cda_author.organisation)
    if author.organisation is None and cda is not None and cda.custodian:
        author = Author(author.rpps, author.name, author.profession, author.specialty, cda.custodian)

    facility = None
    if xds is not None and xds.code("facility_type") is not None:
        facility = xds.code("facility_type").display or xds.code("facility_type").code  # type: ignore[union-attr]
    if cda is not None:
        facility = cda.facility_name or facility or (cda.facility_code.display if cda.facility_code else None)

    # dates: when the care happened, and when the document entered the legacy record
    service = hl7_time(xds.slot("serviceStartTime")) if xds else None
    if service is None and cda is not None:
        service = (hl7_time(cda.service_start, PARIS) or hl7_time(cda.encounter_start, PARIS)
                   or hl7_time(cda.effective_time, PARIS))
    if service is None and xds is not None:
        service = hl7_time(xds.slot("creationTime"))
    submitted = hl7_time(submission_time) or (hl7_time(xds.slot("creationTime")) if xds else None)
    if submitted is None and cda is not None:
        submitted = hl7_time(cda.effective_time, PARIS)

    title = (xds.title if xds else None) or (cda.title if cda else None) or \
        (xds_type.display if xds_type else None) or (cda.code.display if cda and cda.code else None) or file_name
    mime = (xds.mime_type if xds and xds.mime_type else None) or (
        "text/xml" if cda is not None else guess_mime(file_name, data_head))
    format_code = None
    if xds is not None and xds.code("format") is not None:
        format_code = xds.code("format").code  # type: ignore[union-attr]
    elif cda is not None and cda.body.kind == "nonxml":
        media = (cda.body.media_type or "").lower()
        format_code = {"application/pdf": "urn:ihe:iti:xds-sd:pdf:2008",
                       "text/plain": "urn:ihe:iti:xds-sd:text:2008"}.get(media)

    level, invisible_patient, invisible_lr, masked = _visibility((xds.codes.get("confidentiality") if xds else None)
                                                               or [], cda)
    return MappedDocument(
        unique_id=unique_id, category=category, class_code=(class_code or None) and class_code[:16],
        type_code=type_code[:32] if type_code else None, type_system=type_system[:64] if type_system else None,
        title=" ".join(title.split())[:500], mime_type=mime[:100], format_code=format_code[:128] if format_code else None,
        author=Author(author.rpps, author.name[:300] if author.name else None, author.profession,
                      author.specialty, author.organisation[:300] if author.organisation else None),
        facility=facility[:300] if facility else None, service_date=service, submitted_at=submitted,
        confidentiality=level, invisible_patient=invisible_patient, invisible_legal_representatives=invisible_lr,
        masked=masked, warnings=warnings, **_xds_extra(xds))  # type: ignore[arg-type]


def check_body(cda: CdaHeader) -> Refusal | None:
    """A CDA must have a body the patient can read: level 1 content or level 3 sections."""
    if cda.body.kind == "none":
        return Refusal("cda_no_body")
    if cda.body.kind == "nonxml" and cda.body.reference is None and cda.body.payload_chars == 0:
        return Refusal("cda_empty_body")
    return None
