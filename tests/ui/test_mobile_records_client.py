"""The records part of the mobile client (``mobile.api.records``) against a live backend, no window:
query strings, the multipart upload, downloads and page images, and French refusals as ApiError."""

from __future__ import annotations

from pathlib import Path

import pytest

from mobile.api import ApiError, CarnetClient
from mobile.api.records import Download, RecordsApi, _clean, _filename
from tests.ui.conftest import fresh_totp_code

IMAGING_PDF = (Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "external" / "ans-drimbox" / "cda"
               / "IMG_CR_IMG_2023.11_Doc_metier.pdf")


@pytest.fixture(scope="module")
def api(live_backend):
    """One activated patient for the module, signed in once (each sign-in needs a fresh TOTP step)."""
    patient = live_backend.create_patient(given_name="Hélène", family_name="Garnier")
    with CarnetClient(live_backend.url) as client:
        client.activate(patient.nir, patient.birth_date, patient.activation_code, patient.password)
        patient.totp_secret = client.enrol_totp()["secret"]
        client.confirm_enrolment(fresh_totp_code(patient))
        api = RecordsApi(client)
        api.patient = patient
        yield api


def test_clean_and_attachment_names():
    assert _clean({"category": ["A", "B"], "q": "", "mine": False, "emergency": True, "cursor": None,
                   "limit": 20}) == {"category": ["A", "B"], "emergency": "true", "limit": 20}
    assert _filename("attachment; filename=\"Scanner.pdf\"; filename*=UTF-8''Scanner%20t%C3%AAte.pdf",
                     "x") == "Scanner tête.pdf"
    assert _filename('attachment; filename="historique.csv"', "x") == "historique.csv"
    # a name that tries to leave the folder it is saved in keeps only its last part
    assert _filename("attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd", "x") == "passwd"
    assert _filename(None, "document-3") == "document-3"


def test_upload_list_view_download_and_delete(api, tmp_path):
    pdf = tmp_path / "Compte rendu radio.pdf"
    pdf.write_bytes(IMAGING_PDF.read_bytes())
    note = tmp_path / "notes.txt"
    note.write_text("Tension prise le matin.\nPas de douleur.", encoding="utf-8")

    uploaded = api.upload(pdf, category="RADIO_SC", title="Scanner", comment="Apporté par moi",
                          service_date="2024-03-05")
    assert uploaded["own_upload"] and uploaded["category"] == "RADIO_SC"
    assert uploaded["viewer"] == {"kind": "pages", "source": "pdf", "page_count": 1, "page_type": "image/png"}
    text = api.upload(note, category="AUTR_DOC")

    page = api.documents(categories=["RADIO_SC"], mine=True, limit=1)
    assert [d["id"] for d in page["items"]] == [uploaded["id"]] and page["next_cursor"] is None
    # counts per category apply the other filters, not the category chosen (the chips keep their numbers)
    assert {c["category"]: c["count"] for c in page["categories"]} == {"RADIO_SC": 1, "AUTR_DOC": 1}
    everything = api.documents(limit=1)
    assert everything["total"] == 2 and everything["next_cursor"]
    following = api.documents(limit=1, cursor=everything["next_cursor"])
    assert {everything["items"][0]["id"], following["items"][0]["id"]} == {uploaded["id"], text["id"]}
    assert api.documents(q="Scanner")["total"] == 1

    image = api.page_image(uploaded["id"], 1, width=400)
    assert image.startswith(b"\x89PNG")
    original = api.content(uploaded["id"])
    assert isinstance(original, Download) and original.content == IMAGING_PDF.read_bytes()
    assert original.filename == "Scanner.pdf" and original.content_type == "application/pdf"
    assert "Pas de douleur." in api.narrative(text["id"])["text"]

    masked = api.mask(uploaded["id"])
    assert masked["masked"] and not api.unmask(uploaded["id"])["masked"]
    assert api.set_mask_new_documents(True) == {"mask_new_documents": True}
    assert api.document_settings() == {"mask_new_documents": True}
    api.set_mask_new_documents(False)

    api.delete_document(text["id"])
    with pytest.raises(ApiError) as gone:
        api.document(text["id"])
    assert gone.value.status == 404 and gone.value.detail == "Ce document n'existe pas ou n'est pas accessible."
    with pytest.raises(ApiError) as own:
        api.request_removal(uploaded["id"], "duplicate")
    assert own.value.detail == "Vous avez ajouté ce document vous-même : vous pouvez le supprimer directement."


def test_upload_refusals_are_french_sentences(api, tmp_path):
    fake = tmp_path / "ordonnance.pdf"
    fake.write_text("pas un PDF", encoding="utf-8")
    with pytest.raises(ApiError) as mismatch:
        api.upload(fake)
    assert mismatch.value.code == "upload_type_mismatch" and mismatch.value.detail.startswith(
        "Le contenu du fichier ne correspond pas à son extension")
    assert [e.field for e in mismatch.value.errors] == ["file"]
    script = tmp_path / "photo.exe"
    script.write_bytes(b"MZ")
    with pytest.raises(ApiError) as kind:
        api.upload(script)
    assert kind.value.status == 415 and kind.value.detail.startswith("Ce type de fichier n'est pas accepté.")


