"""The one FHIR layer: what every blueprint speaking FHIR R4 shares, written once.

A feature serving FHIR resources builds a :class:`FhirBlueprint` and declares each route with the FHIR
interaction it implements (``read``, ``search-type``, ``create``, ``update``, ``delete``, an operation, the
system ``transaction``). Registering the blueprint then installs, for its base (``/fhir/R4``, or the
connected services' ``/api/service/v1/fhir``):

- the error shape: every error answered under the base, whoever raises it — a view, an unknown path or
  method, a database outage — is an ``OperationOutcome`` in ``application/fhir+json``
  (``backend.errors.register_error_shape``, the one place that decides the shape of an error);
- content negotiation: JSON only; ``_format`` or an ``Accept`` the server cannot produce is a 406, a body
  that is not FHIR JSON a 415 (:func:`json_body`);
- authentication: the blueprint's authenticator (the professional's bearer token by default,
  ``backend.fhir.auth.professional_required``) wraps every route not declared public;
- the CapabilityStatement contribution: each declared interaction, search parameter and operation is what
  ``GET [base]/metadata`` says the server does (``backend.fhir.capability``).

Links (``Bundle.link``, ``fullUrl``, ``Location``) are built from the configured public base URL
(``CARNET_PUBLIC_BASE_URL``, or ``CARNET_FHIR_BASE_URL`` for ``/fhir/R4``), never from the request's Host.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from urllib.parse import urlencode
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import RequestEntityTooLarge

from backend import web
from backend.db import ROW_ID_MAX
from backend.errors import DomainError, register_error_shape
import backend.fhir.messages  # noqa: F401  (the diagnostics texts)
from backend.i18n import message

F = TypeVar("F", bound=Callable[..., Any])

FHIR_MIME = "application/fhir+json"
FHIR_CONTENT_TYPE = f"{FHIR_MIME}; charset=utf-8"
R4_BASE = "/fhir/R4"
CARNET = "https://carnet.example/fhir"  # canonical base of this server's own definitions (codes, extensions)
ERROR_SYSTEM = f"{CARNET}/CodeSystem/carnet-error"
JSON_BODY_TYPES = frozenset({"application/fhir+json", "application/json", "application/json+fhir"})
JSON_FORMATS = frozenset({"json", "application/json", "application/fhir+json", "application/json+fhir"})
FORM = "application/x-www-form-urlencoded"
BASES = "carnet.fhir_bases"

ISSUE_CODES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
               406: "not-supported", 409: "conflict", 412: "conflict", 413: "too-costly", 415: "not-supported",
               422: "processing", 429: "throttled", 503: "transient"}
CODE_ISSUES = {"document_unique_id_conflict": "duplicate", "fhir_unknown_patient": "not-found",
               "access_no_record": "not-found", "fhir_mhd_rule": "business-rule", "fhir_hash_mismatch": "value",
               "fhir_size_mismatch": "value", "fhir_submission_conflict": "duplicate"}
# a refusal whose FHIR status differs from the patient API's: no record is "not found" to a FHIR client
FHIR_STATUS = {"access_no_record": 404}


# --- responses --------------------------------------------------------------------------------------------

def fhir_response(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")), status=status,
                        content_type=FHIR_CONTENT_TYPE)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def operation_outcome(status: int, code: str, detail: str, severity: str = "error") -> dict[str, Any]:
    """One issue: its FHIR issue type from the status (or the code), our stable code in ``details``."""
    issue_code = CODE_ISSUES.get(code) or ISSUE_CODES.get(status, "exception" if status >= 500 else "processing")
    if severity == "information":
        issue_code = "informational"
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": severity, "code": issue_code, "diagnostics": detail,
                       "details": {"coding": [{"system": ERROR_SYSTEM, "code": code}], "text": detail}}]}


def information(code: str, **params: Any) -> Response:
    """A 200 OperationOutcome saying what an operation did (``$end``…)."""
    return fhir_response(operation_outcome(200, code, message(code, **params), severity="information"))


def _error_shape(status: int, code: str, detail: str, errors: Any, headers: dict[str, str]) -> Response:
    status = FHIR_STATUS.get(code, status)
    if errors:
        detail = (detail + " " + "; ".join(
            f"{e.get('field')} : {e.get('message')}" if isinstance(e, dict) and e.get("field") else
            str(e.get("message") if isinstance(e, dict) else e) for e in errors)).strip()
    headers.pop("Content-Type", None)
    return fhir_response(operation_outcome(status, code, detail), status, headers)


# --- where links point ----------------------------------------------------------------------------------

def public_base_url(prefix: str = R4_BASE) -> str:
    """``<public base><prefix>/`` from the configuration: a forged Host header never reaches a link."""
    if prefix == R4_BASE and current_app.config.get("FHIR_BASE_URL"):
        return str(current_app.config["FHIR_BASE_URL"]).rstrip("/") + "/"
    return str(current_app.config["PUBLIC_BASE_URL"]).rstrip("/") + prefix + "/"


def base_url() -> str:
    """The public base of the FHIR base the current request is under (``…/fhir/R4/``)."""
    for prefix in current_app.extensions.get(BASES, {}):
        if request.path == prefix or request.path.startswith(prefix + "/"):
            return public_base_url(prefix)
    return public_base_url()


# --- reading requests -------------------------------------------------------------------------------------

def params() -> MultiDict[str, str]:
    """The search parameters: the query string, plus the form body of a ``POST [type]/_search``."""
    if request.method == "POST" and request.mimetype == FORM:
        merged: MultiDict[str, str] = MultiDict(request.args)
        for key, value in request.form.items(multi=True):
            merged.add(key, value)
        return merged
    return request.args


def json_body(max_bytes: int, *, too_large: tuple[str, dict[str, Any]] | None = None) -> Any:
    """The request's FHIR JSON body: 415 for another media type, 413 past ``max_bytes``, 400 unreadable."""
    if request.mimetype not in JSON_BODY_TYPES:
        raise DomainError("fhir_unsupported_media_type", 415)
    request.max_content_length = max_bytes
    try:
        raw = request.get_data(cache=False)
    except RequestEntityTooLarge:
        code, values = too_large or ("fhir_too_large", {"limit": max_bytes})
        raise DomainError(code, 413, **values) from None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise DomainError("fhir_invalid_json", 400) from None


