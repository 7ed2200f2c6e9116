"""Connected services: OAuth 2.0 authorization code with PKCE (S256), scoped tokens, the FHIR service API
within the granted categories, and every way access ends (revocation, expiry, suspension, de-referencing)
taking effect on the very next request; every access in the patient's access history."""
from __future__ import annotations

import base64
import datetime as dt

import pytest
import time_machine
from sqlalchemy import select

from backend.catalog import operators
from backend.catalog.models import AccessToken, AuthorizationCode, ServiceStatus
from backend.records.profile.models import ProfileMeasure
from backend.records.profile import service as profile
from backend.records.profile import measures as measure_service
from backend.records import vault as make_vault
from tests.catalog_support import authorize, exchange, load, pkce, service_id, service_spec
from tests.helpers import activate, bearer, create_patient
from tests.world import make_doc, sentinel_title

FHIR = "/api/service/v1/fhir"
DIABETE_URI = "fr.example.diabete:/callback"
WRITER = ["measures.glucose.read", "measures.glucose.write", "documents.BIOLOGIE.read", "documents.CPT_REND.read"]
READER = ["measures.glucose.read", "documents.BIOLOGIE.read"]


@pytest.fixture
def world(app, client, db):
    report = load(app, [
        service_spec("journal-diabete", "Journal Diabète", permissions=WRITER, redirect=DIABETE_URI),
        service_spec("lecteur", "Lecteur Seul", permissions=READER),
        service_spec("cabinet", "Cabinet Connecté", permissions=["documents.CPT_REND.read"], confidential=True),
    ])
    created = create_patient(app)
    tokens = activate(client, created)
    pid = created.patient_id
    docs = {name: make_doc(app, db, pid, name, category=category, masked=masked).id
            for name, category, masked in (("bio", "BIOLOGIE", False), ("report", "CPT_REND", False),
                                           ("imaging", "RADIO_SC", False), ("masked_bio", "BIOLOGIE", True))}
    db.commit()
    with app.app_context():
        from backend.db import get_session

        session = get_session()
        measure_service.add_measure(session, make_vault(session), pid, {"type": "glucose", "value": 1.05, "unit": "g/L"})
        measure_service.add_measure(session, make_vault(session), pid, {"type": "weight", "value": 62.5})
        session.commit()
    return {"patient_id": pid, "headers": bearer(tokens["access_token"]), "docs": docs,
            "secret": report.client_secrets["cabinet"]}


def token_for(client, world, slug: str, scopes: list[str], ticked: list[str] | None = None,
              redirect_uri: str | None = None) -> dict:
    client_id = f"{slug}-client"
    uri = redirect_uri or (DIABETE_URI if slug == "journal-diabete" else f"https://{slug}.example.fr/cb")
    code, verifier = authorize(client, world["headers"], client_id, scopes, ticked=ticked)
    r = exchange(client, client_id, code, verifier, redirect_uri=uri)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def svc(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}


def titles(bundle: dict) -> set[str]:
    return {e["resource"]["content"][0]["attachment"]["title"] for e in bundle.get("entry", [])}


def test_consent_sheet_then_code_then_token(app, client, world):
    verifier, challenge = pkce()
    params = {"response_type": "code", "client_id": "journal-diabete-client", "scope": " ".join(WRITER),
              "state": "s1", "code_challenge": challenge, "code_challenge_method": "S256"}
    r = client.get("/api/v1/catalog/oauth/authorize", query_string=params, headers=world["headers"])
    assert r.status_code == 200, r.get_json()
    sheet = r.get_json()
    assert [p["scope"] for p in sheet["requested"]] == WRITER
    assert not any(p["granted"] for p in sheet["requested"])          # nothing pre-ticked
    assert sheet["service"]["name"] == "Journal Diabète" and sheet["redirect_uri"] == DIABETE_URI
    # the patient ticks two of the four
    ticked = ["measures.glucose.read", "documents.BIOLOGIE.read"]
    token = token_for(client, world, "journal-diabete", WRITER, ticked=ticked)
    assert sorted(token["scope"].split()) == sorted(ticked)
    assert token["token_type"].lower() == "bearer" and token["expires_in"] == 3600 and token["refresh_token"]
    # only hashes are stored
    with app.app_context():
        from backend.db import get_session

        stored = get_session().scalars(select(AccessToken.token_hash)).all()
        assert token["access_token"] not in stored and len(stored) == 1
    # the patient sees the connection with exactly those permissions
    listed = client.get("/api/v1/catalog/connections", headers=world["headers"]).get_json()
    assert sorted(p["scope"] for p in listed["items"][0]["permissions"]) == sorted(ticked)


