"""Operators' commands: JSON on success, a clear message and a non-zero exit on error."""
import datetime as dt
import json

import time_machine
from sqlalchemy import func, select

from backend.accounts.models import AccountState, Patient
from backend.audit.models import AuditEntry
from backend.professionals.models import Professional, ProfessionalToken
from backend.security import token_digest
from tests.helpers import NIR_CAMILLE, STRONG_PASSWORD, activate, bearer, make_nir


def create_args(**over):
    args = {"--nir": NIR_CAMILLE, "--birth-date": "1984-07-14", "--family-name": "Martin", "--given-name": "Camille",
            "--sex": "F"}
    args.update(over)
    return ["patient", "create"] + [x for kv in args.items() for x in kv]


def test_patient_create_prints_json(runner, db):
    result = runner.invoke(args=create_args(**{"--email": "camille@example.org"}))
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert len(out["activation_code"]) == 12 and out["state"] == "precreated"
    patient = db.get(Patient, out["patient_id"])
    assert patient.state == AccountState.PRECREATED and patient.email == "camille@example.org"


def test_patient_create_refuses_bad_input(runner, db):
    cases = [
        (create_args(**{"--nir": "123"}), "15 caractères"),
        (create_args(**{"--nir": NIR_CAMILLE[:13] + "00"}), "clé"),
        (create_args(**{"--birth-date": "1984-02-30"}), "AAAA-MM-JJ"),
        (create_args(**{"--birth-date": "1985-07-14"}), "does not match the NIR"),
        (create_args(**{"--sex": "M"}), "sex does not match"),
    ]
    for args, message in cases:
        result = runner.invoke(args=args)
        assert result.exit_code != 0, args
        assert message in result.output, result.output
    assert db.scalar(select(func.count()).select_from(Patient)) == 0


def test_patient_create_twice_is_refused(runner):
    assert runner.invoke(args=create_args()).exit_code == 0
    result = runner.invoke(args=create_args())
    assert result.exit_code != 0 and "existe déjà" in result.output


def test_new_activation_code_replaces_the_old_one(runner, client):
    first = json.loads(runner.invoke(args=create_args()).output)
    result = runner.invoke(args=["patient", "new-code", "--nir", NIR_CAMILLE])
    second = json.loads(result.output)
    assert second["activation_code"] != first["activation_code"]
    body = {"nir": NIR_CAMILLE, "birth_date": "1984-07-14"}
    assert client.post("/api/v1/activation/check", json={**body, "activation_code": first["activation_code"]}
                       ).status_code == 422
    assert client.post("/api/v1/activation/check", json={**body, "activation_code": second["activation_code"]}
                       ).status_code == 200


def test_pro_create_prints_a_token(runner, db):
    result = runner.invoke(args=["pro", "create", "--rpps", "10101234567", "--family-name", "Durand",
                                 "--given-name", "Alice", "--profession", "10", "--specialty", "SM54",
                                 "--samu-regulator"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    pro = db.get(Professional, out["professional_id"])
    assert pro.samu_regulator and pro.profession_code == "10" and pro.rpps == "10101234567"
    stored = db.scalar(select(ProfessionalToken.token_hash).where(ProfessionalToken.professional_id == pro.id))
    assert stored == token_digest(out["token"]) and out["token"] not in stored


def test_pro_create_refuses_bad_input(runner):
    base = ["pro", "create", "--family-name", "D", "--given-name", "A"]
    assert "11 chiffres" in runner.invoke(args=base + ["--rpps", "123", "--profession", "10"]).output
    assert "inconnu" in runner.invoke(args=base + ["--rpps", "10101234567", "--profession", "99"]).output
    assert runner.invoke(args=base + ["--rpps", "10101234567", "--profession", "99"]).exit_code != 0


def test_retention_purge_removes_only_what_is_past_retention(app, client, runner, db):
    from tests.helpers import create_patient
    closed = create_patient(app)
    kept = create_patient(app, make_nir("1900275123456"), "1990-02-17", family="Bernard", given="Louis", sex="M")
    tokens = activate(client, closed)
    client.post("/api/v1/account/close", json={"password": STRONG_PASSWORD, "request_deletion": True},
                headers=bearer(tokens["access_token"]))
    out = json.loads(runner.invoke(args=["retention", "purge"]).output)
    assert out["patients_removed"] == 0
    with time_machine.travel(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3660)):
        dry = json.loads(runner.invoke(args=["retention", "purge", "--dry-run"]).output)
        assert dry["patients_removed"] == 1
        result = runner.invoke(args=["retention", "purge"])
    out = json.loads(result.output)
    assert out["patients_removed"] == 1 and out["patient_ids"] == [closed.patient_id]
    assert out["audit_details_erased"] >= 1
    db.expire_all()
    assert db.get(Patient, closed.patient_id) is None
    assert db.get(Patient, kept.patient_id) is not None
    assert db.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.patient_id == closed.patient_id, AuditEntry.details.is_not(None))) == 0
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0


