"""The authorization matrix's registry (tests/test_records_access_matrix.py runs it): the world every route
is called in, the values of every path parameter (``PARAMS``), and how each family of routes is called and what
it is (``ROUTES``); with the completeness checks a route added later must pass (a declared access policy, a
family, known path parameters), which tests/test_errors.py, the matrix and tests/test_fuzz_api.py run."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.world import sentinel_content, sentinel_title

# --- the world ------------------------------------------------------------------------------------------------

@dataclass
class World:
    owner_id: int
    owner_nir: str
    owner_oid: str
    owner_headers: dict[str, str]
    other_id: int
    other_nir: str
    other_oid: str
    other_headers: dict[str, str]
    docs: dict[str, int]                 # name → id (the owner's)
    other_doc: int                       # the other patient's only document
    pro_ids: dict[str, int]
    pro_rpps: dict[str, str]
    pro_tokens: dict[str, str]
    owner_device: int
    owner_notification: int
    family_headers: dict[str, dict[str, str]] = field(default_factory=dict)  # acting in the owner's record

    def sentinels(self) -> dict[str, list[bytes]]:
        """name → byte strings whose presence in a response means that document was shown."""
        out = {n: [sentinel_title(n, self.owner_id).encode(), sentinel_content(n, self.owner_id)] for n in self.docs}
        out["other"] = [sentinel_title("other", self.other_id).encode(), sentinel_content("other", self.other_id)]
        return out


# --- path parameters ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Value:
    value: Any
    doc: str | None = None      # an owner's document name, "other" for the other patient's document
    owned: bool = False         # belongs to the owner: the other patient must never succeed with it


def _doc_values(w: World) -> list[Value]:
    return [Value(i, doc=n, owned=True) for n, i in w.docs.items()] + [Value(w.other_doc, doc="other"),
                                                                       Value(987654)]


NEUTRAL_ID = [Value(987654)]

# Every path parameter of every route must be known here (by name).
PARAMS: dict[str, Callable[[World], list[Value]]] = {
    "document_id": _doc_values,
    "doc_id": _doc_values,
    "device_id": lambda w: [Value(w.owner_device, owned=True), Value(987654)],
    "notification_id": lambda w: [Value(w.owner_notification, owned=True), Value(987654)],
    "professional_id": lambda w: [Value(w.pro_ids["authorised"]), Value(w.pro_ids["administrator"])],
    "rpps": lambda w: [Value(w.pro_rpps["blocked"])],
    # identifiers of other features' objects (appointments, profile entries, measures, schedules…):
    # none is created here; the matrix checks they never reveal a document
    "appointment_id": lambda w: NEUTRAL_ID, "entry_id": lambda w: NEUTRAL_ID, "measure_id": lambda w: NEUTRAL_ID,
    "schedule_id": lambda w: NEUTRAL_ID, "number": lambda w: [Value(1)],
    "kind": lambda w: [Value("document")], "context": lambda w: [Value("end_of_life")],
    "code": lambda w: [Value("unknown")], "mtype": lambda w: [Value("weight")], "token": lambda w: [Value("x" * 32)],
    "anything": lambda w: [Value("Nothing/1")], "service_id": lambda w: NEUTRAL_ID,
    "thread_id": lambda w: NEUTRAL_ID, "message_id": lambda w: NEUTRAL_ID, "attachment_id": lambda w: NEUTRAL_ID,
    "list_id": lambda w: NEUTRAL_ID, "patient_id": lambda w: [Value(w.owner_id)],
    # the family space's links (the signed-in account's own; none made here): never a document
    "child_id": lambda w: NEUTRAL_ID, "link_id": lambda w: NEUTRAL_ID,
}

PARAM_RE = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def path_params(rule: str) -> list[str]:
    return PARAM_RE.findall(rule)


def expand(rule: str, world: World) -> Iterator[tuple[str, list[Value]]]:
    """Every URL of a rule: the product of its parameters' values."""
    names = path_params(rule)
    combos: list[list[Value]] = [[]]
    for name in names:
        combos = [c + [v] for c in combos for v in PARAMS[name](world)]
    for combo in combos:
        values = iter(combo)
        yield PARAM_RE.sub(lambda m: str(next(values).value), rule), combo


# --- the route registry ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Family:
    """How to call a family of routes and what they are."""

    pattern: str                 # regex on the rule
    policy: str                  # patient | professional | public
    role: str                    # record_read | record_write | release | not_record | pre_auth
    why: str = ""
    query: Callable[[World], list[dict[str, str]]] = lambda w: [{}]
    body: Callable[[World], Any] = lambda w: {}
    content_type: str = "application/json"

    def matches(self, rule: str, policy: str | None) -> bool:
        return policy == self.policy and re.fullmatch(self.pattern, rule) is not None


def _search_queries(w: World) -> list[dict[str, str]]:
    return [{"patient.identifier": f"urn:oid:{w.owner_oid}|{w.owner_nir}"},
            {"patient.identifier": f"urn:oid:{w.other_oid}|{w.other_nir}"}]


def _list_queries(w: World) -> list[dict[str, str]]:
    return [{**q, "code": "submissionset"} for q in _search_queries(w)]