def test_the_patient_refuses(client, world):
    verifier, challenge = pkce()
    params = {"response_type": "code", "client_id": "journal-diabete-client", "scope": "measures.glucose.read",
              "state": "s2", "code_challenge": challenge, "code_challenge_method": "S256"}
    r = client.post("/api/v1/catalog/oauth/authorize", query_string=params, json={"deny": True},
                    headers=world["headers"])
    assert r.status_code == 200 and "error=access_denied" in r.get_json()["redirect_to"]
    r = client.post("/api/v1/catalog/oauth/authorize", query_string=params, json={"permissions": []},
                    headers=world["headers"])
    assert r.status_code == 422 and r.get_json()["code"] == "catalog_no_permission"
    assert client.get("/api/v1/catalog/connections", headers=world["headers"]).get_json()["items"] == []


@pytest.mark.parametrize("change, error", [
    ({"code_challenge_method": "plain"}, "S256"),
    ({"code_challenge_method": "S512"}, "S256"),
    ({"client_id": "unknown-client"}, "client"),
    ({"redirect_uri": "https://evil.example.com/cb"}, "redirect"),
    ({"response_type": "token"}, "response"),
    ({"scope": "documents.REMB.read"}, "scope"),
])
def test_bad_authorization_requests_are_refused(client, world, change, error):
    verifier, challenge = pkce()
    params = {"response_type": "code", "client_id": "journal-diabete-client", "scope": "measures.glucose.read",
              "state": "s", "code_challenge": challenge, "code_challenge_method": "S256", **change}
    r = client.post("/api/v1/catalog/oauth/authorize", query_string=params,
                    json={"permissions": ["measures.glucose.read"]}, headers=world["headers"])
    assert r.status_code in (400, 409, 422), r.get_json()
    assert client.get("/api/v1/catalog/connections", headers=world["headers"]).get_json()["items"] == []
    params.pop("code_challenge")
    r = client.post("/api/v1/catalog/oauth/authorize", query_string=params,
                    json={"permissions": ["measures.glucose.read"]}, headers=world["headers"])
    assert r.status_code == 422  # PKCE is mandatory


@pytest.mark.parametrize("change", [{"response_type": "°C"}, {"response_type": 'co"de'},
                                    {"redirect_uri": "https://journal-diabète.example.fr/cb"},
                                    {"redirect_uri": "fr.example.diabete:/call\\back"}],
                         ids=["response_type_non_ascii", "response_type_quote", "redirect_uri_non_ascii",
                              "redirect_uri_backslash"])
def test_characters_outside_the_oauth_error_set_are_a_400_with_a_reason(client, world, change):
    """Authlib refuses to build an error quoting them (ValueError): the request is refused before, with a
    problem+json naming the parameter (French first, English on request), and nothing is granted."""
    verifier, challenge = pkce()
    params = {"response_type": "code", "client_id": "journal-diabete-client", "scope": "measures.glucose.read",
              "state": "s", "code_challenge": challenge, "code_challenge_method": "S256", **change}
    (name,) = change
    r = client.get("/api/v1/catalog/oauth/authorize", query_string=params, headers=world["headers"])
    assert r.status_code == 400 and r.mimetype == "application/problem+json", r.get_data(as_text=True)
    body = r.get_json()
    assert body["code"] == "catalog_oauth_invalid_characters" and body["status"] == 400
    assert f"le paramètre {name} contient des caractères non autorisés" in body["detail"]
    assert body["errors"] == [{"field": name, "message": body["detail"]}]
    r = client.post("/api/v1/catalog/oauth/authorize", query_string=params,
                    json={"permissions": ["measures.glucose.read"]},
                    headers={**world["headers"], "Accept-Language": "en"})
    assert r.status_code == 400 and r.mimetype == "application/problem+json", r.get_data(as_text=True)
    assert r.get_json()["detail"].startswith(f"Invalid authorisation request: parameter {name} contains characters")
    assert client.get("/api/v1/catalog/connections", headers=world["headers"]).get_json()["items"] == []


