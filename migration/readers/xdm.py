"""IHE XDM packages: find each submission set's METADATA.XML, read its document entries (XDS metadata)
and pair each entry with its file.

Real exports vary, and this reader accepts what they do: a wrapper folder around ``IHE_XDM``, subsets
named ``SUBSET01`` or ``SS000001``, names in any case, a BOM, METADATA.XML holding a bare
``SubmitObjectsRequest`` or a whole SOAP ``ProvideAndRegisterDocumentSetRequest`` envelope, URIs that
differ in case from the file name or carry the subset folder, entries without a URI (matched by hash,
then by entry id). Hashes and sizes are checked and any mismatch is recorded, never trusted either way.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from lxml import etree

from backend import cda
from migration.readers.archive import ArchiveRefused, PackageFiles

# XDS classification schemes and external identifiers (ITI TF-3 4.2.5)
SCHEME = {
    "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a": "class",
    "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f": "confidentiality",
    "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d": "format",
    "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1": "facility_type",
    "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead": "practice_setting",
    "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983": "type",
    "urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4": "event",
    "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d": "author",
    "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d": "set_author",
    "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500": "content_type",
}
EXTERNAL_ID = {
    "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427": "patient_id",
    "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab": "unique_id",
    "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446": "set_patient_id",
    "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8": "set_unique_id",
}
EXTERNAL_ID_BY_NAME = {
    "xdsdocumententry.patientid": "patient_id", "xdsdocumententry.uniqueid": "unique_id",
    "xdssubmissionset.patientid": "set_patient_id", "xdssubmissionset.uniqueid": "set_unique_id",
}
SIGNS = "urn:ihe:iti:2007:AssociationType:signs"
SIGNATURE_CLASS = "urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1"
STYLESHEET_SUFFIXES = (".xsl", ".xslt", ".css")
BOILERPLATE = {"readme.txt", "index.htm", "index.html"}


@dataclass(frozen=True)
class XdsCode:
    code: str
    scheme: str | None = None
    display: str | None = None


@dataclass
class XdsAuthor:
    person: str | None = None
    institutions: list[str] = field(default_factory=list)
    specialties: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)


@dataclass
class XdsEntry:
    entry_id: str
    mime_type: str | None = None
    unique_id: str | None = None
    patient_id: str | None = None          # CX as written
    source_patient_id: str | None = None
    title: str | None = None
    comments: str | None = None
    codes: dict[str, list[XdsCode]] = field(default_factory=dict)
    authors: list[XdsAuthor] = field(default_factory=list)
    slots: dict[str, list[str]] = field(default_factory=dict)
    is_signature: bool = False

    def code(self, kind: str) -> XdsCode | None:
        values = self.codes.get(kind) or []
        return values[0] if values else None

    def slot(self, name: str) -> str | None:
        values = self.slots.get(name.lower()) or []
        return values[0] if values else None


@dataclass
class Submission:
    unique_id: str | None = None
    patient_id: str | None = None
    submission_time: str | None = None


@dataclass
class XdmDocument:
    entry: XdsEntry
    file: str | None                        # package-relative name, None when not found
    problems: list[str] = field(default_factory=list)   # uri_case, hash_mismatch, size_mismatch, no_uri…
    sha1: str | None = None


@dataclass
class XdmSubset:
    folder: str                              # package-relative folder of METADATA.XML
    metadata_file: str
    submission: Submission
    documents: list[XdmDocument]
    unreferenced: list[str]                  # files of the subset no entry points to
    refusal: tuple[str, str] | None = None   # (reason, explanation) when METADATA.XML is unusable


def _norm(text: str | None) -> str | None:
    if text is None:
        return None
    value = " ".join(text.split())
    return value or None


def _values(slot: etree._Element) -> list[str]:
    return [v for v in (_norm("".join(x.itertext())) for x in slot.iter("{*}Value")) if v]


def _localized(el: etree._Element | None) -> str | None:
    if el is None:
        return None
    for ls in el.iter("{*}LocalizedString"):
        value = _norm(ls.get("value"))
        if value:
            return value
    return None


def parse_metadata(data: bytes) -> tuple[Submission, list[XdsEntry]]:
    """Read a METADATA.XML (bare SubmitObjectsRequest, or a SOAP envelope holding one)."""
    root = cda.parse(data)
    if next(root.iter("{*}RegistryObjectList"), None) is None:
        raise cda.XmlRefused("xdm_metadata_unrecognised",
                             f"no RegistryObjectList in METADATA ({cda.localname(root)})")
    submission = Submission()
    entries: list[XdsEntry] = []
    signed: set[str] = set()
    for el in root.iter("{*}RegistryPackage", "{*}ExtrinsicObject", "{*}Association"):
        kind = cda.localname(el)
        if kind == "Association":
            if (el.get("associationType") or "").endswith(":signs") or el.get("associationType") == SIGNS:
                signed.add(el.get("sourceObject") or "")
            continue
        ids: dict[str, str] = {}
        for ext in el.findall("{*}ExternalIdentifier"):
            key = EXTERNAL_ID.get((ext.get("identificationScheme") or "").lower()) or \
                EXTERNAL_ID_BY_NAME.get((_localized(ext.find("{*}Name")) or "").lower())
            if key and ext.get("value"):
                ids[key] = _norm(ext.get("value")) or ""
        slots: dict[str, list[str]] = {}
        for slot in el.findall("{*}Slot"):
            slots.setdefault((slot.get("name") or "").lower(), []).extend(_values(slot))
        if kind == "RegistryPackage":
            is_set = any(k.startswith("set_") for k in ids) or \
                any((c.get("classificationNode") or "").endswith("a54d6aa5-d40d-43f9-88c5-b4633d873bdd")
                    for c in el.iter("{*}Classification"))
            if is_set:
                submission = Submission(ids.get("set_unique_id"), ids.get("set_patient_id"),
                                        (slots.get("submissiontime") or [None])[0])
            continue
        entry = XdsEntry(entry_id=el.get("id") or "", mime_type=_norm(el.get("mimeType")),
                         unique_id=ids.get("unique_id"), patient_id=ids.get("patient_id"),
                         title=_localized(el.find("{*}Name")), comments=_localized(el.find("{*}Description")),
                         slots=slots)
        entry.source_patient_id = entry.slot("sourcePatientId")
        for c in el.findall("{*}Classification"):
            kind_c = SCHEME.get((c.get("classificationScheme") or "").lower())
            if kind_c is None:
                continue
            cslots = {(s.get("name") or "").lower(): _values(s) for s in c.findall("{*}Slot")}
            if kind_c == "author":
                entry.authors.append(XdsAuthor(
                    person=(cslots.get("authorperson") or [None])[0],
                    institutions=cslots.get("authorinstitution", []),
                    specialties=cslots.get("authorspecialty", []), roles=cslots.get("authorrole", [])))
                continue
            code = _norm(c.get("nodeRepresentation"))
            if not code:
                continue
            entry.codes.setdefault(kind_c, []).append(
                XdsCode(code, (cslots.get("codingscheme") or [None])[0], _localized(c.find("{*}Name"))))
        entries.append(entry)
    for entry in entries:
        klass = entry.code("class")
        entry.is_signature = entry.entry_id in signed or (klass is not None and klass.code == SIGNATURE_CLASS)
    return submission, entries


def find_subsets(names: list[str]) -> list[str]:
    """Package-relative paths of every METADATA.XML (any case), wherever the wrapper folders put them."""
    return sorted(n for n in names if PurePosixPath(n).name.lower() == "metadata.xml")


def _uri_candidates(uri: str, folder: str) -> list[str]:
    uri = uri.strip().replace("\\", "/")
    uri = re.sub(r"^(\./)+", "", uri)
    out = [f"{folder}/{uri}" if folder else uri]
    # Some exports write the subset folder into the URI ("SS000001/KOS_1_1.DCM") or only the name.
    parent = PurePosixPath(folder).parent.as_posix()
    if parent not in ("", "."):
        out.append(f"{parent}/{uri}")
    else:
        out.append(uri)
    out.append(f"{folder}/{PurePosixPath(uri).name}" if folder else PurePosixPath(uri).name)
    return out


def read_subset(files: PackageFiles, metadata_name: str) -> XdmSubset:
    folder = PurePosixPath(metadata_name).parent.as_posix()
    folder = "" if folder == "." else folder
    in_folder = [n for n in files.names()
                 if n != metadata_name and PurePosixPath(n).parent.as_posix() == (folder or ".")]
    try:
        submission, entries = parse_metadata(files.read(metadata_name))
    except (cda.XmlRefused, ArchiveRefused) as exc:  # unreadable metadata: the subset is set aside whole
        return XdmSubset(folder, metadata_name, Submission(), [], in_folder, (exc.reason, exc.explanation))
    by_lower = {n.lower(): n for n in files.names()}
    claimed: set[str] = set()
    documents: list[XdmDocument] = []
    pending: list[XdmDocument] = []
    for entry in entries:
        doc = XdmDocument(entry, None)
        uri = entry.slot("URI")
        if uri:
            for cand in _uri_candidates(uri, folder):
                if cand in files.names():
                    doc.file = cand
                    break
                if cand.lower() in by_lower:
                    doc.file = by_lower[cand.lower()]
                    doc.problems.append("uri_case")
                    break
            if doc.file is None:
                doc.problems.append("uri_not_found")
        else:
            doc.problems.append("no_uri")
        if doc.file is not None:
            claimed.add(doc.file)
        else:
            pending.append(doc)
        documents.append(doc)
    # Entries without a usable URI: match by declared hash, then by entry id = file stem, then the only
    # file left over.
    unclaimed = [n for n in in_folder if n not in claimed and not _ignorable(n)]
    for doc in pending:
        declared = (doc.entry.slot("hash") or "").lower()
        match = None
        if declared:
            for name in unclaimed:
                try:
                    content = files.read(name)
                except ArchiveRefused:  # a damaged file matches nothing; it is set aside when read as an item
                    continue
                if hashlib.sha1(content).hexdigest() == declared:
                    match = name
                    break
        if match is None and doc.entry.entry_id:
            stems = [n for n in unclaimed if PurePosixPath(n).stem.lower() == doc.entry.entry_id.lower()]
            match = stems[0] if len(stems) == 1 else None
        if match is None and len(pending) == 1 and len(unclaimed) == 1:
            match = unclaimed[0]
        if match is not None:
            doc.file = match
            doc.problems.append("matched_without_uri")
            unclaimed.remove(match)
            claimed.add(match)
    unreferenced = [n for n in in_folder if n not in claimed and not _ignorable(n)]
    return XdmSubset(folder, metadata_name, submission, documents, unreferenced)


def _ignorable(name: str) -> bool:
    lower = PurePosixPath(name).name.lower()
    return lower.endswith(STYLESHEET_SUFFIXES) or lower in BOILERPLATE


def check_integrity(doc: XdmDocument, data: bytes) -> None:
    """Record (not trust) the declared hash and size against the bytes actually found."""
    doc.sha1 = hashlib.sha1(data).hexdigest()
    declared_hash = (doc.entry.slot("hash") or "").strip().lower()
    if declared_hash and declared_hash != doc.sha1:
        doc.problems.append("hash_mismatch")
    declared_size = (doc.entry.slot("size") or "").strip()
    if declared_size.isdigit() and int(declared_size) != len(data):
        doc.problems.append("size_mismatch")
