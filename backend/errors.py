"""Every error as ``application/problem+json`` (RFC 9457), with a localized ``detail``.

Domain code raises :class:`DomainError`; HTTP errors from Flask/werkzeug and validation errors from
webargs are turned into the same shape here, so clients read one format. A path prefix may register
another shape (:func:`register_error_shape`: the FHIR bases answer ``OperationOutcome``); the handlers
here stay the one place that turns an exception into a status, a code and a sentence.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, has_request_context, json, request
from werkzeug.exceptions import HTTPException

from backend.error_messages import field_message
from backend.error_messages import title as localized_title
from backend.i18n import message

log = logging.getLogger(__name__)

PROBLEM_MIME = "application/problem+json"

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    500: "internal_error",
    503: "service_unavailable",
}


class DomainError(Exception):
    """A refusal the patient (or professional) should read.

    ``persist`` marks refusals whose side effects must be kept (an attempt counter, an audit entry):
    the error handler commits instead of rolling back.
    """

    status = 422

    def __init__(
        self,
        code: str,
        status: int | None = None,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        persist: bool = False,
        **params: Any,
    ) -> None:
        super().__init__(code)
        self.code = code
        if status is not None:
            self.status = status
        self.errors = errors
        self.headers = headers or {}
        self.persist = persist
        self.params = params

    def detail(self, lang: str | None = None) -> str:
        return message(self.code, lang, **self.params)


class NotFound(DomainError):
    status = 404


class Forbidden(DomainError):
    status = 403


class Unauthorized(DomainError):
    status = 401


class TooManyAttempts(DomainError):
    status = 429

    def __init__(self, retry_after: int, **kw: Any) -> None:
        retry_after = max(1, int(retry_after))
        super().__init__("too_many_requests", headers={"Retry-After": str(retry_after)},
                         retry_after=retry_after, **kw)

    def detail(self, lang: str | None = None) -> str:
        # A patient reads minutes better than hundreds of seconds; the header keeps the exact seconds.
        seconds = int(self.params["retry_after"])
        if seconds >= 120:
            return message("too_many_requests_minutes", lang, minutes=-(-seconds // 60))
        return message("too_many_requests", lang, retry_after=seconds)


# A path prefix whose errors take another shape than problem+json (the FHIR bases answer OperationOutcome):
# (status, code, detail, errors, headers) -> Response. Registered by the layer that owns the prefix.
ErrorShape = Callable[[int, str, str, Any, dict[str, str]], Response]
SHAPES = "carnet.error_shapes"


def register_error_shape(app: Flask, prefix: str, render: ErrorShape) -> None:
    """Every error answered under ``prefix`` (a path like ``/fhir/R4``) is rendered by ``render``: the errors
    of its views, unknown paths and methods below it, a database outage — whoever raised them."""
    app.extensions.setdefault(SHAPES, {})[prefix.rstrip("/")] = render


def error_response(status: int, code: str, detail: str, *, errors: Any = None,
                   headers: dict[str, str] | None = None) -> Response:
    """The one place that decides the shape of an error for the request's path."""
    path = request.path if has_request_context() else ""
    for prefix, render in (current_app.extensions.get(SHAPES, {}) if has_request_context() else {}).items():
        if path == prefix or path.startswith(prefix + "/"):
            return render(status, code, detail, errors, dict(headers or {}))
    return problem(status, code, detail, errors=errors, headers=headers)


def problem(status: int, code: str, detail: str, *, errors: Any = None,
            headers: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {
        "type": f"https://carnet.example/problems/{code.replace('_', '-')}",
        "title": localized_title(status, _title(status)),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body, ensure_ascii=False), status=status, mimetype=PROBLEM_MIME)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _validation_errors(data: Any) -> list[dict[str, Any]]:
    """Flatten webargs/marshmallow messages into [{field, message}]."""
    out: list[dict[str, Any]] = []

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in {"json", "query", "form", "files", "headers", "path"} and not prefix:
                    walk("", value)
                else:
                    walk(f"{prefix}.{key}" if prefix else str(key), value)
        elif isinstance(node, list) and node and all(isinstance(x, str) for x in node):
            out.append({"field": prefix or None, "message": field_message("; ".join(node))})
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(f"{prefix}[{index}]", value)
        else:
            out.append({"field": prefix or None, "message": field_message(str(node))})

    walk("", data)
    return out


