"""The forgotten password under /api/v1/auth/password-reset: ask for a code, then set a new password with it."""
from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import current_app
from flask_smorest import Blueprint
from marshmallow import validate

from backend import web
from backend.accounts import reset
from backend.accounts.schemas import StrictSchema
from backend.db import get_session

blp = Blueprint("password_reset", __name__, url_prefix="/api/v1", description="Forgotten password")


class ResetRequestIn(StrictSchema):
    nir = ma.fields.String(required=True, validate=validate.Length(max=32))
    birth_date = ma.fields.String(required=True, validate=validate.Length(max=10),
                                  metadata={"example": "1984-07-14"})


class ResetRequestOut(ma.Schema):
    sent = ma.fields.Boolean(metadata={"description": "always true: the answer does not tell whether an "
                                                      "account exists"})
    expires_in_minutes = ma.fields.Integer()


class ResetConfirmIn(StrictSchema):
    nir = ma.fields.String(required=True, validate=validate.Length(max=32))
    code = ma.fields.String(required=True, validate=validate.Length(max=16))
    new_password = ma.fields.String(required=True, validate=validate.Length(max=256), load_only=True)


class ResetConfirmOut(ma.Schema):
    sessions_revoked = ma.fields.Integer()


def _settings() -> reset.ResetSettings:
    return reset.ResetSettings.from_config(current_app.config)


@blp.route("/auth/password-reset", methods=["POST"])
@blp.arguments(ResetRequestIn)
@blp.response(202, ResetRequestOut)
@web.public
def request_reset(body: dict[str, Any]) -> dict[str, Any]:
    """Send a reset code to the address on file (if the NIR and birth date are an active account's, within
    3 codes an hour). The same answer in every case."""
    session = get_session()
    throttle, address = web.throttle(), web.client_address()
    throttle.reserve(address=address)  # an address past its limit asks no more (429)
    answer = reset.request_reset(session, web.settings(), _settings(), body["nir"], body["birth_date"])
    throttle.refund(session, address=address)  # asking is not a failure: the code has its own limits
    session.commit()
    return answer


@blp.route("/auth/password-reset/confirm", methods=["POST"])
@blp.arguments(ResetConfirmIn)
@blp.response(200, ResetConfirmOut)
@web.public
def confirm_reset(body: dict[str, Any]) -> dict[str, Any]:
    """The code received and a new password: the password changes and every session of the account ends
    (the next sign-in asks for the second factor as always)."""
    session = get_session()
    throttle, address = web.throttle(), web.client_address()
    # counted before the code is compared (kept when it is wrong), as every sign-in attempt is
    throttle.reserve(address=address)
    ended = reset.complete_reset(session, web.settings(), _settings(), body["nir"], body["code"],
                                 body["new_password"])
    throttle.refund(session, address=address)
    throttle.clear(session, account=f"login:{body['nir'].replace(' ', '')}")
    session.commit()
    return {"sessions_revoked": ended}
