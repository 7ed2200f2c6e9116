"""Documents the demo record is made of, generated here (never read from outside the project): a
consultation letter as a PDF (fpdf2), a lab report as a CDA R2 level 3 with its human-readable narrative,
a chest X-ray as a PNG image (Pillow), and a vaccination certificate as a PDF.

Every byte is deterministic for a given patient (no timestamps of the run, no randomness), so a second
``carnet demo`` finds the same documents by their uniqueId and content and adds nothing.
"""
from __future__ import annotations

import datetime as dt
import io
from xml.sax.saxutils import escape

from fpdf import FPDF


def _pdf(title: str, lines: list[str], creator: str = "Carnet démonstration") -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_creator(creator)
    pdf.set_title(title)
    # fixed, so the same bytes every run (fpdf2 writes the creation date otherwise)
    pdf.set_creation_date(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 18)
    pdf.multi_cell(0, 10, title, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Helvetica", size=13)
    for line in lines:
        if line.startswith("## "):
            pdf.ln(2)
            pdf.set_font("Helvetica", "B", 14)
            pdf.multi_cell(0, 8, line[3:], new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("Helvetica", size=13)
        else:
            pdf.multi_cell(0, 7, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def consultation_letter(patient_name: str, birth_date: str, day: dt.date) -> bytes:
    return _pdf("Compte rendu de consultation de cardiologie", [
        "Dr Paul ROUX, cardiologue - Clinique des Dômes, 63000 Clermont-Ferrand",
        f"Patiente : {patient_name}, née le {birth_date}",
        f"Consultation du {day.strftime('%d/%m/%Y')}",
        "",
        "## Motif",
        "Palpitations occasionnelles à l'effort, sans malaise ni douleur thoracique.",
        "## Examen",
        "Pression artérielle 124/78 mmHg, fréquence cardiaque 68/min, auscultation normale.",
        "Électrocardiogramme : rythme sinusal régulier, pas de trouble de la conduction.",
        "## Conclusion",
        "Extrasystoles bénignes. Pas de traitement. Limiter le café ; reprendre une activité",
        "physique régulière. Revoir en cas de malaise.",
        "",
        "Bien confraternellement,",
        "Dr Paul Roux",
        "",
        "Document de démonstration : données fictives.",
    ])


def vaccination_certificate(patient_name: str, birth_date: str) -> bytes:
    return _pdf("Attestation de vaccination", [
        f"Je soussignée, Dr Alice DURAND, certifie que {patient_name}, née le {birth_date},",
        "a reçu les vaccinations suivantes :",
        "",
        "- diphtérie, tétanos, coqueluche, poliomyélite (dTcaP) : rappel le 03/04/2019",
        "- grippe saisonnière : le 14/10/2025",
        "- COVID-19 (Comirnaty) : le 14/10/2025",
        "",
        "Fait à Clermont-Ferrand pour servir et valoir ce que de droit.",
        "",
        "Document de démonstration : données fictives.",
    ])


def chest_xray_png() -> bytes:
    """A drawn, plainly schematic chest radiograph (grey ribs on black), as an imaging centre would send a PNG."""
    from PIL import Image, ImageDraw, ImageFilter

    width, height = 900, 1100
    image = Image.new("L", (width, height), 8)
    draw = ImageDraw.Draw(image)
    draw.ellipse((150, 120, 750, 1080), fill=40)  # the thorax
    draw.ellipse((200, 220, 440, 900), fill=22)  # right lung
    draw.ellipse((460, 220, 700, 900), fill=22)  # left lung
    draw.rectangle((430, 80, 470, 1000), fill=150)  # spine
    for i in range(9):  # ribs
        y = 260 + i * 70
        draw.arc((180, y - 40, 450, y + 90), 180, 350, fill=170, width=14)
        draw.arc((450, y - 40, 720, y + 90), 190, 360, fill=170, width=14)
    draw.ellipse((430, 560, 610, 820), fill=95)  # the heart's shadow
    draw.rectangle((0, 0, 260, 60), fill=0)
    draw.text((16, 18), "DEMO - THORAX FACE", fill=230)
    image = image.filter(ImageFilter.GaussianBlur(3))
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False)
    return out.getvalue()


LAB_RESULTS = (
    ("Glycémie à jeun", "0,92", "g/L", "0,70 - 1,10"),
    ("Cholestérol total", "1,86", "g/L", "< 2,00"),
    ("Cholestérol LDL", "1,05", "g/L", "< 1,60"),
    ("Triglycérides", "0,78", "g/L", "< 1,50"),
    ("Hémoglobine", "13,4", "g/dL", "12,0 - 16,0"),
    ("TSH", "1,9", "mUI/L", "0,4 - 4,0"),
)


def lab_report_cda(*, nir: str, oid: str, family_name: str, given_name: str, birth_date: dt.date, sex: str,
                   day: dt.date, unique_id: str, author_rpps: str) -> bytes:
    """A CDA R2 level 3 (structuredBody, one section per topic, the results as a narrative table)."""
    rows = "".join(f"<tr><td>{escape(a)}</td><td>{escape(v)} {escape(u)}</td><td>{escape(r)}</td></tr>"
                   for a, v, u, r in LAB_RESULTS)
    stamp = day.strftime("%Y%m%d") + "0805+0100"
    gender = {"F": "F", "M": "M"}.get(sex, "UN")
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <realmCode code="FR"/>
  <typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>
  <templateId root="1.2.250.1.213.1.1.1.1"/>
  <id root="{unique_id}"/>
  <code code="11502-2" codeSystem="2.16.840.1.113883.6.1" displayName="CR d'examens biologiques"/>
  <title>Compte rendu de biologie - bilan sanguin</title>
  <effectiveTime value="{stamp}"/>
  <confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25"/>
  <languageCode code="fr-FR"/>
  <recordTarget><patientRole>
    <id root="{oid}" extension="{nir}"/>
    <patient>
      <name><family qualifier="BR">{escape(family_name.upper())}</family><given>{escape(given_name)}</given></name>
      <administrativeGenderCode code="{gender}" codeSystem="2.16.840.1.113883.5.1"/>
      <birthTime value="{birth_date.strftime('%Y%m%d')}"/>
    </patient>
  </patientRole></recordTarget>
  <author>
    <time value="{stamp}"/>
    <assignedAuthor>
      <id root="1.2.250.1.71.4.2.1" extension="8{author_rpps}"/>
      <assignedPerson><name><prefix>Dr</prefix><given>Alice</given><family>DURAND</family></name></assignedPerson>
      <representedOrganization><name>Laboratoire des Volcans</name></representedOrganization>
    </assignedAuthor>
  </author>
  <custodian><assignedCustodian><representedCustodianOrganization>
    <id root="1.2.250.1.213.4.1"/><name>Carnet</name>
  </representedCustodianOrganization></assignedCustodian></custodian>
  <component><structuredBody>
    <component><section>
      <code code="18719-5" codeSystem="2.16.840.1.113883.6.1" displayName="Chimie"/>
      <title>Biochimie et hématologie</title>
      <text>
        <paragraph>Prélèvement du {day.strftime('%d/%m/%Y')} à 8 h 05, à jeun depuis 12 heures.</paragraph>
        <table>
          <thead><tr><th>Analyse</th><th>Résultat</th><th>Valeurs de référence</th></tr></thead>
          <tbody>{rows}</tbody>
        </table>
      </text>
    </section></component>
    <component><section>
      <title>Conclusion du biologiste</title>
      <text><paragraph>Bilan dans les valeurs de référence. Aucun contrôle nécessaire avant un an.</paragraph>
      <paragraph>Document de démonstration : données fictives.</paragraph></text>
    </section></component>
  </structuredBody></component>
</ClinicalDocument>
"""
    return xml.encode("utf-8")