def http_exception_response(error: HTTPException) -> Response:
    status = error.code or 500
    code = HTTP_CODES.get(status, "bad_request")
    errors = None
    data = getattr(error, "data", None)
    if status == 422 and data and "messages" in data:
        errors = _validation_errors(data["messages"])
    if status == 400 and getattr(error, "description", "").startswith("Failed to decode JSON"):
        code = "invalid_json"
    headers = {}
    if status == 405 and hasattr(error, "valid_methods") and error.valid_methods:
        headers["Allow"] = ", ".join(error.valid_methods)
    if status == 429:
        retry = getattr(error, "retry_after", 60)
        headers["Retry-After"] = str(retry)
        return error_response(status, code, message(code, retry_after=retry), headers=headers)
    return error_response(status, code, message(code), errors=errors, headers=headers)


def register_error_handlers(app: Flask) -> None:
    from backend.db import get_session

    @app.errorhandler(DomainError)
    def _domain(error: DomainError) -> Response:
        session = get_session()
        if error.persist:
            session.commit()
        else:
            session.rollback()
        return error_response(error.status, error.code, error.detail(), errors=_localize(error.errors),
                       headers=error.headers)

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        return http_exception_response(error)

    from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError

    @app.errorhandler(DataError)
    @app.errorhandler(OverflowError)
    def _data(error: Exception) -> Response:
        # The database (or its driver) refused a value: out of range, NUL character, too long. The input was
        # invalid; nothing was written.
        cause = type(getattr(error, "orig", None) or error).__name__
        log.warning("database refused a value on %s %s (%s)", request.method, request.path, cause)
        _rollback_quietly()
        return error_response(422, "invalid_request", message("invalid_request"))

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def _database_unavailable(error: DBAPIError) -> Response:
        # The database is down, restarting or unreachable, or the connection was lost mid-request: the
        # transaction did not commit; the client may retry (the pool pings connections before reuse).
        log.error("database unavailable on %s %s (%s)", request.method, request.path, type(error.orig).__name__)
        _rollback_quietly()
        return error_response(503, "service_unavailable", message("service_unavailable"), headers={"Retry-After": "5"})

    from backend.blobs import BlobUnavailable

    @app.errorhandler(BlobUnavailable)
    def _blobs_unavailable(error: BlobUnavailable) -> Response:
        # The blob store (documents' bytes) does not answer: nothing was committed; the client may retry.
        log.error("blob store unavailable on %s %s", request.method, request.path)
        _rollback_quietly()
        return error_response(503, "service_unavailable", message("service_unavailable"), headers={"Retry-After": "5"})

    @app.errorhandler(RecursionError)
    def _too_deep(error: RecursionError) -> Response:
        # A body nested deeper than the parsers recurse (JSON arrays 100,000 deep): invalid input, not a crash.
        log.warning("input nested too deeply on %s %s", request.method, request.path)
        _rollback_quietly()
        return error_response(400, "invalid_json", message("invalid_json"))

    def _rollback_quietly() -> None:
        try:
            get_session().rollback()
        except Exception:  # the connection itself may be gone
            log.warning("rollback failed after a database error")

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        # Never log request bodies or arguments: they may hold health data or secrets.
        log.error("unhandled %s on %s %s", type(error).__name__, request.method, request.path,
                  exc_info=app.config.get("LOG_TRACEBACKS", True))
        try:
            get_session().rollback()
        except Exception:  # pragma: no cover - the database itself may be the failure
            log.warning("rollback failed after an unhandled error")
        return error_response(500, "internal_error", message("internal_error"))


def _localize(errors: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if not errors:
        return errors
    out = []
    for item in errors:
        item = dict(item)
        if "message_code" in item:
            item["message"] = message(item.pop("message_code"), **item.pop("params", {}))
        out.append(item)
    return out
