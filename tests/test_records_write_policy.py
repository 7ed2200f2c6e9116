"""Writes are decided like reads (domain.md): the write side of the access policy, end to end.

- ITI-65: any identified professional deposits a new document, a blocked one too, and learns nothing by
  it; the author is the depositing professional; replacing (relatesTo replaces) is for a professional
  who may read the original and is its author or of its author's structure; a refused bundle writes
  nothing but the refusal's trace, which the patient reads in their history.
- $release: the author only (others: "not found"), and not once blocked.
- Appointments and secure messages from professionals: refused to a blocked professional and on an
  opposed or closed account (answered as an unknown patient), and no identity trait in any answer.

Every test goes through HTTP, so that it says what a client sees.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from backend.agenda.models import Appointment
from backend.audit.models import AuditEntry
from backend.messaging.models import Message
from backend.records.documents.models import Document
from tests.fhir_helpers import (FHIR_JSON, OID_INS_NIR, Doc, Pro, assert_outcome, grant, post_bundle, provide_bundle,
                                search)
from tests.helpers import NIR_CAMILLE, NIR_LOUIS, STRONG_PASSWORD, activate, assert_problem, bearer, create_patient

S_PARC = "1750712184"       # idNat_Struct of a FINESS: "1" + 750712184
S_OTHER = "1690000000"
HISTORY = "/api/v1/record/history"
IDENTITY = ("Camille", "CAMILLE", "Martin", "MARTIN", "1984-07-14")


def make_pro(app, rpps: str, *, family: str, structure: str | None = None, profession: str = "10") -> Pro:
    """A professional acting for a structure (their identity provider's idNat_Struct)."""
    from backend.db import get_session
    from backend.professionals.service import create_professional

    with app.app_context():
        session = get_session()
        pro, token = create_professional(session, rpps=rpps, family_name=family, given_name="Alex",
                                         profession=profession, organisation="Cabinet du Parc")
        pro.structure_id = structure
        session.commit()
        return Pro(pro.id, pro.rpps, token)


@dataclass
class World:
    patient_id: int
    headers: dict[str, str]
    author: Pro          # of the Parc structure; wrote the original
    colleague: Pro       # same structure, authorised
    outsider: Pro        # another structure, authorised
    unrelated: Pro       # no authorisation
    blocked: Pro         # authorised, then blocked
    original: int        # the author's document (FINESS of the Parc)


def documents(app, patient_id: int) -> list[tuple[int, int | None]]:
    from backend.db import get_session

    with app.app_context():
        return [(d.id, d.replaced_by_id) for d in get_session().scalars(
            select(Document).where(Document.patient_id == patient_id).order_by(Document.id))]


def deposit(client, pro: Pro, *docs: Doc, nir: str = NIR_CAMILLE, **headers: str):
    return post_bundle(client, pro, provide_bundle(nir, list(docs)), **headers)


def located(response) -> list[int]:
    """The document ids a transaction-response names."""
    body = response.get_json()
    assert body["resourceType"] == "Bundle" and body["type"] == "transaction-response"
    return sorted({int(e["response"]["location"].rsplit("/", 1)[1]) for e in body["entry"]
                   if "location" in e["response"]})


def history(client, world: World, lang: str = "fr") -> list[dict[str, Any]]:
    r = client.get(HISTORY, headers={**world.headers, "Accept-Language": lang})
    assert r.status_code == 200
    return r.get_json()["items"]


@pytest.fixture
def world(app, client) -> World:
    camille = create_patient(app)
    headers = bearer(activate(client, camille)["access_token"])
    author = make_pro(app, "10000000001", family="Auteur", structure=S_PARC)
    pros = {"colleague": make_pro(app, "10000000002", family="Collegue", structure=S_PARC),
            "outsider": make_pro(app, "10000000003", family="Dehors", structure=S_OTHER),
            "unrelated": make_pro(app, "10000000004", family="Inconnu", structure=S_PARC),
            "blocked": make_pro(app, "10000000005", family="Bloque", structure=S_PARC)}
    r = deposit(client, author, Doc(b"<v1/>", author_rpps=author.rpps,
                                    author_structure=("http://finess.sante.gouv.fr", S_PARC[1:])))
    assert r.status_code == 200, r.get_data(as_text=True)
    (original,) = located(r)
    for name in ("colleague", "outsider", "blocked"):
        assert client.post("/api/v1/record/access/consents", json={"professional_id": pros[name].id},
                           headers=headers).status_code == 201
    assert client.post("/api/v1/record/access/blocks", json={"rpps": pros["blocked"].rpps},
                       headers=headers).status_code == 201
    grant(app, camille.patient_id, author)
    return World(camille.patient_id, headers, author, original=original, **pros)


def replacing(world: World, content: bytes = b"<v2/>") -> Doc:
    return Doc(content, replaces=str(world.original))


def assert_nothing_written(app, client, world: World, before: list[tuple[int, int | None]]) -> None:
    """The record is as it was: the original still current and still in the patient's list."""
    assert documents(app, world.patient_id) == before
    listed = client.get("/api/v1/record/documents", headers=world.headers).get_json()["items"]
    assert world.original in {d["id"] for d in listed}


# --- replacing ------------------------------------------------------------------------------------------------

def test_a_blocked_professional_cannot_replace_nothing_is_written_and_the_patient_sees_the_refusal(
        app, client, world):
    before = documents(app, world.patient_id)
    # a bundle with a new document and a replacement: atomic, so the new one is not stored either
    r = deposit(client, world.blocked, Doc(b"<new/>"), replacing(world))
    body = assert_outcome(r, 403, "access_blocked")
    assert body["issue"][0]["diagnostics"] == "Le titulaire du dossier a bloqué votre accès."
    assert_nothing_written(app, client, world, before)
    refused = [i for i in history(client, world) if i["action"] == "document.replace.refused"]
    assert len(refused) == 1
    assert refused[0]["outcome"] == "refused" and refused[0]["actor"]["rpps"] == world.blocked.rpps
    assert refused[0]["reason"] == "blocked" and refused[0]["reason_label"] == "Refusé : professionnel bloqué par vous"
    assert refused[0]["label"] == "Remplacement d'un document"
    assert refused[0]["document"]["id"] == world.original
    english = [i for i in history(client, world, "en") if i["action"] == "document.replace.refused"]
    assert english[0]["label"] == "Document replaced" and english[0]["reason_label"] == "Refused: blocked by you"
    # the professional reads the refusal in English when asking for it
    r = deposit(client, world.blocked, replacing(world), **{"Accept-Language": "en"})
    assert assert_outcome(r, 403)["issue"][0]["diagnostics"] == "The record holder has blocked your access."


def test_a_professional_without_authorisation_cannot_replace(app, client, world):
    before = documents(app, world.patient_id)
    assert_outcome(deposit(client, world.unrelated, replacing(world)), 403, "access_no_consent")
    assert_nothing_written(app, client, world, before)


def test_an_authorised_professional_of_another_structure_cannot_replace(app, client, world):
    before = documents(app, world.patient_id)
    body = assert_outcome(deposit(client, world.outsider, replacing(world)), 403, "access_not_author")
    assert "structure" in body["issue"][0]["diagnostics"]
    assert_nothing_written(app, client, world, before)
    assert search(client, world.outsider, NIR_CAMILLE, status="current").get_json()["total"] == 1


def test_the_author_and_an_authorised_colleague_of_the_structure_replace(app, client, db, world):
    r = deposit(client, world.colleague, replacing(world))
    assert r.status_code == 200, r.get_data(as_text=True)
    (second,) = located(r)
    r = deposit(client, world.colleague, Doc(b"<v3/>", replaces=str(second)))   # now its author
    assert r.status_code == 200, r.get_data(as_text=True)
    (third,) = located(r)
    r = deposit(client, world.author, Doc(b"<v4/>", replaces=str(third)))       # of the author's structure
    assert r.status_code == 200, r.get_data(as_text=True)
    (fourth,) = located(r)
    assert documents(app, world.patient_id) == [(world.original, second), (second, third), (third, fourth),
                                                (fourth, None)]
    replaced = [i for i in history(client, world) if i["action"] == "document.replaced"]
    assert [(i["actor"]["rpps"], i["reason"], i["document"]["id"]) for i in replaced] == [
        (world.author.rpps, "author_structure", third), (world.colleague.rpps, "author", second),
        (world.colleague.rpps, "author_structure", world.original)]
    assert replaced[2]["reason_label"] == "Professionnel de la structure de l'auteur"
    assert replaced[1]["reason_label"] == "Auteur du document"
    current = search(client, world.author, NIR_CAMILLE, status="current").get_json()
    assert [e["resource"]["id"] for e in current["entry"]] == [str(fourth)]


def test_a_masked_original_is_replaced_only_by_who_may_see_it(app, client, world):
    assert client.post(f"/api/v1/record/documents/{world.original}/mask", headers=world.headers).status_code == 200
    before = documents(app, world.patient_id)
    # the colleague of the structure may no longer read it: it is as if it did not exist
    assert_outcome(deposit(client, world.colleague, replacing(world)), 403, "access_not_readable")
    assert_nothing_written(app, client, world, before)
    # its author still sees it, and replaces it
    r = deposit(client, world.author, replacing(world))
    assert r.status_code == 200, r.get_data(as_text=True)


def test_an_unknown_original_answers_like_one_out_of_scope(app, client, world):
    for ref in ("987654", "1.2.250.1.999.1.2.3"):
        assert_outcome(deposit(client, world.colleague, Doc(b"<x/>", replaces=ref)), 403, "access_not_readable")


def test_a_closed_record_is_not_fed_and_answers_as_unknown(app, client, world):
    r = client.post("/api/v1/account/close", json={"password": STRONG_PASSWORD}, headers=world.headers)
    assert r.status_code == 200, r.get_json()
    before = documents(app, world.patient_id)
    assert_outcome(deposit(client, world.author, Doc(b"<late/>")), 422, "fhir_unknown_patient")
    assert documents(app, world.patient_id) == before


# --- depositing -------------------------------------------------------------------------------------------------

def test_a_blocked_professional_still_deposits_and_learns_nothing(app, client, world):
    r = deposit(client, world.blocked, Doc(b"<new/>", title="Compte rendu"))
    assert r.status_code == 200, r.get_data(as_text=True)
    text = r.get_data(as_text=True)
    (new,) = located(r)
    # one answer per entry sent (List, DocumentReference, Binary), naming only the new document
    assert len(r.get_json()["entry"]) == 3 and new != world.original
    for trait in IDENTITY + (NIR_CAMILLE,):
        assert trait not in text
    # a deposit gives no read right: not the new document, nor the list
    assert_outcome(client.get(f"/fhir/R4/DocumentReference/{new}", headers=world.blocked.headers()), 404)
    assert_outcome(search(client, world.blocked, NIR_CAMILLE), 403, "access_blocked")
    # the patient got it, and reads who added it
    listed = client.get("/api/v1/record/documents", headers=world.headers).get_json()["items"]
    assert new in {d["id"] for d in listed}
    stored = [i for i in history(client, world) if i["action"] == "document.stored" and i["document"]
              and i["document"]["id"] == new]
    assert stored and stored[0]["actor"]["rpps"] == world.blocked.rpps


def test_the_author_of_a_deposit_is_the_depositing_professional(app, client, world):
    before = documents(app, world.patient_id)
    r = deposit(client, world.unrelated, Doc(b"<forged/>", author_rpps=world.author.rpps, author_name="Alex AUTEUR"))
    body = assert_outcome(r, 422, "fhir_author_not_depositor")
    assert "auteur" in body["issue"][0]["diagnostics"]
    # another structure than the depositor's is refused too
    r = deposit(client, world.unrelated, Doc(b"<forged/>", author_rpps=world.unrelated.rpps,
                                             author_structure=("https://sirene.fr", "26440310600018")))
    assert_outcome(r, 422, "fhir_author_structure_not_depositor")
    assert documents(app, world.patient_id) == before
    # naming nobody, or themselves: the author is who deposits
    r = deposit(client, world.unrelated, Doc(b"<mine/>"))
    (mine,) = located(r)
    from backend.db import get_session

    with app.app_context():
        doc = get_session().get(Document, mine)
        assert (doc.author_professional_id, doc.author_rpps, doc.author_structure_id) == (
            world.unrelated.id, world.unrelated.rpps, S_PARC)


# --- releasing -------------------------------------------------------------------------------------------------

def test_only_an_unblocked_author_releases(app, client, world):
    r = deposit(client, world.blocked, Doc(b"<hidden/>", labels=["INVISIBLE_PATIENT"]))
    (hidden,) = located(r)
    url = f"/fhir/R4/DocumentReference/{hidden}/$release"
    assert_outcome(client.post(url, headers=world.colleague.headers()), 404, "fhir_not_found")
    body = assert_outcome(client.post(url, headers=world.blocked.headers()), 403, "access_blocked")
    assert body["issue"][0]["diagnostics"] == "Le titulaire du dossier a bloqué votre accès."
    listed = client.get("/api/v1/record/documents", headers=world.headers).get_json()["items"]
    assert hidden not in {d["id"] for d in listed}
    refused = [i for i in history(client, world) if i["action"] == "document.release.refused"]
    assert sorted(i["reason"] for i in refused) == ["blocked", "not_release_author"]
    assert all(i["document"] is None for i in refused)  # still hidden from the patient: never named


# --- appointments -----------------------------------------------------------------------------------------------

def appointment(nir: str, start: str = "2031-03-04T10:00:00+01:00", end: str = "2031-03-04T10:20:00+01:00"):
    return {"resourceType": "Appointment", "status": "booked", "start": start, "end": end,
            "participant": [{"actor": {"identifier": {"system": f"urn:oid:{OID_INS_NIR}", "value": nir}}}]}


def post_appointment(client, pro: Pro, body: dict[str, Any]):
    return client.post("/fhir/R4/Appointment", data=json.dumps(body), headers=pro.headers(),
                       content_type=FHIR_JSON)


def appointments(app, patient_id: int) -> list[str]:
    from backend.db import get_session

    with app.app_context():
        return list(get_session().scalars(select(Appointment.status).where(Appointment.patient_id == patient_id)))


def no_identity(response) -> None:
    text = response.get_data(as_text=True)
    for trait in IDENTITY + ("Louis", "BERNARD", "1990-02-01"):
        assert trait not in text, trait


def test_an_unrelated_practice_books_but_learns_no_identity_trait(app, client, world):
    r = post_appointment(client, world.unrelated, appointment(NIR_CAMILLE))
    assert r.status_code == 201, r.get_data(as_text=True)
    no_identity(r)
    actor = r.get_json()["participant"][0]["actor"]
    assert actor["identifier"]["value"] == NIR_CAMILLE and "display" not in actor
    created = r.get_json()["id"]
    for read in (client.get(f"/fhir/R4/Appointment/{created}", headers=world.unrelated.headers()),
                 client.get("/fhir/R4/Appointment", query_string={"date": "2031-03-04"},
                            headers=world.unrelated.headers())):
        assert read.status_code == 200
        no_identity(read)
    assert appointments(app, world.patient_id) == ["booked"]


def test_a_blocked_professional_neither_books_nor_cancels(app, client, world):
    r = post_appointment(client, world.colleague, appointment(NIR_CAMILLE))
    assert r.status_code == 201
    created = r.get_json()["id"]
    body = assert_outcome(post_appointment(client, world.blocked, appointment(NIR_CAMILLE)), 403, "access_blocked")
    assert body["issue"][0]["diagnostics"] == "Le titulaire du dossier a bloqué votre accès."
    no_identity(post_appointment(client, world.blocked, appointment(NIR_CAMILLE)))
    # the colleague is blocked in turn: their appointment stays, and they cannot cancel it
    assert client.post("/api/v1/record/access/blocks", json={"rpps": world.colleague.rpps},
                       headers=world.headers).status_code == 201
    cancel = client.post(f"/fhir/R4/Appointment/{created}/$cancel", headers=world.colleague.headers())
    assert_outcome(cancel, 403, "access_blocked")
    assert appointments(app, world.patient_id) == ["booked"]
    refused = {i["action"]: i["reason"] for i in history(client, world) if i["outcome"] == "refused"}
    assert refused["appointment.create.refused"] == "blocked" and refused["appointment.cancel.refused"] == "blocked"


@pytest.mark.parametrize("state", ["opposed", "closed"])
def test_no_appointment_for_an_opposed_or_closed_account(app, client, world, state):
    louis = create_patient(app, NIR_LOUIS, "1990-02-01", given="Louis", family="Bernard", sex="M")
    if state == "opposed":
        r = client.post("/api/v1/opposition", json={"nir": louis.nir, "birth_date": louis.birth_date,
                                                     "activation_code": louis.code})
    else:
        tokens = activate(client, louis)
        r = client.post("/api/v1/account/close", json={"password": STRONG_PASSWORD},
                        headers=bearer(tokens["access_token"]))
    assert r.status_code == 200, r.get_json()
    for pro in (world.unrelated, world.colleague):
        response = post_appointment(client, pro, appointment(NIR_LOUIS))
        assert_outcome(response, 404, "agenda_patient_not_found")   # as for an INS nobody holds
        no_identity(response)
    assert appointments(app, louis.patient_id) == []


# --- secure messages --------------------------------------------------------------------------------------------

def communication(nir: str, text: str = "Bonjour, vos résultats sont arrivés.", answers: int | None = None):
    body: dict[str, Any] = {"resourceType": "Communication", "status": "completed",
                            "subject": {"identifier": {"system": f"urn:oid:{OID_INS_NIR}", "value": nir}},
                            "topic": {"text": "Vos résultats"}, "payload": [{"contentString": text}]}
    if answers is not None:
        body["inResponseTo"] = [{"reference": f"Communication/{answers}"}]
    return body


def write(client, pro: Pro, body: dict[str, Any]):
    return client.post("/fhir/R4/Communication", data=json.dumps(body), headers=pro.headers(),
                       content_type=FHIR_JSON)


def messages(app, patient_id: int) -> int:
    from backend.db import get_session

    with app.app_context():
        return get_session().scalar(select(func.count()).select_from(Message).where(Message.patient_id == patient_id))


def test_a_blocked_professional_cannot_write_to_the_patient(app, client, world):
    body = assert_outcome(write(client, world.blocked, communication(NIR_CAMILLE)), 403, "access_blocked")
    assert body["issue"][0]["diagnostics"] == "Le titulaire du dossier a bloqué votre accès."
    assert messages(app, world.patient_id) == 0
    # a professional blocked after writing can neither write again in the thread nor manage it
    r = write(client, world.colleague, communication(NIR_CAMILLE))
    assert r.status_code == 201, r.get_data(as_text=True)
    no_identity(r)
    first = int(r.get_json()["id"])
    assert client.post("/api/v1/record/access/blocks", json={"rpps": world.colleague.rpps},
                       headers=world.headers).status_code == 201
    assert_outcome(write(client, world.colleague, communication(NIR_CAMILLE, answers=first)), 403, "access_blocked")
    assert_outcome(client.post(f"/fhir/R4/Communication/{first}/$forbid-replies", headers=world.colleague.headers()),
                   403, "access_blocked")
    assert messages(app, world.patient_id) == 1
    refused = [i["reason"] for i in history(client, world) if i["action"] == "message.send.refused"]
    assert refused == ["blocked", "blocked"]
    # the patient may still answer them: their choice
    thread = client.get("/api/v1/inbox/threads", headers=world.headers).get_json()["items"][0]["id"]
    assert client.post(f"/api/v1/inbox/threads/{thread}/messages", data={"body": "Merci."},
                       content_type="multipart/form-data", headers=world.headers).status_code == 201


def test_the_patient_starts_a_conversation_only_with_a_professional_who_wrote(app, client, world):
    def start(lang: str = "fr"):
        return client.post("/api/v1/inbox/threads", data={"professional_id": world.outsider.id, "subject": "Question",
                                                          "body": "Bonjour"}, content_type="multipart/form-data",
                           headers={**world.headers, "Accept-Language": lang})

    body = assert_problem(start(), 403, "inbox_new_thread_not_allowed")
    assert body["detail"] == "Vous pouvez écrire uniquement à un professionnel de santé qui vous a déjà écrit."
    assert assert_problem(start("en"), 403)["detail"].startswith("You may only write")
    assert [i["reason"] for i in history(client, world) if i["action"] == "message.start.refused"] == [
        "not_correspondent", "not_correspondent"]
    assert write(client, world.outsider, communication(NIR_CAMILLE)).status_code == 201
    assert start().status_code == 201


# --- the patient's own writes ------------------------------------------------------------------------------------

def test_the_patient_deletes_only_their_own_uploads_and_reads_why(app, client, world):
    r = client.delete(f"/api/v1/record/documents/{world.original}", headers=world.headers)
    body = assert_problem(r, 403, "document_not_own_upload")
    assert body["detail"].startswith("Vous ne pouvez supprimer que les documents que vous avez ajoutés")
    english = client.delete(f"/api/v1/record/documents/{world.original}",
                            headers={**world.headers, "Accept-Language": "en"})
    assert not assert_problem(english, 403)["detail"].startswith("Vous")
    assert documents(app, world.patient_id) == [(world.original, None)]
    from backend.db import get_session

    with app.app_context():
        assert get_session().scalar(select(AuditEntry.action).where(
            AuditEntry.patient_id == world.patient_id, AuditEntry.action == "document.delete.refused"))


# Every reason a write may be refused for (the write rules' own, and the read decision's that replacing
# passes on), written here from policy.py's rules: each has a French and an English text for whoever is
# refused, and a label in the patient's history.
WRITE_REFUSALS = ["other_patient", "account_closed", "not_permitted", "blocked", "no_consent", "not_readable",
                  "not_author", "not_release_author", "not_own_upload", "not_correspondent", "not_administrator",
                  "not_own_appointment", "emergency_disabled"]


@pytest.mark.parametrize("reason", WRITE_REFUSALS)
def test_every_write_refusal_reads_in_french_and_english(app, reason):
    from backend.i18n import MESSAGES, message
    from backend.records.access.policy import refusal_code, write_refusal

    with app.app_context():
        code = refusal_code(write_refusal(reason))
        assert code in MESSAGES, code
        french, english = message(code, "fr"), message(code, "en")
        assert french and english and french != english, code
        label = f"history_reason_{reason}"
        assert label in MESSAGES and message(label, "fr").startswith("Refusé"), label
        assert message(label, "en").startswith("Refused"), label
