"""The FHIR mapping layer on its own (no database): reading ITI-65 bundles, writing resources that
validate with fhir.resources (R4)."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from types import SimpleNamespace

import pytest

from backend.errors import DomainError
from backend.fhir import resources as fr
from tests.fhir_helpers import EXTERNAL, Doc, provide_bundle, r4
from tests.helpers import NIR_CAMILLE

PDF = b"%PDF-1.4\n%%EOF\n"
TRE_A05 = "https://mos.esante.gouv.fr/NOS/TRE_A05-TypeDocComplementaire/FHIR/TRE-A05-TypeDocComplementaire"


def parse(bundle, limit=10 * 1024 * 1024):
    return fr.parse_provide_bundle(bundle, max_document_bytes=limit)


def test_a_provide_bundle_becomes_a_submission():
    bundle = provide_bundle(NIR_CAMILLE, [
        Doc(PDF, mime="application/pdf", unique_id="urn:oid:1.2.3^x", labels=["MASQUE_PS", "INVISIBLE_PATIENT"],
            confidentiality="V", author_rpps="10000000002", author_name="Paul Bernard", service_date="2024-02"),
        Doc(b"text", mime="text/plain", inline=True, hash="sha256", title=None, type_code="REMB",
            type_system=TRE_A05)])
    submission = parse(bundle)
    assert (submission.patient_oid, submission.patient_nir) == ("1.2.250.1.213.1.4.8", NIR_CAMILLE)
    first, second = submission.documents
    assert (first.unique_id, first.content, first.mime_type) == ("1.2.3^x", PDF, "application/pdf")
    assert (first.confidentiality, first.masked, first.invisible_patient, first.invisible_legal_representatives) == (
        "V", True, True, False)
    assert first.author and (first.author.rpps, first.author.name, first.author.profession,
                             first.author.specialty, first.author.organisation) == (
        "10000000002", "Paul Bernard", "10", "SM54", "Hôpital de test")
    assert first.service_date == dt.datetime(2024, 2, 1, tzinfo=dt.timezone.utc)
    assert (second.type_code, second.type_system, second.title) == ("REMB", "1.2.250.1.213.1.1.4.12", None)
    assert [kind for kind, _ in submission.entries] == ["List", "DocumentReference", "Binary", "DocumentReference"]
    assert submission.entries[2] == ("Binary", 0)


def test_binary_referenced_by_relative_url():
    bundle = provide_bundle(NIR_CAMILLE, [Doc(PDF)])
    bundle["entry"][2]["resource"]["id"] = "b1"
    bundle["entry"][2]["fullUrl"] = "http://client.example/fhir/Binary/b1"
    bundle["entry"][1]["resource"]["content"][0]["attachment"]["url"] = "Binary/b1"
    assert parse(bundle).documents[0].content == PDF


@pytest.mark.parametrize("forged", [base64.b64encode(b"x" * 20).decode(), base64.b64encode(b"x" * 16).decode()])
def test_hashes_are_checked(forged):
    with pytest.raises(DomainError) as refused:
        parse(provide_bundle(NIR_CAMILLE, [Doc(PDF, hash=forged)]))
    assert (refused.value.code, refused.value.status) == ("fhir_hash_mismatch", 422)


def test_a_large_document_is_refused_before_anything_else():
    with pytest.raises(DomainError) as refused:
        parse(provide_bundle(NIR_CAMILLE, [Doc(PDF * 10)]), limit=len(PDF))
    assert refused.value.status == 413


def test_stu3_shaped_resource_fails_r4_validation():
    consent = json.loads((EXTERNAL / "fhir-r4-hl7-examples" / "myconsent-resource.json").read_text())
    with pytest.raises(DomainError) as refused:
        fr.validate_r4(consent)
    assert refused.value.status == 400 and "Ressource FHIR R4 invalide" in refused.value.detail("fr")


@pytest.mark.parametrize("text,expected", [
    ("2024", dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)),
    ("2024-05-14", dt.datetime(2024, 5, 14, tzinfo=dt.timezone.utc)),
    ("2024-05-14T10:00:00+02:00", dt.datetime(2024, 5, 14, 8, tzinfo=dt.timezone.utc)),
    ("2024-05-14T10:00:00Z", dt.datetime(2024, 5, 14, 10, tzinfo=dt.timezone.utc))])
def test_fhir_dates(text, expected):
    assert fr.parse_fhir_datetime(text) == expected


def test_codes_and_identifiers():
    assert fr.system_to_oid("http://loinc.org") == "2.16.840.1.113883.6.1"
    assert fr.oid_to_system("2.16.840.1.113883.6.1") == "http://loinc.org"
    assert fr.oid_to_system("1.2.250.1.213.1.1.4.12") == "urn:oid:1.2.250.1.213.1.1.4.12"
    assert fr.unique_id_in("urn:oid:1.2.3^ab") == "1.2.3^ab" and fr.unique_id_out("1.2.3^ab") == "urn:oid:1.2.3^ab"
    assert fr.unique_id_out("urn:uuid:abc") == "urn:uuid:abc"
    assert fr.rpps_from_idnps("810000000001") == "10000000001" and fr.rpps_from_idnps("abc") is None


def _document(**over):
    base = dict(id=7, unique_id="1.2.3^x", replaced_by_id=None,
                submitted_at=dt.datetime(2024, 1, 2, tzinfo=dt.timezone.utc),
                title="Compte rendu", confidentiality="N", invisible_patient=True, released_at=None,
                invisible_legal_representatives=False, masked=True, mime_type="application/pdf", size=10,
                type_code="11488-4", type_system="2.16.840.1.113883.6.1", class_code="10", format_code=None,
                service_date=None, author_rpps="10000000001", author_name="Alice Durand", author_profession="10",
                author_specialty="SM26", author_organisation="Cabinet")
    base.update(over)
    return SimpleNamespace(**base)


HOLDER = SimpleNamespace(id=1, ins_oid="1.2.250.1.213.1.4.8", nir=NIR_CAMILLE, birth_family_name="MARTIN",
                         given_names="Camille Marie", used_family_name=None, sex="F", birth_date=dt.date(1984, 7, 14),
                         email="c@example.org", phone=None, birth_place_cog="75056")


def test_emitted_resources_validate():
    reference = fr.document_reference(_document(), HOLDER, "https://carnet.example/fhir/R4/")
    r4(reference)
    assert {c["code"] for label in reference["securityLabel"] for c in label["coding"]} == {
        "N", "INVISIBLE_PATIENT", "MASQUE_PS"}
    r4(fr.binary(_document(), PDF))
    r4(fr.patient(HOLDER))
    r4(fr.searchset([reference], "https://carnet.example/fhir/R4/", total=1, self_link="https://x/y",
                    next_link="https://x/z"))
    from backend.fhir.layer import operation_outcome

    r4(operation_outcome(422, "fhir_mhd_rule", "Lot refusé"))
    released = fr.document_reference(_document(released_at=dt.datetime(2024, 2, 1, tzinfo=dt.timezone.utc),
                                               replaced_by_id=9, author_rpps=None, author_name=None,
                                               author_organisation=None), HOLDER, "https://x/")
    r4(released)
    assert released["status"] == "superseded" and "contained" not in released
    assert "INVISIBLE_PATIENT" not in json.dumps(released["securityLabel"])


def test_sha1_of_the_data_is_the_r4_hash():
    bundle = provide_bundle(NIR_CAMILLE, [Doc(PDF)])
    attachment = bundle["entry"][1]["resource"]["content"][0]["attachment"]
    assert base64.b64decode(attachment["hash"]) == hashlib.sha1(PDF).digest()
    assert parse(bundle).documents[0].content == PDF
