"""CDA R2 documents: locate the ClinicalDocument (the root, or inside an "auto-presentable" XSLT
stylesheet), read the header and tell what kind of body it has.

Level 1 bodies (``nonXMLBody``) carry base64 (a PDF, plain text…) or a reference to an external file;
level 3 bodies have sections with a narrative and coded entries. The reader never decodes what it does
not need: the original bytes are what is stored.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from backend import cda as core_cda
from backend.cda import HL7

NS = {"h": HL7}


@dataclass(frozen=True)
class II:
    root: str
    extension: str | None = None

    @property
    def key(self) -> str:
        return f"{self.root}^{self.extension}" if self.extension else self.root


@dataclass(frozen=True)
class Code:
    code: str
    system: str | None = None
    display: str | None = None


@dataclass
class CdaAuthor:
    time: str | None = None
    ids: list[II] = field(default_factory=list)
    family: str | None = None
    given: str | None = None
    prefix: str | None = None
    specialty: Code | None = None
    organisation: str | None = None
    organisation_ids: list[II] = field(default_factory=list)


@dataclass
class CdaBody:
    kind: str                       # "nonxml" | "structured" | "none"
    media_type: str | None = None   # nonXMLBody/text/@mediaType
    representation: str | None = None
    reference: str | None = None    # nonXMLBody/text/reference/@value
    payload_chars: int = 0


@dataclass
class CdaHeader:
    id: II | None
    set_id: II | None
    version: str | None
    code: Code | None
    title: str | None
    effective_time: str | None
    confidentiality: Code | None
    language: str | None
    patient_ids: list[II]
    patient_birth_time: str | None
    patient_sex: str | None
    authors: list[CdaAuthor]
    custodian: str | None
    service_start: str | None
    service_stop: str | None
    encounter_start: str | None
    facility_code: Code | None
    facility_name: str | None
    realm: str | None
    wrapped_in_xslt: bool
    body: CdaBody


class NotCda(ValueError):
    def __init__(self, reason: str, explanation: str) -> None:
        super().__init__(f"{reason}: {explanation}")
        self.reason = reason
        self.explanation = explanation


def find_clinical_document(root: etree._Element) -> tuple[etree._Element, bool]:
    """The ClinicalDocument element and whether it sat inside an XSLT stylesheet."""
    if root.tag == core_cda.CLINICAL_DOCUMENT:
        return root, False
    if core_cda.is_stylesheet(root):
        found = core_cda.clinical_document(root)
        if found is not None:
            return found, True
        raise NotCda("xslt_without_cda", "an XSLT stylesheet that embeds no ClinicalDocument")
    if core_cda.localname(root) == "ClinicalDocument":
        raise NotCda("cda_wrong_namespace", "ClinicalDocument outside the urn:hl7-org:v3 namespace")
    raise NotCda("not_cda", f"root element is {core_cda.localname(root) or '?'}")


def parse(data: bytes) -> tuple[CdaHeader, etree._Element]:
    root = core_cda.parse(data)
    doc, wrapped = find_clinical_document(root)
    return read_header(doc, wrapped), doc


def _text(el: etree._Element | None) -> str | None:
    if el is None:
        return None
    value = " ".join("".join(el.itertext()).split())
    return value or None


def _ii(el: etree._Element | None) -> II | None:
    if el is None:
        return None
    root = (el.get("root") or "").strip()
    if not root:
        return None
    ext = (el.get("extension") or "").strip() or None
    return II(root, ext)


def _code(el: etree._Element | None) -> Code | None:
    if el is None or not (el.get("code") or "").strip():
        return None
    return Code(el.get("code", "").strip(), (el.get("codeSystem") or "").strip() or None,
                " ".join((el.get("displayName") or "").split()) or None)


def _ts(el: etree._Element | None) -> str | None:
    if el is None:
        return None
    value = (el.get("value") or "").strip()
    return value or None


def _interval(el: etree._Element | None) -> tuple[str | None, str | None]:
    if el is None:
        return None, None
    low = _ts(el.find("h:low", NS))
    high = _ts(el.find("h:high", NS))
    value = _ts(el)
    return low or value, high


def read_header(doc: etree._Element, wrapped: bool = False) -> CdaHeader:
    f = doc.find
    patient_ids: list[II] = []
    birth = sex = None
    for role in doc.findall("h:recordTarget/h:patientRole", NS):
        patient_ids.extend(i for i in (_ii(e) for e in role.findall("h:id", NS)) if i is not None)
        birth = birth or _ts(role.find("h:patient/h:birthTime", NS))
        gender = role.find("h:patient/h:administrativeGenderCode", NS)
        sex = sex or (gender.get("code") if gender is not None else None)
    authors = []
    for a in doc.findall("h:author", NS):
        aa = a.find("h:assignedAuthor", NS)
        if aa is None:
            continue
        person = aa.find("h:assignedPerson/h:name", NS)
        org = aa.find("h:representedOrganization", NS)
        authors.append(CdaAuthor(
            time=_ts(a.find("h:time", NS)),
            ids=[i for i in (_ii(e) for e in aa.findall("h:id", NS)) if i is not None],
            family=_text(person.find("h:family", NS)) if person is not None else None,
            given=_text(person.find("h:given", NS)) if person is not None else None,
            prefix=_text(person.find("h:prefix", NS)) if person is not None else None,
            specialty=_code(aa.find("h:code", NS)),
            organisation=_text(org.find("h:name", NS)) if org is not None else None,
            organisation_ids=[i for i in (_ii(e) for e in org.findall("h:id", NS)) if i is not None]
            if org is not None else [],
        ))
    service_start, service_stop = _interval(f("h:documentationOf/h:serviceEvent/h:effectiveTime", NS))
    encounter = f("h:componentOf/h:encompassingEncounter", NS)
    encounter_start = None
    facility_code = facility_name = None
    if encounter is not None:
        encounter_start, _ = _interval(encounter.find("h:effectiveTime", NS))
        hcf = encounter.find("h:location/h:healthCareFacility", NS)
        if hcf is not None:
            facility_code = _code(hcf.find("h:code", NS))
            facility_name = (_text(hcf.find("h:serviceProviderOrganization/h:name", NS))
                             or _text(hcf.find("h:location/h:name", NS)))
    realm = f("h:realmCode", NS)
    lang = f("h:languageCode", NS)
    version = f("h:versionNumber", NS)
    return CdaHeader(
        id=_ii(f("h:id", NS)), set_id=_ii(f("h:setId", NS)),
        version=version.get("value") if version is not None else None,
        code=_code(f("h:code", NS)), title=_text(f("h:title", NS)),
        effective_time=_ts(f("h:effectiveTime", NS)), confidentiality=_code(f("h:confidentialityCode", NS)),
        language=lang.get("code") if lang is not None else None,
        patient_ids=patient_ids, patient_birth_time=birth, patient_sex=sex, authors=authors,
        custodian=_text(f("h:custodian/h:assignedCustodian/h:representedCustodianOrganization/h:name", NS)),
        service_start=service_start, service_stop=service_stop, encounter_start=encounter_start,
        facility_code=facility_code, facility_name=facility_name,
        realm=realm.get("code") if realm is not None else None, wrapped_in_xslt=wrapped,
        body=read_body(doc),
    )


def read_body(doc: etree._Element) -> CdaBody:
    nonxml = doc.find("h:component/h:nonXMLBody/h:text", NS)
    if nonxml is not None:
        ref = nonxml.find("h:reference", NS)
        return CdaBody("nonxml", media_type=(nonxml.get("mediaType") or "").strip() or None,
                       representation=(nonxml.get("representation") or "").strip() or None,
                       reference=(ref.get("value") or "").strip() or None if ref is not None else None,
                       payload_chars=len(nonxml.text or ""))
    if doc.find("h:component/h:structuredBody", NS) is not None:
        return CdaBody("structured")
    return CdaBody("none")


def nonxml_payload(doc: etree._Element) -> bytes | None:
    """The decoded level-1 payload (base64 or text), for checks and previews; None for a reference."""
    import base64
    import binascii

    text = doc.find("h:component/h:nonXMLBody/h:text", NS)
    if text is None or text.find("h:reference", NS) is not None:
        return None
    raw = "".join(text.itertext())
    if (text.get("representation") or "TXT").upper() == "B64":
        try:
            return base64.b64decode("".join(raw.split()), validate=True)
        except (binascii.Error, ValueError):
            return b""
    return raw.encode()
