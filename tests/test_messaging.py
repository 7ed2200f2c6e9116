"""The secure inbox: who may write first, forbidden replies, ended conversations, read receipts, the
patient's listing (unread first, search, pagination, archive, delete and purge), authorization (another
patient, another professional: 404 and nothing of the thread in any answer), encryption at rest, the
audit of every professional read, the notification without health data, flat query counts."""
from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest
import time_machine
from sqlalchemy import func, select, text

from backend.audit.models import AuditEntry
from backend import blobs
from backend.messaging.models import Attachment, Message, SearchToken, Thread
from backend.notifications.models import Notification
from backend.records.crypto import Vault
from tests.fhir_helpers import r4
from tests.helpers import assert_problem, blob_keys, sealed_attachment
from tests.messaging_support import (FHIR, IDNPS, INBOX, INS, PatientSide, communication, extension, outcome_code, send,
                                    thread_of)

TXT = "Glycémie à jeun : 1,02 g/L\n".encode()


def threads(client, patient: PatientSide, **query: Any) -> dict[str, Any]:
    r = client.get(f"{INBOX}/threads", headers=patient.headers, query_string=query)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def reply(client, patient: PatientSide, thread_id: int, body: str = "Merci docteur.", **fields: Any):
    data = {"body": body, **fields}
    return client.post(f"{INBOX}/threads/{thread_id}/messages", headers=patient.headers, data=data,
                       content_type="multipart/form-data")


def count(db, model, *where) -> int:
    db.expire_all()
    return int(db.scalar(select(func.count()).select_from(model).where(*where)) or 0)


# --- the conversation ----------------------------------------------------------------------------------------

def test_professional_writes_patient_reads_sender_sees_the_receipt(app, client, db, world):
    sent = send(client, world.durand, world.camille.nir, establishment="Laboratoire des Volcans")
    r4(sent)
    assert sent["topic"]["text"] == "Résultats de votre bilan sanguin"
    assert sent["sender"]["identifier"] == {"system": IDNPS, "value": "810000000001"}
    assert extension(sent, "communication-read") is None
    assert extension(sent, "communication-replies-allowed") is True
    thread_id = thread_of(db, sent["id"])

    listing = threads(client, world.camille)
    assert listing["unread_threads"] == 1
    [item] = listing["items"]
    assert item["id"] == thread_id and item["unread"] is True and item["unread_count"] == 1
    assert item["subject"] == "Résultats de votre bilan sanguin"
    assert item["sender"]["name"] == "Alice DURAND" and item["sender"]["establishment"] == "Laboratoire des Volcans"
    assert item["preview"] == "Bonjour, vos résultats sont normaux." and item["last_message_from_you"] is False

    # the notification says "a message", nothing of it
    [note] = db.scalars(select(Notification).where(Notification.patient_id == world.camille.id)).all()
    assert (note.kind, note.ref_type, note.ref_id) == ("message", "thread", str(thread_id))
    centre = client.get("/api/v1/notifications", headers=world.camille.headers).get_data(as_text=True)
    assert "bilan" not in centre and "normaux" not in centre

    r = client.get(f"{INBOX}/threads/{thread_id}", headers=world.camille.headers)
    assert r.status_code == 200
    detail = r.get_json()
    [msg] = detail["messages"]
    assert msg["body"] == "Bonjour, vos résultats sont normaux." and msg["from_you"] is False
    assert msg["author"]["name"] == "Alice DURAND" and msg["read_at"] is not None
    assert detail["actions"] == {"reply": True, "reply_all": False, "archive": True, "unarchive": False,
                                 "delete": True}
    assert threads(client, world.camille)["items"][0]["unread"] is False
    db.expire_all()
    assert db.get(Notification, note.id).read_at is not None  # the centre's badge follows the inbox

    # the sender sees when the patient read it
    read = client.get(f"{FHIR}/{sent['id']}", headers=world.durand.headers()).get_json()
    r4(read)
    assert extension(read, "communication-read")[:19] == msg["read_at"][:19]


