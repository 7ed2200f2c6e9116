"""Every error is application/problem+json with a French detail (English on request)."""
import re

import pytest
from flask import Flask

from backend.db import get_db
from tests.access_matrix import assert_every_route_declares_its_access_policy
from tests.conftest import make_app
from tests.helpers import assert_problem


def test_404(client):
    body = assert_problem(client.get("/api/v1/nothing-here"), 404, "not_found")
    assert "n'existe pas" in body["detail"]


def test_404_in_english(client):
    body = assert_problem(client.get("/api/v1/nothing-here", headers={"Accept-Language": "en-GB,en;q=0.9"}), 404)
    assert body["detail"] == "The requested resource does not exist."


def test_405_names_allowed_methods(client):
    response = client.delete("/api/v1/auth/login")
    assert_problem(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_413_body_too_large(client):
    response = client.post("/api/v1/auth/login", data=b"{" + b" " * (13 * 1024 * 1024) + b"}",
                           content_type="application/json")
    assert_problem(response, 413, "payload_too_large")


def test_415_not_json(client):
    assert_problem(client.post("/api/v1/auth/login", data="nir=1", content_type="text/plain"), 415,
                   "unsupported_media_type")


def test_400_broken_json(client):
    assert_problem(client.post("/api/v1/auth/login", data="{nir:", content_type="application/json"), 400)


def test_422_lists_fields(client):
    body = assert_problem(client.post("/api/v1/auth/login", json={"password": "x", "extra": 1}), 422,
                          "invalid_request")
    fields = {e["field"] for e in body["errors"]}
    assert {"nir", "extra"} <= fields


def test_500_is_a_problem_and_hides_the_cause(database_url, caplog):
    app: Flask = make_app(database_url)

    @app.get("/api/v1/explode")
    def explode():
        raise RuntimeError("secret internal detail 284076322001001")

    explode._carnet_auth = "public"
    try:
        body = assert_problem(app.test_client().get("/api/v1/explode"), 500, "internal_error")
        assert "secret" not in body["detail"]
        assert "284076322001001" not in caplog.text
    finally:
        get_db(app).engine.dispose()


def test_security_headers(client):
    response = client.get("/api/health")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


def test_openapi_describes_every_api_route_with_schemas(app, client):
    spec = client.get("/api/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    documented = set(spec["paths"])
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            path = re.sub(r"<(?:[a-z]+:)?(\w+)>", r"{\1}", rule.rule)
            assert path in documented, f"{rule.rule} is missing from the OpenAPI document"
    login = spec["paths"]["/api/v1/auth/login"]["post"]
    assert "requestBody" in login and "200" in login["responses"]


def test_every_route_declares_its_access_policy(app):
    """A route added without saying who may call it fails the suite."""
    assert_every_route_declares_its_access_policy(app)


@pytest.mark.parametrize("path", ["/api/v1/me", "/api/v1/home", "/api/v1/account/devices"])
def test_health_data_needs_a_session(client, path):
    assert_problem(client.get(path), 401, "unauthorized")
    assert_problem(client.get(path, headers={"Authorization": "Bearer forged"}), 401)
