"""What the home screen says of the account: the sign-in before this one, and the recent activity on the
account (sign-ins, password, devices…), consecutive repeats grouped, a failed sign-in on a line of its own
marked as an alert. Reads the audit trail; the access history (``backend.records.access.history``) is the place for
what professionals and services did."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from backend.audit.models import AuditEntry
from backend.i18n import message, register_messages

# The actions of the account itself, with the message of each. Anything else (the record, the inbox…)
# belongs to the access history.
LABELS = {
    "account.login": "activity_login", "account.logout": "activity_logout", "account.activated": "activity_activated",
    "account.password_set": "activity_password_set", "account.password_changed": "activity_password_changed",
    "account.mfa_enrolled": "activity_mfa_enrolled", "account.device_revoked": "activity_device_revoked",
    "account.reactivated": "activity_reactivated", "account.precreated": "activity_created",
    "account.password_reset": "activity_password_reset",
    "account.password_reset_requested": "activity_password_reset_requested",
    "login.failed": "activity_login_failed", "login.otp_failed": "activity_login_otp_failed",
    "activation.failed": "activity_activation_failed", "password_reset.failed": "activity_password_reset_failed",
}
# Worth the patient's attention: someone may be trying their password.
ALERTS = frozenset({"login.failed", "login.otp_failed", "activation.failed", "password_reset.failed"})
# What starts a session: the previous one of these is "Dernière connexion".
SIGN_INS = ("account.login", "account.activated", "account.reactivated")
# How far back the home screen looks, and how many lines it shows once repeats are grouped.
LOOK_BACK = 30
SHOWN = 6

register_messages({
    "activity_password_reset": {"fr": "Mot de passe réinitialisé", "en": "Password reset"},
    "activity_password_reset_requested": {"fr": "Code de réinitialisation du mot de passe envoyé",
                                          "en": "Password reset code sent"},
    "activity_login_failed": {"fr": "Échec de connexion : mot de passe erroné",
                              "en": "Failed sign-in: wrong password"},
    "activity_login_otp_failed": {"fr": "Échec de connexion : code de sécurité erroné",
                                  "en": "Failed sign-in: wrong security code"},
    "activity_activation_failed": {"fr": "Échec d'activation : code d'activation erroné",
                                   "en": "Failed activation: wrong activation code"},
    "activity_password_reset_failed": {"fr": "Échec de réinitialisation : code erroné",
                                       "en": "Failed password reset: wrong code"},
    "activity_repeated": {"fr": "{label} ({count} fois)", "en": "{label} ({count} times)"},
})

_ACCOUNT_ACTIVITY = (
    select(AuditEntry.seq, AuditEntry.at, AuditEntry.action)
    .where(AuditEntry.patient_id == bindparam("patient_id"),
           or_(*(AuditEntry.action == action for action in LABELS)))
    .order_by(AuditEntry.seq.desc()).limit(bindparam("limit")))
_PREVIOUS_SIGN_IN = (
    select(AuditEntry.at)
    .where(AuditEntry.patient_id == bindparam("patient_id"), AuditEntry.action.in_(SIGN_INS),
           AuditEntry.at < bindparam("before"))
    .order_by(AuditEntry.seq.desc()).limit(1))


@dataclass
class AccountActivity:
    previous_login_at: dt.datetime | None
    items: list[dict[str, Any]]


def account_activity(session: Session, patient_id: int, session_started_at: dt.datetime) -> AccountActivity:
    """One query in the usual case (a second one only when the previous sign-in is older than what the
    first read): the recent account activity, and the sign-in before the session that started at
    ``session_started_at``."""
    rows = session.execute(_ACCOUNT_ACTIVITY, {"patient_id": patient_id, "limit": LOOK_BACK}).all()
    previous = next((at for _seq, at, action in rows if action in SIGN_INS and at < session_started_at), None)
    if previous is None and len(rows) == LOOK_BACK:
        previous = session.scalar(_PREVIOUS_SIGN_IN, {"patient_id": patient_id, "before": session_started_at})
    items: list[dict[str, Any]] = []
    for _seq, at, action in rows:
        last = items[-1] if items else None
        if last is not None and last["action"] == action:
            last["count"] += 1
            last["first_at"] = at  # the oldest of the group (rows come newest first)
            continue
        if len(items) == SHOWN:
            break
        items.append({"at": at, "first_at": at, "action": action, "count": 1, "alert": action in ALERTS})
    for item in items:
        label = message(LABELS[item["action"]])
        item["label"] = label if item["count"] == 1 else message("activity_repeated", label=label,
                                                                  count=item["count"])
    return AccountActivity(previous, items)