def test_the_patient_replies_and_replies_to_all(client, db, world):
    first = send(client, world.durand, world.camille.nir, copies=[world.petit.rpps])
    thread_id = thread_of(db, first["id"])
    assert client.get(f"{FHIR}/{first['id']}", headers=world.petit.headers()).status_code == 200  # in copy

    r = reply(client, world.camille, thread_id, "Réponse à la docteure seule")
    assert r.status_code == 201, r.get_json()
    plain = r.get_json()["message"]
    assert plain["recipients"] == ["Alice DURAND"] and plain["in_reply_to"] == int(first["id"])
    r = reply(client, world.camille, thread_id, "Réponse à tous", reply_all="true")
    assert r.status_code == 201
    everyone = r.get_json()["message"]
    assert sorted(everyone["recipients"]) == ["Alice DURAND", "Hélène PETIT"] and everyone["reply_all"] is True

    # the professionals read the patient's replies addressed to them, and only those
    durand = client.get(FHIR, headers=world.durand.headers(),
                        query_string={"patient.identifier": f"{INS}|{world.camille.nir}", "sender-kind": "patient"})
    bodies = [e["resource"]["payload"][0]["contentString"] for e in durand.get_json()["entry"]]
    assert bodies == ["Réponse à tous", "Réponse à la docteure seule"]
    for entry in durand.get_json()["entry"]:
        r4(entry["resource"])
        assert entry["resource"]["partOf"] == [{"reference": f"Communication/{first['id']}"}]
    petit = client.get(FHIR, headers=world.petit.headers(), query_string={"sender-kind": "patient"}).get_json()
    assert [e["resource"]["payload"][0]["contentString"] for e in petit["entry"]] == ["Réponse à tous"]
    assert client.get(f"{FHIR}/{plain['id']}", headers=world.petit.headers()).status_code == 404

    # the patient sees their reply was read
    detail = client.get(f"{INBOX}/threads/{thread_id}", headers=world.camille.headers).get_json()
    mine = [m for m in detail["messages"] if m["from_you"]]
    assert all(m["read_at"] for m in mine)
    assert detail["actions"]["reply_all"] is True

    # the professional answers in the conversation: the patient has one unread message again
    again = send(client, world.durand, world.camille.nir, None, "Parfait.", answers=plain["id"])
    assert again["inResponseTo"] == [{"reference": f"Communication/{plain['id']}"}]
    assert thread_of(db, again["id"]) == thread_id
    assert threads(client, world.camille)["items"][0]["unread_count"] == 1


def test_only_a_professional_who_wrote_may_be_written_to_first(client, db, world):
    new = {"professional_id": world.durand.id, "subject": "Question sur mon traitement", "body": "Bonjour"}
    r = client.post(f"{INBOX}/threads", headers=world.camille.headers, data=new, content_type="multipart/form-data")
    body = assert_problem(r, 403, "inbox_new_thread_not_allowed")
    assert body["detail"] == "Vous pouvez écrire uniquement à un professionnel de santé qui vous a déjà écrit."
    assert count(db, Thread) == 0 and count(db, Message) == 0

    send(client, world.durand, world.camille.nir)
    assert [p["name"] for p in client.get(f"{INBOX}/correspondents", headers=world.camille.headers)
            .get_json()["items"]] == ["Alice DURAND"]
    r = client.post(f"{INBOX}/threads", headers=world.camille.headers, data=new, content_type="multipart/form-data")
    assert r.status_code == 201, r.get_json()
    thread_id = r.get_json()["thread_id"]
    listing = threads(client, world.camille)
    started = next(i for i in listing["items"] if i["id"] == thread_id)
    assert started["started_by"] == "patient" and started["unread"] is False and started["last_message_from_you"]
    found = client.get(FHIR, headers=world.durand.headers(), query_string={"sender-kind": "patient"}).get_json()
    assert [e["resource"]["topic"]["text"] for e in found["entry"]] == ["Question sur mon traitement"]

    # another professional, one who wrote to someone else only, or an unknown id: the same refusal
    send(client, world.moreau, world.louis.nir)
    for pro_id in (world.petit.id, world.moreau.id, 987654):
        r = client.post(f"{INBOX}/threads", headers=world.camille.headers, content_type="multipart/form-data",
                        data={**new, "professional_id": pro_id})
        assert_problem(r, 403, "inbox_new_thread_not_allowed")


