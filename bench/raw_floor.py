"""The raw floor: the SQL statements our endpoint runs, answered by a minimal WSGI handler.

For home, the documents page, a document download, ITI-67 and booking, the honest yardstick of what the
app costs is not ``/api/health`` (no query at all) but the same queries, on the same database, with
nothing around them: a raw psycopg connection per thread, prepared statements, no ORM, no Flask, the same
gunicorn settings and the same JSON serialiser. What the app spends beyond that is what the framework,
the ORM and our own code add. A download's floor also does what no handler of it can skip, with the
app's own primitives (:func:`document_bytes`): the sealed bytes read from the blob store, the patient's
key unwrapped, the content opened and its sha256 checked.

The statements are never written here. They are captured from the endpoint itself (:func:`capture_plan`):
the endpoint runs in-process under a ``before_cursor_execute`` listener, twice, for two different
requests (two patients, two professionals, two slots), after a warm-up; each statement is kept with
its parameters, and each parameter is explained by what differs between the two runs:

- the same value both times: a constant (``LIMIT 21``, ``kind = 'access'``);
- a value of the request (the bearer token's digest, the NIR, the slot): an input;
- a value an earlier statement returned (the patient's id from the token lookup, the audit head's
  ``seq`` and ``hash``), or an earlier parameter: a reference to it;
- a time: the request's clock (or the slot's start) plus the same offset both times;
- a text made of those (``pro-access:<patient>:<professional>:<day>``): a template;
- the SHA-256 of another parameter, or the audit chain's entry hash: computed, as the app does.

A parameter nothing explains stops the capture: the floor would not be running the endpoint's
statements. The plan is then replayed by :func:`application` for each request of the benchmark;
``tests/test_raw_floor.py`` checks that a capture equals a fresh capture and that the floor, given a
third request, binds exactly what the endpoint binds for it, so the floor cannot drift from the code.

    python bench/raw_floor.py serve --plan FILE --port P --workers 2 --threads 8   # used by bench/load.py
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import pickle
import re
import threading
import zoneinfo
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
APPLICATION_NAME = "carnet-raw-floor"  # the floor's PostgreSQL backends, told apart by bench/load.py
SCENARIOS = ("home", "documents page", "ITI-67 search + audit", "booking", "document download")
DOWNLOAD = re.compile(r"/api/v1/record/documents/(\d+)/content")


# --- what one run of the endpoint executed ----------------------------------------------------------------

@dataclass
class Executed:
    sql: str
    params: dict[str, Any]                 # an executemany's first parameter set…
    columns: list[str] = field(default_factory=list)
    first_row: dict[str, Any] | None = None
    more: list[dict[str, Any]] = field(default_factory=list)  # …and its others


@dataclass
class Run:
    inputs: dict[str, Any]
    started: dt.datetime
    steps: list[Executed]
    committed: bool
    status: int


@contextmanager
def recording(engine: Any) -> Iterator[tuple[list[Executed], list[bool]]]:
    """Every statement the engine executes meanwhile, with its parameters and its first row."""
    from sqlalchemy import event

    steps: list[Executed] = []
    commits: list[bool] = []

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if executemany and not isinstance(parameters, dict):  # one statement, several parameter sets
            sets = [dict(p) for p in parameters]
            steps.append(Executed(statement, sets[0], more=sets[1:]))
        else:
            # (SQLAlchemy's "insertmanyvalues" sends several rows as one INSERT … VALUES (…), (…): one set)
            steps.append(Executed(statement, dict(parameters or {})))

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if cursor.description:
            names = [c.name for c in cursor.description]
            rows = cursor.fetchall()
            if rows:
                cursor.scroll(0, mode="absolute")  # give the rows back to SQLAlchemy
            steps[-1].columns = names
            steps[-1].first_row = dict(zip(names, rows[0])) if rows else None

    def commit(conn: Any) -> None:
        commits.append(True)

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    event.listen(engine, "commit", commit)
    try:
        yield steps, commits
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
        event.remove(engine, "commit", commit)


def record(app: Any, request: Callable[[Any], Any], inputs: dict[str, Any]) -> Run:
    """Run one request of the endpoint in-process (Flask's test client) and keep what it executed."""
    from backend.db import get_db

    client = app.test_client()
    with recording(get_db(app).engine) as (steps, commits):
        started = dt.datetime.now(dt.timezone.utc)
        response = request(client)
    if response.status_code >= 400:
        raise RuntimeError(f"the endpoint answered {response.status_code} while being captured: {response.data[:300]!r}")
    return Run(inputs, started, steps, bool(commits), response.status_code)


# --- the plan: each parameter explained -------------------------------------------------------------------

@dataclass(frozen=True)
class Bind:
    kind: str   # const | input | result | param | clock | template | sha256 | audit_hash
    value: Any = None   # const: the value; input: its name; result/param: (step, name); clock: (anchor, offset)
    as_text: bool = False  # the source is an int, the parameter its text

    def describe(self) -> str:
        return f"{self.kind}:{self.value!r}" + (":text" if self.as_text else "")


@dataclass
class Step:
    sql: str
    binds: dict[str, Bind]
    more: list[dict[str, Bind]] = field(default_factory=list)  # an executemany's other parameter sets


@dataclass
class Plan:
    scenario: str
    steps: list[Step]
    commit: bool

    def signature(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """What the floor runs, comparable between two captures."""
        return [(s.sql, [sorted((k, b.describe()) for k, b in binds.items()) for binds in [s.binds, *s.more]])
                for s in self.steps]


class Unexplained(RuntimeError):
    """A parameter of the endpoint that the floor could not reproduce."""


def _sources(runs: tuple[Run, Run], index: int, name: str) -> Iterator[tuple[Bind, Any, Any]]:
    """Candidate explanations of a parameter, nearest first: (bind, value in run a, value in run b)."""
    a, b = runs
    for key in a.inputs:
        yield Bind("input", key), a.inputs[key], b.inputs[key]
    for j in range(index):  # the earliest statement that returned it (the token lookup before the rest)
        ra, rb = a.steps[j].first_row, b.steps[j].first_row
        if ra is not None and rb is not None:
            for column in a.steps[j].columns:
                yield Bind("result", (j, column)), ra.get(column), rb.get(column)
    for j in range(index, -1, -1):
        for key, value in a.steps[j].params.items():
            if j == index and key == name:
                break
            if key in b.steps[j].params:
                yield Bind("param", (j, key)), value, b.steps[j].params[key]


def _same(x: Any, y: Any) -> bool:
    return type(x) is type(y) and x == y


def _explain(runs: tuple[Run, Run], index: int, name: str) -> Bind:
    a, b = runs
    va, vb = a.steps[index].params[name], b.steps[index].params[name]
    if _same(va, vb) and not isinstance(va, dt.datetime):
        return Bind("const", va)
    candidates = list(_sources(runs, index, name))
    # a source of the parameter's own name first (``patient_id`` from a row's ``patient_id``, not from a
    # token's ``id`` that happens to equal it in both runs): fewer explanations by coincidence
    own = re.sub(r"_\d+$", "", name)
    named = sorted(candidates, key=lambda c: (c[0].value if c[0].kind == "input" else c[0].value[1]) != own)
    for bind, sa, sb in named:
        if _same(sa, va) and _same(sb, vb):
            return bind
        if isinstance(va, str) and isinstance(sa, int) and not isinstance(sa, bool) \
                and str(sa) == va and str(sb) == vb:
            return Bind(bind.kind, bind.value, as_text=True)
    if isinstance(va, dt.datetime) and isinstance(vb, dt.datetime):
        anchors = [("clock", a.started, b.started)] + [
            (key, a.inputs[key], b.inputs[key]) for key in a.inputs if isinstance(a.inputs[key], dt.datetime)]
        best = None
        for anchor, ta, tb in anchors:
            da, db = va - ta, vb - tb
            if abs((da - db).total_seconds()) < 5 and (best is None or abs(da) < abs(best[1])):
                best = (anchor, da)
        if best is not None:
            offset = dt.timedelta(seconds=round(best[1].total_seconds() / 60) * 60) \
                if abs(best[1]) > dt.timedelta(minutes=1) else dt.timedelta(0)
            return Bind("clock", (best[0], offset))
    if isinstance(va, str):
        for key, value in a.steps[index].params.items():
            if key != name and isinstance(value, str) and hashlib.sha256(value.encode()).hexdigest() == va \
                    and hashlib.sha256(b.steps[index].params[key].encode()).hexdigest() == vb:
                return Bind("sha256", key)
        if name == "hash" and a.steps[index].sql.lstrip().upper().startswith("INSERT INTO AUDIT_ENTRY") \
                and _audit_hash(a.steps[index].params) == va and _audit_hash(b.steps[index].params) == vb:
            return Bind("audit_hash")
        if name == "middle" and "INSERT INTO AUDIT_ENTRY" in a.steps[index].sql.upper() \
                and _audit_middle(a.steps[index].params) == va and _audit_middle(b.steps[index].params) == vb:
            return Bind("audit_middle")
        template = _template(va, vb, candidates)
        if template is not None:
            return Bind("template", template)
    raise Unexplained(f"step {index} ({' '.join(a.steps[index].sql.split())[:80]}…): parameter {name!r} "
                      f"({va!r} / {vb!r}) is explained by nothing the floor knows")


def _tokens(text: str) -> list[str]:
    return [t for t in re.split(r"(\W+)", text) if t]


def _template(va: str, vb: str, candidates: list[tuple[Bind, Any, Any]]) -> tuple[str, list[Bind]] | None:
    """``va`` and ``vb`` are the same text around values of the request or of earlier rows, matched as
    whole tokens (``1999`` in ``pro-access:1999:17:2026-12-06``, never the ``26`` inside ``2026``)."""
    ta, tb = _tokens(va), _tokens(vb)
    if len(ta) != len(tb):
        return None
    owner: list[int | None] = [None] * len(ta)
    used: list[Bind] = []
    for bind, sa, sb in candidates:
        if isinstance(sa, bool) or not isinstance(sa, (int, str, dt.date)) or type(sa) is not type(sb):
            continue
        if sa == sb and bind.kind != "input":  # equal in both runs: only the request's own values count
            continue
        ra, rb = _tokens(str(sa)), _tokens(str(sb))
        if not ra or len(ra) != len(rb):
            continue
        n = len(ra)
        for i in range(len(ta) - n + 1):
            if any(o is not None for o in owner[i:i + n]) or ta[i:i + n] != ra or tb[i:i + n] != rb:
                continue
            if bind not in used:
                used.append(bind)
            for k in range(i, i + n):
                owner[k] = used.index(bind) if k == i else -1
    if not used:
        return None
    out = []
    for i, token in enumerate(ta):
        if owner[i] is None:
            if token != tb[i]:
                return None
            out.append(token)
        elif owner[i] >= 0:  # type: ignore[operator]
            out.append("\x00%d\x00" % owner[i])
    return "".join(out), used


def _audit_hash(params: dict[str, Any]) -> str:
    from backend.audit.service import entry_hash

    return entry_hash(params["seq"], params["at"], params["actor_type"], params["actor_id"], params["action"],
                      params["patient_id"], params["purpose"], params["details_digest"], params["prev_hash"])


def _audit_middle(params: dict[str, Any]) -> str:
    from backend.audit.service import entry_middle

    return entry_middle(params["at"], params["actor_type"], params["actor_id"], params["action"],
                        params["patient_id"], params["purpose"], params["details_digest"])


def plan_from(scenario: str, a: Run, b: Run) -> Plan:
    if [s.sql for s in a.steps] != [s.sql for s in b.steps]:
        raise Unexplained(f"{scenario}: two requests ran different statements ({len(a.steps)} and {len(b.steps)})")
    if a.committed != b.committed:
        raise Unexplained(f"{scenario}: one request committed, the other did not")
    steps = []
    for i, done in enumerate(a.steps):
        if len(done.more) != len(b.steps[i].more):
            raise Unexplained(f"{scenario}: step {i} wrote {1 + len(done.more)} and {1 + len(b.steps[i].more)} rows")
        step = Step(done.sql, {name: _explain((a, b), i, name) for name in done.params})
        for k in range(len(done.more)):  # each other row, explained as if it were the statement's parameters
            ak, bk = _with_params(a, i, done.more[k]), _with_params(b, i, b.steps[i].more[k])
            step.more.append({name: _explain((ak, bk), i, name) for name in done.more[k]})
        steps.append(step)
    return Plan(scenario, steps, a.committed)


def _with_params(run: Run, index: int, params: dict[str, Any]) -> Run:
    steps = list(run.steps)
    steps[index] = Executed(steps[index].sql, params, steps[index].columns, steps[index].first_row)
    return Run(run.inputs, run.started, steps, run.committed, run.status)


# --- the scenarios: the endpoint's request, and the inputs the floor reads from it ----------------------------

INS_OID = "1.2.250.1.213.1.4.8"
PAGE = 20


@dataclass(frozen=True)
class Subject:
    """Who one request is for: a patient's token, a professional's token and a patient's NIR, a slot."""

    token: str = ""
    pro_token: str = ""
    nir: str = ""
    slot: str = ""
    document: int = 0   # one of the patient's documents (the download)


def http_request(scenario: str, s: Subject) -> tuple[str, str, dict[str, str], str | None]:
    """(method, path with query, headers, body) of one request: what bench/load.py sends to both servers."""
    if scenario == "home":
        return "GET", "/api/v1/home", {"Authorization": f"Bearer {s.token}"}, None
    if scenario == "documents page":
        return "GET", f"/api/v1/record/documents?limit={PAGE}", {"Authorization": f"Bearer {s.token}"}, None
    if scenario == "ITI-67 search + audit":
        return ("GET", f"/fhir/R4/DocumentReference?patient.identifier=urn:oid:{INS_OID}%7C{s.nir}&_count={PAGE}",
                {"Authorization": f"Bearer {s.pro_token}", "Accept": "application/fhir+json"}, None)
    if scenario == "booking":
        return ("POST", "/api/v1/agenda/appointments", {"Authorization": f"Bearer {s.token}",
                                                        "Content-Type": "application/json"},
                json.dumps({"slot_id": s.slot}))
    if scenario == "document download":
        return "GET", f"/api/v1/record/documents/{s.document}/content", {"Authorization": f"Bearer {s.token}"}, None
    raise ValueError(scenario)


def _bearer(headers: Any) -> str:
    value = headers.get("Authorization") or headers.get("HTTP_AUTHORIZATION") or ""
    return value[7:].strip() if value[:7].lower() == "bearer " else ""


def inputs_of(scenario: str, path: str, query: str, headers: Any, body: bytes) -> dict[str, Any]:
    """What the floor reads from a request: what any handler of it must parse (and hash) first."""
    from backend.security import token_digest

    if scenario in ("home", "documents page"):
        return {"digest": token_digest(_bearer(headers))}
    if scenario == "ITI-67 search + audit":
        identifier = parse_qs(query).get("patient.identifier", [""])[0]
        return {"digest": token_digest(_bearer(headers)), "nir": identifier.rsplit("|", 1)[-1],
                "today": dt.datetime.now(PARIS).date().isoformat()}
    if scenario == "booking":
        from backend.agenda.availability import parse_slot_id

        schedule_id, start = parse_slot_id(json.loads(body or b"{}").get("slot_id", ""))
        return {"digest": token_digest(_bearer(headers)), "schedule_id": schedule_id, "slot_start": start}
    if scenario == "document download":
        found = DOWNLOAD.fullmatch(path)
        return {"digest": token_digest(_bearer(headers)), "document_id": int(found.group(1)) if found else 0}
    raise ValueError(scenario)


ROUTES = {("GET", "/api/v1/home"): "home", ("GET", "/api/v1/record/documents"): "documents page",
          ("GET", "/fhir/R4/DocumentReference"): "ITI-67 search + audit",
          ("POST", "/api/v1/agenda/appointments"): "booking"}


def route(method: str, path: str) -> str | None:
    if method == "GET" and DOWNLOAD.fullmatch(path):
        return "document download"
    return ROUTES.get((method, path))


def capture(app: Any, scenario: str, subject: Subject) -> Run:
    method, path, headers, body = http_request(scenario, subject)
    base, _, query = path.partition("?")
    inputs = inputs_of(scenario, base, query, headers, (body or "").encode())
    return record(app, lambda c: c.open(path, method=method, headers=headers, data=body), inputs)


def capture_plan(app: Any, scenario: str, warm: Subject, a: Subject, b: Subject) -> Plan:
    """Warm the endpoint, then capture two requests and explain every parameter. What is captured is the
    steady state: ``a`` and ``b`` are warmed too (the first ITI-67 search of a day by a professional in
    a record also writes the day's access notification; later ones do not), except for bookings, each
    of which takes a slot of its own."""
    for subject in (warm,) if scenario == "booking" else (warm, a, b):
        capture(app, scenario, subject)
    return plan_from(scenario, capture(app, scenario, a), capture(app, scenario, b))


# --- the floor itself -----------------------------------------------------------------------------------------

@dataclass
class _Context:
    inputs: dict[str, Any]
    now: dt.datetime
    rows: list[dict[str, Any] | None]      # the first row of each earlier statement
    params: list[dict[str, Any]]           # the parameters each earlier statement was given
    current: dict[str, Any] = field(default_factory=dict)  # this statement's, bound so far


def _resolve(b: Bind, ctx: _Context) -> Any:
    if b.kind == "const":
        value = b.value
    elif b.kind == "input":
        value = ctx.inputs[b.value]
    elif b.kind == "result":
        row = ctx.rows[b.value[0]]
        value = None if row is None else row.get(b.value[1])
    elif b.kind == "param":
        j, key = b.value
        value = (ctx.current if j == len(ctx.params) else ctx.params[j]).get(key)
    elif b.kind == "clock":
        anchor, offset = b.value
        value = (ctx.now if anchor == "clock" else ctx.inputs[anchor]) + offset
    elif b.kind == "template":
        pattern, parts = b.value
        value = pattern
        for i, part in enumerate(parts):
            value = value.replace("\x00%d\x00" % i, str(_resolve(part, ctx)))
    elif b.kind == "sha256":
        value = hashlib.sha256(str(ctx.current[b.value]).encode()).hexdigest()
    elif b.kind == "audit_hash":
        value = _audit_hash(ctx.current)
    elif b.kind == "audit_middle":
        value = _audit_middle(ctx.current)
    else:
        raise ValueError(b.kind)
    return str(value) if b.as_text and value is not None else value


def bind(step: Step, ctx: _Context) -> dict[str, Any]:
    """The parameters of one statement for this request, in the order the endpoint gave them."""
    ctx.current = {}
    for name, b in step.binds.items():
        ctx.current[name] = _resolve(b, ctx)
    return ctx.current


def execute(conn: Any, plan: Plan, inputs: dict[str, Any], now: dt.datetime | None = None,
            trace: list[tuple[str, dict[str, Any]]] | None = None) -> list[list[dict[str, Any]]]:
    """Run the plan's statements for one request on a psycopg connection; the rows of each statement."""
    ctx = _Context(inputs, now or dt.datetime.now(dt.timezone.utc), [], [])
    results: list[list[dict[str, Any]]] = []
    try:
        with conn.cursor() as cur:
            for step in plan.steps:
                bound = bind(step, ctx)
                if trace is not None:
                    trace.append((step.sql, bound))
                if step.more:
                    others = [bind(Step(step.sql, binds), ctx) for binds in step.more]
                    ctx.current = bound
                    cur.executemany(step.sql, [bound, *others])
                else:
                    cur.execute(step.sql, bound, prepare=True)
                if cur.description:
                    names = [c.name for c in cur.description]
                    fetched = [dict(zip(names, r)) for r in cur.fetchall()]
                    ctx.rows.append(fetched[0] if fetched else None)
                    results.append(fetched)
                else:
                    ctx.rows.append(None)
                ctx.params.append(bound)
        conn.commit() if plan.commit else conn.rollback()
    except BaseException:
        conn.rollback()
        raise
    return results


def document_bytes(results: list[list[dict[str, Any]]], keyring: Any, store: Any) -> bytes:
    """What a download does beside its statements, with the app's own primitives: the sealed bytes from the
    blob store, the patient's data key unwrapped by the master key, AES-GCM opened under the document's
    context, the sha256 checked. ``results``: the rows of the download's statements (the document's, and
    the patient's wrapped key)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from backend.blobs import document_key
    from backend.records.documents.content import content_context
    from backend.records.crypto import NONCE, unwrap

    doc = next(rows[0] for rows in results if rows and "sha256" in rows[0] and "patient_id" in rows[0])
    wrapped = next(rows[0] for rows in results if rows and "wrapped" in rows[0])
    sealed = store.get(document_key(doc["id"]))
    key = unwrap(keyring.by_id(wrapped["master_key_id"]), doc["patient_id"], wrapped["wrapped"])
    content = AESGCM(key).decrypt(sealed[:NONCE], sealed[NONCE:], content_context(doc["id"]).encode())
    if hashlib.sha256(content).hexdigest() != doc["sha256"]:
        raise RuntimeError(f"document {doc['id']} does not match its hash")
    return content


class Floor:
    """The WSGI application: one psycopg connection per thread, the plans loaded once. A download also
    needs the app's keyring and blob store (``keyring``, ``store``)."""

    def __init__(self, plans: dict[str, Plan], dsn: str, keyring: Any = None, store: Any = None) -> None:
        self.plans = plans
        self.dsn = dsn
        self.keyring, self.store = keyring, store
        self.local = threading.local()
        from flask.json.provider import _default

        self.default = _default

    def connection(self) -> Any:
        conn = getattr(self.local, "conn", None)
        if conn is None or conn.closed:
            import psycopg

            conn = self.local.conn = psycopg.connect(self.dsn, application_name=APPLICATION_NAME)
        return conn

    def close(self) -> None:
        """Close this thread's connection (gunicorn's workers simply exit)."""
        conn = getattr(self.local, "conn", None)
        if conn is not None:
            conn.close()
            self.local.conn = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        scenario = route(method, path)
        if scenario is None or scenario not in self.plans:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not a floor route"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        inputs = inputs_of(scenario, path, environ.get("QUERY_STRING", ""), environ, body)
        results = execute(self.connection(), self.plans[scenario], inputs)
        if scenario == "document download":
            content = document_bytes(results, self.keyring, self.store)
            start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                      ("Content-Length", str(len(content)))])
            return [content]
        # the app's JSON: Flask's provider (ensure_ascii off, sorted keys, its default for dates and decimals)
        payload = json.dumps({"results": results}, default=self.default, ensure_ascii=False,
                             sort_keys=True).encode()
        status = "201 Created" if method == "POST" else "200 OK"
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
        return [payload]


