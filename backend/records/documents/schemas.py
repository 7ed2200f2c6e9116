"""Request and response shapes of the patient's document endpoints (they also document the OpenAPI)."""
from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from backend.accounts.schemas import HomeOut, StrictSchema
from backend.records.documents.service import (CATEGORIES, COMMENT_MAX, ORDERS, PATIENT_UPLOAD_TYPES, REMOVAL_REASONS,
                                               SORTS, TITLE_MAX)
from backend.records.documents.viewer import DEFAULT_WIDTH, MAX_WIDTH
from backend.web import PAGE_MAX, Upload, page_of


class DocumentListArgs(ma.Schema):
    limit = ma.fields.Integer(load_default=20, validate=validate.Range(min=1, max=PAGE_MAX))
    cursor = ma.fields.String(load_default=None, validate=validate.Length(max=300))
    category = ma.fields.List(ma.fields.String(validate=validate.OneOf(CATEGORIES)), load_default=list,
                              metadata={"description": "Repeat to select several categories."})
    date_from = ma.fields.Date(data_key="from", load_default=None,
                               metadata={"description": "Inclusive (YYYY-MM-DD), on the sort date."})
    date_to = ma.fields.Date(data_key="to", load_default=None, metadata={"description": "Inclusive (YYYY-MM-DD)."})
    author = ma.fields.String(load_default=None, validate=validate.Length(min=1, max=100),
                              metadata={"description": "Author's name, organisation or RPPS."})
    q = ma.fields.String(load_default=None, validate=validate.Length(min=1, max=200),
                         metadata={"description": "Free text on the title and the author."})
    mine = ma.fields.Boolean(load_default=False, metadata={"description": "Only the documents I added."})
    sort = ma.fields.String(load_default="submitted", validate=validate.OneOf(SORTS),
                            metadata={"description": "submitted (date added) or service (date of care)."})
    order = ma.fields.String(load_default="desc", validate=validate.OneOf(ORDERS))

    @ma.validates_schema
    def _range(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise ma.ValidationError("la date de début doit précéder la date de fin", field_name="from")


class AuthorOut(ma.Schema):
    name = ma.fields.String(allow_none=True)
    rpps = ma.fields.String(allow_none=True)
    profession = ma.fields.String(allow_none=True)
    specialty = ma.fields.String(allow_none=True)
    organisation = ma.fields.String(allow_none=True)


class DocumentOut(ma.Schema):
    id = ma.fields.Integer()
    title = ma.fields.String()
    category = ma.fields.String()
    category_label = ma.fields.String()
    type_code = ma.fields.String(allow_none=True)
    type_label = ma.fields.String(allow_none=True)
    class_code = ma.fields.String(allow_none=True)
    author = ma.fields.Nested(AuthorOut, allow_none=True)
    service_date = ma.fields.DateTime(allow_none=True)
    submitted_at = ma.fields.DateTime()
    mime_type = ma.fields.String()
    size = ma.fields.Integer()
    source = ma.fields.String(metadata={"description": "professional, patient, migration or service"})
    own_upload = ma.fields.Boolean()
    masked = ma.fields.Boolean(metadata={"description": "MASQUE_PS: hidden from professionals"})
    removal_requested_at = ma.fields.DateTime(allow_none=True)


class CategoryCountOut(ma.Schema):
    category = ma.fields.String()
    label = ma.fields.String()
    count = ma.fields.Integer()


DocumentPageOut = page_of(
    DocumentOut, "DocumentPageOut",
    total=ma.fields.Integer(metadata={"description": "Documents matching the filters, all categories"}),
    categories=ma.fields.List(ma.fields.Nested(CategoryCountOut),
                              metadata={"description": "Per category, the other filters applied"}))


class ViewerOut(ma.Schema):
    kind = ma.fields.String(metadata={"description": "pages (PDF, images), narrative (CDA level 3, text), download"})
    source = ma.fields.String()
    page_count = ma.fields.Integer(allow_none=True)
    page_type = ma.fields.String(allow_none=True)


class ActionsOut(ma.Schema):
    delete = ma.fields.Boolean()
    request_removal = ma.fields.Boolean()
    mask = ma.fields.Boolean()
    unmask = ma.fields.Boolean()


class CodedOut(ma.Schema):
    code = ma.fields.String()
    display = ma.fields.String(allow_none=True, metadata={"description": "The sender's label (French)."})


class DocumentDetailOut(DocumentOut):
    comment = ma.fields.String(allow_none=True)
    facility_type = ma.fields.Nested(CodedOut, allow_none=True,
                                     metadata={"description": "Type of facility where the care took place."})
    practice_setting = ma.fields.Nested(CodedOut, allow_none=True,
                                        metadata={"description": "Clinical specialty / practice setting."})
    format_code = ma.fields.String(allow_none=True)
    confidentiality = ma.fields.String()
    sha256 = ma.fields.String()
    viewer = ma.fields.Nested(ViewerOut)
    actions = ma.fields.Nested(ActionsOut)


class PageLinkOut(ma.Schema):
    number = ma.fields.Integer()
    url = ma.fields.String()


class PagesOut(ma.Schema):
    page_count = ma.fields.Integer()
    page_type = ma.fields.String()
    pages = ma.fields.List(ma.fields.Nested(PageLinkOut))


class PageImageArgs(ma.Schema):
    width = ma.fields.Integer(load_default=DEFAULT_WIDTH, validate=validate.Range(min=100, max=MAX_WIDTH),
                              metadata={"description": "Width in pixels of the rendered page (PDF, TIFF)."})


class SectionOut(ma.Schema):
    title = ma.fields.String(allow_none=True)
    code = ma.fields.String(allow_none=True)
    blocks = ma.fields.List(ma.fields.Dict(), metadata={
        "description": "Plain text only: {type: paragraph, text} | {type: list, ordered, caption, items} | "
                       "{type: table, caption, header: [[cell]], rows: [[cell]]}"})
    sections = ma.fields.List(ma.fields.Nested(lambda: SectionOut()))


class NarrativeAuthorOut(ma.Schema):
    name = ma.fields.String(allow_none=True)
    organisation = ma.fields.String(allow_none=True)


class NarrativeOut(ma.Schema):
    title = ma.fields.String(allow_none=True)
    date = ma.fields.String(allow_none=True)
    document_type = ma.fields.String(allow_none=True)
    authors = ma.fields.List(ma.fields.Nested(NarrativeAuthorOut))
    custodian = ma.fields.String(allow_none=True)
    sections = ma.fields.List(ma.fields.Nested(SectionOut))
    truncated = ma.fields.Boolean()
    text = ma.fields.String(metadata={"description": "The same content as plain text"})


class DocumentUploadIn(StrictSchema):
    """The multipart/form-data body of an upload: the file and its optional fields, in one schema."""
    file = Upload(required=True, metadata={"description": "PDF, JPG/JPEG, PNG, TIF/TIFF, RTF or TXT"})
    category = ma.fields.String(load_default="AUTR_DOC", validate=validate.OneOf(sorted(PATIENT_UPLOAD_TYPES)))
    title = ma.fields.String(load_default=None, validate=validate.Length(max=TITLE_MAX))
    comment = ma.fields.String(load_default=None, metadata={"description": f"At most {COMMENT_MAX} characters"})
    service_date = ma.fields.Date(load_default=None)


class RemovalIn(StrictSchema):
    reason = ma.fields.String(required=True, validate=validate.OneOf(REMOVAL_REASONS))


class DocumentSettings(StrictSchema):
    mask_new_documents = ma.fields.Boolean(required=True)


class HomeDocumentOut(ma.Schema):
    id = ma.fields.Integer()
    title = ma.fields.String()
    category = ma.fields.String()
    category_label = ma.fields.String()
    author_name = ma.fields.String(allow_none=True)
    submitted_at = ma.fields.DateTime()


class HomeRecordsOut(ma.Schema):
    new_documents_count = ma.fields.Integer()
    new_documents_label = ma.fields.String(allow_none=True)
    new_documents = ma.fields.List(ma.fields.Nested(HomeDocumentOut))


class HomeWithRecordsOut(HomeOut):
    records = ma.fields.Nested(HomeRecordsOut)