def test_forbidden_replies(client, db, world):
    first = send(client, world.durand, world.camille.nir, "Rendez-vous confirmé", "Lundi 9 h.",
                 replies_allowed=False, copies=[world.petit.rpps])
    assert extension(first, "communication-replies-allowed") is False
    thread_id = thread_of(db, first["id"])
    before = count(db, Message)
    for extra in ({}, {"reply_all": "true"}):
        body = assert_problem(reply(client, world.camille, thread_id, **extra), 403, "inbox_replies_forbidden")
        assert body["detail"].startswith("Le professionnel a désactivé les réponses")
    assert count(db, Message) == before
    detail = client.get(f"{INBOX}/threads/{thread_id}", headers=world.camille.headers).get_json()
    assert detail["actions"]["reply"] is False and detail["notice"].startswith("Le professionnel a désactivé")

    # only the owner sets replies; another professional does not even see the conversation
    r = client.post(f"{FHIR}/{first['id']}/$allow-replies", headers=world.petit.headers())
    assert r.status_code == 403 and outcome_code(r) == "inbox_not_thread_owner"
    r = client.post(f"{FHIR}/{first['id']}/$allow-replies", headers=world.moreau.headers())
    assert r.status_code == 404
    r = client.post(f"{FHIR}/{first['id']}/$allow-replies", headers=world.durand.headers())
    assert r.status_code == 200 and r.get_json()["issue"][0]["severity"] == "information"
    assert reply(client, world.camille, thread_id).status_code == 201
    assert client.post(f"{FHIR}/{first['id']}/$forbid-replies", headers=world.durand.headers()).status_code == 200
    assert_problem(reply(client, world.camille, thread_id), 403, "inbox_replies_forbidden")
    # a later message of the owner may allow them again through the extension
    send(client, world.durand, world.camille.nir, None, "Vous pouvez répondre.", answers=first["id"],
         replies_allowed=True)
    assert reply(client, world.camille, thread_id).status_code == 201
    # a new conversation with the same professional stays possible
    r = client.post(f"{INBOX}/threads", headers=world.camille.headers, content_type="multipart/form-data",
                    data={"professional_id": world.durand.id, "subject": "Autre question", "body": "Bonjour"})
    assert r.status_code == 201


def test_ended_conversation(client, db, world):
    first = send(client, world.durand, world.camille.nir)
    thread_id = thread_of(db, first["id"])
    assert client.post(f"{FHIR}/{first['id']}/$end", headers=world.moreau.headers()).status_code == 404
    r = client.post(f"{FHIR}/{first['id']}/$end", headers=world.durand.headers())
    assert r.status_code == 200
    assert client.post(f"{FHIR}/{first['id']}/$end", headers=world.durand.headers()).status_code == 200  # idempotent
    before = count(db, Message)
    body = assert_problem(reply(client, world.camille, thread_id), 409, "inbox_conversation_ended")
    assert body["detail"] == "Cette conversation a été clôturée par le professionnel : elle ne reçoit plus de messages."
    r = client.post(FHIR, headers=world.durand.headers(), content_type="application/fhir+json",
                    data=json.dumps(communication(world.camille.nir, None, "Encore un mot", answers=int(first["id"]))))
    assert r.status_code == 409 and outcome_code(r) == "inbox_conversation_ended"
    assert count(db, Message) == before
    detail = client.get(f"{INBOX}/threads/{thread_id}", headers=world.camille.headers).get_json()
    assert detail["ended"] is True and detail["actions"]["reply"] is False
    assert detail["notice"].startswith("Cette conversation a été clôturée")
    read = client.get(f"{FHIR}/{first['id']}", headers=world.durand.headers()).get_json()
    assert extension(read, "communication-conversation-ended")


# --- the professional API's refusals ---------------------------------------------------------------------------

def test_professional_api_refusals_are_operation_outcomes(client, db, world):
    r = client.post(FHIR, data=json.dumps(communication(world.camille.nir, "Objet", "Texte")),
                    content_type="application/fhir+json")
    assert r.status_code == 401 and outcome_code(r) == "fhir_unauthorized"
    r = client.post(FHIR, headers=world.camille.headers, content_type="application/fhir+json",
                    data=json.dumps(communication(world.camille.nir, "Objet", "Texte")))
    assert r.status_code == 401  # a patient's token is not a professional's
    cases = [
        (communication(world.camille.nir, None, "Sans objet"), 422, "inbox_subject_required"),
        (communication(world.camille.nir, "Objet", None), 422, "inbox_empty_message"),
        (communication("1" + "0" * 14, "Objet", "Texte"), 422, "inbox_unknown_patient"),
        ({**communication(world.camille.nir, "Objet", "Texte"), "status": "preparation"}, 422,
         "inbox_invalid_communication"),
        ({**communication(world.camille.nir, "Objet", "Texte"), "subject": {"reference": "Patient/1"}}, 422,
         "inbox_invalid_communication"),
        (communication(world.camille.nir, "Objet", "Texte", copies=["19999999999"]), 422, "inbox_unknown_professional"),
        (communication(world.camille.nir, "Objet", "Texte", answers=987654), 404, "inbox_message_not_found"),
        ({**communication(world.camille.nir, "Objet", "Texte"), "sent": "hier soir"}, 400, "fhir_invalid_resource"),
        ({"resourceType": "Patient"}, 400, "fhir_invalid_resource"),
    ]
    for body, status, code in cases:
        r = client.post(FHIR, headers=world.durand.headers(), data=json.dumps(body),
                        content_type="application/fhir+json")
        assert (r.status_code, outcome_code(r)) == (status, code), (body, r.get_json())
        assert r.get_json()["issue"][0]["diagnostics"]
    r = client.post(FHIR, headers=world.durand.headers(), data="{not json", content_type="application/fhir+json")
    assert r.status_code == 400
    r = client.post(FHIR, headers=world.durand.headers(), data="x", content_type="text/plain")
    assert r.status_code == 415
    r = client.get(FHIR, headers=world.durand.headers(), query_string={"_count": "0"})
    assert r.status_code == 400 and outcome_code(r) == "inbox_invalid_search"
    assert count(db, Thread) == 0 and count(db, Notification) == 0


