"""The patient's access page and access history, under /api/v1/record/access… and /api/v1/record/history.

Thin: parse, call :mod:`backend.records.access.consents` / :mod:`backend.records.access.history`, commit, shape.
``init_app`` also reads the policy settings (``CARNET_PROFESSION_MATRIX``,
``CARNET_EMERGENCY_ACCESS_MINUTES``) and attaches them to the app's sessions.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Flask, Response
from flask.views import MethodView
from flask_smorest import Blueprint

from backend import web
from backend.audit import service as audit
from backend.config import ConfigError
from backend.db import get_db, get_session, utcnow
from backend.errors import DomainError
from backend.i18n import language, message
from backend.professionals.models import Professional
from backend.records.access import consents, history
from backend.records.access import messages as messages_access  # noqa: F401  (registers the texts)
from backend.records.access import policy
from backend.records.access import schemas as s
from backend.records.access.policy import Action

blp = Blueprint("record_access", __name__, url_prefix="/api/v1/record",
                description="Who may see the record: authorisations, blocks, emergency settings, access history")
SECURED = {"security": [{"bearer": []}]}


def init_app(app: Flask) -> None:
    app.config.setdefault("PROFESSION_MATRIX", None)
    app.config.setdefault("EMERGENCY_ACCESS_MINUTES", int(policy.EMERGENCY_DURATION.total_seconds() // 60))
    app.config.setdefault("HISTORY_EXPORT_MAX_ROWS", history.EXPORT_MAX_ROWS)
    try:
        raw = app.config["PROFESSION_MATRIX"]
        matrix = policy.DEFAULT_PROFESSION_MATRIX if raw in (None, "") else policy.parse_matrix(raw)
        minutes = int(app.config["EMERGENCY_ACCESS_MINUTES"])
        if minutes <= 0:
            raise ValueError("EMERGENCY_ACCESS_MINUTES must be positive")
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    factory = get_db(app).session_factory
    assert factory is not None
    policy.configure(factory, policy.PolicySettings(matrix=matrix, emergency_duration=dt.timedelta(minutes=minutes)))
    app.extensions["carnet.api"].register_blueprint(blp)


# --- shaping --------------------------------------------------------------------------------------------------

def _pro(pro: Professional | None, standing: consents.Standing | None = None) -> dict[str, Any] | None:
    if pro is None:
        return None
    out = {"id": pro.id, "rpps": pro.rpps, "name": pro.display_name, "given_name": pro.given_name,
           "family_name": pro.family_name, "profession_code": pro.profession_code,
           "profession": consents.profession_label(pro.profession_code), "specialty": pro.specialty_code,
           "organisation": pro.organisation}
    if standing is not None:
        out["standing"] = standing
    return out


def _item(item: history.HistoryItem) -> dict[str, Any]:
    return {"id": item.seq, "at": item.at,
            "actor": {"kind": item.actor_kind, "name": item.actor_name, "profession": item.actor_profession,
                      "rpps": item.actor_rpps},
            "action": item.action, "label": item.label, "outcome": item.outcome, "outcome_label": item.outcome_label,
            "purpose": item.purpose, "purpose_label": item.purpose_label, "reason": item.reason,
            "reason_label": item.reason_label, "emergency": item.emergency, "emergency_reason": item.emergency_reason,
            "document": None if item.document_id is None else {
                "id": item.document_id, "category": item.category, "category_label": item.category_label},
            "count": item.count}


def _consent(consent: Any, pro: Professional) -> dict[str, Any]:
    return {"id": consent.id, "granted_at": consent.granted_at, "professional": _pro(pro)}


def _block(entry: Any, pro: Professional | None) -> dict[str, Any]:
    return {"id": entry.id, "rpps": entry.rpps, "blocked_at": entry.created_at, "professional": _pro(pro)}


def _switches(sw: consents.Switches) -> dict[str, bool]:
    return {"samu": sw.samu, "btg": sw.btg, "masked": sw.masked}


# --- the access page -----------------------------------------------------------------------------------------

@blp.route("/access")
@blp.response(200, s.RecordAccessPageOut)
@blp.doc(**SECURED)
@web.patient_required
def access_page() -> dict[str, Any]:
    """The access screen: switches, médecin traitant, administrator, authorised and blocked professionals,
    running emergency accesses and the latest accesses (a fixed number of queries)."""
    patient = web.current_patient()
    page = consents.access_page(get_session(), patient.id, limit=20, lang=language())

    def standing(pro: Professional) -> consents.Standing:
        return consents.Standing(authorised=pro.id in page.authorised_ids, blocked=pro.rpps in page.blocked_rpps,
                                 medecin_traitant=page.medecin_traitant is not None and page.medecin_traitant.id == pro.id,
                                 administrator=page.administrator is not None and page.administrator.id == pro.id)

    return {
        "switches": _switches(page.switches),
        "medecin_traitant": page.medecin_traitant and _pro(page.medecin_traitant, standing(page.medecin_traitant)),
        "administrator": page.administrator and _pro(page.administrator, standing(page.administrator)),
        "authorised": [{"id": c.id, "granted_at": c.granted_at, "professional": _pro(p, standing(p))}
                       for c, p in page.authorised],
        "authorised_next_cursor": web.encode_cursor(page.authorised[-1][0].id) if page.authorised_more else None,
        "blocked": [_block(b, p) for b, p in page.blocked],
        "blocked_next_cursor": web.encode_cursor(page.blocked[-1][0].id) if page.blocked_more else None,
        "emergencies": [{"id": e.id, "purpose": e.purpose, "purpose_label": message(f"history_purpose_{e.purpose}"),
                         "reason": e.reason, "started_at": e.started_at, "expires_at": e.expires_at,
                         "professional": _pro(p, standing(p))}
                        for e, p in page.emergencies],
        "recent_accesses": [_item(i) for i in page.recent],
    }


@blp.route("/access/professionals")
@blp.arguments(s.AccessDirectoryArgs, location="query")
@blp.response(200, s.AccessDirectoryPageOut)
@blp.doc(**SECURED)
@web.patient_required
def directory(args: dict[str, Any]) -> dict[str, Any]:
    """Search the professionals directory by RPPS or name; each result says where they stand."""
    offset = web.decode_cursor(args["cursor"]) or 0
    rows, more = consents.search_professionals(get_session(), web.current_patient().id, args["q"],
                                               limit=args["limit"], offset=offset, profession=args["profession"])
    return {"items": [_pro(p, st) for p, st in rows],
            "next_cursor": web.encode_cursor(offset + len(rows)) if more else None}


@blp.route("/access/professionals/<int:professional_id>/preview")
@blp.response(200, s.AccessPreviewOut)
@blp.doc(**SECURED)
@web.patient_required
def preview(professional_id: int) -> dict[str, Any]:
    """What this professional can see: documents per category, by the access policy itself."""
    result = consents.preview(get_session(), web.current_patient().id, professional_id)
    return {"professional": _pro(result.professional, result.standing), "allowed": result.allowed,
            "reason": result.reason, "reason_label": message(f"history_reason_{result.reason}"),
            "basis": result.basis, "visible": result.visible, "total": result.total,
            "categories": [{**c, "label": message(f"access_category_{c['category']}")} for c in result.categories]}


@blp.route("/access/consents")
class Consents(MethodView):
    @blp.arguments(web.PageArgs, location="query")
    @blp.response(200, s.AccessConsentPageOut)
    @blp.doc(**SECURED)
    @web.patient_required
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The professionals you authorised (newest first, paginated)."""
        rows, more = consents.authorised_page(get_session(), web.current_patient().id, limit=args["limit"],
                                              before_id=web.decode_cursor(args["cursor"]))
        return {"items": [_consent(c, p) for c, p in rows],
                "next_cursor": web.encode_cursor(rows[-1][0].id) if more else None}

    @blp.arguments(s.AccessProfessionalRefIn)
    @blp.response(201, s.AccessConsentOut)
    @blp.alt_response(200, schema=s.AccessConsentOut, description="Already authorised")
    @blp.doc(**SECURED)
    @web.patient_required
    @web.writes(Action.ACCESS_CONSENTS)
    def post(self, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Authorise a professional (found in the directory) to read your record."""
        session = get_session()
        consent, created = consents.grant(session, web.current_patient().id, body["professional_id"])
        pro = session.get(Professional, consent.professional_id)
        assert pro is not None
        session.commit()
        return _consent(consent, pro), 201 if created else 200


@blp.route("/access/consents/<int:professional_id>", methods=["DELETE"])
@blp.response(204)
@blp.doc(**SECURED)
@web.patient_required
@web.writes(Action.ACCESS_CONSENTS)
def revoke(professional_id: int) -> None:
    """Withdraw a professional's authorisation; their next request is refused."""
    session = get_session()
    consents.revoke(session, web.current_patient().id, professional_id)
    session.commit()


@blp.route("/access/blocks")
class Blocks(MethodView):
    @blp.arguments(web.PageArgs, location="query")
    @blp.response(200, s.AccessBlockPageOut)
    @blp.doc(**SECURED)
    @web.patient_required
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The RPPS numbers you blocked (newest first, paginated)."""
        rows, more = consents.blocked_page(get_session(), web.current_patient().id, limit=args["limit"],
                                           before_id=web.decode_cursor(args["cursor"]))
        return {"items": [_block(b, p) for b, p in rows],
                "next_cursor": web.encode_cursor(rows[-1][0].id) if more else None}

    @blp.arguments(s.AccessBlockIn)
    @blp.response(201, s.AccessBlockOut)
    @blp.alt_response(200, schema=s.AccessBlockOut, description="Already blocked")
    @blp.doc(**SECURED)
    @web.patient_required
    @web.writes(Action.ACCESS_BLOCKS)
    def post(self, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Block a professional by RPPS (even one not in the directory): beats everything, emergencies included."""
        session = get_session()
        entry, created = consents.block(session, web.current_patient().id, body["rpps"])
        from sqlalchemy import select

        pro = session.scalar(select(Professional).where(Professional.rpps == entry.rpps))
        session.commit()
        return _block(entry, pro), 201 if created else 200


@blp.route("/access/blocks/<rpps>", methods=["DELETE"])
@blp.response(204)
@blp.doc(**SECURED)
@web.patient_required
@web.writes(Action.ACCESS_BLOCKS)
def unblock(rpps: str) -> None:
    """Unblock an RPPS."""
    session = get_session()
    consents.unblock(session, web.current_patient().id, rpps)
    session.commit()


def _role_view(role: str, setter: Any, what: str) -> type[MethodView]:
    class RoleView(MethodView):
        @blp.arguments(s.AccessProfessionalRefIn)
        @blp.response(200, s.AccessRoleOut)
        @blp.doc(**SECURED, summary=f"Name your {what}")
        @web.patient_required
        @web.writes(Action.ACCESS_CARE_TEAM)
        @web.writes(Action.ACCESS_CARE_TEAM)
        def put(self, body: dict[str, Any]) -> dict[str, Any]:
            session = get_session()
            patient_id = web.current_patient().id
            pro = setter(session, patient_id, body["professional_id"])
            standing = consents.standings(session, patient_id, [pro])[0]
            session.commit()
            return {"professional": _pro(pro, standing)}

        @blp.response(204)
        @blp.doc(**SECURED, summary=f"Remove your {what}")
        @web.patient_required
        @web.writes(Action.ACCESS_CARE_TEAM)
        @web.writes(Action.ACCESS_CARE_TEAM)
        def delete(self) -> None:
            session = get_session()
            setter(session, web.current_patient().id, None)
            session.commit()

    RoleView.__name__ = RoleView.__qualname__ = f"{role.title().replace('_', '')}View"
    return RoleView


blp.route("/access/medecin-traitant")(_role_view("medecin_traitant", consents.set_medecin_traitant,
                                                 "médecin traitant (regular doctor, access by default)"))
blp.route("/access/administrator")(_role_view("administrator", consents.set_administrator,
                                              "administrator professional (sees masked documents, may block)"))


@blp.route("/access/emergency", methods=["PUT"])
@blp.arguments(s.EmergencySwitchesIn)
@blp.response(200, s.EmergencySwitchesOut)
@blp.doc(**SECURED)
@web.patient_required
@web.writes(Action.ACCESS_EMERGENCY)
def emergency(body: dict[str, Any]) -> dict[str, bool]:
    """Change the emergency switches (SAMU, break the glass, masked documents); needs the password."""
    session = get_session()
    result = consents.set_emergency_switches(session, web.throttle(), web.current_patient(), body["password"],
                                             samu=body["samu"], btg=body["btg"], masked=body["masked"],
                                             signed_in=web.current_account())
    session.commit()
    return _switches(result)


# --- the access history ----------------------------------------------------------------------------------------

def _filter(args: dict[str, Any]) -> history.HistoryFilter:
    since, until = args["since"], args["until"]
    if since and until and since > until:
        raise DomainError("history_invalid_range")
    start, end = history.local_day_bounds(since, until)
    return history.HistoryFilter(actor_kinds=tuple(args["actor"]), actions=tuple(args["action"]), since=start,
                                 until=end, emergency_only=args["emergency"],
                                 hide_legal_secret=web.current_actor().kind == "representative")


@blp.route("/history")
@blp.arguments(s.AccessHistoryArgs, location="query")
@blp.response(200, s.AccessHistoryPageOut)
@blp.doc(**SECURED)
@web.patient_required
def history_page(args: dict[str, Any]) -> dict[str, Any]:
    """Every access and action on your record (who, when, what, why, emergency reason), newest first."""
    items, next_seq = history.page(get_session(), web.current_patient().id, _filter(args), limit=args["limit"],
                                   before_seq=web.decode_cursor(args["cursor"]), lang=language())
    return {"items": [_item(i) for i in items],
            "next_cursor": web.encode_cursor(next_seq) if next_seq is not None else None}


@blp.route("/history/export")
@blp.arguments(s.AccessHistoryExportArgs, location="query")
@blp.doc(**SECURED, responses={"200": {"description": "The history as a file (attachment)",
                                       "content": {"text/csv": {}, "application/pdf": {}}}})
@web.patient_required
def history_export(args: dict[str, Any]) -> Response:
    """Download the (filtered) access history as CSV or PDF, French headers by default."""
    from flask import current_app

    session = get_session()
    patient = web.current_patient()
    flt, lang, now = _filter(args), language(), utcnow()
    limit = int(current_app.config["HISTORY_EXPORT_MAX_ROWS"])
    total = history.count(session, patient.id, flt)
    if total > limit:
        raise DomainError("history_export_too_large", count=total, limit=limit)
    items = list(history.iterate(session, patient.id, flt, lang=lang))
    stamp = now.astimezone(history.LOCAL_TZ).strftime("%Y%m%d")
    if args["format"] == "pdf":
        body: bytes | str = history.to_pdf(items, holder=f"{patient.first_given_name} {patient.family_name}",
                                           lang=lang, now=now)
        mimetype, name = "application/pdf", f"historique-acces-{stamp}.pdf"
    else:
        body, mimetype, name = history.to_csv(items, lang), "text/csv", f"historique-acces-{stamp}.csv"
    audit.record(session, actor_type="patient", actor_id=str(patient.id), action="history.export",
                 patient_id=patient.id, details={"format": args["format"], "count": len(items)}, at=now)
    session.commit()
    response = Response(body, mimetype=mimetype)
    if mimetype == "text/csv":
        response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = web.disposition(name)
    return response
