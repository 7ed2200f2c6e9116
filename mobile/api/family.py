"""The family space's client (``/api/v1/family``): the records this account may open, invitations, carers."""
from __future__ import annotations

from typing import Any

from .client import CarnetClient


class FamilyApi:
    def __init__(self, client: CarnetClient) -> None:
        self.client = client

    def _call(self, method: str, path: str, json: dict | None = None) -> Any:
        # the family routes are the account's own: the open record does not matter (the server ignores it)
        return self.client.call(method, f"/family{path}", json=json)

    def spaces(self) -> list[dict]:
        return (self._call("GET", "/spaces") or {}).get("items", [])

    def activate_child(self, nir: str, birth_date: str, code: str) -> dict:
        return self._call("POST", "/children/activation", {"nir": nir, "birth_date": birth_date, "code": code})

    def accept_representative(self, code: str) -> dict:
        return self._call("POST", "/representatives/accept", {"code": code})

    def accept_carer(self, code: str) -> dict:
        return self._call("POST", "/carers/accept", {"code": code})

    def representatives(self, child_id: str | int) -> list[dict]:
        return (self._call("GET", f"/children/{child_id}/representatives") or {}).get("items", [])

    def invite_representative(self, child_id: str | int) -> dict:
        """A code for the child's other legal representative (it replaces a pending one)."""
        return self._call("POST", f"/children/{child_id}/invitations")

    def leave(self, child_id: str | int) -> None:
        self._call("DELETE", f"/children/{child_id}/representation")

    def carers(self) -> dict:
        """``{"items": [...], "limit": 3}``: the account's carers, accepted or invited."""
        return self._call("GET", "/carers") or {"items": []}

    def invite_carer(self, scopes: list[str]) -> dict:
        return self._call("POST", "/carers", {"scopes": scopes})

    def end_carer(self, link_id: int) -> None:
        self._call("DELETE", f"/carers/{link_id}")
