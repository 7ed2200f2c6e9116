"""The catalogue's part of the API client (``/api/v1/catalog``), without Kivy: browse and search,
detail, consent (connect, renew, revoke), connected services, reports, and the OAuth authorization a
service asks for (the app shows the consent sheet, then hands the code back through ``redirect_to``).

It rides on a :class:`CarnetClient` (base URL, language, timeout, the patient's access token). Every
call is blocking: screens run them off the UI thread.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit


from .client import CarnetClient


OAUTH_PARAMS = ("response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge",
                "code_challenge_method")


def authorization_request(url: str) -> dict[str, str]:
    """The OAuth parameters of the link a service opened the app with (its query string)."""
    return {k: v for k, v in parse_qsl(urlsplit(url).query) if k in OAUTH_PARAMS}


class CatalogApi:
    def __init__(self, client: CarnetClient) -> None:
        self.client = client

    # -- the catalogue -------------------------------------------------------------------

    def filters(self) -> dict:
        """→ ``{themes: [{code, label}], regions: [...], report_reasons: [...]}``"""
        return self._call("GET", "/catalog/filters")

    def services(self, *, query: str | None = None, theme: str | None = None, region: str | None = None,
                 limit: int = 20, cursor: str | None = None) -> dict:
        """One page, alphabetical → ``{items, next_cursor}``."""
        return self._call("GET", "/catalog/services", params={"q": query, "theme": theme, "region": region,
                                                              "limit": limit, "cursor": cursor})

    def service(self, service_id: int) -> dict:
        return self._call("GET", f"/catalog/services/{service_id}")

    def connect(self, service_id: int, permissions: list[str]) -> dict:
        """Consent to exactly ``permissions`` (the ticked ones). → the service, with the connection."""
        return self._call("PUT", f"/catalog/services/{service_id}/connection", json={"permissions": permissions})

    def report(self, service_id: int, reason: str, comment: str | None = None) -> dict:
        return self._call("POST", f"/catalog/services/{service_id}/reports",
                          json={"reason": reason, "comment": comment or None})

    # -- connected services --------------------------------------------------------------

    def connections(self, limit: int = 50, cursor: str | None = None) -> dict:
        return self._call("GET", "/catalog/connections", params={"limit": limit, "cursor": cursor})

    def revoke(self, service_id: int) -> None:
        self._call("DELETE", f"/catalog/connections/{service_id}")

    def renew(self, service_id: int) -> dict:
        return self._call("POST", f"/catalog/connections/{service_id}/renewal")

    # -- a service's authorization request ---------------------------------------------------

    def check_authorization(self, request: dict[str, str]) -> dict:
        """→ ``{service, requested: [...permissions, none granted...], redirect_uri}``"""
        return self._call("GET", "/catalog/oauth/authorize", params=request)

    def authorize(self, request: dict[str, str], permissions: list[str]) -> str:
        """The patient's decision; returns where to send them (the service, with its code)."""
        return self._call("POST", "/catalog/oauth/authorize", params=request,
                          json={"permissions": permissions})["redirect_to"]

    def deny(self, request: dict[str, str]) -> str:
        return self._call("POST", "/catalog/oauth/authorize", params=request, json={"deny": True})["redirect_to"]

    # -- plumbing -------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, params: dict | None = None, json: dict | None = None) -> Any:
        return self.client.call(method, path, params=params, json=json)

