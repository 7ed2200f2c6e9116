"""Secrets never reach the logs. Representative flows (activation with TOTP, login with a one-time code and a
failed attempt, a document deposited and read, a message from a professional and the patient's reply with an
attachment, a booking, the exports, a password change) run with every logger at DEBUG, in-process and
through a live `carnet serve` whose stderr is read; no line may hold a password, a token, an activation
code, a one-time code or TOTP secret, a NIR, or a document's or message's content.

SQLAlchemy's engine logs at INFO here (statements; parameters are hidden by the engine's hide_parameters):
at DEBUG it prints result rows by design, which is a developer's switch, never on in production.
"""
from __future__ import annotations

import base64
import datetime as dt
import io
import json
import logging
import sys
from pathlib import Path
from typing import Any

import pyotp
import requests

from bench.soak import LiveServer
from tests.agenda.support import make_pro as make_agenda_pro, schedule_body
from tests.conftest import server_env
from tests.helpers import STRONG_PASSWORD, bearer, create_patient, make_nir

NEW_PASSWORD = "Soleil-Rouge-77!zz"
DOC_CONTENT = b"SECRET-CONTENU-DOCUMENT-7731 glycemie 1,02 g/L\n"
MESSAGE_TEXT = "SECRET-CORPS-MESSAGE-5512 vos resultats"
REPLY_TEXT = "SECRET-REPONSE-PATIENT-8841 merci"
ATTACHMENT = b"SECRET-PIECE-JOINTE-2290\n"
FHIR_COMM = "/fhir/R4/Communication"


