"""HTTP client for the Carnet API (``/api/v1``), used by the screens and by tests.

It owns the wire format (paths, JSON bodies, headers) and the bearer token of the current
step of the sign-in journey: an enrolment token after activation, an MFA token after the
password, then the access token. Every call is blocking: the app runs them off the UI thread.
This module must not import Kivy, so it can be tested and reused on its own.
"""

from __future__ import annotations

import http.client
import logging
import platform
from typing import Any, TypeVar

import requests
from urllib3.exceptions import ProtocolError

from .errors import ApiError

log = logging.getLogger(__name__)
Feature = TypeVar("Feature")

API_PREFIX = "/api/v1"
SUPPORTED_LANGUAGES = ("fr", "en")
# (connect, read) seconds: a phone on a bad network should fail with a clear message
# rather than leave the patient in front of a spinner.
DEFAULT_TIMEOUT = (5.0, 20.0)


class KeepAliveSession(requests.Session):
    """A ``requests`` session that sends a request again, once, when the server closed the kept-alive
    connection just as it was reused (it answered nothing: "Remote end closed connection without
    response"). That race is ordinary on phones and behind proxies, and the request never reached the
    application, so a second try on a new connection is safe; a timeout or a refused connection is not
    retried (the server may have done the work, or is not there)."""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        try:
            return super().send(request, **kwargs)
        except requests.ConnectionError as exc:
            if not (_closed_unanswered(exc) and isinstance(request.body, (bytes, str, type(None)))):
                raise
            log.info("%s %s: the kept-alive connection was closed unanswered; sending again", request.method,
                     request.path_url.partition("?")[0])
            return super().send(request, **kwargs)


def _closed_unanswered(exc: requests.ConnectionError) -> bool:
    reason = exc.args[0] if exc.args else None
    return (isinstance(reason, ProtocolError) and len(reason.args) > 1
            and isinstance(reason.args[1], (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)))


def default_device_name() -> str:
    """A name the patient will recognise in their list of trusted devices."""
    system = platform.system() or "appareil"
    node = platform.node()
    return f"Carnet mobile ({system}{' – ' + node if node else ''})"[:100]


RECORD_HEADER = "X-Carnet-Record"


