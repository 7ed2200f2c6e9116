"""The Assurance Maladie's feed (issue 20, docs/insurer-feed.md): a system actor with its own credentials
depositing CNAM-HR histories over ITI-65, needing no consent, reading nothing, shown as itself in the
access history; the patient sees the last 24 months. Real ANS CNAM-HR example and simulated histories."""
from __future__ import annotations

import datetime as dt
import json
import threading

import pytest
import time_machine
from sqlalchemy import func, select

from backend.audit.models import AuditEntry
from backend.insurer import feed
from backend.notifications.models import Notification
from backend.records.access.authorize import AccessRefused, authorize
from backend.records.access.models import Consent
from backend.records.documents.models import Document
from backend.records.access.policy import Actor, decide
from tests.fhir_helpers import Doc, Pro, assert_outcome, make_pro, post_bundle, provide_bundle, r4
from tests.helpers import SHARED

CNAM_HR = (SHARED / "fixtures" / "external" / "ans-testcontenucda-3.0" / "CNAM-HR_2021.01.xml").read_bytes()
PROFILE = "/api/v1/record/profile"
REMB_TYPE = "urn:oid:1.2.250.1.213.1.1.4.12"


@pytest.fixture
def insurer(runner) -> Pro:
    result = runner.invoke(args=["insurer", "create"])
    assert result.exit_code == 0, result.output
    made = json.loads(result.output)
    assert made["code"] == "cnam" and made["name"] == "Assurance Maladie" and made["token"].startswith("am.")
    return Pro(made["insurer_id"], "", made["token"])


