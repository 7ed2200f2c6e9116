"""Patient account endpoints under /api/v1: activation, opposition, second factor, login, devices,
password, closure and reactivation, and the home summary."""
from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from backend import web
from backend.accounts import schemas as s
from backend.accounts import service as accounts
from backend.accounts.activity import account_activity
from backend.accounts.models import TokenKind
from backend.db import get_session
from backend.i18n import message
from backend.records.documents import api as record_documents
from backend.records.access.policy import Action

blp = Blueprint("accounts", __name__, url_prefix="/api/v1", description="Patient account lifecycle")


def _next(kind: str, issued: accounts.IssuedToken, method: str | None = None,
          account_state: str | None = None) -> dict[str, Any]:
    return {"next": kind, "token": issued.token, "expires_at": issued.expires_at, "method": method,
            "account_state": account_state}


def _access(issued: accounts.IssuedToken) -> dict[str, Any]:
    return {"access_token": issued.token, "token_type": "Bearer", "expires_at": issued.expires_at}


@blp.route("/password-policy")
@blp.response(200, s.PasswordPolicyOut)
@web.public
def password_policy() -> dict[str, Any]:
    """The password rules, for showing them as the patient types."""
    min_length = web.settings().password_min_length
    rules = ["length", "lower", "upper", "digit", "special", "common"]
    return {"min_length": min_length,
            "rules": [{"rule": r, "label": message(f"password_rule_{r}", min_length=min_length)} for r in rules]}


@blp.route("/activation/check", methods=["POST"])
@blp.arguments(s.ActivationCheckIn)
@blp.response(200, s.ActivationCheckOut)
@web.public
def activation_check(body: dict[str, Any]) -> dict[str, Any]:
    """Check NIR + birth date + provisional code before asking for a password (consumes nothing)."""
    patient = accounts.check_activation(get_session(), web.settings(), web.throttle(), body["nir"],
                                        body["birth_date"], body["activation_code"], web.client_address())
    get_session().commit()
    return {"status": "valid", "given_name": patient.first_given_name}


@blp.route("/activation", methods=["POST"])
@blp.arguments(s.ActivationIn)
@blp.response(201, s.NextStepOut)
@web.public
def activation(body: dict[str, Any]) -> dict[str, Any]:
    """Set the password; the code is consumed; a second factor must be enrolled next."""
    session = get_session()
    issued = accounts.activate(session, web.settings(), web.throttle(), body["nir"], body["birth_date"],
                               body["activation_code"], body["password"], web.client_address(),
                               body.get("device_name"))
    session.commit()
    return _next("enrol", issued)


@blp.route("/opposition", methods=["POST"])
@blp.arguments(s.ActivationCheckIn)
@blp.response(200, s.OppositionOut)
@web.public
def opposition(body: dict[str, Any]) -> dict[str, Any]:
    """The patient refuses the account; the record is deleted."""
    session = get_session()
    patient = accounts.oppose(session, web.settings(), web.throttle(), body["nir"], body["birth_date"],
                              body["activation_code"], web.client_address())
    session.commit()
    return {"state": patient.state.value}


@blp.route("/mfa/enrol", methods=["POST"])
@blp.arguments(s.EnrolIn)
@blp.response(200, s.EnrolOut)
@blp.doc(security=[{"bearer": []}])
@web.public
def mfa_enrol(body: dict[str, Any]) -> dict[str, Any]:
    """Start enrolling a second factor (TOTP secret, or a code sent by email). Needs the enrolment token."""
    session = get_session()
    token = accounts.require_token(session, web.bearer(), TokenKind.ENROLMENT)
    result = accounts.start_enrolment(session, web.settings(), token, body["method"])
    session.commit()
    return result


@blp.route("/mfa/confirm", methods=["POST"])
@blp.arguments(s.CodeIn)
@blp.response(200, s.AccessTokenOut)
@blp.doc(security=[{"bearer": []}])
@web.public
def mfa_confirm(body: dict[str, Any]) -> dict[str, Any]:
    """Confirm the second factor with a code: the account becomes active and a device session starts."""
    session = get_session()
    token = accounts.require_token(session, web.bearer(), TokenKind.ENROLMENT)
    issued = accounts.confirm_enrolment(session, web.settings(), web.throttle(), token, body["code"],
                                        body.get("device_name"))
    session.commit()
    return _access(issued)


@blp.route("/auth/login", methods=["POST"])
@blp.arguments(s.LoginIn)
@blp.response(200, s.NextStepOut)
@web.public
def login(body: dict[str, Any]) -> dict[str, Any]:
    """First factor (NIR + password). Gives a short-lived token for the one-time code, never data."""
    session = get_session()
    kind, issued, patient = accounts.login(session, web.settings(), web.throttle(), body["nir"], body["password"],
                                           web.client_address())
    session.commit()
    return _next(kind, issued, patient.mfa_method, patient.state.value)


@blp.route("/auth/otp/resend", methods=["POST"])
@blp.response(204)
@blp.doc(security=[{"bearer": []}])
@web.public
def resend_code() -> None:
    """Send a new one-time code by email (when email is the patient's second factor)."""
    session = get_session()
    token = accounts.require_token(session, web.bearer(), TokenKind.MFA)
    accounts.resend_email_code(session, web.settings(), web.throttle(), token)
    session.commit()


