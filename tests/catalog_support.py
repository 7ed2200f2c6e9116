"""Builders for the catalogue tests: a small catalogue, a patient with a session, the OAuth dance."""
from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

from backend.catalog import operators
from backend.db import get_session
from tests.helpers import activate, bearer, create_patient


def service_spec(slug: str, name: str, *, themes: list[str] | None = None, regions: list[str] | None = None,
                 permissions: list[str] | None = None, status: str | None = None, description: str = "",
                 confidential: bool = False, redirect: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "slug": slug, "name": name, "publisher": f"Éditeur de {name}", "summary": f"Résumé de {name}.",
        "description": description or f"Description de {name}.", "themes": themes or ["prevention"],
        "regions": regions or ["national"], "privacy_policy_url": f"https://{slug}.example.fr/confidentialite",
        "referenced_at": "2024-01-15",
        "permissions": [{"scope": p, "purpose": f"Pourquoi {p}"} for p in (permissions or ["measures.weight.read"])],
        "client": {"client_id": f"{slug}-client", "redirect_uris": [redirect or f"https://{slug}.example.fr/cb"],
                   "confidential": confidential}}
    if status:
        spec["status"] = status
    return spec


def load(app, specs: list[dict[str, Any]]) -> operators.ImportReport:
    with app.app_context():
        session = get_session()
        report = operators.import_catalogue(session, specs)
        session.commit()
        return report


def service_id(app, slug: str) -> int:
    with app.app_context():
        return operators.find_service(get_session(), slug).id


def patient_session(app, client, **kwargs: Any) -> tuple[int, dict[str, str]]:
    created = create_patient(app, **kwargs)
    return created.patient_id, bearer(activate(client, created)["access_token"])


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def authorize(client, headers: dict[str, str], client_id: str, scopes: list[str], *, ticked: list[str] | None = None,
              challenge: str | None = None, redirect_uri: str | None = None, state: str = "xyz"
              ) -> tuple[str, str]:
    """The app's side: the patient ticks permissions; returns (code, verifier)."""
    verifier, made = pkce()
    params = {"response_type": "code", "client_id": client_id, "scope": " ".join(scopes), "state": state,
              "code_challenge": challenge or made, "code_challenge_method": "S256"}
    if redirect_uri:
        params["redirect_uri"] = redirect_uri
    r = client.post("/api/v1/catalog/oauth/authorize", query_string=params,
                    json={"permissions": ticked if ticked is not None else scopes}, headers=headers)
    assert r.status_code == 200, r.get_json()
    query = parse_qs(urlsplit(r.get_json()["redirect_to"]).query)
    assert query["state"] == [state]
    return query["code"][0], verifier


def exchange(client, client_id: str, code: str, verifier: str, *, redirect_uri: str, secret: str | None = None):
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
            "redirect_uri": redirect_uri}
    headers = {}
    if secret:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    else:
        form["client_id"] = client_id
    return client.post("/oauth/token", data=form, headers=headers)