# --- authorization: another patient, another professional ----------------------------------------------------

SECRET_SUBJECT = "Sérologie VIH de contrôle"
SECRET_BODY = "Votre sérologie est négative."


def test_another_patient_and_another_professional_see_nothing(client, db, world):
    first = send(client, world.durand, world.camille.nir, SECRET_SUBJECT, SECRET_BODY,
                 attachments=[{"contentType": "text/plain", "title": "serologie.txt",
                               "data": base64.b64encode(TXT).decode()}])
    thread_id = thread_of(db, first["id"])
    reply(client, world.camille, thread_id, "Merci pour la sérologie")
    db.expire_all()
    att_id = db.scalar(select(Attachment.id))
    message_ids = list(db.scalars(select(Message.id)))
    secrets = ["Sérologie", "sérologie", "VIH", "négative", "serologie.txt", "Durand", "DURAND", "Glycémie",
               world.camille.nir, "Camille"]

    def clean(response) -> None:
        body = response.get_data(as_text=True)
        for needle in secrets:
            assert needle not in body, (response.request.path, needle)
        assert "Glyc" not in body

    louis = world.louis.headers
    for method, url, kw in [
        ("GET", f"{INBOX}/threads/{thread_id}", {}),
        ("DELETE", f"{INBOX}/threads/{thread_id}", {}),
        ("POST", f"{INBOX}/threads/{thread_id}/messages", {"data": {"body": "intrus"},
                                                            "content_type": "multipart/form-data"}),
        ("POST", f"{INBOX}/threads/{thread_id}/archive", {}),
        ("POST", f"{INBOX}/threads/{thread_id}/unarchive", {}),
        ("GET", f"{INBOX}/attachments/{att_id}/content", {}),
        ("POST", f"{INBOX}/attachments/{att_id}/save", {"json": {"category": "BIOLOGIE"}}),
    ]:
        r = client.open(url, method=method, headers=louis, **kw)
        assert r.status_code == 404, (method, url, r.get_json())
        clean(r)
    for query in ({}, {"q": "serologie"}, {"sender": "durand"}, {"archived": "true"}):
        r = client.get(f"{INBOX}/threads", headers=louis, query_string=query)
        assert r.get_json()["items"] == [] and r.get_json()["unread_threads"] == 0
        clean(r)
    clean(client.get(f"{INBOX}/correspondents", headers=louis))
    r = client.post(f"{INBOX}/threads", headers=louis, content_type="multipart/form-data",
                    data={"professional_id": world.durand.id, "subject": "Bonjour", "body": "Bonjour"})
    assert_problem(r, 403, "inbox_new_thread_not_allowed")

    # another professional: nothing of a conversation they are not part of
    moreau = world.moreau.headers()
    for mid in message_ids:
        for url in (f"{FHIR}/{mid}", f"{FHIR}/{mid}/attachment/{att_id}"):
            r = client.get(url, headers=moreau)
            assert r.status_code == 404
            clean(r)
        for op in ("$end", "$forbid-replies", "$allow-replies"):
            r = client.post(f"{FHIR}/{mid}/{op}", headers=moreau)
            assert r.status_code == 404
            clean(r)
    for query in ({}, {"patient.identifier": f"{INS}|{world.camille.nir}"}, {"part-of": f"Communication/{first['id']}"}):
        r = client.get(FHIR, headers=moreau, query_string=query)
        assert r.status_code == 200 and r.get_json().get("entry", []) == []
        clean(r)
    r = client.post(FHIR, headers=moreau, content_type="application/fhir+json",
                    data=json.dumps(communication(world.camille.nir, None, "Je m'invite", answers=int(first["id"]))))
    assert r.status_code == 404
    clean(r)
    # the patient's bearer on the professional API, the professional's on the patient API
    assert client.get(FHIR, headers=world.camille.headers).status_code == 401
    assert client.get(f"{INBOX}/threads", headers=world.durand.headers()).status_code == 401
    # nothing was read by the outsiders
    db.expire_all()
    assert not db.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action.like("inbox.%read"), AuditEntry.actor_id == world.moreau.rpps))


