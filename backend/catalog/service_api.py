"""The connected services' API: FHIR R4 under ``/api/service/v1/fhir``, for the patient bound to the
OAuth access token, within the permissions the patient granted.

==========================================  ==========================================================
``GET  DocumentReference[?category=]``      documents of the granted categories (``documents.<CAT>.read``)
``GET  DocumentReference/{id}``             one of them
``GET  Binary/{id}``                        its bytes (a FHIR Binary with ``Accept: application/fhir+json``)
``GET  Observation[?code=]``                measures of the granted types (``measures.<type>.read``);
                                            ``code`` is a LOINC code or a type (``glucose``)
``POST Observation``                        a measure (``measures.<type>.write``); idempotent by identifier
``GET  AllergyIntolerance``                 ``profile.allergy.read``
``GET  MedicationStatement``                ``profile.treatment.read``
``GET  Immunization``                       ``profile.vaccination.read``
==========================================  ==========================================================

Every call: the resource protector checks the token against the consent as it is now (revoked, lapsed,
suspended or de-referenced service → 401 ``invalid_token``), then the access goes through
``records.access.authorize`` with ``Actor(kind="service", granted_categories=...)`` for exactly what is
read or written, which writes it to the patient's access history. Missing permission → 403
``insufficient_scope``. A document outside the granted categories is a 404, traced as a refusal.
Errors, negotiation and the CapabilityStatement (``GET metadata``) come from the FHIR layer
(``backend.fhir.layer``).
"""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlencode

from authlib.oauth2 import OAuth2Error
from flask import Response, current_app, g, request
from sqlalchemy import and_, or_, select

from backend import cursors, web
from backend.accounts.models import Patient
from backend.catalog import oauth
from backend.catalog.models import CatalogService
from backend.catalog.vocabulary import PERMISSIONS, Permission
from backend.db import get_session
from backend.errors import DomainError
import backend.fhir.layer as layer
import backend.fhir.profile_resources as profile_resources
import backend.fhir.resources as fhir
from backend.i18n import message
from backend.records.documents import service as documents
from backend.records.profile import service as profile
from backend.records.profile.common import Author
from backend.records.profile import measures as measure_service
from backend.records.profile import kinds as pk
from backend.records import vault
from backend.records.access.authorize import authorize, authorize_document, authorize_write
from backend.records.documents.models import Document
from backend.records.access.policy import Action, Actor
from backend.records.profile.models import ProfileMeasure

PREFIX = "/api/service/v1/fhir"
PAGE_DEFAULT, PAGE_MAX = 20, 100
F = TypeVar("F", bound=Callable[..., Any])
fhir_response = layer.fhir_response
base_url = layer.base_url


# --- the token --------------------------------------------------------------------------------------------

def service_token_required(fn: F) -> F:
    """A service's OAuth access token, valid against the patient's consent as it is now."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            g.service_token = oauth.require_service_token.acquire_token()
        except OAuth2Error as error:
            get_session().rollback()
            status = 401 if error.status_code in (400, 401) else error.status_code
            headers = dict(error.get_headers())
            headers.setdefault("WWW-Authenticate", 'Bearer realm="carnet-services"')
            headers.pop("Content-Type", None)
            return fhir_response(layer.operation_outcome(status, "catalog_invalid_token",
                                                         message("catalog_invalid_token")), status, headers)
        return fn(*args, **kwargs)

    wrapper._carnet_auth = "service"  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


bp = layer.FhirBlueprint("catalog_service_api", __name__, url_prefix=PREFIX, authenticate=service_token_required)
SEARCH_COUNT = (layer.SearchParam("_count", "number", f"Page size, 1 to {PAGE_MAX} (default {PAGE_DEFAULT}); the "
                                                      "'next' link carries _cursor."),)
bp.resource("DocumentReference", documentation="The documents of the categories the patient granted "
                                               "(documents.<CAT>.read), newest first.")
bp.resource("Binary", documentation="A granted document's bytes (a FHIR Binary with Accept: application/fhir+json).")
bp.resource("Observation", documentation="Measures of the granted types (measures.<type>.read); POST adds one "
                                         "(measures.<type>.write), the same identifier twice stored once.")
bp.resource("AllergyIntolerance", documentation="profile.allergy.read.")
bp.resource("MedicationStatement", documentation="profile.treatment.read.")
bp.resource("Immunization", documentation="profile.vaccination.read.")


@bp.capabilities
def metadata() -> Response:
    """This base's CapabilityStatement (public): what a connected service may call."""
    from backend.db import utcnow
    from backend.fhir.capability import statement

    return fhir_response(statement(
        current_app, PREFIX, base_url(), utcnow().date().isoformat(), name="CarnetConnectedServicesApi",
        title="Carnet — API des services connectés (FHIR R4)",
        documentation="The record of the patient bound to the OAuth access token, within the permissions the "
                      "patient granted; every access is in the patient's access history.",
        security={"service": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "OAuth"}]}],
            "description": "Authorization: Bearer <OAuth 2 access token of a connected service> (/oauth/token); "
                           "a missing permission is 403 insufficient_scope."}))


