"""What the app does before Kivy opens its window (measured by ``bench/cold_start.py``).

- ``configure_kivy()``: Kivy settings that must be in place before the window exists. The bench's
  bare Kivy baseline applies the same ones, so the comparison stays fair.
- ``warm_imports()``: imports the Kivy-free modules the first screens need (the HTTP stack:
  ``requests``, ``urllib3``, ``ssl``; ``cryptography`` for the notifications badge) in a thread while
  the main thread waits on the window and the GL context. Python's import lock makes a screen that
  imports one of them meanwhile wait for the thread instead of importing it twice.

This module imports nothing from Kivy at import time: the bench's baseline imports it too.
"""

from __future__ import annotations

import importlib
import logging
import threading

log = logging.getLogger(__name__)

PHONE_PLATFORMS = ("android", "ios")
# A portrait phone, in pixels, when running on a desktop (mobile.main.DESKTOP_WINDOW_SIZE).
DESKTOP_WINDOW_SIZE = (400, 760)

# (section, option, value) applied with kivy.config.Config before the window is created.
KIVY_SETTINGS: tuple[tuple[str, str, str], ...] = (
    # No multisample anti-aliasing: the theme is flat (rectangles, 8 dp corners) and MSAA makes every
    # frame dearer to draw; on this machine's software GL it cut the peak RSS by ~15 MB and the CPU
    # time to the first frame by ~0.1 s (bench/cold_start.py, both the app and the bare window).
    ("graphics", "multisamples", "0"),
)

# Kivy-free modules the welcome and home screens use: mobile.api (requests), the record's
# client (home's record section), the notifications client (home's unread badge: cryptography).
WARM_MODULES = ("mobile.api", "mobile.api.records", "mobile.api.notifications")


def configure_kivy(platform: str | None = None) -> None:
    """Kivy's settings for the app; no effect once the window exists (then it is too late)."""
    import os

    # The clipboard through SDL2 (the window's own), read by Kivy at its import: otherwise Kivy probes xclip
    # and xsel first and prints their absence as tracebacks on every desktop without them.
    os.environ.setdefault("KIVY_CLIPBOARD", "sdl2")
    from kivy.config import Config

    # Kivy's console shows every logger's DEBUG: the HTTP stack would print a line per request (with its path).
    logging.getLogger("urllib3").setLevel(logging.WARNING)

    if platform is None:
        from kivy.utils import platform
    for section, option, value in KIVY_SETTINGS:
        Config.set(section, option, value)
    if platform not in PHONE_PLATFORMS:
        # Open the window at phone size instead of resizing it once open, which flashes and
        # leaves the first frames partly black.
        width, height = DESKTOP_WINDOW_SIZE
        Config.set("graphics", "width", str(width))
        Config.set("graphics", "height", str(height))


def load_clipboard_quietly() -> None:
    """Kivy's clipboard, loaded once with its logger silenced: on Linux Kivy also looks for a "cut buffer"
    in xclip or xsel and, when neither is installed (most desktops, every phone), logs their absence as a
    critical error with tracebacks. The clipboard itself is SDL2's (``KIVY_CLIPBOARD`` above) and works."""
    from kivy.logger import Logger

    level = Logger.level
    Logger.setLevel(logging.CRITICAL + 1)
    try:
        import kivy.core.clipboard  # noqa: F401
    finally:
        Logger.setLevel(level)


_warming: threading.Thread | None = None


def warm_imports(modules: tuple[str, ...] = WARM_MODULES) -> threading.Thread:
    """Import ``modules`` in a background thread (once per process); returns that thread."""
    global _warming
    if _warming is not None:
        return _warming

    def run() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - the screen's own import will raise it where it matters
                log.debug("warm import of %s failed", name, exc_info=True)

    _warming = threading.Thread(target=run, name="carnet-warm-imports", daemon=True)
    _warming.start()
    return _warming
