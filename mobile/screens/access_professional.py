"""One professional, as the patient decides about them: who they are, where they stand, and what they
can see of the record — counted by the access policy itself, category by category ("what would they
see if I authorised them?") — with every action: authorise or revoke, médecin traitant,
administrator, block or unblock."""

from __future__ import annotations

from kivy.factory import Factory
from kivy.properties import BooleanProperty, NumericProperty, StringProperty

from mobile import theme
from mobile.i18n import _

from .access import professional_line, standing_badges
from .records_common import RecordsBadge, RecordsScreen, load_kv, records_api

load_kv()


class AccessProfessionalScreen(RecordsScreen):
    professional_id = NumericProperty(0)
    pro_name = StringProperty("")
    detail = StringProperty("")
    rpps = StringProperty("")
    authorised = BooleanProperty(False)
    blocked = BooleanProperty(False)
    medecin_traitant = BooleanProperty(False)
    administrator = BooleanProperty(False)
    allowed = BooleanProperty(False)
    verdict = StringProperty("")
    reason = StringProperty("")
    notice = StringProperty("")
    loaded = BooleanProperty(False)
    back_target = StringProperty("access")

    def on_pre_enter(self, *_args) -> None:
        self.notice = ""
        self.load()

    def load(self) -> None:
        professional_id = self.professional_id
        self.call(lambda: records_api().preview(professional_id), self._show)

    def _show(self, preview: dict) -> None:
        pro = preview.get("professional") or {}
        standing = pro.get("standing") or {}
        self.pro_name = pro.get("name") or ""
        self.rpps = pro.get("rpps") or ""
        self.detail = professional_line(pro)
        self.authorised = bool(standing.get("authorised"))
        self.blocked = bool(standing.get("blocked"))
        self.medecin_traitant = bool(standing.get("medecin_traitant"))
        self.administrator = bool(standing.get("administrator"))
        badges = self.ids.badges
        badges.clear_widgets()
        for text, tone in standing_badges(standing):
            badges.add_widget(RecordsBadge(text=text, tone=tone))
        self.allowed = bool(preview.get("allowed"))
        visible, total = preview.get("visible", 0), preview.get("total", 0)
        if preview.get("allowed"):
            self.verdict = _("Peut consulter {visible} de vos {total} document(s).").format(visible=visible, total=total)
        elif preview.get("basis") == "if_authorised":
            self.verdict = _("Ne peut pas consulter votre dossier aujourd'hui. Si vous l'autorisez, il ou elle "
                             "verra {visible} de vos {total} document(s).").format(visible=visible, total=total)
        else:
            self.verdict = _("Ne peut pas consulter votre dossier.")
        self.reason = preview.get("reason_label") or ""
        box = self.ids.categories
        box.clear_widgets()
        for category in preview.get("categories") or []:
            row = Factory.PreviewLine()
            row.ids.label.text = category.get("label") or category.get("category")
            row.ids.count.text = _("{visible} sur {total}").format(visible=category.get("visible", 0),
                                                                  total=category.get("total", 0))
            row.ids.count.color = theme.TEXT if category.get("visible") else theme.ERROR
            box.add_widget(row)
        self.loaded = True

    def _act(self, work, message: str) -> None:
        def done(_result) -> None:
            self.notice = message.format(name=self.pro_name)
            if self.app.manager.has_screen("access"):
                self.app.manager.get_screen("access").loaded = False
            self.load()

        self.call(work, done)

    def toggle_authorised(self) -> None:
        api, pid = records_api(), self.professional_id
        if self.authorised:
            self._act(lambda: api.revoke(pid), _("{name} ne peut plus consulter votre dossier."))
        else:
            self._act(lambda: api.authorise(pid), _("{name} peut maintenant consulter votre dossier."))

    def toggle_medecin_traitant(self) -> None:
        api, pid = records_api(), self.professional_id
        if self.medecin_traitant:
            self._act(lambda: api.set_medecin_traitant(None), _("{name} n'est plus déclaré(e) comme votre médecin traitant."))
        else:
            self._act(lambda: api.set_medecin_traitant(pid), _("{name} est déclaré(e) comme votre médecin traitant."))

    def toggle_administrator(self) -> None:
        api, pid = records_api(), self.professional_id
        if self.administrator:
            self._act(lambda: api.set_administrator(None), _("{name} n'est plus administrateur de votre dossier."))
        else:
            self._act(lambda: api.set_administrator(pid), _("{name} est maintenant l'administrateur de votre dossier."))

    def toggle_blocked(self) -> None:
        api, rpps = records_api(), self.rpps
        if self.blocked:
            self._act(lambda: api.unblock(rpps), _("{name} n'est plus bloqué(e)."))
        else:
            self._act(lambda: api.block(rpps), _("{name} est bloqué(e) : il ou elle ne peut plus consulter votre "
                                                 "dossier, même en urgence."))