def test_profile_measures_entries_and_directives(api):
    with pytest.raises(ApiError) as refused:
        api.add_entry("allergy", {"substance": "", "since": "2099"})
    assert refused.value.detail == "Certaines informations saisies sont invalides."
    assert {e.field: e.message for e in refused.value.errors} == {
        "substance": "Ce champ est obligatoire.", "since": "La date ne peut pas être dans le futur."}
    entry = api.add_entry("allergy", {"substance": "Pénicilline", "severity": "severe"})
    assert api.update_entry("allergy", entry["id"], {"reaction": "Urticaire"})["fields"]["reaction"] == "Urticaire"
    assert api.set_entry_state("allergy", entry["id"], "hide")["hidden"] is True
    assert api.entries("allergy")["items"] == []
    assert [e["id"] for e in api.entries("allergy", include_hidden=True)["items"]] == [entry["id"]]
    assert api.delete_entry("allergy", entry["id"])["status"] == "deleted"

    for day, value in (("2026-01-10", "80,5"), ("2026-02-10", 79)):
        api.add_measure({"type": "weight", "value": value, "measured_at": f"{day}T08:00"})
    series = api.measure_series("weight")
    assert series["unit"] == "kg" and [v for _, v in series["series"]["value"]] == [80.5, 79.0]
    assert api.delete_measure(series["items"][0]["id"])["status"] == "deleted"
    kinds = api.kinds()
    assert {k["kind"] for k in kinds["kinds"]} >= {"allergy", "treatment", "contact"}

    version = api.add_directive("good_health", text="Pas d'acharnement.")
    assert version["version"] == 1
    assert api.directives()["good_health"]["current"]["text"] == "Pas d'acharnement."
    assert api.add_directive("good_health", withdrawn=True)["withdrawn"] is True
    assert len(api.directive_versions("good_health")["items"]) == 2
    organ = api.set_organ_donation("accepts", informed_at="2025-05-01")
    assert organ["label"] and api.organ_donation_history()["items"][0]["position"] == "accepts"
    assert set(api.profile()["views"]) == {"dispensed", "reimbursements", "oncology", "proposals"}


def test_access_search_consent_block_switches_and_history(api, live_backend):
    live_backend.carnet("pro", "create", "--rpps", "10109990101", "--family-name", "Mercier", "--given-name",
                        "Anne", "--profession", "10")
    [pro] = api.search_professionals("Mercier")["items"]
    assert api.search_professionals("10109990101")["items"][0]["id"] == pro["id"]
    preview = api.preview(pro["id"])
    assert preview["allowed"] is False and preview["basis"] == "if_authorised"
    api.authorise(pro["id"])
    assert api.preview(pro["id"])["allowed"] is True
    assert api.set_medecin_traitant(pro["id"])["professional"]["standing"]["medecin_traitant"] is True
    assert api.access()["medecin_traitant"]["id"] == pro["id"]
    api.set_medecin_traitant(None)
    api.revoke(pro["id"])
    assert api.consents()["items"] == []
    api.block(pro["rpps"])
    assert [b["rpps"] for b in api.blocks()["items"]] == [pro["rpps"]]
    api.unblock(pro["rpps"])

    with pytest.raises(ApiError) as wrong:
        api.set_emergency_switches("Pas-le-bon-1", samu=False, btg=True, masked=False)
    assert (wrong.value.status, wrong.value.detail) == (403, "Le mot de passe saisi est incorrect.")
    assert api.set_emergency_switches(api.patient.password, samu=False, btg=True, masked=True) == {
        "samu": False, "btg": True, "masked": True}

    page = api.history(actors=["patient"], limit=3)
    assert len(page["items"]) == 3 and page["next_cursor"]
    assert api.history(actors=["patient"], cursor=page["next_cursor"], limit=3)["items"][0]["id"] < page["items"][-1]["id"]
    csv = api.export_history("csv", actors=["patient"])
    assert csv.filename.startswith("historique-acces-") and csv.filename.endswith(".csv")
    assert "Autorisation donnée à un professionnel" in csv.content.decode("utf-8-sig")
    pdf = api.export_history("pdf")
    assert pdf.content.startswith(b"%PDF") and pdf.content_type == "application/pdf"
    with pytest.raises(ValueError):
        api.export_history("xlsx")


def test_migration_without_a_legacy_dossier(api):
    status = api.migration_status()
    assert status["state"] in ("none", "pending", "no_dossier") and status["processed"] == 0
    assert api.migration_items()["items"] == [] and api.migration_conflicts()["groups"] == []


def test_network_failure_is_a_sentence_too(tmp_path):
    api = RecordsApi(CarnetClient("http://127.0.0.1:9", timeout=(0.5, 0.5)))
    with pytest.raises(ApiError) as failed:
        api.content(1)
    assert failed.value.is_network and failed.value.detail.startswith("Impossible de joindre Carnet.")
