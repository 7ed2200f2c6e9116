"""Who may see the record: the médecin traitant and the administrator professional, the professionals
the patient authorised, those blocked, a search (RPPS or name) to add one, the three emergency
switches (changed only with the password re-entered), emergency accesses running now, and the latest
accesses. A professional opens in ``access_professional`` (what they can see, and every action)."""

from __future__ import annotations

from kivy.factory import Factory
from kivy.properties import BooleanProperty, DictProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout

from mobile.api import ApiError
from mobile.api.family import FamilyApi
from mobile.i18n import _, agree

from .records_common import (RecordsBadge, RecordsCard, RecordsScreen, date_time, load_kv, records_api,
                             short_date)

load_kv()
SWITCHES = ("samu", "btg", "masked")
CARER_SCOPES = ("documents", "profile", "agenda", "messages")


def carer_scope_texts() -> dict[str, tuple[str, str]]:
    return {
        "documents": (_("Voir les documents"), _("Votre aidant voit vos documents (sauf ceux que vous masquez).")),
        "profile": (_("Voir le profil médical"), _("Traitements, allergies, antécédents, mesures.")),
        "agenda": (_("Gérer l'agenda"), _("Prendre, déplacer ou annuler vos rendez-vous.")),
        "messages": (_("Lire et écrire les messages"), _("Votre messagerie sécurisée avec vos professionnels.")),
    }


def carer_states() -> dict[str, str]:
    return {"invited": _("Invitation en attente"), "accepted": _("Aidant actif"), "revoked": _("Révoqué")}


def professional_line(pro: dict) -> str:
    """'Médecin · RPPS 10101230001 · Cabinet du Parc'."""
    parts = [pro.get("profession"), _("RPPS {rpps}").format(rpps=pro["rpps"]) if pro.get("rpps") else "",
             pro.get("organisation")]
    return " · ".join(p for p in parts if p)


def standing_badges(standing: dict | None) -> list[tuple[str, str]]:
    standing = standing or {}
    badges = []
    if standing.get("medecin_traitant"):
        badges.append((_("Médecin traitant"), "info"))
    if standing.get("administrator"):
        badges.append((_("Administrateur"), "info"))
    if standing.get("authorised"):
        badges.append((_("Autorisé"), "success"))
    if standing.get("blocked"):
        badges.append((_("Bloqué"), "warning"))
    return badges


def switch_texts() -> dict[str, tuple[str, str]]:
    return {
        "samu": (_("Accès du médecin régulateur du SAMU"),
                 _("Lors d'un appel au 15, le médecin régulateur peut consulter votre dossier.")),
        "btg": (_("Accès en urgence des autres professionnels"),
                agree(_("Si votre état présente un risque immédiat, un professionnel peut consulter votre dossier "
                        "sans votre autorisation (« bris de glace ») : l'accès est tracé et vous êtes prévenu(e)."))),
        "masked": (_("Documents masqués visibles en urgence"),
                   _("Lors d'un accès en urgence, les documents que vous avez masqués sont visibles aussi.")),
    }


class ProfessionalRow(RecordsCard):
    professional = DictProperty({})
    name = StringProperty("")
    detail = StringProperty("")
    extra = StringProperty("")

    def show(self, pro: dict, extra: str = "") -> None:
        self.professional = pro
        self.name = pro.get("name") or pro.get("rpps") or ""
        self.detail = professional_line(pro)
        self.extra = extra
        box = self.ids.badges
        box.clear_widgets()
        for text, tone in standing_badges(pro.get("standing")):
            box.add_widget(RecordsBadge(text=text, tone=tone))


class BlockedRow(BoxLayout):
    rpps = StringProperty("")
    name = StringProperty("")
    detail = StringProperty("")


class CarerRow(BoxLayout):
    carer = DictProperty({})
    name = StringProperty("")
    detail = StringProperty("")

    def on_carer(self, _instance, carer: dict) -> None:
        person = f"{carer.get('given_name') or ''} {(carer.get('family_name') or '').upper()}".strip()
        self.name = person or _("Invitation non encore acceptée")
        self.detail = " · ".join([carer_states().get(carer.get("state", ""), ""),
                                  ", ".join(carer.get("scope_labels") or [])])