def test_authorization_needs_the_patient_session(client, world):
    verifier, challenge = pkce()
    params = {"response_type": "code", "client_id": "journal-diabete-client", "code_challenge": challenge,
              "code_challenge_method": "S256"}
    assert client.post("/api/v1/catalog/oauth/authorize", query_string=params,
                       json={"permissions": ["measures.glucose.read"]}).status_code == 401


def test_pkce_wrong_verifier_reused_code_and_another_clients_code_are_refused(client, world, db):
    code, verifier = authorize(client, world["headers"], "journal-diabete-client", READER)
    wrong = exchange(client, "journal-diabete-client", code, pkce()[0], redirect_uri=DIABETE_URI)
    assert wrong.status_code == 400 and wrong.get_json()["error"] == "invalid_grant"
    # the code was spent by that attempt
    again = exchange(client, "journal-diabete-client", code, verifier, redirect_uri=DIABETE_URI)
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"

    code, verifier = authorize(client, world["headers"], "journal-diabete-client", READER)
    # another client presenting it (with the right verifier): refused, and the code stays for its owner
    other = exchange(client, "lecteur-client", code, verifier, redirect_uri="https://lecteur.example.fr/cb")
    assert other.status_code == 400 and other.get_json()["error"] == "invalid_grant"
    # wrong redirect URI: refused
    bad_uri = exchange(client, "journal-diabete-client", code, verifier, redirect_uri="fr.example.other:/cb")
    assert bad_uri.status_code == 400

    code, verifier = authorize(client, world["headers"], "journal-diabete-client", READER)
    first = exchange(client, "journal-diabete-client", code, verifier, redirect_uri=DIABETE_URI)
    assert first.status_code == 200
    token = first.get_json()["access_token"]
    assert client.get(f"{FHIR}/Observation", headers=svc(token)).status_code == 200
    # replaying the code is refused, and revokes the token it gave
    replay = exchange(client, "journal-diabete-client", code, verifier, redirect_uri=DIABETE_URI)
    assert replay.status_code == 400 and replay.get_json()["error"] == "invalid_grant"
    assert client.get(f"{FHIR}/Observation", headers=svc(token)).status_code == 401


def test_an_expired_code_is_refused(client, world):
    start = dt.datetime.now(dt.timezone.utc)
    code, verifier = authorize(client, world["headers"], "journal-diabete-client", READER)
    with time_machine.travel(start + dt.timedelta(minutes=6), tick=False):
        r = exchange(client, "journal-diabete-client", code, verifier, redirect_uri=DIABETE_URI)
        assert r.status_code == 400 and r.get_json()["error"] == "invalid_grant"


def test_a_confidential_client_must_authenticate(client, world):
    code, verifier = authorize(client, world["headers"], "cabinet-client", ["documents.CPT_REND.read"])
    uri = "https://cabinet.example.fr/cb"
    r = exchange(client, "cabinet-client", code, verifier, redirect_uri=uri)
    assert r.status_code in (400, 401) and r.get_json()["error"] == "invalid_client"
    r = exchange(client, "cabinet-client", code, verifier, redirect_uri=uri, secret="not-the-secret")
    assert r.status_code == 401 and r.get_json()["error"] == "invalid_client"
    code, verifier = authorize(client, world["headers"], "cabinet-client", ["documents.CPT_REND.read"])
    r = exchange(client, "cabinet-client", code, verifier, redirect_uri=uri, secret=world["secret"])
    assert r.status_code == 200, r.get_json()