def _token() -> oauth.TokenView:
    return g.service_token


def _permitted(area: str, access: str, item: str | None = None) -> list[Permission]:
    """The token's permissions in an area (that the consent still grants); 403 insufficient_scope if none."""
    found = [PERMISSIONS[s] for s in sorted(_token().permissions) if s in PERMISSIONS
             and PERMISSIONS[s].area == area and PERMISSIONS[s].access == access
             and (item is None or PERMISSIONS[s].item == item)]
    if not found:
        wanted = f"{area}.{item or '*'}.{access}"
        raise DomainError("catalog_insufficient_scope", 403, headers={
            "WWW-Authenticate": f'Bearer realm="carnet-services", error="insufficient_scope", scope="{wanted}"'})
    return found


def _actor(categories: set[str]) -> Actor:
    return Actor(kind="service", id=_token().row.service_id, granted_categories=frozenset(categories))


def _patient_id() -> int:
    return _token().row.patient_id


def _subject() -> dict[str, str]:
    return {"reference": f"Patient/{_patient_id()}"}


def _count() -> int:
    raw = layer.params().get("_count", str(PAGE_DEFAULT))
    if not raw.isdigit() or not 1 <= int(raw) <= PAGE_MAX:
        raise DomainError("invalid_request", 400, errors=[{"field": "_count", "message": f"1–{PAGE_MAX}"}])
    return int(raw)


def _cursor() -> int | None:
    raw = layer.params().get("_cursor")
    if raw is None:
        return None
    value = web.decode_cursor(raw)
    return value


def _links(resource: str, next_id: int | None) -> tuple[str, str | None]:
    params = [(k, v) for k, v in layer.params().items(multi=True) if k != "_cursor"]
    self_link = f"{base_url()}{resource}" + (f"?{urlencode(params)}" if params else "")
    next_link = None
    if next_id is not None:
        sep = "&" if params else "?"
        next_link = f"{self_link}{sep}{urlencode({'_cursor': web.encode_cursor(next_id)})}"
    return self_link, next_link


# --- documents ----------------------------------------------------------------------------------------------

def _document_reference(doc: Document, holder: Patient) -> dict[str, Any]:
    resource = fhir.document_reference(doc, holder, base_url())
    resource["subject"] = _subject()  # services get the record's reference, never the INS
    return resource


@bp.interaction("search-type", "/DocumentReference", search=(
    layer.SearchParam("category", "token", "One of the patient's categories granted to you (BIOLOGIE…)."),
    *SEARCH_COUNT))
def search_documents() -> Response:
    """The documents of the granted categories, newest first, paged."""
    categories = {p.item for p in _permitted("documents", "read")}
    wanted = layer.params().get("category")
    if wanted is not None:
        if wanted not in categories:
            _permitted("documents", "read", wanted)
        categories = {wanted}
    session = get_session()
    count, after = _count(), _cursor()
    scope = authorize(session, _actor(categories), _patient_id(), "document.search",
                      details={"service_id": _token().row.service_id, "categories": sorted(categories)})
    stmt = select(Document).where(scope.document_filter(), Document.replaced_by_id.is_(None))
    if after is not None:
        stmt = stmt.where(Document.id < after)
    rows = list(session.scalars(stmt.order_by(Document.id.desc()).limit(count + 1)))
    page = rows[:count]
    holder = session.get(Patient, _patient_id())
    session.commit()
    self_link, next_link = _links("DocumentReference", page[-1].id if len(rows) > count else None)
    return fhir_response(fhir.searchset([_document_reference(d, holder) for d in page], base_url(),
                                        self_link=self_link, next_link=next_link))


def _read_document(raw_id: int, interaction: str) -> Document:
    """The patient's document under the service's decision: one outside the granted categories is a 404,
    traced as a refusal; another patient's document (or none) is a 404 that says nothing."""
    actor = _actor({p.item for p in _permitted("documents", "read")})
    return authorize_document(get_session(), actor, raw_id, "document.read" if interaction == "read" else
                              "document.download", patient_id=_patient_id(),
                              details={"service_id": actor.id, "interaction": interaction},
                              missing=DomainError("not_found", 404), conceal_refusal=True)


@bp.interaction("read", "/DocumentReference/<int:doc_id>")
def read_document(doc_id: int) -> Response:
    doc = _read_document(doc_id, "read")
    holder = get_session().get(Patient, doc.patient_id)
    get_session().commit()
    return fhir_response(_document_reference(doc, holder))


