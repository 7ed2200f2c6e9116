"""The patient's catalogue: browsing by theme and region, French full-text search on both databases,
detail, explicit per-permission consent, connected services, renewal deadline, revocation, reports;
flat query counts; the 90-day and renewal reminders."""
from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from sqlalchemy import select

from backend.catalog import operators
from backend.notifications.jobs import run_reminders
from backend.notifications.models import Notification
from tests.catalog_support import load, service_id, service_spec
from tests.helpers import activate, assert_problem, bearer, create_patient, login

BASE = "/api/v1/catalog"


def small_catalogue() -> list[dict]:
    return [
        service_spec("carnet-vaccination", "Carnet de Vaccination", themes=["vaccination"],
                     permissions=["documents.CAR_VAC.read", "profile.vaccination.read"]),
        service_spec("journal-diabete", "Journal du Diabète", themes=["chronic_disease"],
                     description="Suivi de la glycémie au quotidien.",
                     permissions=["measures.glucose.read", "measures.glucose.write", "documents.BIOLOGIE.read"]),
        service_spec("coeur-bretagne", "Cœur Breton", themes=["chronic_disease"], regions=["53"],
                     permissions=["measures.heart_rate.write"]),
        service_spec("sommeil-reunion", "Sommeil Réunion", themes=["sleep"], regions=["04"]),
        service_spec("hors-ligne", "Application Hors Ligne", status="offline"),
        service_spec("suspendu", "Service Suspendu", status="suspended"),
    ]


@pytest.fixture
def world(app, client):
    load(app, small_catalogue())
    created = create_patient(app)
    tokens = activate(client, created)
    return {"patient_id": created.patient_id, "nir": created.nir, "secret": tokens["secret"],
            "headers": bearer(tokens["access_token"])}


def names(client, headers, **params) -> list[str]:
    r = client.get(f"{BASE}/services", query_string=params, headers=headers)
    assert r.status_code == 200, r.get_json()
    return [item["name"] for item in r.get_json()["items"]]


def test_browse_lists_what_is_in_the_catalogue_alphabetically(client, world):
    assert names(client, world["headers"]) == ["Application Hors Ligne", "Carnet de Vaccination", "Cœur Breton",
                                               "Journal du Diabète", "Sommeil Réunion"]
    r = client.get(f"{BASE}/services", headers=world["headers"])
    offline = next(i for i in r.get_json()["items"] if i["name"] == "Application Hors Ligne")
    assert offline["connectable"] is False and offline["status_label"] == "Temporairement indisponible"


def test_browse_needs_a_session(client, world):
    assert_problem(client.get(f"{BASE}/services"), 401)


def test_filter_by_theme_and_region(client, world):
    h = world["headers"]
    assert names(client, h, theme="chronic_disease") == ["Cœur Breton", "Journal du Diabète"]
    # national services are in every region; a regional one only in its own
    assert "Cœur Breton" in names(client, h, region="53")
    assert "Cœur Breton" not in names(client, h, region="04")
    assert "Sommeil Réunion" in names(client, h, region="04")
    assert "Journal du Diabète" in names(client, h, region="04")
    assert names(client, h, region="national") == ["Application Hors Ligne", "Carnet de Vaccination",
                                                   "Journal du Diabète"]
    body = assert_problem(client.get(f"{BASE}/services", query_string={"theme": "astrologie"}, headers=h), 422)
    assert body["errors"][0]["field"] == "theme" and "astrologie" in body["errors"][0]["message"]


