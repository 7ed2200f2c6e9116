"""The raw floor (bench/raw_floor.py) runs the statements the endpoints run, and cannot drift from them:
a capture equals a fresh capture; given the endpoint's own rows, the floor binds exactly the parameters
the endpoint bound for a request it never saw; its statements run on raw psycopg (prepared) and its
audit writes keep the chain intact. Nothing here is timed. PostgreSQL only: the floor speaks psycopg
(the benchmark runs on PostgreSQL), as the benchmark seeder it reuses."""
from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest
from sqlalchemy import func, select, text

from backend.tools import benchseed
from backend.accounts.models import Patient
from backend.agenda.availability import parse_slot_id
from backend.audit import service as audit
from backend.audit.models import AuditEntry
from backend.db import get_db
from backend.professionals.models import Professional
from backend.records.access.models import Consent
from bench import raw_floor

pytestmark = pytest.mark.postgres


@pytest.fixture
def capturing(app, database_url, tmp_path, monkeypatch) -> Any:
    """The app as production runs it for these requests: tasks queued (an embedded queue in a folder of
    the test's), not run inline inside the request as the tests' immediate queue would; the documents'
    bytes in the test app's blob store (the download reads them)."""
    from tests.conftest import make_app

    monkeypatch.setenv("CARNET_INSTANCE_PATH", str(tmp_path))
    made = make_app(database_url, TASK_QUEUE="sqlite", BLOB_STORE="file",
                    BLOB_DIR=str(app.extensions["carnet.blobs"].root))
    yield made
    get_db(made).engine.dispose()


