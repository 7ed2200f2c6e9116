"""The patient's medical-profile endpoints under /api/v1/record/profile… and /api/v1/record/directives…:
the profile page (one call, a fixed number of queries), entries per kind, measures and their history,
advance directives in versions, the organ-donation position, and the views built from documents
(medicines dispensed, reimbursements, oncology pathway).

Every route reads through ``access.authorize`` with the patient as actor (the one decision point), then
calls the service; writes commit here.
"""
from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy.orm import Session

from backend import records, web
from backend.db import get_session
from backend.i18n import message
from backend.records.profile import service
from backend.records.profile import directives as directive_service
from backend.records.profile import measures as measure_service
from backend.records.profile import documents as views
from backend.records.profile import kinds as pk
from backend.records.profile import schemas as s
from backend.records.access.authorize import authorize
from backend.records.crypto import Vault
from backend.records.access.policy import Action, Area, Scope

blp = Blueprint("record_profile", __name__, url_prefix="/api/v1/record",
                description="Medical profile, measures, advance directives and wishes")

DEFAULT_DISPENSED_MONTHS = 4
SECURITY = [{"bearer": []}]


def _open(action: str) -> tuple[Session, Vault, Scope, int]:
    """The session, the vault and the patient's scope (decided by the policy)."""
    session = get_session()
    patient_id = web.current_patient().id
    scope = authorize(session, web.current_actor(), patient_id, action, area=Area.PROFILE)
    return session, records.vault(session), scope, patient_id


def _months() -> int:
    return int(current_app.config.get("DISPENSED_MONTHS", DEFAULT_DISPENSED_MONTHS))


def _cursor(value: int | None) -> str | None:
    return web.encode_cursor(value) if value is not None else None


def _offset(raw: str | None) -> int:
    return max(0, web.decode_cursor(raw) or 0)


def _organ_donation(view: dict[str, Any] | None) -> dict[str, Any] | None:
    if view is None:
        return None
    return {**view, "label": message(f"organ_donation_{view['position']}")}


