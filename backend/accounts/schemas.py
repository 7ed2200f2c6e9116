"""Request and response shapes of the account endpoints (they also document the OpenAPI)."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from backend.web import page_of


class StrictSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE


class ActivationCheckIn(StrictSchema):
    nir = ma.fields.String(required=True, validate=validate.Length(max=32),
                           metadata={"description": "NIR, 15 characters with key", "example": "284076322001001"})
    birth_date = ma.fields.String(required=True, validate=validate.Length(max=10),
                                  metadata={"example": "1984-07-14"})
    activation_code = ma.fields.String(required=True, validate=validate.Length(max=32))


class ActivationCheckOut(ma.Schema):
    status = ma.fields.String()
    given_name = ma.fields.String()


class ActivationIn(ActivationCheckIn):
    password = ma.fields.String(required=True, validate=validate.Length(max=256), load_only=True)
    device_name = ma.fields.String(validate=validate.Length(max=120))


class NextStepOut(ma.Schema):
    next = ma.fields.String(metadata={"description": "otp | enrol"})
    token = ma.fields.String()
    method = ma.fields.String(allow_none=True)
    expires_at = ma.fields.DateTime()
    account_state = ma.fields.String()


class OppositionOut(ma.Schema):
    state = ma.fields.String()


class EnrolIn(StrictSchema):
    method = ma.fields.String(load_default="totp", validate=validate.OneOf(["totp", "email"]))


class EnrolOut(ma.Schema):
    method = ma.fields.String()
    secret = ma.fields.String()
    otpauth_uri = ma.fields.String()
    sent_to = ma.fields.String()


class CodeIn(StrictSchema):
    code = ma.fields.String(required=True, validate=validate.Length(max=16))
    device_name = ma.fields.String(validate=validate.Length(max=120))


class AccessTokenOut(ma.Schema):
    access_token = ma.fields.String()
    token_type = ma.fields.String()
    expires_at = ma.fields.DateTime()


class LoginIn(StrictSchema):
    nir = ma.fields.String(required=True, validate=validate.Length(max=32))
    password = ma.fields.String(required=True, validate=validate.Length(max=256), load_only=True)


class MeOut(ma.Schema):
    patient_id = ma.fields.Integer()
    given_name = ma.fields.String()
    given_names = ma.fields.String()
    family_name = ma.fields.String()
    birth_date = ma.fields.Date()
    sex = ma.fields.String()
    email = ma.fields.String(allow_none=True)
    phone = ma.fields.String(allow_none=True)
    state = ma.fields.String()
    mfa_method = ma.fields.String(allow_none=True)
    activated_at = ma.fields.DateTime(allow_none=True)
    timezone = ma.fields.String(metadata={"description": "the patient's time zone (IANA)"})


class ActivityOut(ma.Schema):
    at = ma.fields.DateTime(metadata={"description": "the latest of the group"})
    first_at = ma.fields.DateTime(metadata={"description": "the earliest of the group (= at when count is 1)"})
    action = ma.fields.String()
    label = ma.fields.String()
    count = ma.fields.Integer(metadata={"description": "consecutive entries of this action grouped in this line"})
    alert = ma.fields.Boolean(metadata={"description": "a failed sign-in or code: worth the patient's attention"})


class StepOut(ma.Schema):
    id = ma.fields.String()
    label = ma.fields.String()


class HomeOut(ma.Schema):
    given_name = ma.fields.String()
    family_name = ma.fields.String()
    last_login_at = ma.fields.DateTime(allow_none=True, metadata={"description": "this session's sign-in"})
    previous_login_at = ma.fields.DateTime(allow_none=True, metadata={
        "description": "the sign-in before this session's (null: this is the first)"})
    timezone = ma.fields.String(metadata={"description": "the patient's time zone (IANA): the one times are "
                                                         "entered, shown and exported in"})
    sex = ma.fields.String(metadata={"description": "F | M: what the app's French sentences about the patient agree with"})
    devices = ma.fields.Integer()
    recent_activity = ma.fields.List(ma.fields.Nested(ActivityOut))
    next_steps = ma.fields.List(ma.fields.Nested(StepOut))


class DeviceOut(ma.Schema):
    id = ma.fields.Integer()
    device_name = ma.fields.String(allow_none=True)
    created_at = ma.fields.DateTime()
    last_used_at = ma.fields.DateTime(allow_none=True)
    expires_at = ma.fields.DateTime()
    current = ma.fields.Boolean()


DevicePageOut = page_of(DeviceOut, "DevicePageOut")


class PasswordChangeIn(StrictSchema):
    current_password = ma.fields.String(required=True, validate=validate.Length(max=256), load_only=True)
    new_password = ma.fields.String(required=True, validate=validate.Length(max=256), load_only=True)


class PasswordChangeOut(ma.Schema):
    sessions_revoked = ma.fields.Integer()


class CloseIn(StrictSchema):
    password = ma.fields.String(required=True, validate=validate.Length(max=256), load_only=True)
    request_deletion = ma.fields.Boolean(load_default=False)


class CloseOut(ma.Schema):
    state = ma.fields.String()
    closed_at = ma.fields.DateTime()
    retention_until = ma.fields.DateTime()
    deletion_requested = ma.fields.Boolean()


class PasswordRuleOut(ma.Schema):
    rule = ma.fields.String()
    label = ma.fields.String()


class PasswordPolicyOut(ma.Schema):
    min_length = ma.fields.Integer()
    rules = ma.fields.List(ma.fields.Nested(PasswordRuleOut))
