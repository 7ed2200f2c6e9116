"""The forgotten password (a code to the address on file, throttled in the database, audited, every session
ended) and what home says of the account (the previous sign-in, the activity grouped, a failed sign-in on its
own line), on SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt
import re
import threading

import pytest
import time_machine
from sqlalchemy import select

from tests.helpers import NIR_LOUIS, STRONG_PASSWORD, activate, bearer, create_patient, login, next_totp

STEP = dt.timedelta(seconds=30)
NEW_PASSWORD = "Nouveau-Carnet-2027!"


def outbox_codes(app, patient_id: int) -> list[str]:
    from backend.db import get_session
    from backend.notifications.models import OutboxEmail

    with app.app_context():
        rows = get_session().scalars(select(OutboxEmail).where(OutboxEmail.patient_id == patient_id,
                                                               OutboxEmail.kind == "password_reset")
                                     .order_by(OutboxEmail.id)).all()
        return [re.search(r"\b(\d{6})\b", r.body).group(1) for r in rows]


def actions(app, patient_id: int) -> list[str]:
    from backend.audit.models import AuditEntry
    from backend.db import get_session

    with app.app_context():
        return list(get_session().scalars(select(AuditEntry.action).where(AuditEntry.patient_id == patient_id)
                                          .order_by(AuditEntry.seq)))


@pytest.fixture
def camille(app, client):
    created = create_patient(app, email="camille.martin@example.org")
    tokens = activate(client, created)
    return created, tokens


def ask(client, nir: str, birth_date: str = "1984-07-14"):
    return client.post("/api/v1/auth/password-reset", json={"nir": nir, "birth_date": birth_date})


def confirm(client, nir: str, code: str, password: str = NEW_PASSWORD):
    return client.post("/api/v1/auth/password-reset/confirm", json={"nir": nir, "code": code,
                                                                    "new_password": password})


def test_reset_by_code_ends_every_session_and_keeps_the_second_factor(app, client, camille):
    created, tokens = camille
    other_device = login(client, created.nir, tokens["secret"], at=dt.datetime.now(dt.timezone.utc) + STEP)
    r = ask(client, created.nir)
    assert r.status_code == 202 and r.get_json() == {"sent": True, "expires_in_minutes": 15}
    [code] = outbox_codes(app, created.patient_id)

    # a weak password is refused with the rules, and the code is not spent by it
    weak = confirm(client, created.nir, code, "motdepasse")
    assert weak.status_code == 422 and weak.get_json()["code"] == "weak_password"
    done = confirm(client, created.nir, code)
    assert done.status_code == 200 and done.get_json()["sessions_revoked"] == 2
    for token in (tokens["access_token"], other_device):
        assert client.get("/api/v1/home", headers=bearer(token)).status_code == 401
    # single use
    again = confirm(client, created.nir, code, "Encore-Autre-2028!")
    assert again.status_code == 422 and again.get_json()["code"] == "password_reset_invalid_code"
    # the old password is dead; the new one leads to the second factor, as always
    assert client.post("/api/v1/auth/login", json={"nir": created.nir, "password": STRONG_PASSWORD}).status_code == 401
    r = client.post("/api/v1/auth/login", json={"nir": created.nir, "password": NEW_PASSWORD})
    assert r.status_code == 200 and r.get_json()["next"] == "otp"
    with time_machine.travel(dt.datetime.now(dt.timezone.utc) + 3 * STEP):
        verified = client.post("/api/v1/auth/verify", json={"code": next_totp(tokens["secret"])},
                               headers=bearer(r.get_json()["token"]))
    assert verified.status_code == 200
    trail = actions(app, created.patient_id)
    assert "account.password_reset_requested" in trail and "account.password_reset" in trail


def test_the_answer_does_not_tell_who_has_an_account(app, client, camille):
    created, _tokens = camille
    silent = create_patient(app, nir=NIR_LOUIS, birth_date="1990-02-17", given="Louis", family="Bernard",
                            sex="M")  # pre-created, no address, not active
    answers = [ask(client, created.nir, "1984-07-15"), ask(client, silent.nir, "1990-02-17"), ask(client, created.nir)]
    assert {r.status_code for r in answers} == {202}
    assert len({str(r.get_json()) for r in answers}) == 1
    assert len(outbox_codes(app, created.patient_id)) == 1 and outbox_codes(app, silent.patient_id) == []
    malformed = ask(client, "123")
    assert malformed.status_code == 422 and malformed.headers["Content-Type"].startswith("application/problem+json")


def test_wrong_codes_are_counted_then_the_code_dies(app, client, camille):
    created, _tokens = camille
    ask(client, created.nir)
    [code] = outbox_codes(app, created.patient_id)
    wrong = f"{(int(code) + 1) % 1000000:06d}"
    for _ in range(5):
        r = confirm(client, created.nir, wrong)
        assert r.status_code == 422 and r.get_json()["code"] == "password_reset_invalid_code"
        assert "n'est pas valide" in r.get_json()["detail"]
    locked = confirm(client, created.nir, code)  # even the right one, now
    assert locked.status_code == 429 and "Retry-After" in locked.headers
    assert actions(app, created.patient_id).count("password_reset.failed") == 5
    english = client.post("/api/v1/auth/password-reset/confirm", headers={"Accept-Language": "en"},
                          json={"nir": created.nir, "code": "000000", "new_password": NEW_PASSWORD})
    assert english.status_code == 429 and english.get_json()["code"] == "too_many_requests"
    # a new code starts afresh
    ask(client, created.nir)
    assert confirm(client, created.nir, outbox_codes(app, created.patient_id)[-1]).status_code == 200


def test_requests_are_throttled_in_the_database_even_in_parallel(app, client, camille):
    created, _tokens = camille
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def one() -> None:
        with app.test_client() as own:
            barrier.wait()
            statuses.append(ask(own, created.nir).status_code)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [202] * 8
    assert len(outbox_codes(app, created.patient_id)) == 3  # the hour's allowance, not one more
    assert actions(app, created.patient_id).count("password_reset.throttled") == 5
    with time_machine.travel(dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=61)):
        ask(client, created.nir)
    assert len(outbox_codes(app, created.patient_id)) == 4  # a new window


def test_home_says_the_previous_sign_in_and_groups_the_activity(app, client, camille):
    created, tokens = camille
    first = client.get("/api/v1/home", headers=bearer(tokens["access_token"])).get_json()
    assert first["previous_login_at"] is None and first["timezone"] == "Europe/Paris"
    start = dt.datetime.now(dt.timezone.utc)
    with time_machine.travel(start + dt.timedelta(hours=1)):
        login(client, created.nir, tokens["secret"], at=start + dt.timedelta(hours=1))
    for minutes in (1, 2, 3):  # someone tries passwords
        with time_machine.travel(start + dt.timedelta(hours=2, minutes=minutes)):
            client.post("/api/v1/auth/login", json={"nir": created.nir, "password": "Pas-Le-Bon-1!"})
    with time_machine.travel(start + dt.timedelta(hours=3)):
        latest = login(client, created.nir, tokens["secret"], at=start + dt.timedelta(hours=3))
        home = client.get("/api/v1/home", headers=bearer(latest)).get_json()
    assert home["previous_login_at"].startswith((start + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    assert home["last_login_at"].startswith((start + dt.timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M"))
    items = home["recent_activity"]
    assert [i["action"] for i in items[:3]] == ["account.login", "login.failed", "account.login"]
    failed = items[1]
    assert failed["count"] == 3 and failed["alert"] is True
    assert failed["label"] == "Échec de connexion : mot de passe erroné (3 fois)"
    assert not any(i["alert"] for i in items if i["action"] != "login.failed")
    english = client.get("/api/v1/home", headers={**bearer(latest), "Accept-Language": "en"}).get_json()
    assert english["recent_activity"][1]["label"] == "Failed sign-in: wrong password (3 times)"


def test_a_failed_sign_in_is_not_done_in_the_access_history(app, client, camille):
    created, tokens = camille
    client.post("/api/v1/auth/login", json={"nir": created.nir, "password": "Pas-Le-Bon-1!"})
    items = client.get("/api/v1/record/history", headers=bearer(tokens["access_token"])).get_json()["items"]
    failed = next(i for i in items if i["action"] == "login.failed")
    assert failed["outcome"] == "failed" and failed["outcome_label"] == "Échoué"
    assert failed["label"] == "Échec de connexion (mot de passe)"


def test_a_422_speaks_the_patients_language_field_by_field(app, client):
    r = client.post("/api/v1/auth/password-reset", json={"nir": "284076322001001", "surprise": 1})
    body = r.get_json()
    assert r.status_code == 422 and r.headers["Content-Type"].startswith("application/problem+json")
    assert body["title"] == "Données invalides"
    messages = {e["field"]: e["message"] for e in body["errors"]}
    assert messages == {"birth_date": "Information obligatoire manquante.", "surprise": "Champ inconnu."}
    english = client.post("/api/v1/auth/password-reset", json={"nir": "284076322001001", "surprise": 1},
                          headers={"Accept-Language": "en"}).get_json()
    assert english["title"] == "Unprocessable Content"
    assert {e["field"]: e["message"] for e in english["errors"]} == {
        "birth_date": "Missing data for required field.", "surprise": "Unknown field."}
    long = client.post("/api/v1/auth/password-reset", json={"nir": "1" * 40, "birth_date": "1984-07-14"})
    assert long.get_json()["errors"] == [{"field": "nir", "message": "Au plus 32 caractère(s)."}]


def test_profession_labels_follow_the_language():
    from backend.professionals.service import profession_label

    assert profession_label("10", "fr") == "Médecin" and profession_label("10", "en") == "Doctor"
    assert profession_label("21", "en") == "Pharmacist" and profession_label("99", "en") == "99"
    assert profession_label(None) is None
