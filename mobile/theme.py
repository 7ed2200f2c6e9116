"""Colours and sizes shared by every screen (kv files read them via ``#:import theme``).

Colours follow the French State design system (DSFR) the official portal uses: "bleu France"
for actions, and error/success colours with enough contrast on white (WCAG AA).
"""

from kivy.metrics import dp, sp
from kivy.utils import get_color_from_hex as _hex

PRIMARY = _hex("#000091")
PRIMARY_PRESSED = _hex("#1212FF")
PRIMARY_LIGHT = _hex("#E3E3FD")
TEXT = _hex("#161616")
TEXT_MUTED = _hex("#3A3A3A")
HINT = _hex("#666666")
BACKGROUND = _hex("#F6F6F6")
SURFACE = _hex("#FFFFFF")
INPUT_BACKGROUND = _hex("#EEEEEE")
BORDER = _hex("#DDDDDD")
DISABLED = _hex("#E5E5E5")
DISABLED_TEXT = _hex("#929292")
ERROR = _hex("#CE0500")
ERROR_LIGHT = _hex("#FFE9E9")
SUCCESS = _hex("#18753C")
SUCCESS_LIGHT = _hex("#B8FEC9")

# Touch targets: at least 48dp (Material, WCAG 2.5.5); text never below 14sp.
TOUCH = dp(52)
PADDING = dp(24)
SPACING = dp(12)
RADIUS = dp(8)
FONT_TITLE = sp(26)
FONT_SUBTITLE = sp(20)
FONT_BODY = sp(16)
FONT_INPUT = sp(18)
FONT_SMALL = sp(14)

# Roboto (Kivy's default) has no tick or cross; DejaVu Sans, shipped with Kivy, has both.
SYMBOL_FONT = "data/fonts/DejaVuSans.ttf"

# Text size chosen in the settings: a factor on every ``sp`` (Kivy's ``Metrics.fontscale``), applied
# before screens are built; the app rebuilds its screens when it changes.
TEXT_SCALES = {"normal": 1.0, "large": 1.3, "extra_large": 1.6}
_text_size = "normal"


def apply_text_scale(name: str) -> None:
    """Scale every text of the screens built from now on (the FONT_* sizes and ``sp()`` in kv)."""
    global _text_size, FONT_TITLE, FONT_SUBTITLE, FONT_BODY, FONT_INPUT, FONT_SMALL
    from kivy.metrics import Metrics

    if name not in TEXT_SCALES:
        raise ValueError(f"text size must be one of {tuple(TEXT_SCALES)}")
    _text_size = name
    Metrics.fontscale = TEXT_SCALES[name]
    FONT_TITLE, FONT_SUBTITLE, FONT_BODY, FONT_INPUT, FONT_SMALL = (sp(v) for v in (26, 20, 16, 18, 14))


def text_width(text: str, font_size: float, bold: bool = True) -> float:
    """How wide ``text`` is drawn on one line: a button as wide as its word ("Chercher") at any text size."""
    from kivy.core.text import Label as CoreLabel

    label = CoreLabel(text=text, font_size=font_size, bold=bold)
    label.refresh()
    return float(label.content_width)


def text_size_name() -> str:
    return _text_size
