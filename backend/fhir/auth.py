"""Authentication of the professional API: a bearer credential turned into a Professional by the
configured authenticator (``app.extensions["carnet.professional_authenticator"]``: the token of
``carnet pro create`` today, Pro Santé Connect tomorrow — anything with the
``ProfessionalAuthenticator`` interface), and the purpose of use a request declares.

The insurer's feed (``backend.insurer``) authenticates on the same API with its own tokens (``am.…``):
``depositor_required`` (ITI-65 only) lets it in as ``Actor(kind="insurer")``; every other route answers it
403, since the insurer feeds the record and reads nothing."""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, current_app, g, request

from backend import web
from backend.db import get_session
from backend.errors import DomainError
from backend.professionals.models import Professional
from backend.professionals.service import BearerTokenAuthenticator, ProfessionalAuthenticator
from backend.records.access.policy import Actor, Purpose

EXTENSION = "carnet.professional_authenticator"  # shared with the agenda's FHIR routes

F = TypeVar("F", bound=Callable[..., Any])


def init_app(app: Flask, authenticator: ProfessionalAuthenticator | None = None) -> None:
    app.extensions.setdefault(EXTENSION, authenticator or BearerTokenAuthenticator())


def _refuse_insurer(credential: str | None) -> None:
    from backend.insurer import credentials as insurer

    if insurer.is_insurer_token(credential) and insurer.authenticate(get_session(), credential or "") is not None:
        raise DomainError("fhir_insurer_no_read", 403)


def professional_required(fn: F) -> F:
    """A health professional authenticated by a bearer credential; 401 OperationOutcome otherwise."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        credential = web.bearer()
        _refuse_insurer(credential)
        authenticator: ProfessionalAuthenticator = current_app.extensions[EXTENSION]
        pro = authenticator.authenticate(get_session(), credential) if credential else None
        if pro is None:
            raise DomainError("fhir_unauthorized", 401,
                              headers={"WWW-Authenticate": 'Bearer realm="carnet-fhir"'})
        g.professional = pro
        return fn(*args, **kwargs)

    wrapper._carnet_auth = "professional"  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def depositor_required(fn: F) -> F:
    """Who may deposit (ITI-65): a professional, or the insurer's feed with its own token."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from backend.insurer import credentials as insurer

        credential = web.bearer()
        if insurer.is_insurer_token(credential):
            found = insurer.authenticate(get_session(), credential or "")
            if found is None:
                raise DomainError("fhir_unauthorized", 401,
                                  headers={"WWW-Authenticate": 'Bearer realm="carnet-fhir"'})
            g.insurer = found
            return fn(*args, **kwargs)
        return professional_required(fn)(*args, **kwargs)

    wrapper._carnet_auth = "professional"  # type: ignore[attr-defined]  (the professional API's policy)
    return wrapper  # type: ignore[return-value]


def current_professional() -> Professional:
    return g.professional


def current_insurer() -> Any:
    """The insurer of a ``depositor_required`` request, or None for a professional."""
    return g.get("insurer")


def current_depositor() -> Any:
    """Who deposits on a ``depositor_required`` route: the insurer's feed, or the professional."""
    return current_insurer() or current_professional()


def current_actor() -> Actor:
    return Actor.of_professional(current_professional())


def _header_text(name: str) -> str | None:
    raw = request.headers.get(name)
    if raw is None:
        return None
    # HTTP headers arrive as latin-1; a client sending UTF-8 ("motif : détresse") is read back as UTF-8.
    try:
        raw = raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        pass
    return raw.strip() or None


def declared_purpose() -> tuple[Purpose, str | None]:
    """``X-Purpose-Of-Use: ETREAT|BTG`` and ``X-Purpose-Reason: <text>``; no header means normal care."""
    raw = (_header_text("X-Purpose-Of-Use") or "").upper()
    if raw in ("", "TREAT"):
        return Purpose.TREAT, None
    if raw not in (Purpose.ETREAT.value, Purpose.BTG.value):
        raise DomainError("fhir_invalid_purpose", 400, received=raw[:20])
    return Purpose(raw), _header_text("X-Purpose-Reason")
