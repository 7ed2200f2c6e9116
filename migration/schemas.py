"""Shapes of the migration API (they document the OpenAPI)."""
from __future__ import annotations

import marshmallow as ma

from backend import web


class MigrationCountsOut(ma.Schema):
    imported = ma.fields.Integer()
    duplicate = ma.fields.Integer()
    quarantined = ma.fields.Integer()


class MigrationStatusOut(ma.Schema):
    state = ma.fields.String(metadata={"description": "none, pending, running, done, no_dossier"})
    total = ma.fields.Integer(metadata={"description": "items found in the legacy dossier"})
    processed = ma.fields.Integer()
    counts = ma.fields.Nested(MigrationCountsOut)
    open_conflicts = ma.fields.Integer()
    started_at = ma.fields.DateTime(allow_none=True)
    finished_at = ma.fields.DateTime(allow_none=True)
    reviewed_at = ma.fields.DateTime(allow_none=True)


class MigrationItemArgs(web.PageArgs):
    status = ma.fields.String(load_default=None, validate=ma.validate.OneOf(["imported", "duplicate", "quarantined"]))


class MigrationItemOut(ma.Schema):
    id = ma.fields.Integer()
    source = ma.fields.String(metadata={"description": "where it came from: package and file name"})
    format = ma.fields.String()
    status = ma.fields.String()
    reason = ma.fields.String(allow_none=True)
    reason_text = ma.fields.String(allow_none=True)
    document_id = ma.fields.Integer(allow_none=True)
    merged_into = ma.fields.Integer(allow_none=True)
    title = ma.fields.String(allow_none=True)
    category = ma.fields.String(allow_none=True)
    warnings = ma.fields.List(ma.fields.String(), metadata={"description": "codes, for software"})
    warnings_text = ma.fields.List(ma.fields.String(), metadata={"description": "the same, in the patient's words"})
    conflicts = ma.fields.List(ma.fields.String())
    entries = ma.fields.Dict()


class MigrationItemPageOut(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(MigrationItemOut))
    next_cursor = ma.fields.String(allow_none=True)


class MigrationConflictGroupOut(ma.Schema):
    group = ma.fields.String()
    kind = ma.fields.String()
    entries = ma.fields.List(ma.fields.Dict())


class MigrationConflictsOut(ma.Schema):
    groups = ma.fields.List(ma.fields.Nested(MigrationConflictGroupOut))


class MigrationDecisionIn(ma.Schema):
    decision = ma.fields.String(required=True, validate=ma.validate.OneOf(["confirm", "hide"]))