def test_a_service_sees_only_the_granted_categories(app, client, world):
    token = token_for(client, world, "journal-diabete", WRITER, ticked=["documents.BIOLOGIE.read"])["access_token"]
    pid, docs = world["patient_id"], world["docs"]
    bundle = client.get(f"{FHIR}/DocumentReference", headers=svc(token)).get_json()
    # BIOLOGIE only; never a masked document; never the INS
    assert titles(bundle) == {sentinel_title("bio", pid)}
    assert "identifier" not in bundle["entry"][0]["resource"]["subject"]
    assert client.get(f"{FHIR}/DocumentReference/{docs['bio']}", headers=svc(token)).status_code == 200
    binary = client.get(f"{FHIR}/Binary/{docs['bio']}", headers={"Authorization": f"Bearer {token}"})
    assert binary.status_code == 200 and binary.data == f"CONTENT-bio-{pid}".encode()
    for other in ("report", "imaging", "masked_bio"):
        assert client.get(f"{FHIR}/DocumentReference/{docs[other]}", headers=svc(token)).status_code == 404
        assert client.get(f"{FHIR}/Binary/{docs[other]}", headers=svc(token)).status_code == 404
    # a category the consent does not grant, even though the service asks for it
    r = client.get(f"{FHIR}/DocumentReference", query_string={"category": "CPT_REND"}, headers=svc(token))
    assert r.status_code == 403 and "insufficient_scope" in r.headers["WWW-Authenticate"]
    assert r.get_json()["resourceType"] == "OperationOutcome"
    # measures were not ticked
    assert client.get(f"{FHIR}/Observation", headers=svc(token)).status_code == 403


def test_a_read_only_service_cannot_write(client, world):
    token = token_for(client, world, "lecteur", READER)["access_token"]
    observation = glucose_observation(1.12, "obs-1")
    r = client.post(f"{FHIR}/Observation", json=observation, headers=svc(token))
    assert r.status_code == 403 and "insufficient_scope" in r.headers["WWW-Authenticate"]
    bundle = client.get(f"{FHIR}/Observation", headers=svc(token)).get_json()
    assert [e["resource"]["valueQuantity"]["value"] for e in bundle["entry"]] == [1.05]   # glucose only


def glucose_observation(value: float, identifier: str, unit: str = "g/L") -> dict:
    return {"resourceType": "Observation", "status": "final", "identifier": [{"value": identifier}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "2339-0"}]},
            "effectiveDateTime": "2026-03-02T08:15:00+01:00",
            "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}}


