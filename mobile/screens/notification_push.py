"""Push on this device: turn Web Push on (keys made here, endpoint from the device's push distributor)
or off. The server only ever pushes a kind and an opaque id, encrypted for this device."""

from __future__ import annotations

from kivy.properties import BooleanProperty, StringProperty

from mobile.api import ApiError
from mobile.api.notifications import push_endpoint
from mobile.i18n import _

from .base import CarnetScreen
from .notification_common import device_keys, load_kv, notifications_api

load_kv()
NO_DISTRIBUTOR = ("Aucun service de notification n'est installé sur cet appareil. Installez une application "
                  "UnifiedPush (par exemple ntfy) puis réessayez. En attendant, vos notifications restent dans "
                  "l'application et vous arrivent par e-mail.")


class PushRegistrationScreen(CarnetScreen):
    registered = BooleanProperty(False)
    status = StringProperty("")
    notice = StringProperty("")
    loaded = BooleanProperty(False)

    def on_pre_enter(self, *_args) -> None:
        self.notice = ""
        self.call(lambda: notifications_api().subscription(), self._show, self._failed)

    def _show(self, subscription: dict) -> None:
        self.registered = bool(subscription.get("registered"))
        service = subscription.get("push_service") or ""
        self.status = _("Activées (service : {service}).").format(service=service) if self.registered \
            else _("Désactivées.")
        self.loaded = True

    def enable(self) -> None:
        def work() -> dict | None:
            api = notifications_api()
            api.vapid_public_key()  # 503 with the server's sentence when push is not set up there
            endpoint = push_endpoint()
            if endpoint is None:
                return None  # no distributor: nothing was sent to the server
            return api.subscribe(endpoint, device_keys())

        def done(subscription: dict | None) -> None:
            if subscription is None:
                self.error = _(NO_DISTRIBUTOR)
                return
            self._show(subscription)
            self.notice = _("Notifications activées sur cet appareil.")

        self.notice = ""
        self.call(work, done, self._failed)

    def disable(self) -> None:
        def done(_result: object) -> None:
            self._show({"registered": False})
            self.notice = _("Notifications désactivées sur cet appareil. Vous les retrouvez dans l'application.")

        self.notice = ""
        self.call(lambda: notifications_api().unsubscribe(), done, self._failed)

    def _failed(self, error: ApiError) -> None:
        if self.session_refused(error):
            return
        if error.code == "push_subscription_not_found":
            self._show({"registered": False})
        else:
            self.error = error.detail

    def reset(self) -> None:
        super().reset()
        self.registered = False
        self.status = ""
        self.notice = ""
        self.loaded = False
