"""API fuzzing against the API's own contract: every operation of ``/api/openapi.json``, read when the
tests are collected (an operation added later is fuzzed without touching this file), called through
the real app with schemathesis-generated requests, valid and invalid, as a patient signed in with a real
session (activation, then the TOTP second factor).

Each response must not be a 5xx, must be of a content type the operation declares, and must match the
schema it declares for its status. Path parameters are sometimes the world's real objects (a deposited
document, this device, a notification…) so the fuzzing reaches past the 404s.

A third mode, hostile text: a valid request whose every string (every JSON field's value at any depth,
every query argument, string path parameter and multipart field) gets a character no text may hold — a
lone UTF-16 surrogate (JSON only: it cannot be sent any other way), a NUL, a control character, DEL, a C1
control; a request without any string gets one hostile query argument, so that no operation escapes. The
answer must be a 4xx (the input layer's 422 naming the field, or a refusal before it), never a 5xx nor a
success.

Bounds: ``CARNET_FUZZ_EXAMPLES`` examples per operation and generation mode (default 5 in CI; by hand:
``CARNET_FUZZ_EXAMPLES=200 .venv/bin/pytest tests/test_fuzz_api.py``).
"""
from __future__ import annotations

import dataclasses
import io
import itertools
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core import NOT_SET
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from tests.conftest import empty_database, make_app
from tests.helpers import activate, bearer, create_patient, make_nir

EXAMPLES = int(os.environ.get("CARNET_FUZZ_EXAMPLES", "5"))
SPEC_PATH = "/api/openapi.json"
METHODS = ("get", "put", "post", "delete", "patch")
CHECKS = [not_a_server_error, content_type_conformance, response_schema_conformance]


def _spec_operations() -> list[str]:
    """Every operation of the OpenAPI document, as "METHOD /path" (collection time, no database)."""
    app = make_app("sqlite://")
    spec = app.test_client().get(SPEC_PATH).get_json()
    return [f"{method.upper()} {path}" for path, item in spec["paths"].items() for method in item
            if method in METHODS]


OPERATIONS = _spec_operations()

# Operations whose fuzzing finds a bug still open, with the bug: strict, so the fix is noticed. A label may
# name the one database where it shows ("sqlite:POST /…").
KNOWN_BUGS: dict[str, str] = {}


def _params() -> Iterator[Any]:
    for label in OPERATIONS:
        yield pytest.param(label, id=label)


def _known_bug(label: str, backend: str) -> str | None:
    return KNOWN_BUGS.get(label) or KNOWN_BUGS.get(f"{backend}:{label}")


# --- the world: a patient with a real session, and a few real objects to aim at ------------------------

_serial = itertools.count(1)


@dataclass
class FuzzWorld:
    app: Flask
    schema: Any
    headers: dict[str, str] = field(default_factory=dict)
    known: dict[str, list[Any]] = field(default_factory=dict)   # path parameter → real values
    sessions: int = 0
    calls: int = 0
    operations: set[str] = field(default_factory=set)
    hostile: Counter[int] = field(default_factory=Counter)           # status → hostile requests answered so
    hostile_operations: set[str] = field(default_factory=set)

    def sign_in(self) -> None:
        """A new patient through activation and the TOTP second factor (the real ceremony)."""
        n = next(_serial)
        nir = make_nir(f"2840775{100 + n % 900:03d}{n // 900:03d}")
        created = create_patient(self.app, nir=nir, birth_date="1984-07-14", given="Fuzz", family="Essai")
        self.headers = bearer(activate(self.app.test_client(), created)["access_token"])
        self.sessions += 1

    def ensure_session(self) -> None:
        """A fuzzed call may have signed out, closed the account or changed the password: start again."""
        if self.app.test_client().get("/api/v1/me", headers=self.headers).status_code != 200:
            self.sign_in()