def _directives(current: dict[str, Any], organ: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {c: {**current[c], "label": message(f"directive_context_{c}")} for c in pk.DIRECTIVE_CONTEXTS}
    out["organ_donation"] = _organ_donation(organ)
    return out


# --- the profile page ---------------------------------------------------------------------------------

@blp.route("/profile")
@blp.response(200, s.ProfilePageOut)
@blp.doc(security=SECURITY)
@web.patient_required
def profile_page() -> dict[str, Any]:
    """Everything the profile screen shows, in one call whose query count does not depend on the record."""
    session, vault, scope, patient_id = _open("profile.read")
    page = service.profile_page(session, vault, patient_id, scope=scope)
    counts = views.view_counts(session, scope, now=web.now(), months=_months())
    for kind, bucket in page["entries"].items():
        bucket["label"] = message(f"profile_kind_{kind}")
    for summary in page["measures"]:
        summary["label"] = message(f"measure_{summary['type']}")
    return {**page, "directives": _directives(page["directives"], page.pop("organ_donation")),
            "views": {"dispensed": counts.dispensed, "reimbursements": counts.reimbursements,
                      "oncology": counts.oncology, "proposals": page.pop("proposals")}}


@blp.route("/profile/kinds")
@blp.response(200, s.KindsOut)
@blp.doc(security=SECURITY)
@web.patient_required
def kinds() -> dict[str, Any]:
    """The profile's kinds, fields, choices, measure types, units and ranges, with their French labels."""
    spec = pk.describe()
    for kind in spec["kinds"]:
        kind["label"] = message(f"profile_kind_{kind['kind']}")
        for field in kind["fields"]:
            field["label"] = message(f"profile_field_{field['name']}")
            field["choices"] = [{"value": c, "label": message(f"profile_choice_{c}")} for c in field["choices"]]
    for mtype in spec["measure_types"]:
        mtype["label"] = message(f"measure_{mtype['type']}")
        for component in mtype["components"]:
            component["label"] = message(f"measure_component_{component['name']}")
    spec["directive_contexts"] = [{"value": c, "label": message(f"directive_context_{c}")}
                                  for c in spec["directive_contexts"]]
    spec["organ_donation_positions"] = [{"value": p, "label": message(f"organ_donation_{p}")}
                                        for p in spec["organ_donation_positions"]]
    return spec


@blp.route("/profile/conflicts")
@blp.response(200, s.ConflictsOut)
@blp.doc(security=SECURITY)
@web.patient_required
def conflict_groups() -> dict[str, Any]:
    """Imported entries that disagree with others, to confirm or hide one by one."""
    session, vault, scope, patient_id = _open("profile.read")
    return {"items": service.conflicts(session, vault, patient_id, scope)}


# --- measures (static paths: they win over /profile/<kind>) -------------------------------------------

@blp.route("/profile/measures", methods=["POST"])
@blp.arguments(s.MeasureIn)
@blp.response(201, s.MeasureOut)
@blp.doc(security=SECURITY)
@web.patient_required
@web.writes(Action.PROFILE_ENTRIES)
def add_measure(body: dict[str, Any]) -> dict[str, Any]:
    """Record a measurement (range checked per type and unit)."""
    session, vault, _, patient_id = _open("profile.write")
    view = measure_service.add_measure(session, vault, patient_id, body, now=web.now())
    session.commit()
    return view


@blp.route("/profile/measures/<mtype>")
@blp.arguments(s.MeasureSeriesArgs, location="query")
@blp.response(200, s.MeasureSeriesOut)
@blp.doc(security=SECURITY)
@web.patient_required
def measure_series(args: dict[str, Any], mtype: str) -> dict[str, Any]:
    """One type's history for charts: newest first, paginated; ``series`` in time order."""
    session, vault, _, patient_id = _open("profile.read")
    result = measure_service.measure_series(session, vault, patient_id, mtype, limit=args["limit"],
                                    after_id=web.decode_cursor(args["cursor"]), since=args["since"],
                                    until=args["until"])
    return {**result, "label": message(f"measure_{mtype}"), "next_cursor": _cursor(result.pop("next_id"))}


@blp.route("/profile/measures/<int:measure_id>")
class MeasureView(MethodView):
    @blp.arguments(s.MeasureIn)
    @blp.response(200, s.MeasureOut)
    @blp.doc(security=SECURITY)
    @web.patient_required
    @web.writes(Action.PROFILE_ENTRIES)
    def patch(self, body: dict[str, Any], measure_id: int) -> dict[str, Any]:
        """Correct a measurement the patient recorded."""
        session, vault, _, patient_id = _open("profile.write")
        view = measure_service.update_measure(session, vault, patient_id, measure_id, body, now=web.now())
        session.commit()
        return view

    @blp.arguments(s.ProfileRemovalIn, required=False)
    @blp.response(200, s.MeasureDeletionOut)
    @blp.doc(security=SECURITY)
    @web.patient_required
    @web.writes(Action.PROFILE_ENTRIES)
    def delete(self, body: dict[str, Any] | None, measure_id: int) -> dict[str, Any]:
        """Delete the patient's own measurement; a professional's becomes a removal request."""
        session, vault, _, patient_id = _open("profile.write")
        status, view = measure_service.delete_measure(session, vault, patient_id, measure_id,
                                              reason=(body or {}).get("reason"), now=web.now())
        session.commit()
        return {"status": status, "measure": view}


# --- views built from documents -----------------------------------------------------------------------

@blp.route("/profile/dispensed")
@blp.arguments(web.PageArgs, location="query")
@blp.response(200, s.DispensedOut)
@blp.doc(security=SECURITY)
@web.patient_required
def dispensed(args: dict[str, Any]) -> dict[str, Any]:
    """Medicines dispensed over the last months (CARNET_DISPENSED_MONTHS, 4 by default), newest first."""
    session, vault, scope, _ = _open("profile.read")
    result = views.dispensed(session, vault, scope, now=web.now(), months=_months(), limit=args["limit"],
                             offset=_offset(args["cursor"]))
    return {**result, "next_cursor": _cursor(result.pop("next_offset"))}


@blp.route("/profile/reimbursements")
@blp.arguments(s.ReimbursementArgs, location="query")
@blp.response(200, s.ReimbursementsOut)
@blp.doc(security=SECURITY)
@web.patient_required
def reimbursements(args: dict[str, Any]) -> dict[str, Any]:
    """Reimbursement history of the last 24 months (CARNET_REIMBURSEMENT_MONTHS): the Assurance Maladie's
    documents and their episodes by kind."""
    session, vault, scope, _ = _open("profile.read")
    months = int(current_app.config.get("REIMBURSEMENT_MONTHS", views.REIMBURSEMENT_MONTHS))
    result = views.reimbursements(session, vault, scope, kind=args["kind"], limit=args["limit"],
                                  offset=_offset(args["cursor"]), now=web.now(), months=months)
    kinds = [{"kind": k, "label": message(f"episode_{k}"), "count": n} for k, n in result.pop("counts").items()]
    return {**result, "kinds": kinds, "next_cursor": _cursor(result.pop("next_offset"))}


@blp.route("/profile/oncology")
@blp.arguments(s.OncologyArgs, location="query")
@blp.response(200, s.OncologyOut)
@blp.doc(security=SECURITY)
@web.patient_required
def oncology(args: dict[str, Any]) -> dict[str, Any]:
    """The cancer pathway in date order: anatomo-cytopathology, biology, imaging and operative reports of
    the episode, RCP sheets, PPS and the after-treatment programme (PPAC), and the care team who wrote them.
    Writing to a member goes through the inbox (``POST /inbox/threads``), for those who already wrote to
    the patient (``GET /inbox/correspondents``)."""
    session, _, scope, _ = _open("profile.read")
    result = views.oncology_pathway(session, scope, limit=args["limit"], offset=_offset(args["cursor"]),
                                    step=args["step"])
    for step in result["steps"]:
        step["label"] = message(f"oncology_{step['step']}")
    for member in result["care_team"]:
        member["step_labels"] = [message(f"oncology_{k}") for k in member["steps"]]
    return {**result, "next_cursor": _cursor(result.pop("next_offset"))}


@blp.route("/profile/proposals")
@blp.arguments(web.PageArgs, location="query")
@blp.response(200, s.ProposalsOut)
@blp.doc(security=SECURITY)
@web.patient_required
def proposals(args: dict[str, Any]) -> dict[str, Any]:
    """What documents propose for the profile, waiting for the patient (a vaccination read from a dispensed
    vaccine): confirm with ``POST …/{kind}/{id}/confirm``, decline with ``…/hide``."""
    session, vault, scope, patient_id = _open("profile.read")
    items, more = service.proposals(session, vault, patient_id, limit=args["limit"],
                                    after_id=web.decode_cursor(args["cursor"]), scope=scope)
    return {"items": items, "next_cursor": _cursor(items[-1]["id"]) if more else None}


# --- entries of every kind ----------------------------------------------------------------------------

@blp.route("/profile/<kind>")
class EntriesView(MethodView):
    @blp.arguments(s.EntryPageArgs, location="query")
    @blp.response(200, s.EntryPageOut)
    @blp.doc(security=SECURITY)
    @web.patient_required
    def get(self, args: dict[str, Any], kind: str) -> dict[str, Any]:
        """One kind's entries, newest first (hidden ones on request)."""
        session, vault, scope, patient_id = _open("profile.read")
        items, more = service.list_entries(session, vault, patient_id, kind, limit=args["limit"],
                                           after_id=web.decode_cursor(args["cursor"]),
                                           include_hidden=args["include_hidden"], scope=scope)
        return {"items": items, "next_cursor": _cursor(items[-1]["id"]) if more else None}

    @blp.arguments(s.ProfileEntryIn)
    @blp.response(201, s.EntryOut)
    @blp.doc(security=SECURITY)
    @web.patient_required
    @web.writes(Action.PROFILE_ENTRIES)
    def post(self, body: dict[str, Any], kind: str) -> dict[str, Any]:
        """Add an entry; an unknown kind or a wrong field is refused (422, in French) and nothing is written."""
        session, vault, _, patient_id = _open("profile.write")
        view = service.create_entry(session, vault, patient_id, kind, body, now=web.now())
        session.commit()
        return view


@blp.route("/profile/<kind>/<int:entry_id>")
class EntryView(MethodView):
    @blp.response(200, s.EntryOut)
    @blp.doc(security=SECURITY)
    @web.patient_required
    def get(self, kind: str, entry_id: int) -> dict[str, Any]:
        """One entry."""
        session, vault, scope, patient_id = _open("profile.read")
        return service.get_entry(session, vault, patient_id, kind, entry_id, scope)

    @blp.arguments(s.ProfileEntryIn)
    @blp.response(200, s.EntryOut)
    @blp.doc(security=SECURITY)
    @web.patient_required
    @web.writes(Action.PROFILE_ENTRIES)
    def patch(self, body: dict[str, Any], kind: str, entry_id: int) -> dict[str, Any]:
        """Correct an entry the patient wrote (403 for a professional's entry: ask for its removal)."""
        session, vault, _, patient_id = _open("profile.write")
        view = service.update_entry(session, vault, patient_id, kind, entry_id, body, now=web.now())
        session.commit()
        return view

    @blp.arguments(s.ProfileRemovalIn, required=False)
    @blp.response(200, s.DeletionOut)
    @blp.doc(security=SECURITY)
    @web.patient_required
    @web.writes(Action.PROFILE_ENTRIES)
    def delete(self, body: dict[str, Any] | None, kind: str, entry_id: int) -> dict[str, Any]:
        """Delete the patient's own entry; a professional's entry gets a removal request instead."""
        session, vault, _, patient_id = _open("profile.write")
        status, view = service.delete_entry(session, vault, patient_id, kind, entry_id,
                                            reason=(body or {}).get("reason"), now=web.now())
        session.commit()
        return {"status": status, "entry": view}


def _set_state(kind: str, entry_id: int, **state: bool) -> dict[str, Any]:
    session, vault, _, patient_id = _open("profile.write")
    view = service.set_entry_state(session, vault, patient_id, kind, entry_id, now=web.now(), **state)
    session.commit()
    return view


@blp.route("/profile/<kind>/<int:entry_id>/hide", methods=["POST"])
@blp.response(200, s.EntryOut)
@blp.doc(security=SECURITY)
@web.patient_required
@web.writes(Action.PROFILE_ENTRIES)
def hide_entry(kind: str, entry_id: int) -> dict[str, Any]:
    """Hide an entry from the profile (kept; professionals then see it only as they see masked documents)."""
    return _set_state(kind, entry_id, hidden=True)


@blp.route("/profile/<kind>/<int:entry_id>/show", methods=["POST"])
@blp.response(200, s.EntryOut)
@blp.doc(security=SECURITY)
@web.patient_required
@web.writes(Action.PROFILE_ENTRIES)
def show_entry(kind: str, entry_id: int) -> dict[str, Any]:
    """Show a hidden entry again."""
    return _set_state(kind, entry_id, hidden=False)


@blp.route("/profile/<kind>/<int:entry_id>/confirm", methods=["POST"])
@blp.response(200, s.EntryOut)
@blp.doc(security=SECURITY)
@web.patient_required
@web.writes(Action.PROFILE_ENTRIES)
def confirm_entry(kind: str, entry_id: int) -> dict[str, Any]:
    """Confirm an imported entry that an importer flagged as disagreeing."""
    return _set_state(kind, entry_id, confirmed=True)


# --- advance directives and organ donation ------------------------------------------------------------

@blp.route("/directives")
@blp.response(200, s.DirectivesOut)
@blp.doc(security=SECURITY)
@web.patient_required
def directives() -> dict[str, Any]:
    """The directives in force in each context, and the organ-donation position."""
    session, vault, scope, patient_id = _open("profile.read")
    return _directives(directive_service.current_directives(session, vault, patient_id, scope=scope),
                       directive_service.current_organ_donation(session, vault, patient_id))


@blp.route("/directives/organ-donation")
class OrganDonationView(MethodView):
    @blp.arguments(web.PageArgs, location="query")
    @blp.response(200, s.OrganDonationPageOut)
    @blp.doc(security=SECURITY)
    @web.patient_required
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Every statement of the organ-donation position, newest first."""
        session, vault, _, patient_id = _open("profile.read")
        items, more = directive_service.organ_donation_history(session, vault, patient_id, limit=args["limit"],
                                                     after_id=web.decode_cursor(args["cursor"]))
        return {"items": [_organ_donation(i) for i in items],
                "next_cursor": _cursor(items[-1]["id"]) if more else None}

    @blp.arguments(s.OrganDonationIn)
    @blp.response(201, s.OrganDonationOut)
    @blp.doc(security=SECURITY)
    @web.patient_required
    @web.writes(Action.DIRECTIVES)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """State a position on organ donation (and when the patient was informed); the history is kept."""
        session, vault, _, patient_id = _open("profile.write")
        view = directive_service.set_organ_donation(session, vault, patient_id, body, now=web.now())
        session.commit()
        return _organ_donation(view)  # type: ignore[return-value]


@blp.route("/directives/<context>")
class DirectivesView(MethodView):
    @blp.arguments(web.PageArgs, location="query")
    @blp.response(200, s.DirectivePageOut)
    @blp.doc(security=SECURITY)
    @web.patient_required
    def get(self, args: dict[str, Any], context: str) -> dict[str, Any]:
        """Every version of the directives of a context, newest first."""
        session, vault, scope, patient_id = _open("profile.read")
        items, more = directive_service.directive_versions(session, vault, patient_id, context, limit=args["limit"],
                                                 after_version=web.decode_cursor(args["cursor"]), scope=scope)
        return {"items": items, "next_cursor": _cursor(items[-1]["version"]) if more else None}

    @blp.arguments(s.DirectiveIn)
    @blp.response(201, s.DirectiveOut)
    @blp.doc(security=SECURITY)
    @web.patient_required
    @web.writes(Action.DIRECTIVES)
    def post(self, body: dict[str, Any], context: str) -> dict[str, Any]:
        """A new version (text and/or a document of the record); the previous versions are kept."""
        session, vault, scope, _ = _open("profile.write")
        view = directive_service.add_directive_version(session, vault, scope, context, text=body.get("text"),
                                             document_id=body.get("document_id"), withdrawn=body["withdrawn"],
                                             now=web.now())
        session.commit()
        return view
