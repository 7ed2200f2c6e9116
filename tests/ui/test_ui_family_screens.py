"""The family space's forms in the real app under Xvfb against a live backend: a parent activates her newborn's
record from the letter the child received (from her own session, after a wrong code the server refuses), finds
the child's record open (its name in the top bar), books an appointment in the child's agenda, invites the other
parent (a code shown once, with a copy button), and, back in her own record, names a carer in the access
settings (a code) and revokes them, up to the server's limit of three. Then the other parent, in his own Carnet,
enters the child's code ("J'ai reçu un code d'un autre parent") and Lucie's carer code: his switcher lists his own
record, Hugo's and Lucie's.

Screenshots: ``screenshots/family-screens-*.png``.
"""

from __future__ import annotations

import itertools

import pytest

from mobile.screens.agenda_booking import SlotRow
from mobile.screens.family import SpaceButton
from tests.ui.conftest import fresh_totp_code, valid_nir
from tests.ui.journey_support import clipped_labels, professional, publish_opening_hours, rows, scroll_to, shot
from tests.ui.journey_support import open_home, sign_in, small_targets, texts

pytestmark = pytest.mark.ui


@pytest.fixture
def newborn(live_backend) -> dict:
    """A boy born in September 2026, pre-created (``carnet patient create``) with his letter's code."""
    nir = valid_nir(next(live_backend._serials), sex="1", year=26, month=9)
    result = live_backend.carnet("patient", "create", "--nir", nir, "--birth-date", "2026-09-12",
                                 "--family-name", "Martin", "--given-name", "Hugo", "--sex", "M")
    import json

    created = json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])
    return {"nir": nir, "birth_date_fr": "12/09/2026", "code": created["activation_code"]}


ATTEMPTS = itertools.count()


@pytest.fixture
def paediatric_practice(live_backend):
    # a practitioner of this attempt's own (a rerun after a failed attempt finds the first one's in the directory)
    pro = professional(live_backend, f"1010123{next(ATTEMPTS):02d}42", "Roux", "Anne", specialty="SM26")
    return publish_opening_hours(live_backend, pro, "Cabinet des Petits", "Clermont-Ferrand", "63000",
                                 "2 rue Blatin")


def enrol(live_backend, given_name: str, family_name: str):
    """Another adult with an activated account and TOTP (as the ``enrolled_patient`` fixture, through the API)."""
    from mobile.api import CarnetClient

    patient = live_backend.create_patient(given_name=given_name, family_name=family_name)
    with CarnetClient(live_backend.url) as client:
        client.activate(patient.nir, patient.birth_date, patient.activation_code, patient.password)
        patient.totp_secret = client.enrol_totp()["secret"]
        client.confirm_enrolment(fresh_totp_code(patient))
        client.logout()
    return patient


def to_top(ui, screen) -> None:
    from kivy.uix.scrollview import ScrollView

    for view in screen.walk():
        if isinstance(view, ScrollView):
            view.scroll_y = 1
    ui.frames(3)


def spaces_of(home) -> list:
    return rows(home.ids.spaces.ids.choices, SpaceButton)


