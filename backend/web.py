"""What every API blueprint shares: the smorest Api (OpenAPI + problem+json), authentication of the
patient's bearer token through flask-login, the request's settings, throttle and client address."""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import marshmallow as ma
from flask import Flask, Response, current_app, g, request
from flask_login import LoginManager, current_user
from flask_smorest import Api as SmorestApi
from flask_smorest import Blueprint as SmorestBlueprint
from flask_smorest.fields import Upload as SmorestUpload
from webargs.flaskparser import FlaskParser
from werkzeug.datastructures import CombinedMultiDict, FileStorage
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from backend.accounts import service as accounts
from backend.accounts.models import AccountState, AuthToken, Patient, TokenKind
from backend.db import get_session, utcnow
from backend.errors import Forbidden, Unauthorized, http_exception_response
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


class DatabaseInt(IntegerConverter):
    """``<int:…>`` path segments that fit the database's INTEGER ids (32-bit on PostgreSQL): a larger one is
    a 404, not an out-of-range or overflow error in the driver."""

    def __init__(self, map: Any, fixed_digits: int = 0, min: int | None = None, max: int | None = 2**31 - 1,
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
    login_manager.init_app(app)
    app.extensions["carnet.throttle"] = Throttle(app.config["RATELIMIT_STORAGE_URL"],
                                                 app.config["LOGIN_FAILURES_PER_ACCOUNT"],
                                                 app.config["LOGIN_FAILURES_PER_ADDRESS"])
    app.extensions["carnet.account_settings"] = accounts.AccountSettings.from_config(app.config)


@login_manager.request_loader
def _load_patient_from_bearer(req: Any) -> Patient | None:
    token = accounts.find_token(get_session(), bearer(), (TokenKind.ACCESS,))
    if token is None:
        return None
    if accounts.touch(token):
        get_session().commit()
    g.access_token = token
    return token.patient


def bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def settings() -> accounts.AccountSettings:
    return current_app.extensions["carnet.account_settings"]


def throttle() -> Throttle:
    return current_app.extensions["carnet.throttle"]


def client_address() -> str | None:
    return request.remote_addr


def now() -> dt.datetime:
    return utcnow()


F = TypeVar("F", bound=Callable[..., Any])


def patient_required(fn: F) -> F:
    """Two factors given and the account active: the only door to health data."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            raise Unauthorized("unauthorized", headers={"WWW-Authenticate": "Bearer"})
        if current_user.state != AccountState.ACTIVE:
            raise Forbidden("account_closed")
        return fn(*args, **kwargs)

    wrapper._carnet_auth = "patient"  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def public(fn: F) -> F:
    """Declares that an endpoint needs no patient session (it authenticates otherwise, or not at all)."""
    fn._carnet_auth = "public"  # type: ignore[attr-defined]
    return fn


def current_patient() -> Patient:
    return current_user  # type: ignore[return-value]


def current_access_token() -> AuthToken:
    return g.access_token


PAGE_MAX = 100


class PageArgs(ma.Schema):
    limit = ma.fields.Integer(load_default=20, validate=ma.validate.Range(min=1, max=PAGE_MAX))
    cursor = ma.fields.String(load_default=None)


def encode_cursor(value: int) -> str:
    import base64

    return base64.urlsafe_b64encode(f"v1:{value}".encode()).decode().rstrip("=")


def decode_cursor(raw: str | None) -> int | None:
    """Opaque cursors; a forged or damaged one is refused with a reason (422)."""
    import base64
    import binascii

    from backend.errors import DomainError

    if not raw:
        return None
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        prefix, _, value = text.partition(":")
        if prefix != "v1":
            raise ValueError(prefix)
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise DomainError("invalid_request", errors=[{"field": "cursor", "message": "curseur invalide"}]) from None
