"""The family space's forms, reached from home's profile switcher: activate a child's record with the letter
the child received (from the representative's own session), accept a code (a second legal representative's
or a carer's), and, while a child's record is open, invite the other parent (a code to share) or leave the
record. ``mode`` says which; every refusal is the server's sentence."""

from __future__ import annotations

from kivy.properties import BooleanProperty, OptionProperty, StringProperty

from mobile.api import ApiError
from mobile.api.family import FamilyApi
from mobile.api.fields import FieldProblem, normalise_activation_code, normalise_nir, parse_birth_date
from mobile.i18n import _

from .family import person_name
from .records_common import RecordsScreen, load_kv

load_kv()
MODES = ("activate", "representative", "carer", "child")


def family_api() -> FamilyApi:
    from kivy.app import App

    return App.get_running_app().client.feature(FamilyApi)


def titles() -> dict[str, str]:
    return {"activate": _("Ajouter le dossier d'un enfant"),
            "representative": _("J'ai reçu un code d'un autre parent"), "carer": _("Accepter une invitation d'aidant"), "child": _("Le dossier de mon enfant")}


class FamilyActionsScreen(RecordsScreen):
    mode = OptionProperty("activate", options=MODES)
    title = StringProperty("")
    notice = StringProperty("")
    code = StringProperty("")          # the invitation code to share (shown once)
    child_name = StringProperty("")
    others = StringProperty("")        # the child's representatives
    confirm_leave = BooleanProperty(False)

    def on_mode(self, *_args) -> None:
        self.title = titles()[self.mode]

    def start(self, mode: str) -> None:
        """Open the form ``mode`` (from home)."""
        self.reset()
        self.mode = mode
        self.on_mode()
        self.app.show(self.name)
        if mode == "child":
            self.child_name = self.app.record_banner
            self._load_representatives()

    # -- a child's letter, a code received ----------------------------------------------------

    def submit(self) -> None:
        if self.mode == "activate":
            try:
                nir = normalise_nir(self.ids.nir.text)
                birth_date = parse_birth_date(self.ids.birth_date.text)
                code = normalise_activation_code(self.ids.code_field.text)
            except FieldProblem as problem:
                self.error = _(problem.message)
                return
            self.call(lambda: family_api().activate_child(nir, birth_date, code), self._opened, self._refused)
            return
        code = self.ids.code_field.text.strip()
        if not code:
            self.error = _("Saisissez le code que l'on vous a donné.")
            return
        accept = family_api().accept_representative if self.mode == "representative" else family_api().accept_carer
        self.call(lambda: accept(code), self._opened, self._refused)

    def _refused(self, error: ApiError) -> None:
        self.ids.code_field.text = ""
        self.error = error.detail

    def _opened(self, space: dict) -> None:
        """The record is the account's now: the switcher lists it and it is open."""
        app = self.app
        self.reset()
        app.open_space(space)
        home = app.back("home")
        home.ids.spaces.refresh()
        home.refresh()

    # -- the child's record: the other parent, leaving -----------------------------------------

    def _load_representatives(self) -> None:
        child_id = self.client.record_id

        def show(people: list[dict]) -> None:
            self.others = ", ".join(person_name(p) for p in people)

        self.call(lambda: family_api().representatives(child_id), show)

    def invite(self) -> None:
        child_id = self.client.record_id

        def invited(invitation: dict) -> None:
            self.code = invitation.get("code") or ""
            self.notice = _("Donnez ce code à l'autre parent : il le saisit dans son propre Carnet (« J'ai reçu "
                            "un code d'un autre parent »). Il ne sera plus affiché ensuite.")

        self.call(lambda: family_api().invite_representative(child_id), invited)

    def copy_code(self) -> None:
        from kivy.core.clipboard import Clipboard

        Clipboard.copy(self.code)
        self.notice = _("Code copié : envoyez-le à l'autre parent.")

    def leave(self) -> None:
        if not self.confirm_leave:
            self.confirm_leave = True
            return
        child_id = self.client.record_id

        def left(_answer) -> None:
            app = self.app
            self.reset()
            app.open_space(None)
            home = app.back("home")
            home.ids.spaces.refresh()
            home.refresh()

        self.call(lambda: family_api().leave(child_id), left)

    def reset(self) -> None:
        super().reset()
        self.notice = self.code = self.others = self.child_name = ""
        self.confirm_leave = False
        for field in ("nir", "birth_date", "code_field"):
            self.ids[field].text = ""