@pytest.fixture
def subjects(app, database_url) -> list[raw_floor.Subject]:
    """Five patients (documents, consents, a session each), their professionals' tokens, and slots of
    five schedules on five days: per scenario, five different subjects."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the raw floor speaks psycopg to PostgreSQL")
    engine = get_db(app).engine
    report = benchseed.seed(engine, keyring=app.extensions["carnet.keyring"], secret_key=app.config["SECRET_KEY"],
                            blobs=app.extensions["carnet.blobs"], patients=0, exact_docs=[4, 6, 3, 5, 2],
                            professionals=5, batch=5, seed_value=5)
    ids = report.patient_ids
    tokens = benchseed.issue_access_tokens(engine, ids)
    with get_db(app).session_factory() as session:  # type: ignore[misc]
        pros = session.scalars(select(Professional.id).order_by(Professional.id.desc()).limit(5)).all()
        nirs = dict(session.execute(select(Patient.id, Patient.nir).where(Patient.id.in_(ids))).all())
        for pid, pro in zip(ids, pros):  # patient k consents to professional k: five different pairs
            session.add(Consent(patient_id=pid, professional_id=pro, granted_by="patient"))
        session.commit()
    pro_tokens = benchseed.issue_professional_tokens(engine, pros)
    # schedules whose ids are not the patients' (in a fresh database both start at 1): two requests
    # agreeing by chance on a value would explain it twice
    benchseed.bookable_schedules(engine, len(ids), days=1)
    slots = benchseed.bookable_schedules(engine, 5, days=8)
    per_schedule: dict[int, list[str]] = {}
    for slot in slots:
        per_schedule.setdefault(parse_slot_id(slot)[0], []).append(slot)
    # day k + 2 (both reminders of a booking are still ahead), one slot per schedule
    chosen = [sorted(s)[14 * 6 * (k + 2) + 3] for k, s in enumerate(per_schedule.values())]
    with engine.connect() as conn:  # a document each patient sees (the download)
        shown = dict(conn.execute(text(
            "SELECT DISTINCT ON (patient_id) patient_id, id FROM document WHERE patient_id = ANY(:ids) "
            "AND deleted_at IS NULL AND NOT (invisible_patient AND released_at IS NULL) ORDER BY patient_id, id DESC"),
            {"ids": ids}).all())
    return [raw_floor.Subject(token=tokens[k], pro_token=pro_tokens[k], nir=nirs[pid], slot=chosen[k],
                              document=shown[pid]) for k, pid in enumerate(ids)]


def _bookings(subjects: list[raw_floor.Subject], engine: Any, offset: int) -> list[raw_floor.Subject]:
    """The same patients with fresh slots (a slot is booked once)."""
    slots = benchseed.bookable_schedules(engine, 5, days=8)
    per_schedule: dict[int, list[str]] = {}
    for slot in slots:
        per_schedule.setdefault(parse_slot_id(slot)[0], []).append(slot)
    fresh = [sorted(s)[14 * 6 * (k + 2) + 5 + offset] for k, s in enumerate(per_schedule.values())]
    return [raw_floor.Subject(token=s.token, pro_token=s.pro_token, nir=s.nir, slot=fresh[k])
            for k, s in enumerate(subjects)]


@pytest.mark.parametrize("scenario", raw_floor.SCENARIOS)
def test_a_capture_equals_a_fresh_capture(capturing, subjects, scenario):
    first = raw_floor.capture_plan(capturing, scenario, *subjects[:3])
    again = subjects[2:5] if scenario != "booking" else _bookings(subjects, get_db(capturing).engine, 1)[:3]
    fresh = raw_floor.capture_plan(capturing, scenario, *again)
    for ours, theirs in zip(first.signature(), fresh.signature()):
        assert ours == theirs, [x for x in zip(ours[1], theirs[1]) if x[0] != x[1]] or ours[0][:80]
    assert len(first.steps) == len(fresh.steps)
    assert first.steps and all(step.sql for step in first.steps)
    assert first.commit == (scenario in ("ITI-67 search + audit", "booking"))


@pytest.mark.parametrize("scenario", raw_floor.SCENARIOS)
def test_the_floor_binds_what_the_endpoint_binds_for_a_new_request(capturing, subjects, scenario):
    plan = raw_floor.capture_plan(capturing, scenario, *subjects[:3])
    new = subjects[4] if scenario != "booking" else _bookings(subjects, get_db(capturing).engine, 2)[4]
    if scenario != "booking":
        raw_floor.capture(capturing, scenario, new)  # its first request of the day (the steady state after)
    run = raw_floor.capture(capturing, scenario, new)  # the endpoint, for a request the plan never saw
    assert [s.sql for s in run.steps] == [s.sql for s in plan.steps]
    # the request's clock: the endpoint's own first reading of it (the audit chain hashes its entry's time)
    now = next((done.params[name] for step, done in zip(plan.steps, run.steps) for name, b in step.binds.items()
                if b.kind == "clock" and b.value == ("clock", dt.timedelta(0))), run.started)
    ctx = raw_floor._Context(run.inputs, now, [], [])
    for step, done in zip(plan.steps, run.steps):
        bound = raw_floor.bind(step, ctx)
        assert list(bound) == list(done.params)
        others = [raw_floor.bind(raw_floor.Step(step.sql, binds), ctx) for binds in step.more]
        assert len(others) == len(done.more)
        for ours, theirs in zip([bound, *others], [done.params, *done.more]):
            for name, value in theirs.items():
                if isinstance(value, dt.datetime):
                    assert abs((ours[name] - value).total_seconds()) < 5, (name, ours[name], value)
                else:
                    assert ours[name] == value, (step.sql[:60], name, ours[name], value)
        ctx.rows.append(done.first_row)  # the endpoint's own rows: what the floor's statements return
        ctx.params.append(done.params)


def test_the_floor_runs_the_statements_on_raw_psycopg_and_keeps_the_audit_chain(app, capturing, subjects,
                                                                                 database_url):
    plans = {scenario: raw_floor.capture_plan(capturing, scenario, *subjects[:3])
             for scenario in raw_floor.SCENARIOS[:3]}
    dsn = raw_floor.psycopg_dsn(database_url)
    floor = raw_floor.Floor(plans, dsn)
    engine = get_db(app).engine
    before = _entries(engine)
    statuses = []
    for scenario in plans:
        method, path, headers, body = raw_floor.http_request(scenario, subjects[4])
        base, _, query = path.partition("?")
        environ = {"REQUEST_METHOD": method, "PATH_INFO": base, "QUERY_STRING": query, "wsgi.input": None,
                   **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}}
        out: list[Any] = []
        payload = b"".join(floor(environ, lambda status, _headers: out.append(status)))
        statuses.append(out[0])
        assert payload.startswith(b'{"results": [')
    assert statuses == ["200 OK"] * 3
    # the ITI-67 floor appended one access-history entry, chained as the app chains it
    assert _entries(engine) == before + 1
    with get_db(app).session_factory() as session:  # type: ignore[misc]
        assert audit.verify(session).ok
    with psycopg.connect(dsn) as conn:
        rows = raw_floor.execute(conn, plans["documents page"], raw_floor.inputs_of(
            "documents page", "/api/v1/record/documents", "", {"Authorization": f"Bearer {subjects[4].token}"}, b""))
    assert len(rows[2]) == 2  # the page: the patient's 2 documents (limit 21)
    assert floor.connection().info.parameter_status("application_name") == raw_floor.APPLICATION_NAME
    floor.close()


def test_the_download_floor_serves_the_bytes_the_endpoint_serves(app, capturing, subjects, database_url):
    """The download's floor runs the endpoint's statements, then reads, unwraps, opens and checks the
    document with the app's primitives: the same bytes as the endpoint, for a request it never saw."""
    plan = raw_floor.capture_plan(capturing, "document download", *subjects[:3])
    assert [s.sql.split()[0] for s in plan.steps] == ["SELECT"] * len(plan.steps) and not plan.commit
    floor = raw_floor.Floor({"document download": plan}, raw_floor.psycopg_dsn(database_url),
                            app.extensions["carnet.keyring"], app.extensions["carnet.blobs"])
    method, path, headers, _ = raw_floor.http_request("document download", subjects[4])
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "", "wsgi.input": None,
               **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}}
    out: list[Any] = []
    served = b"".join(floor(environ, lambda status, _headers: out.append(status)))
    ours = capturing.test_client().get(path, headers=headers)
    assert out == ["200 OK"] and ours.status_code == 200
    assert served == ours.data and served
    floor.close()


def _entries(engine: Any) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(AuditEntry)) or 0


def test_a_parameter_nothing_explains_stops_the_capture():
    a = raw_floor.Run({"digest": "a"}, dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
                      [raw_floor.Executed("SELECT %(x)s", {"x": "random-1"})], False, 200)
    b = raw_floor.Run({"digest": "b"}, dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
                      [raw_floor.Executed("SELECT %(x)s", {"x": "other-2"})], False, 200)
    with pytest.raises(raw_floor.Unexplained, match="parameter 'x'"):
        raw_floor.plan_from("home", a, b)
    c = raw_floor.Run({"digest": "b"}, b.started, [raw_floor.Executed("SELECT 2", {})], False, 200)
    with pytest.raises(raw_floor.Unexplained, match="different statements"):
        raw_floor.plan_from("home", a, c)
