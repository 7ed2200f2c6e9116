"""HTTP client for the Carnet API (``/api/v1``), used by the screens and by tests.

It owns the wire format (paths, JSON bodies, headers) and the bearer token of the current
step of the sign-in journey: an enrolment token after activation, an MFA token after the
password, then the access token. Every call is blocking: the app runs them off the UI thread.
This module must not import Kivy, so it can be tested and reused on its own.
"""

from __future__ import annotations

import logging
import platform
from typing import Any

import requests

from .errors import ApiError

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
SUPPORTED_LANGUAGES = ("fr", "en")
# (connect, read) seconds: a phone on a bad network should fail with a clear message
# rather than leave the patient in front of a spinner.
DEFAULT_TIMEOUT = (5.0, 20.0)


def default_device_name() -> str:
    """A name the patient will recognise in their list of trusted devices."""
    system = platform.system() or "appareil"
    node = platform.node()
    return f"Carnet mobile ({system}{' – ' + node if node else ''})"[:100]


def send_json(session: requests.Session, client: CarnetClient, method: str, path: str, *,
              params: dict | None = None, json: dict | None = None) -> Any:
    """One JSON call of a feature's client over its own ``session``, with ``client``'s server, language and
    token: → the answer's JSON (None for an empty answer); ApiError for no answer, a problem, or not JSON."""
    headers = {"Accept": "application/json", "Accept-Language": client.language}
    if client.token:
        headers["Authorization"] = f"Bearer {client.token}"
    query = {k: v for k, v in (params or {}).items() if v not in (None, "")}
    try:
        response = session.request(method, f"{client.base_url}{API_PREFIX}{path}", params=query,
                                   json=json, headers=headers, timeout=client.timeout)
    except requests.RequestException as exc:
        log.info("%s %s failed before any answer: %s", method, path, exc)
        raise ApiError.network(client.language) from exc
    if not response.ok:
        raise ApiError.from_response(response, client.language)
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise ApiError.unexpected(client.language, response.status_code) from None


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
        self._session = session or requests.Session()
        # Without network (see ``offline_answer``): GETs answered from the device's copy of the record.
        self.offline = False
        # An ``mobile.offline.OfflineAnswers`` (or None): ``answer(path, params)`` and ``keep(path, params, value)``.
        self.offline_store: Any = None
        # Called with True/False when a request reached the server or failed for lack of network (from the
        # thread that made the request).
        self.on_network: Any = None

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
            self._request("POST", "/auth/logout")
        finally:
            self.token = None

    def forget_token(self) -> None:
        self.token = None

    # -- the patient's account -------------------------------------------------------

    def me(self) -> dict:
        return self._get("/me")

    def home(self) -> dict:
        """Greeting, recent account activity and next steps, labels in ``self.language``."""
        return self._get("/home")

    def devices(self, cursor: str | None = None, limit: int | None = None) -> dict:
        """One page of trusted devices: ``{items: [...], next_cursor}`` (newest first)."""
        params = {key: value for key, value in (("cursor", cursor), ("limit", limit)) if value}
        return self._request("GET", "/account/devices", params=params or None)

    def revoke_device(self, device_id: int | str) -> None:
        self._request("DELETE", f"/account/devices/{device_id}")

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
        if store is None or method != "GET":
            return None
        try:
            return store.answer(path, params)
        except Exception:  # noqa: BLE001 - a broken copy must not hide the network error
            log.exception("offline copy of %s unreadable", path)
            return None

    def offline_keep(self, method: str, path: str, params: dict | None, value: Any) -> None:
        store = self.offline_store
        if store is not None and method == "GET":
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
        return self._request("GET", path)

    def _post(self, path: str, payload: dict, *, auth: bool = True) -> Any:
        return self._request("POST", path, json=payload, auth=auth)

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: dict | None = None,
        params: dict | None = None,
        auth: bool = True,
    ) -> Any:
        headers = {"Accept": "application/json", "Accept-Language": self.language}
        if auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        url = f"{self.base_url}{API_PREFIX}{path}"
        if self.offline and (cached := self.offline_answer(method, path, params)) is not None:
            return cached  # offline: the copy, without waiting for a timeout; the app probes the server
        try:
            response = self._session.request(
                method, url, json=json, params=params, headers=headers, timeout=self.timeout
            )
        except requests.RequestException as exc:
            log.info("%s %s failed before any answer: %s", method, path, exc)
            self.network_reached(False)
            if (cached := self.offline_answer(method, path, params)) is not None:
                return cached
            raise ApiError.network(self.language) from exc
        self.network_reached(True)

        if response.status_code == 204 or not response.content:
            if response.ok:
                return None
            raise ApiError.from_problem(
                response.status_code, None, response.headers.get("Retry-After"), self.language
            )

        try:
            body = response.json()
        except ValueError:
            body = None
        if not response.ok:
            raise ApiError.from_problem(
                response.status_code, body, response.headers.get("Retry-After"), self.language
            )
        if body is None:
            log.warning("%s %s answered %s without JSON", method, path, response.status_code)
            raise ApiError.unexpected(self.language, response.status_code)
        self.offline_keep(method, path, params, body)
        return body

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> CarnetClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
