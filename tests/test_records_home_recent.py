"""The home screen's recent documents read only the recent ones (arrival or release in the last 30 days,
each half of the condition an index range on PostgreSQL), with the same answers as before."""
from __future__ import annotations

import datetime as dt
import io

from backend.db import get_session
from backend.professionals.models import Professional
from backend.records.documents import service as documents
from backend.records.documents.models import Document
from backend.records.access.policy import Actor
from tests.documents_support import IMG_PDF, LDL_SES, REAL_DOCUMENTS, deposit, make_pro, read

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


def test_arrival_or_release_within_30_days_counts(app, client, db, camille):
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


# --- the documents page: the owner's unfiltered page and counts use statements built once ---------------

def _walk(session, scope, filters, limit, *, built_once: bool) -> list[int]:
    ids, after = [], None
    while True:
        if built_once:
            page = documents.list_documents(session, scope, filters, limit=limit, after=after)
            items, after = page.items, page.next_cursor
        else:  # the general path, built for this call
            rows = list(session.execute(documents._page(scope, filters, limit, after)))
            items = rows[:limit]
            after = None
            if len(rows) > limit:
                last = items[-1]
                key = (last.service_date or last.submitted_at) if filters.sort == "service" else last.submitted_at
                after = documents.Cursor(key, last.id)
        ids += [i.id for i in items]
        if after is None:
            return ids


def test_the_owner_page_walks_like_the_general_path(app, db, camille):
    pro = make_pro(app)
    base = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    for i in range(12):  # equal dates in pairs: the id breaks the ties
        deposit(app, camille.id, f"doc {i}".encode(), pro_id=pro, mime="text/plain", type_code=None,
                class_code=None, title=f"Doc {i}", unique_id=f"1.2.250.1.993.{i}", submitted_at=base + (i // 2) * DAY,
                service_date=None if i % 3 else base - i * DAY)
    with app.app_context():
        session = get_session()
        owner = documents.Scope(camille.id, see_masked=True)
        for sort in documents.SORTS:
            for order in documents.ORDERS:
                filters = documents.ListFilters(sort=sort, order=order)
                walked = _walk(session, owner, filters, 5, built_once=True)
                assert walked == _walk(session, owner, filters, 5, built_once=False), (sort, order)
                assert len(walked) == 12 == len(set(walked))
        session.rollback()


def test_category_counts_follow_store_delete_mask_and_release(app, client, db, camille):
    pro = make_pro(app)

    def counts() -> dict[str, int]:
        r = client.get("/api/v1/record/documents", headers=camille.headers)
        assert r.status_code == 200
        body = r.get_json()
        assert body["total"] == sum(c["count"] for c in body["categories"])
        return {c["category"]: c["count"] for c in body["categories"]}

    letter = deposit(app, camille.id, read(LDL_SES), pro_id=pro).document
    hidden = deposit(app, camille.id, read(REAL_DOCUMENTS[1]), pro_id=pro, unique_id="1.2.250.1.992.1",
                     confidentiality=("N", "INVISIBLE_PATIENT")).document
    first = counts()
    assert sum(first.values()) == 1 and first[letter.category] == 1
    upload = client.post("/api/v1/record/documents", headers=camille.headers, content_type="multipart/form-data",
                         data={"file": (io.BytesIO(read(IMG_PDF)), "note.pdf"), "category": "RADIO_SC"})
    assert upload.status_code == 201, upload.get_json()
    assert counts() == {**first, "RADIO_SC": first.get("RADIO_SC", 0) + 1}
    # masking hides from professionals, not from the patient
    assert client.post(f"/api/v1/record/documents/{letter.id}/mask", headers=camille.headers).status_code == 200
    assert counts() == {**first, "RADIO_SC": first.get("RADIO_SC", 0) + 1}
    assert client.post(f"/api/v1/record/documents/{letter.id}/unmask", headers=camille.headers).status_code == 200
    assert client.delete(f"/api/v1/record/documents/{upload.get_json()['id']}",
                         headers=camille.headers).status_code == 204
    assert counts() == first
    _release(app, pro, hidden.id, dt.datetime.now(dt.timezone.utc))
    released = counts()
    assert sum(released.values()) == 2 and released[hidden.category] == first.get(hidden.category, 0) + 1
    # filtered counts still take the general path
    r = client.get("/api/v1/record/documents", query_string={"mine": "true"}, headers=camille.headers)
    assert r.get_json()["total"] == 0
