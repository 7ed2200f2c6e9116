"""The account lifecycle over HTTP: activation, two factors, devices, closure, reactivation."""
import datetime as dt

import pyotp
import pytest
import time_machine
from sqlalchemy import func, select

from backend.accounts.models import AccountState, ActivationCode, AuthToken, Patient
from backend.audit.models import AuditEntry
from backend.notifications.models import OutboxEmail
from backend.records.models import Record
from tests.helpers import (NIR_CAMILLE, NIR_LOUIS, STRONG_PASSWORD, activate, assert_problem, bearer, create_patient,
                           login, make_nir, next_totp)

STEP = dt.timedelta(seconds=30)


def snapshot(db):
    """What a refused request must leave unchanged."""
    db.expire_all()
    return (
        [(p.id, p.state, p.password_hash, p.mfa_method) for p in db.scalars(select(Patient).order_by(Patient.id))],
        db.scalar(select(func.count()).select_from(AuthToken)),
        [(c.id, c.used_at) for c in db.scalars(select(ActivationCode).order_by(ActivationCode.id))],
    )


def test_full_lifecycle(app, client, db):
    created = create_patient(app, email="camille@example.org")
    r = client.post("/api/v1/activation/check", json={"nir": created.nir, "birth_date": created.birth_date,
                                                       "activation_code": created.code.lower()})
    assert r.status_code == 200 and r.get_json()["given_name"] == "Camille"
    tokens = activate(client, created)
    me = client.get("/api/v1/me", headers=bearer(tokens["access_token"])).get_json()
    assert me["state"] == "active" and me["family_name"] == "MARTIN"
    # the welcome message was sent by the activation hook (immediate queue)
    assert db.scalar(select(OutboxEmail.kind).where(OutboxEmail.patient_id == created.patient_id)) == "welcome"

    with time_machine.travel(dt.datetime.now(dt.timezone.utc) + 2 * STEP):
        access = login(client, created.nir, tokens["secret"])
        assert client.get("/api/v1/home", headers=bearer(access)).status_code == 200
        assert client.post("/api/v1/auth/logout", headers=bearer(access)).status_code == 204
        assert_problem(client.get("/api/v1/home", headers=bearer(access)), 401)

        r = client.post("/api/v1/account/close", json={"password": STRONG_PASSWORD, "request_deletion": True},
                        headers=bearer(tokens["access_token"]))
        assert r.status_code == 200
        closed = r.get_json()
        assert closed["state"] == "closed" and closed["deletion_requested"] is True
        until = dt.datetime.fromisoformat(closed["retention_until"])
        assert 3650 <= (until - dt.datetime.now(dt.timezone.utc)).days <= 3653
        # closing revoked every session
        assert_problem(client.get("/api/v1/me", headers=bearer(tokens["access_token"])), 401)

    with time_machine.travel(dt.datetime.now(dt.timezone.utc) + 4 * STEP):
        r = client.post("/api/v1/auth/login", json={"nir": created.nir, "password": STRONG_PASSWORD})
        assert r.status_code == 200 and r.get_json()["account_state"] == "closed"
        mfa = r.get_json()["token"]
        assert_problem(client.post("/api/v1/auth/verify", json={"code": next_totp(tokens["secret"])},
                                   headers=bearer(mfa)), 403, "account_closed")
        r = client.post("/api/v1/account/reactivate", json={"code": next_totp(tokens["secret"])}, headers=bearer(mfa))
        assert r.status_code == 200
        access = r.get_json()["access_token"]
        assert client.get("/api/v1/me", headers=bearer(access)).get_json()["state"] == "active"
    db.expire_all()
    patient = db.get(Patient, created.patient_id)
    assert patient.deletion_requested_at is None and patient.retention_until is None


def test_password_hash_is_argon2id(app, client, db):
    created = create_patient(app)
    activate(client, created)
    db.expire_all()
    assert db.get(Patient, created.patient_id).password_hash.startswith("$argon2id$")


def test_activation_code_shape(app, db):
    created = create_patient(app)
    assert len(created.code) == 12 and created.code.isalnum() and created.code.isupper()
    stored = db.scalar(select(ActivationCode).where(ActivationCode.patient_id == created.patient_id))
    assert created.code not in stored.code_hash
    assert (stored.expires_at - stored.created_at) == dt.timedelta(weeks=6)


