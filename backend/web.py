"""What every API blueprint shares: the smorest Api (OpenAPI + problem+json), authentication of the
patient's bearer token through flask-login, the request's settings, throttle and client address, and the
one door every text of a request comes through (``CarnetRequest``: see ``backend.text``)."""
from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import quote

import marshmallow as ma
from flask import Flask, Response, current_app, g, request
from flask.wrappers import Request
from flask_login import LoginManager, current_user
from flask_smorest import Api as SmorestApi
from flask_smorest import Blueprint as SmorestBlueprint
from flask_smorest.fields import Upload as SmorestUpload
from webargs.flaskparser import FlaskParser
from werkzeug.datastructures import CombinedMultiDict, FileStorage
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from backend import cursors, text
from backend.accounts.service import AccountSettings, check_token, touch
from backend.accounts.models import AccountState, AuthToken, Patient, TokenKind
from backend.db import ROW_ID_MAX, get_session, utcnow
from backend.errors import DomainError, Forbidden, Unauthorized, http_exception_response
from backend.records.access.authorize import authorize, authorize_write
from backend.records.access.policy import Action, Actor, Area, acting_actor
from backend.throttle import Throttle


class ProblemSchema(ma.Schema):
    type = ma.fields.String()
    title = ma.fields.String()
    status = ma.fields.Integer()
    detail = ma.fields.String(metadata={"description": "Human sentence, French by default (Accept-Language)."})
    code = ma.fields.String(metadata={"description": "Stable machine-readable code."})
    errors = ma.fields.List(ma.fields.Dict())


class Api(SmorestApi):
    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error: HTTPException) -> Response:  # type: ignore[override]
        return http_exception_response(error)

    def _register_responses(self) -> None:
        """flask-smorest's error responses, documented as the application/problem+json they are sent as."""
        import http

        from flask_smorest.utils import prepare_response

        from backend.errors import PROBLEM_MIME

        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_MIME)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Default error response", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_MIME)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)


class MultipartParser(FlaskParser):
    """Adds the ``multipart`` location: a multipart/form-data body's fields and files read as one.

    webargs reads ``form`` and ``files`` apart, and flask-smorest documents a single request body: with one
    argument for each, the form half was left as OAS2 ``in: formData`` parameters, invalid in OpenAPI 3.
    One schema for the whole body documents it as the ``requestBody`` it is."""

    __location_map__ = {**FlaskParser.__location_map__, "multipart": "load_multipart"}

    def load_multipart(self, req: Any, schema: ma.Schema) -> Any:
        return self._makeproxy(CombinedMultiDict([req.form, req.files]), schema)


class Upload(SmorestUpload):
    """A file of a ``multipart`` body: a text field sent under the file's name is refused, not taken for it."""

    default_error_messages = {"invalid": "Not a file."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> FileStorage:
        if not isinstance(value, FileStorage):
            raise self.make_error("invalid")
        return value


class Blueprint(SmorestBlueprint):
    """A flask-smorest Blueprint that knows ``@blp.arguments(Schema, location="multipart")``."""

    ARGUMENTS_PARSER = MultipartParser()
    DEFAULT_LOCATION_CONTENT_TYPE_MAPPING = {**SmorestBlueprint.DEFAULT_LOCATION_CONTENT_TYPE_MAPPING,
                                             "multipart": "multipart/form-data"}


login_manager = LoginManager()


# --- the one door for text ---------------------------------------------------------------------------------
# Every text a request carries reaches the app through this request class or the check before each request:
# JSON bodies when they are read (whoever reads them: webargs, the FHIR API, flask's get_json), form and
# multipart fields and file names when they are parsed (after a blueprint has set its own size limit), query
# arguments and path segments before the view. A refused character is a 422 naming the field (FHIR routes
# render it as an OperationOutcome through their own DomainError handler).

JSON_MIMETYPES = {"application/json", "application/fhir+json", "application/json+fhir"}
# bytes that can only come from a refused character: an escape (\u0000, \ud800…), a raw DEL or C1 control
_SUSPECT_JSON = re.compile(rb"\\u|\x7f|\xc2[\x80-\x9f]")


def invalid_characters(found: text.BadCharacter) -> DomainError:
    params = {"field": found.field, "what": found.what_fr, "what_en": found.what_en}
    return DomainError("invalid_characters", 422, errors=[
        {"field": found.field, "message_code": "invalid_characters", "params": params}],
        field=found.field, what=found.what_fr, what_en=found.what_en)


def check_json_body(raw: bytes) -> None:
    if not _SUSPECT_JSON.search(raw):
        return  # the common case, a scan of the bytes: no JSON document can hold a refused character without
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return  # not JSON: its reader refuses it, with its own words
    found = text.find_in_json(document)
    if found is not None:
        raise invalid_characters(found)


def check_fields(pairs: Any, prefix: str = "", *, multiline: bool) -> None:
    """(name, value) pairs of a query string, a form or a path."""
    for name, value in pairs:
        codepoint = text.bad_character(str(name), multiline=False)  # a name is one line
        if codepoint is None and isinstance(value, str):
            codepoint = text.bad_character(value, multiline=multiline)
        if codepoint is not None:
            raise invalid_characters(text.BadCharacter(text.printable(f"{prefix}{name}"), codepoint))


class CarnetRequest(Request):
    _carnet_json_checked = False

    def get_data(self, cache: bool = True, as_text: bool = False,  # type: ignore[override]
                 parse_form_data: bool = False) -> Any:
        data = super().get_data(cache=cache, as_text=as_text,  # type: ignore[call-overload]  # as_text: any bool
                                parse_form_data=parse_form_data)
        if not self._carnet_json_checked and (self.is_json or self.mimetype in JSON_MIMETYPES):
            check_json_body(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))
            self._carnet_json_checked = cache
        return data

    def _load_form_data(self) -> None:
        super()._load_form_data()
        check_fields(self.form.items(multi=True), multiline=True)
        check_fields(((name, upload.filename or "") for name, upload in self.files.items(multi=True)),
                     multiline=False)


