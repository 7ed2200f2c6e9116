"""The patient's catalogue endpoints under /api/v1/catalog: browse and search, detail, connect with
explicit per-permission consent, connected services, renew, revoke, report, and the OAuth
authorization endpoint the app calls after the consent sheet. Thin: parse, call the service, commit,
shape."""
from __future__ import annotations

import datetime as dt
from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.base import invalid_error_characters
from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from backend import web
from backend.catalog import oauth
from backend.catalog import schemas as s
from backend.catalog import service as catalog
from backend.catalog.messages import permission_label
from backend.catalog.models import CatalogConnection, ReportReason, ServiceStatus
from backend.catalog.vocabulary import NATIONAL, PERMISSIONS, REGIONS, THEMES
from backend.db import get_session, utcnow
from backend.errors import DomainError
from backend.i18n import message
from backend.records.access.policy import Action

blp = Blueprint("catalog", __name__, url_prefix="/api/v1/catalog",
                description="Catalogue of referenced services and consented data sharing")
SECURED = {"security": [{"bearer": []}]}


# --- shaping -------------------------------------------------------------------------------------------

def _labels(prefix: str, codes: list[str]) -> list[dict[str, str]]:
    return [{"code": c, "label": message(f"{prefix}{c}")} for c in codes]


def _connection(connection: CatalogConnection | None, now: dt.datetime) -> dict[str, Any] | None:
    state = catalog.connection_state(connection, now)
    if connection is None or state is None:
        return None
    window = dt.timedelta(days=oauth.settings().renewal_notice_days)
    return {"state": state, "state_label": message(f"catalog_state_{state}"),
            "permissions": catalog.granted(connection), "first_connected_at": connection.first_connected_at,
            "granted_at": connection.granted_at, "expires_at": connection.expires_at,
            "renewal_due": state != "revoked" and connection.expires_at <= now + window}


def _service(listing: catalog.Listing, now: dt.datetime) -> dict[str, Any]:
    svc = listing.service
    return {"id": svc.id, "name": svc.name, "publisher": svc.publisher, "summary": svc.summary,
            "status": svc.status.value, "status_label": message(f"catalog_status_{svc.status.value}"),
            "themes": _labels("catalog_theme_", listing.themes), "regions": _labels("catalog_region_", listing.regions),
            "referenced_at": svc.referenced_at, "connectable": svc.status == ServiceStatus.ONLINE,
            "connection": _connection(listing.connection, now)}


def _permissions(pairs: list[tuple[str, str | None]], connection: CatalogConnection | None,
                 now: dt.datetime) -> list[dict[str, Any]]:
    active = catalog.connection_state(connection, now) == "active"
    granted = set(catalog.granted(connection)) if connection is not None and active else set()
    return [{"scope": scope, "label": permission_label(scope), "access": PERMISSIONS[scope].access,
             "purpose": purpose, "granted": scope in granted} for scope, purpose in pairs]


def _detail(detail: catalog.Detail, now: dt.datetime) -> dict[str, Any]:
    svc = detail.listing.service
    return {**_service(detail.listing, now), "description": svc.description, "website_url": svc.website_url,
            "privacy_policy_url": svc.privacy_policy_url,
            "permissions": _permissions(detail.permissions, detail.listing.connection, now)}


# --- browsing ------------------------------------------------------------------------------------------

@blp.route("/filters")
@blp.response(200, s.FiltersOut)
@blp.doc(**SECURED)
@web.patient_required
def filters() -> dict[str, Any]:
    """Themes and regions to filter the catalogue by (with labels), and the reasons to report a service."""
    return {"themes": _labels("catalog_theme_", list(THEMES)),
            "regions": _labels("catalog_region_", [NATIONAL, *sorted(REGIONS, key=lambda r: message(
                f"catalog_region_{r}"))]),
            "report_reasons": _labels("catalog_report_", [r.value for r in ReportReason])}