@pytest.mark.parametrize("change, status, code", [
    ({"nir": "123"}, 422, "invalid_nir"),
    ({"nir": make_nir("2840763220010")[:13] + "00"}, 422, "invalid_nir"),
    ({"birth_date": "14/07/1984"}, 422, "invalid_birth_date"),
    ({"birth_date": "1984-07-15"}, 422, "invalid_activation"),
    ({"activation_code": "AAAAAAAAAAAA"}, 422, "invalid_activation"),
    ({"nir": NIR_LOUIS}, 422, "invalid_activation"),
])
def test_wrong_activation_input_is_refused_and_changes_nothing(app, client, db, change, status, code):
    created = create_patient(app)
    before = snapshot(db)
    body = {"nir": created.nir, "birth_date": created.birth_date, "activation_code": created.code,
            "password": STRONG_PASSWORD, **change}
    problem = assert_problem(client.post("/api/v1/activation", json=body), status, code)
    assert problem["detail"]
    after = snapshot(db)
    assert after[0] == before[0] and after[1] == before[1]


def test_weak_password_lists_every_unmet_rule_and_keeps_the_code(app, client, db):
    created = create_patient(app)
    before = snapshot(db)
    r = client.post("/api/v1/activation", json={"nir": created.nir, "birth_date": created.birth_date,
                                                 "activation_code": created.code, "password": "azerty"})
    body = assert_problem(r, 422, "weak_password")
    assert {e["rule"] for e in body["errors"]} == {"length", "upper", "digit", "special", "common"}
    assert all(e["message"] for e in body["errors"])
    assert snapshot(db) == before
    # the same code still works with a good password
    activate(client, created)


def test_expired_activation_code(app, client):
    created = create_patient(app)
    with time_machine.travel(dt.datetime.now(dt.timezone.utc) + dt.timedelta(weeks=6, minutes=1)):
        assert_problem(client.post("/api/v1/activation/check", json={
            "nir": created.nir, "birth_date": created.birth_date, "activation_code": created.code}),
            422, "activation_code_expired")


def test_activation_code_is_single_use(app, client):
    created = create_patient(app)
    activate(client, created)
    assert_problem(client.post("/api/v1/activation", json={
        "nir": created.nir, "birth_date": created.birth_date, "activation_code": created.code,
        "password": STRONG_PASSWORD}), 409, "already_activated")


def test_activation_attempts_are_limited(app, client, db):
    created = create_patient(app)
    wrong = {"nir": created.nir, "birth_date": created.birth_date, "activation_code": "WRONGWRONG22"}
    for _ in range(5):
        assert_problem(client.post("/api/v1/activation/check", json=wrong), 422, "invalid_activation")
    # the counter is persisted, and the right code no longer works
    right = {**wrong, "activation_code": created.code}
    r = client.post("/api/v1/activation/check", json=right)
    assert r.status_code == 429 and r.headers["Retry-After"]
    db.expire_all()
    assert db.scalar(select(ActivationCode.attempts).where(ActivationCode.patient_id == created.patient_id)) == 5


def test_opposition_deletes_the_record(app, client, db):
    created = create_patient(app)
    assert db.scalar(select(Record.id).where(Record.patient_id == created.patient_id))
    r = client.post("/api/v1/opposition", json={"nir": created.nir, "birth_date": created.birth_date,
                                                 "activation_code": created.code})
    assert r.status_code == 200 and r.get_json()["state"] == "opposed"
    db.expire_all()
    assert db.scalar(select(Record.id).where(Record.patient_id == created.patient_id)) is None
    assert_problem(client.post("/api/v1/activation", json={
        "nir": created.nir, "birth_date": created.birth_date, "activation_code": created.code,
        "password": STRONG_PASSWORD}), 409, "account_opposed")


def test_no_health_data_with_a_password_alone(app, client):
    created = create_patient(app)
    r = client.post("/api/v1/activation", json={"nir": created.nir, "birth_date": created.birth_date,
                                                 "activation_code": created.code, "password": STRONG_PASSWORD})
    enrolment = r.get_json()["token"]
    assert_problem(client.get("/api/v1/me", headers=bearer(enrolment)), 401)
    # a patient who stopped before the second factor is sent back to enrolment, not into the record
    r = client.post("/api/v1/auth/login", json={"nir": created.nir, "password": STRONG_PASSWORD})
    assert r.get_json()["next"] == "enrol"
    assert_problem(client.get("/api/v1/home", headers=bearer(r.get_json()["token"])), 401)


def test_wrong_and_reused_one_time_codes(app, client):
    created = create_patient(app)
    tokens = activate(client, created)
    at = dt.datetime.now(dt.timezone.utc) + 2 * STEP
    with time_machine.travel(at, tick=False):
        r = client.post("/api/v1/auth/login", json={"nir": created.nir, "password": STRONG_PASSWORD})
        mfa = r.get_json()["token"]
        assert_problem(client.post("/api/v1/auth/verify", json={"code": "000000"}, headers=bearer(mfa)), 401,
                       "invalid_otp")
        code = pyotp.TOTP(tokens["secret"]).at(at)
        assert client.post("/api/v1/auth/verify", json={"code": code}, headers=bearer(mfa)).status_code == 200
        # the mfa token is spent, and the same code cannot open a second session
        assert_problem(client.post("/api/v1/auth/verify", json={"code": code}, headers=bearer(mfa)), 401,
                       "invalid_token")
        r = client.post("/api/v1/auth/login", json={"nir": created.nir, "password": STRONG_PASSWORD})
        assert_problem(client.post("/api/v1/auth/verify", json={"code": code}, headers=bearer(r.get_json()["token"])),
                       401, "invalid_otp")