def run_feed(runner, insurer: Pro, *args: str) -> dict:
    result = runner.invoke(args=["insurer", "feed", "--token", insurer.token, *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def count(db, model, *where) -> int:
    db.expire_all()
    return int(db.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def last_month() -> str:
    first = dt.date.today().replace(day=1) - dt.timedelta(days=1)
    return f"{first.year:04d}-{first.month:02d}"


def test_the_feed_deposits_a_history_with_no_consent_and_the_patient_sees_24_months(app, runner, client, db,
                                                                                   camille, insurer):
    assert count(db, Consent, Consent.patient_id == camille.id) == 0
    report = run_feed(runner, insurer, "--nir", camille.nir)
    assert report["period"] == last_month() and report["stored"] == 1
    assert report["results"][0]["patient"] == f"…{camille.nir[-4:]}"   # the operator's output names no one
    [doc] = db.scalars(select(Document).where(Document.patient_id == camille.id)).all()
    assert (doc.source, doc.category, doc.type_code, doc.class_code) == ("insurer", "REMB", "REMB", "60")
    assert doc.author_name == "Assurance Maladie" and doc.author_rpps is None
    # a monthly feed is not news: no "new document" notification
    assert count(db, Notification, Notification.patient_id == camille.id, Notification.kind == "document") == 0

    body = client.get(f"{PROFILE}/reimbursements", query_string={"limit": 100}, headers=camille.headers).get_json()
    since = dt.datetime.fromisoformat(body["since"])
    assert body["months"] == 24 and body["documents"][0]["id"] == doc.id and body["documents"][0]["structured"]
    counts = {k["kind"]: k["count"] for k in body["kinds"]}
    assert counts["consultations"] >= 1 and counts["hospital"] == 1 and counts["vaccines"] == 1
    assert sum(counts.values()) == len(body["episodes"]) >= 15
    assert all(dt.datetime.fromisoformat(e["date"]) >= since for e in body["episodes"])

    # the access history shows the insurer as itself, also in the download
    history = client.get("/api/v1/record/history", query_string={"actor": "insurer"},
                         headers=camille.headers).get_json()["items"]
    [stored] = history
    assert stored["actor"]["kind"] == "insurer" and stored["actor"]["name"] == "Assurance Maladie"
    assert stored["action"] == "document.stored" and stored["label"] == "Ajout d'un document"
    english = client.get("/api/v1/record/history", query_string={"actor": "insurer"},
                         headers={**camille.headers, "Accept-Language": "en"}).get_json()["items"][0]
    assert english["actor"]["profession"] == "Health insurance (Assurance Maladie)"
    csv = client.get("/api/v1/record/history/export", query_string={"format": "csv"},
                     headers=camille.headers).get_data(as_text=True)
    assert "Assurance Maladie" in csv


def test_a_run_again_is_a_retry_and_the_next_month_replaces_the_history(app, runner, client, db, camille,
                                                                        insurer):
    run_feed(runner, insurer, "--nir", camille.nir, "--period", "2026-09")
    run_feed(runner, insurer, "--nir", camille.nir, "--period", "2026-09")   # the same month again
    assert count(db, Document, Document.patient_id == camille.id) == 1
    run_feed(runner, insurer, "--nir", camille.nir, "--period", "2026-10", "--previous-period", "2026-09")
    docs = db.scalars(select(Document).where(Document.patient_id == camille.id).order_by(Document.id)).all()
    assert len(docs) == 2 and docs[0].replaced_by_id == docs[1].id and docs[1].replaced_by_id is None
    body = client.get(f"{PROFILE}/reimbursements", headers=camille.headers).get_json()
    assert [d["id"] for d in body["documents"]] == [docs[1].id]


def test_the_real_ans_history_through_the_feed(app, runner, client, db, camille, insurer, tmp_path):
    path = tmp_path / "CNAM-HR_2021.01.xml"
    path.write_bytes(CNAM_HR)
    with time_machine.travel(dt.datetime(2020, 12, 1, 9, tzinfo=dt.timezone.utc), tick=False):
        report = run_feed(runner, insurer, "--nir", camille.nir, "--file", str(path), "--period", "2020-11")
        assert report["stored"] == 1
        body = client.get(f"{PROFILE}/reimbursements", query_string={"limit": 100},
                          headers=camille.headers).get_json()
    counts = {k["kind"]: k["count"] for k in body["kinds"]}
    assert counts == {"consultations": 8, "medicines": 3, "biology": 4, "imaging": 3, "hospital": 2, "devices": 2,
                      "vaccines": 3}
    stored = db.scalar(select(Document).where(Document.patient_id == camille.id))
    assert stored.sha256 and stored.size == len(CNAM_HR)   # byte for byte


def test_the_insurer_deposits_reimbursement_data_only_and_reads_nothing(app, client, db, camille, insurer):
    doctor = make_pro(app, "10000000001")
    consultation = Doc(b"<ClinicalDocument xmlns='urn:hl7-org:v3'/>", type_code="11488-4",
                       type_system="http://loinc.org", class_code="10")
    refused = post_bundle(client, insurer, provide_bundle(camille.nir, [consultation]))
    body = assert_outcome(refused, 422, "insurer_deposit_type")
    assert "remboursement" in body["issue"][0]["diagnostics"]
    hidden = Doc(CNAM_HR, type_code="REMB", type_system=REMB_TYPE, class_code="60", labels=["INVISIBLE_PATIENT"])
    assert_outcome(post_bundle(client, insurer, provide_bundle(camille.nir, [hidden])), 422, "insurer_deposit_flags")
    assert count(db, Document, Document.patient_id == camille.id) == 0

    # a professional's document is not the insurer's to replace
    [professional_doc] = [e["response"]["location"].rsplit("/", 1)[1] for e in post_bundle(
        client, doctor, provide_bundle(camille.nir, [Doc(CNAM_HR, type_code="REMB", type_system=REMB_TYPE,
                                                        class_code="60")])).get_json()["entry"]
        if "DocumentReference/" in e["response"].get("location", "")]
    replacing = Doc(CNAM_HR, type_code="REMB", type_system=REMB_TYPE, class_code="60", replaces=professional_doc)
    assert_outcome(post_bundle(client, insurer, provide_bundle(camille.nir, [replacing])), 403,
                   "insurer_replace_not_own")

    # every read of the professional API answers 403: the insurer feeds, it does not read
    identifier = f"urn:oid:1.2.250.1.213.1.4.8|{camille.nir}"
    for url, query in (("/fhir/R4/DocumentReference", {"patient.identifier": identifier}),
                       (f"/fhir/R4/DocumentReference/{professional_doc}", {}),
                       (f"/fhir/R4/Binary/{professional_doc}", {}),
                       ("/fhir/R4/Communication", {"patient.identifier": identifier})):
        answer = client.get(url, query_string=query, headers=insurer.headers())
        outcome = assert_outcome(answer, 403, "fhir_insurer_no_read")
        r4(outcome)
    # and the patient API is not its either
    assert client.get(f"{PROFILE}", headers=insurer.headers()).status_code == 401
    # the one decision point says so too, and the refusal is traced under the insurer's name
    assert (decide(db, Actor.of_insurer(insurer.id), camille.id).allowed,
            decide(db, Actor.of_insurer(insurer.id), camille.id).reason) == (False, "insurer_feeds_only")
    with pytest.raises(AccessRefused):
        authorize(db, Actor.of_insurer(insurer.id), camille.id, "document.search")
    db.commit()
    refusal = db.scalar(select(AuditEntry).where(AuditEntry.action == "document.search.refused"))
    assert (refusal.actor_type, refusal.actor_id) == ("insurer", str(insurer.id))


def test_a_revoked_token_stops_the_feed(app, runner, client, camille, insurer):
    rotated = runner.invoke(args=["insurer", "token", "--revoke-others"])
    assert rotated.exit_code == 0, rotated.output
    new = json.loads(rotated.output)
    assert new["revoked"] == 1 and new["token"] != insurer.token
    bundle = feed.provide_bundle(camille.nir, feed.cnam_hr(camille.nir, "2026-10", []),
                                 uid=feed.unique_id(camille.nir, "2026-10"), service_date=dt.date(2026, 10, 31))
    assert_outcome(post_bundle(client, insurer, bundle), 401, "fhir_unauthorized")
    assert post_bundle(client, Pro(0, "", new["token"]), bundle).status_code == 200
    failed = runner.invoke(args=["insurer", "feed", "--token", insurer.token, "--nir", camille.nir])
    assert failed.exit_code == 1 and '"status": 401' in failed.output
    assert runner.invoke(args=["insurer", "create"]).exit_code == 1   # one "cnam"


def test_two_simultaneous_runs_store_one_history(app, client, db, camille, insurer):
    """A feed retried while the first try is still running: two requests at once, one document."""
    bundle = feed.provide_bundle(camille.nir, feed.cnam_hr(camille.nir, "2026-10",
                                                           feed.simulated_episodes(camille.nir, "2026-10")),
                                 uid=feed.unique_id(camille.nir, "2026-10"), service_date=dt.date(2026, 10, 31))
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def send() -> None:
        own = app.test_client()
        barrier.wait()
        statuses.append(post_bundle(own, insurer, bundle).status_code)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200, 200]
    assert count(db, Document, Document.patient_id == camille.id) == 1


def test_the_simulated_history_is_deterministic_and_valid_fhir():
    nir = "284076322001001"
    first = feed.cnam_hr(nir, "2026-10", feed.simulated_episodes(nir, "2026-10"))
    assert first == feed.cnam_hr(nir, "2026-10", feed.simulated_episodes(nir, "2026-10"))
    episodes = feed.simulated_episodes(nir, "2026-10")
    assert all(dt.date(2024, 10, 1) <= e.day <= dt.date(2026, 10, 31) for e in episodes)
    bundle = feed.provide_bundle(nir, first, uid=feed.unique_id(nir, "2026-10"), service_date=dt.date(2026, 10, 31),
                                 replaces=feed.unique_id(nir, "2026-09"))
    from backend.fhir.resources import _validation_view   # fhir.resources 6 wants a host in attachment.url

    r4(_validation_view(bundle))
    from backend.records.profile.documents import clinical_document, reimbursement_episodes

    parsed = reimbursement_episodes(clinical_document(first))
    assert len(parsed) == len(episodes) and {e["kind"] for e in parsed} == {e.kind for e in episodes}