@bp.interaction("read", "/Binary/<int:doc_id>", raw=True)
def read_binary(doc_id: int) -> Response:
    doc = _read_document(doc_id, "download")
    session = get_session()
    data = documents.read_content(session, vault(session), doc)
    session.commit()
    accept = request.accept_mimetypes
    if layer.wants_json() or accept.best_match([doc.mime_type, fhir.FHIR_MIME]) == fhir.FHIR_MIME \
            and accept.quality(fhir.FHIR_MIME) > 0 and doc.mime_type != fhir.FHIR_MIME:
        return fhir_response(fhir.binary(doc, data))
    response = Response(data, status=200, content_type=doc.mime_type)
    response.headers["Content-Disposition"] = web.disposition()
    return response


# --- measures ---------------------------------------------------------------------------------------------

LOINC_TO_TYPE: dict[str, tuple[str, str | None]] = {}
for _spec in pk.MEASURE_TYPES.values():
    LOINC_TO_TYPE[_spec.loinc] = (_spec.code, None)
    for _unit in _spec.units:
        if _unit.loinc:
            LOINC_TO_TYPE[_unit.loinc] = (_spec.code, _unit.code)


def _measure_type(code: str) -> str:
    if code in pk.MEASURE_TYPES:
        return code
    _system, value = fhir.parse_token(code)
    if value in LOINC_TO_TYPE:
        return LOINC_TO_TYPE[value][0]
    raise DomainError("catalog_unknown_observation_code", 400, code=code[:40])


def _observation(m: ProfileMeasure, session: Any) -> dict[str, Any]:
    fields = json.loads(vault(session).open_text(m.patient_id, m.data, measure_service.measure_context(m.id)))
    return profile_resources.measure(measure_service.measure_for_export(m, fields), _subject())


@bp.interaction("search-type", "/Observation", search=(
    layer.SearchParam("code", "token", "A LOINC code (http://loinc.org|29463-7) or a measure type (glucose)."),
    *SEARCH_COUNT))
def search_observations() -> Response:
    """Measures of the granted types, newest first, paged."""
    types = {p.item for p in _permitted("measures", "read")}
    code = layer.params().get("code")
    if code is not None:
        wanted = _measure_type(code)
        if wanted not in types:
            _permitted("measures", "read", wanted)
        types = {wanted}
    session = get_session()
    count, after = _count(), _cursor()
    authorize(session, _actor({pk.MEASURE_CATEGORY}), _patient_id(), "profile.measures_read",
              details={"service_id": _token().row.service_id, "types": sorted(types)})
    stmt = select(ProfileMeasure).where(ProfileMeasure.patient_id == _patient_id(), ProfileMeasure.type.in_(sorted(types)),
                                        ProfileMeasure.deleted_at.is_(None))
    if after is not None:
        anchor = session.scalar(select(ProfileMeasure.measured_at).where(ProfileMeasure.id == after,
                                                                         ProfileMeasure.patient_id == _patient_id()))
        if anchor is None:
            raise cursors.refused("_cursor", 400)
        stmt = stmt.where(or_(ProfileMeasure.measured_at < anchor,
                              and_(ProfileMeasure.measured_at == anchor, ProfileMeasure.id < after)))
    rows = list(session.scalars(stmt.order_by(ProfileMeasure.measured_at.desc(), ProfileMeasure.id.desc())
                                .limit(count + 1)))
    page = rows[:count]
    entries = [_observation(m, session) for m in page]
    session.commit()
    self_link, next_link = _links("Observation", page[-1].id if len(rows) > count else None)
    return fhir_response(fhir.searchset(entries, base_url(), self_link=self_link, next_link=next_link))


def _invalid(reason: str) -> DomainError:
    return DomainError("catalog_invalid_observation", 400, reason=reason)


def _quantity_unit(spec: pk.MeasureType, quantity: dict[str, Any], unit_hint: str | None) -> str | None:
    for unit in spec.units:
        if quantity.get("code") == unit.ucum or quantity.get("unit") == unit.code:
            return unit.code
    return unit_hint