# --- headers on every answer -----------------------------------------------------------------------------------

HSTS = "max-age=63072000; includeSubDomains"  # two years (hstspreload.org's floor is one)
# Nothing this server sends is a page to run: anything that is not JSON (documents, images, calendars, exports,
# ITI-68's bytes) is sandboxed, loads nothing and is never framed.
INERT_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; sandbox"
JSON_CSP = "default-src 'none'; frame-ancestors 'none'"


def _is_json(mimetype: str) -> bool:
    return mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))


def json_answer(body: Any, status: int = 200) -> Response:
    """A JSON answer already in its JSON form, with the app's JSON provider: for the few hot routes that skip
    their response schema's dump (the schema still documents them; a test holds each answer to it)."""
    response = current_app.json.response(body)  # the app's response class, as jsonify() makes it
    response.status_code = status
    return cast(Response, response)


def binary(description: str, media_types: Iterable[str]) -> dict[str, Any]:
    """The OpenAPI response of a route that answers raw bytes: one entry per type it may be served as
    (OpenAPI 3 requires the description)."""
    schema = {"type": "string", "format": "binary"}
    return {"description": description, "content": {media: {"schema": schema} for media in sorted(media_types)}}


def disposition(filename: str | None = None, *, inline: bool = False) -> str:
    """The ``Content-Disposition`` of a file the API serves: the name in ASCII (quoted, without quotes or
    backslashes) for old clients, and whole in RFC 5987's ``filename*`` (UTF-8, percent-encoded)."""
    kind = "inline" if inline else "attachment"
    if not filename:
        return kind
    simple = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode("ascii")
    simple = simple.replace('"', "").replace("\\", "") or "document"
    return f"{kind}; filename=\"{simple}\"; filename*=UTF-8''{quote(filename, safe='')}"


def security_headers(response: Response) -> Response:
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    policy = headers.get("Content-Security-Policy")
    if policy is None:
        headers["Content-Security-Policy"] = JSON_CSP if _is_json(response.mimetype or "") else INERT_CSP
    elif "frame-ancestors" not in policy:
        headers["Content-Security-Policy"] = f"{policy}; frame-ancestors 'none'"
    # over TLS (or behind a proxy that says so, when CARNET_PROXY_FIX_COUNT trusts it): browsers keep to https
    if request.is_secure:
        headers["Strict-Transport-Security"] = HSTS
    return response


def _check_query_and_path() -> None:
    check_fields(request.args.items(multi=True), multiline=False)
    check_fields((request.view_args or {}).items(), multiline=False)


class DatabaseInt(IntegerConverter):
    """``<int:…>`` path segments that fit the database's INTEGER ids (32-bit on PostgreSQL): a larger one is
    a 404, not an out-of-range or overflow error in the driver."""

    def __init__(self, map: Any, fixed_digits: int = 0, min: int | None = None, max: int | None = ROW_ID_MAX,
                 signed: bool = False) -> None:
        super().__init__(map, fixed_digits, min, max, signed)