EMPTY_TRANSACTION = {"resourceType": "Bundle", "type": "transaction", "entry": []}

ROUTES: list[Family] = [
    # the patient's own API: every route, automatically
    Family(r"/api/v1/.*", "patient", "record_read", "the patient's bearer; acts on their own record only"),
    # the professional API (IHE MHD)
    Family(r"/fhir/R4/DocumentReference(/_search)?", "professional", "record_read", "ITI-67", query=_search_queries),
    Family(r"/fhir/R4/List(/_search)?", "professional", "record_read", "ITI-66", query=_list_queries),
    Family(r"/fhir/R4/List/<list_id>", "professional", "record_read", "one SubmissionSet"),
    Family(r"/fhir/R4/Patient/<patient_id>", "professional", "record_read", "the record holder (INS, names)"),
    Family(r"/fhir/R4/Practitioner/<professional_id>", "professional", "not_record",
           "a professional's public identity (RPPS, name, profession)"),
    Family(r"/fhir/R4/DocumentReference/<doc_id>", "professional", "record_read", "one DocumentReference"),
    Family(r"/fhir/R4/Binary/<doc_id>", "professional", "record_read", "ITI-68"),
    Family(r"/fhir/R4/DocumentReference/<doc_id>/\$release", "professional", "release",
           "only the author releases", body=lambda w: None),
    Family(r"/fhir/R4/?", "professional", "record_write", "ITI-65: depositing needs no consent",
           body=lambda w: EMPTY_TRANSACTION, content_type="application/fhir+json"),
    # the agenda's FHIR API: not the record; checked for leaks only
    Family(r"/fhir/R4/(Schedule|Slot|Appointment)(/.*)?", "professional", "not_record",
           "the agenda's practice API (no record data)"),
    # the API of connected services (their own OAuth tokens): no patient or professional token opens it
    Family(r"/api/service/.*", "service", "service_api", "a connected service's token only"),
    # the inbox's professional side (FHIR Communication): not the record; checked for leaks only
    Family(r"/fhir/R4/Communication(/.*)?", "professional", "not_record", "the secure inbox (no record data)"),
    # public routes: each one named, with why it needs no session
    Family(r"/api/health", "public", "pre_auth", "liveness"),
    Family(r"/api/ready", "public", "pre_auth", "readiness: the database and Redis answer (load balancers)"),
    Family(r"/fhir/R4/metadata", "public", "pre_auth", "CapabilityStatement"),
    Family(r"/api/service/v1/fhir/metadata", "public", "pre_auth", "the connected services' CapabilityStatement"),
    Family(r"/fhir/R4/<path:anything>", "public", "pre_auth", "unknown FHIR paths answer an OperationOutcome"),
    Family(r"/api/v1/(password-policy|activation|activation/check|opposition|auth/login|auth/verify|"
           r"auth/otp/resend|auth/password-reset|auth/password-reset/confirm|mfa/enrol|mfa/confirm|account/reactivate)", "public", "pre_auth",
           "the account lifecycle before two factors"),
    Family(r"/api/v1/push/vapid-public-key", "public", "pre_auth", "the server's public push key"),
    Family(r"/api/v1/agenda/feed/<token>\.ics", "public", "pre_auth",
           "calendar feed authenticated by its secret token in the URL"),
    Family(r"/oauth/token", "public", "pre_auth", "connected services obtain their token (OAuth 2)"),
]


def rule_policies(app) -> Iterator[tuple[str, str, str | None]]:
    """(rule, method, declared policy) for every route, as tests/test_errors.py sees them."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule.startswith("/api/openapi"):
            continue
        view = app.view_functions[rule.endpoint]
        view_class = getattr(view, "view_class", None)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            handler = getattr(view_class, method.lower(), None) if view_class is not None else view
            yield rule.rule, method, getattr(handler, "_carnet_auth", None)


def family_of(rule: str, policy: str | None) -> Family | None:
    return next((f for f in ROUTES if f.matches(rule, policy)), None)


# --- the completeness checks ----------------------------------------------------------------------------------

def assert_every_route_declares_its_access_policy(app) -> None:
    """A route added without saying who may call it fails."""
    undeclared = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if rule.endpoint in {"static"} or rule.rule.startswith("/api/openapi"):
            continue
        view_class = getattr(view, "view_class", None)
        if view_class is not None:
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                handler = getattr(view_class, method.lower(), None)
                if getattr(handler, "_carnet_auth", None) is None:
                    undeclared.append(f"{method} {rule.rule}")
        elif getattr(view, "_carnet_auth", None) is None:
            undeclared.append(rule.rule)
    assert not undeclared, f"routes without a declared policy: {undeclared}"


def assert_every_route_is_in_the_matrix(app) -> None:
    """A route without a policy, without a family, or with an unknown path parameter fails."""
    problems = []
    for rule, method, policy in rule_policies(app):
        if family_of(rule, policy) is None:
            problems.append(f"{method} {rule} (policy {policy!r}): declare it in ROUTES of {__name__}")
        for name in path_params(rule):
            if name not in PARAMS:
                problems.append(f"{method} {rule}: path parameter {name!r} unknown: add it to PARAMS")
    assert not problems, "\n".join(problems)