class AccessScreen(RecordsScreen):
    loaded = BooleanProperty(False)
    notice = StringProperty("")
    # The switches as the server has them, and as the patient is setting them.
    saved_switches = DictProperty({})
    # the same, one property each, for the switches to show (kv does not follow a dict's .get())
    saved_samu = BooleanProperty(False)
    saved_btg = BooleanProperty(False)
    saved_masked = BooleanProperty(False)
    samu = BooleanProperty(False)
    btg = BooleanProperty(False)
    masked = BooleanProperty(False)
    switches_changed = BooleanProperty(False)
    switches_error = StringProperty("")
    # Outcomes shown where the patient acted: under the switches, under the blocked list.
    switches_notice = StringProperty("")
    blocked_notice = StringProperty("")
    searched = BooleanProperty(False)
    search_summary = StringProperty("")
    medecin_traitant = StringProperty("")
    administrator = StringProperty("")
    has_emergencies = BooleanProperty(False)
    # My carers (the family space): the scope chosen for the next one, the code to give them, what happened.
    carer_documents = BooleanProperty(False)
    carer_profile = BooleanProperty(False)
    carer_agenda = BooleanProperty(True)
    carer_messages = BooleanProperty(False)
    carer_code = StringProperty("")
    carers_notice = StringProperty("")
    carers_error = StringProperty("")

    def on_kv_post(self, base_widget) -> None:
        for name, (title, explanation) in switch_texts().items():
            toggle = self.ids[f"switch_{name}"]
            toggle.title, toggle.explanation = title, explanation
        for name, (title, explanation) in carer_scope_texts().items():
            toggle = self.ids[f"carer_scope_{name}"]
            toggle.title, toggle.explanation = title, explanation

    def on_pre_enter(self, *_args) -> None:
        self.notice = self.switches_notice = self.blocked_notice = ""
        self.carers_notice = self.carers_error = self.carer_code = ""
        self.load()

    def load(self) -> None:
        self.call(records_api().access, self._show)

    def load_carers(self) -> None:
        """The account's own carers (the family routes ignore the open record): for its own record only."""
        if self.app.record_kind != "own":
            return
        self.call(lambda: self.client.feature(FamilyApi).carers(), self._show_carers, self._carers_refused)

    def _show_carers(self, page: dict) -> None:
        box = self.ids.carers
        box.clear_widgets()
        for carer in page.get("items") or []:
            row = CarerRow(carer=carer)
            row.ids.revoke.bind(on_release=lambda _b, c=carer: self.revoke_carer(c))
            box.add_widget(row)
        if not box.children:
            box.add_widget(Factory.MutedText(text=_("Vous n'avez désigné aucun aidant.")))

    def carer_rows(self) -> list[CarerRow]:
        return [w for w in reversed(self.ids.carers.children) if isinstance(w, CarerRow)]

    def _carers_refused(self, error: ApiError) -> None:
        self.carers_error = error.detail

    def name_carer(self) -> None:
        scopes = [s for s in CARER_SCOPES if getattr(self, f"carer_{s}")]
        if not scopes:
            self.carers_error = _("Choisissez au moins ce que votre aidant pourra faire.")
            return
        self.carers_error = self.carers_notice = ""

        def invited(invitation: dict) -> None:
            self.carer_code = invitation.get("code") or ""
            self.carers_notice = _("Donnez ce code à votre aidant : il le saisit dans son propre Carnet (« Accepter "
                                   "une invitation d'aidant »). Il ne sera plus affiché ensuite.")
            self.load_carers()

        self.call(lambda: self.client.feature(FamilyApi).invite_carer(scopes), invited, self._carers_refused)

    def copy_carer_code(self) -> None:
        from kivy.core.clipboard import Clipboard

        Clipboard.copy(self.carer_code)
        self.carers_notice = _("Code copié : envoyez-le à votre aidant.")

    def revoke_carer(self, carer: dict) -> None:
        def done(_answer) -> None:
            self.carer_code = ""
            self.carers_notice = _("Cet aidant n'a plus accès à votre dossier.") if carer.get("state") == "accepted" \
                else _("L'invitation est retirée.")
            self.load_carers()

        self.call(lambda: self.client.feature(FamilyApi).end_carer(carer["id"]), done, self._carers_refused)

    def _show(self, page: dict) -> None:
        self.saved_switches = page.get("switches") or {}
        self._reset_switches()
        self._role("medecin_traitant", page.get("medecin_traitant"),
                   _("Vous n'avez pas déclaré de médecin traitant."))
        self._role("administrator", page.get("administrator"),
                   _("Aucun professionnel administrateur : il verrait aussi vos documents masqués et pourrait "
                     "bloquer un professionnel pour vous."))
        self._rows(self.ids.authorised, [
            (c["professional"], _("Autorisé(e) le {date}").format(date=short_date(c.get("granted_at"))))
            for c in page.get("authorised") or []], _("Vous n'avez autorisé aucun professionnel."))
        blocked = self.ids.blocked
        blocked.clear_widgets()
        for entry in page.get("blocked") or []:
            pro = entry.get("professional") or {}
            row = BlockedRow(rpps=entry["rpps"], name=pro.get("name") or _("RPPS {rpps}").format(rpps=entry["rpps"]),
                             detail=_("Bloqué(e) le {date}").format(date=short_date(entry.get("blocked_at"))))
            row.ids.unblock.bind(on_release=lambda _b, rpps=entry["rpps"]: self.unblock(rpps))
            blocked.add_widget(row)
        if not blocked.children:
            blocked.add_widget(Factory.MutedText(text=_("Vous n'avez bloqué aucun professionnel.")))
        emergencies = page.get("emergencies") or []
        self.has_emergencies = bool(emergencies)
        self._rows(self.ids.emergencies, [
            (e["professional"], _("{purpose} jusqu'au {until} — motif : {reason}").format(
                purpose=e.get("purpose_label"), until=date_time(e.get("expires_at")), reason=e.get("reason")))
            for e in emergencies], "")
        recent = page.get("recent_accesses") or []
        self.ids.recent.text = "\n".join(
            f"{date_time(i.get('at'))} — {i.get('label')} ({i['actor'].get('name')})" for i in recent[:3]
        ) or _("Aucun accès pour l'instant.")
        self.loaded = True
        self.load_carers()

    def _role(self, role: str, pro: dict | None, empty: str) -> None:
        box = self.ids[f"{role}_box"]
        box.clear_widgets()
        if pro:
            row = ProfessionalRow()
            row.show(pro)
            row.bind(on_release=self._open_row)
            box.add_widget(row)
        else:
            box.add_widget(Factory.MutedText(text=empty))

    def _rows(self, box, items: list[tuple[dict, str]], empty: str) -> None:
        box.clear_widgets()
        for pro, extra in items:
            row = ProfessionalRow()
            row.show(pro, extra)
            row.bind(on_release=self._open_row)
            box.add_widget(row)
        if not items and empty:
            box.add_widget(Factory.MutedText(text=empty))

    def _open_row(self, row: ProfessionalRow) -> None:
        self.open("access_professional", professional_id=row.professional["id"])

    # -- search ----------------------------------------------------------------------------

    def search(self) -> None:
        query = self.ids.query.text.strip()
        if len(query) < 2:
            self.error = _("Saisissez au moins 2 caractères : un numéro RPPS ou un nom.")
            return

        def found(page: dict) -> None:
            items = page.get("items") or []
            self.searched = True
            self.search_summary = (_("{n} professionnel(s) trouvé(s).").format(n=len(items)) if items
                                   else _("Aucun professionnel ne correspond à « {q} ».").format(q=query))
            self._rows(self.ids.results, [(pro, "") for pro in items], "")

        self.call(lambda: records_api().search_professionals(query), found)

    def result_rows(self) -> list[ProfessionalRow]:
        return [w for w in reversed(self.ids.results.children) if isinstance(w, ProfessionalRow)]

    def authorised_rows(self) -> list[ProfessionalRow]:
        return [w for w in reversed(self.ids.authorised.children) if isinstance(w, ProfessionalRow)]

    # -- blocking --------------------------------------------------------------------------

    def block_rpps(self) -> None:
        rpps = self.ids.block_rpps.text.strip()
        if not rpps:
            self.error = _("Saisissez le numéro RPPS à bloquer (11 chiffres).")
            return

        def blocked(entry: dict) -> None:
            self.ids.block_rpps.text = ""
            self.blocked_notice = _("Le numéro RPPS {rpps} est bloqué : ce professionnel ne peut plus consulter votre "
                            "dossier, même en urgence.").format(rpps=entry.get("rpps"))
            self.load()

        self.call(lambda: records_api().block(rpps), blocked)

    def unblock(self, rpps: str) -> None:
        def done(_result) -> None:
            self.blocked_notice = _("Le numéro RPPS {rpps} n'est plus bloqué.").format(rpps=rpps)
            self.load()

        self.call(lambda: records_api().unblock(rpps), done)

    # -- emergency switches ---------------------------------------------------------------

    def _reset_switches(self) -> None:
        for name in SWITCHES:
            setattr(self, name, bool(self.saved_switches.get(name)))
            setattr(self, f"saved_{name}", bool(self.saved_switches.get(name)))
        self.switches_changed = False
        self.switches_error = ""
        self.ids.password.text = ""

    def flip(self, name: str) -> None:
        self.switches_notice = ""
        setattr(self, name, not getattr(self, name))
        self.switches_changed = any(getattr(self, n) != bool(self.saved_switches.get(n)) for n in SWITCHES)
        if not self.switches_changed:
            self.ids.password.text = ""

    def cancel_switches(self) -> None:
        self._reset_switches()

    def save_switches(self) -> None:
        password = self.ids.password.text
        if not password:
            self.switches_error = _("Saisissez votre mot de passe pour confirmer.")
            return
        values = {name: getattr(self, name) for name in SWITCHES}

        def saved(switches: dict) -> None:
            self.saved_switches = switches
            self._reset_switches()
            self.switches_notice = _("Vos réglages d'accès en urgence sont enregistrés.")

        def refused(error: ApiError) -> None:
            self.ids.password.text = ""
            if error.status == 401:
                self.show_error(error)
            else:
                self.switches_error = error.detail

        self.call(lambda: records_api().set_emergency_switches(password, **values), saved, refused)
