"""Readers, mapping and settings of the legacy migration: pure functions on the real fixtures and on
hostile inputs (no database)."""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from backend import cda as xml_core
from migration import mapping, settings
from migration.extraction import extract_entries
from migration.readers import cda, xdm
from migration.readers.archive import ArchiveRefused, DirFiles, Limits, ZipFiles
from migration.readers.dossier import scan
from tests.migration_support import EXT, V3, V222

ALL_CDA = sorted([*V3.glob("*.xml"), *(EXT / "ans-testcontenucda-2.41").glob("*.xml"), *V222.glob("*.xml"),
                  EXT / "ans-drimbox" / "cda" / "IMG_CR_IMG_2023.11_CDA-R2-Niveau-1.xml",
                  *(EXT / "hl7-c-cda-examples").rglob("*.xml"), *(EXT / "hl7-c-cda-examples").rglob("*.XML"),
                  EXT / "hl7-cda-sample" / "cda-original.xml"])


@pytest.mark.parametrize("path", ALL_CDA, ids=lambda p: p.name)
def test_every_fixture_cda_is_read_or_refused_with_a_reason(path: Path) -> None:
    data = path.read_bytes()
    try:
        header, _ = cda.parse(data)
    except cda.NotCda as exc:
        assert exc.reason == "not_cda"  # the C-CDA header-only fragment
        return
    assert header.id is not None and header.code is not None
    assert header.patient_ids and header.body.kind in ("nonxml", "structured")


def test_xslt_wrapped_bom_crlf_and_no_declaration() -> None:
    wrapped, _ = cda.parse((V3 / "BIO-CR-BIO_2021.01_Auto-Presentable.xml").read_bytes())
    assert wrapped.wrapped_in_xslt and wrapped.code.code == "11502-2"
    bom = (V3 / "eP-MED-DM_2024.01_PosoStruct.xml").read_bytes()
    assert bom.startswith(xml_core.BOM) and cda.parse(bom)[0].code.code == "57833-6"
    nodecl = (V222 / "xdm/XDM_2-CR-BIO/IHE_XDM/IHE_XDM/SUBSET01/DOC00002.XML").read_bytes()
    assert not nodecl.startswith(b"<?xml") and b"\r\n" in nodecl
    assert cda.parse(nodecl)[0].id.key == "1.2.250.1.213.1.1.9.8.1.63451613409007762772^100"


def test_level_1_bodies() -> None:
    pdf, doc = cda.parse((EXT / "ans-drimbox/cda/IMG_CR_IMG_2023.11_CDA-R2-Niveau-1.xml").read_bytes())
    assert pdf.body.media_type == "application/pdf"
    assert cda.nonxml_payload(doc) == (EXT / "ans-drimbox/cda/IMG_CR_IMG_2023.11_Doc_metier.pdf").read_bytes()
    text, _ = cda.parse((EXT / "hl7-c-cda-examples/Unstructured/CDA with Embedded Text plain/"
                         "CDA_Embedded_Text_Plain_Surgical_Consult.xml").read_bytes())
    assert text.body.media_type == "text/plain"
    ref, _ = cda.parse((EXT / "hl7-c-cda-examples/Unstructured/CDA reference PDF/"
                        "Unstructured_Document_reference.xml").read_bytes())
    assert ref.body.reference == "UD_sample.pdf"


def test_xdm_soap_envelope_ss_subset_and_prefixed_uris() -> None:
    files = DirFiles(EXT / "ans-drimbox/xdm/KA202401", "KA202401")
    [meta] = xdm.find_subsets(files.names())
    subset = xdm.read_subset(files, meta)
    by_id = {d.entry.entry_id: d for d in subset.documents}
    assert by_id["DocumentKOS"].file == "IHE_XDM/SS000001/KOS_1_1.DCM"
    assert by_id["Signature01"].entry.is_signature
    sig = by_id["Signature01"]
    xdm.check_integrity(sig, files.read(sig.file))
    assert {"hash_mismatch", "size_mismatch"} <= set(sig.problems)
    assert [c.code for c in sig.entry.codes["confidentiality"]] == ["N", "MASQUE_PS", "INVISIBLE_PATIENT"]
    assert subset.unreferenced == ["IHE_XDM/SS000001/CR.TXT"]