def test_a_writer_adds_measures_once_and_only_of_granted_types(app, client, world, db):
    token = token_for(client, world, "journal-diabete", WRITER)["access_token"]
    r = client.post(f"{FHIR}/Observation", json=glucose_observation(1.32, "obs-42"), headers=svc(token))
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["valueQuantity"]["value"] == 1.32 and r.headers["Location"].endswith(r.get_json()["id"])
    again = client.post(f"{FHIR}/Observation", json=glucose_observation(1.32, "obs-42"), headers=svc(token))
    assert again.status_code == 200 and again.get_json()["id"] == r.get_json()["id"]
    weight = {**glucose_observation(70, "obs-43"), "code": {"coding": [{"system": "http://loinc.org",
                                                                         "code": "29463-7"}]},
              "valueQuantity": {"value": 70, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}
    assert client.post(f"{FHIR}/Observation", json=weight, headers=svc(token)).status_code == 403
    out_of_range = client.post(f"{FHIR}/Observation", json=glucose_observation(42, "obs-44"), headers=svc(token))
    assert out_of_range.status_code == 422 and out_of_range.get_json()["resourceType"] == "OperationOutcome"
    bad = client.post(f"{FHIR}/Observation", json={"resourceType": "Patient"}, headers=svc(token))
    assert bad.status_code == 400
    rows = db.scalars(select(ProfileMeasure).where(ProfileMeasure.patient_id == world["patient_id"],
                                                   ProfileMeasure.type == "glucose")).all()
    assert len(rows) == 2
    added = next(m for m in rows if m.source_key)
    # the patient's own measure (they may correct it), signed with the service's name
    assert added.author_kind == "patient" and added.author_name == "Journal Diabète"
    # and it shows in the patient's profile
    series = client.get("/api/v1/record/profile/measures/glucose", headers=world["headers"])
    assert series.status_code == 200 and 1.32 in [i["value"] for i in series.get_json()["items"]]


def test_every_service_access_is_in_the_access_history(client, world):
    token = token_for(client, world, "journal-diabete", WRITER)["access_token"]
    client.get(f"{FHIR}/DocumentReference", headers=svc(token))
    client.get(f"{FHIR}/DocumentReference/{world['docs']['bio']}", headers=svc(token))
    client.get(f"{FHIR}/DocumentReference/{world['docs']['imaging']}", headers=svc(token))
    client.post(f"{FHIR}/Observation", json=glucose_observation(1.1, "h-1"), headers=svc(token))
    client.get(f"{FHIR}/Observation", headers=svc(token))
    history = client.get("/api/v1/record/history", query_string={"actor": "service", "limit": 50},
                         headers=world["headers"]).get_json()["items"]
    services = [i for i in history if i["actor"]["kind"] == "service"]
    actions = [i["action"] for i in services]
    assert actions[:6] == ["profile.measures_read", "profile.measure_written", "document.read.refused",
                           "document.read", "document.search", "catalog.token_issued"]
    assert all(i["actor"]["name"] == "Service numérique connecté" for i in services)
    read = services[3]
    assert read["outcome"] == "granted" and read["reason"] == "service_consent"
    assert read["document"]["category"] == "BIOLOGIE"
    assert services[2]["outcome"] == "refused"
    assert services[1]["label"] == "Ajout d'une mesure"


def _works(client, token) -> int:
    return client.get(f"{FHIR}/Observation", headers=svc(token)).status_code


def test_revocation_cuts_access_on_the_next_request(app, client, world):
    token = token_for(client, world, "journal-diabete", WRITER)
    assert _works(client, token["access_token"]) == 200
    sid = service_id(app, "journal-diabete")
    assert client.delete(f"/api/v1/catalog/connections/{sid}", headers=world["headers"]).status_code == 204
    r = client.get(f"{FHIR}/Observation", headers=svc(token["access_token"]))
    assert r.status_code == 401 and "invalid_token" in r.headers["WWW-Authenticate"]
    refresh = client.post("/oauth/token", data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"],
                                                "client_id": "journal-diabete-client"})
    assert refresh.status_code == 400
    # connecting again needs a new authorization; the old token stays dead
    token_for(client, world, "journal-diabete", WRITER)
    assert _works(client, token["access_token"]) == 401


def test_reducing_the_consent_narrows_a_running_token(app, client, world):
    token = token_for(client, world, "journal-diabete", WRITER)["access_token"]
    assert client.get(f"{FHIR}/DocumentReference", headers=svc(token)).status_code == 200
    sid = service_id(app, "journal-diabete")
    r = client.put(f"/api/v1/catalog/services/{sid}/connection", json={"permissions": ["measures.glucose.read"]},
                   headers=world["headers"])
    assert r.status_code == 200
    assert client.get(f"{FHIR}/DocumentReference", headers=svc(token)).status_code == 403
    assert _works(client, token) == 200


def test_consent_expiry_cuts_access(client, world):
    start = dt.datetime.now(dt.timezone.utc)
    token = token_for(client, world, "journal-diabete", WRITER)
    with time_machine.travel(start + dt.timedelta(days=365, minutes=1), tick=False):
        # a fresh access token from the refresh token is refused: the consent lapsed
        r = client.post("/oauth/token", data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"],
                                              "client_id": "journal-diabete-client"})
        assert r.status_code == 400
    with time_machine.travel(start + dt.timedelta(minutes=30), tick=False):
        assert _works(client, token["access_token"]) == 200
        with time_machine.travel(start + dt.timedelta(days=365, minutes=1), tick=False):
            assert _works(client, token["access_token"]) == 401


