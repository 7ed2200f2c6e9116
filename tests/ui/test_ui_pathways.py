"""The seeds' other records in the real app, against the live backend, under Xvfb (issue 20): implanted
devices in the profile and on the emergency card, vaccinations to confirm (from a dispensed vaccine) and
the prevention calendar that follows them, the cancer pathway with its care team and the "write to" that
respects the inbox's rule, and the reimbursement history fed by the Assurance Maladie.

The world goes in over the wire as the real actors send it: professionals' software deposit real ANS
CDA documents over ITI-65 (``POST /fhir/R4`` with their token), the oncologist writes over FHIR
``Communication``, and the insurer's feed is ``carnet insurer feed --url`` over HTTP with its own token.
Screenshots: ``screenshots/pathways-*.png``.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.fhir_helpers import Doc, provide_bundle, vaccine_dispensation
from tests.ui.journey_support import V3, professional, scroll_to, send_message, shot_with_big_targets as shot, sign_in, texts

pytestmark = pytest.mark.ui
LOINC = "http://loinc.org"


def _pdf(text: str) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=14)
    pdf.multi_cell(0, 10, text)
    return bytes(pdf.output())


def deposit(live_backend, pro, nir: str, docs: list[Doc]) -> list[int]:
    """ITI-65 as the professional's software sends it."""
    r = pro.post(f"{live_backend.url}/fhir/R4", data=json.dumps(provide_bundle(nir, docs)), timeout=30)
    assert r.status_code == 200, r.text[:500]
    return [int(e["response"]["location"].rsplit("/", 1)[1]) for e in r.json()["entry"]
            if "DocumentReference/" in e["response"].get("location", "")]


def at(day: dt.date) -> str:
    return f"{day.isoformat()}T09:00:00+01:00"


def set_up_world(live_backend, nir: str) -> dict[str, int]:
    today = dt.date.today()
    surgeon = professional(live_backend, "10109980001", "Moreau", "Paul")
    oncologist = professional(live_backend, "10109980002", "Lefort", "Marc")
    pathologist = professional(live_backend, "10109980003", "Vidal", "Hélène")
    radiologist = professional(live_backend, "10109980004", "Imbert", "Rémi")
    pharmacist = professional(live_backend, "10109980005", "Delive", "Pierre", profession="21")
    pdf = "application/pdf"
    ids = {}
    # a discharge letter carrying an implanted pacemaker (LDL-SES 2022.01, ANS)
    [ids["letter"]] = deposit(live_backend, surgeon, nir, [Doc((V3 / "LDL-SES_2022.01.xml").read_bytes(),
                                                               type_code="11490-0", type_system=LOINC,
                                                               class_code="11", title="Lettre de liaison",
                                                               service_date=at(today - dt.timedelta(days=400)))])
    # the cancer pathway, step by step
    d0 = today - dt.timedelta(days=220)
    steps = [
        (radiologist, Doc((V3 / "IMG_CR_IMG_2024.01.xml").read_bytes(), type_code="18748-4", type_system=LOINC,
                          class_code="31", title="Mammographie et échographie", service_date=at(d0 - dt.timedelta(10)))),
        (pathologist, Doc(_pdf("Carcinome canalaire infiltrant, grade II."), mime=pdf, type_code="60568-3",
                          type_system=LOINC, class_code="10", title="Biopsie mammaire", service_date=at(d0))),
        (oncologist, Doc(_pdf("Proposition : chirurgie, chimiothérapie."), mime=pdf, type_code="34794-8",
                         type_system=LOINC, class_code="11", title="Fiche RCP sénologie",
                         service_date=at(d0 + dt.timedelta(7)))),
        (oncologist, Doc(_pdf("Calendrier des soins."), mime=pdf, type_code="18776-5", type_system=LOINC,
                         class_code="44", title="Programme personnalisé de soins",
                         service_date=at(d0 + dt.timedelta(10)))),
        (surgeon, Doc(_pdf("Tumorectomie."), mime=pdf, type_code="34874-8", type_system=LOINC, class_code="10",
                      title="Compte rendu opératoire", service_date=at(d0 + dt.timedelta(30)))),
        (oncologist, Doc(_pdf("Suivi alterné."), mime=pdf, type_code="18776-5", type_system=LOINC, class_code="44",
                         title="Programme personnalisé de l'après-cancer", service_date=at(today - dt.timedelta(15)))),
    ]
    for pro, doc in steps:
        deposit(live_backend, pro, nir, [doc])
    # a dTcaP booster the pharmacy dispensed (the ANS eDISP-MED example's structure)
    dispensed = today - dt.timedelta(days=12)
    [ids["dispensation"]] = deposit(live_backend, pharmacist, nir, [Doc(
        vaccine_dispensation(dispensed, atc="J07CA02", name="REPEVAX, suspension injectable en seringue préremplie"),
        type_code="60593-1", type_system=LOINC, class_code="43", title="Dispensation médicamenteuse",
        service_date=at(dispensed))])
    # the oncologist writes; the surgeon never did
    send_message(live_backend, oncologist, nir, "Votre programme de l'après-cancer", "Je reste disponible.")
    # the Assurance Maladie's feed, over HTTP with its own token
    created = live_backend.carnet("insurer", "create", "--code", "cnam-ui").stdout.splitlines()
    made = json.loads([line for line in created if line.startswith("{")][-1])
    fed = live_backend.carnet("insurer", "feed", "--token", made["token"], "--nir", nir, "--url", live_backend.url)
    assert json.loads(fed.stdout.strip().splitlines()[-1])["stored"] == 1
    return ids


