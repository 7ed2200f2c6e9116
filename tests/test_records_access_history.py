"""The access history: who, when, what, why and the emergency reason, read from the audit trail; filters,
cursor pagination, CSV and PDF downloads; nothing of another patient, nothing of a hidden document."""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zlib

import pytest
from sqlalchemy import select

from backend.audit import service as audit
from backend.audit.models import AuditEntry
from backend.records.access import consents
from backend.records.access.authorize import AccessRefused, authorize
from backend.records.access.policy import Actor, Purpose
from tests.helpers import NIR_LOUIS, activate, assert_problem, bearer, create_patient
from tests.world import make_doc, make_pro

URL = "/api/v1/record/history"
MONDAY = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.timezone.utc)   # 11:00 in Paris


@pytest.fixture
def setting(app, client, db):
    """Camille's record after a few days: her own actions, a doctor's reads, a refusal, emergencies."""
    owner = create_patient(app, given="Camille", family="Martin")
    headers = bearer(activate(client, owner)["access_token"])
    pid = owner.patient_id
    curie = make_pro(db, 1, "Curie", "Marie")[0]
    stranger = make_pro(db, 2, "Inconnu", "Ivan", profession="60")[0]
    urgentist = make_pro(db, 3, "Urgence", "Ugo")[0]
    report = make_doc(app, db, pid, "report", category="BIOLOGIE")
    hidden = make_doc(app, db, pid, "hidden", category="RADIO_SC", invisible=True)
    consents.grant(db, pid, curie.id, now=MONDAY)
    db.commit()
    actor = Actor.of_professional
    authorize(db, actor(curie), pid, "document.read", details={"document_id": report.id, "category": "BIOLOGIE"},
              now=MONDAY + dt.timedelta(hours=1))
    authorize(db, actor(curie), pid, "document.read", details={"document_id": hidden.id, "category": "RADIO_SC"},
              now=MONDAY + dt.timedelta(hours=2))
    with pytest.raises(AccessRefused):
        authorize(db, actor(stranger), pid, "document.search", now=MONDAY + dt.timedelta(days=1))
    authorize(db, actor(urgentist), pid, "document.search", purpose=Purpose.BTG,
              reason="=HYPERLINK(\"http://x\") inconscient", now=MONDAY + dt.timedelta(days=2))
    audit.record(db, actor_type="service", actor_id="service:7", action="record.read", patient_id=pid,
                 details={"count": 3}, at=MONDAY + dt.timedelta(days=3))
    db.commit()
    return {"id": pid, "headers": headers, "curie": curie, "report": report, "hidden": hidden,
            "urgentist": urgentist, "stranger": stranger}


def _all(client, headers, **params):
    items, cursor = [], None
    while True:
        r = client.get(URL, query_string={**params, **({"cursor": cursor} if cursor else {})}, headers=headers)
        assert r.status_code == 200, r.get_json()
        body = r.get_json()
        items += body["items"]
        if not (cursor := body["next_cursor"]):
            return items


def test_history_says_who_when_what_why(app, client, setting):
    items = client.get(URL, headers=setting["headers"]).get_json()["items"]
    ids = [i["id"] for i in items]
    assert ids == sorted(ids, reverse=True)
    service, emergency, refused, hidden_read, read = items[:5]
    assert read["actor"] == {"kind": "professional", "name": "Marie CURIE", "profession": "Médecin",
                             "rpps": setting["curie"].rpps}
    assert read["label"] == "Consultation d'un document" and read["outcome"] == "granted"
    assert read["reason"] == "consent" and read["reason_label"] == "Autorisé par vous"
    assert read["purpose_label"] == "Soins" and read["emergency"] is False
    assert read["document"] == {"id": setting["report"].id, "category": "BIOLOGIE", "category_label": "Biologie"}
    # a document still hidden from the patient is never named, but the access is shown
    assert hidden_read["document"] is None and hidden_read["actor"]["name"] == "Marie CURIE"
    assert refused["outcome"] == "refused" and refused["reason_label"] == "Refusé : sans votre autorisation"
    assert refused["actor"]["profession"] == "Infirmier"
    assert emergency["emergency"] is True and emergency["purpose_label"] == "Urgence (bris de glace)"
    assert emergency["emergency_reason"].endswith("inconscient")
    assert service["actor"] == {"kind": "service", "name": "Service numérique connecté", "profession": None,
                                "rpps": None}
    assert service["count"] == 3
    mine = [i for i in items if i["action"] == "access.consent_granted"]
    assert mine and mine[0]["actor"]["name"] == "Vous" and mine[0]["label"] == "Autorisation donnée à un professionnel"
    english = client.get(URL, headers={**setting["headers"], "Accept-Language": "en"}).get_json()["items"]
    assert english[4]["label"] == "Document read" and english[4]["reason_label"] == "Authorised by you"


