"""The family space's routes, under /api/v1/family: which records the signed-in account may open, a minor's
activation by a representative, invitations, carers. Thin: parse, call ``backend.family.service``, commit.

These routes are the signed-in account's own (``web.account_required``): the ``X-Carnet-Record`` header that
opens another record for every other route is not read here.
"""
from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView
from flask import current_app

from backend import web
from backend.db import get_session
from backend.family import service
from backend.family.models import CarerLink
from backend.i18n import message
from backend.records.access.policy import Action

blp = web.Blueprint("family", __name__, url_prefix="/api/v1/family",
                    description="Family space: children's records, legal representatives, carers")
SECURED = [{"bearer": []}]


def settings() -> service.FamilySettings:
    return service.FamilySettings.from_config(current_app.config)


# --- schemas ----------------------------------------------------------------------------------------------

class SpaceOut(ma.Schema):
    record_id = ma.fields.String(metadata={"description": "the value of the X-Carnet-Record header"})
    kind = ma.fields.String(metadata={"description": "own | child | helped"})
    kind_label = ma.fields.String()
    given_name = ma.fields.String()
    family_name = ma.fields.String()
    birth_date = ma.fields.Date()
    colour = ma.fields.String(metadata={"description": "the colour the app shows this record in"})
    scopes = ma.fields.List(ma.fields.String(), allow_none=True)
    scope_labels = ma.fields.List(ma.fields.String(), allow_none=True)
    link_id = ma.fields.Integer(allow_none=True)


class SpacesOut(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(SpaceOut))


class MinorActivationIn(ma.Schema):
    nir = ma.fields.String(required=True, validate=ma.validate.Length(max=32))
    birth_date = ma.fields.String(required=True, validate=ma.validate.Length(max=32))
    code = ma.fields.String(required=True, validate=ma.validate.Length(max=64))


class InvitationCodeIn(ma.Schema):
    code = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=64))


class InvitationOut(ma.Schema):
    id = ma.fields.Integer()
    code = ma.fields.String(metadata={"description": "shown once: the invited person enters it in their session"})
    expires_at = ma.fields.DateTime()


class PersonOut(ma.Schema):
    given_name = ma.fields.String()
    family_name = ma.fields.String()


class PeopleOut(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(PersonOut))


class CarerIn(ma.Schema):
    scopes = ma.fields.List(ma.fields.String(validate=ma.validate.Length(max=16)), required=True,
                            validate=ma.validate.Length(max=8))


class CarerOut(ma.Schema):
    id = ma.fields.Integer()
    state = ma.fields.String()
    scopes = ma.fields.List(ma.fields.String())
    scope_labels = ma.fields.List(ma.fields.String())
    given_name = ma.fields.String(allow_none=True)
    family_name = ma.fields.String(allow_none=True)
    expires_at = ma.fields.DateTime(allow_none=True)
    accepted_at = ma.fields.DateTime(allow_none=True)


class CarersOut(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(CarerOut))
    limit = ma.fields.Integer()


# --- shaping ------------------------------------------------------------------------------------------------

COLOURS = ("#1f5fbf", "#2e8540", "#b35900", "#7a3db8", "#b3164b", "#00758f", "#6b5a00")


def _scope_labels(scopes: frozenset[str] | None) -> list[str] | None:
    return None if scopes is None else [message(f"family_scope_{s}") for s in service.SCOPES if s in scopes]


def _space(space: service.Space, index: int) -> dict[str, Any]:
    p = space.patient
    return {"record_id": str(p.id), "kind": space.kind, "kind_label": message(f"family_space_{space.kind}"),
            "given_name": p.first_given_name, "family_name": p.family_name, "birth_date": p.birth_date,
            "colour": COLOURS[index % len(COLOURS)],
            "scopes": None if space.scopes is None else sorted(space.scopes),
            "scope_labels": _scope_labels(space.scopes), "link_id": space.link_id}


def _spaces() -> list[dict[str, Any]]:
    return [_space(sp, i) for i, sp in enumerate(service.spaces(get_session(), web.current_account()))]


def _carer(link: CarerLink, person: Any) -> dict[str, Any]:
    return {"id": link.id, "state": link.state.value, "scopes": sorted(link.scope_set),
            "scope_labels": _scope_labels(link.scope_set),
            "given_name": person.first_given_name if person else None,
            "family_name": person.family_name if person else None,
            "expires_at": link.code_expires_at if link.state.value == "invited" else None,
            "accepted_at": link.accepted_at}


def _space_of(record_id: int) -> dict[str, Any]:
    return next(s for s in _spaces() if s["record_id"] == str(record_id))


# --- routes ---------------------------------------------------------------------------------------------

