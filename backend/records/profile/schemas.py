"""Request and response shapes of the medical-profile endpoints (they document the OpenAPI).

Entry, measure and organ-donation bodies are checked by the service (``kinds.py``), which answers in
French field by field; their schemas here pass the JSON object through and describe it.
"""
from __future__ import annotations

import datetime as dt

import marshmallow as ma
from marshmallow import validate

from backend.web import PAGE_MAX, page_of


class StrictSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE


class PassThrough(ma.Schema):
    """The body is validated by the service (French messages per field)."""

    class Meta:
        unknown = ma.INCLUDE


class ProfileEntryIn(PassThrough):
    """Fields of the kind (see ``GET /record/profile/kinds``), e.g. for an allergy
    ``{"substance": "Pénicilline", "severity": "severe", "since": "2012"}``. Dates are ISO (``AAAA-MM-JJ``,
    or partial ``AAAA-MM`` / ``AAAA``). A field set to null is cleared (PATCH)."""


class MeasureIn(PassThrough):
    """``{"type": "weight", "value": 72.5, "unit": "kg", "measured_at": "2025-03-01T08:30", "note": "…"}``;
    blood pressure: ``systolic`` and ``diastolic`` instead of ``value``. ``unit`` defaults to the type's first
    unit; ``measured_at`` defaults to now (without an offset: French local time)."""


class OrganDonationIn(PassThrough):
    """``{"position": "not_stated|accepts|refuses|refuses_partially", "informed_at": "AAAA-MM-JJ",
    "comment": "…"}``."""


class ProfileRemovalIn(StrictSchema):
    reason = ma.fields.String(validate=validate.Length(max=1000), allow_none=True,
                              metadata={"description": "Why the patient asks for the removal (optional)."})


class ProfileAuthorOut(ma.Schema):
    kind = ma.fields.String(metadata={"description": "patient | professional"})
    name = ma.fields.String(allow_none=True)
    rpps = ma.fields.String(allow_none=True)


class EntryOut(ma.Schema):
    id = ma.fields.Integer()
    kind = ma.fields.String()
    title = ma.fields.String(allow_none=True)
    fields = ma.fields.Dict(keys=ma.fields.String(), metadata={"description": "The kind's fields."})
    source = ma.fields.String(metadata={"description": "patient | professional | migration"})
    author = ma.fields.Nested(ProfileAuthorOut)
    created_at = ma.fields.DateTime()
    updated_at = ma.fields.DateTime(allow_none=True)
    editable = ma.fields.Boolean(metadata={"description": "False: recorded by a professional, removal on request."})
    hidden = ma.fields.Boolean()
    needs_confirmation = ma.fields.Boolean()
    conflict_group = ma.fields.String(allow_none=True)
    removal_requested_at = ma.fields.DateTime(allow_none=True)
    document_id = ma.fields.Integer(allow_none=True, metadata={
        "description": "The document the entry was read from (an implant from an operative report…)."})
    proposal = ma.fields.Boolean(metadata={"description": "Proposed by a document (a dispensed vaccine)."})


class EntryPageArgs(ma.Schema):
    limit = ma.fields.Integer(load_default=20, validate=validate.Range(min=1, max=PAGE_MAX))
    cursor = ma.fields.String(load_default=None)
    include_hidden = ma.fields.Boolean(load_default=False)


EntryPageOut = page_of(EntryOut, "EntryPageOut")


class DeletionOut(ma.Schema):
    status = ma.fields.String(metadata={"description": "deleted | removal_requested"})
    entry = ma.fields.Nested(EntryOut, allow_none=True)


class MeasureOut(ma.Schema):
    id = ma.fields.Integer()
    type = ma.fields.String()
    measured_at = ma.fields.DateTime()
    value = ma.fields.Float(allow_none=True)
    unit = ma.fields.String(allow_none=True)
    systolic = ma.fields.Float(allow_none=True)
    diastolic = ma.fields.Float(allow_none=True)
    chart_value = ma.fields.Float(allow_none=True, metadata={"description": "The value in the type's chart unit."})
    note = ma.fields.String(allow_none=True)
    source = ma.fields.String()
    author = ma.fields.Nested(ProfileAuthorOut)
    created_at = ma.fields.DateTime()
    updated_at = ma.fields.DateTime(allow_none=True)
    editable = ma.fields.Boolean()
    removal_requested_at = ma.fields.DateTime(allow_none=True)


class MeasureDeletionOut(ma.Schema):
    status = ma.fields.String(metadata={"description": "deleted | removal_requested"})
    measure = ma.fields.Nested(MeasureOut, allow_none=True)


SERIES_DOC = {"description": "Chart series in time order: {\"value\": [[iso_date, value], …]} or, for blood "
                             "pressure, {\"systolic\": […], \"diastolic\": […]}."}