@pytest.mark.parametrize("query, expected", [
    ("vaccin", ["Carnet de Vaccination"]),           # a prefix of the word
    ("VACCINATION", ["Carnet de Vaccination"]),
    ("DIABETE", ["Journal du Diabète"]),             # no accent, upper case
    ("diabète", ["Journal du Diabète"]),
    ("glycemie", ["Journal du Diabète"]),            # in the description
    ("coeur", ["Cœur Breton"]),                      # the œ ligature
    ("reunion sommeil", ["Sommeil Réunion"]),         # every word must match
    ("bretagne", ["Cœur Breton"]),                   # the region's name
    ("maladies chroniques", ["Cœur Breton", "Journal du Diabète"]),  # the theme's label
    ("zzz", []),
    ("\"vaccin*(", ["Carnet de Vaccination"]),      # query syntax is never interpreted
])
def test_search_is_accent_and_case_insensitive_on_both_databases(client, world, query, expected):
    assert names(client, world["headers"], q=query) == expected


def test_search_follows_catalogue_changes(app, client, world):
    assert names(client, world["headers"], q="audition") == []
    load(app, [service_spec("bien-entendre", "Bien Entendre", themes=["hearing"])])
    assert names(client, world["headers"], q="audition") == ["Bien Entendre"]
    spec = service_spec("bien-entendre", "Bien Entendre Plus", themes=["hearing"])
    load(app, [spec])
    assert names(client, world["headers"], q="plus") == ["Bien Entendre Plus"]