def _seed(world: FuzzWorld) -> None:
    client = world.app.test_client()
    headers = world.headers
    known: dict[str, list[Any]] = {}
    r = client.post("/api/v1/record/documents", headers=headers, content_type="multipart/form-data",
                    data={"file": (io.BytesIO(b"Compte rendu de test\n"), "cr.txt"),
                          "category": "CPT_REND", "title": "Compte rendu"})
    assert r.status_code == 201, r.get_json()
    known["document_id"] = [r.get_json()["id"]]
    devices = client.get("/api/v1/account/devices", headers=headers).get_json()
    known["device_id"] = [d["id"] for d in devices.get("items", devices if isinstance(devices, list) else [])]
    notes = client.get("/api/v1/notifications", headers=headers).get_json()
    known["notification_id"] = [n["id"] for n in notes.get("items", [])]
    known["number"] = [1]
    known["kind"] = ["allergy", "disease", "document", "treatment"]
    known["mtype"] = ["weight", "height"]
    known["context"] = ["end_of_life"]
    world.known = {k: v for k, v in known.items() if v}


@pytest.fixture(scope="module")
def fuzz_world(session_app: Flask) -> Iterator[FuzzWorld]:
    from backend.notifications.push import generate_vapid_private_pem

    empty_database(session_app)
    session_app.extensions["carnet.throttle"].reset_all()
    # push set up as in production (without it, the push routes answer 503 by design)
    notifications = session_app.extensions["carnet.notifications"]
    session_app.extensions["carnet.notifications"] = dataclasses.replace(
        notifications, vapid_private_key=generate_vapid_private_pem())
    schema = schemathesis.openapi.from_wsgi(SPEC_PATH, session_app)
    world = FuzzWorld(session_app, schema)
    world.sign_in()
    _seed(world)
    yield world
    server_errors = sum(n for status, n in world.hostile.items() if status >= 500)
    print(f"\nfuzzing: {len(world.operations)} operations, {world.calls} requests, {world.sessions} sessions "
          f"made through activation + TOTP; hostile text: {len(world.hostile_operations)} operations, "
          f"{sum(world.hostile.values())} requests, {server_errors} × 5xx, answers {dict(sorted(world.hostile.items()))}")
    session_app.extensions["carnet.notifications"] = notifications
    empty_database(session_app)


# --- hostile text --------------------------------------------------------------------------------------------

HOSTILE_JSON = ["\ud800", "\udbff", "\udc00", "\udfff", "\x00", "\x01", "\x08", "\x0b", "\x1b", "\x1f", "\x7f",
                "\x85", "\x9b"]
HOSTILE_WIRE = ["\x00", "\x01", "\x08", "\x0b", "\x1b", "\x1f", "\x7f"]  # query, path, form: sent as UTF-8


@st.composite
def _hostile(draw: Any, operation: Any, cases: st.SearchStrategy[Any], string_path_parameters: frozenset[str]) -> Any:
    case = draw(cases)
    poisoned = 0

    def poison(value: Any, alphabet: list[str]) -> Any:
        nonlocal poisoned
        if isinstance(value, str):
            poisoned += 1
            at = draw(st.integers(0, len(value)))
            return value[:at] + draw(st.sampled_from(alphabet)) + value[at:]
        if isinstance(value, dict):
            return {key: poison(item, alphabet) for key, item in value.items()}
        if isinstance(value, list):
            return [poison(item, alphabet) for item in value]
        return value

    body = case.body
    if body is not NOT_SET:
        body = poison(body, HOSTILE_JSON if "json" in (case.media_type or "") else HOSTILE_WIRE)
    query = poison(dict(case.query or {}), HOSTILE_WIRE)
    path_parameters = {name: poison(value, HOSTILE_WIRE) if name in string_path_parameters else value
                       for name, value in (case.path_parameters or {}).items()}
    if not poisoned:  # nothing to poison (no string in this request): every operation gets one all the same
        query["carnet_fuzz"] = "x" + draw(st.sampled_from(HOSTILE_WIRE))
    # a case of its own (no generation metadata: schemathesis would re-validate it against the schema, and a
    # lone surrogate cannot even be encoded for that)
    return "hostile", operation.Case(path_parameters=path_parameters, headers=dict(case.headers or {}),
                                     query=query, body=body, media_type=case.media_type,
                                     multipart_content_types=case.multipart_content_types)