# --- encryption at rest -----------------------------------------------------------------------------------------

def test_messages_and_attachments_are_encrypted_at_rest(app, client, db, world):
    first = send(client, world.durand, world.camille.nir, SECRET_SUBJECT, SECRET_BODY,
                 attachments=[{"contentType": "text/plain", "title": "serologie-negative.txt",
                               "data": base64.b64encode(TXT).decode()}])
    reply(client, world.camille, thread_of(db, first["id"]), "Réponse confidentielle sur ma sérologie")
    needles = [b"VIH", "Sérologie".encode(), "sérologie".encode(), "négative".encode(), b"serologie",
               b"confidentielle", "Glycémie".encode(), b"1,02"]
    tables = ["inbox_thread", "inbox_message", "inbox_attachment", "inbox_search_token",
              "inbox_participant", "inbox_message_recipient", "notification", "audit_entry"]
    db.expire_all()
    for table in tables:
        for row in db.execute(text(f'SELECT * FROM "{table}"')):
            raw = b"|".join(v if isinstance(v, bytes) else bytes(v) if isinstance(v, memoryview)
                            else str(v).encode() for v in row)
            for needle in needles:
                assert needle not in raw, (table, needle)
    objects = blob_keys(db, "attachments")  # the attachments' bytes, in the blob store: sealed too
    assert objects
    for key in objects:
        for needle in needles:
            assert needle not in blobs.of(db).get(key), (key, needle)
    # each ciphertext is bound to its row: moved to another row, it does not open
    vault = Vault(db, app.extensions["carnet.keyring"])
    first_row, second_row = db.scalars(select(Message).order_by(Message.id)).all()
    assert vault.open_text(world.camille.id, first_row.body_sealed, f"inbox-message:{first_row.id}") == SECRET_BODY
    from cryptography.exceptions import InvalidTag

    with pytest.raises(InvalidTag):
        vault.open_text(world.camille.id, first_row.body_sealed, f"inbox-message:{second_row.id}")
    att = db.scalar(select(Attachment))
    content = sealed_attachment(db, att.id)
    assert vault.open(world.camille.id, content, f"inbox-attachment:{att.id}") == TXT
    with pytest.raises(InvalidTag):
        vault.open(world.louis.id, content, f"inbox-attachment:{att.id}")  # another patient's key


# --- audit of professional reads --------------------------------------------------------------------------------

def test_every_professional_read_is_audited(client, db, world):
    first = send(client, world.durand, world.camille.nir,
                 attachments=[{"contentType": "text/plain", "title": "resultats.txt",
                               "data": base64.b64encode(TXT).decode()}])
    send(client, world.durand, world.louis.nir, "Vaccination", "Rappel à faire.")
    reply(client, world.camille, thread_of(db, first["id"]), "Merci")

    def reads() -> list[tuple[str, int, dict[str, Any]]]:
        db.expire_all()
        return [(e.action, e.patient_id, json.loads(e.details)) for e in db.scalars(
            select(AuditEntry).where(AuditEntry.actor_id == world.durand.rpps,
                                     AuditEntry.action.in_(["inbox.read", "inbox.attachment_read"]))
            .order_by(AuditEntry.seq))]

    assert reads() == []
    found = client.get(FHIR, headers=world.durand.headers()).get_json()
    assert len(found["entry"]) == 3
    entries = reads()
    assert sorted((a, p, d["count"]) for a, p, d in entries) == sorted(
        [("inbox.read", world.camille.id, 2), ("inbox.read", world.louis.id, 1)])
    client.get(f"{FHIR}/{first['id']}", headers=world.durand.headers())
    att_id = db.scalar(select(Attachment.id))
    r = client.get(f"{FHIR}/{first['id']}/attachment/{att_id}", headers=world.durand.headers())
    assert r.status_code == 200 and r.data == TXT and r.mimetype == "text/plain"
    actions = [(a, p) for a, p, _ in reads()[2:]]
    assert actions == [("inbox.read", world.camille.id), ("inbox.attachment_read", world.camille.id)]
    db.expire_all()
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "inbox.read").order_by(AuditEntry.seq.desc()))
    assert entry.actor_type == "professional" and entry.purpose == "TREAT"
    assert "Merci" not in entry.details and "résultats" not in entry.details  # identifiers only
    # the patient reads it in their access history
    history = client.get("/api/v1/record/history", headers=world.camille.headers)
    assert history.status_code == 200, history.get_json()
    labels = json.dumps(history.get_json(), ensure_ascii=False)
    assert "Lecture de vos messages par un professionnel" in labels


