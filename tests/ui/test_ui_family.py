"""The family space in the real app under Xvfb against a live backend (``carnet demo``): the demo patient,
Camille MARTIN, switches from her own record to her son Léo's (she is his legal representative) and to her
father Jean's (she helps him with his agenda and messages). Whose record is open is on every screen (name and
colour in the top bar); Léo's documents show his GP's vaccination certificate, never the document under the
minor's secrecy; once Léo turns 18 (the majority job, clock moved) the switcher no longer lists him.

Screenshots: ``screenshots/family-*.png``.
"""

from __future__ import annotations

import pytest

from tests.ui.journey_support import shot, texts
from tests.ui.journey_support import open_home

pytestmark = pytest.mark.ui


def switcher_buttons(home):
    from mobile.screens.family import SpaceButton

    return [w for w in reversed(home.ids.spaces.ids.choices.children) if isinstance(w, SpaceButton)]


def choose(ui, home, given_name: str):
    button = next(b for b in switcher_buttons(home) if b.space.get("given_name") == given_name)
    ui.tap(button)
    ui.wait_until(lambda: button.selected, f"{given_name}'s record is chosen")
    ui.wait_until(lambda: home.loaded and not ui.app.busy, "home is shown again")
    ui.settle()


def test_the_profile_switcher_opens_each_record_and_says_whose_it_is(ui, signed_in, live_backend):  # noqa: F811
    home = open_home(ui)
    ui.wait_until(lambda: len(switcher_buttons(home)) == 3, "the switcher lists three records")
    assert [b.name for b in switcher_buttons(home)] == ["Camille MARTIN", "Léo MARTIN", "Jean MARTIN"]
    assert [b.kind for b in switcher_buttons(home)] == ["Mon espace", "Enfant", "Personne aidée"]
    assert switcher_buttons(home)[0].selected and ui.app.record_banner == ""
    shot(ui, "family-01-home-own")

    # Léo's record: his name and colour in the top bar, his documents without the secret one
    choose(ui, home, "Léo")
    assert ui.app.client.record_id and ui.app.record_banner == "Dossier de Léo MARTIN"
    assert "Dossier de Léo MARTIN" in texts(home)
    shot(ui, "family-02-home-child")
    ui.tap(home.ids.records.ids.documents)
    documents = ui.wait_for_screen("documents")
    ui.wait_until(lambda: documents.loaded and documents.rows(), "Léo's documents")
    titles = [r.title for r in documents.rows()]
    assert titles == ["Certificat de vaccination (ROR, DTCaP)"], titles
    assert "Dossier de Léo MARTIN" in texts(documents)
    shot(ui, "family-03-child-documents")

    # Jean's record (a carer with the agenda and messages): home keeps to what she was given
    home = open_home(ui)
    choose(ui, home, "Jean")
    assert ui.app.record_banner == "Dossier de Jean MARTIN"
    agenda = ui.app.show("agenda")
    ui.wait_for_screen("agenda")
    ui.wait_until(lambda: agenda.loaded, "Jean's agenda")
    assert "Dossier de Jean MARTIN" in texts(agenda) and not agenda.error
    shot(ui, "family-04-helped-agenda")

    # back to her own record: no banner, her own documents
    home = open_home(ui)
    choose(ui, home, "Camille")
    assert ui.app.client.record_id is None and ui.app.record_banner == ""
    ui.tap(home.ids.records.ids.documents)
    documents = ui.wait_for_screen("documents")
    ui.wait_until(lambda: any(r.title == "Consultation de cardiologie" for r in documents.rows()), "her documents")

    # Léo turns 18: the majority job (clock moved to his birthday); the switcher no longer lists him
    live_backend.carnet("family", "majority", "--at", "2039-09-03T09:00:00+02:00")
    home = open_home(ui)
    home.ids.spaces.refresh()
    ui.wait_until(lambda: [b.name for b in switcher_buttons(home)] == ["Camille MARTIN", "Jean MARTIN"],
                  "Léo is no longer in the switcher")
    shot(ui, "family-05-after-majority")
