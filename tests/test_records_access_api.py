"""The patient's control over who sees what, over HTTP: directory, authorisations, blocks, médecin traitant,
administrator, emergency switches behind the password, the preview and the access page."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from backend.audit.models import AuditEntry
from backend.records.access import consents
from backend.records.access.authorize import AccessRefused, authorize
from backend.records.access.models import Block, Consent
from backend.records.models import Record
from backend.records.access.policy import Actor, Purpose, decide
from tests.helpers import NIR_LOUIS, STRONG_PASSWORD, activate, assert_problem, bearer, create_patient
from tests.world import make_doc, make_pro, rpps_of

BASE = "/api/v1/record/access"


@pytest.fixture
def owner(app, client):
    created = create_patient(app, given="Owneria", family="Zyxowner")
    tokens = activate(client, created)
    return {"id": created.patient_id, "headers": bearer(tokens["access_token"])}


@pytest.fixture
def pros(db):
    made = {
        "curie": make_pro(db, 1, "Curie", "Marie")[0],
        "pasteur": make_pro(db, 2, "Pasteur", "Louis")[0],
        "dentist": make_pro(db, 3, "Molaire", "Denis", profession="40")[0],
        "nurse": make_pro(db, 4, "Soin", "Ines", profession="60")[0],
        "samu": make_pro(db, 5, "Regule", "Sam", samu=True)[0],
    }
    db.commit()
    return made


def _reads(db, pro, patient_id, purpose=Purpose.TREAT, reason=None):
    """What the professional API does on each request: a fresh decision, traced."""
    db.expire_all()
    try:
        authorize(db, Actor.of_professional(pro), patient_id, "document.search", purpose=purpose, reason=reason)
        return True
    except AccessRefused as refused:
        return refused.decision.reason
    finally:
        db.commit()


# --- directory -------------------------------------------------------------------------------------------------

def test_directory_search_by_name_and_rpps_is_paginated(app, client, db, owner):
    for i in range(25):
        make_pro(db, 100 + i, f"Martinez{i:02d}", "Paul")
    make_pro(db, 200, "Bernard", "Martine")
    make_pro(db, 201, "Dupont", "Claire", profession="40")
    db.commit()
    seen, cursor = [], None
    while True:
        r = client.get(f"{BASE}/professionals", query_string={"q": "martin", "limit": 10, **({"cursor": cursor} if cursor else {})},
                       headers=owner["headers"])
        assert r.status_code == 200, r.get_json()
        body = r.get_json()
        seen += [p["rpps"] for p in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    # "martin" matches 25 family names and one given name, ordered by family name, each once
    assert len(seen) == 26 == len(set(seen)) and seen[0] == rpps_of(200)
    # several words must all match (given + family)
    r = client.get(f"{BASE}/professionals", query_string={"q": "claire dupont"}, headers=owner["headers"])
    assert [p["name"] for p in r.get_json()["items"]] == ["Claire DUPONT"]
    assert r.get_json()["items"][0]["profession"] == "Chirurgien-dentiste"
    # by RPPS: the first digits, or the 12-digit national form
    r = client.get(f"{BASE}/professionals", query_string={"q": rpps_of(201)}, headers=owner["headers"])
    assert [p["rpps"] for p in r.get_json()["items"]] == [rpps_of(201)]
    r = client.get(f"{BASE}/professionals", query_string={"q": "8" + rpps_of(200)}, headers=owner["headers"])
    assert [p["rpps"] for p in r.get_json()["items"]] == [rpps_of(200)]
    r = client.get(f"{BASE}/professionals", query_string={"q": "martin", "profession": "40"}, headers=owner["headers"])
    assert r.get_json()["items"] == []
    # LIKE wildcards are text
    assert client.get(f"{BASE}/professionals", query_string={"q": "%%"}, headers=owner["headers"]).get_json()["items"] == []
    assert_problem(client.get(f"{BASE}/professionals", query_string={"q": "a"}, headers=owner["headers"]),
                   422, "search_too_short")
    assert_problem(client.get(f"{BASE}/professionals", query_string={"q": "martin"}), 401)


def test_directory_shows_where_each_professional_stands(app, client, db, owner, pros):
    client.post(f"{BASE}/consents", json={"professional_id": pros["curie"].id}, headers=owner["headers"])
    client.post(f"{BASE}/blocks", json={"rpps": pros["pasteur"].rpps}, headers=owner["headers"])
    client.put(f"{BASE}/administrator", json={"professional_id": pros["nurse"].id}, headers=owner["headers"])
    r = client.get(f"{BASE}/professionals", query_string={"q": rpps_of(0)[:9]}, headers=owner["headers"])
    by_name = {p["family_name"]: p["standing"] for p in r.get_json()["items"]}
    assert by_name["CURIE"] == {"authorised": True, "blocked": False, "medecin_traitant": False, "administrator": False}
    assert by_name["PASTEUR"]["blocked"] is True and by_name["SOIN"]["administrator"] is True


# --- authorisations -----------------------------------------------------------------------------------------------

def test_authorise_then_revoke_takes_effect_on_the_next_request(app, client, db, owner, pros):
    curie = pros["curie"]
    assert _reads(db, curie, owner["id"]) == "no_consent"
    r = client.post(f"{BASE}/consents", json={"professional_id": curie.id}, headers=owner["headers"])
    assert r.status_code == 201 and r.get_json()["professional"]["rpps"] == curie.rpps
    again = client.post(f"{BASE}/consents", json={"professional_id": curie.id}, headers=owner["headers"])
    assert again.status_code == 200 and again.get_json()["id"] == r.get_json()["id"]
    assert _reads(db, curie, owner["id"]) is True
    listed = client.get(f"{BASE}/consents", headers=owner["headers"]).get_json()
    assert [c["professional"]["id"] for c in listed["items"]] == [curie.id]

    assert client.delete(f"{BASE}/consents/{curie.id}", headers=owner["headers"]).status_code == 204
    assert _reads(db, curie, owner["id"]) == "no_consent"
    assert_problem(client.delete(f"{BASE}/consents/{curie.id}", headers=owner["headers"]), 404, "consent_not_found")
    assert_problem(client.post(f"{BASE}/consents", json={"professional_id": 999999}, headers=owner["headers"]),
                   404, "professional_not_found")
    assert_problem(client.post(f"{BASE}/consents", json={"professional_id": "x"}, headers=owner["headers"]), 422)
    # granting again after a revocation is a new authorisation; the old one stays as history
    assert client.post(f"{BASE}/consents", json={"professional_id": curie.id}, headers=owner["headers"]).status_code == 201
    assert db.scalar(select(func.count()).select_from(Consent).where(Consent.patient_id == owner["id"])) == 2
    actions = list(db.scalars(select(AuditEntry.action).where(AuditEntry.patient_id == owner["id"],
                                                              AuditEntry.action.like("access.%"))))
    assert actions == ["access.consent_granted", "access.consent_revoked", "access.consent_granted"]


def test_consents_list_paginates(app, client, db, owner):
    ids = [make_pro(db, 300 + i, f"Pro{i}")[0].id for i in range(7)]
    db.commit()
    for pid in ids:
        client.post(f"{BASE}/consents", json={"professional_id": pid}, headers=owner["headers"])
    seen, cursor = [], None
    while True:
        body = client.get(f"{BASE}/consents", query_string={"limit": 3, **({"cursor": cursor} if cursor else {})},
                          headers=owner["headers"]).get_json()
        seen += [c["professional"]["id"] for c in body["items"]]
        if not (cursor := body["next_cursor"]):
            break
    assert seen == list(reversed(ids))


# --- blocks --------------------------------------------------------------------------------------------------------

def test_block_beats_consent_and_emergency_and_unblock_restores(app, client, db, owner, pros):
    curie, samu = pros["curie"], pros["samu"]
    client.post(f"{BASE}/consents", json={"professional_id": curie.id}, headers=owner["headers"])
    client.put(f"{BASE}/medecin-traitant", json={"professional_id": curie.id}, headers=owner["headers"])
    assert _reads(db, curie, owner["id"]) is True
    r = client.post(f"{BASE}/blocks", json={"rpps": curie.rpps}, headers=owner["headers"])
    assert r.status_code == 201 and r.get_json()["professional"]["id"] == curie.id
    assert client.post(f"{BASE}/blocks", json={"rpps": curie.rpps}, headers=owner["headers"]).status_code == 200
    assert _reads(db, curie, owner["id"]) == "blocked"
    assert _reads(db, curie, owner["id"], Purpose.BTG, "arrêt cardiaque") == "blocked"
    client.post(f"{BASE}/blocks", json={"rpps": samu.rpps}, headers=owner["headers"])
    assert _reads(db, samu, owner["id"], Purpose.ETREAT, "appel au 15") == "blocked"

    assert client.delete(f"{BASE}/blocks/{curie.rpps}", headers=owner["headers"]).status_code == 204
    assert _reads(db, curie, owner["id"]) is True  # consent and médecin traitant were kept
    assert_problem(client.delete(f"{BASE}/blocks/{curie.rpps}", headers=owner["headers"]), 404, "block_not_found")


def test_block_an_rpps_unknown_to_the_directory(app, client, db, owner):
    r = client.post(f"{BASE}/blocks", json={"rpps": "810099988877"}, headers=owner["headers"])
    assert r.status_code == 201
    assert r.get_json()["rpps"] == "10099988877" and r.get_json()["professional"] is None
    # the professional who later joins the directory with that RPPS is blocked from the start
    late, _ = make_pro(db, 99_988_877, "Tardif")
    db.commit()
    assert late.rpps == "10099988877"
    assert decide(db, Actor.of_professional(late), owner["id"]).reason == "blocked"
    blocks = client.get(f"{BASE}/blocks", headers=owner["headers"]).get_json()["items"]
    assert [b["rpps"] for b in blocks] == ["10099988877"] and blocks[0]["professional"]["family_name"] == "TARDIF"
    body = assert_problem(client.post(f"{BASE}/blocks", json={"rpps": "12AB"}, headers=owner["headers"]),
                          422, "invalid_rpps")
    assert "chiffres" in body["detail"]
    assert_problem(client.delete(f"{BASE}/blocks/123", headers=owner["headers"]), 422, "invalid_rpps")


def test_a_blocked_professional_cannot_be_authorised_or_named(app, client, db, owner, pros):
    client.post(f"{BASE}/blocks", json={"rpps": pros["curie"].rpps}, headers=owner["headers"])
    for path, body in ((f"{BASE}/consents", {"professional_id": pros["curie"].id}),):
        assert_problem(client.post(path, json=body, headers=owner["headers"]), 409, "professional_blocked")
    for role in ("medecin-traitant", "administrator"):
        assert_problem(client.put(f"{BASE}/{role}", json={"professional_id": pros["curie"].id},
                                  headers=owner["headers"]), 409, "professional_blocked")


def test_the_administrator_may_block_others(app, db, owner, pros):
    admin, other = pros["nurse"], pros["pasteur"]
    consents.set_administrator(db, owner["id"], admin.id)
    consents.block(db, owner["id"], other.rpps, by=Actor.of_professional(admin))
    db.commit()
    assert decide(db, Actor.of_professional(other), owner["id"]).reason == "blocked"
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "access.blocked")).one()
    assert (entry.actor_type, entry.actor_id) == ("professional", admin.rpps)
    with pytest.raises(Exception) as refused:
        consents.block(db, owner["id"], admin.rpps, by=Actor.of_professional(other))
    assert refused.value.code == "not_record_administrator"


# --- médecin traitant and administrator -----------------------------------------------------------------------------

def test_medecin_traitant_has_access_by_default_and_must_be_a_doctor(app, client, db, owner, pros):
    curie, dentist = pros["curie"], pros["dentist"]
    assert_problem(client.put(f"{BASE}/medecin-traitant", json={"professional_id": dentist.id},
                              headers=owner["headers"]), 422, "medecin_traitant_not_doctor")
    r = client.put(f"{BASE}/medecin-traitant", json={"professional_id": curie.id}, headers=owner["headers"])
    assert r.status_code == 200 and r.get_json()["professional"]["standing"]["medecin_traitant"] is True
    assert decide(db, Actor.of_professional(curie), owner["id"]).reason == "medecin_traitant"
    assert client.delete(f"{BASE}/medecin-traitant", headers=owner["headers"]).status_code == 204
    assert client.delete(f"{BASE}/medecin-traitant", headers=owner["headers"]).status_code == 204  # idempotent
    db.expire_all()
    assert decide(db, Actor.of_professional(curie), owner["id"]).reason == "no_consent"
    actions = list(db.scalars(select(AuditEntry.action).where(AuditEntry.action.like("access.medecin%"))))
    assert actions == ["access.medecin_traitant_set", "access.medecin_traitant_removed"]


def test_the_administrator_sees_masked_documents(app, client, db, owner, pros):
    masked = make_doc(app, db, owner["id"], "masked", masked=True, author=pros["pasteur"])
    db.commit()
    client.post(f"{BASE}/consents", json={"professional_id": pros["curie"].id}, headers=owner["headers"])
    scope = decide(db, Actor.of_professional(pros["curie"]), owner["id"]).require()
    assert not scope.permits(masked)
    r = client.put(f"{BASE}/administrator", json={"professional_id": pros["curie"].id}, headers=owner["headers"])
    assert r.status_code == 200
    db.expire_all()
    assert decide(db, Actor.of_professional(pros["curie"]), owner["id"]).require().permits(masked)
    assert_problem(client.put(f"{BASE}/administrator", json={"professional_id": 424242}, headers=owner["headers"]),
                   404, "professional_not_found")


# --- emergency switches -----------------------------------------------------------------------------------------------

def test_emergency_switches_need_the_password(app, client, db, owner, pros):
    url = f"{BASE}/emergency"
    assert_problem(client.put(url, json={"samu": False}, headers=owner["headers"]), 422)  # no password
    assert_problem(client.put(url, json={"password": STRONG_PASSWORD}, headers=owner["headers"]),
                   422, "emergency_settings_empty")
    assert_problem(client.put(url, json={"password": "wrong", "btg": False}, headers=owner["headers"]),
                   403, "wrong_password")
    db.expire_all()
    assert db.scalar(select(Record.emergency_btg).where(Record.patient_id == owner["id"])) is True
    r = client.put(url, json={"password": STRONG_PASSWORD, "btg": False, "masked": True}, headers=owner["headers"])
    assert r.status_code == 200 and r.get_json() == {"samu": True, "btg": False, "masked": True}
    assert _reads(db, pros["curie"], owner["id"], Purpose.BTG, "malaise") == "emergency_disabled"
    details = db.scalars(select(AuditEntry.details).where(
        AuditEntry.action == "access.emergency_settings_changed")).one()
    assert '"btg":false' in details and '"masked":true' in details and "password" not in details
    page = client.get(BASE, headers=owner["headers"]).get_json()
    assert page["switches"] == {"samu": True, "btg": False, "masked": True}


def test_wrong_passwords_are_throttled(app, client, owner):
    for _ in range(5):
        assert_problem(client.put(f"{BASE}/emergency", json={"password": "nope", "samu": False},
                                  headers=owner["headers"]), 403, "wrong_password")
    r = client.put(f"{BASE}/emergency", json={"password": STRONG_PASSWORD, "samu": False}, headers=owner["headers"])
    assert_problem(r, 429, "too_many_requests")
    assert int(r.headers["Retry-After"]) > 0


# --- what can this professional see ------------------------------------------------------------------------------------

def test_preview_counts_what_the_policy_lets_them_see(app, client, db, owner, pros):
    pid = owner["id"]
    make_doc(app, db, pid, "report", category="CPT_REND")
    make_doc(app, db, pid, "lab", category="BIOLOGIE")
    make_doc(app, db, pid, "lab2", category="BIOLOGIE", masked=True, author=pros["pasteur"])
    make_doc(app, db, pid, "directives", category="DIR_ANT")
    make_doc(app, db, pid, "hidden", category="BIOLOGIE", invisible=True)           # not released: never counted
    make_doc(app, db, pid, "shown", category="BIOLOGIE", invisible=True, released=True)
    make_doc(app, db, pid, "gone", category="CPT_REND", deleted=True)
    db.commit()
    client.post(f"{BASE}/consents", json={"professional_id": pros["dentist"].id}, headers=owner["headers"])

    body = client.get(f"{BASE}/professionals/{pros['dentist'].id}/preview", headers=owner["headers"]).get_json()
    assert body["allowed"] is True and body["reason"] == "consent" and body["basis"] == "current"
    counts = {c["category"]: (c["visible"], c["total"]) for c in body["categories"]}
    # the dentist does not see advance directives nor the masked result; the patient's totals never
    # include the unreleased document (the preview must not reveal it)
    assert counts == {"BIOLOGIE": (2, 3), "CPT_REND": (1, 1), "DIR_ANT": (0, 1)}
    assert (body["visible"], body["total"]) == (3, 5)
    assert {c["label"] for c in body["categories"]} >= {"Directives anticipées", "Biologie"}

    body = client.get(f"{BASE}/professionals/{pros['curie'].id}/preview", headers=owner["headers"]).get_json()
    assert body["allowed"] is False and body["reason"] == "no_consent" and body["basis"] == "if_authorised"
    assert body["visible"] == 4  # a doctor once authorised: everything but the masked document

    client.put(f"{BASE}/administrator", json={"professional_id": pros["curie"].id}, headers=owner["headers"])
    body = client.get(f"{BASE}/professionals/{pros['curie'].id}/preview", headers=owner["headers"]).get_json()
    assert body["reason"] == "administrator" and body["visible"] == 5

    client.post(f"{BASE}/blocks", json={"rpps": pros["curie"].rpps}, headers=owner["headers"])
    body = client.get(f"{BASE}/professionals/{pros['curie'].id}/preview", headers=owner["headers"]).get_json()
    assert body["reason"] == "blocked" and body["visible"] == 0 and body["total"] == 5
    assert body["professional"]["standing"]["blocked"] is True
    assert_problem(client.get(f"{BASE}/professionals/987654/preview", headers=owner["headers"]),
                   404, "professional_not_found")


# --- the access page ---------------------------------------------------------------------------------------------------

def _access_page_queries(client, owner, count_queries):
    start = count_queries.count
    r = client.get(BASE, headers=owner["headers"])
    assert r.status_code == 200, r.get_json()
    return count_queries.count - start, r.get_json()


def test_access_page_shows_everything_in_a_fixed_number_of_queries(app, client, db, owner, pros, count_queries):
    pid = owner["id"]
    consents.grant(db, pid, pros["curie"].id)
    consents.set_medecin_traitant(db, pid, pros["curie"].id)
    consents.set_administrator(db, pid, pros["nurse"].id)
    consents.block(db, pid, "10000000999")
    make_doc(app, db, pid, "one")
    db.commit()
    authorize(db, Actor.of_professional(pros["curie"]), pid, "document.read", details={"document_id": 1})
    authorize(db, Actor.of_professional(pros["samu"]), pid, "document.search", purpose=Purpose.ETREAT,
              reason="détresse respiratoire")
    db.commit()
    _access_page_queries(client, owner, count_queries)  # the first request of a session also touches the token
    small, body = _access_page_queries(client, owner, count_queries)
    assert body["medecin_traitant"]["rpps"] == pros["curie"].rpps
    assert body["medecin_traitant"]["standing"] == {"authorised": True, "blocked": False, "medecin_traitant": True,
                                                    "administrator": False}
    assert body["administrator"]["family_name"] == "SOIN"
    assert [c["professional"]["id"] for c in body["authorised"]] == [pros["curie"].id]
    assert body["blocked"][0]["rpps"] == "10000000999" and body["blocked"][0]["professional"] is None
    assert body["switches"] == {"samu": True, "btg": True, "masked": False}
    assert [e["professional"]["id"] for e in body["emergencies"]] == [pros["samu"].id]
    assert body["emergencies"][0]["reason"] == "détresse respiratoire"
    recent = body["recent_accesses"]
    assert [r["actor"]["name"] for r in recent] == ["Sam REGULE", "Marie CURIE"]
    assert recent[0]["emergency"] is True and recent[0]["emergency_reason"] == "détresse respiratoire"

    # a much bigger record: same number of queries
    for i in range(30):
        pro = make_pro(db, 400 + i, f"Grand{i}")[0]
        consents.grant(db, pid, pro.id)
        consents.block(db, pid, rpps_of(500 + i))
        make_doc(app, db, pid, f"doc{i}")
        authorize(db, Actor.of_professional(pro), pid, "document.read", details={"document_id": i + 1})
    db.commit()
    big, body = _access_page_queries(client, owner, count_queries)
    assert big == small, "the access page's queries grow with the record"
    assert len(body["authorised"]) == 20 and body["authorised_next_cursor"]
    rest = client.get(f"{BASE}/consents", query_string={"cursor": body["authorised_next_cursor"], "limit": 50},
                      headers=owner["headers"]).get_json()["items"]
    assert len(body["authorised"]) + len(rest) == 31
    assert len(body["recent_accesses"]) == 5
    # the médecin traitant's authorisation is no longer on the first page: still shown as authorised
    assert pros["curie"].id not in {c["professional"]["id"] for c in body["authorised"]}
    assert body["medecin_traitant"]["standing"]["authorised"] is True


def test_nothing_of_another_patient(app, client, db, owner, pros):
    other = create_patient(app, NIR_LOUIS, "1990-02-01", given="Louis", family="Autre")
    other_headers = bearer(activate(client, other)["access_token"])
    client.post(f"{BASE}/consents", json={"professional_id": pros["curie"].id}, headers=owner["headers"])
    client.post(f"{BASE}/blocks", json={"rpps": pros["pasteur"].rpps}, headers=owner["headers"])
    page = client.get(BASE, headers=other_headers).get_json()
    assert page["authorised"] == [] and page["blocked"] == [] and page["medecin_traitant"] is None
    # the other patient revoking the owner's professional only touches their own (empty) list
    assert_problem(client.delete(f"{BASE}/consents/{pros['curie'].id}", headers=other_headers), 404)
    assert_problem(client.delete(f"{BASE}/blocks/{pros['pasteur'].rpps}", headers=other_headers), 404)
    assert db.scalar(select(func.count()).select_from(Block).where(Block.removed_at.is_(None))) == 1
    assert decide(db, Actor.patient(other.patient_id), owner["id"]).reason == "other_patient"