def test_mfa_token_expires(app, client):
    created = create_patient(app)
    tokens = activate(client, created)
    r = client.post("/api/v1/auth/login", json={"nir": created.nir, "password": STRONG_PASSWORD})
    mfa = r.get_json()["token"]
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=11)
    with time_machine.travel(later):
        assert_problem(client.post("/api/v1/auth/verify", json={"code": next_totp(tokens["secret"])},
                                   headers=bearer(mfa)), 401, "invalid_token")


def test_email_second_factor_through_the_outbox(app, client, db):
    created = create_patient(app, email="camille@example.org")
    r = client.post("/api/v1/activation", json={"nir": created.nir, "birth_date": created.birth_date,
                                                 "activation_code": created.code, "password": STRONG_PASSWORD})
    enrolment = r.get_json()["token"]
    r = client.post("/api/v1/mfa/enrol", json={"method": "email"}, headers=bearer(enrolment))
    assert r.get_json()["sent_to"] == "c***@example.org"

    def last_code():
        db.expire_all()
        body = db.scalars(select(OutboxEmail.body).where(OutboxEmail.kind == "otp")
                          .order_by(OutboxEmail.id.desc())).first()
        return body.split(": ")[1][:6]

    assert client.post("/api/v1/mfa/confirm", json={"code": last_code()}, headers=bearer(enrolment)).status_code == 200
    r = client.post("/api/v1/auth/login", json={"nir": created.nir, "password": STRONG_PASSWORD})
    assert r.get_json()["method"] == "email"
    mfa = r.get_json()["token"]
    code = last_code()
    assert client.post("/api/v1/auth/verify", json={"code": code}, headers=bearer(mfa)).status_code == 200
    # reused
    r = client.post("/api/v1/auth/login", json={"nir": created.nir, "password": STRONG_PASSWORD})
    assert_problem(client.post("/api/v1/auth/verify", json={"code": code}, headers=bearer(r.get_json()["token"])),
                   401, "invalid_otp")


def test_brute_force_is_throttled_per_account(app, client, db):
    created = create_patient(app)
    activate(client, created)
    before = snapshot(db)
    for _ in range(5):
        assert_problem(client.post("/api/v1/auth/login", json={"nir": created.nir, "password": "Wrong-pass-1"}),
                       401, "invalid_credentials")
    r = client.post("/api/v1/auth/login", json={"nir": created.nir, "password": STRONG_PASSWORD})
    body = assert_problem(r, 429, "too_many_requests")
    minutes = -(-int(r.headers["Retry-After"]) // 60)
    assert int(r.headers["Retry-After"]) > 0 and f"Réessayez dans {minutes} minutes" in body["detail"]
    assert snapshot(db)[0] == before[0]
    # the patient sees the failed attempts in their history
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.patient_id == created.patient_id, AuditEntry.action == "login.failed")) == 5


def test_brute_force_is_throttled_per_address(app, client):
    from backend.throttle import Limit

    throttle = app.extensions["carnet.throttle"]
    throttle.limits["address"] = Limit.parse("3 per minute")
    try:
        for i in range(3):
            nir = make_nir(f"18505780060{i:02d}")
            assert client.post("/api/v1/auth/login", json={"nir": nir, "password": "x"}).status_code == 401
        assert_problem(client.post("/api/v1/auth/login", json={"nir": NIR_CAMILLE, "password": "x"}), 429)
    finally:
        throttle.limits["address"] = Limit.parse(app.config["LOGIN_FAILURES_PER_ADDRESS"])


def test_devices_are_listed_and_revocation_is_immediate(app, client):
    created = create_patient(app)
    tokens = activate(client, created)
    with time_machine.travel(dt.datetime.now(dt.timezone.utc) + 2 * STEP):
        tablet = login(client, created.nir, tokens["secret"], device="Tablette")
    phone = tokens["access_token"]
    r = client.get("/api/v1/account/devices?limit=1", headers=bearer(phone))
    page = r.get_json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    r2 = client.get(f"/api/v1/account/devices?limit=1&cursor={page['next_cursor']}", headers=bearer(phone))
    items = page["items"] + r2.get_json()["items"]
    assert {d["device_name"] for d in items} == {"Test phone", "Tablette"}
    tablet_id = next(d["id"] for d in items if d["device_name"] == "Tablette")
    assert client.get("/api/v1/me", headers=bearer(tablet)).status_code == 200
    assert client.delete(f"/api/v1/account/devices/{tablet_id}", headers=bearer(phone)).status_code == 204
    assert_problem(client.get("/api/v1/me", headers=bearer(tablet)), 401)
    assert_problem(client.delete(f"/api/v1/account/devices/{tablet_id}", headers=bearer(phone)), 404)
    assert_problem(client.get("/api/v1/account/devices?cursor=forged!", headers=bearer(phone)), 422)


