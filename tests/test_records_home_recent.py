"""The home screen's recent documents read only the recent ones (arrival or release in the last 30 days,
each half of the condition an index range on PostgreSQL), with the same answers as before."""
from __future__ import annotations

import datetime as dt

from backend.db import get_session
from backend.professionals.models import Professional
from backend.records import documents
from backend.records.models import Document
from backend.records.policy import Actor
from tests.test_records_documents import LDL_SES, REAL_DOCUMENTS, camille, deposit, make_pro, read  # noqa: F401

DAY = dt.timedelta(days=1)


def _home(client, patient) -> dict:
    r = client.get("/api/v1/home", headers=patient.headers)
    assert r.status_code == 200, r.get_json()
    return r.get_json()["records"]


def _release(app, pro_id: int, doc_id: int, at: dt.datetime) -> None:
    with app.app_context():
        session = get_session()
        documents.release_document(session, Actor.of_professional(session.get(Professional, pro_id)), doc_id, now=at)
        session.commit()


def test_arrival_or_release_within_30_days_counts(app, client, db, camille):  # noqa: F811
    pro = make_pro(app)
    now = dt.datetime.now(dt.timezone.utc)

    def doc(i: int, submitted: dt.datetime, *codes: str) -> int:
        return deposit(app, camille.id, read(REAL_DOCUMENTS[i]), pro_id=pro, title=f"Doc {i}",
                       unique_id=f"1.2.250.1.995.{i}", submitted_at=submitted, confidentiality=("N", *codes)).document.id

    old = doc(0, now - 90 * DAY)
    recent = doc(1, now - 3 * DAY)
    released_lately = doc(2, now - 200 * DAY, "INVISIBLE_PATIENT")      # arrived long ago, released 2 days ago
    released_long_ago = doc(3, now - 300 * DAY, "INVISIBLE_PATIENT")    # released 100 days ago
    unreleased = doc(4, now - 1 * DAY, "INVISIBLE_PATIENT")             # not visible to the patient yet
    _release(app, pro, released_lately, now - 2 * DAY)
    _release(app, pro, released_long_ago, now - 100 * DAY)

    records = _home(client, camille)
    assert records["new_documents_count"] == 2
    # newest arrival first, as before (the release date makes it new, not first)
    assert [d["id"] for d in records["new_documents"]] == [recent, released_lately]
    assert {old, released_long_ago, unreleased}.isdisjoint(d["id"] for d in records["new_documents"])
    first = records["new_documents"][0]
    assert set(first) == {"id", "title", "category", "category_label", "author_name", "submitted_at"}
    assert first["title"] == "Doc 1" and first["author_name"] == "Jacques BIDEAULT"
    assert dt.datetime.fromisoformat(first["submitted_at"]) == db.get(Document, recent).submitted_at

    # deleted or replaced: gone from the count too
    db.get(Document, recent).deleted_at = now
    db.commit()
    assert _home(client, camille)["new_documents_count"] == 1
    db.get(Document, released_lately).replaced_by_id = old
    db.commit()
    assert _home(client, camille) == {"new_documents_count": 0, "new_documents_label": None, "new_documents": []}