class Recorder:
    """Everything a flow handled that must never be logged."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}

    def add(self, kind: str, value: str | bytes | None) -> None:
        if value:
            text = value.decode() if isinstance(value, bytes) else str(value)
            self.secrets[f"{kind}:{text[:12]}"] = text.strip()

    def leaks(self, log_text: str) -> list[str]:
        return [f"{name} found in the logs" for name, value in self.secrets.items() if value and value in log_text]


class Http:
    """The same calls through the Flask test client or a live server."""

    def __init__(self, client: Any = None, base: str | None = None) -> None:
        self.client, self.base = client, base

    def call(self, method: str, path: str, headers: dict[str, str] | None = None, *, json_body: Any = None,
             files: dict[str, tuple[str, bytes]] | None = None, data: dict[str, str] | None = None,
             content_type: str | None = None, raw: bytes | None = None) -> tuple[int, Any]:
        headers = dict(headers or {})
        if self.base:
            kwargs: dict[str, Any] = {"headers": headers, "timeout": 60}
            if json_body is not None:
                kwargs["json"] = json_body
            if files:
                kwargs["files"] = {k: (name, content) for k, (name, content) in files.items()}
                kwargs["data"] = data or {}
            if raw is not None:
                kwargs["data"] = raw
                headers["Content-Type"] = content_type or "application/json"
            r = requests.request(method, self.base + path, **kwargs)
            body: Any = r.json() if "json" in r.headers.get("Content-Type", "") else r.content
            return r.status_code, body
        if files:
            form: dict[str, Any] = dict(data or {})
            form.update({k: (io.BytesIO(content), name) for k, (name, content) in files.items()})
            r = self.client.open(path, method=method, headers=headers, data=form, content_type="multipart/form-data")
        elif raw is not None:
            r = self.client.open(path, method=method, headers=headers, data=raw, content_type=content_type)
        else:
            r = self.client.open(path, method=method, headers=headers, json=json_body)
        body = r.get_json(silent=True) if r.is_json or "json" in (r.mimetype or "") else r.get_data()
        return r.status_code, body


def totp_code(secret: str, rec: Recorder, step: int = 0) -> str:
    code = pyotp.TOTP(secret).at(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=30 * step))
    rec.add("one_time_code", code)
    return code


def run_flows(http: Http, app: Any, rec: Recorder, n: int) -> None:
    nir = make_nir(f"28407751{n:05d}")
    created = create_patient(app, nir=nir, email=f"patient{n}@example.org")
    rec.add("nir", nir)
    rec.add("nir_without_key", nir[:13])
    rec.add("activation_code", created.code)
    rec.add("password", STRONG_PASSWORD)
    rec.add("password", NEW_PASSWORD)

    # activation, enrolment, confirmation with a TOTP code
    status, body = http.call("POST", "/api/v1/activation", json_body={
        "nir": nir, "birth_date": created.birth_date, "activation_code": created.code, "password": STRONG_PASSWORD})
    assert status == 201, body
    enrol = bearer(body["token"])
    rec.add("token", body["token"])
    status, body = http.call("POST", "/api/v1/mfa/enrol", enrol, json_body={"method": "totp"})
    assert status == 200, body
    secret = body["secret"]
    rec.add("totp_secret", secret)
    status, body = http.call("POST", "/api/v1/mfa/confirm", enrol, json_body={
        "code": totp_code(secret, rec), "device_name": "Phone"})
    assert status == 200, body
    headers = bearer(body["access_token"])
    rec.add("token", body["access_token"])

    # a failed login (wrong password), a wrong code, then a login with the next code
    http.call("POST", "/api/v1/auth/login", json_body={"nir": nir, "password": STRONG_PASSWORD + "-wrong"})
    status, body = http.call("POST", "/api/v1/auth/login", json_body={"nir": nir, "password": STRONG_PASSWORD})
    assert status == 200, body
    mfa = bearer(body["token"])
    rec.add("token", body["token"])
    http.call("POST", "/api/v1/auth/verify", mfa, json_body={"code": "000000", "device_name": "Tablet"})
    status, body = http.call("POST", "/api/v1/auth/verify", mfa, json_body={
        "code": totp_code(secret, rec, 1), "device_name": "Tablet"})
    assert status == 200, body
    rec.add("token", body["access_token"])

    # a document deposited and read
    status, body = http.call("POST", "/api/v1/record/documents", headers, files={"file": ("bilan.txt", DOC_CONTENT)},
                             data={"category": "BIOLOGIE"})
    assert status == 201, body
    doc_id = body["id"]
    status, content = http.call("GET", f"/api/v1/record/documents/{doc_id}/content", headers)
    assert status == 200 and content == DOC_CONTENT

    # a professional writes; the patient replies with an attachment
    from tests.fhir_helpers import make_pro

    pro = make_pro(app, rpps=f"1000000{n:04d}")
    rec.add("token", pro.token)
    communication = {"resourceType": "Communication", "status": "completed",
                     "subject": {"identifier": {"system": "urn:oid:1.2.250.1.213.1.4.8", "value": nir}},
                     "topic": {"text": "Resultats"}, "payload": [{"contentString": MESSAGE_TEXT}]}
    status, body = http.call("POST", FHIR_COMM, pro.headers(), raw=json.dumps(communication).encode(),
                             content_type="application/fhir+json")
    assert status == 201, body
    status, body = http.call("GET", "/api/v1/inbox/threads", headers)
    assert status == 200, body
    thread_id = body["items"][0]["id"]
    status, body = http.call("POST", f"/api/v1/inbox/threads/{thread_id}/messages", headers,
                             files={"file": ("reponse.txt", ATTACHMENT)}, data={"body": REPLY_TEXT})
    assert status in (200, 201), body

    # a booking
    practice = make_agenda_pro(app, rpps=f"1010{n:07d}")
    rec.add("token", practice.token)
    status, body = http.call("POST", "/fhir/R4/Schedule", practice.headers, raw=json.dumps(schedule_body()).encode(),
                             content_type="application/fhir+json")
    assert status == 201, body
    day = (dt.date.today() + dt.timedelta(days=7)).isoformat()
    status, body = http.call("GET", f"/api/v1/agenda/slots?professional_id={practice.id}&date={day}&days=7", headers)
    assert status == 200 and body["items"], body
    status, body = http.call("POST", "/api/v1/agenda/appointments", headers,
                             json_body={"slot_id": body["items"][0]["slot_id"]})
    assert status == 201, body

    # the exports, then a password change
    for path in ("/api/v1/record/export/zip", "/api/v1/record/export/fhir", "/api/v1/record/history/export"):
        status, _ = http.call("GET", path, headers)
        assert status == 200, path
    http.call("POST", "/api/v1/account/password", headers,
              json_body={"current_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD})


def _all_loggers_at_debug() -> None:
    logging.getLogger().setLevel(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO if name.startswith("sqlalchemy") else logging.DEBUG)


def test_no_secret_in_the_logs_in_process(app, client, caplog):
    caplog.set_level(logging.DEBUG)
    _all_loggers_at_debug()
    rec = Recorder()
    try:
        run_flows(Http(client=client), app, rec, 1)
    finally:
        for name in list(logging.root.manager.loggerDict):
            logging.getLogger(name).setLevel(logging.NOTSET)
    text = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert caplog.records, "nothing was logged: the capture is not working"
    assert not rec.leaks(text), rec.leaks(text)


SERVE_AT_DEBUG = """
import logging, sys
import backend
backend.LOGGING["root"]["level"] = "DEBUG"
backend.LOGGING["loggers"] = {"sqlalchemy": {"level": "INFO"}}
backend.LOGGING["disable_existing_loggers"] = False
from backend.tools.cli import main
sys.argv = ["carnet"] + sys.argv[1:]
main()
"""


def test_no_secret_in_a_live_server_log(app, database_url, tmp_path: Path):
    env = server_env(database_url, CARNET_INSTANCE_PATH=str(tmp_path / "instance"), CARNET_TASK_QUEUE="immediate")
    # the real `carnet serve`, every logger at DEBUG (what an operator chasing a problem would turn on)
    wrapper = tmp_path / "serve_debug.py"
    wrapper.write_text(SERVE_AT_DEBUG)
    server = LiveServer(env, tmp_path / "server.log", launcher=[sys.executable, str(wrapper)]).start()
    rec = Recorder()
    try:
        run_flows(Http(base=server.url), app, rec, 2)
    finally:
        server.stop()
    text = server.log_path.read_text(errors="replace")
    assert "INSERT INTO document" in text, text[-2000:]  # the capture really saw the requests' work
    assert not rec.leaks(text), rec.leaks(text)
    # and the base64 forms of the binary secrets
    for value in (DOC_CONTENT, ATTACHMENT):
        assert base64.b64encode(value).decode() not in text
