"""Request and response shapes of the access page and the access history (they document the OpenAPI)."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from backend.records.access.history import ACTOR_KINDS
from backend.web import PageArgs, page_of


class _StrictAccessSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE


# --- in -------------------------------------------------------------------------------------------------------

class AccessDirectoryArgs(PageArgs):
    q = ma.fields.String(required=True, validate=validate.Length(max=100),
                         metadata={"description": "RPPS (its first digits) or words of the name"})
    profession = ma.fields.String(load_default=None, validate=validate.Length(max=8),
                                  metadata={"description": "TRE_G15 profession code, e.g. 10 (médecin)"})


class AccessProfessionalRefIn(_StrictAccessSchema):
    professional_id = ma.fields.Integer(required=True, validate=validate.Range(min=1))


class AccessBlockIn(_StrictAccessSchema):
    rpps = ma.fields.String(required=True, validate=validate.Length(max=20),
                            metadata={"description": "11 digits (or '8' + RPPS); need not be in the directory"})


class EmergencySwitchesIn(_StrictAccessSchema):
    password = ma.fields.String(required=True, load_only=True, validate=validate.Length(max=256),
                                metadata={"description": "The account password, re-entered"})
    samu = ma.fields.Boolean(load_default=None, metadata={"description": "SAMU regulator access (ETREAT)"})
    btg = ma.fields.Boolean(load_default=None, metadata={"description": "Other professionals in an emergency (BTG)"})
    masked = ma.fields.Boolean(load_default=None, metadata={"description": "Masked documents reachable in an emergency"})


class AccessHistoryArgs(PageArgs):
    actor = ma.fields.List(ma.fields.String(validate=validate.OneOf(ACTOR_KINDS)), load_default=list,
                           metadata={"description": "Who acted (repeatable)"})
    action = ma.fields.List(ma.fields.String(validate=[validate.Length(max=64),
                                                       validate.Regexp(r"^[a-z_]+(\.[a-z_]+)*$")]),
                            load_default=list, metadata={"description": "An action or family, e.g. document"})
    since = ma.fields.Date(load_default=None, metadata={"description": "First day (Europe/Paris), included"})
    until = ma.fields.Date(load_default=None, metadata={"description": "Last day (Europe/Paris), included"})
    emergency = ma.fields.Boolean(load_default=False, metadata={"description": "Emergency accesses only"})


class AccessHistoryExportArgs(AccessHistoryArgs):
    format = ma.fields.String(load_default="csv", validate=validate.OneOf(["csv", "pdf"]))


# --- out ------------------------------------------------------------------------------------------------------

class AccessStandingOut(ma.Schema):
    authorised = ma.fields.Boolean()
    blocked = ma.fields.Boolean()
    medecin_traitant = ma.fields.Boolean()
    administrator = ma.fields.Boolean()


class AccessProfessionalOut(ma.Schema):
    id = ma.fields.Integer()
    rpps = ma.fields.String()
    name = ma.fields.String()
    given_name = ma.fields.String()
    family_name = ma.fields.String()
    profession_code = ma.fields.String()
    profession = ma.fields.String(allow_none=True)
    specialty = ma.fields.String(allow_none=True)
    organisation = ma.fields.String(allow_none=True)
    standing = ma.fields.Nested(AccessStandingOut)


AccessDirectoryPageOut = page_of(AccessProfessionalOut, "AccessDirectoryPageOut")


class AccessConsentOut(ma.Schema):
    id = ma.fields.Integer()
    granted_at = ma.fields.DateTime()
    professional = ma.fields.Nested(AccessProfessionalOut)


AccessConsentPageOut = page_of(AccessConsentOut, "AccessConsentPageOut")


class AccessBlockOut(ma.Schema):
    id = ma.fields.Integer()
    rpps = ma.fields.String()
    blocked_at = ma.fields.DateTime()
    professional = ma.fields.Nested(AccessProfessionalOut, allow_none=True,
                                    metadata={"description": "null when the RPPS is not in the directory"})


AccessBlockPageOut = page_of(AccessBlockOut, "AccessBlockPageOut")


class AccessRoleOut(ma.Schema):
    professional = ma.fields.Nested(AccessProfessionalOut, allow_none=True)


class EmergencySwitchesOut(ma.Schema):
    samu = ma.fields.Boolean(metadata={"description": "SAMU regulator access (ETREAT)"})
    btg = ma.fields.Boolean(metadata={"description": "Other professionals in an emergency (break the glass)"})
    masked = ma.fields.Boolean(metadata={"description": "Masked documents reachable in an emergency"})


class RunningEmergencyAccessOut(ma.Schema):
    id = ma.fields.Integer()
    purpose = ma.fields.String()
    purpose_label = ma.fields.String()
    reason = ma.fields.String()
    started_at = ma.fields.DateTime()
    expires_at = ma.fields.DateTime()
    professional = ma.fields.Nested(AccessProfessionalOut)


class AccessHistoryActorOut(ma.Schema):
    kind = ma.fields.String()
    name = ma.fields.String()
    profession = ma.fields.String(allow_none=True)
    rpps = ma.fields.String(allow_none=True)


class AccessHistoryDocumentOut(ma.Schema):
    id = ma.fields.Integer()
    category = ma.fields.String(allow_none=True)
    category_label = ma.fields.String(allow_none=True)


class AccessHistoryItemOut(ma.Schema):
    id = ma.fields.Integer(metadata={"description": "The audit entry's sequence number"})
    at = ma.fields.DateTime()
    actor = ma.fields.Nested(AccessHistoryActorOut)
    action = ma.fields.String()
    label = ma.fields.String()
    outcome = ma.fields.String(metadata={"description": "granted | refused | failed | done"})
    outcome_label = ma.fields.String()
    purpose = ma.fields.String(allow_none=True)
    purpose_label = ma.fields.String(allow_none=True)
    reason = ma.fields.String(allow_none=True)
    reason_label = ma.fields.String(allow_none=True)
    emergency = ma.fields.Boolean()
    emergency_reason = ma.fields.String(allow_none=True)
    document = ma.fields.Nested(AccessHistoryDocumentOut, allow_none=True)
    count = ma.fields.Integer(allow_none=True)


AccessHistoryPageOut = page_of(AccessHistoryItemOut, "AccessHistoryPageOut")


class RecordAccessPageOut(ma.Schema):
    switches = ma.fields.Nested(EmergencySwitchesOut)
    medecin_traitant = ma.fields.Nested(AccessProfessionalOut, allow_none=True)
    administrator = ma.fields.Nested(AccessProfessionalOut, allow_none=True)
    authorised = ma.fields.List(ma.fields.Nested(AccessConsentOut))
    authorised_next_cursor = ma.fields.String(allow_none=True)
    blocked = ma.fields.List(ma.fields.Nested(AccessBlockOut))
    blocked_next_cursor = ma.fields.String(allow_none=True)
    emergencies = ma.fields.List(ma.fields.Nested(RunningEmergencyAccessOut),
                                 metadata={"description": "Emergency accesses still running"})
    recent_accesses = ma.fields.List(ma.fields.Nested(AccessHistoryItemOut))


class AccessPreviewCategoryOut(ma.Schema):
    category = ma.fields.String()
    label = ma.fields.String()
    visible = ma.fields.Integer(metadata={"description": "Documents of this category the professional sees"})
    total = ma.fields.Integer(metadata={"description": "Documents of this category you see"})


class AccessPreviewOut(ma.Schema):
    professional = ma.fields.Nested(AccessProfessionalOut)
    allowed = ma.fields.Boolean(metadata={"description": "May they read the record now (normal care)"})
    reason = ma.fields.String()
    reason_label = ma.fields.String(allow_none=True)
    basis = ma.fields.String(metadata={"description": "current, or if_authorised: what they would see"})
    visible = ma.fields.Integer()
    total = ma.fields.Integer()
    categories = ma.fields.List(ma.fields.Nested(AccessPreviewCategoryOut))