class MeasureSeriesArgs(ma.Schema):
    limit = ma.fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))
    cursor = ma.fields.String(load_default=None)
    since = ma.fields.AwareDateTime(load_default=None, default_timezone=dt.timezone.utc)
    until = ma.fields.AwareDateTime(load_default=None, default_timezone=dt.timezone.utc)


class MeasureSeriesOut(ma.Schema):
    type = ma.fields.String()
    label = ma.fields.String()
    unit = ma.fields.String()
    items = ma.fields.List(ma.fields.Nested(MeasureOut))
    series = ma.fields.Dict(metadata=SERIES_DOC)
    next_cursor = ma.fields.String(allow_none=True)


class MeasureSummaryOut(ma.Schema):
    type = ma.fields.String()
    label = ma.fields.String()
    unit = ma.fields.String()
    count = ma.fields.Integer()
    latest = ma.fields.Nested(MeasureOut, allow_none=True)
    series = ma.fields.Dict(metadata=SERIES_DOC)


class DirectiveDocumentOut(ma.Schema):
    id = ma.fields.Integer()
    title = ma.fields.String(allow_none=True)


class DirectiveIn(StrictSchema):
    text = ma.fields.String(allow_none=True, metadata={"description": "The directives, in the patient's words."})
    document_id = ma.fields.Integer(allow_none=True, metadata={"description": "A document of the record (upload)."})
    withdrawn = ma.fields.Boolean(load_default=False, metadata={"description": "Withdraw the directives in force."})


class DirectiveOut(ma.Schema):
    id = ma.fields.Integer()
    context = ma.fields.String(metadata={"description": "good_health | end_of_life"})
    version = ma.fields.Integer()
    text = ma.fields.String(allow_none=True)
    document = ma.fields.Nested(DirectiveDocumentOut, allow_none=True)
    withdrawn = ma.fields.Boolean()
    created_at = ma.fields.DateTime()
    source = ma.fields.String()
    author = ma.fields.Nested(ProfileAuthorOut)


class DirectiveContextOut(ma.Schema):
    label = ma.fields.String()
    current = ma.fields.Nested(DirectiveOut, allow_none=True)
    versions = ma.fields.Integer()


class OrganDonationOut(ma.Schema):
    id = ma.fields.Integer()
    position = ma.fields.String()
    label = ma.fields.String()
    informed_at = ma.fields.String(allow_none=True)
    comment = ma.fields.String(allow_none=True)
    created_at = ma.fields.DateTime()
    source = ma.fields.String()
    author = ma.fields.Nested(ProfileAuthorOut)


class DirectivesOut(ma.Schema):
    good_health = ma.fields.Nested(DirectiveContextOut)
    end_of_life = ma.fields.Nested(DirectiveContextOut)
    organ_donation = ma.fields.Nested(OrganDonationOut, allow_none=True)


DirectivePageOut = page_of(DirectiveOut, "DirectivePageOut")


OrganDonationPageOut = page_of(OrganDonationOut, "OrganDonationPageOut")


class KindBucketOut(ma.Schema):
    label = ma.fields.String()
    items = ma.fields.List(ma.fields.Nested(EntryOut))
    total = ma.fields.Integer()
    has_more = ma.fields.Boolean()


class ConflictOut(ma.Schema):
    group = ma.fields.String(allow_none=True)
    kind = ma.fields.String()
    count = ma.fields.Integer()


class ViewCountsOut(ma.Schema):
    dispensed = ma.fields.Integer()
    reimbursements = ma.fields.Integer()
    oncology = ma.fields.Integer()
    proposals = ma.fields.Integer(metadata={"description": "Entries proposed by documents, to confirm."})


class ProfilePageOut(ma.Schema):
    entries = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Nested(KindBucketOut))
    measures = ma.fields.List(ma.fields.Nested(MeasureSummaryOut))
    directives = ma.fields.Nested(DirectivesOut)
    hidden_count = ma.fields.Integer()
    removal_requests = ma.fields.Integer()
    conflicts = ma.fields.List(ma.fields.Nested(ConflictOut))
    views = ma.fields.Nested(ViewCountsOut)


class ConflictGroupOut(ma.Schema):
    group = ma.fields.String(allow_none=True)
    kind = ma.fields.String()
    entries = ma.fields.List(ma.fields.Nested(EntryOut))


class ConflictsOut(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(ConflictGroupOut))


class KindsOut(ma.Schema):
    kinds = ma.fields.List(ma.fields.Dict())
    measure_types = ma.fields.List(ma.fields.Dict())
    directive_contexts = ma.fields.List(ma.fields.Dict())
    organ_donation_positions = ma.fields.List(ma.fields.Dict())


class ProfileDocumentOut(ma.Schema):
    id = ma.fields.Integer()
    title = ma.fields.String()
    date = ma.fields.DateTime()
    type_code = ma.fields.String(allow_none=True)
    class_code = ma.fields.String(allow_none=True)
    category = ma.fields.String()
    author_name = ma.fields.String(allow_none=True)
    author_organisation = ma.fields.String(allow_none=True)
    mime_type = ma.fields.String()
    structured = ma.fields.Boolean()