@blp.route("/auth/verify", methods=["POST"])
@blp.arguments(s.CodeIn)
@blp.response(200, s.AccessTokenOut)
@blp.doc(security=[{"bearer": []}])
@web.public
def verify(body: dict[str, Any]) -> dict[str, Any]:
    """Second factor: the one-time code. Returns the device's access token."""
    session = get_session()
    token = accounts.require_token(session, web.bearer(), TokenKind.MFA)
    issued = accounts.complete_login(session, web.settings(), web.throttle(), token, body["code"],
                                     body.get("device_name"))
    session.commit()
    return _access(issued)


@blp.route("/auth/logout", methods=["POST"])
@blp.response(204)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
@web.writes(Action.ACCOUNT)
def logout() -> None:
    """End this device's session."""
    session = get_session()
    accounts.logout(session, web.current_access_token())
    session.commit()


@blp.route("/account/reactivate", methods=["POST"])
@blp.arguments(s.CodeIn)
@blp.response(200, s.AccessTokenOut)
@blp.doc(security=[{"bearer": []}])
@web.public
def reactivate(body: dict[str, Any]) -> dict[str, Any]:
    """Reopen a closed account during its retention period (after /auth/login); cancels a deletion request."""
    session = get_session()
    token = accounts.require_token(session, web.bearer(), TokenKind.MFA)
    issued = accounts.reactivate(session, web.settings(), web.throttle(), token, body["code"],
                                 body.get("device_name"))
    session.commit()
    return _access(issued)


@blp.route("/me")
@blp.response(200, s.MeOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
def me() -> dict[str, Any]:
    """The patient's identity traits and account state."""
    p = web.current_patient()
    return {"patient_id": p.id, "given_name": p.first_given_name, "given_names": p.given_names,
            "family_name": p.family_name, "birth_date": p.birth_date, "sex": p.sex, "email": p.email,
            "phone": p.phone, "state": p.state.value, "mfa_method": p.mfa_method, "activated_at": p.activated_at,
            "timezone": patient_timezone()}


def patient_timezone() -> str:
    """The patient's time zone, where times are entered, shown and exported (``CARNET_AGENDA_TIMEZONE``,
    Europe/Paris): the app formats every time in it whatever the phone's zone."""
    return str(current_app.config.get("AGENDA_TIMEZONE") or "Europe/Paris")


@blp.route("/home")
@blp.response(200, record_documents.s.HomeWithRecordsOut)  # HomeOut + the records section
@blp.doc(security=[{"bearer": []}])
@web.patient_required
def home() -> dict[str, Any]:
    """What the home screen shows: greeting, recent activity on the account, next steps."""
    session = get_session()
    p = web.current_patient()
    activity = account_activity(session, p.id, web.current_access_token().created_at)
    devices = accounts.count_devices(session, p)
    steps = []
    if not p.email:
        steps.append({"id": "email", "label": message("next_step_email")})
    steps.append({"id": "access", "label": message("next_step_access")})
    return {
        "given_name": p.first_given_name, "family_name": p.family_name, "last_login_at": p.last_login_at,
        "previous_login_at": activity.previous_login_at, "timezone": patient_timezone(), "sex": p.sex,
        "devices": devices, "recent_activity": activity.items,
        "next_steps": steps,
        "records": record_documents.home_section(session, p.id, web.current_actor()),
    }


@blp.route("/account/devices")
class Devices(MethodView):
    @blp.arguments(web.PageArgs, location="query")
    @blp.response(200, s.DevicePageOut)
    @blp.doc(security=[{"bearer": []}])
    @web.patient_required
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The devices signed in to the account (newest first, paginated)."""
        session = get_session()
        current = web.current_access_token()
        rows = accounts.list_devices(session, web.current_patient(), limit=args["limit"] + 1,
                                     after_id=web.decode_cursor(args["cursor"]))
        page, more = rows[: args["limit"]], len(rows) > args["limit"]
        return {"items": [{"id": r.id, "device_name": r.device_name, "created_at": r.created_at,
                           "last_used_at": r.last_used_at, "expires_at": r.expires_at, "current": r.id == current.id}
                          for r in page],
                "next_cursor": web.encode_cursor(page[-1].id) if more else None}


@blp.route("/account/devices/<int:device_id>", methods=["DELETE"])
@blp.response(204)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
@web.writes(Action.ACCOUNT)
def revoke_device(device_id: int) -> None:
    """Sign a device out: its token stops working on its next request."""
    session = get_session()
    accounts.revoke_device(session, web.current_patient(), device_id)
    session.commit()


@blp.route("/account/password", methods=["POST"])
@blp.arguments(s.PasswordChangeIn)
@blp.response(200, s.PasswordChangeOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
@web.writes(Action.ACCOUNT)
def change_password(body: dict[str, Any]) -> dict[str, Any]:
    """Change the password; every other device is signed out."""
    session = get_session()
    revoked = accounts.change_password(session, web.settings(), web.throttle(), web.current_patient(),
                                       web.current_access_token(), body["current_password"], body["new_password"])
    session.commit()
    return {"sessions_revoked": revoked}


@blp.route("/account/close", methods=["POST"])
@blp.arguments(s.CloseIn)
@blp.response(200, s.CloseOut)
@blp.doc(security=[{"bearer": []}])
@web.patient_required
@web.writes(Action.ACCOUNT)
def close(body: dict[str, Any]) -> dict[str, Any]:
    """Close the account (password re-entered), optionally asking for deletion after retention."""
    session = get_session()
    p = accounts.close_account(session, web.settings(), web.throttle(), web.current_patient(), body["password"],
                               body["request_deletion"])
    session.commit()
    return {"state": p.state.value, "closed_at": p.closed_at, "retention_until": p.retention_until,
            "deletion_requested": p.deletion_requested_at is not None}