def test_history_filters(app, client, setting):
    headers = setting["headers"]
    pros = _all(client, headers, actor="professional")
    assert len(pros) == 4 and {i["actor"]["kind"] for i in pros} == {"professional"}
    both = _all(client, headers, actor=["professional", "service"])
    assert len(both) == 5
    docs = _all(client, headers, action="document")
    assert {i["action"] for i in docs} == {"document.read", "document.search", "document.search.refused"}
    assert [i["action"] for i in _all(client, headers, action="document.read")] == ["document.read"] * 2
    assert [i["action"] for i in _all(client, headers, action="access")] == ["access.consent_granted"]
    emergencies = _all(client, headers, emergency="true")
    assert [i["actor"]["name"] for i in emergencies] == ["Ugo URGENCE"]
    # days as lived in Paris, both included
    tuesday = _all(client, headers, since="2026-03-03", until="2026-03-03")
    assert [i["action"] for i in tuesday] == ["document.search.refused"]
    assert len(_all(client, headers, since="2026-03-03", until="2026-03-31")) == 3
    assert len(_all(client, headers, until="2026-03-02", actor="professional")) == 2
    assert_problem(client.get(URL, query_string={"since": "2026-03-05", "until": "2026-03-01"}, headers=headers),
                   422, "history_invalid_range")
    assert_problem(client.get(URL, query_string={"actor": "alien"}, headers=headers), 422)
    assert_problem(client.get(URL, query_string={"action": "doc%"}, headers=headers), 422)
    assert_problem(client.get(URL, query_string={"cursor": "forged"}, headers=headers), 422)


def test_history_is_cursor_paginated_in_a_fixed_number_of_queries(app, client, db, setting, count_queries):
    curie = setting["curie"]
    for i in range(25):
        authorize(db, Actor.of_professional(curie), setting["id"], "document.read",
                  details={"document_id": setting["report"].id}, now=MONDAY + dt.timedelta(days=4, minutes=i))
    db.commit()
    client.get(URL, headers=setting["headers"])  # the session's first request also touches the token
    counts, seen, cursor = [], [], None
    while True:
        start = count_queries.count
        r = client.get(URL, query_string={"limit": 10, **({"cursor": cursor} if cursor else {})},
                       headers=setting["headers"])
        counts.append(count_queries.count - start)
        body = r.get_json()
        seen += [i["id"] for i in body["items"]]
        if not (cursor := body["next_cursor"]):
            break
    total = len(db.scalars(select(AuditEntry.seq).where(AuditEntry.patient_id == setting["id"])).all())
    assert len(seen) == len(set(seen)) == total and seen == sorted(seen, reverse=True)
    assert len(set(counts[:-1])) == 1 and max(counts) <= counts[0], counts


def test_another_patients_entries_never_appear(app, client, db, setting):
    other = create_patient(app, NIR_LOUIS, "1990-02-01", given="Louis", family="Autre")
    other_headers = bearer(activate(client, other)["access_token"])
    authorize(db, Actor.of_professional(setting["curie"]), other.patient_id, "document.search",
              purpose=Purpose.BTG, reason="AUTRE-PATIENT-MOTIF")
    db.commit()
    mine = _all(client, setting["headers"])
    theirs = _all(client, other_headers)
    assert not {i["id"] for i in mine} & {i["id"] for i in theirs}
    assert "AUTRE-PATIENT-MOTIF" not in str(mine) and "Camille" not in str(theirs)
    assert [i["emergency_reason"] for i in theirs if i["emergency"]] == ["AUTRE-PATIENT-MOTIF"]
    for fmt in ("csv", "pdf"):
        r = client.get(f"{URL}/export", query_string={"format": fmt}, headers=setting["headers"])
        assert b"AUTRE-PATIENT-MOTIF" not in r.get_data()


