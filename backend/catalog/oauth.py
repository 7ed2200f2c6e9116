"""OAuth 2.0 for connected services (RFC 6749 authorization code + RFC 7636 PKCE, S256 only), with
Authlib's Flask integration: the authorization server (codes, tokens, refresh) and the resource
protector of the service API.

- Clients are the catalogue's services (public clients authenticate with PKCE alone; confidential ones
  also with their secret, kept as an argon2 hash). A suspended or de-referenced service is no client.
- The authorization endpoint is the patient's (``/api/v1/catalog/oauth/authorize``, bearer session):
  the app validates the request, shows the consent sheet, and posts the ticked permissions; the
  consent is recorded (``service.connect``) and the code's scope is what was ticked.
- Codes, access and refresh tokens are stored as SHA-256 digests. A code is claimed atomically when
  presented (a second exchange, even concurrent, fails). Every token descends from one code (a refreshed
  token keeps its code's id): a replayed code revokes the whole line, refreshed tokens included (RFC 6749
  §4.1.2, §10.5), and so does a refresh token presented again after its rotation (RFC 9700 §4.14.2), which
  is also claimed atomically.
- On every call of the service API, the token is checked against the consent as it is *now*: revoked,
  lapsed, service suspended or de-referenced, account no longer active → ``invalid_token``. The effective permissions are the
  token's scopes that the consent still grants.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2.rfc6749 import ClientMixin, grants, scope_to_list
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6750 import BearerTokenValidator, InvalidTokenError
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Blueprint, Flask, Response, current_app
from sqlalchemy import select, update

from backend import web
from backend.accounts.models import AccountState, Patient
from backend.audit import service as audit
from backend.catalog import service as catalog
from backend.catalog.models import AccessToken, AuthorizationCode, CatalogConnection, CatalogService, ServicePermission
from backend.catalog.vocabulary import PERMISSIONS
from backend.db import get_session, utcnow
from backend.security import verify_password

EXTENSION = "carnet.catalog.oauth"


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def settings() -> catalog.CatalogSettings:
    return current_app.extensions["carnet.catalog"]


# --- the client ---------------------------------------------------------------------------------------

class Client(ClientMixin):
    """A catalogue service seen as an OAuth client."""

    def __init__(self, service: CatalogService, asked: list[str]) -> None:
        self.service = service
        self.asked = asked
        self.redirect_uris: list[str] = json.loads(service.redirect_uris)

    @property
    def confidential(self) -> bool:
        return self.service.client_secret_hash is not None

    def get_client_id(self) -> str:
        return self.service.client_id

    def get_default_redirect_uri(self) -> str | None:
        # with several registered addresses the request must name one (RFC 6749 §3.1.2.3)
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return " ".join(self.asked)
        return " ".join(s for s in scope_to_list(scope) if s in self.asked)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return self.confidential and verify_password(self.service.client_secret_hash, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if endpoint != "token":
            return True
        return method in ("client_secret_basic", "client_secret_post") if self.confidential else method == "none"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


def query_client(client_id: str, *, statuses: tuple[Any, ...] = catalog.REACHABLE) -> Client | None:
    session = get_session()
    service = session.scalar(select(CatalogService).where(CatalogService.client_id == client_id))
    if service is None or service.status not in statuses:
        return None
    asked = list(session.scalars(select(ServicePermission.scope).where(
        ServicePermission.service_id == service.id).order_by(ServicePermission.position)))
    return Client(service, asked)


# --- who the tokens are for ------------------------------------------------------------------------------

@dataclass
class Grantee:
    """The resource owner of a grant: a patient, through one consent, for some scopes."""

    patient_id: int
    connection_id: int
    scope: str

    def get_user_id(self) -> int:
        return self.patient_id


def _active_connection(connection_id: int, now: dt.datetime) -> CatalogConnection | None:
    connection = get_session().get(CatalogConnection, connection_id)
    if catalog.connection_state(connection, now) != "active":
        return None
    return connection


@dataclass
class CodeView:
    row: AuthorizationCode

    @property
    def code_challenge(self) -> str:
        return self.row.code_challenge

    @property
    def code_challenge_method(self) -> str:
        return self.row.code_challenge_method

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope


@dataclass
class TokenView:
    """An access token as the resource protector and the refresh grant see it."""

    row: AccessToken
    connection: CatalogConnection | None = None
    service: CatalogService | None = None
    now: dt.datetime | None = None
    account_state: AccountState | None = None

    def check_client(self, client: Client) -> bool:
        return self.row.service_id == client.service.id

    def get_scope(self) -> str:
        return self.row.scope

    def get_expires_in(self) -> int:
        return int((self.row.expires_at - self.row.issued_at).total_seconds())

    def is_expired(self) -> bool:
        return self.row.expires_at <= (self.now or utcnow())

    def is_revoked(self) -> bool:
        return self.row.revoked_at is not None

    @property
    def permissions(self) -> frozenset[str]:
        """What this call may do: the token's scopes the consent still grants."""
        if self.connection is None:
            return frozenset()
        return frozenset(scope_to_list(self.row.scope)) & frozenset(catalog.granted(self.connection))