def open_profile(ui):
    profile = ui.app.show("profile")
    ui.wait_for_screen("profile")
    ui.wait_until(lambda: profile.loaded, "the profile is loaded")
    ui.settle()
    return profile


def test_devices_vaccinations_pathway_and_reimbursements(ui, enrolled_patient, live_backend):
    ids = set_up_world(live_backend, enrolled_patient.nir)
    api = sign_in(ui, enrolled_patient)
    api.add_entry("implant", {"device": "Prothèse totale de hanche", "brand_model": "Corail / Pinnacle",
                              "implant_date": "2021-06-14", "site": "Hanche gauche",
                              "implanted_by": "Clinique du Parc, Dr Morel"})

    # the profile: vaccinations to confirm, and implanted devices as a kind of their own
    profile = open_profile(ui)
    assert "1 vaccin(s)" in profile.proposals_text
    implant_row = next(r for r in profile.kind_rows() if r.kind == "implant")
    assert implant_row.title == "Dispositifs médicaux implantés" and implant_row.count == 2
    shot(ui, "pathways-01-profile")
    scroll_to(ui, implant_row)
    shot(ui, "pathways-01b-profile-implants")

    # the implants: the pacemaker read from the discharge letter, which opens from the entry
    ui.tap(implant_row)
    entries = ui.wait_for_screen("profile_entries")
    ui.wait_until(lambda: len(entries.rows()) == 2, "both implants are listed")
    ui.settle()
    shot(ui, "pathways-02-implants")
    pacemaker = next(r for r in entries.rows() if r.entry.get("document_id"))
    assert "BIOTRONIK" in pacemaker.detail and "03/12/2018" in pacemaker.detail
    ui.tap(pacemaker)
    ui.wait_until(lambda: entries.editing, "the implant is open")
    ui.settle()
    assert entries.entry_document == ids["letter"]
    scroll_to(ui, entries.ids.source_document)
    shot(ui, "pathways-03-implant-detail")
    ui.tap(entries.ids.source_document)
    viewer = ui.wait_for_screen("document_viewer")
    ui.wait_until(lambda: viewer.document_id == ids["letter"] and not ui.app.busy, "the letter opens")
    ui.settle()
    shot(ui, "pathways-04-source-document")

    # the emergency card carries both implants
    card = ui.app.show("emergency_card")
    ui.wait_for_screen("emergency_card")
    ui.wait_until(lambda: card.card.get("implants"), "the card is refreshed")
    ui.settle()
    lines = card.ids.implants.body
    assert "STIMULATEUR CARDIAQUE IMPLANTABLE TRIPLE CHAMBRE" in lines
    assert "Prothèse totale de hanche (Hanche gauche) — Corail / Pinnacle, 14/06/2021" in lines
    shot(ui, "pathways-05-emergency-card")

    # vaccinations to confirm: the dispensed dTcaP; once confirmed the prevention calendar follows
    profile = open_profile(ui)
    ui.tap(profile.ids.review_proposals)
    proposals = ui.wait_for_screen("vaccination_proposals")
    ui.wait_until(lambda: len(proposals.rows()) == 1, "the proposal is listed")
    ui.settle()
    row = proposals.rows()[0]
    assert row.title.startswith("REPEVAX") and "lot W3B52" in row.detail
    shot(ui, "pathways-06-vaccination-to-confirm")
    ui.tap(row.ids.confirm)
    ui.wait_until(lambda: proposals.notice, "the confirmation is said")
    ui.settle()
    assert proposals.empty and "calendrier de prévention" in proposals.notice
    shot(ui, "pathways-07-vaccination-confirmed")
    prevention = ui.app.show("agenda_prevention")
    ui.wait_for_screen("agenda_prevention")
    ui.wait_until(lambda: prevention.ids.item_list.children, "the prevention list is loaded")
    ui.settle()
    booster = next(w for w in prevention.ids.item_list.children if getattr(w, "item", {}).get("code") == "vaccin_dtcap_25")
    assert booster.status == "done" and "Fait le" in booster.detail
    shot(ui, "pathways-08-prevention-follows")

    # the cancer pathway: every step in date order, each opening its document; the care team
    profile = open_profile(ui)
    ui.tap(profile.ids.open_oncology)
    pathway = ui.wait_for_screen("pathway_oncology")
    ui.wait_until(lambda: pathway.loaded and pathway.step_rows(), "the pathway is loaded")
    ui.settle()
    assert [r.step["step"] for r in pathway.step_rows()] == ["imaging", "pathology", "rcp", "pps", "operative",
                                                            "ppac"]
    shot(ui, "pathways-09-oncology-timeline")
    team = {m.name: m for m in pathway.team_rows()}
    assert team["Marc LEFORT"].writable and not team["Paul MOREAU"].writable
    assert "Ne vous a pas encore écrit" in team["Paul MOREAU"].note
    scroll_to(ui, pathway.team_rows()[0])
    shot(ui, "pathways-10-care-team")
    rcp = next(r for r in pathway.step_rows() if r.step["step"] == "rcp")
    ui.tap(rcp)
    viewer = ui.wait_for_screen("document_viewer")
    ui.wait_until(lambda: viewer.document_id == rcp.step["document"]["id"], "the RCP sheet opens")
    ui.settle()
    ui.app.back("pathway_oncology")
    pathway = ui.wait_for_screen("pathway_oncology")
    ui.wait_until(lambda: pathway.team_rows(), "the team is shown again")
    ui.settle()
    # one tap to write to the oncologist: addressed and titled, ready to type
    ui.tap(next(m for m in pathway.team_rows() if m.name == "Marc LEFORT").ids.write)
    compose = ui.wait_for_screen("inbox_compose")
    ui.wait_until(lambda: compose.recipient_id, "the oncologist is chosen")
    ui.settle()
    assert compose.ids.subject.text == "Mon parcours de soins" and compose.mode == "new"
    shot(ui, "pathways-11-write-to-the-oncologist")

    # the reimbursement history of the last 24 months, by kind
    profile = open_profile(ui)
    ui.tap(profile.ids.open_reimbursements)
    remb = ui.wait_for_screen("reimbursements")
    ui.wait_until(lambda: remb.loaded and remb.rows(), "the episodes are listed")
    ui.settle()
    assert "24 derniers mois" in remb.since
    shot(ui, "pathways-12-reimbursements")
    chip = next(c for c in remb.ids.kinds.children if c.value == "biology")
    ui.tap(chip)
    ui.wait_until(lambda: remb.rows() and all(r.episode["kind"] == "biology" for r in remb.rows()),
                  "only biology is listed")
    ui.settle()
    shot(ui, "pathways-13-reimbursements-biology")
    assert "Biologie" in texts(remb.ids.kinds)
