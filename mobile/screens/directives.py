"""Advance directives and wishes: the directives in force in each of the two contexts (written in good
health; at the end of life or with a serious illness) with their dated versions, a new version (or
withdrawing them), and the patient's position on organ donation."""

from __future__ import annotations

from kivy.factory import Factory
from kivy.properties import BooleanProperty, DictProperty, NumericProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout

from mobile.i18n import _, agree

from .records_common import (RecordsOption, RecordsScreen, iso_day, load_kv, profile_kinds, records_api,
                             short_date)

load_kv()
CONTEXTS = ("good_health", "end_of_life")


def directive_text(directive: dict | None) -> str:
    if not directive:
        return _("Vous n'avez pas encore rédigé de directives dans ce cas.")
    if directive.get("withdrawn"):
        return _("Vous avez retiré vos directives.")
    parts = []
    if directive.get("text"):
        parts.append(directive["text"])
    if directive.get("document"):
        parts.append(_("Document joint : {title}").format(title=directive["document"].get("title") or ""))
    return "\n".join(parts)


def version_line(directive: dict) -> str:
    return _("Version {n} du {date}").format(n=directive.get("version"), date=short_date(directive.get("created_at")))


class DirectiveContext(BoxLayout):
    """One context: the version in force, its history on demand, and a new version being written."""

    context = StringProperty("")
    label = StringProperty("")
    current = DictProperty({})
    current_text = StringProperty("")
    current_line = StringProperty("")
    versions = NumericProperty(0)
    writing = BooleanProperty(False)
    showing_versions = BooleanProperty(False)
    withdrawable = BooleanProperty(False)
    in_force = BooleanProperty(False)

    def show(self, data: dict) -> None:
        self.label = data.get("label") or self.context
        self.current = data.get("current") or {}
        self.versions = data.get("versions") or 0
        self.current_text = directive_text(self.current or None)
        self.current_line = version_line(self.current) if self.current else ""
        self.withdrawable = self.in_force = bool(self.current) and not self.current.get("withdrawn")

    def write(self) -> None:
        self.writing = True
        self.showing_versions = False
        self.ids.text.text = "" if self.current.get("withdrawn") else (self.current.get("text") or "")


class DirectivesScreen(RecordsScreen):
    loaded = BooleanProperty(False)
    notice = StringProperty("")
    organ_text = StringProperty("")
    position = StringProperty("")

    def on_kv_post(self, base_widget) -> None:
        self.contexts = {}
        for context in CONTEXTS:
            block = DirectiveContext(context=context)
            block.ids.write.bind(on_release=lambda _b, block=block: block.write())
            block.ids.cancel.bind(on_release=lambda _b, block=block: setattr(block, "writing", False))
            block.ids.save.bind(on_release=lambda _b, block=block: self.save(block))
            block.ids.withdraw.bind(on_release=lambda _b, block=block: self.save(block, withdrawn=True))
            block.ids.history.bind(on_release=lambda _b, block=block: self.toggle_versions(block))
            self.contexts[context] = block
            self.ids.contexts.add_widget(block)

    def on_pre_enter(self, *_args) -> None:
        self.notice = ""
        self.load()

    def load(self) -> None:
        def work():
            return profile_kinds(), records_api().directives()

        self.call(work, self._show)

    def _show(self, result) -> None:
        kinds, directives = result
        for context, block in self.contexts.items():
            block.show(directives.get(context) or {})
            block.writing = False
        organ = directives.get("organ_donation")
        if organ:
            informed = agree(_(", informé(e) le {date}")).format(date=organ["informed_at"]) if organ.get("informed_at") else ""
            self.organ_text = _("Votre position : {label} (déclarée le {date}{informed}).").format(
                label=organ.get("label"), date=short_date(organ.get("created_at")), informed=informed)
        else:
            self.organ_text = _("Vous n'avez pas encore indiqué votre position.")
        self.position = (organ or {}).get("position") or ""
        box = self.ids.positions
        box.clear_widgets()
        for choice in kinds.get("organ_donation_positions") or []:
            option = RecordsOption(text=choice["label"], value=choice["value"], selected=choice["value"] == self.position)
            option.bind(on_release=lambda option: self.choose_position(option.value))
            box.add_widget(option)
        self.loaded = True

    # -- directives ------------------------------------------------------------------------

    def save(self, block: DirectiveContext, withdrawn: bool = False) -> None:
        text = block.ids.text.text.strip()
        if not withdrawn and not text:
            self.error = _("Écrivez vos directives avant de les enregistrer.")
            return
        context = block.context

        def saved(directive: dict) -> None:
            self.notice = (_("Vos directives « {label} » sont retirées ; les versions précédentes restent dans "
                             "l'historique.") if withdrawn else
                           _("Nouvelle version enregistrée ({line}).")).format(label=block.label,
                                                                             line=version_line(directive))
            self.load()

        self.call(lambda: records_api().add_directive(context, text=None if withdrawn else text, withdrawn=withdrawn),
                  saved)

    def toggle_versions(self, block: DirectiveContext) -> None:
        if block.showing_versions:
            block.showing_versions = False
            return
        context = block.context

        def shown(page: dict) -> None:
            box = block.ids.versions
            box.clear_widgets()
            for directive in page.get("items") or []:
                card = Factory.DirectiveVersion()
                card.ids.line.text = version_line(directive)
                card.ids.body.text = directive_text(directive)
                box.add_widget(card)
            block.showing_versions = True
            block.writing = False

        self.call(lambda: records_api().directive_versions(context), shown)

    # -- organ donation --------------------------------------------------------------------

    def choose_position(self, position: str) -> None:
        self.position = position
        for option in self.ids.positions.children:
            option.selected = option.value == position

    def save_position(self) -> None:
        if not self.position:
            self.error = _("Choisissez votre position.")
            return
        try:
            informed = iso_day(self.ids.informed.text)
        except ValueError:
            self.error = _("Saisissez la date au format JJ/MM/AAAA.")
            return
        position, comment = self.position, self.ids.organ_comment.text.strip() or None

        def saved(organ: dict) -> None:
            self.notice = _("Votre position sur le don d'organes est enregistrée : {label}.").format(
                label=organ.get("label"))
            self.ids.informed.text = self.ids.organ_comment.text = ""
            self.load()

        self.call(lambda: records_api().set_organ_donation(position, informed_at=informed, comment=comment), saved)
