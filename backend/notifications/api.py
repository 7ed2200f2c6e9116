"""Notification endpoints under /api/v1: the in-app centre, preferences per kind, and this device's
Web Push subscription."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from flask_smorest import Blueprint

from backend import web
from backend.db import get_session
from backend.errors import DomainError, NotFound
from backend.i18n import language
from backend.notifications import messages, push
from backend.notifications import schemas as s
from backend.notifications import service as notifications
from backend.notifications.models import Notification, PushSubscription
from backend.notifications.settings import NotificationSettings
from backend.records.access.policy import Action

blp = Blueprint("notifications", __name__, url_prefix="/api/v1", description="Notifications and push")


def _settings() -> NotificationSettings:
    return current_app.extensions["carnet.notifications"]


def _item(row: Notification) -> dict[str, Any]:
    return notifications.describe(row, language())


def _for_representative() -> bool:
    """A minor's legal representative reads the child's notifications without those about secret care."""
    return web.current_actor().kind == "representative"


@blp.route("/notifications")
@blp.arguments(s.NotificationListArgs, location="query")
@blp.response(200, s.NotificationPageOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
def list_notifications(args: dict[str, Any]) -> dict[str, Any]:
    """The notification centre, newest first (paginated), with the unread count."""
    session = get_session()
    patient = web.current_patient()
    rows = notifications.list_notifications(session, patient.id, limit=args["limit"] + 1,
                                            after_id=web.decode_cursor(args["cursor"]), unread_only=args["unread"],
                                            for_representative=_for_representative())
    page, more = rows[: args["limit"]], len(rows) > args["limit"]
    return {"items": [_item(r) for r in page], "next_cursor": web.encode_cursor(page[-1].id) if more else None,
            "unread_count": notifications.unread_count(session, patient.id,
                                                      for_representative=_for_representative())}


@blp.route("/notifications/unread-count")
@blp.response(200, s.UnreadOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
def unread_count() -> dict[str, Any]:
    """How many notifications are unread (the badge)."""
    return {"unread_count": notifications.unread_count(get_session(), web.current_patient().id,
                                                       for_representative=_for_representative())}


@blp.route("/notifications/<string:notification_id>")
@blp.response(200, s.NotificationOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
def get_notification(notification_id: str) -> dict[str, Any]:
    """One notification, by the opaque id a push carries."""
    return _item(notifications.get_notification(get_session(), web.current_patient().id, notification_id,
                                                for_representative=_for_representative()))


@blp.route("/notifications/<string:notification_id>/read", methods=["POST"])
@blp.response(200, s.NotificationOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
@web.writes(Action.NOTIFICATION_SETTINGS)
def mark_read(notification_id: str) -> dict[str, Any]:
    """Mark one notification read (idempotent)."""
    session = get_session()
    row = notifications.mark_read(session, web.current_patient().id, notification_id,
                                  for_representative=_for_representative())
    session.commit()
    return _item(row)


@blp.route("/notifications/read-all", methods=["POST"])
@blp.response(200, s.MarkedOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
@web.writes(Action.NOTIFICATION_SETTINGS)
def mark_all_read() -> dict[str, Any]:
    """Mark every notification read."""
    session = get_session()
    marked = notifications.mark_all_read(session, web.current_patient().id, for_representative=_for_representative())
    session.commit()
    return {"marked": marked, "unread_count": 0}


@blp.route("/notifications/preferences")
@blp.response(200, s.PreferencesOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
def get_preferences() -> dict[str, Any]:
    """Push and email, per kind; professional and emergency access are always on."""
    prefs = notifications.preferences(get_session(), web.current_patient().id)
    return {"items": [_preference(p) for p in prefs]}


@blp.route("/notifications/preferences/<string:kind>", methods=["PUT"])
@blp.arguments(s.PreferenceIn)
@blp.response(200, s.PreferenceOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
@web.writes(Action.NOTIFICATION_SETTINGS)
def set_preference(body: dict[str, Any], kind: str) -> dict[str, Any]:
    """Switch a kind on or off per channel (422 for a kind that cannot be switched off)."""
    session = get_session()
    pref = notifications.set_preference(session, web.current_patient().id, kind, push=body.get("push"),
                                        email=body.get("email"))
    session.commit()
    return _preference(pref)


def _preference(p: notifications.Preference) -> dict[str, Any]:
    return {"kind": p.kind, "label": messages.kind_label(p.kind, language()), "push": p.push, "email": p.email,
            "switchable": p.switchable}


# --- this device's push subscription ----------------------------------------------------------------------

@blp.route("/push/vapid-public-key")
@blp.response(200, s.VapidKeyOut)
@web.public
def vapid_public_key() -> dict[str, Any]:
    """The applicationServerKey to subscribe with (public by nature; 503 when push is not set up)."""
    key = _settings().vapid_private_key
    if not key:
        raise DomainError("push_unavailable", 503)
    return {"public_key": push.application_server_key(key)}


def _subscription_out(row: PushSubscription | None) -> dict[str, Any]:
    device = web.current_access_token()
    if row is None:
        return {"registered": False, "device_id": device.id, "push_service": None, "created_at": None,
                "last_success_at": None}
    return {"registered": True, "device_id": device.id, "push_service": urlsplit(row.endpoint).hostname,
            "created_at": row.created_at, "last_success_at": row.last_success_at}


@blp.route("/push/subscription")
@blp.response(200, s.PushSubscriptionOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
def get_subscription() -> dict[str, Any]:
    """Whether this device receives push notifications."""
    return _subscription_out(push.device_subscription(get_session(), web.current_access_token()))


@blp.route("/push/subscription", methods=["PUT"])
@blp.arguments(s.PushSubscriptionIn)
@blp.response(200, s.PushSubscriptionOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
@web.writes(Action.NOTIFICATION_SETTINGS)
def put_subscription(body: dict[str, Any]) -> dict[str, Any]:
    """Register (or replace) this device's subscription: endpoint, p256dh, auth."""
    settings = _settings()
    if not settings.vapid_private_key:
        raise DomainError("push_unavailable", 503)
    session = get_session()
    row = push.register_subscription(session, web.current_access_token(), body["endpoint"], body["keys"]["p256dh"],
                                     body["keys"]["auth"], allow_http=settings.push_allow_http)
    session.commit()
    return _subscription_out(row)


@blp.route("/push/subscription", methods=["DELETE"])
@blp.response(204)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
@web.writes(Action.NOTIFICATION_SETTINGS)
def delete_subscription() -> None:
    """Stop push notifications on this device (the centre and email go on)."""
    session = get_session()
    if not push.remove_subscription(session, web.current_access_token()):
        raise NotFound("push_subscription_not_found")
    session.commit()