def test_csv_download(app, client, db, setting):
    r = client.get(f"{URL}/export", query_string={"format": "csv"}, headers=setting["headers"])
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert r.headers["Content-Disposition"].startswith('attachment; filename="historique-acces-')
    rows = list(csv.reader(io.StringIO(r.get_data().decode("utf-8-sig")), delimiter=";"))
    assert rows[0] == ["Date", "Qui", "Profession", "Quoi", "Résultat", "Pourquoi", "Cadre", "Motif d'urgence",
                       "Document"]
    api = _all(client, setting["headers"])
    # the export itself is traced after the file is made
    assert len(rows) - 1 == len(api) - 1
    by_who = {row[1]: row for row in rows[1:]}
    assert by_who["Marie CURIE"][2] == "Médecin"
    emergency = by_who["Ugo URGENCE"]
    assert emergency[7].startswith("'=HYPERLINK"), "a formula typed by a professional must not run in a spreadsheet"
    assert re.fullmatch(r"\d{2}/\d{2}/2026 \d{2}:\d{2}:\d{2}", emergency[0])
    assert emergency[0] == "04/03/2026 11:00:00"  # Paris time
    read = next(row for row in rows[1:] if row[3] == "Consultation d'un document" and row[8])
    assert read[8] == f"n° {setting['report'].id} (Biologie)"
    assert all(row[8] != f"n° {setting['hidden'].id} (Imagerie médicale)" for row in rows)
    only_emergencies = client.get(f"{URL}/export", query_string={"format": "csv", "emergency": "true"},
                                  headers=setting["headers"]).get_data().decode("utf-8-sig")
    assert len(list(csv.reader(io.StringIO(only_emergencies), delimiter=";"))) == 2
    db.expire_all()
    exported = db.scalars(select(AuditEntry).where(AuditEntry.action == "history.export")).all()
    assert len(exported) == 2 and exported[0].actor_type == "patient"


def _pdf_text(data: bytes) -> bytes:
    """The page contents of a PDF made by fpdf2 (zlib-compressed streams)."""
    out = []
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            out.append(zlib.decompress(stream))
        except zlib.error:
            out.append(stream)
    return b"\n".join(out)


def test_pdf_download(app, client, setting):
    r = client.get(f"{URL}/export", query_string={"format": "pdf"}, headers=setting["headers"])
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    data = r.get_data()
    assert data.startswith(b"%PDF") and data.rstrip().endswith(b"%%EOF")
    assert re.search(r'filename="historique-acces-[^"]*\.pdf"', r.headers["Content-Disposition"])
    text = _pdf_text(data)
    assert "Historique des accès".encode("cp1252") in text and b"Marie CURIE" in text and b"Motif d'urgence" in text
    english = _pdf_text(client.get(f"{URL}/export", query_string={"format": "pdf"},
                                   headers={**setting["headers"], "Accept-Language": "en"}).get_data())
    assert b"Access history of your record" in english and b"Emergency reason" in english
    empty = client.get(f"{URL}/export", query_string={"format": "pdf", "since": "2030-01-01"},
                       headers=setting["headers"]).get_data()
    assert b"Aucune entr" in _pdf_text(empty)


def test_export_is_bounded(app, client, setting, monkeypatch):
    monkeypatch.setitem(app.config, "HISTORY_EXPORT_MAX_ROWS", 3)
    body = assert_problem(client.get(f"{URL}/export", headers=setting["headers"]), 422, "history_export_too_large")
    assert "réduisez la période" in body["detail"]
    r = client.get(f"{URL}/export", query_string={"emergency": "true"}, headers=setting["headers"])
    assert r.status_code == 200
    assert_problem(client.get(f"{URL}/export", query_string={"format": "xls"}, headers=setting["headers"]), 422)
    assert_problem(client.get(f"{URL}/export"), 401)
