"""Offline mode: a banner on every screen, the record read from the device, a sync when the network is back.

How it works:

- The API client reports each request that got an HTTP answer, or none at all (connection refused,
  timeout, no route): ``CarnetClient.network_reached``. An HTTP error (4xx, 5xx) is an answer: the
  network is there. The first failure switches the app to offline mode.
- Offline, the client answers the record's GETs (documents list, profile, directives, upcoming
  appointments, documents opened before) from the encrypted copy (``mobile.offline.OfflineAnswers``),
  without waiting for a timeout; an action that needs the server fails with a sentence saying so
  (``offline_error``, used by ``CarnetScreen.call``).
- A banner above every screen says the app is offline and from when the data is. The app asks
  ``GET /api/health`` every ``PROBE_SECONDS`` (off the UI thread); when the server answers, the banner
  goes, the record is synced again and the current screen reloads.
- Each time the home screen loads with network, the copy is refreshed (``sync``), at most once every
  ``SYNC_MIN_SECONDS``.

The sync uses its own short-lived client (same server, language and token): it never shares a
``requests`` session with a call a screen is making at the same moment.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from pathlib import Path

from kivy.clock import Clock
from kivy.event import EventDispatcher
from kivy.lang import Builder
from kivy.properties import BooleanProperty, NumericProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.label import Label

from mobile.api import ApiError, CarnetClient
from mobile.i18n import _, get_language, zone

log = logging.getLogger(__name__)

KV_FILE = str(Path(__file__).with_name("connectivity.kv"))
PROBE_SECONDS = 10.0
PROBE_TIMEOUT = (2.0, 3.0)
SYNC_MIN_SECONDS = 30.0
# A screen busy with a call when the sync ends is reloaded once it is free, checked this often.
RELOAD_RETRY_SECONDS = 0.3


def offline_error(error: ApiError) -> ApiError:
    """The sentence for an action that failed for lack of network while the app is offline."""
    if not error.is_network:
        return error
    return ApiError(status=0, code="network", detail=_(
        "Vous êtes hors connexion : cette action a besoin d'internet. Réessayez quand le réseau sera revenu."))


def synced_sentence(synced_at: float | None) -> str:
    """'Hors connexion — vous consultez les données du 22/11/2026 à 18:37' (local time)."""
    if not synced_at:
        return _("Hors connexion — aucune donnée enregistrée sur cet appareil pour l'instant.")
    moment = dt.datetime.fromtimestamp(synced_at, dt.timezone.utc).astimezone(zone())
    day = moment.strftime("%d %b %Y") if get_language() == "en" else moment.strftime("%d/%m/%Y")
    return _("Hors connexion — vous consultez les données du {date} à {time}").format(
        date=day, time=moment.strftime("%H:%M"))


class OfflineBanner(ButtonBehavior, Label):
    """Above every screen while offline; a tap asks the server again at once."""


class Connectivity(EventDispatcher):
    """The app's view of the network; one per app (``app.connectivity``)."""

    online = BooleanProperty(True)
    syncing = BooleanProperty(False)
    # Epoch seconds of the copy on the device (0: none yet), and the banner's sentence.
    synced_at = NumericProperty(0)
    banner_text = StringProperty("")
    # How many syncs ended well (tests wait on it), and how long the last one took (seconds).
    syncs = NumericProperty(0)
    last_sync_seconds = NumericProperty(0)

    def __init__(self, app, **kwargs) -> None:
        super().__init__(**kwargs)
        self.app = app
        self._probe_event = None
        self._probing = False
        self._last_sync = 0.0
        self._synced_token: str | None = None  # the session the last sync was for
        self._patient_key: str | None = None

    # -- what the client says ------------------------------------------------------------

    def watch(self, client: CarnetClient) -> None:
        client.on_network = self._reported

    def _reported(self, reachable: bool) -> None:
        # From the request's thread: decide on the UI thread.
        if reachable != self.online:
            Clock.schedule_once(lambda _dt: self.came_back() if reachable else self.went_offline())

    # -- offline -------------------------------------------------------------------------

    def went_offline(self) -> None:
        if not self.online:
            return
        self.online = False
        self.app.client.offline = True
        self._update_banner()
        if self._probe_event is None:
            self._probe_event = Clock.schedule_interval(self.probe, PROBE_SECONDS)
        log.info("offline: reading the device's copy, probing every %ss", PROBE_SECONDS)

    def probe(self, *_args) -> None:
        """``GET /api/health`` off the UI thread; its answer brings the app back online."""
        if self.online or self._probing:
            return
        self._probing = True
        client = self.app.client

        def ask() -> None:
            answered = client.reachable(PROBE_TIMEOUT)
            Clock.schedule_once(lambda _dt: self._probed(answered))

        threading.Thread(target=ask, name="carnet-probe", daemon=True).start()

    def _probed(self, answered: bool) -> None:
        self._probing = False
        if answered:
            self.came_back()

    def came_back(self) -> None:
        if self.online:
            return
        self.online = True
        self.app.client.offline = False
        self._stop_probe()
        self.banner_text = ""
        log.info("back online: syncing the record")
        self.sync(force=True, reload=True)

    def _stop_probe(self) -> None:
        if self._probe_event is not None:
            self._probe_event.cancel()
            self._probe_event = None

    def _update_banner(self) -> None:
        self.banner_text = "" if self.online else synced_sentence(self.synced_at or None)

    def on_synced_at(self, *_args) -> None:
        self._update_banner()

    # -- sync ------------------------------------------------------------------------------

    def sync(self, force: bool = False, reload: bool = False) -> bool:
        """Refresh the device's copy of the record in background; → False when not started (offline,
        signed out, a sync running, or one done less than ``SYNC_MIN_SECONDS`` ago unless ``force``)."""
        app = self.app
        client = app.client
        if not self.online or not app.signed_in or not client.token or self.syncing:
            return False
        # A new session (another sign-in, another patient) is synced at once, whatever the last sync's age.
        if not force and client.token == self._synced_token and time.monotonic() - self._last_sync < SYNC_MIN_SECONDS:
            return False
        from mobile.offline import sync_record  # cryptography: imported when first needed, not at start-up
        from mobile.storage import data_dir

        folder = data_dir()
        worker = CarnetClient(client.base_url, language=client.language, timeout=client.timeout)
        worker.token = token = client.token
        self.syncing = True
        started = time.monotonic()

        def work() -> None:
            try:
                cache, _card = sync_record(worker, folder)
                outcome = (True, cache)
            except ApiError as error:
                outcome = (False, error)
            except Exception:  # noqa: BLE001 - the sync must always report back
                log.exception("offline sync failed")
                outcome = (False, ApiError.unexpected(client.language))
            finally:
                worker.close()
            self.last_sync_seconds = time.monotonic() - started
            Clock.schedule_once(lambda _dt: self._synced(client, token, *outcome, reload=reload))

        threading.Thread(target=work, name="carnet-sync", daemon=True).start()
        return True

    def _synced(self, client: CarnetClient, token: str, ok: bool, result, reload: bool) -> None:
        self.syncing = False
        if client is not self.app.client or not self.app.signed_in:
            return  # signed out meanwhile: nothing of the patient is attached to the app again
        if client.token != token:
            self.sync()  # another session began meanwhile: nothing of the old one is kept, the new one is synced
            return
        if not ok:
            if result.is_network:
                self.went_offline()
            else:
                log.info("offline sync refused: %s", result)
            return
        from mobile.offline import OfflineAnswers

        self._last_sync = time.monotonic()
        self._synced_token = token
        store = OfflineAnswers(result)
        client.offline_store = store
        self._patient_key = result.patient_key
        self.synced_at = store.synced_at() or time.time()
        self.syncs += 1
        if reload:
            self.reload_screens()

    def reload_screens(self) -> None:
        """After a sync on reconnection: the screen shown loads again, the others when next shown."""
        manager = self.app.manager
        current = manager.current_screen
        for screen in manager.screens:
            if screen is not current and hasattr(screen, "loaded"):
                screen.loaded = False
        if current is None:
            return
        if self.app.busy:  # a call of the screen is running: reload once it is over
            Clock.schedule_once(lambda _dt: self.reload_screens(), RELOAD_RETRY_SECONDS)
            return
        if hasattr(current, "loaded"):
            current.loaded = False
        current.dispatch("on_pre_enter")

    # -- sessions ----------------------------------------------------------------------------

    def forget(self, *_args) -> None:
        """Signed out (or app reset): nothing of the patient stays attached; back to online mode."""
        if self.app.signed_in:
            return
        self._stop_probe()
        self._probing = False
        self.online = True
        self.banner_text = ""
        self.synced_at = 0
        self._last_sync = 0.0
        self._patient_key = None
        client = self.app.client
        if client is not None:
            client.offline = False
            client.offline_store = None


def install(app, root) -> Connectivity:
    """Create ``app.connectivity``, watch the app's client and put the banner above the screens of
    ``root`` (the app's FloatLayout holding ``app.manager``)."""
    if KV_FILE not in Builder.files:
        Builder.load_file(KV_FILE)
    connectivity = Connectivity(app)
    app.connectivity = connectivity
    connectivity.watch(app.client)
    app.bind(signed_in=connectivity.forget, language=lambda *_a: connectivity._update_banner())

    banner = OfflineBanner()
    connectivity.bind(banner_text=banner.setter("text"))
    banner.bind(on_release=lambda *_a: connectivity.probe())
    manager = app.manager
    manager.size_hint_y = None

    def fit(*_args) -> None:
        # The screens take the height the banner leaves (the banner is 0 high while online).
        manager.height = root.height - banner.height
        manager.y = root.y

    root.bind(size=fit, pos=fit)
    banner.bind(height=fit)
    root.add_widget(banner, index=1)  # under the busy overlay, above the screens
    fit()
    app.offline_banner = banner
    return connectivity


__all__ = ["Connectivity", "OfflineBanner", "install", "offline_error", "synced_sentence"]