def init_app(app: Flask) -> None:
    app.config.setdefault("API_TITLE", "Carnet patient API")
    app.config.setdefault("API_VERSION", "v1")
    app.config.setdefault("OPENAPI_VERSION", "3.0.3")
    app.config.setdefault("OPENAPI_URL_PREFIX", "/api")
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    api = Api(app, spec_kwargs={"info": {"description": "Backend-for-frontend of the Carnet mobile app. "
                                         "Errors are application/problem+json."}})
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    app.extensions["carnet.api"] = api
    app.url_map.converters["int"] = DatabaseInt
    app.request_class = CarnetRequest
    app.before_request(_check_query_and_path)
    app.after_request(security_headers)
    login_manager.init_app(app)
    from backend.db import get_db

    app.extensions["carnet.throttle"] = Throttle(str(app.config["SECRET_KEY"]),
                                                 app.config["LOGIN_FAILURES_PER_ACCOUNT"],
                                                 app.config["LOGIN_FAILURES_PER_ADDRESS"], get_db(app).engine)
    app.extensions["carnet.account_settings"] = AccountSettings.from_config(app.config)


@login_manager.request_loader
def _load_patient_from_bearer(req: Any) -> Patient | None:
    token, why = check_token(get_session(), bearer(), (TokenKind.ACCESS,), idle=settings().session_idle)
    if token is None:
        g.session_refusal = why  # said to the app: it takes the patient back to sign-in with this sentence
        return None
    if touch(token):
        get_session().commit()
    g.access_token = token
    return token.patient


def bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def settings() -> AccountSettings:
    return current_app.extensions["carnet.account_settings"]


def throttle() -> Throttle:
    return current_app.extensions["carnet.throttle"]


def client_address() -> str | None:
    return request.remote_addr


def now() -> dt.datetime:
    return utcnow()


F = TypeVar("F", bound=Callable[..., Any])


def patient_required(fn: F) -> F:
    """Two factors given and the account active: the only door to health data. Then the record the request
    acts in is resolved once (``RECORD_HEADER``): the signed-in account's own, or a child's or a helped
    person's, and the policy decides the read for that actor before the route runs (a write is decided by
    ``@writes``; a change without it is the holder's alone)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _require_session()
        acting = _resolve_acting()
        if acting.actor.kind != "patient":
            _decide_acting(acting, getattr(fn, "_carnet_write", None))
        return fn(*args, **kwargs)

    wrapper._carnet_auth = "patient"  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def account_required(fn: F) -> F:
    """The signed-in account itself, whatever record the app has open (the family space's own routes: which
    spaces, invitations, links). ``RECORD_HEADER`` is not read."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _require_session()
        g.carnet_acting = Acting(current_user, current_user, Actor.patient(current_user.id))  # type: ignore[arg-type]
        return fn(*args, **kwargs)

    wrapper._carnet_auth = "patient"  # type: ignore[attr-defined]
    wrapper._carnet_account_only = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def _require_session() -> None:
    if not current_user.is_authenticated:
        raise session_refused()
    if current_user.state != AccountState.ACTIVE:
        raise Forbidden("account_closed")


# --- acting in another record (backend.family) ------------------------------------------------------------
# The app names the record it has open with this header (the holder's patient id, as ``/api/v1/family/spaces``
# lists them); absent, or the account's own id, it is the account's own record. Resolved once per request into
# the acting person, the record and the kind of actor, so every route works for a representative or a carer
# through the same decision point (``records.access.policy``).

RECORD_HEADER = "X-Carnet-Record"

# The part of the record each blueprint reads (a carer reads only the areas the patient chose).
BLUEPRINT_AREAS = {"record_documents": Area.DOCUMENTS, "record_export": Area.ACCOUNT,  # the whole record: never a carer's
                   "record_profile": Area.PROFILE, "agenda": Area.AGENDA, "inbox": Area.MESSAGES,
                   "record_access": Area.ACCESS, "notifications": Area.NOTIFICATIONS,
                   "catalog": Area.CATALOGUE, "accounts": Area.ACCOUNT}
# Routes whose own code asks the policy for the read (and traces it): not traced twice.
_AUTHORIZED_BY_ROUTE = (Area.DOCUMENTS, Area.PROFILE)


@dataclass(frozen=True)
class Acting:
    account: Patient   # who is signed in
    holder: Patient    # whose record the request acts in
    actor: Actor       # who they are in it (policy.Actor: patient, representative, carer)