# --- the patient's listing -------------------------------------------------------------------------------------

def _threads_in_order(client, db, world, n: int) -> list[int]:
    """n threads from Durand to Camille, one second apart (the last written last)."""
    ids = []
    start = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.timezone.utc)
    for i in range(n):
        with time_machine.travel(start + dt.timedelta(minutes=i), tick=False):
            sent = send(client, world.durand, world.camille.nir, f"Objet numéro {i}", f"Texte {i}")
        ids.append(thread_of(db, sent["id"]))
    return ids


def test_unread_first_then_latest_activity(client, db, world):
    ids = _threads_in_order(client, db, world, 4)
    for thread_id in (ids[3], ids[1]):
        client.get(f"{INBOX}/threads/{thread_id}", headers=world.camille.headers)
    order = [i["id"] for i in threads(client, world.camille)["items"]]
    assert order == [ids[2], ids[0], ids[3], ids[1]]
    assert [i["id"] for i in threads(client, world.camille, unread="true")["items"]] == [ids[2], ids[0]]
    assert threads(client, world.camille)["unread_threads"] == 2


def test_cursor_pagination_walks_every_thread_once(client, db, world):
    ids = _threads_in_order(client, db, world, 7)
    client.get(f"{INBOX}/threads/{ids[4]}", headers=world.camille.headers)
    seen, cursor = [], None
    while True:
        page = threads(client, world.camille, limit=3, **({"cursor": cursor} if cursor else {}))
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [i for i in reversed(ids) if i != ids[4]] + [ids[4]]
    r = client.get(f"{INBOX}/threads", headers=world.camille.headers, query_string={"cursor": "forged"})
    assert_problem(r, 422, "invalid_request")
    archived_cursor = threads(client, world.camille, limit=3)["next_cursor"]
    r = client.get(f"{INBOX}/threads", headers=world.camille.headers,
                   query_string={"cursor": archived_cursor, "archived": "true"})
    assert_problem(r, 422)


def test_search_by_subject_and_sender(client, db, world):
    a = thread_of(db, send(client, world.durand, world.camille.nir, "Résultats d'IRM du genou", "Texte")["id"])
    b = thread_of(db, send(client, world.petit, world.camille.nir, "Ordonnance de kinésithérapie", "Texte")["id"])
    c = thread_of(db, send(client, world.petit, world.camille.nir, "Compte rendu IRM lombaire", "Texte",
                           establishment="Clinique Saint-Éloi")["id"])
    send(client, world.durand, world.louis.nir, "IRM de Louis", "Texte")

    def found(**query: str) -> set[int]:
        return {i["id"] for i in threads(client, world.camille, **query)["items"]}

    assert found(q="irm") == {a, c}
    assert found(q="resultat") == {a}                      # accents and case ignored, prefixes match
    assert found(q="KINÉ") == {b}
    assert found(q="petit") == {b, c}                      # the sender
    assert found(q="petit irm") == {c}                     # every word matches (subject or sender)
    assert found(q="eloi") == {c}                          # the establishment
    assert found(sender="durand") == {a}
    assert found(sender="irm") == set()                    # only the sender
    assert found(subject="petit") == set()                 # only the subject
    assert found(subject="genou", sender="alice") == {a}
    assert found(q="radiologie") == set()
    r = client.get(f"{INBOX}/threads", headers=world.camille.headers, query_string={"q": "a"})
    body = assert_problem(r, 422, "inbox_search_too_short")
    assert body["detail"] == "Saisissez au moins 2 caractères pour rechercher."


