"""Request and response shapes of the catalogue's patient endpoints (they document the OpenAPI)."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from backend.catalog.models import ReportReason
from backend.catalog.vocabulary import PERMISSIONS
from backend.web import PageArgs, page_of


class _Strict(ma.Schema):
    class Meta:
        unknown = ma.RAISE


class BrowseArgs(PageArgs):
    q = ma.fields.String(load_default=None, validate=validate.Length(max=100),
                         metadata={"description": "words to search (accents and case ignored; word prefixes match)"})
    theme = ma.fields.String(load_default=None, validate=validate.Length(max=32))
    region = ma.fields.String(load_default=None, validate=validate.Length(max=8),
                              metadata={"description": "INSEE region code; national services are in every region"})


class ConnectIn(_Strict):
    permissions = ma.fields.List(ma.fields.String(validate=validate.OneOf(sorted(PERMISSIONS))), required=True,
                                 validate=validate.Length(max=len(PERMISSIONS)),
                                 metadata={"description": "the permissions the patient ticked (none is pre-ticked)"})


class AuthorizeArgs(ma.Schema):
    class Meta:
        unknown = ma.INCLUDE

    response_type = ma.fields.String(required=True, metadata={"example": "code"})
    client_id = ma.fields.String(required=True)
    redirect_uri = ma.fields.String(load_default=None)
    scope = ma.fields.String(load_default=None, metadata={"description": "space-separated permissions"})
    state = ma.fields.String(load_default=None)
    code_challenge = ma.fields.String(required=True, metadata={"description": "PKCE, BASE64URL(SHA256(verifier))"})
    code_challenge_method = ma.fields.String(required=True, metadata={"example": "S256"})


class AuthorizeIn(_Strict):
    permissions = ma.fields.List(ma.fields.String(validate=validate.Length(max=64)), load_default=list,
                                 metadata={"description": "the requested permissions the patient ticked"})
    deny = ma.fields.Boolean(load_default=False, metadata={"description": "the patient refuses: access_denied"})


class ReportIn(_Strict):
    reason = ma.fields.String(required=True, validate=validate.OneOf([r.value for r in ReportReason]))
    comment = ma.fields.String(load_default=None, validate=validate.Length(max=1000))


# --- out ------------------------------------------------------------------------------------------------

class LabelOut(ma.Schema):
    code = ma.fields.String()
    label = ma.fields.String()


class PermissionOut(ma.Schema):
    scope = ma.fields.String()
    label = ma.fields.String()
    access = ma.fields.String(metadata={"description": "read | write"})
    purpose = ma.fields.String(allow_none=True, metadata={"description": "why the service asks, in its words"})
    granted = ma.fields.Boolean(metadata={"description": "the patient's consent grants it now"})


class ConnectionOut(ma.Schema):
    state = ma.fields.String(metadata={"description": "active | expired | revoked"})
    state_label = ma.fields.String()
    permissions = ma.fields.List(ma.fields.String())
    first_connected_at = ma.fields.DateTime()
    granted_at = ma.fields.DateTime()
    expires_at = ma.fields.DateTime()
    renewal_due = ma.fields.Boolean(metadata={"description": "expires within the reminder window, or expired"})


class ServiceOut(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    publisher = ma.fields.String()
    summary = ma.fields.String()
    status = ma.fields.String()
    status_label = ma.fields.String()
    themes = ma.fields.List(ma.fields.Nested(LabelOut))
    regions = ma.fields.List(ma.fields.Nested(LabelOut))
    referenced_at = ma.fields.Date()
    connectable = ma.fields.Boolean()
    connection = ma.fields.Nested(ConnectionOut, allow_none=True)


ServicePageOut = page_of(ServiceOut, "ServicePageOut")


class ServiceDetailOut(ServiceOut):
    description = ma.fields.String()
    website_url = ma.fields.String(allow_none=True)
    privacy_policy_url = ma.fields.String()
    permissions = ma.fields.List(ma.fields.Nested(PermissionOut))


class FiltersOut(ma.Schema):
    themes = ma.fields.List(ma.fields.Nested(LabelOut))
    regions = ma.fields.List(ma.fields.Nested(LabelOut))
    report_reasons = ma.fields.List(ma.fields.Nested(LabelOut))


class ConnectedOut(ma.Schema):
    service = ma.fields.Nested(ServiceOut)
    permissions = ma.fields.List(ma.fields.Nested(PermissionOut))


ConnectedPageOut = page_of(ConnectedOut, "ConnectedPageOut",
                           consent_days=ma.fields.Integer())


class AuthorizeCheckOut(ma.Schema):
    service = ma.fields.Nested(ServiceDetailOut)
    requested = ma.fields.List(ma.fields.Nested(PermissionOut),
                               metadata={"description": "what the service asks now: none pre-ticked"})
    redirect_uri = ma.fields.String()


class AuthorizeOut(ma.Schema):
    redirect_to = ma.fields.String(metadata={"description": "the client's redirect URI with code and state "
                                                            "(or error=access_denied)"})


class ReportOut(ma.Schema):
    id = ma.fields.Integer()
    created_at = ma.fields.DateTime()