def test_another_patients_device_cannot_be_revoked(app, client):
    a = activate(client, create_patient(app))
    b = activate(client, create_patient(app, NIR_LOUIS, "1990-02-17", family="Bernard", given="Louis", sex="M"))
    b_devices = client.get("/api/v1/account/devices", headers=bearer(b["access_token"])).get_json()["items"]
    assert_problem(client.delete(f"/api/v1/account/devices/{b_devices[0]['id']}", headers=bearer(a["access_token"])),
                   404, "device_not_found")
    assert client.get("/api/v1/me", headers=bearer(b["access_token"])).status_code == 200


def test_password_change_revokes_the_other_devices(app, client):
    created = create_patient(app)
    tokens = activate(client, created)
    with time_machine.travel(dt.datetime.now(dt.timezone.utc) + 2 * STEP):
        other = login(client, created.nir, tokens["secret"])
    phone = tokens["access_token"]
    assert_problem(client.post("/api/v1/account/password", json={"current_password": "Nope-nope-1!",
                                                                  "new_password": "Autre-Chemin-77?"},
                               headers=bearer(phone)), 403, "wrong_password")
    assert_problem(client.post("/api/v1/account/password", json={"current_password": STRONG_PASSWORD,
                                                                  "new_password": "weak"},
                               headers=bearer(phone)), 422, "weak_password")
    r = client.post("/api/v1/account/password", json={"current_password": STRONG_PASSWORD,
                                                       "new_password": "Autre-Chemin-77?"}, headers=bearer(phone))
    assert r.status_code == 200 and r.get_json()["sessions_revoked"] == 1
    assert client.get("/api/v1/me", headers=bearer(phone)).status_code == 200
    assert_problem(client.get("/api/v1/me", headers=bearer(other)), 401)
    assert_problem(client.post("/api/v1/auth/login", json={"nir": created.nir, "password": STRONG_PASSWORD}), 401)


def test_close_needs_the_password(app, client, db):
    created = create_patient(app)
    tokens = activate(client, created)
    assert_problem(client.post("/api/v1/account/close", json={"password": "Not-it-123!"},
                               headers=bearer(tokens["access_token"])), 403, "wrong_password")
    db.expire_all()
    assert db.get(Patient, created.patient_id).state == AccountState.ACTIVE


def test_reactivation_refused_after_retention(app, client):
    created = create_patient(app)
    tokens = activate(client, created)
    client.post("/api/v1/account/close", json={"password": STRONG_PASSWORD}, headers=bearer(tokens["access_token"]))
    with time_machine.travel(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3660)):
        r = client.post("/api/v1/auth/login", json={"nir": created.nir, "password": STRONG_PASSWORD})
        assert_problem(client.post("/api/v1/account/reactivate", json={"code": next_totp(tokens["secret"])},
                                   headers=bearer(r.get_json()["token"])), 403, "retention_expired")


def test_home_shows_the_patients_own_activity(app, client):
    created = create_patient(app)
    tokens = activate(client, created)
    home = client.get("/api/v1/home", headers=bearer(tokens["access_token"])).get_json()
    assert home["given_name"] == "Camille" and home["devices"] == 1
    actions = [a["action"] for a in home["recent_activity"]]
    assert actions[:2] == ["account.activated", "account.mfa_enrolled"] or "account.activated" in actions
    assert any(s["id"] == "email" for s in home["next_steps"])
    english = client.get("/api/v1/home", headers={**bearer(tokens["access_token"]), "Accept-Language": "en"})
    assert english.get_json()["recent_activity"][0]["label"] in {"Profile activated", "Second factor enrolled"}


def test_home_query_count_does_not_grow_with_activity(app, client, count_queries):
    created = create_patient(app)
    tokens = activate(client, created)
    headers = bearer(tokens["access_token"])
    client.get("/api/v1/home", headers=headers)
    count_queries.statements.clear()
    client.get("/api/v1/home", headers=headers)
    baseline = count_queries.count
    for i in range(5):
        with time_machine.travel(dt.datetime.now(dt.timezone.utc) + (2 + 2 * i) * STEP):
            login(client, created.nir, tokens["secret"])
    count_queries.statements.clear()
    client.get("/api/v1/home", headers=headers)
    assert count_queries.count == baseline <= 6
