"""Request and response shapes of the patient's agenda endpoints (they also document the OpenAPI).

Date-times go out with the offset of the zone they are lived in (``2026-03-29T09:00:00+02:00``), plus
``local_date``/``local_time`` ready to show; date-times without an offset coming in are read as
Europe/Paris wall times.
"""
from __future__ import annotations

import marshmallow as ma
from flask_smorest.fields import Upload
from marshmallow import validate

from backend import web
from backend.accounts.schemas import StrictSchema
from backend.agenda.prevention import STATUSES
from backend.agenda.service import VISIT_TYPES
from backend.web import page_of


class AgendaPlaceOut(ma.Schema):
    name = ma.fields.String(allow_none=True)
    address = ma.fields.String(allow_none=True)
    postcode = ma.fields.String(allow_none=True)
    city = ma.fields.String(allow_none=True)


class AgendaSlotSearchArgs(web.PageArgs):
    professional_id = ma.fields.Integer(metadata={"description": "Only this professional's slots"})
    name = ma.fields.String(validate=validate.Length(max=100), metadata={"description": "Professional's name"})
    specialty = ma.fields.String(validate=validate.Length(max=100),
                                 metadata={"description": "Specialty code (e.g. SM26) or words of its label"})
    place = ma.fields.String(validate=validate.Length(max=100),
                             metadata={"description": "City, postcode (prefix) or place name"})
    visit_type = ma.fields.String(validate=validate.OneOf(VISIT_TYPES))
    date = ma.fields.Date(metadata={"description": "First local day (default: today)"})
    days = ma.fields.Integer(load_default=7, validate=validate.Range(min=1, max=31))


class AgendaSlotOut(ma.Schema):
    slot_id = ma.fields.String()
    schedule_id = ma.fields.Integer()
    professional_id = ma.fields.Integer()
    professional_name = ma.fields.String()
    specialty_code = ma.fields.String(allow_none=True)
    specialty_label = ma.fields.String(allow_none=True)
    visit_type = ma.fields.String()
    visit_type_label = ma.fields.String()
    place = ma.fields.Nested(AgendaPlaceOut)
    starts_at = ma.fields.DateTime()
    ends_at = ma.fields.DateTime()
    timezone = ma.fields.String()
    local_date = ma.fields.String()
    local_time = ma.fields.String()
    cancel_until = ma.fields.DateTime(metadata={"description": "booked, the appointment can be cancelled or moved "
                                                               "until then (CARNET_AGENDA_CANCEL_CUTOFF_HOURS)"})


AgendaSlotPageOut = page_of(AgendaSlotOut, "AgendaSlotPageOut")


class AgendaSpecialtyOut(ma.Schema):
    code = ma.fields.String(allow_none=True)
    label = ma.fields.String()


class AgendaSpecialtyListOut(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(AgendaSpecialtyOut))


class AgendaBookIn(StrictSchema):
    slot_id = ma.fields.String(required=True, validate=validate.Length(max=40))
    notes = ma.fields.String(validate=validate.Length(max=2000), allow_none=True)


class AgendaRescheduleIn(StrictSchema):
    slot_id = ma.fields.String(required=True, validate=validate.Length(max=40))


class AgendaAppointmentListArgs(web.PageArgs):
    date_from = ma.fields.Date(data_key="from", metadata={"description": "First local day (default: all)"})
    date_to = ma.fields.Date(data_key="to", metadata={"description": "Last local day, included"})
    include_cancelled = ma.fields.Boolean(load_default=False)


class AgendaAppointmentOut(ma.Schema):
    id = ma.fields.Integer()
    kind = ma.fields.String(metadata={"description": "booking | professional | personal | imported"})
    status = ma.fields.String(metadata={"description": "booked | cancelled"})
    title = ma.fields.String()
    starts_at = ma.fields.DateTime()
    ends_at = ma.fields.DateTime()
    all_day = ma.fields.Boolean()
    timezone = ma.fields.String()
    local_date = ma.fields.String()
    local_time = ma.fields.String()
    local_end_time = ma.fields.String()
    professional_id = ma.fields.Integer(allow_none=True)
    professional_name = ma.fields.String(allow_none=True)
    specialty_label = ma.fields.String(allow_none=True)
    visit_type = ma.fields.String(allow_none=True)
    visit_type_label = ma.fields.String(allow_none=True)
    place = ma.fields.Nested(AgendaPlaceOut)
    notes = ma.fields.String(allow_none=True)
    created_by = ma.fields.String()
    cancelled_at = ma.fields.DateTime(allow_none=True)
    cancelled_by = ma.fields.String(allow_none=True)
    can_cancel = ma.fields.Boolean(metadata={"description": "Cancel/reschedule allowed now (cut-off)"})
    cancel_deadline = ma.fields.DateTime(allow_none=True)
    reminders = ma.fields.List(ma.fields.DateTime(), metadata={"description": "Pending reminders (detail only)"})


