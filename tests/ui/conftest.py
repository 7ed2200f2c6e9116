"""Fixtures for the mobile app's tests: a live backend, a virtual display, one Kivy app.

- ``live_backend`` (session): ``carnet db upgrade`` then ``carnet serve`` on a free port,
  with a throw-away SQLite database; ``live_backend.create_patient()`` wraps
  ``carnet patient create``.
- ``display`` (session): the current ``DISPLAY``, or an ``Xvfb`` started for the session.
  Without Xvfb the UI tests are skipped, except in CI (``CI=true``) where they fail.
- ``ui`` (function): the one ``CarnetApp`` of the session (Kivy creates its window once per
  process), reset to the welcome screen, wrapped in a ``Driver`` that taps and types.

Kivy is imported only inside fixtures, so collecting these tests does not pull Kivy (and its
logging set-up) into a test session that does not run them.
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

SCREENSHOTS = Path(__file__).with_name("screenshots")
SECRET_KEY = "test-secret-xxxxxxxxxxxxxxxx"
STARTUP_TIMEOUT = 90.0
SCREEN_SIZE = "800x1000x24"


# -- the backend ------------------------------------------------------------------------


def _carnet_command() -> list[str]:
    # The console script next to this interpreter (the venv's), else whatever is on PATH.
    beside = Path(sys.executable).with_name("carnet")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("carnet")
    if found:
        return [found]
    pytest.fail("the `carnet` command is not installed: run `pip install -e .[test]`")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def valid_nir(serial: int, sex: str = "2", year: int = 84, month: int = 7) -> str:
    """A NIR with a correct key: born in Puy-de-Dôme (63), commune 220, given serial."""
    first13 = f"{sex}{year:02d}{month:02d}63220{serial:03d}"
    return f"{first13}{97 - int(first13) % 97:02d}"


@dataclass
class Patient:
    nir: str
    birth_date: str  # ISO, as the API wants it
    given_name: str
    family_name: str
    activation_code: str
    patient_id: object = None
    password: str = "Carnet-Sante-2026!"
    totp_secret: str | None = None
    # The TOTP time step last accepted for this patient: the server refuses a reused code.
    last_totp_step: int | None = None

    @property
    def birth_date_fr(self) -> str:
        year, month, day = self.birth_date.split("-")
        return f"{day}/{month}/{year}"


@dataclass
class LiveBackend:
    url: str
    env: dict
    log_path: Path
    # The legacy DMP source (``CARNET_LEGACY_DIR``): a test puts ``<NIR>/`` in it before activating.
    legacy_dir: Path | None = None
    _serials: itertools.count = field(default_factory=lambda: itertools.count(101))

    def carnet(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [*_carnet_command(), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            pytest.fail(
                f"`carnet {' '.join(args)}` exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def create_patient(self, given_name: str = "Marie", family_name: str = "Durand") -> Patient:
        serial = next(self._serials)
        nir = valid_nir(serial)
        birth_date = f"1984-07-{(serial % 28) + 1:02d}"
        result = self.carnet(
            "patient", "create",
            "--nir", nir,
            "--birth-date", birth_date,
            "--family-name", family_name,
            "--given-name", given_name,
            "--sex", "F",
        )  # fmt: skip
        created = _last_json_line(result.stdout)
        return Patient(
            nir=nir,
            birth_date=birth_date,
            given_name=given_name,
            family_name=family_name,
            activation_code=created["activation_code"],
            patient_id=created.get("patient_id"),
        )

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


def _last_json_line(output: str) -> dict:
    for line in reversed(output.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    pytest.fail(f"`carnet patient create` printed no JSON object:\n{output}")


@pytest.fixture(scope="session")
def live_backend(tmp_path_factory) -> LiveBackend:
    workdir = tmp_path_factory.mktemp("backend")
    legacy_dir = workdir / "legacy"
    legacy_dir.mkdir()
    env = {
        **os.environ,
        "CARNET_DATABASE_URL": f"sqlite:///{workdir / 'carnet.db'}",
        "CARNET_SECRET_KEY": SECRET_KEY,
        # Encryption at rest: base64 of 32 random bytes, the format `carnet keys new` prints.
        "CARNET_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "PYTHONUNBUFFERED": "1",
        # The embedded task queue (queue.db) lives in the instance folder: one of our own, or the
        # worker of any other backend started from this checkout (another test session) takes our tasks.
        "CARNET_INSTANCE_PATH": str(workdir / "instance"),
        # One folder per holder's NIR; empty unless a test lays out a dossier (no folder: no import).
        "CARNET_LEGACY_DIR": str(legacy_dir),
    }
    port = _free_port()
    env["CARNET_PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"  # FHIR links name the address it serves at
    backend = LiveBackend(url=f"http://127.0.0.1:{port}", env=env, log_path=workdir / "serve.log",
                          legacy_dir=legacy_dir)
    backend.carnet("db", "upgrade")

    with backend.log_path.open("wb") as log:
        server = subprocess.Popen(
            [*_carnet_command(), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_listening(server, backend)
        yield backend
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def _wait_until_listening(server: subprocess.Popen, backend: LiveBackend) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"`carnet serve` exited with {server.returncode}:\n{backend.log_tail()}")
        try:
            # Any HTTP answer (401 without a token) means the server is up.
            requests.get(f"{backend.url}/api/v1/me", timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.2)
    pytest.fail(f"`carnet serve` did not answer within {STARTUP_TIMEOUT}s:\n{backend.log_tail()}")


# -- the display and the app -------------------------------------------------------------


@pytest.fixture(scope="session")
def display():
    """A display for Kivy's window: the current one, or a private Xvfb."""
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        reason = "UI tests need a display: install Xvfb (apt-get install xvfb) or set DISPLAY"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)

    # -displayfd: Xvfb picks a free display number and writes it to us when it is ready.
    read_end, write_end = os.pipe()
    process = subprocess.Popen(
        [xvfb, "-displayfd", str(write_end), "-screen", "0", SCREEN_SIZE, "-nolisten", "tcp"],
        pass_fds=(write_end,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    try:
        with os.fdopen(read_end) as pipe:
            number = pipe.readline().strip()
        if not number:
            pytest.fail(f"Xvfb exited ({process.poll()}) without giving a display number")
        os.environ["DISPLAY"] = f":{number}"
        yield os.environ["DISPLAY"]
    finally:
        os.environ.pop("DISPLAY", None)
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def kivy_app(display, live_backend, tmp_path_factory):
    """The session's CarnetApp, running against the live backend, pumped by the tests."""
    kivy_home = tmp_path_factory.mktemp("kivy_home")
    os.environ.update(
        {
            "KIVY_NO_ARGS": "1",
            "KIVY_HOME": str(kivy_home),
            # Log through Python's logging (captured by pytest), not Kivy's own console.
            "KIVY_LOG_MODE": "PYTHON",
            "KIVY_NO_FILELOG": "1",
            "KIVY_NO_CONSOLELOG": "1",
            # Without this Kivy probes xclip/xsel and prints their absence as tracebacks.
            "KIVY_CLIPBOARD": "sdl2",
        }
    )
    from kivy.base import EventLoop, _runTouchApp_prepare

    from mobile.main import CarnetApp

    app = CarnetApp(api_url=live_backend.url, language="fr")
    # What App.run() does, minus the blocking main loop: the tests pump frames themselves.
    app._run_prepare()
    _runTouchApp_prepare()
    yield app
    app.stop()
    EventLoop.exit()


@pytest.fixture(scope="session")
def screenshots_dir() -> Path:
    """Where the UI tests leave their PNGs for people to look at (ignored by git)."""
    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def ui(kivy_app, screenshots_dir, request):
    """The app on its welcome screen, nothing remembered from the previous test."""
    driver = Driver(kivy_app, screenshots_dir)
    driver.reset()
    yield driver
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        driver.screenshot(f"FAILED-{request.node.name}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Keep the outcome on the item so ``ui`` can screenshot a failing scenario.
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report


# -- driving the app like a person --------------------------------------------------------


class Driver:
    """Taps, types and waits on the running app, then takes screenshots.

    Taps are real touch events posted to the window (so the busy overlay, scroll views and
    disabled buttons behave as they would under a finger); typing goes through the
    window's text input events to whichever field has the focus.
    """

    FRAME_PAUSE = 0.002

    def __init__(self, app, screenshots: Path) -> None:
        self.app = app
        self.screenshots = screenshots
        self._backdrops: set[int] = set()

    # -- time ----------------------------------------------------------------------------

    def frames(self, count: int = 1) -> None:
        from kivy.base import EventLoop

        for _ in range(count):
            EventLoop.idle()
            time.sleep(self.FRAME_PAUSE)

    def pump(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.frames()

    def wait_until(self, condition, what: str, timeout: float = 15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            self.frames()
        pytest.fail(
            f"timed out after {timeout}s waiting until {what}; "
            f"screen={self.app.manager.current!r}, busy={self.app.busy}, "
            f"error={getattr(self.screen, 'error', '')!r}"
        )

    def settle(self, timeout: float = 15.0) -> None:
        """Wait until no request runs and no screen is sliding."""
        self.wait_until(
            lambda: not self.app.busy and not self._transitions_running(),
            "the app is idle",
            timeout,
        )
        self.frames(3)

    def _transitions_running(self) -> bool:
        from kivy.uix.screenmanager import ScreenManager

        managers = [self.app.manager]
        managers += [w for w in self.app.manager.walk() if isinstance(w, ScreenManager)]
        return any(m.transition.is_active for m in managers)

    # -- looking --------------------------------------------------------------------------

    @property
    def screen(self):
        return self.app.manager.current_screen

    def on_screen(self, name: str) -> bool:
        return self.app.manager.current == name and not self._transitions_running()

    def wait_for_screen(self, name: str, timeout: float = 15.0):
        self.wait_until(lambda: self.on_screen(name), f"screen {name!r} is shown", timeout)
        self.settle()
        return self.screen

    def screenshot(self, name: str, widget=None) -> Path:
        """The app (or ``widget``) as drawn, rendered off-screen under the app's background.

        Reading the window back (``Window.screenshot``) returned the top 160 px of the 400×760 window as
        black or noise in some runs under Xvfb on this machine (760 − 600: Kivy's first window is 600 px
        high; the cause was not pinned down). Rendering the tree into an FBO does not read the window."""
        from kivy.graphics import Color, Rectangle

        from mobile import theme

        root = widget or self.app.root
        if id(root) not in self._backdrops:
            with root.canvas.before:
                Color(*theme.BACKGROUND)
                Rectangle(pos=root.pos, size=root.size)
            self._backdrops.add(id(root))
        self.frames(3)
        target = self.screenshots / f"{name}.png"
        root.export_to_png(str(target))
        return target

    # -- acting ---------------------------------------------------------------------------

    def tap(self, widget) -> None:
        """Touch the middle of ``widget`` with a finger, scrolling it into view first."""
        self.settle()
        self._scroll_into_view(widget)
        assert widget.get_root_window() is not None, f"{widget!r} is not on screen"
        assert not widget.disabled, f"{widget!r} is disabled"
        assert widget.opacity > 0, f"{widget!r} is invisible"
        x, y = widget.to_window(*widget.center)
        touch = _FingerTouch(x, y)
        touch.down()
        self.frames(2)
        touch.up()
        self.frames(3)

    def type(self, field, text: str, clear: bool = True) -> None:
        """Tap the field, empty it, then type ``text`` one character at a time."""
        from kivy.core.window import Window

        self.tap(field)
        self.wait_until(lambda: field.focus, f"{field!r} has the focus", timeout=5)
        if clear and field.text:
            field.select_all()
            field.delete_selection()
        for char in text:
            Window.dispatch("on_textinput", char)
            self.frames()
        self.frames(2)

    def _scroll_into_view(self, widget) -> None:
        from kivy.uix.scrollview import ScrollView

        # Walk up to the window (whose ``parent`` is itself) looking for a scroll view.
        parent = widget.parent
        while parent is not None and parent.parent is not parent:
            if isinstance(parent, ScrollView):
                parent.scroll_to(widget, animate=False)
                self.frames(3)
                return
            parent = parent.parent

    def reset(self) -> None:
        self.settle()
        self.app.reset()
        self.settle()


class _FingerTouch:
    """A single-finger touch posted to Kivy's event loop, like a real input provider."""

    def __init__(self, x: float, y: float) -> None:
        from kivy.base import EventLoop

        window = EventLoop.window
        self._loop = EventLoop
        self._event = _touch_event_class()(
            "carnet-ui-test", id(self), (x / (window.width - 1.0), y / (window.height - 1.0))
        )

    def down(self) -> None:
        self._loop.post_dispatch_input("begin", self._event)

    def up(self) -> None:
        self._loop.post_dispatch_input("end", self._event)


@functools.cache
def _touch_event_class():
    # Built on first use so that importing this conftest does not import Kivy.
    from kivy.input.motionevent import MotionEvent

    class FingerEvent(MotionEvent):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, is_touch=True, type_id="touch", **kwargs)
            self.profile = ["pos"]

        def depack(self, args):
            self.sx, self.sy = args
            super().depack(args)

    return FingerEvent


# -- patients ----------------------------------------------------------------------------

TOTP_PERIOD = 30
# Never hand out a code about to expire: typing it and the round trip take a moment.
TOTP_MARGIN = 3.0


def fresh_totp_code(patient: Patient) -> str:
    """The current TOTP code for ``patient``, in a time step not used before for them.

    The server refuses a code that was already used, so after a step has been spent we wait
    for the next one (at most 30 s; the fixtures below avoid it where they can)."""
    import pyotp

    while True:
        now = time.time()
        step = int(now // TOTP_PERIOD)
        remaining = TOTP_PERIOD - now % TOTP_PERIOD
        spent = patient.last_totp_step is not None and step <= patient.last_totp_step
        if remaining < TOTP_MARGIN or spent:
            time.sleep(remaining + 0.05)
            continue
        patient.last_totp_step = step
        return pyotp.TOTP(patient.totp_secret).at(now)


@pytest.fixture
def totp_code():
    """``totp_code(patient)``: what the patient's authenticator shows now (see above)."""
    return fresh_totp_code


@pytest.fixture
def new_patient(live_backend) -> Patient:
    """A patient created by `carnet patient create`, not activated yet."""
    return live_backend.create_patient(given_name="Marie", family_name="Durand")


@pytest.fixture
def enrolled_patient(live_backend) -> Patient:
    """A patient who activated their profile and enrolled TOTP, through the API."""
    import pyotp

    from mobile.api import ApiError, CarnetClient

    patient = live_backend.create_patient(given_name="Lucie", family_name="Martin")
    with CarnetClient(live_backend.url) as client:
        client.activate(patient.nir, patient.birth_date, patient.activation_code, patient.password)
        patient.totp_secret = client.enrol_totp()["secret"]
        # Prefer the previous step's code (servers usually accept one step of drift): the
        # current step then stays free for the test's own sign-in, with no 30 s wait.
        now = time.time()
        try:
            client.confirm_enrolment(pyotp.TOTP(patient.totp_secret).at(now - TOTP_PERIOD))
            patient.last_totp_step = int(now // TOTP_PERIOD) - 1
        except ApiError as error:
            if error.code != "invalid_otp":
                raise
            client.confirm_enrolment(fresh_totp_code(patient))
        client.logout()
    return patient


# -- the demo patient (``carnet demo``: a lived-in record, a child, a father helped) ------------------------------


@pytest.fixture(scope="session")
def demo_patient(live_backend) -> Patient:
    """``carnet demo`` (twice: it is idempotent) and the demo patient's credentials."""
    from backend.tools.demo import DEMO_NIR, DEMO_PASSWORD, DEMO_TOTP_SECRET

    live_backend.carnet("demo")
    live_backend.carnet("demo")
    return Patient(nir=DEMO_NIR, birth_date="1984-07-14", given_name="Camille", family_name="Martin",
                   activation_code="", password=DEMO_PASSWORD, totp_secret=DEMO_TOTP_SECRET)


@pytest.fixture
def signed_in(ui, demo_patient, data_dir):
    """The app holds the demo patient's access token, as after the sign-in screens."""
    client = ui.app.client
    client.login(demo_patient.nir, demo_patient.password)
    client.verify_otp(fresh_totp_code(demo_patient))
    ui.app.signed_in = True
    ui.app.given_name = demo_patient.given_name
    return demo_patient


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CARNET_DATA_DIR", str(tmp_path / "app-data"))
    return tmp_path / "app-data"