def _strategy(world: FuzzWorld, label: str) -> st.SearchStrategy[Any]:
    method, path = label.split(" ", 1)
    operation = world.schema[path][method]
    names = [p.name for p in operation.path_parameters]
    fixed: list[dict[str, Any]] = [{}]
    if names and all(n in world.known for n in names):
        fixed += [dict(zip(names, values)) for values in itertools.product(*(world.known[n] for n in names))]
    strings = frozenset(p.name for p in operation.path_parameters
                        if (p.definition.get("schema") or p.definition).get("type") == "string")
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    generated = st.tuples(st.sampled_from(modes), st.sampled_from(fixed)).flatmap(
        lambda choice: operation.as_strategy(choice[0], path_parameters=choice[1] or None).map(
            lambda case: ("generated", case)))
    hostile = st.sampled_from(fixed).flatmap(lambda values: _hostile(
        operation, operation.as_strategy(GenerationMode.POSITIVE, path_parameters=values or None), strings))
    return st.one_of(generated, hostile)


@pytest.mark.parametrize("label", list(_params()))
def test_operation_holds_its_contract(fuzz_world: FuzzWorld, label: str, request: pytest.FixtureRequest) -> None:
    world = fuzz_world
    bug = _known_bug(label, world.app.extensions["carnet.db"].engine.dialect.name)
    if bug:
        request.applymarker(pytest.mark.xfail(strict=True, reason=bug))
    world.app.extensions["carnet.throttle"].reset_all()

    @settings(max_examples=EXAMPLES * 3, database=None, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(drawn=_strategy(world, label))
    def fuzz(drawn: Any) -> None:
        kind, case = drawn
        world.ensure_session()
        response = case.call(headers=dict(world.headers))
        world.calls += 1
        world.operations.add(label)
        if kind == "hostile":
            world.hostile[response.status_code] += 1
            world.hostile_operations.add(label)
            assert 400 <= response.status_code < 500, (label, response.status_code, response.text[:300])
        case.validate_response(response, checks=CHECKS)

    fuzz()


def test_every_api_route_is_fuzzed(app: Flask) -> None:
    """The fuzzed operations are the app's routes under /api/v1: none escapes by missing from the document."""
    import re

    fuzzed = set(OPERATIONS)
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = re.sub(r"<(?:[a-z]+:)?(\w+)>", r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if f"{method} {path}" not in fuzzed:
                missing.append(f"{method} {path}")
    assert not missing, f"routes the fuzzer does not reach (absent from {SPEC_PATH}): {missing}"


def test_a_route_added_without_a_policy_fails_the_suite(database_url: str) -> None:
    """The completeness checks really bite: a route with no declared policy fails both the policy test and
    the authorization matrix, and a declared but unknown one fails the matrix."""
    from backend.db import get_db
    from tests.access_matrix import assert_every_route_declares_its_access_policy, assert_every_route_is_in_the_matrix

    app = make_app(database_url)
    try:
        @app.get("/api/v1/sneaky/<int:thing_id>")
        def sneaky(thing_id: int) -> dict[str, int]:
            return {"thing": thing_id}

        with pytest.raises(AssertionError, match="sneaky"):
            assert_every_route_declares_its_access_policy(app)
        with pytest.raises(AssertionError, match="sneaky"):
            assert_every_route_is_in_the_matrix(app)
        sneaky._carnet_auth = "public"  # declared, but not in the matrix's list of public routes
        assert_every_route_declares_its_access_policy(app)
        with pytest.raises(AssertionError, match=r"sneaky.*policy 'public'"):
            assert_every_route_is_in_the_matrix(app)
    finally:
        get_db(app).engine.dispose()
