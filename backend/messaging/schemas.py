"""Request and response shapes of the patient's inbox endpoints (they also document the OpenAPI)."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from backend.accounts.schemas import StrictSchema
from backend.messaging.service import BODY_MAX, SUBJECT_MAX
from backend.records.documents.service import PATIENT_UPLOAD_TYPES, TITLE_MAX
from backend.web import PAGE_MAX, Upload, page_of

FILE_TYPES = "PDF, JPG/JPEG, PNG, TIF/TIFF, RTF or TXT, at most 10 MB each (the content must be what the name says)"


class InboxThreadListArgs(ma.Schema):
    limit = ma.fields.Integer(load_default=20, validate=validate.Range(min=1, max=PAGE_MAX))
    cursor = ma.fields.String(load_default=None, validate=validate.Length(max=300))
    archived = ma.fields.Boolean(load_default=False, metadata={"description": "The archived threads instead."})
    unread = ma.fields.Boolean(load_default=False, metadata={"description": "Only threads with unread messages."})
    q = ma.fields.String(load_default=None, validate=validate.Length(max=100),
                         metadata={"description": "Words of the subject or of the sender (name, organisation, "
                                                  "establishment, profession); each word matches as a prefix."})
    subject = ma.fields.String(load_default=None, validate=validate.Length(max=100),
                               metadata={"description": "Words of the subject only."})
    sender = ma.fields.String(load_default=None, validate=validate.Length(max=100),
                              metadata={"description": "Words of the sender only."})


class InboxSenderOut(ma.Schema):
    professional_id = ma.fields.Integer()
    name = ma.fields.String()
    profession = ma.fields.String(allow_none=True)
    organisation = ma.fields.String(allow_none=True)
    establishment = ma.fields.String(allow_none=True)


class InboxThreadItemOut(ma.Schema):
    id = ma.fields.Integer()
    subject = ma.fields.String()
    sender = ma.fields.Nested(InboxSenderOut)
    started_by = ma.fields.String(metadata={"description": "professional | patient"})
    last_message_at = ma.fields.DateTime()
    preview = ma.fields.String(metadata={"description": "The start of the last message."})
    last_message_from_you = ma.fields.Boolean()
    unread = ma.fields.Boolean()
    unread_count = ma.fields.Integer()
    message_count = ma.fields.Integer()
    attachment_count = ma.fields.Integer()
    replies_allowed = ma.fields.Boolean()
    ended = ma.fields.Boolean()
    archived = ma.fields.Boolean()


InboxThreadPageOut = page_of(InboxThreadItemOut, "InboxThreadPageOut", unread_threads=ma.fields.Integer(
    metadata={"description": "Threads with unread messages (inbox and archive)."}))


class InboxThreadArgs(ma.Schema):
    limit = ma.fields.Integer(load_default=50, validate=validate.Range(min=1, max=PAGE_MAX))
    cursor = ma.fields.String(load_default=None, validate=validate.Length(max=100),
                              metadata={"description": "The next messages (oldest first)."})


class InboxAttachmentOut(ma.Schema):
    id = ma.fields.Integer()
    filename = ma.fields.String()
    mime_type = ma.fields.String()
    size = ma.fields.Integer()
    from_record = ma.fields.Boolean(metadata={"description": "A document of the record the patient attached."})
    saved_document_id = ma.fields.Integer(allow_none=True,
                                          metadata={"description": "The record document it was saved as."})
    content_url = ma.fields.String()


class InboxAuthorOut(ma.Schema):
    kind = ma.fields.String(metadata={"description": "professional | patient"})
    professional_id = ma.fields.Integer(allow_none=True)
    name = ma.fields.String()


class InboxMessageOut(ma.Schema):
    id = ma.fields.Integer()
    author = ma.fields.Nested(InboxAuthorOut)
    from_you = ma.fields.Boolean()
    body = ma.fields.String()
    sent_at = ma.fields.DateTime()
    read_at = ma.fields.DateTime(allow_none=True, metadata={
        "description": "A professional's message: when you read it. Yours: when a recipient read it."})
    in_reply_to = ma.fields.Integer(allow_none=True)
    reply_all = ma.fields.Boolean()
    recipients = ma.fields.List(ma.fields.String(), metadata={"description": "Professionals it is addressed to."})
    attachments = ma.fields.List(ma.fields.Nested(InboxAttachmentOut))


class InboxParticipantOut(ma.Schema):
    professional_id = ma.fields.Integer()
    name = ma.fields.String()
    role = ma.fields.String(metadata={"description": "sender | copy"})
    profession = ma.fields.String(allow_none=True)
    organisation = ma.fields.String(allow_none=True)


class InboxThreadActionsOut(ma.Schema):
    reply = ma.fields.Boolean()
    reply_all = ma.fields.Boolean()
    archive = ma.fields.Boolean()
    unarchive = ma.fields.Boolean()
    delete = ma.fields.Boolean()


class InboxThreadDetailOut(InboxThreadItemOut):
    participants = ma.fields.List(ma.fields.Nested(InboxParticipantOut))
    messages = ma.fields.List(ma.fields.Nested(InboxMessageOut))
    next_cursor = ma.fields.String(allow_none=True)
    actions = ma.fields.Nested(InboxThreadActionsOut)
    notice = ma.fields.String(allow_none=True, metadata={"description": "Why you cannot reply, when you cannot."})


class _OutgoingIn(StrictSchema):
    """A message's multipart/form-data body: its fields and its files, in one schema."""
    file = ma.fields.List(Upload(), load_default=list, metadata={"description": f"Repeatable. {FILE_TYPES}."})