class DispensedItemOut(ma.Schema):
    name = ma.fields.String(allow_none=True)
    code = ma.fields.String(allow_none=True, metadata={"description": "CIP (or UCD) code"})
    generic = ma.fields.String(allow_none=True)
    quantity = ma.fields.Float(allow_none=True)
    package = ma.fields.String(allow_none=True)
    dispensed_at = ma.fields.DateTime(allow_none=True)
    pharmacy = ma.fields.String(allow_none=True)
    atc = ma.fields.String(allow_none=True, metadata={"description": "ATC code of the generic class"})
    lot = ma.fields.String(allow_none=True)
    vaccine = ma.fields.Boolean(metadata={"description": "A vaccine (ATC J07): it proposes a vaccination."})


class DispensationOut(ma.Schema):
    document = ma.fields.Nested(ProfileDocumentOut)
    dispensed_at = ma.fields.DateTime()
    structured = ma.fields.Boolean(metadata={"description": "False: open the document to read it."})
    pharmacy = ma.fields.String(allow_none=True)
    items = ma.fields.List(ma.fields.Nested(DispensedItemOut))


class DispensedOut(ma.Schema):
    since = ma.fields.DateTime()
    months = ma.fields.Integer()
    items = ma.fields.List(ma.fields.Nested(DispensationOut))
    next_cursor = ma.fields.String(allow_none=True)


class ReimbursementArgs(ma.Schema):
    limit = ma.fields.Integer(load_default=20, validate=validate.Range(min=1, max=PAGE_MAX))
    cursor = ma.fields.String(load_default=None)
    kind = ma.fields.String(load_default=None, validate=validate.OneOf(
        ["consultations", "medicines", "biology", "imaging", "hospital", "devices", "vaccines"]))


class EpisodeOut(ma.Schema):
    kind = ma.fields.String()
    date = ma.fields.DateTime(allow_none=True)
    end = ma.fields.DateTime(allow_none=True)
    label = ma.fields.String(allow_none=True)
    detail = ma.fields.String(allow_none=True)
    where = ma.fields.String(allow_none=True)
    document_id = ma.fields.Integer()


class EpisodeKindOut(ma.Schema):
    kind = ma.fields.String()
    label = ma.fields.String()
    count = ma.fields.Integer()


class ReimbursementsOut(ma.Schema):
    since = ma.fields.DateTime()
    months = ma.fields.Integer()
    documents = ma.fields.List(ma.fields.Nested(ProfileDocumentOut))
    kinds = ma.fields.List(ma.fields.Nested(EpisodeKindOut))
    episodes = ma.fields.List(ma.fields.Nested(EpisodeOut))
    next_cursor = ma.fields.String(allow_none=True)


ONCOLOGY_STEPS = ["pathology", "biology", "imaging", "operative", "rcp", "pps", "ppac"]


class OncologyArgs(ma.Schema):
    limit = ma.fields.Integer(load_default=20, validate=validate.Range(min=1, max=PAGE_MAX))
    cursor = ma.fields.String(load_default=None)
    step = ma.fields.String(load_default=None, validate=validate.OneOf(ONCOLOGY_STEPS))


class OncologyStepOut(ma.Schema):
    step = ma.fields.String(metadata={"description": " | ".join(ONCOLOGY_STEPS)})
    label = ma.fields.String()
    date = ma.fields.DateTime()
    document = ma.fields.Nested(ProfileDocumentOut)
    author_professional_id = ma.fields.Integer(allow_none=True)


class CareTeamMemberOut(ma.Schema):
    professional_id = ma.fields.Integer(allow_none=True, metadata={
        "description": "In the directory: the id to write to (POST /inbox/threads), if they already wrote."})
    rpps = ma.fields.String(allow_none=True)
    name = ma.fields.String(allow_none=True)
    organisation = ma.fields.String(allow_none=True)
    profession = ma.fields.String(allow_none=True)
    steps = ma.fields.List(ma.fields.String())
    step_labels = ma.fields.List(ma.fields.String())
    last_date = ma.fields.DateTime()


class OncologyOut(ma.Schema):
    started_on = ma.fields.DateTime(allow_none=True,
                                    metadata={"description": "The first pathology report or RCP sheet."})
    steps = ma.fields.List(ma.fields.Nested(OncologyStepOut))
    care_team = ma.fields.List(ma.fields.Nested(CareTeamMemberOut))
    next_cursor = ma.fields.String(allow_none=True)


class ProposalDocumentOut(ma.Schema):
    id = ma.fields.Integer()
    title = ma.fields.String()
    date = ma.fields.DateTime()
    organisation = ma.fields.String(allow_none=True)


class ProposalOut(EntryOut):
    document = ma.fields.Nested(ProposalDocumentOut, allow_none=True)


ProposalsOut = page_of(ProposalOut, "ProposalsOut")
