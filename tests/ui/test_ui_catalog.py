"""The catalogue of services in the real app, against a live backend, under Xvfb: search and filters,
a service's page, the consent sheet (nothing ticked in advance), connected services, disconnecting,
and a service's OAuth authorization request answered from the consent sheet."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from mobile.screens.catalog_common import PermissionRow, ServiceRow
from tests.ui.journey_support import shot

pytestmark = pytest.mark.ui


def rows(container, kind):
    return [w for w in reversed(container.children) if isinstance(w, kind)]


@pytest.fixture
def signed_in(ui, enrolled_patient, live_backend, totp_code):
    live_backend.carnet("catalog", "seed")
    client = ui.app.client
    client.login(enrolled_patient.nir, enrolled_patient.password)
    client.verify_otp(totp_code(enrolled_patient))
    ui.app.signed_in = True
    ui.app.given_name = enrolled_patient.given_name
    return enrolled_patient


def test_browse_connect_review_disconnect_and_authorize(ui, signed_in, live_backend):
    catalog = ui.app.show("catalog")
    ui.wait_for_screen("catalog")
    ui.wait_until(lambda: catalog.loaded and rows(catalog.ids.results, ServiceRow), "the catalogue is listed")
    ui.settle()
    listed = [r.name for r in rows(catalog.ids.results, ServiceRow)]
    assert listed == sorted(listed, key=lambda n: n.lower().replace("œ", "oe").replace("é", "e"))
    assert "Ordonnance Express" not in listed  # suspended: out of the catalogue
    shot(ui, "catalog-01-list")

    # search without accents finds the accented names; a theme filter narrows
    ui.type(catalog.ids.query, "vaccin")
    ui.tap(catalog.ids.search)
    ui.wait_until(lambda: any(r.name == "Rappel Vaccins" for r in rows(catalog.ids.results, ServiceRow)),
                  "the search finds the vaccination service")
    ui.settle()
    shot(ui, "catalog-02-search")
    ui.type(catalog.ids.query, "")
    catalog.ids.theme_filter.text = "Maladies chroniques"
    ui.wait_until(lambda: any(r.name == "Glycémie Facile" for r in rows(catalog.ids.results, ServiceRow))
                  and not any(r.name == "Rappel Vaccins" for r in rows(catalog.ids.results, ServiceRow)),
                  "the theme filter applies")
    ui.settle()
    shot(ui, "catalog-03-theme")

    # the service's page, then the consent sheet: nothing ticked, accept disabled until a tick
    target = next(r for r in rows(catalog.ids.results, ServiceRow) if r.name == "Glycémie Facile")
    ui.tap(target)
    detail = ui.wait_for_screen("catalog_service")
    ui.wait_until(lambda: detail.loaded and detail.service.get("name") == "Glycémie Facile", "the page is shown")
    ui.settle()
    assert detail.ids.status.text == "Non connecté"
    shot(ui, "catalog-04-detail")
    ui.tap(detail.ids.connect)
    sheet = ui.wait_for_screen("catalog_consent")
    permissions = rows(sheet.ids.sheet, PermissionRow)
    assert len(permissions) == 5 and not any(p.ticked for p in permissions)
    assert sheet.ids.accept.disabled
    ui.tap(permissions[0])
    ui.tap(permissions[1])
    assert sheet.ticked() == ["measures.glucose.read", "measures.glucose.write"]
    shot(ui, "catalog-05-consent")
    ui.tap(sheet.ids.accept)
    ui.wait_for_screen("catalog_service")
    ui.wait_until(lambda: detail.state == "active", "the service is connected")
    ui.settle()
    assert "Connecté" in detail.ids.status.text and "Glycémie Facile est connecté" in detail.notice
    shot(ui, "catalog-06-connected")

    # connected services
    ui.app.show("catalog_connections")
    connections = ui.wait_for_screen("catalog_connections")
    ui.wait_until(lambda: connections.loaded and connections.count == 1, "the connection is listed")
    ui.settle()
    row = rows(connections.ids.connected, ServiceRow)[0]
    assert "Lire vos mesures : glycémie" in row.summary and "biologie" not in row.summary.lower()
    shot(ui, "catalog-07-connections")

    # disconnect, with a confirmation
    ui.tap(row)
    ui.wait_for_screen("catalog_service")
    ui.wait_until(lambda: detail.state == "active", "the page is shown")
    ui.tap(detail.ids.ask_revoke)
    shot(ui, "catalog-08-confirm-disconnect")
    ui.tap(detail.ids.confirm_revoke)
    ui.wait_until(lambda: detail.state == "revoked", "the service is disconnected")
    ui.settle()
    shot(ui, "catalog-09-disconnected")

    # a service's app asks for access (OAuth + PKCE): the same sheet, the decision goes back to it
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    link = "carnet://authorize?" + urlencode({
        "response_type": "code", "client_id": "tension-suivie", "state": "t1",
        "scope": "measures.blood_pressure.read measures.blood_pressure.write", "code_challenge": challenge,
        "code_challenge_method": "S256", "redirect_uri": "fr.example.tensionsuivie:/callback"})
    ui.app.show("catalog_consent")
    sheet.open_request(link)
    ui.wait_until(lambda: sheet.oauth and len(rows(sheet.ids.sheet, PermissionRow)) == 2, "the request is shown")
    ui.settle()
    assert not any(p.ticked for p in rows(sheet.ids.sheet, PermissionRow))
    ui.tap(rows(sheet.ids.sheet, PermissionRow)[0])
    shot(ui, "catalog-10-oauth-consent")
    ui.tap(sheet.ids.accept)
    ui.wait_until(lambda: sheet.done, "the decision is sent")
    ui.settle()
    back = urlsplit(sheet.redirect_to)
    assert back.scheme == "fr.example.tensionsuivie" and parse_qs(back.query)["state"] == ["t1"]
    shot(ui, "catalog-11-oauth-done")
    # the service's app exchanges the code (its side of PKCE) and reads what it was granted
    import requests

    token = requests.post(f"{live_backend.url}/oauth/token", timeout=10, data={
        "grant_type": "authorization_code", "code": parse_qs(back.query)["code"][0], "code_verifier": verifier,
        "client_id": "tension-suivie", "redirect_uri": "fr.example.tensionsuivie:/callback"}).json()
    assert token["scope"] == "measures.blood_pressure.read"
    r = requests.get(f"{live_backend.url}/api/service/v1/fhir/Observation", timeout=10,
                     headers={"Authorization": f"Bearer {token['access_token']}"})
    assert r.status_code == 200 and r.json()["resourceType"] == "Bundle"