def test_demo_is_idempotent_and_explains_how_to_log_in(runner, client, db):
    import re

    from backend.records.documents.models import Document

    first = runner.invoke(args=["demo"])
    assert first.exit_code == 0, first.output
    counted = {"documents": db.scalar(select(func.count()).select_from(Document))}
    second = runner.invoke(args=["demo"])
    assert second.exit_code == 0
    assert db.scalar(select(func.count()).select_from(Patient)) == 4  # + her son and her father (family space)
    from backend.tools.demo_pathways import TEAM   # the cancer pathway's care team
    # Dr Durand (the demo's doctor), the cardiologist and the emergency doctor of the access history, the team
    assert db.scalar(select(func.count()).select_from(Professional)) == 3 + len(TEAM)
    assert db.scalar(select(func.count()).select_from(Document)) == counted["documents"] > 4  # idempotent
    # the same credentials on every run: the pending patient's code and the doctor's token
    code_of = lambda out: re.search(r"activation code: (\w+)", out).group(1)  # noqa: E731
    token_of = lambda out: re.search(r"Professional API token .*: (\S+)", out).group(1)  # noqa: E731
    assert code_of(first.output) == code_of(second.output) and token_of(first.output) == token_of(second.output)
    from backend.tools.demo import DEMO_NIR, DEMO_PASSWORD
    assert DEMO_NIR in second.output and DEMO_PASSWORD in second.output and "carnet demo otp" in second.output
    # the printed instructions work: password, then the code `carnet demo otp` prints
    r = client.post("/api/v1/auth/login", json={"nir": DEMO_NIR, "password": DEMO_PASSWORD})
    code = runner.invoke(args=["demo", "otp"]).output.strip()
    r = client.post("/api/v1/auth/verify", json={"code": code}, headers=bearer(r.get_json()["token"]))
    assert r.status_code == 200
    headers = bearer(r.get_json()["access_token"])
    # the family space: her own record, her son's (she represents him), her father's (she helps him)
    spaces = client.get("/api/v1/family/spaces", headers=headers).get_json()["items"]
    assert [(s["kind"], s["given_name"]) for s in spaces] == [("own", "Camille"), ("child", "Léo"), ("helped", "Jean")]
    son = {**headers, "X-Carnet-Record": spaces[1]["record_id"]}
    titles = [d["title"] for d in client.get("/api/v1/record/documents", headers=son).get_json()["items"]]
    assert titles == ["Certificat de vaccination (ROR, DTCaP)"]   # never the document under the minor's secrecy
    father = {**headers, "X-Carnet-Record": spaces[2]["record_id"]}
    assert client.get("/api/v1/agenda/appointments", headers=father).status_code == 200
    assert client.get("/api/v1/record/documents", headers=father).status_code == 403
    # a lived-in record: documents of several kinds, a profile, agenda, inbox, a service, accesses
    documents = client.get("/api/v1/record/documents", headers=headers).get_json()
    assert {d["category"] for d in documents["items"]} >= {"BIOLOGIE", "CPT_REND", "RADIO_SC"}
    kinds = {d["title"]: d for d in documents["items"]}
    lab = kinds["Compte rendu de biologie - bilan sanguin"]
    narrative = client.get(f"/api/v1/record/documents/{lab['id']}/narrative", headers=headers).get_json()
    assert [s["title"] for s in narrative["sections"]] == ["Biochimie et hématologie", "Conclusion du biologiste"]
    xray = client.get(f"/api/v1/record/documents/{kinds['Radiographie du thorax']['id']}", headers=headers).get_json()
    assert xray["viewer"]["kind"] == "pages"
    profile = client.get("/api/v1/record/profile", headers=headers).get_json()["entries"]
    assert {"allergy", "treatment", "disease", "vaccination", "blood_group", "contact"} <= {
        k for k, v in profile.items() if (v.get("total") if isinstance(v, dict) else v)}
    weights = client.get("/api/v1/record/profile/measures/weight", headers=headers).get_json()
    assert len(weights["items"]) == 8
    directives = client.get("/api/v1/record/directives", headers=headers).get_json()
    assert directives["good_health"]["current"]["text"].startswith("Si je ne peux plus")
    appointments = client.get("/api/v1/agenda/appointments", query_string={"from": "2000-01-01"},
                              headers=headers).get_json()["items"]
    now = dt.datetime.now(dt.timezone.utc)
    starts = [dt.datetime.fromisoformat(a["starts_at"]) for a in appointments]
    assert any(s > now for s in starts) and any(s < now for s in starts)
    slots = client.get("/api/v1/agenda/slots", query_string={"specialty": "générale", "place": "Clermont",
                                                             "days": 14}, headers=headers).get_json()
    assert slots["items"]
    # Dr Durand's two conversations and the oncologist's message of the cancer pathway
    assert len(client.get("/api/v1/inbox/threads", headers=headers).get_json()["items"]) == 3
    history = client.get("/api/v1/record/history", headers=headers).get_json()["items"]
    assert any(h["actor"]["name"].endswith("ROUX") and h["action"] == "document.read" for h in history)
    assert any(h["emergency"] and h["emergency_reason"] for h in history)
    connected = client.get("/api/v1/catalog/connections", headers=headers)
    assert connected.status_code == 200 and connected.get_json()["items"]