def _resolve_acting() -> Acting:
    found = g.get("carnet_acting")
    if found is not None:
        return found
    account: Patient = current_user  # type: ignore[assignment]
    raw = (request.headers.get(RECORD_HEADER) or "").strip()
    acting = Acting(account, account, Actor.patient(account.id))
    if raw and raw != str(account.id):
        if not raw.isdigit() or len(raw) > 9:
            raise Forbidden("access_other_patient")
        session = get_session()
        actor = acting_actor(session, account.id, int(raw))
        holder = session.get(Patient, int(raw)) if actor is not None else None
        if actor is None or holder is None:
            raise Forbidden("access_other_patient")
        acting = Acting(account, holder, actor)
        from backend.audit.service import act_as

        act_as(session, actor.kind, account.id, holder.id)
    g.carnet_acting = acting
    return acting


def _decide_acting(acting: Acting, write: Action | None) -> None:
    """A representative's or a carer's request: a read decided (and traced) for the route's area; a change
    that is not a declared write is refused (it would be the holder's alone)."""
    session = get_session()
    area = BLUEPRINT_AREAS.get(request.blueprint or "", Area.ACCOUNT)
    if write is not None:
        return  # @writes decides it for this actor
    if request.method not in ("GET", "HEAD"):
        authorize_write(session, acting.actor, acting.holder.id, Action.ACCOUNT)  # refused: not the holder
    if area in _AUTHORIZED_BY_ROUTE:
        from backend.records.access.policy import decide

        decision = decide(session, acting.actor, acting.holder.id, area=area)
        if decision.allowed:
            return
    authorize(session, acting.actor, acting.holder.id, f"{area.value}.read", area=area,
              details={"endpoint": request.endpoint})


def public(fn: F) -> F:
    """Declares that an endpoint needs no patient session (it authenticates otherwise, or not at all)."""
    fn._carnet_auth = "public"  # type: ignore[attr-defined]
    return fn


def session_refused() -> Unauthorized:
    """401 saying why there is no session: none given, revoked, past its lifetime, or idle too long."""
    why = g.get("session_refusal", "unauthorized")
    cfg = settings()
    header = 'Bearer error="invalid_token"' if why != "unauthorized" else "Bearer"
    return Unauthorized(why, headers={"WWW-Authenticate": header},
                        hours=int(cfg.access_token_ttl.total_seconds() // 3600),
                        minutes=int(cfg.session_idle.total_seconds() // 60))


def current_patient() -> Patient:
    """The holder of the record this request acts in: the signed-in account, or the child or the person
    helped named by ``RECORD_HEADER``."""
    return _resolve_acting().holder if current_user.is_authenticated else current_user  # type: ignore[return-value]


def current_account() -> Patient:
    """The signed-in account (the person acting), whatever record is open."""
    return current_user  # type: ignore[return-value]


def current_actor() -> Actor:
    """Who acts in the record through this session: the holder, a minor's legal representative, or a carer
    (``records.access.policy`` decides what each may read and write)."""
    return _resolve_acting().actor


def writes(action: Action) -> Callable[[F], F]:
    """Declares the write a patient route makes, and has the policy decide it (``policy.WRITE_RULES``) for
    the acting person before the route runs; a refusal is traced and answered 403. Goes under
    ``@patient_required``. The suite fails on a patient route that changes something without it."""
    if not isinstance(action, Action):
        raise TypeError(f"{action!r} is not a records.access.policy.Action")

    def decorate(fn: F) -> F:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                raise Unauthorized("unauthorized", headers={"WWW-Authenticate": "Bearer"})
            acting = _resolve_acting()
            authorize_write(get_session(), acting.actor, acting.holder.id, action)
            return fn(*args, **kwargs)

        wrapper._carnet_write = action  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def current_access_token() -> AuthToken:
    return g.access_token


PAGE_MAX = 100


class PageArgs(ma.Schema):
    limit = ma.fields.Integer(load_default=20, validate=ma.validate.Range(min=1, max=PAGE_MAX))
    cursor = ma.fields.String(load_default=None)


def page_of(item: type[ma.Schema], name: str, **fields: ma.fields.Field) -> type[ma.Schema]:
    """The schema of one page of a listing (microblog-api's paginated response is the model): ``items``,
    the opaque ``next_cursor`` (null on the last page), then the listing's own ``fields``; ``name`` is
    its name in the OpenAPI document."""
    return ma.Schema.from_dict({"items": ma.fields.List(ma.fields.Nested(item)),
                                "next_cursor": ma.fields.String(allow_none=True), **fields}, name=name)


def encode_cursor(value: int) -> str:
    """A listing's position that is one integer (an id, an offset), in the one cursor format."""
    return cursors.encode(value)


def decode_cursor(raw: str | None) -> int | None:
    """Opaque cursors; a forged or damaged one is refused with a reason (422)."""
    return cursors.decode(raw, cursors.integer)
