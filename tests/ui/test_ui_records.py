"""The record's screens in the real app, against the live backend, under Xvfb: home, documents (search,
categories, endless scroll, PDF pages, CDA narrative, mask, removal request, upload with the file
chooser, delete), the medical profile (charts, measures and entries with the server's French
refusals), directives and organ donation, access and consent, the access history with its
downloads, and the review of a legacy import.

The data is real and goes in through the backend's own code: a doctor's software deposits real
ANS CDA documents and a real PDF (``store_document``, the function ITI-65 calls, run in the
backend's environment), the patient's measures and entries go through the API, and the legacy
import is ``carnet migrate import`` on real fixture files. Screenshots: ``screenshots/records-*.png``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mobile.api import CarnetClient
from mobile.api.records import RecordsApi
from tests.ui.conftest import Patient, fresh_totp_code
from tests.ui.journey_support import scroll_to, shot_with_big_targets as shot, sign_in, swipe_up, texts

pytestmark = pytest.mark.ui

REPO = Path(__file__).resolve().parents[2]
EXTERNAL = REPO.parent / "shared" / "fixtures" / "external"
V3 = EXTERNAL / "ans-testcontenucda-3.0"
IMAGING_PDF = EXTERNAL / "ans-drimbox" / "cda" / "IMG_CR_IMG_2023.11_Doc_metier.pdf"
NIR_PAT_TROIS = "279035121518989"  # the INS-NIR (test OID .10) of most ANS CDA 3.0 examples
BIRTH_PAT_TROIS = "1979-03-05"

# Runs in the backend's environment (its database and master key): what a doctor's software does
# through ITI-65, by the same function the MHD endpoint calls. Title and type come from each CDA's
# own header, so categories are the ones the record derives for real documents.
DEPOSIT = r"""
import datetime as dt, json, sys
from pathlib import Path
from lxml import etree
from sqlalchemy import select
from backend import create_app
from backend.db import get_session
from backend.professionals.models import Professional
from backend.professionals.service import create_professional
from backend.records.documents import service as docs
from backend.records import vault
from backend.records.access.policy import Actor

HL7 = "{urn:hl7-org:v3}"
spec = json.loads(sys.argv[1])
app = create_app()
with app.app_context():
    session = get_session()
    for rpps, family, given, profession, organisation in spec["professionals"]:
        if session.scalar(select(Professional).where(Professional.rpps == rpps)) is None:
            create_professional(session, rpps=rpps, family_name=family, given_name=given, profession=profession,
                                organisation=organisation)
    ids = []
    for item in spec["documents"]:
        pro = session.scalar(select(Professional).where(Professional.rpps == item.get("rpps", spec["rpps"])))
        content = Path(item["path"]).read_bytes()
        title, type_code = item.get("title"), item.get("type_code")
        if item["mime"] == "text/xml":
            parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
            root = etree.fromstring(content, parser)
            title = title or (root.findtext(f"{HL7}title") or "").strip()
            code = root.find(f"{HL7}code")
            type_code = type_code or (code.get("code") if code is not None else None)
        meta = docs.DocumentMeta(
            title=title, mime_type=item["mime"], type_code=type_code, class_code=item.get("class_code"),
            author_professional_id=pro.id, author_rpps=pro.rpps, author_name=f"{pro.given_name} {pro.family_name}",
            author_profession=pro.profession_code, author_organisation=pro.organisation,
            service_date=dt.datetime.fromisoformat(item["service_date"]) if item.get("service_date") else None)
        ids.append(docs.store_document(session, vault(session), spec["patient_id"], content, meta,
                                       source="professional", actor=Actor.of_professional(pro)).document.id)
    session.commit()
    print(json.dumps(ids))