def invalid_search(reason: str) -> DomainError:
    return DomainError("fhir_invalid_search", 400, reason=reason)


def page_size(default: int = 20, maximum: int = web.PAGE_MAX) -> int:
    raw = params().get("_count")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise invalid_search(f"_count : entier de 1 à {maximum} attendu")
    return int(raw)


def cursor() -> int | None:
    """The opaque ``_cursor`` of a next link (a row position), or None; a forged one is a 400."""
    raw = params().get("_cursor")
    if raw is None:
        return None
    try:
        value = web.decode_cursor(raw)
    except DomainError:
        value = None
    if value is None or not 0 < value <= ROW_ID_MAX:
        raise invalid_search("_cursor")
    return value


def page_links(path: str, next_position: int | None) -> tuple[str, str | None]:
    """``self`` and ``next`` links of a search page: the request's parameters (query or form) under the
    public base; ``next`` carries the opaque ``_cursor``."""
    args = [(k, v) for k, v in params().items(multi=True) if k != "_cursor"]
    self_link = f"{base_url()}{path}" + (f"?{urlencode(args)}" if args else "")
    next_link = None
    if next_position is not None:
        next_link = f"{base_url()}{path}?{urlencode([*args, ('_cursor', web.encode_cursor(next_position))])}"
    return self_link, next_link


def wants_json() -> bool:
    """What the client accepts, for a route that serves raw bytes too (ITI-68 Binary): FHIR JSON when
    ``_format`` asks for it."""
    return request.args.get("_format") in JSON_FORMATS


def _acceptable() -> bool:
    wanted = request.args.get("_format")
    if wanted is not None:
        return wanted in JSON_FORMATS
    if not request.headers.get("Accept"):
        return True
    accept = request.accept_mimetypes
    return any(accept.quality(m) > 0 for m in (FHIR_MIME, "application/json", "application/json+fhir"))