# --- grants -------------------------------------------------------------------------------------------

class S256Challenge(CodeChallenge):
    """PKCE is mandatory, and only with S256 (RFC 9700 §2.1.1: "plain" offers no protection)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: missing 'code_challenge'.", redirect_uri=redirect_uri)
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("Only 'code_challenge_method=S256' is accepted.", redirect_uri=redirect_uri)
        super().validate_code_challenge(grant, redirect_uri)


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def save_authorization_code(self, code: str, request: Any) -> None:
        grantee: Grantee = request.user
        now = utcnow()
        client: Client = request.client
        row = AuthorizationCode(
            code_hash=digest(code), service_id=client.service.id, patient_id=grantee.patient_id,
            connection_id=grantee.connection_id,
            redirect_uri=request.payload.redirect_uri or client.get_default_redirect_uri() or "",
            scope=grantee.scope, code_challenge=request.payload.data["code_challenge"],
            code_challenge_method=request.payload.data["code_challenge_method"], created_at=now,
            expires_at=now + settings().code_ttl)
        get_session().add(row)
        get_session().flush()

    def query_authorization_code(self, code: str, client: Client) -> CodeView | None:
        session = get_session()
        now = utcnow()
        row = session.scalar(select(AuthorizationCode).where(AuthorizationCode.code_hash == digest(code),
                                                             AuthorizationCode.service_id == client.service.id))
        if row is None:
            return None
        if row.used_at is not None:
            # RFC 6749 §4.1.2: a code used twice revokes what it gave, and what was refreshed from it since
            revoke_line(row.id, now)
            return None
        if row.expires_at <= now:
            return None
        # claim it: of two concurrent exchanges, one UPDATE wins
        claimed = session.execute(update(AuthorizationCode).where(
            AuthorizationCode.id == row.id, AuthorizationCode.used_at.is_(None)).values(used_at=now)).rowcount
        if claimed != 1:
            return None
        return CodeView(row)

    def delete_authorization_code(self, authorization_code: CodeView) -> None:
        """Already claimed (``used_at``) when it was presented; kept to recognise a replay."""

    def authenticate_user(self, authorization_code: CodeView) -> Grantee | None:
        row = authorization_code.row
        if _active_connection(row.connection_id, utcnow()) is None:
            return None
        return Grantee(row.patient_id, row.connection_id, row.scope)


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: each refresh token is used once

    def authenticate_refresh_token(self, refresh_token: str) -> TokenView | None:
        session = get_session()
        row = session.scalar(select(AccessToken).where(AccessToken.refresh_token_hash == digest(refresh_token)))
        now = utcnow()
        client: Client | None = getattr(self.request, "client", None)
        if row is None or client is None or row.service_id != client.service.id:
            return None
        if row.revoked_at is not None:
            # rotated (or revoked) and presented again: it was copied; the whole line of tokens is revoked
            if row.authorization_code_id is not None:
                revoke_line(row.authorization_code_id, now)
            return None
        if row.refresh_expires_at is None or row.refresh_expires_at <= now:
            return None
        return TokenView(row, now=now)

    def authenticate_user(self, refresh_token: TokenView) -> Grantee | None:
        row = refresh_token.row
        now = utcnow()
        if _active_connection(row.connection_id, now) is None:
            return None
        # claim it (the request is valid by now): of two concurrent refreshes with it, one UPDATE wins
        claimed = get_session().execute(
            update(AccessToken).where(AccessToken.id == row.id, AccessToken.revoked_at.is_(None))
            .values(revoked_at=now).execution_options(synchronize_session=False)).rowcount
        if claimed != 1:
            return None
        return Grantee(row.patient_id, row.connection_id, row.scope)

    def revoke_old_credential(self, refresh_token: TokenView) -> None:
        """Already revoked when it was claimed (``authenticate_user``)."""


def revoke_line(authorization_code_id: int, now: dt.datetime) -> None:
    """Revoke every token issued from one authorization code, through all its refreshes."""
    get_session().execute(update(AccessToken).where(AccessToken.authorization_code_id == authorization_code_id,
                                                    AccessToken.revoked_at.is_(None)).values(revoked_at=now)
                          .execution_options(synchronize_session=False))


def save_token(token: dict[str, Any], request: Any) -> None:
    grantee: Grantee = request.user
    client: Client = request.client
    now = utcnow()
    code = getattr(request, "authorization_code", None)
    previous = getattr(request, "refresh_token", None)
    if isinstance(code, CodeView):
        line: int | None = code.row.id
    elif isinstance(previous, TokenView):
        line = previous.row.authorization_code_id  # a refreshed token stays in its code's line
    else:
        line = None
    refresh = token.get("refresh_token")
    row = AccessToken(
        token_hash=digest(token["access_token"]), refresh_token_hash=digest(refresh) if refresh else None,
        service_id=client.service.id, patient_id=grantee.patient_id, connection_id=grantee.connection_id,
        authorization_code_id=line,
        scope=token.get("scope") or grantee.scope, issued_at=now,
        expires_at=now + dt.timedelta(seconds=int(token["expires_in"])),
        refresh_expires_at=now + dt.timedelta(days=settings().refresh_token_days) if refresh else None)
    session = get_session()
    session.add(row)
    audit.record(session, actor_type="service", actor_id=str(client.service.id), action="catalog.token_issued",
                 patient_id=grantee.patient_id, details={"service_id": client.service.id,
                                                         "grant": request.payload.grant_type}, at=now)
    session.flush()


# --- the resource protector ----------------------------------------------------------------------------

class ServiceTokenValidator(BearerTokenValidator):
    def authenticate_token(self, token_string: str) -> TokenView | None:
        found = get_session().execute(
            select(AccessToken, CatalogConnection, CatalogService, Patient.state)
            .join(CatalogConnection, CatalogConnection.id == AccessToken.connection_id)
            .join(CatalogService, CatalogService.id == AccessToken.service_id)
            .join(Patient, Patient.id == AccessToken.patient_id)
            .where(AccessToken.token_hash == digest(token_string))).one_or_none()
        if found is None:
            return None
        return TokenView(found[0], found[1], found[2], utcnow(), found[3])

    def validate_token(self, token: TokenView | None, scopes: Any, request: Any) -> None:
        super().validate_token(token, scopes, request)
        assert token is not None and token.connection is not None and token.service is not None
        # the consent as it is now: a revocation, a lapse, a suspension cut access on this very request
        if catalog.connection_state(token.connection, token.now or utcnow()) != "active":
            raise InvalidTokenError(realm=self.realm, extra_attributes=self.extra_attributes)
        if token.service.status not in catalog.REACHABLE:
            raise InvalidTokenError(realm=self.realm, extra_attributes=self.extra_attributes)
        if token.account_state != AccountState.ACTIVE:  # closed since: nothing is served, whatever the token
            raise InvalidTokenError(realm=self.realm, extra_attributes=self.extra_attributes)


require_service_token = ResourceProtector()
require_service_token.register_token_validator(ServiceTokenValidator(realm="carnet-services"))


def init_app(app: Flask, config: catalog.CatalogSettings) -> AuthorizationServer:
    app.config.setdefault("OAUTH2_REFRESH_TOKEN_GENERATOR", True)
    app.config.setdefault("OAUTH2_TOKEN_EXPIRES_IN", {"authorization_code": config.access_token_seconds,
                                                      "refresh_token": config.access_token_seconds})
    app.config.setdefault("OAUTH2_SCOPES_SUPPORTED", sorted(PERMISSIONS))
    server = AuthorizationServer()
    server.init_app(app, query_client=query_client, save_token=save_token)
    server.register_grant(AuthorizationCodeGrant, [S256Challenge(required=True)])
    server.register_grant(RefreshTokenGrant)
    app.extensions[EXTENSION] = server
    return server


def server() -> AuthorizationServer:
    return current_app.extensions[EXTENSION]


# --- the token endpoint ------------------------------------------------------------------------------------

token_bp = Blueprint("catalog_oauth", __name__, url_prefix="/oauth")


@token_bp.post("/token")
@web.public
def token() -> Response:
    """RFC 6749 token endpoint (form-encoded): ``authorization_code`` with PKCE ``code_verifier``, and
    ``refresh_token`` (rotated). Clients authenticate with their secret (confidential) or PKCE alone."""
    response = server().create_token_response()
    # commit whatever the outcome: a presented code stays claimed, a replay's revocations stay
    get_session().commit()
    return response
