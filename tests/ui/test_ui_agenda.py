"""The health agenda in the real app, against a live backend, under Xvfb: agenda (list and month),
booking, appointment detail with reschedule and cancel, prevention checklist, export and subscription.

The patient signs in through the API (the sign-in screens have their own journeys); a practice
publishes its opening hours over the professional FHIR API, as its software would.
"""

from __future__ import annotations

import pytest
import requests

from mobile.screens.agenda_booking import SlotRow
from mobile.screens.agenda_common import AppointmentRow
from mobile.screens.agenda_prevention import PreventionRow
from tests.ui.journey_support import professional, publish_opening_hours, shot

pytestmark = pytest.mark.ui


@pytest.fixture
def practice(live_backend):
    """A GP in Lyon open every day 09:00–12:00 from three days on (beyond the 24-hour cut-off), published
    over /fhir/R4."""
    pro = professional(live_backend, "10101230000", "Lambert", "Claire", specialty="SM26")
    return publish_opening_hours(live_backend, pro, "Cabinet des Terreaux", "Lyon", "69001",
                                 "4 place des Terreaux")


@pytest.fixture
def signed_in(ui, enrolled_patient, live_backend, totp_code):
    """The app holds an access token of the enrolled patient, as after the sign-in screens."""
    client = ui.app.client
    client.login(enrolled_patient.nir, enrolled_patient.password)
    client.verify_otp(totp_code(enrolled_patient))
    ui.app.signed_in = True
    ui.app.given_name = enrolled_patient.given_name
    return enrolled_patient




def rows(container, kind):
    return [w for w in reversed(container.children) if isinstance(w, kind)]


def test_book_see_move_cancel_prevent_and_subscribe(ui, practice, signed_in, live_backend):
    ui.app.show("home")  # where a signed-in patient starts
    ui.wait_for_screen("home")
    agenda = ui.app.show("agenda")
    ui.wait_for_screen("agenda")
    ui.wait_until(lambda: agenda.loaded, "the agenda is loaded")
    assert rows(agenda.ids.upcoming, AppointmentRow) == []
    shot(ui, "agenda-01-empty")

    # book: search by specialty and city, choose the first slot, confirm
    ui.tap(agenda.ids.book)
    booking = ui.wait_for_screen("agenda_booking")
    ui.type(booking.ids.specialty, "générale")
    ui.type(booking.ids.place, "Lyon")
    ui.tap(booking.ids.search)
    ui.wait_until(lambda: rows(booking.ids.results, SlotRow), "slots are listed")
    ui.settle()
    found = rows(booking.ids.results, SlotRow)
    assert found[0].slot["local_date"] == practice.isoformat() and found[0].slot["local_time"] == "09:00"
    shot(ui, "agenda-02-slots")
    ui.tap(found[0])
    assert booking.chosen["slot_id"] == found[0].slot["slot_id"]
    shot(ui, "agenda-03-confirm")
    ui.tap(booking.ids.confirm)
    detail = ui.wait_for_screen("agenda_detail")
    assert detail.appointment["status"] == "booked"
    assert detail.ids.heading.text == "Consultation — Claire LAMBERT"
    assert "09:00" in detail.ids.when.text and detail.ids.detail_notice.text == "Votre rendez-vous est confirmé."
    shot(ui, "agenda-04-detail")

    # the agenda lists it; the month shows the day
    ui.app.back("agenda")
    ui.wait_for_screen("agenda")
    ui.wait_until(lambda: rows(agenda.ids.upcoming, AppointmentRow), "the appointment is listed")
    ui.settle()
    shot(ui, "agenda-05-list")
    ui.tap(agenda.ids.show_month)
    ui.wait_until(lambda: agenda.ids.month_grid.children, "the month is drawn")
    ui.settle()
    if (practice.year, practice.month) != (agenda.year, agenda.month):
        ui.tap(agenda.ids.next_month)
        ui.settle()
    agenda.select_day(practice.day)
    ui.settle()
    assert [r.appointment["id"] for r in rows(agenda.ids.day_list, AppointmentRow)] == [detail.appointment["id"]]
    shot(ui, "agenda-06-month")

    # move it to 10:30 the same day, then cancel it
    ui.tap(rows(agenda.ids.day_list, AppointmentRow)[0])
    ui.wait_for_screen("agenda_detail")
    ui.tap(detail.buttons["move"])
    ui.wait_for_screen("agenda_booking")
    assert booking.reschedule_id == detail.appointment["id"]
    ui.tap(booking.ids.search)
    ui.wait_until(lambda: rows(booking.ids.results, SlotRow), "slots of the same professional are listed")
    ui.settle()
    later = next(r for r in rows(booking.ids.results, SlotRow) if r.slot["local_time"] == "10:30")
    ui.tap(later)
    ui.tap(booking.ids.confirm)
    ui.wait_for_screen("agenda_detail")
    ui.wait_until(lambda: "10:30" in detail.ids.when.text, "the new time is shown")
    assert detail.ids.detail_notice.text == "Votre rendez-vous a été déplacé."
    ui.tap(detail.buttons["ask_cancel"])
    shot(ui, "agenda-07-cancel-confirmation")
    ui.tap(detail.buttons["confirm_cancel"])
    ui.wait_until(lambda: detail.appointment.get("status") == "cancelled", "the appointment is cancelled")
    ui.settle()
    assert detail.ids.status.text == "Ce rendez-vous est annulé."
    shot(ui, "agenda-08-cancelled")

    # prevention: Lucie, 42, is offered the HPV test and the dTcaP booster; she marks one done
    ui.app.back("agenda")
    ui.wait_for_screen("agenda")
    ui.tap(agenda.ids.prevention)
    prevention = ui.wait_for_screen("agenda_prevention")
    ui.wait_until(lambda: rows(prevention.ids.item_list, PreventionRow), "the checklist is shown")
    items = {r.item["code"]: r for r in rows(prevention.ids.item_list, PreventionRow)}
    assert "depistage_col_hpv" in items
    prevention.mark(items["depistage_col_hpv"], "done")
    ui.wait_until(lambda: items["depistage_col_hpv"].item["status"] == "done", "the item is marked done")
    ui.settle()
    shot(ui, "agenda-09-prevention")

    # subscription link: discreet by default, readable by a calendar app without the patient's token
    ui.app.back("agenda")
    ui.wait_for_screen("agenda")
    ui.tap(agenda.ids.export)
    export = ui.wait_for_screen("agenda_export")
    ui.tap(export.ids.create_link)
    ui.wait_until(lambda: export.link, "the link is shown")
    ui.settle()
    shot(ui, "agenda-10-subscribe")
    link = export.link
    feed = requests.get(link, timeout=10)
    assert feed.status_code == 200 and feed.headers["Content-Type"].startswith("text/calendar")
    assert "LAMBERT" not in feed.text  # the cancelled appointment is gone, and titles are discreet anyway
    ui.tap(export.ids.revoke)
    ui.wait_until(lambda: not export.active, "the link is revoked")
    assert export.link == "" and requests.get(link, timeout=10).status_code == 404

