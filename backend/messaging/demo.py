"""Demo conversations for `carnet demo`: Dr Alice Durand writes to Camille Martin (idempotent).

One thread carries a lab report as a real PDF (to try "save into my record"), the other one forbids
replies (to see the notice). They go through the same service a professional's software uses.
"""
from __future__ import annotations

import datetime as dt

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.accounts.models import Patient
from backend.messaging import professional
from backend.messaging import service as inbox
from backend.messaging.models import Thread
from backend.professionals.models import Professional
from backend.records import vault


def _lab_report_pdf() -> bytes:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_creator("Carnet démonstration")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 12, "Laboratoire des Volcans - Compte rendu de biologie", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    lines = ["Patiente : Mme Camille MARTIN, née le 14/07/1984", "Prélèvement du 12/03/2026 à 8 h 05, à jeun", "",
             "Glycémie à jeun ............ 0,92 g/L   (0,70 - 1,10)",
             "Cholestérol total ........... 1,86 g/L   (< 2,00)",
             "Cholestérol LDL ............. 1,05 g/L   (< 1,60)",
             "Triglycérides ............... 0,78 g/L   (< 1,50)",
             "Hémoglobine ................. 13,4 g/dL  (12,0 - 16,0)", "",
             "Document de démonstration : données fictives."]
    for line in lines:
        pdf.cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def seed_inbox(session: Session, patient: Patient, pro: Professional, *, now: dt.datetime) -> None:
    if session.scalar(select(Thread.id).where(Thread.patient_id == patient.id,
                                              Thread.professional_id == pro.id).limit(1)) is not None:
        return
    settings = current_app.extensions["carnet.inbox_settings"]
    box = vault(session)
    professional.start_thread(
        session, box, settings, pro, patient, "Préparation de votre prise de sang",
        inbox.Outgoing(body="Bonjour Madame Martin,\n\nPour la prise de sang du 12 mars, venez à jeun depuis la "
                            "veille au soir (eau autorisée). Apportez votre ordonnance et votre carte Vitale.\n\n"
                            "Ce message ne reçoit pas de réponse : pour toute question, appelez le cabinet.\n\n"
                            "Dr Alice Durand"),
        establishment="Cabinet du Parc", replies_allowed=False, now=now - dt.timedelta(days=6))
    professional.start_thread(
        session, box, settings, pro, patient, "Résultats de votre bilan sanguin",
        inbox.Outgoing(body="Bonjour Madame Martin,\n\nVos résultats du bilan du 12 mars sont dans les normes ; le "
                            "compte rendu du laboratoire est joint. Nous en reparlerons à votre prochaine "
                            "consultation.\n\nBien cordialement,\nDr Alice Durand",
                       files=(inbox.NewFile("Bilan sanguin 12-03-2026.pdf", _lab_report_pdf(), "application/pdf"),)),
        now=now - dt.timedelta(hours=3))
