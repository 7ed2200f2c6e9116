"""One document: what it is and who wrote it, its content (PDF and image pages rendered by the server,
one page at a time; a CDA's narrative as readable text, tables turned into lines that fit a phone),
and what the patient may do with it: download the original, mask it from professionals or show it
again, delete their own upload, ask for the removal of a professional's document."""

from __future__ import annotations

import io

from kivy.core.image import Image as CoreImage
from kivy.core.window import Window
from kivy.factory import Factory
from kivy.properties import (AliasProperty, BooleanProperty, DictProperty, NumericProperty, ObjectProperty,
                             StringProperty)
from kivy.uix.scrollview import ScrollView

from mobile import theme
from mobile.api import ApiError
from mobile.api.records import REMOVAL_REASONS
from mobile.i18n import _

from .documents import document_badges
from .records_common import (RecordsBadge, RecordsOption, RecordsScreen, file_size, load_kv, records_api,
                             saved_file, short_date)

load_kv()
# A phone never needs more than this many widgets for one narrative; beyond, the original is better.
NARRATIVE_MAX_BLOCKS = 250
# Columns up to which a table row reads well as one line ("Leucocytes : 500 /mL").
COMPACT_COLUMNS = 3
# A page at the phone's width is an overview; a double tap goes through these, pinching anywhere between.
ZOOM_STEPS = (1.0, 2.0, 3.0)
MAX_ZOOM = ZOOM_STEPS[-1]


def removal_reason_label(reason: str) -> str:
    return {
        "not_mine": _("Ce document ne me concerne pas"),
        "wrong_information": _("Il contient des informations erronées"),
        "duplicate": _("C'est un doublon d'un autre document"),
        "other": _("Une autre raison"),
    }.get(reason, reason)


def table_lines(block: dict) -> tuple[str, list[str]]:
    """A narrative table as a heading and lines that fit a phone."""
    header = (block.get("header") or [[]])[0] if block.get("header") else []
    rows = block.get("rows") or []
    caption = block.get("caption") or ""
    wide = len(header) > COMPACT_COLUMNS
    heading = caption or ("" if wide else " · ".join(h for h in header if h))
    lines = []
    for row in rows:
        cells = [c.strip() for c in row]
        if wide and len(cells) == len(header):
            lines.append("\n".join(f"{h} : {c}" for h, c in zip(header, cells, strict=True) if c))
        elif len([c for c in cells if c]) > 1:
            first, *rest = cells
            lines.append(f"{first} : " + " · ".join(c for c in rest if c))
        else:
            lines.append(" ".join(c for c in cells if c))
    return heading, [line for line in lines if line.strip()]


def next_zoom(zoom: float) -> float:
    """The zoom a double tap leads to: the next step up, or back to the whole page after the last."""
    for step in ZOOM_STEPS:
        if step > zoom + 0.05:
            return step
    return ZOOM_STEPS[0]


class PageScroller(ScrollView):
    """The page image: sideways scrolling when zoomed in, a double tap to zoom in a step (and back), two
    fingers to pinch. The screen owns the zoom (``zoom_to``); this only reads the fingers."""

    def __init__(self, **kwargs):
        self._fingers: list = []
        self._pinch: tuple[float, float] | None = None  # (distance between the fingers, zoom) at the start
        super().__init__(**kwargs)

    def _screen(self):
        parent = self.parent
        while parent is not None and not isinstance(parent, DocumentViewerScreen):
            parent = parent.parent
        return parent

    @staticmethod
    def _distance(a, b) -> float:
        return max(1.0, ((a.x - b.x) ** 2 + (a.y - b.y) ** 2) ** 0.5)

    def on_scroll_start(self, touch, check_children=True):
        if not self.collide_point(*touch.pos) or touch.is_mouse_scrolling:
            return super().on_scroll_start(touch, check_children)
        screen = self._screen()
        if screen is not None and getattr(touch, "is_double_tap", False):
            screen.zoom_to(next_zoom(screen.zoom), around=self.to_widget(*touch.pos))
            return True
        # only fingers still down (a tap's end may have gone to the screen's scroll view, not here)
        self._fingers = [f for f in self._fingers if f.time_end < 0 and f is not touch] + [touch]
        if len(self._fingers) == 2 and screen is not None:
            self._pinch = (self._distance(*self._fingers), screen.zoom)
            for finger in self._fingers:
                finger.grab(self)
            return True
        return super().on_scroll_start(touch, check_children)

    def on_scroll_move(self, touch):
        # Zoomed in, this scroller is offered the drag first: it keeps the sideways part and leaves a drag
        # that is mostly up or down to the screen around it (Kivy's nested scroll views then scroll it).
        handled = super().on_scroll_move(touch)
        if abs(touch.dy) > abs(touch.dx):
            return False
        return handled

    def on_touch_move(self, touch):
        if self._pinch is not None and touch in self._fingers and touch.grab_current is self:
            screen = self._screen()
            start_distance, start_zoom = self._pinch
            if screen is not None:
                screen.zoom_to(start_zoom * self._distance(*self._fingers) / start_distance)
            return True
        return super().on_touch_move(touch)

    def on_touch_up(self, touch):
        if touch in self._fingers:
            self._fingers.remove(touch)
            if self._pinch is not None:
                if touch.grab_current is self:
                    touch.ungrab(self)
                if len(self._fingers) < 2:
                    self._pinch = None
                return True
        return super().on_touch_up(touch)


