"""The one FHIR layer: every answer under /fhir/R4 (and the connected services' base) is FHIR — errors of any
origin, unknown paths and methods, formats the server cannot produce —, links come from the configured public
base URL whatever the Host header says, and the CapabilityStatement says exactly what the routes do."""
from __future__ import annotations

import re

import fhirkit
import pytest

from backend.identity import OID_INS_NIR
from tests.conftest import make_app
from tests.fhir_helpers import FHIR_JSON, Doc, grant, make_pro, post_bundle, provide_bundle, r4, search
from tests.helpers import NIR_CAMILLE, create_patient

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def valid(body: dict) -> dict:
    """Both independent checks: fhirkit-rs (the R4 specification, every problem with its path) and
    fhir.resources."""
    issues = [str(i) for i in fhirkit.validate(body) if i.severity == "error"]
    assert not issues, issues
    r4(body)
    return body


def outcome(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.mimetype == FHIR_JSON, response.mimetype
    body = valid(response.get_json(force=True))
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["diagnostics"]
    if code:
        assert body["issue"][0]["details"]["coding"][0]["code"] == code
    return body


@pytest.fixture
def doctor(app):
    return make_pro(app)


# --- item 5: every answer is FHIR ------------------------------------------------------------------------------

@pytest.mark.parametrize("method, path, status", [
    ("get", "/fhir/R4/Observation", 404),                 # a type this server does not serve
    ("get", "/fhir/R4/Observation/1", 404),
    ("get", "/fhir/R4/Patient", 404),                     # Patient is read-only: no search
    ("get", "/fhir/R4/nothing/here/at/all", 404),
    ("delete", "/fhir/R4/DocumentReference/1", 405),
    ("put", "/fhir/R4/List/1", 405),
    ("get", "/fhir/R4", 405),                             # the base takes transactions only
    ("get", "/api/service/v1/fhir/Nothing", 404),
    ("delete", "/api/service/v1/fhir/Observation", 405),
])
def test_unknown_paths_and_methods_answer_an_operation_outcome(client, doctor, method, path, status):
    response = getattr(client, method)(path, headers=doctor.headers())
    body = outcome(response, status)
    assert body["issue"][0]["code"] in ("not-found", "not-supported")
    if status == 405:
        assert response.headers["Allow"]


def test_errors_of_every_feature_are_operation_outcomes(client, doctor):
    outcome(client.get("/fhir/R4/Schedule/424242", headers=doctor.headers()), 404)       # agenda
    outcome(client.get("/fhir/R4/Communication/424242", headers=doctor.headers()), 404)  # inbox
    outcome(client.get("/fhir/R4/Appointment"), 401, "fhir_unauthorized")
    outcome(client.post("/fhir/R4/Schedule", data=b"{", headers=doctor.headers(), content_type=FHIR_JSON), 400,
            "fhir_invalid_json")
    outcome(client.get("/api/service/v1/fhir/DocumentReference"), 401, "catalog_invalid_token")


@pytest.mark.parametrize("path", ["/fhir/R4/metadata", "/fhir/R4/DocumentReference", "/fhir/R4/List",
                                  "/fhir/R4/Binary/1", "/fhir/R4/Schedule", "/api/service/v1/fhir/metadata"])
def test_a_format_the_server_cannot_produce_is_a_406(client, doctor, path):
    cases = [((("_format", "xml"),), {}), ((("_format", "application/fhir+xml"),), {})]
    if "Binary" not in path:  # ITI-68 weighs Accept against the document's own type, once it is found
        cases += [((), {"Accept": "application/fhir+xml"}), ((), {"Accept": "text/html"})]
    for query, headers in cases:
        response = client.get(path, query_string=list(query), headers={**doctor.headers(), **headers})
        outcome(response, 406, "fhir_not_acceptable")
    assert client.get("/fhir/R4/metadata", query_string={"_format": "json"}).status_code == 200
    assert client.get("/fhir/R4/metadata", headers={"Accept": "application/fhir+json, */*;q=0.1"}).status_code == 200


def test_an_xml_body_is_a_415(client, doctor):
    outcome(client.post("/fhir/R4", data=b"<Bundle xmlns='http://hl7.org/fhir'/>", headers=doctor.headers(),
                        content_type="application/fhir+xml"), 415, "fhir_unsupported_media_type")
    outcome(client.post("/fhir/R4/Schedule", data=b"<Schedule/>", headers=doctor.headers(),
                        content_type="application/fhir+xml"), 415)


def test_a_database_outage_is_a_503_operation_outcome(tmp_path):
    """A real failure: the database file cannot be opened. Every feature's route answers the same 503."""
    app = make_app(f"sqlite:///{tmp_path / 'missing' / 'carnet.db'}")
    client = app.test_client()
    for path in ("/fhir/R4/DocumentReference", "/fhir/R4/Schedule", "/fhir/R4/Communication", "/fhir/R4/List"):
        response = client.get(path, headers={"Authorization": "Bearer some-token"})
        body = outcome(response, 503, "service_unavailable")
        assert body["issue"][0]["code"] == "transient" and response.headers["Retry-After"]
    assert client.get("/fhir/R4/metadata").status_code == 200   # needs no database


# --- #14 item 8: links never come from the Host header ---------------------------------------------------------

def test_links_come_from_the_configured_public_base_not_the_host_header(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "PUBLIC_BASE_URL", "https://dmp.carnet.example")
    camille = create_patient(app)
    doctor = make_pro(app)
    forged = {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http"}
    deposited = post_bundle(client, doctor, provide_bundle(NIR_CAMILLE, [Doc(PDF, mime="application/pdf")]),
                            **forged)
    grant(app, camille.patient_id, doctor)
    found = search(client, doctor, NIR_CAMILLE, headers=forged, _count=1)
    lists = client.get("/fhir/R4/List", query_string={"patient.identifier": f"urn:oid:{OID_INS_NIR}|{NIR_CAMILLE}",
                                                      "code": "submissionset"}, headers=doctor.headers(**forged))
    statement = client.get("/fhir/R4/metadata", headers=forged)
    for response in (deposited, found, lists, statement):
        assert response.status_code == 200, response.get_json()
        text = response.get_data(as_text=True)
        assert "evil.example" not in text
        urls = re.findall(r'"(?:url|fullUrl|location)":"([^"]+)"', text)
        assert urls and all(not u.startswith("http") or u.startswith("https://dmp.carnet.example/fhir/R4")
                            or "carnet.example/fhir/" in u or "profiles.ihe.net" in u or "hl7.org" in u
                            for u in urls), urls
    assert deposited.get_json()["entry"][0]["response"]["location"].startswith("https://dmp.carnet.example/fhir/R4/")
    assert found.get_json()["entry"][0]["fullUrl"].startswith("https://dmp.carnet.example/fhir/R4/DocumentReference/")
    assert {link["url"].split("?")[0] for link in found.get_json()["link"]} == {
        "https://dmp.carnet.example/fhir/R4/DocumentReference"}


# --- item 6: the CapabilityStatement is what the routes do -----------------------------------------------------

def derived_interactions(app, prefix: str) -> tuple[set[tuple[str, str]], set[str], set[str]]:
    """(type, interaction) pairs, system interactions and extra paths, read off the URL map alone."""
    pairs, system, extra = set(), set(), set()
    for rule in app.url_map.iter_rules():
        if not (rule.rule == prefix or rule.rule.startswith(prefix + "/")):
            continue
        path = rule.rule[len(prefix):]
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if path in ("", "/") and method == "POST":
                system.add("transaction")
            elif path == "/metadata":
                continue
            elif m := re.fullmatch(r"/([A-Z]\w+)", path):
                pairs.add((m.group(1), {"GET": "search-type", "POST": "create"}[method]))
            elif m := re.fullmatch(r"/([A-Z]\w+)/_search", path):
                assert method == "POST"
                pairs.add((m.group(1), "search-type"))
            elif m := re.fullmatch(r"/([A-Z]\w+)/<[^>]+>", path):
                pairs.add((m.group(1), {"GET": "read", "PUT": "update", "DELETE": "delete"}[method]))
            elif m := re.fullmatch(r"/([A-Z]\w+)(/<[^>]+>)?/\$([a-z-]+)", path):
                pairs.add((m.group(1), f"${m.group(3)}"))
            else:
                extra.add(path)
    return pairs, system, extra


@pytest.mark.parametrize("prefix", ["/fhir/R4", "/api/service/v1/fhir"])
def test_the_capability_statement_matches_the_routes(app, client, prefix):
    response = client.get(f"{prefix}/metadata")
    assert response.status_code == 200 and response.mimetype == FHIR_JSON
    statement = valid(response.get_json())
    assert '[]' not in response.get_data(as_text=True)  # FHIR JSON never holds an empty array
    rest = statement["rest"][0]
    declared = set()
    for resource in rest["resource"]:
        assert resource["interaction"], resource["type"]
        declared |= {(resource["type"], i["code"]) for i in resource["interaction"]}
        declared |= {(resource["type"], f"${o['name']}") for o in resource.get("operation", [])}
        for param in resource.get("searchParam", []):
            assert param["documentation"] and param["type"] in ("token", "reference", "date", "string", "number",
                                                                "uri")
    pairs, system, extra = derived_interactions(app, prefix)
    assert declared == pairs
    assert {i["code"] for i in rest.get("interaction", [])} == system
    for path in extra:  # a path that is not a FHIR interaction is documented by its resource
        type_ = path.split("/")[1]
        [resource] = [r for r in rest["resource"] if r["type"] == type_]
        documented = re.sub(r"<(?:\w+:)?(\w+)>", "{}", path)
        assert documented.replace("{}", "") in re.sub(r"\{\w+\}", "", resource["documentation"]), path


def test_searches_honour_what_the_statement_declares(app, client, doctor):
    """Each declared ITI-66/ITI-67 parameter is understood: a search with it is not refused as unknown."""
    camille = create_patient(app)
    grant(app, camille.patient_id, doctor)
    statement = client.get("/fhir/R4/metadata").get_json()
    samples = {"token": "x", "date": "ge2024-01-01", "string": "Dur", "number": "5", "reference": "Patient/1"}
    for resource in statement["rest"][0]["resource"]:
        if resource["type"] not in ("DocumentReference", "List"):
            continue
        for param in resource["searchParam"]:
            query = {"patient.identifier": f"urn:oid:{OID_INS_NIR}|{NIR_CAMILLE}", "code": "submissionset"}
            if param["name"] in ("patient", "patient.identifier"):
                query.pop("patient.identifier")
                query[param["name"]] = (f"Patient/{camille.patient_id}" if param["name"] == "patient"
                                        else f"urn:oid:{OID_INS_NIR}|{NIR_CAMILLE}")
            elif param["name"] == "status":
                query["status"] = "current"
            elif param["name"] == "code":
                pass
            else:
                query[param["name"]] = samples[param["type"]]
            response = client.get(f"/fhir/R4/{resource['type']}", query_string=query, headers=doctor.headers())
            assert response.status_code == 200, (resource["type"], param["name"], response.get_json())
            valid(response.get_json())