def test_archive_then_a_new_message_brings_the_thread_back(client, db, world):
    first = send(client, world.durand, world.camille.nir)
    thread_id = thread_of(db, first["id"])
    r = client.post(f"{INBOX}/threads/{thread_id}/archive", headers=world.camille.headers)
    assert r.status_code == 200 and r.get_json()["archived"] is True
    assert threads(client, world.camille)["items"] == []
    assert [i["id"] for i in threads(client, world.camille, archived="true")["items"]] == [thread_id]
    assert client.post(f"{INBOX}/threads/{thread_id}/unarchive", headers=world.camille.headers).status_code == 200
    assert [i["id"] for i in threads(client, world.camille)["items"]] == [thread_id]
    client.post(f"{INBOX}/threads/{thread_id}/archive", headers=world.camille.headers)
    send(client, world.durand, world.camille.nir, None, "Un complément", answers=first["id"])
    assert [i["id"] for i in threads(client, world.camille)["items"]] == [thread_id]


def test_delete_is_soft_until_the_retention_purge(app, client, db, runner, world):
    first = send(client, world.durand, world.camille.nir,
                 attachments=[{"contentType": "text/plain", "title": "resultats.txt",
                               "data": base64.b64encode(TXT).decode()}])
    thread_id = thread_of(db, first["id"])
    keep = thread_of(db, send(client, world.durand, world.camille.nir, "À garder", "Texte",
                              attachments=[{"contentType": "text/plain", "title": "garde.txt",
                                            "data": base64.b64encode(b"a garder\n").decode()}])["id"])
    attachment_objects = blob_keys(db, "attachments")
    assert len(attachment_objects) == 2
    now = dt.datetime.now(dt.timezone.utc)
    r = client.delete(f"{INBOX}/threads/{thread_id}", headers=world.camille.headers)
    assert r.status_code == 204
    assert [i["id"] for i in threads(client, world.camille)["items"]] == [keep]
    assert client.get(f"{INBOX}/threads/{thread_id}", headers=world.camille.headers).status_code == 404
    assert client.delete(f"{INBOX}/threads/{thread_id}", headers=world.camille.headers).status_code == 404
    db.expire_all()
    row = db.get(Thread, thread_id)
    assert row is not None and row.deleted_at is not None
    assert row.purge_after - row.deleted_at == dt.timedelta(days=round(365.25 * 10))
    # the professional still has their conversation until the purge
    assert client.get(f"{FHIR}/{first['id']}", headers=world.durand.headers()).status_code == 200

    result = runner.invoke(args=["inbox", "purge"])
    assert result.exit_code == 0 and json.loads(result.output)["threads_removed"] == 0
    with time_machine.travel(now + dt.timedelta(days=3654)):
        result = runner.invoke(args=["inbox", "purge", "--dry-run"])
        assert json.loads(result.output) == {"dry_run": True, "threads_removed": 1}
        assert blob_keys(db, "attachments") == attachment_objects  # a dry run destroys nothing
        result = runner.invoke(args=["notifications", "run", "inbox_purge"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["inbox_purge"] == {"threads_removed": 1}
        again = runner.invoke(args=["notifications", "run", "inbox_purge"])
        assert json.loads(again.output)["inbox_purge"] == "already done today"
    db.expire_all()
    assert db.get(Thread, thread_id) is None and db.get(Thread, keep) is not None
    assert count(db, Message, Message.thread_id == thread_id) == 0
    assert count(db, SearchToken, SearchToken.thread_id == thread_id) == 0
    assert client.get(f"{FHIR}/{first['id']}", headers=world.durand.headers()).status_code == 404
    assert count(db, AuditEntry, AuditEntry.action == "inbox.purged", AuditEntry.patient_id == world.camille.id) == 1
    # the purged thread's attachment bytes left the blob store with it, once the purge committed
    kept = db.scalars(select(Attachment.id).join(Message, Message.id == Attachment.message_id)
                      .where(Message.thread_id == keep)).all()
    assert blob_keys(db, "attachments") == {blobs.attachment_key(i) for i in kept} and len(kept) == 1


def test_a_closed_account_receives_nothing(app, client, db, world):
    from backend.accounts.models import AccountState, Patient

    db.get(Patient, world.louis.id).state = AccountState.CLOSED
    db.commit()
    r = client.post(FHIR, headers=world.durand.headers(), content_type="application/fhir+json",
                    data=json.dumps(communication(world.louis.nir, "Objet", "Texte")))
    assert r.status_code == 422 and outcome_code(r) == "inbox_unknown_patient"


# --- query counts --------------------------------------------------------------------------------------------

def test_listing_and_reading_cost_the_same_whatever_the_volume(client, db, world, count_queries):
    def costs() -> tuple[int, int, int]:
        listing = threads(client, world.camille)  # warm-up of the request path
        count_queries.statements.clear()
        listing = threads(client, world.camille, limit=50)
        listed = count_queries.count
        count_queries.statements.clear()
        threads(client, world.camille, q="bilan durand")
        searched = count_queries.count
        thread_id = listing["items"][0]["id"]
        count_queries.statements.clear()
        client.get(f"{INBOX}/threads/{thread_id}", headers=world.camille.headers)
        read = count_queries.count
        return listed, searched, read

    def conversation(n_replies: int) -> None:
        first = send(client, world.durand, world.camille.nir, copies=[world.petit.rpps],
                     attachments=[{"contentType": "text/plain", "title": "r.txt",
                                   "data": base64.b64encode(TXT).decode()}])
        thread_id = thread_of(db, first["id"])
        for i in range(n_replies):
            reply(client, world.camille, thread_id, f"Réponse {i}", reply_all="true")
            send(client, world.durand, world.camille.nir, None, f"Suite {i}", answers=first["id"])

    conversation(1)
    conversation(1)
    small = costs()
    for _ in range(6):
        conversation(3)
    assert costs() == small

    def pro_search() -> int:
        count_queries.statements.clear()
        assert client.get(FHIR, headers=world.durand.headers(), query_string={"_count": "100"}).status_code == 200
        return count_queries.count

    few = pro_search()
    conversation(4)
    assert pro_search() == few


def test_professional_search_filters_and_pages(client, db, world):
    start = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.timezone.utc)
    with time_machine.travel(start, tick=False):
        first = send(client, world.durand, world.camille.nir, "Premier", "Un")
    with time_machine.travel(start + dt.timedelta(days=1), tick=False):
        other = send(client, world.durand, world.louis.nir, "Autre patient", "Deux")
        for i in range(3):
            send(client, world.durand, world.camille.nir, None, f"Suite {i}", answers=first["id"])
    headers = world.durand.headers()

    def ids(**query: str) -> list[str]:
        bundle = client.get(FHIR, headers=headers, query_string=query).get_json()
        return [e["resource"]["id"] for e in bundle.get("entry", [])]

    assert first["id"] in ids(**{"part-of": f"Communication/{first['id']}"})
    assert other["id"] not in ids(**{"part-of": f"Communication/{first['id']}"})
    assert ids(**{"patient.identifier": f"{INS}|{world.louis.nir}"}) == [other["id"]]
    assert ids(sent="lt2026-03-02T12:00:00Z") == [first["id"]]
    assert first["id"] not in ids(sent="ge2026-03-03")
    assert ids(**{"patient.identifier": f"{INS}|100000000000000"}) == []
    # pages: newest first, the next link carries an opaque cursor
    seen, url = [], f"{FHIR}?_count=2"
    while url:
        bundle = client.get(url, headers=headers).get_json()
        seen += [e["resource"]["id"] for e in bundle["entry"]]
        url = next((link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None)
    assert len(seen) == 5 and len(set(seen)) == 5 and seen == sorted(seen, key=int, reverse=True)
    for bad in ({"sent": "hier"}, {"sender-kind": "robot"}, {"part-of": "Patient/1"}, {"_cursor": "forged"},
                {"patient.identifier": "1234"}):
        r = client.get(FHIR, headers=headers, query_string=bad)
        assert r.status_code in (400, 422) and r.get_json()["resourceType"] == "OperationOutcome", bad


def test_the_capability_statement_describes_the_inbox(app):
    from backend.fhir import capability

    with app.test_request_context("/fhir/R4/metadata"):
        statement = capability.capability_statement(app, "https://carnet.example/fhir/R4/", "2026-03-02")
    [resource] = [r for r in statement["rest"][0]["resource"] if r["type"] == "Communication"]
    r4({"resourceType": "CapabilityStatement", "status": "active", "date": "2026-03-02", "kind": "instance",
        "fhirVersion": "4.0.1", "format": ["json"], "rest": [{"mode": "server", "resource": [resource]}]})
    assert {p["name"] for p in resource["searchParam"]} == {"patient.identifier", "part-of", "sender-kind", "sent",
                                                           "_count"}
    assert {o["name"] for o in resource["operation"]} == {"end", "forbid-replies", "allow-replies"}
    assert "communication-replies-allowed" in resource["documentation"]
