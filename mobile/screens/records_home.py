"""The record's part of the home screen: entry points to the record's screens, the documents others
added recently, and the legacy import while it needs the patient's attention."""

from __future__ import annotations

from pathlib import Path

from kivy.app import App
from kivy.properties import BooleanProperty, DictProperty, NumericProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout

from mobile.api import ApiError, CarnetClient
from mobile.api.records import MIGRATION_RUNNING, RecordsApi
from mobile.i18n import _
from mobile.navigation import open_from_home

from .records_common import RecordsCard, load_kv, short_date

load_kv(str(Path(__file__).with_suffix(".kv")))


def load_home(client: CarnetClient, *, helped: bool = False) -> dict:
    """``/home``, plus where the legacy import stands (``records_migration``) when the account has
    one, the next appointment and the unread conversations (``hub``): all in the same background call, so
    the home screen shows up whole. For a person helped (a carer sees only what they were given: never the
    account's page), only the agenda and inbox parts."""
    if helped:
        from .home_hub import load_hub

        return {"records": {}, "next_steps": [], "recent_activity": [], "records_migration": None,
                "hub": load_hub(client)}
    home = client.home()
    try:
        home["records_migration"] = client.feature(RecordsApi).migration_status()
    except ApiError as error:
        if error.status == 401:
            raise
        home["records_migration"] = None  # the home page is still worth showing without it
    from .home_hub import load_hub  # the agenda and inbox parts of home

    home["hub"] = load_hub(client)
    return home


def migration_line(status: dict | None) -> str:
    """A line for the home tile, or '' when there is no legacy dossier to talk about."""
    if not status or (status.get("state") in (None, "none", "no_dossier") and not status.get("processed")):
        return ""
    if status["state"] in MIGRATION_RUNNING:
        if not status.get("total"):
            return _("Import en préparation…")
        return _("Import en cours : {done} sur {total}").format(done=status.get("processed", 0),
                                                               total=status.get("total", 0))
    if status.get("open_conflicts"):
        return _("{n} information(s) à vérifier").format(n=status["open_conflicts"])
    if not status.get("reviewed_at"):
        return _("Import terminé : consultez le rapport")
    return _("Import terminé")


class RecordsNewDocument(RecordsCard):
    document = DictProperty({})
    title = StringProperty("")
    detail = StringProperty("")

    def on_document(self, _instance, document: dict) -> None:
        self.title = document.get("title") or ""
        parts = [document.get("category_label"), document.get("author_name"), short_date(document.get("submitted_at"))]
        self.detail = " · ".join(p for p in parts if p)


class RecordsHomeSection(BoxLayout):
    new_label = StringProperty("")
    migration = StringProperty("")
    has_new = BooleanProperty(False)
    tile_height = NumericProperty(0)

    def show(self, home: dict) -> None:
        records = home.get("records") or {}
        self.migration = migration_line(home.get("records_migration"))
        documents = records.get("new_documents") or []
        self.has_new = bool(documents)
        self.new_label = records.get("new_documents_label") or ""
        box = self.ids.new_documents
        box.clear_widgets()
        for document in documents:
            row = RecordsNewDocument(document=document)
            row.bind(on_release=lambda row: self.open_document(row.document["id"]))
            box.add_widget(row)

    def show_migration(self, status: dict | None) -> None:
        """Where the legacy import stands, asked again while home is shown (progress, then the result)."""
        self.migration = migration_line(status)

    def open(self, name: str) -> None:
        open_from_home(name)

    def open_document(self, document_id: int) -> None:
        app = App.get_running_app()
        viewer = app.screen("document_viewer")
        viewer.back_target = "home"
        viewer.document_id = document_id
        app.show("document_viewer")

    def reset(self) -> None:
        self.new_label = ""
        self.migration = ""
        self.has_new = False
        self.ids.new_documents.clear_widgets()