def test_xdm_zip_with_wrapper_folder_mixed_case_and_no_uri() -> None:
    files = ZipFiles(EXT / "directproject-xdm/samplexdm.zip", "samplexdm.zip")
    [meta] = xdm.find_subsets(files.names())
    assert meta == "samplexdm/IHE_XDM/SUBSET01/METADATA.xml"
    [doc] = xdm.read_subset(files, meta).documents
    assert doc.file == "samplexdm/IHE_XDM/SUBSET01/Document01.xml" and "no_uri" in doc.problems


def test_xdm_hashes_recorded_not_trusted() -> None:
    good = DirFiles(V222 / "xdm/XDM_2-CR-BIO", "x")
    subset = xdm.read_subset(good, xdm.find_subsets(good.names())[0])
    for d in subset.documents:
        xdm.check_integrity(d, good.read(d.file))
        assert d.problems == []
    bad = DirFiles(V222 / "xdm/XDM_VSM", "x")
    [d] = xdm.read_subset(bad, xdm.find_subsets(bad.names())[0]).documents
    xdm.check_integrity(d, bad.read(d.file))
    assert "hash_mismatch" in d.problems


def test_uri_differing_in_case_from_the_file(tmp_path: Path) -> None:
    import shutil

    shutil.copytree(V222 / "xdm/XDM_VSM", tmp_path / "p")
    sub = tmp_path / "p/IHE_XDM/IHE_XDM/SUBSET01"
    (sub / "DOC00001.XML").rename(sub / "doc00001.xml")
    files = DirFiles(tmp_path / "p", "p")
    [d] = xdm.read_subset(files, xdm.find_subsets(files.names())[0]).documents
    assert d.file.endswith("doc00001.xml") and "uri_case" in d.problems


# --- hostile inputs --------------------------------------------------------------------------------------

