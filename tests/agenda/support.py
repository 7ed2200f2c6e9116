"""Helpers for the agenda tests: a professional with a token, a signed-in patient, a FHIR Schedule."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask
from flask.testing import FlaskClient

from backend.agenda import fhir
from tests.helpers import activate, bearer, create_patient, make_nir

PARIS = ZoneInfo("Europe/Paris")
UTC = dt.timezone.utc
FHIR_JSON = "application/fhir+json"


def paris(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=PARIS)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


@dataclass
class Pro:
    id: int
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {**bearer(self.token), "Content-Type": FHIR_JSON}


def make_pro(app: Flask, rpps: str = "10101234567", family: str = "Durand", given: str = "Alice",
             specialty: str = "SM26", profession: str = "10") -> Pro:
    from backend.db import get_session
    from backend.professionals import service as pros

    with app.app_context():
        session = get_session()
        pro, token = pros.create_professional(session, rpps=rpps, family_name=family, given_name=given,
                                              profession=profession, specialty=specialty,
                                              organisation="Cabinet médical du Parc")
        session.commit()
        return Pro(pro.id, token)


@dataclass
class SignedIn:
    patient_id: int
    nir: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


PATIENTS = [  # (first 13 digits of the NIR, birth date, sex, given name)
    ("2840763220010", "1984-07-14", "F", "Camille"),
    ("1900275123456", "1990-02-17", "M", "Louis"),
    ("2720575123123", "1972-05-03", "F", "Nadia"),
    ("1550875123124", "1955-08-21", "M", "Marc"),
    ("2011275123125", "2001-12-09", "F", "Jeanne"),
    ("1951075123126", "1995-10-30", "M", "Hugo"),
    ("2680375123127", "1968-03-11", "F", "Sophie"),
    ("1800675123128", "1980-06-25", "M", "Karim"),
    ("2930975123129", "1993-09-02", "F", "Léa"),
    ("1460175123130", "1946-01-15", "M", "Paul"),
]


def sign_in(app: Flask, client: FlaskClient, index: int = 0, **overrides: Any) -> SignedIn:
    first13, birth, sex, given = PATIENTS[index]
    nir = make_nir(overrides.pop("first13", first13))
    created = create_patient(app, nir, overrides.pop("birth_date", birth), sex=overrides.pop("sex", sex),
                             given=given, family=overrides.pop("family", "Martin"))
    tokens = activate(client, created)
    return SignedIn(created.patient_id, nir, tokens["access_token"])


def schedule_body(*, start: str = "2026-03-02T09:00:00", end: str = "2026-03-02T12:00:00",
                  rrule: str | None = "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", slot_minutes: int = 30,
                  visit: str = "in-person", specialty: tuple[str, str] | None = ("SM26", "Médecine générale"),
                  place: dict[str, Any] | None = None, closed_days: list[str] | None = None,
                  unavailable: list[tuple[str, str]] | None = None, openings: list[tuple[str, str, str | None]] | None = None,
                  horizon: dict[str, str] | None = None, tz: str | None = "Europe/Paris") -> dict[str, Any]:
    """A FHIR R4 Schedule as a practice's software would send it: wall times of ``tz`` get their offset (a
    FHIR dateTime with a time carries one)."""
    zone = ZoneInfo(tz or "Europe/Paris")

    def offset(value: str) -> str:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return value if when.tzinfo is not None else when.replace(tzinfo=zone).isoformat()

    ext: list[dict[str, Any]] = [{"url": fhir.EXT_SLOT_MINUTES, "valueInteger": slot_minutes}]
    if tz:
        ext.append({"url": fhir.EXT_TZ, "valueCode": tz})
    for s, e, r in openings or [(start, end, rrule)]:
        parts: list[dict[str, Any]] = [{"url": "start", "valueDateTime": offset(s)},
                                       {"url": "end", "valueDateTime": offset(e)}]
        if r:
            parts.append({"url": "rrule", "valueString": r})
        ext.append({"url": fhir.EXT_OPENING, "extension": parts})
    for day in closed_days or []:
        ext.append({"url": fhir.EXT_CLOSED_DAY, "valueDate": day})
    for s, e in unavailable or []:
        ext.append({"url": fhir.EXT_UNAVAILABLE, "valuePeriod": {"start": offset(s), "end": offset(e)}})
    place = place if place is not None else {"name": "Cabinet médical du Parc", "line": ["12 rue Garibaldi"],
                                             "postalCode": "69006", "city": "Lyon"}
    body: dict[str, Any] = {
        "resourceType": "Schedule", "active": True, "extension": ext,
        "serviceType": [{"coding": [{"system": fhir.VISIT_TYPE_SYSTEM, "code": visit}]}],
        "actor": [{"reference": "#place"}],
        "contained": [{"resourceType": "Location", "id": "place", "name": place.get("name"),
                       "address": {k: v for k, v in place.items() if k != "name"}}],
    }
    if specialty:
        body["specialty"] = [{"coding": [{"system": "https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/"
                                                    "TRE-R38-SpecialiteOrdinale",
                                          "code": specialty[0], "display": specialty[1]}]}]
    if horizon:
        body["planningHorizon"] = horizon
    return body


def publish(client: FlaskClient, pro: Pro, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/fhir/R4/Schedule", json=body, headers=pro.headers)
    assert r.status_code == 201, r.get_data(as_text=True)
    return r.get_json()


def slots(client: FlaskClient, who: SignedIn, **params: Any) -> list[dict[str, Any]]:
    """Every page of a slot search."""
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        r = client.get("/api/v1/agenda/slots", query_string=query, headers=who.headers)
        assert r.status_code == 200, r.get_json()
        body = r.get_json()
        out.extend(body["items"])
        cursor = body["next_cursor"]
        if not cursor:
            return out


def book(client: FlaskClient, who: SignedIn, slot_id: str) -> Any:
    return client.post("/api/v1/agenda/appointments", json={"slot_id": slot_id}, headers=who.headers)