@blp.route("/spaces")
@blp.response(200, SpacesOut)
@blp.doc(security=SECURED)
@web.account_required
def spaces() -> dict[str, Any]:
    """The records this account may open: its own, each child it represents, each person it helps."""
    return {"items": _spaces()}


@blp.route("/children/activation", methods=["POST"])
@blp.arguments(MinorActivationIn)
@blp.response(201, SpaceOut)
@blp.doc(security=SECURED)
@web.account_required
@web.writes(Action.FAMILY)
def activate_child(body: dict[str, Any]) -> dict[str, Any]:
    """Activate a child's pre-created record with the child's code, from the representative's own session."""
    session = get_session()
    child = service.activate_minor(session, settings(), web.settings(), web.throttle(), web.current_account(),
                                   body["nir"], body["birth_date"], body["code"], address=web.client_address())
    session.commit()
    return _space_of(child.id)


@blp.route("/children/<int:child_id>/representatives")
@blp.response(200, PeopleOut)
@blp.doc(security=SECURED)
@web.account_required
def child_representatives(child_id: int) -> dict[str, Any]:
    """The child's legal representatives (for one of them)."""
    session = get_session()
    service._require_representative(session, web.current_account().id, child_id)
    return {"items": [{"given_name": p.first_given_name, "family_name": p.family_name}
                      for p in service.representatives(session, child_id)]}


@blp.route("/children/<int:child_id>/invitations", methods=["POST"])
@blp.response(201, InvitationOut)
@blp.doc(security=SECURED)
@web.account_required
@web.writes(Action.FAMILY)
def invite_representative(child_id: int) -> dict[str, Any]:
    """A code for the child's second legal representative (it replaces a pending one)."""
    session = get_session()
    link, code = service.invite_representative(session, settings(), web.current_account(), child_id)
    session.commit()
    return {"id": link.id, "code": code, "expires_at": link.code_expires_at}


@blp.route("/representatives/accept", methods=["POST"])
@blp.arguments(InvitationCodeIn)
@blp.response(200, SpaceOut)
@blp.doc(security=SECURED)
@web.account_required
@web.writes(Action.FAMILY)
def accept_representative(body: dict[str, Any]) -> dict[str, Any]:
    """The second representative accepts, from their own session, with the code the first one shared."""
    session = get_session()
    link = service.accept_representative(session, settings(), web.current_account(), body["code"])
    session.commit()
    return _space_of(link.child_id)


@blp.route("/children/<int:child_id>/representation", methods=["DELETE"])
@blp.response(204)
@blp.doc(security=SECURED)
@web.account_required
@web.writes(Action.FAMILY)
def leave_representation(child_id: int) -> None:
    """Stop being this child's legal representative (the other one, if any, stays)."""
    session = get_session()
    service.leave_representation(session, web.current_account(), child_id)
    session.commit()


@blp.route("/carers")
class Carers(MethodView):
    @blp.response(200, CarersOut)
    @blp.doc(security=SECURED)
    @web.account_required
    def get(self) -> dict[str, Any]:
        """My carers: accepted, and invitations not yet accepted."""
        rows = service.patient_carers(get_session(), web.current_account().id)
        return {"items": [_carer(link, person) for link, person in rows], "limit": settings().max_carers_per_patient}

    @blp.arguments(CarerIn)
    @blp.response(201, InvitationOut)
    @blp.doc(security=SECURED)
    @web.account_required
    @web.writes(Action.FAMILY)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Name a carer with the scope chosen: a code to give them (at most 3 carers, config)."""
        session = get_session()
        link, code = service.invite_carer(session, settings(), web.current_account(), body["scopes"])
        session.commit()
        return {"id": link.id, "code": code, "expires_at": link.code_expires_at}


@blp.route("/carers/accept", methods=["POST"])
@blp.arguments(InvitationCodeIn)
@blp.response(200, SpaceOut)
@blp.doc(security=SECURED)
@web.account_required
@web.writes(Action.FAMILY)
def accept_carer(body: dict[str, Any]) -> dict[str, Any]:
    """The carer accepts from their own session (at most 5 people helped, config)."""
    session = get_session()
    link = service.accept_carer(session, settings(), web.current_account(), body["code"])
    session.commit()
    return _space_of(link.patient_id)


@blp.route("/carers/<int:link_id>", methods=["DELETE"])
@blp.response(204)
@blp.doc(security=SECURED)
@web.account_required
@web.writes(Action.FAMILY)
def end_carer(link_id: int) -> None:
    """The patient revokes their carer (or withdraws the invitation); the carer may stop helping."""
    session = get_session()
    service.end_carer(session, web.current_account(), link_id)
    session.commit()
