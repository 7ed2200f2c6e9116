"""A professional's EHR against a live server, through an independent FHIR client (fhirpy): ITI-65 provide,
ITI-66 find lists, ITI-67 find references (paging by the server's next links), ITI-68 retrieve, the
replacement flow, and the references of the results. Every FHIR answer the client receives is validated by
fhirkit-rs (the FHIR R4 specification, every problem reported with its path); nothing reaches the network."""
from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Iterator
from typing import Any

import fhirkit
import pytest
import requests
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import ForbiddenError, OperationOutcome, ResourceNotFound
from fhirpy.base.searchset import Raw
from werkzeug.serving import make_server

from backend.identity import OID_INS_NIR
from tests.fhir_helpers import Doc, cda_type, grant, make_pro, provide_bundle, real_cda_documents
from tests.helpers import NIR_CAMILLE, create_patient

FHIR_TYPES = ("application/fhir+json", "application/json")


class Validated:
    """A requests response hook: every FHIR JSON answer is checked by fhirkit-rs as it arrives."""

    def __init__(self) -> None:
        self.checked: list[str] = []
        self.problems: list[str] = []

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        if response.headers.get("Content-Type", "").split(";")[0] in FHIR_TYPES:
            body = response.json()
            self.checked.append(body.get("resourceType", "?"))
            self.problems += [f"{response.request.method} {response.url}: {i}" for i in fhirkit.validate(body)
                              if i.severity == "error"]
        return response


@pytest.fixture
def live(app, monkeypatch) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setitem(app.config, "PUBLIC_BASE_URL", base)  # the links the server writes point back at it
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"{base}/fhir/R4"
    server.shutdown()
    thread.join(5)


def ehr(url: str, token: str, hook: Validated) -> SyncFHIRClient:
    return SyncFHIRClient(url, authorization=f"Bearer {token}", requests_config={"hooks": {"response": [hook]}})


def iti67(client: SyncFHIRClient, **params: str) -> list[Any]:
    return client.resources("DocumentReference").search(
        Raw(**{"patient.identifier": f"urn:oid:{OID_INS_NIR}|{NIR_CAMILLE}", **params})).limit(2).fetch_all()


def test_an_ehr_provides_finds_retrieves_and_replaces(app, live):
    camille = create_patient(app)
    doctor = make_pro(app)
    hook = Validated()
    client = ehr(live, doctor.token, hook)

    statement = client.execute("metadata", method="get")
    assert statement["resourceType"] == "CapabilityStatement"
    assert "https://profiles.ihe.net/ITI/MHD/CapabilityStatement/IHE.MHD.DocumentResponder" in statement["instantiates"]
    served = {r["type"] for r in statement["rest"][0]["resource"]}
    assert {"DocumentReference", "List", "Binary", "Patient", "Practitioner"} <= served

    # ITI-65: real CDA documents of the ANS, deposited in one bundle
    originals = [p.read_bytes() for p in real_cda_documents()[:4]]
    docs = []
    for content in originals:
        code, oid = cda_type(content)
        system = "http://loinc.org" if oid in (None, "2.16.840.1.113883.6.1") else f"urn:oid:{oid}"
        docs.append(Doc(content, type_code=code, type_system=system))
    response = client.execute("", method="post", data=provide_bundle(NIR_CAMILLE, docs))
    assert response["type"] == "transaction-response"
    assert all(e["response"]["status"] == "201 Created" and e["response"]["location"].startswith(live)
               for e in response["entry"])
    list_id = response["entry"][0]["response"]["location"].rsplit("/", 1)[-1]

    # reading needs the patient's consent: a refusal the client sees as FHIR
    with pytest.raises(ForbiddenError) as refused:
        iti67(client)
    assert '"OperationOutcome"' in str(refused.value) and "access_no_consent" in str(refused.value)
    grant(app, camille.patient_id, doctor)

    # ITI-66: the submission set, its entries in order
    [submission] = client.resources("List").search(
        Raw(**{"patient.identifier": f"urn:oid:{OID_INS_NIR}|{NIR_CAMILLE}", "code": "submissionset"})).fetch_all()
    assert submission["id"] == list_id and len(submission["entry"]) == len(originals)

    # ITI-67: newest first, two per page, every page reached through the server's next links
    references = iti67(client)
    assert len(references) == len(originals)
    assert sorted(r["id"] for r in references) == sorted(e["item"]["reference"].split("/")[1]
                                                         for e in submission["entry"])

    # ITI-68: the bytes, byte for byte, at attachment.url; and as a FHIR Binary
    by_hash = {hashlib.sha1(c).digest(): c for c in originals}
    for reference in references:
        attachment = reference["content"][0]["attachment"]
        original = by_hash[base64.b64decode(attachment["hash"])]
        raw = requests.get(attachment["url"], headers={"Authorization": f"Bearer {doctor.token}"}, timeout=30)
        assert raw.status_code == 200 and raw.content == original
        binary = client.reference("Binary", reference["id"]).to_resource()
        assert base64.b64decode(binary["data"]) == original

    # the references in the results resolve
    patient = client.reference(reference=references[0]["subject"]["reference"]).to_resource()
    assert patient["identifier"][0]["value"] == NIR_CAMILLE
    practitioner = client.reference("Practitioner", str(doctor.id)).to_resource()
    assert practitioner["identifier"][0]["value"] == "8" + doctor.rpps
    assert client.reference("List", list_id).to_resource()["id"] == list_id

    # the replacement flow: a corrected version replaces the first document
    old = references[-1]
    corrected = Doc(b"<ClinicalDocument xmlns='urn:hl7-org:v3'><title>CR corrige</title></ClinicalDocument>",
                    replaces=old["id"])
    replaced = client.execute("", method="post", data=provide_bundle(NIR_CAMILLE, [corrected]))
    new_id = replaced["entry"][1]["response"]["location"].rsplit("/", 1)[-1]
    [superseded] = iti67(client, status="superseded")
    assert superseded["id"] == old["id"] and superseded["status"] == "superseded"
    current = iti67(client, status="current")
    assert new_id in [r["id"] for r in current] and old["id"] not in [r["id"] for r in current]
    new = client.reference("DocumentReference", new_id).to_resource()
    [relation] = new["relatesTo"]
    assert relation["code"] == "replaces" and relation["target"].reference == f"DocumentReference/{old['id']}"

    # errors reach the client as OperationOutcome
    with pytest.raises(ResourceNotFound):
        client.reference("DocumentReference", "987654").to_resource()
    with pytest.raises(OperationOutcome):
        client.resources("List").search(Raw(**{"patient.identifier": f"urn:oid:{OID_INS_NIR}|{NIR_CAMILLE}",
                                               "code": "nonsense"})).fetch()

    assert not hook.problems, hook.problems
    assert {"CapabilityStatement", "Bundle", "Binary", "Patient", "Practitioner", "List", "DocumentReference",
            "OperationOutcome"} <= set(hook.checked)
