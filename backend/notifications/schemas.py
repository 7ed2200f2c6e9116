"""Request and response shapes of the notification endpoints (they also document the OpenAPI)."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from backend.notifications.service import KINDS
from backend.web import page_of


class StrictSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE


class NotificationListArgs(ma.Schema):
    limit = ma.fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = ma.fields.String(load_default=None)
    unread = ma.fields.Boolean(load_default=False, metadata={"description": "only unread notifications"})


class NotificationOut(ma.Schema):
    id = ma.fields.String(metadata={"description": "opaque identifier (the one a push carries)"})
    kind = ma.fields.String(metadata={"description": " | ".join(KINDS)})
    title = ma.fields.String()
    body = ma.fields.String()
    ref_type = ma.fields.String(allow_none=True, metadata={"description": "what to open: document, message…"})
    ref_id = ma.fields.String(allow_none=True)
    created_at = ma.fields.DateTime()
    read_at = ma.fields.DateTime(allow_none=True)
    read = ma.fields.Boolean()


NotificationPageOut = page_of(NotificationOut, "NotificationPageOut",
                              unread_count=ma.fields.Integer())


class UnreadOut(ma.Schema):
    unread_count = ma.fields.Integer()


class MarkedOut(ma.Schema):
    marked = ma.fields.Integer()
    unread_count = ma.fields.Integer()


class PreferenceOut(ma.Schema):
    kind = ma.fields.String()
    label = ma.fields.String()
    push = ma.fields.Boolean()
    email = ma.fields.Boolean()
    switchable = ma.fields.Boolean(metadata={"description": "false: always on (professional or emergency access)"})


class PreferencesOut(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(PreferenceOut))


class PreferenceIn(StrictSchema):
    push = ma.fields.Boolean()
    email = ma.fields.Boolean()


class PushKeysIn(StrictSchema):
    p256dh = ma.fields.String(required=True, validate=validate.Length(min=1, max=128))
    auth = ma.fields.String(required=True, validate=validate.Length(min=1, max=64))


class PushSubscriptionIn(StrictSchema):
    """The JSON of a W3C PushSubscription (or a UnifiedPush endpoint with the app's own keys)."""

    endpoint = ma.fields.String(required=True, validate=validate.Length(min=8, max=1024))
    keys = ma.fields.Nested(PushKeysIn, required=True)
    expirationTime = ma.fields.Raw(allow_none=True, load_default=None)  # noqa: N815 (the W3C name)


class PushSubscriptionOut(ma.Schema):
    registered = ma.fields.Boolean()
    device_id = ma.fields.Integer()
    push_service = ma.fields.String(allow_none=True, metadata={"description": "host of the push service"})
    created_at = ma.fields.DateTime(allow_none=True)
    last_success_at = ma.fields.DateTime(allow_none=True)


class VapidKeyOut(ma.Schema):
    public_key = ma.fields.String(metadata={"description": "applicationServerKey: P-256 point, base64url"})