def measure_from_observation(body: Any) -> tuple[str, dict[str, Any], str | None]:
    """(type, the profile's measure fields, the service's identifier) of a FHIR Observation."""
    if not isinstance(body, dict) or body.get("resourceType") != "Observation":
        raise _invalid("une ressource Observation est attendue")
    fhir.validate_r4(body)
    if body.get("status") not in ("final", "amended", "corrected", "preliminary"):
        raise _invalid("status doit être final, amended, corrected ou preliminary")
    codings = (body.get("code") or {}).get("coding") or []
    found = [LOINC_TO_TYPE[c["code"]] for c in codings
             if c.get("system") == fhir.LOINC_URL and c.get("code") in LOINC_TO_TYPE]
    if not found:
        codes = ", ".join(str(c.get("code")) for c in codings)[:60]
        raise DomainError("catalog_unknown_observation_code", 400, code=codes or "?")
    mtype, unit_hint = found[0]
    spec = pk.MEASURE_TYPES[mtype]
    effective = body.get("effectiveDateTime")
    if not isinstance(effective, str):
        raise _invalid("effectiveDateTime est requis")
    item: dict[str, Any] = {"type": mtype, "measured_at": effective}
    if spec.components:
        by_code = {}
        for component in body.get("component") or []:
            for c in (component.get("code") or {}).get("coding") or []:
                by_code[c.get("code")] = component.get("valueQuantity") or {}
        for name, loinc, *_ in spec.components:
            quantity = by_code.get(loinc)
            if quantity is None:
                raise _invalid(f"composant {loinc} ({name}) manquant")
            item[name] = quantity.get("value")
            item["unit"] = _quantity_unit(spec, quantity, unit_hint)
    else:
        quantity = body.get("valueQuantity")
        if not isinstance(quantity, dict):
            raise _invalid("valueQuantity est requis")
        item["value"] = quantity.get("value")
        unit = _quantity_unit(spec, quantity, unit_hint)
        if unit is not None:
            item["unit"] = unit
    notes = [n.get("text") for n in body.get("note") or [] if isinstance(n, dict) and n.get("text")]
    if notes:
        item["note"] = " ".join(notes)[:1000]
    identifier = next((i.get("value") for i in body.get("identifier") or [] if isinstance(i, dict) and i.get("value")),
                      None)
    return mtype, item, identifier


@bp.interaction("create", "/Observation")
def create_observation() -> Response:
    """Add a measure to the patient's profile (``measures.<type>.write``). The measure is the patient's
    own (they may correct or delete it), signed with the service's name; the same ``identifier`` twice is
    stored once."""
    if request.mimetype not in ("application/fhir+json", "application/json"):
        raise DomainError("unsupported_media_type", 415)
    try:
        body = json.loads(request.get_data(cache=False) or b"null")
    except (ValueError, UnicodeDecodeError):
        raise _invalid("JSON invalide") from None
    mtype, item, identifier = measure_from_observation(body)
    _permitted("measures", "write", mtype)
    session = get_session()
    token = _token()
    service = session.get(CatalogService, token.row.service_id)
    assert service is not None
    authorize_write(session, _actor({pk.MEASURE_CATEGORY}), _patient_id(), Action.PROFILE_ENTRIES,
                    trace="profile.measure_written", details={"service_id": service.id, "type": mtype})
    key = f"svc:{service.id}:{identifier}"[:128] if identifier else None
    if key:
        item["source_key"] = key
    result = profile.add_entries(session, vault(session), _patient_id(), "measure", [item], source="patient",
                                 author=Author("patient", name=service.name[:300]))
    if result.rejected:
        errors = result.rejected[0]["errors"]
        raise DomainError("profile_invalid", 422, errors=[
            {"field": e.get("field"), "message": message(e["message_code"], **e.get("params", {}))
             if e.get("message_code") else e.get("message")} for e in errors])
    if result.created:
        measure = session.get(ProfileMeasure, result.created[0])
        status = 201
    else:
        measure = session.scalar(select(ProfileMeasure).where(ProfileMeasure.patient_id == _patient_id(),
                                                              ProfileMeasure.source_key == key))
        status = 200
    assert measure is not None
    resource = _observation(measure, session)
    session.commit()
    return fhir_response(resource, status, {"Location": f"{base_url()}Observation/{resource['id']}"})


# --- profile kinds ------------------------------------------------------------------------------------------

def _profile_kind(kind: str, build: Callable[[dict[str, Any]], dict[str, Any]]) -> Response:
    _permitted("profile", "read", kind)
    session = get_session()
    scope = authorize(session, _actor({pk.KINDS[kind].category}), _patient_id(), "profile.read",
                      details={"service_id": _token().row.service_id, "kind": kind})
    items = profile.profile_for_export(session, vault(session), _patient_id(), scope=scope)[kind]
    session.commit()
    return fhir_response(fhir.searchset([build(i) for i in items], base_url(), total=len(items)))


@bp.interaction("search-type", "/AllergyIntolerance")
def allergies() -> Response:
    return _profile_kind("allergy", lambda i: profile_resources.allergy(i, _subject()))


@bp.interaction("search-type", "/MedicationStatement")
def treatments() -> Response:
    today = dt.datetime.now(pk.PARIS).date()
    return _profile_kind("treatment", lambda i: profile_resources.medication(i, _subject(), today))


@bp.interaction("search-type", "/Immunization")
def vaccinations() -> Response:
    return _profile_kind("vaccination", lambda i: profile_resources.immunization(i, _subject()))