@blp.route("/services")
@blp.arguments(s.BrowseArgs, location="query")
@blp.response(200, s.ServicePageOut)
@blp.doc(**SECURED)
@web.patient_required
def services(args: dict[str, Any]) -> dict[str, Any]:
    """The catalogue, alphabetical: filter by theme and region, search by words (paginated)."""
    now = utcnow()
    rows, cursor = catalog.browse(get_session(), web.current_patient().id, query=args["q"], theme=args["theme"],
                                  region=args["region"], limit=args["limit"],
                                  after=catalog.decode_cursor(args["cursor"]))
    return {"items": [_service(r, now) for r in rows],
            "next_cursor": catalog.encode_cursor(cursor) if cursor else None}


@blp.route("/services/<int:service_id>")
@blp.response(200, s.ServiceDetailOut)
@blp.doc(**SECURED)
@web.patient_required
def service_detail(service_id: int) -> dict[str, Any]:
    """One service: description, privacy policy, the permissions it asks and why, this patient's consent."""
    return _detail(catalog.service_detail(get_session(), web.current_patient().id, service_id), utcnow())


@blp.route("/services/<int:service_id>/connection", methods=["PUT"])
@blp.arguments(s.ConnectIn)
@blp.response(200, s.ServiceDetailOut)
@blp.doc(**SECURED)
@web.patient_required
@web.writes(Action.CATALOGUE_CONNECTIONS)
def connect(body: dict[str, Any], service_id: int) -> dict[str, Any]:
    """Connect (or change the permissions of) a service: exactly the permissions the patient ticked."""
    session = get_session()
    patient = web.current_patient()
    catalog.connect(session, oauth.settings(), patient.id, service_id, body["permissions"])
    session.commit()
    return _detail(catalog.service_detail(session, patient.id, service_id), utcnow())


@blp.route("/services/<int:service_id>/reports", methods=["POST"])
@blp.arguments(s.ReportIn)
@blp.response(201, s.ReportOut)
@blp.doc(**SECURED)
@web.patient_required
@web.writes(Action.CATALOGUE_CONNECTIONS)
def report(body: dict[str, Any], service_id: int) -> dict[str, Any]:
    """Report a service to the catalogue's operators (a reason, an optional comment)."""
    session = get_session()
    row = catalog.report(session, web.current_patient().id, service_id, body["reason"], body["comment"])
    session.commit()
    return {"id": row.id, "created_at": row.created_at}


# --- connected services --------------------------------------------------------------------------------

@blp.route("/connections")
@blp.arguments(web.PageArgs, location="query")
@blp.response(200, s.ConnectedPageOut)
@blp.doc(**SECURED)
@web.patient_required
def connections(args: dict[str, Any]) -> dict[str, Any]:
    """The services this patient connected (active, or lapsed and waiting for renewal)."""
    session = get_session()
    now = utcnow()
    rows, next_id = catalog.connections_page(session, web.current_patient().id, limit=args["limit"],
                                             after_id=web.decode_cursor(args["cursor"]))
    listings = {item.service.id: item for item in catalog._decorate(session, [svc for _, svc in rows],
                                                                      web.current_patient().id)}
    return {"items": [{"service": _service(listings[svc.id], now),
                       "permissions": _permissions([(p, None) for p in catalog.granted(conn)], conn, now)}
                      for conn, svc in rows],
            "next_cursor": web.encode_cursor(next_id) if next_id else None,
            "consent_days": oauth.settings().consent_days}


@blp.route("/connections/<int:service_id>", methods=["DELETE"])
@blp.response(204)
@blp.doc(**SECURED)
@web.patient_required
@web.writes(Action.CATALOGUE_CONNECTIONS)
def revoke(service_id: int) -> None:
    """Disconnect a service: it loses access on its next request."""
    session = get_session()
    catalog.revoke(session, web.current_patient().id, service_id)
    session.commit()


@blp.route("/connections/<int:service_id>/renewal", methods=["POST"])
@blp.response(200, s.ServiceDetailOut)
@blp.doc(**SECURED)
@web.patient_required
@web.writes(Action.CATALOGUE_CONNECTIONS)
def renew(service_id: int) -> dict[str, Any]:
    """Renew the consent for another period (CARNET_SERVICE_CONSENT_DAYS), same permissions."""
    session = get_session()
    patient = web.current_patient()
    catalog.renew(session, oauth.settings(), patient.id, service_id)
    session.commit()
    return _detail(catalog.service_detail(session, patient.id, service_id), utcnow())