class CarnetClient:
    """One patient's conversation with the API.

    Not thread-safe by design: the app makes one call at a time per patient.
    """

    def __init__(
        self,
        base_url: str,
        language: str = "fr",
        *,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
    ) -> None:
        if language not in SUPPORTED_LANGUAGES:
            raise ValueError(f"language must be one of {SUPPORTED_LANGUAGES}, not {language!r}")
        self.base_url = base_url.rstrip("/")
        self.language = language
        self.timeout = timeout
        self.token: str | None = None
        # The record the app has open when it is not the patient's own (a child's, a person helped): every
        # request names it (``RECORD_HEADER``); None for the patient's own record.
        self.record_id: str | None = None
        self._session = session or KeepAliveSession()
        # Without network (see ``offline_answer``): GETs answered from the device's copy of the record.
        self.offline = False
        # An ``mobile.offline.OfflineAnswers`` (or None): ``answer(path, params)`` and ``keep(path, params, value)``.
        self.offline_store: Any = None
        # Called with True/False when a request reached the server or failed for lack of network (from the
        # thread that made the request).
        self.on_network: Any = None
        self._features: dict[type, Any] = {}

    def auth_headers(self) -> dict[str, str]:
        """The bearer token, and the record open when it is someone else's (the family space)."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if self.token and self.record_id:
            headers[RECORD_HEADER] = self.record_id
        return headers

    # -- activation -------------------------------------------------------------------

    def check_activation(self, nir: str, birth_date: str, activation_code: str) -> dict:
        """Check the letter's data before asking for a password. → ``{status, given_name}``"""
        return self._post(
            "/activation/check",
            {"nir": nir, "birth_date": birth_date, "activation_code": activation_code},
            auth=False,
        )

    def activate(self, nir: str, birth_date: str, activation_code: str, password: str) -> dict:
        """Activate the profile; keeps the enrolment token. → ``{next, token, expires_at}``"""
        body = self._post(
            "/activation",
            {
                "nir": nir,
                "birth_date": birth_date,
                "activation_code": activation_code,
                "password": password,
            },
            auth=False,
        )
        self._keep_token(body)
        return body

    # -- second factor ----------------------------------------------------------------

    def enrol_totp(self) -> dict:
        """Start TOTP enrolment (needs the enrolment token). → ``{method, secret, otpauth_uri}``"""
        return self._post("/mfa/enrol", {"method": "totp"})

    def confirm_enrolment(self, code: str, device_name: str | None = None) -> dict:
        """Prove the authenticator works; keeps the access token. → ``{access_token, ...}``"""
        body = self._post(
            "/mfa/confirm", {"code": code, "device_name": device_name or default_device_name()}
        )
        self._keep_token(body, key="access_token")
        return body

    # -- sign in / out ----------------------------------------------------------------

    def login(self, nir: str, password: str) -> dict:
        """First factor; keeps the MFA (or enrolment) token. → ``{next: "otp"|"enrol", ...}``"""
        body = self._post("/auth/login", {"nir": nir, "password": password}, auth=False)
        self._keep_token(body)
        return body

    def verify_otp(self, code: str, device_name: str | None = None) -> dict:
        """Second factor; keeps the access token. → ``{access_token, token_type, expires_at}``"""
        body = self._post(
            "/auth/verify", {"code": code, "device_name": device_name or default_device_name()}
        )
        self._keep_token(body, key="access_token")
        return body

    def reactivate_account(self, code: str, device_name: str | None = None) -> dict:
        """A closed account reopened during its retention period, after ``login`` (MFA token) with a code
        of the second factor; keeps the access token. → ``{access_token, token_type, expires_at}``"""
        body = self._post(
            "/account/reactivate", {"code": code, "device_name": device_name or default_device_name()}
        )
        self._keep_token(body, key="access_token")
        return body

    def logout(self) -> None:
        """End the session on the server. The token is forgotten even if the call fails:
        the patient asked to leave, and a stale token is useless to keep."""
        try:
            self.call("POST", "/auth/logout")
        finally:
            self.token = None

    def forget_token(self) -> None:
        self.token = None
        self.record_id = None

    # -- the patient's account -------------------------------------------------------

    def me(self) -> dict:
        return self._get("/me")

    def home(self) -> dict:
        """Greeting, recent account activity and next steps, labels in ``self.language``."""
        return self._get("/home")

    def devices(self, cursor: str | None = None, limit: int | None = None) -> dict:
        """One page of trusted devices: ``{items: [...], next_cursor}`` (newest first)."""
        params = {key: value for key, value in (("cursor", cursor), ("limit", limit)) if value}
        return self.call("GET", "/account/devices", params=params or None)

    def revoke_device(self, device_id: int | str) -> None:
        self.call("DELETE", f"/account/devices/{device_id}")

    def change_password(self, current_password: str, new_password: str) -> dict:
        """Every other device is signed out. → ``{sessions_revoked}``"""
        return self._post(
            "/account/password",
            {"current_password": current_password, "new_password": new_password},
        )

    def close_account(self, password: str, request_deletion: bool = False) -> dict:
        """→ ``{state, closed_at, retention_until, deletion_requested}``"""
        return self._post(
            "/account/close", {"password": password, "request_deletion": request_deletion}
        )

    # -- without network ---------------------------------------------------------------

    def offline_answer(self, method: str, path: str, params: dict | None = None) -> Any:
        """The device's copy of a GET's answer, or None (not a GET, no store, nothing kept)."""
        store = self.offline_store
        if store is None or method != "GET" or self.record_id:  # the device keeps the patient's own record only
            return None
        try:
            return store.answer(path, params)
        except Exception:  # noqa: BLE001 - a broken copy must not hide the network error
            log.exception("offline copy of %s unreadable", path)
            return None

    def offline_keep(self, method: str, path: str, params: dict | None, value: Any) -> None:
        store = self.offline_store
        if store is not None and method == "GET" and not self.record_id:
            try:
                store.keep(path, params, value)
            except Exception:  # noqa: BLE001 - keeping a copy is a bonus, never a failure
                log.exception("could not keep an offline copy of %s", path)

    def network_reached(self, reachable: bool) -> None:
        """A request got an HTTP answer (True) or none at all (False): say so to ``on_network``."""
        self.offline = not reachable
        if self.on_network is not None:
            self.on_network(reachable)

    # -- plumbing ---------------------------------------------------------------------

    def _keep_token(self, body: Any, key: str = "token") -> None:
        if isinstance(body, dict) and isinstance(body.get(key), str):
            self.token = body[key]

    def _get(self, path: str) -> Any:
        return self.call("GET", path)

    def _post(self, path: str, payload: dict, *, auth: bool = True) -> Any:
        return self.call("POST", path, json=payload, auth=auth)

    def feature(self, kind: type[Feature]) -> Feature:
        """The client of one feature (``RecordsApi``, ``AgendaApi``, …) over this conversation: one of each,
        made when first asked, sharing this client's server, token, language and connections."""
        api = self._features.get(kind)
        if api is None:
            api = self._features[kind] = kind(self)  # type: ignore[call-arg]
        return api

    def send(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        json: Any = None,
        data: dict | None = None,
        files: Any = None,
        accept: str = "application/json",
        auth: bool = True,
        timeout: Any = None,
        stream: bool = False,
    ) -> requests.Response:
        """The app's one HTTP exchange with ``/api/v1``: the patient's language and token, the query without
        its empty values, one session (kept-alive connections, :class:`KeepAliveSession`). No answer:
        ``on_network(False)`` and ``ApiError.network``; an answer that is not a success: its problem as an
        ``ApiError``; otherwise the response (open, if ``stream``: the caller reads and closes it)."""
        headers = {"Accept": accept, "Accept-Language": self.language}
        if auth:
            headers.update(self.auth_headers())
        query = {k: v for k, v in params.items() if v not in (None, "")} if params else None
        try:
            response = self._session.request(
                method, f"{self.base_url}{API_PREFIX}{path}", params=query or None, json=json, data=data,
                files=files, headers=headers, timeout=timeout or self.timeout, stream=stream,
            )
        except requests.RequestException as exc:
            log.info("%s %s failed before any answer: %s", method, path, exc)
            self.network_reached(False)
            raise ApiError.network(self.language) from exc
        self.network_reached(True)
        if not response.ok:
            error = ApiError.from_response(response, self.language)
            response.close()
            raise error
        return response

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict | None = None,
        files: Any = None,
        auth: bool = True,
    ) -> Any:
        """:meth:`send`, answered in JSON (None for an empty answer). Without network, a ``GET`` the device
        has a copy of (``offline_store``) is answered from it, at once when already offline; what the
        server answers to a ``GET`` is offered to the copy."""
        query = {k: v for k, v in params.items() if v not in (None, "")} if params else None
        if self.offline and (cached := self.offline_answer(method, path, query)) is not None:
            return cached  # offline: the copy, without waiting for a timeout; the app probes the server
        try:
            response = self.send(method, path, json=json, params=query, files=files, auth=auth)
        except ApiError as error:
            if error.is_network and (cached := self.offline_answer(method, path, query)) is not None:
                return cached
            raise
        if response.status_code == 204 or not response.content:
            return None
        try:
            body = response.json()
        except ValueError:
            log.warning("%s %s answered %s without JSON", method, path, response.status_code)
            raise ApiError.unexpected(self.language, response.status_code) from None
        self.offline_keep(method, path, query, body)
        return body

    def reachable(self, timeout: float) -> bool:
        """Does the server answer ``GET /api/health``? On a connection of its own (the probe runs beside the
        screens' calls), without the patient's token."""
        try:
            return requests.get(f"{self.base_url}/api/health", timeout=timeout).ok
        except requests.RequestException:
            return False

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> CarnetClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