def test_an_expired_access_token_is_refused_and_refresh_rotates(client, world):
    start = dt.datetime.now(dt.timezone.utc)
    token = token_for(client, world, "journal-diabete", WRITER)
    with time_machine.travel(start + dt.timedelta(hours=2), tick=False):
        assert _works(client, token["access_token"]) == 401
        r = client.post("/oauth/token", data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"],
                                              "client_id": "journal-diabete-client"})
        assert r.status_code == 200, r.get_json()
        fresh = r.get_json()
        assert fresh["refresh_token"] != token["refresh_token"]
        assert _works(client, fresh["access_token"]) == 200
        reused = client.post("/oauth/token", data={"grant_type": "refresh_token",
                                                   "refresh_token": token["refresh_token"],
                                                   "client_id": "journal-diabete-client"})
        assert reused.status_code == 400


def test_suspension_cuts_access_until_reinstated(app, client, world, db):
    token = token_for(client, world, "journal-diabete", WRITER)["access_token"]
    assert _works(client, token) == 200
    operators.change_status(db, "journal-diabete", ServiceStatus.SUSPENDED)
    db.commit()
    assert _works(client, token) == 401
    # no new token either
    code_try = client.post("/oauth/token", data={"grant_type": "authorization_code", "code": "x",
                                                 "client_id": "journal-diabete-client", "code_verifier": "y" * 43})
    assert code_try.status_code in (400, 401) and code_try.get_json()["error"] == "invalid_client"
    # the patient still sees it among their connections, suspended
    item = client.get("/api/v1/catalog/connections", headers=world["headers"]).get_json()["items"][0]
    assert item["service"]["status"] == "suspended"
    operators.change_status(db, "journal-diabete", ServiceStatus.ONLINE)
    db.commit()
    assert _works(client, token) == 200


def test_dereferencing_cuts_access_for_good(app, client, world, db):
    token = token_for(client, world, "journal-diabete", WRITER)["access_token"]
    assert _works(client, token) == 200
    result = operators.change_status(db, "journal-diabete", ServiceStatus.DEREFERENCED)
    db.commit()
    assert result["consents_revoked"] == 1
    assert _works(client, token) == 401
    operators.change_status(db, "journal-diabete", ServiceStatus.ONLINE)
    db.commit()
    assert _works(client, token) == 401   # consents revoked by the de-referencing stay revoked
    assert client.get("/api/v1/catalog/connections", headers=world["headers"]).get_json()["items"] == []
    history = client.get("/api/v1/record/history", headers=world["headers"]).get_json()["items"]
    assert any(i["action"] == "catalog.revoked" and i["actor"]["kind"] == "operator" for i in history)


def test_the_service_api_refuses_other_credentials(client, world):
    for headers in ({}, world["headers"], {"Authorization": "Bearer forged"},
                    {"Authorization": "Basic " + base64.b64encode(b"a:b").decode()}):
        r = client.get(f"{FHIR}/DocumentReference", headers=headers)
        assert r.status_code == 401 and r.get_json()["resourceType"] == "OperationOutcome"


def test_profile_kinds_are_read_within_the_grant(app, client, world, db):
    load(app, [service_spec("allergies", "Allergies", permissions=["profile.allergy.read"])])
    with app.app_context():
        from backend.db import get_session

        session = get_session()
        profile.create_entry(session, make_vault(session), world["patient_id"], "allergy", {"substance": "Pénicilline"})
        profile.create_entry(session, make_vault(session), world["patient_id"], "treatment", {"name": "Metformine"})
        session.commit()
    token = token_for(client, world, "allergies", ["profile.allergy.read"])["access_token"]
    bundle = client.get(f"{FHIR}/AllergyIntolerance", headers=svc(token)).get_json()
    assert [e["resource"]["code"]["text"] for e in bundle["entry"]] == ["Pénicilline"]
    assert client.get(f"{FHIR}/MedicationStatement", headers=svc(token)).status_code == 403


def test_codes_are_stored_hashed(app, client, world, db):
    code, _ = authorize(client, world["headers"], "journal-diabete-client", READER)
    stored = db.scalars(select(AuthorizationCode.code_hash)).all()
    assert code not in stored and len(stored[0]) == 64