def test_search_combines_with_filters_and_pages(app, client, world):
    load(app, [service_spec(f"vaccin-{i:02d}", f"Vaccination {i:02d}", themes=["vaccination"]) for i in range(7)])
    h = world["headers"]
    seen, cursor = [], None
    while True:
        params = {"q": "vaccin", "theme": "vaccination", "limit": 3, **({"cursor": cursor} if cursor else {})}
        body = client.get(f"{BASE}/services", query_string=params, headers=h).get_json()
        seen += [i["name"] for i in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == ["Carnet de Vaccination"] + [f"Vaccination {i:02d}" for i in range(7)]
    assert_problem(client.get(f"{BASE}/services", query_string={"cursor": "forged"}, headers=h), 422)


def test_catalogue_list_costs_the_same_whatever_its_size(app, client, world, count_queries):
    h = world["headers"]

    def cost(**params) -> int:
        names(client, h, **params)  # warm (the SQLite index is built once per catalogue revision)
        before = count_queries.count
        names(client, h, **params)
        return count_queries.count - before

    small = (cost(), cost(q="vaccin"), cost(theme="vaccination", region="53"))
    load(app, [service_spec(f"extra-{i:02d}", f"Vaccination extra {i:02d}", themes=["vaccination"], regions=["53"])
               for i in range(25)])
    big = (cost(), cost(q="vaccin"), cost(theme="vaccination", region="53"))
    assert small == big
    assert max(big) <= 14


def test_detail_shows_permissions_and_why(client, world, app):
    sid = service_id(app, "journal-diabete")
    body = client.get(f"{BASE}/services/{sid}", headers=world["headers"]).get_json()
    assert body["privacy_policy_url"] == "https://journal-diabete.example.fr/confidentialite"
    assert [p["scope"] for p in body["permissions"]] == ["measures.glucose.read", "measures.glucose.write",
                                                         "documents.BIOLOGIE.read"]
    assert body["permissions"][1]["label"] == "Ajouter des mesures : glycémie"
    assert body["permissions"][2]["label"] == "Lire vos documents : Biologie"
    assert body["permissions"][0]["purpose"] == "Pourquoi measures.glucose.read"
    assert not any(p["granted"] for p in body["permissions"])   # nothing pre-ticked
    assert body["connection"] is None
    # out of the catalogue: not found (unless connected)
    assert_problem(client.get(f"{BASE}/services/{service_id(app, 'suspendu')}", headers=world["headers"]), 404)
    assert_problem(client.get(f"{BASE}/services/987654", headers=world["headers"]), 404)
    # identifiers past INTEGER name nothing, on PostgreSQL too (no 500)
    for huge in (2**31, 4294967295, 17683664415928632):
        assert_problem(client.get(f"{BASE}/services/{huge}", headers=world["headers"]), 404)
        assert_problem(client.put(f"{BASE}/services/{huge}/connection",
                                  json={"permissions": ["measures.weight.read"]}, headers=world["headers"]), 404)
        assert_problem(client.delete(f"{BASE}/connections/{huge}", headers=world["headers"]), 404)
        assert_problem(client.post(f"{BASE}/connections/{huge}/renewal", headers=world["headers"]), 404)
        assert_problem(client.post(f"{BASE}/services/{huge}/reports", json={"reason": "other"},
                                   headers=world["headers"]), 404)


def test_connect_with_explicit_consent_then_revoke(app, client, world):
    h = world["headers"]
    sid = service_id(app, "journal-diabete")
    # nothing ticked: refused; a permission the service does not ask: refused
    assert_problem(client.put(f"{BASE}/services/{sid}/connection", json={"permissions": []}, headers=h), 422,
                   "catalog_no_permission")
    assert_problem(client.put(f"{BASE}/services/{sid}/connection", json={"permissions": ["documents.REMB.read"]},
                              headers=h), 422, "catalog_permission_not_asked")
    r = client.put(f"{BASE}/services/{sid}/connection", json={"permissions": ["measures.glucose.read"]}, headers=h)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["connection"]["state"] == "active"
    assert {p["scope"]: p["granted"] for p in body["permissions"]} == {
        "measures.glucose.read": True, "measures.glucose.write": False, "documents.BIOLOGIE.read": False}
    listed = client.get(f"{BASE}/connections", headers=h).get_json()
    assert [i["service"]["name"] for i in listed["items"]] == ["Journal du Diabète"]
    assert listed["items"][0]["permissions"][0]["label"] == "Lire vos mesures : glycémie"
    assert listed["consent_days"] == 365
    assert client.delete(f"{BASE}/connections/{sid}", headers=h).status_code == 204
    assert client.get(f"{BASE}/connections", headers=h).get_json()["items"] == []
    assert_problem(client.delete(f"{BASE}/connections/{sid}", headers=h), 404, "catalog_not_connected")
    # the history shows the patient's consent and its withdrawal
    actions = [i["action"] for i in client.get("/api/v1/record/history", headers=h).get_json()["items"]]
    assert "catalog.connected" in actions and "catalog.revoked" in actions


def test_offline_and_suspended_services_take_no_new_connection(app, client, world):
    h = world["headers"]
    assert_problem(client.put(f"{BASE}/services/{service_id(app, 'hors-ligne')}/connection",
                              json={"permissions": ["measures.weight.read"]}, headers=h), 409,
                   "catalog_service_unavailable")
    assert_problem(client.put(f"{BASE}/services/{service_id(app, 'suspendu')}/connection",
                              json={"permissions": ["measures.weight.read"]}, headers=h), 404)


def test_consent_lapses_after_the_deadline_and_can_be_renewed(app, client, world):
    h = world["headers"]
    sid = service_id(app, "carnet-vaccination")
    start = dt.datetime(2026, 1, 10, 9, 0, tzinfo=dt.timezone.utc)
    with time_machine.travel(start, tick=False):
        client.put(f"{BASE}/services/{sid}/connection", json={"permissions": ["documents.CAR_VAC.read"]}, headers=h)
    with time_machine.travel(start + dt.timedelta(days=364), tick=False):
        h = bearer(login(client, world["nir"], world["secret"]))
        body = client.get(f"{BASE}/services/{sid}", headers=h).get_json()
        assert body["connection"]["state"] == "active" and body["connection"]["renewal_due"] is True
    with time_machine.travel(start + dt.timedelta(days=366), tick=False):
        h = bearer(login(client, world["nir"], world["secret"]))
        body = client.get(f"{BASE}/services/{sid}", headers=h).get_json()
        assert body["connection"]["state"] == "expired"
        assert not any(p["granted"] for p in body["permissions"])
        r = client.post(f"{BASE}/connections/{sid}/renewal", headers=h)
        assert r.status_code == 200, r.get_json()
        assert r.get_json()["connection"]["state"] == "active"
        expires = dt.datetime.fromisoformat(r.get_json()["connection"]["expires_at"])
        assert expires == start + dt.timedelta(days=366 + 365)


def test_the_consent_period_is_a_setting(database_url):
    from backend.config import ConfigError
    from backend.db import get_db
    from tests.conftest import make_app

    custom = make_app(database_url, SERVICE_CONSENT_DAYS="30")
    try:
        assert custom.extensions["carnet.catalog"].consent_days == 30
    finally:
        get_db(custom).engine.dispose()
    with pytest.raises(ConfigError):
        make_app(database_url, SERVICE_CONSENT_DAYS="0")


def test_report_a_service(app, client, world, db):
    h = world["headers"]
    sid = service_id(app, "journal-diabete")
    r = client.post(f"{BASE}/services/{sid}/reports", json={"reason": "privacy", "comment": "Publicités ciblées"},
                    headers=h)
    assert r.status_code == 201, r.get_json()
    assert_problem(client.post(f"{BASE}/services/{sid}/reports", json={"reason": "boredom"}, headers=h), 422)
    reports = operators.list_reports(db)
    assert [(x["service"], x["reason"], x["comment"]) for x in reports] == [
        ("journal-diabete", "privacy", "Publicités ciblées")]
    filters = client.get(f"{BASE}/filters", headers=h).get_json()
    assert {"code": "privacy", "label": "Utilisation de mes données"} in filters["report_reasons"]
    assert filters["regions"][0] == {"code": "national", "label": "Toute la France"}


def test_reminders_every_90_days_and_before_expiry(app, client, world, db):
    h = world["headers"]
    sid = service_id(app, "journal-diabete")
    start = dt.datetime(2026, 2, 1, 8, 0, tzinfo=dt.timezone.utc)
    settings = app.extensions["carnet.notifications"]
    with time_machine.travel(start, tick=False):
        client.put(f"{BASE}/services/{sid}/connection", json={"permissions": ["measures.glucose.read"]}, headers=h)

    def reminders(at: dt.datetime) -> list[str]:
        run_reminders(db, settings, now=at)
        db.expire_all()
        return [n.ref_type for n in db.scalars(select(Notification).where(
            Notification.patient_id == world["patient_id"], Notification.kind == "service").order_by(Notification.id))]

    assert reminders(start + dt.timedelta(days=89)) == []
    assert reminders(start + dt.timedelta(days=91)) == ["connected_services_review"]
    assert reminders(start + dt.timedelta(days=100)) == ["connected_services_review"]   # once per cycle
    assert reminders(start + dt.timedelta(days=181)) == ["connected_services_review"] * 2
    # renewal: 30 days before the deadline, once
    assert reminders(start + dt.timedelta(days=336)) == ["connected_services_review"] * 3 + ["consent_renewal"]
    assert reminders(start + dt.timedelta(days=340)).count("consent_renewal") == 1


def test_seed_catalogue_is_realistic(app, client, world):
    with app.app_context():
        from backend.db import get_session

        report = operators.import_seed(get_session())
        get_session().commit()
        assert len(report.created) >= 20
        again = operators.import_seed(get_session())
        assert again.created == [] and again.updated == [] and len(again.unchanged) == len(report.created)
    h = world["headers"]
    themes = {t["code"] for t in client.get(f"{BASE}/filters", headers=h).get_json()["themes"]}
    listed = []
    cursor = None
    while True:
        body = client.get(f"{BASE}/services", query_string={"limit": 50, **({"cursor": cursor} if cursor else {})},
                          headers=h).get_json()
        listed += body["items"]
        cursor = body["next_cursor"]
        if not cursor:
            break
    covered = {t["code"] for item in listed for t in item["themes"]}
    assert len(covered) >= 12 and covered <= themes
    assert "Rappel Vaccins" in names(client, h, q="vaccin")
