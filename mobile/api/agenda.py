"""The health agenda's part of the API client (``/api/v1/agenda``), without Kivy.

It rides on a :class:`CarnetClient` (its base URL, language, timeout and the patient's access token)
and adds what the agenda needs beyond JSON: query strings, ``.ics`` downloads and an ``.ics`` upload.
Every call is blocking: screens run them off the UI thread.
"""

from __future__ import annotations

import logging
from typing import Any


from .client import CarnetClient

log = logging.getLogger(__name__)


class AgendaApi:
    def __init__(self, client: CarnetClient) -> None:
        self.client = client

    # -- search and booking -------------------------------------------------------------

    def specialties(self) -> list[dict]:
        return self._call("GET", "/agenda/specialties")["items"]

    def slots(self, *, specialty: str | None = None, place: str | None = None, name: str | None = None,
              professional_id: int | None = None, date: str | None = None, days: int = 7,
              limit: int = 30, cursor: str | None = None) -> dict:
        """Free slots, earliest first → ``{items, next_cursor}``. ``date`` is ISO (YYYY-MM-DD)."""
        params = {"specialty": specialty, "place": place, "name": name, "professional_id": professional_id,
                  "date": date, "days": days, "limit": limit, "cursor": cursor}
        return self._call("GET", "/agenda/slots", params=params)

    def book(self, slot_id: str, notes: str | None = None) -> dict:
        return self._call("POST", "/agenda/appointments", json={"slot_id": slot_id, "notes": notes})

    # -- the agenda ----------------------------------------------------------------------

    def appointments(self, *, date_from: str | None = None, date_to: str | None = None,
                     include_cancelled: bool = False, limit: int = 50, cursor: str | None = None) -> dict:
        params = {"from": date_from, "to": date_to, "include_cancelled": "true" if include_cancelled else None,
                  "limit": limit, "cursor": cursor}
        return self._call("GET", "/agenda/appointments", params=params)

    def appointment(self, appointment_id: int) -> dict:
        return self._call("GET", f"/agenda/appointments/{appointment_id}")

    def cancel(self, appointment_id: int) -> dict:
        return self._call("POST", f"/agenda/appointments/{appointment_id}/cancel")

    def reschedule(self, appointment_id: int, slot_id: str) -> dict:
        return self._call("POST", f"/agenda/appointments/{appointment_id}/reschedule", json={"slot_id": slot_id})

    def add_entry(self, title: str, starts_at: str, ends_at: str, *, all_day: bool = False,
                  place_name: str | None = None, notes: str | None = None) -> dict:
        return self._call("POST", "/agenda/entries", json={
            "title": title, "starts_at": starts_at, "ends_at": ends_at, "all_day": all_day,
            "place_name": place_name, "notes": notes})

    def delete_entry(self, entry_id: int) -> None:
        self._call("DELETE", f"/agenda/entries/{entry_id}")

    # -- prevention ----------------------------------------------------------------------

    def prevention(self) -> dict:
        return self._call("GET", "/agenda/prevention")

    def mark(self, code: str, status: str, *, done_on: str | None = None, planned_on: str | None = None,
             add_to_agenda: bool = False) -> dict:
        body: dict[str, Any] = {"status": status, "add_to_agenda": add_to_agenda}
        if done_on:
            body["done_on"] = done_on
        if planned_on:
            body["planned_on"] = planned_on
        return self._call("PUT", f"/agenda/prevention/{code}", json=body)

    # -- calendars ----------------------------------------------------------------------

    def feed(self) -> dict:
        return self._call("GET", "/agenda/feed")

    def create_feed(self, show_details: bool = False) -> dict:
        return self._call("POST", "/agenda/feed", json={"show_details": show_details})

    def set_feed_details(self, show_details: bool) -> dict:
        return self._call("PATCH", "/agenda/feed", json={"show_details": show_details})

    def revoke_feed(self) -> None:
        self._call("DELETE", "/agenda/feed")

    def export_ics(self, appointment_id: int | None = None) -> bytes:
        path = f"/agenda/appointments/{appointment_id}/calendar.ics" if appointment_id else "/agenda/calendar.ics"
        return self._call("GET", path, raw=True)

    def import_ics(self, data: bytes, filename: str = "agenda.ics") -> dict:
        return self._call("POST", "/agenda/import", files={"file": (filename, data, "text/calendar")})

    # -- plumbing -------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, params: dict | None = None, json: dict | None = None,
              files: dict | None = None, raw: bool = False) -> Any:
        if raw:  # the calendar file itself, never from the device's copy
            return self.client.send(method, path, params=params, json=json, accept="text/calendar").content
        return self.client.call(method, path, params=params, json=json, files=files)