class InboxReplyIn(_OutgoingIn):
    body = ma.fields.String(load_default="", validate=validate.Length(max=BODY_MAX))
    reply_all = ma.fields.Boolean(load_default=False, metadata={"description": "To every professional of the thread."})
    in_reply_to = ma.fields.Integer(load_default=None, metadata={"description": "The message answered (default: "
                                                                               "the last professional's)."})
    document_id = ma.fields.List(ma.fields.Integer(), load_default=list,
                                 metadata={"description": "Documents of your record to attach (repeatable)."})


class InboxNewThreadIn(_OutgoingIn):
    professional_id = ma.fields.Integer(required=True, metadata={"description": "A professional who wrote to you "
                                                                               "(see /inbox/correspondents)."})
    subject = ma.fields.String(required=True, validate=validate.Length(max=SUBJECT_MAX))
    body = ma.fields.String(load_default="", validate=validate.Length(max=BODY_MAX))
    document_id = ma.fields.List(ma.fields.Integer(), load_default=list)


class InboxSentOut(ma.Schema):
    thread_id = ma.fields.Integer()
    message = ma.fields.Nested(InboxMessageOut)


class InboxCorrespondentArgs(ma.Schema):
    limit = ma.fields.Integer(load_default=50, validate=validate.Range(min=1, max=PAGE_MAX))
    cursor = ma.fields.String(load_default=None, validate=validate.Length(max=100))


class InboxCorrespondentOut(ma.Schema):
    professional_id = ma.fields.Integer()
    name = ma.fields.String()
    profession = ma.fields.String(allow_none=True)
    organisation = ma.fields.String(allow_none=True)


InboxCorrespondentPageOut = page_of(InboxCorrespondentOut, "InboxCorrespondentPageOut")


class InboxSaveIn(StrictSchema):
    category = ma.fields.String(required=True, validate=validate.OneOf(sorted(PATIENT_UPLOAD_TYPES)),
                                metadata={"description": "The record category to file it under."})
    title = ma.fields.String(load_default=None, validate=validate.Length(max=TITLE_MAX),
                             metadata={"description": "Default: the file's name."})


class InboxSavedOut(ma.Schema):
    document_id = ma.fields.Integer()
    created = ma.fields.Boolean(metadata={"description": "false: it was already saved (the same document)."})
    title = ma.fields.String()
    category = ma.fields.String()
    category_label = ma.fields.String()
    mime_type = ma.fields.String()
    size = ma.fields.Integer()
    sha256 = ma.fields.String()