class DocumentViewerScreen(RecordsScreen):
    document_id = NumericProperty(0)
    document = DictProperty({})
    loaded = BooleanProperty(False)
    kind = StringProperty("")
    page = NumericProperty(0)
    page_count = NumericProperty(0)
    notice = StringProperty("")
    choosing_reason = BooleanProperty(False)
    confirming_delete = BooleanProperty(False)
    reason = StringProperty("")
    info = StringProperty("")
    back_target = StringProperty("documents")
    # What the page shows of ``document`` (kv binds to these, not into the dict).
    title = StringProperty("")
    category = StringProperty("")
    masked = BooleanProperty(False)
    can_delete = BooleanProperty(False)
    can_request_removal = BooleanProperty(False)
    # the original, kept on the device to open or share (mobile.share.KeptFile)
    ready = ObjectProperty(None, allownone=True)
    zoom = NumericProperty(1.0)
    zoomed = AliasProperty(lambda self: self.zoom > 1.01, lambda self, value: self.zoom_to(2.0 if value else 1.0),
                           bind=("zoom",))

    def on_pre_enter(self, *_args) -> None:
        if self.document_id and (not self.loaded or self.document.get("id") != self.document_id):
            self.load()

    def on_document_id(self, *_args) -> None:
        self.loaded = False

    def load(self) -> None:
        self._clear()
        document_id = self.document_id
        width = self._page_width()

        def work():
            api = records_api()
            document = api.document(document_id)
            kind = document["viewer"]["kind"]
            content = None
            try:
                if kind == "pages":
                    content = api.page_image(document_id, 1, width)
                elif kind == "narrative":
                    content = api.narrative(document_id)
            except ApiError as error:
                if error.status == 401:
                    raise
                content = error
            return document, content

        self.call(work, self._show)

    @staticmethod
    def _page_width() -> int:
        # At the screen's density (Window.width is in pixels) and sharp up to the largest zoom, without
        # asking the server for more than it renders (2,000 px).
        return int(min(2000, max(900, Window.width * MAX_ZOOM)))

    def zoom_to(self, zoom: float, around: tuple[float, float] | None = None) -> None:
        """Zoom the page (1 = the phone's width), keeping the point ``around`` (in the scroller) in view."""
        zoom = max(ZOOM_STEPS[0], min(MAX_ZOOM, float(zoom)))
        if abs(zoom - self.zoom) < 0.01:
            return
        scroller = self.ids.page_scroller
        fraction = 0.5
        if around is not None and scroller.width:
            fraction = min(1.0, max(0.0, around[0] / scroller.width))
        self.zoom = zoom
        if zoom > 1.01:
            scroller.scroll_x = fraction
        else:
            scroller.scroll_x = 0

    def _clear(self) -> None:
        self.loaded = False
        self.notice = ""
        self.ready = None
        self.choosing_reason = self.confirming_delete = False
        self.reason = ""
        self.kind = ""
        self.page = self.page_count = 0
        self.zoom = 1.0
        self.document = {}
        self.title = self.category = self.info = ""
        self.masked = self.can_delete = self.can_request_removal = False
        self.ids.page_image.texture = None
        self.ids.narrative.clear_widgets()
        self.ids.viewer_message.text = ""

    def _show(self, result) -> None:
        document, content = result
        self.document = document
        viewer = document.get("viewer") or {}
        self.kind = viewer.get("kind") or "download"
        self._describe(document)
        if isinstance(content, ApiError):
            self.kind = "download"
            self.ids.viewer_message.text = content.detail
        elif self.kind == "pages":
            self.page_count = viewer.get("page_count") or 1
            self._show_page(1, content)
        elif self.kind == "narrative":
            self._show_narrative(content)
        else:
            self.ids.viewer_message.text = _(
                "Ce document ne peut pas être affiché dans l'application : téléchargez-le pour l'ouvrir.")
        self.loaded = True

    def _describe(self, document: dict) -> None:
        actions = document.get("actions") or {}
        self.title = document.get("title") or ""
        self.category = document.get("category_label") or ""
        self.masked = bool(document.get("masked"))
        self.can_delete = bool(actions.get("delete"))
        self.can_request_removal = bool(actions.get("request_removal"))
        author = document.get("author") or {}
        lines = []
        if author.get("name"):
            who = author["name"] + (f" ({author['organisation']})" if author.get("organisation") else "")
            lines.append(_("Auteur : {who}").format(who=who))
        for label, coded in ((_("Établissement : {name}"), document.get("facility_type")),
                             (_("Cadre de soins : {name}"), document.get("practice_setting"))):
            if coded:
                lines.append(label.format(name=coded.get("display") or coded.get("code")))
        if document.get("service_date"):
            lines.append(_("Date des soins : {date}").format(date=short_date(document["service_date"])))
        lines.append(_("Ajouté le {date}").format(date=short_date(document.get("submitted_at"))))
        kind = document.get("type_label") or document.get("category_label") or ""
        size = file_size(document.get("size"))
        lines.append(" · ".join(p for p in (kind, size) if p))
        if document.get("comment"):
            lines.append(_("Votre commentaire : {comment}").format(comment=document["comment"]))
        self.info = "\n".join(lines)
        badges = self.ids.badges
        badges.clear_widgets()
        for text, tone in document_badges(document):
            badges.add_widget(RecordsBadge(text=text, tone=tone))

    # -- pages ----------------------------------------------------------------------------

    def _show_page(self, number: int, data: bytes) -> None:
        mime = "jpg" if data[:3] == b"\xff\xd8\xff" else "png"
        image = CoreImage(io.BytesIO(data), ext=mime)
        self.ids.page_image.texture = image.texture
        self.page = number

    def go_to_page(self, number: int) -> None:
        if not 1 <= number <= self.page_count or number == self.page:
            return
        document_id, width = self.document_id, self._page_width()
        self.call(lambda: records_api().page_image(document_id, number, width),
                  lambda data: self._show_page(number, data))

    # -- narrative ------------------------------------------------------------------------

    def _show_narrative(self, narrative: dict) -> None:
        box = self.ids.narrative
        box.clear_widgets()
        heading = [narrative.get("document_type") or "", short_date(narrative.get("date"))]
        authors = ", ".join(a.get("name") or a.get("organisation") or "" for a in narrative.get("authors") or [])
        if narrative.get("title"):
            box.add_widget(Factory.Subtitle(text=narrative["title"]))
        meta = " · ".join(p for p in (*heading, authors) if p)
        if meta:
            box.add_widget(Factory.MutedText(text=meta))
        budget = [NARRATIVE_MAX_BLOCKS]
        for section in narrative.get("sections") or []:
            self._section(box, section, 0, budget)
        if narrative.get("truncated") or budget[0] <= 0:
            box.add_widget(Factory.NoticeBanner(
                text=_("La suite de ce document est trop longue pour l'écran : téléchargez l'original.")))

    def _section(self, box, section: dict, depth: int, budget: list[int]) -> None:
        if budget[0] <= 0:
            return
        title = section.get("title")
        if title:
            box.add_widget(Factory.Subtitle(text=title, font_size=theme.FONT_SUBTITLE if depth == 0 else theme.FONT_INPUT))
        for block in section.get("blocks") or []:
            if budget[0] <= 0:
                return
            budget[0] -= 1
            kind = block.get("type")
            if kind == "paragraph" and (block.get("text") or "").strip():
                box.add_widget(Factory.BodyText(text=block["text"].strip()))
            elif kind == "list":
                card = Factory.NarrativeTable()
                if block.get("caption"):
                    card.add_widget(Factory.FieldLabel(text=block["caption"]))
                for index, item in enumerate(block.get("items") or [], start=1):
                    bullet = f"{index}." if block.get("ordered") else "•"
                    card.add_widget(Factory.BodyText(text=f"{bullet} {item}"))
                box.add_widget(card)
            elif kind == "table":
                heading, lines = table_lines(block)
                card = Factory.NarrativeTable()
                if heading:
                    card.add_widget(Factory.FieldLabel(text=heading))
                for line in lines:
                    card.add_widget(Factory.NarrativeLine(text=line))
                box.add_widget(card)
        for child in section.get("sections") or []:
            self._section(box, child, depth + 1, budget)

    # -- actions --------------------------------------------------------------------------

    def download(self) -> None:
        document_id = self.document_id

        def saved(download) -> None:
            self.notice = ""
            self.ready = saved_file("documents", download.filename, download.content,
                                    (self.document.get("mime_type") or None))

        self.call(lambda: records_api().content(document_id), saved)

    def toggle_mask(self) -> None:
        document_id, masked = self.document_id, bool(self.document.get("masked"))
        api = records_api()

        def done(item: dict) -> None:
            self.document = {**self.document, **item,
                             "actions": {**self.document.get("actions", {}), "mask": not item["masked"],
                                         "unmask": item["masked"]}}
            self._describe(self.document)
            self.notice = (_("Ce document est maintenant masqué aux professionnels de santé, sauf à son auteur "
                             "et à votre professionnel administrateur.") if item["masked"]
                           else _("Ce document est de nouveau visible par les professionnels qui peuvent "
                                  "consulter votre dossier."))
            self._list_changed()

        self.call(lambda: api.unmask(document_id) if masked else api.mask(document_id), done)

    def ask_removal(self) -> None:
        self.choosing_reason = True
        self.confirming_delete = False
        box = self.ids.reasons
        box.clear_widgets()
        for reason in REMOVAL_REASONS:
            chip = RecordsOption(text=removal_reason_label(reason), value=reason,
                                         selected=reason == self.reason)
            chip.bind(on_release=lambda chip: self.choose_reason(chip.value))
            box.add_widget(chip)

    def choose_reason(self, reason: str) -> None:
        self.reason = reason
        for chip in self.ids.reasons.children:
            chip.selected = chip.value == reason

    def send_removal(self) -> None:
        if not self.reason:
            self.error = _("Choisissez la raison de votre demande.")
            return
        document_id, reason = self.document_id, self.reason

        def done(item: dict) -> None:
            self.choosing_reason = False
            self.document = {**self.document, **item,
                             "actions": {**self.document.get("actions", {}), "request_removal": False}}
            self._describe(self.document)
            self.notice = _("Votre demande de suppression a été transmise à l'auteur du document. "
                            "Le document reste dans votre dossier en attendant sa réponse.")
            self._list_changed()

        self.call(lambda: records_api().request_removal(document_id, reason), done)

    def ask_delete(self) -> None:
        self.confirming_delete = True
        self.choosing_reason = False

    def cancel(self) -> None:
        self.confirming_delete = self.choosing_reason = False

    def delete(self) -> None:
        document_id = self.document_id

        def done(_result) -> None:
            self.confirming_delete = False
            self._list_changed()
            documents = self.app.screen("documents")
            documents.notice = _("Le document « {title} » a été supprimé.").format(title=self.document.get("title"))
            self.loaded = False
            self.app.back("documents")

        self.call(lambda: records_api().delete_document(document_id), done)

    def _list_changed(self) -> None:
        if self.app.manager.has_screen("documents"):
            self.app.manager.get_screen("documents").refresh()

    def reset(self) -> None:
        super().reset()
        self._clear()