def save(plans: dict[str, Plan], path: str) -> None:
    with open(path, "wb") as out:
        pickle.dump(plans, out)


def load(path: str) -> dict[str, Plan]:
    with open(path, "rb") as stream:
        return pickle.load(stream)  # noqa: S301 (written by bench/load.py on this machine, read back by it)


def psycopg_dsn(url: str) -> str:
    return re.sub(r"^postgresql\+psycopg://", "postgresql://", url)


def serve(plan_path: str, dsn: str, host: str, port: int, workers: int, threads: int) -> None:
    """gunicorn with the app's production settings (backend/tools/production.py, backend/tools/cli.py `serve`)."""
    from gunicorn.app.base import BaseApplication

    from backend import create_app
    from backend.tools.production import prepare_server

    app = create_app()
    settings = {k: v for k, v in prepare_server(app, threads=threads).items() if k != "post_fork"}
    floor = Floor(load(plan_path), dsn, app.extensions["carnet.keyring"], app.extensions["carnet.blobs"])

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            # as `carnet serve`: gthread workers, no access log, no control socket
            for key, value in {"bind": f"{host}:{port}", "workers": workers, "threads": threads,
                               "worker_class": "gthread", "accesslog": None, "graceful_timeout": 5,
                               "control_socket_disable": True, **settings}.items():
                self.cfg.set(key, value)

        def load(self) -> Floor:
            return floor

    Server().run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="serve the floor for a plan file (bench/load.py starts it)")
    run.add_argument("--plan", required=True)
    run.add_argument("--dsn", required=True)
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, required=True)
    run.add_argument("--workers", type=int, default=2)
    run.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    serve(args.plan, args.dsn, args.host, args.port, args.workers, args.threads)


if __name__ == "__main__":
    main()
