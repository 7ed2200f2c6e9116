"""Single use and throttles hold under real parallel requests.

A real ``carnet serve`` (gunicorn, 2 worker processes × 8 threads: the counters must be shared across
processes, which memory:// limits never were) on the test database (a SQLite file, or PostgreSQL), and
bursts of requests fired at once from threads, each with its own connection. Every round starts from
fresh counters; every round must show the exact numbers:

- the same TOTP code sent on 4 concurrent sign-ins opens exactly one session;
- 40 wrong passwords at once: exactly 5 are checked (401), the other 35 are refused (429);
- 40 wrong activation codes at once: exactly 5 are compared; the code's own counter ends at 5;
- 40 wrong one-time codes at once on one sign-in: exactly 5;
- 40 wrong passwords re-entered for a sensitive change at once: exactly 5;
- 40 unknown accounts from one address at once: exactly the address limit (8 here) are checked;
- 40 resends of an email code at once: exactly 5 emails.

And in process (the app with its pool, threads, no server): the activation code's own cap of 5 holds
when the per-account throttle is set far above it. (Concurrent OAuth code exchanges and refreshes:
tests/test_security_credentials.py.)

Rounds: ``CARNET_CONCURRENCY_ROUNDS`` (default 10). Each test prints its rounds and successes.
"""
from __future__ import annotations

import datetime as dt
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyotp
import pytest
import requests
from sqlalchemy import delete, func, select, update

from backend.accounts.models import ActivationCode, AuthToken, Patient, ThrottleCounter, TokenKind
from backend.audit.models import AuditEntry
from backend.security import token_digest
from bench.soak import PASSWORD, LiveServer, sign_up
from tests.conftest import make_app, server_env
from tests.helpers import create_patient, make_nir

ROUNDS = int(os.environ.get("CARNET_CONCURRENCY_ROUNDS", "10"))
BURST = 40
ADDRESS_LIMIT = 8  # the live server's per-address limit (above the per-account 5, so each shows apart)


@pytest.fixture(scope="module")
def live(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("live")
    env = server_env(database_url, CARNET_INSTANCE_PATH=str(folder / "instance"), CARNET_TASK_QUEUE="immediate",
                     CARNET_LOGIN_FAILURES_PER_ADDRESS=f"{ADDRESS_LIMIT} per 15 minutes")
    server = LiveServer(env, folder / "server.log", workers=2).start()
    yield server
    server.stop()


def burst(calls: list[Callable[[requests.Session], requests.Response]]) -> Counter[tuple[int, str]]:
    """Fire every call at once (a barrier), each from its own thread and connection; count (status, code)."""
    gate = threading.Barrier(len(calls))

    def run(call: Callable[[requests.Session], requests.Response]) -> tuple[int, str]:
        with requests.Session() as http:
            http.get  # noqa: B018  (a session per thread: its own TCP connection)
            gate.wait(timeout=60)
            r = call(http)
            code = r.json().get("code", "") if r.content and r.headers.get("Content-Type", "").endswith("json") else ""
            return r.status_code, code

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return Counter(pool.map(run, calls))


def fresh_counters(db: Any) -> None:
    """A new round: no failed attempt counted anywhere, no TOTP step used, no code attempt spent."""
    db.execute(delete(ThrottleCounter))
    db.execute(update(Patient).values(totp_last_step=None))
    db.execute(update(ActivationCode).values(attempts=0))
    db.commit()


def report(what: str, rounds: int, succeeded: int, per_round: Counter[Any]) -> None:
    print(f"\n{what}: {rounds} rounds, {succeeded} got through in all, answers of the last round {dict(per_round)}")


def _signed_up(app: Any, live: LiveServer, nir: str) -> tuple[dict[str, str], str]:
    created = create_patient(app, nir=nir)
    return sign_up(live.env, live.url, nir, activation_code=created.code)


# --- single use ---------------------------------------------------------------------------------------------

def test_the_same_totp_code_opens_one_session_among_concurrent_sign_ins(app, db, live):
    nir = make_nir("2840775000101")
    _, secret = _signed_up(app, live, nir)
    url = live.url

    def first_factor() -> str:
        r = requests.post(f"{url}/api/v1/auth/login", json={"nir": nir, "password": PASSWORD}, timeout=60)
        assert r.status_code == 200, r.text
        return r.json()["token"]

    pending = [first_factor() for _ in range(4)]  # four devices at the one-time-code step
    succeeded = 0
    for _ in range(ROUNDS):
        fresh_counters(db)
        code = pyotp.TOTP(secret).now()
        calls = [lambda http, t=t: http.post(f"{url}/api/v1/auth/verify", json={"code": code},
                                             headers={"Authorization": f"Bearer {t}"}, timeout=60)
                 for t in pending]
        answers = burst(calls)
        assert answers[(200, "")] == 1, answers  # one session; the others: code already used
        assert answers[(401, "invalid_otp")] == 3, answers
        succeeded += answers[(200, "")]
        # the winner's sign-in token is spent: the next round needs one more device at that step
        db.expire_all()
        live_tokens = set(db.scalars(select(AuthToken.token_hash).where(
            AuthToken.kind == TokenKind.MFA, AuthToken.revoked_at.is_(None))))
        pending = [t for t in pending if token_digest(t) in live_tokens] + [first_factor()]
        assert len(pending) == 4
    db.expire_all()
    sessions = db.scalar(select(func.count()).select_from(AuthToken).where(AuthToken.kind == TokenKind.ACCESS))
    assert sessions == 1 + ROUNDS  # activation's, then one per round
    report("same TOTP code on 4 concurrent sign-ins", ROUNDS, succeeded, answers)
    assert succeeded == ROUNDS


def test_a_burst_of_wrong_passwords_gets_five_checked(app, db, live):
    nir = make_nir("2840775000102")
    _signed_up(app, live, nir)
    patient_id = db.scalar(select(Patient.id).where(Patient.nir == nir))
    url = live.url
    calls = [lambda http: http.post(f"{url}/api/v1/auth/login", json={"nir": nir, "password": "Faux-Mot-2passe!"},
                                    timeout=60)] * BURST
    checked = 0
    for round_ in range(ROUNDS):
        fresh_counters(db)
        answers = burst(calls)
        assert answers == Counter({(401, "invalid_credentials"): 5, (429, "too_many_requests"): BURST - 5}), answers
        checked += answers[(401, "invalid_credentials")]
        db.expire_all()
        failures = db.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.patient_id == patient_id, AuditEntry.action == "login.failed"))
        assert failures == 5 * (round_ + 1)  # what the patient's history shows: the five that were checked
    # the right password right after the burst is refused too: the account is locked for the window
    r = requests.post(f"{url}/api/v1/auth/login", json={"nir": nir, "password": PASSWORD}, timeout=60)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    report(f"{BURST} parallel wrong passwords (limit 5)", ROUNDS, checked, answers)