XXE = b"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&x;</title></ClinicalDocument>"""
LAUGHS = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">
<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><r>&lol3;</r>"""
EXTERNAL_DTD = b"""<?xml version="1.0"?><!DOCTYPE r SYSTEM "http://attacker.example/x.dtd"><r/>"""


@pytest.mark.parametrize("data,reason", [(XXE, "xml_entities"), (LAUGHS, "xml_entities"),
                                         (EXTERNAL_DTD, "xml_external_dtd"), (b"<a><b></a>", "xml_malformed"),
                                         (b"", "xml_empty")])
def test_hostile_xml_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(xml_core.XmlRefused) as caught:
        xml_core.parse(data)
    assert caught.value.reason == reason


def test_xml_size_limit() -> None:
    with pytest.raises(xml_core.XmlRefused) as caught:
        xml_core.parse(b"<r>" + b"x" * 2000 + b"</r>", max_bytes=1000)
    assert caught.value.reason == "xml_too_large"


def _zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def test_zip_bomb_traversal_and_totals_refused(tmp_path: Path) -> None:
    bomb = _zip(tmp_path / "bomb.zip", {"IHE_XDM/SUBSET01/DOC00001.XML": b"\0" * (20 * 1024 * 1024)})
    with pytest.raises(ArchiveRefused) as caught:
        ZipFiles(bomb, "bomb.zip")
    assert caught.value.reason == "zip_bomb"
    travel = _zip(tmp_path / "travel.zip", {"../../etc/cron.d/x": b"x"})
    with pytest.raises(ArchiveRefused) as caught:
        ZipFiles(travel, "travel.zip")
    assert caught.value.reason == "zip_path_traversal"
    absolute = _zip(tmp_path / "abs.zip", {"/etc/passwd": b"x"})
    with pytest.raises(ArchiveRefused) as caught:
        ZipFiles(absolute, "abs.zip")
    assert caught.value.reason == "zip_path_traversal"
    many = _zip(tmp_path / "many.zip", {f"f{i}.xml": os.urandom(2000) for i in range(10)})
    with pytest.raises(ArchiveRefused) as caught:
        ZipFiles(many, "many.zip", Limits(max_total_bytes=10_000))
    assert caught.value.reason == "zip_bomb"


def test_dossier_symlinks_are_not_followed(tmp_path: Path) -> None:
    dossier = tmp_path / "d"
    dossier.mkdir()
    (dossier / "secret.xml").symlink_to("/etc/passwd")
    items = scan(dossier)
    assert [(i.kind, i.refusal[0]) for i in items] == [("refused", "symlink_refused")]


# --- mapping ---------------------------------------------------------------------------------------------

HOLDER = mapping.Holder("279035121518989", frozenset({(mapping.OID_INS_C, "0218805328320789819507")}))


@pytest.mark.parametrize("ids,expected", [
    ([("1.2.250.1.213.1.4.10", "279035121518989"), ("1.2.3.4", "IPP1")], None),
    ([("1.2.250.1.213.1.4.8", "2790351215189")], None),                        # NIR without its key
    ([("1.2.250.1.213.1.4.13", "279035121518989")], None),
    ([("1.2.250.1.213.1.4.2", "0218805328320789819507")], None),               # listed INS-C
    ([("1.2.250.1.213.1.4.10", "277076322082910")], "identity_other_person"),
    ([("1.2.250.1.213.1.4.10", "279035121518989"), ("1.2.250.1.213.1.4.8", "277076322082910")],
     "identity_other_person"),                                               # one id is someone else's
    ([("1.2.250.1.213.1.4.2", "0411886319605719371016")], "identity_unlisted"),
    ([("2.16.840.1.113883.4.1", "111-00-2330")], "identity_missing"),
    ([], "identity_missing"),
])
def test_identity(ids: list[tuple[str, str]], expected: str | None) -> None:
    refusal = mapping.check_identity(HOLDER, [mapping.PatientId(o, v, "cda") for o, v in ids])
    assert (refusal.reason if refusal else None) == expected


def test_xds_cx_forms() -> None:
    assert mapping.parse_cx("162018885045327^^^&1.2.250.1.213.1.4.10&ISO^NH", "xds") == \
        mapping.PatientId("1.2.250.1.213.1.4.10", "162018885045327", "xds")
    assert mapping.parse_cx("111111111^^&2.16.840.1.113883.4.1&ISO", "xds").oid == "2.16.840.1.113883.4.1"


def test_mapping_from_xds_visibility_author_dates() -> None:
    files = DirFiles(EXT / "ans-drimbox/xdm/KA202401", "KA202401")
    subset = xdm.read_subset(files, xdm.find_subsets(files.names())[0])
    kos = next(d for d in subset.documents if d.entry.entry_id == "DocumentKOS")
    m = mapping.map_document(xds=kos.entry, cda=None, submission_time=subset.submission.submission_time,
                             file_name="KOS_1_1.DCM", data_head=b"", sha256="0" * 64)
    assert isinstance(m, mapping.MappedDocument)
    assert (m.class_code, m.type_code, m.mime_type) == ("31", "IMG-KOS", "application/dicom")
    assert m.author.rpps == "99700367909" and m.author.name == "KIT DOC0036790"
    assert m.service_date.isoformat() == "2021-01-04T09:22:00+00:00"
    assert m.unique_id == "1.3.2.751468943.3.1234.99352.240116151112.1.1.1"
    sig = next(d for d in subset.documents if d.entry.entry_id == "Signature01")
    assert mapping.map_document(xds=sig.entry, cda=None, submission_time=None, file_name="SIGN_1.XML",
                                data_head=b"", sha256="0" * 64) == mapping.Refusal("technical_signature")


def test_visibility_flags_from_xds_codes() -> None:
    codes = [xdm.XdsCode("N"), xdm.XdsCode("MASQUE_PS", mapping.OID_VISIBILITY),
             xdm.XdsCode("INVISIBLE_REPRESENTANTS_LEGAUX", mapping.OID_VISIBILITY), xdm.XdsCode("R")]
    assert mapping._visibility(codes, None) == ("R", False, True, True)


def test_mapping_from_cda_header() -> None:
    data = (V3 / "CNAM-HR_2021.01.xml").read_bytes()
    header, _ = cda.parse(data)
    m = mapping.map_document(xds=None, cda=header, submission_time=None, file_name="x.xml", data_head=data[:10],
                             sha256="0" * 64)
    assert (m.class_code, m.type_code, m.type_system) == ("60", "REMB", mapping.OID_FRENCH_TYPES)
    assert m.author.organisation == "Assurance Maladie" and m.author.rpps is None
    assert m.service_date.isoformat() == "2019-01-01T14:45:00+00:00"
    vac, _ = cda.parse((V3 / "VAC-NOTE_2023.01.xml").read_bytes())
    m = mapping.map_document(xds=None, cda=vac, submission_time=None, file_name="x", data_head=b"", sha256="0")
    assert m.author.rpps == "01234567897" and m.author.profession == "10"
    assert m.unique_id == "1.2.250.1.213.1.1.1.46.2023.1.1"


def test_dates() -> None:
    assert xml_core.hl7_time("20160104150525").isoformat() == "2016-01-04T15:05:25+00:00"
    assert xml_core.hl7_time("201501040822+0100").isoformat() == "2015-01-04T07:22:00+00:00"
    assert xml_core.hl7_time("20170730", mapping.PARIS).isoformat() == "2017-07-29T22:00:00+00:00"
    assert xml_core.hl7_time("garbage") is None and xml_core.hl7_time("20171340") is None


def test_structured_extraction() -> None:
    header, doc = cda.parse((V3 / "VAC_2023.01.xml").read_bytes())
    vaccines = extract_entries(doc, header.code.code)
    assert {e["kind"] for e in vaccines} == {"vaccination"} and len(vaccines) == 3
    assert vaccines[0]["date"] == "1975-01-01"
    header, doc = cda.parse((V3 / "IPS-FR_2024.01.xml").read_bytes())
    kinds = {e["kind"] for e in extract_entries(doc, header.code.code)}
    assert {"allergy", "problem", "treatment", "vaccination", "measure"} <= kinds
    header, doc = cda.parse((V3 / "CNAM-HR_2021.01.xml").read_bytes())
    assert {e["kind"] for e in extract_entries(doc, "REMB")} == {"reimbursement"}
    header, doc = cda.parse((V3 / "eDISP-MED_2024.01.xml").read_bytes())
    assert {e["kind"] for e in extract_entries(doc, "60593-1")} == {"dispensation"}
    header, doc = cda.parse((V3 / "CSE-MDE_2023.01.xml").read_bytes())
    weight = next(e for e in extract_entries(doc, "29274-8") if e["code"] == "29463-7")
    assert (weight["value"], weight["unit"]) == ("3900", "g")


# --- settings --------------------------------------------------------------------------------------------

def test_settings_valid() -> None:
    s = settings.parse(b'\xef\xbb\xbf{"version": 1, "identifiers": [{"oid": "1.2.250.1.213.1.4.2", '
                       b'"value": "0218805328320789819507"}], "authorised_professionals": [{"rpps": "810001234567"}],'
                       b' "blocked_professionals": [{"rpps": "10009999999"}], "medecin_traitant": null,'
                       b' "emergency": {"samu": false}, "mask_new_documents": true}')
    assert s.authorised[0].rpps == "10001234567" and s.emergency == {"samu": False} and s.mask_new_documents


@pytest.mark.parametrize("raw,pointer,rule", [
    (b"{", "/", "not valid JSON"),
    (b"[]", "/", "must be of type object"),
    (b'{"version": 2}', "/version", "must be 1"),
    (b'{"version": 1, "colour": "red"}', "/", "unknown property 'colour'"),
    (b'{"version": 1, "blocked_professionals": [{"rpps": "123"}]}', "/blocked_professionals/0/rpps", "format"),
    (b'{"version": 1, "identifiers": [{"oid": "1.2.250.1.213.1.4.2", "value": "123"}]}',
     "/identifiers/0/value", "22 digits"),
    (b'{"version": 1, "identifiers": [{"oid": "1.2.3", "value": "1"}]}', "/identifiers/0/oid", "one of"),
    (b'{"version": 1, "authorised_professionals": [{"rpps": "10001234567", "since": "2020-02-30"}]}',
     "/authorised_professionals/0/since", "date"),
    (b'{"version": 1, "authorised_professionals": [{"rpps": "10001234567"}], '
     b'"blocked_professionals": [{"rpps": "10001234567"}]}', "/authorised_professionals/0/rpps", "both"),
    (b'{"version": 1, "emergency": {"samu": "yes"}}', "/emergency/samu", "boolean"),
])
def test_settings_invalid_with_a_precise_reason(raw: bytes, pointer: str, rule: str) -> None:
    with pytest.raises(settings.SettingsInvalid) as caught:
        settings.parse(raw)
    assert caught.value.pointer == pointer and rule in caught.value.rule


def test_settings_schema_is_a_valid_json_schema() -> None:
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(settings.schema())


def test_zip_reads_its_members(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a/B.xml", b"<r/>")
    (tmp_path / "p.zip").write_bytes(buf.getvalue())
    files = ZipFiles(tmp_path / "p.zip", "p.zip")
    assert files.names() == ["a/B.xml"] and files.read("a/B.xml") == b"<r/>"