AgendaAppointmentPageOut = page_of(AgendaAppointmentOut, "AgendaAppointmentPageOut")


class AgendaEntryIn(StrictSchema):
    title = ma.fields.String(required=True, validate=validate.Length(min=1, max=200))
    starts_at = ma.fields.DateTime(required=True)
    ends_at = ma.fields.DateTime(required=True)
    all_day = ma.fields.Boolean(load_default=False)
    place_name = ma.fields.String(validate=validate.Length(max=200), allow_none=True)
    notes = ma.fields.String(validate=validate.Length(max=2000), allow_none=True)
    reminders = ma.fields.Boolean(load_default=True)


class AgendaEntryPatchIn(StrictSchema):
    title = ma.fields.String(validate=validate.Length(min=1, max=200))
    starts_at = ma.fields.DateTime()
    ends_at = ma.fields.DateTime()
    all_day = ma.fields.Boolean()
    place_name = ma.fields.String(validate=validate.Length(max=200), allow_none=True)
    notes = ma.fields.String(validate=validate.Length(max=2000), allow_none=True)


class AgendaImportIn(ma.Schema):
    file = Upload(required=True, metadata={"description": "An .ics file (RFC 5545), 1 MiB at most"})


class AgendaImportOut(ma.Schema):
    imported = ma.fields.Integer()
    skipped = ma.fields.Integer(metadata={"description": "Already imported before (same UID and start)"})


class AgendaFeedIn(StrictSchema):
    show_details = ma.fields.Boolean(load_default=False, metadata={
        "description": "Show the professional, place and specialty in the subscribed calendar "
                       "(default: only \"Rendez-vous médical\")"})


class AgendaFeedPatchIn(StrictSchema):
    show_details = ma.fields.Boolean(required=True)


class AgendaFeedOut(ma.Schema):
    active = ma.fields.Boolean()
    show_details = ma.fields.Boolean()
    created_at = ma.fields.DateTime(allow_none=True)
    last_fetched_at = ma.fields.DateTime(allow_none=True)
    fetch_count = ma.fields.Integer()
    url = ma.fields.String(allow_none=True, metadata={"description": "Given once, at creation"})
    webcal_url = ma.fields.String(allow_none=True)


class AgendaExportArgs(ma.Schema):
    discreet = ma.fields.Boolean(load_default=False)


class AgendaPreventionItemOut(ma.Schema):
    code = ma.fields.String()
    category = ma.fields.String(metadata={"description": "check | screening | vaccination | dental"})
    label = ma.fields.String()
    status = ma.fields.String(metadata={"description": "to_plan | done | not_done"})
    status_label = ma.fields.String()
    due_from = ma.fields.Date()
    due_until = ma.fields.Date()
    every_months = ma.fields.Integer(allow_none=True)
    done_on = ma.fields.Date(allow_none=True)
    next_due_on = ma.fields.Date(allow_none=True)
    planned_on = ma.fields.Date(allow_none=True)
    appointment_id = ma.fields.Integer(allow_none=True)
    vaccination_entry_id = ma.fields.Integer(allow_none=True, metadata={
        "description": "Done according to this vaccination of the profile (e.g. a dispensed vaccine confirmed)."})


class AgendaPreventionOut(ma.Schema):
    age = ma.fields.Integer()
    items = ma.fields.List(ma.fields.Nested(AgendaPreventionItemOut))


class AgendaPreventionMarkIn(StrictSchema):
    status = ma.fields.String(required=True, validate=validate.OneOf(STATUSES))
    done_on = ma.fields.Date(allow_none=True)
    planned_on = ma.fields.Date(allow_none=True)
    add_to_agenda = ma.fields.Boolean(load_default=False,
                                      metadata={"description": "With planned_on: add an all-day entry to the agenda"})