def test_a_burst_of_wrong_activation_codes_gets_five_compared(app, db, live):
    created = create_patient(app, nir=make_nir("2840775000103"))
    url = live.url
    body = {"nir": created.nir, "birth_date": created.birth_date, "activation_code": "AAAA-BBBB-CCCC"}
    calls = [lambda http: http.post(f"{url}/api/v1/activation/check", json=body, timeout=60)] * BURST
    compared = 0
    for _ in range(ROUNDS):
        fresh_counters(db)
        answers = burst(calls)
        assert answers == Counter({(422, "invalid_activation"): 5, (429, "too_many_requests"): BURST - 5}), answers
        compared += answers[(422, "invalid_activation")]
        db.expire_all()
        assert db.scalar(select(ActivationCode.attempts).where(ActivationCode.patient_id == created.patient_id)) == 5
    # the real code still works after a new round starts (nothing was consumed by the burst)
    fresh_counters(db)
    r = requests.post(f"{url}/api/v1/activation/check", json={**body, "activation_code": created.code}, timeout=60)
    assert r.status_code == 200, r.text
    report(f"{BURST} parallel wrong activation codes (limit 5)", ROUNDS, compared, answers)


def test_a_burst_of_wrong_one_time_codes_gets_five_checked(app, db, live):
    nir = make_nir("2840775000104")
    _, secret = _signed_up(app, live, nir)
    url = live.url
    r = requests.post(f"{url}/api/v1/auth/login", json={"nir": nir, "password": PASSWORD}, timeout=60)
    mfa = {"Authorization": f"Bearer {r.json()['token']}"}
    right = pyotp.TOTP(secret)
    wrong = f"{(int(right.now()) + 500000) % 1000000:06d}"  # never the current, previous or next code
    assert wrong not in {right.at(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=s)) for s in (-30, 0, 30)}
    calls = [lambda http: http.post(f"{url}/api/v1/auth/verify", json={"code": wrong}, headers=mfa, timeout=60)] * BURST
    checked = 0
    for _ in range(ROUNDS):
        fresh_counters(db)
        answers = burst(calls)
        assert answers == Counter({(401, "invalid_otp"): 5, (429, "too_many_requests"): BURST - 5}), answers
        checked += answers[(401, "invalid_otp")]
    report(f"{BURST} parallel wrong one-time codes (limit 5)", ROUNDS, checked, answers)


def test_a_burst_of_wrong_passwords_on_a_sensitive_change_gets_five_checked(app, db, live):
    nir = make_nir("2840775000105")
    headers, _ = _signed_up(app, live, nir)
    url = live.url
    body = {"current_password": "Pas-Le-Bon-42!", "new_password": "Autre-Chemin-77?"}
    calls = [lambda http: http.post(f"{url}/api/v1/account/password", json=body, headers=headers, timeout=60)] * BURST
    checked = 0
    for _ in range(ROUNDS):
        fresh_counters(db)
        answers = burst(calls)
        assert answers == Counter({(403, "wrong_password"): 5, (429, "too_many_requests"): BURST - 5}), answers
        checked += answers[(403, "wrong_password")]
    report(f"{BURST} parallel wrong passwords re-entered (limit 5)", ROUNDS, checked, answers)


