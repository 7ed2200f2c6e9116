"""What makes home a hub beyond the record: the next appointment and the unread conversations, asked in
the same background call as ``/home`` (``load_hub``), each quietly optional (home is whole without them)."""

from __future__ import annotations

import datetime as dt

from mobile.api import ApiError, CarnetClient
from mobile.api.agenda import AgendaApi
from mobile.api.inbox import InboxApi
from mobile.i18n import today_local


def _quietly(ask):
    try:
        return ask()
    except ApiError as error:
        if error.status == 401:
            raise
        return None


def next_appointment(page: dict | None, now: dt.datetime | None = None) -> dict | None:
    """The first booked appointment still to come in an agenda page (from today on, in time order)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    for item in (page or {}).get("items") or []:
        if item.get("status") not in (None, "booked"):
            continue
        try:
            starts = dt.datetime.fromisoformat(str(item.get("starts_at")).replace("Z", "+00:00"))
        except ValueError:
            continue
        if starts.tzinfo is None or starts > now:
            return item
    return None


def load_hub(client: CarnetClient) -> dict:
    agenda, inbox = client.feature(AgendaApi), client.feature(InboxApi)
    try:
        page = _quietly(lambda: agenda.appointments(date_from=today_local().isoformat(), limit=10))
        threads = _quietly(lambda: inbox.threads(limit=1))
    finally:
        for api in (agenda, inbox):
            close = getattr(api, "close", None)
            if close is not None:
                close()
    return {"next_appointment": next_appointment(page),
            "unread_threads": (threads or {}).get("unread_threads") if threads is not None else None}