"""


# -- data, through the real backend ------------------------------------------------------


# The doctors of these scenarios (RPPS, family name, given name, profession, organisation), created in
# the directory the first time a document is deposited.
PROFESSIONALS = [("10109990001", "Lambert", "Claire", "10", "Cabinet des Terreaux"),
                 ("10109990002", "Roux", "Paul", "10", "Laboratoire des Charmes"),
                 ("10109990003", "Lambertin", "Hugo", "21", "Pharmacie du Parc")]
LAMBERT, ROUX, LAMBERTIN = (p[0] for p in PROFESSIONALS)


def deposit(live_backend, patient_id, rpps: str, documents: list[dict]) -> list[int]:
    """Documents deposited by the doctor ``rpps``, in one process of the backend's environment."""
    spec = {"patient_id": patient_id, "rpps": rpps, "documents": documents, "professionals": PROFESSIONALS}
    result = subprocess.run([sys.executable, "-c", DEPOSIT, json.dumps(spec)], env=live_backend.env, cwd=REPO,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def real_cda(*names: str) -> list[dict]:
    return [{"path": str(V3 / name), "mime": "text/xml"} for name in names]


# -- driving helpers ---------------------------------------------------------------------


def open_from_home(ui, tile: str):
    home = ui.app.show("home")
    ui.wait_for_screen("home")
    ui.wait_until(lambda: home.loaded, "the home page is loaded")
    ui.settle()
    ui.tap(home.ids.records.ids[tile])
    return home


# -- documents ---------------------------------------------------------------------------


def test_documents_from_home_to_viewer_upload_and_delete(ui, enrolled_patient, live_backend, tmp_path):
    cdas = ["VAC-NOTE_2023.01.xml", "BIO-CR-BIO_2024.01_Microbiologie_V2.xml", "IPS-FR_2024.01.xml",
            "LDL-SES_2022.01.xml", "CSE-CS8_2024.01.xml", "TLM-CR_2022.01.xml", "AVC-SUNV_2022.01.xml",
            "OBP-SNE_2024.01.xml", "IMG_CR_IMG_2024.01.xml", "BIO-TROD_2024.01_COVID-19.xml",
            "CSE-MDE_2023.01.xml", "DLU-EHPAD-FLUDT_2022.01.xml", "SDM-MR_2024.01_nouveau-ne.xml",
            "VAC_2023.01.xml", "CSE-CS24_2025.01.xml"]
    *_, pdf_id = deposit(live_backend, enrolled_patient.patient_id, ROUX, real_cda(*cdas) + [
        {"path": str(IMAGING_PDF), "mime": "application/pdf", "title": "Scanner de la tête et du cou", "rpps": LAMBERT,
         "type_code": "18748-4", "service_date": "2024-03-05T10:00:00+01:00"}])
    api = sign_in(ui, enrolled_patient)
    total = len(cdas) + 1

    # home: the new documents and the entry points
    home = open_from_home(ui, "documents")
    section = home.ids.records
    assert section.new_label == f"{total} nouveau(x) document(s) dans votre dossier"
    assert section.ids.new_documents.children[-1].title == "Scanner de la tête et du cou"
    documents = ui.wait_for_screen("documents")
    ui.app.back("home")
    ui.wait_for_screen("home")
    ui.settle()
    shot(ui, "records-01-home")

    # documents: categories with counts, the first page, then the next one while scrolling
    ui.tap(section.ids.documents)
    documents = ui.wait_for_screen("documents")
    ui.wait_until(lambda: documents.loaded, "the documents are listed")
    ui.settle()
    assert documents.summary == f"{total} document(s)"
    counts = {c["label"]: c["count"] for c in documents.categories}
    assert sum(counts.values()) == total and counts["Vaccinations"] >= 2
    assert len(documents.rows()) == 15 and documents.has_more
    assert documents.rows()[0].title == "Scanner de la tête et du cou"
    shot(ui, "records-02-documents")
    for _attempt in range(8):
        if len(documents.rows()) == total:
            break
        swipe_up(ui, documents.ids.page)
    ui.wait_until(lambda: len(documents.rows()) == total and not documents.loading_more, "the next page arrived")
    ui.settle()
    assert not documents.has_more and documents.ids.footer.text == "Fin de la liste"
    scroll_to(ui, documents.ids.footer)
    shot(ui, "records-03-documents-end-of-list")

    # a category, then a search and the filters
    documents.ids.page.scroll_y = 1
    ui.frames(3)
    chip = next(c for c in documents.ids.categories.children if c.text.startswith("Vaccinations"))
    ui.tap(chip)
    ui.wait_until(lambda: documents.category == "CAR_VAC" and len(documents.rows()) == counts["Vaccinations"],
                  "only vaccinations are listed")
    assert all(r.category == "Vaccinations" for r in documents.rows())
    ui.tap(next(c for c in documents.ids.categories.children if c.text == "Tous"))
    ui.type(documents.ids.search, "tête et du cou")
    ui.tap(documents.ids.search_button)
    ui.wait_until(lambda: [r.title for r in documents.rows()] == ["Scanner de la tête et du cou"], "the search")
    ui.tap(documents.ids.filters_button)
    filters = documents.filters
    ui.type(filters.ids.date_from, "99/99/2024")
    ui.tap(filters.ids.apply)
    ui.settle()
    assert documents.error == "Saisissez les dates au format JJ/MM/AAAA."
    ui.type(filters.ids.date_from, "01/01/2024")
    ui.type(filters.ids.date_to, "31/12/2024")
    ui.tap(filters.ids.sort_service)
    ui.tap(filters.ids.apply)
    ui.wait_until(lambda: documents.applied.get("date_from") == "2024-01-01" and not ui.app.busy, "dates applied")
    ui.settle()
    assert [r.title for r in documents.rows()] == ["Scanner de la tête et du cou"]
    shot(ui, "records-04-documents-search-and-filters")

    # the PDF: a page image rendered by the server
    ui.tap(documents.rows()[0])
    viewer = ui.wait_for_screen("document_viewer")
    ui.wait_until(lambda: viewer.loaded, "the document is shown")
    ui.settle()
    assert viewer.kind == "pages" and viewer.page_count == 1 and viewer.ids.page_image.texture is not None
    assert "Auteur : Claire LAMBERT (Cabinet des Terreaux)" in viewer.info
    assert viewer.ids.page_image.texture.width >= 880
    shot(ui, "records-05-viewer-pdf")
    ui.tap(viewer.ids.zoom)
    ui.settle()
    assert viewer.ids.page_image.width == 2 * viewer.ids.page_scroller.width
    scroll_to(ui, viewer.ids.page_image)
    shot(ui, "records-05b-viewer-pdf-zoomed")
    ui.tap(viewer.ids.zoom)

    # mask it from professionals, ask for its removal
    ui.tap(viewer.ids.mask)
    ui.wait_until(lambda: viewer.masked, "the document is masked")
    ui.settle()
    assert viewer.notice.startswith("Ce document est maintenant masqué")
    assert api.document(pdf_id)["masked"] is True
    ui.tap(viewer.ids.ask_removal)
    ui.settle()
    reasons = [w for w in viewer.ids.reasons.children]
    ui.tap(next(r for r in reasons if r.value == "duplicate"))
    ui.tap(viewer.ids.send_removal)
    ui.wait_until(lambda: viewer.notice.startswith("Votre demande de suppression"), "the request is sent")
    ui.settle()
    assert api.document(pdf_id)["removal_requested_at"]
    assert "Suppression demandée" in texts(viewer.ids.badges)
    shot(ui, "records-06-viewer-masked-removal-requested")
    ui.tap(viewer.ids.mask)
    ui.wait_until(lambda: not viewer.masked, "the document is visible again")

    # a CDA level 3: its narrative, tables as lines
    ui.app.back("documents")
    ui.wait_for_screen("documents")
    ui.tap(documents.filters.ids.clear_filters)
    ui.wait_until(lambda: len(documents.rows()) == 15, "the whole list is back")
    bio = next(r for r in documents.rows() if r.title == "Compte rendu d'examens biologiques")
    ui.tap(bio)
    ui.wait_for_screen("document_viewer")
    ui.wait_until(lambda: viewer.loaded and viewer.kind == "narrative", "the narrative is shown")
    ui.settle()
    assert viewer.title == "Compte rendu d'examens biologiques"
    narrative = texts(viewer.ids.narrative)
    assert "Examen cytobactériologique des urines (ECBU)" in narrative
    assert "Leucocytes : 500 /mL" in narrative and "<" not in narrative.replace("<0,", "")
    shot(ui, "records-07-viewer-cda-narrative")

    # upload: a file that lies about its type is refused in French; a real scan is accepted
    scans = tmp_path / "Documents"
    scans.mkdir()
    (scans / "ordonnance.pdf").write_text("Ceci n'est pas un PDF", encoding="utf-8")
    (scans / "ordonnance-kine.png").write_bytes(api.page_image(pdf_id, 1, 900))
    ui.app.back("documents")
    ui.wait_for_screen("documents")
    ui.tap(documents.ids.add)
    upload = ui.wait_for_screen("documents_upload")
    upload.start_folder = str(scans)

    def choose(name: str) -> None:
        ui.tap(upload.ids.choose)
        ui.settle()
        tree = upload.ids.chooser.layout.ids.treeview
        node = ui.wait_until(lambda: next((n for n in tree.iterate_all_nodes() if getattr(n, "path", "").endswith(name)),
                                          None), f"{name} is listed")
        ui.frames(3)
        ui.tap(node)
        ui.wait_until(lambda: upload.ids.chooser.selection, "the file is selected")
        if name.endswith(".png"):
            shot(ui, "records-08-upload-file-chooser")
        ui.tap(upload.ids.take)
        ui.settle()

    choose("ordonnance.pdf")
    assert upload.chosen.endswith("ordonnance.pdf")
    ui.tap(upload.ids.send)
    ui.wait_until(lambda: upload.error, "the refusal is shown")
    ui.settle()
    assert upload.last_error.code == "upload_type_mismatch"
    assert upload.ids.upload_error.text == upload.last_error.detail
    assert upload.error.startswith("Le contenu du fichier ne correspond pas à son extension .PDF")
    shot(ui, "records-09-upload-refused")

    choose("ordonnance-kine.png")
    ui.type(upload.ids.title, "Ordonnance kiné")
    ui.tap(next(c for c in upload.ids.categories.children if c.value == "ORD_SOIN"))
    ui.type(upload.ids.service_date, "12/03/2024")
    ui.type(upload.ids.comment, "Photo du papier.")
    assert upload.comment_count == "16 / 3000 caractères"
    shot(ui, "records-10-upload-form")
    ui.tap(upload.ids.send)
    ui.wait_for_screen("document_viewer")
    ui.wait_until(lambda: viewer.loaded and viewer.title == "Ordonnance kiné", "the upload is shown")
    ui.settle()
    assert viewer.kind == "pages" and viewer.can_delete and not viewer.can_request_removal
    assert "Votre commentaire : Photo du papier." in viewer.info
    shot(ui, "records-11-viewer-own-image")

    # delete it (own upload), after confirming
    ui.tap(viewer.ids.delete)
    ui.settle()
    ui.tap(viewer.ids.confirm_delete)
    ui.wait_for_screen("documents")
    ui.wait_until(lambda: documents.loaded and not ui.app.busy, "the list is reloaded")
    ui.settle()
    assert documents.notice == "Le document « Ordonnance kiné » a été supprimé."
    assert documents.summary == f"{total} document(s)"


# -- profile, measures, entries, directives ----------------------------------------------


def test_profile_charts_entries_and_directives(ui, enrolled_patient):
    api = sign_in(ui, enrolled_patient)
    for day, weight in (("2026-06-02", "74,1"), ("2026-07-03", "73.4"), ("2026-08-30", "72.8"), ("2026-10-01", "71.9")):
        api.add_measure({"type": "weight", "value": weight, "measured_at": f"{day}T08:00"})
    for day, sys_, dia in (("2026-09-01", 142, 91), ("2026-10-01", 135, 86), ("2026-11-01", 128, 82)):
        api.add_measure({"type": "blood_pressure", "systolic": sys_, "diastolic": dia, "measured_at": f"{day}T09:30"})
    api.add_entry("treatment", {"name": "Amlodipine 5 mg", "dosage": "1 comprimé le matin", "start_date": "2026-09"})

    open_from_home(ui, "profile")
    profile = ui.wait_for_screen("profile")
    ui.wait_until(lambda: profile.loaded, "the profile is shown")
    ui.settle()
    cards = {c.title: c for c in profile.measure_cards()}
    assert set(cards) == {"Poids", "Tension artérielle"}
    assert [len(s.points) for s in cards["Tension artérielle"].ids.chart.series] == [3, 3]
    assert cards["Poids"].latest.startswith("Dernière mesure : 71,9 kg")
    shot(ui, "records-12-profile-charts")

    # one measure: its chart and a new value, first out of range (refused in French, under the field)
    ui.tap(cards["Poids"])
    measure = ui.wait_for_screen("profile_measure")
    ui.wait_until(lambda: measure.loaded and measure.mtype == "weight", "the weight history")
    ui.settle()
    assert len(measure.ids.chart.series[0].points) == 4 and len(measure.rows()) == 4
    ui.type(measure.ids.value, "720")
    ui.tap(measure.ids.save)
    ui.wait_until(lambda: measure.ids.value_error.text, "the refusal is shown")
    ui.settle()
    assert measure.error == "Certaines informations saisies sont invalides."
    assert measure.ids.value_error.text == "La valeur doit être comprise entre 0,2 et 500 kg."
    shot(ui, "records-13-measure-refused")
    ui.type(measure.ids.value, "71,2")
    ui.tap(measure.ids.save)
    ui.wait_until(lambda: measure.notice == "Mesure enregistrée : 71,2 kg." and len(measure.rows()) == 5, "saved")
    ui.settle()
    assert measure.ids.chart.series[0].points[-1][1] == 71.2
    measure.ids.page.scroll_y = 1
    ui.frames(3)
    shot(ui, "records-14-measure-chart")

    # blood pressure: two lines, two fields
    ui.tap(measure.ids.change_type)
    ui.tap(next(c for c in measure.ids.types.children if c.value == "blood_pressure"))
    ui.wait_until(lambda: measure.mtype == "blood_pressure" and measure.loaded and not ui.app.busy, "blood pressure")
    ui.settle()
    assert measure.two_values and [s.label for s in measure.ids.chart.series] == ["Systolique", "Diastolique"]
    shot(ui, "records-15-measure-blood-pressure")

    # entries: an allergy with the server's messages field by field, then corrected, then edited
    ui.app.back("profile")
    ui.wait_for_screen("profile")
    ui.wait_until(lambda: profile.loaded and not ui.app.busy, "the profile is back")
    ui.tap(next(r for r in profile.kind_rows() if r.kind == "allergy"))
    entries = ui.wait_for_screen("profile_entries")
    ui.wait_until(lambda: entries.loaded and entries.kind == "allergy", "allergies")
    ui.tap(entries.ids.add)
    ui.settle()
    fields = entries.fields
    ui.tap(next(c for c in fields["severity"].chips.children if c.value == "severe"))
    ui.type(fields["since"].input, "2099")
    ui.tap(entries.ids.save)
    ui.wait_until(lambda: fields["substance"].error, "the refusal is shown")
    ui.settle()
    assert entries.error == "Certaines informations saisies sont invalides."
    assert fields["substance"].error == "Ce champ est obligatoire."
    assert fields["since"].error == "La date ne peut pas être dans le futur."
    scroll_to(ui, fields["substance"])
    shot(ui, "records-16-entry-refused")
    ui.type(fields["substance"].input, "Pénicilline")
    ui.type(fields["since"].input, "05/2012")
    ui.type(fields["reaction"].input, "Urticaire")
    ui.tap(entries.ids.save)
    ui.wait_until(lambda: [r.title for r in entries.rows()] == ["Pénicilline"], "the allergy is listed")
    ui.settle()
    row = entries.rows()[0]
    assert "Gravité : Sévère" in row.detail and "Depuis : 05/2012" in row.detail
    ui.tap(row)
    ui.settle()
    assert entries.editing and entries.entry_editable and fields["substance"].input.text == "Pénicilline"
    ui.type(fields["reaction"].input, "Urticaire géante")
    ui.tap(entries.ids.save)
    ui.wait_until(lambda: entries.notice == "Modification enregistrée." and not ui.app.busy, "the correction")
    ui.settle()
    assert "Réaction : Urticaire géante" in entries.rows()[0].detail
    shot(ui, "records-17-entries")

    # directives: a first version, a second one, the versions; then organ donation
    ui.app.back("profile")
    ui.wait_for_screen("profile")
    ui.tap(profile.ids.directives)
    directives = ui.wait_for_screen("directives")
    ui.wait_until(lambda: directives.loaded, "the directives")
    block = directives.contexts["end_of_life"]
    for text in ("Pas d'acharnement.", "Pas d'acharnement. Soulager la douleur."):
        ui.tap(block.ids.write)
        ui.type(block.ids.text, text)
        ui.tap(block.ids.save)
        ui.wait_until(lambda: directives.notice.startswith("Nouvelle version enregistrée") and not ui.app.busy,
                      "the version is saved")
        directives.notice = ""
    ui.settle()
    assert block.versions == 2 and block.current_text == "Pas d'acharnement. Soulager la douleur."
    ui.tap(block.ids.history)
    ui.wait_until(lambda: len(block.ids.versions.children) == 2, "the versions are listed")
    ui.settle()
    scroll_to(ui, block)
    shot(ui, "records-18-directives-versions")
    ui.tap(next(o for o in directives.ids.positions.children if o.value == "refuses_partially"))
    ui.type(directives.ids.organ_comment, "Sauf les cornées.")
    ui.tap(directives.ids.save_position)
    ui.wait_until(lambda: "donneur" in directives.organ_text or "refus" in directives.organ_text.lower(), "saved")
    ui.settle()
    assert directives.notice.startswith("Votre position sur le don d'organes est enregistrée")
    assert api.directives()["organ_donation"]["position"] == "refuses_partially"
    scroll_to(ui, directives.ids.save_position)
    shot(ui, "records-19-organ-donation")


def test_profile_labels_follow_the_language_the_patient_picks(ui, signed_in):
    # The kinds are asked once per session, but their labels are the server's translation: after a
    # switch to English and back, the allergy's fields read in French again (not the English of the visit).
    from mobile.screens.records_common import profile_kinds

    def severity_label() -> str:
        allergy = next(k for k in profile_kinds()["kinds"] if k["kind"] == "allergy")
        return next(f["label"] for f in allergy["fields"] if f["name"] == "severity")

    assert severity_label() == "Gravité"
    ui.app.apply_preferences({"language": "en", "text_size": "normal"})
    try:
        assert severity_label() == "Severity"
    finally:
        ui.app.apply_preferences({"language": "fr", "text_size": "normal"})
    assert severity_label() == "Gravité"


# -- access and history ------------------------------------------------------------------


def test_access_consent_emergency_and_history(ui, enrolled_patient, live_backend, tmp_path, monkeypatch):
    # the app's own folder (Kivy's user_data_dir): not the real home of whoever runs the tests
    monkeypatch.setattr(ui.app, "_user_data_dir", str(tmp_path / "carnet"))
    deposit(live_backend, enrolled_patient.patient_id, ROUX,
            real_cda("VAC-NOTE_2023.01.xml", "BIO-CR-BIO_2024.01_Microbiologie_V2.xml", "IPS-FR_2024.01.xml"))
    api = sign_in(ui, enrolled_patient)
    for weight in ("70", "70,5", "71", "71,5", "72", "72,5", "73", "73,5", "74", "74,5", "75", "75,5", "76", "76,5",
                   "77", "77,5", "78", "78,5"):
        api.add_measure({"type": "weight", "value": weight})  # each one is a line of the history

    open_from_home(ui, "access")
    access = ui.wait_for_screen("access")
    ui.wait_until(lambda: access.loaded, "the access page")
    ui.settle()
    assert access.samu and access.btg and not access.masked
    shot(ui, "records-20-access")

    # find a doctor by name, see what she could see, authorise her and make her médecin traitant
    ui.type(access.ids.query, "lambert")
    ui.tap(access.ids.search)
    ui.wait_until(lambda: access.searched, "the search")
    ui.settle()
    found = {r.professional["rpps"]: r for r in access.result_rows()}
    # the shared backend may hold other Lamberts (other scenarios): ours are among them
    assert found[LAMBERT].name == "Claire LAMBERT" and found[LAMBERTIN].name == "Hugo LAMBERTIN"
    assert ROUX not in found
    shot(ui, "records-21-access-search")
    ui.tap(found[LAMBERT])
    pro = ui.wait_for_screen("access_professional")
    ui.wait_until(lambda: pro.loaded and pro.pro_name == "Claire LAMBERT", "the preview")
    ui.settle()
    assert not pro.allowed and pro.verdict.startswith("Ne peut pas consulter votre dossier aujourd'hui")
    assert "3 de vos 3 document(s)" in pro.verdict and pro.reason == "Refusé : sans votre autorisation"
    shot(ui, "records-22-professional-preview")
    ui.tap(pro.ids.authorise)
    ui.wait_until(lambda: pro.authorised and pro.allowed, "she is authorised")
    ui.tap(pro.ids.medecin_traitant)
    ui.wait_until(lambda: pro.medecin_traitant, "she is the médecin traitant")
    ui.settle()
    assert pro.notice == "Claire LAMBERT est déclaré(e) comme votre médecin traitant."
    assert pro.verdict == "Peut consulter 3 de vos 3 document(s)."
    shot(ui, "records-23-professional-authorised")

    # the pharmacist next door: blocked, which beats everything; then unblocked from the list
    ui.app.back("access")
    ui.wait_for_screen("access")
    ui.wait_until(lambda: access.loaded and not ui.app.busy, "the access page is back")
    assert [r.name for r in access.authorised_rows()] == ["Claire LAMBERT"]
    ui.type(access.ids.block_rpps, LAMBERTIN)
    ui.tap(access.ids.block)
    ui.wait_until(lambda: access.blocked_notice.startswith(f"Le numéro RPPS {LAMBERTIN} est bloqué"), "blocked")
    ui.settle()
    assert [b["rpps"] for b in api.access()["blocked"]] == [LAMBERTIN]
    scroll_to(ui, access.ids.blocked)
    shot(ui, "records-24-access-blocked")
    ui.tap(access.ids.blocked.children[0].ids.unblock)
    ui.wait_until(lambda: access.blocked_notice.endswith("n'est plus bloqué.") and not ui.app.busy, "unblocked")
    assert api.access()["blocked"] == []

    # emergency switches: changed only with the password, refused in French when it is wrong
    ui.tap(access.ids.switch_masked)
    ui.tap(access.ids.switch_samu)
    assert access.switches_changed
    ui.type(access.ids.password, "Pas-le-bon-1")
    ui.tap(access.ids.save_switches)
    ui.wait_until(lambda: access.switches_error, "the refusal is shown")
    ui.settle()
    assert access.switches_error == "Le mot de passe saisi est incorrect."
    assert api.access()["switches"] == {"samu": True, "btg": True, "masked": False}
    # the switches show what is saved until the password is accepted: the asked change is pending
    assert access.ids.switch_masked.active is False and access.ids.switch_masked.pending
    assert access.ids.switch_samu.active is True and access.ids.switch_samu.pending
    scroll_to(ui, access.ids.switches_error)
    shot(ui, "records-25-emergency-wrong-password")
    ui.type(access.ids.password, enrolled_patient.password)
    ui.tap(access.ids.save_switches)
    ui.wait_until(lambda: access.switches_notice == "Vos réglages d'accès en urgence sont enregistrés.", "saved")
    ui.settle()
    assert api.access()["switches"] == {"samu": False, "btg": True, "masked": True}
    assert not access.switches_changed and access.masked and not access.samu
    assert access.ids.switch_masked.active and not access.ids.switch_masked.pending
    scroll_to(ui, access.ids.switches_notice)
    shot(ui, "records-26-emergency-saved")

    # the history: everything above, page after page; professionals only; downloads
    ui.tap(access.ids.history)
    history = ui.wait_for_screen("history")
    ui.wait_until(lambda: history.loaded and len(history.rows()) == 20, "the first page")
    ui.settle()
    assert history.has_more
    assert history.rows()[0].what == "Réglages d'accès en urgence modifiés"
    shot(ui, "records-27-history")
    for _attempt in range(6):
        if not history.has_more:
            break
        swipe_up(ui, history.ids.page)
        ui.wait_until(lambda: not history.loading_more, "the next page")
    ui.settle()
    assert not history.has_more and len(history.rows()) > 20
    history.ids.page.scroll_y = 1
    ui.frames(3)
    ui.tap(next(c for c in history.ids.actors.children if c.value == "professional"))
    ui.wait_until(lambda: history.applied.get("actors") == ["professional"] and not ui.app.busy, "filtered")
    ui.settle()
    assert history.rows() and all("(Médecin)" in r.who for r in history.rows())
    ui.tap(history.ids.export_pdf)
    ui.wait_until(lambda: history.last_export.endswith(".pdf"), "the PDF is saved")
    ui.settle()
    saved = Path(history.last_export)
    assert saved.read_bytes().startswith(b"%PDF") and history.ready.path == saved
    assert str(saved) not in texts(history) and saved.name in history.ids.ready.title  # a name, never a path
    assert saved.is_relative_to(Path(ui.app.user_data_dir))
    shot(ui, "records-28-history-professionals-pdf")
    ui.tap(history.ids.export_csv)
    ui.wait_until(lambda: history.last_export.endswith(".csv"), "the CSV is saved")
    assert "Paul ROUX;Médecin;Ajout d'un document" in Path(history.last_export).read_text(encoding="utf-8-sig")


# -- migration review --------------------------------------------------------------------


def test_legacy_import_progress_report_and_conflicts(ui, live_backend, tmp_path):
    legacy = tmp_path / "legacy"
    dossier = legacy / NIR_PAT_TROIS
    dossier.mkdir(parents=True)
    for source in sorted(V3.glob("*.xml")):
        shutil.copyfile(source, dossier / source.name)
    shutil.copyfile(V3 / "VAC-NOTE_2023.01.xml", dossier / "copie-VAC-NOTE.xml")  # the same note twice
    shutil.copyfile(EXTERNAL / "directproject-xdm" / "samplexdm.zip", dossier / "samplexdm.zip")  # nobody's INS
    # a second summary of the same patient whose allergy list says something else
    ips = (V3 / "IPS-FR_2024.01.xml").read_bytes()
    changed = ips.replace(b"1.2.250.1.213.1.1.1.51.2024.1.1", b"1.2.250.1.213.1.1.1.51.2024.1.9")
    (dossier / "IPS-bis.xml").write_bytes(
        changed.replace(b'<code code="XM5DJ7" displayName="PARACETAMOL"', b'<code code="XM9ZZ1" displayName="LATEX"', 1))

    created = json.loads(live_backend.carnet(
        "patient", "create", "--nir", NIR_PAT_TROIS, "--birth-date", BIRTH_PAT_TROIS, "--family-name", "Test",
        "--given-name", "Dominique", "--sex", "F").stdout.strip().splitlines()[-1])
    patient = Patient(nir=NIR_PAT_TROIS, birth_date=BIRTH_PAT_TROIS, given_name="Dominique", family_name="Test",
                      activation_code=created["activation_code"], patient_id=created["patient_id"])
    with CarnetClient(live_backend.url) as client:
        client.activate(patient.nir, patient.birth_date, patient.activation_code, patient.password)
        patient.totp_secret = client.enrol_totp()["secret"]
        client.confirm_enrolment(fresh_totp_code(patient))
    sign_in(ui, patient)

    # the operators' bulk import; the patient's home shows it as soon as it has started
    with CarnetClient(live_backend.url) as other:
        other.token = ui.app.client.token
        status = RecordsApi(other)

        def started() -> bool:
            time.sleep(0.2)
            return status.migration_status()["processed"] > 0

        log = tmp_path / "import.log"
        with log.open("w") as output:
            importer = subprocess.Popen([*_carnet(), "migrate", "import", str(legacy)], env=live_backend.env,
                                        stdout=output, stderr=subprocess.STDOUT)
        try:
            ui.wait_until(started, "the import has started", timeout=90)
            home = open_from_home(ui, "migration")
            assert home.ids.records.migration  # "Import en cours : 3 sur 25", "… à vérifier"
            review = ui.wait_for_screen("migration_review")
            states = []
            ui.wait_until(lambda: states.append(review.state) or (
                review.state == "done" and review.processed == 25 and review.open_conflicts), "the import is done",
                timeout=90)
            assert importer.wait(timeout=60) == 0, log.read_text()[-2000:]
        finally:
            if importer.poll() is None:
                importer.kill()
                importer.wait()
    # while it ran, the screen followed it by itself (polling the status)
    assert states[-1] == "done"
    ui.wait_until(lambda: review.shown == 20 and review.has_more and not ui.app.busy, "the report's first page")
    ui.settle()
    # 21 ANS examples (6 are someone else's), the same note twice, an XDM without INS, a second summary
    assert review.counts_text == "17 importé(s) · 1 fusionné(s) · 7 mis de côté"
    assert review.sentence.startswith("L'import de votre ancien dossier est terminé")
    first = review.item_rows()[0]
    assert first.item["source"] == "AVC-SUNV_2022.01.xml" and first.item["status"] == "imported"
    # the patient reads where it came from and what was noticed in words, never file names or codes
    for row in review.item_rows():
        assert row.source.startswith("Repris de votre ancien dossier") and ".xml" not in row.source
        assert not any(code in row.detail for code in row.item.get("warnings") or [])
    scroll_to(ui, first)
    shot(ui, "records-29-migration-report")
    # the two summaries disagree on the allergies: keep one, hide the other
    conflicts = review.conflict_rows()
    allergies = [r for r in conflicts if r.kind == "allergy"]
    assert sorted(r.title for r in allergies) == ["LATEX", "PARACETAMOL"]
    review.ids.page.scroll_y = 1
    ui.frames(3)
    shot(ui, "records-30-migration-conflicts")
    before = review.open_conflicts
    ui.tap(next(r for r in allergies if r.title == "PARACETAMOL").ids.keep)
    ui.wait_until(lambda: review.open_conflicts == before - 1, "kept")
    ui.tap(next(r for r in review.conflict_rows() if r.title == "LATEX").ids.hide)
    ui.wait_until(lambda: review.open_conflicts == before - 2, "hidden")
    ui.settle()
    assert review.notice == "« LATEX » est masqué de votre profil."
    assert not [r for r in review.conflict_rows() if r.kind == "allergy"]

    # what was merged, and what was set aside and why; then the patient says they have seen it
    review.ids.page.scroll_y = 1
    ui.frames(3)
    ui.tap(next(c for c in review.ids.filters.children if c.value == "duplicate"))
    ui.wait_until(lambda: review.shown == 1 and not ui.app.busy, "only the merged item")
    assert review.item_rows()[0].item["source"] == "copie-VAC-NOTE.xml"
    ui.tap(next(c for c in review.ids.filters.children if c.value == "quarantined"))
    ui.wait_until(lambda: review.shown == 7 and not ui.app.busy, "only the items set aside")
    ui.settle()
    rows = {r.item["source"]: r for r in review.item_rows()}
    assert "identifiant national" in rows["samplexdm.zip › Document01.xml"].detail
    assert rows["CSE-CS8_2024.01.xml"].detail.startswith("Raison : ")
    assert rows["CSE-CS8_2024.01.xml"].item["reason"] == "identity_other_person"
    scroll_to(ui, review.ids.report_items)
    shot(ui, "records-31-migration-set-aside")
    scroll_to(ui, review.ids.reviewed)
    ui.tap(review.ids.reviewed)
    ui.wait_until(lambda: review.reviewed, "reviewed")
    ui.settle()
    assert review.notice.startswith("Merci : votre ancien dossier est vérifié.")
    shot(ui, "records-32-migration-reviewed")


def _carnet() -> list[str]:
    beside = Path(sys.executable).with_name("carnet")
    return [str(beside)] if beside.exists() else [shutil.which("carnet") or "carnet"]
