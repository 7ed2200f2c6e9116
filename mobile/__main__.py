"""``python -m mobile``: run the Carnet app (see ``mobile.main.main`` for its settings)."""

from kivy.config import Config
from kivy.utils import platform

# On a desktop, open the window at phone size (mobile.main.DESKTOP_WINDOW_SIZE) instead of
# resizing it once open, which flashes and leaves the first frames partly black. This has to
# happen before anything imports kivy.uix, which creates the window.
if platform not in ("android", "ios"):
    Config.set("graphics", "width", "400")
    Config.set("graphics", "height", "760")

from mobile.main import main  # noqa: E402  (after the window settings above)

main()
