"""The insurer's credentials: creation, tokens (only their SHA-256 is kept) and authentication.

The insurer is an actor of its own kind (``Actor(kind="insurer")``): it needs no consent (it feeds the
record, it does not read it: ``policy.decide`` refuses it every read) and deposits only reimbursement data
over ITI-65 (``fhir.service.provide_from_insurer``; docs/insurer-feed.md is the contract). Functions take a
Session and only flush.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.audit import service as audit
from backend.db import utcnow
from backend.errors import DomainError
from backend.insurer import messages  # noqa: F401  (registers the texts)
from backend.insurer.models import Insurer, InsurerToken
from backend.security import new_token, token_digest

# '.' is not in the base64url alphabet of professionals' tokens: the prefix alone says which table to ask.
TOKEN_PREFIX = "am."
DEFAULT_CODE = "cnam"
DEFAULT_NAME = "Assurance Maladie"
DEFAULT_ORGANISATION = "1.2.250.1.71.4.2.2|318003502400041"   # as the ANS CNAM-HR example names the CNAM


def is_insurer_token(credential: str | None) -> bool:
    return bool(credential) and str(credential).startswith(TOKEN_PREFIX)


def create_insurer(session: Session, *, code: str = DEFAULT_CODE, name: str = DEFAULT_NAME,
                   organisation_id: str | None = DEFAULT_ORGANISATION,
                   now: dt.datetime | None = None) -> tuple[Insurer, str]:
    """A new insurer and its first token (printed once; only its digest is kept)."""
    now = now or utcnow()
    code = (code or "").strip().lower()
    if not code or len(code) > 32 or not code.replace("-", "").replace("_", "").isalnum():
        raise DomainError("insurer_invalid_code", 422)
    if session.scalar(select(Insurer.id).where(Insurer.code == code)) is not None:
        raise DomainError("insurer_exists", 409, code=code)
    insurer = Insurer(code=code, name=(name or DEFAULT_NAME).strip()[:200], organisation_id=organisation_id,
                      created_at=now)
    session.add(insurer)
    session.flush()
    token = issue_token(session, insurer, now)
    audit.record(session, actor_type="operator", actor_id=None, action="insurer.created",
                 details={"insurer_id": insurer.id, "code": code}, at=now)
    return insurer, token


def issue_token(session: Session, insurer: Insurer, now: dt.datetime | None = None) -> str:
    token = TOKEN_PREFIX + new_token()
    session.add(InsurerToken(insurer_id=insurer.id, token_hash=token_digest(token), created_at=now or utcnow()))
    session.flush()
    return token


def revoke_tokens(session: Session, insurer: Insurer, now: dt.datetime | None = None) -> int:
    rows = session.scalars(select(InsurerToken).where(InsurerToken.insurer_id == insurer.id,
                                                      InsurerToken.revoked_at.is_(None))).all()
    for row in rows:
        row.revoked_at = now or utcnow()
    session.flush()
    return len(rows)


def by_code(session: Session, code: str) -> Insurer | None:
    return session.scalar(select(Insurer).where(Insurer.code == code.strip().lower()))


_BY_TOKEN = select(Insurer).join(InsurerToken, InsurerToken.insurer_id == Insurer.id)


def authenticate(session: Session, credential: str) -> Insurer | None:
    """The insurer a bearer token belongs to (one round trip), or None."""
    if not is_insurer_token(credential):
        return None
    return session.scalar(_BY_TOKEN.where(InsurerToken.token_hash == token_digest(credential),
                                          InsurerToken.revoked_at.is_(None)))
