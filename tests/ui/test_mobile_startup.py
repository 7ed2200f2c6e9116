"""Start-up of the app (issue #9, cold start): only the first screens are loaded, the others on first use.

The first test runs the app in a fresh process (the session's app has long loaded every screen): after
``build()`` and home, the screen modules and ``.kv`` files loaded are those of welcome and home (and the
modules they import), and a screen shown before the first frame is drawn in place, without a slide from a
screen nobody saw. The second checks, in the session's app, that every registered screen still loads
(module, ``.kv``, widget tree) when the app asks for it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ui

ROOT = Path(__file__).resolve().parents[2]

# The screens a cold start draws (welcome, or home with a resumed session) and the modules they import.
START_SCREEN_MODULES = {
    "mobile.screens",
    "mobile.screens.base",
    "mobile.screens.welcome",
    "mobile.screens.home",
    "mobile.screens.records_home",  # home's record section
    "mobile.screens.records_common",  # what records_home shares with the record's screens
    "mobile.screens.family",  # home's profile switcher (own record, each child, each person helped)
}
START_SCREENS_KV = {"welcome.kv", "home.kv", "records_home.kv", "records_common.kv", "family.kv"}

CHILD = r"""
import json, sys
from pathlib import Path

from kivy.base import EventLoop, _runTouchApp_prepare
from kivy.lang import Builder

from mobile.main import CarnetApp

def loaded():
    return {
        "modules": sorted(m for m in sys.modules if m.startswith("mobile.screens")),
        "kv": sorted(Path(f).name for f in Builder.files if Path(f).parent.name == "screens"),
    }

app = CarnetApp(api_url="http://127.0.0.1:9", language="fr")  # nothing listens: home's call fails quietly
app._run_prepare()  # build(), as App.run() does before its loop
after_build = loaded()
home = app.show("home")  # a resumed session: home before anything was drawn
after_home = loaded()
_runTouchApp_prepare()
EventLoop.idle()  # the first frame
first_frame = {"current": app.manager.current, "home_x": home.x, "manager_x": app.manager.x,
               "screens": sorted(s.name for s in app.manager.screens)}
app.show("login")  # once something is on screen, screens slide again
print("STARTUP " + json.dumps({"after_build": after_build, "after_home": after_home, "first_frame": first_frame,
                               "slides_after_first_frame": app.manager.transition.is_active}))
app.stop()
EventLoop.exit()
"""


def test_start_loads_only_the_first_screens(display, tmp_path):
    env = {
        **os.environ,
        "DISPLAY": display,
        "PYTHONPATH": str(ROOT),
        "KIVY_NO_ARGS": "1",
        "KIVY_HOME": str(tmp_path / "kivy"),
        "KIVY_LOG_MODE": "PYTHON",
        "KIVY_NO_FILELOG": "1",
        "KIVY_NO_CONSOLELOG": "1",
        "CARNET_DATA_DIR": str(tmp_path / "data"),
    }
    done = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("STARTUP ")]
    assert lines, f"the app did not start (exit {done.returncode}):\n{done.stderr[-3000:]}"
    seen = json.loads(lines[-1][len("STARTUP "):])

    # build(): the welcome screen only.
    assert set(seen["after_build"]["modules"]) == {"mobile.screens", "mobile.screens.base", "mobile.screens.welcome"}
    assert set(seen["after_build"]["kv"]) == {"welcome.kv"}
    # home: its module and kv, and what they import; no other feature's screen.
    assert set(seen["after_home"]["modules"]) == START_SCREEN_MODULES
    assert set(seen["after_home"]["kv"]) == START_SCREENS_KV
    # The first frame shows home in place; the welcome screen nobody saw is not slid from.
    frame = seen["first_frame"]
    assert frame["current"] == "home"
    assert frame["home_x"] == frame["manager_x"]
    assert seen["slides_after_first_frame"] is True


def test_every_registered_screen_loads_when_asked(ui):
    from kivy.lang import Builder

    from mobile.main import SCREENS

    app = ui.app
    for name, entry in SCREENS.items():
        screen = app.screen(name)  # what show() does first: module, kv and widget tree on first use
        assert app.manager.has_screen(name)
        assert type(screen).__name__ == entry.class_name
        assert type(screen).__module__ == entry.module
        kv = str(Path(sys.modules[entry.module].__file__).with_suffix(".kv"))
        assert kv in Builder.files, f"{name}: {kv} not loaded"