def test_a_burst_from_one_address_gets_the_address_limit_checked(app, db, live):
    url = live.url
    nirs = [make_nir(f"18505780{i:05d}") for i in range(BURST)]  # 40 accounts nobody has
    calls = [lambda http, n=n: http.post(f"{url}/api/v1/auth/login", json={"nir": n, "password": "x"}, timeout=60)
             for n in nirs]
    checked = 0
    for _ in range(ROUNDS):
        fresh_counters(db)
        answers = burst(calls)
        assert answers == Counter({(401, "invalid_credentials"): ADDRESS_LIMIT,
                                   (429, "too_many_requests"): BURST - ADDRESS_LIMIT}), answers
        checked += answers[(401, "invalid_credentials")]
    report(f"{BURST} parallel logins from one address (limit {ADDRESS_LIMIT})", ROUNDS, checked, answers)


def test_a_burst_of_code_resends_sends_five_emails(app, db, live):
    from backend.notifications.models import OutboxEmail

    created = create_patient(app, nir=make_nir("2840775000107"), email="camille@example.org")
    url = live.url

    def last_code() -> str:
        db.expire_all()
        body = db.scalars(select(OutboxEmail.body).where(OutboxEmail.kind == "otp").order_by(OutboxEmail.id.desc())).first()
        return body.split(": ")[1][:6]

    r = requests.post(f"{url}/api/v1/activation", json={"nir": created.nir, "birth_date": created.birth_date,
                                                         "activation_code": created.code, "password": PASSWORD}, timeout=60)
    enrolment = {"Authorization": f"Bearer {r.json()['token']}"}
    assert requests.post(f"{url}/api/v1/mfa/enrol", json={"method": "email"}, headers=enrolment, timeout=60).ok
    assert requests.post(f"{url}/api/v1/mfa/confirm", json={"code": last_code()}, headers=enrolment, timeout=60).ok
    r = requests.post(f"{url}/api/v1/auth/login", json={"nir": created.nir, "password": PASSWORD}, timeout=60)
    mfa = {"Authorization": f"Bearer {r.json()['token']}"}
    calls = [lambda http: http.post(f"{url}/api/v1/auth/otp/resend", headers=mfa, timeout=60)] * BURST
    sent = 0
    for _ in range(ROUNDS):
        fresh_counters(db)
        before = db.scalar(select(func.count()).select_from(OutboxEmail).where(OutboxEmail.patient_id == created.patient_id))
        answers = burst(calls)
        assert answers == Counter({(204, ""): 5, (429, "too_many_requests"): BURST - 5}), answers
        db.expire_all()
        after = db.scalar(select(func.count()).select_from(OutboxEmail).where(OutboxEmail.patient_id == created.patient_id))
        assert after - before == 5
        sent += after - before
    report(f"{BURST} parallel resends of the email code (limit 5)", ROUNDS, sent, answers)


# --- in process: the app, its pool, threads ---------------------------------------------------------------------

@pytest.fixture
def generous_app(database_url: str, app: Any) -> Iterator[Any]:
    """The app on the same database with a per-account throttle far above the activation code's own cap."""
    from backend.db import get_db

    other = make_app(database_url, LOGIN_FAILURES_PER_ACCOUNT="1000 per 15 minutes",
                     LOGIN_FAILURES_PER_ADDRESS="1000 per 15 minutes")
    yield other
    get_db(other).engine.dispose()


def test_the_activation_codes_own_cap_holds_under_a_burst(generous_app, db):
    created = create_patient(generous_app, nir=make_nir("2840775000106"))
    body = {"nir": created.nir, "birth_date": created.birth_date, "activation_code": "AAAA-BBBB-CCCC"}

    def call() -> tuple[int, str]:
        r = generous_app.test_client().post("/api/v1/activation/check", json=body)
        return r.status_code, r.get_json()["code"]

    compared = 0
    for _ in range(ROUNDS):
        fresh_counters(db)
        gate = threading.Barrier(BURST)

        def run(_: int) -> tuple[int, str]:
            gate.wait(timeout=60)
            return call()

        with ThreadPoolExecutor(max_workers=BURST) as pool:
            answers = Counter(pool.map(run, range(BURST)))
        assert answers == Counter({(422, "invalid_activation"): 5, (429, "activation_locked"): BURST - 5}), answers
        compared += answers[(422, "invalid_activation")]
    report(f"{BURST} parallel wrong activation codes, per-code cap 5 (throttle 1000)", ROUNDS, compared, answers)

