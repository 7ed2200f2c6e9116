"""Where the app keeps its files on the device, and the patient's preferences kept there.

Below the screens and the connectivity watcher (both read it), above nothing of the app but i18n
and theme: a leaf, so that no screen module is needed to find a folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from kivy.app import App

from mobile import i18n, theme

PREFERENCES_FILE = "preferences.json"
DEFAULT_PREFERENCES = {"language": i18n.DEFAULT_LANGUAGE, "text_size": "normal"}


def data_dir() -> Path:
    """Where the app keeps its files: ``CARNET_DATA_DIR`` (tests, benchmarks) or the platform's
    per-user data directory."""
    configured = os.environ.get("CARNET_DATA_DIR")
    if configured:
        path = Path(configured)
    else:
        app = App.get_running_app()
        path = Path(app.user_data_dir) if app is not None else Path.home() / ".carnet"
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_preferences() -> dict:
    try:
        stored = json.loads((data_dir() / PREFERENCES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stored = {}
    prefs = dict(DEFAULT_PREFERENCES)
    if stored.get("language") in i18n.LANGUAGES:
        prefs["language"] = stored["language"]
    if stored.get("text_size") in theme.TEXT_SCALES:
        prefs["text_size"] = stored["text_size"]
    return prefs


def save_preferences(prefs: dict) -> None:
    path = data_dir() / PREFERENCES_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(prefs), encoding="utf-8")
    tmp.replace(path)