def _negotiate() -> Response | None:
    """JSON is the one format served: a ``_format`` or ``Accept`` asking for another (XML…) is a 406."""
    view = current_app.view_functions.get(request.endpoint or "")
    if getattr(view, "_fhir_raw", False):
        # raw content (ITI-68): the view chooses between the bytes and a FHIR Binary; only _format binds it
        if request.args.get("_format") is not None and request.args["_format"] not in JSON_FORMATS:
            raise DomainError("fhir_not_acceptable", 406)
        return None
    if not _acceptable():
        raise DomainError("fhir_not_acceptable", 406)
    return None


# --- declaring what a base does ---------------------------------------------------------------------------

@dataclass
class SearchParam:
    name: str
    type: str               # token | reference | date | string | number | uri
    documentation: str
    definition: str | None = None

    def statement(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.definition:
            out["definition"] = self.definition
        out["documentation"] = self.documentation
        return out


@dataclass
class ResourceCapability:
    """One ``CapabilityStatement.rest.resource``: filled by the interactions declared for the type."""

    type: str
    profile: str | None = None
    supported_profiles: list[str] = field(default_factory=list)
    documentation: str | None = None
    interactions: list[dict[str, str]] = field(default_factory=list)
    search_params: list[SearchParam] = field(default_factory=list)
    operations: list[dict[str, str]] = field(default_factory=list)

    def merge(self, other: ResourceCapability) -> None:
        self.profile = self.profile or other.profile
        self.supported_profiles += [p for p in other.supported_profiles if p not in self.supported_profiles]
        if other.documentation and other.documentation != self.documentation:
            self.documentation = " ".join(filter(None, (self.documentation, other.documentation)))
        self.interactions += other.interactions
        self.search_params += other.search_params
        self.operations += other.operations

    def statement(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.profile:
            out["profile"] = self.profile
        if self.supported_profiles:
            out["supportedProfile"] = list(self.supported_profiles)
        if self.documentation:
            out["documentation"] = self.documentation
        out["interaction"] = [dict(i) for i in self.interactions]
        if any(i["code"] in ("read", "update", "delete") for i in self.interactions):
            out["versioning"] = "no-version"
            out["readHistory"] = False
        if any(i["code"] == "update" for i in self.interactions):
            out["updateCreate"] = False
        if self.search_params:
            out["searchParam"] = [p.statement() for p in self.search_params]
        if self.operations:
            out["operation"] = [dict(o) for o in self.operations]
        return out


@dataclass
class BaseCapability:
    """Everything registered under one FHIR base (several blueprints may serve it)."""

    prefix: str
    resources: dict[str, ResourceCapability] = field(default_factory=dict)
    system: list[dict[str, str]] = field(default_factory=list)
    extra_routes: list[str] = field(default_factory=list)   # documented non-FHIR paths (attachments' bytes)

    def add(self, resource: ResourceCapability) -> None:
        if resource.type in self.resources:
            self.resources[resource.type].merge(resource)
        else:
            self.resources[resource.type] = ResourceCapability(
                resource.type, resource.profile, list(resource.supported_profiles), resource.documentation,
                list(resource.interactions), list(resource.search_params), list(resource.operations))


def base_capability(app: Flask, prefix: str = R4_BASE) -> BaseCapability:
    return app.extensions.setdefault(BASES, {}).setdefault(prefix, BaseCapability(prefix))


_RESOURCE_PATH = re.compile(r"/([A-Z][A-Za-z]+)(/<[^>]+>)?(/\$[a-z-]+)?")


class FhirBlueprint(Blueprint):
    """A blueprint under a FHIR base whose routes are FHIR interactions (see the module docstring)."""

    def __init__(self, name: str, import_name: str, *, url_prefix: str = R4_BASE,
                 authenticate: Callable[[Any], Any] | None = None) -> None:
        super().__init__(name, import_name, url_prefix=url_prefix)
        self.prefix = url_prefix
        self.professional = authenticate is None
        if authenticate is None:
            from backend.fhir.auth import professional_required

            authenticate = professional_required
        self.authenticate = authenticate
        self.capability = BaseCapability(url_prefix)
        self.before_request(_negotiate)
        self.record_once(self._install)

    def _install(self, state: Any) -> None:
        app = state.app
        register_error_shape(app, self.prefix, _error_shape)
        if self.professional:
            from backend.fhir.auth import init_app as init_authenticator

            init_authenticator(app)  # the bearer-token authenticator, unless one is plugged in already
        base = base_capability(app, self.prefix)
        for resource in self.capability.resources.values():
            base.add(resource)
        base.system += self.capability.system
        base.extra_routes += self.capability.extra_routes

    def resource(self, type_: str, *, profile: str | None = None, supported_profiles: tuple[str, ...] = (),
                 documentation: str | None = None) -> None:
        """The resource-level part of the CapabilityStatement (profiles, what the type means here)."""
        self._resource(type_).merge(ResourceCapability(
            type_, profile or f"http://hl7.org/fhir/StructureDefinition/{type_}", list(supported_profiles),
            documentation))

    def _resource(self, type_: str) -> ResourceCapability:
        return self.capability.resources.setdefault(type_, ResourceCapability(type_))

    def _route(self, rules: list[tuple[str, str]], fn: F, *, public: bool, raw: bool,
               authenticate: Callable[[Any], Any] | None = None) -> F:
        view = web.public(fn) if public else (authenticate or self.authenticate)(fn)
        if raw:
            view._fhir_raw = True  # type: ignore[attr-defined]
        for rule, method in rules:
            self.add_url_rule(rule, view_func=view, methods=[method], endpoint=fn.__name__)
        return view  # type: ignore[no-any-return]

    def interaction(self, code: str, rule: str, *, documentation: str | None = None,
                    search: tuple[SearchParam, ...] = (), public: bool = False, raw: bool = False,
                    ) -> Callable[[F], F]:
        """A FHIR RESTful interaction at ``rule`` (``/Type``, ``/Type/<id>``): ``read``, ``search-type``
        (GET, and POST ``/Type/_search`` with a form body), ``create``, ``update``, ``delete``."""
        match = _RESOURCE_PATH.fullmatch(rule)
        shapes = {"read": ("GET", True), "vread": ("GET", True), "update": ("PUT", True),
                  "delete": ("DELETE", True), "create": ("POST", False), "search-type": ("GET", False)}
        if match is None or code not in shapes or match.group(3) or bool(match.group(2)) != shapes[code][1]:
            raise ValueError(f"{code} does not fit the rule {rule}")
        type_ = match.group(1)

        def register(fn: F) -> F:
            resource = self._resource(type_)
            entry = {"code": code}
            if documentation:
                entry["documentation"] = documentation
            resource.interactions.append(entry)
            resource.search_params += list(search)
            rules = [(rule, shapes[code][0])]
            if code == "search-type":
                rules.append((f"{rule}/_search", "POST"))
            return self._route(rules, fn, public=public, raw=raw)

        return register

    def operation(self, rule: str, *, definition: str, documentation: str) -> Callable[[F], F]:
        """``POST /Type/<id>/$name`` (instance) or ``POST /Type/$name`` (type): a named operation."""
        match = _RESOURCE_PATH.fullmatch(rule)
        if match is None or not match.group(3):
            raise ValueError(f"not an operation rule: {rule}")

        def register(fn: F) -> F:
            self._resource(match.group(1)).operations.append(
                {"name": match.group(3)[2:], "definition": definition, "documentation": documentation})
            return self._route([(rule, "POST")], fn, public=False, raw=False)

        return register

    def transaction(self, *, documentation: str, authenticate: Callable[[Any], Any] | None = None
                    ) -> Callable[[F], F]:
        """``POST [base]``: a transaction Bundle (IHE MHD ITI-65); ``authenticate`` replaces the blueprint's
        (ITI-65 lets the insurer's feed in too)."""
        def register(fn: F) -> F:
            self.capability.system.append({"code": "transaction", "documentation": documentation})
            return self._route([("", "POST"), ("/", "POST")], fn, public=False, raw=False,
                               authenticate=authenticate)

        return register

    def capabilities(self, fn: F) -> F:
        """``GET [base]/metadata``: the CapabilityStatement (public)."""
        return self._route([("/metadata", "GET")], fn, public=True, raw=False)

    def extra(self, rule: str, *, type_: str, raw: bool = True) -> Callable[[F], F]:
        """A GET path that is not a FHIR interaction (an attachment's bytes); the resource's documentation
        must name it (the CapabilityStatement test checks)."""
        def register(fn: F) -> F:
            self._resource(type_)
            self.capability.extra_routes.append(rule)
            return self._route([(rule, "GET")], fn, public=False, raw=raw)

        return register