# --- OAuth 2.0 authorization endpoint (the app, after the consent sheet) ---------------------------------

def _oauth_refusal(error: OAuth2Error) -> DomainError:
    return DomainError("catalog_oauth_error", 400, description=error.description or error.error,
                       errors=[{"field": error.error, "message": error.description or error.error}])


# Parameters Authlib may quote in an error description. RFC 6749 (4.1.2.1) allows only printable ASCII,
# without double quote and backslash, there: Authlib raises ValueError (a 500) rather than build such an
# error. The parameters' own grammars (Appendix A) are printable ASCII too, so nothing valid is refused.
_QUOTED_PARAMETERS = ("response_type", "redirect_uri", "client_id", "scope", "code_challenge_method")


def _check_parameter_characters() -> None:
    for name in _QUOTED_PARAMETERS:
        if any(invalid_error_characters(value) for value in request.values.getlist(name)):
            detail = message("catalog_oauth_invalid_characters", name=name)
            raise DomainError("catalog_oauth_invalid_characters", 400, name=name,
                              errors=[{"field": name, "message": detail}])


def _consent_grant(patient_id: int) -> Any:
    _check_parameter_characters()
    try:
        return oauth.server().get_consent_grant(end_user=patient_id)
    except OAuth2Error as error:
        raise _oauth_refusal(error) from None


@blp.route("/oauth/authorize")
class Authorize(MethodView):
    @blp.arguments(s.AuthorizeArgs, location="query")
    @blp.response(200, s.AuthorizeCheckOut)
    @blp.doc(**SECURED)
    @web.patient_required
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Check a service's authorization request (OAuth 2.0 + PKCE S256) and describe the consent sheet:
        the permissions it asks now, none pre-ticked."""
        session = get_session()
        patient = web.current_patient()
        grant = _consent_grant(patient.id)
        client: oauth.Client = grant.request.client
        if client.service.status != ServiceStatus.ONLINE:
            raise DomainError("catalog_service_unavailable", 409)
        detail = catalog.service_detail(session, patient.id, client.service.id)
        now = utcnow()
        purposes = dict(detail.permissions)
        requested = [(scope, purposes.get(scope)) for scope in grant.request.scope.split()]
        return {"service": _detail(detail, now), "requested": _permissions(requested, None, now),
                "redirect_uri": grant.request.payload.redirect_uri or client.get_default_redirect_uri()}

    @blp.arguments(s.AuthorizeArgs, location="query")
    @blp.arguments(s.AuthorizeIn)
    @blp.response(200, s.AuthorizeOut)
    @blp.doc(**SECURED)
    @web.patient_required
    @web.writes(Action.CATALOGUE_CONNECTIONS)
    def post(self, args: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """The patient's decision: the ticked permissions become the consent and the code's scope; the app
        opens ``redirect_to`` (the service's redirect URI with ``code`` and ``state``)."""
        session = get_session()
        patient = web.current_patient()
        grant = _consent_grant(patient.id)
        server = oauth.server()
        if body["deny"]:
            response = server.create_authorization_response(grant_user=None, grant=grant)
            return {"redirect_to": response.headers["Location"]}
        client: oauth.Client = grant.request.client
        requested = grant.request.scope.split()
        for scope in body["permissions"]:
            if scope not in requested:
                raise DomainError("catalog_permission_not_asked", 422, scope=str(scope)[:64])
        connection = catalog.connect(session, oauth.settings(), patient.id, client.service.id, body["permissions"],
                                     requested=requested)
        ticked = [p for p in requested if p in body["permissions"]]
        response = server.create_authorization_response(
            grant_user=oauth.Grantee(patient.id, connection.id, " ".join(ticked)), grant=grant)
        location = response.headers.get("Location", "")
        if "code=" not in location:
            session.rollback()
            raise DomainError("catalog_oauth_error", 400, description="authorization refused")
        session.commit()
        return {"redirect_to": location}