def test_a_parent_activates_her_newborns_record_invites_the_other_parent_and_names_a_carer(
        ui, enrolled_patient, newborn, paediatric_practice, data_dir, live_backend):
    sign_in(ui, enrolled_patient)
    home = open_home(ui)
    assert spaces_of(home) == []  # only her own record: no switcher, but the family space's links
    scroll_to(ui, home.ids.family_links)
    shot(ui, "family-screens-01-home-family-links")

    # the child's letter: a wrong code first (the server's sentence), then the right one
    ui.tap(home.ids.family_links.ids.add_child)
    form = ui.wait_for_screen("family_actions")
    assert form.mode == "activate" and form.title == "Ajouter le dossier d'un enfant"
    ui.type(form.ids.nir, newborn["nir"])
    ui.type(form.ids.birth_date, newborn["birth_date_fr"])
    ui.type(form.ids.code_field, "ABCD-EFGH-JKLM")
    ui.tap(form.ids.submit)
    ui.wait_until(lambda: form.error, "the wrong code is refused")
    assert form.last_error.status in (400, 401, 404, 409, 422) and form.error == form.last_error.detail
    assert "{" not in form.error
    assert small_targets(form) == [] and clipped_labels(form) == []
    shot(ui, "family-screens-02-wrong-code")
    ui.type(form.ids.code_field, newborn["code"])
    ui.tap(form.ids.submit)
    ui.wait_for_screen("home")
    ui.wait_until(lambda: len(spaces_of(home)) == 2, "the switcher lists the child")
    ui.wait_until(lambda: home.loaded and not ui.app.busy, "the child's home is shown")
    ui.settle()
    assert [b.name for b in spaces_of(home)] == ["Lucie MARTIN", "Hugo MARTIN"]
    assert spaces_of(home)[1].selected and ui.app.record_kind == "child"
    assert ui.app.record_banner == "Dossier de Hugo MARTIN"
    assert clipped_labels(home) == []
    to_top(ui, home)
    shot(ui, "family-screens-03-child-open")

    # an appointment in the child's agenda
    agenda = ui.app.show("agenda")
    ui.wait_for_screen("agenda")
    ui.wait_until(lambda: agenda.loaded, "the child's agenda is loaded")
    ui.tap(agenda.ids.book)
    booking = ui.wait_for_screen("agenda_booking")
    ui.type(booking.ids.specialty, "générale")
    ui.type(booking.ids.place, "Clermont")
    ui.tap(booking.ids.search)
    ui.wait_until(lambda: rows(booking.ids.results, SlotRow), "slots are listed")
    ui.settle()
    ui.tap(rows(booking.ids.results, SlotRow)[0])
    shot(ui, "family-screens-04-child-booking")
    ui.tap(booking.ids.confirm)
    detail = ui.wait_for_screen("agenda_detail")
    assert detail.appointment["status"] == "booked"
    assert ui.app.record_banner == "Dossier de Hugo MARTIN"
    shot(ui, "family-screens-05-child-appointment")

    # invite the other parent: a code to share
    open_home(ui)
    ui.tap(home.ids.spaces.ids.child_record)
    form = ui.wait_for_screen("family_actions")
    assert form.mode == "child"
    ui.wait_until(lambda: form.others == "Lucie MARTIN", "the child's representatives are listed")
    ui.tap(form.ids.invite)
    ui.wait_until(lambda: form.code, "the invitation code is shown")
    assert form.ids.invitation_code.text == form.code and len(form.code) >= 8
    ui.tap(form.ids.copy_code)
    assert form.notice == "Code copié : envoyez-le à l'autre parent."
    parent_code = form.code
    assert clipped_labels(form) == [] and small_targets(form) == []
    shot(ui, "family-screens-06-invitation-code")
    # leaving asks first
    ui.tap(form.ids.leave)
    assert form.confirm_leave and "Vous ne serez plus représentant légal" in texts(form)
    shot(ui, "family-screens-07-leave-confirmation")
    ui.tap(form.ids.cancel_leave)
    assert not form.confirm_leave

    # back in her own record: name a carer (agenda and messages), then revoke them
    open_home(ui)
    ui.tap(spaces_of(home)[0])
    ui.wait_until(lambda: ui.app.record_kind == "own" and home.loaded and not ui.app.busy, "her own record")
    access = ui.app.show("access")
    ui.wait_for_screen("access")
    ui.wait_until(lambda: access.loaded and "Vous n'avez désigné aucun aidant." in texts(access.ids.carers),
                  "no carer yet")
    ui.tap(access.ids.carer_scope_messages)
    assert access.carer_agenda and access.carer_messages and not access.carer_documents
    ui.tap(access.ids.name_carer)
    ui.wait_until(lambda: access.carer_code and access.carer_rows(), "the carer's code and invitation")
    ui.settle()
    invited = access.carer_rows()[0]
    assert invited.carer["state"] == "invited" and invited.carer["scopes"] == ["agenda", "messages"]
    assert "Invitation en attente" in invited.detail and "Gérer l'agenda" in invited.detail
    assert clipped_labels(access) == []
    shot(ui, "family-screens-08-carer-code")
    ui.tap(invited.ids.revoke)
    ui.wait_until(lambda: not access.carer_rows(), "the invitation is withdrawn")
    assert access.carers_notice == "L'invitation est retirée."
    shot(ui, "family-screens-09-carer-revoked")

    # the limit is the server's: three carers, the fourth refused with its sentence
    for _n in range(3):
        ui.tap(access.ids.name_carer)
        ui.wait_until(lambda n=_n: len(access.carer_rows()) == n + 1, "one more invitation")
    ui.tap(access.ids.name_carer)
    ui.wait_until(lambda: access.carers_error, "the fourth carer is refused")
    assert "3 aidants" in access.carers_error
    shot(ui, "family-screens-10-carers-limit")
    carer_code = access.carer_code

    # the other parent, in his own Carnet: the child's code, then Lucie's carer code
    father = enrol(live_backend, "Paul", "Martin")
    ui.reset()
    sign_in(ui, father)
    home = open_home(ui)
    ui.tap(home.ids.family_links.ids.accept_representative)
    form = ui.wait_for_screen("family_actions")
    assert form.mode == "representative"
    ui.type(form.ids.code_field, parent_code)
    assert small_targets(form) == [] and clipped_labels(form) == []
    shot(ui, "family-screens-11-other-parent-code")
    ui.tap(form.ids.submit)
    ui.wait_for_screen("home")
    ui.wait_until(lambda: [b.name for b in spaces_of(home)] == ["Paul MARTIN", "Hugo MARTIN"], "Hugo is listed")
    ui.wait_until(lambda: ui.app.record_banner == "Dossier de Hugo MARTIN" and not ui.app.busy, "Hugo's record")
    scroll_to(ui, home.ids.family_links)
    ui.tap(home.ids.family_links.ids.accept_carer)
    form = ui.wait_for_screen("family_actions")
    assert form.mode == "carer"
    ui.type(form.ids.code_field, carer_code)
    ui.tap(form.ids.submit)
    ui.wait_for_screen("home")
    ui.wait_until(lambda: len(spaces_of(home)) == 3, "Lucie is listed as a person helped")
    ui.wait_until(lambda: home.loaded and not ui.app.busy, "Lucie's record is open")
    assert [b.kind for b in spaces_of(home)] == ["Mon espace", "Enfant", "Personne aidée"]
    assert ui.app.record_banner == "Dossier de Lucie MARTIN" and ui.app.record_kind == "helped"
    to_top(ui, home)
    shot(ui, "family-screens-12-other-parent-helps-lucie")

    # he leaves Hugo's record (after confirming): Lucie keeps it, his switcher no longer lists Hugo
    ui.tap(next(b for b in spaces_of(home) if b.space.get("given_name") == "Hugo"))
    ui.wait_until(lambda: ui.app.record_kind == "child" and home.loaded and not ui.app.busy, "Hugo's record")
    ui.tap(home.ids.spaces.ids.child_record)
    form = ui.wait_for_screen("family_actions")
    ui.wait_until(lambda: form.others == "Lucie MARTIN, Paul MARTIN", "both parents are listed")
    ui.tap(form.ids.leave)
    ui.tap(form.ids.leave)
    ui.wait_for_screen("home")
    ui.wait_until(lambda: [b.name for b in spaces_of(home)] == ["Paul MARTIN", "Lucie MARTIN"], "Hugo is gone")
    ui.wait_until(lambda: home.loaded and not ui.app.busy, "his own record is open")
    assert ui.app.record_kind == "own" and ui.app.record_banner == ""
